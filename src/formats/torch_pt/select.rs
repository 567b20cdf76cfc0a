//! Choosing the GRU among a checkpoint's tensors: their dotted names are grouped by module
//! prefix, and the one module with `nn.GRU` names (or the one `prefix` names) is taken.

use std::collections::{BTreeMap, HashSet};
use std::rc::Rc;

use super::MAX_DEPTH;
use super::pickle::{Obj, TensorRef, Value};
use crate::error::{Error, Result};

/// Every tensor reachable from dict `idx` through string keys, with its dotted name.
pub(super) fn collect(
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
pub(super) fn is_gru_name(name: &str) -> bool {
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
pub(super) fn split_gru(full: &str) -> Option<(&str, &str)> {
    let (prefix, short) = match full.rfind('.') {
        Some(i) => (&full[..=i], &full[i + 1..]),
        None => ("", full),
    };
    is_gru_name(short).then_some((prefix, short))
}

pub(super) fn show_prefix(p: &str) -> String {
    if p.is_empty() {
        "'' (top level)".to_string()
    } else {
        format!("'{p}'")
    }
}

pub(super) type Group = Vec<(String, Rc<TensorRef>)>;

/// Picks the module whose GRU tensors are read; returns its prefix and its tensors.
pub(super) fn choose(found: Group, prefix: Option<&str>, name: &str) -> Result<(String, Group)> {
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
pub(super) fn choose_module<T>(
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
