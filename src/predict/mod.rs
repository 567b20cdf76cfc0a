//! Whole models as users save them: a Keras `.keras`/`.h5` file or an `.onnx` graph, run end to
//! end (the GRU layers and the heads after them) on the reference, CPU or GPU path.

pub mod onnx;

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
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> crate::Result<Self> {
        let n = shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .ok_or_else(|| crate::Error::Overflow(format!("array of shape {shape:?}")))?;
        if n != data.len() {
            return Err(crate::Error::shape(
                "array",
                format!("{shape:?} ({n} elements)"),
                format!("{} elements", data.len()),
            ));
        }
        Ok(Array { shape, data })
    }
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
