//! [`Stream`]: one interface for a GRU that is fed a timestep or a chunk at a time and keeps its
//! state between calls (real-time audio, sensors), implemented on the CPU
//! ([`crate::cpu::CpuStream`]) and the GPU ([`crate::gpu::GpuStream`]).

use crate::config::{Direction, GruConfig};
use crate::error::{Error, Result};
use crate::io::{Batch, SeqInput, Steps};

/// A stateful GRU over a fixed batch of `B` independent rows (streams), after candle's `RNN`
/// trait (`zero_state` / `step` / `seq`), except that the stream holds the state rather than
/// the caller: each call continues every row from where the previous call left it, so feeding a
/// sequence step by step, or in chunks of any lengths, gives the output of one forward over the
/// whole sequence.
///
/// Shapes (streaming needs a forward-only GRU, so `D = 1`):
/// - a chunk `x` of `T` steps: `[T, B, I]`, or `[B, T, I]` when the config is `batch_first`;
/// - its output: `[T, B, H]` (`[B, T, H]` when `batch_first`), the last layer's;
/// - the state: `[L, B, H]`, every layer's h after the last step fed.
///
/// The trait is object-safe: no method is generic or returns `Self`, so an app can hold a
/// `Box<dyn Stream>` and pick the CPU or the GPU at run time.
///
/// ```
/// use wgpu_gru::cpu::{CpuGru, CpuStream};
/// use wgpu_gru::{CellWeights, Gru, GruConfig, Steps, Stream};
/// let gru = Gru::single(GruConfig::new(3, 4), CellWeights::zeros(3, 4))?;
/// let cpu = CpuGru::new(&gru)?;
/// let mut stream: Box<dyn Stream + '_> = Box::new(CpuStream::new(&cpu, 2)?); // B = 2
/// let y = stream.step(&[0.1; 2 * 3])?; // x [1, 2, 3] → y [1, 2, 4]
/// let y = stream.seq(&[0.2; 5 * 2 * 3], Steps(5))?; // five more steps → y [5, 2, 4]
/// stream.reset_row(1)?; // row 1 starts over; row 0 continues
/// assert_eq!(stream.state()?.len(), 1 * 2 * 4); // [L, B, H]
/// # Ok::<(), wgpu_gru::Error>(())
/// ```
pub trait Stream {
    /// The model's configuration.
    fn config(&self) -> &GruConfig;

    /// Rows `B`.
    fn batch(&self) -> usize;

    /// Restarts every row from h = 0 (candle's `zero_state`).
    fn zero_state(&mut self) -> Result<()>;

    /// Restarts row `row` from h = 0 at the next call, in every layer; other rows go on.
    fn reset_row(&mut self, row: usize) -> Result<()>;

    /// Replaces the state of every row with `h` `[L, B, H]`.
    fn set_state(&mut self, h: &[f32]) -> Result<()>;

    /// Writes the current state `[L, B, H]` into `h` (`L·B·H` floats).
    fn state_into(&self, h: &mut [f32]) -> Result<()>;

    /// Runs `steps` more steps of every row on `x` and writes their output into `out`
    /// (`T·B·H` floats; shapes in the trait's docs). `T ≥ 1`. A refused call leaves the state
    /// as it was.
    fn seq_into(&mut self, x: &[f32], steps: Steps, out: &mut [f32]) -> Result<()>;

    /// Floats of one state, `L·B·H`.
    fn state_len(&self) -> usize {
        let c = self.config();
        c.num_layers * self.batch() * c.hidden_size
    }

    /// The current state `[L, B, H]`.
    fn state(&self) -> Result<Vec<f32>> {
        let mut h = vec![0.0; self.state_len()];
        self.state_into(&mut h)?;
        Ok(h)
    }

    /// [`seq_into`](Self::seq_into) into a new output `[T, B, H]` (`[B, T, H]` batch-first).
    fn seq(&mut self, x: &[f32], steps: Steps) -> Result<Vec<f32>> {
        let mut out = vec![0.0; output_len(self.config(), self.batch(), steps.0)?];
        self.seq_into(x, steps, &mut out)?;
        Ok(out)
    }

    /// One step: `x` `[B, I]` → `out` `[B, H]`.
    fn step_into(&mut self, x: &[f32], out: &mut [f32]) -> Result<()> {
        self.seq_into(x, Steps(1), out)
    }

    /// One step: `x` `[B, I]` → a new output `[B, H]`.
    fn step(&mut self, x: &[f32]) -> Result<Vec<f32>> {
        self.seq(x, Steps(1))
    }
}

/// Floats of the state `[L, B, H]` of a stream of `batch` rows over `config`, after refusing
/// what cannot stream: reverse and bidirectional GRUs and Keras' `go_backwards` (a backward pass
/// over a chunk is not a backward pass over the sequence), and `B = 0`.
pub(crate) fn state_len(config: &GruConfig, batch: usize) -> Result<usize> {
    if config.direction != Direction::Forward || config.go_backwards {
        return Err(Error::Unsupported(format!(
            "streaming needs a forward-only GRU (got direction {:?}, go_backwards {})",
            config.direction, config.go_backwards
        )));
    }
    if batch == 0 {
        return Err(Error::arg("batch", "a stream needs B ≥ 1"));
    }
    config
        .num_layers
        .checked_mul(batch)
        .and_then(|v| v.checked_mul(config.hidden_size))
        .ok_or_else(|| Error::Overflow("stream state [L, B, H]".into()))
}

/// Floats of a chunk's output `[T, B, H]`.
pub(crate) fn output_len(config: &GruConfig, batch: usize, steps: usize) -> Result<usize> {
    steps
        .checked_mul(batch)
        .and_then(|v| v.checked_mul(config.hidden_size))
        .ok_or_else(|| Error::Overflow(format!("stream output [{steps}, {batch}, H]")))
}

/// Checks one chunk before any work: `x` against `[T, B, I]`, `T ≥ 1`, and `out_len` against
/// `[T, B, H]`.
pub(crate) fn check_chunk(
    config: &GruConfig,
    batch: usize,
    x: &[f32],
    steps: usize,
    out_len: usize,
) -> Result<()> {
    SeqInput::new(x, Steps(steps), Batch(batch)).validate(config)?;
    if steps == 0 {
        return Err(Error::arg("steps", "a chunk needs T ≥ 1 steps"));
    }
    let want = output_len(config, batch, steps)?;
    if out_len != want {
        return Err(Error::shape("stream output", want, out_len));
    }
    Ok(())
}

/// Checks a state given to `set_state` or `state_into`: `[L, B, H]`, `want` floats.
pub(crate) fn check_state(want: usize, got: usize) -> Result<()> {
    if got != want {
        return Err(Error::shape("stream state", want, got));
    }
    Ok(())
}

/// Checks a row given to `reset_row`: `row < batch`.
pub(crate) fn check_row(batch: usize, row: usize) -> Result<()> {
    if row >= batch {
        return Err(Error::arg(
            "row",
            format!("row {row} is outside 0..{batch}"),
        ));
    }
    Ok(())
}
