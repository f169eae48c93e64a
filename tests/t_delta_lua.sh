#!/bin/sh
# Derived tasks (class subsets, label maps) and delta methods declared in Lua,
# through the prunebench binary.
PB=${top_builddir:-.}/prunebench
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n=0 failed=0
check() {
    desc=$1; shift
    n=$((n + 1))
    if "$@" >"$tmp/out" 2>&1; then echo "ok $n - $desc"; else echo "not ok $n - $desc"; sed 's/^/# /' "$tmp/out"; failed=1; fi
}
export OPENBLAS_NUM_THREADS=1
echo 1..5
script() { # file classes labels
    cat > "$1" <<LUA
experiment "dt" {
  models   = { { "lenet300", width = 0.25 } },
  datasets = { "synthetic" },
  methods  = { { "dare", stages = { { "train", classes = $2 }, { "keep", "base" },
                                    { "finetune", labels = $3, subset = 500 }, "prune" } },
               { "delta_magnitude", stages = { { "train", classes = $2 }, { "keep", "base" },
                                               { "finetune", labels = $3, subset = 500 }, "prune" } } },
  sparsity = { 0.9 },
  train    = { epochs = 1, batch = 64 },
  finetune = { epochs = 1 },
}
LUA
}
ID="{ 0, 1, 2, 3, 4, 5, 6, 7, 8, 9 }"
script "$tmp/bad1.lua" "{ 0, 12 }" "$ID"
check "a class outside the data set is refused before anything trains, naming the script and the classes" sh -c \
    "! '$PB' run '$tmp/bad1.lua' --out '$tmp/r1' --dry-run 2> '$tmp/e'; grep -q 'bad1.lua' '$tmp/e' && grep -q 'names class 12, but synthetic has 10 classes (0..9)' '$tmp/e' && test ! -d '$tmp/r1/dt/dense'"
script "$tmp/bad2.lua" "{ 0, 1 }" "{ 0, 1, 2 }"
check "a label map without one entry per class is refused" sh -c \
    "! '$PB' run '$tmp/bad2.lua' --out '$tmp/r2' --dry-run 2> '$tmp/e'; grep -q 'labels maps 3 classes, but synthetic has 10' '$tmp/e'"
script "$tmp/bad3.lua" "{ 1, 1 }" "$ID"
check "a class listed twice is refused" sh -c \
    "! '$PB' run '$tmp/bad3.lua' --out '$tmp/r3' --dry-run 2> '$tmp/e'; grep -q 'classes lists class 1 twice' '$tmp/e'"
script "$tmp/ok.lua" "{ 0, 1, 2, 3, 4 }" "{ 9, 8, 7, 6, 5, 4, 3, 2, 1, 0 }"
"$PB" run "$tmp/ok.lua" --out "$tmp/r" --no-plot -q > "$tmp/run" 2>&1
check "pretrain on classes 0-4, keep, fine-tune on a label map, prune the delta: both cells ok" sh -c \
    "test \$(grep -c ',ok,' '$tmp/r/dt/cells.csv') -eq 2"
check "the derived task is part of the cell's stages and its dense-model key, and both cells share the prefix" sh -c \
    "grep -q 'classes=1f' '$tmp/r/dt/cells.csv' && grep -q 'labels=9.8.7.6.5.4.3.2.1.0' '$tmp/r/dt/cells.csv' && test \$(ls '$tmp/r/dt/dense/' | grep -c '\.pb\$') -eq 1 && grep -q 'delta_sparsity' '$tmp/r/dt/metrics.csv'"
exit $failed
