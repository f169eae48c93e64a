#!/bin/sh
# t_timeout: a cell's time limit (train.timeout in a script, run --timeout on
# the command line). A method stuck in a loop fails its cell with "timeout
# after N s" while the other cells go on; --retry-failed runs it again.
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
unset PB_TEST_STUCK
echo 1..13

mkdir "$tmp/p"
check "the stuck test plugin compiles" \
    cc -std=c11 -shared -fPIC -I"$SRC/harness" -o "$tmp/p/stuck.so" "$SRC/tests/stuck_plugin.c"

cat > "$tmp/t.lua" <<'LUA'
experiment "t" {
  models   = { model{ name = "tiny", dense(16), relu(), dense(10) } },
  datasets = { "synthetic" },
  methods  = { "dense", "stuck", "magnitude" },
  sparsity = { 0.5 },
  train    = { epochs = 1, batch = 64, timeout = 4 },
}
LUA
R=$tmp/r/t
run() { timeout 120 "$PB" run "$tmp/t.lua" --out "$tmp/r" --plugin-path "$tmp/p" --no-plot "$@" >"$tmp/out" 2>"$tmp/err"; }
row() { grep -h ",$1," "$R"/cells/*.row; }

t0=$(date +%s)
run -j 2; rc=$?
el=$(( $(date +%s) - t0 ))
check "a run with a stuck cell ends (exit 1, in $el s)" sh -c "test $rc -eq 1 && test $el -lt 60"
check "the stuck cell failed with 'timeout after 4 s'" sh -c "grep -h ',stuck,' '$R'/cells/*.row | grep -q ',failed,\"\\?timeout after 4 s'"
check "the other cells finished ok" sh -c "test \$(cat '$R'/cells/*.row | grep -c ',ok,') -eq 2"
check "the runner's log names the timeout" grep -q 'stuck .*FAILED: timeout after 4 s' "$tmp/err"
check "no temporary file is left" sh -c "! ls -a '$R' '$R/cells' '$R/dense' | grep -q '\\.tmp'"
check "no worker is left running" sh -c "! pgrep -f '[p]runebench run $tmp/t.lua' >/dev/null"

run --retry-failed --timeout 1; rc=$?
check "--retry-failed runs the timed-out cell again; --timeout overrides the script (exit $rc)" sh -c \
    "test $rc -eq 1 && grep -q '1 run now, 2 from earlier runs' '$tmp/out' && grep -h ',stuck,' '$R'/cells/*.row | grep -q 'timeout after 1 s'"

PB_TEST_STUCK=child:$tmp/child.pid run --retry-failed --timeout 1 -e t; rc=$?
child=$(cat "$tmp/child.pid" 2>/dev/null)
# (gone, or a zombie where process 1 reaps no orphans, as in some containers)
check "stopping a timed-out cell stops the processes its method started too" sh -c \
    "test -n '$child' && sleep 0.5 && st=\$(ps -o stat= -p '$child'); case \"\$st\" in ''|Z*) true;; *) false;; esac"
PB_TEST_STUCK=none run --retry-failed; rc=$?
check "once the method returns, --retry-failed finishes the cell (exit $rc)" sh -c \
    "test $rc -eq 0 && test \$(tail -n +2 '$R/cells.csv' | grep -c ',ok,') -eq 3"

sed 's/timeout = 4/timeout = 4 }, finetune = { timeout = 2/' "$tmp/t.lua" > "$tmp/ft.lua"
check "a timeout in finetune is refused: the limit is the whole cell's (exit 2)" sh -c \
    "'$PB' run '$tmp/ft.lua' --out '$tmp/r2' --plugin-path '$tmp/p' --dry-run 2>'$tmp/e'; test \$? -eq 2 && grep -q 'finetune.timeout: the time limit is the whole cell' '$tmp/e'"
check "--timeout takes seconds >= 0 only (exit 2)" sh -c \
    "'$PB' run '$tmp/t.lua' --timeout -3 --dry-run 2>'$tmp/e'; test \$? -eq 2 && grep -q -- '--timeout' '$tmp/e'"
sed 's/timeout = 4/timeout = 9/' "$tmp/t.lua" > "$tmp/t9.lua"
check "the limit is not part of the cell hash: changing it reruns nothing" sh -c \
    "'$PB' run '$tmp/t9.lua' --out '$tmp/r' --plugin-path '$tmp/p' --no-plot 2>&1 | grep -q '0 run now, 3 from earlier runs'"
exit $failed
