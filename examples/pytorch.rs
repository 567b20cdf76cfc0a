//! Load a PyTorch `nn.GRU` state_dict saved as safetensors, run it on the GPU, and compare with
//! the f64 CPU reference (and with PyTorch's own output when the file holds one).
//!
//! ```text
//! cargo run --release --example pytorch                          # tests/data/golden/pytorch_basic.safetensors
//! cargo run --release --example pytorch -- gru.safetensors       # your own state_dict
//! cargo run --release --example pytorch -- gru.safetensors --batch-first
//! ```
//!
//! Export from PyTorch with
//! `safetensors.torch.save_file(model.gru.state_dict(), "gru.safetensors")` (the GRU module's own
//! state_dict, so the names are `weight_ih_l0`, …). If the file also holds an `input` tensor
//! (`[T, B, I]`, or `[B, T, I]` batch-first), optional `h0` and `lengths`, they are used; otherwise
//! a deterministic random input of T = 16, B = 4 is. An `expected_output` / `expected_h_n` pair,
//! as in the golden files, is compared too.

use std::error::Error;
use wgpu_gru::{Batch, Steps};

use wgpu_gru::formats::{self, Format, ImportOptions, SafetensorsFile};
use wgpu_gru::gpu::{GpuContext, GpuGru};
use wgpu_gru::{SeqInput, reference};

const DEFAULT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/golden/pytorch_basic.safetensors"
);

fn main() -> Result<(), Box<dyn Error>> {
    let mut path = DEFAULT.to_string();
    let mut batch_first = None;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--batch-first" => batch_first = Some(true),
            _ => path = arg,
        }
    }

    // The golden files record nn.GRU's options (batch_first, bidirectional) in their metadata; a
    // plain state_dict has none, and PyTorch's defaults apply.
    let file = SafetensorsFile::open(&path)?;
    let mut opts = formats::options_from_metadata(&file.metadata()?)
        .map(|m| m.options)
        .unwrap_or_else(|_| ImportOptions::default());
    if let Some(bf) = batch_first {
        opts.batch_first = bf;
    }
    let gru = formats::load(&path, Some(Format::PyTorch), &opts)?.gru;
    let c = &gru.config;
    println!(
        "{path}\n  nn.GRU(input_size={}, hidden_size={}, num_layers={}, bidirectional={}, batch_first={})",
        c.input_size,
        c.hidden_size,
        c.num_layers,
        c.num_directions() == 2,
        c.batch_first
    );

    // The file's own input, or a deterministic one.
    let (x, steps, batch) = match file.get_f32("input")? {
        Some(t) if t.shape.len() == 3 => {
            let (steps, batch) = if c.batch_first {
                (t.shape[1], t.shape[0])
            } else {
                (t.shape[0], t.shape[1])
            };
            (t.data, steps, batch)
        }
        _ => {
            let (steps, batch) = (16, 4);
            let x = (0..steps * batch * c.input_size)
                .map(|i| ((i as f32) * 0.618).sin())
                .collect();
            (x, steps, batch)
        }
    };
    let h0 = file.get_f32("h0")?.map(|t| t.data);
    let lengths = file.get_lengths("lengths")?.map(|(_, l)| l);
    let mut input = SeqInput::new(&x, Steps(steps), Batch(batch));
    if let Some(h0) = &h0 {
        input = input.with_h0(h0);
    }
    if let Some(l) = &lengths {
        input = input.with_lengths(l);
    }
    println!(
        "  input: T={steps}, B={batch}{}{}",
        if h0.is_some() { ", with h0" } else { "" },
        if lengths.is_some() {
            ", with lengths"
        } else {
            ""
        }
    );

    let want = reference::forward(&gru, &input)?;
    let ctx = match GpuContext::new_default() {
        Ok(ctx) => ctx,
        Err(e) => {
            println!("no GPU ({e}); the f64 reference ran alone");
            return Ok(());
        }
    };
    let gpu = GpuGru::new(&ctx, &gru)?;
    let (got, stats) = gpu.forward_with_stats(&input)?;
    println!(
        "  ran on {} ({} dispatches, {} submit)",
        ctx.describe(),
        stats.dispatches,
        stats.submits
    );
    println!(
        "  max |GPU − f64 reference|: output {:.2e}, h_n {:.2e}",
        wgpu_gru::max_abs_diff(&got.output, &want.output),
        wgpu_gru::max_abs_diff(&got.h_n, &want.h_n)
    );
    if let (Some(y), Some(h)) = (
        file.get_f32("expected_output")?,
        file.get_f32("expected_h_n")?,
    ) {
        println!(
            "  max |GPU − PyTorch|:        output {:.2e}, h_n {:.2e}",
            wgpu_gru::max_abs_diff(&got.output, &y.data),
            wgpu_gru::max_abs_diff(&got.h_n, &h.data)
        );
    }
    let err = got.max_abs_diff(&want);
    if err > 1e-5 {
        return Err(format!("GPU and reference differ by {err:e} (> 1e-5)").into());
    }
    Ok(())
}
