// GEMM-tiled per-step kernels for larger batches.
//
// (Composed by src/gpu/wgsl.rs after the generated header and shaders/prelude.wgsl: sizes,
// uniform blocks, bindings, the cell's gate math.)

// GEMM-tiled per-step kernels for larger batches (Algorithm::Tiled): one timestep per dispatch,
// like `step.wgsl`'s kernels, over the same bind group layout and uniforms.
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
//
// (Composed by src/gpu/wgsl.rs after the generated header and shaders/prelude.wgsl: sizes,
// uniform blocks, bindings, the cell's gate math.)

override RPI: u32 = 4u;            // batch rows per invocation (1, 2 or 4)
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
