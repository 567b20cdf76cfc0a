//! The restricted pickle machine: it builds only dicts, lists, tuples, scalars, strings and
//! tensor descriptors, within the limits of the module's documentation, and never calls
//! anything (a global is only a marker of which descriptor to build).

use std::collections::HashMap;
use std::rc::Rc;

use super::{MAX_DEPTH, MAX_GLOBAL_LINE, MAX_MEMO, MAX_OBJECTS, MAX_RANK, MAX_STACK, parse_err};
use crate::error::{Error, Result};

/// A torch storage class, used only as a dtype marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StorageType {
    F32,
    F16,
    BF16,
    F64,
    /// A storage of another dtype: allowed in a checkpoint, refused as a GRU weight.
    Other(&'static str),
}

pub(super) const OTHER_STORAGES: [&str; 8] = [
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

    pub(super) fn class(self) -> &'static str {
        match self {
            StorageType::F32 => "FloatStorage",
            StorageType::F16 => "HalfStorage",
            StorageType::BF16 => "BFloat16Storage",
            StorageType::F64 => "DoubleStorage",
            StorageType::Other(s) => s,
        }
    }

    pub(super) fn elem_size(self) -> Option<u64> {
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
pub(super) enum Global {
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
pub(super) struct StorageRef {
    pub(super) dtype: StorageType,
    pub(super) key: Rc<str>,
    pub(super) numel: u64,
}

#[derive(Debug)]
pub(super) struct TensorRef {
    pub(super) storage: Rc<StorageRef>,
    pub(super) offset: u64,
    pub(super) size: Vec<u64>,
    pub(super) stride: Vec<u64>,
}

#[derive(Debug)]
pub(super) struct Tuple {
    /// Nesting depth: 1 + the deepest tuple inside (lists and dicts live in the arena, so only
    /// tuples nest through `Rc`, and their drop recursion is bounded by this).
    pub(super) depth: usize,
    pub(super) items: Vec<Value>,
}

#[derive(Debug, Clone)]
pub(super) enum Value {
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
    pub(super) fn kind(&self) -> &'static str {
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
pub(super) struct Dict {
    pub(super) entries: Vec<(Value, Value)>,
    /// Position of each string key in `entries` (a later SETITEM replaces, as in Python).
    pub(super) index: HashMap<Rc<str>, usize>,
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
pub(super) enum Obj {
    List(Vec<Value>),
    Dict(Dict),
}

pub(super) struct Vm<'a> {
    pub(super) data: &'a [u8],
    pub(super) pos: usize,
    /// Offset of the opcode being run, for errors.
    pub(super) op_pos: usize,
    pub(super) file: &'a str,
    pub(super) stack: Vec<Value>,
    pub(super) marks: Vec<usize>,
    pub(super) memo: HashMap<u32, Value>,
    pub(super) arena: Vec<Obj>,
    pub(super) objects: usize,
}

impl<'a> Vm<'a> {
    pub(super) fn new(data: &'a [u8], file: &'a str) -> Self {
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
    pub(super) fn run(&mut self) -> Result<Value> {
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
