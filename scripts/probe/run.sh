#!/usr/bin/env bash
# The refactor probe: builds scripts/probe against two checkouts of wgpu-gru and diffs the f32
# bits (FNV hashes) of every GPU output it dumps: each algorithm, variant, precision, direction,
# layer count, activation pair, h0 / lengths / mask input, streaming chunk sizes, and the saved
# whole models (NEW's tests/data/models). `--time` instead prints GpuGru::new and new + first
# forward, alternating old and new.
#   scripts/probe/run.sh OLD_CHECKOUT NEW_CHECKOUT [--time]
# PROBE_DIR (default /tmp/wgpu-gru-probe) holds both builds in one target directory, so the
# dependencies build once.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="${PROBE_DIR:-/tmp/wgpu-gru-probe}"
export CARGO_TARGET_DIR="$work/target"
for side in old new; do
  src="$1"; [ "$side" = new ] && src="$2"
  mkdir -p "$work/$side"
  sed -e "s|@WGPU_GRU@|$(cd "$src" && pwd)|" -e "s|name = \"probe\"|name = \"probe-$side\"|g" \
    -e "s|path = \"main.rs\"|path = \"$here/main.rs\"|" "$here/Cargo.toml.in" > "$work/$side/Cargo.toml"
  cp "$src/Cargo.lock" "$work/$side/Cargo.lock"
  (cd "$work/$side" && cargo build --release --quiet)
done
bin="$CARGO_TARGET_DIR/release/probe"
if [ "${3:-}" = --time ]; then
  for r in 1 2 3 4 5; do for side in old new; do
    echo "$side: $("$bin-$side" --time | tr '\n' ' ')"
  done; done
  exit 0
fi
export WGPU_GRU_MODELS="$(cd "$2" && pwd)/tests/data/models"
"$bin-old" > "$work/old.txt"
"$bin-new" > "$work/new.txt"
if diff "$work/old.txt" "$work/new.txt"; then
  echo "probe: $(grep -c fnv= "$work/new.txt") outputs bit-identical"
else
  echo "probe: outputs differ (above)"; exit 1
fi
