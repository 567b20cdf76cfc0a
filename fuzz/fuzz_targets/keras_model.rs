#![no_main]
//! `cargo +nightly fuzz run keras_model`: see `wgpu_gru_fuzz::targets::keras_model`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| wgpu_gru_fuzz::targets::keras_model(data));
