//! The optimiser on the GPU: its uniform block for one step, and the dispatches of clipping and
//! the update (`shaders/train_step.wgsl`; the rules and their f64 oracle are
//! [`Optimizer`]'s).

use super::encode::{Recorder, need_head};
use super::layout::ParamLayout;
use super::workspace::TrainWorkspace;
use super::{MAX_GROUPS, Optimizer};
use crate::config::GruConfig;
use crate::error::Result;
use crate::gpu::wgsl::{OPT_WG, OptParams};

/// Workgroups of the `sumsq` reduction over `n` parameters.
fn sumsq_groups(n: usize) -> u32 {
    (n as u32).div_ceil(OPT_WG * 64).clamp(1, MAX_GROUPS)
}

/// The `Opt` block of a pass in `ws`: the head's offsets, and with `update = Some((opt,
/// clip))` the rules of optimiser step `step` (counted from 1).
pub(super) fn opt_block(
    c: &GruConfig,
    layout: &ParamLayout,
    ws: &TrainWorkspace,
    update: Option<(&Optimizer, Option<f32>)>,
    step: u64,
) -> OptParams {
    let o = &ws.offs;
    let last = (c.num_layers - 1) * c.num_directions() * ws.batch * c.hidden_size;
    let mut u = OptParams {
        n: layout.total as u32,
        batch: ws.batch as u32,
        hn_off: (o.hn + last) as u32,
        dl_off: o.dl as u32,
        pr_off: o.pr as u32,
        lb_off: o.lb as u32,
        wd_off: layout.head_w as u32,
        bd_off: layout.head_b as u32,
        groups: sumsq_groups(layout.total),
        ..OptParams::default()
    };
    let Some((opt, clip)) = update else {
        return u;
    };
    u.lr = opt.lr();
    u.weight_decay = opt.weight_decay();
    match *opt {
        Optimizer::Adam {
            beta1, beta2, eps, ..
        } => {
            u.beta1 = beta1;
            u.beta2 = beta2;
            u.eps = eps;
            u.bc1 = (1.0 - (beta1 as f64).powi(step as i32)) as f32;
            u.bc2 = (1.0 - (beta2 as f64).powi(step as i32)) as f32;
        }
        Optimizer::Sgd { momentum, .. } => {
            u.momentum = momentum;
            u.first = u32::from(step == 1);
        }
    }
    if let Some(m) = clip {
        u.clip = 1;
        u.max_norm = m;
    }
    u
}

impl Recorder<'_> {
    /// Records clipping (with `clip`) and the trainer's optimiser over all `n` parameters.
    pub fn update(&self, pass: &mut wgpu::ComputePass<'_>, n: usize, clip: bool) -> Result<()> {
        let pipes = need_head(self.pipes.head.as_ref())?;
        pass.set_bind_group(0, &self.ws.opt_group, &[self.ws.opt_offset]);
        if clip {
            pass.set_pipeline(&pipes.sumsq);
            pass.dispatch_workgroups(sumsq_groups(n), 1, 1);
            pass.set_pipeline(&pipes.clip_scale);
            pass.dispatch_workgroups(1, 1, 1);
        }
        let groups = (n as u32).div_ceil(OPT_WG);
        let gx = groups.min(self.max_dim);
        pass.set_pipeline(&pipes.optimise);
        pass.dispatch_workgroups(gx, groups.div_ceil(gx), 1);
        Ok(())
    }
}
