"""Largest relative difference between the f32 tensors of two safetensors files (`skfac train
--save-model`), tensor by tensor: how far a run on one device drifted from the same run on
another. Pure Python, so it runs wherever a python3 does.

    compare_models.py A.safetensors B.safetensors [--tolerance 1e-3]

Prints the worst tensor and exits 1 when the largest difference, relative to the tensor's
largest magnitude, exceeds the tolerance."""

import argparse
import json
import struct
import sys
from array import array


def load(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    body = data[8 + n:]
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        if meta["dtype"] != "F32":
            sys.exit(f"{path}: {name} is {meta['dtype']}, only F32 is compared")
        a, b = meta["data_offsets"]
        values = array("f")
        values.frombytes(body[a:b])
        out[name] = values
    return out


p = argparse.ArgumentParser()
p.add_argument("a")
p.add_argument("b")
p.add_argument("--tolerance", type=float, default=1e-3)
args = p.parse_args()
a, b = load(args.a), load(args.b)
if a.keys() != b.keys():
    sys.exit(f"the files hold different tensors: {sorted(a.keys() ^ b.keys())}")
worst = (0.0, "")
for name in sorted(a):
    x, y = a[name], b[name]
    scale = max(max((abs(v) for v in y), default=0.0), 1e-12)
    d = max((abs(u - v) for u, v in zip(x, y)), default=0.0) / scale
    worst = max(worst, (d, name))
print(f"{len(a)} tensors; largest relative difference {worst[0]:.2e} ({worst[1]})")
sys.exit(0 if worst[0] <= args.tolerance else 1)
