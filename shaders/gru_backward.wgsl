// GRU training: a forward that keeps what the backward needs (the tape), and the backward (BPTT)
// recurrence, one step per dispatch. Canonical gate order r, z, n; h' = z⊙h + (1−z)⊙n. Composed
// as the generated header, `prelude.wgsl`, then this file (src/gpu/wgsl.rs).
//
// Entry points, all over one bind group layout (bindings below), one dispatch per step s (the
// s-th step in processing order), grid (⌈H/TRAIN_WG⌉, B, D): invocation (j, b, d) owns unit j of row b
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
//   XP   [T, B, D, 3H]        X_l·W_ihᵀ (no bias), by t_in: the forward's layout
//   Y_l  [T, B, D·H]          layer output, by t_out
//   HP   [D][T, B, H]         h_{t−1} of the step that read t_in
//   GT   [D][T, B, 4H]        r, z, n, and hn = U_n h + b_hn (reset-after) or r⊙h (reset-before)
//   HS   [2, D, B, HP]        forward state, ping-pong by step parity: the forward's layout
//                             (rows of HP = H rounded up to 4 floats)
//   DY   [T, B, D·H]          dL/dY_l;    DA [D][T, B, 4H]: da_r, da_z, da_n, and dhn (reset-after)
//                             or da_n (reset-before): the left factor of dU_n
//   DH   [D, B, H]            carried dL/dh;  PT [D, B, H]: its partial sum within a step
//   WT   [D][H, 3H]           this layer's W_hhᵀ (the forward reads it; the backward reads W_hh)
// llvmpipe ends an invocation after 65,535 loop iterations: no loop here runs more than 3H.

// From the prelude: H, RESET_AFTER, the step block `st` (binding 0, a dynamic offset per step),
// the lengths `lens` [B] (binding 4; a training pass has no mask), the activations f_act and
// g_act (their defaults, sigmoid and tanh, the only ones trained) and `blend`. This module's own
// bindings follow the prelude's 0–8.
@group(0) @binding(9) var<uniform> tl: TrainLayer;              // dynamic offset per layer
@group(0) @binding(10) var<storage, read> p: array<f32>;        // parameters
@group(0) @binding(11) var<storage, read_write> work: array<f32>;

// Floats per row of the state ping-pong, HP: H rounded up to 4, as the forward pads them.
fn hs_row() -> u32 {
    return (H + 3u) / 4u * 4u;
}

fn cell_off(d: u32) -> u32 {
    return select(tl.p0, tl.p1, d == 1u);
}
fn whh_off(d: u32) -> u32 { return cell_off(d) + 3u * H * tl.in_w; }
fn bih_off(d: u32) -> u32 { return whh_off(d) + 3u * H * H; }
fn bhh_off(d: u32) -> u32 { return bih_off(d) + 3u * H; }

fn tape(d: u32, t: u32, b: u32) -> u32 {
    return (d * tl.steps + t) * tl.batch + b;
}

// Time index read by step s of row b in direction d (s < len), and written (the prelude's rule).
fn t_in(s: u32, d: u32, len: u32) -> u32 {
    return time_in(s, len, tl.steps, ((tl.rev_mask >> d) & 1u) == 1u, tl.go_back == 1u);
}

fn t_out(s: u32, ti: u32) -> u32 {
    return time_out(s, ti, tl.go_back == 1u);
}

// First float of h_{s−1} of (d, b): h0 at step 0, else the ping-pong half step s−1 wrote (the
// prelude's `pingpong`, with the forward's rows of HP floats).
fn hprev_base(s: u32, d: u32, b: u32) -> u32 {
    if s == 0u {
        return tl.h0_off + (d * tl.batch + b) * H;
    }
    return pingpong(tl.hs_off, s, false, tl.dirs, tl.batch, hs_row(), d, b);
}

fn hnext_base(s: u32, d: u32, b: u32) -> u32 {
    return pingpong(tl.hs_off, s, true, tl.dirs, tl.batch, hs_row(), d, b);
}

fn out_index(t: u32, b: u32, d: u32, j: u32) -> u32 {
    return tl.y_off + (t * tl.batch + b) * tl.dirs * H + d * H + j;
}

// A step that does not exist (s ≥ len): the state passes through; the output, tape and the
// h_n slot at the last step are written.
fn pass_through(s: u32, d: u32, b: u32, j: u32) {
    let h = work[hprev_base(s, d, b) + j];
    work[hnext_base(s, d, b) + j] = h;
    if s == tl.steps - 1u {
        work[tl.hn_off + (d * tl.batch + b) * H + j] = h;
    }
    let row = tape(d, s, b);
    work[out_index(s, b, d, j)] = 0.0;
    work[tl.hp_off + row * H + j] = 0.0;
    for (var g = 0u; g < 4u; g++) {
        work[tl.gt_off + row * 4u * H + g * H + j] = 0.0;
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
    if s == tl.steps - 1u {
        work[tl.hn_off + (d * tl.batch + b) * H + j] = h;
    }
    work[out_index(to, b, d, j)] = h;
}

// U_r·h, U_z·h and (with `with_n`) U_n·h for unit j, h read from `work` at `hb`. W_hh is read
// transposed (WT), so that the invocations of a workgroup (consecutive j) read consecutive floats.
fn recurrent(hb: u32, d: u32, j: u32, with_n: bool) -> vec3<f32> {
    let wt = tl.wt_off + d * H * 3u * H + j;
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

// r and z of unit j of slot q, stored in the tape with h_{t−1}; returns (r, z).
fn gates_rz(q: Slot, uh: vec3<f32>, hprev: f32) -> vec2<f32> {
    let d = q.d;
    let j = q.j;
    let row = q.row;
    let xb = xp_base(q);
    let bi = bih_off(d);
    let bh = bhh_off(d);
    let r = f_act(d, work[xb + j] + p[bi + j] + uh.x + p[bh + j]);
    let z = f_act(d, work[xb + H + j] + p[bi + H + j] + uh.y + p[bh + H + j]);
    let gt = tl.gt_off + row * 4u * H;
    work[gt + j] = r;
    work[gt + H + j] = z;
    work[tl.hp_off + row * H + j] = hprev;
    return vec2<f32>(r, z);
}

// Invocation (j, b, d) of a step kernel at step s = st.s; ti, the time index it reads, is
// meaningful where the step exists (s < len).
struct Slot {
    j: u32,
    b: u32,
    d: u32,
    s: u32,
    len: u32,
    ti: u32,
    row: u32,   // tape(d, ti, b)
}

// First float of slot q's input projection [3H] in XP [T, B, D, 3H].
fn xp_base(q: Slot) -> u32 {
    return tl.xp_off + ((q.ti * tl.batch + q.b) * tl.dirs + q.d) * 3u * H;
}

fn slot(gid: vec3<u32>) -> Slot {
    let len = lens[gid.y];
    let ti = t_in(min(st.s, len - 1u), gid.z, len);
    return Slot(gid.x, gid.y, gid.z, st.s, len, ti, tape(gid.z, ti, gid.y));
}

@compute @workgroup_size(TRAIN_WG, 1, 1)
fn fwd_ra(@builtin(global_invocation_id) gid: vec3<u32>) {
    let q = slot(gid);
    if q.j >= H || !step_exists(q.j, q.b, q.d) {
        return;
    }
    let hb = hprev_base(q.s, q.d, q.b);
    let uh = recurrent(hb, q.d, q.j, true);
    let row = q.row;
    let hprev = work[hb + q.j];
    let g = gates_rz(q, uh, hprev);
    let hn = uh.z + p[bhh_off(q.d) + 2u * H + q.j];
    let n = g_act(q.d, work[xp_base(q) + 2u * H + q.j] + p[bih_off(q.d) + 2u * H + q.j] + g.x * hn);
    let gt = tl.gt_off + row * 4u * H;
    work[gt + 2u * H + q.j] = n;
    work[gt + 3u * H + q.j] = hn;
    finish(q.s, q.d, q.b, q.j, t_out(q.s, q.ti), blend(g.y, hprev, n));
}

@compute @workgroup_size(TRAIN_WG, 1, 1)
fn fwd_rb_gates(@builtin(global_invocation_id) gid: vec3<u32>) {
    let q = slot(gid);
    if q.j >= H || q.s >= q.len {
        return;
    }
    let hb = hprev_base(q.s, q.d, q.b);
    let row = q.row;
    let hprev = work[hb + q.j];
    let g = gates_rz(q, recurrent(hb, q.d, q.j, false), hprev);
    work[tl.gt_off + row * 4u * H + 3u * H + q.j] = g.x * hprev;
}

@compute @workgroup_size(TRAIN_WG, 1, 1)
fn fwd_rb_cand(@builtin(global_invocation_id) gid: vec3<u32>) {
    let q = slot(gid);
    if q.j >= H || !step_exists(q.j, q.b, q.d) {
        return;
    }
    let row = q.row;
    let gt = tl.gt_off + row * 4u * H;
    let wt = tl.wt_off + q.d * H * 3u * H + 2u * H + q.j;
    var an = 0.0;
    for (var k = 0u; k < H; k++) {
        an += work[wt + k * 3u * H] * work[gt + 3u * H + k];
    }
    let xb = xp_base(q);
    let n = g_act(q.d, work[xb + 2u * H + q.j] + p[bih_off(q.d) + 2u * H + q.j] + an + p[bhh_off(q.d) + 2u * H + q.j]);
    let z = work[gt + H + q.j];
    work[gt + 2u * H + q.j] = n;
    let hprev = work[tl.hp_off + row * H + q.j];
    finish(q.s, q.d, q.b, q.j, t_out(q.s, q.ti), blend(z, hprev, n));
}

// dL/dh_{s} carried into step s (processed in reverse): dL/dh_n at the last step.
fn carry(s: u32, d: u32, b: u32, j: u32) -> f32 {
    let db = (d * tl.batch + b) * H + j;
    if s == tl.steps - 1u {
        return work[tl.gs_off + db];
    }
    return work[tl.dh_off + db];
}

@compute @workgroup_size(TRAIN_WG, 1, 1)
fn bwd_elem(@builtin(global_invocation_id) gid: vec3<u32>) {
    let q = slot(gid);
    if q.j >= H {
        return;
    }
    let db = (q.d * tl.batch + q.b) * H + q.j;
    let c = carry(q.s, q.d, q.b, q.j);
    if q.s >= q.len {
        work[tl.pt_off + db] = c;
        let da = tl.da_off + tape(q.d, q.s, q.b) * 4u * H;
        for (var g = 0u; g < 4u; g++) {
            work[da + g * H + q.j] = 0.0;
        }
        return;
    }
    let to = t_out(q.s, q.ti);
    let row = q.row;
    let dhp = c + work[tl.dy_off + (to * tl.batch + q.b) * tl.dirs * H + q.d * H + q.j];
    let gt = tl.gt_off + row * 4u * H;
    let r = work[gt + q.j];
    let z = work[gt + H + q.j];
    let n = work[gt + 2u * H + q.j];
    let h = work[tl.hp_off + row * H + q.j];
    let daz = dhp * (h - n) * z * (1.0 - z);
    let dan = dhp * (1.0 - z) * (1.0 - n * n);
    let da = tl.da_off + row * 4u * H;
    work[da + H + q.j] = daz;
    work[da + 2u * H + q.j] = dan;
    if RESET_AFTER {
        let hn = work[gt + 3u * H + q.j];
        let dr = dan * hn;
        work[da + q.j] = dr * r * (1.0 - r);
        work[da + 3u * H + q.j] = dan * r;
    } else {
        work[da + 3u * H + q.j] = dan;
    }
    work[tl.pt_off + db] = dhp * z;
}

// Reset-before: invocation (k, b, d) computes drh_k = Σ_j U_n[j, k]·da_n_j, then da_r_k and the
// drh ⊙ r term of dh_k.
@compute @workgroup_size(TRAIN_WG, 1, 1)
fn bwd_mid_rb(@builtin(global_invocation_id) gid: vec3<u32>) {
    let q = slot(gid);
    if q.j >= H || q.s >= q.len {
        return;
    }
    let row = q.row;
    let da = tl.da_off + row * 4u * H;
    let w = whh_off(q.d) + 2u * H * H + q.j;
    var drh = 0.0;
    for (var j = 0u; j < H; j++) {
        drh += p[w + j * H] * work[da + 2u * H + j];
    }
    let r = work[tl.gt_off + row * 4u * H + q.j];
    let h = work[tl.hp_off + row * H + q.j];
    let dr = drh * h;
    work[da + q.j] = dr * r * (1.0 - r);
    let db = (q.d * tl.batch + q.b) * H + q.j;
    work[tl.pt_off + db] += drh * r;
}

@compute @workgroup_size(TRAIN_WG, 1, 1)
fn bwd_rec(@builtin(global_invocation_id) gid: vec3<u32>) {
    let q = slot(gid);
    if q.j >= H {
        return;
    }
    let db = (q.d * tl.batch + q.b) * H + q.j;
    var acc = work[tl.pt_off + db];
    if q.s < q.len {
        let row = q.row;
        let da = tl.da_off + row * 4u * H;
        // W_hh row-major: consecutive units (the invocations of a workgroup) read consecutive floats.
        let w = whh_off(q.d) + q.j;
        for (var j = 0u; j < H; j++) {
            acc += p[w + j * H] * work[da + j] + p[w + (H + j) * H] * work[da + H + j];
        }
        if RESET_AFTER {
            for (var j = 0u; j < H; j++) {
                acc += p[w + (2u * H + j) * H] * work[da + 3u * H + j];
            }
        }
    }
    if q.s == 0u {
        work[tl.dh0_off + db] = acc;
    } else {
        work[tl.dh_off + db] = acc;
    }
}

// WT[d][k][row] = W_hh(d)[row][k]; invocation i = row·H + k over a (x, y) grid, z = d.
@compute @workgroup_size(TRAIN_WG, 1, 1)
fn transpose_whh(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let i = gid.y * nwg.x * TRAIN_WG + gid.x;
    let d = gid.z;
    if i >= 3u * H * H {
        return;
    }
    let row = i / H;
    let k = i - row * H;
    work[tl.wt_off + (d * H + k) * 3u * H + row] = p[whh_off(d) + i];
}
