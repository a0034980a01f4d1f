#!/usr/bin/env bash
# Load and churn test of the presence server (tests/load/load.js):
#
#   scripts/load-test.sh [--build DIR] [--sanitizer] [--connections N]
#                        [--seconds S] [--rate OPS_PER_S] [load.js options...]
#
# Holds N WebSocket connections on 127.0.0.1 (default 5000), each in
# several channels, churns subscribe / unsubscribe / clean disconnect /
# abrupt socket death at the given rate for S seconds while presence and
# presence_stats are queried over HTTP, then checks that presence is exactly
# what the generator believes in every channel, that every request got an
# answer, that the server's RSS came back to within 10% of its level after
# a warm-up cycle, and that it stops cleanly on SIGTERM.
#
# Without --build it builds a release server in build-load (with
# --sanitizer: an ASan+UBSan one in build-load-asan, whose reports fail the
# run; the RSS check is skipped there, ASan keeps freed memory in
# quarantine). Raises the open-file limit to what N connections need.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=""
sanitizer=0
connections=5000
args=()
while [ $# -gt 0 ]; do
  case $1 in
  --build) build=$(cd "$2" && pwd); shift 2 ;;
  --sanitizer) sanitizer=1; shift ;;
  --connections) connections=$2; args+=("$1" "$2"); shift 2 ;;
  *) args+=("$1"); shift ;;
  esac
done

if [ -z "$build" ]; then
  if [ $sanitizer = 1 ]; then
    build=$root/build-load-asan
    opts=(-Dbuildtype=debugoptimized -Db_sanitize=address,undefined -Db_lundef=false)
  else
    build=$root/build-load
    opts=(-Dbuildtype=release)
  fi
  if [ ! -d "$build" ]; then
    meson setup "$build" "${opts[@]}" -Dpresence_server=enabled -Dtests=false \
      -Dbench=false >/dev/null
  fi
fi
meson compile -C "$build" presence-server >/dev/null
server=$build/examples/presence-server/presence-server

# A descriptor per connection in each process (the limit is per process:
# the server holds one end, the generator the other), plus some for the
# HTTP queries.
need=$((connections + 1024))
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt "$need" ]; then
  echo "load-test: $connections connections need $need open files; the hard limit is $hard" >&2
  exit 1
fi
ulimit -n "$hard"

cd "$root/tests/load"
npm ci --no-audit --no-fund --loglevel=error >/dev/null
flags=()
if [ $sanitizer = 1 ]; then flags+=(--sanitizer); fi
exec node --max-old-space-size=4096 load.js --server "$server" "${flags[@]}" "${args[@]}"
