//! The checkpoint's zip archive: its folder, its byte order, and bounded reads of its entries
//! (`data.pkl` and the storages), each read once.

use std::collections::HashMap;
use std::io::Cursor;
use std::rc::Rc;

use zip::ZipArchive;

use super::{MAX_TOTAL_BYTES, parse_err};
use crate::error::{Error, Result};
use crate::formats::zip_entry;

pub(super) struct Archive<'a> {
    pub(super) zip: ZipArchive<Cursor<&'a [u8]>>,
    pub(super) name: &'a str,
    /// The archive's folder (`<dir>/data.pkl`).
    pub(super) dir: String,
    pub(super) big_endian: bool,
    /// Declared bytes of the entries read so far.
    pub(super) read_total: u64,
    /// Storages already read, by key.
    pub(super) cache: HashMap<Rc<str>, Rc<Vec<u8>>>,
}

impl<'a> Archive<'a> {
    pub(super) fn open(bytes: &'a [u8], name: &'a str) -> Result<Self> {
        let zip = ZipArchive::new(Cursor::new(bytes))
            .map_err(|e| parse_err(name, format!("not a readable zip archive: {e}")))?;
        if zip.has_duplicate_names() {
            return Err(parse_err(name, "the zip archive names an entry twice"));
        }
        let names: Vec<String> = zip
            .file_names()
            .map(|n| n.map(|n| n.into_owned()))
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| parse_err(name, format!("unreadable zip entry name: {e}")))?;
        let dirs: Vec<&str> = names
            .iter()
            .filter_map(|n| n.strip_suffix("/data.pkl"))
            .filter(|d| !d.is_empty() && !d.contains('/'))
            .collect();
        let dir = match dirs.as_slice() {
            [d] => d.to_string(),
            [] => {
                return Err(parse_err(
                    name,
                    "a zip archive without <archive>/data.pkl: not a torch.save checkpoint",
                ));
            }
            many => {
                return Err(parse_err(
                    name,
                    format!(
                        "{} <archive>/data.pkl entries in one zip archive",
                        many.len()
                    ),
                ));
            }
        };
        let code = format!("{dir}/code/");
        if names
            .iter()
            .any(|n| n.starts_with(&code) || *n == format!("{dir}/constants.pkl"))
        {
            return Err(Error::Unsupported(format!(
                "{name} is a TorchScript archive (torch.jit.save), not a torch.save state_dict: \
                 load it in Python and torch.save(model.state_dict()) instead"
            )));
        }
        let mut a = Archive {
            zip,
            name,
            dir,
            big_endian: false,
            read_total: 0,
            cache: HashMap::new(),
        };
        let bo = format!("{}/byteorder", a.dir);
        if a.zip.index_for_name(&bo).is_some() {
            let order = a.read(&bo, 16, None)?;
            a.big_endian = match order.as_slice() {
                b"little" => false,
                b"big" => true,
                other => {
                    return Err(parse_err(
                        name,
                        format!("unknown byteorder {:?}", String::from_utf8_lossy(other)),
                    ));
                }
            };
        }
        Ok(a)
    }

    /// Reads entry `path`, refusing it if its declared size exceeds `limit`, differs from
    /// `expect`, or would take the bytes read past [`MAX_TOTAL_BYTES`].
    pub(super) fn read(&mut self, path: &str, limit: u64, expect: Option<u64>) -> Result<Vec<u8>> {
        let name = self.name;
        let Some(index) = self.zip.index_for_name(path) else {
            return Err(parse_err(
                name,
                format!("no entry {path} in the zip archive"),
            ));
        };
        let (mut f, declared) = zip_entry::open_limited(&mut self.zip, index, limit, name, path)?;
        if let Some(want) = expect
            && declared != want
        {
            return Err(parse_err(
                name,
                format!("{path} holds {declared} bytes, its tensors' storage needs {want}"),
            ));
        }
        let total = self.read_total.saturating_add(declared);
        if total > MAX_TOTAL_BYTES {
            return Err(parse_err(
                name,
                format!("the entries read would exceed {MAX_TOTAL_BYTES} bytes in all"),
            ));
        }
        self.read_total = total;
        zip_entry::read_declared(&mut f, declared, name, path)
    }

    /// The bytes of storage `key`, exactly `bytes` long.
    pub(super) fn storage(&mut self, key: &Rc<str>, bytes: u64) -> Result<Rc<Vec<u8>>> {
        if let Some(b) = self.cache.get(key) {
            if b.len() as u64 != bytes {
                return Err(parse_err(
                    self.name,
                    format!(
                        "storage {key} holds {} bytes, a tensor on it needs {bytes}",
                        b.len()
                    ),
                ));
            }
            return Ok(b.clone());
        }
        let path = format!("{}/data/{key}", self.dir);
        let b = Rc::new(self.read(&path, MAX_TOTAL_BYTES, Some(bytes))?);
        self.cache.insert(key.clone(), b.clone());
        Ok(b)
    }
}
