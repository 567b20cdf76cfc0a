// Dense head: a dense layer then its activation, over rows of a [B, K] input that already lives on
// the GPU (the GRU's final state read in place from its states buffer, a layer's output, ...), so
// nothing is copied. The activation is Keras 3's (`DenseActivation` in src/model.rs, whose codes
// the generated header declares as DACT_*).
//
// Entry points, over one bind group layout, dispatched in this order:
// - `dense`:   probs[b, c] = act(Σ_k x[b, k] · w[c, k] + bias[c])   (one invocation per (b, c));
//              for softmax and log_softmax, the logits
// - `softmax`: probs[b, :] = softmax or log_softmax(probs[b, :]), in place   (one workgroup per
//              row; dispatched only for those two)
//
// Dispatch grids may be 2-D (x, y) when B·C or B exceed the per-dimension workgroup limit; the flat
// index is rebuilt from `num_workgroups`. No invocation loops over more than K or 3·C/64 items,
// so Mesa's llvmpipe (which ends a shader after 65,535 loop iterations) runs any C up to ~1.4 M.

// Specialisation.
override K: u32 = 1u;  // input features (the GRU's H)
override C: u32 = 1u;  // classes
override ACT: u32 = DACT_SOFTMAX;  // the activation's code

@group(0) @binding(0) var<uniform> p: HeadParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;            // [B, K] at x_off, row stride x_sb
@group(0) @binding(2) var<storage, read> w: array<f32>;            // [C, K] row-major
@group(0) @binding(3) var<storage, read> bias: array<f32>;         // [C]
@group(0) @binding(4) var<storage, read_write> probs: array<f32>;  // [B, C]: logits, then probabilities

const WG: u32 = HEAD_WG;  // and `red`'s length (reduce.wgsl): partial max, then partial sum

// erf to 1.5e-7 (Abramowitz and Stegun 7.1.26): WGSL has none.
fn erf_(v: f32) -> f32 {
    let a = abs(v);
    let t = 1.0 / (1.0 + 0.3275911 * a);
    let poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
    return sign(v) * (1.0 - poly * exp(-a * a));
}

fn sigmoid_(v: f32) -> f32 {
    return 1.0 / (1.0 + exp(-v));
}

// The value-wise activations; softmax and log_softmax pass the logit through to `softmax`.
fn act(v: f32) -> f32 {
    switch ACT {
        case DACT_SIGMOID: { return sigmoid_(v); }
        // Clamped: some drivers' tanh overflows for large |v|.
        case DACT_TANH: { return tanh(clamp(v, -15.0, 15.0)); }
        case DACT_RELU: { return max(v, 0.0); }
        case DACT_HARD_SIGMOID: { return clamp(v / 6.0 + 0.5, 0.0, 1.0); }
        case DACT_ELU: { return select(exp(v) - 1.0, v, v > 0.0); }
        case DACT_SELU: { return 1.0507009873554805 * select(1.6732632423543772 * (exp(v) - 1.0), v, v > 0.0); }
        case DACT_SOFTPLUS: { return max(v, 0.0) + log(1.0 + exp(-abs(v))); }
        case DACT_SOFTSIGN: { return v / (1.0 + abs(v)); }
        case DACT_SWISH: { return v * sigmoid_(v); }
        case DACT_GELU: { return 0.5 * v * (1.0 + erf_(v * 0.7071067811865476)); }
        case DACT_EXPONENTIAL: { return exp(v); }
        case DACT_RELU6: { return clamp(v, 0.0, 6.0); }
        case DACT_LEAKY_RELU: { return select(0.2 * v, v, v >= 0.0); }
        default: { return v; }  // DACT_LINEAR, DACT_SOFTMAX, DACT_LOG_SOFTMAX
    }
}

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
    probs[i] = act(acc + bias[c]);
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
    m = reduce_max(lid, WG);
    var sum = 0.0;
    for (var c = lid; c < C; c += WG) { sum += exp(probs[row + c] - m); }
    red[lid] = sum;
    sum = reduce_sum(lid, WG);
    if (ACT == DACT_LOG_SOFTMAX) {
        let lse = m + log(sum);
        for (var c = lid; c < C; c += WG) { probs[row + c] -= lse; }
    } else {
        for (var c = lid; c < C; c += WG) { probs[row + c] = exp(probs[row + c] - m) / sum; }
    }
}
