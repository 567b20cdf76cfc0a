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

/// Records `record`, copies `n` floats of `out` back, and returns them.
#[allow(dead_code)] // not every binary that includes this module reads back
pub fn run_and_read(
    ctx: &wgpu_gru::gpu::GpuContext,
    record: impl FnOnce(&mut wgpu_gru::wgpu::CommandEncoder),
    out: &wgpu_gru::wgpu::Buffer,
    n: usize,
) -> Vec<f32> {
    use wgpu_gru::wgpu;
    let dev = &ctx.device;
    let staging = dev.create_buffer(&wgpu::BufferDescriptor {
        label: Some("test readback"),
        size: (n * 4) as u64,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut enc = dev.create_command_encoder(&Default::default());
    record(&mut enc);
    enc.copy_buffer_to_buffer(out, 0, &staging, 0, (n * 4) as u64);
    ctx.queue.submit([enc.finish()]);
    let slice = staging.slice(..);
    slice.map_async(wgpu::MapMode::Read, |_| {});
    dev.poll(wgpu::PollType::wait_indefinitely()).unwrap();
    let got: Vec<f32> = bytemuck::cast_slice(&slice.get_mapped_range().unwrap()).to_vec();
    staging.unmap();
    got
}
