//! The checkpoint reader's unit tests: hand-written pickles and archives.

use super::pickle::{StorageRef, StorageType};
use super::select::Group;
use super::*;
use std::io::Cursor;
use std::io::Write;
use zip::write::SimpleFileOptions;

fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let opts = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (n, b) in entries {
        w.start_file(*n, opts).unwrap();
        w.write_all(b).unwrap();
    }
    w.finish().unwrap().into_inner()
}

fn short(s: &str) -> Vec<u8> {
    let mut v = vec![0x8c, s.len() as u8];
    v.extend_from_slice(s.as_bytes());
    v
}

fn global(m: &str, n: &str) -> Vec<u8> {
    let mut v = short(m);
    v.extend(short(n));
    v.push(0x93);
    v
}

/// A protocol-4 pickle of `{name: tensor}` where each tensor is
/// `(storage class, key, numel, offset, size, stride)`.
/// (key, storage type, storage key, …): the fields each test tensor is built from.
type TensorSpec<'a> = (&'a str, &'a str, &'a str, u8, u8, &'a [u8], &'a [u8]);

fn state_dict(tensors: &[TensorSpec<'_>]) -> Vec<u8> {
    let mut p = vec![0x80, 4, b'}', b'('];
    for (name, class, key, numel, offset, size, stride) in tensors {
        p.extend(short(name));
        p.extend(global("torch._utils", "_rebuild_tensor_v2"));
        p.extend([b'(', b'(']);
        p.extend(short("storage"));
        p.extend(global("torch", class));
        p.extend(short(key));
        p.extend(short("cpu"));
        p.extend([b'K', *numel, b't', b'Q', b'K', *offset]);
        for dims in [size, stride] {
            p.push(b'(');
            for d in *dims {
                p.extend([b'K', *d]);
            }
            p.push(b't');
        }
        p.extend([0x89, b'}', b't', b'R']);
    }
    p.extend([b'u', b'.']);
    p
}

fn f32s(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[test]
fn reads_strided_and_shared_storages() {
    // weight_hh_l0 [3, 1] is a transposed view; weight_ih_l0 [3, 2] a strided slice with an
    // offset; both biases share one storage.
    let w: Vec<f32> = (0..12).map(|i| i as f32).collect();
    let pkl = state_dict(&[
        ("weight_ih_l0", "FloatStorage", "0", 12, 1, &[3, 2], &[4, 2]),
        ("weight_hh_l0", "FloatStorage", "1", 3, 0, &[3, 1], &[1, 3]),
        ("bias_ih_l0", "HalfStorage", "2", 6, 0, &[3], &[1]),
        ("bias_hh_l0", "HalfStorage", "2", 6, 3, &[3], &[1]),
    ]);
    let b: Vec<u8> = (0..6)
        .flat_map(|i| half::f16::from_f32(i as f32 / 2.0).to_le_bytes())
        .collect();
    let file = zip_of(&[
        ("ck/data.pkl", &pkl),
        ("ck/byteorder", b"little"),
        ("ck/data/0", &f32s(&w)),
        ("ck/data/1", &f32s(&[7.0, 8.0, 9.0])),
        ("ck/data/2", &b),
    ]);
    assert!(is_zip(&file));
    let st = read_checkpoint(&file, "t.pt", None).unwrap();
    let t = st.get_f32("weight_ih_l0").unwrap().unwrap();
    assert_eq!(t.shape, [3, 2]);
    assert_eq!(t.data, [1.0, 3.0, 5.0, 7.0, 9.0, 11.0]);
    let t = st.get_f32("weight_hh_l0").unwrap().unwrap();
    assert_eq!(t.data, [7.0, 8.0, 9.0]);
    assert_eq!(
        st.get_f32("bias_ih_l0").unwrap().unwrap().data,
        [0.0, 0.5, 1.0]
    );
    assert_eq!(
        st.get_f32("bias_hh_l0").unwrap().unwrap().data,
        [1.5, 2.0, 2.5]
    );
}

#[test]
fn refuses_out_of_storage_views_and_other_dtypes() {
    let data = f32s(&[0.0; 4]);
    for (size, stride, offset) in [(&[2u8, 2][..], &[2u8, 1][..], 1u8), (&[3, 2], &[2, 1], 0)] {
        let pkl = state_dict(&[("weight_hh_l0", "FloatStorage", "0", 4, offset, size, stride)]);
        let file = zip_of(&[("a/data.pkl", &pkl), ("a/data/0", &data)]);
        let e = read_checkpoint(&file, "t.pt", None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("reads element"), "{e}");
    }
    let pkl = state_dict(&[("weight_hh_l0", "LongStorage", "0", 2, 0, &[2], &[1])]);
    let file = zip_of(&[("a/data.pkl", &pkl), ("a/data/0", &data)]);
    let e = read_checkpoint(&file, "t.pt", None).unwrap_err();
    assert!(matches!(e, Error::UnsupportedDtype { .. }), "{e}");
    // The storage entry must be exactly as long as its numel says.
    let pkl = state_dict(&[("weight_hh_l0", "FloatStorage", "0", 5, 0, &[2], &[1])]);
    let file = zip_of(&[("a/data.pkl", &pkl), ("a/data/0", &data)]);
    assert!(read_checkpoint(&file, "t.pt", None).is_err());
}

fn run_pickle(p: &[u8]) -> Result<Value> {
    Vm::new(p, "t.pkl").run()
}

#[test]
fn refuses_unknown_globals_by_name() {
    let mut p = vec![0x80, 2];
    p.extend(b"cos\nsystem\n(X\x02\x00\x00\x00idtR.");
    let e = run_pickle(&p).unwrap_err().to_string();
    assert!(e.contains("os.system"), "{e}");
    let mut p = vec![0x80, 4];
    p.extend(global("builtins", "eval"));
    p.push(b'.');
    assert!(
        run_pickle(&p)
            .unwrap_err()
            .to_string()
            .contains("builtins.eval")
    );
    let p = b"\x80\x02c__main__\nNet\n)\x81.";
    let e = run_pickle(p).unwrap_err().to_string();
    assert!(
        e.contains("state_dict()") && e.contains("__main__.Net"),
        "{e}"
    );
}

#[test]
fn machine_limits_and_semantics() {
    // LONG1 sign extension.
    let v = run_pickle(b"\x80\x02\x8a\x02\xff\x7f.").unwrap();
    assert!(matches!(v, Value::Int(0x7fff)));
    let v = run_pickle(b"\x80\x02\x8a\x01\xfe.").unwrap();
    assert!(matches!(v, Value::Int(-2)));
    // Deeply nested tuples are refused, not overflowing the stack on drop.
    let mut p = b"\x80\x02)".to_vec();
    p.extend(std::iter::repeat_n(0x85, 100_000));
    p.push(b'.');
    assert!(run_pickle(&p).unwrap_err().to_string().contains("nested"));
    // A string longer than the bytes left.
    assert!(run_pickle(b"\x80\x02X\xff\xff\xff\xffab.").is_err());
    assert!(run_pickle(b"\x80\x04\x8d\xff\xff\xff\xff\xff\xff\xff\xffab.").is_err());
    // Popping through a MARK, a memo entry never stored, no STOP.
    assert!(run_pickle(b"(0.").is_err());
    assert!(run_pickle(b"(K\x01(s.").is_err());
    assert!(run_pickle(b"h\x05.").is_err());
    assert!(run_pickle(b"}").is_err());
    assert!(run_pickle(b"").is_err());
    // The stack and the MARKs are bounded.
    let mut p = b"\x80\x02".to_vec();
    p.extend(std::iter::repeat_n(b'N', MAX_STACK + 1));
    assert!(
        run_pickle(&p)
            .unwrap_err()
            .to_string()
            .contains("stack deeper")
    );
    let mut p = b"\x80\x02".to_vec();
    p.extend(std::iter::repeat_n(b'(', MAX_STACK + 1));
    assert!(run_pickle(&p).unwrap_err().to_string().contains("MARKs"));
    // A list holding itself, and a dict holding itself: read and walked without looping.
    let v = run_pickle(b"]q\x00h\x00a.").unwrap();
    assert!(matches!(v, Value::List(_)));
    let mut vm = Vm::new(b"}q\x00X\x01\x00\x00\x00ah\x00s.", "t");
    let Value::Dict(root) = vm.run().unwrap() else {
        panic!()
    };
    let mut out = Vec::new();
    collect(&vm.arena, root, "", 0, &mut out, &mut HashSet::new());
    assert!(out.is_empty());
}

#[test]
fn choose_prefixes() {
    let st = Rc::new(StorageRef {
        dtype: StorageType::F32,
        key: Rc::from("0"),
        numel: 12,
    });
    let t = |size: &[u64]| {
        Rc::new(TensorRef {
            storage: st.clone(),
            offset: 0,
            size: size.to_vec(),
            stride: vec![1; size.len()],
        })
    };
    let found = |names: &[(&str, &[u64])]| -> Group {
        names.iter().map(|(n, s)| (n.to_string(), t(s))).collect()
    };
    let two = found(&[
        ("model.enc.weight_hh_l0", &[6, 2]),
        ("model.dec.weight_hh_l0", &[6, 2]),
        ("model.head.weight", &[2, 2]),
    ]);
    let e = choose(two.clone(), None, "x").unwrap_err().to_string();
    assert!(e.contains("'model.dec.'") && e.contains("a prefix"), "{e}");
    assert_eq!(
        choose(two.clone(), Some("model.enc."), "x").unwrap().0,
        "model.enc."
    );
    assert_eq!(
        choose(two.clone(), Some("dec"), "x").unwrap().0,
        "model.dec."
    );
    assert!(choose(two, Some("nope"), "x").is_err());
    // An LSTM next to the GRU: the GRU is the one whose weight_hh_l0 is [3H, H].
    let mixed = found(&[
        ("lstm.weight_hh_l0", &[8, 2]),
        ("gru.weight_hh_l0", &[6, 2]),
    ]);
    assert_eq!(choose(mixed, None, "x").unwrap().0, "gru.");
    let none = found(&[("head.weight", &[2, 2])]);
    assert!(matches!(
        choose(none, None, "x"),
        Err(Error::UnknownLayout(_))
    ));
}

/// The pickle machine alone (the `torch_pickle` fuzz target's entry): the descriptors of a
/// `data.pkl`, without an archive, and its refusals as the checkpoint reader gives them.
#[test]
fn pickle_alone_lists_descriptors() {
    let pkl = state_dict(&[
        ("weight_ih_l0", "FloatStorage", "0", 12, 1, &[3, 2], &[4, 2]),
        ("bias_ih_l0", "HalfStorage", "2", 6, 3, &[3], &[1]),
    ]);
    let t = pickle_tensors(&pkl, "t.pkl").unwrap();
    assert_eq!(t.len(), 2);
    assert_eq!(
        t[0],
        PickledTensor {
            name: "weight_ih_l0".into(),
            storage: "0".into(),
            numel: 12,
            offset: 1,
            size: vec![3, 2],
            stride: vec![4, 2],
        }
    );
    assert_eq!((t[1].offset, t[1].size.as_slice()), (3, &[3][..]));
    let e = pickle_tensors(b"\x80\x02K\x01.", "t.pkl").unwrap_err();
    assert!(
        e.to_string().contains("holds a int, not a state_dict"),
        "{e}"
    );
    assert!(pickle_tensors(&pkl[..pkl.len() - 1], "t.pkl").is_err());
}
