#!/usr/bin/env bash
# The main job on the model shipped in the repo: inspect it, convert it to a
# moec container, quantize its experts to ternary with GPTQ (calibration: the
# Brown train split), inspect and evaluate both on the Brown test split,
# generate from the quantized model; quantize again into the sub-1-bit sub1
# code with QMoE's GPTQ settings, inspect, evaluate and generate from it,
# benchmark its kernels (and Mixtral-shaped synthetic ones) against dense
# products; export the lossless container back to a Hugging Face folder;
# distill the model into a dense student and evaluate it.
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
$moec eval "$out/tiny-mixtral-brown.h5" --text data/brown/brown.test.txt --ctx 256
$moec quantize "$model" -o "$out/tiny-mixtral-brown.ternary.h5" --bits ternary --method gptq \
  --calib data/brown/brown.train.txt --calib-windows 128 --ctx 256 --force
$moec inspect "$out/tiny-mixtral-brown.ternary.h5"
$moec eval "$out/tiny-mixtral-brown.ternary.h5" --text data/brown/brown.test.txt --ctx 256 --routing
$moec generate "$out/tiny-mixtral-brown.ternary.h5" --prompt "The Fulton County Grand Jury said" -n 48
$moec quantize "$model" -o "$out/tiny-mixtral-brown.sub1.h5" --bits ternary --code sub1 --method gptq \
  --damp 0.1 --no-act-order --calib data/brown/brown.train.txt --calib-windows 128 --ctx 256 --force
$moec inspect "$out/tiny-mixtral-brown.sub1.h5"
$moec eval "$out/tiny-mixtral-brown.sub1.h5" --text data/brown/brown.test.txt --ctx 256
$moec generate "$out/tiny-mixtral-brown.sub1.h5" --prompt "The Fulton County Grand Jury said" -n 48
$moec bench sub1 "$out/tiny-mixtral-brown.sub1.h5"
$moec bench kernels --model "$out/tiny-mixtral-brown.sub1.h5"
$moec export "$out/tiny-mixtral-brown.h5" -o "$out/tiny-mixtral-brown-hf" --force
# Distill the model into a dense Mistral student of width 1024 (a short run:
# scripts/distill-report.sh runs the full one) and evaluate the student.
$moec distill "$model" -o "$out/tiny-mistral-distilled" --width 1024 --calib data/brown/brown.train.txt \
  --calib-windows 128 --layer-windows 64 --layer-epochs 2 --force
$moec eval "$out/tiny-mistral-distilled" --text data/brown/brown.test.txt --ctx 256
# Serve the sub1 model over HTTP (OpenAI completions API) on a free port,
# query it with curl (one answer, one stream), show its metrics, stop it.
set +x
$moec serve "$out/tiny-mixtral-brown.sub1.h5" --port 0 --threads 2 2> "$out/serve.log" &
server=$!
for _ in $(seq 300); do grep -q "ready" "$out/serve.log" && break; sleep 0.1; done
cat "$out/serve.log"
url=$(sed -n 's/.*listening on \(http:[^ ]*\).*/\1/p' "$out/serve.log")
set -x
curl -sS "$url/v1/completions" -H 'Content-Type: application/json' \
  -d '{"prompt": "The Fulton County Grand Jury said", "max_tokens": 32, "temperature": 0}'
echo
curl -sSN "$url/v1/completions" -H 'Content-Type: application/json' \
  -d '{"prompt": "The Fulton County Grand Jury said", "max_tokens": 8, "temperature": 0, "stream": true}'
curl -sS "$url/metrics" | grep -E '^moec_(requests_total|generated_tokens_total|prompt_tokens_total)'
kill -TERM "$server"
wait "$server"
