//! [`GpuStream`]: a sequence fed step by step, or in uneven chunks, gives the one-shot
//! [`GpuGru::forward`] (and the f64 reference) on the same sequence; resetting a row restarts that
//! row alone.

use crate::common;
use crate::gpu_common;

use common::random::{Rng, random_gru};
use gpu_common::ctx;
use wgpu_gru::gpu::{Algorithm, GpuGru, GpuOptions, GpuStream};
use wgpu_gru::{Batch, Steps};
use wgpu_gru::{Direction, Error, Gru, GruConfig, SeqInput, Variant, reference};

const TOL: f32 = 1e-5;

/// Rows `t0..t1` of a time-major `[T, B, F]` array.
fn steps_tm(a: &[f32], b: usize, f: usize, t0: usize, t1: usize) -> Vec<f32> {
    a[t0 * b * f..t1 * b * f].to_vec()
}

/// Steps `t0..t1` of a batch-first `[B, T, F]` array, as `[B, t1 − t0, F]`.
fn steps_bf(a: &[f32], b: usize, t: usize, f: usize, t0: usize, t1: usize) -> Vec<f32> {
    (0..b)
        .flat_map(|r| a[(r * t + t0) * f..(r * t + t1) * f].to_vec())
        .collect()
}

/// Feeds `x` in chunks of `sizes` and returns the concatenated output (in the config's layout)
/// and the final state.
fn stream_chunks(
    gpu: &GpuGru,
    x: &[f32],
    t: usize,
    b: usize,
    sizes: &[usize],
) -> (Vec<f32>, Vec<f32>) {
    let c = gpu.config();
    let (i, h) = (c.input_size, c.hidden_size);
    assert_eq!(sizes.iter().sum::<usize>(), t);
    let mut s = GpuStream::new(gpu, b).unwrap();
    let mut outs = Vec::new();
    let mut t0 = 0;
    for &n in sizes {
        let chunk = if c.batch_first {
            steps_bf(x, b, t, i, t0, t0 + n)
        } else {
            steps_tm(x, b, i, t0, t0 + n)
        };
        outs.push(s.push(&chunk, n).unwrap());
        t0 += n;
    }
    // Reassemble the chunks' outputs in the whole sequence's layout.
    let y = if c.batch_first {
        (0..b)
            .flat_map(|r| {
                outs.iter()
                    .zip(sizes)
                    .flat_map(move |(o, &n)| o[r * n * h..(r + 1) * n * h].to_vec())
            })
            .collect()
    } else {
        outs.concat()
    };
    (y, s.state().unwrap())
}

fn check_equal(gru: &Gru, t: usize, b: usize, seed: u64, algo: Algorithm) {
    let Some(ctx) = ctx() else { return };
    let c = &gru.config;
    let x = Rng(seed | 1).vec(t * b * c.input_size, 1.0);
    let input = SeqInput::new(&x, Steps(t), Batch(b));
    let gpu = GpuGru::with_options(ctx, gru, GpuOptions::default().with_algorithm(algo)).unwrap();
    let one_shot = gpu.forward(&input).unwrap();
    let want = reference::forward(gru, &input).unwrap();
    assert!(one_shot.max_abs_diff(&want) <= TOL);
    let mut rng = Rng(seed * 31 + 7);
    let mut uneven = Vec::new();
    let mut left = t;
    while left > 0 {
        let n = (1 + rng.below(5)).min(left);
        uneven.push(n);
        left -= n;
    }
    for sizes in [vec![1; t], uneven, vec![t]] {
        let (y, h) = stream_chunks(&gpu, &x, t, b, &sizes);
        let e1 = wgpu_gru::max_abs_diff(&y, &one_shot.output)
            .max(wgpu_gru::max_abs_diff(&h, &one_shot.h_n));
        let e2 =
            wgpu_gru::max_abs_diff(&y, &want.output).max(wgpu_gru::max_abs_diff(&h, &want.h_n));
        assert!(
            e1 <= TOL && e2 <= TOL,
            "chunks {sizes:?} ({algo:?}, {c:?}): vs one-shot {e1:e}, vs reference {e2:e}"
        );
    }
}

#[test]
fn step_by_step_and_uneven_chunks_equal_one_shot() {
    let cases = [
        (GruConfig::new(3, 20), 13, 3),
        (GruConfig::new(5, 33).with_layers(2), 11, 5),
        (
            GruConfig::new(4, 17).with_variant(Variant::ResetBefore),
            9,
            2,
        ),
        (
            GruConfig {
                batch_first: true,
                ..GruConfig::new(6, 12).with_layers(2)
            },
            10,
            4,
        ),
    ];
    for (seed, (config, t, b)) in cases.into_iter().enumerate() {
        let gru = random_gru(config, seed as u64 + 100);
        for algo in [Algorithm::PerStep, Algorithm::Sequence] {
            check_equal(&gru, t, b, seed as u64 + 1, algo);
        }
    }
}

/// Row 1 is reset halfway: its second half equals a fresh start on that half, while rows 0 and 2
/// carry on exactly as in the uninterrupted sequence.
#[test]
fn reset_row_restarts_only_that_row() {
    let Some(ctx) = ctx() else { return };
    let (i, h, b, t1, t2) = (4usize, 24usize, 3usize, 5usize, 6usize);
    let gru = random_gru(GruConfig::new(i, h).with_layers(2), 7);
    let gpu = GpuGru::new(ctx, &gru).unwrap();
    let t = t1 + t2;
    let x = Rng(99).vec(t * b * i, 1.0);
    let whole = gpu.forward(&SeqInput::new(&x, Steps(t), Batch(b))).unwrap();
    let second = steps_tm(&x, b, i, t1, t);
    let fresh = gpu
        .forward(&SeqInput::new(&second, Steps(t2), Batch(b)))
        .unwrap();

    let mut s = GpuStream::new(&gpu, b).unwrap();
    s.push(&steps_tm(&x, b, i, 0, t1), t1).unwrap();
    s.reset_row(1).unwrap();
    let y = s.push(&second, t2).unwrap();
    let state = s.state().unwrap();
    for step in 0..t2 {
        for r in 0..b {
            let got = &y[(step * b + r) * h..][..h];
            let want = if r == 1 {
                &fresh.output[(step * b + r) * h..][..h]
            } else {
                &whole.output[((t1 + step) * b + r) * h..][..h]
            };
            let e = wgpu_gru::max_abs_diff(got, want);
            assert!(e <= TOL, "step {step} row {r}: {e:e}");
        }
    }
    for l in 0..2 {
        for r in 0..b {
            let got = &state[(l * b + r) * h..][..h];
            let want = if r == 1 { &fresh.h_n } else { &whole.h_n };
            let e = wgpu_gru::max_abs_diff(got, &want[(l * b + r) * h..][..h]);
            assert!(e <= TOL, "layer {l} row {r}: {e:e}");
        }
    }

    // reset() restarts everything: the next push equals a fresh forward.
    s.reset();
    let y = s.push(&second, t2).unwrap();
    assert!(wgpu_gru::max_abs_diff(&y, &fresh.output) <= TOL);
}

#[test]
fn set_state_equals_forward_with_h0() {
    let Some(ctx) = ctx() else { return };
    let (i, h, b, t) = (3usize, 10usize, 2usize, 4usize);
    let gru = random_gru(GruConfig::new(i, h), 3);
    let gpu = GpuGru::new(ctx, &gru).unwrap();
    let mut rng = Rng(5);
    let x = rng.vec(t * b * i, 1.0);
    let h0 = rng.vec(b * h, 0.5);
    let want = gpu
        .forward(&SeqInput::new(&x, Steps(t), Batch(b)).with_h0(&h0))
        .unwrap();
    let mut s = GpuStream::new(&gpu, b).unwrap();
    s.set_state(&h0).unwrap();
    assert_eq!(s.state().unwrap(), h0);
    let y = s.push(&x, t).unwrap();
    assert!(wgpu_gru::max_abs_diff(&y, &want.output) <= TOL);
    assert!(wgpu_gru::max_abs_diff(&s.state().unwrap(), &want.h_n) <= TOL);
}

#[test]
fn repeated_chunk_lengths_and_many_lengths() {
    let Some(ctx) = ctx() else { return };
    // More distinct chunk lengths than the stream caches: evicted workspaces are remade.
    let (i, h, b) = (2usize, 8usize, 2usize);
    let sizes = [1usize, 2, 3, 4, 5, 6, 1, 2, 6, 6, 3];
    let t: usize = sizes.iter().sum();
    let gru = random_gru(GruConfig::new(i, h), 11);
    let gpu = GpuGru::new(ctx, &gru).unwrap();
    let x = Rng(12).vec(t * b * i, 1.0);
    let want = gpu.forward(&SeqInput::new(&x, Steps(t), Batch(b))).unwrap();
    let (y, hn) = stream_chunks(&gpu, &x, t, b, &sizes);
    assert!(wgpu_gru::max_abs_diff(&y, &want.output) <= TOL);
    assert!(wgpu_gru::max_abs_diff(&hn, &want.h_n) <= TOL);
}

#[test]
fn errors_are_typed() {
    let Some(ctx) = ctx() else { return };
    for dir in [Direction::Reverse, Direction::Bidirectional] {
        let gru = random_gru(GruConfig::new(2, 4).with_direction(dir), 1);
        let gpu = GpuGru::new(ctx, &gru).unwrap();
        assert!(matches!(
            GpuStream::new(&gpu, 1),
            Err(Error::Unsupported(_))
        ));
    }
    let gru = random_gru(GruConfig::new(2, 4), 1);
    let gpu = GpuGru::new(ctx, &gru).unwrap();
    assert!(matches!(
        GpuStream::new(&gpu, 0),
        Err(Error::InvalidArgument { .. })
    ));
    let mut s = GpuStream::new(&gpu, 2).unwrap();
    assert!(matches!(s.reset_row(2), Err(Error::InvalidArgument { .. })));
    assert!(matches!(
        s.push(&[0.0; 3], 1),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(matches!(s.push(&[], 0), Err(Error::InvalidArgument { .. })));
    assert!(matches!(
        s.set_state(&[0.0; 7]),
        Err(Error::ShapeMismatch { .. })
    ));
    // A failed push leaves the state as it was.
    assert_eq!(s.state().unwrap(), vec![0.0; 8]);
}
