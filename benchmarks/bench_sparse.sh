#!/bin/sh
# bench_sparse.sh: inference of pruned models on the engine's dense kernels,
# on its sparse kernels (pb_sparse.h) and on PyTorch's torch.sparse CSR
# product (Debian's python3-torch), side by side in one run.
#
# For LeNet-300-100 and LeNet-5, densities 50, 20, 10, 5 and 2 % (every
# dense layer pruned at random to that density; LeNet-5's convolutions stay
# dense: the sparse formats cover dense layers only) and batches of 1 and
# 128, it runs benchmarks/bench_sparse (the engine, both kernels in every
# round, one thread) and benchmarks/sparse_peer.py (torch.sparse, one
# thread) alternately RUNS times, each run quoting the median of the single
# forwards of ROUNDS rounds, and prints the median over runs, with the ratios:
#   speedup  = dense engine / sparse engine
#   vs_torch = torch.sparse / sparse engine (above 1: the engine is faster)
# The torch side multiplies by the weights with the input already
# transposed (no transposes timed), and its "model" line is the three dense
# layers only; for LeNet-5 the engine's model line includes the dense
# convolutions, so no torch ratio is given there.
#
# N:M masks (NMS, at the batches NM_BATCHES): the same models with every
# dense layer N:M-pruned at random (bench_sparse --nm), so the engine runs
# its nm format; they appear as MODEL@N:M, against torch.sparse's CSR
# product at density N/M (a CSR product does not use the pattern).
#
# At batch 1 a second table gives what each layer's kernels read per
# forward: the dense weights, and the sparse layout (values, 1-byte
# indices, run table), with the bytes per kept weight, the layout's fill
# (kept weights / slots) and the bandwidth each kernel reached. Both
# kernels stream their weights from cache, so the batch-1 speedup is
# about dense bytes / sparse bytes at equal bandwidth.
#
# Targets (issue): batch-1 LeNet-300-100 speedup >= 0.6 / density down to
# 5 % density; batch 128 at 5 %: >= 3; faster than torch.sparse everywhere.
# The last lines say which are met in this run.
#
# usage: benchmarks/bench_sparse.sh          (from the build directory)
# environment: RUNS (3), ROUNDS (5), MODELS ("lenet300 lenet5"),
#              DENSITIES ("0.5 0.2 0.1 0.05 0.02"), BATCHES ("1 128"),
#              NMS ("2:4 1:4 1:8 1:16"; empty: none), NM_BATCHES ("1"),
#              KERNELS (sparse: nm where n:m, else csr; or csr),
#              PYTHON (/usr/bin/python3)
set -eu

here=$(cd "$(dirname "$0")" && pwd)
top_builddir=${top_builddir:-$(pwd)}
BENCH=$top_builddir/benchmarks/bench_sparse
PEER=$here/sparse_peer.py
PYTHON=${PYTHON:-/usr/bin/python3}
RUNS=${RUNS:-3}
ROUNDS=${ROUNDS:-5}
MODELS=${MODELS:-lenet300 lenet5}
DENSITIES=${DENSITIES:-0.5 0.2 0.1 0.05 0.02}
BATCHES=${BATCHES:-1 128}
NMS=${NMS-2:4 1:4 1:8 1:16}
NM_BATCHES=${NM_BATCHES:-1}
KERNELS=${KERNELS:-sparse}

[ -x "$BENCH" ] || { echo "bench_sparse.sh: $BENCH not built (run make in $top_builddir)" >&2; exit 2; }
"$PYTHON" -c 'import torch' 2>/dev/null ||
    { echo "bench_sparse.sh: $PYTHON has no torch (apt-get install python3-torch)" >&2; exit 2; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); one thread on every side"
echo "medians of $RUNS alternated runs (each the median single forward of $ROUNDS rounds), microseconds per forward"
# all raw lines: "engine|torch RUN line..."
: >"$tmp/raw"
# one point: RUNS alternated runs of the engine and the peer;
# point MODEL DENSITY BATCH LABEL [--nm N:M]
point() {
    model=$1 d=$2 b=$3 label=$4
    shift 4
    treps=$([ "$b" = 1 ] && echo 300 || echo 20)
    r=1
    while [ $r -le "$RUNS" ]; do
        OPENBLAS_NUM_THREADS=1 "$BENCH" --model "$model" --density "$d" --batch "$b" \
            --rounds "$ROUNDS" --kernels "$KERNELS" "$@" >"$tmp/e" ||
            { echo "bench_sparse.sh: bench_sparse failed" >&2; exit 1; }
        sed "s/^/engine $label /" "$tmp/e" >>"$tmp/raw"
        OMP_NUM_THREADS=1 "$PYTHON" "$PEER" --model "$model" --density "$d" --batch "$b" \
            --rounds "$ROUNDS" --reps "$treps" >"$tmp/t" ||
            { echo "bench_sparse.sh: sparse_peer.py failed" >&2; exit 1; }
        sed "s/^/torch $label /" "$tmp/t" >>"$tmp/raw"
        r=$((r + 1))
    done
}
for model in $MODELS; do
    for d in $DENSITIES; do
        for b in $BATCHES; do
            point "$model" "$d" "$b" "$model"
        done
    done
    for nm in $NMS; do
        d=$(echo "$nm" | awk -F: '{ printf "%.4f", $1 / $2 }')
        for b in $NM_BATCHES; do
            point "$model" "$d" "$b" "$model@$nm" --nm "$nm"
        done
    done
done

# engine lines: engine MODEL layer NAME ROWS COLS D B FMT DENSE SPARSE
#               engine MODEL model NAME D B DENSE SPARSE
# torch lines:  torch MODEL layer NAME ROWS COLS D B T
#               torch MODEL model NAME D B T
awk '
function med(key,   n, i, j, t, a) {
    n = split(vals[key], a, " ")
    for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
function add(key, v) { vals[key] = vals[key] " " v; if (!(key in seen)) { seen[key] = 1; order[++nk] = key } }
$1 == "engine" && $3 == "layer" { k = $2 " " $4 " " $5 "x" $6 " " $7 " " $8; fmt[k] = $9; add(k " dense", $10); add(k " sparse", $11) }
$1 == "engine" && $3 == "model" { k = $2 " model - " $5 " " $6; fmt[k] = "-"; add(k " dense", $7); add(k " sparse", $8) }
$1 == "torch" && $3 == "layer"  { add($2 " " $4 " " $5 "x" $6 " " $7 " " $8 " torch", $9) }
$1 == "torch" && $3 == "model"  { add($2 " model - " $5 " " $6 " torch", $7) }
$1 == "engine" && $3 == "layout" { lk = $2 " " $4 " " $5; kept[lk] = $6; dbytes[lk] = $7; sbytes[lk] = $8; lfill[lk] = $9 }
END {
    printf "%-9s %-6s %-8s %7s %5s %-5s %10s %10s %10s %8s %8s\n", "model", "layer", "shape", "density", "batch", "fmt", "dense_us", "sparse_us", "torch_us", "speedup", "vs_torch"
    met1 = 1; met128 = -1; mett = 1; n1 = 0
    for (i = 1; i <= nk; i++) {
        key = order[i]
        if (key !~ / dense$/) continue
        k = substr(key, 1, length(key) - 6)
        split(k, f, " ")
        dn = med(k " dense"); sp = med(k " sparse"); s = dn / sp
        tk = k " torch"; tt = -1
        if ((tk in seen) && !(f[1] == "lenet5" && f[2] == "model")) tt = med(tk)
        printf "%-9s %-6s %-8s %7.3f %5d %-5s %10.2f %10.2f %10s %8.2f %8s\n", f[1], f[2], f[3], f[4], f[5], fmt[k], dn, sp,
               (tt > 0 ? sprintf("%.2f", tt) : "-"), s, (tt > 0 ? sprintf("%.2f", tt / sp) : "-")
        if (tt > 0 && tt <= sp) { mett = 0; slow = slow sprintf(" %s/%s/d=%s/B=%s", f[1], f[2], f[4], f[5]) }
        if (f[1] == "lenet300" && f[2] == "model" && f[5] == 1 && f[4] >= 0.05) {
            want = 0.6 / f[4]; n1++
            line1 = line1 sprintf(" d=%s: %.2fx (want %.2fx)", f[4], s, want)
            if (s < want) met1 = 0
        }
        if (f[1] == "lenet300" && f[2] == "model" && f[5] == 128 && f[4] == 0.05) { met128 = s >= 3; s128 = s }
    }
    print ""
    printf "batch 1, bytes read per forward: the dense weights and the sparse layout (bytes per kept weight, fill), and the bandwidth reached\n"
    printf "%-13s %-6s %7s %10s %10s %8s %6s %8s %9s %10s\n", "model", "layer", "density", "dense_B", "sparse_B", "B/kept", "fill", "B_ratio", "dense_GB/s", "sparse_GB/s"
    for (i = 1; i <= nk; i++) {
        key = order[i]
        if (key !~ / dense$/) continue
        k = substr(key, 1, length(key) - 6)
        split(k, f, " ")
        if (f[2] == "model" || f[5] != 1) continue
        lk = f[1] " " f[2] " " f[4]
        if (!(lk in kept)) continue
        dn = med(k " dense"); sp = med(k " sparse")
        printf "%-13s %-6s %7.3f %10d %10d %8.2f %6.3f %8.2f %9.1f %10.1f\n", f[1], f[2], f[4], dbytes[lk], sbytes[lk],
               sbytes[lk] / kept[lk], lfill[lk], dbytes[lk] / sbytes[lk], dbytes[lk] / dn / 1000, sbytes[lk] / sp / 1000
    }
    print ""
    if (n1) printf "target batch-1 LeNet-300-100 speedup >= 0.6/density: %s;%s\n", met1 ? "MET" : "NOT MET", line1
    if (met128 >= 0) printf "target batch-128 LeNet-300-100 speedup at 5%% >= 3x: %s (%.2fx)\n", met128 ? "MET" : "NOT MET", s128
    printf "target faster than torch.sparse at every point: %s%s\n", mett ? "MET" : "NOT MET; slower at", slow
}' "$tmp/raw"
