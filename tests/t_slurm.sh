#!/bin/sh
# `prunebench slurm` against a real Slurm: a one-node cluster (Debian's
# slurm-wlm and munge; munged, slurmctld and slurmd as root, select/cons_tres,
# proctrack/linuxproc, the node named after the host) started here on ports and
# files of its own, a 4-task array on a small synthetic matrix and its chart
# job; then a shard killed with SIGKILL mid-run and resubmitted. Everything
# started here is stopped at the end.
PB=${top_builddir:-.}/prunebench
PB=$(cd "$(dirname "$PB")" && pwd)/$(basename "$PB")
PATH=$PATH:/usr/sbin:/sbin
export PATH
if [ "$(id -u)" != 0 ]; then
    echo "1..0 # SKIP not root: this test starts munged, slurmctld and slurmd, which run as root"
    exit 0
fi
for c in munged slurmctld slurmd sbatch squeue scontrol sinfo scancel; do
    if ! command -v $c >/dev/null 2>&1; then
        echo "1..1"
        echo "not ok 1 - $c is not installed: the cluster test needs Debian's slurm-wlm and munge (apt-get install slurm-wlm munge)"
        exit 1
    fi
done
tmp=$(mktemp -d)
chmod 711 "$tmp"
T=$tmp/cluster
mkdir -p "$T/munge" "$T/state" "$T/spool"
chmod 700 "$T/munge"
stop_cluster() {
    if [ -e "$T/slurm.conf" ]; then
        SLURM_CONF=$T/slurm.conf scancel --quiet --user=root 2>/dev/null
        sleep 0.5
    fi
    for f in "$T/slurmd.pid" "$T/slurmctld.pid" "$T/munge/pid"; do
        [ -s "$f" ] && kill "$(cat "$f")" 2>/dev/null
    done
    i=0
    while [ $i -lt 50 ]; do
        alive=0
        for f in "$T/slurmd.pid" "$T/slurmctld.pid" "$T/munge/pid"; do
            [ -s "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null && alive=1
        done
        [ $alive -eq 0 ] && break
        sleep 0.1; i=$((i + 1))
    done
    for f in "$T/slurmd.pid" "$T/slurmctld.pid" "$T/munge/pid"; do
        [ -s "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null
    done
}
trap 'stop_cluster; rm -rf "$tmp"' EXIT
n=0 failed=0
check() { # check DESCRIPTION COMMAND...: passes when the command succeeds
    desc=$1; shift
    n=$((n + 1))
    if "$@" >"$tmp/check.out" 2>&1; then echo "ok $n - $desc"; else
        echo "not ok $n - $desc"; sed 's/^/# /' "$tmp/check.out" | head -20; failed=1; fi
}
export OPENBLAS_NUM_THREADS=1
echo 1..13

# ---- the cluster: munged on its own socket and key, slurmctld and slurmd on ports of their own
H=$(hostname -s)
port=$((20000 + $$ % 20000))
dd if=/dev/urandom of="$T/munge/munge.key" bs=1024 count=1 2>/dev/null
chmod 600 "$T/munge/munge.key"
munged -f --socket="$T/munge/sock" --key-file="$T/munge/munge.key" --pid-file="$T/munge/pid" \
    --log-file="$T/munge/log" --seed-file="$T/munge/seed" 2>"$T/munged.err"
chmod 711 "$T/munge"
cat > "$T/slurm.conf" <<EOF
ClusterName=pbtest
SlurmctldHost=$H(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$port
SlurmdPort=$((port + 1))
AuthType=auth/munge
AuthInfo=socket=$T/munge/sock
CredType=cred/munge
StateSaveLocation=$T/state
SlurmdSpoolDir=$T/spool
SlurmctldPidFile=$T/slurmctld.pid
SlurmdPidFile=$T/slurmd.pid
SlurmctldLogFile=$T/slurmctld.log
SlurmdLogFile=$T/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
SlurmdParameters=config_overrides
NodeName=$H NodeAddr=127.0.0.1 CPUs=4 RealMemory=1000 State=UNKNOWN
PartitionName=pbtest Nodes=$H Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF=$T/slurm.conf
slurmctld -f "$T/slurm.conf" -c 2>"$T/slurmctld.err"
slurmd -f "$T/slurm.conf" 2>"$T/slurmd.err"
i=0
while [ "$(sinfo -h -o %T 2>/dev/null)" != idle ] && [ $i -lt 150 ]; do sleep 0.2; i=$((i + 1)); done
check "a one-node cluster ($H, 4 CPUs) is up" sh -c \
    "test \"\$(sinfo -h -o %T)\" = idle || { cat '$T/munged.err' '$T/slurmctld.err' '$T/slurmd.err'; tail -5 '$T/slurmctld.log' '$T/slurmd.log'; exit 1; }"

wait_job() { # wait_job ID SECONDS: until the job (all its array tasks) has left the queue
    i=0
    while squeue -h -j "$1" 2>/dev/null | grep -q . && [ $i -lt $(($2 * 5)) ]; do sleep 0.2; i=$((i + 1)); done
    ! squeue -h -j "$1" 2>/dev/null | grep -q .
}
states() { scontrol show job "$1" | sed -n 's/.*JobState=\([A-Z]*\).*/\1/p'; }
same_results() { # same_results DIR_A DIR_B: equal but for timing and build columns
    C=1-18,20,22-30,32,33,35,36,38-47
    cut -d, -f$C "$1/cells.csv" > "$tmp/ca" && cut -d, -f$C "$2/cells.csv" > "$tmp/cb" && diff "$tmp/ca" "$tmp/cb" &&
    cut -d, -f1-5,7-10 "$1/curves.csv" > "$tmp/ua" && cut -d, -f1-5,7-10 "$2/curves.csv" > "$tmp/ub" &&
    diff "$tmp/ua" "$tmp/ub" && diff "$1/layers.csv" "$2/layers.csv" && test "$(tail -n +2 "$1/cells.csv" | wc -l)" -gt 0
}

# ---- a 4-task array on a small synthetic matrix, and its chart job
cat > "$tmp/m.lua" <<'LUA'
experiment "m" {
  models   = { model{ name = "tiny", dense(24), relu(), dense(10) } },
  datasets = { "synthetic" },
  methods  = { "dense", "magnitude", "random", { "global_magnitude", label = "gmp" }, "snip" },
  sparsity = { 0.5, 0.9 },
  seeds    = { 1, 2 },
  train    = { epochs = 2, batch = 64, lr = 0.05 },
  finetune = { epochs = 1, lr = 0.01 },
  plots    = { "accuracy_vs_compression" },
}
LUA
"$PB" run "$tmp/m.lua" --out "$tmp/ref" --no-plot -q -t 1
"$PB" slurm "$tmp/m.lua" --array 4 --out "$tmp/r" --submit > "$tmp/submit.out" 2>&1
jid=$(sed -n 's/^submitted: array job \([0-9]*\), chart job \([0-9]*\).*/\1/p' "$tmp/submit.out")
cid=$(sed -n 's/^submitted: array job \([0-9]*\), chart job \([0-9]*\).*/\2/p' "$tmp/submit.out")
check "prunebench slurm --submit submits the array and the chart job" sh -c "test -n '$jid' -a -n '$cid' || { cat '$tmp/submit.out'; exit 1; }"
wait_job "$jid" 60 && wait_job "$cid" 30
check "the 4 array tasks and the chart job completed" sh -c \
    "test \$(scontrol show job $jid | grep -c 'JobState=COMPLETED') -eq 4 && scontrol show job $cid | grep -q 'JobState=COMPLETED' || { scontrol show job $jid; cat '$tmp'/r/slurm-m/*.out; exit 1; }"
R=$tmp/r/m
check "every cell exactly once in cells.csv, status ok" sh -c \
    "test \$(tail -n +2 '$R/cells.csv' | wc -l) -eq 18 && test \$(tail -n +2 '$R/cells.csv' | cut -d, -f2 | sort -u | wc -l) -eq 18 && test \$(grep -c ',ok,' '$R/cells.csv') -eq 18"
check "results identical to an unsharded run" same_results "$tmp/ref/m" "$R"
check "each cached model made once across the tasks" sh -c \
    "test \$(awk -F, 'NR > 1 && \$5 != \"snip\" && \$23 == 0' '$R/cells.csv' | wc -l) -eq 2 && test \$(ls '$R'/dense/*.pb | wc -l) -eq 2"
if command -v gnuplot >/dev/null 2>&1; then
    check "the chart job drew the charts" test -s "$R/plots/accuracy_vs_compression.png"
else
    n=$((n + 1)); echo "ok $n - # SKIP gnuplot not installed"
fi
check "metadata: one block per task, with its shard, host and Slurm job" sh -c \
    "for i in 0 1 2 3; do grep -q \"^shard: \$i/4 (\" '$R/metadata.txt' && grep -q \"^slurm_job: ${jid}_\$i \" '$R/metadata.txt' || exit 1; done; test \$(grep -c \"^host: $(uname -n) \" '$R/metadata.txt') -eq 4"

# ---- SIGKILL the runner of a task mid-run, resubmit the task
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
for i in 0 1; do "$PB" run "$tmp/k.lua" --shard $i/2 --dry-run --out "$tmp/k" | awk 'NR > 2 && / tiny / { print $1 }' > "$tmp/k$i.list"; done
v=0; [ $(wc -l < "$tmp/k1.list") -gt $(wc -l < "$tmp/k0.list") ] && v=1   # the larger shard is killed
mine=$(wc -l < "$tmp/k$v.list")
rows() { for h in $(cat "$tmp/k$v.list"); do test -e "$tmp/k/k/cells/$h.row" && echo "$h"; done; }
"$PB" slurm "$tmp/k.lua" --array 2 --out "$tmp/k" --submit > "$tmp/submit.out" 2>&1
kid=$(sed -n 's/^submitted: array job \([0-9]*\), chart job \([0-9]*\).*/\1/p' "$tmp/submit.out")
kcid=$(sed -n 's/^submitted: array job \([0-9]*\), chart job \([0-9]*\).*/\2/p' "$tmp/submit.out")
i=0
while [ "$(rows | wc -l)" -lt 3 ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i + 1)); done
victim=$(sed -n 's/.* pid=\([0-9]*\) .*/\1/p' "$tmp/k/k/.shard-$v-of-2.lock" 2>/dev/null)
[ -n "$victim" ] && kill -9 "$victim"
rows > "$tmp/before"
before=$(wc -l < "$tmp/before")
for h in $(cat "$tmp/before"); do md5sum "$tmp/k/k/cells/$h.row"; done > "$tmp/before.md5"
wait_job "$kid" 60 && wait_job "$kcid" 30
check "task $v's runner (pid $victim) was killed by SIGKILL mid-run: $before of its $mine cells recorded" sh -c \
    "test -n '$victim' && test $before -ge 3 -a $before -lt $mine && scontrol show job ${kid}_$v | grep -q 'JobState=FAILED'"
kept=$(rows | wc -l)
rid=$(sbatch --parsable --array=$v "$tmp/k/slurm-k/array.sbatch")
rcid=$(sbatch --parsable --dependency=afterany:$rid "$tmp/k/slurm-k/charts.sbatch")
wait_job "$rid" 60 && wait_job "$rcid" 30
check "resubmitted, the task takes over its dead runner's lock and runs only the $((mine - kept)) cells not recorded" sh -c \
    "L='$tmp/k/slurm-k/${rid}_$v.out'; grep -q 'shard $v/2: taking over from host .* which is dead' \"\$L\" && grep -q \"shard $v/2: $mine cells ($((mine - kept)) run now, $kept from earlier runs\" \"\$L\" && scontrol show job $rcid | grep -q 'JobState=COMPLETED'"
check "the cells recorded before the kill are untouched" md5sum -c --quiet "$tmp/before.md5"
"$PB" run "$tmp/k.lua" --out "$tmp/kref" --no-plot -q -t 1
check "after the resubmission: every cell once, ok, each cached model made once" sh -c \
    "test \$(tail -n +2 '$tmp/k/k/cells.csv' | wc -l) -eq 22 && test \$(tail -n +2 '$tmp/k/k/cells.csv' | cut -d, -f2 | sort -u | wc -l) -eq 22 && test \$(grep -c ',ok,' '$tmp/k/k/cells.csv') -eq 22 && test \$(awk -F, 'NR > 1 && \$23 == 0' '$tmp/k/k/cells.csv' | wc -l) -eq 2"
check "... and identical to an unsharded run" same_results "$tmp/kref/k" "$tmp/k/k"
exit $failed
