//! Problems larger than the device's limits are split into chunks (over the batch, then time) and
//! still match the reference; where no split helps, a typed error says which limit.

use crate::common;
use crate::gpu_common;

use common::random::{Rng, random_gru};
use gpu_common::ctx;
use wgpu_gru::gpu::{Algorithm, GpuContext, GpuGru, GpuOptions};
use wgpu_gru::{Batch, Steps};
use wgpu_gru::{Direction, Error, GruConfig, SeqInput, Variant, reference};

/// A device on the same adapter with deliberately small buffer, binding and dispatch limits.
fn small_device() -> Option<GpuContext> {
    let base = ctx()?;
    let mut limits = base.device.limits();
    limits.max_storage_buffer_binding_size = 64 << 10;
    limits.max_buffer_size = 64 << 10;
    limits.max_compute_workgroups_per_dimension = 64;
    Some(
        pollster::block_on(GpuContext::with_limits(Some(limits)))
            .expect("device with small limits"),
    )
}

fn compare(
    ctx: &GpuContext,
    gru: &wgpu_gru::Gru,
    t: usize,
    b: usize,
    lengths: bool,
    algo: Algorithm,
) -> u32 {
    let c = &gru.config;
    let mut rng = Rng(t as u64 * 31 + b as u64);
    let x = rng.vec(t * b * c.input_size, 1.0);
    let h0 = rng.vec(c.num_layers * c.num_directions() * b * c.hidden_size, 0.5);
    let lens: Vec<usize> = (0..b)
        .map(|i| if i == 0 { t } else { 1 + rng.below(t) })
        .collect();
    let mut input = SeqInput::new(&x, Steps(t), Batch(b)).with_h0(&h0);
    if lengths {
        input = input.with_lengths(&lens);
    }
    let want = reference::forward(gru, &input).unwrap();
    let g = GpuGru::with_options(ctx, gru, GpuOptions::default().with_algorithm(algo)).unwrap();
    let (got, stats) = g.forward_with_stats(&input).unwrap();
    let err = got.max_abs_diff(&want);
    assert!(
        err <= 1e-5,
        "T={t} B={b} {algo:?}: max abs error {err} ({stats:?})"
    );
    stats.submits
}

#[test]
fn batch_chunks_match_the_reference() {
    let Some(small) = small_device() else { return };
    for variant in [Variant::ResetAfter, Variant::ResetBefore] {
        for dir in [Direction::Forward, Direction::Bidirectional] {
            // x alone is 80 KiB > 64 KiB, and T·B/64 = 40 workgroups per dimension fit.
            let cfg = GruConfig::new(8, 16)
                .with_variant(variant)
                .with_direction(dir)
                .with_layers(2);
            let gru = random_gru(cfg, 3);
            for algo in [Algorithm::PerStep, Algorithm::SequenceRegisters] {
                let submits = compare(&small, &gru, 64, 40, true, algo);
                assert!(
                    submits > 1,
                    "expected several chunks, got {submits} submit(s)"
                );
            }
        }
    }
}

#[test]
fn batch_first_chunks_match_the_reference() {
    let Some(small) = small_device() else { return };
    let mut cfg = GruConfig::new(8, 16);
    cfg.batch_first = true;
    let gru = random_gru(cfg, 4);
    assert!(compare(&small, &gru, 50, 60, true, Algorithm::Auto) > 1);
}

#[test]
fn time_chunks_carry_the_state() {
    let Some(small) = small_device() else { return };
    // One row is already too large: 2000 steps × 3·16 projections = 375 KiB.
    for variant in [Variant::ResetAfter, Variant::ResetBefore] {
        let gru = random_gru(GruConfig::new(8, 16).with_variant(variant), 5);
        assert!(compare(&small, &gru, 2000, 1, false, Algorithm::Auto) > 1);
        assert!(compare(&small, &gru, 2000, 3, true, Algorithm::Auto) > 1);
    }
}

#[test]
fn impossible_splits_are_typed_errors() {
    let Some(small) = small_device() else { return };
    // A reverse direction cannot be split over time: a clear error, not a wrong answer.
    let gru = random_gru(GruConfig::new(8, 16).with_direction(Direction::Reverse), 6);
    let x = vec![0.1f32; 2000 * 8];
    let g = GpuGru::new(&small, &gru).unwrap();
    match g.forward(&SeqInput::new(&x, Steps(2000), Batch(1))) {
        Err(Error::DeviceLimit { needed, limit, .. }) => assert!(needed > limit),
        other => panic!("expected DeviceLimit, got {other:?}"),
    }
    // Weights larger than one binding.
    let big = random_gru(GruConfig::new(8, 200), 7);
    assert!(matches!(
        GpuGru::new(&small, &big),
        Err(Error::DeviceLimit { .. })
    ));
}
