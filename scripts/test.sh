#!/usr/bin/env bash
# The project's test command (README, .ci/run): installs what is missing,
# then builds and runs every suite: the cmocka suites in a plain -Werror
# build, again under AddressSanitizer+UBSan, the unit suites under UBSan
# alone, the concurrency suite under ThreadSanitizer, the fuzzers for a bounded time, the cluster tests
# (nodes in separate processes on a real redis-server, plain and under the
# sanitizers), the presence server's end-to-end tests, its admin page in
# headless Chromium, and a shorter load test of the server (plain, and
# under the sanitizers).
# Any failure stops it with a non-zero exit.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh test

setup() { # setup DIR [meson options...]
  local dir=$1; shift
  if [ -d "$dir" ]; then
    meson setup --reconfigure "$dir" "$@" >/dev/null
  else
    meson setup "$dir" "$@" >/dev/null
  fi
  meson compile -C "$dir"
}

step() { printf '\n==== %s ====\n' "$*"; }

step "plain build (-Werror), all suites"
setup build-test --werror -Dbuildtype=debugoptimized -Dpresence_server=enabled \
  -Dcluster=enabled
meson test -C build-test -v --print-errorlogs --no-rebuild

step "AddressSanitizer + UndefinedBehaviorSanitizer"
setup build-asan --werror -Dbuildtype=debug -Db_sanitize=address,undefined \
  -Db_lundef=false -Dbench=false -Dpresence_server=enabled -Dcluster=enabled
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  meson test -C build-asan -v --print-errorlogs --no-rebuild

step "UndefinedBehaviorSanitizer alone, unit suites (the record pools and slab in use)"
# Under AddressSanitizer every pooled record is allocated alone
# (src/containers/pool.c), so the pools' placement, alignment included,
# is checked here.
setup build-ubsan --werror -Dbuildtype=debug -Db_sanitize=undefined \
  -Db_lundef=false -Dbench=false -Dexamples=false
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  meson test -C build-ubsan -v --print-errorlogs --no-rebuild --suite unit

step "ThreadSanitizer, concurrency suite"
setup build-tsan --werror -Dbuildtype=debug -Db_sanitize=thread \
  -Db_lundef=false -Dbench=false -Dexamples=false
TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
  meson test -C build-tsan -v --print-errorlogs --no-rebuild --suite threads

step "libFuzzer: API sequences against the reference model (60 s)"
scripts/fuzz.sh api-sequence 60

step "libFuzzer: the presence server's frames and commands (60 s)"
scripts/fuzz.sh server-frames 60

step "libFuzzer: the presence server's config loader (30 s)"
scripts/fuzz.sh server-config 30

step "libFuzzer: the saved-state loader (30 s)"
scripts/fuzz.sh registry-load 30

step "libFuzzer: the presence server's WebSocket frame parser (30 s)"
scripts/fuzz.sh server-ws-frames 30

step "libFuzzer: the presence server's HTTP/1.1 code on a real connection (30 s)"
scripts/fuzz.sh server-http 30

step "libFuzzer: the cluster's wire decoder (20 s)"
scripts/fuzz.sh cluster-ops 20

step "cluster: nodes in separate processes on a real redis-server"
scripts/cluster-test.sh build-test

step "cluster under ASan+UBSan"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  scripts/cluster-test.sh build-asan

step "presence server end-to-end tests (node, real centrifuge SDK; two servers on redis-server)"
PRESENCE_E2E_REQUIRE_REDIS=1 scripts/e2e-test.sh build-test

step "presence server admin page in headless Chromium (playwright-core), plain and under ASan+UBSan"
scripts/browser-test.sh build-test
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  scripts/browser-test.sh build-asan

step "presence server load test: 10000 connections, 20 s of churn"
scripts/load-test.sh --build build-test --connections 10000 --seconds 20 --rate 150

step "presence server load test under ASan+UBSan: 200 connections, 15 s"
scripts/load-test.sh --build build-asan --sanitizer \
  --connections 200 --seconds 15 --rate 80

step "all test suites passed"
