//! Training a [`GruClassifier`] from scratch on the GPU: seeded initialisation, minibatches in a
//! seeded order, Adam (or SGD), evaluation after each epoch.
//!
//! [`fit`] is what `wgpu-gru train` runs on the digits; it reports through callbacks so that a
//! CLI can draw a progress bar and a test can stay quiet.

use crate::io::{Batch, Steps};
use std::time::Instant;

use super::gpu::{GpuTrainer, TrainWorkspace};
use super::optimizer::Optimizer;
use crate::config::GruConfig;
use crate::error::{Error, Result};
use crate::model::{Dense, GruClassifier, argmax_rows};
use crate::weights::{CellWeights, Gru, GruWeights};

/// splitmix64: a small seeded generator, the same on every platform.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `[0, 1)` with 53 random bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in `[-bound, bound)`.
    pub fn uniform(&mut self, bound: f32) -> f32 {
        ((self.next_f64() * 2.0 - 1.0) * bound as f64) as f32
    }
    /// Uniform in `0..n` (`n ≥ 1`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_f64() * n as f64) as usize % n.max(1)
    }
    /// Fisher–Yates shuffle.
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i + 1);
            v.swap(i, j);
        }
    }
}

/// A new classifier GRU(`hidden`) → Dense(`classes`) with PyTorch's initialisation, seeded:
/// every GRU weight and bias uniform in ±1/√H (`nn.GRU`), the dense weight and bias uniform in
/// ±1/√H (`nn.Linear`'s kaiming-uniform with a = √5 comes to the same bound). `config` gives the
/// GRU's structure (its `hidden_size` is H).
pub fn init_classifier(config: GruConfig, classes: usize, seed: u64) -> Result<GruClassifier> {
    config.validate()?;
    let h = config.hidden_size;
    let k = 1.0 / (h as f32).sqrt();
    let mut rng = Rng::new(seed);
    let mut vec = |n: usize| (0..n).map(|_| rng.uniform(k)).collect::<Vec<f32>>();
    let layers = (0..config.num_layers)
        .map(|l| {
            let i = config.layer_input_size(l);
            (0..config.num_directions())
                .map(|_| CellWeights {
                    w_ih: vec(3 * h * i),
                    w_hh: vec(3 * h * h),
                    b_ih: vec(3 * h),
                    b_hh: vec(3 * h),
                })
                .collect()
        })
        .collect();
    let dense = Dense::new(h, classes, vec(classes * h), vec(classes))?;
    GruClassifier::new(Gru::new(config, GruWeights { layers })?, dense)
}

/// A labelled set of sequences, batch-first: `x` `[N, T, I]`, `labels` `[N]`.
#[derive(Debug, Clone, Copy)]
pub struct Dataset<'a> {
    /// `[N, T, I]`.
    pub x: &'a [f32],
    /// `[N]`, each below the classifier's classes.
    pub labels: &'a [u32],
    /// Steps T of every sequence.
    pub steps: usize,
}

impl Dataset<'_> {
    /// Rows N.
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
    fn check(&self, input: usize, what: &str) -> Result<()> {
        let n = self.len() * self.steps * input;
        if self.x.len() != n {
            return Err(Error::shape(
                format!("{what} x"),
                format!("[{}, {}, {input}] ({n} elements)", self.len(), self.steps),
                format!("{} elements", self.x.len()),
            ));
        }
        if self.steps == 0 {
            return Err(Error::arg(what, "sequences need T ≥ 1 steps"));
        }
        Ok(())
    }
}

/// How [`fit`] trains.
#[derive(Debug, Clone, PartialEq)]
pub struct FitOptions {
    /// Most epochs.
    pub epochs: usize,
    /// Stop after the first epoch (from `min_epochs` on) whose test accuracy reaches this
    /// fraction (as `scripts/train_digits.py` does); `None` runs every epoch.
    pub target: Option<f64>,
    /// Epochs before `target` may stop the run.
    pub min_epochs: usize,
    /// Rows per minibatch (the last one of an epoch takes what is left).
    pub batch_size: usize,
    /// Clip the gradients to this global norm.
    pub clip: Option<f32>,
    /// Seed of the minibatch order.
    pub seed: u64,
}

impl Default for FitOptions {
    /// The seed script's settings: batches of 64, at most 200 epochs, stop at 97 % test
    /// accuracy from epoch 10 on (its optimiser, [`SEED_OPTIMIZER`], is the trainer's).
    fn default() -> Self {
        FitOptions {
            epochs: 200,
            target: Some(0.97),
            min_epochs: 10,
            batch_size: 64,
            clip: None,
            seed: 0,
        }
    }
}

/// The seed script's optimiser: Adam with learning rate 3e-3.
pub const SEED_OPTIMIZER: Optimizer = Optimizer::adam(3e-3);

/// One epoch's numbers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochReport {
    /// 1-based.
    pub epoch: usize,
    /// Mean training loss over the epoch's rows (each batch's mean cross-entropy, weighted by
    /// its rows, before its update).
    pub loss: f64,
    /// Training accuracy over the epoch (each row scored before its batch's update).
    pub train_accuracy: f64,
    /// Test accuracy after the epoch.
    pub test_accuracy: f64,
    /// Seconds the epoch took (training and evaluation).
    pub seconds: f64,
}

/// Test-set predictions in chunks of one workspace.
fn predict(
    trainer: &GpuTrainer,
    ws: &mut TrainWorkspace,
    data: &Dataset<'_>,
    row: usize,
) -> Result<Vec<usize>> {
    let b = ws.batch();
    let mut pred = Vec::with_capacity(data.len());
    let mut chunk = Vec::with_capacity(b * row);
    for start in (0..data.len()).step_by(b) {
        let n = (data.len() - start).min(b);
        chunk.clear();
        chunk.extend_from_slice(&data.x[start * row..(start + n) * row]);
        // Pad a short chunk by repeating its first row; those predictions are dropped.
        while chunk.len() < b * row {
            chunk.extend_from_within(0..row);
        }
        let probs = trainer.predict_proba(ws, &chunk)?;
        pred.extend(argmax_rows(&probs, trainer.classes()).into_iter().take(n));
    }
    Ok(pred)
}

/// The fraction of `data` the trainer's current model classifies right (on the GPU).
pub fn accuracy(trainer: &GpuTrainer, data: &Dataset<'_>) -> Result<f64> {
    let b = data.len().clamp(1, 512);
    let mut ws = trainer.workspace(Steps(data.steps), Batch(b))?;
    let row = data.steps * trainer.config().input_size;
    let pred = predict(trainer, &mut ws, data, row)?;
    Ok(score(&pred, data.labels))
}

fn score(pred: &[usize], labels: &[u32]) -> f64 {
    let right = pred
        .iter()
        .zip(labels)
        .filter(|&(&p, &l)| p == l as usize)
        .count();
    right as f64 / labels.len().max(1) as f64
}

/// Trains `trainer` (a classifier with a batch-first GRU) with its optimiser on `train`, scoring
/// `test` after each epoch. `on_batch(done, total)` is called after each minibatch, `on_epoch`
/// after each epoch. Returns every epoch's report.
pub fn fit(
    trainer: &mut GpuTrainer,
    train: &Dataset<'_>,
    test: &Dataset<'_>,
    opts: &FitOptions,
    on_batch: &mut dyn FnMut(usize, usize),
    on_epoch: &mut dyn FnMut(&EpochReport),
) -> Result<Vec<EpochReport>> {
    let c = trainer.config().clone();
    if !c.batch_first {
        return Err(Error::arg(
            "trainer",
            "fit takes batch-first data: build the classifier with batch_first = true",
        ));
    }
    if trainer.classes() == 0 {
        return Err(Error::arg("trainer", "fit needs a classifier head"));
    }
    train.check(c.input_size, "training set")?;
    test.check(c.input_size, "test set")?;
    if train.steps != test.steps {
        return Err(Error::arg(
            "test set",
            format!(
                "T = {} differs from the training set's {}",
                test.steps, train.steps
            ),
        ));
    }
    if opts.batch_size == 0 || train.is_empty() {
        return Err(Error::arg("batch_size", "need B ≥ 1 and a training row"));
    }
    let row = train.steps * c.input_size;
    let bs = opts.batch_size.min(train.len());
    let rest = train.len() % bs;
    let mut ws_full = trainer.workspace(Steps(train.steps), Batch(bs))?;
    let mut ws_rest = if rest > 0 {
        Some(trainer.workspace(Steps(train.steps), Batch(rest))?)
    } else {
        None
    };
    let mut ws_eval = trainer.workspace(Steps(test.steps), Batch(test.len().clamp(1, 512)))?;
    let mut order: Vec<usize> = (0..train.len()).collect();
    let mut rng = Rng::new(opts.seed);
    let mut xb: Vec<f32> = Vec::with_capacity(bs * row);
    let mut lb: Vec<u32> = Vec::with_capacity(bs);
    let batches = train.len().div_ceil(bs);
    let mut reports = Vec::new();
    for epoch in 1..=opts.epochs {
        let t0 = Instant::now();
        rng.shuffle(&mut order);
        let (mut loss_sum, mut right) = (0.0f64, 0usize);
        for (k, idx) in order.chunks(bs).enumerate() {
            xb.clear();
            lb.clear();
            for &i in idx {
                xb.extend_from_slice(&train.x[i * row..(i + 1) * row]);
                lb.push(train.labels[i]);
            }
            let ws = if idx.len() == bs {
                &mut ws_full
            } else {
                ws_rest
                    .as_mut()
                    .ok_or_else(|| Error::arg("batch", "no workspace for the last batch"))?
            };
            let st = trainer.train_step(ws, &xb, &lb, opts.clip)?;
            if !st.loss.is_finite() {
                return Err(Error::arg(
                    "training",
                    format!("the loss is {} at epoch {epoch}, batch {}", st.loss, k + 1),
                ));
            }
            loss_sum += st.loss as f64 * idx.len() as f64;
            right += st.correct as usize;
            on_batch(k + 1, batches);
        }
        let pred = predict(trainer, &mut ws_eval, test, row)?;
        let report = EpochReport {
            epoch,
            loss: loss_sum / train.len() as f64,
            train_accuracy: right as f64 / train.len() as f64,
            test_accuracy: score(&pred, test.labels),
            seconds: t0.elapsed().as_secs_f64(),
        };
        on_epoch(&report);
        reports.push(report);
        if let Some(t) = opts.target
            && epoch >= opts.min_epochs
            && report.test_accuracy >= t
        {
            break;
        }
    }
    Ok(reports)
}
