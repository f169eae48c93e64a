#!/usr/bin/python3
"""PyTorch peer of `prunebench train` for benchmarks/bench_train.sh.

Trains LeNet-300-100, LeNet-5, conv4 or ResNet-20 (option-B projection
shortcuts, as prunebench builds them) on Fashion-MNIST exactly as prunebench does:
the whole data set in memory as bytes, a fresh random permutation per epoch,
each batch gathered and normalized ((x/255 - 0.2860) / 0.3530) inside the
timed loop, SGD with momentum, softmax cross-entropy, PyTorch's default
initialization. PyTorch gets its fastest setting: no DataLoader (no worker
processes, no collation), pre-loaded tensors, no autograd anomaly checks.

Prints one line per epoch, "epoch N train_s=S", where S covers only the
training steps (batch gathering, forward, backward, update), then
"result: test_acc=A threads=T eval_s=E", E being the test evaluation
(eval mode, torch.no_grad, batches of 1000), timed apart from training.

usage: torch_peer.py --model lenet300|lenet5|conv4|resnet20 [--epochs 2]
                     [--threads T] [--batch 128] [--lr 0.05] [--momentum 0.9]
                     [--seed 1] [--subset K] [--data-dir DIR]
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


class Block(nn.Module):
    """ResNet basic block: conv-BN-ReLU-conv-BN plus the shortcut, then ReLU."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout),
                                  nn.ReLU(), nn.Conv2d(cout, cout, 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(cout))
        self.short = nn.Identity()
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.body(x) + self.short(x))


def resnet20():
    layers = [nn.Conv2d(1, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU()]
    c = 16
    for stage in range(3):
        oc = 16 << stage
        for blk in range(3):
            layers.append(Block(c, oc, 2 if stage > 0 and blk == 0 else 1))
            c = oc
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, 10)]
    return nn.Sequential(*layers)


def conv4():
    return nn.Sequential(nn.Conv2d(1, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(128, 128, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(128 * 7 * 7, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                         nn.Linear(256, 10))


def build(name):
    if name == "resnet20":
        return resnet20()
    if name == "conv4":
        return conv4()
    if name == "lenet300":
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 300), nn.ReLU(), nn.Linear(300, 100),
                             nn.ReLU(), nn.Linear(100, 10))
    if name == "lenet5":
        return nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                             nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                             nn.Linear(84, 10))
    sys.exit(f"unknown model '{name}' (valid: lenet300, lenet5, conv4, resnet20)")


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
    ap.add_argument("--subset", type=int, default=0, help="train on the first K examples only")
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
    if a.subset > 0:
        xtr, ytr = xtr[:a.subset], ytr[:a.subset]
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
    t0 = time.perf_counter()
    with torch.no_grad():
        for s in range(0, xte.shape[0], 1000):
            correct += (model(normalize(xte[s:s + 1000])).argmax(1) == yte[s:s + 1000]).sum().item()
    eval_s = time.perf_counter() - t0
    print(f"result: test_acc={correct / xte.shape[0]:.4f} threads={torch.get_num_threads()} "
          f"eval_s={eval_s:.3f}")


if __name__ == "__main__":
    main()
