//! `wgpu-gru predict`: a whole model, as the user saved it, from a file to a file.
//!
//! | model file | X | Y |
//! |---|---|---|
//! | Keras `.keras` / `.h5` | what `model.predict(x)` takes, `[B, T, I]` | what it returns |
//! | `.onnx` | the graph's first input, as declared; further inputs with `--feed NAME=FILE.npy` | the graph's first output, as ONNX Runtime returns it |
//! | safetensors / `.pt` (GRU weights only) | X as `wgpu-gru run` takes it | Y as `run` writes it |
//!
//! Y is written to a temporary file and renamed into place only when everything succeeded; on
//! any failure the file at `--output` is left as it was.

use std::path::PathBuf;

use wgpu_gru::auto::{self, Engine, Workload};
use wgpu_gru::gpu::GpuContext;
use wgpu_gru::npy::{self, NpyData, PendingFile, shape_str};
use wgpu_gru::predict::{Array, Backend as ModelBackend, FeedValue, Model};

use crate::run::{Backend, Exec, at, check_outputs};

/// Arguments of `wgpu-gru predict`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The model as saved: Keras .keras or .h5 (model.save), .onnx (torch.onnx.export, tf2onnx),
    /// or GRU weights (.safetensors, .pt), told apart by their contents.
    #[arg(long, value_name = "FILE")]
    pub model: PathBuf,
    /// X (.npy, float): exactly what the framework's predict takes.
    #[arg(long, value_name = "X.npy")]
    pub input: PathBuf,
    /// Y (.npy, float32): exactly what the framework's predict returns.
    #[arg(long, value_name = "Y.npy")]
    pub output: PathBuf,
    /// A further ONNX graph input (initial_h, sequence_lens, …) by its name in the graph.
    #[arg(long, value_name = "NAME=FILE.npy")]
    pub feed: Vec<String>,
    #[command(flatten)]
    pub exec: Exec,
}

/// Runs `wgpu-gru predict`.
pub fn main(args: Args) -> Result<(), String> {
    let feeds: Vec<(String, PathBuf)> = args
        .feed
        .iter()
        .map(|f| match f.split_once('=') {
            Some((n, p)) if !n.is_empty() && !p.is_empty() => Ok((n.to_string(), PathBuf::from(p))),
            _ => Err(format!("--feed {f:?}: expected NAME=FILE.npy")),
        })
        .collect::<Result<_, _>>()?;
    let mut inputs = vec![Some(&args.model), Some(&args.input)];
    inputs.extend(feeds.iter().map(|(_, p)| Some(p)));
    check_outputs(&inputs, &[Some(&args.output)])?;

    let say = |line| args.exec.say(line);
    let model = Model::load(&args.model).map_err(|e| at(&args.model, e))?;
    say(format!("model: {}", model.describe()));
    let x = npy::read(&args.input).map_err(|e| at(&args.input, e))?;
    let shape = x.shape.clone();
    let x = Array::new(shape, x.into_f32("X").map_err(|e| at(&args.input, e))?)
        .map_err(|e| at(&args.input, e))?;
    let feeds = feeds
        .iter()
        .map(|(name, p)| {
            let a = npy::read(p).map_err(|e| at(p, e))?;
            let v = match a.data {
                NpyData::Float(d) => FeedValue::F32(Array::new(a.shape, d).map_err(|e| at(p, e))?),
                NpyData::Int(d) => FeedValue::I64 {
                    shape: a.shape,
                    data: d,
                },
            };
            Ok((name.clone(), v))
        })
        .collect::<Result<Vec<_>, String>>()?;

    let y = predict(
        &model,
        &x,
        &feeds,
        args.exec.backend,
        args.exec.threads(),
        &say,
    )
    .map_err(|e| at(&args.model, e))?;
    let bytes = npy::to_bytes_f32(&y.shape, &y.data).map_err(|e| at(&args.output, e))?;
    let pending = PendingFile::create(&args.output, &bytes).map_err(|e| at(&args.output, e))?;
    npy::publish_all(vec![pending]).map_err(|e| e.to_string())?;
    say(format!(
        "wrote {} {}",
        args.output.display(),
        shape_str(&y.shape)
    ));
    Ok(())
}

/// Runs the model on `backend` (on the GPU, a Keras model whole; an ONNX graph's GRU nodes, with
/// the ops around them on the CPU), saying which path ran.
fn predict(
    model: &Model,
    x: &Array,
    feeds: &[(String, FeedValue)],
    backend: Backend,
    threads: usize,
    say: &dyn Fn(String),
) -> Result<Array, String> {
    let run = |b: ModelBackend<'_>| -> Result<Array, String> {
        let (y, stats) = model
            .runner(b)
            .and_then(|r| r.predict_with_stats(x, feeds))
            .map_err(|e| e.to_string())?;
        if stats.gpu_submits > 0 {
            say(format!(
                "GPU: {} submit(s), {} dispatch(es)",
                stats.gpu_submits, stats.gpu_dispatches
            ));
        }
        Ok(y)
    };
    let gpu = |adapter: &wgpu_gru::wgpu::Adapter| -> Result<Array, String> {
        let ctx = pollster::block_on(GpuContext::from_adapter(adapter, None))
            .map_err(|e| format!("gpu backend: {e}"))?;
        run(ModelBackend::Gpu(&ctx))
    };
    match backend {
        Backend::Reference => {
            say("running the GRU layers on the f64 reference (CPU)".into());
            run(ModelBackend::Reference)
        }
        Backend::Cpu => {
            say(format!(
                "running the GRU layers on the CPU path ({threads} thread(s)): --backend cpu"
            ));
            run(ModelBackend::CpuThreads(threads))
        }
        Backend::Gpu => {
            let adapter = GpuContext::default_adapter().map_err(|e| format!("gpu backend: {e}"))?;
            let info = adapter.get_info();
            say(format!(
                "running the GRU layers on the GPU path: {} ({:?}, {:?}): --backend gpu",
                info.name, info.backend, info.device_type
            ));
            gpu(&adapter)
        }
        Backend::Auto => {
            let adapter = GpuContext::default_adapter().ok();
            let info = adapter.as_ref().map(wgpu_gru::wgpu::Adapter::get_info);
            // The path the first GRU's workload runs faster on decides for the model.
            let choice = match (model.grus().first(), model.steps_and_batch(&x.shape)) {
                (Some(g), Some((t, b))) => {
                    let work = Workload::new(&g.config, t, b).with_cpu_threads(threads);
                    Some(auto::choose(info.as_ref(), &work))
                }
                _ => None,
            };
            if let (Some(c), Some(adapter)) = (&choice, &adapter)
                && c.engine == Engine::Gpu
            {
                say(format!("running the GRU layers on the {c}"));
                match gpu(adapter) {
                    Ok(y) => return Ok(y),
                    Err(e) => say(format!(
                        "the GPU path failed ({e}); running on the CPU path"
                    )),
                }
            } else if let Some(c) = &choice {
                say(crate::run::auto_line(c, adapter.is_some()));
            }
            run(ModelBackend::CpuThreads(threads))
        }
    }
}
