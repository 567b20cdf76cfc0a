#!/usr/bin/env bash
# Times wgpu-gru on Vulkan and PyTorch's nn.GRU on CUDA (cuDNN) in one go, on a Linux machine
# with an NVIDIA GPU, from binaries built elsewhere.
#
#   bench/gpu-run.sh OUT_DIR [BIN_DIR]
#
# BIN_DIR holds `wgpu-gru` (default target/release). A `.gl/` folder of Debian packages
# (libvulkan1 …) is unpacked first where the machine lacks a Vulkan loader. Writes
# OUT_DIR/wgpu.json, OUT_DIR/sweep.json, OUT_DIR/cudnn.json and a log of everything printed.
set -u
OUT=${1:-bench-out}
BIN=${2:-target/release}
mkdir -p "$OUT"
exec > >(tee "$OUT/gpu-run.log") 2>&1

# shellcheck source=bench/gpu-env.sh
source "$(dirname "$0")/gpu-env.sh"
nvidia-smi -L || true
export WGPU_BACKEND=${WGPU_BACKEND:-vulkan}

echo "== wgpu-gru bench: standard shapes, reset-after =="
"$BIN/wgpu-gru" bench --backend gpu,gpu-step,gpu-tiled --reps "${REPS:-20}" --json "$OUT/wgpu.json"
echo "== wgpu-gru bench: standard shapes, reset-before =="
"$BIN/wgpu-gru" bench --backend gpu --variant reset-before --reps "${REPS:-20}" --json "$OUT/wgpu-rb.json"
echo "== portable kernels (no subgroups), standard shapes, reset-after =="
"$BIN/wgpu-gru" bench --backend gpu,gpu-step --no-subgroups --reps "${REPS:-20}" --json "$OUT/wgpu-nosg.json"
echo "== register kernel: K-columns per invocation (32, 16, 8) =="
for c in 32 16 8; do
  "$BIN/wgpu-gru" bench --shape seed --shape long --shape 1,64,64,64 --backend gpu-regs --regs-cols "$c" \
    --reps "${REPS:-20}" --json "$OUT/regs-$c.json"
done
echo "== plot: time per forward against H (B = 16, T = 64, I = H) =="
"$BIN/wgpu-gru" bench --plot "$OUT/plot.svg" --backend gpu,cpu --reps 5 --json "$OUT/plot.json"
echo "== cuDNN (torch.nn.GRU on cuda) =="
python3 bench/peers.py --backends none --cuda --reps "${REPS:-20}" --json "$OUT/cudnn.json"
