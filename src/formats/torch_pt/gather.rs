//! Copying a tensor's elements out of its storage: a strided view, bounds-checked, converted
//! to `f32`.

use super::archive::Archive;
use super::pickle::{StorageType, TensorRef};
use super::{MAX_OUTPUT_ELEMENTS, MAX_REPEAT_ELEMENTS, parse_err};
use crate::error::{Error, Result};

/// The elements of `t` (called `full`), in row-major order, as f32.
pub(super) fn gather(
    t: &TensorRef,
    archive: &mut Archive<'_>,
    full: &str,
    total: &mut u64,
) -> Result<Vec<f32>> {
    let name = archive.name;
    let dtype = t.storage.dtype;
    let Some(elem) = dtype.elem_size() else {
        return Err(Error::UnsupportedDtype {
            name: format!("{full} in {name}"),
            dtype: format!(
                "torch.{} (expected FloatStorage, HalfStorage, BFloat16Storage or DoubleStorage)",
                dtype.class()
            ),
        });
    };
    let overflow = || Error::Overflow(format!("the size of tensor {full} in {name}"));
    let n = t
        .size
        .iter()
        .try_fold(1u64, |a, &d| a.checked_mul(d))
        .ok_or_else(overflow)?;
    *total = total.checked_add(n).ok_or_else(overflow)?;
    if *total > MAX_OUTPUT_ELEMENTS {
        return Err(parse_err(
            name,
            format!("the GRU tensors have more than {MAX_OUTPUT_ELEMENTS} elements"),
        ));
    }
    let numel = t.storage.numel;
    let storage_bytes = numel.checked_mul(elem).ok_or_else(|| {
        Error::Overflow(format!("the size of storage {} in {name}", t.storage.key))
    })?;
    if n == 0 {
        return Ok(Vec::new());
    }
    // The last element read; every other index is smaller.
    let mut last = t.offset;
    for (&d, &s) in t.size.iter().zip(&t.stride) {
        last = (d - 1)
            .checked_mul(s)
            .and_then(|x| x.checked_add(last))
            .ok_or_else(overflow)?;
    }
    if last >= numel {
        return Err(parse_err(
            name,
            format!(
                "tensor {full} reads element {last} of storage {}, which has {numel}",
                t.storage.key
            ),
        ));
    }
    if n > numel.saturating_add(MAX_REPEAT_ELEMENTS) {
        return Err(parse_err(
            name,
            format!("tensor {full} repeats its storage's {numel} elements into {n} (stride 0)"),
        ));
    }
    let data = archive.storage(&t.storage.key, storage_bytes)?;
    let be = archive.big_endian;
    let elem = elem as usize;
    let load = |i: u64| -> Option<f32> {
        let at = usize::try_from(i).ok()?.checked_mul(elem)?;
        let b = data.get(at..at.checked_add(elem)?)?;
        Some(match (dtype, be) {
            (StorageType::F32, false) => f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            (StorageType::F32, true) => f32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            (StorageType::F16, false) => half::f16::from_le_bytes([b[0], b[1]]).to_f32(),
            (StorageType::F16, true) => half::f16::from_be_bytes([b[0], b[1]]).to_f32(),
            (StorageType::BF16, false) => half::bf16::from_le_bytes([b[0], b[1]]).to_f32(),
            (StorageType::BF16, true) => half::bf16::from_be_bytes([b[0], b[1]]).to_f32(),
            (StorageType::F64, big) => {
                let a = [b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]];
                (if big {
                    f64::from_be_bytes(a)
                } else {
                    f64::from_le_bytes(a)
                }) as f32
            }
            (StorageType::Other(_), _) => return None,
        })
    };
    let bad = || parse_err(name, format!("tensor {full}: element outside its storage"));
    // `n` ≤ numel + MAX_REPEAT_ELEMENTS, and the storage's bytes were read: a bounded allocation.
    let mut out = Vec::with_capacity(n as usize);
    let rank = t.size.len();
    if rank == 0 {
        out.push(load(t.offset).ok_or_else(bad)?);
        return Ok(out);
    }
    let inner = rank - 1;
    let (len, step) = (t.size[inner], t.stride[inner]);
    let mut idx = vec![0u64; inner];
    loop {
        // Every index is at most `last`, which did not overflow.
        let base = t.offset + idx.iter().zip(&t.stride).map(|(i, s)| i * s).sum::<u64>();
        for j in 0..len {
            out.push(load(base + j * step).ok_or_else(bad)?);
        }
        let mut k = inner;
        loop {
            if k == 0 {
                return Ok(out);
            }
            k -= 1;
            idx[k] += 1;
            if idx[k] < t.size[k] {
                break;
            }
            idx[k] = 0;
        }
    }
}
