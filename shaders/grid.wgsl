// Grid-wide persistent kernel (issue 11, Algorithm::Grid).
//
// (Composed by src/gpu/wgsl.rs after the generated header, shaders/prelude.wgsl and
// shaders/step.wgsl, whose `step_at` each workgroup runs for the steps' virtual workgroups.)
//
// GRID_WGS workgroups run every step of a chunk of steps (from the
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
