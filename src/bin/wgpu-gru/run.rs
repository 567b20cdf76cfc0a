//! `wgpu-gru run`: one forward pass from files to files.
//!
//! Shapes follow the framework named by `--format` (detected from the tensor names by default):
//!
//! | format | X | h0 / state | Y |
//! |---|---|---|---|
//! | pytorch | `[T, B, I]` (`[B, T, I]` with `--batch-first`) | `[L·D, B, H]` | `[T, B, D·H]` (`[B, T, D·H]`) |
//! | keras | `[B, T, I]` | `[B, H]` | `[B, T, H]` |
//! | onnx | `[T, B, I]` | `[D, B, H]` | `[T, D, B, H]` |
//! | seed | `[T, B, I]` | `[B, H]` | `[T, B, H]` |
//!
//! Lengths are int32 or int64 `[B]`. Outputs are f32 .npy, written to temporary files and
//! renamed into place only when everything succeeded; on any failure the files at the output
//! paths are left as they were.

use std::path::{Path, PathBuf};
use wgpu_gru::{Batch, Steps};

use clap::ValueEnum;
use wgpu_gru::auto::{self, Engine, Workload};
use wgpu_gru::formats::onnx_model::{self, InitialState, SequenceLens};
use wgpu_gru::formats::{self, Format, FrameworkShapes, ImportOptions};
use wgpu_gru::gpu::{GpuContext, GpuGru};
use wgpu_gru::npy::{self, PendingFile, shape_str};
use wgpu_gru::predict::onnx::OnnxProgram;
use wgpu_gru::{Direction, Error, Gru, GruOutput, SeqInput, wgpu};

/// `--format`: one of the layouts' names (`pytorch`, `keras`, `onnx`, `seed`), each listed with
/// its summary, parsed by `Format::from_str`.
pub fn format_arg() -> impl clap::builder::TypedValueParser<Value = Format> {
    use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
    PossibleValuesParser::new(Format::ALL.map(|f| PossibleValue::new(f.name()).help(f.summary())))
        .try_map(|s| s.parse::<Format>())
}

/// Direction of the layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DirectionArg {
    /// Steps 0..T-1.
    Forward,
    /// Steps T-1..0.
    Reverse,
    /// Both, concatenated (PyTorch) or stacked (ONNX).
    Bidirectional,
}

/// Which implementation runs the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    /// The faster path here (`wgpu_gru::auto::choose`): the CPU on software adapters and for
    /// tiny problems, else the GPU.
    Auto,
    /// The GPU; fails when no adapter exists.
    Gpu,
    /// The fast f32 CPU path.
    Cpu,
    /// The f64 reference.
    Reference,
}

/// Arguments of `wgpu-gru run`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The model: a .safetensors file, a PyTorch checkpoint (.pt/.pth from torch.save of a
    /// state_dict) or an .onnx model, told apart by their contents.
    #[arg(long, value_name = "MODEL")]
    pub weights: PathBuf,
    /// Input sequence X (.npy, float16/32/64).
    #[arg(long, value_name = "X.npy")]
    pub input: PathBuf,
    /// Output sequence Y (.npy, float32).
    #[arg(long, value_name = "Y.npy")]
    pub output: PathBuf,
    /// Final state (.npy, float32): h_n, state or Y_h.
    #[arg(long, value_name = "S.npy")]
    pub state_out: Option<PathBuf>,
    /// Weight layout and array shapes [default: detected from the tensor names].
    #[arg(long, value_parser = format_arg())]
    pub format: Option<Format>,
    /// Initial state (.npy, float).
    #[arg(long, value_name = "H0.npy")]
    pub h0: Option<PathBuf>,
    /// Per-row lengths (.npy, int32 or int64, [B]).
    #[arg(long, value_name = "LENGTHS.npy", conflicts_with = "mask")]
    pub lengths: Option<PathBuf>,
    /// Keras per-step mask (.npy, bool, uint8, int32 or int64, [B, T]; nonzero: valid). Masked
    /// steps keep the state and repeat the previous output.
    #[arg(long, value_name = "M.npy")]
    pub mask: Option<PathBuf>,
    /// With --mask: masked steps output zeros (Keras's zero_output_for_mask, which its
    /// Bidirectional wrapper sets).
    #[arg(long, requires = "mask")]
    pub zero_output_for_mask: bool,
    #[command(flatten)]
    pub cell: CellArgs,
    /// ONNX activations, f,g per direction (e.g. Sigmoid,Tanh).
    #[arg(long, value_delimiter = ',', value_name = "F,G[,F,G]")]
    pub activations: Vec<String>,
    /// ONNX activation_alpha values, comma-separated (A,..).
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
    pub activation_alpha: Vec<f32>,
    /// ONNX activation_beta values, comma-separated (B,..).
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
    pub activation_beta: Vec<f32>,
    /// ONNX clip: activation inputs are clamped to [-C, C].
    #[arg(long, value_name = "C", allow_hyphen_values = true)]
    pub clip: Option<f32>,
    /// .onnx models with several GRU chains: the chain that holds the GRU node of this name.
    #[arg(long, value_name = "NAME")]
    pub node: Option<String>,
    /// PyTorch checkpoints with several GRUs: the module prefix of the one to run (e.g.
    /// `encoder.gru.`).
    #[arg(long, value_name = "PREFIX")]
    pub prefix: Option<String>,
    #[command(flatten)]
    pub exec: Exec,
}

/// Where a subcommand runs the model and what it says (shared by `run` and `predict`).
#[derive(Debug, clap::Args)]
pub struct Exec {
    /// Which implementation runs the model's GRU layers.
    #[arg(long, value_enum, default_value_t = Backend::Auto)]
    pub backend: Backend,
    /// Threads for the CPU path (default 1, as in the library; 0: one per core the OS gives
    /// this process). With more than one, the path still runs a step on one thread where a
    /// second was measured to lose.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub threads: usize,
    /// Print nothing on stderr but errors (no line saying which path ran and why).
    #[arg(long, short)]
    pub quiet: bool,
}

impl Exec {
    /// Says `line` on stderr unless `--quiet`.
    pub fn say(&self, line: String) {
        if !self.quiet {
            eprintln!("wgpu-gru: {line}");
        }
    }

    /// The CPU path's thread count, 0 resolved to the cores this process may use.
    pub fn threads(&self) -> usize {
        wgpu_gru::cpu::resolve_threads(self.threads)
    }
}

/// Prefixes `e` with `path` unless the message already names it.
pub(crate) fn at(path: &Path, e: impl std::fmt::Display) -> String {
    let p = path.display().to_string();
    let msg = e.to_string();
    if msg.contains(&p) {
        msg
    } else {
        format!("{p}: {msg}")
    }
}

/// Runs `wgpu-gru run`. On failure, the files at the output paths are left as they were.
pub fn main(args: Args) -> Result<(), String> {
    check_paths(&args)?;
    run(&args)
}

/// Refuses output paths that coincide with an input or with each other.
fn check_paths(args: &Args) -> Result<(), String> {
    let inputs = [&args.weights, &args.input].map(Some);
    let more = [args.h0.as_ref(), args.lengths.as_ref()];
    check_outputs(
        inputs.iter().chain(&more),
        &[Some(&args.output), args.state_out.as_ref()],
    )
}

/// Whether two paths name the same file.
fn same_file(a: &Path, b: &Path) -> bool {
    a == b
        || match (a.canonicalize(), b.canonicalize()) {
            (Ok(x), Ok(y)) => x == y,
            _ => false,
        }
}

/// Refuses an output that is also an input or another output, exists and is not a regular
/// file, or has no directory (shared by the subcommands that write files; `None`s are paths not
/// given).
pub(crate) fn check_outputs<'p>(
    inputs: impl IntoIterator<Item = &'p Option<&'p PathBuf>>,
    outputs: &[Option<&PathBuf>],
) -> Result<(), String> {
    let inputs: Vec<&PathBuf> = inputs.into_iter().flatten().copied().collect();
    let outputs: Vec<&PathBuf> = outputs.iter().flatten().copied().collect();
    for (k, o) in outputs.iter().enumerate() {
        if let Some(other) = outputs[..k].iter().find(|p| same_file(o, p)) {
            return Err(format!(
                "outputs {} and {} are the same file",
                other.display(),
                o.display()
            ));
        }
    }
    for o in &outputs {
        if let Some(i) = inputs.iter().find(|i| same_file(o, i)) {
            return Err(format!(
                "output {} is also an input ({}); refusing to overwrite it",
                o.display(),
                i.display()
            ));
        }
    }
    for o in outputs {
        // The output is renamed into place: that must not replace a directory, a device such as
        // /dev/null, or a pipe.
        if let Ok(m) = std::fs::metadata(o)
            && !m.is_file()
        {
            return Err(format!(
                "output {} exists and is not a regular file",
                o.display()
            ));
        }
        let dir = match o.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        if !dir.is_dir() {
            return Err(format!(
                "output {}: directory {} does not exist",
                o.display(),
                dir.display()
            ));
        }
    }
    Ok(())
}

/// Reads X from `path` as the model's `shapes` lay it out: the data and its (T, B).
pub fn read_x(
    path: &Path,
    shapes: &FrameworkShapes,
    format: Format,
) -> Result<(Vec<f32>, Steps, Batch), String> {
    let x = npy::read(path).map_err(|e| at(path, e))?;
    let shape = x.shape.clone();
    let x = x.into_f32(shapes.names().x).map_err(|e| at(path, e))?;
    let (t, b) = shapes
        .x_dims(&shape)
        .map_err(|e| at(path, format!("{e} ({format} format)")))?;
    Ok((x, t, b))
}

/// The layout and cell options `run` and `grad` share.
#[derive(Debug, clap::Args)]
pub struct CellArgs {
    /// PyTorch batch_first: X is [B, T, I] and Y [B, T, D·H].
    #[arg(long)]
    pub batch_first: bool,
    /// Keras go_backwards: process X reversed, return outputs in processing order.
    #[arg(long)]
    pub go_backwards: bool,
    /// Direction [default: bidirectional if the weights hold two directions, else forward].
    #[arg(long, value_enum)]
    pub direction: Option<DirectionArg>,
    /// ONNX linear_before_reset=1 (reset-after cell).
    #[arg(long)]
    pub linear_before_reset: bool,
}

impl CellArgs {
    /// Import options with these set and the rest at their defaults.
    pub fn import_options(&self) -> ImportOptions {
        ImportOptions {
            direction: self.direction.map(|d| match d {
                DirectionArg::Forward => Direction::Forward,
                DirectionArg::Reverse => Direction::Reverse,
                DirectionArg::Bidirectional => Direction::Bidirectional,
            }),
            linear_before_reset: self.linear_before_reset,
            go_backwards: self.go_backwards,
            batch_first: self.batch_first,
            ..ImportOptions::default()
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    let opts = ImportOptions {
        activations: args.activations.clone(),
        activation_alpha: args.activation_alpha.clone(),
        activation_beta: args.activation_beta.clone(),
        clip: args.clip,
        node: args.node.clone(),
        prefix: args.prefix.clone(),
        ..args.cell.import_options()
    };
    let imported =
        formats::load(&args.weights, args.format, &opts).map_err(|e| at(&args.weights, e))?;
    if let Some(graph) = &imported.onnx
        && args.node.is_none()
    {
        refuse_computed_x(&args.weights, graph)?;
    }
    let gru = &imported.gru;
    let shapes = imported.shapes().map_err(|e| at(&args.weights, e))?;
    let names = shapes.names();

    let (x, Steps(steps), Batch(batch)) = read_x(&args.input, &shapes, imported.format)?;

    let read_h0 = |p: &PathBuf| -> Result<Vec<f32>, String> {
        let a = npy::read(p).map_err(|e| at(p, e))?;
        let shape = a.shape.clone();
        let data = a.into_f32(names.h0).map_err(|e| at(p, e))?;
        shapes
            .check_h0(&shape, batch)
            .map_err(|e| at(p, format!("{e} ({} format, B = {batch})", imported.format)))?;
        shapes
            .state_from_framework(batch, &data)
            .map_err(|e| at(p, e))
    };
    let read_lengths = |p: &PathBuf| -> Result<Vec<usize>, String> {
        let a = npy::read(p).map_err(|e| at(p, e))?;
        let shape = a.shape.clone();
        let data = a.into_lengths(names.lengths).map_err(|e| at(p, e))?;
        shapes.check_lengths(&shape, batch).map_err(|e| at(p, e))?;
        Ok(data)
    };
    let (h0, lengths) = match &imported.onnx {
        None => (
            args.h0.as_ref().map(read_h0).transpose()?,
            args.lengths.as_ref().map(read_lengths).transpose()?,
        ),
        // An .onnx file says where initial_h and sequence_lens come from.
        Some(graph) => onnx_inputs(args, graph, batch, &read_h0, &read_lengths)?,
    };
    if let Some(l) = &lengths
        && let Some((i, v)) = l.iter().enumerate().find(|&(_, &v)| v == 0 || v > steps)
    {
        // The lengths came from --lengths, or from the model file.
        return Err(at(
            args.lengths.as_ref().unwrap_or(&args.weights),
            format!(
                "{}[{i}] = {v} is outside 1..={steps} (T = {steps})",
                names.lengths
            ),
        ));
    }
    let mask = match &args.mask {
        Some(p) => {
            let a = npy::read(p).map_err(|e| at(p, e))?;
            let shape = a.shape.clone();
            if shape != [batch, steps] {
                return Err(at(
                    p,
                    format!(
                        "mask has shape {}, expected [B, T] = [{batch}, {steps}]",
                        shape_str(&shape)
                    ),
                ));
            }
            Some(a.into_mask("mask").map_err(|e| at(p, e))?)
        }
        None => None,
    };
    let mut input = SeqInput::new(&x, Steps(steps), Batch(batch))
        .with_zero_output_for_mask(args.zero_output_for_mask);
    if let Some(h0) = h0.as_deref() {
        input = input.with_h0(h0);
    }
    if let Some(lengths) = lengths.as_deref() {
        input = input.with_lengths(lengths);
    }
    if let Some(mask) = mask.as_deref() {
        input = input.with_mask(mask);
    }
    input.validate(&gru.config).map_err(|e| e.to_string())?;
    check_memory(&gru.config, steps, batch)?;

    let say = |line| args.exec.say(line);
    let out = forward(args.exec.backend, args.exec.threads(), gru, &input, &say)?;

    let y = shapes
        .output_to_framework(Steps(steps), Batch(batch), &out.output)
        .map_err(|e| e.to_string())?;
    let y_shape = shapes.output_shape(Steps(steps), Batch(batch));
    let mut pending = vec![write_pending(&args.output, &y_shape, &y)?];
    if let Some(p) = &args.state_out {
        let s = shapes
            .state_to_framework(batch, &out.h_n)
            .map_err(|e| e.to_string())?;
        pending.push(write_pending(p, &shapes.state_shape(batch), &s)?);
    }
    // Publish all outputs, or none.
    npy::publish_all(pending).map_err(|e| e.to_string())?;
    say(format!(
        "wrote {} {}",
        args.output.display(),
        shape_str(&y_shape)
    ));
    Ok(())
}

/// Refuses, with a message instead of an allocation abort, results that cannot be held in memory:
/// with T = 0, a few bytes of X can declare any B, and h_n is `[L·D, B, H]`.
fn check_memory(config: &wgpu_gru::GruConfig, steps: usize, batch: usize) -> Result<(), String> {
    let states = config.num_layers * config.num_directions();
    let elements = steps
        .checked_mul(batch)
        .and_then(|tb| tb.checked_mul(config.output_size()))
        .and_then(|y| {
            states
                .checked_mul(batch)?
                .checked_mul(config.hidden_size)?
                .checked_add(y)
        });
    let bytes = elements.and_then(|n| n.checked_mul(4));
    let ok = bytes.is_some_and(|b| Vec::<u8>::new().try_reserve_exact(b).is_ok());
    if ok {
        return Ok(());
    }
    Err(format!(
        "the results for T = {steps}, B = {batch} need {} bytes of memory, which cannot be allocated",
        bytes.map_or_else(|| "more than usize::MAX".to_string(), |b| b.to_string())
    ))
}

fn write_pending(path: &Path, shape: &[usize], data: &[f32]) -> Result<PendingFile, String> {
    let bytes = npy::to_bytes_f32(shape, data).map_err(|e| at(path, e))?;
    PendingFile::create(path, &bytes).map_err(|e| at(path, e))
}

/// initial_h and sequence_lens of an .onnx model: from the file where it fixes them (and then
/// `--h0`/`--lengths` are refused), from `--h0`/`--lengths` where the graph takes them as inputs.
type H0AndLengths = (Option<Vec<f32>>, Option<Vec<usize>>);
fn onnx_inputs(
    args: &Args,
    graph: &onnx_model::OnnxGraph,
    batch: usize,
    read_h0: &dyn Fn(&PathBuf) -> Result<Vec<f32>, String>,
    read_lengths: &dyn Fn(&PathBuf) -> Result<Vec<usize>, String>,
) -> Result<H0AndLengths, String> {
    let w = &args.weights;
    let h0 = match (&graph.initial_state, &args.h0) {
        (InitialState::Input(_), Some(p)) => Some(read_h0(p)?),
        (InitialState::Input(name), None) => {
            return Err(at(
                w,
                format!("the model takes initial_h as the graph input {name:?}: pass --h0"),
            ));
        }
        (InitialState::Zeros, None) => None,
        (InitialState::Fixed { batch: b, h0 }, None) => {
            if *b != batch {
                return Err(at(
                    w,
                    format!(
                        "the model's constant initial_h is for B = {b}; the input has B = {batch}"
                    ),
                ));
            }
            Some(h0.clone())
        }
        (_, Some(_)) => {
            return Err(at(
                w,
                "the model sets initial_h itself (a constant, or zeros it computes); --h0 is only \
                 for models that take it as a graph input",
            ));
        }
    };
    let lengths = match (&graph.sequence_lens, &args.lengths) {
        (SequenceLens::Input(_), Some(p)) => Some(read_lengths(p)?),
        (SequenceLens::Input(name), None) => {
            return Err(at(
                w,
                format!(
                    "the model takes sequence_lens as the graph input {name:?}: pass --lengths"
                ),
            ));
        }
        (SequenceLens::Fixed(l), None) => {
            if l.len() != batch {
                return Err(at(
                    w,
                    format!(
                        "the model's constant sequence_lens has {} rows; the input has B = {batch}",
                        l.len()
                    ),
                ));
            }
            Some(l.clone())
        }
        (SequenceLens::None, None) => None,
        (_, Some(_)) => {
            return Err(at(
                w,
                "the model's GRU node takes no sequence_lens input (or a constant one); --lengths is \
                 only for models that take it as a graph input",
            ));
        }
    };
    Ok((h0, lengths))
}

fn run_reference(gru: &Gru, input: &SeqInput<'_>) -> Result<GruOutput, String> {
    wgpu_gru::reference::forward(gru, input).map_err(|e| format!("reference backend: {e}"))
}

fn cpu_layer(gru: &Gru, threads: usize) -> Result<wgpu_gru::cpu::CpuGru, String> {
    Ok(wgpu_gru::cpu::CpuGru::new(gru)
        .map_err(|e| format!("cpu backend: {e}"))?
        .with_threads(threads))
}

fn cpu_detail(cpu: &wgpu_gru::cpu::CpuGru) -> String {
    format!("{:?}, {} thread(s)", cpu.simd(), cpu.threads())
}

fn run_gpu(adapter: &wgpu::Adapter, gru: &Gru, input: &SeqInput<'_>) -> Result<GruOutput, Error> {
    let ctx = pollster::block_on(GpuContext::from_adapter(adapter, None))?;
    GpuGru::new(&ctx, gru)?.forward(input)
}

/// Runs the forward on `backend`, saying through `say` which path ran and why, in one line that
/// names the `CPU path` or the `GPU path`.
fn forward(
    backend: Backend,
    threads: usize,
    gru: &Gru,
    input: &SeqInput<'_>,
    say: &dyn Fn(String),
) -> Result<GruOutput, String> {
    match backend {
        Backend::Reference => {
            say("running on the f64 reference (CPU)".into());
            run_reference(gru, input)
        }
        Backend::Cpu => {
            let cpu = cpu_layer(gru, threads)?;
            say(format!(
                "running on the CPU path ({}): --backend cpu",
                cpu_detail(&cpu)
            ));
            cpu.forward(input).map_err(|e| format!("cpu backend: {e}"))
        }
        Backend::Gpu => {
            let gpu_err = |e: Error| format!("gpu backend: {e}");
            let adapter = GpuContext::default_adapter().map_err(gpu_err)?;
            let info = adapter.get_info();
            say(format!(
                "running on the GPU path: {} ({:?}, {:?}): --backend gpu",
                info.name, info.backend, info.device_type
            ));
            run_gpu(&adapter, gru, input).map_err(gpu_err)
        }
        Backend::Auto => {
            let adapter = GpuContext::default_adapter().ok();
            let info = adapter.as_ref().map(wgpu::Adapter::get_info);
            let work = Workload::new(&gru.config, Steps(input.steps()), Batch(input.batch()))
                .with_cpu_threads(threads);
            let choice = auto::choose(info.as_ref(), &work);
            if let (Engine::Gpu, Some(adapter)) = (choice.engine, &adapter) {
                say(format!("running on the {choice}"));
                match run_gpu(adapter, gru, input) {
                    Ok(out) => return Ok(out),
                    // A GPU that fails (a feature it lacks, a lost device) leaves the CPU.
                    Err(e) => say(format!(
                        "the GPU path failed ({e}); running on the CPU path"
                    )),
                }
            } else {
                say(auto_line(&choice, adapter.is_some()));
            }
            cpu_layer(gru, threads)?
                .forward(input)
                .map_err(|e| format!("cpu backend: {e}"))
        }
    }
}

/// What `auto` says it runs on; where it passed over an adapter, how to force the GPU path.
pub(crate) fn auto_line(choice: &auto::Choice, adapter: bool) -> String {
    let hint = if choice.engine == Engine::Cpu && adapter {
        " (force it with --backend gpu)"
    } else {
        ""
    };
    format!("running on the {choice}{hint}")
}

/// `run` feeds X to the GRU node itself. Where the graph computes that X from its own input (a
/// batch-first export's Transpose), an array shaped as the graph declares its input would be
/// read with T and B swapped, silently: refuse, unless `--node` says the node's X is meant.
fn refuse_computed_x(weights: &Path, graph: &onnx_model::OnnxGraph) -> Result<(), String> {
    let Ok(bytes) = std::fs::read(weights) else {
        return Ok(());
    };
    let name = weights.display().to_string();
    let Ok(program) = OnnxProgram::from_bytes(&bytes, weights.parent(), &name) else {
        return Ok(());
    };
    if program.inputs().iter().any(|i| i.name == graph.input) {
        return Ok(());
    }
    let first = program.inputs().first().map_or_else(String::new, |i| {
        format!(" from the graph input {:?}", i.name)
    });
    Err(at(
        weights,
        format!(
            "the GRU node's X ({:?}) is computed in the graph{first}; `wgpu-gru predict` feeds the \
             graph's input as it is declared, and `run --node {}` feeds the node's own X [T, B, I]",
            graph.input,
            graph.nodes.first().map_or("NAME", String::as_str)
        ),
    ))
}
