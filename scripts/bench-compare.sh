#!/usr/bin/env bash
# The presence-mix workload on libpresence and on the Socket.IO adapter
# peer, side by side, with the memory floor of the same work on this
# machine, in one run:
#
#   scripts/bench-compare.sh [C H K R I]
#
# 1. configures and builds a release build dir (build-release: -O3, no
#    assertions, no sanitizers, no tests or examples),
# 2. copies ../shared/bench/peers/socketio (read-only on CI) into
#    build-release/peer-socketio and runs `npm ci` there,
# 3. runs the C bench, the memory floor (../shared/bench/limit/floor.c,
#    built into the build dir) and the Socket.IO bench alternating, ROUNDS
#    rounds (default 3; the order flips every round), the benches under
#    /usr/bin/time -v,
# 4. fails unless every run printed the same checksum line,
# 5. prints per phase the median rates of both and their ratio, the peak
#    memory per membership (time -v maximum resident set / (C*K)), and
#    libpresence's time per operation against the floor (issue 13's
#    ratios), through scripts/bench-report.py (python3, stdlib only).
#
# Environment: ROUNDS (3), BUILD_DIR (build-release), PEER_DIR (the
# Socket.IO harness; default ../shared/bench/peers/socketio from the repo
# root), FLOOR_SRC (default ../shared/bench/limit/floor.c). Raw outputs are kept in $BUILD_DIR/bench-results/<time>/.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${BUILD_DIR:-$root/build-release}
peer_src=${PEER_DIR:-$root/../shared/bench/peers/socketio}
floor_src=${FLOOR_SRC:-$root/../shared/bench/limit/floor.c}
rounds=${ROUNDS:-3}
mkdir -p "$build"
build=$(cd "$build" && pwd)

if [[ $# -gt 5 ]]; then
    echo "usage: $0 [C H K R I]" >&2
    exit 2
fi
for a in "$@"; do
    [[ $a =~ ^[0-9]+$ ]] || { echo "bad argument: $a" >&2; exit 2; }
done
[[ $rounds =~ ^[1-9][0-9]*$ ]] || { echo "bad ROUNDS: $rounds" >&2; exit 2; }
for tool in meson ninja node npm python3; do
    command -v "$tool" >/dev/null || { echo "$tool not found" >&2; exit 1; }
done
[[ -x /usr/bin/time ]] || { echo "/usr/bin/time not found (apt-get install time)" >&2; exit 1; }
[[ -f $peer_src/bench.js ]] || { echo "Socket.IO peer not found at $peer_src" >&2; exit 1; }
[[ -f $floor_src ]] || { echo "memory floor not found at $floor_src" >&2; exit 1; }

# 1. the release build
# shellcheck source=lib/bench-build.sh
. "$root/scripts/lib/bench-build.sh"
bench_build "$build" "$root"
c_bench=$build/bench/presence-bench
# The memory floor of the same work on this machine (read-only source:
# built into the build dir).
cc -O2 -o "$build/floor" "$floor_src"

# 2. the peer, copied out of the read-only shared folder
peer=$build/peer-socketio
rm -rf "$peer"
mkdir -p "$peer"
cp -R "$peer_src"/. "$peer"/
chmod -R u+w "$peer"
(cd "$peer" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)

# 3. alternating runs
out=$build/bench-results/$(date +%Y%m%d-%H%M%S)
mkdir -p "$out"
# run_one WHO ROUND [C H K R I]
run_one() {
    local who=$1 r=$2
    shift 2
    local base=$out/$who-$r
    if [[ $who == c ]]; then
        /usr/bin/time -v -o "$base.time" "$c_bench" "$@" \
            >"$base.out" 2>"$base.err"
    elif [[ $who == floor ]]; then
        "$build/floor" "${@:1:3}" >"$base.out" 2>"$base.err"
    else
        (cd "$peer" && /usr/bin/time -v -o "$base.time" \
            node --expose-gc bench.js "$@" >"$base.out" 2>"$base.err")
    fi || { echo "$who failed (round $r):" >&2; cat "$base.err" >&2; exit 1; }
}
echo "presence-mix, args: ${*:-(defaults)}, $rounds rounds, $(nproc) cores," \
     "load average $(cut -d' ' -f1-3 /proc/loadavg)"
for ((r = 1; r <= rounds; r++)); do
    if ((r % 2)); then order="c floor sio"; else order="sio floor c"; fi
    for who in $order; do
        echo "round $r/$rounds: $who" >&2
        run_one "$who" "$r" "$@"
    done
done

# 4 and 5. checksums and the table
python3 "$root/scripts/bench-report.py" "$out" "$rounds"
