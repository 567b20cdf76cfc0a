// Per-step recurrence kernels: one dispatch per timestep (reset-after), or two (reset-before).
// Canonical gate order r, z, n; h' = z⊙h + (1−z)⊙n.
//
// - `step_fused`:     reset-after: one pass over W_hh gives r, z, n; then h_t.
// - `step_gates`:     reset-before, half 1: z and r⊙h.
// - `step_candidate`: reset-before, half 2: n from U_n·(r⊙h), then h_t.
//
// Per step s, row b of direction d runs at time t = s (forward), len_b−1−s (reverse) or
// T−1−s (go_backwards, output at s). Steps past a row's length carry h and write 0 to y.
// `grid.wgsl` runs these steps' work (`step_at`) in one dispatch.
//
// (Composed by src/gpu/wgsl.rs after the generated header and shaders/prelude.wgsl: sizes,
// uniform blocks, bindings, the cell's gate math.)

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
