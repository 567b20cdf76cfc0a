//! Deterministic, dependency-free random data: test inputs and random models.

use wgpu_gru::{CellWeights, Gru, GruConfig, GruWeights};

/// xorshift64*.
pub struct Rng(pub u64);

impl Rng {
    /// A generator from any seed (0 included), mixed as [`random_gru`] mixes its seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in `[-1, 1)`.
    pub fn next_f32(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    /// `n` values uniform in `[-scale, scale)`.
    pub fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.next_f32() * scale).collect()
    }
    /// In `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_f32() * 0.5 + 0.5) * n as f32) as usize % n.max(1)
    }
}

/// xorshift64 (13, 7, 17): the byte mutators' generator.
pub struct XorShift(pub u64);

impl XorShift {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// In `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Random weights for `config`, scaled like PyTorch's init (±1/√H).
pub fn random_gru(config: GruConfig, seed: u64) -> Gru {
    random_gru_with(config, &mut Rng::new(seed))
}

/// [`random_gru`] drawing from `rng` (which goes on to draw the inputs, say).
pub fn random_gru_with(config: GruConfig, rng: &mut Rng) -> Gru {
    let h = config.hidden_size;
    let k = 1.0 / (h as f32).sqrt();
    let layers = (0..config.num_layers)
        .map(|l| {
            let i = config.layer_input_size(l);
            (0..config.num_directions())
                .map(|_| CellWeights {
                    w_ih: rng.vec(3 * h * i, k),
                    w_hh: rng.vec(3 * h * h, k),
                    b_ih: rng.vec(3 * h, k),
                    b_hh: rng.vec(3 * h, k),
                })
                .collect()
        })
        .collect();
    Gru::new(config, GruWeights { layers }).expect("valid random model")
}

/// `gru` with W_ih, W_hh and b_hh rounded to f16 (b_ih stays f32): the model that
/// `Precision::F16Weights` computes, on the GPU and the CPU.
pub fn f16_rounded(gru: &Gru) -> Gru {
    let r = |v: &mut Vec<f32>| {
        for x in v.iter_mut() {
            *x = half::f16::from_f32(*x).to_f32();
        }
    };
    let mut g = gru.clone();
    for cell in g.weights.layers.iter_mut().flatten() {
        r(&mut cell.w_ih);
        r(&mut cell.w_hh);
        r(&mut cell.b_hh);
    }
    g
}
