#!/bin/sh
# bench_sparsegpt.sh: one-shot SparseGPT on LeNet-300-100 (target: < 2 s)
# against a PyTorch replica of the reference algorithm and against Wanda,
# measured in the same run.
#
# Trains LeNet-300-100 on Fashion-MNIST for 2 epochs once (a checkpoint in a
# temporary directory), then alternates RUNS times:
#   - `prunebench prune --load CKPT --method sparsegpt --sparsity 0.5`
#     (128 calibration examples, blocks of 128, damp 0.01): the plugin's
#     prune_s (calibration passes, H, factorization and column loop of all
#     layers), and the whole command's wall seconds (process start, data
#     loading, pruning, test evaluation);
#   - benchmarks/sparsegpt_peer.py: the same algorithm in PyTorch
#     (the reference implementation's fasterprune), same scope as prune_s;
#   - `prunebench prune ... --method wanda` (one pass of norms, no update):
#     its wall_s (after loading, pruning and evaluation) next to SparseGPT's.
# Both sides run on one thread (OMP_WAIT_POLICY=PASSIVE for PyTorch), the
# fastest setting for either on this shared 2-core machine. Prints medians
# and ratios; with OUT set, also writes them to $OUT/bench_sparsegpt.txt.
#
# usage: benchmarks/bench_sparsegpt.sh     (from the build directory)
# environment: RUNS (5), SPARSITY (0.5), OUT
set -eu
RUNS=${RUNS:-5}
S=${SPARSITY:-0.5}
PB=./prunebench
PY=/usr/bin/python3
DIR=$(dirname "$0")
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
core=$($PB --version 2>/dev/null | sed -n 's/.*OPENBLAS_CORETYPE=\([A-Za-z0-9_]*\).*/\1/p' | head -1)
[ -n "${OPENBLAS_CORETYPE:-}" ] || { [ -z "$core" ] || export OPENBLAS_CORETYPE="$core"; }
$PB train --model lenet300 --epochs 2 -t 1 --save "$TMP/l300.pb" >"$TMP/train.log" 2>&1
now() { date +%s.%N; }
: >"$TMP/sg"; : >"$TMP/sgw"; : >"$TMP/pt"; : >"$TMP/wa"; : >"$TMP/sgc"
i=0
while [ $i -lt "$RUNS" ]; do
    t0=$(now)
    $PB prune --load "$TMP/l300.pb" --method sparsegpt --sparsity "$S" -t 1 >"$TMP/o" 2>&1
    t1=$(now)
    grep -o 'prune_s=[0-9.]*' "$TMP/o" | cut -d= -f2 >>"$TMP/sg"
    grep -o ' wall_s=[0-9.]*' "$TMP/o" | cut -d= -f2 >>"$TMP/sgc"
    echo "$t1 - $t0" | bc -l >>"$TMP/sgw"
    OMP_WAIT_POLICY=PASSIVE OPENBLAS_NUM_THREADS=1 $PY "$DIR/sparsegpt_peer.py" --sparsity "$S" --threads 1 |
        grep -o 'prune_s=[0-9.]*' | cut -d= -f2 >>"$TMP/pt"
    $PB prune --load "$TMP/l300.pb" --method wanda --sparsity "$S" -t 1 >"$TMP/o" 2>&1
    grep -o ' wall_s=[0-9.]*' "$TMP/o" | cut -d= -f2 >>"$TMP/wa"
    i=$((i + 1))
done
med() { sort -g "$1" | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
sg=$(med "$TMP/sg"); pt=$(med "$TMP/pt"); sgw=$(med "$TMP/sgw"); sgc=$(med "$TMP/sgc"); wa=$(med "$TMP/wa")
acc=$(grep -o 'test_acc=[0-9.]*' "$TMP/o" | head -1)
{
    echo "one-shot SparseGPT, LeNet-300-100, s=$S, 128 calibration examples, 1 thread, medians of $RUNS alternated runs"
    echo "revision: $(git -C "$DIR/.." describe --always --dirty 2>/dev/null || echo unknown)  OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-}"
    printf 'prunebench sparsegpt prune_s        %.4f s\n' "$sg"
    printf 'PyTorch replica prune_s             %.4f s\n' "$pt"
    printf 'ratio prunebench / PyTorch          %.2f\n' "$(echo "$sg / $pt" | bc -l)"
    printf 'whole prune command (load, prune, evaluate) %.3f s (target < 2 s)\n' "$sgw"
    printf 'cell wall_s: sparsegpt %.3f s, wanda %.3f s, ratio %.2f\n' "$sgc" "$wa" "$(echo "$sgc / $wa" | bc -l)"
    echo "runs (sparsegpt prune_s / torch prune_s / sparsegpt command s / wanda wall_s):"
    paste -d' ' "$TMP/sg" "$TMP/pt" "$TMP/sgw" "$TMP/wa"
} | tee "$TMP/report"
if [ -n "${OUT:-}" ]; then
    mkdir -p "$OUT"
    cp "$TMP/report" "$OUT/bench_sparsegpt.txt"
fi
