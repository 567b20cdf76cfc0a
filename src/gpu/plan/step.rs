//! [`Algorithm::PerStep`](crate::gpu::Algorithm::PerStep): one dispatch per step (reset-after),
//! two (reset-before); `step.wgsl`, or `step_subgroup.wgsl` with subgroup reductions.

use super::{Group, Recorder};
use crate::error::Result;
use crate::gpu::wgsl::{Kernel, STEP_ROWS, STEP_UNITS, StepKind};

/// Records layer `gru`'s T steps.
pub(crate) fn record(r: &mut Recorder<'_>, gru: Group, subgroup: bool) -> Result<()> {
    let halves = StepKind::of(r.model.config.variant)
        .iter()
        .map(|&kind| r.pipeline(Kernel::Step { kind, subgroup }))
        .collect::<Result<Vec<_>>>()?;
    let units = if subgroup {
        r.model.kernels.sg_units
    } else {
        STEP_UNITS
    };
    let wg = [
        r.hidden().div_ceil(units),
        r.batch.div_ceil(STEP_ROWS),
        r.dirs(),
    ];
    for s in 0..r.steps {
        for p in &halves {
            r.push(p, gru, s, wg);
        }
    }
    Ok(())
}
