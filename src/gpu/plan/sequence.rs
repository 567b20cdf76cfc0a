//! [`Algorithm::Sequence`](crate::gpu::Algorithm::Sequence): all T steps in one dispatch (per
//! chunk of steps on software adapters), a workgroup owning a slice of the batch with h in
//! workgroup memory; `sequence.wgsl`.

use super::{Group, Recorder};
use crate::error::Result;
use crate::gpu::pack::Model;
use crate::gpu::wgsl::{self, Kernel, SEQ_MAX, SEQ_MAX_ROWS};

/// Batch rows per workgroup the kernel can take for H: 1, 2, 4, … up to [`SEQ_MAX_ROWS`], with
/// rows·H ≤ [`SEQ_MAX`] (none where H > `SEQ_MAX`).
pub(crate) fn rows(h: u32) -> impl Iterator<Item = u32> {
    std::iter::successors(Some(1u32), |&bs| (bs < SEQ_MAX_ROWS).then_some(bs * 2))
        .filter(move |&bs| bs * h <= SEQ_MAX)
}

/// Rows per workgroup for `batch`: enough workgroups to fill the device, as few rows each as
/// that allows.
pub(crate) fn rows_for(model: &Model, batch: usize) -> u32 {
    let parallel = if model.ctx.facts().software { 4 } else { 64 };
    let want = (batch as u32).div_ceil(parallel).max(1);
    rows(model.config.hidden_size as u32)
        .filter(|&bs| bs <= want.next_power_of_two())
        .max()
        .unwrap_or(1)
}

/// Records layer `gru` with `bs` rows per workgroup.
pub(crate) fn record(r: &mut Recorder<'_>, gru: Group, bs: u32) -> Result<()> {
    let h = r.hidden();
    // Per step, both halves (reset-before), every loop counted: units per invocation × (H
    // iterations over k, each with BS rows, and the row loops).
    let per_step = 2 * h.div_ceil(wgsl::SEQ_WG) * (h * (1 + bs) + 2 * bs) + 4;
    let steps = wgsl::seq_steps(r.software(), per_step);
    let p = r.pipeline(Kernel::Sequence { rows: bs, steps })?;
    let wg = [r.batch.div_ceil(bs), 1, r.dirs()];
    for first in r.chunks(steps) {
        r.push(&p, gru, first, wg);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{SEQ_MAX, SEQ_MAX_ROWS, rows};

    #[test]
    fn rows_follow_h() {
        assert_eq!(rows(1).last(), Some(SEQ_MAX_ROWS));
        assert_eq!(rows(SEQ_MAX).collect::<Vec<_>>(), [1]);
        assert_eq!(rows(SEQ_MAX + 1).count(), 0);
    }
}
