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

label=e2e
. "$(dirname "$0")/lib/node-server.sh" "$@"
export PRESENCE_BUILD_DIR=$build_dir
export PRESENCE_SERVER=$server
cd "$root/tests/e2e"
npm ci --no-audit --no-fund --loglevel=error
exec node --test
