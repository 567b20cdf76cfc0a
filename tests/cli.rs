//! The `wgpu-gru run` binary on every golden case (reference, cpu and gpu backends), and its
//! handling of bad input.
//!
//! GPU runs are skipped with a message when no adapter exists, unless `REQUIRE_GPU=1`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{Array, Case, golden_cases, keras_mask_cases, onnx_activation_cases};
use wgpu_gru::formats::Format;
use wgpu_gru::npy;

/// The binary under test; `WGPU_GRU_BIN` overrides the path cargo built (for test binaries
/// copied to another machine).
fn bin() -> PathBuf {
    std::env::var_os("WGPU_GRU_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_wgpu-gru")))
}

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("wgpu-gru-cli-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
    fn files(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes a `.npy` file of any dtype by hand (`descr` such as `<i8`), for the cases the
/// crate's f32 writer does not cover.
fn write_npy_raw(path: &Path, descr: &str, fortran: bool, shape: &[usize], data: &[u8]) {
    let dims = match shape.len() {
        1 => format!("({},)", shape[0]),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let f = if fortran { "True" } else { "False" };
    let mut dict = format!("{{'descr': '{descr}', 'fortran_order': {f}, 'shape': {dims}, }}");
    while (10 + dict.len() + 1) % 64 != 0 {
        dict.push(' ');
    }
    dict.push('\n');
    let mut b = b"\x93NUMPY\x01\x00".to_vec();
    b.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    b.extend_from_slice(dict.as_bytes());
    b.extend_from_slice(data);
    std::fs::write(path, b).unwrap();
}

fn write_lengths(path: &Path, lengths: &[usize], int32: bool) {
    let data: Vec<u8> = if int32 {
        lengths
            .iter()
            .flat_map(|&l| (l as i32).to_le_bytes())
            .collect()
    } else {
        lengths
            .iter()
            .flat_map(|&l| (l as i64).to_le_bytes())
            .collect()
    };
    write_npy_raw(
        path,
        if int32 { "<i4" } else { "<i8" },
        false,
        &[lengths.len()],
        &data,
    );
}

/// The flags that reproduce the case's import options.
fn option_flags(case: &Case, explicit_format: bool) -> Vec<String> {
    let o = &case.meta.options;
    let mut f = Vec::new();
    if explicit_format {
        f.extend(["--format".into(), case.imported.format.name().to_string()]);
    }
    if let Some(d) = o.direction {
        let d = match d {
            wgpu_gru::Direction::Forward => "forward",
            wgpu_gru::Direction::Reverse => "reverse",
            wgpu_gru::Direction::Bidirectional => "bidirectional",
        };
        f.extend(["--direction".into(), d.into()]);
    }
    if o.batch_first {
        f.push("--batch-first".into());
    }
    if o.go_backwards {
        f.push("--go-backwards".into());
    }
    if o.linear_before_reset {
        f.push("--linear-before-reset".into());
    }
    let join = |v: &[f32]| {
        v.iter()
            .map(|x| x.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    if !o.activations.is_empty() {
        f.extend(["--activations".into(), o.activations.join(",")]);
    }
    if !o.activation_alpha.is_empty() {
        f.push(format!("--activation-alpha={}", join(&o.activation_alpha)));
    }
    if !o.activation_beta.is_empty() {
        f.push(format!("--activation-beta={}", join(&o.activation_beta)));
    }
    if let Some(c) = o.clip {
        f.extend(["--clip".into(), c.to_string()]);
    }
    f
}

fn run_bin(args: &[String]) -> Output {
    Command::new(bin()).args(args).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Writes the case's inputs as .npy files and returns the `run` arguments (without backend).
fn case_args(case: &Case, dir: &TempDir, explicit_format: bool) -> Vec<String> {
    let s = |p: PathBuf| p.display().to_string();
    npy::write_f32(dir.path("x.npy"), &case.x.shape, &case.x.data).unwrap();
    let mut args = vec![
        "run".to_string(),
        "--weights".into(),
        s(case.path.clone()),
        "--input".into(),
        s(dir.path("x.npy")),
        "--output".into(),
        s(dir.path("y.npy")),
        "--state-out".into(),
        s(dir.path("state.npy")),
    ];
    if let Some(h0) = &case.h0 {
        npy::write_f32(dir.path("h0.npy"), &h0.shape, &h0.data).unwrap();
        args.extend(["--h0".into(), s(dir.path("h0.npy"))]);
    }
    if let Some(l) = &case.lengths {
        // ONNX sequence_lens are int32, PyTorch lengths int64.
        write_lengths(
            &dir.path("len.npy"),
            l,
            case.imported.format == Format::Onnx,
        );
        args.extend(["--lengths".into(), s(dir.path("len.npy"))]);
    }
    if let Some(m) = &case.mask {
        // Keras masks as np.save writes a bool array.
        let bytes: Vec<u8> = m.iter().map(|&v| u8::from(v)).collect();
        write_npy_raw(
            &dir.path("mask.npy"),
            "|b1",
            false,
            &[case.batch, case.steps],
            &bytes,
        );
        args.extend(["--mask".into(), s(dir.path("mask.npy"))]);
        if case.zero_output_for_mask {
            args.push("--zero-output-for-mask".into());
        }
    }
    args.extend(option_flags(case, explicit_format));
    args
}

/// Reads the binary's outputs back under the framework's names.
fn read_outputs(case: &Case, dir: &TempDir) -> Vec<(String, Array)> {
    let names = case.shapes.names();
    let read = |p: &str| {
        let (shape, data) = npy::read_f32(dir.path(p)).unwrap();
        Array { shape, data }
    };
    vec![
        (names.output.to_string(), read("y.npy")),
        (names.state.to_string(), read("state.npy")),
    ]
}

/// Whether a GPU adapter exists; panics when none does and `REQUIRE_GPU=1`.
fn gpu_available() -> bool {
    match wgpu_gru::gpu::GpuContext::new_default() {
        Ok(ctx) => {
            eprintln!("GPU: {}", ctx.describe());
            true
        }
        Err(e) => {
            if std::env::var("REQUIRE_GPU").is_ok_and(|v| v == "1") {
                panic!("REQUIRE_GPU=1 but no GPU is usable: {e}");
            }
            eprintln!("SKIP gpu backend: no GPU adapter ({e})");
            false
        }
    }
}

fn golden_through_cli(backend: &str) {
    let cases = golden_cases();
    assert_eq!(cases.len(), 14);
    cases_through_cli(backend, &cases);
}

/// Runs each case file through `wgpu-gru run` on `backend` and compares with its expected outputs.
fn cases_through_cli(backend: &str, cases: &[PathBuf]) {
    let mut failures = Vec::new();
    for (i, path) in cases.iter().enumerate() {
        let case = Case::load(path).unwrap();
        let dir = TempDir::new(&case.name);
        let mut args = case_args(&case, &dir, i % 2 == 0);
        args.extend(["--backend".into(), backend.into()]);
        let out = run_bin(&args);
        if !out.status.success() {
            failures.push(format!(
                "{}: exit {:?}: {}",
                case.name,
                out.status,
                stderr(&out)
            ));
            continue;
        }
        // The f64 reference meets 1e-5 everywhere; f32 paths get common::f32_tolerance.
        let tol = if backend == "reference" {
            common::TOLERANCE
        } else {
            common::f32_tolerance(&case.name)
        };
        match case.compare_within(&read_outputs(&case, &dir), tol) {
            Ok(err) => eprintln!("[cli {backend}] {:<28} max abs error {err:.2e}", case.name),
            Err(e) => failures.push(e),
        }
        // Nothing but the inputs and the two outputs.
        let files = dir.files();
        assert!(
            files.iter().all(|f| !f.starts_with('.')),
            "temporary files left: {files:?}"
        );
    }
    assert!(
        failures.is_empty(),
        "[cli {backend}]\n{}",
        failures.join("\n")
    );
}

#[test]
fn golden_cli_reference() {
    golden_through_cli("reference");
}

#[test]
fn golden_cli_cpu() {
    golden_through_cli("cpu");
}

#[test]
fn golden_cli_gpu() {
    if gpu_available() {
        golden_through_cli("gpu");
    }
}

/// ONNX activations per direction, α/β and clip from the command line, on every backend.
#[test]
fn onnx_activation_cases_through_cli() {
    let cases = onnx_activation_cases();
    cases_through_cli("reference", &cases);
    cases_through_cli("cpu", &cases);
    if gpu_available() {
        cases_through_cli("gpu", &cases);
    }
}

/// Keras masks through `--mask` (a bool .npy) and `--zero-output-for-mask`, on every backend,
/// against Keras's own outputs (including its `test_masking` expectations).
#[test]
fn keras_mask_cases_through_cli() {
    let cases = keras_mask_cases();
    cases_through_cli("reference", &cases);
    cases_through_cli("cpu", &cases);
    if gpu_available() {
        cases_through_cli("gpu", &cases);
    }
}

/// A mask of the wrong shape, a float mask, and a mask with lengths are refused in one line.
#[test]
fn bad_masks_are_refused_by_the_cli() {
    let path = keras_mask_cases().into_iter().next().unwrap();
    let case = Case::load(&path).unwrap();
    let dir = TempDir::new("mask");
    let mut base = case_args(&case, &dir, false);
    base.extend(["--backend".into(), "reference".into()]);
    let p = |n: &str| dir.path(n).display().to_string();
    let (b, t) = (case.batch, case.steps);
    write_npy_raw(
        &dir.path("mt.npy"),
        "|u1",
        false,
        &[t, b],
        &vec![1u8; t * b],
    );
    expect_failure(
        &with_flag(base.clone(), "--mask", &p("mt.npy")),
        &dir,
        &[
            "mt.npy",
            "mask",
            &format!("[{t}, {b}]"),
            &format!("[{b}, {t}]"),
        ],
    );
    npy::write_f32(dir.path("mf.npy"), &[b, t], &vec![1.0; t * b]).unwrap();
    expect_failure(
        &with_flag(base.clone(), "--mask", &p("mf.npy")),
        &dir,
        &["mf.npy", "float32"],
    );
    write_lengths(&dir.path("len.npy"), &vec![t; b], false);
    let mut both = base.clone();
    both.extend(["--lengths".into(), p("len.npy")]);
    expect_parse_failure(&both, &dir, &["--lengths", "--mask"]);
    // The mask's dtypes: uint8, int32 and int64 give the bool mask's bits.
    let out = run_bin(&base);
    assert!(out.status.success(), "{}", stderr(&out));
    let want = std::fs::read(dir.path("y.npy")).unwrap();
    let m = case.mask.as_ref().unwrap();
    for (descr, size) in [("|u1", 1), ("<i4", 4), ("<i8", 8)] {
        let bytes: Vec<u8> = m
            .iter()
            .flat_map(|&v| {
                let mut e = vec![0u8; size];
                e[0] = u8::from(v) * 3;
                e
            })
            .collect();
        let name = format!("m{size}.npy");
        write_npy_raw(&dir.path(&name), descr, false, &[b, t], &bytes);
        let out = run_bin(&with_flag(base.clone(), "--mask", &p(&name)));
        assert!(out.status.success(), "{descr}: {}", stderr(&out));
        assert_eq!(std::fs::read(dir.path("y.npy")).unwrap(), want, "{descr}");
    }
}

/// Hostile or broken model files (every `tests/data/pt/hostile_*.pt`, a whole pickled module, a
/// legacy checkpoint, truncated and corrupted `.onnx` models) end `run` with status 1, one line
/// that begins `wgpu-gru: error:`, and no output file.
#[test]
fn hostile_model_files_are_refused_in_one_line() {
    let case = onnx_case();
    let dir = TempDir::new("hostile");
    let mut base = case_args(&case, &dir, false);
    base.extend(["--backend".into(), "reference".into()]);
    let pt = common::data_dir("pt");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&pt)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.starts_with("hostile_")
                || n == "whole_module.pt"
                || n == "legacy.pt"
                || n == "torchscript.pt"
        })
        .collect();
    files.sort();
    assert!(files.len() >= 20, "{} hostile files", files.len());
    let onnx = std::fs::read(common::data_dir("onnx_files").join("torch_export_2layer_bidir.onnx"))
        .unwrap();
    for (k, cut) in [onnx.len() / 2, onnx.len() - 3].into_iter().enumerate() {
        let p = dir.path(&format!("cut{k}.onnx"));
        std::fs::write(&p, &onnx[..cut]).unwrap();
        files.push(p);
    }
    for f in files {
        let args = with_flag(base.clone(), "--weights", &f.display().to_string());
        let out = run_bin(&args);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{}: {}",
            f.display(),
            stderr(&out)
        );
        expect_failure(&args, &dir, &[]);
    }
}

/// `auto` says which path ran and why, in one line naming the `CPU path` or the `GPU path`;
/// on a software adapter (lavapipe in CI) that is the CPU path, while `--backend gpu` still runs
/// the adapter; `--quiet` prints nothing.
#[test]
fn auto_backend_says_which_path_and_why() {
    let case = Case::load(&golden_cases()[0]).unwrap();
    let dir = TempDir::new("auto");
    let args = case_args(&case, &dir, false);
    let out = run_bin(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().filter(|l| l.contains(" path")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].contains("running on the CPU path")
            || lines[0].contains("running on the GPU path"),
        "{err}"
    );
    case.compare(&read_outputs(&case, &dir)).unwrap();
    let adapter = wgpu_gru::gpu::GpuContext::default_adapter().ok();
    match adapter.map(|a| a.get_info()) {
        None => assert!(lines[0].contains("CPU path: no GPU adapter"), "{err}"),
        Some(info) if info.device_type == wgpu_gru::wgpu::DeviceType::Cpu => {
            assert!(
                lines[0].contains("CPU path") && lines[0].contains("software"),
                "{err}"
            );
            assert!(lines[0].contains(&info.name), "{err}");
            let mut forced = args.clone();
            forced.extend(["--backend".into(), "gpu".into()]);
            let out = run_bin(&forced);
            assert!(out.status.success(), "{}", stderr(&out));
            let err = stderr(&out);
            assert!(
                err.contains("running on the GPU path") && err.contains(&info.name),
                "{err}"
            );
            case.compare(&read_outputs(&case, &dir)).unwrap();
        }
        // A tiny golden case on a hardware GPU: the cost model keeps it on the CPU.
        Some(_) => assert!(lines[0].contains("CPU path: a problem this small"), "{err}"),
    }
    let mut quiet = args.clone();
    quiet.push("--quiet".into());
    let out = run_bin(&quiet);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stderr(&out), "", "--quiet printed something");
}

/// Float16 and float64 inputs are accepted.
#[test]
fn f16_and_f64_inputs() {
    let path = golden_cases()
        .into_iter()
        .find(|p| p.ends_with("onnx_bidir_seqlens.safetensors"))
        .unwrap();
    let case = Case::load(&path).unwrap();
    for (descr, size) in [("<f8", 8), ("<f2", 2)] {
        let dir = TempDir::new("fx");
        let mut args = case_args(&case, &dir, true);
        args.extend(["--backend".into(), "reference".into()]);
        let data: Vec<u8> = case
            .x
            .data
            .iter()
            .flat_map(|&v| match size {
                8 => (v as f64).to_le_bytes().to_vec(),
                _ => half::f16::from_f32(v).to_le_bytes().to_vec(),
            })
            .collect();
        write_npy_raw(&dir.path("x.npy"), descr, false, &case.x.shape, &data);
        let out = run_bin(&args);
        assert!(out.status.success(), "{descr}: {}", stderr(&out));
        let got = read_outputs(&case, &dir);
        if size == 8 {
            case.compare(&got).unwrap();
        } else {
            assert_eq!(got[0].1.shape, case.expected[0].1.shape);
        }
    }
}

/// The elements of a C-order array of `shape`, reordered as numpy stores the same array with
/// `fortran_order: True` (first axis fastest).
fn to_fortran(shape: &[usize], c: &[f32]) -> Vec<f32> {
    let mut out = Vec::with_capacity(c.len());
    let mut idx = vec![0usize; shape.len()];
    for _ in 0..c.len() {
        let mut off = 0;
        for (k, i) in idx.iter().enumerate() {
            off = off * shape[k] + i;
        }
        out.push(c[off]);
        for k in 0..shape.len() {
            idx[k] += 1;
            if idx[k] < shape[k] {
                break;
            }
            idx[k] = 0;
        }
    }
    out
}

/// A Fortran-ordered X, a Fortran-ordered h0 and a big-endian X (as `np.asfortranarray`,
/// `np.save(h.T)` and `astype(">f4")` write them) give the same output bits as their C-order
/// little-endian twins, on every backend.
#[test]
fn fortran_and_big_endian_inputs_match_their_twins() {
    let case = onnx_case();
    let h0 = case.h0.as_ref().expect("the ONNX case has an initial_h");
    let mut backends = vec!["reference", "cpu"];
    if gpu_available() {
        backends.push("gpu");
    }
    let le = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let be = |v: &[f32]| v.iter().flat_map(|x| x.to_be_bytes()).collect::<Vec<u8>>();
    for backend in backends {
        let dir = TempDir::new("twins");
        let mut args = case_args(&case, &dir, false);
        args.extend(["--backend".into(), backend.into()]);
        let out = run_bin(&args);
        assert!(out.status.success(), "{backend}: {}", stderr(&out));
        let want = [
            std::fs::read(dir.path("y.npy")).unwrap(),
            std::fs::read(dir.path("state.npy")).unwrap(),
        ];
        let twins: [(&str, &str, bool, &Array, Vec<u8>); 3] = [
            (
                "--input",
                "<f4",
                true,
                &case.x,
                le(&to_fortran(&case.x.shape, &case.x.data)),
            ),
            (
                "--h0",
                "<f4",
                true,
                h0,
                le(&to_fortran(&h0.shape, &h0.data)),
            ),
            ("--input", ">f4", false, &case.x, be(&case.x.data)),
        ];
        for (flag, descr, fortran, a, bytes) in twins {
            let name = format!("twin-{}-{descr}-{fortran}.npy", &flag[2..]);
            write_npy_raw(&dir.path(&name), descr, fortran, &a.shape, &bytes);
            let out = run_bin(&with_flag(
                args.clone(),
                flag,
                &dir.path(&name).display().to_string(),
            ));
            assert!(out.status.success(), "{backend} {name}: {}", stderr(&out));
            let got = [
                std::fs::read(dir.path("y.npy")).unwrap(),
                std::fs::read(dir.path("state.npy")).unwrap(),
            ];
            assert!(
                got == want,
                "{backend} {name}: outputs differ from the C-order twin"
            );
        }
    }
}

/// Runs a bad invocation: it must fail with one clear line (containing every `needles`),
/// never panic, and leave no output (even a stale one) and no temporary file behind.
fn expect_failure(args: &[String], dir: &TempDir, needles: &[&str]) {
    expect_failure_inner(args, dir, needles, false)
}

/// For command lines clap refuses: the output paths are not known, so stale files are left
/// untouched, but nothing is written.
fn expect_parse_failure(args: &[String], dir: &TempDir, needles: &[&str]) {
    expect_failure_inner(args, dir, needles, true)
}

fn expect_failure_inner(args: &[String], dir: &TempDir, needles: &[&str], parse_error: bool) {
    std::fs::write(dir.path("y.npy"), b"stale").unwrap();
    std::fs::write(dir.path("state.npy"), b"stale").unwrap();
    let before: Vec<String> = dir
        .files()
        .into_iter()
        .filter(|f| parse_error || (f != "y.npy" && f != "state.npy"))
        .collect();
    let out = run_bin(args);
    let err = stderr(&out);
    assert!(!out.status.success(), "succeeded: {args:?}");
    assert!(!err.contains("panicked"), "{err}");
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("wgpu-gru: error"))
        .collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "more than one line: {err}"
    );
    for n in needles {
        assert!(lines[0].contains(n), "{n:?} not in {:?}", lines[0]);
    }
    assert_eq!(
        dir.files(),
        before,
        "outputs or temporary files left behind"
    );
    if parse_error {
        assert_eq!(std::fs::read(dir.path("y.npy")).unwrap(), b"stale");
    }
    eprintln!("ok: {}", lines[0]);
}

fn onnx_case() -> Case {
    let path = golden_cases()
        .into_iter()
        .find(|p| p.ends_with("onnx_bidir_seqlens.safetensors"))
        .unwrap();
    Case::load(&path).unwrap()
}

fn with_flag(mut args: Vec<String>, flag: &str, value: &str) -> Vec<String> {
    let i = args.iter().position(|a| a == flag).unwrap();
    args[i + 1] = value.to_string();
    args
}

#[test]
fn bad_input_is_refused() {
    let case = onnx_case();
    let dir = TempDir::new("bad");
    let mut base = case_args(&case, &dir, false);
    base.extend(["--backend".into(), "reference".into()]);
    let p = |n: &str| dir.path(n).display().to_string();

    // Non-float X.
    let xi: Vec<u8> = case
        .x
        .data
        .iter()
        .flat_map(|&v| (v as i32).to_le_bytes())
        .collect();
    write_npy_raw(&dir.path("xi.npy"), "<i4", false, &case.x.shape, &xi);
    expect_failure(
        &with_flag(base.clone(), "--input", &p("xi.npy")),
        &dir,
        &["xi.npy", "int32", "X"],
    );

    // Wrong X shape: named with both shapes.
    npy::write_f32(dir.path("x2.npy"), &[4, 3, 2], &[0.0; 24]).unwrap();
    expect_failure(
        &with_flag(base.clone(), "--input", &p("x2.npy")),
        &dir,
        &["x2.npy", "X", "[T, B, 3]", "[4, 3, 2]"],
    );
    npy::write_f32(dir.path("x3.npy"), &[12, 3], &[0.0; 36]).unwrap();
    expect_failure(
        &with_flag(base.clone(), "--input", &p("x3.npy")),
        &dir,
        &["x3.npy", "[12, 3]"],
    );

    // Wrong h0 shape.
    npy::write_f32(dir.path("h0b.npy"), &[1, 3, 5], &[0.0; 15]).unwrap();
    expect_failure(
        &with_flag(base.clone(), "--h0", &p("h0b.npy")),
        &dir,
        &["h0b.npy", "initial_h", "[2, 3, 5]", "[1, 3, 5]"],
    );

    // Float lengths, lengths of the wrong size, lengths out of range.
    npy::write_f32(dir.path("lenf.npy"), &[3], &[1.0, 2.0, 3.0]).unwrap();
    expect_failure(
        &with_flag(base.clone(), "--lengths", &p("lenf.npy")),
        &dir,
        &["lenf.npy", "float32"],
    );
    write_lengths(&dir.path("len2.npy"), &[1, 2], false);
    expect_failure(
        &with_flag(base.clone(), "--lengths", &p("len2.npy")),
        &dir,
        &["len2.npy", "[3]", "[2]"],
    );
    write_lengths(&dir.path("len9.npy"), &[1, 9, 2], true);
    expect_failure(
        &with_flag(base.clone(), "--lengths", &p("len9.npy")),
        &dir,
        &["len9.npy", "9"],
    );
    write_npy_raw(
        &dir.path("lenneg.npy"),
        "<i8",
        false,
        &[3],
        &[1i64, -1, 2]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect::<Vec<u8>>(),
    );
    expect_failure(
        &with_flag(base.clone(), "--lengths", &p("lenneg.npy")),
        &dir,
        &["lenneg.npy", "-1"],
    );

    // Truncated and garbage .npy files.
    let good = npy::to_bytes_f32(&case.x.shape, &case.x.data).unwrap();
    std::fs::write(dir.path("xt.npy"), &good[..good.len() - 3]).unwrap();
    expect_failure(
        &with_flag(base.clone(), "--input", &p("xt.npy")),
        &dir,
        &["xt.npy", "truncated"],
    );
    std::fs::write(dir.path("xg.npy"), b"hello").unwrap();
    expect_failure(
        &with_flag(base.clone(), "--input", &p("xg.npy")),
        &dir,
        &["xg.npy"],
    );
    expect_failure(
        &with_flag(base.clone(), "--input", &p("missing.npy")),
        &dir,
        &["missing.npy"],
    );

    // Weights: not a safetensors file, a layout that is not the one named.
    std::fs::write(
        dir.path("w.safetensors"),
        b"\x08\x00\x00\x00\x00\x00\x00\x00{}",
    )
    .unwrap();
    expect_failure(
        &with_flag(base.clone(), "--weights", &p("w.safetensors")),
        &dir,
        &["w.safetensors"],
    );
    let mut a = base.clone();
    a.extend(["--format".into(), "keras".into()]);
    expect_failure(&a, &dir, &["missing tensor", "kernel"]);

    // Options contradicting the weights.
    expect_failure(
        &with_flag(base.clone(), "--direction", "forward"),
        &dir,
        &["W", "directions"],
    );
    let mut a = base.clone();
    a.extend(["--activations".into(), "Sigmoid,Nope".into()]);
    expect_failure(&a, &dir, &["activations", "nope"]);
    let mut a = base.clone();
    a.extend(["--clip".into(), "-1".into()]);
    expect_failure(&a, &dir, &["clip"]);

    // Unknown flag and bad enum value: clap errors, still one line.
    let mut a = base.clone();
    a.push("--bogus".into());
    expect_parse_failure(&a, &dir, &["--bogus"]);
    expect_parse_failure(&with_flag(base.clone(), "--backend", "tpu"), &dir, &["tpu"]);
}

/// Every required argument that is missing is named in the one line, with where help is.
#[test]
fn missing_arguments_are_named() {
    let dir = TempDir::new("missing");
    let s = |v: &[&str]| v.iter().map(|a| a.to_string()).collect::<Vec<String>>();
    let all = ["--weights <MODEL>", "--input <X.npy>", "--output <Y.npy>"];
    let cases: [(&[&str], &[&str], &[&str]); 4] = [
        (&["run"], &all, &[]),
        (&["run", "--weights", "w.safetensors"], &all[1..], &[all[0]]),
        (
            &["run", "--input", "x.npy", "--backend", "cpu"],
            &[all[0], all[2]],
            &[all[1]],
        ),
        (
            &["run", "--weights", "w", "--input", "x"],
            &all[2..],
            &all[..2],
        ),
    ];
    for (args, named, not_named) in cases {
        expect_parse_failure(&s(args), &dir, named);
        let err = stderr(&run_bin(&s(args)));
        assert!(err.contains("run needs "), "{err}");
        assert!(err.contains("see wgpu-gru run --help"), "{err}");
        for n in not_named {
            assert!(!err.contains(n), "{n} is not missing: {err}");
        }
    }
    // The same for `grad`, which needs five files.
    let grad_all = [
        "--weights <W.safetensors>",
        "--input <X.npy>",
        "--grad-output <GY.npy>",
        "--grad-state <GS.npy>",
        "--out <G.safetensors>",
    ];
    expect_parse_failure(&s(&["grad"]), &dir, &grad_all);
    let err = stderr(&run_bin(&s(&[
        "grad",
        "--input",
        "x.npy",
        "--out",
        "g.safetensors",
    ])));
    assert!(
        err.contains(
            "grad needs --weights <W.safetensors>, --grad-output <GY.npy> and --grad-state <GS.npy>"
        ),
        "{err}"
    );
    assert!(err.contains("see wgpu-gru grad --help"), "{err}");
    // A bad value keeps clap's detail (the possible values) in the same line.
    let err = stderr(&run_bin(&s(&["run", "--backend", "tpu"])));
    assert!(err.contains("tpu") && err.contains("reference"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}

#[test]
fn outputs_never_overwrite_inputs() {
    let case = onnx_case();
    let dir = TempDir::new("same");
    let mut base = case_args(&case, &dir, false);
    base.extend(["--backend".into(), "reference".into()]);
    let x = dir.path("x.npy").display().to_string();
    let before = std::fs::read(&x).unwrap();
    let out = run_bin(&with_flag(base.clone(), "--output", &x));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("x.npy"), "{}", stderr(&out));
    assert_eq!(std::fs::read(&x).unwrap(), before);
    let out = run_bin(&with_flag(
        base.clone(),
        "--state-out",
        &dir.path("y.npy").display().to_string(),
    ));
    assert!(!out.status.success());
    // A missing output directory is refused before any work.
    let out = run_bin(&with_flag(base, "--output", "/nonexistent-dir/y.npy"));
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("/nonexistent-dir"),
        "{}",
        stderr(&out)
    );
}

/// `--backend gpu` never falls back silently.
#[test]
fn gpu_backend_fails_without_adapter() {
    let case = onnx_case();
    let dir = TempDir::new("nogpu");
    let mut args = case_args(&case, &dir, false);
    args.extend(["--backend".into(), "gpu".into()]);
    // An adapter name that matches nothing.
    let out = Command::new(bin())
        .args(&args)
        .env("WGPU_ADAPTER_NAME", "no-such-adapter-anywhere")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("gpu backend") && err.contains("adapter"),
        "{err}"
    );
    assert!(!dir.path("y.npy").exists());
    // auto, in the same situation, uses the CPU and says so.
    let i = args.iter().position(|a| a == "gpu").unwrap();
    args[i] = "auto".into();
    let out = Command::new(bin())
        .args(&args)
        .env("WGPU_ADAPTER_NAME", "no-such-adapter-anywhere")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("CPU"), "{}", stderr(&out));
    case.compare(&read_outputs(&case, &dir)).unwrap();
}
