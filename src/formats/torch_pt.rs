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

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Cursor;
use std::rc::Rc;

use safetensors::Dtype;
use safetensors::tensor::TensorView;
use zip::ZipArchive;

use super::tensors::SafetensorsFile;
use crate::error::{Error, Result};

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
    let mut vm = Vm::new(&pkl, name);
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

fn parse_err(name: &str, reason: impl Into<String>) -> Error {
    Error::Parse {
        what: name.to_string(),
        reason: reason.into(),
    }
}

// ---------------------------------------------------------------------------------------------
// The archive.

struct Archive<'a> {
    zip: ZipArchive<Cursor<&'a [u8]>>,
    name: &'a str,
    /// The archive's folder (`<dir>/data.pkl`).
    dir: String,
    big_endian: bool,
    /// Declared bytes of the entries read so far.
    read_total: u64,
    /// Storages already read, by key.
    cache: HashMap<Rc<str>, Rc<Vec<u8>>>,
}

impl<'a> Archive<'a> {
    fn open(bytes: &'a [u8], name: &'a str) -> Result<Self> {
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
    fn read(&mut self, path: &str, limit: u64, expect: Option<u64>) -> Result<Vec<u8>> {
        let name = self.name;
        let Some(index) = self.zip.index_for_name(path) else {
            return Err(parse_err(
                name,
                format!("no entry {path} in the zip archive"),
            ));
        };
        let mut f = self
            .zip
            .by_index(index)
            .map_err(|e| parse_err(name, format!("cannot read {path}: {e}")))?;
        let declared = f.size();
        if declared > limit {
            return Err(parse_err(
                name,
                format!("{path} declares {declared} bytes, more than the {limit} allowed"),
            ));
        }
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
        super::zip_entry::read_declared(&mut f, declared, name, path)
    }

    /// The bytes of storage `key`, exactly `bytes` long.
    fn storage(&mut self, key: &Rc<str>, bytes: u64) -> Result<Rc<Vec<u8>>> {
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

// ---------------------------------------------------------------------------------------------
// Values.

/// A torch storage class, used only as a dtype marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StorageType {
    F32,
    F16,
    BF16,
    F64,
    /// A storage of another dtype: allowed in a checkpoint, refused as a GRU weight.
    Other(&'static str),
}

const OTHER_STORAGES: [&str; 8] = [
    "LongStorage",
    "IntStorage",
    "ShortStorage",
    "CharStorage",
    "ByteStorage",
    "BoolStorage",
    "ComplexFloatStorage",
    "ComplexDoubleStorage",
];

impl StorageType {
    fn from_class(name: &str) -> Option<StorageType> {
        Some(match name {
            "FloatStorage" => StorageType::F32,
            "HalfStorage" => StorageType::F16,
            "BFloat16Storage" => StorageType::BF16,
            "DoubleStorage" => StorageType::F64,
            other => StorageType::Other(OTHER_STORAGES.into_iter().find(|s| *s == other)?),
        })
    }

    fn class(self) -> &'static str {
        match self {
            StorageType::F32 => "FloatStorage",
            StorageType::F16 => "HalfStorage",
            StorageType::BF16 => "BFloat16Storage",
            StorageType::F64 => "DoubleStorage",
            StorageType::Other(s) => s,
        }
    }

    fn elem_size(self) -> Option<u64> {
        match self {
            StorageType::F32 => Some(4),
            StorageType::F16 | StorageType::BF16 => Some(2),
            StorageType::F64 => Some(8),
            StorageType::Other(_) => None,
        }
    }
}

/// The globals a checkpoint may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Global {
    OrderedDict,
    RebuildTensorV2,
    RebuildParameter,
    RebuildParameterWithState,
    Storage(StorageType),
}

impl Global {
    fn resolve(module: &str, name: &str) -> Option<Global> {
        Some(match (module, name) {
            ("collections", "OrderedDict") => Global::OrderedDict,
            ("torch._utils", "_rebuild_tensor_v2") => Global::RebuildTensorV2,
            ("torch._utils", "_rebuild_parameter") => Global::RebuildParameter,
            ("torch._utils", "_rebuild_parameter_with_state") => Global::RebuildParameterWithState,
            ("torch", class) => Global::Storage(StorageType::from_class(class)?),
            _ => return None,
        })
    }
}

#[derive(Debug)]
struct StorageRef {
    dtype: StorageType,
    key: Rc<str>,
    numel: u64,
}

#[derive(Debug)]
struct TensorRef {
    storage: Rc<StorageRef>,
    offset: u64,
    size: Vec<u64>,
    stride: Vec<u64>,
}

#[derive(Debug)]
struct Tuple {
    /// Nesting depth: 1 + the deepest tuple inside (lists and dicts live in the arena, so only
    /// tuples nest through `Rc`, and their drop recursion is bounded by this).
    depth: usize,
    items: Vec<Value>,
}

#[derive(Debug, Clone)]
enum Value {
    None,
    /// Bools, floats and bytes are never looked at: only their kind is kept.
    Bool,
    Int(i64),
    Float,
    Str(Rc<str>),
    Bytes,
    Tuple(Rc<Tuple>),
    /// Index into the arena: lists and dicts are mutable and shared through the memo.
    List(usize),
    Dict(usize),
    Global(Global),
    Storage(Rc<StorageRef>),
    Tensor(Rc<TensorRef>),
}

impl Value {
    fn kind(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool => "bool",
            Value::Int(_) => "int",
            Value::Float => "float",
            Value::Str(_) => "str",
            Value::Bytes => "bytes",
            Value::Tuple(_) => "tuple",
            Value::List(_) => "list",
            Value::Dict(_) => "dict",
            Value::Global(_) => "global",
            Value::Storage(_) => "storage",
            Value::Tensor(_) => "tensor",
        }
    }

    fn depth(&self) -> usize {
        match self {
            Value::Tuple(t) => t.depth,
            _ => 0,
        }
    }
}

#[derive(Debug, Default)]
struct Dict {
    entries: Vec<(Value, Value)>,
    /// Position of each string key in `entries` (a later SETITEM replaces, as in Python).
    index: HashMap<Rc<str>, usize>,
}

impl Dict {
    fn set(&mut self, key: Value, value: Value) {
        if let Value::Str(s) = &key {
            if let Some(&i) = self.index.get(s) {
                self.entries[i].1 = value;
                return;
            }
            self.index.insert(s.clone(), self.entries.len());
        }
        self.entries.push((key, value));
    }
}

#[derive(Debug)]
enum Obj {
    List(Vec<Value>),
    Dict(Dict),
}

// ---------------------------------------------------------------------------------------------
// The pickle machine.

struct Vm<'a> {
    data: &'a [u8],
    pos: usize,
    /// Offset of the opcode being run, for errors.
    op_pos: usize,
    file: &'a str,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: HashMap<u32, Value>,
    arena: Vec<Obj>,
    objects: usize,
}

impl<'a> Vm<'a> {
    fn new(data: &'a [u8], file: &'a str) -> Self {
        Vm {
            data,
            pos: 0,
            op_pos: 0,
            file,
            stack: Vec::new(),
            marks: Vec::new(),
            memo: HashMap::new(),
            arena: Vec::new(),
            objects: 0,
        }
    }

    fn err(&self, msg: impl std::fmt::Display) -> Error {
        parse_err(self.file, format!("data.pkl byte {}: {msg}", self.op_pos))
    }

    fn bytes(&mut self, n: u64) -> Result<&'a [u8]> {
        let rest = self.data.len() - self.pos;
        if n > rest as u64 {
            return Err(self.err(format!(
                "needs {n} more bytes, {rest} remain (truncated data.pkl)"
            )));
        }
        let s = &self.data[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let b = self.bytes(N as u64)?;
        let mut a = [0u8; N];
        a.copy_from_slice(b);
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.array::<1>()?[0])
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// A GLOBAL operand: text up to `\n`, at most [`MAX_GLOBAL_LINE`] bytes.
    fn line(&mut self) -> Result<&'a str> {
        let rest = &self.data[self.pos..];
        let window = &rest[..rest.len().min(MAX_GLOBAL_LINE + 1)];
        let Some(n) = window.iter().position(|&b| b == b'\n') else {
            return Err(self.err("GLOBAL name without a newline (or too long)"));
        };
        let s = std::str::from_utf8(&rest[..n]).map_err(|_| self.err("GLOBAL name not UTF-8"))?;
        self.pos += n + 1;
        Ok(s)
    }

    fn text(&mut self, n: u64) -> Result<Value> {
        let b = self.bytes(n)?;
        let s = std::str::from_utf8(b).map_err(|_| self.err("string is not valid UTF-8"))?;
        Ok(Value::Str(Rc::from(s)))
    }

    fn push(&mut self, v: Value) -> Result<()> {
        if self.stack.len() >= MAX_STACK {
            return Err(self.err(format!("stack deeper than {MAX_STACK}")));
        }
        self.count()?;
        self.stack.push(v);
        Ok(())
    }

    fn count(&mut self) -> Result<()> {
        self.objects += 1;
        if self.objects > MAX_OBJECTS {
            return Err(self.err(format!("more than {MAX_OBJECTS} values")));
        }
        Ok(())
    }

    /// The bottom of the current frame: values below the last MARK cannot be popped.
    fn floor(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    fn pop(&mut self) -> Result<Value> {
        if self.stack.len() <= self.floor() {
            return Err(self.err("stack underflow"));
        }
        self.stack.pop().ok_or_else(|| self.err("stack underflow"))
    }

    fn top(&self) -> Result<&Value> {
        if self.stack.len() <= self.floor() {
            return Err(self.err("stack underflow"));
        }
        self.stack.last().ok_or_else(|| self.err("stack underflow"))
    }

    fn pop_mark(&mut self) -> Result<Vec<Value>> {
        let Some(m) = self.marks.pop() else {
            return Err(self.err("no MARK to pop to"));
        };
        if m > self.stack.len() {
            return Err(self.err("MARK above the stack"));
        }
        Ok(self.stack.split_off(m))
    }

    fn tuple(&self, items: Vec<Value>) -> Result<Value> {
        let depth = 1 + items.iter().map(Value::depth).max().unwrap_or(0);
        if depth > MAX_DEPTH {
            return Err(self.err(format!("tuples nested deeper than {MAX_DEPTH}")));
        }
        Ok(Value::Tuple(Rc::new(Tuple { depth, items })))
    }

    fn new_obj(&mut self, o: Obj) -> Result<usize> {
        self.count()?;
        self.arena.push(o);
        Ok(self.arena.len() - 1)
    }

    fn memo_put(&mut self, key: u32) -> Result<()> {
        let v = self.top()?.clone();
        if !self.memo.contains_key(&key) && self.memo.len() >= MAX_MEMO {
            return Err(self.err(format!("more than {MAX_MEMO} memo entries")));
        }
        self.memo.insert(key, v);
        Ok(())
    }

    fn memo_get(&mut self, key: u32) -> Result<()> {
        let Some(v) = self.memo.get(&key).cloned() else {
            return Err(self.err(format!("memo entry {key} was never stored")));
        };
        self.push(v)
    }

    fn global(&self, module: &str, name: &str) -> Result<Value> {
        if let Some(g) = Global::resolve(module, name) {
            return Ok(Value::Global(g));
        }
        let is_class = name.starts_with(|c: char| c.is_ascii_uppercase())
            || module == "__main__"
            || module.starts_with("torch.nn");
        Err(if is_class {
            Error::Unsupported(format!(
                "{} pickles a whole object ({module}.{name}), not a state_dict: save \
                 model.state_dict() with torch.save instead",
                self.file
            ))
        } else {
            self.err(format!(
                "refusing global {module}.{name}: only state_dict tensors are read, and nothing \
                 in a checkpoint is ever called"
            ))
        })
    }

    fn dict_mut(&mut self, target: &Value, op: &str) -> Result<&mut Dict> {
        let idx = match target {
            Value::Dict(i) => *i,
            other => return Err(self.err(format!("{op} on a {}", other.kind()))),
        };
        match self.arena.get_mut(idx) {
            Some(Obj::Dict(d)) => Ok(d),
            _ => Err(parse_err(self.file, "internal: bad dict reference")),
        }
    }

    fn list_mut(&mut self, target: &Value, op: &str) -> Result<&mut Vec<Value>> {
        let idx = match target {
            Value::List(i) => *i,
            other => return Err(self.err(format!("{op} on a {}", other.kind()))),
        };
        match self.arena.get_mut(idx) {
            Some(Obj::List(l)) => Ok(l),
            _ => Err(parse_err(self.file, "internal: bad list reference")),
        }
    }

    fn set_items(&mut self, items: Vec<Value>, op: &str) -> Result<()> {
        if !items.len().is_multiple_of(2) {
            return Err(self.err(format!("{op} with an odd number of items")));
        }
        let target = self.top()?.clone();
        let d = self.dict_mut(&target, op)?;
        let mut it = items.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            d.set(k, v);
        }
        Ok(())
    }

    fn uint(&self, v: &Value, what: &str) -> Result<u64> {
        match v {
            Value::Int(i) if *i >= 0 => Ok(*i as u64),
            other => Err(self.err(format!(
                "{what} must be a non-negative int, not {}",
                match other {
                    Value::Int(i) => i.to_string(),
                    o => o.kind().to_string(),
                }
            ))),
        }
    }

    fn uints(&self, v: &Value, what: &str) -> Result<Vec<u64>> {
        let Value::Tuple(t) = v else {
            return Err(self.err(format!("{what} must be a tuple, not {}", v.kind())));
        };
        if t.items.len() > MAX_RANK {
            return Err(self.err(format!("{what} has more than {MAX_RANK} dimensions")));
        }
        t.items.iter().map(|x| self.uint(x, what)).collect()
    }

    fn call(&mut self, f: Value, args: Value) -> Result<Value> {
        let Value::Global(g) = f else {
            return Err(self.err(format!("REDUCE calls a {}", f.kind())));
        };
        let Value::Tuple(args) = args else {
            return Err(self.err(format!("REDUCE arguments are a {}", args.kind())));
        };
        let a = &args.items;
        match g {
            Global::OrderedDict => {
                if !a.is_empty() {
                    return Err(self.err("OrderedDict called with arguments"));
                }
                Ok(Value::Dict(self.new_obj(Obj::Dict(Dict::default()))?))
            }
            Global::RebuildTensorV2 => {
                if !(6..=7).contains(&a.len()) {
                    return Err(self.err(format!(
                        "_rebuild_tensor_v2 takes 6 or 7 arguments, got {}",
                        a.len()
                    )));
                }
                let Value::Storage(storage) = &a[0] else {
                    return Err(self.err(format!(
                        "_rebuild_tensor_v2 on a {}, not a storage",
                        a[0].kind()
                    )));
                };
                let offset = self.uint(&a[1], "storage_offset")?;
                let size = self.uints(&a[2], "size")?;
                let stride = self.uints(&a[3], "stride")?;
                if size.len() != stride.len() {
                    return Err(self.err(format!(
                        "size has {} dimensions, stride {}",
                        size.len(),
                        stride.len()
                    )));
                }
                Ok(Value::Tensor(Rc::new(TensorRef {
                    storage: storage.clone(),
                    offset,
                    size,
                    stride,
                })))
            }
            Global::RebuildParameter | Global::RebuildParameterWithState => {
                let n = if g == Global::RebuildParameter { 3 } else { 4 };
                if a.len() != n {
                    return Err(self.err(format!(
                        "_rebuild_parameter takes {n} arguments, got {}",
                        a.len()
                    )));
                }
                match &a[0] {
                    Value::Tensor(t) => Ok(Value::Tensor(t.clone())),
                    other => Err(self.err(format!("a Parameter of a {}", other.kind()))),
                }
            }
            Global::Storage(t) => Err(self.err(format!(
                "torch.{} is called, not used as a storage type",
                t.class()
            ))),
        }
    }

    fn persistent_load(&self, pid: Value) -> Result<Value> {
        let bad = || {
            self.err("unsupported persistent id (expected ('storage', torch.<Type>Storage, key, location, numel))")
        };
        let Value::Tuple(t) = pid else {
            return Err(bad());
        };
        let [tag, ty, key, loc, numel] = t.items.as_slice() else {
            return Err(bad());
        };
        match (tag, ty, key, loc) {
            (
                Value::Str(tag),
                Value::Global(Global::Storage(dtype)),
                Value::Str(key),
                Value::Str(_),
            ) if &**tag == "storage" => {
                let numel = self.uint(numel, "storage size")?;
                Ok(Value::Storage(Rc::new(StorageRef {
                    dtype: *dtype,
                    key: key.clone(),
                    numel,
                })))
            }
            _ => Err(bad()),
        }
    }

    /// Runs the pickle to STOP and returns its value.
    fn run(&mut self) -> Result<Value> {
        loop {
            self.op_pos = self.pos;
            if self.pos >= self.data.len() {
                return Err(self.err("data.pkl ends without STOP (truncated)"));
            }
            let op = self.u8()?;
            match op {
                b'.' => return self.pop(), // STOP
                0x80 => {
                    // PROTO
                    let v = self.u8()?;
                    if v > 5 {
                        return Err(self.err(format!("pickle protocol {v} (at most 5 is read)")));
                    }
                }
                0x95 => {
                    // FRAME: a length hint only
                    self.u64()?;
                }
                b'}' => {
                    let d = self.new_obj(Obj::Dict(Dict::default()))?;
                    self.push(Value::Dict(d))?;
                }
                b']' => {
                    let l = self.new_obj(Obj::List(Vec::new()))?;
                    self.push(Value::List(l))?;
                }
                b')' => {
                    let t = self.tuple(Vec::new())?;
                    self.push(t)?;
                }
                b'(' => {
                    if self.marks.len() >= MAX_STACK {
                        return Err(self.err(format!("more than {MAX_STACK} MARKs")));
                    }
                    self.marks.push(self.stack.len());
                }
                b'X' => {
                    let n = self.u32()? as u64;
                    let v = self.text(n)?;
                    self.push(v)?;
                }
                0x8c => {
                    let n = self.u8()? as u64;
                    let v = self.text(n)?;
                    self.push(v)?;
                }
                0x8d => {
                    let n = self.u64()?;
                    let v = self.text(n)?;
                    self.push(v)?;
                }
                b'C' | b'B' | 0x8e => {
                    let n = match op {
                        b'C' => self.u8()? as u64,
                        b'B' => self.u32()? as u64,
                        _ => self.u64()?,
                    };
                    self.bytes(n)?;
                    self.push(Value::Bytes)?;
                }
                b'J' => {
                    let v = i32::from_le_bytes(self.array()?);
                    self.push(Value::Int(v as i64))?;
                }
                b'K' => {
                    let v = self.u8()?;
                    self.push(Value::Int(v as i64))?;
                }
                b'M' => {
                    let v = u16::from_le_bytes(self.array()?);
                    self.push(Value::Int(v as i64))?;
                }
                0x8a | 0x8b => {
                    // LONG1, LONG4: little-endian two's complement
                    let n = if op == 0x8a {
                        self.u8()? as u64
                    } else {
                        self.u32()? as u64
                    };
                    if n > 8 {
                        return Err(self.err(format!("an integer of {n} bytes (at most 8 read)")));
                    }
                    let b = self.bytes(n)?;
                    let mut v: i64 = 0;
                    for (i, &byte) in b.iter().enumerate() {
                        v |= (byte as i64) << (8 * i);
                    }
                    if n > 0 && n < 8 && b[n as usize - 1] & 0x80 != 0 {
                        v -= 1i64 << (8 * n);
                    }
                    self.push(Value::Int(v))?;
                }
                b'G' => {
                    self.array::<8>()?;
                    self.push(Value::Float)?;
                }
                0x88 => self.push(Value::Bool)?,
                0x89 => self.push(Value::Bool)?,
                b'N' => self.push(Value::None)?,
                b't' => {
                    let items = self.pop_mark()?;
                    let t = self.tuple(items)?;
                    self.push(t)?;
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop()?);
                    }
                    items.reverse();
                    let t = self.tuple(items)?;
                    self.push(t)?;
                }
                b'l' => {
                    let items = self.pop_mark()?;
                    let l = self.new_obj(Obj::List(items))?;
                    self.push(Value::List(l))?;
                }
                b'd' => {
                    let items = self.pop_mark()?;
                    let d = self.new_obj(Obj::Dict(Dict::default()))?;
                    self.push(Value::Dict(d))?;
                    self.set_items(items, "DICT")?;
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    let g = self.global(module, name)?;
                    self.push(g)?;
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    let (Value::Str(module), Value::Str(name)) = (&module, &name) else {
                        return Err(self.err("STACK_GLOBAL of non-strings"));
                    };
                    let g = self.global(module, name)?;
                    self.push(g)?;
                }
                b'q' => {
                    let k = self.u8()? as u32;
                    self.memo_put(k)?;
                }
                b'r' => {
                    let k = self.u32()?;
                    self.memo_put(k)?;
                }
                0x94 => {
                    let k =
                        u32::try_from(self.memo.len()).map_err(|_| self.err("memo too large"))?;
                    self.memo_put(k)?;
                }
                b'h' => {
                    let k = self.u8()? as u32;
                    self.memo_get(k)?;
                }
                b'j' => {
                    let k = self.u32()?;
                    self.memo_get(k)?;
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    self.set_items(vec![k, v], "SETITEM")?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    self.set_items(items, "SETITEMS")?;
                }
                b'a' => {
                    let v = self.pop()?;
                    let target = self.top()?.clone();
                    self.list_mut(&target, "APPEND")?.push(v);
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    let target = self.top()?.clone();
                    self.list_mut(&target, "APPENDS")?.extend(items);
                }
                b'R' => {
                    let args = self.pop()?;
                    let f = self.pop()?;
                    let v = self.call(f, args)?;
                    self.push(v)?;
                }
                0x81 => {
                    // NEWOBJ: cls.__new__(cls, *args); only OrderedDict()
                    let args = self.pop()?;
                    let cls = self.pop()?;
                    match (&cls, &args) {
                        (Value::Global(Global::OrderedDict), Value::Tuple(t))
                            if t.items.is_empty() =>
                        {
                            let d = self.new_obj(Obj::Dict(Dict::default()))?;
                            self.push(Value::Dict(d))?;
                        }
                        _ => return Err(self.err(format!("NEWOBJ of a {}", cls.kind()))),
                    }
                }
                b'b' => {
                    // BUILD: the state_dict's `_metadata` attribute; ignored
                    let _state = self.pop()?;
                    match self.top()? {
                        Value::Dict(_) | Value::Tensor(_) => {}
                        other => return Err(self.err(format!("BUILD on a {}", other.kind()))),
                    }
                }
                b'Q' => {
                    let pid = self.pop()?;
                    let v = self.persistent_load(pid)?;
                    self.push(v)?;
                }
                b'0' => {
                    // POP: with nothing above the last MARK, Python pops the MARK
                    if self.stack.len() <= self.floor() && !self.marks.is_empty() {
                        self.marks.pop();
                    } else {
                        self.pop()?;
                    }
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let v = self.top()?.clone();
                    self.push(v)?;
                }
                other => {
                    return Err(self.err(format!(
                        "unsupported pickle opcode 0x{other:02x} (not one torch.save writes)"
                    )));
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Finding the GRU.

/// Every tensor reachable from dict `idx` through string keys, with its dotted name.
fn collect(
    arena: &[Obj],
    idx: usize,
    prefix: &str,
    depth: usize,
    out: &mut Vec<(String, Rc<TensorRef>)>,
    seen: &mut HashSet<usize>,
) {
    if depth > MAX_DEPTH || !seen.insert(idx) {
        return;
    }
    let Some(Obj::Dict(d)) = arena.get(idx) else {
        return;
    };
    for (k, v) in &d.entries {
        let Value::Str(k) = k else { continue };
        let full = if prefix.is_empty() {
            k.to_string()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            Value::Tensor(t) => out.push((full, t.clone())),
            Value::Dict(i) => collect(arena, *i, &full, depth + 1, out, seen),
            _ => {}
        }
    }
}

/// Whether `name` is an `nn.GRU` parameter name: `{weight,bias}_{ih,hh}_l{k}[_reverse]`.
fn is_gru_name(name: &str) -> bool {
    let Some(rest) = ["weight_ih_l", "weight_hh_l", "bias_ih_l", "bias_hh_l"]
        .iter()
        .find_map(|p| name.strip_prefix(p))
    else {
        return false;
    };
    let digits = rest.strip_suffix("_reverse").unwrap_or(rest);
    !digits.is_empty() && digits.len() <= 6 && digits.bytes().all(|b| b.is_ascii_digit())
}

/// `(prefix, short name)` of a GRU tensor's dotted name.
fn split_gru(full: &str) -> Option<(&str, &str)> {
    let (prefix, short) = match full.rfind('.') {
        Some(i) => (&full[..=i], &full[i + 1..]),
        None => ("", full),
    };
    is_gru_name(short).then_some((prefix, short))
}

fn show_prefix(p: &str) -> String {
    if p.is_empty() {
        "'' (top level)".to_string()
    } else {
        format!("'{p}'")
    }
}

type Group = Vec<(String, Rc<TensorRef>)>;

/// Picks the module whose GRU tensors are read; returns its prefix and its tensors.
fn choose(found: Group, prefix: Option<&str>, name: &str) -> Result<(String, Group)> {
    choose_module(found, prefix, name, |t| {
        (t.size.len() == 2).then(|| (t.size[0], t.size[1]))
    })
}

/// The prefix of the module whose `nn.GRU` tensor names are read, among the dotted tensor names
/// of a full `state_dict` (`gru.weight_ih_l0`, `fc.weight`, …), chosen as [`read_checkpoint`]
/// does; `""` when the names are `nn.GRU`'s own.
pub(crate) fn gru_prefix(
    names: &[(String, Option<(u64, u64)>)],
    prefix: Option<&str>,
    name: &str,
) -> Result<String> {
    let found: Vec<(String, Option<(u64, u64)>)> = names.to_vec();
    choose_module(found, prefix, name, |d| *d).map(|(p, _)| p)
}

/// [`choose`] over any tensor type; `dims` gives a rank-2 tensor's two dimensions.
fn choose_module<T>(
    found: Vec<(String, T)>,
    prefix: Option<&str>,
    name: &str,
    dims: impl Fn(&T) -> Option<(u64, u64)>,
) -> Result<(String, Vec<(String, T)>)> {
    let mut groups: BTreeMap<String, Vec<(String, T)>> = BTreeMap::new();
    let mut others = Vec::new();
    for (full, t) in found {
        match split_gru(&full) {
            Some((p, short)) => groups
                .entry(p.to_string())
                .or_default()
                .push((short.to_string(), t)),
            None => others.push(full),
        }
    }
    let list = |ps: &[&String]| {
        ps.iter()
            .map(|p| show_prefix(p))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if groups.is_empty() {
        let mut shown: Vec<&str> = others.iter().map(String::as_str).take(12).collect();
        if others.len() > 12 {
            shown.push("…");
        }
        return Err(Error::UnknownLayout(format!(
            "no nn.GRU tensors (weight_ih_l0, weight_hh_l0, …) in {name}, among tensors [{}]",
            shown.join(", ")
        )));
    }
    let all: Vec<&String> = groups.keys().collect();
    let key: String = match prefix {
        Some(p) => {
            let p = if p.is_empty() || p.ends_with('.') {
                p.to_string()
            } else {
                format!("{p}.")
            };
            if groups.contains_key(&p) {
                p
            } else {
                let dotted = format!(".{p}");
                let hits: Vec<&String> = all
                    .iter()
                    .copied()
                    .filter(|k| !p.is_empty() && k.ends_with(&dotted))
                    .collect();
                match hits.as_slice() {
                    [k] => (*k).clone(),
                    [] => {
                        return Err(Error::UnknownLayout(format!(
                            "no nn.GRU tensors under prefix {} in {name}; GRU prefixes found: {}",
                            show_prefix(&p),
                            list(&all)
                        )));
                    }
                    many => {
                        return Err(Error::UnknownLayout(format!(
                            "prefix {} matches several GRUs in {name}: {}; pass the full prefix",
                            show_prefix(&p),
                            list(many)
                        )));
                    }
                }
            }
        }
        None if all.len() == 1 => all[0].clone(),
        None => {
            let gru_like: Vec<&String> = all
                .iter()
                .copied()
                .filter(|k| {
                    groups[*k].iter().any(|(s, t)| {
                        s == "weight_hh_l0"
                            && dims(t).is_some_and(|(a, b)| b > 0 && b.checked_mul(3) == Some(a))
                    })
                })
                .collect();
            match gru_like.as_slice() {
                [k] => (*k).clone(),
                _ => {
                    return Err(Error::UnknownLayout(format!(
                        "several modules in {name} have nn.GRU tensors: prefixes {}; pass \
                         a prefix to choose one",
                        list(&all)
                    )));
                }
            }
        }
    };
    let group = groups.remove(&key).unwrap_or_default();
    Ok((key, group))
}

// ---------------------------------------------------------------------------------------------
// Tensors.

/// The elements of `t` (called `full`), in row-major order, as f32.
fn gather(
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use zip::write::SimpleFileOptions;

    fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let opts = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
        for (n, b) in entries {
            w.start_file(*n, opts).unwrap();
            w.write_all(b).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    fn short(s: &str) -> Vec<u8> {
        let mut v = vec![0x8c, s.len() as u8];
        v.extend_from_slice(s.as_bytes());
        v
    }

    fn global(m: &str, n: &str) -> Vec<u8> {
        let mut v = short(m);
        v.extend(short(n));
        v.push(0x93);
        v
    }

    /// A protocol-4 pickle of `{name: tensor}` where each tensor is
    /// `(storage class, key, numel, offset, size, stride)`.
    /// (key, storage type, storage key, …): the fields each test tensor is built from.
    type TensorSpec<'a> = (&'a str, &'a str, &'a str, u8, u8, &'a [u8], &'a [u8]);

    fn state_dict(tensors: &[TensorSpec<'_>]) -> Vec<u8> {
        let mut p = vec![0x80, 4, b'}', b'('];
        for (name, class, key, numel, offset, size, stride) in tensors {
            p.extend(short(name));
            p.extend(global("torch._utils", "_rebuild_tensor_v2"));
            p.extend([b'(', b'(']);
            p.extend(short("storage"));
            p.extend(global("torch", class));
            p.extend(short(key));
            p.extend(short("cpu"));
            p.extend([b'K', *numel, b't', b'Q', b'K', *offset]);
            for dims in [size, stride] {
                p.push(b'(');
                for d in *dims {
                    p.extend([b'K', *d]);
                }
                p.push(b't');
            }
            p.extend([0x89, b'}', b't', b'R']);
        }
        p.extend([b'u', b'.']);
        p
    }

    fn f32s(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn reads_strided_and_shared_storages() {
        // weight_hh_l0 [3, 1] is a transposed view; weight_ih_l0 [3, 2] a strided slice with an
        // offset; both biases share one storage.
        let w: Vec<f32> = (0..12).map(|i| i as f32).collect();
        let pkl = state_dict(&[
            ("weight_ih_l0", "FloatStorage", "0", 12, 1, &[3, 2], &[4, 2]),
            ("weight_hh_l0", "FloatStorage", "1", 3, 0, &[3, 1], &[1, 3]),
            ("bias_ih_l0", "HalfStorage", "2", 6, 0, &[3], &[1]),
            ("bias_hh_l0", "HalfStorage", "2", 6, 3, &[3], &[1]),
        ]);
        let b: Vec<u8> = (0..6)
            .flat_map(|i| half::f16::from_f32(i as f32 / 2.0).to_le_bytes())
            .collect();
        let file = zip_of(&[
            ("ck/data.pkl", &pkl),
            ("ck/byteorder", b"little"),
            ("ck/data/0", &f32s(&w)),
            ("ck/data/1", &f32s(&[7.0, 8.0, 9.0])),
            ("ck/data/2", &b),
        ]);
        assert!(is_zip(&file));
        let st = read_checkpoint(&file, "t.pt", None).unwrap();
        let t = st.get_f32("weight_ih_l0").unwrap().unwrap();
        assert_eq!(t.shape, [3, 2]);
        assert_eq!(t.data, [1.0, 3.0, 5.0, 7.0, 9.0, 11.0]);
        let t = st.get_f32("weight_hh_l0").unwrap().unwrap();
        assert_eq!(t.data, [7.0, 8.0, 9.0]);
        assert_eq!(
            st.get_f32("bias_ih_l0").unwrap().unwrap().data,
            [0.0, 0.5, 1.0]
        );
        assert_eq!(
            st.get_f32("bias_hh_l0").unwrap().unwrap().data,
            [1.5, 2.0, 2.5]
        );
    }

    #[test]
    fn refuses_out_of_storage_views_and_other_dtypes() {
        let data = f32s(&[0.0; 4]);
        for (size, stride, offset) in [(&[2u8, 2][..], &[2u8, 1][..], 1u8), (&[3, 2], &[2, 1], 0)] {
            let pkl = state_dict(&[("weight_hh_l0", "FloatStorage", "0", 4, offset, size, stride)]);
            let file = zip_of(&[("a/data.pkl", &pkl), ("a/data/0", &data)]);
            let e = read_checkpoint(&file, "t.pt", None)
                .unwrap_err()
                .to_string();
            assert!(e.contains("reads element"), "{e}");
        }
        let pkl = state_dict(&[("weight_hh_l0", "LongStorage", "0", 2, 0, &[2], &[1])]);
        let file = zip_of(&[("a/data.pkl", &pkl), ("a/data/0", &data)]);
        let e = read_checkpoint(&file, "t.pt", None).unwrap_err();
        assert!(matches!(e, Error::UnsupportedDtype { .. }), "{e}");
        // The storage entry must be exactly as long as its numel says.
        let pkl = state_dict(&[("weight_hh_l0", "FloatStorage", "0", 5, 0, &[2], &[1])]);
        let file = zip_of(&[("a/data.pkl", &pkl), ("a/data/0", &data)]);
        assert!(read_checkpoint(&file, "t.pt", None).is_err());
    }

    fn run_pickle(p: &[u8]) -> Result<Value> {
        Vm::new(p, "t.pkl").run()
    }

    #[test]
    fn refuses_unknown_globals_by_name() {
        let mut p = vec![0x80, 2];
        p.extend(b"cos\nsystem\n(X\x02\x00\x00\x00idtR.");
        let e = run_pickle(&p).unwrap_err().to_string();
        assert!(e.contains("os.system"), "{e}");
        let mut p = vec![0x80, 4];
        p.extend(global("builtins", "eval"));
        p.push(b'.');
        assert!(
            run_pickle(&p)
                .unwrap_err()
                .to_string()
                .contains("builtins.eval")
        );
        let p = b"\x80\x02c__main__\nNet\n)\x81.";
        let e = run_pickle(p).unwrap_err().to_string();
        assert!(
            e.contains("state_dict()") && e.contains("__main__.Net"),
            "{e}"
        );
    }

    #[test]
    fn machine_limits_and_semantics() {
        // LONG1 sign extension.
        let v = run_pickle(b"\x80\x02\x8a\x02\xff\x7f.").unwrap();
        assert!(matches!(v, Value::Int(0x7fff)));
        let v = run_pickle(b"\x80\x02\x8a\x01\xfe.").unwrap();
        assert!(matches!(v, Value::Int(-2)));
        // Deeply nested tuples are refused, not overflowing the stack on drop.
        let mut p = b"\x80\x02)".to_vec();
        p.extend(std::iter::repeat_n(0x85, 100_000));
        p.push(b'.');
        assert!(run_pickle(&p).unwrap_err().to_string().contains("nested"));
        // A string longer than the bytes left.
        assert!(run_pickle(b"\x80\x02X\xff\xff\xff\xffab.").is_err());
        assert!(run_pickle(b"\x80\x04\x8d\xff\xff\xff\xff\xff\xff\xff\xffab.").is_err());
        // Popping through a MARK, a memo entry never stored, no STOP.
        assert!(run_pickle(b"(0.").is_err());
        assert!(run_pickle(b"(K\x01(s.").is_err());
        assert!(run_pickle(b"h\x05.").is_err());
        assert!(run_pickle(b"}").is_err());
        assert!(run_pickle(b"").is_err());
        // The stack and the MARKs are bounded.
        let mut p = b"\x80\x02".to_vec();
        p.extend(std::iter::repeat_n(b'N', MAX_STACK + 1));
        assert!(
            run_pickle(&p)
                .unwrap_err()
                .to_string()
                .contains("stack deeper")
        );
        let mut p = b"\x80\x02".to_vec();
        p.extend(std::iter::repeat_n(b'(', MAX_STACK + 1));
        assert!(run_pickle(&p).unwrap_err().to_string().contains("MARKs"));
        // A list holding itself, and a dict holding itself: read and walked without looping.
        let v = run_pickle(b"]q\x00h\x00a.").unwrap();
        assert!(matches!(v, Value::List(_)));
        let mut vm = Vm::new(b"}q\x00X\x01\x00\x00\x00ah\x00s.", "t");
        let Value::Dict(root) = vm.run().unwrap() else {
            panic!()
        };
        let mut out = Vec::new();
        collect(&vm.arena, root, "", 0, &mut out, &mut HashSet::new());
        assert!(out.is_empty());
    }

    #[test]
    fn choose_prefixes() {
        let st = Rc::new(StorageRef {
            dtype: StorageType::F32,
            key: Rc::from("0"),
            numel: 12,
        });
        let t = |size: &[u64]| {
            Rc::new(TensorRef {
                storage: st.clone(),
                offset: 0,
                size: size.to_vec(),
                stride: vec![1; size.len()],
            })
        };
        let found = |names: &[(&str, &[u64])]| -> Group {
            names.iter().map(|(n, s)| (n.to_string(), t(s))).collect()
        };
        let two = found(&[
            ("model.enc.weight_hh_l0", &[6, 2]),
            ("model.dec.weight_hh_l0", &[6, 2]),
            ("model.head.weight", &[2, 2]),
        ]);
        let e = choose(two.clone(), None, "x").unwrap_err().to_string();
        assert!(e.contains("'model.dec.'") && e.contains("a prefix"), "{e}");
        assert_eq!(
            choose(two.clone(), Some("model.enc."), "x").unwrap().0,
            "model.enc."
        );
        assert_eq!(
            choose(two.clone(), Some("dec"), "x").unwrap().0,
            "model.dec."
        );
        assert!(choose(two, Some("nope"), "x").is_err());
        // An LSTM next to the GRU: the GRU is the one whose weight_hh_l0 is [3H, H].
        let mixed = found(&[
            ("lstm.weight_hh_l0", &[8, 2]),
            ("gru.weight_hh_l0", &[6, 2]),
        ]);
        assert_eq!(choose(mixed, None, "x").unwrap().0, "gru.");
        let none = found(&[("head.weight", &[2, 2])]);
        assert!(matches!(
            choose(none, None, "x"),
            Err(Error::UnknownLayout(_))
        ));
    }
}
