//! The only `include_str!` site. Every WGSL module the crate runs is composed here, once, from the
//! files in `shaders/` and a header generated from Rust: the sizes that both the host and the
//! kernels use (as WGSL `const`s) and the uniform blocks' declarations (from the same field lists
//! as their `#[repr(C)]` Rust twins). So no size or layout is written twice.

use super::options::Precision;
use std::fmt::Write as _;
use std::sync::LazyLock;

/// Declares a `#[repr(C)]` uniform block whose fields are all `u32`/`f32`, and its WGSL
/// declaration (`Self::WGSL`) from the same list, doc comments included, so the two layouts and
/// their docs cannot drift apart.
macro_rules! uniform_block {
    (
        $(#[doc = $doc:literal])*
        $name:ident as $wgsl:literal { $($(#[doc = $fdoc:literal])* $field:ident: $ty:ident),* $(,)? }
    ) => {
        $(#[doc = $doc])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
        pub(crate) struct $name {
            $($(#[doc = $fdoc])* pub $field: $ty,)*
        }
        impl $name {
            /// The block's WGSL declaration.
            pub const WGSL: &'static str = concat!(
                $("//", $doc, "\n",)*
                "struct ", $wgsl, " {\n",
                $($("    //", $fdoc, "\n",)* "    ", stringify!($field), ": ", stringify!($ty), ",\n",)*
                "}\n"
            );
        }
    };
}

uniform_block! {
    /// `Step` of the recurrence modules: the step index, read at a dynamic offset per step.
    StepParams as "Step" { s: u32, _p0: u32, _p1: u32, _p2: u32 }
}

uniform_block! {
    /// `Layer` of the recurrence modules (`prelude.wgsl`).
    LayerParams as "Layer" {
        /// T.
        steps: u32,
        /// B.
        batch: u32,
        /// D.
        dirs: u32,
        /// Padded H / 4: row length of W_hh and h in vec4s.
        hp4: u32,
        /// Strides of t, b and the direction in y (floats).
        y_st: u32, y_sb: u32, y_sd: u32,
        /// Bit d set: direction d runs backwards.
        rev_mask: u32,
        /// 1: Keras go_backwards.
        go_back: u32,
        /// Offset (floats) of b_hh `[D, 3H]` in `u`.
        bhh_off: u32,
        /// Offset (vec4s) of the transposed W_hh `[D, H(k), H(j)]` × (r, z, n, 0) in `u`.
        ut_off: u32,
        /// Offsets (floats) of this layer's h0 and h_n `[D, B, H]` in `states`.
        h0_off: u32, hn_off: u32,
        /// Offset (words) of this layer's slots in `sync` (the grid kernel's).
        sync_off: u32,
        _p1: u32, _p2: u32,
    }
}

uniform_block! {
    /// `ProjParams` of `input_proj.wgsl`.
    ProjParams as "ProjParams" {
        /// Rows T·B, columns D·3H, input features.
        m: u32, n: u32, k: u32,
        /// B.
        rows_per_t: u32,
        /// Strides of t and b in A, and its first float.
        a_st: u32, a_sb: u32, a_off: u32,
        _p0: u32,
    }
}

uniform_block! {
    /// `Chunk` of `input_proj.wgsl`: the K-chunk of a dispatch, at a dynamic offset.
    ChunkParams as "Chunk" { i: u32, _p0: u32, _p1: u32, _p2: u32 }
}

uniform_block! {
    /// `HeadParams` of `head.wgsl`.
    HeadParams as "HeadParams" {
        /// B.
        batch: u32,
        /// Float offset of row 0 of x, and its row stride.
        x_off: u32, x_sb: u32,
        _p0: u32,
    }
}

uniform_block! {
    /// `MergeParams` of `merge.wgsl`.
    MergeParams as "MergeParams" {
        /// Rows N and units H of each half.
        rows: u32, h: u32,
        /// Float offset of the forward half's row 0, its row stride, and how far the backward
        /// half is from it.
        src_off: u32, row_stride: u32, dir_stride: u32,
        _p0: u32, _p1: u32, _p2: u32,
    }
}

uniform_block! {
    /// `TrainLayer` of `gru_backward.wgsl` (offsets in floats; see the shader's layout table).
    TrainLayerParams as "TrainLayer" {
        /// T, B, D, and the layer's input features I_l.
        steps: u32, batch: u32, dirs: u32, in_w: u32,
        /// Bit d set: direction d runs backwards.
        rev_mask: u32,
        /// 1: Keras go_backwards.
        go_back: u32,
        /// The layer's X `[T, B, I_l]`, Y `[T, B, D·H]`, XP `[T, B, D, 3H]`, HP `[D][T, B, H]`,
        /// GT `[D][T, B, 4H]` and the state ping-pong HS `[2][D, B, H]`, in `work`.
        x_off: u32, y_off: u32, xp_off: u32, hp_off: u32, gt_off: u32, hs_off: u32,
        /// The layer's h0 and h_n `[D, B, H]` in `work`.
        h0_off: u32, hn_off: u32,
        /// Parameter offsets of cells (l, 0) and (l, 1).
        p0: u32, p1: u32,
        /// dL/dY `[T, B, D·H]`, the gate gradients DA `[D][T, B, 4H]`, the carried dL/dh and its
        /// partial sum `[D, B, H]`, dL/dh_n and dL/dh0 `[D, B, H]`, in `work`.
        dy_off: u32, da_off: u32, dh_off: u32, pt_off: u32, gs_off: u32, dh0_off: u32,
        /// The layer's W_hhᵀ `[D][H, 3H]` in `work`.
        wt_off: u32, _p0: u32,
    }
}

uniform_block! {
    /// `Gemm` of `train_gemm.wgsl`: C(m, n) (+)= Σ_k A(m, k)·B(k, n) over k in `k0..k1`.
    GemmParams as "Gemm" {
        /// Rows and columns of C, and this dispatch's K-rows.
        m: u32, n: u32, k0: u32, k1: u32,
        /// A(m, k) = work[a_off + m·a_sm + k·a_sk].
        a_off: u32, a_sm: u32, a_sk: u32,
        /// B(k, n) = (b_buf = 1 ? params : work)[b_off + k·b_sk + n·b_sn].
        b_off: u32, b_sk: u32, b_sn: u32, b_buf: u32,
        /// C(m, n) = (c_buf = 1 ? grads : work)[c_off + m·c_sm + n·c_sn].
        c_off: u32, c_sm: u32, c_sn: u32, c_buf: u32,
        /// 1: add to C.
        acc: u32,
    }
}

uniform_block! {
    /// `Opt` of `train_step.wgsl`.
    OptParams as "Opt" {
        /// Parameters P, and B.
        n: u32, batch: u32,
        /// In `work`: the head's input h_n of the last layer `[B, H]`, dL/dlogits and the
        /// logits, then probabilities `[B, C]`, and each row's (loss, correct) `[B, 2]`.
        hn_off: u32, dl_off: u32, pr_off: u32, lb_off: u32,
        /// The head's weight `[C, H]` and bias `[C]` in the parameters.
        wd_off: u32, bd_off: u32,
        /// The optimiser's hyper-parameters (Adam's, or SGD's lr, momentum, weight_decay).
        lr: f32, beta1: f32, beta2: f32, eps: f32, weight_decay: f32,
        /// Adam's bias corrections 1 − β1ᵗ, 1 − β2ᵗ at this step.
        bc1: f32, bc2: f32,
        momentum: f32,
        /// 1: SGD's first step (its buffer starts at g).
        first: u32,
        /// 1: scale the gradients to global norm `max_norm`.
        clip: u32, max_norm: f32,
        /// Workgroups of `sumsq`.
        groups: u32,
    }
}

/// Hidden units one workgroup of the step kernels serves.
pub const STEP_UNITS: u32 = 8;
/// Batch rows one workgroup of the step kernels serves.
pub const STEP_ROWS: u32 = 4;
/// Invocations per workgroup of the step kernels, portable and subgroup.
pub const STEP_WG: u32 = 256;
/// Invocations per workgroup of the sequence kernel.
pub const SEQ_WG: u32 = 256;
/// Largest `rows · H` the sequence kernel keeps in workgroup memory.
pub const SEQ_MAX: u32 = 1024;
/// Largest batch slice per workgroup of the sequence kernel (powers of two up to it are built).
pub const SEQ_MAX_ROWS: u32 = 8;
/// Largest H of the register-resident sequence kernels.
pub const REGS_MAX_H: u32 = 160;
/// Largest workgroup of the register-resident sequence kernels.
pub const REGS_MAX_WG: u32 = 1024;
/// Hidden units one workgroup of the tiled step kernels serves (its `workgroup_size.x`).
pub const TILED_UNITS: u32 = 16;
/// Row groups of a tile (its `workgroup_size.y`): a tile is this × rows per invocation.
pub const TILED_GROUPS: u32 = 16;
/// Most batch rows per invocation of the tiled kernels (1, 2 or 4 are built).
pub const TILED_MAX_RPI: u32 = 4;
/// Output tile (square) of the GEMMs: the input projection and the training GEMM.
pub const GEMM_TILE: u32 = 64;
/// K-columns per stage of the GEMMs.
pub const GEMM_KT: u32 = 16;
/// Invocations per workgroup of the head's entry points.
pub const HEAD_WG: u32 = 64;
/// Invocations per workgroup of the bidirectional merge.
pub const MERGE_WG: u32 = 256;
/// Invocations per workgroup of the training recurrence and the column sums.
pub const TRAIN_WG: u32 = 64;
/// Invocations per workgroup of the optimisers and reductions of `train_step.wgsl`.
pub const OPT_WG: u32 = 256;
/// First float of the partial sums in the training scratch buffer (after loss, correct count,
/// norm and scale).
pub const SCRATCH_PARTIALS: u32 = 4;

/// Every size above, as the header declares it.
const SIZES: &[(&str, u32)] = &[
    ("STEP_UNITS", STEP_UNITS),
    ("STEP_ROWS", STEP_ROWS),
    ("STEP_WG", STEP_WG),
    ("SEQ_WG", SEQ_WG),
    ("SEQ_MAX", SEQ_MAX),
    ("SEQ_MAX_ROWS", SEQ_MAX_ROWS),
    ("REGS_MAX_H", REGS_MAX_H),
    ("REGS_MAX_WG", REGS_MAX_WG),
    ("TILED_UNITS", TILED_UNITS),
    ("TILED_GROUPS", TILED_GROUPS),
    ("TILED_MAX_RPI", TILED_MAX_RPI),
    ("GEMM_TILE", GEMM_TILE),
    ("GEMM_KT", GEMM_KT),
    ("HEAD_WG", HEAD_WG),
    ("MERGE_WG", MERGE_WG),
    ("TRAIN_WG", TRAIN_WG),
    ("OPT_WG", OPT_WG),
    ("SCRATCH_PARTIALS", SCRATCH_PARTIALS),
];

/// Workgroup memory (bytes) of the register-resident kernels' shared part (`regs.wgsl`): the h
/// ping-pong and r⊙h, `3 · REGS_MAX_H` floats.
pub const REGS_SHARED_BYTES: u32 = 3 * REGS_MAX_H * 4;
/// Workgroup memory (bytes) `sequence_regs` declares: the shared part and its partial sums over
/// the K-slices, one per gate and invocation.
pub const REGS_WORKGROUP_BYTES: u32 = REGS_SHARED_BYTES + 3 * REGS_MAX_WG * 4;
/// Workgroup memory (bytes) `sequence_regs_sg` declares: the shared part only (the slices are
/// summed by subgroup shuffles).
pub const REGS_SG_WORKGROUP_BYTES: u32 = REGS_SHARED_BYTES;

/// Workgroup memory (bytes) `grid.wgsl::grid` declares: the step kernels' reduction arrays
/// (`red`, `pre`: `STEP_UNITS · STEP_ROWS · 3` sums per lane and reduced) and one word.
pub const GRID_WORKGROUP_BYTES: u32 =
    (STEP_UNITS * STEP_ROWS * 3 * (STEP_WG / STEP_UNITS) + STEP_UNITS * STEP_ROWS * 3 + 1) * 4;

/// What a module is built for beyond its override constants: how the weights are stored, and the
/// register kernels' vec4s per gate row slice, `KQ` (1 to 8), for which `regs.wgsl`'s unrolled
/// lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Spec {
    /// The weights' storage type.
    pub precision: Precision,
    /// `KQ` of the register kernels (clamped to 1..=8).
    pub kq: u32,
}

impl Default for Spec {
    fn default() -> Self {
        Spec {
            precision: Precision::F32,
            kq: 8,
        }
    }
}

/// `regs.wgsl` with its `//@name: template` lines written out for `kq`: `<g>` runs over the three
/// gates and `<q>` over `0..kq`, so the weights are `let`s and the loops over them unrolled.
pub fn expand_regs(kq: u32) -> String {
    let kq = kq.clamp(1, 8);
    let mut out = String::with_capacity(REGS.len() * 2);
    for line in REGS.lines() {
        let body = line.trim_start();
        let indent = &line[..line.len() - body.len()];
        let Some((name, template)) = body.strip_prefix("//@").and_then(|m| m.split_once(": "))
        else {
            out.push_str(line);
            out.push('\n');
            continue;
        };
        match name {
            "KQ" => {
                let _ = writeln!(
                    out,
                    "{indent}const KQ: u32 = {kq}u;  // vec4s of each gate's row slice per invocation"
                );
            }
            _ => {
                let gates: &[u32] = if name == "weights" { &[0, 1, 2] } else { &[0] };
                for &g in gates {
                    for q in 0..kq {
                        let l = template
                            .replace("<g>", &g.to_string())
                            .replace("<q>", &q.to_string());
                        let _ = writeln!(out, "{indent}{l}");
                    }
                }
            }
        }
    }
    out
}

const PRELUDE: &str = include_str!("../../shaders/prelude.wgsl");
const REGS: &str = include_str!("../../shaders/regs.wgsl");
const STEP: &str = include_str!("../../shaders/step.wgsl");
const GEMM_TILE_WGSL: &str = include_str!("../../shaders/gemm_tile.wgsl");
const REDUCE: &str = include_str!("../../shaders/reduce.wgsl");

/// The header every module starts with: with f16 weights the `f16` extension, then the shared
/// sizes, the weights' scalar type `wt`, and the given uniform blocks.
fn header(blocks: &[&str], precision: Precision) -> String {
    let mut s = String::new();
    if precision == Precision::F16Weights {
        s.push_str("enable f16;\n");
    }
    s.push_str("// Generated by src/gpu/wgsl.rs: sizes shared with the host.\n");
    for (name, v) in SIZES {
        // Writing to a String cannot fail.
        let _ = writeln!(s, "const {name}: u32 = {v}u;");
    }
    for (name, code) in crate::config::ACTIVATION_CODES {
        let _ = writeln!(s, "const {name}: u32 = {code}u;");
    }
    for a in crate::model::DenseActivation::ALL {
        let _ = writeln!(s, "const {}: u32 = {}u;", a.wgsl_const(), a.code());
    }
    for m in super::merge::Merge::ALL {
        let _ = writeln!(s, "const {}: u32 = {}u;", m.wgsl_const(), m.code());
    }
    s.push_str(match precision {
        Precision::F32 => "alias wt = f32;  // the weights' storage type\n",
        Precision::F16Weights => "alias wt = f16;  // the weights' storage type\n",
    });
    for b in blocks {
        s.push_str(b);
    }
    s.push('\n');
    s
}

fn compose(blocks: &[&str], files: &[&str], precision: Precision) -> String {
    let mut s = header(blocks, precision);
    for f in files {
        s.push_str(f);
    }
    s
}

/// The crate's WGSL modules, each named after its kernel file in `shaders/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Shader {
    /// `input_proj.wgsl`: the input projection GEMM.
    InputProj,
    /// `step.wgsl`: the portable per-step recurrence kernels ([`Algorithm::PerStep`](super::Algorithm::PerStep)).
    Step,
    /// `step_subgroup.wgsl`: the per-step kernels with subgroup reductions.
    StepSubgroup,
    /// `sequence.wgsl`: all steps in one dispatch, h in workgroup memory ([`Algorithm::Sequence`](super::Algorithm::Sequence)).
    Sequence,
    /// `sequence_regs.wgsl`: all steps in one dispatch, W_hh in registers ([`Algorithm::SequenceRegisters`](super::Algorithm::SequenceRegisters)).
    SequenceRegs,
    /// `sequence_regs_subgroup.wgsl`: the register kernel with subgroup shuffles.
    SequenceRegsSubgroup,
    /// `tiled.wgsl`: the GEMM-tiled per-step kernels ([`Algorithm::Tiled`](super::Algorithm::Tiled)).
    Tiled,
    /// `grid.wgsl`: the grid-wide persistent kernel ([`Algorithm::Grid`](super::Algorithm::Grid)).
    Grid,
    /// `head.wgsl`: the dense head and its activation.
    Head,
    /// `merge.wgsl`: a bidirectional GRU's halves, merged.
    Merge,
    /// `gru_backward.wgsl`: the training-mode forward and the backward recurrence.
    GruBackward,
    /// `train_gemm.wgsl`: the weight-gradient GEMMs.
    TrainGemm,
    /// `train_step.wgsl`: the head's backward and the optimisers.
    TrainStep,
    /// `occupancy.wgsl`: how many workgroups of a shape run at once.
    Occupancy,
}

impl Shader {
    /// Every module.
    pub const ALL: [Shader; 14] = [
        Shader::InputProj,
        Shader::Step,
        Shader::StepSubgroup,
        Shader::Sequence,
        Shader::SequenceRegs,
        Shader::SequenceRegsSubgroup,
        Shader::Tiled,
        Shader::Grid,
        Shader::Head,
        Shader::Merge,
        Shader::GruBackward,
        Shader::TrainGemm,
        Shader::TrainStep,
        Shader::Occupancy,
    ];

    /// The kernel file's name.
    pub fn name(self) -> &'static str {
        match self {
            Shader::InputProj => "input_proj.wgsl",
            Shader::Step => "step.wgsl",
            Shader::StepSubgroup => "step_subgroup.wgsl",
            Shader::Sequence => "sequence.wgsl",
            Shader::SequenceRegs => "sequence_regs.wgsl",
            Shader::SequenceRegsSubgroup => "sequence_regs_subgroup.wgsl",
            Shader::Tiled => "tiled.wgsl",
            Shader::Grid => "grid.wgsl",
            Shader::Head => "head.wgsl",
            Shader::Merge => "merge.wgsl",
            Shader::GruBackward => "gru_backward.wgsl",
            Shader::TrainGemm => "train_gemm.wgsl",
            Shader::TrainStep => "train_step.wgsl",
            Shader::Occupancy => "occupancy.wgsl",
        }
    }

    /// The module as it is compiled for [`Spec::default`] (f32 weights, KQ = 8): the generated
    /// header, the shared fragments it needs, then the kernel file. Composed once per process.
    pub fn source(self) -> &'static str {
        self.source_for(Precision::F32)
    }

    /// Whether the module reads the GRU's weights, and so has an f16-weights variant: the
    /// forward's kernels, which come first in [`Shader::ALL`], before [`Shader::Head`].
    pub fn reads_weights(self) -> bool {
        (self as usize) < Shader::Head as usize
    }

    /// The module as it is compiled for weights stored in `precision` (KQ = 8).
    pub fn source_for(self, precision: Precision) -> &'static str {
        match precision {
            Precision::F32 => &MODULES[self as usize],
            Precision::F16Weights => &MODULES_F16[self as usize],
        }
    }

    /// The module as it is compiled for `spec`.
    pub fn source_with(self, spec: Spec) -> String {
        self.compose(spec.precision, spec.kq)
    }

    /// Builds the module for `spec` on `device`, labelled with its file name and spec.
    pub fn create(self, device: &wgpu::Device, spec: Spec) -> wgpu::ShaderModule {
        device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(&format!("wgpu-gru {} ({spec:?})", self.name())),
            source: wgpu::ShaderSource::Wgsl(self.source_with(spec).into()),
        })
    }

    fn compose(self, precision: Precision, kq: u32) -> String {
        let rec = [StepParams::WGSL, LayerParams::WGSL];
        match self {
            Shader::InputProj => compose(
                &[ProjParams::WGSL, ChunkParams::WGSL],
                &[
                    GEMM_TILE_WGSL,
                    include_str!("../../shaders/input_proj.wgsl"),
                ],
                precision,
            ),
            Shader::Step => compose(&rec, &[PRELUDE, STEP], precision),
            Shader::StepSubgroup => compose(
                &rec,
                &[PRELUDE, include_str!("../../shaders/step_subgroup.wgsl")],
                precision,
            ),
            Shader::Sequence => compose(
                &rec,
                &[PRELUDE, include_str!("../../shaders/sequence.wgsl")],
                precision,
            ),
            Shader::SequenceRegs => compose(
                &rec,
                &[
                    PRELUDE,
                    &expand_regs(kq),
                    include_str!("../../shaders/sequence_regs.wgsl"),
                ],
                precision,
            ),
            Shader::SequenceRegsSubgroup => compose(
                &rec,
                &[
                    PRELUDE,
                    &expand_regs(kq),
                    include_str!("../../shaders/sequence_regs_subgroup.wgsl"),
                ],
                precision,
            ),
            Shader::Tiled => compose(
                &rec,
                &[PRELUDE, include_str!("../../shaders/tiled.wgsl")],
                precision,
            ),
            // The grid kernel runs the step kernels' work for each of its virtual workgroups.
            Shader::Grid => compose(
                &rec,
                &[PRELUDE, STEP, include_str!("../../shaders/grid.wgsl")],
                precision,
            ),
            Shader::Head => compose(
                &[HeadParams::WGSL],
                &[REDUCE, include_str!("../../shaders/head.wgsl")],
                precision,
            ),
            Shader::Merge => compose(
                &[MergeParams::WGSL],
                &[include_str!("../../shaders/merge.wgsl")],
                precision,
            ),
            // The prelude's forward bindings go unused: the backward binds its own past them.
            Shader::GruBackward => compose(
                &[StepParams::WGSL, LayerParams::WGSL, TrainLayerParams::WGSL],
                &[PRELUDE, include_str!("../../shaders/gru_backward.wgsl")],
                precision,
            ),
            Shader::TrainGemm => compose(
                &[GemmParams::WGSL],
                &[
                    GEMM_TILE_WGSL,
                    include_str!("../../shaders/train_gemm.wgsl"),
                ],
                precision,
            ),
            Shader::TrainStep => compose(
                &[OptParams::WGSL],
                &[REDUCE, include_str!("../../shaders/train_step.wgsl")],
                precision,
            ),
            Shader::Occupancy => compose(
                &[],
                &[include_str!("../../shaders/occupancy.wgsl")],
                precision,
            ),
        }
    }
}

static MODULES: LazyLock<[String; 14]> =
    LazyLock::new(|| Shader::ALL.map(|s| s.compose(Precision::F32, 8)));
static MODULES_F16: LazyLock<[String; 14]> =
    LazyLock::new(|| Shader::ALL.map(|s| s.compose(Precision::F16Weights, 8)));

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(shader: Shader) -> (naga::Module, naga::valid::ModuleInfo) {
        let src = shader.source();
        let module = naga::front::wgsl::parse_str(src)
            .unwrap_or_else(|e| panic!("{}: {}", shader.name(), e.emit_to_string(src)));
        let info = naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::all(),
        )
        .validate(&module)
        .unwrap_or_else(|e| panic!("{}: {}", shader.name(), e.emit_to_string(src)));
        (module, info)
    }

    #[test]
    fn modules_are_indexed_by_their_variant() {
        for (i, s) in Shader::ALL.into_iter().enumerate() {
            assert_eq!(s as usize, i);
            assert!(
                s.source().contains(&header(&[], Precision::F32)[..40]),
                "{}",
                s.name()
            );
        }
    }

    /// Every KQ's register kernels are written out with no private array and no marker left,
    /// and validate in both precisions.
    #[test]
    fn register_kernels_are_unrolled_for_every_kq() {
        for kq in 1..=8 {
            let text = expand_regs(kq);
            assert!(
                !text.lines().any(|l| l.trim_start().starts_with("//@")) && !text.contains("w["),
                "KQ {kq}"
            );
            assert_eq!(text.matches("let w_").count(), 3 * kq as usize, "KQ {kq}");
            assert_eq!(text.matches("regs_mac3(w_0_").count(), kq as usize);
            assert!(text.contains(&format!("const KQ: u32 = {kq}u;")));
            for precision in [Precision::F32, Precision::F16Weights] {
                for shader in [Shader::SequenceRegs, Shader::SequenceRegsSubgroup] {
                    let src = shader.source_with(Spec { precision, kq });
                    let module = naga::front::wgsl::parse_str(&src)
                        .unwrap_or_else(|e| panic!("KQ {kq}: {}", e.emit_to_string(&src)));
                    naga::valid::Validator::new(
                        naga::valid::ValidationFlags::all(),
                        naga::valid::Capabilities::all(),
                    )
                    .validate(&module)
                    .unwrap_or_else(|e| panic!("KQ {kq}: {}", e.emit_to_string(&src)));
                }
            }
        }
    }

    /// naga lays each uniform block out exactly as its Rust twin.
    #[test]
    fn uniform_blocks_have_their_rust_size() {
        use std::mem::size_of;
        let blocks: [(Shader, &str, usize); 10] = [
            (Shader::Step, "Step", size_of::<StepParams>()),
            (Shader::Step, "Layer", size_of::<LayerParams>()),
            (Shader::InputProj, "ProjParams", size_of::<ProjParams>()),
            (Shader::InputProj, "Chunk", size_of::<ChunkParams>()),
            (Shader::Head, "HeadParams", size_of::<HeadParams>()),
            (Shader::Merge, "MergeParams", size_of::<MergeParams>()),
            (Shader::GruBackward, "Step", size_of::<StepParams>()),
            (
                Shader::GruBackward,
                "TrainLayer",
                size_of::<TrainLayerParams>(),
            ),
            (Shader::TrainGemm, "Gemm", size_of::<GemmParams>()),
            (Shader::TrainStep, "Opt", size_of::<OptParams>()),
        ];
        for (shader, name, size) in blocks {
            let (module, _) = parse(shader);
            let ty = module
                .types
                .iter()
                .find(|(_, t)| t.name.as_deref() == Some(name))
                .unwrap_or_else(|| panic!("{}: no struct {name}", shader.name()));
            let naga::TypeInner::Struct { span, .. } = ty.1.inner else {
                panic!("{name} is not a struct");
            };
            assert_eq!(span as usize, size, "{}: {name}", shader.name());
            assert_eq!(
                size % 16,
                0,
                "{name}: uniform blocks are padded to 16 bytes"
            );
        }
    }

    /// The backward is composed with the prelude, and the head and the training step with the
    /// reductions: `tanh_` and `reduce_max` are each defined once in every module using them.
    #[test]
    fn shared_wgsl_is_composed_not_copied() {
        assert!(Shader::GruBackward.source().contains(PRELUDE));
        for s in [Shader::Head, Shader::TrainStep] {
            assert!(s.source().contains(REDUCE), "{}", s.name());
            assert_eq!(
                s.source().matches("fn reduce_max(").count(),
                1,
                "{}",
                s.name()
            );
        }
        assert_eq!(Shader::GruBackward.source().matches("fn tanh_(").count(), 1);
    }

    /// The workgroup memory Rust checks against the device's limit (register kernels) or probes
    /// occupancy with (grid) is what those kernels declare.
    #[test]
    fn kernels_declare_the_workgroup_bytes_rust_uses() {
        for (shader, entry, bytes) in [
            (Shader::SequenceRegs, "sequence_regs", REGS_WORKGROUP_BYTES),
            (Shader::Grid, "grid", GRID_WORKGROUP_BYTES),
            (
                Shader::SequenceRegsSubgroup,
                "sequence_regs_sg",
                REGS_SG_WORKGROUP_BYTES,
            ),
        ] {
            let (module, info) = parse(shader);
            let mut layouter = naga::proc::Layouter::default();
            layouter.update(module.to_ctx()).unwrap();
            let (index, _) = module
                .entry_points
                .iter()
                .enumerate()
                .find(|(_, e)| e.name == entry)
                .unwrap();
            let used = info.get_entry_point(index);
            let declared: u32 = module
                .global_variables
                .iter()
                .filter(|(h, g)| g.space == naga::AddressSpace::WorkGroup && !used[*h].is_empty())
                .map(|(_, g)| layouter[g.ty].size)
                .sum();
            assert_eq!(declared, bytes, "{entry}");
        }
    }
}
