//! Runs a [`KerasModel`]'s chain of layers as `model.predict(x)` does: `x` `[B, T, I]`.
//!
//! - `Masking`: `mask[b, t] = any(x[b, t, :] != mask_value)`, masked steps zeroed (Keras
//!   multiplies by the mask); the mask goes with the sequence through `GRU`s that return
//!   sequences and through `Dense`, and ends at a `GRU` that returns its last state.
//! - `GRU`: `[B, T, F]` → `[B, T, H]` (`return_sequences`, in processing order with
//!   `go_backwards`, as Keras 3 returns it) or `[B, H]` (the state after the last step read).
//! - `Bidirectional(GRU)`: forward and backward halves, the backward one in input order, merged
//!   by `merge_mode` (`concat` ⇒ `2H`); masked steps output zeros there, as Keras sets
//!   `zero_output_for_mask` on the wrapped layers when they return sequences.
//! - `Dense`: on the last axis of `[B, F]` or `[B, T, F]`, in f64, then its activation.

use super::{Array, RunGru};
use crate::error::{Error, Result};
use crate::formats::keras_file::{KerasLayer, KerasModel, MergeMode};
use crate::formats::shape_str;
use crate::io::{Batch, SeqInput, Steps};
use crate::weights::Gru;

/// The GRUs of `model`, in the order they run (a `Bidirectional` is one two-direction GRU).
pub(crate) fn grus(model: &KerasModel) -> Vec<&Gru> {
    model
        .layers
        .iter()
        .filter_map(|l| match l {
            KerasLayer::Gru { gru, .. } | KerasLayer::Bidirectional { gru, .. } => Some(gru),
            _ => None,
        })
        .collect()
}

/// `Masking → GRU(18) → Dense(3, Softmax)`.
pub(crate) fn describe(model: &KerasModel) -> String {
    let parts: Vec<String> = model
        .layers
        .iter()
        .map(|l| match l {
            KerasLayer::Masking { mask_value } => format!("Masking({mask_value})"),
            KerasLayer::Gru {
                gru,
                return_sequences,
                ..
            } => format!(
                "GRU({}{})",
                gru.config.hidden_size,
                if *return_sequences { ", sequences" } else { "" }
            ),
            KerasLayer::Bidirectional {
                gru,
                merge_mode,
                return_sequences,
                ..
            } => format!(
                "Bidirectional(GRU({}), {merge_mode:?}{})",
                gru.config.hidden_size,
                if *return_sequences { ", sequences" } else { "" }
            ),
            KerasLayer::Dense {
                dense, activation, ..
            } => format!("Dense({}, {activation:?})", dense.out_features),
        })
        .collect();
    parts.join(" → ")
}

/// Checks `x` against what `model.predict` takes, `[B, T, I]`, and returns `(B, T, I)`.
pub(crate) fn check_input(model: &KerasModel, x: &Array) -> Result<(usize, usize, usize)> {
    let [b, t, i] = x.shape[..] else {
        return Err(Error::shape(
            "x",
            "[B, T, I] (what Keras's model.predict takes)",
            shape_str(&x.shape),
        ));
    };
    if let Some(want) = model.input_features
        && want != i
    {
        return Err(Error::shape(
            "x",
            format!("[B, T, {want}] (the model's input features)"),
            shape_str(&x.shape),
        ));
    }
    if let Some(want) = model.input_steps
        && want != t
    {
        return Err(Error::shape(
            "x",
            format!("[B, {want}, {i}] (the model's input is fixed at T = {want})"),
            shape_str(&x.shape),
        ));
    }
    Ok((b, t, i))
}

/// `model.predict(x)`: `x` is `[B, T, I]`; `run` runs the model's k-th GRU.
pub(crate) async fn predict(model: &KerasModel, x: &Array, run: &dyn RunGru) -> Result<Array> {
    let (b, _, _) = check_input(model, x)?;
    let mut cur = x.clone();
    let mut mask: Option<Vec<bool>> = None;
    let mut k = 0;
    for layer in &model.layers {
        match layer {
            KerasLayer::Masking { mask_value } => {
                let [_, _, f] = cur.shape[..] else {
                    return Err(rank3("Masking", &cur));
                };
                let m: Vec<bool> = cur
                    .data
                    .chunks_exact(f.max(1))
                    .map(|step| step.iter().any(|v| v != mask_value))
                    .collect();
                for (step, &keep) in cur.data.chunks_exact_mut(f.max(1)).zip(&m) {
                    if !keep {
                        step.fill(0.0);
                    }
                }
                mask = Some(m);
            }
            KerasLayer::Gru {
                name,
                gru,
                return_sequences,
            }
            | KerasLayer::Bidirectional {
                name,
                gru,
                return_sequences,
                ..
            } => {
                let [b, t, f] = cur.shape[..] else {
                    return Err(rank3(name, &cur));
                };
                if f != gru.config.input_size {
                    return Err(Error::shape(
                        format!("input of layer {name:?}"),
                        format!("[{b}, {t}, {}]", gru.config.input_size),
                        shape_str(&cur.shape),
                    ));
                }
                let merge = match layer {
                    KerasLayer::Bidirectional { merge_mode, .. } => Some(*merge_mode),
                    _ => None,
                };
                let mut input = SeqInput::new(&cur.data, Steps(t), Batch(b));
                if let Some(m) = &mask {
                    input = input
                        .with_mask(m)
                        .with_zero_output_for_mask(merge.is_some() && *return_sequences);
                }
                let out = run.run_gru(k, &input).await?;
                k += 1;
                let h = gru.config.hidden_size;
                let d = gru.config.num_directions();
                cur = if *return_sequences {
                    let y = Array::new(vec![b, t, d * h], out.output)?;
                    match merge {
                        Some(m) => merge_halves(&y, m)?,
                        None => y,
                    }
                } else {
                    // h_n [D, B, H] → [B, D·H]: forward then backward per row.
                    let mut last = Vec::with_capacity(b * d * h);
                    for row in 0..b {
                        for dir in 0..d {
                            let at = (dir * b + row) * h;
                            let s = out.h_n.get(at..at + h).ok_or_else(|| {
                                Error::shape("h_n", format!("[{d}, {b}, {h}]"), out.h_n.len())
                            })?;
                            last.extend_from_slice(s);
                        }
                    }
                    let y = Array::new(vec![b, d * h], last)?;
                    mask = None;
                    match merge {
                        Some(m) => merge_halves(&y, m)?,
                        None => y,
                    }
                };
            }
            KerasLayer::Dense {
                name,
                dense,
                activation,
            } => {
                let f = cur.shape.last().copied().unwrap_or(0);
                if cur.shape.len() < 2 || f != dense.in_features {
                    return Err(Error::shape(
                        format!("input of layer {name:?}"),
                        format!("[.., {}]", dense.in_features),
                        shape_str(&cur.shape),
                    ));
                }
                let xs: Vec<f64> = cur.data.iter().map(|&v| f64::from(v)).collect();
                let mut y = dense.forward_f64(&xs)?;
                activation.apply_rows(&mut y, dense.out_features);
                let mut shape = cur.shape.clone();
                if let Some(last) = shape.last_mut() {
                    *last = dense.out_features;
                }
                cur = Array::new(shape, y.into_iter().map(|v| v as f32).collect())?;
            }
        }
    }
    let _ = b;
    Ok(cur)
}

fn rank3(layer: &str, cur: &Array) -> Error {
    Error::shape(
        format!("input of layer {layer:?}"),
        "a sequence [B, T, F]",
        shape_str(&cur.shape),
    )
}

/// Merges the forward and backward halves of the last axis of `y` `[.., 2H]`.
fn merge_halves(y: &Array, mode: MergeMode) -> Result<Array> {
    let f = y.shape.last().copied().unwrap_or(0);
    let h = f / 2;
    let combine = |a: f32, b: f32| match mode {
        MergeMode::Sum => a + b,
        MergeMode::Ave => (a + b) / 2.0,
        MergeMode::Mul => a * b,
        _ => a,
    };
    match mode {
        MergeMode::Concat => Ok(y.clone()),
        MergeMode::Sum | MergeMode::Ave | MergeMode::Mul => {
            let data = y
                .data
                .chunks_exact(f.max(1))
                .flat_map(|row| (0..h).map(move |j| combine(row[j], row[h + j])))
                .collect();
            let mut shape = y.shape.clone();
            if let Some(last) = shape.last_mut() {
                *last = h;
            }
            Array::new(shape, data)
        }
        MergeMode::None => Err(Error::Unsupported(
            "Bidirectional with merge_mode=None returns two outputs".into(),
        )),
    }
}
