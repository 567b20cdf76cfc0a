#!/usr/bin/env python3
"""Times peer GRU implementations on the five standard shapes.

- ONNX Runtime (CPU execution provider) and PyTorch nn.GRU on the CPU, with `--threads`
  threads (default 1; OMP_NUM_THREADS is set before torch is imported, or its OpenMP threads
  spin on these small machines);
- with `--cuda`, PyTorch nn.GRU (cuDNN) on the GPU too, timed with torch.cuda.synchronize().
  PyTorch lets cuDNN use TF32 tensor cores by default (not full f32); `--no-tf32` turns that
  off for an f32-for-f32 comparison. Each record says which was used.

Each figure is the median of `--reps` whole forward passes after a warm-up, of a single-layer
unidirectional GRU in f32 (the PyTorch cell: reset-after). Shapes are (B, T, I, H): batch,
timesteps, input size, hidden size; FLOPs per forward = 6·H·(H+I)·B·T.

Usage:
    bench/peers.py [--threads N] [--reps N] [--shapes latency,long] [--backends ort,torch]
                   [--cuda [--no-tf32] [--fp16]] [--json FILE]

ONNX Runtime's model is one ONNX GRU node written with onnx.helper (`linear_before_reset=1`, the
node PyTorch's exporter writes), so `--backends ort` needs numpy, onnx and onnxruntime only.

`--json FILE` writes a list of records with keys shape, batch, steps, input, hidden, backend,
device, variant, median_ms, gflops (plus median_cpu_ms, threads, tf32 for cuda, and versions).
"""
import argparse
import json
import os
import sys
import warnings

from _common import SHAPES, median_ms


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1, help="CPU threads for both peers (default 1)")
    ap.add_argument("--reps", type=int, default=5, help="timed runs per figure (median)")
    ap.add_argument("--shapes", default="", help="comma-separated subset of " + ",".join(s[0] for s in SHAPES))
    ap.add_argument("--backends", default="ort,torch", help="comma-separated subset of ort,torch")
    ap.add_argument("--cuda", action="store_true", help="also time torch nn.GRU on cuda")
    ap.add_argument("--no-tf32", action="store_true", help="with --cuda: forbid cuDNN's TF32 tensor cores")
    ap.add_argument("--fp16", action="store_true",
                    help="with --cuda: the cuDNN GRU in half precision (weights and input fp16)")
    ap.add_argument("--json", metavar="FILE", help="write the results as JSON records")
    a = ap.parse_args()

    # The legacy exporter's deprecation and batch-size notices are expected here.
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=UserWarning)
    # Must happen before torch (and its OpenMP runtime) is imported.
    os.environ["OMP_NUM_THREADS"] = str(a.threads)
    os.environ.setdefault("MKL_NUM_THREADS", str(a.threads))
    import numpy as np

    backends = {b.strip() for b in a.backends.split(",") if b.strip()}
    # ONNX Runtime alone needs no torch: its model is written with onnx.helper.
    torch = None
    if "torch" in backends or a.cuda:
        import torch

        torch.set_num_threads(a.threads)
    ort = None
    if "ort" in backends:
        import onnxruntime as ort

    wanted = {s.strip() for s in a.shapes.split(",") if s.strip()}
    unknown = wanted - {s[0] for s in SHAPES}
    if unknown:
        ap.error(f"unknown shapes: {sorted(unknown)}")
    shapes = [s for s in SHAPES if not wanted or s[0] in wanted]

    versions = {"numpy": np.__version__}
    if torch:
        versions["torch"] = torch.__version__
    if ort:
        versions["onnxruntime"] = ort.__version__
    print("# " + ", ".join(f"{k} {v}" for k, v in versions.items()) + f"; threads={a.threads}", flush=True)
    if a.cuda and not torch.cuda.is_available():  # torch is imported when --cuda is set
        print("# --cuda: torch sees no CUDA device; skipping the GPU", file=sys.stderr)
        a.cuda = False
    if a.cuda:
        if a.no_tf32:
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cuda.matmul.allow_tf32 = False
        versions["cuda_device"] = torch.cuda.get_device_name(0)
        versions["cudnn"] = torch.backends.cudnn.version()
        print(f"# cuda: {versions['cuda_device']}, cuDNN {versions['cudnn']}, "
              f"tf32={torch.backends.cudnn.allow_tf32}", flush=True)

    records = []

    def record(name, B, T, I, H, backend, device, times):
        ms, cpu_ms = times
        flops = 6.0 * H * (H + I) * B * T
        rec = {
            "shape": name,
            "batch": B,
            "steps": T,
            "input": I,
            "hidden": H,
            "backend": backend,
            "device": device,
            "variant": "reset_after",
            "median_ms": ms,
            "median_cpu_ms": cpu_ms,
            "gflops": flops / ms / 1e6,
            "threads": a.threads if device == "cpu" else None,
            "tf32": bool(torch.backends.cudnn.allow_tf32) if device == "cuda" else None,
            "precision": "f16" if (device == "cuda" and a.fp16) else "f32",
            "versions": versions,
        }
        records.append(rec)
        print(f"{name:8s} B{B:<3d} T{T:<5d} I{I:<5d} H{H:<5d} {backend:12s} {device:5s} "
              f"{ms:10.3f} ms {rec['gflops']:8.1f} GFLOP/s   (cpu time {cpu_ms:.3f} ms)", flush=True)

    for name, B, T, I, H in shapes:
        if ort:
            so = ort.SessionOptions()
            so.intra_op_num_threads = a.threads
            so.inter_op_num_threads = 1
            sess = ort.InferenceSession(onnx_gru(np, I, H), so, providers=["CPUExecutionProvider"])
            xn = np.random.default_rng(1).standard_normal((T, B, I), dtype=np.float32)
            record(name, B, T, I, H, "onnxruntime", "cpu", median_ms(lambda: sess.run(None, {"x": xn}), a.reps))
        if not torch:
            continue
        torch.manual_seed(0)
        gru = torch.nn.GRU(I, H).eval()
        x = torch.randn(T, B, I)
        if "torch" in backends:
            with torch.inference_mode():
                record(name, B, T, I, H, "torch", "cpu", median_ms(lambda: gru(x), a.reps))
        if a.cuda:
            g = gru.to("cuda")
            xc = x.to("cuda")
            if a.fp16:
                g, xc = g.half(), xc.half()
            with torch.inference_mode():
                # Several warm-ups: the first calls pick cuDNN algorithms and settle clocks.
                times = median_ms(lambda: g(xc), a.reps, sync=torch.cuda.synchronize, warmup=3)
            record(name, B, T, I, H, "torch-cudnn", "cuda", times)

    if a.json:
        with open(a.json, "w") as f:
            json.dump(records, f, indent=1)


def onnx_gru(np, I, H):
    """A one-layer forward ONNX GRU (`linear_before_reset=1`: PyTorch's reset-after cell, the
    node the torch exporter writes) with random weights of PyTorch's init scale, as bytes."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    k = 1.0 / np.sqrt(H)
    w = {
        "W": rng.uniform(-k, k, (1, 3 * H, I)),
        "R": rng.uniform(-k, k, (1, 3 * H, H)),
        "B": rng.uniform(-k, k, (1, 6 * H)),
    }
    inits = [numpy_helper.from_array(v.astype(np.float32), n) for n, v in w.items()]
    node = helper.make_node("GRU", ["x", "W", "R", "B"], ["y", "hn"], hidden_size=H, linear_before_reset=1)
    graph = helper.make_graph(
        [node], "gru",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["T", "B", I])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None),
         helper.make_tensor_value_info("hn", TensorProto.FLOAT, None)],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    return model.SerializeToString()


if __name__ == "__main__":
    main()
