//! The options of a GPU model and the statistics of a forward.

/// Default K-columns per invocation of `sequence_regs` (each invocation holds 3× this many weights).
pub(crate) const REGS_DEFAULT_COLUMNS: u32 = 32;

/// How the recurrence is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Algorithm {
    /// Chosen per workspace from H, B and the adapter ([`GpuGru::choose`](super::GpuGru::choose)).
    #[default]
    Auto,
    /// One dispatch per timestep (reset-after) or two (reset-before), all in one compute pass.
    PerStep,
    /// One dispatch for all T steps: a workgroup owns a slice of the batch (needs H ≤ 1024).
    Sequence,
    /// One dispatch for all T steps with W_hh held in registers: a workgroup owns one batch row
    /// (needs H ≤ 160 and up to 1024 invocations per workgroup).
    SequenceRegisters,
    /// Like [`PerStep`](Self::PerStep) (same dispatches), with the GEMM-tiled step kernels of
    /// `tiled.wgsl`: a workgroup owns 16–64 batch rows × 16 hidden units, so W_hh is read
    /// once per tile of rows instead of once per 4 rows. For larger batches.
    Tiled,
    /// All steps in one dispatch (per chunk of steps on software adapters) by workgroups that
    /// each do the work of several per-step workgroups and wait for each other between steps
    /// on a storage-buffer counter. Every wait is bounded: where the device does not keep all
    /// of them resident, the dispatch stops, a second attempt continues from the last step all
    /// finished, and a last one with a single workgroup always finishes, so the result is right,
    /// only slower. Never chosen by `Auto`: it is unmeasured on real GPUs so far.
    Grid,
}

impl Algorithm {
    /// Every algorithm a caller can force (all but [`Algorithm::Auto`]), in declaration order:
    /// the per-step kernels, the sequence kernels, the tiled one, then the grid.
    pub const FORCED: [Algorithm; 5] = [
        Algorithm::PerStep,
        Algorithm::Sequence,
        Algorithm::SequenceRegisters,
        Algorithm::Tiled,
        Algorithm::Grid,
    ];
}

pub use crate::config::Precision;

/// Tuning options of [`GpuGru::with_options`](super::GpuGru::with_options): `GpuOptions::default()` and its `with_*`
/// builders (more options may come, so the struct cannot be written out field by field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct GpuOptions {
    /// The recurrence algorithm (default [`Algorithm::Auto`]).
    pub algorithm: Algorithm,
    /// K-columns of W_hh each invocation of the register-resident sequence kernel holds per gate:
    /// 8, 16 or 32 (default 32). Fewer columns mean more invocations per workgroup and fewer
    /// registers each.
    pub register_columns: u32,
    /// Use the subgroup-reduction kernels of `gru_subgroup.wgsl` where the device has
    /// `Features::SUBGROUP` (default `true`); `false` always runs the portable kernels.
    pub subgroups: bool,
    /// Hidden units per workgroup of the subgroup step kernels, 1 to 256; 0 (default) sizes it
    /// for the adapter's smallest subgroup (256 invocations / its size), so each subgroup owns one
    /// unit. With more units than subgroups, each subgroup takes several in turn.
    pub subgroup_units: u32,
    /// Workgroups of [`Algorithm::Grid`]; 0 (default) launches as many as the device ran at
    /// once when probed ([`resident_workgroups`](super::resident_workgroups)) with the kernel's
    /// shape.
    pub grid_workgroups: u32,
    /// How the weights are stored (default [`Precision::F32`]).
    pub precision: Precision,
}

impl Default for GpuOptions {
    fn default() -> Self {
        GpuOptions {
            algorithm: Algorithm::Auto,
            register_columns: REGS_DEFAULT_COLUMNS,
            subgroups: true,
            subgroup_units: 0,
            grid_workgroups: 0,
            precision: Precision::F32,
        }
    }
}

impl GpuOptions {
    /// Sets [`GpuOptions::algorithm`].
    pub fn with_algorithm(mut self, algorithm: Algorithm) -> Self {
        self.algorithm = algorithm;
        self
    }
    /// Sets [`GpuOptions::register_columns`].
    pub fn with_register_columns(mut self, columns: u32) -> Self {
        self.register_columns = columns;
        self
    }
    /// Sets [`GpuOptions::subgroups`].
    pub fn with_subgroups(mut self, subgroups: bool) -> Self {
        self.subgroups = subgroups;
        self
    }
    /// Sets [`GpuOptions::precision`].
    pub fn with_precision(mut self, precision: Precision) -> Self {
        self.precision = precision;
        self
    }
    /// Sets [`GpuOptions::grid_workgroups`].
    pub fn with_grid_workgroups(mut self, workgroups: u32) -> Self {
        self.grid_workgroups = workgroups;
        self
    }
    /// Sets [`GpuOptions::subgroup_units`].
    pub fn with_subgroup_units(mut self, units: u32) -> Self {
        self.subgroup_units = units;
        self
    }
}

/// What one recorded forward costs, so the structure can be checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ForwardStats {
    /// Compute dispatches recorded.
    pub dispatches: u32,
    /// Queue submits (0 from [`GpuGru::encode`](super::GpuGru::encode), which only records).
    pub submits: u32,
    /// The algorithm that ran: any [`Algorithm`] but [`Algorithm::Auto`], which resolves to one
    /// (the plan's choice, `plan::choose`).
    pub algorithm: Algorithm,
    /// Batch rows per workgroup of the sequence kernel or tile of the tiled kernels (0 for
    /// per-step).
    pub rows_per_workgroup: u32,
    /// Whether the recurrence ran a subgroup-reduction kernel (`step_subgroup.wgsl` or
    /// `sequence_regs_subgroup.wgsl`).
    pub subgroups: bool,
}
