#!/usr/bin/env python3
"""Golden cases for the ONNX `GRU` operator with non-default activations, computed by ONNX Runtime.

    python3 scripts/onnx_activations.py [OUT_DIR]      (default: tests/data/onnx_activations)

Needs `pip install onnx onnxruntime numpy safetensors`. Each case is one GRU node (opset 14) run by
onnxruntime's CPU provider; the weights, inputs and outputs are saved in the `onnx` layout of
tests/data/golden/README.md (W [D,3H,I], R [D,3H,H], B [D,6H], X [T,B,I], optional
sequence_lens int32 [B], optional initial_h [D,B,H], expected_Y [T,D,B,H], expected_Y_h [D,B,H]),
with the same `__metadata__` keys and encodings as the golden onnx cases. activation_alpha /
activation_beta record exactly the lists that were in the node (`[]` when the attribute was absent).

Every case is checked here against an independent float64 NumPy GRU with ONNX semantics
(`reference` below); the script fails if any output differs by more than 1e-5. It also checks
that each case is well conditioned for an f32 implementation: the float64 outputs move by at most
3e-6 when every input is perturbed by about 2 f32 ulps, and no ThresholdedRelu input lies within
0.01 of its threshold (where f32 rounding could flip the step). Nothing is written unless every
case passes.

onnxruntime's alpha/beta defaults (used when a list runs out) are LeakyRelu α=0.01, HardSigmoid
α=0.2 β=0.5, Elu α=1.0 and 0 for everything else: ThresholdedRelu α=0, ScaledTanh α=0 β=0,
Affine α=0 β=0. The ONNX operator spec instead points at the standalone operators' defaults
(ThresholdedRelu α=1, Affine α=1), and wgpu-gru follows the spec. No case depends on that
difference: every case gives those three activations explicit values.
"""
import json
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper
from safetensors.numpy import save_file

OPSET = 14
TOL = 1e-5

# ---------------------------------------------------------------------------------------------
# The cases. Keys: acts (the node's activations), alpha/beta (the node's lists; None = attribute
# absent), direction, lbr, clip (None = absent), T/B/I/H, lens (sequence_lens or None),
# h0 (give initial_h), seed, w (weight scale: uniform ±w), x (input std), init (W/R/B as
# initializers instead of graph inputs).
# ---------------------------------------------------------------------------------------------

def case(name, acts, alpha=None, beta=None, direction="forward", lbr=0, clip=None,
         T=5, B=3, I=4, H=5, lens=None, h0=False, seed=0, w=1.0, x=1.0, init=False):
    return dict(name=name, acts=acts, alpha=alpha, beta=beta, direction=direction, lbr=lbr,
                clip=clip, T=T, B=B, I=I, H=H, lens=lens, h0=h0, seed=seed, w=w, x=x, init=init)


CASES = [
    # 1. each activation as f (g = Tanh) ...
    case("f_sigmoid_fwd", ["Sigmoid", "Tanh"], lbr=0, seed=101),
    case("f_tanh_fwd", ["Tanh", "Tanh"], lbr=1, clip=3.0, h0=True, seed=111),
    case("f_relu_rev", ["Relu", "Tanh"], direction="reverse", lbr=0, clip=1.5, seed=103, w=0.6),
    case("f_hardsigmoid_fwd", ["HardSigmoid", "Tanh"], beta=[0.4], lbr=1, seed=104,
         T=6, B=2, I=3, H=4),                                     # α from the default (0.2)
    case("f_leakyrelu_fwd", ["LeakyRelu", "Tanh"], alpha=[0.1], lbr=0, clip=3.0, seed=129, w=0.8),
    case("f_thresholdedrelu_fwd", ["ThresholdedRelu", "Tanh"], alpha=[0.5], lbr=1, seed=106,
         h0=True, w=0.8),
    case("f_scaledtanh_rev", ["ScaledTanh", "Tanh"], alpha=[0.8], beta=[1.5], direction="reverse",
         lbr=0, seed=108),
    case("f_affine_fwd", ["Affine", "Tanh"], alpha=[0.3], beta=[0.5], lbr=1, clip=2.0, seed=108),
    case("f_elu_fwd", ["Elu", "Tanh"], lbr=0, seed=137, w=0.6),   # α from the default (1.0)
    case("f_softsign_rev", ["Softsign", "Tanh"], direction="reverse", lbr=1, clip=3.0, seed=112,
         h0=True),
    case("f_softplus_fwd", ["Softplus", "Tanh"], lbr=0, clip=1.5, seed=111, w=0.6,
         T=4, B=2, I=5, H=6),
    # ... and as g (f = Sigmoid)
    case("g_sigmoid_fwd", ["Sigmoid", "Sigmoid"], lbr=1, seed=201),
    case("g_tanh_rev", ["Sigmoid", "Tanh"], direction="reverse", lbr=0, clip=2.5, seed=202),
    case("g_relu_fwd", ["Sigmoid", "Relu"], lbr=0, seed=203, h0=True),
    case("g_hardsigmoid_fwd", ["Sigmoid", "HardSigmoid"], alpha=[0.25], lbr=1, clip=3.0,
         seed=204),                                               # β from the default (0.5)
    case("g_leakyrelu_rev", ["Sigmoid", "LeakyRelu"], direction="reverse", lbr=1, seed=205,
         T=6, B=2, I=3, H=4),                                     # α from the default (0.01)
    case("g_thresholdedrelu_fwd", ["Sigmoid", "ThresholdedRelu"], alpha=[0.7], lbr=0, clip=3.0,
         seed=206),
    case("g_scaledtanh_fwd", ["Sigmoid", "ScaledTanh"], alpha=[1.7], beta=[0.6], lbr=1, seed=207,
         h0=True),
    case("g_affine_rev", ["Sigmoid", "Affine"], alpha=[0.9], beta=[-0.2], direction="reverse",
         lbr=0, seed=208, w=0.6),
    case("g_elu_fwd", ["Sigmoid", "Elu"], alpha=[0.5], lbr=1, clip=3.0, seed=209),
    case("g_softsign_fwd", ["Sigmoid", "Softsign"], lbr=0, seed=210, T=4, B=2, I=5, H=6),
    case("g_softplus_rev", ["Sigmoid", "Softplus"], direction="reverse", lbr=1, clip=3.0,
         seed=211, h0=True),

    # 2. bidirectional, a different (f, g) per direction; α/β consumed in activation order
    #    HardSigmoid(0.3, 0.55), Affine(0.8, 0.1) | Softsign, LeakyRelu(α list ran out: 0.01)
    case("bidir_hardsigmoid_affine_softsign_leakyrelu",
         ["HardSigmoid", "Affine", "Softsign", "LeakyRelu"], alpha=[0.3, 0.8], beta=[0.55, 0.1],
         direction="bidirectional", lbr=0, lens=[5, 2, 4], h0=True, seed=301, w=0.6),
    #    Elu(0.6), ScaledTanh(1.2, 0.9) | HardSigmoid(0.15, β list ran out: 0.5), Relu
    case("bidir_elu_scaledtanh_hardsigmoid_relu",
         ["Elu", "ScaledTanh", "HardSigmoid", "Relu"], alpha=[0.6, 1.2, 0.15], beta=[0.9],
         direction="bidirectional", lbr=1, clip=2.5, B=4, lens=[3, 5, 1, 4], h0=True, seed=323,
         w=0.8, init=True),
    #    Sigmoid, ThresholdedRelu(0.4) | Softsign, Elu(α list ran out: 1.0)
    case("bidir_sigmoid_thresholdedrelu_softsign_elu",
         ["Sigmoid", "ThresholdedRelu", "Softsign", "Elu"], alpha=[0.4],
         direction="bidirectional", lbr=0, clip=1.5, lens=[4, 5, 2], h0=True, seed=303, w=0.6),
    #    HardSigmoid(defaults 0.2, 0.5), Softplus | Tanh, LeakyRelu(default 0.01); no α/β lists
    case("bidir_hardsigmoid_softplus_tanh_leakyrelu",
         ["HardSigmoid", "Softplus", "Tanh", "LeakyRelu"],
         direction="bidirectional", lbr=1, T=6, B=3, I=3, H=4, lens=[6, 1, 3], h0=True, seed=311,
         init=True),
    #    LeakyRelu(0.2), Tanh | LeakyRelu(0.05), Tanh: the same names, each direction its own α
    case("bidir_leakyrelu_alpha_per_direction",
         ["LeakyRelu", "Tanh", "LeakyRelu", "Tanh"], alpha=[0.2, 0.05],
         direction="bidirectional", lbr=0, clip=1.5, lens=[2, 5, 5], h0=True, seed=313, w=0.6),
    #    Sigmoid, Tanh | Affine(0.5, -0.3), ScaledTanh(1.3, 0.7): only direction 1 takes α/β
    case("bidir_sigmoid_tanh_affine_scaledtanh",
         ["Sigmoid", "Tanh", "Affine", "ScaledTanh"], alpha=[0.5, 1.3], beta=[-0.3, 0.7],
         direction="bidirectional", lbr=1, clip=2.0, lens=[5, 3, 4], seed=331),

    # 3. the case: LeakyRelu(0.05), ScaledTanh(0.8, 1.1) | HardSigmoid(0.3, 0.4), Softplus
    case("onnx_issue15_bidir_mixed",
         ["LeakyRelu", "ScaledTanh", "HardSigmoid", "Softplus"], alpha=[0.05, 0.8, 0.3],
         beta=[1.1, 0.4], direction="bidirectional", lbr=1, clip=3.0, lens=[5, 2, 4], h0=True,
         seed=41),

]

# ---------------------------------------------------------------------------------------------
# Independent float64 reference (ONNX GRU semantics, onnxruntime's α/β defaults).
# ---------------------------------------------------------------------------------------------

TAKES = {  # name -> (takes α, takes β)
    "Sigmoid": (False, False), "Tanh": (False, False), "Relu": (False, False),
    "HardSigmoid": (True, True), "LeakyRelu": (True, False), "ThresholdedRelu": (True, False),
    "ScaledTanh": (True, True), "Affine": (True, True), "Elu": (True, False),
    "Softsign": (False, False), "Softplus": (False, False),
}
ORT_DEFAULT = {"LeakyRelu": (0.01, 0.0), "HardSigmoid": (0.2, 0.5), "Elu": (1.0, 0.0)}


def resolve(acts, alpha, beta):
    """[(name, α, β)] with α/β consumed in order by the activations that take them."""
    ai, bi = iter(alpha or []), iter(beta or [])
    out = []
    for n in acts:
        ta, tb = TAKES[n]
        da, db = ORT_DEFAULT.get(n, (0.0, 0.0))
        # attribute floats are float32 in the model
        a = float(np.float32(next(ai, da))) if ta else 0.0
        b = float(np.float32(next(bi, db))) if tb else 0.0
        out.append((n, a, b))
    assert next(ai, None) is None and next(bi, None) is None, "α/β values left over"
    return out


class Act:
    """One activation; records what it was fed in `probe` (for the diagnostics only)."""

    def __init__(self, name, a, b, probe):
        self.name, self.a, self.b, self.probe = name, a, b, probe

    def __call__(self, v):
        n, a, b = self.name, self.a, self.b
        self.probe.setdefault("inputs", {}).setdefault(n, []).append(v.copy())
        if n == "Sigmoid":
            return 1.0 / (1.0 + np.exp(-v))
        if n == "Tanh":
            return np.tanh(v)
        if n == "Relu":
            return np.maximum(v, 0.0)
        if n == "HardSigmoid":
            return np.minimum(1.0, np.maximum(0.0, a * v + b))
        if n == "LeakyRelu":
            return np.where(v >= 0, v, a * v)
        if n == "ThresholdedRelu":
            m = float(np.min(np.abs(v - a)))
            self.probe["threshold_margin"] = min(self.probe.get("threshold_margin", m), m)
            return np.where(v > a, v, 0.0)
        if n == "ScaledTanh":
            return a * np.tanh(b * v)
        if n == "Affine":
            return a * v + b
        if n == "Elu":
            return np.where(v >= 0, v, a * np.expm1(np.minimum(v, 0.0)))
        if n == "Softsign":
            return v / (1.0 + np.abs(v))
        if n == "Softplus":
            return np.logaddexp(0.0, v)
        raise ValueError(n)


def reference(c, t, probe=None):
    """float64 ONNX GRU. t: W, R, B, X, optional sequence_lens / initial_h (any float dtype)."""
    probe = {} if probe is None else probe
    D = 2 if c["direction"] == "bidirectional" else 1
    H = c["H"]
    X = t["X"].astype(np.float64)
    T, Bn, _ = X.shape
    acts = [Act(n, a, b, probe) for n, a, b in resolve(c["acts"], c["alpha"], c["beta"])]
    if len(acts) == 2 and D == 2:
        acts = acts * 2
    clip = None if c["clip"] is None else float(np.float32(c["clip"]))

    def cl(v):
        if clip is None:
            return v
        probe.setdefault("clipped", []).append(np.abs(v) > clip)
        return np.clip(v, -clip, clip)

    lens = t.get("sequence_lens")
    h0 = t.get("initial_h")
    Y = np.zeros((T, D, Bn, H))
    Yh = np.zeros((D, Bn, H))
    for d in range(D):
        f, g = acts[2 * d], acts[2 * d + 1]
        W = t["W"][d].astype(np.float64)
        R = t["R"][d].astype(np.float64)
        Bv = t["B"][d].astype(np.float64)
        Wz, Wr, Wh = W[:H], W[H:2 * H], W[2 * H:]
        Rz, Rr, Rh = R[:H], R[H:2 * H], R[2 * H:]
        wbz, wbr, wbh, rbz, rbr, rbh = (Bv[k * H:(k + 1) * H] for k in range(6))
        reverse = c["direction"] == "reverse" or d == 1
        for b in range(Bn):
            h = np.zeros(H) if h0 is None else h0[d, b].astype(np.float64)
            L = T if lens is None else int(lens[b])
            for s in (range(L - 1, -1, -1) if reverse else range(L)):
                x = X[s, b]
                z = f(cl(Wz @ x + wbz + Rz @ h + rbz))
                r = f(cl(Wr @ x + wbr + Rr @ h + rbr))
                if c["lbr"]:
                    n = g(cl(Wh @ x + wbh + r * (Rh @ h + rbh)))
                else:
                    n = g(cl(Wh @ x + wbh + Rh @ (r * h) + rbh))
                h = (1.0 - z) * n + z * h
                Y[s, d, b] = h
            Yh[d, b] = h
    return Y, Yh


# ---------------------------------------------------------------------------------------------
# Building and running the ONNX model.
# ---------------------------------------------------------------------------------------------

def make_tensors(c):
    rng = np.random.default_rng(c["seed"])
    D = 2 if c["direction"] == "bidirectional" else 1
    T, B, I, H, w = c["T"], c["B"], c["I"], c["H"], c["w"]
    t = {
        "W": rng.uniform(-w, w, (D, 3 * H, I)).astype(np.float32),
        "R": rng.uniform(-w, w, (D, 3 * H, H)).astype(np.float32),
        "B": rng.uniform(-w, w, (D, 6 * H)).astype(np.float32),
        "X": (c["x"] * rng.standard_normal((T, B, I))).astype(np.float32),
    }
    if c["lens"] is not None:
        assert len(c["lens"]) == B and max(c["lens"]) <= T and min(c["lens"]) >= 1
        t["sequence_lens"] = np.array(c["lens"], dtype=np.int32)
    if c["h0"]:
        t["initial_h"] = rng.uniform(-1, 1, (D, B, H)).astype(np.float32)
    return t


def build_model(c, t):
    attrs = dict(hidden_size=c["H"], direction=c["direction"], linear_before_reset=c["lbr"],
                 activations=c["acts"])
    if c["alpha"]:
        attrs["activation_alpha"] = c["alpha"]
    if c["beta"]:
        attrs["activation_beta"] = c["beta"]
    if c["clip"] is not None:
        attrs["clip"] = float(c["clip"])
    names = ["X", "W", "R", "B", "sequence_lens", "initial_h"]
    node_inputs = [n if n in t else "" for n in names]
    while node_inputs[-1] == "":
        node_inputs.pop()
    node = helper.make_node("GRU", node_inputs, ["Y", "Y_h"], **attrs)
    inits = [helper.make_tensor(n, TensorProto.FLOAT, t[n].shape, t[n].flatten().tolist())
             for n in ("W", "R", "B")] if c["init"] else []
    feed_names = [n for n in names if n in t and not (c["init"] and n in ("W", "R", "B"))]
    inputs = [helper.make_tensor_value_info(
        n, TensorProto.INT32 if n == "sequence_lens" else TensorProto.FLOAT, list(t[n].shape))
        for n in feed_names]
    D = 2 if c["direction"] == "bidirectional" else 1
    outputs = [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [c["T"], D, c["B"], c["H"]]),
               helper.make_tensor_value_info("Y_h", TensorProto.FLOAT, [D, c["B"], c["H"]])]
    graph = helper.make_graph([node], c["name"], inputs, outputs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model, feed_names


def run_ort(model, feed):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    Y, Yh = sess.run(["Y", "Y_h"], feed)
    return Y, Yh


def metadata(c):
    return {
        "framework": "onnx",
        "input_size": str(c["I"]),
        "hidden_size": str(c["H"]),
        "direction": c["direction"],
        "linear_before_reset": str(c["lbr"]),
        "activations": json.dumps(c["acts"]),
        "activation_alpha": json.dumps(list(c["alpha"] or [])),
        "activation_beta": json.dumps(list(c["beta"] or [])),
        "clip": "none" if c["clip"] is None else json.dumps(float(c["clip"])),
    }


def sensitivity(c, t, trials=6):
    """Largest move of the float64 outputs when every float input is perturbed by ~2 f32 ulps."""
    rng = np.random.default_rng(12345)
    Y0, Yh0 = reference(c, t)
    worst = 0.0
    for _ in range(trials):
        p = {k: (v.astype(np.float64) * (1.0 + rng.uniform(-2.4e-7, 2.4e-7, v.shape))
                 if v.dtype == np.float32 else v) for k, v in t.items()}
        Y, Yh = reference(c, p)
        worst = max(worst, float(np.max(np.abs(Y - Y0))), float(np.max(np.abs(Yh - Yh0))))
    return worst


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "tests", "data",
                                                                 "onnx_activations")
    names = [c["name"] for c in CASES]
    assert len(names) == len(set(names))
    print(f"onnx {onnx.__version__}, onnxruntime {ort.__version__}, numpy {np.__version__}")
    worst, failures, files = 0.0, [], []
    for c in CASES:
        t = make_tensors(c)
        model, feed_names = build_model(c, t)
        Y, Yh = run_ort(model, {n: t[n] for n in feed_names})
        D = 2 if c["direction"] == "bidirectional" else 1
        assert Y.shape == (c["T"], D, c["B"], c["H"]) and Yh.shape == (D, c["B"], c["H"])
        assert np.all(np.isfinite(Y)) and np.all(np.isfinite(Yh))
        probe = {}
        rY, rYh = reference(c, t, probe)
        err = max(float(np.max(np.abs(Y - rY))), float(np.max(np.abs(Yh - rYh))))
        sens = sensitivity(c, t)
        margin = probe.get("threshold_margin", float("inf"))
        amax = float(max(np.max(np.abs(Y)), np.max(np.abs(Yh))))
        worst = max(worst, err)
        # what each activation saw: the fraction of its inputs beyond ±1 and the fraction < 0
        seen = " ".join(f"{n}:{np.mean(np.abs(np.concatenate(v)) > 1):.2f}/"
                        f"{np.mean(np.concatenate(v) < 0):.2f}" for n, v in probe["inputs"].items())
        if "clipped" in probe:
            seen += f" clipped:{np.mean(np.concatenate(probe['clipped'])):.2f}"
        print(f"{c['name']:44s} max|Y|={amax:5.2f} ort-f64={err:.1e} sens={sens:.1e}"
              + (f" margin={margin:.3f}" if margin < float("inf") else "") + f"  [{seen}]")
        if err > TOL:
            failures.append(f"{c['name']}: onnxruntime differs from the float64 reference by {err}")
        if sens > 0.3 * TOL:
            failures.append(f"{c['name']}: ill-conditioned for f32 (sensitivity {sens})")
        if margin < 1e-2:
            failures.append(f"{c['name']}: a ThresholdedRelu input lies {margin} from its α")
        if c["clip"] is not None and not np.any(np.concatenate(probe["clipped"])):
            failures.append(f"{c['name']}: the clip never acts")
        for n, v in probe["inputs"].items():
            v = np.concatenate(v)
            if np.mean(np.abs(v) > 1) < 0.05 or not 0.1 <= np.mean(v < 0) <= 0.9:
                failures.append(f"{c['name']}: {n} sees too narrow a range of inputs")
        tensors = {"W": t["W"], "R": t["R"], "B": t["B"], "X": t["X"],
                   "expected_Y": Y.astype(np.float32), "expected_Y_h": Yh.astype(np.float32)}
        for k in ("sequence_lens", "initial_h"):
            if k in t:
                tensors[k] = t[k]
        files.append((c["name"] + ".safetensors", tensors, metadata(c)))
    if failures:
        sys.exit("FAILED (nothing written):\n" + "\n".join(failures))
    os.makedirs(out_dir, exist_ok=True)
    for name, tensors, meta in files:
        save_file(tensors, os.path.join(out_dir, name), metadata=meta)
    print(f"{len(files)} cases written to {os.path.normpath(out_dir)}; "
          f"worst onnxruntime vs float64: {worst:.1e}")


if __name__ == "__main__":
    main()
