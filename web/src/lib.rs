//! wgpu-gru for JavaScript: GRU layers and whole models on the browser's WebGPU, with the CPU
//! path (single-threaded) where no adapter is offered. Built by `web/build.sh` into
//! `web/pkg/wgpu_gru.js`:
//!
//! ```js
//! import init, { GruModel, Model, Classifier } from "./pkg/wgpu_gru.js";
//! await init();
//! const m = await GruModel.load(bytes, { format: "pytorch" }); // any file formats::load reads
//! m.backend;                                                   // "webgpu" or "cpu"
//! const { output, state } = await m.forward(x, steps, batch, { h0, lengths });
//! const model = await Model.load(bytes);                       // .keras, .h5, .onnx, …
//! const { data, shape } = await model.predict(x, [B, T, I]);
//! ```
//!
//! Every entry point is async end to end: nothing blocks, spawns a thread, reads a clock or
//! touches a file. One GPU device serves every model of the page.

#![warn(missing_docs)]

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Array as JsArray, Float32Array, Int32Array, Object, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;
use wgpu_gru::cpu::CpuGru;
use wgpu_gru::formats::{self, Format, ImportOptions};
use wgpu_gru::gpu::{GpuClassifier, GpuContext, GpuGru};
use wgpu_gru::model::GruClassifier;
use wgpu_gru::predict::{self, Array, Backend};
use wgpu_gru::{Batch, Direction, SeqInput, Steps};

/// Runs when the module is instantiated: a panic (a bug) reaches the console with its message
/// instead of a bare `unreachable` trap.
#[wasm_bindgen(start)]
pub fn start() {
    std::panic::set_hook(Box::new(|info| {
        web_sys::console::error_1(&format!("wgpu-gru panicked: {info}").into());
    }));
}

thread_local! {
    /// The page's GPU: asked for once; `None` when the browser offers no adapter.
    static GPU: RefCell<Option<Option<GpuContext>>> = const { RefCell::new(None) };
}

/// The page's GPU context, or `None` where WebGPU offers no adapter (asked once per page).
async fn gpu() -> Option<GpuContext> {
    if let Some(known) = GPU.with(|g| g.borrow().clone()) {
        return known;
    }
    let ctx = GpuContext::new_default_async().await.ok();
    GPU.with(|g| *g.borrow_mut() = Some(ctx.clone()));
    ctx
}

fn js_err(e: impl std::fmt::Display) -> JsValue {
    JsError::new(&e.to_string()).into()
}

/// `options[key]`, when present and not `undefined`/`null`.
fn opt(options: &JsValue, key: &str) -> Result<Option<JsValue>, JsValue> {
    if options.is_undefined() || options.is_null() {
        return Ok(None);
    }
    let v = Reflect::get(options, &JsValue::from_str(key))?;
    Ok((!v.is_undefined() && !v.is_null()).then_some(v))
}

fn opt_bool(options: &JsValue, key: &str) -> Result<Option<bool>, JsValue> {
    opt(options, key)?
        .map(|v| {
            v.as_bool()
                .ok_or_else(|| js_err(format!("option {key}: expected true or false")))
        })
        .transpose()
}

fn opt_string(options: &JsValue, key: &str) -> Result<Option<String>, JsValue> {
    opt(options, key)?
        .map(|v| {
            v.as_string()
                .ok_or_else(|| js_err(format!("option {key}: expected a string")))
        })
        .transpose()
}

fn opt_numbers(options: &JsValue, key: &str) -> Result<Vec<f32>, JsValue> {
    let Some(v) = opt(options, key)? else {
        return Ok(Vec::new());
    };
    JsArray::from(&v)
        .iter()
        .map(|n| {
            n.as_f64()
                .map(|f| f as f32)
                .ok_or_else(|| js_err(format!("option {key}: expected numbers")))
        })
        .collect()
}

/// Which path the caller asked for: `backend: "webgpu" | "cpu" | "auto"` (default auto).
async fn choose(options: &JsValue) -> Result<Option<GpuContext>, JsValue> {
    match opt_string(options, "backend")?.as_deref() {
        None | Some("auto") => Ok(gpu().await),
        Some("cpu") => Ok(None),
        Some("webgpu") => match gpu().await {
            Some(ctx) => Ok(Some(ctx)),
            None => Err(js_err(
                "backend \"webgpu\": the browser offers no WebGPU adapter",
            )),
        },
        Some(other) => Err(js_err(format!(
            "option backend: {other:?}; expected \"auto\", \"webgpu\" or \"cpu\""
        ))),
    }
}

/// The CLI's import options, camelCased: `format`, `batchFirst`, `direction`,
/// `linearBeforeReset`, `resetAfter`, `activations`, `activationAlpha`, `activationBeta`, `clip`,
/// `goBackwards`, `node`, `prefix`.
fn import_options(options: &JsValue) -> Result<(Option<Format>, ImportOptions), JsValue> {
    let format = opt_string(options, "format")?
        .map(|f| f.parse::<Format>().map_err(js_err))
        .transpose()?;
    let direction = match opt_string(options, "direction")?.as_deref() {
        None => None,
        Some("forward") => Some(Direction::Forward),
        Some("reverse") => Some(Direction::Reverse),
        Some("bidirectional") => Some(Direction::Bidirectional),
        Some(other) => {
            return Err(js_err(format!(
                "option direction: {other:?}; expected forward, reverse or bidirectional"
            )));
        }
    };
    let activations = match opt(options, "activations")? {
        None => Vec::new(),
        Some(v) => JsArray::from(&v)
            .iter()
            .map(|n| {
                n.as_string()
                    .ok_or_else(|| js_err("option activations: expected strings"))
            })
            .collect::<Result<_, _>>()?,
    };
    let clip = match opt(options, "clip")? {
        None => None,
        Some(v) => Some(
            v.as_f64()
                .ok_or_else(|| js_err("option clip: expected a number"))? as f32,
        ),
    };
    Ok((
        format,
        ImportOptions {
            direction,
            linear_before_reset: opt_bool(options, "linearBeforeReset")?.unwrap_or(false),
            reset_after: opt_bool(options, "resetAfter")?,
            activations,
            activation_alpha: opt_numbers(options, "activationAlpha")?,
            activation_beta: opt_numbers(options, "activationBeta")?,
            clip,
            go_backwards: opt_bool(options, "goBackwards")?.unwrap_or(false),
            batch_first: opt_bool(options, "batchFirst")?.unwrap_or(false),
            node: opt_string(options, "node")?,
            prefix: opt_string(options, "prefix")?,
        },
    ))
}

/// The adapter as wgpu describes it; on the web its name is empty, so the backend and type.
fn describe(ctx: &GpuContext) -> String {
    let info = ctx.adapter_info();
    if info.name.is_empty() {
        format!("{:?}, {:?}", info.backend, info.device_type)
    } else {
        ctx.describe()
    }
}

fn backend_name(gpu: bool) -> String {
    if gpu { "webgpu" } else { "cpu" }.to_string()
}

/// A GRU layer (or stack) on the page's WebGPU, or on the CPU where there is none.
enum Layer {
    Gpu(Box<GpuGru>),
    Cpu(Box<CpuGru>),
}

/// A GRU read from any file `formats::load` reads (safetensors in any layout, a `torch.save`
/// checkpoint, an `.onnx` GRU): `forward` gives the layer's output and final state.
#[wasm_bindgen]
pub struct GruModel {
    layer: Rc<Layer>,
    adapter: String,
}

#[wasm_bindgen]
impl GruModel {
    /// `GruModel.load(bytes, options)`: `bytes` a `Uint8Array` of the file; `options` as the
    /// CLI's (`format`, `batchFirst`, `direction`, `linearBeforeReset`, `resetAfter`,
    /// `activations`, `activationAlpha`, `activationBeta`, `clip`, `goBackwards`, `node`,
    /// `prefix`) plus `backend: "auto" | "webgpu" | "cpu"`; `fromMetadata: true` takes them from
    /// a safetensors file's own `__metadata__` instead. Resolves to the model.
    pub fn load(bytes: Vec<u8>, options: JsValue) -> Promise {
        future_to_promise(async move {
            let (format, opts) = if opt_bool(&options, "fromMetadata")?.unwrap_or(false) {
                // A safetensors file that records its options in __metadata__ (the golden cases).
                let file =
                    formats::SafetensorsFile::from_bytes(bytes.clone(), "model").map_err(js_err)?;
                let meta = formats::options_from_metadata(&file.metadata().map_err(js_err)?)
                    .map_err(js_err)?;
                (meta.format, meta.options)
            } else {
                import_options(&options)?
            };
            let imported =
                formats::load_bytes(&bytes, "model", None, format, &opts).map_err(js_err)?;
            let (layer, adapter) = match choose(&options).await? {
                Some(ctx) => (
                    Layer::Gpu(Box::new(GpuGru::new(&ctx, &imported.gru).map_err(js_err)?)),
                    describe(&ctx),
                ),
                None => (
                    Layer::Cpu(Box::new(CpuGru::new(&imported.gru).map_err(js_err)?)),
                    "CPU (no WebGPU adapter)".to_string(),
                ),
            };
            Ok(GruModel {
                layer: Rc::new(layer),
                adapter,
            }
            .into())
        })
    }

    /// `"webgpu"` or `"cpu"`: the path `load` chose.
    #[wasm_bindgen(getter)]
    pub fn backend(&self) -> String {
        backend_name(matches!(*self.layer, Layer::Gpu(_)))
    }

    /// The adapter the model runs on, as wgpu describes it.
    #[wasm_bindgen(getter)]
    pub fn adapter(&self) -> String {
        self.adapter.clone()
    }

    /// `forward(x, steps, batch, { h0, lengths })`: `x` a `Float32Array` `[T, B, I]` (`[B, T,
    /// I]` when loaded with `batchFirst`), `h0` a `Float32Array` `[L·D, B, H]`, `lengths` an
    /// `Int32Array` `[B]`. Resolves to `{ output, state }`: `output` `[T, B, D·H]` (`[B, T, D·H]`
    /// batch-first), `state` `[L·D, B, H]`.
    pub fn forward(&self, x: Vec<f32>, steps: usize, batch: usize, options: JsValue) -> Promise {
        let layer = Rc::clone(&self.layer);
        future_to_promise(async move {
            let h0: Option<Vec<f32>> = opt(&options, "h0")?.map(|v| Float32Array::new(&v).to_vec());
            let lengths: Option<Vec<usize>> = match opt(&options, "lengths")? {
                None => None,
                Some(v) => Some(
                    Int32Array::new(&v)
                        .to_vec()
                        .into_iter()
                        .map(|l| {
                            usize::try_from(l)
                                .map_err(|_| js_err(format!("lengths: {l} is negative")))
                        })
                        .collect::<Result<_, _>>()?,
                ),
            };
            let mut input = SeqInput::new(&x, Steps(steps), Batch(batch));
            if let Some(h0) = &h0 {
                input = input.with_h0(h0);
            }
            if let Some(l) = &lengths {
                input = input.with_lengths(l);
            }
            let out = match &*layer {
                Layer::Gpu(g) => g.forward_async(&input).await,
                Layer::Cpu(c) => c.forward(&input),
            }
            .map_err(js_err)?;
            let result = Object::new();
            Reflect::set(
                &result,
                &"output".into(),
                &Float32Array::from(&out.output[..]),
            )?;
            Reflect::set(&result, &"state".into(), &Float32Array::from(&out.h_n[..]))?;
            Ok(result.into())
        })
    }
}

/// A whole model as saved (Keras `.keras`/`.h5`, `.onnx` without external data, or a GRU-only
/// file): `predict` gives what the framework's predict gives.
#[wasm_bindgen]
pub struct Model {
    runner: Rc<predict::ModelRunner<'static>>,
    gpu: bool,
    describe: String,
}

#[wasm_bindgen]
impl Model {
    /// `Model.load(bytes, { backend })`: resolves to the model, prepared on the page's WebGPU or
    /// the CPU.
    pub fn load(bytes: Vec<u8>, options: JsValue) -> Promise {
        future_to_promise(async move {
            let model = std::sync::Arc::new(
                predict::Model::from_bytes(&bytes, "model", None).map_err(js_err)?,
            );
            let ctx = choose(&options).await?;
            let backend = match &ctx {
                Some(ctx) => Backend::Gpu(ctx),
                None => Backend::Cpu,
            };
            let runner = predict::Model::shared_runner(&model, backend).map_err(js_err)?;
            Ok(Model {
                runner: Rc::new(runner),
                gpu: ctx.is_some(),
                describe: model.describe(),
            }
            .into())
        })
    }

    /// `"webgpu"` or `"cpu"`.
    #[wasm_bindgen(getter)]
    pub fn backend(&self) -> String {
        backend_name(self.gpu)
    }

    /// The file's kind and layers.
    #[wasm_bindgen(getter)]
    pub fn description(&self) -> String {
        self.describe.clone()
    }

    /// `predict(x, shape)`: `x` a `Float32Array` of `shape` (Keras `[B, T, I]`; ONNX the graph's
    /// first input). Resolves to `{ data: Float32Array, shape: number[] }`.
    pub fn predict(&self, x: Vec<f32>, shape: Vec<u32>) -> Promise {
        let runner = Rc::clone(&self.runner);
        future_to_promise(async move {
            let shape: Vec<usize> = shape.into_iter().map(|d| d as usize).collect();
            let x = Array::new(shape, x).map_err(js_err)?;
            let y = runner.predict_async(&x).await.map_err(js_err)?;
            array_to_js(&y)
        })
    }
}

fn array_to_js(y: &Array) -> Result<JsValue, JsValue> {
    let result = Object::new();
    Reflect::set(&result, &"data".into(), &Float32Array::from(&y.data[..]))?;
    let shape: JsArray = y.shape.iter().map(|&d| JsValue::from(d as u32)).collect();
    Reflect::set(&result, &"shape".into(), &shape)?;
    Ok(result.into())
}

/// The digits demo's classifier: a GRU → Dense → softmax safetensors file (PyTorch names
/// `gru.*`, `dense.*`), whole on the GPU in one submit.
#[wasm_bindgen]
pub struct Classifier {
    inner: Rc<(GruClassifier, Option<GpuClassifier>)>,
    adapter: String,
}

#[wasm_bindgen]
impl Classifier {
    /// `Classifier.load(bytes, { backend })`.
    pub fn load(bytes: Vec<u8>, options: JsValue) -> Promise {
        future_to_promise(async move {
            let model = GruClassifier::from_safetensors_bytes(&bytes).map_err(js_err)?;
            let (gpu, adapter) = match choose(&options).await? {
                Some(ctx) => (
                    Some(GpuClassifier::new(&ctx, &model).map_err(js_err)?),
                    describe(&ctx),
                ),
                None => (None, "CPU (no WebGPU adapter)".to_string()),
            };
            Ok(Classifier {
                inner: Rc::new((model, gpu)),
                adapter,
            }
            .into())
        })
    }

    /// `"webgpu"` or `"cpu"`.
    #[wasm_bindgen(getter)]
    pub fn backend(&self) -> String {
        backend_name(self.inner.1.is_some())
    }

    /// The adapter, as wgpu describes it.
    #[wasm_bindgen(getter)]
    pub fn adapter(&self) -> String {
        self.adapter.clone()
    }

    /// Classes C.
    #[wasm_bindgen(getter)]
    pub fn classes(&self) -> usize {
        self.inner.0.num_classes()
    }

    /// `predictProba(x, steps, batch)`: `x` `[B, T, I]` as the file's GRU reads it; resolves to
    /// the probabilities `Float32Array` `[B, C]`.
    #[wasm_bindgen(js_name = predictProba)]
    pub fn predict_proba(&self, x: Vec<f32>, steps: usize, batch: usize) -> Promise {
        let inner = Rc::clone(&self.inner);
        future_to_promise(async move {
            let (model, gpu) = &*inner;
            let probs = match gpu {
                Some(g) => g.predict_proba_async(&x, Steps(steps), Batch(batch)).await,
                None => model.reference_forward(&x, Steps(steps), Batch(batch)),
            }
            .map_err(js_err)?;
            Ok(Float32Array::from(&probs[..]).into())
        })
    }
}
