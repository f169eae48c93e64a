#!/bin/sh
# Replays every committed fuzz input through its target's entry (the code
# tests/fuzz/smoke.sh fuzzes), built with the normal compiler: the seeds of
# tests/fuzz/corpus/TARGET must load or be refused without a crash, and the
# inputs of tests/fuzz/crashes/TARGET (each once crashed a loader, or is a
# forged file issue 17 names) must be refused with a message naming the file.
src=${top_srcdir:-.}/tests/fuzz
replay=${top_builddir:-.}/tests/fuzz_replay
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export OPENBLAS_NUM_THREADS=1
n=0
for t in ckpt idx cifar row lua; do
    for kind in corpus crashes; do
        for f in "$src/$kind/$t"/*; do
            [ -f "$f" ] && n=$((n + 1))
        done
    done
done
nckpt=0
for f in "$src/crashes/ckpt"/*; do
    [ -f "$f" ] && nckpt=$((nckpt + 1))
done
echo "1..$((n + nckpt))"
i=0
fail=0
for t in ckpt idx cifar row lua; do
    for kind in corpus crashes; do
        for f in "$src/$kind/$t"/*; do
            [ -f "$f" ] || continue
            i=$((i + 1))
            name="$kind/$t/$(basename "$f")"
            flag=""
            [ "$kind" = crashes ] && flag=--refused
            "$replay" "$t" $flag "$f" >"$tmp/out" 2>&1
            rc=$?
            msg=$(sed -n "s|^.*: \(refused: .*\)$|\1|p; s|^.*: accepted$|accepted|p" "$tmp/out" | head -1)
            if [ $rc -eq 0 ] && [ -n "$msg" ]; then
                echo "ok $i - $t $name: $msg"
            else
                echo "not ok $i - $t $name: exit $rc${msg:+, $msg}"
                sed 's/^/# /' "$tmp/out" | head -30
                fail=1
            fi
        done
    done
done
# the same forged checkpoints through the program, as a user would load them
for f in "$src/crashes/ckpt"/*; do
    [ -f "$f" ] || continue
    i=$((i + 1))
    "${top_builddir:-.}/prunebench" eval --load "$f" --dataset synthetic >"$tmp/out" 2>&1
    rc=$?
    if [ $rc -eq 1 ] && grep -q "^prunebench eval: $f: " "$tmp/out"; then
        echo "ok $i - prunebench eval --load $(basename "$f") exits 1 naming the file"
    else
        echo "not ok $i - prunebench eval --load $(basename "$f"): exit $rc"
        sed 's/^/# /' "$tmp/out" | head -10
        fail=1
    fi
done
exit $fail
