//! f16 weights (`Precision::F16Weights`) on the GPU: every algorithm computes the model whose
//! W_ih, W_hh and b_hh are rounded to f16, to f32 accuracy (against the f64 reference of that
//! rounded model), and stays within [`F16_TOLERANCE`] of the f32 model; a device without
//! `Features::SHADER_F16` refuses the option with a typed error.
//!
//! Skipped with a message without an adapter, unless `REQUIRE_GPU=1`; where the adapter has no
//! f16 (GL) only the refusal runs, and Vulkan's lavapipe must have it.

use crate::common;
use crate::gpu_common;

use std::io::Write;

use common::random::{Rng, f16_rounded as rounded, random_gru};
use wgpu_gru::gpu::{Algorithm, GpuContext, GpuGru, GpuOptions, Precision};
use wgpu_gru::{Batch, Direction, Error, GruConfig, SeqInput, Steps, Variant, reference};

/// Largest error against the f64 reference of the f16-rounded model (f32 arithmetic; lavapipe
/// measured ≤ 1.2e-7).
const ROUNDED_TOLERANCE: f32 = 5e-6;
/// Largest error against the f32 model: weights of |w| ≤ 1/√H rounded to f16 (relative error
/// ≤ 2⁻¹¹) over H-long dot products and T steps (measured 2.9e-5 to 1.3e-4 on these cases).
const F16_TOLERANCE: f32 = 1e-3;

#[test]
fn f16_weights_compute_the_rounded_model() {
    let Some(ctx) = gpu_common::ctx() else {
        return;
    };
    let info = ctx.device.adapter_info();
    if !ctx.device.features().contains(wgpu::Features::SHADER_F16) {
        // lavapipe has it; a Vulkan run that lacks it would test nothing.
        assert!(
            !(info.backend == wgpu::Backend::Vulkan && info.name.contains("llvmpipe")),
            "lavapipe without SHADER_F16"
        );
        let _ = writeln!(
            std::io::stderr(),
            "f16 kernels: skipped, {} has no SHADER_F16",
            ctx.describe()
        );
        return;
    }
    let mut rng = Rng(0xF16);
    let mut checked = 0;
    for (variant, dir, layers, (t, b, i, h)) in [
        (Variant::ResetAfter, Direction::Forward, 1, (9, 1, 5, 1)),
        (
            Variant::ResetAfter,
            Direction::Bidirectional,
            1,
            (7, 3, 6, 7),
        ),
        (Variant::ResetBefore, Direction::Forward, 2, (6, 5, 4, 65)),
        (Variant::ResetBefore, Direction::Reverse, 1, (5, 18, 9, 33)),
        (Variant::ResetAfter, Direction::Forward, 1, (4, 2, 17, 257)),
    ] {
        let config = GruConfig::new(i, h)
            .with_variant(variant)
            .with_direction(dir)
            .with_layers(layers);
        let gru = random_gru(config, 7 + h as u64);
        let x = rng.vec(t * b * i, 1.0);
        let lens: Vec<usize> = (0..b)
            .map(|r| if r == 0 { t } else { 1 + rng.below(t) })
            .collect();
        let input = SeqInput::new(&x, Steps(t), Batch(b)).with_lengths(&lens);
        let want_rounded = reference::forward(&rounded(&gru), &input).unwrap();
        let want = reference::forward(&gru, &input).unwrap();
        // The two models differ by more than the tolerance, so the check tells them apart.
        let apart = want.max_abs_diff(&want_rounded);
        assert!(
            apart > 4.0 * ROUNDED_TOLERANCE,
            "H={h}: models only {apart} apart"
        );
        // Auto and every forced algorithm but the grid.
        for &algorithm in [Algorithm::Auto].iter().chain(&Algorithm::FORCED[..4]) {
            for subgroups in [true, false] {
                let opts = GpuOptions::default()
                    .with_precision(Precision::F16Weights)
                    .with_algorithm(algorithm)
                    .with_subgroups(subgroups);
                let g = match GpuGru::with_options(ctx, &gru, opts) {
                    Ok(g) => g,
                    // The register kernel needs H ≤ 160: a refusal, not a fallback.
                    Err(Error::Unsupported(_))
                        if algorithm == Algorithm::SequenceRegisters && h > 160 =>
                    {
                        continue;
                    }
                    Err(e) => panic!("{algorithm:?} H={h}: {e}"),
                };
                let (got, stats) = g.forward_with_stats(&input).unwrap();
                let what = format!(
                    "{algorithm:?} (ran {:?}) subgroups={subgroups} {variant:?} {dir:?} L={layers} T={t} B={b} I={i} H={h}",
                    stats.algorithm
                );
                let e = got.max_abs_diff(&want_rounded);
                assert!(e <= ROUNDED_TOLERANCE, "{what}: {e} from the rounded model");
                let e = got.max_abs_diff(&want);
                assert!(e <= F16_TOLERANCE, "{what}: {e} from the f32 model");
                checked += 1;
            }
        }
    }
    let _ = writeln!(
        std::io::stderr(),
        "f16 kernels: ran ({checked} runs on {})",
        ctx.describe()
    );
}

/// f16 weights change the results: the rounded model is not the f32 one, so the test above
/// tells the two apart.
#[test]
fn rounding_to_f16_is_visible() {
    let gru = random_gru(GruConfig::new(5, 33), 3);
    let x = Rng(5).vec(6 * 2 * 5, 1.0);
    let input = SeqInput::new(&x, Steps(6), Batch(2));
    let a = reference::forward(&gru, &input).unwrap();
    let b = reference::forward(&rounded(&gru), &input).unwrap();
    let e = a.max_abs_diff(&b);
    assert!(e > 4.0 * ROUNDED_TOLERANCE && e < F16_TOLERANCE, "{e}");
}

/// A device made without `SHADER_F16` refuses f16 weights with `Error::MissingFeature`, before
/// creating anything.
#[test]
fn f16_weights_need_shader_f16() {
    if gpu_common::ctx().is_none() {
        return;
    }
    let adapter = GpuContext::default_adapter().unwrap();
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        label: Some("wgpu-gru test device without f16"),
        ..Default::default()
    }))
    .unwrap();
    let ctx = GpuContext::from_device(device, queue);
    let gru = random_gru(GruConfig::new(3, 4), 1);
    let opts = GpuOptions::default().with_precision(Precision::F16Weights);
    match GpuGru::with_options(&ctx, &gru, opts) {
        Err(Error::MissingFeature {
            option, feature, ..
        }) => {
            assert_eq!((option, feature), ("Precision::F16Weights", "SHADER_F16"));
        }
        other => panic!("expected MissingFeature, got {:?}", other.map(|_| ())),
    }
    // f32 weights work on the same device.
    assert!(GpuGru::with_options(&ctx, &gru, GpuOptions::default()).is_ok());
}
