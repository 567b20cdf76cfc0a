//! The plan of a forward, as data: which algorithm runs a `(model, T, B)` on this adapter
//! ([`choose`], the one place that decides), and the list of dispatches that records it
//! ([`Plan`]), built once when a [`Workspace`](super::Workspace) is made. Encoding loops over the
//! list, and [`ForwardStats`] is read from it. A forward too large for one workspace is split by
//! [`chunking`].

use std::sync::Arc;

use super::kernels::{
    self, Kernel, REGS_MAX_H, REGS_SG_WORKGROUP_BYTES, REGS_WORKGROUP_BYTES, SEQ_MAX, SEQ_MAX_ROWS,
    STEP_ROWS, STEP_UNITS, StepKind, TILED_GROUPS, TILED_UNITS,
};
use super::options::{Algorithm, ForwardStats};
use super::pack::Model;
use crate::config::Direction;
use crate::error::{Error, Result};

/// What [`choose`] picked for one batch size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Choice {
    /// Never [`Algorithm::Auto`].
    pub algorithm: Algorithm,
    /// Batch rows per workgroup (sequence kernel) or per tile (tiled kernels); 1 for the
    /// register kernels, 0 for per-step and grid.
    pub rows: u32,
    /// Whether the recurrence runs a subgroup-reduction kernel.
    pub subgroups: bool,
}

/// `(KQ, KS, WG)` of the register kernel the device can run for `model`, subgroup one first, or
/// `None` where neither fits.
fn regs_kernel(model: &Model) -> Option<(bool, u32, u32, u32)> {
    let facts = model.ctx.facts();
    let h = model.config.hidden_size as u32;
    let kq = model.kernels.kq;
    if sg_enabled(model) {
        let (kq, ks, wg) = kernels::regs_sg_shape(h, kq * 4);
        if ks <= facts.subgroup_min_size
            && kernels::regs_fit(&facts.limits, h, kq, ks, wg, REGS_SG_WORKGROUP_BYTES)
        {
            return Some((true, kq, ks, wg));
        }
    }
    let (ks, wg) = kernels::regs_shape(h, kq * 4);
    kernels::regs_fit(&facts.limits, h, kq, ks, wg, REGS_WORKGROUP_BYTES)
        .then_some((false, kq, ks, wg))
}

/// Whether the subgroup kernels run: asked for, and the device has the feature.
fn sg_enabled(model: &Model) -> bool {
    model.options.subgroups && model.ctx.facts().subgroups
}

/// Batch rows per workgroup the sequence kernel can take for H: 1, 2, 4, … up to
/// [`SEQ_MAX_ROWS`], with rows·H ≤ [`SEQ_MAX`] (empty where H > `SEQ_MAX`).
fn sequence_rows(h: u32) -> impl Iterator<Item = u32> {
    std::iter::successors(Some(1u32), |&bs| (bs < SEQ_MAX_ROWS).then_some(bs * 2))
        .filter(move |&bs| bs * h <= SEQ_MAX)
}

/// The algorithm for a forward of `batch` rows of `model`: the only place that decides.
///
/// `Auto` takes a sequence kernel wherever dispatches are expensive relative to a step's work:
/// the register kernel wherever it fits (on lavapipe it beats the batch-slice kernel by 2.7–4×
/// at B ≤ 2 and more beyond; on an H100 it wins for H ≤ 160, BENCHMARKS.md), the batch-slice
/// kernel on software adapters (a dependent dispatch costs ~50 µs on lavapipe), and elsewhere one
/// dispatch per step. It never takes the tiled kernels (they lost to per-step at every measured
/// shape on the H100, and on lavapipe at medium) or the grid kernel (unmeasured on real GPUs).
///
/// A forced algorithm that cannot run here is [`Error::Unsupported`], saying why.
pub(crate) fn choose(model: &Model, batch: usize) -> Result<Choice> {
    let facts = model.ctx.facts();
    let c = &model.config;
    let h = c.hidden_size as u32;
    let software = facts.software;
    let regs = regs_kernel(model);
    let seq_ok = sequence_rows(h).next().is_some();
    let unsupported = |why: String| {
        Err(Error::Unsupported(format!(
            "{:?} cannot run this model on {}: {why}",
            model.options.algorithm,
            model.ctx.describe()
        )))
    };
    let algorithm = match model.options.algorithm {
        Algorithm::Auto if regs.is_some() => Algorithm::SequenceRegisters,
        Algorithm::Auto if software && seq_ok => Algorithm::Sequence,
        Algorithm::Auto => Algorithm::PerStep,
        Algorithm::Sequence if !seq_ok => {
            return unsupported(format!("it needs H ≤ {SEQ_MAX}, and H = {h}"));
        }
        Algorithm::SequenceRegisters if regs.is_none() => {
            let (ks, wg) = kernels::regs_shape(h, model.kernels.kq * 4);
            return unsupported(format!(
                "it needs H ≤ {REGS_MAX_H} (H = {h}) and a workgroup of {wg} invocations \
                 ({ks} K-slices per unit) with {REGS_WORKGROUP_BYTES} bytes of workgroup memory; \
                 the device allows {} invocations and {} bytes",
                facts.limits.max_compute_invocations_per_workgroup,
                facts.limits.max_compute_workgroup_storage_size
            ));
        }
        Algorithm::Grid if !grid_fits(model, batch) => {
            return unsupported(format!(
                "one step of {batch} batch rows would pass llvmpipe's loop cap of {} iterations \
                 per invocation",
                kernels::LLVMPIPE_LOOP_LIMIT
            ));
        }
        forced => forced,
    };
    let (rows, subgroups) = match algorithm {
        Algorithm::SequenceRegisters => (1, regs.is_some_and(|r| r.0)),
        Algorithm::Sequence => {
            // Enough workgroups to fill the device, as few rows each as that allows.
            let parallel = if software { 4 } else { 64 };
            let want = (batch as u32).div_ceil(parallel).max(1);
            let rows = sequence_rows(h)
                .filter(|&bs| bs <= want.next_power_of_two())
                .max()
                .unwrap_or(1);
            (rows, false)
        }
        Algorithm::Tiled => (tiled_rows(model, batch), false),
        Algorithm::PerStep => (0, sg_enabled(model)),
        _ => (0, false),
    };
    Ok(Choice {
        algorithm,
        rows,
        subgroups,
    })
}

/// Whether one step of the grid kernel's single-workgroup attempt stays within llvmpipe's loop
/// cap for `batch` rows (always, on hardware).
fn grid_fits(model: &Model, batch: usize) -> bool {
    if !model.ctx.facts().software {
        return true;
    }
    let c = &model.config;
    let (b, h) = (batch as u32, c.hidden_size as u32);
    let virtual_groups = h.div_ceil(STEP_UNITS) * b.div_ceil(STEP_ROWS) * c.num_directions() as u32;
    let phases = StepKind::of(c.variant).len() as u32;
    // Per virtual workgroup: the K loop (BT rows each), the lane reduction, the finishes.
    let lanes = kernels::STEP_WG / STEP_UNITS;
    let per_group =
        h.next_multiple_of(4).div_ceil(4).div_ceil(lanes) * (1 + STEP_ROWS) + lanes + 16;
    let per_step = phases * (virtual_groups * per_group + kernels::grid_spin(true));
    per_step <= kernels::LLVMPIPE_LOOP_LIMIT - 5_535
}

/// Tile rows of the tiled kernels for `batch`: the largest tile (fewest W_hh reads) that does
/// not leave half a tile empty and still gives [`kernels::TILED_FILL_WORKGROUPS`] workgroups
/// per step on a real GPU.
fn tiled_rows(model: &Model, batch: usize) -> u32 {
    let c = &model.config;
    let (b, h) = (batch as u32, c.hidden_size as u32);
    let d = c.num_directions() as u32;
    let fill = if model.ctx.facts().software {
        0
    } else {
        kernels::TILED_FILL_WORKGROUPS
    };
    let mut rows = kernels::TILED_ROWS[kernels::TILED_ROWS.len() - 1];
    while rows > kernels::TILED_ROWS[0] {
        let groups = h.div_ceil(TILED_UNITS) * b.div_ceil(rows) * d;
        if b > rows / 2 && groups >= fill {
            break;
        }
        rows /= 2;
    }
    rows
}

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

/// Everything one forward of a `(T, B)` records, in order.
#[derive(Debug)]
pub(crate) struct Plan {
    pub choice: Choice,
    /// Steps per dispatch of the grid kernel (0: all), where the plan runs it: its `sync` words
    /// are cleared before the pass.
    pub grid_steps: Option<u32>,
    pub dispatches: Vec<Dispatch>,
}

impl Plan {
    /// The plan of a forward of `steps` × `batch` rows of `model`, with step-index slots
    /// `stride` bytes apart. Builds (or takes from the context's cache) every pipeline it
    /// dispatches, and no other.
    pub(crate) fn new(model: &Model, steps: usize, batch: usize, stride: u32) -> Result<Plan> {
        let choice = choose(model, batch)?;
        let c = &model.config;
        let ks = &model.kernels;
        let (t, b, h) = (steps as u32, batch as u32, c.hidden_size as u32);
        let d = c.num_directions() as u32;
        let mut dispatches = Vec::new();
        let mut push = |pipeline: &Arc<wgpu::ComputePipeline>, group, step: u32, wg: [u32; 3]| {
            dispatches.push(Dispatch {
                pipeline: pipeline.clone(),
                group,
                offset: step * stride,
                workgroups: wg,
            });
        };
        // Dispatches of a kernel that runs `per` steps each (0: all T), from step 0.
        let chunks = |per: u32| (0..t).step_by(if per == 0 { t } else { per }.max(1) as usize);
        let software = model.ctx.facts().software;
        let proj = ks.pipeline(Kernel::Proj)?;
        let (n, m, tile) = (3 * d * h, t * b, kernels::GEMM_TILE);
        let mut grid_steps = None;
        for l in 0..c.num_layers {
            for i in 0..model.proj_chunks(l) {
                push(
                    &proj,
                    Group::Proj(l),
                    i,
                    [n.div_ceil(tile), m.div_ceil(tile), 1],
                );
            }
            let gru = Group::Gru(l);
            match choice.algorithm {
                Algorithm::SequenceRegisters => {
                    let Some((subgroup, kq, kslices, wg)) = regs_kernel(model) else {
                        return Err(Error::Gpu("register kernel chosen but unfit".into()));
                    };
                    let steps = kernels::seq_steps(software, 3 * kq + kslices + 8);
                    let p = ks.pipeline(Kernel::SequenceRegs {
                        subgroup,
                        kq,
                        ks: kslices,
                        wg,
                        steps,
                    })?;
                    for first in chunks(steps) {
                        push(&p, gru, first, [b, 1, d]);
                    }
                }
                Algorithm::Sequence => {
                    let bs = choice.rows;
                    // Per step, both halves (reset-before), every loop counted: units per
                    // invocation × (H iterations over k, each with BS rows, and the row loops).
                    let per_step = 2 * h.div_ceil(kernels::SEQ_WG) * (h * (1 + bs) + 2 * bs) + 4;
                    let steps = kernels::seq_steps(software, per_step);
                    let p = ks.pipeline(Kernel::Sequence { rows: bs, steps })?;
                    for first in chunks(steps) {
                        push(&p, gru, first, [b.div_ceil(bs), 1, d]);
                    }
                }
                Algorithm::Grid => {
                    // Per chunk of steps: two attempts with every workgroup, then one with a
                    // single workgroup; an attempt that finds the chunk done returns at once.
                    // One step per dispatch on software adapters: llvmpipe's loop cap counts
                    // every virtual workgroup's loops and the waits of one invocation together.
                    let steps = u32::from(software);
                    let workgroups = model.options.grid_workgroups.max(1);
                    let attempts = [(0, workgroups), (1, workgroups), (2, 1)]
                        .into_iter()
                        .map(|(a, w)| {
                            let p = ks.pipeline(Kernel::Grid {
                                attempt: a,
                                workgroups: w,
                                spin: kernels::grid_spin(software),
                                steps,
                            })?;
                            Ok((p, w))
                        })
                        .collect::<Result<Vec<_>>>()?;
                    grid_steps = Some(steps);
                    for first in chunks(steps) {
                        for (p, w) in &attempts {
                            push(p, gru, first, [*w, 1, 1]);
                        }
                    }
                }
                Algorithm::Tiled => {
                    // As per-step: 1 dispatch per step (reset-after), 2 (reset-before).
                    let rpi = choice.rows / TILED_GROUPS;
                    let halves = StepKind::of(c.variant)
                        .iter()
                        .map(|&kind| ks.pipeline(Kernel::Tiled { kind, rpi }))
                        .collect::<Result<Vec<_>>>()?;
                    let wg = [h.div_ceil(TILED_UNITS), b.div_ceil(choice.rows), d];
                    for s in 0..t {
                        for p in &halves {
                            push(p, gru, s, wg);
                        }
                    }
                }
                Algorithm::PerStep | Algorithm::Auto => {
                    let subgroup = choice.subgroups;
                    let halves = StepKind::of(c.variant)
                        .iter()
                        .map(|&kind| ks.pipeline(Kernel::Step { kind, subgroup }))
                        .collect::<Result<Vec<_>>>()?;
                    let units = if subgroup { ks.sg_units } else { STEP_UNITS };
                    let wg = [h.div_ceil(units), b.div_ceil(STEP_ROWS), d];
                    for s in 0..t {
                        for p in &halves {
                            push(p, gru, s, wg);
                        }
                    }
                }
            }
        }
        Ok(Plan {
            choice,
            grid_steps,
            dispatches,
        })
    }

    /// What recording this plan costs (no submits: encoding only records).
    pub(crate) fn stats(&self) -> ForwardStats {
        ForwardStats {
            dispatches: self.dispatches.len() as u32,
            submits: 0,
            algorithm: self.choice.algorithm,
            rows_per_workgroup: self.choice.rows,
            subgroups: self.choice.subgroups,
        }
    }
}

/// How a forward too large for one workspace is split: `(batch rows, steps)` per chunk, each
/// chunk one submit. The batch is halved until a chunk fits; where one row is still too large,
/// time is halved too (forward-running models only: a chunk's h_n is the next one's h0).
/// `limit` is the error to give where no split fits.
pub(crate) fn chunking(
    model: &Model,
    steps: usize,
    batch: usize,
    limit: Error,
) -> Result<(usize, usize)> {
    let c = &model.config;
    let fits = |t, b| fits(model, t, b).is_ok();
    let mut bc = batch;
    while bc > 1 && !fits(steps, bc) {
        bc = bc.div_ceil(2);
    }
    let mut tc = steps;
    if !fits(steps, bc) {
        if c.direction != Direction::Forward || c.go_backwards {
            return Err(limit);
        }
        while tc > 1 && !fits(tc, 1) {
            tc = tc.div_ceil(2);
        }
        if !fits(tc, 1) {
            return Err(limit);
        }
    }
    Ok((bc, tc))
}

/// Checks that a workspace of `(steps, batch)` fits the device's buffer, binding and
/// dispatch limits (and u32 indexing), without creating anything.
pub(crate) fn fits(gru: &Model, steps: usize, batch: usize) -> Result<()> {
    let c = &gru.config;
    let device = &gru.ctx.device;
    let limits = device.limits();
    let (t, b, h) = (steps, batch, c.hidden_size);
    let d = c.num_directions();
    let l = c.num_layers;
    let tb = t
        .checked_mul(b)
        .ok_or_else(|| Error::Overflow("T·B".into()))?;
    let sizes = [
        ("input x", tb.checked_mul(c.input_size)),
        ("projection [T, B, D, 3H]", tb.checked_mul(3 * d * h)),
        ("output [T, B, D·H]", tb.checked_mul(d * h)),
        ("states", (2 * l * d * h).checked_mul(b)),
    ];
    for (what, n) in sizes {
        let n = n.ok_or_else(|| Error::Overflow(what.into()))? as u64 * 4;
        let lim = limits
            .max_storage_buffer_binding_size
            .min(limits.max_buffer_size);
        if n > lim {
            return Err(Error::DeviceLimit {
                what: format!("{what} binding (bytes)"),
                needed: n,
                limit: lim,
            });
        }
    }
    if u32::try_from(tb * 3 * d * h).is_err() {
        return Err(Error::Overflow("T·B·3·D·H exceeds u32 indexing".into()));
    }
    let proj_groups_y = (tb as u64).div_ceil(super::kernels::GEMM_TILE as u64);
    let max_dim = limits.max_compute_workgroups_per_dimension as u64;
    if proj_groups_y > max_dim || b as u64 > max_dim {
        return Err(Error::DeviceLimit {
            what: "workgroups per dispatch dimension".into(),
            needed: proj_groups_y,
            limit: max_dim,
        });
    }
    Ok(())
}

impl Model {
    /// Dispatches of layer `l`'s input projection: 1, or one per K-chunk on software adapters.
    pub(crate) fn proj_chunks(&self, l: usize) -> u32 {
        let k = self.config.layer_input_size(l) as u32;
        match self.kernels.proj_k_chunk {
            0 => 1,
            kc => k.div_ceil(kc).max(1),
        }
    }

    /// The most projection dispatches of any layer.
    pub(crate) fn proj_chunks_max(&self) -> usize {
        (0..self.config.num_layers)
            .map(|l| self.proj_chunks(l) as usize)
            .max()
            .unwrap_or(1)
    }
}

#[cfg(test)]
mod tests {
    use super::sequence_rows;

    #[test]
    fn sequence_rows_follow_h() {
        assert_eq!(
            sequence_rows(1).collect::<Vec<_>>().last(),
            Some(&super::SEQ_MAX_ROWS)
        );
        assert_eq!(sequence_rows(super::SEQ_MAX).collect::<Vec<_>>(), [1]);
        assert_eq!(sequence_rows(super::SEQ_MAX + 1).count(), 0);
    }
}
