#!/usr/bin/env python3
"""Writes the hand-made checkpoint inputs of the fuzz tests: seeds (valid
files of every layer kind but the language-model ones, which come from a real
training run) into corpus/ckpt/ and the forged files issue 17 names into
crashes/ckpt/. Each forged file has a correct CRC-32, so it reaches the parser.
    python3 tests/fuzz/make_ckpt_cases.py   (from the source tree)"""
import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
DENSE, CONV, MAXPOOL, AVGPOOL, GAP, RELU, BN, FLATTEN, ADD, DROPOUT = range(10)
MAGIC = b"PBCKPT\r\n"


def layer(kind, inp, oc=0, k=0, stride=0, pad=0, bias=0, in2=-1, name=b"", p=0.0, eps=0.0, mom=0.0):
    return (struct.pack("<I", kind) + name.ljust(32, b"\0") +
            struct.pack("<7i", inp, in2, oc, k, stride, pad, bias) + struct.pack("<3f", p, eps, mom))


def param(name, n, values=None, mask=None, generated=False, trainable=1, nbytes=None):
    flags = 2 if generated else (1 if mask is not None else 0)
    out = name.ljust(48, b"\0") + struct.pack("<Q", n) + bytes([flags, trainable])
    if not generated:
        count = n if nbytes is None else nbytes
        vals = values if values is not None else [0.01 * (i % 7 - 3) for i in range(count)]
        out += struct.pack("<%df" % len(vals), *vals)
        if mask is not None:
            out += struct.pack("<%df" % len(mask), *mask)
    return out


def ckpt(shape, ncls, layers, params, tail=b"", version=1, arch=b"custom", nlayers=None, nparams=None):
    body = MAGIC + struct.pack("<I", version)
    body += struct.pack("<6I", *shape, ncls, len(layers) if nlayers is None else nlayers,
                        len(params) if nparams is None else nparams)
    body += arch.ljust(64, b"\0") + b"".join(layers) + b"".join(params) + tail
    return body + struct.pack("<I", zlib.crc32(body) & 0xffffffff)


def write(sub, name, data):
    path = os.path.join(HERE, sub, name)
    with open(path, "wb") as f:
        f.write(data)


def main():
    # ---- seeds: valid files ----
    write("corpus/ckpt", "dense_masked.pb", ckpt(
        (1, 2, 2), 2,
        [layer(FLATTEN, -1), layer(DENSE, 0, oc=3, bias=1), layer(RELU, 1), layer(DENSE, 2, oc=2, bias=1)],
        [param(b"fc1.weight", 12, mask=[1.0, 0.0] * 6), param(b"fc1.bias", 3),
         param(b"fc2.weight", 6), param(b"fc2.bias", 2)]))
    bn_stats = struct.pack("<4f", 0.1, -0.2, 1.5, 0.7)
    write("corpus/ckpt", "conv_bn_pool.pb", ckpt(
        (1, 4, 4), 3,
        [layer(CONV, -1, oc=2, k=3, stride=1, pad=1, bias=1), layer(BN, 0, eps=1e-5, mom=0.1),
         layer(RELU, 1), layer(MAXPOOL, 2, k=2, stride=2), layer(FLATTEN, 3),
         layer(DROPOUT, 4, p=0.25), layer(DENSE, 5, oc=3, bias=1)],
        [param(b"conv1.weight", 18), param(b"conv1.bias", 2), param(b"bn1.weight", 2),
         param(b"bn1.bias", 2), param(b"fc1.weight", 24), param(b"fc1.bias", 3)], tail=bn_stats))
    write("corpus/ckpt", "residual_avgpool.pb", ckpt(
        (2, 4, 4), 2,
        [layer(CONV, -1, oc=2, k=1, stride=1, pad=0, bias=0), layer(ADD, 0, in2=-1),
         layer(AVGPOOL, 1, k=2, stride=2), layer(GAP, 2), layer(DENSE, 3, oc=2, bias=0)],
        [param(b"conv1.weight", 4), param(b"fc1.weight", 4)]))
    write("corpus/ckpt", "shared_v2.pb", ckpt(
        (1, 2, 2), 2,
        [layer(FLATTEN, -1), layer(DENSE, 0, oc=2, bias=1)],
        [param(b"fc1.weight", 8, generated=True), param(b"fc1.bias", 2), param(b"shared.fc1", 3)], version=2))

    # ---- forged files (issue 17): each must be refused with a message ----
    # a parameter count that truncates to int 1 (2^32 + 1) on an array past the model's own
    write("crashes/ckpt", "count_truncated_to_int.pb", ckpt(
        (1, 2, 2), 2, [layer(FLATTEN, -1), layer(DENSE, 0, oc=2, bias=0)],
        [param(b"fc1.weight", 8), param(b"shared.x", (1 << 32) + 1, generated=True)], version=2))
    # the heap corruption of the release build: n = 2^64 - 1 is -1 as int, so the
    # extra array's size becomes SIZE_MAX, equal to n; its byte size wraps the
    # allocation to 0, and off + 4n wraps below the file's length, so the copy runs
    write("crashes/ckpt", "heap_corruption_count_minus_one.pb", ckpt(
        (1, 2, 2), 2, [layer(FLATTEN, -1), layer(DENSE, 0, oc=2, bias=0)],
        [param(b"fc1.weight", 8), param(b"shared.x", 0xFFFFFFFFFFFFFFFF, nbytes=4)], version=2))
    # a conv weight of 2^16 x 2^16 x 2^16 x 2^16 values: the element count wraps to 0
    write("crashes/ckpt", "size_wraps_to_zero.pb", ckpt(
        (65536, 1, 1), 2,
        [layer(CONV, -1, oc=65536, k=65536, stride=1, pad=32768, bias=0)],
        [param(b"conv1.weight", 0, generated=True)], version=2))
    # a stored size whose byte count makes off + n wrap past the end of the buffer
    write("crashes/ckpt", "offset_overflows.pb", ckpt(
        (1, 2, 2), 2, [layer(FLATTEN, -1), layer(DENSE, 0, oc=2, bias=0)],
        [param(b"fc1.weight", 0x3FFFFFFFFFFFFFFC, nbytes=2)]))
    # 241 bytes promising a dense layer of 2^24 x 2^24 weights
    huge = ckpt((1 << 12, 1 << 12, 1), 1 << 24, [layer(DENSE, -1, oc=1 << 24, bias=0)],
                [param(b"fc1.weight", 7, nbytes=0)], tail=b"\0\0\0")
    assert len(huge) == 241, len(huge)
    write("crashes/ckpt", "huge_alloc_241_bytes.pb", huge)
    # padding 1849476524: ih + 2 * pad overflows int before any check
    write("crashes/ckpt", "pad_overflows.pb", ckpt(
        (1, 4, 4), 2, [layer(CONV, -1, oc=1, k=3, stride=1, pad=1849476524, bias=0)],
        [param(b"conv1.weight", 9)]))
    # a residual add reading "layer -5": an index before the input
    write("crashes/ckpt", "add_reads_before_input.pb", ckpt(
        (1, 2, 2), 4, [layer(FLATTEN, -1), layer(ADD, 0, in2=-5)], []))
    # input dimensions that are negative as int
    write("crashes/ckpt", "negative_input.pb", ckpt(
        (0xFFFFFFFF, 2, 2), 2, [layer(FLATTEN, -1)], []))
    # a BN layer of 2^24 channels from a flatten, whose statistics the file does not hold
    write("crashes/ckpt", "bn_stats_missing.pb", ckpt(
        (1, 4, 4), 16, [layer(FLATTEN, -1), layer(BN, 0, eps=1e-5, mom=0.1)],
        [param(b"bn1.weight", 16), param(b"bn1.bias", 16)]))
    # a header promising 128 layers with only one record
    write("crashes/ckpt", "layers_past_end.pb", ckpt(
        (1, 2, 2), 4, [layer(FLATTEN, -1)], [], nlayers=128))
    # a NaN dropout probability; an unknown layer kind
    write("crashes/ckpt", "dropout_nan.pb", ckpt(
        (1, 2, 2), 4, [layer(FLATTEN, -1), layer(DROPOUT, 0, p=float("nan"))], []))
    write("crashes/ckpt", "unknown_kind.pb", ckpt((1, 2, 2), 4, [layer(200, -1)], []))
    # no layers at all
    write("crashes/ckpt", "no_layers.pb", ckpt((1, 2, 2), 4, [], []))


if __name__ == "__main__":
    main()
