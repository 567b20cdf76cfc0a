//! [`GpuTrainer`]: a model's parameters, gradients and optimiser state on the GPU, and every
//! public pass over them: backward, training step, gradients, probabilities and read-backs.

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};

use wgpu::util::DeviceExt;

use super::encode::{Recorder, need_head};
use super::layout::ParamLayout;
use super::optimizer::opt_block;
use super::pipelines::Pipelines;
use super::workspace::{Parts, TrainWorkspace};
use super::{Optimizer, SCRATCH, push_scopes, u32_of};
use crate::config::GruConfig;
use crate::error::{Error, Result};
use crate::gpu::GpuContext;
use crate::gpu::io::{pop_scopes, read_back};
use crate::io::{Batch, SeqInput, Steps};
use crate::model::{Dense, GruClassifier};
use crate::train::{Gradients, check_trainable, check_upstream};
use crate::weights::{Gru, GruWeights};

/// Ids of trainers, so that a workspace knows which one made it.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// What one training step reports (the only values read back).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepStats {
    /// Mean cross-entropy of the batch, before the update.
    pub loss: f32,
    /// Rows of the batch whose most probable class (before the update) is the label.
    pub correct: u32,
}

/// A model's parameters on the GPU, with their gradients, optimiser state and every training
/// pipeline: a GRU alone (for [`backward`](Self::backward)), or a [`GruClassifier`] (GRU → last
/// layer's final state → dense → softmax) with its optimiser, for
/// [`train_step`](Self::train_step).
///
/// Parameters live in one flat buffer `[P]`: for each layer and direction `w_ih [3H, I_l]`,
/// `w_hh [3H, H]`, `b_ih [3H]`, `b_hh [3H]` (the canonical [`CellWeights`](crate::CellWeights)
/// layout), then the head's `weight [C, H]` and `bias [C]`; the gradients, and Adam's two moments
/// (or SGD's momentum), in three more buffers of the same layout.
#[derive(Debug)]
pub struct GpuTrainer {
    /// Unique per trainer: its workspaces carry it.
    pub(super) id: u64,
    pub(super) ctx: GpuContext,
    pub(super) config: GruConfig,
    pub(super) classes: usize,
    pub(super) layout: ParamLayout,
    pub(super) params: wgpu::Buffer,
    pub(super) grads: wgpu::Buffer,
    pub(super) m1: wgpu::Buffer,
    pub(super) m2: wgpu::Buffer,
    pub(super) scratch: wgpu::Buffer,
    pub(super) pipes: Pipelines,
    /// A classifier's optimiser, whose state `m1`, `m2` hold.
    optimizer: Option<Optimizer>,
    /// Optimiser steps taken (Adam's t).
    step: u64,
}

impl GpuTrainer {
    /// Uploads `gru` for [`backward`](Self::backward) (no head, no optimiser). Refuses
    /// activations other than sigmoid/tanh and `clip` ([`Error::Unsupported`]).
    pub fn new(ctx: &GpuContext, gru: &Gru) -> Result<Self> {
        Self::build(ctx, gru, None)
    }

    /// Uploads a classifier (GRU → last layer's final state of direction 0 → dense → softmax)
    /// for [`train_step`](Self::train_step) with `optimizer`, whose moments the trainer keeps,
    /// and for [`predict_proba`](Self::predict_proba).
    pub fn classifier(
        ctx: &GpuContext,
        model: &GruClassifier,
        optimizer: Optimizer,
    ) -> Result<Self> {
        model.validate()?;
        Self::build(ctx, &model.gru, Some((&model.dense, optimizer)))
    }

    fn build(ctx: &GpuContext, gru: &Gru, head: Option<(&Dense, Optimizer)>) -> Result<Self> {
        gru.validate()?;
        check_trainable(&gru.config)?;
        ctx.check_lost()?;
        let config = gru.config.clone();
        let classes = head.map_or(0, |(d, _)| d.out_features);
        let layout = ParamLayout::new(&config, classes);
        let flat = layout.flatten(gru, head.map(|(d, _)| d));
        let device = &ctx.device;
        let bytes = layout.total as u64 * 4;
        let max_bind = device.limits().max_storage_buffer_binding_size;
        if bytes > max_bind {
            return Err(Error::DeviceLimit {
                what: "parameter buffer (bytes)".into(),
                needed: bytes,
                limit: max_bind,
            });
        }
        u32_of(layout.total, "parameters")?;
        let scopes = push_scopes(device);
        let usage = wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_SRC
            | wgpu::BufferUsages::COPY_DST;
        let params = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("wgpu-gru train params"),
            contents: bytemuck::cast_slice(&flat),
            usage,
        });
        let zeros = |label: &str, n: usize| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: (n as u64 * 4).max(16),
                usage,
                mapped_at_creation: false,
            })
        };
        let grads = zeros("wgpu-gru train grads", layout.total);
        let m1 = zeros("wgpu-gru train moment 1", layout.total);
        let m2 = zeros("wgpu-gru train moment 2", layout.total);
        let scratch = zeros("wgpu-gru train scratch", SCRATCH);
        let optimizer = head.map(|(_, o)| o);
        let pipes = Pipelines::new(device, &config, optimizer.as_ref().map(|o| (classes, o)));
        pop_scopes(scopes.0, scopes.1)?;
        Ok(GpuTrainer {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            ctx: ctx.clone(),
            config,
            classes,
            layout,
            params,
            grads,
            m1,
            m2,
            scratch,
            pipes,
            optimizer,
            step: 0,
        })
    }

    /// The GRU's configuration.
    pub fn config(&self) -> &GruConfig {
        &self.config
    }

    /// Classes C of the head (0 without one).
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// Parameters P (GRU and head), the length of the flat buffers.
    pub fn num_params(&self) -> usize {
        self.layout.total
    }

    /// The optimiser a classifier trainer was built with (`None` without a head).
    pub fn optimizer(&self) -> Option<&Optimizer> {
        self.optimizer.as_ref()
    }

    /// Optimiser steps taken so far.
    pub fn steps_taken(&self) -> u64 {
        self.step
    }

    /// Buffers for passes of shape `(steps, batch)`; `T ≥ 1`, `B ≥ 1`. Only this trainer takes
    /// the workspace.
    pub fn workspace(&self, steps: Steps, batch: Batch) -> Result<TrainWorkspace> {
        let parts = Parts {
            id: self.id,
            ctx: &self.ctx,
            config: &self.config,
            classes: self.classes,
            layout: &self.layout,
            pipes: &self.pipes,
            params: &self.params,
            grads: &self.grads,
            m1: &self.m1,
            m2: &self.m2,
            scratch: &self.scratch,
        };
        TrainWorkspace::new(&parts, steps.0, batch.0)
    }

    /// Refuses a workspace made by another trainer (its bind groups hold that one's buffers).
    fn check_owner(&self, ws: &TrainWorkspace) -> Result<()> {
        if ws.owner != self.id {
            return Err(Error::arg(
                "training workspace",
                format!(
                    "made by another trainer (#{}), not this one (#{}); make one with this trainer's workspace()",
                    ws.owner, self.id
                ),
            ));
        }
        Ok(())
    }

    /// Refuses a workspace of another trainer or of another `(steps, batch)`.
    fn check_ws(&self, ws: &TrainWorkspace, steps: usize, batch: usize) -> Result<()> {
        self.check_owner(ws)?;
        if ws.steps != steps || ws.batch != batch {
            return Err(Error::shape(
                "training workspace (T, B)",
                format!("({steps}, {batch})"),
                format!("({}, {})", ws.steps, ws.batch),
            ));
        }
        Ok(())
    }

    fn recorder<'a>(&'a self, ws: &'a TrainWorkspace) -> Recorder<'a> {
        Recorder {
            config: &self.config,
            pipes: &self.pipes,
            ws,
            max_dim: self
                .ctx
                .device
                .limits()
                .max_compute_workgroups_per_dimension,
        }
    }

    /// Compute dispatches one [`train_step`](Self::train_step) (without clipping) records in `ws`.
    pub fn step_dispatches(&self, ws: &TrainWorkspace) -> Result<u32> {
        self.check_owner(ws)?;
        Ok(self.recorder(ws).step_dispatches())
    }

    /// Runs forward and backward of the GRU in one submit and reads back every gradient:
    /// shapes as for [`crate::train::reference::backward`] (`grad_output` like the output,
    /// `grad_h_n` like h_n). Keras masks are refused ([`Error::Unsupported`]); lengths, h0, both
    /// variants, directions, layers, batch-first and go_backwards are supported. Creates a
    /// workspace for the shape; use [`backward_in`](Self::backward_in) to reuse one.
    pub fn backward(
        &self,
        input: &SeqInput<'_>,
        grad_output: &[f32],
        grad_h_n: &[f32],
    ) -> Result<Gradients> {
        input.validate(&self.config)?;
        if input.steps == 0 || input.batch == 0 {
            let (weights, _) = self.unflatten(&self.read_flat(&self.params)?);
            let gru = Gru {
                config: self.config.clone(),
                weights,
            };
            return crate::train::reference::backward(&gru, input, grad_output, grad_h_n);
        }
        let mut ws = self.workspace(Steps(input.steps), Batch(input.batch))?;
        self.backward_in(&mut ws, input, grad_output, grad_h_n)
    }

    /// [`backward`](Self::backward) in a workspace of this trainer of the input's shape.
    pub fn backward_in(
        &self,
        ws: &mut TrainWorkspace,
        input: &SeqInput<'_>,
        grad_output: &[f32],
        grad_h_n: &[f32],
    ) -> Result<Gradients> {
        let c = &self.config;
        input.validate(c)?;
        check_upstream(c, input.steps, input.batch, grad_output, grad_h_n)?;
        if input.mask.is_some() {
            return Err(Error::Unsupported(
                "the GPU backward does not take Keras masks (use the reference backward)".into(),
            ));
        }
        self.check_ws(ws, input.steps, input.batch)?;
        self.ctx.check_lost()?;
        let (t, b, h) = (input.steps, input.batch, c.hidden_size);
        let slab = c.num_layers * c.num_directions() * b * h;
        let device = &self.ctx.device;
        let q = &self.ctx.queue;
        let scopes = push_scopes(device);
        ws.write_x(q, c, input.x);
        ws.write_ints(q, input.lengths, &[]);
        let o = &ws.offs;
        if let Some(h0) = input.h0 {
            q.write_buffer(&ws.work, o.h0 as u64 * 4, bytemuck::cast_slice(h0));
        }
        q.write_buffer(&ws.work, o.gs as u64 * 4, bytemuck::cast_slice(grad_h_n));
        // dL/dY, time-major.
        let gy = to_time_major(c.batch_first, grad_output, t, b, c.output_size());
        q.write_buffer(&ws.work, o.gy as u64 * 4, bytemuck::cast_slice(&gy));
        ws.dirty = true;
        let o = &ws.offs;
        let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("wgpu-gru train backward"),
        });
        if input.h0.is_none() {
            encoder.clear_buffer(&ws.work, o.h0 as u64 * 4, Some(slab as u64 * 4));
        }
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("wgpu-gru train backward pass"),
                timestamp_writes: None,
            });
            let r = self.recorder(ws);
            r.forward(&mut pass);
            r.backward(&mut pass, true);
        }
        let np = self.layout.total;
        let nx = t * b * c.input_size;
        encoder.copy_buffer_to_buffer(&self.grads, 0, &ws.staging, 0, np as u64 * 4);
        encoder.copy_buffer_to_buffer(
            &ws.work,
            o.dx[0] as u64 * 4,
            &ws.staging,
            np as u64 * 4,
            nx as u64 * 4,
        );
        encoder.copy_buffer_to_buffer(
            &ws.work,
            o.dh0 as u64 * 4,
            &ws.staging,
            (np + nx) as u64 * 4,
            slab as u64 * 4,
        );
        let index = self.ctx.submit([encoder.finish()]);
        let mut flat = vec![0.0f32; np + nx + slab];
        let read = read_back(&self.ctx, index, &mut [(&ws.staging, &mut flat[..])]);
        pop_scopes(scopes.0, scopes.1)?;
        read?;
        self.ctx.check_lost()?;
        let weights = self.unflatten(&flat[..np]).0;
        let dx = &flat[np..np + nx];
        Ok(Gradients {
            input: from_time_major(c.batch_first, dx, t, b, c.input_size),
            h0: flat[np + nx..].to_vec(),
            weights,
        })
    }

    fn unflatten(&self, flat: &[f32]) -> (GruWeights, Option<Dense>) {
        self.layout.unflatten(&self.config, self.classes, flat)
    }

    fn read_flat(&self, buf: &wgpu::Buffer) -> Result<Vec<f32>> {
        let device = &self.ctx.device;
        let scopes = push_scopes(device);
        let n = self.layout.total;
        let staging = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("wgpu-gru train parameter read-back"),
            size: (n as u64 * 4).max(16),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("wgpu-gru train parameter read-back"),
        });
        encoder.copy_buffer_to_buffer(buf, 0, &staging, 0, n as u64 * 4);
        let index = self.ctx.submit([encoder.finish()]);
        let mut flat = vec![0.0f32; n];
        let read = read_back(&self.ctx, index, &mut [(&staging, &mut flat[..])]);
        pop_scopes(scopes.0, scopes.1)?;
        read?;
        self.ctx.check_lost()?;
        Ok(flat)
    }

    /// The current parameters, read back: the GRU, and the head when there is one.
    pub fn read_parameters(&self) -> Result<(Gru, Option<Dense>)> {
        let (weights, head) = self.unflatten(&self.read_flat(&self.params)?);
        Ok((
            Gru {
                config: self.config.clone(),
                weights,
            },
            head,
        ))
    }

    /// The gradients of the last backward or training step, read back (GRU, then head).
    pub fn read_gradients(&self) -> Result<(GruWeights, Option<Dense>)> {
        Ok(self.unflatten(&self.read_flat(&self.grads)?))
    }

    /// The current model as a [`GruClassifier`] (classifier trainers only).
    pub fn read_classifier(&self) -> Result<GruClassifier> {
        match self.read_parameters()? {
            (gru, Some(dense)) => GruClassifier::new(gru, dense),
            (_, None) => need_head(None),
        }
    }

    /// Checks a classifier batch in `ws`: `x` `[B, T, I]` (batch-first) or `[T, B, I]`, labels
    /// `[B]` < C.
    fn check_batch(&self, ws: &TrainWorkspace, x: &[f32], labels: Option<&[u32]>) -> Result<()> {
        self.check_owner(ws)?;
        need_head(self.pipes.head.as_ref())?;
        SeqInput::new(x, Steps(ws.steps), Batch(ws.batch)).validate(&self.config)?;
        if let Some(labels) = labels {
            if labels.len() != ws.batch {
                return Err(Error::shape(
                    "labels",
                    format!("[{}]", ws.batch),
                    format!("[{}]", labels.len()),
                ));
            }
            if let Some((i, &v)) = labels
                .iter()
                .enumerate()
                .find(|&(_, &v)| v as usize >= self.classes)
            {
                return Err(Error::arg(
                    "labels",
                    format!("labels[{i}] = {v} is not a class below {}", self.classes),
                ));
            }
        }
        Ok(())
    }

    /// One training step of a classifier with its optimiser, all on the GPU in one submit:
    /// uploads `x` (`[B, T, I]` when the GRU is batch-first, else `[T, B, I]`) and `labels`
    /// `[B]`, runs the forward, the mean cross-entropy and its backward through the head and the
    /// GRU, clips the gradients to global norm `clip` (when `Some`), applies the optimiser, and
    /// reads back only the loss and the count of correct rows (both before the update). Initial
    /// state zero, full lengths.
    pub fn train_step(
        &mut self,
        ws: &mut TrainWorkspace,
        x: &[f32],
        labels: &[u32],
        clip: Option<f32>,
    ) -> Result<StepStats> {
        self.check_batch(ws, x, Some(labels))?;
        let opt = need_head(self.optimizer)?;
        if let Some(c) = clip
            && !(c.is_finite() && c > 0.0)
        {
            return Err(Error::arg("clip", format!("max norm must be > 0, got {c}")));
        }
        let step = self.step + 1;
        let stats = self.classifier_pass(ws, x, labels, Some((&opt, clip)), step)?;
        self.step = step;
        Ok(stats)
    }

    /// The classifier's loss and gradients for one batch, without an update: the loss, the
    /// count of correct rows, and the gradients of the GRU's weights and of the head (read back).
    pub fn classifier_gradients(
        &self,
        ws: &mut TrainWorkspace,
        x: &[f32],
        labels: &[u32],
    ) -> Result<(StepStats, GruWeights, Dense)> {
        self.check_batch(ws, x, Some(labels))?;
        let stats = self.classifier_pass(ws, x, labels, None, 0)?;
        let (g, head) = self.read_gradients()?;
        Ok((stats, g, need_head(head)?))
    }

    /// One submit of a classifier's forward, loss and backward for a checked batch, then (with
    /// `update`) gradient clipping and the optimiser's step `step`; reads back the loss and the
    /// count of correct rows.
    fn classifier_pass(
        &self,
        ws: &mut TrainWorkspace,
        x: &[f32],
        labels: &[u32],
        update: Option<(&Optimizer, Option<f32>)>,
        step: u64,
    ) -> Result<StepStats> {
        let n = self.layout.total;
        let (mut encoder, scopes) = self.record_forward(
            ws,
            (x, labels),
            (update, step),
            "classifier pass",
            |r, pass| {
                r.head(pass, true)?;
                r.backward(pass, false);
                match update {
                    Some((_, clip)) => r.update(pass, n, clip.is_some()),
                    None => Ok(()),
                }
            },
        )?;
        encoder.copy_buffer_to_buffer(&self.scratch, 0, &ws.staging, 0, 8);
        let index = self.ctx.submit([encoder.finish()]);
        let mut out = [0.0f32; 2];
        let read = read_back(&self.ctx, index, &mut [(&ws.staging, &mut out[..])]);
        pop_scopes(scopes.0, scopes.1)?;
        read?;
        self.ctx.check_lost()?;
        Ok(StepStats {
            loss: out[0],
            correct: out[1] as u32,
        })
    }

    /// Uploads a batch `(x, labels)` and the optimiser's block for `(update, step)`, and records
    /// its forward and then `more` in one compute pass of a new encoder (labelled `label`),
    /// inside error scopes the caller pops.
    fn record_forward(
        &self,
        ws: &mut TrainWorkspace,
        (x, labels): (&[f32], &[u32]),
        (update, step): (Option<(&Optimizer, Option<f32>)>, u64),
        label: &str,
        more: impl FnOnce(&Recorder<'_>, &mut wgpu::ComputePass<'_>) -> Result<()>,
    ) -> Result<(
        wgpu::CommandEncoder,
        (wgpu::ErrorScopeGuard, wgpu::ErrorScopeGuard),
    )> {
        self.ctx.check_lost()?;
        let device = &self.ctx.device;
        let q = &self.ctx.queue;
        let scopes = push_scopes(device);
        ws.write_x(q, &self.config, x);
        ws.write_ints(q, None, labels);
        let block = opt_block(&self.config, &self.layout, ws, update, step);
        q.write_buffer(
            &ws.uniforms,
            ws.opt_offset as u64,
            bytemuck::bytes_of(&block),
        );
        let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some(&format!("wgpu-gru train {label}")),
        });
        ws.clean(&mut encoder);
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(&format!("wgpu-gru train {label} pass")),
                timestamp_writes: None,
            });
            let r = self.recorder(ws);
            r.forward(&mut pass);
            more(&r, &mut pass)?;
        }
        Ok((encoder, scopes))
    }

    /// Class probabilities `[B, C]` for `x` (layout as in [`train_step`](Self::train_step)),
    /// with the current parameters: one upload, one submit, one read-back.
    pub fn predict_proba(&self, ws: &mut TrainWorkspace, x: &[f32]) -> Result<Vec<f32>> {
        self.check_batch(ws, x, None)?;
        let (mut encoder, scopes) =
            self.record_forward(ws, (x, &[]), (None, 0), "predict", |r, pass| {
                r.head(pass, false)
            })?;
        let n = ws.batch * self.classes;
        encoder.copy_buffer_to_buffer(
            &ws.work,
            ws.offs.pr as u64 * 4,
            &ws.staging,
            0,
            n as u64 * 4,
        );
        let index = self.ctx.submit([encoder.finish()]);
        let mut probs = vec![0.0f32; n];
        let read = read_back(&self.ctx, index, &mut [(&ws.staging, &mut probs[..])]);
        pop_scopes(scopes.0, scopes.1)?;
        read?;
        self.ctx.check_lost()?;
        Ok(probs)
    }
}

/// `v` (`[B, T, W]` when `batch_first`, else already `[T, B, W]`) time-major.
fn to_time_major(batch_first: bool, v: &[f32], t: usize, b: usize, w: usize) -> Cow<'_, [f32]> {
    if !batch_first {
        return Cow::Borrowed(v);
    }
    let mut out = vec![0.0f32; v.len()];
    for bb in 0..b {
        for tt in 0..t {
            let src = (bb * t + tt) * w;
            let dst = (tt * b + bb) * w;
            out[dst..dst + w].copy_from_slice(&v[src..src + w]);
        }
    }
    Cow::Owned(out)
}

/// The inverse of [`to_time_major`]: `[T, B, W]` back to `[B, T, W]` when `batch_first`.
fn from_time_major(batch_first: bool, v: &[f32], t: usize, b: usize, w: usize) -> Vec<f32> {
    if !batch_first {
        return v.to_vec();
    }
    let mut out = vec![0.0f32; v.len()];
    for tt in 0..t {
        for bb in 0..b {
            let src = (tt * b + bb) * w;
            let dst = (bb * t + tt) * w;
            out[dst..dst + w].copy_from_slice(&v[src..src + w]);
        }
    }
    out
}
