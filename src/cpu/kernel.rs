//! Matrix products on pre-packed weights: the recurrent `A = h · Uᵀ` of each step ([`matmul`])
//! and the input projection `X · W_ihᵀ` of all steps ([`gemm`]).
//!
//! Weights (`[N, K]`: gate rows of `W_hh` or `W_ih`) are packed once, at model load, into column
//! panels of [`NR`] output columns, `panel[p][k][0..NR]`, zero-padded. A micro-kernel keeps a
//! tile of `MR` rows × 4 vectors in registers, so each weight vector loaded serves `MR` rows.
//! One step streams the panels in order (one contiguous array, friendly to the prefetchers), and
//! the next step in the reverse order, so that a `U` larger than L2 is partly still there; nothing
//! is packed or allocated per call, which is what a general GEMM call would pay for on
//! the small `[B, H] × [H, 3H]` products of the time loop.

#![allow(unsafe_op_in_unsafe_fn)]

use super::simd::Simd;

/// Output columns per packed panel: 4 AVX-512 vectors, or two tiles of 4 AVX2 vectors.
pub(crate) const NR: usize = 64;
/// Vectors per micro-kernel row: a tile is `MR` rows × `NV·W` columns.
const NV: usize = 4;

/// How [`Panels`] store the weights: f32, or IEEE f16 (half the bytes a batch-1 step streams;
/// widened to f32 as they are loaded, so every product still sums in f32).
#[derive(Debug, Clone)]
enum Data {
    F32(Vec<f32>),
    F16(Vec<half::f16>),
}

/// A weight element a micro-kernel can load a vector of.
pub(crate) trait Elem: Copy {
    /// # Safety
    /// `S` must be supported by the CPU; `p` must hold `S::W` elements.
    unsafe fn load<S: Simd>(p: *const Self) -> S::V;
}

impl Elem for f32 {
    #[inline(always)]
    unsafe fn load<S: Simd>(p: *const f32) -> S::V {
        S::load(p)
    }
}

impl Elem for half::f16 {
    #[inline(always)]
    unsafe fn load<S: Simd>(p: *const half::f16) -> S::V {
        // `half::f16` is `repr(transparent)` over its `u16` bits.
        S::load_f16(p.cast::<u16>())
    }
}

/// `U` packed as column panels: `[n_panels][k][NR]`, columns past the real ones are zero.
#[derive(Debug, Clone)]
pub(crate) struct Panels {
    /// Reduction length (the hidden size `H`, or the input size for `W_ih`).
    pub(crate) k: usize,
    /// Number of panels; columns covered are `n_panels · NR`.
    pub(crate) n_panels: usize,
    data: Data,
}

impl Panels {
    /// Packs `cols` columns as f32; `value(c, k)` is `U[c, k]`, the weight from `h[k]` to output
    /// `c` (it is only called for `c < cols`, `k < k_len`).
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
            data: Data::F32(data),
        }
    }

    /// As [`Panels::pack`], stored as f16 (each value rounded to nearest) when `f16` is set.
    pub(crate) fn pack_as(
        f16: bool,
        cols: usize,
        k_len: usize,
        value: impl Fn(usize, usize) -> f32,
    ) -> Panels {
        let mut panels = Panels::pack(cols, k_len, value);
        if let (true, Data::F32(d)) = (f16, &panels.data) {
            panels.data = Data::F16(d.iter().map(|&v| half::f16::from_f32(v)).collect());
        }
        panels
    }

    /// Whether the weights are stored as f16.
    pub(crate) fn is_f16(&self) -> bool {
        matches!(self.data, Data::F16(_))
    }

    /// `U[c, k]` as packed (zero past the real columns).
    pub(crate) fn get(&self, c: usize, k: usize) -> f32 {
        let (p, lane) = (c / NR, c % NR);
        if p >= self.n_panels || k >= self.k {
            return 0.0;
        }
        let i = (p * self.k + k) * NR + lane;
        match &self.data {
            Data::F32(d) => d[i],
            Data::F16(d) => d[i].to_f32(),
        }
    }

    /// Bytes the packed weights take (what one pass over them streams).
    pub(crate) fn bytes(&self) -> usize {
        match &self.data {
            Data::F32(d) => std::mem::size_of_val(d.as_slice()),
            Data::F16(d) => std::mem::size_of_val(d.as_slice()),
        }
    }

    /// Columns covered, a multiple of [`NR`]: the row stride `out` needs at least.
    pub(crate) fn cols(&self) -> usize {
        self.n_panels * NR
    }
}

/// Runs the largest micro-kernel that fits the registers on rows `i..i+mr` of one column tile,
/// and returns `mr`.
///
/// # Safety
/// As [`block`].
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn tile<S: Simd, E: Elem>(
    rows_left: usize,
    w: *const E,
    k_len: usize,
    x: *const f32,
    x_stride: usize,
    out: *mut f32,
    out_stride: usize,
    accumulate: bool,
) -> usize {
    let mr = rows_left.min(S::MR);
    match mr {
        1 if !accumulate => block1::<S, E>(w, k_len, x, out),
        1 => block::<S, E, 1>(w, k_len, x, x_stride, out, out_stride, accumulate),
        2 => block::<S, E, 2>(w, k_len, x, x_stride, out, out_stride, accumulate),
        3 => block::<S, E, 3>(w, k_len, x, x_stride, out, out_stride, accumulate),
        4 => block::<S, E, 4>(w, k_len, x, x_stride, out, out_stride, accumulate),
        5 => block::<S, E, 5>(w, k_len, x, x_stride, out, out_stride, accumulate),
        _ => block::<S, E, 6>(w, k_len, x, x_stride, out, out_stride, accumulate),
    }
    mr
}

/// One product `out = a · Uᵀ` over pre-packed panels: `rows` rows of `a` (stride `a_stride ≥
/// u.k`) into `rows` rows of `out` (stride `out_stride ≥ u.cols()`).
#[derive(Clone, Copy)]
pub(crate) struct Product<'a> {
    pub u: &'a Panels,
    pub a: *const f32,
    pub a_stride: usize,
    pub rows: usize,
    pub out: *mut f32,
    pub out_stride: usize,
    /// Walk the panels last to first ([`matmul`] only; the result is the same). Successive
    /// steps alternate, so a step starts on the panels the one before ended on, still in L2 when
    /// `U` is larger than L2 (alternating, one thread: B 1, H 512, 3 MB `U`: 21.6–26.1 →
    /// 15.5–16.3 ms per forward of 256 steps; medium 54.7–56.4 → 52.7–53.6 ms).
    pub reverse: bool,
}

/// `out[i, 0..u.cols()] = Σ_k h[i, k] · U[·, k]` for `i < rows` (`h` is `m.a`): one step's
/// recurrent product.
///
/// # Safety
/// `S` must be supported by the CPU; `h` must hold `rows` rows of stride `h_stride ≥ u.k`;
/// `out` must hold `rows` rows of stride `out_stride ≥ u.cols()`.
#[inline(always)]
pub(crate) unsafe fn matmul<S: Simd>(m: Product<'_>) {
    match &m.u.data {
        Data::F32(d) => matmul_on::<S, f32>(m, d.as_ptr()),
        Data::F16(d) => matmul_on::<S, half::f16>(m, d.as_ptr()),
    }
}

/// [`matmul`] on the panels' data, `base`.
#[inline(always)]
unsafe fn matmul_on<S: Simd, E: Elem>(m: Product<'_>, base: *const E) {
    let u = m.u;
    let tile_cols = NV * S::W;
    if m.rows == 1 && tile_cols == NR {
        // Batch 1: three panels at a time share each broadcast of h[k] (measured on Zen 4:
        // 3–5% faster than one panel with two k-streams; 4 panels no better than 3).
        let groups = u.n_panels.div_ceil(3);
        for g in 0..groups {
            let p = 3 * if m.reverse { groups - 1 - g } else { g };
            let (w, o) = (base.add(p * u.k * NR), m.out.add(p * NR));
            match u.n_panels - p {
                1 => block1::<S, E>(w, u.k, m.a, o),
                2 => block1xp::<S, E, 2>(w, u.k, m.a, o),
                _ => block1xp::<S, E, 3>(w, u.k, m.a, o),
            }
        }
        return;
    }
    let kc_max = if m.rows > S::MR { KC_STEP } else { u.k };
    for q in 0..u.n_panels {
        let p = if m.reverse { u.n_panels - 1 - q } else { q };
        let mut k0 = 0;
        while k0 < u.k {
            let kc = kc_max.min(u.k - k0);
            for c0 in (0..NR).step_by(tile_cols) {
                let w = base.add((p * u.k + k0) * NR + c0);
                let o = m.out.add(p * NR + c0);
                let mut i = 0;
                while i < m.rows {
                    i += tile::<S, E>(
                        m.rows - i,
                        w,
                        kc,
                        m.a.add(i * m.a_stride + k0),
                        m.a_stride,
                        o.add(i * m.out_stride),
                        m.out_stride,
                        k0 > 0,
                    );
                }
            }
            k0 += kc;
        }
    }
}

/// Reduction block of a step's product when more than one row tile shares each panel: the
/// panel's `[KC_STEP, NR]` slice (32 KiB in f32) stays in L1 while every row tile reads it.
const KC_STEP: usize = 128;

/// How many weight rows ahead of the one it multiplies a row tile prefetches (alternating, one
/// thread: medium 44.3 → 42.1 ms, 16·256·16·256 11.4 → 11.0 ms; 16 rows no better).
const PF_ROWS: usize = 8;

/// Reduction block of [`gemm`]: a panel's `[KC, NR]` weight slice (256 KiB) stays in L2 while
/// every row tile of the row block reuses it; longer blocks mean fewer passes that reload and
/// store the output tiles (measured on Zen 4: 256 → 512 gained 3–5%; on the 2-core Xeon VM,
/// 8192·1024·3072, alternating: 512 → 1024 153–156 → 164–167 GF/s).
const KC: usize = 1024;
/// Row block of [`gemm`]: `MC` rows × `KC` inputs (480 KiB) stay in L2 across all panels.
/// A multiple of every micro-kernel height.
const MC: usize = 120;

/// `out[r, 0..u.cols()] = Σ_k x[r, k] · U[·, k]` for `r < rows`: the input projection, a large
/// GEMM on the same pre-packed panels and micro-kernels as the recurrence (so it needs no
/// per-call packing or scratch memory), blocked over `k` and rows for the caches.
///
/// # Safety
/// As [`matmul`] (`x` is `m.a`).
#[inline(always)]
pub(crate) unsafe fn gemm<S: Simd>(m: Product<'_>) {
    match &m.u.data {
        Data::F32(d) => gemm_on::<S, f32>(m, d.as_ptr()),
        Data::F16(d) => gemm_on::<S, half::f16>(m, d.as_ptr()),
    }
}

/// [`gemm`] on the panels' data, `base`.
#[inline(always)]
unsafe fn gemm_on<S: Simd, E: Elem>(m: Product<'_>, base: *const E) {
    let u = m.u;
    let tile_cols = NV * S::W;
    let mut k0 = 0;
    while k0 < u.k {
        let kc = KC.min(u.k - k0);
        let accumulate = k0 > 0;
        let mut r0 = 0;
        while r0 < m.rows {
            let mc = MC.min(m.rows - r0);
            for p in 0..u.n_panels {
                for c0 in (0..NR).step_by(tile_cols) {
                    let w = base.add((p * u.k + k0) * NR + c0);
                    let mut i = r0;
                    while i < r0 + mc {
                        i += tile::<S, E>(
                            r0 + mc - i,
                            w,
                            kc,
                            m.a.add(i * m.a_stride + k0),
                            m.a_stride,
                            m.out.add(i * m.out_stride + p * NR + c0),
                            m.out_stride,
                            accumulate,
                        );
                    }
                }
            }
            r0 += mc;
        }
        k0 += kc;
    }
}

/// One row (the GEMV of batch 1): two accumulator sets over even and odd `k`, so that 2·NV
/// independent FMA chains hide the FMA latency.
#[inline(always)]
unsafe fn block1<S: Simd, E: Elem>(w: *const E, k_len: usize, h: *const f32, out: *mut f32) {
    let zero = S::splat(0.0);
    let mut a0 = [zero; NV];
    let mut a1 = [zero; NV];
    let mut k = 0;
    while k + 2 <= k_len {
        let h0 = S::splat(*h.add(k));
        let h1 = S::splat(*h.add(k + 1));
        let w0 = w.add(k * NR);
        let w1 = w0.add(NR);
        for (v, (x0, x1)) in a0.iter_mut().zip(a1.iter_mut()).enumerate() {
            *x0 = S::fma(h0, E::load::<S>(w0.add(v * S::W)), *x0);
            *x1 = S::fma(h1, E::load::<S>(w1.add(v * S::W)), *x1);
        }
        k += 2;
    }
    if k < k_len {
        let h0 = S::splat(*h.add(k));
        let w0 = w.add(k * NR);
        for (v, x0) in a0.iter_mut().enumerate() {
            *x0 = S::fma(h0, E::load::<S>(w0.add(v * S::W)), *x0);
        }
    }
    for (v, (x0, x1)) in a0.iter().zip(a1.iter()).enumerate() {
        S::store(out.add(v * S::W), S::add(*x0, *x1));
    }
}

/// One row × `P` consecutive panels (`w + q·k_len·NR`), `P·NV` accumulators: each broadcast of
/// `h[k]` serves `P` panels, and `P` streams are in flight at once.
#[inline(always)]
unsafe fn block1xp<S: Simd, E: Elem, const P: usize>(
    w: *const E,
    k_len: usize,
    h: *const f32,
    out: *mut f32,
) {
    let zero = S::splat(0.0);
    let mut acc = [[zero; NV]; P];
    for k in 0..k_len {
        let hb = S::splat(*h.add(k));
        for (q, a) in acc.iter_mut().enumerate() {
            let wk = w.add((q * k_len + k) * NR);
            for (v, x) in a.iter_mut().enumerate() {
                *x = S::fma(hb, E::load::<S>(wk.add(v * S::W)), *x);
            }
        }
    }
    for (q, a) in acc.iter().enumerate() {
        for (v, x) in a.iter().enumerate() {
            S::store(out.add(q * NR + v * S::W), *x);
        }
    }
}

/// `MR` rows × `NV` vectors, all in registers: each weight vector loaded serves `MR` rows.
/// `accumulate` adds to `out` instead of overwriting it (the GEMM's later `k` blocks).
#[inline(always)]
unsafe fn block<S: Simd, E: Elem, const MR: usize>(
    w: *const E,
    k_len: usize,
    h: *const f32,
    h_stride: usize,
    out: *mut f32,
    out_stride: usize,
    accumulate: bool,
) {
    let zero = S::splat(0.0);
    let mut acc = [[zero; NV]; MR];
    if accumulate {
        for (i, row) in acc.iter_mut().enumerate() {
            for (v, a) in row.iter_mut().enumerate() {
                *a = S::load(out.add(i * out_stride + v * S::W));
            }
        }
    } else {
        // The tile is stored after its whole reduction; asking for its output lines now puts
        // their fetch (the projection's output is far larger than L2) under that work
        // (alternating, one thread, 2048·512·1536: 142–146 → 147–150 GF/s).
        for i in 0..MR {
            for v in 0..NV {
                S::prefetch(out.add(i * out_stride + v * S::W));
            }
        }
    }
    let line = 64 / std::mem::size_of::<E>();
    for k in 0..k_len {
        let wk = w.add(k * NR);
        // The weights stream from L2: ask for the row PF_ROWS ahead now, into L1 (past the
        // panel's end that is a harmless hint, hence the wrapping arithmetic).
        let ahead = wk.wrapping_add(PF_ROWS * NR);
        for l in 0..(NR / line) {
            S::prefetch(ahead.wrapping_add(l * line).cast::<f32>());
        }
        // Broadcast the rows' inputs first, then stream the weight vectors one at a time: the
        // live set is MR·NV accumulators + MR broadcasts + 1 weight, which fits 16 ymm at MR 3.
        let mut hb = [zero; MR];
        for (i, b) in hb.iter_mut().enumerate() {
            *b = S::splat(*h.add(i * h_stride + k));
        }
        for v in 0..NV {
            let wv = E::load::<S>(wk.add(v * S::W));
            for (row, b) in acc.iter_mut().zip(hb.iter()) {
                row[v] = S::fma(*b, wv, row[v]);
            }
        }
    }
    for (i, row) in acc.iter().enumerate() {
        for (v, a) in row.iter().enumerate() {
            S::store(out.add(i * out_stride + v * S::W), *a);
        }
    }
}

/// The cache-bandwidth floor of a step: one pass that reads `n` floats (a multiple of `8·W`) and
/// feeds every vector to an FMA, with eight independent accumulators, the least work a product
/// that must read each weight once can do; `reverse` walks the blocks last to first, as every
/// other step's product walks its panels. Returns the sum, so the pass cannot be optimised away.
///
/// # Safety
/// `S` must be supported by the CPU; `p` must hold `n` floats.
#[inline(always)]
pub(crate) unsafe fn stream_fma<S: Simd>(p: *const f32, n: usize, x: f32, reverse: bool) -> f32 {
    let xv = S::splat(x);
    let mut acc = [S::splat(0.0); 8];
    let blocks = n / (8 * S::W);
    for b in 0..blocks {
        let i = 8 * S::W * if reverse { blocks - 1 - b } else { b };
        for (v, a) in acc.iter_mut().enumerate() {
            *a = S::fma(xv, S::load(p.add(i + v * S::W)), *a);
        }
    }
    sum_all::<S>(&acc)
}

/// Independent FMA chains of [`fma_peak`]: enough to cover the FMA latency on two ports, few
/// enough for 16 AVX2 registers.
pub(crate) const PEAK_CHAINS: usize = 12;

/// The FMA peak: `n` rounds of [`PEAK_CHAINS`] independent FMAs on registers alone (no memory
/// traffic). Each chain converges (`a·(1 - 2⁻¹⁴) + x`), so the values stay finite; returns their
/// sum, so the loop cannot be optimised away.
///
/// # Safety
/// `S` must be supported by the CPU.
#[inline(always)]
pub(crate) unsafe fn fma_peak<S: Simd>(n: usize, x: f32) -> f32 {
    let (b, c) = (S::splat(1.0 - 1.0 / 16384.0), S::splat(x));
    let mut acc = [S::splat(0.0); PEAK_CHAINS];
    for _ in 0..n {
        for a in acc.iter_mut() {
            *a = S::fma(*a, b, c);
        }
    }
    sum_all::<S>(&acc)
}

/// The sum of every lane of every vector in `acc` (what the floor loops return, so that their
/// work cannot be optimised away).
///
/// # Safety
/// `S` must be supported by the CPU.
#[inline(always)]
unsafe fn sum_all<S: Simd>(acc: &[S::V]) -> f32 {
    let mut sum = S::splat(0.0);
    for &a in acc {
        sum = S::add(sum, a);
    }
    let mut buf = [0.0f32; 16];
    S::store(buf.as_mut_ptr(), sum);
    buf.iter().take(S::W).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::simd::Portable;

    /// The panel order of a step changes nothing: both orders give the same bits, equal to a
    /// plain sum (batch 1 walks panels in groups of three, so 1…7 panels cover every remainder).
    #[test]
    fn reversed_panels_give_the_same_product() {
        for (rows, cols, k) in [
            (1, 1, 3),
            (1, 130, 5),
            (1, 200, 7),
            (1, 420, 2),
            (4, 195, 9),
        ] {
            let u = Panels::pack(cols, k, |c, kk| ((c * 7 + kk * 3) % 17) as f32 * 0.25 - 2.0);
            let a: Vec<f32> = (0..rows * k).map(|i| (i % 5) as f32 - 2.0).collect();
            let run = |reverse| {
                let mut out = vec![0.0f32; rows * u.cols()];
                // SAFETY: `a` holds `rows` rows of `k`, `out` `rows` rows of `u.cols()`.
                unsafe {
                    matmul::<Portable>(Product {
                        u: &u,
                        a: a.as_ptr(),
                        a_stride: k,
                        rows,
                        out: out.as_mut_ptr(),
                        out_stride: u.cols(),
                        reverse,
                    })
                };
                out
            };
            let (fwd, rev) = (run(false), run(true));
            assert_eq!(fwd, rev, "rows {rows} cols {cols} k {k}");
            for i in 0..rows {
                for c in 0..cols {
                    let want: f32 = (0..k).map(|kk| a[i * k + kk] * u.get(c, kk)).sum();
                    assert_eq!(fwd[i * u.cols() + c], want, "row {i} col {c}");
                }
            }
        }
    }
}
