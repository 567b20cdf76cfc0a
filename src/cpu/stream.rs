//! [`CpuStream`]: a stateful GRU on the CPU path that takes a timestep or a chunk at a time and
//! carries h between calls.
//!
//! A chunk is one [`CpuGru::forward_into`] of the chunk with the carried state as its h0; its
//! h_n becomes the carry (a swap of two buffers, no copy).

use super::CpuGru;
use crate::config::GruConfig;
use crate::error::Result;
use crate::io::{Batch, GruOutput, SeqInput, Steps};
use crate::stream::{self, Stream};

/// A streaming GRU on the CPU over a fixed batch of `B` independent streams: the CPU twin of
/// [`crate::gpu::GpuStream`], through the same [`Stream`] trait.
///
/// Each [`Stream::seq`] of `T` steps continues every row from where the previous call left it.
/// Shapes (with `D = 1`: streaming needs a forward-only GRU):
/// - a chunk `x`: `[T, B, I]`, or `[B, T, I]` when the config is `batch_first`;
/// - its output: `[T, B, H]` (`[B, T, H]` when `batch_first`);
/// - the state: `[L, B, H]`.
///
/// The stream keeps its buffers, and the [`CpuGru`] its workspace, so repeated
/// [`Stream::seq_into`] calls of one chunk length allocate nothing with one thread. With more
/// threads ([`CpuGru::with_threads`]) each call starts its threads anew; a chunk whose time loop
/// is under [`CpuGru::with_parallel_min_flop`] (8 MFLOP by default) runs on the calling thread.
///
/// Against one [`CpuGru::forward`] over the whole sequence the outputs agree to about an f32
/// ulp (at most 3e-8 in `tests/gpu/streaming.rs`), not bit for bit: the input projection runs a
/// one-row tile in two summation chains (even and odd inputs), and which rows fall into such a
/// tile depends on `T·B`.
///
/// ```
/// use wgpu_gru::cpu::{CpuGru, CpuStream};
/// use wgpu_gru::{CellWeights, Gru, GruConfig, Steps, Stream};
/// let gru = Gru::single(GruConfig::new(3, 16), CellWeights::zeros(3, 16))?;
/// let cpu = CpuGru::new(&gru)?;
/// let mut stream = CpuStream::new(&cpu, 2)?; // B = 2 streams
/// let y1 = stream.step(&[0.1; 2 * 3])?; // one step: x [1, 2, 3] → y [1, 2, 16]
/// let y2 = stream.seq(&[0.2; 5 * 2 * 3], Steps(5))?; // five more steps
/// stream.reset_row(1)?; // row 1 starts over at the next call; row 0 continues
/// let h = stream.state(); // [1, 2, 16]
/// # Ok::<(), wgpu_gru::Error>(())
/// ```
#[derive(Clone)]
pub struct CpuStream<'g> {
    gru: &'g CpuGru,
    batch: usize,
    /// The running state `[L, B, H]`.
    state: Vec<f32>,
    /// The last chunk's result: `output` `[T, B, H]`, and `h_n`, the previous state's buffer.
    out: GruOutput,
}

impl std::fmt::Debug for CpuStream<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the packed weights: the model's shape is what identifies it.
        f.debug_struct("CpuStream")
            .field("config", self.gru.config())
            .field("threads", &self.gru.threads())
            .field("batch", &self.batch)
            .finish()
    }
}

impl<'g> CpuStream<'g> {
    /// A stream of `batch` rows over `gru`, every row starting from h = 0.
    ///
    /// Refuses reverse and bidirectional GRUs and Keras' `go_backwards` ([`crate::Error::Unsupported`]):
    /// a backward pass over a chunk is not a backward pass over the sequence; and `batch = 0`.
    pub fn new(gru: &'g CpuGru, batch: usize) -> Result<Self> {
        let n = stream::state_len(gru.config(), batch)?;
        Ok(CpuStream {
            gru,
            batch,
            state: vec![0.0; n],
            out: GruOutput {
                output: Vec::new(),
                h_n: vec![0.0; n],
            },
        })
    }

    /// The GRU this stream runs.
    pub fn gru(&self) -> &CpuGru {
        self.gru
    }

    /// The current state `[L, B, H]`, borrowed (it lives on the host; [`Stream::state`] copies).
    pub fn state(&self) -> &[f32] {
        &self.state
    }
}

impl Stream for CpuStream<'_> {
    fn config(&self) -> &GruConfig {
        self.gru.config()
    }
    fn batch(&self) -> usize {
        self.batch
    }
    fn zero_state(&mut self) -> Result<()> {
        self.state.fill(0.0);
        Ok(())
    }
    fn reset_row(&mut self, row: usize) -> Result<()> {
        stream::check_row(self.batch, row)?;
        let h = self.gru.config().hidden_size;
        for layer in self.state.chunks_exact_mut(self.batch * h) {
            layer[row * h..(row + 1) * h].fill(0.0);
        }
        Ok(())
    }
    fn set_state(&mut self, h: &[f32]) -> Result<()> {
        stream::check_state(self.state.len(), h.len())?;
        self.state.copy_from_slice(h);
        Ok(())
    }
    fn state_into(&self, h: &mut [f32]) -> Result<()> {
        stream::check_state(self.state.len(), h.len())?;
        h.copy_from_slice(&self.state);
        Ok(())
    }
    fn state_len(&self) -> usize {
        self.state.len()
    }
    /// One [`CpuGru::forward_into`] of the chunk from the carried state; with one thread it
    /// allocates nothing.
    fn seq_into(&mut self, x: &[f32], steps: Steps, out: &mut [f32]) -> Result<()> {
        let batch = self.batch;
        stream::check_chunk(self.gru.config(), batch, x, steps.0, out.len())?;
        let input = SeqInput::new(x, steps, Batch(batch)).with_h0(&self.state);
        self.gru.forward_into(&input, &mut self.out)?;
        out.copy_from_slice(&self.out.output);
        // h_n is the new state; the old state's buffer is the next call's h_n.
        std::mem::swap(&mut self.state, &mut self.out.h_n);
        Ok(())
    }
}
