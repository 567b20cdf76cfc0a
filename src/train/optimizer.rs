//! The optimisers, with PyTorch's update rules and defaults, and their f64 CPU step: the oracle
//! of the GPU kernels (`shaders/train_step.wgsl`). A [`GpuTrainer`](super::GpuTrainer) is built
//! with one and keeps its moments.

/// An optimiser, with PyTorch's update rules and defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Optimizer {
    /// `torch.optim.Adam`: `m = β1·m + (1−β1)·g`, `v = β2·v + (1−β2)·g²`,
    /// `p −= lr/(1−β1ᵗ) · m / (√v/√(1−β2ᵗ) + ε)`, with `g += weight_decay·p` first.
    Adam {
        /// Learning rate.
        lr: f32,
        /// β1 (0.9).
        beta1: f32,
        /// β2 (0.999).
        beta2: f32,
        /// ε (1e-8).
        eps: f32,
        /// L2 penalty added to the gradient (0).
        weight_decay: f32,
    },
    /// `torch.optim.SGD` with momentum (no dampening, not Nesterov): `buf = g` on the first step,
    /// then `buf = μ·buf + g`; `p −= lr·buf`, with `g += weight_decay·p` first.
    Sgd {
        /// Learning rate.
        lr: f32,
        /// Momentum μ (0 for plain SGD).
        momentum: f32,
        /// L2 penalty added to the gradient (0).
        weight_decay: f32,
    },
}

impl Optimizer {
    /// Adam with PyTorch's defaults and learning rate `lr`.
    pub const fn adam(lr: f32) -> Self {
        Optimizer::Adam {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
    /// The learning rate.
    pub fn lr(&self) -> f32 {
        match *self {
            Optimizer::Adam { lr, .. } | Optimizer::Sgd { lr, .. } => lr,
        }
    }

    /// The L2 penalty added to the gradient.
    pub fn weight_decay(&self) -> f32 {
        match *self {
            Optimizer::Adam { weight_decay, .. } | Optimizer::Sgd { weight_decay, .. } => {
                weight_decay
            }
        }
    }

    /// SGD with momentum `momentum` and learning rate `lr`.
    pub const fn sgd(lr: f32, momentum: f32) -> Self {
        Optimizer::Sgd {
            lr,
            momentum,
            weight_decay: 0.0,
        }
    }

    /// One update in f64 on the CPU, the oracle of the GPU kernels: `step` counts from 1;
    /// `m1`, `m2` are the optimiser's state (Adam's moments, or SGD's momentum buffer in `m1`),
    /// all as long as `params`. `grads` are used as given (clip them first).
    pub fn step_reference(
        &self,
        step: u64,
        params: &mut [f64],
        grads: &[f64],
        m1: &mut [f64],
        m2: &mut [f64],
    ) {
        match *self {
            Optimizer::Adam {
                lr,
                beta1,
                beta2,
                eps,
                weight_decay,
            } => {
                let (b1, b2) = (beta1 as f64, beta2 as f64);
                let bc1 = 1.0 - b1.powi(step as i32);
                let bc2 = 1.0 - b2.powi(step as i32);
                for i in 0..params.len() {
                    let g = grads[i] + weight_decay as f64 * params[i];
                    m1[i] = b1 * m1[i] + (1.0 - b1) * g;
                    m2[i] = b2 * m2[i] + (1.0 - b2) * g * g;
                    let denom = m2[i].sqrt() / bc2.sqrt() + eps as f64;
                    params[i] -= lr as f64 / bc1 * m1[i] / denom;
                }
            }
            Optimizer::Sgd {
                lr,
                momentum,
                weight_decay,
            } => {
                for i in 0..params.len() {
                    let g = grads[i] + weight_decay as f64 * params[i];
                    m1[i] = if step == 1 || momentum == 0.0 {
                        g
                    } else {
                        momentum as f64 * m1[i] + g
                    };
                    params[i] -= lr as f64 * m1[i];
                }
            }
        }
    }
}
