//! The golden ONNX cases, the trickier ops, unsupported ops and hostile files.
#![allow(
    clippy::needless_range_loop,
    clippy::identity_op,
    clippy::cloned_ref_to_slice_refs
)]

use std::path::{Path, PathBuf};

use prost::Message;

use super::tensor::Tensor;
use super::{Dim, OnnxProgram, ops};
use crate::error::{Error, Result};
use crate::formats::SafetensorsFile;
use crate::formats::onnx_model::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto, tensor_shape_proto, type_proto,
};
use crate::predict::{Array, FeedValue};

pub(crate) fn models_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/models")
}

const GOLDEN: [&str; 4] = [
    "pub_o_dynamo_bidir_last",
    "pub_o_dynamo_gru_only",
    "pub_o_legacy_softmax",
    "pub_o_legacy_meanpool",
];

fn load(name: &str) -> OnnxProgram {
    let dir = models_dir();
    let bytes = std::fs::read(dir.join(format!("{name}.onnx"))).unwrap();
    OnnxProgram::from_bytes(&bytes, Some(&dir), name).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn case(name: &str) -> (crate::formats::Tensor, crate::formats::Tensor) {
    let bytes = std::fs::read(models_dir().join(format!("{name}.case.safetensors"))).unwrap();
    let st = SafetensorsFile::from_bytes(bytes, name).unwrap();
    (
        st.get_f32("x").unwrap().unwrap(),
        st.get_f32("y").unwrap().unwrap(),
    )
}

fn rel_err(got: &[f32], want: &[f32]) -> f32 {
    let scale = want.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    crate::max_abs_diff(got, want) / scale
}

#[test]
fn golden_cases_match_onnx_runtime() {
    for name in GOLDEN {
        let p = load(name);
        let (x, y) = case(name);
        let feeds = vec![(
            p.inputs()[0].name.clone(),
            FeedValue::F32(Array::new(x.shape.clone(), x.data.clone()).unwrap()),
        )];
        let mut calls = 0;
        let outs = p
            .run(&feeds, &mut |k, input| {
                calls += 1;
                // Every initial_h here is zeros computed from Shape(x).
                assert!(input.h0.is_none(), "{name}");
                crate::reference::forward(&p.grus()[k], input)
            })
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(calls, 1, "{name}");
        assert_eq!(outs.len(), p.outputs().len());
        assert_eq!(outs[0].shape, y.shape, "{name}");
        let e = rel_err(&outs[0].data, &y.data);
        assert!(e <= 1e-5, "{name}: error {e:e}");
        eprintln!("{name:<28} error {e:.2e}");
    }
}

#[test]
fn golden_graphs_read_as_declared() {
    let p = load("pub_o_dynamo_gru_only");
    assert_eq!(p.inputs().len(), 1);
    assert_eq!(p.inputs()[0].name, "input");
    assert_eq!(
        p.inputs()[0].dims,
        vec![
            Dim::Named("time".into()),
            Dim::Named("batch".into()),
            Dim::Fixed(11)
        ]
    );
    assert_eq!(p.outputs().len(), 2);
    assert_eq!(p.grus().len(), 1);
    assert_eq!(p.gru_node_names().len(), 1);
    assert!(!p.grus()[0].config.batch_first);
    // Its second output is Y_h, [1, B, 16].
    let (x, _) = case("pub_o_dynamo_gru_only");
    let outs = p
        .run(
            &[(
                "input".into(),
                FeedValue::F32(Array::new(x.shape.clone(), x.data.clone()).unwrap()),
            )],
            &mut |k, i| crate::reference::forward(&p.grus()[k], i),
        )
        .unwrap();
    assert_eq!(outs[1].shape, vec![1, 4, 16]);
    // The final state is the last step of the output.
    assert_eq!(&outs[1].data[..], &outs[0].data[19 * 4 * 16..]);

    let p = load("pub_o_dynamo_bidir_last");
    assert_eq!(
        p.grus()[0].config.direction,
        crate::config::Direction::Bidirectional
    );
    let p = load("pub_o_legacy_meanpool");
    assert_eq!(
        p.inputs()[0].dims,
        vec![Dim::Fixed(4), Dim::Fixed(28), Dim::Fixed(6)]
    );
}

#[test]
fn feeds_are_checked_before_running() {
    let p = load("pub_o_legacy_meanpool");
    let mut never =
        |_: usize, _: &crate::SeqInput<'_>| -> Result<crate::GruOutput> { panic!("ran a GRU") };
    let f = |shape: Vec<usize>| {
        let n = shape.iter().product();
        FeedValue::F32(Array::new(shape, vec![0.0; n]).unwrap())
    };
    // A fixed dimension that differs.
    let e = p
        .run(&[("input".into(), f(vec![4, 27, 6]))], &mut never)
        .unwrap_err();
    assert!(matches!(e, Error::ShapeMismatch { .. }), "{e}");
    assert!(e.to_string().contains("[4, 28, 6]"), "{e}");
    // Missing, unknown, or of the wrong type.
    let e = p.run(&[], &mut never).unwrap_err();
    assert!(e.to_string().contains("input"), "{e}");
    let e = p
        .run(
            &[
                ("input".into(), f(vec![4, 28, 6])),
                ("nope".into(), f(vec![1])),
            ],
            &mut never,
        )
        .unwrap_err();
    assert!(e.to_string().contains("nope"), "{e}");
    let e = p
        .run(
            &[(
                "input".into(),
                FeedValue::I64 {
                    shape: vec![4, 28, 6],
                    data: vec![0; 4 * 28 * 6],
                },
            )],
            &mut never,
        )
        .unwrap_err();
    assert!(e.to_string().contains("integers"), "{e}");
    // Data that does not fill its shape.
    let bad = FeedValue::F32(Array {
        shape: vec![4, 28, 6],
        data: vec![0.0; 5],
    });
    assert!(p.run(&[("input".into(), bad)], &mut never).is_err());
}

#[test]
fn truncated_golden_files_are_refused() {
    let dir = models_dir();
    for name in GOLDEN {
        let bytes = std::fs::read(dir.join(format!("{name}.onnx"))).unwrap();
        let n = bytes.len();
        for cut in [0, 1, 7, n / 5, n / 3, n / 2, 2 * n / 3, n - 9, n - 1] {
            assert!(
                OnnxProgram::from_bytes(&bytes[..cut], Some(&dir), name).is_err(),
                "{name} cut at {cut} of {n} loaded"
            );
        }
        // Flipped bytes: an error or a program, never a panic.
        for i in (0..n).step_by(13) {
            let mut b = bytes.clone();
            b[i] ^= 0x5a;
            let _ = OnnxProgram::from_bytes(&b, Some(&dir), name);
        }
        // Without the folder, external data cannot be read.
        if name.contains("dynamo") {
            assert!(OnnxProgram::from_bytes(&bytes, None, name).is_err());
        }
    }
}

// ---- hand-built models ----

fn ai(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        i: Some(v),
        ..Default::default()
    }
}

fn af(name: &str, v: f32) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        f: Some(v),
        ..Default::default()
    }
}

fn aints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        ints: v.to_vec(),
        ..Default::default()
    }
}

fn astr(name: &str, v: &str) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        s: Some(v.as_bytes().to_vec()),
        ..Default::default()
    }
}

fn at(name: &str, t: TensorProto) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        t: Some(t),
        ..Default::default()
    }
}

fn node(
    op: &str,
    name: &str,
    inputs: &[&str],
    outputs: &[&str],
    attrs: Vec<AttributeProto>,
) -> NodeProto {
    NodeProto {
        op_type: Some(op.into()),
        name: Some(name.into()),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        attribute: attrs,
        ..Default::default()
    }
}

fn tf32(name: &str, dims: &[i64], v: Vec<f32>) -> TensorProto {
    TensorProto {
        name: Some(name.into()),
        dims: dims.to_vec(),
        data_type: Some(1),
        float_data: v,
        ..Default::default()
    }
}

fn ti64(name: &str, dims: &[i64], v: Vec<i64>) -> TensorProto {
    TensorProto {
        name: Some(name.into()),
        dims: dims.to_vec(),
        data_type: Some(7),
        int64_data: v,
        ..Default::default()
    }
}

/// A float value declared with `dims` (a number, or a name for a symbolic one).
fn vi(name: &str, dims: &[&str]) -> ValueInfoProto {
    use tensor_shape_proto::{Dimension, dimension::Value};
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(1),
                shape: Some(TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|d| Dimension {
                            value: Some(match d.parse::<i64>() {
                                Ok(v) => Value::DimValue(v),
                                Err(_) => Value::DimParam(d.to_string()),
                            }),
                            ..Default::default()
                        })
                        .collect(),
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn model(
    nodes: Vec<NodeProto>,
    inits: Vec<TensorProto>,
    inputs: Vec<ValueInfoProto>,
    outputs: Vec<ValueInfoProto>,
) -> Vec<u8> {
    ModelProto {
        ir_version: Some(8),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(17),
        }],
        graph: Some(GraphProto {
            node: nodes,
            initializer: inits,
            input: inputs,
            output: outputs,
            name: Some("g".into()),
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

#[test]
fn an_unsupported_op_is_named_in_one_line() {
    let bytes = model(
        vec![
            node("Relu", "ok", &["x"], &["a"], vec![]),
            node("Conv", "conv_3", &["a", "w"], &["y"], vec![]),
        ],
        vec![tf32("w", &[1, 1, 1], vec![1.0])],
        vec![vi("x", &["1", "1", "4"])],
        vec![vi("y", &[])],
    );
    let e = OnnxProgram::from_bytes(&bytes, None, "m").unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, Error::Unsupported(_)), "{msg}");
    assert!(
        msg.contains("\"conv_3\"") && msg.contains("op type Conv"),
        "{msg}"
    );
    assert!(!msg.contains('\n'), "{msg}");
    // Another domain is refused too.
    let mut n = node("Relu", "custom", &["x"], &["y"], vec![]);
    n.domain = Some("com.example".into());
    let bytes = model(vec![n], vec![], vec![vi("x", &["4"])], vec![vi("y", &[])]);
    let e = OnnxProgram::from_bytes(&bytes, None, "m").unwrap_err();
    assert!(e.to_string().contains("com.example.Relu"), "{e}");
}

#[test]
fn huge_and_broken_graphs_are_refused() {
    // ConstantOfShape of 2^40 elements, folded at load.
    let bytes = model(
        vec![
            node(
                "Constant",
                "c",
                &[],
                &["s"],
                vec![at("value", ti64("", &[2], vec![1 << 20, 1 << 20]))],
            ),
            node("ConstantOfShape", "big", &["s"], &["y"], vec![]),
        ],
        vec![],
        vec![],
        vec![vi("y", &[])],
    );
    let e = OnnxProgram::from_bytes(&bytes, None, "m").unwrap_err();
    assert!(matches!(e, Error::Overflow(_)), "{e}");
    // The same at run time, from an input's values.
    let bytes = model(
        vec![
            node("Cast", "c", &["x"], &["s"], vec![ai("to", 7)]),
            node("ConstantOfShape", "big", &["s"], &["y"], vec![]),
        ],
        vec![],
        vec![vi("x", &["3"])],
        vec![vi("y", &[])],
    );
    let p = OnnxProgram::from_bytes(&bytes, None, "m").unwrap();
    let x = FeedValue::F32(Array::new(vec![3], vec![1e6, 1e6, 1e6]).unwrap());
    let e = p
        .run(&[("x".into(), x)], &mut |_, _| unreachable!())
        .unwrap_err();
    assert!(matches!(e, Error::Overflow(_)), "{e}");
    // Expand and Reshape to huge shapes.
    for (op, shape) in [
        ("Expand", vec![1i64 << 20, 1 << 20]),
        ("Reshape", vec![-1, 0]),
    ] {
        let bytes = model(
            vec![node(op, "n", &["x", "s"], &["y"], vec![])],
            vec![ti64("s", &[2], shape)],
            vec![vi("x", &["2"])],
            vec![vi("y", &[])],
        );
        let p = OnnxProgram::from_bytes(&bytes, None, "m").unwrap();
        let x = FeedValue::F32(Array::new(vec![2], vec![1.0, 2.0]).unwrap());
        assert!(
            p.run(&[("x".into(), x)], &mut |_, _| unreachable!())
                .is_err()
        );
    }
    // A node that reads what no earlier node gives (out of order, or a cycle).
    let bytes = model(
        vec![
            node("Relu", "a", &["b_out"], &["a_out"], vec![]),
            node("Relu", "b", &["a_out"], &["b_out"], vec![]),
        ],
        vec![],
        vec![],
        vec![vi("b_out", &[])],
    );
    let e = OnnxProgram::from_bytes(&bytes, None, "m").unwrap_err();
    assert!(e.to_string().contains("\"a\""), "{e}");
    // No opset.
    let mut m = ModelProto::decode(&model(vec![], vec![], vec![], vec![])[..]).unwrap();
    m.opset_import.clear();
    assert!(OnnxProgram::from_bytes(&m.encode_to_vec(), None, "m").is_err());
}

/// A GRU node with `initial_h` and `sequence_lens` as graph inputs, `layout` 0 or 1: `Y` and
/// `Y_h` rearranged as ONNX lays them out, the nonzero h0 passed on.
#[test]
fn gru_node_inputs_and_outputs_follow_the_layout() {
    let (d, h, i, t, b) = (2usize, 3usize, 2usize, 4usize, 2usize);
    let w: Vec<f32> = (0..d * 3 * h * i)
        .map(|k| ((k * 7 % 11) as f32 - 5.0) / 10.0)
        .collect();
    let r: Vec<f32> = (0..d * 3 * h * h)
        .map(|k| ((k * 5 % 13) as f32 - 6.0) / 12.0)
        .collect();
    let bias: Vec<f32> = (0..d * 6 * h)
        .map(|k| ((k % 7) as f32 - 3.0) / 10.0)
        .collect();
    for layout in [0i64, 1] {
        let x_dims: Vec<String> = if layout == 0 {
            vec!["T".into(), "B".into(), i.to_string()]
        } else {
            vec!["B".into(), "T".into(), i.to_string()]
        };
        let h_dims: Vec<String> = if layout == 0 {
            vec![d.to_string(), "B".into(), h.to_string()]
        } else {
            vec!["B".into(), d.to_string(), h.to_string()]
        };
        let xs: Vec<&str> = x_dims.iter().map(String::as_str).collect();
        let hs: Vec<&str> = h_dims.iter().map(String::as_str).collect();
        let mut lens = vi("lens", &["B"]);
        if let Some(type_proto::Value::TensorType(tt)) =
            lens.r#type.as_mut().and_then(|t| t.value.as_mut())
        {
            tt.elem_type = Some(7);
        }
        let bytes = model(
            vec![node(
                "GRU",
                "gru",
                &["x", "W", "R", "B", "lens", "h0"],
                &["Y", "Y_h"],
                vec![
                    ai("hidden_size", h as i64),
                    astr("direction", "bidirectional"),
                    ai("linear_before_reset", 1),
                    ai("layout", layout),
                ],
            )],
            vec![
                tf32("W", &[d as i64, 3 * h as i64, i as i64], w.clone()),
                tf32("R", &[d as i64, 3 * h as i64, h as i64], r.clone()),
                tf32("B", &[d as i64, 6 * h as i64], bias.clone()),
            ],
            vec![vi("x", &xs), lens, vi("h0", &hs)],
            vec![vi("Y", &[]), vi("Y_h", &[])],
        );
        let p = OnnxProgram::from_bytes(&bytes, None, "m").unwrap();
        assert_eq!(p.grus()[0].config.batch_first, layout == 1);
        assert_eq!(p.gru_node_names(), ["gru"]);
        let x: Vec<f32> = (0..t * b * i)
            .map(|k| ((k * 3 % 17) as f32 - 8.0) / 9.0)
            .collect();
        // Canonical h0 [D, B, H] and the file's layout of it.
        let h0: Vec<f32> = (0..d * b * h).map(|k| (k as f32 - 6.0) / 10.0).collect();
        let h0_file = if layout == 0 {
            h0.clone()
        } else {
            super::swap01(&h0, d, b, h)
        };
        let x_shape = if layout == 0 {
            vec![t, b, i]
        } else {
            vec![b, t, i]
        };
        let h_shape = if layout == 0 {
            vec![d, b, h]
        } else {
            vec![b, d, h]
        };
        let lengths = [4usize, 2];
        let feeds = vec![
            (
                "x".to_string(),
                FeedValue::F32(Array::new(x_shape, x.clone()).unwrap()),
            ),
            (
                "lens".to_string(),
                FeedValue::I64 {
                    shape: vec![b],
                    data: lengths.iter().map(|&v| v as i64).collect(),
                },
            ),
            (
                "h0".to_string(),
                FeedValue::F32(Array::new(h_shape, h0_file).unwrap()),
            ),
        ];
        let outs = p
            .run(&feeds, &mut |k, input| {
                assert_eq!(input.h0, Some(&h0[..]));
                assert_eq!(input.lengths, Some(&lengths[..]));
                crate::reference::forward(&p.grus()[k], input)
            })
            .unwrap();
        let want = crate::reference::forward(
            &p.grus()[0],
            &crate::SeqInput::new(&x, crate::Steps(t), crate::Batch(b))
                .with_h0(&h0)
                .with_lengths(&lengths),
        )
        .unwrap();
        // Y[t, d, b, :] (layout 1: Y[b, t, d, :]) against output[t, b, d·H] ([b, t, d·H]).
        let (y, y_h) = (&outs[0], &outs[1]);
        if layout == 0 {
            assert_eq!(y.shape, vec![t, d, b, h]);
            assert_eq!(y_h.shape, vec![d, b, h]);
        } else {
            assert_eq!(y.shape, vec![b, t, d, h]);
            assert_eq!(y_h.shape, vec![b, d, h]);
        }
        for tt in 0..t {
            for bb in 0..b {
                for dd in 0..d {
                    let got = if layout == 0 {
                        ((tt * d + dd) * b + bb) * h
                    } else {
                        ((bb * t + tt) * d + dd) * h
                    };
                    let src = if layout == 0 {
                        (tt * b + bb) * d * h + dd * h
                    } else {
                        (bb * t + tt) * d * h + dd * h
                    };
                    assert_eq!(y.data[got..got + h], want.output[src..src + h]);
                    if tt >= lengths[bb] {
                        assert!(y.data[got..got + h].iter().all(|&v| v == 0.0));
                    }
                }
            }
        }
        for dd in 0..d {
            for bb in 0..b {
                let got = if layout == 0 {
                    (dd * b + bb) * h
                } else {
                    (bb * d + dd) * h
                };
                let src = (dd * b + bb) * h;
                assert_eq!(y_h.data[got..got + h], want.h_n[src..src + h]);
            }
        }
        // A symbolic dimension that disagrees between inputs.
        let mut bad = feeds.clone();
        bad[1].1 = FeedValue::I64 {
            shape: vec![3],
            data: vec![1, 1, 1],
        };
        let e = p.run(&bad, &mut |_, _| unreachable!()).unwrap_err();
        assert!(e.to_string().contains("\"B\""), "{e}");
    }
}

// ---- ops ----

fn op(
    opset: i64,
    op_type: &str,
    attrs: Vec<AttributeProto>,
    inputs: &[Option<Tensor>],
) -> Result<Tensor> {
    let names: Vec<String> = (0..inputs.len())
        .map(|k| {
            if inputs[k].is_some() {
                format!("i{k}")
            } else {
                String::new()
            }
        })
        .collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let n = node(op_type, "n", &names, &["y"], attrs);
    let ctx = ops::Ctx {
        node: &n,
        label: "n",
        opset,
        dir: None,
        model: "test",
    };
    let ins: Vec<Option<&Tensor>> = inputs.iter().map(Option::as_ref).collect();
    ops::eval(&ctx, &ins).map(|mut v| v.remove(0))
}

fn f(shape: &[usize], v: Vec<f32>) -> Option<Tensor> {
    Some(Tensor::f32(shape.to_vec(), v).unwrap())
}

fn i(shape: &[usize], v: Vec<i64>) -> Option<Tensor> {
    Some(Tensor::i64(shape.to_vec(), v).unwrap())
}

fn range(n: usize) -> Vec<f32> {
    (0..n).map(|k| k as f32).collect()
}

fn vals(t: &Tensor) -> Vec<f32> {
    t.to_f32_vec()
}

#[test]
fn slice_steps_clamps_and_int_max() {
    let x = f(&[10], range(10));
    let s = |st: i64, en: i64, step: i64| {
        op(
            17,
            "Slice",
            vec![],
            &[
                x.clone(),
                i(&[1], vec![st]),
                i(&[1], vec![en]),
                i(&[1], vec![0]),
                i(&[1], vec![step]),
            ],
        )
        .unwrap()
    };
    assert_eq!(
        vals(&s(-1, i64::MIN, -1)),
        (0..10).rev().map(|v| v as f32).collect::<Vec<_>>()
    );
    assert_eq!(vals(&s(8, 1, -3)), vec![8.0, 5.0, 2.0]);
    assert_eq!(vals(&s(2, i64::MAX, 1)), range(10)[2..].to_vec());
    assert_eq!(vals(&s(-3, -1, 1)), vec![7.0, 8.0]);
    assert_eq!(vals(&s(1, 100, 4)), vec![1.0, 5.0, 9.0]);
    assert_eq!(s(5, 2, 1).shape, vec![0]);
    assert_eq!(vals(&s(100, -100, -4)), vec![9.0, 5.0, 1.0]);
    // 2-D, a negative axis, default steps, no axes.
    let x2 = f(&[3, 4], range(12));
    let y = op(
        17,
        "Slice",
        vec![],
        &[
            x2.clone(),
            i(&[1], vec![1]),
            i(&[1], vec![i64::MAX]),
            i(&[1], vec![-1]),
        ],
    )
    .unwrap();
    assert_eq!(y.shape, vec![3, 3]);
    assert_eq!(vals(&y), vec![1., 2., 3., 5., 6., 7., 9., 10., 11.]);
    let y = op(
        17,
        "Slice",
        vec![],
        &[
            x2.clone(),
            i(&[2], vec![-1, -1]),
            i(&[2], vec![-4, -5]),
            None,
            i(&[2], vec![-2, -3]),
        ],
    )
    .unwrap();
    // Rows 2, 0 (end -4 is clamped to -1: before row 0) and columns 3, 0.
    assert_eq!(y.shape, vec![2, 2]);
    assert_eq!(vals(&y), vec![11., 8., 3., 0.]);
    // A zero step is refused.
    assert!(
        op(
            17,
            "Slice",
            vec![],
            &[
                x,
                i(&[1], vec![0]),
                i(&[1], vec![3]),
                i(&[1], vec![0]),
                i(&[1], vec![0])
            ]
        )
        .is_err()
    );
}

#[test]
fn gather_negative_and_scalar_indices() {
    let x = f(&[2, 3], range(6));
    let y = op(
        17,
        "Gather",
        vec![ai("axis", 1)],
        &[x.clone(), i(&[], vec![-1])],
    )
    .unwrap();
    assert_eq!(y.shape, vec![2]);
    assert_eq!(vals(&y), vec![2., 5.]);
    let y = op(17, "Gather", vec![], &[x.clone(), i(&[1, 2], vec![-1, 0])]).unwrap();
    assert_eq!(y.shape, vec![1, 2, 3]);
    assert_eq!(vals(&y), vec![3., 4., 5., 0., 1., 2.]);
    assert!(op(17, "Gather", vec![], &[x.clone(), i(&[1], vec![2])]).is_err());
    assert!(op(17, "Gather", vec![], &[x, i(&[1], vec![-3])]).is_err());
}

#[test]
fn gemm_transposes_scales_and_broadcasts_c() {
    // A [2, 3], B stored [4, 3] with transB, C [4].
    let a = range(6);
    let b: Vec<f32> = (0..12).map(|k| (k as f32) * 0.5 - 2.0).collect();
    let c = vec![1.0, -1.0, 2.0, 0.5];
    let y = op(
        17,
        "Gemm",
        vec![ai("transB", 1), af("alpha", 0.5), af("beta", 2.0)],
        &[
            f(&[2, 3], a.clone()),
            f(&[4, 3], b.clone()),
            f(&[4], c.clone()),
        ],
    )
    .unwrap();
    assert_eq!(y.shape, vec![2, 4]);
    for m in 0..2 {
        for n in 0..4 {
            let s: f32 = (0..3).map(|k| a[m * 3 + k] * b[n * 3 + k]).sum();
            assert!((vals(&y)[m * 4 + n] - (0.5 * s + 2.0 * c[n])).abs() < 1e-5);
        }
    }
    // transA: A stored [3, 2]; no C.
    let at: Vec<f32> = (0..6).map(|k| a[(k % 2) * 3 + k / 2]).collect();
    let y2 = op(
        17,
        "Gemm",
        vec![ai("transA", 1), ai("transB", 1)],
        &[f(&[3, 2], at), f(&[4, 3], b), None],
    )
    .unwrap();
    let y1 = op(
        17,
        "Gemm",
        vec![ai("transB", 1)],
        &[
            f(&[2, 3], a),
            Some(
                Tensor::f32(
                    vec![4, 3],
                    (0..12).map(|k| (k as f32) * 0.5 - 2.0).collect(),
                )
                .unwrap(),
            ),
            None,
        ],
    )
    .unwrap();
    assert_eq!(y1, y2);
    // A C that does not broadcast.
    assert!(
        op(
            17,
            "Gemm",
            vec![],
            &[
                f(&[2, 3], range(6)),
                f(&[3, 4], range(12)),
                f(&[3], range(3))
            ]
        )
        .is_err()
    );
}

#[test]
fn matmul_broadcasts_batches_and_1d() {
    let (a, b) = (range(2 * 1 * 2 * 3), range(3 * 3 * 4));
    let y = op(
        17,
        "MatMul",
        vec![],
        &[f(&[2, 1, 2, 3], a.clone()), f(&[3, 3, 4], b.clone())],
    )
    .unwrap();
    assert_eq!(y.shape, vec![2, 3, 2, 4]);
    let yv = vals(&y);
    for p in 0..2 {
        for q in 0..3 {
            for m in 0..2 {
                for n in 0..4 {
                    let s: f32 = (0..3)
                        .map(|k| a[(p * 2 + m) * 3 + k] * b[(q * 3 + k) * 4 + n])
                        .sum();
                    assert_eq!(yv[((p * 3 + q) * 2 + m) * 4 + n], s);
                }
            }
        }
    }
    let v = op(
        17,
        "MatMul",
        vec![],
        &[f(&[3], vec![1., 2., 3.]), f(&[3, 2], range(6))],
    )
    .unwrap();
    assert_eq!((v.shape.clone(), vals(&v)), (vec![2], vec![16., 22.]));
    let v = op(
        17,
        "MatMul",
        vec![],
        &[f(&[2, 3], range(6)), f(&[3], vec![1., 2., 3.])],
    )
    .unwrap();
    assert_eq!((v.shape.clone(), vals(&v)), (vec![2], vec![8., 26.]));
    let v = op(
        17,
        "MatMul",
        vec![],
        &[f(&[3], vec![1., 2., 3.]), f(&[3], vec![1., 1., 1.])],
    )
    .unwrap();
    assert_eq!((v.shape.clone(), vals(&v)), (vec![], vec![6.]));
    let v = op(
        17,
        "MatMul",
        vec![],
        &[f(&[3], vec![1., 2., 3.]), f(&[2, 3, 1], range(6))],
    )
    .unwrap();
    assert_eq!((v.shape.clone(), vals(&v)), (vec![2, 1], vec![8., 26.]));
    assert!(
        op(
            17,
            "MatMul",
            vec![],
            &[f(&[2, 3], range(6)), f(&[2, 3], range(6))]
        )
        .is_err()
    );
}

#[test]
fn reshape_zero_minus_one_and_allowzero() {
    let x = f(&[2, 3, 4], range(24));
    let y = op(17, "Reshape", vec![], &[x.clone(), i(&[2], vec![0, -1])]).unwrap();
    assert_eq!(y.shape, vec![2, 12]);
    let y = op(17, "Reshape", vec![], &[x.clone(), i(&[3], vec![-1, 0, 2])]).unwrap();
    assert_eq!(y.shape, vec![4, 3, 2]);
    assert!(op(17, "Reshape", vec![], &[x.clone(), i(&[2], vec![-1, -1])]).is_err());
    assert!(op(17, "Reshape", vec![], &[x.clone(), i(&[2], vec![5, -1])]).is_err());
    assert!(
        op(
            17,
            "Reshape",
            vec![ai("allowzero", 1)],
            &[x.clone(), i(&[2], vec![0, -1])]
        )
        .is_err()
    );
    let e = op(
        17,
        "Reshape",
        vec![ai("allowzero", 1)],
        &[f(&[0, 3], vec![]), i(&[2], vec![3, 0])],
    )
    .unwrap();
    assert_eq!(e.shape, vec![3, 0]);
    // Squeeze/Unsqueeze with negative axes (inputs from opset 13, attributes before).
    let u = op(17, "Unsqueeze", vec![], &[x.clone(), i(&[2], vec![0, -1])]).unwrap();
    assert_eq!(u.shape, vec![1, 2, 3, 4, 1]);
    let u = op(11, "Unsqueeze", vec![aints("axes", &[1])], &[x.clone()]).unwrap();
    assert_eq!(u.shape, vec![2, 1, 3, 4]);
    let s = op(
        17,
        "Squeeze",
        vec![],
        &[f(&[1, 3, 1], range(3)), i(&[1], vec![-1])],
    )
    .unwrap();
    assert_eq!(s.shape, vec![1, 3]);
    let s = op(17, "Squeeze", vec![], &[f(&[1, 3, 1], range(3))]).unwrap();
    assert_eq!(s.shape, vec![3]);
    assert!(
        op(
            17,
            "Squeeze",
            vec![],
            &[f(&[1, 3, 1], range(3)), i(&[1], vec![1])]
        )
        .is_err()
    );
    // Transpose, Expand, Concat, Shape.
    let t = op(
        17,
        "Transpose",
        vec![aints("perm", &[2, 0, 1])],
        &[x.clone()],
    )
    .unwrap();
    assert_eq!(t.shape, vec![4, 2, 3]);
    assert_eq!(vals(&t)[..4], [0., 4., 8., 12.]);
    let e = op(
        17,
        "Expand",
        vec![],
        &[f(&[3, 1], vec![1., 2., 3.]), i(&[3], vec![2, 1, 2])],
    )
    .unwrap();
    assert_eq!(e.shape, vec![2, 3, 2]);
    assert_eq!(vals(&e)[..6], [1., 1., 2., 2., 3., 3.]);
    let c = op(
        17,
        "Concat",
        vec![ai("axis", -1)],
        &[f(&[2, 1], vec![1., 2.]), f(&[2, 2], vec![3., 4., 5., 6.])],
    )
    .unwrap();
    assert_eq!(vals(&c), vec![1., 3., 4., 2., 5., 6.]);
    let sh = op(17, "Shape", vec![ai("start", -2)], &[x]).unwrap();
    assert_eq!(sh.as_i64("s").unwrap(), &[3, 4]);
}

#[test]
fn reduce_mean_axes_and_softmax_axis() {
    let x = f(&[2, 3, 2], range(12));
    let y = op(
        17,
        "ReduceMean",
        vec![aints("axes", &[1]), ai("keepdims", 0)],
        &[x.clone()],
    )
    .unwrap();
    assert_eq!(y.shape, vec![2, 2]);
    assert_eq!(vals(&y), vec![2., 3., 8., 9.]);
    let y = op(18, "ReduceMean", vec![], &[x.clone(), i(&[1], vec![-1])]).unwrap();
    assert_eq!(y.shape, vec![2, 3, 1]);
    assert_eq!(vals(&y), vec![0.5, 2.5, 4.5, 6.5, 8.5, 10.5]);
    let y = op(18, "ReduceMean", vec![ai("keepdims", 0)], &[x.clone()]).unwrap();
    assert_eq!((y.shape.clone(), vals(&y)), (vec![], vec![5.5]));
    let y = op(
        18,
        "ReduceMean",
        vec![ai("noop_with_empty_axes", 1)],
        &[x.clone()],
    )
    .unwrap();
    assert_eq!(y.shape, vec![2, 3, 2]);

    let s = f(&[2, 3], vec![1., 2., 3., 1., 1., 1.]);
    let y = op(17, "Softmax", vec![ai("axis", 0)], &[s.clone()]).unwrap();
    let yv = vals(&y);
    for k in 0..3 {
        assert!((yv[k] + yv[3 + k] - 1.0).abs() < 1e-6);
    }
    assert!((yv[0] - 0.5).abs() < 1e-6);
    assert!((yv[2] - 1.0 / (1.0 + (-2f32).exp())).abs() < 1e-6);
    let y = op(17, "Softmax", vec![], &[s.clone()]).unwrap();
    let yv = vals(&y);
    assert!((yv[..3].iter().sum::<f32>() - 1.0).abs() < 1e-6);
    assert!((yv[3] - 1.0 / 3.0).abs() < 1e-6);
    let l = op(17, "LogSoftmax", vec![], &[s.clone()]).unwrap();
    for (a, b) in vals(&l).iter().zip(&yv) {
        assert!((a - b.ln()).abs() < 1e-6);
    }
    // Opset 11: the input flattened from axis 1 on (a no-op for rank 2).
    assert_eq!(op(11, "Softmax", vec![], &[s]).unwrap(), y);
}

#[test]
fn elementwise_casts_and_constants() {
    let a = f(&[2, 1], vec![1., 2.]);
    let b = f(&[3], vec![10., 20., 30.]);
    let y = op(17, "Sub", vec![], &[a.clone(), b.clone()]).unwrap();
    assert_eq!(y.shape, vec![2, 3]);
    assert_eq!(vals(&y), vec![-9., -19., -29., -8., -18., -28.]);
    assert_eq!(
        vals(&op(17, "Div", vec![], &[b.clone(), a.clone()]).unwrap())[3],
        5.
    );
    assert_eq!(
        op(17, "Mul", vec![], &[i(&[2], vec![3, -2]), i(&[], vec![4])])
            .unwrap()
            .as_i64("m")
            .unwrap(),
        &[12, -8]
    );
    assert!(op(17, "Div", vec![], &[i(&[1], vec![3]), i(&[1], vec![0])]).is_err());
    assert!(op(17, "Add", vec![], &[a.clone(), i(&[1], vec![3])]).is_err());
    assert!(op(17, "Add", vec![], &[f(&[2], vec![1., 2.]), b]).is_err());
    let r = op(17, "Relu", vec![], &[f(&[2], vec![-1., 2.])]).unwrap();
    assert_eq!(vals(&r), vec![0., 2.]);
    let c = op(
        17,
        "Cast",
        vec![ai("to", 7)],
        &[f(&[3], vec![-1.7, 2.9, 0.0])],
    )
    .unwrap();
    assert_eq!(c.as_i64("c").unwrap(), &[-1, 2, 0]);
    let c = op(17, "Cast", vec![ai("to", 1)], &[c.into()]).unwrap();
    assert_eq!(vals(&c), vec![-1., 2., 0.]);
    let k = op(17, "Constant", vec![aints("value_ints", &[1, 2])], &[]).unwrap();
    assert_eq!(k.shape, vec![2]);
    let k = op(17, "Constant", vec![af("value_float", 1.5)], &[]).unwrap();
    assert_eq!((k.shape.clone(), vals(&k)), (vec![], vec![1.5]));
    let z = op(
        17,
        "ConstantOfShape",
        vec![at("value", ti64("", &[1], vec![7]))],
        &[i(&[2], vec![2, 2])],
    )
    .unwrap();
    assert_eq!(z.as_i64("z").unwrap(), &[7; 4]);
    let z = op(17, "ConstantOfShape", vec![], &[i(&[0], vec![])]).unwrap();
    assert_eq!((z.shape.clone(), vals(&z)), (vec![], vec![0.]));
}
