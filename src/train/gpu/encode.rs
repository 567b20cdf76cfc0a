//! Recording a trainer's passes into a compute pass: the training-mode forward, the backward,
//! the head's loss and backward (the update is `optimizer.rs`'s).

use super::blocks::GemmCall;
use super::pipelines::{Pipelines, StepKernels};
use super::workspace::TrainWorkspace;
use crate::config::GruConfig;
use crate::error::{Error, Result};
use crate::gpu::wgsl::TRAIN_WG;

/// What recording needs: a trainer's configuration and pipelines, one of its workspaces, and
/// the device's workgroups per dimension.
pub(super) struct Recorder<'a> {
    pub config: &'a GruConfig,
    pub pipes: &'a Pipelines,
    pub ws: &'a TrainWorkspace,
    pub max_dim: u32,
}

impl Recorder<'_> {
    pub fn gemms(&self, pass: &mut wgpu::ComputePass<'_>, calls: &[GemmCall]) {
        for g in calls {
            pass.set_pipeline(if g.colsum {
                &self.pipes.colsum
            } else {
                &self.pipes.gemm
            });
            pass.set_bind_group(0, &self.ws.gemm_group, &[g.offset]);
            pass.dispatch_workgroups(g.grid.0, g.grid.1, 1);
        }
    }

    /// One recurrence dispatch of layer `l` at step `s`.
    fn rec(
        &self,
        pass: &mut wgpu::ComputePass<'_>,
        pipe: &wgpu::ComputePipeline,
        (l, s): (usize, usize),
        grid: (u32, u32, u32),
    ) {
        let ws = self.ws;
        pass.set_pipeline(pipe);
        pass.set_bind_group(0, &ws.rec_group, &[ws.step_offsets[s], ws.layer_offsets[l]]);
        pass.dispatch_workgroups(grid.0, grid.1, grid.2);
    }

    /// The step kernels' grid: (units, rows, directions).
    fn step_grid(&self) -> (u32, u32, u32) {
        let h = self.config.hidden_size as u32;
        let d_n = self.config.num_directions() as u32;
        (h.div_ceil(TRAIN_WG), self.ws.batch as u32, d_n)
    }

    /// Records the training-mode forward of every layer.
    pub fn forward(&self, pass: &mut wgpu::ComputePass<'_>) {
        let c = self.config;
        let h = c.hidden_size as u32;
        let grid = self.step_grid();
        // W_hhᵀ: one invocation per element, over an (x, y) grid.
        let groups = (3 * h * h).div_ceil(TRAIN_WG);
        let tx = groups.min(self.max_dim);
        let t_grid = (tx, groups.div_ceil(tx), grid.2);
        for l in 0..c.num_layers {
            self.rec(pass, &self.pipes.transpose, (l, 0), t_grid);
            self.gemms(pass, &self.ws.fwd_gemms[l]);
            for s in 0..self.ws.steps {
                match &self.pipes.steps {
                    StepKernels::ResetAfter { fwd } => self.rec(pass, fwd, (l, s), grid),
                    StepKernels::ResetBefore { gates, cand, .. } => {
                        self.rec(pass, gates, (l, s), grid);
                        self.rec(pass, cand, (l, s), grid);
                    }
                }
            }
        }
    }

    /// Records the backward of every layer, from the top; `input_grad`: also dL/dX of layer 0.
    pub fn backward(&self, pass: &mut wgpu::ComputePass<'_>, input_grad: bool) {
        let grid = self.step_grid();
        for l in (0..self.config.num_layers).rev() {
            for s in (0..self.ws.steps).rev() {
                self.rec(pass, &self.pipes.bwd_elem, (l, s), grid);
                if let StepKernels::ResetBefore { bwd_mid, .. } = &self.pipes.steps {
                    self.rec(pass, bwd_mid, (l, s), grid);
                }
                self.rec(pass, &self.pipes.bwd_rec, (l, s), grid);
            }
            self.gemms(pass, &self.ws.bwd_gemms[l]);
            if l == 0 && input_grad {
                self.gemms(pass, &self.ws.dx0_gemms);
            }
        }
    }

    /// Records the head's loss, its reduction and (with `backward`) the head's gradient GEMMs.
    pub fn head(&self, pass: &mut wgpu::ComputePass<'_>, backward: bool) -> Result<()> {
        let ws = self.ws;
        let pipes = need_head(self.pipes.head.as_ref())?;
        pass.set_bind_group(0, &ws.opt_group, &[ws.opt_offset]);
        pass.set_pipeline(&pipes.head_loss);
        pass.dispatch_workgroups(ws.batch as u32, 1, 1);
        pass.set_pipeline(&pipes.loss_reduce);
        pass.dispatch_workgroups(1, 1, 1);
        if backward {
            self.gemms(pass, &ws.head_gemms);
        }
        Ok(())
    }

    /// Compute dispatches of one training step (without clipping).
    pub fn step_dispatches(&self) -> u32 {
        let ws = self.ws;
        let t = ws.steps as u32;
        let (fwd, bwd) = match self.pipes.steps {
            StepKernels::ResetAfter { .. } => (1, 2),
            StepKernels::ResetBefore { .. } => (2, 3),
        };
        let gemms: usize = ws.fwd_gemms.iter().chain(&ws.bwd_gemms).map(Vec::len).sum();
        let per_layer = t * fwd + 1 + t * bwd;
        self.config.num_layers as u32 * per_layer
            + gemms as u32
            + 2
            + ws.head_gemms.len() as u32
            + 1
    }
}

/// `head`, or the error of a trainer without a classifier head.
pub(super) fn need_head<T>(head: Option<T>) -> Result<T> {
    head.ok_or_else(|| Error::arg("trainer", "this trainer has no classifier head"))
}
