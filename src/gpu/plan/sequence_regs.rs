//! [`Algorithm::SequenceRegisters`](crate::gpu::Algorithm::SequenceRegisters): all T steps in one
//! dispatch with W_hh in registers, a workgroup per batch row; `sequence_regs.wgsl`, or
//! `sequence_regs_subgroup.wgsl` with subgroup shuffles.

use super::sg_enabled;
use super::{Group, Recorder};
use crate::error::{Error, Result};
use crate::gpu::pack::Model;
use crate::gpu::wgsl::{self, Kernel, REGS_MAX_H, REGS_SG_WORKGROUP_BYTES, REGS_WORKGROUP_BYTES};

/// The register kernel's shape: subgroup or portable, `(KQ, KS, WG)`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Regs {
    pub subgroup: bool,
    pub kq: u32,
    pub ks: u32,
    pub wg: u32,
}

/// The register kernel the device can run for `model`, subgroup one first, or `None` where
/// neither fits.
pub(crate) fn kernel(model: &Model) -> Option<Regs> {
    let facts = model.ctx.facts();
    let h = model.config.hidden_size as u32;
    let kq = model.kernels.kq;
    if sg_enabled(model) {
        let (kq, ks, wg) = wgsl::regs_sg_shape(h, kq * 4);
        if ks <= facts.subgroup_min_size
            && wgsl::regs_fit(&facts.limits, h, kq, ks, wg, REGS_SG_WORKGROUP_BYTES)
        {
            return Some(Regs {
                subgroup: true,
                kq,
                ks,
                wg,
            });
        }
    }
    let (ks, wg) = wgsl::regs_shape(h, kq * 4);
    wgsl::regs_fit(&facts.limits, h, kq, ks, wg, REGS_WORKGROUP_BYTES).then_some(Regs {
        subgroup: false,
        kq,
        ks,
        wg,
    })
}

/// Why no register kernel fits `model` on its device.
pub(crate) fn refusal(model: &Model) -> String {
    let limits = &model.ctx.facts().limits;
    let h = model.config.hidden_size as u32;
    let (ks, wg) = wgsl::regs_shape(h, model.kernels.kq * 4);
    format!(
        "it needs H ≤ {REGS_MAX_H} (H = {h}) and a workgroup of {wg} invocations ({ks} K-slices \
         per unit) with {REGS_WORKGROUP_BYTES} bytes of workgroup memory; the device allows {} \
         invocations and {} bytes",
        limits.max_compute_invocations_per_workgroup, limits.max_compute_workgroup_storage_size
    )
}

/// Records layer `gru`: one dispatch, or one per chunk of steps on software adapters.
pub(crate) fn record(r: &mut Recorder<'_>, gru: Group) -> Result<()> {
    let Some(Regs {
        subgroup,
        kq,
        ks,
        wg,
    }) = kernel(r.model)
    else {
        return Err(Error::Gpu("register kernel chosen but unfit".into()));
    };
    let steps = wgsl::seq_steps(r.software(), 3 * kq + ks + 8);
    let p = r.pipeline(Kernel::SequenceRegs {
        subgroup,
        kq,
        ks,
        wg,
        steps,
    })?;
    let grid = [r.batch, 1, r.dirs()];
    for first in r.chunks(steps) {
        r.push(&p, gru, first, grid);
    }
    Ok(())
}
