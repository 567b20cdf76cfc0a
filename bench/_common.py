"""What bench/peers.py and bench/train_peers.py share: the standard shapes and the timer."""
import statistics
import time

# The standard shapes (name, B, T, I, H): batch, timesteps, input size, hidden size.
SHAPES = [
    ("latency", 1, 256, 256, 256),
    ("seed", 32, 64, 64, 128),
    ("medium", 16, 128, 512, 512),
    ("large", 64, 128, 1024, 1024),
    ("long", 1, 4096, 32, 128),
]


def median_ms(fn, reps, sync=None, warmup=1):
    """Medians of `fn`'s wall time and process CPU time in ms over `reps` runs, after `warmup`
    untimed runs. On a shared machine the CPU time is the steadier figure: it leaves out the time
    the process was descheduled (for the GPU it only covers the host side)."""
    for _ in range(warmup):
        fn()
    if sync:
        sync()
    ts, cs = [], []
    for _ in range(reps):
        c0 = time.process_time()
        t0 = time.perf_counter()
        fn()
        if sync:
            sync()
        ts.append(time.perf_counter() - t0)
        cs.append(time.process_time() - c0)
    return statistics.median(ts) * 1e3, statistics.median(cs) * 1e3
