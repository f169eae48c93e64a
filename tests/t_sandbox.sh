#!/bin/sh
# t_sandbox: `run --sandbox` gives a script only the experiment language and
# libraries that touch no file, process or C code. Each way out is refused
# with a non-zero exit and a message naming the script's line, while the same
# script runs without --sandbox; a normal experiment runs under the sandbox;
# `plot` and `report` of a results directory never run its script.lua.
PB="${top_builddir:-.}/prunebench"
case $PB in /*) ;; *) PB="$(pwd)/$PB" ;; esac
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
cd "$T" || exit 1
n=0
fails=0
ok() { n=$((n + 1)); if [ "$1" -eq 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fails=$((fails + 1)); fi; }

cat > base.lua <<'LUA'
experiment "sb" {
  models = { { "mlp", hidden = { 8 } } },
  datasets = { { "synthetic", subset = 200 } },
  methods = { "dense", "magnitude" },
  sparsity = { 0.5 },
  train = { epochs = 1, batch = 32 },
}
LUA

# escape LINE EXPECTED-MESSAGE DESCRIPTION: LINE is the script's first line
escape() {
    rm -f PWNED
    { printf '%s\n' "$1"; cat base.lua; } > e.lua
    "$PB" run e.lua --sandbox --dry-run --out r >out.txt 2>err.txt
    rc=$?
    [ "$rc" -ne 0 ] && [ "$rc" -ne 139 ] && [ ! -e PWNED ] && grep -q "^e\.lua:1: .*$2" err.txt
    ok $? "--sandbox refuses $3 (exit $rc: $(head -c 90 err.txt | head -1))"
}
escape 'os.execute("touch PWNED")' 'os.execute is not available under --sandbox' "os.execute"
escape 'io.popen("touch PWNED")' 'io (files and processes) is not available under --sandbox' "io.popen"
escape 'io.open("PWNED", "w"):write("x")' 'io (files and processes) is not available under --sandbox' "io.open for writing"
escape 'require("string")' 'require (C modules and other files) is not available' "require"
escape 'package.loadlib("libc.so.6", "system")' 'package (C modules and other files) is not available' "package.loadlib"
escape 'load("\27Lua", "chunk", "b")' "load: mode 'b' is not available under --sandbox" "load of a binary chunk"
escape 'string.dump(print)' 'string.dump is not available under --sandbox' "string.dump"
escape 'dofile("base.lua")' 'dofile (a sandboxed script is one file) is not available' "dofile"
escape 'loadfile("base.lua")' 'loadfile (a sandboxed script is one file) is not available' "loadfile"
escape 'debug.sethook(print, "l")' 'debug is not available under --sandbox' "debug"
escape 'collectgarbage("stop")' 'collectgarbage is not available under --sandbox' "collectgarbage"
escape 'os.getenv("HOME")' 'os.getenv is not available under --sandbox' "os.getenv"
escape 'local f = _G.io' 'io (files and processes) is not available' "io through _G"
escape 'setmetatable(_G, nil)' 'cannot change a protected metatable' "removing the environment's metatable"
escape 'getmetatable("").__index.format = nil' 'attempt to index a boolean value' "reaching the shared string table"

# load of text runs in the sandbox too: the error names the loaded chunk
rm -f PWNED
{ printf '%s\n' 'load("os.execute(\"touch PWNED\")")()'; cat base.lua; } > e.lua
"$PB" run e.lua --sandbox --dry-run --out r >out.txt 2>err.txt
rc=$?
[ "$rc" -ne 0 ] && [ ! -e PWNED ] && grep -q 'os.execute is not available under --sandbox' err.txt
ok $? "a text chunk loaded under --sandbox gets the sandbox, not the real globals (exit $rc)"

# a method named by its file would dlopen any shared object
sed 's|"magnitude"|"./evil.so"|' base.lua > e.lua
"$PB" run e.lua --sandbox --dry-run --out r >out.txt 2>err.txt
rc=$?
[ "$rc" -eq 2 ] && grep -q "^e\.lua:[0-9]*: .*method './evil.so': a plugin given by its file is not available under --sandbox" err.txt
ok $? "--sandbox refuses a method plugin given by its path (exit $rc)"

# the same side effects work without --sandbox (the default is full power)
{ printf '%s\n' 'os.execute("touch PWNED")' 'local f = io.open("PWNED2", "w"); f:write("x"); f:close()' \
    'assert(type(require) == "function" and type(debug.getinfo) == "function")'; cat base.lua; } > e.lua
rm -f PWNED PWNED2
"$PB" run e.lua --dry-run --out r >out.txt 2>err.txt
rc=$?
[ "$rc" -eq 0 ] && [ -e PWNED ] && [ -e PWNED2 ]
ok $? "without --sandbox the same script runs commands and writes files (exit $rc)"
rm -f PWNED PWNED2

# a normal experiment (with the libraries the sandbox keeps) runs under --sandbox
{ printf '%s\n' 'local w = math.floor(8.5) assert(string.format("%d", w) == "8" and utf8.char(72) == "H")' \
    'assert(table.concat({1, 2}, ",") == "1,2" and os.time() > 0 and os.clock() >= 0)' \
    'assert(load("return 1 + 1")() == 2 and _G.experiment == experiment and pcall(error, "x") == false)' \
    'print("sandboxed", #methods() > 1)'; cat base.lua; } > good.lua
"$PB" run good.lua --sandbox --out r -q --no-plot >out.txt 2>err.txt
rc=$?
[ "$rc" -eq 0 ] && grep -q '^sandboxed	true' out.txt && [ "$(grep -c ',ok,' r/sb/cells.csv)" -eq 2 ]
ok $? "a normal experiment runs under --sandbox and both its cells finish (exit $rc)"

# plot and report read CSV files only: a hostile script.lua in a results directory never runs
printf 'os.execute("touch PWNED")\n' > r/sb/script.lua
"$PB" plot r/sb >out.txt 2>err.txt
"$PB" report r/sb >out.txt 2>err.txt
rc=$?
[ "$rc" -eq 0 ] && [ ! -e PWNED ] && [ ! -e r/sb/PWNED ] && grep -q 'magnitude' out.txt
ok $? "plot and report of a results directory do not run its script.lua (report exit $rc)"

# slurm passes --sandbox on to the runs it writes
"$PB" slurm good.lua --sandbox --out s --array 2 >out.txt 2>err.txt
rc=$?
[ "$rc" -eq 0 ] && grep -q -- '--sandbox' s/slurm-good/array.sbatch && grep -q -- '--sandbox' s/slurm-good/charts.sbatch
ok $? "slurm --sandbox reads the script sandboxed and passes --sandbox to its runs (exit $rc)"
# and it refuses a sandbox escape before writing anything
{ printf '%s\n' 'os.execute("touch PWNED")'; cat base.lua; } > e.lua
"$PB" slurm e.lua --sandbox --out s2 >out.txt 2>err.txt
rc=$?
[ "$rc" -eq 2 ] && [ ! -e PWNED ] && grep -q '^e\.lua:1: os.execute is not available' err.txt
ok $? "slurm --sandbox refuses an escaping script (exit $rc)"

echo "1..$n"
exit $((fails > 0))
