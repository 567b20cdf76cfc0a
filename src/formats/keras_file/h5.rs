//! The HDF5 side: a Keras weights file read with `hdf5-pure`, by fixed paths only (no walk of
//! the object graph, so a file whose links form a cycle cannot make a lookup loop), with every
//! dataset's declared size checked against the bytes there are before it is read.

use std::cell::Cell;

use hdf5_pure::{AttrValue, DType, File};

use super::archive::parse_err;
use crate::error::{Error, Result};

/// Most dimensions a weight may have.
const MAX_RANK: usize = 8;
/// A chunked (possibly compressed) dataset may hold at most this many times the file's size
/// (plus [`CHUNKED_SLACK`]) once read.
const CHUNKED_RATIO: u64 = 32;
/// Added to the chunked bound.
const CHUNKED_SLACK: u64 = 16 << 20;
/// Most bytes of weights read out of one file in all.
const MAX_TOTAL_BYTES: u64 = 2 << 30;

/// The HDF5 signature.
const SIGNATURE: &[u8; 8] = b"\x89HDF\r\n\x1a\n";

/// Whether `bytes` has the HDF5 signature at 0 or at 512, 1024, 2048, … (a user block).
pub(super) fn is_hdf5(bytes: &[u8]) -> bool {
    let mut at = 0usize;
    loop {
        match bytes.get(at..at.saturating_add(8)) {
            Some(s) if s == SIGNATURE => return true,
            Some(_) => {}
            None => return false,
        }
        at = if at == 0 { 512 } else { at.saturating_mul(2) };
        if at == usize::MAX {
            return false;
        }
    }
}

/// A weight read as `f32`.
#[derive(Debug, Clone)]
pub(super) struct Weight {
    /// The path it was read from (for messages).
    pub path: String,
    /// Shape, outermost axis first.
    pub shape: Vec<usize>,
    /// Row-major data.
    pub data: Vec<f32>,
}

/// An open HDF5 file and the bytes read from it so far.
pub(super) struct H5 {
    file: File,
    len: u64,
    name: String,
    read_total: Cell<u64>,
}

fn h5_err(name: &str, what: &str, e: hdf5_pure::Error) -> Error {
    // One line: the crate's messages may span several.
    let msg = e.to_string().replace('\n', " ");
    parse_err(name, format!("{what}: {msg}"))
}

impl H5 {
    /// Parses `bytes` as HDF5; `name` is for messages.
    pub fn open(bytes: Vec<u8>, name: &str) -> Result<Self> {
        let len = bytes.len() as u64;
        let file =
            File::from_bytes(bytes).map_err(|e| h5_err(name, "not a readable HDF5 file", e))?;
        // HDF5 records where the file ends; a file cut short may still parse lazily (the layer
        // weights come first, the optimizer's state last), so refuse it here as HDF5 does.
        let eof = file.superblock().eof_address;
        if eof > len {
            return Err(parse_err(
                name,
                format!("truncated HDF5 file: {len} bytes, its superblock says {eof}"),
            ));
        }
        Ok(H5 {
            file,
            len,
            name: name.to_string(),
            read_total: Cell::new(0),
        })
    }

    /// The attributes of the group at `path` ("" or "/" for the root); `None` when there is
    /// no such group.
    fn group_attrs(
        &self,
        path: &str,
    ) -> Result<Option<std::collections::HashMap<String, AttrValue>>> {
        let group = if path.is_empty() || path == "/" {
            self.file.root()
        } else {
            match self.file.group(path) {
                Ok(g) => g,
                Err(_) => return Ok(None),
            }
        };
        group
            .attrs()
            .map(Some)
            .map_err(|e| h5_err(&self.name, &format!("attributes of {path:?}"), e))
    }

    /// A string attribute of the group at `path`: `None` when the group or attribute is absent.
    pub fn attr_string(&self, path: &str, attr: &str) -> Result<Option<String>> {
        let Some(attrs) = self.group_attrs(path)? else {
            return Ok(None);
        };
        match attrs.get(attr) {
            None => Ok(None),
            Some(v) => match v.as_str() {
                Some(s) => Ok(Some(s.to_string())),
                None => Err(parse_err(
                    &self.name,
                    format!("attribute {attr:?} of {path:?} is not a string"),
                )),
            },
        }
    }

    /// A string-array attribute of the group at `path` (an empty numeric array, as h5py
    /// writes for an empty list, reads as empty): `None` when the group or attribute is absent.
    pub fn attr_strings(&self, path: &str, attr: &str) -> Result<Option<Vec<String>>> {
        let Some(attrs) = self.group_attrs(path)? else {
            return Ok(None);
        };
        match attrs.get(attr) {
            None => Ok(None),
            Some(v) => {
                if let Some(s) = v.as_strings() {
                    return Ok(Some(s.to_vec()));
                }
                let empty = matches!(v, AttrValue::F64Array(a) if a.is_empty())
                    || matches!(v, AttrValue::F32Array(a) if a.is_empty())
                    || matches!(v, AttrValue::I64Array(a) if a.is_empty())
                    || matches!(v, AttrValue::I32Array(a) if a.is_empty())
                    || matches!(v, AttrValue::U8Array(a) if a.is_empty());
                if empty {
                    Ok(Some(Vec::new()))
                } else {
                    Err(parse_err(
                        &self.name,
                        format!("attribute {attr:?} of {path:?} is not a list of strings"),
                    ))
                }
            }
        }
    }

    /// Reads the float32 dataset at `path`, after checking its declared size against the bytes
    /// the file has (contiguous data must lie in the file; chunked data is held to a multiple
    /// of the file's size) and against the total read so far.
    pub fn read(&self, path: &str) -> Result<Weight> {
        let name = &self.name;
        let ds = self.file.dataset(path).map_err(|_| Error::MissingTensor {
            name: path.to_string(),
            context: format!("Keras weights in {name}"),
        })?;
        let shape64 = ds
            .shape()
            .map_err(|e| h5_err(name, &format!("shape of {path}"), e))?;
        if shape64.len() > MAX_RANK {
            return Err(parse_err(
                name,
                format!(
                    "{path} has {} dimensions, more than {MAX_RANK}",
                    shape64.len()
                ),
            ));
        }
        let mut shape = Vec::with_capacity(shape64.len());
        let mut elems: u64 = 1;
        for &d in &shape64 {
            shape.push(
                usize::try_from(d).map_err(|_| Error::Overflow(format!("the shape of {path}")))?,
            );
            elems = elems
                .checked_mul(d)
                .ok_or_else(|| Error::Overflow(format!("the size of {path}")))?;
        }
        let dtype = ds
            .dtype()
            .map_err(|e| h5_err(name, &format!("datatype of {path}"), e))?;
        if dtype != DType::F32 {
            return Err(Error::UnsupportedDtype {
                name: format!("{path} in {name}"),
                dtype: format!("{dtype:?} (Keras weights are float32)"),
            });
        }
        let bytes = elems
            .checked_mul(4)
            .ok_or_else(|| Error::Overflow(format!("the size of {path}")))?;
        let cap = if ds.is_chunked() {
            self.len
                .saturating_mul(CHUNKED_RATIO)
                .saturating_add(CHUNKED_SLACK)
        } else {
            self.len
        };
        if bytes > cap {
            return Err(parse_err(
                name,
                format!(
                    "{path} declares {bytes} bytes of data, more than the {} the file can hold",
                    cap
                ),
            ));
        }
        let total = self.read_total.get().saturating_add(bytes);
        if total > MAX_TOTAL_BYTES {
            return Err(parse_err(
                name,
                format!("the weights read would exceed {MAX_TOTAL_BYTES} bytes in all"),
            ));
        }
        self.read_total.set(total);
        let data = ds
            .read_f32()
            .map_err(|e| h5_err(name, &format!("cannot read {path}"), e))?;
        if data.len() as u64 != elems {
            return Err(Error::shape(
                format!("{path} in {name}"),
                format!("{elems} elements"),
                data.len(),
            ));
        }
        Ok(Weight {
            path: path.to_string(),
            shape,
            data,
        })
    }
}
