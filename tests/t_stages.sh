#!/bin/sh
# Stages, kept models, string parameters, plugin metrics and cost columns,
# through the prunebench binary and a test plugin (tests/delta_probe_plugin.c).
PB=${top_builddir:-.}/prunebench
src=${top_srcdir:-.}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n=0 failed=0
check() {
    desc=$1; shift
    n=$((n + 1))
    if "$@" >"$tmp/out" 2>&1; then echo "ok $n - $desc"; else echo "not ok $n - $desc"; sed 's/^/# /' "$tmp/out"; failed=1; fi
}
metric() { # file name
    tr ' ' '\n' < "$1" | sed -n "s/^$2=//p"
}
export OPENBLAS_NUM_THREADS=1
echo 1..11
CFLAGS_PB=$(PKG_CONFIG_PATH=${top_builddir:-.} pkg-config --define-variable=includedir="$src/harness" --cflags prunebench)
mkdir "$tmp/p" "$tmp/q"
check "the probe plugin compiles against the installed headers" \
    cc -std=c11 -Wall -Wextra -Werror -shared -fPIC $CFLAGS_PB -o "$tmp/p/delta_probe.so" "$src/tests/delta_probe_plugin.c" -lm
cc -std=c11 -shared -fPIC $CFLAGS_PB -DNEEDS_REF -o "$tmp/q/delta_probe.so" "$src/tests/delta_probe_plugin.c" -lm
COMMON="--model lenet300 --width 0.25 --dataset synthetic --epochs 2 --finetune-epochs 1 --seed 4 -q"
# pretrain -> keep base -> fine-tune on a derived task -> prune: the kept view is the pretrained model
"$PB" prune --method delta_probe --plugin-path "$tmp/p" --sparsity 0 $COMMON \
    --stages train,keep=base,finetune,prune > "$tmp/kept" 2> "$tmp/kept.err"
"$PB" prune --method delta_probe --plugin-path "$tmp/p" --param ref= --sparsity 0 $COMMON \
    --stages train,prune > "$tmp/plain" 2> "$tmp/plain.err"
check "a pipeline with keep runs and reports the plugin's metrics" sh -c \
    "grep -q '^result:.* w_hash=.* ref_hash=.* delta_max=' '$tmp/kept'"
check "the kept view equals the pretrained weights (the same training without keep)" \
    test "$(metric "$tmp/kept" ref_hash)" = "$(metric "$tmp/plain" w_hash)"
check "fine-tuning after keep changed the model, not the kept view" sh -c \
    "test '$(metric "$tmp/kept" ref_hash)' != '$(metric "$tmp/kept" w_hash)' && awk 'BEGIN { exit !($(metric "$tmp/kept" delta_max) > 0) }'"
check "a plugin that needs a kept model is refused without a keep stage, naming it" sh -c \
    "! '$PB' prune --method delta_probe --plugin-path '$tmp/q' --sparsity 0 $COMMON 2> '$tmp/e'; grep -q \"reads a kept model 'base'\" '$tmp/e'"
check "reading a model nobody kept fails the run with the kept names" sh -c \
    "! '$PB' prune --method delta_probe --plugin-path '$tmp/p' --param ref=other --sparsity 0 $COMMON --stages train,keep=base,prune 2> '$tmp/e'; grep -q \"no kept model named 'other' (kept: base\" '$tmp/e'"
# an experiment: the cost columns, metrics.csv, the stage cache
cat > "$tmp/x.lua" <<'LUA'
experiment "st" {
  models   = { { "lenet300", width = 0.25 } },
  datasets = { "synthetic" },
  methods  = { "dense", "magnitude",
               { "delta_probe", label = "probe",
                 stages = { "train", { "keep", "base" }, { "finetune", permute = 5, label = "task_b" }, "prune" } } },
  sparsity = { 0.5 },
  train    = { epochs = 2, batch = 64 },
  finetune = { epochs = 1 },
}
LUA
"$PB" run "$tmp/x.lua" --out "$tmp/r" --plugin-path "$tmp/p" --no-plot -q > "$tmp/run" 2>&1
R=$tmp/r/st
col() { # file column-name -> column number
    head -1 "$1" | tr ',' '\n' | grep -nx "$2" | cut -d: -f1
}
check "the experiment with stages runs" sh -c "test \$(tail -n +2 '$R/cells.csv' | grep -c ',ok,') -eq 3"
PF=$(col "$R/cells.csv" prefix_flops) CF=$(col "$R/cells.csv" cost_flops) TF=$(col "$R/cells.csv" train_flops)
PW=$(col "$R/cells.csv" prefix_wall_s) CW=$(col "$R/cells.csv" cost_wall_s) WS=$(col "$R/cells.csv" wall_s)
PRB=$(col "$R/cells.csv" probe_flops)
check "a pruned cell's cost includes the pre-training it started from (the dense cell's)" sh -c \
    "awk -F, -v pf=$PF -v cf=$CF -v tf=$TF -v pw=$PW -v cw=$CW -v ws=$WS -v pr=$PRB '
       NR == 2 { dense = \$pf }
       NR == 3 { d = \$cf - (\$pf + \$tf + \$pr); ok = dense > 0 && \$pf == dense && \$tf > 0 && d * d < (1e-5 * \$cf) ^ 2 && \$pw > 0 && \$cw - (\$pw + \$ws) > -1e-4 }
       END { exit !ok }' '$R/cells.csv'"
check "stored values and their compression are recorded" sh -c \
    "awk -F, -v s=$(col "$R/cells.csv" stored) -v p=$(col "$R/cells.csv" params) 'NR == 3 && \$s > 0 && \$s < \$p { ok = 1 } END { exit !ok }' '$R/cells.csv'"
check "metrics.csv: experiment, cell, name, value, from the plugin's metric()" sh -c \
    "head -1 '$R/metrics.csv' | grep -qx 'experiment,cell,name,value' && test \$(grep -c '^st,[0-9a-f]\\{16\\},\\(w_hash\\|ref_hash\\|delta_max\\),' '$R/metrics.csv') -eq 3"
check "curves carry the stage's label and train_s" sh -c \
    "grep -q ',task_b,' '$R/curves.csv' && head -1 '$R/curves.csv' | grep -q ',train_s,eval_s,probe_flops,test_ppl\$'"
exit $failed
