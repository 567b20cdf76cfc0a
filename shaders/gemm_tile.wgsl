// The GEMM tile of `input_proj.wgsl` and `train_gemm.wgsl`: a workgroup of TILE4 × TILE4
// invocations owns GEMM_TILE × GEMM_TILE outputs, 4×4 of them per invocation in registers, over
// K-stages of GEMM_KT columns staged in workgroup memory.

const TILE: u32 = GEMM_TILE;
const KT: u32 = GEMM_KT;
const TILE4: u32 = GEMM_TILE / 4u;

// [KT][TILE4] vec4s: column blocks of 4 rows of the left operand, or 4 columns of the right one,
// so the inner loop reads one vec4 per operand.
var<workgroup> tile_l: array<vec4<f32>, GEMM_KT * TILE4>;
var<workgroup> tile_r: array<vec4<f32>, GEMM_KT * TILE4>;

// Stages element (kk, i) of this K-stage: left row i, right column i.
fn stage(kk: u32, i: u32, lv: f32, rv: f32) {
    tile_l[kk * TILE4 + i / 4u][i % 4u] = lv;
    tile_r[kk * TILE4 + i / 4u][i % 4u] = rv;
}

// Multiplies the staged K-stage into the 4×4 outputs of invocation (x, y): rows 4y.., columns
// 4x... Every invocation of the workgroup calls it (barriers before and after).
fn tile_mac(acc: ptr<function, array<vec4<f32>, 4>>, x: u32, y: u32) {
    workgroupBarrier();
    for (var kk = 0u; kk < KT; kk++) {
        let lv = tile_l[kk * TILE4 + y];
        let rv = tile_r[kk * TILE4 + x];
        (*acc)[0] += lv.x * rv;
        (*acc)[1] += lv.y * rv;
        (*acc)[2] += lv.z * rv;
        (*acc)[3] += lv.w * rv;
    }
    workgroupBarrier();
}
