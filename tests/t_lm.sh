#!/bin/sh
# Language models through `prunebench run` and `train`, on a small corpus of
# fortune files made here (the installed package is not needed): bad input is
# refused before anything trains (an unknown topic with the valid ones, heads
# not dividing the width, a context longer than the model's, an accuracy
# target on text); a gpt experiment writes perplexity columns and charts on a
# log perplexity axis; `train` prints perplexity and bits per byte.
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
export OPENBLAS_NUM_THREADS=1
echo 1..9

corpus=$tmp/corpus
mkdir "$corpus"
for t in alpha beta; do
    i=0
    while [ $i -lt 300 ]; do
        printf '%s %d: the quick brown fox jumps over the lazy dog\n%%\n' "$t" "$i"
        i=$((i + 1))
    done >"$corpus/$t"
    : >"$corpus/$t.dat"
done

expect_fail() { # expect_fail SCRIPT PATTERN: run refuses the script, naming PATTERN, and trains nothing
    "$PB" run "$1" --data-dir "$corpus" --out "$tmp/out_bad" >"$tmp/bad.out" 2>&1 && return 1
    grep -q "$2" "$tmp/bad.out" && ! grep -q '^\[1/' "$tmp/bad.out"
}

cat >"$tmp/topic.lua" <<'LUA'
experiment "x" { models = { { "gpt", layers = 1, dim = 16, heads = 2, ctx = 16 } },
  datasets = { { "fortunes", topics = { "gamma" }, ctx = 16 } }, methods = { "dense" } }
LUA
check "an unknown topic is refused with the valid ones" expect_fail "$tmp/topic.lua" "unknown topic 'gamma' (valid: alpha, beta)"

cat >"$tmp/heads.lua" <<'LUA'
experiment "x" { models = { { "gpt", layers = 1, dim = 16, heads = 3, ctx = 16 } },
  datasets = { { "fortunes", ctx = 16 } }, methods = { "dense" } }
LUA
check "heads not dividing the width are refused" expect_fail "$tmp/heads.lua" "3 heads do not divide the width dim=16"

cat >"$tmp/ctx.lua" <<'LUA'
experiment "x" { models = { { "gpt", layers = 1, dim = 16, heads = 2, ctx = 8 } },
  datasets = { { "fortunes", ctx = 16 } }, methods = { "dense" } }
LUA
check "a context longer than the model's is refused" expect_fail "$tmp/ctx.lua" "context of 16 tokens is longer than the model's (ctx=8)"

cat >"$tmp/target.lua" <<'LUA'
experiment "x" { models = { { "gpt", layers = 1, dim = 16, heads = 2, ctx = 16 } },
  datasets = { { "fortunes", ctx = 16 } }, methods = { "dense" }, target = 0.5 }
LUA
check "an accuracy target on a text data set is refused" expect_fail "$tmp/target.lua" "not a perplexity > 1"

cat >"$tmp/ok.lua" <<'LUA'
experiment "lm" {
  models   = { { "gpt", layers = 1, dim = 16, heads = 2, ctx = 16 } },
  datasets = { { "fortunes", topics = { "alpha" }, ctx = 16 } },
  methods  = { "dense", "magnitude", { "wanda", calib = 16 } },
  sparsity = { 0.5 },
  train    = { epochs = 1, batch = 16, opt = "adamw", lr = 0.01, schedule = "cosine", warmup = 5 },
  finetune = { epochs = 0 },
  target   = 500,
  plots    = { "accuracy_vs_sparsity", "accuracy_vs_epochs" },
}
LUA
"$PB" run "$tmp/ok.lua" --data-dir "$corpus" -j 1 --out "$tmp/out" >"$tmp/run.out" 2>&1
R=$tmp/out/lm
col() { head -1 "$1" | tr ',' '\n' | grep -nx "$2" | cut -d: -f1; }
check "the gpt experiment runs its 3 cells" grep -q "3 cells (3 run now, 0 from earlier runs), 0 failed" "$tmp/run.out"
# test_ppl, test_bpb, pruned_ppl are the last columns (quoted fields before
# them hold commas, as the data set's name does)
check "cells.csv: test_ppl in (1, 256], test_bpb = log2(test_ppl), on every cell" sh -c \
    "head -1 '$R/cells.csv' | grep -q ',test_ppl,test_bpb,pruned_ppl\$' && awk -F, 'NR > 1 { n++; p = \$(NF - 2); b = \$(NF - 1); d = log(p) / log(2) - b; if (p > 1 && p <= 256 && d * d < 1e-8) k++ } END { exit !(n == 3 && k == 3) }' '$R/cells.csv'"
check "curves.csv carries test_ppl" sh -c "head -1 '$R/curves.csv' | grep -q ',test_ppl\$' && awk -F, 'NR == 2 { exit !(\$NF > 1) }' '$R/curves.csv'"
check "the charts plot perplexity on a log axis" sh -c \
    "grep -q \"set ylabel 'test perplexity (lower is better)'\" '$R/plots/accuracy_vs_sparsity.gp' && grep -q 'set logscale y' '$R/plots/accuracy_vs_sparsity.gp'"
"$PB" train --model gpt:layers=1,dim=16,heads=2,ctx=16 --dataset fortunes:beta,ctx=16 --data-dir "$corpus" \
    -e 1 -b 16 --opt adamw -q >"$tmp/train.out" 2>&1
check "train prints test perplexity and bits per byte" grep -Eq 'test_ppl=[0-9.]+ test_bpb=[0-9.]+' "$tmp/train.out"
exit $failed
