//! The occupancy probe (`gpu::resident_workgroups`): how many workgroups of a shape a device runs
//! at once, the bound for a grid-wide persistent kernel. Skipped with a message without an
//! adapter, unless `REQUIRE_GPU=1`.

use crate::gpu_common;

use std::io::Write;

use wgpu_gru::Error;
use wgpu_gru::gpu::resident_workgroups;

#[test]
fn resident_workgroups_are_counted() {
    let Some(ctx) = gpu_common::ctx() else {
        return;
    };
    // One workgroup is resident alone.
    let one = resident_workgroups(ctx, 64, 0, 1).unwrap();
    assert_eq!((one.launched, one.resident), (1, 1));
    // llvmpipe runs a workgroup per CPU thread, one thread per core: with two cores, two at once.
    let llvmpipe = ctx.device.adapter_info().name.contains("llvmpipe");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
    for (wg, bytes) in [(256, 0), (256, 16 * 1024), (64, 4096)] {
        // The count depends on when the driver starts each workgroup: the best of three tries.
        let o = (0..3)
            .map(|_| resident_workgroups(ctx, wg, bytes, 64).unwrap())
            .max_by_key(|o| o.resident)
            .unwrap();
        assert!(
            (1..=64).contains(&o.resident),
            "{wg} invocations, {bytes} bytes: {o:?}"
        );
        if llvmpipe && cores >= 2 {
            assert!(o.resident >= 2, "llvmpipe on {cores} cores: {o:?}");
        }
        let _ = writeln!(
            std::io::stderr(),
            "occupancy on {}: {} of {} workgroups of {wg} invocations with {} bytes ran at once",
            ctx.describe(),
            o.resident,
            o.launched,
            o.workgroup_bytes
        );
    }
}

#[test]
fn impossible_probes_are_typed_errors() {
    let Some(ctx) = gpu_common::ctx() else {
        return;
    };
    let limits = ctx.device.limits();
    assert!(matches!(
        resident_workgroups(ctx, limits.max_compute_invocations_per_workgroup + 1, 0, 4),
        Err(Error::DeviceLimit { .. })
    ));
    assert!(matches!(
        resident_workgroups(ctx, 64, limits.max_compute_workgroup_storage_size + 4, 4),
        Err(Error::DeviceLimit { .. })
    ));
    assert!(matches!(
        resident_workgroups(ctx, 64, 0, 0),
        Err(Error::InvalidArgument { .. })
    ));
}
