#!/usr/bin/env bash
# Run a libFuzzer target for a bounded time:
#   scripts/fuzz.sh [TARGET] [SECONDS]     (default: api-sequence 60)
# TARGET: api-sequence, registry-load (the saved-state loader),
# server-frames (the presence server's frames and commands),
# server-config (its config loader), server-ws-frames (its WebSocket
# frame parser on raw bytes), server-http (its HTTP/1.1 code and API on a
# loopback connection) or cluster-ops (the cluster's wire decoder).
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
case $target in
server-*) # the presence server's targets need it in the build
  meson setup --reconfigure build-fuzz -Dexamples=true \
    -Dpresence_server=enabled >/dev/null ;;
esac
meson compile -C build-fuzz "fuzz-$target" >/dev/null
# UBSan only reports by default; a fuzzer must stop at undefined behaviour.
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
work=build-fuzz/corpus-$target
mkdir -p "$work"
exec build-fuzz/fuzz/"fuzz-$target" -max_total_time="$seconds" -max_len=4096 \
  -print_final_stats=1 "$work" "fuzz/corpus/$corpus_name"
