#!/bin/sh
# t_signal: a run stopped by SIGINT (a terminal's ^C reaches the whole
# process group) or SIGTERM (the runner alone) exits 128+signal, keeps the
# finished cells' files whole, records nothing for the cells it stopped,
# leaves no temporary file and no worker, and the next run resumes. A second
# run on a directory in use is refused and changes nothing.
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
skip_rest() { while [ $n -lt 25 ]; do n=$((n + 1)); echo "ok $n - # SKIP $1"; done; exit 0; }
export OPENBLAS_NUM_THREADS=1
unset PB_TEST_STUCK
echo 1..25
command -v setsid >/dev/null 2>&1 || skip_rest "setsid not installed"

mkdir "$tmp/p"
cc -std=c11 -shared -fPIC -I"$SRC/harness" -o "$tmp/p/stuck.so" "$SRC/tests/stuck_plugin.c" || skip_rest "cc failed"
cat > "$tmp/s.lua" <<'LUA'
experiment "s" {
  models   = { model{ name = "tiny", dense(16), relu(), dense(10) } },
  datasets = { "synthetic" },
  methods  = { "dense", "magnitude", "stuck" },
  sparsity = { 0.5 },
  train    = { epochs = 1, batch = 64 },
}
LUA

# wait_rows DIR K: waits (at most 60 s) until K row files exist
wait_rows() {
    i=0
    while [ "$(ls "$1"/cells/*.row 2>/dev/null | wc -l)" -lt "$2" ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
    sleep 0.5
}
notmp() { ! ls -a "$1" "$1/cells" "$1/dense" | grep -q '\.tmp'; }
noworker() { ! pgrep -f "[p]runebench run $tmp/s.lua --out $1" >/dev/null; }

# stopped SIG HOW DIR: starts a run in its own process group, waits for the
# two cells that can finish, sends SIG to the group or the runner, waits
for sig in INT TERM; do
    D=$tmp/$sig
    setsid "$PB" run "$tmp/s.lua" --out "$D" --plugin-path "$tmp/p" --no-plot -j 2 >"$tmp/out" 2>"$tmp/err" &
    pid=$!
    wait_rows "$D/s" 2
    mkdir -p "$tmp/keep-$sig" && cp "$D"/s/cells/*.row "$tmp/keep-$sig/"
    if [ $sig = INT ]; then
        # the second run first, while the first holds the directory
        timeout 60 "$PB" run "$tmp/s.lua" --out "$D" --plugin-path "$tmp/p" --no-plot >"$tmp/out2" 2>"$tmp/err2"; rc2=$?
        check "a second run on the same directory is refused (exit $rc2) and names it" sh -c \
            "test $rc2 -eq 2 && grep -q \"another prunebench run (pid $pid on .*) is using $D/s: wait for it to finish\" '$tmp/err2'"
        timeout 60 "$PB" run "$tmp/s.lua" --out "$D" --plugin-path "$tmp/p" --no-plot --fresh >"$tmp/out2" 2>"$tmp/err2"; rc2=$?
        check "a second run with --fresh is refused too (exit $rc2) before it deletes anything" sh -c \
            "test $rc2 -eq 2 && grep -q 'another prunebench run (pid [0-9]* on .*) is using' '$tmp/err2' && test -s '$D/s/cells.csv' && ls '$D'/s/dense/*.pb"
        timeout 60 "$PB" run "$tmp/s.lua" --out "$D" --plugin-path "$tmp/p" --merge-only >"$tmp/out2" 2>"$tmp/err2"; rc2=$?
        check "so is --merge-only (exit $rc2)" sh -c "test $rc2 -eq 2 && grep -q \"an unsharded prunebench run (pid $pid on .*) is using\" '$tmp/err2'"
        check "the refused runs changed nothing: no row, no metadata block of their own" sh -c \
            "test \$(ls '$D'/s/cells/*.row | wc -l) -eq 2 && test \$(grep -c '^run [0-9]*:' '$D/s/metadata.txt') -eq 1"
        env kill -s INT -- -$pid   # as a terminal's ^C: the runner and its workers
        want=130
    else
        kill -TERM $pid      # the runner alone
        want=143
    fi
    i=0; while kill -0 $pid 2>/dev/null && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
    env kill -s KILL -- -$pid 2>/dev/null
    wait $pid; rc=$?
    check "SIG$sig: the runner exits $want (got $rc)" test $rc -eq $want
    check "SIG$sig: it says what is kept and how to resume" grep -q "stopped by SIG$sig: 2 cells finished are kept in .*, 1 running cells were stopped and not recorded; run the same command to resume" "$tmp/err"
    check "SIG$sig: the finished cells' rows are whole and unchanged" sh -c \
        "for f in '$tmp/keep-$sig'/*.row; do cmp -s \"\$f\" '$D/s/cells/'\$(basename \"\$f\") || exit 1; done"
    check "SIG$sig: the stopped cell is not recorded as failed" sh -c "! grep -l ',stuck,' '$D'/s/cells/*.row"
    check "SIG$sig: cells.csv holds the 2 finished cells" sh -c "test \$(tail -n +2 '$D/s/cells.csv' | grep -c ',ok,') -eq 2"
    check "SIG$sig: no temporary file is left" notmp "$D/s"
    check "SIG$sig: no worker is left" noworker "$D"
    PB_TEST_STUCK=none timeout 120 "$PB" run "$tmp/s.lua" --out "$D" --plugin-path "$tmp/p" --no-plot >"$tmp/out" 2>"$tmp/err"; rc=$?
    check "SIG$sig: the next run resumes and finishes (exit $rc)" sh -c \
        "test $rc -eq 0 && grep -q '2 of 3 cells already finished' '$tmp/err' && test \$(tail -n +2 '$D/s/cells.csv' | grep -c ',ok,') -eq 3"
done
# SIGKILL cannot be caught: the runner and its workers die where they are,
# perhaps mid-write. What they leave (temporary files of dead processes) is
# removed by the next run, which resumes from the finished cells.
D=$tmp/KILL
setsid "$PB" run "$tmp/s.lua" --out "$D" --plugin-path "$tmp/p" --no-plot -j 2 >"$tmp/out" 2>"$tmp/err" &
pid=$!
wait_rows "$D/s" 2
mkdir -p "$tmp/keep-KILL" && cp "$D"/s/cells/*.row "$tmp/keep-KILL/"
env kill -s KILL -- -$pid
wait $pid 2>/dev/null
# as a process killed mid-write leaves them (pid 2^22 + 1 is above any pid_max default)
h=$(basename "$(ls "$D"/s/cells/*.row | head -1)" .row)
k=$(basename "$(ls "$D"/s/dense/*.pb | head -1)" .pb)
: >"$D/s/cells/$h.row.tmp.4194305"; : >"$D/s/dense/$k.pb.tmp.4194305"; : >"$D/s/cells.csv.tmp.4194305"
check "SIGKILL: the finished cells' rows are whole and unchanged" sh -c \
    "for f in '$tmp/keep-KILL'/*.row; do cmp -s \"\$f\" '$D/s/cells/'\$(basename \"\$f\") || exit 1; done"
PB_TEST_STUCK=none timeout 120 "$PB" run "$tmp/s.lua" --out "$D" --plugin-path "$tmp/p" --no-plot >"$tmp/out" 2>"$tmp/err"; rc=$?
check "SIGKILL: the next run resumes and finishes (exit $rc)" sh -c \
    "test $rc -eq 0 && grep -q '2 of 3 cells already finished' '$tmp/err' && test \$(tail -n +2 '$D/s/cells.csv' | grep -c ',ok,') -eq 3"
check "SIGKILL: the next run removes the temporary files the killed processes left" notmp "$D/s"
check "runs after the refused one each add their block to metadata" sh -c "test \$(grep -c '^run [0-9]*:' '$tmp/INT/s/metadata.txt') -eq 2"
check "run --help documents the exit statuses of a stopped run" sh -c "'$PB' run --help | grep -q '130 or 143'"
exit $failed
