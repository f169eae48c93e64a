#!/bin/sh
# t_plot_inject: texts from a script or a results file cannot run commands when
# the charts are drawn — a method label holding a newline and a gnuplot shell
# escape ("mag\n!touch FILE\n#"), in a script and in a crafted cells.csv.
PB="${top_builddir:-.}/prunebench"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
n=0
fails=0
ok() { n=$((n + 1)); if [ "$1" -eq 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fails=$((fails + 1)); fi; }
if ! command -v gnuplot >/dev/null 2>&1; then
    echo "1..0 # SKIP gnuplot not installed"
    exit 0
fi
echo "1..4"
cd "$T" || exit 1
cat > inject.lua <<'LUA'
experiment "inject" {
  models = { { "mlp", hidden = { 8 } } },
  datasets = { { "synthetic", subset = 200 } },
  methods = { "dense", { "magnitude", label = "mag\n!touch PWNED_RUN\n#" } },
  sparsity = { 0.5 },
  train = { epochs = 1, batch = 32 },
  plots = { "accuracy_vs_compression", "accuracy_vs_epochs", "layer_sparsity" },
}
LUA
"$PB" run inject.lua --out r -q >out 2>&1
ok $? "a script with the payload in a label runs and draws its charts"
[ ! -e PWNED_RUN ] && [ ! -e r/inject/plots/PWNED_RUN ]
ok $? "drawing its charts ran no command"
# the same payload written into a results file by hand, then plotted
sed 's/PWNED_RUN/PWNED_PLOT/' r/inject/cells.csv > c.csv
mv c.csv r/inject/cells.csv
grep -q PWNED_PLOT r/inject/cells.csv
ok $? "the crafted cells.csv holds the payload"
"$PB" plot r/inject >/dev/null 2>&1
[ ! -e PWNED_PLOT ] && [ ! -e r/inject/plots/PWNED_PLOT ]
ok $? "prunebench plot of the crafted directory ran no command"
exit $((fails > 0))
