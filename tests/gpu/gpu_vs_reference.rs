//! The GPU path against the f64 reference on shapes that are not multiples of any workgroup size.

use crate::common;
use crate::gpu_common;

use common::random::{Rng, random_gru};
use gpu_common::ctx;
use std::io::Write;
use wgpu_gru::gpu::{Algorithm, ForwardStats, GpuContext, GpuGru, GpuOptions};
use wgpu_gru::{
    Activation, Activations, Direction, Gru, GruConfig, GruOutput, SeqInput, Variant, reference,
};
use wgpu_gru::{Batch, Steps};

const TOL: f32 = 1e-5;

fn check(gru: &Gru, t: usize, b: usize, seed: u64, h0: bool, lengths: bool, algos: &[Algorithm]) {
    let Some(ctx) = ctx() else { return };
    let c = &gru.config;
    let mut rng = Rng(seed | 1);
    let x = rng.vec(t * b * c.input_size, 1.0);
    let h0v = rng.vec(c.num_layers * c.num_directions() * b * c.hidden_size, 0.8);
    let lens: Vec<usize> = (0..b)
        .map(|i| if i == 0 { t } else { 1 + rng.below(t) })
        .collect();
    let mut input = SeqInput::new(&x, Steps(t), Batch(b));
    if h0 {
        input = input.with_h0(&h0v);
    }
    if lengths {
        input = input.with_lengths(&lens);
    }
    let want = reference::forward(gru, &input).expect("reference");
    for &algo in algos {
        let Some(g) = build(ctx, gru, GpuOptions::default().with_algorithm(algo)) else {
            continue;
        };
        let (got, stats) = g.forward_with_stats(&input).expect("gpu forward");
        let err = got.max_abs_diff(&want);
        assert!(
            err <= TOL,
            "max abs error {err} > {TOL}: {algo:?} ran {stats:?}, T={t} B={b} I={} H={} L={} {:?} {:?} h0={h0} lengths={lengths}",
            c.input_size,
            c.hidden_size,
            c.num_layers,
            c.direction,
            c.variant
        );
    }
}

/// Random X (±1) and h0 (±0.5, every layer and direction) for `gru` at T × B, drawn in that order
/// from `Rng(seed)`.
fn random_x_h0(gru: &Gru, t: usize, b: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let c = &gru.config;
    let mut rng = Rng(seed);
    let x = rng.vec(t * b * c.input_size, 1.0);
    let h0 = rng.vec(c.num_layers * c.num_directions() * b * c.hidden_size, 0.5);
    (x, h0)
}

/// `gru` built with `opts`, or `None` where a forced sequence kernel cannot run the model (H
/// too large for it): that refusal is `Error::Unsupported`, and per-step, tiled and `Auto` are
/// never refused.
fn build(ctx: &GpuContext, gru: &Gru, opts: GpuOptions) -> Option<GpuGru> {
    match GpuGru::with_options(ctx, gru, opts) {
        Ok(g) => Some(g),
        Err(wgpu_gru::Error::Unsupported(_))
            if matches!(
                opts.algorithm,
                Algorithm::Sequence | Algorithm::SequenceRegisters
            ) =>
        {
            None
        }
        Err(e) => panic!("{:?}: {e}", opts.algorithm),
    }
}

/// Runs `gru` with `opts` on `input` and checks it against the reference's `want` within [`TOL`]
/// (a failure names the run by `what`). Returns what ran, or `None` where the forced algorithm
/// cannot run the model ([`build`]).
fn run_checked(
    ctx: &GpuContext,
    gru: &Gru,
    opts: GpuOptions,
    input: &SeqInput<'_>,
    want: &GruOutput,
    what: &str,
) -> Option<ForwardStats> {
    let g = build(ctx, gru, opts)?;
    let (got, stats) = g.forward_with_stats(input).unwrap();
    let err = got.max_abs_diff(want);
    assert!(err <= TOL, "{what}: {err} ({stats:?})");
    Some(stats)
}

/// The forced algorithms but the grid (checked on its own).
const BOTH: &[Algorithm] = Algorithm::FORCED.split_at(4).0;

#[test]
fn random_shapes_single_layer() {
    let mut seed = 1;
    for &h in &[1usize, 7, 65, 257] {
        for &i in &[1usize, 3, 300] {
            for &b in &[1usize, 5] {
                for &t in &[1usize, 2, 37] {
                    for variant in [Variant::ResetAfter, Variant::ResetBefore] {
                        // Every (H, I, B, T, variant) once; h0 alternates so both appear for each H.
                        seed += 1;
                        let gru = random_gru(GruConfig::new(i, h).with_variant(variant), seed);
                        check(&gru, t, b, seed, seed % 2 == 0, false, BOTH);
                    }
                }
            }
        }
    }
}

#[test]
fn with_and_without_h0() {
    for variant in [Variant::ResetAfter, Variant::ResetBefore] {
        for (h, i) in [(7, 3), (65, 1)] {
            let gru = random_gru(GruConfig::new(i, h).with_variant(variant), 99);
            check(&gru, 9, 5, 3, true, false, BOTH);
            check(&gru, 9, 5, 4, false, false, BOTH);
        }
    }
}

#[test]
fn layers_directions_lengths() {
    let mut seed = 500;
    for dir in [
        Direction::Forward,
        Direction::Reverse,
        Direction::Bidirectional,
    ] {
        for variant in [Variant::ResetAfter, Variant::ResetBefore] {
            for layers in [1, 2] {
                seed += 1;
                let cfg = GruConfig::new(5, 13)
                    .with_variant(variant)
                    .with_direction(dir)
                    .with_layers(layers);
                let gru = random_gru(cfg, seed);
                check(&gru, 11, 6, seed, true, true, BOTH);
                check(&gru, 11, 6, seed, false, false, BOTH);
            }
        }
    }
}

#[test]
fn batch_first_go_backwards_activations_clip() {
    let mut cfg = GruConfig::new(4, 9).with_layers(2);
    cfg.batch_first = true;
    check(&random_gru(cfg.clone(), 7), 6, 3, 7, true, true, BOTH);
    cfg.batch_first = false;
    cfg.num_layers = 1;
    cfg.go_backwards = true;
    check(&random_gru(cfg.clone(), 8), 6, 3, 8, true, false, BOTH);
    cfg.go_backwards = false;
    cfg.clip = Some(0.7);
    cfg.activations = vec![Activations {
        f: Activation::HardSigmoid {
            alpha: 0.3,
            beta: 0.45,
        },
        g: Activation::Relu,
    }];
    for variant in [Variant::ResetAfter, Variant::ResetBefore] {
        cfg.variant = variant;
        check(&random_gru(cfg.clone(), 9), 7, 4, 9, true, false, BOTH);
    }
}

#[test]
fn sequence_kernel_at_its_limits() {
    // H·rows at the sequence kernel's workgroup-memory limit, and H just over 256 (the auto crossover).
    for (h, b) in [(128, 9), (1024, 2), (255, 3), (257, 3)] {
        let gru = random_gru(GruConfig::new(6, h), h as u64);
        check(
            &gru,
            3,
            b,
            11,
            true,
            false,
            &[Algorithm::Auto, Algorithm::Sequence, Algorithm::PerStep],
        );
    }
}

#[test]
fn repeated_forward_reuses_workspace_and_counts() {
    let Some(ctx) = ctx() else { return };
    let gru = random_gru(GruConfig::new(3, 20), 5);
    let g = GpuGru::with_options(
        ctx,
        &gru,
        GpuOptions::default().with_algorithm(Algorithm::PerStep),
    )
    .unwrap();
    let x = vec![0.25f32; 10 * 2 * 3];
    let input = SeqInput::new(&x, Steps(10), Batch(2));
    let (a, s1) = g.forward_with_stats(&input).unwrap();
    let (b, s2) = g.forward_with_stats(&input).unwrap();
    assert_eq!(a, b);
    assert_eq!(s1, s2);
    assert_eq!(
        s1.dispatches,
        1 + 10,
        "reset-after: 1 projection + 1 dispatch per step"
    );
    assert_eq!(s1.submits, 1);
    let rb = random_gru(GruConfig::new(3, 20).with_variant(Variant::ResetBefore), 5);
    let g = GpuGru::with_options(
        ctx,
        &rb,
        GpuOptions::default().with_algorithm(Algorithm::PerStep),
    )
    .unwrap();
    let (_, s) = g.forward_with_stats(&input).unwrap();
    assert_eq!(
        s.dispatches,
        1 + 2 * 10,
        "reset-before: at most 2 dispatches per step"
    );
    let g = GpuGru::with_options(
        ctx,
        &rb,
        GpuOptions::default().with_algorithm(Algorithm::Sequence),
    )
    .unwrap();
    let (_, s) = g.forward_with_stats(&input).unwrap();
    assert_eq!(
        (s.dispatches, s.submits),
        (2, 1),
        "sequence: projection + one dispatch"
    );
}

#[test]
fn empty_shapes_give_empty_outputs() {
    let Some(ctx) = ctx() else { return };
    let gru = random_gru(GruConfig::new(3, 4), 1);
    let g = GpuGru::new(ctx, &gru).unwrap();
    let out = g.forward(&SeqInput::new(&[], Steps(0), Batch(2))).unwrap();
    assert!(out.output.is_empty());
    assert_eq!(out.h_n.len(), 8);
    let out = g.forward(&SeqInput::new(&[], Steps(5), Batch(0))).unwrap();
    assert!(out.output.is_empty() && out.h_n.is_empty());
}

#[test]
fn tiled_kernels_at_tile_edges() {
    // B around the 16/32/64-row tiles (8 → 16 rows, 24 → 32, the rest → 64 on a CPU adapter) and
    // H around the 16-unit tile and the 32-column K-step; h0 and lengths throughout.
    let mut seed = 900;
    for &h in &[1usize, 7, 65, 257] {
        for &b in &[8usize, 24, 63, 64, 65, 130] {
            for variant in [Variant::ResetAfter, Variant::ResetBefore] {
                seed += 1;
                let gru = random_gru(GruConfig::new(3, h).with_variant(variant), seed);
                check(&gru, 4, b, seed, true, true, &[Algorithm::Tiled]);
            }
        }
    }
    for variant in [Variant::ResetAfter, Variant::ResetBefore] {
        seed += 1;
        let cfg = GruConfig::new(5, 33)
            .with_variant(variant)
            .with_direction(Direction::Bidirectional)
            .with_layers(2);
        check(
            &random_gru(cfg, seed),
            6,
            65,
            seed,
            true,
            true,
            &[Algorithm::Tiled],
        );
    }
}

#[test]
fn tiled_dispatch_counts() {
    let Some(ctx) = ctx() else { return };
    let x = vec![0.25f32; 10 * 20 * 3];
    let input = SeqInput::new(&x, Steps(10), Batch(20));
    for (variant, per_step) in [(Variant::ResetAfter, 1), (Variant::ResetBefore, 2)] {
        let gru = random_gru(GruConfig::new(3, 20).with_variant(variant), 5);
        let g = GpuGru::with_options(
            ctx,
            &gru,
            GpuOptions::default().with_algorithm(Algorithm::Tiled),
        )
        .unwrap();
        let (_, s) = g.forward_with_stats(&input).unwrap();
        assert_eq!(s.algorithm, Algorithm::Tiled);
        assert!(
            wgpu_gru::gpu::wgsl::TILED_ROWS.contains(&s.rows_per_workgroup),
            "tile rows {} (the fill rule depends on the device)",
            s.rows_per_workgroup
        );
        assert_eq!(
            (s.dispatches, s.submits),
            (1 + per_step * 10, 1),
            "{variant:?}: projection + {per_step} dispatch(es) per step"
        );
    }
}

#[test]
fn register_kernel_slice_widths() {
    let Some(ctx) = ctx() else { return };
    for cols in [8u32, 16] {
        for (h, b) in [(7, 2), (65, 3), (128, 2), (160, 1)] {
            for variant in [Variant::ResetAfter, Variant::ResetBefore] {
                let gru = random_gru(
                    GruConfig::new(5, h).with_variant(variant),
                    h as u64 + cols as u64,
                );
                let (x, h0) = random_x_h0(&gru, 6, b, 3);
                let input = SeqInput::new(&x, Steps(6), Batch(b)).with_h0(&h0);
                let want = reference::forward(&gru, &input).unwrap();
                let opts = GpuOptions::default()
                    .with_algorithm(Algorithm::SequenceRegisters)
                    .with_register_columns(cols);
                let what = format!("cols {cols} H {h} {variant:?}");
                run_checked(ctx, &gru, opts, &input, &want, &what);
            }
        }
    }
}

/// The subgroup kernels (`*_subgroup.wgsl`) and the portable ones, each against the reference,
/// on both variants, both directions with lengths, at H around the register kernel's limits.
/// Prints whether the subgroup kernels ran, so CI can require them on adapters that have them.
#[test]
fn subgroup_and_portable_kernels() {
    let Some(ctx) = ctx() else { return };
    let has = ctx.device.features().contains(wgpu::Features::SUBGROUP);
    let info = ctx.device.adapter_info();
    let mut ran = false;
    for (h, b, bidir) in [
        (1, 3, true),
        (7, 5, false),
        (65, 2, true),
        (128, 3, false),
        (160, 1, false),
        (257, 6, true),
    ] {
        for variant in [Variant::ResetAfter, Variant::ResetBefore] {
            let mut cfg = GruConfig::new(9, h).with_variant(variant);
            if bidir {
                cfg = cfg.with_direction(Direction::Bidirectional);
            }
            let gru = random_gru(cfg, 7 * h as u64 + b as u64);
            let t = 9;
            let (x, h0) = random_x_h0(&gru, t, b, h as u64 + 11);
            let lens: Vec<usize> = (0..b).map(|i| t - (i * 3) % t).collect();
            let input = SeqInput::new(&x, Steps(t), Batch(b))
                .with_h0(&h0)
                .with_lengths(&lens);
            let want = reference::forward(&gru, &input).unwrap();
            for subgroups in [true, false] {
                for algorithm in [Algorithm::PerStep, Algorithm::SequenceRegisters] {
                    let opts = GpuOptions::default()
                        .with_algorithm(algorithm)
                        .with_subgroups(subgroups);
                    let what =
                        format!("H {h} B {b} {variant:?} subgroups {subgroups} {algorithm:?}");
                    let Some(stats) = run_checked(ctx, &gru, opts, &input, &want, &what) else {
                        assert!(h > 160, "{what}: refused");
                        continue;
                    };
                    if !subgroups || !has {
                        assert!(!stats.subgroups, "{stats:?}");
                    } else if stats.algorithm == Algorithm::PerStep {
                        assert!(stats.subgroups, "per-step without subgroups: {stats:?}");
                    }
                    ran |= stats.subgroups;
                    if has && subgroups && algorithm == Algorithm::SequenceRegisters && h <= 128 {
                        // KS ≤ 4 at H ≤ 128: within every adapter's smallest subgroup (≥ 4).
                        assert!(stats.subgroups, "H {h}: {stats:?}");
                    }
                }
            }
        }
    }
    let msg = if ran {
        format!(
            "subgroup kernels: ran (subgroup size {}..{})",
            info.subgroup_min_size, info.subgroup_max_size
        )
    } else {
        "subgroup kernels: not on this adapter (no Features::SUBGROUP); portable kernels only"
            .into()
    };
    let _ = writeln!(std::io::stderr(), "{msg}");
}

/// Sequences long enough that one sequence-kernel dispatch would pass Mesa's llvmpipe cap on loop
/// iterations per invocation (65,535, shared by all loops; past it results are silently wrong):
/// on software adapters the host splits T over several dispatches, carrying h between them.
/// Every sequence kernel, both variants, both directions with lengths.
#[test]
fn sequence_kernels_over_long_sequences() {
    let Some(ctx) = ctx() else { return };
    let cpu = ctx.device.adapter_info().device_type == wgpu::DeviceType::Cpu;
    for (algorithm, h, b, t) in [
        (Algorithm::Sequence, 33, 3, 2100),
        (Algorithm::Sequence, 40, 17, 700),
        (Algorithm::SequenceRegisters, 20, 2, 3000),
    ] {
        for variant in [Variant::ResetAfter, Variant::ResetBefore] {
            let cfg = GruConfig::new(3, h)
                .with_variant(variant)
                .with_direction(Direction::Bidirectional);
            let gru = random_gru(cfg, h as u64 + t as u64);
            let (x, h0) = random_x_h0(&gru, t, b, t as u64);
            let lens: Vec<usize> = (0..b).map(|i| t - (t / b) * i).collect();
            let input = SeqInput::new(&x, Steps(t), Batch(b))
                .with_h0(&h0)
                .with_lengths(&lens);
            let want = reference::forward(&gru, &input).unwrap();
            for subgroups in [true, false] {
                let opts = GpuOptions::default()
                    .with_algorithm(algorithm)
                    .with_subgroups(subgroups);
                let what = format!("{algorithm:?} H {h} T {t} {variant:?} subgroups {subgroups}");
                let stats = run_checked(ctx, &gru, opts, &input, &want, &what).expect(&what);
                assert_eq!(stats.algorithm, algorithm);
                if cpu {
                    assert!(stats.dispatches > 2, "T not split: {stats:?}");
                } else {
                    assert_eq!(stats.dispatches, 2, "{stats:?}");
                }
            }
        }
    }
}

/// The subgroup step kernels with more hidden units per workgroup than it has subgroups (each
/// subgroup then takes several units in turn, as on adapters that pick a larger subgroup than
/// their smallest), and fewer; out-of-range values are refused before any GPU work.
#[test]
fn subgroup_step_kernels_with_several_units_per_subgroup() {
    let Some(ctx) = ctx() else { return };
    for (h, b) in [(65, 3), (257, 5)] {
        for variant in [Variant::ResetAfter, Variant::ResetBefore] {
            let gru = random_gru(GruConfig::new(4, h).with_variant(variant), h as u64 + 3);
            let (x, h0) = random_x_h0(&gru, 5, b, 5);
            let input = SeqInput::new(&x, Steps(5), Batch(b)).with_h0(&h0);
            let want = reference::forward(&gru, &input).unwrap();
            for units in [1, 3, 64, 256] {
                let opts = GpuOptions::default()
                    .with_algorithm(Algorithm::PerStep)
                    .with_subgroup_units(units);
                let what = format!("units {units} H {h} {variant:?}");
                run_checked(ctx, &gru, opts, &input, &want, &what);
            }
        }
    }
    let gru = random_gru(GruConfig::new(4, 8), 1);
    let opts = GpuOptions::default().with_subgroup_units(257);
    let err = GpuGru::with_options(ctx, &gru, opts).unwrap_err();
    assert!(
        matches!(err, wgpu_gru::Error::InvalidArgument { .. }),
        "{err:?}"
    );
}

/// An input wide enough (I = 70,000) that one projection dispatch would pass llvmpipe's loop cap:
/// on software adapters the host splits K over dispatches that accumulate into xp. Two layers,
/// so the second projection (K = 2H) runs unsplit beside it.
#[test]
fn projection_over_a_very_wide_input() {
    let Some(ctx) = ctx() else { return };
    let cpu = ctx.device.adapter_info().device_type == wgpu::DeviceType::Cpu;
    let (t, b, i, h) = (3, 2, 70_000, 5);
    let cfg = GruConfig::new(i, h)
        .with_layers(2)
        .with_direction(Direction::Bidirectional);
    let gru = random_gru(cfg, 70);
    let mut rng = Rng(70);
    let x = rng.vec(t * b * i, 1.0);
    let input = SeqInput::new(&x, Steps(t), Batch(b));
    let want = reference::forward(&gru, &input).unwrap();
    let g = GpuGru::with_options(
        ctx,
        &gru,
        GpuOptions::default().with_algorithm(Algorithm::SequenceRegisters),
    )
    .unwrap();
    let (got, stats) = g.forward_with_stats(&input).unwrap();
    // 70,000-term f32 sums: allow their rounding.
    let err = got.max_abs_diff(&want);
    assert!(err <= 2e-5, "{err} ({stats:?})");
    // Per layer a projection and one sequence dispatch; layer 0's projection in 2 K-chunks on
    // software adapters.
    assert_eq!(stats.algorithm, Algorithm::SequenceRegisters);
    assert_eq!(stats.dispatches, if cpu { 5 } else { 4 }, "{stats:?}");
}

/// `encode_from_buffer` with app-owned input buffers: the same buffer with new contents, then a
/// different buffer (its bind group is cached per buffer and must follow the switch), each
/// against the reference.
#[test]
fn encode_from_app_buffers() {
    let Some(ctx) = ctx() else { return };
    let (t, b, i, h) = (4, 3, 6, 9);
    let gru = random_gru(GruConfig::new(i, h), 31);
    let g = GpuGru::new(ctx, &gru).unwrap();
    let mut ws = g.workspace(Steps(t), Batch(b)).unwrap();
    let dev = &ctx.device;
    // A new workspace is valid as it stands: x = 0, every length T, h0 = 0.
    let zeros = vec![0.0f32; t * b * i];
    let want = reference::forward(&gru, &SeqInput::new(&zeros, Steps(t), Batch(b))).unwrap();
    let mut enc = dev.create_command_encoder(&Default::default());
    g.encode(&mut enc, &ws).unwrap();
    g.encode_read_back(&mut enc, &ws).unwrap();
    let index = ctx.queue.submit([enc.finish()]);
    let fresh = pollster::block_on(g.read_output_async(&ws, index)).unwrap();
    assert!(
        fresh.max_abs_diff(&want) <= TOL,
        "{}",
        fresh.max_abs_diff(&want)
    );
    g.write_state(&mut ws, None, None).unwrap();
    let make = |label| {
        dev.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: (t * b * i * 4) as u64,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    };
    let (a, other) = (make("test input a"), make("test input b"));
    let n = t * b * h;
    let mut rng = Rng(31);
    for (round, buf) in [&a, &a, &other, &a].into_iter().enumerate() {
        let x = rng.vec(t * b * i, 1.0);
        ctx.queue.write_buffer(buf, 0, bytemuck::cast_slice(&x));
        let record = |enc: &mut wgpu::CommandEncoder| {
            g.encode_from_buffer(enc, &ws, buf).unwrap();
        };
        let got = gpu_common::run_and_read(ctx, record, ws.output_buffer(), n);
        let want = reference::forward(&gru, &SeqInput::new(&x, Steps(t), Batch(b))).unwrap();
        let err = wgpu_gru::max_abs_diff(&got, &want.output);
        assert!(err <= TOL, "round {round}: {err}");
    }
}

/// A forced algorithm that cannot run is an error naming why, never a silent fallback.
#[test]
fn forced_algorithms_that_cannot_run_are_refused() {
    let Some(ctx) = ctx() else { return };
    use wgpu_gru::gpu::wgsl::{REGS_MAX_H, SEQ_MAX};
    let big = random_gru(GruConfig::new(3, SEQ_MAX as usize + 1), 5);
    for (algo, why) in [
        (Algorithm::Sequence, "H ≤"),
        (Algorithm::SequenceRegisters, "H ≤"),
    ] {
        match GpuGru::with_options(ctx, &big, GpuOptions::default().with_algorithm(algo)) {
            Err(wgpu_gru::Error::Unsupported(msg)) => {
                assert!(
                    msg.contains(why) && msg.contains(&format!("{algo:?}")),
                    "{msg}"
                )
            }
            other => panic!("{algo:?} at H = {}: {other:?}", SEQ_MAX + 1),
        }
    }
    let regs_too_big = random_gru(GruConfig::new(3, REGS_MAX_H as usize + 1), 6);
    assert!(matches!(
        GpuGru::with_options(
            ctx,
            &regs_too_big,
            GpuOptions::default().with_algorithm(Algorithm::SequenceRegisters)
        ),
        Err(wgpu_gru::Error::Unsupported(_))
    ));
    // What can run, runs as asked.
    let g = GpuGru::with_options(
        ctx,
        &regs_too_big,
        GpuOptions::default().with_algorithm(Algorithm::Sequence),
    )
    .unwrap();
    assert_eq!(g.choose(3).unwrap().0, Algorithm::Sequence);
}

/// Building a model builds no pipeline; its first workspace builds only what its plan
/// dispatches, and a second model of the same specialisation on the context reuses them all.
#[test]
fn pipelines_are_built_on_first_use_and_shared() {
    // A context of its own: the shared one's cache grows with the tests running beside this.
    if ctx().is_none() {
        return;
    }
    let own = GpuContext::new_default().unwrap();
    let ctx = &own;
    // A shape and activation no other test of this binary uses, so the counts are its own.
    let mut c = GruConfig::new(5, 23).with_variant(Variant::ResetBefore);
    c.activations = vec![Activations {
        f: Activation::HardSigmoid {
            alpha: 0.3,
            beta: 0.4,
        },
        g: Activation::Tanh,
    }];
    let (a, b) = (random_gru(c.clone(), 1), random_gru(c, 2));
    let before = ctx.pipelines_built();
    let ga = GpuGru::new(ctx, &a).unwrap();
    assert_eq!(ctx.pipelines_built(), before, "GpuGru::new built pipelines");
    let x = Rng(3).vec(4 * 2 * 5, 1.0);
    let input = SeqInput::new(&x, Steps(4), Batch(2));
    let (_, stats) = ga.forward_with_stats(&input).unwrap();
    let first = ctx.pipelines_built() - before;
    // The projection and one recurrence kernel (two halves of one, per step, reset-before).
    let per_step = matches!(stats.algorithm, Algorithm::PerStep | Algorithm::Tiled);
    assert_eq!(first, if per_step { 3 } else { 2 }, "{stats:?}");
    let gb = GpuGru::new(ctx, &b).unwrap();
    let (got, _) = gb.forward_with_stats(&input).unwrap();
    assert_eq!(
        ctx.pipelines_built() - before,
        first,
        "the second model rebuilt pipelines"
    );
    let want = reference::forward(&b, &input).unwrap();
    assert!(got.max_abs_diff(&want) <= TOL);
}
