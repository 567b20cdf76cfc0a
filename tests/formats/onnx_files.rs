//! Real `.onnx` model files (`tests/data/onnx_files/`: the two public cases of
//! `../shared/golden/onnx_files/` and those written by `scripts/onnx_files.py`): torch exports of
//! stacked, bidirectional, batch-first modules and modules with a head, and hand-made graphs
//! with `layout = 1`, `float_data`, external data, f16/f64 initializers behind `Cast`, a constant
//! `initial_h` and two separate chains. Each runs on the reference, the CPU path and the GPU,
//! through the library and through `wgpu-gru run`, against ONNX Runtime's outputs.
//!
//! GPU runs are skipped with a message when no adapter exists, unless `REQUIRE_GPU=1`.

use crate::common;
use crate::gpu_common;

use common::cli::{TempDir, run_bin};
use common::npy_file;
use wgpu_gru::{Batch, Steps};

use std::path::{Path, PathBuf};

use wgpu_gru::cpu::CpuGru;
use wgpu_gru::formats::onnx_model::{InitialState, SequenceLens};
use wgpu_gru::formats::{self, Format, ImportOptions, Imported, SafetensorsFile};
use wgpu_gru::gpu::GpuGru;
use wgpu_gru::{Direction, Error, GruOutput, SeqInput, npy, reference};

const TOL: f32 = 1e-5;

fn dir() -> PathBuf {
    common::data_dir("onnx_files")
}

/// Every `NAME.onnx` that has a `NAME.case.safetensors`.
fn cases() -> Vec<(String, PathBuf, PathBuf)> {
    let mut v: Vec<(String, PathBuf, PathBuf)> = std::fs::read_dir(dir())
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            let name = p
                .file_name()?
                .to_str()?
                .strip_suffix(".case.safetensors")?
                .to_string();
            Some((name.clone(), dir().join(format!("{name}.onnx")), p))
        })
        .collect();
    v.sort();
    v
}

struct Case {
    name: String,
    onnx: PathBuf,
    imported: Imported,
    x: (Vec<usize>, Vec<f32>),
    h0: Option<(Vec<usize>, Vec<f32>)>,
    lengths: Option<Vec<usize>>,
    node: Option<String>,
    y: (Vec<usize>, Vec<f32>),
    y_h: (Vec<usize>, Vec<f32>),
}

impl Case {
    fn load(name: &str, onnx: &Path, case: &Path) -> Case {
        let f = SafetensorsFile::open(case).unwrap();
        let meta = f.metadata().unwrap();
        let node = meta.get("node").map(|s| s.trim_matches('"').to_string());
        let opts = ImportOptions {
            node: node.clone(),
            ..Default::default()
        };
        let imported = formats::load(onnx, None, &opts).unwrap_or_else(|e| panic!("{name}: {e}"));
        let t = |n: &str| f.get_f32(n).unwrap().map(|t| (t.shape, t.data));
        Case {
            name: name.to_string(),
            onnx: onnx.to_path_buf(),
            imported,
            x: t("X").unwrap(),
            h0: t("initial_h"),
            lengths: f.get_lengths("sequence_lens").unwrap().map(|(_, l)| l),
            node,
            y: t("expected_Y").unwrap(),
            y_h: t("expected_Y_h").unwrap(),
        }
    }

    fn dims(&self) -> (usize, usize) {
        let (Steps(t), Batch(b)) = self.imported.shapes().unwrap().x_dims(&self.x.0).unwrap();
        (t, b)
    }

    /// Runs `engine` as the CLI would: h0 and lengths from the case where the graph takes them
    /// as inputs, else from the file.
    fn check(
        &self,
        label: &str,
        engine: &mut dyn FnMut(&wgpu_gru::Gru, &SeqInput<'_>) -> wgpu_gru::Result<GruOutput>,
    ) {
        let (t, b) = self.dims();
        let shapes = self.imported.shapes().unwrap();
        let graph = self.imported.onnx.as_ref().unwrap();
        let h0: Option<Vec<f32>> = match &graph.initial_state {
            InitialState::Input(_) => {
                let (_, v) = self.h0.as_ref().expect("the case holds initial_h");
                Some(shapes.state_from_framework(b, v).unwrap())
            }
            InitialState::Fixed { h0, .. } => Some(h0.clone()),
            InitialState::Zeros => None,
        };
        let lengths = match &graph.sequence_lens {
            SequenceLens::Input(_) => Some(self.lengths.clone().expect("the case holds lengths")),
            SequenceLens::Fixed(l) => Some(l.clone()),
            SequenceLens::None => None,
        };
        let mut input = SeqInput::new(&self.x.1, Steps(t), Batch(b));
        if let Some(h) = &h0 {
            input = input.with_h0(h);
        }
        if let Some(l) = &lengths {
            input = input.with_lengths(l);
        }
        let out = engine(&self.imported.gru, &input)
            .unwrap_or_else(|e| panic!("{label} {}: {e}", self.name));
        let y = shapes
            .output_to_framework(Steps(t), Batch(b), &out.output)
            .unwrap();
        let y_h = shapes.state_to_framework(b, &out.h_n).unwrap();
        assert_eq!(
            shapes.output_shape(Steps(t), Batch(b)),
            self.y.0,
            "{} Y shape",
            self.name
        );
        assert_eq!(shapes.state_shape(b), self.y_h.0, "{} Y_h shape", self.name);
        let e =
            wgpu_gru::max_abs_diff(&y, &self.y.1).max(wgpu_gru::max_abs_diff(&y_h, &self.y_h.1));
        assert!(e <= TOL, "{label} {}: max abs error {e:e}", self.name);
        eprintln!("[{label}] {:<28} max abs error {e:.2e}", self.name);
    }
}

fn all_cases() -> Vec<Case> {
    let v: Vec<Case> = cases()
        .iter()
        .map(|(n, o, c)| Case::load(n, o, c))
        .collect();
    assert!(v.len() >= 13, "{} cases", v.len());
    v
}

#[test]
fn the_files_read_as_their_graphs_say() {
    let by = |n: &str| {
        all_cases()
            .into_iter()
            .find(|c| c.name == n)
            .unwrap_or_else(|| panic!("no case {n}"))
    };
    let c = by("torch_export_2layer_bidir");
    let g = &c.imported.gru.config;
    assert_eq!((g.num_layers, g.direction), (2, Direction::Bidirectional));
    assert_eq!(c.imported.onnx.as_ref().unwrap().nodes.len(), 2);
    assert_eq!(
        c.imported.onnx.as_ref().unwrap().initial_state,
        InitialState::Zeros
    );
    let c = by("hand_layout1");
    assert!(c.imported.gru.config.batch_first);
    let c = by("torch_export_h0_input");
    assert!(matches!(
        c.imported.onnx.as_ref().unwrap().initial_state,
        InitialState::Input(_)
    ));
    let c = by("hand_initial_h_const");
    assert!(matches!(
        c.imported.onnx.as_ref().unwrap().initial_state,
        InitialState::Fixed { .. }
    ));
    assert_eq!(c.imported.gru.config.direction, Direction::Reverse);
    let c = by("hand_float_data");
    assert!(c.imported.gru.config.clip.is_some());
    assert!(matches!(
        c.imported.onnx.as_ref().unwrap().sequence_lens,
        SequenceLens::Input(_)
    ));
    assert_eq!(by("hand_two_chains").node.as_deref(), Some("gru_b"));
}

#[test]
fn onnx_files_on_reference() {
    for c in all_cases() {
        c.check("reference", &mut |g, i| reference::forward(g, i));
    }
}

#[test]
fn onnx_files_on_cpu() {
    for c in all_cases() {
        c.check("cpu", &mut |g, i| CpuGru::new(g)?.forward(i));
    }
}

#[test]
fn onnx_files_on_gpu() {
    let Some(ctx) = gpu_common::ctx() else { return };
    for c in all_cases() {
        c.check("gpu", &mut |g, i| GpuGru::new(ctx, g)?.forward(i));
    }
}

/// The same weights as the `.onnx` file's, whatever the container: float_data, external data,
/// f16 and f64 behind `Cast` all give the model that ONNX Runtime ran (checked above); here,
/// `--format` names the layout only and may not name another one.
#[test]
fn format_names_the_layout_only() {
    let p = dir().join("hand_forward.onnx");
    assert!(formats::load(&p, Some(Format::Onnx), &Default::default()).is_ok());
    let e = formats::load(&p, Some(Format::PyTorch), &Default::default()).unwrap_err();
    assert!(e.to_string().contains("ONNX"), "{e}");
}

#[test]
fn contradicting_options_and_ambiguous_graphs_are_refused() {
    let p = dir().join("hand_forward.onnx");
    for opts in [
        ImportOptions {
            direction: Some(Direction::Reverse),
            ..Default::default()
        },
        ImportOptions {
            linear_before_reset: true,
            ..Default::default()
        },
        ImportOptions {
            activations: vec!["Relu".into(), "Tanh".into()],
            ..Default::default()
        },
        ImportOptions {
            clip: Some(2.0),
            ..Default::default()
        },
        ImportOptions {
            batch_first: true,
            ..Default::default()
        },
    ] {
        let e = formats::load(&p, None, &opts).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument { .. }), "{opts:?}: {e}");
    }
    // Options that repeat the file are fine.
    let same = ImportOptions {
        direction: Some(Direction::Forward),
        activations: vec!["Sigmoid".into(), "Tanh".into()],
        ..Default::default()
    };
    assert!(formats::load(&p, None, &same).is_ok());
    // Two chains: refused without a node name, which must exist.
    let two = dir().join("hand_two_chains.onnx");
    let e = formats::load(&two, None, &Default::default()).unwrap_err();
    // A library error names the option, not a CLI flag.
    assert!(
        e.to_string().contains("ImportOptions::node") && !e.to_string().contains("--"),
        "{e}"
    );
    for node in ["gru_a", "gru_b"] {
        let o = ImportOptions {
            node: Some(node.into()),
            ..Default::default()
        };
        assert!(formats::load(&two, None, &o).is_ok(), "{node}");
    }
    let o = ImportOptions {
        node: Some("nope".into()),
        ..Default::default()
    };
    assert!(
        formats::load(&two, None, &o)
            .unwrap_err()
            .to_string()
            .contains("gru_a")
    );
}

/// Truncated, corrupted and hostile models are refused with an error, never a panic.
#[test]
fn bad_onnx_files_are_refused() {
    let tmp = TempDir::new("onnx-bad");
    let good = std::fs::read(dir().join("hand_forward.onnx")).unwrap();
    let mut tried = 0;
    for cut in [1, 7, good.len() / 3, good.len() / 2, good.len() - 1] {
        let p = tmp.path("cut.onnx");
        std::fs::write(&p, &good[..cut]).unwrap();
        if let Ok(m) = formats::load(&p, None, &Default::default()) {
            panic!("a truncated file loaded: {:?}", m.gru.config);
        }
        tried += 1;
    }
    // Flipped bytes anywhere: refused or read, never a panic.
    for i in (0..good.len()).step_by(7) {
        let mut b = good.clone();
        b[i] ^= 0x5a;
        let p = tmp.path("flip.onnx");
        std::fs::write(&p, &b).unwrap();
        let _ = formats::load(&p, None, &Default::default());
        tried += 1;
    }
    // External data that points outside the model's folder.
    let ext = std::fs::read(dir().join("hand_external.onnx")).unwrap();
    let name = b"hand_external.onnx.data";
    let pos = ext
        .windows(name.len())
        .position(|w| w == name)
        .expect("the external data location");
    let mut evil = ext.clone();
    evil[pos..pos + 5].copy_from_slice(b"../..");
    let p = tmp.path("evil.onnx");
    std::fs::write(&p, &evil).unwrap();
    assert!(formats::load(&p, None, &Default::default()).is_err());
    assert!(tried > 10);
}

/// `wgpu-gru run --weights CASE.onnx` needs no `--format` and no attribute flags, and matches
/// ONNX Runtime on every backend.
#[test]
fn onnx_files_through_cli() {
    // Two GRU chains: the command line names the flag that picks one.
    let tmp = TempDir::new("onnx-cli-two");
    let two = dir().join("hand_two_chains.onnx");
    npy::write_f32(tmp.path("x.npy"), &[2, 1, 3], &[0.0; 6]).unwrap();
    let o = run_bin(&[
        "run".into(),
        "--weights".into(),
        two.display().to_string(),
        "--input".into(),
        tmp.s("x.npy"),
        "--output".into(),
        tmp.s("y.npy"),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("--node NAME") && !err.contains("ImportOptions"),
        "{err}"
    );
    let mut backends = vec!["reference", "cpu"];
    if gpu_common::ctx().is_some() {
        backends.push("gpu");
    }
    let tmp = TempDir::new("onnx-cli");
    let p = |n: &str| tmp.s(n);
    for c in all_cases() {
        npy::write_f32(tmp.path("x.npy"), &c.x.0, &c.x.1).unwrap();
        let mut args = vec![
            "run".to_string(),
            "--weights".into(),
            c.onnx.display().to_string(),
            "--input".into(),
            p("x.npy"),
            "--output".into(),
            p("y.npy"),
            "--state-out".into(),
            p("s.npy"),
            "--quiet".into(),
        ];
        let graph = c.imported.onnx.as_ref().unwrap();
        if matches!(graph.initial_state, InitialState::Input(_)) {
            let (shape, v) = c.h0.as_ref().unwrap();
            npy::write_f32(tmp.path("h0.npy"), shape, v).unwrap();
            args.extend(["--h0".into(), p("h0.npy")]);
        }
        if matches!(graph.sequence_lens, SequenceLens::Input(_)) {
            // Lengths as int64, the way numpy writes them.
            let l: Vec<i64> = c
                .lengths
                .as_ref()
                .unwrap()
                .iter()
                .map(|&v| v as i64)
                .collect();
            std::fs::write(tmp.path("len.npy"), npy_file::i64s(&l)).unwrap();
            args.extend(["--lengths".into(), p("len.npy")]);
        }
        if let Some(n) = &c.node {
            args.extend(["--node".into(), n.clone()]);
        } else if computed_x(&c.onnx, &graph.input) {
            // Without --node, run refuses a GRU whose X the graph computes.
            let out = run_bin(&args);
            assert_eq!(out.status.code(), Some(1), "{}", c.name);
            assert!(
                String::from_utf8_lossy(&out.stderr).contains("predict"),
                "{}",
                c.name
            );
            args.extend(["--node".into(), graph.nodes[0].clone()]);
        }
        for backend in &backends {
            let mut a = args.clone();
            a.extend(["--backend".into(), backend.to_string()]);
            let out = run_bin(&a);
            assert!(
                out.status.success(),
                "{} {backend}: {}",
                c.name,
                String::from_utf8_lossy(&out.stderr)
            );
            let (ys, y) = npy::read_f32(tmp.path("y.npy")).unwrap();
            let (ss, s) = npy::read_f32(tmp.path("s.npy")).unwrap();
            assert_eq!(ys, c.y.0, "{} {backend}", c.name);
            assert_eq!(ss, c.y_h.0, "{} {backend}", c.name);
            let e = wgpu_gru::max_abs_diff(&y, &c.y.1).max(wgpu_gru::max_abs_diff(&s, &c.y_h.1));
            assert!(e <= TOL, "{} {backend}: {e:e}", c.name);
        }
    }
}

/// Whether the first GRU node's X (`x`) is computed in the graph rather than a graph input.
fn computed_x(onnx: &std::path::Path, x: &str) -> bool {
    let bytes = std::fs::read(onnx).unwrap();
    wgpu_gru::predict::onnx::OnnxProgram::from_bytes(&bytes, onnx.parent(), "model")
        .is_ok_and(|p| !p.inputs().iter().any(|i| i.name == x))
}
