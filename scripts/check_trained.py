#!/usr/bin/env python3
"""Load the model `wgpu-gru train` wrote into PyTorch, and commit PyTorch's predictions beside it.

Run from the repository root (after `wgpu-gru train --out assets/digits_trained.safetensors`):

    python3 scripts/check_trained.py [MODEL.safetensors]

The file holds nn.GRU's own tensor names (weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0) and
nn.Linear's under `dense.` (dense.weight, dense.bias), as assets/digits_gru.safetensors does. The
script loads them with `load_state_dict` (strict) into the Classifier of
scripts/train_digits.py, classifies the committed test split in eval mode and writes
assets/digits_trained_torch.safetensors: torch_probs f32 [N, 10] and torch_pred i64 [N], with
PyTorch's test accuracy in the metadata. tests/train/train.rs (no PyTorch needed) checks that this
crate's predictions of the same file equal these.

Needs torch, numpy and safetensors.
"""

import os
import sys

import torch
from safetensors.torch import load_file, save_file

ASSETS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "assets")


class Classifier(torch.nn.Module):
    def __init__(self, inputs, hidden, classes):
        super().__init__()
        self.gru = torch.nn.GRU(inputs, hidden, batch_first=True)
        self.dense = torch.nn.Linear(hidden, classes)

    def forward(self, x):  # x [B, T, I] -> logits [B, C]
        _, h_n = self.gru(x)
        return self.dense(h_n[-1])


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ASSETS, "digits_trained.safetensors")
    state = load_file(path)
    hidden, inputs = state["weight_hh_l0"].shape[1], state["weight_ih_l0"].shape[1]
    classes = state["dense.weight"].shape[0]
    model = Classifier(inputs, hidden, classes)
    model.gru.load_state_dict({k: v for k, v in state.items() if not k.startswith("dense.")})
    model.dense.load_state_dict({k[len("dense."):]: v for k, v in state.items() if k.startswith("dense.")})
    test = load_file(os.path.join(ASSETS, "digits_test.safetensors"))
    model.eval()
    with torch.no_grad():
        probs = torch.softmax(model(test["x"]), dim=1)
    pred = probs.argmax(dim=1)
    acc = int((pred == test["labels"]).sum()) / len(pred)
    save_file(
        {"torch_probs": probs.contiguous(), "torch_pred": pred.contiguous()},
        os.path.join(ASSETS, "digits_trained_torch.safetensors"),
        metadata={"accuracy": repr(acc)},
    )
    print(f"PyTorch: test accuracy {acc:.4f} ({int((pred == test['labels']).sum())}/{len(pred)})")


if __name__ == "__main__":
    main()
