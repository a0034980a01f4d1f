#!/usr/bin/env bash
# Instructions per operation of each presence-mix phase, under callgrind:
# repeatable on a shared or noisy machine, so the figure to compare between
# two versions of the library.
#
#   scripts/bench-callgrind.sh [--handles] [C H K R I]
#                                      (default 20000 2000 5 10 32)
#
# Builds build-bench as an optimised build with debug info (-O3 -g, no
# assertions), runs bench/presence-bench under valgrind --tool=callgrind,
# and prints, per phase, the instructions of the API call (inclusive)
# divided by the phase's ops, then the top functions by own instructions.
# The callgrind file is kept in build-bench/callgrind.out.presence-mix for
# callgrind_annotate or kcachegrind.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${BUILD_DIR:-$root/build-bench}
args=("$@")
[[ ${#args[@]} -gt 0 ]] || args=(20000 2000 5 10 32)
command -v valgrind >/dev/null || { echo "valgrind not found" >&2; exit 1; }

# shellcheck source=lib/bench-build.sh
. "$root/scripts/lib/bench-build.sh"
bench_build "$build" "$root" -Doptimization=3 -Ddebug=true -Db_ndebug=true \
    -Db_sanitize=none -Dtests=false -Dexamples=false -Dbench=true

cg=$build/callgrind.out.presence-mix
valgrind --tool=callgrind --callgrind-out-file="$cg" \
    "$build/bench/presence-bench" "${args[@]}" >"$build/callgrind.stdout" \
    2>"$build/callgrind.stderr" || { cat "$build/callgrind.stderr" >&2; exit 1; }

# phase -> the API function it times
callgrind_annotate --inclusive=yes --threshold=100 "$cg" 2>/dev/null >"$build/callgrind.inclusive"
callgrind_annotate "$cg" 2>/dev/null >"$build/callgrind.exclusive"
handles=0
[[ ${args[0]} == --handles ]] && handles=1
awk -v stdout_file="$build/callgrind.stdout" -v handles=$handles '
    BEGIN {
        fn["join"] = "presence_join"; fn["stats"] = "presence_stats"
        fn["query"] = "presence_query"; fn["refresh"] = "presence_touch"
        fn["leave"] = "presence_disconnect"
        if (handles) {  # the phase is the sum of these calls
            fn["join"] = "presence_client_open+presence_channel_open+presence_client_join_channel_many"
            fn["stats"] = "presence_channel_stats_get"
            fn["refresh"] = "presence_client_touch"
            fn["leave"] = "presence_client_close+presence_client_close_many"
        }
        n = split("join stats query refresh leave", order, " ")
        while ((getline line < stdout_file) > 0)
            if (match(line, /^phase=[a-z]+ ops=[0-9]+/)) {
                split(line, f, /[ =]/); ops[f[2]] = f[4]
            }
    }
    # lines like "189,636,253 (43.27%)  ../src/channel.c:presence_join [lib]"
    # (an LTO build names no object: the line ends with the function)
    match($0, /:presence_[a-z_]+( \[|$)/) {
        name = substr($0, RSTART + 1, RLENGTH - 1); sub(/ \[$/, "", name)
        v = $1; gsub(/,/, "", v)
        if (!(name in ir)) ir[name] = v
    }
    END {
        printf "| phase | API call | ops | instructions/op |\n"
        printf "| --- | --- | ---: | ---: |\n"
        for (i = 1; i <= n; i++) {
            p = order[i]
            nf = split(fn[p], parts, "+"); total = 0
            for (q = 1; q <= nf; q++) total += ir[parts[q]]
            printf "| %s | %s | %d | %.0f |\n", p, fn[p], ops[p],
                   ops[p] ? total / ops[p] : 0
        }
    }' "$build/callgrind.inclusive"
echo
echo "Top functions by own instructions (the whole run, name building included):"
echo
awk '/^-+$/ { sep++; next }
     sep >= 4 && $1 ~ /^[0-9,]+$/ && shown < 15 {
        line = $0; sub(/ \[.*/, "", line)
        pct = line; sub(/^[^(]*\(/, "", pct); sub(/\).*/, "", pct)
        fn = line; sub(/^.*\) +/, "", fn); sub(/^.*\//, "", fn)
        printf "  %14s %7s  %s\n", $1, pct, fn; shown++
     }' "$build/callgrind.exclusive"
echo
echo "args: ${args[*]}; callgrind file: $cg"
