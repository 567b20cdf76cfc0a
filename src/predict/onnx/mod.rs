//! Whole ONNX graphs: the `GRU` nodes and the ops exporters write around them (shape arithmetic
//! for `initial_h`, the reshapes of `Y`, a `Gemm`/`MatMul` head, `Softmax`, mean pooling, …).
//!
//! [`OnnxProgram::from_bytes`] parses a model, checks that every node's op is one of
//! [`SUPPORTED_OPS`] and folds every node whose inputs are all constant (initializers, `Constant`
//! outputs, and what they compute) once. Each `GRU` node becomes a canonical [`crate::Gru`]
//! (its `W`, `R`, `B` must be constant after folding). [`OnnxProgram::run`] evaluates the rest in
//! graph order with f32 tensors (sums of `MatMul`, `Gemm` and `ReduceMean` in f64) and i64 shape
//! tensors, handing each `GRU` node to the caller's backend.

use std::collections::HashMap;
use std::path::Path;

use prost::Message;

use super::{Array, FeedValue, GruFuture, RunGru};
use crate::error::{Error, Result};
use crate::formats::onnx_model::{
    GraphProto, ModelProto, NodeProto, ValueInfoProto, gru_from_weights, tensor_shape_proto,
    type_proto,
};
use crate::io::{Batch, GruOutput, SeqInput, Steps};
use crate::weights::Gru;

mod ops;
pub(crate) mod tensor;

use tensor::{Data, Tensor, decode, numel};

/// The op types [`OnnxProgram`] runs (default ONNX domain).
pub const SUPPORTED_OPS: &[&str] = ops::SUPPORTED;

/// One dimension of a graph input or output, as the graph declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dim {
    /// A fixed size.
    Fixed(usize),
    /// A symbolic size (`batch`, `time`); every dimension with the same name must agree.
    Named(String),
    /// No size given.
    Unknown,
}

/// A graph input or output: its name and declared dimensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueInfo {
    /// The value's name in the graph.
    pub name: String,
    /// Its dimensions, outermost first (empty where the graph declares no shape).
    pub dims: Vec<Dim>,
}

/// What a graph value's declaration says beyond [`ValueInfo`].
#[derive(Debug, Clone)]
struct Declared {
    /// Whether the graph gives a shape at all (else any rank is accepted).
    ranked: bool,
    /// The ONNX element type (0: not given).
    elem: i32,
}

/// A node left to run after folding.
#[derive(Debug, Clone)]
struct Node {
    proto: NodeProto,
    label: String,
    /// For a `GRU` node: its index in [`OnnxProgram::grus`].
    gru: Option<usize>,
}

/// A parsed, checked and constant-folded ONNX graph, ready to [`run`](OnnxProgram::run).
#[derive(Debug, Clone)]
pub struct OnnxProgram {
    name: String,
    opset: i64,
    inputs: Vec<ValueInfo>,
    input_decl: Vec<Declared>,
    outputs: Vec<ValueInfo>,
    consts: HashMap<String, Tensor>,
    nodes: Vec<Node>,
    grus: Vec<Gru>,
    gru_names: Vec<String>,
}

/// A node's name, or `#index` where it has none.
pub(crate) fn node_label(n: &NodeProto, index: usize) -> String {
    match n.name.as_deref() {
        Some(s) if !s.is_empty() => s.to_string(),
        _ => format!("#{index}"),
    }
}

fn is_gru(n: &NodeProto) -> bool {
    n.op_type.as_deref() == Some("GRU") && ops::default_domain(n)
}

/// The default-domain opset the model imports (the latest this evaluator knows, 21, if none).
pub(crate) fn opset_of(model: &ModelProto) -> i64 {
    model
        .opset_import
        .iter()
        .find(|o| matches!(o.domain.as_deref(), None | Some("" | "ai.onnx")))
        .and_then(|o| o.version)
        .unwrap_or(21)
}

/// The outcome of constant folding.
pub(crate) struct Folded {
    /// Initializers and every value computed from constants alone.
    pub consts: HashMap<String, Tensor>,
    /// The indices (in graph order) of the nodes left to run.
    pub runtime: Vec<usize>,
}

/// Folds the constant part of `graph`. `strict`: every op must be supported, every node's inputs
/// must be produced before it, and a failing constant node is an error; otherwise (for the GRU
/// importer, which ignores what it does not need) such nodes are simply left unfolded.
pub(crate) fn fold(
    graph: &GraphProto,
    opset: i64,
    dir: Option<&Path>,
    model: &str,
    strict: bool,
) -> Result<Folded> {
    let perr = |reason: String| Error::Parse {
        what: model.to_string(),
        reason,
    };
    if strict {
        for (i, n) in graph.node.iter().enumerate() {
            ops::check_supported(n, &node_label(n, i))?;
        }
    }
    let mut consts = HashMap::new();
    for t in &graph.initializer {
        let name = t.name.clone().unwrap_or_default();
        match decode(t, dir, model, &format!("initializer {name:?}")) {
            Ok(v) => {
                consts.insert(name, v);
            }
            Err(e) if strict => return Err(e),
            Err(_) => {}
        }
    }
    let mut available: std::collections::HashSet<String> = graph
        .input
        .iter()
        .filter_map(|v| v.name.clone())
        .chain(graph.initializer.iter().filter_map(|t| t.name.clone()))
        .collect();
    let mut runtime = Vec::new();
    for (i, n) in graph.node.iter().enumerate() {
        let label = node_label(n, i);
        if strict {
            if let Some(missing) = n
                .input
                .iter()
                .find(|s| !s.is_empty() && !available.contains(s.as_str()))
            {
                return Err(perr(format!(
                    "node {label:?} reads {missing:?}, which no graph input, initializer or earlier node gives (a missing producer, a cycle, or nodes out of order)"
                )));
            }
            for o in n.output.iter().filter(|o| !o.is_empty()) {
                if !available.insert(o.clone()) {
                    return Err(perr(format!(
                        "node {label:?} writes {o:?}, which is already defined"
                    )));
                }
            }
        }
        let foldable = !is_gru(n)
            && ops::check_supported(n, &label).is_ok()
            && n.input
                .iter()
                .all(|s| s.is_empty() || consts.contains_key(s.as_str()));
        if !foldable {
            runtime.push(i);
            continue;
        }
        let ctx = ops::Ctx {
            node: n,
            label: &label,
            opset,
            dir,
            model,
        };
        let ins: Vec<Option<&Tensor>> = n
            .input
            .iter()
            .map(|s| {
                if s.is_empty() {
                    None
                } else {
                    consts.get(s.as_str())
                }
            })
            .collect();
        match ops::eval(&ctx, &ins).and_then(|outs| bind(n, &label, outs)) {
            Ok(outs) => consts.extend(outs),
            Err(e) if strict => return Err(e),
            Err(_) => runtime.push(i),
        }
    }
    Ok(Folded { consts, runtime })
}

/// Pairs a node's results with its output names.
fn bind(n: &NodeProto, label: &str, outs: Vec<Tensor>) -> Result<Vec<(String, Tensor)>> {
    let wanted = n.output.iter().filter(|o| !o.is_empty()).count();
    if n.output.len() > outs.len() && wanted > 0 {
        let last = n.output.iter().rposition(|o| !o.is_empty()).unwrap_or(0);
        if last >= outs.len() {
            return Err(Error::Unsupported(format!(
                "node {label:?}: output {last} is not computed (the op gives {})",
                outs.len()
            )));
        }
    }
    Ok(n.output
        .iter()
        .zip(outs)
        .filter(|(o, _)| !o.is_empty())
        .map(|(o, t)| (o.clone(), t))
        .collect())
}

fn value_info(v: &ValueInfoProto) -> (ValueInfo, Declared) {
    let name = v.name.clone().unwrap_or_default();
    let tensor = match v.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(type_proto::Value::TensorType(t)) => Some(t),
        _ => None,
    };
    let elem = tensor.and_then(|t| t.elem_type).unwrap_or(0);
    let Some(shape) = tensor.and_then(|t| t.shape.as_ref()) else {
        return (
            ValueInfo { name, dims: vec![] },
            Declared {
                ranked: false,
                elem,
            },
        );
    };
    use tensor_shape_proto::dimension::Value;
    let dims = shape
        .dim
        .iter()
        .map(|d| match &d.value {
            Some(Value::DimValue(v)) if *v >= 0 => Dim::Fixed(*v as usize),
            Some(Value::DimParam(s)) if !s.is_empty() => Dim::Named(s.clone()),
            _ => Dim::Unknown,
        })
        .collect();
    (ValueInfo { name, dims }, Declared { ranked: true, elem })
}

fn dims_str(d: &[Dim]) -> String {
    let parts: Vec<String> = d
        .iter()
        .map(|d| match d {
            Dim::Fixed(v) => v.to_string(),
            Dim::Named(s) => s.clone(),
            Dim::Unknown => "?".into(),
        })
        .collect();
    format!("[{}]", parts.join(", "))
}

impl OnnxProgram {
    /// Parses an ONNX model, checks that every op is supported (else [`Error::Unsupported`]
    /// naming the node and its op type), folds its constants and builds its GRU nodes. `dir` is
    /// the model's folder (external data is read relative to it), `name` names it in errors.
    pub fn from_bytes(bytes: &[u8], dir: Option<&Path>, name: &str) -> Result<Self> {
        let perr = |reason: String| Error::Parse {
            what: name.to_string(),
            reason,
        };
        let model =
            ModelProto::decode(bytes).map_err(|e| perr(format!("not an ONNX model: {e}")))?;
        let graph = model
            .graph
            .as_ref()
            .ok_or_else(|| perr("ONNX model without a graph".into()))?;
        if !model
            .opset_import
            .iter()
            .any(|o| matches!(o.domain.as_deref(), None | Some("" | "ai.onnx")))
        {
            return Err(perr(
                "the model imports no opset of the default ONNX domain".into(),
            ));
        }
        let opset = opset_of(&model);
        let folded = fold(graph, opset, dir, name, true)?;
        let init: std::collections::HashSet<&str> = graph
            .initializer
            .iter()
            .filter_map(|t| t.name.as_deref())
            .collect();
        let (inputs, input_decl): (Vec<_>, Vec<_>) = graph
            .input
            .iter()
            .filter(|v| !init.contains(v.name.as_deref().unwrap_or("")))
            .map(value_info)
            .unzip();
        let outputs: Vec<ValueInfo> = graph.output.iter().map(|v| value_info(v).0).collect();
        let mut nodes = Vec::with_capacity(folded.runtime.len());
        let mut grus = Vec::new();
        let mut gru_names = Vec::new();
        for &i in &folded.runtime {
            let Some(n) = graph.node.get(i) else { continue };
            let label = node_label(n, i);
            let gru = if is_gru(n) {
                let weight = |slot: usize, what: &str| -> Result<Option<(Vec<usize>, Vec<f32>)>> {
                    let Some(s) = n.input.get(slot).filter(|s| !s.is_empty()) else {
                        return Ok(None);
                    };
                    let t = folded.consts.get(s.as_str()).ok_or_else(|| {
                        Error::Unsupported(format!(
                            "GRU node {label:?}: {what} ({s:?}) is computed at run time; only constant weights are supported"
                        ))
                    })?;
                    let v = t.as_f32(&format!("{what} of GRU node {label:?}"))?;
                    Ok(Some((t.shape.clone(), v.to_vec())))
                };
                let w =
                    weight(1, "W")?.ok_or_else(|| perr(format!("GRU node {label:?} has no W")))?;
                let r =
                    weight(2, "R")?.ok_or_else(|| perr(format!("GRU node {label:?} has no R")))?;
                let b = weight(3, "B")?;
                grus.push(gru_from_weights(n, &label, name, w, r, b)?);
                gru_names.push(label.clone());
                Some(grus.len() - 1)
            } else {
                None
            };
            nodes.push(Node {
                proto: n.clone(),
                label,
                gru,
            });
        }
        Ok(OnnxProgram {
            name: name.to_string(),
            opset,
            inputs,
            input_decl,
            outputs,
            consts: folded.consts,
            nodes,
            grus,
            gru_names,
        })
    }

    /// The graph's inputs (those that are not initializers), in order.
    pub fn inputs(&self) -> &[ValueInfo] {
        &self.inputs
    }

    /// The graph's outputs, in order.
    pub fn outputs(&self) -> &[ValueInfo] {
        &self.outputs
    }

    /// The GRU nodes' canonical models, in graph order: one layer each, with `batch_first`
    /// (`layout = 1`), direction, variant (`linear_before_reset`), activations and clip from the
    /// node.
    pub fn grus(&self) -> &[Gru] {
        &self.grus
    }

    /// The GRU nodes' names (`#index` where unnamed), in the order of [`grus`](Self::grus).
    pub fn gru_node_names(&self) -> &[String] {
        &self.gru_names
    }

    /// Checks `feeds` against the declared inputs and turns them into tensors.
    fn feed_tensors(&self, feeds: &[(String, FeedValue)]) -> Result<HashMap<String, Tensor>> {
        let mut out: HashMap<String, Tensor> = HashMap::new();
        for (name, _) in feeds {
            if !self.inputs.iter().any(|i| &i.name == name) {
                return Err(Error::arg(
                    format!("feed {name:?}"),
                    format!(
                        "{} has no such input (inputs: {})",
                        self.name,
                        self.inputs
                            .iter()
                            .map(|i| i.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
        }
        let mut symbols: HashMap<&str, (usize, &str)> = HashMap::new();
        for (info, decl) in self.inputs.iter().zip(&self.input_decl) {
            let mut fed = feeds.iter().filter(|(n, _)| n == &info.name);
            let Some((_, value)) = fed.next() else {
                return Err(Error::arg(
                    format!("input {:?}", info.name),
                    format!("{} needs it, and it is not fed", self.name),
                ));
            };
            if fed.next().is_some() {
                return Err(Error::arg(
                    format!("input {:?}", info.name),
                    "fed more than once",
                ));
            }
            let what = format!("input {:?} of {}", info.name, self.name);
            let float_in = matches!(decl.elem, 1 | 10 | 11 | 16);
            let int_in = matches!(decl.elem, 2..=7 | 9 | 12 | 13);
            let t = match value {
                FeedValue::F32(a) if !int_in => Tensor::f32(a.shape.clone(), a.data.clone()),
                FeedValue::I64 { shape, data } if !float_in => {
                    if decl.elem == 9 {
                        Tensor::new(
                            shape.clone(),
                            Data::Bool(data.iter().map(|&v| v != 0).collect()),
                        )
                    } else {
                        Tensor::i64(shape.clone(), data.clone())
                    }
                }
                FeedValue::F32(_) => {
                    return Err(Error::arg(what, "an integer input fed with floats"));
                }
                FeedValue::I64 { .. } => {
                    return Err(Error::arg(what, "a float input fed with integers"));
                }
            }
            .map_err(|e| match e {
                Error::ShapeMismatch { expected, got, .. } => Error::ShapeMismatch {
                    what: what.clone(),
                    expected,
                    got,
                },
                e => e,
            })?;
            if decl.ranked {
                let bad =
                    || Error::shape(what.clone(), dims_str(&info.dims), format!("{:?}", t.shape));
                if t.shape.len() != info.dims.len() {
                    return Err(bad());
                }
                for (d, &got) in info.dims.iter().zip(&t.shape) {
                    match d {
                        Dim::Fixed(v) if *v != got => return Err(bad()),
                        Dim::Named(s) => match symbols.get(s.as_str()) {
                            Some(&(v, other)) if v != got => {
                                return Err(Error::shape(
                                    format!("dimension {s:?} of input {:?}", info.name),
                                    format!("{v} (as in input {other:?})"),
                                    got,
                                ));
                            }
                            _ => {
                                symbols.insert(s.as_str(), (got, info.name.as_str()));
                            }
                        },
                        _ => {}
                    }
                }
            }
            out.insert(info.name.clone(), t);
        }
        Ok(out)
    }

    /// Runs the graph. `feeds` holds every graph input by name (the first one, `x`, too).
    /// `gru(k, input)` runs the `k`-th GRU node ([`grus`](Self::grus)`[k]`) on the caller's
    /// backend: `input` is laid out per that model's config (`x` `[T, B, I]`, or `[B, T, I]` when
    /// `batch_first`; `h0` `[D, B, H]`, `None` when the node's `initial_h` is absent or all
    /// zeros; `lengths` `[B]` from `sequence_lens`); it returns a [`GruOutput`], which becomes the
    /// node's `Y` `[T, D, B, H]` (`layout = 1`: `[B, T, D, H]`, zeros past a row's length) and
    /// `Y_h` `[D, B, H]` (`[B, D, H]`).
    ///
    /// Every feed is checked against the declared shapes (fixed sizes, and symbolic sizes that
    /// must agree across inputs) before anything runs. Returns every graph output, in order, as
    /// f32 (integer outputs converted).
    pub fn run(&self, feeds: &[(String, FeedValue)], gru: GruFn<'_>) -> Result<Vec<Array>> {
        let sync = SyncGru(std::cell::RefCell::new(gru));
        pollster::block_on(self.run_async(feeds, &sync))
    }

    /// [`run`](Self::run) with the GRU nodes run by `gru` as futures (the GPU's, which the web
    /// cannot block on).
    pub async fn run_async(
        &self,
        feeds: &[(String, FeedValue)],
        gru: &dyn RunGru,
    ) -> Result<Vec<Array>> {
        let mut values = self.feed_tensors(feeds)?;
        for node in &self.nodes {
            let n = &node.proto;
            let outs = {
                let ins = n
                    .input
                    .iter()
                    .map(|s| {
                        if s.is_empty() {
                            return Ok(None);
                        }
                        values
                            .get(s.as_str())
                            .or_else(|| self.consts.get(s.as_str()))
                            .map(Some)
                            .ok_or_else(|| Error::Parse {
                                what: self.name.clone(),
                                reason: format!(
                                    "node {:?} reads {s:?}, which nothing gives",
                                    node.label
                                ),
                            })
                    })
                    .collect::<Result<Vec<Option<&Tensor>>>>()?;
                match node.gru {
                    Some(k) => self.run_gru(k, &node.label, &ins, gru).await?,
                    None => ops::eval(
                        &ops::Ctx {
                            node: n,
                            label: &node.label,
                            opset: self.opset,
                            dir: None,
                            model: &self.name,
                        },
                        &ins,
                    )?,
                }
            };
            values.extend(bind(n, &node.label, outs)?);
        }
        self.outputs
            .iter()
            .map(|o| {
                let t = values
                    .get(o.name.as_str())
                    .or_else(|| self.consts.get(o.name.as_str()))
                    .ok_or_else(|| Error::Parse {
                        what: self.name.clone(),
                        reason: format!("graph output {:?} is never computed", o.name),
                    })?;
                Array::new(t.shape.clone(), t.to_f32_vec())
            })
            .collect()
    }

    /// Runs GRU node `k` through `gru`, returning its `Y` and `Y_h`.
    async fn run_gru(
        &self,
        k: usize,
        label: &str,
        ins: &[Option<&Tensor>],
        gru: &dyn RunGru,
    ) -> Result<Vec<Tensor>> {
        let g = self
            .grus
            .get(k)
            .ok_or_else(|| Error::arg("GRU node", format!("{k} is out of range")))?;
        let c = &g.config;
        let (d, h) = (c.num_directions(), c.hidden_size);
        let what = |s: &str| format!("{s} of GRU node {label:?}");
        let x = ins
            .first()
            .copied()
            .flatten()
            .ok_or_else(|| Error::arg(what("X"), "missing"))?;
        let xv = x.as_f32(&what("X"))?;
        let expect_x = if c.batch_first {
            "[B, T, I]"
        } else {
            "[T, B, I]"
        };
        if x.rank() != 3 || x.shape[2] != c.input_size {
            return Err(Error::shape(
                what("X"),
                format!("{expect_x} with I = {}", c.input_size),
                format!("{:?}", x.shape),
            ));
        }
        let (t, b) = if c.batch_first {
            (x.shape[1], x.shape[0])
        } else {
            (x.shape[0], x.shape[1])
        };
        let lengths: Option<Vec<usize>> = match ins.get(4).copied().flatten() {
            None => None,
            Some(l) => {
                let v = l.as_i64(&what("sequence_lens"))?;
                if l.shape != [b] {
                    return Err(Error::shape(
                        what("sequence_lens"),
                        format!("[{b}]"),
                        format!("{:?}", l.shape),
                    ));
                }
                Some(
                    v.iter()
                        .map(|&v| {
                            usize::try_from(v).map_err(|_| {
                                Error::arg(what("sequence_lens"), format!("a length of {v}"))
                            })
                        })
                        .collect::<Result<_>>()?,
                )
            }
        };
        let h0: Option<Vec<f32>> = match ins.get(5).copied().flatten() {
            None => None,
            Some(s) => {
                // Checked for shape even when all zeros (then the GRU starts from zero anyway).
                let want: &[usize] = if c.batch_first {
                    &[b, d, h]
                } else {
                    &[d, b, h]
                };
                if s.shape != want {
                    return Err(Error::shape(
                        what("initial_h"),
                        format!("{want:?}"),
                        format!("{:?}", s.shape),
                    ));
                }
                if s.all_zero() {
                    None
                } else {
                    let v = s.as_f32(&what("initial_h"))?;
                    Some(if c.batch_first {
                        swap01(v, b, d, h)
                    } else {
                        v.to_vec()
                    })
                }
            }
        };
        let mut input = SeqInput::new(xv, Steps(t), Batch(b));
        if let Some(h0) = &h0 {
            input = input.with_h0(h0);
        }
        if let Some(l) = &lengths {
            input = input.with_lengths(l);
        }
        let out = gru.run_gru(k, &input).await?;
        let ny = numel(&[t, b, d, h], &what("Y"))?;
        if out.output.len() != ny || out.h_n.len() != d * b * h {
            return Err(Error::shape(
                format!("the backend's output for GRU node {label:?}"),
                format!("{ny} and {} elements", d * b * h),
                format!("{} and {}", out.output.len(), out.h_n.len()),
            ));
        }
        let (y, y_h) = if c.batch_first {
            (
                Tensor::f32(vec![b, t, d, h], out.output)?,
                Tensor::f32(vec![b, d, h], swap01(&out.h_n, d, b, h))?,
            )
        } else {
            // [T, B, D, H] → [T, D, B, H].
            let mut y = Vec::with_capacity(ny);
            for step in out.output.chunks_exact((b * d * h).max(1)).take(t) {
                y.extend(swap01(step, b, d, h));
            }
            (
                Tensor::f32(vec![t, d, b, h], y)?,
                Tensor::f32(vec![d, b, h], out.h_n)?,
            )
        };
        Ok(vec![y, y_h])
    }
}

/// `[p, q, r]` → `[q, p, r]`.
fn swap01(v: &[f32], p: usize, q: usize, r: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(v.len());
    for j in 0..q {
        for i in 0..p {
            let s = (i * q + j) * r;
            out.extend_from_slice(v.get(s..s + r).unwrap_or(&[]));
        }
    }
    out
}

#[cfg(test)]
mod tests;

/// A synchronous GRU callback, as [`OnnxProgram::run`] takes it.
type GruFn<'f> = &'f mut dyn FnMut(usize, &SeqInput<'_>) -> Result<GruOutput>;

/// A synchronous GRU callback as a [`RunGru`] whose futures are ready at once.
struct SyncGru<'f>(std::cell::RefCell<GruFn<'f>>);

impl RunGru for SyncGru<'_> {
    fn run_gru<'a>(&'a self, k: usize, input: &'a SeqInput<'a>) -> GruFuture<'a> {
        let out = match self.0.try_borrow_mut() {
            Ok(mut f) => f(k, input),
            Err(_) => Err(Error::Gpu("a GRU callback re-entered itself".into())),
        };
        Box::pin(std::future::ready(out))
    }
}
