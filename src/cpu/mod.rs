//! The fast f32 CPU path: [`CpuGru`].
//!
//! How one forward runs, per layer:
//! 1. the input projection `X · W_ihᵀ` for all `T·B` rows and both directions as one GEMM, on
//!    weights packed once at load and the same micro-kernels as the time loop (`kernel.rs`);
//! 2. per direction, the time loop (`recurrence.rs`): each step multiplies the running states
//!    `[B, H]` by the recurrent weights, packed once into column panels (`kernel.rs`), then
//!    applies the gates in place with vectorised `exp`/`sigmoid`/`tanh` (`simd.rs`).
//!
//! The hand kernels are compiled for AVX-512F, AVX2+FMA and portable code, and the best one this
//! CPU supports is picked at run time, so binaries need no `target-cpu` flag.
//! All arithmetic is f32; `tests/cpu/cpu_vs_reference.rs` holds it within 1e-5 of the f64
//! [`crate::reference`] (measured maxima are below 1e-6). NaN and ±∞ behave as in the reference.
//!
//! [`CpuStream`] feeds a timestep or a chunk at a time and carries h between calls (the
//! [`crate::Stream`] trait, as [`crate::gpu::GpuStream`] on the GPU).
//!
//! Where the time goes: at batch 1 each step streams all of `W_hh` (`12·H²` bytes) from L2, so
//! the time loop is bound by cache bandwidth and the GEMM by arithmetic; at larger batches both
//! are compute-bound and run near the FMA peak.

mod kernel;
mod recurrence;
mod simd;
mod stream;
mod team;

use crate::config::{GruConfig, Precision, Variant};
use crate::error::{Error, Result};
use crate::io::{GruOutput, SeqInput};
use crate::weights::Gru;
use kernel::Panels;
use recurrence::{Dir, DirWeights, Job, OutPtr, Part, SeqLayout, Split};
use simd::Isa;
pub use stream::CpuStream;

/// Padding unit of the hidden size: every vector width divides it, so the gate loops have no
/// tails. Padded lanes carry zero weights and never reach an output.
const H_ALIGN: usize = 16;

/// A SIMD instruction set level for the hand-written kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SimdLevel {
    /// Portable Rust (whatever the compile target allows).
    Portable,
    /// x86-64 AVX2 with FMA, 8 lanes.
    Avx2,
    /// x86-64 AVX-512F, 16 lanes.
    Avx512,
}

impl SimdLevel {
    /// The best level this CPU supports.
    pub fn detect() -> SimdLevel {
        level_of(Isa::detect_up_to(SimdLevel::Avx512))
    }
}

fn level_of(isa: Isa) -> SimdLevel {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => SimdLevel::Avx512,
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => SimdLevel::Avx2,
        Isa::Portable => SimdLevel::Portable,
    }
}

/// Threads the CPU path uses when asked for `n`: `n`, or with `0` one per core the OS gives this
/// process (`std::thread::available_parallelism`, 1 if unknown).
///
/// The rule everywhere (this library, `wgpu-gru run`/`bench --threads`, README): one thread
/// unless asked; `n` threads when asked, and then each forward still runs its time loop on one
/// thread where a second was measured to lose ([`CpuGru::with_threads`]).
pub fn resolve_threads(n: usize) -> usize {
    if n == 0 {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    } else {
        n
    }
}

/// A GRU prepared for fast f32 inference on the CPU.
///
/// Weights are transposed and packed once by [`CpuGru::new`]; a workspace sized for the last
/// `(T, B)` is kept, so repeated [`CpuGru::forward_into`] calls of the same shape allocate
/// nothing (with one thread). Shapes are those of [`SeqInput`] and [`GruOutput`]:
/// input `[T, B, I]` (`[B, T, I]` if `batch_first`), output `[T, B, D·H]`, states `[L·D, B, H]`.
///
/// ```
/// use wgpu_gru::{Batch, CellWeights, Gru, GruConfig, SeqInput, Steps, cpu::CpuGru};
/// let gru = Gru::single(GruConfig::new(3, 4), CellWeights::zeros(3, 4))?;
/// let mut cpu = CpuGru::new(&gru)?;
/// let x = vec![0.5f32; 2 * 1 * 3]; // T = 2, B = 1, I = 3
/// let out = cpu.forward(&SeqInput::new(&x, Steps(2), Batch(1)))?;
/// assert_eq!(out.output.len(), 2 * 1 * 4);
/// # Ok::<(), wgpu_gru::Error>(())
/// ```
#[derive(Debug)]
pub struct CpuGru {
    config: GruConfig,
    /// How the weights are stored.
    precision: Precision,
    isa: Isa,
    threads: usize,
    /// Hidden size rounded up to [`H_ALIGN`].
    hp: usize,
    layers: Vec<Layer>,
    /// Scratch reused across forwards; concurrent forwards on one layer take turns.
    ws: std::sync::Mutex<Workspace>,
    /// Forwards left to run without the unit split, because the last split one found a thread
    /// without a core of its own ([`SPLIT_BACKOFF`]).
    split_backoff: std::sync::atomic::AtomicUsize,
    /// Split forwards in a row that found a thread without a core ([`backoff_after`]).
    split_strikes: std::sync::atomic::AtomicUsize,
    /// Least flop of one layer's time loop that runs on the threads
    /// ([`CpuGru::with_parallel_min_flop`]).
    loop_min_flop: usize,
}

/// Default of [`CpuGru::with_parallel_min_flop`]: 8 MFLOP, about 0.2 ms of a batch-1 time loop
/// on one core. A forward of 2 steps at B = 1, H = 256 (0.8 MFLOP) took 0.057–0.072 ms at 2
/// threads against 0.026 on one: starting a thread costs 12–110 µs here (median 57).
pub const TIME_LOOP_THREADS_MIN_FLOP: usize = 8_000_000;

/// Flop of one layer's time loop, `6·T·B·D·H²` (saturating), which
/// [`CpuGru::with_parallel_min_flop`] compares.
pub(crate) fn time_loop_flop(steps: usize, batch: usize, directions: usize, h: usize) -> usize {
    [steps, batch, directions, h, h]
        .into_iter()
        .fold(6, usize::saturating_mul)
}

/// Most forwards that run their time loop without the split after split ones found the
/// machine busy (a thread lost its core and left): on a machine whose other cores are taken, a
/// loop that meets every few microseconds loses to one thread.
const SPLIT_BACKOFF: usize = 8;

/// Forwards to run without the split after `strikes` split forwards in a row found the machine
/// busy: 0, 1, 3, 7, then [`SPLIT_BACKOFF`]. One stall (a quiet VM's host can take a core for a
/// few milliseconds) costs only the rest of its own forward; a machine that stays busy is
/// retried once in 9 forwards, as before. (A fixed 8 after every stall made a quiet run's
/// medium at 2 threads take one thread's time, 53.0 against 25.2 ms, in one of two rounds.)
fn backoff_after(strikes: usize) -> usize {
    match strikes {
        0 | 1 => 0,
        2 => 1,
        3 => 3,
        4 => 7,
        _ => SPLIT_BACKOFF,
    }
}

impl Clone for CpuGru {
    /// The same model, with scratch of its own.
    fn clone(&self) -> Self {
        CpuGru {
            config: self.config.clone(),
            precision: self.precision,
            isa: self.isa,
            threads: self.threads,
            hp: self.hp,
            layers: self.layers.clone(),
            ws: std::sync::Mutex::new(Workspace::default()),
            split_backoff: std::sync::atomic::AtomicUsize::new(0),
            split_strikes: std::sync::atomic::AtomicUsize::new(0),
            loop_min_flop: self.loop_min_flop,
        }
    }
}

/// One layer's packed weights.
#[derive(Debug, Clone)]
struct Layer {
    /// Input features of this layer.
    in_size: usize,
    /// `W_ihᵀ` of every direction side by side, packed as column panels over `D·3·Hp` columns:
    /// direction `d`, gate `g`, unit `j` is column `d·3·Hp + g·Hp + j` (padding is zero).
    w_panels: Panels,
    /// Per direction.
    dirs: Vec<DirWeights>,
}

/// Buffers reused across forwards; only grown, never shrunk.
#[derive(Debug, Clone, Default)]
struct Workspace {
    /// Input projection `[T·B, D·3·Hp]`.
    gx: Vec<f32>,
    /// Outputs of inner layers, ping-ponged, `[T·B, D·H]`.
    mid: [Vec<f32>; 2],
    /// States `[D, B, Hp]`, rows in chunk order.
    state: Vec<f32>,
    /// Recurrent products `[D, B, acc_cols]`.
    acc: Vec<f32>,
    /// The second state buffer of the row-split time loop, `[Hp]`.
    state2: Vec<f32>,
    /// Reset-before: `r ⊙ h`, `[D, B, Hp]`.
    rh: Vec<f32>,
    /// Reset-before: `U_n·(r ⊙ h)`, `[D, B, acc_n_cols]`.
    acc_n: Vec<f32>,
    /// Original batch index of each state row; chunks are contiguous, each sorted by length.
    rows: Vec<usize>,
    /// Length of each state row.
    lens: Vec<usize>,
    /// Mask flags `[B, T]` (`SeqInput::mask_flags`), when the input has a mask.
    mask: Vec<u32>,
}

/// Sets `v` to `n` elements without shrinking its capacity (no allocation once warm).
fn resize(v: &mut Vec<f32>, n: usize) {
    v.resize(n, 0.0);
}

impl CpuGru {
    /// Validates `gru` and packs its weights for the CPU kernels (single-threaded by default).
    pub fn new(gru: &Gru) -> Result<CpuGru> {
        CpuGru::with_precision(gru, Precision::F32)
    }

    /// As [`CpuGru::new`], with the weights stored as `precision` says. With
    /// [`Precision::F16Weights`] the results are those of `gru` with W_ih, W_hh and b_hh rounded
    /// to f16 (as on the GPU); W_hh is kept as f16, which halves the bytes each step reads and
    /// pays where a step streams its weights from the caches (small batches); at large batches
    /// the widening costs more than the bytes save.
    pub fn with_precision(gru: &Gru, precision: Precision) -> Result<CpuGru> {
        gru.validate()?;
        let f16 = precision == Precision::F16Weights;
        // The value the model computes with: f16-rounded where `precision` says.
        let q = |v: f32| {
            if f16 {
                half::f16::from_f32(v).to_f32()
            } else {
                v
            }
        };
        let c = &gru.config;
        let h = c.hidden_size;
        let hp = h.div_ceil(H_ALIGN) * H_ALIGN;
        let d_n = c.num_directions();
        let n_cols = d_n * 3 * hp;
        let mut layers = Vec::with_capacity(c.num_layers);
        for (l, cells) in gru.weights.layers.iter().enumerate() {
            let in_size = c.layer_input_size(l);
            let mut dirs = Vec::with_capacity(d_n);
            for (d, cell) in cells.iter().enumerate() {
                let u_at = |g: usize, c: usize, k: usize| {
                    if c < h {
                        q(cell.w_hh[(g * h + c) * h + k])
                    } else {
                        0.0
                    }
                };
                let (u, u_n) = match c.variant {
                    Variant::ResetAfter => (
                        Panels::pack_as(f16, 3 * hp, h, |col, k| u_at(col / hp, col % hp, k)),
                        None,
                    ),
                    Variant::ResetBefore => (
                        Panels::pack_as(f16, 2 * hp, h, |col, k| u_at(col / hp, col % hp, k)),
                        Some(Panels::pack_as(f16, hp, h, |col, k| u_at(2, col, k))),
                    ),
                };
                let mut bias = vec![0.0f32; 3 * hp];
                let mut b_hn = vec![0.0f32; hp];
                for j in 0..h {
                    for g in 0..2 {
                        bias[g * hp + j] = cell.b_ih[g * h + j] + q(cell.b_hh[g * h + j]);
                    }
                    match c.variant {
                        Variant::ResetAfter => {
                            bias[2 * hp + j] = cell.b_ih[2 * h + j];
                            b_hn[j] = q(cell.b_hh[2 * h + j]);
                        }
                        Variant::ResetBefore => {
                            bias[2 * hp + j] = cell.b_ih[2 * h + j] + q(cell.b_hh[2 * h + j]);
                        }
                    }
                }
                let acts = c.activations_for(d);
                dirs.push(DirWeights {
                    u,
                    u_n,
                    bias,
                    b_hn,
                    f: acts.f,
                    g: acts.g,
                    parts: Vec::new(),
                });
            }
            // Column d·3·Hp + g·Hp + j is W_ih row g·H + j of direction d.
            let w_panels = Panels::pack(n_cols, in_size, |col, k| {
                let (d, g, j) = (col / (3 * hp), col % (3 * hp) / hp, col % hp);
                if j < h {
                    q(cells[d].w_ih[(g * h + j) * in_size + k])
                } else {
                    0.0
                }
            });
            layers.push(Layer {
                in_size,
                w_panels,
                dirs,
            });
        }
        Ok(CpuGru {
            config: c.clone(),
            precision,
            isa: Isa::detect_up_to(SimdLevel::Avx512),
            threads: 1,
            hp,
            layers,
            ws: std::sync::Mutex::new(Workspace::default()),
            split_backoff: std::sync::atomic::AtomicUsize::new(0),
            split_strikes: std::sync::atomic::AtomicUsize::new(0),
            loop_min_flop: TIME_LOOP_THREADS_MIN_FLOP,
        })
    }

    /// Runs a layer's time loop on the threads only when its work, `6·T·B·D·H²` flop, is at
    /// least `flop` (default [`TIME_LOOP_THREADS_MIN_FLOP`]); smaller ones, such as a stream's
    /// short chunks, run on the calling thread, where starting threads would cost more than
    /// they save. `0` uses the threads whatever the size. (The input projection has its own
    /// rule: it is split from 32 MFLOP.)
    pub fn with_parallel_min_flop(mut self, flop: usize) -> Self {
        self.loop_min_flop = flop;
        self
    }

    /// Uses up to `n` threads (`0` is taken as 1; [`resolve_threads`] turns 0 into one per
    /// core). The input projection hands bands of rows to them. The time loop of a reset-after,
    /// one-direction model with `H ≥ 128` splits each step's hidden units over them, at any
    /// batch, and meets once per step (an atomic count, no mutex); other models split batch
    /// rows and directions (rows are independent), and run batch 1 on one thread, where a
    /// second thread was measured to lose. Threads live for one layer's forward, never one step.
    /// Where a thread finds no free core (a busy machine), the others take over its share, and
    /// the next few forwards run on one thread before threads are tried again. A forward whose
    /// time loop is smaller than [`CpuGru::with_parallel_min_flop`] runs on one thread.
    pub fn with_threads(mut self, n: usize) -> Self {
        self.threads = n.max(1);
        let parts = split_parts(self.threads, &self.config);
        let hp = self.hp;
        for layer in &mut self.layers {
            for dir in &mut layer.dirs {
                dir.parts = if parts > 1 {
                    pack_parts(&dir.u, hp, parts)
                } else {
                    Vec::new()
                };
            }
        }
        self
    }

    /// Caps the hand kernels' instruction set at `level` (to test or compare the fallbacks);
    /// the CPU's own support still bounds it. The GEMM keeps its own run-time choice.
    pub fn with_max_simd(mut self, level: SimdLevel) -> Self {
        self.isa = Isa::detect_up_to(level);
        self
    }

    /// The instruction set the hand kernels use.
    pub fn simd(&self) -> SimdLevel {
        level_of(self.isa)
    }

    /// How the weights are stored ([`CpuGru::with_precision`]).
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Threads used.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// The model's configuration.
    pub fn config(&self) -> &GruConfig {
        &self.config
    }

    /// Runs one forward and returns a new [`GruOutput`] (`output` `[T, B, D·H]`, `h_n`
    /// `[L·D, B, H]`).
    pub fn forward(&self, input: &SeqInput<'_>) -> Result<GruOutput> {
        let mut out = GruOutput {
            output: Vec::new(),
            h_n: Vec::new(),
        };
        self.forward_into(input, &mut out)?;
        Ok(out)
    }

    /// Runs one forward into `out`, resizing its vectors (keeping their capacity), so that
    /// repeated calls of the same `(T, B)` allocate nothing with one thread.
    pub fn forward_into(&self, input: &SeqInput<'_>, out: &mut GruOutput) -> Result<()> {
        input.validate(&self.config)?;
        let c = &self.config;
        let (t_len, b_len) = (input.steps, input.batch);
        let h = c.hidden_size;
        let hp = self.hp;
        let d_n = c.num_directions();
        let l_n = c.num_layers;
        let out_w = d_n * h;
        let rows_n = t_len * b_len;
        resize(&mut out.output, rows_n * out_w);
        resize(&mut out.h_n, l_n * d_n * b_len * h);
        if rows_n == 0 {
            // No steps: the state passes through unchanged.
            match input.h0 {
                Some(h0) => out.h_n.copy_from_slice(h0),
                None => out.h_n.fill(0.0),
            }
            return Ok(());
        }

        // Row stride of the projection: whole panels, so the GEMM's tiles never spill over.
        let gx_cols = (d_n * 3 * hp).div_ceil(kernel::NR) * kernel::NR;
        let Workspace {
            gx,
            mid,
            state,
            state2,
            acc,
            rh,
            acc_n,
            rows,
            lens,
            mask,
        } = &mut *self
            .ws
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let masked = input.fill_mask_flags(mask);
        let first = self.layers.first().and_then(|l| l.dirs.first());
        let acc_cols = first.map_or(0, |d| d.u.cols());
        let acc_n_cols = first.and_then(|d| d.u_n.as_ref()).map_or(0, Panels::cols);
        resize(gx, rows_n * gx_cols);
        resize(state, d_n * b_len * hp);
        resize(rh, if acc_n_cols > 0 { d_n * b_len * hp } else { 0 });
        resize(acc_n, d_n * b_len * acc_n_cols);

        // With threads and a model that has parts (reset-after, one direction, H ≥ 128), the
        // step's units are split over the threads (`Split`), at batch 1 only if its W_hh is
        // large enough; while backing off after a busy machine was seen, or where the time loop
        // is too small to pay for starting threads, this forward runs on one thread.
        let loop_pays = time_loop_flop(t_len, b_len, d_n, h) >= self.loop_min_flop;
        let has_parts = first.is_some_and(|d| !d.parts.is_empty());
        let worth = b_len > 1 || first.is_some_and(|d| d.u.bytes() >= SPLIT_MIN_BYTES_B1);
        let split = has_parts && worth && loop_pays && self.take_split_turn();
        let threads = if (has_parts && !split) || !loop_pays {
            1
        } else {
            self.threads
        };
        let acc_part =
            b_len * first.map_or(0, |d| d.parts.iter().map(|p| p.u.cols()).max().unwrap_or(0));
        let n_parts = first.map_or(0, |d| d.parts.len());
        resize(acc, (d_n * b_len * acc_cols).max(n_parts * acc_part));
        resize(state2, if split { b_len * hp } else { 0 });

        // Rows sorted by length, longest first (ties by index: deterministic, and an unstable
        // sort does not allocate), then dealt round-robin into chunks that balance the work.
        let n_chunks = if split {
            1
        } else {
            (threads / d_n).clamp(1, b_len)
        };
        let len_of = |b: usize| input.lengths.map_or(t_len, |l| l[b]);
        rows.clear();
        rows.extend(0..b_len);
        rows.sort_unstable_by_key(|&b| (std::cmp::Reverse(len_of(b)), b));
        if n_chunks > 1 {
            let sorted = rows.clone();
            rows.clear();
            for ch in 0..n_chunks {
                rows.extend(sorted.iter().skip(ch).step_by(n_chunks));
            }
        }
        lens.clear();
        lens.extend(rows.iter().map(|&b| len_of(b)));
        // Chunk `ch` holds state rows `bounds(ch)`.
        let bounds = |ch: usize| {
            let lo = ch * (b_len / n_chunks) + ch.min(b_len % n_chunks);
            let n = b_len / n_chunks + usize::from(ch < b_len % n_chunks);
            (lo, lo + n)
        };

        let [mid0, mid1] = mid;
        for (l, layer) in self.layers.iter().enumerate() {
            let last = l + 1 == l_n;
            let (prev, next) = if l % 2 == 0 {
                (&*mid1, &mut *mid0)
            } else {
                (&*mid0, &mut *mid1)
            };
            let x: &[f32] = if l == 0 { input.x } else { prev };
            let y: &mut Vec<f32> = if last { &mut out.output } else { next };
            resize(y, rows_n * out_w);
            if input.lengths.is_some() {
                // Steps past a row's length are never written and must read as 0.
                y.fill(0.0);
            }

            input_projection(self.isa, threads, layer, x, rows_n, gx, gx_cols)?;

            // Initial states, in state-row order; padded lanes start (and stay) harmless.
            state.fill(0.0);
            if let Some(h0) = input.h0 {
                for d in 0..d_n {
                    for (p, &b) in rows.iter().enumerate() {
                        let src = ((l * d_n + d) * b_len + b) * h;
                        let dst = (d * b_len + p) * hp;
                        state[dst..dst + h].copy_from_slice(&h0[src..src + h]);
                    }
                }
            }

            let ctx = JobCtx {
                layer,
                h,
                hp,
                gx: &gx[..],
                gx_cols,
                rows: &rows[..],
                lens: &lens[..],
                config: c,
                steps: t_len,
                batch: b_len,
                out: OutPtr(y.as_mut_ptr()),
                mask: masked.then_some(&mask[..]),
                zero_output: input.zero_output_for_mask,
            };
            let isa = self.isa;
            if split {
                let dir = &layer.dirs[0];
                let step_team = team::StepTeam::new(dir.parts.len());
                let sp = Split {
                    dir: ctx.dir(0, 0, rows.len()),
                    parts: &dir.parts,
                    bufs: [state.as_mut_ptr(), state2.as_mut_ptr()],
                    acc: acc.as_mut_ptr(),
                    acc_part,
                    team: &step_team,
                };
                std::thread::scope(|s| {
                    let sp = &sp;
                    for t in 1..dir.parts.len() {
                        // A thread that cannot be started leaves its parts to the others.
                        let _ = std::thread::Builder::new()
                            .spawn_scoped(s, move || recurrence::run_split_dispatch(isa, sp, t));
                    }
                    recurrence::run_split_dispatch(isa, sp, 0);
                });
                use std::sync::atomic::Ordering::Relaxed;
                if step_team.contended() {
                    let strikes = self.split_strikes.fetch_add(1, Relaxed) + 1;
                    self.split_backoff.store(backoff_after(strikes), Relaxed);
                } else {
                    self.split_strikes.store(0, Relaxed);
                }
                for (p, &len) in lens.iter().enumerate() {
                    if !len.is_multiple_of(2) {
                        let r = p * hp..(p + 1) * hp;
                        state[r.clone()].copy_from_slice(&state2[r]);
                    }
                }
            } else {
                // Split the scratch buffers per direction, then per chunk of rows.
                let parallel = threads > 1 && d_n * n_chunks > 1;
                let mut jobs = Vec::new();
                let mut st = state.as_mut_slice();
                let mut ac = acc.as_mut_slice();
                let mut rr = rh.as_mut_slice();
                let mut an = acc_n.as_mut_slice();
                let rh_row = if acc_n_cols > 0 { hp } else { 0 };
                for d in 0..d_n {
                    for ch in 0..n_chunks {
                        let (lo, hi) = bounds(ch);
                        let n = hi - lo;
                        let (s0, s1) = std::mem::take(&mut st).split_at_mut(n * hp);
                        let (a0, a1) = std::mem::take(&mut ac).split_at_mut(n * acc_cols);
                        let (r0, r1) = std::mem::take(&mut rr).split_at_mut(n * rh_row);
                        let (n0, n1) = std::mem::take(&mut an).split_at_mut(n * acc_n_cols);
                        (st, ac, rr, an) = (s1, a1, r1, n1);
                        let mut job = ctx.job(d, lo, hi, s0, a0, r0, n0);
                        if parallel {
                            jobs.push(job);
                        } else {
                            // One thread: run now, so this path allocates nothing.
                            recurrence::run_dispatch(isa, &mut job);
                        }
                    }
                }
                if parallel {
                    let threads = threads.min(jobs.len());
                    let mut groups: Vec<Vec<Job<'_>>> = (0..threads).map(|_| Vec::new()).collect();
                    for (k, job) in jobs.into_iter().enumerate() {
                        groups[k % threads].push(job);
                    }
                    let mut groups = groups.into_iter();
                    let mine = groups.next().unwrap_or_default();
                    std::thread::scope(|s| {
                        for group in groups {
                            s.spawn(move || {
                                for mut job in group {
                                    recurrence::run_dispatch(isa, &mut job);
                                }
                            });
                        }
                        for mut job in mine {
                            recurrence::run_dispatch(isa, &mut job);
                        }
                    });
                }
            }

            // Final states, back in batch order.
            for d in 0..d_n {
                for (p, &b) in rows.iter().enumerate() {
                    let src = (d * b_len + p) * hp;
                    let dst = ((l * d_n + d) * b_len + b) * h;
                    out.h_n[dst..dst + h].copy_from_slice(&state[src..src + h]);
                }
            }
        }
        Ok(())
    }
}

/// Smallest hidden size whose step is split over threads. Measured on the 2-core project
/// machine (`wgpu-gru bench --floor --threads 2`, batch 1): at H = 64 two threads took 2× as
/// long per step as one (the step, 0.6 µs, is shorter than handing the state between cores);
/// at H = 128 they were 1.2× faster, at 256 1.6×, at 512 4.5× (each core's half of W_hh fits
/// its L2). Smaller models run their batch rows on threads, or one thread at batch 1.
const SPLIT_MIN_H: usize = 128;

/// At batch 1, the least `W_hh` (bytes as stored) whose step is split: the f32 `W_hh` of
/// H = 128. With f16 weights at H = 128 (96 KB) one step took 1.5 µs, and two threads took
/// 1.7 µs; at H = 256 (384 KB) two threads were 1.4× faster.
const SPLIT_MIN_BYTES_B1: usize = 12 * 128 * 128;

/// How many parts a step's hidden units are split into with `threads` threads (1: not
/// split).
fn split_parts(threads: usize, c: &GruConfig) -> usize {
    let h = c.hidden_size;
    if threads < 2 || h < SPLIT_MIN_H || c.variant != Variant::ResetAfter || c.num_directions() != 1
    {
        return 1;
    }
    threads.min(h.div_ceil(H_ALIGN))
}

/// Splits the `Hp` units into `n` parts of whole [`H_ALIGN`] groups (sizes differ by at most
/// one group) and packs each part's columns of `u` (`3·Hp` columns, gate `g` at `g·Hp`).
fn pack_parts(u: &Panels, hp: usize, n: usize) -> Vec<Part> {
    let groups = hp / H_ALIGN;
    let mut parts = Vec::with_capacity(n);
    let mut g0 = 0;
    for t in 0..n {
        let g = groups / n + usize::from(t < groups % n);
        let (j0, width) = (g0 * H_ALIGN, g * H_ALIGN);
        g0 += g;
        let panels = Panels::pack_as(u.is_f16(), 3 * width, u.k, |col, k| {
            u.get((col / width) * hp + j0 + col % width, k)
        });
        parts.push(Part {
            j0,
            width,
            u: panels,
        });
    }
    parts
}

impl CpuGru {
    /// Whether this forward may split its time loop by units: not while backing off.
    fn take_split_turn(&self) -> bool {
        use std::sync::atomic::Ordering;
        self.split_backoff
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_err()
    }
}

/// What every job of one layer shares.
struct JobCtx<'a> {
    layer: &'a Layer,
    h: usize,
    hp: usize,
    gx: &'a [f32],
    gx_cols: usize,
    rows: &'a [usize],
    lens: &'a [usize],
    config: &'a GruConfig,
    steps: usize,
    batch: usize,
    out: OutPtr,
    mask: Option<&'a [u32]>,
    zero_output: bool,
}

impl<'a> JobCtx<'a> {
    /// The job of direction `d` over state rows `lo..hi`, with that chunk's scratch buffers.
    #[allow(clippy::too_many_arguments)]
    fn job(
        &self,
        d: usize,
        lo: usize,
        hi: usize,
        state: &'a mut [f32],
        acc: &'a mut [f32],
        rh: &'a mut [f32],
        acc_n: &'a mut [f32],
    ) -> Job<'a> {
        Job {
            dir: self.dir(d, lo, hi),
            state,
            acc,
            rh,
            acc_n,
        }
    }

    /// What direction `d`'s pass over state rows `lo..hi` reads and writes.
    fn dir(&self, d: usize, lo: usize, hi: usize) -> Dir<'a> {
        let c = self.config;
        Dir {
            w: &self.layer.dirs[d],
            h: self.h,
            hp: self.hp,
            gx: self.gx,
            gx_stride: self.gx_cols,
            gx_col: d * 3 * self.hp,
            rows: &self.rows[lo..hi],
            lens: &self.lens[lo..hi],
            seq: SeqLayout {
                steps: self.steps,
                batch: self.batch,
                batch_first: c.batch_first,
                reverse: c.direction.is_reverse(d),
                go_backwards: c.go_backwards,
            },
            out: self.out,
            out_stride: c.num_directions() * self.h,
            out_col: d * self.h,
            clip: c.clip,
            mask: self.mask,
            zero_output: self.zero_output,
        }
    }
}

/// Fewest rows of a band of the threaded input projection (a multiple of every micro-kernel
/// height, so only the last band has a short tile).
const PROJECTION_BAND_MIN: usize = 60;

/// Least work (multiply-adds × 2) for which the input projection is split over threads: a
/// scoped thread costs 12–110 µs to start and join on the 2-core project machine (median 57),
/// so a projection under about 0.2 ms on one core runs on the calling thread alone. (At
/// B = 1, T = 512, I = 16, H = 64, splitting its 3 MFLOP made a forward take 0.35–0.74 ms
/// against 0.30 on one thread.)
const PROJECTION_THREADS_MIN_FLOP: usize = 32_000_000;

/// `gx[rows, gx_cols] = x[rows, in] · W_ihᵀ` (biases are added later, in the gate loop), split
/// by rows over `threads` threads.
fn input_projection(
    isa: Isa,
    threads: usize,
    layer: &Layer,
    x: &[f32],
    rows: usize,
    gx: &mut [f32],
    gx_cols: usize,
) -> Result<()> {
    let k = layer.in_size;
    if x.len() < rows * k || gx.len() < rows * gx_cols || gx_cols < layer.w_panels.cols() {
        return Err(Error::shape(
            "cpu input projection",
            format!("x [{rows}, {k}], gx [{rows}, {gx_cols}]"),
            format!("{} and {} elements", x.len(), gx.len()),
        ));
    }
    let gx = OutPtr(gx.as_mut_ptr());
    // Rows r0..r0+n of the projection.
    let run = |r0: usize, n: usize| {
        // SAFETY: rows r0..r0+n of x exist (checked above: x holds `rows` rows of `k`) and of
        // gx (it holds `rows` rows of `gx_cols`, which covers every panel column); callers give
        // each band of rows to one thread only.
        unsafe {
            recurrence::gemm_dispatch(
                isa,
                kernel::Product {
                    u: &layer.w_panels,
                    a: x[r0 * k..].as_ptr(),
                    a_stride: k,
                    rows: n,
                    out: gx.get().add(r0 * gx_cols),
                    out_stride: gx_cols,
                    reverse: false,
                },
            )
        }
    };
    // Rows are independent: with threads, bands of them are taken in turn from a counter, so a
    // thread that gets less of a core (a busy machine) takes fewer bands.
    let band = rows.div_ceil(4 * threads.max(1)).max(PROJECTION_BAND_MIN);
    let flop = 2 * rows * k * layer.w_panels.cols();
    if threads <= 1 || band >= rows || flop < PROJECTION_THREADS_MIN_FLOP {
        run(0, rows);
    } else {
        let n_bands = rows.div_ceil(band);
        let next = std::sync::atomic::AtomicUsize::new(0);
        let work = || {
            loop {
                let b = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if b >= n_bands {
                    break;
                }
                let r0 = b * band;
                run(r0, band.min(rows - r0));
            }
        };
        std::thread::scope(|s| {
            for _ in 1..threads.min(n_bands) {
                // A thread that cannot be started leaves its bands to the others.
                let _ = std::thread::Builder::new().spawn_scoped(s, work);
            }
            work();
        });
    }
    Ok(())
}

/// The cache-bandwidth floor of a batch-1 step: the best time, in seconds, of one pass of the
/// cheapest read-and-FMA loop over `bytes` of f32 (rounded up to whole vectors) that is already
/// in cache, out of `reps` passes after one warm-up, on `threads` threads that each stream a
/// buffer of their own of `bytes / threads` at the same time (as the split time loop does).
/// Passes alternate direction, as the time loop's steps do.
/// `12·H²` bytes is one step's `W_hh` at hidden size `H`.
pub fn stream_floor_seconds(bytes: usize, threads: usize, reps: usize) -> f64 {
    let isa = Isa::detect_up_to(SimdLevel::Avx512);
    let threads = threads.max(1);
    let n = (bytes / 4 / threads).div_ceil(128).max(1) * 128;
    // Passes per timed round: about 4 MB read, so the timer's own cost does not count.
    let inner = (1usize << 20) / n + 1;
    best_on_threads(threads, reps, inner, || {
        let data: Vec<f32> = (0..n).map(|i| (i % 7) as f32 * 0.125).collect();
        let (mut sink, mut reverse) = (0.0f32, false);
        move || {
            sink += recurrence::stream_dispatch(isa, &data, 1.0 + sink * 1e-30, reverse);
            reverse = !reverse;
            std::hint::black_box(sink);
        }
    })
}

/// The arithmetic floor: the FMA peak, in flop per second (a multiply-add counts 2), of
/// `threads` threads that each run independent FMA chains with no memory traffic, at the same
/// time; the best of `reps` rounds after one warm-up. A product of `F` flop cannot take less
/// than `F` divided by this on the CPU path's ISA.
pub fn fma_peak_flop_per_s(threads: usize, reps: usize) -> f64 {
    let isa = Isa::detect_up_to(SimdLevel::Avx512);
    let threads = threads.max(1);
    let seconds = best_on_threads(threads, reps, 8, || {
        let mut sink = 0.0f32;
        move || {
            sink += recurrence::fma_peak_dispatch(isa, 1.0 + sink * 1e-30);
            std::hint::black_box(sink);
        }
    });
    let per_pass = (recurrence::FMA_PEAK_ROUNDS * recurrence::fma_peak_flop_per_round(isa)) as f64;
    threads as f64 * per_pass / seconds
}

/// What the input projection's GEMM does on one thread: `out[M, N] = x[M, K] · Wᵀ` on packed
/// panels (the CPU path's own kernel), in flop per second (a multiply-add counts 2); the best of
/// `reps` products after one warm-up. At `M = T·B`, `K = I`, `N = 3H` it is a layer's
/// projection, so it says how close a shape can come to the FMA peak
/// ([`fma_peak_flop_per_s`]), and it compares with other libraries' SGEMM on the same sizes.
pub fn gemm_flop_per_s(m: usize, k: usize, n: usize, reps: usize) -> f64 {
    let isa = Isa::detect_up_to(SimdLevel::Avx512);
    let (m, k, n) = (m.max(1), k.max(1), n.max(1));
    let w = Panels::pack(n, k, |c, kk| ((c * 7 + kk * 3) % 17) as f32 * 0.01 - 0.08);
    let x: Vec<f32> = (0..m * k).map(|i| (i % 13) as f32 * 0.01).collect();
    let seconds = best_on_threads(1, reps, 1, || {
        let (w, x) = (&w, &x);
        let mut out = vec![0.0f32; m * w.cols()];
        move || {
            let p = kernel::Product {
                u: w,
                a: x.as_ptr(),
                a_stride: k,
                rows: m,
                out: out.as_mut_ptr(),
                out_stride: w.cols(),
                reverse: false,
            };
            // SAFETY: `x` holds `m` rows of `k`, `out` holds `m` rows of `w.cols()`, and this
            // one thread is the only one that touches them.
            unsafe { recurrence::gemm_dispatch(isa, p) };
            std::hint::black_box(out.as_ptr());
        }
    });
    2.0 * (m * k * n) as f64 / seconds
}

/// The best time, in seconds, of one call of a pass, timed over `inner` calls per round, out of
/// `reps` rounds after one warm-up; on `threads` threads that start every round together (each
/// builds its own pass with `make`), the slowest thread's best.
fn best_on_threads<P: FnMut()>(
    threads: usize,
    reps: usize,
    inner: usize,
    make: impl Fn() -> P + Sync,
) -> f64 {
    let barrier = team::SpinBarrier::new(threads);
    let one = || {
        let mut pass = make();
        let mut best = f64::INFINITY;
        for rep in 0..=reps.max(1) {
            // Start together, so the threads share the machine as the time loop's do.
            barrier.wait();
            let t0 = std::time::Instant::now();
            for _ in 0..inner {
                pass();
            }
            let dt = t0.elapsed().as_secs_f64() / inner as f64;
            if rep > 0 {
                best = best.min(dt);
            }
        }
        best
    };
    if threads == 1 {
        return one();
    }
    std::thread::scope(|s| {
        let others: Vec<_> = (1..threads).map(|_| s.spawn(one)).collect();
        let mut worst = one();
        for h in others {
            worst = worst.max(h.join().unwrap_or(f64::INFINITY));
        }
        worst
    })
}

impl crate::Forward for CpuGru {
    fn config(&self) -> &GruConfig {
        &self.config
    }
    fn forward(&self, input: &SeqInput<'_>) -> Result<GruOutput> {
        CpuGru::forward(self, input)
    }
}
