//! One input on every path: the f64 reference, the CPU path (one and two threads) and the GPU
//! path, one test per path so that a failure names its path.

use wgpu_gru::cpu::CpuGru;
use wgpu_gru::gpu::GpuGru;
use wgpu_gru::{Direction, Gru, GruConfig, GruOutput, SeqInput, Variant, reference};

use super::ctx;
use crate::common::random::random_gru;

/// A small random model (I = 3, H = 5).
pub fn small_gru(variant: Variant, direction: Direction, layers: usize) -> Gru {
    random_gru(
        GruConfig::new(3, 5)
            .with_variant(variant)
            .with_direction(direction)
            .with_layers(layers),
        7,
    )
}

/// The implementations, tested one by one so that a failure names its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Impl {
    Reference,
    Cpu,
    Gpu,
}

/// Runs `input` on `which`: the CPU path with one and with two threads; the GPU path only when
/// there is an adapter (nothing otherwise).
pub fn run_on(
    which: Impl,
    gru: &Gru,
    input: &SeqInput<'_>,
) -> Vec<(&'static str, wgpu_gru::Result<GruOutput>)> {
    match which {
        Impl::Reference => vec![("reference", reference::forward(gru, input))],
        Impl::Cpu => vec![
            ("cpu", CpuGru::new(gru).and_then(|c| c.forward(input))),
            (
                "cpu x2",
                CpuGru::new(gru)
                    .and_then(|c| c.with_threads(2).with_parallel_min_flop(0).forward(input)),
            ),
        ],
        Impl::Gpu => match ctx() {
            Some(ctx) => vec![("gpu", GpuGru::new(ctx, gru).and_then(|g| g.forward(input)))],
            None => Vec::new(),
        },
    }
}

/// Runs `input` on every path.
pub fn all_paths(
    gru: &Gru,
    input: &SeqInput<'_>,
) -> Vec<(&'static str, wgpu_gru::Result<GruOutput>)> {
    [Impl::Reference, Impl::Cpu, Impl::Gpu]
        .into_iter()
        .flat_map(|w| run_on(w, gru, input))
        .collect()
}

/// Declares one test per implementation for a checker `fn(Impl)`.
#[allow(unused_macros)]
macro_rules! per_impl {
    ($check:ident: $(#[$ra:meta])* $reference:ident, $(#[$ca:meta])* $cpu:ident,
     $(#[$ga:meta])* $gpu:ident) => {
        #[test]
        $(#[$ra])*
        fn $reference() {
            $check($crate::gpu_common::paths::Impl::Reference)
        }
        #[test]
        $(#[$ca])*
        fn $cpu() {
            $check($crate::gpu_common::paths::Impl::Cpu)
        }
        #[test]
        $(#[$ga])*
        fn $gpu() {
            $check($crate::gpu_common::paths::Impl::Gpu)
        }
    };
}
#[allow(unused_imports)]
pub(crate) use per_impl;
