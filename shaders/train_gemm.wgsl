// A strided GEMM for training: C (+)= A·B over K-rows k0..k1, every operand addressed by an
// offset and two strides, so transposes and gate blocks need no copies.
//
//   A(m, k) = work[a_off + m·a_sm + k·a_sk]
//   B(k, n) = (b_buf = 1 ? params : work)[b_off + k·b_sk + n·b_sn]
//   C(m, n) = (c_buf = 1 ? grads : work)[c_off + m·c_sm + n·c_sn]
//
// - `gemm`:   64×64 output tiles, 16 K-rows per stage in workgroup memory, 4×4 outputs per
//             invocation in registers.
// - `colsum`: C(m, 0) (+)= Σ_k A(m, k), one invocation per row m (the bias gradients).
//
// The weight gradients of a layer are such GEMMs over all T·B rows of the tape (K = T·B), after
// the backward recurrence. The host splits K so that no invocation loops more than about 13 K
// times (llvmpipe ends an invocation after 65,535 loop iterations).

@group(0) @binding(0) var<uniform> g: Gemm;   // dynamic offset per GEMM
@group(0) @binding(1) var<storage, read> params: array<f32>;
@group(0) @binding(2) var<storage, read_write> grads: array<f32>;
@group(0) @binding(3) var<storage, read_write> work: array<f32>;

fn load_a(m: u32, k: u32) -> f32 {
    if m < g.m && k < g.k1 {
        return work[g.a_off + m * g.a_sm + k * g.a_sk];
    }
    return 0.0;
}

fn load_b(k: u32, n: u32) -> f32 {
    if n >= g.n || k >= g.k1 {
        return 0.0;
    }
    let i = g.b_off + k * g.b_sk + n * g.b_sn;
    if g.b_buf == 1u {
        return params[i];
    }
    return work[i];
}

fn store(m: u32, n: u32, v: f32) {
    if m >= g.m || n >= g.n {
        return;
    }
    let i = g.c_off + m * g.c_sm + n * g.c_sn;
    if g.c_buf == 1u {
        grads[i] = v + select(0.0, grads[i], g.acc == 1u);
    } else {
        work[i] = v + select(0.0, work[i], g.acc == 1u);
    }
}

@compute @workgroup_size(TILE4, TILE4, 1)
fn gemm(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
) {
    let row0 = wid.y * TILE;
    let col0 = wid.x * TILE;
    var acc: array<vec4<f32>, 4>;
    for (var i = 0u; i < 4u; i++) {
        acc[i] = vec4<f32>(0.0);
    }
    for (var k0 = g.k0; k0 < g.k1; k0 += KT) {
        // Each invocation stages 4 elements of each tile: element e = li·4 + q.
        for (var q = 0u; q < 4u; q++) {
            let e = li * 4u + q;
            // A: k = e / 64, m = e % 64 (consecutive invocations take consecutive rows).
            let ak = e / TILE;
            let am = e % TILE;
            stage(ak, am, load_a(row0 + am, k0 + ak), load_b(k0 + ak, col0 + am));
        }
        tile_mac(&acc, lid.x, lid.y);
    }
    for (var i = 0u; i < 4u; i++) {
        for (var q = 0u; q < 4u; q++) {
            store(row0 + lid.y * 4u + i, col0 + lid.x * 4u + q, acc[i][q]);
        }
    }
}

@compute @workgroup_size(TRAIN_WG, 1, 1)
fn colsum(@builtin(global_invocation_id) gid: vec3<u32>) {
    let m = gid.x;
    if m >= g.m {
        return;
    }
    var acc = 0.0;
    for (var k = g.k0; k < g.k1; k++) {
        acc += work[g.a_off + m * g.a_sm + k * g.a_sk];
    }
    store(m, 0u, acc);
}
