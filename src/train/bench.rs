//! Timing a training step: what `wgpu-gru bench`'s `train-step` rows measure.

use super::fit::init_classifier;
use super::gpu::{GpuTrainer, Optimizer};
use crate::bench::{Shape, median_ms};
use crate::config::{GruConfig, Variant};
use crate::error::Result;
use crate::gpu::GpuContext;
use crate::io::{Batch, Steps};

/// Classes of the dense head a `train-step` row trains (the seed's 10 digits).
pub const TRAIN_STEP_CLASSES: usize = 10;

/// One training step's median time on one shape.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainStepTiming {
    /// Median milliseconds of one step: upload the batch `[B, T, I]` and labels, forward,
    /// cross-entropy through a dense head, backward, Adam, read back the loss (one submit).
    pub median_ms: f64,
    /// Compute dispatches of one step.
    pub dispatches: u32,
}

/// Times training steps of a GRU of `shape` (one layer, `variant`) → Dense(10) → softmax on
/// random data, after `warmup` untimed steps; the median of `reps`.
pub fn time_train_step(
    ctx: &GpuContext,
    shape: Shape,
    variant: Variant,
    warmup: usize,
    reps: usize,
) -> Result<TrainStepTiming> {
    let mut config = GruConfig::new(shape.input, shape.hidden).with_variant(variant);
    config.batch_first = true;
    let model = init_classifier(config, TRAIN_STEP_CLASSES, 42)?;
    let mut trainer = GpuTrainer::classifier(ctx, &model, Optimizer::adam(1e-4))?;
    let mut ws = trainer.workspace(Steps(shape.steps), Batch(shape.batch))?;
    let x = shape.random_input(7);
    let labels: Vec<u32> = (0..shape.batch)
        .map(|b| (b % TRAIN_STEP_CLASSES) as u32)
        .collect();
    let ms = median_ms(warmup.max(1), reps, || {
        trainer.train_step(&mut ws, &x, &labels, None).map(|_| ())
    })?;
    Ok(TrainStepTiming {
        median_ms: ms,
        dispatches: trainer.step_dispatches(&ws)?,
    })
}
