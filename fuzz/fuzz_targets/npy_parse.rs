#![no_main]
//! `cargo +nightly fuzz run npy_parse`: see `wgpu_gru_fuzz::targets::npy_parse`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| wgpu_gru_fuzz::targets::npy_parse(data));
