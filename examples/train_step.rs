//! Time a GPU training step against a GPU forward, shape by shape.
//!
//! ```sh
//! cargo run --release --example train_step                 # the standard shapes
//! cargo run --release --example train_step -- seed 8,64,8,128 --reps 5
//! ```
//!
//! A training step is a classifier's: upload `[B, T, I]` and labels, forward with the tape,
//! cross-entropy through Dense(10), backward through the head and the GRU, Adam, read back the
//! loss: one submit (`wgpu_gru::train::bench::time_train_step`). The forward is
//! `GpuGru::submit_and_wait` on the same shape (uploaded once, as `wgpu-gru bench` times it).

use wgpu_gru::bench::{STANDARD_SHAPES, Shape, median_ms};
use wgpu_gru::gpu::{GpuContext, GpuGru};
use wgpu_gru::train::bench::time_train_step;
use wgpu_gru::{Batch, Steps};
use wgpu_gru::{SeqInput, Variant};

fn main() -> Result<(), String> {
    let mut shapes = Vec::new();
    let mut reps = 5;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--reps" {
            reps = args
                .next()
                .and_then(|v| v.parse().ok())
                .ok_or("--reps needs a number")?;
        } else {
            shapes.push(Shape::parse(&a).map_err(|e| e.to_string())?);
        }
    }
    if shapes.is_empty() {
        shapes = STANDARD_SHAPES.to_vec();
    }
    let ctx = GpuContext::new_default().map_err(|e| e.to_string())?;
    println!("device: {}", ctx.describe());
    println!(
        "{:<22} {:>12} {:>14} {:>8} {:>11}",
        "shape (B,T,I,H)", "forward ms", "train-step ms", "ratio", "dispatches"
    );
    for s in shapes {
        let gru = s.random_model(Variant::ResetAfter, 42);
        let g = GpuGru::new(&ctx, &gru).map_err(|e| e.to_string())?;
        let mut ws = g
            .workspace(Steps(s.steps), Batch(s.batch))
            .map_err(|e| e.to_string())?;
        let x = s.random_input(7);
        g.write_input(&mut ws, &SeqInput::new(&x, Steps(s.steps), Batch(s.batch)))
            .map_err(|e| e.to_string())?;
        let fwd =
            median_ms(1, reps, || g.submit_and_wait(&ws).map(|_| ())).map_err(|e| e.to_string())?;
        let step =
            time_train_step(&ctx, s, Variant::ResetAfter, 1, reps).map_err(|e| e.to_string())?;
        println!(
            "{:<22} {:>12.3} {:>14.3} {:>8.2} {:>11}",
            format!(
                "{} ({},{},{},{})",
                s.name.unwrap_or("custom"),
                s.batch,
                s.steps,
                s.input,
                s.hidden
            ),
            fwd,
            step.median_ms,
            step.median_ms / fwd,
            step.dispatches
        );
    }
    Ok(())
}
