//! Safetensors files built by hand, so that they can be wrong in every way: tensors of any dtype,
//! shape and data (or none), and valid models in every layout to start mutations from.

use super::random::Rng;

/// One tensor of a hand-built safetensors file: name, dtype, shape, raw data.
#[derive(Clone, Debug)]
pub struct T {
    pub name: String,
    pub dtype: &'static str,
    pub shape: Vec<usize>,
    pub data: Vec<u8>,
}

/// An F32 tensor of `shape` with random values in ±0.5 (from `seed`).
pub fn t(name: &str, shape: &[usize], seed: u64) -> T {
    let n: usize = shape.iter().product();
    T {
        name: name.into(),
        dtype: "F32",
        shape: shape.to_vec(),
        data: Rng::new(seed)
            .vec(n, 0.5)
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
    }
}

/// A tensor that declares `shape` but holds no data (its shape has a zero somewhere, or is
/// meant to be refused).
pub fn z(name: &str, shape: &[usize]) -> T {
    T {
        name: name.into(),
        dtype: "F32",
        shape: shape.to_vec(),
        data: Vec::new(),
    }
}

/// Serialises `tensors` (in order) with an optional `__metadata__`, without any checking.
pub fn st_bytes(tensors: &[T], meta: &[(&str, &str)]) -> Vec<u8> {
    let mut parts = Vec::new();
    if !meta.is_empty() {
        let m: Vec<String> = meta
            .iter()
            .map(|(k, v)| format!("{}:{}", json_str(k), json_str(v)))
            .collect();
        parts.push(format!("\"__metadata__\":{{{}}}", m.join(",")));
    }
    let mut off = 0usize;
    let mut data = Vec::new();
    for t in tensors {
        let shape: Vec<String> = t.shape.iter().map(|d| d.to_string()).collect();
        parts.push(format!(
            "{}:{{\"dtype\":\"{}\",\"shape\":[{}],\"data_offsets\":[{off},{}]}}",
            json_str(&t.name),
            t.dtype,
            shape.join(","),
            off + t.data.len()
        ));
        off += t.data.len();
        data.extend_from_slice(&t.data);
    }
    raw_st(&format!("{{{}}}", parts.join(",")), &data)
}

pub fn json_str(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// A safetensors file from a header text and data bytes.
pub fn raw_st(header: &str, data: &[u8]) -> Vec<u8> {
    let mut h = header.as_bytes().to_vec();
    while !h.len().is_multiple_of(8) {
        h.push(b' ');
    }
    let mut b = (h.len() as u64).to_le_bytes().to_vec();
    b.extend_from_slice(&h);
    b.extend_from_slice(data);
    b
}

/// A valid PyTorch state_dict: `layers` layers, 1 or 2 directions, H, I, with or without bias.
pub fn torch(layers: usize, dirs: usize, h: usize, i: usize, bias: bool) -> Vec<T> {
    let mut v = Vec::new();
    let mut seed = 1;
    for k in 0..layers {
        for d in 0..dirs {
            let sfx = if d == 1 { "_reverse" } else { "" };
            let in_k = if k == 0 { i } else { dirs * h };
            v.push(t(&format!("weight_ih_l{k}{sfx}"), &[3 * h, in_k], seed));
            v.push(t(&format!("weight_hh_l{k}{sfx}"), &[3 * h, h], seed + 1));
            if bias {
                v.push(t(&format!("bias_ih_l{k}{sfx}"), &[3 * h], seed + 2));
                v.push(t(&format!("bias_hh_l{k}{sfx}"), &[3 * h], seed + 3));
            }
            seed += 4;
        }
    }
    v
}

/// A valid Keras GRU: `bias_rows` 2 (reset_after), 1 (reset before), or no bias.
pub fn keras(h: usize, i: usize, bias_rows: Option<usize>) -> Vec<T> {
    let mut v = vec![
        t("kernel", &[i, 3 * h], 1),
        t("recurrent_kernel", &[h, 3 * h], 2),
    ];
    match bias_rows {
        Some(2) => v.push(t("bias", &[2, 3 * h], 3)),
        Some(_) => v.push(t("bias", &[3 * h], 3)),
        None => {}
    }
    v
}

/// A valid ONNX GRU's W, R and B with `d` directions.
pub fn onnx(d: usize, h: usize, i: usize) -> Vec<T> {
    vec![
        t("W", &[d, 3 * h, i], 1),
        t("R", &[d, 3 * h, h], 2),
        t("B", &[d, 6 * h], 3),
    ]
}

/// A valid seed-equation cell.
pub fn seed_cell(h: usize, i: usize) -> Vec<T> {
    let mut v: Vec<T> = ["W_z", "W_r", "W_h"]
        .iter()
        .enumerate()
        .map(|(k, n)| t(n, &[h, h + i], k as u64))
        .collect();
    for (k, n) in ["b_z", "b_r", "b_h"].iter().enumerate() {
        v.push(t(n, &[h], 10 + k as u64));
    }
    v
}

/// `v` without its tensor `name` (which must be there).
pub fn without(mut v: Vec<T>, name: &str) -> Vec<T> {
    let before = v.len();
    v.retain(|t| t.name != name);
    assert_eq!(v.len() + 1, before, "no tensor {name}");
    v
}

/// `v` with the tensor of `new`'s name replaced by `new`.
pub fn replace(mut v: Vec<T>, new: T) -> Vec<T> {
    let i = v.iter().position(|t| t.name == new.name).unwrap();
    v[i] = new;
    v
}
