#![no_main]
//! `cargo +nightly fuzz run safetensors_import`: see `wgpu_gru_fuzz::targets::safetensors_import`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| wgpu_gru_fuzz::targets::safetensors_import(data));
