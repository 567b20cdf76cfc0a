#!/usr/bin/env bash
# The SGEMM ceiling of this machine on one thread: OpenBLAS (numpy's), ONNX Runtime's MLAS (one
# MatMul node) and the CPU path's own GEMM (`wgpu-gru bench --floor`), on the input projections
# of the medium and large shapes (M = T·B, K = I, N = 3H), alternating per round. A whole GRU
# forward is GEMM-shaped work plus a sequential loop, so the best GEMM on the machine bounds how
# fast any GRU can go there.
#
#   bench/gemm-ceiling.sh OUT_DIR [BIN_DIR]
#
# Environment: ROUNDS (default 3). Writes OUT_DIR/peers-R.json and OUT_DIR/ours-R.json (the whole
# `--floor` output, with the FMA peak) and prints (and writes to OUT_DIR/summary.txt) GF/s per
# library, size and round. Needs numpy, onnx and onnxruntime.
set -euo pipefail
OUT=${1:-bench-out}
BIN=${2:-target/release}
ROUNDS=${ROUNDS:-3}
mkdir -p "$OUT"
for r in $(seq 1 "$ROUNDS"); do
  OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 python3 - "$OUT/peers-$r.json" <<'PY'
import json, sys, time
import numpy as np, onnx, onnxruntime as ort
from onnx import helper, TensorProto
rows = []
for name, (m, k, n) in {"medium": (2048, 512, 1536), "large": (8192, 1024, 3072)}.items():
    rng = np.random.default_rng(1)
    a = rng.random((m, k), dtype=np.float32)
    b = rng.random((k, n), dtype=np.float32)
    g = helper.make_graph([helper.make_node("MatMul", ["A", "B"], ["C"])], "g",
        [helper.make_tensor_value_info("A", TensorProto.FLOAT, [m, k])],
        [helper.make_tensor_value_info("C", TensorProto.FLOAT, [m, n])],
        [helper.make_tensor("B", TensorProto.FLOAT, [k, n], b.ravel())])
    so = ort.SessionOptions()
    so.intra_op_num_threads = so.inter_op_num_threads = 1
    sess = ort.InferenceSession(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
                                .SerializeToString(), so, providers=["CPUExecutionProvider"])
    runs = {"openblas": lambda: a @ b, "onnxruntime": lambda: sess.run(None, {"A": a})}
    for lib, f in runs.items():
        f()
        best = float("inf")
        for _ in range(5):
            t0 = time.perf_counter()
            f()
            best = min(best, time.perf_counter() - t0)
        rows.append({"gemm": name, "m": m, "k": k, "n": n, "library": lib, "threads": 1,
                     "gemm_gflop_s": 2 * m * k * n / best / 1e9,
                     "version": np.__version__ if lib == "openblas" else ort.__version__})
json.dump(rows, open(sys.argv[1], "w"), indent=1)
PY
  "$BIN/wgpu-gru" bench --floor --threads 1 --reps 5 --json "$OUT/ours-$r.json" >/dev/null 2>&1
done
python3 - "$OUT" "$ROUNDS" <<'PY' | tee "$OUT/summary.txt"
import json, sys
out, rounds = sys.argv[1], int(sys.argv[2])
print("best of 5 products per round, one thread; GF/s per round")
print(f"{'gemm':8s} {'library':12s}  rounds")
table, peaks = {}, []
for r in range(1, rounds + 1):
    for row in json.load(open(f"{out}/peers-{r}.json")):
        table.setdefault((row["gemm"], row["library"]), []).append(row["gemm_gflop_s"])
    for row in json.load(open(f"{out}/ours-{r}.json")):
        if "gemm" in row:
            table.setdefault((row["gemm"], "wgpu-gru"), []).append(row["gemm_gflop_s"])
            peaks.append(row["fma_peak_gflop_s"])
for (g, lib), v in sorted(table.items()):
    print(f"{g:8s} {lib:12s}  " + ", ".join(f"{x:.1f}" for x in v))
print("FMA peak, GF/s (ours' rounds): " + ", ".join(f"{p:.1f}" for p in peaks[::2]))
PY
