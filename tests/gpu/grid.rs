//! The grid-wide persistent kernel (`Algorithm::Grid`) against the f64 reference, and its bounded
//! waits: where the device does not keep every workgroup resident (lavapipe runs two at once),
//! the first attempts stop and the single-workgroup attempt finishes with the right answer.
//! Skipped with a message without an adapter, unless `REQUIRE_GPU=1`.

use crate::common;
use crate::gpu_common;

use common::random::{Rng, random_gru};
use wgpu_gru::gpu::{Algorithm, GpuContext, GpuGru, GpuOptions};
use wgpu_gru::{Batch, Direction, Gru, GruConfig, GruOutput, SeqInput, Steps, Variant, reference};

const TOL: f32 = 1e-5;

/// One forward through an explicit workspace; returns the output and the `sync` words.
fn run(
    ctx: &GpuContext,
    gru: &Gru,
    opts: GpuOptions,
    input: &SeqInput<'_>,
) -> (GruOutput, Vec<u32>) {
    let g = GpuGru::with_options(ctx, gru, opts.with_algorithm(Algorithm::Grid)).unwrap();
    assert_eq!(g.choose(input.batch()).unwrap().0, Algorithm::Grid);
    let mut ws = g
        .workspace(Steps(input.steps()), Batch(input.batch()))
        .unwrap();
    g.write_input(&mut ws, input).unwrap();
    let mut encoder = ctx.device.create_command_encoder(&Default::default());
    g.encode(&mut encoder, &ws).unwrap();
    g.encode_read_back(&mut encoder, &ws).unwrap();
    let index = ctx.queue.submit([encoder.finish()]);
    let out = pollster::block_on(g.read_output_async(&ws, index)).unwrap();
    (out, g.grid_sync(&ws).unwrap())
}

fn case(
    variant: Variant,
    dir: Direction,
    layers: usize,
    (t, b, i, h): (usize, usize, usize, usize),
    seed: u64,
) -> (Gru, Vec<f32>, Vec<f32>, Vec<usize>) {
    let config = GruConfig::new(i, h)
        .with_variant(variant)
        .with_direction(dir)
        .with_layers(layers);
    let gru = random_gru(config, seed);
    let mut rng = Rng(seed | 1);
    let x = rng.vec(t * b * i, 1.0);
    let h0 = rng.vec(layers * gru.config.num_directions() * b * h, 0.5);
    let lens = (0..b)
        .map(|r| if r == 0 { t } else { 1 + rng.below(t) })
        .collect();
    (gru, x, h0, lens)
}

#[test]
fn grid_kernel_matches_the_reference() {
    let Some(ctx) = gpu_common::ctx() else {
        return;
    };
    for (n, (variant, dir, layers, shape)) in [
        (Variant::ResetAfter, Direction::Forward, 1, (6, 1, 3, 1)),
        (
            Variant::ResetAfter,
            Direction::Bidirectional,
            2,
            (5, 3, 4, 7),
        ),
        (Variant::ResetBefore, Direction::Forward, 1, (7, 5, 6, 65)),
        (Variant::ResetBefore, Direction::Reverse, 1, (4, 2, 5, 33)),
        (Variant::ResetAfter, Direction::Forward, 1, (3, 6, 9, 257)),
    ]
    .into_iter()
    .enumerate()
    {
        let (gru, x, h0, lens) = case(variant, dir, layers, shape, 11 + n as u64);
        let (t, b) = (shape.0, shape.1);
        let input = SeqInput::new(&x, Steps(t), Batch(b))
            .with_h0(&h0)
            .with_lengths(&lens);
        let want = reference::forward(&gru, &input).unwrap();
        // The default: as many workgroups as the probe saw at once.
        let (got, _) = run(ctx, &gru, GpuOptions::default(), &input);
        let e = got.max_abs_diff(&want);
        assert!(e <= TOL, "{variant:?} {dir:?} L={layers} {shape:?}: {e}");
    }
}

/// With more workgroups than the device runs at once, the waits give up, the flags say so, and
/// the last attempt still gives the reference's numbers; a single workgroup never gives up.
/// (With as many as it runs, a wait may still give up when a workgroup starts late: the answer
/// is right either way.)
#[test]
fn waits_give_up_and_the_last_attempt_finishes() {
    let Some(ctx) = gpu_common::ctx() else {
        return;
    };
    let (t, b) = (5, 6);
    let (gru, x, h0, lens) = case(Variant::ResetAfter, Direction::Forward, 1, (t, b, 4, 40), 3);
    let input = SeqInput::new(&x, Steps(t), Batch(b))
        .with_h0(&h0)
        .with_lengths(&lens);
    let want = reference::forward(&gru, &input).unwrap();
    // A software adapter runs at most a workgroup per CPU core at once.
    let software = ctx.device.adapter_info().device_type == wgpu::DeviceType::Cpu;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
    // H = 40, B = 6: 5 × 2 virtual workgroups per step.
    for wgs in [1, 2, 10] {
        let opts = GpuOptions::default().with_grid_workgroups(wgs);
        let (got, sync) = run(ctx, &gru, opts, &input);
        let e = got.max_abs_diff(&want);
        assert!(e <= TOL, "{wgs} workgroups: {e}");
        // Layer 0: [done] ++ per chunk [arrivals, failed] × 3 attempts.
        assert_eq!(sync[0] as usize, t, "{wgs} workgroups: steps done");
        let failed_first: Vec<u32> = sync[1..].chunks(6).map(|c| c[1]).collect();
        if wgs == 1 {
            assert!(
                failed_first.iter().all(|&f| f == 0),
                "{wgs} workgroups: {sync:?}"
            );
        } else if software && wgs > cores {
            assert!(failed_first.contains(&1), "{wgs} workgroups: {sync:?}");
        }
    }
}
