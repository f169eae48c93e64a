#!/bin/sh
# Every number of an experiment script or the command line is range-checked
# before use (pb_check.c): each payload below is refused with exit 2 and a
# message naming the script's line and the valid range, and nothing trains.
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
echo 1..38

# script NAME LINES...: an experiment "e" on the synthetic set whose lines 3..
# are the given ones (line 1 is the statement, line 2 the data set)
script() {
    name=$1; shift
    { echo 'experiment "e" {'; echo '  datasets = { "synthetic" },'
      for l in "$@"; do echo "  $l"; done; echo '}'; } > "$tmp/$name.lua"
}
# refused NAME PATTERN: `run` (not a dry run) exits 2, stderr matches the
# pattern, and no results directory was made: nothing trained
refused() {
    rm -rf "$tmp/r"
    "$PB" run "$tmp/$1.lua" --out "$tmp/r" --no-plot -q 2>"$tmp/e" >"$tmp/o"
    st=$?
    cat "$tmp/e"
    test $st -eq 2 && grep -q -- "$2" "$tmp/e" && test ! -e "$tmp/r/e"
}

# the payloads of the issue, each on line 3
script epochs 'train = { epochs = 1e10 },'
check "train.epochs = 1e10 names line 3 and [0, 100000], trains nothing" refused epochs \
    'epochs.lua:3: .*train.epochs: 10000000000 is not an integer in \[0, 100000\]'
script nan 'models = { { "lenet300", width = 0/0 } },'
check "a NaN width names line 3 and [0.001, 1000]" refused nan \
    'nan.lua:3: .*width: nan is not a number in \[0.001, 1000\]'
script tiny 'models = { { "lenet300", width = 1e-300 } },'
check "width = 1e-300 is refused like the command line's --width" refused tiny \
    'tiny.lua:3: .*width: 1e-300 is not a number in \[0.001, 1000\]'
script lr 'train = { lr = math.huge },'
check "lr = math.huge names line 3 and [0, 100]" refused lr 'lr.lua:3: .*train.lr: inf is not a number in \[0, 100\]'
script batch 'train = { batch = 2^31 },'
check "batch = 2^31 reports the real limit, [1, 65536]" refused batch \
    'batch.lua:3: .*train.batch: 2147483648 is not an integer in \[1, 65536\]'
script pad 'models = { model{ conv(4, 3, {pad = 1073741824}), relu(), flatten(), dense(10) } },'
check "conv pad = 2^30 names line 3 and [0, 256]" refused pad \
    'pad.lua:3: conv pad: 1073741824 is not an integer in \[0, 256\]'

# the line is the key's own, not the statement's
script later 'train = { epochs = 2 },' 'methods = { "dense" },' 'finetune = {' '  lr = 0.01,' '  epochs = -1,' '},'
check "finetune.epochs on line 7 is reported at line 7, not at train's epochs" refused later \
    'later.lua:7: .*finetune.epochs: -1 is not an integer in \[0, 100000\]'
script fn 'train = { epochs = function(cell) return 2^40 end },'
check "a recipe function's result is checked per cell" refused fn 'fn.lua:.*train.epochs: 1099511627776 is not an integer in \[0, 100000\]'
script mtrain 'methods = { "dense", { "magnitude", finetune = { epochs = 0.5 } } },'
check "a method's recipe value is checked" refused mtrain 'mtrain.lua:3: .*methods\[2\].finetune.epochs: 0.5 is not an integer'
script stage 'methods = { "magnitude" },' 'stages = { "train", { "finetune", permute = -3 }, "prune" },'
check "a stage's permute seed is checked" refused stage 'stage.lua:4: .*permute: -3 is not an integer in \[0, '
script stagerec 'methods = { "magnitude" },' 'stages = { "train", "prune", { "finetune", lr = 0/0 } },'
check "a stage's recipe value is checked" refused stagerec 'stagerec.lua:4: .*lr: nan is not a number in \[0, 100\]'

# the other numbers of the language
script hidden 'models = { { "mlp", hidden = { 64, 0 } } },'
check "hidden = {64, 0}: hidden[2] and [1, 1048576]" refused hidden 'hidden.lua:3: .*hidden\[2\]: 0 is not an integer in \[1, 1048576\]'
script hempty 'models = { { "mlp", hidden = {} } },'
check "an empty hidden list is refused (it would build no hidden layer)" refused hempty 'hempty.lua:3: .*hidden must be a non-empty list'
script dense 'models = { model{ dense(2^40), relu(), dense(10) } },'
check "dense(2^40) is refused at its line" refused dense 'dense.lua:3: dense(out): 1099511627776 is not an integer in \[1, 1048576\]'
script drop 'models = { model{ dense(8), dropout(1), dense(10) } },'
check "dropout(1) is refused: [0, 1)" refused drop 'drop.lua:3: dropout(p): 1 is not a number in \[0, 1)'
script seeds 'seeds = { 1, -2 },'
check "a negative seed is refused" refused seeds 'seeds.lua:3: .*seeds\[2\]: -2 is not an integer in \[0, 9007199254740992\]'
script sp 'methods = { "magnitude" },' 'sparsity = { 0.5, 0/0 },'
check "a NaN sparsity is refused with [0, 1)" refused sp 'sp.lua:4: .*sparsity\[2\]: nan is not a number in \[0, 1)'
script subset 'models = { "lenet300" },' 'datasets = { { "synthetic", subset = 2.5 } },'
check "subset = 2.5 is refused" refused subset 'subset.lua:4: .*subset: 2.5 is not an integer in \[0, 1073741824\]'
script target 'target = math.huge,'
check "target = math.huge is refused with (0, 1]" refused target 'target.lua:3: .*target: inf is not a number in (0, 1\]'
script gpt 'models = { { "gpt", dim = 1e9 } },'
check "a gpt option is range-checked" refused gpt 'gpt.lua:3: .*dim: 1000000000 is not an integer in \[1, 65536\]'
script budget 'data = { "full" },' 'budget = { steps = 1e300 },'
check "a budget of 1e300 steps is refused" refused budget 'budget.lua:4: .*budget.steps: 1e+300 is not an integer in \[1, '

# the C reader checks again when a prelude lets a number through
mkdir "$tmp/lua"
sed 's/^  return pb.check_number(range, v)$/  if type(v) == "number" then return v end; return pb.check_number(range, v)/' \
    "$SRC/lua/prelude.lua" > "$tmp/lua/prelude.lua"
check "the test's prelude really skips the prelude's checks" sh -c "! cmp -s '$SRC/lua/prelude.lua' '$tmp/lua/prelude.lua'"
check "behind a permissive prelude, the C reader still refuses epochs = 1e10" sh -c \
    "PRUNEBENCH_LUADIR='$tmp/lua' '$PB' run '$tmp/epochs.lua' --out '$tmp/r' -q 2>'$tmp/e'; test \$? -eq 2 && grep -q 'train.epochs: 10000000000 is not an integer in \[0, 100000\]' '$tmp/e' && test ! -e '$tmp/r/e'"
check "behind a permissive prelude, the conv binding refuses pad = 2^30" sh -c \
    "PRUNEBENCH_LUADIR='$tmp/lua' '$PB' run '$tmp/pad.lua' --out '$tmp/r' -q 2>'$tmp/e'; test \$? -eq 2 && grep -q 'conv pad: 1073741824 is not an integer in \[0, 256\]' '$tmp/e'"

# the command line, through the same ranges
cli() { # cli PATTERN ARGS...: exit 2, the pattern on stderr, no training
    pat=$1; shift
    "$PB" "$@" >"$tmp/o" 2>"$tmp/e"
    st=$?
    cat "$tmp/e"
    test $st -eq 2 && grep -q -- "$pat" "$tmp/e" && ! grep -q 'result:' "$tmp/o"
}
T="train --model mlp --dataset synthetic -q"
check "--hidden , is refused (it built an MLP with no hidden layer)" cli "--hidden: ',' is not a list of widths" $T --hidden ,
check "--hidden 300, is refused" cli "--hidden: '300,' is not a list" $T --hidden 300,
check "--hidden 300,0 names the range" cli "--hidden: '0' is not an integer in \[1, 1048576\]" $T --hidden 300,0
check "--epochs 1e10 is refused with the range" cli "--epochs: '1e10' is not an integer in \[0, 100000\]" $T --epochs 1e10
check "--width nan is refused" cli "--width: 'nan' is not a number in \[0.001, 1000\]" $T --width nan
check "--lr inf is refused" cli "--lr: 'inf' is not a number in \[0, 100\]" $T --lr inf
check "--batch 2147483648 names [1, 65536]" cli "--batch: '2147483648' is not an integer in \[1, 65536\]" $T --batch 2147483648
check "--seed 2^64 is refused, not wrapped" cli "--seed: '18446744073709551616' is not an integer" $T --seed 18446744073709551616
check "run -j 4294967297 is refused, not wrapped to 1" cli "-j: '4294967297' is not an integer in \[1, 64\]" \
    run "$tmp/epochs.lua" -j 4294967297
check "prune --finetune-epochs 4294967297 is refused, not wrapped to 1" cli \
    "--finetune-epochs: '4294967297' is not an integer in \[0, 100000\]" prune --model mlp --finetune-epochs 4294967297
check "prune --stages calibrate=4294967297 is refused, not wrapped to 1" cli \
    "calibrate=4294967297: '4294967297' is not an integer in \[0, 1073741824\]" prune --model mlp --stages train,calibrate=4294967297,prune
# a key on a continuation line of its table; and with io gone from the Lua
# state (a sandbox), the line is still found: C keeps the script's text
printf 'experiment "e" {\n  datasets = { "synthetic" },\n\n  train = { epochs = 2,\n    batch = 0 },\n}\n' > "$tmp/deep.lua"
check "the line of a key on a continuation line is found (line 5)" refused deep 'deep.lua:5: .*train.batch: 0 is not an integer in \[1, 65536\]'
mkdir "$tmp/noio"
{ echo 'io = nil'; cat "$SRC/lua/prelude.lua"; } > "$tmp/noio/prelude.lua"
check "without io in the Lua state the key's line is still found" sh -c \
    "PRUNEBENCH_LUADIR='$tmp/noio' '$PB' run '$tmp/deep.lua' --out '$tmp/r' -q 2>'$tmp/e'; test \$? -eq 2 && grep -q 'deep.lua:5: .*train.batch: 0 is not' '$tmp/e'"
check "--hidden 64,32 still trains" sh -c "'$PB' $T --hidden 64,32 --epochs 1 | grep -q 'result: test_acc='"
exit $failed
