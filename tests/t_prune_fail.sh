#!/bin/sh
# t_prune_fail: `prune` and `train` do not report failures as success — a
# method that writes NaN into the weights, one that calls exit(0), and a
# training of 0 epochs (whose figures are measured, not -1).
PB="${top_builddir:-.}/prunebench"
SRC="${top_srcdir:-.}"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
n=0
fails=0
ok() { n=$((n + 1)); if [ "$1" -eq 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fails=$((fails + 1)); fi; }
echo "1..4"
mkdir "$T/p"
cc -std=c11 -shared -fPIC -I"$SRC/harness" -o "$T/p/misbehave.so" "$SRC/tests/misbehave_plugin.c" -lm 2>"$T/cc.err"
ok $? "the misbehaving plugin compiles $(head -c 200 "$T/cc.err")"
"$PB" prune --method misbehave --plugin-path "$T/p" --sparsity 0.5 --model lenet300 --width 0.25 \
    --dataset synthetic --epochs 1 -q >"$T/out" 2>"$T/err"; rc=$?
[ $rc -eq 1 ] && grep -q "NaN or infinite" "$T/err"
ok $? "NaN weights fail prune with exit 1 (exit $rc: $(tail -1 "$T/err"))"
"$PB" prune --method misbehave --plugin-path "$T/p" --param what=exit --sparsity 0.5 --model lenet300 \
    --width 0.25 --dataset synthetic --epochs 1 -q >"$T/out" 2>"$T/err"; rc=$?
[ $rc -eq 1 ] && grep -q "exited before the run finished" "$T/err" && ! grep -q "^result:" "$T/out"
ok $? "a method that calls exit(0) fails prune with exit 1 (exit $rc: $(tail -1 "$T/err"))"
"$PB" train --model lenet300 --width 0.25 --dataset synthetic --epochs 0 -q >"$T/out" 2>"$T/err"
grep -q "^result: test_acc=0\.[0-9]* test_loss=[0-9]" "$T/out" && ! grep -q "test_acc=-1" "$T/out"
ok $? "train --epochs 0 measures the initialization ($(head -c 60 "$T/out"))"
exit $((fails > 0))
