#!/bin/sh
# t_report: `prunebench report` on a results directory written by hand, so
# every figure it prints is known: mean ± std, Student-t intervals, paired
# tests by seed, the checklist, and its errors.
PB="${top_builddir:-.}/prunebench"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
n=0
fails=0
ok() { n=$((n + 1)); if [ "$1" -eq 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fails=$((fails + 1)); fi; }
echo "1..14"

mkdir -p "$T/e"
cat > "$T/e/cells.csv" <<'CSV'
experiment,cell,model,dataset,method,label,sparsity,seed,status,reason,test_acc,compression,speedup
e,c1,m,d,dense,dense,0,1,ok,,0.90,1,1
e,c2,m,d,dense,dense,0,2,ok,,0.91,1,1
e,c3,m,d,dense,dense,0,3,ok,,0.92,1,1
e,a1,m,d,magnitude,A,0.9,1,ok,,0.80,10,10
e,a2,m,d,magnitude,A,0.9,2,ok,,0.82,10,10
e,a3,m,d,magnitude,A,0.9,3,ok,,0.84,10,10
e,b1,m,d,random,B,0.9,1,ok,,0.70,10,10
e,b2,m,d,random,B,0.9,2,ok,,0.73,10,10
e,b3,m,d,random,B,0.9,3,ok,,0.75,10,10
e,x1,m,d,snip,C,0.9,1,ok,,0.81,10,10
e,x2,m,d,snip,C,0.9,2,ok,,0.83,10,10
e,x3,m,d,snip,C,0.9,3,ok,,0.82,10,10
e,x4,m,d,snip,C,0.9,4,failed,diverged,,,
CSV
printf 'accuracy_vs_params\n' > "$T/e/plots.list"

out=$("$PB" report "$T/e" --against A 2>&1); rc=$?
ok $rc "report runs ($(echo "$out" | head -1))"
# A: 0.80 0.82 0.84 -> 0.8200 ± 0.0200, t(0.975, 2) = 4.302653: half-width 0.0497
echo "$out" | grep -q '| m | d | A | 0.9 | 3 | 0.8200 ± 0.0200 | \[0.7703, 0.8697\] | 10 | 10 |'
ok $? "mean ± std and the 95 % Student-t interval of a point"
# B - A by seed: -0.10 -0.09 -0.09: mean -0.0933, sd 0.0058, t = -28.00
echo "$out" | grep -q '| m | d | B | 0.9 | 3 | -0.0933 ± 0.0058 | \[-0.1077, -0.0790\] | -28.00 | 0.00127 | lower, beyond noise |'
ok $? "a paired difference beyond the seed spread is called so, with t and p"
echo "$out" | grep -q '| m | d | C | 0.9 | 3 | +0.0000 ± 0.0173 | .* | 0.00 | 1 | within noise |'
ok $? "a difference within the seed spread is called within noise (the failed seed is left out)"
# dense - A by seed: 0.10 0.09 0.08
echo "$out" | grep -q '| m | d | dense | 0 | 3 | +0.0900 ± 0.0100 | \[+0.0652, +0.1148\] | 15.59 | 0.00409 | higher, beyond noise |'
ok $? "the dense baseline is paired with the method at its only point"
echo "$out" | grep -q '^- \[ \] 1 model/data pair (at least 3): m on d' &&
  echo "$out" | grep -q '^- \[ \] operating points per method: at least 1 (at least 5)' &&
  echo "$out" | grep -q '^- \[ \] theoretical speedup charted' &&
  echo "$out" | grep -q '^- \[ \] 1 of 13 cells failed or have no value (besides the 0 whose training diverged)'
ok $? "the checklist marks one pair, one operating point, no speedup chart and the failed cell"

# a cell whose training diverged (pb_train's reason) is an outcome: it counts
# as a seed of its point and as an operating point, and is not a failure
mkdir -p "$T/dv"
cat > "$T/dv/cells.csv" <<'CSV'
experiment,cell,model,dataset,method,label,sparsity,seed,status,reason,test_acc,compression,speedup
dv,c1,m,d,dense,dense,0,1,ok,,0.90,1,1
dv,c2,m,d,dense,dense,0,2,ok,,0.91,1,1
dv,c3,m,d,dense,dense,0,3,ok,,0.92,1,1
dv,h1,m,d,roast,R,0.9,1,ok,,0.80,10,10
dv,h2,m,d,roast,R,0.9,2,ok,,0.82,10,10
dv,h3,m,d,roast,R,0.9,3,failed,"training diverged: loss is nan at epoch 1, step 3 (lower the learning rate 0.05?)",,,
dv,h4,m,d,roast,R,0.99,1,failed,"training diverged: loss is nan at epoch 1, step 2 (lower the learning rate 0.05?)",,,
dv,h5,m,d,roast,R,0.99,2,failed,plugin crashed,,,
CSV
out=$("$PB" report "$T/dv")
echo "$out" | grep -q '^| m | d | R | 0.9 | 2 (+1 diverged) | 0.8100 ± 0.0141 |' &&
  echo "$out" | grep -q '^| m | d | R | 0.99 | 0 (+1 diverged) | – ± – |' &&
  echo "$out" | grep -q '^- \[ \] operating points per method: at least 2 (at least 5)' &&
  echo "$out" | grep -q '^- \[ \] seeds: at least 1 per point (at least 3; 5 at s >= 0.99; a seed whose training diverged counts: 2 did); 1 point short: m R s=0.99: 1$' &&
  echo "$out" | grep -q '^- \[ \] 1 of 8 cells failed or have no value (besides the 2 whose training diverged)'
ok $? "a diverged cell counts as a seed that ran, a crashed one does not"

# a narrowed dense model beside its full width (or a wider model of its base,
# as conv4@w0.25 in the paper scripts) is that pair's baseline, not a pair; a
# narrowed model alone on its data is a pair
mkdir -p "$T/w"
cat > "$T/w/cells.csv" <<'CSV'
experiment,cell,model,dataset,method,label,sparsity,seed,status,reason,test_acc,compression,speedup
w,c1,m,d,dense,dense,0,1,ok,,0.90,1,1
w,c2,m@w0.5,d,dense,dense,0,1,ok,,0.85,1,1
w,c3,m,d,magnitude,A,0.9,1,ok,,0.80,10,10
w,c4,q@w0.5,d,dense,dense,0,1,ok,,0.70,1,1
w,c5,q@w0.5,d,magnitude,A,0.9,1,ok,,0.60,10,10
w,c6,r,d,dare,finetuned,0,1,ok,,0.90,1,1
w,c7,r,d,dare,D,0.5,1,ok,,0.80,2,1
w,c8,q@w0.25,d,dense,dense,0,1,ok,,0.65,1,1
CSV
out=$("$PB" report "$T/w")
echo "$out" | grep -q '^- \[x\] 3 model/data pairs (at least 3): m on d, q@w0.5 on d, r on d (and narrowed dense baselines of them, not pairs: m@w0.5 on d, q@w0.25 on d)$'
ok $? "a narrowed dense baseline beside its full-width model (or a wider one: q@w0.5 beside q@w0.25) is not counted as a model/data pair"
echo "$out" | grep -q '^- \[x\] a dense baseline (or a method at sparsity 0) in 3 of 3 pairs' &&
  echo "$out" | grep -q '^- \[ \] operating points per method: at least 1 (at least 5); fewer: A (m): 1, A (q@w0.5): 1, D (r): 1$'
ok $? "a method at sparsity 0 is its pair's baseline, not a method with one operating point"

# the data axis: a data method's points are its fractions, the full data set
# its baseline; the weights are dense, so compression and speedup do not apply
mkdir -p "$T/da"
cat > "$T/da/cells.csv" <<'CSV'
experiment,cell,model,dataset,method,label,sparsity,seed,status,reason,test_acc,compression,speedup,data,data_label,fraction
da,f1,m,d,dense,dense,0,1,ok,,0.90,1,1,full,full,1
da,f2,m,d,dense,dense,0,2,ok,,0.92,1,1,full,full,1
da,r1,m,d,dense,dense,0,1,ok,,0.70,1,1,rs2,rs2 r=0.1,0.1
da,r2,m,d,dense,dense,0,2,ok,,0.74,1,1,rs2,rs2 r=0.1,0.1
da,r3,m,d,dense,dense,0,1,ok,,0.80,1,1,rs2,rs2 r=0.3,0.3
da,r4,m,d,dense,dense,0,2,ok,,0.82,1,1,rs2,rs2 r=0.3,0.3
da,s1,m,d,dense,dense,0,1,ok,,0.60,1,1,static_random,static_random r=0.1,0.1
da,s2,m,d,dense,dense,0,2,ok,,0.66,1,1,static_random,static_random r=0.1,0.1
CSV
printf 'time_to_accuracy\n' > "$T/da/plots.list"
out=$("$PB" report "$T/da")
echo "$out" | grep -q '^| m | d | rs2 | 0.1 | 2 | 0.7200 ± 0.0283 |' &&
  echo "$out" | grep -q '^| m | d | full | 1 | 2 | 0.9100 ± 0.0141 |' &&
  echo "$out" | grep -q '^- \[x\] a baseline (the full data set) in 1 of 1 pairs' &&
  echo "$out" | grep -q '^- \[ \] operating points per method: at least 1 (at least 5); fewer: rs2 (m): 2, static_random (m): 1$' &&
  echo "$out" | grep -q '^- \[x\] data axis: time to accuracy charted' && ! echo "$out" | grep -q 'compression charted'
ok $? "data-axis cells are grouped by data method and fraction, with the full data set as baseline"
"$PB" report "$T/da" --against static_random | grep -q '^| m | d | rs2 | 0.1 | 2 | +0.0900 ± 0.0141 |'
ok $? "data methods are paired by seed at the same fraction"

"$PB" report "$T/e" --latex | grep -q '0.8200 \$\\pm\$ 0.0200'
ok $? "--latex writes the same figures as a tabular"

"$PB" report "$T/nothing" 2>"$T/err"; rc=$?
[ $rc -eq 1 ] && grep -q "nothing/cells.csv" "$T/err"
ok $? "a missing directory fails naming the file ($(cat "$T/err"))"
"$PB" report "$T/e" --against Z 2>"$T/err"; rc=$?
[ $rc -eq 2 ] && grep -q "labels: dense, A, B, C" "$T/err"
ok $? "an unknown --against label is refused with the labels there are ($(cat "$T/err"))"
exit $((fails > 0))
