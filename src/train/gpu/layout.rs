//! Where each parameter tensor lives in a trainer's flat parameter buffer `[P]` (and in the
//! gradient and moment buffers of the same layout), and where everything lives in a workspace's
//! `work` buffer.

use crate::config::GruConfig;
use crate::model::Dense;
use crate::weights::{CellWeights, Gru, GruWeights};

/// Offsets (floats) of every parameter tensor in the flat parameter buffer: for each layer and
/// direction `w_ih [3H, I_l]`, `w_hh [3H, H]`, `b_ih [3H]`, `b_hh [3H]`, then the head's
/// `weight [C, H]` and `bias [C]`.
#[derive(Debug, Clone)]
pub(super) struct ParamLayout {
    /// `[L][D]`: start of `w_ih`, followed by `w_hh`, `b_ih`, `b_hh`.
    pub cells: Vec<Vec<usize>>,
    /// Head weight `[C, H]` and bias `[C]` (when there is a head).
    pub head_w: usize,
    pub head_b: usize,
    /// P.
    pub total: usize,
}

impl ParamLayout {
    pub fn new(c: &GruConfig, classes: usize) -> ParamLayout {
        let h = c.hidden_size;
        let mut off = 0;
        let cells = (0..c.num_layers)
            .map(|l| {
                let i = c.layer_input_size(l);
                (0..c.num_directions())
                    .map(|_| {
                        let o = off;
                        off += 3 * h * i + 3 * h * h + 6 * h;
                        o
                    })
                    .collect()
            })
            .collect();
        let head_w = off;
        let head_b = head_w + classes * h;
        ParamLayout {
            cells,
            head_w,
            head_b,
            total: head_b + classes,
        }
    }

    /// The offsets of `w_ih`, `w_hh`, `b_ih` and `b_hh` of cell `(l, d)`.
    pub fn cell(&self, c: &GruConfig, l: usize, d: usize) -> [usize; 4] {
        let h = c.hidden_size;
        let w_ih = self.cells[l][d];
        let w_hh = w_ih + 3 * h * c.layer_input_size(l);
        let b_ih = w_hh + 3 * h * h;
        [w_ih, w_hh, b_ih, b_ih + 3 * h]
    }

    /// `gru` (validated against the layout's config) and `head`, as one flat `[P]` vector.
    pub fn flatten(&self, gru: &Gru, head: Option<&Dense>) -> Vec<f32> {
        let mut flat = vec![0.0f32; self.total];
        for (l, dirs) in gru.weights.layers.iter().enumerate() {
            for (d, c) in dirs.iter().enumerate() {
                let mut o = self.cells[l][d];
                for t in [&c.w_ih, &c.w_hh, &c.b_ih, &c.b_hh] {
                    flat[o..o + t.len()].copy_from_slice(t);
                    o += t.len();
                }
            }
        }
        if let Some(dense) = head {
            flat[self.head_w..self.head_b].copy_from_slice(&dense.weight);
            flat[self.head_b..self.total].copy_from_slice(&dense.bias);
        }
        flat
    }

    /// Splits a flat `[P]` parameter (or gradient) vector into the GRU's cells and the head
    /// (`classes` > 0).
    pub fn unflatten(
        &self,
        c: &GruConfig,
        classes: usize,
        flat: &[f32],
    ) -> (GruWeights, Option<Dense>) {
        let h = c.hidden_size;
        let layers = (0..c.num_layers)
            .map(|l| {
                (0..c.num_directions())
                    .map(|d| {
                        let [o, a, bb, _] = self.cell(c, l, d);
                        CellWeights {
                            w_ih: flat[o..a].to_vec(),
                            w_hh: flat[a..bb].to_vec(),
                            b_ih: flat[bb..bb + 3 * h].to_vec(),
                            b_hh: flat[bb + 3 * h..bb + 6 * h].to_vec(),
                        }
                    })
                    .collect()
            })
            .collect();
        let head = (classes > 0).then(|| Dense {
            in_features: h,
            out_features: classes,
            weight: flat[self.head_w..self.head_b].to_vec(),
            bias: flat[self.head_b..self.total].to_vec(),
        });
        (GruWeights { layers }, head)
    }
}

/// Offsets (floats) of everything in a workspace's `work` buffer (the layout table of
/// `shaders/gru_backward.wgsl`).
#[derive(Debug, Clone, Default)]
pub(super) struct WorkOffsets {
    pub ones: usize,
    pub x0: usize,
    pub y: Vec<usize>,
    pub xp: Vec<usize>,
    pub hp: Vec<usize>,
    pub gt: Vec<usize>,
    pub hs: usize,
    pub h0: usize,
    pub hn: usize,
    pub gs: usize,
    pub dh0: usize,
    pub gy: usize,
    pub dx: [usize; 2],
    pub da: usize,
    pub dh: usize,
    pub pt: usize,
    pub wt: usize,
    pub dl: usize,
    pub pr: usize,
    pub lb: usize,
    pub total: usize,
}

impl WorkOffsets {
    /// The layout for `t` steps of `b` rows of `c`, with a head of `classes`.
    pub(super) fn new(c: &GruConfig, t: usize, b: usize, classes: usize) -> WorkOffsets {
        let tb = t * b;
        let h = c.hidden_size;
        let (l_n, d_n) = (c.num_layers, c.num_directions());
        let mut o = WorkOffsets::default();
        let mut at = 0usize;
        let mut take = |n: usize| {
            let start = at;
            at += n;
            start
        };
        o.ones = take(4);
        o.x0 = take(tb * c.input_size);
        for _ in 0..l_n {
            o.y.push(take(tb * d_n * h));
            o.xp.push(take(d_n * tb * 3 * h));
            o.hp.push(take(d_n * tb * h));
            o.gt.push(take(d_n * tb * 4 * h));
        }
        let slab = l_n * d_n * b * h;
        // The forward's state ping-pong layout: rows padded to HP, a multiple of 4.
        o.hs = take(2 * d_n * b * h.next_multiple_of(4));
        o.h0 = take(slab);
        o.hn = take(slab);
        o.gs = take(slab);
        o.dh0 = take(slab);
        o.gy = take(tb * d_n * h);
        let dxw = tb * c.input_size.max(d_n * h);
        o.dx = [take(dxw), take(dxw)];
        o.da = take(d_n * tb * 4 * h);
        o.dh = take(d_n * b * h);
        o.pt = take(d_n * b * h);
        o.wt = take(l_n * d_n * h * 3 * h);
        o.dl = take(b * classes);
        o.pr = take(b * classes);
        o.lb = take(2 * b);
        o.total = at;
        o
    }

    /// dL/dY of layer `l`: the upstream gradient at the top, else the layer above's dL/dX.
    pub(super) fn dy(&self, l: usize, layers: usize) -> usize {
        if l + 1 == layers {
            self.gy
        } else {
            self.dx[(l + 1) % 2]
        }
    }

    /// X of layer `l`: the input, else the layer below's output.
    pub(super) fn x(&self, l: usize) -> usize {
        if l == 0 { self.x0 } else { self.y[l - 1] }
    }
}
