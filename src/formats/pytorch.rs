//! PyTorch `nn.GRU` state_dict: `weight_ih_l{k}[_reverse]` `[3H, I_k]`,
//! `weight_hh_l{k}[_reverse]` `[3H, H]`, optional `bias_ih_l{k}[_reverse]` and
//! `bias_hh_l{k}[_reverse]` `[3H]`. Gate order r, z, n — already the canonical layout.
//! Arrays: X `[T, B, I]` (`[B, T, I]` batch_first), h0 and h_n `[L·D, B, H]`, Y `[T, B, D·H]`
//! (`[B, T, D·H]`).

use super::layout::{Layout, NamedTensor};
use super::tensors::{SafetensorsFile, check_rank, check_shape, shape_str, times};
use super::{Format, ImportOptions, TensorNames, finish_config};
use crate::config::{GruConfig, Variant};
use crate::error::{Error, Result};
use crate::weights::{CellWeights, Gru, GruWeights};

const LAYOUT: &str = "pytorch";

/// The PyTorch layout.
pub(super) struct PyTorch;

impl Layout for PyTorch {
    fn name(&self) -> &'static str {
        LAYOUT
    }

    fn aliases(&self) -> &'static [&'static str] {
        &["torch"]
    }

    fn summary(&self) -> &'static str {
        "PyTorch nn.GRU state_dict"
    }

    fn hint(&self) -> &'static str {
        "pytorch (weight_ih_l0)"
    }

    fn detect(&self, names: &[String]) -> bool {
        detect(names)
    }

    fn import(&self, file: &SafetensorsFile, opts: &ImportOptions) -> Result<Gru> {
        import(file, opts)
    }

    /// `weight_ih_l{k}[_reverse]` `[3H, I_k]`, `weight_hh_l{k}[_reverse]` `[3H, H]`,
    /// `bias_ih_l{k}[_reverse]`, `bias_hh_l{k}[_reverse]` `[3H]`: the canonical tensors as they
    /// are.
    fn export(&self, config: &GruConfig, weights: &GruWeights) -> Result<Vec<NamedTensor>> {
        let h = config.hidden_size;
        let mut out = Vec::new();
        for (l, dirs) in weights.layers.iter().enumerate() {
            let in_l = config.layer_input_size(l);
            for (d, c) in dirs.iter().enumerate() {
                let sfx = if d == 1 { "_reverse" } else { "" };
                out.push(NamedTensor::new(
                    format!("weight_ih_l{l}{sfx}"),
                    vec![3 * h, in_l],
                    c.w_ih.clone(),
                ));
                out.push(NamedTensor::new(
                    format!("weight_hh_l{l}{sfx}"),
                    vec![3 * h, h],
                    c.w_hh.clone(),
                ));
                out.push(NamedTensor::new(
                    format!("bias_ih_l{l}{sfx}"),
                    vec![3 * h],
                    c.b_ih.clone(),
                ));
                out.push(NamedTensor::new(
                    format!("bias_hh_l{l}{sfx}"),
                    vec![3 * h],
                    c.b_hh.clone(),
                ));
            }
        }
        Ok(out)
    }

    fn refuse_shapes(&self, _config: &GruConfig) -> Option<&'static str> {
        None
    }

    fn names(&self) -> TensorNames {
        TensorNames {
            state: "h_n",
            ..TensorNames::CANONICAL
        }
    }
}

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
fn detect(names: &[String]) -> bool {
    names
        .iter()
        .any(|n| n.starts_with("weight_") && parse_name(n).is_some())
}

fn import(file: &SafetensorsFile, opts: &ImportOptions) -> Result<Gru> {
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

/// The module of a full `state_dict` in safetensors: the tensors under `prefix`, or, without
/// one, under the only module prefix with `nn.GRU` names (the file as it is when its names are
/// `nn.GRU`'s own, or another layout's).
pub(super) fn select_module(
    file: SafetensorsFile,
    format: Option<Format>,
    prefix: Option<&str>,
) -> Result<SafetensorsFile> {
    let names = file.names()?;
    let pytorch_like = matches!(format, None | Some(Format::PyTorch));
    if prefix.is_none() && (!pytorch_like || Format::detect(&names).is_ok()) {
        return Ok(file);
    }
    if !pytorch_like {
        let p = prefix.unwrap_or_default();
        return file.select_prefix(p);
    }
    let dims: Vec<(String, Option<(u64, u64)>)> = names
        .iter()
        .map(|n| {
            let d = file.shape(n).ok().flatten().and_then(|s| match s[..] {
                [a, b] => Some((a as u64, b as u64)),
                _ => None,
            });
            (n.clone(), d)
        })
        .collect();
    let p = super::torch_pt::gru_prefix(&dims, prefix, file.name())?;
    if p.is_empty() {
        return Ok(file);
    }
    file.select_prefix(&p)
}
