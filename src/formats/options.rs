//! Activation lists and options read from a safetensors file's `__metadata__`.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{Format, ImportOptions};
use crate::config::{Activation, Activations, Direction};
use crate::error::{Error, Result};

/// Builds per-direction activations from ONNX attributes.
///
/// `names` are in ONNX order (`f`, `g` per direction); two names apply to all `directions`,
/// otherwise there must be `2·directions`. `alpha` and `beta` are consumed in order by the
/// functions that take an α (HardSigmoid, LeakyRelu, ThresholdedRelu, ScaledTanh, Affine, Elu)
/// or a β (HardSigmoid, ScaledTanh, Affine); functions without a value get ONNX's default.
/// Values left over are an error. Empty `names` gives Sigmoid/Tanh.
pub fn resolve_activations(
    names: &[String],
    alpha: &[f32],
    beta: &[f32],
    directions: usize,
) -> Result<Vec<Activations>> {
    if names.is_empty() {
        if !alpha.is_empty() || !beta.is_empty() {
            return Err(Error::arg(
                "activation_alpha/activation_beta",
                "given without activations",
            ));
        }
        return Ok(vec![Activations::default()]);
    }
    if names.len() != 2 && names.len() != 2 * directions {
        return Err(Error::arg(
            "activations",
            format!(
                "{} names for {directions} direction(s); expected 2{}",
                names.len(),
                if directions == 2 { " or 4" } else { "" }
            ),
        ));
    }
    let (mut ai, mut bi) = (alpha.iter(), beta.iter());
    let mut parsed = Vec::with_capacity(names.len());
    for name in names {
        let (ta, tb) = Activation::from_onnx(name, None, None)?.takes_params();
        let a = if ta { ai.next().copied() } else { None };
        let b = if tb { bi.next().copied() } else { None };
        parsed.push(Activation::from_onnx(name, a, b)?);
    }
    if ai.next().is_some() || bi.next().is_some() {
        return Err(Error::arg(
            "activation_alpha/activation_beta",
            format!(
                "{} α and {} β values, more than the activations {:?} take",
                alpha.len(),
                beta.len(),
                names
            ),
        ));
    }
    Ok(parsed
        .chunks_exact(2)
        .map(|p| Activations { f: p[0], g: p[1] })
        .collect())
}

/// Maps a Keras activation name to `(ONNX name, α, β)`.
///
/// Keras 3's `hard_sigmoid` is `relu6(x + 3) / 6`, i.e. HardSigmoid with α = 1/6, β = 0.5;
/// `linear` is Affine(1, 0).
pub fn keras_activation(name: &str) -> Result<(&'static str, Option<f32>, Option<f32>)> {
    Ok(match name.to_ascii_lowercase().as_str() {
        "sigmoid" => ("Sigmoid", None, None),
        "tanh" => ("Tanh", None, None),
        "relu" => ("Relu", None, None),
        "hard_sigmoid" => ("HardSigmoid", Some(1.0 / 6.0), Some(0.5)),
        "linear" | "none" => ("Affine", Some(1.0), Some(0.0)),
        "elu" => ("Elu", Some(1.0), None),
        "softsign" => ("Softsign", None, None),
        "softplus" => ("Softplus", None, None),
        other => {
            return Err(Error::arg(
                "activation",
                format!("unsupported Keras activation {other:?}"),
            ));
        }
    })
}

/// Options read from a golden file's `__metadata__`, plus the sizes it records.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetadataOptions {
    /// `framework`, if recorded.
    pub format: Option<Format>,
    /// The import options the metadata implies.
    pub options: ImportOptions,
    /// `input_size`, if recorded.
    pub input_size: Option<usize>,
    /// `hidden_size`, if recorded.
    pub hidden_size: Option<usize>,
    /// PyTorch `num_layers`, if recorded.
    pub num_layers: Option<usize>,
    /// PyTorch `bias`, if recorded.
    pub bias: Option<bool>,
}

fn value(v: &str) -> Value {
    serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_string()))
}

fn bad(key: &str, v: &str, want: &str) -> Error {
    Error::Parse {
        what: format!("metadata {key}"),
        reason: format!("{v:?} is not {want}"),
    }
}

fn as_bool(key: &str, v: &str) -> Result<bool> {
    match value(v) {
        Value::Bool(b) => Ok(b),
        Value::Number(n) if n.as_i64() == Some(0) => Ok(false),
        Value::Number(n) if n.as_i64() == Some(1) => Ok(true),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(false),
        _ => Err(bad(key, v, "a boolean")),
    }
}

fn as_usize(key: &str, v: &str) -> Result<usize> {
    value(v)
        .as_u64()
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| bad(key, v, "a non-negative integer"))
}

fn as_str(v: &str) -> String {
    match value(v) {
        Value::String(s) => s,
        _ => v.to_string(),
    }
}

fn as_f32_list(key: &str, v: &str) -> Result<Vec<f32>> {
    match value(v) {
        Value::Array(a) => a
            .iter()
            .map(|x| x.as_f64().map(|f| f as f32))
            .collect::<Option<Vec<f32>>>()
            .ok_or_else(|| bad(key, v, "a list of numbers")),
        Value::Number(n) => n
            .as_f64()
            .map(|f| vec![f as f32])
            .ok_or_else(|| bad(key, v, "a list of numbers")),
        Value::Null => Ok(Vec::new()),
        _ => Err(bad(key, v, "a list of numbers")),
    }
}

fn as_str_list(key: &str, v: &str) -> Result<Vec<String>> {
    match value(v) {
        Value::Array(a) => a
            .iter()
            .map(|x| x.as_str().map(String::from))
            .collect::<Option<Vec<String>>>()
            .ok_or_else(|| bad(key, v, "a list of strings")),
        Value::String(s) => Ok(s
            .split(',')
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty())
            .collect()),
        Value::Null => Ok(Vec::new()),
        _ => Err(bad(key, v, "a list of strings")),
    }
}

/// Parses a direction word: `forward`, `reverse` or `bidirectional`.
pub(crate) fn parse_direction(v: &str) -> Result<Direction> {
    match v.to_ascii_lowercase().as_str() {
        "forward" => Ok(Direction::Forward),
        "reverse" => Ok(Direction::Reverse),
        "bidirectional" => Ok(Direction::Bidirectional),
        _ => Err(bad(
            "direction",
            v,
            "one of forward, reverse, bidirectional",
        )),
    }
}

/// Reads [`ImportOptions`] from a safetensors `__metadata__` map (values are JSON, or plain
/// words such as `framework=pytorch`).
///
/// Keys: `framework`, `input_size`, `hidden_size`; PyTorch `num_layers`, `bidirectional`,
/// `batch_first`, `bias`; Keras `reset_after`, `go_backwards`, `activation`,
/// `recurrent_activation`; ONNX `direction`, `linear_before_reset`, `activations`,
/// `activation_alpha`, `activation_beta`, `clip` (`"none"` when absent). Other keys are ignored.
pub fn options_from_metadata(meta: &BTreeMap<String, String>) -> Result<MetadataOptions> {
    let mut m = MetadataOptions::default();
    let o = &mut m.options;
    for (k, v) in meta {
        match k.as_str() {
            "framework" => m.format = Some(as_str(v).parse()?),
            "input_size" => m.input_size = Some(as_usize(k, v)?),
            "hidden_size" => m.hidden_size = Some(as_usize(k, v)?),
            "num_layers" => m.num_layers = Some(as_usize(k, v)?),
            "bias" => m.bias = Some(as_bool(k, v)?),
            "bidirectional" => {
                o.direction = Some(if as_bool(k, v)? {
                    Direction::Bidirectional
                } else {
                    Direction::Forward
                })
            }
            "batch_first" => o.batch_first = as_bool(k, v)?,
            "reset_after" => o.reset_after = Some(as_bool(k, v)?),
            "go_backwards" => o.go_backwards = as_bool(k, v)?,
            "direction" => o.direction = Some(parse_direction(&as_str(v))?),
            "linear_before_reset" => o.linear_before_reset = as_bool(k, v)?,
            "activations" => o.activations = as_str_list(k, v)?,
            "activation_alpha" => o.activation_alpha = as_f32_list(k, v)?,
            "activation_beta" => o.activation_beta = as_f32_list(k, v)?,
            "clip" => {
                o.clip = match value(v) {
                    Value::Null => None,
                    Value::String(s) if s.eq_ignore_ascii_case("none") || s.is_empty() => None,
                    Value::Number(n) => {
                        Some(n.as_f64().ok_or_else(|| bad(k, v, "a number"))? as f32)
                    }
                    _ => return Err(bad(k, v, "a number or \"none\"")),
                }
            }
            _ => {}
        }
    }
    let act = meta.get("activation").map(|v| as_str(v));
    let rec = meta.get("recurrent_activation").map(|v| as_str(v));
    if act.is_some() || rec.is_some() {
        let o = &mut m.options;
        o.activations.clear();
        o.activation_alpha.clear();
        o.activation_beta.clear();
        for name in [
            rec.as_deref().unwrap_or("sigmoid"),
            act.as_deref().unwrap_or("tanh"),
        ] {
            let (onnx, a, b) = keras_activation(name)?;
            o.activations.push(onnx.to_string());
            o.activation_alpha.extend(a);
            o.activation_beta.extend(b);
        }
    }
    Ok(m)
}
