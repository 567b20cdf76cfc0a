//! `.npy` files written by hand, byte for byte: any format version, dtype, order and shape, padded
//! as numpy pads them or not at all, well-formed or not (the crate's own writer makes only
//! little-endian f32 files).
//!
//! Self-contained (std only): `fuzz/src/targets.rs` includes this file too.

/// A shape as numpy writes it in a header: `()`, `(3,)`, `(2, 3)`.
pub fn shape(dims: &[usize]) -> String {
    match dims {
        [d] => format!("({d},)"),
        _ => {
            let dims: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
            format!("({})", dims.join(", "))
        }
    }
}

/// A header dict with numpy's keys in numpy's order; `shape` is written as given.
pub fn dict(descr: &str, fortran: bool, shape: &str) -> String {
    let order = if fortran { "True" } else { "False" };
    format!("{{'descr': '{descr}', 'fortran_order': {order}, 'shape': {shape}, }}")
}

/// A file of format version `major`.0: magic, version, the header's length (a u16 in version 1,
/// a u32 after), `header` exactly as given, then `data`.
pub fn raw(major: u8, header: &str, data: &[u8]) -> Vec<u8> {
    let mut b = b"\x93NUMPY".to_vec();
    b.push(major);
    b.push(0);
    if major == 1 {
        b.extend_from_slice(&(header.len() as u16).to_le_bytes());
    } else {
        b.extend_from_slice(&(header.len() as u32).to_le_bytes());
    }
    b.extend_from_slice(header.as_bytes());
    b.extend_from_slice(data);
    b
}

/// A version 1.0 file as `np.save` writes it: the dict padded with spaces and ended by a newline
/// so that the data start at a multiple of 64 bytes.
pub fn file(descr: &str, fortran: bool, dims: &[usize], data: &[u8]) -> Vec<u8> {
    let mut header = dict(descr, fortran, &shape(dims));
    while !(10 + header.len() + 1).is_multiple_of(64) {
        header.push(' ');
    }
    header.push('\n');
    raw(1, &header, data)
}

/// [`file`], written to `path`.
pub fn write(path: &std::path::Path, descr: &str, fortran: bool, dims: &[usize], data: &[u8]) {
    std::fs::write(path, file(descr, fortran, dims, data)).unwrap();
}

/// An int64 vector (lengths, as numpy writes them).
pub fn i64s(values: &[i64]) -> Vec<u8> {
    let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    file("<i8", false, &[values.len()], &data)
}
