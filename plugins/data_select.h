/* data_select.h: what the data-selection plugins share (header-only, static
 * functions, so each plugin still exports one symbol and links nothing).
 *
 * A data plugin (kind PB_KIND_DATA) chooses the examples of every round of a
 * train stage through its select hook; a score-based one trains and scores a
 * model in attach() (the host puts the model back afterwards and counts the
 * scoring run in the cell's cost). Random draws come from host->random, which
 * the host seeds from the run's seed for the data method alone. */
#ifndef PB_DATA_SELECT_H
#define PB_DATA_SELECT_H

#include <prunebench/plugin_util.h>

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* r * N examples, rounded, at least 1 and at most N. */
static inline int ds_count(double fraction, int n_total)
{
    long k = lround(fraction * (double)n_total);
    return k < 1 ? 1 : k > n_total ? n_total : (int)k;
}

/* Uniform in [0, n): the high part of a 64x64-bit product (Lemire); the bias
 * is below n / 2^64. */
static inline int ds_below(const pb_host *h, pb_ctx *c, int n)
{
    return (int)(((unsigned __int128)h->random(c) * (unsigned)n) >> 64);
}

/* Fisher-Yates on a[0..n-1]; with k < n only the first k places are drawn
 * (partial shuffle): a[0..k-1] is then a uniform k-subset in random order. */
static inline void ds_shuffle(const pb_host *h, pb_ctx *c, int *a, int n, int k)
{
    for (int i = 0; i < k && i < n - 1; i++) {
        int j = i + ds_below(h, c, n - i);
        int t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

static inline void ds_iota(int *a, int n)
{
    for (int i = 0; i < n; i++)
        a[i] = i;
}

/* The `fraction` parameter's spec, shared by every data method that has one. */
#define DS_FRACTION_PARAM                                                                                     \
    {.name = "fraction", .type = PB_PT_REAL, .def = 0.1, .lo = 0, .hi = 1,                                 \
     .help = "r: the fraction of the training set each round trains on, in (0, 1]"}

static inline int ds_check_fraction(const pb_host *h, pb_ctx *c, double r)
{
    return r > 0 && r <= 1 ? PB_PLUGIN_OK : h->fail(c, "fraction %g is not in (0, 1]", r);
}

/* ---- ranking by score ---- */

typedef struct ds_ranked {
    float score;
    uint64_t tie;   /* random: equal scores are ordered at random, not by index */
    int index;
} ds_ranked;

static inline int ds_cmp_desc(const void *a, const void *b)
{
    const ds_ranked *x = a, *y = b;
    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    if (x->tie != y->tie)
        return x->tie < y->tie ? -1 : 1;
    return x->index - y->index;
}

/* The examples of ranks [skip, skip + k) by descending score into keep[0..k-1]
 * (ascending index order). Returns PB_PLUGIN_OK or host->fail's status. */
static inline int ds_keep_top(const pb_host *h, pb_ctx *c, const float *score, int n, int skip, int k, int *keep)
{
    if (skip < 0 || k < 1 || skip + k > n)
        return h->fail(c, "keeping %d examples after skipping the %d hardest leaves fewer than the %d there are", k,
                       skip, n);
    ds_ranked *r = malloc((size_t)n * sizeof *r);
    if (!r)
        return h->fail(c, "out of memory");
    for (int i = 0; i < n; i++)
        r[i] = (ds_ranked){score[i], h->random(c), i};
    qsort(r, (size_t)n, sizeof *r, ds_cmp_desc);
    char *sel = calloc((size_t)n, 1);
    if (!sel) {
        free(r);
        return h->fail(c, "out of memory");
    }
    for (int i = skip; i < skip + k; i++)
        sel[r[i].index] = 1;
    int m = 0;
    for (int i = 0; i < n; i++)
        if (sel[i])
            keep[m++] = i;
    free(sel);
    free(r);
    return PB_PLUGIN_OK;
}

/* ---- forgetting events (Toneva et al. 2019) ---- */

/* One check of every example's correctness: an example correct at the last
 * check and wrong now is forgotten once more; learned[i] records that it was
 * ever correct. */
static inline void ds_forget_update(const int *correct, int n, unsigned char *prev, unsigned char *learned,
                                    int *events)
{
    for (int i = 0; i < n; i++) {
        if (prev[i] && !correct[i])
            events[i]++;
        prev[i] = correct[i] != 0;
        learned[i] |= prev[i];
    }
}

/* The score to rank by: the count of forgetting events, and for an example
 * never learned more than any count possible (Toneva et al. rank those as the
 * most forgettable). */
static inline float ds_forget_score(int events, int learned, int checks)
{
    return learned ? (float)events : (float)(checks + 1);
}

/* ---- a subset fixed before training, shuffled every round ---- */

typedef struct ds_fixed {
    int *keep;     /* the subset, ascending */
    int nkeep;
    int ntotal;    /* the size of the training set it was drawn from */
} ds_fixed;

static inline int ds_fixed_select(const pb_host *h, pb_ctx *c, const ds_fixed *f, int n_total, int *idx, int *n)
{
    if (f->ntotal != n_total)
        return h->fail(c, "the subset was chosen from %d examples, the training set has %d", f->ntotal, n_total);
    memcpy(idx, f->keep, (size_t)f->nkeep * sizeof(int));
    ds_shuffle(h, c, idx, f->nkeep, f->nkeep);
    *n = f->nkeep;
    return PB_PLUGIN_OK;
}

#endif
