//! `wgpu-gru bench`: median time per forward on the standard shapes, for each backend.

use std::io::Write;

use clap::Args as ClapArgs;
use wgpu_gru::bench::{STANDARD_SHAPES, Shape, median_ms};
use wgpu_gru::cpu::CpuGru;
use wgpu_gru::gpu::{Algorithm, GpuContext, GpuGru};
use wgpu_gru::{GruOutput, SeqInput, Variant, reference};

/// Arguments of `wgpu-gru bench`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// A standard shape (latency, seed, medium, large, long) or B,T,I,H; repeatable. Default: all five.
    #[arg(long = "shape")]
    shapes: Vec<String>,
    /// Comma-separated backends: gpu, cpu, reference, and gpu-step / gpu-seq to force a GPU algorithm.
    #[arg(long, default_value = "gpu,cpu", value_delimiter = ',')]
    backend: Vec<String>,
    /// Cell variant.
    #[arg(long, default_value = "reset-after", value_parser = ["reset-after", "reset-before"])]
    variant: String,
    /// Timed forwards per shape and backend (median reported).
    #[arg(long, default_value_t = 10)]
    reps: usize,
    /// Untimed forwards first.
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// Threads for the cpu backend.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Write the results as a JSON array to this file.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
    /// Run the reference even on shapes above 2 GFLOP (slow: f64, unoptimised).
    #[arg(long)]
    force_reference: bool,
}

struct Row {
    shape: Shape,
    backend: String,
    device: String,
    variant: &'static str,
    median_ms: f64,
    dispatches: u32,
    submits: u32,
}

impl Row {
    fn gflops(&self) -> f64 {
        self.shape.flops() / (self.median_ms * 1e6)
    }
    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "shape": self.shape.label(),
            "batch": self.shape.batch,
            "steps": self.shape.steps,
            "input": self.shape.input,
            "hidden": self.shape.hidden,
            "backend": self.backend,
            "device": self.device,
            "variant": self.variant,
            "median_ms": self.median_ms,
            "gflops": self.gflops(),
            "dispatches": self.dispatches,
            "submits": self.submits,
        })
    }
}

fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

/// Runs the benchmark and prints a table (and JSON when asked).
pub fn main(args: Args) -> Result<(), String> {
    let shapes: Vec<Shape> = if args.shapes.is_empty() {
        STANDARD_SHAPES.to_vec()
    } else {
        args.shapes
            .iter()
            .map(|s| Shape::parse(s))
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?
    };
    let (variant, vname) = match args.variant.as_str() {
        "reset-before" => (Variant::ResetBefore, "reset-before"),
        _ => (Variant::ResetAfter, "reset-after"),
    };
    for b in &args.backend {
        if ![
            "gpu",
            "gpu-step",
            "gpu-seq",
            "gpu-regs",
            "gpu-tiled",
            "cpu",
            "reference",
        ]
        .contains(&b.as_str())
        {
            return Err(format!(
                "--backend: unknown backend {b:?} (gpu, gpu-step, gpu-seq, gpu-regs, gpu-tiled, cpu, reference)"
            ));
        }
    }
    let wants_gpu = args.backend.iter().any(|b| b.starts_with("gpu"));
    let ctx = if wants_gpu {
        Some(GpuContext::new_default().map_err(|e| format!("--backend gpu: {e}"))?)
    } else {
        None
    };
    let cpu = cpu_name();
    let mut rows = Vec::new();
    println!(
        "{:<10} {:<10} {:<44} {:>11} {:>9} {:>10} {:>7}",
        "shape", "backend", "device", "median ms", "GFLOP/s", "dispatches", "submits"
    );
    let total = shapes.len() * args.backend.len();
    let mut done = 0;
    for shape in &shapes {
        let gru = shape.random_model(variant, 42);
        let x = shape.random_input(7);
        let input = SeqInput::new(&x, shape.steps, shape.batch);
        for backend in &args.backend {
            done += 1;
            eprintln!("[{done}/{total}] {} on {backend} …", shape.label());
            let _ = std::io::stderr().flush();
            let row = match backend.as_str() {
                "cpu" => {
                    let mut c = CpuGru::new(&gru)
                        .map_err(|e| e.to_string())?
                        .with_threads(args.threads);
                    let mut out = GruOutput {
                        output: Vec::new(),
                        h_n: Vec::new(),
                    };
                    let ms = median_ms(args.warmup, args.reps, || c.forward_into(&input, &mut out))
                        .map_err(|e| e.to_string())?;
                    Row {
                        shape: *shape,
                        backend: backend.clone(),
                        device: format!("{cpu} ({} thread)", args.threads),
                        variant: vname,
                        median_ms: ms,
                        dispatches: 0,
                        submits: 0,
                    }
                }
                "reference" => {
                    if shape.flops() > 2e9 && !args.force_reference {
                        eprintln!(
                            "  skipped: reference on {:.1} GFLOP (use --force-reference)",
                            shape.flops() / 1e9
                        );
                        continue;
                    }
                    let reps = args.reps.min(3);
                    let ms = median_ms(0, reps, || reference::forward(&gru, &input).map(|_| ()))
                        .map_err(|e| e.to_string())?;
                    Row {
                        shape: *shape,
                        backend: backend.clone(),
                        device: format!("{cpu} (f64 reference)"),
                        variant: vname,
                        median_ms: ms,
                        dispatches: 0,
                        submits: 0,
                    }
                }
                gpu => {
                    let ctx = ctx.as_ref().ok_or("no GPU context")?;
                    let algo = match gpu {
                        "gpu-step" => Algorithm::PerStep,
                        "gpu-seq" => Algorithm::Sequence,
                        "gpu-regs" => Algorithm::SequenceRegisters,
                        "gpu-tiled" => Algorithm::Tiled,
                        _ => Algorithm::Auto,
                    };
                    let g = GpuGru::new(ctx, &gru)
                        .map_err(|e| e.to_string())?
                        .with_algorithm(algo);
                    let mut ws = g
                        .workspace(shape.steps, shape.batch)
                        .map_err(|e| e.to_string())?;
                    g.write_input(&mut ws, &input).map_err(|e| e.to_string())?;
                    let mut stats = Default::default();
                    let ms = median_ms(args.warmup.max(1), args.reps, || {
                        stats = g.submit_and_wait(&ws)?;
                        Ok(())
                    })
                    .map_err(|e| e.to_string())?;
                    let label = match stats.algorithm {
                        Algorithm::Sequence => format!("{gpu}:seq{}", stats.rows_per_workgroup),
                        Algorithm::Tiled => format!("{gpu}:tiled{}", stats.rows_per_workgroup),
                        _ => format!("{gpu}:step"),
                    };
                    let _ = label;
                    Row {
                        shape: *shape,
                        backend: backend.clone(),
                        device: ctx.describe(),
                        variant: vname,
                        median_ms: ms,
                        dispatches: stats.dispatches,
                        submits: stats.submits,
                    }
                }
            };
            let device: String = row.device.chars().take(44).collect();
            println!(
                "{:<10} {:<10} {:<44} {:>11.3} {:>9.1} {:>10} {:>7}",
                row.shape.label(),
                row.backend,
                device,
                row.median_ms,
                row.gflops(),
                row.dispatches,
                row.submits
            );
            rows.push(row);
        }
    }
    if let Some(path) = &args.json {
        let arr = serde_json::Value::Array(rows.iter().map(Row::json).collect());
        let text = serde_json::to_string_pretty(&arr).map_err(|e| e.to_string())?;
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, text).map_err(|e| format!("{}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
