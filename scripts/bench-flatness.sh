#!/usr/bin/env bash
# Flatness (issue 13): the presence-mix workload at 10^5, 10^6 and 10^7
# memberships (C = 20,000, 200,000, 2,000,000; H = C/10 so that every
# channel keeps 50 members; K=5 R=10 I=32), each size against the memory
# floor of its own working sets (floor.c C H K), in one run, alternating.
# Prints each phase's ns per operation and its ratio to the floor per
# size, and the spread of the ratios.
#
#   scripts/bench-flatness.sh [C...]          (default 20000 200000 2000000)
#
# Environment: ROUNDS (3), BUILD_DIR (build-release), FLOOR_SRC (default
# ../shared/bench/limit/floor.c), BENCH_OPTS (presence-bench options for
# every run, e.g. "--prefault 1500": the join without the kernel's
# providing of fresh pages, docs/PERFORMANCE.md). Raw outputs in
# $BUILD_DIR/bench-results/flat-<time>/.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${BUILD_DIR:-$root/build-release}
floor_src=${FLOOR_SRC:-$root/../shared/bench/limit/floor.c}
rounds=${ROUNDS:-3}
read -r -a bench_opts <<<"${BENCH_OPTS:-}"
sizes=("$@")
[[ ${#sizes[@]} -gt 0 ]] || sizes=(20000 200000 2000000)
for c in "${sizes[@]}"; do
    [[ $c =~ ^[1-9][0-9]*$ && $c -ge 10 ]] || { echo "bad C: $c" >&2; exit 2; }
done
[[ $rounds =~ ^[1-9][0-9]*$ ]] || { echo "bad ROUNDS: $rounds" >&2; exit 2; }
[[ -f $floor_src ]] || { echo "memory floor not found at $floor_src" >&2; exit 1; }
mkdir -p "$build"
build=$(cd "$build" && pwd)

# shellcheck source=lib/bench-build.sh
. "$root/scripts/lib/bench-build.sh"
bench_build "$build" "$root"
cc -O2 -o "$build/floor" "$floor_src"

out=$build/bench-results/flat-$(date +%Y%m%d-%H%M%S)
mkdir -p "$out"
echo "flatness, sizes: ${sizes[*]}, $rounds rounds, $(nproc) cores," \
     "load average $(cut -d' ' -f1-3 /proc/loadavg)${BENCH_OPTS:+, options $BENCH_OPTS}"
for ((r = 1; r <= rounds; r++)); do
    for c in "${sizes[@]}"; do
        h=$((c / 10))
        echo "round $r/$rounds: C=$c" >&2
        "$build/bench/presence-bench" "${bench_opts[@]}" "$c" "$h" 5 10 32 \
            >"$out/c-$c-$r.out" 2>"$out/c-$c-$r.err" ||
            { cat "$out/c-$c-$r.err" >&2; exit 1; }
        "$build/floor" "$c" "$h" 5 >"$out/floor-$c-$r.out" \
            2>"$out/floor-$c-$r.err" ||
            { cat "$out/floor-$c-$r.err" >&2; exit 1; }
    done
done
python3 "$root/scripts/bench-report.py" --flat "$out" "$rounds" "${sizes[@]}"
