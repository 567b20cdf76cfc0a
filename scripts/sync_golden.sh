#!/usr/bin/env bash
# Regenerates the framework cases in tests/data from ../shared/golden (what PyTorch, Keras,
# ONNX Runtime and the seed equations computed): the forward cases into tests/data/golden, the
# autograd gradients into tests/data/grad, the real .onnx files into tests/data/onnx_files and
# the whole saved models into tests/data/models. Our own cases beside them (written by the
# scripts/*.py generators) are left alone; each directory's README.md stays ours.
#   scripts/sync_golden.sh [SHARED_GOLDEN]   (default: ../shared/golden)
set -euo pipefail
cd "$(dirname "$0")/.."
src="${1:-../shared/golden}"
[ -d "$src" ] || { echo "no golden directory at $src" >&2; exit 1; }
copy() { # from-dir to-dir
  local n=0
  for f in "$1"/*; do
    [ -f "$f" ] && [ "$(basename "$f")" != README.md ] || continue
    cp "$f" "$2/"; n=$((n + 1))
  done
  echo "$2: $n file(s) from $1"
}
copy "$src" tests/data/golden
copy "$src/grad" tests/data/grad
copy "$src/onnx_files" tests/data/onnx_files
copy "$src/models" tests/data/models
git status --short tests/data
