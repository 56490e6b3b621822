#!/usr/bin/env python3
"""Re-derives a `moec quantize --bits ternary --code sub1 --method rtn`
container from docs/container.md §4.6 alone (h5py + numpy, no moec code):
rebuilds each tensor's Tunstall dictionary from its trit counts, decodes every
block, and checks the levels and trits equal what round-to-nearest on the
sub1 grid gives for the source safetensors' weights.
Usage: h5py_sub1_check.py CONTAINER.h5 HF_DIR"""
import heapq
import sys

import h5py
import numpy as np

from hf_safetensors import safetensors_tensors


def text(value):
    """A string attribute: fixed-length ones (container version 2) come back as bytes."""
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)

BLOCK_ROWS = 16
# f32 nearest to 2^(-j/16), as the spec's table
F = np.array([1.0, 0.957603281, 0.917004043, 0.87812608, 0.840896415, 0.805245166, 0.771105413, 0.738413073,
              0.707106781, 0.677127773, 0.648419777, 0.620928906, 0.594603558, 0.569394317, 0.545253866,
              0.522136891], dtype=np.float32)


def bf16_tensors(path):
    """{name: float32 array} of a bf16 safetensors file."""
    out = {}
    for name, (dtype, shape, raw) in safetensors_tensors(path).items():
        assert dtype == "BF16", name
        out[name] = (np.frombuffer(raw, np.uint16).astype(np.uint32) << 16).view(np.float32).reshape(shape)
    return out


def level_table(scale):
    """level(k) for k = 0..255 (§4.6)."""
    n = 255 - np.arange(256)
    table = (np.float32(scale) * F[n % 16]) * np.exp2(-(n // 16)).astype(np.float32)
    table[0] = 0.0
    return table.astype(np.float32)


def nearest_code(values, table):
    """Nearest level code of each magnitude, ties to the larger code."""
    err = np.abs(table[None, :] - values[:, None])
    return 255 - np.argmin(err[:, ::-1], axis=1)


def dictionary(counts):
    """The codewords' trit strings (flat) and their offsets/lengths (§4.6)."""
    total = sum(int(c) + 1 for c in counts)
    p = [(int(c) + 1) / total for c in counts]
    heap, leaves, next_id = [], [], 0

    def add_children(prob, path):
        nonlocal next_id
        for t in range(3):
            leaf = (-(prob * p[t]), next_id, path + (t,))
            next_id += 1
            if len(leaf[2]) >= 64:
                leaves.append(leaf)
            else:
                heapq.heappush(heap, leaf)

    add_children(1.0, ())
    count = 3
    while count + 2 <= 65536 and heap:
        neg, _, path = heapq.heappop(heap)
        add_children(-neg, path)
        count += 2
    leaves.extend(heap)
    leaves.sort(key=lambda leaf: leaf[1])
    lengths = np.array([len(leaf[2]) for leaf in leaves], dtype=np.int64)
    flat = np.array([t for leaf in leaves for t in leaf[2]], dtype=np.uint8)
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    return flat, offsets, lengths


def decode(group, rows, cols, cache):
    counts = tuple(int(c) for c in group["trit_counts"][...])
    if counts not in cache:
        cache[counts] = dictionary(counts)
    flat, offsets, lengths = cache[counts]
    codes, blocks = group["codes"][...].astype(np.int64), group["blocks"][...].astype(np.int64)
    assert codes.max() < len(lengths), "codeword outside the dictionary"
    n_blocks = (rows + BLOCK_ROWS - 1) // BLOCK_ROWS
    assert len(blocks) == n_blocks + 1 and blocks[0] == 0 and blocks[-1] == len(codes)
    trits = np.empty(rows * cols, dtype=np.uint8)
    for b in range(n_blocks):
        words = codes[blocks[b]:blocks[b + 1]]
        n = min(BLOCK_ROWS, rows - b * BLOCK_ROWS) * cols
        lens, starts = lengths[words], offsets[words]
        ends = np.cumsum(lens)
        assert ends[-1] >= n and ends[-1] - lens[-1] < n, "block stream does not end in its last codeword"
        index = np.repeat(starts - (ends - lens), lens) + np.arange(ends[-1])
        trits[b * BLOCK_ROWS * cols: b * BLOCK_ROWS * cols + n] = flat[index][:n]
    return trits.reshape(rows, cols)


def main(container, hf_dir):
    source = bf16_tensors(f"{hf_dir}/model.safetensors")
    checked, cache = 0, {}
    with h5py.File(container, "r") as f:
        assert text(f.attrs["moec_format"]) == "moec"

        def visit(name, obj):
            nonlocal checked
            if not isinstance(obj, h5py.Group) or text(obj.attrs.get("encoding", "")) != "sub1":
                return
            w = source[text(obj.attrs["hf_name"])]
            rows, cols = (int(n) for n in obj.attrs["shape"])
            scale = np.float32(obj["level_scale"][0])
            assert scale == np.abs(w).max(), f"{name}: level_scale is not the largest |weight|"
            table = level_table(scale)
            levels = obj["levels"][...]
            want_low = nearest_code(-np.minimum(w.min(axis=1), 0), table)
            want_high = nearest_code(np.maximum(w.max(axis=1), 0), table)
            assert np.array_equal(levels[:, 0], want_low), f"{name}: low level codes"
            assert np.array_equal(levels[:, 1], want_high), f"{name}: high level codes"
            low, high = -table[levels[:, 0]][:, None], table[levels[:, 1]][:, None]
            want = np.where(w < np.float32(0.5) * low, 0, np.where(w > np.float32(0.5) * high, 2, 1))
            trits = decode(obj, rows, cols, cache)
            assert np.array_equal(trits, want), f"{name}: {np.count_nonzero(trits != want)} trits differ"
            counts = np.bincount(trits.ravel(), minlength=3)
            assert counts.sum() == rows * cols
            checked += 1

        f["tensors"].visititems(visit)
    assert checked > 0, "no sub1 tensors"
    print(f"h5py: {checked} sub1 tensors decode, per docs/container.md, to the RTN trits and levels of the source")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
