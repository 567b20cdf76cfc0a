//! The `.keras` zip: bounded reads of `config.json` and `model.weights.h5`.
//!
//! Limits (a zip bomb is refused before anything is inflated, from the sizes the central
//! directory declares, and an entry that inflates past what it declares is refused too):
//! - `config.json`: at most [`MAX_CONFIG_BYTES`] (16 MiB);
//! - `model.weights.h5`: at most [`MAX_WEIGHTS_BYTES`] (2 GiB) and at most
//!   [`WEIGHTS_RATIO`] × the archive's size + [`WEIGHTS_SLACK`] (16 MiB). Keras stores its
//!   entries uncompressed and float weights barely deflate, so a real file is far inside that.

use std::io::Cursor;

use zip::ZipArchive;

use crate::error::{Error, Result};
use crate::formats::zip_entry;

/// Largest `config.json` read.
pub(super) const MAX_CONFIG_BYTES: u64 = 16 << 20;
/// Largest `model.weights.h5` read, whatever the archive's size.
pub(super) const MAX_WEIGHTS_BYTES: u64 = 2 << 30;
/// `model.weights.h5` may be at most this many times the archive's size (plus the slack).
pub(super) const WEIGHTS_RATIO: u64 = 32;
/// Added to the ratio's bound, so that small archives are not held to a tiny size.
pub(super) const WEIGHTS_SLACK: u64 = 16 << 20;

pub(super) fn parse_err(name: &str, reason: impl Into<String>) -> Error {
    Error::Parse {
        what: name.to_string(),
        reason: reason.into(),
    }
}

/// Whether `bytes` is a zip archive whose entries include `config.json` and
/// `model.weights.h5`.
pub(super) fn is_keras_zip(bytes: &[u8]) -> bool {
    if !bytes.starts_with(b"PK") {
        return false;
    }
    let Ok(zip) = ZipArchive::new(Cursor::new(bytes)) else {
        return false;
    };
    zip.index_for_name("config.json").is_some() && zip.index_for_name("model.weights.h5").is_some()
}

/// The two entries a `.keras` file is read from.
pub(super) struct KerasZip {
    /// `config.json`, as text.
    pub config: String,
    /// `model.weights.h5`.
    pub weights: Vec<u8>,
}

/// Opens the archive and reads its two entries within the limits above.
pub(super) fn open(bytes: &[u8], name: &str) -> Result<KerasZip> {
    let mut zip = ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| parse_err(name, format!("not a readable zip archive: {e}")))?;
    if zip.has_duplicate_names() {
        return Err(parse_err(name, "the zip archive names an entry twice"));
    }
    let config = read_entry(&mut zip, name, "config.json", MAX_CONFIG_BYTES)?;
    let config =
        String::from_utf8(config).map_err(|_| parse_err(name, "config.json is not UTF-8 text"))?;
    let ratio_cap = (bytes.len() as u64)
        .saturating_mul(WEIGHTS_RATIO)
        .saturating_add(WEIGHTS_SLACK);
    let weights = read_entry(
        &mut zip,
        name,
        "model.weights.h5",
        MAX_WEIGHTS_BYTES.min(ratio_cap),
    )?;
    Ok(KerasZip { config, weights })
}

/// Reads entry `path`, refusing it when it declares more than `limit` bytes or inflates to
/// more or fewer than it declares.
fn read_entry(
    zip: &mut ZipArchive<Cursor<&[u8]>>,
    name: &str,
    path: &str,
    limit: u64,
) -> Result<Vec<u8>> {
    let Some(index) = zip.index_for_name(path) else {
        return Err(parse_err(
            name,
            format!("no {path} in the zip archive: not a Keras 3 .keras file"),
        ));
    };
    let (mut f, declared) = zip_entry::open_limited(zip, index, limit, name, path)?;
    zip_entry::read_declared(&mut f, declared, name, path)
}
