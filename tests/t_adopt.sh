#!/bin/sh
# A results directory as committed (its CSV files, no cells/ or dense/)
# resumes: the finished cells are taken from cells.csv, the CSV files come out
# the same, and only new cells train; rows that are not whole or not the
# experiment's own run again.
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
echo 1..12

script() { # script SPARSITIES
    cat <<LUA
experiment "ad" {
  models   = { model{ name = "tiny", dense(24), relu(), dense(10) } },
  datasets = { "synthetic" },
  methods  = { "dense", "magnitude", { "global_magnitude", label = "gmp" } },
  sparsity = { $1 },
  train    = { epochs = 2, batch = 64, lr = 0.05 },
  finetune = { epochs = 1, lr = 0.01 },
}
LUA
}
script "0.5, 0.9" > "$tmp/ad.lua"
script "0.5, 0.9, 0.95" > "$tmp/ad3.lua"
"$PB" run "$tmp/ad.lua" --out "$tmp/r" -q --no-plot 2>"$tmp/first.err"
R=$tmp/r/ad
for f in cells curves layers metrics; do cp "$R/$f.csv" "$tmp/$f.before"; done

# as committed: the per-cell files and the dense cache are not there
rm -rf "$R/cells" "$R/dense"
check "the dry run marks the cells of cells.csv done and says where they come from" sh -c \
    "'$PB' run '$tmp/ad.lua' --out '$tmp/r' --dry-run > '$tmp/dry' && test \$(grep -c '(done)' '$tmp/dry') -eq 5 && grep -q '5 of the cells marked done have no per-cell files' '$tmp/dry'"
check "a rerun takes the 5 finished cells from cells.csv and trains nothing" sh -c \
    "'$PB' run '$tmp/ad.lua' --out '$tmp/r' --no-plot 2>'$tmp/e' && grep -q '5 finished cells taken from' '$tmp/e' && ! grep -q 'test_acc=' '$tmp/e' && test ! -e '$R/dense/'*.pb"
check "the CSV files come out byte for byte as before" sh -c \
    "for f in cells curves layers metrics; do cmp '$tmp/'\$f.before '$R/'\$f.csv || exit 1; done"
check "each taken cell has its row, curves, layers and metrics files again" sh -c \
    "test \$(ls '$R'/cells/*.row | wc -l) -eq 5 && test \$(ls '$R'/cells/*.curves | wc -l) -eq 5 && test \$(ls '$R'/cells/*.layers | wc -l) -eq 5 && test \$(ls '$R'/cells/*.metrics | wc -l) -eq 5"

check "the dry run's cost leaves out the cells marked done" sh -c \
    "'$PB' run '$tmp/ad.lua' --out '$tmp/r' --dry-run | grep -q 'estimated training cost: 0.000 TFLOP (each dense model counted once, the cells marked done not counted)' && '$PB' run '$tmp/ad.lua' --out '$tmp/fresh' --dry-run | grep 'estimated training cost' | grep -vq 'marked done'"

# a new operating point on the CSV files alone: only its cells train
rm -rf "$R/cells" "$R/dense"
check "a new sparsity on a committed directory trains only its 2 cells" sh -c \
    "'$PB' run '$tmp/ad3.lua' --out '$tmp/r' --no-plot 2>'$tmp/e3' && test \$(grep -c 'test_acc=' '$tmp/e3') -eq 2 && test \$(tail -n +2 '$R/cells.csv' | wc -l) -eq 7 && test \$(grep -c ',0.95,' '$R/cells.csv') -eq 2"
check "the old cells' rows are unchanged among the new ones" sh -c \
    "tail -n +2 '$tmp/cells.before' | while IFS= read -r l; do grep -qxF \"\$l\" '$R/cells.csv' || exit 1; done"

# rows that are not whole, or another experiment's, are not taken
rm -rf "$R/cells" "$R/dense"
head -c -1 "$R/cells.csv" > "$tmp/cut" && cp "$tmp/cut" "$R/cells.csv"
check "a last row cut off before its line end is not taken: that cell trains again" sh -c \
    "'$PB' run '$tmp/ad3.lua' --out '$tmp/r' --no-plot 2>'$tmp/e4' && grep -q '6 finished cells taken' '$tmp/e4' && test \$(grep -c 'test_acc=' '$tmp/e4') -eq 1"
rm -rf "$R/cells" "$R/dense"
sed -i '2s/^ad,/other,/' "$R/cells.csv"
check "a row naming another experiment is not taken" sh -c \
    "'$PB' run '$tmp/ad3.lua' --out '$tmp/r' --no-plot 2>'$tmp/e5' && grep -q '6 finished cells taken' '$tmp/e5' && test \$(grep -c 'test_acc=' '$tmp/e5') -eq 1 && ! grep -q '^other,' '$R/cells.csv'"
rm -rf "$R/cells" "$R/dense"
check "--fresh takes nothing from cells.csv" sh -c \
    "'$PB' run '$tmp/ad3.lua' --out '$tmp/r' --no-plot --fresh 2>'$tmp/e6' && ! grep -q 'taken from' '$tmp/e6' && test \$(grep -c 'test_acc=' '$tmp/e6') -eq 7"

# a failed row taken from cells.csv stays failed: --retry-failed runs it again
rm -rf "$R/cells" "$R/dense"
sed -i '3s/,ok,,/,failed,diverged,/' "$R/cells.csv"
check "the dry run marks a failed row of cells.csv failed, the others done, and counts no cost" sh -c \
    "'$PB' run '$tmp/ad3.lua' --out '$tmp/r' --dry-run > '$tmp/dry2' && test \$(grep -c '(failed)\$' '$tmp/dry2') -eq 1 && test \$(grep -c '(done)\$' '$tmp/dry2') -eq 6 && grep -q 'estimated training cost: 0.000 TFLOP' '$tmp/dry2'"
check "with --retry-failed the dry run marks the failed cell to run again, as a run trains it" sh -c \
    "'$PB' run '$tmp/ad3.lua' --out '$tmp/r' --dry-run --retry-failed > '$tmp/dry3' && test \$(grep -c '(failed: runs again)\$' '$tmp/dry3') -eq 1 && '$PB' run '$tmp/ad3.lua' --out '$tmp/r' --no-plot --retry-failed 2>'$tmp/e7' && test \$(grep -c 'test_acc=' '$tmp/e7') -eq 1"
exit $failed
