#!/bin/sh
# t_resume: resuming trusts only whole files. An emptied, truncated, garbled
# or foreign per-cell row file, or a damaged curves file, is reported and the
# cell runs again (the merged cells.csv never loses a cell nor carries a
# broken row); a damaged cached dense model is made again instead of failing
# every cell that reads it; a cache that cannot be written is a warning, not
# a failed cell.
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
echo 1..17

cat > "$tmp/m.lua" <<'LUA'
experiment "m" {
  models   = { model{ name = "tiny", dense(16), relu(), dense(10) } },
  datasets = { "synthetic" },
  methods  = { "dense", "magnitude" },
  sparsity = { 0.5, 0.8, 0.9 },
  train    = { epochs = 1, batch = 64, lr = 0.05 },
  finetune = { epochs = 1, lr = 0.01 },
}
LUA
R=$tmp/r/m
run() { timeout 300 "$PB" run "$tmp/m.lua" --out "$tmp/r" --no-plot "$@" >"$tmp/out" 2>"$tmp/err"; }
# the merged cells.csv: a header and 4 whole rows of 4 cells, each with the header's field count
whole() {
    test "$(tail -n +2 "$R/cells.csv" | cut -d, -f2 | sort -u | wc -l)" -eq 4 &&
    test "$(tail -n +2 "$R/cells.csv" | grep -c ',ok,')" -eq 4 &&
    awk -F, 'NR == 1 { n = NF } NF != n { bad = 1 } END { exit bad || NR != 5 }' "$R/cells.csv"
}
run; rc=$?
first() { test $rc -eq 0 && whole; }
check "a matrix of 4 cells runs (exit 0, 4 whole rows)" first
rows=$(ls "$R"/cells/*.row)
set -- $rows
A=$1 B=$2 C=$3 D=$4
cp "$A" "$tmp/A.row"

: > "$B"
run
check "an emptied row file is reported by name and its cell runs again" sh -c \
    "grep -q \"cell $(basename "$B" .row) .* is damaged: .*row is empty; running it again\" '$tmp/err' && grep -q '1 run now, 3 from earlier runs' '$tmp/out'"
check "cells.csv has all 4 cells again" whole

head -c 40 "$C" > "$tmp/x" && cp "$tmp/x" "$C"
"$PB" run "$tmp/m.lua" --out "$tmp/r" --dry-run > "$tmp/dry" 2>&1
check "--dry-run marks the damaged cell (and the others done)" sh -c \
    "grep -q '^$(basename "$C" .row) .*(damaged: runs again)' '$tmp/dry' && test \$(grep -c '(done)' '$tmp/dry') -eq 3"
run
check "a truncated row file is damaged: it ends in the middle of a line" sh -c \
    "grep -q 'row ends in the middle of a line; running it again' '$tmp/err' && grep -q '1 run now' '$tmp/out'"
check "cells.csv is whole after it" whole

printf 'garbage,"unterminated\n' > "$D"
run
check "a garbled row file (wrong field count) runs again" sh -c \
    "grep -q 'record 1: 2 fields, not 21 to' '$tmp/err' && grep -q '1 run now' '$tmp/out'"
garbled() { ! grep -q garbage "$R/cells.csv" && whole; }
check "no garbled line reaches cells.csv" garbled

cp "$A" "$B"
run
check "another cell's row copied over a cell's is refused as foreign" sh -c \
    "grep -q 'not a record of this cell' '$tmp/err' && grep -q '1 run now' '$tmp/out'"
check "the first cell's row was never touched" cmp -s "$A" "$tmp/A.row"

curves=$(ls -S "$R"/cells/*.curves | head -1)
head -c 30 "$curves" > "$tmp/x" && cp "$tmp/x" "$curves"
run
curves_ok() { grep -q "curves ends in the middle of a line" "$tmp/err" && grep -q "1 run now" "$tmp/out" && whole; }
check "a truncated curves file of a finished cell makes it run again" curves_ok

run
check "a run with nothing damaged runs nothing and reports nothing damaged" sh -c \
    "grep -q '0 run now, 4 from earlier runs' '$tmp/out' && ! grep -q damaged '$tmp/err'"

# A corrupt cached dense model: the runner says so and removes it, and the
# first cell that needs it makes it again.
pb=$(ls "$R"/dense/*.pb)
key=$(basename "$pb" .pb)
corrupt() { printf '\377\377\377\377' | dd of="$pb" bs=1 seek=200 conv=notrunc 2>/dev/null; }
corrupt
cell=$(grep -l 'sparsity=0.9' "$R"/cells/*.log | head -1)
rm "${cell%.log}.row"
run; rc=$?
remade() {
    test $rc -eq 0 && grep -q "the cached model dense/$key.pb is damaged (.*checksum.*): removing it" "$tmp/err" &&
    ! grep -q 'dense model from cache' "$cell" && whole
}
check "a corrupt cached model is named by the runner and made again; the cell is ok" remade
rm "${cell%.log}.row"
run
check "the model made again is whole: the next cell reads it from the cache" grep -q 'dense model from cache' "$cell"

# A sharded run leaves the check to the worker (another shard may be reading
# the file): the cell that finds it damaged makes it again, saying so in its log.
corrupt
rm "${cell%.log}.row"
run --shard 0/1; rc=$?
worker_remade() { test $rc -eq 0 && grep -q 'cached model is damaged (.*checksum' "$cell" && whole; }
check "sharded: the worker that finds the cached model damaged makes it again (its log says why)" worker_remade

# --merge-only trains nothing: a damaged cell is named and counted as missing.
: > "$B"
timeout 120 "$PB" run "$tmp/m.lua" --out "$tmp/r" --merge-only --no-plot >"$tmp/out" 2>"$tmp/err"; rc=$?
merged() {
    test $rc -eq 1 && grep -q "cell $(basename "$B" .row) is damaged (.*empty): counted as missing" "$tmp/err" &&
    grep -q '3 ok, 0 failed, 1 missing' "$tmp/out" && test "$(tail -n +2 "$R/cells.csv" | wc -l)" -eq 3
}
check "--merge-only names a damaged cell, counts it missing (exit 1) and merges the 3 whole ones" merged

# A cache that cannot be written (its cost record's name is taken by a
# directory): a warning in the cell's log, and the cell is ok.
rm -rf "$R/cells" "$R/dense" "$R/cells.csv"
mkdir -p "$R/dense/$key.pb.cost"
run; rc=$?
warned() { test $rc -eq 0 && grep -q 'warning: the model after the pre-training is not cached' "$R"/cells/*.log && whole; }
check "a failed cache write is a warning, not a failed cell" warned
exit $failed
