//! How many workgroups of a kernel's shape a device runs at once (`shaders/occupancy.wgsl`): the
//! bound a grid-wide persistent kernel must launch within, measured rather than assumed.

use super::context::GpuContext;
use super::io::{pop_scopes, read_back};
use super::layout::{Bind, Layout, bind_whole};
use super::wgsl::{Shader, Spec};
use crate::error::{Error, Result};

/// What [`resident_workgroups`] measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Occupancy {
    /// Invocations per workgroup.
    pub workgroup_size: u32,
    /// Workgroup memory each workgroup declared (bytes, a multiple of 4).
    pub workgroup_bytes: u32,
    /// Workgroups dispatched.
    pub launched: u32,
    /// The most that ran at the same time.
    pub resident: u32,
}

/// Dispatches `launched` workgroups of `workgroup_size` invocations, each declaring
/// `workgroup_bytes` of workgroup memory (rounded up to 4), and returns the most that ran at the
/// same time: each holds its place, polling a bounded number of times, until all have arrived.
/// A lower bound on what the device keeps resident, reached when the launch exceeds it. One
/// submit; blocks until it is done.
pub fn resident_workgroups(
    ctx: &GpuContext,
    workgroup_size: u32,
    workgroup_bytes: u32,
    launched: u32,
) -> Result<Occupancy> {
    let device = &ctx.device;
    let limits = device.limits();
    let max_wg = limits
        .max_compute_invocations_per_workgroup
        .min(limits.max_compute_workgroup_size_x);
    if workgroup_size == 0 || workgroup_size > max_wg {
        return Err(Error::DeviceLimit {
            what: "invocations per workgroup".into(),
            needed: workgroup_size.into(),
            limit: max_wg.into(),
        });
    }
    let bytes = workgroup_bytes.max(4).next_multiple_of(4);
    if bytes > limits.max_compute_workgroup_storage_size {
        return Err(Error::DeviceLimit {
            what: "workgroup memory (bytes)".into(),
            needed: bytes.into(),
            limit: limits.max_compute_workgroup_storage_size.into(),
        });
    }
    if launched == 0 || launched > limits.max_compute_workgroups_per_dimension {
        return Err(Error::arg(
            "launched",
            format!(
                "{launched} workgroups: 1 to {}",
                limits.max_compute_workgroups_per_dimension
            ),
        ));
    }
    ctx.refresh_lost()?;
    // Polls per workgroup: within llvmpipe's 65,535 loop iterations per invocation on software
    // adapters; long enough on hardware for a device-full of workgroups to arrive.
    let spin = super::wgsl::grid_spin(ctx.facts().software);
    let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
    let oom = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
    let layout = Layout::new(device, "wgpu-gru occupancy", &[Bind::ReadWrite]);
    let module = Shader::Occupancy.create(device, Spec::default());
    let pipeline = layout.pipeline(
        device,
        &module,
        "occupancy",
        &[
            ("PROBE_WG", f64::from(workgroup_size)),
            ("PAD", f64::from(bytes / 4)),
            ("LAUNCHED", f64::from(launched)),
            ("SPIN", f64::from(spin)),
        ],
    );
    let slots = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("wgpu-gru occupancy slots"),
        size: 16,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    let read = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("wgpu-gru occupancy read-back"),
        size: 16,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let group = bind_whole(device, "wgpu-gru occupancy group", &layout.group, &[&slots]);
    let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
        label: Some("wgpu-gru occupancy"),
    });
    {
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("wgpu-gru occupancy pass"),
            timestamp_writes: None,
        });
        pass.set_pipeline(&pipeline);
        pass.set_bind_group(0, &group, &[]);
        pass.dispatch_workgroups(launched, 1, 1);
    }
    encoder.copy_buffer_to_buffer(&slots, 0, &read, 0, 16);
    let index = ctx.submit([encoder.finish()]);
    let mut out = [0.0f32; 4];
    let result = read_back(ctx, index, &mut [(&read, &mut out[..])]);
    pop_scopes(oom, scope)?;
    result?;
    ctx.check_lost()?;
    let [taken, most, arrived, _] = out.map(f32::to_bits);
    if taken != 0 || arrived != launched {
        return Err(Error::Gpu(format!(
            "occupancy probe: {arrived} of {launched} workgroups arrived, {taken} slots left taken"
        )));
    }
    Ok(Occupancy {
        workgroup_size,
        workgroup_bytes: bytes,
        launched,
        resident: most,
    })
}
