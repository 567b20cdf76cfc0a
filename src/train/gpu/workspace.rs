//! [`TrainWorkspace`]: the buffers, uniform blocks, GEMM calls and bind groups of one `(T, B)` of
//! one trainer, laid out once when it is made, and the uploads of a pass into it.

use wgpu::util::DeviceExt;

use super::layout::ParamLayout;
use super::pipelines::REC_BINDINGS;
use super::trainer::GpuTrainer;
use super::{K_CHUNK, push_scopes, u32_of, whole};
use crate::config::{GruConfig, Variant};
use crate::error::{Error, Result};
use crate::gpu::io::pop_scopes;
use crate::gpu::wgsl::{GEMM_TILE, GemmParams, OptParams, StepParams, TRAIN_WG, TrainLayerParams};

/// Offsets (floats) of everything in a workspace's `work` buffer (the layout table of
/// `shaders/gru_backward.wgsl`).
#[derive(Debug, Clone, Default)]
pub(super) struct WorkOffsets {
    pub ones: usize,
    pub x0: usize,
    pub y: Vec<usize>,
    pub xp: Vec<usize>,
    pub hp: Vec<usize>,
    pub gt: Vec<usize>,
    pub hs: usize,
    pub h0: usize,
    pub hn: usize,
    pub gs: usize,
    pub dh0: usize,
    pub gy: usize,
    pub dx: [usize; 2],
    pub da: usize,
    pub dh: usize,
    pub pt: usize,
    pub wt: usize,
    pub dl: usize,
    pub pr: usize,
    pub lb: usize,
    pub total: usize,
}

impl WorkOffsets {
    /// The layout for `t` steps of `b` rows of `c`, with a head of `classes`.
    fn new(c: &GruConfig, t: usize, b: usize, classes: usize) -> WorkOffsets {
        let tb = t * b;
        let h = c.hidden_size;
        let (l_n, d_n) = (c.num_layers, c.num_directions());
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
        o
    }

    /// dL/dY of layer `l`: the upstream gradient at the top, else the layer above's dL/dX.
    fn dy(&self, l: usize, layers: usize) -> usize {
        if l + 1 == layers {
            self.gy
        } else {
            self.dx[(l + 1) % 2]
        }
    }

    /// X of layer `l`: the input, else the layer below's output.
    fn x(&self, l: usize) -> usize {
        if l == 0 { self.x0 } else { self.y[l - 1] }
    }
}

/// One GEMM dispatch: its uniform block and grid.
#[derive(Debug, Clone, Copy)]
pub(super) struct GemmCall {
    pub offset: u32,
    pub grid: (u32, u32),
    /// `colsum` instead of `gemm`.
    pub colsum: bool,
}

/// Buffers and bind groups for training or backward passes of one shape `(T, B)` of one
/// [`GpuTrainer`]. Make it once with [`GpuTrainer::workspace`] and reuse it: a repeated step of
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

/// The uniform blocks of a workspace, each at a multiple of the device's offset alignment.
struct Blocks {
    bytes: Vec<u8>,
    align: usize,
    /// The device's workgroups per dimension.
    max_dim: usize,
}

impl Blocks {
    /// Appends `block`; returns its offset.
    fn push<T: bytemuck::Pod>(&mut self, block: &T) -> Result<u32> {
        let off = self.bytes.len().div_ceil(self.align) * self.align;
        self.bytes.resize(off, 0);
        self.bytes.extend_from_slice(bytemuck::bytes_of(block));
        u32_of(off, "uniform offset")
    }

    /// The dispatches of one GEMM (`colsum`: a column sum, B unused) over `k` rows, split into
    /// K-chunks of [`K_CHUNK`] rows, their blocks appended.
    fn gemm_calls(&mut self, u: GemmParams, k: usize, colsum: bool) -> Result<Vec<GemmCall>> {
        let k = u32_of(k, "GEMM K")?;
        let grid = if colsum {
            (u.m.div_ceil(TRAIN_WG).max(1), 1)
        } else {
            (
                u.n.div_ceil(GEMM_TILE).max(1),
                u.m.div_ceil(GEMM_TILE).max(1),
            )
        };
        if grid.0 as usize > self.max_dim || grid.1 as usize > self.max_dim {
            return Err(Error::DeviceLimit {
                what: "GEMM workgroups per dimension".into(),
                needed: grid.0.max(grid.1) as u64,
                limit: self.max_dim as u64,
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
                offset: self.push(&block)?,
                grid,
                colsum,
            });
            k0 = k1;
        }
        Ok(calls)
    }

    fn gemm(&mut self, u: GemmParams, k: usize) -> Result<Vec<GemmCall>> {
        self.gemm_calls(u, k, false)
    }

    fn colsum(&mut self, u: GemmParams, k: usize) -> Result<Vec<GemmCall>> {
        self.gemm_calls(u, k, true)
    }
}

fn off(v: usize) -> Result<u32> {
    u32_of(v, "workspace offset")
}

/// What the blocks of one workspace are laid out from.
struct Shape<'a> {
    c: &'a GruConfig,
    layout: &'a ParamLayout,
    o: &'a WorkOffsets,
    t: usize,
    b: usize,
    classes: usize,
}

impl Shape<'_> {
    /// One `Step` block per step.
    fn step_blocks(&self, ub: &mut Blocks) -> Result<Vec<u32>> {
        (0..self.t)
            .map(|s| {
                ub.push(&StepParams {
                    s: u32_of(s, "step")?,
                    ..Default::default()
                })
            })
            .collect()
    }

    /// One `TrainLayer` block per layer.
    fn layer_blocks(&self, ub: &mut Blocks) -> Result<Vec<u32>> {
        let (c, o, t, b) = (self.c, self.o, self.t, self.b);
        let (h, l_n, d_n) = (c.hidden_size, c.num_layers, c.num_directions());
        let rev_mask = (0..d_n)
            .filter(|&d| c.direction.is_reverse(d))
            .fold(0u32, |m, d| m | (1 << d));
        (0..l_n)
            .map(|l| {
                let cells = &self.layout.cells[l];
                let slab = l * d_n * b * h;
                ub.push(&TrainLayerParams {
                    steps: off(t)?,
                    batch: off(b)?,
                    dirs: d_n as u32,
                    in_w: off(c.layer_input_size(l))?,
                    rev_mask,
                    go_back: u32::from(c.go_backwards),
                    x_off: off(o.x(l))?,
                    y_off: off(o.y[l])?,
                    xp_off: off(o.xp[l])?,
                    hp_off: off(o.hp[l])?,
                    gt_off: off(o.gt[l])?,
                    hs_off: off(o.hs)?,
                    h0_off: off(o.h0 + slab)?,
                    hn_off: off(o.hn + slab)?,
                    p0: off(cells[0])?,
                    p1: off(*cells.last().unwrap_or(&cells[0]))?,
                    dy_off: off(o.dy(l, l_n))?,
                    da_off: off(o.da)?,
                    dh_off: off(o.dh)?,
                    pt_off: off(o.pt)?,
                    gs_off: off(o.gs + slab)?,
                    dh0_off: off(o.dh0 + slab)?,
                    wt_off: off(o.wt + l * d_n * h * 3 * h)?,
                    ..Default::default()
                })
            })
            .collect()
    }

    /// The GEMMs of cell `(l, d)`: its input projection (into `fwd`, XP `[T, B, D, 3H]` as the
    /// forward's), its weight and bias
    /// gradients (into `bwd`), and its input gradient (into `bwd`, or `dx0` for layer 0).
    fn cell_gemms(
        &self,
        ub: &mut Blocks,
        (l, d): (usize, usize),
        fwd: &mut Vec<GemmCall>,
        bwd: &mut Vec<GemmCall>,
        dx0: &mut Vec<GemmCall>,
    ) -> Result<()> {
        let (c, o) = (self.c, self.o);
        let u = |v: usize| u32_of(v, "GEMM operand offset");
        let h = c.hidden_size;
        let tb = self.t * self.b;
        let (h32, tb32) = (u(h)?, u(tb)?);
        let in_w = c.layer_input_size(l);
        let iw = u(in_w)?;
        let [w_ih, w_hh, b_ih, b_hh] = self.layout.cell(c, l, d);
        // XP_d = X_l · W_ihᵀ.
        fwd.extend(ub.gemm(
            GemmParams {
                m: tb32,
                n: 3 * h32,
                a_off: u(o.x(l))?,
                a_sm: iw,
                a_sk: 1,
                b_off: u(w_ih)?,
                b_sk: 1,
                b_sn: iw,
                b_buf: 1,
                c_off: u(o.xp[l] + d * 3 * h)?,
                c_sm: u(c.num_directions() * 3 * h)?,
                c_sn: 1,
                ..GemmParams::default()
            },
            in_w,
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
        // dW_ih = DA[:, 0:3H]ᵀ · X_l.
        bwd.extend(ub.gemm(
            GemmParams {
                n: iw,
                b_off: u(o.x(l))?,
                b_sk: iw,
                b_sn: 1,
                c_off: u(w_ih)?,
                c_sm: iw,
                c_sn: 1,
                ..da_t(0, 3 * h)?
            },
            tb,
        )?);
        // dW_hh rows r, z = DA[:, 0:2H]ᵀ · HP.
        let hp = o.hp[l] + d * tb * h;
        bwd.extend(ub.gemm(
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
        )?);
        // dW_hh rows n = DA[:, 3H:4H]ᵀ · (HP, or r⊙h from the tape for reset-before).
        let (n_src, n_stride) = match c.variant {
            Variant::ResetAfter => (hp, h),
            Variant::ResetBefore => (o.gt[l] + d * tb * 4 * h + 3 * h, 4 * h),
        };
        bwd.extend(ub.gemm(
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
        )?);
        // Bias gradients: column sums (B = ones).
        let ones = GemmParams {
            n: 1,
            b_off: u(o.ones)?,
            b_sk: 0,
            b_sn: 0,
            c_sm: 1,
            c_sn: 0,
            ..GemmParams::default()
        };
        for (c0, rows, dst) in [(0, 3 * h, b_ih), (0, 2 * h, b_hh), (3 * h, h, b_hh + 2 * h)] {
            let a = da_t(c0, rows)?;
            bwd.extend(ub.colsum(
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
            )?);
        }
        // dX_l (+)= DA[:, 0:3H] · W_ih.
        let dx = ub.gemm(
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
        )?;
        if l == 0 {
            dx0.extend(dx);
        } else {
            bwd.extend(dx);
        }
        Ok(())
    }

    /// The head's: dW_d = DLᵀ · h_last, db_d = Σ_b DL, dh_last = DL · W_d (into dL/dh_n).
    fn head_gemms(&self, ub: &mut Blocks) -> Result<Vec<GemmCall>> {
        let mut calls = Vec::new();
        if self.classes == 0 {
            return Ok(calls);
        }
        let (c, o, b) = (self.c, self.o, self.b);
        let u = |v: usize| u32_of(v, "GEMM operand offset");
        let h = c.hidden_size;
        let (c32, h32) = (u(self.classes)?, u(h)?);
        let last = (c.num_layers - 1) * c.num_directions() * b * h;
        calls.extend(ub.gemm(
            GemmParams {
                m: c32,
                n: h32,
                a_off: u(o.dl)?,
                a_sm: 1,
                a_sk: c32,
                b_off: u(o.hn + last)?,
                b_sk: h32,
                b_sn: 1,
                c_off: u(self.layout.head_w)?,
                c_sm: h32,
                c_sn: 1,
                c_buf: 1,
                ..GemmParams::default()
            },
            b,
        )?);
        calls.extend(ub.colsum(
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
        )?);
        calls.extend(ub.gemm(
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
                c_off: u(o.gs + last)?,
                c_sm: h32,
                c_sn: 1,
                ..GemmParams::default()
            },
            self.classes,
        )?);
        Ok(calls)
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

/// The uniform buffer's bytes: `ub` padded so that the last block's binding fits.
fn finish_uniforms(ub: Blocks, limits: &wgpu::Limits) -> Result<Vec<u8>> {
    let mut bytes = ub.bytes;
    let len = bytes.len().div_ceil(ub.align) * ub.align + ub.align;
    bytes.resize(len, 0);
    if bytes.len() as u64 > limits.max_buffer_size {
        return Err(Error::DeviceLimit {
            what: "training uniforms (bytes)".into(),
            needed: bytes.len() as u64,
            limit: limits.max_buffer_size,
        });
    }
    Ok(bytes)
}

/// The three bind groups of a workspace over `trainer`'s buffers and its own.
struct Groups {
    rec: wgpu::BindGroup,
    gemm: wgpu::BindGroup,
    opt: wgpu::BindGroup,
}

impl Groups {
    fn new(
        t: &GpuTrainer,
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
                whole(params, &t.params),
                whole(wk, work),
            ],
        });
        let gemm = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("wgpu-gru train gemm group"),
            layout: &t.pipes.gemm_layout,
            entries: &[
                ubind(0, size_of::<GemmParams>()),
                whole(1, &t.params),
                whole(2, &t.grads),
                whole(3, work),
            ],
        });
        let opt = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("wgpu-gru train step group"),
            layout: &t.pipes.opt_layout,
            entries: &[
                ubind(0, size_of::<OptParams>()),
                whole(1, &t.params),
                whole(2, &t.grads),
                whole(3, &t.m1),
                whole(4, &t.m2),
                whole(5, &t.scratch),
                whole(6, work),
                whole(7, ints),
            ],
        });
        Groups { rec, gemm, opt }
    }
}

impl TrainWorkspace {
    /// The workspace of `trainer` for passes of `steps` × `batch` (see
    /// [`GpuTrainer::workspace`]).
    pub(super) fn new(trainer: &GpuTrainer, steps: usize, batch: usize) -> Result<TrainWorkspace> {
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

        let shape = Shape {
            c,
            layout: &trainer.layout,
            o: &o,
            t,
            b,
            classes: trainer.classes,
        };
        let mut ub = Blocks {
            bytes: Vec::new(),
            align: limits.min_uniform_buffer_offset_alignment.max(16) as usize,
            max_dim: limits.max_compute_workgroups_per_dimension as usize,
        };
        let step_offsets = shape.step_blocks(&mut ub)?;
        let layer_offsets = shape.layer_blocks(&mut ub)?;
        let mut fwd_gemms = Vec::with_capacity(c.num_layers);
        let mut bwd_gemms = Vec::with_capacity(c.num_layers);
        let mut dx0_gemms = Vec::new();
        for l in 0..c.num_layers {
            let (mut f, mut bw) = (Vec::new(), Vec::new());
            for d in 0..c.num_directions() {
                shape.cell_gemms(&mut ub, (l, d), &mut f, &mut bw, &mut dx0_gemms)?;
            }
            fwd_gemms.push(f);
            bwd_gemms.push(bw);
        }
        let head_gemms = shape.head_gemms(&mut ub)?;
        let opt_offset = ub.push(&OptParams::default())?;
        let ub = finish_uniforms(ub, &limits)?;

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
            contents: &ub,
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
