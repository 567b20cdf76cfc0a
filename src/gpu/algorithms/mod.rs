//! The recurrence algorithms, one module each, as `plan.rs` records them: when each can run and
//! with how many rows, and the dispatches one layer of it takes (through `plan.rs`'s
//! `Recorder`). The kernels are the WGSL files of the same names (`shaders/`), their pipelines
//! `wgsl.rs`'s `Kernel`s.
//!
//! - [`step`]: one dispatch per step (`step.wgsl`, `step_subgroup.wgsl`).
//! - [`sequence`]: all steps in one dispatch, h in workgroup memory (`sequence.wgsl`).
//! - [`sequence_regs`]: all steps in one dispatch, W_hh in registers (`sequence_regs*.wgsl`).
//! - [`tiled`]: per step, GEMM-tiled over batch rows (`tiled.wgsl`).
//! - [`grid`]: all steps in one dispatch of waiting workgroups (`grid.wgsl`).

pub(crate) mod grid;
pub(crate) mod sequence;
pub(crate) mod sequence_regs;
pub(crate) mod step;
pub(crate) mod tiled;

use super::pack::Model;

/// Whether the subgroup kernels run: asked for, and the device has the feature.
pub(crate) fn sg_enabled(model: &Model) -> bool {
    model.options.subgroups && model.ctx.facts().subgroups
}
