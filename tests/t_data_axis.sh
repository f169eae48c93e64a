#!/bin/sh
# The data axis of experiment scripts: data = { ... } with fractions, a data
# method combined with a weight method in one cell, budgets, the refusals
# (before anything trains), the data columns and the time-to-accuracy charts.
PB=${top_builddir:-.}/prunebench
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n=0 failed=0
check() { # check DESCRIPTION COMMAND...: passes when the command succeeds
    desc=$1; shift
    n=$((n + 1))
    if "$@" >"$tmp/check.out" 2>&1; then echo "ok $n - $desc"; else
        echo "not ok $n - $desc"; sed 's/^/# /' "$tmp/check.out" | head -20; failed=1; fi
}
# refused NAME PATTERN: the script tmp/NAME.lua exits 2, its error matches, nothing was written
refused() {
    "$PB" run "$tmp/$1.lua" --out "$tmp/r" -q 2>"$tmp/$1.err"
    rc=$?
    test $rc -eq 2 && grep -q "$2" "$tmp/$1.err" && test ! -d "$tmp/r/bad" || { cat "$tmp/$1.err"; return 1; }
}
export OPENBLAS_NUM_THREADS=1
echo 1..13

base='models = { model{ name = "tiny", dense(16), relu(), dense(10) } }, datasets = { { "synthetic", subset = 400 } }, train = { epochs = 3, batch = 50, lr = 0.05 }, finetune = { epochs = 1 },'
printf 'experiment "bad" { %s data = { { "rs2", fraction = { 0.1, 0 } } } }\n' "$base" > "$tmp/frac0.lua"
printf 'experiment "bad" { %s data = { { "rs2", fraction = 1.5 } } }\n' "$base" > "$tmp/frac15.lua"
printf 'experiment "bad" { %s methods = { "rs2" } }\n' "$base" > "$tmp/datamethod.lua"
printf 'experiment "bad" { %s data = { "magnitude" } }\n' "$base" > "$tmp/weightdata.lua"
printf 'experiment "bad" { %s data = { "full" }, budget = { epochs = 2, steps = 5 } }\n' "$base" > "$tmp/budget2.lua"
printf 'experiment "bad" { %s data = { "full" }, budget = { steps = 0 } }\n' "$base" > "$tmp/budget0.lua"
printf 'experiment "bad" { %s budget = { steps = 10 } }\n' "$base" > "$tmp/budgetnodata.lua"

check "a fraction of 0 names the entry and the range, exit 2" refused frac0 'frac0.lua:1:.*data\[1\] (rs2): fraction: 0 is not a number in (0, 1\]'
check "a fraction of 1.5 is refused" refused frac15 'frac15.lua:1:.*fraction: 1.5 is not a number in (0, 1\]'
check "a data method among the weight methods is refused" refused datamethod 'methods\[1\]: rs2 is a data-selection method'
check "a weight method on the data axis is refused" refused weightdata 'data\[1\]: magnitude prunes weights'
check "a budget in two units is refused" refused budget2 'budget: give one of epochs, seconds, steps'
check "a budget of 0 steps is refused" refused budget0 'budget.steps: 0 is not an integer in \[1, '
check "a budget without a data axis is refused" refused budgetnodata 'budget bounds the training of data cells'

cat > "$tmp/axis.lua" <<LUA
experiment "axis" {
  $base
  methods = { "dense", "magnitude" },
  sparsity = { 0.5 },
  data = { "full", { "rs2", fraction = { 0.1, 0.25 } }, { "el2n", fraction = 0.25, epochs = 1 } },
  seeds = { 1, 2 },
  target = 0.2,
  plots = { "time_to_accuracy", "accuracy_vs_train_flops", "time_to_target", "accuracy_at_time" },
}
LUA
check "the data axis expands: 2 methods x 4 data variants x 2 seeds = 16 cells" sh -c \
    "'$PB' run '$tmp/axis.lua' --out '$tmp/r' --dry-run | grep -c '^[0-9a-f]\{16\} ' | grep -qx 16"
check "every cell runs" "$PB" run "$tmp/axis.lua" --out "$tmp/r" -q -j 1
R="$tmp/r/axis"
check "cells.csv names the data method, label, fraction and arguments" sh -c \
    "head -1 '$R/cells.csv' | grep -q ',data,data_label,fraction,data_args,budget,target,' &&
     grep -q ',magnitude,magnitude,0.5,.*,rs2,rs2 r=0.25,0.25,fraction=0.25,,0.2,' '$R/cells.csv'"
check "a score-based cell carries its scoring run: score rows and a larger cost" sh -c \
    "awk -F, 'NR > 1 && \$40 == \"el2n\" && \$5 == \"dense\" { el = \$38 } NR > 1 && \$41 == \"rs2 r=0.25\" && \$5 == \"dense\" { rs = \$38 }
              END { exit !(el > rs) }' '$R/cells.csv' && grep -q ',score,' '$R/curves.csv'"
check "the time-to-accuracy charts are written" sh -c \
    "test -s '$R/plots/time_to_accuracy-tiny-r0.25.dat' && test -s '$R/plots/accuracy_vs_train_flops-tiny-r0.1.gp' &&
     test -s '$R/plots/time_to_target-tiny.dat' && test -s '$R/plots/accuracy_at_time-tiny.dat' &&
     grep -q 'full' '$R/plots/time_to_accuracy-tiny-r0.1.dat'"
# hashes of cells without a data axis: the committed sparse_vs_dense results were made before the axis existed
SRC=${top_srcdir:-.}
n=$((n + 1))
if "$PB" run "$SRC/benchmarks/sparse_vs_dense.lua" -e sparse_vs_dense_lenet300 -e sparse_vs_dense_lenet5 --out "$tmp/none" --dry-run >"$tmp/dry.txt" 2>"$tmp/dry.err"; then
    grep -o '^[0-9a-f]\{16\} ' "$tmp/dry.txt" | tr -d ' ' | sort > "$tmp/now.txt"
    for e in sparse_vs_dense_lenet300 sparse_vs_dense_lenet5; do tail -n +2 "$SRC/benchmarks/results/$e/cells.csv"; done |
        cut -d, -f2 | sort > "$tmp/then.txt"
    # every committed cell is still declared with its hash (the script may have gained cells)
    if test -s "$tmp/then.txt" && test -z "$(comm -13 "$tmp/now.txt" "$tmp/then.txt")"; then
        echo "ok $n - cells without a data axis keep the hashes of results made before it (sparse_vs_dense.lua)"
    else
        echo "not ok $n - cells without a data axis keep the hashes of results made before it (sparse_vs_dense.lua)"; failed=1
    fi
else
    echo "ok $n # SKIP Fashion-MNIST is not installed: $(head -1 "$tmp/dry.err")"
fi
exit $failed
