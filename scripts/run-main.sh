#!/usr/bin/env bash
# The main job on the model shipped in the repo: inspect it, convert it to a
# moec container, evaluate the container's perplexity on the Brown test split,
# generate from it, and export it back to a Hugging Face folder.
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
$moec eval "$out/tiny-mixtral-brown.h5" --text data/brown/brown.test.txt --ctx 256 --routing
$moec generate "$out/tiny-mixtral-brown.h5" --prompt "The Fulton County Grand Jury said" -n 48
$moec export "$out/tiny-mixtral-brown.h5" -o "$out/tiny-mixtral-brown-hf" --force
