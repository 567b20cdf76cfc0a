//! [`Algorithm::Grid`](crate::gpu::Algorithm::Grid): all steps of a chunk in one dispatch by
//! workgroups that wait for each other, in three bounded attempts; `grid.wgsl`.

use super::{Group, Recorder};
use crate::error::Result;
use crate::gpu::pack::Model;
use crate::gpu::wgsl::{self, Kernel, STEP_ROWS, STEP_UNITS, StepKind};

/// Whether one step of the single-workgroup attempt stays within llvmpipe's loop cap for
/// `batch` rows (always, on hardware).
pub(crate) fn fits(model: &Model, batch: usize) -> bool {
    if !model.ctx.facts().software {
        return true;
    }
    let c = &model.config;
    let (b, h) = (batch as u32, c.hidden_size as u32);
    let virtual_groups = h.div_ceil(STEP_UNITS) * b.div_ceil(STEP_ROWS) * c.num_directions() as u32;
    let phases = StepKind::of(c.variant).len() as u32;
    // Per virtual workgroup: the K loop (BT rows each), the lane reduction, the finishes.
    let lanes = wgsl::STEP_WG / STEP_UNITS;
    let per_group =
        h.next_multiple_of(4).div_ceil(4).div_ceil(lanes) * (1 + STEP_ROWS) + lanes + 16;
    let per_step = phases * (virtual_groups * per_group + wgsl::grid_spin(true));
    per_step <= wgsl::LLVMPIPE_LOOP_LIMIT - 5_535
}

/// Why it does not fit `batch` rows.
pub(crate) fn refusal(batch: usize) -> String {
    format!(
        "one step of {batch} batch rows would pass llvmpipe's loop cap of {} iterations per \
         invocation",
        wgsl::LLVMPIPE_LOOP_LIMIT
    )
}

/// Records layer `gru`: per chunk of steps, two attempts with every workgroup, then one with a
/// single workgroup (an attempt that finds the chunk done returns at once). Returns the steps
/// per chunk (0: all), which size the `sync` words.
pub(crate) fn record(r: &mut Recorder<'_>, gru: Group) -> Result<u32> {
    // One step per dispatch on software adapters: llvmpipe's loop cap counts every virtual
    // workgroup's loops and the waits of one invocation together.
    let software = r.software();
    let steps = u32::from(software);
    let workgroups = r.model.options.grid_workgroups.max(1);
    let attempts = [(0, workgroups), (1, workgroups), (2, 1)]
        .into_iter()
        .map(|(attempt, w)| {
            let p = r.pipeline(Kernel::Grid {
                attempt,
                workgroups: w,
                spin: wgsl::grid_spin(software),
                steps,
            })?;
            Ok((p, w))
        })
        .collect::<Result<Vec<_>>>()?;
    for first in r.chunks(steps) {
        for (p, w) in &attempts {
            r.push(p, gru, first, [*w, 1, 1]);
        }
    }
    Ok(steps)
}
