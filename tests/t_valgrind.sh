#!/bin/sh
# t_host under valgrind: no invalid reads or writes and no definite leaks in
# the host functions (add_array past the init copy, rewind past a snapshot...).
t_host=${top_builddir:-.}/tests/t_host
if ! command -v valgrind >/dev/null 2>&1; then
    echo "1..0 # SKIP valgrind not installed"
    exit 0
fi
if [ -n "${PB_SANITIZERS:-}" ]; then
    echo "1..0 # SKIP a sanitizer build: AddressSanitizer checks these accesses instead of valgrind"
    exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo 1..1
if valgrind -q --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite "$t_host" >"$tmp/out" 2>&1 &&
    ! grep -q '^not ok' "$tmp/out"; then
    echo "ok 1 - t_host runs clean under valgrind ($(grep -c '^ok' "$tmp/out") checks passed)"
else
    echo "not ok 1 - t_host under valgrind"
    sed 's/^/# /' "$tmp/out"
    exit 1
fi
