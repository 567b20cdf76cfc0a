//! `.onnx` model files: the GRU node(s) of a graph, their attributes and initializers.
//!
//! A graph holds one chain of `GRU` nodes: the first node reads the model's input, each later one
//! reads the previous node's `Y` through the reshaping ops exporters put between stacked layers
//! (`Transpose`, `Reshape`, `Squeeze`, `Unsqueeze`, `Identity`). The chain becomes one multi-layer
//! [`Gru`]; ops after the last node (a classifier head) are ignored. Everything the nodes say is
//! taken from the file: `hidden_size`, `direction`, `linear_before_reset`, `activations`,
//! `activation_alpha`/`activation_beta`, `clip`, `layout`.
//!
//! Tensors are read from initializers or `Constant` nodes (through `Identity` and `Cast`), stored
//! as `raw_data`, typed fields (`float_data`, `double_data`, f16/bf16 bits in `int32_data`) or
//! external data files beside the model; float16, bfloat16, float32 and float64. `initial_h` may
//! be absent, a constant, zeros computed in the graph (`ConstantOfShape`, or `Expand` of a zero
//! constant, sliced or reshaped per layer), or a graph input; `sequence_lens` a constant or a graph
//! input.

use std::collections::HashMap;
use std::path::Path;

use prost::Message;

use super::onnx::cells_from_onnx;
pub(crate) use super::onnx_proto::{
    AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto, ValueInfoProto,
    tensor_shape_proto, type_proto,
};
// For the evaluator's tests, which build models.
#[cfg(test)]
pub(crate) use super::onnx_proto::{OperatorSetIdProto, TensorShapeProto, TypeProto};
use super::resolve_activations;
use crate::config::{Direction, GruConfig, Variant};
use crate::error::{Error, Result};
use crate::predict::onnx::tensor::{Tensor, decode};
use crate::weights::{CellWeights, Gru, GruWeights};

/// Where the model's initial state comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum InitialState {
    /// No `initial_h`, or zeros computed in the graph.
    Zeros,
    /// Fixed in the file, canonical `[L·D, B, H]` (layers without one are zeros).
    Fixed {
        /// The batch size `B` the constant implies.
        batch: usize,
        /// The values.
        h0: Vec<f32>,
    },
    /// A graph input, `[L·D, B, H]` (`[B, L·D, H]` for `layout = 1`): the caller supplies it.
    Input(String),
}

/// Where the per-row lengths come from.
#[derive(Debug, Clone, PartialEq)]
pub enum SequenceLens {
    /// No `sequence_lens`: every row runs all steps.
    None,
    /// Fixed in the file.
    Fixed(Vec<usize>),
    /// A graph input `[B]`: the caller supplies it.
    Input(String),
}

/// What a `.onnx` file says beyond the weights.
#[derive(Debug, Clone, PartialEq)]
pub struct OnnxGraph {
    /// The GRU nodes, in layer order (their names, or `#index` where unnamed).
    pub nodes: Vec<String>,
    /// The name of the first node's `X`.
    pub input: String,
    /// `initial_h`.
    pub initial_state: InitialState,
    /// `sequence_lens`.
    pub sequence_lens: SequenceLens,
    /// ONNX `layout`: 0 (`X` `[T, B, I]`) or 1 (`[B, T, I]`).
    pub layout: i64,
}

/// Whether `bytes` parse as an ONNX `ModelProto` with a graph.
pub fn is_onnx(bytes: &[u8]) -> bool {
    ModelProto::decode(bytes).is_ok_and(|m| m.graph.is_some_and(|g| !g.node.is_empty()))
}

/// A value traced back through the graph.
enum Source<'g> {
    Tensor(&'g TensorProto),
    GraphInput(String),
    GruY(usize),
    Zeros,
    Unfollowable {
        node: String,
        op: String,
        inputs: &'g [String],
    },
    Missing,
}

struct Graph<'g> {
    name: String,
    dir: Option<&'g Path>,
    initializers: HashMap<&'g str, &'g TensorProto>,
    producers: HashMap<&'g str, &'g NodeProto>,
    inputs: Vec<&'g str>,
    grus: Vec<&'g NodeProto>,
    /// Initializers and every value the constant folder computes from them.
    folded: HashMap<String, Tensor>,
}

fn node_label(n: &NodeProto, index: usize) -> String {
    match n.name.as_deref() {
        Some(s) if !s.is_empty() => s.to_string(),
        _ => format!("#{index}"),
    }
}

fn is_gru(n: &NodeProto) -> bool {
    n.op_type.as_deref() == Some("GRU")
        && matches!(n.domain.as_deref(), None | Some("" | "ai.onnx"))
}

impl<'g> Graph<'g> {
    fn perr(&self, reason: impl Into<String>) -> Error {
        Error::Parse {
            what: self.name.clone(),
            reason: reason.into(),
        }
    }

    /// Follows `name` back through ops that keep a tensor's values (`pass`), to where it comes
    /// from.
    fn trace(&self, name: &str, pass: &[&str]) -> Source<'g> {
        let mut name = name.to_string();
        // A cycle cannot be followed for longer than there are nodes.
        for _ in 0..=self.producers.len() {
            if let Some(t) = self.initializers.get(name.as_str()) {
                return Source::Tensor(t);
            }
            let Some(node) = self.producers.get(name.as_str()) else {
                if self.inputs.contains(&name.as_str()) {
                    return Source::GraphInput(name);
                }
                return Source::Missing;
            };
            let op = node.op_type.as_deref().unwrap_or("");
            if is_gru(node) {
                if node.output.first().map(String::as_str) == Some(name.as_str()) {
                    let i = self
                        .grus
                        .iter()
                        .position(|g| std::ptr::eq(*g, *node))
                        .unwrap_or(usize::MAX);
                    return Source::GruY(i);
                }
                return Source::Unfollowable {
                    node: node.name.clone().unwrap_or_default(),
                    op: "GRU (Y_h)".into(),
                    inputs: &[],
                };
            }
            match op {
                "Constant" => {
                    return match node
                        .attribute
                        .iter()
                        .find(|a| a.name.as_deref() == Some("value"))
                        .and_then(|a| a.t.as_ref())
                    {
                        Some(t) => Source::Tensor(t),
                        None => Source::Unfollowable {
                            node: node.name.clone().unwrap_or_default(),
                            op: "Constant without a tensor value".into(),
                            inputs: &[],
                        },
                    };
                }
                "ConstantOfShape" if pass.contains(&"ConstantOfShape") => {
                    let zero = node
                        .attribute
                        .iter()
                        .find(|a| a.name.as_deref() == Some("value"))
                        .and_then(|a| a.t.as_ref())
                        .map_or(Some(true), |t| {
                            self.values(t, "value")
                                .ok()
                                .map(|v| v.iter().all(|&x| x == 0.0))
                        });
                    if zero == Some(true) {
                        return Source::Zeros;
                    }
                }
                _ if pass.contains(&op) => {
                    if let Some(first) = node.input.first() {
                        name = first.clone();
                        continue;
                    }
                }
                _ => {}
            }
            return Source::Unfollowable {
                node: node.name.clone().unwrap_or_default(),
                op: op.to_string(),
                inputs: &node.input,
            };
        }
        Source::Missing
    }

    /// The elements of `t` as f32 (floats of any width; integers converted).
    fn values(&self, t: &TensorProto, what: &str) -> Result<Vec<f32>> {
        Ok(decode(t, self.dir, &self.name, what)?.to_f32_vec())
    }

    /// A weight tensor: an initializer or constant, through `Identity` and `Cast`.
    fn weight(
        &self,
        node: &NodeProto,
        label: &str,
        slot: usize,
        what: &str,
    ) -> Result<Option<(Vec<usize>, Vec<f32>)>> {
        let Some(name) = node.input.get(slot).filter(|s| !s.is_empty()) else {
            return Ok(None);
        };
        if let Some(t) = self.folded.get(name.as_str()) {
            return Ok(Some((t.shape.clone(), t.to_f32_vec())));
        }
        match self.trace(name, &["Identity", "Cast"]) {
            Source::Tensor(t) => {
                let shape = t.dims.iter().map(|&d| d.max(0) as usize).collect();
                Ok(Some((shape, self.values(t, what)?)))
            }
            Source::GraphInput(i) => Err(self.perr(format!(
                "GRU node {label}: {what} is the graph input {i:?}; only weights stored in the file are supported"
            ))),
            Source::Unfollowable { node, op, .. } => Err(self.perr(format!(
                "GRU node {label}: {what} is computed by {op} node {node:?}, which cannot be followed"
            ))),
            _ => Err(self.perr(format!("GRU node {label}: {what} ({name:?}) is not in the file"))),
        }
    }
}

fn attr<'n>(n: &'n NodeProto, name: &str) -> Option<&'n AttributeProto> {
    n.attribute.iter().find(|a| a.name.as_deref() == Some(name))
}

/// The attributes of one GRU node that the model must share across nodes.
#[derive(Debug, Clone, PartialEq)]
struct Attrs {
    hidden: usize,
    direction: Direction,
    lbr: bool,
    activations: Vec<String>,
    alpha: Vec<f32>,
    beta: Vec<f32>,
    clip: Option<f32>,
    layout: i64,
}

fn attrs(model: &str, n: &NodeProto, label: &str) -> Result<Attrs> {
    let perr = |reason: String| Error::Parse {
        what: model.to_string(),
        reason,
    };
    let s = |a: &str| {
        attr(n, a)
            .and_then(|a| a.s.as_ref())
            .map(|b| String::from_utf8_lossy(b).into_owned())
    };
    let direction = match s("direction").as_deref().unwrap_or("forward") {
        "forward" => Direction::Forward,
        "reverse" => Direction::Reverse,
        "bidirectional" => Direction::Bidirectional,
        other => return Err(perr(format!("GRU node {label}: direction {other:?}"))),
    };
    let hidden = attr(n, "hidden_size")
        .and_then(|a| a.i)
        .ok_or_else(|| perr(format!("GRU node {label} has no hidden_size")))?;
    let hidden = usize::try_from(hidden)
        .ok()
        .filter(|&h| h > 0)
        .ok_or_else(|| perr(format!("GRU node {label}: hidden_size {hidden}")))?;
    let layout = attr(n, "layout").and_then(|a| a.i).unwrap_or(0);
    if !(layout == 0 || layout == 1) {
        return Err(perr(format!("GRU node {label}: layout {layout}")));
    }
    Ok(Attrs {
        hidden,
        direction,
        lbr: attr(n, "linear_before_reset")
            .and_then(|a| a.i)
            .unwrap_or(0)
            != 0,
        activations: attr(n, "activations")
            .map(|a| {
                a.strings
                    .iter()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .collect()
            })
            .unwrap_or_default(),
        alpha: attr(n, "activation_alpha")
            .map(|a| a.floats.clone())
            .unwrap_or_default(),
        beta: attr(n, "activation_beta")
            .map(|a| a.floats.clone())
            .unwrap_or_default(),
        clip: attr(n, "clip").and_then(|a| a.f),
        layout,
    })
}

/// Reads the GRU chain of an ONNX model. `dir` is the model's folder (for external data), `name`
/// names the file in errors, `node` picks a chain by the name of one of its GRU nodes.
pub fn read(
    bytes: &[u8],
    dir: Option<&Path>,
    name: &str,
    node: Option<&str>,
) -> Result<(Gru, OnnxGraph)> {
    let model = ModelProto::decode(bytes).map_err(|e| Error::Parse {
        what: name.to_string(),
        reason: format!("not an ONNX model: {e}"),
    })?;
    let graph = model.graph.as_ref().ok_or_else(|| Error::Parse {
        what: name.to_string(),
        reason: "ONNX model without a graph".into(),
    })?;
    let folded = crate::predict::onnx::fold(
        graph,
        crate::predict::onnx::opset_of(&model),
        dir,
        name,
        false,
    )?
    .consts;
    let mut g = Graph {
        folded,
        name: name.to_string(),
        dir,
        initializers: graph
            .initializer
            .iter()
            .filter_map(|t| t.name.as_deref().map(|n| (n, t)))
            .collect(),
        producers: HashMap::new(),
        inputs: graph
            .input
            .iter()
            .filter_map(|i| i.name.as_deref())
            .collect(),
        grus: graph.node.iter().filter(|n| is_gru(n)).collect(),
    };
    for n in &graph.node {
        for o in &n.output {
            if !o.is_empty() {
                g.producers.insert(o.as_str(), n);
            }
        }
    }
    if g.grus.is_empty() {
        return Err(g.perr("the graph has no GRU node"));
    }
    let labels: Vec<String> = g
        .grus
        .iter()
        .enumerate()
        .map(|(i, n)| node_label(n, i))
        .collect();
    // Each node's predecessor in a stack: the GRU whose Y its X is reshaped from.
    let pass = ["Transpose", "Reshape", "Squeeze", "Unsqueeze", "Identity"];
    let mut prev = vec![None; g.grus.len()];
    for (i, n) in g.grus.iter().enumerate() {
        let x = n
            .input
            .first()
            .ok_or_else(|| g.perr(format!("GRU node {} has no X", labels[i])))?;
        match g.trace(x, &pass) {
            Source::GruY(j) if j < g.grus.len() => prev[i] = Some(j),
            // An op that cannot be followed, between this node and another GRU's Y.
            Source::Unfollowable { node, op, inputs }
                if inputs
                    .iter()
                    .any(|i| matches!(g.trace(i, &pass), Source::GruY(_))) =>
            {
                return Err(g.perr(format!(
                    "GRU node {}: its input comes from {op} node {node:?}, which cannot be followed",
                    labels[i]
                )));
            }
            _ => {}
        }
    }
    let heads: Vec<usize> = (0..g.grus.len()).filter(|&i| prev[i].is_none()).collect();
    let chain_of = |head: usize| -> Result<Vec<usize>> {
        let mut chain = vec![head];
        loop {
            let last = *chain.last().unwrap_or(&head);
            let next: Vec<usize> = (0..g.grus.len())
                .filter(|&i| prev[i] == Some(last))
                .collect();
            match next.as_slice() {
                [] => return Ok(chain),
                [n] => chain.push(*n),
                _ => {
                    return Err(g.perr(format!(
                        "GRU node {} feeds several GRU nodes ({}); only a single stack is supported",
                        labels[last],
                        next.iter().map(|&i| labels[i].as_str()).collect::<Vec<_>>().join(", ")
                    )));
                }
            }
        }
    };
    let chain = match node {
        Some(want) => {
            let i = labels.iter().position(|l| l == want).ok_or_else(|| {
                g.perr(format!(
                    "no GRU node named {want:?} (GRU nodes: {})",
                    labels.join(", ")
                ))
            })?;
            let head = heads
                .iter()
                .copied()
                .find(|&h| chain_of(h).is_ok_and(|c| c.contains(&i)))
                .ok_or_else(|| g.perr(format!("GRU node {want:?} is in no chain")))?;
            chain_of(head)?
        }
        None => match heads.as_slice() {
            [h] => chain_of(*h)?,
            _ => {
                return Err(g.perr(format!(
                    "the graph has {} separate GRU chains (starting at {}); choose one by its first node's name (`ImportOptions::node`)",
                    heads.len(),
                    heads.iter().map(|&i| labels[i].as_str()).collect::<Vec<_>>().join(", ")
                )));
            }
        },
    };

    // Attributes: one set for the whole stack.
    let first = attrs(&g.name, g.grus[chain[0]], &labels[chain[0]])?;
    for &i in &chain[1..] {
        let a = attrs(&g.name, g.grus[i], &labels[i])?;
        if a != first {
            return Err(g.perr(format!(
                "GRU nodes {} and {} differ in their attributes ({first:?} vs {a:?}); a stack must share them",
                labels[chain[0]], labels[i]
            )));
        }
    }
    let (h, d) = (first.hidden, first.direction.count());

    let mut layers = Vec::with_capacity(chain.len());
    let mut input_size = 0;
    let mut h0_parts: Vec<Option<Vec<f32>>> = Vec::new();
    let mut h0_batch: Option<usize> = None;
    let mut h0_input: Option<String> = None;
    let mut lens = SequenceLens::None;
    for (l, &i) in chain.iter().enumerate() {
        let n = g.grus[i];
        let label = &labels[i];
        let (ws, w) = g
            .weight(n, label, 1, "W")?
            .ok_or_else(|| g.perr(format!("GRU node {label} has no W")))?;
        let (rs, r) = g
            .weight(n, label, 2, "R")?
            .ok_or_else(|| g.perr(format!("GRU node {label} has no R")))?;
        let b = g.weight(n, label, 3, "B")?;
        let (this_input, cells) = cells_checked(label, name, d, h, (ws, w), (rs, r), b)?;
        if l == 0 {
            input_size = this_input;
        }
        layers.push(cells);

        // sequence_lens: one source for the whole stack.
        let this_lens = match n.input.get(4).filter(|s| !s.is_empty()) {
            None => SequenceLens::None,
            Some(s) if g.folded.contains_key(s.as_str()) => SequenceLens::Fixed(
                g.folded
                    .get(s.as_str())
                    .map(Tensor::to_f32_vec)
                    .unwrap_or_default()
                    .iter()
                    .map(|&v| if v >= 0.0 { v as usize } else { usize::MAX })
                    .collect(),
            ),
            Some(s) => match g.trace(s, &["Identity", "Cast"]) {
                Source::Tensor(t) => SequenceLens::Fixed(
                    g.values(t, "sequence_lens")?
                        .iter()
                        .map(|&v| if v >= 0.0 { v as usize } else { usize::MAX })
                        .collect(),
                ),
                Source::GraphInput(name) => SequenceLens::Input(name),
                _ => {
                    return Err(g.perr(format!(
                        "GRU node {label}: sequence_lens cannot be followed to a constant or a graph input"
                    )));
                }
            },
        };
        if l == 0 {
            lens = this_lens;
        } else if this_lens != lens {
            return Err(g.perr(format!(
                "GRU node {label} takes other sequence_lens than the first node"
            )));
        }

        // initial_h.
        let bad = |what: &str, want: String, got: &[usize]| {
            Error::shape(
                format!("{what} of GRU node {label} in {name}"),
                want,
                crate::formats::shape_str(got),
            )
        };
        // A constant initial_h: zeros, or one given as is, [D, B, H] ([B, D, H] for layout 1).
        let mut h0_const = |v: Vec<f32>,
                            dims: Vec<usize>,
                            direct: bool|
         -> Result<Option<Vec<f32>>> {
            if v.iter().all(|&x| x == 0.0) {
                return Ok(None);
            }
            if !direct {
                return Err(g.perr(format!(
                    "GRU node {label}: initial_h is computed from a non-zero constant; only zeros or a constant initial_h can be read"
                )));
            }
            let (batch, canon) = match (first.layout, dims.as_slice()) {
                (0, [dd, bb, hh]) if *dd == d && *hh == h => (*bb, v),
                (1, [bb, dd, hh]) if *dd == d && *hh == h => {
                    // [B, D, H] → [D, B, H].
                    let mut c = vec![0.0; v.len()];
                    for bi in 0..*bb {
                        for di in 0..d {
                            let src = (bi * d + di) * h;
                            let dst = (di * bb + bi) * h;
                            c[dst..dst + h].copy_from_slice(&v[src..src + h]);
                        }
                    }
                    (*bb, c)
                }
                _ => {
                    return Err(bad(
                        "initial_h",
                        if first.layout == 0 {
                            format!("[{d}, B, {h}]")
                        } else {
                            format!("[B, {d}, {h}]")
                        },
                        &dims,
                    ));
                }
            };
            if h0_batch.is_some_and(|b0| b0 != batch) {
                return Err(g.perr(format!(
                    "GRU node {label}: initial_h for another batch size"
                )));
            }
            h0_batch = Some(batch);
            Ok(Some(canon))
        };
        let part = match n.input.get(5).filter(|s| !s.is_empty()) {
            None => None,
            // A constant after folding: an initializer, or computed from constants alone.
            Some(s) if g.folded.contains_key(s.as_str()) => {
                let t = g.folded.get(s.as_str());
                h0_const(
                    t.map(Tensor::to_f32_vec).unwrap_or_default(),
                    t.map(|t| t.shape.clone()).unwrap_or_default(),
                    true,
                )?
            }
            Some(s) => match g.trace(
                s,
                &[
                    "Identity",
                    "Cast",
                    "Expand",
                    "Slice",
                    "Reshape",
                    "Squeeze",
                    "Unsqueeze",
                    "Gather",
                    "Split",
                    "Transpose",
                    "ConstantOfShape",
                ],
            ) {
                Source::Zeros => None,
                Source::Tensor(t) => {
                    let v = g.values(t, "initial_h")?;
                    let direct = matches!(g.trace(s, &["Identity", "Cast"]), Source::Tensor(_));
                    let dims: Vec<usize> = t.dims.iter().map(|&x| x.max(0) as usize).collect();
                    h0_const(v, dims, direct)?
                }
                Source::GraphInput(i) => {
                    if h0_input.as_ref().is_some_and(|p| *p != i) {
                        return Err(g.perr(format!(
                            "GRU nodes take initial_h from different graph inputs ({} and {i})",
                            h0_input.unwrap_or_default()
                        )));
                    }
                    h0_input = Some(i);
                    None
                }
                Source::Unfollowable { node, op, .. } => {
                    return Err(g.perr(format!(
                        "GRU node {label}: initial_h comes from {op} node {node:?}, which cannot be followed"
                    )));
                }
                _ => return Err(g.perr(format!("GRU node {label}: initial_h is not in the file"))),
            },
        };
        h0_parts.push(part);
    }
    let initial_state = match (h0_input, h0_batch) {
        (Some(_), Some(_)) => {
            return Err(
                g.perr("initial_h is a graph input for some GRU nodes and a constant for others")
            );
        }
        (Some(i), None) => InitialState::Input(i),
        (None, Some(batch)) => {
            let per = d * batch * h;
            let h0 = h0_parts
                .into_iter()
                .flat_map(|p| p.unwrap_or_else(|| vec![0.0; per]))
                .collect();
            InitialState::Fixed { batch, h0 }
        }
        (None, None) => InitialState::Zeros,
    };

    let config = first.config(input_size, chain.len())?;
    let gru = Gru::new(config, GruWeights { layers })?;
    let info = OnnxGraph {
        nodes: chain.iter().map(|&i| labels[i].clone()).collect(),
        input: g.grus[chain[0]].input.first().cloned().unwrap_or_default(),
        initial_state,
        sequence_lens: lens,
        layout: first.layout,
    };
    Ok((gru, info))
}

impl Attrs {
    /// The canonical config of a stack of `layers` nodes with these attributes.
    fn config(&self, input_size: usize, layers: usize) -> Result<GruConfig> {
        let mut config = GruConfig::new(input_size, self.hidden)
            .with_variant(if self.lbr {
                Variant::ResetAfter
            } else {
                Variant::ResetBefore
            })
            .with_layers(layers)
            .with_direction(self.direction);
        config.activations = resolve_activations(
            &self.activations,
            &self.alpha,
            &self.beta,
            self.direction.count(),
        )?;
        config.clip = self.clip;
        config.batch_first = self.layout == 1;
        Ok(config)
    }
}

/// A weight tensor's shape and values.
pub(crate) type Weight = (Vec<usize>, Vec<f32>);

/// Checks one GRU node's `W` `[D, 3H, I]`, `R` `[D, 3H, H]` and `B` `[D, 6H]` and converts them to
/// canonical cells; returns `I` too.
fn cells_checked(
    label: &str,
    name: &str,
    d: usize,
    h: usize,
    (ws, w): Weight,
    (rs, r): Weight,
    b: Option<Weight>,
) -> Result<(usize, Vec<CellWeights>)> {
    let bad = |what: &str, want: String, got: &[usize]| {
        Error::shape(
            format!("{what} of GRU node {label} in {name}"),
            want,
            crate::formats::shape_str(got),
        )
    };
    if ws.len() != 3 || ws[0] != d || Some(ws[1]) != h.checked_mul(3) {
        return Err(bad("W", format!("[{d}, {}, I]", 3 * h), &ws));
    }
    if rs != [d, 3 * h, h] {
        return Err(bad("R", format!("[{d}, {}, {h}]", 3 * h), &rs));
    }
    if let Some((bs, _)) = &b
        && bs != &[d, 6 * h]
    {
        return Err(bad("B", format!("[{d}, {}]", 6 * h), bs));
    }
    let cells = cells_from_onnx(&w, &r, b.as_ref().map(|(_, v)| v.as_slice()), d, h, ws[2]);
    Ok((ws[2], cells))
}

/// The one-layer canonical model of GRU node `n` (`label` names it, `name` the file) from its
/// constant `W`, `R` and optional `B`.
pub(crate) fn gru_from_weights(
    n: &NodeProto,
    label: &str,
    name: &str,
    w: Weight,
    r: Weight,
    b: Option<Weight>,
) -> Result<Gru> {
    let a = attrs(name, n, label)?;
    let (input, cells) = cells_checked(label, name, a.direction.count(), a.hidden, w, r, b)?;
    Gru::new(
        a.config(input, 1)?,
        GruWeights {
            layers: vec![cells],
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::SafetensorsFile;
    use crate::io::{Batch, SeqInput, Steps};

    fn dir() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/models")
    }

    /// The dynamo exporter's files: `R` a `Concat` of initializers (folded), `initial_h` zeros
    /// expanded from `Shape(x)` and sliced.
    #[test]
    fn dynamo_and_legacy_exports_are_read() {
        // Both exporters transpose a batch-first x to [T, B, I] themselves: layout 0 every time.
        for (name, batch_first, dirs) in [
            ("pub_o_dynamo_gru_only", false, 1),
            ("pub_o_dynamo_bidir_last", false, 2),
            ("pub_o_legacy_softmax", false, 1),
            ("pub_o_legacy_meanpool", false, 2),
        ] {
            let bytes = std::fs::read(dir().join(format!("{name}.onnx"))).unwrap();
            let (gru, info) =
                read(&bytes, Some(&dir()), name, None).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(info.initial_state, InitialState::Zeros, "{name}");
            assert_eq!(info.sequence_lens, SequenceLens::None, "{name}");
            assert_eq!(gru.config.batch_first, batch_first, "{name}");
            assert_eq!(gru.config.num_directions(), dirs, "{name}");
            assert_eq!(gru.config.variant, Variant::ResetAfter, "{name}");
        }
        // The GRU-only graph's first output is the GRU's [T, B, H] output itself.
        let name = "pub_o_dynamo_gru_only";
        let bytes = std::fs::read(dir().join(format!("{name}.onnx"))).unwrap();
        let (gru, _) = read(&bytes, Some(&dir()), name, None).unwrap();
        let st = std::fs::read(dir().join(format!("{name}.case.safetensors"))).unwrap();
        let st = SafetensorsFile::from_bytes(st, name).unwrap();
        let (x, y) = (
            st.get_f32("x").unwrap().unwrap(),
            st.get_f32("y").unwrap().unwrap(),
        );
        let out = crate::reference::forward(
            &gru,
            &SeqInput::new(&x.data, Steps(x.shape[0]), Batch(x.shape[1])),
        )
        .unwrap();
        let e = crate::max_abs_diff(&out.output, &y.data);
        assert!(e <= 1e-5, "{e:e}");
    }
}
