//! `wgpu-gru` with no arguments (`cargo run --release`): the seed model, GRU(128) → Dense(10) →
//! softmax, trained by `scripts/train_digits.py`, classifies every committed test digit on the
//! GPU in one submit, and is checked against the f64 CPU reference and PyTorch's own predictions.
//!
//! The assets are found at compile time under the crate's `assets/`; `WGPU_GRU_ASSETS=DIR`
//! overrides that (for a binary copied elsewhere). With no GPU adapter the fast CPU path
//! classifies instead, and says so.

use std::path::PathBuf;
use std::time::{Duration, Instant};
use wgpu_gru::{Batch, Steps};

use wgpu_gru::SeqInput;
use wgpu_gru::auto::{self, Engine, Workload};
use wgpu_gru::cpu::CpuGru;
use wgpu_gru::formats::SafetensorsFile;
use wgpu_gru::gpu::{GpuClassifier, GpuContext};
use wgpu_gru::model::{Dense, GruClassifier, argmax_rows};

const MODEL_FILE: &str = "digits_gru.safetensors";
const TEST_FILE: &str = "digits_test.safetensors";
/// Timed runs per path; the median is reported.
const RUNS: usize = 9;

/// The committed test split, as `scripts/train_digits.py` wrote it.
struct TestSplit {
    /// `[N, T, I]` batch-first.
    x: Vec<f32>,
    n: usize,
    steps: usize,
    labels: Vec<usize>,
    torch_probs: Vec<f32>,
    torch_pred: Vec<usize>,
    /// PyTorch's own test accuracy (`correct / N`).
    torch_accuracy: f64,
}

fn assets_dir() -> PathBuf {
    match std::env::var_os("WGPU_GRU_ASSETS") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/assets")),
    }
}

fn load_split(path: &std::path::Path) -> Result<TestSplit, String> {
    let err = |e: wgpu_gru::Error| e.to_string();
    let f = SafetensorsFile::open(path).map_err(err)?;
    let x = f.require_f32("x", "digits test split").map_err(err)?;
    let [n, steps, _] = x.shape[..] else {
        return Err(format!(
            "{}: x has shape {:?}, expected [N, T, I]",
            path.display(),
            x.shape
        ));
    };
    let ints = |name: &str| -> Result<Vec<usize>, String> {
        match f.get_lengths(name).map_err(err)? {
            Some((shape, v)) if shape == [n] => Ok(v),
            Some((shape, _)) => Err(format!(
                "{}: {name} has shape {shape:?}, expected [{n}]",
                path.display()
            )),
            None => Err(format!("{}: no tensor {name}", path.display())),
        }
    };
    let labels = ints("labels")?;
    let torch_pred = ints("torch_pred")?;
    let torch_probs = f
        .require_f32("torch_probs", "digits test split")
        .map_err(err)?;
    let torch_accuracy = f
        .metadata()
        .map_err(err)?
        .get("accuracy")
        .and_then(|a| a.parse::<f64>().ok())
        .ok_or_else(|| {
            format!(
                "{}: no numeric \"accuracy\" in the metadata",
                path.display()
            )
        })?;
    Ok(TestSplit {
        x: x.data,
        n,
        steps,
        labels,
        torch_probs: torch_probs.data,
        torch_pred,
        torch_accuracy,
    })
}

/// `dense` then a softmax per row, in f32: `state` `[B, K]` → `[B, C]` (the CPU twin of the
/// GPU head, for timing the fast CPU path end to end).
fn head_f32(dense: &Dense, state: &[f32], out: &mut Vec<f32>) {
    out.clear();
    for row in state.chunks_exact(dense.in_features) {
        let start = out.len();
        for (w, &b) in dense
            .weight
            .chunks_exact(dense.in_features)
            .zip(&dense.bias)
        {
            out.push(w.iter().zip(row).map(|(a, v)| a * v).sum::<f32>() + b);
        }
        let logits = &mut out[start..];
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0;
        for v in logits.iter_mut() {
            *v = (*v - max).exp();
            sum += *v;
        }
        for v in logits.iter_mut() {
            *v /= sum;
        }
    }
}

/// The CPU fast path end to end: `CpuGru` (f32, SIMD, threads) → final state → f32 head.
fn cpu_predict(cpu: &mut CpuGru, model: &GruClassifier, s: &TestSplit) -> Result<Vec<f32>, String> {
    let out = cpu
        .forward(&SeqInput::new(&s.x, Steps(s.steps), Batch(s.n)))
        .map_err(|e| e.to_string())?;
    let c = &model.gru.config;
    let h = c.hidden_size;
    let start = (c.num_layers - 1) * c.num_directions() * s.n * h;
    let mut probs = Vec::with_capacity(s.n * model.num_classes());
    head_f32(&model.dense, &out.h_n[start..start + s.n * h], &mut probs);
    Ok(probs)
}

/// Median wall time of `RUNS` calls of `f` (after one untimed warm-up call).
fn median_time<T>(mut f: impl FnMut() -> Result<T, String>) -> Result<Duration, String> {
    f()?;
    let mut times = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let t0 = Instant::now();
        f()?;
        times.push(t0.elapsed());
    }
    times.sort();
    Ok(times[RUNS / 2])
}

fn ms(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 1e-3 {
        format!("{:.0} µs", s * 1e6)
    } else {
        format!("{:.2} ms", s * 1e3)
    }
}

/// `k/N predictions equal, max |Δprob| e` between two `[N, C]` probability arrays.
fn agreement(a: &[f32], b_pred: &[usize], b_probs: &[f32], classes: usize) -> (usize, f32) {
    let pa = argmax_rows(a, classes);
    let equal = pa.iter().zip(b_pred).filter(|(x, y)| x == y).count();
    (equal, wgpu_gru::max_abs_diff(a, b_probs))
}

pub fn main() -> Result<(), String> {
    let dir = assets_dir();
    let model_path = dir.join(MODEL_FILE);
    let test_path = dir.join(TEST_FILE);
    let model = GruClassifier::from_safetensors(&model_path).map_err(|e| {
        format!("{e} (set WGPU_GRU_ASSETS to the folder holding {MODEL_FILE}, or regenerate it with python3 scripts/train_digits.py)")
    })?;
    let s = load_split(&test_path)?;
    let c = &model.gru.config;
    let classes = model.num_classes();
    if s.x.len() != s.n * s.steps * c.input_size {
        return Err(format!(
            "{}: x is [{}, {}, {}], the model takes {} features per step",
            test_path.display(),
            s.n,
            s.steps,
            s.x.len() / (s.n * s.steps).max(1),
            c.input_size
        ));
    }
    println!(
        "wgpu-gru: GRU({}) → Dense({classes}) → softmax, trained by scripts/train_digits.py on \
         scikit-learn's handwritten digits",
        c.hidden_size
    );
    println!(
        "  model: {}\n  test:  {} images of 8×8 pixels, each read as {} steps of {} pixels",
        model_path.display(),
        s.n,
        s.steps,
        c.input_size
    );

    // The f64 reference: the yardstick for both fast paths.
    let t0 = Instant::now();
    let reference = model
        .reference_forward(&s.x, Steps(s.steps), Batch(s.n))
        .map_err(|e| e.to_string())?;
    let ref_time = t0.elapsed();
    let ref_pred = model.predict(&reference);

    let mut cpu = CpuGru::new(&model.gru).map_err(|e| e.to_string())?;
    let cpu_probs = cpu_predict(&mut cpu, &model, &s)?;
    let cpu_time = median_time(|| cpu_predict(&mut cpu, &model, &s))?;
    let cpu_label = format!(
        "CPU: CpuGru f32 ({:?}, {} thread{}) + f32 dense/softmax",
        cpu.simd(),
        cpu.threads(),
        if cpu.threads() == 1 { "" } else { "s" }
    );

    // The GPU, or the CPU fast path when there is none.
    let gpu = match GpuContext::new_default() {
        Ok(ctx) => {
            let g = GpuClassifier::new(&ctx, &model).map_err(|e| e.to_string())?;
            Some((ctx, g))
        }
        Err(e) => {
            println!("\nNo GPU: {e}.");
            println!(
                "Running on the CPU instead. (On Linux without a GPU, a software Vulkan device \
                 such as Mesa's lavapipe, package mesa-vulkan-drivers, lets the GPU path run.)"
            );
            None
        }
    };
    let (probs, path_name, gpu_time) = match &gpu {
        Some((ctx, g)) => {
            println!("\ndevice: {}", ctx.describe());
            if ctx.adapter_info().device_type == wgpu_gru::wgpu::DeviceType::Cpu {
                println!(
                    "  (a software Vulkan device: the GPU path runs on the CPU's cores, so its \
                     times are not a GPU's)"
                );
            }
            let t0 = Instant::now();
            let (probs, stats) = g
                .predict_proba_with_stats(&s.x, Steps(s.steps), Batch(s.n))
                .map_err(|e| e.to_string())?;
            let first = t0.elapsed();
            let t = median_time(|| {
                g.predict_proba(&s.x, Steps(s.steps), Batch(s.n))
                    .map_err(|e| e.to_string())
            })?;
            println!(
                "  one forward = {} dispatches ({:?} recurrence), {} submit; first call {} \
                 (includes buffer creation)",
                stats.dispatches,
                stats.algorithm,
                stats.submits,
                ms(first)
            );
            (probs, "GPU", Some(t))
        }
        None => (cpu_probs.clone(), "CPU", None),
    };

    let pred = argmax_rows(&probs, classes);
    let correct = pred.iter().zip(&s.labels).filter(|(p, l)| p == l).count();
    let accuracy = correct as f64 / s.n as f64;
    let torch_correct = (s.torch_accuracy * s.n as f64).round() as usize;
    println!(
        "\naccuracy ({path_name}): {correct}/{} = {:.2}%   (PyTorch's own evaluation: {torch_correct}/{} = {:.2}%)",
        s.n,
        100.0 * accuracy,
        s.n,
        100.0 * s.torch_accuracy
    );
    let n = s.n;
    let (eq_ref, d_ref) = agreement(&probs, &ref_pred, &reference, classes);
    let (eq_torch, d_torch) = agreement(&probs, &s.torch_pred, &s.torch_probs, classes);
    println!("agreement ({path_name} vs):");
    println!("  CPU f64 reference: {eq_ref}/{n} predictions equal, max |Δprob| {d_ref:.1e}");
    println!("  PyTorch:           {eq_torch}/{n} predictions equal, max |Δprob| {d_torch:.1e}");
    if gpu.is_some() {
        let (eq_cpu, d_cpu) = agreement(
            &probs,
            &argmax_rows(&cpu_probs, classes),
            &cpu_probs,
            classes,
        );
        println!("  CPU f32 fast path: {eq_cpu}/{n} predictions equal, max |Δprob| {d_cpu:.1e}");
    }

    println!("\ntime to classify all {n} digits (median of {RUNS} runs):");
    if let Some(t) = gpu_time {
        println!(
            "  GPU: {}   (upload, GRU, dense, softmax and read-back, one submit)",
            ms(t)
        );
    }
    println!("  {cpu_label}: {}", ms(cpu_time));
    println!("  CPU f64 reference: {} (one run)", ms(ref_time));
    // What `wgpu-gru run --backend auto` (and `auto::AutoGru`) would pick for this problem.
    let choice = auto::choose(
        gpu.as_ref().map(|(ctx, _)| ctx.adapter_info()),
        &Workload::new(&model.gru.config, Steps(s.steps), Batch(s.n)),
    );
    match (&gpu, choice.engine) {
        (Some(_), Engine::Cpu) => println!(
            "  this demo runs the GPU path to show it; `--backend auto` would pick the {choice}"
        ),
        _ => println!("  `--backend auto` picks the {choice}"),
    }

    if accuracy != s.torch_accuracy || eq_torch != n || eq_ref != n {
        return Err(format!(
            "the {path_name} result disagrees with PyTorch or the reference (accuracy {accuracy} vs {}, {eq_torch}/{n} and {eq_ref}/{n} predictions equal)",
            s.torch_accuracy
        ));
    }
    Ok(())
}
