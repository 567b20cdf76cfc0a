//! The `wgpu-gru run` binary on every golden case (reference, cpu and gpu backends), the Keras
//! mask and ONNX activation cases, input dtypes and orders, and how it picks a backend. Its
//! refusals are in `tests/cli/cli_refusals.rs`.
//!
//! GPU runs are skipped with a message when no adapter exists, unless `REQUIRE_GPU=1`.

use crate::common;
use crate::gpu_common;

use std::path::PathBuf;
use std::process::Command;

use common::cli::{
    TempDir, args, bin, case_args, onnx_case, read_outputs, run_bin, stderr, with_flag,
};
use common::{Array, Case, golden_cases, keras_mask_cases, npy_file, onnx_activation_cases};

/// Whether a GPU adapter exists (`gpu_common::ctx`: panics when none does and `REQUIRE_GPU=1`).
fn gpu_available() -> bool {
    gpu_common::ctx().is_some()
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
    let case = onnx_case();
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
        npy_file::write(&dir.path("x.npy"), descr, false, &case.x.shape, &data);
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
            npy_file::write(&dir.path(&name), descr, fortran, &a.shape, &bytes);
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

/// `wgpu-gru shader` lists the modules and prints each exactly as the library compiles it.
#[test]
fn shader_prints_what_is_compiled() {
    use wgpu_gru::gpu::wgsl::Shader;
    let list = run_bin(&args(&["shader"]));
    assert!(list.status.success(), "{}", stderr(&list));
    let names: Vec<String> = String::from_utf8(list.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(names, Shader::ALL.map(|s| s.name().to_string()));
    for s in Shader::ALL {
        let o = run_bin(&args(&["shader", s.name()]));
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(
            String::from_utf8(o.stdout).unwrap(),
            s.source(),
            "{}",
            s.name()
        );
    }
    let bad = run_bin(&args(&["shader", "nope.wgsl"]));
    assert_eq!(bad.status.code(), Some(1));
    assert!(stderr(&bad).contains("no shader nope.wgsl; the shaders are input_proj.wgsl"));
}

/// `wgpu-gru occupancy` probes the adapter and writes what it measured.
#[test]
fn occupancy_reports_resident_workgroups() {
    if !gpu_available() {
        return;
    }
    let dir = TempDir::new("occupancy");
    let json = dir.path("occ.json");
    let o = run_bin(&args(&[
        "occupancy",
        "--launch",
        "16",
        "--workgroup-size",
        "64",
        "--workgroup-bytes",
        "0,4096",
        "--json",
        json.to_str().unwrap(),
    ]));
    assert!(o.status.success(), "{}", stderr(&o));
    let rows: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(rows.len(), 2);
    for r in rows {
        let resident = r["resident"].as_u64().unwrap();
        assert!((1..=16).contains(&resident), "{r}");
    }
}

/// `wgpu-gru bench --floor` writes the batch-1 bandwidth floor for every H and thread count,
/// then the FMA peak and each standard shape's time at it.
#[test]
fn bench_floor_reports_both_floors_and_the_gemm() {
    let dir = TempDir::new("floor");
    let json = dir.path("floor.json");
    let o = run_bin(&args(&[
        "bench",
        "--floor",
        "--threads",
        "2",
        "--reps",
        "1",
        "--warmup",
        "0",
        "--json",
        json.to_str().unwrap(),
    ]));
    assert!(o.status.success(), "{}", stderr(&o));
    let rows: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let (steps, rest): (Vec<_>, Vec<_>) = rows.iter().partition(|r| r.get("hidden").is_some());
    let (gemms, peaks): (Vec<_>, Vec<_>) = rest.into_iter().partition(|r| r.get("gemm").is_some());
    assert_eq!(steps.len(), 5 * 2, "H = 64 … 1024 at 1 and 2 threads");
    let names: Vec<_> = gemms.iter().map(|r| r["gemm"].as_str().unwrap()).collect();
    assert_eq!(names, ["medium", "large"], "the projections above 1 GFLOP");
    for r in &gemms {
        let (m, k, n) = (
            r["m"].as_u64().unwrap(),
            r["k"].as_u64().unwrap(),
            r["n"].as_u64().unwrap(),
        );
        assert!(m * k * n > 1 << 30, "{r}");
        assert!(r["gemm_gflop_s"].as_f64().unwrap() > 0.1, "{r}");
    }
    assert_eq!(
        peaks.len(),
        5 * 2,
        "five standard shapes at 1 and 2 threads"
    );
    for r in &steps {
        assert!(r["floor_us"].as_f64().unwrap() > 0.0, "{r}");
        assert!(r["step_us"].as_f64().unwrap() > 0.0, "{r}");
    }
    for r in &peaks {
        let peak = r["fma_peak_gflop_s"].as_f64().unwrap();
        let floor = r["compute_floor_ms"].as_f64().unwrap();
        let flop = r["flop"].as_f64().unwrap();
        assert!(peak > 0.1, "{r}");
        assert!((floor * 1e-3 * peak * 1e9 / flop - 1.0).abs() < 1e-9, "{r}");
    }
}
