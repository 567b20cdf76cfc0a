#!/usr/bin/env bash
# Prepares, on this (x86-64, GPU-less) machine, everything bench/gpu-run.sh needs on a GPU machine
# that has no cargo registry and no internet:
#   - bench/bin/: the release `wgpu-gru` and the GPU test binaries, stripped;
#   - .gl/: the Vulkan/EGL loader packages (libvulkan1 …) for images without them.
# Both are git-ignored; carry them to the device (`carry: [".gl", "bench/bin"]`) and run
#   for f in .gl/*.deb; do dpkg -x $f /; done; ldconfig; bench/gpu-run.sh "$OUT" bench/bin
set -euo pipefail
cd "$(dirname "$0")/.."
GPU_TESTS=${GPU_TESTS:-"gpu_vs_reference f16 golden train grid occupancy"}
mkdir -p bench/bin/tests
cargo build --release --bin wgpu-gru
cp target/release/wgpu-gru bench/bin/
# The test binaries cargo builds, by name.
cargo test --release --no-run --message-format=json 2>/dev/null |
  python3 -c '
import json, sys, shutil
want = set(sys.argv[1].split())
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["test"] \
            and m["target"]["name"] in want:
        shutil.copy(m["executable"], "bench/bin/tests/" + m["target"]["name"])
' "$GPU_TESTS"
strip bench/bin/wgpu-gru bench/bin/tests/*
ls -la bench/bin bench/bin/tests
if [ ! -d .gl ] || [ -z "$(ls .gl/*.deb 2>/dev/null)" ]; then
  mkdir -p .gl /tmp/amd64/partial
  o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
  # shellcheck disable=SC2086
  apt-get $o update >/dev/null
  # shellcheck disable=SC2086
  (cd .gl && apt-get $o download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
fi
du -sh bench/bin .gl
