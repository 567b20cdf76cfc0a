//! `wgpu-gru grad`: one backward pass from files to files.
//!
//! ```text
//! wgpu-gru grad --weights W.safetensors --format pytorch|keras|onnx|seed --input X.npy
//!     --grad-output GY.npy --grad-state GS.npy [--h0 H0.npy] [--lengths L.npy] [--batch-first]
//!     [--go-backwards] [--direction D] [--linear-before-reset]
//!     --out G.safetensors [--backend gpu|cpu|reference|auto]
//! ```
//!
//! The options mean what they mean for `run`; X, h0, GY (shaped like the framework's Y) and GS
//! (shaped like its final state) are in the framework's layout (the table of `run`). The output
//! holds the gradients of `L = sum(Y * GY) + sum(state * GS)`: `grad_input` shaped like X,
//! `grad_h0` shaped like the framework's h0 (present without `--h0`: the gradient at a zero
//! initial state), and `grad_<name>` for every weight tensor of the input file, under its own
//! name and in its own layout. It is written to a temporary file and renamed into place only when
//! everything succeeded.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use wgpu_gru::{Batch, Steps};

use wgpu_gru::formats::{self, Format, SafetensorsFile};
use wgpu_gru::gpu::GpuContext;
use wgpu_gru::npy::{self, PendingFile, shape_str};
use wgpu_gru::train::{self, Gradients};
use wgpu_gru::{Gru, SeqInput, wgpu};

use crate::run::{Backend, CellArgs, at, check_outputs, format_arg, read_x};

/// Arguments of `wgpu-gru grad`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Model weights (.safetensors).
    #[arg(long, value_name = "W.safetensors")]
    pub weights: PathBuf,
    /// Weight layout and array shapes [default: detected from the tensor names].
    #[arg(long, value_parser = format_arg())]
    pub format: Option<Format>,
    /// Input sequence X (.npy, float16/32/64).
    #[arg(long, value_name = "X.npy")]
    pub input: PathBuf,
    /// Upstream gradient of the output sequence, shaped like the framework's Y (.npy).
    #[arg(long, value_name = "GY.npy")]
    pub grad_output: PathBuf,
    /// Upstream gradient of the final state, shaped like the framework's state (.npy).
    #[arg(long, value_name = "GS.npy")]
    pub grad_state: PathBuf,
    /// Initial state (.npy, float).
    #[arg(long, value_name = "H0.npy")]
    pub h0: Option<PathBuf>,
    /// Per-row lengths (.npy, int32 or int64, [B]).
    #[arg(long, value_name = "L.npy")]
    pub lengths: Option<PathBuf>,
    #[command(flatten)]
    pub cell: CellArgs,
    /// The gradients (.safetensors): grad_input, grad_h0 and grad_<weight name>.
    #[arg(long, value_name = "G.safetensors")]
    pub out: PathBuf,
    /// Which implementation runs the backward (auto: the GPU on a hardware adapter, else the
    /// f64 reference).
    #[arg(long, value_enum, default_value_t = Backend::Auto)]
    pub backend: Backend,
    /// Print nothing on stderr but errors.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Runs `wgpu-gru grad`. On failure, the file at `--out` is left as it was.
pub fn main(args: Args) -> Result<(), String> {
    check_paths(&args)?;
    run(&args)
}

/// Refuses an output path that is also an input, is not a regular file, or has no directory.
fn check_paths(args: &Args) -> Result<(), String> {
    let inputs = [
        &args.weights,
        &args.input,
        &args.grad_output,
        &args.grad_state,
    ]
    .map(Some);
    let more = [args.h0.as_ref(), args.lengths.as_ref()];
    check_outputs(inputs.iter().chain(&more), &[Some(&args.out)])
}

/// Reads an f32 array and checks its shape.
fn read_shaped(path: &Path, what: &str, want: &[usize]) -> Result<Vec<f32>, String> {
    let a = npy::read(path).map_err(|e| at(path, e))?;
    if a.shape != want {
        return Err(at(
            path,
            format!(
                "{what} has shape {}, expected {}",
                shape_str(&a.shape),
                shape_str(want)
            ),
        ));
    }
    a.into_f32(what).map_err(|e| at(path, e))
}

fn run(args: &Args) -> Result<(), String> {
    let opts = args.cell.import_options();
    let file = SafetensorsFile::open(&args.weights).map_err(|e| at(&args.weights, e))?;
    let file_names = file.names().map_err(|e| at(&args.weights, e))?;
    let imported = formats::import(&file, args.format, &opts).map_err(|e| at(&args.weights, e))?;
    let gru = &imported.gru;
    train::check_trainable(&gru.config).map_err(|e| at(&args.weights, e))?;
    let shapes = imported.shapes().map_err(|e| at(&args.weights, e))?;
    let names = shapes.names();

    let (x, Steps(steps), Batch(batch)) = read_x(&args.input, &shapes, imported.format)?;
    let h0 = match &args.h0 {
        Some(p) => {
            let v = read_shaped(p, names.h0, &shapes.h0_shape(batch))?;
            Some(
                shapes
                    .state_from_framework(batch, &v)
                    .map_err(|e| at(p, e))?,
            )
        }
        None => None,
    };
    let lengths = match &args.lengths {
        Some(p) => {
            let a = npy::read(p).map_err(|e| at(p, e))?;
            let shape = a.shape.clone();
            let l = a.into_lengths(names.lengths).map_err(|e| at(p, e))?;
            shapes.check_lengths(&shape, batch).map_err(|e| at(p, e))?;
            Some(l)
        }
        None => None,
    };
    let gy = read_shaped(
        &args.grad_output,
        "grad_output",
        &shapes.output_shape(Steps(steps), Batch(batch)),
    )?;
    let gy = shapes
        .output_from_framework(Steps(steps), Batch(batch), &gy)
        .map_err(|e| at(&args.grad_output, e))?;
    let gs = read_shaped(&args.grad_state, "grad_state", &shapes.state_shape(batch))?;
    let gs = shapes
        .state_from_framework(batch, &gs)
        .map_err(|e| at(&args.grad_state, e))?;

    let mut input = SeqInput::new(&x, Steps(steps), Batch(batch));
    if let Some(h0) = &h0 {
        input = input.with_h0(h0);
    }
    if let Some(l) = &lengths {
        input = input.with_lengths(l);
    }
    input.validate(&gru.config).map_err(|e| e.to_string())?;

    let say = |line: String| {
        if !args.quiet {
            eprintln!("wgpu-gru: {line}");
        }
    };
    let (grads, ran) = backward(args.backend, gru, &input, &gy, &gs, &say)?;

    let tensors = train::export_grads(imported.format, &gru.config, steps, batch, &grads)
        .map_err(|e| e.to_string())?;
    let keep: Vec<train::NamedTensor> = tensors
        .into_iter()
        .filter(|t| t.name == "input" || t.name == "h0" || file_names.contains(&t.name))
        .map(|mut t| {
            t.name = format!("grad_{}", t.name);
            t
        })
        .collect();
    let meta = HashMap::from([
        ("format".to_string(), imported.format.name().to_string()),
        ("backend".to_string(), ran.to_string()),
        (
            "loss".to_string(),
            "sum(Y * grad_output) + sum(state * grad_state)".to_string(),
        ),
    ]);
    let bytes = train::safetensors_bytes(&keep, Some(meta)).map_err(|e| at(&args.out, e))?;
    PendingFile::create(&args.out, &bytes)
        .and_then(PendingFile::commit)
        .map_err(|e| at(&args.out, e))?;
    say(format!(
        "wrote {} ({} gradients)",
        args.out.display(),
        keep.len()
    ));
    Ok(())
}

/// Runs the backward on `backend`; returns the gradients and the name of the path that ran.
fn backward(
    backend: Backend,
    gru: &Gru,
    input: &SeqInput<'_>,
    gy: &[f32],
    gs: &[f32],
    say: &dyn Fn(String),
) -> Result<(Gradients, &'static str), String> {
    let reference = |why: &str| -> Result<(Gradients, &'static str), String> {
        say(format!(
            "running the backward on the f64 reference (CPU){why}"
        ));
        train::reference::backward(gru, input, gy, gs)
            .map(|g| (g, "reference"))
            .map_err(|e| format!("reference backend: {e}"))
    };
    match backend {
        Backend::Reference => reference(""),
        Backend::Cpu => Err(
            "cpu backend: the fast CPU path has no backward; use --backend reference, gpu or auto"
                .into(),
        ),
        Backend::Gpu => {
            let gpu_err = |e: wgpu_gru::Error| format!("gpu backend: {e}");
            let adapter = GpuContext::default_adapter().map_err(gpu_err)?;
            let info = adapter.get_info();
            say(format!(
                "running the backward on the GPU path: {} ({:?}, {:?}): --backend gpu",
                info.name, info.backend, info.device_type
            ));
            run_gpu(&adapter, gru, input, gy, gs)
                .map(|g| (g, "gpu"))
                .map_err(gpu_err)
        }
        Backend::Auto => {
            let adapter = GpuContext::default_adapter().ok();
            match adapter {
                Some(a) if a.get_info().device_type != wgpu::DeviceType::Cpu => {
                    let info = a.get_info();
                    say(format!(
                        "running the backward on the GPU path: {} ({:?})",
                        info.name, info.backend
                    ));
                    match run_gpu(&a, gru, input, gy, gs) {
                        Ok(g) => Ok((g, "gpu")),
                        Err(e) => reference(&format!(": the GPU path failed ({e})")),
                    }
                }
                Some(a) => reference(&format!(
                    ": the adapter wgpu found, {}, is a software one (force it with --backend gpu)",
                    a.get_info().name
                )),
                None => reference(": no GPU adapter"),
            }
        }
    }
}

fn run_gpu(
    adapter: &wgpu::Adapter,
    gru: &Gru,
    input: &SeqInput<'_>,
    gy: &[f32],
    gs: &[f32],
) -> Result<Gradients, wgpu_gru::Error> {
    let ctx = pollster::block_on(GpuContext::from_adapter(adapter, None))?;
    train::GpuTrainer::new(&ctx, gru)?.backward(input, gy, gs)
}
