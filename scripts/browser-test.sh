#!/usr/bin/env bash
# The presence server's admin page in a real headless Chromium:
#
#   scripts/browser-test.sh BUILD_DIR
#
# BUILD_DIR is a meson build directory in which the presence server was
# built. Installs playwright-core from the committed lockfile (npm ci; it
# downloads no browser) and runs tests/browser with node's test runner
# against Debian's chromium ($CHROMIUM picks another). Screenshots are
# kept in BUILD_DIR/admin-screenshots. Needs node >= 20.
set -euo pipefail

if [ $# -ne 1 ]; then
  echo "usage: $0 BUILD_DIR" >&2
  exit 2
fi
root=$(cd "$(dirname "$0")/.." && pwd)
build_dir=$(cd "$1" && pwd)
server=${PRESENCE_SERVER:-$build_dir/examples/presence-server/presence-server}
if [ ! -x "$server" ]; then
  echo "browser-test: no presence server at $server (build it with -Dpresence_server=enabled)" >&2
  exit 1
fi
chromium=${CHROMIUM:-$(command -v chromium || true)}
if [ -z "$chromium" ] || [ ! -x "$chromium" ]; then
  echo "browser-test: no chromium (Debian: apt-get install chromium, or scripts/install-deps.sh test)" >&2
  exit 1
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "browser-test: node and npm are needed" >&2
  exit 1
fi

export PRESENCE_SERVER=$server
export CHROMIUM=$chromium
export ADMIN_SCREENSHOTS=$build_dir/admin-screenshots
rm -rf "$ADMIN_SCREENSHOTS"
cd "$root/tests/browser"
npm ci --no-audit --no-fund --loglevel=error
node --test
echo "browser-test: screenshots in $ADMIN_SCREENSHOTS"
