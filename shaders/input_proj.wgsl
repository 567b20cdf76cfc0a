// Input projection for all T·B rows at once: C = A·Wᵀ + bias.
//
// A row m is the input at (t, b) = (m / ROWS_PER_T, m % ROWS_PER_T), read with strides so that
// time-major, batch-first and previous-layer outputs need no copy. Tiles of 64×64 outputs,
// 16 K-columns per stage in workgroup memory, 4×4 outputs per invocation in registers.

@group(0) @binding(0) var<uniform> p: ProjParams;
@group(0) @binding(1) var<storage, read> a: array<f32>;        // [T, B, K] via strides
@group(0) @binding(2) var<storage, read> w: array<wt>;         // [N, K] row-major (f32 or f16)
@group(0) @binding(3) var<storage, read> bias: array<f32>;     // [N]
@group(0) @binding(4) var<storage, read_write> c: array<f32>;  // [M, N] row-major
@group(0) @binding(5) var<uniform> chunk: Chunk;              // dynamic offset: this dispatch's K-chunk

// K-columns per dispatch (0: all K). Where a driver caps the loop iterations of one invocation
// (Mesa's llvmpipe: 65,535, shared by all loops) the host splits K over dispatches: chunk 0 writes
// A·Wᵀ + bias over its columns, each later chunk adds its columns to C.
override K_CHUNK: u32 = 0u;

fn a_index(m: u32, kk: u32) -> u32 {
    let t = m / p.rows_per_t;
    let b = m - t * p.rows_per_t;
    return p.a_off + t * p.a_st + b * p.a_sb + kk;
}

@compute @workgroup_size(TILE4, TILE4, 1)
fn main(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let row0 = wid.y * TILE;
    let col0 = wid.x * TILE;
    var acc: array<vec4<f32>, 4>;
    for (var i = 0u; i < 4u; i++) { acc[i] = vec4<f32>(0.0); }

    // Each invocation stages 4 elements of each tile: row = li / 4 (0..63), k = (li % 4) * 4 + e.
    let lr = li / 4u;
    let lk = (li % 4u) * 4u;
    var k_begin = 0u;
    var k_end = p.k;
    if (K_CHUNK > 0u) {
        k_begin = chunk.i * K_CHUNK;
        k_end = min(p.k, k_begin + K_CHUNK);
    }
    for (var k0 = k_begin; k0 < k_end; k0 += KT) {
        for (var e = 0u; e < 4u; e++) {
            let kk = k0 + lk + e;
            let m = row0 + lr;
            let nn = col0 + lr;
            var av = 0.0;
            var wv = 0.0;
            if (m < p.m && kk < k_end) { av = a[a_index(m, kk)]; }
            if (nn < p.n && kk < k_end) { wv = f32(w[nn * p.k + kk]); }
            stage(lk + e, lr, av, wv);
        }
        tile_mac(&acc, lid.x, lid.y);
    }
    for (var i = 0u; i < 4u; i++) {
        let m = row0 + lid.y * 4u + i;
        if (m >= p.m) { continue; }
        for (var jj = 0u; jj < 4u; jj++) {
            let nn = col0 + lid.x * 4u + jj;
            if (nn < p.n) {
                let o = m * p.n + nn;
                c[o] = acc[i][jj] + select(bias[nn], c[o], k_begin > 0u);
            }
        }
    }
}

