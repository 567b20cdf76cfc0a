//! The dense head on the GPU ([`GpuHead`]: a dense layer and its activation, softmax by default)
//! and the whole sequence classifier in one submit ([`GpuClassifier`]: GRU → final state →
//! dense → softmax).
//!
//! The head reads the GRU's final state straight out of the workspace's states buffer, so the
//! only transfers of a forward are the input going up and the `[B, C]` probabilities coming back.

use super::context::GpuContext;
use super::io::{
    check_binding_fits, check_strided_input, grid, pop_scopes, pop_scopes_async, read_back_async,
};
use super::layer::GpuGru;
use super::layout::{Layout, bind_whole};
use super::options::{ForwardStats, GpuOptions};
use super::wgsl::{HEAD_WG, HeadParams, Shader, Spec};
use super::workspace::Workspace;
use crate::config::GruConfig;
use crate::error::{Error, Result};
use crate::io::SeqInput;
use crate::io::{Batch, Steps};
use crate::model::{Dense, DenseActivation, GruClassifier, argmax_rows};
use futures_intrusive::sync::Mutex;
use wgpu::util::DeviceExt;

/// A [`Dense`] layer followed by its activation (a softmax over its outputs unless
/// [`with_activation`](Self::with_activation) says otherwise), uploaded to a GPU.
///
/// Input rows `[B, K]` (K = `in_features`) are read from any storage buffer at a float offset and
/// row stride ([`GpuHead::bind`]); probabilities `[B, C]` (C = `out_features`) are written to a
/// buffer the binding owns ([`HeadBinding::probs_buffer`]). Pipelines are specialised on K and C
/// and built once.
pub struct GpuHead {
    ctx: GpuContext,
    in_features: usize,
    classes: usize,
    activation: DenseActivation,
    weight: wgpu::Buffer,
    bias: wgpu::Buffer,
    layout: wgpu::BindGroupLayout,
    dense: wgpu::ComputePipeline,
    /// Built only for softmax and log_softmax.
    softmax: Option<wgpu::ComputePipeline>,
}

impl std::fmt::Debug for GpuHead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuHead")
            .field("in_features", &self.in_features)
            .field("classes", &self.classes)
            .field("activation", &self.activation)
            .field("device", &self.ctx.describe())
            .finish()
    }
}

/// A [`GpuHead`] bound to one input buffer and one batch size: its parameters, its output
/// buffer `[B, C]` and the bind group. Make it once with [`GpuHead::bind`] and reuse it.
#[derive(Debug)]
pub struct HeadBinding {
    batch: usize,
    probs: wgpu::Buffer,
    group: wgpu::BindGroup,
    dense_grid: (u32, u32),
    softmax_grid: (u32, u32),
}

impl HeadBinding {
    /// Batch B this binding was made for.
    pub fn batch(&self) -> usize {
        self.batch
    }
    /// The probabilities `[B, C]` the last encoded head wrote (usage `STORAGE | COPY_SRC`).
    pub fn probs_buffer(&self) -> &wgpu::Buffer {
        &self.probs
    }
}

impl GpuHead {
    /// Uploads `dense` (`weight [C, K]`, `bias [C]`), followed by a softmax, and builds its two
    /// pipelines.
    pub fn new(ctx: &GpuContext, dense: &Dense) -> Result<Self> {
        Self::with_activation(ctx, dense, DenseActivation::Softmax)
    }

    /// Uploads `dense` followed by `activation` (Keras 3's definitions; softmax and log_softmax
    /// over each row of C) and builds its pipelines.
    pub fn with_activation(
        ctx: &GpuContext,
        dense: &Dense,
        activation: DenseActivation,
    ) -> Result<Self> {
        dense.validate()?;
        let (k, c) = (dense.in_features, dense.out_features);
        let (Ok(k32), Ok(c32)) = (u32::try_from(k), u32::try_from(c)) else {
            return Err(Error::Overflow(format!("dense [{c}, {k}] as u32")));
        };
        let device = &ctx.device;
        let max_bind = device.limits().max_storage_buffer_binding_size;
        let w_bytes = dense.weight.len() as u64 * 4;
        if w_bytes > max_bind {
            return Err(Error::DeviceLimit {
                what: "dense weight binding (bytes)".into(),
                needed: w_bytes,
                limit: max_bind,
            });
        }
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let oom = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let init = |label: &str, data: &[f32]| {
            device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: bytemuck::cast_slice(data),
                usage: wgpu::BufferUsages::STORAGE,
            })
        };
        let weight = init("wgpu-gru head dense.weight", &dense.weight);
        let bias = init("wgpu-gru head dense.bias", &dense.bias);
        use super::layout::Bind::{Read, ReadWrite, Uniform};
        let layout = Layout::new(
            device,
            "wgpu-gru head",
            &[Uniform, Read, Read, Read, ReadWrite],
        );
        let module = Shader::Head.create(device, Spec::default());
        let constants = [
            ("K", k32 as f64),
            ("C", c32 as f64),
            ("ACT", activation.code() as f64),
        ];
        let make = |entry: &str| layout.pipeline(device, &module, entry, &constants);
        let dense_pipeline = make("dense");
        let softmax = activation.is_row_wise().then(|| make("softmax"));
        pop_scopes(oom, scope)?;
        ctx.check_lost()?;
        Ok(GpuHead {
            ctx: ctx.clone(),
            in_features: k,
            classes: c,
            activation,
            weight,
            bias,
            layout: layout.group,
            dense: dense_pipeline,
            softmax,
        })
    }

    /// Input features K per row.
    pub fn in_features(&self) -> usize {
        self.in_features
    }

    /// Classes C (outputs per row).
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// The activation after the dense layer.
    pub fn activation(&self) -> DenseActivation {
        self.activation
    }

    /// Binds the head to `input` for batch `batch`: row `b` of the `[B, K]` input starts at float
    /// `offset + b · row_stride` of `input` (usage `STORAGE`). Creates the output `[B, C]`.
    ///
    /// To read a [`Workspace`]'s final state, use [`final_state_offset`] and `row_stride = H`.
    pub fn bind(
        &self,
        input: &wgpu::Buffer,
        offset: usize,
        row_stride: usize,
        batch: usize,
    ) -> Result<HeadBinding> {
        let (k, c) = (self.in_features, self.classes);
        if batch == 0 {
            return Err(Error::arg("batch", "a head binding needs B ≥ 1"));
        }
        if row_stride < k && batch > 1 {
            return Err(Error::arg(
                "row_stride",
                format!("{row_stride} is less than the {k} input features: rows would overlap"),
            ));
        }
        let end = check_strided_input(input, "head", batch, row_stride, offset, k)?;
        let out = batch
            .checked_mul(c)
            .ok_or_else(|| Error::Overflow(format!("probs [{batch}, {c}]")))?;
        let (Ok(b32), Ok(off32), Ok(st32), Ok(_)) = (
            u32::try_from(batch),
            u32::try_from(offset),
            u32::try_from(row_stride),
            u32::try_from(out.max(end)),
        ) else {
            return Err(Error::Overflow("head indices exceed u32".into()));
        };
        let device = &self.ctx.device;
        let limits = device.limits();
        let out_bytes = out as u64 * 4;
        check_binding_fits(device, "head", out_bytes, input)?;
        let max_dim = limits.max_compute_workgroups_per_dimension;
        let dense_grid = grid(out, HEAD_WG, max_dim, "dense")?;
        // One workgroup per row.
        let softmax_grid = grid(
            batch.saturating_mul(HEAD_WG as usize),
            HEAD_WG,
            max_dim,
            "softmax",
        )?;
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let oom = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let params = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("wgpu-gru head params"),
            contents: bytemuck::bytes_of(&HeadParams {
                batch: b32,
                x_off: off32,
                x_sb: st32,
                ..Default::default()
            }),
            usage: wgpu::BufferUsages::UNIFORM,
        });
        let probs = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("wgpu-gru head probs"),
            size: out_bytes.max(16),
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let group = bind_whole(
            device,
            "wgpu-gru head group",
            &self.layout,
            &[&params, input, &self.weight, &self.bias, &probs],
        );
        pop_scopes(oom, scope)?;
        Ok(HeadBinding {
            batch,
            probs,
            group,
            dense_grid,
            softmax_grid,
        })
    }

    /// Records the dense layer and its activation (one compute pass: two dispatches for softmax
    /// and log_softmax, one otherwise) into `encoder`; returns the dispatches. Whatever earlier
    /// commands of the encoder wrote to the bound input is what they read.
    pub fn encode(&self, encoder: &mut wgpu::CommandEncoder, binding: &HeadBinding) -> u32 {
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("wgpu-gru head"),
            timestamp_writes: None,
        });
        pass.set_bind_group(0, &binding.group, &[]);
        pass.set_pipeline(&self.dense);
        pass.dispatch_workgroups(binding.dense_grid.0, binding.dense_grid.1, 1);
        let Some(softmax) = &self.softmax else {
            return 1;
        };
        pass.set_pipeline(softmax);
        pass.dispatch_workgroups(binding.softmax_grid.0, binding.softmax_grid.1, 1);
        2
    }
}

/// Float offset, in [`Workspace::states_buffer`], of the state the classifier reads: the last
/// layer's forward direction (or only direction) of h_n, rows `[B, H]` with stride H.
///
/// The states buffer holds h0 `[L, D, B, H]` then h_n `[L, D, B, H]`, so this is
/// `L·D·B·H + (L−1)·D·B·H`.
pub fn final_state_offset(config: &GruConfig, batch: usize) -> usize {
    let slab = config.num_directions() * batch * config.hidden_size;
    config.num_layers * slab + (config.num_layers - 1) * slab
}

/// Buffers for one `(T, B)` of a [`GpuClassifier`]: the GRU's [`Workspace`], the head bound to
/// its states buffer, and a staging buffer for the probabilities. Reused across forwards.
#[derive(Debug)]
pub struct ClassifierWorkspace {
    gru: Workspace,
    head: HeadBinding,
    read: wgpu::Buffer,
}

impl ClassifierWorkspace {
    /// Steps T.
    pub fn steps(&self) -> usize {
        self.gru.steps()
    }
    /// Batch B.
    pub fn batch(&self) -> usize {
        self.gru.batch()
    }
    /// The GRU's workspace (input buffer `[B, T, I]` or `[T, B, I]`, states, layer output).
    pub fn gru_workspace(&self) -> &Workspace {
        &self.gru
    }
    /// The GRU's workspace, mutably (for [`GpuGru::write_input`] or [`GpuGru::write_state`]).
    pub fn gru_workspace_mut(&mut self) -> &mut Workspace {
        &mut self.gru
    }
    /// The probabilities `[B, C]` the last encoded forward wrote; they stay on the GPU until read.
    pub fn probs_buffer(&self) -> &wgpu::Buffer {
        self.head.probs_buffer()
    }
}

/// A [`GruClassifier`] uploaded to a GPU: GRU → final state → dense → softmax, in one submit.
///
/// ```no_run
/// use wgpu_gru::gpu::{GpuClassifier, GpuContext};
/// use wgpu_gru::model::GruClassifier;
/// use wgpu_gru::{Batch, Steps};
/// let model = GruClassifier::from_safetensors("assets/digits_gru.safetensors")?;
/// let gpu = GpuClassifier::new(&GpuContext::new_default()?, &model)?;
/// let x = vec![0.0f32; 2 * 8 * 8]; // [B = 2, T = 8, I = 8], batch-first as the file is read
/// let probs = gpu.predict_proba(&x, Steps(8), Batch(2))?; // [2, 10]
/// # Ok::<(), wgpu_gru::Error>(())
/// ```
///
/// `GpuClassifier` is `Send + Sync`; concurrent predictions are serialised on its cached
/// workspace.
pub struct GpuClassifier {
    gru: GpuGru,
    head: GpuHead,
    cached: Mutex<Option<ClassifierWorkspace>>,
}

impl std::fmt::Debug for GpuClassifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuClassifier")
            .field("gru", &self.gru)
            .field("head", &self.head)
            .finish()
    }
}

impl GpuClassifier {
    /// Uploads `model` to `ctx`'s device and builds every pipeline.
    pub fn new(ctx: &GpuContext, model: &GruClassifier) -> Result<Self> {
        Self::with_options(ctx, model, GpuOptions::default())
    }

    /// [`new`](Self::new) with the GRU's tuning options.
    pub fn with_options(
        ctx: &GpuContext,
        model: &GruClassifier,
        options: GpuOptions,
    ) -> Result<Self> {
        model.validate()?;
        Ok(GpuClassifier {
            gru: GpuGru::with_options(ctx, &model.gru, options)?,
            head: GpuHead::new(ctx, &model.dense)?,
            cached: Mutex::new(None, false),
        })
    }

    /// The recurrent part.
    pub fn gru(&self) -> &GpuGru {
        &self.gru
    }

    /// The dense + softmax head.
    pub fn head(&self) -> &GpuHead {
        &self.head
    }

    /// The context this classifier runs on.
    pub fn context(&self) -> &GpuContext {
        self.gru.context()
    }

    /// Classes C.
    pub fn num_classes(&self) -> usize {
        self.head.classes()
    }

    /// Buffers for forwards of shape `(steps, batch)`; reuse it for every forward of that shape.
    pub fn workspace(&self, steps: Steps, batch: Batch) -> Result<ClassifierWorkspace> {
        let gru = self.gru.workspace(steps, batch)?;
        let c = self.gru.config();
        let head = self.head.bind(
            gru.states_buffer(),
            final_state_offset(c, batch.0),
            c.hidden_size,
            batch.0,
        )?;
        let device = &self.context().device;
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let oom = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let read = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("wgpu-gru readback probs"),
            size: head.probs_buffer().size(),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        pop_scopes(oom, scope)?;
        Ok(ClassifierWorkspace { gru, head, read })
    }

    /// Writes `x` (`[B, T, I]` when the GRU is batch-first, as [`GruClassifier::from_file`]
    /// reads it; `[T, B, I]` otherwise) into `ws`, with zero initial state and full lengths.
    pub fn write_input(&self, ws: &mut ClassifierWorkspace, x: &[f32]) -> Result<()> {
        let (t, b) = (ws.steps(), ws.batch());
        self.gru
            .write_input(&mut ws.gru, &SeqInput::new(x, Steps(t), Batch(b)))
    }

    /// Records a whole forward into `encoder`: the GRU, then the head reading its final state.
    /// The probabilities stay in [`ClassifierWorkspace::probs_buffer`].
    pub fn encode(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        ws: &ClassifierWorkspace,
    ) -> Result<ForwardStats> {
        let mut stats = self.gru.encode(encoder, &ws.gru)?;
        stats.dispatches += self.head.encode(encoder, &ws.head);
        Ok(stats)
    }

    /// Class probabilities `[B, C]` for `x` (layout as in [`write_input`](Self::write_input)):
    /// one upload, one submit, one read-back. The workspace is kept while `(T, B)` stays the
    /// same, so repeated calls of one shape create no buffers. `B = 0` gives an empty result.
    pub fn predict_proba(&self, x: &[f32], steps: Steps, batch: Batch) -> Result<Vec<f32>> {
        self.predict_proba_with_stats(x, steps, batch)
            .map(|(p, _)| p)
    }

    /// [`predict_proba`](Self::predict_proba), also returning what it dispatched and submitted.
    pub fn predict_proba_with_stats(
        &self,
        x: &[f32],
        steps: Steps,
        batch: Batch,
    ) -> Result<(Vec<f32>, ForwardStats)> {
        pollster::block_on(self.predict_proba_with_stats_async(x, steps, batch))
    }

    /// [`predict_proba`](Self::predict_proba) as a future that waits for its own submission
    /// without blocking a thread (on the web, the browser completes it).
    pub async fn predict_proba_async(
        &self,
        x: &[f32],
        steps: Steps,
        batch: Batch,
    ) -> Result<Vec<f32>> {
        self.predict_proba_with_stats_async(x, steps, batch)
            .await
            .map(|(p, _)| p)
    }

    /// [`predict_proba_with_stats`](Self::predict_proba_with_stats) as a future.
    pub async fn predict_proba_with_stats_async(
        &self,
        x: &[f32],
        steps: Steps,
        batch: Batch,
    ) -> Result<(Vec<f32>, ForwardStats)> {
        SeqInput::new(x, steps, batch).validate(self.gru.config())?;
        let (steps, batch) = (steps.0, batch.0);
        if batch == 0 {
            return Ok((Vec::new(), ForwardStats::default()));
        }
        if steps == 0 {
            return Err(Error::arg("steps", "a classifier needs T ≥ 1 steps"));
        }
        let ctx = self.context();
        ctx.check_lost()?;
        let mut guard = self.cached.lock().await;
        if guard
            .as_ref()
            .is_none_or(|w| w.steps() != steps || w.batch() != batch)
        {
            // Drop the old buffers before allocating the new ones.
            *guard = None;
            *guard = Some(self.workspace(Steps(steps), Batch(batch))?);
        }
        let ws = guard
            .as_mut()
            .ok_or_else(|| Error::Gpu("no classifier workspace".into()))?;
        let device = &ctx.device;
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let oom = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        self.write_input(ws, x)?;
        let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("wgpu-gru classifier forward"),
        });
        let mut stats = self.encode(&mut encoder, ws)?;
        let n = batch * self.num_classes();
        encoder.copy_buffer_to_buffer(ws.probs_buffer(), 0, &ws.read, 0, n as u64 * 4);
        let index = ctx.submit([encoder.finish()]);
        stats.submits = 1;
        // Scopes close on this thread, before the wait (a future may move between threads).
        pop_scopes_async(oom, scope).await?;
        let mut probs = vec![0.0f32; n];
        read_back_async(ctx, index, &mut [(&ws.read, &mut probs[..])]).await?;
        ctx.check_lost()?;
        Ok((probs, stats))
    }

    /// The most probable class of each row (the first on ties), from
    /// [`predict_proba`](Self::predict_proba).
    pub fn predict(&self, x: &[f32], steps: Steps, batch: Batch) -> Result<Vec<usize>> {
        let probs = self.predict_proba(x, steps, batch)?;
        Ok(argmax_rows(&probs, self.num_classes()))
    }
}
