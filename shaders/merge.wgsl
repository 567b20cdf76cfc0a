// Bidirectional merge: the forward and backward halves of a two-direction GRU's output, combined
// as Keras's merge_mode does, into one contiguous array the next layer reads.
//
// The halves are each [N, H]: the forward one at src[src_off + n · row_stride + j], the backward
// one `dir_stride` floats further. So the same entry point serves
// - a sequence output [B, T, 2H] (N = B·T, row_stride = 2H, dir_stride = H), and
// - a final state h_n [2, B, H]    (N = B,   row_stride = H,  dir_stride = B·H).
//
// One invocation per output value; the grid may be 2-D (x, y), the flat index rebuilt from
// `num_workgroups`, so no invocation loops.

override MODE: u32 = MERGE_CONCAT;  // the merge mode's code (`Merge` in src/gpu/merge.rs)

@group(0) @binding(0) var<uniform> p: MergeParams;
@group(0) @binding(1) var<storage, read> src: array<f32>;         // halves [N, H], as above
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;   // [N, 2H] (concat) or [N, H]

@compute @workgroup_size(MERGE_WG, 1, 1)
fn merge(
    @builtin(local_invocation_index) lid: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let i = (wid.y * nwg.x + wid.x) * MERGE_WG + lid;
    let width = select(p.h, 2u * p.h, MODE == MERGE_CONCAT);
    if (i >= p.rows * width) { return; }
    let n = i / width;
    let j = i - n * width;
    let fwd = p.src_off + n * p.row_stride;
    if (MODE == MERGE_CONCAT) {
        // j < H: forward unit j; else backward unit j − H.
        let half = select(0u, 1u, j >= p.h);
        dst[i] = src[fwd + half * p.dir_stride + j - half * p.h];
        return;
    }
    let a = src[fwd + j];
    let b = src[fwd + p.dir_stride + j];
    switch MODE {
        case MERGE_SUM: { dst[i] = a + b; }
        case MERGE_AVE: { dst[i] = (a + b) * 0.5; }
        default: { dst[i] = a * b; }  // MERGE_MUL
    }
}
