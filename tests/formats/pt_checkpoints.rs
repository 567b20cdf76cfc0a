//! `torch.save` checkpoints (`tests/data/pt/`, written by `scripts/make_pt_checkpoints.py`):
//! every PyTorch golden case saved as a real `state_dict` reads back bit for bit; module
//! prefixes, extra keys, nested dicts, other float types, non-contiguous views and
//! `nn.Parameter`s are read; whole pickled modules, TorchScript and the legacy format are refused
//! with a message that says what to do; and every hostile file (code-running globals, zip bombs,
//! overflowing or out-of-storage tensors, truncations) is refused with an error, never a panic.

use crate::common;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use wgpu_gru::formats::torch_pt::{is_zip, read_checkpoint};
use wgpu_gru::formats::{self, Format, ImportOptions, SafetensorsFile};
use wgpu_gru::{Error, Gru, Result};

use common::data_dir;
use common::random::XorShift;

fn pt_path(name: &str) -> PathBuf {
    data_dir("pt").join(name)
}

fn read_pt(name: &str, prefix: Option<&str>) -> Result<SafetensorsFile> {
    let bytes = std::fs::read(pt_path(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    read_checkpoint(&bytes, name, prefix)
}

fn import(file: &SafetensorsFile) -> Result<Gru> {
    Ok(formats::import(file, Some(Format::PyTorch), &ImportOptions::default())?.gru)
}

fn golden(case: &str) -> Gru {
    let file =
        SafetensorsFile::open(data_dir("golden").join(format!("{case}.safetensors"))).unwrap();
    import(&file).unwrap()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// The same config and bit-identical weights, after `round` is applied to `want`'s weights.
fn assert_same(got: &Gru, want: &Gru, round: fn(f32) -> f32, what: &str) {
    assert_eq!(got.config, want.config, "{what}: config");
    assert_eq!(
        got.weights.layers.len(),
        want.weights.layers.len(),
        "{what}"
    );
    for (l, (gl, wl)) in got
        .weights
        .layers
        .iter()
        .zip(&want.weights.layers)
        .enumerate()
    {
        assert_eq!(gl.len(), wl.len(), "{what}: layer {l}");
        for (d, (g, w)) in gl.iter().zip(wl).enumerate() {
            for (name, a, b) in [
                ("w_ih", &g.w_ih, &w.w_ih),
                ("w_hh", &g.w_hh, &w.w_hh),
                ("b_ih", &g.b_ih, &w.b_ih),
                ("b_hh", &g.b_hh, &w.b_hh),
            ] {
                let b: Vec<f32> = b.iter().map(|&x| round(x)).collect();
                assert_eq!(bits(a), bits(&b), "{what}: layer {l} direction {d} {name}");
            }
        }
    }
}

fn exact(x: f32) -> f32 {
    x
}

fn pytorch_goldens() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(data_dir("golden"))
        .unwrap()
        .filter_map(|e| {
            let p = e.ok()?.path();
            let stem = p.file_stem()?.to_str()?.to_string();
            (stem.starts_with("pytorch_") && p.extension()? == "safetensors").then_some(stem)
        })
        .collect();
    v.sort();
    v
}

#[test]
fn every_pytorch_golden_case_reads_back_bit_for_bit() {
    let cases = pytorch_goldens();
    assert!(cases.len() >= 5, "{cases:?}");
    for case in &cases {
        let name = format!("{case}.pt");
        let bytes = std::fs::read(pt_path(&name))
            .unwrap_or_else(|e| panic!("{name}: {e} (run scripts/make_pt_checkpoints.py)"));
        assert!(is_zip(&bytes), "{name}");
        let file = read_checkpoint(&bytes, &name, None).unwrap();
        // The same tensors under the same names, bit for bit.
        let twin =
            SafetensorsFile::open(data_dir("golden").join(format!("{case}.safetensors"))).unwrap();
        let names = file.names().unwrap();
        let gru_names: Vec<String> = twin
            .names()
            .unwrap()
            .into_iter()
            .filter(|n| n.starts_with("weight_") || n.starts_with("bias_"))
            .collect();
        assert_eq!(names, gru_names, "{name}");
        for n in &names {
            let a = file.get_f32(n).unwrap().unwrap();
            let b = twin.get_f32(n).unwrap().unwrap();
            assert_eq!(a.shape, b.shape, "{name}: {n}");
            assert_eq!(bits(&a.data), bits(&b.data), "{name}: {n}");
        }
        assert_same(&import(&file).unwrap(), &golden(case), exact, &name);
    }
}

#[test]
fn a_training_checkpoint_with_a_prefix_and_extra_keys() {
    // {'model': {'gru.*', 'head.*', 'norm.*' (with a LongStorage)}, 'optimizer': Adam's state,
    //  'epoch', 'loss'}
    let want = golden("pytorch_basic");
    for prefix in [None, Some("model.gru."), Some("model.gru"), Some("gru.")] {
        let file = read_pt("prefixed_extra_keys.pt", prefix).unwrap();
        assert_eq!(
            file.names().unwrap(),
            ["bias_hh_l0", "bias_ih_l0", "weight_hh_l0", "weight_ih_l0"]
        );
        assert_same(
            &import(&file).unwrap(),
            &want,
            exact,
            &format!("{prefix:?}"),
        );
    }
    let e = read_pt("prefixed_extra_keys.pt", Some("model.head.")).unwrap_err();
    assert!(matches!(e, Error::UnknownLayout(_)), "{e}");
    assert!(e.to_string().contains("'model.gru.'"), "{e}");
}

#[test]
fn several_grus_need_a_prefix() {
    let e = read_pt("two_grus.pt", None).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, Error::UnknownLayout(_)), "{msg}");
    for part in ["'decoder.gru.'", "'encoder.gru.'", "a prefix"] {
        assert!(msg.contains(part), "{msg}");
    }
    assert!(!msg.contains('\n'), "{msg}");
    let enc = read_pt("two_grus.pt", Some("encoder.gru.")).unwrap();
    assert_same(
        &import(&enc).unwrap(),
        &golden("pytorch_basic"),
        exact,
        "encoder",
    );
    let dec = read_pt("two_grus.pt", Some("decoder.gru")).unwrap();
    assert_same(
        &import(&dec).unwrap(),
        &golden("pytorch_packed_bidir"),
        exact,
        "decoder",
    );
    // `gru.` ends both prefixes.
    let e = read_pt("two_grus.pt", Some("gru."))
        .unwrap_err()
        .to_string();
    assert!(e.contains("several"), "{e}");
}

#[test]
fn an_lstm_next_to_the_gru_is_told_apart_by_shape() {
    let file = read_pt("lstm_and_gru.pt", None).unwrap();
    assert_same(
        &import(&file).unwrap(),
        &golden("pytorch_basic"),
        exact,
        "lstm_and_gru",
    );
    // Asked for, the LSTM is read and then refused by the importer's shape checks.
    let lstm = read_pt("lstm_and_gru.pt", Some("lstm.")).unwrap();
    assert!(import(&lstm).is_err());
}

#[test]
fn half_bfloat16_and_double_weights() {
    let want = golden("pytorch_basic");
    let f16 = import(&read_pt("f16.pt", None).unwrap()).unwrap();
    assert_same(&f16, &want, |x| half::f16::from_f32(x).to_f32(), "f16");
    let bf16 = import(&read_pt("bf16.pt", None).unwrap()).unwrap();
    assert_same(&bf16, &want, |x| half::bf16::from_f32(x).to_f32(), "bf16");
    let f64 = import(&read_pt("f64.pt", None).unwrap()).unwrap();
    assert_same(&f64, &want, exact, "f64");
}

#[test]
fn non_contiguous_and_shared_storage_views() {
    // A transposed view, a strided slice with an offset, and both biases as views of one storage.
    let got = import(&read_pt("noncontiguous.pt", None).unwrap()).unwrap();
    assert_same(&got, &golden("pytorch_basic"), exact, "noncontiguous");
}

#[test]
fn parameters_saved_with_pickle_protocol_5() {
    let got = import(&read_pt("parameters_protocol5.pt", None).unwrap()).unwrap();
    assert_same(
        &got,
        &golden("pytorch_basic"),
        exact,
        "parameters_protocol5",
    );
}

#[test]
fn a_whole_module_torchscript_and_the_legacy_format_are_refused_with_advice() {
    let e = read_pt("whole_module.pt", None).unwrap_err().to_string();
    assert!(
        e.contains("__main__.Model") && e.contains("model.state_dict()"),
        "{e}"
    );
    assert!(!e.contains('\n'), "{e}");
    let e = read_pt("torchscript.pt", None).unwrap_err().to_string();
    assert!(
        e.contains("TorchScript") && e.contains("state_dict()"),
        "{e}"
    );
    let e = read_pt("legacy.pt", None).unwrap_err().to_string();
    assert!(e.contains("legacy"), "{e}");
    assert!(!is_zip(&std::fs::read(pt_path("legacy.pt")).unwrap()));
}

/// `read_checkpoint`, then the PyTorch importer; a panic is reported as such.
fn read_and_import(bytes: &[u8], name: &str) -> std::result::Result<Result<Gru>, String> {
    catch_unwind(AssertUnwindSafe(|| {
        read_checkpoint(bytes, name, None).and_then(|f| import(&f))
    }))
    .map_err(|p| {
        p.downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default()
    })
}

#[test]
fn every_hostile_file_is_refused_without_a_panic() {
    let mut names: Vec<String> = std::fs::read_dir(data_dir("pt"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("hostile_"))
        .collect();
    names.sort();
    assert!(names.len() >= 20, "{names:?}");
    for name in &names {
        let bytes = std::fs::read(pt_path(name)).unwrap();
        let start = Instant::now();
        match read_and_import(&bytes, name) {
            Err(panic) => panic!("{name} panicked: {panic}"),
            Ok(Ok(_)) => panic!("{name} was accepted"),
            Ok(Err(e)) => {
                let msg = e.to_string();
                assert!(!msg.is_empty() && !msg.contains('\n'), "{name}: {msg}");
                eprintln!("{name}: {msg}");
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{name} took {:?}",
            start.elapsed()
        );
    }
    // Each is refused by the reader itself, for the reason it was built for.
    let expect = [
        ("hostile_os_system.pt", "os.system"),
        ("hostile_builtins_eval.pt", "builtins.eval"),
        (
            "hostile_subprocess_in_state_dict.pt",
            "subprocess.check_output",
        ),
        ("hostile_zip_bomb_declared.pt", "declares 8589934592 bytes"),
        ("hostile_zip_bomb_pickle.pt", "declares 3000000000 bytes"),
        ("hostile_zip_bomb_undeclared.pt", "larger than its declared"),
        ("hostile_size_overflow.pt", "size overflow"),
        ("hostile_stride_overflow.pt", "size overflow"),
        (
            "hostile_offset_overflow.pt",
            "reads element 9223372036854775818 ",
        ),
        ("hostile_offset_past_storage.pt", "reads element 12"),
        ("hostile_stride_past_storage.pt", "reads element 13 "),
        ("hostile_negative_size.pt", "non-negative"),
        (
            "hostile_storage_numel_overflow.pt",
            "size overflow computing the size of storage",
        ),
        ("hostile_storage_too_short.pt", "storage needs 52"),
        ("hostile_missing_storage.pt", "no entry archive/data/7"),
        ("hostile_repeated_storage.pt", "repeats"),
        ("hostile_rank_mismatch.pt", "stride 1"),
        ("hostile_deep_tuples.pt", "nested deeper"),
        ("hostile_huge_string.pt", "truncated"),
        ("hostile_truncated.pt", "zip"),
        ("hostile_truncated_pickle.pt", "truncated"),
        ("hostile_not_a_zip.pt", "zip"),
    ];
    for (name, part) in expect {
        let e = read_pt(name, None).unwrap_err().to_string();
        assert!(e.contains(part), "{name}: {e:?} lacks {part:?}");
    }
}

/// The entries of a zip archive, in order.
fn unzip(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    use std::io::Read;
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    (0..z.len())
        .map(|i| {
            let mut f = z.by_index(i).unwrap();
            let mut b = Vec::new();
            f.read_to_end(&mut b).unwrap();
            (f.name().unwrap().into_owned(), b)
        })
        .collect()
}

/// A zip archive of stored entries, as torch writes them.
fn rezip(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    use std::io::Write;
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (n, b) in entries {
        w.start_file(n.as_str(), opts).unwrap();
        w.write_all(b).unwrap();
    }
    w.finish().unwrap().into_inner()
}

/// One to four of: a bit flip, an interesting value, a cut, a duplicated slice, a random
/// byte, a pickle opcode.
fn mutate(r: &mut XorShift, d: &mut Vec<u8>) {
    const INTERESTING: [&[u8]; 9] = [
        &[0],
        &[0xff],
        &[0x7f],
        &[0x80],
        &[0xff, 0xff, 0xff, 0xff],
        &[0, 0, 0, 0x80],
        &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f],
        &[0x8a, 0x08, 0, 0, 0, 0, 0, 0, 0, 0x80],
        b"\x85",
    ];
    const OPCODES: &[u8] = b"}])(XKJM\x8a\x88\x89Nt\x85\x86\x87qhrjsuaeRbQ\x81012.\x93\x94\x8c";
    for _ in 0..1 + r.below(4) {
        if d.is_empty() {
            return;
        }
        let at = r.below(d.len());
        match r.below(6) {
            0 => d[at] ^= 1 << r.below(8),
            1 => {
                let v = INTERESTING[r.below(INTERESTING.len())];
                let end = (at + v.len()).min(d.len());
                d[at..end].copy_from_slice(&v[..end - at]);
            }
            2 => d.truncate(at),
            3 => {
                let len = r.below(64).min(d.len() - at);
                let chunk = d[at..at + len].to_vec();
                let to = r.below(d.len());
                d.splice(to..to, chunk);
            }
            4 => d[at] = OPCODES[r.below(OPCODES.len())],
            _ => d[at] = r.next() as u8,
        }
    }
}

/// A small deterministic mutation run over the real checkpoints: the raw bytes (mostly stopped
/// by the zip reader's checks), and the archive's entries — above all data.pkl — mutated and
/// zipped again, which reaches the pickle machine and the tensor checks. The reader and the
/// importer may refuse, never panic.
#[test]
fn mutated_checkpoints_never_panic() {
    let seeds: Vec<Vec<(String, Vec<u8>)>> = [
        "pytorch_basic.pt",
        "parameters_protocol5.pt",
        "noncontiguous.pt",
        "f16.pt",
        "prefixed_extra_keys.pt",
        "two_grus.pt",
    ]
    .iter()
    .map(|n| unzip(&std::fs::read(pt_path(n)).unwrap()))
    .collect();
    // `WGPU_GRU_PT_MUTANTS=n[,seed]` runs longer (the time cap grows with n).
    let env = std::env::var("WGPU_GRU_PT_MUTANTS").unwrap_or_default();
    let mut parts = env.split(',').map(|v| v.trim().parse::<u64>().ok());
    let total = parts.next().flatten().unwrap_or(20_000);
    let seed = parts.next().flatten().unwrap_or(0x9e37_79b9_7f4a_7c15) | 1;
    let mut m = XorShift(seed);
    let start = Instant::now();
    let cap = Duration::from_secs(10.max(total / 1000));
    let (mut runs, mut accepted) = (0, 0);
    while runs < total && start.elapsed() < cap {
        let mut entries = seeds[m.below(seeds.len())].clone();
        let data = match m.below(8) {
            0 => {
                let mut d = rezip(&entries);
                mutate(&mut m, &mut d);
                d
            }
            1 => {
                let i = m.below(entries.len());
                mutate(&mut m, &mut entries[i].1);
                rezip(&entries)
            }
            _ => {
                let i = entries
                    .iter()
                    .position(|(n, _)| n.ends_with("/data.pkl"))
                    .unwrap();
                mutate(&mut m, &mut entries[i].1);
                rezip(&entries)
            }
        };
        match read_and_import(&data, "mutant.pt") {
            Ok(Ok(_)) => accepted += 1,
            Ok(Err(_)) => {}
            Err(panic) => {
                let path = std::env::temp_dir().join("wgpu-gru-torch-pt-crash.pt");
                let _ = std::fs::write(&path, &data);
                panic!("panic on a mutant (saved to {}): {panic}", path.display());
            }
        }
        runs += 1;
    }
    eprintln!(
        "{runs} mutants ({accepted} accepted) in {:?}",
        start.elapsed()
    );
}
