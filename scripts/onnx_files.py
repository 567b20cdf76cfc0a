#!/usr/bin/env python3
"""Real `.onnx` model files plus their expected GRU outputs, for the `.onnx` file reader.

    python3 scripts/onnx_files.py [OUT_DIR]      (default: tests/data/onnx_files)

Needs `pip install onnx onnxruntime torch numpy safetensors`. Each case is `NAME.onnx` (a
`torch.onnx.export`, or a graph made here with `onnx.helper`) and `NAME.case.safetensors`, in the
format of `onnx_files/` in the shared golden README:

- `X`: what the FIRST GRU node reads, in that node's layout ([T,B,I], or [B,T,I] for layout=1);
- `initial_h`: only when the graph takes it as a graph input (metadata `h0_is_input=true`), in the
  shape the graph input has;
- `sequence_lens` (int32): only when the graph takes it as a graph input;
- `expected_Y`: ONNX Runtime's Y of the LAST GRU node ([T,D,B,H], or [B,T,D,H] for layout=1);
- `expected_Y_h`: every GRU node's Y_h in graph order, concatenated along the direction axis
  ([L*D,B,H], or [B,L*D,H] for layout=1).

`__metadata__`: `layout`, `h0_is_input`, `note`, `gru_nodes` (the number of GRU nodes whose Y_h
are in `expected_Y_h`), and `node` for the case that names the GRU node to run.

The committed `.onnx` is the original export / graph. To read the X of the first node and the
Y_h of intermediate nodes, ONNX Runtime runs a copy with those tensors added as graph outputs
(the copy is never written). ONNX Runtime refuses `layout=1`, so `hand_layout1`'s expected values
come from a layout-0 twin of the same node, transposed.

Checks (the script fails and writes nothing if one does not hold):
- torch exports: ONNX Runtime's outputs agree with torch's own forward (nn.GRU y and h_n, and the
  exported module's outputs) within 1e-5;
- hand-made graphs: ONNX Runtime's outputs agree with an independent float64 NumPy GRU with ONNX
  semantics within 1e-5 (for hand_layout1: the NumPy GRU runs in layout 1 itself);
- the final graph outputs of every model, as ONNX Runtime computes them from the committed file,
  agree with the extended copy (the added outputs did not change the graph).

The default torch exporter (`dynamo=True`) needs `onnxscript`, which is not installed here, so
every torch export uses the TorchScript exporter (`dynamo=False`) at opset 14, like the public
`torch_export_basic` case.
"""
import os
import shutil
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import TensorProto, helper, numpy_helper
from safetensors.numpy import save_file

OPSET = 14
TOL = 1e-5
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PUBLIC = os.path.join(os.path.dirname(ROOT), "shared", "golden", "onnx_files")
PUBLIC_CASES = ["torch_export_basic", "hand_forward"]


# ---------------------------------------------------------------------------------------------
# ONNX Runtime on an extended copy
# ---------------------------------------------------------------------------------------------

def gru_nodes(model, node=None):
    nodes = [n for n in model.graph.node if n.op_type == "GRU"]
    if node is not None:
        nodes = [n for n in nodes if n.name == node]
        assert len(nodes) == 1, node
    return nodes


def session(model):
    so = ort.SessionOptions()
    so.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def run_extended(model, feeds, node=None):
    """Runs a copy of `model` with the first chosen GRU node's X, the last node's Y and every
    node's Y_h as graph outputs. Returns (X, Y of last, [Y_h per node], plain outputs)."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    nodes = gru_nodes(m, node)
    for i, n in enumerate(nodes):
        while len(n.output) < 2:
            n.output.append("")
        if n.output[0] == "":
            n.output[0] = f"__case_Y_{i}"
        if n.output[1] == "":
            n.output[1] = f"__case_Y_h_{i}"
    graph_inputs = {i.name for i in m.graph.input}
    existing = {o.name for o in m.graph.output}
    x_name = nodes[0].input[0]
    wanted = [nodes[-1].output[0]] + [n.output[1] for n in nodes]
    if x_name not in graph_inputs:
        wanted.append(x_name)
    for name in wanted:
        if name not in existing:
            m.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
            existing.add(name)
    names = [o.name for o in m.graph.output]
    res = dict(zip(names, session(m).run(names, feeds)))
    x = feeds[x_name] if x_name in graph_inputs else res[x_name]
    return x, res[nodes[-1].output[0]], [res[n.output[1]] for n in nodes], res


def run_plain(model, feeds):
    s = session(model)
    names = [o.name for o in s.get_outputs()]
    return dict(zip(names, s.run(names, feeds)))


def maxdiff(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.max(np.abs(a - b))) if a.size else 0.0


# ---------------------------------------------------------------------------------------------
# Independent float64 NumPy GRU (ONNX semantics, gate order z, r, h)
# ---------------------------------------------------------------------------------------------

def _acts(names, alphas, betas):
    uses_a = {"Affine", "LeakyRelu", "ThresholdedRelu", "ScaledTanh", "HardSigmoid", "Elu"}
    uses_b = {"Affine", "ScaledTanh", "HardSigmoid"}
    da = {"LeakyRelu": 0.01, "ThresholdedRelu": 1.0, "HardSigmoid": 0.2, "Elu": 1.0}
    db = {"HardSigmoid": 0.5}
    al, be, out = list(alphas), list(betas), []
    for n in names:
        a = al.pop(0) if n in uses_a and al else da.get(n, 0.0)
        b = be.pop(0) if n in uses_b and be else db.get(n, 0.0)
        out.append({"Sigmoid": lambda v: 1 / (1 + np.exp(-v)), "Tanh": np.tanh,
                    "HardSigmoid": lambda v, a=a, b=b: np.clip(a * v + b, 0, 1)}[n])
    return out


def np_gru(x, W, R, B=None, h0=None, lens=None, direction="forward", lbr=0, layout=0,
           acts=None, alpha=(), beta=(), clip=None):
    """x [T,B,I] (layout 0) or [B,T,I] (layout 1); returns Y, Y_h in the same layout."""
    x = np.asarray(x, np.float64)
    if layout == 1:
        x = x.transpose(1, 0, 2)
        if h0 is not None:
            h0 = np.asarray(h0).transpose(1, 0, 2)
    T, Bn, _ = x.shape
    D = 2 if direction == "bidirectional" else 1
    H = R.shape[-1]
    W, R = np.asarray(W, np.float64), np.asarray(R, np.float64)
    B = np.zeros((D, 6 * H)) if B is None else np.asarray(B, np.float64)
    h0 = np.zeros((D, Bn, H)) if h0 is None else np.asarray(h0, np.float64)
    acts = acts or ["Sigmoid", "Tanh"] * D
    fns = _acts(acts, alpha, beta)
    c = (lambda v: np.clip(v, -clip, clip)) if clip is not None else (lambda v: v)
    Y = np.zeros((T, D, Bn, H))
    Yh = np.zeros((D, Bn, H))
    for d in range(D):
        f, g = fns[2 * d], fns[2 * d + 1]
        rev = direction == "reverse" or d == 1
        Wz, Wr, Wh = np.split(W[d], 3)
        Rz, Rr, Rh = np.split(R[d], 3)
        wbz, wbr, wbh, rbz, rbr, rbh = np.split(B[d], 6)
        for b in range(Bn):
            h = h0[d, b].copy()
            L = T if lens is None else int(lens[b])
            for t in (range(L - 1, -1, -1) if rev else range(L)):
                xt = x[t, b]
                z = f(c(Wz @ xt + Rz @ h + wbz + rbz))
                r = f(c(Wr @ xt + Rr @ h + wbr + rbr))
                if lbr:
                    n = g(c(Wh @ xt + r * (Rh @ h + rbh) + wbh))
                else:
                    n = g(c(Wh @ xt + Rh @ (r * h) + rbh + wbh))
                h = (1 - z) * n + z * h
                Y[t, d, b] = h
            Yh[d, b] = h
    if layout == 1:
        return Y.transpose(2, 0, 1, 3), Yh.transpose(1, 0, 2)
    return Y, Yh


# ---------------------------------------------------------------------------------------------
# Writing a case
# ---------------------------------------------------------------------------------------------

PENDING = []   # (name, writer) run only once every case has passed its checks


def add_case(name, model, tensors, meta, side_files=None):
    """model: ModelProto to save as NAME.onnx (or a callable(out_dir) that saves it)."""
    for k, v in tensors.items():
        if k != "sequence_lens":
            assert v.dtype == np.float32, (name, k, v.dtype)
    meta = {k: str(v) for k, v in meta.items()}

    def write(out):
        if callable(model):
            model(out)
        else:
            onnx.save(model, os.path.join(out, name + ".onnx"))
        save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()},
                  os.path.join(out, name + ".case.safetensors"), metadata=meta)
    PENDING.append((name, write))


def cat_yh(yhs, layout=0):
    return np.concatenate(yhs, axis=1 if layout == 1 else 0).astype(np.float32)


def report(name, **diffs):
    print(f"{name:28s} " + "  ".join(f"{k}={v:.2e}" for k, v in diffs.items()))
    for k, v in diffs.items():
        assert v <= TOL, (name, k, v)


# ---------------------------------------------------------------------------------------------
# torch exports (TorchScript exporter, opset 14)
# ---------------------------------------------------------------------------------------------

def export(module, args, input_names, output_names):
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "m.onnx")
        torch.onnx.export(module, args, p, input_names=input_names, output_names=output_names,
                          opset_version=OPSET, dynamo=False)
        return onnx.load(p)


def torch_case(name, module, gru, args, input_names, output_names, note, h0_is_input=False):
    module.eval()
    model = export(module, args, input_names, output_names)
    onnx.checker.check_model(model)
    feeds = {n: a.numpy() for n, a in zip(input_names, args)}
    x, y, yhs, outs = run_extended(model, feeds)
    plain = run_plain(model, feeds)
    with torch.no_grad():
        mod_out = module(*args)
        mod_out = mod_out if isinstance(mod_out, tuple) else (mod_out,)
        # nn.GRU alone on what the GRU sees, to compare Y / h_n in ONNX's layout
        x_seq = args[0]
        gru_y, gru_h = gru(x_seq, args[1]) if h0_is_input else gru(x_seq)
    if gru.batch_first:
        gru_y = gru_y.transpose(0, 1)                  # -> [T,B,D*H]
        x_t = args[0].transpose(0, 1).numpy()
    else:
        x_t = args[0].numpy()
    D = 2 if gru.bidirectional else 1
    T, Bn = gru_y.shape[:2]
    torch_Y = gru_y.reshape(T, Bn, D, gru.hidden_size).permute(0, 2, 1, 3).numpy()
    n = len(gru_nodes(model))
    assert n == gru.num_layers, (name, n)
    Yh = cat_yh(yhs)
    report(name,
           X=maxdiff(x, x_t),
           Y_vs_torch=maxdiff(y, torch_Y),
           Yh_vs_torch=maxdiff(Yh, gru_h.numpy()),
           outputs_vs_module=max(maxdiff(plain[o], t.numpy())
                                 for o, t in zip(output_names, mod_out)),
           plain_vs_extended=max(maxdiff(plain[o], outs[o]) for o in plain))
    tensors = {"X": x.astype(np.float32), "expected_Y": y.astype(np.float32), "expected_Y_h": Yh}
    if h0_is_input:
        tensors["initial_h"] = feeds[input_names[1]].astype(np.float32)
    add_case(name, model, tensors, dict(layout=0, h0_is_input=str(h0_is_input).lower(),
                                        note=note, gru_nodes=n))
    return model


class GruWithH0(torch.nn.Module):
    def __init__(self, gru):
        super().__init__()
        self.gru = gru

    def forward(self, x, h0):
        return self.gru(x, h0)


class GruHead(torch.nn.Module):
    def __init__(self, I, H, classes):
        super().__init__()
        self.gru = torch.nn.GRU(I, H, batch_first=True)
        self.fc = torch.nn.Linear(H, classes)

    def forward(self, x):
        y, _ = self.gru(x)
        return torch.softmax(self.fc(y[:, -1, :]), dim=-1)


def torch_cases():
    torch.manual_seed(11)
    g = torch.nn.GRU(3, 4, num_layers=2, bidirectional=True)
    torch_case("torch_export_2layer_bidir", g, g, (torch.randn(5, 2, 3),), ["X"], ["y", "h"],
               "torch.onnx.export (dynamo=False, opset 14) of nn.GRU(3, 4, num_layers=2, "
               "bidirectional=True); between the GRU nodes Transpose(perm 0,2,1,3) -> "
               "Reshape([0,0,-1]); each node's initial_h is its own Expand of a [2,2,4] zero "
               "Constant to [2,B,4]; graph output h = Concat(axis 0) of the two Y_h")

    torch.manual_seed(12)
    g = torch.nn.GRU(4, 5, batch_first=True)
    torch_case("torch_export_batch_first", g, g, (torch.randn(3, 5, 4),), ["X"], ["y", "h"],
               "torch.onnx.export (dynamo=False, opset 14) of nn.GRU(4, 5, batch_first=True); "
               "graph input X is [B,T,I] and a Transpose(perm 1,0,2) feeds the GRU node "
               "(layout 0), so the case's X is [T,B,I]; initial_h is an Expand of zeros")

    torch.manual_seed(13)
    g = torch.nn.GRU(3, 5, num_layers=2)
    m = GruWithH0(g)
    torch_case("torch_export_h0_input", m, g, (torch.randn(5, 2, 3), torch.randn(2, 2, 5)),
               ["X", "h0"], ["y", "h"],
               "torch.onnx.export (dynamo=False, opset 14) of forward(x, h0) = nn.GRU(3, 5, "
               "num_layers=2)(x, h0); h0 [2,B,5] is a graph input that Slice nodes cut per "
               "layer; between the nodes Squeeze(axis 1)", h0_is_input=True)

    torch.manual_seed(14)
    m = GruHead(4, 6, 3)
    torch_case("torch_export_head", m, m.gru, (torch.randn(2, 5, 4),), ["X"], ["probs"],
               "torch.onnx.export (dynamo=False, opset 14) of nn.GRU(4, 6, batch_first=True) "
               "-> y[:, -1, :] -> nn.Linear(6, 3) -> softmax; Transpose before the GRU node; "
               "the GRU's Y_h is an unused node output; the head after the GRU node is not "
               "part of the case")


# ---------------------------------------------------------------------------------------------
# hand-made graphs
# ---------------------------------------------------------------------------------------------

def weights(rng, D, I, H, w=0.6):
    return (rng.uniform(-w, w, (D, 3 * H, I)).astype(np.float32),
            rng.uniform(-w, w, (D, 3 * H, H)).astype(np.float32),
            rng.uniform(-w, w, (D, 6 * H)).astype(np.float32))


def make_model(nodes, name, inputs, outputs, inits):
    g = helper.make_graph(nodes, name, inputs, outputs, inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)],
                          producer_name="wgpu-gru scripts/onnx_files.py")
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


def vi(name, shape, dt=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, dt, shape)


def float_data_tensor(name, a):
    """An initializer with typed float_data instead of raw_data."""
    return helper.make_tensor(name, TensorProto.FLOAT, a.shape, a.flatten().tolist(), raw=False)


def check_hand(name, model, feeds, ref, layout=0, node=None, twin=None, twin_feeds=None):
    """ref: (Y, Y_h) of the NumPy GRU for the chosen node. twin: the layout-0 model ORT runs."""
    run_model, run_feeds = (twin, twin_feeds) if twin is not None else (model, feeds)
    x, y, yhs, outs = run_extended(run_model, run_feeds, node)
    Yh = cat_yh(yhs)
    if layout == 1:
        x = x.transpose(1, 0, 2)
        y = y.transpose(2, 0, 1, 3)
        Yh = Yh.transpose(1, 0, 2)
    plain = run_plain(run_model, run_feeds)
    report(name, Y_vs_numpy=maxdiff(y, ref[0]), Yh_vs_numpy=maxdiff(Yh, ref[1]),
           plain_vs_extended=max(maxdiff(plain[o], outs[o]) for o in plain))
    return x.astype(np.float32), y.astype(np.float32), Yh.astype(np.float32)


HAND_CASES = []   # (function, seed) for each hand-made case, in the order they run


def hand_case(seed):
    """Registers `fn(name, rng)` as a hand-made case named after it, run with
    `rng = np.random.default_rng(seed)`. It builds and checks the graph and returns (model,
    tensors, meta) for `add_case`; its docstring, white space folded, is the case's note, and meta
    adds to (or overrides) layout 0, h0_is_input (whether `initial_h` is a tensor) and one GRU
    node."""
    def register(fn):
        HAND_CASES.append((fn, seed))
        return fn
    return register


def hand_cases():
    for fn, seed in HAND_CASES:
        name = fn.__name__
        model, tensors, meta = fn(name, np.random.default_rng(seed))
        add_case(name, model, tensors,
                 {"layout": 0, "h0_is_input": str("initial_h" in tensors).lower(), "gru_nodes": 1,
                  **meta, "note": " ".join(fn.__doc__.split())})


@hand_case(501)
def hand_layout1(name, rng):
    """one GRU node with layout=1, bidirectional, linear_before_reset=1; X [B,T,I] and initial_h
    [B,D,H] are graph inputs; ONNX Runtime refuses layout=1, so the expected values come from a
    layout-0 twin with the same weights, transposed (Y [B,T,D,H], Y_h [B,D,H])"""
    T, Bn, I, H, D = 5, 3, 4, 5, 2
    W, R, B = weights(rng, D, I, H)
    x = rng.normal(size=(Bn, T, I)).astype(np.float32)
    h0 = rng.normal(0, 0.5, (Bn, D, H)).astype(np.float32)

    def build(layout):
        xs = [Bn, T, I] if layout else [T, Bn, I]
        hs = [Bn, D, H] if layout else [D, Bn, H]
        node = helper.make_node("GRU", ["X", "W", "R", "B", "", "initial_h"], ["Y", "Y_h"],
                                name="gru0", hidden_size=H, direction="bidirectional",
                                linear_before_reset=1, layout=layout)
        ys = [Bn, T, D, H] if layout else [T, D, Bn, H]
        ybs = [Bn, D, H] if layout else [D, Bn, H]
        return make_model([node], name, [vi("X", xs), vi("initial_h", hs)],
                          [vi("Y", ys), vi("Y_h", ybs)],
                          [numpy_helper.from_array(W, "W"), numpy_helper.from_array(R, "R"),
                           numpy_helper.from_array(B, "B")])
    model, twin = build(1), build(0)
    ref = np_gru(x, W, R, B, h0, direction="bidirectional", lbr=1, layout=1)
    xo, y, Yh = check_hand(name, model, {"X": x, "initial_h": h0}, ref, layout=1, twin=twin,
                           twin_feeds={"X": x.transpose(1, 0, 2).copy(),
                                       "initial_h": h0.transpose(1, 0, 2).copy()})
    assert np.array_equal(xo, x)
    return model, {"X": x, "initial_h": h0, "expected_Y": y, "expected_Y_h": Yh}, {"layout": 1}


@hand_case(601)
def hand_float_data(name, rng):
    """one GRU node; W/R/B initializers stored as typed float_data (no raw_data); sequence_lens
    int32 [5,2,4] is a graph input; activations [HardSigmoid, Tanh], activation_alpha [0.3],
    activation_beta [0.6], clip 1.5, linear_before_reset 0; Y is zero past each length"""
    T, Bn, I, H = 5, 3, 4, 5
    W, R, B = weights(rng, 1, I, H, w=1.2)
    x = (2.0 * rng.normal(size=(T, Bn, I))).astype(np.float32)
    lens = np.array([5, 2, 4], np.int32)
    attrs = dict(hidden_size=H, activations=["HardSigmoid", "Tanh"], activation_alpha=[0.3],
                 activation_beta=[0.6], clip=1.5, linear_before_reset=0)
    node = helper.make_node("GRU", ["X", "W", "R", "B", "sequence_lens"], ["Y", "Y_h"],
                            name="gru0", **attrs)
    model = make_model([node], name, [vi("X", [T, Bn, I]), vi("sequence_lens", [Bn],
                                                                TensorProto.INT32)],
                       [vi("Y", [T, 1, Bn, H]), vi("Y_h", [1, Bn, H])],
                       [float_data_tensor("W", W), float_data_tensor("R", R),
                        float_data_tensor("B", B)])
    assert all(not t.raw_data and len(t.float_data) for t in model.graph.initializer)
    ref = np_gru(x, W, R, B, lens=lens, acts=["HardSigmoid", "Tanh"], alpha=[0.3], beta=[0.6],
                 clip=1.5)
    # the clip must act: without it the float64 outputs move by more than 1e-2
    unclipped = np_gru(x, W, R, B, lens=lens, acts=["HardSigmoid", "Tanh"], alpha=[0.3],
                       beta=[0.6])
    assert maxdiff(unclipped[0], ref[0]) > 1e-2, maxdiff(unclipped[0], ref[0])
    xo, y, Yh = check_hand(name, model, {"X": x, "sequence_lens": lens}, ref)
    return model, {"X": xo, "sequence_lens": lens, "expected_Y": y, "expected_Y_h": Yh}, {}


@hand_case(701)
def hand_external(name, rng):
    """one GRU node, linear_before_reset=1; every initializer (W, R, B, initial_h) is external
    data in hand_external.onnx.data (one file, offsets/lengths in external_data)"""
    T, Bn, I, H = 5, 2, 3, 4
    W, R, B = weights(rng, 1, I, H)
    h0 = rng.normal(0, 0.5, (1, Bn, H)).astype(np.float32)
    x = rng.normal(size=(T, Bn, I)).astype(np.float32)
    node = helper.make_node("GRU", ["X", "W", "R", "B", "", "initial_h"], ["Y", "Y_h"],
                            name="gru0", hidden_size=H, linear_before_reset=1)
    model = make_model([node], name, [vi("X", [T, Bn, I])],
                       [vi("Y", [T, 1, Bn, H]), vi("Y_h", [1, Bn, H])],
                       [numpy_helper.from_array(a, n) for a, n in
                        [(W, "W"), (R, "R"), (B, "B"), (h0, "initial_h")]])
    ref = np_gru(x, W, R, B, h0, lbr=1)
    xo, y, Yh = check_hand(name, model, {"X": x}, ref)

    def save(out):
        m = onnx.ModelProto()
        m.CopyFrom(model)
        data = name + ".onnx.data"
        if os.path.exists(os.path.join(out, data)):
            os.remove(os.path.join(out, data))
        onnx.external_data_helper.convert_model_to_external_data(
            m, all_tensors_to_one_file=True, location=data, size_threshold=0)
        onnx.save(m, os.path.join(out, name + ".onnx"))
        # reload from disk and check ORT reads the external data the same way
        back = onnx.load(os.path.join(out, name + ".onnx"), load_external_data=False)
        assert all(t.data_location == TensorProto.EXTERNAL for t in back.graph.initializer)
        s = ort.InferenceSession(os.path.join(out, name + ".onnx"),
                                 providers=["CPUExecutionProvider"])
        got = s.run(["Y", "Y_h"], {"X": x})
        assert maxdiff(got[0], y) == 0 and maxdiff(got[1], Yh) == 0
    return save, {"X": xo, "expected_Y": y, "expected_Y_h": Yh}, {}


def hand_cast(name, rng, np_dt, onnx_dt):
    T, Bn, I, H = 5, 2, 3, 4
    W, R, B = weights(rng, 2, I, H)
    W, R, B = (a.astype(np_dt) for a in (W, R, B))
    x = rng.normal(size=(T, Bn, I)).astype(np.float32)
    nodes = [helper.make_node("Cast", [n + "_" + np.dtype(np_dt).name], [n], name="cast_" + n,
                              to=TensorProto.FLOAT) for n in "WRB"]
    nodes.append(helper.make_node("GRU", ["X", "W", "R", "B"], ["Y", "Y_h"], name="gru0",
                                  hidden_size=H, direction="bidirectional"))
    model = make_model(nodes, name, [vi("X", [T, Bn, I])],
                       [vi("Y", [T, 2, Bn, H]), vi("Y_h", [2, Bn, H])],
                       [numpy_helper.from_array(a, n + "_" + np.dtype(np_dt).name)
                        for a, n in [(W, "W"), (R, "R"), (B, "B")]])
    assert all(t.data_type == onnx_dt for t in model.graph.initializer)
    f32 = [a.astype(np.float32) for a in (W, R, B)]   # what Cast(to=FLOAT) gives
    ref = np_gru(x, *f32, direction="bidirectional")
    xo, y, Yh = check_hand(name, model, {"X": x}, ref)
    return model, {"X": xo, "expected_Y": y, "expected_Y_h": Yh}, {}


@hand_case(801)
def hand_f16(name, rng):
    """W/R/B are float16 initializers (raw_data), each followed by Cast(to=FLOAT) that feeds the
    GRU node (bidirectional, linear_before_reset 0); X stays float32. The reader has to follow
    Cast to reach the weights"""
    return hand_cast(name, rng, np.float16, TensorProto.FLOAT16)


@hand_case(802)
def hand_double(name, rng):
    """W/R/B are float64 initializers (raw_data), each followed by Cast(to=FLOAT) that feeds the
    GRU node (bidirectional, linear_before_reset 0); Cast rounds to nearest f32. ONNX Runtime's
    GRU itself does not support double"""
    return hand_cast(name, rng, np.float64, TensorProto.DOUBLE)


@hand_case(901)
def hand_initial_h_const(name, rng):
    """one GRU node, direction reverse, linear_before_reset 1; initial_h [1,3,5] (non-zero) is
    the output of a Constant node (value attribute, raw_data)"""
    T, Bn, I, H = 5, 3, 3, 5
    W, R, B = weights(rng, 1, I, H)
    h0 = rng.uniform(-0.9, 0.9, (1, Bn, H)).astype(np.float32)
    x = rng.normal(size=(T, Bn, I)).astype(np.float32)
    nodes = [helper.make_node("Constant", [], ["h0_const"], name="h0",
                              value=numpy_helper.from_array(h0, "h0_value")),
             helper.make_node("GRU", ["X", "W", "R", "B", "", "h0_const"], ["Y", "Y_h"],
                              name="gru0", hidden_size=H, direction="reverse",
                              linear_before_reset=1)]
    model = make_model(nodes, name, [vi("X", [T, Bn, I])],
                       [vi("Y", [T, 1, Bn, H]), vi("Y_h", [1, Bn, H])],
                       [numpy_helper.from_array(a, n) for a, n in [(W, "W"), (R, "R"), (B, "B")]])
    ref = np_gru(x, W, R, B, h0, direction="reverse", lbr=1)
    xo, y, Yh = check_hand(name, model, {"X": x}, ref)
    return model, {"X": xo, "expected_Y": y, "expected_Y_h": Yh}, {}


@hand_case(1001)
def hand_two_chains(name, rng):
    """two unrelated GRU nodes: gru_a (forward, I=3, H=4) reads graph input X1, gru_b
    (bidirectional, linear_before_reset 1, I=4, H=5) reads X2. A reader must refuse the file
    unless a node is chosen by name; this case is gru_b alone (X = X2)"""
    T, Bn = 5, 2
    Ia, Ha, Ib, Hb = 3, 4, 4, 5
    Wa, Ra, Ba = weights(rng, 1, Ia, Ha)
    Wb, Rb, Bb = weights(rng, 2, Ib, Hb)
    x1 = rng.normal(size=(T, Bn, Ia)).astype(np.float32)
    x2 = rng.normal(size=(T, Bn, Ib)).astype(np.float32)
    nodes = [helper.make_node("GRU", ["X1", "Wa", "Ra", "Ba"], ["Ya", "Ya_h"], name="gru_a",
                              hidden_size=Ha),
             helper.make_node("GRU", ["X2", "Wb", "Rb", "Bb"], ["Yb", "Yb_h"], name="gru_b",
                              hidden_size=Hb, direction="bidirectional", linear_before_reset=1)]
    model = make_model(nodes, name, [vi("X1", [T, Bn, Ia]), vi("X2", [T, Bn, Ib])],
                       [vi("Ya", [T, 1, Bn, Ha]), vi("Ya_h", [1, Bn, Ha]),
                        vi("Yb", [T, 2, Bn, Hb]), vi("Yb_h", [2, Bn, Hb])],
                       [numpy_helper.from_array(a, n) for a, n in
                        [(Wa, "Wa"), (Ra, "Ra"), (Ba, "Ba"), (Wb, "Wb"), (Rb, "Rb"),
                         (Bb, "Bb")]])
    ref = np_gru(x2, Wb, Rb, Bb, direction="bidirectional", lbr=1)
    xo, y, Yh = check_hand(name, model, {"X1": x1, "X2": x2}, ref, node="gru_b")
    assert np.array_equal(xo, x2)
    return model, {"X": xo, "expected_Y": y, "expected_Y_h": Yh}, {"node": "gru_b"}


# ---------------------------------------------------------------------------------------------

def check_public():
    """The public cases are copied verbatim; re-check them with this script's ORT run."""
    from safetensors.numpy import load_file
    for name in PUBLIC_CASES:
        model = onnx.load(os.path.join(PUBLIC, name + ".onnx"))
        case = load_file(os.path.join(PUBLIC, name + ".case.safetensors"))
        x, y, yhs, _ = run_extended(model, {model.graph.input[0].name: case["X"]})
        report(name + " (public)", Y=maxdiff(y, case["expected_Y"]),
               Yh=maxdiff(cat_yh(yhs), case["expected_Y_h"]))


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "tests", "data", "onnx_files")
    print(f"onnx {onnx.__version__}, onnxruntime {ort.__version__}, torch {torch.__version__}, "
          f"numpy {np.__version__}")
    check_public()
    torch_cases()
    hand_cases()
    os.makedirs(out, exist_ok=True)
    for name in PUBLIC_CASES:
        for ext in (".onnx", ".case.safetensors"):
            dst = os.path.join(out, name + ext)
            if os.path.exists(dst):
                os.chmod(dst, 0o644)
            shutil.copyfile(os.path.join(PUBLIC, name + ext), dst)
            os.chmod(dst, 0o644)
    for name, write in PENDING:
        write(out)
    for f in os.listdir(out):
        if f.endswith((".onnx", ".safetensors", ".data")):
            os.chmod(os.path.join(out, f), 0o644)
    print(f"wrote {len(PENDING)} cases (+{len(PUBLIC_CASES)} public copies) to {out}")


if __name__ == "__main__":
    main()
