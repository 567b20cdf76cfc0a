//! The GPU layer is `Send + Sync`; forwards from several threads at once on one layer give the
//! same results as serial ones; and repeated forwards leak nothing (wgpu objects, GPU memory,
//! process memory).
//!
//! Skipped with a message when no adapter exists, unless `REQUIRE_GPU=1`.

mod common;
mod gpu_common;

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use wgpu_gru::{Batch, Steps};

use common::random::{Rng, random_gru};
use gpu_common::ctx;
use wgpu_gru::gpu::{GpuContext, GpuGru, Workspace};
use wgpu_gru::{Direction, GruConfig, GruOutput, SeqInput, Variant};

/// Compile-time: the layer, its context and a workspace can be shared with and sent to threads.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<GpuGru>();
    send_sync::<GpuContext>();
    send_sync::<Workspace>();
};

/// The tests of this binary measure memory: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn lock() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// One forward's owned inputs.
struct Job {
    x: Vec<f32>,
    steps: usize,
    batch: usize,
    h0: Option<Vec<f32>>,
    lengths: Option<Vec<usize>>,
}

impl Job {
    fn random(config: &GruConfig, steps: usize, batch: usize, seed: u64) -> Job {
        let mut rng = Rng(seed.wrapping_mul(0x2545_F491_4F6C_DD1D) | 1);
        let ld = config.num_layers * config.num_directions();
        Job {
            x: rng.vec(steps * batch * config.input_size, 1.0),
            steps,
            batch,
            h0: seed
                .is_multiple_of(2)
                .then(|| rng.vec(ld * batch * config.hidden_size, 0.5)),
            lengths: seed.is_multiple_of(3).then(|| {
                (0..batch)
                    .map(|b| if b == 0 { steps } else { 1 + rng.below(steps) })
                    .collect()
            }),
        }
    }
    fn input(&self) -> SeqInput<'_> {
        let mut input = SeqInput::new(&self.x, Steps(self.steps), Batch(self.batch));
        if let Some(h0) = self.h0.as_deref() {
            input = input.with_h0(h0);
        }
        if let Some(lengths) = self.lengths.as_deref() {
            input = input.with_lengths(lengths);
        }
        input
    }
}

/// `n` random jobs cycling through `shapes` (job k seeded `seed + k`), and their results from
/// `layer`, one after the other.
fn jobs_and_serial(
    layer: &GpuGru,
    config: &GruConfig,
    shapes: &[(usize, usize)],
    n: usize,
    seed: u64,
) -> (Vec<Job>, Vec<GruOutput>) {
    let jobs: Vec<Job> = (0..n)
        .map(|k| {
            let (t, b) = shapes[k % shapes.len()];
            Job::random(config, t, b, seed + k as u64)
        })
        .collect();
    let serial = jobs
        .iter()
        .map(|j| layer.forward(&j.input()).unwrap())
        .collect();
    (jobs, serial)
}

fn model() -> wgpu_gru::Gru {
    random_gru(
        GruConfig::new(5, 12)
            .with_layers(2)
            .with_direction(Direction::Bidirectional),
        21,
    )
}

/// Several threads call `forward` on one shared `GpuGru`, with the same shape and with shapes
/// that change every call (so the internal workspace is rebuilt under contention); every result
/// is bit-identical to the serial one.
#[test]
fn concurrent_forwards_equal_serial() {
    let _g = lock();
    let Some(ctx) = ctx() else { return };
    let gru = model();
    let layer = GpuGru::new(ctx, &gru).unwrap();
    // Jobs of a few shapes; job k runs on thread k % THREADS.
    const THREADS: usize = 4;
    let shapes = [(6usize, 3usize), (6, 3), (1, 1), (9, 5), (6, 3), (2, 7)];
    let (jobs, serial) = jobs_and_serial(&layer, &gru.config, &shapes, 24, 0);
    // And again, serially: the GPU path is deterministic.
    for (j, want) in jobs.iter().zip(&serial) {
        assert_eq!(&layer.forward(&j.input()).unwrap(), want);
    }
    for round in 0..3 {
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..THREADS)
                .map(|th| {
                    let (layer, jobs, serial) = (&layer, &jobs, &serial);
                    s.spawn(move || {
                        for k in (th..jobs.len()).step_by(THREADS) {
                            let got = layer.forward(&jobs[k].input()).unwrap();
                            assert!(
                                got == serial[k],
                                "round {round}, thread {th}, job {k}: differs from serial by {}",
                                got.max_abs_diff(&serial[k])
                            );
                        }
                    })
                })
                .collect();
            for h in handles {
                h.join().unwrap();
            }
        });
    }
    // Layers built concurrently on one device, each used from its own thread, also agree.
    std::thread::scope(|s| {
        for th in 0..THREADS {
            let (gru, jobs, serial) = (&gru, &jobs, &serial);
            s.spawn(move || {
                let own = GpuGru::new(ctx, gru).unwrap();
                for k in (th..jobs.len()).step_by(THREADS) {
                    assert!(
                        own.forward(&jobs[k].input()).unwrap() == serial[k],
                        "job {k}"
                    );
                }
            });
        }
    });
}

/// Polls every future in turn until all are done (no executor crate needed): concurrent, one
/// thread.
/// A future and, once it finished, its output.
type Slot<F> = (Pin<Box<F>>, Option<<F as Future>::Output>);

struct JoinAll<F: Future>(Vec<Slot<F>>);

impl<F: Future> Future for JoinAll<F>
where
    F::Output: Unpin,
{
    type Output = Vec<F::Output>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut pending = false;
        for (f, out) in self.0.iter_mut() {
            if out.is_none() {
                match f.as_mut().poll(cx) {
                    Poll::Ready(v) => *out = Some(v),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            return Poll::Pending;
        }
        Poll::Ready(self.0.iter_mut().filter_map(|(_, o)| o.take()).collect())
    }
}

/// `forward_async` gives the blocking forward's bits, and many async forwards in flight at once
/// on one model, and on several models of one device, give the serial results.
#[test]
fn concurrent_async_forwards_equal_serial() {
    let _g = lock();
    let Some(ctx) = ctx() else { return };
    let gru = model();
    let layer = GpuGru::new(ctx, &gru).unwrap();
    let other = GpuGru::new(ctx, &gru).unwrap();
    let shapes = [(6usize, 3usize), (1, 1), (9, 5), (6, 3), (2, 7)];
    let (jobs, serial) = jobs_and_serial(&layer, &gru.config, &shapes, 15, 100);
    for (j, want) in jobs.iter().zip(&serial) {
        let got = pollster::block_on(layer.forward_async(&j.input())).unwrap();
        assert!(&got == want, "async differs from blocking");
    }
    let inputs: Vec<SeqInput<'_>> = jobs.iter().map(Job::input).collect();
    let all = pollster::block_on(JoinAll(
        inputs
            .iter()
            .enumerate()
            .map(|(k, i)| {
                let l = if k % 2 == 0 { &layer } else { &other };
                (Box::pin(l.forward_async(i)), None)
            })
            .collect(),
    ));
    assert_eq!(all.len(), jobs.len());
    for (k, (got, want)) in all.into_iter().zip(&serial).enumerate() {
        assert!(&got.unwrap() == want, "job {k}");
    }
}

/// `encode` and friends refuse a workspace that another model made.
#[test]
fn a_workspace_belongs_to_its_model() {
    let _g = lock();
    let Some(ctx) = ctx() else { return };
    let gru = model();
    let (a, b) = (
        GpuGru::new(ctx, &gru).unwrap(),
        GpuGru::new(ctx, &gru).unwrap(),
    );
    let mut ws = a.workspace(Steps(2), Batch(1)).unwrap();
    a.write_state(&mut ws, None, None).unwrap();
    let mut enc = ctx
        .device
        .create_command_encoder(&wgpu::CommandEncoderDescriptor::default());
    assert!(a.encode(&mut enc, &ws).is_ok());
    let e = b.encode(&mut enc, &ws).unwrap_err();
    assert!(e.to_string().contains("another model"), "{e}");
    assert!(b.encode_read_back(&mut enc, &ws).is_err());
    let x = vec![0.0f32; 2 * gru.config.input_size];
    assert!(
        b.write_input(&mut ws, &SeqInput::new(&x, Steps(2), Batch(1)))
            .is_err()
    );
    assert!(
        a.write_input(&mut ws, &SeqInput::new(&x, Steps(2), Batch(1)))
            .is_ok()
    );
}

/// An own instance and device, so that wgpu's registries count only this test's objects.
fn own_context() -> Option<(wgpu::Instance, GpuContext)> {
    ctx()?;
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
        power_preference: wgpu::PowerPreference::HighPerformance,
        ..Default::default()
    }))
    .expect("adapter");
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        label: Some("concurrency test device"),
        required_limits: adapter.limits(),
        ..Default::default()
    }))
    .expect("device");
    Some((instance, GpuContext::from_device(device, queue)))
}

/// Live wgpu objects by kind: buffers, bind groups, command encoders and buffers, pipelines,
/// shader modules.
fn live_objects(instance: &wgpu::Instance) -> Option<Vec<(&'static str, usize)>> {
    let r = instance.generate_report()?;
    let h = &r.hub;
    Some(vec![
        ("buffers", h.buffers.num_allocated),
        ("bind_groups", h.bind_groups.num_allocated),
        ("command_encoders", h.command_encoders.num_allocated),
        ("command_buffers", h.command_buffers.num_allocated),
        ("compute_pipelines", h.compute_pipelines.num_allocated),
        ("shader_modules", h.shader_modules.num_allocated),
        ("query_sets", h.query_sets.num_allocated),
    ])
}

/// Resident set size of this process, in bytes (Linux; `None` elsewhere).
fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

struct Snapshot {
    objects: Option<Vec<(&'static str, usize)>>,
    gpu_bytes: Option<u64>,
    rss: Option<u64>,
}

fn snapshot(instance: &wgpu::Instance, ctx: &GpuContext) -> Snapshot {
    // Let wgpu retire what finished work still holds.
    let _ = ctx.device.poll(wgpu::PollType::wait_indefinitely());
    Snapshot {
        objects: live_objects(instance),
        gpu_bytes: ctx
            .device
            .generate_allocator_report()
            .map(|r| r.total_allocated_bytes),
        rss: rss_bytes(),
    }
}

/// Checks `after` against `before`: wgpu objects and GPU memory exactly equal; RSS within
/// `rss_slack` bytes (allocator and driver caches move a little).
fn assert_no_growth(what: &str, before: &Snapshot, after: &Snapshot, rss_slack: u64) {
    if let (Some(b), Some(a)) = (&before.objects, &after.objects) {
        assert_eq!(a, b, "{what}: live wgpu objects changed");
    }
    if let (Some(b), Some(a)) = (before.gpu_bytes, after.gpu_bytes) {
        assert_eq!(a, b, "{what}: GPU memory allocated changed");
    }
    if let (Some(b), Some(a)) = (before.rss, after.rss) {
        assert!(
            a <= b + rss_slack,
            "{what}: RSS grew by {} KiB (from {} KiB)",
            (a - b) / 1024,
            b / 1024
        );
    }
    eprintln!(
        "{what}: objects {:?}, GPU bytes {:?}, RSS {:?} -> {:?} KiB",
        after.objects,
        after.gpu_bytes,
        before.rss.map(|v| v / 1024),
        after.rss.map(|v| v / 1024)
    );
}

/// 1000 forwards of one shape create nothing that outlives them: the same number of live wgpu
/// objects, the same GPU memory, and no RSS growth beyond a small slack.
#[test]
fn repeated_forwards_do_not_grow() {
    let _g = lock();
    let Some((instance, ctx)) = own_context() else {
        return;
    };
    let gru = random_gru(GruConfig::new(3, 8).with_variant(Variant::ResetBefore), 5);
    let layer = GpuGru::new(&ctx, &gru).unwrap();
    let job = Job::random(&gru.config, 4, 2, 6);
    let want = layer.forward(&job.input()).unwrap();
    for _ in 0..50 {
        layer.forward(&job.input()).unwrap();
    }
    let before = snapshot(&instance, &ctx);
    let start = std::time::Instant::now();
    for k in 0..1000 {
        let got = layer.forward(&job.input()).unwrap();
        if k % 250 == 0 {
            assert_eq!(got, want, "forward {k}");
        }
    }
    let took = start.elapsed();
    let after = snapshot(&instance, &ctx);
    eprintln!("1000 forwards in {took:?}");
    assert_no_growth("1000 forwards", &before, &after, 8 << 20);

    // Shapes that change every call rebuild the workspace each time; the old one is freed.
    let jobs = [
        Job::random(&gru.config, 3, 2, 1),
        Job::random(&gru.config, 5, 1, 2),
    ];
    for j in &jobs {
        layer.forward(&j.input()).unwrap();
    }
    let before = snapshot(&instance, &ctx);
    for k in 0..200 {
        layer.forward(&jobs[k % 2].input()).unwrap();
    }
    let after = snapshot(&instance, &ctx);
    assert_no_growth(
        "200 forwards of alternating shapes",
        &before,
        &after,
        8 << 20,
    );

    // Layers that are dropped free their weights and pipelines. (The first few builds grow the
    // driver's caches once — lavapipe by ~50 MB — so they are warm-up.)
    let build = || {
        let l = GpuGru::new(&ctx, &gru).unwrap();
        l.forward(&job.input()).unwrap();
    };
    for _ in 0..4 {
        build();
    }
    let before = snapshot(&instance, &ctx);
    for _ in 0..12 {
        build();
    }
    let after = snapshot(&instance, &ctx);
    assert_no_growth("12 layers built and dropped", &before, &after, 8 << 20);
}
