//! Shared by the GPU tests: one device per test binary, skip-or-fail without an adapter, and
//! random models.
#![allow(dead_code)]

use std::io::Write;
use std::sync::OnceLock;
use wgpu_gru::gpu::GpuContext;
use wgpu_gru::{CellWeights, Gru, GruConfig, GruWeights};

/// The shared context, or `None` (after printing why) when there is no adapter.
/// Panics when `REQUIRE_GPU=1` and no adapter exists, so CI cannot pass by skipping.
pub fn ctx() -> Option<&'static GpuContext> {
    static CTX: OnceLock<Option<GpuContext>> = OnceLock::new();
    CTX.get_or_init(|| match GpuContext::new_default() {
        Ok(c) => {
            // Straight to stderr, past libtest's capture, so CI logs show the device.
            let _ = writeln!(std::io::stderr(), "GPU tests run on: {}", c.describe());
            Some(c)
        }
        Err(e) => {
            if std::env::var("REQUIRE_GPU").is_ok_and(|v| v == "1") {
                panic!("REQUIRE_GPU=1 but no GPU adapter: {e}");
            }
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: no GPU adapter ({e}); set REQUIRE_GPU=1 to make this a failure"
            );
            None
        }
    })
    .as_ref()
}

/// xorshift64*: deterministic and dependency-free.
pub struct Rng(pub u64);
impl Rng {
    pub fn next_f32(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let v = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        ((v >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    pub fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.next_f32() * scale).collect()
    }
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_f32() * 0.5 + 0.5) * n as f32) as usize % n.max(1)
    }
}

/// Random weights for `config`, scaled like PyTorch's init (±1/√H).
pub fn random_gru(config: GruConfig, seed: u64) -> Gru {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
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
