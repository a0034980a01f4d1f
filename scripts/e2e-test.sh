#!/usr/bin/env bash
# End-to-end tests of the presence server with the real centrifuge JS SDK:
#
#   scripts/e2e-test.sh BUILD_DIR
#
# BUILD_DIR is a meson build directory in which the presence server was
# built (BUILD_DIR/examples/presence-server/presence-server). Installs the
# test's npm packages from the committed lockfile (npm ci), then runs node's
# test runner; exits non-zero when a test fails. Needs node >= 20.
set -euo pipefail

if [ $# -ne 1 ]; then
  echo "usage: $0 BUILD_DIR" >&2
  exit 2
fi
root=$(cd "$(dirname "$0")/.." && pwd)
build_dir=$(cd "$1" && pwd)
server=${PRESENCE_SERVER:-$build_dir/examples/presence-server/presence-server}
if [ ! -x "$server" ]; then
  echo "e2e: no presence server at $server (build it with -Dpresence_server=enabled)" >&2
  exit 1
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "e2e: node and npm are needed (Debian: apt-get install nodejs npm)" >&2
  exit 1
fi
major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 20 ]; then
  echo "e2e: node >= 20 is needed, found $(node --version)" >&2
  exit 1
fi

export PRESENCE_BUILD_DIR=$build_dir
export PRESENCE_SERVER=$server
cd "$root/tests/e2e"
npm ci --no-audit --no-fund --loglevel=error
exec node --test
