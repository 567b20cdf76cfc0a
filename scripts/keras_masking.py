#!/usr/bin/env python3
"""Golden cases for Keras-style per-step masks [B, T] on `keras.layers.GRU`.

Writes `tests/data/keras_mask/*.safetensors` (the keras golden format of
`tests/data/golden/README.md`, plus a `mask` tensor and a
`zero_output_for_mask` metadata key). See `tests/data/keras_mask/README.md`.

Run from the repository root:

    KERAS_BACKEND=torch python3 scripts/keras_masking.py [OUT_DIR]

Every case is computed by real Keras 3 (torch backend, CPU) and cross-checked
against an independent float64 NumPy evaluation of the masking semantics
written below (`ref_gru`); the script stops if they disagree by more than 1e-5.
The `keras_test_masking_*` cases reproduce `test_masking` from
`keras/src/layers/rnn/gru_test.py`; their asserted tensors are the literals
from that test, and the script checks that Keras reproduces them now.
"""

import os
import sys

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np  # noqa: E402
import keras  # noqa: E402
import torch  # noqa: E402
from safetensors.numpy import load_file  # noqa: E402

assert keras.backend.backend() == "torch", "run with KERAS_BACKEND=torch"

OUT_DIR = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "keras_mask"
)
TOL = 1e-5


# --------------------------------------------------------------------------
# Independent float64 reference of the semantics Keras implements
# (keras/src/backend/torch/rnn.py, generic `rnn` loop, unroll=False).
# --------------------------------------------------------------------------
def sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def gru_cell(x, h, kernel, rk, bias, reset_after):
    """One Keras GRUCell step. Gate (column) order z, r, h."""
    H = h.shape[1]
    if reset_after:
        xm = x @ kernel + bias[0]
        hm = h @ rk + bias[1]
        z = sigmoid(xm[:, :H] + hm[:, :H])
        r = sigmoid(xm[:, H:2 * H] + hm[:, H:2 * H])
        hh = np.tanh(xm[:, 2 * H:] + r * hm[:, 2 * H:])
    else:
        xm = x @ kernel + bias
        z = sigmoid(xm[:, :H] + h @ rk[:, :H])
        r = sigmoid(xm[:, H:2 * H] + h @ rk[:, H:2 * H])
        hh = np.tanh(xm[:, 2 * H:] + (r * h) @ rk[:, 2 * H:])
    return z * h + (1.0 - z) * hh


def ref_gru(kernel, rk, bias, x, mask, h0, reset_after, go_backwards, zero_output):
    """Returns (outputs [B,T,H] in PROCESSING order, final state [B,H]).

    step k processes time index t = k (forward) or t = T-1-k (go_backwards);
    the mask is read at that time index t.
      valid  : h <- cell(x_t, h);   out_k = h
      masked : h unchanged;         out_k = 0 if zero_output
                                          else out_{k-1} (0 for k = 0; NOT h0)
    """
    kernel, rk, bias, x = (np.asarray(a, np.float64) for a in (kernel, rk, bias, x))
    B, T, _ = x.shape
    H = rk.shape[0]
    h = np.zeros((B, H)) if h0 is None else np.asarray(h0, np.float64).copy()
    prev_out = np.zeros((B, H))
    outs = np.zeros((B, T, H))
    for k in range(T):
        t = T - 1 - k if go_backwards else k
        m = np.asarray(mask[:, t], bool)[:, None]
        h_new = gru_cell(x[:, t], h, kernel, rk, bias, reset_after)
        h = np.where(m, h_new, h)
        out = np.where(m, h_new, 0.0 if zero_output else prev_out)
        outs[:, k] = out
        prev_out = out
    return outs, h


# --------------------------------------------------------------------------
def to_np(t):
    return keras.ops.convert_to_numpy(t)


def make_gru(H, reset_after, go_backwards, zero_output, **kw):
    return keras.layers.GRU(
        H,
        return_sequences=True,
        return_state=True,
        reset_after=reset_after,
        go_backwards=go_backwards,
        zero_output_for_mask=zero_output,
        **kw,
    )


def random_weights(rng, I, H, reset_after):
    kernel = (rng.standard_normal((I, 3 * H)) * 0.5).astype(np.float32)
    rk = (rng.standard_normal((H, 3 * H)) * 0.5).astype(np.float32)
    bshape = (2, 3 * H) if reset_after else (3 * H,)
    bias = (rng.standard_normal(bshape) * 0.2).astype(np.float32)
    return kernel, rk, bias


def meta(I, H, reset_after, go_backwards, zero_output):
    # Same keys/conventions as tests/data/golden/keras_*.safetensors,
    # plus zero_output_for_mask.
    b = lambda v: "true" if v else "false"  # noqa: E731
    return {
        "framework": "keras",
        "input_size": str(I),
        "hidden_size": str(H),
        "reset_after": b(reset_after),
        "go_backwards": b(go_backwards),
        "activation": "tanh",
        "recurrent_activation": "sigmoid",
        "zero_output_for_mask": b(zero_output),
    }


WRITTEN = []

_DTYPES = {np.dtype(np.float32): "F32", np.dtype(np.uint8): "U8"}


def save_safetensors(tensors, path, metadata):
    """Byte-deterministic safetensors writer (the `safetensors` package writes
    the metadata map in hash order, so reruns would differ byte-wise).
    Header: __metadata__ then tensors sorted by name, padded with spaces to a
    multiple of 8 bytes; little-endian data packed in the same order."""
    import json
    import struct

    header = {"__metadata__": dict(sorted(metadata.items()))}
    blobs, off = [], 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        raw = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": _DTYPES[a.dtype], "shape": list(a.shape),
                        "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
    back = load_file(path)  # round-trip check with the reference reader
    assert back.keys() == tensors.keys()
    assert all(np.array_equal(back[k], tensors[k]) and back[k].dtype == tensors[k].dtype
               for k in tensors), path


def write_case(name, *, kernel, rk, bias, x, mask, h0, out, state, md):
    tensors = {
        "kernel": np.ascontiguousarray(kernel, np.float32),
        "recurrent_kernel": np.ascontiguousarray(rk, np.float32),
        "bias": np.ascontiguousarray(bias, np.float32),
        "input": np.ascontiguousarray(x, np.float32),
        "mask": np.ascontiguousarray(mask, np.uint8),
        "expected_output": np.ascontiguousarray(out, np.float32),
        "expected_state": np.ascontiguousarray(state, np.float32),
    }
    if h0 is not None:
        tensors["h0"] = np.ascontiguousarray(h0, np.float32)
    path = os.path.join(OUT_DIR, name + ".safetensors")
    save_safetensors(tensors, path, md)
    WRITTEN.append(name)


def check_against_ref(name, kernel, rk, bias, x, mask, h0, ra, gb, zo, out, state):
    r_out, r_state = ref_gru(kernel, rk, bias, x, mask, h0, ra, gb, zo)
    e_out = np.abs(r_out - out).max()
    e_state = np.abs(r_state - state).max()
    assert e_out < TOL and e_state < TOL, (name, e_out, e_state)
    # Outputs are in processing order: with go_backwards they are NOT in time
    # order (the time-ordered reading must disagree unless symmetric).
    if gb:
        assert np.abs(r_out[:, ::-1] - out).max() > 1e-3, name
    # Masked steps: state carried, output repeated/zeroed exactly (bitwise).
    T = x.shape[1]
    for k in range(T):
        t = T - 1 - k if gb else k
        for bi in range(x.shape[0]):
            if not mask[bi, t]:
                if zo:
                    assert np.all(out[bi, k] == 0.0), name
                elif k == 0:
                    assert np.all(out[bi, k] == 0.0), name
                else:
                    assert np.array_equal(out[bi, k], out[bi, k - 1]), name
    return e_out, e_state


# --------------------------------------------------------------------------
# 1. Pre-padded batches through keras.layers.Masking(mask_value=0.0)
# --------------------------------------------------------------------------
def padded_cases():
    B, T, I, H = 4, 6, 3, 4
    specs = [
        # name, reset_after, go_backwards, lengths (6 = all valid, 0 = fully masked)
        ("keras_mask_prepad", True, False, [6, 4, 1, 0]),
        ("keras_mask_prepad_reset_before", False, False, [3, 6, 0, 5]),
        ("keras_mask_prepad_go_backwards", True, True, [6, 2, 0, 4]),
        ("keras_mask_prepad_go_backwards_reset_before", False, True, [1, 6, 5, 0]),
    ]
    for ci, (name, ra, gb, lengths) in enumerate(specs):
        rng = np.random.default_rng(1000 + ci)
        kernel, rk, bias = random_weights(rng, I, H, ra)
        seqs = [rng.standard_normal((n, I)).astype(np.float32).tolist() for n in lengths]
        x = keras.utils.pad_sequences(seqs, maxlen=T, padding="pre", dtype="float32", value=0.0)
        assert x.shape == (B, T, I)

        masking = keras.layers.Masking(mask_value=0.0)
        mask = to_np(masking.compute_mask(x)).astype(bool)  # any(x != 0, -1)
        expect_mask = np.array([[t >= T - n for t in range(T)] for n in lengths])
        assert np.array_equal(mask, expect_mask), (name, mask)

        inp = keras.Input(shape=(T, I))
        gru = make_gru(H, ra, gb, False)
        o, s = gru(keras.layers.Masking(mask_value=0.0)(inp))
        model = keras.Model(inp, [o, s])
        gru.set_weights([kernel, rk, bias])
        out, state = (to_np(v) for v in model(x))

        # Same result as passing the mask explicitly.
        out2, state2 = (to_np(v) for v in gru(x, mask=mask))
        assert np.array_equal(out, out2) and np.array_equal(state, state2), name

        e = check_against_ref(name, kernel, rk, bias, x, mask, None, ra, gb, False, out, state)
        write_case(name, kernel=kernel, rk=rk, bias=bias, x=x, mask=mask, h0=None,
                   out=out, state=state, md=meta(I, H, ra, gb, False))
        print(f"{name}: lengths={lengths} max|keras-ref| out={e[0]:.2e} state={e[1]:.2e}")


# --------------------------------------------------------------------------
# 2. Gapped masks passed directly: gru(x, initial_state=h0, mask=m)
# --------------------------------------------------------------------------
GAP_ROWS = np.array(
    [
        [1, 0, 1, 1, 0, 1],  # holes in the middle
        [0, 0, 1, 0, 0, 1],  # leading masked steps, then a hole
        [1, 1, 0, 1, 0, 0],  # hole + trailing masked steps
        [0, 0, 0, 0, 0, 0],  # fully masked row
    ],
    dtype=bool,
)


def gapped_cases():
    B, T, I, H = 4, 6, 2, 3
    specs = [
        # name, reset_after, go_backwards, zero_output_for_mask, with h0
        ("keras_mask_gap", True, False, False, False),
        ("keras_mask_gap_h0", True, False, False, True),
        ("keras_mask_gap_zero_output_h0_reset_before", False, False, True, True),
        ("keras_mask_gap_go_backwards_h0", True, True, False, True),
        ("keras_mask_gap_go_backwards_zero_output", True, True, True, False),
        ("keras_mask_gap_go_backwards_reset_before_h0", False, True, False, True),
        ("keras_mask_gap_go_backwards_zero_output_h0", True, True, True, True),
    ]
    for ci, (name, ra, gb, zo, use_h0) in enumerate(specs):
        rng = np.random.default_rng(2000 + ci)
        kernel, rk, bias = random_weights(rng, I, H, ra)
        x = rng.standard_normal((B, T, I)).astype(np.float32)
        mask = GAP_ROWS[rng.permutation(B)]
        h0 = (rng.standard_normal((B, H)) * 0.5).astype(np.float32) if use_h0 else None

        gru = make_gru(H, ra, gb, zo)
        gru.build((B, T, I))
        gru.set_weights([kernel, rk, bias])
        kw = {"initial_state": h0} if use_h0 else {}
        out, state = (to_np(v) for v in gru(x, mask=mask, **kw))

        if gb:
            # go_backwards == forward layer on time-reversed input AND mask,
            # with the outputs left in that (processing) order.
            fwd = make_gru(H, ra, False, zo)
            fwd.build((B, T, I))
            fwd.set_weights([kernel, rk, bias])
            fo, fs = (to_np(v) for v in fwd(x[:, ::-1].copy(), mask=mask[:, ::-1].copy(), **kw))
            assert np.allclose(fo, out, atol=1e-6) and np.allclose(fs, state, atol=1e-6), name

        if use_h0:
            full = np.where(~mask.any(axis=1))[0]
            # Fully masked row: state stays h0, outputs are all zero (not h0).
            assert np.array_equal(state[full], h0[full]), name
            assert np.all(out[full] == 0.0), name

        e = check_against_ref(name, kernel, rk, bias, x, mask, h0, ra, gb, zo, out, state)
        write_case(name, kernel=kernel, rk=rk, bias=bias, x=x, mask=mask, h0=h0,
                   out=out, state=state, md=meta(I, H, ra, gb, zo))
        print(f"{name}: max|keras-ref| out={e[0]:.2e} state={e[1]:.2e}")


# --------------------------------------------------------------------------
# 3. keras/src/layers/rnn/gru_test.py :: GRUTest.test_masking
# --------------------------------------------------------------------------
def keras_test_masking_cases():
    B, T, I, H = 2, 4, 3, 2
    sequence = np.arange(24).reshape((2, 4, 3)).astype("float32")
    mask = np.array([[True, True, False, True], [True, False, False, True]])
    init = dict(
        kernel_initializer=keras.initializers.Constant(0.01),
        recurrent_initializer=keras.initializers.Constant(0.02),
        bias_initializer=keras.initializers.Constant(0.03),
    )
    kernel = np.full((I, 3 * H), 0.01, np.float32)
    rk = np.full((H, 3 * H), 0.02, np.float32)
    bias = np.full((2, 3 * H), 0.03, np.float32)  # reset_after=True (default)

    # Values asserted by the test (assertAllClose, default atol=rtol=1e-6).
    a_unroll_last = np.array([[0.19393763, 0.19393763], [0.30818558, 0.30818558]], np.float32)
    a_seq = np.array(
        [
            [[0.03606692, 0.03606692], [0.09497581, 0.09497581],
             [0.09497581, 0.09497581], [0.19393763, 0.19393763]],
            [[0.16051409, 0.16051409], [0.16051409, 0.16051409],
             [0.16051409, 0.16051409], [0.30818558, 0.30818558]],
        ],
        np.float32,
    )
    a_seq_zero = np.array(
        [
            [[0.03606692, 0.03606692], [0.09497581, 0.09497581],
             [0.0, 0.0], [0.19393763, 0.19393763]],
            [[0.16051409, 0.16051409], [0.0, 0.0],
             [0.0, 0.0], [0.30818558, 0.30818558]],
        ],
        np.float32,
    )
    a_bwd_last = np.array([[0.11669192, 0.11669192], [0.28380975, 0.28380975]], np.float32)

    def close(a, b):
        return np.allclose(a, b, atol=1e-6, rtol=1e-6)

    def case(name, tag, expected, **kw):
        """Runs the test's GRU(H, **kw) and checks its asserted `expected`, then the same layer
        with return_sequences and return_state fills in the rest of the case. An asserted
        sequence is written as the expected output; an asserted last output as the state."""
        got = to_np(keras.layers.GRU(H, **kw, **init)(sequence, mask=mask))
        assert close(got, expected), got
        full = {**kw, "return_sequences": True, "return_state": True}
        o, s = (to_np(v) for v in keras.layers.GRU(H, **full, **init)(sequence, mask=mask))
        if kw.get("return_sequences"):
            assert close(o, expected)
            out, state = expected, s
        else:
            assert close(o[:, -1], expected) and close(s, expected)
            out, state = o, expected
        gb, zo = kw.get("go_backwards", False), kw.get("zero_output_for_mask", False)
        check_against_ref(tag, kernel, rk, bias, sequence, mask, None, True, gb, zo, o, s)
        write_case(name, kernel=kernel, rk=rk, bias=bias, x=sequence, mask=mask, h0=None,
                   out=out, state=state, md=meta(I, H, True, gb, zo))

    # (a) exactly as the test: return_sequences=False, unroll=True -> last output.
    case("keras_test_masking_unroll_state", "unroll", a_unroll_last, unroll=True)
    # (b) return_sequences=True -> whole output sequence asserted.
    case("keras_test_masking_sequences", "seq", a_seq, return_sequences=True)
    # (c) return_sequences=True, zero_output_for_mask=True.
    case("keras_test_masking_zero_output", "seqzero", a_seq_zero, return_sequences=True,
         zero_output_for_mask=True)
    # (d) go_backwards=True, return_sequences=False -> last output asserted.
    case("keras_test_masking_go_backwards", "bwd", a_bwd_last, go_backwards=True)
    print("keras_test_masking_*: Keras reproduces all asserted values (atol=rtol=1e-6)")


def main():
    os.makedirs(OUT_DIR, exist_ok=True)
    torch.manual_seed(0)
    keras.utils.set_random_seed(0)
    print(f"keras {keras.__version__}, torch {torch.__version__}, numpy {np.__version__}")
    padded_cases()
    gapped_cases()
    keras_test_masking_cases()
    print(f"wrote {len(WRITTEN)} files to {os.path.normpath(OUT_DIR)}")


if __name__ == "__main__":
    main()
