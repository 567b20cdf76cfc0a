//! [`Algorithm::Tiled`](crate::gpu::Algorithm::Tiled): the per-step dispatches, each a GEMM tile
//! of 16–64 batch rows × 16 hidden units; `tiled.wgsl`.

use super::{Group, Recorder};
use crate::error::Result;
use crate::gpu::pack::Model;
use crate::gpu::wgsl::{self, Kernel, StepKind, TILED_GROUPS, TILED_UNITS};

/// Tile rows for `batch`: the largest tile (fewest W_hh reads) that does not leave half a tile
/// empty and still gives [`wgsl::TILED_FILL_WORKGROUPS`] workgroups per step on a real GPU.
pub(crate) fn rows_for(model: &Model, batch: usize) -> u32 {
    let c = &model.config;
    let (b, h) = (batch as u32, c.hidden_size as u32);
    let d = c.num_directions() as u32;
    let fill = if model.ctx.facts().software {
        0
    } else {
        wgsl::TILED_FILL_WORKGROUPS
    };
    let mut rows = wgsl::TILED_ROWS[wgsl::TILED_ROWS.len() - 1];
    while rows > wgsl::TILED_ROWS[0] {
        let groups = h.div_ceil(TILED_UNITS) * b.div_ceil(rows) * d;
        if b > rows / 2 && groups >= fill {
            break;
        }
        rows /= 2;
    }
    rows
}

/// Records layer `gru`'s T steps with tiles of `rows` rows: 1 dispatch per step (reset-after),
/// 2 (reset-before).
pub(crate) fn record(r: &mut Recorder<'_>, gru: Group, rows: u32) -> Result<()> {
    let rpi = rows / TILED_GROUPS;
    let halves = StepKind::of(r.model.config.variant)
        .iter()
        .map(|&kind| r.pipeline(Kernel::Tiled { kind, rpi }))
        .collect::<Result<Vec<_>>>()?;
    let wg = [
        r.hidden().div_ceil(TILED_UNITS),
        r.batch.div_ceil(rows),
        r.dirs(),
    ];
    for s in 0..r.steps {
        for p in &halves {
            r.push(p, gru, s, wg);
        }
    }
    Ok(())
}
