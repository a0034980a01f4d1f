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

label=browser-test
. "$(dirname "$0")/lib/node-server.sh" "$@"
chromium=${CHROMIUM:-$(command -v chromium || true)}
if [ -z "$chromium" ] || [ ! -x "$chromium" ]; then
  echo "browser-test: no chromium (Debian: apt-get install chromium, or scripts/install-deps.sh test)" >&2
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
