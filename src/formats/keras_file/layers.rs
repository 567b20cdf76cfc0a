//! The model config (JSON) walked into [`KerasLayer`]s, with each layer's weights found in the
//! Keras 3 store (`layers/<class>[_n]/…/vars/<i>`) or the legacy one
//! (`model_weights/<layer>/<weight_names[i]>`).

use std::collections::HashMap;

use serde_json::Value;

use super::archive::parse_err;
use super::h5::{H5, Weight};
use super::{DenseActivation, KerasLayer, KerasModel, MergeMode};
use crate::config::{Activation, Activations, Direction, GruConfig, Variant};
use crate::error::{Error, Result};
use crate::formats::keras::keras_cell;
use crate::formats::keras_activation;
use crate::formats::shape_str;
use crate::model::Dense;
use crate::weights::{CellWeights, Gru, GruWeights};

/// Most layers a model may list.
const MAX_LAYERS: usize = 4096;

const SUPPORTED: &str =
    "supported layers: InputLayer, Masking, GRU, Bidirectional(GRU), Dense, Dropout";

/// Where a model's weights are.
pub(super) enum Weights<'a> {
    /// A Keras 3 `model.weights.h5`.
    Keras3(&'a H5),
    /// A legacy `.h5`: the file and its `layer_names`/`weight_names` index.
    Legacy(&'a H5, &'a Legacy),
}

/// The legacy file's index: each layer's weight paths, in `weight_names` order.
pub(super) struct Legacy {
    layers: HashMap<String, Vec<String>>,
}

impl Legacy {
    /// Reads `model_weights`' `layer_names` and each layer's `weight_names`.
    pub fn open(file: &H5, name: &str) -> Result<Self> {
        let Some(names) = file.attr_strings("model_weights", "layer_names")? else {
            return Err(parse_err(
                name,
                "no model_weights group with a layer_names attribute: not a Keras model.save file",
            ));
        };
        if names.len() > MAX_LAYERS {
            return Err(parse_err(name, format!("more than {MAX_LAYERS} layers")));
        }
        let mut layers = HashMap::new();
        for layer in names {
            let group = format!("model_weights/{layer}");
            let weights = file
                .attr_strings(&group, "weight_names")?
                .unwrap_or_default()
                .into_iter()
                .map(|w| format!("{group}/{w}"))
                .collect();
            layers.insert(layer, weights);
        }
        Ok(Legacy { layers })
    }
}

/// One layer of the config: class, name, config object, and its Keras 3 store path.
struct Spec<'v> {
    class: String,
    name: String,
    config: &'v serde_json::Map<String, Value>,
    /// `layers/<snake_case(class)>[_n]`.
    store: String,
}

fn cfg_err(file: &str, reason: impl Into<String>) -> Error {
    parse_err(file, reason)
}

fn get_obj<'v>(v: &'v Value, key: &str) -> Option<&'v serde_json::Map<String, Value>> {
    v.get(key).and_then(Value::as_object)
}

fn snake(class: &str) -> String {
    // Keras's `to_snake_case` for the names it produces here.
    let mut out = String::new();
    let chars: Vec<char> = class.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() {
            let prev_lower = i > 0
                && chars
                    .get(i - 1)
                    .is_some_and(|p| p.is_ascii_lowercase() || p.is_ascii_digit());
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
            let prev_upper = i > 0 && chars.get(i - 1).is_some_and(|p| p.is_ascii_uppercase());
            if prev_lower || (prev_upper && next_lower) {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Walks `config` (the whole config.json or model_config) into a model.
pub(super) fn build(config: &Value, weights: &Weights<'_>, file: &str) -> Result<KerasModel> {
    let class = config
        .get("class_name")
        .and_then(Value::as_str)
        .ok_or_else(|| cfg_err(file, "the model config has no class_name"))?;
    let inner = config
        .get("config")
        .ok_or_else(|| cfg_err(file, "the model config has no config"))?;
    let model_name = inner
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or(class)
        .to_string();
    let list = inner
        .get("layers")
        .and_then(Value::as_array)
        .ok_or_else(|| cfg_err(file, "the model config has no layers list"))?;
    if list.len() > MAX_LAYERS {
        return Err(cfg_err(file, format!("more than {MAX_LAYERS} layers")));
    }
    let functional = match class {
        "Sequential" => false,
        "Functional" | "Model" => true,
        other => {
            return Err(Error::Unsupported(format!(
                "{file}: a {other} model; supported: Sequential, and Functional models that are one chain"
            )));
        }
    };
    let mut counters: HashMap<String, usize> = HashMap::new();
    let mut specs = Vec::with_capacity(list.len());
    for (i, l) in list.iter().enumerate() {
        let class = l
            .get("class_name")
            .and_then(Value::as_str)
            .ok_or_else(|| cfg_err(file, format!("layer {i} has no class_name")))?
            .to_string();
        let config = get_obj(l, "config")
            .ok_or_else(|| cfg_err(file, format!("layer {i} ({class}) has no config")))?;
        let name = config
            .get("name")
            .and_then(Value::as_str)
            .or_else(|| l.get("name").and_then(Value::as_str))
            .unwrap_or("")
            .to_string();
        let base = snake(&class);
        let n = counters.entry(base.clone()).or_insert(0);
        let store = if *n == 0 {
            format!("layers/{base}")
        } else {
            format!("layers/{base}_{n}")
        };
        *n += 1;
        specs.push(Spec {
            class,
            name,
            config,
            store,
        });
    }
    if functional {
        check_chain(inner, list, &specs, file)?;
    }
    let mut model = KerasModel {
        name: model_name,
        input_features: None,
        input_steps: None,
        layers: Vec::new(),
    };
    // Features per step of the tensor flowing between layers, when known, and whether it is
    // still a sequence.
    let mut feat: Option<usize> = None;
    let mut seq = true;
    for (i, s) in specs.iter().enumerate() {
        // The input shape: an InputLayer's batch_shape, or (Keras 2) batch_input_shape on the
        // first layer.
        if i == 0 || s.class == "InputLayer" {
            let shape = s
                .config
                .get("batch_shape")
                .or_else(|| s.config.get("batch_input_shape"));
            if let Some(shape) = shape.and_then(Value::as_array) {
                if i != 0 {
                    return Err(cfg_err(
                        file,
                        format!("InputLayer {:?} is not the first layer", s.name),
                    ));
                }
                if shape.len() != 3 {
                    return Err(Error::Unsupported(format!(
                        "{file}: input shape {} is not [batch, steps, features]",
                        Value::Array(shape.clone())
                    )));
                }
                let dim = |v: &Value| v.as_u64().and_then(|d| usize::try_from(d).ok());
                model.input_steps = shape.get(1).and_then(dim);
                model.input_features = shape.get(2).and_then(dim);
                feat = model.input_features;
            } else if s.class == "InputLayer" && i != 0 {
                return Err(cfg_err(
                    file,
                    format!("InputLayer {:?} is not the first layer", s.name),
                ));
            }
        }
        let what = format!("{file}: layer {:?}", s.name);
        match s.class.as_str() {
            "InputLayer" | "Dropout" => {}
            "Masking" => {
                let mask_value = match s.config.get("mask_value") {
                    None | Some(Value::Null) => 0.0,
                    Some(v) => v.as_f64().ok_or_else(|| {
                        cfg_err(file, format!("{what}: mask_value is not a number"))
                    })? as f32,
                };
                if !seq {
                    return Err(Error::Unsupported(format!(
                        "{what}: Masking after the sequence ended"
                    )));
                }
                model.layers.push(KerasLayer::Masking { mask_value });
            }
            "GRU" => {
                if !seq {
                    return Err(Error::Unsupported(format!(
                        "{what}: a GRU fed by a layer that returns no sequence"
                    )));
                }
                let g = GruSpec::parse(s.config, &what)?;
                let w = match weights {
                    Weights::Keras3(f) => {
                        keras3_vars(f, &format!("{}/cell/vars", s.store), g.n_vars())?
                    }
                    Weights::Legacy(f, l) => legacy_vars(f, l, &s.name, g.n_vars())?,
                };
                let (cell, input) = g.cell(&w, &what)?;
                check_feat(feat, input, &what)?;
                let mut config = GruConfig::new(input, g.units).with_variant(g.variant());
                config.activations = vec![g.acts];
                config.batch_first = true;
                config.go_backwards = g.go_backwards;
                let gru = Gru::new(
                    config,
                    GruWeights {
                        layers: vec![vec![cell]],
                    },
                )?;
                feat = Some(g.units);
                seq = g.return_sequences;
                model.layers.push(KerasLayer::Gru {
                    name: s.name.clone(),
                    gru,
                    return_sequences: g.return_sequences,
                });
            }
            "Bidirectional" => {
                if !seq {
                    return Err(Error::Unsupported(format!(
                        "{what}: a Bidirectional fed by a layer that returns no sequence"
                    )));
                }
                let merge = match s.config.get("merge_mode") {
                    None => Some("concat"),
                    Some(Value::Null) => None,
                    Some(v) => Some(v.as_str().ok_or_else(|| {
                        cfg_err(file, format!("{what}: merge_mode is not a string"))
                    })?),
                };
                let merge_mode = MergeMode::from_keras(merge)?;
                if merge_mode == MergeMode::None {
                    return Err(Error::Unsupported(format!(
                        "{what}: Bidirectional merge_mode=None returns two outputs; use concat, sum, ave or mul"
                    )));
                }
                let inner_cfg = |key: &str| -> Result<Option<&serde_json::Map<String, Value>>> {
                    let Some(l) = s.config.get(key) else {
                        return Ok(None);
                    };
                    if l.is_null() {
                        return Ok(None);
                    }
                    let class = l.get("class_name").and_then(Value::as_str).unwrap_or("?");
                    if class != "GRU" {
                        return Err(Error::Unsupported(format!(
                            "{what} wraps a {class}; {SUPPORTED}"
                        )));
                    }
                    get_obj(l, "config")
                        .map(Some)
                        .ok_or_else(|| cfg_err(file, format!("{what}: {key} has no config")))
                };
                let fwd_cfg = inner_cfg("layer")?.ok_or_else(|| {
                    cfg_err(file, format!("{what}: Bidirectional without a layer"))
                })?;
                let fwd = GruSpec::parse(fwd_cfg, &format!("{what} (forward)"))?;
                let bwd = match inner_cfg("backward_layer")? {
                    Some(c) => GruSpec::parse(c, &format!("{what} (backward)"))?,
                    None => {
                        let mut b = fwd.clone();
                        b.go_backwards = !fwd.go_backwards;
                        b
                    }
                };
                if fwd.go_backwards || !bwd.go_backwards {
                    return Err(Error::Unsupported(format!(
                        "{what}: a Bidirectional whose forward layer has go_backwards=True"
                    )));
                }
                if fwd.units != bwd.units || fwd.reset_after != bwd.reset_after {
                    return Err(Error::Unsupported(format!(
                        "{what}: forward and backward layers differ (units {} vs {}, reset_after {} vs {})",
                        fwd.units, bwd.units, fwd.reset_after, bwd.reset_after
                    )));
                }
                if fwd.return_sequences != bwd.return_sequences {
                    return Err(Error::Unsupported(format!(
                        "{what}: forward and backward layers differ in return_sequences"
                    )));
                }
                let (fw, bw) = match weights {
                    Weights::Keras3(f) => (
                        keras3_vars(
                            f,
                            &format!("{}/forward_layer/cell/vars", s.store),
                            fwd.n_vars(),
                        )?,
                        keras3_vars(
                            f,
                            &format!("{}/backward_layer/cell/vars", s.store),
                            bwd.n_vars(),
                        )?,
                    ),
                    Weights::Legacy(f, l) => {
                        // weight_names: the forward layer's weights, then the backward one's.
                        let all = legacy_vars(f, l, &s.name, fwd.n_vars() + bwd.n_vars())?;
                        let (a, b) = all.split_at(fwd.n_vars().min(all.len()));
                        (a.to_vec(), b.to_vec())
                    }
                };
                let (fcell, input) = fwd.cell(&fw, &format!("{what} (forward)"))?;
                let (bcell, binput) = bwd.cell(&bw, &format!("{what} (backward)"))?;
                if binput != input {
                    return Err(Error::shape(
                        format!("{what}: backward kernel"),
                        format!("[{input}, {}]", 3 * fwd.units),
                        format!("[{binput}, {}]", 3 * bwd.units),
                    ));
                }
                check_feat(feat, input, &what)?;
                let mut config = GruConfig::new(input, fwd.units)
                    .with_variant(fwd.variant())
                    .with_direction(Direction::Bidirectional);
                config.activations = vec![fwd.acts, bwd.acts];
                config.batch_first = true;
                let gru = Gru::new(
                    config,
                    GruWeights {
                        layers: vec![vec![fcell, bcell]],
                    },
                )?;
                feat = Some(if merge_mode == MergeMode::Concat {
                    2 * fwd.units
                } else {
                    fwd.units
                });
                seq = fwd.return_sequences;
                model.layers.push(KerasLayer::Bidirectional {
                    name: s.name.clone(),
                    gru,
                    merge_mode,
                    return_sequences: fwd.return_sequences,
                });
            }
            "Dense" => {
                let units = get_units(s.config, &what)?;
                let activation = DenseActivation::from_keras(&activation_name(
                    s.config.get("activation"),
                    "linear",
                    &what,
                )?)?;
                let use_bias = get_bool(s.config, "use_bias", true, &what)?;
                let n = if use_bias { 2 } else { 1 };
                let w = match weights {
                    Weights::Keras3(f) => keras3_vars(f, &format!("{}/vars", s.store), n)?,
                    Weights::Legacy(f, l) => legacy_vars(f, l, &s.name, n)?,
                };
                let k = weight_at(&w, 0, &what)?;
                let [input, out] = k.shape[..] else {
                    return Err(Error::shape(
                        format!("{}: kernel", k.path),
                        "[in, units]",
                        shape_str(&k.shape),
                    ));
                };
                if out != units || input == 0 {
                    return Err(Error::shape(
                        format!("{}: kernel", k.path),
                        format!("[in, {units}]"),
                        shape_str(&k.shape),
                    ));
                }
                check_feat(feat, input, &what)?;
                let mut weight = vec![0.0f32; k.data.len()];
                for (i, row) in k.data.chunks_exact(units).enumerate() {
                    for (o, &v) in row.iter().enumerate() {
                        if let Some(dst) = weight.get_mut(o * input + i) {
                            *dst = v;
                        }
                    }
                }
                let bias = if use_bias {
                    let b = weight_at(&w, 1, &what)?;
                    if b.shape != [units] {
                        return Err(Error::shape(
                            format!("{}: bias", b.path),
                            format!("[{units}]"),
                            shape_str(&b.shape),
                        ));
                    }
                    b.data.clone()
                } else {
                    vec![0.0; units]
                };
                let dense = Dense::new(input, units, weight, bias)?;
                feat = Some(units);
                model.layers.push(KerasLayer::Dense {
                    name: s.name.clone(),
                    dense,
                    activation,
                });
            }
            other => {
                return Err(Error::Unsupported(format!(
                    "layer {:?} is a {other}; {SUPPORTED}",
                    s.name
                )));
            }
        }
    }
    if model.layers.is_empty() {
        return Err(Error::Unsupported(format!(
            "{file}: a model with no layers to run"
        )));
    }
    Ok(model)
}

fn check_feat(feat: Option<usize>, input: usize, what: &str) -> Result<()> {
    match feat {
        Some(f) if f != input => Err(Error::shape(
            format!("{what}: input features"),
            f,
            format!("{input} (from the kernel)"),
        )),
        _ => Ok(()),
    }
}

fn weight_at<'w>(w: &'w [Weight], i: usize, what: &str) -> Result<&'w Weight> {
    w.get(i).ok_or_else(|| Error::MissingTensor {
        name: format!("weight {i}"),
        context: what.to_string(),
    })
}

/// `vars/0 … vars/n-1` under `group`.
fn keras3_vars(f: &H5, group: &str, n: usize) -> Result<Vec<Weight>> {
    (0..n).map(|i| f.read(&format!("{group}/{i}"))).collect()
}

/// `n` weights of legacy layer `layer`, in `weight_names` order.
fn legacy_vars(f: &H5, l: &Legacy, layer: &str, n: usize) -> Result<Vec<Weight>> {
    let Some(names) = l.layers.get(layer) else {
        return Err(Error::MissingTensor {
            name: format!("model_weights/{layer}"),
            context: "layer_names of the legacy Keras file".to_string(),
        });
    };
    if names.len() != n {
        return Err(Error::shape(
            format!("weight_names of layer {layer:?}"),
            format!("{n} weights"),
            names.len(),
        ));
    }
    names.iter().map(|p| f.read(p)).collect()
}

fn get_bool(
    c: &serde_json::Map<String, Value>,
    key: &str,
    default: bool,
    what: &str,
) -> Result<bool> {
    match c.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(v) => Err(Error::arg(
            format!("{what}: {key}"),
            format!("{v} is not true or false"),
        )),
    }
}

fn get_units(c: &serde_json::Map<String, Value>, what: &str) -> Result<usize> {
    let u = c
        .get("units")
        .and_then(Value::as_u64)
        .and_then(|u| usize::try_from(u).ok())
        .filter(|&u| u > 0)
        .ok_or_else(|| {
            Error::arg(
                format!("{what}: units"),
                "missing or not a positive integer",
            )
        })?;
    u.checked_mul(3)
        .ok_or_else(|| Error::Overflow(format!("{what}: 3 x units")))?;
    Ok(u)
}

/// An activation given as a name, `null`, or a serialized `{"class_name": …, "config": name}`.
fn activation_name(v: Option<&Value>, default: &str, what: &str) -> Result<String> {
    match v {
        None | Some(Value::Null) => Ok(default.to_string()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Object(o)) => match o.get("config") {
            Some(Value::String(s)) => Ok(s.clone()),
            _ => Err(Error::Unsupported(format!(
                "{what}: activation {} (a custom or configured activation)",
                Value::Object(o.clone())
            ))),
        },
        Some(other) => Err(Error::arg(
            format!("{what}: activation"),
            format!("{other} is not a name"),
        )),
    }
}

fn gru_activation(name: &str, what: &str) -> Result<Activation> {
    let (onnx, a, b) = keras_activation(name)
        .map_err(|_| Error::Unsupported(format!("{what}: GRU activation {name:?}")))?;
    Activation::from_onnx(onnx, a, b)
}

/// A GRU's config, as far as it matters at inference.
#[derive(Clone)]
struct GruSpec {
    units: usize,
    acts: Activations,
    use_bias: bool,
    reset_after: bool,
    return_sequences: bool,
    go_backwards: bool,
}

impl GruSpec {
    fn parse(c: &serde_json::Map<String, Value>, what: &str) -> Result<Self> {
        if get_bool(c, "return_state", false, what)? {
            return Err(Error::Unsupported(format!(
                "{what}: return_state=True (a GRU with several outputs)"
            )));
        }
        if get_bool(c, "stateful", false, what)? {
            return Err(Error::Unsupported(format!(
                "{what}: stateful=True (state carried across batches)"
            )));
        }
        let units = get_units(c, what)?;
        let g = activation_name(c.get("activation"), "tanh", what)?;
        let f = activation_name(c.get("recurrent_activation"), "sigmoid", what)?;
        Ok(GruSpec {
            units,
            acts: Activations {
                f: gru_activation(&f, what)?,
                g: gru_activation(&g, what)?,
            },
            use_bias: get_bool(c, "use_bias", true, what)?,
            reset_after: get_bool(c, "reset_after", true, what)?,
            return_sequences: get_bool(c, "return_sequences", false, what)?,
            go_backwards: get_bool(c, "go_backwards", false, what)?,
        })
    }

    fn n_vars(&self) -> usize {
        if self.use_bias { 3 } else { 2 }
    }

    fn variant(&self) -> Variant {
        if self.reset_after {
            Variant::ResetAfter
        } else {
            Variant::ResetBefore
        }
    }

    /// The canonical cell from Keras's kernel `[I, 3H]`, recurrent kernel `[H, 3H]` and bias
    /// (`[2, 3H]` reset_after, `[3H]` reset_before), with `I`.
    fn cell(&self, w: &[Weight], what: &str) -> Result<(CellWeights, usize)> {
        let h = self.units;
        let h3 = 3 * h;
        let k = weight_at(w, 0, what)?;
        let rk = weight_at(w, 1, what)?;
        let input = match k.shape[..] {
            [i, c] if c == h3 && i > 0 => i,
            _ => {
                return Err(Error::shape(
                    format!("{}: kernel", k.path),
                    format!("[I, {h3}]"),
                    shape_str(&k.shape),
                ));
            }
        };
        if rk.shape != [h, h3] {
            return Err(Error::shape(
                format!("{}: recurrent_kernel", rk.path),
                format!("[{h}, {h3}]"),
                shape_str(&rk.shape),
            ));
        }
        let bias = if self.use_bias {
            let b = weight_at(w, 2, what)?;
            let fits = if self.reset_after {
                b.shape == [2, h3]
            } else {
                b.shape == [h3]
            };
            if !fits {
                let want = if self.reset_after {
                    format!("[2, {h3}] (reset_after=True)")
                } else {
                    format!("[{h3}] (reset_after=False)")
                };
                return Err(Error::shape(
                    format!("{}: bias", b.path),
                    want,
                    shape_str(&b.shape),
                ));
            }
            Some(b.data.as_slice())
        } else {
            None
        };
        let cell = keras_cell(&k.data, &rk.data, bias, input, h);
        Ok((cell, input))
    }
}

/// The layer names a node's inputs come from: Keras 3 nodes (`{"args": […], "kwargs": {…}}`
/// with `keras_history` in each tensor) and Keras 2 nodes (`[[name, node, tensor, kwargs], …]`).
fn node_inputs(node: &Value, out: &mut Vec<String>, depth: usize) -> Result<()> {
    if depth > 64 {
        return Err(Error::Unsupported(
            "inbound nodes nested deeper than 64".to_string(),
        ));
    }
    match node {
        Value::Object(o) => {
            if let Some(h) = o.get("keras_history").and_then(Value::as_array) {
                if let Some(n) = h.first().and_then(Value::as_str) {
                    out.push(n.to_string());
                }
                return Ok(());
            }
            for v in o.values() {
                node_inputs(v, out, depth + 1)?;
            }
        }
        Value::Array(a) => {
            // Keras 2: [name, node_index, tensor_index, kwargs]
            if let (Some(Value::String(n)), Some(Value::Number(_))) = (a.first(), a.get(1)) {
                out.push(n.clone());
                for v in a.iter().skip(3) {
                    node_inputs(v, out, depth + 1)?;
                }
                return Ok(());
            }
            for v in a {
                node_inputs(v, out, depth + 1)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// `["name", 0, 0]` or `[["name", 0, 0], …]` → the names.
fn endpoint_names(v: Option<&Value>) -> Vec<String> {
    match v.and_then(Value::as_array) {
        Some(a) if a.first().is_some_and(Value::is_string) => a
            .first()
            .and_then(Value::as_str)
            .map(str::to_string)
            .into_iter()
            .collect(),
        Some(a) => a
            .iter()
            .filter_map(|e| e.as_array().and_then(|e| e.first()).and_then(Value::as_str))
            .map(str::to_string)
            .collect(),
        None => Vec::new(),
    }
}

/// A Functional model must be one chain: the first layer an InputLayer with no inbound node,
/// each other layer one node fed by the layer before, one input and one output.
fn check_chain(inner: &Value, list: &[Value], specs: &[Spec<'_>], file: &str) -> Result<()> {
    let refuse = |why: String| {
        Err(Error::Unsupported(format!(
            "{file}: a Functional model that is not one chain of layers ({why})"
        )))
    };
    let inputs = endpoint_names(inner.get("input_layers"));
    let outputs = endpoint_names(inner.get("output_layers"));
    let (Some(first), Some(last)) = (specs.first(), specs.last()) else {
        return refuse("no layers".to_string());
    };
    if first.class != "InputLayer" {
        return refuse(format!("the first layer is a {}", first.class));
    }
    if inputs != [first.name.clone()] {
        return refuse(format!("inputs {inputs:?}"));
    }
    if outputs != [last.name.clone()] {
        return refuse(format!("outputs {outputs:?}"));
    }
    for (i, (l, s)) in list.iter().zip(specs).enumerate() {
        let nodes = l.get("inbound_nodes").and_then(Value::as_array);
        let n_nodes = nodes.map_or(0, Vec::len);
        if i == 0 {
            if n_nodes != 0 {
                return refuse(format!("input {:?} has inbound nodes", s.name));
            }
            continue;
        }
        let Some(node) = nodes.and_then(|n| n.first()).filter(|_| n_nodes == 1) else {
            return refuse(format!("layer {:?} is called {n_nodes} times", s.name));
        };
        let mut from = Vec::new();
        node_inputs(node, &mut from, 0)?;
        let prev = specs.get(i - 1).map(|p| p.name.clone()).unwrap_or_default();
        if from != [prev.clone()] {
            return refuse(format!("layer {:?} takes {from:?}, not [{prev:?}]", s.name));
        }
    }
    Ok(())
}
