#!/bin/sh
# `prunebench run --shard I/N` and `--merge-only` on one host: shards running at
# once give the results of an unsharded run, each cached model made once; the
# locks of cached models wait for a live owner and take over from a dead one;
# a shard killed with SIGKILL and run again loses only its cells in flight;
# `prunebench slurm` writes the array and chart scripts and submits them
# (through a stand-in sbatch; tests/t_slurm.sh uses a real cluster).
PB=${top_builddir:-.}/prunebench
PB=$(cd "$(dirname "$PB")" && pwd)/$(basename "$PB")
tmp=$(mktemp -d)
bg=""
trap 'for p in $bg; do kill -9 $p 2>/dev/null; done; rm -rf "$tmp"' EXIT
n=0 failed=0
check() { # check DESCRIPTION COMMAND...: passes when the command succeeds
    desc=$1; shift
    n=$((n + 1))
    if "$@" >"$tmp/check.out" 2>&1; then echo "ok $n - $desc"; else
        echo "not ok $n - $desc"; sed 's/^/# /' "$tmp/check.out" | head -20; failed=1; fi
}
export OPENBLAS_NUM_THREADS=1
echo 1..23

cat > "$tmp/m.lua" <<'LUA'
experiment "m" {
  models   = { model{ name = "tiny", dense(24), relu(), dense(10) } },
  datasets = { "synthetic" },
  methods  = { "dense", "magnitude", "random", { "global_magnitude", label = "gmp" }, "snip" },
  sparsity = { 0.5, 0.9 },
  seeds    = { 1, 2 },
  train    = { epochs = 2, batch = 64, lr = 0.05 },
  finetune = { epochs = 1, lr = 0.01 },
}
LUA
# the columns that do not depend on timing or on which host ran a cell:
# cells.csv without wall_s (19), time_to_target_s (21), build (31), prefix_wall_s (34), cost_wall_s (37)
# and the inference timings (48-50)
same_results() { # same_results DIR_A DIR_B
    C=1-18,20,22-30,32,33,35,36,38-47
    cut -d, -f$C "$1/cells.csv" > "$tmp/ca" && cut -d, -f$C "$2/cells.csv" > "$tmp/cb" && diff "$tmp/ca" "$tmp/cb" &&
    cut -d, -f1-5,7-10 "$1/curves.csv" > "$tmp/ua" && cut -d, -f1-5,7-10 "$2/curves.csv" > "$tmp/ub" &&
    diff "$tmp/ua" "$tmp/ub" && diff "$1/layers.csv" "$2/layers.csv" && diff "$1/metrics.csv" "$2/metrics.csv" &&
    test "$(tail -n +2 "$1/cells.csv" | wc -l)" -gt 0
}

check "--shard refuses I >= N, naming the form" sh -c \
    "'$PB' run '$tmp/m.lua' --shard 4/4 --out '$tmp/r' 2>'$tmp/e'; test \$? -eq 2 && grep -q 'not I/N with 0 <= I < N' '$tmp/e'"
check "--shard cannot go with --fresh" sh -c \
    "'$PB' run '$tmp/m.lua' --shard 0/2 --fresh --out '$tmp/r' 2>'$tmp/e'; test \$? -eq 2 && grep -q -- '--fresh' '$tmp/e'"
for i in 0 1 2 3; do "$PB" run "$tmp/m.lua" --shard $i/4 --dry-run --out "$tmp/r" | awk 'NR > 2 && / tiny / { print $1 }'; done | sort > "$tmp/sharded.list"
"$PB" run "$tmp/m.lua" --dry-run --out "$tmp/r" | awk 'NR > 2 && / tiny / { print $1 }' | sort > "$tmp/all.list"
check "the dry runs of 4 shards list every cell of the matrix exactly once" sh -c \
    "test \$(wc -l < '$tmp/all.list') -eq 18 && diff '$tmp/all.list' '$tmp/sharded.list'"

# the reference, unsharded; then 4 shards at once, and the merge
"$PB" run "$tmp/m.lua" --out "$tmp/ref" --no-plot -q -t 1
for i in 0 1 2 3; do "$PB" run "$tmp/m.lua" --shard $i/4 --out "$tmp/s" -t 1 >"$tmp/s$i.log" 2>&1 & eval "p$i=\$!"; done
st=0
for i in 0 1 2 3; do eval "wait \$p$i" || st=1; done
check "4 shards run at once on one results directory" test $st -eq 0
check "--merge-only: every cell recorded, ok" sh -c \
    "'$PB' run '$tmp/m.lua' --out '$tmp/s' --merge-only --no-plot > '$tmp/o' && grep -q '18 cells: 18 ok, 0 failed, 0 missing' '$tmp/o'"
S=$tmp/s/m
check "every cell exactly once in the merged cells.csv, status ok" sh -c \
    "test \$(tail -n +2 '$S/cells.csv' | cut -d, -f2 | sort -u | wc -l) -eq 18 && test \$(tail -n +2 '$S/cells.csv' | wc -l) -eq 18 && test \$(grep -c ',ok,' '$S/cells.csv') -eq 18"
check "the sharded results equal the unsharded run's (cells, curves, layers, metrics)" same_results "$tmp/ref/m" "$S"
# column 5 is method, 23 dense_cache_hit, 24 dense_key: of the cells that start
# from a cached model (all but snip, which prunes at initialization) one per
# model made it, the others read it
check "each cached model is made once, by one cell, across the shards" sh -c \
    "test \$(ls '$S'/dense/*.pb | wc -l) -eq 2 && test \$(awk -F, 'NR > 1 && \$5 != \"snip\" && \$23 == 0 { print \$24 }' '$S/cells.csv' | sort -u | wc -l) -eq 2 && test \$(awk -F, 'NR > 1 && \$5 != \"snip\" && \$23 == 0' '$S/cells.csv' | wc -l) -eq 2"
check "metadata has one block per shard with its host" sh -c \
    "for i in 0 1 2 3; do grep -q \"^shard: \$i/4 (\" '$S/metadata.txt' || exit 1; done; test \$(grep -c '^host: ' '$S/metadata.txt') -eq 4"
check "no lock or temporary file is left" sh -c "! ls -a '$S' '$S/dense' '$S/cells' | grep -e '.\\.lock\$' -e '\\.tmp' -e '\\.dead\\.'"
check "an unsharded run refuses a directory shards are using" sh -c \
    "exec 9<'$S/.lock'; flock -s 9; '$PB' run '$tmp/m.lua' --out '$tmp/s' -q 2>'$tmp/e'; test \$? -eq 2 && grep -q 'another prunebench run is using' '$tmp/e'"

# the lock of a cached model: a live owner is waited for, a dead one taken over
key=$(awk -F, 'NR == 2 { print $24 }' "$tmp/ref/m/cells.csv")
host=$(uname -n) boot=$(cat /proc/sys/kernel/random/boot_id)/$(readlink /proc/self/ns/pid | tr -dc 0-9)
sleep 60 & spid=$!; bg="$bg $spid"
start=$(sed 's/.*) //' /proc/$spid/stat | awk '{ print $20 }')
mkdir -p "$tmp/w/m/dense"
echo "host=$host boot=$boot pid=$spid start=$start token=t1 note=x" > "$tmp/w/m/dense/$key.pb.lock"
"$PB" run "$tmp/m.lua" --shard 0/1 --out "$tmp/w" --no-plot -t 1 >"$tmp/w.log" 2>&1 & wpid=$!; bg="$bg $wpid"
i=0
while ! grep -q '^waiting: ' "$tmp/w.log" && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
sleep 1
check "a shard waits while the owner of a cached model's lock lives" sh -c \
    "grep -q \"dense/$key.pb: host $host pid $spid\" '$tmp/w.log' && test ! -e '$tmp/w/m/dense/$key.pb' && kill -0 $wpid"
kill -9 $spid; wait $spid 2>/dev/null
wait $wpid; st=$?
check "and takes the lock over when the owner dies, then finishes" sh -c \
    "test $st -eq 0 && grep -q \"dense/$key.pb: taking over from host $host pid $spid, which is dead\" '$tmp/w.log' && test -s '$tmp/w/m/dense/$key.pb' && test \$(grep -c ',ok,' '$tmp/w/m/cells.csv') -eq 18"
rm -rf "$tmp/w"; mkdir -p "$tmp/w/m/dense"
echo "host=elsewhere boot=b pid=1 start=1 token=t2 note=x" > "$tmp/w/m/dense/$key.pb.lock"
t0=$(date +%s)
PRUNEBENCH_LOCK_STALE_S=3 "$PB" run "$tmp/m.lua" --shard 0/1 --out "$tmp/w" --no-plot -t 1 >"$tmp/w.log" 2>&1; st=$?
t1=$(date +%s)
check "another host's lock is taken over once untouched for the stale time" sh -c \
    "test $st -eq 0 && test $((t1 - t0)) -ge 3 && grep -q 'taking over from host elsewhere pid 1' '$tmp/w.log' && test \$(grep -c ',ok,' '$tmp/w/m/cells.csv') -eq 18"

# SIGKILL a shard mid-run, run it again: only its cells in flight are lost
cat > "$tmp/k.lua" <<'LUA'
experiment "k" {
  models   = { model{ name = "tiny", dense(24), relu(), dense(10) } },
  datasets = { "synthetic" },
  methods  = { "dense", "magnitude", "random" },
  sparsity = { 0.3, 0.5, 0.7, 0.8, 0.9 },
  seeds    = { 1, 2 },
  train    = { epochs = 3, batch = 64 },
  finetune = { epochs = 2, lr = 0.01 },
}
LUA
"$PB" run "$tmp/k.lua" --shard 1/2 --dry-run --out "$tmp/k" | awk 'NR > 2 && / tiny / { print $1 }' > "$tmp/k1.list"
mine=$(wc -l < "$tmp/k1.list")
"$PB" run "$tmp/k.lua" --shard 0/2 --out "$tmp/k" -q -t 1 & p0=$!; bg="$bg $p0"
"$PB" run "$tmp/k.lua" --shard 1/2 --out "$tmp/k" -q -t 1 & p1=$!; bg="$bg $p1"
rows1() { for h in $(cat "$tmp/k1.list"); do test -e "$tmp/k/k/cells/$h.row" && echo "$h"; done; }
i=0
while [ "$(rows1 | wc -l)" -lt 3 ] && [ $i -lt 300 ]; do sleep 0.05; i=$((i + 1)); done
kill -9 $p1; wait $p1 2>/dev/null
rows1 > "$tmp/k1.before"
before=$(wc -l < "$tmp/k1.before")
for h in $(cat "$tmp/k1.before"); do md5sum "$tmp/k/k/cells/$h.row"; done > "$tmp/k1.md5"
check "shard 1 was killed mid-run ($before of its $mine cells recorded)" test "$before" -ge 3 -a "$before" -lt "$mine"
# shard 0 finishes (taking over any cached model shard 1 was making), then shard 1 runs again
wait $p0; st0=$?
kept=$(rows1 | wc -l)
"$PB" run "$tmp/k.lua" --shard 1/2 --out "$tmp/k" -t 1 > "$tmp/k1.log" 2>&1; st1=$?
check "run again, shard 1 takes over its dead runner's lock and runs only the cells not recorded" sh -c \
    "test $st1 -eq 0 -a $st0 -eq 0 && grep -q 'shard 1/2: taking over from host .* which is dead' '$tmp/k1.log' && grep -q \"shard 1/2: $mine cells ($((mine - kept)) run now, $kept from earlier runs\" '$tmp/k1.log'"
check "the cells recorded before the kill are untouched" md5sum -c --quiet "$tmp/k1.md5"
"$PB" run "$tmp/k.lua" --out "$tmp/k" --merge-only --no-plot -q
"$PB" run "$tmp/k.lua" --out "$tmp/kref" --no-plot -q -t 1
check "after the kill and rerun: every cell once, ok, each cached model made once" sh -c \
    "test \$(tail -n +2 '$tmp/k/k/cells.csv' | wc -l) -eq 22 && test \$(tail -n +2 '$tmp/k/k/cells.csv' | cut -d, -f2 | sort -u | wc -l) -eq 22 && test \$(grep -c ',ok,' '$tmp/k/k/cells.csv') -eq 22 && test \$(awk -F, 'NR > 1 && \$23 == 0' '$tmp/k/k/cells.csv' | wc -l) -eq 2"
check "... and equal to an unsharded run" same_results "$tmp/kref/k" "$tmp/k/k"

# prunebench slurm: the scripts, and their submission through a stand-in sbatch
mkdir "$tmp/bin"
cat > "$tmp/bin/sbatch" <<EOF
#!/bin/sh
echo "\$*" >> "$tmp/sbatch.calls"
n=\$(wc -l < "$tmp/sbatch.calls"); echo "\$((100 + n));cluster"
EOF
chmod +x "$tmp/bin/sbatch"
check "prunebench slurm writes an array of N shard tasks and a chart job" sh -c \
    "'$PB' slurm '$tmp/m.lua' --array 3 --cpus-per-task 2 --partition short --out '$tmp/sl' > '$tmp/o' && A='$tmp/sl/slurm-m/array.sbatch' && grep -q '^#SBATCH --array=0-2\$' \"\$A\" && grep -q '^#SBATCH --cpus-per-task=2\$' \"\$A\" && grep -q '^#SBATCH --partition=short\$' \"\$A\" && grep -Eq '^#SBATCH --time=[0-9]{2}:[0-9]{2}:00\$' \"\$A\" && grep -q -- \"--shard \\\"\\\$SLURM_ARRAY_TASK_ID/3\\\" -j\" \"\$A\" && grep -q -- '--merge-only' '$tmp/sl/slurm-m/charts.sbatch' && grep -q 'time limit' '$tmp/o'"
check "the time limit is the cost model's estimate (x2 + 10 min) unless --time is given" sh -c \
    "grep -q '^#SBATCH --time=00:1[01]:00\$' '$tmp/sl/slurm-m/array.sbatch' && '$PB' slurm '$tmp/m.lua' --array 3 --time 2:00:00 --out '$tmp/sl' >/dev/null && grep -q '^#SBATCH --time=2:00:00\$' '$tmp/sl/slurm-m/array.sbatch'"
check "--submit submits the array, then the chart job after it (afterany)" sh -c \
    "PATH='$tmp/bin':\$PATH '$PB' slurm '$tmp/m.lua' --array 3 --out '$tmp/sl' --submit > '$tmp/o' && grep -q 'array job 101, chart job 102' '$tmp/o' && sed -n 2p '$tmp/sbatch.calls' | grep -q -- '--dependency=afterany:101 '"
mkdir "$tmp/nobin"
check "--submit without sbatch says so, exit 1" sh -c \
    "PATH='$tmp/nobin' '$PB' slurm '$tmp/m.lua' --out '$tmp/sl' --submit 2>'$tmp/e' >/dev/null; test \$? -eq 1 && grep -q 'cannot run sbatch (not in PATH' '$tmp/e'"
exit $failed
