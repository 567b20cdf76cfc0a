// The GRU recurrence. Canonical gate order r, z, n; h' = z⊙h + (1−z)⊙n.
//
// Entry points, all over one bind group layout:
// - `grid`:           a chunk of steps in one dispatch by workgroups that wait for each other
//                     between steps (issue 11); the step kernels' work, bounded waits.
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

// (The generated header, shaders/prelude.wgsl and shaders/regs.wgsl come first: sizes, uniform
// blocks, bindings, the cell's gate math, the register kernels' body.)

// ---------------------------------------------------------------------------------------------
// Per-step kernels: a workgroup owns STEP_UNITS hidden units × STEP_ROWS batch rows of one
// direction. LANES lanes split K, so each W_hh row is read once per workgroup (vec4 loads) for all of its batch rows.

const LANES: u32 = STEP_WG / STEP_UNITS;
var<workgroup> red: array<f32, STEP_UNITS * STEP_ROWS * 3u * LANES>;  // [units][rows][3 gates][LANES]
var<workgroup> pre: array<f32, STEP_UNITS * STEP_ROWS * 3u>;          // [units][rows][3 gates] reduced

// Accumulates `ngates` rows of W_hh (starting at gate `g0`) against h_{t-1} (or r⊙h when `use_rh`),
// reduces over lanes, and leaves the sums in `pre`.
fn matvec(s: u32, lid: u32, wid: vec3<u32>, g0: u32, ngates: u32, use_rh: bool) {
    let unit = lid / LANES;
    let lane = lid % LANES;
    let j = wid.x * STEP_UNITS + unit;
    let d = wid.z;
    let b0 = wid.y * STEP_ROWS;
    let acc = matvec_lane(s, lane, LANES, j, d, b0, g0, ngates, use_rh);
    for (var bb = 0u; bb < STEP_ROWS; bb++) {
        for (var g = 0u; g < 3u; g++) {
            red[((unit * STEP_ROWS + bb) * 3u + g) * LANES + lane] = acc[bb][g];
        }
    }
    workgroupBarrier();
    if (lid < STEP_UNITS * STEP_ROWS * 3u) {
        var sum = 0.0;
        for (var l = 0u; l < LANES; l++) { sum += red[lid * LANES + l]; }
        pre[lid] = sum;
    }
    workgroupBarrier();
}

// The (hidden unit, batch row) an invocation of a step kernel finishes after `matvec`.
struct StepSlot {
    unit: u32,
    bb: u32,
    j: u32,
    b: u32,
    d: u32,
    live: bool,
}

fn step_slot(lid: u32, wid: vec3<u32>) -> StepSlot {
    var q: StepSlot;
    q.unit = lid / STEP_ROWS;
    q.bb = lid % STEP_ROWS;
    q.j = wid.x * STEP_UNITS + q.unit;
    q.b = wid.y * STEP_ROWS + q.bb;
    q.d = wid.z;
    q.live = lid < STEP_UNITS * STEP_ROWS && q.j < H && q.b < ly.batch;
    return q;
}

fn step(kind: u32, lid: u32, wid: vec3<u32>) {
    step_at(kind, st.s, lid, wid);
}

// The work of step kernel workgroup `wid` of `kind` at step s.
fn step_at(kind: u32, s: u32, lid: u32, wid: vec3<u32>) {
    let rows = step_rows(kind);
    matvec(s, lid, wid, rows.x, rows.y, rows.z == 1u);
    let q = step_slot(lid, wid);
    if (!q.live) { return; }
    let pi = (q.unit * STEP_ROWS + q.bb) * 3u;
    finish_step(kind, s, q.d, q.b, q.j, vec3<f32>(pre[pi], pre[pi + 1u], pre[pi + 2u]));
}

@compute @workgroup_size(STEP_WG, 1, 1)
fn step_fused(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
    step(0u, lid, wid);
}

@compute @workgroup_size(STEP_WG, 1, 1)
fn step_gates(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
    step(1u, lid, wid);
}

@compute @workgroup_size(STEP_WG, 1, 1)
fn step_candidate(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
    step(2u, lid, wid);
}

// ---------------------------------------------------------------------------------------------
// Sequence-persistent kernel: one workgroup per (BS batch rows, direction) runs all T steps.
// h lives in workgroup memory (ping-pong), W_hh is read transposed so that neighbouring
// invocations (neighbouring units j) read neighbouring vec4s (r, z, n, 0) of the same k.

var<workgroup> hs: array<f32, 2u * SEQ_MAX>;  // [2][BS][H] ping-pong (BS·H ≤ SEQ_MAX)
var<workgroup> rhs: array<f32, SEQ_MAX>;      // [BS][H] r⊙h (reset-before)

@compute @workgroup_size(SEQ_WG, 1, 1)
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
                var acc: array<vec3<f32>, SEQ_MAX_ROWS>;
                for (var bb = 0u; bb < BS; bb++) { acc[bb] = vec3<f32>(0.0); }
                for (var k = 0u; k < H; k++) {
                    let w = u4(ut + k * H + j).xyz;
                    for (var bb = 0u; bb < BS; bb++) { acc[bb] += w * hs[cur + bb * H + k]; }
                }
                for (var bb = 0u; bb < nb; bb++) {
                    let b = b0 + bb;
                    let pos = position(s, d, b);
                    let hnew = after_or_hold(pos.valid, d, xp3(pos, d, b, j), acc[bb], bhh3(d, j), hs[cur + bb * H + j]);
                    hs[nxt + bb * H + j] = hnew;
                    seq_emit(s, pos, d, b, j, hnew);
                }
            }
        } else {
            // Half 1: r and z; r⊙h to workgroup memory, z to this invocation's slot in `zr`.
            for (var j = lid; j < H; j += SEQ_WG) {
                var acc: array<vec2<f32>, SEQ_MAX_ROWS>;
                for (var bb = 0u; bb < BS; bb++) { acc[bb] = vec2<f32>(0.0); }
                for (var k = 0u; k < H; k++) {
                    let w = u4(ut + k * H + j).xy;
                    for (var bb = 0u; bb < BS; bb++) { acc[bb] += w * hs[cur + bb * H + k]; }
                }
                for (var bb = 0u; bb < nb; bb++) {
                    let b = b0 + bb;
                    let pos = position(s, d, b);
                    var r = 0.0;
                    var z = 1.0;
                    if (pos.valid) {
                        let rz = gates_before(d, xp_rz(pos, d, b, j), acc[bb], bhh_rz(d, j));
                        r = rz.x;
                        z = rz.y;
                    }
                    rhs[bb * H + j] = r * hs[cur + bb * H + j];
                    set_z(d, b, j, z);
                }
            }
            workgroupBarrier();
            // Half 2: the candidate from U_n·(r⊙h), then h_t.
            for (var j = lid; j < H; j += SEQ_WG) {
                var acc: array<f32, SEQ_MAX_ROWS>;
                for (var bb = 0u; bb < BS; bb++) { acc[bb] = 0.0; }
                for (var k = 0u; k < H; k++) {
                    let w = u4(ut + k * H + j).z;
                    for (var bb = 0u; bb < BS; bb++) { acc[bb] += w * rhs[bb * H + k]; }
                }
                for (var bb = 0u; bb < nb; bb++) {
                    let b = b0 + bb;
                    let pos = position(s, d, b);
                    let xn = xp_at(pos, d, b, 2u * H + j);
                    let hnew = before_or_hold(pos.valid, d, xn, acc[bb], bhh(d, 2u * H + j), get_z(d, b, j), hs[cur + bb * H + j]);
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
// Register-resident sequence kernel (`regs.wgsl`), its K-slices summed through workgroup memory:
// two barriers per step (reset-after).

var<workgroup> part_r: array<f32, REGS_MAX_WG>;   // [WG] partial sums, gate r (or n in half 2)
var<workgroup> part_z: array<f32, REGS_MAX_WG>;   // [WG] gate z
var<workgroup> part_n: array<f32, REGS_MAX_WG>;   // [WG] gate n

fn slice_sum(t: u32, v: vec3<f32>) -> vec3<f32> {
    part_r[t] = v.x;
    part_z[t] = v.y;
    part_n[t] = v.z;
    workgroupBarrier();
    var sum = vec3<f32>(0.0);
    if (t % KS == 0u && t / KS < H) {
        sum = vec3<f32>(part_r[t], part_z[t], part_n[t]);
        for (var q = 1u; q < KS; q++) { sum += vec3<f32>(part_r[t + q], part_z[t + q], part_n[t + q]); }
    }
    return sum;
}

@compute @workgroup_size(WG, 1, 1)
fn sequence_regs(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
    regs_run(lid, lid, wid.z, wid.x);
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


const TU: u32 = TILED_UNITS;   // hidden units per tile (workgroup_size.x)
const TG: u32 = TILED_GROUPS;  // row groups per tile (workgroup_size.y); tile rows = TG·RPI
const TILE_WG: u32 = TU * TG;  // invocations
const K4T: u32 = 8u;      // K-step in vec4s: 32 columns of W_hh per stage
// vec4s per U row in workgroup memory: K4T + 1, so that the 8 neighbouring units a quarter-warp
// reads (16-byte loads) fall in distinct banks (a stride of 8 vec4s would be an 8-way conflict).
const US_ROW: u32 = 9u;

var<workgroup> ths: array<vec4<f32>, TG * TILED_MAX_RPI * K4T>;  // [TG·RPI rows][K4T] h_{t−1} (or r⊙h), this K-step
var<workgroup> tus: array<vec4<f32>, 3u * TU * US_ROW>;  // [3 gates][TU units][US_ROW] W_hh rows, this K-step

// Per row of this invocation (index r: tile row y + TG·r), the three gates' partial dot products
// in 4 K-lanes. With `ngates` < 3 the first gates are used (acc_a for gate g0).
var<private> acc_a: array<vec4<f32>, TILED_MAX_RPI>;
var<private> acc_b: array<vec4<f32>, TILED_MAX_RPI>;
var<private> acc_c: array<vec4<f32>, TILED_MAX_RPI>;
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
        return rh_prev4(d, b, k4);
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
    return u4((d * 3u * H + g * H + j) * ly.hp4 + k4);
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
    for (var r = 0u; r < TILED_MAX_RPI; r++) {
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

// A tiled step kernel of `kind` (as `finish_step`): the tile's GEMM, then each of this
// invocation's rows finished in registers.
fn tiled(kind: u32, x: u32, y: u32, lid: u32, wid: vec3<u32>) {
    let s = st.s;
    let d = wid.z;
    let j0 = wid.x * TU;
    let b0 = wid.y * TG * RPI;
    let rows = step_rows(kind);
    tile_matmul(s, lid, x, y, d, b0, j0, rows.x, rows.y, rows.z == 1u);
    let j = j0 + x;
    if (j >= H) { return; }
    for (var r = 0u; r < RPI; r++) {
        let b = b0 + y + TG * r;
        if (b >= ly.batch) { break; }
        finish_step(kind, s, d, b, j, vec3<f32>(hsum(acc_a[r]), hsum(acc_b[r]), hsum(acc_c[r])));
    }
}

// The tiled kernels' builtins.
struct TileIds {
    @builtin(local_invocation_id) l3: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
}

@compute @workgroup_size(TU, TG, 1)
fn tiled_fused(ids: TileIds) {
    tiled(0u, ids.l3.x, ids.l3.y, ids.lid, ids.wid);
}

@compute @workgroup_size(TU, TG, 1)
fn tiled_gates(ids: TileIds) {
    tiled(1u, ids.l3.x, ids.l3.y, ids.lid, ids.wid);
}

@compute @workgroup_size(TU, TG, 1)
fn tiled_candidate(ids: TileIds) {
    tiled(2u, ids.l3.x, ids.l3.y, ids.lid, ids.wid);
}

// ---------------------------------------------------------------------------------------------
// Grid-wide persistent kernel: GRID_WGS workgroups run every step of a chunk of steps (from the
// dynamic step offset to `seq_end`) in one dispatch. Each does the work of the step kernels'
// workgroups v = wid.x, wid.x + GRID_WGS, … and then waits for all the others on a storage-buffer
// counter before the next step (or phase: reset-before has two). WGSL promises no forward
// progress between workgroups, so every wait is bounded: a workgroup that polls SPIN times in
// vain raises its attempt's flag, and every workgroup that sees it stops. The host records
// three attempts per chunk (pipelines ATTEMPT = 0, 1, 2): two with GRID_WGS workgroups, each
// continuing from the last step that every workgroup finished (`done`), and one with a single
// workgroup, which waits for nobody and so always finishes. An attempt that finds the chunk done
// returns at once. Restarting a step is safe: it reads h_{s−1}, which no workgroup overwrites
// before every workgroup has finished step s, and the half it writes is rewritten whole.

override GRID_WGS: u32 = 1u;   // workgroups of this attempt
override ATTEMPT: u32 = 0u;    // 0, 1: GRID_WGS workgroups; 2: one
override SPIN: u32 = 1000u;    // polls per wait at most

// Per layer at ly.sync_off: [done] ++ per (chunk, attempt) [arrivals, failed]; zeroed per forward.
@group(0) @binding(9) var<storage, read_write> sync: array<atomic<u32>>;

var<workgroup> grid_word: u32;

// Arrives at the attempt's counter (slot) and waits, bounded, until `wanted` have arrived.
// False, for the whole workgroup, when the wait failed here or elsewhere.
fn grid_wait(lid: u32, slot: u32, wanted: u32) -> bool {
    storageBarrier();
    workgroupBarrier();
    if (lid == 0u) {
        atomicAdd(&sync[slot], 1u);
        var ok = 0u;
        for (var i = 0u; i < SPIN; i++) {
            if (atomicLoad(&sync[slot + 1u]) != 0u) { break; }
            if (atomicLoad(&sync[slot]) >= wanted) {
                ok = 1u;
                break;
            }
        }
        if (ok == 0u) { atomicStore(&sync[slot + 1u], 1u); }
        grid_word = ok;
    }
    return workgroupUniformLoad(&grid_word) == 1u;
}

@compute @workgroup_size(STEP_WG, 1, 1)
fn grid(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
    let first = st.s;
    let end = seq_end(first);
    let chunk = select(0u, first / max(SEQ_STEPS, 1u), SEQ_STEPS > 0u);
    let slot = ly.sync_off + 1u + (chunk * 3u + ATTEMPT) * 2u;
    if (lid == 0u) { grid_word = max(first, atomicLoad(&sync[ly.sync_off])); }
    let start = workgroupUniformLoad(&grid_word);
    let gx = (H + STEP_UNITS - 1u) / STEP_UNITS;
    let gy = (ly.batch + STEP_ROWS - 1u) / STEP_ROWS;
    let nv = gx * gy * ly.dirs;
    let phases = select(2u, 1u, RESET_AFTER);
    var waits = 0u;
    for (var s = start; s < end; s++) {
        for (var phase = 0u; phase < phases; phase++) {
            let kind = select(1u + phase, 0u, RESET_AFTER);
            for (var v = wid.x; v < nv; v += GRID_WGS) {
                step_at(kind, s, lid, vec3<u32>(v % gx, (v / gx) % gy, v / (gx * gy)));
            }
            waits += 1u;
            if (!grid_wait(lid, slot, waits * GRID_WGS)) { return; }
        }
        if (lid == 0u) { atomicMax(&sync[ly.sync_off], s + 1u); }
    }
}
