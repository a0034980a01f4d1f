#!/usr/bin/env bash
# The cluster tests: three presence-cluster-node processes and a real
# redis-server (started by the tests on a free loopback port, without
# persistence) -- convergence after random churn, kill -9 of a node,
# redis-server restarted mid-churn, SIGSTOP/SIGCONT past the lease:
#
#   scripts/cluster-test.sh BUILD_DIR [node --test arguments...]
#
# BUILD_DIR is a meson build directory configured with the cluster feature
# (hiredis found): BUILD_DIR/tests/cluster/presence-cluster-node. Needs node
# >= 20 and redis-server (Debian: apt-get install nodejs redis-server).
# The churn is seeded; each test prints its seed, and CLUSTER_TEST_SEED=N
# replays it. The test files run one at a time, since they measure timing
# bounds. The node program is brought up to date first (meson compile of
# that one target; CLUSTER_NO_BUILD=1 skips it). Exits non-zero when a test
# fails.
set -euo pipefail

if [ $# -lt 1 ]; then
  echo "usage: $0 BUILD_DIR [node --test arguments...]" >&2
  exit 2
fi
root=$(cd "$(dirname "$0")/.." && pwd)
build_dir=$(cd "$1" && pwd)
shift
node_bin=${PRESENCE_CLUSTER_NODE:-$build_dir/tests/cluster/presence-cluster-node}
if [ -z "${PRESENCE_CLUSTER_NODE:-}" ] && [ -z "${CLUSTER_NO_BUILD:-}" ] &&
   [ -f "$build_dir/build.ninja" ] && grep -q presence-cluster-node "$build_dir/build.ninja"; then
  meson compile -C "$build_dir" tests/cluster/presence-cluster-node >/dev/null
fi
if [ ! -x "$node_bin" ]; then
  echo "cluster-test: no presence-cluster-node at $node_bin (is hiredis installed? meson compile -C $build_dir)" >&2
  exit 1
fi
if ! command -v node >/dev/null; then
  echo "cluster-test: node is needed (Debian: apt-get install nodejs)" >&2
  exit 1
fi
major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 20 ]; then
  echo "cluster-test: node >= 20 is needed, found $(node --version)" >&2
  exit 1
fi
if ! command -v "${REDIS_SERVER:-redis-server}" >/dev/null; then
  echo "cluster-test: redis-server is needed (Debian: apt-get install redis-server)" >&2
  exit 1
fi

export PRESENCE_BUILD_DIR=$build_dir
export PRESENCE_CLUSTER_NODE=$node_bin
cd "$root/tests/cluster"
files=(*.test.js)
# node runs test files in parallel unless told otherwise; one at a time
# keeps the timing bounds honest (--test-concurrency: node >= 20.10).
if node -e 'const [a, b] = process.versions.node.split(".").map(Number);
            process.exit(a > 20 || (a === 20 && b >= 10) ? 0 : 1)'; then
  node --test --test-concurrency=1 "$@" "${files[@]}"
  exit
fi
status=0
for f in "${files[@]}"; do
  node --test "$@" "$f" || status=1
done
exit $status
