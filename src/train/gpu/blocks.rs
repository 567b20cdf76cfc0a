//! The uniform blocks and GEMM calls of a workspace, laid out once when it is made: one `Step`
//! block per step, one `TrainLayer` block per layer, the K-chunked GEMMs of every cell and of
//! the head, and the optimiser's block, in one uniform buffer read at dynamic offsets.

use super::layout::{ParamLayout, WorkOffsets};
use super::{K_CHUNK, u32_of};
use crate::config::{GruConfig, Variant};
use crate::error::{Error, Result};
use crate::gpu::wgsl::{GEMM_TILE, GemmParams, OptParams, StepParams, TRAIN_WG, TrainLayerParams};

/// One GEMM dispatch: its uniform block and grid.
#[derive(Debug, Clone, Copy)]
pub(super) struct GemmCall {
    pub offset: u32,
    pub grid: (u32, u32),
    /// `colsum` instead of `gemm`.
    pub colsum: bool,
}

/// Every block of a workspace: the uniform buffer's bytes and where each dispatch's block is.
pub(super) struct Calls {
    pub uniforms: Vec<u8>,
    pub step_offsets: Vec<u32>,
    pub layer_offsets: Vec<u32>,
    /// `[L]`: the input projections of each layer.
    pub fwd_gemms: Vec<Vec<GemmCall>>,
    /// `[L]`: the weight gradients of each layer, and dL/dX of the layers above 0.
    pub bwd_gemms: Vec<Vec<GemmCall>>,
    /// dL/dX of layer 0 (only when the input gradient is wanted).
    pub dx0_gemms: Vec<GemmCall>,
    pub head_gemms: Vec<GemmCall>,
    pub opt_offset: u32,
}

impl Calls {
    /// The blocks of `shape` on a device of `limits`.
    pub fn new(shape: &Shape<'_>, limits: &wgpu::Limits) -> Result<Calls> {
        let mut ub = Blocks {
            bytes: Vec::new(),
            align: limits.min_uniform_buffer_offset_alignment.max(16) as usize,
            max_dim: limits.max_compute_workgroups_per_dimension as usize,
        };
        let step_offsets = shape.step_blocks(&mut ub)?;
        let layer_offsets = shape.layer_blocks(&mut ub)?;
        let c = shape.c;
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
        Ok(Calls {
            uniforms: finish_uniforms(ub, limits)?,
            step_offsets,
            layer_offsets,
            fwd_gemms,
            bwd_gemms,
            dx0_gemms,
            head_gemms,
            opt_offset,
        })
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
pub(super) struct Shape<'a> {
    pub c: &'a GruConfig,
    pub layout: &'a ParamLayout,
    pub o: &'a WorkOffsets,
    pub t: usize,
    pub b: usize,
    pub classes: usize,
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

    /// The GEMMs of cell `(l, d)`, in this order: its input projection (into `fwd`), its weight
    /// and bias gradients (into `bwd`), and its input gradient (into `bwd`, or `dx0` for layer 0).
    fn cell_gemms(
        &self,
        ub: &mut Blocks,
        cell: (usize, usize),
        fwd: &mut Vec<GemmCall>,
        bwd: &mut Vec<GemmCall>,
        dx0: &mut Vec<GemmCall>,
    ) -> Result<()> {
        fwd.extend(self.projection(ub, cell)?);
        bwd.extend(self.weight_grads(ub, cell)?);
        let dx = self.input_grad(ub, cell)?;
        if cell.0 == 0 {
            dx0.extend(dx);
        } else {
            bwd.extend(dx);
        }
        Ok(())
    }

    /// XP_d = X_l · W_ihᵀ, into XP `[T, B, D, 3H]` (the forward's layout).
    fn projection(&self, ub: &mut Blocks, (l, d): (usize, usize)) -> Result<Vec<GemmCall>> {
        let (c, o) = (self.c, self.o);
        let u = |v: usize| u32_of(v, "GEMM operand offset");
        let h = c.hidden_size;
        let (h32, tb32) = (u(h)?, u(self.t * self.b)?);
        let in_w = c.layer_input_size(l);
        let iw = u(in_w)?;
        let [w_ih, ..] = self.layout.cell(c, l, d);
        ub.gemm(
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
        )
    }

    /// dW_ih, dW_hh, db_ih and db_hh of cell `(l, d)`, from its gate gradients DA.
    fn weight_grads(&self, ub: &mut Blocks, (l, d): (usize, usize)) -> Result<Vec<GemmCall>> {
        let (c, o) = (self.c, self.o);
        let u = |v: usize| u32_of(v, "GEMM operand offset");
        let h = c.hidden_size;
        let tb = self.t * self.b;
        let h32 = u(h)?;
        let iw = u(c.layer_input_size(l))?;
        let [w_ih, w_hh, b_ih, b_hh] = self.layout.cell(c, l, d);
        let mut calls = Vec::new();
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
        // dW (rows of C at `c_off`, `n` wide) = DA[:, c0..c0 + rows]ᵀ · B, B [T·B, n] from
        // `b_off` with row stride `b_sk`.
        let mut dw = |c0: usize, rows: usize, n: u32, b_off: usize, b_sk: usize, c_off: usize| {
            let p = GemmParams {
                n,
                b_off: u(b_off)?,
                b_sk: u(b_sk)?,
                b_sn: 1,
                c_off: u(c_off)?,
                c_sm: n,
                c_sn: 1,
                ..da_t(c0, rows)?
            };
            calls.extend(ub.gemm(p, tb)?);
            Ok::<_, Error>(())
        };
        // dW_ih = DA[:, 0:3H]ᵀ · X_l.
        dw(0, 3 * h, iw, o.x(l), c.layer_input_size(l), w_ih)?;
        // dW_hh rows r, z = DA[:, 0:2H]ᵀ · HP.
        let hp = o.hp[l] + d * tb * h;
        dw(0, 2 * h, h32, hp, h, w_hh)?;
        // dW_hh rows n = DA[:, 3H:4H]ᵀ · (HP, or r⊙h from the tape for reset-before).
        let (n_src, n_stride) = match c.variant {
            Variant::ResetAfter => (hp, h),
            Variant::ResetBefore => (o.gt[l] + d * tb * 4 * h + 3 * h, 4 * h),
        };
        dw(3 * h, h, h32, n_src, n_stride, w_hh + 2 * h * h)?;
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
            calls.extend(ub.colsum(
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
        Ok(calls)
    }

    /// dL/dX_l (+)= DA[:, 0:3H] · W_ih of cell `(l, d)` (direction 0 writes, 1 adds).
    fn input_grad(&self, ub: &mut Blocks, (l, d): (usize, usize)) -> Result<Vec<GemmCall>> {
        let (c, o) = (self.c, self.o);
        let u = |v: usize| u32_of(v, "GEMM operand offset");
        let h = c.hidden_size;
        let tb = self.t * self.b;
        let (h32, tb32) = (u(h)?, u(tb)?);
        let iw = u(c.layer_input_size(l))?;
        let [w_ih, ..] = self.layout.cell(c, l, d);
        let da = o.da + d * tb * 4 * h;
        ub.gemm(
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
        )
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
