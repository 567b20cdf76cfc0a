//! [`TrainWorkspace`]: the `work` layout, buffers and bind groups of one `(T, B)` of one trainer
//! (its uniform blocks and GEMM calls are `blocks.rs`'s), and the uploads of a pass into it.

use wgpu::util::DeviceExt;

use super::blocks::{Calls, GemmCall, Shape};
use super::layout::{ParamLayout, WorkOffsets};
use super::pipelines::Pipelines;
use super::pipelines::REC_BINDINGS;
use super::{push_scopes, u32_of, whole};
use crate::config::GruConfig;
use crate::error::{Error, Result};
use crate::gpu::GpuContext;
use crate::gpu::io::pop_scopes;
use crate::gpu::wgsl::{GEMM_TILE, GemmParams, OptParams, StepParams, TrainLayerParams};

/// Buffers and bind groups for training or backward passes of one shape `(T, B)` of one
/// [`GpuTrainer`](crate::train::GpuTrainer). Make it once with
/// [`GpuTrainer::workspace`](crate::train::GpuTrainer::workspace) and reuse it: a repeated step of
/// the same shape creates no buffer. Another trainer refuses it ([`Error::InvalidArgument`]).
///
/// Its `work` buffer holds, in floats: the layer inputs and outputs `[T, B, ·]`, every step's
/// state before it `[L][D][T, B, H]` and gates `[L][D][T, B, 4H]`, the input projections
/// `[L][T, B, D, 3H]`, h0, h_n and their gradients `[L·D, B, H]`, the gate gradients
/// `[D][T, B, 4H]`, `W_hhᵀ` `[L][D][H, 3H]` and the head's `[B, C]` logits and gradients.
#[derive(Debug)]
pub struct TrainWorkspace {
    /// The id of the trainer that made it.
    pub(super) owner: u64,
    pub(super) steps: usize,
    pub(super) batch: usize,
    pub(super) offs: WorkOffsets,
    pub(super) work: wgpu::Buffer,
    pub(super) ints: wgpu::Buffer,
    pub(super) uniforms: wgpu::Buffer,
    pub(super) staging: wgpu::Buffer,
    pub(super) rec_group: wgpu::BindGroup,
    pub(super) gemm_group: wgpu::BindGroup,
    pub(super) opt_group: wgpu::BindGroup,
    pub(super) step_offsets: Vec<u32>,
    pub(super) layer_offsets: Vec<u32>,
    pub(super) fwd_gemms: Vec<Vec<GemmCall>>,
    pub(super) bwd_gemms: Vec<Vec<GemmCall>>,
    /// The layer-0 input-gradient GEMMs (only when the input gradient is wanted).
    pub(super) dx0_gemms: Vec<GemmCall>,
    pub(super) head_gemms: Vec<GemmCall>,
    pub(super) opt_offset: u32,
    /// Whether `gy`, `gs` or `h0` may hold values from a [`GpuTrainer::backward_in`] (a training
    /// step needs them zero).
    pub(super) dirty: bool,
    /// Time-major copy of a batch, reused.
    x_scratch: Vec<f32>,
    ints_scratch: Vec<u32>,
}

impl TrainWorkspace {
    /// Steps T.
    pub fn steps(&self) -> usize {
        self.steps
    }
    /// Batch B.
    pub fn batch(&self) -> usize {
        self.batch
    }
}

/// Refuses a shape the device cannot dispatch: `T ≥ 1`, `B ≥ 1`, B and the GEMMs' row tiles
/// within the workgroups per dimension. Returns `T·B`.
fn check_shape(limits: &wgpu::Limits, steps: usize, batch: usize) -> Result<usize> {
    if steps == 0 || batch == 0 {
        return Err(Error::arg(
            "workspace",
            format!("a training workspace needs T ≥ 1 and B ≥ 1 (got T = {steps}, B = {batch})"),
        ));
    }
    let max_dim = limits.max_compute_workgroups_per_dimension as usize;
    if batch > max_dim {
        return Err(Error::DeviceLimit {
            what: "batch (workgroups per dimension)".into(),
            needed: batch as u64,
            limit: max_dim as u64,
        });
    }
    let tb = steps
        .checked_mul(batch)
        .ok_or_else(|| Error::Overflow("T·B".into()))?;
    if tb.div_ceil(GEMM_TILE as usize) > max_dim {
        return Err(Error::DeviceLimit {
            what: "T·B rows of the GEMMs (workgroups per dimension × 64)".into(),
            needed: tb as u64,
            limit: max_dim as u64 * GEMM_TILE as u64,
        });
    }
    Ok(tb)
}

/// The three bind groups of a workspace over `trainer`'s buffers and its own.
/// What a workspace is built from and binds: its trainer's parts (the trainer, which owns them,
/// is built on top of this module).
pub(super) struct Parts<'a> {
    pub id: u64,
    pub ctx: &'a GpuContext,
    pub config: &'a GruConfig,
    pub classes: usize,
    pub layout: &'a ParamLayout,
    pub pipes: &'a Pipelines,
    /// Parameters, gradients, the optimiser's moments and the scratch of the loss and norms.
    pub params: &'a wgpu::Buffer,
    pub grads: &'a wgpu::Buffer,
    pub m1: &'a wgpu::Buffer,
    pub m2: &'a wgpu::Buffer,
    pub scratch: &'a wgpu::Buffer,
}

struct Groups {
    rec: wgpu::BindGroup,
    gemm: wgpu::BindGroup,
    opt: wgpu::BindGroup,
}

impl Groups {
    fn new(
        t: &Parts<'_>,
        uniforms: &wgpu::Buffer,
        work: &wgpu::Buffer,
        ints: &wgpu::Buffer,
    ) -> Groups {
        let device = &t.ctx.device;
        let ubind = |binding: u32, size: usize| wgpu::BindGroupEntry {
            binding,
            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: uniforms,
                offset: 0,
                size: wgpu::BufferSize::new(size as u64),
            }),
        };
        let [(st, _), (lens, _), (tl, _), (params, _), (wk, _)] = REC_BINDINGS;
        let rec = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("wgpu-gru train recurrence group"),
            layout: &t.pipes.rec_layout,
            entries: &[
                ubind(st, size_of::<StepParams>()),
                whole(lens, ints),
                ubind(tl, size_of::<TrainLayerParams>()),
                whole(params, t.params),
                whole(wk, work),
            ],
        });
        let gemm = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("wgpu-gru train gemm group"),
            layout: &t.pipes.gemm_layout,
            entries: &[
                ubind(0, size_of::<GemmParams>()),
                whole(1, t.params),
                whole(2, t.grads),
                whole(3, work),
            ],
        });
        let opt = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("wgpu-gru train step group"),
            layout: &t.pipes.opt_layout,
            entries: &[
                ubind(0, size_of::<OptParams>()),
                whole(1, t.params),
                whole(2, t.grads),
                whole(3, t.m1),
                whole(4, t.m2),
                whole(5, t.scratch),
                whole(6, work),
                whole(7, ints),
            ],
        });
        Groups { rec, gemm, opt }
    }
}

impl TrainWorkspace {
    /// The workspace of `trainer` for passes of `steps` × `batch` (see
    /// [`GpuTrainer::workspace`](super::GpuTrainer::workspace)).
    pub(super) fn new(trainer: &Parts<'_>, steps: usize, batch: usize) -> Result<TrainWorkspace> {
        let c = &trainer.config;
        let limits = trainer.ctx.device.limits();
        let tb = check_shape(&limits, steps, batch)?;
        let (t, b, h) = (steps, batch, c.hidden_size);
        let slab = c.num_layers * c.num_directions() * b * h;
        let o = WorkOffsets::new(c, t, b, trainer.classes);
        let work_bytes = o.total as u64 * 4;
        let max_bind = limits
            .max_storage_buffer_binding_size
            .min(limits.max_buffer_size);
        if work_bytes > max_bind {
            return Err(Error::DeviceLimit {
                what: "training workspace (bytes)".into(),
                needed: work_bytes,
                limit: max_bind,
            });
        }
        u32_of(o.total, "workspace floats")?;

        let calls = Calls::new(
            &Shape {
                c,
                layout: trainer.layout,
                o: &o,
                t,
                b,
                classes: trainer.classes,
            },
            &limits,
        )?;

        let device = &trainer.ctx.device;
        let scopes = push_scopes(device);
        let work = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("wgpu-gru train work"),
            size: work_bytes.max(16),
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_DST
                | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let ints = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("wgpu-gru train lengths and labels"),
            size: (2 * b as u64 * 4).max(16),
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let uniforms = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("wgpu-gru train uniforms"),
            contents: &calls.uniforms,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        });
        // The largest read-back: a backward's gradients, dL/dX and dL/dh0.
        let read_floats = (trainer.layout.total + tb * c.input_size + slab)
            .max(b * trainer.classes)
            .max(tb * c.num_directions() * h + slab)
            .max(4);
        let staging = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("wgpu-gru train read-back"),
            size: read_floats as u64 * 4,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let groups = Groups::new(trainer, &uniforms, &work, &ints);
        trainer
            .ctx
            .queue
            .write_buffer(&work, o.ones as u64 * 4, bytemuck::cast_slice(&[1.0f32]));
        pop_scopes(scopes.0, scopes.1)?;
        Ok(TrainWorkspace {
            owner: trainer.id,
            steps,
            batch,
            offs: o,
            work,
            ints,
            uniforms,
            staging,
            rec_group: groups.rec,
            gemm_group: groups.gemm,
            opt_group: groups.opt,
            step_offsets: calls.step_offsets,
            layer_offsets: calls.layer_offsets,
            fwd_gemms: calls.fwd_gemms,
            bwd_gemms: calls.bwd_gemms,
            dx0_gemms: calls.dx0_gemms,
            head_gemms: calls.head_gemms,
            opt_offset: calls.opt_offset,
            dirty: false,
            x_scratch: Vec::with_capacity(tb * c.input_size),
            ints_scratch: Vec::with_capacity(2 * b),
        })
    }

    /// Writes `x` (`[T, B, I]`, or `[B, T, I]` when batch-first) time-major into `work`.
    pub(super) fn write_x(&mut self, queue: &wgpu::Queue, c: &GruConfig, x: &[f32]) {
        let (t_len, b_len, i) = (self.steps, self.batch, c.input_size);
        if c.batch_first {
            self.x_scratch.clear();
            self.x_scratch.resize(t_len * b_len * i, 0.0);
            for b in 0..b_len {
                for t in 0..t_len {
                    let src = (b * t_len + t) * i;
                    let dst = (t * b_len + b) * i;
                    self.x_scratch[dst..dst + i].copy_from_slice(&x[src..src + i]);
                }
            }
            queue.write_buffer(
                &self.work,
                self.offs.x0 as u64 * 4,
                bytemuck::cast_slice(&self.x_scratch),
            );
        } else {
            queue.write_buffer(&self.work, self.offs.x0 as u64 * 4, bytemuck::cast_slice(x));
        }
    }

    /// Writes the lengths `[B]` (all T without) and labels `[B]`.
    pub(super) fn write_ints(
        &mut self,
        queue: &wgpu::Queue,
        lengths: Option<&[usize]>,
        labels: &[u32],
    ) {
        self.ints_scratch.clear();
        match lengths {
            Some(l) => self.ints_scratch.extend(l.iter().map(|&v| v as u32)),
            None => self
                .ints_scratch
                .extend(std::iter::repeat_n(self.steps as u32, self.batch)),
        }
        self.ints_scratch.extend_from_slice(labels);
        self.ints_scratch.resize(2 * self.batch, 0);
        queue.write_buffer(&self.ints, 0, bytemuck::cast_slice(&self.ints_scratch));
    }

    /// Clears dL/dY, dL/dh_n and h0 after a [`GpuTrainer::backward_in`] wrote them.
    pub(super) fn clean(&mut self, encoder: &mut wgpu::CommandEncoder) {
        if self.dirty {
            let o = &self.offs;
            let slab = (o.hn - o.h0) as u64 * 4;
            encoder.clear_buffer(&self.work, o.h0 as u64 * 4, Some(slab));
            encoder.clear_buffer(&self.work, o.gs as u64 * 4, Some(slab));
            encoder.clear_buffer(
                &self.work,
                o.gy as u64 * 4,
                Some((o.dx[0] - o.gy) as u64 * 4),
            );
            self.dirty = false;
        }
    }
}
