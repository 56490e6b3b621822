#!/usr/bin/env bash
# Regenerates the fuzz targets' seed corpora, tests/fuzz/corpus/<target>/seed-*,
# with moec's own writers (tests/fuzz/make_seeds.cpp). Files found by fuzzing
# (tests/fuzz/corpus/<target>/regress-*) are kept. Commit the result.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${MOEC_BUILD_DIR:-build}
bash scripts/build.sh >/dev/null
cmake --build "$build" --target make_fuzz_seeds >/dev/null
corpus=tests/fuzz/corpus
find "$corpus" -name 'seed-*' -delete 2>/dev/null || true
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
"$build/tests/fuzz/make_fuzz_seeds" "$corpus" "$scratch"
for d in "$corpus"/*/; do
  printf '%-16s %3d files %8d bytes\n' "$(basename "$d")" "$(find "$d" -type f | wc -l)" "$(cat "$d"/* | wc -c)"
done
