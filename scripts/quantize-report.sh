#!/usr/bin/env bash
# Quantizes the shipped model with every method and grid of `moec quantize`
# and evaluates each on the Brown test split (ctx 256, calibration: 128
# windows of the train split), printing a Markdown table. Needs a build.
set -euo pipefail
cd "$(dirname "$0")/.."
moec=build/apps/moec
model=${MODEL:-models/tiny-mixtral-brown}
out=${MOEC_OUT:-out/quantize-report}
mkdir -p "$out"
text=data/brown/brown.test.txt
calib=data/brown/brown.train.txt
ppl() { $moec eval "$1" --text $text --json | python3 -c 'import json,sys; print("%.2f" % json.load(sys.stdin)["ppl"])'; }
echo "| experts | method (gptq: --no-act-order; gptq-act: --act-order, the default) | perplexity | bits/weight (experts) | bits/weight (file) | zero codes | quantize time |"
echo "|---|---|---|---|---|---|---|"
echo "| bf16 (baseline) | - | $(ppl $model) | 16.000 | 16.04 | - | - |"
for method in rtn gptq gptq-act; do
  for spec in "4 128" "3 128" "2 128" "ternary qmoe" "ternary sym" "ternary sub1"; do
    set -- $spec
    if [ "$2" = sub1 ]; then flags="--bits ternary --code sub1"; name="sub1"
    elif [ "$1" = ternary ]; then flags="--bits ternary --ternary $2"; name="ternary-$2"
    else flags="--bits $1 --group $2"; name="q$1g$2"; fi
    file="$out/$name-$method.h5"
    extra="--method ${method%-act} --no-act-order"; [ "$method" = gptq-act ] && extra="--method gptq --act-order"
    $moec quantize $model -o "$file" $flags $extra --calib $calib --force --json > "$file.json"
    read -r bpw fbpw zeros secs < <(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("%.3f %.3f %s %.1f" % (r["expert_bits_per_weight"], r["file_bits_per_weight"], ("%.1f%%" % (100*r["zero_fraction"])) if "zero_fraction" in r else "-", r["seconds"]))' "$file.json")
    echo "| $name | $method | $(ppl "$file") | $bpw | $fbpw | $zeros | ${secs} s |"
  done
done
