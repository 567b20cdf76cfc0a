#![no_main]
//! `cargo +nightly fuzz run cli_run`: see `wgpu_gru_fuzz::targets::cli_run`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    wgpu_gru_fuzz::targets::cli_run(data);
});
