#!/usr/bin/env python3
"""Times PyTorch's training step of the seed's classifier on the standard shapes.

One step = forward of nn.GRU(I, H, batch_first=True) (the PyTorch cell: reset-after), the final
state through nn.Linear(H, 10), cross-entropy, backward, Adam: what `wgpu-gru`'s GPU training step
does (`cargo run --release --example train_step`, `wgpu_gru::train::bench::time_train_step`).
Also a forward alone, so the ratio step / forward is comparable with ours.

- on the CPU with `--threads` threads (default 1; OMP_NUM_THREADS is set before torch is imported);
- with `--cuda`, on the GPU (cuDNN), timed with torch.cuda.synchronize().

Usage:
    bench/train_peers.py [--threads N] [--reps N] [--shapes seed,medium] [--cuda] [--json FILE]

Shapes are (B, T, I, H). Each figure is the median of `--reps` runs after a warm-up.
"""
import argparse
import json
import os

import _common

SHAPES = [("digits", 64, 8, 8, 128)] + _common.SHAPES


def median_ms(fn, reps, sync=None):
    """The median wall time in ms over `reps` runs, after two warm-ups."""
    return _common.median_ms(fn, reps, sync, warmup=2)[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--shapes", default=",".join(s[0] for s in SHAPES))
    ap.add_argument("--cuda", action="store_true")
    ap.add_argument("--json")
    a = ap.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(a.threads)
    import torch

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    devices = ["cpu"] + (["cuda"] if a.cuda else [])
    records = []
    print(f"{'shape':<10} {'device':<6} {'forward ms':>11} {'step ms':>10} {'ratio':>7}")
    for name, b, t, i, h in SHAPES:
        if name not in a.shapes.split(","):
            continue
        for dev in devices:
            gru = torch.nn.GRU(i, h, batch_first=True).to(dev)
            dense = torch.nn.Linear(h, 10).to(dev)
            opt = torch.optim.Adam(list(gru.parameters()) + list(dense.parameters()), lr=1e-4)
            x = torch.rand(b, t, i, device=dev) * 2 - 1
            y = torch.arange(b, device=dev) % 10
            sync = torch.cuda.synchronize if dev == "cuda" else None

            def forward():
                with torch.no_grad():
                    gru(x)

            def step():
                opt.zero_grad()
                _, hn = gru(x)
                loss = torch.nn.functional.cross_entropy(dense(hn[-1]), y)
                loss.backward()
                opt.step()
                loss.item()  # the loss comes back to the host, as ours does

            f = median_ms(forward, a.reps, sync)
            s = median_ms(step, a.reps, sync)
            print(f"{name:<10} {dev:<6} {f:>11.3f} {s:>10.3f} {s / f:>7.2f}")
            records.append(dict(shape=name, batch=b, steps=t, input=i, hidden=h, device=dev,
                                threads=a.threads, forward_ms=f, step_ms=s,
                                torch=torch.__version__))
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(records, fh, indent=1)


if __name__ == "__main__":
    main()
