#![no_main]
//! `cargo +nightly fuzz run torch_pickle`: see `wgpu_gru_fuzz::targets::torch_pickle`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| wgpu_gru_fuzz::targets::torch_pickle(data));
