// Classifier head: a dense layer then a softmax, over rows of a [B, K] state that already lives on
// the GPU (the GRU's final state, read in place from its states buffer, so nothing is copied).
//
// Entry points, over one bind group layout, dispatched in this order:
// - `dense`:   probs[b, c] = Σ_k x[b, k] · w[c, k] + bias[c]   (logits; one invocation per (b, c))
// - `softmax`: probs[b, :] = softmax(probs[b, :]), in place     (one workgroup per row)
//
// Dispatch grids may be 2-D (x, y) when B·C or B exceed the per-dimension workgroup limit; the flat
// index is rebuilt from `num_workgroups`. No invocation loops over more than K or 3·C/64 items,
// so Mesa's llvmpipe (which ends a shader after 65,535 loop iterations) runs any C up to ~1.4 M.

// Specialisation.
override K: u32 = 1u;  // input features (the GRU's H)
override C: u32 = 1u;  // classes

@group(0) @binding(0) var<uniform> p: HeadParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;            // [B, K] at x_off, row stride x_sb
@group(0) @binding(2) var<storage, read> w: array<f32>;            // [C, K] row-major
@group(0) @binding(3) var<storage, read> bias: array<f32>;         // [C]
@group(0) @binding(4) var<storage, read_write> probs: array<f32>;  // [B, C]: logits, then probabilities

const WG: u32 = HEAD_WG;

fn flat(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.y * nwg.x + wid.x) * WG + lid;
}

@compute @workgroup_size(WG, 1, 1)
fn dense(
    @builtin(local_invocation_index) lid: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let i = flat(wid, nwg, lid);
    if (i >= p.batch * C) { return; }
    let b = i / C;
    let c = i - b * C;
    let xr = p.x_off + b * p.x_sb;
    let wr = c * K;
    var acc = 0.0;
    for (var k = 0u; k < K; k++) {
        acc += x[xr + k] * w[wr + k];
    }
    probs[i] = acc + bias[c];
}

var<workgroup> red: array<f32, WG>;  // [WG] partial max, then partial sum

// Leaves the reduction of `red` (max when `is_max`, else sum) in red[0] for every invocation.
fn reduce(lid: u32, is_max: bool) -> f32 {
    for (var off = WG / 2u; off > 0u; off /= 2u) {
        workgroupBarrier();
        if (lid < off) {
            if (is_max) {
                red[lid] = max(red[lid], red[lid + off]);
            } else {
                red[lid] += red[lid + off];
            }
        }
    }
    workgroupBarrier();
    let v = red[0];
    workgroupBarrier();
    return v;
}

// One workgroup per row, its invocations striding over the C classes.
@compute @workgroup_size(WG, 1, 1)
fn softmax(
    @builtin(local_invocation_index) lid: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let b = wid.y * nwg.x + wid.x;
    if (b >= p.batch) { return; }
    let row = b * C;
    // Subtract the row maximum first so large logits cannot overflow exp.
    var m = probs[row];
    for (var c = lid; c < C; c += WG) { m = max(m, probs[row + c]); }
    red[lid] = m;
    m = reduce(lid, true);
    var sum = 0.0;
    for (var c = lid; c < C; c += WG) {
        let e = exp(probs[row + c] - m);
        probs[row + c] = e;
        sum += e;
    }
    red[lid] = sum;
    sum = reduce(lid, false);
    for (var c = lid; c < C; c += WG) { probs[row + c] /= sum; }
}
