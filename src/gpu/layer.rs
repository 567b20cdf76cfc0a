//! [`GpuGru`]: every method of it. Uploaded weights (`pack.rs`), per shape a plan (`plan/mod.rs`)
//! and the workspace for it (`workspace.rs`), `encode` (the primitive: a loop over the plan), and
//! the blocking and async forwards on top, which split what does not fit one workspace.

use super::context::GpuContext;
use super::io::{pop_scopes, pop_scopes_async, read_back_async};
use super::options::{Algorithm, ForwardStats, GpuOptions};
use super::pack::Model;
use super::plan::{self, Group};
use super::workspace::{Workspace, proj_group};
use crate::config::GruConfig;
use crate::error::{Error, Result};
use crate::io::{Batch, Steps};
use crate::io::{GruOutput, SeqInput};
use crate::weights::Gru;

/// A GRU uploaded to a GPU. Built once from a [`Gru`]; runs any `(T, B)`.
///
/// `GpuGru` is `Send + Sync`; concurrent [`forward`](GpuGru::forward)s on one instance are
/// serialised on its internal workspace.
pub struct GpuGru {
    /// The device, the configuration, the packed weights and the pipelines.
    pub(crate) model: Model,
    /// The workspace of the last forward's shape, behind an async lock: concurrent forwards on
    /// one model take turns without blocking their executor.
    pub(crate) workspace: futures_intrusive::sync::Mutex<Option<Workspace>>,
}

impl std::fmt::Debug for GpuGru {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuGru")
            .field("config", &self.model.config)
            .field("device", &self.model.ctx.describe())
            .finish()
    }
}

impl GpuGru {
    /// Uploads `gru` to `ctx`'s device and builds its pipelines.
    pub fn new(ctx: &GpuContext, gru: &Gru) -> Result<Self> {
        Self::with_options(ctx, gru, GpuOptions::default())
    }

    /// [`new`](Self::new) with tuning options.
    ///
    /// Builds no pipeline: each workspace's plan builds those it dispatches on first use, and
    /// the context caches them for every model of the same specialisation. A forced
    /// [`Algorithm`] that cannot run this model on this adapter is [`Error::Unsupported`].
    pub fn with_options(ctx: &GpuContext, gru: &Gru, options: GpuOptions) -> Result<Self> {
        let model = Model::upload(ctx, gru, &options)?;
        if options.algorithm != Algorithm::Auto {
            plan::choose(&model, 1)?;
        }
        Ok(GpuGru {
            model,
            workspace: futures_intrusive::sync::Mutex::new(None, false),
        })
    }

    /// The model's configuration.
    pub fn config(&self) -> &GruConfig {
        &self.model.config
    }

    /// The context this layer runs on.
    pub fn context(&self) -> &GpuContext {
        &self.model.ctx
    }

    /// Buffers for forwards of shape `(steps, batch)`; reuse it for every forward of that shape.
    pub fn workspace(&self, steps: Steps, batch: Batch) -> Result<Workspace> {
        let (steps, batch) = (steps.0, batch.0);
        if steps == 0 || batch == 0 {
            return Err(Error::arg(
                "shape",
                format!("a workspace needs T ≥ 1 and B ≥ 1, got T={steps}, B={batch}"),
            ));
        }
        self.model.ctx.refresh_lost()?;
        let device = &self.model.ctx.device;
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let oom = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let ws =
            plan::Plan::new(&self.model, steps, batch).and_then(|p| Workspace::new(&self.model, p));
        pop_scopes(oom, scope)?;
        ws
    }

    /// Writes one forward's inputs into `ws`: `x`, `h0` (zeros when `None`) and lengths.
    pub fn write_input(&self, ws: &mut Workspace, input: &SeqInput<'_>) -> Result<()> {
        self.check_owner(ws)?;
        input.validate(&self.model.config)?;
        if input.steps != ws.steps || input.batch != ws.batch {
            return Err(Error::shape(
                "input (T, B) vs workspace",
                format!("({}, {})", ws.steps, ws.batch),
                format!("({}, {})", input.steps, input.batch),
            ));
        }
        self.model
            .ctx
            .queue
            .write_buffer(&ws.x, 0, bytemuck::cast_slice(input.x));
        let flags = input.mask_flags();
        let mask = flags.as_deref().map(|f| (f, input.zero_output_for_mask));
        self.write_state_inner(ws, input.h0, input.lengths, mask, false)
    }

    /// Records a whole forward into `encoder`: for each layer, the input projection and the
    /// recurrence, in one compute pass. Reads what [`write_input`](Self::write_input) wrote; the
    /// output stays in [`Workspace::output_buffer`] and h_n in [`Workspace::states_buffer`].
    /// Refuses a workspace that another model made (its buffers fit that model's shapes), or one
    /// A workspace nothing was written to runs x = 0, every length T and h0 = 0.
    pub fn encode(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        ws: &Workspace,
    ) -> Result<ForwardStats> {
        self.check_owner(ws)?;
        Ok(self.encode_inner(encoder, ws, None))
    }

    /// Like [`encode`](Self::encode), but layer 0 reads its input from `x`, a buffer the app owns
    /// (usage `STORAGE`), laid out as the config says: `[T, B, I]` f32, or `[B, T, I]` when
    /// batch-first. Lengths and h0 still come from [`write_input`](Self::write_input) (or
    /// [`write_state`](Self::write_state)); nothing is copied. The bind group over `x` is made on
    /// the first call and reused while later calls pass the same buffer (the workspace holds a
    /// handle to it until then).
    pub fn encode_from_buffer(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        ws: &Workspace,
        x: &wgpu::Buffer,
    ) -> Result<ForwardStats> {
        self.check_owner(ws)?;
        let c = &self.model.config;
        let need = (ws.steps * ws.batch * c.input_size * 4) as u64;
        if x.size() < need {
            return Err(Error::shape("input buffer (bytes)", need, x.size()));
        }
        if !x.usage().contains(wgpu::BufferUsages::STORAGE) {
            return Err(Error::arg("input buffer", "needs BufferUsages::STORAGE"));
        }
        // One bind group per app buffer, reused while the app passes the same one.
        let mut cache = ws
            .app_input
            .lock()
            .map_err(|_| Error::Gpu("workspace input cache poisoned".into()))?;
        let w_ih = &self.model.layers[0].w_ih;
        if !matches!(&*cache, Some((bx, bw, _)) if bx == x && bw == w_ih) {
            *cache = None;
        }
        let make = || {
            proj_group(
                &self.model,
                "wgpu-gru proj group l0 (app input)",
                [&ws.proj0_params, x, &ws.xp, &ws.step_uniform],
                0,
            )
        };
        let (_, _, group) = cache.get_or_insert_with(|| (x.clone(), w_ih.clone(), make()));
        Ok(self.encode_inner(encoder, ws, Some(group)))
    }

    /// Records `ws`'s plan: the h0 and grid clears, then every dispatch in one compute pass.
    /// `proj0` replaces layer 0's projection bind group (an app's input buffer).
    fn encode_inner(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        ws: &Workspace,
        proj0: Option<&wgpu::BindGroup>,
    ) -> ForwardStats {
        if let Some(bytes) = ws.zero_h0 {
            encoder.clear_buffer(&ws.states, 0, Some(bytes));
        }
        if ws.plan.grid_steps.is_some() {
            encoder.clear_buffer(&ws.sync, 0, None);
        }
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("wgpu-gru forward"),
            timestamp_writes: None,
        });
        let mut current: Option<&wgpu::ComputePipeline> = None;
        for d in &ws.plan.dispatches {
            if current.is_none_or(|p| !std::ptr::eq(p, &*d.pipeline)) {
                pass.set_pipeline(&d.pipeline);
                current = Some(&d.pipeline);
            }
            let group = match (d.group, proj0) {
                (Group::Proj(0), Some(g)) => g,
                (Group::Proj(l), _) => &ws.proj_groups[l],
                (Group::Gru(l), _) => &ws.gru_groups[l],
            };
            pass.set_bind_group(0, group, &[d.offset]);
            let [x, y, z] = d.workgroups;
            pass.dispatch_workgroups(x, y, z);
        }
        ws.plan.stats()
    }

    /// The algorithm and rows per workgroup (sequence kernel) or tile (tiled kernels) a forward
    /// of `batch` rows runs ([`Algorithm`]; `plan::choose`). A forced algorithm that
    /// cannot run is [`Error::Unsupported`].
    pub fn choose(&self, batch: usize) -> Result<(Algorithm, u32)> {
        let c = plan::choose(&self.model, batch)?;
        Ok((c.algorithm, c.rows))
    }

    /// Records, after [`encode`](Self::encode), copies of the output and h_n into `ws`'s
    /// read-back buffers, for [`read_output_async`](Self::read_output_async).
    pub fn encode_read_back(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        ws: &Workspace,
    ) -> Result<()> {
        self.check_owner(ws)?;
        let c = &self.model.config;
        let y_bytes = (ws.steps * ws.batch * c.output_size()) as u64 * 4;
        let h_bytes = (c.num_layers * c.num_directions() * ws.batch * c.hidden_size) as u64 * 4;
        encoder.copy_buffer_to_buffer(ws.output_buffer(), 0, &ws.read_y, 0, y_bytes);
        encoder.copy_buffer_to_buffer(&ws.states, h_bytes, &ws.read_h, 0, h_bytes);
        Ok(())
    }

    /// The output `[T, B, D·H]` (`[B, T, D·H]` batch-first) and h_n `[L·D, B, H]` that
    /// [`encode_read_back`](Self::encode_read_back) copied in the submission `submission`, once
    /// that submission has finished: a future that waits for it alone, not the whole queue, and
    /// blocks no executor thread (see [`forward_async`](Self::forward_async)).
    pub async fn read_output_async(
        &self,
        ws: &Workspace,
        submission: wgpu::SubmissionIndex,
    ) -> Result<GruOutput> {
        self.check_owner(ws)?;
        let c = &self.model.config;
        let mut output = vec![0.0f32; ws.steps * ws.batch * c.output_size()];
        let mut h_n = vec![0.0f32; c.num_layers * c.num_directions() * ws.batch * c.hidden_size];
        read_back_async(
            &self.model.ctx,
            submission,
            &mut [(&ws.read_y, &mut output[..]), (&ws.read_h, &mut h_n[..])],
        )
        .await?;
        Ok(GruOutput { output, h_n })
    }

    /// The grid kernel's `sync` words after the last forward recorded into `ws`, for tests and
    /// diagnosis: per layer, the steps done, then `[arrivals, failed]` per chunk and attempt
    /// (see `grid.wgsl`). Waits for everything submitted before.
    #[doc(hidden)]
    pub fn grid_sync(&self, ws: &Workspace) -> Result<Vec<u32>> {
        self.check_owner(ws)?;
        let ctx = &self.model.ctx;
        let read = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("wgpu-gru grid sync read-back"),
            size: ws.sync.size(),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("wgpu-gru grid sync read-back"),
            });
        encoder.copy_buffer_to_buffer(&ws.sync, 0, &read, 0, ws.sync.size());
        let index = ctx.submit([encoder.finish()]);
        let mut words = vec![0.0f32; (ws.sync.size() / 4) as usize];
        super::io::read_back(ctx, index, &mut [(&read, &mut words[..])])?;
        Ok(words.into_iter().map(f32::to_bits).collect())
    }

    /// Refuses a workspace made by another [`GpuGru`].
    pub(crate) fn check_owner(&self, ws: &Workspace) -> Result<()> {
        if ws.owner != self.model.id {
            return Err(Error::arg(
                "workspace",
                format!(
                    "made by another model (#{}), not this one (#{}); make one with this model's workspace()",
                    ws.owner, self.model.id
                ),
            ));
        }
        Ok(())
    }

    /// Writes h0 `[L·D, B, H]` (`None`: zeros) and the lengths `[B]` (`None`: all T) for the
    /// next encode, without touching x: for inputs that already live on the GPU.
    pub fn write_state(
        &self,
        ws: &mut Workspace,
        h0: Option<&[f32]>,
        lengths: Option<&[usize]>,
    ) -> Result<()> {
        self.check_owner(ws)?;
        self.write_state_inner(ws, h0, lengths, None, false)
    }

    /// Sets Keras mask flags `[B, T]` (`SeqInput::mask_flags`; `None`: no mask), full lengths
    /// and a zero h0 for the next encode, without touching x: for a layer that reads another
    /// layer's output on the GPU.
    pub(crate) fn write_mask(
        &self,
        ws: &mut Workspace,
        flags: Option<&[u32]>,
        zero_output_for_mask: bool,
    ) -> Result<()> {
        self.check_owner(ws)?;
        self.write_state_inner(
            ws,
            None,
            None,
            flags.map(|f| (f, zero_output_for_mask)),
            false,
        )
    }

    /// `mask`: Keras mask flags `[B, T]` (`SeqInput::mask_flags`) and `zero_output_for_mask`.
    /// `allow_zero`: a time chunk of a longer sequence may hold none of a row's steps.
    fn write_state_inner(
        &self,
        ws: &mut Workspace,
        h0: Option<&[f32]>,
        lengths: Option<&[usize]>,
        mask: Option<(&[u32], bool)>,
        allow_zero: bool,
    ) -> Result<()> {
        let c = &self.model.config;
        let h0_len = c.num_layers * c.num_directions() * ws.batch * c.hidden_size;
        if let Some(h0) = h0 {
            if h0.len() != h0_len {
                return Err(Error::shape("h0", h0_len, h0.len()));
            }
            self.model
                .ctx
                .queue
                .write_buffer(&ws.states, 0, bytemuck::cast_slice(h0));
        }
        ws.zero_h0 = h0.is_none().then_some(h0_len as u64 * 4);
        if let Some(l) = lengths {
            if l.len() != ws.batch {
                return Err(Error::shape("lengths", ws.batch, l.len()));
            }
            if let Some((i, &v)) = l
                .iter()
                .enumerate()
                .find(|&(_, &v)| (v == 0 && !allow_zero) || v > ws.steps)
            {
                return Err(Error::arg(
                    "lengths",
                    format!("lengths[{i}] = {v} is outside 1..={}", ws.steps),
                ));
            }
        }
        let b = ws.batch;
        for (i, v) in ws.lens_host[..b].iter_mut().enumerate() {
            *v = lengths.map_or(ws.steps, |l| l[i]) as u32;
        }
        let words = match mask {
            Some((flags, zero_output)) => {
                if flags.len() != b * ws.steps {
                    return Err(Error::shape("mask", b * ws.steps, flags.len()));
                }
                ws.lens_host[b] = if zero_output { 2 } else { 1 };
                ws.lens_host[b + 1..b + 1 + flags.len()].copy_from_slice(flags);
                b + 1 + flags.len()
            }
            None => {
                ws.lens_host[b] = 0;
                b + 1
            }
        };
        self.model.ctx.queue.write_buffer(
            &ws.lens,
            0,
            bytemuck::cast_slice(&ws.lens_host[..words]),
        );
        Ok(())
    }

    /// Encodes, submits and waits for one forward on inputs already in `ws`, reading nothing back:
    /// the GPU-resident timing that matches a framework's forward on device tensors.
    pub fn submit_and_wait(&self, ws: &Workspace) -> Result<ForwardStats> {
        let device = &self.model.ctx.device;
        let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("wgpu-gru forward (resident)"),
        });
        let mut stats = self.encode(&mut encoder, ws)?;
        let index = self.model.ctx.submit([encoder.finish()]);
        stats.submits = 1;
        if let Err(e) = self.model.ctx.poll(wgpu::PollType::Wait {
            submission_index: Some(index),
            timeout: None,
        }) {
            // A lost device refuses the wait: say that it is lost.
            self.model.ctx.refresh_lost()?;
            return Err(Error::Gpu(format!("poll: {e}")));
        }
        self.model.ctx.check_lost()?;
        Ok(stats)
    }

    /// Runs one forward and reads the results back (blocking): one submit.
    ///
    /// Shapes are those of [`SeqInput`] and [`GruOutput`]. `T = 0` or `B = 0` give empty results
    /// without touching the GPU. The workspace is kept and reused while `(T, B)` stays the same.
    pub fn forward(&self, input: &SeqInput<'_>) -> Result<GruOutput> {
        self.forward_with_stats(input).map(|(o, _)| o)
    }

    /// [`forward`](Self::forward), also returning what it dispatched and submitted.
    pub fn forward_with_stats(&self, input: &SeqInput<'_>) -> Result<(GruOutput, ForwardStats)> {
        pollster::block_on(self.forward_with_stats_async(input))
    }

    /// [`forward`](Self::forward) as a future: it waits for its own submission without blocking
    /// a thread of the executor (natively it waits in slices of at most a millisecond, yielding
    /// between them; on the web the browser completes it). Several may run at once on one model
    /// or one device; each gets the results it would get alone. `forward` is
    /// `pollster::block_on` of this.
    pub async fn forward_async(&self, input: &SeqInput<'_>) -> Result<GruOutput> {
        self.forward_with_stats_async(input).await.map(|(o, _)| o)
    }

    /// [`forward_with_stats`](Self::forward_with_stats) as a future (see
    /// [`forward_async`](Self::forward_async)).
    pub async fn forward_with_stats_async(
        &self,
        input: &SeqInput<'_>,
    ) -> Result<(GruOutput, ForwardStats)> {
        input.validate(&self.model.config)?;
        let c = &self.model.config;
        let out_len = input.steps * input.batch * c.output_size();
        let hn_len = c.num_layers * c.num_directions() * input.batch * c.hidden_size;
        if input.steps == 0 || input.batch == 0 {
            // No step runs: the final state is the initial one, as on every other path.
            let h_n = input.h0.map_or_else(|| vec![0.0; hn_len], <[f32]>::to_vec);
            return Ok((
                GruOutput {
                    output: vec![0.0; out_len],
                    h_n,
                },
                ForwardStats::default(),
            ));
        }

        match plan::fits(&self.model, input.steps, input.batch) {
            Ok(_) => {
                let flags = input.mask_flags();
                let mask = flags.as_deref().map(|f| (f, input.zero_output_for_mask));
                self.forward_single(
                    input.x,
                    input.steps,
                    input.batch,
                    input.h0,
                    input.lengths,
                    mask,
                )
                .await
            }
            Err(e @ (Error::DeviceLimit { .. } | Error::Overflow(_))) => {
                self.forward_chunked(input, e).await
            }
            Err(e) => Err(e),
        }
    }

    /// One forward of a shape that fits the device; inputs already validated.
    pub(crate) async fn forward_single(
        &self,
        x: &[f32],
        steps: usize,
        batch: usize,
        h0: Option<&[f32]>,
        lengths: Option<&[usize]>,
        mask: Option<(&[u32], bool)>,
    ) -> Result<(GruOutput, ForwardStats)> {
        self.model.ctx.check_lost()?;
        let mut guard = self.workspace.lock().await;
        if guard
            .as_ref()
            .is_none_or(|w| w.steps != steps || w.batch != batch)
        {
            *guard = None;
            *guard = Some(self.workspace(Steps(steps), Batch(batch))?);
        }
        let ws = guard
            .as_mut()
            .ok_or_else(|| Error::Gpu("no workspace".into()))?;
        let device = &self.model.ctx.device;
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let oom = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        self.model
            .ctx
            .queue
            .write_buffer(&ws.x, 0, bytemuck::cast_slice(x));
        self.write_state_inner(ws, h0, lengths, mask, true)?;
        let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("wgpu-gru forward"),
        });
        let mut stats = self.encode(&mut encoder, ws)?;
        self.encode_read_back(&mut encoder, ws)?;
        let index = self.model.ctx.submit([encoder.finish()]);
        stats.submits = 1;
        // Scopes close on this thread, before the wait (a future may move between threads).
        pop_scopes_async(oom, scope).await?;
        let out = self.read_output_async(ws, index).await?;
        Ok((out, stats))
    }

    /// A forward too large for one workspace: split over the batch, and where one row is still
    /// too large, over time (forward-running models only), carrying h_n into the next chunk's h0.
    /// Each chunk is one submit.
    pub(crate) async fn forward_chunked(
        &self,
        input: &SeqInput<'_>,
        limit: Error,
    ) -> Result<(GruOutput, ForwardStats)> {
        let c = &self.model.config;
        let (t, b) = (input.steps, input.batch);
        let (bc, tc) = plan::chunking(&self.model, t, b, limit)?;
        let (i_w, o_w, h) = (c.input_size, c.output_size(), c.hidden_size);
        let slots = c.num_layers * c.num_directions();
        let mut output = vec![0.0f32; t * b * o_w];
        let mut h_n = vec![0.0f32; slots * b * h];
        let mut stats = ForwardStats::default();
        let flags = input.mask_flags();
        for b0 in (0..b).step_by(bc) {
            let nb = bc.min(b - b0);
            let rows = |v: &[f32], w: usize| -> Vec<f32> {
                (0..slots)
                    .flat_map(|s| v[(s * b + b0) * w..(s * b + b0 + nb) * w].iter().copied())
                    .collect()
            };
            let mut carry: Option<Vec<f32>> = input.h0.map(|h0| rows(h0, h));
            for t0 in (0..t).step_by(tc) {
                let nt = tc.min(t - t0);
                // x chunk in the config's layout: [nt, nb, I] or [nb, nt, I].
                let mut xc = Vec::with_capacity(nt * nb * i_w);
                let at = |tt: usize, bb: usize| {
                    if c.batch_first {
                        bb * t + tt
                    } else {
                        tt * b + bb
                    }
                };
                if c.batch_first {
                    for bb in b0..b0 + nb {
                        for tt in t0..t0 + nt {
                            xc.extend_from_slice(
                                &input.x[at(tt, bb) * i_w..(at(tt, bb) + 1) * i_w],
                            );
                        }
                    }
                } else {
                    for tt in t0..t0 + nt {
                        for bb in b0..b0 + nb {
                            xc.extend_from_slice(
                                &input.x[at(tt, bb) * i_w..(at(tt, bb) + 1) * i_w],
                            );
                        }
                    }
                }
                let lens: Option<Vec<usize>> = input.lengths.map(|l| {
                    l[b0..b0 + nb]
                        .iter()
                        .map(|&len| len.saturating_sub(t0).min(nt))
                        .collect()
                });
                // The flags carry whole-sequence facts (a valid step before or after), so a
                // chunk's slice of them is exact.
                let chunk_flags: Option<Vec<u32>> = flags.as_ref().map(|f| {
                    (b0..b0 + nb)
                        .flat_map(|bb| f[bb * t + t0..bb * t + t0 + nt].iter().copied())
                        .collect()
                });
                let mask = chunk_flags
                    .as_deref()
                    .map(|f| (f, input.zero_output_for_mask));
                let (out, st) = self
                    .forward_single(&xc, nt, nb, carry.as_deref(), lens.as_deref(), mask)
                    .await?;
                stats.dispatches += st.dispatches;
                stats.submits += st.submits;
                stats.algorithm = st.algorithm;
                stats.rows_per_workgroup = st.rows_per_workgroup;
                for tt in 0..nt {
                    for bb in 0..nb {
                        let src = if c.batch_first {
                            bb * nt + tt
                        } else {
                            tt * nb + bb
                        };
                        let dst = at(t0 + tt, b0 + bb);
                        output[dst * o_w..(dst + 1) * o_w]
                            .copy_from_slice(&out.output[src * o_w..(src + 1) * o_w]);
                    }
                }
                carry = Some(out.h_n);
            }
            if let Some(hc) = carry {
                for s in 0..slots {
                    h_n[(s * b + b0) * h..(s * b + b0 + nb) * h]
                        .copy_from_slice(&hc[s * nb * h..(s + 1) * nb * h]);
                }
            }
        }
        Ok((GruOutput { output, h_n }, stats))
    }
}

impl crate::Forward for GpuGru {
    fn config(&self) -> &GruConfig {
        &self.model.config
    }
    fn forward(&self, input: &SeqInput<'_>) -> Result<GruOutput> {
        GpuGru::forward(self, input)
    }
}
