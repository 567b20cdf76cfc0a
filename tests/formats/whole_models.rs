//! Whole models as users save them (`wgpu_gru::predict`, `wgpu-gru predict`): every case in
//! `tests/data/models/` (the shared golden cases and `scripts/whole_models.py`'s), a Keras
//! `.keras`/`.h5` file or an `.onnx` export with the framework's own prediction, on the
//! reference, CPU and GPU paths, through the library and the CLI; and the CLI's file handling.

use crate::common;
use crate::gpu_common;

use std::path::{Path, PathBuf};

use common::cli::{TempDir, args, run_bin, stderr};
use common::data_dir;
use wgpu_gru::formats::SafetensorsFile;
use wgpu_gru::npy;
use wgpu_gru::predict::{Array, Backend, Model, ModelKind, PredictStats};

/// One case: the model file, `x`, the framework's `y` and the tolerance.
struct ModelCase {
    name: String,
    model: PathBuf,
    x: Array,
    y: Array,
    tol: f32,
}

fn cases() -> Vec<ModelCase> {
    let dir = data_dir("models");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".case.safetensors"))
        .collect();
    paths.sort();
    assert!(
        paths.len() >= 13,
        "expected the golden model cases in {}",
        dir.display()
    );
    paths
        .iter()
        .map(|p| {
            let f = SafetensorsFile::open(p).unwrap();
            let meta = f.metadata().unwrap();
            let get = |n: &str| {
                let t = f.require_f32(n, "model case").unwrap();
                Array::new(t.shape, t.data).unwrap()
            };
            ModelCase {
                name: p
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .trim_end_matches(".case.safetensors")
                    .to_string(),
                model: dir.join(&meta["model"]),
                x: get("x"),
                y: get("y"),
                tol: meta["tol"].parse().unwrap(),
            }
        })
        .collect()
}

/// The cases' rule: `max |got − y| / max(1, max |y|)`, `∞` when the shapes differ.
fn score(got: &Array, want: &Array) -> f32 {
    if got.shape != want.shape {
        return f32::INFINITY;
    }
    let scale = want.data.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    wgpu_gru::max_abs_diff(&got.data, &want.data) / scale
}

fn check_backend(label: &str, backend: Backend<'_>) {
    let mut failures = Vec::new();
    for c in cases() {
        let model = Model::load(&c.model).unwrap_or_else(|e| panic!("{}: {e}", c.name));
        let runner = model
            .runner(backend)
            .unwrap_or_else(|e| panic!("{} on {label}: {e}", c.name));
        let (got, stats) = runner
            .predict_with_stats(&c.x, &[])
            .unwrap_or_else(|e| panic!("{} on {label}: {e}", c.name));
        if let Backend::Gpu(_) = backend {
            // A Keras model is one submit on the GPU, whatever its layers; a second prediction
            // reuses the workspace and gives the same numbers.
            if matches!(model.kind(), ModelKind::Keras(_)) {
                assert_eq!(stats.gpu_submits, 1, "{}: {stats:?}", c.name);
                let (again, _) = runner.predict_with_stats(&c.x, &[]).unwrap();
                assert_eq!(again, got, "{}: a second prediction differs", c.name);
            } else {
                assert!(stats.gpu_submits >= 1, "{}: {stats:?}", c.name);
            }
        } else {
            assert_eq!(stats, PredictStats::default(), "{}", c.name);
        }
        let s = score(&got, &c.y);
        eprintln!(
            "{label}: {}: {} -> {:?}, error {s:.2e}",
            c.name,
            model.describe(),
            got.shape
        );
        if s.is_nan() || s > c.tol {
            failures.push(format!("{}: {s:e} > {:e}", c.name, c.tol));
        }
    }
    assert!(failures.is_empty(), "{label}: {failures:?}");
}

#[test]
fn every_case_on_the_reference() {
    check_backend("reference", Backend::Reference);
}

#[test]
fn every_case_on_the_cpu_path() {
    check_backend("cpu", Backend::Cpu);
    check_backend("cpu, 2 threads", Backend::CpuThreads(2));
}

#[test]
fn every_case_on_the_gpu() {
    let Some(ctx) = gpu_common::ctx() else { return };
    check_backend("gpu", Backend::Gpu(ctx));
}

fn write_x(dir: &TempDir, x: &Array) -> String {
    let p = dir.s("x.npy");
    npy::write_f32(&p, &x.shape, &x.data).unwrap();
    p
}

fn read_y(p: &Path) -> Array {
    let (shape, data) = npy::read_f32(p).unwrap();
    Array::new(shape, data).unwrap()
}

#[test]
fn predict_command_matches_every_case() {
    let gpu = gpu_common::ctx().is_some();
    for c in cases() {
        let dir = TempDir::new("predict");
        let x = write_x(&dir, &c.x);
        for backend in ["reference", "cpu", "gpu", "auto"] {
            if backend == "gpu" && !gpu {
                continue;
            }
            let y = dir.s(&format!("y-{backend}.npy"));
            let o = run_bin(&args(&[
                "predict",
                "--model",
                &c.model.display().to_string(),
                "--input",
                &x,
                "--output",
                &y,
                "--backend",
                backend,
            ]));
            assert!(o.status.success(), "{} {backend}: {}", c.name, stderr(&o));
            let s = score(&read_y(Path::new(&y)), &c.y);
            assert!(s <= c.tol, "{} on {backend}: {s:e}", c.name);
        }
    }
}

/// A failed `predict` or `run` leaves the file at the output path byte-identical; a later
/// successful one replaces it.
/// `wgpu-gru run --weights W --input X --output Y`, then `extra`.
fn run_args(weights: &str, x: &str, y: &str, extra: &[&str]) -> Vec<String> {
    let mut a = args(&["run", "--weights", weights, "--input", x, "--output", y]);
    a.extend(args(extra));
    a
}

#[test]
fn failed_commands_leave_existing_outputs_alone() {
    let c = cases()
        .into_iter()
        .find(|c| c.name == "pub_k_seed")
        .unwrap();
    let dir = TempDir::new("keep");
    let x = write_x(&dir, &c.x);
    let y = dir.s("y.npy");
    let s = dir.s("s.npy");
    std::fs::write(&y, b"earlier results").unwrap();
    std::fs::write(&s, b"earlier state").unwrap();
    let model = c.model.display().to_string();
    let bad_x = dir.s("bad_x.npy");
    npy::write_f32(&bad_x, &[2, 3], &[0.0; 6]).unwrap();
    let predict = |model: &str, input: &str| {
        args(&[
            "predict", "--model", model, "--input", input, "--output", &y,
        ])
    };
    let run = |weights: &str| run_args(weights, &x, &y, &["--state-out", &s]);
    let attempts = [
        predict("missing.keras", &x),
        predict(&model, &bad_x),
        predict(&x, &x),
        run("missing.safetensors"),
        run(&model),
    ];
    for a in &attempts {
        let o = run_bin(a);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{a:?}: {err}");
        assert_eq!(
            err.lines()
                .filter(|l| l.starts_with("wgpu-gru: error:"))
                .count(),
            1,
            "{err}"
        );
        assert_eq!(std::fs::read(&y).unwrap(), b"earlier results", "{a:?}");
        assert_eq!(std::fs::read(&s).unwrap(), b"earlier state", "{a:?}");
    }
    let mut left = dir.files();
    left.retain(|f| f.starts_with('.'));
    assert!(left.is_empty(), "temporary files left: {left:?}");
    let o = run_bin(&args(&[
        "predict", "--model", &model, "--input", &x, "--output", &y, "-q",
    ]));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(score(&read_y(Path::new(&y)), &c.y) <= c.tol);
}

/// `run` on a full `state_dict` in safetensors (`gru.*` beside `fc.*`): the GRU is found alone
/// or by `--prefix`, as in a `.pt` checkpoint, and gives the bare GRU file's output; a prefix
/// that names nothing, or a `--prefix` on an `.onnx` file, is an error.
#[test]
fn run_reads_a_full_state_dict_in_safetensors() {
    use safetensors::{Dtype, tensor::TensorView};
    let golden = common::golden_dir().join("pytorch_basic.safetensors");
    let f = SafetensorsFile::open(&golden).unwrap();
    let dir = TempDir::new("prefix");
    let input = f.require_f32("input", "case").unwrap();
    let x = dir.s("x.npy");
    npy::write_f32(&x, &input.shape, &input.data).unwrap();
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for n in ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"] {
        let t = f.require_f32(n, "case").unwrap();
        let bytes = t.data.iter().flat_map(|v| v.to_le_bytes()).collect();
        tensors.push((format!("gru.{n}"), t.shape, bytes));
    }
    tensors.push(("fc.weight".into(), vec![2, 7], vec![0u8; 56]));
    tensors.push(("fc.bias".into(), vec![2], vec![0u8; 8]));
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(n, s, b)| {
            (
                n.clone(),
                TensorView::new(Dtype::F32, s.clone(), b).unwrap(),
            )
        })
        .collect();
    let full = dir.path("full.safetensors");
    std::fs::write(&full, safetensors::serialize(views, None).unwrap()).unwrap();
    let full = full.display().to_string();

    let run = |weights: &str, extra: &[&str], out: &str| {
        run_bin(&run_args(weights, &x, out, &[&["-q"], extra].concat()))
    };
    let want_path = dir.s("want.npy");
    let o = run(&golden.display().to_string(), &[], &want_path);
    assert!(o.status.success(), "{}", stderr(&o));
    let want = std::fs::read(&want_path).unwrap();
    for extra in [&[][..], &["--prefix", "gru."][..], &["--prefix", "gru"][..]] {
        let y = dir.s("y.npy");
        let o = run(&full, extra, &y);
        assert!(o.status.success(), "{extra:?}: {}", stderr(&o));
        assert_eq!(std::fs::read(&y).unwrap(), want, "{extra:?}");
    }
    let o = run(&full, &["--prefix", "encoder."], &dir.s("z.npy"));
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("'encoder.'") && stderr(&o).contains("'gru.'"),
        "{}",
        stderr(&o)
    );
    let onnx = data_dir("onnx_files").join("torch_export_basic.onnx");
    let o = run(
        &onnx.display().to_string(),
        &["--prefix", "gru."],
        &dir.s("z.npy"),
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("prefix"), "{}", stderr(&o));
    assert!(!dir.path("z.npy").exists());
}

/// Bad Keras files through `predict`: truncated, garbage, an unknown layer class and a zip bomb
/// end with status 1, one error line, and the file at `--output` as it was.
#[test]
fn bad_keras_files_are_refused() {
    use std::io::{Read, Write};
    let dir = TempDir::new("bad-keras");
    let x = write_x(&dir, &Array::new(vec![2, 16, 4], vec![0.0; 128]).unwrap());
    let models = data_dir("models");
    let keras = std::fs::read(models.join("pub_k_seed.keras")).unwrap();
    let h5 = std::fs::read(models.join("pub_k_seed_h5.h5")).unwrap();
    let mut src = zip::ZipArchive::new(std::io::Cursor::new(&keras)).unwrap();
    let mut entries = Vec::new();
    for i in 0..src.len() {
        let mut e = src.by_index(i).unwrap();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        entries.push((e.name().unwrap().to_string(), data));
    }
    let rezip = |edit: &dyn Fn(&str, &[u8]) -> Vec<u8>| {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (n, d) in &entries {
            w.start_file(n.as_str(), opts).unwrap();
            w.write_all(&edit(n, d)).unwrap();
        }
        w.finish().unwrap().into_inner()
    };
    let unknown = rezip(&|n, d| {
        if n == "config.json" {
            String::from_utf8_lossy(d)
                .replace("\"GRU\"", "\"Conv1D\"")
                .into_bytes()
        } else {
            d.to_vec()
        }
    });
    let bomb = rezip(&|n, d| {
        if n == "model.weights.h5" {
            vec![0u8; 1 << 30]
        } else {
            d.to_vec()
        }
    });
    let cases: [(&str, Vec<u8>, &str); 6] = [
        ("truncated.keras", keras[..keras.len() / 2].to_vec(), "zip"),
        ("truncated.h5", h5[..h5.len() / 2].to_vec(), "truncated"),
        ("header.h5", h5[..600].to_vec(), ""),
        (
            "garbage.keras",
            (0..3000u32).map(|i| (i * 7919 % 251) as u8).collect(),
            "not a Keras model",
        ),
        ("unknown.keras", unknown, "Conv1D"),
        ("bomb.keras", bomb, "bytes"),
    ];
    let y = dir.s("y.npy");
    for (name, bytes, needle) in cases {
        std::fs::write(dir.path(name), &bytes).unwrap();
        std::fs::write(&y, b"earlier").unwrap();
        let o = run_bin(&args(&[
            "predict",
            "--model",
            &dir.s(name),
            "--input",
            &x,
            "--output",
            &y,
        ]));
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{name}: {err}");
        assert!(!err.contains("panicked"), "{name}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{name}: {err}");
        assert!(
            err.starts_with("wgpu-gru: error:") && err.contains(needle),
            "{name}: {err}"
        );
        assert_eq!(std::fs::read(&y).unwrap(), b"earlier", "{name}");
    }
}

/// Keras chains built in code, beyond the saved cases: a Masking before a bidirectional layer
/// that returns sequences (masked steps output zeros there), a Dense on `[B, T, F]` feeding a
/// GRU, every merge mode over sequences and final states, odd sizes (H = 1, 7, 65). On the GPU
/// each is one submit and matches the reference; a Masking after a Dense runs layer by layer.
#[test]
fn chains_built_in_code_match_the_reference_on_the_gpu() {
    use common::random::{Rng, random_gru};
    use wgpu_gru::formats::keras_file::{KerasLayer, KerasModel, MergeMode};
    use wgpu_gru::model::{Dense, DenseActivation};
    use wgpu_gru::{Direction, GruConfig};
    let Some(ctx) = gpu_common::ctx() else { return };
    let mut rng = Rng(5);
    let mut seed = 100;
    let mut gru = |i: usize, h: usize, bidi: bool| {
        seed += 1;
        let mut c = GruConfig::new(i, h);
        c.batch_first = true;
        if bidi {
            c = c.with_direction(Direction::Bidirectional);
        }
        random_gru(c, seed)
    };
    let uni = |gru, seq| KerasLayer::Gru {
        name: "gru".into(),
        gru,
        return_sequences: seq,
    };
    let bi = |gru, merge_mode, seq| KerasLayer::Bidirectional {
        name: "bidirectional".into(),
        gru,
        merge_mode,
        return_sequences: seq,
    };
    let mut dense = |i: usize, o: usize, activation| KerasLayer::Dense {
        name: "dense".into(),
        dense: Dense::new(i, o, rng.vec(o * i, 1.0), rng.vec(o, 0.5)).unwrap(),
        activation,
    };
    let mask = KerasLayer::Masking { mask_value: 0.0 };
    let chains: Vec<(Vec<KerasLayer>, u32)> = vec![
        (
            vec![
                mask.clone(),
                bi(gru(3, 7, true), MergeMode::Concat, true),
                bi(gru(14, 5, true), MergeMode::Sum, false),
                dense(5, 4, DenseActivation::Gelu),
            ],
            1,
        ),
        (
            vec![
                mask.clone(),
                bi(gru(3, 65, true), MergeMode::Mul, true),
                uni(gru(65, 1, false), true),
                dense(1, 3, DenseActivation::LogSoftmax),
            ],
            1,
        ),
        (
            vec![
                dense(3, 6, DenseActivation::Swish),
                bi(gru(6, 7, true), MergeMode::Ave, true),
                dense(7, 2, DenseActivation::Selu),
                bi(gru(2, 4, true), MergeMode::Concat, false),
            ],
            1,
        ),
        // Masking after a Dense reads the Dense's output: layer by layer, one submit per GRU.
        (
            vec![
                dense(3, 3, DenseActivation::Relu),
                mask.clone(),
                uni(gru(3, 7, false), false),
            ],
            1,
        ),
    ];
    let (b, t, i) = (3, 6, 3);
    for (n, (layers, submits)) in chains.into_iter().enumerate() {
        let model = Model::from_keras(
            KerasModel {
                name: format!("chain {n}"),
                input_features: Some(i),
                input_steps: None,
                layers,
            },
            format!("chain {n}"),
        );
        let mut x = rng.vec(b * t * i, 1.0);
        // Row 1 is padded after step 3, row 2 before step 2 (pre-padding).
        x[(t + 4) * i..2 * t * i].fill(0.0);
        x[2 * t * i..(2 * t + 2) * i].fill(0.0);
        let x = Array::new(vec![b, t, i], x).unwrap();
        let want = model
            .runner(Backend::Reference)
            .unwrap()
            .predict(&x)
            .unwrap();
        let runner = model.runner(Backend::Gpu(ctx)).unwrap();
        let (got, stats) = runner.predict_with_stats(&x, &[]).unwrap();
        let s = score(&got, &want);
        eprintln!(
            "{}: {} -> {:?}, {stats:?}, error {s:.2e}",
            n,
            model.describe(),
            got.shape
        );
        assert!(s <= 1e-5, "chain {n}: {s:e}");
        assert_eq!(stats.gpu_submits, submits, "chain {n}");
        // A new shape rebinds the workspace.
        let x2 = Array::new(vec![2, 4, i], x.data[..2 * 4 * i].to_vec()).unwrap();
        let want2 = model
            .runner(Backend::Reference)
            .unwrap()
            .predict(&x2)
            .unwrap();
        let got2 = runner.predict(&x2).unwrap();
        assert!(score(&got2, &want2) <= 1e-5, "chain {n}, second shape");
    }
}
