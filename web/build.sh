#!/usr/bin/env bash
# Builds the browser package into web/pkg/ (wgpu_gru.js + wgpu_gru_bg.wasm) and copies the demo's
# model and test digits into web/data/.
#
#   web/build.sh            # then: python3 -m http.server 8000 -d web   → http://localhost:8000/
#
# Needs, from Debian's packages (Rust 1.96 with its standard library's source, and wasm-ld):
#   apt-get install -y --no-install-recommends rustc-web cargo-web rust-web-src lld-22
# and wasm-bindgen-cli at exactly the version of the wasm-bindgen crate in Cargo.lock, which this
# script installs from crates.io into target/web-tools/ the first time (about 5 CPU-minutes).
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO=${WEB_CARGO:-/usr/bin/cargo}
LINKER=${WEB_LINKER:-$(command -v wasm-ld-22 || command -v wasm-ld || true)}
if [ ! -x "$CARGO" ] || [ -z "$LINKER" ] || [ ! -d /usr/lib/rustlib/src/rust/library ]; then
  echo "web/build.sh: needs Debian's rustc-web, cargo-web, rust-web-src and lld-22:" >&2
  echo "  apt-get install -y --no-install-recommends rustc-web cargo-web rust-web-src lld-22" >&2
  exit 1
fi

# wasm-bindgen-cli must be the exact version Cargo.lock pins for the wasm-bindgen crate.
WBG_VERSION=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
TOOLS=target/web-tools
WBG=$TOOLS/bin/wasm-bindgen
if [ ! -x "$WBG" ] || [ "$("$WBG" --version | awk '{ print $2 }')" != "$WBG_VERSION" ]; then
  echo "web/build.sh: installing wasm-bindgen-cli $WBG_VERSION into $TOOLS" >&2
  # Not --locked: one of its locked dependencies is missing from the registry here.
  cargo install wasm-bindgen-cli --version "$WBG_VERSION" --root "$TOOLS"
fi

# Debian's toolchain builds std for wasm32 from source (-Zbuild-std); its own target dir keeps it
# apart from the native builds. simd128 (every browser with WebGPU has it) lets the CPU path's
# portable kernels vectorise.
PATH=/usr/bin:$PATH RUSTC_BOOTSTRAP=1 CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER="$LINKER" \
  CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="-C target-feature=+simd128" \
  "$CARGO" build --release -p wgpu-gru-web --target wasm32-unknown-unknown \
  -Zbuild-std=std,panic_abort --target-dir target/web

"$WBG" --target web --out-name wgpu_gru --out-dir web/pkg \
  target/web/wasm32-unknown-unknown/release/wgpu_gru_web.wasm

mkdir -p web/data
cp assets/digits_gru.safetensors assets/digits_test.safetensors web/data/
echo "web/build.sh: built web/pkg/wgpu_gru.js ($(du -k web/pkg/wgpu_gru_bg.wasm | cut -f1) KiB of wasm)"
echo "serve it with: python3 -m http.server 8000 -d web   (then open http://localhost:8000/)"
