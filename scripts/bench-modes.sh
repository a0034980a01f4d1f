#!/usr/bin/env bash
# Two ways of running the presence-mix workload on one build, run
# alternately in one session so that both see the same machine load:
#
#   scripts/bench-modes.sh "A options" "B options" [C H K R I]
#                                            (env ROUNDS=9)
#
# The options are presence-bench's, e.g. (docs/PERFORMANCE.md):
#   scripts/bench-modes.sh "" "--handles"            handles against names
#   scripts/bench-modes.sh "--shuffle" "--handles --shuffle"
#   scripts/bench-modes.sh "" "--prefault 300"       the join without the
#                                     kernel's providing of fresh pages
# Builds build-release as scripts/bench-compare.sh does (release, -O3, no
# assertions, no sanitizers), runs presence-bench ROUNDS times with each
# option set, taking turns (the order flips every round), fails unless
# every run printed the same checksum line, and prints per phase the
# median rates, B/A, and the median and range of the round-by-round
# ratios (scripts/bench-pair-report.py). Raw outputs: build-release/bench-modes/.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
[[ $# -ge 2 ]] || { echo "usage: $0 \"A options\" \"B options\" [C H K R I]" >&2; exit 2; }
read -r -a opts_a <<<"$1"
read -r -a opts_b <<<"$2"
label_a=${1:-(none)}
label_b=${2:-(none)}
shift 2
rounds=${ROUNDS:-9}
[[ $rounds =~ ^[1-9][0-9]*$ ]] || { echo "bad ROUNDS: $rounds" >&2; exit 2; }
build=${BUILD_DIR:-$root/build-release}

# shellcheck source=lib/bench-build.sh
. "$root/scripts/lib/bench-build.sh"
bench_build "$build" "$root"
bench=$build/bench/presence-bench

out=$build/bench-modes
mkdir -p "$out"
rm -f "$out"/*.out "$out"/*.err
for ((r = 1; r <= rounds; r++)); do
    order=(a b)
    ((r % 2 == 0)) && order=(b a)
    for side in "${order[@]}"; do
        if [[ $side == a ]]; then
            side_opts=("${opts_a[@]}")
        else
            side_opts=("${opts_b[@]}")
        fi
        "$bench" "${side_opts[@]}" "$@" >"$out/$side-$r.out" \
            2>"$out/$side-$r.err" || {
            echo "presence-bench ${side_opts[*]} failed:" >&2
            cat "$out/$side-$r.err" >&2
            exit 1
        }
    done
done
python3 "$root/scripts/bench-pair-report.py" "$out" "$rounds" "$label_a" "$label_b"
