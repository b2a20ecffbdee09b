#!/usr/bin/env bash
# Builds the libFuzzer targets with clang and runs one for a while:
#   tests/fuzz/run.sh appspec|spec|step|unpack|proof [SECONDS] [libFuzzer options...]
# New inputs go to build-fuzz/corpus/fuzz_<name> (seeded from the committed
# corpus); merge the interesting ones back with
#   build-fuzz/fuzz/fuzz_<name> -merge=1 tests/fuzz/corpus/fuzz_<name> build-fuzz/corpus/fuzz_<name>
set -euo pipefail
cd "$(dirname "$0")/../.."
name=${1:?usage: run.sh appspec|spec|step|unpack|proof [SECONDS]}
secs=${2:-600}
shift $(( $# > 1 ? 2 : 1 ))
command -v clang >/dev/null || { echo "run.sh: clang is needed for libFuzzer" >&2; exit 2; }
CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKD_FUZZ=ON \
  -DCMAKE_C_FLAGS="-fsanitize=fuzzer-no-link,address -fno-omit-frame-pointer" >/dev/null
cmake --build build-fuzz -j2 --target "fuzz_$name" >/dev/null
corpus=build-fuzz/corpus/fuzz_$name
mkdir -p "$corpus" build-fuzz/tmp
cp -n tests/fuzz/corpus/"fuzz_$name"/* "$corpus"/ 2>/dev/null || true
export KD_TEST_TMP=$PWD/build-fuzz/tmp
exec build-fuzz/fuzz/"fuzz_$name" -max_total_time="$secs" -max_len=65536 -timeout=10 \
  -rss_limit_mb=2048 -print_final_stats=1 "$@" "$corpus"
