#!/usr/bin/env python3
"""How far entropy-coded ternary is from the rate–distortion bound of a
model's expert weights (docs/rate-distortion.md, "How low a code can go").

    /usr/bin/python3 scripts/rd-bound.py models/tiny-mixtral-brown

Reads every routed-expert matrix of a Hugging Face checkpoint (bf16, f16 or
f32 safetensors, one file or an index of shards), scales each row to unit
RMS (the sub1 format stores each row's levels: its scale is paid for
already) and pools the values as one memoryless source under squared error.
It prints:
  - the distribution's kurtosis and differential entropy h (histogram
    estimate, bins of 0.01);
  - the dead-zone ternary quantizer (|x| <= t -> 0, else ±c with c the
    conditional mean of |x|, the best levels for that zero set): the entropy
    of its trits and its distortion D, for the dead zones whose entropy is
    nearest each of 1.30, 1.16, 0.99, 0.90, 0.80 bits;
  - at each of those distortions, the fewest bits per weight any code could
    spend (vector, trellis or entropy codes alike) on weights treated as
    independent draws of this distribution: R(D) lies between the Shannon
    lower bound h − ½·log2(2πe·D) and the Gaussian ½·log2(1/D) (a Gaussian
    source of the same variance is the hardest one).
What it leaves out: weights that depend on each other have an entropy rate
below h; GPTQ decides each weight given the errors of the columns before it
and weights errors by the Hessian, so its weight error is not this rounding's;
and perplexity is not weight MSE. The figures say what a code must spend to
keep round-to-nearest's weight error, as an estimate of where a better code
could land, not a proof.
Needs numpy (Debian's python3-numpy).
"""
import json
import math
import mmap
import struct
import sys
from pathlib import Path

try:
    import numpy as np
except ImportError:
    sys.exit("rd-bound: numpy missing: apt install python3-numpy (and run Debian's /usr/bin/python3)")

DTYPES = {"BF16": np.uint16, "F16": np.float16, "F32": np.float32}


def safetensors_files(folder):
    index = folder / "model.safetensors.index.json"
    if index.exists():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        return [folder / shard for shard in shards]
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise ValueError(f"{folder}: no *.safetensors")
    return files


def expert_tensors(path):
    """The routed-expert matrices of one safetensors file: (name, dtype, shape, offset, bytes)."""
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise ValueError(f"{path}: shorter than a safetensors header")
        (n,) = struct.unpack("<Q", head)
        try:
            header = json.loads(f.read(n))
        except ValueError as e:
            raise ValueError(f"{path}: header is not JSON ({e})") from None
        if not isinstance(header, dict):
            raise ValueError(f"{path}: header is not a JSON object")
    size = path.stat().st_size
    for name, t in header.items():
        if name == "__metadata__" or ".experts." not in name or not name.endswith(".weight"):
            continue
        if t["dtype"] not in DTYPES or len(t["shape"]) != 2:
            raise ValueError(f"{path}: tensor {name}: dtype {t['dtype']} shape {t['shape']} not supported")
        begin, end = t["data_offsets"]
        rows, cols = t["shape"]
        if end - begin != rows * cols * np.dtype(DTYPES[t["dtype"]]).itemsize or 8 + n + end > size:
            raise ValueError(f"{path}: tensor {name}: offsets {begin}..{end} do not hold {t['dtype']} {t['shape']}")
        yield name, t["dtype"], (rows, cols), 8 + n + begin


def rows_at_unit_rms(path, tensors):
    """Each tensor's nonzero rows scaled to unit RMS, as one flat f32 array, and its count of all-zero rows."""
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        for name, dtype, (rows, cols), offset in tensors:
            raw = np.frombuffer(data, dtype=DTYPES[dtype], count=rows * cols, offset=offset)
            w = (raw.astype(np.uint32) << 16).view(np.float32) if dtype == "BF16" else raw.astype(np.float32)
            w = w.reshape(rows, cols)
            rms = np.sqrt(np.mean(w.astype(np.float64) ** 2, axis=1))
            live = rms > 0
            yield (w[live] / rms[live, None]).ravel(), int(rows - live.sum())
            del raw, w


def measure(folder):
    files = [(f, list(expert_tensors(f))) for f in safetensors_files(folder)]
    if not any(t for _, t in files):
        raise ValueError(f"{folder}: no routed-expert matrices (names with '.experts.')")
    # A row at unit RMS has no value beyond √cols: bins of 0.01 over that
    # range leave nothing out.
    limit = math.ceil(math.sqrt(max(shape[1] for _, t in files for _, _, shape, _ in t)))
    width = 0.01
    edges = np.linspace(-limit, limit, int(round(2 * limit / width)) + 1)
    hist = np.zeros(len(edges) - 1)
    zero_rows = 0
    for f, tensors in files:
        for x, zeros in rows_at_unit_rms(f, tensors):
            hist += np.histogram(x, bins=edges)[0]
            zero_rows += zeros
    return hist, edges, width, zero_rows


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: rd-bound.py MODEL_FOLDER   (a Hugging Face MoE checkpoint; see the file's docstring)")
    folder = Path(sys.argv[1])
    try:
        hist, edges, width, zero_rows = measure(folder)
    except (OSError, ValueError, KeyError, TypeError, struct.error) as e:
        sys.exit(f"rd-bound: {e}")
    count = int(hist.sum())
    p = hist / hist.sum()
    x = (edges[:-1] + edges[1:]) / 2
    var = float(np.sum(p * x * x))
    kurtosis = float(np.sum(p * x**4)) / var**2
    nz = p > 0
    h = float(-np.sum(p[nz] * np.log2(p[nz])) + math.log2(width))  # differential entropy, bits
    print(f"{folder}: {count:,} expert weights, rows at unit RMS" +
          (f" ({zero_rows} all-zero rows left out)" if zero_rows else ""))
    print(f"  variance {var:.4f}, kurtosis {kurtosis:.3f} (Gaussian 3), differential entropy {h:.4f} bits "
          f"(Gaussian {0.5 * math.log2(2 * math.pi * math.e * var):.4f})")
    # Dead-zone ternary with centroid levels, over a fine grid of dead zones.
    ax = np.abs(x)
    points = []
    for t in np.arange(0.30, 2.50, 0.001):
        inside = ax <= t
        p0 = float(p[inside].sum())
        p1 = 1.0 - p0
        if p1 <= 0 or p0 <= 0:
            continue
        c = float(np.sum(p[~inside] * ax[~inside])) / p1
        d = var - p1 * c * c
        rate = -p0 * math.log2(p0) - p1 * math.log2(p1 / 2)
        points.append((rate, d, t, p0))
    print("  ternary (dead zone t·RMS, centroid levels)         any code at the same D")
    print("  trit entropy  zeros    t      D        SNR dB     R(D) >= SLB   R(D) <= Gaussian")
    for target in (1.30, 1.16, 0.99, 0.90, 0.80):
        rate, d, t, p0 = min(points, key=lambda q: abs(q[0] - target))
        slb = max(0.0, h - 0.5 * math.log2(2 * math.pi * math.e * d))
        gauss = max(0.0, 0.5 * math.log2(var / d))
        print(f"  {rate:12.3f}  {100 * p0:5.1f}%  {t:5.3f}  {d:.4f}  {10 * math.log10(var / d):8.2f}"
              f"     {slb:.3f}         {gauss:.3f}")


if __name__ == "__main__":
    main()
