#!/usr/bin/env bash
# Replication figures of libpresence-cluster: two nodes in two processes on
# this machine, one redis-server on a loopback port (started here, without
# persistence, stopped at the end):
#
#   scripts/cluster-bench.sh BUILD_DIR [presence-cluster-bench options...]
#
# - throughput: N memberships joined on node A as fast as it can, the time
#   until node B has received them all -> memberships/s (then the same for
#   N disconnects);
# - lag: joins on A at a moderate rate, time from A's presence_join() call
#   to B's join event (CLOCK_MONOTONIC, shared by the two processes): p50,
#   p90, p99, max.
#
# Defaults: --memberships 100000 --channels 1000 --lag-joins 2000
# --lag-rate 1000 --lease-ms 3000. Build with -Dbuildtype=release for
# figures worth writing down (BUILD_DIR/tests/cluster/presence-cluster-bench,
# brought up to date first unless CLUSTER_NO_BUILD=1).
set -euo pipefail

if [ $# -lt 1 ]; then
  echo "usage: $0 BUILD_DIR [presence-cluster-bench options...]" >&2
  exit 2
fi
build_dir=$(cd "$1" && pwd)
shift
bench=${PRESENCE_CLUSTER_BENCH:-$build_dir/tests/cluster/presence-cluster-bench}
if [ -z "${PRESENCE_CLUSTER_BENCH:-}" ] && [ -z "${CLUSTER_NO_BUILD:-}" ] &&
   [ -f "$build_dir/build.ninja" ] && grep -q presence-cluster-bench "$build_dir/build.ninja"; then
  meson compile -C "$build_dir" tests/cluster/presence-cluster-bench >/dev/null
fi
if [ ! -x "$bench" ]; then
  echo "cluster-bench: no presence-cluster-bench at $bench (is hiredis installed? meson compile -C $build_dir)" >&2
  exit 1
fi
redis_server=${REDIS_SERVER:-redis-server}
if ! command -v "$redis_server" >/dev/null || ! command -v redis-cli >/dev/null; then
  echo "cluster-bench: redis-server and redis-cli are needed (Debian: apt-get install redis-server)" >&2
  exit 1
fi

tmp=$(mktemp -d)
redis_pid=
cleanup() {
  if [ -n "$redis_pid" ]; then
    kill "$redis_pid" 2>/dev/null || true
    wait "$redis_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# A free loopback port: let redis-server try a few random ones.
for _ in 1 2 3 4 5 6 7 8 9 10; do
  port=$((20000 + RANDOM % 30000))
  "$redis_server" --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
    --daemonize no --loglevel warning --dir "$tmp" >"$tmp/redis.log" 2>&1 &
  redis_pid=$!
  for _ in $(seq 50); do
    if redis-cli -p "$port" ping >/dev/null 2>&1; then
      break 2
    fi
    if ! kill -0 "$redis_pid" 2>/dev/null; then
      break
    fi
    sleep 0.1
  done
  kill "$redis_pid" 2>/dev/null || true
  wait "$redis_pid" 2>/dev/null || true
  redis_pid=
done
if [ -z "$redis_pid" ]; then
  echo "cluster-bench: could not start redis-server:" >&2
  cat "$tmp/redis.log" >&2
  exit 1
fi

echo "# libpresence-cluster replication benchmark"
echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "# $("$redis_server" --version | cut -d' ' -f1-3) on 127.0.0.1:$port; build $(meson introspect --buildoptions "$build_dir" 2>/dev/null | python3 -c 'import json,sys; print(next(o["value"] for o in json.load(sys.stdin) if o["name"]=="buildtype"))' 2>/dev/null || echo '?')"
echo "# command: $bench --port $port $*"
"$bench" --port "$port" "$@"
