// GRU training: a forward that keeps what the backward needs (the tape), and the backward (BPTT)
// recurrence, one step per dispatch. Canonical gate order r, z, n; h' = z⊙h + (1−z)⊙n.
//
// Entry points, all over one bind group layout (bindings below), one dispatch per step s (the
// s-th step in processing order), grid (⌈H/64⌉, B, D): invocation (j, b, d) owns unit j of row b
// of direction d.
// - `fwd_ra`:       a whole reset-after step.
// - `fwd_rb_gates`: reset-before, half 1: r, z and r⊙h.
// - `fwd_rb_cand`:  reset-before, half 2: n from U_n·(r⊙h), then h_t.
// - `bwd_elem`:     backward, the element-wise part: dL/da for the gates (r too for reset-after)
//                   and dh'⊙z.
// - `bwd_mid_rb`:   reset-before only: U_nᵀ·da_n, then da_r and the r⊙h term of dh.
// - `bwd_rec`:      dh = dh'⊙z + (...) + U_rᵀ da_r + U_zᵀ da_z (+ U_nᵀ dhn for reset-after): the
//                   carry into the step processed before, or dL/dh0 after step 0.
// - `transpose_whh`: W_hhᵀ [D][H][3H] before a layer's forward, so that the step kernels'
//                   invocations (consecutive units) read consecutive floats.
//
// Per step s, row b of direction d reads time t_in = s (forward), len_b−1−s (reverse) or T−1−s
// (go_backwards) and writes its output at t_out = t_in (go_backwards: s). A step with s ≥ len_b
// does not exist: the state (forward) or the carried gradient (backward) passes through, and the
// outputs, tape and gate gradients at time t = s (itself a time ≥ len_b) are set to zero, so that
// every time index of every row is written exactly once per pass.
//
// Layouts in `work` (floats), with tape(d, t, b) = (d·T + t)·B + b:
//   X_l  [T, B, I_l]          layer input (time-major)
//   XP   [D][T, B, 3H]        X_l·W_ihᵀ (no bias), by t_in
//   Y_l  [T, B, D·H]          layer output, by t_out
//   HP   [D][T, B, H]         h_{t−1} of the step that read t_in
//   GT   [D][T, B, 4H]        r, z, n, and hn = U_n h + b_hn (reset-after) or r⊙h (reset-before)
//   HS   [2][D, B, H]         forward state, ping-pong by step parity
//   DY   [T, B, D·H]          dL/dY_l;    DA [D][T, B, 4H]: da_r, da_z, da_n, and dhn (reset-after)
//                             or da_n (reset-before): the left factor of dU_n
//   DH   [D, B, H]            carried dL/dh;  PT [D, B, H]: its partial sum within a step
//   WT   [D][H, 3H]           this layer's W_hhᵀ (the forward reads it; the backward reads W_hh)
// llvmpipe ends an invocation after 65,535 loop iterations: no loop here runs more than 3H.

override H: u32 = 1u;
override RESET_AFTER: bool = true;

struct Step {
    s: u32,
}

struct Layer {
    steps: u32,    // T
    batch: u32,    // B
    dirs: u32,     // D
    in_w: u32,     // I_l
    rev_mask: u32, // bit d: direction d runs backwards
    go_back: u32,  // Keras go_backwards
    x_off: u32,
    y_off: u32,
    xp_off: u32,
    hp_off: u32,
    gt_off: u32,
    hs_off: u32,
    h0_off: u32,   // this layer's slot of h0 [D, B, H]
    hn_off: u32,   // this layer's slot of h_n [D, B, H]
    p0: u32,       // params offset of cell (l, 0): w_ih [3H, I_l], w_hh [3H, H], b_ih, b_hh [3H]
    p1: u32,       // params offset of cell (l, 1)
    dy_off: u32,
    da_off: u32,
    dh_off: u32,
    pt_off: u32,
    gs_off: u32,   // this layer's slot of dL/dh_n [D, B, H]
    dh0_off: u32,  // this layer's slot of dL/dh0 [D, B, H]
    wt_off: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> st: Step;                  // dynamic offset per step
@group(0) @binding(1) var<uniform> ly: Layer;                 // dynamic offset per layer
@group(0) @binding(2) var<storage, read> p: array<f32>;       // parameters
@group(0) @binding(3) var<storage, read_write> work: array<f32>;
@group(0) @binding(4) var<storage, read> lens: array<u32>;    // [B]

fn sigmoid(x: f32) -> f32 {
    return 1.0 / (1.0 + exp(-x));
}

// Overflow-free tanh.
fn tanh_(x: f32) -> f32 {
    let e = exp(-2.0 * abs(x));
    return sign(x) * (1.0 - e) / (1.0 + e);
}

fn cell_off(d: u32) -> u32 {
    return select(ly.p0, ly.p1, d == 1u);
}
fn whh_off(d: u32) -> u32 { return cell_off(d) + 3u * H * ly.in_w; }
fn bih_off(d: u32) -> u32 { return whh_off(d) + 3u * H * H; }
fn bhh_off(d: u32) -> u32 { return bih_off(d) + 3u * H; }

fn tape(d: u32, t: u32, b: u32) -> u32 {
    return (d * ly.steps + t) * ly.batch + b;
}

// Time index read by step s of row b in direction d (s < len).
fn t_in(s: u32, d: u32, len: u32) -> u32 {
    if ((ly.rev_mask >> d) & 1u) == 1u {
        return len - 1u - s;
    }
    if ly.go_back == 1u {
        return ly.steps - 1u - s;
    }
    return s;
}

fn t_out(s: u32, ti: u32) -> u32 {
    return select(ti, s, ly.go_back == 1u);
}

// First float of h_{s−1} of (d, b): h0 at step 0, else the ping-pong half step s−1 wrote.
fn hprev_base(s: u32, d: u32, b: u32) -> u32 {
    let db = d * ly.batch + b;
    if s == 0u {
        return ly.h0_off + db * H;
    }
    return ly.hs_off + (s % 2u) * ly.dirs * ly.batch * H + db * H;
}

fn hnext_base(s: u32, d: u32, b: u32) -> u32 {
    return ly.hs_off + ((s + 1u) % 2u) * ly.dirs * ly.batch * H + (d * ly.batch + b) * H;
}

fn y_index(t: u32, b: u32, d: u32, j: u32) -> u32 {
    return ly.y_off + (t * ly.batch + b) * ly.dirs * H + d * H + j;
}

// A step that does not exist (s ≥ len): the state passes through; the output, tape and the
// h_n slot at the last step are written.
fn pass_through(s: u32, d: u32, b: u32, j: u32) {
    let h = work[hprev_base(s, d, b) + j];
    work[hnext_base(s, d, b) + j] = h;
    if s == ly.steps - 1u {
        work[ly.hn_off + (d * ly.batch + b) * H + j] = h;
    }
    let row = tape(d, s, b);
    work[y_index(s, b, d, j)] = 0.0;
    work[ly.hp_off + row * H + j] = 0.0;
    for (var g = 0u; g < 4u; g++) {
        work[ly.gt_off + row * 4u * H + g * H + j] = 0.0;
    }
}

// Whether forward step `st.s` of row b exists; if not, passes the state through (unit j).
fn step_exists(j: u32, b: u32, d: u32) -> bool {
    if st.s >= lens[b] {
        pass_through(st.s, d, b, j);
        return false;
    }
    return true;
}

// The end of a forward step: h_t, the output, h_n after the last step.
fn finish(s: u32, d: u32, b: u32, j: u32, to: u32, h: f32) {
    work[hnext_base(s, d, b) + j] = h;
    if s == ly.steps - 1u {
        work[ly.hn_off + (d * ly.batch + b) * H + j] = h;
    }
    work[y_index(to, b, d, j)] = h;
}

// U_r·h, U_z·h and (with `with_n`) U_n·h for unit j, h read from `work` at `hb`. W_hh is read
// transposed (WT), so that the invocations of a workgroup (consecutive j) read consecutive floats.
fn recurrent(hb: u32, d: u32, j: u32, with_n: bool) -> vec3<f32> {
    let wt = ly.wt_off + d * H * 3u * H + j;
    var acc = vec3<f32>(0.0);
    for (var k = 0u; k < H; k++) {
        let h = work[hb + k];
        let row = wt + k * 3u * H;
        acc.x += work[row] * h;
        acc.y += work[row + H] * h;
        if with_n {
            acc.z += work[row + 2u * H] * h;
        }
    }
    return acc;
}

// r and z of unit j at tape row `row`, stored in the tape with h_{t−1}; returns (r, z).
fn gates_rz(d: u32, row: u32, j: u32, u: vec3<f32>, hp: f32) -> vec2<f32> {
    let xp = ly.xp_off + row * 3u * H;
    let bi = bih_off(d);
    let bh = bhh_off(d);
    let r = sigmoid(work[xp + j] + p[bi + j] + u.x + p[bh + j]);
    let z = sigmoid(work[xp + H + j] + p[bi + H + j] + u.y + p[bh + H + j]);
    let gt = ly.gt_off + row * 4u * H;
    work[gt + j] = r;
    work[gt + H + j] = z;
    work[ly.hp_off + row * H + j] = hp;
    return vec2<f32>(r, z);
}

@compute @workgroup_size(64, 1, 1)
fn fwd_ra(@builtin(global_invocation_id) gid: vec3<u32>) {
    let j = gid.x;
    let b = gid.y;
    let d = gid.z;
    if j >= H || !step_exists(j, b, d) {
        return;
    }
    let s = st.s;
    let len = lens[b];
    let ti = t_in(s, d, len);
    let hb = hprev_base(s, d, b);
    let u = recurrent(hb, d, j, true);
    let row = tape(d, ti, b);
    let hp = work[hb + j];
    let g = gates_rz(d, row, j, u, hp);
    let hn = u.z + p[bhh_off(d) + 2u * H + j];
    let n = tanh_(work[ly.xp_off + row * 3u * H + 2u * H + j] + p[bih_off(d) + 2u * H + j] + g.x * hn);
    let gt = ly.gt_off + row * 4u * H;
    work[gt + 2u * H + j] = n;
    work[gt + 3u * H + j] = hn;
    finish(s, d, b, j, t_out(s, ti), g.y * hp + (1.0 - g.y) * n);
}

@compute @workgroup_size(64, 1, 1)
fn fwd_rb_gates(@builtin(global_invocation_id) gid: vec3<u32>) {
    let j = gid.x;
    let b = gid.y;
    let d = gid.z;
    let s = st.s;
    let len = lens[b];
    if j >= H || s >= len {
        return;
    }
    let hb = hprev_base(s, d, b);
    let row = tape(d, t_in(s, d, len), b);
    let hp = work[hb + j];
    let g = gates_rz(d, row, j, recurrent(hb, d, j, false), hp);
    work[ly.gt_off + row * 4u * H + 3u * H + j] = g.x * hp;
}

@compute @workgroup_size(64, 1, 1)
fn fwd_rb_cand(@builtin(global_invocation_id) gid: vec3<u32>) {
    let j = gid.x;
    let b = gid.y;
    let d = gid.z;
    if j >= H || !step_exists(j, b, d) {
        return;
    }
    let s = st.s;
    let len = lens[b];
    let ti = t_in(s, d, len);
    let row = tape(d, ti, b);
    let gt = ly.gt_off + row * 4u * H;
    let wt = ly.wt_off + d * H * 3u * H + 2u * H + j;
    var an = 0.0;
    for (var k = 0u; k < H; k++) {
        an += work[wt + k * 3u * H] * work[gt + 3u * H + k];
    }
    let xp = ly.xp_off + row * 3u * H;
    let n = tanh_(work[xp + 2u * H + j] + p[bih_off(d) + 2u * H + j] + an + p[bhh_off(d) + 2u * H + j]);
    let z = work[gt + H + j];
    work[gt + 2u * H + j] = n;
    let hp = work[ly.hp_off + row * H + j];
    finish(s, d, b, j, t_out(s, ti), z * hp + (1.0 - z) * n);
}

// dL/dh_{s} carried into step s (processed in reverse): dL/dh_n at the last step.
fn carry(s: u32, d: u32, b: u32, j: u32) -> f32 {
    let db = (d * ly.batch + b) * H + j;
    if s == ly.steps - 1u {
        return work[ly.gs_off + db];
    }
    return work[ly.dh_off + db];
}

@compute @workgroup_size(64, 1, 1)
fn bwd_elem(@builtin(global_invocation_id) gid: vec3<u32>) {
    let j = gid.x;
    let b = gid.y;
    let d = gid.z;
    if j >= H {
        return;
    }
    let s = st.s;
    let len = lens[b];
    let db = (d * ly.batch + b) * H + j;
    let c = carry(s, d, b, j);
    if s >= len {
        work[ly.pt_off + db] = c;
        let da = ly.da_off + tape(d, s, b) * 4u * H;
        for (var g = 0u; g < 4u; g++) {
            work[da + g * H + j] = 0.0;
        }
        return;
    }
    let ti = t_in(s, d, len);
    let to = t_out(s, ti);
    let row = tape(d, ti, b);
    let dhp = c + work[ly.dy_off + (to * ly.batch + b) * ly.dirs * H + d * H + j];
    let gt = ly.gt_off + row * 4u * H;
    let r = work[gt + j];
    let z = work[gt + H + j];
    let n = work[gt + 2u * H + j];
    let h = work[ly.hp_off + row * H + j];
    let daz = dhp * (h - n) * z * (1.0 - z);
    let dan = dhp * (1.0 - z) * (1.0 - n * n);
    let da = ly.da_off + row * 4u * H;
    work[da + H + j] = daz;
    work[da + 2u * H + j] = dan;
    if RESET_AFTER {
        let hn = work[gt + 3u * H + j];
        let dr = dan * hn;
        work[da + j] = dr * r * (1.0 - r);
        work[da + 3u * H + j] = dan * r;
    } else {
        work[da + 3u * H + j] = dan;
    }
    work[ly.pt_off + db] = dhp * z;
}

// Reset-before: invocation (k, b, d) computes drh_k = Σ_j U_n[j, k]·da_n_j, then da_r_k and the
// drh ⊙ r term of dh_k.
@compute @workgroup_size(64, 1, 1)
fn bwd_mid_rb(@builtin(global_invocation_id) gid: vec3<u32>) {
    let k = gid.x;
    let b = gid.y;
    let d = gid.z;
    let s = st.s;
    let len = lens[b];
    if k >= H || s >= len {
        return;
    }
    let row = tape(d, t_in(s, d, len), b);
    let da = ly.da_off + row * 4u * H;
    let w = whh_off(d) + 2u * H * H + k;
    var drh = 0.0;
    for (var j = 0u; j < H; j++) {
        drh += p[w + j * H] * work[da + 2u * H + j];
    }
    let r = work[ly.gt_off + row * 4u * H + k];
    let h = work[ly.hp_off + row * H + k];
    let dr = drh * h;
    work[da + k] = dr * r * (1.0 - r);
    let db = (d * ly.batch + b) * H + k;
    work[ly.pt_off + db] += drh * r;
}

@compute @workgroup_size(64, 1, 1)
fn bwd_rec(@builtin(global_invocation_id) gid: vec3<u32>) {
    let k = gid.x;
    let b = gid.y;
    let d = gid.z;
    if k >= H {
        return;
    }
    let s = st.s;
    let len = lens[b];
    let db = (d * ly.batch + b) * H + k;
    var acc = work[ly.pt_off + db];
    if s < len {
        let row = tape(d, t_in(s, d, len), b);
        let da = ly.da_off + row * 4u * H;
        // W_hh row-major: consecutive k (the invocations of a workgroup) read consecutive floats.
        let w = whh_off(d) + k;
        for (var j = 0u; j < H; j++) {
            acc += p[w + j * H] * work[da + j] + p[w + (H + j) * H] * work[da + H + j];
        }
        if RESET_AFTER {
            for (var j = 0u; j < H; j++) {
                acc += p[w + (2u * H + j) * H] * work[da + 3u * H + j];
            }
        }
    }
    if s == 0u {
        work[ly.dh0_off + db] = acc;
    } else {
        work[ly.dh_off + db] = acc;
    }
}

// WT[d][k][row] = W_hh(d)[row][k]; invocation i = row·H + k over a (x, y) grid, z = d.
@compute @workgroup_size(64, 1, 1)
fn transpose_whh(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let i = gid.y * nwg.x * 64u + gid.x;
    let d = gid.z;
    if i >= 3u * H * H {
        return;
    }
    let row = i / H;
    let k = i - row * H;
    work[ly.wt_off + (d * H + k) * 3u * H + row] = p[whh_off(d) + i];
}
