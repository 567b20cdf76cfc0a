//! The f32 CPU path against the f64 reference, on random models and awkward shapes (sizes that
//! are not multiples of any vector width), for every SIMD level this CPU has.

use crate::common;

use common::random::{Rng, random_gru_with};
use wgpu_gru::{Batch, Steps};

use wgpu_gru::cpu::{CpuGru, SimdLevel};
use wgpu_gru::{
    Activation, Activations, Direction, Error, Gru, GruConfig, GruOutput, SeqInput, Variant,
    reference,
};

const TOL: f32 = 1e-5;

/// In `0..n`: this file's draws, the generator's bits modulo `n` (not `Rng::below`'s).
fn below(rng: &mut Rng, n: usize) -> usize {
    (rng.next_u64() % n as u64) as usize
}

/// The SIMD levels to test: every one up to what this CPU has.
fn levels() -> Vec<SimdLevel> {
    [SimdLevel::Portable, SimdLevel::Avx2, SimdLevel::Avx512]
        .into_iter()
        .filter(|&l| l <= SimdLevel::detect())
        .collect()
}

/// Runs `gru` on random inputs through the reference and through `CpuGru` at every SIMD level
/// (and `threads`), and checks the largest difference.
#[allow(clippy::too_many_arguments)]
fn check(
    name: &str,
    gru: &Gru,
    steps: usize,
    batch: usize,
    with_h0: bool,
    lengths: Option<&[usize]>,
    threads: usize,
    rng: &mut Rng,
) {
    let c = &gru.config;
    let x = rng.vec(steps * batch * c.input_size, 1.0);
    let h0 = rng.vec(
        c.num_layers * c.num_directions() * batch * c.hidden_size,
        1.0,
    );
    let mut input = SeqInput::new(&x, Steps(steps), Batch(batch));
    if with_h0 {
        input = input.with_h0(&h0);
    }
    if let Some(l) = lengths {
        input = input.with_lengths(l);
    }
    let want = reference::forward(gru, &input).expect("reference");
    for level in levels() {
        let cpu = CpuGru::new(gru)
            .expect("CpuGru::new")
            .with_threads(threads)
            .with_parallel_min_flop(0)
            .with_max_simd(level);
        let got = cpu.forward(&input).expect("CpuGru::forward");
        assert_eq!(got.output.len(), want.output.len(), "{name}: output length");
        assert_eq!(got.h_n.len(), want.h_n.len(), "{name}: h_n length");
        let err = got.max_abs_diff(&want);
        assert!(
            err <= TOL,
            "{name} ({level:?}, {threads} threads): max abs error {err:e} > {TOL:e}"
        );
        if let Some(l) = lengths {
            // Outputs past a row's length must be exactly zero.
            let ow = c.output_size();
            for (b, &len) in l.iter().enumerate() {
                for t in len..steps {
                    let r = if c.batch_first {
                        b * steps + t
                    } else {
                        t * batch + b
                    };
                    assert!(
                        got.output[r * ow..(r + 1) * ow].iter().all(|&v| v == 0.0),
                        "{name}: output at t={t} b={b} past length {len} is not 0"
                    );
                }
            }
        }
    }
}

/// Every size combination of the grid, for one variant.
fn shape_grid(variant: Variant, seed: u64) {
    let mut rng = Rng::new(seed);
    for h in [1, 7, 65, 257] {
        for i in [1, 3, 300] {
            let gru = random_gru_with(GruConfig::new(i, h).with_variant(variant), &mut rng);
            for batch in [1, 5] {
                for steps in [1, 2, 37] {
                    // The largest combination is slow in the (debug-built) reference and adds
                    // nothing the others do not cover.
                    if h == 257 && i == 300 && steps == 37 && batch == 5 {
                        continue;
                    }
                    for with_h0 in [false, true] {
                        let name = format!("{variant:?} H{h} I{i} B{batch} T{steps} h0={with_h0}");
                        check(&name, &gru, steps, batch, with_h0, None, 1, &mut rng);
                    }
                }
            }
        }
    }
}

#[test]
fn shape_grid_reset_after() {
    shape_grid(Variant::ResetAfter, 1);
}

#[test]
fn shape_grid_reset_before() {
    shape_grid(Variant::ResetBefore, 14);
}

#[test]
fn multi_layer_bidirectional_with_lengths() {
    let mut rng = Rng::new(2);
    for variant in [Variant::ResetAfter, Variant::ResetBefore] {
        for direction in [
            Direction::Forward,
            Direction::Reverse,
            Direction::Bidirectional,
        ] {
            let cfg = GruConfig::new(13, 33)
                .with_variant(variant)
                .with_layers(3)
                .with_direction(direction);
            let gru = random_gru_with(cfg, &mut rng);
            let lengths = [9, 1, 11, 4, 11, 7];
            for with_h0 in [false, true] {
                let name = format!("{variant:?} {direction:?} L3 h0={with_h0}");
                check(&name, &gru, 11, 6, with_h0, None, 1, &mut rng);
                let name = format!("{name} lengths");
                check(&name, &gru, 11, 6, with_h0, Some(&lengths), 1, &mut rng);
            }
        }
    }
}

#[test]
fn reverse_with_lengths_reads_len_minus_one_down() {
    let mut rng = Rng::new(3);
    let cfg = GruConfig::new(5, 20).with_direction(Direction::Reverse);
    let gru = random_gru_with(cfg, &mut rng);
    check(
        "reverse",
        &gru,
        8,
        4,
        true,
        Some(&[8, 3, 5, 1]),
        1,
        &mut rng,
    );
}

#[test]
fn go_backwards() {
    let mut rng = Rng::new(4);
    for variant in [Variant::ResetAfter, Variant::ResetBefore] {
        let mut cfg = GruConfig::new(6, 17).with_variant(variant).with_layers(2);
        cfg.go_backwards = true;
        let gru = random_gru_with(cfg, &mut rng);
        check("go_backwards", &gru, 9, 3, true, None, 1, &mut rng);
    }
}

#[test]
fn batch_first() {
    let mut rng = Rng::new(5);
    for direction in [Direction::Forward, Direction::Bidirectional] {
        let mut cfg = GruConfig::new(7, 19)
            .with_layers(2)
            .with_direction(direction);
        cfg.batch_first = true;
        let gru = random_gru_with(cfg, &mut rng);
        check("batch_first", &gru, 6, 4, true, None, 1, &mut rng);
        check(
            "batch_first lengths",
            &gru,
            6,
            4,
            true,
            Some(&[2, 6, 1, 5]),
            1,
            &mut rng,
        );
    }
}

#[test]
fn activations_and_clip() {
    let mut rng = Rng::new(6);
    let hs = |alpha, beta| Activation::HardSigmoid { alpha, beta };
    let cases: Vec<(Activation, Activation, Option<f32>)> = vec![
        (hs(0.2, 0.5), Activation::Tanh, None),
        (hs(1.0 / 6.0, 0.5), Activation::Relu, Some(3.0)),
        (Activation::Sigmoid, Activation::Relu, Some(2.0)),
        (Activation::Sigmoid, Activation::Tanh, Some(0.7)),
        (
            hs(0.3, 0.4),
            Activation::LeakyRelu { alpha: 0.05 },
            Some(4.0),
        ),
        (
            Activation::Sigmoid,
            Activation::ThresholdedRelu { alpha: 0.1 },
            Some(3.0),
        ),
        (
            Activation::Sigmoid,
            Activation::ScaledTanh {
                alpha: 1.5,
                beta: 0.7,
            },
            None,
        ),
        (
            Activation::Sigmoid,
            Activation::Affine {
                alpha: 0.5,
                beta: 0.1,
            },
            Some(2.0),
        ),
        (
            Activation::Sigmoid,
            Activation::Elu { alpha: 0.8 },
            Some(5.0),
        ),
        (Activation::Sigmoid, Activation::Softsign, None),
        (Activation::Sigmoid, Activation::Softplus, Some(3.0)),
        (Activation::Tanh, Activation::Sigmoid, None),
    ];
    for variant in [Variant::ResetAfter, Variant::ResetBefore] {
        for &(f, g, clip) in &cases {
            let mut cfg = GruConfig::new(9, 23).with_variant(variant);
            cfg.activations = vec![Activations { f, g }];
            cfg.clip = clip;
            let gru = random_gru_with(cfg, &mut rng);
            let name = format!("{variant:?} f={f:?} g={g:?} clip={clip:?}");
            check(&name, &gru, 12, 3, true, None, 1, &mut rng);
        }
    }
    // Different activations per direction.
    let mut cfg = GruConfig::new(4, 18).with_direction(Direction::Bidirectional);
    cfg.activations = vec![
        Activations::default(),
        Activations {
            f: hs(0.2, 0.5),
            g: Activation::Relu,
        },
    ];
    cfg.clip = Some(2.5);
    let gru = random_gru_with(cfg, &mut rng);
    check(
        "per-direction activations",
        &gru,
        10,
        2,
        true,
        Some(&[10, 6]),
        1,
        &mut rng,
    );
}

#[test]
fn large_inputs_saturate_without_nan() {
    // Pre-activations far outside the polynomial ranges: exp must clamp, not overflow.
    let mut rng = Rng::new(7);
    let gru = random_gru_with(GruConfig::new(3, 16), &mut rng);
    let x: Vec<f32> = rng.vec(5 * 2 * 3, 1.0).iter().map(|v| v * 500.0).collect();
    let input = SeqInput::new(&x, Steps(5), Batch(2));
    let want = reference::forward(&gru, &input).unwrap();
    let got = CpuGru::new(&gru).unwrap().forward(&input).unwrap();
    assert!(got.output.iter().all(|v| v.is_finite()));
    assert!(got.max_abs_diff(&want) <= TOL);
}

#[test]
fn threads_match_one_thread() {
    let mut rng = Rng::new(8);
    for direction in [Direction::Forward, Direction::Bidirectional] {
        for variant in [Variant::ResetAfter, Variant::ResetBefore] {
            let cfg = GruConfig::new(10, 40)
                .with_layers(2)
                .with_direction(direction)
                .with_variant(variant);
            let gru = random_gru_with(cfg, &mut rng);
            for threads in [2, 3, 4] {
                let name = format!("{direction:?} {variant:?} threads={threads}");
                check(&name, &gru, 7, 5, true, None, threads, &mut rng);
                let lengths = [3, 7, 1, 7, 5];
                check(&name, &gru, 7, 5, true, Some(&lengths), threads, &mut rng);
            }
        }
    }
}

#[test]
fn workspace_reuse_across_shapes() {
    let mut rng = Rng::new(9);
    let cfg = GruConfig::new(8, 24)
        .with_layers(2)
        .with_direction(Direction::Bidirectional);
    let gru = random_gru_with(cfg, &mut rng);
    let cpu = CpuGru::new(&gru).unwrap();
    let mut out = GruOutput {
        output: Vec::new(),
        h_n: Vec::new(),
    };
    // (T, B, lengths): shrink, grow, and lengths then none, so stale workspace data would show.
    let shapes: [(usize, usize, Option<Vec<usize>>); 5] = [
        (9, 4, None),
        (3, 2, Some(vec![1, 3])),
        (9, 4, None),
        (12, 6, Some(vec![12, 2, 5, 12, 1, 7])),
        (12, 6, None),
    ];
    for (t, b, lengths) in shapes {
        let x = rng.vec(t * b * 8, 1.0);
        let h0 = rng.vec(2 * 2 * b * 24, 1.0);
        let mut input = SeqInput::new(&x, Steps(t), Batch(b)).with_h0(&h0);
        if let Some(l) = &lengths {
            input = input.with_lengths(l);
        }
        cpu.forward_into(&input, &mut out).unwrap();
        let want = reference::forward(&gru, &input).unwrap();
        let err = out.max_abs_diff(&want);
        assert!(err <= TOL, "T{t} B{b} {lengths:?}: {err:e}");
    }
}

#[test]
fn warm_forward_into_does_not_allocate() {
    let mut rng = Rng::new(15);
    for variant in [Variant::ResetAfter, Variant::ResetBefore] {
        let cfg = GruConfig::new(12, 40)
            .with_variant(variant)
            .with_layers(2)
            .with_direction(Direction::Bidirectional);
        let gru = random_gru_with(cfg, &mut rng);
        for (t, b, lengths) in [(50, 1, None), (20, 5, Some(vec![20, 3, 9, 20, 1]))] {
            let cpu = CpuGru::new(&gru).unwrap();
            let x = rng.vec(t * b * 12, 1.0);
            let h0 = rng.vec(2 * 2 * b * 40, 1.0);
            let mut input = SeqInput::new(&x, Steps(t), Batch(b)).with_h0(&h0);
            if let Some(l) = &lengths {
                input = input.with_lengths(l);
            }
            let mut out = GruOutput {
                output: Vec::new(),
                h_n: Vec::new(),
            };
            cpu.forward_into(&input, &mut out).unwrap();
            cpu.forward_into(&input, &mut out).unwrap();
            let before = common::alloc::count();
            for _ in 0..3 {
                cpu.forward_into(&input, &mut out).unwrap();
            }
            let n = common::alloc::count() - before;
            assert_eq!(
                n, 0,
                "{variant:?} T{t} B{b}: {n} allocations in 3 warm forwards"
            );
        }
    }
}

#[test]
fn empty_sequences() {
    let mut rng = Rng::new(10);
    let gru = random_gru_with(GruConfig::new(3, 5).with_layers(2), &mut rng);
    let cpu = CpuGru::new(&gru).unwrap();
    let h0 = rng.vec(2 * 2 * 5, 1.0);
    let input = SeqInput::new(&[], Steps(0), Batch(2)).with_h0(&h0);
    let got = cpu.forward(&input).unwrap();
    let want = reference::forward(&gru, &input).unwrap();
    assert_eq!(got, want);
    let got = cpu
        .forward(&SeqInput::new(&[], Steps(4), Batch(0)))
        .unwrap();
    assert!(got.output.is_empty() && got.h_n.is_empty());
}

#[test]
fn invalid_inputs_are_errors() {
    let mut rng = Rng::new(11);
    let gru = random_gru_with(GruConfig::new(3, 5), &mut rng);
    let cpu = CpuGru::new(&gru).unwrap();
    let x = vec![0.0f32; 4 * 2 * 3];
    assert!(matches!(
        cpu.forward(&SeqInput::new(&x[1..], Steps(4), Batch(2))),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(matches!(
        cpu.forward(&SeqInput::new(&x, Steps(4), Batch(2)).with_h0(&[0.0; 3])),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(matches!(
        cpu.forward(&SeqInput::new(&x, Steps(4), Batch(2)).with_lengths(&[4, 0])),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        cpu.forward(&SeqInput::new(&x, Steps(4), Batch(2)).with_lengths(&[4, 5])),
        Err(Error::InvalidArgument { .. })
    ));
    // A model whose weights do not match its config is refused at construction.
    let mut bad = gru.clone();
    bad.weights.layers[0][0].w_hh.pop();
    assert!(CpuGru::new(&bad).is_err());
}

#[test]
fn random_configurations() {
    // A broad sweep: every option drawn at random, many times.
    let mut rng = Rng::new(12);
    for case in 0..60 {
        let direction = [
            Direction::Forward,
            Direction::Reverse,
            Direction::Bidirectional,
        ][below(&mut rng, 3)];
        let variant = [Variant::ResetAfter, Variant::ResetBefore][below(&mut rng, 2)];
        let mut cfg = GruConfig::new(1 + below(&mut rng, 40), 1 + below(&mut rng, 70))
            .with_variant(variant)
            .with_layers(1 + below(&mut rng, 3))
            .with_direction(direction);
        cfg.batch_first = below(&mut rng, 2) == 1;
        cfg.go_backwards = direction == Direction::Forward && below(&mut rng, 3) == 0;
        if below(&mut rng, 3) == 0 {
            cfg.clip = Some(0.5 + rng.next_f32() * 0.4 + 0.4);
        }
        let gru = random_gru_with(cfg.clone(), &mut rng);
        let steps = 1 + below(&mut rng, 20);
        let batch = 1 + below(&mut rng, 9);
        let lengths: Vec<usize> = (0..batch).map(|_| 1 + below(&mut rng, steps)).collect();
        let use_lengths = !cfg.go_backwards && below(&mut rng, 2) == 1;
        let threads = 1 + below(&mut rng, 3);
        let name = format!("case {case}: {cfg:?} T{steps} B{batch} threads={threads}");
        check(
            &name,
            &gru,
            steps,
            batch,
            below(&mut rng, 2) == 1,
            use_lengths.then_some(lengths.as_slice()),
            threads,
            &mut rng,
        );
    }
}

#[test]
fn nan_and_infinity_follow_the_reference() {
    // NaN must propagate (not be clamped away by the fast exp or clip), ±∞ must saturate like
    // the f64 reference, and both must stay in their own row.
    let mut rng = Rng::new(13);
    for variant in [Variant::ResetAfter, Variant::ResetBefore] {
        for clip in [None, Some(2.0)] {
            let mut cfg = GruConfig::new(3, 20)
                .with_variant(variant)
                .with_direction(Direction::Bidirectional);
            cfg.clip = clip;
            let gru = random_gru_with(cfg, &mut rng);
            let (t, b) = (4, 3);
            let mut x = rng.vec(t * b * 3, 1.0);
            x[b * 3 + 1] = f32::NAN; // t = 1, row 0
            x[(2 * b + 2) * 3] = f32::INFINITY; // t = 2, row 2
            x[(3 * b + 2) * 3 + 2] = f32::NEG_INFINITY; // t = 3, row 2
            let input = SeqInput::new(&x, Steps(t), Batch(b));
            let want = reference::forward(&gru, &input).unwrap();
            for level in levels() {
                let got = CpuGru::new(&gru)
                    .unwrap()
                    .with_max_simd(level)
                    .forward(&input)
                    .unwrap();
                for (name, g, w) in [
                    ("output", &got.output, &want.output),
                    ("h_n", &got.h_n, &want.h_n),
                ] {
                    for (k, (a, e)) in g.iter().zip(w.iter()).enumerate() {
                        assert_eq!(
                            a.is_nan(),
                            e.is_nan(),
                            "{variant:?} clip={clip:?} {level:?} {name}[{k}]: {a} vs {e}"
                        );
                        if !e.is_nan() {
                            assert!(
                                (a - e).abs() <= TOL,
                                "{variant:?} clip={clip:?} {level:?} {name}[{k}]: {a} vs {e}"
                            );
                        }
                    }
                }
                assert!(got.output.iter().any(|v| v.is_nan()), "NaN was lost");
            }
        }
    }
}

#[test]
fn all_golden_cases_match_on_cpu() {
    // The frameworks' own outputs (PyTorch, Keras, ONNX, the seed), through the importers.
    for level in levels() {
        for threads in [1, 2] {
            let n = common::run_all_within(
                &format!("cpu {level:?} x{threads}"),
                &mut |g, i| {
                    CpuGru::new(g)?
                        .with_max_simd(level)
                        .with_threads(threads)
                        .with_parallel_min_flop(0)
                        .forward(i)
                },
                &common::f32_tolerance,
            );
            assert!(n > 0, "no golden cases found");
        }
    }
}

/// Odd sizes (no multiple of any vector width or of the thread count) at 1, 2 and 3 threads:
/// from H = 128 each step's hidden units are split over the threads, below it batch rows;
/// with h0,
/// lengths, reverse and Keras's `go_backwards`, and a clip.
#[test]
fn odd_shapes_at_one_two_and_three_threads() {
    let mut rng = Rng::new(24);
    // 1, 7, 65: rows on threads (batch 3) or one thread (batch 1); 129, 257: units split.
    for h in [1, 7, 65, 129, 257] {
        for variant in [Variant::ResetAfter, Variant::ResetBefore] {
            for (k, direction) in [Direction::Forward, Direction::Reverse]
                .into_iter()
                .enumerate()
            {
                let mut cfg = GruConfig::new(5, h)
                    .with_variant(variant)
                    .with_direction(direction)
                    .with_layers(1 + k);
                cfg.go_backwards = k == 0 && h == 129;
                if h == 7 {
                    cfg.clip = Some(0.9);
                }
                let gru = random_gru_with(cfg, &mut rng);
                for batch in [1, 3] {
                    for threads in [1, 2, 3] {
                        let name =
                            format!("H{h} B{batch} {variant:?} {direction:?} threads={threads}");
                        check(&name, &gru, 9, batch, true, None, threads, &mut rng);
                        if h != 129 {
                            let lengths = [6, 9, 2];
                            check(
                                &name,
                                &gru,
                                9,
                                batch,
                                false,
                                Some(&lengths[..batch]),
                                threads,
                                &mut rng,
                            );
                        }
                    }
                }
            }
        }
    }
}

/// A projection large enough to be split over threads (38 MFLOP: bands of 60 rows of 250,
/// the last one short), at 1, 2 and 3 threads, with and without lengths.
#[test]
fn threaded_input_projection() {
    let mut rng = Rng::new(26);
    let gru = random_gru_with(GruConfig::new(300, 65).with_layers(2), &mut rng);
    let lengths = [50, 17, 1, 33, 49];
    for threads in [1, 2, 3] {
        let name = format!("I300 H65 T50 B5 threads={threads}");
        check(&name, &gru, 50, 5, true, None, threads, &mut rng);
        check(&name, &gru, 50, 5, false, Some(&lengths), threads, &mut rng);
    }
}

/// Keras masks through the batch-1 split (a masked step carries the state over; its output
/// repeats it, or is zero with `zero_output_for_mask`), at 1, 2 and 3 threads.
#[test]
fn masks_at_batch_one_with_threads() {
    let mut rng = Rng::new(25);
    for h in [130, 257] {
        let gru = random_gru_with(GruConfig::new(4, h), &mut rng);
        let steps = 8;
        let x = rng.vec(steps * 4, 1.0);
        let mask = [false, true, true, false, false, true, false, true];
        for zero in [false, true] {
            let input = SeqInput::new(&x, Steps(steps), Batch(1))
                .with_mask(&mask)
                .with_zero_output_for_mask(zero);
            let want = reference::forward(&gru, &input).expect("reference");
            for threads in [1, 2, 3] {
                let got = CpuGru::new(&gru)
                    .expect("CpuGru::new")
                    .with_threads(threads)
                    .with_parallel_min_flop(0)
                    .forward(&input)
                    .expect("forward");
                let err = got.max_abs_diff(&want);
                assert!(err <= TOL, "H{h} zero={zero} threads={threads}: {err:e}");
            }
        }
    }
}

/// `Precision::F16Weights` on the CPU computes the model whose W_ih, W_hh and b_hh are rounded
/// to f16, to f32 accuracy, on every kernel that reads the f16 W_hh: batch 1 (the three-panel
/// product), batch 3 (the row tiles), the unit split (H ≥ 128 with threads) and reset-before's
/// second product; at every SIMD level and at 1, 2 and 3 threads.
#[test]
fn f16_weights_compute_the_rounded_model() {
    use wgpu_gru::Precision;
    let mut rng = Rng::new(0xF16);
    let mut seen_rounding = 0.0f32;
    for h in [1, 7, 65, 129, 257] {
        for variant in [Variant::ResetAfter, Variant::ResetBefore] {
            for direction in [Direction::Forward, Direction::Bidirectional] {
                let cfg = GruConfig::new(6, h)
                    .with_variant(variant)
                    .with_direction(direction);
                let gru = random_gru_with(cfg, &mut rng);
                let rounded = common::random::f16_rounded(&gru);
                for batch in [1, 3] {
                    let x = rng.vec(7 * batch * 6, 1.0);
                    let lengths = [7, 4, 6];
                    let mut input = SeqInput::new(&x, Steps(7), Batch(batch));
                    if batch == 3 {
                        input = input.with_lengths(&lengths);
                    }
                    let want = reference::forward(&rounded, &input).expect("reference");
                    let f32_model = reference::forward(&gru, &input).expect("reference");
                    seen_rounding = seen_rounding.max(want.max_abs_diff(&f32_model));
                    for level in levels() {
                        for threads in [1, 2, 3] {
                            let cpu = CpuGru::with_precision(&gru, Precision::F16Weights)
                                .expect("with_precision")
                                .with_threads(threads)
                                .with_parallel_min_flop(0)
                                .with_max_simd(level);
                            assert_eq!(cpu.precision(), Precision::F16Weights);
                            let got = cpu.forward(&input).expect("forward");
                            let err = got.max_abs_diff(&want);
                            assert!(
                                err <= TOL,
                                "H{h} B{batch} {variant:?} {direction:?} {level:?} \
                                 threads={threads}: {err:e} > {TOL:e}"
                            );
                        }
                    }
                }
            }
        }
    }
    // The cases must tell the rounded model from the f32 one, or they test nothing.
    assert!(
        seen_rounding > 1e-4,
        "rounding changed outputs by {seen_rounding:e} only"
    );
}
