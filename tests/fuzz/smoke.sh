#!/bin/sh
# Builds the fuzz targets with clang (libFuzzer, ASan, UBSan) and runs each
# for SECONDS from its committed seed corpus; fails on any crash, sanitizer
# report, leak, timeout or out-of-memory.
#   tests/fuzz/smoke.sh SECONDS BUILDDIR [TARGET...]
# BUILDDIR is a configured build directory (for config.h and the flags
# configure found). The targets go to BUILDDIR/tests/fuzz/bin, the corpus
# grown by the run to BUILDDIR/tests/fuzz/work/TARGET, and a crashing input to
# BUILDDIR/tests/fuzz/work/crash-TARGET-*. More libFuzzer options may be passed
# in $FUZZ_FLAGS (e.g. FUZZ_FLAGS=-runs=1000000 for a campaign).
set -eu
if [ $# -lt 2 ]; then
    echo "usage: $0 SECONDS BUILDDIR [TARGET...]" >&2
    exit 2
fi
secs=$1
build=$(cd "$2" && pwd)
shift 2
src=$(cd "$(dirname "$0")/../.." && pwd)
targets=${*:-ckpt idx cifar row lua}
CLANG=${CLANG:-$(command -v clang || command -v clang-14 || true)}
if [ -z "$CLANG" ]; then
    echo "$0: clang not found (apt-get install clang)" >&2
    exit 2
fi
[ -f "$build/config.h" ] || { echo "$0: $build is not a configured build directory" >&2; exit 2; }
# the one generated header the library includes (made by make's first step)
make -s -C "$build" pb_revision.h >/dev/null || { echo "$0: cannot make $build/pb_revision.h" >&2; exit 2; }

# The flags configure found, from the build's Makefile.
var() { sed -n "s/^$1 = //p" "$build/Makefile" | head -1; }
CFLAGS_CFG="$(var BLAS_CFLAGS) $(var LUA_CFLAGS) $(var ZLIB_CFLAGS)"
LIBS_CFG="$(var BLAS_LIBS) $(var LUA_LIBS) $(var ZLIB_LIBS) $(var LIBS) -lm"
SAN="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
# (single quotes: the generated makefile's shell keeps the string literals)
CPP="-D_GNU_SOURCE -I$src/harness -I$build -DPB_PLUGINDIR='\"/nonexistent\"' -DPB_LUADIR='\"$src/lua\"' \
-DPB_BUILD_PLUGINDIR='\"$build/plugins/.libs\"' -DPB_SRC_LUADIR='\"$src/lua\"'"

out=$build/tests/fuzz
mkdir -p "$out/obj" "$out/bin" "$out/work"
# the core library's sources, as Makefile.am lists them
srcs=$(sed -n '/^libpbcore_la_SOURCES/,/^[^	]*[^\\]$/p' "$src/Makefile.am" | tr ' \\\t' '\n\n\n' | grep '\.c$')
[ -n "$srcs" ] || { echo "$0: no library sources found in Makefile.am" >&2; exit 2; }
echo "# compiling $(echo "$srcs" | wc -l) library sources with $CLANG"
# compiled through a generated makefile: two at a time, only what changed
# (with the headers each includes, -MMD)
CC_LINE="$CLANG -std=c11 -O1 -g -MMD -Wno-psabi $SAN -fsanitize=fuzzer-no-link $CPP $CFLAGS_CFG"
GCC_LINE="${CC:-cc} -std=c11 -O1 -g -MMD -Wno-psabi $SAN $CPP $CFLAGS_CFG"
mkdir -p "$out/entry"
{
    printf 'all:'
    for f in $srcs; do printf ' %s' "obj/$(basename "$f" .c).o"; done
    printf ' entry/pb_fuzz.o\n'
    # a file clang cannot compile (GCC's __builtin_shuffle in a kernel) is
    # compiled by cc with the same sanitizers, without coverage
    for f in $srcs; do
        printf '%s: %s\n\t%s -c %s -o $@ 2>/dev/null || %s -c %s -o $@\n' "obj/$(basename "$f" .c).o" \
            "$src/$f" "$CC_LINE" "$src/$f" "$GCC_LINE" "$src/$f"
    done
    f=tests/fuzz/pb_fuzz.c
    printf '%s: %s\n\t%s -c %s -o $@\n' entry/pb_fuzz.o "$src/$f" "$CC_LINE" "$src/$f"
    printf -- '-include obj/*.d entry/*.d\n'
} >"$out/objects.mk"
make -s -C "$out" -f objects.mk -j2 all

status=0
export OPENBLAS_NUM_THREADS=1 PRUNEBENCH_THREADS=1
# the targets write each input to a scratch file: in memory if we can (7x faster)
if [ -z "${TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then export TMPDIR=/dev/shm; fi
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
for t in $targets; do
    bin="$out/bin/fuzz_$t"
    $CLANG -std=c11 -O1 -g $SAN -fsanitize=fuzzer $CPP $CFLAGS_CFG -DPB_FUZZ_TARGET="$t" \
        "$src/tests/fuzz/fuzz_main.c" "$out/entry/pb_fuzz.o" "$out"/obj/*.o $LIBS_CFG -o "$bin"
    case $t in
        cifar) maxlen=8192 ;;
        lua) maxlen=8192 ;;
        *) maxlen=4096 ;;
    esac
    mkdir -p "$out/work/$t"
    dict=""
    [ -f "$src/tests/fuzz/$t.dict" ] && dict="-dict=$src/tests/fuzz/$t.dict"
    echo "# fuzzing $t for ${secs}s"
    # shellcheck disable=SC2086
    if nice -n 10 "$bin" -max_total_time="$secs" -max_len="$maxlen" -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$out/work/crash-$t-" -print_final_stats=1 $dict ${FUZZ_FLAGS:-} \
        "$out/work/$t" "$src/tests/fuzz/corpus/$t" >"$out/work/$t.log" 2>&1; then
        echo "ok - $t: $(sed -n 's/^stat::number_of_executed_units: *//p' "$out/work/$t.log") executions, no crash"
    else
        echo "not ok - $t: the fuzzer failed (log $out/work/$t.log)"
        grep -E '^==[0-9]+==|ERROR|SUMMARY|runtime error|Test unit written' "$out/work/$t.log" | head -20 | sed 's/^/# /'
        status=1
    fi
done
exit $status
