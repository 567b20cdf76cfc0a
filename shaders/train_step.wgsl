// The rest of a training step on the GPU: the classifier head's loss and its gradient, the
// gradients' global norm (for clipping), and the optimisers.
//
// - `head_loss`:  one workgroup per row b: logits = W_d·h_b + b_d, softmax, the cross-entropy of
//                 the row's label, dL/dlogits = (p − onehot)/B (mean over the batch, as PyTorch's
//                 `cross_entropy`), the probabilities and whether the argmax is the label.
// - `loss_reduce`: one workgroup: the batch's mean loss and its count of correct rows.
// - `sumsq`:      per-workgroup partial sums of g² over all parameters.
// - `clip_scale`: one workgroup: ‖g‖ and min(1, max_norm / (‖g‖ + 1e-6)) (PyTorch's
//                 `clip_grad_norm_`); the optimisers multiply every gradient by it.
// - `optimise`:   one invocation per parameter: PyTorch's Adam, or SGD with momentum (`SGD`).
// Flat indices come from an (x, y) grid of 256-invocation workgroups; no loop runs more than
// 256 iterations per invocation except over C or B rows (llvmpipe's cap is 65,535).

override H: u32 = 1u;  // the head's input features
override C: u32 = 1u;  // classes

@group(0) @binding(0) var<uniform> o: Opt;
@group(0) @binding(1) var<storage, read_write> params: array<f32>;
@group(0) @binding(2) var<storage, read_write> grads: array<f32>;
@group(0) @binding(3) var<storage, read_write> m1: array<f32>;
@group(0) @binding(4) var<storage, read_write> m2: array<f32>;
@group(0) @binding(5) var<storage, read_write> s: array<f32>;  // [LOSS, CORRECT, NORM, SCALE, partials..]
@group(0) @binding(6) var<storage, read_write> work: array<f32>;
@group(0) @binding(7) var<storage, read> ints: array<u32>;     // lengths [B] ++ labels [B]

const LOSS: u32 = 0u;
const CORRECT: u32 = 1u;
const NORM: u32 = 2u;
const SCALE: u32 = 3u;
const PARTIALS: u32 = SCRATCH_PARTIALS;

const WG: u32 = OPT_WG;  // and `red`'s length (reduce.wgsl)

// One workgroup of TRAIN_WG per row.
@compute @workgroup_size(TRAIN_WG, 1, 1)
fn head_loss(
    @builtin(local_invocation_index) lid: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
) {
    let b = wid.x;
    let label = ints[o.batch + b];
    let h = o.hn_off + b * H;
    let row = b * C;
    var mx = -3.4e38;
    for (var c = lid; c < C; c += TRAIN_WG) {
        var acc = params[o.bd_off + c];
        for (var k = 0u; k < H; k++) {
            acc += params[o.wd_off + c * H + k] * work[h + k];
        }
        work[o.pr_off + row + c] = acc;
        mx = max(mx, acc);
    }
    red[lid] = mx;
    mx = reduce_max(lid, TRAIN_WG);
    var sum = 0.0;
    for (var c = lid; c < C; c += TRAIN_WG) {
        sum += exp(work[o.pr_off + row + c] - mx);
    }
    red[lid] = sum;
    sum = reduce_sum(lid, TRAIN_WG);
    if lid == 0u {
        // The argmax (first on ties) and the loss, from the logits.
        var best = 0u;
        for (var c = 1u; c < C; c++) {
            if work[o.pr_off + row + c] > work[o.pr_off + row + best] {
                best = c;
            }
        }
        let lab = min(label, C - 1u);
        work[o.lb_off + 2u * b] = mx + log(sum) - work[o.pr_off + row + lab];
        work[o.lb_off + 2u * b + 1u] = select(0.0, 1.0, best == label);
    }
    workgroupBarrier();
    let inv_b = 1.0 / f32(o.batch);
    for (var c = lid; c < C; c += TRAIN_WG) {
        let pc = exp(work[o.pr_off + row + c] - mx) / sum;
        work[o.pr_off + row + c] = pc;
        work[o.dl_off + row + c] = (pc - select(0.0, 1.0, c == label)) * inv_b;
    }
}

@compute @workgroup_size(WG, 1, 1)
fn loss_reduce(@builtin(local_invocation_index) lid: u32) {
    var l = 0.0;
    var c = 0.0;
    for (var b = lid; b < o.batch; b += WG) {
        l += work[o.lb_off + 2u * b];
        c += work[o.lb_off + 2u * b + 1u];
    }
    red[lid] = l;
    l = reduce_sum(lid, WG);
    red[lid] = c;
    c = reduce_sum(lid, WG);
    if lid == 0u {
        s[LOSS] = l / f32(o.batch);
        s[CORRECT] = c;
    }
}

@compute @workgroup_size(WG, 1, 1)
fn sumsq(
    @builtin(local_invocation_index) lid: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
) {
    var acc = 0.0;
    for (var i = wid.x * WG + lid; i < o.n; i += o.groups * WG) {
        let v = grads[i];
        acc += v * v;
    }
    red[lid] = acc;
    acc = reduce_sum(lid, WG);
    if lid == 0u {
        s[PARTIALS + wid.x] = acc;
    }
}

@compute @workgroup_size(WG, 1, 1)
fn clip_scale(@builtin(local_invocation_index) lid: u32) {
    var acc = 0.0;
    for (var i = lid; i < o.groups; i += WG) {
        acc += s[PARTIALS + i];
    }
    red[lid] = acc;
    acc = reduce_sum(lid, WG);
    if lid == 0u {
        let norm = sqrt(acc);
        s[NORM] = norm;
        s[SCALE] = min(1.0, o.max_norm / (norm + 1e-6));
    }
}

fn flat(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.y * nwg.x * WG + gid.x;
}

fn grad_of(i: u32) -> f32 {
    var g = grads[i];
    if o.clip == 1u {
        g *= s[SCALE];
    }
    return g + o.weight_decay * params[i];
}

override SGD: bool = false;  // `optimise`: SGD with momentum instead of Adam

@compute @workgroup_size(WG, 1, 1)
fn optimise(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let i = flat(gid, nwg);
    if i >= o.n {
        return;
    }
    let g = grad_of(i);
    if SGD {
        var buf = g;
        if o.first == 0u && o.momentum != 0.0 {
            buf = o.momentum * m1[i] + g;
        }
        m1[i] = buf;
        params[i] -= o.lr * buf;
    } else {
        let m = o.beta1 * m1[i] + (1.0 - o.beta1) * g;
        let v = o.beta2 * m2[i] + (1.0 - o.beta2) * g * g;
        m1[i] = m;
        m2[i] = v;
        let denom = sqrt(v) / sqrt(o.bc2) + o.eps;
        params[i] -= (o.lr / o.bc1) * m / denom;
    }
}
