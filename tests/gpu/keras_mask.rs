//! Keras masks: per-step masks `[B, T]` (pre-padding, holes, all-masked rows), with and without
//! `zero_output_for_mask`, `go_backwards`, both variants, against real Keras
//! (`tests/data/keras_mask/`, written by `scripts/keras_masking.py`, including the expectations
//! of Keras's own `gru_test.py::test_masking`), and random masks on every path against the
//! reference.
//!
//! GPU runs are skipped with a message when no adapter exists, unless `REQUIRE_GPU=1`.

use crate::common;
use crate::gpu_common;

use wgpu_gru::cpu::CpuGru;
use wgpu_gru::gpu::{Algorithm, GpuGru, GpuOptions};
use wgpu_gru::{Batch, Steps};
use wgpu_gru::{Direction, Error, GruConfig, SeqInput, Variant, reference};

use common::random::{Rng, random_gru};
use common::{Case, keras_mask_cases, run_cases_within};

#[test]
fn the_keras_cases_are_all_there() {
    let cases: Vec<Case> = keras_mask_cases()
        .iter()
        .map(|p| Case::load(p).unwrap())
        .collect();
    assert!(cases.len() >= 15, "{} cases", cases.len());
    assert!(cases.iter().all(|c| c.mask.is_some()));
    let has = |f: &dyn Fn(&Case) -> bool| cases.iter().any(f);
    assert!(has(&|c| c.zero_output_for_mask));
    assert!(has(&|c| c.imported.gru.config.go_backwards));
    assert!(has(
        &|c| c.imported.gru.config.variant == Variant::ResetBefore
    ));
    assert!(has(&|c| c.name.starts_with("keras_test_masking")));
    // Pre-padding: a row whose valid steps all come after its masked ones.
    assert!(has(&|c| {
        let m = c.mask.as_ref().unwrap();
        m.chunks(c.steps)
            .any(|row| !row[0] && row.windows(2).all(|w| w[0] <= w[1]) && row[c.steps - 1])
    }));
}

#[test]
fn keras_masks_on_reference() {
    run_cases_within(
        "reference",
        &keras_mask_cases(),
        &mut |g, i| reference::forward(g, i),
        &|_| common::TOLERANCE,
    );
}

#[test]
fn keras_masks_on_cpu() {
    for threads in [1, 3] {
        run_cases_within(
            &format!("cpu x{threads}"),
            &keras_mask_cases(),
            &mut |g, i| {
                CpuGru::new(g)?
                    .with_threads(threads)
                    .with_parallel_min_flop(0)
                    .forward(i)
            },
            &common::f32_tolerance,
        );
    }
}

#[test]
fn keras_masks_on_every_gpu_kernel() {
    let Some(ctx) = gpu_common::ctx() else { return };
    let runs = [
        (Algorithm::Auto, true),
        (Algorithm::Auto, false),
        (Algorithm::PerStep, true),
        (Algorithm::Sequence, true),
        (Algorithm::SequenceRegisters, false),
        (Algorithm::Tiled, true),
    ];
    for (algorithm, subgroups) in runs {
        let opts = GpuOptions::default()
            .with_algorithm(algorithm)
            .with_subgroups(subgroups);
        run_cases_within(
            &format!("gpu {algorithm:?} subgroups={subgroups}"),
            &keras_mask_cases(),
            &mut |g, i| GpuGru::with_options(ctx, g, opts)?.forward(i),
            &common::f32_tolerance,
        );
    }
}

/// Masks of every kind: all valid, all masked, pre-padding, holes, a single valid step.
fn random_mask(rng: &mut Rng, b: usize, t: usize) -> Vec<bool> {
    (0..b)
        .flat_map(|row| -> Vec<bool> {
            match row % 5 {
                0 => vec![true; t],
                1 => vec![false; t],
                2 => {
                    let pad = rng.below(t + 1);
                    (0..t).map(|k| k >= pad).collect()
                }
                3 => (0..t).map(|_| rng.next_f32() > 0.0).collect(),
                _ => {
                    let k0 = rng.below(t);
                    (0..t).map(|k| k == k0).collect()
                }
            }
        })
        .collect()
}

struct Shape {
    config: GruConfig,
    t: usize,
    b: usize,
}

fn shapes() -> Vec<Shape> {
    let mut v = Vec::new();
    for (k, (h, i, t, b)) in [(1, 3, 6, 5), (7, 4, 9, 7), (65, 9, 12, 10), (17, 5, 70, 6)]
        .into_iter()
        .enumerate()
    {
        for variant in [Variant::ResetAfter, Variant::ResetBefore] {
            let base = GruConfig::new(i, h).with_variant(variant);
            v.push(Shape {
                config: base
                    .clone()
                    .with_direction(Direction::Bidirectional)
                    .with_layers(2),
                t,
                b,
            });
            let mut back = base.clone();
            back.go_backwards = true;
            back.batch_first = k % 2 == 0;
            v.push(Shape { config: back, t, b });
            v.push(Shape {
                config: base.with_direction(Direction::Reverse),
                t,
                b,
            });
        }
    }
    v
}

/// Random masks on random shapes (H not a multiple of any workgroup size), every path against
/// the reference, with and without zero outputs and h0.
#[test]
fn random_masks_match_the_reference_on_every_path() {
    let ctx = gpu_common::ctx();
    let mut rng = Rng(0x6d61736b);
    for (n, s) in shapes().into_iter().enumerate() {
        let gru = random_gru(s.config.clone(), n as u64 + 11);
        let x = rng.vec(s.t * s.b * s.config.input_size, 1.0);
        let slots = s.config.num_layers * s.config.num_directions();
        let h0 = rng.vec(slots * s.b * s.config.hidden_size, 0.5);
        let mask = random_mask(&mut rng, s.b, s.t);
        for zero in [false, true] {
            let mut input = SeqInput::new(&x, Steps(s.t), Batch(s.b))
                .with_mask(&mask)
                .with_zero_output_for_mask(zero);
            if n % 2 == 1 {
                input = input.with_h0(&h0);
            }
            let want = reference::forward(&gru, &input).unwrap();
            let label = format!("{:?} zero={zero}", s.config);
            let cpu = CpuGru::new(&gru)
                .unwrap()
                .with_threads(2)
                .with_parallel_min_flop(0)
                .forward(&input)
                .unwrap();
            let e = cpu.max_abs_diff(&want);
            assert!(e < 2e-5, "cpu {label}: {e}");
            if let Some(ctx) = ctx {
                // Each shape and output mode on one kernel, rotating through all of them.
                const ALGOS: [Algorithm; 4] = [
                    Algorithm::Auto,
                    Algorithm::PerStep,
                    Algorithm::Tiled,
                    Algorithm::Sequence,
                ];
                let algorithm = ALGOS[(2 * n + usize::from(zero)) % 4];
                let opts = GpuOptions::default().with_algorithm(algorithm);
                let g = GpuGru::with_options(ctx, &gru, opts).unwrap();
                let (got, stats) = g.forward_with_stats(&input).unwrap();
                let e = got.max_abs_diff(&want);
                assert!(e < 2e-5, "gpu {algorithm:?} {label}: {e}");
                // The mask is data the kernels read: no dispatch is added.
                let mut unmasked =
                    SeqInput::new(&x, Steps(s.t), Batch(s.b)).with_zero_output_for_mask(zero);
                if n % 2 == 1 {
                    unmasked = unmasked.with_h0(&h0);
                }
                let (_, plain) = g.forward_with_stats(&unmasked).unwrap();
                assert_eq!(stats.dispatches, plain.dispatches, "{label}");
                assert_eq!(stats.submits, 1);
            }
        }
    }
}

/// Masked semantics by construction: an all-true mask is no mask; a pre-padded mask with zero
/// outputs gives, in the forward direction, what the unpadded rows give.
#[test]
fn masks_agree_with_the_unmasked_and_unpadded_forwards() {
    let config = GruConfig::new(3, 4);
    let gru = random_gru(config, 5);
    let (t, b) = (6, 2);
    let mut rng = Rng(99);
    let x = rng.vec(t * b * 3, 1.0);
    let all = vec![true; t * b];
    let plain = reference::forward(&gru, &SeqInput::new(&x, Steps(t), Batch(b))).unwrap();
    let masked =
        reference::forward(&gru, &SeqInput::new(&x, Steps(t), Batch(b)).with_mask(&all)).unwrap();
    assert_eq!(plain, masked);
    // Row 1 padded by 2 in front: its last 4 steps equal a forward over those 4 alone.
    let mask: Vec<bool> = (0..b * t).map(|k| k < t || k % t >= 2).collect();
    let out = CpuGru::new(&gru)
        .unwrap()
        .forward(&SeqInput::new(&x, Steps(t), Batch(b)).with_mask(&mask))
        .unwrap();
    let x_tail: Vec<f32> = (2..t)
        .flat_map(|tt| x[(tt * b + 1) * 3..(tt * b + 2) * 3].to_vec())
        .collect();
    let tail = reference::forward(&gru, &SeqInput::new(&x_tail, Steps(t - 2), Batch(1))).unwrap();
    for tt in 0..t - 2 {
        let got = &out.output[((tt + 2) * b + 1) * 4..((tt + 2) * b + 2) * 4];
        let want = &tail.output[tt * 4..(tt + 1) * 4];
        assert!(wgpu_gru::max_abs_diff(got, want) < 1e-6, "step {tt}");
    }
    assert!(wgpu_gru::max_abs_diff(&out.h_n[4..], &tail.h_n) < 1e-6);
    // The padded steps output zeros (nothing seen yet).
    assert!(
        out.output[(b + 1) * 4..(b + 2) * 4]
            .iter()
            .all(|&v| v == 0.0)
    );
}

#[test]
fn bad_masks_are_refused() {
    let gru = random_gru(GruConfig::new(2, 3), 1);
    let x = vec![0.0f32; 4 * 2 * 2];
    let short = vec![true; 7];
    let e = reference::forward(
        &gru,
        &SeqInput::new(&x, Steps(4), Batch(2)).with_mask(&short),
    )
    .unwrap_err();
    assert!(matches!(e, Error::ShapeMismatch { .. }), "{e}");
    let mask = vec![true; 8];
    let lens = [4, 2];
    let both = SeqInput::new(&x, Steps(4), Batch(2))
        .with_mask(&mask)
        .with_lengths(&lens);
    assert!(reference::forward(&gru, &both).is_err());
    assert!(CpuGru::new(&gru).unwrap().forward(&both).is_err());
    if let Some(ctx) = gpu_common::ctx() {
        assert!(GpuGru::new(ctx, &gru).unwrap().forward(&both).is_err());
    }
}
