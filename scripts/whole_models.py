#!/usr/bin/env python3
"""Whole saved models and their frameworks' predictions, for `wgpu-gru predict`.

    KERAS_BACKEND=torch python3 scripts/whole_models.py [OUT_DIR]   (default: tests/data/models)

Needs `pip install keras torch onnx onnxscript onnxruntime h5py scikit-learn safetensors numpy`.
Each case is the model file as the framework saved it (`NAME.keras`, `NAME.h5` or `NAME.onnx`,
with `NAME.onnx.data` where the dynamo exporter writes external data) and `NAME.case.safetensors`
in the format of `../shared/golden/models/README.md`: tensors `x`, `y` (float32), metadata
`model`, `framework`, `description`, `tol`. `y` is Keras's `model.predict(x)` or ONNX Runtime's
first output for the graph's first input `x`. Every case is seeded, so the files are
reproducible. The script checks each saved file: Keras reloads it and predicts the same y; ONNX
cases agree with the torch module within 1e-5.
"""
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np
import torch
import keras
import onnxruntime as ort
from safetensors.numpy import save_file
from sklearn.datasets import load_digits

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(HERE), "tests", "data", "models")
TOL = "1e-5"
torch.set_num_threads(1)


def save_case(name, model_file, framework, description, x, y):
    meta = {"model": model_file, "framework": framework, "description": description, "tol": TOL}
    save_file({"x": np.ascontiguousarray(x, np.float32), "y": np.ascontiguousarray(y, np.float32)},
              os.path.join(OUT, name + ".case.safetensors"), metadata=meta)
    print(f"{name}: x {list(x.shape)} -> y {list(y.shape)}")


def keras_case(name, layers, x_train, y_train, loss, x, description, ext="keras", epochs=2, functional=False):
    keras.utils.set_random_seed(7)
    if functional:
        inp = keras.Input(shape=(None, x.shape[2]))
        h = inp
        for l in layers:
            h = l(h)
        model = keras.Model(inp, h)
    else:
        model = keras.Sequential([keras.Input(shape=x.shape[1:])] + layers)
    model.compile(optimizer="adam", loss=loss)
    model.fit(x_train, y_train, epochs=epochs, batch_size=16, verbose=0)
    y = model.predict(x, verbose=0)
    path = os.path.join(OUT, f"{name}.{ext}")
    model.save(path)
    again = keras.models.load_model(path, compile=False).predict(x, verbose=0)
    assert np.abs(again - y).max() <= 1e-6, name
    save_case(name, os.path.basename(path), f"keras {keras.__version__}", description, x, y)


def rng(seed):
    return np.random.default_rng(seed)


def keras_cases():
    L = keras.layers
    # The founding document's model: GRU(128, tanh) -> Dense(10, softmax), on the 8x8 digits read
    # as 8 steps of 8 pixels, trained with model.fit.
    d = load_digits()
    xs = (d.images / 16.0).astype(np.float32)
    ys = keras.utils.to_categorical(d.target, 10)
    keras_case("own_k_founding", [L.GRU(128, activation="tanh"), L.Dense(10, activation="softmax")],
               xs[:1400], ys[:1400], "categorical_crossentropy", xs[1400:1460],
               "the founding model: Sequential GRU(128, tanh) -> Dense(10, softmax), 3 epochs of model.fit "
               "on sklearn digits (8 steps of 8 pixels); x = 60 held-out digits", epochs=3)
    r = rng(1)
    x = r.normal(size=(64, 9, 5)).astype(np.float32)
    keras_case("own_k_stacked_h5", [L.GRU(16, return_sequences=True), L.GRU(8, reset_after=False),
                                    L.Dense(3, activation="softmax")],
               x, keras.utils.to_categorical((x[:, :, 0].sum(1) > 0).astype(int) + (x[:, 0, 1] > 1), 3),
               "categorical_crossentropy", x[:6],
               "GRU(16, return_sequences) -> GRU(8, reset_after=False) -> Dense(3, softmax), legacy .h5",
               ext="h5")
    r = rng(2)
    x = r.normal(size=(48, 12, 4)).astype(np.float32)
    keras_case("own_k_bidir_sum_mul", [L.Bidirectional(L.GRU(9, return_sequences=True), merge_mode="sum"),
                                       L.Bidirectional(L.GRU(5), merge_mode="mul"),
                                       L.Dense(2, activation="sigmoid")],
               x, (x[:, :, :2].mean(1) > 0).astype(np.float32), "binary_crossentropy", x[:5],
               "Bidirectional(GRU(9, seq), sum) -> Bidirectional(GRU(5), mul) -> Dense(2, sigmoid)")
    r = rng(3)
    x = r.normal(size=(48, 14, 3)).astype(np.float32)
    lead = [0, 5, 13, 2, 9, 0, 7]
    xp = x[:7].copy()
    for b, n in enumerate(lead):
        xp[b, :n] = 0.0
    xp[3, 8] = 0.0  # a gap in the middle of row 3
    keras_case("own_k_mask_gobackwards", [L.Masking(0.0), L.GRU(11, return_sequences=True),
                                          L.GRU(6, go_backwards=True), L.Dense(3, activation="softmax")],
               x, keras.utils.to_categorical((x[:, -1, 0] > 0).astype(int) * 2, 3),
               "categorical_crossentropy", xp,
               "Masking(0) -> GRU(11, seq) -> GRU(6, go_backwards) -> Dense(3, softmax); x pre-padded "
               f"(leading zero steps {lead}) with a gap at row 3 step 8")
    r = rng(4)
    x = r.normal(size=(48, 10, 6)).astype(np.float32)
    keras_case("own_k_dense3d", [L.GRU(12, return_sequences=True, activation="relu"), L.Dropout(0.3),
                                 L.Dense(5, activation="relu"), L.Dense(4, activation="log_softmax")],
               x, r.normal(size=(48, 10, 4)).astype(np.float32), "mse", x[:4],
               "GRU(12, seq, activation=relu) -> Dropout -> Dense(5, relu) on [B,T,F] -> Dense(4, log_softmax)")
    r = rng(5)
    x = r.normal(size=(48, 7, 3)).astype(np.float32)
    keras_case("own_k_functional_h5", [L.GRU(8, return_sequences=True, recurrent_activation="hard_sigmoid"),
                                       L.Bidirectional(L.GRU(4, use_bias=False), merge_mode="ave"),
                                       L.Dense(2, activation="tanh")],
               x, r.normal(size=(48, 2)).astype(np.float32), "mse", x[:3],
               "Functional Input((None, 3)) -> GRU(8, seq, hard_sigmoid) -> Bidirectional(GRU(4, no bias), ave) "
               "-> Dense(2, tanh), legacy .h5", ext="h5", functional=True)


class LastStep(torch.nn.Module):
    """The issue's model: nn.GRU(8, 64, num_layers=2, batch_first, bidirectional) + Linear(128, 10)."""

    def __init__(self):
        super().__init__()
        self.gru = torch.nn.GRU(8, 64, num_layers=2, batch_first=True, bidirectional=True)
        self.fc = torch.nn.Linear(128, 10)

    def forward(self, x):
        y, _ = self.gru(x)
        return self.fc(y[:, -1])


class LearnedH0(torch.nn.Module):
    """A seq-first GRU with a learned initial state expanded over the batch, then mean -> MLP."""

    def __init__(self):
        super().__init__()
        self.gru = torch.nn.GRU(5, 10)
        self.h0 = torch.nn.Parameter(torch.randn(1, 1, 10) * 0.5)
        self.fc1 = torch.nn.Linear(10, 6)
        self.fc2 = torch.nn.Linear(6, 3)

    def forward(self, x):
        h0 = self.h0.expand(1, x.shape[1], 10).contiguous()
        y, _ = self.gru(x, h0)
        return torch.sigmoid(self.fc2(torch.relu(self.fc1(y.mean(0)))))


def train(module, x, target, steps=150):
    opt = torch.optim.Adam(module.parameters(), lr=0.01)
    for _ in range(steps):
        opt.zero_grad()
        loss = ((module(x) - target) ** 2).mean()
        loss.backward()
        opt.step()
    module.eval()


def onnx_case(name, module, x_export, x, dynamo, description, dynamic):
    path = os.path.join(OUT, name + ".onnx")
    with torch.no_grad():
        want = module(torch.from_numpy(x)).numpy()
        if dynamo:
            torch.onnx.export(module, (torch.from_numpy(x_export),), path, dynamo=True,
                              input_names=["x"], dynamic_shapes=dynamic)
        else:
            torch.onnx.export(module, (torch.from_numpy(x_export),), path, dynamo=False, opset_version=17,
                              input_names=["x"], output_names=["y"], dynamic_axes=dynamic)
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    first = sess.get_inputs()[0].name
    y = sess.run(None, {first: x})[0]
    assert np.abs(y - want).max() <= 1e-5, (name, np.abs(y - want).max())
    exporter = "dynamo" if dynamo else "legacy"
    save_case(name, name + ".onnx", f"onnxruntime {ort.__version__} (torch {torch.__version__}, {exporter} exporter)",
              description, x, y)


def onnx_cases():
    torch.manual_seed(11)
    r = rng(11)
    m = LastStep()
    xt = torch.from_numpy(r.normal(size=(32, 12, 8)).astype(np.float32))
    train(m, xt, torch.from_numpy(r.normal(size=(32, 10)).astype(np.float32)))
    x = r.normal(size=(6, 15, 8)).astype(np.float32)
    batch, time = torch.export.Dim("batch"), torch.export.Dim("time")
    onnx_case("own_o_issue_dynamo", m, xt.numpy()[:3, :5], x, True,
              "the issue's model: nn.GRU(8, 64, num_layers=2, batch_first, bidirectional) + Linear(128, 10) "
              "on y[:, -1], torch.onnx.export(dynamo=True), dynamic batch and time",
              {"x": {0: batch, 1: time}})
    onnx_case("own_o_issue_legacy", m, xt.numpy()[:3, :5], x, False,
              "the same model exported with dynamo=False (opset 17), dynamic batch and time",
              {"x": {0: "batch", 1: "time"}, "y": {0: "batch"}})
    torch.manual_seed(12)
    r = rng(12)
    m = LearnedH0()
    xt = torch.from_numpy(r.normal(size=(9, 24, 5)).astype(np.float32))
    train(m, xt, torch.from_numpy(r.uniform(size=(24, 3)).astype(np.float32)))
    x = r.normal(size=(13, 4, 5)).astype(np.float32)
    onnx_case("own_o_learned_h0", m, xt.numpy()[:5, :3], x, True,
              "seq-first nn.GRU(5, 10) with a learned h0 expanded over the batch -> mean over time -> "
              "Linear -> ReLU -> Linear -> sigmoid, dynamo=True",
              {"x": {0: torch.export.Dim("time"), 1: torch.export.Dim("batch")}})


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    keras_cases()
    onnx_cases()
