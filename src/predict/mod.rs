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
//! A model is data; a [`ModelRunner`] holds one prepared layer per GRU on a [`Backend`] and
//! runs the rest of the model (Dense layers, activations, the ONNX ops around the GRU) on the
//! CPU, with f64 sums.

pub mod keras;
pub mod onnx;

use std::path::Path;

use crate::error::{Error, Result};
use crate::formats::{self, Container, Imported, keras_file};
use crate::gpu::{GpuContext, GpuGru};
use crate::io::{Batch, Forward, GruOutput, SeqInput, Steps};
use crate::weights::Gru;

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
                format!("{} ({n} elements)", crate::npy::shape_str(&shape)),
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
        let path = path.as_ref();
        let name = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            path: name.clone(),
            source,
        })?;
        Self::from_bytes(&bytes, &name, path.parent())
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

    /// Prepares every GRU of the model on `backend`.
    pub fn runner(&self, backend: Backend<'_>) -> Result<ModelRunner<'_>> {
        let mut layers: Vec<Box<dyn Forward>> = Vec::new();
        for gru in self.grus() {
            layers.push(match backend {
                Backend::Reference => Box::new(crate::reference::Reference(gru.clone())),
                Backend::Cpu => Box::new(crate::cpu::CpuGru::new(gru)?),
                Backend::CpuThreads(n) => {
                    Box::new(crate::cpu::CpuGru::new(gru)?.with_threads(n.max(1)))
                }
                Backend::Gpu(ctx) => Box::new(GpuGru::new(ctx, gru)?),
            });
        }
        Ok(ModelRunner {
            model: self,
            layers,
        })
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

/// A [`Model`] with its GRUs prepared on one [`Backend`].
pub struct ModelRunner<'m> {
    model: &'m Model,
    layers: Vec<Box<dyn Forward>>,
}

impl std::fmt::Debug for ModelRunner<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelRunner")
            .field("model", &self.model.name)
            .field("layers", &self.layers.len())
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
        let run = |k: usize, input: &SeqInput<'_>| -> Result<GruOutput> {
            let layer = self
                .layers
                .get(k)
                .ok_or_else(|| Error::arg("gru", format!("the model has no GRU number {k}")))?;
            layer.forward(input)
        };
        match &self.model.kind {
            ModelKind::Keras(k) => {
                refuse_feeds(feeds, "a Keras model")?;
                keras::predict(k, x, &run)
            }
            ModelKind::Onnx(p) => {
                let first = p.inputs().first().ok_or_else(|| Error::Parse {
                    what: self.model.name.clone(),
                    reason: "the graph has no input".into(),
                })?;
                let mut all = Vec::with_capacity(feeds.len() + 1);
                all.push((first.name.clone(), FeedValue::F32(x.clone())));
                all.extend(feeds.iter().cloned());
                let mut gru = |k: usize, input: &SeqInput<'_>| run(k, input);
                let mut outs = p.run(&all, &mut gru)?;
                if outs.is_empty() {
                    return Err(Error::Parse {
                        what: self.model.name.clone(),
                        reason: "the graph has no output".into(),
                    });
                }
                Ok(outs.swap_remove(0))
            }
            ModelKind::Gru(i) => {
                refuse_feeds(feeds, "a file of GRU weights")?;
                let shapes = i.shapes()?;
                let (t, b) = shapes.x_dims(&x.shape)?;
                let out = run(0, &SeqInput::new(&x.data, t, b))?;
                let y = shapes.output_to_framework(t, b, &out.output)?;
                Array::new(shapes.output_shape(t, b), y)
            }
        }
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
