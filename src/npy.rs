//! A small, strict `.npy` reader and an atomic `.npy` writer.
//!
//! Reading accepts what numpy writes for the arrays this crate takes: format versions 1.0,
//! 2.0 and 3.0; C or Fortran order (Fortran-ordered data is transposed into C order once,
//! while reading); little- or big-endian `f2`, `f4`, `f8` (returned as `f32`), `i4`, `i8`
//! (returned as `i64`, for lengths) and `b1`/`u1` (returned as `i64`, for masks). Everything
//! else — other dtypes, truncated or over-long data, absurd shapes, size overflow — is
//! refused with a typed [`Error`], never a panic.
//!
//! Writing produces version 1.0 (2.0 for huge headers) `<f4` C-order files, through a
//! temporary file in the same directory that is renamed over the target, so a reader
//! never sees a partial file.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};

const MAGIC: &[u8; 6] = b"\x93NUMPY";
/// Largest header accepted, in bytes (numpy itself refuses more than 10 000 by default).
const MAX_HEADER: usize = 1 << 20;
/// Largest number of dimensions accepted (numpy's own limit is 64).
const MAX_DIMS: usize = 64;

/// The element types this module reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NpyDtype {
    /// IEEE half (`<f2`).
    F16,
    /// IEEE single (`<f4`).
    F32,
    /// IEEE double (`<f8`).
    F64,
    /// Signed 32-bit integer (`<i4`).
    I32,
    /// Signed 64-bit integer (`<i8`).
    I64,
    /// Unsigned byte (`|u1`).
    U8,
    /// Boolean (`|b1`), one byte of 0 or 1.
    Bool,
}

impl NpyDtype {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            NpyDtype::U8 | NpyDtype::Bool => 1,
            NpyDtype::F16 => 2,
            NpyDtype::F32 | NpyDtype::I32 => 4,
            NpyDtype::F64 | NpyDtype::I64 => 8,
        }
    }
    /// Whether this is a floating-point dtype.
    pub fn is_float(self) -> bool {
        matches!(self, NpyDtype::F16 | NpyDtype::F32 | NpyDtype::F64)
    }
    /// numpy's name for the dtype (`float32`, `int64`, …).
    pub fn name(self) -> &'static str {
        match self {
            NpyDtype::F16 => "float16",
            NpyDtype::F32 => "float32",
            NpyDtype::F64 => "float64",
            NpyDtype::I32 => "int32",
            NpyDtype::I64 => "int64",
            NpyDtype::U8 => "uint8",
            NpyDtype::Bool => "bool",
        }
    }
}

/// The elements of an array: floats widened or narrowed to `f32`, integers widened to `i64`.
#[derive(Debug, Clone, PartialEq)]
pub enum NpyData {
    /// Data of a float dtype (`f2`, `f4`, `f8`), converted to `f32`.
    Float(Vec<f32>),
    /// Data of an integer or boolean dtype (`i4`, `i8`, `u1`, `b1`), converted to `i64`.
    Int(Vec<i64>),
}

/// An array read from a `.npy` file: its dtype as stored, its shape (C order) and its data
/// (`shape.iter().product()` elements, row-major).
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray {
    /// The dtype found in the file.
    pub dtype: NpyDtype,
    /// The shape, outermost axis first; `[]` for a scalar.
    pub shape: Vec<usize>,
    /// The elements, row-major.
    pub data: NpyData,
}

impl NpyArray {
    /// The data as `f32`; refuses integer arrays. `what` names the array in errors.
    pub fn into_f32(self, what: &str) -> Result<Vec<f32>> {
        match self.data {
            NpyData::Float(v) => Ok(v),
            NpyData::Int(_) => Err(Error::UnsupportedDtype {
                name: what.to_string(),
                dtype: format!(
                    "{} (expected float16, float32 or float64)",
                    self.dtype.name()
                ),
            }),
        }
    }

    /// The data as non-negative lengths; refuses float arrays, negative values and values
    /// that do not fit `usize`. `what` names the array in errors.
    pub fn into_lengths(self, what: &str) -> Result<Vec<usize>> {
        match self.data {
            NpyData::Int(v) => v
                .iter()
                .enumerate()
                .map(|(i, &x)| {
                    usize::try_from(x).map_err(|_| {
                        Error::arg(what, format!("{what}[{i}] = {x} is not a valid length"))
                    })
                })
                .collect(),
            NpyData::Float(_) => Err(Error::UnsupportedDtype {
                name: what.to_string(),
                dtype: format!("{} (expected int32 or int64)", self.dtype.name()),
            }),
        }
    }

    /// The data as a mask (nonzero means valid); takes bool, uint8, int32 and int64 arrays
    /// and refuses float arrays. `what` names the array in errors.
    pub fn into_mask(self, what: &str) -> Result<Vec<bool>> {
        match self.data {
            NpyData::Int(v) => Ok(v.iter().map(|&x| x != 0).collect()),
            NpyData::Float(_) => Err(Error::UnsupportedDtype {
                name: what.to_string(),
                dtype: format!(
                    "{} (expected bool, uint8, int32 or int64)",
                    self.dtype.name()
                ),
            }),
        }
    }
}

/// Formats a shape the way errors print it: `[3, 4, 5]` (the formats' own helper).
pub use crate::formats::shape_str;

/// Reads a `.npy` file. Errors name `path`.
pub fn read(path: impl AsRef<Path>) -> Result<NpyArray> {
    let path = path.as_ref();
    let bytes = fs::read(path).map_err(|source| Error::Io {
        path: path.display().to_string(),
        source,
    })?;
    parse(&bytes, &path.display().to_string())
}

/// Reads a float `.npy` file (`f2`/`f4`/`f8`) as `(shape, f32 data)`.
pub fn read_f32(path: impl AsRef<Path>) -> Result<(Vec<usize>, Vec<f32>)> {
    let path = path.as_ref();
    let a = read(path)?;
    let shape = a.shape.clone();
    Ok((shape, a.into_f32(&path.display().to_string())?))
}

/// Parses the bytes of a `.npy` file. `what` names the file in errors.
pub fn parse(bytes: &[u8], what: &str) -> Result<NpyArray> {
    let perr = |reason: String| Error::Parse {
        what: what.to_string(),
        reason,
    };
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err(perr("not a .npy file (bad magic string)".into()));
    }
    let (major, minor) = (bytes[6], bytes[7]);
    let (header_len, start) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10usize),
        2 | 3 => {
            let Some(b) = bytes.get(8..12) else {
                return Err(perr("truncated header length".into()));
            };
            let n = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            (
                usize::try_from(n).map_err(|_| Error::Overflow(format!("{what} header")))?,
                12usize,
            )
        }
        _ => {
            return Err(perr(format!("unsupported format version {major}.{minor}")));
        }
    };
    if header_len > MAX_HEADER {
        return Err(perr(format!(
            "header of {header_len} bytes is larger than {MAX_HEADER}"
        )));
    }
    let end = start + header_len;
    let Some(header) = bytes.get(start..end) else {
        return Err(perr(format!(
            "truncated header: needs {header_len} bytes, file has {}",
            bytes.len().saturating_sub(start)
        )));
    };
    let header = if major == 3 {
        std::str::from_utf8(header).map_err(|e| perr(format!("header is not UTF-8: {e}")))?
    } else {
        if !header.is_ascii() {
            return Err(perr("header is not ASCII".into()));
        }
        std::str::from_utf8(header).map_err(|e| perr(format!("header is not ASCII: {e}")))?
    };
    let h = parse_header(header).map_err(perr)?;
    let (dtype, big) = parse_descr(&h.descr).ok_or_else(|| Error::UnsupportedDtype {
        name: what.to_string(),
        dtype: format!(
            "{:?} (supported: f2, f4, f8, i4, i8 either endian, b1, u1)",
            h.descr
        ),
    })?;
    let count = h
        .shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| Error::Overflow(format!("{what} shape {}", shape_str(&h.shape))))?;
    let nbytes = count
        .checked_mul(dtype.size())
        .ok_or_else(|| Error::Overflow(format!("{what} shape {}", shape_str(&h.shape))))?;
    let data = &bytes[end..];
    if data.len() != nbytes {
        return Err(perr(format!(
            "shape {} of {} needs {nbytes} data bytes, file has {}{}",
            shape_str(&h.shape),
            dtype.name(),
            data.len(),
            if data.len() < nbytes {
                " (truncated)"
            } else {
                " (trailing bytes)"
            }
        )));
    }
    let data = match dtype {
        NpyDtype::F16 => {
            NpyData::Float(decode(data, big, |b| half::f16::from_le_bytes(b).to_f32()))
        }
        NpyDtype::F32 => NpyData::Float(decode(data, big, f32::from_le_bytes)),
        NpyDtype::F64 => NpyData::Float(decode(data, big, |b| f64::from_le_bytes(b) as f32)),
        NpyDtype::I32 => NpyData::Int(decode(data, big, |b| i32::from_le_bytes(b) as i64)),
        NpyDtype::I64 => NpyData::Int(decode(data, big, i64::from_le_bytes)),
        NpyDtype::U8 => NpyData::Int(data.iter().map(|&b| b as i64).collect()),
        // numpy reads any nonzero byte as True.
        NpyDtype::Bool => NpyData::Int(data.iter().map(|&b| (b != 0) as i64).collect()),
    };
    let data = if h.fortran_order && h.shape.len() > 1 {
        match data {
            NpyData::Float(v) => NpyData::Float(fortran_to_c(&v, &h.shape)),
            NpyData::Int(v) => NpyData::Int(fortran_to_c(&v, &h.shape)),
        }
    } else {
        data
    };
    Ok(NpyArray {
        dtype,
        shape: h.shape,
        data,
    })
}

/// The dtype and whether its bytes are big-endian. numpy writes `<`/`>` for multi-byte types
/// and `|` for single bytes; `=` and `|` (native) read as little-endian, as numpy does here.
fn parse_descr(d: &str) -> Option<(NpyDtype, bool)> {
    let (order, code) = d.split_at_checked(1)?;
    let big = match order {
        "<" | "=" | "|" => false,
        ">" => true,
        _ => return None,
    };
    let dtype = match code {
        "f2" | "e" => NpyDtype::F16,
        "f4" | "f" => NpyDtype::F32,
        "f8" | "d" => NpyDtype::F64,
        "i4" => NpyDtype::I32,
        "i8" => NpyDtype::I64,
        "u1" | "B" => NpyDtype::U8,
        "b1" | "?" => NpyDtype::Bool,
        _ => return None,
    };
    Some((dtype, big && dtype.size() > 1))
}

/// Decodes `N`-byte elements, reversing each element's bytes first when they are big-endian.
fn decode<const N: usize, T>(data: &[u8], big: bool, f: impl Fn([u8; N]) -> T) -> Vec<T> {
    data.chunks_exact(N)
        .map(|c| {
            let mut b = [0u8; N];
            b.copy_from_slice(c);
            if big {
                b.reverse();
            }
            f(b)
        })
        .collect()
}

/// Reorders Fortran-ordered (column-major) elements of `shape` into C (row-major) order.
fn fortran_to_c<T: Copy>(v: &[T], shape: &[usize]) -> Vec<T> {
    // Strides of each axis in the Fortran layout.
    let mut fstride = vec![1usize; shape.len()];
    for k in 1..shape.len() {
        fstride[k] = fstride[k - 1] * shape[k - 1];
    }
    let mut idx = vec![0usize; shape.len()];
    let mut out = Vec::with_capacity(v.len());
    for _ in 0..v.len() {
        out.push(v[idx.iter().zip(&fstride).map(|(i, s)| i * s).sum::<usize>()]);
        // Advance the C-order multi-index, last axis fastest.
        for k in (0..shape.len()).rev() {
            idx[k] += 1;
            if idx[k] < shape[k] {
                break;
            }
            idx[k] = 0;
        }
    }
    out
}

struct Header {
    descr: String,
    fortran_order: bool,
    shape: Vec<usize>,
}

/// A tiny parser for the Python dict literal numpy writes:
/// `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }`.
fn parse_header(s: &str) -> std::result::Result<Header, String> {
    let mut p = Lexer {
        s: s.as_bytes(),
        i: 0,
    };
    p.ws();
    p.expect(b'{')?;
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    loop {
        p.ws();
        if p.eat(b'}') {
            break;
        }
        let key = p.string()?;
        p.ws();
        p.expect(b':')?;
        p.ws();
        match key.as_str() {
            "descr" => descr = Some(p.string()?),
            "fortran_order" => fortran = Some(p.boolean()?),
            "shape" => shape = Some(p.tuple()?),
            other => return Err(format!("unexpected header key {other:?}")),
        }
        p.ws();
        if p.eat(b',') {
            continue;
        }
        p.ws();
        p.expect(b'}')?;
        break;
    }
    p.ws();
    if p.i != p.s.len() {
        return Err("trailing characters after the header dict".into());
    }
    Ok(Header {
        descr: descr.ok_or("header has no 'descr'")?,
        fortran_order: fortran.ok_or("header has no 'fortran_order'")?,
        shape: shape.ok_or("header has no 'shape'")?,
    })
}

struct Lexer<'a> {
    s: &'a [u8],
    i: usize,
}

impl Lexer<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }
    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn expect(&mut self, c: u8) -> std::result::Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!(
                "header: expected {:?} at byte {}",
                c as char, self.i
            ))
        }
    }
    fn string(&mut self) -> std::result::Result<String, String> {
        let q = match self.peek() {
            Some(q @ (b'\'' | b'"')) => q,
            _ => return Err(format!("header: expected a string at byte {}", self.i)),
        };
        self.i += 1;
        let start = self.i;
        while let Some(c) = self.peek() {
            if c == q {
                let v = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
                self.i += 1;
                return Ok(v);
            }
            if c == b'\\' {
                return Err("header: escapes in strings are not supported".into());
            }
            self.i += 1;
        }
        Err("header: unterminated string".into())
    }
    fn boolean(&mut self) -> std::result::Result<bool, String> {
        let rest = &self.s[self.i..];
        if rest.starts_with(b"True") {
            self.i += 4;
            Ok(true)
        } else if rest.starts_with(b"False") {
            self.i += 5;
            Ok(false)
        } else {
            Err(format!("header: expected True or False at byte {}", self.i))
        }
    }
    fn tuple(&mut self) -> std::result::Result<Vec<usize>, String> {
        self.expect(b'(')?;
        let mut dims = Vec::new();
        loop {
            self.ws();
            if self.eat(b')') {
                break;
            }
            let start = self.i;
            while matches!(self.peek(), Some(b'0'..=b'9')) {
                self.i += 1;
            }
            // Python 2 numpy wrote long integers as `3L`.
            let digits = &self.s[start..self.i];
            if digits.is_empty() {
                return Err(format!(
                    "header: expected a non-negative dimension at byte {}",
                    self.i
                ));
            }
            self.eat(b'L');
            let text = std::str::from_utf8(digits).map_err(|e| e.to_string())?;
            let d: usize = text
                .parse()
                .map_err(|_| format!("header: dimension {text} is too large"))?;
            dims.push(d);
            if dims.len() > MAX_DIMS {
                return Err(format!("header: more than {MAX_DIMS} dimensions"));
            }
            self.ws();
            if self.eat(b',') {
                continue;
            }
            self.ws();
            self.expect(b')')?;
            break;
        }
        Ok(dims)
    }
}

/// Serialises an `f32` array as the bytes of a `.npy` file (`<f4`, C order).
///
/// `data` must hold `shape.iter().product()` elements.
pub fn to_bytes_f32(shape: &[usize], data: &[f32]) -> Result<Vec<u8>> {
    let count = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| Error::Overflow(format!("npy shape {}", shape_str(shape))))?;
    if count != data.len() {
        return Err(Error::shape(
            "npy data",
            format!("{} ({count} elements)", shape_str(shape)),
            format!("{} elements", data.len()),
        ));
    }
    let dims = match shape.len() {
        1 => format!("({},)", shape[0]),
        _ => {
            let p: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
            format!("({})", p.join(", "))
        }
    };
    let mut dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {dims}, }}");
    // Pad so that magic + version + length + dict + '\n' is a multiple of 64.
    let (version, prefix) = if dict.len() + 11 < 65536 {
        (1u8, 10usize)
    } else {
        (2u8, 12usize)
    };
    let total = (prefix + dict.len() + 1).div_ceil(64) * 64;
    let pad = total - prefix - dict.len() - 1;
    dict.extend(std::iter::repeat_n(' ', pad));
    dict.push('\n');
    let mut out = Vec::with_capacity(total + data.len() * 4);
    out.extend_from_slice(MAGIC);
    out.push(version);
    out.push(0);
    if version == 1 {
        let n = u16::try_from(dict.len()).map_err(|_| Error::Overflow("npy header".into()))?;
        out.extend_from_slice(&n.to_le_bytes());
    } else {
        let n = u32::try_from(dict.len()).map_err(|_| Error::Overflow("npy header".into()))?;
        out.extend_from_slice(&n.to_le_bytes());
    }
    out.extend_from_slice(dict.as_bytes());
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    Ok(out)
}

/// Writes an `f32` array to `path` atomically: the bytes go to a temporary file in the same
/// directory, which is then renamed over `path`. On error no file is left at `path`'s
/// temporary name, and `path` itself is untouched.
pub fn write_f32(path: impl AsRef<Path>, shape: &[usize], data: &[f32]) -> Result<()> {
    PendingFile::create(path, &to_bytes_f32(shape, data)?)?.commit()
}

/// A file written under a temporary name next to its target, not yet visible at the target.
///
/// [`PendingFile::commit`] renames it into place; dropping it uncommitted deletes it. This lets a
/// program write several outputs and publish them only once all of them were written.
#[derive(Debug)]
#[doc(hidden)]
pub struct PendingFile {
    tmp: PathBuf,
    target: PathBuf,
    committed: bool,
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn io_err(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        path: path.display().to_string(),
        source,
    }
}

impl PendingFile {
    /// Writes `bytes` to a temporary file in `target`'s directory and flushes it to disk.
    pub fn create(target: impl AsRef<Path>, bytes: &[u8]) -> Result<PendingFile> {
        let target = target.as_ref().to_path_buf();
        let name = target
            .file_name()
            .ok_or_else(|| Error::arg(target.display().to_string(), "not a file path"))?;
        let dir = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(".tmp-{}-{n}", std::process::id()));
        let tmp = dir.join(tmp_name);
        let mut pending = PendingFile {
            tmp,
            target,
            committed: false,
        };
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&pending.tmp)
            .map_err(|e| {
                // Nothing was created: do not delete somebody else's file on drop.
                pending.committed = true;
                io_err(&pending.tmp, e)
            })?;
        f.write_all(bytes).map_err(|e| io_err(&pending.tmp, e))?;
        f.sync_all().map_err(|e| io_err(&pending.tmp, e))?;
        Ok(pending)
    }

    /// The path the file will have once committed.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Renames the temporary file over the target.
    pub fn commit(mut self) -> Result<()> {
        fs::rename(&self.tmp, &self.target).map_err(|e| io_err(&self.target, e))?;
        self.committed = true;
        Ok(())
    }
}

/// Publishes every file in `files`, or none: a file already at a target is kept aside (a hard
/// link, or a copy where links fail) until all are in place, and put back if one rename fails,
/// so that a failure leaves every file that existed before byte-identical.
#[doc(hidden)]
pub fn publish_all(files: Vec<PendingFile>) -> Result<()> {
    let mut saved: Vec<(PathBuf, Option<PathBuf>)> = Vec::new();
    let restore = |saved: &[(PathBuf, Option<PathBuf>)]| {
        for (target, backup) in saved {
            match backup {
                Some(b) => {
                    let _ = fs::rename(b, target);
                }
                None => {
                    let _ = fs::remove_file(target);
                }
            }
        }
    };
    let mut backups = Vec::new();
    for f in &files {
        let target = f.target();
        if fs::symlink_metadata(target).is_ok_and(|m| m.is_file()) {
            let mut b = f.tmp.clone().into_os_string();
            b.push(".old");
            let b = PathBuf::from(b);
            if fs::hard_link(target, &b).is_err()
                && let Err(e) = fs::copy(target, &b)
            {
                for b in &backups {
                    let _ = fs::remove_file(b);
                }
                return Err(io_err(target, e));
            }
            backups.push(b.clone());
            saved.push((target.to_path_buf(), Some(b)));
        } else {
            saved.push((target.to_path_buf(), None));
        }
    }
    for (k, f) in files.into_iter().enumerate() {
        if let Err(e) = f.commit() {
            restore(&saved[..k]);
            for b in &backups {
                let _ = fs::remove_file(b);
            }
            return Err(e);
        }
    }
    for b in &backups {
        let _ = fs::remove_file(b);
    }
    Ok(())
}

impl Drop for PendingFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header_bytes(major: u8, dict: &str) -> Vec<u8> {
        let mut b = MAGIC.to_vec();
        b.push(major);
        b.push(0);
        if major == 1 {
            b.extend_from_slice(&(dict.len() as u16).to_le_bytes());
        } else {
            b.extend_from_slice(&(dict.len() as u32).to_le_bytes());
        }
        b.extend_from_slice(dict.as_bytes());
        b
    }

    #[test]
    fn roundtrip_f32() {
        for shape in [vec![], vec![0], vec![5], vec![2, 3], vec![2, 1, 3]] {
            let n: usize = shape.iter().product();
            let data: Vec<f32> = (0..n).map(|i| i as f32 * 0.5 - 1.0).collect();
            let bytes = to_bytes_f32(&shape, &data).unwrap();
            assert_eq!(
                bytes[8..10],
                ((bytes.len() - n * 4 - 10) as u16).to_le_bytes()
            );
            assert_eq!((bytes.len() - n * 4) % 64, 0);
            let a = parse(&bytes, "t").unwrap();
            assert_eq!(a.shape, shape);
            assert_eq!(a.dtype, NpyDtype::F32);
            assert_eq!(a.into_f32("t").unwrap(), data);
        }
    }

    #[test]
    fn versions_and_dtypes() {
        let mut b = header_bytes(
            2,
            "{'descr': '<f8', 'fortran_order': False, 'shape': (2,)}\n",
        );
        b.extend_from_slice(&1.5f64.to_le_bytes());
        b.extend_from_slice(&(-2.0f64).to_le_bytes());
        assert_eq!(
            parse(&b, "t").unwrap().into_f32("t").unwrap(),
            vec![1.5, -2.0]
        );
        let mut b = header_bytes(
            3,
            "{\"descr\": \"<f2\", \"fortran_order\": False, \"shape\": (1, 1), }\n",
        );
        b.extend_from_slice(&half::f16::from_f32(0.25).to_le_bytes());
        assert_eq!(parse(&b, "t").unwrap().into_f32("t").unwrap(), vec![0.25]);
        let mut b = header_bytes(
            1,
            "{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }",
        );
        b.extend_from_slice(&3i32.to_le_bytes());
        b.extend_from_slice(&7i32.to_le_bytes());
        let a = parse(&b, "t").unwrap();
        assert!(a.clone().into_f32("t").is_err());
        assert_eq!(a.into_lengths("t").unwrap(), vec![3, 7]);
        let mut b = header_bytes(
            1,
            "{'descr': '<i8', 'fortran_order': False, 'shape': (1,), }",
        );
        b.extend_from_slice(&(-1i64).to_le_bytes());
        assert!(parse(&b, "t").unwrap().into_lengths("t").is_err());
    }

    /// numpy's bytes for `np.asfortranarray(np.arange(6).reshape(2, 3))` in each dtype, big- or
    /// little-endian: every reading is the C-order `[[0, 1, 2], [3, 4, 5]]`.
    #[test]
    fn fortran_order_and_byte_orders() {
        let fortran = [0u8, 3, 1, 4, 2, 5];
        for descr in [
            "<f2", ">f2", "<f4", ">f4", "<f8", ">f8", "<i4", ">i4", "<i8", ">i8",
        ] {
            for (order, elems) in [("True", fortran), ("False", [0, 1, 2, 3, 4, 5])] {
                let mut b = header_bytes(
                    1,
                    &format!("{{'descr': '{descr}', 'fortran_order': {order}, 'shape': (2, 3), }}"),
                );
                for e in elems {
                    let mut v = match &descr[1..] {
                        "f2" => half::f16::from_f32(e as f32).to_le_bytes().to_vec(),
                        "f4" => (e as f32).to_le_bytes().to_vec(),
                        "f8" => (e as f64).to_le_bytes().to_vec(),
                        "i4" => (e as i32).to_le_bytes().to_vec(),
                        _ => (e as i64).to_le_bytes().to_vec(),
                    };
                    if descr.starts_with('>') {
                        v.reverse();
                    }
                    b.extend(v);
                }
                let a = parse(&b, "t").unwrap();
                assert_eq!(a.shape, vec![2, 3]);
                match a.data {
                    NpyData::Float(v) => assert_eq!(v, [0.0, 1.0, 2.0, 3.0, 4.0, 5.0], "{descr}"),
                    NpyData::Int(v) => assert_eq!(v, [0, 1, 2, 3, 4, 5], "{descr}"),
                }
            }
        }
        // A 3-D Fortran array: element (i, j, k) of shape (2, 3, 4) sits at i + 2j + 6k.
        let mut b = header_bytes(
            1,
            "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3, 4), }",
        );
        let c_value = |i: usize, j: usize, k: usize| (i * 12 + j * 4 + k) as f32;
        for k in 0..4 {
            for j in 0..3 {
                for i in 0..2 {
                    b.extend(c_value(i, j, k).to_le_bytes());
                }
            }
        }
        let want: Vec<f32> = (0..24).map(|v| v as f32).collect();
        assert_eq!(parse(&b, "t").unwrap().into_f32("t").unwrap(), want);
        // Masks: bool and uint8, any nonzero byte is true; floats are not masks.
        for descr in ["|b1", "|u1", "<u1"] {
            let mut b = header_bytes(
                1,
                &format!("{{'descr': '{descr}', 'fortran_order': True, 'shape': (2, 2), }}"),
            );
            b.extend([1u8, 0, 2, 1]);
            let a = parse(&b, "m").unwrap();
            assert!(a.clone().into_f32("m").is_err());
            assert_eq!(a.into_mask("m").unwrap(), [true, true, false, true]);
        }
        let b = to_bytes_f32(&[2], &[1.0, 0.0]).unwrap();
        assert!(parse(&b, "m").unwrap().into_mask("m").is_err());
    }

    #[test]
    fn refusals() {
        let ok = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }";
        // Truncated and trailing data.
        let mut b = header_bytes(1, ok);
        b.extend_from_slice(&[0; 7]);
        assert!(matches!(parse(&b, "t"), Err(Error::Parse { .. })));
        b.extend_from_slice(&[0; 2]);
        assert!(matches!(parse(&b, "t"), Err(Error::Parse { .. })));
        // Other dtypes.
        for d in ["<u4", "<i2", "<c8", "O", "", "!f4"] {
            let b = header_bytes(
                1,
                &format!("{{'descr': '{d}', 'fortran_order': False, 'shape': (0,), }}"),
            );
            assert!(
                matches!(parse(&b, "t"), Err(Error::UnsupportedDtype { .. })),
                "{d}"
            );
        }
        // Overflowing and absurd shapes.
        let b = header_bytes(
            1,
            "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296, 16), }",
        );
        assert!(matches!(parse(&b, "t"), Err(Error::Overflow(_))));
        let b = header_bytes(
            1,
            "{'descr': '<f4', 'fortran_order': False, 'shape': (100000000000,), }",
        );
        assert!(matches!(parse(&b, "t"), Err(Error::Parse { .. })));
        let b = header_bytes(
            1,
            "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999999,), }",
        );
        assert!(parse(&b, "t").is_err());
        let b = header_bytes(
            1,
            "{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }",
        );
        assert!(parse(&b, "t").is_err());
        // Garbage.
        for junk in [
            &b""[..],
            b"\x93NUMPY",
            b"\x93NUMPY\x01\x00\xff\xff{",
            b"\x93NUMPY\x04\x00\x00\x00",
            b"NOTNUMPY\x01\x00",
        ] {
            assert!(parse(junk, "t").is_err());
        }
        for d in [
            "{",
            "{'descr': '<f4'}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 1}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2,)} x",
            "{'descr': '<f4', 'fortran_order': Fals, 'shape': (2,)}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2,,)}",
            "{'descr: '<f4', 'fortran_order': False, 'shape': (2,)}",
        ] {
            assert!(parse(&header_bytes(1, d), "t").is_err(), "{d}");
        }
    }

    #[test]
    fn fuzz_never_panics() {
        let base = to_bytes_f32(&[2, 3], &[1.0; 6]).unwrap();
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let mut b = base.clone();
            let cut = (state as usize) % (b.len() + 1);
            let pos = (state >> 20) as usize % b.len();
            b[pos] = (state >> 40) as u8;
            b.truncate(cut.max(pos));
            let _ = parse(&b, "fuzz");
        }
    }

    #[test]
    fn atomic_write() {
        let dir = std::env::temp_dir().join(format!("wgpu-gru-npy-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let p = dir.join("a.npy");
        write_f32(&p, &[2], &[1.0, 2.0]).unwrap();
        assert_eq!(read_f32(&p).unwrap(), (vec![2], vec![1.0, 2.0]));
        // Wrong element count: nothing written, old file kept.
        assert!(write_f32(&p, &[3], &[1.0]).is_err());
        assert_eq!(read_f32(&p).unwrap().1, vec![1.0, 2.0]);
        // Uncommitted pending files vanish.
        let pf = PendingFile::create(dir.join("b.npy"), b"x").unwrap();
        drop(pf);
        let left: Vec<_> = fs::read_dir(&dir).unwrap().collect();
        assert_eq!(left.len(), 1);
        fs::remove_dir_all(&dir).unwrap();
    }
}
