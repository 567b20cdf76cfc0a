"""Train the seed model GRU(128, tanh) -> Dense(10) -> softmax on scikit-learn's digits.

Run from the repository root:

    python3 scripts/train_digits.py

Each 8x8 image (pixels / 16) is read row by row: T = 8 steps of I = 8 features.
The split (20% stratified test, random_state=0) and all seeds are fixed, so a rerun
rewrites the same two files in assets/:

- digits_gru.safetensors: the GRU tensors under nn.GRU's own names (weight_ih_l0 [384, 8],
  weight_hh_l0 [384, 128], bias_ih_l0 [384], bias_hh_l0 [384]; gate order r, z, n) plus
  dense.weight [10, 128] and dense.bias [10].
- digits_test.safetensors: x f32 [N, 8, 8] (batch-first), labels i64 [N], torch_probs f32 [N, 10],
  torch_pred i64 [N]; metadata "accuracy" is torch's own test accuracy in eval mode
  (correct / N, as a Python float).

Needs torch, numpy, scikit-learn and safetensors.
"""

import os
import random

import numpy as np
import torch
from safetensors.torch import save_file
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

SEED = 0
HIDDEN = 128
TARGET = 0.97
ASSETS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "assets")


class Classifier(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.gru = torch.nn.GRU(8, HIDDEN, batch_first=True)
        self.dense = torch.nn.Linear(HIDDEN, 10)

    def forward(self, x):  # x [B, 8, 8] -> logits [B, 10]
        _, h_n = self.gru(x)  # h_n [1, B, H]
        return self.dense(h_n[-1])


def accuracy(model, x, y):
    model.eval()
    with torch.no_grad():
        probs = torch.softmax(model(x), dim=1)
    pred = probs.argmax(dim=1)
    return int((pred == y).sum()) / len(y), probs, pred


def main():
    random.seed(SEED)
    np.random.seed(SEED)
    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)  # [1797, 8, 8]
    y = digits.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=0.2, random_state=SEED, stratify=y
    )
    x_tr, y_tr = torch.from_numpy(x_tr), torch.from_numpy(y_tr)
    x_te, y_te = torch.from_numpy(x_te), torch.from_numpy(y_te)

    model = Classifier()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(SEED)
    acc = 0.0
    for epoch in range(1, 201):
        model.train()
        for idx in torch.randperm(len(x_tr), generator=gen).split(64):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x_tr[idx]), y_tr[idx])
            loss.backward()
            opt.step()
        acc, probs, pred = accuracy(model, x_te, y_te)
        if epoch >= 10 and acc >= TARGET:
            break
    print(f"epoch {epoch}: test accuracy {acc:.4f} ({int(round(acc * len(y_te)))}/{len(y_te)})")
    if acc < TARGET:
        raise SystemExit(f"test accuracy {acc:.4f} is below {TARGET}")

    os.makedirs(ASSETS, exist_ok=True)
    weights = {k: v.contiguous() for k, v in model.gru.state_dict().items()}
    weights["dense.weight"] = model.dense.weight.detach().contiguous()
    weights["dense.bias"] = model.dense.bias.detach().contiguous()
    save_file(
        weights,
        os.path.join(ASSETS, "digits_gru.safetensors"),
        # One metadata key each: safetensors writes several in no fixed order.
        metadata={"model": "nn.GRU(8, 128, batch_first=True) -> Linear(128, 10) -> softmax"},
    )
    save_file(
        {
            "x": x_te.contiguous(),
            "labels": y_te.contiguous(),
            "torch_probs": probs.contiguous(),
            "torch_pred": pred.contiguous(),
        },
        os.path.join(ASSETS, "digits_test.safetensors"),
        metadata={"accuracy": repr(acc)},
    )


if __name__ == "__main__":
    main()
