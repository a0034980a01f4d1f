#!/usr/bin/env bash
# A/B: the presence-mix workload on two versions of the library, run
# alternately in one session so that both see the same machine load.
#
#   scripts/bench-ab.sh REV [presence-bench options] [C H K R I]
#                                            (env ROUNDS=7)
#
# The options pass on to presence-bench: --shuffle judges a change on
# calls that take records in no order they were made in, which a layout
# change cannot win or lose by a hardware prefetcher (PERFORMANCE.md).
# A is git revision REV (exported with git archive), B the working tree.
# Both are built as release builds (-O3, no assertions, no sanitizers) in
# build-ab/; then presence-bench runs ROUNDS times each, A and B taking
# turns (the order flips every round). Prints the median rate of each phase
# for A and B and the ratio B/A, and the median peak RSS. On a shared or
# noisy machine, single runs differ by 10-30%: the medians of alternating
# runs are the figure to compare, with callgrind counts
# (scripts/bench-callgrind.sh) for what does not depend on load.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
[[ $# -ge 1 ]] || { echo "usage: $0 REV [presence-bench options] [C H K R I]" >&2; exit 2; }
rev=$1
shift
rounds=${ROUNDS:-7}
work=$root/build-ab
opts=(--buildtype=release -Db_ndebug=true -Dtests=false -Dexamples=false
      -Dcluster=disabled)

rm -rf "$work/src-a"
mkdir -p "$work/src-a" "$work/out"
# --touch: fresh times, or ninja would keep objects of an older export
git -C "$root" archive "$rev" | tar -x --touch -C "$work/src-a"
for side in a b; do
    src=$work/src-a
    [[ $side == b ]] && src=$root
    if [[ -f $work/build-$side/meson-private/coredata.dat ]]; then
        meson setup --reconfigure "${opts[@]}" "$work/build-$side" "$src" >/dev/null
    else
        meson setup "${opts[@]}" "$work/build-$side" "$src" >/dev/null
    fi
    meson compile -C "$work/build-$side" presence-bench >"$work/build-$side.log" \
        2>&1 || { tail -20 "$work/build-$side.log" >&2; exit 1; }
done

rm -f "$work"/out/*.out "$work"/out/*.err
for ((r = 1; r <= rounds; r++)); do
    order=(a b)
    ((r % 2 == 0)) && order=(b a)
    for side in "${order[@]}"; do
        "$work/build-$side/bench/presence-bench" "$@" \
            >"$work/out/$side-$r.out" 2>"$work/out/$side-$r.err" || {
            echo "build-$side: presence-bench failed:" >&2
            cat "$work/out/$side-$r.err" >&2
            exit 1
        }
    done
done

python3 "$root/scripts/bench-pair-report.py" "$work/out" "$rounds" "$rev" "working tree"
