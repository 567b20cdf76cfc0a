#![no_main]
//! `cargo +nightly fuzz run torch_pt`: see `wgpu_gru_fuzz::targets::torch_pt`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| wgpu_gru_fuzz::targets::torch_pt(data));
