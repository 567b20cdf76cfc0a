//! The evaluator's tensors: f32, i64 or bool values, row-major, and how an ONNX `TensorProto`
//! becomes one (also used by [`crate::formats::onnx_model`]).

use std::path::Path;

use crate::error::{Error, Result};
use crate::formats::onnx_data::{TensorProto, tensor_bytes};

/// The most elements one tensor may hold (2^30: 4 GiB of f32); larger shapes are refused before
/// anything is allocated.
pub(crate) const MAX_ELEMENTS: usize = 1 << 30;

/// A tensor's values.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Data {
    /// Every float type (float16, bfloat16 and double are held as f32).
    F32(Vec<f32>),
    /// Every integer type.
    I64(Vec<i64>),
    /// Booleans.
    Bool(Vec<bool>),
}

impl Data {
    pub(crate) fn len(&self) -> usize {
        match self {
            Data::F32(v) => v.len(),
            Data::I64(v) => v.len(),
            Data::Bool(v) => v.len(),
        }
    }

    pub(crate) fn dtype(&self) -> &'static str {
        match self {
            Data::F32(_) => "float",
            Data::I64(_) => "int64",
            Data::Bool(_) => "bool",
        }
    }

    /// The elements at `idx`, in that order.
    pub(crate) fn take(&self, idx: &[usize]) -> Result<Data> {
        fn pick<T: Copy>(v: &[T], idx: &[usize]) -> Result<Vec<T>> {
            idx.iter()
                .map(|&i| {
                    v.get(i).copied().ok_or_else(|| {
                        Error::arg("tensor index", format!("{i} is out of range ({})", v.len()))
                    })
                })
                .collect()
        }
        Ok(match self {
            Data::F32(v) => Data::F32(pick(v, idx)?),
            Data::I64(v) => Data::I64(pick(v, idx)?),
            Data::Bool(v) => Data::Bool(pick(v, idx)?),
        })
    }

    /// An empty value of the same type, with room for `n`.
    pub(crate) fn empty_like(&self, n: usize) -> Data {
        match self {
            Data::F32(_) => Data::F32(Vec::with_capacity(n)),
            Data::I64(_) => Data::I64(Vec::with_capacity(n)),
            Data::Bool(_) => Data::Bool(Vec::with_capacity(n)),
        }
    }

    /// Appends `other[range]` (same type) to `self`.
    pub(crate) fn extend_from(
        &mut self,
        other: &Data,
        range: std::ops::Range<usize>,
    ) -> Result<()> {
        let bad = || Error::arg("tensor", "mixed element types or a range out of bounds");
        match (self, other) {
            (Data::F32(a), Data::F32(b)) => a.extend_from_slice(b.get(range).ok_or_else(bad)?),
            (Data::I64(a), Data::I64(b)) => a.extend_from_slice(b.get(range).ok_or_else(bad)?),
            (Data::Bool(a), Data::Bool(b)) => a.extend_from_slice(b.get(range).ok_or_else(bad)?),
            _ => return Err(bad()),
        }
        Ok(())
    }
}

/// A dense tensor.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Tensor {
    /// Dimensions, outermost first (empty for a scalar).
    pub shape: Vec<usize>,
    /// `shape.iter().product()` values.
    pub data: Data,
}

/// The number of elements of `shape`, refused past [`MAX_ELEMENTS`] or on overflow.
pub(crate) fn numel(shape: &[usize], what: &str) -> Result<usize> {
    let n = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| Error::Overflow(format!("{what} of shape {shape:?}")))?;
    if n > MAX_ELEMENTS {
        return Err(Error::Overflow(format!(
            "{what} of shape {shape:?}: {n} elements (at most {MAX_ELEMENTS})"
        )));
    }
    Ok(n)
}

impl Tensor {
    /// A tensor of `shape` over `data`; the sizes must agree.
    pub(crate) fn new(shape: Vec<usize>, data: Data) -> Result<Self> {
        let n = numel(&shape, "tensor")?;
        if n != data.len() {
            return Err(Error::shape(
                "tensor",
                format!("{shape:?} ({n} elements)"),
                format!("{} elements", data.len()),
            ));
        }
        Ok(Tensor { shape, data })
    }

    pub(crate) fn f32(shape: Vec<usize>, v: Vec<f32>) -> Result<Self> {
        Tensor::new(shape, Data::F32(v))
    }

    pub(crate) fn i64(shape: Vec<usize>, v: Vec<i64>) -> Result<Self> {
        Tensor::new(shape, Data::I64(v))
    }

    pub(crate) fn len(&self) -> usize {
        self.data.len()
    }

    pub(crate) fn rank(&self) -> usize {
        self.shape.len()
    }

    /// The f32 values (`what` names the tensor in the error if it holds another type).
    pub(crate) fn as_f32(&self, what: &str) -> Result<&[f32]> {
        match &self.data {
            Data::F32(v) => Ok(v),
            d => Err(Error::arg(
                what.to_string(),
                format!("expected a float tensor, got {}", d.dtype()),
            )),
        }
    }

    /// The integer values (`what` names the tensor in the error if it holds another type).
    pub(crate) fn as_i64(&self, what: &str) -> Result<&[i64]> {
        match &self.data {
            Data::I64(v) => Ok(v),
            d => Err(Error::arg(
                what.to_string(),
                format!("expected an integer tensor, got {}", d.dtype()),
            )),
        }
    }

    /// Every value as f32 (integers converted, booleans 0 or 1).
    pub(crate) fn to_f32_vec(&self) -> Vec<f32> {
        match &self.data {
            Data::F32(v) => v.clone(),
            Data::I64(v) => v.iter().map(|&x| x as f32).collect(),
            Data::Bool(v) => v.iter().map(|&x| f32::from(u8::from(x))).collect(),
        }
    }

    /// Whether every value is zero.
    pub(crate) fn all_zero(&self) -> bool {
        match &self.data {
            Data::F32(v) => v.iter().all(|&x| x == 0.0),
            Data::I64(v) => v.iter().all(|&x| x == 0),
            Data::Bool(v) => v.iter().all(|&x| !x),
        }
    }
}

/// Bytes per element of ONNX `data_type` in `raw_data`, and what it becomes.
fn element(dt: i32) -> Option<(usize, &'static str)> {
    Some(match dt {
        1 => (4, "f32"),
        2 => (1, "u8"),
        3 => (1, "i8"),
        4 => (2, "u16"),
        5 => (2, "i16"),
        6 => (4, "i32"),
        7 => (8, "i64"),
        9 => (1, "bool"),
        10 => (2, "f16"),
        11 => (8, "f64"),
        12 => (4, "u32"),
        13 => (8, "u64"),
        16 => (2, "bf16"),
        _ => return None,
    })
}

/// Decodes `t`: `raw_data`, the typed fields or external data beside the model (in `dir`).
/// `model` and `what` name the file and the tensor in errors.
pub(crate) fn decode(
    t: &TensorProto,
    dir: Option<&Path>,
    model: &str,
    what: &str,
) -> Result<Tensor> {
    let perr = |reason: String| Error::Parse {
        what: model.to_string(),
        reason,
    };
    let shape = t
        .dims
        .iter()
        .map(|&d| {
            usize::try_from(d)
                .map_err(|_| perr(format!("tensor {what} has a negative dimension {d}")))
        })
        .collect::<Result<Vec<usize>>>()?;
    let n = numel(&shape, &format!("tensor {what} in {model}"))?;
    let dt = t.data_type.unwrap_or(0);
    let (size, kind) = element(dt).ok_or_else(|| Error::UnsupportedDtype {
        name: format!("{what} in {model}"),
        dtype: format!("ONNX data_type {dt} (expected a float, integer or bool type)"),
    })?;
    let data = match tensor_bytes(t, what, n, size, model, dir)? {
        Some(raw) => {
            let c = raw.chunks_exact(size);
            let b = |c: &[u8], k: usize| c.get(k).copied().unwrap_or(0);
            let b2 = |c: &[u8]| [b(c, 0), b(c, 1)];
            let b4 = |c: &[u8]| [b(c, 0), b(c, 1), b(c, 2), b(c, 3)];
            let b8 = |c: &[u8]| {
                [
                    b(c, 0),
                    b(c, 1),
                    b(c, 2),
                    b(c, 3),
                    b(c, 4),
                    b(c, 5),
                    b(c, 6),
                    b(c, 7),
                ]
            };
            match kind {
                "f32" => Data::F32(c.map(|c| f32::from_le_bytes(b4(c))).collect()),
                "f16" => Data::F32(
                    c.map(|c| half::f16::from_le_bytes(b2(c)).to_f32())
                        .collect(),
                ),
                "bf16" => Data::F32(
                    c.map(|c| half::bf16::from_le_bytes(b2(c)).to_f32())
                        .collect(),
                ),
                "f64" => Data::F32(c.map(|c| f64::from_le_bytes(b8(c)) as f32).collect()),
                "u8" => Data::I64(c.map(|c| i64::from(b(c, 0))).collect()),
                "i8" => Data::I64(c.map(|c| i64::from(b(c, 0) as i8)).collect()),
                "u16" => Data::I64(c.map(|c| i64::from(u16::from_le_bytes(b2(c)))).collect()),
                "i16" => Data::I64(c.map(|c| i64::from(i16::from_le_bytes(b2(c)))).collect()),
                "i32" => Data::I64(c.map(|c| i64::from(i32::from_le_bytes(b4(c)))).collect()),
                "u32" => Data::I64(c.map(|c| i64::from(u32::from_le_bytes(b4(c)))).collect()),
                "i64" => Data::I64(c.map(|c| i64::from_le_bytes(b8(c))).collect()),
                "u64" => Data::I64(c.map(|c| u64::from_le_bytes(b8(c)) as i64).collect()),
                _ => Data::Bool(c.map(|c| b(c, 0) != 0).collect()),
            }
        }
        None => match kind {
            "f32" => Data::F32(t.float_data.clone()),
            "f64" => Data::F32(t.double_data.iter().map(|&v| v as f32).collect()),
            // float16 and bfloat16 bits in the low 16 bits of int32_data.
            "f16" => Data::F32(
                t.int32_data
                    .iter()
                    .map(|&v| half::f16::from_bits(v as u16).to_f32())
                    .collect(),
            ),
            "bf16" => Data::F32(
                t.int32_data
                    .iter()
                    .map(|&v| half::bf16::from_bits(v as u16).to_f32())
                    .collect(),
            ),
            "i64" => Data::I64(t.int64_data.clone()),
            "u32" | "u64" => Data::I64(t.uint64_data.iter().map(|&v| v as i64).collect()),
            "bool" => Data::Bool(t.int32_data.iter().map(|&v| v != 0).collect()),
            _ => Data::I64(t.int32_data.iter().map(|&v| i64::from(v)).collect()),
        },
    };
    if data.len() != n {
        return Err(perr(format!(
            "tensor {what} declares {n} elements and holds {}",
            data.len()
        )));
    }
    Ok(Tensor { shape, data })
}
