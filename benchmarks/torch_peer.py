#!/usr/bin/python3
"""PyTorch peer of `prunebench train` for benchmarks/bench_train.sh.

Trains LeNet-300-100 or LeNet-5 on Fashion-MNIST exactly as prunebench does:
the whole data set in memory as bytes, a fresh random permutation per epoch,
each batch gathered and normalized ((x/255 - 0.2860) / 0.3530) inside the
timed loop, SGD with momentum, softmax cross-entropy, PyTorch's default
initialization. PyTorch gets its fastest setting: no DataLoader (no worker
processes, no collation), pre-loaded tensors, no autograd anomaly checks.

Prints one line per epoch, "epoch N train_s=S", where S covers only the
training steps (batch gathering, forward, backward, update), then
"result: test_acc=A threads=T", the test evaluation being outside the timing.

usage: torch_peer.py --model lenet300|lenet5 [--epochs 2] [--threads T]
                     [--batch 128] [--lr 0.05] [--momentum 0.9] [--seed 1]
                     [--data-dir DIR]
Run it with Debian's /usr/bin/python3 (python3-torch).
"""
import argparse
import gzip
import os
import struct
import sys
import time

import torch
import torch.nn as nn

MEAN, STD = 0.2860, 0.3530


def read_idx(path):
    """Returns (dims, bytes) of a gzipped or plain IDX file of unsigned bytes."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08:
        sys.exit(f"{path}: not an IDX file of unsigned bytes")
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return dims, data[4 + 4 * ndim:]


def load(data_dir, split):
    stem = "train" if split == "train" else "t10k"
    for ext in (".gz", ""):
        img = os.path.join(data_dir, f"{stem}-images-idx3-ubyte{ext}")
        lab = os.path.join(data_dir, f"{stem}-labels-idx1-ubyte{ext}")
        if os.path.exists(img) and os.path.exists(lab):
            break
    else:
        sys.exit(f"Fashion-MNIST {split} split not found in {data_dir}")
    (n, h, w), xb = read_idx(img)
    _, yb = read_idx(lab)
    x = torch.frombuffer(bytearray(xb), dtype=torch.uint8).reshape(n, 1, h, w)
    y = torch.frombuffer(bytearray(yb), dtype=torch.uint8).long()
    return x, y


def build(name):
    if name == "lenet300":
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 300), nn.ReLU(), nn.Linear(300, 100),
                             nn.ReLU(), nn.Linear(100, 10))
    if name == "lenet5":
        return nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                             nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                             nn.Linear(84, 10))
    sys.exit(f"unknown model '{name}' (valid: lenet300, lenet5)")


def normalize(xb):
    return (xb.float() * (1.0 / 255.0) - MEAN) * (1.0 / STD)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--momentum", type=float, default=0.9)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--data-dir", default=os.environ.get("PRUNEBENCH_DATA",
                                                         "/usr/share/datasets/fashion-mnist"))
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    xtr, ytr = load(a.data_dir, "train")
    xte, yte = load(a.data_dir, "test")
    model = build(a.model)
    opt = torch.optim.SGD(model.parameters(), lr=a.lr, momentum=a.momentum)
    lossf = nn.CrossEntropyLoss()
    n = xtr.shape[0]

    model.train()
    for ep in range(1, a.epochs + 1):
        t0 = time.perf_counter()
        perm = torch.randperm(n)
        for s in range(0, n, a.batch):
            idx = perm[s:s + a.batch]
            xb, yb = normalize(xtr[idx]), ytr[idx]
            opt.zero_grad(set_to_none=True)
            loss = lossf(model(xb), yb)
            loss.backward()
            opt.step()
        train_s = time.perf_counter() - t0
        print(f"epoch {ep} train_s={train_s:.3f} last_loss={loss.item():.4f}", flush=True)

    model.eval()
    correct = 0
    with torch.no_grad():
        for s in range(0, xte.shape[0], 1000):
            correct += (model(normalize(xte[s:s + 1000])).argmax(1) == yte[s:s + 1000]).sum().item()
    print(f"result: test_acc={correct / xte.shape[0]:.4f} threads={torch.get_num_threads()}")


if __name__ == "__main__":
    main()
