#!/usr/bin/env python3
"""Writes tests/data/pt/: torch.save checkpoints read by tests/formats/pt_checkpoints.rs.

- `pytorch_<case>.pt`: for every PyTorch golden case tests/data/golden/pytorch_<case>.safetensors,
  an nn.GRU loaded with its weights and saved as `torch.save(gru.state_dict())` (an OrderedDict
  of f32 tensors, in nn.GRU's own order). Its tensors must equal the golden file's bit for bit.
- Extra checkpoints built from pytorch_basic's weights (and pytorch_packed_bidir's for a second
  GRU): a training checkpoint with a module prefix and extra keys, two GRUs side by side, an
  LSTM next to a GRU, f16 / bf16 / f64 weights, non-contiguous and shared-storage views,
  nn.Parameters saved with pickle protocol 5, and files that must be refused with a clear
  message: a whole pickled module, a TorchScript archive, the legacy (pre-1.6) format.
- `hostile_*.pt`, built by hand: a pickle naming os.system / builtins.eval inside a valid zip,
  zip bombs (an entry declaring 8 GiB, a data.pkl declaring 3 GB, an entry inflating past its
  declared size), tensors whose size, stride or offset overflow or leave their storage, a missing
  or short storage, deep nesting, huge string lengths, and truncated files. Each must be refused
  with an error, never a panic.

The small ones are also the seeds of the `torch_pt` fuzz target (fuzz/corpus/torch_pt/).

Needs torch, numpy and safetensors. Run from anywhere: `python3 scripts/make_pt_checkpoints.py`.
The output is reproducible (torch.save's `.data/serialization_id` is derived from the content),
except torchscript.pt, whose bytes change from run to run.
"""

import collections
import io
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import load_file

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "data" / "golden"
OUT = ROOT / "tests" / "data" / "pt"

GRU_PREFIXES = ("weight_ih_l", "weight_hh_l", "bias_ih_l", "bias_hh_l")


def gru_weights(path):
    """The nn.GRU tensors of a golden file (inputs and expected outputs dropped)."""
    return {k: v for k, v in load_file(str(path)).items() if k.startswith(GRU_PREFIXES)}


def gru_from(w):
    """An nn.GRU holding weights `w`, with the shape they imply (load_state_dict is strict)."""
    layers = 1 + max(int(k.split("_l")[1].split("_")[0]) for k in w)
    gru = torch.nn.GRU(
        input_size=w["weight_ih_l0"].shape[1],
        hidden_size=w["weight_hh_l0"].shape[1],
        num_layers=layers,
        bias="bias_ih_l0" in w,
        bidirectional=any(k.endswith("_reverse") for k in w),
    )
    gru.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in w.items()}, strict=True)
    return gru


def save(obj, name, **kw):
    torch.save(obj, OUT / name, **kw)


# ---------------------------------------------------------------------------------------------
# Real checkpoints.


class Model(torch.nn.Module):
    """A user's model, pickled whole by `torch.save(model)` (as `__main__.Model`)."""

    def __init__(self, gru):
        super().__init__()
        self.gru = gru


def golden_twins():
    for path in sorted(GOLDEN.glob("pytorch_*.safetensors")):
        gru = gru_from(gru_weights(path))
        save(gru.state_dict(), path.stem + ".pt")


def extras():
    torch.manual_seed(0)
    basic = gru_from(gru_weights(GOLDEN / "pytorch_basic.safetensors"))
    bidir = gru_from(gru_weights(GOLDEN / "pytorch_packed_bidir.safetensors"))
    sd = basic.state_dict()
    hidden = basic.hidden_size

    # A training checkpoint: {'model': state_dict with a prefix and other layers, 'optimizer':
    # Adam's state (ints, floats, tuples, lists, tensors), 'epoch', 'loss'}. The BatchNorm brings
    # a LongStorage (num_batches_tracked) that is not a GRU weight.
    head = torch.nn.Linear(hidden, 3)
    norm = torch.nn.BatchNorm1d(3)
    params = list(basic.parameters()) + list(head.parameters()) + list(norm.parameters())
    opt = torch.optim.Adam(params, lr=1e-3)
    # One step so that Adam has state; the GRU's weights are saved from a copy taken before.
    model = collections.OrderedDict()
    for k, v in sd.items():
        model["gru." + k] = v.clone()
    x = torch.randn(5, 2, basic.input_size)
    y, _ = basic(x)
    norm(head(y[-1])).sum().backward()
    opt.step()
    for k, v in head.state_dict().items():
        model["head." + k] = v
    for k, v in norm.state_dict().items():
        model["norm." + k] = v
    save(
        {"model": model, "optimizer": opt.state_dict(), "epoch": 7, "loss": 0.25},
        "prefixed_extra_keys.pt",
    )
    basic = gru_from(gru_weights(GOLDEN / "pytorch_basic.safetensors"))
    sd = basic.state_dict()

    # Two GRUs: refused without a prefix.
    two = collections.OrderedDict()
    for k, v in sd.items():
        two["encoder.gru." + k] = v
    for k, v in bidir.state_dict().items():
        two["decoder.gru." + k] = v
    save(two, "two_grus.pt")

    # An LSTM next to the GRU: the GRU is found by its [3H, H] weight_hh_l0.
    lstm = torch.nn.LSTM(2, 2)
    mixed = collections.OrderedDict()
    for k, v in lstm.state_dict().items():
        mixed["lstm." + k] = v
    for k, v in sd.items():
        mixed["gru." + k] = v
    save(mixed, "lstm_and_gru.pt")

    # Other float types.
    save(collections.OrderedDict((k, v.half()) for k, v in sd.items()), "f16.pt")
    save(collections.OrderedDict((k, v.bfloat16()) for k, v in sd.items()), "bf16.pt")
    save(collections.OrderedDict((k, v.double()) for k, v in sd.items()), "f64.pt")

    # Non-contiguous views, saved as they are (torch.save keeps the view's storage, offset and
    # strides): a transpose, a strided slice with an offset, and the biases as views into one
    # flat storage, as cuDNN's flattened weights are.
    nc = collections.OrderedDict()
    w_ih = sd["weight_ih_l0"]
    nc["weight_ih_l0"] = w_ih.t().contiguous().t()
    w_hh = sd["weight_hh_l0"]
    big = torch.zeros(2 * w_hh.shape[0] + 1, w_hh.shape[1] + 3)
    big[1::2, 2 : 2 + w_hh.shape[1]] = w_hh
    nc["weight_hh_l0"] = big[1::2, 2 : 2 + w_hh.shape[1]]
    flat = torch.cat([torch.full((5,), 9.0), sd["bias_ih_l0"], sd["bias_hh_l0"]])
    n = sd["bias_ih_l0"].numel()
    nc["bias_ih_l0"] = flat[5 : 5 + n]
    nc["bias_hh_l0"] = flat[5 + n :]
    assert not nc["weight_ih_l0"].is_contiguous()
    assert not nc["weight_hh_l0"].is_contiguous()
    for k in nc:
        assert torch.equal(nc[k], sd[k])
    save(nc, "noncontiguous.pt")

    # nn.Parameters (torch._utils._rebuild_parameter), pickle protocol 5 (STACK_GLOBAL, FRAME,
    # MEMOIZE, SHORT_BINUNICODE).
    save(dict(basic.named_parameters()), "parameters_protocol5.pt", pickle_protocol=5)

    # Refused with a clear message.
    save(Model(basic), "whole_module.pt")
    torch.jit.save(torch.jit.script(basic), OUT / "torchscript.pt")
    save(sd, "legacy.pt", _use_new_zipfile_serialization=False)


# ---------------------------------------------------------------------------------------------
# Hostile files, by hand.


def p_str(s):
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def p_int(v):
    if 0 <= v < 256:
        return b"K" + bytes([v])
    if -(2**31) <= v < 2**31:
        return b"J" + struct.pack("<i", v)
    n = (v.bit_length() + 8) // 8
    return b"\x8a" + bytes([n]) + v.to_bytes(n, "little", signed=True)


def p_tuple(items):
    return b"(" + b"".join(items) + b"t"


def p_tensor(storage_class, key, numel, offset, size, stride):
    """torch._utils._rebuild_tensor_v2(persistent storage, offset, size, stride, False, {})."""
    pid = p_tuple([p_str("storage"), b"ctorch\n" + storage_class.encode() + b"\n",
                   p_str(key), p_str("cpu"), p_int(numel)])
    return (b"ctorch._utils\n_rebuild_tensor_v2\n("
            + pid + b"Q" + p_int(offset)
            + p_tuple([p_int(d) for d in size]) + p_tuple([p_int(d) for d in stride])
            + b"\x89ccollections\nOrderedDict\n)R" + b"tR")


def p_state_dict(tensors):
    """A protocol-2 pickle of OrderedDict(name -> tensor), as torch.save writes it."""
    body = b"".join(p_str(name) + t for name, t in tensors)
    return b"\x80\x02ccollections\nOrderedDict\n)R(" + body + b"u."


def f32(values):
    return np.asarray(values, dtype="<f4").tobytes()


def zip_stored(entries, path):
    """A zip like torch's: `archive/<name>` entries, stored."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/byteorder", b"little")
        for name, data in entries:
            z.writestr("archive/" + name, data)
        z.writestr("archive/version", b"3\n")
    (OUT / path).write_bytes(buf.getvalue())


def zip_raw(entries, path):
    """A zip written by hand, so that an entry can declare any uncompressed size (zip64 above
    4 GiB). entries: (name, payload, method, crc, declared uncompressed size)."""
    out, central = bytearray(), bytearray()
    for name, payload, method, crc, usize in entries:
        offset = len(out)
        n = name.encode()
        zip64 = usize >= 0xFFFFFFFF
        if zip64:
            extra = struct.pack("<HHQQ", 1, 16, usize, len(payload))
            us, cs, version = 0xFFFFFFFF, 0xFFFFFFFF, 45
        else:
            extra, us, cs, version = b"", usize, len(payload), 20
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, version, 0, method, 0, 0x21, crc, cs, us,
                           len(n), len(extra)) + n + extra + payload
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, version, version, 0, method, 0,
                               0x21, crc, cs, us, len(n), len(extra), 0, 0, 0, 0, offset) + n + extra
    start = len(out)
    out += central
    out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(entries), len(entries), len(central),
                       start, 0)
    (OUT / path).write_bytes(bytes(out))


def deflate(data):
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


def hostile():
    w = [0.5] * 12
    ok_tensor = p_tensor("FloatStorage", "0", 12, 0, (3, 4), (4, 1))

    # Code execution attempts inside an otherwise valid checkpoint.
    zip_stored([("data.pkl", b"\x80\x02cos\nsystem\n" + p_str("echo pwned") + b"\x85R.")],
               "hostile_os_system.pt")
    evil = (b"\x80\x04\x8c\x08builtins\x94\x8c\x04eval\x94\x93\x94"
            + b"\x8c\x1a__import__('os').getpid()\x94\x85\x94R\x94.")
    zip_stored([("data.pkl", evil)], "hostile_builtins_eval.pt")
    inner = p_state_dict([("weight_hh_l0", ok_tensor)])[:-2]
    zip_stored([("data.pkl", inner + p_str("x") + b"csubprocess\ncheck_output\n"
                 + p_tuple([p_str("id")]) + b"\x85Rsu."), ("data/0", f32(w))],
               "hostile_subprocess_in_state_dict.pt")

    # Zip bombs.
    pkl = p_state_dict([("weight_hh_l0", p_tensor("FloatStorage", "0", 2**31, 0, (3, 1), (1, 1)))])
    zeros = deflate(bytes(1 << 16))
    zip_raw([("archive/data.pkl", pkl, 0, zlib.crc32(pkl), len(pkl)),
             ("archive/data/0", zeros, 8, 0, 8 << 30)], "hostile_zip_bomb_declared.pt")
    zip_raw([("archive/data.pkl", zeros, 8, 0, 3_000_000_000)], "hostile_zip_bomb_pickle.pt")
    pkl = p_state_dict([("weight_hh_l0", ok_tensor)])
    inflating = deflate(bytes(1 << 20))
    zip_raw([("archive/data.pkl", pkl, 0, zlib.crc32(pkl), len(pkl)),
             ("archive/data/0", inflating, 8, zlib.crc32(bytes(48)), 48)],
            "hostile_zip_bomb_undeclared.pt")

    # Tensors whose arithmetic overflows or leaves the storage.
    bad = {
        "size_overflow": p_tensor("FloatStorage", "0", 12, 0, (2**62, 2**62), (1, 1)),
        "stride_overflow": p_tensor("FloatStorage", "0", 12, 0, (3, 4), (2**63 - 1, 1)),
        "offset_overflow": p_tensor("FloatStorage", "0", 12, 2**63 - 1, (3, 4), (4, 1)),
        "offset_past_storage": p_tensor("FloatStorage", "0", 12, 1, (3, 4), (4, 1)),
        "stride_past_storage": p_tensor("FloatStorage", "0", 12, 0, (3, 4), (5, 1)),
        "negative_size": p_tensor("FloatStorage", "0", 12, 0, (-3, 4), (4, 1)),
        "storage_numel_overflow": p_tensor("FloatStorage", "0", 2**63 - 1, 0, (3, 4), (4, 1)),
        "storage_too_short": p_tensor("FloatStorage", "0", 13, 0, (3, 4), (4, 1)),
        "missing_storage": p_tensor("FloatStorage", "7", 12, 0, (3, 4), (4, 1)),
        "repeated_storage": p_tensor("FloatStorage", "0", 12, 0, (3 << 20, 1), (0, 0)),
        "rank_mismatch": p_tensor("FloatStorage", "0", 12, 0, (3, 4), (1,)),
    }
    for name, t in bad.items():
        zip_stored([("data.pkl", p_state_dict([("weight_hh_l0", t)])), ("data/0", f32(w))],
                   f"hostile_{name}.pt")

    # The pickle machine's own limits.
    nested = b"\x80\x02)" + b"\x85" * 1000 + b"."
    zip_stored([("data.pkl", nested)], "hostile_deep_tuples.pt")
    zip_stored([("data.pkl", b"\x80\x04\x8d" + struct.pack("<Q", 2**62) + b"ab.")],
               "hostile_huge_string.pt")
    zip_stored([("data.pkl", b"\x80\x02" + b"(" * 2000 + b"N" * 2000 + b".")],
               "hostile_marks.pt")
    zip_stored([("data.pkl", b"\x80\x02}q\x00X\x01\x00\x00\x00ah\x00s]q\x01h\x01a.")],
               "hostile_self_reference.pt")

    # Truncated: a real checkpoint cut in half, and a zip whose data.pkl stops early.
    real = (OUT / "pytorch_basic.pt").read_bytes()
    (OUT / "hostile_truncated.pt").write_bytes(real[: len(real) // 2])
    pkl = p_state_dict([("weight_hh_l0", ok_tensor)])
    zip_stored([("data.pkl", pkl[: len(pkl) // 2]), ("data/0", f32(w))],
               "hostile_truncated_pickle.pt")
    (OUT / "hostile_not_a_zip.pt").write_bytes(b"PK\x03\x04" + b"\x00" * 60)


def fnv1a(data):
    """The hash tests/regressions.rs names corpus seeds by (64-bit FNV-1a)."""
    h = 0xCBF29CE484222325
    for byte in data:
        h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def fuzz_seeds():
    """The small checkpoints (at most 8 KiB) as seeds of the torch_pt fuzz target, named
    `seed-<hash>` like the other targets' seeds; inputs the fuzzer added are kept."""
    corpus = ROOT / "fuzz" / "corpus" / "torch_pt"
    corpus.mkdir(parents=True, exist_ok=True)
    for p in corpus.glob("seed-*"):
        p.unlink()
    names = ["pytorch_basic", "pytorch_packed_bidir", "parameters_protocol5", "noncontiguous",
             "f16", "bf16", "f64", "lstm_and_gru", "whole_module", "legacy",
             "hostile_os_system", "hostile_subprocess_in_state_dict", "hostile_offset_past_storage"]
    for name in names:
        data = (OUT / f"{name}.pt").read_bytes()
        assert len(data) <= 8192, name
        (corpus / f"seed-{fnv1a(data):016x}").write_bytes(data)


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    golden_twins()
    extras()
    hostile()
    fuzz_seeds()
    for p in sorted(OUT.iterdir()):
        print(f"{p.stat().st_size:>8}  {p.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
