// Sequence-persistent kernel (Algorithm::Sequence): one workgroup per (BS batch rows, direction)
// runs all T steps in one dispatch (per SEQ_STEPS steps on software adapters). Both variants.
// h lives in workgroup memory (ping-pong), W_hh is read transposed so that neighbouring
// invocations (neighbouring units j) read neighbouring vec4s (r, z, n, 0) of the same k.
//
// (Composed by src/gpu/wgsl.rs after the generated header and shaders/prelude.wgsl: sizes,
// uniform blocks, bindings, the cell's gate math.)

override BS: u32 = 1u;             // batch rows per workgroup (BS·H ≤ SEQ_MAX)

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
