#!/usr/bin/env bash
# The CPU path against ONNX Runtime and PyTorch on the CPU, one thread each, in one run on one
# machine: per shape, the peers and then `wgpu-gru bench --backend cpu` back to back, for ROUNDS
# rounds (shared machines are noisy: compare the ratios within a round).
#
#   bench/cpu-vs-ort.sh OUT_DIR [BIN_DIR]
#
# Writes OUT_DIR/peers-R.json and OUT_DIR/ours-R.json per round, and prints ORT ÷ ours per shape
# with the geometric mean. Needs numpy, torch, onnx, onnxscript and onnxruntime for Python.
set -euo pipefail
OUT=${1:-bench-out}
BIN=${2:-target/release}
ROUNDS=${ROUNDS:-3}
mkdir -p "$OUT"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
for r in $(seq 1 "$ROUNDS"); do
  for s in latency seed medium large long; do
    python3 bench/peers.py --threads 1 --reps "${REPS:-7}" --shapes "$s" --json "$OUT/peers-$r-$s.json" >/dev/null
    "$BIN/wgpu-gru" bench --shape "$s" --backend cpu --threads 1 --reps "${REPS:-7}" --json "$OUT/ours-$r-$s.json" >/dev/null 2>&1
  done
done
python3 - "$OUT" "$ROUNDS" <<'PY'
import json, math, sys
out, rounds = sys.argv[1], int(sys.argv[2])
shapes = ["latency", "seed", "medium", "large", "long"]
print(f"{'shape':8s} {'ORT ms':>9s} {'PyTorch ms':>11s} {'wgpu-gru cpu ms':>16s} {'ORT/ours':>9s}  (medians over rounds; per-round ratios)")
ratios = []
for s in shapes:
    per = []
    for r in range(1, rounds + 1):
        peers = json.load(open(f"{out}/peers-{r}-{s}.json"))
        ours = json.load(open(f"{out}/ours-{r}-{s}.json"))[0]["median_ms"]
        ort = next(p["median_ms"] for p in peers if p["backend"] == "onnxruntime")
        pt = next(p["median_ms"] for p in peers if p["backend"] == "torch")
        per.append((ort, pt, ours))
    med = lambda xs: sorted(xs)[len(xs) // 2]
    ort, pt, ours = (med([p[i] for p in per]) for i in range(3))
    rr = [p[0] / p[2] for p in per]
    ratios.append(med(rr))
    print(f"{s:8s} {ort:9.2f} {pt:11.2f} {ours:16.2f} {med(rr):9.2f}  {', '.join(f'{x:.2f}' for x in rr)}")
g = math.exp(sum(math.log(x) for x in ratios) / len(ratios))
print(f"geometric mean ORT/ours: {g:.2f}; lowest shape: {min(ratios):.2f}")
PY
