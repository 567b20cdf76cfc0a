//! The bytes of an ONNX tensor: `raw_data`, or external data beside the model file (shared by
//! the GRU reader and the graph evaluator, below both).

use std::path::{Component, Path};

pub(crate) use super::onnx_proto::{AttributeProto, NodeProto, TensorProto};
use crate::error::{Error, Result};

/// Largest external data file region read, in bytes (the tensors of one GRU are far smaller).
const MAX_EXTERNAL_BYTES: u64 = 1 << 32;

/// The bytes of `t`'s `raw_data` or of its external data in `dir` (`None`: the typed fields hold
/// the values): `n` elements of `size` bytes. `model` names the file in errors.
pub(crate) fn tensor_bytes(
    t: &TensorProto,
    what: &str,
    n: usize,
    size: usize,
    model: &str,
    dir: Option<&Path>,
) -> Result<Option<Vec<u8>>> {
    let perr = |reason: String| Error::Parse {
        what: model.to_string(),
        reason,
    };
    let want = n
        .checked_mul(size)
        .ok_or_else(|| Error::Overflow(format!("{what} in {}", model)))?;
    if t.data_location == Some(1) {
        let get = |k: &str| {
            t.external_data
                .iter()
                .find(|e| e.key.as_deref() == Some(k))
                .and_then(|e| e.value.clone())
        };
        let loc = get("location")
            .ok_or_else(|| perr(format!("tensor {what}: external data without a location")))?;
        let rel = Path::new(&loc);
        if rel.is_absolute() || rel.components().any(|c| !matches!(c, Component::Normal(_))) {
            return Err(perr(format!(
                "tensor {what}: external data location {loc:?} is not a plain relative path"
            )));
        }
        let dir = dir.ok_or_else(|| {
            perr(format!(
                "tensor {what}: external data, but the model has no folder"
            ))
        })?;
        let num = |k: &str| -> Result<u64> {
            get(k).map_or(Ok(0), |v| {
                v.parse::<u64>()
                    .map_err(|_| perr(format!("tensor {what}: external {k} {v:?}")))
            })
        };
        let offset = num("offset")?;
        let length = match get("length") {
            Some(_) => num("length")?,
            None => want as u64,
        };
        if length != want as u64 || length > MAX_EXTERNAL_BYTES {
            return Err(perr(format!(
                "tensor {what}: external data of {length} bytes for {n} elements of {size} bytes"
            )));
        }
        use std::io::{Read, Seek, SeekFrom};
        let path = dir.join(rel);
        let io = |source| Error::Io {
            path: path.display().to_string(),
            source,
        };
        let mut f = std::fs::File::open(&path).map_err(io)?;
        let file_len = f.metadata().map_err(io)?.len();
        if offset.checked_add(length).is_none_or(|end| end > file_len) {
            return Err(perr(format!(
                "tensor {what}: external data [{offset}, +{length}) runs past the end of {} ({file_len} bytes)",
                path.display()
            )));
        }
        f.seek(SeekFrom::Start(offset)).map_err(io)?;
        let mut buf = vec![0u8; want];
        f.read_exact(&mut buf).map_err(io)?;
        return Ok(Some(buf));
    }
    match &t.raw_data {
        Some(raw) if !raw.is_empty() || n == 0 => {
            if raw.len() != want {
                return Err(perr(format!(
                    "tensor {what}: raw_data of {} bytes for {n} elements of {size} bytes",
                    raw.len()
                )));
            }
            Ok(Some(raw.clone()))
        }
        _ => Ok(None),
    }
}
