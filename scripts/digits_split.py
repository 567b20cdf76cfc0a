#!/usr/bin/env python3
"""Write the digits training split that `wgpu-gru train` reads: assets/digits_train.safetensors.

Run from the repository root:

    python3 scripts/digits_split.py

The split is scripts/train_digits.py's own (scikit-learn's digits, pixels / 16, 20% stratified
test split with random_state=0), so `wgpu-gru train` trains on exactly the rows PyTorch trained
on and is scored on assets/digits_test.safetensors. The script checks that its test rows equal
that file's before writing.

- digits_train.safetensors: x f32 [1437, 8, 8] (batch-first: each image is 8 steps of 8 pixels),
  labels i64 [1437].

Needs numpy, scikit-learn and safetensors.
"""

import os

import numpy as np
from safetensors.numpy import load_file, save_file
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

SEED = 0
ASSETS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "assets")


def main():
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.2, random_state=SEED, stratify=y)
    test = load_file(os.path.join(ASSETS, "digits_test.safetensors"))
    if not (np.array_equal(test["x"], x_te) and np.array_equal(test["labels"], y_te)):
        raise SystemExit("the split differs from assets/digits_test.safetensors")
    save_file(
        {"x": np.ascontiguousarray(x_tr), "labels": np.ascontiguousarray(y_tr)},
        os.path.join(ASSETS, "digits_train.safetensors"),
        metadata={"split": "train_test_split(test_size=0.2, random_state=0, stratify=y)"},
    )
    print(f"wrote assets/digits_train.safetensors: {len(y_tr)} digits")


if __name__ == "__main__":
    main()
