//! Reading tensors out of a safetensors file, converting floats to `f32`.

use std::collections::BTreeMap;
use std::path::Path;

use safetensors::{Dtype, SafeTensors};

use crate::error::{Error, Result};

/// A shape as every error message writes it: `[2, 3]`.
#[doc(hidden)]
pub fn shape_str(shape: &[usize]) -> String {
    let parts: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("[{}]", parts.join(", "))
}

/// A tensor converted to `f32`: its shape and its row-major data.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// Shape, outermost axis first.
    pub shape: Vec<usize>,
    /// `shape.iter().product()` elements, row-major.
    pub data: Vec<f32>,
}

/// A safetensors file held in memory, with typed accessors.
///
/// Every error names the file (`name`) and the tensor.
#[derive(Debug, Clone)]
pub struct SafetensorsFile {
    name: String,
    bytes: Vec<u8>,
}

fn st_err(what: &str, e: safetensors::SafeTensorError) -> Error {
    Error::Parse {
        what: what.to_string(),
        reason: format!("not a valid safetensors file: {e}"),
    }
}

impl SafetensorsFile {
    /// Reads and validates the file at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_bytes(bytes, path.display().to_string())
    }

    /// Wraps and validates the bytes of a safetensors file; `name` is used in errors.
    pub fn from_bytes(bytes: Vec<u8>, name: impl Into<String>) -> Result<Self> {
        let f = SafetensorsFile {
            name: name.into(),
            bytes,
        };
        f.st()?;
        Ok(f)
    }

    /// The tensors whose names start with `prefix`, under the rest of their names (a full
    /// `state_dict` read as the module at `prefix`: `gru.weight_ih_l0` ⇒ `weight_ih_l0`), as a
    /// new in-memory file; dtypes and bytes are kept, the metadata is not. An error lists a few
    /// names when none starts with `prefix`.
    pub fn select_prefix(&self, prefix: &str) -> Result<Self> {
        let st = self.st()?;
        let mut kept = Vec::new();
        for name in self.names()? {
            if let Some(short) = name.strip_prefix(prefix).filter(|s| !s.is_empty()) {
                let view = st.tensor(&name).map_err(|e| st_err(&self.name, e))?;
                kept.push((short.to_string(), view));
            }
        }
        if kept.is_empty() {
            let names = self.names()?;
            let mut shown: Vec<&str> = names.iter().map(String::as_str).take(12).collect();
            if names.len() > 12 {
                shown.push("…");
            }
            return Err(Error::UnknownLayout(format!(
                "no tensor of {} starts with the prefix {prefix:?}; its tensors are [{}]",
                self.name,
                shown.join(", ")
            )));
        }
        let bytes = safetensors::serialize(kept, None).map_err(|e| st_err(&self.name, e))?;
        SafetensorsFile::from_bytes(bytes, format!("{} (prefix {prefix:?})", self.name))
    }

    /// The name used in errors (the path, for [`SafetensorsFile::open`]).
    pub fn name(&self) -> &str {
        &self.name
    }

    fn st(&self) -> Result<SafeTensors<'_>> {
        SafeTensors::deserialize(&self.bytes).map_err(|e| st_err(&self.name, e))
    }

    /// All tensor names, sorted.
    pub fn names(&self) -> Result<Vec<String>> {
        let mut v: Vec<String> = self.st()?.names().into_iter().map(String::from).collect();
        v.sort();
        Ok(v)
    }

    /// Whether a tensor called `name` exists.
    pub fn contains(&self, name: &str) -> bool {
        self.st().map(|s| s.tensor(name).is_ok()).unwrap_or(false)
    }

    /// The file's `__metadata__` string map (empty when absent).
    pub fn metadata(&self) -> Result<BTreeMap<String, String>> {
        let (_, meta) =
            SafeTensors::read_metadata(&self.bytes).map_err(|e| st_err(&self.name, e))?;
        Ok(meta
            .metadata()
            .as_ref()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default())
    }

    /// The shape of tensor `name`, or `None` if there is no such tensor.
    pub fn shape(&self, name: &str) -> Result<Option<Vec<usize>>> {
        Ok(self.st()?.tensor(name).ok().map(|t| t.shape().to_vec()))
    }

    /// Tensor `name` converted to `f32` from F32, F16, BF16 or F64; `Ok(None)` if absent.
    pub fn get_f32(&self, name: &str) -> Result<Option<Tensor>> {
        let st = self.st()?;
        let Ok(view) = st.tensor(name) else {
            return Ok(None);
        };
        let b = view.data();
        let data: Vec<f32> = match view.dtype() {
            Dtype::F32 => b
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            Dtype::F16 => b
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            Dtype::BF16 => b
                .chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            Dtype::F64 => b
                .chunks_exact(8)
                .map(|c| {
                    f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32
                })
                .collect(),
            other => {
                return Err(Error::UnsupportedDtype {
                    name: format!("{} in {}", name, self.name),
                    dtype: format!("{other:?} (expected F32, F16, BF16 or F64)"),
                });
            }
        };
        Ok(Some(Tensor {
            shape: view.shape().to_vec(),
            data,
        }))
    }

    /// Tensor `name` as `f32`; [`Error::MissingTensor`] if absent. `layout` names the weight
    /// layout being read, for the error.
    pub fn require_f32(&self, name: &str, layout: &str) -> Result<Tensor> {
        self.get_f32(name)?.ok_or_else(|| Error::MissingTensor {
            name: name.to_string(),
            context: format!("{layout} layout in {}", self.name),
        })
    }

    /// Integer tensor `name` (I32, I64, U32, U64, I16, U16, I8, U8) as lengths; negative values
    /// are refused. `Ok(None)` if absent.
    pub fn get_lengths(&self, name: &str) -> Result<Option<(Vec<usize>, Vec<usize>)>> {
        let st = self.st()?;
        let Ok(view) = st.tensor(name) else {
            return Ok(None);
        };
        let b = view.data();
        let vals: Vec<i128> = match view.dtype() {
            Dtype::I64 => b
                .chunks_exact(8)
                .map(|c| {
                    i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as i128
                })
                .collect(),
            Dtype::U64 => b
                .chunks_exact(8)
                .map(|c| {
                    u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as i128
                })
                .collect(),
            Dtype::I32 => b
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i128)
                .collect(),
            Dtype::U32 => b
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i128)
                .collect(),
            Dtype::I16 => b
                .chunks_exact(2)
                .map(|c| i16::from_le_bytes([c[0], c[1]]) as i128)
                .collect(),
            Dtype::U16 => b
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]) as i128)
                .collect(),
            Dtype::I8 => b.iter().map(|&v| v as i8 as i128).collect(),
            Dtype::U8 => b.iter().map(|&v| v as i128).collect(),
            other => {
                return Err(Error::UnsupportedDtype {
                    name: format!("{} in {}", name, self.name),
                    dtype: format!("{other:?} (expected an integer type)"),
                });
            }
        };
        let lens = vals
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                usize::try_from(v).map_err(|_| {
                    Error::arg(
                        format!("{name} in {}", self.name),
                        format!("{name}[{i}] = {v} is not a valid length"),
                    )
                })
            })
            .collect::<Result<Vec<usize>>>()?;
        Ok(Some((view.shape().to_vec(), lens)))
    }
}

/// `k·h` as text for error messages, without overflowing when `h` comes from an absurd declared
/// shape (a zero-element tensor can declare any other dimension).
pub(crate) fn times(k: usize, h: usize) -> String {
    h.checked_mul(k)
        .map_or_else(|| format!("{k}·{h}"), |v| v.to_string())
}

/// Checks that `t` (called `name`) has shape `expected`.
pub(crate) fn check_shape(name: &str, file: &str, t: &Tensor, expected: &[usize]) -> Result<()> {
    if t.shape != expected {
        return Err(Error::shape(
            format!("{name} in {file}"),
            shape_str(expected),
            shape_str(&t.shape),
        ));
    }
    Ok(())
}

/// Checks that `t` (called `name`) has `rank` dimensions, naming `pattern` (e.g. `[3H, I]`).
pub(crate) fn check_rank(
    name: &str,
    file: &str,
    t: &Tensor,
    rank: usize,
    pattern: &str,
) -> Result<()> {
    if t.shape.len() != rank {
        return Err(Error::shape(
            format!("{name} in {file}"),
            pattern,
            shape_str(&t.shape),
        ));
    }
    Ok(())
}
