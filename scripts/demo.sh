#!/usr/bin/env bash
# The demo: builds libpresence and its presence server, then starts the
# server in the foreground on the embedded default config (namespace
# "public" with presence and join/leave), printing a ready curl line.
#
#   scripts/demo.sh [presence-server options, e.g. --port 8001]
#
# On a fresh Debian machine it first installs what is missing with apt-get
# (as root, or through sudo). BUILD_DIR (default ./build) picks the build
# directory. Stop the server with Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh demo >&2

build_dir=${BUILD_DIR:-build}
if [ ! -f "$build_dir/build.ninja" ]; then
  meson setup "$build_dir" -Dpresence_server=enabled >&2
else
  # An existing build dir may have been set up without the server.
  meson setup --reconfigure "$build_dir" -Dexamples=true -Dpresence_server=enabled >&2
fi
meson compile -C "$build_dir" presence-server >&2

server="$build_dir/examples/presence-server/presence-server"
if [ ! -x "$server" ]; then
  echo "demo: $server was not built (is the presence_server option disabled in $build_dir?)" >&2
  exit 1
fi
exec "$server" "$@"
