#!/usr/bin/python3
"""PyTorch replica of SparseGPT for benchmarks/bench_sparsegpt.sh.

The reference implementation's algorithm (Frantar & Alistarh 2023,
github.com/IST-DASLab/sparsegpt, `SparseGPT.fasterprune` and `add_batch`)
on LeNet-300-100 (nn.Linear 784-300-100-10) at the same sparsity, block
size (128), dampening (0.01) and calibration size as the prunebench run,
layers in order, each layer's input recorded on the calibration images with
the earlier layers already pruned. The weights are PyTorch's default
initialization: the time does not depend on their values.

Prints "result: prune_s=S threads=T": S covers the calibration forward
passes, H, its factorizations and the column loop of all three layers (what
the prunebench plugin's prune_s covers). Data loading is outside the clock.

usage: sparsegpt_peer.py [--sparsity 0.5] [--calib 128] [--threads 1] [--data-dir DIR]
"""
import argparse
import os
import sys
import time

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_peer import MEAN, STD, load  # noqa: E402


def fasterprune(W, H, sparsity, blocksize=128, percdamp=0.01):
    W = W.clone().float()
    cols = W.shape[1]
    dead = torch.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    damp = percdamp * torch.mean(torch.diag(H))
    diag = torch.arange(cols)
    H[diag, diag] += damp
    H = torch.linalg.cholesky(H)
    H = torch.cholesky_inverse(H)
    Hinv = torch.linalg.cholesky(H, upper=True)
    for i1 in range(0, cols, blocksize):
        i2 = min(i1 + blocksize, cols)
        count = i2 - i1
        W1 = W[:, i1:i2].clone()
        Q1 = torch.zeros_like(W1)
        Err1 = torch.zeros_like(W1)
        Hinv1 = Hinv[i1:i2, i1:i2]
        tmp = W1 ** 2 / (torch.diag(Hinv1).reshape((1, -1))) ** 2
        thresh = torch.sort(tmp.flatten())[0][int(tmp.numel() * sparsity)]
        mask1 = tmp <= thresh
        for i in range(count):
            w = W1[:, i]
            d = Hinv1[i, i]
            q = w.clone()
            q[mask1[:, i]] = 0
            Q1[:, i] = q
            err1 = (w - q) / d
            W1[:, i:] -= err1.unsqueeze(1).matmul(Hinv1[i, i:].unsqueeze(0))
            Err1[:, i] = err1
        W[:, i1:i2] = Q1
        W[:, i2:] -= Err1.matmul(Hinv[i1:i2, i2:])
    return W


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sparsity", type=float, default=0.5)
    ap.add_argument("--calib", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--data-dir", default=os.environ.get("PRUNEBENCH_DATA", "/usr/share/datasets/fashion-mnist"))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    x, _ = load(a.data_dir, "train")
    idx = torch.randperm(x.shape[0])[: a.calib]
    xc = ((x[idx].float() / 255 - MEAN) / STD).reshape(a.calib, -1)
    layers = [nn.Linear(784, 300), nn.Linear(300, 100), nn.Linear(100, 10)]
    with torch.no_grad():
        t0 = time.perf_counter()
        inp = xc
        for k, lin in enumerate(layers):
            H = 2.0 / inp.shape[0] * inp.t().matmul(inp)
            lin.weight.copy_(fasterprune(lin.weight.data, H, a.sparsity))
            inp = lin(inp)
            if k < len(layers) - 1:
                inp = torch.relu(inp)
        secs = time.perf_counter() - t0
    print(f"result: prune_s={secs:.4f} threads={a.threads}")


if __name__ == "__main__":
    main()
