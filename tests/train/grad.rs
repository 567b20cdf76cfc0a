//! The GRU backward: the f64 reference against PyTorch autograd (the golden gradient cases in
//! `tests/data/grad/`) and against finite differences; the framework layouts of the gradients;
//! `wgpu-gru grad` on every case and backend; the GPU backward against the reference.
//!
//! GPU tests are skipped with a message when no adapter exists, unless `REQUIRE_GPU=1`.

use crate::common;
use crate::gpu_common;

use std::path::{Path, PathBuf};
use wgpu_gru::{Batch, Steps};

use common::cli::{TempDir, run_bin};
use common::random::{Rng, random_gru};
use common::{Array, data_dir, npy_file};
use wgpu_gru::formats::{self, Format, Imported, SafetensorsFile};
use wgpu_gru::train::{self, Gradients, NamedTensor};
use wgpu_gru::{Activation, Activations, Direction, Error, Gru, GruConfig, SeqInput, Variant};

/// The tolerance of the issue: `1e-4 × max(1, max |expected|)` per tensor.
const GOLDEN_TOL: f32 = 1e-4;

/// Every gradient case: `tests/data/grad/` (PyTorch autograd, from the shared golden set) and
/// `tests/data/grad_extra/` (PyTorch autograd, `scripts/grad_cases.py`).
fn grad_cases() -> Vec<PathBuf> {
    let mut v = Vec::new();
    for sub in ["grad", "grad_extra"] {
        let dir = data_dir(sub);
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        v.extend(
            rd.map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|e| e == "safetensors")),
        );
    }
    v.sort();
    v
}

/// One gradient case, loaded and converted to the canonical shapes.
struct GradCase {
    name: String,
    path: PathBuf,
    imported: Imported,
    steps: usize,
    batch: usize,
    /// Framework-shaped inputs, by the names the file uses.
    x: Array,
    h0: Option<Array>,
    lengths: Option<Vec<usize>>,
    grad_output: Array,
    grad_state: Array,
    /// Canonical `[L·D, B, H]` h0, output gradient and state gradient.
    h0_canon: Option<Vec<f32>>,
    gy_canon: Vec<f32>,
    gs_canon: Vec<f32>,
    /// `expected_grad_<name>` by `<name>`.
    expected: Vec<(String, Array)>,
    /// The names of the file's weight tensors.
    weight_names: Vec<String>,
    metadata: std::collections::BTreeMap<String, String>,
}

impl GradCase {
    fn load(path: &Path) -> GradCase {
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let file = SafetensorsFile::open(path).unwrap();
        let metadata = file.metadata().unwrap();
        let meta = formats::options_from_metadata(&metadata).unwrap();
        let imported = formats::import(&file, meta.format, &meta.options)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let shapes = imported.shapes().unwrap();
        let names = shapes.names();
        let get = |n: &str| {
            file.get_f32(n).unwrap().map(|t| Array {
                shape: t.shape,
                data: t.data,
            })
        };
        let x = get(names.x).unwrap_or_else(|| panic!("{name}: no {}", names.x));
        let (Steps(steps), Batch(batch)) = shapes.x_dims(&x.shape).unwrap();
        let h0 = get(names.h0);
        let lengths = file.get_lengths(names.lengths).unwrap().map(|(_, l)| l);
        let grad_output = get("grad_output").unwrap();
        let grad_state = get("grad_state").unwrap();
        assert_eq!(
            grad_output.shape,
            shapes.output_shape(Steps(steps), Batch(batch)),
            "{name}"
        );
        assert_eq!(grad_state.shape, shapes.state_shape(batch), "{name}");
        let h0_canon = h0
            .as_ref()
            .map(|a| shapes.state_from_framework(batch, &a.data).unwrap());
        let gy_canon = shapes
            .output_from_framework(Steps(steps), Batch(batch), &grad_output.data)
            .unwrap();
        let gs_canon = shapes
            .state_from_framework(batch, &grad_state.data)
            .unwrap();
        let mut expected = Vec::new();
        let mut weight_names = Vec::new();
        let inputs = [
            names.x,
            names.h0,
            names.lengths,
            "grad_output",
            "grad_state",
        ];
        for n in file.names().unwrap() {
            if let Some(short) = n.strip_prefix("expected_grad_") {
                expected.push((short.to_string(), get(&n).unwrap()));
            } else if !inputs.contains(&n.as_str()) && !n.starts_with("expected_") {
                weight_names.push(n);
            }
        }
        GradCase {
            name,
            path: path.to_path_buf(),
            imported,
            steps,
            batch,
            x,
            h0,
            lengths,
            grad_output,
            grad_state,
            h0_canon,
            gy_canon,
            gs_canon,
            expected,
            weight_names,
            metadata,
        }
    }

    fn gru(&self) -> &Gru {
        &self.imported.gru
    }

    fn input(&self) -> SeqInput<'_> {
        let mut i = SeqInput::new(&self.x.data, Steps(self.steps), Batch(self.batch));
        if let Some(h0) = &self.h0_canon {
            i = i.with_h0(h0);
        }
        if let Some(l) = &self.lengths {
            i = i.with_lengths(l);
        }
        i
    }

    /// Checks framework-layout gradients (named as in the file, without `expected_grad_`)
    /// against every expected tensor; returns the worst scaled error.
    fn check(&self, got: &[NamedTensor], path: &str) -> f32 {
        let mut worst = 0.0f32;
        assert_eq!(
            self.expected.len(),
            self.weight_names.len() + 2,
            "{}: expected a gradient for every weight, input and h0",
            self.name
        );
        for (name, want) in &self.expected {
            let g = got
                .iter()
                .find(|t| &t.name == name)
                .unwrap_or_else(|| panic!("{} ({path}): no gradient {name}", self.name));
            assert_eq!(
                g.shape, want.shape,
                "{} ({path}): shape of {name}",
                self.name
            );
            let scale = want.data.iter().fold(1.0f32, |m, v| m.max(v.abs()));
            let err = wgpu_gru::max_abs_diff(&g.data, &want.data) / scale;
            assert!(
                err <= GOLDEN_TOL,
                "{} ({path}): grad {name} off by {err:e} (scaled), tolerance {GOLDEN_TOL:e}",
                self.name
            );
            worst = worst.max(err);
        }
        worst
    }

    /// [`GradCase::check`] on canonical gradients, exported to the file's layout first.
    fn check_canonical(&self, g: &Gradients, path: &str) -> f32 {
        let c = &self.gru().config;
        let out = train::export_grads(self.imported.format, c, self.steps, self.batch, g).unwrap();
        self.check(&out, path)
    }
}

/// The four shared cases must be there; `grad_extra` adds more when present.
#[test]
fn golden_grad_cases_on_reference() {
    let cases = grad_cases();
    let shared = cases
        .iter()
        .filter(|p| p.parent().is_some_and(|d| d.ends_with("grad")))
        .count();
    assert_eq!(shared, 4, "expected the 4 shared cases in tests/data/grad/");
    for p in &cases {
        let case = GradCase::load(p);
        let g =
            train::reference::backward(case.gru(), &case.input(), &case.gy_canon, &case.gs_canon)
                .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        let worst = case.check_canonical(&g, "reference");
        eprintln!("{}: reference worst scaled error {worst:.2e}", case.name);
    }
}

// ---------------------------------------------------------------------------------------------
// Finite differences.

/// A random problem: model, input, optional h0 and lengths, upstream gradients.
struct Problem {
    gru: Gru,
    steps: usize,
    batch: usize,
    x: Vec<f32>,
    h0: Option<Vec<f32>>,
    lengths: Option<Vec<usize>>,
    mask: Option<Vec<bool>>,
    gy: Vec<f32>,
    gs: Vec<f32>,
}

impl Problem {
    fn new(config: GruConfig, steps: usize, batch: usize, seed: u64) -> Problem {
        let gru = random_gru(config, seed);
        let c = &gru.config;
        let mut rng = Rng(seed.wrapping_mul(0x2545_F491_4F6C_DD1D) | 1);
        let ld = c.num_layers * c.num_directions();
        Problem {
            x: rng.vec(steps * batch * c.input_size, 1.0),
            h0: Some(rng.vec(ld * batch * c.hidden_size, 0.5)),
            lengths: None,
            mask: None,
            gy: rng.vec(steps * batch * c.output_size(), 1.0),
            gs: rng.vec(ld * batch * c.hidden_size, 1.0),
            gru,
            steps,
            batch,
        }
    }
    fn with_lengths(mut self, l: &[usize]) -> Self {
        self.lengths = Some(l.to_vec());
        self
    }
    fn without_h0(mut self) -> Self {
        self.h0 = None;
        self
    }
    fn input(&self) -> SeqInput<'_> {
        let mut i = SeqInput::new(&self.x, Steps(self.steps), Batch(self.batch));
        if let Some(h) = &self.h0 {
            i = i.with_h0(h);
        }
        if let Some(l) = &self.lengths {
            i = i.with_lengths(l);
        }
        if let Some(m) = &self.mask {
            i = i.with_mask(m);
        }
        i
    }
    fn loss(&self) -> f64 {
        train::reference::loss(&self.gru, &self.input(), &self.gy, &self.gs).unwrap()
    }
    /// L from `reference::forward`'s f32 outputs, summed in f64.
    fn loss_f32_forward(&self) -> f64 {
        let out = wgpu_gru::reference::forward(&self.gru, &self.input()).unwrap();
        let y: f64 = out
            .output
            .iter()
            .zip(&self.gy)
            .map(|(&a, &b)| a as f64 * b as f64)
            .sum();
        let s: f64 = out
            .h_n
            .iter()
            .zip(&self.gs)
            .map(|(&a, &b)| a as f64 * b as f64)
            .sum();
        y + s
    }
}

/// Which parameter a finite difference perturbs.
#[derive(Debug, Clone, Copy)]
enum Param {
    X(usize),
    H0(usize),
    /// (layer, direction, tensor 0..4 = w_ih, w_hh, b_ih, b_hh, index)
    W(usize, usize, usize, usize),
}

fn slot(p: &mut Problem, which: Param) -> &mut f32 {
    match which {
        Param::X(i) => &mut p.x[i],
        Param::H0(i) => &mut p.h0.as_mut().unwrap()[i],
        Param::W(l, d, t, i) => {
            let c = &mut p.gru.weights.layers[l][d];
            match t {
                0 => &mut c.w_ih[i],
                1 => &mut c.w_hh[i],
                2 => &mut c.b_ih[i],
                _ => &mut c.b_hh[i],
            }
        }
    }
}

fn analytic(g: &Gradients, which: Param) -> f32 {
    match which {
        Param::X(i) => g.input[i],
        Param::H0(i) => g.h0[i],
        Param::W(l, d, t, i) => {
            let c = &g.weights.layers[l][d];
            [&c.w_ih, &c.w_hh, &c.b_ih, &c.b_hh][t][i]
        }
    }
}

/// Central difference of `f` in parameter `which`, with the step the f32 parameter really took.
fn central(p: &mut Problem, which: Param, eps: f32, f: &dyn Fn(&Problem) -> f64) -> f64 {
    let v0 = *slot(p, which);
    let (up, down) = (v0 + eps, v0 - eps);
    *slot(p, which) = up;
    let fu = f(p);
    *slot(p, which) = down;
    let fd = f(p);
    *slot(p, which) = v0;
    (fu - fd) / (up as f64 - down as f64)
}

/// Up to `per_tensor` random entries of every tensor (all of them when smaller).
fn sample(p: &Problem, per_tensor: usize, seed: u64) -> Vec<Param> {
    let mut rng = Rng(seed | 1);
    let mut pick = |n: usize, make: &dyn Fn(usize) -> Param, out: &mut Vec<Param>| {
        if n <= per_tensor {
            out.extend((0..n).map(make));
        } else {
            out.extend((0..per_tensor).map(|_| make(rng.below(n))));
        }
    };
    let mut out = Vec::new();
    pick(p.x.len(), &Param::X, &mut out);
    if let Some(h) = &p.h0 {
        pick(h.len(), &Param::H0, &mut out);
    }
    for (l, dirs) in p.gru.weights.layers.iter().enumerate() {
        for (d, c) in dirs.iter().enumerate() {
            for (t, n) in [c.w_ih.len(), c.w_hh.len(), c.b_ih.len(), c.b_hh.len()]
                .into_iter()
                .enumerate()
            {
                pick(n, &|i| Param::W(l, d, t, i), &mut out);
            }
        }
    }
    out
}

/// Checks the reference backward against central differences of the f64 loss (tight) and,
/// on a few entries, of `reference::forward` itself (f32 outputs: looser).
fn check_fd(mut p: Problem, per_tensor: usize, what: &str) {
    let g = train::reference::backward(&p.gru, &p.input(), &p.gy, &p.gs).unwrap();
    // The f64 loss is the one reference::forward computes before rounding.
    let (l64, l32) = (p.loss(), p.loss_f32_forward());
    assert!(
        (l64 - l32).abs() <= 1e-5 * l64.abs().max(1.0),
        "{what}: f64 loss {l64} vs reference::forward {l32}"
    );
    let params = sample(&p, per_tensor, 7);
    let mut worst = 0.0f64;
    for (k, &which) in params.iter().enumerate() {
        let a = analytic(&g, which) as f64;
        let fd = central(&mut p, which, 1e-3, &|q| q.loss());
        let err = (a - fd).abs() / a.abs().max(1.0);
        assert!(
            err < 2e-5,
            "{what}: {which:?}: backward {a} vs finite difference {fd} (f64 loss)"
        );
        worst = worst.max(err);
        if k % 7 == 0 {
            // Through reference::forward's f32 outputs.
            let fd32 = central(&mut p, which, 2e-2, &|q| q.loss_f32_forward());
            let err32 = (a - fd32).abs() / a.abs().max(1.0);
            assert!(
                err32 < 3e-3,
                "{what}: {which:?}: backward {a} vs finite difference {fd32} of reference::forward"
            );
        }
    }
    eprintln!(
        "{what}: {} parameters, worst scaled error {worst:.1e}",
        params.len()
    );
}

#[test]
fn finite_differences_h1() {
    let c = GruConfig::new(3, 1);
    check_fd(Problem::new(c.clone(), 5, 2, 1), 1000, "H=1 reset-after");
    let c = c.with_variant(Variant::ResetBefore);
    check_fd(
        Problem::new(c, 4, 3, 2).without_h0(),
        1000,
        "H=1 reset-before",
    );
}

#[test]
fn finite_differences_h7_lengths_bidirectional() {
    let mut c = GruConfig::new(4, 7).with_direction(Direction::Bidirectional);
    check_fd(
        Problem::new(c.clone(), 5, 3, 3).with_lengths(&[5, 2, 3]),
        40,
        "H=7 bidirectional lengths",
    );
    c.batch_first = true;
    c.variant = Variant::ResetBefore;
    check_fd(
        Problem::new(c, 4, 3, 4).with_lengths(&[1, 4, 2]),
        40,
        "H=7 bidirectional batch-first reset-before lengths",
    );
    let c = GruConfig::new(4, 7).with_direction(Direction::Reverse);
    check_fd(
        Problem::new(c, 5, 2, 5).with_lengths(&[3, 5]),
        40,
        "H=7 reverse lengths",
    );
}

#[test]
fn finite_differences_h65() {
    let c = GruConfig::new(6, 65);
    check_fd(Problem::new(c.clone(), 3, 2, 6), 12, "H=65 reset-after");
    check_fd(
        Problem::new(c.with_variant(Variant::ResetBefore), 3, 2, 7).with_lengths(&[2, 3]),
        12,
        "H=65 reset-before lengths",
    );
}

#[test]
fn finite_differences_two_layers() {
    let c = GruConfig::new(3, 5)
        .with_layers(2)
        .with_direction(Direction::Bidirectional);
    check_fd(
        Problem::new(c.clone(), 4, 3, 8).with_lengths(&[4, 1, 3]),
        25,
        "2 layers bidirectional lengths",
    );
    let mut c = GruConfig::new(3, 6)
        .with_layers(2)
        .with_variant(Variant::ResetBefore);
    c.go_backwards = true;
    c.batch_first = true;
    check_fd(
        Problem::new(c, 4, 2, 9),
        25,
        "2 layers go_backwards batch-first",
    );
}

#[test]
fn finite_differences_keras_mask() {
    let c = GruConfig::new(3, 4);
    let mut p = Problem::new(c, 5, 2, 10);
    // Row 0: pre-padded, row 1: a gap.
    p.mask = Some(vec![
        false, false, true, true, true, true, false, true, true, false,
    ]);
    check_fd(p, 30, "Keras mask");
    let mut c = GruConfig::new(3, 4);
    c.go_backwards = true;
    let mut p = Problem::new(c, 4, 2, 11);
    p.mask = Some(vec![true, false, true, true, false, false, true, true]);
    check_fd(p, 30, "Keras mask go_backwards");
}

#[test]
fn refuses_what_it_cannot_differentiate() {
    let mut c = GruConfig::new(2, 3);
    c.activations = vec![Activations {
        f: Activation::HardSigmoid {
            alpha: 0.2,
            beta: 0.5,
        },
        g: Activation::Tanh,
    }];
    let p = Problem::new(c, 2, 1, 12);
    let e = train::reference::backward(&p.gru, &p.input(), &p.gy, &p.gs).unwrap_err();
    assert!(matches!(e, Error::Unsupported(_)), "{e}");
    let mut c = GruConfig::new(2, 3);
    c.clip = Some(3.0);
    let p = Problem::new(c, 2, 1, 13);
    let e = train::reference::backward(&p.gru, &p.input(), &p.gy, &p.gs).unwrap_err();
    assert!(matches!(e, Error::Unsupported(_)), "{e}");
    // Upstream gradients of the wrong size.
    let p = Problem::new(GruConfig::new(2, 3), 2, 1, 14);
    let e = train::reference::backward(&p.gru, &p.input(), &p.gy[1..], &p.gs).unwrap_err();
    assert!(matches!(e, Error::ShapeMismatch { .. }), "{e}");
    let e = train::reference::backward(&p.gru, &p.input(), &p.gy, &p.gs[1..]).unwrap_err();
    assert!(matches!(e, Error::ShapeMismatch { .. }), "{e}");
}

#[test]
fn empty_problems() {
    let p = Problem::new(GruConfig::new(2, 3), 0, 2, 15);
    let g = train::reference::backward(&p.gru, &p.input(), &p.gy, &p.gs).unwrap();
    assert!(g.input.is_empty());
    assert_eq!(g.h0, p.gs, "with T = 0, h_n is h0");
    assert!(g.weights.layers[0][0].w_hh.iter().all(|&v| v == 0.0));
}

// ---------------------------------------------------------------------------------------------
// Layouts.

/// `export_weights` is the inverse of every importer: exported weights import back to the same
/// canonical model.
#[test]
fn export_weights_inverts_every_importer() {
    let mut cases: Vec<(Format, GruConfig, formats::ImportOptions)> = Vec::new();
    let opts = formats::ImportOptions::default;
    cases.push((
        Format::PyTorch,
        GruConfig::new(3, 4)
            .with_layers(2)
            .with_direction(Direction::Bidirectional),
        opts(),
    ));
    let mut keras = GruConfig::new(3, 4);
    keras.batch_first = true;
    cases.push((Format::Keras, keras.clone(), opts()));
    cases.push((
        Format::Keras,
        keras.with_variant(Variant::ResetBefore),
        opts(),
    ));
    cases.push((
        Format::Onnx,
        GruConfig::new(3, 4)
            .with_direction(Direction::Bidirectional)
            .with_variant(Variant::ResetBefore),
        opts(),
    ));
    cases.push((
        Format::Onnx,
        GruConfig::new(3, 4).with_direction(Direction::Reverse),
        formats::ImportOptions {
            linear_before_reset: true,
            direction: Some(Direction::Reverse),
            ..opts()
        },
    ));
    cases.push((
        Format::Seed,
        GruConfig::new(3, 4).with_variant(Variant::ResetBefore),
        opts(),
    ));
    for (k, (format, config, o)) in cases.into_iter().enumerate() {
        let mut gru = random_gru(config, 100 + k as u64);
        // Tensors the layout has no place for are constant zeros of such models.
        let zero_hh_bias = format == Format::Seed
            || (format == Format::Keras && gru.config.variant == Variant::ResetBefore);
        if zero_hh_bias {
            for c in gru.weights.layers.iter_mut().flatten() {
                c.b_hh.iter_mut().for_each(|v| *v = 0.0);
            }
        }
        let tensors = train::export_weights(format, &gru.config, &gru.weights).unwrap();
        let bytes = train::safetensors_bytes(&tensors, None).unwrap();
        let file = SafetensorsFile::from_bytes(bytes, format!("{format} export")).unwrap();
        let back = formats::import(&file, Some(format), &o).unwrap().gru;
        assert_eq!(back.weights, gru.weights, "{format} {:?}", gru.config);
    }
    // What a layout cannot hold is refused.
    let g = random_gru(GruConfig::new(2, 3).with_layers(2), 1);
    assert!(train::export_weights(Format::Onnx, &g.config, &g.weights).is_err());
    assert!(train::export_weights(Format::Seed, &g.config, &g.weights).is_err());
}

// ---------------------------------------------------------------------------------------------
// The CLI.

/// The command line for `case` on `backend`, its files written into `dir`.
fn grad_args(case: &GradCase, dir: &TempDir, backend: &str) -> Vec<String> {
    let w = |name: &str, a: &Array| {
        let p = dir.path(name);
        wgpu_gru::npy::write_f32(&p, &a.shape, &a.data).unwrap();
        p.display().to_string()
    };
    let mut args: Vec<String> = vec![
        "grad".into(),
        "--weights".into(),
        case.path.display().to_string(),
        "--format".into(),
        case.imported.format.name().into(),
        "--input".into(),
        w("x.npy", &case.x),
        "--grad-output".into(),
        w("gy.npy", &case.grad_output),
        "--grad-state".into(),
        w("gs.npy", &case.grad_state),
        "--out".into(),
        dir.path("g.safetensors").display().to_string(),
        "--backend".into(),
        backend.into(),
    ];
    if let Some(h0) = &case.h0 {
        args.extend(["--h0".into(), w("h0.npy", h0)]);
    }
    if let Some(l) = &case.lengths {
        let p = dir.path("lengths.npy");
        let l: Vec<i64> = l.iter().map(|&v| v as i64).collect();
        std::fs::write(&p, npy_file::i64s(&l)).unwrap();
        args.extend(["--lengths".into(), p.display().to_string()]);
    }
    let flag = |k: &str| {
        case.metadata
            .get(k)
            .is_some_and(|v| matches!(v.trim_matches('"'), "true" | "1"))
    };
    if flag("batch_first") {
        args.push("--batch-first".into());
    }
    if flag("go_backwards") {
        args.push("--go-backwards".into());
    }
    if flag("linear_before_reset") {
        args.push("--linear-before-reset".into());
    }
    if let Some(d) = case.metadata.get("direction") {
        args.extend(["--direction".into(), d.trim_matches('"').to_string()]);
    }
    args
}

/// Runs every case through `wgpu-gru grad --backend <backend>` and checks `G.safetensors`.
fn cases_through_cli(backend: &str) {
    for p in grad_cases() {
        let case = GradCase::load(&p);
        let dir = TempDir::new(&case.name);
        let args = grad_args(&case, &dir, backend);
        let out = run_bin(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{} ({backend}): {err}", case.name);
        let file = SafetensorsFile::open(dir.path("g.safetensors")).unwrap();
        let mut got = Vec::new();
        let mut names = file.names().unwrap();
        names.sort();
        for n in &names {
            let short = n
                .strip_prefix("grad_")
                .unwrap_or_else(|| panic!("{}: unexpected tensor {n}", case.name));
            let t = file.get_f32(n).unwrap().unwrap();
            got.push(NamedTensor {
                name: short.to_string(),
                shape: t.shape,
                data: t.data,
            });
        }
        // Exactly grad_input, grad_h0 and grad_<w> for the file's weights.
        let mut want: Vec<String> = case
            .weight_names
            .iter()
            .map(|n| format!("grad_{n}"))
            .chain(["grad_input".to_string(), "grad_h0".to_string()])
            .collect();
        want.sort();
        assert_eq!(names, want, "{} ({backend}): tensor names", case.name);
        let worst = case.check(&got, backend);
        eprintln!(
            "{} via wgpu-gru grad --backend {backend}: worst {worst:.2e}",
            case.name
        );
    }
}

#[test]
fn golden_grad_cli_reference() {
    cases_through_cli("reference");
}

#[test]
fn golden_grad_cli_gpu() {
    if gpu_common::ctx().is_none() {
        return;
    }
    cases_through_cli("gpu");
}

#[test]
fn cli_refuses_bad_arguments_and_leaves_no_output() {
    let case = GradCase::load(&data_dir("grad").join("grad_pytorch_basic.safetensors"));
    let dir = TempDir::new("bad");
    let out = dir.path("g.safetensors");
    // A file from an earlier run stays as it was after a failed one.
    std::fs::write(&out, b"stale").unwrap();
    let mut args = grad_args(&case, &dir, "reference");
    let gy = dir.path("gy.npy");
    wgpu_gru::npy::write_f32(&gy, &[1, 2, 3], &[0.0; 6]).unwrap();
    let o = run_bin(&args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("grad_output") && err.contains("[5, 3, 6]"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(&out).unwrap(),
        b"stale",
        "a failed run changed {}",
        out.display()
    );
    // The CPU path has no backward (the files rewritten, so that only the backend is wrong).
    args = grad_args(&case, &dir, "reference");
    let i = args.iter().position(|a| a == "reference").unwrap();
    args[i] = "cpu".into();
    let o = run_bin(&args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("cpu backend"), "{err}");
    // Output onto an input.
    let mut args = grad_args(&case, &dir, "reference");
    let k = args.iter().position(|a| a == "--out").unwrap();
    args[k + 1] = dir.path("x.npy").display().to_string();
    let o = run_bin(&args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("also an input"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// The GPU backward.

/// Per tensor: `max |gpu − reference| ≤ tol × max(1, max |reference|)`.
fn assert_grads_close(got: &Gradients, want: &Gradients, tol: f32, what: &str) {
    let check = |name: String, a: &[f32], b: &[f32]| {
        let scale = b.iter().fold(1.0f32, |m, v| m.max(v.abs()));
        let err = wgpu_gru::max_abs_diff(a, b) / scale;
        assert!(
            err <= tol,
            "{what}: {name} off by {err:e} (scaled), tolerance {tol:e}"
        );
        err
    };
    let mut worst = check("input".into(), &got.input, &want.input);
    worst = worst.max(check("h0".into(), &got.h0, &want.h0));
    for (l, (a, b)) in got
        .weights
        .layers
        .iter()
        .zip(&want.weights.layers)
        .enumerate()
    {
        for (d, (x, y)) in a.iter().zip(b).enumerate() {
            for (n, p, q) in [
                ("w_ih", &x.w_ih, &y.w_ih),
                ("w_hh", &x.w_hh, &y.w_hh),
                ("b_ih", &x.b_ih, &y.b_ih),
                ("b_hh", &x.b_hh, &y.b_hh),
            ] {
                worst = worst.max(check(format!("layer {l} dir {d} {n}"), p, q));
            }
        }
    }
    eprintln!("{what}: GPU vs reference worst scaled error {worst:.2e}");
}

fn gpu_vs_reference(p: &Problem, what: &str) {
    let Some(ctx) = gpu_common::ctx() else {
        return;
    };
    let want = train::reference::backward(&p.gru, &p.input(), &p.gy, &p.gs).unwrap();
    let trainer = train::GpuTrainer::new(ctx, &p.gru).unwrap();
    let got = trainer.backward(&p.input(), &p.gy, &p.gs).unwrap();
    assert_grads_close(&got, &want, 1e-4, what);
    // A reused workspace gives the same numbers.
    let mut ws = trainer.workspace(Steps(p.steps), Batch(p.batch)).unwrap();
    let again = trainer
        .backward_in(&mut ws, &p.input(), &p.gy, &p.gs)
        .unwrap();
    let again2 = trainer
        .backward_in(&mut ws, &p.input(), &p.gy, &p.gs)
        .unwrap();
    assert_eq!(again, again2, "{what}: reused workspace");
    assert_grads_close(&again, &want, 1e-4, what);
}

#[test]
fn gpu_backward_single_layer() {
    gpu_vs_reference(&Problem::new(GruConfig::new(3, 1), 5, 2, 21), "H=1");
    gpu_vs_reference(
        &Problem::new(
            GruConfig::new(3, 1).with_variant(Variant::ResetBefore),
            4,
            3,
            22,
        )
        .without_h0(),
        "H=1 reset-before",
    );
    gpu_vs_reference(
        &Problem::new(GruConfig::new(5, 65), 4, 3, 23).with_lengths(&[4, 2, 1]),
        "H=65 lengths",
    );
    gpu_vs_reference(
        &Problem::new(
            GruConfig::new(5, 65)
                .with_variant(Variant::ResetBefore)
                .with_direction(Direction::Reverse),
            4,
            3,
            24,
        )
        .with_lengths(&[3, 4, 2]),
        "H=65 reverse reset-before lengths",
    );
    gpu_vs_reference(
        &Problem::new(GruConfig::new(17, 130), 3, 5, 25),
        "H=130 I=17",
    );
}

#[test]
fn gpu_backward_bidirectional_and_layers() {
    let mut c = GruConfig::new(4, 7).with_direction(Direction::Bidirectional);
    c.batch_first = true;
    c.variant = Variant::ResetBefore;
    gpu_vs_reference(
        &Problem::new(c, 5, 3, 26).with_lengths(&[5, 2, 3]),
        "H=7 bidirectional batch-first reset-before lengths",
    );
    let c = GruConfig::new(3, 33)
        .with_layers(2)
        .with_direction(Direction::Bidirectional);
    gpu_vs_reference(
        &Problem::new(c, 6, 4, 27).with_lengths(&[6, 1, 3, 5]),
        "2 layers bidirectional H=33 lengths",
    );
    let mut c = GruConfig::new(3, 9)
        .with_layers(3)
        .with_variant(Variant::ResetBefore);
    c.go_backwards = true;
    c.batch_first = true;
    gpu_vs_reference(
        &Problem::new(c, 5, 2, 28),
        "3 layers go_backwards batch-first",
    );
}

#[test]
fn gpu_backward_golden_cases() {
    let Some(ctx) = gpu_common::ctx() else {
        return;
    };
    for p in grad_cases() {
        let case = GradCase::load(&p);
        let trainer = train::GpuTrainer::new(ctx, case.gru()).unwrap();
        let g = trainer
            .backward(&case.input(), &case.gy_canon, &case.gs_canon)
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        let worst = case.check_canonical(&g, "gpu");
        eprintln!("{}: GPU worst scaled error {worst:.2e}", case.name);
    }
}

#[test]
fn gpu_backward_refuses_masks() {
    let Some(ctx) = gpu_common::ctx() else {
        return;
    };
    let mut p = Problem::new(GruConfig::new(2, 3), 3, 1, 29);
    p.mask = Some(vec![true, false, true]);
    let t = train::GpuTrainer::new(ctx, &p.gru).unwrap();
    let e = t.backward(&p.input(), &p.gy, &p.gs).unwrap_err();
    assert!(matches!(e, Error::Unsupported(_)), "{e}");
}

/// T·B above one GEMM dispatch's K-chunk (8192 rows): the weight gradients add up the chunks.
#[test]
fn gpu_backward_many_rows() {
    gpu_vs_reference(
        &Problem::new(GruConfig::new(3, 5), 70, 130, 30),
        "T·B = 9100 rows",
    );
}

/// A workspace binds its own trainer's buffers: every pass of another trainer refuses it with
/// `Error::InvalidArgument` instead of computing with the wrong parameters, and its own trainer
/// still takes it afterwards.
#[test]
fn gpu_training_workspace_of_another_trainer_is_refused() {
    let Some(ctx) = gpu_common::ctx() else {
        return;
    };
    let p = Problem::new(GruConfig::new(3, 4), 3, 2, 31);
    let a = train::GpuTrainer::new(ctx, &p.gru).unwrap();
    let b = train::GpuTrainer::new(ctx, &p.gru).unwrap();
    let mut ws = a.workspace(Steps(p.steps), Batch(p.batch)).unwrap();
    let e = b
        .backward_in(&mut ws, &p.input(), &p.gy, &p.gs)
        .unwrap_err();
    assert!(
        matches!(&e, Error::InvalidArgument { what, .. } if what == "training workspace"),
        "{e}"
    );
    assert!(a.backward_in(&mut ws, &p.input(), &p.gy, &p.gs).is_ok());

    // The classifier passes too.
    let mut config = GruConfig::new(3, 4);
    config.batch_first = true;
    let model = train::fit::init_classifier(config, 3, 32).unwrap();
    let opt = train::Optimizer::adam(1e-2);
    let mut c = train::GpuTrainer::classifier(ctx, &model, opt).unwrap();
    let d = train::GpuTrainer::classifier(ctx, &model, opt).unwrap();
    let mut ws_d = d.workspace(Steps(2), Batch(2)).unwrap();
    let x = vec![0.5f32; 2 * 2 * 3];
    let labels = [0u32, 2];
    let refused = |e: Error| matches!(e, Error::InvalidArgument { ref what, .. } if what == "training workspace");
    assert!(refused(
        c.train_step(&mut ws_d, &x, &labels, None).unwrap_err()
    ));
    assert!(refused(
        c.classifier_gradients(&mut ws_d, &x, &labels).unwrap_err()
    ));
    assert!(refused(c.predict_proba(&mut ws_d, &x).unwrap_err()));
    assert!(refused(c.step_dispatches(&ws_d).unwrap_err()));
    assert_eq!(c.steps_taken(), 0, "a refused step is not taken");
    assert!(d.predict_proba(&mut ws_d, &x).is_ok());
}
