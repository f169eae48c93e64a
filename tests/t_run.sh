#!/bin/sh
# `prunebench run` and `plot`: script errors, the results files and their column
# contract, the dense cache, resuming after kill -9, a crashing plugin, charts.
PB=${top_builddir:-.}/prunebench
SRC=${top_srcdir:-.}
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
echo 1..37

# A small matrix on the synthetic data set: 1 dense + 2 methods x 2 sparsities.
cat > "$tmp/small.lua" <<'LUA'
experiment "small" {
  models   = { model{ name = "tiny", dense(24), relu(), dense(10) } },
  datasets = { "synthetic" },
  methods  = { "dense", "magnitude", { "global_magnitude", label = "gmp" } },
  sparsity = { 0.5, 0.9 },
  train    = { epochs = 2, batch = 64, lr = 0.05 },
  finetune = { epochs = 1, lr = 0.01 },
  target   = 0.3,
}
LUA
printf 'experiment "bad" {\n  models = { "lenet300" },\n  sparsity = { 0.5 0.9 },\n}\n' > "$tmp/syntax.lua"
printf 'experiment "bad" { datasets = { "synthetic" }, methods = { "magnitude" }, sparsity = { 2 } }\n' > "$tmp/axis.lua"
printf 'experiment "bad" { datasets = { "synthetic" }, methods = { "frobnicate" } }\n' > "$tmp/method.lua"

check "run --help shows the options" sh -c "'$PB' run --help | grep -q -- --dry-run"
check "a Lua syntax error prints file:line and exits 2" sh -c \
    "'$PB' run '$tmp/syntax.lua' --out '$tmp/r' 2>'$tmp/e'; test \$? -eq 2 && grep -q 'syntax.lua:3:' '$tmp/e' && test ! -d '$tmp/r/bad'"
check "an invalid axis value names the axis, exit 2" sh -c \
    "'$PB' run '$tmp/axis.lua' --out '$tmp/r' 2>'$tmp/e'; test \$? -eq 2 && grep -q 'axis.lua:1:.*sparsity' '$tmp/e'"
check "an unknown method lists the valid ones, exit 2" sh -c \
    "'$PB' run '$tmp/method.lua' --out '$tmp/r' 2>'$tmp/e'; test \$? -eq 2 && grep -q 'frobnicate' '$tmp/e' && grep -q 'magnitude' '$tmp/e'"
check "--dry-run lists 5 cells and a cost, trains nothing" sh -c \
    "'$PB' run '$tmp/small.lua' --dry-run --out '$tmp/r' > '$tmp/o' && test \$(grep -c ' tiny ' '$tmp/o') -eq 5 && grep -q 'estimated training cost' '$tmp/o' && test ! -d '$tmp/r/small'"
touch "$tmp/file"
check "an unwritable output directory is reported before training" sh -c \
    "! '$PB' run '$tmp/small.lua' --out '$tmp/file/sub' 2>'$tmp/e' && grep -q 'file/sub' '$tmp/e'"

# the run
check "the small matrix runs with -j 2" "$PB" run "$tmp/small.lua" -j 2 --out "$tmp/r" --no-plot -q
R=$tmp/r/small
check "cells.csv starts with the documented columns" sh -c \
    "head -1 '$R/cells.csv' | grep -q '^experiment,cell,model,dataset,method,label,sparsity,seed,status,reason,test_acc,test_loss,params,nonzero,compression,flops_dense,flops_eff,speedup,wall_s,train_flops,time_to_target_s'"
check "one ok row per cell" sh -c "test \$(tail -n +2 '$R/cells.csv' | grep -c ',ok,') -eq 5"
check "curves.csv has per-epoch rows with the documented columns" sh -c \
    "head -1 '$R/curves.csv' | grep -q '^experiment,cell,phase,epoch,step,wall_s,train_flops,sparsity,test_acc,test_loss' && grep -q ',finetune,1,' '$R/curves.csv'"
check "layers.csv has per-layer sparsity" sh -c "grep -q 'fc1.weight' '$R/layers.csv'"
check "metadata records version, git revision, OpenBLAS, host, date and the script" sh -c \
    "grep -q '^prunebench_version:' '$R/metadata.txt' && grep -q '^git_revision:' '$R/metadata.txt' && grep -q '^openblas_config:' '$R/metadata.txt' && grep -Eq '^openblas_kernels: [A-Za-z]' '$R/metadata.txt' && grep -q '^cpu: ' '$R/metadata.txt' && grep -q '^host:' '$R/metadata.txt' && grep -q '^date:' '$R/metadata.txt' && grep -q 'global_magnitude' '$R/metadata.txt'"
# column 23 is dense_cache_hit; the dense model is trained once, by one cell
check "the dense model is trained once and reused by the other methods" sh -c \
    "test \$(ls '$R'/dense/*.pb | wc -l) -eq 1 && test \$(grep -l 'dense model from cache' '$R'/cells/*.log | wc -l) -eq 4 && test \$(awk -F, 'NR > 1 && \$23 == 1' '$R/cells.csv' | wc -l) -eq 4"
check "cells.csv has the build column after achieved_sparsity: version+git revision (or the version alone)" sh -c \
    "head -1 '$R/cells.csv' | grep -q ',achieved_sparsity,build,stored,' && test \$(tail -n +2 '$R/cells.csv' | cut -d, -f31 | grep -cE '^[0-9][0-9.]*(\\+[0-9a-f]{40}(-dirty)?)?\$') -eq 5"
check "time to the target accuracy is recorded" sh -c "awk -F, 'NR > 1 && \$21 != \"\"' '$R/cells.csv' | grep -q ."
cp "$R/metadata.txt" "$tmp/metadata.before"
check "a second run resumes: nothing runs again, metadata.txt unchanged (no run block for a run of nothing)" sh -c \
    "'$PB' run '$tmp/small.lua' --out '$tmp/r' --no-plot > '$tmp/o' 2>&1 && grep -q '0 run now, 5 from earlier runs' '$tmp/o' && test \$(tail -n +2 '$R/cells.csv' | wc -l) -eq 5 && cmp '$tmp/metadata.before' '$R/metadata.txt'"
# a run that does run something (one cell's result removed) appends its block
rm -f "$R/cells/$(awk -F, '$5 == "magnitude" && $7 == 0.5 { print $2 }' "$R/cells.csv").row"
check "metadata keeps both runs, the script text once" sh -c \
    "'$PB' run '$tmp/small.lua' --out '$tmp/r' --no-plot -q && test \$(grep -c '^run [0-9]*: ' '$R/metadata.txt') -eq 2 && grep -q '^run 2: ' '$R/metadata.txt' && grep -q '^cells_finished_before: 4' '$R/metadata.txt' && test \$(grep -c '^--- script text ---' '$R/metadata.txt') -eq 1 && test \$(grep -c '^build: ' '$R/metadata.txt') -eq 2"
if command -v gnuplot >/dev/null 2>&1; then
    check "prunebench plot draws PNG (and SVG) charts from the CSV files" sh -c \
        "'$PB' plot '$R' 2>/dev/null && test -s '$R/plots/accuracy_vs_compression.png' && test -s '$R/plots/accuracy_vs_compression.svg' && test -s '$R/plots/accuracy_vs_compression.gp' && ls '$R'/plots/layer_sparsity_s0.9.png '$R'/plots/accuracy_vs_time_s0.9.png"
else
    n=$((n + 1)); echo "ok $n - # SKIP gnuplot not installed"
fi

# Charts from hand-written results (the .dat files are written even without
# gnuplot): a lottery cell of 3 training epochs with round markers between
# them, dense baselines at three widths, and two networks' layers.
P=$tmp/p
mkdir -p "$P"
{ head -1 "$R/cells.csv"
  echo 'p,c0,net,syn,dense,dense,0,1,ok,,0.9,0.3,1000,1000,1,2000,2000,1,1,1,,1,0,k,,2,0,900,900,0,b'
  echo 'p,c1,net@w0.5,syn,dense,dense,0,1,ok,,0.8,0.3,300,300,1,600,600,1,1,1,,0.5,0,k2,,2,0,250,250,0,b'
  echo 'p,c2,net@w0.25,syn,dense,dense,0,1,ok,,0.7,0.3,100,100,1,200,200,1,1,1,,0.25,0,k3,,2,0,80,80,0,b'
  echo 'p,c3,net,syn,lottery,lottery,0.9,1,ok,,0.85,0.3,1000,190,5.26,2000,380,5.26,1,1,,1,0,k,,1,0,900,90,0.9,b'
  echo 'p,c4,other,syn,magnitude,magnitude,0.9,1,ok,,0.6,0.3,500,60,8.3,1000,120,8.3,1,1,,1,1,k4,,1,1,450,45,0.9,b'
} > "$P/cells.csv"
{ head -1 "$R/curves.csv"
  echo 'p,c0,train,1,10,1,1,0,0.8,0.5'
  echo 'p,c0,train,2,20,2,2,0,0.9,0.3'
  for e in 1 2 3; do echo "p,c3,train,1,$((e * 10)),$e,$e,0.5,0.8,0.4"; [ $e -lt 3 ] && echo "p,c3,round,$((e - 1)),$((e * 10)),$e,$e,0.5,0.8,0.4"; done
} > "$P/curves.csv"
{ head -1 "$R/layers.csv"
  echo 'p,c3,fc1.weight,800,90,0.8875'
  echo 'p,c3,fc2.weight,100,0,1'
  echo 'p,c4,fc1.weight,450,45,0.9'
} > "$P/layers.csv"
"$PB" plot "$P" >/dev/null 2>&1
# one model at one width: the title names the width, the series names do not repeat it
W=$tmp/w
mkdir -p "$W"
{ head -1 "$R/cells.csv"
  echo 'w,c0,net@w0.5,syn,dense,dense,0,1,ok,,0.8,0.3,300,300,1,600,600,1,1,1,,0.5,0,k2,,2,0,250,250,0,b'
  echo 'w,c1,net@w0.5,syn,magnitude,magnitude,0.9,1,ok,,0.6,0.3,300,30,10,600,60,10,1,1,,0.5,1,k2,,1,1,250,25,0.9,b'
} > "$W/cells.csv"
"$PB" plot "$W" >/dev/null 2>&1
check "accuracy_vs_epochs counts training epochs only, not lottery round markers" sh -c \
    "awk '/^#/ { b = /^# lottery/; next } b && NF { x = \$1; n++ } END { exit !(x == 3 && n == 3) }' '$P/plots/accuracy_vs_epochs_s0.9.dat'"
check "layer chart: weights kept per layer (0 shown) on a log axis, layers prefixed by network" sh -c \
    "grep -q '^\"net:fc1.weight\" 800 90 NaN' '$P/plots/layer_sparsity_s0.9.dat' && grep -q '^\"net:fc2.weight\" 100 0 NaN' '$P/plots/layer_sparsity_s0.9.dat' && grep -q '^\"other:fc1.weight\" 450 NaN 45' '$P/plots/layer_sparsity_s0.9.dat' && grep -q 'logscale y' '$P/plots/layer_sparsity_s0.9.gp' && grep -q \"ytics add ('0'\" '$P/plots/layer_sparsity_s0.9.gp'"
check "dense models of one network at several widths are one series, by nonzero parameters" sh -c \
    "test \$(grep -c '^# dense' '$P/plots/accuracy_vs_params.dat') -eq 1 && awk '/^# dense/ { b = 1; next } /^#/ { b = 0 } b && NF { s = s \$1 \" \" } END { exit !(s == \"100 300 1000 \") }' '$P/plots/accuracy_vs_params.dat' && test \$(grep -c \"title 'dense (narrowed\" '$P/plots/accuracy_vs_params.gp') -eq 1"
check "one model at one width: the width is in the title, not in every series name" sh -c \
    "grep -q 'w: net@w0.5 on syn' '$W/plots/accuracy_vs_compression.gp' && grep -q \"title 'magnitude'\" '$W/plots/accuracy_vs_compression.gp' && ! grep -q \"magnitude (net@w0.5)\" '$W/plots/accuracy_vs_compression.gp'"
# the large model at width 0.5 and its narrowed baseline at 0.25 (conv4 at
# width 0.25 in the paper scripts): the narrowed model's x is measured
# against the widest model, and the series and title name the methods' width
W2=$tmp/w2
mkdir -p "$W2"
{ head -1 "$R/cells.csv"
  echo 'w2,c0,net@w0.5,syn,dense,dense,0,1,ok,,0.8,0.3,300,300,1,600,600,1,1,1,,0.5,0,k2,,2,0,250,250,0,b'
  echo 'w2,c1,net@w0.25,syn,dense,dense,0,1,ok,,0.7,0.4,100,100,1,200,200,1,1,1,,0.25,0,k3,,2,0,80,80,0,b'
  echo 'w2,c2,net@w0.5,syn,magnitude,magnitude,0.9,1,ok,,0.6,0.3,300,30,10,600,60,10,1,1,,0.5,1,k2,,1,1,250,25,0.9,b'
} > "$W2/cells.csv"
{ head -1 "$R/curves.csv"
  for c in c0 c1 c2; do for e in 1 2; do echo "w2,$c,train,$e,$((e * 10)),$e,$e,0,0.7,0.5"; done; done
} > "$W2/curves.csv"
"$PB" plot "$W2" >/dev/null 2>&1
check "a narrowed model beside a large model of width 0.5 sits at the large model's parameters and FLOPs over its own; the curves keep one series per width" sh -c \
    "for c in compression speedup; do awk '/^# dense/ { b = 1; next } /^#/ { b = 0 } b && NF { n++; s += \$1; if (\$1 == 3) t++ } END { exit !(n == 2 && t == 1 && s == 4) }' '$W2/plots/accuracy_vs_'\$c.dat || exit 1; done && grep -q 'w2: net@w0.5 on syn' '$W2/plots/accuracy_vs_compression.gp' && grep -q \"title 'magnitude'\" '$W2/plots/accuracy_vs_compression.gp' && grep -q \"title 'dense (net@w0.25)'\" '$W2/plots/accuracy_vs_epochs_s0.9.gp' && grep -q \"title 'dense (net@w0.5)'\" '$W2/plots/accuracy_vs_epochs_s0.9.gp'"
# long series names (a long label, two models) must not narrow the plot: the
# key goes below it, and gnuplot's own plot area spans most of the canvas
L=$tmp/long
mkdir -p "$L"
LONG=a_method_label_long_enough_to_fill_a_key_column_by_itself
{ head -1 "$R/cells.csv"
  for m in net other_network; do
    echo "l,c0$m,$m,syn,dense,dense,0,1,ok,,0.8,0.3,300,300,1,600,600,1,1,1,,1,0,k2,,2,0,250,250,0,b"
    echo "l,c1$m,$m,syn,magnitude,$LONG,0.9,1,ok,,0.6,0.3,300,30,10,600,60,10,1,1,,1,1,k2,,1,1,250,25,0.9,b"
  done
} > "$L/cells.csv"
"$PB" plot "$L" >/dev/null 2>&1
check "long series names take the key's rows below the plot, not the plot's width" sh -c \
    "cd '$L/plots' && grep -q \"title '$LONG (net, syn)'\" accuracy_vs_compression.gp && gnuplot -e \"load 'accuracy_vs_compression.gp'; print (GPVAL_TERM_XMAX - GPVAL_TERM_XMIN) * GPVAL_TERM_SCALE / GPVAL_TERM_XSIZE\" 2>&1 | tail -1 | awk '{ exit !(\$1 > 0.8) }'"
check "a narrowed dense model's theoretical speedup is the full-width model's dense FLOPs over its own" sh -c \
    "awk '/^# dense/ { b = 1; next } /^#/ { b = 0 } b && NF { s = s \$1 \" \" } END { exit !(s == \"10 3.3333333 1 \") }' '$P/plots/accuracy_vs_speedup.dat' && grep -q 'narrowed model: full-width FLOPs' '$P/plots/accuracy_vs_speedup.gp'"

# Chart conventions: the dense baseline is a line with its ± std band, titles
# name the experiment, model and data set, the y range is fitted to the data,
# the epoch axis has whole-epoch tics, curves carry a spread band and the
# target line.
Q=$tmp/q
mkdir -p "$Q"
{ echo 'cell,label,model,dataset,method,sparsity,seed,status,test_acc,compression,nonzero,params,flops_eff,target,speedup'
  echo 'd1,dense,net,syn,dense,0,1,ok,0.9,1,1000,1000,2000,0.75,1'
  echo 'd2,dense,net,syn,dense,0,2,ok,0.8,1,1000,1000,2000,0.75,1'
  echo 'm1,magnitude,net,syn,magnitude,0.9,1,ok,0.6,10,100,1000,200,0.75,7'
  echo 'm2,magnitude,net,syn,magnitude,0.9,2,ok,0.7,10,100,1000,200,0.75,7'
} > "$Q/cells.csv"
{ echo 'cell,phase,step,wall_s,test_acc'
  for c in m1 m2; do for e in 1 2 3; do echo "$c,finetune,$e,$e,0.$((5 + e))"; done; done
} > "$Q/curves.csv"
"$PB" plot "$Q" >/dev/null 2>&1
check "the dense baseline is a band (mean ± std over seeds), not a point" sh -c \
    "grep -q '^# baseline band: dense' '$Q/plots/accuracy_vs_compression.dat' && ! grep -q '^# dense' '$Q/plots/accuracy_vs_compression.dat' && awk '/^# baseline band/ { b = 1; next } b && NF { n++; ok += (\$4 == 0.85 && \$2 < 0.78 && \$2 > 0.77 && \$3 > 0.92 && \$3 < 0.93) } END { exit !(n == 2 && ok == 2) }' '$Q/plots/accuracy_vs_compression.dat' && grep -q 'filledcurves' '$Q/plots/accuracy_vs_compression.gp' && grep -q \"title 'dense: 0.8500 ± 0.0707 (2 seeds)'\" '$Q/plots/accuracy_vs_compression.gp'"
echo accuracy_vs_compression > "$Q/plots.list"
"$PB" plot "$Q" >/dev/null 2>&1
check "asking for compression also charts the theoretical speedup" sh -c \
    "grep -q '^7 0.650000 0.070711 2 0.9 ' '$Q/plots/accuracy_vs_speedup.dat' && grep -q 'theoretical speedup' '$Q/plots/accuracy_vs_speedup.gp'"
check "chart titles name the experiment, the model and the data set" \
    grep -q "^set title 'q: net on syn: " "$Q/plots/accuracy_vs_compression.gp"
check "the y range is fitted to the means ± std" sh -c \
    "sed -n 's/^set yrange .\\(.*\\):\\(.*\\).\$/\\1 \\2/p' '$Q/plots/accuracy_vs_compression.gp' | awk '{ ok = (\$1 > 0.55 && \$1 < 0.579 && \$2 > 0.921 && \$2 < 0.95) } END { exit !ok }'"
check "epoch charts: whole-epoch tics, a spread band, the target line" sh -c \
    "grep -q '^set xtics 1\$' '$Q/plots/accuracy_vs_epochs_s0.9.gp' && grep -q 'filledcurves' '$Q/plots/accuracy_vs_epochs_s0.9.gp' && grep -q 'first 0.75 to graph 1, first 0.75 nohead' '$Q/plots/accuracy_vs_epochs_s0.9.gp' && grep -q '^2 0.700000 0.000000 2\$' '$Q/plots/accuracy_vs_epochs_s0.9.dat'"

# kill -9 mid-matrix, then resume: every cell exactly once
cat > "$tmp/long.lua" <<'LUA'
experiment "long" {
  models   = { model{ name = "tiny", dense(24), relu(), dense(10) } },
  datasets = { "synthetic" },
  methods  = { "dense", "magnitude", "random" },
  sparsity = { 0.3, 0.5, 0.7, 0.8, 0.9 },
  train    = { epochs = 2, batch = 64 },
  finetune = { epochs = 1, lr = 0.01 },
}
LUA
"$PB" run "$tmp/long.lua" --out "$tmp/r" --no-plot -q &
pid=$!
i=0
while [ "$(ls "$tmp/r/long/cells/" 2>/dev/null | grep -c '\.row$')" -lt 3 ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
kill -9 $pid 2>/dev/null
wait $pid 2>/dev/null
before=$(ls "$tmp/r/long/cells/" | grep -c '\.row$')
check "the runner was killed mid-matrix ($before of 11 cells recorded)" test "$before" -ge 3 -a "$before" -lt 11
check "the rerun completes the matrix" "$PB" run "$tmp/long.lua" --out "$tmp/r" --no-plot -q
check "every cell exactly once after kill -9 and rerun" sh -c \
    "test \$(tail -n +2 '$tmp/r/long/cells.csv' | wc -l) -eq 11 && test \$(tail -n +2 '$tmp/r/long/cells.csv' | cut -d, -f2 | sort -u | wc -l) -eq 11 && test \$(grep -c ',ok,' '$tmp/r/long/cells.csv') -eq 11"

# a crashing plugin fails only its own cell
mkdir -p "$tmp/plugins"
cc -shared -fPIC -I"$SRC/harness" -o "$tmp/plugins/crash.so" "$SRC/tests/crash_plugin.c" 2>"$tmp/cc.err"
cat > "$tmp/crash.lua" <<'LUA'
experiment "crash" {
  models   = { model{ name = "tiny", dense(24), relu(), dense(10) } },
  datasets = { "synthetic" },
  methods  = { "magnitude", "crash", "random" },
  sparsity = { 0.5 },
  train    = { epochs = 1, batch = 64 },
  finetune = { epochs = 1 },
}
LUA
"$PB" run "$tmp/crash.lua" --out "$tmp/r" --plugin-path "$tmp/plugins" --no-plot -j 2 >"$tmp/o" 2>"$tmp/e"
st=$?
check "a run with a crashed cell finishes with exit 1" test $st -eq 1
if [ -n "${PB_SANITIZERS:-}" ]; then
    # AddressSanitizer catches the SIGSEGV, reports it in the cell's log and exits 1
    check "the crashing cell is failed with the sanitizer's report, the others are ok" sh -c \
        "grep ',crash,' '$tmp/r/crash/cells.csv' | grep -q ',failed,.*worker exited with status 1 without a result' && grep -l 'AddressSanitizer: SEGV' '$tmp/r/crash/cells/'*.log >/dev/null && test \$(grep -c ',ok,' '$tmp/r/crash/cells.csv') -eq 2"
else
    check "the crashing cell is failed with the signal, the others are ok" sh -c \
        "grep ',crash,' '$tmp/r/crash/cells.csv' | grep -q ',failed,.*SIGSEGV' && test \$(grep -c ',ok,' '$tmp/r/crash/cells.csv') -eq 2"
fi

# a NaN loss fails its cell with the message
cat > "$tmp/nan.lua" <<'LUA'
experiment "nan" {
  models   = { model{ name = "tiny", dense(24), relu(), dense(10) } },
  datasets = { "synthetic" },
  methods  = { "dense" },
  train    = { epochs = 1, batch = 64, lr = 100 },
}
LUA
"$PB" run "$tmp/nan.lua" --out "$tmp/r" --no-plot -q 2>/dev/null
check "a NaN loss fails the cell with its reason" sh -c "grep -qi ',failed,.*nan' '$tmp/r/nan/cells.csv'"

# every chart script of the runs above is one gnuplot draws without an error
# (measured_speedup once asked for a plot style gnuplot does not have)
if command -v gnuplot >/dev/null 2>&1; then
    check "every .gp written here draws: a non-empty .png beside it, nothing in gnuplot.log" sh -c '
        for d in "$1"/r/small/plots "$1"/p/plots "$1"/q/plots; do
            test ! -s "$d/gnuplot.log" || { cat "$d/gnuplot.log"; exit 1; }
            for g in "$d"/*.gp; do test -s "${g%.gp}.png" || { echo "no chart for $g"; exit 1; }; done
        done
        test -s "$1/r/small/plots/measured_speedup.png"' sh "$tmp"
else
    echo "ok $((n = n + 1)) # SKIP gnuplot is not installed"
fi
exit $failed
