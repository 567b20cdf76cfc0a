//! The fuzz targets of `fuzz/` on stable Rust: every input in `fuzz/corpus/<target>/` and
//! `fuzz/regressions/<target>/` (the crashes found so far) is replayed, then a bounded mutation
//! driver runs each target for a few seconds; and one named test per crash found.
//!
//! - `WGPU_GRU_FUZZ_SECS` sets the mutation budget per target (default 3 seconds; 0 replays only).
//! - `cargo test --release --test regressions -- --ignored make_corpus` rewrites the seeds of
//!   the corpus from `tests/data/golden/` and the hand-made seeds below.
//!
//! The fuzz targets themselves (`cargo +nightly fuzz run <target>`, with libFuzzer) live in
//! `fuzz/fuzz_targets/`; their bodies are `fuzz/src/targets.rs`, compiled here too.

mod common;

/// The CLI's `run` subcommand, compiled from the binary's own source for the `cli_run` target.
#[allow(dead_code)]
#[path = "../src/bin/wgpu-gru/run.rs"]
mod run;

// The targets include `tests/common/npy_file.rs` and `tests/common/flags.rs` by path too, so
// that the fuzz crate has them: loaded twice here.
#[allow(dead_code, clippy::duplicate_mod)]
#[path = "../fuzz/src/targets.rs"]
mod targets;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::npy_file;
use common::random::XorShift;
use common::safetensors_file::raw_st;
use wgpu_gru::Error;
use wgpu_gru::formats::{self, Format, ImportOptions, SafetensorsFile};

type Target = fn(&[u8]);

fn cli_run(data: &[u8]) {
    targets::cli_run(data);
}

const TARGETS: [(&str, Target); 7] = [
    ("safetensors_import", targets::safetensors_import),
    ("npy_parse", targets::npy_parse),
    ("cli_run", cli_run),
    ("torch_pt", targets::torch_pt),
    ("torch_pickle", targets::torch_pickle),
    ("onnx_model", targets::onnx_model),
    ("keras_model", targets::keras_model),
];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// Every file under `fuzz/<kind>/<target>/`, sorted by name.
fn inputs(kind: &str, target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = fuzz_dir().join(kind).join(target);
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut v: Vec<(String, Vec<u8>)> = rd
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_file())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

/// Runs `target` on `data`; on a panic, saves the input and fails naming the file.
fn run_one(name: &str, target: Target, data: &[u8], origin: &str) {
    if std::panic::catch_unwind(|| target(data)).is_err() {
        let dir = std::env::temp_dir().join("wgpu-gru-fuzz-crashes");
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join(format!("{name}-{:016x}", hash(data)));
        let _ = std::fs::write(&path, data);
        panic!(
            "{name} panicked on {origin}; input saved to {} (replay: cargo +nightly fuzz run {name} {})",
            path.display(),
            path.display()
        );
    }
}

fn hash(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

/// Every input committed under `fuzz/corpus/` and `fuzz/regressions/` is handled without a panic.
#[test]
fn replay_corpus_and_crashes() {
    let mut total = 0;
    for (name, target) in TARGETS {
        let corpus = inputs("corpus", name);
        assert!(!corpus.is_empty(), "no corpus for {name}");
        for (file, data) in corpus.iter().chain(&inputs("regressions", name)) {
            run_one(name, target, data, file);
            total += 1;
        }
    }
    eprintln!("replayed {total} inputs");
}

// ---------------------------------------------------------------------------------------------
// A small mutation fuzzer (libFuzzer's mutations, roughly, without coverage feedback).

/// libFuzzer dictionary entries (`"token"` lines) from `fuzz/dicts/<target>.dict`.
fn dictionary(target: &str) -> Vec<Vec<u8>> {
    let Ok(text) = std::fs::read_to_string(fuzz_dir().join("dicts").join(format!("{target}.dict")))
    else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            let q = l.strip_prefix('"')?.strip_suffix('"')?;
            Some(unescape(q))
        })
        .collect()
}

/// libFuzzer's dictionary escapes: `\\`, `\"` and `\xNN`.
fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() {
            if b[i + 1] == b'x'
                && i + 3 < b.len()
                && let Some(v) = std::str::from_utf8(&b[i + 2..i + 4])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(v);
                i += 4;
                continue;
            }
            out.push(b[i + 1]);
            i += 2;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

const INTERESTING: [u64; 12] = [
    0,
    1,
    2,
    3,
    0x7f,
    0xff,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    1 << 32,
    i64::MAX as u64,
    u64::MAX,
];

const NUMBERS: [&str; 10] = [
    "0",
    "1",
    "3",
    "-1",
    "65536",
    "2147483648",
    "4294967296",
    "9223372036854775807",
    "18446744073709551615",
    "99999999999999999999999",
];

fn mutate(rng: &mut XorShift, base: &[u8], pool: &[Vec<u8>], dict: &[Vec<u8>]) -> Vec<u8> {
    let mut d = base.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = d.len();
        match rng.below(10) {
            0 if len > 0 => {
                let i = rng.below(len);
                d[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                d[i] = [0, 1, 0x7f, 0x80, 0xff, b'9', b'-', b',', b'[', b' '][rng.below(10)];
            }
            2 if len > 0 => {
                let i = rng.below(len);
                let n = (1 + rng.below(16)).min(len - i);
                d.drain(i..i + n);
            }
            3 => {
                let i = rng.below(len + 1);
                let n = 1 + rng.below(16);
                let bytes: Vec<u8> = if len > 0 && rng.below(2) == 0 {
                    let s = rng.below(len);
                    d[s..(s + n).min(len)].to_vec()
                } else {
                    (0..n).map(|_| rng.next() as u8).collect()
                };
                d.splice(i..i, bytes);
            }
            4 if len >= 8 => {
                let width = [2usize, 4, 8][rng.below(3)];
                let i = rng.below(len - width + 1);
                let v = INTERESTING[rng.below(INTERESTING.len())];
                d[i..i + width].copy_from_slice(&v.to_le_bytes()[..width]);
            }
            5 => {
                // Rewrite a run of ASCII digits (JSON shapes and offsets, npy shapes, CLI values).
                let runs: Vec<(usize, usize)> = digit_runs(&d);
                if !runs.is_empty() {
                    let (s, e) = runs[rng.below(runs.len())];
                    let n = NUMBERS[rng.below(NUMBERS.len())].as_bytes().to_vec();
                    d.splice(s..e, n);
                }
            }
            6 if !pool.is_empty() => {
                let other = &pool[rng.below(pool.len())];
                let cut = rng.below(len + 1);
                let from = rng.below(other.len() + 1);
                d.truncate(cut);
                d.extend_from_slice(&other[from..]);
            }
            7 if len > 0 => {
                d.truncate(rng.below(len));
            }
            8 | 9 if !dict.is_empty() => {
                let tok = &dict[rng.below(dict.len())];
                let i = rng.below(len + 1);
                if rng.below(2) == 0 && i + tok.len() <= len {
                    d[i..i + tok.len()].copy_from_slice(tok);
                } else {
                    d.splice(i..i, tok.iter().copied());
                }
            }
            _ => {}
        }
    }
    d
}

fn digit_runs(d: &[u8]) -> Vec<(usize, usize)> {
    let mut runs = Vec::new();
    let mut i = 0;
    while i < d.len() {
        if d[i].is_ascii_digit() {
            let s = i;
            while i < d.len() && d[i].is_ascii_digit() {
                i += 1;
            }
            runs.push((s, i));
        } else {
            i += 1;
        }
    }
    runs
}

fn budget() -> Duration {
    let secs = std::env::var("WGPU_GRU_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(3.0);
    Duration::from_secs_f64(secs.max(0.0))
}

/// Mutates the corpus of `name` for the time budget; inputs that panic fail the test.
fn mutation_fuzz(name: &str, target: Target, seed: u64) {
    let pool: Vec<Vec<u8>> = inputs("corpus", name).into_iter().map(|(_, d)| d).collect();
    assert!(!pool.is_empty(), "no corpus for {name}");
    let dict = dictionary(name);
    let mut rng = XorShift(seed);
    let (start, budget) = (Instant::now(), budget());
    let mut n = 0u64;
    while start.elapsed() < budget {
        let base = &pool[rng.below(pool.len())];
        let input = mutate(&mut rng, base, &pool, &dict);
        run_one(name, target, &input, &format!("mutation {n} (seed {seed})"));
        n += 1;
    }
    eprintln!("{name}: {n} mutated inputs in {:?}", start.elapsed());
}

#[test]
fn mutate_safetensors_import() {
    mutation_fuzz("safetensors_import", targets::safetensors_import, 0x5afe);
}

#[test]
fn mutate_npy_parse() {
    mutation_fuzz("npy_parse", targets::npy_parse, 0x4e9);
}

#[test]
fn mutate_torch_pt() {
    mutation_fuzz("torch_pt", targets::torch_pt, 0x70c4);
}

#[test]
fn mutate_torch_pickle() {
    mutation_fuzz("torch_pickle", targets::torch_pickle, 0x91c1);
}

#[test]
fn mutate_onnx_model() {
    mutation_fuzz("onnx_model", targets::onnx_model, 0x0a3e);
}

#[test]
fn mutate_keras_model() {
    mutation_fuzz("keras_model", targets::keras_model, 0x6e7a);
}

#[test]
fn mutate_cli_run() {
    mutation_fuzz("cli_run", cli_run, 0xc11);
}

/// The harness reaches the success path: every small golden case, framed as a `cli_run` input,
/// runs (on the reference and on the CPU path) and writes its outputs.
#[test]
fn cli_target_runs_golden_cases() {
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/golden");
    let mut n = 0;
    for e in std::fs::read_dir(golden).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_none_or(|e| e != "safetensors") {
            continue;
        }
        let bytes = std::fs::read(&p).unwrap();
        let (_, cli) = targets::golden_seeds(&bytes).expect("a golden case");
        assert_eq!(targets::cli_run(&cli), Some(true), "{}", p.display());
        let cpu = [b"--backend cpu ".as_slice(), &cli].concat();
        assert_eq!(
            targets::cli_run(&cpu),
            Some(true),
            "{} on the CPU",
            p.display()
        );
        n += 1;
    }
    assert!(n >= 10);
}

// ---------------------------------------------------------------------------------------------
// One test per crash found (the inputs are also in fuzz/regressions/).

/// Builds a safetensors file whose tensors declare shapes but hold no data.
fn declared(tensors: &[(&str, &str)]) -> Vec<u8> {
    let parts: Vec<String> = tensors
        .iter()
        .map(|(n, shape)| {
            format!("\"{n}\":{{\"dtype\":\"F32\",\"shape\":{shape},\"data_offsets\":[0,0]}}")
        })
        .collect();
    raw_st(&format!("{{{}}}", parts.join(",")), &[])
}

/// Found by the import refusal tests (`tests/formats/import_refusals.rs`), then by the fuzzer: a
/// zero-element `weight_hh_l0`, `recurrent_kernel` or `R` declaring H = usize::MAX made `3 * H`
/// overflow (a panic with overflow checks, a message with wrapped numbers without).
#[test]
fn declared_hidden_size_overflow() {
    for (format, tensors) in [
        (
            Format::PyTorch,
            &[("weight_hh_l0", "[0,18446744073709551615]")][..],
        ),
        (
            Format::Keras,
            &[("recurrent_kernel", "[18446744073709551615,0]")],
        ),
        (Format::Onnx, &[("R", "[1,0,18446744073709551615]")]),
        (
            Format::PyTorch,
            &[
                ("weight_ih_l0", "[0,3]"),
                ("weight_hh_l0", "[0,6148914691236517206]"),
            ],
        ),
    ] {
        let bytes = declared(tensors);
        targets::safetensors_import(&bytes);
        let f = SafetensorsFile::from_bytes(bytes, "t").unwrap();
        let e = formats::import(&f, Some(format), &ImportOptions::default()).unwrap_err();
        assert!(matches!(e, Error::ShapeMismatch { .. }), "{e:?}");
        assert!(!e.to_string().contains("18446744073709551613"), "{e}");
        assert!(!e.to_string().contains("18446744073709551614"), "{e}");
    }
}

// ---------------------------------------------------------------------------------------------
// The seed corpus.

/// Hand-made seeds beyond the golden files: tiny models in every layout and dtype, and `.npy`
/// files of every dtype and header version.
fn extra_seeds() -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let f32s = |n: usize| -> Vec<u8> {
        (0..n)
            .flat_map(|k| ((k % 7) as f32 * 0.25 - 0.75).to_le_bytes())
            .collect()
    };
    let st = |tensors: &[(&str, &str, Vec<usize>)], meta: &str| -> Vec<u8> {
        let mut parts = Vec::new();
        if !meta.is_empty() {
            parts.push(format!("\"__metadata__\":{{{meta}}}"));
        }
        let mut data = Vec::new();
        for (name, dtype, shape) in tensors {
            let n: usize = shape.iter().product();
            let bytes = match *dtype {
                "F16" => (0..n)
                    .flat_map(|k| half::f16::from_f32(k as f32 * 0.1).to_le_bytes())
                    .collect(),
                "F64" => (0..n)
                    .flat_map(|k| (k as f64 * -0.1).to_le_bytes())
                    .collect(),
                "I64" => (0..n).flat_map(|k| (k as i64 + 1).to_le_bytes()).collect(),
                _ => f32s(n),
            };
            let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
            parts.push(format!(
                "\"{name}\":{{\"dtype\":\"{dtype}\",\"shape\":[{}],\"data_offsets\":[{},{}]}}",
                dims.join(","),
                data.len(),
                data.len() + bytes.len()
            ));
            data.extend_from_slice(&bytes);
        }
        raw_st(&format!("{{{}}}", parts.join(",")), &data)
    };
    let models = vec![
        st(
            &[
                ("weight_ih_l0", "F32", vec![6, 3]),
                ("weight_hh_l0", "F32", vec![6, 2]),
                ("weight_ih_l0_reverse", "F16", vec![6, 3]),
                ("weight_hh_l0_reverse", "F16", vec![6, 2]),
                ("weight_ih_l1", "F64", vec![6, 4]),
                ("weight_hh_l1", "F32", vec![6, 2]),
                ("weight_ih_l1_reverse", "F32", vec![6, 4]),
                ("weight_hh_l1_reverse", "F32", vec![6, 2]),
            ],
            "\"framework\":\"pytorch\",\"num_layers\":\"2\",\"bidirectional\":\"true\"",
        ),
        st(
            &[
                ("kernel", "F32", vec![2, 3]),
                ("recurrent_kernel", "F32", vec![1, 3]),
                ("bias", "F32", vec![3]),
            ],
            "\"reset_after\":\"false\",\"activation\":\"relu\"",
        ),
        st(
            &[
                ("W", "F32", vec![2, 6, 1]),
                ("R", "F32", vec![2, 6, 2]),
                ("B", "F64", vec![2, 12]),
                ("sequence_lens", "I64", vec![2]),
            ],
            "\"activations\":\"[\\\"HardSigmoid\\\",\\\"Tanh\\\"]\",\"activation_alpha\":\"[0.5]\",\"clip\":\"3\"",
        ),
        st(
            &[
                ("W_z", "F32", vec![1, 3]),
                ("W_r", "F32", vec![1, 3]),
                ("W_h", "F32", vec![1, 3]),
                ("b_z", "F32", vec![1]),
                ("b_r", "F32", vec![1]),
                ("b_h", "F32", vec![1]),
            ],
            "",
        ),
    ];
    // Zero-element tensors: any other dimension can then be declared, so one mutated number
    // reaches the size arithmetic of every importer.
    let mut models = models;
    models.extend([
        st(
            &[
                ("weight_ih_l0", "F32", vec![0, 3]),
                ("weight_hh_l0", "F32", vec![0, 2]),
                ("bias_ih_l0", "F32", vec![0]),
            ],
            "",
        ),
        st(
            &[
                ("kernel", "F32", vec![0, 3]),
                ("recurrent_kernel", "F32", vec![1, 0]),
                ("bias", "F32", vec![2, 0]),
            ],
            "",
        ),
        st(
            &[
                ("W", "F32", vec![1, 0, 2]),
                ("R", "F32", vec![1, 3, 0]),
                ("B", "F32", vec![0, 6]),
            ],
            "",
        ),
        st(
            &[
                ("W_z", "F32", vec![0, 3]),
                ("W_r", "F32", vec![1, 0]),
                ("b_z", "F32", vec![0]),
            ],
            "",
        ),
    ]);
    let npy_order = |major: u8, descr: &str, fortran: bool, shape: &str, data: &[u8]| {
        npy_file::raw(
            major,
            &format!("{}\n", npy_file::dict(descr, fortran, shape)),
            data,
        )
    };
    let npy = |major: u8, descr: &str, shape: &str, data: &[u8]| {
        npy_order(major, descr, false, shape, data)
    };
    let npys = vec![
        // Fortran order, big-endian, and the mask dtypes.
        npy_order(1, "<f4", true, "(2, 3, 1)", &[0u8; 24]),
        npy_order(
            1,
            ">f8",
            true,
            "(2, 2)",
            &[[63u8, 240, 0, 0, 0, 0, 0, 0]; 4].concat(),
        ),
        npy(1, ">f2", "(2,)", &[60, 0, 188, 0]),
        npy(1, ">i4", "(2,)", &[0, 0, 0, 3, 0, 0, 0, 1]),
        npy_order(
            1,
            ">i8",
            true,
            "(1, 2)",
            &[[0u8, 0, 0, 0, 0, 0, 0, 2]; 2].concat(),
        ),
        npy_order(1, "|b1", true, "(2, 2)", &[1, 0, 1, 1]),
        npy(1, "|u1", "(3,)", &[0, 1, 255]),
        npy(1, "<f2", "(2, 1)", &[0, 60, 0, 188]),
        npy(2, "<f8", "(1,)", &1.5f64.to_le_bytes()),
        npy(3, "<i4", "(2,)", &[3, 0, 0, 0, 1, 0, 0, 0]),
        npy(1, "<f4", "()", &0.5f32.to_le_bytes()),
        npy(1, "<f4", "(0, 3)", &[]),
    ];
    (models, npys)
}

/// Rewrites the seeds in `fuzz/corpus/` (run with `--ignored`): the small golden cases and the
/// hand-made ones, as `seed-<hash>` files; inputs the fuzzer added are kept.
#[test]
#[ignore = "rewrites fuzz/corpus"]
fn make_corpus() {
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/golden");
    let mut st_seeds = Vec::new();
    let mut npy_seeds = Vec::new();
    let mut cli_seeds = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&golden)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    files.sort();
    for p in files {
        let bytes = std::fs::read(&p).unwrap();
        // Large cases slow the fuzzer down and teach it nothing the small ones do not.
        if bytes.len() > 8192 {
            continue;
        }
        let (npys, cli) = targets::golden_seeds(&bytes).expect("a golden case");
        npy_seeds.extend(npys);
        cli_seeds.push(cli);
        st_seeds.push(bytes);
    }
    let (models, npys) = extra_seeds();
    // X for each hand-made model ([T, B, I] or Keras' [B, T, I]), and flags.
    let xs: [(&[usize], &str); 4] = [
        (&[2, 1, 3], "--backend cpu --h0 h"),
        (&[1, 2, 2], "--format keras"),
        (
            &[2, 2, 1],
            "--lengths l --linear-before-reset --activations Relu,Elu",
        ),
        (&[3, 1, 2], "--backend cpu --state-out s"),
    ];
    let h0 = wgpu_gru::npy::to_bytes_f32(&[4, 1, 2], &[0.5; 8]).unwrap();
    let lens = targets::npy_i64(&[2, 1]);
    for (m, (shape, flags)) in models.iter().zip(xs) {
        let n: usize = shape.iter().product();
        let x = wgpu_gru::npy::to_bytes_f32(shape, &vec![0.25; n]).unwrap();
        cli_seeds.push(targets::cli_input(
            &format!("--weights w --input x --output y {flags}"),
            [Some(m), Some(&x), Some(&h0), Some(&lens)],
        ));
    }
    st_seeds.extend(models);
    npy_seeds.extend(npys);
    for (target, seeds) in [
        ("safetensors_import", st_seeds),
        ("npy_parse", npy_seeds),
        ("cli_run", cli_seeds),
    ] {
        // Replace the seeds; keep what the fuzzer added (libFuzzer names files by SHA-1).
        let dir = fuzz_dir().join("corpus").join(target);
        std::fs::create_dir_all(&dir).unwrap();
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("seed-"))
            {
                std::fs::remove_file(p).unwrap();
            }
        }
        for s in seeds {
            std::fs::write(dir.join(format!("seed-{:016x}", hash(&s))), &s).unwrap();
        }
    }
}
