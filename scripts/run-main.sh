#!/usr/bin/env bash
# The main job on the model shipped in the repo: inspect it, convert it to a
# moec container, inspect the container, export it back to a Hugging Face folder.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
model=models/tiny-mixtral-brown
out=${MOEC_OUT:-out}
mkdir -p "$out"
moec=build/apps/moec
set -x
$moec inspect "$model"
$moec convert "$model" -o "$out/tiny-mixtral-brown.h5" --force
$moec inspect "$out/tiny-mixtral-brown.h5"
$moec export "$out/tiny-mixtral-brown.h5" -o "$out/tiny-mixtral-brown-hf" --force
