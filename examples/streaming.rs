//! Streaming: four digit images arrive one pixel row at a time, as from a sensor. A
//! [`GpuStream`] keeps each stream's GRU state on the GPU between rows, and the classifier's head
//! is applied to the state after every row, so the prediction firms up as the rows come in.
//!
//! ```text
//! cargo run --release --example streaming
//! ```
//!
//! At the end the streamed state is checked against a one-shot forward of the whole images, and
//! one stream is reset and fed a new digit in two uneven chunks while the others carry on.

use std::error::Error;
use wgpu_gru::{Batch, Steps};

use wgpu_gru::formats::SafetensorsFile;
use wgpu_gru::gpu::{GpuContext, GpuGru, GpuStream};
use wgpu_gru::model::{GruClassifier, argmax_rows, softmax_rows};
use wgpu_gru::{SeqInput, max_abs_diff};

const ASSETS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/assets");
const STREAMS: usize = 4;

/// The head on the CPU, on a state `[B, H]`: class probabilities `[B, C]`.
fn classify(model: &GruClassifier, state: &[f32]) -> Result<Vec<f32>, wgpu_gru::Error> {
    let s: Vec<f64> = state.iter().map(|&v| v as f64).collect();
    let mut logits = model.dense.forward_f64(&s)?;
    softmax_rows(&mut logits, model.num_classes());
    Ok(logits.into_iter().map(|v| v as f32).collect())
}

fn main() -> Result<(), Box<dyn Error>> {
    let model = GruClassifier::from_safetensors(format!("{ASSETS}/digits_gru.safetensors"))?;
    let test = SafetensorsFile::open(format!("{ASSETS}/digits_test.safetensors"))?;
    let x = test.require_f32("x", "digits test split")?;
    let (_, labels) = test
        .get_lengths("labels")?
        .ok_or("no labels in the test split")?;
    let (steps, pixels) = (x.shape[1], x.shape[2]);
    let image = steps * pixels;
    let ctx = match GpuContext::new_default() {
        Ok(c) => c,
        Err(e) => {
            println!(
                "no GPU ({e}): streaming keeps its state on a GPU, so there is nothing to show"
            );
            return Ok(());
        }
    };
    println!("device: {}", ctx.describe());
    let gpu = GpuGru::new(&ctx, &model.gru)?;
    let h = model.gru.config.hidden_size;
    let classes = model.num_classes();

    // Four images [B, T, I] (the model is batch-first); row t of every image is one push.
    let images = &x.data[..STREAMS * image];
    let mut stream = GpuStream::new(&gpu, STREAMS)?;
    println!(
        "labels: {:?}\nafter row t, each stream's prediction (confidence):",
        &labels[..STREAMS]
    );
    for t in 0..steps {
        let rows: Vec<f32> = (0..STREAMS)
            .flat_map(|b| images[b * image + t * pixels..][..pixels].to_vec())
            .collect();
        // Output [B, 1, H]: h after this row, which is what the head reads.
        let y = stream.push(&rows, 1)?;
        let probs = classify(&model, &y)?;
        let pred = argmax_rows(&probs, classes);
        let line: Vec<String> = pred
            .iter()
            .enumerate()
            .map(|(b, &p)| format!("{p} ({:>3.0}%)", 100.0 * probs[b * classes + p]))
            .collect();
        println!("  t={t}: {}", line.join("   "));
    }

    // The streamed state is the one-shot forward's final state.
    let one_shot = gpu.forward(&SeqInput::new(images, Steps(steps), Batch(STREAMS)))?;
    let streamed = stream.state()?;
    println!(
        "max |streamed state − one-shot h_n| = {:.1e}",
        max_abs_diff(&streamed, &one_shot.h_n)
    );

    // Stream 1 starts a new digit; the other streams see blank rows meanwhile. The new digit comes
    // in two chunks of 3 and 5 rows.
    let next = &x.data[STREAMS * image..(STREAMS + 1) * image];
    stream.reset_row(1)?;
    let mut last = vec![0.0f32; STREAMS * h];
    let mut t0 = 0;
    for n in [3usize, 5] {
        let mut chunk = vec![0.0f32; STREAMS * n * pixels];
        chunk[n * pixels..2 * n * pixels].copy_from_slice(&next[t0 * pixels..(t0 + n) * pixels]);
        let y = stream.push(&chunk, n)?; // [B, n, H]
        for b in 0..STREAMS {
            last[b * h..(b + 1) * h].copy_from_slice(&y[(b * n + n - 1) * h..(b * n + n) * h]);
        }
        t0 += n;
    }
    let probs = classify(&model, &last[h..2 * h])?;
    let fresh = model.reference_forward(next, Steps(steps), Batch(1))?;
    println!(
        "stream 1 after reset_row and a new digit (label {}): predicts {}, max |Δprob| vs a fresh \
         classification {:.1e}",
        labels[STREAMS],
        argmax_rows(&probs, classes)[0],
        max_abs_diff(&probs, &fresh)
    );
    Ok(())
}
