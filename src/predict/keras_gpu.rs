//! A Keras chain on the GPU in one submit: every GRU, bidirectional merge and Dense layer (with
//! its activation) is recorded into one command encoder, each layer reading the previous one's
//! output where it lies on the GPU. Only `x` goes up and the model's output comes back.
//!
//! The plan is data: [`KerasGpu::new`] turns the layers into a list of [`Op`]s once; binding a
//! `(T, B)` turns them into a list of [`Enc`]s over one [`ChainWorkspace`], which every forward
//! of that shape reuses. `Masking` runs on the host before the upload (it only reads `x`), so a
//! chain qualifies when its `Masking`, if any, comes before every GRU and Dense layer.

use futures_intrusive::sync::Mutex;

use super::Array;
use super::keras::check_input;
use crate::error::{Error, Result};
use crate::formats::keras_file::{KerasLayer, KerasModel, MergeMode};
use crate::gpu::io::{pop_scopes, pop_scopes_async, read_back_async};
use crate::gpu::{
    ForwardStats, GpuContext, GpuGru, GpuHead, GpuMerge, Halves, HeadBinding, Merge, MergeBinding,
    Workspace, final_state_offset,
};
use crate::io::{Batch, SeqInput, Steps};

/// One layer of the plan.
#[derive(Debug, Clone, Copy)]
enum Op {
    /// GRU `k` (`grus[k]`); `merge`: index into `merges` for a Bidirectional.
    Gru {
        k: usize,
        sequences: bool,
        merge: Option<usize>,
    },
    /// Dense `k` (`heads[k]`), with its activation.
    Dense { k: usize },
}

/// A buffer of the chain's workspace.
#[derive(Debug, Clone, Copy)]
enum Src {
    /// The uploaded x `[B, T, I]`.
    Input,
    /// GRU k's output `[B, T, D·H]`.
    GruOut(usize),
    /// GRU k's states (h0 then h_n).
    GruStates(usize),
    /// Merge binding i's output.
    Merged(usize),
    /// Head binding i's output.
    Dense(usize),
}

/// Where a layer's input lies: rows of `features` floats, `stride` apart, from float `offset`.
#[derive(Debug, Clone)]
struct Cur {
    src: Src,
    offset: usize,
    stride: usize,
    rows: usize,
    features: usize,
    shape: Vec<usize>,
}

/// One recorded step of a bound plan.
#[derive(Debug, Clone, Copy)]
enum Enc {
    Gru { k: usize, from: Src },
    Merge { i: usize, op: usize },
    Dense { i: usize, op: usize },
}

/// The buffers of one `(T, B)`, and the plan bound to them.
#[derive(Debug)]
struct ChainWorkspace {
    steps: usize,
    batch: usize,
    features: usize,
    x: wgpu::Buffer,
    grus: Vec<Workspace>,
    merges: Vec<MergeBinding>,
    heads: Vec<HeadBinding>,
    encs: Vec<Enc>,
    out: Cur,
    read: wgpu::Buffer,
    /// GRUs that read the mask, and whether they zero masked outputs.
    masked: Vec<(usize, bool)>,
    /// Host scratch: masked x, the mask, its flags.
    x_host: Vec<f32>,
    mask: Vec<bool>,
    flags: Vec<u32>,
}

/// A [`KerasModel`]'s chain uploaded to a GPU.
pub(crate) struct KerasGpu {
    ctx: GpuContext,
    mask_value: Option<f32>,
    ops: Vec<Op>,
    grus: Vec<GpuGru>,
    heads: Vec<GpuHead>,
    merges: Vec<GpuMerge>,
    cached: Mutex<Option<ChainWorkspace>>,
}

impl std::fmt::Debug for KerasGpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KerasGpu")
            .field("ops", &self.ops)
            .field("device", &self.ctx.describe())
            .finish()
    }
}

impl KerasGpu {
    /// Uploads `model`'s layers; `Ok(None)` where the chain does not qualify (a `Masking` after
    /// a GRU or Dense, a merge mode with two outputs), which then runs layer by layer.
    pub(crate) fn new(ctx: &GpuContext, model: &KerasModel) -> Result<Option<KerasGpu>> {
        let mut chain = KerasGpu {
            ctx: ctx.clone(),
            mask_value: None,
            ops: Vec::new(),
            grus: Vec::new(),
            heads: Vec::new(),
            merges: Vec::new(),
            cached: Mutex::new(None, false),
        };
        for layer in &model.layers {
            match layer {
                KerasLayer::Masking { mask_value } => {
                    if !chain.ops.is_empty() || chain.mask_value.is_some() {
                        return Ok(None);
                    }
                    chain.mask_value = Some(*mask_value);
                }
                KerasLayer::Gru {
                    gru,
                    return_sequences,
                    ..
                }
                | KerasLayer::Bidirectional {
                    gru,
                    return_sequences,
                    ..
                } => {
                    let merge = match layer {
                        KerasLayer::Bidirectional { merge_mode, .. } => {
                            let mode = match merge_mode {
                                MergeMode::Concat => Merge::Concat,
                                MergeMode::Sum => Merge::Sum,
                                MergeMode::Ave => Merge::Ave,
                                MergeMode::Mul => Merge::Mul,
                                MergeMode::None => return Ok(None),
                            };
                            chain.merges.push(GpuMerge::new(ctx, mode)?);
                            Some(chain.merges.len() - 1)
                        }
                        _ => None,
                    };
                    chain.grus.push(GpuGru::new(ctx, gru)?);
                    chain.ops.push(Op::Gru {
                        k: chain.grus.len() - 1,
                        sequences: *return_sequences,
                        merge,
                    });
                }
                KerasLayer::Dense {
                    dense, activation, ..
                } => {
                    chain
                        .heads
                        .push(GpuHead::with_activation(ctx, dense, *activation)?);
                    chain.ops.push(Op::Dense {
                        k: chain.heads.len() - 1,
                    });
                }
            }
        }
        Ok(Some(chain))
    }

    fn buffer<'w>(&'w self, ws: &'w ChainWorkspace, src: Src) -> &'w wgpu::Buffer {
        match src {
            Src::Input => &ws.x,
            Src::GruOut(k) => ws.grus[k].output_buffer(),
            Src::GruStates(k) => ws.grus[k].states_buffer(),
            Src::Merged(i) => ws.merges[i].output_buffer(),
            Src::Dense(i) => ws.heads[i].probs_buffer(),
        }
    }

    /// Binds the plan to `(T, B)` with `i` input features: every buffer and bind group.
    fn bind(&self, steps: usize, batch: usize, i: usize) -> Result<ChainWorkspace> {
        let device = &self.ctx.device;
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let oom = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let x_len = batch * steps * i;
        let x = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("wgpu-gru keras chain x"),
            size: (x_len as u64 * 4).max(16),
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        pop_scopes(oom, scope)?;
        let mut ws = ChainWorkspace {
            steps,
            batch,
            features: i,
            x,
            grus: Vec::with_capacity(self.grus.len()),
            merges: Vec::new(),
            heads: Vec::new(),
            encs: Vec::new(),
            out: Cur {
                src: Src::Input,
                offset: 0,
                stride: i,
                rows: batch * steps,
                features: i,
                shape: vec![batch, steps, i],
            },
            read: device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("wgpu-gru keras chain read-back (placeholder)"),
                size: 16,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }),
            masked: Vec::new(),
            x_host: Vec::new(),
            mask: Vec::new(),
            flags: Vec::new(),
        };
        let mut cur = ws.out.clone();
        let mut masked = self.mask_value.is_some();
        for op in &self.ops {
            match *op {
                Op::Gru {
                    k,
                    sequences,
                    merge,
                } => {
                    let gru = &self.grus[k];
                    let c = gru.config();
                    if cur.shape.len() != 3 || cur.offset != 0 || cur.stride != cur.features {
                        return Err(Error::shape(
                            format!("input of GRU layer {k}"),
                            "a sequence [B, T, F] laid out contiguously",
                            crate::formats::shape_str(&cur.shape),
                        ));
                    }
                    let mut gws = gru.workspace(Steps(steps), Batch(batch))?;
                    // Unmasked layers keep full lengths and a zero h0 for every forward.
                    gru.write_mask(&mut gws, None, false)?;
                    if masked {
                        ws.masked.push((k, merge.is_some() && sequences));
                    }
                    ws.grus.push(gws);
                    ws.encs.push(Enc::Gru { k, from: cur.src });
                    let (h, d) = (c.hidden_size, c.num_directions());
                    let halves = if sequences {
                        cur = Cur {
                            src: Src::GruOut(k),
                            offset: 0,
                            stride: d * h,
                            rows: batch * steps,
                            features: d * h,
                            shape: vec![batch, steps, d * h],
                        };
                        Halves::sequence(batch * steps, h)
                    } else {
                        masked = false;
                        cur = Cur {
                            src: Src::GruStates(k),
                            offset: final_state_offset(c, batch),
                            stride: h,
                            rows: batch,
                            features: h,
                            shape: vec![batch, h],
                        };
                        Halves::state(final_state_offset(c, batch), batch, h)
                    };
                    // A concatenated sequence is already [B, T, 2H]: nothing to merge.
                    if let Some(m) = merge
                        && !(sequences && self.merges[m].mode() == Merge::Concat)
                    {
                        let buffer = self.buffer(&ws, cur.src);
                        let binding = self.merges[m].bind(buffer, halves)?;
                        let width = binding.width();
                        ws.merges.push(binding);
                        ws.encs.push(Enc::Merge {
                            i: ws.merges.len() - 1,
                            op: m,
                        });
                        let mut shape = cur.shape.clone();
                        if let Some(last) = shape.last_mut() {
                            *last = width;
                        }
                        cur = Cur {
                            src: Src::Merged(ws.merges.len() - 1),
                            offset: 0,
                            stride: width,
                            rows: cur.rows,
                            features: width,
                            shape,
                        };
                    }
                }
                Op::Dense { k } => {
                    let head = &self.heads[k];
                    if cur.shape.len() < 2 || cur.features != head.in_features() {
                        return Err(Error::shape(
                            format!("input of Dense layer {k}"),
                            format!("[.., {}]", head.in_features()),
                            crate::formats::shape_str(&cur.shape),
                        ));
                    }
                    let buffer = self.buffer(&ws, cur.src);
                    let binding = head.bind(buffer, cur.offset, cur.stride, cur.rows)?;
                    ws.heads.push(binding);
                    ws.encs.push(Enc::Dense {
                        i: ws.heads.len() - 1,
                        op: k,
                    });
                    let mut shape = cur.shape.clone();
                    if let Some(last) = shape.last_mut() {
                        *last = head.classes();
                    }
                    cur = Cur {
                        src: Src::Dense(ws.heads.len() - 1),
                        offset: 0,
                        stride: head.classes(),
                        rows: cur.rows,
                        features: head.classes(),
                        shape,
                    };
                }
            }
        }
        if cur.stride != cur.features {
            return Err(Error::Unsupported(
                "a chain whose output is not contiguous on the GPU".into(),
            ));
        }
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let oom = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        ws.read = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("wgpu-gru keras chain read-back"),
            size: (cur.rows as u64 * cur.features as u64 * 4).max(16),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        pop_scopes(oom, scope)?;
        ws.out = cur;
        Ok(ws)
    }

    /// `model.predict(x)` for `x` `[B, T, I]`: one upload, one submit, one read-back.
    pub(crate) async fn predict(
        &self,
        model: &KerasModel,
        x: &Array,
    ) -> Result<(Array, ForwardStats)> {
        let (b, t, i) = check_input(model, x)?;
        if b == 0 || t == 0 {
            // Nothing to run; the layer-by-layer path gives the empty shapes.
            return Err(Error::arg(
                "x",
                format!("a GPU forward needs B ≥ 1 and T ≥ 1, got B={b}, T={t}"),
            ));
        }
        self.ctx.check_lost()?;
        let mut guard = self.cached.lock().await;
        if guard
            .as_ref()
            .is_none_or(|w| w.steps != t || w.batch != b || w.features != i)
        {
            // Drop the old buffers before allocating the new ones.
            *guard = None;
            let mut ws = self.bind(t, b, i)?;
            if self.mask_value.is_some() {
                ws.x_host = vec![0.0; x.data.len()];
                ws.mask = Vec::with_capacity(b * t);
                ws.flags = Vec::with_capacity(b * t);
            }
            *guard = Some(ws);
        }
        let ws = guard
            .as_mut()
            .ok_or_else(|| Error::Gpu("no keras chain workspace".into()))?;
        let device = &self.ctx.device;
        let queue = &self.ctx.queue;
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let oom = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let upload = match self.mask_value {
            None => &x.data[..],
            Some(mv) => {
                // Keras's Masking: a step is kept when any feature differs from mask_value, and
                // masked steps are zeroed.
                ws.x_host.copy_from_slice(&x.data);
                ws.mask.clear();
                for step in ws.x_host.chunks_exact_mut(i.max(1)) {
                    let keep = step.iter().any(|&v| v != mv);
                    if !keep {
                        step.fill(0.0);
                    }
                    ws.mask.push(keep);
                }
                let input = SeqInput::new(&ws.x_host, Steps(t), Batch(b)).with_mask(&ws.mask);
                input.fill_mask_flags(&mut ws.flags);
                for &(k, zero_output) in &ws.masked {
                    self.grus[k].write_mask(&mut ws.grus[k], Some(&ws.flags), zero_output)?;
                }
                &ws.x_host[..]
            }
        };
        queue.write_buffer(&ws.x, 0, bytemuck::cast_slice(upload));
        let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("wgpu-gru keras chain forward"),
        });
        let mut stats = ForwardStats::default();
        for enc in &ws.encs {
            match *enc {
                Enc::Gru { k, from } => {
                    let s = self.grus[k].encode_from_buffer(
                        &mut encoder,
                        &ws.grus[k],
                        self.buffer(ws, from),
                    )?;
                    stats.dispatches += s.dispatches;
                    stats.algorithm = s.algorithm;
                    stats.rows_per_workgroup = s.rows_per_workgroup;
                    stats.subgroups |= s.subgroups;
                }
                Enc::Merge { i, op } => {
                    stats.dispatches += self.merges[op].encode(&mut encoder, &ws.merges[i]);
                }
                Enc::Dense { i, op } => {
                    stats.dispatches += self.heads[op].encode(&mut encoder, &ws.heads[i]);
                }
            }
        }
        let n = ws.out.rows * ws.out.features;
        encoder.copy_buffer_to_buffer(
            self.buffer(ws, ws.out.src),
            ws.out.offset as u64 * 4,
            &ws.read,
            0,
            n as u64 * 4,
        );
        let index = self.ctx.submit([encoder.finish()]);
        stats.submits = 1;
        let mut data = vec![0.0f32; n];
        // Scopes close on this thread, before the wait (a future may move between threads).
        pop_scopes_async(oom, scope).await?;
        read_back_async(&self.ctx, index, &mut [(&ws.read, &mut data[..])]).await?;
        self.ctx.check_lost()?;
        Ok((Array::new(ws.out.shape.clone(), data)?, stats))
    }
}
