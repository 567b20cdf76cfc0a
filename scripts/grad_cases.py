#!/usr/bin/env python3
"""Gradient cases beyond the four shared ones, written to tests/data/grad_extra/.

Run from the repository root:

    python3 scripts/grad_cases.py

Each case starts from a forward golden case of tests/data/golden/ (weights and inputs as the
framework produced them). The script rebuilds that framework's forward in float64 PyTorch
(`nn.GRU` itself for PyTorch, packed sequences for lengths; the cell written out in torch ops for
the Keras and ONNX layouts), checks that it reproduces the case's expected outputs (computed by
the framework) within 1e-5, draws seeded upstream gradients, and stores the autograd gradients of
`L = sum(Y * grad_output) + sum(state * grad_state)` in the format of the shared `grad/` cases
(see ../shared/golden/README.md): the weights and inputs under the framework's names,
`grad_output`, `grad_state`, and `expected_grad_<name>` for the input, h0 and every weight.

These cover what the shared four do not: per-row lengths (PyTorch packed, ONNX sequence_lens),
batch_first without bias, Keras go_backwards and reset_after, ONNX reverse, reset-before and
bidirectional in the ONNX layout.

Needs torch, numpy and safetensors.
"""

import json
import os

import numpy as np
import torch
from safetensors import safe_open
from safetensors.numpy import save_file

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
GOLDEN = os.path.join(ROOT, "tests", "data", "golden")
OUT = os.path.join(ROOT, "tests", "data", "grad_extra")
torch.set_default_dtype(torch.float64)


def load(name):
    path = os.path.join(GOLDEN, name + ".safetensors")
    with safe_open(path, "np") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata())


def t64(a, grad=True):
    return torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=grad)


def cell_loop(x, h0, lens, W, U, bw, bu, reverse, reset_after, order):
    """x [T,B,I], h0 [B,H]; W [3H,I], U [3H,H], bw, bu [3H] with gate blocks in `order`
    (a string such as "zrn"). Returns y [T,B,H] (zeros past each length) and the final h."""
    T, B, _ = x.shape
    H = h0.shape[1]
    blk = {g: slice(k * H, (k + 1) * H) for k, g in enumerate(order)}
    ys = [[None] * B for _ in range(T)]
    hs = []
    for b in range(B):
        h = h0[b]
        L = T if lens is None else int(lens[b])
        for t in (range(L - 1, -1, -1) if reverse else range(L)):
            xt = x[t, b]
            a = lambda g: W[blk[g]] @ xt + bw[blk[g]]
            u = lambda g, v: U[blk[g]] @ v + bu[blk[g]]
            r = torch.sigmoid(a("r") + u("r", h))
            z = torch.sigmoid(a("z") + u("z", h))
            if reset_after:
                n = torch.tanh(a("n") + r * u("n", h))
            else:
                n = torch.tanh(a("n") + u("n", r * h))
            h = z * h + (1 - z) * n
            ys[t][b] = h
        hs.append(h)
    zero = torch.zeros(H)
    y = torch.stack([torch.stack([v if v is not None else zero for v in row]) for row in ys])
    return y, torch.stack(hs)


def finish(name, meta, tensors, params, outputs, rng, expected):
    """Checks the rebuilt forward against the framework, draws upstream gradients, and saves."""
    worst = 0.0
    for out_name, (got, want) in expected.items():
        err = float(np.abs(got.detach().numpy() - want).max())
        worst = max(worst, err)
        assert err < 1e-5, f"{name}: {out_name} differs from the framework by {err}"
    y, state = outputs
    gy = rng.standard_normal(y.shape)
    gs = rng.standard_normal(state.shape)
    loss = (y * torch.tensor(gy)).sum() + (state * torch.tensor(gs)).sum()
    loss.backward()
    out = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
    out["grad_output"] = gy.astype(np.float32)
    out["grad_state"] = gs.astype(np.float32)
    for k, p in params.items():
        out["expected_grad_" + k] = p.grad.numpy().astype(np.float32)
    save_file(out, os.path.join(OUT, "grad_" + name + ".safetensors"), metadata=meta)
    print(f"grad_{name}: forward within {worst:.1e} of the framework")


def pytorch_case(name, seed):
    t, meta = load(name)
    m = {k: json.loads(v) for k, v in meta.items() if k != "framework"}
    H, D = m["hidden_size"], 2 if m["bidirectional"] else 1
    gru = torch.nn.GRU(m["input_size"], H, m["num_layers"], bias=m["bias"],
                       batch_first=m["batch_first"], bidirectional=m["bidirectional"])
    with torch.no_grad():
        for k, p in gru.named_parameters():
            p.copy_(torch.tensor(t[k].astype(np.float64)))
    x = t64(t["input"])
    B = x.shape[0] if m["batch_first"] else x.shape[1]
    h0 = t64(t["h0"]) if "h0" in t else t64(np.zeros((m["num_layers"] * D, B, H)))
    if "lengths" in t:
        lens = torch.tensor(t["lengths"])
        packed = torch.nn.utils.rnn.pack_padded_sequence(
            x, lens, batch_first=m["batch_first"], enforce_sorted=False)
        yp, hn = gru(packed, h0)
        y, _ = torch.nn.utils.rnn.pad_packed_sequence(
            yp, batch_first=m["batch_first"], total_length=x.shape[1 if m["batch_first"] else 0])
    else:
        y, hn = gru(x, h0)
    params = dict(gru.named_parameters())
    params["input"] = x
    params["h0"] = h0
    tensors = {k: v for k, v in t.items() if not k.startswith("expected_")}
    finish(name, meta, tensors, params, (y, hn), np.random.default_rng(seed),
           {"output": (y, t["expected_output"]), "h_n": (hn, t["expected_h_n"])})


def keras_case(name, seed):
    t, meta = load(name)
    m = {k: json.loads(v) for k, v in meta.items() if k in ("reset_after", "go_backwards")}
    K, R = t64(t["kernel"]), t64(t["recurrent_kernel"])
    H = R.shape[0]
    bias = t64(t["bias"])
    bw, bu = (bias[0], bias[1]) if m["reset_after"] else (bias, torch.zeros(3 * H))
    x = t64(t["input"])  # [B, T, I]
    B, T, _ = x.shape
    h0 = t64(t["h0"]) if "h0" in t else t64(np.zeros((B, H)))
    xt = x.transpose(0, 1)
    if m["go_backwards"]:
        xt = xt.flip(0)
    y, hn = cell_loop(xt, h0, None, K.T, R.T, bw, bu, False, m["reset_after"], "zrn")
    y = y.transpose(0, 1)  # outputs in processing order
    params = {"kernel": K, "recurrent_kernel": R, "bias": bias, "input": x, "h0": h0}
    tensors = {k: v for k, v in t.items() if not k.startswith("expected_")}
    finish(name, meta, tensors, params, (y, hn), np.random.default_rng(seed),
           {"output": (y, t["expected_output"]), "state": (hn, t["expected_state"])})


def onnx_case(name, seed):
    t, meta = load(name)
    lbr = json.loads(meta["linear_before_reset"]) == 1
    direction = meta["direction"]
    W, R, Bb = t64(t["W"]), t64(t["R"]), t64(t["B"])
    D, H3, _ = W.shape
    H = H3 // 3
    x = t64(t["X"])  # [T, B, I]
    T, B, _ = x.shape
    h0 = t64(t["initial_h"]) if "initial_h" in t else t64(np.zeros((D, B, H)))
    lens = t.get("sequence_lens")
    ys, hs = [], []
    for d in range(D):
        reverse = direction == "reverse" or d == 1
        y, h = cell_loop(x, h0[d], lens, W[d], R[d], Bb[d, :H3], Bb[d, H3:], reverse, lbr, "zrn")
        ys.append(y)
        hs.append(h)
    y = torch.stack(ys, 1)  # [T, D, B, H]
    hn = torch.stack(hs)  # [D, B, H]
    params = {"W": W, "R": R, "B": Bb, "input": x, "h0": h0}
    tensors = {k: v for k, v in t.items() if not k.startswith("expected_")}
    finish(name, meta, tensors, params, (y, hn), np.random.default_rng(seed),
           {"Y": (y, t["expected_Y"]), "Y_h": (hn, t["expected_Y_h"])})


def main():
    os.makedirs(OUT, exist_ok=True)
    pytorch_case("pytorch_packed_bidir", 1)
    pytorch_case("pytorch_batch_first_nobias", 2)
    keras_case("keras_go_backwards", 3)
    keras_case("keras_reset_after", 4)
    onnx_case("onnx_bidir_seqlens", 5)
    onnx_case("onnx_reverse_lbr", 6)
    onnx_case("onnx_forward", 7)


if __name__ == "__main__":
    main()
