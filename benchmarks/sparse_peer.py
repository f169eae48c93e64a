#!/usr/bin/python3
"""PyTorch peer of benchmarks/bench_sparse for benchmarks/bench_sparse.sh.

Times torch.sparse's CSR matrix product on the dense layers of LeNet-300-100
(784-300-100-10) or LeNet-5 (400-120-84-10), each weight pruned at random
to DENSITY (round(DENSITY * n) weights kept, as bench_sparse does), for a
batch of BATCH examples. Each layer is y^T = W x^T + b with W a
torch.sparse_csr_tensor and x^T a dense (cols x BATCH) tensor, so no
transposes are timed on this side; "model" chains the layers with bias and
ReLU the same way. One thread (bench_sparse runs the engine on one), no
autograd. Prints the medians of the single products of ROUNDS rounds of REPS:
  layer NAME ROWS COLS DENSITY BATCH TORCH_US
  model NAME DENSITY BATCH TORCH_US

usage: sparse_peer.py --model lenet300|lenet5 --density D --batch B
                      [--rounds 7] [--reps N]
Run it with Debian's /usr/bin/python3 (python3-torch).
"""
import argparse
import statistics
import time
import warnings

import torch

warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")

LAYERS = {"lenet300": [("fc1", 300, 784), ("fc2", 100, 300), ("fc3", 10, 100)],
          "lenet5": [("fc1", 120, 400), ("fc2", 84, 120), ("fc3", 10, 84)]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", choices=sorted(LAYERS), default="lenet300")
    ap.add_argument("--density", type=float, default=0.05)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--reps", type=int, default=0)
    a = ap.parse_args()
    if not 0 < a.density <= 1 or a.batch < 1 or a.rounds < 1:
        ap.error("need 0 < density <= 1, batch >= 1, rounds >= 1")
    reps = a.reps or (2000 if a.batch == 1 else 50)
    torch.set_num_threads(1)
    torch.set_grad_enabled(False)
    g = torch.Generator().manual_seed(42)
    layers = []
    for name, rows, cols in LAYERS[a.model]:
        n = rows * cols
        keep = torch.randperm(n, generator=g)[: round(a.density * n)]
        w = torch.zeros(n)
        w[keep] = torch.randn(len(keep), generator=g) / cols ** 0.5
        layers.append((name, rows, cols, w.view(rows, cols).to_sparse_csr(), torch.randn(rows, 1, generator=g)))
    x = torch.rand(LAYERS[a.model][0][2], a.batch, generator=g)
    inputs = []
    h = x
    for _, _, _, w, b in layers:
        inputs.append(h)
        h = torch.relu(torch.addmm(b, w, h))
    # every product timed on its own; medians of the single ones (as
    # bench_sparse does) leave out those during which the process was
    # descheduled on a shared machine
    times = {name: [] for name, *_ in layers}
    times["model"] = []
    clock = time.perf_counter
    for _ in range(a.rounds):
        for (name, _, _, w, b), xi in zip(layers, inputs):
            for _ in range(reps):
                t0 = clock()
                torch.addmm(b, w, xi)
                times[name].append((clock() - t0) * 1e6)
        for _ in range(reps):
            t0 = clock()
            h = x
            for i, (_, _, _, w, b) in enumerate(layers):
                h = torch.addmm(b, w, h)
                if i + 1 < len(layers):
                    h = torch.relu(h)
            times["model"].append((clock() - t0) * 1e6)
    for name, rows, cols, _, _ in layers:
        print(f"layer {name} {rows} {cols} {a.density:.4f} {a.batch} {statistics.median(times[name]):.3f}")
    print(f"model {a.model} {a.density:.4f} {a.batch} {statistics.median(times['model']):.3f}")


if __name__ == "__main__":
    main()
