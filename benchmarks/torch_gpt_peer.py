#!/usr/bin/python3
"""PyTorch peer of `prunebench train --model gpt` for benchmarks/bench_train.sh.

The same decoder-only transformer as prunebench's default gpt (pb_gpt.h):
byte tokens (vocabulary 256), token and position embeddings of width 128,
2 pre-LayerNorm blocks of causal 4-head self-attention (one qkv linear layer,
the attention written out as nanoGPT does without a fused kernel, an output
projection) and a GELU (tanh) MLP of width 512, a final LayerNorm, logits from
the token table (tied); softmax cross-entropy over every position; AdamW with
a linear warm-up and cosine decay per step. The data are the fortunes corpus
cut as prunebench cuts it (windows of 65 bytes at stride 64; the first
--examples windows of the topic files' concatenation), whole in memory; a
fresh random permutation per epoch; each batch gathered inside the timed loop.

Prints "train_s=S steps=N step_s=S/N" (training steps only: gathering,
forward, backward, update) and "result: loss=L threads=T".

usage: torch_gpt_peer.py [--examples 3200] [--epochs 1] [--threads T]
                         [--batch 32] [--lr 0.003] [--wd 0.1] [--warmup 10]
                         [--seed 1] [--data-dir /usr/share/games/fortunes]
Run it with Debian's /usr/bin/python3 (python3-torch).
"""
import argparse
import math
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

V, D, L, H, CTX, FF = 256, 128, 2, 4, 64, 512


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln1 = nn.LayerNorm(D)
        self.qkv = nn.Linear(D, 3 * D)
        self.proj = nn.Linear(D, D)
        self.ln2 = nn.LayerNorm(D)
        self.fc1 = nn.Linear(D, FF)
        self.fc2 = nn.Linear(FF, D)
        self.register_buffer("mask", torch.tril(torch.ones(CTX, CTX, dtype=torch.bool)))

    def forward(self, x):
        b, t, _ = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(D, dim=2)
        q = q.view(b, t, H, D // H).transpose(1, 2)
        k = k.view(b, t, H, D // H).transpose(1, 2)
        v = v.view(b, t, H, D // H).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(D // H))
        att = att.masked_fill(~self.mask[:t, :t], float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).contiguous().view(b, t, D)
        x = x + self.proj(y)
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self):
        super().__init__()
        self.tok = nn.Embedding(V, D)
        self.pos = nn.Embedding(CTX, D)
        self.blocks = nn.ModuleList(Block() for _ in range(L))
        self.ln_f = nn.LayerNorm(D)

    def forward(self, idx):
        t = idx.shape[1]
        x = self.tok(idx) + self.pos(torch.arange(t))
        for blk in self.blocks:
            x = blk(x)
        return self.ln_f(x) @ self.tok.weight.t()


def corpus(data_dir, n):
    names = sorted(f for f in os.listdir(data_dir)
                   if "." not in f and os.path.isfile(os.path.join(data_dir, f + ".dat")))
    if not names:
        sys.exit(f"{data_dir}: no fortune files (apt-get install fortunes)")
    text = b"".join(open(os.path.join(data_dir, f), "rb").read() for f in names)
    n = min(n, (len(text) - 1) // CTX)
    buf = torch.frombuffer(bytearray(text[:n * CTX + 1]), dtype=torch.uint8).long()
    x = torch.stack([buf[i * CTX:(i + 1) * CTX] for i in range(n)])
    y = torch.stack([buf[i * CTX + 1:(i + 1) * CTX + 1] for i in range(n)])
    return x, y


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--examples", type=int, default=3200)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=0.003)
    ap.add_argument("--wd", type=float, default=0.1)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--data-dir", default="/usr/share/games/fortunes")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    x, y = corpus(a.data_dir, a.examples)
    model = GPT()
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=a.wd)
    steps_per_epoch = len(x) // a.batch + (len(x) % a.batch > 0)
    total = steps_per_epoch * a.epochs
    step, t_train, loss = 0, 0.0, float("nan")
    for _ in range(a.epochs):
        perm = torch.randperm(len(x))
        t0 = time.perf_counter()
        for s in range(0, len(x), a.batch):
            lr = a.lr * min(1.0, (step + 1) / a.warmup) * 0.5 * (1 + math.cos(math.pi * step / total))
            for g in opt.param_groups:
                g["lr"] = lr
            idx = perm[s:s + a.batch]
            logits = model(x[idx])
            out = F.cross_entropy(logits.view(-1, V), y[idx].view(-1))
            opt.zero_grad(set_to_none=True)
            out.backward()
            opt.step()
            step += 1
        loss = out.item()
        t_train += time.perf_counter() - t0
    print(f"train_s={t_train:.4f} steps={step} step_s={t_train / step:.6f}")
    print(f"result: loss={loss:.4f} threads={a.threads}")


if __name__ == "__main__":
    main()
