#!/usr/bin/env bash
# Run a libFuzzer target for a bounded time:
#   scripts/fuzz.sh [TARGET] [SECONDS]     (default: api-sequence 60)
# Builds the fuzzers with clang, ASan and UBSan in build-fuzz, starts from
# the committed seed corpus (new finds go to build-fuzz/corpus-TARGET, not
# into the repository) and fails on a crash, a leak or a model mismatch.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:-api-sequence}
seconds=${2:-60}
corpus_name=${target//-/_}

if [ ! -d build-fuzz ]; then
  CC=clang meson setup build-fuzz -Dfuzz=true -Dtests=false -Dexamples=false \
    -Dbench=false -Db_sanitize=address,undefined -Db_lundef=false \
    -Dbuildtype=debugoptimized >/dev/null
fi
meson compile -C build-fuzz "fuzz-$target" >/dev/null
work=build-fuzz/corpus-$target
mkdir -p "$work"
exec build-fuzz/fuzz/"fuzz-$target" -max_total_time="$seconds" -max_len=4096 \
  -print_final_stats=1 "$work" "fuzz/corpus/$corpus_name"
