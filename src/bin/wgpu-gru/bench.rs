//! `wgpu-gru bench`: median time per forward on the standard shapes, for each backend.

use std::io::Write;
use wgpu_gru::{Batch, Steps};

use clap::Args as ClapArgs;
use wgpu_gru::bench::{STANDARD_SHAPES, Shape, median_ms};
use wgpu_gru::cpu::CpuGru;
use wgpu_gru::gpu::{Algorithm, GpuContext, GpuGru, GpuOptions, Precision};
use wgpu_gru::{GruOutput, SeqInput, Variant, reference};

/// Arguments of `wgpu-gru bench`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// A standard shape (latency, seed, medium, large, long) or B,T,I,H; repeatable. Default: all five.
    #[arg(long = "shape")]
    shapes: Vec<String>,
    /// Comma-separated backends: gpu, cpu, reference; gpu-step / gpu-seq / gpu-regs / gpu-tiled / gpu-grid to force a GPU algorithm; train-step for one training step on the GPU.
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
    /// K-columns per invocation of the register-resident sequence kernel (8, 16 or 32).
    #[arg(long, default_value_t = 32)]
    regs_cols: u32,
    /// Workgroups of gpu-grid (0: as many as the probe sees run at once).
    #[arg(long, default_value_t = 0)]
    grid_workgroups: u32,
    /// Run the portable GPU kernels even where the adapter has subgroups.
    #[arg(long)]
    no_subgroups: bool,
    /// How the GPU and CPU backends store the weights: f32, or f16 (`Precision::F16Weights`: W_ih,
    /// W_hh and b_hh rounded to f16, f32 arithmetic; the GPU needs `Features::SHADER_F16`). The
    /// reference is f64 on the f32 weights.
    #[arg(long, default_value = "f32", value_parser = ["f32", "f16"])]
    precision: String,
    /// Threads for the cpu backend (default 1, as in the library and `wgpu-gru run`; 0: one per
    /// core the OS gives this process).
    #[arg(long, default_value_t = 1, value_name = "N")]
    threads: usize,
    /// Print the cache-bandwidth floor of a batch-1 step (a read-and-FMA pass over W_hh,
    /// 12·H² bytes) against the CPU path's measured time per step (B = 1, T = 512, I = 16), at
    /// 1 … --threads threads, for H = 64 … 1024; then the FMA peak and each standard shape's
    /// time at it (the arithmetic floor); then the GEMM's GF/s on one thread on the medium and
    /// large projections (M = T·B, K = I, N = 3H), and exit.
    #[arg(long)]
    floor: bool,
    /// Write the results as a JSON array to this file.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
    /// Time a bidirectional layer (the reverse direction gets weights of its own).
    #[arg(long)]
    bidirectional: bool,
    /// ONNX activations, F,G for every direction or F,G,F,G per direction (α/β: ONNX defaults).
    #[arg(long, value_delimiter = ',', value_name = "F,G[,F,G]")]
    activations: Vec<String>,
    /// Run the reference even on shapes above 2 GFLOP (slow: f64, unoptimised).
    #[arg(long)]
    force_reference: bool,
    /// Draw time per forward against H for each backend as an SVG. Without --shape, sweeps
    /// H = 32 … 1024 at B = 16, T = 64, I = H.
    #[arg(long)]
    plot: Option<std::path::PathBuf>,
    /// With --plot: draw the results of an earlier `--json` file instead of measuring.
    #[arg(long, requires = "plot")]
    from_json: Option<std::path::PathBuf>,
}

struct Row {
    shape: Shape,
    backend: String,
    device: String,
    variant: &'static str,
    median_ms: f64,
    dispatches: u32,
    submits: u32,
    /// Directions and activations where not a forward Sigmoid/Tanh layer (`""` otherwise).
    model: String,
    directions: usize,
    /// How the weights were stored: `f32` or `f16`.
    precision: String,
}

impl Row {
    fn gflops(&self) -> f64 {
        self.shape.flops() * self.directions as f64 / (self.median_ms * 1e6)
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
            "model": self.model,
            "directions": self.directions,
            "precision": self.precision,
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

/// Rows of an earlier `--json` file.
fn read_rows(path: &std::path::Path) -> Result<Vec<Row>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let arr = v
        .as_array()
        .ok_or_else(|| format!("{}: not a JSON array", path.display()))?;
    arr.iter()
        .map(|r| {
            let n = |k: &str| r.get(k).and_then(|x| x.as_u64()).map(|x| x as usize);
            let text = |k: &str| r.get(k).and_then(|x| x.as_str()).map(str::to_string);
            let bad = || {
                format!(
                    "{}: a record lacks batch/steps/input/hidden/backend/median_ms",
                    path.display()
                )
            };
            let shape = Shape {
                name: None,
                batch: n("batch").ok_or_else(bad)?,
                steps: n("steps").ok_or_else(bad)?,
                input: n("input").ok_or_else(bad)?,
                hidden: n("hidden").ok_or_else(bad)?,
            };
            Ok(Row {
                shape,
                backend: text("backend").ok_or_else(bad)?,
                device: text("device").unwrap_or_default(),
                variant: if text("variant").as_deref() == Some("reset-before") {
                    "reset-before"
                } else {
                    "reset-after"
                },
                median_ms: r
                    .get("median_ms")
                    .and_then(|x| x.as_f64())
                    .ok_or_else(bad)?,
                dispatches: n("dispatches").unwrap_or(0) as u32,
                submits: n("submits").unwrap_or(0) as u32,
                model: text("model").unwrap_or_default(),
                directions: n("directions").unwrap_or(1),
                precision: text("precision").unwrap_or_else(|| "f32".into()),
            })
        })
        .collect()
}

/// Runs the benchmark and prints a table (and JSON when asked).
pub fn main(args: Args) -> Result<(), String> {
    if let (Some(plot_path), Some(json)) = (&args.plot, &args.from_json) {
        plot(plot_path, &read_rows(json)?)?;
        eprintln!("wrote {}", plot_path.display());
        return Ok(());
    }
    let args = Args {
        threads: wgpu_gru::cpu::resolve_threads(args.threads),
        ..args
    };
    if args.floor {
        return floor(&args);
    }
    let shapes: Vec<Shape> = if args.shapes.is_empty() && args.plot.is_some() {
        [32, 64, 128, 256, 512, 1024]
            .into_iter()
            .map(|h| Shape {
                name: None,
                batch: 16,
                steps: 64,
                input: h,
                hidden: h,
            })
            .collect()
    } else if args.shapes.is_empty() {
        STANDARD_SHAPES.to_vec()
    } else {
        args.shapes
            .iter()
            .map(|s| Shape::parse(s))
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?
    };
    let precision = precision_of(&args);
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
            "gpu-grid",
            "train-step",
            "cpu",
            "reference",
        ]
        .contains(&b.as_str())
        {
            return Err(format!(
                "--backend: unknown backend {b:?} (gpu, gpu-step, gpu-seq, gpu-regs, gpu-tiled, gpu-grid, train-step, cpu, reference)"
            ));
        }
    }
    let wants_gpu = args
        .backend
        .iter()
        .any(|b| b.starts_with("gpu") || b == "train-step");
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
    let directions = if args.bidirectional { 2 } else { 1 };
    let acts = wgpu_gru::formats::resolve_activations(&args.activations, &[], &[], directions)
        .map_err(|e| format!("--activations: {e}"))?;
    let model = if args.bidirectional || !args.activations.is_empty() {
        let dir = if args.bidirectional {
            "bidirectional"
        } else {
            "forward"
        };
        format!("{dir} {}", args.activations.join(","))
    } else {
        String::new()
    };
    for shape in &shapes {
        let mut gru = shape.random_model(variant, 42);
        if args.bidirectional {
            let reverse = shape
                .random_model(variant, 43)
                .weights
                .layers
                .remove(0)
                .remove(0);
            gru.weights.layers[0].push(reverse);
            gru.config.direction = wgpu_gru::Direction::Bidirectional;
        }
        gru.config.activations = acts.clone();
        let x = shape.random_input(7);
        let input = SeqInput::new(&x, Steps(shape.steps), Batch(shape.batch));
        for backend in &args.backend {
            done += 1;
            eprintln!("[{done}/{total}] {} on {backend} …", shape.label());
            let _ = std::io::stderr().flush();
            let (device, median_ms, dispatches, submits) = match backend.as_str() {
                "cpu" => {
                    let c = CpuGru::with_precision(&gru, precision)
                        .map_err(|e| e.to_string())?
                        .with_threads(args.threads);
                    let mut out = GruOutput {
                        output: Vec::new(),
                        h_n: Vec::new(),
                    };
                    let ms = median_ms(args.warmup, args.reps, || c.forward_into(&input, &mut out))
                        .map_err(|e| e.to_string())?;
                    (format!("{cpu} ({} thread)", args.threads), ms, 0, 0)
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
                    (format!("{cpu} (f64 reference)"), ms, 0, 0)
                }
                // One training step of GRU → Dense(10) → softmax (forward, backward, Adam).
                "train-step" => {
                    let ctx = ctx.as_ref().ok_or("no GPU context")?;
                    let t = wgpu_gru::train::bench::time_train_step(
                        ctx,
                        *shape,
                        variant,
                        args.warmup,
                        args.reps,
                    )
                    .map_err(|e| e.to_string())?;
                    (ctx.describe(), t.median_ms, t.dispatches, 1)
                }
                gpu => {
                    let ctx = ctx.as_ref().ok_or("no GPU context")?;
                    let algo = match gpu {
                        "gpu-step" => Algorithm::PerStep,
                        "gpu-seq" => Algorithm::Sequence,
                        "gpu-regs" => Algorithm::SequenceRegisters,
                        "gpu-tiled" => Algorithm::Tiled,
                        "gpu-grid" => Algorithm::Grid,
                        _ => Algorithm::Auto,
                    };
                    let g = GpuGru::with_options(
                        ctx,
                        &gru,
                        GpuOptions::default()
                            .with_algorithm(algo)
                            .with_register_columns(args.regs_cols)
                            .with_subgroups(!args.no_subgroups)
                            .with_precision(precision)
                            .with_grid_workgroups(args.grid_workgroups),
                    )
                    .map_err(|e| e.to_string())?;
                    let mut ws = g
                        .workspace(Steps(shape.steps), Batch(shape.batch))
                        .map_err(|e| e.to_string())?;
                    g.write_input(&mut ws, &input).map_err(|e| e.to_string())?;
                    let mut stats = Default::default();
                    let ms = median_ms(args.warmup.max(1), args.reps, || {
                        stats = g.submit_and_wait(&ws)?;
                        Ok(())
                    })
                    .map_err(|e| e.to_string())?;
                    (ctx.describe(), ms, stats.dispatches, stats.submits)
                }
            };
            let row = Row {
                shape: *shape,
                backend: backend.clone(),
                device,
                variant: vname,
                median_ms,
                dispatches,
                submits,
                model: if backend == "train-step" {
                    "train step: forward + Dense(10) CE + backward + Adam".into()
                } else {
                    model.clone()
                },
                directions,
                precision: if backend.starts_with("gpu") || backend == "cpu" {
                    args.precision.clone()
                } else {
                    "f32".into()
                },
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
    if let Some(path) = &args.plot {
        plot(path, &rows)?;
        eprintln!("wrote {}", path.display());
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

/// `--floor`: per-step time of the batch-1 time loop against the cache-bandwidth floor.
/// `--precision` as the library's type.
fn precision_of(args: &Args) -> Precision {
    if args.precision == "f16" {
        Precision::F16Weights
    } else {
        Precision::F32
    }
}

fn floor(args: &Args) -> Result<(), String> {
    let precision = precision_of(args);
    let steps = 512;
    println!(
        "{:>5} {:>9} {:>7} {:>12} {:>10} {:>10} {:>12}",
        "H", "W_hh KB", "threads", "floor µs", "GB/s", "step µs", "step/floor"
    );
    let mut rows = Vec::new();
    for h in [64usize, 128, 256, 512, 1024] {
        let bytes = 12 * h * h;
        let shape = Shape {
            name: None,
            batch: 1,
            steps,
            input: 16,
            hidden: h,
        };
        let gru = shape.random_model(Variant::ResetAfter, 42);
        let x = shape.random_input(7);
        let input = SeqInput::new(&x, Steps(steps), Batch(1));
        for t in 1..=args.threads.max(1) {
            let fl = wgpu_gru::cpu::stream_floor_seconds(bytes, t, args.reps.max(3));
            let c = CpuGru::with_precision(&gru, precision)
                .map_err(|e| e.to_string())?
                .with_threads(t);
            let mut out = GruOutput {
                output: Vec::new(),
                h_n: Vec::new(),
            };
            let ms = median_ms(args.warmup, args.reps, || c.forward_into(&input, &mut out))
                .map_err(|e| e.to_string())?;
            let step_us = ms * 1e3 / steps as f64;
            println!(
                "{h:>5} {:>9.0} {t:>7} {:>12.3} {:>10.1} {step_us:>10.3} {:>12.2}",
                bytes as f64 / 1024.0,
                fl * 1e6,
                bytes as f64 / fl / 1e9,
                step_us / (fl * 1e6)
            );
            rows.push(serde_json::json!({
                "hidden": h, "w_hh_bytes": bytes, "threads": t, "floor_us": fl * 1e6,
                "floor_gb_s": bytes as f64 / fl / 1e9, "step_us": step_us,
                "steps": steps, "batch": 1, "input": 16, "cpu": cpu_name(),
            }));
        }
    }
    // The arithmetic floor of the standard shapes: their flop at the FMA peak.
    println!(
        "\n{:>8} {:>7} {:>8} {:>12} {:>14}",
        "shape", "threads", "GFLOP", "peak GF/s", "floor ms"
    );
    for t in 1..=args.threads.max(1) {
        let peak = wgpu_gru::cpu::fma_peak_flop_per_s(t, args.reps.max(3));
        for shape in STANDARD_SHAPES {
            let floor_ms = shape.flops() / peak * 1e3;
            println!(
                "{:>8} {t:>7} {:>8.2} {:>12.1} {floor_ms:>14.3}",
                shape.name.unwrap_or("?"),
                shape.flops() / 1e9,
                peak / 1e9
            );
            rows.push(serde_json::json!({
                "shape": shape.name, "threads": t, "flop": shape.flops(),
                "fma_peak_gflop_s": peak / 1e9, "compute_floor_ms": floor_ms, "cpu": cpu_name(),
            }));
        }
    }
    // What the CPU path's GEMM reaches on the projections of medium and large (M = T·B, K = I,
    // N = 3H), one thread: the practical ceiling a whole forward works under.
    println!(
        "\n{:>8} {:>6} {:>6} {:>6} {:>9} {:>10}",
        "gemm", "M", "K", "N", "GF/s", "of peak"
    );
    let peak = wgpu_gru::cpu::fma_peak_flop_per_s(1, args.reps.max(3));
    for shape in STANDARD_SHAPES.iter().filter(|s| s.flops() > 1e9) {
        let (m, k, n) = (shape.steps * shape.batch, shape.input, 3 * shape.hidden);
        let flop_s = wgpu_gru::cpu::gemm_flop_per_s(m, k, n, args.reps.clamp(3, 5));
        println!(
            "{:>8} {m:>6} {k:>6} {n:>6} {:>9.1} {:>9.0}%",
            shape.name.unwrap_or("?"),
            flop_s / 1e9,
            100.0 * flop_s / peak
        );
        rows.push(serde_json::json!({
            "gemm": shape.name, "m": m, "k": k, "n": n, "threads": 1,
            "gemm_gflop_s": flop_s / 1e9, "fma_peak_gflop_s": peak / 1e9, "cpu": cpu_name(),
        }));
    }
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&rows).map_err(|e| e.to_string())?;
        std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

/// Time per forward (log) against H (log), one line per backend, written atomically.
fn plot(path: &std::path::Path, rows: &[Row]) -> Result<(), String> {
    use plotters::prelude::*;
    if rows.is_empty() {
        return Err("--plot: nothing was measured".into());
    }
    let (hmin, hmax) = rows.iter().fold((usize::MAX, 0), |(a, b), r| {
        (a.min(r.shape.hidden), b.max(r.shape.hidden))
    });
    let (tmin, tmax) = rows.iter().fold((f64::MAX, 0.0f64), |(a, b), r| {
        (a.min(r.median_ms), b.max(r.median_ms))
    });
    let mut backends: Vec<&str> = rows.iter().map(|r| r.backend.as_str()).collect();
    backends.dedup();
    backends.sort_unstable();
    backends.dedup();
    let devices: Vec<String> = {
        let mut d: Vec<String> = rows
            .iter()
            .map(|r| format!("{}: {}", r.backend, r.device))
            .collect();
        d.sort();
        d.dedup();
        d
    };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 560)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let shapes: Vec<String> = {
            let mut v: Vec<String> = rows
                .iter()
                .map(|r| format!("B={} T={}", r.shape.batch, r.shape.steps))
                .collect();
            v.dedup();
            v
        };
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!(
                    "wgpu-gru: time per forward vs hidden size ({})",
                    shapes.join(", ")
                ),
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(
                ((hmin as f64) * 0.8..(hmax as f64) * 1.25).log_scale(),
                (tmin * 0.7..tmax * 1.4).log_scale(),
            )
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_labels(6)
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&|v| format!("{v:.3}"))
            .x_desc("hidden size H (I = H)")
            .y_desc("median ms per forward")
            .draw()
            .map_err(|e| e.to_string())?;
        for (i, backend) in backends.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            let mut pts: Vec<(f64, f64)> = rows
                .iter()
                .filter(|r| r.backend == *backend)
                .map(|r| (r.shape.hidden as f64, r.median_ms))
                .collect();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            chart
                .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
                .map_err(|e| e.to_string())?
                .label(backend.to_string())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
            chart
                .draw_series(pts.into_iter().map(|p| Circle::new(p, 3, color.filled())))
                .map_err(|e| e.to_string())?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(|e| e.to_string())?;
        for (i, d) in devices.iter().enumerate() {
            root.draw(&Text::new(
                d.clone(),
                (90, 48 + 16 * i as i32),
                ("sans-serif", 12),
            ))
            .map_err(|e| e.to_string())?;
        }
        root.present().map_err(|e| e.to_string())?;
    }
    let tmp = path.with_extension("svg.tmp");
    std::fs::write(&tmp, svg).map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
}
