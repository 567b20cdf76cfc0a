//! [`GpuStream`]: a stateful GRU that takes a timestep or a chunk at a time and keeps h on the GPU
//! between calls (real-time audio, sensors).
//!
//! How a chunk runs, in one submit: the carried state `[L, D, B, H]` is copied into the h0 region
//! of the chunk's [`Workspace`] states buffer, the GRU is encoded as usual (with `zero_h0` off, so
//! it starts from that h0), h_n is copied back into the carry, and the chunk's output is copied to
//! the workspace's staging buffer. The carry is a buffer of its own because wgpu refuses a copy
//! whose source and destination are the same buffer (h_n and h0 share the states buffer).

use super::io::{pop_scopes, read_back};
use super::layer::GpuGru;
use super::workspace::Workspace;
use crate::config::GruConfig;
use crate::error::{Error, Result};
use crate::io::SeqInput;
use crate::io::{Batch, Steps};
use crate::stream::{self, Stream};

/// Workspaces kept for distinct chunk lengths; the least recently used goes first.
const MAX_CACHED: usize = 4;

/// A streaming GRU over a fixed batch of `B` independent streams (the [`Stream`] trait, as
/// [`crate::cpu::CpuStream`] on the CPU).
///
/// Each [`Stream::seq`] of `T` steps continues every row from where the previous call left it,
/// so feeding a sequence step by step, or in chunks of any lengths, gives the same output as one
/// [`GpuGru::forward`] over the whole sequence. Rows can be restarted one at a time with
/// [`Stream::reset_row`] while the others continue.
///
/// Shapes (with `D = 1`: streaming needs a forward-only GRU):
/// - a chunk `x`: `[T, B, I]`, or `[B, T, I]` when the config is `batch_first`;
/// - its output: `[T, B, H]` (`[B, T, H]` when `batch_first`);
/// - the state: `[L, B, H]`.
///
/// Workspaces are cached per chunk length, so repeated calls with the same length create no
/// buffers.
///
/// ```no_run
/// use wgpu_gru::gpu::{GpuContext, GpuGru, GpuStream};
/// use wgpu_gru::{CellWeights, Gru, GruConfig, Steps, Stream};
/// let gru = Gru::single(GruConfig::new(3, 16), CellWeights::zeros(3, 16))?;
/// let gpu = GpuGru::new(&GpuContext::new_default()?, &gru)?;
/// let mut stream = GpuStream::new(&gpu, 2)?; // B = 2 streams
/// let y1 = stream.step(&[0.1; 2 * 3])?; // one step: x [1, 2, 3] → y [1, 2, 16]
/// let y2 = stream.seq(&[0.2; 5 * 2 * 3], Steps(5))?; // five more steps
/// stream.reset_row(1)?; // row 1 starts over at the next call; row 0 continues
/// let h = stream.state()?; // [1, 2, 16]
/// # Ok::<(), wgpu_gru::Error>(())
/// ```
pub struct GpuStream<'g> {
    gru: &'g GpuGru,
    batch: usize,
    /// Floats of one state `[L, D, B, H]`.
    state_len: usize,
    /// The running state between calls `[L, D, B, H]`.
    carry: wgpu::Buffer,
    /// Staging for [`Stream::state_into`].
    read_state: wgpu::Buffer,
    /// Workspaces by chunk length, most recently used last.
    cache: Vec<Workspace>,
    /// H zeros, for clearing one row's slots.
    zeros: Vec<f32>,
}

impl std::fmt::Debug for GpuStream<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuStream")
            .field("gru", self.gru)
            .field("batch", &self.batch)
            .field(
                "cached_steps",
                &self.cache.iter().map(Workspace::steps).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl<'g> GpuStream<'g> {
    /// A stream of `batch` rows over `gru`, every row starting from h = 0.
    ///
    /// Refuses reverse and bidirectional GRUs and Keras' `go_backwards`: a backward pass over a
    /// chunk is not a backward pass over the sequence.
    pub fn new(gru: &'g GpuGru, batch: usize) -> Result<Self> {
        let c = gru.config();
        let state_len = stream::state_len(c, batch)?;
        let bytes = state_len as u64 * 4;
        let device = &gru.context().device;
        let max = device.limits().max_buffer_size;
        if bytes > max {
            return Err(Error::DeviceLimit {
                what: "stream state (bytes)".into(),
                needed: bytes,
                limit: max,
            });
        }
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let oom = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        // Buffers start zeroed in wgpu, so every row starts from h = 0.
        let carry = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("wgpu-gru stream state"),
            size: bytes,
            usage: wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let read_state = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("wgpu-gru stream state readback"),
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        pop_scopes(oom, scope)?;
        Ok(GpuStream {
            gru,
            batch,
            state_len,
            carry,
            read_state,
            cache: Vec::with_capacity(MAX_CACHED),
            zeros: vec![0.0; c.hidden_size],
        })
    }

    /// The GRU this stream runs.
    pub fn gru(&self) -> &GpuGru {
        self.gru
    }

    /// [`Stream::seq_into`]: one submit, allocating nothing on the host.
    fn run_chunk(&mut self, x: &[f32], steps: usize, out: &mut [f32]) -> Result<()> {
        let gru = self.gru;
        let c = gru.config();
        let batch = self.batch;
        stream::check_chunk(c, batch, x, steps, out.len())?;
        let out_len = out.len();
        let ctx = gru.context();
        ctx.check_lost()?;
        let i = self.workspace(steps)?;
        let ws = &mut self.cache[i];
        let device = &ctx.device;
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let oom = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        gru.write_input(ws, &SeqInput::new(x, Steps(steps), Batch(batch)))?;
        // h0 comes from the carry copied below, not from a clear.
        ws.zero_h0 = None;
        let state_bytes = self.state_len as u64 * 4;
        let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("wgpu-gru stream push"),
        });
        encoder.copy_buffer_to_buffer(&self.carry, 0, &ws.states, 0, state_bytes);
        gru.encode(&mut encoder, ws)?;
        encoder.copy_buffer_to_buffer(&ws.states, state_bytes, &self.carry, 0, state_bytes);
        encoder.copy_buffer_to_buffer(ws.output_buffer(), 0, &ws.read_y, 0, out_len as u64 * 4);
        let index = ctx.submit([encoder.finish()]);
        let read = read_back(ctx, index, &mut [(&ws.read_y, &mut *out)]);
        pop_scopes(oom, scope)?;
        read?;
        ctx.check_lost()
    }

    /// Index in `cache` of the workspace for `steps`, made (and the least recently used dropped)
    /// if needed.
    fn workspace(&mut self, steps: usize) -> Result<usize> {
        let ws = match self.cache.iter().position(|w| w.steps() == steps) {
            Some(i) => self.cache.remove(i),
            None => {
                if self.cache.len() >= MAX_CACHED {
                    self.cache.remove(0);
                }
                self.gru.workspace(Steps(steps), Batch(self.batch))?
            }
        };
        self.cache.push(ws);
        Ok(self.cache.len() - 1)
    }
}

impl Stream for GpuStream<'_> {
    fn config(&self) -> &GruConfig {
        self.gru.config()
    }
    fn batch(&self) -> usize {
        self.batch
    }
    fn zero_state(&mut self) -> Result<()> {
        let zeros = vec![0.0f32; self.state_len];
        self.gru
            .context()
            .queue
            .write_buffer(&self.carry, 0, bytemuck::cast_slice(&zeros));
        Ok(())
    }
    fn reset_row(&mut self, row: usize) -> Result<()> {
        stream::check_row(self.batch, row)?;
        let h = self.gru.config().hidden_size;
        let slots = self.state_len / (self.batch * h);
        // Queued writes run before the next submit's commands, so the next call sees them.
        for slot in 0..slots {
            let offset = ((slot * self.batch + row) * h * 4) as u64;
            self.gru.context().queue.write_buffer(
                &self.carry,
                offset,
                bytemuck::cast_slice(&self.zeros),
            );
        }
        Ok(())
    }
    fn set_state(&mut self, h: &[f32]) -> Result<()> {
        stream::check_state(self.state_len, h.len())?;
        self.gru
            .context()
            .queue
            .write_buffer(&self.carry, 0, bytemuck::cast_slice(h));
        Ok(())
    }
    /// A blocking read-back, allocating nothing on the host; the state stays on the GPU.
    fn state_into(&self, h: &mut [f32]) -> Result<()> {
        stream::check_state(self.state_len, h.len())?;
        let ctx = self.gru.context();
        ctx.check_lost()?;
        let device = &ctx.device;
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let oom = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("wgpu-gru stream state read"),
        });
        let bytes = self.state_len as u64 * 4;
        encoder.copy_buffer_to_buffer(&self.carry, 0, &self.read_state, 0, bytes);
        let index = ctx.submit([encoder.finish()]);
        let read = read_back(ctx, index, &mut [(&self.read_state, &mut *h)]);
        pop_scopes(oom, scope)?;
        read?;
        ctx.check_lost()
    }
    fn state_len(&self) -> usize {
        self.state_len
    }
    fn seq_into(&mut self, x: &[f32], steps: Steps, out: &mut [f32]) -> Result<()> {
        self.run_chunk(x, steps.0, out)
    }
}
