//! Shared by the GPU tests: one device per test binary, skip-or-fail without an adapter, and
//! running one input on every path (reference, CPU, GPU). Include `mod common;` beside it (the
//! random models come from `common::random`).
#![allow(dead_code)]

pub mod paths;

use std::io::Write;
use std::sync::OnceLock;
use wgpu_gru::gpu::GpuContext;

/// The shared context, or `None` (after printing why) when there is no adapter.
/// Panics when `REQUIRE_GPU=1` and no adapter exists, so CI cannot pass by skipping.
pub fn ctx() -> Option<&'static GpuContext> {
    static CTX: OnceLock<Option<GpuContext>> = OnceLock::new();
    CTX.get_or_init(|| match GpuContext::new_default() {
        Ok(c) => {
            // Straight to stderr, past libtest's capture, so CI logs show the device.
            let _ = writeln!(std::io::stderr(), "GPU tests run on: {}", c.describe());
            Some(c)
        }
        Err(e) => {
            if std::env::var("REQUIRE_GPU").is_ok_and(|v| v == "1") {
                panic!("REQUIRE_GPU=1 but no GPU adapter: {e}");
            }
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: no GPU adapter ({e}); set REQUIRE_GPU=1 to make this a failure"
            );
            None
        }
    })
    .as_ref()
}
