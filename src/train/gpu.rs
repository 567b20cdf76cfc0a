//! The GPU training path: a training-mode forward that keeps the gates of every step, the
//! fused backward recurrence (one dispatch per step, two for reset-before), the weight gradients
//! as GEMMs over all `T·B` rows, and, for a classifier, the dense + softmax cross-entropy
//! backward, global-norm clipping and Adam or SGD with momentum. Everything of one backward or
//! one training step is recorded into one command encoder and submitted once.
//!
//! [`GpuTrainer`] holds the parameters (and their gradients and optimiser moments) in GPU
//! buffers; [`TrainWorkspace`] holds the activations and tapes for one `(T, B)`. A training step
//! uploads the batch, runs forward, backward and update, and reads back only the loss.
//!
//! The shaders are `shaders/gru_backward.wgsl` (forward with tape, backward recurrence),
//! `shaders/train_gemm.wgsl` (the strided GEMM) and `shaders/train_step.wgsl` (head loss,
//! clipping, optimisers).

use crate::io::{Batch, Steps};
use wgpu::util::DeviceExt;

use super::{Gradients, check_trainable, check_upstream};
use crate::config::{GruConfig, Variant};
use crate::error::{Error, Result};
use crate::gpu::GpuContext;
use crate::io::SeqInput;
use crate::model::{Dense, GruClassifier};
use crate::weights::{CellWeights, Gru, GruWeights};

use crate::gpu::io::{Layout, pop_scopes, read_back};
use crate::gpu::wgsl::{
    GEMM_TILE, GemmParams, OPT_WG, OptParams, SCRATCH_PARTIALS, Shader, Spec, StepParams, TRAIN_WG,
    TrainLayerParams,
};

/// K-rows per GEMM dispatch: keeps every invocation under llvmpipe's 65,535 loop iterations.
const K_CHUNK: u32 = 8192;
/// Most workgroups of the `sumsq` reduction.
const MAX_GROUPS: u32 = 1024;
/// Floats of the scratch buffer: loss, correct, norm, scale, then the partial sums.
const SCRATCH: usize = (SCRATCH_PARTIALS + MAX_GROUPS) as usize;

/// An optimiser, with PyTorch's update rules and defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Optimizer {
    /// `torch.optim.Adam`: `m = β1·m + (1−β1)·g`, `v = β2·v + (1−β2)·g²`,
    /// `p −= lr/(1−β1ᵗ) · m / (√v/√(1−β2ᵗ) + ε)`, with `g += weight_decay·p` first.
    Adam {
        /// Learning rate.
        lr: f32,
        /// β1 (0.9).
        beta1: f32,
        /// β2 (0.999).
        beta2: f32,
        /// ε (1e-8).
        eps: f32,
        /// L2 penalty added to the gradient (0).
        weight_decay: f32,
    },
    /// `torch.optim.SGD` with momentum (no dampening, not Nesterov): `buf = g` on the first step,
    /// then `buf = μ·buf + g`; `p −= lr·buf`, with `g += weight_decay·p` first.
    Sgd {
        /// Learning rate.
        lr: f32,
        /// Momentum μ (0 for plain SGD).
        momentum: f32,
        /// L2 penalty added to the gradient (0).
        weight_decay: f32,
    },
}

impl Optimizer {
    /// Adam with PyTorch's defaults and learning rate `lr`.
    pub fn adam(lr: f32) -> Self {
        Optimizer::Adam {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
    /// SGD with momentum `momentum` and learning rate `lr`.
    pub fn sgd(lr: f32, momentum: f32) -> Self {
        Optimizer::Sgd {
            lr,
            momentum,
            weight_decay: 0.0,
        }
    }

    /// One update in f64 on the CPU, the oracle of the GPU kernels: `step` counts from 1;
    /// `m1`, `m2` are the optimiser's state (Adam's moments, or SGD's momentum buffer in `m1`),
    /// all as long as `params`. `grads` are used as given (clip them first).
    pub fn step_reference(
        &self,
        step: u64,
        params: &mut [f64],
        grads: &[f64],
        m1: &mut [f64],
        m2: &mut [f64],
    ) {
        match *self {
            Optimizer::Adam {
                lr,
                beta1,
                beta2,
                eps,
                weight_decay,
            } => {
                let (b1, b2) = (beta1 as f64, beta2 as f64);
                let bc1 = 1.0 - b1.powi(step as i32);
                let bc2 = 1.0 - b2.powi(step as i32);
                for i in 0..params.len() {
                    let g = grads[i] + weight_decay as f64 * params[i];
                    m1[i] = b1 * m1[i] + (1.0 - b1) * g;
                    m2[i] = b2 * m2[i] + (1.0 - b2) * g * g;
                    let denom = m2[i].sqrt() / bc2.sqrt() + eps as f64;
                    params[i] -= lr as f64 / bc1 * m1[i] / denom;
                }
            }
            Optimizer::Sgd {
                lr,
                momentum,
                weight_decay,
            } => {
                for i in 0..params.len() {
                    let g = grads[i] + weight_decay as f64 * params[i];
                    m1[i] = if step == 1 || momentum == 0.0 {
                        g
                    } else {
                        momentum as f64 * m1[i] + g
                    };
                    params[i] -= lr as f64 * m1[i];
                }
            }
        }
    }
}

/// What one training step reports (the only values read back).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepStats {
    /// Mean cross-entropy of the batch, before the update.
    pub loss: f32,
    /// Rows of the batch whose most probable class (before the update) is the label.
    pub correct: u32,
}

/// Offsets (floats) of every parameter tensor in the flat parameter buffer.
#[derive(Debug, Clone)]
struct ParamLayout {
    /// `[L][D]`: start of `w_ih`, followed by `w_hh`, `b_ih`, `b_hh`.
    cells: Vec<Vec<usize>>,
    /// Head weight `[C, H]` and bias `[C]` (when there is a head).
    head_w: usize,
    head_b: usize,
    total: usize,
}

impl ParamLayout {
    fn new(c: &GruConfig, classes: usize) -> ParamLayout {
        let h = c.hidden_size;
        let mut off = 0;
        let cells = (0..c.num_layers)
            .map(|l| {
                let i = c.layer_input_size(l);
                (0..c.num_directions())
                    .map(|_| {
                        let o = off;
                        off += 3 * h * i + 3 * h * h + 6 * h;
                        o
                    })
                    .collect()
            })
            .collect();
        let head_w = off;
        let head_b = head_w + classes * h;
        ParamLayout {
            cells,
            head_w,
            head_b,
            total: head_b + classes,
        }
    }
}

/// Compute pipelines, built once per trainer.
#[derive(Debug)]
struct Pipelines {
    rec_layout: wgpu::BindGroupLayout,
    gemm_layout: wgpu::BindGroupLayout,
    opt_layout: wgpu::BindGroupLayout,
    fwd_ra: wgpu::ComputePipeline,
    fwd_rb_gates: wgpu::ComputePipeline,
    fwd_rb_cand: wgpu::ComputePipeline,
    bwd_elem: wgpu::ComputePipeline,
    bwd_mid_rb: wgpu::ComputePipeline,
    bwd_rec: wgpu::ComputePipeline,
    transpose: wgpu::ComputePipeline,
    gemm: wgpu::ComputePipeline,
    colsum: wgpu::ComputePipeline,
    head_loss: Option<wgpu::ComputePipeline>,
    loss_reduce: wgpu::ComputePipeline,
    sumsq: wgpu::ComputePipeline,
    clip_scale: wgpu::ComputePipeline,
    adam: wgpu::ComputePipeline,
    sgd: wgpu::ComputePipeline,
}

impl Pipelines {
    fn new(device: &wgpu::Device, config: &GruConfig, classes: usize) -> Pipelines {
        use crate::gpu::io::Bind::{DynUniform, Read, ReadWrite};
        let rec_layout = Layout::new(
            device,
            "wgpu-gru train recurrence",
            &[DynUniform, DynUniform, Read, ReadWrite, Read],
        );
        let gemm_layout = Layout::new(
            device,
            "wgpu-gru train gemm",
            &[DynUniform, Read, ReadWrite, ReadWrite],
        );
        let opt_layout = Layout::new(
            device,
            "wgpu-gru train step",
            &[
                DynUniform, ReadWrite, ReadWrite, ReadWrite, ReadWrite, ReadWrite, ReadWrite, Read,
            ],
        );
        let rec_mod = Shader::GruBackward.create(device, Spec::default());
        let gemm_mod = Shader::TrainGemm.create(device, Spec::default());
        let step_mod = Shader::TrainStep.create(device, Spec::default());
        let ra = if config.variant == Variant::ResetAfter {
            1.0
        } else {
            0.0
        };
        let rec_consts = [("H", config.hidden_size as f64), ("RESET_AFTER", ra)];
        let step_consts = [
            ("H", config.hidden_size as f64),
            ("C", classes.max(1) as f64),
        ];
        let rec = |e: &str| rec_layout.pipeline(device, &rec_mod, e, &rec_consts);
        let step = |e: &str| opt_layout.pipeline(device, &step_mod, e, &step_consts);
        let optimise = |sgd: bool| {
            let mut c = step_consts.to_vec();
            c.push(("SGD", f64::from(u8::from(sgd))));
            opt_layout.pipeline(device, &step_mod, "optimise", &c)
        };
        Pipelines {
            fwd_ra: rec("fwd_ra"),
            fwd_rb_gates: rec("fwd_rb_gates"),
            fwd_rb_cand: rec("fwd_rb_cand"),
            bwd_elem: rec("bwd_elem"),
            bwd_mid_rb: rec("bwd_mid_rb"),
            bwd_rec: rec("bwd_rec"),
            transpose: rec("transpose_whh"),
            gemm: gemm_layout.pipeline(device, &gemm_mod, "gemm", &[]),
            colsum: gemm_layout.pipeline(device, &gemm_mod, "colsum", &[]),
            head_loss: (classes > 0).then(|| step("head_loss")),
            loss_reduce: step("loss_reduce"),
            sumsq: step("sumsq"),
            clip_scale: step("clip_scale"),
            adam: optimise(false),
            sgd: optimise(true),
            rec_layout: rec_layout.group,
            gemm_layout: gemm_layout.group,
            opt_layout: opt_layout.group,
        }
    }
}

/// Pushes an out-of-memory and a validation error scope.
fn push_scopes(device: &wgpu::Device) -> (wgpu::ErrorScopeGuard, wgpu::ErrorScopeGuard) {
    let validation = device.push_error_scope(wgpu::ErrorFilter::Validation);
    let oom = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
    (oom, validation)
}

fn whole(binding: u32, buf: &wgpu::Buffer) -> wgpu::BindGroupEntry<'_> {
    wgpu::BindGroupEntry {
        binding,
        resource: buf.as_entire_binding(),
    }
}

fn u32_of(v: usize, what: &str) -> Result<u32> {
    u32::try_from(v).map_err(|_| Error::Overflow(format!("{what} = {v} exceeds u32")))
}

/// A model's parameters on the GPU, with their gradients, optimiser state and every training
/// pipeline: a GRU alone (for [`backward`](Self::backward)), or a [`GruClassifier`] (GRU → last
/// layer's final state → dense → softmax) for [`train_step`](Self::train_step).
///
/// Parameters live in one flat buffer `[P]`: for each layer and direction `w_ih [3H, I_l]`,
/// `w_hh [3H, H]`, `b_ih [3H]`, `b_hh [3H]` (the canonical [`CellWeights`] layout), then the head's
/// `weight [C, H]` and `bias [C]`; the gradients, and Adam's two moments (or SGD's momentum), in
/// three more buffers of the same layout.
#[derive(Debug)]
pub struct GpuTrainer {
    ctx: GpuContext,
    config: GruConfig,
    classes: usize,
    layout: ParamLayout,
    params: wgpu::Buffer,
    grads: wgpu::Buffer,
    m1: wgpu::Buffer,
    m2: wgpu::Buffer,
    scratch: wgpu::Buffer,
    pipes: Pipelines,
    /// Optimiser steps taken (Adam's t).
    step: u64,
}

/// Offsets (floats) of everything in a workspace's `work` buffer.
#[derive(Debug, Clone, Default)]
struct WorkOffsets {
    ones: usize,
    x0: usize,
    y: Vec<usize>,
    xp: Vec<usize>,
    hp: Vec<usize>,
    gt: Vec<usize>,
    hs: usize,
    h0: usize,
    hn: usize,
    gs: usize,
    dh0: usize,
    gy: usize,
    dx: [usize; 2],
    da: usize,
    dh: usize,
    pt: usize,
    wt: usize,
    dl: usize,
    pr: usize,
    lb: usize,
    total: usize,
}

/// One GEMM dispatch: its uniform block and grid.
#[derive(Debug, Clone, Copy)]
struct GemmCall {
    offset: u32,
    grid: (u32, u32),
    /// `colsum` instead of `gemm`.
    colsum: bool,
}

/// Buffers and bind groups for training or backward passes of one shape `(T, B)` of one
/// [`GpuTrainer`]. Make it once with [`GpuTrainer::workspace`] and reuse it: a repeated step of
/// the same shape creates no buffer.
///
/// Its `work` buffer holds, in floats: the layer inputs and outputs `[T, B, ·]`, every step's
/// state before it `[L][D][T, B, H]` and gates `[L][D][T, B, 4H]`, the input projections
/// `[L][D][T, B, 3H]`, h0, h_n and their gradients `[L·D, B, H]`, the gate gradients
/// `[D][T, B, 4H]`, `W_hhᵀ` `[L][D][H, 3H]` and the head's `[B, C]` logits and gradients.
#[derive(Debug)]
pub struct TrainWorkspace {
    steps: usize,
    batch: usize,
    offs: WorkOffsets,
    work: wgpu::Buffer,
    ints: wgpu::Buffer,
    uniforms: wgpu::Buffer,
    staging: wgpu::Buffer,
    rec_group: wgpu::BindGroup,
    gemm_group: wgpu::BindGroup,
    opt_group: wgpu::BindGroup,
    step_offsets: Vec<u32>,
    layer_offsets: Vec<u32>,
    fwd_gemms: Vec<Vec<GemmCall>>,
    bwd_gemms: Vec<Vec<GemmCall>>,
    /// The layer-0 input-gradient GEMMs (only when the input gradient is wanted).
    dx0_gemms: Vec<GemmCall>,
    head_gemms: Vec<GemmCall>,
    opt_offset: u32,
    /// Whether `gy`, `gs` or `h0` may hold values from a [`GpuTrainer::backward_in`] (a training
    /// step needs them zero).
    dirty: bool,
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

/// The dispatches of one GEMM (`colsum`: a column sum, B unused), split into K-chunks of
/// [`K_CHUNK`] rows, their uniform blocks appended to `ub`.
fn gemm_calls(
    u: GemmParams,
    k: usize,
    colsum: bool,
    ub: &mut Vec<u8>,
    align: usize,
    max_dim: usize,
) -> Result<Vec<GemmCall>> {
    let k = u32_of(k, "GEMM K")?;
    let grid = if colsum {
        (u.m.div_ceil(TRAIN_WG).max(1), 1)
    } else {
        (
            u.n.div_ceil(GEMM_TILE).max(1),
            u.m.div_ceil(GEMM_TILE).max(1),
        )
    };
    if grid.0 as usize > max_dim || grid.1 as usize > max_dim {
        return Err(Error::DeviceLimit {
            what: "GEMM workgroups per dimension".into(),
            needed: grid.0.max(grid.1) as u64,
            limit: max_dim as u64,
        });
    }
    let mut calls = Vec::new();
    let mut k0 = 0;
    while k0 < k {
        let k1 = (k0 + K_CHUNK).min(k);
        let block = GemmParams {
            k0,
            k1,
            acc: if k0 == 0 { u.acc } else { 1 },
            ..u
        };
        calls.push(GemmCall {
            offset: push_block(ub, bytemuck::bytes_of(&block), align)?,
            grid,
            colsum,
        });
        k0 = k1;
    }
    Ok(calls)
}

/// Appends `bytes` to `buf` at the next multiple of `align`; returns its offset.
fn push_block(buf: &mut Vec<u8>, bytes: &[u8], align: usize) -> Result<u32> {
    let off = buf.len().div_ceil(align) * align;
    buf.resize(off, 0);
    buf.extend_from_slice(bytes);
    u32_of(off, "uniform offset")
}

impl GpuTrainer {
    /// Uploads `gru` for [`backward`](Self::backward) (no head). Refuses activations other than
    /// sigmoid/tanh and `clip` ([`Error::Unsupported`]).
    pub fn new(ctx: &GpuContext, gru: &Gru) -> Result<Self> {
        Self::build(ctx, gru, None)
    }

    /// Uploads a classifier (GRU → last layer's final state of direction 0 → dense → softmax)
    /// for [`train_step`](Self::train_step) and [`predict_proba`](Self::predict_proba).
    pub fn classifier(ctx: &GpuContext, model: &GruClassifier) -> Result<Self> {
        model.validate()?;
        Self::build(ctx, &model.gru, Some(&model.dense))
    }

    fn build(ctx: &GpuContext, gru: &Gru, head: Option<&Dense>) -> Result<Self> {
        gru.validate()?;
        check_trainable(&gru.config)?;
        ctx.check_lost()?;
        let config = gru.config.clone();
        let classes = head.map_or(0, |d| d.out_features);
        let layout = ParamLayout::new(&config, classes);
        let mut flat = vec![0.0f32; layout.total];
        for (l, dirs) in gru.weights.layers.iter().enumerate() {
            for (d, c) in dirs.iter().enumerate() {
                let mut o = layout.cells[l][d];
                for t in [&c.w_ih, &c.w_hh, &c.b_ih, &c.b_hh] {
                    flat[o..o + t.len()].copy_from_slice(t);
                    o += t.len();
                }
            }
        }
        if let Some(dense) = head {
            flat[layout.head_w..layout.head_b].copy_from_slice(&dense.weight);
            flat[layout.head_b..layout.total].copy_from_slice(&dense.bias);
        }
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
        let pipes = Pipelines::new(device, &config, classes);
        pop_scopes(scopes.0, scopes.1)?;
        Ok(GpuTrainer {
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

    /// Optimiser steps taken so far.
    pub fn steps_taken(&self) -> u64 {
        self.step
    }

    /// Buffers for passes of shape `(steps, batch)`; `T ≥ 1`, `B ≥ 1`.
    pub fn workspace(&self, steps: Steps, batch: Batch) -> Result<TrainWorkspace> {
        let (steps, batch) = (steps.0, batch.0);
        let c = &self.config;
        if steps == 0 || batch == 0 {
            return Err(Error::arg(
                "workspace",
                format!(
                    "a training workspace needs T ≥ 1 and B ≥ 1 (got T = {steps}, B = {batch})"
                ),
            ));
        }
        let limits = self.ctx.device.limits();
        let max_dim = limits.max_compute_workgroups_per_dimension as usize;
        if batch > max_dim {
            return Err(Error::DeviceLimit {
                what: "batch (workgroups per dimension)".into(),
                needed: batch as u64,
                limit: max_dim as u64,
            });
        }
        let (t, b, h) = (steps, batch, c.hidden_size);
        let (l_n, d_n) = (c.num_layers, c.num_directions());
        let tb = t
            .checked_mul(b)
            .ok_or_else(|| Error::Overflow("T·B".into()))?;
        if tb.div_ceil(GEMM_TILE as usize) > max_dim {
            return Err(Error::DeviceLimit {
                what: "T·B rows of the GEMMs (workgroups per dimension × 64)".into(),
                needed: tb as u64,
                limit: max_dim as u64 * GEMM_TILE as u64,
            });
        }
        let classes = self.classes;
        // Work layout.
        let mut o = WorkOffsets::default();
        let mut at = 0usize;
        let mut take = |n: usize| {
            let start = at;
            at += n;
            start
        };
        o.ones = take(4);
        o.x0 = take(tb * c.input_size);
        for _ in 0..l_n {
            o.y.push(take(tb * d_n * h));
            o.xp.push(take(d_n * tb * 3 * h));
            o.hp.push(take(d_n * tb * h));
            o.gt.push(take(d_n * tb * 4 * h));
        }
        let slab = l_n * d_n * b * h;
        o.hs = take(2 * d_n * b * h);
        o.h0 = take(slab);
        o.hn = take(slab);
        o.gs = take(slab);
        o.dh0 = take(slab);
        o.gy = take(tb * d_n * h);
        let dxw = tb * c.input_size.max(d_n * h);
        o.dx = [take(dxw), take(dxw)];
        o.da = take(d_n * tb * 4 * h);
        o.dh = take(d_n * b * h);
        o.pt = take(d_n * b * h);
        o.wt = take(l_n * d_n * h * 3 * h);
        o.dl = take(b * classes);
        o.pr = take(b * classes);
        o.lb = take(2 * b);
        o.total = at;
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

        // Uniform blocks.
        let align = limits.min_uniform_buffer_offset_alignment.max(16) as usize;
        let mut ub: Vec<u8> = Vec::new();
        let mut step_offsets = Vec::with_capacity(t);
        for s in 0..t {
            let u = StepParams {
                s: u32_of(s, "step")?,
                ..Default::default()
            };
            step_offsets.push(push_block(&mut ub, bytemuck::bytes_of(&u), align)?);
        }
        let mut layer_offsets = Vec::with_capacity(l_n);
        let rev_mask = (0..d_n)
            .filter(|&d| c.direction.is_reverse(d))
            .fold(0u32, |m, d| m | (1 << d));
        let dy_of = |l: usize| {
            if l + 1 == l_n {
                o.gy
            } else {
                o.dx[(l + 1) % 2]
            }
        };
        let x_of = |l: usize| if l == 0 { o.x0 } else { o.y[l - 1] };
        for l in 0..l_n {
            let u32s = |v: usize| u32_of(v, "workspace offset");
            let cells = &self.layout.cells[l];
            let u = TrainLayerParams {
                steps: u32s(t)?,
                batch: u32s(b)?,
                dirs: d_n as u32,
                in_w: u32s(c.layer_input_size(l))?,
                rev_mask,
                go_back: u32::from(c.go_backwards),
                x_off: u32s(x_of(l))?,
                y_off: u32s(o.y[l])?,
                xp_off: u32s(o.xp[l])?,
                hp_off: u32s(o.hp[l])?,
                gt_off: u32s(o.gt[l])?,
                hs_off: u32s(o.hs)?,
                h0_off: u32s(o.h0 + l * d_n * b * h)?,
                hn_off: u32s(o.hn + l * d_n * b * h)?,
                p0: u32s(cells[0])?,
                p1: u32s(*cells.last().unwrap_or(&cells[0]))?,
                dy_off: u32s(dy_of(l))?,
                da_off: u32s(o.da)?,
                dh_off: u32s(o.dh)?,
                pt_off: u32s(o.pt)?,
                gs_off: u32s(o.gs + l * d_n * b * h)?,
                dh0_off: u32s(o.dh0 + l * d_n * b * h)?,
                wt_off: u32s(o.wt + l * d_n * h * 3 * h)?,
                ..Default::default()
            };
            layer_offsets.push(push_block(&mut ub, bytemuck::bytes_of(&u), align)?);
        }
        // GEMMs (and column sums), each split into K-chunks.
        let gemm =
            |u: GemmParams, k: usize, ub: &mut Vec<u8>| gemm_calls(u, k, false, ub, align, max_dim);
        let colsum =
            |u: GemmParams, k: usize, ub: &mut Vec<u8>| gemm_calls(u, k, true, ub, align, max_dim);
        let u = |v: usize| u32_of(v, "GEMM operand offset");
        let h32 = u(h)?;
        let tb32 = u(tb)?;
        let mut fwd_gemms = Vec::with_capacity(l_n);
        let mut bwd_gemms = Vec::with_capacity(l_n);
        let mut dx0_gemms = Vec::new();
        for l in 0..l_n {
            let in_w = c.layer_input_size(l);
            let iw = u(in_w)?;
            let mut f = Vec::new();
            let mut bw = Vec::new();
            for d in 0..d_n {
                let p = self.layout.cells[l][d];
                let (w_ih, w_hh) = (p, p + 3 * h * in_w);
                let (b_ih, b_hh) = (w_hh + 3 * h * h, w_hh + 3 * h * h + 3 * h);
                // XP_d = X_l · W_ihᵀ.
                f.extend(gemm(
                    GemmParams {
                        m: tb32,
                        n: 3 * h32,
                        a_off: u(x_of(l))?,
                        a_sm: iw,
                        a_sk: 1,
                        b_off: u(w_ih)?,
                        b_sk: 1,
                        b_sn: iw,
                        b_buf: 1,
                        c_off: u(o.xp[l] + d * tb * 3 * h)?,
                        c_sm: 3 * h32,
                        c_sn: 1,
                        ..GemmParams::default()
                    },
                    in_w,
                    &mut ub,
                )?);
                let da = o.da + d * tb * 4 * h;
                // A = DAᵀ columns [c0, c0 + rows): A(m, k) = DA[k·4H + c0 + m].
                let da_t = |c0: usize, rows: usize| -> Result<GemmParams> {
                    Ok(GemmParams {
                        m: u(rows)?,
                        a_off: u(da + c0)?,
                        a_sm: 1,
                        a_sk: 4 * h32,
                        c_buf: 1,
                        ..GemmParams::default()
                    })
                };
                let ones = GemmParams {
                    n: 1,
                    b_off: u(o.ones)?,
                    b_sk: 0,
                    b_sn: 0,
                    c_sm: 1,
                    c_sn: 0,
                    ..GemmParams::default()
                };
                // dW_ih = DA[:, 0:3H]ᵀ · X_l.
                bw.extend(gemm(
                    GemmParams {
                        n: iw,
                        b_off: u(x_of(l))?,
                        b_sk: iw,
                        b_sn: 1,
                        c_off: u(w_ih)?,
                        c_sm: iw,
                        c_sn: 1,
                        ..da_t(0, 3 * h)?
                    },
                    tb,
                    &mut ub,
                )?);
                // dW_hh rows r, z = DA[:, 0:2H]ᵀ · HP.
                let hp = o.hp[l] + d * tb * h;
                bw.extend(gemm(
                    GemmParams {
                        n: h32,
                        b_off: u(hp)?,
                        b_sk: h32,
                        b_sn: 1,
                        c_off: u(w_hh)?,
                        c_sm: h32,
                        c_sn: 1,
                        ..da_t(0, 2 * h)?
                    },
                    tb,
                    &mut ub,
                )?);
                // dW_hh rows n = DA[:, 3H:4H]ᵀ · (HP, or r⊙h from the tape for reset-before).
                let (n_src, n_stride) = match c.variant {
                    Variant::ResetAfter => (hp, h),
                    Variant::ResetBefore => (o.gt[l] + d * tb * 4 * h + 3 * h, 4 * h),
                };
                bw.extend(gemm(
                    GemmParams {
                        n: h32,
                        b_off: u(n_src)?,
                        b_sk: u(n_stride)?,
                        b_sn: 1,
                        c_off: u(w_hh + 2 * h * h)?,
                        c_sm: h32,
                        c_sn: 1,
                        ..da_t(3 * h, h)?
                    },
                    tb,
                    &mut ub,
                )?);
                // Bias gradients: column sums (B = ones).
                for (c0, rows, dst) in
                    [(0, 3 * h, b_ih), (0, 2 * h, b_hh), (3 * h, h, b_hh + 2 * h)]
                {
                    let a = da_t(c0, rows)?;
                    bw.extend(colsum(
                        GemmParams {
                            c_off: u(dst)?,
                            c_buf: 1,
                            m: a.m,
                            a_off: a.a_off,
                            a_sm: a.a_sm,
                            a_sk: a.a_sk,
                            ..ones
                        },
                        tb,
                        &mut ub,
                    )?);
                }
                // dX_l (+)= DA[:, 0:3H] · W_ih.
                let dx = gemm(
                    GemmParams {
                        m: tb32,
                        n: iw,
                        a_off: u(da)?,
                        a_sm: 4 * h32,
                        a_sk: 1,
                        b_off: u(w_ih)?,
                        b_sk: iw,
                        b_sn: 1,
                        b_buf: 1,
                        c_off: u(o.dx[l % 2])?,
                        c_sm: iw,
                        c_sn: 1,
                        c_buf: 0,
                        acc: u32::from(d > 0),
                        ..GemmParams::default()
                    },
                    3 * h,
                    &mut ub,
                )?;
                if l == 0 {
                    dx0_gemms.extend(dx);
                } else {
                    bw.extend(dx);
                }
            }
            fwd_gemms.push(f);
            bwd_gemms.push(bw);
        }
        // The head: dW_d = DLᵀ · h_last, db_d = Σ_b DL, dh_last = DL · W_d (into dL/dh_n).
        let mut head_gemms = Vec::new();
        if classes > 0 {
            let c32 = u(classes)?;
            let h_last = o.hn + (l_n - 1) * d_n * b * h;
            let gs_last = o.gs + (l_n - 1) * d_n * b * h;
            head_gemms.extend(gemm(
                GemmParams {
                    m: c32,
                    n: h32,
                    a_off: u(o.dl)?,
                    a_sm: 1,
                    a_sk: c32,
                    b_off: u(h_last)?,
                    b_sk: h32,
                    b_sn: 1,
                    c_off: u(self.layout.head_w)?,
                    c_sm: h32,
                    c_sn: 1,
                    c_buf: 1,
                    ..GemmParams::default()
                },
                b,
                &mut ub,
            )?);
            head_gemms.extend(colsum(
                GemmParams {
                    m: c32,
                    n: 1,
                    a_off: u(o.dl)?,
                    a_sm: 1,
                    a_sk: c32,
                    b_off: u(o.ones)?,
                    c_off: u(self.layout.head_b)?,
                    c_sm: 1,
                    c_buf: 1,
                    ..GemmParams::default()
                },
                b,
                &mut ub,
            )?);
            head_gemms.extend(gemm(
                GemmParams {
                    m: u(b)?,
                    n: h32,
                    a_off: u(o.dl)?,
                    a_sm: c32,
                    a_sk: 1,
                    b_off: u(self.layout.head_w)?,
                    b_sk: h32,
                    b_sn: 1,
                    b_buf: 1,
                    c_off: u(gs_last)?,
                    c_sm: h32,
                    c_sn: 1,
                    ..GemmParams::default()
                },
                classes,
                &mut ub,
            )?);
        }
        let opt_offset = push_block(&mut ub, bytemuck::bytes_of(&OptParams::default()), align)?;
        let ub_len = ub.len().div_ceil(align) * align + align;
        ub.resize(ub_len, 0);
        if ub.len() as u64 > limits.max_buffer_size {
            return Err(Error::DeviceLimit {
                what: "training uniforms (bytes)".into(),
                needed: ub.len() as u64,
                limit: limits.max_buffer_size,
            });
        }

        let device = &self.ctx.device;
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
            contents: &ub,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        });
        let read_floats = (self.layout.total + tb * c.input_size + slab)
            .max(b * classes)
            .max(tb * d_n * h + slab)
            .max(4);
        let staging = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("wgpu-gru train read-back"),
            size: read_floats as u64 * 4,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let ubind = |binding: u32, size: u64| wgpu::BindGroupEntry {
            binding,
            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: &uniforms,
                offset: 0,
                size: wgpu::BufferSize::new(size),
            }),
        };
        let rec_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("wgpu-gru train recurrence group"),
            layout: &self.pipes.rec_layout,
            entries: &[
                ubind(0, std::mem::size_of::<StepParams>() as u64),
                ubind(1, std::mem::size_of::<TrainLayerParams>() as u64),
                whole(2, &self.params),
                whole(3, &work),
                whole(4, &ints),
            ],
        });
        let gemm_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("wgpu-gru train gemm group"),
            layout: &self.pipes.gemm_layout,
            entries: &[
                ubind(0, std::mem::size_of::<GemmParams>() as u64),
                whole(1, &self.params),
                whole(2, &self.grads),
                whole(3, &work),
            ],
        });
        let opt_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("wgpu-gru train step group"),
            layout: &self.pipes.opt_layout,
            entries: &[
                ubind(0, std::mem::size_of::<OptParams>() as u64),
                whole(1, &self.params),
                whole(2, &self.grads),
                whole(3, &self.m1),
                whole(4, &self.m2),
                whole(5, &self.scratch),
                whole(6, &work),
                whole(7, &ints),
            ],
        });
        self.ctx
            .queue
            .write_buffer(&work, o.ones as u64 * 4, bytemuck::cast_slice(&[1.0f32]));
        pop_scopes(scopes.0, scopes.1)?;
        Ok(TrainWorkspace {
            steps,
            batch,
            offs: o,
            work,
            ints,
            uniforms,
            staging,
            rec_group,
            gemm_group,
            opt_group,
            step_offsets,
            layer_offsets,
            fwd_gemms,
            bwd_gemms,
            dx0_gemms,
            head_gemms,
            opt_offset,
            dirty: false,
            x_scratch: Vec::with_capacity(tb * c.input_size),
            ints_scratch: Vec::with_capacity(2 * b),
        })
    }

    fn check_ws(&self, ws: &TrainWorkspace, steps: usize, batch: usize) -> Result<()> {
        if ws.steps != steps || ws.batch != batch {
            return Err(Error::shape(
                "training workspace (T, B)",
                format!("({steps}, {batch})"),
                format!("({}, {})", ws.steps, ws.batch),
            ));
        }
        Ok(())
    }

    /// Writes `x` (`[T, B, I]`, or `[B, T, I]` when batch-first) time-major into the workspace.
    fn write_x(&self, ws: &mut TrainWorkspace, x: &[f32]) {
        let (t_len, b_len, i) = (ws.steps, ws.batch, self.config.input_size);
        let q = &self.ctx.queue;
        if self.config.batch_first {
            ws.x_scratch.clear();
            ws.x_scratch.resize(t_len * b_len * i, 0.0);
            for b in 0..b_len {
                for t in 0..t_len {
                    let src = (b * t_len + t) * i;
                    let dst = (t * b_len + b) * i;
                    ws.x_scratch[dst..dst + i].copy_from_slice(&x[src..src + i]);
                }
            }
            q.write_buffer(
                &ws.work,
                ws.offs.x0 as u64 * 4,
                bytemuck::cast_slice(&ws.x_scratch),
            );
        } else {
            q.write_buffer(&ws.work, ws.offs.x0 as u64 * 4, bytemuck::cast_slice(x));
        }
    }

    /// Writes the lengths (all T without) and labels.
    fn write_ints(&self, ws: &mut TrainWorkspace, lengths: Option<&[usize]>, labels: &[u32]) {
        ws.ints_scratch.clear();
        match lengths {
            Some(l) => ws.ints_scratch.extend(l.iter().map(|&v| v as u32)),
            None => ws
                .ints_scratch
                .extend(std::iter::repeat_n(ws.steps as u32, ws.batch)),
        }
        ws.ints_scratch.extend_from_slice(labels);
        ws.ints_scratch.resize(2 * ws.batch, 0);
        self.ctx
            .queue
            .write_buffer(&ws.ints, 0, bytemuck::cast_slice(&ws.ints_scratch));
    }

    fn gemms(&self, pass: &mut wgpu::ComputePass<'_>, ws: &TrainWorkspace, calls: &[GemmCall]) {
        for g in calls {
            pass.set_pipeline(if g.colsum {
                &self.pipes.colsum
            } else {
                &self.pipes.gemm
            });
            pass.set_bind_group(0, &ws.gemm_group, &[g.offset]);
            pass.dispatch_workgroups(g.grid.0, g.grid.1, 1);
        }
    }

    fn rec(
        &self,
        pass: &mut wgpu::ComputePass<'_>,
        ws: &TrainWorkspace,
        pipe: &wgpu::ComputePipeline,
        l: usize,
        s: usize,
        grid: (u32, u32, u32),
    ) {
        pass.set_pipeline(pipe);
        pass.set_bind_group(0, &ws.rec_group, &[ws.step_offsets[s], ws.layer_offsets[l]]);
        pass.dispatch_workgroups(grid.0, grid.1, grid.2);
    }

    /// Records the training-mode forward of every layer.
    fn encode_forward(&self, pass: &mut wgpu::ComputePass<'_>, ws: &TrainWorkspace) {
        let c = &self.config;
        let h = c.hidden_size as u32;
        let d_n = c.num_directions() as u32;
        let grid = (h.div_ceil(TRAIN_WG), ws.batch as u32, d_n);
        // W_hhᵀ: one invocation per element, over an (x, y) grid.
        let groups = (3 * h * h).div_ceil(TRAIN_WG);
        let max_dim = self
            .ctx
            .device
            .limits()
            .max_compute_workgroups_per_dimension;
        let tx = groups.min(max_dim);
        let t_grid = (tx, groups.div_ceil(tx), d_n);
        for l in 0..c.num_layers {
            self.rec(pass, ws, &self.pipes.transpose, l, 0, t_grid);
            self.gemms(pass, ws, &ws.fwd_gemms[l]);
            for s in 0..ws.steps {
                match c.variant {
                    Variant::ResetAfter => self.rec(pass, ws, &self.pipes.fwd_ra, l, s, grid),
                    Variant::ResetBefore => {
                        self.rec(pass, ws, &self.pipes.fwd_rb_gates, l, s, grid);
                        self.rec(pass, ws, &self.pipes.fwd_rb_cand, l, s, grid);
                    }
                }
            }
        }
    }

    /// Records the backward of every layer, from the top; `input_grad`: also dL/dX of layer 0.
    fn encode_backward(
        &self,
        pass: &mut wgpu::ComputePass<'_>,
        ws: &TrainWorkspace,
        input_grad: bool,
    ) {
        let c = &self.config;
        let h = c.hidden_size as u32;
        let d_n = c.num_directions() as u32;
        let grid = (h.div_ceil(TRAIN_WG), ws.batch as u32, d_n);
        for l in (0..c.num_layers).rev() {
            for s in (0..ws.steps).rev() {
                self.rec(pass, ws, &self.pipes.bwd_elem, l, s, grid);
                if c.variant == Variant::ResetBefore {
                    self.rec(pass, ws, &self.pipes.bwd_mid_rb, l, s, grid);
                }
                self.rec(pass, ws, &self.pipes.bwd_rec, l, s, grid);
            }
            self.gemms(pass, ws, &ws.bwd_gemms[l]);
            if l == 0 && input_grad {
                self.gemms(pass, ws, &ws.dx0_gemms);
            }
        }
    }

    /// Compute dispatches one [`train_step`](Self::train_step) (without clipping) records in `ws`.
    pub fn step_dispatches(&self, ws: &TrainWorkspace) -> u32 {
        let c = &self.config;
        let t = ws.steps as u32;
        let (fwd, bwd) = match c.variant {
            Variant::ResetAfter => (1, 2),
            Variant::ResetBefore => (2, 3),
        };
        let gemms: usize = ws.fwd_gemms.iter().chain(&ws.bwd_gemms).map(Vec::len).sum();
        let per_layer = t * fwd + 1 + t * bwd;
        c.num_layers as u32 * per_layer + gemms as u32 + 2 + ws.head_gemms.len() as u32 + 1
    }

    /// Runs forward and backward of the GRU in one submit and reads back every gradient:
    /// shapes as for [`super::reference::backward`] (`grad_output` like the output, `grad_h_n`
    /// like h_n). Keras masks are refused ([`Error::Unsupported`]); lengths, h0, both variants,
    /// directions, layers, batch-first and go_backwards are supported. Creates a workspace for
    /// the shape; use [`backward_in`](Self::backward_in) to reuse one.
    pub fn backward(
        &self,
        input: &SeqInput<'_>,
        grad_output: &[f32],
        grad_h_n: &[f32],
    ) -> Result<Gradients> {
        input.validate(&self.config)?;
        if input.steps == 0 || input.batch == 0 {
            return super::reference::backward(&self.model_gru()?, input, grad_output, grad_h_n);
        }
        let mut ws = self.workspace(Steps(input.steps), Batch(input.batch))?;
        self.backward_in(&mut ws, input, grad_output, grad_h_n)
    }

    /// [`backward`](Self::backward) in a workspace of the input's shape.
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
        let (l_n, d_n) = (c.num_layers, c.num_directions());
        let slab = l_n * d_n * b * h;
        let device = &self.ctx.device;
        let q = &self.ctx.queue;
        let scopes = push_scopes(device);
        self.write_x(ws, input.x);
        self.write_ints(ws, input.lengths, &[]);
        let o = &ws.offs;
        if let Some(h0) = input.h0 {
            q.write_buffer(&ws.work, o.h0 as u64 * 4, bytemuck::cast_slice(h0));
        }
        q.write_buffer(&ws.work, o.gs as u64 * 4, bytemuck::cast_slice(grad_h_n));
        // dL/dY, time-major.
        let w = d_n * h;
        if c.batch_first {
            let mut gy = vec![0.0f32; grad_output.len()];
            for bb in 0..b {
                for tt in 0..t {
                    let src = (bb * t + tt) * w;
                    let dst = (tt * b + bb) * w;
                    gy[dst..dst + w].copy_from_slice(&grad_output[src..src + w]);
                }
            }
            q.write_buffer(&ws.work, o.gy as u64 * 4, bytemuck::cast_slice(&gy));
        } else {
            q.write_buffer(&ws.work, o.gy as u64 * 4, bytemuck::cast_slice(grad_output));
        }
        ws.dirty = true;
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
            self.encode_forward(&mut pass, ws);
            self.encode_backward(&mut pass, ws, true);
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
        let dx_tm = &flat[np..np + nx];
        let i = c.input_size;
        let input_grad = if c.batch_first {
            let mut v = vec![0.0f32; nx];
            for tt in 0..t {
                for bb in 0..b {
                    let src = (tt * b + bb) * i;
                    let dst = (bb * t + tt) * i;
                    v[dst..dst + i].copy_from_slice(&dx_tm[src..src + i]);
                }
            }
            v
        } else {
            dx_tm.to_vec()
        };
        Ok(Gradients {
            input: input_grad,
            h0: flat[np + nx..].to_vec(),
            weights,
        })
    }

    /// Splits a flat `[P]` parameter (or gradient) vector into the GRU's cells and the head.
    fn unflatten(&self, flat: &[f32]) -> (GruWeights, Option<Dense>) {
        let c = &self.config;
        let h = c.hidden_size;
        let layers = self
            .layout
            .cells
            .iter()
            .enumerate()
            .map(|(l, dirs)| {
                let i = c.layer_input_size(l);
                dirs.iter()
                    .map(|&o| {
                        let a = o + 3 * h * i;
                        let bb = a + 3 * h * h;
                        CellWeights {
                            w_ih: flat[o..a].to_vec(),
                            w_hh: flat[a..bb].to_vec(),
                            b_ih: flat[bb..bb + 3 * h].to_vec(),
                            b_hh: flat[bb + 3 * h..bb + 6 * h].to_vec(),
                        }
                    })
                    .collect()
            })
            .collect();
        let head = (self.classes > 0).then(|| Dense {
            in_features: h,
            out_features: self.classes,
            weight: flat[self.layout.head_w..self.layout.head_b].to_vec(),
            bias: flat[self.layout.head_b..self.layout.total].to_vec(),
        });
        (GruWeights { layers }, head)
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

    fn model_gru(&self) -> Result<Gru> {
        let (weights, _) = self.unflatten(&self.read_flat(&self.params)?);
        Ok(Gru {
            config: self.config.clone(),
            weights,
        })
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
            (_, None) => Err(Error::arg("trainer", "this trainer has no classifier head")),
        }
    }

    fn head_pipeline(&self) -> Result<&wgpu::ComputePipeline> {
        self.pipes
            .head_loss
            .as_ref()
            .ok_or_else(|| Error::arg("trainer", "this trainer has no classifier head"))
    }

    /// Checks a classifier batch: `x` `[B, T, I]` (batch-first) or `[T, B, I]`, labels `[B]` < C.
    fn check_batch(&self, ws: &TrainWorkspace, x: &[f32], labels: Option<&[u32]>) -> Result<()> {
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

    /// Records the head's loss, its reduction and (with `backward`) the head's gradient GEMMs.
    fn encode_head(
        &self,
        pass: &mut wgpu::ComputePass<'_>,
        ws: &TrainWorkspace,
        backward: bool,
    ) -> Result<()> {
        pass.set_bind_group(0, &ws.opt_group, &[ws.opt_offset]);
        pass.set_pipeline(self.head_pipeline()?);
        pass.dispatch_workgroups(ws.batch as u32, 1, 1);
        pass.set_pipeline(&self.pipes.loss_reduce);
        pass.dispatch_workgroups(1, 1, 1);
        if backward {
            self.gemms(pass, ws, &ws.head_gemms);
        }
        Ok(())
    }

    /// Writes the `Opt` uniform for this workspace and `opt` at optimiser step `step`.
    fn write_opt(&self, ws: &TrainWorkspace, opt: Option<(&Optimizer, Option<f32>)>, step: u64) {
        let o = &ws.offs;
        let groups = (self.layout.total as u32)
            .div_ceil(OPT_WG * 64)
            .clamp(1, MAX_GROUPS);
        let mut u = OptParams {
            n: self.layout.total as u32,
            batch: ws.batch as u32,
            hn_off: (o.hn
                + (self.config.num_layers - 1)
                    * self.config.num_directions()
                    * ws.batch
                    * self.config.hidden_size) as u32,
            dl_off: o.dl as u32,
            pr_off: o.pr as u32,
            lb_off: o.lb as u32,
            wd_off: self.layout.head_w as u32,
            bd_off: self.layout.head_b as u32,
            groups,
            ..OptParams::default()
        };
        if let Some((opt, clip)) = opt {
            match *opt {
                Optimizer::Adam {
                    lr,
                    beta1,
                    beta2,
                    eps,
                    weight_decay,
                } => {
                    u.lr = lr;
                    u.beta1 = beta1;
                    u.beta2 = beta2;
                    u.eps = eps;
                    u.weight_decay = weight_decay;
                    u.bc1 = (1.0 - (beta1 as f64).powi(step as i32)) as f32;
                    u.bc2 = (1.0 - (beta2 as f64).powi(step as i32)) as f32;
                }
                Optimizer::Sgd {
                    lr,
                    momentum,
                    weight_decay,
                } => {
                    u.lr = lr;
                    u.momentum = momentum;
                    u.weight_decay = weight_decay;
                    u.first = u32::from(step == 1);
                }
            }
            if let Some(m) = clip {
                u.clip = 1;
                u.max_norm = m;
            }
        }
        self.ctx
            .queue
            .write_buffer(&ws.uniforms, ws.opt_offset as u64, bytemuck::bytes_of(&u));
    }

    /// Clears dL/dY, dL/dh_n and h0 after a [`backward_in`](Self::backward_in) wrote them.
    fn clean(&self, encoder: &mut wgpu::CommandEncoder, ws: &mut TrainWorkspace) {
        if ws.dirty {
            let o = &ws.offs;
            let slab = (o.hn - o.h0) as u64 * 4;
            encoder.clear_buffer(&ws.work, o.h0 as u64 * 4, Some(slab));
            encoder.clear_buffer(&ws.work, o.gs as u64 * 4, Some(slab));
            encoder.clear_buffer(&ws.work, o.gy as u64 * 4, Some((o.dx[0] - o.gy) as u64 * 4));
            ws.dirty = false;
        }
    }

    /// One training step of a classifier, all on the GPU in one submit: uploads `x` (`[B, T, I]`
    /// when the GRU is batch-first, else `[T, B, I]`) and `labels` `[B]`, runs the forward, the
    /// mean cross-entropy and its backward through the head and the GRU, clips the gradients to
    /// global norm `clip` (when `Some`), applies `opt`, and reads back only the loss and the
    /// count of correct rows (both before the update). Initial state zero, full lengths.
    pub fn train_step(
        &mut self,
        ws: &mut TrainWorkspace,
        x: &[f32],
        labels: &[u32],
        opt: &Optimizer,
        clip: Option<f32>,
    ) -> Result<StepStats> {
        self.check_batch(ws, x, Some(labels))?;
        if let Some(c) = clip
            && !(c.is_finite() && c > 0.0)
        {
            return Err(Error::arg("clip", format!("max norm must be > 0, got {c}")));
        }
        let step = self.step + 1;
        let stats = self.classifier_pass(ws, x, labels, Some((opt, clip)), step)?;
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
        let head = head.ok_or_else(|| Error::arg("trainer", "no head"))?;
        Ok((stats, g, head))
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
        let (mut encoder, scopes) = self.record_forward(
            ws,
            (x, labels),
            (update, step),
            "classifier pass",
            |t, pass, ws| {
                t.encode_head(pass, ws, true)?;
                t.encode_backward(pass, ws, false);
                if let Some((opt, clip)) = update {
                    t.encode_update(pass, ws, opt, clip);
                }
                Ok(())
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
        more: impl FnOnce(&Self, &mut wgpu::ComputePass<'_>, &TrainWorkspace) -> Result<()>,
    ) -> Result<(
        wgpu::CommandEncoder,
        (wgpu::ErrorScopeGuard, wgpu::ErrorScopeGuard),
    )> {
        self.head_pipeline()?;
        self.ctx.check_lost()?;
        let device = &self.ctx.device;
        let scopes = push_scopes(device);
        self.write_x(ws, x);
        self.write_ints(ws, None, labels);
        self.write_opt(ws, update, step);
        let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some(&format!("wgpu-gru train {label}")),
        });
        self.clean(&mut encoder, ws);
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(&format!("wgpu-gru train {label} pass")),
                timestamp_writes: None,
            });
            self.encode_forward(&mut pass, ws);
            more(self, &mut pass, ws)?;
        }
        Ok((encoder, scopes))
    }

    /// Clipping (when `clip` is `Some`) and the optimiser over every parameter.
    fn encode_update(
        &self,
        pass: &mut wgpu::ComputePass<'_>,
        ws: &TrainWorkspace,
        opt: &Optimizer,
        clip: Option<f32>,
    ) {
        pass.set_bind_group(0, &ws.opt_group, &[ws.opt_offset]);
        if clip.is_some() {
            let groups = (self.layout.total as u32)
                .div_ceil(OPT_WG * 64)
                .clamp(1, MAX_GROUPS);
            pass.set_pipeline(&self.pipes.sumsq);
            pass.dispatch_workgroups(groups, 1, 1);
            pass.set_pipeline(&self.pipes.clip_scale);
            pass.dispatch_workgroups(1, 1, 1);
        }
        let groups = (self.layout.total as u32).div_ceil(OPT_WG);
        let max_dim = self
            .ctx
            .device
            .limits()
            .max_compute_workgroups_per_dimension;
        let gx = groups.min(max_dim);
        pass.set_pipeline(match opt {
            Optimizer::Adam { .. } => &self.pipes.adam,
            Optimizer::Sgd { .. } => &self.pipes.sgd,
        });
        pass.dispatch_workgroups(gx, groups.div_ceil(gx), 1);
    }

    /// Class probabilities `[B, C]` for `x` (layout as in [`train_step`](Self::train_step)),
    /// with the current parameters: one upload, one submit, one read-back.
    pub fn predict_proba(&self, ws: &mut TrainWorkspace, x: &[f32]) -> Result<Vec<f32>> {
        self.check_batch(ws, x, None)?;
        let (mut encoder, scopes) =
            self.record_forward(ws, (x, &[]), (None, 0), "predict", |t, pass, ws| {
                t.encode_head(pass, ws, false)
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
