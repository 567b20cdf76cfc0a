//! Training on the GPU: the classifier head's backward and the optimisers against their f64
//! references (the training shaders are validated with the others in `tests/gpu/shaders.rs`), a short
//! training run on the digits (CI), and
//! the committed trained model against PyTorch's predictions of it.
//!
//! GPU tests are skipped with a message when no adapter exists, unless `REQUIRE_GPU=1`.

use crate::common;
use crate::gpu_common;

use std::path::{Path, PathBuf};
use std::process::Command;
use wgpu_gru::{Batch, Steps};

use common::cli::{TempDir, bin};
use wgpu_gru::formats::SafetensorsFile;
use wgpu_gru::model::{GruClassifier, argmax_rows};
use wgpu_gru::train::fit::{self, Rng};
use wgpu_gru::train::{self, GpuTrainer, Optimizer};
use wgpu_gru::{Direction, GruConfig, Variant};

fn assets() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("assets")
}

// ---------------------------------------------------------------------------------------------
// The head's backward and the optimisers.

/// A small classifier and a batch.
fn small_problem(
    config: GruConfig,
    classes: usize,
    steps: usize,
    batch: usize,
    seed: u64,
) -> (GruClassifier, Vec<f32>, Vec<u32>) {
    let model = fit::init_classifier(config, classes, seed).unwrap();
    let mut rng = Rng::new(seed + 1);
    let i = model.gru.config.input_size;
    let x: Vec<f32> = (0..steps * batch * i).map(|_| rng.uniform(1.0)).collect();
    let labels: Vec<u32> = (0..batch).map(|_| rng.below(classes) as u32).collect();
    (model, x, labels)
}

fn close(what: &str, got: &[f32], want: &[f32], tol: f32) {
    let scale = want.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    let err = wgpu_gru::max_abs_diff(got, want) / scale;
    assert!(
        err <= tol,
        "{what}: off by {err:e} (scaled), tolerance {tol:e}"
    );
}

/// The central difference of `loss` in the parameter `slot` picks (step 1e-3), with the step the
/// f32 parameter really took; the parameter is restored.
fn central(
    model: &mut GruClassifier,
    slot: impl Fn(&mut GruClassifier) -> &mut f32,
    loss: &dyn Fn(&GruClassifier) -> f64,
) -> f64 {
    let eps = 1e-3f32;
    let v = *slot(model);
    *slot(model) = v + eps;
    let up = loss(model);
    *slot(model) = v - eps;
    let down = loss(model);
    *slot(model) = v;
    (up - down) / ((v + eps) as f64 - (v - eps) as f64)
}

/// The reference classifier backward against finite differences of its own loss.
#[test]
fn classifier_reference_backward_matches_finite_differences() {
    let mut c = GruConfig::new(3, 5).with_direction(Direction::Bidirectional);
    c.batch_first = true;
    let (mut model, x, labels) = small_problem(c, 4, 4, 3, 3);
    let (_, g, head) = train::reference::classifier_backward(&model, &x, &labels, 4).unwrap();
    let loss = |m: &GruClassifier| train::reference::classifier_loss(m, &x, &labels, 4).unwrap();
    for k in [0, 3, 7, 19] {
        let fd = central(&mut model, |m| &mut m.dense.weight[k], &loss);
        assert!(
            (fd - head.weight[k] as f64).abs() < 1e-6,
            "dense.weight[{k}]: {fd} vs {}",
            head.weight[k]
        );
    }
    for k in [0, 2] {
        let fd = central(&mut model, |m| &mut m.dense.bias[k], &loss);
        assert!((fd - head.bias[k] as f64).abs() < 1e-6, "dense.bias[{k}]");
    }
    for (d, k) in [(0, 5), (1, 11), (0, 40), (1, 70)] {
        let fd = central(
            &mut model,
            |m| &mut m.gru.weights.layers[0][d].w_hh[k],
            &loss,
        );
        let a = g.layers[0][d].w_hh[k] as f64;
        assert!((fd - a).abs() < 1e-6, "w_hh[{d}][{k}]: {fd} vs {a}");
    }
}

/// The GPU's loss and gradients (head and GRU) against the f64 reference.
#[test]
fn gpu_classifier_gradients_match_reference() {
    let Some(ctx) = gpu_common::ctx() else {
        return;
    };
    for (k, (config, classes, steps, batch)) in [
        (GruConfig::new(8, 128), 10, 8, 64),
        (
            GruConfig::new(5, 65).with_variant(Variant::ResetBefore),
            3,
            5,
            7,
        ),
        (
            GruConfig::new(3, 33)
                .with_layers(2)
                .with_direction(Direction::Bidirectional),
            70,
            4,
            5,
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let mut config = config;
        config.batch_first = true;
        let (model, x, labels) = small_problem(config, classes, steps, batch, 10 + k as u64);
        let (loss, g, head) =
            train::reference::classifier_backward(&model, &x, &labels, steps).unwrap();
        let trainer = GpuTrainer::classifier(ctx, &model, Optimizer::adam(1e-3)).unwrap();
        let mut ws = trainer.workspace(Steps(steps), Batch(batch)).unwrap();
        let (st, gg, gh) = trainer.classifier_gradients(&mut ws, &x, &labels).unwrap();
        assert!(
            (st.loss as f64 - loss).abs() <= 1e-5 * loss.max(1.0),
            "case {k}: loss {} vs {loss}",
            st.loss
        );
        close(
            &format!("case {k} dense.weight"),
            &gh.weight,
            &head.weight,
            1e-4,
        );
        close(&format!("case {k} dense.bias"), &gh.bias, &head.bias, 1e-4);
        for (l, (a, b)) in gg.layers.iter().zip(&g.layers).enumerate() {
            for (d, (x, y)) in a.iter().zip(b).enumerate() {
                close(&format!("case {k} w_ih[{l}][{d}]"), &x.w_ih, &y.w_ih, 1e-4);
                close(&format!("case {k} w_hh[{l}][{d}]"), &x.w_hh, &y.w_hh, 1e-4);
                close(&format!("case {k} b_ih[{l}][{d}]"), &x.b_ih, &y.b_ih, 1e-4);
                close(&format!("case {k} b_hh[{l}][{d}]"), &x.b_hh, &y.b_hh, 1e-4);
            }
        }
        // The probabilities of a prediction equal the reference forward's.
        let probs = trainer.predict_proba(&mut ws, &x).unwrap();
        let want = model
            .reference_forward(&x, Steps(steps), Batch(batch))
            .unwrap();
        close(&format!("case {k} probabilities"), &probs, &want, 1e-5);
        let correct = argmax_rows(&want, classes)
            .iter()
            .zip(&labels)
            .filter(|&(&p, &l)| p == l as usize)
            .count();
        assert_eq!(st.correct as usize, correct, "case {k}: correct rows");
    }
}

/// Every parameter, flat, as the trainer lays them out (GRU cells, then the head).
fn flat(model: &GruClassifier) -> Vec<f64> {
    let mut v = Vec::new();
    for c in model.gru.weights.layers.iter().flatten() {
        for t in [&c.w_ih, &c.w_hh, &c.b_ih, &c.b_hh] {
            v.extend(t.iter().map(|&x| x as f64));
        }
    }
    v.extend(model.dense.weight.iter().map(|&x| x as f64));
    v.extend(model.dense.bias.iter().map(|&x| x as f64));
    v
}

fn flat_grads(g: &wgpu_gru::GruWeights, head: &wgpu_gru::model::Dense) -> Vec<f64> {
    let mut v = Vec::new();
    for c in g.layers.iter().flatten() {
        for t in [&c.w_ih, &c.w_hh, &c.b_ih, &c.b_hh] {
            v.extend(t.iter().map(|&x| x as f64));
        }
    }
    v.extend(head.weight.iter().map(|&x| x as f64));
    v.extend(head.bias.iter().map(|&x| x as f64));
    v
}

/// Three steps of each optimiser, with and without clipping, against `Optimizer::step_reference`
/// applied to the GPU's own gradients.
#[test]
fn gpu_optimisers_match_reference() {
    let Some(ctx) = gpu_common::ctx() else {
        return;
    };
    let mut config = GruConfig::new(4, 9);
    config.batch_first = true;
    let (model, x, labels) = small_problem(config, 5, 3, 6, 42);
    for (opt, clip) in [
        (Optimizer::adam(1e-2), None),
        (Optimizer::adam(1e-2), Some(0.05)),
        (
            Optimizer::Adam {
                lr: 3e-3,
                beta1: 0.8,
                beta2: 0.99,
                eps: 1e-6,
                weight_decay: 0.01,
            },
            None,
        ),
        (Optimizer::sgd(0.1, 0.9), None),
        (Optimizer::sgd(0.1, 0.0), Some(0.05)),
    ] {
        let mut trainer = GpuTrainer::classifier(ctx, &model, opt).unwrap();
        let mut ws = trainer.workspace(Steps(3), Batch(6)).unwrap();
        let mut p = flat(&model);
        let (mut m1, mut m2) = (vec![0.0; p.len()], vec![0.0; p.len()]);
        for step in 1..=3u64 {
            let (_, gg, gh) = trainer.classifier_gradients(&mut ws, &x, &labels).unwrap();
            let mut g = flat_grads(&gg, &gh);
            if let Some(max) = clip {
                let norm = g.iter().map(|v| v * v).sum::<f64>().sqrt();
                let s = (max as f64 / (norm + 1e-6)).min(1.0);
                g.iter_mut().for_each(|v| *v *= s);
            }
            // Start each step from the GPU's parameters, so only the update is compared.
            p = flat(&trainer.read_classifier().unwrap());
            let before = p.clone();
            opt.step_reference(step, &mut p, &g, &mut m1, &mut m2);
            trainer.train_step(&mut ws, &x, &labels, clip).unwrap();
            let got = flat(&trainer.read_classifier().unwrap());
            let worst = got
                .iter()
                .zip(&p)
                .zip(&before)
                .map(|((a, b), c)| (a - b).abs() / (b - c).abs().max(1e-3))
                .fold(0.0f64, f64::max);
            assert!(
                worst < 2e-3,
                "{opt:?} clip {clip:?} step {step}: update off by {worst:e} of its size"
            );
        }
        assert_eq!(trainer.steps_taken(), 3);
    }
}

// ---------------------------------------------------------------------------------------------
// Training the digits.

/// CI: `wgpu-gru train` for 3 epochs from the committed split: the stated accuracy, the last
/// stdout line, the model (readable by this crate, its accuracy the one reported) and the curve.
#[test]
fn train_cli_three_epochs_on_the_digits() {
    if gpu_common::ctx().is_none() {
        return;
    }
    let dir = TempDir::new("train");
    let out = dir.path("m.safetensors");
    let o = Command::new(bin())
        .args(["train", "--epochs", "3", "--target", "0", "--out"])
        .arg(&out)
        .env("NODEVICE_SELECT", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    let last = stdout.lines().last().unwrap_or_default();
    let pct: f64 = last
        .strip_prefix("final test accuracy: ")
        .and_then(|s| s.strip_suffix('%'))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("last stdout line {last:?}"));
    eprintln!("3 epochs: {pct}%\n{stderr}");
    assert!(
        pct >= 85.0,
        "3 epochs reached {pct}% (expected at least 85%)"
    );
    assert!(stderr.contains("epoch   3: loss"), "{stderr}");
    // The model file reads back, and scores what was reported.
    let model = GruClassifier::from_safetensors(&out).unwrap();
    let test = SafetensorsFile::open(assets().join("digits_test.safetensors")).unwrap();
    let x = test.require_f32("x", "test").unwrap();
    let (_, labels) = test.get_lengths("labels").unwrap().unwrap();
    let probs = model
        .reference_forward(&x.data, Steps(8), Batch(labels.len()))
        .unwrap();
    let right = argmax_rows(&probs, 10)
        .iter()
        .zip(&labels)
        .filter(|(a, b)| a == b)
        .count();
    let acc = 100.0 * right as f64 / labels.len() as f64;
    assert!(
        (acc - pct).abs() < 0.3,
        "the saved model scores {acc}%, {pct}% was reported"
    );
    let svg = std::fs::read_to_string(dir.path("m.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("test accuracy"));
}

/// The committed model that `wgpu-gru train` wrote (`assets/digits_trained.safetensors`): at
/// least 97 % on the test split, and PyTorch (`scripts/check_trained.py`, which loads it with
/// `load_state_dict`) predicts what this crate predicts.
#[test]
fn committed_trained_model_matches_pytorch() {
    let model =
        GruClassifier::from_safetensors(assets().join("digits_trained.safetensors")).unwrap();
    let test = SafetensorsFile::open(assets().join("digits_test.safetensors")).unwrap();
    let x = test.require_f32("x", "test").unwrap();
    let (_, labels) = test.get_lengths("labels").unwrap().unwrap();
    let torch = SafetensorsFile::open(assets().join("digits_trained_torch.safetensors")).unwrap();
    let torch_probs = torch
        .require_f32("torch_probs", "PyTorch predictions")
        .unwrap();
    let (_, torch_pred) = torch.get_lengths("torch_pred").unwrap().unwrap();
    let n = labels.len();
    let probs = model
        .reference_forward(&x.data, Steps(8), Batch(n))
        .unwrap();
    let pred = argmax_rows(&probs, 10);
    assert_eq!(pred, torch_pred, "predictions differ from PyTorch's");
    close("probabilities vs PyTorch", &probs, &torch_probs.data, 1e-5);
    let right = pred.iter().zip(&labels).filter(|(a, b)| a == b).count();
    let acc = right as f64 / n as f64;
    assert!(acc >= 0.97, "the committed model scores {acc}");
}
