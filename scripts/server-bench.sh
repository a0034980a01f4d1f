#!/usr/bin/env bash
# The server workload (SERVER-WORKLOAD.md in the shared bench folder)
# against the presence server and against the Socket.IO peer
# (bench/peers/socketio-server), in one run, with one generator
# (bench/server-load), printing one table with both and the ratios.
#
#   scripts/server-bench.sh [--build DIR] [-n N] [--churn-percent X]
#       [--churn-seconds D] [--plateau-seconds P] [--shards K]
#       [--only presence|socketio] [--servers S] [--smoke] [--keep DIR]
#       [--server BIN --generator BIN] [--connection-limit L] [--redis-on-loop]
#       [--subscribe-after-connect] [-- generator options...]
#
# Without --build it builds a release tree in build-server-bench. The
# presence server gets a config for N connections (client_connection_limit
# N plus room for the churn's reconnections; --connection-limit L sets it,
# 0 being "no limit": the event-loop server's only limit is then its
# descriptors). --redis-on-loop sets the servers' "redis_on_loop" (the
# Redis side on the event loop instead of a thread of its own).
# --servers S > 1 starts S presence servers sharing presence
# through a redis-server of its own (the cluster part), the generator's
# connections spread over them round-robin (the members of a group on
# different servers, their pushes through Redis); the Socket.IO peer is then skipped
# (it has no shared presence); Redis's memory and CPU count as the
# servers'. The generator is split into K processes
# (default: one per 18,000 connections, under the 20,000-descriptor limit);
# their figures are merged. --smoke: a short run (N=200, 3 s of churn)
# against the presence server only, failing unless nothing was lost,
# duplicated or left behind. --keep DIR keeps the raw reports there.
# --server and --generator name built binaries (meson test passes them):
# nothing is built then. Before the servers, the ramp's floor (tcp-floor,
# built next to the generator: loopback TCP alone for the ramp's exchanges)
# runs at min(N, 19000), without and with the ramp's join pushes, and the
# ramp is printed against both. The generator sends a connection's
# subscribes in its connect's frame, as centrifuge-js 5 does (two
# exchanges after the upgrade's; the floor too, tcp-floor -x 2);
# --subscribe-after-connect waits for the connect's answer (three, and
# the floor's three).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=""
n=5000
churn_percent=1
churn_seconds=60
plateau_seconds=10
shards=0
only=""
servers=1
smoke=0
keep=""
server_bin=""
gen=""
connection_limit=""
redis_on_loop=false
after_connect=false
gen_args=()
while [ $# -gt 0 ]; do
  case $1 in
  --build) build=$(cd "$2" && pwd); shift 2 ;;
  -n) n=$2; shift 2 ;;
  --churn-percent) churn_percent=$2; shift 2 ;;
  --churn-seconds) churn_seconds=$2; shift 2 ;;
  --plateau-seconds) plateau_seconds=$2; shift 2 ;;
  --shards) shards=$2; shift 2 ;;
  --only) only=$2; shift 2 ;;
  --servers) servers=$2; shift 2 ;;
  --smoke) smoke=1; shift ;;
  --keep) keep=$2; shift 2 ;;
  --server) server_bin=$2; shift 2 ;;
  --generator) gen=$2; shift 2 ;;
  --connection-limit) connection_limit=$2; shift 2 ;;
  --redis-on-loop) redis_on_loop=true; shift ;;
  --subscribe-after-connect) after_connect=true; gen_args+=(--subscribe-after-connect); shift ;;
  --) shift; gen_args+=("$@"); break ;;
  *) echo "server-bench: unknown argument $1" >&2; exit 2 ;;
  esac
done
if [ $smoke = 1 ]; then
  n=200; churn_percent=5; churn_seconds=3; plateau_seconds=1; only=presence
fi
if [ "$servers" -gt 1 ]; then only=presence; fi

if [ -z "$server_bin" ] || [ -z "$gen" ]; then
  if [ -z "$build" ]; then
    build=$root/build-server-bench
    if [ ! -d "$build" ]; then
      meson setup "$build" -Dbuildtype=release -Dpresence_server=enabled \
        -Dtests=false >/dev/null
    fi
  fi
  ninja -C "$build" examples/presence-server/presence-server \
    bench/server-load/server-load bench/server-load/tcp-floor >/dev/null
  server_bin=$build/examples/presence-server/presence-server
  gen=$build/bench/server-load/server-load
fi

hard=$(ulimit -Hn)
ulimit -n "$hard"
if [ "$shards" = 0 ]; then
  shards=$(( (n + 17999) / 18000 ))
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/server-bench.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do
    kill "$p" 2>/dev/null || true
  done
  for p in "${pids[@]}"; do
    wait "$p" 2>/dev/null || true
  done
  if [ -n "$keep" ]; then
    mkdir -p "$keep" && cp "$work"/*.out "$work"/*.log "$keep"/ 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Wait (at most 60 s) for a line matching $2 in file $1 from process $3.
wait_for_line() {
  local i
  for i in $(seq 1 600); do
    if grep -q "$2" "$1" 2>/dev/null; then return 0; fi
    if ! kill -0 "$3" 2>/dev/null; then break; fi
    sleep 0.1
  done
  echo "server-bench: $1 never said \"$2\":" >&2
  cat "$1" >&2
  return 1
}

# Stop a server with SIGTERM, at most 10 s, then SIGKILL.
stop() {
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for i in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# run_generator NAME PROTO "PORT..." "PID..." [--secret S]
run_generator() {
  local name=$1 proto=$2 ports=($3) spids=($4)
  shift 4
  local sync=$work/sync-$name gens=() files=() i pid_args=() port_args=()
  mkdir -p "$sync"
  for p in "${spids[@]}"; do pid_args+=(--server-pid "$p"); done
  for p in "${ports[@]}"; do port_args+=(--port "$p"); done
  for i in $(seq 0 $((shards - 1))); do
    "$gen" run --proto "$proto" "${port_args[@]}" -n "$n" \
      --churn-percent "$churn_percent" --churn-seconds "$churn_seconds" \
      --plateau-seconds "$plateau_seconds" --shard "$i/$shards" --sync "$sync" \
      --seed 1 "${pid_args[@]}" "$@" "${gen_args[@]}" \
      >"$work/$name.$i.out" 2>>"$work/$name.gen.log" &
    gens+=($!)
    pids+=($!) # stopped by cleanup if this script is interrupted
    files+=("$work/$name.$i.out")
  done
  local rc=0
  for g in "${gens[@]}"; do wait "$g" || rc=1; done
  if [ $rc != 0 ]; then
    echo "server-bench: a $name generator failed:" >&2
    cat "$work/$name.gen.log" >&2
    return 1
  fi
  "$gen" merge "${files[@]}" >"$work/$name.out"
}

secret=bench-secret-$RANDOM$RANDOM
presence_config() {
  local limit=${connection_limit:-$(( n / servers + n / servers / 10 + 100 ))}
  cat <<EOF
{"token_hmac_secret_key": "$secret", "api_key": "bench-api-key",
 "client_connection_limit": $limit, "admin": false, "redis_on_loop": $redis_on_loop,
 "namespaces": [
  {"name": "group", "presence": true, "join_leave": true,
   "allow_subscribe_for_client": true, "allow_presence_for_subscriber": true,
   "allow_presence_for_client": true},
  {"name": "lobby", "presence": true, "join_leave": false,
   "allow_subscribe_for_client": true, "allow_presence_for_subscriber": true,
   "allow_presence_for_client": true}]}
EOF
}

run_presence() {
  presence_config >"$work/config.json"
  local ports=() spids=() redis_args=() i
  if [ "$servers" -gt 1 ]; then
    command -v redis-server >/dev/null || { echo "server-bench: --servers needs redis-server" >&2; return 1; }
    local rport
    rport=$(free_port)
    redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no \
      >"$work/redis.log" 2>&1 &
    pids+=($!)
    wait_for_line "$work/redis.log" "Ready to accept" "$!"
    # Redis is part of the server side: its memory and CPU are counted.
    spids+=($!)
    redis_args=(--redis "127.0.0.1:$rport" --redis-prefix "bench$RANDOM")
  fi
  for i in $(seq 0 $((servers - 1))); do
    local port name_args=()
    port=$(free_port)
    if [ "$servers" -gt 1 ]; then name_args=(--name "bench-$i"); fi
    PRESENCE_SERVER_STATE_DIR=$work "$server_bin" --config "$work/config.json" \
      --port "$port" "${redis_args[@]}" "${name_args[@]}" >"$work/presence.$i.log" 2>&1 &
    local pid=$!
    pids+=($pid)
    wait_for_line "$work/presence.$i.log" "listening on" "$pid"
    ports+=("$port")
    spids+=("$pid")
  done
  run_generator presence centrifugo "${ports[*]}" "${spids[*]}" --secret "$secret"
  # The servers first, Redis (spids[0] when there is one) last.
  for ((i = ${#spids[@]} - 1; i >= 0; i--)); do stop "${spids[$i]}"; done
}

run_socketio() {
  local peer=${build:-$work}/peer-socketio-server
  if ! cmp -s "$root/bench/peers/socketio-server/package-lock.json" "$peer/package-lock.json" ||
     ! cmp -s "$root/bench/peers/socketio-server/server.js" "$peer/server.js" ||
     [ ! -d "$peer/node_modules" ]; then
    rm -rf "$peer"
    mkdir -p "$peer"
    cp "$root/bench/peers/socketio-server/"{server.js,package.json,package-lock.json} "$peer/"
    (cd "$peer" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  fi
  local port
  port=$(free_port)
  (cd "$peer" && exec node server.js --port "$port") >"$work/socketio.log" 2>&1 &
  local pid=$!
  pids+=($pid)
  wait_for_line "$work/socketio.log" "listening" "$pid"
  run_generator socketio socketio "$port" "$pid"
  stop "$pid"
}

# The ramp's floor on this machine (tcp_floor.c: loopback TCP alone for
# the same exchanges, no server work), in the same run; next to the
# generator when built.
floor_bin=$(dirname "$gen")/tcp-floor
floor_args=(-n $((n < 19000 ? n : 19000)) -w 2000)
[ $after_connect = true ] || floor_args+=(-x 2)
if [ $smoke = 0 ] && [ -x "$floor_bin" ]; then
  "$floor_bin" "${floor_args[@]}" >"$work/floor.out" || rm -f "$work/floor.out"
  # and with the ramp's join pushes (-g: each group's earlier members)
  "$floor_bin" "${floor_args[@]}" -g 10 >"$work/floor-push.out" ||
    rm -f "$work/floor-push.out"
fi

if [ "$only" != socketio ]; then run_presence; fi
if [ "$only" != presence ]; then run_socketio; fi

val() { awk -v k="$2" '$1 == k { print $2; exit }' "$1"; }

# One row: LABEL KEY [FORMAT]; the ratio is presence-server / socket.io.
row() {
  local label=$1 key=$2 a="-" b="-" ratio="-"
  [ -f "$work/presence.out" ] && a=$(val "$work/presence.out" "$key")
  [ -f "$work/socketio.out" ] && b=$(val "$work/socketio.out" "$key")
  if [ "$a" != "-" ] && [ "$b" != "-" ]; then
    ratio=$(awk -v a="$a" -v b="$b" 'BEGIN { if (b + 0 != 0) printf "%.2f", a / b; else print "-" }')
  fi
  printf '%-34s %16s %16s %8s\n' "$label" "$a" "$b" "$ratio"
}

echo
echo "Server workload: N=$n (G=10, L=1000 unless changed after --), churn $churn_percent%/s for $churn_seconds s," \
  "plateau $plateau_seconds s, $shards generator process(es), $servers presence server(s)"
printf '%-34s %16s %16s %8s\n' "" "presence-server" "socket.io" "ratio"
row "connections ready in the ramp" ramp_ready
row "ramp (connections/s)" derived.ramp_per_s
if [ -f "$work/floor.out" ]; then
  floor=$(tr ' ' '\n' <"$work/floor.out" | awk -F= '$1 == "per_second" { print $2 }')
  printf '%-34s %16s %16s %8s\n' "TCP floor of the ramp (conn/s)" "$floor" "-" "-"
  [ -f "$work/presence.out" ] && printf '%-34s %16s %16s %8s\n' "ramp / TCP floor" \
    "$(awk -v a="$(val "$work/presence.out" derived.ramp_per_s)" -v b="$floor" 'BEGIN { printf "%.2f", a / b }')" "-" "-"
fi
if [ -f "$work/floor-push.out" ]; then
  floor=$(tr ' ' '\n' <"$work/floor-push.out" | awk -F= '$1 == "per_second" { print $2 }')
  printf '%-34s %16s %16s %8s\n' "TCP floor with join pushes" "$floor" "-" "-"
  [ -f "$work/presence.out" ] && printf '%-34s %16s %16s %8s\n' "ramp / floor with pushes" \
    "$(awk -v a="$(val "$work/presence.out" derived.ramp_per_s)" -v b="$floor" 'BEGIN { printf "%.2f", a / b }')" "-" "-"
fi
row "ramp failures" derived.ramp_failures
row "connect+2 subscribes p50 (ms)" derived.connect_p50_ms
row "server RSS before (KiB)" rss_before_kb
row "server RSS at plateau (KiB)" rss_plateau_kb
row "bytes per connection" derived.bytes_per_conn
row "server threads at plateau" threads_plateau
row "presence p50 (ms)" derived.presence_p50_ms
row "presence p99 (ms)" derived.presence_p99_ms
row "presence max (ms)" derived.presence_max_ms
row "presence_stats p50 (ms)" derived.presence_stats_p50_ms
row "presence_stats p99 (ms)" derived.presence_stats_p99_ms
row "presence_stats max (ms)" derived.presence_stats_max_ms
row "presence p99, to arrival (ms)" derived.presence_arrival_p99_ms
row "presence_stats p99, to arrival (ms)" derived.presence_stats_arrival_p99_ms
row "calls answered" calls_answered
row "call errors" call_errors
row "join push delay p50 (ms)" derived.join_delay_p50_ms
row "join push delay p99 (ms)" derived.join_delay_p99_ms
row "join push delay max (ms)" derived.join_delay_max_ms
row "join push delay p99, arrivals (ms)" derived.join_delay_arrival_p99_ms
row "group pushes owed and heard" expected
row "pushes lost" lost
row "pushes duplicated" dup
row "pushes nobody expected" unexpected
row "lobby pushes (ignored)" pushes_ignored
row "churn closes (clean)" churn_clean
row "churn closes (TCP drop)" churn_drop
row "churn reopenings failed" derived.churn_failures
row "closed by the server" server_closes
row "groups checked" groups_checked
row "lobbies checked" lobbies_checked
row "ghosts" ghosts
row "missing" missing
row "channels not empty at the end" probe_nonzero
row "server RSS after (KiB)" rss_after_kb
row "RSS left / plateau growth" derived.rss_after_vs_growth
row "server CPU in the ramp (s)" ramp_cpu_server_s
row "generator CPU in the ramp (s)" ramp_cpu_gen_s
row "server CPU in the churn (s)" churn_cpu_server_s
row "generator CPU in the churn (s)" churn_cpu_gen_s
row "server CPU, whole run (s)" total_cpu_server_s
row "generator CPU, whole run (s)" total_cpu_gen_s
row "whole run (s)" total_cpu_wall_s

if [ $smoke = 1 ]; then
  "$gen" merge --strict "$work/presence.out" >/dev/null || {
    echo "server-bench: smoke: lost, duplicated or unexpected pushes, ghosts or leftovers" >&2
    exit 1
  }
  ready=$(val "$work/presence.out" ramp_ready)
  [ "$ready" = "$n" ] || { echo "server-bench: smoke: $ready of $n connections ready" >&2; exit 1; }
  # The kernel's receive times came: each figure to arrival counts what
  # its twin counts, and a reply reaches the kernel before the generator
  # reads it. (A join push's delay between two receipts may exceed the
  # one between two reads, when the subscriber read its reply late.)
  for h in presence presence_stats join_delay; do
    [ -n "$(val "$work/presence.out" "derived.${h}_arrival_count")" ] &&
    [ "$(val "$work/presence.out" "derived.${h}_arrival_count")" = \
      "$(val "$work/presence.out" "derived.${h}_count")" ] || {
      echo "server-bench: smoke: $h timed to arrival a different number of times" >&2
      exit 1
    }
  done
  for h in presence presence_stats; do
    read_max=$(val "$work/presence.out" "derived.${h}_max_ms")
    arrival_max=$(val "$work/presence.out" "derived.${h}_arrival_max_ms")
    awk -v a="$arrival_max" -v r="$read_max" 'BEGIN { exit !(a <= r) }' || {
      echo "server-bench: smoke: $h to arrival $arrival_max ms above $read_max ms" >&2
      exit 1
    }
  done
  echo "server-bench: smoke passed"
fi
