//! Streaming on every path, through the one [`Stream`] trait: a sequence fed step by step, or in
//! chunks of any lengths, gives the one-forward result of its path (and the f64 reference) on
//! the f64 reference (a stream written here on `reference::forward`), [`CpuStream`] and
//! [`GpuStream`]; `set_state` is a forward with h0; resetting a row restarts that row alone.
//!
//! The GPU cases skip with a message where no adapter exists, and fail under `REQUIRE_GPU=1`.

use crate::common;
use crate::gpu_common;

use common::random::{Rng, random_gru};
use gpu_common::ctx;
use wgpu_gru::cpu::{CpuGru, CpuStream};
use wgpu_gru::gpu::{Algorithm, GpuGru, GpuOptions, GpuStream};
use wgpu_gru::{Batch, Steps, Stream};
use wgpu_gru::{
    Direction, Error, Gru, GruConfig, GruOutput, Result, SeqInput, Variant, max_abs_diff, reference,
};

/// Every path against the f64 reference's one forward, as in the rest of the suite.
const TOL: f32 = 1e-5;
/// The CPU stream against one `CpuGru::forward`: not bit-identical, since the input
/// projection's one-row tile sums in two chains and which rows fall into it depends on `T·B`
/// (`CpuStream`'s docs); measured at most 3e-8, so 1e-7 (under 2 ulps at |h| ≤ 1).
const CPU_TOL: f32 = 1e-7;
/// The reference stream against one `reference::forward`: it rounds h to f32 at each chunk's
/// end, where the one forward carries f64; measured at most 6e-8 (1 ulp at |h| ≤ 1).
const REF_TOL: f32 = 2.5e-7;

/// The f64 reference as a stream: each chunk is one `reference::forward` whose h0 is the state
/// the previous chunk left, carried in f32 as every stream carries it.
struct RefStream {
    gru: Gru,
    batch: usize,
    state: Vec<f32>,
}

impl RefStream {
    fn new(gru: &Gru, batch: usize) -> RefStream {
        let c = &gru.config;
        RefStream {
            gru: gru.clone(),
            batch,
            state: vec![0.0; c.num_layers * batch * c.hidden_size],
        }
    }
}

impl Stream for RefStream {
    fn config(&self) -> &GruConfig {
        &self.gru.config
    }
    fn batch(&self) -> usize {
        self.batch
    }
    fn zero_state(&mut self) -> Result<()> {
        let zeros = vec![0.0; self.state.len()];
        self.set_state(&zeros)
    }
    fn reset_row(&mut self, row: usize) -> Result<()> {
        let (b, h) = (self.batch, self.gru.config.hidden_size);
        if row >= b {
            return Err(Error::arg("row", "out of range"));
        }
        // Written apart from the crate's streams, by index: state [L, B, H].
        for l in 0..self.gru.config.num_layers {
            self.state[(l * b + row) * h..][..h].fill(0.0);
        }
        Ok(())
    }
    fn set_state(&mut self, h: &[f32]) -> Result<()> {
        if h.len() != self.state.len() {
            return Err(Error::shape("state", self.state.len(), h.len()));
        }
        self.state.copy_from_slice(h);
        Ok(())
    }
    fn state_into(&self, h: &mut [f32]) -> Result<()> {
        h.copy_from_slice(&self.state);
        Ok(())
    }
    fn seq_into(&mut self, x: &[f32], steps: Steps, out: &mut [f32]) -> Result<()> {
        let input = SeqInput::new(x, steps, Batch(self.batch)).with_h0(&self.state);
        let r = reference::forward(&self.gru, &input)?;
        out.copy_from_slice(&r.output);
        self.state = r.h_n;
        Ok(())
    }
}

/// Steps `t0..t1` of a sequence `[T, B, F]` (`[B, T, F]` when `batch_first`), in the same
/// layout.
fn steps_of(a: &[f32], batch_first: bool, t: usize, b: usize, t0: usize, t1: usize) -> Vec<f32> {
    let f = a.len() / (t * b);
    if batch_first {
        (0..b)
            .flat_map(|r| a[(r * t + t0) * f..(r * t + t1) * f].to_vec())
            .collect()
    } else {
        a[t0 * b * f..t1 * b * f].to_vec()
    }
}

/// Feeds `x` (`t` steps) to `s` in chunks of `sizes` (a chunk of one step as a `step`, others
/// as a `seq`) and returns the chunks' outputs reassembled in the whole sequence's layout, and
/// the final state.
fn feed(s: &mut dyn Stream, x: &[f32], t: usize, sizes: &[usize]) -> (Vec<f32>, Vec<f32>) {
    let c = s.config().clone();
    let (b, h) = (s.batch(), c.hidden_size);
    assert_eq!(sizes.iter().sum::<usize>(), t);
    let mut outs = Vec::new();
    let mut t0 = 0;
    for &n in sizes {
        let chunk = steps_of(x, c.batch_first, t, b, t0, t0 + n);
        let y = if n == 1 {
            s.step(&chunk).unwrap()
        } else {
            s.seq(&chunk, Steps(n)).unwrap()
        };
        assert_eq!(y.len(), n * b * h);
        outs.push(y);
        t0 += n;
    }
    let y = if c.batch_first {
        (0..b)
            .flat_map(|r| {
                outs.iter()
                    .zip(sizes)
                    .flat_map(move |(o, &n)| o[r * n * h..(r + 1) * n * h].to_vec())
            })
            .collect()
    } else {
        outs.concat()
    };
    (y, s.state().unwrap())
}

/// Chunkings of `t` steps: one step at a time, 2, 3, 1, 2, 3, 1, …, random lengths of 1 to 5,
/// and the whole sequence at once.
fn chunkings(t: usize, seed: u64) -> Vec<Vec<usize>> {
    let cut = |mut next: Box<dyn FnMut() -> usize>| {
        let (mut v, mut left) = (Vec::new(), t);
        while left > 0 {
            let n = next().min(left);
            v.push(n);
            left -= n;
        }
        v
    };
    let mut k = 0;
    let cyclic = cut(Box::new(move || {
        k += 1;
        [2, 3, 1][(k - 1) % 3]
    }));
    let mut rng = Rng(seed * 31 + 7);
    let random = cut(Box::new(move || 1 + rng.below(5)));
    vec![vec![1; t], cyclic, random, vec![t]]
}

fn diff(y: &[f32], h: &[f32], want: &GruOutput) -> f32 {
    max_abs_diff(y, &want.output).max(max_abs_diff(h, &want.h_n))
}

/// The models every path is checked on: H = 1, 7 and 65, one and two layers, both variants,
/// time-major and batch-first; with (T, B).
fn cases() -> Vec<(Gru, usize, usize)> {
    let bf = |c: GruConfig| GruConfig {
        batch_first: true,
        ..c
    };
    [
        (GruConfig::new(3, 1), 9, 2),
        (
            GruConfig::new(4, 7).with_variant(Variant::ResetBefore),
            10,
            3,
        ),
        (GruConfig::new(5, 65).with_layers(2), 8, 2),
        (
            bf(GruConfig::new(6, 7).with_layers(2)).with_variant(Variant::ResetBefore),
            7,
            4,
        ),
        (bf(GruConfig::new(2, 65)), 6, 1),
        (bf(GruConfig::new(3, 1).with_layers(2)), 5, 3),
    ]
    .into_iter()
    .enumerate()
    .map(|(k, (c, t, b))| (random_gru(c, 200 + k as u64), t, b))
    .collect()
}

/// A path under test: its streams of `b` rows and its one forward.
trait Path {
    fn stream(&self, b: usize) -> Result<Box<dyn Stream + '_>>;
    fn forward(&self, input: &SeqInput<'_>) -> GruOutput;
}

impl Path for Gru {
    fn stream(&self, b: usize) -> Result<Box<dyn Stream + '_>> {
        Ok(Box::new(RefStream::new(self, b)))
    }
    fn forward(&self, input: &SeqInput<'_>) -> GruOutput {
        reference::forward(self, input).unwrap()
    }
}

impl Path for CpuGru {
    fn stream(&self, b: usize) -> Result<Box<dyn Stream + '_>> {
        Ok(Box::new(CpuStream::new(self, b)?))
    }
    fn forward(&self, input: &SeqInput<'_>) -> GruOutput {
        CpuGru::forward(self, input).unwrap()
    }
}

impl Path for GpuGru {
    fn stream(&self, b: usize) -> Result<Box<dyn Stream + '_>> {
        Ok(Box::new(GpuStream::new(self, b)?))
    }
    fn forward(&self, input: &SeqInput<'_>) -> GruOutput {
        GpuGru::forward(self, input).unwrap()
    }
}

/// Checks every case on the path `build` makes of its model (`name` in messages): any chunking
/// (within `same` of the path's one forward), and with `reset`, row resets. Returns the largest
/// differences.
fn check_path(
    name: &str,
    cases: &[(Gru, usize, usize)],
    same: f32,
    reset: bool,
    build: &dyn Fn(&Gru) -> Box<dyn Path>,
) -> Worst {
    let mut worst = Worst::default();
    for (k, (gru, t, b)) in cases.iter().enumerate() {
        let path = build(gru);
        check_chunkings(name, &*path, gru, (*t, *b), k as u64 + 1, same, &mut worst);
        if reset {
            check_reset(name, &*path, gru, same);
        }
    }
    worst
}

/// Largest differences seen, for the report: (vs the path's own forward, vs the reference).
#[derive(Default, Debug)]
struct Worst(f32, f32);

impl std::fmt::Display for Worst {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "max |Δ| {:e} vs its one forward, {:e} vs the reference",
            self.0, self.1
        )
    }
}

/// Any chunking of `x`, from zero state and from an h0 given by `set_state`, equals the one
/// forward of the stream's own path (within `same`) and the f64 reference (within [`TOL`]).
fn check_chunkings(
    name: &str,
    path: &dyn Path,
    gru: &Gru,
    (t, b): (usize, usize),
    seed: u64,
    same: f32,
    worst: &mut Worst,
) {
    let c = &gru.config;
    let mut rng = Rng(seed | 1);
    let x = rng.vec(t * b * c.input_size, 1.0);
    let h0 = rng.vec(c.num_layers * b * c.hidden_size, 0.5);
    for with_h0 in [false, true] {
        let mut input = SeqInput::new(&x, Steps(t), Batch(b));
        if with_h0 {
            input = input.with_h0(&h0);
        }
        let own = path.forward(&input);
        let want = reference::forward(gru, &input).unwrap();
        for sizes in chunkings(t, seed) {
            let mut s = path.stream(b).unwrap();
            if with_h0 {
                s.set_state(&h0).unwrap();
                assert_eq!(s.state().unwrap(), h0, "{name}: set_state then state");
            }
            let (y, h) = feed(&mut *s, &x, t, &sizes);
            let (e_own, e_ref) = (diff(&y, &h, &own), diff(&y, &h, &want));
            worst.0 = worst.0.max(e_own);
            worst.1 = worst.1.max(e_ref);
            assert!(
                e_own <= same && e_ref <= TOL,
                "{name}, chunks {sizes:?}, h0 {with_h0}, {c:?}: vs its one forward {e_own:e}, \
                 vs the reference {e_ref:e}"
            );
        }
    }
}

/// Row 1 is reset after `t1` steps: its rest equals a fresh start on the rest, while the other
/// rows carry on as in the uninterrupted sequence. Then `zero_state` restarts every row.
fn check_reset(name: &str, path: &dyn Path, gru: &Gru, tol: f32) {
    let c = &gru.config;
    let (i, h, b, t1, t2) = (c.input_size, c.hidden_size, 3usize, 5usize, 6usize);
    let t = t1 + t2;
    let x = Rng(99).vec(t * b * i, 1.0);
    let whole = path.forward(&SeqInput::new(&x, Steps(t), Batch(b)));
    let first = steps_of(&x, c.batch_first, t, b, 0, t1);
    let second = steps_of(&x, c.batch_first, t, b, t1, t);
    let fresh = path.forward(&SeqInput::new(&second, Steps(t2), Batch(b)));

    let mut s = path.stream(b).unwrap();
    s.seq(&first, Steps(t1)).unwrap();
    s.reset_row(1).unwrap();
    let y = s.seq(&second, Steps(t2)).unwrap();
    let state = s.state().unwrap();
    for step in 0..t2 {
        for r in 0..b {
            // Output [T, B, H], or [B, T, H] batch-first.
            let at = |tt: usize, steps: usize| {
                if c.batch_first {
                    (r * steps + tt) * h
                } else {
                    (tt * b + r) * h
                }
            };
            let got = &y[at(step, t2)..][..h];
            let want = if r == 1 {
                &fresh.output[at(step, t2)..][..h]
            } else {
                &whole.output[at(t1 + step, t)..][..h]
            };
            let e = max_abs_diff(got, want);
            assert!(e <= tol, "{name}: step {step} row {r}: {e:e}");
        }
    }
    for l in 0..c.num_layers {
        for r in 0..b {
            let got = &state[(l * b + r) * h..][..h];
            let want = if r == 1 { &fresh.h_n } else { &whole.h_n };
            let e = max_abs_diff(got, &want[(l * b + r) * h..][..h]);
            assert!(e <= tol, "{name}: layer {l} row {r}: {e:e}");
        }
    }

    s.zero_state().unwrap();
    assert_eq!(s.state().unwrap(), vec![0.0; c.num_layers * b * h]);
    let y = s.seq(&second, Steps(t2)).unwrap();
    let e = diff(&y, &s.state().unwrap(), &fresh);
    assert!(e <= tol, "{name}: after zero_state: {e:e}");
}

#[test]
fn reference_stream_any_chunking_equals_one_forward() {
    let worst = check_path("reference", &cases(), REF_TOL, true, &|g| {
        Box::new(g.clone())
    });
    eprintln!("reference stream: {worst}");
}

#[test]
fn cpu_stream_any_chunking_equals_one_forward() {
    // H = 130: with two threads the time loop splits each step's units over them.
    let mut all = cases();
    all.push((random_gru(GruConfig::new(4, 130), 300), 6, 1));
    for threads in [1, 2] {
        let worst = check_path(
            &format!("cpu ({threads} threads)"),
            &all,
            CPU_TOL,
            true,
            &|g| {
                Box::new(
                    CpuGru::new(g)
                        .unwrap()
                        .with_threads(threads)
                        .with_parallel_min_flop(0),
                )
            },
        );
        eprintln!("cpu stream ({threads} threads): {worst}");
    }
}

/// Every case on the GPU's own choice, with resets; the first four also on the forced per-step
/// and sequence algorithms (each chunk length gets a workspace of its own).
#[test]
fn gpu_stream_any_chunking_equals_one_forward() {
    let Some(ctx) = ctx() else { return };
    let all = cases();
    for algo in [Algorithm::Auto, Algorithm::PerStep, Algorithm::Sequence] {
        let auto = algo == Algorithm::Auto;
        let some = if auto { &all[..] } else { &all[..4] };
        let worst = check_path(&format!("gpu {algo:?}"), some, TOL, auto, &|g| {
            let opts = GpuOptions::default().with_algorithm(algo);
            Box::new(GpuGru::with_options(ctx, g, opts).unwrap())
        });
        eprintln!("gpu stream ({algo:?}): {worst}");
    }
}

#[test]
fn gpu_stream_more_chunk_lengths_than_cached() {
    let Some(ctx) = ctx() else { return };
    // More distinct chunk lengths than the stream caches: evicted workspaces are remade.
    let (i, h, b) = (2usize, 8usize, 2usize);
    let sizes = [1usize, 2, 3, 4, 5, 6, 1, 2, 6, 6, 3];
    let t: usize = sizes.iter().sum();
    let gru = random_gru(GruConfig::new(i, h), 11);
    let gpu = GpuGru::new(ctx, &gru).unwrap();
    let x = Rng(12).vec(t * b * i, 1.0);
    let want = gpu.forward(&SeqInput::new(&x, Steps(t), Batch(b))).unwrap();
    let (y, hn) = feed(&mut GpuStream::new(&gpu, b).unwrap(), &x, t, &sizes);
    assert!(diff(&y, &hn, &want) <= TOL);
}

/// The streams' refusals, alike on the CPU and the GPU; a refused call leaves the state as it
/// was.
fn check_errors(path: &str, s: &mut dyn Stream) {
    assert_eq!((s.batch(), s.state_len()), (2, 8));
    s.set_state(&[0.5; 8]).unwrap();
    assert!(
        matches!(s.reset_row(2), Err(Error::InvalidArgument { .. })),
        "{path}"
    );
    assert!(
        matches!(s.step(&[0.0; 3]), Err(Error::ShapeMismatch { .. })),
        "{path}"
    );
    assert!(
        matches!(s.seq(&[], Steps(0)), Err(Error::InvalidArgument { .. })),
        "{path}"
    );
    let mut out = [0.0; 7];
    assert!(
        matches!(
            s.step_into(&[0.0; 4], &mut out),
            Err(Error::ShapeMismatch { .. })
        ),
        "{path}"
    );
    assert!(
        matches!(s.set_state(&[0.0; 7]), Err(Error::ShapeMismatch { .. })),
        "{path}"
    );
    assert!(
        matches!(s.state_into(&mut out), Err(Error::ShapeMismatch { .. })),
        "{path}"
    );
    assert_eq!(s.state().unwrap(), vec![0.5; 8], "{path}");
}

/// Once it has seen its longest chunk, a CPU stream (one thread) allocates nothing per call,
/// whatever the chunk lengths.
#[test]
fn warm_cpu_stream_does_not_allocate() {
    for variant in [Variant::ResetAfter, Variant::ResetBefore] {
        let c = GruConfig::new(5, 33).with_layers(2).with_variant(variant);
        let gru = random_gru(c, 17);
        let cpu = CpuGru::new(&gru).unwrap();
        let b = 3;
        let x = Rng(3).vec(4 * b * 5, 1.0);
        let mut y = vec![0.0; 4 * b * 33];
        let mut h = vec![0.0; 2 * b * 33];
        let mut s = CpuStream::new(&cpu, b).unwrap();
        s.seq_into(&x, Steps(4), &mut y).unwrap();
        let before = common::alloc::count();
        for _ in 0..3 {
            let s: &mut dyn Stream = &mut s;
            s.step_into(&x[..b * 5], &mut y[..b * 33]).unwrap();
            s.seq_into(&x, Steps(4), &mut y).unwrap();
            s.seq_into(&x[..2 * b * 5], Steps(2), &mut y[..2 * b * 33])
                .unwrap();
            s.reset_row(1).unwrap();
            s.state_into(&mut h).unwrap();
            s.set_state(&h).unwrap();
        }
        let n = common::alloc::count() - before;
        assert_eq!(n, 0, "{variant:?}: {n} allocations in warm pushes");
    }
}

/// What cannot stream is refused with a typed error on the path `build` makes; then
/// [`check_errors`] on a stream of two rows.
fn check_refusals(path: &str, build: &dyn Fn(&Gru) -> Box<dyn Path>) {
    for (dir, back) in [
        (Direction::Reverse, false),
        (Direction::Bidirectional, false),
        (Direction::Forward, true),
    ] {
        let c = GruConfig {
            go_backwards: back,
            ..GruConfig::new(2, 4).with_direction(dir)
        };
        let refused = build(&random_gru(c, 1)).stream(1).err();
        assert!(matches!(refused, Some(Error::Unsupported(_))), "{path}");
    }
    let p = build(&random_gru(GruConfig::new(2, 4), 1));
    let refused = p.stream(0).err();
    assert!(
        matches!(refused, Some(Error::InvalidArgument { .. })),
        "{path}"
    );
    check_errors(path, &mut *p.stream(2).unwrap());
}

#[test]
fn cpu_stream_errors_are_typed() {
    check_refusals("cpu", &|g| Box::new(CpuGru::new(g).unwrap()));
}

#[test]
fn gpu_stream_errors_are_typed() {
    let Some(ctx) = ctx() else { return };
    check_refusals("gpu", &|g| Box::new(GpuGru::new(ctx, g).unwrap()));
}

/// The CPU and GPU streams, pushed the same chunks side by side, agree with each other.
#[test]
fn cpu_and_gpu_streams_agree() {
    let Some(ctx) = ctx() else { return };
    let (gru, t, b) = cases().swap_remove(2);
    let cpu = CpuGru::new(&gru).unwrap();
    let gpu = GpuGru::new(ctx, &gru).unwrap();
    let x = Rng(5).vec(t * b * gru.config.input_size, 1.0);
    let sizes = [3, 1, t - 4];
    let (yc, hc) = feed(&mut CpuStream::new(&cpu, b).unwrap(), &x, t, &sizes);
    let (yg, hg) = feed(&mut GpuStream::new(&gpu, b).unwrap(), &x, t, &sizes);
    let e = max_abs_diff(&yc, &yg).max(max_abs_diff(&hc, &hg));
    assert!(e <= 2.0 * TOL, "cpu vs gpu stream: {e:e}");
}
