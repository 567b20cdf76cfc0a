//! What the host and the kernels share, written once: the sizes both use (the header of every
//! module declares them as WGSL `const`s, [`SIZES`]) and the uniform blocks, each a `#[repr(C)]`
//! Rust struct and its WGSL declaration from the same field list (`uniform_block!`).

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
pub(crate) const SIZES: &[(&str, u32)] = &[
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
