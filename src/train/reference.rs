//! The f64 backward (BPTT) oracle: simple, obviously right, slow. The GPU backward is tested
//! against it, and it is tested against PyTorch autograd (the golden gradients) and against
//! finite differences of [`crate::reference::forward`].
//!
//! It walks the equations of `GRU-BACKWARD.md` one row, one step at a time. The forward is run
//! again in f64 here (the same arithmetic as [`crate::reference::forward`], keeping r, z, n and
//! `U_n h + b_hn` of every step), then the steps are walked in the reverse of the order they were
//! processed.

use crate::config::{GruConfig, Variant};
use crate::error::Result;
use crate::io::SeqInput;
use crate::io::{Batch, Steps};
use crate::model::{Dense, GruClassifier};
use crate::reference::{from_time_major, initial_state, step_times, time_major};
use crate::weights::{CellWeights, Gru, GruWeights};

use super::{Gradients, check_trainable, check_upstream};

/// One processed step of one row: what the backward needs.
enum Entry {
    /// A valid step: time index read (`t_in`) and written (`t_out`), the state before it and the
    /// gates it computed.
    Step {
        t_in: usize,
        t_out: usize,
        /// h_{t−1} `[H]`.
        h: Vec<f64>,
        /// The gates the step computed.
        g: Gates,
    },
    /// A step a Keras mask skipped: the state passes through; the output at `t_out` repeats the
    /// state when `emits` (a valid step came before it and outputs are not zeroed).
    Masked { t_out: usize, emits: bool },
}

/// The f64 forward of a whole model, keeping everything the backward needs.
struct Tape {
    /// Each layer's input, time-major `[T, B, I_l]`.
    layer_in: Vec<Vec<f64>>,
    /// `[L][D][B]`: the processed steps of each row, in processing order.
    rows: Vec<Vec<Vec<Vec<Entry>>>>,
    /// The last layer's output, time-major `[T, B, D·H]`.
    output: Vec<f64>,
    /// `[L·D, B, H]`.
    h_n: Vec<f64>,
}

fn dot(w: &[f32], v: &[f64]) -> f64 {
    w.iter().zip(v).map(|(&a, &b)| a as f64 * b).sum()
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// The gates of one step, `[H]` each.
struct Gates {
    r: Vec<f64>,
    z: Vec<f64>,
    n: Vec<f64>,
    /// Reset-after: `U_n h + b_hn`; reset-before: empty.
    hn: Vec<f64>,
}

/// One step of one cell: returns the gates and h'.
fn cell(c: &CellWeights, variant: Variant, x: &[f64], h: &[f64]) -> (Gates, Vec<f64>) {
    let (hs, i) = (h.len(), x.len());
    let wx = |row: usize| dot(&c.w_ih[row * i..(row + 1) * i], x) + c.b_ih[row] as f64;
    let uh = |row: usize, v: &[f64]| dot(&c.w_hh[row * hs..(row + 1) * hs], v) + c.b_hh[row] as f64;
    let r: Vec<f64> = (0..hs).map(|j| sigmoid(wx(j) + uh(j, h))).collect();
    let z: Vec<f64> = (0..hs)
        .map(|j| sigmoid(wx(hs + j) + uh(hs + j, h)))
        .collect();
    let (n, hn) = match variant {
        Variant::ResetAfter => {
            let hn: Vec<f64> = (0..hs).map(|j| uh(2 * hs + j, h)).collect();
            let n: Vec<f64> = (0..hs)
                .map(|j| (wx(2 * hs + j) + r[j] * hn[j]).tanh())
                .collect();
            (n, hn)
        }
        Variant::ResetBefore => {
            let rh: Vec<f64> = r.iter().zip(h).map(|(a, b)| a * b).collect();
            let n: Vec<f64> = (0..hs)
                .map(|j| (wx(2 * hs + j) + uh(2 * hs + j, &rh)).tanh())
                .collect();
            (n, Vec::new())
        }
    };
    let h_new = (0..hs).map(|j| z[j] * h[j] + (1.0 - z[j]) * n[j]).collect();
    (Gates { r, z, n, hn }, h_new)
}

impl Tape {
    /// The forward of [`crate::reference::forward`], in f64, keeping every step's gates.
    fn record(gru: &Gru, input: &SeqInput<'_>) -> Tape {
        let c = &gru.config;
        let (t_len, b_len, h_len) = (input.steps, input.batch, c.hidden_size);
        let d_len = c.num_directions();
        let out_w = d_len * h_len;
        let mut layer_in = time_major(input.x, t_len, b_len, c.input_size, c.batch_first);
        let mut all_in = Vec::with_capacity(c.num_layers);
        let mut rows = Vec::with_capacity(c.num_layers);
        let mut h_n = vec![0.0; c.num_layers * d_len * b_len * h_len];
        for (l, dirs) in gru.weights.layers.iter().enumerate() {
            let in_w = c.layer_input_size(l);
            let mut layer_out = vec![0.0; t_len * b_len * out_w];
            let mut layer_rows = Vec::with_capacity(d_len);
            for (d, cw) in dirs.iter().enumerate() {
                let reverse = c.direction.is_reverse(d);
                let mut dir_rows = Vec::with_capacity(b_len);
                for b in 0..b_len {
                    let len = input.lengths.map_or(t_len, |v| v[b]);
                    let slot = (l * d_len + d) * b_len + b;
                    let mut h = initial_state(input.h0, slot, h_len);
                    let mut entries = Vec::with_capacity(len);
                    let mut seen = false;
                    for s in 0..len {
                        let (t_in, t_out) = step_times(reverse, c.go_backwards, len, t_len, s);
                        let o = (t_out * b_len + b) * out_w + d * h_len;
                        if !input.valid(b, t_in) {
                            let emits = seen && !input.zero_output_for_mask;
                            if emits {
                                layer_out[o..o + h_len].copy_from_slice(&h);
                            }
                            entries.push(Entry::Masked { t_out, emits });
                            continue;
                        }
                        seen = true;
                        let x0 = (t_in * b_len + b) * in_w;
                        let (g, h_new) = cell(cw, c.variant, &layer_in[x0..x0 + in_w], &h);
                        layer_out[o..o + h_len].copy_from_slice(&h_new);
                        entries.push(Entry::Step {
                            t_in,
                            t_out,
                            h: std::mem::replace(&mut h, h_new),
                            g,
                        });
                    }
                    h_n[slot * h_len..(slot + 1) * h_len].copy_from_slice(&h);
                    dir_rows.push(entries);
                }
                layer_rows.push(dir_rows);
            }
            all_in.push(std::mem::replace(&mut layer_in, layer_out));
            rows.push(layer_rows);
        }
        Tape {
            layer_in: all_in,
            rows,
            output: layer_in,
            h_n,
        }
    }
}

/// f64 gradient accumulators of one cell, laid out as [`CellWeights`].
struct CellGrads {
    w_ih: Vec<f64>,
    w_hh: Vec<f64>,
    b_ih: Vec<f64>,
    b_hh: Vec<f64>,
}

impl CellGrads {
    fn zeros(input: usize, hidden: usize) -> Self {
        CellGrads {
            w_ih: vec![0.0; 3 * hidden * input],
            w_hh: vec![0.0; 3 * hidden * hidden],
            b_ih: vec![0.0; 3 * hidden],
            b_hh: vec![0.0; 3 * hidden],
        }
    }
    fn to_f32(&self) -> CellWeights {
        let f = |v: &[f64]| v.iter().map(|&x| x as f32).collect();
        CellWeights {
            w_ih: f(&self.w_ih),
            w_hh: f(&self.w_hh),
            b_ih: f(&self.b_ih),
            b_hh: f(&self.b_hh),
        }
    }
}

/// The backward of one valid step. `dh_new` is dL/dh' (upstream output gradient plus the
/// carried one); accumulates the weight gradients into `g`, the input gradient into `dx`, and
/// returns dL/dh.
#[allow(clippy::too_many_arguments)]
fn step_backward(
    cw: &CellWeights,
    variant: Variant,
    x: &[f64],
    h: &[f64],
    gates: &Gates,
    dh_new: &[f64],
    g: &mut CellGrads,
    dx: &mut [f64],
) -> Vec<f64> {
    let Gates { r, z, n, hn } = gates;
    let hs = h.len();
    let i = x.len();
    let mut da = vec![0.0; 3 * hs]; // da_r, da_z, da_n
    let mut dh: Vec<f64> = (0..hs).map(|j| dh_new[j] * z[j]).collect();
    let mut dr = vec![0.0; hs];
    for j in 0..hs {
        let dz = dh_new[j] * (h[j] - n[j]);
        da[hs + j] = dz * z[j] * (1.0 - z[j]);
        let dn = dh_new[j] * (1.0 - z[j]);
        da[2 * hs + j] = dn * (1.0 - n[j] * n[j]);
    }
    let u_n = |j: usize, k: usize| cw.w_hh[(2 * hs + j) * hs + k] as f64;
    match variant {
        Variant::ResetAfter => {
            for j in 0..hs {
                let dan = da[2 * hs + j];
                dr[j] = dan * hn[j];
                let dhn = dan * r[j];
                for k in 0..hs {
                    g.w_hh[(2 * hs + j) * hs + k] += dhn * h[k];
                    dh[k] += u_n(j, k) * dhn;
                }
                g.b_hh[2 * hs + j] += dhn;
            }
        }
        Variant::ResetBefore => {
            for k in 0..hs {
                let drh: f64 = (0..hs).map(|j| u_n(j, k) * da[2 * hs + j]).sum();
                dr[k] = drh * h[k];
                dh[k] += drh * r[k];
            }
            for j in 0..hs {
                let dan = da[2 * hs + j];
                for k in 0..hs {
                    g.w_hh[(2 * hs + j) * hs + k] += dan * r[k] * h[k];
                }
                g.b_hh[2 * hs + j] += dan;
            }
        }
    }
    for j in 0..hs {
        da[j] = dr[j] * r[j] * (1.0 - r[j]);
    }
    // Input side, every gate.
    for (row, &d) in da.iter().enumerate() {
        for k in 0..i {
            g.w_ih[row * i + k] += d * x[k];
            dx[k] += cw.w_ih[row * i + k] as f64 * d;
        }
        g.b_ih[row] += d;
    }
    // Recurrent side, r and z (n was done above).
    for (row, &d) in da.iter().enumerate().take(2 * hs) {
        for k in 0..hs {
            g.w_hh[row * hs + k] += d * h[k];
            dh[k] += cw.w_hh[row * hs + k] as f64 * d;
        }
        g.b_hh[row] += d;
    }
    dh
}

/// The gradients of `L = Σ output ⊙ grad_output + Σ h_n ⊙ grad_h_n` with respect to the input,
/// `h0` and every weight and bias, in f64 (rounded to f32 at the end).
///
/// - `gru`: any structure the forward runs (layers, directions, batch-first, go_backwards,
///   both variants) with the standard activations (sigmoid, tanh) and no clip; others are
///   refused with [`Error::Unsupported`](crate::Error::Unsupported).
/// - `input`: as for [`crate::reference::forward`] (lengths and Keras masks included).
/// - `grad_output`: shaped like [`GruOutput::output`](crate::GruOutput::output), `[T, B, D·H]`
///   (`[B, T, D·H]` when batch-first). Entries past a row's length are ignored (the output there
///   is a constant 0).
/// - `grad_h_n`: `[L·D, B, H]`, like [`GruOutput::h_n`](crate::GruOutput::h_n).
///
/// Returns [`Gradients`]: `input` shaped like `input.x`, `h0` `[L·D, B, H]` (the gradient at
/// `input.h0`, or at zeros without one), and the weights in the canonical layout.
pub fn backward(
    gru: &Gru,
    input: &SeqInput<'_>,
    grad_output: &[f32],
    grad_h_n: &[f32],
) -> Result<Gradients> {
    gru.validate()?;
    input.validate(&gru.config)?;
    check_trainable(&gru.config)?;
    check_upstream(&gru.config, input.steps, input.batch, grad_output, grad_h_n)?;
    let c = &gru.config;
    let (t_len, b_len, h_len) = (input.steps, input.batch, c.hidden_size);
    let d_len = c.num_directions();
    let out_w = d_len * h_len;
    let tape = Tape::record(gru, input);

    let mut dy = time_major(grad_output, t_len, b_len, out_w, c.batch_first);
    let mut dh0 = vec![0.0f32; grad_h_n.len()];
    let mut grads: Vec<Vec<CellWeights>> = vec![Vec::new(); c.num_layers];
    for l in (0..c.num_layers).rev() {
        let in_w = c.layer_input_size(l);
        let layer_in = &tape.layer_in[l];
        let mut dx = vec![0.0; t_len * b_len * in_w];
        for (d, cw) in gru.weights.layers[l].iter().enumerate() {
            let mut g = CellGrads::zeros(in_w, h_len);
            for b in 0..b_len {
                let slot = (l * d_len + d) * b_len + b;
                let mut carry: Vec<f64> = grad_h_n[slot * h_len..(slot + 1) * h_len]
                    .iter()
                    .map(|&v| v as f64)
                    .collect();
                for e in tape.rows[l][d][b].iter().rev() {
                    match e {
                        Entry::Masked { t_out, emits } => {
                            if *emits {
                                let o = (t_out * b_len + b) * out_w + d * h_len;
                                for (c, &v) in carry.iter_mut().zip(&dy[o..o + h_len]) {
                                    *c += v;
                                }
                            }
                        }
                        Entry::Step {
                            t_in,
                            t_out,
                            h,
                            g: gates,
                        } => {
                            let o = (t_out * b_len + b) * out_w + d * h_len;
                            let dh_new: Vec<f64> = carry
                                .iter()
                                .zip(&dy[o..o + h_len])
                                .map(|(a, b)| a + b)
                                .collect();
                            let x0 = (t_in * b_len + b) * in_w;
                            carry = step_backward(
                                cw,
                                c.variant,
                                &layer_in[x0..x0 + in_w],
                                h,
                                gates,
                                &dh_new,
                                &mut g,
                                &mut dx[x0..x0 + in_w],
                            );
                        }
                    }
                }
                for (dst, &v) in dh0[slot * h_len..(slot + 1) * h_len].iter_mut().zip(&carry) {
                    *dst = v as f32;
                }
            }
            grads[l].push(g.to_f32());
        }
        dy = dx;
    }
    Ok(Gradients {
        input: from_time_major(&dy, t_len, b_len, c.input_size, c.batch_first),
        h0: dh0,
        weights: GruWeights { layers: grads },
    })
}

/// `L = Σ output ⊙ grad_output + Σ h_n ⊙ grad_h_n` for `gru` on `input`, all in f64 (the
/// forward this module's [`backward`] differentiates; it equals [`crate::reference::forward`]
/// before that rounds to f32). Shapes as for [`backward`]. For finite-difference checks.
pub fn loss(gru: &Gru, input: &SeqInput<'_>, grad_output: &[f32], grad_h_n: &[f32]) -> Result<f64> {
    gru.validate()?;
    input.validate(&gru.config)?;
    check_trainable(&gru.config)?;
    check_upstream(&gru.config, input.steps, input.batch, grad_output, grad_h_n)?;
    let c: &GruConfig = &gru.config;
    let tape = Tape::record(gru, input);
    let gy = time_major(
        grad_output,
        input.steps,
        input.batch,
        c.output_size(),
        c.batch_first,
    );
    let y: f64 = tape.output.iter().zip(&gy).map(|(a, b)| a * b).sum();
    let s: f64 = tape
        .h_n
        .iter()
        .zip(grad_h_n)
        .map(|(a, &b)| a * b as f64)
        .sum();
    Ok(y + s)
}

/// The classifier's f64 loss: the mean over the batch of the cross-entropy of
/// `softmax(dense(h))` with each row's label, where `h` `[B, H]` is the last layer's final state
/// of direction 0 (what [`GruClassifier`] classifies). `x` as for
/// [`GruClassifier::reference_forward`]; `labels` `[B]`, each below the classes.
pub fn classifier_loss(
    model: &GruClassifier,
    x: &[f32],
    labels: &[u32],
    steps: usize,
) -> Result<f64> {
    Ok(classifier_head(model, x, labels, steps)?.0)
}

/// The loss of [`classifier_loss`] and its gradients, in f64 (rounded to f32): returns
/// `(loss, GRU weight gradients, head gradients)` with the head's as a [`Dense`] (`weight`
/// `[C, H]`, `bias` `[C]`). The oracle of the GPU's training step.
pub fn classifier_backward(
    model: &GruClassifier,
    x: &[f32],
    labels: &[u32],
    steps: usize,
) -> Result<(f64, GruWeights, Dense)> {
    let (loss, h, dlogits) = classifier_head(model, x, labels, steps)?;
    let c = &model.gru.config;
    let (b_len, h_len, classes) = (labels.len(), c.hidden_size, model.num_classes());
    let mut dw = vec![0.0f64; classes * h_len];
    let mut db = vec![0.0f64; classes];
    let mut dh = vec![0.0f64; b_len * h_len];
    for b in 0..b_len {
        for k in 0..classes {
            let g = dlogits[b * classes + k];
            db[k] += g;
            for j in 0..h_len {
                dw[k * h_len + j] += g * h[b * h_len + j];
                dh[b * h_len + j] += g * model.dense.weight[k * h_len + j] as f64;
            }
        }
    }
    let ld = c.num_layers * c.num_directions();
    let mut gs = vec![0.0f32; ld * b_len * h_len];
    let slot = (c.num_layers - 1) * c.num_directions() * b_len * h_len;
    for (dst, &v) in gs[slot..slot + b_len * h_len].iter_mut().zip(&dh) {
        *dst = v as f32;
    }
    let gy = vec![0.0f32; steps * b_len * c.output_size()];
    let g = backward(
        &model.gru,
        &SeqInput::new(x, Steps(steps), Batch(b_len)),
        &gy,
        &gs,
    )?;
    let f = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect();
    let head = Dense {
        in_features: h_len,
        out_features: classes,
        weight: f(dw),
        bias: f(db),
    };
    Ok((loss, g.weights, head))
}

/// `(mean loss, h [B, H], dL/dlogits [B, C])` in f64.
fn classifier_head(
    model: &GruClassifier,
    x: &[f32],
    labels: &[u32],
    steps: usize,
) -> Result<(f64, Vec<f64>, Vec<f64>)> {
    model.validate()?;
    check_trainable(&model.gru.config)?;
    let c = &model.gru.config;
    let b_len = labels.len();
    let classes = model.num_classes();
    if let Some((i, &l)) = labels
        .iter()
        .enumerate()
        .find(|&(_, &l)| l as usize >= classes)
    {
        return Err(crate::Error::arg(
            "labels",
            format!("labels[{i}] = {l} is not a class below {classes}"),
        ));
    }
    let input = SeqInput::new(x, Steps(steps), Batch(b_len));
    input.validate(c)?;
    let tape = Tape::record(&model.gru, &input);
    let h_len = c.hidden_size;
    let slot = (c.num_layers - 1) * c.num_directions() * b_len * h_len;
    let h = tape.h_n[slot..slot + b_len * h_len].to_vec();
    let mut logits = model.dense.forward_f64(&h)?;
    let mut loss = 0.0;
    for (b, row) in logits.chunks_exact_mut(classes).enumerate() {
        let m = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = row.iter().map(|v| (v - m).exp()).sum();
        let label = labels[b] as usize;
        loss += m + sum.ln() - row[label];
        for (k, v) in row.iter_mut().enumerate() {
            let p = (*v - m).exp() / sum;
            *v = (p - if k == label { 1.0 } else { 0.0 }) / b_len as f64;
        }
    }
    Ok((loss / b_len.max(1) as f64, h, logits))
}
