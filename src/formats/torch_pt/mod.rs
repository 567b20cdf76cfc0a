//! `torch.save` checkpoints (the zip format, PyTorch ≥ 1.6), read without Python and without
//! running anything: a restricted pickle machine builds only dicts, lists, tuples, scalars,
//! strings and tensor descriptors, and the GRU tensors found in them are copied out of the
//! archive's storages into an in-memory safetensors file (f32) under their `nn.GRU` names.
//!
//! What `torch.save(gru.state_dict())` writes (PyTorch 2.x, pickle protocol 2 unless
//! `pickle_protocol=` says otherwise): an archive folder `<name>/` with `data.pkl`, `byteorder`
//! (`little`), `version`, `.format_version`, `.storage_alignment`, `.data/serialization_id` and
//! one stored (uncompressed, 64-byte aligned) entry `data/<key>` per storage. `data.pkl` is
//!
//! ```text
//! collections.OrderedDict()                        # the state_dict, then its `_metadata` by BUILD
//! 'weight_ih_l0': torch._utils._rebuild_tensor_v2(
//!     BINPERSID ('storage', torch.FloatStorage, '0', 'cpu', 36),   # key, location, numel
//!     0, (12, 3), (3, 1), False, collections.OrderedDict())         # offset, size, stride, …
//! ```
//!
//! with `torch.HalfStorage`, `torch.BFloat16Storage`, `torch.DoubleStorage` for the other float
//! types, `torch._utils._rebuild_parameter(tensor, requires_grad, hooks)` around `nn.Parameter`s
//! saved directly, and GLOBAL (protocol 2) or STACK_GLOBAL (protocol ≥ 4) to name them.
//!
//! The only globals allowed are `collections.OrderedDict`, `torch._utils._rebuild_tensor_v2`,
//! `torch._utils._rebuild_parameter`, `torch._utils._rebuild_parameter_with_state` and the
//! `torch.<Type>Storage` dtype markers (the float ones are read; the others, such as the
//! `LongStorage` of a BatchNorm's `num_batches_tracked`, may sit elsewhere in the checkpoint but
//! are refused as GRU weights). None of them is ever called: they only tell the machine which
//! descriptor to build. Any other global is refused by name; a pickled class (a whole model
//! saved with `torch.save(model)`) is refused with a hint to save `model.state_dict()`.
//!
//! Limits: `data.pkl` at most 64 MiB; at most 4 GiB of entries read in all (declared sizes are
//! checked before reading, and no entry is read past its declared size); at most 2^20 stack
//! entries, 2^20 memo entries, 2^23 values, tuple and dict nesting 64 deep, tensor rank 32,
//! 2^30 output elements, and a strided view may repeat storage elements (stride 0) only up to
//! 2^20 elements beyond its storage's size. Every string and byte length is checked against the
//! bytes that remain, and every element index against its storage with checked arithmetic.

mod archive;
mod gather;
mod pickle;
mod select;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashSet};
use std::rc::Rc;

use safetensors::Dtype;
use safetensors::tensor::TensorView;

use super::tensors::SafetensorsFile;
use crate::error::{Error, Result};
use archive::Archive;
use gather::gather;
use pickle::{TensorRef, Value, Vm};
use select::{choose, collect};

pub(crate) use select::gru_prefix;

const MAX_PICKLE_BYTES: u64 = 64 << 20;
const MAX_TOTAL_BYTES: u64 = 4 << 30;
const MAX_STACK: usize = 1 << 20;
const MAX_MEMO: usize = 1 << 20;
const MAX_OBJECTS: usize = 1 << 23;
const MAX_DEPTH: usize = 64;
const MAX_RANK: usize = 32;
const MAX_OUTPUT_ELEMENTS: u64 = 1 << 30;
const MAX_REPEAT_ELEMENTS: u64 = 1 << 20;
const MAX_GLOBAL_LINE: usize = 256;

/// Whether `bytes` start like a zip archive (`PK\x03\x04`).
pub fn is_zip(bytes: &[u8]) -> bool {
    bytes.starts_with(b"PK\x03\x04")
}

/// Reads a `torch.save` zip checkpoint and returns the GRU-relevant tensors as an in-memory
/// safetensors file (f32), under their `nn.GRU` names (`weight_ih_l0`, `weight_hh_l0`,
/// `bias_ih_l0`, `bias_hh_l0`, …, `…_reverse`), with the module prefix stripped.
///
/// The tensors are looked for in the top-level dict and in nested dicts (`{"model": …}`; the
/// keys are then joined with `.`). `prefix` chooses the module when several are present (e.g.
/// `"encoder.gru."`; the trailing dot may be left out, and a prefix that ends a longer one, such
/// as `gru.` for `model.gru.`, is accepted when only one matches). With `None`, the only module
/// with `nn.GRU` tensor names is taken; when several have them, the one whose `weight_hh_l0` is
/// `[3H, H]` (a GRU rather than an LSTM or RNN), and if that is still ambiguous the error lists
/// the prefixes. `name` names the file in errors.
pub fn read_checkpoint(bytes: &[u8], name: &str, prefix: Option<&str>) -> Result<SafetensorsFile> {
    if !is_zip(bytes) {
        return Err(if bytes.starts_with(b"\x80") {
            Error::Unsupported(format!(
                "{name} is a legacy torch.save file (written before PyTorch 1.6 or with \
                 _use_new_zipfile_serialization=False); re-save it with torch.save in a current \
                 PyTorch"
            ))
        } else {
            parse_err(
                name,
                "not a torch.save checkpoint (no zip archive signature PK\\x03\\x04)",
            )
        });
    }
    let mut archive = Archive::open(bytes, name)?;
    let pkl = archive.read(&format!("{}/data.pkl", archive.dir), MAX_PICKLE_BYTES, None)?;
    let found = pickled_tensors(&pkl, name)?;
    let (prefix, group) = choose(found, prefix, name)?;

    let mut out: BTreeMap<String, (Vec<usize>, Vec<u8>)> = BTreeMap::new();
    let mut total: u64 = 0;
    for (short, t) in group {
        let full = format!("{prefix}{short}");
        let data = gather(&t, &mut archive, &full, &mut total)?;
        let shape = t
            .size
            .iter()
            .map(|&d| usize::try_from(d).map_err(|_| Error::Overflow(format!("shape of {full}"))))
            .collect::<Result<Vec<usize>>>()?;
        let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        if out.insert(short.clone(), (shape, bytes)).is_some() {
            return Err(parse_err(name, format!("two tensors are named {full}")));
        }
    }
    let views = out
        .iter()
        .map(|(n, (shape, b))| {
            TensorView::new(Dtype::F32, shape.clone(), b)
                .map(|v| (n.as_str(), v))
                .map_err(|e| parse_err(name, format!("tensor {n}: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let st = safetensors::serialize(views, None)
        .map_err(|e| parse_err(name, format!("cannot build the tensors: {e}")))?;
    SafetensorsFile::from_bytes(st, name)
}

/// Runs the pickle machine on `data.pkl`'s bytes: every tensor descriptor reachable from the
/// root dict, under its dotted name.
fn pickled_tensors(pkl: &[u8], name: &str) -> Result<Vec<(String, Rc<TensorRef>)>> {
    let mut vm = Vm::new(pkl, name);
    let root = vm.run()?;
    let Value::Dict(root) = root else {
        return Err(parse_err(
            name,
            format!(
                "the checkpoint holds a {}, not a state_dict (a dict of tensors)",
                root.kind()
            ),
        ));
    };
    let mut found = Vec::new();
    let mut seen = HashSet::new();
    collect(&vm.arena, root, "", 0, &mut found, &mut seen);
    Ok(found)
}

/// A tensor descriptor the pickle machine built: where its elements sit in its storage.
#[doc(hidden)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PickledTensor {
    /// The dotted name (`gru.weight_ih_l0`).
    pub name: String,
    /// The storage's key (its entry `data/<key>`).
    pub storage: String,
    /// Elements the storage declares.
    pub numel: u64,
    /// Offset of the first element, in elements.
    pub offset: u64,
    /// Size, outermost axis first (at most 32 axes).
    pub size: Vec<u64>,
    /// Stride of each axis, in elements (as many as `size`).
    pub stride: Vec<u64>,
}

/// The pickle machine alone, for the fuzzer: runs a `data.pkl` and lists the tensors of the
/// state_dict it builds, without reading any storage. `name` names the file in errors.
#[doc(hidden)]
pub fn pickle_tensors(pkl: &[u8], name: &str) -> Result<Vec<PickledTensor>> {
    Ok(pickled_tensors(pkl, name)?
        .into_iter()
        .map(|(name, t)| PickledTensor {
            name,
            storage: t.storage.key.to_string(),
            numel: t.storage.numel,
            offset: t.offset,
            size: t.size.clone(),
            stride: t.stride.clone(),
        })
        .collect())
}

fn parse_err(name: &str, reason: impl Into<String>) -> Error {
    Error::Parse {
        what: name.to_string(),
        reason: reason.into(),
    }
}
