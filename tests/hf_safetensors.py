"""A model.safetensors file read with json + numpy alone, for the h5py tests."""
import json
import struct


def safetensors_tensors(path):
    """{name: (dtype, shape, raw bytes)} of every tensor in the file."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    header.pop("__metadata__", None)
    data = raw[8 + n:]
    return {name: (e["dtype"], e["shape"], data[e["data_offsets"][0]:e["data_offsets"][1]])
            for name, e in header.items()}
