#!/usr/bin/env bash
# The refactor probe: builds scripts/probe against two checkouts of wgpu-gru and diffs the f32
# bits (FNV hashes) of every GPU output it dumps: each algorithm, variant, precision, direction,
# layer count, activation pair, h0 / lengths / mask input, streaming chunk sizes, and the saved
# whole models. `--time` instead prints GpuGru::new and new + first forward, alternating.
#   scripts/probe/run.sh OLD_CHECKOUT NEW_CHECKOUT [--time]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="${PROBE_DIR:-/tmp/wgpu-gru-probe}"
for side in old new; do
  src="$1"; [ "$side" = new ] && src="$2"
  mkdir -p "$work/$side"
  sed "s|@WGPU_GRU@|$(cd "$src" && pwd)|" "$here/Cargo.toml.in" | sed "s|path = \"main.rs\"|path = \"$here/main.rs\"|" > "$work/$side/Cargo.toml"
  cp "$src/Cargo.lock" "$work/$side/Cargo.lock"
  (cd "$work/$side" && CARGO_TARGET_DIR="$work/target-$side" cargo build --release --quiet)
done
if [ "${3:-}" = --time ]; then
  for r in 1 2 3 4 5; do for side in old new; do
    echo "$side: $("$work/target-$side/release/probe" --time | tr '\n' ' ')"
  done; done
  exit 0
fi
export WGPU_GRU_MODELS="$(cd "$2" && pwd)/tests/data/models"
"$work/target-old/release/probe" > "$work/old.txt"
"$work/target-new/release/probe" > "$work/new.txt"
if diff "$work/old.txt" "$work/new.txt"; then
  echo "probe: $(grep -c fnv= "$work/new.txt") outputs bit-identical"
else
  echo "probe: outputs differ (above)"; exit 1
fi
