// Per-step recurrence kernels with subgroup reductions, for adapters with `Features::SUBGROUP`
// (`step.wgsl` holds the portable ones; both share the bind group layout and the prelude).
// Canonical gate order r, z, n; h' = z⊙h + (1−z)⊙n.
//
// - `step_fused_sg`, `step_gates_sg`, `step_candidate_sg`: as `step.wgsl`'s kernels, but each
//   subgroup owns one hidden unit and splits K across its lanes; `subgroupAdd` gives every lane
//   the full sums, so a step needs no workgroup memory and no barrier.
//
// Invocations take their roles from (subgroup_id, subgroup_invocation_id), never from
// local_invocation_index, so nothing assumes how an implementation lays subgroups out.
// Subgroup operations are only reached in subgroup-uniform control flow.
//
// No `enable subgroups;` directive: naga 30 (wgpu 30's compiler) rejects it as not yet
// implemented and instead gates the subgroup builtins on the device's SUBGROUP capability.
//
// (Composed by src/gpu/wgsl.rs after the generated header and shaders/prelude.wgsl: sizes,
// uniform blocks, bindings, the cell's gate math.)

// Per-step kernels. A workgroup of STEP_WG invocations owns SG_UNITS hidden units × STEP_ROWS batch rows of
// one direction; subgroup g takes units g, g + num_subgroups, … (SG_UNITS is sized for the
// smallest subgroup, so with larger ones each subgroup takes several units). Lanes stride K in
// vec4s, so each W_hh row is read once per workgroup for all STEP_ROWS rows.

override SG_UNITS: u32 = 8u; // hidden units per workgroup: 256 / the adapter's smallest subgroup

// Sums, over K, `ngates` rows of W_hh (from gate `g0`) of unit j against h_{t−1} (or r⊙h when
// `use_rh`) for the STEP_ROWS rows from b0. Every lane of the subgroup gets every sum.
fn matvec_sg(s: u32, lane: u32, sg: u32, j: u32, d: u32, b0: u32, g0: u32, ngates: u32, use_rh: bool) -> array<vec3<f32>, STEP_ROWS> {
    var acc = matvec_lane(s, lane, sg, j, d, b0, g0, ngates, use_rh);
    // Reconverged: every lane of the subgroup reaches these.
    for (var bb = 0u; bb < STEP_ROWS; bb++) { acc[bb] = subgroupAdd(acc[bb]); }
    return acc;
}

// The subgroup builtins of the step kernels.
struct SgIds {
    @builtin(subgroup_id) sgid: u32,
    @builtin(num_subgroups) nsg: u32,
    @builtin(subgroup_invocation_id) lane: u32,
    @builtin(subgroup_size) sg: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
}

fn step_sg(kind: u32, ids: SgIds) {
    let s = st.s;
    let d = ids.wid.z;
    let b0 = ids.wid.y * STEP_ROWS;
    let rows = step_rows(kind);
    for (var unit = ids.sgid; unit < SG_UNITS; unit += ids.nsg) {
        let j = ids.wid.x * SG_UNITS + unit;
        let pre = matvec_sg(s, ids.lane, ids.sg, j, d, b0, rows.x, rows.y, rows.z == 1u);
        // Lane bb finishes batch row b0 + bb (subgroups have at least 4 lanes).
        let b = b0 + ids.lane;
        if (j < H && ids.lane < STEP_ROWS && b < ly.batch) {
            finish_step(kind, s, d, b, j, pre[ids.lane]);
        }
    }
}

@compute @workgroup_size(STEP_WG, 1, 1)
fn step_fused_sg(ids: SgIds) {
    step_sg(0u, ids);
}

@compute @workgroup_size(STEP_WG, 1, 1)
fn step_gates_sg(ids: SgIds) {
    step_sg(1u, ids);
}

@compute @workgroup_size(STEP_WG, 1, 1)
fn step_candidate_sg(ids: SgIds) {
    step_sg(2u, ids);
}

