#!/bin/sh
# The plugin ABI from outside the tree: a plugin compiled with the flags from
# prunebench.pc loads and runs, written against the raw ABI or with the helper
# header; one built for another ABI major is refused.
PB=${top_builddir:-.}/prunebench
src=${top_srcdir:-.}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n=0 failed=0
check() {
    desc=$1; shift
    n=$((n + 1))
    if "$@" >"$tmp/out" 2>&1; then echo "ok $n - $desc"; else echo "not ok $n - $desc"; sed 's/^/# /' "$tmp/out"; failed=1; fi
}
echo 1..10
# prunebench.pc as built, pointed at the source tree's headers (as if installed there)
CFLAGS_PB=$(PKG_CONFIG_PATH=${top_builddir:-.} pkg-config --define-variable=includedir="$src/harness" --cflags prunebench)
check "pkg-config finds prunebench.pc" test -n "$CFLAGS_PB"
check "an out-of-tree plugin compiles against the installed header" \
    cc -std=c11 -Wall -Wextra -Werror -shared -fPIC $CFLAGS_PB -o "$tmp/rowwise.so" "$src/tests/example_plugin.c" -lm
check "it is listed by prunebench plugins --plugin-path" sh -c "'$PB' plugins --plugin-path '$tmp' | grep -q '^rowwise '"
check "it runs in prune and every row keeps the same count" sh -c \
    "'$PB' prune --method rowwise --plugin-path '$tmp' --sparsity 0.75 --model lenet300 --dataset synthetic --epochs 1 -q > '$tmp/r' && grep -q 'sparsity=0.7500' '$tmp/r'"
check "loading by explicit path works" sh -c \
    "'$PB' prune --method '$tmp/rowwise.so' --sparsity 0.5 --model lenet300 --width 0.25 --dataset synthetic --epochs 1 -q | grep -q '^result:'"
check "a plugin written with <prunebench/plugin_util.h> compiles against the installed headers" \
    cc -std=c11 -Wall -Wextra -Werror -shared -fPIC $CFLAGS_PB -o "$tmp/noisy_magnitude.so" "$src/tests/example_util_plugin.c" -lm
check "it is listed with its parameter" sh -c \
    "'$PB' plugins noisy_magnitude --plugin-path '$tmp' | grep -q 'noise *real *default 0.1, range \\[0, 1\\]'"
check "it runs in prune and reaches the sparsity exactly" sh -c \
    "'$PB' prune --method noisy_magnitude --plugin-path '$tmp' --param noise=0.5 --sparsity 0.75 --model lenet300 --dataset synthetic --epochs 1 -q > '$tmp/r' && grep -q 'sparsity=0.7500' '$tmp/r'"
cc -std=c11 -shared -fPIC $CFLAGS_PB -o "$tmp/future.so" "$src/tests/wrong_abi_plugin.c"
check "a wrong abi_major is refused naming the file and both ABIs" sh -c \
    "! '$PB' prune --method '$tmp/future.so' --sparsity 0.5 --model lenet300 --dataset synthetic --epochs 1 2> '$tmp/e'; grep -q 'future.so: plugin ABI 2.0, host ABI 1' '$tmp/e'"
check "unknown method lists the valid ones" sh -c \
    "! '$PB' prune --method nosuch --sparsity 0.5 --model lenet300 --dataset synthetic 2> '$tmp/e'; grep -q 'valid: .*magnitude' '$tmp/e'"
exit $failed
