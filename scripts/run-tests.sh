#!/usr/bin/env bash
# Builds and runs the whole test suite: the release build with every test
# (GPU tests skip without a device; the SIGKILL crash-safety test and the fuzz
# corpus replays included), then a clang build with AddressSanitizer + UBSan
# (leaks included) and libFuzzer coverage, in which the malformed-input,
# server and fuzz-corpus tests run again and every fuzz target is fuzzed for
# a few seconds (scripts/fuzz.sh; 8 targets × 6 s).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
ctest --test-dir build --output-on-failure -j"$(nproc)"
MOEC_BUILD_DIR=build-asan MOEC_BUILD_TARGETS=sanitizer_suite bash scripts/build.sh -DMOEC_FUZZ=ON -DMOEC_CUDA=OFF -DCMAKE_BUILD_TYPE=Debug \
  -DCMAKE_CXX_FLAGS_DEBUG="-g -O1" -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_C_COMPILER=clang
# allocator_may_return_null: libhdf5 asks for absurd buffers (tens of TB) on
# some damaged files in the corpus and handles the failure, as it does
# without ASan; moec's own code never gets that far (io/limits.h).
ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 LSAN_OPTIONS=suppressions=$PWD/tests/fuzz/lsan.supp \
  ctest --test-dir build-asan --output-on-failure -j"$(nproc)" -L 'malformed|serve|fuzz'
MOEC_BUILD_DIR=build-asan bash scripts/fuzz.sh --seconds 6 --seed 1
