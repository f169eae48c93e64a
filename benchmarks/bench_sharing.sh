#!/bin/sh
# bench_sharing.sh: what parameter sharing costs per training epoch.
#
# Trains LeNet-300-100 on Fashion-MNIST for one epoch, dense (`prunebench
# train`) and with stable_rps at 10x memory compression (`prunebench prune
# --method stable_rps --sparsity 0.9`), same recipe (batch 128, SGD), at each
# thread count of THREADS. Within each of RUNS rounds every thread count runs
# both, in an order that alternates from round to round (dense first, then
# stable_rps first), so that a burst of load on this shared machine hits
# both; each ratio is that of the medians of the epochs' train_s at one thread
# count (the training loop alone: forward, backward, the generation of the
# weights from the shared array once per step and the routing of their
# gradients into it; not the test evaluation). Target: ratio <= 1.3.
#
# usage: benchmarks/bench_sharing.sh   (from the build directory)
# environment: RUNS (7), THREADS ("1 2"), METHOD (stable_rps), SPARSITY (0.9),
#              MODEL (lenet300), PRUNEBENCH_DATA
set -eu

top_builddir=${top_builddir:-$(pwd)}
PB=$top_builddir/prunebench
RUNS=${RUNS:-7}
THREADS=${THREADS:-1 2}
METHOD=${METHOD:-stable_rps}
SPARSITY=${SPARSITY:-0.9}
MODEL=${MODEL:-lenet300}
[ -x "$PB" ] || { echo "bench_sharing.sh: $PB not built (run make in $top_builddir)" >&2; exit 2; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

train_s() { sed -n 's/.*epoch 1\/1 .* train_s=\([0-9.]*\).*/\1/p' "$1" | tail -n 1; }

median() { sort -g | awk '{v[NR] = $1} END {if (NR == 0) exit 1; print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

dense() {
    "$PB" train --model "$MODEL" --epochs 1 -t "$1" --seed "$2" >"$tmp/d$1.$2" 2>&1 ||
        { cat "$tmp/d$1.$2" >&2; exit 1; }
}
shared() {
    "$PB" prune --method "$METHOD" --sparsity "$SPARSITY" --model "$MODEL" --epochs 1 -t "$1" --seed "$2" \
        >"$tmp/s$1.$2" 2>&1 || { cat "$tmp/s$1.$2" >&2; exit 1; }
}

i=1
while [ "$i" -le "$RUNS" ]; do
    for t in $THREADS; do
        if [ $((i % 2)) -eq 1 ]; then dense "$t" "$i"; shared "$t" "$i"; else shared "$t" "$i"; dense "$t" "$i"; fi
        d=$(train_s "$tmp/d$t.$i")
        s=$(train_s "$tmp/s$t.$i")
        [ -n "$d" ] && [ -n "$s" ] || { echo "bench_sharing.sh: no train_s in run $i ($t threads)" >&2; exit 1; }
        echo "$d" >>"$tmp/dense.$t"
        echo "$s" >>"$tmp/shared.$t"
        printf 'run %d, %d threads: dense %.3f s, %s %.3f s\n' "$i" "$t" "$d" "$METHOD" "$s"
    done
    i=$((i + 1))
done
for t in $THREADS; do
    md=$(median <"$tmp/dense.$t")
    ms=$(median <"$tmp/shared.$t")
    awk -v d="$md" -v s="$ms" -v m="$METHOD" -v sp="$SPARSITY" -v mo="$MODEL" -v t="$t" -v r="$RUNS" 'BEGIN {
        printf "%s epoch, %d threads, medians of %d alternated runs: dense %.3f s, %s at sparsity %s %.3f s\n", mo, t, r, d, m, sp, s
        printf "ratio %s / dense at %d threads = %.3f (target <= 1.3): %s\n", m, t, s / d, s / d <= 1.3 ? "met" : "NOT met"
    }'
done
