// ---------------------------------------------------------------------------------------------
// Register-resident sequence kernels (small H), shared by `sequence_regs.wgsl` and
// `sequence_regs_subgroup.wgsl`: one workgroup per (batch row, direction) runs all T
// steps, and W_hh never leaves registers. Role t owns hidden unit j = t / KS and the K-slice
// ks = t % KS of 4·KQ columns, holding its 3 gates × 4·KQ weights for the whole sequence;
// KS = ceil(H / 4KQ), so WG = H·KS invocations (H ≤ REGS_MAX_H, WG ≤ REGS_MAX_WG). Per step:
// vec4 FMAs against h from workgroup memory, the sum over the unit's KS slices, and the gate
// epilogue on slice 0.
//
// The weights are `let`s, one vec4 per (gate, q), and the loops over q are unrolled: no private
// array is indexed, so nothing pushes W_hh out of registers. src/gpu/wgsl.rs writes those lines
// for the module's KQ where the `//@` markers stand (`wgpu-gru shader` prints the result).
//
// Each module defines `slice_sum(t, v)`: role t's partial sums summed over its unit's slices,
// valid on slice 0 and called by every invocation in uniform control flow (`sequence_regs.wgsl`
// through workgroup memory and a barrier, `sequence_regs_subgroup.wgsl` through subgroup
// shuffles).

//@KQ: const KQ: u32 = <vec4s of each gate's row slice per invocation, 1 to 8>;
override KS: u32 = 1u;    // K-slices of 4·KQ columns per hidden unit
override WG: u32 = 32u;   // invocations: H·KS rounded up to 32

const REG_MAX4: u32 = REGS_MAX_H / 4u;   // vec4s of one h row in workgroup memory (KS·KQ ≤ it)
var<workgroup> hr: array<vec4<f32>, 2u * REG_MAX4>;   // [2][KS·KQ] h ping-pong, zero past H
var<workgroup> rr: array<vec4<f32>, REG_MAX4>;        // [KS·KQ] r⊙h (reset-before), zero past H

// h of unit j in half `base` of `hr`.
fn hr_get(base: u32, j: u32) -> f32 {
    return hr[base + j / 4u][j % 4u];
}

// Column block k4 of gate g's row of unit j (zero past H).
fn regs_w(live: bool, d: u32, g: u32, j: u32, k4: u32) -> vec4<f32> {
    if (live && k4 < ly.hp4) { return u4((d * 3u * H + g * H + j) * ly.hp4 + k4); }
    return vec4<f32>(0.0);
}

// One column block's products for gates r, z and (reset-after) n against h block `hv`.
fn regs_mac3(wr: vec4<f32>, wz: vec4<f32>, wn: vec4<f32>, hv: vec4<f32>) -> vec3<f32> {
    return vec3<f32>(dot(wr, hv), dot(wz, hv), select(0.0, dot(wn, hv), RESET_AFTER));
}

// Role t of the workgroup of (direction d, batch row b) runs this dispatch's steps.
fn regs_run(t: u32, lid: u32, d: u32, b: u32) {
    let j = t / KS;
    let ks = t % KS;
    let live = j < H;
    let lead = live && ks == 0u;
    let row4 = KS * KQ;
    // W_hh slice into registers: w_g_q = U[g·H + j][4·(ks·KQ + q) .. +4].
    //@weights: let w_<g>_<q> = regs_w(live, d, <g>u, j, ks * KQ + <q>u);
    for (var i = lid; i < 2u * REG_MAX4; i += WG) { hr[i] = vec4<f32>(0.0); }
    for (var i = lid; i < REG_MAX4; i += WG) { rr[i] = vec4<f32>(0.0); }
    workgroupBarrier();
    let first = st.s;
    let end = seq_end(first);
    if (lead) {
        hr[j / 4u][j % 4u] = seq_h_start(first, d, b, j);
    }
    // Loop invariants in registers: the row's length and this unit's recurrent biases.
    let len = lens[b];
    var bh = vec3<f32>(0.0);
    if (live) { bh = bhh3(d, j); }
    workgroupBarrier();
    for (var s = first; s < end; s++) {
        let cur = ((s - first) % 2u) * row4;
        let nxt = row4 - cur;
        let pos = position_len(s, d, b, len);
        // Issue this step's input-projection loads before the FMAs, so their latency overlaps.
        var xv = vec3<f32>(0.0);
        if (lead && pos.valid) { xv = xp3(pos, d, b, j); }
        var acc = vec3<f32>(0.0);
        //@mac3: acc += regs_mac3(w_0_<q>, w_1_<q>, w_2_<q>, hr[cur + ks * KQ + <q>u]);
        let a = slice_sum(t, acc);
        if (RESET_AFTER) {
            if (lead) {
                let hnew = after_or_hold(pos.valid, d, xv, a, bh, hr_get(cur, j));
                hr[nxt + j / 4u][j % 4u] = hnew;
                seq_emit(s, pos, d, b, j, hnew);
            }
        } else {
            var z = 1.0;
            if (lead) {
                var r = 0.0;
                if (pos.valid) {
                    let rz = gates_before(d, xv.xy, a.xy, bh.xy);
                    r = rz.x;
                    z = rz.y;
                }
                rr[j / 4u][j % 4u] = r * hr_get(cur, j);
            }
            workgroupBarrier();
            var accn = 0.0;
            //@macn: accn += dot(w_2_<q>, rr[ks * KQ + <q>u]);
            let an = slice_sum(t, vec3<f32>(accn, 0.0, 0.0)).x;
            if (lead) {
                let hnew = before_or_hold(pos.valid, d, xv.z, an, bh.z, z, hr_get(cur, j));
                hr[nxt + j / 4u][j % 4u] = hnew;
                seq_emit(s, pos, d, b, j, hnew);
            }
        }
        workgroupBarrier();
    }
    if (end < ly.steps && lead) {
        seq_h_save(d, b, j, hr_get(((end - first) % 2u) * row4, j));
    }
}
