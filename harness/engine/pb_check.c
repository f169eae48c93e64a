/* pb_check: range checks for numbers and "did you mean" for names. */
#include "pb_check.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pb_util.h"

#define TWO40 1099511627776.0
#define TWO53 9007199254740992.0

/* One table for the script language and the command line, so the two agree.
 * Layer sizes are bounded where the shape arithmetic (ih + 2*pad, oc*k*k*ic)
 * stays far from int overflow. */
const pb_range pb_ranges[] = {
    /* training recipes */
    {.name = "epochs", .lo = 0, .hi = 100000, .integral = 1},
    {.name = "batch", .lo = 1, .hi = 65536, .integral = 1},
    {.name = "lr", .lo = 0, .hi = 100},
    {.name = "momentum", .lo = 0, .hi = 0.9999},
    {.name = "wd", .lo = 0, .hi = 1},
    {.name = "step_epochs", .lo = 1, .hi = 100000, .integral = 1},
    {.name = "gamma", .lo = 0, .hi = 1},
    {.name = "warmup", .lo = 0, .hi = TWO40, .integral = 1},
    {.name = "max_steps", .lo = 0, .hi = TWO40, .integral = 1},
    {.name = "seed", .lo = 0, .hi = TWO53, .integral = 1},
    {.name = "threads", .lo = 1, .hi = 256, .integral = 1},
    /* models */
    {.name = "width", .lo = 0.001, .hi = 1000},
    {.name = "hidden", .lo = 1, .hi = 1 << 20, .integral = 1},
    {.name = "dense out", .lo = 1, .hi = 1 << 20, .integral = 1},
    {.name = "input size", .lo = 1, .hi = 1 << 20, .integral = 1}, /* a data set's c, h, w, classes */
    {.name = "conv channels", .lo = 1, .hi = 1 << 16, .integral = 1},
    {.name = "conv kernel", .lo = 1, .hi = 256, .integral = 1},
    {.name = "conv stride", .lo = 1, .hi = 256, .integral = 1},
    {.name = "conv pad", .lo = 0, .hi = 256, .integral = 1},
    {.name = "pool window", .lo = 1, .hi = 256, .integral = 1},
    {.name = "pool stride", .lo = 1, .hi = 256, .integral = 1},
    {.name = "dropout", .lo = 0, .hi = 1, .hi_open = 1},
    {.name = "gpt option", .lo = 1, .hi = 65536, .integral = 1},
    /* data */
    {.name = "subset", .lo = 0, .hi = 1 << 30, .integral = 1},
    {.name = "val", .lo = 0, .hi = 1 << 30, .integral = 1},
    {.name = "ctx", .lo = 1, .hi = 4096, .integral = 1},
    {.name = "permute", .lo = 0, .hi = TWO53, .integral = 1},
    {.name = "calibration examples", .lo = 0, .hi = 1 << 30, .integral = 1},
    {.name = "class", .lo = 0, .hi = 63, .integral = 1},
    {.name = "fraction", .lo = 0, .hi = 1, .lo_open = 1},
    /* the experiment axes */
    {.name = "sparsity", .lo = 0, .hi = 1, .hi_open = 1},
    {.name = "target accuracy", .lo = 0, .hi = 1, .lo_open = 1},
    {.name = "target perplexity", .lo = 1, .hi = 1e9, .lo_open = 1},
    {.name = "budget epochs", .lo = 0, .hi = 100000, .lo_open = 1},
    {.name = "budget steps", .lo = 1, .hi = TWO40, .integral = 1},
    {.name = "budget seconds", .lo = 0, .hi = 1e7, .lo_open = 1},
    {.name = "timeout", .lo = 0, .hi = 1e9},          /* a cell's wall-clock limit, seconds (0: none) */
    {.name = NULL},
};

const pb_range *pb_range_find(const char *name)
{
    for (const pb_range *r = pb_ranges; name && r->name; r++)
        if (!strcmp(r->name, name))
            return r;
    return NULL;
}

const char *const *pb_keyset_find(const pb_keyset *sets, const char *kind)
{
    for (; kind && sets->kind; sets++)
        if (!strcmp(sets->kind, kind))
            return sets->keys;
    return NULL;
}

/* a bound or a value as a reader writes it: 65536, 0.001, 1e-300, inf */
static void fmt_value(char *buf, size_t n, double v)
{
    if (isnan(v))
        snprintf(buf, n, "nan"); /* 0/0 is -nan to printf */
    else if (isfinite(v) && v == floor(v) && fabs(v) < 1e16)
        snprintf(buf, n, "%.0f", v);
    else
        snprintf(buf, n, "%.6g", v);
}

void pb_range_describe(const pb_range *r, char *buf, size_t n)
{
    char lo[32], hi[32];
    fmt_value(lo, sizeof lo, r->lo);
    fmt_value(hi, sizeof hi, r->hi);
    snprintf(buf, n, "%s in %c%s, %s%c", r->integral ? "an integer" : "a number", r->lo_open ? '(' : '[', lo,
             hi, r->hi_open ? ')' : ']');
}

static int in_range(const pb_range *r, double v)
{
    if (!isfinite(v))
        return 0;
    if (r->integral && v != floor(v))
        return 0;
    if (r->lo_open ? !(v > r->lo) : !(v >= r->lo))
        return 0;
    return r->hi_open ? v < r->hi : v <= r->hi;
}

int pb_check_num(const pb_range *r, double v, char *err, size_t errlen)
{
    if (in_range(r, v))
        return PB_OK;
    char val[32], want[96];
    fmt_value(val, sizeof val, v);
    pb_range_describe(r, want, sizeof want);
    return pb_err(err, errlen, PB_EUSAGE, "%s is not %s", val, want);
}

int pb_check_parse(const pb_range *r, const char *text, double *out, char *err, size_t errlen)
{
    char want[96];
    pb_range_describe(r, want, sizeof want);
    char *end;
    errno = 0;
    double v;
    if (r->integral) {
        long long k = strtoll(text, &end, 10);
        v = (double)k;
        /* 1e10 or 2.5 for an integer: read as a number to say what it is */
        if (end != text && (*end == '.' || *end == 'e' || *end == 'E')) {
            errno = 0;
            v = strtod(text, &end);
        }
    } else {
        v = strtod(text, &end);
    }
    if (end == text || *end || errno == ERANGE) {
        /* an empty word, "12abc", or a number too large to read */
        return pb_err(err, errlen, PB_EUSAGE, "'%s' is not %s", text, want);
    }
    if (!in_range(r, v))
        return pb_err(err, errlen, PB_EUSAGE, "'%s' is not %s", text, want);
    *out = v;
    return PB_OK;
}

int pb_check_distance(const char *a, const char *b)
{
    enum { MAXW = 64 };
    size_t n = strlen(a), m = strlen(b);
    if (n >= MAXW || m >= MAXW)
        return (int)(n > m ? n : m);
    int d[MAXW + 1][MAXW + 1];
    for (size_t i = 0; i <= n; i++)
        d[i][0] = (int)i;
    for (size_t j = 0; j <= m; j++)
        d[0][j] = (int)j;
    for (size_t i = 1; i <= n; i++)
        for (size_t j = 1; j <= m; j++) {
            int cost = a[i - 1] != b[j - 1];
            int best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best)
                best = d[i][j - 1] + 1;
            if (d[i - 1][j - 1] + cost < best)
                best = d[i - 1][j - 1] + cost;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    return d[n][m];
}

const char *pb_check_suggest(const char *word, const char *const *names)
{
    if (!word)
        return NULL;
    /* a typo: at most 2 edits, and fewer than half the word */
    size_t len = strlen(word);
    int limit = len >= 6 ? 2 : 1;
    const char *best = NULL;
    int bestd = limit + 1;
    for (int i = 0; names[i]; i++) {
        int d = pb_check_distance(word, names[i]);
        if (d < bestd && (size_t)d * 2 < len) {
            bestd = d;
            best = names[i];
        }
    }
    return best;
}
