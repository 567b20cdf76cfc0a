//! Inconsistent sequence inputs and models are refused with a typed `Error` on every path
//! (reference, CPU, GPU), never a panic; empty problems (T = 0, B = 0) are not errors.
//!
//! GPU parts are skipped with a message when no adapter exists, unless `REQUIRE_GPU=1`.

use crate::common;
use crate::gpu_common;

use common::errors::{is_arg, is_overflow, is_shape, refused};
use common::random::random_gru;
use gpu_common::ctx;
use gpu_common::paths::{Impl, all_paths, per_impl, run_on, small_gru};
use wgpu_gru::cpu::CpuGru;
use wgpu_gru::gpu::GpuGru;
use wgpu_gru::{Batch, Steps};
use wgpu_gru::{Direction, Error, GruConfig, SeqInput, Variant, reference};

#[test]
fn bad_sequence_inputs() {
    let gru = small_gru(Variant::ResetAfter, Direction::Bidirectional, 2);
    let (t, b, i) = (4, 3, 3);
    let x = vec![0.25; t * b * i];
    let h0 = vec![0.0; 2 * 2 * b * 5];
    type Case<'a> = (SeqInput<'a>, fn(&Error) -> bool, &'a [&'a str]);
    let cases: Vec<Case<'_>> = vec![
        (SeqInput::new(&x[1..], Steps(t), Batch(b)), is_shape, &["x"]),
        (SeqInput::new(&x, Steps(t), Batch(b + 1)), is_shape, &["x"]),
        (
            SeqInput::new(&x, Steps(t), Batch(b)).with_h0(&h0[1..]),
            is_shape,
            &["h0"],
        ),
        (
            SeqInput::new(&x, Steps(t), Batch(b)).with_lengths(&[1, 2]),
            is_shape,
            &["lengths"],
        ),
        (
            SeqInput::new(&x, Steps(t), Batch(b)).with_lengths(&[1, 2, 3, 4]),
            is_shape,
            &["lengths"],
        ),
        (
            SeqInput::new(&x, Steps(t), Batch(b)).with_lengths(&[1, 0, 3]),
            is_arg,
            &["lengths[1] = 0"],
        ),
        (
            SeqInput::new(&x, Steps(t), Batch(b)).with_lengths(&[1, 5, 3]),
            is_arg,
            &["lengths[1] = 5"],
        ),
        (
            SeqInput::new(&x, Steps(t), Batch(b)).with_lengths(&[usize::MAX, 1, 1]),
            is_arg,
            &["lengths[0]"],
        ),
        // Sizes whose products overflow, with no data behind them.
        (
            SeqInput::new(&[], Steps(usize::MAX), Batch(2)),
            is_overflow,
            &[],
        ),
        (
            SeqInput::new(&[], Steps(1 << 40), Batch(1 << 40)),
            is_overflow,
            &[],
        ),
        (
            SeqInput::new(&[], Steps(0), Batch(usize::MAX)),
            is_overflow,
            &[],
        ),
        (
            SeqInput::new(&[], Steps(usize::MAX), Batch(0)),
            is_overflow,
            &[],
        ),
    ];
    for (input, pred, needles) in &cases {
        for (path, r) in all_paths(&gru, input) {
            match r {
                Ok(_) => panic!("{path} accepted {input:?}"),
                Err(e) => {
                    assert!(pred(&e), "{path}: wrong error kind {e:?} for {input:?}");
                    for n in *needles {
                        assert!(e.to_string().contains(n), "{path}: {n:?} not in {e}");
                    }
                }
            }
        }
    }
    // go_backwards takes no lengths.
    let mut c = GruConfig::new(3, 5);
    c.go_backwards = true;
    let g = random_gru(c, 3);
    let input = SeqInput::new(&x, Steps(t), Batch(b)).with_lengths(&[1, 2, 3]);
    for (path, r) in all_paths(&g, &input) {
        assert!(
            matches!(r, Err(Error::InvalidArgument { .. })),
            "{path}: {r:?}"
        );
    }
    // Weights that disagree with their config are refused by every constructor.
    let mut bad = small_gru(Variant::ResetAfter, Direction::Forward, 1);
    bad.weights.layers[0][0].b_hh.pop();
    refused(bad.validate(), is_shape, &["b_hh"]);
    refused(
        reference::forward(&bad, &SeqInput::new(&x, Steps(t), Batch(b))),
        is_shape,
        &["b_hh"],
    );
    refused(CpuGru::new(&bad), is_shape, &["b_hh"]);
    if let Some(ctx) = ctx() {
        refused(GpuGru::new(ctx, &bad), is_shape, &["b_hh"]);
    }
    let mut bad = small_gru(Variant::ResetAfter, Direction::Forward, 2);
    bad.weights.layers.pop();
    refused(CpuGru::new(&bad), is_shape, &["layers"]);
    let mut bad = small_gru(Variant::ResetAfter, Direction::Bidirectional, 1);
    bad.config.direction = Direction::Forward;
    refused(CpuGru::new(&bad), is_shape, &["directions"]);
}

/// T = 0 and B = 0 are not errors: `output` is empty, and `h_n` is h0 (zeros without one), the
/// state after no steps. Every path agrees.
fn empty_problems(which: Impl) {
    for (variant, direction, layers) in [
        (Variant::ResetAfter, Direction::Forward, 1),
        (Variant::ResetBefore, Direction::Bidirectional, 2),
    ] {
        let gru = small_gru(variant, direction, layers);
        let ld = layers * direction.count();
        for (t, b) in [(0usize, 0usize), (0, 3), (4, 0)] {
            let h0: Vec<f32> = (0..ld * b * 5).map(|v| v as f32 * 0.01).collect();
            for with_h0 in [false, true] {
                let mut input = SeqInput::new(&[], Steps(t), Batch(b));
                if with_h0 {
                    input = input.with_h0(&h0);
                }
                let lens = vec![1; b];
                if t > 0 {
                    input = input.with_lengths(&lens);
                }
                for (path, r) in run_on(which, &gru, &input) {
                    let out = r.unwrap_or_else(|e| panic!("{path} T={t} B={b}: {e}"));
                    assert!(out.output.is_empty(), "{path}");
                    let want = if with_h0 {
                        h0.clone()
                    } else {
                        vec![0.0; ld * b * 5]
                    };
                    assert_eq!(out.h_n, want, "{path} T={t} B={b} h0={with_h0}");
                }
            }
        }
    }
    // An empty workspace is refused (it would be a zero-sized binding).
    if which == Impl::Gpu
        && let Some(ctx) = ctx()
    {
        let g = GpuGru::new(ctx, &small_gru(Variant::ResetAfter, Direction::Forward, 1)).unwrap();
        refused(g.workspace(Steps(0), Batch(3)), is_arg, &["T"]);
        refused(g.workspace(Steps(3), Batch(0)), is_arg, &["B"]);
    }
}

per_impl!(empty_problems: empty_problems_reference, empty_problems_cpu, empty_problems_gpu);
