#!/usr/bin/env bash
# Configures and builds moec in build/ (or $MOEC_BUILD_DIR). Extra arguments go
# to cmake. $MOEC_BUILD_TARGETS (space-separated) builds only those targets.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${MOEC_BUILD_DIR:-build}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
targets=()
[ -n "${MOEC_BUILD_TARGETS:-}" ] && read -ra targets <<<"$MOEC_BUILD_TARGETS"
cmake --build "$build" -j"$(nproc)" ${targets[@]:+--target "${targets[@]}"}
