#!/bin/sh
# bench_train.sh: training speed of prunebench against PyTorch on Fashion-MNIST.
#
# Trains LeNet-300-100 and LeNet-5 for EPOCHS epochs with `prunebench train`
# and with benchmarks/torch_peer.py (Debian's python3-torch), same batch (128),
# optimizer (SGD lr 0.05 momentum 0.9) and data handling (whole set in memory
# as bytes, random permutation, normalized per batch). The runs alternate
# (prunebench, torch, prunebench, torch, ...) RUNS times each, so a burst of
# load on this shared machine hits both sides, and the table quotes medians.
#
# Only training is timed on both sides: prunebench's per-epoch train_s (the
# epoch's training loop, without the test evaluation that wall_s includes) and
# torch_peer's train_s (the same loop in PyTorch). Data loading happens before
# either clock starts.
#
# Each side first gets its fastest thread setting: prunebench -t 1 or 2,
# PyTorch 1 or 2 threads with OMP_WAIT_POLICY=PASSIVE (OPENBLAS_NUM_THREADS
# follows the thread count on both sides), by the median of TRIALS one-epoch
# runs of each setting, alternated (one epoch swings by a third on this
# machine, so a single trial often picked the slower setting). PyTorch with
# 2 threads and libgomp's default policy, whose threads spin, took 10 to 15
# times longer on this shared 2-core machine, so the trial leaves it out.
# Override with PB_THREADS, TORCH_THREADS and TORCH_WAIT (PASSIVE, ACTIVE or
# default).
#
# Both sides run on the same OpenBLAS kernels: prunebench re-execs itself
# with OPENBLAS_CORETYPE when Debian's OpenBLAS falls back to its slow
# generic (Prescott) kernels on this CPU, so the script reads the kernel set
# from `prunebench --version` and exports it as OPENBLAS_CORETYPE for
# PyTorch and sgemm_peak as well (PyTorch's convolutions run on oneDNN
# either way). An OPENBLAS_CORETYPE already in the environment wins.
#
# It also prints prunebench's sustained training GFLOP/s (pb_model_train_flops
# per example, 3 x the forward FLOPs of `flops=`, times 60000 examples over
# the median seconds per epoch) next to single-thread cblas_sgemm GFLOP/s
# measured by benchmarks/sgemm_peak in every round of the alternation (median),
# so both see the same load.
#
# The conv models (conv4 and ResNet-20, CONV_MODELS) get a section of their
# own at the end: they train on the first CONV_SUBSET (6000) examples for one
# epoch a run, the thread settings are chosen on a quarter of that, and it
# also compares evaluation (the 10000 test images, eval_s) per example with
# training per example, and prints GFLOP/s per layer kind
# (benchmarks/layer_speed) against single-thread SGEMM.
#
# usage: benchmarks/bench_train.sh           (from the build directory)
# environment: RUNS (3), EPOCHS (2), TRIALS (3), MODELS ("lenet300 lenet5"; " " skips them),
#              CONV_MODELS ("conv4 resnet20"; "" skips them), CONV_SUBSET (6000),
#              PYTHON (/usr/bin/python3), PRUNEBENCH_DATA
set -eu

here=$(cd "$(dirname "$0")" && pwd)
top_builddir=${top_builddir:-$(pwd)}
PB=$top_builddir/prunebench
PEAK=$top_builddir/benchmarks/sgemm_peak
LAYERS=$top_builddir/benchmarks/layer_speed
PEER=$here/torch_peer.py
PYTHON=${PYTHON:-/usr/bin/python3}
RUNS=${RUNS:-3}
EPOCHS=${EPOCHS:-2}
TRIALS=${TRIALS:-3}
MODELS=${MODELS-lenet300 lenet5}
EXAMPLES=60000

for f in "$PB" "$PEAK" "$LAYERS"; do
    [ -x "$f" ] || { echo "bench_train.sh: $f not built (run make in $top_builddir)" >&2; exit 2; }
done
"$PYTHON" -c 'import torch' 2>/dev/null ||
    { echo "bench_train.sh: $PYTHON has no torch (apt-get install python3-torch)" >&2; exit 2; }

# "prunebench 0.1.0 (OpenBLAS kernels: SkylakeX)"
blas_core=$("$PB" --version | sed -n 's/.*OpenBLAS kernels: \([A-Za-z0-9_]*\)).*/\1/p')
[ -n "$blas_core" ] || { echo "bench_train.sh: cannot read the OpenBLAS kernels from '$PB --version'" >&2; exit 2; }
OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-$blas_core}
export OPENBLAS_CORETYPE

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# prints mean train_s per epoch of one prunebench run (and keeps its output)
pb_run() { # model threads epochs out
    OPENBLAS_NUM_THREADS=$2 "$PB" train --model "$1" --epochs "$3" -t "$2" >"$4" 2>&1 ||
        { cat "$4" >&2; exit 1; }
    awk '/^epoch /{for(i=1;i<=NF;i++) if($i ~ /^train_s=/){sub("train_s=","",$i); s+=$i; n++}}
         END{if(!n) exit 1; printf "%.3f\n", s/n}' "$4"
}

torch_run() { # model threads wait epochs out
    if [ "$3" = default ]; then
        OPENBLAS_NUM_THREADS=$2 "$PYTHON" "$PEER" --model "$1" --threads "$2" --epochs "$4" >"$5" 2>&1 ||
            { cat "$5" >&2; exit 1; }
    else
        OMP_WAIT_POLICY=$3 OPENBLAS_NUM_THREADS=$2 "$PYTHON" "$PEER" --model "$1" --threads "$2" \
            --epochs "$4" >"$5" 2>&1 || { cat "$5" >&2; exit 1; }
    fi
    awk '/^epoch /{for(i=1;i<=NF;i++) if($i ~ /^train_s=/){sub("train_s=","",$i); s+=$i; n++}}
         END{if(!n) exit 1; printf "%.3f\n", s/n}' "$5"
}

median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END{print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

echo "OpenBLAS kernels: prunebench chose $blas_core; every run here uses OPENBLAS_CORETYPE=$OPENBLAS_CORETYPE"
echo "== single-thread SGEMM (benchmarks/sgemm_peak)"
"$PEAK" | tee "$tmp/peak"
core=$(awk '$1=="openblas_core"{print $2}' "$tmp/peak")
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo

table=$tmp/table
: >"$table"
for model in $MODELS; do
    echo "== $model: choosing thread settings (median of $TRIALS alternated one-epoch trials)"
    p1= ; p2= ; q1= ; q2=
    i=1
    while [ $i -le "$TRIALS" ]; do
        for t in 1 2; do
            if [ -z "${PB_THREADS:-}" ]; then
                s=$(pb_run "$model" $t 1 "$tmp/cal")
                eval "p$t=\"\$p$t $s\""
            fi
            if [ -z "${TORCH_THREADS:-}" ]; then
                s=$(torch_run "$model" $t PASSIVE 1 "$tmp/cal")
                eval "q$t=\"\$q$t $s\""
            fi
        done
        i=$((i + 1))
    done
    if [ -n "${PB_THREADS:-}" ]; then
        pbt=$PB_THREADS
    else
        m1=$(echo "$p1" | median)
        m2=$(echo "$p2" | median)
        echo "  prunebench -t 1: $m1 s ($p1 ), -t 2: $m2 s ($p2 )"
        pbt=1
        awk "BEGIN{exit !($m2 < $m1)}" && pbt=2
    fi
    if [ -n "${TORCH_THREADS:-}" ]; then
        tt=$TORCH_THREADS
        tw=${TORCH_WAIT:-PASSIVE}
    else
        m1=$(echo "$q1" | median)
        m2=$(echo "$q2" | median)
        echo "  pytorch OMP_WAIT_POLICY=PASSIVE threads=1: $m1 s ($q1 ), threads=2: $m2 s ($q2 )"
        tt=1
        tw=PASSIVE
        awk "BEGIN{exit !($m2 < $m1)}" && tt=2
    fi
    echo "== $model: $RUNS alternated runs of $EPOCHS epochs (prunebench -t $pbt, pytorch threads=$tt OMP_WAIT_POLICY=$tw)"
    pbs= ; ths= ; gms= ; gcs=
    i=1
    while [ $i -le "$RUNS" ]; do
        "$PEAK" 0.3 >"$tmp/peak"
        gms="$gms $(awk '$1=="sgemm" && $2==128 && $3==300 {print $5}' "$tmp/peak")"
        gcs="$gcs $(awk '$1=="sgemm" && $2==1024 {print $5}' "$tmp/peak")"
        s=$(pb_run "$model" "$pbt" "$EPOCHS" "$tmp/pb.out"); pbs="$pbs $s"
        flops=$(sed -n 's/^result:.* flops=\([0-9]*\) .*/\1/p' "$tmp/pb.out")
        s2=$(torch_run "$model" "$tt" "$tw" "$EPOCHS" "$tmp/th.out"); ths="$ths $s2"
        echo "  run $i: prunebench $s s/epoch, pytorch $s2 s/epoch"
        i=$((i + 1))
    done
    mp=$(echo "$pbs" | median)
    mt=$(echo "$ths" | median)
    gm=$(echo "$gms" | median)
    gc=$(echo "$gcs" | median)
    echo "$model $pbt $mp $tt $tw $mt $flops $gm $gc$pbs |$ths" >>"$table"
    echo
done

echo "== results: seconds per training epoch, median of $RUNS alternated runs (training only)"
printf '%-9s %-22s %-22s %-8s %-8s %-9s %s\n' model "prunebench s/epoch" "pytorch s/epoch" ratio target \
    "GFLOP/s" "% of SGEMM 1-thread x threads (128x300x784 / 1024^3)"
while read -r model pbt mp tt tw mt flops g_mlp g_cube rest; do
    target=0.85
    [ "$model" = lenet5 ] && target=0.40
    awk -v m="$model" -v pbt="$pbt" -v mp="$mp" -v tt="$tt" -v tw="$tw" -v mt="$mt" -v f="$flops" \
        -v n=$EXAMPLES -v tg="$target" -v gm="$g_mlp" -v gc="$g_cube" 'BEGIN{
        gf = 3 * f * n / mp / 1e9
        printf "%-9s %-22s %-22s %-8.2f %-8s %-9.1f %.0f%% / %.0f%%\n", m, sprintf("%.3f (-t %d)", mp, pbt),
            sprintf("%.3f (%d thr, %s)", mt, tt, tw), mp / mt, "<= " tg, gf, 100 * gf / (gm * pbt), 100 * gf / (gc * pbt)
    }'
done <"$table"
echo
echo "single-thread SGEMM GFLOP/s, median over the rounds (128x300x784, 1024^3; OpenBLAS kernels: $core):"
while read -r model pbt mp tt tw mt flops g_mlp g_cube rest; do
    echo "  during $model: $g_mlp, $g_cube"
done <"$table"
echo "all runs (s/epoch, prunebench | pytorch):"
while read -r model pbt mp tt tw mt flops g_mlp g_cube rest; do echo "  $model: $rest"; done <"$table"

# ======================================================================
# GPT section: a training step of the default gpt (pb_gpt.h: 2 blocks of
# width 128, 4 heads, context 64, about 0.44 M parameters) on the fortunes
# corpus against the same model in PyTorch (benchmarks/torch_gpt_peer.py),
# batch 32, AdamW with warm-up and cosine decay. Each side trains one epoch
# of GPT_EXAMPLES windows (100 steps); the figure is seconds per step of the
# training loop alone (prunebench's train_s over its steps, the peer's
# step_s), median of GPT_RUNS alternated runs, both sides on GPT_THREADS
# threads (PyTorch with OMP_WAIT_POLICY=PASSIVE). Target: ratio <= 1.0.
# GPT=0 skips the section; it needs Debian's fortunes package.
# environment: GPT (1), GPT_RUNS (5), GPT_EXAMPLES (3200), GPT_THREADS (1)
# ======================================================================
if [ "${GPT:-1}" != 0 ]; then
    GPT_RUNS=${GPT_RUNS:-5}
    GPT_EXAMPLES=${GPT_EXAMPLES:-3200}
    GPT_THREADS=${GPT_THREADS:-1}
    GPT_PEER=$here/torch_gpt_peer.py
    gpt_steps=$(( (GPT_EXAMPLES + 31) / 32 ))
    echo
    echo "== gpt: $GPT_RUNS alternated runs of $gpt_steps steps (batch 32, context 64; $GPT_THREADS thread(s) each side)"
    gps= ; gts=
    i=1
    while [ $i -le "$GPT_RUNS" ]; do
        OPENBLAS_NUM_THREADS=$GPT_THREADS "$PB" train --model gpt --dataset fortunes --subset "$GPT_EXAMPLES" \
            --epochs 1 --batch 32 --opt adamw --lr 0.003 --wd 0.1 --schedule cosine --warmup 10 \
            -t "$GPT_THREADS" >"$tmp/gpt.out" 2>&1 || { cat "$tmp/gpt.out" >&2; exit 1; }
        s=$(awk -v n="$gpt_steps" '/^epoch /{for(i=1;i<=NF;i++) if($i ~ /^train_s=/){sub("train_s=","",$i); printf "%.5f\n", $i/n}}' \
            "$tmp/gpt.out")
        OMP_WAIT_POLICY=PASSIVE OPENBLAS_NUM_THREADS=$GPT_THREADS "$PYTHON" "$GPT_PEER" --threads "$GPT_THREADS" \
            --examples "$GPT_EXAMPLES" >"$tmp/gpt_th.out" 2>&1 || { cat "$tmp/gpt_th.out" >&2; exit 1; }
        s2=$(sed -n 's/.*step_s=\([0-9.]*\).*/\1/p' "$tmp/gpt_th.out")
        echo "  run $i: prunebench $s s/step, pytorch $s2 s/step"
        gps="$gps $s"; gts="$gts $s2"
        i=$((i + 1))
    done
    mp=$(echo "$gps" | median)
    mt=$(echo "$gts" | median)
    awk -v mp="$mp" -v mt="$mt" -v t="$GPT_THREADS" 'BEGIN{
        printf "%-9s %-22s %-22s %-8s %s\n", "model", "prunebench s/step", "pytorch s/step", "ratio", "target"
        printf "%-9s %-22s %-22s %-8.2f %s\n", "gpt", sprintf("%.4f (-t %d)", mp, t), sprintf("%.4f (%d thr)", mt, t),
            mp / mt, "<= 1.0" }'
    echo "all gpt runs (s/step, prunebench | pytorch):$gps |$gts"
fi
# ======================================================================

# ---- conv models (conv4, ResNet-20): training, evaluation, GFLOP/s per layer kind ----
CONV_MODELS=${CONV_MODELS-conv4 resnet20}
CONV_SUBSET=${CONV_SUBSET:-6000}
[ -n "$CONV_MODELS" ] || exit 0
cal_subset=$((CONV_SUBSET / 4))
TEST_EXAMPLES=10000

# prints "train_s eval_s" of one one-epoch run on `subset` examples
conv_pb_run() { # model threads subset out
    OPENBLAS_NUM_THREADS=$2 "$PB" train --model "$1" --subset "$3" --epochs 1 -t "$2" >"$4" 2>&1 ||
        { cat "$4" >&2; exit 1; }
    awk '/^epoch /{for(i=1;i<=NF;i++){if($i ~ /^train_s=/){sub("train_s=","",$i); t=$i}
                                       if($i ~ /^eval_s=/){sub("eval_s=","",$i); e=$i}}}
         END{if(t == "" || e == "") exit 1; print t, e}' "$4"
}

conv_torch_run() { # model threads subset out
    OMP_WAIT_POLICY=PASSIVE OPENBLAS_NUM_THREADS=$2 "$PYTHON" "$PEER" --model "$1" --threads "$2" \
        --subset "$3" --epochs 1 >"$4" 2>&1 || { cat "$4" >&2; exit 1; }
    awk '/^epoch /{for(i=1;i<=NF;i++) if($i ~ /^train_s=/){sub("train_s=","",$i); t=$i}}
         /^result:/{for(i=1;i<=NF;i++) if($i ~ /^eval_s=/){sub("eval_s=","",$i); e=$i}}
         END{if(t == "" || e == "") exit 1; print t, e}' "$4"
}

ctable=$tmp/ctable
: >"$ctable"
echo
for model in $CONV_MODELS; do
    echo "== $model: choosing thread settings (median of $TRIALS alternated one-epoch trials on $cal_subset examples)"
    p1= ; p2= ; q1= ; q2=
    i=1
    while [ $i -le "$TRIALS" ]; do
        for t in 1 2; do
            [ -n "${PB_THREADS:-}" ] || { s=$(conv_pb_run "$model" $t $cal_subset "$tmp/cal" | cut -d' ' -f1); eval "p$t=\"\$p$t $s\""; }
            [ -n "${TORCH_THREADS:-}" ] || { s=$(conv_torch_run "$model" $t $cal_subset "$tmp/cal" | cut -d' ' -f1); eval "q$t=\"\$q$t $s\""; }
        done
        i=$((i + 1))
    done
    pbt=${PB_THREADS:-1}
    tt=${TORCH_THREADS:-1}
    if [ -z "${PB_THREADS:-}" ]; then
        m1=$(echo "$p1" | median); m2=$(echo "$p2" | median)
        echo "  prunebench -t 1: $m1 s ($p1 ), -t 2: $m2 s ($p2 )"
        awk "BEGIN{exit !($m2 < $m1)}" && pbt=2
    fi
    if [ -z "${TORCH_THREADS:-}" ]; then
        m1=$(echo "$q1" | median); m2=$(echo "$q2" | median)
        echo "  pytorch OMP_WAIT_POLICY=PASSIVE threads=1: $m1 s ($q1 ), threads=2: $m2 s ($q2 )"
        awk "BEGIN{exit !($m2 < $m1)}" && tt=2
    fi
    echo "== $model: $RUNS alternated one-epoch runs on $CONV_SUBSET examples (prunebench -t $pbt, pytorch threads=$tt)"
    pts= ; pes= ; tts= ; tes=
    i=1
    while [ $i -le "$RUNS" ]; do
        set -- $(conv_pb_run "$model" "$pbt" "$CONV_SUBSET" "$tmp/pb.out"); pts="$pts $1"; pes="$pes $2"
        set -- $(conv_torch_run "$model" "$tt" "$CONV_SUBSET" "$tmp/th.out"); tts="$tts $1"; tes="$tes $2"
        echo "  run $i: prunebench train $(echo "$pts" | awk '{print $NF}') s eval $(echo "$pes" | awk '{print $NF}') s, pytorch train $1 s eval $2 s"
        i=$((i + 1))
    done
    echo "$model $pbt $tt $(echo "$pts" | median) $(echo "$pes" | median) $(echo "$tts" | median) $(echo "$tes" | median)" >>"$ctable"
    echo
done

echo "== results (conv models): one epoch on $CONV_SUBSET examples, evaluation of $TEST_EXAMPLES, medians of $RUNS alternated runs"
printf '%-9s %-20s %-20s %-7s %-7s %-28s %s\n' model "prunebench train_s" "pytorch train_s" ratio target \
    "eval speed-up over training" "eval_s prunebench / pytorch"
while read -r model pbt tt pt pe tht the; do
    awk -v m="$model" -v pbt="$pbt" -v tt="$tt" -v pt="$pt" -v pe="$pe" -v tht="$tht" -v the="$the" \
        -v n="$CONV_SUBSET" -v ne="$TEST_EXAMPLES" 'BEGIN{
        printf "%-9s %-20s %-20s %-7.2f %-7s %-28s %.3f / %.3f (ratio %.2f)\n", m, sprintf("%.3f (-t %d)", pt, pbt),
            sprintf("%.3f (%d thr)", tht, tt), pt / tht, "<= 0.7",
            sprintf("%.2fx per example (>= 3)", (pt / n) / (pe / ne)), pe, the, pe / the
    }'
done <"$ctable"

echo
echo "== GFLOP/s per layer kind (benchmarks/layer_speed, batch 128, one thread, median of 5 calls;"
echo "   backward counts the weight and input gradients, 4 x MACs), single-thread SGEMM in the same round"
for model in $CONV_MODELS; do
    "$PEAK" 0.3 >"$tmp/peak"
    "$LAYERS" "$model" 128 1 5 >"$tmp/layers" || { cat "$tmp/layers" >&2; exit 1; }
    "$PEAK" 0.3 >>"$tmp/peak"
    g=$(awk '$1=="sgemm" && $2==1024 {print $5}' "$tmp/peak" | median)
    echo "-- $model (SGEMM 1024^3: $g GFLOP/s)"
    awk -v g="$g" '$1=="kind"{
        line = sprintf("  %-18s fwd %8.2f ms  bwd %8.2f ms  infer %8.2f ms", $2, $4, $6, $8)
        if (NF >= 14)
            line = line sprintf("  GFLOP/s fwd %6.1f (%3.0f%%) bwd %6.1f (%3.0f%%) infer %6.1f", $10, 100*$10/g, $12, 100*$12/g, $14)
        print line }
        $1=="total"{printf "  %-18s fwd %8.2f ms  bwd %8.2f ms  infer %8.2f ms\n", "total", $3, $5, $7}' "$tmp/layers"
done
