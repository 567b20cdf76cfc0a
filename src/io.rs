//! [`SeqInput`] and [`GruOutput`]: what every path takes and returns.

use crate::config::GruConfig;
use crate::error::{Error, Result};

/// The number of timesteps `T` of a sequence. It has a type of its own, as [`Batch`] has, so
/// that no call can swap T and B: `T·B·I` is the same either way, and a swapped call would pass
/// every shape check and silently compute something else.
///
/// ```compile_fail
/// use wgpu_gru::{Batch, SeqInput, Steps};
/// let x = vec![0.0f32; 2 * 3 * 4];
/// let input = SeqInput::new(&x, Batch(3), Steps(2)); // T and B swapped: does not compile
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Steps(pub usize);

/// The number of sequences `B` in a batch (see [`Steps`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Batch(pub usize);

/// One forward's inputs.
///
/// - `x`: `[T, B, I]`, or `[B, T, I]` when the config is `batch_first`;
/// - `h0`: `[L·D, B, H]`, zeros when `None`;
/// - `lengths`: `[B]` valid steps per row, each in `1..=T`; all `T` when `None`;
/// - `mask`: `[B, T]` (whatever the layout of `x`), Keras's per-step mask: `false` marks a step
///   that every layer and direction skips. Not together with `lengths`.
///
/// **Masks** give Keras's numbers on pre-padded (`pad_sequences(..., padding="pre")`) or gapped
/// batches. At a masked step the state passes through unchanged and the output repeats the
/// previous output of that direction (zeros before its first valid step), or is zero with
/// [`with_zero_output_for_mask`](Self::with_zero_output_for_mask) (what Keras's `Bidirectional`
/// does). Steps are read at their own time index, also with `go_backwards` and in the reverse
/// direction; the final state is the state after the last valid step processed.
///
/// ```
/// use wgpu_gru::{reference, Batch, Gru, GruConfig, GruWeights, CellWeights, SeqInput, Steps};
/// // Two rows padded in front to T = 4: row 0 has 2 real steps, row 1 has 4.
/// let (t, b, i, h) = (4, 2, 3, 5);
/// let mask = [false, false, true, true, /* row 1 */ true, true, true, true]; // [B, T]
/// let x = vec![0.1f32; t * b * i];                                       // [T, B, I]
/// let cell = CellWeights { w_ih: vec![0.1; 3 * h * i], w_hh: vec![0.1; 3 * h * h],
///                          b_ih: vec![0.0; 3 * h], b_hh: vec![0.0; 3 * h] };
/// let gru = Gru { config: GruConfig::new(i, h), weights: GruWeights { layers: vec![vec![cell]] } };
/// let out = reference::forward(&gru, &SeqInput::new(&x, Steps(t), Batch(b)).with_mask(&mask))?;
/// assert_eq!(&out.output[..h], &[0.0; 5]); // row 0, step 0: masked, nothing seen yet
/// # Ok::<(), wgpu_gru::Error>(())
/// ```
///
/// Every path checks these shapes (and that `T·B·I` and the output size do not overflow) before
/// any work, and refuses bad ones with a typed [`Error`].
///
/// **Fields are private**: an input is made only by [`new`](Self::new) and the `with_*`
/// builders, whose [`Steps`] and [`Batch`] keep T and B apart, and is read back through the
/// accessors ([`steps`](Self::steps), [`batch`](Self::batch), …). A literal or a field write
/// does not compile:
///
/// ```compile_fail,E0451
/// use wgpu_gru::SeqInput;
/// let x = vec![0.0f32; 2 * 3];
/// let input = SeqInput { x: &x, steps: 3, batch: 2, h0: None, lengths: None, mask: None,
///                        zero_output_for_mask: false };
/// ```
///
/// ```compile_fail,E0616
/// use wgpu_gru::{Batch, SeqInput, Steps};
/// let x = vec![0.0f32; 2 * 3];
/// let mut input = SeqInput::new(&x, Steps(2), Batch(3));
/// input.steps = 3; // T and B swapped behind the types' back
/// ```
///
/// **Empty problems.** `T = 0` or `B = 0` are not errors: `output` is empty, and `h_n` is the
/// state after no steps — `h0`, or zeros without one. (With `T = 0` no length is valid, so
/// `lengths` must be `None`, or empty when `B = 0`.)
///
/// **NaN and infinities** are not checked for: they go through the IEEE arithmetic, as in
/// PyTorch, Keras and ONNX Runtime. A NaN in row `b`'s input at step `t` makes that row's outputs
/// NaN from step `t` on (in its processing order) and its `h_n` NaN; the other rows are not
/// affected, and padding past a row's length is never read, so garbage there is harmless. A NaN
/// in `h0` poisons its row, and one in the weights every row. ±∞ are ordinary values: the
/// saturating activations map them to their limits, and `∞ − ∞` or `0·∞` give NaN.
#[derive(Debug, Clone, Copy)]
pub struct SeqInput<'a> {
    // Private, so that inputs are made only through `new` and its `Steps`/`Batch` types.
    pub(crate) x: &'a [f32],
    pub(crate) steps: usize,
    pub(crate) batch: usize,
    pub(crate) h0: Option<&'a [f32]>,
    pub(crate) lengths: Option<&'a [usize]>,
    pub(crate) mask: Option<&'a [bool]>,
    pub(crate) zero_output_for_mask: bool,
}

impl<'a> SeqInput<'a> {
    /// An input with zero initial state and full lengths: `x` of `steps` × `batch` rows (see
    /// the layouts above).
    ///
    /// ```
    /// use wgpu_gru::{Batch, SeqInput, Steps};
    /// let (t, b, i) = (5, 2, 3);
    /// let x = vec![0.5f32; t * b * i];
    /// let input = SeqInput::new(&x, Steps(t), Batch(b));
    /// assert_eq!((input.steps(), input.batch()), (5, 2));
    /// ```
    pub fn new(x: &'a [f32], steps: Steps, batch: Batch) -> Self {
        SeqInput {
            x,
            steps: steps.0,
            batch: batch.0,
            h0: None,
            lengths: None,
            mask: None,
            zero_output_for_mask: false,
        }
    }
    /// Sets `h0`, `[L·D, B, H]`.
    pub fn with_h0(mut self, h0: &'a [f32]) -> Self {
        self.h0 = Some(h0);
        self
    }
    /// Sets per-row lengths `[B]`.
    pub fn with_lengths(mut self, lengths: &'a [usize]) -> Self {
        self.lengths = Some(lengths);
        self
    }
    /// Sets a Keras per-step mask `[B, T]` (`true`: valid).
    pub fn with_mask(mut self, mask: &'a [bool]) -> Self {
        self.mask = Some(mask);
        self
    }
    /// Keras's `zero_output_for_mask`: masked steps output zeros.
    pub fn with_zero_output_for_mask(mut self, zero: bool) -> Self {
        self.zero_output_for_mask = zero;
        self
    }

    /// The input sequence: `[T, B, I]`, or `[B, T, I]` when the config is `batch_first`.
    pub fn x(&self) -> &'a [f32] {
        self.x
    }
    /// Steps `T`.
    pub fn steps(&self) -> usize {
        self.steps
    }
    /// Batch `B`.
    pub fn batch(&self) -> usize {
        self.batch
    }
    /// The initial state `[L·D, B, H]`; `None` means zeros.
    pub fn h0(&self) -> Option<&'a [f32]> {
        self.h0
    }
    /// Valid steps per row, `[B]`, each in `1..=T`; `None` means all `T`.
    pub fn lengths(&self) -> Option<&'a [usize]> {
        self.lengths
    }
    /// The per-step mask `[B, T]` (whatever the layout of `x`): `true` where the step is valid;
    /// `None` means every step is.
    pub fn mask(&self) -> Option<&'a [bool]> {
        self.mask
    }
    /// With a mask: whether masked steps output zeros instead of repeating the previous output.
    pub fn zero_output_for_mask(&self) -> bool {
        self.zero_output_for_mask
    }

    /// Whether the step at time `t` of row `b` is valid under the mask (always without one).
    pub(crate) fn valid(&self, b: usize, t: usize) -> bool {
        self.mask.is_none_or(|m| m[b * self.steps + t])
    }

    /// The mask as the GPU kernels read it, `[B, T]`: bit 0 the step is valid, bit 1 a valid step
    /// comes before it (forward order), bit 2 one comes after it (backward order), so that a
    /// masked step knows in either order whether its output repeats a state or is zero.
    pub(crate) fn mask_flags(&self) -> Option<Vec<u32>> {
        let mut flags = Vec::new();
        self.fill_mask_flags(&mut flags).then_some(flags)
    }

    /// [`mask_flags`](Self::mask_flags) into `flags` (reusing its capacity); `false` without a
    /// mask.
    pub(crate) fn fill_mask_flags(&self, flags: &mut Vec<u32>) -> bool {
        let Some(m) = self.mask else { return false };
        let t = self.steps;
        flags.clear();
        flags.resize(m.len(), 0);
        for (row, f) in m
            .chunks_exact(t.max(1))
            .zip(flags.chunks_exact_mut(t.max(1)))
        {
            let mut seen = false;
            for (k, &v) in row.iter().enumerate() {
                f[k] |= u32::from(v) | (u32::from(seen) << 1);
                seen |= v;
            }
            seen = false;
            for (k, &v) in row.iter().enumerate().rev() {
                f[k] |= u32::from(seen) << 2;
                seen |= v;
            }
        }
        true
    }

    /// Checks every shape against `config`. `T = 0` or `B = 0` are allowed and give empty outputs.
    pub fn validate(&self, config: &GruConfig) -> Result<()> {
        let (t, b) = (self.steps, self.batch);
        let n = t
            .checked_mul(b)
            .and_then(|v| v.checked_mul(config.input_size))
            .ok_or_else(|| Error::Overflow(format!("x = [{t}, {b}, {}]", config.input_size)))?;
        t.checked_mul(b)
            .and_then(|v| v.checked_mul(config.output_size()))
            .ok_or_else(|| {
                Error::Overflow(format!("output = [{t}, {b}, {}]", config.output_size()))
            })?;
        if t > u32::MAX as usize / 2 || b > u32::MAX as usize / 2 {
            return Err(Error::Overflow(format!("steps {t} or batch {b}")));
        }
        if self.x.len() != n {
            let shape = if config.batch_first {
                format!("[{b}, {t}, {}]", config.input_size)
            } else {
                format!("[{t}, {b}, {}]", config.input_size)
            };
            return Err(Error::shape(
                "x",
                format!("{shape} ({n} elements)"),
                format!("{} elements", self.x.len()),
            ));
        }
        if let Some(h0) = self.h0 {
            let ld = config.num_layers * config.num_directions();
            let e = ld * b * config.hidden_size;
            if h0.len() != e {
                return Err(Error::shape(
                    "h0",
                    format!("[{ld}, {b}, {}] ({e} elements)", config.hidden_size),
                    format!("{} elements", h0.len()),
                ));
            }
        }
        if let Some(len) = self.lengths {
            if len.len() != b {
                return Err(Error::shape(
                    "lengths",
                    format!("[{b}]"),
                    format!("[{}]", len.len()),
                ));
            }
            if let Some((i, &l)) = len.iter().enumerate().find(|&(_, &l)| l == 0 || l > t) {
                return Err(Error::arg(
                    "lengths",
                    format!("lengths[{i}] = {l} is outside 1..={t}"),
                ));
            }
            if config.go_backwards {
                return Err(Error::arg(
                    "lengths",
                    "go_backwards does not take per-row lengths",
                ));
            }
        }
        if let Some(m) = self.mask {
            if self.lengths.is_some() {
                return Err(Error::arg(
                    "mask",
                    "a mask and lengths together (lengths are a mask of leading valid steps)",
                ));
            }
            if m.len() != t * b {
                return Err(Error::shape(
                    "mask",
                    format!("[{b}, {t}] ({} elements)", t * b),
                    format!("{} elements", m.len()),
                ));
            }
        }
        Ok(())
    }
}

/// One forward's results.
#[derive(Debug, Clone, PartialEq)]
pub struct GruOutput {
    /// `[T, B, D·H]` (`[B, T, D·H]` when `batch_first`); zeros past each row's length.
    pub output: Vec<f32>,
    /// `[L·D, B, H]`: each row's state after its last valid step.
    pub h_n: Vec<f32>,
}

impl GruOutput {
    /// Largest absolute difference between two outputs (output and state), `∞` if shapes differ.
    pub fn max_abs_diff(&self, other: &GruOutput) -> f32 {
        crate::max_abs_diff(&self.output, &other.output)
            .max(crate::max_abs_diff(&self.h_n, &other.h_n))
    }
}

/// One forward on any path: [`crate::reference::Reference`], [`crate::cpu::CpuGru`],
/// [`crate::gpu::GpuGru`] and [`crate::auto::AutoGru`], so that apps and tests can swap them.
///
/// Shapes are those of [`SeqInput`] and [`GruOutput`]: `x` `[T, B, I]` (`[B, T, I]` batch-first),
/// output `[T, B, D·H]`, `h_n` `[L·D, B, H]`.
pub trait Forward {
    /// The model's configuration.
    fn config(&self) -> &GruConfig;
    /// Runs one forward.
    fn forward(&self, input: &SeqInput<'_>) -> Result<GruOutput>;
}
