//! The time loop of one direction of one layer, for one chunk of batch rows.
//!
//! Per step: `A = h · Uᵀ` for the active rows ([`super::kernel::matmul`]), then the gates
//! element-wise, in place on `h`. The input projection `W_ih·x` was computed for every step up
//! front by one GEMM and is read here row by row.
//!
//! Rows are kept sorted by length, longest first, so the rows still running at step `s` are a
//! prefix of the chunk and finished rows cost nothing (as in PyTorch's packed sequences).

#![allow(unsafe_op_in_unsafe_fn)]

use super::kernel::{Panels, Product, matmul};
use super::simd::{self, Simd};
use crate::config::Activation;

/// An activation, applied to a whole vector.
pub(crate) trait ActFn: Copy {
    /// # Safety
    /// `S` must be supported by the CPU.
    unsafe fn apply<S: Simd>(self, x: S::V) -> S::V;
}

/// The logistic sigmoid, specialised because it is the default gate activation.
#[derive(Clone, Copy)]
pub(crate) struct SigmoidFn;
/// `tanh`, specialised because it is the default candidate activation.
#[derive(Clone, Copy)]
pub(crate) struct TanhFn;
/// Any [`Activation`], chosen per call.
#[derive(Clone, Copy)]
pub(crate) struct DynFn(pub(crate) Activation);
/// ONNX `clip`: clamps the input to `[-c, c]` before the activation. A separate wrapper so that
/// models without a clip (nearly all) pay nothing for it.
#[derive(Clone, Copy)]
pub(crate) struct Clipped<A>(pub(crate) A, pub(crate) f32);

impl<A: ActFn> ActFn for Clipped<A> {
    #[inline(always)]
    unsafe fn apply<S: Simd>(self, x: S::V) -> S::V {
        // Bounds first: x86 min/max return the second operand for NaN, so NaN passes through.
        let c = self.1;
        self.0
            .apply::<S>(S::min(S::splat(c), S::max(S::splat(-c), x)))
    }
}

impl ActFn for SigmoidFn {
    #[inline(always)]
    unsafe fn apply<S: Simd>(self, x: S::V) -> S::V {
        simd::sigmoid::<S>(x)
    }
}

impl ActFn for TanhFn {
    #[inline(always)]
    unsafe fn apply<S: Simd>(self, x: S::V) -> S::V {
        simd::tanh::<S>(x)
    }
}

impl ActFn for DynFn {
    #[inline(always)]
    unsafe fn apply<S: Simd>(self, x: S::V) -> S::V {
        let zero = S::splat(0.0);
        let one = S::splat(1.0);
        match self.0 {
            Activation::Sigmoid => simd::sigmoid::<S>(x),
            Activation::Tanh => simd::tanh::<S>(x),
            // x first: NaN gives 0, as f64::max does in the reference.
            Activation::Relu => S::max(x, zero),
            // Bounds first so NaN passes (like f64::clamp in the reference).
            Activation::HardSigmoid { alpha, beta } => S::min(
                one,
                S::max(zero, S::fma(S::splat(alpha), x, S::splat(beta))),
            ),
            Activation::LeakyRelu { alpha } => S::select_ge(x, zero, x, S::mul(S::splat(alpha), x)),
            Activation::ThresholdedRelu { alpha } => S::select_gt(x, S::splat(alpha), x, zero),
            Activation::ScaledTanh { alpha, beta } => {
                S::mul(S::splat(alpha), simd::tanh::<S>(S::mul(S::splat(beta), x)))
            }
            Activation::Affine { alpha, beta } => S::fma(S::splat(alpha), x, S::splat(beta)),
            Activation::Elu { alpha } => {
                let em1 = S::sub(simd::exp::<S>(x), one);
                S::select_ge(x, zero, x, S::mul(S::splat(alpha), em1))
            }
            Activation::Softsign => S::div(x, S::add(one, S::abs(x))),
            Activation::Softplus => {
                // Rare: per lane, with the stable form `max(x, 0) + ln(1 + e^-|x|)`.
                let mut buf = [0.0f32; 16];
                S::store(buf.as_mut_ptr(), x);
                for v in buf.iter_mut().take(S::W) {
                    *v = v.max(0.0) + (-v.abs()).exp().ln_1p();
                }
                S::load(buf.as_ptr())
            }
        }
    }
}

/// The packed weights of one direction of one layer.
#[derive(Debug, Clone)]
pub(crate) struct DirWeights {
    /// Reset-after: `U` for r, z, n (`3·Hp` columns, gate `g` at `g·Hp`).
    /// Reset-before: `U` for r, z only (`2·Hp` columns).
    pub(crate) u: Panels,
    /// Reset-before: `U_n` (`Hp` columns); unused for reset-after.
    pub(crate) u_n: Option<Panels>,
    /// Biases folded per gate, `[3·Hp]`: `b_ir+b_hr`, `b_iz+b_hz`, and `b_in` (+ `b_hn` for
    /// reset-before, where it sits outside the reset product).
    pub(crate) bias: Vec<f32>,
    /// `b_hn`, `[Hp]`: reset-after multiplies it by r, so it cannot be folded.
    pub(crate) b_hn: Vec<f32>,
    /// Gate activation.
    pub(crate) f: Activation,
    /// Candidate activation.
    pub(crate) g: Activation,
    /// Batch 1 with threads: each thread's share of `u` ([`Part`]); empty where the units are
    /// not split (one thread, reset-before, or too small to pay).
    pub(crate) parts: Vec<Part>,
}

/// Where each step reads its input projection and writes its output.
#[derive(Clone, Copy)]
pub(crate) struct SeqLayout {
    /// Steps `T`.
    pub(crate) steps: usize,
    /// Batch `B`.
    pub(crate) batch: usize,
    /// Rows are `[B, T]` rather than `[T, B]`.
    pub(crate) batch_first: bool,
    /// This direction runs `len−1 … 0`.
    pub(crate) reverse: bool,
    /// Keras `go_backwards`: read `T−1−s`, write `s`.
    pub(crate) go_backwards: bool,
}

impl SeqLayout {
    /// Row of `(t, b)` in x, the projection and the output.
    #[inline(always)]
    pub(crate) fn row(&self, t: usize, b: usize) -> usize {
        if self.batch_first {
            b * self.steps + t
        } else {
            t * self.batch + b
        }
    }
    /// `(t_in, t_out)` for step `s` of a row of length `len`.
    #[inline(always)]
    fn times(&self, s: usize, len: usize) -> (usize, usize) {
        if self.reverse {
            (len - 1 - s, len - 1 - s)
        } else if self.go_backwards {
            (self.steps - 1 - s, s)
        } else {
            (s, s)
        }
    }
}

/// A raw output pointer that may cross threads: every job writes a disjoint set of
/// `(row, column range)` cells, so no two threads touch the same element.
#[derive(Clone, Copy)]
pub(crate) struct OutPtr(pub(crate) *mut f32);
impl OutPtr {
    /// The pointer (a method, so that closures capture the `Sync` wrapper, not the field).
    #[inline(always)]
    pub(crate) fn get(&self) -> *mut f32 {
        self.0
    }
}

// SAFETY: see the type's docs; the owner of the buffer outlives the scoped threads.
unsafe impl Send for OutPtr {}
// SAFETY: as above.
unsafe impl Sync for OutPtr {}

/// What one direction's pass over one chunk of batch rows reads and where it writes: shared
/// by the one-thread [`Job`] and the unit-split [`Split`].
#[derive(Clone, Copy)]
pub(crate) struct Dir<'a> {
    /// The direction's weights.
    pub(crate) w: &'a DirWeights,
    /// Hidden size `H` and its padded width `Hp` (a multiple of every vector width).
    pub(crate) h: usize,
    /// Padded hidden size.
    pub(crate) hp: usize,
    /// The input projection, `[T·B rows, gx_stride]`; this direction's `3·Hp` columns start at
    /// `gx_col`.
    pub(crate) gx: &'a [f32],
    /// Row stride of `gx`.
    pub(crate) gx_stride: usize,
    /// First column of this direction in `gx`.
    pub(crate) gx_col: usize,
    /// Original batch index of each chunk row, sorted by length, longest first.
    pub(crate) rows: &'a [usize],
    /// Length of each chunk row (same order, non-increasing, each ≥ 1).
    pub(crate) lens: &'a [usize],
    /// Time layout.
    pub(crate) seq: SeqLayout,
    /// Output `[T·B rows, out_stride]`; this direction writes `H` columns from `out_col`.
    pub(crate) out: OutPtr,
    /// Row stride of the output.
    pub(crate) out_stride: usize,
    /// First output column of this direction.
    pub(crate) out_col: usize,
    /// ONNX clip bound, if any.
    pub(crate) clip: Option<f32>,
    /// Keras mask flags `[B, T]` by original batch index (`SeqInput::mask_flags`): bit 0 valid,
    /// bits 1 and 2 a valid step before it in forward and backward order. Rows are then all `T`
    /// long.
    pub(crate) mask: Option<&'a [u32]>,
    /// With a mask: masked steps write zeros instead of the carried state.
    pub(crate) zero_output: bool,
}

/// One direction's recurrence over one chunk of batch rows, on one thread.
pub(crate) struct Job<'a> {
    /// What it reads and writes.
    pub(crate) dir: Dir<'a>,
    /// State `[rows, Hp]`, initialised by the caller; holds the final states after.
    pub(crate) state: &'a mut [f32],
    /// Scratch `[rows, u.cols()]`.
    pub(crate) acc: &'a mut [f32],
    /// Reset-before scratch `[rows, Hp]` (r ⊙ h); empty for reset-after.
    pub(crate) rh: &'a mut [f32],
    /// Reset-before scratch `[rows, u_n.cols()]`; empty for reset-after.
    pub(crate) acc_n: &'a mut [f32],
}

/// Evaluates `$body` with `$f` and `$g` bound to the gate and candidate activations: the fast
/// sigmoid and tanh where they are the defaults, the general ones otherwise, each clipped where
/// ONNX's clip is set. Each arm is its own monomorphisation of the loop the body calls.
macro_rules! with_acts {
    (|$f:ident, $g:ident| of $w:expr, clip $clip:expr => $body:expr) => {
        match ($w.f, $w.g, $clip) {
            (Activation::Sigmoid, Activation::Tanh, None) => {
                let ($f, $g) = (SigmoidFn, TanhFn);
                $body
            }
            (Activation::Sigmoid, Activation::Tanh, Some(c)) => {
                let ($f, $g) = (Clipped(SigmoidFn, c), Clipped(TanhFn, c));
                $body
            }
            (f, g, None) => {
                let ($f, $g) = (DynFn(f), DynFn(g));
                $body
            }
            (f, g, Some(c)) => {
                let ($f, $g) = (Clipped(DynFn(f), c), Clipped(DynFn(g), c));
                $body
            }
        }
    };
}

/// Runs the job with the activations specialised where they are the defaults.
///
/// # Safety
/// `S` must be supported by the CPU; the buffers must have the sizes documented on [`Job`], and
/// no other thread may write the output cells this job writes.
#[inline(always)]
pub(crate) unsafe fn run<S: Simd>(job: &mut Job<'_>) {
    with_acts!(|f, g| of job.dir.w, clip job.dir.clip => run_with::<S, _, _>(job, f, g))
}

#[inline(always)]
unsafe fn run_with<S: Simd, F: ActFn, G: ActFn>(job: &mut Job<'_>, f: F, g: G) {
    let n_rows = job.dir.rows.len();
    if n_rows == 0 {
        return;
    }
    let (h, hp) = (job.dir.h, job.dir.hp);
    let w = job.dir.w;
    let acc_stride = w.u.cols();
    let state = job.state.as_mut_ptr();
    let acc = job.acc.as_mut_ptr();
    let max_len = job.dir.lens[0];
    let mut active = n_rows;
    for s in 0..max_len {
        while active > 0 && job.dir.lens[active - 1] <= s {
            active -= 1;
        }
        // The projection was written long ago (it is `T·B·3·Hp` floats, usually out of L2) and
        // each step reads one row per batch row: fetch the next step's rows now, so they arrive
        // while this step's matrix product runs instead of stalling the gate loop.
        if s + 1 < max_len {
            for i in 0..active {
                if job.dir.lens[i] > s + 1 {
                    let g = job.dir.gx_row(i, s + 1);
                    let mut off = 0;
                    while off < 3 * hp {
                        S::prefetch(g.add(off));
                        off += 16;
                    }
                }
            }
        }
        matmul::<S>(Product {
            u: &w.u,
            a: state,
            a_stride: hp,
            rows: active,
            out: acc,
            out_stride: acc_stride,
            reverse: s % 2 == 1,
        });
        match &w.u_n {
            Some(u_n) => {
                let rh = job.rh.as_mut_ptr();
                let acc_n = job.acc_n.as_mut_ptr();
                // Phase 1: r and z; keep z in the accumulator, r ⊙ h in `rh`.
                for i in 0..active {
                    if !step_valid(job, i, s) {
                        continue;
                    }
                    let gx = job.dir.gx_row(i, s);
                    gates_rz::<S, F>(
                        f,
                        hp,
                        gx,
                        w.bias.as_ptr(),
                        acc.add(i * acc_stride),
                        state.add(i * hp),
                        rh.add(i * hp),
                    );
                }
                matmul::<S>(Product {
                    u: u_n,
                    a: rh,
                    a_stride: hp,
                    rows: active,
                    out: acc_n,
                    out_stride: u_n.cols(),
                    reverse: s % 2 == 1,
                });
                // Phase 2: n and the new state.
                for i in 0..active {
                    if !step_valid(job, i, s) {
                        write_masked(job, i, s, h);
                        continue;
                    }
                    let gx = job.dir.gx_row(i, s);
                    update_before::<S, G>(
                        g,
                        hp,
                        gx.add(2 * hp),
                        w.bias.as_ptr().add(2 * hp),
                        acc.add(i * acc_stride + hp),
                        acc_n.add(i * u_n.cols()),
                        state.add(i * hp),
                    );
                    write_out(job, i, s, h);
                }
            }
            None => {
                for i in 0..active {
                    if !step_valid(job, i, s) {
                        write_masked(job, i, s, h);
                        continue;
                    }
                    let gx = job.dir.gx_row(i, s);
                    let st = state.add(i * hp);
                    update_after::<S, F, G>(
                        f,
                        g,
                        Gates {
                            width: hp,
                            gs: hp,
                            ga: hp,
                        },
                        gx,
                        w.bias.as_ptr(),
                        w.b_hn.as_ptr(),
                        acc.add(i * acc_stride),
                        st,
                        st,
                    );
                    write_out(job, i, s, h);
                }
            }
        }
    }
}

impl Dir<'_> {
    /// Start of chunk row `i`'s input projection at step `s`.
    #[inline(always)]
    unsafe fn gx_row(&self, i: usize, s: usize) -> *const f32 {
        let (t_in, _) = self.seq.times(s, self.lens[i]);
        let r = self.seq.row(t_in, self.rows[i]);
        self.gx.as_ptr().add(r * self.gx_stride + self.gx_col)
    }

    /// Start of chunk row `i`'s output at step `s`.
    #[inline(always)]
    unsafe fn out_row(&self, i: usize, s: usize) -> *mut f32 {
        let (_, t_out) = self.seq.times(s, self.lens[i]);
        let r = self.seq.row(t_out, self.rows[i]);
        self.out.0.add(r * self.out_stride + self.out_col)
    }

    /// The mask flags of chunk row `i` at step `s` (valid and nothing seen yet without a mask: 1).
    #[inline(always)]
    fn mask_flags(&self, i: usize, s: usize) -> u32 {
        match self.mask {
            None => 1,
            Some(m) => {
                let (t_in, _) = self.seq.times(s, self.lens[i]);
                m[self.rows[i] * self.seq.steps + t_in]
            }
        }
    }

    /// Whether a masked step with mask `flags` repeats the state as its output (a valid step
    /// came before it in this direction's order: Keras's "previous output"); else it is zero.
    #[inline(always)]
    fn repeats(&self, flags: u32) -> bool {
        let backward = self.seq.reverse || self.seq.go_backwards;
        let seen = (flags >> if backward { 2 } else { 1 }) & 1 == 1;
        seen && !self.zero_output
    }
}

/// Whether chunk row `i` runs step `s` (always without a mask).
#[inline(always)]
fn step_valid(job: &Job<'_>, i: usize, s: usize) -> bool {
    job.dir.mask_flags(i, s) & 1 == 1
}

/// A masked step of chunk row `i`: its state stays; its output repeats the state or is zero
/// ([`Dir::repeats`]).
///
/// # Safety
/// As [`write_out`].
#[inline(always)]
unsafe fn write_masked(job: &Job<'_>, i: usize, s: usize, h: usize) {
    if job.dir.repeats(job.dir.mask_flags(i, s)) {
        write_out(job, i, s, h);
    } else {
        std::ptr::write_bytes(job.dir.out_row(i, s), 0, h);
    }
}

/// Copies chunk row `i`'s new state (its first `H` values) to the output at step `s`.
#[inline(always)]
unsafe fn write_out(job: &Job<'_>, i: usize, s: usize, h: usize) {
    let src = job.state.as_ptr().add(i * job.dir.hp);
    std::ptr::copy_nonoverlapping(src, job.dir.out_row(i, s), h);
}

/// Where one row's gates lie: `width` units, gate `g` at `g·gs` in the projection and biases
/// and at `g·ga` in the accumulator (one thread's share of the units, or all of them).
#[derive(Clone, Copy)]
pub(crate) struct Gates {
    pub(crate) width: usize,
    pub(crate) gs: usize,
    pub(crate) ga: usize,
}

/// Reset-after, one row: `r, z = f(gx + b + a)`, `n = g(gx_n + b_in + r⊙(a_n + b_hn))`,
/// `h_out ← n + z⊙(h_in − n)` (= `z⊙h + (1−z)⊙n`); `h_out` may be `h_in`.
///
/// Two simple passes rather than one: each pass has a short dependency chain per vector, which
/// lets the core overlap more vectors than one long r → n → h chain would.
/// `acc` is overwritten with r and z.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn update_after<S: Simd, F: ActFn, G: ActFn>(
    f: F,
    g: G,
    at: Gates,
    gx: *const f32,
    bias: *const f32,
    b_hn: *const f32,
    acc: *mut f32,
    h_in: *const f32,
    h_out: *mut f32,
) {
    let Gates { width, gs, ga } = at;
    for gate in 0..2 {
        let (xs, xa) = (gate * gs, gate * ga);
        let mut j = 0;
        while j < width {
            let pre = S::add(
                S::add(S::load(gx.add(xs + j)), S::load(bias.add(xs + j))),
                S::load(acc.add(xa + j)),
            );
            S::store(acc.add(xa + j), f.apply::<S>(pre));
            j += S::W;
        }
    }
    let mut j = 0;
    while j < width {
        let (os, oa) = (2 * gs + j, 2 * ga + j);
        let r = S::load(acc.add(j));
        let z = S::load(acc.add(ga + j));
        let hn = S::add(S::load(acc.add(oa)), S::load(b_hn.add(j)));
        let xn = S::add(S::load(gx.add(os)), S::load(bias.add(os)));
        let n = g.apply::<S>(S::fma(r, hn, xn));
        let hv = S::load(h_in.add(j));
        S::store(h_out.add(j), S::fma(z, S::sub(hv, n), n));
        j += S::W;
    }
}

/// Reset-before, phase 1: `r, z = f(gx + b + a)`; stores `z` over `a_z` and `r⊙h` into `rh`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn gates_rz<S: Simd, F: ActFn>(
    f: F,
    hp: usize,
    gx: *const f32,
    bias: *const f32,
    acc: *mut f32,
    state: *const f32,
    rh: *mut f32,
) {
    let mut j = 0;
    while j < hp {
        let pre = |gate: usize| {
            let o = gate * hp + j;
            S::add(
                S::add(S::load(gx.add(o)), S::load(bias.add(o))),
                S::load(acc.add(o)),
            )
        };
        let r = f.apply::<S>(pre(0));
        let z = f.apply::<S>(pre(1));
        S::store(acc.add(hp + j), z);
        S::store(rh.add(j), S::mul(r, S::load(state.add(j))));
        j += S::W;
    }
}

/// Reset-before, phase 2: `n = g(gx_n + b_n + U_n·(r⊙h))`, `h ← n + z⊙(h − n)`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn update_before<S: Simd, G: ActFn>(
    g: G,
    hp: usize,
    gx_n: *const f32,
    bias_n: *const f32,
    z: *const f32,
    acc_n: *const f32,
    state: *mut f32,
) {
    let mut j = 0;
    while j < hp {
        let pre = S::add(
            S::add(S::load(gx_n.add(j)), S::load(bias_n.add(j))),
            S::load(acc_n.add(j)),
        );
        let n = g.apply::<S>(pre);
        let zv = S::load(z.add(j));
        let hv = S::load(state.add(j));
        S::store(state.add(j), S::fma(zv, S::sub(hv, n), n));
        j += S::W;
    }
}

/// One thread's share of the hidden units for the row-split time loop (batch 1): units
/// `j0..j0+width` of every gate, with `U`'s columns for them packed as `[r | z | n]`, `width`
/// columns each (gate `g`, unit `j0 + c` is column `g·width + c`).
#[derive(Debug, Clone)]
pub(crate) struct Part {
    pub(crate) j0: usize,
    pub(crate) width: usize,
    pub(crate) u: Panels,
}

/// A reset-after time loop whose hidden units are split over threads ([`Part`]s): each step,
/// every thread multiplies the whole previous state by its columns of `U`, applies its gates and
/// writes its units of the next state, and the next step opens once every part is done (one
/// atomic count per step, [`super::team::StepTeam`]). The state is double-buffered, so nobody
/// overwrites what another thread may still be reading.
pub(crate) struct Split<'a> {
    /// What it reads and writes (direction 0: the split runs forward-only GRUs).
    pub(crate) dir: Dir<'a>,
    pub(crate) parts: &'a [Part],
    /// The two state buffers, `[rows, Hp]` each; `bufs[0]` holds the initial states, and after
    /// the loop row `i`'s final state is in `bufs[lens[i] % 2]`.
    pub(crate) bufs: [*mut f32; 2],
    /// Accumulators, `acc_part` floats per part (`[rows, part.u.cols()]`).
    pub(crate) acc: *mut f32,
    pub(crate) acc_part: usize,
    pub(crate) team: &'a super::team::StepTeam,
}

// SAFETY: the pointers are only written where each part's own units lie (state, output columns,
// its slice of `acc`), and read by others only once the step team says that step is done; the
// owner of the buffers outlives the scoped threads.
unsafe impl Sync for Split<'_> {}

#[inline(always)]
unsafe fn run_part<S: Simd>(sp: &Split<'_>, q: usize, s: usize) {
    with_acts!(|f, g| of sp.dir.w, clip sp.dir.clip => part_with::<S, _, _>(sp, q, s, f, g))
}

/// Part `q` of step `s`: its columns of `h·U` for the rows still running, its gates, its units
/// of the next state and of the output.
#[inline(always)]
unsafe fn part_with<S: Simd, F: ActFn, G: ActFn>(sp: &Split<'_>, q: usize, s: usize, f: F, g: G) {
    let Some(part) = sp.parts.get(q) else {
        return;
    };
    let (j0, width, hp) = (part.j0, part.width, sp.dir.hp);
    let acc = sp.acc.add(q * sp.acc_part);
    let acc_stride = part.u.cols();
    // Output columns this part owns (padding units have none).
    let n_out = sp.dir.h.saturating_sub(j0).min(width);
    let gx_at = |i: usize, s: usize| sp.dir.gx_row(i, s).add(j0);
    let active = sp.dir.lens.partition_point(|&l| l > s);
    let (cur, next) = (sp.bufs[s % 2], sp.bufs[(s + 1) % 2]);
    // The other parts' units of the state were just written by other cores: ask for all of
    // their cache lines at once, rather than one miss at a time as the product reaches them.
    for i in 0..active {
        let row = cur.add(i * hp);
        let mut off = 0;
        while off < hp {
            if off + 16 <= j0 || off >= j0 + width {
                S::prefetch(row.add(off));
            }
            off += 16;
        }
    }
    for i in 0..active {
        if sp.dir.lens[i] > s + 1 {
            let gn = gx_at(i, s + 1);
            for gate in 0..3 {
                let mut off = 0;
                while off < width {
                    S::prefetch(gn.add(gate * hp + off));
                    off += 16;
                }
            }
        }
    }
    matmul::<S>(Product {
        u: &part.u,
        a: cur,
        a_stride: hp,
        rows: active,
        out: acc,
        out_stride: acc_stride,
        reverse: s % 2 == 1,
    });
    for i in 0..active {
        let flags = sp.dir.mask_flags(i, s);
        let dst = sp.dir.out_row(i, s).add(j0);
        let (h_in, h_out) = (cur.add(i * hp + j0), next.add(i * hp + j0));
        if flags & 1 == 1 {
            update_after::<S, F, G>(
                f,
                g,
                Gates {
                    width,
                    gs: hp,
                    ga: width,
                },
                gx_at(i, s),
                sp.dir.w.bias.as_ptr().add(j0),
                sp.dir.w.b_hn.as_ptr().add(j0),
                acc.add(i * acc_stride),
                h_in,
                h_out,
            );
            std::ptr::copy_nonoverlapping(h_out, dst, n_out);
        } else {
            // A masked step: the state carries over (see `write_masked`).
            std::ptr::copy_nonoverlapping(h_in, h_out, width);
            if sp.dir.repeats(flags) {
                std::ptr::copy_nonoverlapping(h_out, dst, n_out);
            } else {
                std::ptr::write_bytes(dst, 0, n_out);
            }
        }
    }
}

/// Runs [`Split`] as thread `me` of its team: every thread that takes part calls it with its own
/// `me`; parts whose owner is late are taken over ([`super::team::StepTeam`]), so it finishes
/// even if it runs alone.
pub(crate) fn run_split_dispatch(isa: simd::Isa, sp: &Split<'_>, me: usize) {
    let steps = sp.dir.lens.first().copied().unwrap_or(0);
    sp.team.run(me, steps, |q, s| match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Isa::detect` saw AVX-512F on this CPU; buffer sizes are `CpuGru`'s contract,
        // and the team runs each (part, step) once, after the step before.
        simd::Isa::Avx512 => unsafe { part_avx512(sp, q, s) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Isa::detect` saw AVX2 and FMA on this CPU.
        simd::Isa::Avx2 => unsafe { part_avx2(sp, q, s) },
        // SAFETY: portable code needs no CPU feature.
        simd::Isa::Portable => unsafe { run_part::<simd::Portable>(sp, q, s) },
    });
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
unsafe fn part_avx512(sp: &Split<'_>, q: usize, s: usize) {
    run_part::<simd::Avx512>(sp, q, s)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn part_avx2(sp: &Split<'_>, q: usize, s: usize) {
    run_part::<simd::Avx2>(sp, q, s)
}

/// Runs `job` on the best ISA; the `#[target_feature]` entry points make every inlined kernel
/// above compile to that ISA.
pub(crate) fn run_dispatch(isa: simd::Isa, job: &mut Job<'_>) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Isa::detect` saw AVX-512F on this CPU; buffer sizes are the caller's contract,
        // checked by `CpuGru` when it sizes the workspace.
        simd::Isa::Avx512 => unsafe { run_avx512(job) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Isa::detect` saw AVX2 and FMA on this CPU.
        simd::Isa::Avx2 => unsafe { run_avx2(job) },
        // SAFETY: portable code needs no CPU feature.
        simd::Isa::Portable => unsafe { run::<simd::Portable>(job) },
    }
}

/// `out = x · U` ([`super::kernel::gemm`]) on the best ISA.
///
/// # Safety
/// The buffers must satisfy [`super::kernel::gemm`]'s contract.
pub(crate) unsafe fn gemm_dispatch(isa: simd::Isa, p: Product<'_>) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Isa::detect_up_to` saw AVX-512F (and AVX2, FMA); buffers per our contract.
        simd::Isa::Avx512 => unsafe { gemm_avx512(p) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Isa::detect_up_to` saw AVX2 and FMA.
        simd::Isa::Avx2 => unsafe { gemm_avx2(p) },
        // SAFETY: portable code needs no CPU feature.
        simd::Isa::Portable => unsafe { super::kernel::gemm::<simd::Portable>(p) },
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
unsafe fn gemm_avx512(p: Product<'_>) {
    super::kernel::gemm::<simd::Avx512>(p)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn gemm_avx2(p: Product<'_>) {
    super::kernel::gemm::<simd::Avx2>(p)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
unsafe fn run_avx512(job: &mut Job<'_>) {
    run::<simd::Avx512>(job)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn run_avx2(job: &mut Job<'_>) {
    run::<simd::Avx2>(job)
}

/// [`super::kernel::stream_fma`] on the best ISA.
pub(crate) fn stream_dispatch(isa: simd::Isa, data: &[f32], x: f32, reverse: bool) -> f32 {
    let (p, n) = (data.as_ptr(), data.len());
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Isa::detect` saw AVX-512F on this CPU; `p` holds `n` floats.
        simd::Isa::Avx512 => unsafe { stream_avx512(p, n, x, reverse) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Isa::detect` saw AVX2 and FMA on this CPU.
        simd::Isa::Avx2 => unsafe { stream_avx2(p, n, x, reverse) },
        // SAFETY: portable code needs no CPU feature.
        simd::Isa::Portable => unsafe {
            super::kernel::stream_fma::<simd::Portable>(p, n, x, reverse)
        },
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
unsafe fn stream_avx512(p: *const f32, n: usize, x: f32, reverse: bool) -> f32 {
    super::kernel::stream_fma::<simd::Avx512>(p, n, x, reverse)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn stream_avx2(p: *const f32, n: usize, x: f32, reverse: bool) -> f32 {
    super::kernel::stream_fma::<simd::Avx2>(p, n, x, reverse)
}

/// Rounds of [`super::kernel::fma_peak`] per call of [`fma_peak_dispatch`].
pub(crate) const FMA_PEAK_ROUNDS: usize = 100_000;

/// Flop of one round of [`super::kernel::fma_peak`] on `isa` (a multiply-add counts 2).
pub(crate) fn fma_peak_flop_per_round(isa: simd::Isa) -> usize {
    let lanes = match isa {
        #[cfg(target_arch = "x86_64")]
        simd::Isa::Avx512 => <simd::Avx512 as Simd>::W,
        #[cfg(target_arch = "x86_64")]
        simd::Isa::Avx2 => <simd::Avx2 as Simd>::W,
        simd::Isa::Portable => <simd::Portable as Simd>::W,
    };
    2 * super::kernel::PEAK_CHAINS * lanes
}

/// [`super::kernel::fma_peak`] on the best ISA, [`FMA_PEAK_ROUNDS`] rounds.
pub(crate) fn fma_peak_dispatch(isa: simd::Isa, x: f32) -> f32 {
    let n = FMA_PEAK_ROUNDS;
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Isa::detect` saw AVX-512F on this CPU.
        simd::Isa::Avx512 => unsafe { peak_avx512(n, x) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Isa::detect` saw AVX2 and FMA on this CPU.
        simd::Isa::Avx2 => unsafe { peak_avx2(n, x) },
        // SAFETY: portable code needs no CPU feature.
        simd::Isa::Portable => unsafe { super::kernel::fma_peak::<simd::Portable>(n, x) },
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
unsafe fn peak_avx512(n: usize, x: f32) -> f32 {
    super::kernel::fma_peak::<simd::Avx512>(n, x)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn peak_avx2(n: usize, x: f32) -> f32 {
    super::kernel::fma_peak::<simd::Avx2>(n, x)
}
