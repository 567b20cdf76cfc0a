//! Criterion: GPU vs the fast CPU path vs the f64 reference on the five standard shapes.
//!
//! `cargo bench --bench gru` (add `-- seed` to filter). GPU forwards are timed resident (input
//! written once, encode + submit + wait per iteration), as a framework's forward on device
//! tensors is. Throughput is in elements of the sequence (B·T) per second.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::time::Duration;
use wgpu_gru::bench::STANDARD_SHAPES;
use wgpu_gru::cpu::CpuGru;
use wgpu_gru::gpu::{GpuContext, GpuGru};
use wgpu_gru::{Batch, Steps};
use wgpu_gru::{GruOutput, SeqInput, Variant, reference};

fn bench(c: &mut Criterion) {
    let ctx = match GpuContext::new_default() {
        Ok(ctx) => {
            eprintln!("GPU: {}", ctx.describe());
            Some(ctx)
        }
        Err(e) => {
            eprintln!("no GPU adapter ({e}): benchmarking the CPU paths only");
            None
        }
    };
    for shape in STANDARD_SHAPES {
        let name = shape.label();
        let big = shape.flops() > 5e9;
        let mut group = c.benchmark_group(format!("gru/{name}"));
        group.throughput(Throughput::Elements((shape.batch * shape.steps) as u64));
        group.sample_size(if big { 10 } else { 20 });
        group.measurement_time(Duration::from_secs(if big { 8 } else { 4 }));
        let gru = shape.random_model(Variant::ResetAfter, 42);
        let x = shape.random_input(7);
        let input = SeqInput::new(&x, Steps(shape.steps), Batch(shape.batch));

        if let Some(ctx) = &ctx {
            let g = GpuGru::new(ctx, &gru).expect("upload");
            let mut ws = g
                .workspace(Steps(shape.steps), Batch(shape.batch))
                .expect("workspace");
            g.write_input(&mut ws, &input).expect("input");
            group.bench_function(BenchmarkId::new("gpu", &name), |b| {
                b.iter(|| g.submit_and_wait(&ws).expect("forward"))
            });
        }

        let cpu = CpuGru::new(&gru).expect("cpu");
        let mut out = GruOutput {
            output: Vec::new(),
            h_n: Vec::new(),
        };
        group.bench_function(BenchmarkId::new("cpu", &name), |b| {
            b.iter(|| cpu.forward_into(&input, &mut out).expect("forward"))
        });

        if shape.flops() < 1e9 {
            group.sample_size(10);
            group.bench_function(BenchmarkId::new("reference", &name), |b| {
                b.iter(|| reference::forward(&gru, &input).expect("forward"))
            });
        }
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
