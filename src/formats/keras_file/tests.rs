//! The golden Keras files read into layers (and run through the f64 reference against Keras's
//! own predictions), and hostile files refused.

use std::io::{Cursor, Read, Write};

use zip::write::SimpleFileOptions;

use super::*;
use crate::config::{Activation, Direction, Variant};
use crate::formats::SafetensorsFile;
use crate::reference;
use crate::{Batch, SeqInput, Steps};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/models/");

fn bytes(name: &str) -> Vec<u8> {
    std::fs::read(format!("{DIR}{name}")).unwrap()
}

fn model(name: &str) -> KerasModel {
    read(&bytes(name), name).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn zip_of(entries: &[(&str, &[u8])], method: zip::CompressionMethod) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let opts = SimpleFileOptions::default()
        .compression_method(method)
        .large_file(true);
    for (n, b) in entries {
        w.start_file(*n, opts).unwrap();
        w.write_all(b).unwrap();
    }
    w.finish().unwrap().into_inner()
}

fn entries(keras: &[u8]) -> (String, Vec<u8>) {
    let mut z = zip::ZipArchive::new(Cursor::new(keras)).unwrap();
    let mut c = String::new();
    z.by_name("config.json")
        .unwrap()
        .read_to_string(&mut c)
        .unwrap();
    let mut w = Vec::new();
    z.by_name("model.weights.h5")
        .unwrap()
        .read_to_end(&mut w)
        .unwrap();
    (c, w)
}

fn keras_with(config: &str, weights: &[u8]) -> Vec<u8> {
    zip_of(
        &[
            ("config.json", config.as_bytes()),
            ("model.weights.h5", weights),
        ],
        zip::CompressionMethod::Stored,
    )
}

/// (units, input, return_sequences, go_backwards, reset_after, has bias, f activation).
fn gru_of(l: &KerasLayer) -> (usize, usize, bool, bool, bool, bool, Activation) {
    match l {
        KerasLayer::Gru {
            gru,
            return_sequences,
            ..
        } => {
            let c = &gru.config;
            assert!(c.batch_first);
            assert_eq!(c.num_layers, 1);
            assert_eq!(c.direction, Direction::Forward);
            let cell = &gru.weights.layers[0][0];
            (
                c.hidden_size,
                c.input_size,
                *return_sequences,
                c.go_backwards,
                c.variant == Variant::ResetAfter,
                cell.b_ih.iter().chain(&cell.b_hh).any(|&b| b != 0.0),
                c.activations[0].f,
            )
        }
        other => panic!("not a GRU: {other:?}"),
    }
}

fn dense_of(l: &KerasLayer) -> (usize, usize, DenseActivation) {
    match l {
        KerasLayer::Dense {
            dense, activation, ..
        } => (dense.in_features, dense.out_features, *activation),
        other => panic!("not a Dense: {other:?}"),
    }
}

#[test]
fn golden_layer_lists() {
    use DenseActivation as A;
    let sig = Activation::Sigmoid;
    for f in ["pub_k_seed.keras", "pub_k_seed_h5.h5"] {
        let m = model(f);
        assert_eq!(m.name, "sequential");
        assert_eq!((m.input_steps, m.input_features), (Some(16), Some(4)));
        assert_eq!(m.layers.len(), 2, "{f}");
        assert_eq!(gru_of(&m.layers[0]), (64, 4, false, false, true, true, sig));
        assert_eq!(dense_of(&m.layers[1]), (64, 10, A::Softmax));
    }
    let m = model("pub_k_stacked.keras");
    assert_eq!(m.layers.len(), 3);
    assert_eq!(gru_of(&m.layers[0]), (24, 7, true, false, true, true, sig));
    assert_eq!(
        gru_of(&m.layers[1]),
        (12, 24, false, false, false, true, sig)
    );
    assert_eq!(dense_of(&m.layers[2]), (12, 4, A::Sigmoid));

    for (f, mode, h, i, seq, out, act) in [
        (
            "pub_k_bidir_concat.keras",
            MergeMode::Concat,
            20,
            9,
            false,
            4,
            A::Softmax,
        ),
        (
            "pub_k_bidir_ave_seq.keras",
            MergeMode::Ave,
            14,
            5,
            true,
            3,
            A::Linear,
        ),
    ] {
        let m = model(f);
        assert_eq!(m.layers.len(), 2);
        match &m.layers[0] {
            KerasLayer::Bidirectional {
                gru,
                merge_mode,
                return_sequences,
                ..
            } => {
                assert_eq!(*merge_mode, mode);
                assert_eq!(*return_sequences, seq);
                assert_eq!(gru.config.direction, Direction::Bidirectional);
                assert!(!gru.config.go_backwards && gru.config.batch_first);
                assert_eq!((gru.config.hidden_size, gru.config.input_size), (h, i));
                assert_eq!(gru.weights.layers[0].len(), 2);
                assert_ne!(gru.weights.layers[0][0].w_ih, gru.weights.layers[0][1].w_ih);
            }
            other => panic!("{f}: {other:?}"),
        }
        let in_f = if mode == MergeMode::Concat { 2 * h } else { h };
        assert_eq!(dense_of(&m.layers[1]), (in_f, out, act));
    }

    let m = model("pub_k_masking.keras");
    assert!(matches!(m.layers[0], KerasLayer::Masking { mask_value } if mask_value == 0.0));
    assert_eq!(gru_of(&m.layers[1]), (18, 6, false, false, true, true, sig));
    assert_eq!(dense_of(&m.layers[2]), (18, 3, A::Softmax));

    let m = model("pub_k_backwards_seq.keras");
    assert_eq!(gru_of(&m.layers[0]), (10, 7, true, true, true, true, sig));
    assert_eq!(dense_of(&m.layers[1]), (10, 3, A::Linear));

    let m = model("pub_k_dropout_hardsig.keras");
    assert_eq!(m.layers.len(), 2, "Dropout is dropped");
    assert_eq!(
        gru_of(&m.layers[0]),
        (
            14,
            5,
            false,
            false,
            true,
            false,
            Activation::HardSigmoid {
                alpha: 1.0 / 6.0,
                beta: 0.5
            }
        )
    );
    assert_eq!(dense_of(&m.layers[1]), (14, 4, A::Softmax));

    let m = model("pub_k_functional.keras");
    assert_eq!(m.name, "functional");
    assert_eq!((m.input_steps, m.input_features), (None, Some(4)));
    assert_eq!(gru_of(&m.layers[0]), (10, 4, true, false, true, true, sig));
    assert_eq!(gru_of(&m.layers[1]), (5, 10, false, false, true, true, sig));
    assert_eq!(dense_of(&m.layers[2]), (5, 3, A::Tanh));
}

/// A small executor over the layers (the f64 reference GRU, Dense + activation in f64).
fn run(m: &KerasModel, x: &[f32], b: usize, t: usize) -> Vec<f32> {
    let mut cur: Vec<f32> = x.to_vec();
    let mut feat = m.input_features.unwrap_or(x.len() / (b * t));
    let mut seq = true;
    let mut mask: Option<Vec<bool>> = None;
    for l in &m.layers {
        match l {
            KerasLayer::Masking { mask_value } => {
                mask = Some(
                    cur.chunks(feat)
                        .map(|s| s.iter().any(|v| v != mask_value))
                        .collect(),
                );
            }
            KerasLayer::Gru {
                gru,
                return_sequences,
                ..
            }
            | KerasLayer::Bidirectional {
                gru,
                return_sequences,
                ..
            } => {
                let mut inp = SeqInput::new(&cur, Steps(t), Batch(b));
                inp.mask = mask.as_deref();
                let out = reference::forward(gru, &inp).unwrap();
                let h = gru.config.hidden_size;
                let d = gru.config.num_directions();
                let (raw, steps) = if *return_sequences {
                    (out.output, t)
                } else {
                    // h_n [D, B, H] → [B, D·H]
                    let mut v = vec![0.0; b * d * h];
                    for di in 0..d {
                        for bi in 0..b {
                            for j in 0..h {
                                v[(bi * d + di) * h + j] = out.h_n[(di * b + bi) * h + j];
                            }
                        }
                    }
                    (v, 1)
                };
                let mode = match l {
                    KerasLayer::Bidirectional { merge_mode, .. } => *merge_mode,
                    _ => MergeMode::Concat,
                };
                cur = raw
                    .chunks(d * h)
                    .flat_map(|r| -> Vec<f32> {
                        match (d, mode) {
                            (1, _) | (_, MergeMode::Concat) => r.to_vec(),
                            (_, MergeMode::Sum) => (0..h).map(|j| r[j] + r[h + j]).collect(),
                            (_, MergeMode::Ave) => {
                                (0..h).map(|j| (r[j] + r[h + j]) / 2.0).collect()
                            }
                            (_, MergeMode::Mul) => (0..h).map(|j| r[j] * r[h + j]).collect(),
                            _ => unreachable!(),
                        }
                    })
                    .collect();
                feat = cur.len() / (b * steps);
                seq = *return_sequences;
            }
            KerasLayer::Dense {
                dense, activation, ..
            } => {
                let (i, o) = (dense.in_features, dense.out_features);
                assert_eq!(i, feat);
                let mut y: Vec<f64> = cur
                    .chunks(i)
                    .flat_map(|row| {
                        (0..o).map(move |k| {
                            dense.bias[k] as f64
                                + row
                                    .iter()
                                    .zip(&dense.weight[k * i..(k + 1) * i])
                                    .map(|(&a, &w)| a as f64 * w as f64)
                                    .sum::<f64>()
                        })
                    })
                    .collect();
                activation.apply_rows(&mut y, o);
                cur = y.into_iter().map(|v| v as f32).collect();
                feat = o;
            }
        }
    }
    let _ = seq;
    cur
}

#[test]
fn golden_predictions_match_keras() {
    for (case, file) in [
        ("pub_k_seed", "pub_k_seed.keras"),
        ("pub_k_seed_h5", "pub_k_seed_h5.h5"),
        ("pub_k_stacked", "pub_k_stacked.keras"),
        ("pub_k_bidir_concat", "pub_k_bidir_concat.keras"),
        ("pub_k_bidir_ave_seq", "pub_k_bidir_ave_seq.keras"),
        ("pub_k_masking", "pub_k_masking.keras"),
        ("pub_k_backwards_seq", "pub_k_backwards_seq.keras"),
        ("pub_k_dropout_hardsig", "pub_k_dropout_hardsig.keras"),
        ("pub_k_functional", "pub_k_functional.keras"),
    ] {
        let st =
            SafetensorsFile::from_bytes(bytes(&format!("{case}.case.safetensors")), case).unwrap();
        let x = st.get_f32("x").unwrap().unwrap();
        let y = st.get_f32("y").unwrap().unwrap();
        let (b, t) = (x.shape[0], x.shape[1]);
        let m = model(file);
        let got = run(&m, &x.data, b, t);
        assert_eq!(got.len(), y.data.len(), "{case}");
        let scale = y.data.iter().fold(1.0f32, |a, v| a.max(v.abs()));
        let err = got
            .iter()
            .zip(&y.data)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max)
            / scale;
        assert!(err <= 1e-5, "{case}: error {err:e}");
    }
}

#[test]
fn activations() {
    let mut v = vec![1.0, 2.0, 3.0, -1.0, 0.0, 1.0];
    DenseActivation::Softmax.apply_rows(&mut v, 3);
    assert!((v[0..3].iter().sum::<f64>() - 1.0).abs() < 1e-12);
    assert!((v[3..6].iter().sum::<f64>() - 1.0).abs() < 1e-12);
    let mut v = vec![-4.0, -3.0, 0.0, 3.0, 4.0];
    DenseActivation::HardSigmoid.apply_rows(&mut v, 5);
    assert_eq!(v, [0.0, 0.0, 0.5, 1.0, 1.0]);
    let mut v = vec![1.0, -2.0];
    DenseActivation::Gelu.apply_rows(&mut v, 2);
    assert!((v[0] - 0.841_344_746_068_542_9).abs() < 1e-12, "{}", v[0]);
    assert!((v[1] + 0.045_500_263_896_358_4).abs() < 1e-12, "{}", v[1]);
    let mut v = vec![-1.0];
    DenseActivation::LeakyRelu.apply_rows(&mut v, 1);
    assert_eq!(v, [-0.2]);
    assert!(DenseActivation::from_keras("mish").is_err());
}

#[test]
fn detection() {
    assert!(is_keras_zip(&bytes("pub_k_seed.keras")));
    assert!(!is_keras_zip(&bytes("pub_k_seed_h5.h5")));
    assert!(is_hdf5(&bytes("pub_k_seed_h5.h5")));
    assert!(!is_hdf5(&bytes("pub_k_seed.keras")));
    let mut ub = vec![0u8; 512];
    ub.extend_from_slice(b"\x89HDF\r\n\x1a\n");
    assert!(is_hdf5(&ub));
    assert!(!is_hdf5(b"\x89HDF"));
}

fn err_of(b: &[u8], what: &str) -> String {
    match read(b, what) {
        Ok(_) => panic!("{what}: read a hostile file"),
        Err(e) => {
            let s = e.to_string();
            assert!(!s.contains('\n'), "{what}: a multi-line error: {s}");
            s
        }
    }
}

#[test]
fn truncated_and_random_files_are_refused() {
    for f in [
        "pub_k_seed.keras",
        "pub_k_seed_h5.h5",
        "pub_k_bidir_concat.keras",
        "pub_k_functional.keras",
    ] {
        let b = bytes(f);
        for cut in [0, 1, 7, 8, 100, 2048, b.len() / 4, b.len() / 2, b.len() - 1] {
            err_of(&b[..cut], &format!("{f} cut at {cut}"));
        }
    }
    let mut s: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut rnd = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s as u8
    };
    for prefix in [&b""[..], b"PK\x03\x04", b"\x89HDF\r\n\x1a\n"] {
        let mut v = prefix.to_vec();
        v.extend((0..4096).map(|_| rnd()));
        err_of(&v, "random bytes");
    }
}

#[test]
fn unknown_class_and_unsupported_structures_are_refused() {
    let (config, weights) = entries(&bytes("pub_k_seed.keras"));
    let conv = config.replace("\"class_name\": \"GRU\"", "\"class_name\": \"Conv1D\"");
    let e = err_of(&keras_with(&conv, &weights), "conv1d");
    assert!(
        e.contains("is a Conv1D") && e.contains("supported layers"),
        "{e}"
    );
    let state = config.replace("\"return_state\": false", "\"return_state\": true");
    assert!(err_of(&keras_with(&state, &weights), "state").contains("return_state"));
    let stateful = config.replace("\"stateful\": false", "\"stateful\": true");
    assert!(err_of(&keras_with(&stateful, &weights), "stateful").contains("stateful"));
    err_of(&keras_with("{not json", &weights), "bad json");
    err_of(&keras_with("{}", &weights), "empty json");
    // A GRU whose units disagree with its weights.
    let units = config.replace("\"units\": 64", "\"units\": 65");
    err_of(&keras_with(&units, &weights), "units");

    let (config, weights) = entries(&bytes("pub_k_functional.keras"));
    let branch = config.replace(
        "\"keras_history\": [\"gru_1\", 0, 0]",
        "\"keras_history\": [\"gru\", 0, 0]",
    );
    assert_ne!(branch, config);
    assert!(err_of(&keras_with(&branch, &weights), "branch").contains("not one chain"));
    assert!(read(&keras_with(&config, &weights), "rezipped").is_ok());

    let (config, weights) = entries(&bytes("pub_k_bidir_concat.keras"));
    let none = config.replace("\"merge_mode\": \"concat\"", "\"merge_mode\": null");
    assert_ne!(none, config);
    assert!(err_of(&keras_with(&none, &weights), "merge none").contains("merge_mode=None"));
}

#[test]
fn zip_bomb_and_truncated_weights_are_refused() {
    let (config, weights) = entries(&bytes("pub_k_seed.keras"));
    let zeros = vec![0u8; 40 << 20];
    let bomb = zip_of(
        &[
            ("config.json", config.as_bytes()),
            ("model.weights.h5", &zeros),
        ],
        zip::CompressionMethod::Deflated,
    );
    assert!(bomb.len() < 1 << 20);
    let e = err_of(&bomb, "bomb");
    assert!(e.contains("declares"), "{e}");
    let big_config = zip_of(
        &[
            ("config.json", &zeros[..17 << 20]),
            ("model.weights.h5", &weights),
        ],
        zip::CompressionMethod::Deflated,
    );
    assert!(err_of(&big_config, "config bomb").contains("declares"));
    for cut in [0, 8, 96, 1000, weights.len() / 2, weights.len() - 1] {
        err_of(&keras_with(&config, &weights[..cut]), "truncated weights");
    }
}

#[test]
fn oversized_declared_shapes_are_refused() {
    // The recurrent kernel's dataspace [64, 192] rewritten to claim 2^40 rows.
    let (config, weights) = entries(&bytes("pub_k_seed.keras"));
    let mut pat = 64u64.to_le_bytes().to_vec();
    pat.extend_from_slice(&192u64.to_le_bytes());
    let mut w = weights.clone();
    let mut hits = 0;
    let mut i = 0;
    while i + pat.len() <= w.len() {
        if w[i..i + pat.len()] == pat[..] {
            w[i..i + 8].copy_from_slice(&(1u64 << 40).to_le_bytes());
            hits += 1;
        }
        i += 1;
    }
    assert!(hits > 0);
    err_of(&keras_with(&config, &w), "2^40 rows");
    // The same with the config agreeing on the shape is refused by the size check.
    let huge = config.replace("\"units\": 64", &format!("\"units\": {}", 1u64 << 40));
    err_of(&keras_with(&huge, &w), "2^40 units");
}

#[test]
fn legacy_bidirectional_and_link_cycles() {
    // A legacy-layout .h5 of pub_k_bidir_concat (written with h5py in model.save's layout:
    // weight_names forward then backward) predicts the case's y; files whose HDF5 hard links
    // form cycles end (read or refused) without looping.
    let corpus = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/keras_model/");
    let legacy = std::fs::read(format!("{corpus}seed-legacy_bidir.h5")).unwrap();
    let m = read(&legacy, "legacy_bidir.h5").unwrap();
    let st =
        SafetensorsFile::from_bytes(bytes("pub_k_bidir_concat.case.safetensors"), "c").unwrap();
    let x = st.get_f32("x").unwrap().unwrap();
    let y = st.get_f32("y").unwrap().unwrap();
    let got = run(&m, &x.data, x.shape[0], x.shape[1]);
    let err = got
        .iter()
        .zip(&y.data)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(err <= 1e-5, "legacy bidirectional: {err:e}");
    for f in ["seed-hostile_cycle.keras", "seed-hostile_cycle_legacy.h5"] {
        let b = std::fs::read(format!("{corpus}{f}")).unwrap();
        let _ = read(&b, f);
    }
}
