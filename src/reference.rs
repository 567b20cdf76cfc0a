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
    let mut layer_in: Vec<f64> = vec![0.0; t_len * b_len * c.input_size];
    for t in 0..t_len {
        for b in 0..b_len {
            let src = if c.batch_first {
                (b * t_len + t) * c.input_size
            } else {
                (t * b_len + b) * c.input_size
            };
            let dst = (t * b_len + b) * c.input_size;
            for k in 0..c.input_size {
                layer_in[dst + k] = input.x[src + k] as f64;
            }
        }
    }
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
                let mut h: Vec<f64> = match input.h0 {
                    Some(h0) => h0[slot * h_len..(slot + 1) * h_len]
                        .iter()
                        .map(|&v| v as f64)
                        .collect(),
                    None => vec![0.0; h_len],
                };
                // Whether a valid step has run yet in this direction (masks only).
                let mut seen = false;
                for s in 0..len {
                    let t_in = if reverse {
                        len - 1 - s
                    } else if c.go_backwards {
                        t_len - 1 - s
                    } else {
                        s
                    };
                    let t_out = if c.go_backwards { s } else { t_in };
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
    let mut output = vec![0.0f32; t_len * b_len * out_w];
    for t in 0..t_len {
        for b in 0..b_len {
            let src = (t * b_len + b) * out_w;
            let dst = if c.batch_first {
                (b * t_len + t) * out_w
            } else {
                src
            };
            for k in 0..out_w {
                output[dst + k] = layer_out[src + k] as f32;
            }
        }
    }
    Ok(GruOutput { output, h_n })
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
