// Register-resident sequence kernel with subgroup shuffles, for adapters with
// `Features::SUBGROUP`: as `sequence_regs.wgsl` (the body is `regs.wgsl`, composed before this
// file), with `slice_sum` through `subgroupShuffleXor`: one barrier per step (reset-after)
// instead of two.
//
// Invocations take their roles from (subgroup_id, subgroup_invocation_id), never from
// local_invocation_index, so nothing assumes how an implementation lays subgroups out.
// Subgroup operations are only reached in subgroup-uniform control flow.
//
// No `enable subgroups;` directive: naga 30 (wgpu 30's compiler) rejects it as not yet
// implemented and instead gates the subgroup builtins on the device's SUBGROUP capability.
//
// (Composed by src/gpu/wgsl.rs after the generated header and shaders/prelude.wgsl: sizes,
// uniform blocks, bindings, the cell's gate math.)

// Register-resident sequence kernel (`regs.wgsl`), its K-slices summed by `subgroupShuffleXor`
// instead of workgroup memory: one barrier per step (reset-after) instead of two. Role
// t = subgroup_id · subgroup_size + subgroup_invocation_id. KS is a power of two no larger than
// the adapter's smallest subgroup (the host checks), so a unit's slices are KS neighbouring lanes
// of one subgroup and shuffles over the low bits sum them.

fn slice_sum(t: u32, v: vec3<f32>) -> vec3<f32> {
    var a = v;
    for (var o = 1u; o < KS; o <<= 1u) { a += subgroupShuffleXor(a, o); }
    return a;
}

@compute @workgroup_size(WG, 1, 1)
fn sequence_regs_sg(
    @builtin(subgroup_id) sgid: u32,
    @builtin(subgroup_invocation_id) lane: u32,
    @builtin(subgroup_size) sg: u32,
    @builtin(local_invocation_index) lid: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
) {
    regs_run(sgid * sg + lane, lid, wid.z, wid.x);
}
