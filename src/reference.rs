//! The f64 oracle: short, obviously right, slow. Every other path is tested against it.

use crate::config::{Activation, Variant};
use crate::error::Result;
use crate::io::{GruOutput, SeqInput};
use crate::weights::{CellWeights, Gru};

/// Runs `gru` on `input` in f64 and rounds the results to f32.
///
/// Shapes are those of [`SeqInput`] and [`GruOutput`].
pub fn forward(gru: &Gru, input: &SeqInput<'_>) -> Result<GruOutput> {
    gru.validate()?;
    input.validate(&gru.config)?;
    let c = &gru.config;
    let (t_len, b_len, h_len) = (input.steps, input.batch, c.hidden_size);
    let d_len = c.num_directions();
    // Layer input, time-major [T, B, I_l], in f64.
    let mut layer_in = time_major(input.x, t_len, b_len, c.input_size, c.batch_first);
    let mut h_n = vec![0.0f32; c.num_layers * d_len * b_len * h_len];
    let out_w = d_len * h_len;
    let mut layer_out = Vec::new();
    for (l, dirs) in gru.weights.layers.iter().enumerate() {
        let in_w = c.layer_input_size(l);
        layer_out = vec![0.0f64; t_len * b_len * out_w];
        for (d, cell) in dirs.iter().enumerate() {
            let acts = c.activations_for(d);
            let reverse = c.direction.is_reverse(d);
            for b in 0..b_len {
                let len = input.lengths.map_or(t_len, |v| v[b]);
                let slot = (l * d_len + d) * b_len + b;
                let mut h = initial_state(input.h0, slot, h_len);
                // Whether a valid step has run yet in this direction (masks only).
                let mut seen = false;
                for s in 0..len {
                    let (t_in, t_out) = step_times(reverse, c.go_backwards, len, t_len, s);
                    let o = (t_out * b_len + b) * out_w + d * h_len;
                    if !input.valid(b, t_in) {
                        // State unchanged; output the previous output, or zeros.
                        if seen && !input.zero_output_for_mask {
                            layer_out[o..o + h_len].copy_from_slice(&h);
                        }
                        continue;
                    }
                    seen = true;
                    let x = &layer_in[(t_in * b_len + b) * in_w..(t_in * b_len + b + 1) * in_w];
                    h = cell_step(cell, c.variant, acts.f, acts.g, c.clip, x, &h);
                    layer_out[o..o + h_len].copy_from_slice(&h);
                }
                for (dst, &v) in h_n[slot * h_len..(slot + 1) * h_len].iter_mut().zip(&h) {
                    *dst = v as f32;
                }
            }
        }
        layer_in = layer_out.clone();
    }
    let output = from_time_major(&layer_out, t_len, b_len, out_w, c.batch_first);
    Ok(GruOutput { output, h_n })
}

/// Time-major copy of a `[T, B, W]` (or `[B, T, W]` when `batch_first`) array, in f64.
pub(crate) fn time_major(
    v: &[f32],
    t_len: usize,
    b_len: usize,
    w: usize,
    batch_first: bool,
) -> Vec<f64> {
    let mut out = vec![0.0; t_len * b_len * w];
    for t in 0..t_len {
        for b in 0..b_len {
            let src = if batch_first {
                (b * t_len + t) * w
            } else {
                (t * b_len + b) * w
            };
            let dst = (t * b_len + b) * w;
            for k in 0..w {
                out[dst + k] = v[src + k] as f64;
            }
        }
    }
    out
}

/// The inverse of [`time_major`], rounding to f32.
pub(crate) fn from_time_major(
    v: &[f64],
    t_len: usize,
    b_len: usize,
    w: usize,
    batch_first: bool,
) -> Vec<f32> {
    let mut out = vec![0.0f32; v.len()];
    for t in 0..t_len {
        for b in 0..b_len {
            let src = (t * b_len + b) * w;
            let dst = if batch_first {
                (b * t_len + t) * w
            } else {
                src
            };
            for k in 0..w {
                out[dst + k] = v[src + k] as f32;
            }
        }
    }
    out
}

/// `(t_in, t_out)` of step `s` of a row with `len` valid steps out of `t_len`: a reverse
/// direction runs `len−1 … 0`; Keras `go_backwards` reads `T−1−s` and writes `s`.
pub(crate) fn step_times(
    reverse: bool,
    go_backwards: bool,
    len: usize,
    t_len: usize,
    s: usize,
) -> (usize, usize) {
    let t_in = if reverse {
        len - 1 - s
    } else if go_backwards {
        t_len - 1 - s
    } else {
        s
    };
    (t_in, if go_backwards { s } else { t_in })
}

/// Row `slot` of `h0` (`[L·D, B, H]`) in f64, or zeros without one.
pub(crate) fn initial_state(h0: Option<&[f32]>, slot: usize, h: usize) -> Vec<f64> {
    match h0 {
        Some(h0) => h0[slot * h..(slot + 1) * h]
            .iter()
            .map(|&v| v as f64)
            .collect(),
        None => vec![0.0; h],
    }
}

/// One step of one cell in f64: returns h_t from x_t `[I]` and h_{t-1} `[H]`.
pub fn cell_step(
    cell: &CellWeights,
    variant: Variant,
    f: Activation,
    g: Activation,
    clip: Option<f32>,
    x: &[f64],
    h: &[f64],
) -> Vec<f64> {
    let hn = h.len();
    let i = x.len();
    let act = |a: Activation, v: f64| a.eval(clip.map_or(v, |c| v.clamp(-(c as f64), c as f64)));
    let dot = |w: &[f32], v: &[f64]| w.iter().zip(v).map(|(&a, &b)| a as f64 * b).sum::<f64>();
    let wx = |row: usize| dot(&cell.w_ih[row * i..(row + 1) * i], x) + cell.b_ih[row] as f64;
    let uh = |row: usize, v: &[f64]| {
        dot(&cell.w_hh[row * hn..(row + 1) * hn], v) + cell.b_hh[row] as f64
    };
    let r: Vec<f64> = (0..hn).map(|j| act(f, wx(j) + uh(j, h))).collect();
    let z: Vec<f64> = (0..hn)
        .map(|j| act(f, wx(hn + j) + uh(hn + j, h)))
        .collect();
    let n: Vec<f64> = match variant {
        Variant::ResetAfter => (0..hn)
            .map(|j| act(g, wx(2 * hn + j) + r[j] * uh(2 * hn + j, h)))
            .collect(),
        Variant::ResetBefore => {
            let rh: Vec<f64> = r.iter().zip(h).map(|(a, b)| a * b).collect();
            (0..hn)
                .map(|j| act(g, wx(2 * hn + j) + uh(2 * hn + j, &rh)))
                .collect()
        }
    };
    (0..hn).map(|j| z[j] * h[j] + (1.0 - z[j]) * n[j]).collect()
}

/// The reference as a [`Forward`](crate::Forward) path: a model and [`forward`].
#[derive(Debug, Clone, PartialEq)]
pub struct Reference(pub Gru);

impl crate::Forward for Reference {
    fn config(&self) -> &crate::GruConfig {
        &self.0.config
    }
    fn forward(&self, input: &SeqInput<'_>) -> Result<GruOutput> {
        forward(&self.0, input)
    }
}
