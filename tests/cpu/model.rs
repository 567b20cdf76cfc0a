//! The digits classifier trained by `scripts/train_digits.py`: the f64 reference reproduces
//! PyTorch's probabilities, predictions and accuracy on the whole committed test split.

use safetensors::{Dtype, SafeTensors};
use wgpu_gru::model::{Dense, GruClassifier, argmax_rows, softmax_rows};
use wgpu_gru::{Batch, Steps};
use wgpu_gru::{Error, Gru, GruConfig};

const MODEL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/digits_gru.safetensors");
const TEST: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/assets/digits_test.safetensors"
);

fn tensor<'a>(st: &SafeTensors<'a>, name: &str, dtype: Dtype) -> (&'a [u8], Vec<usize>) {
    let t = st.tensor(name).unwrap();
    assert_eq!(t.dtype(), dtype, "{name}");
    (t.data(), t.shape().to_vec())
}

fn f32s(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn i64s(b: &[u8]) -> Vec<usize> {
    b.chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as usize)
        .collect()
}

#[test]
fn digits_reference_matches_torch() {
    let model = GruClassifier::from_safetensors(MODEL).unwrap();
    let c = &model.gru.config;
    assert_eq!((c.input_size, c.hidden_size, c.num_layers), (8, 128, 1));
    assert!(c.batch_first);
    assert_eq!(model.num_classes(), 10);

    let bytes = std::fs::read(TEST).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let (x, xs) = tensor(&st, "x", Dtype::F32);
    let (labels, _) = tensor(&st, "labels", Dtype::I64);
    let (probs, ps) = tensor(&st, "torch_probs", Dtype::F32);
    let (pred, _) = tensor(&st, "torch_pred", Dtype::I64);
    let (x, labels, torch_probs, torch_pred) = (f32s(x), i64s(labels), f32s(probs), i64s(pred));
    let n = xs[0];
    assert_eq!(xs, [n, 8, 8]);
    assert_eq!(ps, [n, 10]);
    assert_eq!((labels.len(), torch_pred.len()), (n, n));
    let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
    let torch_acc: f64 = meta.metadata().as_ref().unwrap()["accuracy"]
        .parse()
        .unwrap();

    let probs = model.reference_forward(&x, Steps(8), Batch(n)).unwrap();
    assert_eq!(probs.len(), n * 10);
    let dp = wgpu_gru::max_abs_diff(&probs, &torch_probs);
    assert!(dp <= 1e-5, "max |Δprob| = {dp:e}");
    for row in probs.chunks_exact(10) {
        let s: f32 = row.iter().sum();
        assert!((s - 1.0).abs() < 1e-5, "row sums to {s}");
    }
    let pred = model.predict(&probs);
    let diff: Vec<usize> = (0..n).filter(|&i| pred[i] != torch_pred[i]).collect();
    assert!(diff.is_empty(), "predictions differ from torch at {diff:?}");
    let correct = pred.iter().zip(&labels).filter(|(p, l)| p == l).count();
    let acc = correct as f64 / n as f64;
    assert_eq!(acc, torch_acc, "{correct}/{n}");
    assert!(acc >= 0.97, "accuracy {acc}");
    eprintln!("digits: {correct}/{n} = {acc:.4}, max |Δprob| vs torch = {dp:e}");
}

#[test]
fn softmax_is_stable_and_argmax_takes_first_max() {
    let mut l = vec![1000.0, 1000.0, -1000.0, 0.0, 1.0, 2.0];
    softmax_rows(&mut l, 3);
    assert_eq!(&l[..3], &[0.5, 0.5, 0.0]);
    assert!((l[3..].iter().sum::<f64>() - 1.0).abs() < 1e-15);
    assert_eq!(argmax_rows(&[0.5, 0.5, 0.0, f32::NAN, 0.1, 0.2], 3), [0, 2]);
}

#[test]
fn shape_errors_are_typed() {
    assert!(matches!(
        Dense::new(4, 2, vec![0.0; 7], vec![0.0; 2]),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(matches!(
        Dense::new(4, 2, vec![0.0; 8], vec![0.0; 3]),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(matches!(
        Dense::new(0, 2, vec![], vec![0.0; 2]),
        Err(Error::InvalidConfig(_))
    ));
    let model = GruClassifier::from_safetensors(MODEL).unwrap();
    // Dense must take H inputs.
    let gru = Gru::single(GruConfig::new(8, 16), wgpu_gru::CellWeights::zeros(8, 16)).unwrap();
    assert!(GruClassifier::new(gru, model.dense.clone()).is_err());
    // x of the wrong length.
    assert!(matches!(
        model.reference_forward(&[0.0; 63], Steps(8), Batch(1)),
        Err(Error::ShapeMismatch { .. })
    ));
    // Missing file and garbage bytes.
    assert!(matches!(
        GruClassifier::from_safetensors("no/such/file.safetensors"),
        Err(Error::Io { .. })
    ));
    assert!(matches!(
        GruClassifier::from_safetensors_bytes(b"not safetensors"),
        Err(Error::Parse { .. })
    ));
    // The test split holds no GRU.
    let test = std::fs::read(TEST).unwrap();
    assert!(matches!(
        GruClassifier::from_safetensors_bytes(&test),
        Err(Error::MissingTensor { .. })
    ));
}
