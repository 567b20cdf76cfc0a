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

// ==== prelude: shared verbatim with gru_subgroup.wgsl (tests/shaders.rs checks) ====
// Specialisation.
override H: u32 = 1u;              // hidden units
override BT: u32 = 4u;             // batch rows per workgroup in the step kernels (1..=4)
override BS: u32 = 1u;             // batch rows per workgroup in `sequence` (BS·H ≤ 1024)
override RPI: u32 = 4u;            // batch rows per invocation in the tiled kernels (1, 2 or 4)
override RESET_AFTER: bool = true; // variant, for `sequence`
override F_KIND: u32 = 0u;         // gate activation (codes as in config.rs)
override F_ALPHA: f32 = 0.0;
override F_BETA: f32 = 0.0;
override G_KIND: u32 = 1u;         // candidate activation
override G_ALPHA: f32 = 0.0;
override G_BETA: f32 = 0.0;
// The reverse direction's activations (direction slot 1); equal to the above unless an ONNX
// model gives each direction its own pair.
override F_KIND_R: u32 = 0u;
override F_ALPHA_R: f32 = 0.0;
override F_BETA_R: f32 = 0.0;
override G_KIND_R: u32 = 1u;
override G_ALPHA_R: f32 = 0.0;
override G_BETA_R: f32 = 0.0;
override CLIP: f32 = 0.0;          // 0: no clip
override SEQ_STEPS: u32 = 0u;      // steps per dispatch of the sequence kernels (0: all T)

struct Step {
    s: u32,
}

struct Layer {
    steps: u32,     // T
    batch: u32,     // B
    dirs: u32,      // D
    hp4: u32,       // padded H / 4: row length of W_hh and h in vec4s
    y_st: u32,      // stride of t in y (floats)
    y_sb: u32,      // stride of b in y
    y_sd: u32,      // stride of direction in y (H)
    rev_mask: u32,  // bit d set: direction d runs backwards
    go_back: u32,   // 1: Keras go_backwards
    bhh_off: u32,   // offset (floats) of b_hh [D, 3H] in `u`
    ut_off: u32,    // offset (vec4s) of the transposed W_hh [D, H(k), H(j)] × (r, z, n, 0) in `u`
    h0_off: u32,    // offset (floats) of this layer's h0 [D, B, H] in `states`
    hn_off: u32,    // offset (floats) of this layer's h_n [D, B, H] in `states`
    _p0: u32,
    _p1: u32,
    _p2: u32,
}

@group(0) @binding(0) var<uniform> st: Step;                        // dynamic offset per step
@group(0) @binding(1) var<uniform> ly: Layer;
@group(0) @binding(2) var<storage, read> xp: array<f32>;             // [T, B, D, 3H]
@group(0) @binding(3) var<storage, read> u: array<vec4<f32>>;        // [D, 3H, HP] ++ b_hh ++ W_hhᵀ
@group(0) @binding(4) var<storage, read> lens: array<u32>;           // [B] ++ [1] ++ [B, T] mask
@group(0) @binding(5) var<storage, read_write> hbuf: array<vec4<f32>>; // [2, D, B, HP] ping-pong
@group(0) @binding(6) var<storage, read_write> y: array<f32>;        // [T, B, D·H] via strides
@group(0) @binding(7) var<storage, read_write> states: array<f32>;   // h0 [L, D, B, H] ++ h_n [L, D, B, H]
@group(0) @binding(8) var<storage, read_write> zr: array<vec4<f32>>; // [2, D, B, HP]: z, then r⊙h

fn act(kind: u32, v: f32, alpha: f32, beta: f32) -> f32 {
    var x = v;
    if (CLIP > 0.0) { x = clamp(x, -CLIP, CLIP); }
    switch kind {
        case 0u: { return 1.0 / (1.0 + exp(-x)); }
        case 1u: { return tanh_(x); }
        case 2u: { return max(x, 0.0); }
        case 3u: { return clamp(alpha * x + beta, 0.0, 1.0); }
        case 4u: { return select(alpha * x, x, x >= 0.0); }
        case 5u: { return select(0.0, x, x > alpha); }
        case 6u: { return alpha * tanh_(beta * x); }
        case 7u: { return alpha * x + beta; }
        case 8u: { return select(alpha * (exp(x) - 1.0), x, x >= 0.0); }
        case 9u: { return x / (1.0 + abs(x)); }
        default: { return max(x, 0.0) + log(1.0 + exp(-abs(x))); }
    }
}

// Overflow-free tanh: some backends compute tanh as a ratio of exponentials that is NaN for large |x|.
fn tanh_(x: f32) -> f32 {
    let e = exp(-2.0 * abs(x));
    return sign(x) * (1.0 - e) / (1.0 + e);
}

// Activations of direction d. Where both directions share a pair, each select folds to a
// constant and the switch in `act` folds away; otherwise it picks per invocation.
fn f_act(d: u32, x: f32) -> f32 {
    let r = d == 1u;
    return act(select(F_KIND, F_KIND_R, r), x, select(F_ALPHA, F_ALPHA_R, r), select(F_BETA, F_BETA_R, r));
}
fn g_act(d: u32, x: f32) -> f32 {
    let r = d == 1u;
    return act(select(G_KIND, G_KIND_R, r), x, select(G_ALPHA, G_ALPHA_R, r), select(G_BETA, G_BETA_R, r));
}

fn hp() -> u32 { return ly.hp4 * 4u; }

// Previous state of (d, b, k): h0 at step 0, else the ping-pong half written by step s−1.
fn h_prev(s: u32, d: u32, b: u32, k: u32) -> f32 {
    if (s == 0u) {
        return states[ly.h0_off + (d * ly.batch + b) * H + k];
    }
    let i = ((s + 1u) % 2u) * ly.dirs * ly.batch * hp() + (d * ly.batch + b) * hp() + k;
    return hbuf[i / 4u][i % 4u];
}

fn h_prev4(s: u32, d: u32, b: u32, k4: u32) -> vec4<f32> {
    if (s == 0u) {
        let k = k4 * 4u;
        var v = vec4<f32>(0.0);
        for (var e = 0u; e < 4u; e++) {
            if (k + e < H) { v[e] = states[ly.h0_off + (d * ly.batch + b) * H + k + e]; }
        }
        return v;
    }
    return hbuf[((s + 1u) % 2u) * ly.dirs * ly.batch * ly.hp4 + (d * ly.batch + b) * ly.hp4 + k4];
}

fn set_h_next(s: u32, d: u32, b: u32, j: u32, v: f32) {
    let i = (s % 2u) * ly.dirs * ly.batch * hp() + (d * ly.batch + b) * hp() + j;
    hbuf[i / 4u][i % 4u] = v;
}

struct Pos {
    valid: bool,  // the step runs; otherwise h carries over
    t_in: u32,    // time index of the input read
    t_out: u32,   // time index of the output written
    out_h: bool,  // the output is h (a valid step, or a masked one repeating it); else 0
}

fn position(s: u32, d: u32, b: u32) -> Pos {
    return position_len(s, d, b, lens[b]);
}

// `lens` is [B] lengths ++ [1] mask mode ++ [B, T] mask flags. Mode 0: no mask. Mode 1: a Keras
// mask whose masked steps repeat the previous output; mode 2: they output 0. Flags: bit 0 the step
// is valid, bit 1 (2) a valid step comes before it in forward (backward) order. With a mask every
// length is T.
fn position_len(s: u32, d: u32, b: u32, len: u32) -> Pos {
    var pos: Pos;
    pos.valid = s < len;
    if (!pos.valid) {
        pos.t_in = s;
        pos.t_out = s;
    } else if (((ly.rev_mask >> d) & 1u) == 1u) {
        pos.t_in = len - 1u - s;
        pos.t_out = pos.t_in;
    } else if (ly.go_back == 1u) {
        pos.t_in = ly.steps - 1u - s;
        pos.t_out = s;
    } else {
        pos.t_in = s;
        pos.t_out = s;
    }
    pos.out_h = pos.valid;
    let mode = lens[ly.batch];
    if (mode != 0u) {
        let f = lens[ly.batch + 1u + b * ly.steps + pos.t_in];
        let backward = ((ly.rev_mask >> d) & 1u) == 1u || ly.go_back == 1u;
        pos.valid = (f & 1u) == 1u;
        pos.out_h = pos.valid || (mode == 1u && ((f >> select(1u, 2u, backward)) & 1u) == 1u);
    }
    return pos;
}

fn xp_at(pos: Pos, d: u32, b: u32, row: u32) -> f32 {
    return xp[((pos.t_in * ly.batch + b) * ly.dirs + d) * 3u * H + row];
}

fn bhh(d: u32, row: u32) -> f32 {
    let i = ly.bhh_off + d * 3u * H + row;
    return u[i / 4u][i % 4u];
}

fn y_index(t: u32, d: u32, b: u32, j: u32) -> u32 {
    return t * ly.y_st + b * ly.y_sb + d * ly.y_sd + j;
}

// Writes h_t of (d, b, j) everywhere it goes: the next ping-pong half, y, and h_n after the last step.
fn emit(s: u32, pos: Pos, d: u32, b: u32, j: u32, hnew: f32) {
    set_h_next(s, d, b, j, hnew);
    y[y_index(pos.t_out, d, b, j)] = select(0.0, hnew, pos.out_h);
    if (s + 1u == ly.steps) {
        states[ly.hn_off + (d * ly.batch + b) * H + j] = hnew;
    }
}

// A sequence kernel's dispatch runs steps [first, seq_end(first)), `first` from the dynamic step
// offset. The host splits T where a driver caps the loop iterations of one invocation (Mesa's
// llvmpipe ends every loop after 65,535 iterations shared by the whole shader).
fn seq_end(first: u32) -> u32 {
    if (SEQ_STEPS == 0u) { return ly.steps; }
    return min(ly.steps, first + SEQ_STEPS);
}

// h of (d, b, j) where a sequence dispatch starts: h0, or what the previous dispatch left in
// half 0 of `hbuf`.
fn seq_h_start(first: u32, d: u32, b: u32, j: u32) -> f32 {
    if (first == 0u) {
        return states[ly.h0_off + (d * ly.batch + b) * H + j];
    }
    let i = (d * ly.batch + b) * hp() + j;
    return hbuf[i / 4u][i % 4u];
}

// Leaves h of (d, b, j) in half 0 of `hbuf` for the next sequence dispatch.
fn seq_h_save(d: u32, b: u32, j: u32, v: f32) {
    let i = (d * ly.batch + b) * hp() + j;
    hbuf[i / 4u][i % 4u] = v;
}

// Writes h_t of (d, b, j) of a sequence kernel to y, and to h_n after the last step.
fn seq_emit(s: u32, pos: Pos, d: u32, b: u32, j: u32, hnew: f32) {
    y[y_index(pos.t_out, d, b, j)] = select(0.0, hnew, pos.out_h);
    if (s + 1u == ly.steps) {
        states[ly.hn_off + (d * ly.batch + b) * H + j] = hnew;
    }
}
// ==== end of prelude ====

// ---------------------------------------------------------------------------------------------
// Per-step kernels. A workgroup of 256 invocations owns SG_UNITS hidden units × BT batch rows of
// one direction; subgroup g takes units g, g + num_subgroups, … (SG_UNITS is sized for the
// smallest subgroup, so with larger ones each subgroup takes several units). Lanes stride K in
// vec4s, so each W_hh row is read once per workgroup for all BT rows.

override SG_UNITS: u32 = 8u; // hidden units per workgroup: 256 / the adapter's smallest subgroup

// Sums, over K, `ngates` rows of W_hh (from gate `g0`) of unit j against h_{t−1} (or r⊙h when
// `use_rh`) for the BT rows from b0. Every lane of the subgroup gets every sum.
fn matvec_sg(s: u32, lane: u32, sg: u32, j: u32, d: u32, b0: u32, g0: u32, ngates: u32, use_rh: bool) -> array<vec3<f32>, 4> {
    var acc: array<vec3<f32>, 4>;
    for (var i = 0u; i < 4u; i++) { acc[i] = vec3<f32>(0.0); }
    if (j < H) {
        let row = (d * 3u * H + g0 * H + j) * ly.hp4;
        for (var k4 = lane; k4 < ly.hp4; k4 += sg) {
            let w0 = u[row + k4];
            var w1 = vec4<f32>(0.0);
            var w2 = vec4<f32>(0.0);
            if (ngates > 1u) { w1 = u[row + H * ly.hp4 + k4]; }
            if (ngates > 2u) { w2 = u[row + 2u * H * ly.hp4 + k4]; }
            for (var bb = 0u; bb < BT; bb++) {
                let b = b0 + bb;
                if (b >= ly.batch) { break; }
                var hv: vec4<f32>;
                if (use_rh) {
                    hv = zr[(ly.dirs + d) * ly.batch * ly.hp4 + b * ly.hp4 + k4];
                } else {
                    hv = h_prev4(s, d, b, k4);
                }
                acc[bb] += vec3<f32>(dot(w0, hv), dot(w1, hv), dot(w2, hv));
            }
        }
    }
    // Reconverged: every lane of the subgroup reaches these.
    for (var bb = 0u; bb < 4u; bb++) { acc[bb] = subgroupAdd(acc[bb]); }
    return acc;
}

@compute @workgroup_size(256, 1, 1)
fn step_fused_sg(
    @builtin(subgroup_id) sgid: u32,
    @builtin(num_subgroups) nsg: u32,
    @builtin(subgroup_invocation_id) lane: u32,
    @builtin(subgroup_size) sg: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
) {
    let s = st.s;
    let d = wid.z;
    let b0 = wid.y * BT;
    for (var unit = sgid; unit < SG_UNITS; unit += nsg) {
        let j = wid.x * SG_UNITS + unit;
        let pre = matvec_sg(s, lane, sg, j, d, b0, 0u, 3u, false);
        // Lane bb finishes batch row b0 + bb (subgroups have at least 4 lanes).
        let b = b0 + lane;
        if (j < H && lane < BT && b < ly.batch) {
            let a = pre[lane];
            let pos = position(s, d, b);
            let hold = h_prev(s, d, b, j);
            var hnew = hold;
            if (pos.valid) {
                let r = f_act(d, xp_at(pos, d, b, j) + a.x + bhh(d, j));
                let z = f_act(d, xp_at(pos, d, b, H + j) + a.y + bhh(d, H + j));
                let n = g_act(d, xp_at(pos, d, b, 2u * H + j) + r * (a.z + bhh(d, 2u * H + j)));
                hnew = z * hold + (1.0 - z) * n;
            }
            emit(s, pos, d, b, j, hnew);
        }
    }
}

@compute @workgroup_size(256, 1, 1)
fn step_gates_sg(
    @builtin(subgroup_id) sgid: u32,
    @builtin(num_subgroups) nsg: u32,
    @builtin(subgroup_invocation_id) lane: u32,
    @builtin(subgroup_size) sg: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
) {
    let s = st.s;
    let d = wid.z;
    let b0 = wid.y * BT;
    for (var unit = sgid; unit < SG_UNITS; unit += nsg) {
        let j = wid.x * SG_UNITS + unit;
        let pre = matvec_sg(s, lane, sg, j, d, b0, 0u, 2u, false);
        let b = b0 + lane;
        if (j < H && lane < BT && b < ly.batch) {
            let pos = position(s, d, b);
            if (pos.valid) {
                let a = pre[lane];
                let r = f_act(d, xp_at(pos, d, b, j) + a.x + bhh(d, j));
                let z = f_act(d, xp_at(pos, d, b, H + j) + a.y + bhh(d, H + j));
                let i = (d * ly.batch + b) * hp() + j;
                zr[i / 4u][i % 4u] = z;
                let i2 = ly.dirs * ly.batch * hp() + i;
                zr[i2 / 4u][i2 % 4u] = r * h_prev(s, d, b, j);
            }
        }
    }
}

@compute @workgroup_size(256, 1, 1)
fn step_candidate_sg(
    @builtin(subgroup_id) sgid: u32,
    @builtin(num_subgroups) nsg: u32,
    @builtin(subgroup_invocation_id) lane: u32,
    @builtin(subgroup_size) sg: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
) {
    let s = st.s;
    let d = wid.z;
    let b0 = wid.y * BT;
    for (var unit = sgid; unit < SG_UNITS; unit += nsg) {
        let j = wid.x * SG_UNITS + unit;
        let pre = matvec_sg(s, lane, sg, j, d, b0, 2u, 1u, true);
        let b = b0 + lane;
        if (j < H && lane < BT && b < ly.batch) {
            let pos = position(s, d, b);
            let hold = h_prev(s, d, b, j);
            var hnew = hold;
            if (pos.valid) {
                let i = (d * ly.batch + b) * hp() + j;
                let z = zr[i / 4u][i % 4u];
                let n = g_act(d, xp_at(pos, d, b, 2u * H + j) + pre[lane].x + bhh(d, 2u * H + j));
                hnew = z * hold + (1.0 - z) * n;
            }
            emit(s, pos, d, b, j, hnew);
        }
    }
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
                    let r = f_act(d, xv.x + a.x + bh.x);
                    let z = f_act(d, xv.y + a.y + bh.y);
                    let n = g_act(d, xv.z + r * (a.z + bh.z));
                    hnew = z * hold + (1.0 - z) * n;
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
                    r = f_act(d, xv.x + a.x + bh.x);
                    z = f_act(d, xv.y + a.y + bh.y);
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
                    let n = g_act(d, xv.z + n_pre + bh.z);
                    hnew = z * hold + (1.0 - z) * n;
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
