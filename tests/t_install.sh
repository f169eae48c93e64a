#!/bin/sh
# make install, then the installed program with the build tree out of reach: it
# loads the installed plugins and prelude (never the build tree's), its
# revision is the one compiled in (git is not asked), the manual pages render,
# the example scripts and plugins are there and the plugin builds against the
# installed header. And the revision script: commit, new commit, dirty tree,
# a tree that is not a checkout's top level.
B=${top_builddir:-.}
S=$(cd "${top_srcdir:-.}" && pwd)
tmp=$(mktemp -d)
trap 'chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT
n=0 failed=0
check() { # check DESCRIPTION COMMAND...: passes when the command succeeds
    desc=$1; shift
    n=$((n + 1))
    if "$@" >"$tmp/check.out" 2>&1; then echo "ok $n - $desc"; else
        echo "not ok $n - $desc"; sed 's/^/# /' "$tmp/check.out" | head -20; failed=1; fi
}
skip() { n=$((n + 1)); echo "ok $n - # SKIP $1"; }
export OPENBLAS_NUM_THREADS=1
unset PRUNEBENCH_PLUGIN_PATH PRUNEBENCH_LUADIR
echo 1..16

D=$tmp/dest
check "make install DESTDIR=... succeeds" sh -c "make -C '$B' install DESTDIR='$D' >'$tmp/install.log' 2>&1 || { tail -20 '$tmp/install.log'; exit 1; }"
PB=$(find "$D" -path '*/bin/prunebench' -type f | head -1)
PLUGDIR=$(dirname "$(find "$D" -name magnitude.so | head -1)")
LUADIR=$(dirname "$(find "$D" -name prelude.lua | head -1)")
# what the installed program was told at build time its directories are
inst_plugdir=${PLUGDIR#"$D"}
inst_luadir=${LUADIR#"$D"}
abs_build=$(cd "$B" && pwd -P)
rev=$(sed -n 's/^#define PB_REVISION "\(.*\)"$/\1/p' "$B/pb_revision.h")
build=$(sed -n 's/^#define PB_BUILD "\(.*\)"$/\1/p' "$B/pb_revision.h")

# a git that leaves a mark when run, first on PATH
mkdir -p "$tmp/fakebin"
printf '#!/bin/sh\ntouch "%s/git-was-run"\necho 0123456789abcdef0123456789abcdef01234567\n' "$tmp" > "$tmp/fakebin/git"
chmod +x "$tmp/fakebin/git"
FAKEPATH=$tmp/fakebin:$PATH

check "the installed program and its plugins are there" sh -c "test -x '$PB' && test -f '$PLUGDIR/magnitude.so' && test -f '$LUADIR/prelude.lua'"
check "--version prints the revision compiled in, and git is not run" sh -c \
    "test -n '$rev' && PATH='$FAKEPATH' '$PB' --version > '$tmp/v' && grep -q 'revision $rev;' '$tmp/v' && test ! -e '$tmp/git-was-run'"
check "an installed program does not search the build tree for plugins" sh -c \
    "! '$PB' prune --method nosuch --sparsity 0.5 --model lenet300 2>'$tmp/e' && grep -q \"searched .*$inst_plugdir\" '$tmp/e' && ! grep -q '$abs_build' '$tmp/e'"
if test -d "$inst_plugdir"; then
    skip "$inst_plugdir exists on this machine: the program would load it"
else
    check "without its installed plugins, the installed program finds no method (the build tree's are not used)" sh -c \
        "'$PB' plugins > '$tmp/l' 2>&1; ! grep -q '^magnitude ' '$tmp/l' && ! '$PB' plugins magnitude >/dev/null 2>&1"
fi
check "it loads the installed plugins (through the staged plugin directory)" sh -c \
    "PRUNEBENCH_PLUGIN_PATH='$PLUGDIR' '$PB' plugins magnitude > '$tmp/m' && grep -q 'file: $PLUGDIR/magnitude.so' '$tmp/m'"
check "run --help points to the installed prelude, which make install put there" sh -c \
    "'$PB' run --help | grep -qx '  $inst_luadir/prelude.lua' && test -f '$D$inst_luadir/prelude.lua'"
cat > "$tmp/tiny.lua" <<'LUA'
experiment "tiny" {
  models = { model{ name = "tiny", dense(8), relu(), dense(10) } },
  datasets = { "synthetic" }, methods = { "dense", "magnitude" }, sparsity = { 0.5 }, seeds = { 1 },
  train = { epochs = 1, batch = 64 }, finetune = { epochs = 1 },
}
LUA
check "the installed program runs a script: the build column and metadata are the compiled ones, git is not run" sh -c \
    "cd '$tmp' && PATH='$FAKEPATH' PRUNEBENCH_PLUGIN_PATH='$PLUGDIR' PRUNEBENCH_LUADIR='$LUADIR' '$PB' run tiny.lua --out r -q --no-plot && test \$(tail -n +2 r/tiny/cells.csv | cut -d, -f31 | grep -cx '$build') -eq 2 && grep -qx 'git_revision: $rev' r/tiny/metadata.txt && test ! -e '$tmp/git-was-run'"

# manual pages
M1=$(find "$D" -path '*/man1/prunebench.1' | head -1)
M7P=$(find "$D" -path '*/man7/prunebench-plugin.7' | head -1)
M7L=$(find "$D" -path '*/man7/prunebench-lua.7' | head -1)
check "the manual pages are installed: prunebench(1), prunebench-plugin(7), prunebench-lua(7)" test -s "$M1" -a -s "$M7P" -a -s "$M7L"
render() { # render PAGE: its text, with troff's warnings on stderr
    if command -v man >/dev/null 2>&1; then MANWIDTH=80 man --warnings -l "$1"
    elif command -v nroff >/dev/null 2>&1; then nroff -man -ww "$1"
    else cat "$1"; fi
}
page_ok() { # page_ok PAGE: renders without warnings, with the usual sections
    render "$1" > "$tmp/page" 2> "$tmp/warn" && test ! -s "$tmp/warn" && grep -q '^NAME' "$tmp/page" &&
        grep -q '^SYNOPSIS' "$tmp/page" && grep -q '^DESCRIPTION' "$tmp/page" && grep -q '^SEE ALSO' "$tmp/page" ||
        { cat "$tmp/warn"; return 1; }
}
for page in "$M1" "$M7P" "$M7L"; do
    check "$(basename "$page") renders without warnings and has NAME, SYNOPSIS, DESCRIPTION, SEE ALSO" page_ok "$page"
done

# examples
EX=$(dirname "$(find "$D" -path '*/examples/quickstart.lua' | head -1)")
check "the example scripts and plugins are installed" sh -c \
    "test -f '$EX/quickstart.lua' && test -f '$EX/global_mp.lua' && test -f '$EX/example_plugin.c' && test -f '$EX/example_util_plugin.c'"
INC=$(dirname "$(dirname "$(find "$D" -path '*/prunebench/plugin.h' | head -1)")")
check "the installed example plugin builds against the installed header and the installed program loads it" sh -c \
    "mkdir '$tmp/own' && ${CC:-cc} -std=c11 -shared -fPIC -I'$INC' -o '$tmp/own/rowwise.so' '$EX/example_plugin.c' -lm && '$PB' plugins rowwise --plugin-path '$tmp/own' | grep -q 'file: $tmp/own/rowwise.so'"

# the revision script on a scratch repository
if command -v git >/dev/null 2>&1; then
    G=$tmp/repo
    mkdir -p "$G/sub"
    check "pb-revision.sh: the commit, a new commit, not dirty for rewritten results, -dirty for an edited tracked file, unknown below a checkout's top" sh -c "
        cd '$G' && git init -q . && git config user.email t@example.org && git config user.name t &&
        echo a > f && git add f && git commit -qm one &&
        r1=\$(git rev-parse HEAD) && sh '$S/build-aux/pb-revision.sh' . 9.9 | grep -qx \"#define PB_BUILD \\\"9.9+\$r1\\\"\" &&
        echo b > f && git commit -qam two && r2=\$(git rev-parse HEAD) && test \"\$r1\" != \"\$r2\" &&
        sh '$S/build-aux/pb-revision.sh' . 9.9 | grep -qx \"#define PB_REVISION \\\"\$r2\\\"\" &&
        mkdir -p benchmarks/results/x && echo r > benchmarks/results/x/cells.csv && git add benchmarks && git commit -qm res &&
        r2=\$(git rev-parse HEAD) && echo s > benchmarks/results/x/cells.csv &&
        sh '$S/build-aux/pb-revision.sh' . 9.9 | grep -qx \"#define PB_REVISION \\\"\$r2\\\"\" &&
        echo c > f && sh '$S/build-aux/pb-revision.sh' . 9.9 | grep -qx \"#define PB_REVISION \\\"\$r2-dirty\\\"\" &&
        sh '$S/build-aux/pb-revision.sh' sub 9.9 | grep -qx '#define PB_BUILD \"9.9\"' &&
        sh '$S/build-aux/pb-revision.sh' sub 9.9 | grep -qx '#define PB_REVISION \"unknown\"'"
else
    skip "git not installed"
fi
check "make leaves pb_revision.h alone while the revision is unchanged" sh -c \
    "before=\$(ls -l --time-style=+%s.%N '$B/pb_revision.h') && make -C '$B' pb_revision.h >/dev/null 2>&1 && test \"\$before\" = \"\$(ls -l --time-style=+%s.%N '$B/pb_revision.h')\""
exit $failed
