//! The ONNX operators the evaluator runs (all but `GRU`, which the program hands to the caller's
//! backend), with ONNX semantics for opsets 13 to 21 (and the attribute forms of older opsets
//! where they differ: `Squeeze`/`Unsqueeze` axes before 13, `ReduceMean` axes before 18, `Slice`
//! before 10, `Softmax`'s flattening before 13).

use std::path::Path;

use super::tensor::{Data, Tensor, decode, numel};
use crate::error::{Error, Result};
use crate::formats::onnx_data::{AttributeProto, NodeProto};

/// Every op type the evaluator knows (default domain), `GRU` included.
pub(crate) const SUPPORTED: &[&str] = &[
    "Add",
    "Cast",
    "Concat",
    "Constant",
    "ConstantOfShape",
    "Div",
    "Expand",
    "GRU",
    "Gather",
    "Gemm",
    "Identity",
    "LogSoftmax",
    "MatMul",
    "Mul",
    "ReduceMean",
    "Relu",
    "Reshape",
    "Shape",
    "Sigmoid",
    "Slice",
    "Softmax",
    "Squeeze",
    "Sub",
    "Tanh",
    "Transpose",
    "Unsqueeze",
];

/// Whether `n` is in the default domain.
pub(crate) fn default_domain(n: &NodeProto) -> bool {
    matches!(n.domain.as_deref(), None | Some("" | "ai.onnx"))
}

/// `Error::Unsupported` for `n` unless its op type is in [`SUPPORTED`] (default domain).
pub(crate) fn check_supported(n: &NodeProto, label: &str) -> Result<()> {
    let op = n.op_type.as_deref().unwrap_or("");
    if default_domain(n) && SUPPORTED.contains(&op) {
        return Ok(());
    }
    let op = match n.domain.as_deref() {
        Some(d) if !default_domain(n) => format!("{d}.{op}"),
        _ => op.to_string(),
    };
    Err(Error::Unsupported(format!(
        "node {label:?}: op type {op} is not supported (supported: {})",
        SUPPORTED.join(", ")
    )))
}

/// One node being evaluated.
pub(crate) struct Ctx<'a> {
    pub node: &'a NodeProto,
    pub label: &'a str,
    pub opset: i64,
    /// The model's folder (external data of `Constant` values).
    pub dir: Option<&'a Path>,
    /// The model's name, for errors.
    pub model: &'a str,
}

impl Ctx<'_> {
    fn op(&self) -> &str {
        self.node.op_type.as_deref().unwrap_or("")
    }

    fn err(&self, reason: impl Into<String>) -> Error {
        Error::arg(format!("node {:?} ({})", self.label, self.op()), reason)
    }

    fn attr(&self, name: &str) -> Option<&AttributeProto> {
        self.node
            .attribute
            .iter()
            .find(|a| a.name.as_deref() == Some(name))
    }

    fn attr_i(&self, name: &str) -> Option<i64> {
        self.attr(name).and_then(|a| a.i)
    }

    fn attr_f(&self, name: &str) -> Option<f32> {
        self.attr(name).and_then(|a| a.f)
    }

    fn attr_ints(&self, name: &str) -> Option<&[i64]> {
        self.attr(name).map(|a| a.ints.as_slice())
    }

    fn input<'t>(&self, inputs: &[Option<&'t Tensor>], k: usize) -> Result<&'t Tensor> {
        inputs
            .get(k)
            .copied()
            .flatten()
            .ok_or_else(|| self.err(format!("input {k} is missing")))
    }

    /// Integer values of an optional input (`None` when absent).
    fn ints_input(&self, inputs: &[Option<&Tensor>], k: usize) -> Result<Option<Vec<i64>>> {
        match inputs.get(k).copied().flatten() {
            None => Ok(None),
            Some(t) => Ok(Some(
                t.as_i64(&format!("input {k} of node {:?}", self.label))?
                    .to_vec(),
            )),
        }
    }

    /// `a` as an axis of a rank-`rank` tensor (negative from the end).
    fn axis(&self, a: i64, rank: usize) -> Result<usize> {
        let r = rank as i64;
        let v = if a < 0 { a + r } else { a };
        if (0..r).contains(&v) {
            Ok(v as usize)
        } else {
            Err(self.err(format!("axis {a} is out of range for rank {rank}")))
        }
    }

    fn axes(&self, axes: &[i64], rank: usize) -> Result<Vec<usize>> {
        let mut out = Vec::with_capacity(axes.len());
        for &a in axes {
            let v = self.axis(a, rank)?;
            if out.contains(&v) {
                return Err(self.err(format!("axis {a} is repeated")));
            }
            out.push(v);
        }
        Ok(out)
    }
}

/// Row-major strides of `shape`.
fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1usize; shape.len()];
    for k in (0..shape.len().saturating_sub(1)).rev() {
        s[k] = s[k + 1].saturating_mul(shape[k + 1]);
    }
    s
}

/// Flat source indices of every element of an `out`-shaped walk that starts at `base` and moves
/// `steps[k]` per unit of dimension `k`.
fn strided(out: &[usize], base: i64, steps: &[i64]) -> Result<Vec<usize>> {
    let n = numel(out, "tensor")?;
    let mut idx = Vec::with_capacity(n);
    if n == 0 {
        return Ok(idx);
    }
    let r = out.len();
    let mut counter = vec![0usize; r];
    let mut cur = base;
    for _ in 0..n {
        idx.push(
            usize::try_from(cur)
                .map_err(|_| Error::arg("tensor index", format!("{cur} is negative")))?,
        );
        let mut k = r;
        while k > 0 {
            k -= 1;
            let s = steps.get(k).copied().unwrap_or(0);
            counter[k] += 1;
            cur += s;
            if counter[k] < out[k] {
                break;
            }
            cur -= s * out[k] as i64;
            counter[k] = 0;
        }
    }
    Ok(idx)
}

/// The numpy broadcast of two shapes.
fn broadcast(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let r = a.len().max(b.len());
    let mut out = vec![0; r];
    for (k, o) in out.iter_mut().enumerate() {
        let da = (k + a.len()).checked_sub(r).map_or(1, |j| a[j]);
        let db = (k + b.len()).checked_sub(r).map_or(1, |j| b[j]);
        *o = if da == db || db == 1 {
            da
        } else if da == 1 {
            db
        } else {
            return None;
        };
    }
    Some(out)
}

/// Element steps that read a tensor of shape `inp` broadcast to `out`.
fn bsteps(inp: &[usize], out: &[usize]) -> Vec<i64> {
    let s = strides(inp);
    let off = out.len().saturating_sub(inp.len());
    (0..out.len())
        .map(|k| match k.checked_sub(off) {
            Some(j) if inp[j] != 1 || out[k] == 1 => s[j] as i64,
            _ => 0,
        })
        .collect()
}

fn broadcast_to(t: &Tensor, out: &[usize]) -> Result<Vec<usize>> {
    strided(out, 0, &bsteps(&t.shape, out))
}

/// Evaluates one node (anything but `GRU`).
pub(crate) fn eval(ctx: &Ctx<'_>, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    let one = |t: Tensor| Ok(vec![t]);
    match ctx.op() {
        "Identity" => one(ctx.input(inputs, 0)?.clone()),
        "Transpose" => one(transpose(ctx, ctx.input(inputs, 0)?)?),
        "Reshape" => one(reshape(ctx, inputs)?),
        "Squeeze" => one(squeeze(ctx, inputs)?),
        "Unsqueeze" => one(unsqueeze(ctx, inputs)?),
        "Gather" => one(gather(ctx, inputs)?),
        "Slice" => one(slice(ctx, inputs)?),
        "Concat" => one(concat(ctx, inputs)?),
        "Expand" => one(expand(ctx, inputs)?),
        "Shape" => one(shape(ctx, ctx.input(inputs, 0)?)?),
        "Constant" => one(constant(ctx)?),
        "ConstantOfShape" => one(constant_of_shape(ctx, inputs)?),
        "Cast" => one(cast(ctx, ctx.input(inputs, 0)?)?),
        "MatMul" => one(matmul(ctx, ctx.input(inputs, 0)?, ctx.input(inputs, 1)?)?),
        "Gemm" => one(gemm(ctx, inputs)?),
        op @ ("Add" | "Sub" | "Mul" | "Div") => one(binary(
            ctx,
            op,
            ctx.input(inputs, 0)?,
            ctx.input(inputs, 1)?,
        )?),
        op @ ("Relu" | "Tanh" | "Sigmoid") => one(unary(ctx, op, ctx.input(inputs, 0)?)?),
        op @ ("Softmax" | "LogSoftmax") => {
            one(softmax(ctx, ctx.input(inputs, 0)?, op == "LogSoftmax")?)
        }
        "ReduceMean" => one(reduce_mean(ctx, inputs)?),
        _ => {
            check_supported(ctx.node, ctx.label)?;
            Err(Error::Unsupported(format!(
                "node {:?}: op type {} is not evaluated here",
                ctx.label,
                ctx.op()
            )))
        }
    }
}

fn transpose(ctx: &Ctx<'_>, x: &Tensor) -> Result<Tensor> {
    let r = x.rank();
    let perm: Vec<usize> = match ctx.attr_ints("perm") {
        Some(p) if !p.is_empty() || r == 0 => ctx.axes(p, r)?,
        _ => (0..r).rev().collect(),
    };
    if perm.len() != r {
        return Err(ctx.err(format!("perm {perm:?} for a rank-{r} input")));
    }
    let s = strides(&x.shape);
    let out: Vec<usize> = perm.iter().map(|&p| x.shape[p]).collect();
    let steps: Vec<i64> = perm.iter().map(|&p| s[p] as i64).collect();
    let data = x.data.take(&strided(&out, 0, &steps)?)?;
    Tensor::new(out, data)
}

fn reshape(ctx: &Ctx<'_>, inputs: &[Option<&Tensor>]) -> Result<Tensor> {
    let x = ctx.input(inputs, 0)?;
    let spec = match ctx.ints_input(inputs, 1)? {
        Some(s) => s,
        None => ctx
            .attr_ints("shape")
            .map(<[i64]>::to_vec)
            .ok_or_else(|| ctx.err("no shape"))?,
    };
    let allowzero = ctx.attr_i("allowzero").unwrap_or(0) != 0;
    let mut out = Vec::with_capacity(spec.len());
    let mut infer = None;
    for (k, &d) in spec.iter().enumerate() {
        out.push(match d {
            -1 if infer.is_none() => {
                infer = Some(k);
                1
            }
            0 if !allowzero => *x.shape.get(k).ok_or_else(|| {
                ctx.err(format!("shape {spec:?}: 0 at {k} past the input's rank"))
            })?,
            d if d >= 0 => usize::try_from(d).map_err(|_| ctx.err(format!("shape {spec:?}")))?,
            _ => return Err(ctx.err(format!("shape {spec:?} is invalid"))),
        });
    }
    let n = x.len();
    if let Some(k) = infer {
        let known = numel(&out, "reshape")?;
        if known == 0 || n % known != 0 {
            return Err(Error::shape(
                format!("Reshape node {:?}", ctx.label),
                format!("{spec:?}"),
                format!("{:?} ({n} elements)", x.shape),
            ));
        }
        out[k] = n / known;
    }
    if numel(&out, "reshape")? != n {
        return Err(Error::shape(
            format!("Reshape node {:?}", ctx.label),
            format!("{spec:?}"),
            format!("{:?} ({n} elements)", x.shape),
        ));
    }
    Tensor::new(out, x.data.clone())
}

fn axes_of(ctx: &Ctx<'_>, inputs: &[Option<&Tensor>], input_from: i64) -> Result<Option<Vec<i64>>> {
    if ctx.opset >= input_from {
        ctx.ints_input(inputs, 1)
    } else {
        Ok(ctx.attr_ints("axes").map(<[i64]>::to_vec))
    }
}

fn squeeze(ctx: &Ctx<'_>, inputs: &[Option<&Tensor>]) -> Result<Tensor> {
    let x = ctx.input(inputs, 0)?;
    let axes = match axes_of(ctx, inputs, 13)? {
        Some(a) => ctx.axes(&a, x.rank())?,
        None => (0..x.rank()).filter(|&k| x.shape[k] == 1).collect(),
    };
    if let Some(&k) = axes.iter().find(|&&k| x.shape[k] != 1) {
        return Err(ctx.err(format!("axis {k} of shape {:?} is not of size 1", x.shape)));
    }
    let out = (0..x.rank())
        .filter(|k| !axes.contains(k))
        .map(|k| x.shape[k])
        .collect();
    Tensor::new(out, x.data.clone())
}

fn unsqueeze(ctx: &Ctx<'_>, inputs: &[Option<&Tensor>]) -> Result<Tensor> {
    let x = ctx.input(inputs, 0)?;
    let axes = axes_of(ctx, inputs, 13)?.ok_or_else(|| ctx.err("no axes"))?;
    let r = x.rank() + axes.len();
    let axes = ctx.axes(&axes, r)?;
    let mut dims = x.shape.iter();
    let out = (0..r)
        .map(|k| {
            if axes.contains(&k) {
                1
            } else {
                dims.next().copied().unwrap_or(1)
            }
        })
        .collect();
    Tensor::new(out, x.data.clone())
}

fn gather(ctx: &Ctx<'_>, inputs: &[Option<&Tensor>]) -> Result<Tensor> {
    let x = ctx.input(inputs, 0)?;
    let ind = ctx.input(inputs, 1)?;
    let idx = ind.as_i64(&format!("indices of node {:?}", ctx.label))?;
    if x.rank() == 0 {
        return Err(ctx.err("Gather of a scalar"));
    }
    let axis = ctx.axis(ctx.attr_i("axis").unwrap_or(0), x.rank())?;
    let dim = x.shape[axis];
    let outer: usize = x.shape[..axis].iter().product();
    let inner: usize = x.shape[axis + 1..].iter().product();
    let mut out = x.shape[..axis].to_vec();
    out.extend_from_slice(&ind.shape);
    out.extend_from_slice(&x.shape[axis + 1..]);
    let n = numel(&out, "Gather output")?;
    let pos = idx
        .iter()
        .map(|&i| {
            let v = if i < 0 { i + dim as i64 } else { i };
            if (0..dim as i64).contains(&v) {
                Ok(v as usize)
            } else {
                Err(ctx.err(format!(
                    "index {i} is out of range for a dimension of {dim}"
                )))
            }
        })
        .collect::<Result<Vec<usize>>>()?;
    let mut data = x.data.empty_like(n);
    for o in 0..outer {
        for &p in &pos {
            let start = (o * dim + p) * inner;
            data.extend_from(&x.data, start..start + inner)?;
        }
    }
    Tensor::new(out, data)
}

fn slice(ctx: &Ctx<'_>, inputs: &[Option<&Tensor>]) -> Result<Tensor> {
    let x = ctx.input(inputs, 0)?;
    let r = x.rank();
    let (starts, ends, axes, steps) = if ctx.opset >= 10 {
        (
            ctx.ints_input(inputs, 1)?
                .ok_or_else(|| ctx.err("no starts"))?,
            ctx.ints_input(inputs, 2)?
                .ok_or_else(|| ctx.err("no ends"))?,
            ctx.ints_input(inputs, 3)?,
            ctx.ints_input(inputs, 4)?,
        )
    } else {
        (
            ctx.attr_ints("starts").unwrap_or_default().to_vec(),
            ctx.attr_ints("ends").unwrap_or_default().to_vec(),
            ctx.attr_ints("axes").map(<[i64]>::to_vec),
            None,
        )
    };
    let axes = match axes {
        Some(a) => ctx.axes(&a, r)?,
        None => (0..starts.len()).collect(),
    };
    let steps = steps.unwrap_or_else(|| vec![1; starts.len()]);
    if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
        return Err(ctx.err(format!(
            "starts {starts:?}, ends {ends:?}, axes {axes:?} and steps {steps:?} differ in length"
        )));
    }
    let mut begin = vec![0i64; r];
    let mut step = vec![1i64; r];
    let mut out = x.shape.clone();
    for (k, &a) in axes.iter().enumerate() {
        let dim = x.shape.get(a).copied().unwrap_or(0) as i128;
        let (mut s, mut e, st) = (starts[k] as i128, ends[k] as i128, steps[k] as i128);
        if st == 0 {
            return Err(ctx.err("a step of 0"));
        }
        if s < 0 {
            s += dim;
        }
        if e < 0 {
            e += dim;
        }
        let clamp = |v: i128, lo: i128, hi: i128| v.max(lo).min(hi);
        let count = if st > 0 {
            s = clamp(s, 0, dim);
            e = clamp(e, 0, dim);
            if e > s { (e - s + st - 1) / st } else { 0 }
        } else {
            s = clamp(s, 0, dim - 1);
            e = clamp(e, -1, dim - 1);
            if s > e {
                (s - e + (-st) - 1) / (-st)
            } else {
                0
            }
        };
        // Nothing is read from an empty axis.
        if count > 0 {
            begin[a] = s as i64;
            step[a] = st as i64;
        }
        out[a] = count as usize;
    }
    let s = strides(&x.shape);
    let base: i64 = (0..r).map(|k| begin[k] * s[k] as i64).sum();
    let walk: Vec<i64> = (0..r).map(|k| step[k] * s[k] as i64).collect();
    let data = x.data.take(&strided(&out, base, &walk)?)?;
    Tensor::new(out, data)
}

fn concat(ctx: &Ctx<'_>, inputs: &[Option<&Tensor>]) -> Result<Tensor> {
    let parts: Vec<&Tensor> = inputs.iter().copied().flatten().collect();
    let first = parts.first().ok_or_else(|| ctx.err("no inputs"))?;
    let r = first.rank();
    let axis = ctx.axis(ctx.attr_i("axis").ok_or_else(|| ctx.err("no axis"))?, r)?;
    let mut out = first.shape.clone();
    out[axis] = 0;
    for p in &parts {
        let same = p.rank() == r
            && (0..r).all(|k| k == axis || p.shape[k] == first.shape[k])
            && p.data.dtype() == first.data.dtype();
        if !same {
            return Err(Error::shape(
                format!("Concat node {:?} on axis {axis}", ctx.label),
                format!("{} {:?}", first.data.dtype(), first.shape),
                format!("{} {:?}", p.data.dtype(), p.shape),
            ));
        }
        out[axis] = out[axis]
            .checked_add(p.shape[axis])
            .ok_or_else(|| Error::Overflow("Concat".into()))?;
    }
    let n = numel(&out, "Concat output")?;
    let outer: usize = first.shape[..axis].iter().product();
    let inner: usize = first.shape[axis + 1..].iter().product();
    let mut data = first.data.empty_like(n);
    for o in 0..outer {
        for p in &parts {
            let chunk = p.shape[axis] * inner;
            data.extend_from(&p.data, o * chunk..(o + 1) * chunk)?;
        }
    }
    Tensor::new(out, data)
}

fn dims_of(ctx: &Ctx<'_>, v: &[i64]) -> Result<Vec<usize>> {
    v.iter()
        .map(|&d| {
            usize::try_from(d).map_err(|_| ctx.err(format!("shape {v:?} has a negative dimension")))
        })
        .collect()
}

fn expand(ctx: &Ctx<'_>, inputs: &[Option<&Tensor>]) -> Result<Tensor> {
    let x = ctx.input(inputs, 0)?;
    let spec = ctx
        .ints_input(inputs, 1)?
        .ok_or_else(|| ctx.err("no shape"))?;
    let want = dims_of(ctx, &spec)?;
    let out = broadcast(&x.shape, &want).ok_or_else(|| {
        Error::shape(
            format!("Expand node {:?}", ctx.label),
            format!("a shape {:?} broadcasts to", x.shape),
            format!("{want:?}"),
        )
    })?;
    numel(&out, &format!("Expand node {:?} output", ctx.label))?;
    let data = x.data.take(&broadcast_to(x, &out)?)?;
    Tensor::new(out, data)
}

fn shape(ctx: &Ctx<'_>, x: &Tensor) -> Result<Tensor> {
    let r = x.rank() as i64;
    let norm = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
    let start = norm(ctx.attr_i("start").unwrap_or(0));
    let end = norm(ctx.attr_i("end").unwrap_or(r));
    let dims: Vec<i64> = x.shape[start..end.max(start)]
        .iter()
        .map(|&d| d as i64)
        .collect();
    Tensor::i64(vec![dims.len()], dims)
}

fn constant(ctx: &Ctx<'_>) -> Result<Tensor> {
    if let Some(t) = ctx.attr("value").and_then(|a| a.t.as_ref()) {
        return decode(
            t,
            ctx.dir,
            ctx.model,
            &format!("value of node {:?}", ctx.label),
        );
    }
    if let Some(f) = ctx.attr_f("value_float") {
        return Tensor::f32(vec![], vec![f]);
    }
    if let Some(a) = ctx.attr("value_floats") {
        return Tensor::f32(vec![a.floats.len()], a.floats.clone());
    }
    if let Some(i) = ctx.attr_i("value_int") {
        return Tensor::i64(vec![], vec![i]);
    }
    if let Some(a) = ctx.attr("value_ints") {
        return Tensor::i64(vec![a.ints.len()], a.ints.clone());
    }
    Err(Error::Unsupported(format!(
        "node {:?}: a Constant without value, value_float(s) or value_int(s)",
        ctx.label
    )))
}

fn constant_of_shape(ctx: &Ctx<'_>, inputs: &[Option<&Tensor>]) -> Result<Tensor> {
    let spec = ctx
        .ints_input(inputs, 0)?
        .ok_or_else(|| ctx.err("no shape"))?;
    let out = dims_of(ctx, &spec)?;
    let n = numel(
        &out,
        &format!("ConstantOfShape node {:?} output", ctx.label),
    )?;
    let value = match ctx.attr("value").and_then(|a| a.t.as_ref()) {
        Some(t) => decode(
            t,
            ctx.dir,
            ctx.model,
            &format!("value of node {:?}", ctx.label),
        )?,
        None => Tensor::f32(vec![1], vec![0.0])?,
    };
    if value.len() != 1 {
        return Err(ctx.err(format!("value holds {} elements, not one", value.len())));
    }
    let data = match &value.data {
        Data::F32(v) => Data::F32(vec![v[0]; n]),
        Data::I64(v) => Data::I64(vec![v[0]; n]),
        Data::Bool(v) => Data::Bool(vec![v[0]; n]),
    };
    Tensor::new(out, data)
}

fn cast(ctx: &Ctx<'_>, x: &Tensor) -> Result<Tensor> {
    let to = ctx.attr_i("to").ok_or_else(|| ctx.err("no `to`"))?;
    let floats = || x.to_f32_vec();
    let ints = || -> Vec<i64> {
        match &x.data {
            Data::F32(v) => v.iter().map(|&f| f as i64).collect(),
            Data::I64(v) => v.clone(),
            Data::Bool(v) => v.iter().map(|&b| i64::from(b)).collect(),
        }
    };
    let data = match to {
        1 | 11 => Data::F32(floats()),
        10 => Data::F32(
            floats()
                .into_iter()
                .map(|f| half::f16::from_f32(f).to_f32())
                .collect(),
        ),
        16 => Data::F32(
            floats()
                .into_iter()
                .map(|f| half::bf16::from_f32(f).to_f32())
                .collect(),
        ),
        7 | 13 => Data::I64(ints()),
        2 => Data::I64(ints().into_iter().map(|v| i64::from(v as u8)).collect()),
        3 => Data::I64(ints().into_iter().map(|v| i64::from(v as i8)).collect()),
        4 => Data::I64(ints().into_iter().map(|v| i64::from(v as u16)).collect()),
        5 => Data::I64(ints().into_iter().map(|v| i64::from(v as i16)).collect()),
        6 => Data::I64(ints().into_iter().map(|v| i64::from(v as i32)).collect()),
        12 => Data::I64(ints().into_iter().map(|v| i64::from(v as u32)).collect()),
        9 => Data::Bool(match &x.data {
            Data::F32(v) => v.iter().map(|&f| f != 0.0).collect(),
            Data::I64(v) => v.iter().map(|&i| i != 0).collect(),
            Data::Bool(v) => v.clone(),
        }),
        _ => {
            return Err(Error::Unsupported(format!(
                "node {:?}: Cast to ONNX data_type {to}",
                ctx.label
            )));
        }
    };
    Tensor::new(x.shape.clone(), data)
}

fn matmul(ctx: &Ctx<'_>, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let what = format!("MatMul node {:?}", ctx.label);
    let (x, y) = (a.as_f32(&what)?, b.as_f32(&what)?);
    if a.rank() == 0 || b.rank() == 0 {
        return Err(ctx.err("MatMul of a scalar"));
    }
    let mut ash = a.shape.clone();
    let mut bsh = b.shape.clone();
    let (a1, b1) = (ash.len() == 1, bsh.len() == 1);
    if a1 {
        ash.insert(0, 1);
    }
    if b1 {
        bsh.push(1);
    }
    let (m, k) = (ash[ash.len() - 2], ash[ash.len() - 1]);
    let (k2, n) = (bsh[bsh.len() - 2], bsh[bsh.len() - 1]);
    let (abatch, bbatch) = (&ash[..ash.len() - 2], &bsh[..bsh.len() - 2]);
    let batch = broadcast(abatch, bbatch)
        .filter(|_| k == k2)
        .ok_or_else(|| {
            Error::shape(
                what.clone(),
                format!("{:?} times a compatible shape", a.shape),
                format!("{:?}", b.shape),
            )
        })?;
    let mut out = batch.clone();
    out.extend([m, n]);
    let total = numel(&out, &what)?;
    let scale = |s: Vec<i64>, by: usize| s.into_iter().map(|v| v * by as i64).collect::<Vec<_>>();
    let aoff = strided(&batch, 0, &scale(bsteps(abatch, &batch), m * k))?;
    let boff = strided(&batch, 0, &scale(bsteps(bbatch, &batch), k * n))?;
    let mut res = Vec::with_capacity(total);
    let mut acc = vec![0f64; n];
    for (&ao, &bo) in aoff.iter().zip(&boff) {
        for i in 0..m {
            acc.iter_mut().for_each(|v| *v = 0.0);
            for kk in 0..k {
                let av = f64::from(x[ao + i * k + kk]);
                let row = &y[bo + kk * n..bo + (kk + 1) * n];
                for (s, &bv) in acc.iter_mut().zip(row) {
                    *s += av * f64::from(bv);
                }
            }
            res.extend(acc.iter().map(|&v| v as f32));
        }
    }
    if b1 {
        out.pop();
    }
    if a1 {
        out.remove(out.len() - if b1 { 1 } else { 2 });
    }
    Tensor::f32(out, res)
}

fn gemm(ctx: &Ctx<'_>, inputs: &[Option<&Tensor>]) -> Result<Tensor> {
    let what = format!("Gemm node {:?}", ctx.label);
    let (a, b) = (ctx.input(inputs, 0)?, ctx.input(inputs, 1)?);
    let c = inputs.get(2).copied().flatten();
    let (x, y) = (a.as_f32(&what)?, b.as_f32(&what)?);
    if a.rank() != 2 || b.rank() != 2 {
        return Err(Error::shape(
            what,
            "2-D A and B",
            format!("{:?} and {:?}", a.shape, b.shape),
        ));
    }
    let ta = ctx.attr_i("transA").unwrap_or(0) != 0;
    let tb = ctx.attr_i("transB").unwrap_or(0) != 0;
    let alpha = f64::from(ctx.attr_f("alpha").unwrap_or(1.0));
    let beta = f64::from(ctx.attr_f("beta").unwrap_or(1.0));
    let (m, k) = if ta {
        (a.shape[1], a.shape[0])
    } else {
        (a.shape[0], a.shape[1])
    };
    let (k2, n) = if tb {
        (b.shape[1], b.shape[0])
    } else {
        (b.shape[0], b.shape[1])
    };
    if k != k2 {
        return Err(Error::shape(
            what,
            format!("B with {k} rows (after transB={})", u8::from(tb)),
            format!("{:?}", b.shape),
        ));
    }
    let out = vec![m, n];
    let total = numel(&out, &what)?;
    let cv: Option<(Vec<usize>, &[f32])> = match c {
        Some(c) => {
            if broadcast(&c.shape, &out).as_deref() != Some(out.as_slice()) {
                return Err(Error::shape(
                    format!("C of {what}"),
                    format!("a shape that broadcasts to {out:?}"),
                    format!("{:?}", c.shape),
                ));
            }
            Some((broadcast_to(c, &out)?, c.as_f32(&what)?))
        }
        None => None,
    };
    let mut res = Vec::with_capacity(total);
    for i in 0..m {
        for j in 0..n {
            let mut s = 0f64;
            for kk in 0..k {
                let av = if ta { x[kk * m + i] } else { x[i * k + kk] };
                let bv = if tb { y[j * k + kk] } else { y[kk * n + j] };
                s += f64::from(av) * f64::from(bv);
            }
            let mut v = alpha * s;
            if let Some((idx, cd)) = &cv {
                v += beta * f64::from(cd[idx[i * n + j]]);
            }
            res.push(v as f32);
        }
    }
    Tensor::f32(out, res)
}

fn binary(ctx: &Ctx<'_>, op: &str, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let out = broadcast(&a.shape, &b.shape).ok_or_else(|| {
        Error::shape(
            format!("{op} node {:?}", ctx.label),
            format!("a shape that broadcasts with {:?}", a.shape),
            format!("{:?}", b.shape),
        )
    })?;
    let (ia, ib) = (broadcast_to(a, &out)?, broadcast_to(b, &out)?);
    let data = match (&a.data, &b.data) {
        (Data::F32(x), Data::F32(y)) => {
            let f: fn(f32, f32) -> f32 = match op {
                "Add" => |p, q| p + q,
                "Sub" => |p, q| p - q,
                "Mul" => |p, q| p * q,
                _ => |p, q| p / q,
            };
            Data::F32(ia.iter().zip(&ib).map(|(&i, &j)| f(x[i], y[j])).collect())
        }
        (Data::I64(x), Data::I64(y)) => Data::I64(
            ia.iter()
                .zip(&ib)
                .map(|(&i, &j)| {
                    let (p, q) = (x[i], y[j]);
                    match op {
                        "Add" => Ok(p.wrapping_add(q)),
                        "Sub" => Ok(p.wrapping_sub(q)),
                        "Mul" => Ok(p.wrapping_mul(q)),
                        _ => p
                            .checked_div(q)
                            .ok_or_else(|| ctx.err("integer division by zero")),
                    }
                })
                .collect::<Result<Vec<i64>>>()?,
        ),
        (p, q) => {
            return Err(ctx.err(format!("inputs of types {} and {}", p.dtype(), q.dtype())));
        }
    };
    Tensor::new(out, data)
}

fn unary(ctx: &Ctx<'_>, op: &str, x: &Tensor) -> Result<Tensor> {
    let data = match (&x.data, op) {
        (Data::F32(v), "Relu") => Data::F32(v.iter().map(|&f| f.max(0.0)).collect()),
        (Data::F32(v), "Tanh") => Data::F32(v.iter().map(|&f| f.tanh()).collect()),
        (Data::F32(v), _) => Data::F32(
            v.iter()
                .map(|&f| (1.0 / (1.0 + (-f64::from(f)).exp())) as f32)
                .collect(),
        ),
        (Data::I64(v), "Relu") => Data::I64(v.iter().map(|&i| i.max(0)).collect()),
        (d, _) => return Err(ctx.err(format!("an input of type {}", d.dtype()))),
    };
    Tensor::new(x.shape.clone(), data)
}

fn softmax(ctx: &Ctx<'_>, x: &Tensor, log: bool) -> Result<Tensor> {
    let v = x.as_f32(&format!("input of node {:?}", ctx.label))?;
    let r = x.rank().max(1);
    let shape = if x.rank() == 0 {
        vec![1]
    } else {
        x.shape.clone()
    };
    let (outer, n, inner) = if ctx.opset >= 13 {
        let axis = ctx.axis(ctx.attr_i("axis").unwrap_or(-1), r)?;
        (
            shape[..axis].iter().product::<usize>(),
            shape[axis],
            shape[axis + 1..].iter().product::<usize>(),
        )
    } else {
        let axis = ctx.axis(ctx.attr_i("axis").unwrap_or(1), r)?;
        (
            shape[..axis].iter().product::<usize>(),
            shape[axis..].iter().product::<usize>(),
            1,
        )
    };
    let mut out = vec![0f32; v.len()];
    for o in 0..outer {
        for i in 0..inner {
            let at = |j: usize| (o * n + j) * inner + i;
            let max = (0..n)
                .map(|j| f64::from(v[at(j)]))
                .fold(f64::NEG_INFINITY, f64::max);
            let sum: f64 = (0..n).map(|j| (f64::from(v[at(j)]) - max).exp()).sum();
            for j in 0..n {
                let z = f64::from(v[at(j)]) - max;
                out[at(j)] = if log { z - sum.ln() } else { z.exp() / sum } as f32;
            }
        }
    }
    Tensor::f32(x.shape.clone(), out)
}

fn reduce_mean(ctx: &Ctx<'_>, inputs: &[Option<&Tensor>]) -> Result<Tensor> {
    let x = ctx.input(inputs, 0)?;
    let v = x.as_f32(&format!("input of node {:?}", ctx.label))?;
    let keep = ctx.attr_i("keepdims").unwrap_or(1) != 0;
    let axes = axes_of(ctx, inputs, 18)?.unwrap_or_default();
    let axes = if axes.is_empty() {
        if ctx.attr_i("noop_with_empty_axes").unwrap_or(0) != 0 {
            return Ok(x.clone());
        }
        (0..x.rank()).collect()
    } else {
        ctx.axes(&axes, x.rank())?
    };
    let kept: Vec<usize> = (0..x.rank())
        .map(|k| if axes.contains(&k) { 1 } else { x.shape[k] })
        .collect();
    let ks = strides(&kept);
    let steps: Vec<i64> = (0..x.rank())
        .map(|k| if axes.contains(&k) { 0 } else { ks[k] as i64 })
        .collect();
    let dst = strided(&x.shape, 0, &steps)?;
    let mut acc = vec![0f64; numel(&kept, "ReduceMean output")?];
    for (&d, &f) in dst.iter().zip(v) {
        acc[d] += f64::from(f);
    }
    let count: usize = axes.iter().map(|&k| x.shape[k]).product();
    let data = acc.iter().map(|&s| (s / count as f64) as f32).collect();
    let out = if keep {
        kept
    } else {
        (0..x.rank())
            .filter(|k| !axes.contains(k))
            .map(|k| x.shape[k])
            .collect()
    };
    Tensor::f32(out, data)
}
