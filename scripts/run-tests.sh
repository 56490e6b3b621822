#!/usr/bin/env bash
# Builds and runs the whole test suite: the release build with every test
# (GPU tests skip without a device), then the malformed-input and server tests
# again under AddressSanitizer + UBSan (leaks included).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
ctest --test-dir build --output-on-failure -j"$(nproc)"
MOEC_BUILD_DIR=build-asan bash scripts/build.sh -DMOEC_SANITIZE=ON -DMOEC_CUDA=OFF -DCMAKE_BUILD_TYPE=Debug
ASAN_OPTIONS=detect_leaks=1 ctest --test-dir build-asan --output-on-failure -j"$(nproc)" -L 'malformed|serve'
