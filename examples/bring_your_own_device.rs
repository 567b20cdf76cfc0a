//! Zero-copy integration: the app owns the device, the input buffer and the command encoder; the
//! GRU and the classifier head are recorded into that encoder beside the app's own compute pass,
//! and everything runs in one submit.
//!
//! ```text
//! cargo run --release --example bring_your_own_device
//! ```
//!
//! The app holds raw digit images (pixel values 0..=16) in its own storage buffer. Its own WGSL
//! pass scales them to 0..=1 in place, as the model was trained; then [`GpuGru::encode_from_buffer`]
//! reads that buffer directly (no copy), and [`GpuHead`] turns the GRU's final state into class
//! probabilities. The GRU output stays in [`Workspace::output_buffer`](wgpu_gru::gpu::Workspace)
//! until the app copies it out.

use std::error::Error;
use wgpu_gru::{Batch, Steps};

use wgpu::util::DeviceExt;
use wgpu_gru::formats::SafetensorsFile;
use wgpu_gru::gpu::{GpuContext, GpuGru, GpuHead, final_state_offset};
use wgpu_gru::model::{GruClassifier, argmax_rows};
use wgpu_gru::{SeqInput, max_abs_diff, reference, wgpu};

const ASSETS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/assets");
const BATCH: usize = 16;

/// The app's own preprocessing pass.
const SCALE_WGSL: &str = r#"
@group(0) @binding(0) var<storage, read_write> pixels: array<f32>; // [B, T, I], 0..=16 → 0..=1

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    if (id.x < arrayLength(&pixels)) {
        pixels[id.x] = pixels[id.x] / 16.0;
    }
}
"#;

/// Maps `buffer`, copies its first `n` floats out, and unmaps (blocking).
fn read(
    device: &wgpu::Device,
    buffer: &wgpu::Buffer,
    n: usize,
) -> Result<Vec<f32>, Box<dyn Error>> {
    let slice = buffer.slice(..n as u64 * 4);
    let (tx, rx) = std::sync::mpsc::channel();
    slice.map_async(wgpu::MapMode::Read, move |r| {
        let _ = tx.send(r);
    });
    device.poll(wgpu::PollType::Wait {
        submission_index: None,
        timeout: None,
    })?;
    rx.recv()??;
    let out = bytemuck::cast_slice::<u8, f32>(&slice.get_mapped_range()?).to_vec();
    buffer.unmap();
    Ok(out)
}

fn main() -> Result<(), Box<dyn Error>> {
    let model = GruClassifier::from_safetensors(format!("{ASSETS}/digits_gru.safetensors"))?;
    let test = SafetensorsFile::open(format!("{ASSETS}/digits_test.safetensors"))?;
    let x = test.require_f32("x", "digits test split")?;
    let (_, labels) = test.get_lengths("labels")?.ok_or("no labels")?;
    let (steps, pixels) = (x.shape[1], x.shape[2]);
    let x = &x.data[..BATCH * steps * pixels];
    let raw: Vec<f32> = x.iter().map(|v| v * 16.0).collect();

    // 1. The app's own instance, adapter and device.
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let adapter = match pollster::block_on(instance.request_adapter(&Default::default())) {
        Ok(a) => a,
        Err(e) => {
            println!("no GPU adapter ({e}); this example needs one");
            return Ok(());
        }
    };
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        label: Some("my app device"),
        ..Default::default()
    }))?;
    println!("the app's device: {}", adapter.get_info().name);

    // 2. wgpu-gru on that device: the GRU and the classifier head, uploaded once.
    let ctx = GpuContext::from_device(device.clone(), queue.clone());
    let gru = GpuGru::new(&ctx, &model.gru)?;
    let head = GpuHead::new(&ctx, &model.dense)?;
    let config = &model.gru.config;
    let mut ws = gru.workspace(Steps(steps), Batch(BATCH))?;
    // Zero h0 and full lengths; x is not written: the GRU reads the app's buffer instead.
    gru.write_state(&mut ws, None, None)?;
    let binding = head.bind(
        ws.states_buffer(),
        final_state_offset(config, BATCH),
        config.hidden_size,
        BATCH,
    )?;

    // 3. The app's own input buffer and compute pipeline.
    let input = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("my raw pixels"),
        contents: bytemuck::cast_slice(&raw),
        usage: wgpu::BufferUsages::STORAGE,
    });
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some("my scale.wgsl"),
        source: wgpu::ShaderSource::Wgsl(SCALE_WGSL.into()),
    });
    let scale = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some("my scale"),
        layout: None,
        module: &module,
        entry_point: Some("main"),
        compilation_options: Default::default(),
        cache: None,
    });
    let scale_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some("my scale group"),
        layout: &scale.get_bind_group_layout(0),
        entries: &[wgpu::BindGroupEntry {
            binding: 0,
            resource: input.as_entire_binding(),
        }],
    });
    let y_len = BATCH * steps * config.output_size();
    let p_len = BATCH * model.num_classes();
    let staging = |label: &str, floats: usize| {
        device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: floats as u64 * 4,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    };
    let read_y = staging("my GRU output readback", y_len);
    let read_p = staging("my probabilities readback", p_len);

    // 4. One encoder: the app's pass, the GRU, the head, the copies out; one submit.
    let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
        label: Some("my frame"),
    });
    {
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("my preprocessing: pixels / 16"),
            timestamp_writes: None,
        });
        pass.set_pipeline(&scale);
        pass.set_bind_group(0, &scale_group, &[]);
        pass.dispatch_workgroups(raw.len().div_ceil(64) as u32, 1, 1);
    }
    let stats = gru.encode_from_buffer(&mut encoder, &ws, &input)?;
    head.encode(&mut encoder, &binding);
    encoder.copy_buffer_to_buffer(ws.output_buffer(), 0, &read_y, 0, y_len as u64 * 4);
    encoder.copy_buffer_to_buffer(binding.probs_buffer(), 0, &read_p, 0, p_len as u64 * 4);
    queue.submit([encoder.finish()]);
    println!(
        "one submit: the app's pass + {} GRU dispatches ({:?}) + 2 head dispatches",
        stats.dispatches, stats.algorithm
    );

    // 5. Read back and check against the f64 reference on the scaled input.
    let y = read(&device, &read_y, y_len)?;
    let probs = read(&device, &read_p, p_len)?;
    let want = reference::forward(&model.gru, &SeqInput::new(x, Steps(steps), Batch(BATCH)))?;
    let want_probs = model.reference_forward(x, Steps(steps), Batch(BATCH))?;
    let pred = argmax_rows(&probs, model.num_classes());
    let correct = pred.iter().zip(&labels).filter(|(p, l)| p == l).count();
    println!(
        "GRU output [B={BATCH}, T={steps}, H={}]: max |Δ| vs reference {:.1e}",
        config.hidden_size,
        max_abs_diff(&y, &want.output)
    );
    println!(
        "probabilities: max |Δ| vs reference {:.1e}; predictions {pred:?}, {correct}/{BATCH} correct",
        max_abs_diff(&probs, &want_probs)
    );
    Ok(())
}
