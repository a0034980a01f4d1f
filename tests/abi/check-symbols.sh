#!/usr/bin/env bash
# The shared library must export exactly the functions that presence.h
# declares with PRESENCE_API, and the version script must list the same.
set -euo pipefail
lib=$1 header=$2 map=$3
# The name is the last word before the parenthesis (a return type may be
# one of the library's own, such as presence_requester).
declared=$(tr '\n' ' ' < "$header" | grep -o 'PRESENCE_API[^(;]*(' | sed -nE 's/.*[^a-z0-9_](presence_[a-z0-9_]+) *\($/\1/p' | sort -u)
exported=$(nm -D --defined-only "$lib" | awk '$2 == "T" { sub(/@.*/, "", $3); print $3 }' | sort -u)
listed=$(grep -o '^ *presence_[a-z0-9_]*;' "$map" | tr -d ' ;' | sort -u)
status=0
if [ "$declared" != "$exported" ]; then
  echo "exported symbols differ from the header:"; diff <(echo "$declared") <(echo "$exported") || true; status=1
fi
if [ "$declared" != "$listed" ]; then
  echo "version script differs from the header:"; diff <(echo "$declared") <(echo "$listed") || true; status=1
fi
[ $status -eq 0 ] && echo "1 passed, 0 failed: $(echo "$declared" | wc -l) symbols exported, as declared"
exit $status
