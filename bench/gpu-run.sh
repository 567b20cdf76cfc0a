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
"$BIN/wgpu-gru" bench --backend gpu,gpu-step,gpu-seq --reps "${REPS:-20}" --json "$OUT/wgpu.json"
echo "== wgpu-gru bench: standard shapes, reset-before =="
"$BIN/wgpu-gru" bench --backend gpu --variant reset-before --reps "${REPS:-20}" --json "$OUT/wgpu-rb.json"
echo "== crossover sweep: H at B=1 and B=32, T=64 =="
sweep=()
for b in 1 32; do for h in 64 128 256 384 512 768 1024; do sweep+=(--shape "$b,64,$h,$h"); done; done
"$BIN/wgpu-gru" bench "${sweep[@]}" --backend gpu-step,gpu-seq --reps 10 --json "$OUT/sweep.json"
echo "== cuDNN (torch.nn.GRU on cuda) =="
python3 bench/peers.py --backends none --cuda --reps "${REPS:-20}" --json "$OUT/cudnn.json"
