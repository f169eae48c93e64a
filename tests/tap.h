/* Minimal TAP output for prunebench's tests (read by automake's tap-driver.sh). */
#ifndef PB_TAP_H
#define PB_TAP_H

#include <stdarg.h>
#include <stdio.h>

static int tap_n, tap_failed;

static void tap_plan(int n) { printf("1..%d\n", n); }

__attribute__((format(printf, 2, 3))) static int ok(int cond, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("%sok %d - ", cond ? "" : "not ", ++tap_n);
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    fflush(stdout);
    if (!cond)
        tap_failed++;
    return cond;
}

static int tap_done(void) { return tap_failed ? 1 : 0; }

#endif
