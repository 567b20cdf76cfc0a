//! NaN and ±Inf on every path (reference, CPU, GPU): NaN propagates as in the frameworks and
//! nothing hides it; infinities are ordinary IEEE values.
//!
//! GPU parts are skipped with a message when no adapter exists, unless `REQUIRE_GPU=1`.

use crate::common;
use crate::gpu_common;

use common::random::Rng;
use gpu_common::paths::{Impl, per_impl, run_on, small_gru};
use wgpu_gru::{Batch, Steps};
use wgpu_gru::{Direction, SeqInput, Variant, reference};

/// Where each value is NaN, and the finite values, compared between two outputs.
fn same_nan_pattern(a: &[f32], b: &[f32]) -> Result<(), String> {
    if a.len() != b.len() {
        return Err(format!("lengths {} and {}", a.len(), b.len()));
    }
    for (k, (x, y)) in a.iter().zip(b).enumerate() {
        if x.is_nan() != y.is_nan() {
            return Err(format!("element {k}: {x} vs {y}"));
        }
        if !x.is_nan() && (x - y).abs() > 1e-4 && x != y {
            return Err(format!("element {k}: {x} vs {y}"));
        }
    }
    Ok(())
}

/// A NaN in row 0's input at step 1 makes row 0's outputs NaN from step 1 on (in that row's
/// processing order) and its h_n NaN; the other rows are untouched. NaN in padding past a row's
/// length is never read. The same holds on every path.
fn nan_propagates_like_the_frameworks(which: Impl) {
    for variant in [Variant::ResetAfter, Variant::ResetBefore] {
        let gru = small_gru(variant, Direction::Forward, 2);
        let (t, b, i, h) = (4usize, 3usize, 3usize, 5usize);
        let mut rng = Rng(11);
        let clean = rng.vec(t * b * i, 1.0);
        let mut dirty = clean.clone();
        dirty[b * i + 1] = f32::NAN; // x[t=1, b=0, 1]
        // Row 2 has length 2: NaN at step 3 is padding.
        dirty[(3 * b + 2) * i] = f32::NAN;
        let lens = [4, 4, 2];
        let want = reference::forward(
            &gru,
            &SeqInput::new(&clean, Steps(t), Batch(b)).with_lengths(&lens),
        )
        .unwrap();
        let input = SeqInput::new(&dirty, Steps(t), Batch(b)).with_lengths(&lens);
        for (path, r) in run_on(which, &gru, &input) {
            let out = r.unwrap_or_else(|e| panic!("{path}: {e}"));
            for tt in 0..t {
                for bb in 0..b {
                    let o = &out.output[(tt * b + bb) * h..(tt * b + bb + 1) * h];
                    let w = &want.output[(tt * b + bb) * h..(tt * b + bb + 1) * h];
                    if bb == 0 && tt >= 1 {
                        assert!(
                            o.iter().all(|v| v.is_nan()),
                            "{path} {variant:?}: output[t={tt}, b=0] = {o:?}, expected NaN"
                        );
                    } else {
                        same_nan_pattern(o, w).unwrap_or_else(|e| {
                            panic!("{path} {variant:?}: output[t={tt}, b={bb}]: {e}")
                        });
                    }
                }
            }
            for l in 0..2 {
                for bb in 0..b {
                    let s = &out.h_n[(l * b + bb) * h..(l * b + bb + 1) * h];
                    if bb == 0 {
                        assert!(s.iter().all(|v| v.is_nan()), "{path}: h_n[{l}, 0] = {s:?}");
                    } else {
                        let w = &want.h_n[(l * b + bb) * h..(l * b + bb + 1) * h];
                        same_nan_pattern(s, w).unwrap_or_else(|e| panic!("{path}: h_n: {e}"));
                    }
                }
            }
        }
        // NaN in h0 of one row poisons that row only.
        let mut h0 = vec![0.1f32; 2 * b * h];
        h0[h + 2] = f32::NAN; // layer 0, row 1, unit 2
        let input = SeqInput::new(&clean, Steps(t), Batch(b)).with_h0(&h0);
        for (path, r) in run_on(which, &gru, &input) {
            let out = r.unwrap_or_else(|e| panic!("{path}: {e}"));
            for tt in 0..t {
                for bb in 0..b {
                    let o = &out.output[(tt * b + bb) * h..(tt * b + bb + 1) * h];
                    assert_eq!(
                        o.iter().any(|v| v.is_nan()),
                        bb == 1,
                        "{path}: output[t={tt}, b={bb}] = {o:?}"
                    );
                }
            }
        }
    }
}

/// NaN in the weights reaches every output, on every path (nothing hides it).
fn nan_weights_poison_everything(which: Impl) {
    let mut gru = small_gru(Variant::ResetAfter, Direction::Forward, 1);
    gru.weights.layers[0][0].w_hh[0] = f32::NAN; // r gate, unit 0, from h unit 0
    gru.weights.layers[0][0].b_ih[5 + 1] = f32::NAN; // z gate, unit 1
    let (t, b) = (3, 2);
    let x = Rng(5).vec(t * b * 3, 1.0);
    for (path, r) in run_on(which, &gru, &SeqInput::new(&x, Steps(t), Batch(b))) {
        let out = r.unwrap_or_else(|e| panic!("{path}: {e}"));
        // Unit 1's z is NaN from step 0; every unit is NaN from step 1 (h feeds every gate).
        for bb in 0..b {
            assert!(out.output[bb * 5 + 1].is_nan(), "{path}: {:?}", out.output);
        }
        assert!(
            out.output[b * 5..].iter().all(|v| v.is_nan()),
            "{path}: {:?}",
            out.output
        );
        assert!(out.h_n.iter().all(|v| v.is_nan()), "{path}");
    }
}

/// ±Inf are ordinary IEEE values: every path computes the same thing from them (saturating
/// activations turn them finite; `∞ − ∞` and `0 · ∞` give NaN).
fn infinities_are_ieee_values(which: Impl) {
    let gru = small_gru(Variant::ResetBefore, Direction::Bidirectional, 1);
    let (t, b) = (3, 4);
    let mut x = Rng(9).vec(t * b * 3, 1.0);
    x[0] = f32::INFINITY;
    x[4] = f32::NEG_INFINITY;
    x[3 * 3 + 1] = f32::INFINITY;
    x[3 * 3 + 2] = f32::NEG_INFINITY;
    let want = reference::forward(&gru, &SeqInput::new(&x, Steps(t), Batch(b))).unwrap();
    for (path, r) in run_on(which, &gru, &SeqInput::new(&x, Steps(t), Batch(b))) {
        let out = r.unwrap_or_else(|e| panic!("{path}: {e}"));
        same_nan_pattern(&out.output, &want.output).unwrap_or_else(|e| panic!("{path}: {e}"));
        same_nan_pattern(&out.h_n, &want.h_n).unwrap_or_else(|e| panic!("{path}: {e}"));
    }
}

per_impl!(nan_propagates_like_the_frameworks: nan_propagates_reference,
    nan_propagates_cpu, nan_propagates_gpu);
per_impl!(nan_weights_poison_everything: nan_weights_reference,
    nan_weights_cpu, nan_weights_gpu);
per_impl!(infinities_are_ieee_values: infinities_reference,
    infinities_cpu, infinities_gpu);
