#!/usr/bin/env python3
"""Reads a moec container with h5py alone (no moec code) and checks every
tensor against the Hugging Face safetensors it was converted from, parsed
here with json + numpy. Usage: h5py_check.py CONTAINER.h5 HF_DIR"""
import json
import sys

import h5py
import numpy as np

from hf_safetensors import safetensors_tensors


def text(value):
    """A string attribute: fixed-length ones (container version 2) come back as bytes."""
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def main(container, hf_dir):
    source = safetensors_tensors(f"{hf_dir}/model.safetensors")
    seen = 0
    with h5py.File(container, "r") as f:
        assert text(f.attrs["moec_format"]) == "moec", "not a moec container"
        config = json.loads(text(f.attrs["config"]))
        assert config["model_type"] == "mixtral"

        def visit(name, obj):
            nonlocal seen
            if not isinstance(obj, h5py.Dataset):
                return
            hf_name = text(obj.attrs["hf_name"])
            dtype, shape, raw = source[hf_name]
            assert list(obj.attrs["shape"]) == shape, hf_name
            assert text(obj.attrs["encoding"]) == dtype.lower(), hf_name
            values = obj[...]
            if dtype == "BF16":  # stored as bit patterns; widen to f32 exactly
                as_f32 = (values.astype(np.uint32) << 16).view(np.float32)
                want = (np.frombuffer(raw, np.uint16).astype(np.uint32) << 16).view(np.float32)
                assert np.array_equal(as_f32.ravel(), want, equal_nan=True), hf_name
            assert values.tobytes() == raw, hf_name
            seen += 1

        f["tensors"].visititems(visit)
        tokenizer = bytes(f["tokenizer.model"][...])
    assert seen == len(source), f"{seen} tensors in the container, {len(source)} in the source"
    with open(f"{hf_dir}/tokenizer.model", "rb") as t:
        assert tokenizer == t.read(), "tokenizer bytes differ"
    print(f"h5py: {seen} tensors and the tokenizer equal the safetensors data")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
