#!/bin/sh
# What a new user hit: a bad option gets one line, not the whole help; a resume
# that runs nothing leaves metadata.txt alone; cells.csv's finetune_epochs counts
# only fine-tuning a cell runs; curve rows carry the achieved sparsity; run --help
# names a prelude that exists.
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
echo 1..21

# one_line WANT COMMAND...: exit 2, nothing on stdout, exactly the line WANT on stderr
one_line() {
    want=$1; shift
    "$@" >"$tmp/o" 2>"$tmp/e"
    st=$?
    test $st -eq 2 && test ! -s "$tmp/o" && test "$(wc -l < "$tmp/e")" -eq 1 && test "$(cat "$tmp/e")" = "$want" ||
        { echo "exit $st; stderr:"; cat "$tmp/e"; return 1; }
}
for cmd in run train eval prune plugins report slurm plot; do
    check "$cmd --frobnicate: one line naming the option and the help" \
        one_line "prunebench: unknown option '--frobnicate'; try 'prunebench $cmd --help'" "$PB" $cmd --frobnicate
done
check "an unknown option with a value is named without it" \
    one_line "prunebench: unknown option '--frobnicate'; try 'prunebench run --help'" "$PB" run --frobnicate=3 x.lua
check "an unknown short option: one line" \
    one_line "prunebench: unknown option '-Z'; try 'prunebench train --help'" "$PB" train -Z
check "an option without its value: one line" \
    one_line "prunebench: option '--out' needs a value; try 'prunebench run --help'" "$PB" run x.lua --out
check "an ambiguous abbreviation: one line listing what it could mean" \
    one_line "prunebench: option '--st' is ambiguous (--step-epochs, --stages); try 'prunebench prune --help'" "$PB" prune --st x
check "run without a script: one line" \
    one_line "prunebench run: no script given (prunebench run SCRIPT.lua [options]); try 'prunebench run --help'" "$PB" run -j 2
check "an unknown option before the command: one line" \
    one_line "prunebench: unknown option '--frobnicate'; try 'prunebench --help'" "$PB" --frobnicate
check "run --help names a prelude file that exists" sh -c \
    "p=\$('$PB' run --help | sed -n 's/^  \\(.*prelude\\.lua\\)\$/\\1/p'); test -n \"\$p\" && test -f \"\$p\""

# dense, trained (nm: 2:4 whatever the target), init, training and run methods,
# each with a finetune recipe in the experiment; one explicit pipeline
cat > "$tmp/ft.lua" <<'LUA'
experiment "ft" {
  models   = { model{ name = "tiny", dense(24), relu(), dense(10) } },
  datasets = { "synthetic" },
  methods  = { "dense", "magnitude", "nm", "snip", "gradual", "lottery",
               { "magnitude", label = "mag2ft", stages = { "train", "prune", "finetune", { "finetune", epochs = 2 } } } },
  sparsity = { 0.3 },
  train    = { epochs = 2, batch = 64, lr = 0.05 },
  finetune = { epochs = 1, lr = 0.01 },
}
LUA
check "--dry-run's ft_ep column: 0 for dense, snip, gradual and lottery, 1 for magnitude, 3 for the pipeline" sh -c \
    "'$PB' run '$tmp/ft.lua' --dry-run --out '$tmp/dry' > '$tmp/d' && test \"\$(awk 'length(\$1) == 16 && \$1 ~ /^[0-9a-f]+\$/ { printf \"%s=%s \", \$4, \$8 }' '$tmp/d')\" = 'dense=0 magnitude=1 nm=1 snip=0 gradual=0 lottery=0 mag2ft=3 '"
check "the matrix runs" "$PB" run "$tmp/ft.lua" --out "$tmp/r" --no-plot -q
R=$tmp/r/ft
col() { head -1 "$R/cells.csv" | tr , '\n' | grep -nx "$1" | cut -d: -f1; }
# ft_of LABEL: the finetune_epochs of the cell of that label
ft_of() { awk -F, -v c="$(col finetune_epochs)" -v l="$(col label)" -v want="$1" 'NR > 1 && $l == want { print $c }' "$R/cells.csv"; }
check "finetune_epochs: 0 for the dense cell and for methods that train after pruning or run their own schedule" sh -c \
    "test '$(ft_of dense)' = 0 && test '$(ft_of snip)' = 0 && test '$(ft_of gradual)' = 0 && test '$(ft_of lottery)' = 0"
check "finetune_epochs: the recipe's for methods that prune a trained model, the stages' sum for a pipeline" sh -c \
    "test '$(ft_of magnitude)' = 1 && test '$(ft_of nm)' = 1 && test '$(ft_of mag2ft)' = 3"
# the prune row of the nm cell: 2:4 gives 0.5 whatever the target 0.3
nm_hash=$(awk -F, -v l="$(col label)" -v h="$(col cell)" 'NR > 1 && $l == "nm" { print $h }' "$R/cells.csv")
nm_ach=$(awk -F, -v l="$(col label)" -v a="$(col achieved_sparsity)" 'NR > 1 && $l == "nm" { print $a }' "$R/cells.csv")
check "the prune curve row records the achieved sparsity (0.5 for 2:4 at target 0.3), as cells.csv does" sh -c \
    "test '$nm_ach' = 0.5 && awk -F, -v h='$nm_hash' '\$2 == h && \$3 == \"prune\" { print \$8 }' '$R/curves.csv' | grep -qx 0.5"
cp "$R/metadata.txt" "$tmp/meta"
check "a resume with every cell finished leaves metadata.txt and script.lua unchanged" sh -c \
    "cp '$R/script.lua' '$tmp/script' && '$PB' run '$tmp/ft.lua' --out '$tmp/r' --no-plot 2>'$tmp/e' >/dev/null && grep -q '7 of 7 cells already finished' '$tmp/e' && cmp '$tmp/meta' '$R/metadata.txt' && cmp '$tmp/script' '$R/script.lua' && test \$(grep -c '^run [0-9]*: ' '$R/metadata.txt') -eq 1"
exit $failed
