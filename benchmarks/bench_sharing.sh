#!/bin/sh
# bench_sharing.sh: what parameter sharing costs per training epoch.
#
# Trains LeNet-300-100 on Fashion-MNIST for one epoch, dense (`prunebench
# train`) and with stable_rps at 10x memory compression (`prunebench prune
# --method stable_rps --sparsity 0.9`), same recipe (batch 128, SGD), same
# thread count. The runs alternate (dense, stable_rps, dense, ...) RUNS times
# each so that a burst of load on this shared machine hits both, and the
# ratio is that of the medians of the epochs' train_s (the training loop
# alone: forward, backward, the generation of the weights from the shared
# array once per step and the routing of their gradients into it; not the
# test evaluation). Target: ratio <= 1.3.
#
# usage: benchmarks/bench_sharing.sh   (from the build directory)
# environment: RUNS (5), THREADS (1), METHOD (stable_rps), SPARSITY (0.9),
#              MODEL (lenet300), PRUNEBENCH_DATA
set -eu

top_builddir=${top_builddir:-$(pwd)}
PB=$top_builddir/prunebench
RUNS=${RUNS:-5}
THREADS=${THREADS:-1}
METHOD=${METHOD:-stable_rps}
SPARSITY=${SPARSITY:-0.9}
MODEL=${MODEL:-lenet300}
[ -x "$PB" ] || { echo "bench_sharing.sh: $PB not built (run make in $top_builddir)" >&2; exit 2; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

train_s() { sed -n 's/.*epoch 1\/1 .* train_s=\([0-9.]*\).*/\1/p' "$1" | tail -n 1; }

median() { sort -g | awk '{v[NR] = $1} END {if (NR == 0) exit 1; print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

i=1
while [ "$i" -le "$RUNS" ]; do
    "$PB" train --model "$MODEL" --epochs 1 -t "$THREADS" --seed "$i" >"$tmp/d$i" 2>&1 ||
        { cat "$tmp/d$i" >&2; exit 1; }
    "$PB" prune --method "$METHOD" --sparsity "$SPARSITY" --model "$MODEL" --epochs 1 -t "$THREADS" --seed "$i" \
        >"$tmp/s$i" 2>&1 || { cat "$tmp/s$i" >&2; exit 1; }
    d=$(train_s "$tmp/d$i")
    s=$(train_s "$tmp/s$i")
    [ -n "$d" ] && [ -n "$s" ] || { echo "bench_sharing.sh: no train_s in run $i" >&2; exit 1; }
    echo "$d" >>"$tmp/dense"
    echo "$s" >>"$tmp/shared"
    printf 'run %d: dense %.3f s, %s %.3f s\n' "$i" "$d" "$METHOD" "$s"
    i=$((i + 1))
done
md=$(median <"$tmp/dense")
ms=$(median <"$tmp/shared")
awk -v d="$md" -v s="$ms" -v m="$METHOD" -v sp="$SPARSITY" -v mo="$MODEL" -v t="$THREADS" -v r="$RUNS" 'BEGIN {
    printf "%s epoch, %d threads, medians of %d alternated runs: dense %.3f s, %s at sparsity %s %.3f s\n", mo, t, r, d, m, sp, s
    printf "ratio %s / dense = %.3f (target <= 1.3): %s\n", m, s / d, s / d <= 1.3 ? "met" : "NOT met"
}'
