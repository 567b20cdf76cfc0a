// Shared by the recurrence modules (one per algorithm: `step.wgsl`, `step_subgroup.wgsl`,
// `sequence.wgsl`, `sequence_regs.wgsl`, `sequence_regs_subgroup.wgsl`, `tiled.wgsl`,
// `grid.wgsl`): each is composed as the generated header (sizes, the `Step` and `Layer` uniform
// blocks), this prelude, `regs.wgsl` for the register kernels, then the kernel file
// (src/gpu/wgsl.rs, the one place that composes them). It holds the
// specialisation constants, the bindings, the activations, the cell's gate math, and where each
// step of each row reads and writes.
//
// Specialisation.
override H: u32 = 1u;              // hidden units
override RESET_AFTER: bool = true; // variant
override F_KIND: u32 = 0u;         // gate activation (an ACT_* code, generated from config.rs)
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

@group(0) @binding(0) var<uniform> st: Step;                        // dynamic offset per step
@group(0) @binding(1) var<uniform> ly: Layer;
@group(0) @binding(2) var<storage, read> xp: array<f32>;             // [T, B, D, 3H]
@group(0) @binding(3) var<storage, read> u: array<vec4<wt>>;         // [D, 3H, HP] ++ b_hh ++ W_hhᵀ
@group(0) @binding(4) var<storage, read> lens: array<u32>;           // [B] ++ [1] ++ [B, T] mask
@group(0) @binding(5) var<storage, read_write> hbuf: array<vec4<f32>>; // [2, D, B, HP] ping-pong
@group(0) @binding(6) var<storage, read_write> y: array<f32>;        // [T, B, D·H] via strides
@group(0) @binding(7) var<storage, read_write> states: array<f32>;   // h0 [L, D, B, H] ++ h_n [L, D, B, H]
@group(0) @binding(8) var<storage, read_write> zr: array<vec4<f32>>; // [2, D, B, HP]: z, then r⊙h

// Element i of `u`, in f32 whatever the weights' storage type `wt`.
fn u4(i: u32) -> vec4<f32> {
    return vec4<f32>(u[i]);
}

fn act(kind: u32, v: f32, alpha: f32, beta: f32) -> f32 {
    var x = v;
    if (CLIP > 0.0) { x = clamp(x, -CLIP, CLIP); }
    switch kind {
        case ACT_SIGMOID: { return 1.0 / (1.0 + exp(-x)); }
        case ACT_TANH: { return tanh_(x); }
        case ACT_RELU: { return max(x, 0.0); }
        case ACT_HARD_SIGMOID: { return clamp(alpha * x + beta, 0.0, 1.0); }
        case ACT_LEAKY_RELU: { return select(alpha * x, x, x >= 0.0); }
        case ACT_THRESHOLDED_RELU: { return select(0.0, x, x > alpha); }
        case ACT_SCALED_TANH: { return alpha * tanh_(beta * x); }
        case ACT_AFFINE: { return alpha * x + beta; }
        case ACT_ELU: { return select(alpha * (exp(x) - 1.0), x, x >= 0.0); }
        case ACT_SOFTSIGN: { return x / (1.0 + abs(x)); }
        case ACT_SOFTPLUS: { return max(x, 0.0) + log(1.0 + exp(-abs(x))); }
        // No kind the host sends (its codes are ACTIVATION_CODES): a NaN bit pattern, so a bad
        // code cannot pass for an activation. Built from x, a runtime value: as a constant
        // expression a NaN is a compile error (Tint).
        default: { return bitcast<f32>(0x7fc00000u | (bitcast<u32>(x) & 0u)); }
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

// The state ping-pong, [2, D, B, stride] from `base`, shared with training: step s reads h_{s−1}
// from half (s + 1) % 2 (written by step s−1) and writes h_s to half s % 2. Returns the first
// element of row (d, b) of the half that step s reads (`next` false) or writes (`next` true).
fn pingpong(base: u32, s: u32, next: bool, dirs: u32, batch: u32, stride: u32, d: u32, b: u32) -> u32 {
    let half = select((s + 1u) % 2u, s % 2u, next);
    return base + half * dirs * batch * stride + (d * batch + b) * stride;
}

// The time index that step s of a row of length `len` reads (s < len), in a pass of `steps`
// steps: a reversed direction reads len−1−s, go_backwards steps−1−s, otherwise s. Shared with
// training.
fn time_in(s: u32, len: u32, steps: u32, reversed: bool, go_back: bool) -> u32 {
    if (reversed) { return len - 1u - s; }
    if (go_back) { return steps - 1u - s; }
    return s;
}

// The time index step s writes its output at, having read `t`: go_backwards writes at s.
fn time_out(s: u32, t: u32, go_back: bool) -> u32 {
    return select(t, s, go_back);
}

// Previous state of (d, b, k): h0 at step 0, else the ping-pong half written by step s−1.
fn h_prev(s: u32, d: u32, b: u32, k: u32) -> f32 {
    if (s == 0u) {
        return states[ly.h0_off + (d * ly.batch + b) * H + k];
    }
    let i = pingpong(0u, s, false, ly.dirs, ly.batch, hp(), d, b) + k;
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
    return hbuf[pingpong(0u, s, false, ly.dirs, ly.batch, ly.hp4, d, b) + k4];
}

fn set_h_next(s: u32, d: u32, b: u32, j: u32, v: f32) {
    let i = pingpong(0u, s, true, ly.dirs, ly.batch, hp(), d, b) + j;
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
    let reversed = ((ly.rev_mask >> d) & 1u) == 1u;
    let go_back = ly.go_back == 1u;
    pos.valid = s < len;
    if (!pos.valid) {
        pos.t_in = s;
        pos.t_out = s;
    } else {
        pos.t_in = time_in(s, len, ly.steps, reversed, go_back);
        pos.t_out = time_out(s, pos.t_in, go_back && !reversed);
    }
    pos.out_h = pos.valid;
    let mode = lens[ly.batch];
    if (mode != 0u) {
        let f = lens[ly.batch + 1u + b * ly.steps + pos.t_in];
        let backward = reversed || go_back;
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
    return u4(i / 4u)[i % 4u];
}

// z and r⊙h of (d, b, j) between the two halves of a reset-before step: `zr` [2, D, B, HP].
fn zr_index(d: u32, b: u32, j: u32) -> u32 {
    return (d * ly.batch + b) * hp() + j;
}
fn set_z(d: u32, b: u32, j: u32, z: f32) {
    let i = zr_index(d, b, j);
    zr[i / 4u][i % 4u] = z;
}
fn get_z(d: u32, b: u32, j: u32) -> f32 {
    let i = zr_index(d, b, j);
    return zr[i / 4u][i % 4u];
}
fn set_rh(d: u32, b: u32, j: u32, v: f32) {
    let i = ly.dirs * ly.batch * hp() + zr_index(d, b, j);
    zr[i / 4u][i % 4u] = v;
}

// r⊙h of (d, b) at vec4 k4, as `set_rh` left it.
fn rh_prev4(d: u32, b: u32, k4: u32) -> vec4<f32> {
    return zr[(ly.dirs + d) * ly.batch * ly.hp4 + b * ly.hp4 + k4];
}

// One lane's share of a step kernel's recurrent products: for the STEP_ROWS batch rows from b0, the sums
// over k4 = lane, lane + stride, … of `ngates` rows of W_hh (from gate `g0`) of unit j against
// h_{t−1}, or against r⊙h when `use_rh`. The caller reduces them over the lanes.
fn matvec_lane(s: u32, lane: u32, stride: u32, j: u32, d: u32, b0: u32, g0: u32, ngates: u32, use_rh: bool) -> array<vec3<f32>, STEP_ROWS> {
    var acc: array<vec3<f32>, STEP_ROWS>;
    for (var i = 0u; i < STEP_ROWS; i++) { acc[i] = vec3<f32>(0.0); }
    if (j < H) {
        let row = (d * 3u * H + g0 * H + j) * ly.hp4;
        for (var k4 = lane; k4 < ly.hp4; k4 += stride) {
            let w0 = u4(row + k4);
            var w1 = vec4<f32>(0.0);
            var w2 = vec4<f32>(0.0);
            if (ngates > 1u) { w1 = u4(row + H * ly.hp4 + k4); }
            if (ngates > 2u) { w2 = u4(row + 2u * H * ly.hp4 + k4); }
            for (var bb = 0u; bb < STEP_ROWS; bb++) {
                let b = b0 + bb;
                if (b >= ly.batch) { break; }
                var hv: vec4<f32>;
                if (use_rh) {
                    hv = rh_prev4(d, b, k4);
                } else {
                    hv = h_prev4(s, d, b, k4);
                }
                acc[bb] += vec3<f32>(dot(w0, hv), dot(w1, hv), dot(w2, hv));
            }
        }
    }
    return acc;
}

// ---- The cell, shared by every kernel (canonical gate order r, z, n) ----
// Arguments: x the step's input projection, a the recurrent products U·h (or U_n·(r⊙h)) without
// biases, bh the recurrent biases, each per gate; h the previous state of unit j.

// This step's input projection of (d, b, unit j): gates r, z, n, and r, z alone.
fn xp3(pos: Pos, d: u32, b: u32, j: u32) -> vec3<f32> {
    return vec3<f32>(xp_at(pos, d, b, j), xp_at(pos, d, b, H + j), xp_at(pos, d, b, 2u * H + j));
}
fn xp_rz(pos: Pos, d: u32, b: u32, j: u32) -> vec2<f32> {
    return vec2<f32>(xp_at(pos, d, b, j), xp_at(pos, d, b, H + j));
}

// The recurrent biases of (d, unit j): gates r, z, n, and r, z alone.
fn bhh3(d: u32, j: u32) -> vec3<f32> {
    return vec3<f32>(bhh(d, j), bhh(d, H + j), bhh(d, 2u * H + j));
}
fn bhh_rz(d: u32, j: u32) -> vec2<f32> {
    return vec2<f32>(bhh(d, j), bhh(d, H + j));
}

// h' = z⊙h + (1−z)⊙n.
fn blend(z: f32, h: f32, n: f32) -> f32 {
    return z * h + (1.0 - z) * n;
}

// Reset-after: h' = blend(z, h, g(x_n + r⊙(a_n + b_hn))).
fn cell_after(d: u32, x: vec3<f32>, a: vec3<f32>, bh: vec3<f32>, h: f32) -> f32 {
    let r = f_act(d, x.x + a.x + bh.x);
    let z = f_act(d, x.y + a.y + bh.y);
    let n = g_act(d, x.z + r * (a.z + bh.z));
    return blend(z, h, n);
}

// h' of a reset-after step, or h where the step does not run.
fn after_or_hold(valid: bool, d: u32, x: vec3<f32>, a: vec3<f32>, bh: vec3<f32>, h: f32) -> f32 {
    if (valid) { return cell_after(d, x, a, bh, h); }
    return h;
}

// Reset-before, half 1: (r, z).
fn gates_before(d: u32, x: vec2<f32>, a: vec2<f32>, bh: vec2<f32>) -> vec2<f32> {
    return vec2<f32>(f_act(d, x.x + a.x + bh.x), f_act(d, x.y + a.y + bh.y));
}

// Reset-before, half 2: h' = blend(z, h, g(x_n + U_n·(r⊙h) + b_hn)), with a_n = U_n·(r⊙h); h
// where the step does not run.
fn before_or_hold(valid: bool, d: u32, xn: f32, an: f32, bhn: f32, z: f32, h: f32) -> f32 {
    if (valid) { return blend(z, h, g_act(d, xn + an + bhn)); }
    return h;
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

// Finishes step s of (d, b, unit j) in a per-step kernel, from its recurrent products `a`:
// kind 0, reset-after (a = U·h for r, z, n); kind 1, reset-before half 1 (a.xy = U·h for r, z:
// stores z and r⊙h); kind 2, reset-before half 2 (a.x = U_n·(r⊙h)).
fn finish_step(kind: u32, s: u32, d: u32, b: u32, j: u32, a: vec3<f32>) {
    let pos = position(s, d, b);
    let hold = h_prev(s, d, b, j);
    if (kind == 1u) {
        if (pos.valid) {
            let rz = gates_before(d, xp_rz(pos, d, b, j), a.xy, bhh_rz(d, j));
            set_z(d, b, j, rz.y);
            set_rh(d, b, j, rz.x * hold);
        }
        return;
    }
    if (kind == 0u) {
        emit(s, pos, d, b, j, after_or_hold(pos.valid, d, xp3(pos, d, b, j), a, bhh3(d, j), hold));
    } else {
        let xn = xp_at(pos, d, b, 2u * H + j);
        emit(s, pos, d, b, j, before_or_hold(pos.valid, d, xn, a.x, bhh(d, 2u * H + j), get_z(d, b, j), hold));
    }
}

// The W_hh rows a per-step kernel of `kind` multiplies: (first gate, gates, against r⊙h).
fn step_rows(kind: u32) -> vec3<u32> {
    switch kind {
        case 0u: { return vec3<u32>(0u, 3u, 0u); }
        case 1u: { return vec3<u32>(0u, 2u, 0u); }
        default: { return vec3<u32>(2u, 1u, 1u); }
    }
}

