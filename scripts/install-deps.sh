#!/usr/bin/env bash
# Install what the demo or the tests need, from Debian's archive, when it
# is missing. Safe to run again: it installs nothing that is there.
#   scripts/install-deps.sh [demo|test]     (default: test)
set -euo pipefail

packages=(
  gcc pkg-config meson ninja-build   # the build
  uthash-dev                         # the core library's one dependency
  libcmocka-dev                      # unit tests (built by default)
  libjansson-dev libjwt-dev          # the presence server example
  libhttp-parser-dev nettle-dev      # its HTTP and WebSocket handshake (on libuv)
  libhiredis-dev                     # libpresence-cluster (Redis)
  libuv1-dev                         # the presence server's event loop, the libuv example
  libssl-dev                         # bench/server-load: HS256 tokens (libcrypto)
  curl                               # the demo's curl line
)
if [ "${1:-test}" = test ]; then
  packages+=(
    g++                              # the header compiled as C++
    nodejs npm                       # end-to-end tests with the real JS SDK
    clang libclang-rt-14-dev         # libFuzzer
    time                             # peak memory figures
    redis-server redis-tools         # the cluster tests start their own
    chromium fonts-dejavu-core       # the admin page's browser tests
  )
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    # node may come from outside Debian's archive: accept a working one.
    case "$p" in
      nodejs) command -v node >/dev/null && continue ;;
      npm) command -v npm >/dev/null && continue ;;
    esac
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  sudo_cmd=""
  if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo_cmd apt-get update -qq
  $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
