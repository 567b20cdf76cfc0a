//! The recurrence's pipelines: what each [`Kernel`] a plan dispatches compiles to (module, entry
//! point, override constants), built on first use and cached on the [`GpuContext`], so that every
//! model of one specialisation on a device shares them.

use std::sync::Arc;

use super::context::GpuContext;
use super::layout::{Bind, Layout};
use super::options::GpuOptions;
use crate::config::{Activations, Variant};
use crate::error::Result;

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

/// Words of the grid kernel's `sync` slots one layer needs for `steps` steps run `per` to a chunk
/// (0: all in one): `[done]` and `[arrivals, failed]` per chunk and attempt.
pub fn grid_sync_words(per: u32, steps: u32) -> u32 {
    let chunks = if per > 0 {
        steps.div_ceil(per).max(1)
    } else {
        1
    };
    1 + chunks * 3 * 2
}

/// Polls per wait of the grid kernel: within llvmpipe's loop cap on software adapters, and long
/// enough on hardware for every resident workgroup to arrive.
pub fn grid_spin(software: bool) -> u32 {
    if software { 20_000 } else { 200_000 }
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
pub(crate) fn regs_fit(
    limits: &wgpu::Limits,
    hidden: u32,
    kq: u32,
    ks: u32,
    wg: u32,
    bytes: u32,
) -> bool {
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

/// The three kinds of step work: reset-after's fused step, and reset-before's two halves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum StepKind {
    /// Reset-after: r, z, n from one pass over W_hh, then h_t.
    Fused,
    /// Reset-before, half 1: z and r⊙h.
    Gates,
    /// Reset-before, half 2: n from U_n·(r⊙h), then h_t.
    Candidate,
}

impl StepKind {
    /// The step kinds one step of `variant` runs, in order.
    pub(crate) fn of(variant: Variant) -> &'static [StepKind] {
        match variant {
            Variant::ResetAfter => &[StepKind::Fused],
            Variant::ResetBefore => &[StepKind::Gates, StepKind::Candidate],
        }
    }

    fn name(self) -> &'static str {
        match self {
            StepKind::Fused => "fused",
            StepKind::Gates => "gates",
            StepKind::Candidate => "candidate",
        }
    }
}

/// One pipeline a plan dispatches, with the specialisation that depends on the plan (the
/// model's own, H and the activations, is in [`Kernels`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Kernel {
    /// `input_proj.wgsl::main`.
    Proj,
    /// `step.wgsl::step_*`, or `step_subgroup.wgsl::step_*_sg`.
    Step { kind: StepKind, subgroup: bool },
    /// `sequence.wgsl::sequence` with `rows` batch rows per workgroup, `steps` per dispatch.
    Sequence { rows: u32, steps: u32 },
    /// `sequence_regs.wgsl::sequence_regs` (or `sequence_regs_subgroup.wgsl::sequence_regs_sg`)
    /// with `ks` K-slices, `wg` invocations, `steps` per dispatch.
    SequenceRegs {
        subgroup: bool,
        kq: u32,
        ks: u32,
        wg: u32,
        steps: u32,
    },
    /// `tiled.wgsl::tiled_*` with `rpi` rows per invocation.
    Tiled { kind: StepKind, rpi: u32 },
    /// `grid.wgsl::grid`, attempt `attempt` of `workgroups` workgroups.
    Grid {
        attempt: u32,
        workgroups: u32,
        spin: u32,
        steps: u32,
    },
}

/// The bind group layout of `input_proj.wgsl`.
const PROJ_BINDS: [Bind; 6] = [
    Bind::Uniform,
    Bind::Read,
    Bind::Read,
    Bind::Read,
    Bind::ReadWrite,
    Bind::DynUniform,
];
/// The bind group layout every recurrence module shares (`prelude.wgsl`, plus `grid.wgsl`'s
/// `sync`).
const GRU_BINDS: [Bind; 10] = [
    Bind::DynUniform,
    Bind::Uniform,
    Bind::Read,
    Bind::Read,
    Bind::Read,
    Bind::ReadWrite,
    Bind::ReadWrite,
    Bind::ReadWrite,
    Bind::ReadWrite,
    Bind::ReadWrite,
];

/// One model's specialisation (H, variant, activations, clip, precision, KQ): what turns a
/// [`Kernel`] into a pipeline. Building it builds nothing on the device but the two layouts
/// (cached on the context); pipelines come on first use.
pub(crate) struct Kernels {
    ctx: GpuContext,
    /// The layout of `input_proj.wgsl`.
    pub proj_layout: Arc<Layout>,
    /// The layout every recurrence module shares.
    pub gru_layout: Arc<Layout>,
    precision: super::options::Precision,
    /// KQ of the portable register kernel.
    pub kq: u32,
    /// K-columns per projection dispatch (0: all in one; see [`seq_steps`]).
    pub proj_k_chunk: u32,
    /// Hidden units per workgroup of the subgroup step kernels.
    pub sg_units: u32,
    /// H, the activations of both direction slots, clip and the variant.
    base: Vec<(&'static str, f64)>,
}

impl Kernels {
    /// The specialisation of a model of `hidden` units; `acts` are the activations of direction
    /// slots 0 and 1.
    pub(crate) fn new(
        ctx: &GpuContext,
        hidden: u32,
        variant: Variant,
        acts: [Activations; 2],
        clip: Option<f32>,
        options: &GpuOptions,
    ) -> Result<Self> {
        let facts = ctx.facts();
        let cache = &ctx.pipelines;
        let layout = |label: &str, binds: &[Bind]| {
            cache.layout(label, || Layout::new(&ctx.device, label, binds))
        };
        let proj_layout = layout("wgpu-gru input_proj", &PROJ_BINDS)?;
        let gru_layout = layout("wgpu-gru gru", &GRU_BINDS)?;
        let mut base: Vec<(&'static str, f64)> = vec![("H", f64::from(hidden))];
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
                (fk, f64::from(f.0)),
                (fa, f64::from(f.1)),
                (fb, f64::from(f.2)),
                (gk, f64::from(g.0)),
                (ga, f64::from(g.1)),
                (gb, f64::from(g.2)),
            ]);
        }
        base.extend([
            ("CLIP", f64::from(clip.unwrap_or(0.0))),
            (
                "RESET_AFTER",
                if variant == Variant::ResetAfter {
                    1.0
                } else {
                    0.0
                },
            ),
        ]);
        let sg_units = match options.subgroup_units {
            0 => (STEP_WG / facts.subgroup_min_size.max(1)).max(1),
            n => n,
        };
        Ok(Kernels {
            ctx: ctx.clone(),
            proj_layout,
            gru_layout,
            precision: options.precision,
            kq: (options.register_columns / 4).clamp(1, 8),
            // Per 16-column K-stage: the stage, its 4 loads and 16 FMAs, should none be unrolled.
            proj_k_chunk: seq_steps(facts.software, 21) * GEMM_KT,
            sg_units,
            base,
        })
    }

    /// The pipeline of `kernel` for this specialisation: from the context's cache, or built now.
    /// Call it inside the caller's error scopes: a failed build shows there.
    pub(crate) fn pipeline(&self, kernel: Kernel) -> Result<Arc<wgpu::ComputePipeline>> {
        let mut constants: Vec<(&'static str, f64)> = Vec::new();
        let u = f64::from;
        let (layout, shader, kq, entry) = match kernel {
            Kernel::Proj => {
                constants.push(("K_CHUNK", u(self.proj_k_chunk)));
                (&self.proj_layout, Shader::InputProj, 8, "main".to_string())
            }
            Kernel::Step { kind, subgroup } => {
                constants.extend_from_slice(&self.base);
                if subgroup {
                    constants.push(("SG_UNITS", u(self.sg_units)));
                    let entry = format!("step_{}_sg", kind.name());
                    (&self.gru_layout, Shader::StepSubgroup, 8, entry)
                } else {
                    let entry = format!("step_{}", kind.name());
                    (&self.gru_layout, Shader::Step, 8, entry)
                }
            }
            Kernel::Sequence { rows, steps } => {
                constants.extend_from_slice(&self.base);
                constants.extend([("BS", u(rows)), ("SEQ_STEPS", u(steps))]);
                (&self.gru_layout, Shader::Sequence, 8, "sequence".into())
            }
            Kernel::SequenceRegs {
                subgroup,
                kq,
                ks,
                wg,
                steps,
            } => {
                constants.extend_from_slice(&self.base);
                constants.extend([("KS", u(ks)), ("WG", u(wg)), ("SEQ_STEPS", u(steps))]);
                if subgroup {
                    let entry = "sequence_regs_sg".into();
                    (&self.gru_layout, Shader::SequenceRegsSubgroup, kq, entry)
                } else {
                    let entry = "sequence_regs".into();
                    (&self.gru_layout, Shader::SequenceRegs, kq, entry)
                }
            }
            Kernel::Tiled { kind, rpi } => {
                constants.extend_from_slice(&self.base);
                constants.push(("RPI", u(rpi)));
                let entry = format!("tiled_{}", kind.name());
                (&self.gru_layout, Shader::Tiled, 8, entry)
            }
            Kernel::Grid {
                attempt,
                workgroups,
                spin,
                steps,
            } => {
                constants.extend_from_slice(&self.base);
                constants.extend([
                    ("GRID_WGS", u(workgroups)),
                    ("ATTEMPT", u(attempt)),
                    ("SPIN", u(spin)),
                    ("SEQ_STEPS", u(steps)),
                ]);
                (&self.gru_layout, Shader::Grid, 8, "grid".into())
            }
        };
        let spec = Spec {
            precision: self.precision,
            kq,
        };
        // Everything the pipeline is specialised by, constants as their exact bits.
        let mut key = format!("{} {shader:?} {spec:?} {entry}", layout.label());
        for (n, v) in &constants {
            key.push_str(&format!(" {n}={:x}", v.to_bits()));
        }
        let device = &self.ctx.device;
        let cache = &self.ctx.pipelines;
        let module = cache.module(&format!("{shader:?} {spec:?}"), || {
            shader.create(device, spec)
        })?;
        cache.pipeline(&key, || {
            layout.pipeline(device, &module, &entry, &constants)
        })
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
