"""Writes the ONNX GRU models the browser benchmark (web/bench/run.mjs) times: one GRU node
(opset 14, linear_before_reset=1 as PyTorch exports it, random seeded weights) per shape of
bench/_common.py, into OUT_DIR/<shape>.onnx with X [T, B, I] -> Y, Y_h.

    python3 bench/web_models.py OUT_DIR [--shapes latency,seed,long]

Needs numpy and onnx.
"""
import argparse
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from _common import SHAPES


def model(b, t, i, h, seed):
    rng = np.random.default_rng(seed)
    k = 1 / np.sqrt(h)
    w = rng.uniform(-k, k, (1, 3 * h, i)).astype(np.float32)
    r = rng.uniform(-k, k, (1, 3 * h, h)).astype(np.float32)
    bias = rng.uniform(-k, k, (1, 6 * h)).astype(np.float32)
    node = helper.make_node("GRU", ["X", "W", "R", "B"], ["Y", "Y_h"], hidden_size=h, linear_before_reset=1)
    graph = helper.make_graph(
        [node],
        "gru",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [t, b, i])],
        [
            helper.make_tensor_value_info("Y", TensorProto.FLOAT, [t, 1, b, h]),
            helper.make_tensor_value_info("Y_h", TensorProto.FLOAT, [1, b, h]),
        ],
        [numpy_helper.from_array(w, "W"), numpy_helper.from_array(r, "R"), numpy_helper.from_array(bias, "B")],
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--shapes", default="latency,seed,long")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    wanted = a.shapes.split(",")
    for n, (name, b, t, i, h) in enumerate(s for s in SHAPES if s[0] in wanted):
        onnx.save(model(b, t, i, h, 1000 + n), os.path.join(a.out, f"{name}.onnx"))
        print(f"{a.out}/{name}.onnx: B={b} T={t} I={i} H={h}")


if __name__ == "__main__":
    main()
