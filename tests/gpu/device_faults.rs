//! GPU faults are typed errors, never panics: workspaces no device can hold, a destroyed device,
//! and wgpu errors that escape every error scope.
//!
//! Skipped with a message when no adapter exists, unless `REQUIRE_GPU=1`.

use crate::common;
use crate::gpu_common;

use common::errors::{is_device_lost, refused};
use gpu_common::ctx;
use gpu_common::paths::small_gru;
use wgpu_gru::gpu::{GpuContext, GpuGru};
use wgpu_gru::{Batch, Steps};
use wgpu_gru::{Direction, Error, SeqInput, Variant};

/// A workspace no device can hold is a typed error, before any allocation.
#[test]
fn impossible_workspace_is_a_typed_error() {
    let Some(ctx) = ctx() else { return };
    let g = GpuGru::new(ctx, &small_gru(Variant::ResetAfter, Direction::Forward, 1)).unwrap();
    for (t, b) in [
        (1usize << 30, 1usize << 30),
        (1 << 40, 3),
        (usize::MAX, 2),
        (3, 1 << 34),
    ] {
        let r = g.workspace(Steps(t), Batch(b));
        refused(
            r,
            |e| matches!(e, Error::DeviceLimit { .. } | Error::Overflow(_)),
            &[],
        );
    }
    // The layer still works afterwards.
    let x = vec![0.5; 2 * 3];
    g.forward(&SeqInput::new(&x, Steps(2), Batch(1))).unwrap();
}

/// A layer on a device of its own (the shared one must survive for the other tests), and that
/// device destroyed.
fn destroyed() -> Option<(GpuContext, wgpu_gru::Gru, GpuGru)> {
    ctx()?;
    let own = GpuContext::new_default().expect("second device");
    let gru = small_gru(Variant::ResetAfter, Direction::Forward, 1);
    let g = GpuGru::new(&own, &gru).unwrap();
    let x = vec![0.5; 2 * 3];
    g.forward(&SeqInput::new(&x, Steps(2), Batch(1))).unwrap();
    own.device.destroy();
    Some((own, gru, g))
}

/// After the device is destroyed, forwards return `Error::DeviceLost` (same shape, or a new shape that
/// needs a new workspace), never panic.
#[test]
fn forward_on_destroyed_device_is_an_error() {
    let Some((own, _gru, g)) = destroyed() else {
        return;
    };
    let x = vec![0.5; 2 * 3];
    for _ in 0..2 {
        let r = g.forward(&SeqInput::new(&x, Steps(2), Batch(1)));
        refused(r, is_device_lost, &[]);
        let r = g.forward(&SeqInput::new(&x, Steps(1), Batch(2)));
        refused(r, is_device_lost, &[]);
    }
    assert!(own.check_lost().is_err());
}

/// Building a layer on a destroyed device returns `Error::DeviceLost`, never panics.
#[test]
fn new_on_destroyed_device_is_an_error() {
    let Some((own, gru, g)) = destroyed() else {
        return;
    };
    refused(GpuGru::new(&own, &gru), is_device_lost, &[]);
    refused(g.workspace(Steps(3), Batch(3)), is_device_lost, &[]);
}

/// On a device the crate created, a wgpu error that escapes every error scope (here the app's own
/// invalid buffer) is returned once, as `Error::Gpu`, by the next call, instead of wgpu's
/// default handler panicking; the device is not lost, so later calls work.
#[test]
fn uncaptured_error_is_reported_once() {
    if ctx().is_none() {
        return;
    }
    let own = GpuContext::new_default().expect("second device");
    let gru = small_gru(Variant::ResetAfter, Direction::Forward, 1);
    let g = GpuGru::new(&own, &gru).unwrap();
    let x = vec![0.5; 2 * 3];
    let want = g.forward(&SeqInput::new(&x, Steps(2), Batch(1))).unwrap();
    // MAP_READ with MAP_WRITE is invalid without MAPPABLE_PRIMARY_BUFFERS.
    let _bad = own.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("invalid on purpose"),
        size: 16,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::MAP_WRITE,
        mapped_at_creation: false,
    });
    refused(
        g.forward(&SeqInput::new(&x, Steps(2), Batch(1))),
        |e| matches!(e, Error::Gpu(m) if m.contains("uncaptured")),
        &[],
    );
    let again = g.forward(&SeqInput::new(&x, Steps(2), Batch(1))).unwrap();
    assert_eq!(again.output, want.output);
    assert!(own.check_lost().is_ok());
}
