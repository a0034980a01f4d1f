#!/usr/bin/env bash
# Every way presence-bench can run the workload must agree: the same
# checksum line (clients, users, members listed, bytes) by name, through
# handles, closing one at a time, on a thread-safe registry, reading with
# presence_visit, with a change log, in shuffled orders and with the heap
# prefaulted. Each run also checks itself (the registry empty after the
# leave); a small workload, so that this is a test, not a benchmark.
#
#   bench/check-modes.sh PRESENCE_BENCH
set -euo pipefail
bench=$1
args=(3000 300 5 2 32)
want=$("$bench" "${args[@]}" 2>/dev/null | grep '^checksum')
[ -n "$want" ] || { echo "no checksum line from $bench" >&2; exit 1; }
echo "by name: $want"
fail=0
for mode in "--handles" "--handles --close-batch 1" "--handles --close-batch 7" \
            "--threaded" "--query-visit" "--threaded --query-visit" \
            "--history 16" "--loop-clock" "--shuffle" \
            "--handles --shuffle" "--handles --close-batch 1 --shuffle" \
            "--prefault 16"; do
  # shellcheck disable=SC2086
  got=$("$bench" $mode "${args[@]}" 2>/dev/null | grep '^checksum') || got=""
  if [ "$got" = "$want" ]; then
    echo "ok   $mode"
  else
    echo "FAIL $mode: ${got:-no checksum line}"
    fail=1
  fi
done
exit $fail
