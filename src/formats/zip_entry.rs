//! Reading one zip entry of a hostile archive (a `.keras` file, a `torch.save` checkpoint):
//! exactly the bytes it declares, with a bounded reservation up front, and nothing more.

use std::io::{Read, Seek};

use zip::ZipArchive;
use zip::read::ZipFile;

use crate::error::{Error, Result};

/// Bytes reserved before reading, whatever an entry declares: a compressed entry may declare
/// far more than it holds, so the vector grows with the bytes that really arrive.
const MAX_RESERVE: u64 = 16 << 20;

/// Entry `index` (`path`) of `zip` (the archive `name`) and the bytes it declares, refused
/// where it declares more than `limit`.
pub(crate) fn open_limited<'a, R: Read + Seek>(
    zip: &'a mut ZipArchive<R>,
    index: usize,
    limit: u64,
    name: &str,
    path: &str,
) -> Result<(ZipFile<'a, R>, u64)> {
    let err = |reason: String| Error::Parse {
        what: name.to_string(),
        reason,
    };
    let f = zip
        .by_index(index)
        .map_err(|e| err(format!("cannot read {path}: {e}")))?;
    let declared = f.size();
    if declared > limit {
        return Err(err(format!(
            "{path} declares {declared} bytes, more than the {limit} allowed"
        )));
    }
    Ok((f, declared))
}

/// Reads `entry` (`path` in the archive `name`), which declares `declared` bytes (already checked
/// against the caller's limits): refuses an entry that holds fewer (truncated) or inflates past
/// them, and checks its CRC-32 by reading to its end.
pub(crate) fn read_declared(
    entry: &mut impl Read,
    declared: u64,
    name: &str,
    path: &str,
) -> Result<Vec<u8>> {
    let err = |reason: String| Error::Parse {
        what: name.to_string(),
        reason,
    };
    let mut buf = Vec::with_capacity(usize::try_from(declared.min(MAX_RESERVE)).unwrap_or(0));
    entry
        .take(declared)
        .read_to_end(&mut buf)
        .map_err(|e| err(format!("cannot read {path}: {e}")))?;
    if buf.len() as u64 != declared {
        return Err(err(format!(
            "{path} is truncated: {} of its {declared} bytes",
            buf.len()
        )));
    }
    // One byte more must be the end of the entry (which also checks its CRC-32).
    let mut one = [0u8; 1];
    match entry.read(&mut one) {
        Ok(0) => Ok(buf),
        Ok(_) => Err(err(format!(
            "{path} holds more than the {declared} bytes it declares"
        ))),
        Err(e) => Err(err(format!("cannot read {path}: {e}"))),
    }
}
