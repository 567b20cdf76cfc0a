//! Whole models as users save them: a Keras `.keras`/`.h5` file or an `.onnx` graph, run end to
//! end (the GRU layers and the heads after them) on the reference, CPU or GPU path.
//!
//! ```no_run
//! use wgpu_gru::predict::{Array, Backend, Model};
//! let model = Model::load("model.keras")?;                 // or .h5, .onnx, .safetensors, .pt
//! let x = Array::new(vec![40, 16, 4], vec![0.0; 40 * 16 * 4])?; // Keras: [B, T, I]
//! let y = model.runner(Backend::Cpu)?.predict(&x)?;        // model.predict(x): [40, 10]
//! # Ok::<(), wgpu_gru::Error>(())
//! ```
//!
//! What `x` and the result are, per kind of file ([`Model::load`] tells them by their bytes):
//!
//! | file | x | result |
//! |---|---|---|
//! | Keras `.keras` / `.h5` | what `model.predict(x)` takes: `[B, T, I]` | what it returns (`[B, C]`, `[B, T, C]`, …) |
//! | `.onnx` | the graph's first input, as declared (`[B, T, I]` for a batch-first export) | the graph's first output, as ONNX Runtime returns it |
//! | GRU-only safetensors / `.pt` | X of the layout (`[T, B, I]`, `[B, T, I]` batch-first) | Y of the layout, as `wgpu-gru run` writes it |
//!
//! A model is data; a [`ModelRunner`] prepares it on a [`Backend`]:
//!
//! - on the reference and CPU paths, one layer per GRU, with the rest of the model (Dense
//!   layers, activations, the ONNX ops around the GRU) on the CPU, in f64 sums;
//! - on the GPU, a Keras chain runs whole in one submit (GRUs, bidirectional merges and Dense
//!   layers with their activations, each reading the previous layer's output on the GPU: see
//!   [`ModelRunner::predict_with_stats`]); an ONNX graph runs each GRU node in one submit and
//!   the ops around them on the CPU.

pub mod keras;
mod keras_gpu;
pub mod onnx;

use std::path::Path;

use crate::error::{Error, Result};
use crate::formats::{self, Container, Imported, keras_file};
use crate::gpu::{GpuContext, GpuGru};
use crate::io::{Batch, Forward, GruOutput, SeqInput, Steps};
use crate::weights::Gru;

/// One GRU run as a future: ready at once on the reference and CPU paths, waiting for its own
/// submission on the GPU.
pub type GruFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<GruOutput>> + 'a>>;

/// Runs a model's `k`-th GRU on some backend: what the Keras and ONNX executors call for each
/// GRU layer or node.
pub trait RunGru {
    /// Runs GRU `k` on `input` (laid out as that GRU's config says).
    fn run_gru<'a>(&'a self, k: usize, input: &'a SeqInput<'a>) -> GruFuture<'a>;
}

/// A dense, row-major f32 array: what a framework's `predict` takes and returns.
#[derive(Debug, Clone, PartialEq)]
pub struct Array {
    /// The dimensions, outermost first.
    pub shape: Vec<usize>,
    /// `shape.iter().product()` values, row-major.
    pub data: Vec<f32>,
}

impl Array {
    /// An array of `shape` over `data`; the lengths must agree.
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Result<Self> {
        let n = numel(&shape)?;
        if n != data.len() {
            return Err(Error::shape(
                "array",
                format!("{} ({n} elements)", crate::formats::shape_str(&shape)),
                format!("{} elements", data.len()),
            ));
        }
        Ok(Array { shape, data })
    }
}

/// The product of `shape`, or an overflow error.
pub(crate) fn numel(shape: &[usize]) -> Result<usize> {
    shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| Error::Overflow(format!("array of shape {shape:?}")))
}

/// A further input of an ONNX graph (`initial_h`, `sequence_lens`, …), by its graph name.
#[derive(Debug, Clone, PartialEq)]
pub enum FeedValue {
    /// A float tensor.
    F32(Array),
    /// An integer tensor (int32 and int64 files both arrive as i64).
    I64 {
        /// The dimensions.
        shape: Vec<usize>,
        /// The values, row-major.
        data: Vec<i64>,
    },
}

/// What a [`Model`] holds.
#[derive(Debug)]
#[non_exhaustive]
pub enum ModelKind {
    /// A Keras model: a chain of layers.
    Keras(keras_file::KerasModel),
    /// An ONNX graph, run whole.
    Onnx(onnx::OnnxProgram),
    /// A file of GRU weights only (safetensors, `.pt`): the GRU's output is the result.
    Gru(Imported),
}

/// A whole model read from a file: see the [module docs](self) for what it takes and returns.
#[derive(Debug)]
pub struct Model {
    name: String,
    kind: ModelKind,
}

impl Model {
    /// Reads a model file (Keras `.keras` or `.h5`, `.onnx` with its external data beside it,
    /// safetensors or a `torch.save` checkpoint), told apart by its bytes, never its name.
    pub fn load(path: impl AsRef<Path>) -> Result<Model> {
        let (bytes, name) = formats::read_file(path.as_ref())?;
        Self::from_bytes(&bytes, &name, path.as_ref().parent())
    }

    /// Reads a model from its bytes. `name` names it in errors; `dir` is where an `.onnx`
    /// file's external data lives (`None`: external data is refused).
    pub fn from_bytes(bytes: &[u8], name: &str, dir: Option<&Path>) -> Result<Model> {
        let kind = if keras_file::is_keras_zip(bytes) || keras_file::is_hdf5(bytes) {
            ModelKind::Keras(keras_file::read(bytes, name)?)
        } else {
            match Container::detect(bytes) {
                Some(Container::Onnx) => {
                    ModelKind::Onnx(onnx::OnnxProgram::from_bytes(bytes, dir, name)?)
                }
                Some(_) => ModelKind::Gru(formats::load_bytes(
                    bytes,
                    name,
                    dir,
                    None,
                    &formats::ImportOptions::default(),
                )?),
                None => {
                    return Err(Error::Parse {
                        what: name.to_string(),
                        reason: "not a Keras model (.keras or .h5), an ONNX model, a safetensors \
                                 file or a PyTorch checkpoint"
                            .into(),
                    });
                }
            }
        };
        Ok(Model {
            name: name.to_string(),
            kind,
        })
    }

    /// Wraps a Keras model (read with [`keras_file::read`], or built in code) as a model.
    pub fn from_keras(model: keras_file::KerasModel, name: impl Into<String>) -> Model {
        Model {
            name: name.into(),
            kind: ModelKind::Keras(model),
        }
    }

    /// Wraps a GRU read with [`formats::load`] (and its options) as a model.
    pub fn from_imported(imported: Imported, name: impl Into<String>) -> Model {
        Model {
            name: name.into(),
            kind: ModelKind::Gru(imported),
        }
    }

    /// The file's name, as given when loading.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What the model holds.
    pub fn kind(&self) -> &ModelKind {
        &self.kind
    }

    /// A short description: the kind of file and its layers.
    pub fn describe(&self) -> String {
        match &self.kind {
            ModelKind::Keras(k) => format!("Keras model {:?}: {}", k.name, keras::describe(k)),
            ModelKind::Onnx(p) => format!(
                "ONNX graph with {} GRU node(s) ({})",
                p.grus().len(),
                p.gru_node_names().join(", ")
            ),
            ModelKind::Gru(i) => format!("GRU weights ({} layout)", i.format),
        }
    }

    /// The model's GRUs, in the order they run.
    pub fn grus(&self) -> Vec<&Gru> {
        match &self.kind {
            ModelKind::Keras(k) => keras::grus(k),
            ModelKind::Onnx(p) => p.grus().iter().collect(),
            ModelKind::Gru(i) => vec![&i.gru],
        }
    }

    /// The GRU workload of one prediction on `x` of `shape`: `(T, B)` of the first GRU, where
    /// the shape says it (for choosing a path before building a runner).
    pub fn steps_and_batch(&self, shape: &[usize]) -> Option<(Steps, Batch)> {
        match &self.kind {
            ModelKind::Keras(_) => match shape {
                [b, t, _] => Some((Steps(*t), Batch(*b))),
                _ => None,
            },
            ModelKind::Onnx(p) => {
                let c = &p.grus().first()?.config;
                match shape {
                    [a, b, _] if c.batch_first => Some((Steps(*b), Batch(*a))),
                    [a, b, _] => Some((Steps(*a), Batch(*b))),
                    _ => None,
                }
            }
            ModelKind::Gru(i) => i.shapes().ok().and_then(|s| s.x_dims(shape).ok()),
        }
    }

    /// Prepares the model on `backend`: every GRU, and on the GPU a Keras model's whole chain.
    pub fn runner(&self, backend: Backend<'_>) -> Result<ModelRunner<'_>> {
        Ok(ModelRunner {
            layers: self.layers(backend)?,
            model: ModelRef::Borrowed(self),
        })
    }

    /// [`runner`](Self::runner) for a shared model: the runner keeps it alive (for a runner
    /// that outlives the scope that loaded the model, as a web page's does).
    pub fn shared_runner(
        model: &std::sync::Arc<Model>,
        backend: Backend<'_>,
    ) -> Result<ModelRunner<'static>> {
        Ok(ModelRunner {
            layers: model.layers(backend)?,
            model: ModelRef::Shared(std::sync::Arc::clone(model)),
        })
    }

    fn layers(&self, backend: Backend<'_>) -> Result<Layers> {
        if let (Backend::Gpu(ctx), ModelKind::Keras(k)) = (backend, &self.kind)
            && let Some(chain) = keras_gpu::KerasGpu::new(ctx, k)?
        {
            return Ok(Layers::KerasChain(Box::new(chain)));
        }
        let layers = match backend {
            Backend::Gpu(ctx) => Layers::Gpu(
                self.grus()
                    .into_iter()
                    .map(|g| GpuGru::new(ctx, g))
                    .collect::<Result<_>>()?,
            ),
            _ => {
                let mut each: Vec<Box<dyn Forward>> = Vec::new();
                for gru in self.grus() {
                    each.push(match backend {
                        Backend::Cpu => Box::new(crate::cpu::CpuGru::new(gru)?),
                        Backend::CpuThreads(n) => {
                            Box::new(crate::cpu::CpuGru::new(gru)?.with_threads(n.max(1)))
                        }
                        _ => Box::new(crate::reference::Reference(gru.clone())),
                    });
                }
                Layers::Each(each)
            }
        };
        Ok(layers)
    }
}

/// Where a model's GRUs run (the rest of the model runs on the CPU).
#[derive(Debug, Clone, Copy)]
pub enum Backend<'a> {
    /// The f64 reference.
    Reference,
    /// The fast f32 CPU path, one thread.
    Cpu,
    /// The fast f32 CPU path on `n` threads.
    CpuThreads(usize),
    /// The GPU path on the app's context.
    Gpu(&'a GpuContext),
}

/// What a [`ModelRunner`] prepared.
enum Layers {
    /// One layer per GRU on the reference or CPU path.
    Each(Vec<Box<dyn Forward>>),
    /// One GPU layer per GRU, one submit each.
    Gpu(Vec<GpuGru>),
    /// A Keras chain on the GPU, one submit in all.
    KerasChain(Box<keras_gpu::KerasGpu>),
}

/// What one prediction did on the GPU (all zero on the reference and CPU paths).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PredictStats {
    /// Queue submits.
    pub gpu_submits: u32,
    /// Compute dispatches recorded.
    pub gpu_dispatches: u32,
}

/// The model a runner runs: borrowed, or shared with it.
enum ModelRef<'m> {
    Borrowed(&'m Model),
    Shared(std::sync::Arc<Model>),
}

impl std::ops::Deref for ModelRef<'_> {
    type Target = Model;
    fn deref(&self) -> &Model {
        match self {
            ModelRef::Borrowed(m) => m,
            ModelRef::Shared(m) => m,
        }
    }
}

/// A [`Model`] prepared on one [`Backend`].
pub struct ModelRunner<'m> {
    model: ModelRef<'m>,
    layers: Layers,
}

impl std::fmt::Debug for ModelRunner<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let layers = match &self.layers {
            Layers::Each(l) => format!("{} layer(s)", l.len()),
            Layers::Gpu(l) => format!("{} GPU layer(s)", l.len()),
            Layers::KerasChain(c) => format!("{c:?}"),
        };
        f.debug_struct("ModelRunner")
            .field("model", &self.model.name)
            .field("layers", &layers)
            .finish()
    }
}

impl ModelRunner<'_> {
    /// The framework's `predict(x)`: see the [module docs](self) for the shapes.
    pub fn predict(&self, x: &Array) -> Result<Array> {
        self.predict_with(x, &[])
    }

    /// [`predict`](Self::predict) with further named ONNX graph inputs (`initial_h`,
    /// `sequence_lens`); other kinds of model take none.
    pub fn predict_with(&self, x: &Array, feeds: &[(String, FeedValue)]) -> Result<Array> {
        self.predict_with_stats(x, feeds).map(|(y, _)| y)
    }

    /// [`predict_with`](Self::predict_with), also saying what ran on the GPU: a Keras model
    /// there is one submit in all; an ONNX graph, one per GRU node. Blocks until the GPU is done;
    /// on the web use [`predict_with_stats_async`](Self::predict_with_stats_async).
    pub fn predict_with_stats(
        &self,
        x: &Array,
        feeds: &[(String, FeedValue)],
    ) -> Result<(Array, PredictStats)> {
        pollster::block_on(self.predict_with_stats_async(x, feeds))
    }

    /// [`predict`](Self::predict) as a future: on the GPU it waits for its submissions without
    /// blocking a thread (on the web, the browser completes them).
    pub async fn predict_async(&self, x: &Array) -> Result<Array> {
        self.predict_with_stats_async(x, &[]).await.map(|(y, _)| y)
    }

    /// [`predict_with_stats`](Self::predict_with_stats) as a future.
    pub async fn predict_with_stats_async(
        &self,
        x: &Array,
        feeds: &[(String, FeedValue)],
    ) -> Result<(Array, PredictStats)> {
        let runs = Runs {
            layers: &self.layers,
            stats: std::cell::Cell::new(PredictStats::default()),
        };
        let y = match &self.model.kind {
            ModelKind::Keras(k) => {
                refuse_feeds(feeds, "a Keras model")?;
                if let Layers::KerasChain(chain) = &self.layers {
                    let (y, s) = chain.predict(k, x).await?;
                    runs.stats.set(PredictStats {
                        gpu_submits: s.submits,
                        gpu_dispatches: s.dispatches,
                    });
                    y
                } else {
                    keras::predict(k, x, &runs).await?
                }
            }
            ModelKind::Onnx(p) => {
                let first = p.inputs().first().ok_or_else(|| Error::Parse {
                    what: self.model.name.clone(),
                    reason: "the graph has no input".into(),
                })?;
                let mut all = Vec::with_capacity(feeds.len() + 1);
                all.push((first.name.clone(), FeedValue::F32(x.clone())));
                all.extend(feeds.iter().cloned());
                let mut outs = p.run_async(&all, &runs).await?;
                if outs.is_empty() {
                    return Err(Error::Parse {
                        what: self.model.name.clone(),
                        reason: "the graph has no output".into(),
                    });
                }
                outs.swap_remove(0)
            }
            ModelKind::Gru(i) => {
                refuse_feeds(feeds, "a file of GRU weights")?;
                let shapes = i.shapes()?;
                let (t, b) = shapes.x_dims(&x.shape)?;
                let input = SeqInput::new(&x.data, t, b);
                let out = runs.run_gru(0, &input).await?;
                let y = shapes.output_to_framework(t, b, &out.output)?;
                Array::new(shapes.output_shape(t, b), y)?
            }
        };
        Ok((y, runs.stats.get()))
    }
}

/// A runner's layers as a [`RunGru`], counting what ran on the GPU.
struct Runs<'r> {
    layers: &'r Layers,
    stats: std::cell::Cell<PredictStats>,
}

impl RunGru for Runs<'_> {
    fn run_gru<'a>(&'a self, k: usize, input: &'a SeqInput<'a>) -> GruFuture<'a> {
        let no_gru = move || Error::arg("gru", format!("the model has no GRU number {k}"));
        Box::pin(async move {
            match self.layers {
                Layers::Each(l) => l.get(k).ok_or_else(no_gru)?.forward(input),
                Layers::Gpu(l) => {
                    let layer = l.get(k).ok_or_else(no_gru)?;
                    let (out, s) = layer.forward_with_stats_async(input).await?;
                    let mut all = self.stats.get();
                    all.gpu_submits += s.submits;
                    all.gpu_dispatches += s.dispatches;
                    self.stats.set(all);
                    Ok(out)
                }
                Layers::KerasChain(_) => Err(Error::Gpu(
                    "a Keras chain on the GPU runs whole, not layer by layer".into(),
                )),
            }
        })
    }
}

fn refuse_feeds(feeds: &[(String, FeedValue)], what: &str) -> Result<()> {
    match feeds.first() {
        None => Ok(()),
        Some((name, _)) => Err(Error::arg(
            name.clone(),
            format!("{what} takes one input; only ONNX graphs take further named inputs"),
        )),
    }
}
