#!/usr/bin/env bash
# The distillation table of README.md: the shipped model A (the teacher), A
# merged to 2 experts per layer (dense-equivalent width 1024) with
# merge-cluster and merge-aligned, and A distilled into a dense student of
# width 1024: layer-wise stage only (expert-neuron and random initializations),
# then with end-to-end distillation. All
# evaluated on the Brown test split (ctx 256), measured in one run; the
# distillation's curve (validation perplexity vs tokens) is printed after the
# table. Needs a build. THREADS (default 2) sets the worker threads.
set -euo pipefail
cd "$(dirname "$0")/.."
moec=build/apps/moec
model=${MODEL:-models/tiny-mixtral-brown}
out=${MOEC_OUT:-out/distill-report}
threads=${THREADS:-2}
train=data/brown/brown.train.txt
mkdir -p "$out"
field() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$@"; }
eval_json() { $moec eval "$1" --text data/brown/brown.test.txt --ctx 256 --threads "$threads" --json > "$2"; }
row() {  # name, checkpoint, stage report JSON (or -), parameters
  eval_json "$2" "$out/eval.json"
  local ppl seconds rss
  ppl=$(field "$out/eval.json" '"%.2f" % d["ppl"]')
  if [ "$3" = - ]; then seconds=-; rss=-; else
    seconds=$(field "$3" '"%.0f" % d["seconds"]')
    rss=$(field "$3" '"%.0f" % ((d.get("peak_rss_bytes") or d["memory"]["peak_rss_bytes"]) / 2**20)')
  fi
  echo "| $1 | $4 | $ppl | $seconds | $rss |"
}
echo "| model | parameters | Brown test ppl (ctx 256) | time s | peak MiB |"
echo "|---|---|---|---|---|"
row "A (teacher: 8 experts, top-2)" "$model" - 15,345,920
for method in merge-cluster merge-aligned; do
  $moec merge "$model" -o "$out/$method" --experts 2 --method $method --calib $train --threads "$threads" \
    --force --json > "$out/$method.json"
  row "A merged to 2 experts ($method)" "$out/$method" "$out/$method.json" \
    "$(field "$out/$method.json" 'format(d["params_after"], ",")')"
done
common=(--width 1024 --calib $train --calib-windows ${WINDOWS:-1000} --threads "$threads" --force --json -q)
$moec distill "$model" -o "$out/layerwise" "${common[@]}" --steps 0 > "$out/layerwise.json"
row "distilled, layer-wise only" "$out/layerwise" "$out/layerwise.json" \
  "$(field "$out/layerwise.json" 'format(d["student_params"], ",")')"
$moec distill "$model" -o "$out/random" "${common[@]}" --steps 0 --init random > "$out/random.json"
row "distilled, layer-wise only, random init" "$out/random" "$out/random.json" \
  "$(field "$out/random.json" 'format(d["student_params"], ",")')"
$moec distill "$model" -o "$out/distilled" "${common[@]}" > "$out/distilled.json"
row "distilled, layer-wise + end-to-end" "$out/distilled" "$out/distilled.json" \
  "$(field "$out/distilled.json" 'format(d["student_params"], ",")')"
echo
for init in layerwise random; do
  echo "$init: validation ppl at init $(field "$out/$init.json" '"%.2f" % d["stages"][0]["validation_ppl"]')," \
    "after stage 1 $(field "$out/$init.json" '"%.2f" % d["stages"][1]["validation_ppl"]')"
done
echo "end-to-end curve (training tokens: validation ppl):" \
  "$(field "$out/distilled.json" '" ".join("%d: %.2f" % (p["tokens"], p["validation_ppl"]) for p in d["curve"])')"
