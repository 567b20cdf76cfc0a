//! The recurrent matrix product `A = h · Uᵀ` for a block of batch rows, on pre-packed weights.
//!
//! `U` (some gate rows of `W_hh`, `[N, H]`) is packed once, at model load, into column panels of
//! [`NR`] output columns: `panel[p][k][0..NR]`, zero-padded. One step then streams the panels in
//! order (one contiguous array, friendly to the hardware prefetcher), and each panel is reused
//! from L1/L2 by every block of up to `MR` batch rows. No packing happens per step, which is what
//! a general GEMM call would pay for on these small `[B, H] × [H, 3H]` products.

#![allow(unsafe_op_in_unsafe_fn)]

use super::simd::Simd;

/// Output columns per packed panel (4 AVX-512 vectors, 8 AVX2 vectors).
pub(crate) const NR: usize = 64;
/// Accumulator registers a micro-kernel may use (of 32 zmm / 16 ymm, leaving room for loads).
const ACC_REGS: usize = 24;

/// `U` packed as column panels: `[n_panels][k][NR]`, columns past the real ones are zero.
#[derive(Debug, Clone)]
pub(crate) struct Panels {
    /// Reduction length (the hidden size `H`).
    pub(crate) k: usize,
    /// Number of panels; columns covered are `n_panels · NR`.
    pub(crate) n_panels: usize,
    data: Vec<f32>,
}

impl Panels {
    /// Packs `cols` columns; `value(c, k)` is `U[c, k]`, the weight from `h[k]` to output `c`
    /// (it is only called for `c < cols`, `k < k_len`).
    pub(crate) fn pack(cols: usize, k_len: usize, value: impl Fn(usize, usize) -> f32) -> Panels {
        let n_panels = cols.div_ceil(NR);
        let mut data = vec![0.0f32; n_panels * k_len * NR];
        for c in 0..cols {
            let (p, lane) = (c / NR, c % NR);
            for k in 0..k_len {
                data[(p * k_len + k) * NR + lane] = value(c, k);
            }
        }
        Panels {
            k: k_len,
            n_panels,
            data,
        }
    }

    /// Columns covered, a multiple of [`NR`]: the row stride `out` needs at least.
    pub(crate) fn cols(&self) -> usize {
        self.n_panels * NR
    }
}

/// `out[i, 0..cols] = Σ_k h[i, k] · U[·, k]` for `i < rows`.
///
/// # Safety
/// `S` must be supported by the CPU; `h` must hold `rows` rows of stride `h_stride ≥ k`;
/// `out` must hold `rows` rows of stride `out_stride ≥ u.cols()`.
#[inline(always)]
pub(crate) unsafe fn matmul<S: Simd>(
    u: &Panels,
    h: *const f32,
    h_stride: usize,
    rows: usize,
    out: *mut f32,
    out_stride: usize,
) {
    let nv = NR / S::W;
    let mr_max = ACC_REGS / nv;
    let base = u.data.as_ptr();
    for p in 0..u.n_panels {
        let w = base.add(p * u.k * NR);
        let o = out.add(p * NR);
        let mut i = 0;
        while i < rows {
            let left = rows - i;
            let hi = h.add(i * h_stride);
            let oi = o.add(i * out_stride);
            // Largest block that fits the registers; the tail gets a smaller instance.
            let mr = left.min(mr_max);
            match mr {
                1 => block1::<S>(w, u.k, hi, oi),
                2 => block::<S, 2>(w, u.k, hi, h_stride, oi, out_stride),
                3 => block::<S, 3>(w, u.k, hi, h_stride, oi, out_stride),
                4 => block::<S, 4>(w, u.k, hi, h_stride, oi, out_stride),
                5 => block::<S, 5>(w, u.k, hi, h_stride, oi, out_stride),
                _ => block::<S, 6>(w, u.k, hi, h_stride, oi, out_stride),
            }
            i += mr;
        }
    }
}

/// One row (the GEMV of batch 1): two accumulator sets over even and odd `k`, so that 2·NV
/// independent FMA chains hide the FMA latency.
// The register arrays are indexed in lockstep by a vector index bounded by `nv`, not by their
// length (8 covers every ISA), hence the index loops.
#[allow(clippy::needless_range_loop)]
#[inline(always)]
unsafe fn block1<S: Simd>(w: *const f32, k_len: usize, h: *const f32, out: *mut f32) {
    let nv = NR / S::W;
    let zero = S::splat(0.0);
    let mut a0 = [zero; 8];
    let mut a1 = [zero; 8];
    let mut k = 0;
    while k + 2 <= k_len {
        let h0 = S::splat(*h.add(k));
        let h1 = S::splat(*h.add(k + 1));
        let w0 = w.add(k * NR);
        let w1 = w0.add(NR);
        for v in 0..nv {
            a0[v] = S::fma(h0, S::load(w0.add(v * S::W)), a0[v]);
            a1[v] = S::fma(h1, S::load(w1.add(v * S::W)), a1[v]);
        }
        k += 2;
    }
    if k < k_len {
        let h0 = S::splat(*h.add(k));
        let w0 = w.add(k * NR);
        for v in 0..nv {
            a0[v] = S::fma(h0, S::load(w0.add(v * S::W)), a0[v]);
        }
    }
    for v in 0..nv {
        S::store(out.add(v * S::W), S::add(a0[v], a1[v]));
    }
}

/// `MR` rows × `NR` columns, all in registers: each weight vector loaded serves `MR` rows.
#[allow(clippy::needless_range_loop)]
#[inline(always)]
unsafe fn block<S: Simd, const MR: usize>(
    w: *const f32,
    k_len: usize,
    h: *const f32,
    h_stride: usize,
    out: *mut f32,
    out_stride: usize,
) {
    let nv = NR / S::W;
    let zero = S::splat(0.0);
    let mut acc = [[zero; 8]; MR];
    for k in 0..k_len {
        let wk = w.add(k * NR);
        let mut wv = [zero; 8];
        for v in 0..nv {
            wv[v] = S::load(wk.add(v * S::W));
        }
        for (i, row) in acc.iter_mut().enumerate() {
            let hb = S::splat(*h.add(i * h_stride + k));
            for v in 0..nv {
                row[v] = S::fma(hb, wv[v], row[v]);
            }
        }
    }
    for (i, row) in acc.iter().enumerate() {
        for v in 0..nv {
            S::store(out.add(i * out_stride + v * S::W), row[v]);
        }
    }
}
