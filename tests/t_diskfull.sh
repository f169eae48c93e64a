#!/bin/sh
# t_diskfull: results on a full file system (a 200 KB tmpfs; needs root, as
# in CI). A disk that fills up mid-run fails the run with a message naming the
# file and "No space left on device", keeps the cells finished before it
# byte-identical, leaves no temporary file, and a rerun after space is freed
# finishes; a disk full before the run is refused before anything trains; a
# cached model that does not fit is a warning, and the cells are ok.
PB=${top_builddir:-.}/prunebench
SRC=${top_srcdir:-.}
tmp=$(mktemp -d)
mnt=
cleanup() { [ -n "$mnt" ] && umount "$mnt" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
n=0 failed=0
check() { # check DESCRIPTION COMMAND...: passes when the command succeeds
    desc=$1; shift
    n=$((n + 1))
    if "$@" >"$tmp/check.out" 2>&1; then echo "ok $n - $desc"; else
        echo "not ok $n - $desc"; sed 's/^/# /' "$tmp/check.out" | head -20; failed=1; fi
}
TOTAL=12
skip_all() { while [ $n -lt $TOTAL ]; do n=$((n + 1)); echo "ok $n - # SKIP $1"; done; exit 0; }
export OPENBLAS_NUM_THREADS=1
unset PB_TEST_STUCK
echo 1..$TOTAL
[ "$(id -u)" -eq 0 ] || skip_all "mounting a small tmpfs needs root"
mkdir "$tmp/small"
mount -t tmpfs -o size=200k tmpfs "$tmp/small" 2>/dev/null || skip_all "cannot mount a tmpfs here"
mnt=$tmp/small
mkdir "$tmp/p"
cc -std=c11 -shared -fPIC -I"$SRC/harness" -o "$tmp/p/stuck.so" "$SRC/tests/stuck_plugin.c" || skip_all "cc failed"

# dense first, then a cell whose method fills the disk, then one more
cat > "$tmp/f.lua" <<'LUA'
experiment "f" {
  models   = { model{ name = "tiny", dense(8), relu(), dense(10) } },
  datasets = { "synthetic" },
  methods  = { "dense", "stuck", "magnitude" },
  sparsity = { 0.5 },
  train    = { epochs = 1, batch = 64 },
}
LUA
R=$mnt/r/f
run() { timeout 120 "$PB" run "$tmp/f.lua" --out "$mnt/r" --plugin-path "$tmp/p" --no-plot "$@" >"$tmp/out" 2>"$tmp/err"; }
notmp() { ! find "$1" -name '*.tmp*' | grep -q .; }

PB_TEST_STUCK=none run
dense_row=$(grep -l ',dense,' "$R"/cells/*.row)
cp "$dense_row" "$tmp/dense.row"
# the other two cells go: they run again, and the disk fills during the first
for f in "$R"/cells/*.row; do [ "$f" = "$dense_row" ] || rm "${f%.row}".*; done

PB_TEST_STUCK=fill:$mnt/filler run; rc=$?
sed 's/^/# /' "$tmp/err"
check "a disk that fills up mid-run fails the run (exit $rc)" test $rc -eq 1
check "the failure says 'No space left on device' and names a file of the results" sh -c \
    "cat '$tmp/err' '$R'/cells/*.row 2>/dev/null | grep -q \"$R/[a-z./0-9]*: No space left on device\""
check "the cell finished before is byte-identical" cmp -s "$tmp/dense.row" "$dense_row"
check "no temporary file is left on the full disk" notmp "$mnt"
check "no cell is recorded ok that could not be written whole" sh -c \
    "! grep -l ',ok,' \$(ls '$R'/cells/*.row | grep -v '$(basename "$dense_row")') 2>/dev/null | grep -q ."

run; rc=$?
check "a run on the still-full disk is refused before anything trains (exit $rc), naming the file" sh -c \
    "test $rc -eq 1 && grep -q 'No space left on device' '$tmp/err' && ! grep -q 'test_acc=' '$tmp/err'"
check "and keeps the finished cell and leaves no temporary file" sh -c \
    "cmp -s '$tmp/dense.row' '$dense_row' && ! find '$mnt' -name '*.tmp*' | grep -q ."

rm -f "$mnt/filler"
PB_TEST_STUCK=none run --retry-failed; rc=$?
check "with the space freed, --retry-failed finishes the run (exit $rc)" sh -c \
    "test $rc -eq 0 && test \$(tail -n +2 '$R/cells.csv' | grep -c ',ok,') -eq 3"
check "the cell finished before the disk filled was not run again" cmp -s "$tmp/dense.row" "$dense_row"

# a cached model larger than the file system: a warning, and the cells are ok
cat > "$tmp/big.lua" <<'LUA'
experiment "big" {
  models   = { model{ name = "wide", dense(100), relu(), dense(10) } },
  datasets = { "synthetic" },
  methods  = { "dense", "magnitude" },
  sparsity = { 0.5 },
  train    = { epochs = 1, batch = 64 },
}
LUA
rm -rf "$mnt/r"
timeout 120 "$PB" run "$tmp/big.lua" --out "$mnt/r" --no-plot >"$tmp/out" 2>"$tmp/err"; rc=$?
check "a cached model that does not fit: both cells ok (exit $rc)" sh -c \
    "test $rc -eq 0 && test \$(tail -n +2 '$mnt/r/big/cells.csv' | grep -c ',ok,') -eq 2"
check "each cell's log warns that the model is not cached, saying why" sh -c \
    "test \$(grep -l 'not cached (.*No space left on device' '$mnt'/r/big/cells/*.log | wc -l) -eq 2"
check "no temporary file or partial model is left" sh -c \
    "notmp() { ! find \"\$1\" -name '*.tmp*' | grep -q .; }; notmp '$mnt' && ! ls '$mnt'/r/big/dense/*.pb 2>/dev/null"
exit $failed
