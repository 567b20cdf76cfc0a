//! The plan of a forward, as data ([`Plan`]): which algorithm runs a `(model, T, B)` on this
//! adapter ([`choose`], the one place that decides), and the list of dispatches that records it,
//! built through a [`Recorder`] by each algorithm's own submodule, whose kernel is the WGSL file
//! of the same name:
//!
//! - [`step`]: one dispatch per step (`step.wgsl`, `step_subgroup.wgsl`).
//! - [`sequence`]: all steps in one dispatch, h in workgroup memory (`sequence.wgsl`).
//! - [`sequence_regs`]: all steps in one dispatch, W_hh in registers (`sequence_regs*.wgsl`).
//! - [`tiled`]: per step, GEMM-tiled over batch rows (`tiled.wgsl`).
//! - [`grid`]: all steps in one dispatch of waiting workgroups (`grid.wgsl`).
//!
//! A plan is built once per workspace: `GpuGru::workspace` makes the plan, then the
//! [`Workspace`](super::Workspace) for it. Encoding loops over the list, and [`ForwardStats`] is
//! read from it. A forward too large for one workspace is split by [`chunking`].

pub(crate) mod grid;
pub(crate) mod sequence;
pub(crate) mod sequence_regs;
pub(crate) mod step;
pub(crate) mod tiled;

use std::sync::Arc;

use super::options::{Algorithm, ForwardStats};
use super::pack::Model;
use super::wgsl::{self, Kernel, SEQ_MAX};
use crate::config::Direction;
use crate::error::{Error, Result};

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
    let h = model.config.hidden_size as u32;
    let software = model.ctx.facts().software;
    let regs = sequence_regs::kernel(model);
    let seq_ok = sequence::rows(h).next().is_some();
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
            return unsupported(sequence_regs::refusal(model));
        }
        Algorithm::Grid if !grid::fits(model, batch) => return unsupported(grid::refusal(batch)),
        forced => forced,
    };
    let (rows, subgroups) = match algorithm {
        Algorithm::SequenceRegisters => (1, regs.is_some_and(|r| r.subgroup)),
        Algorithm::Sequence => (sequence::rows_for(model, batch), false),
        Algorithm::Tiled => (tiled::rows_for(model, batch), false),
        Algorithm::PerStep => (0, sg_enabled(model)),
        _ => (0, false),
    };
    Ok(Choice {
        algorithm,
        rows,
        subgroups,
    })
}

/// Everything one forward of a `(T, B)` records, in order.
#[derive(Debug)]
pub(crate) struct Plan {
    /// The shape it runs, checked against the device's limits.
    pub dims: Dims,
    /// Bytes between step-index slots (the uniform offset alignment).
    pub stride: u32,
    pub choice: Choice,
    /// Steps per dispatch of the grid kernel (0: all), where the plan runs it: its `sync` words
    /// are cleared before the pass.
    pub grid_steps: Option<u32>,
    pub dispatches: Vec<Dispatch>,
}

impl Plan {
    /// The plan of a forward of `steps` × `batch` rows of `model`, after checking that the
    /// shape fits the device ([`fits`]). Builds (or takes from the context's cache) every
    /// pipeline it dispatches, and no other.
    pub(crate) fn new(model: &Model, steps: usize, batch: usize) -> Result<Plan> {
        let dims = fits(model, steps, batch)?;
        let limits = model.ctx.device.limits();
        let stride = limits.min_uniform_buffer_offset_alignment.max(16);
        let choice = choose(model, batch)?;
        let c = &model.config;
        let mut r = Recorder {
            model,
            steps: steps as u32,
            batch: batch as u32,
            stride,
            dispatches: Vec::new(),
        };
        let proj = r.pipeline(Kernel::Proj)?;
        let n = 3 * r.dirs() * r.hidden();
        let (m, tile) = (r.steps * r.batch, wgsl::GEMM_TILE);
        let mut grid_steps = None;
        for l in 0..c.num_layers {
            for i in 0..model.proj_chunks(l) {
                r.push(
                    &proj,
                    Group::Proj(l),
                    i,
                    [n.div_ceil(tile), m.div_ceil(tile), 1],
                );
            }
            let gru = Group::Gru(l);
            match choice.algorithm {
                Algorithm::SequenceRegisters => sequence_regs::record(&mut r, gru)?,
                Algorithm::Sequence => sequence::record(&mut r, gru, choice.rows)?,
                Algorithm::Grid => grid_steps = Some(grid::record(&mut r, gru)?),
                Algorithm::Tiled => tiled::record(&mut r, gru, choice.rows)?,
                Algorithm::PerStep | Algorithm::Auto => {
                    step::record(&mut r, gru, choice.subgroups)?
                }
            }
        }
        Ok(Plan {
            dims,
            stride,
            choice,
            grid_steps,
            dispatches: r.dispatches,
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

/// A workspace's sizes: steps T, batch B, hidden H, directions D, layers L.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dims {
    pub(crate) t: usize,
    pub(crate) b: usize,
    pub(crate) h: usize,
    pub(crate) d: usize,
    pub(crate) l: usize,
}

/// Checks that a workspace of `(steps, batch)` fits the device's buffer, binding and
/// dispatch limits (and u32 indexing), without creating anything; returns its sizes.
pub(crate) fn fits(gru: &Model, steps: usize, batch: usize) -> Result<Dims> {
    let c = &gru.config;
    let limits = gru.ctx.device.limits();
    let (t, b, h) = (steps, batch, c.hidden_size);
    let (d, l) = (c.num_directions(), c.num_layers);
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
    let proj_groups_y = (tb as u64).div_ceil(super::wgsl::GEMM_TILE as u64);
    let max_dim = limits.max_compute_workgroups_per_dimension as u64;
    if proj_groups_y > max_dim || b as u64 > max_dim {
        return Err(Error::DeviceLimit {
            what: "workgroups per dispatch dimension".into(),
            needed: proj_groups_y,
            limit: max_dim,
        });
    }
    Ok(Dims { t, b, h, d, l })
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

/// Whether the subgroup kernels run: asked for, and the device has the feature.
pub(crate) fn sg_enabled(model: &Model) -> bool {
    model.options.subgroups && model.ctx.facts().subgroups
}
