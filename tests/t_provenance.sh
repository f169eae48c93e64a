#!/bin/sh
# t_provenance: metadata.txt names the file and FNV-1a 64 hash of every plugin
# a run uses; an out-of-tree plugin's hash is part of its cells' hashes, so a
# rebuilt (or altered) plugin reruns its cells instead of reusing the old
# plugin's results, while an identical rebuild and the built-in plugins keep
# their hashes. An out-of-tree data-selection plugin is part of the dense key.
PB="${top_builddir:-.}/prunebench"
SRC=${top_srcdir:-.}
case $PB in /*) ;; *) PB="$(pwd)/$PB" ;; esac
case $SRC in /*) ;; *) SRC="$(pwd)/$SRC" ;; esac
BUILT="$(dirname "$PB")/plugins/.libs"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
cd "$T" || exit 1
n=0
fails=0
ok() { n=$((n + 1)); if [ "$1" -eq 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fails=$((fails + 1)); fi; }
if ! command -v cc >/dev/null 2>&1; then
    echo "1..0 # SKIP no C compiler to build an out-of-tree plugin"
    exit 0
fi
mkdir p
build() { cc -std=c11 -shared -fPIC -I"$SRC/harness" "$@" -o p/rowwise.so "$SRC/tests/example_plugin.c" -lm; }
build || { echo "1..0 # SKIP cannot build tests/example_plugin.c"; exit 0; }
cat > p.lua <<'LUA'
experiment "pv" {
  models = { { "mlp", hidden = { 8 } } },
  datasets = { { "synthetic", subset = 200 } },
  methods = { "dense", "magnitude", "rowwise" },
  sparsity = { 0.5 },
  train = { epochs = 1, batch = 32 },
}
LUA
run() { "$PB" run p.lua --plugin-path p --out r --no-plot >out.txt 2>err.txt; }
hash_of() { awk -F, -v m="$1" 'NR > 1 && $5 == m { print $2 }' r/pv/cells.csv; }
ran_now() { grep -q "^experiment pv: 3 cells ($1 run now, $2 from earlier runs), 0 failed" out.txt; }

run
rc=$?
ok $rc "a run with an out-of-tree plugin finishes (exit $rc)"
real=$(cd p && pwd -P)/rowwise.so
grep -q "^plugin: rowwise $real fnv1a64=[0-9a-f]\{16\} out-of-tree$" r/pv/metadata.txt
ok $? "metadata.txt names the out-of-tree plugin's resolved path and the hash of its file"
grep -q "^plugin: magnitude plugins/\.libs/magnitude\.so fnv1a64=[0-9a-f]\{16\} built-in$" r/pv/metadata.txt
ok $? "metadata.txt names the built-in plugin's path (relative to the build tree, which results do not name) and hash too"
d1=$(hash_of dense) m1=$(hash_of magnitude) r1=$(hash_of rowwise)
h1=$(sed -n 's/^plugin: rowwise .* fnv1a64=\([0-9a-f]*\) .*/\1/p' r/pv/metadata.txt | tail -1)

run
ran_now 0 3
ok $? "a second run with the same plugin file reuses every cell"
build
run
ran_now 0 3 && [ "$(hash_of rowwise)" = "$r1" ]
ok $? "an identical rebuild of the plugin keeps its cells' hashes (reused)"

build -O2 -DNDEBUG
run
r2=$(hash_of rowwise)
ran_now 1 2 && [ "$r2" != "$r1" ] && [ "$(hash_of dense)" = "$d1" ] && [ "$(hash_of magnitude)" = "$m1" ]
ok $? "a rebuilt plugin (other flags) reruns its cell under a new hash; the built-in cells are reused"
h2=$(sed -n 's/^plugin: rowwise .* fnv1a64=\([0-9a-f]*\) .*/\1/p' r/pv/metadata.txt | tail -1)
[ -n "$h1" ] && [ -n "$h2" ] && [ "$h1" != "$h2" ]
ok $? "the latest run's metadata block records the rebuilt file's hash ($h1 -> $h2)"
[ "$(awk -F, 'NR > 1' r/pv/cells.csv | wc -l)" -eq 3 ] && ! grep -q "$r1" r/pv/cells.csv
ok $? "cells.csv holds the new plugin's row, not the old one's"

printf 'x' >> p/rowwise.so
run
r3=$(hash_of rowwise)
ran_now 1 2 && [ "$r3" != "$r2" ] && [ "$r3" != "$r1" ]
ok $? "one byte appended to the plugin's file reruns its cell"

# the built-in cells' hashes do not depend on the out-of-tree plugin: a script
# without it, run without --plugin-path, lists them under the same hashes
sed 's/, "rowwise"//' p.lua > b.lua
"$PB" run b.lua --out r2 --dry-run >dry.txt 2>&1
grep -q "^$m1 " dry.txt && grep -q "^$d1 " dry.txt && ! grep -q rowwise dry.txt
ok $? "the built-in cells keep their hashes without the out-of-tree plugin and its path"

# an out-of-tree data-selection plugin: its file is part of the dense key
if [ -f "$BUILT/rs2.so" ]; then
    mkdir -p dp
    cat > d.lua <<'LUA'
experiment "dv" {
  models = { { "mlp", hidden = { 8 } } },
  datasets = { { "synthetic", subset = 200 } },
  methods = { "dense" },
  data = { { "rs2", fraction = 0.5 } },
  train = { epochs = 1, batch = 32 },
}
LUA
    dkey() {
        awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "dense_key") k = i } NR == 2 { print $k }' "$1/dv/cells.csv"
    }
    "$PB" run d.lua --out d0 --no-plot -q >/dev/null 2>&1
    k0=$(dkey d0)
    cp "$BUILT/rs2.so" dp/rs2.so
    "$PB" run d.lua --plugin-path dp --out d1 --no-plot -q >/dev/null 2>&1
    k1=$(dkey d1)
    printf 'x' >> dp/rs2.so
    "$PB" run d.lua --plugin-path dp --out d1 --no-plot >out.txt 2>&1
    k2=$(dkey d1)
    [ -n "$k0" ] && [ -n "$k1" ] && [ -n "$k2" ] && [ "$k0" != "$k1" ] && [ "$k1" != "$k2" ] &&
        grep -q "(1 run now, 0 from earlier runs)" out.txt && grep -q "^plugin: rs2 .*out-of-tree$" d1/dv/metadata.txt
    ok $? "an out-of-tree data plugin's file is part of the dense key ($k0 built-in, $k1 copied, $k2 altered)"
else
    n=$((n + 1))
    echo "ok $n # SKIP the built-in rs2 plugin is not built"
fi

echo "1..$n"
exit $((fails > 0))
