//! Golden tests: every case in `tests/data/golden/` through the importers, the shape
//! conversions and `reference::forward`, plus the importers' error paths.

use crate::common;
use crate::gpu_common;

use std::collections::HashMap;

use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use wgpu_gru::formats::{self, Format, ImportOptions, SafetensorsFile};
use wgpu_gru::{Direction, Error, Variant, reference};

use common::{Case, golden_cases, run_all};

fn golden(name: &str) -> std::path::PathBuf {
    common::golden_dir().join(format!("{name}.safetensors"))
}

#[test]
fn all_golden_cases_match_on_reference() {
    let n = run_all("reference", &mut |g, i| reference::forward(g, i));
    assert_eq!(n, 14, "expected 14 golden cases");
}

#[test]
fn golden_cases_import_as_expected() {
    let want: HashMap<&str, (Format, usize, Direction, Variant)> = [
        (
            "keras_go_backwards",
            (Format::Keras, 1, Direction::Forward, Variant::ResetAfter),
        ),
        (
            "keras_reset_after",
            (Format::Keras, 1, Direction::Forward, Variant::ResetAfter),
        ),
        (
            "keras_reset_before",
            (Format::Keras, 1, Direction::Forward, Variant::ResetBefore),
        ),
        (
            "onnx_bidir_seqlens",
            (
                Format::Onnx,
                1,
                Direction::Bidirectional,
                Variant::ResetBefore,
            ),
        ),
        (
            "onnx_forward",
            (Format::Onnx, 1, Direction::Forward, Variant::ResetBefore),
        ),
        (
            "onnx_hardsigmoid_clip",
            (Format::Onnx, 1, Direction::Forward, Variant::ResetBefore),
        ),
        (
            "onnx_reverse_lbr",
            (Format::Onnx, 1, Direction::Reverse, Variant::ResetAfter),
        ),
        (
            "pytorch_2layer_bidir",
            (
                Format::PyTorch,
                2,
                Direction::Bidirectional,
                Variant::ResetAfter,
            ),
        ),
        (
            "pytorch_basic",
            (Format::PyTorch, 1, Direction::Forward, Variant::ResetAfter),
        ),
        (
            "pytorch_batch_first_nobias",
            (Format::PyTorch, 1, Direction::Forward, Variant::ResetAfter),
        ),
        (
            "pytorch_packed_bidir",
            (
                Format::PyTorch,
                1,
                Direction::Bidirectional,
                Variant::ResetAfter,
            ),
        ),
        (
            "pytorch_seedsize",
            (Format::PyTorch, 1, Direction::Forward, Variant::ResetAfter),
        ),
        (
            "seed_gru128",
            (Format::Seed, 1, Direction::Forward, Variant::ResetBefore),
        ),
        (
            "seed_small",
            (Format::Seed, 1, Direction::Forward, Variant::ResetBefore),
        ),
    ]
    .into_iter()
    .collect();
    let cases = golden_cases();
    assert_eq!(cases.len(), want.len());
    for p in cases {
        let case = Case::load(&p).unwrap();
        let (f, l, d, v) = want[case.name.as_str()];
        let c = &case.gru().config;
        assert_eq!(case.imported.format, f, "{}", case.name);
        assert_eq!(
            (c.num_layers, c.direction, c.variant),
            (l, d, v),
            "{}",
            case.name
        );
        // Detection without metadata gives the same format.
        let plain = formats::load(&p, None, &ImportOptions::default()).unwrap();
        assert_eq!(plain.format, f);
    }
    let c = Case::load(&golden("keras_go_backwards")).unwrap();
    assert!(c.gru().config.go_backwards && c.gru().config.batch_first);
    let c = Case::load(&golden("pytorch_batch_first_nobias")).unwrap();
    assert!(c.gru().config.batch_first);
    assert!(c.gru().weights.layers[0][0].b_ih.iter().all(|&b| b == 0.0));
    let c = Case::load(&golden("onnx_hardsigmoid_clip")).unwrap();
    assert_eq!(c.gru().config.clip, Some(2.5));
    assert_eq!(
        c.gru().config.activations[0].f,
        wgpu_gru::Activation::HardSigmoid {
            alpha: 0.2,
            beta: 0.5
        }
    );
}

/// Dropping an option the tensors cannot show gives a wrong model: the golden cases catch it.
#[test]
fn missing_options_are_caught() {
    type Tweak = fn(&mut ImportOptions);
    let tweaks: [(&str, Tweak); 4] = [
        ("onnx_reverse_lbr", |o| o.linear_before_reset = false),
        ("onnx_reverse_lbr", |o| {
            o.direction = Some(Direction::Forward)
        }),
        ("onnx_hardsigmoid_clip", |o| {
            o.activations.clear();
            o.activation_alpha.clear();
            o.activation_beta.clear();
        }),
        ("keras_go_backwards", |o| o.go_backwards = false),
    ];
    for (name, tweak) in tweaks {
        let case = Case::load(&golden(name)).unwrap();
        let mut opts = case.meta.options.clone();
        tweak(&mut opts);
        let wrong = formats::load(&case.path, None, &opts).unwrap();
        let out = reference::forward(&wrong.gru, &case.input()).unwrap();
        let err = out.max_abs_diff(&case.expected_canonical);
        assert!(err > 1e-3, "{name}: error only {err}");
    }
}

/// Raw tensors of a file: (name, dtype, shape, bytes), and its metadata.
type Raw = (String, Dtype, Vec<usize>, Vec<u8>);

fn read_raw(path: &std::path::Path) -> (Vec<Raw>, Option<HashMap<String, String>>) {
    let bytes = std::fs::read(path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
    let mut v: Vec<Raw> = st
        .tensors()
        .into_iter()
        .map(|(n, t)| (n, t.dtype(), t.shape().to_vec(), t.data().to_vec()))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    (v, meta.metadata().clone())
}

fn write_raw(tensors: &[Raw], meta: Option<HashMap<String, String>>) -> Vec<u8> {
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    safetensors::serialize(views, meta).unwrap()
}

fn f32s(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

/// Converts every F32 weight (not the inputs or expected outputs) with `conv`.
fn convert_weights(tensors: &[Raw], dtype: Dtype, conv: impl Fn(f32) -> Vec<u8>) -> Vec<Raw> {
    tensors
        .iter()
        .map(|(n, d, s, b)| {
            let is_weight = *d == Dtype::F32
                && !n.starts_with("expected_")
                && !["input", "X", "h0", "initial_h"].contains(&n.as_str());
            if is_weight {
                let bytes = f32s(b).into_iter().flat_map(&conv).collect();
                (n.clone(), dtype, s.clone(), bytes)
            } else {
                (n.clone(), *d, s.clone(), b.clone())
            }
        })
        .collect()
}

#[test]
fn weights_in_f64_f16_bf16() {
    for name in [
        "pytorch_2layer_bidir",
        "keras_reset_before",
        "onnx_bidir_seqlens",
        "seed_small",
    ] {
        let case = Case::load(&golden(name)).unwrap();
        let (raw, meta) = read_raw(&case.path);
        // F64: exact, so still within the golden tolerance.
        let f64_file = write_raw(
            &convert_weights(&raw, Dtype::F64, |v| (v as f64).to_le_bytes().to_vec()),
            meta.clone(),
        );
        let file = SafetensorsFile::from_bytes(f64_file, name).unwrap();
        let m = formats::import(&file, None, &case.meta.options).unwrap();
        assert_eq!(m.gru, case.imported.gru, "{name} f64");
        // F16 and BF16: the imported weights are exactly the rounded values.
        for (dtype, round) in [
            (
                Dtype::F16,
                (|v: f32| half::f16::from_f32(v).to_f32()) as fn(f32) -> f32,
            ),
            (Dtype::BF16, |v| half::bf16::from_f32(v).to_f32()),
        ] {
            let bytes = write_raw(
                &convert_weights(&raw, dtype, |v| match dtype {
                    Dtype::F16 => half::f16::from_f32(v).to_le_bytes().to_vec(),
                    _ => half::bf16::from_f32(v).to_le_bytes().to_vec(),
                }),
                meta.clone(),
            );
            let file = SafetensorsFile::from_bytes(bytes, name).unwrap();
            let m = formats::import(&file, None, &case.meta.options).unwrap();
            for (la, lb) in m.gru.weights.layers.iter().zip(&case.gru().weights.layers) {
                for (ca, cb) in la.iter().zip(lb) {
                    for (a, b) in [
                        (&ca.w_ih, &cb.w_ih),
                        (&ca.w_hh, &cb.w_hh),
                        (&ca.b_hh, &cb.b_hh),
                    ] {
                        let rounded: Vec<f32> = b.iter().map(|&v| round(v)).collect();
                        assert_eq!(a, &rounded, "{name} {dtype:?}");
                    }
                }
            }
            // And the model still runs close to the framework (f16 rounding of the weights).
            let out = reference::forward(&m.gru, &case.input()).unwrap();
            assert!(
                out.max_abs_diff(&case.expected_canonical) < 0.1,
                "{name} {dtype:?}"
            );
        }
    }
}

/// Rewrites golden case `name` with `edit` and imports it with its metadata's options.
fn import_edited(
    name: &str,
    edit: impl FnOnce(&mut Vec<Raw>),
) -> wgpu_gru::Result<formats::Imported> {
    let case = Case::load(&golden(name)).unwrap();
    let (mut raw, meta) = read_raw(&case.path);
    edit(&mut raw);
    let file = SafetensorsFile::from_bytes(write_raw(&raw, meta), format!("{name}.safetensors"))?;
    formats::import(&file, None, &case.meta.options)
}

fn remove(raw: &mut Vec<Raw>, name: &str) {
    let n = raw.len();
    raw.retain(|t| t.0 != name);
    assert_eq!(raw.len(), n - 1, "no tensor {name}");
}

fn reshape(raw: &mut [Raw], name: &str, shape: &[usize]) {
    let t = raw.iter_mut().find(|t| t.0 == name).unwrap();
    let n: usize = shape.iter().product();
    t.2 = shape.to_vec();
    t.3.resize(n * 4, 0);
}

#[test]
fn missing_tensors_are_named() {
    for (case, tensor) in [
        ("pytorch_basic", "weight_hh_l0"),
        ("pytorch_2layer_bidir", "weight_ih_l1_reverse"),
        ("pytorch_2layer_bidir", "bias_hh_l1"),
        ("keras_reset_after", "recurrent_kernel"),
        ("onnx_forward", "R"),
        ("seed_small", "W_h"),
        ("seed_small", "b_r"),
    ] {
        let err = import_edited(case, |r| remove(r, tensor)).unwrap_err();
        match &err {
            Error::MissingTensor { name, .. } => assert_eq!(name, tensor, "{case}"),
            other => panic!("{case}/{tensor}: {other}"),
        }
        eprintln!("{case} without {tensor}: {err}");
    }
    // With the format given, removing a detection tensor is a missing tensor.
    let case = Case::load(&golden("onnx_forward")).unwrap();
    let (mut raw, meta) = read_raw(&case.path);
    remove(&mut raw, "R");
    let file = SafetensorsFile::from_bytes(write_raw(&raw, meta), "x").unwrap();
    let err = formats::import(&file, Some(Format::Onnx), &case.meta.options).unwrap_err();
    assert!(
        matches!(err, Error::MissingTensor { ref name, .. } if name == "R"),
        "{err}"
    );
}

#[test]
fn disagreeing_shapes_are_named() {
    for (case, tensor, shape) in [
        ("pytorch_basic", "weight_ih_l0", &[20usize, 5][..]),
        ("pytorch_basic", "bias_hh_l0", &[20]),
        ("pytorch_basic", "weight_hh_l0", &[21, 7, 1]),
        ("pytorch_2layer_bidir", "weight_ih_l1", &[96, 32]),
        ("keras_reset_after", "kernel", &[6, 31]),
        ("keras_reset_after", "bias", &[3, 30]),
        ("onnx_forward", "W", &[2, 18, 5]),
        ("onnx_forward", "B", &[1, 35]),
        ("onnx_forward", "R", &[3, 18, 6]),
        ("seed_small", "W_r", &[6, 11]),
        ("seed_small", "W_z", &[6, 6]),
        ("seed_small", "b_h", &[7]),
    ] {
        let err = import_edited(case, |r| reshape(r, tensor, shape)).unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(err, Error::ShapeMismatch { .. }) && msg.contains(tensor),
            "{case}/{tensor}: {msg}"
        );
        eprintln!("{case}: {msg}");
    }
}

#[test]
fn unknown_and_ambiguous_layouts() {
    let err = import_edited("pytorch_basic", |r| {
        r.retain(|t| !t.0.starts_with("weight_"));
    })
    .unwrap_err();
    assert!(matches!(err, Error::UnknownLayout(_)), "{err}");
    let err = import_edited("seed_small", |r| {
        let w = r.iter().find(|t| t.0 == "W_z").unwrap().clone();
        r.push(("W".into(), w.1, w.2.clone(), w.3.clone()));
        r.push(("R".into(), w.1, w.2, w.3));
    })
    .unwrap_err();
    assert!(matches!(err, Error::UnknownLayout(_)), "{err}");
    // Garbage bytes.
    assert!(matches!(
        SafetensorsFile::from_bytes(b"not a safetensors file".to_vec(), "junk"),
        Err(Error::Parse { .. })
    ));
}

#[test]
fn bad_dtypes_and_options() {
    // An integer weight tensor.
    let err = import_edited("pytorch_basic", |r| {
        let t = r.iter_mut().find(|t| t.0 == "weight_hh_l0").unwrap();
        t.1 = Dtype::I32;
    })
    .unwrap_err();
    assert!(matches!(err, Error::UnsupportedDtype { .. }), "{err}");

    let load = |name: &str, opts: ImportOptions| formats::load(golden(name), None, &opts);
    // Direction contradicting the file.
    let err = load(
        "pytorch_packed_bidir",
        ImportOptions {
            direction: Some(Direction::Forward),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(matches!(err, Error::ShapeMismatch { .. }), "{err}");
    let err = load(
        "onnx_forward",
        ImportOptions {
            direction: Some(Direction::Bidirectional),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains('W'), "{err}");
    // Activations: wrong count, unknown name, leftover α.
    for (names, alpha) in [
        (vec!["Sigmoid"], vec![]),
        (vec!["Sigmoid", "Tanh", "Sigmoid", "Tanh"], vec![]),
        (vec!["Sigmoid", "Bogus"], vec![]),
        (vec!["Sigmoid", "Tanh"], vec![0.5]),
    ] {
        let opts = ImportOptions {
            activations: names.iter().map(|s| s.to_string()).collect(),
            activation_alpha: alpha,
            ..Default::default()
        };
        assert!(load("onnx_forward", opts).is_err());
    }
    // Four activations for a bidirectional model.
    let acts = formats::resolve_activations(
        &["HardSigmoid", "Tanh", "Sigmoid", "ScaledTanh"].map(String::from),
        &[0.1, 2.0],
        &[0.3, 0.5],
        2,
    )
    .unwrap();
    assert_eq!(acts.len(), 2);
    assert_eq!(
        acts[0].f,
        wgpu_gru::Activation::HardSigmoid {
            alpha: 0.1,
            beta: 0.3
        }
    );
    assert_eq!(
        acts[1].g,
        wgpu_gru::Activation::ScaledTanh {
            alpha: 2.0,
            beta: 0.5
        }
    );
    // Keras reset_after contradicting the bias shape.
    let err = load(
        "keras_reset_before",
        ImportOptions {
            reset_after: Some(true),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("bias"), "{err}");
    // batch_first is PyTorch's (Keras is always batch-first).
    for name in ["onnx_forward", "seed_small"] {
        let opts = ImportOptions {
            batch_first: true,
            ..Default::default()
        };
        assert!(load(name, opts).is_err(), "{name}");
    }
    // Metadata values that are not what their key needs.
    let meta = |k: &str, v: &str| {
        formats::options_from_metadata(&[(k.to_string(), v.to_string())].into_iter().collect())
    };
    assert!(meta("batch_first", "maybe").is_err());
    assert!(meta("clip", "[1]").is_err());
    assert!(meta("framework", "caffe").is_err());
    assert!(meta("direction", "sideways").is_err());
    assert!(meta("activation", "swishy").is_err());
    assert_eq!(meta("clip", "none").unwrap().options.clip, None);
    assert_eq!(meta("clip", "3").unwrap().options.clip, Some(3.0));
    let k = meta("recurrent_activation", "hard_sigmoid")
        .unwrap()
        .options;
    assert_eq!(k.activations, ["HardSigmoid", "Tanh"]);
    assert_eq!(
        (k.activation_alpha, k.activation_beta),
        (vec![1.0 / 6.0], vec![0.5])
    );
}

/// The paths are interchangeable behind `Forward`: the same golden cases through a
/// `Box<dyn Forward>` of each (the GPU where an adapter exists).
#[test]
fn every_path_behind_the_forward_trait() {
    use wgpu_gru::Forward;
    // Where REQUIRE_GPU=1, a missing adapter fails here rather than leaving the GPU out.
    let ctx = gpu_common::ctx();
    for path in golden_cases() {
        let case = Case::load(&path).unwrap();
        let gru = case.gru().clone();
        let mut paths: Vec<(&str, Box<dyn Forward>)> = vec![
            ("reference", Box::new(reference::Reference(gru.clone()))),
            ("cpu", Box::new(wgpu_gru::cpu::CpuGru::new(&gru).unwrap())),
        ];
        if let Some(ctx) = ctx {
            paths.push((
                "gpu",
                Box::new(wgpu_gru::gpu::GpuGru::new(ctx, &gru).unwrap()),
            ));
        }
        for (name, p) in &paths {
            assert_eq!(p.config(), &gru.config);
            let out = p.forward(&case.input()).unwrap();
            let e = out.max_abs_diff(&case.expected_canonical);
            assert!(
                e <= common::f32_tolerance(&case.name),
                "{name} {}: {e}",
                case.name
            );
        }
    }
}

/// The browser tests (`web/test.js`) compare the page against the native reference through two
/// committed fixtures; this checks they are what the native reference computes now, and writes
/// them with `WGPU_GRU_WRITE_WEB_FIXTURES=1`.
#[test]
fn web_fixtures_are_the_native_reference() {
    use wgpu_gru::model::{GruClassifier, argmax_rows};
    use wgpu_gru::{Batch, SeqInput, Steps};
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("web/test/fixtures");
    let write = std::env::var("WGPU_GRU_WRITE_WEB_FIXTURES").is_ok_and(|v| v == "1");
    let check = |name: &str,
                 value: serde_json::Value,
                 close: &dyn Fn(&serde_json::Value) -> bool| {
        let path = dir.join(name);
        if write {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, serde_json::to_string(&value).unwrap()).unwrap();
            return;
        }
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; write it with WGPU_GRU_WRITE_WEB_FIXTURES=1",
                path.display()
            )
        });
        let committed: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert!(
            close(&committed),
            "{} differs from the native reference; rewrite it with WGPU_GRU_WRITE_WEB_FIXTURES=1",
            path.display()
        );
    };
    let floats = |v: &serde_json::Value| -> Vec<f32> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect()
    };

    // The JS API test: the PyTorch-layout file with h0 and lengths, as `GruModel.load(bytes,
    // { format: "pytorch" })` reads it.
    let bytes = std::fs::read(golden("pytorch_packed_bidir")).unwrap();
    let imported = formats::load_bytes(
        &bytes,
        "pytorch_packed_bidir",
        None,
        Some(Format::PyTorch),
        &ImportOptions::default(),
    )
    .unwrap();
    let file = SafetensorsFile::from_bytes(bytes, "pytorch_packed_bidir").unwrap();
    let x = file.require_f32("input", "case").unwrap();
    let h0 = file.require_f32("h0", "case").unwrap();
    let (_, lengths) = file.get_lengths("lengths").unwrap().unwrap();
    let (t, b) = (x.shape[0], x.shape[1]);
    let out = reference::forward(
        &imported.gru,
        &SeqInput::new(&x.data, Steps(t), Batch(b))
            .with_h0(&h0.data)
            .with_lengths(&lengths),
    )
    .unwrap();
    let (output, state) = (out.output.clone(), out.h_n.clone());
    check(
        "packed_bidir_reference.json",
        serde_json::json!({ "output": output, "state": state }),
        &|c| {
            wgpu_gru::max_abs_diff(&floats(&c["output"]), &out.output) <= 1e-7
                && wgpu_gru::max_abs_diff(&floats(&c["state"]), &out.h_n) <= 1e-7
        },
    );

    // The digits test: the native reference's predictions and accuracy on the 360 test digits.
    let assets = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets");
    let model = GruClassifier::from_safetensors(assets.join("digits_gru.safetensors")).unwrap();
    let split = SafetensorsFile::open(assets.join("digits_test.safetensors")).unwrap();
    let x = split.require_f32("x", "digits").unwrap();
    let (n, t) = (x.shape[0], x.shape[1]);
    let probs = model
        .reference_forward(&x.data, Steps(t), Batch(n))
        .unwrap();
    let pred = argmax_rows(&probs, model.num_classes());
    let (_, labels) = split.get_lengths("labels").unwrap().unwrap();
    let correct = pred.iter().zip(&labels).filter(|(p, l)| p == l).count();
    let accuracy = correct as f64 / n as f64;
    check(
        "digits_reference.json",
        serde_json::json!({ "pred": pred, "accuracy": accuracy }),
        &|c| {
            c["pred"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).eq(pred.iter().copied())
                // serde_json's default float parsing may be one ulp off.
                && c["accuracy"].as_f64().is_some_and(|a| (a - accuracy).abs() < 1e-12)
        },
    );
}
