//! The recurrence algorithms, one module each, as `plan.rs` records them: when each can run and
//! with how many rows, and the dispatches one layer of it takes. The kernels are the WGSL files of
//! the same names (`shaders/`), their pipelines `kernels.rs`'s [`Kernel`]s.
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

use std::sync::Arc;

use super::kernels::Kernel;
use super::pack::Model;
use crate::error::Result;

/// Which of a workspace's bind groups a dispatch binds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Group {
    /// Layer `l`'s input projection (layer 0's may be swapped for an app buffer's).
    Proj(usize),
    /// Layer `l`'s recurrence.
    Gru(usize),
}

/// One recorded dispatch: pipeline, bind group, dynamic offset, workgroups.
#[derive(Debug, Clone)]
pub(crate) struct Dispatch {
    pub pipeline: Arc<wgpu::ComputePipeline>,
    pub group: Group,
    /// The dynamic offset of the step-index uniform: which step (or K-chunk) this dispatch runs.
    pub offset: u32,
    pub workgroups: [u32; 3],
}

/// The dispatches of a plan being built, for a forward of `steps` × `batch` rows.
pub(crate) struct Recorder<'a> {
    pub model: &'a Model,
    pub steps: u32,
    pub batch: u32,
    /// Bytes between step-index slots.
    pub stride: u32,
    pub dispatches: Vec<Dispatch>,
}

impl Recorder<'_> {
    /// The pipeline of `kernel` for the model (built or cached).
    pub(crate) fn pipeline(&self, kernel: Kernel) -> Result<Arc<wgpu::ComputePipeline>> {
        self.model.kernels.pipeline(kernel)
    }

    /// Records `pipeline` over `group` at step (or K-chunk) `step`, with `workgroups`.
    pub(crate) fn push(
        &mut self,
        pipeline: &Arc<wgpu::ComputePipeline>,
        group: Group,
        step: u32,
        workgroups: [u32; 3],
    ) {
        self.dispatches.push(Dispatch {
            pipeline: pipeline.clone(),
            group,
            offset: step * self.stride,
            workgroups,
        });
    }

    /// The first step of each dispatch of a kernel that runs `per` steps each (0: all T).
    pub(crate) fn chunks(&self, per: u32) -> impl Iterator<Item = u32> + use<> {
        let t = self.steps;
        (0..t).step_by(if per == 0 { t } else { per }.max(1) as usize)
    }

    /// Directions D.
    pub(crate) fn dirs(&self) -> u32 {
        self.model.config.num_directions() as u32
    }

    /// Hidden units H.
    pub(crate) fn hidden(&self) -> u32 {
        self.model.config.hidden_size as u32
    }

    /// Whether the adapter is a software one.
    pub(crate) fn software(&self) -> bool {
        self.model.ctx.facts().software
    }
}

/// Whether the subgroup kernels run: asked for, and the device has the feature.
pub(crate) fn sg_enabled(model: &Model) -> bool {
    model.options.subgroups && model.ctx.facts().subgroups
}
