// How many workgroups of a kernel's shape a device runs at once: every workgroup takes a slot on
// arrival, records the most slots taken at any time, and holds its slot (spinning, bounded) until
// every launched workgroup has arrived or SPIN polls have passed; then it gives the slot back.
// Workgroups the device does not keep resident arrive only after others leave, so the maximum is
// the number resident together (a lower bound, reached when the spin outlasts the launch).
//
// The grid-wide persistent kernel must launch no more workgroups than this (issue 11).

override PROBE_WG: u32 = 256u;   // invocations per workgroup, as the kernel under test
override PAD: u32 = 1u;          // f32s of workgroup memory, as the kernel under test
override LAUNCHED: u32 = 1u;     // workgroups dispatched
override SPIN: u32 = 20000u;     // polls per workgroup at most (llvmpipe ends a shader at 65,535)

@group(0) @binding(0) var<storage, read_write> slots: array<atomic<u32>>;  // [taken now, most taken, arrived]

var<workgroup> pad: array<f32, PAD>;

@compute @workgroup_size(PROBE_WG, 1, 1)
fn occupancy(@builtin(local_invocation_index) lid: u32) {
    // Touch the workgroup memory so that the driver allocates all of it.
    for (var i = lid; i < PAD; i += PROBE_WG) { pad[i] = f32(i); }
    workgroupBarrier();
    if (lid == 0u) {
        let now = atomicAdd(&slots[0], 1u) + 1u;
        atomicMax(&slots[1], now);
        atomicAdd(&slots[2], 1u);
        for (var i = 0u; i < SPIN; i++) {
            if (atomicLoad(&slots[2]) >= LAUNCHED) { break; }
            atomicMax(&slots[1], atomicLoad(&slots[0]));
        }
        atomicSub(&slots[0], 1u);
    }
    workgroupBarrier();
    if (lid == 0u && pad[PAD - 1u] < 0.0) { atomicAdd(&slots[1], 0u); }
}
