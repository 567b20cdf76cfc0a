//! The `wgpu-gru` binary refuses bad command lines and files in one `wgpu-gru: error:` line, with
//! a failure status, never a panic, and leaves no output or temporary file behind: malformed
//! weights, hostile model files, bad inputs, masks and lengths, bad output paths, missing
//! arguments, outputs too large to allocate; and what it does not refuse (empty problems, NaN).

use crate::common;

use std::path::PathBuf;
use std::process::Command;

use common::cli::{
    TempDir, args, bin, case_args, onnx_case, run_bin, stderr, with_flag, write_lengths,
};
use common::npy_file::{self, dict, raw};
use common::safetensors_file::{T, onnx, replace, st_bytes, t, torch, without, z};
use common::{Case, keras_mask_cases};
use wgpu_gru::npy;

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
    npy_file::write(
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
        npy_file::write(&dir.path(&name), descr, false, &[b, t], &bytes);
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

/// Runs a bad invocation: it must fail with one clear line (containing every `needles`),
/// never panic, leave the files that were at the output paths byte-identical, and leave no
/// temporary file behind.
fn expect_failure(args: &[String], dir: &TempDir, needles: &[&str]) {
    std::fs::write(dir.path("y.npy"), b"stale").unwrap();
    std::fs::write(dir.path("state.npy"), b"stale").unwrap();
    let before: Vec<String> = dir.files();
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
    assert_eq!(std::fs::read(dir.path("y.npy")).unwrap(), b"stale");
    assert_eq!(std::fs::read(dir.path("state.npy")).unwrap(), b"stale");
    eprintln!("ok: {}", lines[0]);
}

/// For command lines clap refuses (the same checks).
fn expect_parse_failure(args: &[String], dir: &TempDir, needles: &[&str]) {
    expect_failure(args, dir, needles)
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
    npy_file::write(&dir.path("xi.npy"), "<i4", false, &case.x.shape, &xi);
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
    npy_file::write(
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

/// Runs the binary, under an address-space limit of `limit_kib` KiB when given.
fn run_cli(args: &[String], limit_kib: Option<u64>) -> std::process::Output {
    match limit_kib {
        None => run_bin(args),
        Some(kib) => Command::new("sh")
            .arg("-c")
            .arg(format!("ulimit -v {kib} && exec \"$0\" \"$@\""))
            .arg(bin())
            .args(args)
            .output()
            .unwrap(),
    }
}

/// Refused with exactly one `wgpu-gru: error:` line, a failure status, no panic, and no file
/// added to `dir` (outputs or temporaries).
#[track_caller]
fn cli_refuses(dir: &TempDir, args: &[String], limit_kib: Option<u64>, needles: &[&str]) {
    let before = dir.files();
    let out = run_cli(args, limit_kib);
    let err = stderr(&out);
    assert!(!out.status.success(), "succeeded: {args:?}\n{err}");
    // 1 for refused input, 2 for a command line clap refuses; never a signal.
    assert!(
        matches!(out.status.code(), Some(1 | 2)),
        "killed or crashed: {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].starts_with("wgpu-gru: error: "), "{err}");
    for n in needles {
        assert!(lines[0].contains(n), "{n:?} not in {}", lines[0]);
    }
    assert_eq!(dir.files(), before, "files left behind");
}

fn write_weights(dir: &TempDir, name: &str, tensors: &[T]) -> String {
    std::fs::write(dir.path(name), st_bytes(tensors, &[])).unwrap();
    dir.s(name)
}

/// `run --weights w --input x --output y [--state-out s] --backend backend`.
fn run_args(w: &str, x: &str, y: &str, s: Option<&str>, backend: &str) -> Vec<String> {
    let mut a = args(&["run", "--weights", w, "--input", x, "--output", y]);
    if let Some(s) = s {
        a.extend(args(&["--state-out", s]));
    }
    a.extend(args(&["--backend", backend]));
    a
}

/// Writes a `.npy` file of `header` (unpadded, version 1) and no data: shapes without elements,
/// or with elements it does not hold.
fn write_header_only(dir: &TempDir, name: &str, header: &str) -> String {
    std::fs::write(dir.path(name), raw(1, header, &[])).unwrap();
    dir.s(name)
}

#[test]
fn cli_empty_problems_write_empty_outputs() {
    let dir = TempDir::new("empty");
    let w = write_weights(&dir, "w.safetensors", &onnx(2, 5, 3));
    for (shape, y_shape) in [
        ([0usize, 2, 3], [0usize, 2, 2, 5]),
        ([4, 0, 3], [4, 2, 0, 5]),
    ] {
        npy::write_f32(dir.path("x.npy"), &shape, &[]).unwrap();
        for backend in ["reference", "cpu"] {
            let (x, y, s) = (dir.s("x.npy"), dir.s("y.npy"), dir.s("s.npy"));
            let out = run_cli(&run_args(&w, &x, &y, Some(&s), backend), None);
            assert!(out.status.success(), "{}", stderr(&out));
            let (ys, y) = npy::read_f32(dir.path("y.npy")).unwrap();
            assert_eq!((ys, y.len()), (y_shape.to_vec(), 0));
            let (ss, s) = npy::read_f32(dir.path("s.npy")).unwrap();
            assert_eq!(ss, vec![2, shape[1], 5]);
            assert!(s.iter().all(|&v| v == 0.0));
        }
    }
}

#[test]
fn cli_refuses_malformed_files() {
    let dir = TempDir::new("malformed");
    npy::write_f32(dir.path("x.npy"), &[2, 1, 4], &[0.5; 8]).unwrap();
    let (x, y, s) = (dir.s("x.npy"), dir.s("y.npy"), dir.s("s.npy"));
    let run = |w: &str| run_args(w, &x, &y, Some(&s), "reference");
    let huge = usize::MAX;
    for (name, tensors, needle) in [
        (
            "dtype.safetensors",
            {
                let mut v = torch(1, 1, 3, 4, true);
                v[0].dtype = "I32";
                v
            },
            "I32",
        ),
        (
            "missing.safetensors",
            without(torch(2, 1, 3, 4, true), "weight_hh_l1"),
            "weight_hh_l1",
        ),
        (
            "layers.safetensors",
            replace(torch(2, 1, 3, 4, true), t("weight_ih_l1", &[9, 4], 0)),
            "weight_ih_l1",
        ),
        (
            "huge.safetensors",
            replace(torch(1, 1, 3, 4, true), z("weight_hh_l0", &[0, huge])),
            "weight_hh_l0",
        ),
        (
            "huge2.safetensors",
            replace(onnx(1, 3, 4), z("R", &[1, 0, huge])),
            "R",
        ),
        ("none.safetensors", vec![t("x", &[1], 0)], "layout"),
    ] {
        let w = write_weights(&dir, name, &tensors);
        cli_refuses(&dir, &run(&w), None, &[name, needle]);
    }
    for (name, bytes) in [
        (
            "garbage.safetensors",
            &b"\xff\xff\xff\xff\xff\xff\xff\xff{"[..],
        ),
        ("empty.safetensors", b""),
    ] {
        std::fs::write(dir.path(name), bytes).unwrap();
        cli_refuses(&dir, &run(&dir.s(name)), None, &[name]);
    }
    // A directory given as the weights, or as the input.
    cli_refuses(&dir, &run(&dir.s("")), None, &[]);
}

#[test]
fn cli_refuses_bad_outputs() {
    let dir = TempDir::new("outputs");
    let w = write_weights(&dir, "w.safetensors", &onnx(1, 3, 4));
    npy::write_f32(dir.path("x.npy"), &[2, 1, 4], &[0.5; 8]).unwrap();
    std::fs::create_dir(dir.path("sub")).unwrap();
    std::fs::write(dir.path("sub/keep"), b"k").unwrap();
    let x = dir.s("x.npy");
    let base = |y: &str, s: &str| run_args(&w, &x, y, Some(s), "reference");
    // The output is a directory: nothing written, the directory untouched.
    cli_refuses(&dir, &base(&dir.s("sub"), &dir.s("s.npy")), None, &["sub"]);
    cli_refuses(&dir, &base(&dir.s("y.npy"), &dir.s("sub")), None, &["sub"]);
    assert_eq!(std::fs::read(dir.path("sub/keep")).unwrap(), b"k");
    // A device: never replaced by a rename, never deleted on failure.
    cli_refuses(
        &dir,
        &base(&dir.s("y.npy"), "/dev/null"),
        None,
        &["/dev/null", "regular"],
    );
    assert!(!std::fs::metadata("/dev/null").unwrap().is_file());
    // Paths that name no file.
    cli_refuses(&dir, &base("", &dir.s("s.npy")), None, &[]);
    cli_refuses(
        &dir,
        &base(&dir.s("y.npy"), &format!("{}/..", dir.s("sub"))),
        None,
        &[],
    );
}

#[test]
fn cli_refuses_bad_sequence_inputs() {
    let dir = TempDir::new("seq");
    let w = write_weights(&dir, "w.safetensors", &torch(1, 1, 5, 3, true));
    let y = dir.s("y.npy");
    let run = |x: &str, extra: &[&str]| {
        let mut a = run_args(&w, x, &y, None, "cpu");
        a.extend(args(extra));
        a
    };
    npy::write_f32(dir.path("x.npy"), &[4, 2, 3], &[0.5; 24]).unwrap();
    let lens = |name: &str, v: &[i64]| {
        let data: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        let b = raw(1, &dict("<i8", false, &format!("({},)", v.len())), &data);
        std::fs::write(dir.path(name), b).unwrap();
        dir.s(name)
    };
    for (name, v, needle) in [
        ("l0.npy", &[0i64, 1][..], "= 0"),
        ("l5.npy", &[5, 1], "= 5"),
        ("lneg.npy", &[-3, 1], "-3"),
        ("lmin.npy", &[i64::MIN, 1], "-9223372036854775808"),
        ("lcount.npy", &[1, 1, 1], "[2]"),
        ("lempty.npy", &[], "[2]"),
    ] {
        let l = lens(name, v);
        cli_refuses(
            &dir,
            &run(&dir.s("x.npy"), &["--lengths", &l]),
            None,
            &[name, needle],
        );
    }
    // T = 0 with lengths: every length is out of range.
    npy::write_f32(dir.path("x0.npy"), &[0, 2, 3], &[]).unwrap();
    let l = lens("l1.npy", &[1, 1]);
    cli_refuses(
        &dir,
        &run(&dir.s("x0.npy"), &["--lengths", &l]),
        None,
        &["1..=0"],
    );
    // An X whose T·B·I overflows (it holds no data), and one with an absurd B.
    let shape = "(4611686018427387904, 4611686018427387904, 3)";
    let x = write_header_only(&dir, "xo.npy", &dict("<f4", false, shape));
    cli_refuses(&dir, &run(&x, &[]), None, &["xo.npy"]);
    let shape = "(0, 4611686018427387904, 3)";
    let x = write_header_only(&dir, "xb.npy", &dict("<f4", false, shape));
    cli_refuses(&dir, &run(&x, &[]), None, &["overflow"]);
}

/// T = 0 with a huge B asks for a huge h_n from a 128-byte file: refused when the memory cannot
/// be had (here, under a 2 GiB address-space limit), not an allocation abort.
#[test]
fn cli_refuses_outputs_too_large_to_allocate() {
    let dir = TempDir::new("alloc");
    let w = write_weights(&dir, "w.safetensors", &torch(1, 2, 5, 3, true));
    let x = write_header_only(&dir, "x.npy", &dict("<f4", false, "(0, 2000000000, 3)"));
    let (y, s) = (dir.s("y.npy"), dir.s("s.npy"));
    for backend in ["reference", "cpu"] {
        let a = run_args(&w, &x, &y, Some(&s), backend);
        cli_refuses(&dir, &a, Some(2 << 20), &["memory"]);
    }
}

/// NaN in the input is not an error for the CLI either: it reaches the output file.
#[test]
fn cli_passes_nan_through() {
    let dir = TempDir::new("nan");
    let w = write_weights(&dir, "w.safetensors", &torch(1, 1, 5, 3, true));
    let mut x = vec![0.5f32; 2 * 2 * 3];
    x[0] = f32::NAN;
    npy::write_f32(dir.path("x.npy"), &[2, 2, 3], &x).unwrap();
    for backend in ["reference", "cpu"] {
        let a = run_args(&w, &dir.s("x.npy"), &dir.s("y.npy"), None, backend);
        let out = run_cli(&a, None);
        assert!(out.status.success(), "{}", stderr(&out));
        let (_, y) = npy::read_f32(dir.path("y.npy")).unwrap();
        // Row 0 is NaN at both steps, row 1 is finite.
        for (k, v) in y.iter().enumerate() {
            let row = (k / 5) % 2;
            assert_eq!(v.is_nan(), row == 0, "{backend}: y[{k}] = {v}");
        }
    }
}
