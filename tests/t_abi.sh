#!/bin/sh
# The plugin ABI from outside the tree: a plugin compiled with the flags from
# prunebench.pc loads and runs, written against the raw ABI or with the helper
# header, and so does one compiled against the ABI 1.0 header; the loader
# refuses another ABI major, a descriptor whose name is not its file's,
# unknown needs, and needs without the hook they imply.
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
echo 1..21
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
# a plugin of ABI 1.0 (its descriptor ends at attach, its host table at mask_magnitude)
mkdir "$tmp/abi10"
check "the example plugin compiles against the saved ABI 1.0 header" \
    cc -std=c11 -Wall -Wextra -Werror -shared -fPIC -I "$src/tests/abi-1.0" -o "$tmp/abi10/rowwise.so" "$src/tests/example_plugin.c" -lm
check "an ABI 1.0 plugin loads and runs in prune on this host" sh -c \
    "'$PB' plugins rowwise --plugin-path '$tmp/abi10' | grep -q 'ABI 1.0' && '$PB' prune --method rowwise --plugin-path '$tmp/abi10' --sparsity 0.75 --model lenet300 --dataset synthetic --epochs 1 -q > '$tmp/r' && grep -q 'sparsity=0.7500' '$tmp/r'"
mkdir "$tmp/abi11"
check "the example plugin compiles against the saved ABI 1.1 header" \
    cc -std=c11 -Wall -Wextra -Werror -shared -fPIC -I "$src/tests/abi-1.1" -o "$tmp/abi11/rowwise.so" "$src/tests/example_plugin.c" -lm
check "an ABI 1.1 plugin loads and runs in prune on this host" sh -c \
    "'$PB' plugins rowwise --plugin-path '$tmp/abi11' | grep -q 'ABI 1.1' && '$PB' prune --method rowwise --plugin-path '$tmp/abi11' --sparsity 0.75 --model lenet300 --dataset synthetic --epochs 1 -q > '$tmp/r' && grep -q 'sparsity=0.7500' '$tmp/r'"
# the loader's checks of a 1.1 descriptor: tests/needs_plugin.c, one variant per directory
needs() {
    dir=$tmp/$1 file=$2; shift 2
    mkdir -p "$dir" && cc -std=c11 -Wall -Wextra -Werror -shared -fPIC $CFLAGS_PB "$@" -o "$dir/$file" "$src/tests/needs_plugin.c"
}
refused() { # file, message
    ! "$PB" prune --method "$1" --sparsity 0.5 --model lenet300 --width 0.25 --dataset synthetic --epochs 1 -q 2>"$tmp/e" >/dev/null &&
        grep -q "$2" "$tmp/e" || { cat "$tmp/e"; false; }
}
needs ok needs_plugin.so
check "a plugin that needs data selection and has a select hook loads and prunes" sh -c \
    "'$PB' prune --method '$tmp/ok/needs_plugin.so' --sparsity 0.5 --model lenet300 --width 0.25 --dataset synthetic --epochs 1 -q | grep -q 'sparsity=0.5000'"
needs misnamed other_name.so
check "a descriptor named otherwise than its file is refused naming both" \
    refused "$tmp/misnamed/other_name.so" "other_name.so: the plugin calls itself 'needs_plugin'; its file must be named needs_plugin.so"
needs unknown needs_plugin.so -DNEEDS=0x30u
check "unknown needs bits are refused, naming the bits and the host's ABI" \
    refused "$tmp/unknown/needs_plugin.so" "needs_plugin.so: plugin needs_plugin needs capabilities 0x30 that this host (ABI 1.2) does not have"
needs noselect needs_plugin.so -DNO_SELECT
check "PB_NEEDS_SELECT without a select hook is refused" \
    refused "$tmp/noselect/needs_plugin.so" "needs_plugin.so: plugin needs_plugin needs data selection but has no select hook"
# damaged files: checked against their ELF headers before dlopen (which dies
# of SIGBUS on a truncated file)
mkdir "$tmp/cut" "$tmp/text"
head -c 3000 "$tmp/rowwise.so" > "$tmp/cut/rowwise.so"
echo 'not a plugin' > "$tmp/text/rowwise.so"
check "a truncated plugin is refused naming the file" \
    refused "$tmp/cut/rowwise.so" "cut/rowwise.so: not a loadable plugin (.*truncated)"
check "a text file named .so is refused as not an ELF file" \
    refused "$tmp/text/rowwise.so" "text/rowwise.so: not a loadable plugin (not an ELF file)"
check "plugins lists the others and says it skips the truncated one" sh -c \
    "'$PB' plugins --plugin-path '$tmp/cut' > '$tmp/o' 2> '$tmp/e' && grep -q '^magnitude ' '$tmp/o' && grep -q 'skipping .*cut/rowwise.so: not a loadable plugin' '$tmp/e'"
exit $failed
