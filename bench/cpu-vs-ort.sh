#!/usr/bin/env bash
# The CPU path against ONNX Runtime (and optionally PyTorch) on the CPU, at the same thread count,
# alternating in one run on one machine: per round, shape and thread count, the peers and then
# `wgpu-gru bench --backend cpu` back to back (shared machines are noisy: compare the ratios
# within a round).
#
#   bench/cpu-vs-ort.sh [--threads 1,2] OUT_DIR [BIN_DIR]
#
# Environment: ROUNDS (default 2), REPS (timed forwards per figure, default 7), SHAPES (default
# "latency seed medium large long"), PEERS (default "ort"; "ort,torch" adds PyTorch),
# PRECISIONS (default "f32"; "f32 f16" also times ours with `--precision f16`, f16 weights).
# Writes OUT_DIR/peers-R-SHAPE-tN.json and OUT_DIR/ours-R-SHAPE-tN.json (…-tN-f16.json), and
# prints (and writes to OUT_DIR/summary.txt) ORT ms ÷ ours ms per shape, thread count and
# precision, the per-round ratios, and ours at N threads ÷ ours at 1 thread. Needs numpy, onnx
# and onnxruntime (and torch with PEERS=ort,torch).
set -euo pipefail
THREADS=1
if [ "${1:-}" = "--threads" ]; then
  THREADS=$2
  shift 2
fi
OUT=${1:-bench-out}
BIN=${2:-target/release}
ROUNDS=${ROUNDS:-2}
REPS=${REPS:-7}
SHAPES=${SHAPES:-latency seed medium large long}
PEERS=${PEERS:-ort}
PRECISIONS=${PRECISIONS:-f32}
mkdir -p "$OUT"
for r in $(seq 1 "$ROUNDS"); do
  for s in $SHAPES; do
    for t in ${THREADS//,/ }; do
      OMP_NUM_THREADS=$t MKL_NUM_THREADS=$t python3 bench/peers.py --threads "$t" --reps "$REPS" \
        --backends "$PEERS" --shapes "$s" --json "$OUT/peers-$r-$s-t$t.json" >/dev/null
      for p in $PRECISIONS; do
        suffix=$([ "$p" = f32 ] && echo "" || echo "-$p")
        "$BIN/wgpu-gru" bench --shape "$s" --backend cpu --threads "$t" --reps "$REPS" \
          --precision "$p" --json "$OUT/ours-$r-$s-t$t$suffix.json" >/dev/null 2>&1
      done
    done
  done
done
python3 - "$OUT" "$ROUNDS" "$THREADS" "$SHAPES" "$PRECISIONS" <<'PY' | tee "$OUT/summary.txt"
import json, math, sys
out, rounds, threads, shapes = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(","), sys.argv[4].split()
precisions = sys.argv[5].split()
med = lambda xs: sorted(xs)[len(xs) // 2] if len(xs) % 2 else sum(sorted(xs)[len(xs) // 2 - 1:len(xs) // 2 + 1]) / 2
ours_ms = {}
for prec in precisions:
    sfx = "" if prec == "f32" else f"-{prec}"
    for t in threads:
        print(f"## ours {prec}, {t} thread(s): ORT ms ÷ ours ms (medians over {rounds} rounds; per-round ratios)")
        print(f"{'shape':8s} {'ORT ms':>9s} {'PyTorch ms':>11s} {'ours ms':>9s} {'ORT/ours':>9s}  rounds")
        ratios = []
        for s in shapes:
            per = []
            for r in range(1, rounds + 1):
                peers = json.load(open(f"{out}/peers-{r}-{s}-t{t}.json"))
                ours = json.load(open(f"{out}/ours-{r}-{s}-t{t}{sfx}.json"))[0]["median_ms"]
                ort = next(p["median_ms"] for p in peers if p["backend"] == "onnxruntime")
                pt = next((p["median_ms"] for p in peers if p["backend"] == "torch"), float("nan"))
                per.append((ort, pt, ours))
            ort, pt, ours = (med([p[i] for p in per]) for i in range(3))
            ours_ms[(prec, t, s)] = [p[2] for p in per]
            rr = [p[0] / p[2] for p in per]
            ratios.append(med(rr))
            print(f"{s:8s} {ort:9.3f} {pt:11.3f} {ours:9.3f} {med(rr):9.2f}  {', '.join(f'{x:.2f}' for x in rr)}")
        g = math.exp(sum(math.log(x) for x in ratios) / len(ratios))
        print(f"geometric mean ORT/ours: {g:.2f}; lowest shape: {min(ratios):.2f}\n")
    if len(threads) > 1:
        t1 = threads[0]
        for t in threads[1:]:
            print(f"## ours {prec}: {t1} thread(s) ms ÷ {t} thread(s) ms, per round (same round, alternating)")
            for s in shapes:
                rr = [a / b for a, b in zip(ours_ms[(prec, t1, s)], ours_ms[(prec, t, s)])]
                print(f"{s:8s} {med(rr):6.2f}  ({', '.join(f'{x:.2f}' for x in rr)})")
            print()
PY
