//! Shared by `wgpu-gru bench` and the criterion benches: the standard shapes, random models,
//! FLOP counts and a median timer.

use crate::config::{GruConfig, Variant};
use crate::error::{Error, Result};
use crate::weights::{CellWeights, Gru, GruWeights};
use std::time::Instant;

/// One benchmark shape: batch B, steps T, input I, hidden H.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// Standard name (`latency`, `seed`, …) or `None` for a custom shape.
    pub name: Option<&'static str>,
    /// Batch B.
    pub batch: usize,
    /// Steps T.
    pub steps: usize,
    /// Input features I.
    pub input: usize,
    /// Hidden units H.
    pub hidden: usize,
}

const fn shape(
    name: &'static str,
    batch: usize,
    steps: usize,
    input: usize,
    hidden: usize,
) -> Shape {
    Shape {
        name: Some(name),
        batch,
        steps,
        input,
        hidden,
    }
}

/// The five standard shapes of `PERFORMANCE.md`.
pub const STANDARD_SHAPES: [Shape; 5] = [
    shape("latency", 1, 256, 256, 256),
    shape("seed", 32, 64, 64, 128),
    shape("medium", 16, 128, 512, 512),
    shape("large", 64, 128, 1024, 1024),
    shape("long", 1, 4096, 32, 128),
];

impl Shape {
    /// Parses a standard name or `B,T,I,H`.
    pub fn parse(s: &str) -> Result<Shape> {
        if let Some(std) = STANDARD_SHAPES.iter().find(|sh| sh.name == Some(s)) {
            return Ok(*std);
        }
        let parts: Vec<usize> = s
            .split(',')
            .map(|p| p.trim().parse::<usize>())
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| {
                Error::arg(
                    "shape",
                    format!("{s:?} is neither a standard shape nor B,T,I,H"),
                )
            })?;
        match parts[..] {
            [batch, steps, input, hidden] if batch > 0 && steps > 0 && input > 0 && hidden > 0 => {
                let mut sh = Shape {
                    name: None,
                    batch,
                    steps,
                    input,
                    hidden,
                };
                sh.name = STANDARD_SHAPES
                    .iter()
                    .find(|x| {
                        (x.batch, x.steps, x.input, x.hidden) == (batch, steps, input, hidden)
                    })
                    .and_then(|x| x.name);
                Ok(sh)
            }
            _ => Err(Error::arg(
                "shape",
                format!("{s:?}: expected B,T,I,H with every value ≥ 1"),
            )),
        }
    }

    /// The standard name, or `B,T,I,H`.
    pub fn label(&self) -> String {
        match self.name {
            Some(n) => n.to_string(),
            None => format!(
                "{},{},{},{}",
                self.batch, self.steps, self.input, self.hidden
            ),
        }
    }

    /// FLOPs of one forward, `6·H·(H+I)·B·T` (the convention of `PERFORMANCE.md`).
    pub fn flops(&self) -> f64 {
        6.0 * self.hidden as f64
            * (self.hidden + self.input) as f64
            * self.batch as f64
            * self.steps as f64
    }

    /// A single-layer forward GRU of this shape with deterministic pseudo-random weights
    /// (uniform ±1/√H, like PyTorch's init).
    pub fn random_model(&self, variant: Variant, seed: u64) -> Gru {
        let (i, h) = (self.input, self.hidden);
        let mut rng = SplitMix(seed);
        let k = 1.0 / (h as f32).sqrt();
        let mut v = |n: usize| (0..n).map(|_| rng.uniform() * k).collect::<Vec<f32>>();
        let cell = CellWeights {
            w_ih: v(3 * h * i),
            w_hh: v(3 * h * h),
            b_ih: v(3 * h),
            b_hh: v(3 * h),
        };
        Gru {
            config: GruConfig::new(i, h).with_variant(variant),
            weights: GruWeights {
                layers: vec![vec![cell]],
            },
        }
    }

    /// A deterministic pseudo-random input `[T, B, I]` in [−1, 1).
    pub fn random_input(&self, seed: u64) -> Vec<f32> {
        let mut rng = SplitMix(seed ^ 0x5EED);
        (0..self.steps * self.batch * self.input)
            .map(|_| rng.uniform())
            .collect()
    }
}

/// SplitMix64, for reproducible benchmark data without a dependency.
struct SplitMix(u64);
impl SplitMix {
    fn uniform(&mut self) -> f32 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        ((z >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

/// Runs `f` `warmup` times, then `reps` times, and returns the median wall time in ms.
pub fn median_ms(warmup: usize, reps: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    for _ in 0..warmup {
        f()?;
    }
    let mut times = Vec::with_capacity(reps.max(1));
    for _ in 0..reps.max(1) {
        let t0 = Instant::now();
        f()?;
        times.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(|a, b| a.total_cmp(b));
    Ok(times[times.len() / 2])
}
