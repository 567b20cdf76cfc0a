//! ONNX's activations (all 11, as f and as g, with α/β and clip), forward, reverse and
//! bidirectional with a different pair per direction, against ONNX Runtime's own outputs
//! (`tests/data/onnx_activations/`, written by `scripts/onnx_activations.py`) on the reference,
//! the CPU path and every GPU kernel.
//!
//! GPU runs are skipped with a message when no adapter exists, unless `REQUIRE_GPU=1`.

use crate::common;
use crate::gpu_common;

use wgpu_gru::cpu::CpuGru;
use wgpu_gru::gpu::{Algorithm, GpuGru, GpuOptions};
use wgpu_gru::{Activation, Direction, reference};

use common::{Case, f32_tolerance, onnx_activation_cases, run_cases_within};

/// Every activation as f and as g, and several bidirectional pairs: the case set covers what
/// the issue asks for, so a deleted file cannot pass unnoticed.
#[test]
fn the_case_set_covers_every_activation_in_both_roles() {
    let cases: Vec<Case> = onnx_activation_cases()
        .iter()
        .map(|p| Case::load(p).unwrap())
        .collect();
    assert!(cases.len() >= 29, "{} cases", cases.len());
    let codes = |role: usize| {
        let mut seen = [false; 11];
        for c in &cases {
            let cfg = &c.imported.gru.config;
            for d in 0..cfg.num_directions() {
                let a = cfg.activations_for(d);
                let act = if role == 0 { a.f } else { a.g };
                seen[act.code().0 as usize] = true;
            }
        }
        seen
    };
    assert_eq!(codes(0), [true; 11], "activations as f");
    assert_eq!(codes(1), [true; 11], "activations as g");
    let mixed = cases
        .iter()
        .filter(|c| {
            let cfg = &c.imported.gru.config;
            cfg.direction == Direction::Bidirectional
                && cfg.activations_for(0) != cfg.activations_for(1)
        })
        .count();
    assert!(
        mixed >= 6,
        "{mixed} bidirectional cases with a pair per direction"
    );
    assert!(
        cases.iter().any(|c| c.imported.gru.config.clip.is_some()),
        "no case with clip"
    );
    // The issue's own case, as it describes it.
    let issue = cases
        .iter()
        .find(|c| c.name == "onnx_issue15_bidir_mixed")
        .expect("the issue's case");
    let cfg = &issue.imported.gru.config;
    assert_eq!(cfg.clip, Some(3.0));
    assert_eq!(
        cfg.activations_for(0).f,
        Activation::LeakyRelu { alpha: 0.05 }
    );
    assert_eq!(
        cfg.activations_for(0).g,
        Activation::ScaledTanh {
            alpha: 0.8,
            beta: 1.1
        }
    );
    assert_eq!(
        cfg.activations_for(1).f,
        Activation::HardSigmoid {
            alpha: 0.3,
            beta: 0.4
        }
    );
    assert_eq!(cfg.activations_for(1).g, Activation::Softplus);
}

#[test]
fn onnx_activation_cases_match_on_reference() {
    let n = run_cases_within(
        "reference",
        &onnx_activation_cases(),
        &mut |g, i| reference::forward(g, i),
        &|_| common::TOLERANCE,
    );
    assert!(n > 0);
}

#[test]
fn onnx_activation_cases_match_on_cpu() {
    for threads in [1, 2] {
        run_cases_within(
            &format!("cpu x{threads}"),
            &onnx_activation_cases(),
            &mut |g, i| {
                CpuGru::new(g)?
                    .with_threads(threads)
                    .with_parallel_min_flop(0)
                    .forward(i)
            },
            &f32_tolerance,
        );
    }
}

/// The GPU's default choice on every case, then every kernel, portable and subgroup, on the
/// bidirectional cases: the activation code is shared by all kernels, and what differs between
/// them is how each reaches its direction's pair.
#[test]
fn onnx_activation_cases_match_on_every_gpu_kernel() {
    let Some(ctx) = gpu_common::ctx() else { return };
    let all = onnx_activation_cases();
    run_cases_within(
        "gpu Auto",
        &all,
        &mut |g, i| GpuGru::new(ctx, g)?.forward(i),
        &f32_tolerance,
    );
    let bidir: Vec<_> = all
        .into_iter()
        .filter(|p| {
            Case::load(p).unwrap().imported.gru.config.direction == Direction::Bidirectional
        })
        .collect();
    assert!(bidir.len() >= 6);
    // Every forced algorithm but the grid.
    for &algorithm in &Algorithm::FORCED[..4] {
        for subgroups in [true, false] {
            let opts = GpuOptions::default()
                .with_algorithm(algorithm)
                .with_subgroups(subgroups);
            run_cases_within(
                &format!("gpu {algorithm:?} subgroups={subgroups}"),
                &bidir,
                &mut |g, i| GpuGru::with_options(ctx, g, opts)?.forward(i),
                &f32_tolerance,
            );
        }
    }
}

/// A pair per direction costs no dispatch: the same model with one shared pair records as many.
#[test]
fn a_pair_per_direction_keeps_the_dispatch_count() {
    let Some(ctx) = gpu_common::ctx() else { return };
    for path in onnx_activation_cases() {
        let case = Case::load(&path).unwrap();
        let mixed = &case.imported.gru;
        if mixed.config.num_directions() != 2 {
            continue;
        }
        let mut shared = mixed.clone();
        shared.config.activations = vec![mixed.config.activations_for(0)];
        let input = case.input();
        for algorithm in [Algorithm::PerStep, Algorithm::Sequence, Algorithm::Tiled] {
            let opts = GpuOptions::default().with_algorithm(algorithm);
            let stats = |g: &wgpu_gru::Gru| {
                GpuGru::with_options(ctx, g, opts)
                    .unwrap()
                    .forward_with_stats(&input)
                    .unwrap()
                    .1
                    .dispatches
            };
            assert_eq!(stats(mixed), stats(&shared), "{} {algorithm:?}", case.name);
        }
    }
}
