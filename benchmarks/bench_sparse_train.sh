#!/bin/sh
# bench_sparse_train.sh: one fine-tuning epoch of LeNet-300-100 pruned to
# 95 % sparsity, on the engine's sparse kernels against its dense kernels.
#
# Trains LeNet-300-100 on Fashion-MNIST for BASE_EPOCHS epochs (saved once),
# then, for each seed in SEEDS, prunes it by layerwise magnitude (the
# `magnitude` method) to SPARSITY and fine-tunes it for one epoch
# (`prunebench prune --load ... --finetune-epochs 1`), once with
# PB_KERNELS=dense and once with PB_KERNELS=auto (the sparse kernels, chosen
# per layer by density and batch size), alternated RUNS times per seed. The
# fine-tuning epoch's train_s (the training loop alone, no evaluation) is
# compared as the median over every run of each side; the accuracy after the
# epoch as mean and spread over the seeds (the kernels differ only in the
# order of their sums, so they should agree to well within 0.5 points).
# Both sides run one thread (-t 1).
#
# Target (issue): the sparse epoch >= 3x faster at the same accuracy (+-0.5 pp).
#
# usage: benchmarks/bench_sparse_train.sh      (from the build directory)
# environment: RUNS (3), SEEDS ("1 2 3"), BASE_EPOCHS (3), SPARSITY (0.95),
#              PRUNEBENCH_DATA
set -eu

top_builddir=${top_builddir:-$(pwd)}
PB=$top_builddir/prunebench
RUNS=${RUNS:-3}
SEEDS=${SEEDS:-1 2 3}
BASE_EPOCHS=${BASE_EPOCHS:-3}
SPARSITY=${SPARSITY:-0.95}

[ -x "$PB" ] || { echo "bench_sparse_train.sh: $PB not built (run make in $top_builddir)" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); -t 1 on both sides"
"$PB" train --model lenet300 --epochs "$BASE_EPOCHS" -t 1 -q --save "$tmp/base.ckpt" >"$tmp/base.log" 2>&1 ||
    { cat "$tmp/base.log" >&2; exit 1; }
echo "base: $(grep '^result:' "$tmp/base.log" | cut -d' ' -f2) after $BASE_EPOCHS epochs"

: >"$tmp/rows"
for seed in $SEEDS; do
    r=1
    while [ $r -le "$RUNS" ]; do
        for k in dense auto; do
            PB_KERNELS=$k "$PB" prune --method magnitude --sparsity "$SPARSITY" --load "$tmp/base.ckpt" \
                --finetune-epochs 1 --seed "$seed" -t 1 >"$tmp/ft.log" 2>&1 ||
                { cat "$tmp/ft.log" >&2; exit 1; }
            awk -v k=$k -v seed=$seed '
                /^epoch 1\/1 / { for (i = 1; i <= NF; i++) if ($i ~ /^train_s=/) { sub("train_s=", "", $i); t = $i } }
                /^result:/ { for (i = 1; i <= NF; i++) if ($i ~ /^test_acc=/) { sub("test_acc=", "", $i); a = $i } }
                END { if (t == "" || a == "") exit 1; print k, seed, t, a }' "$tmp/ft.log" >>"$tmp/rows" ||
                { echo "bench_sparse_train.sh: no fine-tuning epoch in the output:" >&2; cat "$tmp/ft.log" >&2; exit 1; }
        done
        r=$((r + 1))
    done
done

awk -v sp="$SPARSITY" '
function med(s,   n, i, j, t, a) {
    n = split(s, a, " ")
    for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
{ t[$1] = t[$1] " " $3; if (!(($1, $2) in acc)) { acc[$1, $2] = $4; seeds[$2] = 1 } }
END {
    for (k in t) tm[k] = med(t[k])
    for (k in t) {
        n = 0; s = 0; ss = 0
        for (sd in seeds) { n++; s += acc[k, sd]; ss += acc[k, sd] * acc[k, sd] }
        mean[k] = s / n; sd_[k] = n > 1 ? sqrt((ss - s * s / n) / (n - 1)) : 0
    }
    printf "%-6s %12s %22s\n", "kernels", "epoch_s", "test_acc (mean +- std)"
    printf "%-6s %12.3f %14.4f +- %.4f\n", "dense", tm["dense"], mean["dense"], sd_["dense"]
    printf "%-6s %12.3f %14.4f +- %.4f\n", "sparse", tm["auto"], mean["auto"], sd_["auto"]
    r = tm["dense"] / tm["auto"]; d = 100 * (mean["auto"] - mean["dense"])
    printf "\nfine-tuning epoch at sparsity %s: sparse %.2fx faster than dense; accuracy difference %+.2f pp\n", sp, r, d
    printf "target >= 3x at the same accuracy (+-0.5 pp): %s\n", (r >= 3 && d <= 0.5 && d >= -0.5) ? "MET" : "NOT MET"
}' "$tmp/rows"
