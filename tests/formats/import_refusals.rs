//! The safetensors importers refuse bad files with a typed `Error`, never a panic: files that are
//! not safetensors, wrong dtypes, missing or unexpected tensors, inconsistent and absurd shapes
//! in every layout, options and metadata that contradict the file, bad lengths.

use crate::common;

use common::errors::{
    is_arg, is_config, is_dtype, is_layout, is_missing, is_overflow, is_parse, is_shape, refused,
};
use common::safetensors_file::{
    T, keras, onnx, raw_st, replace, seed_cell, st_bytes, t, torch, without, z,
};
use wgpu_gru::formats::{self, Format, ImportOptions, SafetensorsFile};
use wgpu_gru::{Direction, Gru, GruConfig};

fn import_bytes(
    bytes: Vec<u8>,
    format: Option<Format>,
    opts: &ImportOptions,
) -> wgpu_gru::Result<Gru> {
    let f = SafetensorsFile::from_bytes(bytes, "test.safetensors")?;
    formats::import(&f, format, opts).map(|i| i.gru)
}

fn import(tensors: &[T]) -> wgpu_gru::Result<Gru> {
    import_bytes(st_bytes(tensors, &[]), None, &ImportOptions::default())
}

#[test]
fn valid_builders_import() {
    // The builders themselves are right: every mutation below starts from an accepted file.
    import(&torch(2, 2, 3, 4, true)).unwrap();
    import(&torch(1, 1, 3, 4, false)).unwrap();
    import(&keras(3, 4, Some(2))).unwrap();
    import(&keras(3, 4, Some(1))).unwrap();
    import(&keras(3, 4, None)).unwrap();
    import(&onnx(2, 3, 4)).unwrap();
    import(&seed_cell(3, 4)).unwrap();
}

#[test]
fn not_safetensors() {
    let opts = ImportOptions::default();
    // A header holding one tensor `a`, as given.
    let one_tensor = |dtype: &str, shape: &str, offsets: &str, data: &[u8]| {
        let a = format!(r#"{{"dtype":"{dtype}","shape":{shape},"data_offsets":{offsets}}}"#);
        raw_st(&format!(r#"{{"a":{a}}}"#), data)
    };
    let mut files = vec![
        vec![],
        vec![1, 2, 3],
        8u64.to_le_bytes().to_vec(),
        // Header length larger than the file, and absurdly large.
        [100u64.to_le_bytes().as_slice(), b"{}"].concat(),
        [u64::MAX.to_le_bytes().as_slice(), b"{}"].concat(),
        // Not JSON, JSON of the wrong type.
        raw_st("{nope", &[]),
        raw_st("[1, 2]", &[]),
    ];
    // Unknown dtype, offsets past the data, a shape the data do not fill, offsets backwards, a
    // negative dimension.
    for (dtype, shape, offsets) in [
        ("F99", "[1]", "[0,4]"),
        ("F32", "[1]", "[0,8]"),
        ("F32", "[2]", "[0,4]"),
        ("F32", "[1]", "[4,0]"),
        ("F32", "[-1]", "[0,4]"),
    ] {
        files.push(one_tensor(dtype, shape, offsets, &[0; 4]));
    }
    // Shape products that overflow.
    files.push(one_tensor(
        "F32",
        "[4294967296,4294967296,16]",
        "[0,0]",
        &[],
    ));
    files.push(one_tensor("F64", "[4611686018427387904]", "[0,0]", &[]));
    for bytes in files {
        let r = import_bytes(bytes.clone(), None, &opts);
        refused(r, is_parse, &["test.safetensors"]);
        for f in Format::ALL {
            refused(import_bytes(bytes.clone(), Some(f), &opts), is_parse, &[]);
        }
    }
}

#[test]
fn wrong_dtypes() {
    for (dtype, width) in [("I32", 4), ("I64", 8), ("U8", 1), ("BOOL", 1), ("I8", 1)] {
        for base in [
            torch(1, 1, 2, 3, true),
            keras(2, 3, Some(2)),
            onnx(1, 2, 3),
            seed_cell(2, 3),
        ] {
            let mut v = base.clone();
            let victim = &mut v[1];
            let n: usize = victim.shape.iter().product();
            victim.dtype = dtype;
            victim.data = vec![0; n * width];
            let name = victim.name.clone();
            refused(import(&v), is_dtype, &[&name, dtype]);
        }
    }
    // F16, BF16 and F64 are converted.
    for (dtype, width) in [("F16", 2), ("BF16", 2), ("F64", 8)] {
        let mut v = torch(1, 1, 2, 3, true);
        for x in &mut v {
            let n: usize = x.shape.iter().product();
            x.dtype = dtype;
            x.data = vec![0; n * width];
        }
        import(&v).unwrap();
    }
}

#[test]
fn missing_and_unexpected_tensors() {
    // PyTorch: every weight is required; a bias in one place requires all of them.
    for name in [
        "weight_ih_l0",
        "weight_hh_l0",
        "weight_ih_l1_reverse",
        "weight_hh_l1",
    ] {
        refused(
            import(&without(torch(2, 2, 3, 4, false), name)),
            is_missing,
            &[name],
        );
    }
    for name in ["bias_ih_l0", "bias_hh_l1_reverse"] {
        refused(
            import(&without(torch(2, 2, 3, 4, true), name)),
            is_missing,
            &[name],
        );
    }
    // A layer beyond the last complete one, or a reverse direction in one layer only.
    let mut v = torch(1, 1, 3, 4, false);
    v.push(t("weight_ih_l3", &[9, 3], 9));
    refused(import(&v), is_missing, &["l1"]);
    let mut v = torch(2, 1, 3, 4, false);
    v.push(t("weight_hh_l1_reverse", &[9, 3], 9));
    refused(import(&v), is_missing, &["_reverse"]);
    // Keras, ONNX, seed.
    refused(
        import(&without(keras(3, 4, Some(2)), "kernel")),
        is_missing,
        &["kernel"],
    );
    refused(
        import(&without(keras(3, 4, Some(2)), "recurrent_kernel")),
        is_missing,
        &["recurrent_kernel"],
    );
    refused(import(&without(onnx(1, 3, 4), "W")), is_missing, &["W"]);
    refused(import(&without(onnx(1, 3, 4), "R")), is_missing, &["R"]);
    for name in ["W_z", "W_h", "b_r"] {
        refused(import(&without(seed_cell(3, 4), name)), is_missing, &[name]);
    }
    // Nothing recognisable, or several layouts at once.
    refused(import(&[t("foo", &[2], 1)]), is_layout, &["foo"]);
    refused(import(&[]), is_layout, &[]);
    let mut v = torch(1, 1, 3, 4, true);
    v.extend(onnx(1, 3, 4));
    refused(import(&v), is_layout, &["pytorch", "onnx"]);
    // The wrong layout named explicitly.
    let r = import_bytes(
        st_bytes(&onnx(1, 3, 4), &[]),
        Some(Format::Keras),
        &Default::default(),
    );
    refused(r, is_missing, &["recurrent_kernel"]);
    // Tensors the layout does not use are ignored (golden files carry inputs and outputs).
    let mut v = torch(1, 1, 3, 4, true);
    v.push(t("input", &[2, 2, 4], 5));
    v.push(t("weight_ih_l0_extra", &[1], 5));
    import(&v).unwrap();
}

#[test]
fn inconsistent_sizes() {
    // PyTorch: W_hh not [3H, H]; a layer's input width; biases; ranks.
    let v = torch(2, 2, 3, 4, true);
    for (bad, needles) in [
        (t("weight_hh_l0", &[9, 4], 0), &["weight_hh_l0"][..]),
        (t("weight_hh_l0", &[8, 3], 0), &["weight_hh_l0"]),
        (t("weight_hh_l0", &[27], 0), &["weight_hh_l0", "[3H, H]"]),
        (t("weight_hh_l1", &[12, 4], 0), &["weight_hh_l1", "[9, 3]"]),
        (t("weight_ih_l1", &[9, 3], 0), &["weight_ih_l1", "[9, 6]"]),
        (
            t("weight_ih_l0_reverse", &[9, 5], 0),
            &["weight_ih_l0_reverse", "[9, 4]"],
        ),
        (t("weight_ih_l0", &[9, 4, 1], 0), &["weight_ih_l0"]),
        (t("bias_ih_l1", &[8], 0), &["bias_ih_l1", "[9]"]),
        (t("bias_hh_l0_reverse", &[3, 3], 0), &["bias_hh_l0_reverse"]),
    ] {
        refused(import(&replace(v.clone(), bad)), is_shape, needles);
    }
    // H = 0, I = 0.
    refused(
        import(&replace(
            torch(1, 1, 3, 4, false),
            t("weight_hh_l0", &[0, 0], 0),
        )),
        is_shape,
        &["weight_hh_l0"],
    );
    let v = vec![t("weight_ih_l0", &[9, 0], 0), t("weight_hh_l0", &[9, 3], 1)];
    refused(import(&v), is_config, &["input_size"]);
    // Keras.
    for (bad, needles) in [
        (t("recurrent_kernel", &[3, 8], 0), &["recurrent_kernel"][..]),
        (t("recurrent_kernel", &[0, 0], 0), &["recurrent_kernel"]),
        (t("kernel", &[4, 8], 0), &["kernel", "[4, 9]"]),
        (t("kernel", &[4, 9, 1], 0), &["kernel"]),
        (t("bias", &[3, 9], 0), &["bias", "[2, 9]"]),
        (t("bias", &[8], 0), &["bias"]),
    ] {
        refused(
            import(&replace(keras(3, 4, Some(2)), bad)),
            is_shape,
            needles,
        );
    }
    // ONNX.
    for (bad, needles) in [
        (t("R", &[3, 9, 3], 0), &["R", "D = 1 or 2"][..]),
        (t("R", &[1, 8, 3], 0), &["R"]),
        (t("R", &[1, 0, 0], 0), &["R"]),
        (t("W", &[2, 9, 4], 0), &["W", "[1, 9, 4]"]),
        (t("W", &[1, 6, 4], 0), &["W"]),
        (t("B", &[1, 12], 0), &["B", "[1, 18]"]),
        (t("B", &[18], 0), &["B"]),
    ] {
        refused(import(&replace(onnx(1, 3, 4), bad)), is_shape, needles);
    }
    // Seed.
    for (bad, needles) in [
        (t("W_z", &[3, 3], 0), &["W_z"][..]),
        (t("W_z", &[0, 0], 0), &["W_z"]),
        (t("W_r", &[3, 6], 0), &["W_r", "[3, 7]"]),
        (t("b_h", &[4], 0), &["b_h", "[3]"]),
    ] {
        refused(import(&replace(seed_cell(3, 4), bad)), is_shape, needles);
    }
}

#[test]
fn huge_declared_shapes() {
    // Zero-element tensors can declare any other dimension: sizes computed from them must not
    // overflow (or wrap in release builds) on the way to the error.
    let huge = usize::MAX;
    let cases: Vec<Vec<T>> = vec![
        replace(torch(1, 1, 3, 4, false), z("weight_hh_l0", &[0, huge])),
        replace(torch(1, 1, 3, 4, false), z("weight_hh_l0", &[huge, 0])),
        replace(torch(1, 1, 3, 4, false), z("weight_ih_l0", &[0, huge])),
        replace(keras(3, 4, Some(2)), z("recurrent_kernel", &[huge, 0])),
        replace(keras(3, 4, Some(2)), z("kernel", &[huge, 0])),
        replace(onnx(1, 3, 4), z("R", &[1, 0, huge])),
        replace(onnx(1, 3, 4), z("R", &[0, 9, huge / 2])),
        replace(onnx(1, 3, 4), z("W", &[0, 9, huge])),
        replace(seed_cell(3, 4), z("W_z", &[huge, 0])),
        replace(seed_cell(3, 4), z("W_z", &[0, huge])),
        replace(seed_cell(3, 4), z("b_z", &[huge, 0])),
        vec![
            z("weight_ih_l999999", &[0, huge]),
            t("weight_hh_l0", &[9, 3], 0),
        ],
    ];
    for v in cases {
        let r = import(&v);
        refused(r, |e| is_shape(e) || is_overflow(e) || is_missing(e), &[]);
    }
    // Enormous sizes with real data behind them are refused by the config's bounds.
    refused(
        GruConfig::new(1, 70_000).validate(),
        is_config,
        &["hidden_size"],
    );
    refused(
        GruConfig::new(1 << 25, 4).validate(),
        is_config,
        &["input_size"],
    );
}

#[test]
fn options_that_contradict_the_file() {
    let b = |v: &[T]| st_bytes(v, &[]);
    let opts = |f: &dyn Fn(&mut ImportOptions)| {
        let mut o = ImportOptions::default();
        f(&mut o);
        o
    };
    // Two directions asked of a one-direction file, and the reverse.
    refused(
        import_bytes(
            b(&torch(1, 1, 3, 4, true)),
            None,
            &opts(&|o| o.direction = Some(Direction::Bidirectional)),
        ),
        is_shape,
        &["directions"],
    );
    refused(
        import_bytes(
            b(&onnx(2, 3, 4)),
            None,
            &opts(&|o| o.direction = Some(Direction::Forward)),
        ),
        is_shape,
        &["directions"],
    );
    // Layouts that cannot be batch-first.
    for v in [onnx(1, 3, 4), seed_cell(3, 4)] {
        refused(
            import_bytes(b(&v), None, &opts(&|o| o.batch_first = true)),
            is_arg,
            &["batch_first"],
        );
    }
    // Keras reset_after against the bias shape.
    refused(
        import_bytes(
            b(&keras(3, 4, Some(2))),
            None,
            &opts(&|o| o.reset_after = Some(false)),
        ),
        is_arg,
        &["reset_after"],
    );
    // Activations: unknown name, wrong count, left-over α/β, α/β without names.
    let bad_acts: [(&[&str], &[f32], &[f32]); 5] = [
        (&["Sigmoid", "Nope"], &[], &[]),
        (&["Sigmoid"], &[], &[]),
        (&["Sigmoid", "Tanh", "Sigmoid"], &[], &[]),
        (&["Sigmoid", "Tanh"], &[1.0], &[]),
        (&[], &[], &[0.5]),
    ];
    for (names, alpha, beta) in bad_acts {
        let o = opts(&|o| {
            o.activations = names.iter().map(|s| s.to_string()).collect();
            o.activation_alpha = alpha.to_vec();
            o.activation_beta = beta.to_vec();
        });
        refused(import_bytes(b(&onnx(1, 3, 4)), None, &o), is_arg, &[]);
    }
    // clip must be finite and positive.
    for c in [0.0, -1.0, f32::NAN, f32::INFINITY] {
        refused(
            import_bytes(b(&onnx(1, 3, 4)), None, &opts(&|o| o.clip = Some(c))),
            is_config,
            &["clip"],
        );
    }
    // go_backwards only runs forward.
    refused(
        import_bytes(b(&onnx(2, 3, 4)), None, &opts(&|o| o.go_backwards = true)),
        is_config,
        &["go_backwards"],
    );
    // Metadata that is not what it claims.
    for (k, v) in [
        ("framework", "caffe"),
        ("input_size", "-3"),
        ("num_layers", "two"),
        ("bias", "maybe"),
        ("direction", "sideways"),
        ("clip", "[1]"),
        ("activation_alpha", "[\"a\"]"),
        ("activations", "{}"),
        ("activation", "swish"),
    ] {
        let f = SafetensorsFile::from_bytes(st_bytes(&onnx(1, 3, 4), &[(k, v)]), "m").unwrap();
        let r = formats::options_from_metadata(&f.metadata().unwrap());
        refused(r, |e| is_parse(e) || is_arg(e), &[]);
    }
}

#[test]
fn lengths_in_files() {
    // Integer lengths are read, negative ones refused; floats are not lengths.
    let mut v = onnx(1, 3, 4);
    v.push(T {
        name: "sequence_lens".into(),
        dtype: "I32",
        shape: vec![3],
        data: [2i32, -1, 1].iter().flat_map(|x| x.to_le_bytes()).collect(),
    });
    v.push(t("floats", &[3], 0));
    let f = SafetensorsFile::from_bytes(st_bytes(&v, &[]), "len.safetensors").unwrap();
    refused(f.get_lengths("sequence_lens"), is_arg, &["-1"]);
    refused(f.get_lengths("floats"), is_dtype, &["floats"]);
    assert!(f.get_lengths("absent").unwrap().is_none());
}
