//! Bad input at every public entry point is refused with a typed [`Error`], never a panic:
//! malformed safetensors files in every layout, malformed `.npy` files, inconsistent sequence
//! inputs, empty problems (T = 0, B = 0), absurd sizes; NaN/Inf propagation on every path; GPU
//! faults (impossible workspaces, a destroyed device); and the CLI's one-line refusals.
//!
//! GPU parts are skipped with a message when no adapter exists, unless `REQUIRE_GPU=1`.

mod gpu_common;

use std::path::PathBuf;
use std::process::Command;

use gpu_common::{Rng, ctx, random_gru};
use wgpu_gru::cpu::CpuGru;
use wgpu_gru::formats::{self, Format, ImportOptions, SafetensorsFile};
use wgpu_gru::gpu::{GpuContext, GpuGru};
use wgpu_gru::{Direction, Error, Gru, GruConfig, GruOutput, SeqInput, Variant, npy, reference};

// ---------------------------------------------------------------------------------------------
// Building safetensors files by hand, so that they can be wrong in every way.

/// One tensor of a hand-built safetensors file: name, dtype, shape, raw data.
#[derive(Clone, Debug)]
struct T {
    name: String,
    dtype: &'static str,
    shape: Vec<usize>,
    data: Vec<u8>,
}

fn t(name: &str, shape: &[usize], seed: u64) -> T {
    let n: usize = shape.iter().product();
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    T {
        name: name.into(),
        dtype: "F32",
        shape: shape.to_vec(),
        data: rng
            .vec(n, 0.5)
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
    }
}

/// A tensor that declares `shape` but holds no data (its shape has a zero somewhere, or is
/// meant to be refused).
fn z(name: &str, shape: &[usize]) -> T {
    T {
        name: name.into(),
        dtype: "F32",
        shape: shape.to_vec(),
        data: Vec::new(),
    }
}

/// Serialises `tensors` (in order) with an optional `__metadata__`, without any checking.
fn st_bytes(tensors: &[T], meta: &[(&str, &str)]) -> Vec<u8> {
    let mut parts = Vec::new();
    if !meta.is_empty() {
        let m: Vec<String> = meta
            .iter()
            .map(|(k, v)| format!("{}:{}", json_str(k), json_str(v)))
            .collect();
        parts.push(format!("\"__metadata__\":{{{}}}", m.join(",")));
    }
    let mut off = 0usize;
    let mut data = Vec::new();
    for t in tensors {
        let shape: Vec<String> = t.shape.iter().map(|d| d.to_string()).collect();
        parts.push(format!(
            "{}:{{\"dtype\":\"{}\",\"shape\":[{}],\"data_offsets\":[{off},{}]}}",
            json_str(&t.name),
            t.dtype,
            shape.join(","),
            off + t.data.len()
        ));
        off += t.data.len();
        data.extend_from_slice(&t.data);
    }
    raw_st(&format!("{{{}}}", parts.join(",")), &data)
}

fn json_str(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// A safetensors file from a header text and data bytes.
fn raw_st(header: &str, data: &[u8]) -> Vec<u8> {
    let mut h = header.as_bytes().to_vec();
    while !h.len().is_multiple_of(8) {
        h.push(b' ');
    }
    let mut b = (h.len() as u64).to_le_bytes().to_vec();
    b.extend_from_slice(&h);
    b.extend_from_slice(data);
    b
}

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

/// A valid PyTorch state_dict: `layers` layers, 1 or 2 directions, H, I, with or without bias.
fn torch(layers: usize, dirs: usize, h: usize, i: usize, bias: bool) -> Vec<T> {
    let mut v = Vec::new();
    let mut seed = 1;
    for k in 0..layers {
        for d in 0..dirs {
            let sfx = if d == 1 { "_reverse" } else { "" };
            let in_k = if k == 0 { i } else { dirs * h };
            v.push(t(&format!("weight_ih_l{k}{sfx}"), &[3 * h, in_k], seed));
            v.push(t(&format!("weight_hh_l{k}{sfx}"), &[3 * h, h], seed + 1));
            if bias {
                v.push(t(&format!("bias_ih_l{k}{sfx}"), &[3 * h], seed + 2));
                v.push(t(&format!("bias_hh_l{k}{sfx}"), &[3 * h], seed + 3));
            }
            seed += 4;
        }
    }
    v
}

fn keras(h: usize, i: usize, bias_rows: Option<usize>) -> Vec<T> {
    let mut v = vec![
        t("kernel", &[i, 3 * h], 1),
        t("recurrent_kernel", &[h, 3 * h], 2),
    ];
    match bias_rows {
        Some(2) => v.push(t("bias", &[2, 3 * h], 3)),
        Some(_) => v.push(t("bias", &[3 * h], 3)),
        None => {}
    }
    v
}

fn onnx(d: usize, h: usize, i: usize) -> Vec<T> {
    vec![
        t("W", &[d, 3 * h, i], 1),
        t("R", &[d, 3 * h, h], 2),
        t("B", &[d, 6 * h], 3),
    ]
}

fn seed_cell(h: usize, i: usize) -> Vec<T> {
    let mut v: Vec<T> = ["W_z", "W_r", "W_h"]
        .iter()
        .enumerate()
        .map(|(k, n)| t(n, &[h, h + i], k as u64))
        .collect();
    for (k, n) in ["b_z", "b_r", "b_h"].iter().enumerate() {
        v.push(t(n, &[h], 10 + k as u64));
    }
    v
}

fn without(mut v: Vec<T>, name: &str) -> Vec<T> {
    let before = v.len();
    v.retain(|t| t.name != name);
    assert_eq!(v.len() + 1, before, "no tensor {name}");
    v
}

fn replace(mut v: Vec<T>, new: T) -> Vec<T> {
    let i = v.iter().position(|t| t.name == new.name).unwrap();
    v[i] = new;
    v
}

/// Asserts `r` is an error matching `pred`, and that its message mentions every needle.
#[track_caller]
fn refused<X: std::fmt::Debug>(
    r: wgpu_gru::Result<X>,
    pred: impl Fn(&Error) -> bool,
    needles: &[&str],
) {
    match r {
        Ok(v) => panic!("accepted: {v:?}"),
        Err(e) => {
            assert!(pred(&e), "wrong error kind: {e:?}");
            let msg = e.to_string();
            for n in needles {
                assert!(msg.contains(n), "{n:?} not in {msg:?}");
            }
            // Wrapped arithmetic (`3 · usize::MAX` and the like) shows up as numbers just below
            // 2^64 in messages; `usize::MAX` itself is a value the tests declare.
            for num in msg.split(|c: char| !c.is_ascii_digit()) {
                if let Ok(v) = num.parse::<u128>() {
                    let near_wrap = v > (u64::MAX - (1 << 20)) as u128 && v < u64::MAX as u128;
                    assert!(!near_wrap, "overflowed arithmetic in the message: {msg}");
                }
            }
        }
    }
}

fn is_parse(e: &Error) -> bool {
    matches!(e, Error::Parse { .. })
}
fn is_shape(e: &Error) -> bool {
    matches!(e, Error::ShapeMismatch { .. })
}
fn is_missing(e: &Error) -> bool {
    matches!(e, Error::MissingTensor { .. })
}
fn is_dtype(e: &Error) -> bool {
    matches!(e, Error::UnsupportedDtype { .. })
}
fn is_arg(e: &Error) -> bool {
    matches!(e, Error::InvalidArgument { .. })
}
fn is_config(e: &Error) -> bool {
    matches!(e, Error::InvalidConfig(_))
}
fn is_layout(e: &Error) -> bool {
    matches!(e, Error::UnknownLayout(_))
}
fn is_overflow(e: &Error) -> bool {
    matches!(e, Error::Overflow(_))
}

// ---------------------------------------------------------------------------------------------
// Safetensors files.

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
    for bytes in [
        vec![],
        vec![1, 2, 3],
        8u64.to_le_bytes().to_vec(),
        // Header length larger than the file, and absurdly large.
        [100u64.to_le_bytes().as_slice(), b"{}"].concat(),
        [u64::MAX.to_le_bytes().as_slice(), b"{}"].concat(),
        // Not JSON, JSON of the wrong type, unknown dtype, offsets past the data.
        raw_st("{nope", &[]),
        raw_st("[1, 2]", &[]),
        raw_st(
            r#"{"a":{"dtype":"F99","shape":[1],"data_offsets":[0,4]}}"#,
            &[0; 4],
        ),
        raw_st(
            r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,8]}}"#,
            &[0; 4],
        ),
        raw_st(
            r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}"#,
            &[0; 4],
        ),
        raw_st(
            r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}"#,
            &[0; 4],
        ),
        raw_st(
            r#"{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}"#,
            &[0; 4],
        ),
        // Shape products that overflow.
        raw_st(
            r#"{"a":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,0]}}"#,
            &[],
        ),
        raw_st(
            r#"{"a":{"dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,0]}}"#,
            &[],
        ),
    ] {
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

// ---------------------------------------------------------------------------------------------
// .npy files.

fn npy_bytes(major: u8, dict: &str, data: &[u8]) -> Vec<u8> {
    let mut b = b"\x93NUMPY".to_vec();
    b.push(major);
    b.push(0);
    if major == 1 {
        b.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    } else {
        b.extend_from_slice(&(dict.len() as u32).to_le_bytes());
    }
    b.extend_from_slice(dict.as_bytes());
    b.extend_from_slice(data);
    b
}

fn dict(descr: &str, shape: &str) -> String {
    format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}")
}

#[test]
fn malformed_npy() {
    let p = |b: &[u8]| npy::parse(b, "a.npy");
    refused(
        p(b"\x93NUMPX\x01\x00\x00\x00"),
        is_parse,
        &["a.npy", "magic"],
    );
    refused(p(b"\x93NUMPY\x09\x00\x00\x00"), is_parse, &["version"]);
    refused(
        p(b"\x93NUMPY\x02\x00\xff\xff\xff\xff{}"),
        is_parse,
        &["header"],
    );
    refused(p(b"\x93NUMPY\x01\x00\x40\x00{}"), is_parse, &["truncated"]);
    refused(
        p(&npy_bytes(1, &dict("<f4", "(2,)"), &[0; 7])),
        is_parse,
        &["truncated"],
    );
    refused(
        p(&npy_bytes(1, &dict("<f4", "(2,)"), &[0; 9])),
        is_parse,
        &["trailing"],
    );
    for descr in ["<u4", "<c8", "<i2", "<U3", "O", "<f16", ""] {
        refused(p(&npy_bytes(1, &dict(descr, "(0,)"), &[])), is_dtype, &[]);
    }
    refused(
        p(&npy_bytes(
            1,
            &dict("<f8", "(4294967296, 4294967296, 4)"),
            &[],
        )),
        is_overflow,
        &["a.npy"],
    );
    refused(
        p(&npy_bytes(1, &dict("<f4", "(18446744073709551616,)"), &[])),
        is_parse,
        &[],
    );
    refused(p(&npy_bytes(1, &dict("<f4", "(-2,)"), &[])), is_parse, &[]);
    let many = format!("({})", vec!["1"; 65].join(", "));
    refused(
        p(&npy_bytes(1, &dict("<f4", &many), &[0; 4])),
        is_parse,
        &["dimensions"],
    );
    refused(
        p(&npy_bytes(1, "{'descr': '<f4', 'shape': (1,), }", &[0; 4])),
        is_parse,
        &["fortran_order"],
    );
    refused(p(&npy_bytes(1, "\u{e9}", &[])), is_parse, &["ASCII"]);
    refused(p(&npy_bytes(3, "\u{e9}", &[])), is_parse, &[]);
    // Typed conversions.
    let ints = p(&npy_bytes(
        1,
        &dict("<i8", "(2,)"),
        &[[3u8, 0, 0, 0, 0, 0, 0, 0], [0xff; 8]].concat(),
    ))
    .unwrap();
    refused(ints.clone().into_f32("x"), is_dtype, &["int64"]);
    refused(ints.into_lengths("lengths"), is_arg, &["lengths[1] = -1"]);
    let floats = p(&npy_bytes(1, &dict("<f4", "(1,)"), &[0; 4])).unwrap();
    refused(floats.into_lengths("lengths"), is_dtype, &["float32"]);
    // Reading a file that is not there, or a directory.
    refused(
        npy::read("/nonexistent/a.npy"),
        |e| matches!(e, Error::Io { .. }),
        &["/nonexistent/a.npy"],
    );
    refused(
        npy::read(std::env::temp_dir()),
        |e| matches!(e, Error::Io { .. }),
        &[],
    );
    // Writing: mismatched element count, a path that is not a file.
    refused(npy::to_bytes_f32(&[2, 2], &[0.0; 3]), is_shape, &[]);
    refused(npy::to_bytes_f32(&[usize::MAX, 2], &[]), is_overflow, &[]);
    refused(npy::write_f32("", &[1], &[0.0]), is_arg, &[]);
}

// ---------------------------------------------------------------------------------------------
// Sequence inputs on every path.

fn small_gru(variant: Variant, direction: Direction, layers: usize) -> Gru {
    random_gru(
        GruConfig::new(3, 5)
            .with_variant(variant)
            .with_direction(direction)
            .with_layers(layers),
        7,
    )
}

/// The implementations, tested one by one so that a failure names its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Impl {
    Reference,
    Cpu,
    Gpu,
}

/// Runs `input` on `which`: the CPU path with one and with two threads; the GPU path only when
/// there is an adapter (nothing otherwise).
fn run_on(
    which: Impl,
    gru: &Gru,
    input: &SeqInput<'_>,
) -> Vec<(&'static str, wgpu_gru::Result<GruOutput>)> {
    match which {
        Impl::Reference => vec![("reference", reference::forward(gru, input))],
        Impl::Cpu => vec![
            ("cpu", CpuGru::new(gru).and_then(|c| c.forward(input))),
            (
                "cpu x2",
                CpuGru::new(gru).and_then(|c| c.with_threads(2).forward(input)),
            ),
        ],
        Impl::Gpu => match ctx() {
            Some(ctx) => vec![("gpu", GpuGru::new(ctx, gru).and_then(|g| g.forward(input)))],
            None => Vec::new(),
        },
    }
}

/// Runs `input` on every path.
fn all_paths(gru: &Gru, input: &SeqInput<'_>) -> Vec<(&'static str, wgpu_gru::Result<GruOutput>)> {
    [Impl::Reference, Impl::Cpu, Impl::Gpu]
        .into_iter()
        .flat_map(|w| run_on(w, gru, input))
        .collect()
}

/// Declares one test per implementation for a checker `fn(Impl)`.
macro_rules! per_impl {
    ($check:ident: $(#[$ra:meta])* $reference:ident, $(#[$ca:meta])* $cpu:ident,
     $(#[$ga:meta])* $gpu:ident) => {
        #[test]
        $(#[$ra])*
        fn $reference() {
            $check(Impl::Reference)
        }
        #[test]
        $(#[$ca])*
        fn $cpu() {
            $check(Impl::Cpu)
        }
        #[test]
        $(#[$ga])*
        fn $gpu() {
            $check(Impl::Gpu)
        }
    };
}

#[test]
fn bad_sequence_inputs() {
    let gru = small_gru(Variant::ResetAfter, Direction::Bidirectional, 2);
    let (t, b, i) = (4, 3, 3);
    let x = vec![0.25; t * b * i];
    let h0 = vec![0.0; 2 * 2 * b * 5];
    type Case<'a> = (SeqInput<'a>, fn(&Error) -> bool, &'a [&'a str]);
    let cases: Vec<Case<'_>> = vec![
        (SeqInput::new(&x[1..], t, b), is_shape, &["x"]),
        (SeqInput::new(&x, t, b + 1), is_shape, &["x"]),
        (SeqInput::new(&x, t, b).with_h0(&h0[1..]), is_shape, &["h0"]),
        (
            SeqInput::new(&x, t, b).with_lengths(&[1, 2]),
            is_shape,
            &["lengths"],
        ),
        (
            SeqInput::new(&x, t, b).with_lengths(&[1, 2, 3, 4]),
            is_shape,
            &["lengths"],
        ),
        (
            SeqInput::new(&x, t, b).with_lengths(&[1, 0, 3]),
            is_arg,
            &["lengths[1] = 0"],
        ),
        (
            SeqInput::new(&x, t, b).with_lengths(&[1, 5, 3]),
            is_arg,
            &["lengths[1] = 5"],
        ),
        (
            SeqInput::new(&x, t, b).with_lengths(&[usize::MAX, 1, 1]),
            is_arg,
            &["lengths[0]"],
        ),
        // Sizes whose products overflow, with no data behind them.
        (SeqInput::new(&[], usize::MAX, 2), is_overflow, &[]),
        (SeqInput::new(&[], 1 << 40, 1 << 40), is_overflow, &[]),
        (SeqInput::new(&[], 0, usize::MAX), is_overflow, &[]),
        (SeqInput::new(&[], usize::MAX, 0), is_overflow, &[]),
    ];
    for (input, pred, needles) in &cases {
        for (path, r) in all_paths(&gru, input) {
            match r {
                Ok(_) => panic!("{path} accepted {input:?}"),
                Err(e) => {
                    assert!(pred(&e), "{path}: wrong error kind {e:?} for {input:?}");
                    for n in *needles {
                        assert!(e.to_string().contains(n), "{path}: {n:?} not in {e}");
                    }
                }
            }
        }
    }
    // go_backwards takes no lengths.
    let mut c = GruConfig::new(3, 5);
    c.go_backwards = true;
    let g = random_gru(c, 3);
    let input = SeqInput::new(&x, t, b).with_lengths(&[1, 2, 3]);
    for (path, r) in all_paths(&g, &input) {
        assert!(
            matches!(r, Err(Error::InvalidArgument { .. })),
            "{path}: {r:?}"
        );
    }
    // Weights that disagree with their config are refused by every constructor.
    let mut bad = small_gru(Variant::ResetAfter, Direction::Forward, 1);
    bad.weights.layers[0][0].b_hh.pop();
    refused(bad.validate(), is_shape, &["b_hh"]);
    refused(
        reference::forward(&bad, &SeqInput::new(&x, t, b)),
        is_shape,
        &["b_hh"],
    );
    refused(CpuGru::new(&bad), is_shape, &["b_hh"]);
    if let Some(ctx) = ctx() {
        refused(GpuGru::new(ctx, &bad), is_shape, &["b_hh"]);
    }
    let mut bad = small_gru(Variant::ResetAfter, Direction::Forward, 2);
    bad.weights.layers.pop();
    refused(CpuGru::new(&bad), is_shape, &["layers"]);
    let mut bad = small_gru(Variant::ResetAfter, Direction::Bidirectional, 1);
    bad.config.direction = Direction::Forward;
    refused(CpuGru::new(&bad), is_shape, &["directions"]);
}

/// T = 0 and B = 0 are not errors: `output` is empty, and `h_n` is h0 (zeros without one), the
/// state after no steps. Every path agrees.
fn empty_problems(which: Impl) {
    for (variant, direction, layers) in [
        (Variant::ResetAfter, Direction::Forward, 1),
        (Variant::ResetBefore, Direction::Bidirectional, 2),
    ] {
        let gru = small_gru(variant, direction, layers);
        let ld = layers * direction.count();
        for (t, b) in [(0usize, 0usize), (0, 3), (4, 0)] {
            let h0: Vec<f32> = (0..ld * b * 5).map(|v| v as f32 * 0.01).collect();
            for with_h0 in [false, true] {
                let mut input = SeqInput::new(&[], t, b);
                if with_h0 {
                    input = input.with_h0(&h0);
                }
                let lens = vec![1; b];
                if t > 0 {
                    input = input.with_lengths(&lens);
                }
                for (path, r) in run_on(which, &gru, &input) {
                    let out = r.unwrap_or_else(|e| panic!("{path} T={t} B={b}: {e}"));
                    assert!(out.output.is_empty(), "{path}");
                    let want = if with_h0 {
                        h0.clone()
                    } else {
                        vec![0.0; ld * b * 5]
                    };
                    assert_eq!(out.h_n, want, "{path} T={t} B={b} h0={with_h0}");
                }
            }
        }
    }
    // An empty workspace is refused (it would be a zero-sized binding).
    if which == Impl::Gpu
        && let Some(ctx) = ctx()
    {
        let g = GpuGru::new(ctx, &small_gru(Variant::ResetAfter, Direction::Forward, 1)).unwrap();
        refused(g.workspace(0, 3), is_arg, &["T"]);
        refused(g.workspace(3, 0), is_arg, &["B"]);
    }
}

per_impl!(empty_problems: empty_problems_reference, empty_problems_cpu, empty_problems_gpu);

// ---------------------------------------------------------------------------------------------
// NaN and Inf.

/// Where each value is NaN, and the finite values, compared between two outputs.
fn same_nan_pattern(a: &[f32], b: &[f32]) -> Result<(), String> {
    if a.len() != b.len() {
        return Err(format!("lengths {} and {}", a.len(), b.len()));
    }
    for (k, (x, y)) in a.iter().zip(b).enumerate() {
        if x.is_nan() != y.is_nan() {
            return Err(format!("element {k}: {x} vs {y}"));
        }
        if !x.is_nan() && (x - y).abs() > 1e-4 && x != y {
            return Err(format!("element {k}: {x} vs {y}"));
        }
    }
    Ok(())
}

/// A NaN in row 0's input at step 1 makes row 0's outputs NaN from step 1 on (in that row's
/// processing order) and its h_n NaN; the other rows are untouched. NaN in padding past a row's
/// length is never read. The same holds on every path.
fn nan_propagates_like_the_frameworks(which: Impl) {
    for variant in [Variant::ResetAfter, Variant::ResetBefore] {
        let gru = small_gru(variant, Direction::Forward, 2);
        let (t, b, i, h) = (4usize, 3usize, 3usize, 5usize);
        let mut rng = Rng(11);
        let clean = rng.vec(t * b * i, 1.0);
        let mut dirty = clean.clone();
        dirty[b * i + 1] = f32::NAN; // x[t=1, b=0, 1]
        // Row 2 has length 2: NaN at step 3 is padding.
        dirty[(3 * b + 2) * i] = f32::NAN;
        let lens = [4, 4, 2];
        let want =
            reference::forward(&gru, &SeqInput::new(&clean, t, b).with_lengths(&lens)).unwrap();
        let input = SeqInput::new(&dirty, t, b).with_lengths(&lens);
        for (path, r) in run_on(which, &gru, &input) {
            let out = r.unwrap_or_else(|e| panic!("{path}: {e}"));
            for tt in 0..t {
                for bb in 0..b {
                    let o = &out.output[(tt * b + bb) * h..(tt * b + bb + 1) * h];
                    let w = &want.output[(tt * b + bb) * h..(tt * b + bb + 1) * h];
                    if bb == 0 && tt >= 1 {
                        assert!(
                            o.iter().all(|v| v.is_nan()),
                            "{path} {variant:?}: output[t={tt}, b=0] = {o:?}, expected NaN"
                        );
                    } else {
                        same_nan_pattern(o, w).unwrap_or_else(|e| {
                            panic!("{path} {variant:?}: output[t={tt}, b={bb}]: {e}")
                        });
                    }
                }
            }
            for l in 0..2 {
                for bb in 0..b {
                    let s = &out.h_n[(l * b + bb) * h..(l * b + bb + 1) * h];
                    if bb == 0 {
                        assert!(s.iter().all(|v| v.is_nan()), "{path}: h_n[{l}, 0] = {s:?}");
                    } else {
                        let w = &want.h_n[(l * b + bb) * h..(l * b + bb + 1) * h];
                        same_nan_pattern(s, w).unwrap_or_else(|e| panic!("{path}: h_n: {e}"));
                    }
                }
            }
        }
        // NaN in h0 of one row poisons that row only.
        let mut h0 = vec![0.1f32; 2 * b * h];
        h0[h + 2] = f32::NAN; // layer 0, row 1, unit 2
        let input = SeqInput::new(&clean, t, b).with_h0(&h0);
        for (path, r) in run_on(which, &gru, &input) {
            let out = r.unwrap_or_else(|e| panic!("{path}: {e}"));
            for tt in 0..t {
                for bb in 0..b {
                    let o = &out.output[(tt * b + bb) * h..(tt * b + bb + 1) * h];
                    assert_eq!(
                        o.iter().any(|v| v.is_nan()),
                        bb == 1,
                        "{path}: output[t={tt}, b={bb}] = {o:?}"
                    );
                }
            }
        }
    }
}

/// NaN in the weights reaches every output, on every path (nothing hides it).
fn nan_weights_poison_everything(which: Impl) {
    let mut gru = small_gru(Variant::ResetAfter, Direction::Forward, 1);
    gru.weights.layers[0][0].w_hh[0] = f32::NAN; // r gate, unit 0, from h unit 0
    gru.weights.layers[0][0].b_ih[5 + 1] = f32::NAN; // z gate, unit 1
    let (t, b) = (3, 2);
    let x = Rng(5).vec(t * b * 3, 1.0);
    for (path, r) in run_on(which, &gru, &SeqInput::new(&x, t, b)) {
        let out = r.unwrap_or_else(|e| panic!("{path}: {e}"));
        // Unit 1's z is NaN from step 0; every unit is NaN from step 1 (h feeds every gate).
        for bb in 0..b {
            assert!(out.output[bb * 5 + 1].is_nan(), "{path}: {:?}", out.output);
        }
        assert!(
            out.output[b * 5..].iter().all(|v| v.is_nan()),
            "{path}: {:?}",
            out.output
        );
        assert!(out.h_n.iter().all(|v| v.is_nan()), "{path}");
    }
}

/// ±Inf are ordinary IEEE values: every path computes the same thing from them (saturating
/// activations turn them finite; `∞ − ∞` and `0 · ∞` give NaN).
fn infinities_are_ieee_values(which: Impl) {
    let gru = small_gru(Variant::ResetBefore, Direction::Bidirectional, 1);
    let (t, b) = (3, 4);
    let mut x = Rng(9).vec(t * b * 3, 1.0);
    x[0] = f32::INFINITY;
    x[4] = f32::NEG_INFINITY;
    x[3 * 3 + 1] = f32::INFINITY;
    x[3 * 3 + 2] = f32::NEG_INFINITY;
    let want = reference::forward(&gru, &SeqInput::new(&x, t, b)).unwrap();
    for (path, r) in run_on(which, &gru, &SeqInput::new(&x, t, b)) {
        let out = r.unwrap_or_else(|e| panic!("{path}: {e}"));
        same_nan_pattern(&out.output, &want.output).unwrap_or_else(|e| panic!("{path}: {e}"));
        same_nan_pattern(&out.h_n, &want.h_n).unwrap_or_else(|e| panic!("{path}: {e}"));
    }
}

per_impl!(nan_propagates_like_the_frameworks: nan_propagates_reference,
    nan_propagates_cpu, nan_propagates_gpu);
per_impl!(nan_weights_poison_everything: nan_weights_reference,
    nan_weights_cpu, nan_weights_gpu);
per_impl!(infinities_are_ieee_values: infinities_reference,
    infinities_cpu, infinities_gpu);

// ---------------------------------------------------------------------------------------------
// GPU faults.

/// A workspace no device can hold is a typed error, before any allocation.
#[test]
fn impossible_workspace_is_a_typed_error() {
    let Some(ctx) = ctx() else { return };
    let g = GpuGru::new(ctx, &small_gru(Variant::ResetAfter, Direction::Forward, 1)).unwrap();
    for (t, b) in [
        (1usize << 30, 1usize << 30),
        (1 << 40, 3),
        (usize::MAX, 2),
        (3, 1 << 34),
    ] {
        let r = g.workspace(t, b);
        refused(
            r,
            |e| matches!(e, Error::DeviceLimit { .. } | Error::Overflow(_)),
            &[],
        );
    }
    // The layer still works afterwards.
    let x = vec![0.5; 2 * 3];
    g.forward(&SeqInput::new(&x, 2, 1)).unwrap();
}

/// A layer on a device of its own (the shared one must survive for the other tests), and that
/// device destroyed.
fn destroyed() -> Option<(GpuContext, wgpu_gru::Gru, GpuGru)> {
    ctx()?;
    let own = GpuContext::new_default().expect("second device");
    let gru = small_gru(Variant::ResetAfter, Direction::Forward, 1);
    let g = GpuGru::new(&own, &gru).unwrap();
    let x = vec![0.5; 2 * 3];
    g.forward(&SeqInput::new(&x, 2, 1)).unwrap();
    own.device.destroy();
    Some((own, gru, g))
}

/// After the device is destroyed, forwards return `Error::DeviceLost` (same shape, or a new shape that
/// needs a new workspace), never panic.
#[test]
fn forward_on_destroyed_device_is_an_error() {
    let Some((own, _gru, g)) = destroyed() else {
        return;
    };
    let x = vec![0.5; 2 * 3];
    for _ in 0..2 {
        let r = g.forward(&SeqInput::new(&x, 2, 1));
        refused(r, |e| matches!(e, Error::DeviceLost(_)), &[]);
        let r = g.forward(&SeqInput::new(&x, 1, 2));
        refused(r, |e| matches!(e, Error::DeviceLost(_)), &[]);
    }
    assert!(own.check_lost().is_err());
}

/// Building a layer on a destroyed device returns `Error::DeviceLost`, never panics.
#[test]
fn new_on_destroyed_device_is_an_error() {
    let Some((own, gru, g)) = destroyed() else {
        return;
    };
    refused(
        GpuGru::new(&own, &gru),
        |e| matches!(e, Error::DeviceLost(_)),
        &[],
    );
    refused(
        g.workspace(3, 3),
        |e| matches!(e, Error::DeviceLost(_)),
        &[],
    );
}

/// On a device the crate created, a wgpu error that escapes every error scope (here the app's own
/// invalid buffer) is returned once, as `Error::Gpu`, by the next call, instead of wgpu's
/// default handler panicking; the device is not lost, so later calls work.
#[test]
fn uncaptured_error_is_reported_once() {
    if ctx().is_none() {
        return;
    }
    let own = GpuContext::new_default().expect("second device");
    let gru = small_gru(Variant::ResetAfter, Direction::Forward, 1);
    let g = GpuGru::new(&own, &gru).unwrap();
    let x = vec![0.5; 2 * 3];
    let want = g.forward(&SeqInput::new(&x, 2, 1)).unwrap();
    // MAP_READ with MAP_WRITE is invalid without MAPPABLE_PRIMARY_BUFFERS.
    let _bad = own.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("invalid on purpose"),
        size: 16,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::MAP_WRITE,
        mapped_at_creation: false,
    });
    refused(
        g.forward(&SeqInput::new(&x, 2, 1)),
        |e| matches!(e, Error::Gpu(m) if m.contains("uncaptured")),
        &[],
    );
    let again = g.forward(&SeqInput::new(&x, 2, 1)).unwrap();
    assert_eq!(again.output, want.output);
    assert!(own.check_lost().is_ok());
}

// ---------------------------------------------------------------------------------------------
// The CLI.

fn bin() -> PathBuf {
    std::env::var_os("WGPU_GRU_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_wgpu-gru")))
}

struct TempDir(PathBuf);
impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("wgpu-gru-robust-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
    fn s(&self, name: &str) -> String {
        self.path(name).display().to_string()
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

fn run_cli(args: &[String], limit_kib: Option<u64>) -> std::process::Output {
    match limit_kib {
        None => Command::new(bin()).args(args).output().unwrap(),
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
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
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

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
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
            let out = run_cli(
                &args(&[
                    "run",
                    "--weights",
                    &w,
                    "--input",
                    &dir.s("x.npy"),
                    "--output",
                    &dir.s("y.npy"),
                    "--state-out",
                    &dir.s("s.npy"),
                    "--backend",
                    backend,
                ]),
                None,
            );
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
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
    let run = |w: &str| {
        args(&[
            "run",
            "--weights",
            w,
            "--input",
            &dir.s("x.npy"),
            "--output",
            &dir.s("y.npy"),
            "--state-out",
            &dir.s("s.npy"),
            "--backend",
            "reference",
        ])
    };
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
    std::fs::write(
        dir.path("garbage.safetensors"),
        b"\xff\xff\xff\xff\xff\xff\xff\xff{",
    )
    .unwrap();
    cli_refuses(
        &dir,
        &run(&dir.s("garbage.safetensors")),
        None,
        &["garbage.safetensors"],
    );
    std::fs::write(dir.path("empty.safetensors"), b"").unwrap();
    cli_refuses(
        &dir,
        &run(&dir.s("empty.safetensors")),
        None,
        &["empty.safetensors"],
    );
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
    let base = |y: &str, s: &str| {
        args(&[
            "run",
            "--weights",
            &w,
            "--input",
            &dir.s("x.npy"),
            "--output",
            y,
            "--state-out",
            s,
            "--backend",
            "reference",
        ])
    };
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
    let run = |x: &str, extra: &[&str]| {
        let mut a = args(&[
            "run",
            "--weights",
            &w,
            "--input",
            x,
            "--output",
            &dir.s("y.npy"),
            "--backend",
            "cpu",
        ]);
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    npy::write_f32(dir.path("x.npy"), &[4, 2, 3], &[0.5; 24]).unwrap();
    let lens = |name: &str, v: &[i64]| {
        let mut b = npy_bytes(1, &dict("<i8", &format!("({},)", v.len())), &[]);
        for x in v {
            b.extend_from_slice(&x.to_le_bytes());
        }
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
    let x = npy_bytes(
        1,
        &dict("<f4", "(4611686018427387904, 4611686018427387904, 3)"),
        &[],
    );
    std::fs::write(dir.path("xo.npy"), x).unwrap();
    cli_refuses(&dir, &run(&dir.s("xo.npy"), &[]), None, &["xo.npy"]);
    let x = npy_bytes(1, &dict("<f4", "(0, 4611686018427387904, 3)"), &[]);
    std::fs::write(dir.path("xb.npy"), x).unwrap();
    cli_refuses(&dir, &run(&dir.s("xb.npy"), &[]), None, &["overflow"]);
}

/// T = 0 with a huge B asks for a huge h_n from a 128-byte file: refused when the memory cannot
/// be had (here, under a 2 GiB address-space limit), not an allocation abort.
#[test]
fn cli_refuses_outputs_too_large_to_allocate() {
    let dir = TempDir::new("alloc");
    let w = write_weights(&dir, "w.safetensors", &torch(1, 2, 5, 3, true));
    let x = npy_bytes(1, &dict("<f4", "(0, 2000000000, 3)"), &[]);
    std::fs::write(dir.path("x.npy"), x).unwrap();
    for backend in ["reference", "cpu"] {
        let a = args(&[
            "run",
            "--weights",
            &w,
            "--input",
            &dir.s("x.npy"),
            "--output",
            &dir.s("y.npy"),
            "--state-out",
            &dir.s("s.npy"),
            "--backend",
            backend,
        ]);
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
        let a = args(&[
            "run",
            "--weights",
            &w,
            "--input",
            &dir.s("x.npy"),
            "--output",
            &dir.s("y.npy"),
            "--backend",
            backend,
        ]);
        let out = run_cli(&a, None);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (_, y) = npy::read_f32(dir.path("y.npy")).unwrap();
        // Row 0 is NaN at both steps, row 1 is finite.
        for (k, v) in y.iter().enumerate() {
            let row = (k / 5) % 2;
            assert_eq!(v.is_nan(), row == 0, "{backend}: y[{k}] = {v}");
        }
    }
}
