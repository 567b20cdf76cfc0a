//! [`GpuGru`]: uploaded weights, `encode` (the primitive) and a blocking `forward`.

use super::context::GpuContext;
use super::io::{pop_scopes, read_back_async};
use super::kernels::{self, Kernels};
use super::workspace::Workspace;
use crate::config::{GruConfig, Variant};
use crate::error::{Error, Result};
use crate::io::{GruOutput, SeqInput};
use crate::weights::Gru;
use std::sync::atomic::AtomicU64;

/// Ids of the models built so far.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);
use wgpu::util::DeviceExt;

/// How the recurrence is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Algorithm {
    /// Chosen per forward from H, B and the adapter ([`GpuGru::choose`]).
    #[default]
    Auto,
    /// One dispatch per timestep (reset-after) or two (reset-before), all in one compute pass.
    PerStep,
    /// One dispatch for all T steps: a workgroup owns a slice of the batch (needs H ≤ 1024).
    Sequence,
    /// One dispatch for all T steps with W_hh held in registers: a workgroup owns one batch row
    /// (needs H ≤ 160 and up to 1024 invocations per workgroup).
    SequenceRegisters,
    /// Like [`PerStep`](Self::PerStep) (same dispatches), with the GEMM-tiled step kernels of
    /// `gru.wgsl::tiled_*`: a workgroup owns 16–64 batch rows × 16 hidden units, so W_hh is read
    /// once per tile of rows instead of once per 4 rows. For larger batches.
    Tiled,
}

/// Tuning options of [`GpuGru::with_options`]: `GpuOptions::default()` and its `with_*`
/// builders (more options may come, so the struct cannot be written out field by field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct GpuOptions {
    /// The recurrence algorithm (default [`Algorithm::Auto`]).
    pub algorithm: Algorithm,
    /// K-columns of W_hh each invocation of the register-resident sequence kernel holds per gate:
    /// 8, 16 or 32 (default 32). Fewer columns mean more invocations per workgroup and fewer
    /// registers each.
    pub register_columns: u32,
    /// Use the subgroup-reduction kernels of `gru_subgroup.wgsl` where the device has
    /// `Features::SUBGROUP` (default `true`); `false` always runs the portable kernels.
    pub subgroups: bool,
    /// Hidden units per workgroup of the subgroup step kernels, 1 to 256; 0 (default) sizes it
    /// for the adapter's smallest subgroup (256 invocations / its size), so each subgroup owns one
    /// unit. With more units than subgroups, each subgroup takes several in turn.
    pub subgroup_units: u32,
}

impl Default for GpuOptions {
    fn default() -> Self {
        GpuOptions {
            algorithm: Algorithm::Auto,
            register_columns: kernels::REGS_DEFAULT_COLUMNS,
            subgroups: true,
            subgroup_units: 0,
        }
    }
}

impl GpuOptions {
    /// Sets [`GpuOptions::algorithm`].
    pub fn with_algorithm(mut self, algorithm: Algorithm) -> Self {
        self.algorithm = algorithm;
        self
    }
    /// Sets [`GpuOptions::register_columns`].
    pub fn with_register_columns(mut self, columns: u32) -> Self {
        self.register_columns = columns;
        self
    }
    /// Sets [`GpuOptions::subgroups`].
    pub fn with_subgroups(mut self, subgroups: bool) -> Self {
        self.subgroups = subgroups;
        self
    }
    /// Sets [`GpuOptions::subgroup_units`].
    pub fn with_subgroup_units(mut self, units: u32) -> Self {
        self.subgroup_units = units;
        self
    }
}

/// What one recorded forward costs, so the structure can be checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ForwardStats {
    /// Compute dispatches recorded.
    pub dispatches: u32,
    /// Queue submits (0 from [`GpuGru::encode`], which only records).
    pub submits: u32,
    /// The algorithm that ran ([`Algorithm::PerStep`] or [`Algorithm::Sequence`]).
    pub algorithm: Algorithm,
    /// Batch rows per workgroup of the sequence kernel or tile of the tiled kernels (0 for
    /// per-step).
    pub rows_per_workgroup: u32,
    /// Whether the recurrence ran a subgroup-reduction kernel (`gru_subgroup.wgsl`).
    pub subgroups: bool,
}

pub(crate) struct LayerBuffers {
    pub w_ih: wgpu::Buffer,
    pub b_ih: wgpu::Buffer,
    pub u: wgpu::Buffer,
    pub bhh_off: u32,
    pub ut_off: u32,
}

/// A GRU uploaded to a GPU. Built once from a [`Gru`]; runs any `(T, B)`.
///
/// `GpuGru` is `Send + Sync`; concurrent [`forward`](GpuGru::forward)s on one instance are
/// serialised on its internal workspace.
pub struct GpuGru {
    /// Tells this model's workspaces from other models' (see [`GpuGru::encode`]).
    pub(crate) id: u64,
    pub(crate) ctx: GpuContext,
    config: GruConfig,
    pub(crate) layers: Vec<LayerBuffers>,
    pub(crate) kernels: Kernels,
    algorithm: Algorithm,
    /// The workspace of the last forward's shape, behind an async lock: concurrent forwards on
    /// one model take turns without blocking their executor.
    workspace: futures_intrusive::sync::Mutex<Option<Workspace>>,
}

impl std::fmt::Debug for GpuGru {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuGru")
            .field("config", &self.config)
            .field("device", &self.ctx.describe())
            .finish()
    }
}

impl GpuGru {
    /// Uploads `gru` to `ctx`'s device and builds its pipelines.
    pub fn new(ctx: &GpuContext, gru: &Gru) -> Result<Self> {
        Self::with_options(ctx, gru, GpuOptions::default())
    }

    /// [`new`](Self::new) with tuning options.
    pub fn with_options(ctx: &GpuContext, gru: &Gru, options: GpuOptions) -> Result<Self> {
        gru.validate()?;
        if options.subgroup_units > kernels::SG_STEP_INVOCATIONS {
            return Err(Error::arg(
                "subgroup_units",
                format!(
                    "{} is more than {}",
                    options.subgroup_units,
                    kernels::SG_STEP_INVOCATIONS
                ),
            ));
        }
        if ![8, 16, 32].contains(&options.register_columns) {
            return Err(Error::arg(
                "register_columns",
                format!("{} is not 8, 16 or 32", options.register_columns),
            ));
        }
        // wgpu panics in buffer creation on a lost device; refuse first.
        ctx.refresh_lost()?;
        let c = gru.config.clone();
        // Each direction's pair specialises its own override constants of one pipeline.
        let acts = [c.activations_for(0), c.activations_for(1)];
        let device = &ctx.device;
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let oom = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let h = c.hidden_size;
        let hp = h.next_multiple_of(4);
        let d = c.num_directions();
        let max_bind = device.limits().max_storage_buffer_binding_size;
        let mut layers = Vec::with_capacity(c.num_layers);
        for (l, dirs) in gru.weights.layers.iter().enumerate() {
            let in_w = c.layer_input_size(l);
            let mut w_ih = Vec::with_capacity(d * 3 * h * in_w);
            let mut b_ih = Vec::with_capacity(d * 3 * h);
            for cell in dirs {
                w_ih.extend_from_slice(&cell.w_ih);
                b_ih.extend_from_slice(&cell.b_ih);
            }
            // `u`: W_hh padded to HP columns, [D, 3H, HP]; then b_hh [D, 3H] padded to a vec4;
            // then W_hhᵀ as vec4 (r, z, n, 0) per (k, j), [D, H, H].
            let u_rows = d * 3 * h * hp;
            let bhh_len = (d * 3 * h).next_multiple_of(4);
            let total = u_rows + bhh_len + d * h * h * 4;
            if (total as u64) * 4 > max_bind || (w_ih.len() as u64) * 4 > max_bind {
                return Err(Error::DeviceLimit {
                    what: format!("layer {l} weights binding (bytes)"),
                    needed: (total.max(w_ih.len()) as u64) * 4,
                    limit: max_bind,
                });
            }
            let mut u = vec![0.0f32; total];
            for (di, cell) in dirs.iter().enumerate() {
                for row in 0..3 * h {
                    let dst = (di * 3 * h + row) * hp;
                    u[dst..dst + h].copy_from_slice(&cell.w_hh[row * h..(row + 1) * h]);
                    u[u_rows + di * 3 * h + row] = cell.b_hh[row];
                }
                let ut = u_rows + bhh_len + di * h * h * 4;
                for k in 0..h {
                    for j in 0..h {
                        for g in 0..3 {
                            u[ut + (k * h + j) * 4 + g] = cell.w_hh[(g * h + j) * h + k];
                        }
                    }
                }
            }
            let init = |label: String, data: &[f32]| {
                device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some(&label),
                    contents: bytemuck::cast_slice(data),
                    usage: wgpu::BufferUsages::STORAGE,
                })
            };
            layers.push(LayerBuffers {
                w_ih: init(format!("wgpu-gru W_ih l{l}"), &w_ih),
                b_ih: init(format!("wgpu-gru b_ih l{l}"), &b_ih),
                u: init(format!("wgpu-gru W_hh l{l}"), &u),
                bhh_off: u_rows as u32,
                ut_off: ((u_rows + bhh_len) / 4) as u32,
            });
        }
        let kernels = Kernels::new(device, h as u32, c.variant, acts, c.clip, &options);
        pop_scopes(oom, scope)?;
        ctx.check_lost()?;
        Ok(GpuGru {
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            ctx: ctx.clone(),
            config: c,
            layers,
            kernels,
            algorithm: options.algorithm,
            workspace: futures_intrusive::sync::Mutex::new(None, false),
        })
    }

    /// Forces an algorithm instead of [`Algorithm::Auto`]. `Sequence` falls back to `PerStep`
    /// where H is too large for it.
    pub fn with_algorithm(mut self, algorithm: Algorithm) -> Self {
        self.algorithm = algorithm;
        self
    }

    /// The model's configuration.
    pub fn config(&self) -> &GruConfig {
        &self.config
    }

    /// The context this layer runs on.
    pub fn context(&self) -> &GpuContext {
        &self.ctx
    }

    /// Buffers for forwards of shape `(steps, batch)`; reuse it for every forward of that shape.
    pub fn workspace(&self, steps: usize, batch: usize) -> Result<Workspace> {
        if steps == 0 || batch == 0 {
            return Err(Error::arg(
                "shape",
                format!("a workspace needs T ≥ 1 and B ≥ 1, got T={steps}, B={batch}"),
            ));
        }
        self.ctx.refresh_lost()?;
        let device = &self.ctx.device;
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let oom = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let ws = Workspace::new(self, steps, batch);
        pop_scopes(oom, scope)?;
        ws
    }

    /// The algorithm and sequence-kernel rows per workgroup `choose` picks for batch `batch`.
    ///
    /// A sequence kernel wins wherever dispatches are expensive relative to a step's work: always
    /// on software adapters (a dependent dispatch costs ~50 µs on lavapipe), and on real GPUs
    /// wherever W_hh fits in registers (H ≤ 160; measured on an H100, see BENCHMARKS.md).
    /// Elsewhere one dispatch per step.
    pub fn choose(&self, batch: usize) -> (Algorithm, u32) {
        let seq_ok = !self.kernels.sequence.is_empty();
        let cpu = self.kernels.software;
        let regs_ok = self.kernels.sequence_regs.is_some()
            || self
                .kernels
                .subgroup
                .as_ref()
                .is_some_and(|k| k.sequence_regs.is_some());
        // Measured on lavapipe (2 cores, BENCHMARKS.md): the register kernel beats the batch-slice
        // kernel wherever it runs, by 2.7–4× at B ≤ 2 and more at larger batches.
        let algo = match self.algorithm {
            Algorithm::Auto if regs_ok => Algorithm::SequenceRegisters,
            Algorithm::Auto if cpu && seq_ok => Algorithm::Sequence,
            Algorithm::Sequence if seq_ok => Algorithm::Sequence,
            Algorithm::SequenceRegisters if regs_ok => Algorithm::SequenceRegisters,
            Algorithm::Tiled => Algorithm::Tiled,
            _ => Algorithm::PerStep,
        };
        // `Auto` never picks the tiled kernels: on the H100 they lost to the per-step kernel at
        // every measured shape (B = 1…64, H = 64…1024; BENCHMARKS.md), and on lavapipe at medium.
        if algo == Algorithm::Tiled {
            return (algo, self.tiled_rows(batch, cpu));
        }
        match algo {
            Algorithm::PerStep => return (algo, 0),
            Algorithm::SequenceRegisters => return (algo, 1),
            _ => {}
        }
        // Enough workgroups to fill the device, as few rows each as that allows.
        let parallel = if cpu { 4 } else { 64 };
        let want = (batch as u32).div_ceil(parallel).max(1);
        let rows = self
            .kernels
            .sequence
            .iter()
            .map(|k| k.rows)
            .filter(|&bs| bs <= want.next_power_of_two())
            .max()
            .unwrap_or(1);
        (algo, rows)
    }

    /// Dispatches of layer `l`'s input projection: 1, or one per K-chunk on software adapters.
    fn proj_chunks(&self, l: usize) -> u32 {
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

    /// Tile rows of the tiled kernels for `batch`: the largest tile (fewest W_hh reads) that does
    /// not leave half a tile empty and still gives [`kernels::TILED_FILL_WORKGROUPS`] workgroups
    /// per step on a real GPU.
    fn tiled_rows(&self, batch: usize, cpu: bool) -> u32 {
        let c = &self.config;
        let (b, h) = (batch as u32, c.hidden_size as u32);
        let d = c.num_directions() as u32;
        let fill = if cpu {
            0
        } else {
            kernels::TILED_FILL_WORKGROUPS
        };
        let mut rows = kernels::TILED_ROWS[kernels::TILED_ROWS.len() - 1];
        while rows > kernels::TILED_ROWS[0] {
            let groups = h.div_ceil(kernels::TILED_UNITS) * b.div_ceil(rows) * d;
            if b > rows / 2 && groups >= fill {
                break;
            }
            rows /= 2;
        }
        rows
    }

    /// Writes one forward's inputs into `ws`: `x`, `h0` (zeros when `None`) and lengths.
    pub fn write_input(&self, ws: &mut Workspace, input: &SeqInput<'_>) -> Result<()> {
        self.check_owner(ws)?;
        input.validate(&self.config)?;
        if input.steps != ws.steps || input.batch != ws.batch {
            return Err(Error::shape(
                "input (T, B) vs workspace",
                format!("({}, {})", ws.steps, ws.batch),
                format!("({}, {})", input.steps, input.batch),
            ));
        }
        self.ctx
            .queue
            .write_buffer(&ws.x, 0, bytemuck::cast_slice(input.x));
        let flags = input.mask_flags();
        let mask = flags.as_deref().map(|f| (f, input.zero_output_for_mask));
        self.write_state_inner(ws, input.h0, input.lengths, mask, false)
    }

    /// Records a whole forward into `encoder`: for each layer, the input projection and the
    /// recurrence, in one compute pass. Reads what [`write_input`](Self::write_input) wrote; the
    /// output stays in [`Workspace::output_buffer`] and h_n in [`Workspace::states_buffer`].
    /// Refuses a workspace that another model made (its buffers fit that model's shapes).
    pub fn encode(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        ws: &Workspace,
    ) -> Result<ForwardStats> {
        self.check_owner(ws)?;
        Ok(self.encode_inner(encoder, ws, None))
    }

    /// Records, after [`encode`](Self::encode), copies of the output and h_n into `ws`'s
    /// read-back buffers, for [`read_output_async`](Self::read_output_async).
    pub fn encode_read_back(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        ws: &Workspace,
    ) -> Result<()> {
        self.check_owner(ws)?;
        let c = &self.config;
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
        let c = &self.config;
        let mut output = vec![0.0f32; ws.steps * ws.batch * c.output_size()];
        let mut h_n = vec![0.0f32; c.num_layers * c.num_directions() * ws.batch * c.hidden_size];
        read_back_async(
            &self.ctx,
            submission,
            &mut [(&ws.read_y, &mut output[..]), (&ws.read_h, &mut h_n[..])],
        )
        .await?;
        Ok(GruOutput { output, h_n })
    }

    /// Refuses a workspace made by another [`GpuGru`].
    pub(crate) fn check_owner(&self, ws: &Workspace) -> Result<()> {
        if ws.owner != self.id {
            return Err(Error::arg(
                "workspace",
                format!(
                    "made by another model (#{}), not this one (#{}); make one with this model's workspace()",
                    ws.owner, self.id
                ),
            ));
        }
        Ok(())
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
        let c = &self.config;
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
        let w_ih = &self.layers[0].w_ih;
        if !matches!(&*cache, Some((bx, bw, _)) if bx == x && bw == w_ih) {
            *cache = None;
        }
        let make = || {
            self.ctx
                .device
                .create_bind_group(&wgpu::BindGroupDescriptor {
                    label: Some("wgpu-gru proj group l0 (app input)"),
                    layout: &self.kernels.proj_layout,
                    entries: &[
                        wgpu::BindGroupEntry {
                            binding: 0,
                            resource: ws.proj0_params.as_entire_binding(),
                        },
                        wgpu::BindGroupEntry {
                            binding: 1,
                            resource: x.as_entire_binding(),
                        },
                        wgpu::BindGroupEntry {
                            binding: 2,
                            resource: self.layers[0].w_ih.as_entire_binding(),
                        },
                        wgpu::BindGroupEntry {
                            binding: 3,
                            resource: self.layers[0].b_ih.as_entire_binding(),
                        },
                        wgpu::BindGroupEntry {
                            binding: 4,
                            resource: ws.xp.as_entire_binding(),
                        },
                        wgpu::BindGroupEntry {
                            binding: 5,
                            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                                buffer: &ws.step_uniform,
                                offset: 0,
                                size: wgpu::BufferSize::new(16),
                            }),
                        },
                    ],
                })
        };
        let (_, _, group) = cache.get_or_insert_with(|| (x.clone(), w_ih.clone(), make()));
        Ok(self.encode_inner(encoder, ws, Some(group)))
    }

    /// Sets the lengths (`None`: all T) and marks h0 as zero for the next encode, without
    /// touching x: for inputs that already live on the GPU.
    pub fn write_state(
        &self,
        ws: &mut Workspace,
        h0: Option<&[f32]>,
        lengths: Option<&[usize]>,
    ) -> Result<()> {
        self.check_owner(ws)?;
        self.write_state_inner(ws, h0, lengths, None, false)
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
        let c = &self.config;
        let h0_len = c.num_layers * c.num_directions() * ws.batch * c.hidden_size;
        if let Some(h0) = h0 {
            if h0.len() != h0_len {
                return Err(Error::shape("h0", h0_len, h0.len()));
            }
            self.ctx
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
        self.ctx
            .queue
            .write_buffer(&ws.lens, 0, bytemuck::cast_slice(&ws.lens_host[..words]));
        Ok(())
    }

    fn encode_inner(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        ws: &Workspace,
        proj0: Option<&wgpu::BindGroup>,
    ) -> ForwardStats {
        let c = &self.config;
        let (t, b, h) = (ws.steps as u32, ws.batch as u32, c.hidden_size as u32);
        let d = c.num_directions() as u32;
        let (algo, rows) = self.choose(ws.batch);
        if let Some(bytes) = ws.zero_h0 {
            encoder.clear_buffer(&ws.states, 0, Some(bytes));
        }
        let mut stats = ForwardStats {
            algorithm: algo,
            rows_per_workgroup: rows,
            ..Default::default()
        };
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("wgpu-gru forward"),
            timestamp_writes: None,
        });
        let (n, m) = (3 * d * h, t * b);
        let (proj, tile) = (&self.kernels.proj, kernels::PROJ_TILE);
        for l in 0..c.num_layers {
            pass.set_pipeline(proj);
            let group = match (l, proj0) {
                (0, Some(g)) => g,
                _ => &ws.proj_groups[l],
            };
            for i in 0..self.proj_chunks(l) {
                pass.set_bind_group(0, group, &[i * ws.step_stride]);
                pass.dispatch_workgroups(n.div_ceil(tile), m.div_ceil(tile), 1);
                stats.dispatches += 1;
            }
            let sg = self.kernels.subgroup.as_ref();
            if algo == Algorithm::SequenceRegisters {
                let sg_regs = sg.and_then(|k| k.sequence_regs.as_ref());
                stats.subgroups = sg_regs.is_some();
                if let Some(k) = sg_regs.or(self.kernels.sequence_regs.as_ref()) {
                    stats.dispatches += encode_sequence(&mut pass, k, &ws.gru_groups[l], ws, b, d);
                }
                continue;
            }
            if algo == Algorithm::Sequence {
                if let Some(k) = self.kernels.sequence.iter().find(|k| k.rows == rows) {
                    stats.dispatches += encode_sequence(&mut pass, k, &ws.gru_groups[l], ws, b, d);
                }
                continue;
            }
            if algo == Algorithm::Tiled {
                // As PerStep: 1 dispatch per step (reset-after), 2 (reset-before).
                let tiled: &[&Vec<(u32, wgpu::ComputePipeline)>] = match c.variant {
                    Variant::ResetAfter => &[&self.kernels.tiled_fused],
                    Variant::ResetBefore => {
                        &[&self.kernels.tiled_gates, &self.kernels.tiled_candidate]
                    }
                };
                let grid = (h.div_ceil(kernels::TILED_UNITS), b.div_ceil(rows), d);
                for s in 0..t {
                    for by_rows in tiled {
                        if let Some((_, p)) = by_rows.iter().find(|(r, _)| *r == rows) {
                            pass.set_pipeline(p);
                            pass.set_bind_group(0, &ws.gru_groups[l], &[s * ws.step_stride]);
                            pass.dispatch_workgroups(grid.0, grid.1, grid.2);
                            stats.dispatches += 1;
                        }
                    }
                }
                continue;
            }
            let (units, steps): (u32, [&Option<wgpu::ComputePipeline>; 2]) = match (sg, c.variant) {
                (Some(k), Variant::ResetAfter) => (k.units, [&k.step_fused, &None]),
                (Some(k), Variant::ResetBefore) => (k.units, [&k.step_gates, &k.step_candidate]),
                (None, Variant::ResetAfter) => {
                    (kernels::STEP_UNITS, [&self.kernels.step_fused, &None])
                }
                (None, Variant::ResetBefore) => (
                    kernels::STEP_UNITS,
                    [&self.kernels.step_gates, &self.kernels.step_candidate],
                ),
            };
            stats.subgroups = sg.is_some();
            let grid = (h.div_ceil(units), b.div_ceil(kernels::STEP_ROWS), d);
            for s in 0..t {
                for p in steps.iter().filter_map(|p| p.as_ref()) {
                    pass.set_pipeline(p);
                    pass.set_bind_group(0, &ws.gru_groups[l], &[s * ws.step_stride]);
                    pass.dispatch_workgroups(grid.0, grid.1, grid.2);
                    stats.dispatches += 1;
                }
            }
        }
        stats
    }

    /// Encodes, submits and waits for one forward on inputs already in `ws`, reading nothing back:
    /// the GPU-resident timing that matches a framework's forward on device tensors.
    pub fn submit_and_wait(&self, ws: &Workspace) -> Result<ForwardStats> {
        let device = &self.ctx.device;
        let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("wgpu-gru forward (resident)"),
        });
        let mut stats = self.encode(&mut encoder, ws)?;
        let index = self.ctx.queue.submit([encoder.finish()]);
        stats.submits = 1;
        if let Err(e) = device.poll(wgpu::PollType::Wait {
            submission_index: Some(index),
            timeout: None,
        }) {
            // A lost device refuses the wait: say that it is lost.
            self.ctx.refresh_lost()?;
            return Err(Error::Gpu(format!("poll: {e}")));
        }
        self.ctx.check_lost()?;
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
        input.validate(&self.config)?;
        let c = &self.config;
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

        match Workspace::check(self, input.steps, input.batch) {
            Ok(()) => {
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
    async fn forward_single(
        &self,
        x: &[f32],
        steps: usize,
        batch: usize,
        h0: Option<&[f32]>,
        lengths: Option<&[usize]>,
        mask: Option<(&[u32], bool)>,
    ) -> Result<(GruOutput, ForwardStats)> {
        self.ctx.check_lost()?;
        let mut guard = self.workspace.lock().await;
        if guard
            .as_ref()
            .is_none_or(|w| w.steps != steps || w.batch != batch)
        {
            *guard = None;
            *guard = Some(self.workspace(steps, batch)?);
        }
        let ws = guard
            .as_mut()
            .ok_or_else(|| Error::Gpu("no workspace".into()))?;
        let device = &self.ctx.device;
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let oom = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        self.ctx
            .queue
            .write_buffer(&ws.x, 0, bytemuck::cast_slice(x));
        self.write_state_inner(ws, h0, lengths, mask, true)?;
        let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("wgpu-gru forward"),
        });
        let mut stats = self.encode(&mut encoder, ws)?;
        self.encode_read_back(&mut encoder, ws)?;
        let index = self.ctx.queue.submit([encoder.finish()]);
        stats.submits = 1;
        // Scopes close on this thread, before the wait (a future may move between threads).
        pop_scopes(oom, scope)?;
        let out = self.read_output_async(ws, index).await?;
        Ok((out, stats))
    }

    /// A forward too large for one workspace: split over the batch, and where one row is still
    /// too large, over time (forward-running models only), carrying h_n into the next chunk's h0.
    /// Each chunk is one submit.
    async fn forward_chunked(
        &self,
        input: &SeqInput<'_>,
        limit: Error,
    ) -> Result<(GruOutput, ForwardStats)> {
        let c = &self.config;
        let (t, b) = (input.steps, input.batch);
        let fits = |steps, batch| Workspace::check(self, steps, batch).is_ok();
        let mut bc = b;
        while bc > 1 && !fits(t, bc) {
            bc = bc.div_ceil(2);
        }
        let mut tc = t;
        if !fits(t, bc) {
            if c.direction != crate::Direction::Forward || c.go_backwards {
                return Err(limit);
            }
            while tc > 1 && !fits(tc, 1) {
                tc = tc.div_ceil(2);
            }
            if !fits(tc, 1) {
                return Err(limit);
            }
        }
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

/// Records a sequence kernel over all of `ws`'s steps: one dispatch, or one per `k.steps` steps
/// (each starting at its step's dynamic offset). Returns the dispatches recorded.
fn encode_sequence(
    pass: &mut wgpu::ComputePass<'_>,
    k: &kernels::SeqKernel,
    group: &wgpu::BindGroup,
    ws: &Workspace,
    batch: u32,
    dirs: u32,
) -> u32 {
    let t = ws.steps as u32;
    let per = if k.steps == 0 { t } else { k.steps };
    pass.set_pipeline(&k.pipeline);
    let mut n = 0;
    for first in (0..t).step_by(per.max(1) as usize) {
        pass.set_bind_group(0, group, &[first * ws.step_stride]);
        pass.dispatch_workgroups(batch.div_ceil(k.rows), 1, dirs);
        n += 1;
    }
    n
}

impl crate::Forward for GpuGru {
    fn config(&self) -> &GruConfig {
        &self.config
    }
    fn forward(&self, input: &SeqInput<'_>) -> Result<GruOutput> {
        GpuGru::forward(self, input)
    }
}
