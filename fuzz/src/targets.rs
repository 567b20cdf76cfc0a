//! The bodies of the fuzz targets: plain functions over bytes that panic only on a bug.
//!
//! They are shared by the cargo-fuzz binaries in `fuzz/fuzz_targets/` (nightly, libFuzzer) and
//! by the stable-Rust mutation driver in `tests/regressions.rs`, which also replays the corpus
//! in `fuzz/corpus/` and every crash found so far. The including crate must have the CLI's
//! `run` subcommand as `crate::run` (`src/bin/wgpu-gru/run.rs`, included by path).
//!
//! - [`safetensors_import`]: any bytes as a safetensors file, imported in every layout (detected
//!   and forced) under several option sets; accepted models are run on the reference and CPU
//!   paths, whose shapes and values are checked.
//! - [`npy_parse`]: any bytes as a `.npy` file; accepted arrays round-trip through the writer.
//! - [`torch_pt`]: any bytes as a `torch.save` zip checkpoint; accepted tensors are imported in
//!   the PyTorch layout and run.
//! - [`torch_pickle`]: any bytes as a checkpoint's `data.pkl`, run by the pickle machine alone
//!   (no zip, no storage read); the tensor descriptors it builds are checked.
//! - [`onnx_model`]: any bytes as an `.onnx` model; an accepted GRU chain is run, and its
//!   initial state and lengths are checked against its shapes.
//! - [`cli_run`]: a command line and four files (weights, X, h0, lengths), framed by
//!   [`SEP`]; `wgpu-gru run` must succeed with readable outputs, or fail leaving no new file.

// Shared with the parent crate's tests (paths from this file's folder).
#[path = "../../tests/common/flags.rs"]
mod flags;
#[allow(dead_code)]
#[path = "../../tests/common/npy_file.rs"]
mod npy_file;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use wgpu_gru::{Batch, Steps};

use clap::Parser;
use wgpu_gru::cpu::CpuGru;
use wgpu_gru::formats::{self, Format, ImportOptions, Imported, SafetensorsFile};
use wgpu_gru::model::GruClassifier;
use wgpu_gru::npy::{self, NpyData};
use wgpu_gru::{Activations, Direction, Gru, SeqInput, reference};

// ---------------------------------------------------------------------------------------------
// Safetensors importer.

/// The option sets every file is imported under: defaults, the file's own metadata, and
/// variations that each layout must accept or refuse cleanly.
fn option_sets(file: &SafetensorsFile) -> Vec<ImportOptions> {
    let mut v = vec![ImportOptions::default()];
    if let Ok(meta) = file.metadata()
        && let Ok(m) = formats::options_from_metadata(&meta)
    {
        v.push(m.options);
    }
    let with = |f: &dyn Fn(&mut ImportOptions)| {
        let mut o = ImportOptions::default();
        f(&mut o);
        o
    };
    v.push(with(&|o| o.direction = Some(Direction::Bidirectional)));
    v.push(with(&|o| o.direction = Some(Direction::Reverse)));
    v.push(with(&|o| {
        o.batch_first = true;
        o.linear_before_reset = true;
    }));
    v.push(with(&|o| {
        o.reset_after = Some(false);
        o.go_backwards = true;
    }));
    v.push(with(&|o| {
        o.activations = ["HardSigmoid", "Elu"].map(String::from).to_vec();
        o.activation_alpha = vec![0.3, 0.9];
        o.activation_beta = vec![0.4];
        o.clip = Some(2.5);
    }));
    v.push(with(&|o| {
        o.activations = ["Relu", "Softsign", "LeakyRelu", "ScaledTanh"]
            .map(String::from)
            .to_vec();
        o.activation_alpha = vec![0.1, 1.5];
        o.activation_beta = vec![0.7];
    }));
    v
}

/// Any bytes as a safetensors file: every accessor, then every layout under every option set.
pub fn safetensors_import(data: &[u8]) {
    let Ok(file) = SafetensorsFile::from_bytes(data.to_vec(), "fuzz.safetensors") else {
        return;
    };
    let names = file.names().unwrap_or_default();
    for n in names.iter().take(16) {
        let shape = file.shape(n).ok().flatten();
        if let Ok(Some(t)) = file.get_f32(n) {
            assert_eq!(t.data.len(), t.shape.iter().product::<usize>(), "{n}");
            assert_eq!(Some(&t.shape), shape.as_ref());
        }
        if let Ok(Some((shape, lens))) = file.get_lengths(n) {
            assert_eq!(lens.len(), shape.iter().product::<usize>(), "{n}");
        }
        assert!(file.contains(n));
    }
    let mut seen: Vec<Imported> = Vec::new();
    for opts in option_sets(&file) {
        for format in [
            None,
            Some(Format::PyTorch),
            Some(Format::Keras),
            Some(Format::Onnx),
        ]
        .into_iter()
        .chain([Some(Format::Seed)])
        {
            match formats::import(&file, format, &opts) {
                Ok(imported) => {
                    if let Some(f) = format {
                        assert_eq!(imported.format, f);
                    }
                    if !seen.contains(&imported) {
                        exercise(&imported);
                        seen.push(imported);
                    }
                }
                Err(e) => no_wrapped_numbers(&e.to_string()),
            }
        }
    }
    // The digits classifier reads the PyTorch layout plus a dense head.
    if let Ok(m) = GruClassifier::from_safetensors_bytes(data) {
        let c = &m.gru.config;
        if c.input_size * c.hidden_size <= 4096 {
            let x = vec![0.5f32; 2 * 3 * c.input_size];
            let p = m
                .reference_forward(&x, Steps(3), Batch(2))
                .expect("a valid classifier runs");
            assert_eq!(p.len(), 2 * m.num_classes());
            assert_eq!(m.predict(&p).len(), 2);
        }
    }
}

/// Size arithmetic that wrapped around (`3 · usize::MAX` is `usize::MAX − 2`) shows in error
/// messages as numbers just below 2^64; `usize::MAX` itself can be a declared dimension.
fn no_wrapped_numbers(msg: &str) {
    for num in msg.split(|c: char| !c.is_ascii_digit()) {
        if let Ok(v) = num.parse::<u128>() {
            let wrapped = v > (u64::MAX - (1 << 20)) as u128 && v < u64::MAX as u128;
            assert!(!wrapped, "wrapped size arithmetic in the message: {msg}");
        }
    }
}

/// Whether a model is small enough to run (keeps the fuzzer fast): at most 20,000 matrix
/// weights.
fn small(gru: &Gru) -> bool {
    let weights: usize = gru
        .weights
        .layers
        .iter()
        .flatten()
        .map(|w| w.w_ih.len() + w.w_hh.len())
        .sum();
    weights <= 20_000
}

/// Runs an imported model on small inputs: reference and CPU outputs have the documented shapes,
/// and agree where the model is tame.
fn exercise(imported: &Imported) {
    let gru = &imported.gru;
    gru.validate().expect("an imported model is valid");
    let c = &gru.config;
    let shapes = imported.shapes();
    if let Ok(s) = &shapes {
        assert_eq!(s.input_size, c.input_size);
        assert_eq!(s.hidden_size, c.hidden_size);
    }
    if !small(gru) {
        return;
    }
    let ld = c.num_layers * c.num_directions();
    for (t, b) in [(3usize, 2usize), (0, 2), (2, 0)] {
        let x: Vec<f32> = (0..t * b * c.input_size)
            .map(|k| ((k * 7919) % 17) as f32 / 8.0 - 1.0)
            .collect();
        let h0: Vec<f32> = (0..ld * b * c.hidden_size)
            .map(|k| ((k * 104_729) % 13) as f32 / 13.0 - 0.5)
            .collect();
        let lens: Vec<usize> = (0..b).map(|r| t.saturating_sub(r).max(1)).collect();
        let mut input = SeqInput::new(&x, Steps(t), Batch(b)).with_h0(&h0);
        if t > 0 && !c.go_backwards {
            input = input.with_lengths(&lens);
        }
        let want = reference::forward(gru, &input).expect("valid input on a valid model");
        assert_eq!(want.output.len(), t * b * c.output_size());
        assert_eq!(want.h_n.len(), ld * b * c.hidden_size);
        let cpu = CpuGru::new(gru).expect("a valid model packs for the CPU");
        let got = cpu.forward(&input).expect("cpu forward");
        assert_eq!(got.output.len(), want.output.len());
        assert_eq!(got.h_n.len(), want.h_n.len());
        if tame(imported) {
            let err = got.max_abs_diff(&want);
            assert!(err <= 1e-3, "cpu vs reference: {err} on {c:?}");
        }
        if let Ok(s) = &shapes {
            let y = s
                .output_to_framework(Steps(t), Batch(b), &got.output)
                .expect("output shape");
            let back = s
                .output_from_framework(Steps(t), Batch(b), &y)
                .expect("inverse");
            assert!(
                same_bits(&back, &got.output),
                "output conversion round trip"
            );
            s.state_to_framework(b, &got.h_n).expect("state shape");
        }
    }
}

fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

/// Default activations, no clip, finite weights of moderate size: f32 and f64 must agree.
fn tame(imported: &Imported) -> bool {
    let g = &imported.gru;
    g.config
        .activations
        .iter()
        .all(|a| *a == Activations::default())
        && g.config.clip.is_none()
        && g.weights.layers.iter().flatten().all(|w| {
            [&w.w_ih, &w.w_hh, &w.b_ih, &w.b_hh]
                .iter()
                .all(|v| v.iter().all(|x| x.is_finite() && x.abs() <= 4.0))
        })
}

// ---------------------------------------------------------------------------------------------
// .npy reader.

/// Any bytes as a `.npy` file; what is accepted round-trips through the writer.
pub fn npy_parse(data: &[u8]) {
    let Ok(a) = npy::parse(data, "fuzz.npy") else {
        return;
    };
    let n: usize = a.shape.iter().product();
    match &a.data {
        NpyData::Float(v) => {
            assert_eq!(v.len(), n);
            assert!(a.dtype.is_float());
            let bytes = npy::to_bytes_f32(&a.shape, v).expect("writable");
            let back = npy::parse(&bytes, "roundtrip").expect("readable");
            assert_eq!(back.shape, a.shape);
            let NpyData::Float(w) = back.data else {
                panic!("roundtrip changed the kind")
            };
            assert!(same_bits(v, &w), "f32 round trip");
            assert!(a.clone().into_lengths("l").is_err());
            assert!(a.clone().into_mask("m").is_err());
        }
        NpyData::Int(v) => {
            assert_eq!(v.len(), n);
            assert!(!a.dtype.is_float());
            assert!(a.clone().into_f32("x").is_err());
            let lens = a.clone().into_lengths("l");
            assert_eq!(lens.is_ok(), v.iter().all(|&x| x >= 0));
            let mask = a.clone().into_mask("m").expect("integer arrays are masks");
            assert!(mask.iter().zip(v).all(|(&m, &x)| m == (x != 0)));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The CLI.

/// Separates the sections of a [`cli_run`] input: command line, weights, X, h0, lengths.
pub const SEP: &[u8] = b"\n~~8<~~\n";

/// The flags whose value is a path; the fuzzer's value picks one of a few files (see [`path_for`]).
const PATH_FLAGS: [&str; 6] = [
    "--weights",
    "--input",
    "--output",
    "--state-out",
    "--h0",
    "--lengths",
];

/// `wgpu-gru run`'s arguments, as the binary's `run` subcommand parses them.
#[derive(Debug, Parser)]
#[command(name = "wgpu-gru-run")]
struct RunCli {
    #[command(flatten)]
    args: crate::run::Args,
}

/// Maps the fuzzer's value for a path flag to a path inside `dir` (never anywhere else): the
/// input files, the usual outputs, a missing file, a missing directory, the directory itself, or
/// an empty path.
fn path_for(dir: &Path, sel: &str) -> String {
    let name = match sel.bytes().next() {
        Some(b'w') => "w.safetensors",
        Some(b'x') => "x.npy",
        Some(b'h') => "h0.npy",
        Some(b'l') => "len.npy",
        Some(b'y') => "y.npy",
        Some(b's') => "s.npy",
        Some(b'd') => "nodir/y.npy",
        Some(b'D') => "",
        Some(b'e') => return String::new(),
        _ => "missing.npy",
    };
    dir.join(name).display().to_string()
}

/// The command line for `text` (whitespace-separated tokens): path values are mapped into `dir`,
/// tokens that could name other paths are dropped, and the backend is the reference or the CPU
/// (the reference when none is given).
fn argv_for(text: &str, dir: &Path) -> Vec<String> {
    let mut argv = vec!["wgpu-gru-run".to_string()];
    let mut tokens = text.split_ascii_whitespace();
    let mut backend = false;
    let fix_backend = |v: &str| match v {
        "gpu" | "auto" => "cpu".to_string(),
        other => other.to_string(),
    };
    while let Some(tok) = tokens.next() {
        if tok.contains(['/', '\\', '\0']) {
            continue;
        }
        if PATH_FLAGS.contains(&tok) {
            argv.push(tok.to_string());
            if let Some(v) = tokens.next() {
                argv.push(path_for(dir, v));
            }
        } else if let Some((flag, v)) = tok.split_once('=')
            && PATH_FLAGS.contains(&flag)
        {
            argv.push(format!("{flag}={}", path_for(dir, v)));
        } else if tok == "--backend" {
            backend = true;
            argv.push(tok.to_string());
            if let Some(v) = tokens.next() {
                argv.push(fix_backend(v));
            }
        } else if let Some(v) = tok.strip_prefix("--backend=") {
            backend = true;
            argv.push(format!("--backend={}", fix_backend(v)));
        } else {
            argv.push(tok.to_string());
        }
    }
    if !backend {
        argv.extend(["--backend".to_string(), "reference".to_string()]);
    }
    argv
}

/// Splits a [`cli_run`] input into at most five sections.
fn sections(data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    while out.len() < 4 {
        match rest.windows(SEP.len()).position(|w| w == SEP) {
            Some(i) => {
                out.push(&rest[..i]);
                rest = &rest[i + SEP.len()..];
            }
            None => break,
        }
    }
    out.push(rest);
    out
}

/// A directory of its own for this process and thread, emptied.
fn scratch_dir() -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static ID: usize = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    // tmpfs where there is one: every output is fsynced.
    let base = std::env::var_os("WGPU_GRU_FUZZ_DIR")
        .map(PathBuf::from)
        .or_else(|| Some(PathBuf::from("/dev/shm")).filter(|p| p.is_dir()))
        .unwrap_or_else(std::env::temp_dir);
    let dir = base.join(format!(
        "wgpu-gru-fuzz-{}-{}",
        std::process::id(),
        ID.with(|i| *i)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch directory");
    dir
}

fn listing(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .expect("scratch directory")
        .map(|e| {
            let e = e.expect("directory entry");
            let name = e.file_name().to_string_lossy().into_owned();
            let bytes = std::fs::read(e.path()).unwrap_or_else(|_| b"<not a file>".to_vec());
            (name, bytes)
        })
        .collect()
}

fn name_in(dir: &Path, p: &Path) -> Option<String> {
    let rel = p.strip_prefix(dir).ok()?;
    let s = rel.to_str()?;
    (!s.is_empty() && !s.contains('/')).then(|| s.to_string())
}

/// A command line and files through `wgpu-gru run`: success leaves readable outputs and the
/// inputs untouched; failure returns a message and leaves no new or changed file (a stale output
/// may be removed), and never a temporary file.
///
/// Returns `None` when the command line is refused by the parser, else whether the run succeeded.
pub fn cli_run(data: &[u8]) -> Option<bool> {
    let s = sections(data);
    let dir = scratch_dir();
    for (k, name) in ["w.safetensors", "x.npy", "h0.npy", "len.npy"]
        .iter()
        .enumerate()
    {
        if let Some(bytes) = s.get(k + 1) {
            std::fs::write(dir.join(name), bytes).expect("write input");
        }
    }
    // An X with no data can declare any batch (T = 0), and h_n [L·D, B, H] is then allocated:
    // the refusal of what cannot be allocated is tested under a memory limit in
    // tests/cli/cli_refusals.rs; here it would trip libFuzzer's malloc limit.
    if let Some(x) = s.get(2).and_then(|b| npy::parse(b, "x").ok())
        && x.shape.contains(&0)
        && x.shape.iter().any(|&d| d >= 1 << 20)
    {
        let _ = std::fs::remove_dir_all(&dir);
        return None;
    }
    let argv = argv_for(&String::from_utf8_lossy(s[0]), &dir);
    let before = listing(&dir);
    let check_dir = || {
        assert!(!dir.join("nodir").exists(), "created a directory");
    };
    let cli = match RunCli::try_parse_from(&argv) {
        Ok(c) => c,
        Err(_) => {
            assert_eq!(
                listing(&dir),
                before,
                "a refused command line changed files"
            );
            check_dir();
            let _ = std::fs::remove_dir_all(&dir);
            return None;
        }
    };
    let a = &cli.args;
    let inputs: Vec<String> = [
        Some(&a.weights),
        Some(&a.input),
        a.h0.as_ref(),
        a.lengths.as_ref(),
    ]
    .into_iter()
    .flatten()
    .filter_map(|p| name_in(&dir, p))
    .collect();
    let outputs: Vec<String> = [Some(&a.output), a.state_out.as_ref()]
        .into_iter()
        .flatten()
        .filter_map(|p| name_in(&dir, p))
        .collect();
    let result = crate::run::main(cli.args);
    let after = listing(&dir);
    check_dir();
    for name in after.keys() {
        assert!(
            !name.contains(".tmp-"),
            "temporary file {name} left: {argv:?}"
        );
    }
    for name in &inputs {
        assert_eq!(
            before.get(name),
            after.get(name),
            "input {name} changed: {argv:?}"
        );
    }
    match &result {
        Ok(()) => {
            for name in &outputs {
                let bytes = after
                    .get(name)
                    .unwrap_or_else(|| panic!("no output {name}"));
                let arr = npy::parse(bytes, name).expect("the output is a valid .npy");
                assert!(matches!(arr.data, NpyData::Float(_)));
            }
            for (name, bytes) in &before {
                if !outputs.contains(name) {
                    assert_eq!(after.get(name), Some(bytes), "{name} changed: {argv:?}");
                }
            }
        }
        Err(msg) => {
            assert!(!msg.trim().is_empty(), "empty error message");
            for (name, bytes) in &after {
                assert_eq!(
                    before.get(name),
                    Some(bytes),
                    "failure left a new or changed file {name}: {msg} ({argv:?})"
                );
            }
            for name in before.keys() {
                if !after.contains_key(name) {
                    assert!(
                        outputs.contains(name) && !inputs.contains(name),
                        "failure removed {name}, which is not an output: {msg}"
                    );
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Some(result.is_ok())
}

// ---------------------------------------------------------------------------------------------
// Seeds.

/// A [`cli_run`] input from its parts.
pub fn cli_input(args: &str, files: [Option<&[u8]>; 4]) -> Vec<u8> {
    let mut out = args.as_bytes().to_vec();
    for f in files {
        out.extend_from_slice(SEP);
        if let Some(b) = f {
            out.extend_from_slice(b);
        }
    }
    out
}

/// An int64 `.npy` file (lengths), which the crate's f32 writer does not produce.
pub fn npy_i64(values: &[i64]) -> Vec<u8> {
    npy_file::i64s(values)
}

/// Seeds from a golden case file: the file itself (safetensors target), its X, h0 and lengths
/// as `.npy` files (npy target), and a full `wgpu-gru run` command line with those files (cli
/// target). `None` when the file is not a golden case.
pub fn golden_seeds(bytes: &[u8]) -> Option<(Vec<Vec<u8>>, Vec<u8>)> {
    let file = SafetensorsFile::from_bytes(bytes.to_vec(), "golden").ok()?;
    let meta = formats::options_from_metadata(&file.metadata().ok()?).ok()?;
    let imported = formats::import(&file, None, &meta.options).ok()?;
    let shapes = imported.shapes().ok()?;
    let names = shapes.names();
    let x = file.get_f32(names.x).ok()??;
    let x_npy = npy::to_bytes_f32(&x.shape, &x.data).ok()?;
    let h0_npy = match file.get_f32(names.h0).ok()? {
        Some(t) => Some(npy::to_bytes_f32(&t.shape, &t.data).ok()?),
        None => None,
    };
    let len_npy = file
        .get_lengths(names.lengths)
        .ok()?
        .map(|(_, l)| npy_i64(&l.iter().map(|&v| v as i64).collect::<Vec<_>>()));
    let mut args = vec![
        "--weights w --input x --output y --state-out s".to_string(),
        format!("--format {}", imported.format),
    ];
    if h0_npy.is_some() {
        args.push("--h0 h".into());
    }
    if len_npy.is_some() {
        args.push("--lengths l".into());
    }
    args.extend(flags::option_flags(&meta.options));
    let cli = cli_input(
        &args.join(" "),
        [
            Some(bytes),
            Some(&x_npy),
            h0_npy.as_deref(),
            len_npy.as_deref(),
        ],
    );
    let npys = [Some(x_npy), h0_npy, len_npy]
        .into_iter()
        .flatten()
        .collect();
    Some((npys, cli))
}

// ---------------------------------------------------------------------------------------------
// torch.save checkpoints.

/// Any bytes as a `torch.save` zip checkpoint, read without a prefix and with `gru.`: what is
/// accepted is a safetensors file of f32 tensors under `nn.GRU` names, which the PyTorch
/// importer imports (accepted models are run like imported safetensors) or refuses cleanly.
pub fn torch_pt(data: &[u8]) {
    use wgpu_gru::formats::torch_pt::{is_zip, read_checkpoint};
    for prefix in [None, Some("gru.")] {
        // The reader's own messages may quote huge numbers read from the file, so only the
        // importer's are checked for wrapped arithmetic.
        let Ok(file) = read_checkpoint(data, "fuzz.pt", prefix) else {
            continue;
        };
        assert!(is_zip(data), "accepted without a zip signature");
        let names = file
            .names()
            .expect("the tensors form a valid safetensors file");
        assert!(!names.is_empty(), "accepted without tensors");
        for n in &names {
            assert!(
                n.starts_with("weight_") || n.starts_with("bias_"),
                "not an nn.GRU name: {n}"
            );
            let t = file.get_f32(n).expect("f32").expect("a listed tensor");
            assert_eq!(t.data.len(), t.shape.iter().product::<usize>(), "{n}");
        }
        match formats::import(&file, Some(Format::PyTorch), &ImportOptions::default()) {
            Ok(imported) => exercise(&imported),
            Err(e) => no_wrapped_numbers(&e.to_string()),
        }
    }
}

/// Any bytes as a checkpoint's `data.pkl`, run by the restricted pickle machine alone: an accepted
/// pickle is a dict whose tensors have one stride per axis, at most 32 axes, and the same
/// descriptors on a second run (the machine keeps no state between files).
pub fn torch_pickle(data: &[u8]) {
    use wgpu_gru::formats::torch_pt::pickle_tensors;
    let Ok(tensors) = pickle_tensors(data, "fuzz.pkl") else {
        return;
    };
    for t in &tensors {
        assert_eq!(t.size.len(), t.stride.len(), "{}", t.name);
        assert!(t.size.len() <= 32, "{}: rank {}", t.name, t.size.len());
    }
    let again = pickle_tensors(data, "fuzz.pkl").expect("accepted once, accepted again");
    assert_eq!(again, tensors);
}

// ---------------------------------------------------------------------------------------------
// The ONNX model reader.

/// Any bytes as an `.onnx` model (no folder, so external data is refused): an accepted chain is a
/// valid model that runs, one layer per GRU node, and a fixed initial state fits its shapes.
pub fn onnx_model(data: &[u8]) {
    use wgpu_gru::formats::onnx_model::{InitialState, read};
    for node in [None, Some("gru0")] {
        let Ok((gru, graph)) = read(data, None, "fuzz.onnx", node) else {
            continue;
        };
        let c = &gru.config;
        assert_eq!(graph.nodes.len(), c.num_layers);
        if let InitialState::Fixed { batch, h0 } = &graph.initial_state {
            assert_eq!(
                h0.len(),
                c.num_layers * c.num_directions() * batch * c.hidden_size
            );
        }
        let imported = Imported {
            format: Format::Onnx,
            gru,
            onnx: Some(graph),
        };
        exercise(&imported);
    }
}

// ---------------------------------------------------------------------------------------------
// Keras model files.

/// Any bytes as a Keras 3 `.keras` archive or a legacy Keras `.h5` file: an accepted model is a
/// non-empty chain of valid layers whose sizes connect, and its small GRUs run.
pub fn keras_model(data: &[u8]) {
    use wgpu_gru::formats::keras_file::{KerasLayer, MergeMode, is_hdf5, is_keras_zip, read};
    let Ok(model) = read(data, "fuzz.keras") else {
        return;
    };
    assert!(
        is_keras_zip(data) || is_hdf5(data),
        "accepted without a signature"
    );
    assert!(!model.layers.is_empty(), "accepted without layers");
    let mut feat = model.input_features;
    for layer in &model.layers {
        match layer {
            KerasLayer::Masking { .. } => {}
            KerasLayer::Gru { gru, .. } | KerasLayer::Bidirectional { gru, .. } => {
                gru.validate().expect("a read GRU is valid");
                let c = &gru.config;
                assert!(c.batch_first && c.num_layers == 1);
                if let Some(f) = feat {
                    assert_eq!(f, c.input_size, "sizes connect");
                }
                feat = Some(match layer {
                    KerasLayer::Bidirectional { merge_mode, .. } => {
                        assert_ne!(*merge_mode, MergeMode::None);
                        assert_eq!(c.direction, Direction::Bidirectional);
                        assert!(!c.go_backwards);
                        if *merge_mode == MergeMode::Concat {
                            2 * c.hidden_size
                        } else {
                            c.hidden_size
                        }
                    }
                    _ => c.hidden_size,
                });
                if small(gru) {
                    let (t, b) = (3usize, 2usize);
                    let x: Vec<f32> = (0..t * b * c.input_size)
                        .map(|k| ((k * 7919) % 17) as f32 / 8.0 - 1.0)
                        .collect();
                    let out = reference::forward(gru, &SeqInput::new(&x, Steps(t), Batch(b)))
                        .expect("a read GRU runs");
                    assert_eq!(out.output.len(), t * b * c.num_directions() * c.hidden_size);
                }
            }
            KerasLayer::Dense {
                dense, activation, ..
            } => {
                dense.validate().expect("a read Dense is valid");
                if let Some(f) = feat {
                    assert_eq!(f, dense.in_features, "sizes connect");
                }
                let mut y: Vec<f64> = dense.bias.iter().map(|&v| v as f64).collect();
                activation.apply_rows(&mut y, dense.out_features);
                feat = Some(dense.out_features);
            }
        }
    }
}
