#!/usr/bin/env bash
# Everything the GPU-speed work measures, in one call on a Linux machine with an NVIDIA GPU, from
# binaries built elsewhere (bench/gpu-prepare.sh): no cargo there. About 6–8 minutes on an H200.
#
#   for f in .gl/*.deb; do dpkg -x $f /; done; ldconfig; bench/gpu-run.sh OUT_DIR [BIN_DIR]
#
# BIN_DIR (default bench/bin) holds `wgpu-gru` and tests/ (GPU test binaries). Writes to OUT_DIR:
#   tests.log         the GPU test binaries, REQUIRE_GPU=1 (the f16 kernels on the real device);
#   wgpu.json         `wgpu-gru bench` on the five standard shapes, f32 and f16 weights (each
#                     record has "precision"), gpu (auto), gpu-step, gpu-tiled, gpu-regs;
#   variants.json     the register kernel's suspects told apart by timing: K-columns per
#                     invocation 32/16/8 (fewer columns, fewer registers each), with and without
#                     subgroups, on seed, long and B=1/H=64; and the grid kernel with 64 to 1024
#                     workgroups and the probed default, on seed, medium and long ("run" says
#                     which);
#   cudnn.json        torch.nn.GRU on cuda, fp32 with PyTorch's default (TF32 allowed);
#   cudnn-notf32.json the same with TF32 off; cudnn-fp16.json in half precision;
#   occupancy.json    how many workgroups of 256/64 invocations with 0/16/48 KiB of workgroup
#                     memory run at once (the launch bound of a grid-wide persistent kernel);
#   gpu-run.log       everything printed.
set -u
OUT=${1:-bench-out}
BIN=${2:-bench/bin}
REPS=${REPS:-20}
# SHAPE_ARGS (e.g. "--shape latency") narrows the standard-shape runs, for a quick local try.
mkdir -p "$OUT"
exec > >(tee "$OUT/gpu-run.log") 2>&1
START=$SECONDS

# shellcheck source=bench/gpu-env.sh
source "$(dirname "$0")/gpu-env.sh"
nvidia-smi -L || true
export WGPU_BACKEND=${WGPU_BACKEND:-vulkan}
"$BIN/wgpu-gru" --version

echo "== GPU test binaries (REQUIRE_GPU=1) =="
for t in "$BIN"/tests/*; do
  [ -x "$t" ] || continue
  echo "-- $(basename "$t")"
  REQUIRE_GPU=1 timeout 120 "$t" --test-threads 4 2>&1 | grep -E "test result|FAILED|panicked|GPU tests run on|kernels: " 
done > "$OUT/tests.log" 2>&1
cat "$OUT/tests.log"

echo "== wgpu-gru bench: standard shapes, f32 and f16 weights =="
for p in f32 f16; do
  # shellcheck disable=SC2086
  "$BIN/wgpu-gru" bench ${SHAPE_ARGS:-} --backend gpu,gpu-step,gpu-tiled,gpu-regs,gpu-grid --precision "$p" --reps "$REPS" \
    --json "$OUT/wgpu-$p.json"
done
python3 - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
import os
rows = []
for p in ("f32", "f16"):
    rows += json.load(open(f"{out}/wgpu-{p}.json"))
    os.remove(f"{out}/wgpu-{p}.json")
json.dump(rows, open(f"{out}/wgpu.json", "w"), indent=1)
PY

echo "== register kernel suspects: K-columns 32/16/8, subgroups on/off =="
for c in 32 16 8; do
  for sg in "" --no-subgroups; do
    "$BIN/wgpu-gru" bench --shape seed --shape long --shape 1,64,64,64 --backend gpu-regs \
      --regs-cols "$c" $sg --reps "$REPS" --json "$OUT/regs-$c$sg.json"
  done
done
echo "== grid kernel: workgroups launched =="
for w in 0 64 128 256 512 1024; do
  "$BIN/wgpu-gru" bench --shape seed --shape medium --shape long --backend gpu-grid \
    --grid-workgroups "$w" --reps "$REPS" --json "$OUT/grid-$w.json"
done
python3 - "$OUT" <<'PY'
import glob, json, os, sys
out = sys.argv[1]
rows = []
for f in sorted(glob.glob(f"{out}/regs-*.json")) + sorted(glob.glob(f"{out}/grid-*.json")):
    for r in json.load(open(f)):
        r["run"] = os.path.basename(f)[:-5]
        rows.append(r)
    os.remove(f)
json.dump(rows, open(f"{out}/variants.json", "w"), indent=1)
PY

echo "== occupancy: workgroups resident at once =="
"$BIN/wgpu-gru" occupancy --launch 8192 --json "$OUT/occupancy.json"

echo "== cuDNN (torch.nn.GRU on cuda): fp32 (TF32 allowed), fp32 without TF32, fp16 =="
python3 bench/peers.py --backends none --cuda --reps "$REPS" --json "$OUT/cudnn.json"
python3 bench/peers.py --backends none --cuda --no-tf32 --reps "$REPS" --json "$OUT/cudnn-notf32.json"
python3 bench/peers.py --backends none --cuda --fp16 --reps "$REPS" --json "$OUT/cudnn-fp16.json"
echo "== done in $((SECONDS - START)) s =="
