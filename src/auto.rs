//! The fastest path here: the GPU or the CPU, chosen from the adapter and the problem's size.
//!
//! [`choose`] is the one choice function behind every `auto`: the CLI's `--backend auto` and
//! [`AutoGru`] for apps. It decides in this order:
//! - no adapter: the CPU path;
//! - a software adapter (`DeviceType::Cpu`: lavapipe/llvmpipe, WARP, SwiftShader): the CPU path,
//!   which was 21–810× faster than the same shaders run on the same cores (BENCHMARKS.md, "auto");
//! - a hardware GPU: whichever [`CostModel`] estimates faster for this [`Workload`]. Tiny problems
//!   stay on the CPU, since a submit and read-back alone cost more than their whole forward.

use crate::io::{Batch, Steps};
use std::fmt;

use crate::cpu::CpuGru;
use crate::error::Result;
use crate::gpu::{GpuContext, GpuGru};
use crate::{GruConfig, GruOutput, SeqInput, weights::Gru};

/// The size of one forward, as the cost model sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Workload {
    /// Steps `T`.
    pub steps: usize,
    /// Batch `B`.
    pub batch: usize,
    /// Input features `I` of the first layer.
    pub input_size: usize,
    /// Hidden units `H`.
    pub hidden_size: usize,
    /// Stacked layers `L`.
    pub layers: usize,
    /// Directions `D` (1 or 2).
    pub directions: usize,
    /// Threads the CPU path would run with ([`crate::cpu::CpuGru::with_threads`]; 1 by default).
    pub cpu_threads: usize,
}

impl Workload {
    /// The workload of a forward of `config` over `steps` × `batch`.
    pub fn new(config: &GruConfig, steps: Steps, batch: Batch) -> Self {
        let (steps, batch) = (steps.0, batch.0);
        Workload {
            steps,
            batch,
            input_size: config.input_size,
            hidden_size: config.hidden_size,
            layers: config.num_layers,
            directions: config.num_directions(),
            cpu_threads: 1,
        }
    }

    /// The same workload with the CPU path on `n` threads (0 is taken as 1).
    pub fn with_cpu_threads(mut self, n: usize) -> Self {
        self.cpu_threads = n.max(1);
        self
    }

    /// Floating-point operations: `Σ_layers D · 6·H·(H + I_layer) · B · T`.
    pub fn flops(&self) -> f64 {
        let (h, d) = (self.hidden_size as f64, self.directions as f64);
        (0..self.layers)
            .map(|l| {
                let i = if l == 0 {
                    self.input_size as f64
                } else {
                    d * h
                };
                d * 6.0 * h * (h + i) * self.batch as f64 * self.steps as f64
            })
            .sum()
    }
}

/// A path a forward can run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// [`GpuGru`] on the adapter.
    Gpu,
    /// [`CpuGru`], the fast f32 CPU path.
    Cpu,
}

/// What [`choose`] decided, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    /// The path to run.
    pub engine: Engine,
    /// Why, in words (`"the adapter wgpu found, llvmpipe (Vulkan), is a software one"`).
    pub reason: String,
}

impl fmt::Display for Choice {
    /// `CPU path: <reason>` or `GPU path: <reason>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = match self.engine {
            Engine::Gpu => "GPU path",
            Engine::Cpu => "CPU path",
        };
        write!(f, "{path}: {}", self.reason)
    }
}

/// Estimated milliseconds per forward on the CPU path and on a hardware GPU.
///
/// `cpu = cpu_fixed + L·D·T·cpu_step + flops / (cpu_rate · (1 + cpu_thread_gain·(n − 1)))` with
/// the workload's `n` CPU threads;
/// `gpu = gpu_fixed + L·T·step(H) + flops / gpu_rate`, where `step(H)` is
/// `gpu_step_resident_us` for `H ≤ gpu_resident_max_h` (all steps in one dispatch with W_hh held
/// on chip) and `gpu_step_dispatch_us` above (a dependent dispatch per step). Directions share
/// the GPU's dispatches, so they add work but no steps there.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CostModel {
    /// CPU path: fixed cost of a forward (ms).
    pub cpu_fixed_ms: f64,
    /// CPU path: cost of a step of one layer and direction, beyond its arithmetic (µs).
    pub cpu_step_us: f64,
    /// CPU path: arithmetic throughput on one thread (GFLOP/s).
    pub cpu_gflops: f64,
    /// CPU path: what each thread beyond the first adds to that throughput, as a fraction of
    /// one thread's.
    pub cpu_thread_gain: f64,
    /// GPU: fixed cost of a forward: projection dispatch, submit, wait, read-back (ms).
    pub gpu_fixed_ms: f64,
    /// GPU: cost of a step of the sequence-resident kernel (µs).
    pub gpu_step_resident_us: f64,
    /// GPU: the largest H the sequence-resident kernel runs.
    pub gpu_resident_max_h: usize,
    /// GPU: cost of a step run as its own dispatch (µs).
    pub gpu_step_dispatch_us: f64,
    /// GPU: arithmetic throughput (GFLOP/s).
    pub gpu_gflops: f64,
}

impl CostModel {
    /// The constants measured for this crate (BENCHMARKS.md, "auto"): the CPU path on one
    /// thread of the 2-core AMD EPYC project machine (`bench/results/crossover-lavapipe/`),
    /// and the GPU path on an NVIDIA H100 through Vulkan (`bench/results/h100-run2/`,
    /// `bench/results/h100-final/`). The GPU figures are those of a fast discrete GPU; a slower
    /// one moves the crossover up, which only matters for problems near it.
    pub const MEASURED: CostModel = CostModel {
        cpu_fixed_ms: 0.0003,
        cpu_step_us: 0.05,
        cpu_gflops: 60.0,
        cpu_thread_gain: 0.7,
        gpu_fixed_ms: 0.16,
        gpu_step_resident_us: 2.9,
        gpu_resident_max_h: 160,
        gpu_step_dispatch_us: 9.7,
        gpu_gflops: 6000.0,
    };

    /// Estimated milliseconds per forward on the CPU path, on the workload's CPU threads: one
    /// where a layer's time loop is under [`crate::cpu::TIME_LOOP_THREADS_MIN_FLOP`], since
    /// the CPU path starts no threads there.
    pub fn cpu_ms(&self, w: &Workload) -> f64 {
        let steps = (w.layers * w.directions * w.steps) as f64;
        let loop_flop = crate::cpu::time_loop_flop(w.steps, w.batch, w.directions, w.hidden_size);
        let threads = if loop_flop >= crate::cpu::TIME_LOOP_THREADS_MIN_FLOP {
            w.cpu_threads.max(1)
        } else {
            1
        };
        let gain = 1.0 + self.cpu_thread_gain * (threads - 1) as f64;
        self.cpu_fixed_ms
            + steps * self.cpu_step_us * 1e-3
            + w.flops() / (self.cpu_gflops * gain * 1e6)
    }

    /// Estimated milliseconds per forward on a hardware GPU.
    pub fn gpu_ms(&self, w: &Workload) -> f64 {
        let step_us = if w.hidden_size <= self.gpu_resident_max_h {
            self.gpu_step_resident_us
        } else {
            self.gpu_step_dispatch_us
        };
        let steps = (w.layers * w.steps) as f64;
        self.gpu_fixed_ms + steps * step_us * 1e-3 + w.flops() / (self.gpu_gflops * 1e6)
    }
}

/// The faster path for `work` given the adapter wgpu found (`None`: no adapter), with
/// [`CostModel::MEASURED`].
pub fn choose(adapter: Option<&wgpu::AdapterInfo>, work: &Workload) -> Choice {
    choose_with(adapter, work, &CostModel::MEASURED)
}

/// [`choose`] with a cost model of your own (for example, constants measured on your GPU).
pub fn choose_with(
    adapter: Option<&wgpu::AdapterInfo>,
    work: &Workload,
    model: &CostModel,
) -> Choice {
    let Some(info) = adapter else {
        return Choice {
            engine: Engine::Cpu,
            reason: "no GPU adapter was found".into(),
        };
    };
    let name = format!("{} ({:?})", info.name, info.backend);
    if crate::gpu::is_software(info) {
        return Choice {
            engine: Engine::Cpu,
            reason: format!(
                "the adapter wgpu found, {name}, is a software one, slower than the CPU path"
            ),
        };
    }
    let (cpu, gpu) = (model.cpu_ms(work), model.gpu_ms(work));
    if gpu < cpu {
        Choice {
            engine: Engine::Gpu,
            reason: format!("{name}, estimated {gpu:.3} ms against {cpu:.3} ms on the CPU"),
        }
    } else {
        Choice {
            engine: Engine::Cpu,
            reason: format!(
                "a problem this small runs faster here: estimated {cpu:.3} ms against {gpu:.3} ms on {name}"
            ),
        }
    }
}

/// A layer on whichever path [`choose`] picks for the forwards an app expects to run.
///
/// ```no_run
/// use wgpu_gru::{auto::AutoGru, Batch, Gru, GruConfig, SeqInput, Steps};
/// # let gru: Gru = unimplemented!();
/// let (t, b) = (100, 8);
/// let (layer, choice) = AutoGru::new(&gru, Steps(t), Batch(b))?;
/// eprintln!("running on the {choice}");
/// let x = vec![0.0f32; t * b * gru.config.input_size]; // [T, B, I]
/// let out = layer.forward(&SeqInput::new(&x, Steps(t), Batch(b)))?;    // [T, B, D·H], h_n [L·D, B, H]
/// # Ok::<(), wgpu_gru::Error>(())
/// ```
#[derive(Debug)]
pub enum AutoGru {
    /// Running on the GPU.
    Gpu(Box<GpuGru>),
    /// Running on the CPU path.
    Cpu(Box<CpuGru>),
}

impl AutoGru {
    /// Probes the default adapter (as [`GpuContext::new_default`] picks it) and builds the layer
    /// on the path that [`choose`] finds faster for forwards of `steps` × `batch`.
    pub fn new(gru: &Gru, steps: Steps, batch: Batch) -> Result<(AutoGru, Choice)> {
        let adapter = GpuContext::default_adapter().ok();
        Self::on_adapter(adapter.as_ref(), gru, steps, batch)
    }

    /// Like [`AutoGru::new`] on an adapter of the app's choosing (`None`: the CPU path). A device
    /// is created on it only when the GPU path is chosen.
    pub fn on_adapter(
        adapter: Option<&wgpu::Adapter>,
        gru: &Gru,
        steps: Steps,
        batch: Batch,
    ) -> Result<(AutoGru, Choice)> {
        let (steps, batch) = (steps.0, batch.0);
        gru.config.validate()?;
        let info = adapter.map(wgpu::Adapter::get_info);
        let choice = choose(
            info.as_ref(),
            &Workload::new(&gru.config, Steps(steps), Batch(batch)),
        );
        let layer = match (choice.engine, adapter) {
            (Engine::Gpu, Some(a)) => {
                let ctx = pollster::block_on(GpuContext::from_adapter(a, None))?;
                AutoGru::Gpu(Box::new(GpuGru::new(&ctx, gru)?))
            }
            _ => AutoGru::Cpu(Box::new(CpuGru::new(gru)?)),
        };
        Ok((layer, choice))
    }

    /// The path this layer runs on.
    pub fn engine(&self) -> Engine {
        match self {
            AutoGru::Gpu(_) => Engine::Gpu,
            AutoGru::Cpu(_) => Engine::Cpu,
        }
    }

    /// One forward: output `[T, B, D·H]` (`[B, T, D·H]` when `batch_first`), `h_n [L·D, B, H]`.
    pub fn forward(&self, input: &SeqInput<'_>) -> Result<GruOutput> {
        match self {
            AutoGru::Gpu(g) => g.forward(input),
            AutoGru::Cpu(c) => c.forward(input),
        }
    }
}

impl crate::Forward for AutoGru {
    fn config(&self) -> &GruConfig {
        match self {
            AutoGru::Gpu(g) => g.config(),
            AutoGru::Cpu(c) => c.config(),
        }
    }
    fn forward(&self, input: &SeqInput<'_>) -> Result<GruOutput> {
        AutoGru::forward(self, input)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(device_type: wgpu::DeviceType) -> wgpu::AdapterInfo {
        let mut i = wgpu::AdapterInfo::new(device_type, wgpu::Backend::Vulkan);
        i.name = "test adapter".into();
        i
    }

    fn work(steps: usize, batch: usize, h: usize) -> Workload {
        Workload {
            steps,
            batch,
            input_size: h,
            hidden_size: h,
            layers: 1,
            directions: 1,
            cpu_threads: 1,
        }
    }

    #[test]
    fn no_adapter_and_software_adapters_go_to_the_cpu() {
        let big = work(128, 64, 1024);
        assert_eq!(choose(None, &big).engine, Engine::Cpu);
        let c = choose(Some(&info(wgpu::DeviceType::Cpu)), &big);
        assert_eq!(c.engine, Engine::Cpu);
        assert!(c.to_string().starts_with("CPU path: "), "{c}");
        assert!(c.reason.contains("software"), "{c}");
    }

    #[test]
    fn hardware_gpus_follow_the_cost_model() {
        let gpu = info(wgpu::DeviceType::DiscreteGpu);
        // latency, seed, medium and large ran faster on the H100 than on a CPU core (BENCHMARKS.md).
        // long (B = 1, H = 128) took 11.9 ms on both, and the model calls it for the CPU.
        for (b, t, i, h) in [
            (1, 256, 256, 256),
            (32, 64, 64, 128),
            (16, 128, 512, 512),
            (64, 128, 1024, 1024),
        ] {
            let w = Workload {
                input_size: i,
                ..work(t, b, h)
            };
            let c = choose(Some(&gpu), &w);
            assert_eq!(c.engine, Engine::Gpu, "{w:?}: {c}");
            assert!(c.to_string().starts_with("GPU path: "));
        }
        // A few steps of a small layer do not pay for a submit.
        for w in [work(2, 3, 48), work(1, 1, 1), work(8, 1, 32)] {
            assert_eq!(choose(Some(&gpu), &w).engine, Engine::Cpu, "{w:?}");
        }
    }

    /// At the cost model's boundary, one step more (or one row more) flips the choice, and
    /// the choice always agrees with the two estimates.
    #[test]
    fn the_boundary_is_where_the_estimates_cross() {
        let gpu = info(wgpu::DeviceType::IntegratedGpu);
        let m = CostModel::MEASURED;
        let mut crossovers = 0;
        for h in [16, 64, 128, 160, 161, 256, 1024] {
            for b in [1, 4, 32] {
                let gpu_wins = |t| m.gpu_ms(&work(t, b, h)) < m.cpu_ms(&work(t, b, h));
                let Some(t) = (1..100_000).find(|&t| gpu_wins(t)) else {
                    // The GPU's per-step cost exceeds the CPU's: the CPU at every T.
                    assert_eq!(choose(Some(&gpu), &work(99_999, b, h)).engine, Engine::Cpu);
                    continue;
                };
                crossovers += 1;
                assert_eq!(choose(Some(&gpu), &work(t, b, h)).engine, Engine::Gpu);
                if t > 1 {
                    assert_eq!(
                        choose(Some(&gpu), &work(t - 1, b, h)).engine,
                        Engine::Cpu,
                        "h {h} b {b} t {t}"
                    );
                }
            }
        }
        assert!(crossovers >= 12, "{crossovers}");
    }

    #[test]
    fn cpu_threads_lower_the_cpu_estimate() {
        let m = CostModel::MEASURED;
        let w = work(128, 16, 512);
        let (one, two) = (m.cpu_ms(&w), m.cpu_ms(&w.with_cpu_threads(2)));
        assert!(two < one && two > one / 2.0, "{one} {two}");
        assert_eq!(m.cpu_ms(&w.with_cpu_threads(0)), one);
        // A loop too small for the CPU path to start threads gains nothing from them.
        let small = work(2, 1, 256);
        assert_eq!(m.cpu_ms(&small.with_cpu_threads(2)), m.cpu_ms(&small));
    }

    #[test]
    fn flops_count_layers_and_directions() {
        let w = Workload {
            steps: 3,
            batch: 2,
            input_size: 5,
            hidden_size: 4,
            layers: 2,
            directions: 2,
            cpu_threads: 1,
        };
        let one = |i: f64| 2.0 * 6.0 * 4.0 * (4.0 + i) * 2.0 * 3.0;
        assert_eq!(w.flops(), one(5.0) + one(8.0));
    }
}
