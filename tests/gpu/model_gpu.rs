//! The GPU classifier (GRU → dense → softmax in one submit) on the committed digits model: the
//! whole test split gives the f64 reference's predictions and PyTorch's accuracy; the head alone
//! matches the f64 dense + softmax on random shapes.

use crate::common;
use crate::gpu_common;

use common::random::{Rng, random_gru};
use gpu_common::{ctx, run_and_read};
use safetensors::SafeTensors;
use wgpu_gru::gpu::{Algorithm, GpuClassifier, GpuOptions, final_state_offset};
use wgpu_gru::model::{Dense, GruClassifier, argmax_rows};
use wgpu_gru::{Batch, Steps};
use wgpu_gru::{Direction, Error, GruConfig};

const MODEL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/digits_gru.safetensors");
const TEST: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/assets/digits_test.safetensors"
);

struct Split {
    x: Vec<f32>,
    labels: Vec<usize>,
    torch_pred: Vec<usize>,
    torch_probs: Vec<f32>,
    accuracy: f64,
}

fn split() -> Split {
    let f = wgpu_gru::formats::SafetensorsFile::open(TEST).unwrap();
    let x = f.require_f32("x", "digits test split").unwrap();
    let (_, labels) = f.get_lengths("labels").unwrap().unwrap();
    let (_, torch_pred) = f.get_lengths("torch_pred").unwrap().unwrap();
    let torch_probs = f
        .require_f32("torch_probs", "digits test split")
        .unwrap()
        .data;
    let bytes = std::fs::read(TEST).unwrap();
    let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
    let accuracy = meta.metadata().as_ref().unwrap()["accuracy"]
        .parse()
        .unwrap();
    assert_eq!(x.shape[1..], [8, 8]);
    Split {
        x: x.data,
        labels,
        torch_pred,
        torch_probs,
        accuracy,
    }
}

#[test]
fn digits_on_gpu_equal_reference_and_torch() {
    let Some(ctx) = ctx() else { return };
    let model = GruClassifier::from_safetensors(MODEL).unwrap();
    let s = split();
    let n = s.labels.len();
    let want = model.reference_forward(&s.x, Steps(8), Batch(n)).unwrap();
    let want_pred = model.predict(&want);
    for algo in [Algorithm::Auto, Algorithm::PerStep, Algorithm::Sequence] {
        let gpu =
            GpuClassifier::with_options(ctx, &model, GpuOptions::default().with_algorithm(algo))
                .unwrap();
        let (probs, stats) = gpu
            .predict_proba_with_stats(&s.x, Steps(8), Batch(n))
            .unwrap();
        assert_eq!(stats.submits, 1, "{stats:?}");
        assert_eq!(probs.len(), n * 10);
        let dp = wgpu_gru::max_abs_diff(&probs, &want);
        assert!(dp <= 1e-5, "{algo:?}: max |Δprob| vs reference = {dp:e}");
        let dt = wgpu_gru::max_abs_diff(&probs, &s.torch_probs);
        assert!(dt <= 1e-5, "{algo:?}: max |Δprob| vs torch = {dt:e}");
        let pred = gpu.predict(&s.x, Steps(8), Batch(n)).unwrap();
        assert_eq!(pred, argmax_rows(&probs, 10));
        assert_eq!(
            pred, want_pred,
            "{algo:?}: predictions differ from the reference"
        );
        assert_eq!(
            pred, s.torch_pred,
            "{algo:?}: predictions differ from torch"
        );
        let correct = pred.iter().zip(&s.labels).filter(|(p, l)| p == l).count();
        assert_eq!(correct as f64 / n as f64, s.accuracy, "{correct}/{n}");
        eprintln!(
            "{algo:?} ({:?}): {correct}/{n}, max |Δprob| {dp:e}",
            stats.algorithm
        );
    }
}

#[test]
fn batch_sizes_and_reuse() {
    let Some(ctx) = ctx() else { return };
    let model = GruClassifier::from_safetensors(MODEL).unwrap();
    let s = split();
    let gpu = GpuClassifier::new(ctx, &model).unwrap();
    // Odd batch sizes (not multiples of any workgroup) and a repeat of each shape.
    for b in [1usize, 3, 65, 1, 65] {
        let x = &s.x[..b * 64];
        let got = gpu.predict_proba(x, Steps(8), Batch(b)).unwrap();
        let want = model.reference_forward(x, Steps(8), Batch(b)).unwrap();
        let dp = wgpu_gru::max_abs_diff(&got, &want);
        assert!(dp <= 1e-5, "B={b}: {dp:e}");
    }
    // Fewer steps: the first 5 rows of each image.
    let x5: Vec<f32> = s.x[..4 * 64]
        .chunks_exact(64)
        .flat_map(|img| img[..5 * 8].to_vec())
        .collect();
    let got = gpu.predict_proba(&x5, Steps(5), Batch(4)).unwrap();
    let want = model.reference_forward(&x5, Steps(5), Batch(4)).unwrap();
    assert!(wgpu_gru::max_abs_diff(&got, &want) <= 1e-5);
    assert!(
        gpu.predict_proba(&[], Steps(8), Batch(0))
            .unwrap()
            .is_empty()
    );
}

/// Random multi-layer, bidirectional and reverse GRUs with heads of several sizes: the head reads
/// the forward direction of the last layer, as the reference does.
#[test]
fn random_models_match_reference() {
    let Some(ctx) = ctx() else { return };
    let cases = [
        (GruConfig::new(3, 7), 5usize, 2usize, 4usize),
        (GruConfig::new(5, 33).with_layers(2), 3, 9, 1),
        (
            GruConfig::new(4, 16).with_direction(Direction::Bidirectional),
            6,
            130,
            3,
        ),
        (
            GruConfig::new(2, 9)
                .with_direction(Direction::Reverse)
                .with_layers(3),
            4,
            2,
            70,
        ),
    ];
    for (seed, (config, t, b, classes)) in cases.into_iter().enumerate() {
        let h = config.hidden_size;
        let gru = random_gru(config, seed as u64 + 10);
        let mut rng = Rng(seed as u64 * 7 + 3);
        let dense =
            Dense::new(h, classes, rng.vec(classes * h, 2.0), rng.vec(classes, 1.0)).unwrap();
        let model = GruClassifier::new(gru, dense).unwrap();
        let x = rng.vec(t * b * model.gru.config.input_size, 1.0);
        let want = model.reference_forward(&x, Steps(t), Batch(b)).unwrap();
        let gpu = GpuClassifier::new(ctx, &model).unwrap();
        let got = gpu.predict_proba(&x, Steps(t), Batch(b)).unwrap();
        let dp = wgpu_gru::max_abs_diff(&got, &want);
        assert!(dp <= 1e-5, "case {seed}: max |Δprob| {dp:e}");
    }
}

/// A softmax over 30,000 classes: one workgroup per row strides over them (one invocation per row
/// would pass llvmpipe's 65,535-iteration loop cap and leave the row unnormalised).
#[test]
fn wide_softmax_matches_reference() {
    let Some(ctx) = ctx() else { return };
    let (t, b, classes) = (3, 3, 30_000);
    let gru = random_gru(GruConfig::new(2, 4), 99);
    let mut rng = Rng(99);
    let dense = Dense::new(4, classes, rng.vec(classes * 4, 4.0), rng.vec(classes, 1.0)).unwrap();
    let model = GruClassifier::new(gru, dense).unwrap();
    let x = rng.vec(t * b * 2, 1.0);
    let want = model.reference_forward(&x, Steps(t), Batch(b)).unwrap();
    let got = GpuClassifier::new(ctx, &model)
        .unwrap()
        .predict_proba(&x, Steps(t), Batch(b))
        .unwrap();
    for (row, (g, w)) in got.chunks(classes).zip(want.chunks(classes)).enumerate() {
        let top = w.iter().cloned().fold(0.0f32, f32::max);
        let err = wgpu_gru::max_abs_diff(g, w);
        assert!(
            err <= 1e-5 * top,
            "row {row}: {err:e} against a top probability {top}"
        );
        let sum: f32 = g.iter().sum();
        assert!((sum - 1.0).abs() < 1e-4, "row {row} sums to {sum}");
    }
}

#[test]
fn final_state_offset_points_at_last_layer_forward_h_n() {
    let c = GruConfig::new(3, 5)
        .with_layers(2)
        .with_direction(Direction::Bidirectional);
    // h0 [2, 2, B=3, 5] = 60 floats, then h_n layer 0 (30 floats), then layer 1 forward.
    assert_eq!(final_state_offset(&c, 3), 60 + 30);
    assert_eq!(final_state_offset(&GruConfig::new(3, 5), 4), 20);
}

#[test]
fn head_errors_are_typed() {
    let Some(ctx) = ctx() else { return };
    let model = GruClassifier::from_safetensors(MODEL).unwrap();
    let gpu = GpuClassifier::new(ctx, &model).unwrap();
    assert!(matches!(
        gpu.predict_proba(&[0.0; 63], Steps(8), Batch(1)),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(matches!(
        gpu.predict_proba(&[], Steps(0), Batch(2)),
        Err(Error::InvalidArgument { .. })
    ));
    // The head refuses inputs that are too small or not bindable as storage.
    let head = gpu.head();
    let small = ctx.device.create_buffer(&wgpu_gru::wgpu::BufferDescriptor {
        label: Some("test small"),
        size: 64,
        usage: wgpu_gru::wgpu::BufferUsages::STORAGE,
        mapped_at_creation: false,
    });
    assert!(matches!(
        head.bind(&small, 0, 128, 1),
        Err(Error::ShapeMismatch { .. })
    ));
    let not_storage = ctx.device.create_buffer(&wgpu_gru::wgpu::BufferDescriptor {
        label: Some("test copy-only"),
        size: 4096,
        usage: wgpu_gru::wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    assert!(matches!(
        head.bind(&not_storage, 0, 128, 1),
        Err(Error::InvalidArgument { .. })
    ));
}

/// Uploads `data` as a storage buffer.
fn storage(ctx: &wgpu_gru::gpu::GpuContext, data: &[f32]) -> wgpu_gru::wgpu::Buffer {
    use wgpu_gru::wgpu::util::DeviceExt;
    ctx.device
        .create_buffer_init(&wgpu_gru::wgpu::util::BufferInitDescriptor {
            label: Some("test input"),
            contents: bytemuck::cast_slice(data),
            usage: wgpu_gru::wgpu::BufferUsages::STORAGE,
        })
}

/// Every Dense activation of the GPU head (Keras 3's definitions) against the f64 CPU one, on
/// rows read at an offset and stride, with logits spanning ±8 so every branch is taken.
#[test]
fn every_dense_activation_matches_the_cpu() {
    use wgpu_gru::model::DenseActivation;
    let Some(ctx) = ctx() else { return };
    let (k, c, rows, offset, stride) = (7, 13, 5, 3, 9);
    let mut rng = Rng(7);
    let dense = Dense::new(k, c, rng.vec(c * k, 1.5), rng.vec(c, 1.0)).unwrap();
    let input = rng.vec(offset + rows * stride, 2.0);
    let buffer = storage(ctx, &input);
    let rows_f64: Vec<f64> = (0..rows)
        .flat_map(|r| &input[offset + r * stride..offset + r * stride + k])
        .map(|&v| f64::from(v))
        .collect();
    for act in DenseActivation::ALL {
        let mut want = dense.forward_f64(&rows_f64).unwrap();
        act.apply_rows(&mut want, c);
        let head = wgpu_gru::gpu::GpuHead::with_activation(ctx, &dense, act).unwrap();
        assert_eq!(head.activation(), act);
        let binding = head.bind(&buffer, offset, stride, rows).unwrap();
        let got = run_and_read(
            ctx,
            |enc| {
                let dispatches = head.encode(enc, &binding);
                assert_eq!(dispatches, if act.is_row_wise() { 2 } else { 1 }, "{act:?}");
            },
            binding.probs_buffer(),
            rows * c,
        );
        for (g, w) in got.iter().zip(&want) {
            let err = (f64::from(*g) - w).abs();
            assert!(err <= 2e-6 * w.abs().max(1.0), "{act:?}: got {g}, want {w}");
        }
    }
}

/// The bidirectional merge in every mode, over a sequence output `[N, 2H]` and a final state
/// `[2, B, H]` at an offset, against the host.
#[test]
fn every_merge_mode_matches_the_host() {
    use wgpu_gru::gpu::{GpuMerge, Halves, Merge};
    let Some(ctx) = ctx() else { return };
    let (rows, h) = (5, 7);
    let mut rng = Rng(11);
    let data = rng.vec(4 + 2 * rows * h, 1.0);
    let buffer = storage(ctx, &data);
    for halves in [Halves::sequence(rows, h), Halves::state(4, rows, h)] {
        for mode in Merge::ALL {
            let merge = GpuMerge::new(ctx, mode).unwrap();
            let binding = merge.bind(&buffer, halves).unwrap();
            let width = mode.width(h);
            assert_eq!((binding.rows(), binding.width()), (rows, width));
            let got = run_and_read(
                ctx,
                |enc| assert_eq!(merge.encode(enc, &binding), 1),
                binding.output_buffer(),
                rows * width,
            );
            for n in 0..rows {
                for j in 0..width {
                    let at = |dir: usize, u: usize| {
                        data[halves.offset + n * halves.row_stride + dir * halves.dir_stride + u]
                    };
                    let want = match mode {
                        Merge::Concat if j < h => at(0, j),
                        Merge::Concat => at(1, j - h),
                        Merge::Sum => at(0, j) + at(1, j),
                        Merge::Ave => (at(0, j) + at(1, j)) / 2.0,
                        Merge::Mul => at(0, j) * at(1, j),
                    };
                    assert_eq!(got[n * width + j], want, "{mode:?} {halves:?} [{n}, {j}]");
                }
            }
        }
        // An input too small for the halves is refused before any GPU work.
        let small = storage(ctx, &data[..8]);
        assert!(matches!(
            GpuMerge::new(ctx, Merge::Sum).unwrap().bind(&small, halves),
            Err(Error::ShapeMismatch { .. })
        ));
    }
}
