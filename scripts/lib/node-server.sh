# Sourced (with the script's arguments and $label set) by the scripts that
# drive the presence server from node's test runner: takes BUILD_DIR, sets
# root, build_dir and server (PRESENCE_SERVER overrides), and checks that
# node >= 20 and npm are there; otherwise says why and exits.
if [ $# -ne 1 ]; then
  echo "usage: $0 BUILD_DIR" >&2
  exit 2
fi
root=$(cd "$(dirname "$0")/.." && pwd)
build_dir=$(cd "$1" && pwd)
server=${PRESENCE_SERVER:-$build_dir/examples/presence-server/presence-server}
if [ ! -x "$server" ]; then
  echo "$label: no presence server at $server (build it with -Dpresence_server=enabled)" >&2
  exit 1
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "$label: node and npm are needed (Debian: apt-get install nodejs npm)" >&2
  exit 1
fi
if [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
  echo "$label: node >= 20 is needed, found $(node --version)" >&2
  exit 1
fi
