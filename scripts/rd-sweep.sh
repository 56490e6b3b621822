#!/usr/bin/env bash
# Rate–distortion sweep on the shipped model (docs/rate-distortion.md):
# quantizes it at every point of a grid — packed k-bit and ternary codes,
# sub1 with QMoE's settings and with act-order, rate-aware sub1 over a range
# of --rate-lambda and --target-bits, each non-expert choice — evaluates each
# on the Brown test split (ctx 256; calibration 128 windows × 256 tokens of
# the train split) and writes one CSV row per point. Then draws the plot
# (scripts/rd-plot.py) when Debian's python3-matplotlib is there.
#
#   bash scripts/rd-sweep.sh [--quick]     (--quick: a handful of points, for a look)
#
# Needs a build (bash scripts/build.sh). MODEL, MOEC_OUT override the model
# and the output folder (default out/rd); the CSV is $MOEC_OUT/rd.csv.
set -euo pipefail
cd "$(dirname "$0")/.."
moec=build/apps/moec
model=${MODEL:-models/tiny-mixtral-brown}
out=${MOEC_OUT:-out/rd}
text=data/brown/brown.test.txt
calib=data/brown/brown.train.txt
quick=0
[ "${1:-}" = --quick ] && quick=1
[ -x $moec ] || { echo "rd-sweep: $moec missing: run bash scripts/build.sh first" >&2; exit 1; }
mkdir -p "$out"
csv="$out/rd.csv"
tmp_csv="$csv.tmp"

# Reads a quantize report and an eval report (JSON), prints the CSV fields.
row() {
  python3 - "$@" <<'EOF'
import json, sys
name, group, flags, qfile, efile, base = sys.argv[1:7]
q = json.load(open(qfile)) if qfile != "-" else None
e = json.load(open(efile))
base = float(base) if base != "-" else e["ppl"]
def lam(r):
    ls = [l.get("rate_lambda") for l in r.get("layers", []) if "rate_lambda" in l]
    return "%.4g" % (sum(ls) / len(ls)) if ls else "0"
if q is None:
    fields = [name, group, flags, "16", "%.4f" % e.get("file_bits_per_weight", 16), "16", "0", "0",
              "%.3f" % e["ppl"], "0.00", "0"]
else:
    fields = [name, group, flags, "%.4f" % q["expert_bits_per_weight"], "%.4f" % q["file_bits_per_weight"],
              "%.4f" % q.get("non_expert_bits_per_weight", 16.0), "%.4f" % q.get("zero_fraction", 0), lam(q),
              "%.3f" % e["ppl"], "%.2f" % (100 * (e["ppl"] / base - 1)), "%.1f" % q["seconds"]]
print(",".join('"%s"' % f if "," in f or " " in f else f for f in fields))
EOF
}

echo "name,group,flags,expert_bits,file_bits,non_expert_bits,zero_fraction,mean_lambda,ppl,ppl_increase_pct,quantize_seconds" > "$tmp_csv"
start=$(date +%s)
$moec eval "$model" --text $text --json > "$out/bf16.eval.json"
base=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["ppl"])' "$out/bf16.eval.json")
# The file's bits per weight for the bf16 folder: bytes of its safetensors over its parameters.
python3 - "$model" "$out/bf16.eval.json" <<'EOF'
import json, os, struct, sys
folder, path = sys.argv[1:3]
n = size = 0
for f in os.listdir(folder):
    if f.endswith(".safetensors"):
        p = os.path.join(folder, f)
        size += os.path.getsize(p)
        with open(p, "rb") as fh:
            header = json.loads(fh.read(struct.unpack("<Q", fh.read(8))[0]))
        for k, v in header.items():
            if k != "__metadata__":
                c = 1
                for d in v["shape"]: c *= d
                n += c
e = json.load(open(path)); e["file_bits_per_weight"] = 8.0 * size / n
json.dump(e, open(path, "w"))
EOF
row bf16 baseline "" - "$out/bf16.eval.json" "$base" >> "$tmp_csv"

# point NAME GROUP FLAGS...: quantize, evaluate, append a row.
point() {
  local name=$1 group=$2; shift 2
  local file="$out/$name.h5"
  $moec quantize "$model" -o "$file" "$@" --calib $calib --force --json > "$file.json"
  $moec eval "$file" --text $text --json > "$file.eval.json"
  row "$name" "$group" "$*" "$file.json" "$file.eval.json" "$base" >> "$tmp_csv"
  rm -f "$file"
  echo "rd-sweep: $name done ($(( $(date +%s) - start )) s)" >&2
}

qmoe="--bits ternary --code sub1 --damp 0.1 --no-act-order"  # QMoE's settings
act="--bits ternary --code sub1"                               # moec's default: act-order
if [ $quick = 1 ]; then
  point sub1-qmoe sub1 $qmoe
  point sub1-qmoe-l0.25 sub1-rate $qmoe --rate-lambda 0.25
  point sub1-qmoe-t0.9 sub1-target $qmoe --target-bits 0.9
  point sub1-qmoe-q4 sub1+q4 $qmoe --non-expert q4
  point sub1-qmoe-mixed sub1+mixed $qmoe --non-expert q3,attn=q2g32,head=q4
else
  for b in 4 3 2; do point q${b}g128 packed --bits $b --group 128; done
  point ternary-qmoe packed --bits ternary
  point sub1-qmoe sub1 $qmoe
  point sub1-act sub1 $act
  for l in 0.05 0.1 0.25 0.5 1; do point sub1-qmoe-l$l sub1-rate $qmoe --rate-lambda $l; done
  for l in 0.1 0.25 0.5; do point sub1-act-l$l sub1-rate $act --rate-lambda $l; done
  for t in 1.0 0.9 0.8; do point sub1-qmoe-t$t sub1-target $qmoe --target-bits $t; done
  point sub1-qmoe-fit2 sub1-fit $qmoe --fit-levels 2
  for n in q8 q4; do
    point sub1-qmoe-$n sub1+$n $qmoe --non-expert $n
    point sub1-act-$n sub1+$n $act --non-expert $n
    point sub1-qmoe-l0.25-$n sub1-rate+$n $qmoe --rate-lambda 0.25 --non-expert $n
    point q4g128-$n packed+$n --bits 4 --group 128 --non-expert $n
  done
  point q2g128-q4 packed+q4 --bits 2 --group 128 --non-expert q4
  point sub1-qmoe-q3 sub1+q3 $qmoe --non-expert q3
  point sub1-act-q3 sub1+q3 $act --non-expert q3
  point sub1-qmoe-q2 sub1+q2 $qmoe --non-expert q2
  # Per kind (docs/rate-distortion.md): the lm_head is worth a 4th bit, the
  # attention fine groups more than a 3rd bit.
  point sub1-qmoe-q3-head4 sub1+mixed $qmoe --non-expert q3,head=q4
  point sub1-qmoe-q3-attn2g32 sub1+mixed $qmoe --non-expert q3,attn=q2g32
  point sub1-qmoe-mixed sub1+mixed $qmoe --non-expert q3,attn=q2g32,head=q4
fi
mv "$tmp_csv" "$csv"
echo "rd-sweep: $(( $(wc -l < "$csv") - 1 )) points in $(( $(date +%s) - start )) s -> $csv" >&2
# Debian's matplotlib lives with Debian's python3, which a pyenv or venv python may hide.
py=python3
[ -x /usr/bin/python3 ] && /usr/bin/python3 -c "import matplotlib" 2>/dev/null && py=/usr/bin/python3
if $py -c "import matplotlib" 2>/dev/null; then
  $py scripts/rd-plot.py "$csv" -o "$out/rd"
else
  echo "rd-sweep: matplotlib missing (apt install python3-matplotlib): no plot drawn" >&2
fi
