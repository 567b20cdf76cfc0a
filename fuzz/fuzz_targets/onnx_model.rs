#![no_main]
//! `cargo +nightly fuzz run onnx_model`: see `wgpu_gru_fuzz::targets::onnx_model`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| wgpu_gru_fuzz::targets::onnx_model(data));
