#!/bin/sh
# The command line: help, usage errors (exit 2), train/eval round trip, refusal of bad checkpoints.
PB=${top_builddir:-.}/prunebench
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n=0 failed=0
check() { # check DESCRIPTION COMMAND...: passes when the command succeeds
    desc=$1; shift
    n=$((n + 1))
    if "$@" >/dev/null 2>&1; then echo "ok $n - $desc"; else echo "not ok $n - $desc"; failed=1; fi
}
status_is() { # status_is CODE COMMAND...
    want=$1; shift
    "$@" >"$tmp/out" 2>"$tmp/err"; test $? -eq "$want"
}
echo 1..15
check "prunebench --help exits 0 and lists train" sh -c "'$PB' --help | grep -q train"
check "train --help lists --model" sh -c "'$PB' train --help | grep -q -- --model"
check "no command is a usage error (exit 2)" status_is 2 "$PB"
check "unknown command: exit 2" status_is 2 "$PB" frobnicate
check "unknown model: exit 2, valid names listed" sh -c "'$PB' train --model nosuch 2>&1 >/dev/null | grep -q 'valid: lenet300'; test \$? -eq 0 && ! '$PB' train --model nosuch 2>/dev/null"
check "unknown dataset: valid names listed" sh -c "'$PB' train --model lenet300 --dataset nosuch 2>&1 | grep -q 'fashion-mnist'"
check "bad number is refused with exit 2" status_is 2 "$PB" train --model lenet300 --lr abc
check "train on synthetic data prints a result line and saves" sh -c \
    "'$PB' train --model lenet300 --width 0.25 --dataset synthetic --epochs 2 --batch 32 --save '$tmp/m.pb' -q > '$tmp/train.out' && grep -q '^result: test_acc=' '$tmp/train.out'"
check "eval of the checkpoint gives the same accuracy" sh -c \
    "'$PB' eval --load '$tmp/m.pb' --dataset synthetic > '$tmp/eval.out' && test \"\$(sed 's/.*test_acc=\([0-9.]*\).*/\1/' '$tmp/train.out')\" = \"\$(sed 's/.*test_acc=\([0-9.]*\).*/\1/' '$tmp/eval.out')\""
check "corrupt checkpoint refused (exit 1, names the file)" sh -c \
    "cp '$tmp/m.pb' '$tmp/bad.pb' && printf 'XXXX' | dd of='$tmp/bad.pb' bs=1 seek=400 conv=notrunc 2>/dev/null && ! '$PB' eval --load '$tmp/bad.pb' --dataset synthetic 2>'$tmp/e' && grep -q 'bad.pb' '$tmp/e'"
check "missing data directory names the path" sh -c \
    "! '$PB' train --model lenet300 --dataset mnist --data-dir '$tmp/nodata' 2>'$tmp/e' && grep -q nodata '$tmp/e'"
check "eval without --load is a usage error" status_is 2 "$PB" eval
cat > "$tmp/two.lua" <<'LUA'
for _, name in ipairs { "first", "second" } do
  experiment(name) {
    models = { model{ name = "tiny", dense(8), relu(), dense(10) } },
    datasets = { "synthetic" }, methods = { "dense" }, seeds = { 1 },
    train = { epochs = 1, batch = 32 },
  }
end
LUA
check "run -e NAME runs only that experiment" sh -c \
    "'$PB' run '$tmp/two.lua' -e second --out '$tmp/two' -q --no-plot && test -s '$tmp/two/second/cells.csv' && ! test -e '$tmp/two/first'"
check "run -e with a name the script does not declare: exit 2, the declared ones listed" sh -c \
    "'$PB' run '$tmp/two.lua' -e third --out '$tmp/two' 2>'$tmp/e'; test \$? -eq 2 && grep -q \"no experiment 'third'.*first second\" '$tmp/e'"
check "a bad PB_KERNELS is refused with exit 2, naming the valid modes" sh -c \
    "PB_KERNELS=fast '$PB' train --help 2>'$tmp/e' >/dev/null; test \$? -eq 2 && grep -q 'PB_KERNELS.*valid: auto, dense, sparse, csr' '$tmp/e'"
exit $failed
