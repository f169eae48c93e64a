#!/bin/sh
# t_save: what `--save` (and every file the results store replaces) may
# replace. A regular file or a new path is written atomically, a symbolic
# link is written through (the link stays), and a FIFO, a device node, a
# directory or a link to one of those is refused before anything trains,
# with a message naming the file and no temporary file left; write errors
# (a full file system) are reported and leave the old file whole.
PB=${top_builddir:-.}/prunebench
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
skip() { n=$((n + 1)); echo "ok $n - # SKIP $1"; }
export OPENBLAS_NUM_THREADS=1
echo 1..16

TRAIN="train --model mlp --hidden 10 --dataset synthetic --epochs 1 -q"
notmp() { ! ls -a "$1" | grep -q '\.tmp'; }

mkfifo "$tmp/fifo"
check "a FIFO is refused (exit 2, the message names it), not replaced" sh -c \
    "'$PB' $TRAIN --save '$tmp/fifo' 2>'$tmp/err' >/dev/null; rc=\$?;
     test \$rc -eq 2 && grep -q 'fifo: it is a FIFO' '$tmp/err' && test -p '$tmp/fifo'"
check "no temporary file is left beside the FIFO" notmp "$tmp"

ln -s "$tmp/fifo" "$tmp/to_fifo"
check "a symbolic link to a FIFO is refused; link and FIFO stay" sh -c \
    "'$PB' $TRAIN --save '$tmp/to_fifo' 2>'$tmp/err' >/dev/null; test \$? -eq 2 &&
     grep -q 'to_fifo: it is a symbolic link to .*fifo, which is a FIFO' '$tmp/err' && test -L '$tmp/to_fifo' && test -p '$tmp/fifo'"

mkdir "$tmp/dir"
check "a directory is refused and left alone" sh -c \
    "'$PB' $TRAIN --save '$tmp/dir' 2>'$tmp/err' >/dev/null; test \$? -eq 2 && grep -q 'dir: it is a directory' '$tmp/err' && test -d '$tmp/dir'"

# As root a regression (or an older build) would replace the device itself:
# root tests a node of the same device made in the temporary directory.
full=/dev/full
if [ "$(id -u)" -eq 0 ]; then mknod "$tmp/full" c 1 7 2>/dev/null && full=$tmp/full || full=; fi
if [ -n "$full" ] && [ -c "$full" ]; then
    check "a full device ($full) is refused, and stays a character device" sh -c \
        "'$PB' $TRAIN --save '$full' 2>'$tmp/err' >/dev/null; test \$? -eq 2 &&
         grep -q '$full: it is a character device' '$tmp/err' && test -c '$full'"
else
    n=$((n + 1)); echo "ok $n - # SKIP no full device to test with"
fi

if [ "$(id -u)" -eq 0 ] && mknod "$tmp/null" c 1 3 2>/dev/null; then
    check "a device node of our own (as root, where rename would replace it) is refused and stays one" sh -c \
        "'$PB' $TRAIN --save '$tmp/null' 2>'$tmp/err' >/dev/null; test \$? -eq 2 && grep -q 'null: it is a character device' '$tmp/err' && test -c '$tmp/null'"
else
    skip "mknod needs root"
fi

check "prune --save refuses a FIFO before anything trains" sh -c \
    "'$PB' prune --method magnitude --sparsity 0.5 --model mlp --hidden 10 --dataset synthetic --epochs 50 -q --save '$tmp/fifo' >/dev/null 2>'$tmp/err'; test \$? -eq 2 && grep -q 'fifo: it is a FIFO' '$tmp/err' && ! grep -q 'epoch' '$tmp/err'"

check "a new path is written, and loads" sh -c "'$PB' $TRAIN --save '$tmp/new.pb' && '$PB' eval --load '$tmp/new.pb' --dataset synthetic | grep -q '^result:'"
echo old > "$tmp/real.pb"
ln -s real.pb "$tmp/link.pb"
check "a symbolic link to a regular file is written through: the link stays, its target is the checkpoint" sh -c \
    "'$PB' $TRAIN --save '$tmp/link.pb' && test -L '$tmp/link.pb' && cmp -s '$tmp/link.pb' '$tmp/real.pb' && '$PB' eval --load '$tmp/real.pb' --dataset synthetic | grep -q '^result:'"
ln -s missing.pb "$tmp/dangling.pb"
check "a dangling symbolic link is refused with its name" sh -c \
    "! '$PB' $TRAIN --save '$tmp/dangling.pb' 2>'$tmp/err' >/dev/null && grep -q 'dangling.pb: a symbolic link whose target does not exist' '$tmp/err' && test ! -e '$tmp/missing.pb'"
check "no temporary file is left anywhere" notmp "$tmp"

if [ -n "$full" ] && [ -c "$full" ]; then
    check "a result line the standard output cannot take ($full) fails with exit 1, saying so" sh -c \
        "'$PB' $TRAIN >'$full' 2>'$tmp/err'; test \$? -eq 1 && grep -q 'cannot write the standard output: No space left on device' '$tmp/err'"
else
    n=$((n + 1)); echo "ok $n - # SKIP no full device to test with"
fi

# The results store uses the same writes: a FIFO where cells.csv goes is refused, not replaced.
cat > "$tmp/one.lua" <<'LUA'
experiment "one" {
  models = { model{ name = "tiny", dense(8), relu(), dense(10) } },
  datasets = { "synthetic" }, methods = { "dense" },
  train = { epochs = 1, batch = 64 },
}
LUA
mkdir -p "$tmp/r/one"
mkfifo "$tmp/r/one/cells.csv"
check "run refuses to replace a FIFO at cells.csv (exit 1, names it); the cell's own row is kept" sh -c \
    "timeout 120 '$PB' run '$tmp/one.lua' --out '$tmp/r' --no-plot -q 2>'$tmp/err'; test \$? -eq 1 &&
     grep -q 'cells.csv: it is a FIFO' '$tmp/err' && test -p '$tmp/r/one/cells.csv' && test \$(ls '$tmp'/r/one/cells/*.row | wc -l) -eq 1 && ! ls -a '$tmp/r/one' '$tmp/r/one/cells' | grep -q '\\.tmp'"

# A full file system: the write error is reported, the old file stays whole.
if [ "$(id -u)" -eq 0 ] && mkdir "$tmp/small" && mount -t tmpfs -o size=200k tmpfs "$tmp/small" 2>/dev/null; then
    mnt=$tmp/small
    "$PB" $TRAIN --save "$mnt/model.pb" >/dev/null 2>&1
    cp "$mnt/model.pb" "$tmp/model.before"
    "$PB" train --model mlp --hidden 100 --dataset synthetic --epochs 1 -q --save "$mnt/model.pb" >/dev/null 2>"$tmp/err"
    rc=$?
    check "a checkpoint larger than the free space fails with exit 1 and says why, naming the file" sh -c \
        "test $rc -eq 1 && grep -q 'model.pb: No space left on device' '$tmp/err'"
    check "the old checkpoint is whole and no temporary file is left" sh -c \
        "cmp -s '$tmp/model.before' '$mnt/model.pb' && ! ls -a '$mnt' | grep -q '\\.tmp'"
    check "the file system has its space back" sh -c "test \$(du -k '$mnt' | tail -1 | cut -f1) -lt 100"
else
    skip "a small tmpfs needs root"; skip "a small tmpfs needs root"; skip "a small tmpfs needs root"
fi
exit $failed
