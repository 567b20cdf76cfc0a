// The GRU recurrence with subgroup reductions, for adapters with `Features::SUBGROUP`
// (`gru.wgsl` holds the portable kernels; both share the bind group layout and the prelude below).
// Canonical gate order r, z, n; h' = z⊙h + (1−z)⊙n.
//
// Entry points:
// - `step_fused_sg`, `step_gates_sg`, `step_candidate_sg`: as `gru.wgsl`'s step kernels, but
//   each subgroup owns one hidden unit and splits K across its lanes; `subgroupAdd` gives every
//   lane the full sums, so a step needs no workgroup memory and no barrier.
// - `sequence_regs_sg`: as `gru.wgsl::sequence_regs` (all T steps, W_hh in registers), with the
//   K-slices of a unit reduced by `subgroupShuffleXor` instead of workgroup memory: one barrier
//   per step (reset-after) instead of two.
//
// Invocations take their roles from (subgroup_id, subgroup_invocation_id), never from
// local_invocation_index, so nothing assumes how an implementation lays subgroups out.
// Subgroup operations are only reached in subgroup-uniform control flow.
//
// No `enable subgroups;` directive: naga 30 (wgpu 30's compiler) rejects it as not yet
// implemented and instead gates the subgroup builtins on the device's SUBGROUP capability.

// (The prelude, shaders/prelude.wgsl, comes first: constants, bindings, the cell's gate math.)

// ---------------------------------------------------------------------------------------------
// Per-step kernels. A workgroup of 256 invocations owns SG_UNITS hidden units × BT batch rows of
// one direction; subgroup g takes units g, g + num_subgroups, … (SG_UNITS is sized for the
// smallest subgroup, so with larger ones each subgroup takes several units). Lanes stride K in
// vec4s, so each W_hh row is read once per workgroup for all BT rows.

override SG_UNITS: u32 = 8u; // hidden units per workgroup: 256 / the adapter's smallest subgroup

// Sums, over K, `ngates` rows of W_hh (from gate `g0`) of unit j against h_{t−1} (or r⊙h when
// `use_rh`) for the BT rows from b0. Every lane of the subgroup gets every sum.
fn matvec_sg(s: u32, lane: u32, sg: u32, j: u32, d: u32, b0: u32, g0: u32, ngates: u32, use_rh: bool) -> array<vec3<f32>, 4> {
    var acc = matvec_lane(s, lane, sg, j, d, b0, g0, ngates, use_rh);
    // Reconverged: every lane of the subgroup reaches these.
    for (var bb = 0u; bb < 4u; bb++) { acc[bb] = subgroupAdd(acc[bb]); }
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
    let b0 = ids.wid.y * BT;
    let rows = step_rows(kind);
    for (var unit = ids.sgid; unit < SG_UNITS; unit += ids.nsg) {
        let j = ids.wid.x * SG_UNITS + unit;
        let pre = matvec_sg(s, ids.lane, ids.sg, j, d, b0, rows.x, rows.y, rows.z == 1u);
        // Lane bb finishes batch row b0 + bb (subgroups have at least 4 lanes).
        let b = b0 + ids.lane;
        if (j < H && ids.lane < BT && b < ly.batch) {
            finish_step(kind, s, d, b, j, pre[ids.lane]);
        }
    }
}

@compute @workgroup_size(256, 1, 1)
fn step_fused_sg(ids: SgIds) {
    step_sg(0u, ids);
}

@compute @workgroup_size(256, 1, 1)
fn step_gates_sg(ids: SgIds) {
    step_sg(1u, ids);
}

@compute @workgroup_size(256, 1, 1)
fn step_candidate_sg(ids: SgIds) {
    step_sg(2u, ids);
}

// ---------------------------------------------------------------------------------------------
// Register-resident sequence kernel: one workgroup per (batch row, direction) runs all T steps
// with W_hh in registers, as `gru.wgsl::sequence_regs`. Role t = subgroup_id · subgroup_size +
// subgroup_invocation_id owns unit j = t / KS and K-slice t % KS. KS is a power of two no larger
// than the adapter's smallest subgroup (the host checks), so a unit's slices are KS neighbouring
// lanes of one subgroup and `subgroupShuffleXor` over the low bits sums them.

override KQ: u32 = 8u;    // vec4s of each gate's row slice per invocation (2, 4 or 8)
override KS: u32 = 1u;    // K-slices per hidden unit: a power of two
override WG: u32 = 32u;   // invocations: H·KS rounded up to 32

const SGR_MAX4: u32 = 40u;   // vec4s of one h row in workgroup memory (KS·KQ ≤ 40)
var<workgroup> sgr_h: array<vec4<f32>, 80>;   // [2][KS·KQ] h ping-pong, zero past H
var<workgroup> sgr_rh: array<vec4<f32>, 40>;  // [KS·KQ] r⊙h (reset-before), zero past H

fn slice_sum(v: vec3<f32>) -> vec3<f32> {
    var a = v;
    for (var o = 1u; o < KS; o <<= 1u) { a += subgroupShuffleXor(a, o); }
    return a;
}

@compute @workgroup_size(WG, 1, 1)
fn sequence_regs_sg(
    @builtin(subgroup_id) sgid: u32,
    @builtin(subgroup_invocation_id) lane: u32,
    @builtin(subgroup_size) sg: u32,
    @builtin(local_invocation_index) lid: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
) {
    let d = wid.z;
    let b = wid.x;
    let t = sgid * sg + lane;
    let j = t / KS;
    let ks = t % KS;
    let live = j < H;
    let lead = live && ks == 0u;
    let row4 = KS * KQ;
    var w: array<vec4<f32>, 24>;   // w[g·8 + q] = U[g·H + j][4·(ks·KQ + q) .. +4]
    for (var g = 0u; g < 3u; g++) {
        for (var q = 0u; q < KQ; q++) {
            let k4 = ks * KQ + q;
            var v = vec4<f32>(0.0);
            if (live && k4 < ly.hp4) { v = u[(d * 3u * H + g * H + j) * ly.hp4 + k4]; }
            w[g * 8u + q] = v;
        }
    }
    for (var i = lid; i < 2u * SGR_MAX4; i += WG) { sgr_h[i] = vec4<f32>(0.0); }
    for (var i = lid; i < SGR_MAX4; i += WG) { sgr_rh[i] = vec4<f32>(0.0); }
    workgroupBarrier();
    let first = st.s;
    let end = seq_end(first);
    if (lead) {
        sgr_h[j / 4u][j % 4u] = seq_h_start(first, d, b, j);
    }
    let len = lens[b];
    var bh = vec3<f32>(0.0);
    if (live) { bh = vec3<f32>(bhh(d, j), bhh(d, H + j), bhh(d, 2u * H + j)); }
    workgroupBarrier();
    for (var s = first; s < end; s++) {
        let cur = ((s - first) % 2u) * row4;
        let nxt = row4 - cur;
        let pos = position_len(s, d, b, len);
        var xv = vec3<f32>(0.0);
        if (lead && pos.valid) {
            xv = vec3<f32>(xp_at(pos, d, b, j), xp_at(pos, d, b, H + j), xp_at(pos, d, b, 2u * H + j));
        }
        if (RESET_AFTER) {
            var acc = vec3<f32>(0.0);
            for (var q = 0u; q < KQ; q++) {
                let hv = sgr_h[cur + ks * KQ + q];
                acc += vec3<f32>(dot(w[q], hv), dot(w[8u + q], hv), dot(w[16u + q], hv));
            }
            let a = slice_sum(acc);
            if (lead) {
                let hold = sgr_h[cur + j / 4u][j % 4u];
                var hnew = hold;
                if (pos.valid) {
                    hnew = cell_after(d, xv, a, bh, hold);
                }
                sgr_h[nxt + j / 4u][j % 4u] = hnew;
                seq_emit(s, pos, d, b, j, hnew);
            }
            workgroupBarrier();
        } else {
            var acc = vec3<f32>(0.0);
            for (var q = 0u; q < KQ; q++) {
                let hv = sgr_h[cur + ks * KQ + q];
                acc += vec3<f32>(dot(w[q], hv), dot(w[8u + q], hv), 0.0);
            }
            let a = slice_sum(acc);
            var z = 1.0;
            if (lead) {
                let hold = sgr_h[cur + j / 4u][j % 4u];
                var r = 0.0;
                if (pos.valid) {
                    let rz = gates_before(d, xv.xy, a.xy, bh.xy);
                    r = rz.x;
                    z = rz.y;
                }
                sgr_rh[j / 4u][j % 4u] = r * hold;
            }
            workgroupBarrier();
            var accn = 0.0;
            for (var q = 0u; q < KQ; q++) {
                accn += dot(w[16u + q], sgr_rh[ks * KQ + q]);
            }
            let n_pre = slice_sum(vec3<f32>(accn, 0.0, 0.0)).x;
            if (lead) {
                let hold = sgr_h[cur + j / 4u][j % 4u];
                var hnew = hold;
                if (pos.valid) {
                    hnew = cell_before(d, xv.z, n_pre, bh.z, z, hold);
                }
                sgr_h[nxt + j / 4u][j % 4u] = hnew;
                seq_emit(s, pos, d, b, j, hnew);
            }
            workgroupBarrier();
        }
    }
    if (end < ly.steps && lead) {
        seq_h_save(d, b, j, sgr_h[((end - first) % 2u) * row4 + j / 4u][j % 4u]);
    }
}
