//! The only `include_str!` site: WGSL sources, and pipelines built once per specialisation.

use super::io::Layout;
use super::options::{Algorithm, GpuOptions};
use crate::config::{Activations, Variant};

pub use super::wgsl::{
    GEMM_KT, GEMM_TILE, REGS_MAX_H, REGS_MAX_WG, REGS_SG_WORKGROUP_BYTES, REGS_WORKGROUP_BYTES,
    SEQ_MAX, SEQ_MAX_ROWS, SEQ_WG, STEP_ROWS, STEP_UNITS, STEP_WG, Shader, Spec, TILED_GROUPS,
    TILED_MAX_RPI, TILED_UNITS,
};

/// Batch rows per tile of the tiled step kernels, one pipeline each: [`TILED_GROUPS`] · 1, 2 and
/// 4 rows per invocation.
pub const TILED_ROWS: [u32; 3] = [TILED_GROUPS, 2 * TILED_GROUPS, TILED_MAX_RPI * TILED_GROUPS];
/// Workgroups per tiled step dispatch below which `choose` halves the tile rows (down to 16) to
/// spread a step over more of the device's cores.
pub const TILED_FILL_WORKGROUPS: u32 = 128;

/// Compute pipelines for one model's specialisation (H, variant, activations, clip).
#[derive(Debug)]
pub struct Kernels {
    /// Bind group layout of `input_proj.wgsl`.
    pub proj_layout: wgpu::BindGroupLayout,
    /// Bind group layout shared by every entry point of `gru.wgsl`.
    pub gru_layout: wgpu::BindGroupLayout,
    /// `input_proj.wgsl::main` (64×64 tiles).
    pub proj: wgpu::ComputePipeline,
    /// K-columns per projection dispatch (0: all in one; see [`seq_steps`]).
    pub proj_k_chunk: u32,
    /// `gru.wgsl::step_fused` (reset-after).
    pub step_fused: Option<wgpu::ComputePipeline>,
    /// `gru.wgsl::step_gates` (reset-before, half 1).
    pub step_gates: Option<wgpu::ComputePipeline>,
    /// `gru.wgsl::step_candidate` (reset-before, half 2).
    pub step_candidate: Option<wgpu::ComputePipeline>,
    /// `gru.wgsl::sequence`, by batch rows per workgroup (1, 2, 4, 8 as H allows).
    pub sequence: Vec<SeqKernel>,
    /// `gru.wgsl::sequence_regs` (W_hh in registers), where H and the device's limits allow.
    pub sequence_regs: Option<SeqKernel>,
    /// `gru.wgsl::tiled_fused` (reset-after), by tile rows ([`TILED_ROWS`]).
    pub tiled_fused: Vec<(u32, wgpu::ComputePipeline)>,
    /// `gru.wgsl::tiled_gates` (reset-before, half 1), by tile rows.
    pub tiled_gates: Vec<(u32, wgpu::ComputePipeline)>,
    /// `gru.wgsl::tiled_candidate` (reset-before, half 2), by tile rows.
    pub tiled_candidate: Vec<(u32, wgpu::ComputePipeline)>,
    /// The subgroup kernels of `gru_subgroup.wgsl`, where the device has `Features::SUBGROUP` and
    /// they were asked for.
    pub subgroup: Option<SubgroupKernels>,
    /// `gru.wgsl::grid` (attempts 0, 1 and 2), where [`Algorithm::Grid`] was asked for.
    pub grid: Option<GridKernels>,
    /// Whether the device is a software adapter (device type `Cpu`, such as lavapipe).
    pub software: bool,
}

/// The grid kernel's three attempts per chunk of steps (`gru.wgsl::grid`).
#[derive(Debug)]
pub struct GridKernels {
    /// Attempts 0 and 1 with `workgroups` workgroups, attempt 2 with one.
    pub attempts: [wgpu::ComputePipeline; 3],
    /// Workgroups of attempts 0 and 1.
    pub workgroups: u32,
    /// Steps per chunk (`SEQ_STEPS`); 0: all T in one.
    pub steps: u32,
}

/// Words of the grid kernel's `sync` slots one layer needs for `steps` steps (`[done]` and
/// `[arrivals, failed]` per chunk and attempt).
pub fn grid_sync_words(grid: Option<&GridKernels>, steps: u32) -> u32 {
    let chunks = match grid {
        Some(g) if g.steps > 0 => steps.div_ceil(g.steps).max(1),
        _ => 1,
    };
    1 + chunks * 3 * 2
}

/// Polls per wait of the grid kernel: within llvmpipe's loop cap on software adapters, and long
/// enough on hardware for every resident workgroup to arrive.
pub fn grid_spin(software: bool) -> u32 {
    if software { 20_000 } else { 200_000 }
}

/// Pipelines of `gru_subgroup.wgsl`.
#[derive(Debug)]
pub struct SubgroupKernels {
    /// Hidden units per workgroup of the step kernels: 256 / the adapter's smallest subgroup, so
    /// every subgroup has a unit at any subgroup size the driver picks.
    pub units: u32,
    /// `step_fused_sg` (reset-after).
    pub step_fused: Option<wgpu::ComputePipeline>,
    /// `step_gates_sg` (reset-before, half 1).
    pub step_gates: Option<wgpu::ComputePipeline>,
    /// `step_candidate_sg` (reset-before, half 2).
    pub step_candidate: Option<wgpu::ComputePipeline>,
    /// `sequence_regs_sg`, where H, the device's limits and its smallest subgroup allow.
    pub sequence_regs: Option<SeqKernel>,
}

/// A sequence-persistent pipeline and how many steps one dispatch of it may run.
#[derive(Debug)]
pub struct SeqKernel {
    /// Batch rows per workgroup.
    pub rows: u32,
    /// Steps per dispatch (its `SEQ_STEPS`); 0 runs all T in one.
    pub steps: u32,
    /// The pipeline.
    pub pipeline: wgpu::ComputePipeline,
}

/// Loop iterations one shader invocation may run on Mesa's llvmpipe (`LP_MAX_TGSI_LOOP_ITERATIONS`,
/// shared by every loop of the shader): past it, loops end early and results are silently wrong.
pub const LLVMPIPE_LOOP_LIMIT: u32 = 65_535;

/// Units of work (sequence steps, projection K-stages) per dispatch of a kernel whose units each
/// run up to `per_step` loop iterations: 0 (all in one dispatch) on hardware, and within
/// [`LLVMPIPE_LOOP_LIMIT`], with room for the prologue, on software adapters.
pub fn seq_steps(software: bool, per_step: u32) -> u32 {
    if !software {
        return 0;
    }
    ((LLVMPIPE_LOOP_LIMIT - 5_535) / per_step.max(1)).max(1)
}

/// `(KQ, KS, WG)` of `sequence_regs_sg` for `hidden` with up to `columns` K-columns per
/// invocation: KS is rounded up to a power of two (the shuffle reduction needs it) and KQ shrunk to
/// match.
pub fn regs_sg_shape(hidden: u32, columns: u32) -> (u32, u32, u32) {
    let ks = hidden.div_ceil(columns).max(1).next_power_of_two();
    let kq = hidden.div_ceil(4).div_ceil(ks).max(1);
    (kq, ks, (hidden * ks).next_multiple_of(32))
}

/// Whether a register kernel of `(KQ, KS, WG)` for `hidden`, declaring `bytes` of workgroup memory,
/// fits its arrays (`regs.wgsl`) and the device's limits.
fn regs_fit(limits: &wgpu::Limits, hidden: u32, kq: u32, ks: u32, wg: u32, bytes: u32) -> bool {
    hidden <= REGS_MAX_H
        && ks * kq <= REGS_MAX_H / 4
        && wg <= REGS_MAX_WG
        && wg <= limits.max_compute_invocations_per_workgroup
        && wg <= limits.max_compute_workgroup_size_x
        && bytes <= limits.max_compute_workgroup_storage_size
}

/// `(KS, WG)` of `sequence_regs` for `hidden` with `columns` K-columns per invocation:
/// K-slices per unit and invocations per workgroup.
pub fn regs_shape(hidden: u32, columns: u32) -> (u32, u32) {
    let ks = hidden.div_ceil(columns).max(1);
    (ks, (hidden * ks).next_multiple_of(32))
}

impl Kernels {
    /// Builds every pipeline the model needs. `hidden` is H; `acts` are the activations of
    /// direction slots 0 and 1.
    pub fn new(
        device: &wgpu::Device,
        hidden: u32,
        variant: Variant,
        acts: [Activations; 2],
        clip: Option<f32>,
        options: &GpuOptions,
    ) -> Self {
        let regs_columns = options.register_columns;
        use super::io::Bind::{DynUniform, Read, ReadWrite, Uniform};
        let proj_layout = Layout::new(
            device,
            "wgpu-gru input_proj",
            &[Uniform, Read, Read, Read, ReadWrite, DynUniform],
        );
        let gru_layout = Layout::new(
            device,
            "wgpu-gru gru",
            &[
                DynUniform, Uniform, Read, Read, Read, ReadWrite, ReadWrite, ReadWrite, ReadWrite,
                ReadWrite,
            ],
        );
        let kq = (regs_columns / 4).clamp(1, 8);
        let spec = |kq| Spec {
            precision: options.precision,
            kq,
        };
        let proj_module = Shader::InputProj.create(device, spec(kq));
        let gru_module = Shader::Gru.create(device, spec(kq));
        let software = device.adapter_info().device_type == wgpu::DeviceType::Cpu;
        // Per 16-column K-stage: the stage, its 4 loads and 16 FMAs, should none be unrolled.
        let proj_k_chunk = seq_steps(software, 21) * GEMM_KT;
        let proj = proj_layout.pipeline(
            device,
            &proj_module,
            "main",
            &[("K_CHUNK", proj_k_chunk as f64)],
        );

        let mut base: Vec<(&str, f64)> = vec![("H", hidden as f64)];
        // Direction slot 0, then slot 1 (the same pair where the directions share one).
        for (a, [fk, fa, fb, gk, ga, gb]) in acts.iter().zip([
            ["F_KIND", "F_ALPHA", "F_BETA", "G_KIND", "G_ALPHA", "G_BETA"],
            [
                "F_KIND_R",
                "F_ALPHA_R",
                "F_BETA_R",
                "G_KIND_R",
                "G_ALPHA_R",
                "G_BETA_R",
            ],
        ]) {
            let (f, g) = (a.f.code(), a.g.code());
            base.extend([
                (fk, f.0 as f64),
                (fa, f.1 as f64),
                (fb, f.2 as f64),
                (gk, g.0 as f64),
                (ga, g.1 as f64),
                (gb, g.2 as f64),
            ]);
        }
        base.extend([
            ("CLIP", clip.unwrap_or(0.0) as f64),
            (
                "RESET_AFTER",
                if variant == Variant::ResetAfter {
                    1.0
                } else {
                    0.0
                },
            ),
        ]);
        let make_in = |module: &wgpu::ShaderModule, entry: &str, extra: &[(&str, f64)]| {
            let mut constants = base.clone();
            constants.extend_from_slice(extra);
            gru_layout.pipeline(device, module, entry, &constants)
        };
        let make = |entry: &str, extra: &[(&str, f64)]| make_in(&gru_module, entry, extra);
        let (step_fused, step_gates, step_candidate) = match variant {
            Variant::ResetAfter => (Some(make("step_fused", &[])), None, None),
            Variant::ResetBefore => (
                None,
                Some(make("step_gates", &[])),
                Some(make("step_candidate", &[])),
            ),
        };
        // A forced algorithm needs its own kernels and the per-step ones it falls back to; only
        // `Auto` builds every kind.
        let wants =
            |a: Algorithm| matches!(options.algorithm, Algorithm::Auto) || options.algorithm == a;
        let sequence = if wants(Algorithm::Sequence) && hidden <= SEQ_MAX {
            std::iter::successors(Some(1u32), |&bs| (bs < SEQ_MAX_ROWS).then_some(bs * 2))
                .filter(|&bs| bs * hidden <= SEQ_MAX)
                .map(|bs| {
                    // Per step, both halves (reset-before), every loop counted: units per
                    // invocation × (H iterations over k, each with BS rows, and the row loops).
                    let per_step = 2 * hidden.div_ceil(SEQ_WG) * (hidden * (1 + bs) + 2 * bs) + 4;
                    let steps = seq_steps(software, per_step);
                    SeqKernel {
                        rows: bs,
                        steps,
                        pipeline: make(
                            "sequence",
                            &[("BS", bs as f64), ("SEQ_STEPS", steps as f64)],
                        ),
                    }
                })
                .collect()
        } else {
            Vec::new()
        };
        let limits = device.limits();
        let (ks, wg) = regs_shape(hidden, kq * 4);
        let sequence_regs = (wants(Algorithm::SequenceRegisters)
            && regs_fit(&limits, hidden, kq, ks, wg, REGS_WORKGROUP_BYTES))
        .then(|| {
            let steps = seq_steps(software, 3 * kq + ks + 8);
            SeqKernel {
                rows: 1,
                steps,
                pipeline: make(
                    "sequence_regs",
                    &[
                        ("KS", ks as f64),
                        ("WG", wg as f64),
                        ("SEQ_STEPS", steps as f64),
                    ],
                ),
            }
        });
        let make_tiled = |entry: &str| -> Vec<(u32, wgpu::ComputePipeline)> {
            if !wants(Algorithm::Tiled) {
                return Vec::new();
            }
            TILED_ROWS
                .iter()
                .map(|&rows| (rows, make(entry, &[("RPI", (rows / TILED_GROUPS) as f64)])))
                .collect()
        };
        let (tiled_fused, tiled_gates, tiled_candidate) = match variant {
            Variant::ResetAfter => (make_tiled("tiled_fused"), Vec::new(), Vec::new()),
            Variant::ResetBefore => (
                Vec::new(),
                make_tiled("tiled_gates"),
                make_tiled("tiled_candidate"),
            ),
        };
        // Only when asked for: `Auto` never picks it.
        let grid = (options.algorithm == Algorithm::Grid).then(|| {
            let workgroups = options.grid_workgroups.max(1);
            // One step per dispatch on software adapters: llvmpipe's loop cap counts every
            // virtual workgroup's loops and the waits of one invocation together.
            let steps = u32::from(software);
            let spin = grid_spin(software);
            let attempt = |a: u32, wgs: u32| {
                make(
                    "grid",
                    &[
                        ("GRID_WGS", f64::from(wgs)),
                        ("ATTEMPT", f64::from(a)),
                        ("SPIN", f64::from(spin)),
                        ("SEQ_STEPS", f64::from(steps)),
                    ],
                )
            };
            GridKernels {
                attempts: [
                    attempt(0, workgroups),
                    attempt(1, workgroups),
                    attempt(2, 1),
                ],
                workgroups,
                steps,
            }
        });
        let subgroup = (options.subgroups && device.features().contains(wgpu::Features::SUBGROUP))
            .then(|| {
                let info = device.adapter_info();
                let (kq, ks, wg) = regs_sg_shape(hidden, kq * 4);
                let module = Shader::GruSubgroup.create(device, spec(kq));
                let units = match options.subgroup_units {
                    0 => (STEP_WG / info.subgroup_min_size.max(1)).max(1),
                    n => n,
                };
                let step = |entry: &str| make_in(&module, entry, &[("SG_UNITS", units as f64)]);
                let (step_fused, step_gates, step_candidate) = match variant {
                    Variant::ResetAfter => (Some(step("step_fused_sg")), None, None),
                    Variant::ResetBefore => (
                        None,
                        Some(step("step_gates_sg")),
                        Some(step("step_candidate_sg")),
                    ),
                };
                let sequence_regs = (wants(Algorithm::SequenceRegisters)
                    && ks <= info.subgroup_min_size
                    && regs_fit(&limits, hidden, kq, ks, wg, REGS_SG_WORKGROUP_BYTES))
                .then(|| {
                    let steps = seq_steps(software, 3 * kq + ks + 8);
                    SeqKernel {
                        rows: 1,
                        steps,
                        pipeline: make_in(
                            &module,
                            "sequence_regs_sg",
                            &[
                                ("KS", ks as f64),
                                ("WG", wg as f64),
                                ("SEQ_STEPS", steps as f64),
                            ],
                        ),
                    }
                });
                SubgroupKernels {
                    units,
                    step_fused,
                    step_gates,
                    step_candidate,
                    sequence_regs,
                }
            });
        Kernels {
            proj_layout: proj_layout.group,
            gru_layout: gru_layout.group,
            proj,
            proj_k_chunk,
            step_fused,
            step_gates,
            step_candidate,
            sequence,
            sequence_regs,
            tiled_fused,
            tiled_gates,
            tiled_candidate,
            subgroup,
            grid,
            software,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_kernel_shapes() {
        assert_eq!(regs_shape(128, 32), (4, 512));
        assert_eq!(regs_shape(160, 32), (5, 800));
        // The subgroup kernel rounds K-slices up to a power of two and shrinks KQ to match.
        assert_eq!(regs_sg_shape(128, 32), (8, 4, 512));
        assert_eq!(regs_sg_shape(65, 32), (5, 4, 288));
        assert_eq!(regs_sg_shape(20, 32), (5, 1, 32));
        assert_eq!(regs_sg_shape(160, 32), (5, 8, 1280));
    }

    #[test]
    fn sequence_steps_stay_under_llvmpipe_cap() {
        assert_eq!(seq_steps(false, 1000), 0);
        for per_step in [1, 36, 1032, 70_000] {
            let n = seq_steps(true, per_step);
            assert!(n >= 1);
            assert!(
                n == 1 || n * per_step < LLVMPIPE_LOOP_LIMIT,
                "{per_step}: {n}"
            );
        }
    }
}
