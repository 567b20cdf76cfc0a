// The workgroup reductions of `head.wgsl` and `train_step.wgsl`, composed before either (src/gpu/
// wgsl.rs): each declares `WG`, its workgroup size, and writes its invocations' values into `red`.

var<workgroup> red: array<f32, WG>;

// The sum of red[0..n) (n a power of two ≤ WG), returned to every invocation; `red` is free again.
fn reduce_sum(lid: u32, n: u32) -> f32 {
    for (var off = n / 2u; off > 0u; off /= 2u) {
        workgroupBarrier();
        if lid < off {
            red[lid] += red[lid + off];
        }
    }
    workgroupBarrier();
    let v = red[0];
    workgroupBarrier();
    return v;
}

// The maximum of red[0..n), as `reduce_sum`.
fn reduce_max(lid: u32, n: u32) -> f32 {
    for (var off = n / 2u; off > 0u; off /= 2u) {
        workgroupBarrier();
        if lid < off {
            red[lid] = max(red[lid], red[lid + off]);
        }
    }
    workgroupBarrier();
    let v = red[0];
    workgroupBarrier();
    return v;
}
