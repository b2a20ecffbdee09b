#!/usr/bin/env bash
# The test command: configure, build and run every test with ctest.
#   ./test.sh                 build in ./build and run all tests
#   KD_BUILD_DIR=dir KD_CMAKE_FLAGS="-DKD_SANITIZE=ON" ./test.sh
set -euo pipefail
cd "$(dirname "$0")"
build=${KD_BUILD_DIR:-build}
# shellcheck disable=SC2086
cmake -S . -B "$build" ${KD_CMAKE_FLAGS:-} >/dev/null
cmake --build "$build" -j "$(nproc)"
cd "$build"
# Nothing sized by input may live on the stack: the suite runs with a small
# stack (threads get the same), where an input-sized array would overflow.
ulimit -s 1024
ctest --output-on-failure --timeout 300 "$@"
