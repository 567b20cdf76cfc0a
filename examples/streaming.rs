//! Streaming: four digit images arrive one pixel row at a time, as from a sensor. A [`Stream`]
//! keeps each stream's GRU state between rows, and the classifier's head is applied to the
//! state after every row, so the prediction firms up as the rows come in.
//!
//! The same code runs on every path through the one trait: the CPU ([`CpuStream`]) always, and
//! the GPU ([`GpuStream`], state kept on the device) where an adapter exists.
//!
//! ```text
//! cargo run --release --example streaming
//! ```
//!
//! On each path the streamed state is checked against the f64 reference's one forward over the
//! whole images, and one stream is reset and fed a new digit in two uneven chunks while the
//! others carry on.

use std::error::Error;

use wgpu_gru::cpu::{CpuGru, CpuStream};
use wgpu_gru::formats::SafetensorsFile;
use wgpu_gru::gpu::{GpuContext, GpuGru, GpuStream};
use wgpu_gru::model::{GruClassifier, argmax_rows, softmax_rows};
use wgpu_gru::{Batch, SeqInput, Steps, Stream, max_abs_diff, reference};

const ASSETS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/assets");
const STREAMS: usize = 4;

/// The head on the CPU, on a state `[B, H]`: class probabilities `[B, C]`.
fn classify(model: &GruClassifier, state: &[f32]) -> Result<Vec<f32>, wgpu_gru::Error> {
    let s: Vec<f64> = state.iter().map(|&v| v as f64).collect();
    let mut logits = model.dense.forward_f64(&s)?;
    softmax_rows(&mut logits, model.num_classes());
    Ok(logits.into_iter().map(|v| v as f32).collect())
}

/// The digits as they arrive: `images` `[B, T, I]` (the model is batch-first), row `t` of every
/// image one step.
struct Digits<'a> {
    images: &'a [f32],
    /// The image that stream 1 starts over with, `[T, I]`.
    next: &'a [f32],
    labels: &'a [usize],
    steps: usize,
    pixels: usize,
}

/// Streams the digits through `stream` (any path) and returns the final state `[L, B, H]`.
fn run(
    name: &str,
    stream: &mut dyn Stream,
    model: &GruClassifier,
    d: &Digits<'_>,
) -> Result<Vec<f32>, Box<dyn Error>> {
    let (steps, pixels, image) = (d.steps, d.pixels, d.steps * d.pixels);
    let h = stream.config().hidden_size;
    let classes = model.num_classes();
    println!("{name}: after row t, each stream's prediction (confidence):");
    let mut rows = vec![0.0f32; STREAMS * pixels];
    let mut y = vec![0.0f32; STREAMS * h];
    for t in 0..steps {
        for b in 0..STREAMS {
            rows[b * pixels..(b + 1) * pixels]
                .copy_from_slice(&d.images[b * image + t * pixels..][..pixels]);
        }
        // Output [B, 1, H]: h after this row, which is what the head reads.
        stream.step_into(&rows, &mut y)?;
        let probs = classify(model, &y)?;
        let pred = argmax_rows(&probs, classes);
        let line: Vec<String> = pred
            .iter()
            .enumerate()
            .map(|(b, &p)| format!("{p} ({:>3.0}%)", 100.0 * probs[b * classes + p]))
            .collect();
        println!("  t={t}: {}", line.join("   "));
    }

    // The streamed state is the one forward's final state.
    let one = reference::forward(
        &model.gru,
        &SeqInput::new(d.images, Steps(steps), Batch(STREAMS)),
    )?;
    let streamed = stream.state()?;
    println!(
        "  max |streamed state − one forward's h_n (f64 reference)| = {:.1e}",
        max_abs_diff(&streamed, &one.h_n)
    );

    // Stream 1 starts a new digit; the other streams see blank rows meanwhile. The new digit
    // comes in two chunks of 3 and 5 rows.
    stream.reset_row(1)?;
    let mut last = vec![0.0f32; STREAMS * h];
    let mut t0 = 0;
    for n in [3usize, 5] {
        let mut chunk = vec![0.0f32; STREAMS * n * pixels];
        chunk[n * pixels..2 * n * pixels].copy_from_slice(&d.next[t0 * pixels..(t0 + n) * pixels]);
        let y = stream.seq(&chunk, Steps(n))?; // [B, n, H]
        for b in 0..STREAMS {
            last[b * h..(b + 1) * h].copy_from_slice(&y[(b * n + n - 1) * h..(b * n + n) * h]);
        }
        t0 += n;
    }
    let probs = classify(model, &last[h..2 * h])?;
    let fresh = model.reference_forward(d.next, Steps(steps), Batch(1))?;
    println!(
        "  stream 1 after reset_row and a new digit (label {}): predicts {}, max |Δprob| vs a \
         fresh classification {:.1e}",
        d.labels[STREAMS],
        argmax_rows(&probs, classes)[0],
        max_abs_diff(&probs, &fresh)
    );
    Ok(stream.state()?)
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
    let digits = Digits {
        images: &x.data[..STREAMS * image],
        next: &x.data[STREAMS * image..(STREAMS + 1) * image],
        labels: &labels,
        steps,
        pixels,
    };
    println!("labels: {:?}", &labels[..STREAMS]);

    let cpu = CpuGru::new(&model.gru)?;
    let on_cpu = run("cpu", &mut CpuStream::new(&cpu, STREAMS)?, &model, &digits)?;

    let ctx = match GpuContext::new_default() {
        Ok(c) => c,
        Err(e) => {
            println!("no GPU ({e}): the CPU stream is all there is to show");
            return Ok(());
        }
    };
    let gpu = GpuGru::new(&ctx, &model.gru)?;
    let name = format!("gpu ({})", ctx.describe());
    let on_gpu = run(&name, &mut GpuStream::new(&gpu, STREAMS)?, &model, &digits)?;
    println!(
        "max |CPU stream's state − GPU stream's state| = {:.1e}",
        max_abs_diff(&on_cpu, &on_gpu)
    );
    Ok(())
}
