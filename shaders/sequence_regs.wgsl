// Register-resident sequence kernel (H ≤ REGS_MAX_H, portable): all T steps in one dispatch
// with W_hh in registers. The body is `regs.wgsl` (composed before this file); this file
// defines its `slice_sum`, through workgroup memory: two barriers per step (reset-after).
// `sequence_regs_subgroup.wgsl` is the same kernel with subgroup shuffles.
//
// (Composed by src/gpu/wgsl.rs after the generated header and shaders/prelude.wgsl: sizes,
// uniform blocks, bindings, the cell's gate math.)

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
