//! PyTorch `nn.GRU` state_dict: `weight_ih_l{k}[_reverse]` `[3H, I_k]`,
//! `weight_hh_l{k}[_reverse]` `[3H, H]`, optional `bias_ih_l{k}[_reverse]` and
//! `bias_hh_l{k}[_reverse]` `[3H]`. Gate order r, z, n — already the canonical layout.

use super::tensors::{SafetensorsFile, check_rank, check_shape, times};
use super::{ImportOptions, finish_config};
use crate::config::{GruConfig, Variant};
use crate::error::{Error, Result};
use crate::npy::shape_str;
use crate::weights::{CellWeights, Gru, GruWeights};

const LAYOUT: &str = "pytorch";

/// Parses `{weight,bias}_{ih,hh}_l{k}[_reverse]` into `(k, reverse)`.
fn parse_name(name: &str) -> Option<(usize, bool)> {
    let rest = ["weight_ih_l", "weight_hh_l", "bias_ih_l", "bias_hh_l"]
        .iter()
        .find_map(|p| name.strip_prefix(p))?;
    let (digits, reverse) = match rest.strip_suffix("_reverse") {
        Some(d) => (d, true),
        None => (rest, false),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || digits.len() > 6 {
        return None;
    }
    Some((digits.parse().ok()?, reverse))
}

/// Whether `names` look like a PyTorch GRU state_dict.
pub(super) fn detect(names: &[String]) -> bool {
    names
        .iter()
        .any(|n| n.starts_with("weight_") && parse_name(n).is_some())
}

pub(super) fn import(file: &SafetensorsFile, opts: &ImportOptions) -> Result<Gru> {
    let fname = file.name();
    let names = file.names()?;
    let found: Vec<(usize, bool)> = names.iter().filter_map(|n| parse_name(n)).collect();
    let Some(num_layers) = found.iter().map(|&(k, _)| k + 1).max() else {
        return Err(Error::MissingTensor {
            name: "weight_ih_l0".into(),
            context: format!("{LAYOUT} layout in {fname}"),
        });
    };
    let directions = if found.iter().any(|&(_, r)| r) { 2 } else { 1 };
    let has_bias = names
        .iter()
        .any(|n| n.starts_with("bias_ih_l") || n.starts_with("bias_hh_l"));

    let w_hh0 = file.require_f32("weight_hh_l0", LAYOUT)?;
    check_rank("weight_hh_l0", fname, &w_hh0, 2, "[3H, H]")?;
    let hidden = w_hh0.shape[1];
    if hidden == 0 || hidden.checked_mul(3) != Some(w_hh0.shape[0]) {
        return Err(Error::shape(
            format!("weight_hh_l0 in {fname}"),
            format!("[3H, H] = [{}, {hidden}]", times(3, hidden)),
            shape_str(&w_hh0.shape),
        ));
    }
    let w_ih0 = file.require_f32("weight_ih_l0", LAYOUT)?;
    check_rank("weight_ih_l0", fname, &w_ih0, 2, "[3H, I]")?;
    let input = w_ih0.shape[1];

    let mut layers = Vec::with_capacity(num_layers);
    for k in 0..num_layers {
        let in_k = if k == 0 { input } else { directions * hidden };
        let mut dirs = Vec::with_capacity(directions);
        for d in 0..directions {
            let sfx = if d == 1 { "_reverse" } else { "" };
            let w_ih_name = format!("weight_ih_l{k}{sfx}");
            let w_hh_name = format!("weight_hh_l{k}{sfx}");
            let w_ih = file.require_f32(&w_ih_name, LAYOUT)?;
            check_shape(&w_ih_name, fname, &w_ih, &[3 * hidden, in_k])?;
            let w_hh = file.require_f32(&w_hh_name, LAYOUT)?;
            check_shape(&w_hh_name, fname, &w_hh, &[3 * hidden, hidden])?;
            let mut cell = CellWeights {
                w_ih: w_ih.data,
                w_hh: w_hh.data,
                b_ih: vec![0.0; 3 * hidden],
                b_hh: vec![0.0; 3 * hidden],
            };
            if has_bias {
                for (kind, dst) in [("ih", &mut cell.b_ih), ("hh", &mut cell.b_hh)] {
                    let name = format!("bias_{kind}_l{k}{sfx}");
                    let b = file.require_f32(&name, LAYOUT)?;
                    check_shape(&name, fname, &b, &[3 * hidden])?;
                    *dst = b.data;
                }
            }
            dirs.push(cell);
        }
        layers.push(dirs);
    }
    let mut config = GruConfig::new(input, hidden)
        .with_layers(num_layers)
        .with_variant(Variant::ResetAfter);
    config.batch_first = opts.batch_first;
    finish_config(&mut config, opts, directions, "weight_ih_l0", fname)?;
    Gru::new(config, GruWeights { layers })
}
