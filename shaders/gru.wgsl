// The GRU recurrence. Canonical gate order r, z, n; h' = z⊙h + (1−z)⊙n.
//
// Entry points, all over one bind group layout:
// - `step_fused`:     one timestep of reset-after: one pass over W_hh gives r, z, n; then h_t.
// - `step_gates`:     reset-before, half 1: z and r⊙h.
// - `step_candidate`: reset-before, half 2: n from U_n·(r⊙h), then h_t.
// - `sequence`:       all T steps in one dispatch; a workgroup owns a slice of the batch and keeps
//                     h in workgroup memory (small H). Both variants.
// - `sequence_regs`:  all T steps in one dispatch with W_hh in registers (H ≤ 160).
// - `tiled_*`:        per-step kernels tiled as a GEMM over 16–64 batch rows (larger batches).
//
// Per step s, row b of direction d runs at time t = s (forward), len_b−1−s (reverse) or
// T−1−s (go_backwards, output at s). Steps past a row's length carry h and write 0 to y.

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
// Per-step kernels: a workgroup owns 8 hidden units × BT batch rows of one direction. 32 lanes
// split K, so each W_hh row is read once per workgroup (vec4 loads) for all of its batch rows.

const UNITS: u32 = 8u;
const LANES: u32 = 32u;
var<workgroup> red: array<f32, 3072>;  // [UNITS][4 rows][3 gates][LANES]
var<workgroup> pre: array<f32, 96>;    // [UNITS][4 rows][3 gates] reduced pre-activations

// Accumulates `ngates` rows of W_hh (starting at gate `g0`) against h_{t-1} (or r⊙h when `use_rh`),
// reduces over lanes, and leaves the sums in `pre`.
fn matvec(s: u32, lid: u32, wid: vec3<u32>, g0: u32, ngates: u32, use_rh: bool) {
    let unit = lid / LANES;
    let lane = lid % LANES;
    let j = wid.x * UNITS + unit;
    let d = wid.z;
    let b0 = wid.y * BT;
    var acc: array<vec3<f32>, 4>;
    for (var i = 0u; i < 4u; i++) { acc[i] = vec3<f32>(0.0); }
    if (j < H) {
        let row = (d * 3u * H + g0 * H + j) * ly.hp4;
        for (var k4 = lane; k4 < ly.hp4; k4 += LANES) {
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
    for (var bb = 0u; bb < BT; bb++) {
        for (var g = 0u; g < 3u; g++) {
            red[((unit * 4u + bb) * 3u + g) * LANES + lane] = acc[bb][g];
        }
    }
    workgroupBarrier();
    if (lid < UNITS * 4u * 3u) {
        var sum = 0.0;
        for (var l = 0u; l < LANES; l++) { sum += red[lid * LANES + l]; }
        pre[lid] = sum;
    }
    workgroupBarrier();
}

@compute @workgroup_size(256, 1, 1)
fn step_fused(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
    let s = st.s;
    matvec(s, lid, wid, 0u, 3u, false);
    if (lid >= UNITS * BT) { return; }
    let unit = lid / BT;
    let bb = lid % BT;
    let j = wid.x * UNITS + unit;
    let b = wid.y * BT + bb;
    let d = wid.z;
    if (j >= H || b >= ly.batch) { return; }
    let pos = position(s, d, b);
    let hold = h_prev(s, d, b, j);
    var hnew = hold;
    if (pos.valid) {
        let pi = (unit * 4u + bb) * 3u;
        let r = f_act(d, xp_at(pos, d, b, j) + pre[pi] + bhh(d, j));
        let z = f_act(d, xp_at(pos, d, b, H + j) + pre[pi + 1u] + bhh(d, H + j));
        let n = g_act(d, xp_at(pos, d, b, 2u * H + j) + r * (pre[pi + 2u] + bhh(d, 2u * H + j)));
        hnew = z * hold + (1.0 - z) * n;
    }
    emit(s, pos, d, b, j, hnew);
}

@compute @workgroup_size(256, 1, 1)
fn step_gates(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
    let s = st.s;
    matvec(s, lid, wid, 0u, 2u, false);
    if (lid >= UNITS * BT) { return; }
    let unit = lid / BT;
    let bb = lid % BT;
    let j = wid.x * UNITS + unit;
    let b = wid.y * BT + bb;
    let d = wid.z;
    if (j >= H || b >= ly.batch) { return; }
    let pos = position(s, d, b);
    if (!pos.valid) { return; }
    let pi = (unit * 4u + bb) * 3u;
    let r = f_act(d, xp_at(pos, d, b, j) + pre[pi] + bhh(d, j));
    let z = f_act(d, xp_at(pos, d, b, H + j) + pre[pi + 1u] + bhh(d, H + j));
    let i = (d * ly.batch + b) * hp() + j;
    zr[i / 4u][i % 4u] = z;
    let i2 = ly.dirs * ly.batch * hp() + i;
    zr[i2 / 4u][i2 % 4u] = r * h_prev(s, d, b, j);
}

@compute @workgroup_size(256, 1, 1)
fn step_candidate(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
    let s = st.s;
    matvec(s, lid, wid, 2u, 1u, true);
    if (lid >= UNITS * BT) { return; }
    let unit = lid / BT;
    let bb = lid % BT;
    let j = wid.x * UNITS + unit;
    let b = wid.y * BT + bb;
    let d = wid.z;
    if (j >= H || b >= ly.batch) { return; }
    let pos = position(s, d, b);
    let hold = h_prev(s, d, b, j);
    var hnew = hold;
    if (pos.valid) {
        let i = (d * ly.batch + b) * hp() + j;
        let z = zr[i / 4u][i % 4u];
        let n = g_act(d, xp_at(pos, d, b, 2u * H + j) + pre[(unit * 4u + bb) * 3u] + bhh(d, 2u * H + j));
        hnew = z * hold + (1.0 - z) * n;
    }
    emit(s, pos, d, b, j, hnew);
}

// ---------------------------------------------------------------------------------------------
// Sequence-persistent kernel: one workgroup per (BS batch rows, direction) runs all T steps.
// h lives in workgroup memory (ping-pong), W_hh is read transposed so that neighbouring
// invocations (neighbouring units j) read neighbouring vec4s (r, z, n, 0) of the same k.

const SEQ_WG: u32 = 256u;
const SEQ_MAX: u32 = 1024u; // BS·H ≤ SEQ_MAX
var<workgroup> hs: array<f32, 2048>;   // [2][BS][H] ping-pong
var<workgroup> rhs: array<f32, 1024>;  // [BS][H] r⊙h (reset-before)

@compute @workgroup_size(256, 1, 1)
fn sequence(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
    let d = wid.z;
    let b0 = wid.x * BS;
    let nb = min(BS, ly.batch - b0);
    let ut = ly.ut_off + d * H * H;
    let first = st.s;
    let end = seq_end(first);
    for (var i = lid; i < nb * H; i += SEQ_WG) {
        let bb = i / H;
        hs[i] = seq_h_start(first, d, b0 + bb, i - bb * H);
    }
    workgroupBarrier();
    for (var s = first; s < end; s++) {
        let cur = ((s - first) % 2u) * SEQ_MAX;
        let nxt = SEQ_MAX - cur;
        if (RESET_AFTER) {
            for (var j = lid; j < H; j += SEQ_WG) {
                var acc: array<vec3<f32>, 8>;
                for (var bb = 0u; bb < BS; bb++) { acc[bb] = vec3<f32>(0.0); }
                for (var k = 0u; k < H; k++) {
                    let w = u[ut + k * H + j].xyz;
                    for (var bb = 0u; bb < BS; bb++) { acc[bb] += w * hs[cur + bb * H + k]; }
                }
                for (var bb = 0u; bb < nb; bb++) {
                    let b = b0 + bb;
                    let pos = position(s, d, b);
                    let hold = hs[cur + bb * H + j];
                    var hnew = hold;
                    if (pos.valid) {
                        let r = f_act(d, xp_at(pos, d, b, j) + acc[bb].x + bhh(d, j));
                        let z = f_act(d, xp_at(pos, d, b, H + j) + acc[bb].y + bhh(d, H + j));
                        let n = g_act(d, xp_at(pos, d, b, 2u * H + j) + r * (acc[bb].z + bhh(d, 2u * H + j)));
                        hnew = z * hold + (1.0 - z) * n;
                    }
                    hs[nxt + bb * H + j] = hnew;
                    seq_emit(s, pos, d, b, j, hnew);
                }
            }
        } else {
            // Half 1: r and z; r⊙h to workgroup memory, z to this invocation's slot in `zr`.
            for (var j = lid; j < H; j += SEQ_WG) {
                var acc: array<vec2<f32>, 8>;
                for (var bb = 0u; bb < BS; bb++) { acc[bb] = vec2<f32>(0.0); }
                for (var k = 0u; k < H; k++) {
                    let w = u[ut + k * H + j].xy;
                    for (var bb = 0u; bb < BS; bb++) { acc[bb] += w * hs[cur + bb * H + k]; }
                }
                for (var bb = 0u; bb < nb; bb++) {
                    let b = b0 + bb;
                    let pos = position(s, d, b);
                    var r = 0.0;
                    var z = 1.0;
                    if (pos.valid) {
                        r = f_act(d, xp_at(pos, d, b, j) + acc[bb].x + bhh(d, j));
                        z = f_act(d, xp_at(pos, d, b, H + j) + acc[bb].y + bhh(d, H + j));
                    }
                    rhs[bb * H + j] = r * hs[cur + bb * H + j];
                    let i = (d * ly.batch + b) * hp() + j;
                    zr[i / 4u][i % 4u] = z;
                }
            }
            workgroupBarrier();
            // Half 2: the candidate from U_n·(r⊙h), then h_t.
            for (var j = lid; j < H; j += SEQ_WG) {
                var acc: array<f32, 8>;
                for (var bb = 0u; bb < BS; bb++) { acc[bb] = 0.0; }
                for (var k = 0u; k < H; k++) {
                    let w = u[ut + k * H + j].z;
                    for (var bb = 0u; bb < BS; bb++) { acc[bb] += w * rhs[bb * H + k]; }
                }
                for (var bb = 0u; bb < nb; bb++) {
                    let b = b0 + bb;
                    let pos = position(s, d, b);
                    let hold = hs[cur + bb * H + j];
                    var hnew = hold;
                    if (pos.valid) {
                        let i = (d * ly.batch + b) * hp() + j;
                        let z = zr[i / 4u][i % 4u];
                        let n = g_act(d, xp_at(pos, d, b, 2u * H + j) + acc[bb] + bhh(d, 2u * H + j));
                        hnew = z * hold + (1.0 - z) * n;
                    }
                    hs[nxt + bb * H + j] = hnew;
                    seq_emit(s, pos, d, b, j, hnew);
                }
            }
        }
        workgroupBarrier();
    }
    if (end < ly.steps) {
        let last = ((end - first) % 2u) * SEQ_MAX;
        for (var i = lid; i < nb * H; i += SEQ_WG) {
            let bb = i / H;
            seq_h_save(d, b0 + bb, i - bb * H, hs[last + i]);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Register-resident sequence kernel (small H, real GPUs): one workgroup per (batch row,
// direction) runs all T steps, and W_hh never leaves registers. Invocation t owns hidden unit
// j = t / KS and the K-slice ks = t % KS of 4·KQ columns, holding its 3 gates × 4·KQ weights
// for the whole sequence; KS = ceil(H / 4KQ), so WG = H·KS invocations (H ≤ 160, WG ≤ 1024).
// Per step: 24 vec4 FMAs against h from workgroup memory, a reduction over the KS slices, and
// the gate epilogue on slice 0. Only workgroupBarrier synchronises.

override KQ: u32 = 8u;    // vec4s of each gate's row slice per invocation (2, 4 or 8)
override KS: u32 = 1u;    // K-slices of 4·KQ columns per hidden unit
override WG: u32 = 32u;   // invocations: H·KS rounded up to 32

const REG_MAX4: u32 = 40u;   // vec4s of one h row in workgroup memory (KS·KQ ≤ 40)
var<workgroup> hr: array<vec4<f32>, 80>;   // [2][KS·KQ] h ping-pong, zero past H
var<workgroup> rr: array<vec4<f32>, 40>;   // [KS·KQ] r⊙h (reset-before), zero past H
var<workgroup> part_r: array<f32, 1024>;   // [WG] partial sums, gate r (or n in half 2)
var<workgroup> part_z: array<f32, 1024>;   // [WG] gate z
var<workgroup> part_n: array<f32, 1024>;   // [WG] gate n
var<workgroup> zs: array<f32, 160>;        // [H] z (reset-before)

fn set_part(t: u32, v: vec3<f32>) {
    part_r[t] = v.x;
    part_z[t] = v.y;
    part_n[t] = v.z;
}

fn reduce_slices(t: u32) -> vec3<f32> {
    var sum = vec3<f32>(part_r[t], part_z[t], part_n[t]);
    for (var q = 1u; q < KS; q++) { sum += vec3<f32>(part_r[t + q], part_z[t + q], part_n[t + q]); }
    return sum;
}

@compute @workgroup_size(WG, 1, 1)
fn sequence_regs(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
    let d = wid.z;
    let b = wid.x;
    let j = lid / KS;
    let ks = lid % KS;
    let live = j < H;
    let row4 = KS * KQ;
    // W_hh slice into registers: w[g·8 + q] = U[g·H + j][4·(ks·KQ + q) .. +4].
    var w: array<vec4<f32>, 24>;
    for (var g = 0u; g < 3u; g++) {
        for (var q = 0u; q < KQ; q++) {
            let k4 = ks * KQ + q;
            var v = vec4<f32>(0.0);
            if (live && k4 < ly.hp4) { v = u[(d * 3u * H + g * H + j) * ly.hp4 + k4]; }
            w[g * 8u + q] = v;
        }
    }
    for (var i = lid; i < 2u * REG_MAX4; i += WG) { hr[i] = vec4<f32>(0.0); }
    for (var i = lid; i < REG_MAX4; i += WG) { rr[i] = vec4<f32>(0.0); }
    workgroupBarrier();
    let first = st.s;
    let end = seq_end(first);
    if (live && ks == 0u) {
        hr[j / 4u][j % 4u] = seq_h_start(first, d, b, j);
    }
    // Loop invariants in registers: the row's length and this unit's recurrent biases.
    let len = lens[b];
    var bh = vec3<f32>(0.0);
    if (live) { bh = vec3<f32>(bhh(d, j), bhh(d, H + j), bhh(d, 2u * H + j)); }
    workgroupBarrier();
    for (var s = first; s < end; s++) {
        let cur = ((s - first) % 2u) * row4;
        let nxt = row4 - cur;
        let pos = position_len(s, d, b, len);
        // Issue this step's input-projection loads before the FMAs, so their latency overlaps.
        var xv = vec3<f32>(0.0);
        if (live && ks == 0u && pos.valid) {
            xv = vec3<f32>(xp_at(pos, d, b, j), xp_at(pos, d, b, H + j), xp_at(pos, d, b, 2u * H + j));
        }
        if (RESET_AFTER) {
            var acc = vec3<f32>(0.0);
            for (var q = 0u; q < KQ; q++) {
                let hv = hr[cur + ks * KQ + q];
                acc += vec3<f32>(dot(w[q], hv), dot(w[8u + q], hv), dot(w[16u + q], hv));
            }
            set_part(lid, acc);
            workgroupBarrier();
            if (live && ks == 0u) {
                let a = reduce_slices(lid);
                let hold = hr[cur + j / 4u][j % 4u];
                var hnew = hold;
                if (pos.valid) {
                    let r = f_act(d, xv.x + a.x + bh.x);
                    let z = f_act(d, xv.y + a.y + bh.y);
                    let n = g_act(d, xv.z + r * (a.z + bh.z));
                    hnew = z * hold + (1.0 - z) * n;
                }
                hr[nxt + j / 4u][j % 4u] = hnew;
                seq_emit(s, pos, d, b, j, hnew);
            }
            workgroupBarrier();
        } else {
            var acc = vec3<f32>(0.0);
            for (var q = 0u; q < KQ; q++) {
                let hv = hr[cur + ks * KQ + q];
                acc += vec3<f32>(dot(w[q], hv), dot(w[8u + q], hv), 0.0);
            }
            set_part(lid, acc);
            workgroupBarrier();
            if (live && ks == 0u) {
                let a = reduce_slices(lid);
                let hold = hr[cur + j / 4u][j % 4u];
                var r = 0.0;
                var z = 1.0;
                if (pos.valid) {
                    r = f_act(d, xv.x + a.x + bh.x);
                    z = f_act(d, xv.y + a.y + bh.y);
                }
                rr[j / 4u][j % 4u] = r * hold;
                zs[j] = z;
            }
            workgroupBarrier();
            var accn = 0.0;
            for (var q = 0u; q < KQ; q++) {
                accn += dot(w[16u + q], rr[ks * KQ + q]);
            }
            set_part(lid, vec3<f32>(accn, 0.0, 0.0));
            workgroupBarrier();
            if (live && ks == 0u) {
                let a = reduce_slices(lid);
                let hold = hr[cur + j / 4u][j % 4u];
                var hnew = hold;
                if (pos.valid) {
                    let n = g_act(d, xv.z + a.x + bh.z);
                    hnew = zs[j] * hold + (1.0 - zs[j]) * n;
                }
                hr[nxt + j / 4u][j % 4u] = hnew;
                seq_emit(s, pos, d, b, j, hnew);
            }
            workgroupBarrier();
        }
    }
    if (end < ly.steps && live && ks == 0u) {
        seq_h_save(d, b, j, hr[((end - first) % 2u) * row4 + j / 4u][j % 4u]);
    }
}

// ---------------------------------------------------------------------------------------------
// GEMM-tiled per-step kernels for larger batches: one timestep per dispatch, like `step_fused`,
// `step_gates` and `step_candidate` above, over the same bind group layout and uniforms.
//
// A workgroup of 16×16 invocations owns a tile of 16·RPI batch rows × 16 hidden units of one
// direction (workgroup_id.z) and computes the tile's gate pre-activations U·h as a small GEMM:
// K runs in steps of 32 columns staged in workgroup memory (h tile [rows][32], U tile
// [gates][16 units][32]), so each W_hh element fetched from L2 serves 16·RPI batch rows instead of
// 4, and no cross-lane reduction is needed. Invocation (x, y) owns unit j = j0 + x for the rows
// y, y + 16, .. (RPI of them) and ALL gates of that unit, so z, r, n and h_t are finished in
// registers. Accumulators are vec4s (4 independent K-lanes, summed at the end), so the inner loop
// is vec4 FMAs on vec4 workgroup loads: per 4 K-columns, 3 U loads + RPI h loads for 12·RPI FMAs
// (reset-after, RPI = 4: 7 loads per 48 FMAs). The next K-step's global loads are issued into
// registers before the current one is multiplied, hiding their latency.
//
// - `tiled_fused`:     reset-after: r, z, n from one pass over the three gates' rows; then h_t.
// - `tiled_gates`:     reset-before, half 1: r, z; writes z and r⊙h to `zr`.
// - `tiled_candidate`: reset-before, half 2: n from U_n·(r⊙h), then h_t.
//
// Per step s, row b of direction d runs at time t = s (forward), len_b−1−s (reverse) or
// T−1−s (go_backwards, output at s). Steps past a row's length carry h and write 0 to y.


const TU: u32 = 16u;      // hidden units per tile (workgroup_size.x)
const TG: u32 = 16u;      // row groups per tile (workgroup_size.y); tile rows = TG·RPI
const TILE_WG: u32 = 256u;     // invocations
const K4T: u32 = 8u;      // K-step in vec4s: 32 columns of W_hh per stage
// vec4s per U row in workgroup memory: K4T + 1, so that the 8 neighbouring units a quarter-warp
// reads (16-byte loads) fall in distinct banks (a stride of 8 vec4s would be an 8-way conflict).
const US_ROW: u32 = 9u;

var<workgroup> ths: array<vec4<f32>, 512>;  // [TG·RPI ≤ 64 rows][K4T] h_{t−1} (or r⊙h), this K-step
var<workgroup> tus: array<vec4<f32>, 432>;  // [3 gates][TU units][US_ROW] W_hh rows, this K-step

// Per row of this invocation (index r: tile row y + TG·r), the three gates' partial dot products
// in 4 K-lanes. With `ngates` < 3 the first gates are used (acc_a for gate g0).
var<private> acc_a: array<vec4<f32>, 4>;
var<private> acc_b: array<vec4<f32>, 4>;
var<private> acc_c: array<vec4<f32>, 4>;
// The next K-step's tile elements this invocation loads (at most 2 vec4s of h, 2 of U).
var<private> ph: array<vec4<f32>, 2>;
var<private> pu: array<vec4<f32>, 2>;

// Element i of the h tile for the K-step at kk4: tile row i / K4T, vec4 column kk4 + i % K4T
// (8 neighbouring invocations read 128 contiguous bytes of one row). Zero past B and HP.
fn load_h(s: u32, d: u32, b0: u32, i: u32, kk4: u32, use_rh: bool) -> vec4<f32> {
    let b = b0 + i / K4T;
    let k4 = kk4 + i % K4T;
    if (b >= ly.batch || k4 >= ly.hp4) { return vec4<f32>(0.0); }
    if (use_rh) {
        return zr[(ly.dirs + d) * ly.batch * ly.hp4 + b * ly.hp4 + k4];
    }
    return h_prev4(s, d, b, k4);
}

// Element i of the U tile: row (gate g0 + gl, unit j0 + x) with gl·TU + x = i / K4T, vec4
// column kk4 + i % K4T. Zero past H and HP.
fn load_u(d: u32, j0: u32, g0: u32, i: u32, kk4: u32) -> vec4<f32> {
    let gu = i / K4T;
    let j = j0 + gu % TU;
    let g = g0 + gu / TU;
    let k4 = kk4 + i % K4T;
    if (j >= H || k4 >= ly.hp4) { return vec4<f32>(0.0); }
    return u[(d * 3u * H + g * H + j) * ly.hp4 + k4];
}

// Global → registers for the K-step at kk4.
fn fetch(s: u32, lid: u32, d: u32, b0: u32, j0: u32, g0: u32, ngates: u32, kk4: u32, use_rh: bool) {
    for (var c = 0u; c < 2u; c++) {
        let i = lid + c * TILE_WG;
        if (i < TG * RPI * K4T) { ph[c] = load_h(s, d, b0, i, kk4, use_rh); }
        if (i < ngates * TU * K4T) { pu[c] = load_u(d, j0, g0, i, kk4); }
    }
}

// Registers → workgroup memory (the layouts `mac` reads).
fn stash(lid: u32, ngates: u32) {
    for (var c = 0u; c < 2u; c++) {
        let i = lid + c * TILE_WG;
        if (i < TG * RPI * K4T) { ths[i] = ph[c]; }
        if (i < ngates * TU * K4T) { tus[(i / K4T) * US_ROW + i % K4T] = pu[c]; }
    }
}

// One staged K-step: 4·K4T columns for this invocation's RPI rows × ngates gates of unit x.
fn mac(x: u32, y: u32, ngates: u32) {
    for (var k4 = 0u; k4 < K4T; k4++) {
        let wa = tus[x * US_ROW + k4];
        var wb = vec4<f32>(0.0);
        var wc = vec4<f32>(0.0);
        if (ngates > 1u) { wb = tus[(TU + x) * US_ROW + k4]; }
        if (ngates > 2u) { wc = tus[(2u * TU + x) * US_ROW + k4]; }
        for (var r = 0u; r < RPI; r++) {
            let hv = ths[(y + TG * r) * K4T + k4];
            acc_a[r] = fma(wa, hv, acc_a[r]);
            // Guarded, not multiplied by zero rows: the candidate half does a third of the FMAs.
            if (ngates > 1u) { acc_b[r] = fma(wb, hv, acc_b[r]); }
            if (ngates > 2u) { acc_c[r] = fma(wc, hv, acc_c[r]); }
        }
    }
}

// acc_{a,b,c}[r] ← U[g0 .. g0+ngates, j] · h[b0 + y + TG·r] for unit j = j0 + x, over all of K.
// Every invocation of the workgroup must call it (barriers).
fn tile_matmul(s: u32, lid: u32, x: u32, y: u32, d: u32, b0: u32, j0: u32, g0: u32, ngates: u32, use_rh: bool) {
    for (var r = 0u; r < 4u; r++) {
        acc_a[r] = vec4<f32>(0.0);
        acc_b[r] = vec4<f32>(0.0);
        acc_c[r] = vec4<f32>(0.0);
    }
    fetch(s, lid, d, b0, j0, g0, ngates, 0u, use_rh);
    for (var kk4 = 0u; kk4 < ly.hp4; kk4 += K4T) {
        stash(lid, ngates);
        workgroupBarrier();
        if (kk4 + K4T < ly.hp4) {
            fetch(s, lid, d, b0, j0, g0, ngates, kk4 + K4T, use_rh);
        }
        mac(x, y, ngates);
        workgroupBarrier();
    }
}

fn hsum(v: vec4<f32>) -> f32 {
    return (v.x + v.y) + (v.z + v.w);
}

@compute @workgroup_size(16, 16, 1)
fn tiled_fused(
    @builtin(local_invocation_id) l3: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
) {
    let s = st.s;
    let d = wid.z;
    let j0 = wid.x * TU;
    let b0 = wid.y * TG * RPI;
    tile_matmul(s, lid, l3.x, l3.y, d, b0, j0, 0u, 3u, false);
    let j = j0 + l3.x;
    if (j >= H) { return; }
    for (var r = 0u; r < RPI; r++) {
        let b = b0 + l3.y + TG * r;
        if (b >= ly.batch) { break; }
        let pos = position(s, d, b);
        let hold = h_prev(s, d, b, j);
        var hnew = hold;
        if (pos.valid) {
            let rg = f_act(d, xp_at(pos, d, b, j) + hsum(acc_a[r]) + bhh(d, j));
            let z = f_act(d, xp_at(pos, d, b, H + j) + hsum(acc_b[r]) + bhh(d, H + j));
            let n = g_act(d, xp_at(pos, d, b, 2u * H + j) + rg * (hsum(acc_c[r]) + bhh(d, 2u * H + j)));
            hnew = z * hold + (1.0 - z) * n;
        }
        emit(s, pos, d, b, j, hnew);
    }
}

@compute @workgroup_size(16, 16, 1)
fn tiled_gates(
    @builtin(local_invocation_id) l3: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
) {
    let s = st.s;
    let d = wid.z;
    let j0 = wid.x * TU;
    let b0 = wid.y * TG * RPI;
    tile_matmul(s, lid, l3.x, l3.y, d, b0, j0, 0u, 2u, false);
    let j = j0 + l3.x;
    if (j >= H) { return; }
    for (var r = 0u; r < RPI; r++) {
        let b = b0 + l3.y + TG * r;
        if (b >= ly.batch) { break; }
        let pos = position(s, d, b);
        // Rows past their length keep h; `tiled_candidate` reads neither z nor their r⊙h.
        if (!pos.valid) { continue; }
        let rg = f_act(d, xp_at(pos, d, b, j) + hsum(acc_a[r]) + bhh(d, j));
        let z = f_act(d, xp_at(pos, d, b, H + j) + hsum(acc_b[r]) + bhh(d, H + j));
        let i = (d * ly.batch + b) * hp() + j;
        zr[i / 4u][i % 4u] = z;
        let i2 = ly.dirs * ly.batch * hp() + i;
        zr[i2 / 4u][i2 % 4u] = rg * h_prev(s, d, b, j);
    }
}

@compute @workgroup_size(16, 16, 1)
fn tiled_candidate(
    @builtin(local_invocation_id) l3: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
) {
    let s = st.s;
    let d = wid.z;
    let j0 = wid.x * TU;
    let b0 = wid.y * TG * RPI;
    tile_matmul(s, lid, l3.x, l3.y, d, b0, j0, 2u, 1u, true);
    let j = j0 + l3.x;
    if (j >= H) { return; }
    for (var r = 0u; r < RPI; r++) {
        let b = b0 + l3.y + TG * r;
        if (b >= ly.batch) { break; }
        let pos = position(s, d, b);
        let hold = h_prev(s, d, b, j);
        var hnew = hold;
        if (pos.valid) {
            let i = (d * ly.batch + b) * hp() + j;
            let z = zr[i / 4u][i % 4u];
            let n = g_act(d, xp_at(pos, d, b, 2u * H + j) + hsum(acc_a[r]) + bhh(d, 2u * H + j));
            hnew = z * hold + (1.0 - z) * n;
        }
        emit(s, pos, d, b, j, hnew);
    }
}
