#!/usr/bin/env bash
# Merges the shipped model's experts with every method to K = 6, 4, 2 per
# layer (calibration: 32 windows of the Brown train split) and evaluates each
# on the Brown test split, printing a Markdown table. Needs a build.
set -euo pipefail
cd "$(dirname "$0")/.."
moec=build/apps/moec
model=${MODEL:-models/tiny-mixtral-brown}
out=${MOEC_OUT:-out/merge-report}
mkdir -p "$out"
ppl() { $moec eval "$1" --text data/brown/brown.test.txt --json | python3 -c 'import json,sys; print("%.2f" % json.load(sys.stdin)["ppl"])'; }
echo "| K | method | perplexity | parameters | model.safetensors bytes |"
echo "|---|---|---|---|---|"
echo "| 8 | (original) | $(ppl $model) | 15,345,920 | $(stat -c %s $model/model.safetensors) |"
for k in 6 4 2; do
  for method in prune-freq prune-search merge-freq merge-aligned merge-cluster; do
    dir="$out/k$k-$method"
    params=$($moec merge $model -o "$dir" --experts $k --method $method --calib data/brown/brown.train.txt --force --json |
             python3 -c 'import json,sys; print(format(json.load(sys.stdin)["params_after"], ","))')
    echo "| $k | $method | $(ppl "$dir") | $params | $(stat -c %s "$dir/model.safetensors") |"
  done
done
