/* delta_common.h: what the delta-parameter methods (dare, darex_q,
 * delta_magnitude) share, compiled into each of them (static functions, no
 * symbol of its own).
 *
 * The delta of prunable tensor i is delta = w_ft - w_base, w_ft the current
 * (fine-tuned) weights and w_base the kept model's (host->reference). A method
 * chooses which entries of each delta to keep (keep[i][j] = 1), then the
 * weights become w = w_base + keep * delta * scale[i]. The classifier head
 * (the last prunable tensor) keeps its whole delta unless asked otherwise, as
 * in DARE. Biases and normalization parameters are not prunable tensors: the
 * ABI gives a plugin no view of them, so they keep their fine-tuned values
 * (a few hundred values against the weights' hundreds of thousands). */
#ifndef PB_DELTA_COMMON_H
#define PB_DELTA_COMMON_H

#include <prunebench/plugin_util.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct delta_set {
    int nw;
    int first_whole;   /* tensors [first_whole, nw) keep their whole delta (the head) */
    const char *ref;   /* the kept model */
    size_t *n;
    float **delta;     /* w_ft - w_base */
    float **keep;      /* 1 kept, 0 dropped */
    size_t *dropped;   /* per tensor */
} delta_set;

static inline void delta_free(delta_set *d)
{
    for (int i = 0; i < d->nw && d->delta; i++) {
        free(d->delta[i]);
        free(d->keep[i]);
    }
    free(d->delta);
    free(d->keep);
    free(d->n);
    free(d->dropped);
    memset(d, 0, sizeof *d);
}

/* Reads the deltas of every prunable tensor against the kept model `ref`;
 * prune_head 0 leaves the last tensor's delta whole. */
static inline int delta_load(const pb_host *h, pb_ctx *c, const char *ref, int prune_head, delta_set *d)
{
    int rc, nw;
    memset(d, 0, sizeof *d);
    if ((rc = PB_NEED_HOST(h, c, reference)) || (rc = pb_need_weights(h, c, &nw)))
        return rc;
    d->nw = nw;
    d->ref = ref;
    d->first_whole = prune_head ? nw : nw - 1;
    size_t cnt = (unsigned)nw;
    d->n = calloc(cnt, sizeof *d->n);
    d->delta = calloc(cnt, sizeof *d->delta);
    d->keep = calloc(cnt, sizeof *d->keep);
    d->dropped = calloc(cnt, sizeof *d->dropped);
    if (!d->n || !d->delta || !d->keep || !d->dropped) {
        delta_free(d);
        return h->fail(c, "out of memory");
    }
    for (int i = 0; i < nw; i++) {
        pb_weights t = {.size = sizeof t}, b = {.size = sizeof b};
        if ((rc = h->weights(c, i, &t)) != PB_PLUGIN_OK || (rc = h->reference(c, ref, i, &b)) != PB_PLUGIN_OK) {
            delta_free(d);
            return rc;
        }
        d->n[i] = t.n;
        d->delta[i] = malloc((t.n ? t.n : 1) * sizeof(float));
        d->keep[i] = malloc((t.n ? t.n : 1) * sizeof(float));
        if (!d->delta[i] || !d->keep[i]) {
            delta_free(d);
            return h->fail(c, "out of memory");
        }
        for (size_t j = 0; j < t.n; j++) {
            d->delta[i][j] = t.w[j] - b.w[j];
            d->keep[i][j] = 1.0f;
        }
    }
    if (d->first_whole == 0)
        h->log(c, "the model has one prunable tensor, the head, whose delta is kept whole: nothing is dropped");
    return PB_PLUGIN_OK;
}

/* A uniform double in [0, 1) from the run's seeded generator. */
static inline double delta_uniform(const pb_host *h, pb_ctx *c)
{
    return (double)(h->random(c) >> 11) * 0x1p-53;
}

/* DARE's random drop. exact: in each pruned tensor exactly llround(p * n)
 * entries, a uniformly random subset (each entry dropped with probability
 * k/n); otherwise each entry independently with probability p (Bernoulli). */
static inline int delta_draw_random(const pb_host *h, pb_ctx *c, delta_set *d, double p, int exact)
{
    for (int i = 0; i < d->first_whole; i++) {
        size_t n = d->n[i], k = 0;
        float *keep = d->keep[i];
        if (!exact) {
            for (size_t j = 0; j < n; j++) {
                int drop = delta_uniform(h, c) < p;
                keep[j] = drop ? 0.0f : 1.0f;
                k += (size_t)drop;
            }
        } else {
            k = (size_t)llround(p * (double)n);
            size_t *idx = malloc((n ? n : 1) * sizeof *idx);
            if (!idx)
                return h->fail(c, "out of memory");
            for (size_t j = 0; j < n; j++) {
                idx[j] = j;
                keep[j] = 1.0f;
            }
            /* partial Fisher-Yates: idx[0..k) is a uniform k-subset */
            for (size_t j = 0; j < k; j++) {
                size_t r = j + (size_t)(delta_uniform(h, c) * (double)(n - j));
                if (r >= n)
                    r = n - 1;
                size_t tmp = idx[j];
                idx[j] = idx[r];
                idx[r] = tmp;
                keep[idx[j]] = 0.0f;
            }
            free(idx);
        }
        d->dropped[i] = k;
    }
    return PB_PLUGIN_OK;
}

/* The magnitude control: in each pruned tensor (scope 1) or over all of them
 * (scope 0) keep the llround((1 - p) * n) largest |delta| (ties by index),
 * through the host's select_kth. */
static inline int delta_draw_magnitude(const pb_host *h, pb_ctx *c, delta_set *d, double p, int scope)
{
    int rc;
    if ((rc = PB_NEED_HOST(h, c, select_kth)))
        return rc;
    for (int g = 0; g < (scope ? d->first_whole : (d->first_whole > 0)); g++) {
        int lo = scope ? g : 0, hi = scope ? g + 1 : d->first_whole;
        size_t n = 0;
        for (int i = lo; i < hi; i++)
            n += d->n[i];
        size_t nkeep = (size_t)llround((1.0 - p) * (double)n);
        float *a = malloc((n ? n : 1) * sizeof *a);
        if (!a)
            return h->fail(c, "out of memory");
        size_t o = 0;
        for (int i = lo; i < hi; i++)
            for (size_t j = 0; j < d->n[i]; j++)
                a[o++] = fabsf(d->delta[i][j]);
        /* threshold t = the nkeep-th largest; keep every |delta| > t, then the
         * ones equal to t in index order until nkeep are kept */
        float t = nkeep > 0 ? h->select_kth(a, n, n - nkeep) : INFINITY;
        free(a);
        size_t above = 0;
        for (int i = lo; i < hi; i++)
            for (size_t j = 0; j < d->n[i]; j++)
                above += fabsf(d->delta[i][j]) > t;
        size_t ties = nkeep - above;
        for (int i = lo; i < hi; i++) {
            size_t k = 0;
            for (size_t j = 0; j < d->n[i]; j++) {
                float v = fabsf(d->delta[i][j]);
                int on = v > t || (v == t && ties > 0);
                if (v == t && on)
                    ties--;
                d->keep[i][j] = on ? 1.0f : 0.0f;
                k += (size_t)!on;
            }
            d->dropped[i] = k;
        }
    }
    return PB_PLUGIN_OK;
}

/* w = w_base + keep * delta * scale[i] for the pruned tensors (whole delta,
 * scale 1, for the others), then the host's masks are applied again. */
static inline int delta_apply(const pb_host *h, pb_ctx *c, const delta_set *d, const double *scale)
{
    int rc;
    for (int i = 0; i < d->nw; i++) {
        pb_weights t = {.size = sizeof t}, b = {.size = sizeof b};
        if ((rc = h->weights(c, i, &t)) != PB_PLUGIN_OK || (rc = h->reference(c, d->ref, i, &b)) != PB_PLUGIN_OK)
            return rc;
        float s = i < d->first_whole ? (float)scale[i] : 1.0f;
        for (size_t j = 0; j < t.n; j++)
            t.w[j] = i < d->first_whole ? b.w[j] + d->keep[i][j] * d->delta[i][j] * s : b.w[j] + d->delta[i][j];
    }
    h->apply_masks(c);
    return PB_PLUGIN_OK;
}

/* The DARE rescale of each pruned tensor: 1/(1 - p) for a Bernoulli draw;
 * n/(n - k) for an exact draw of k, which is 1/(1 - p) whenever p * n is an
 * integer and keeps the expected delta exactly otherwise. */
static inline void delta_dare_scale(const delta_set *d, double p, int exact, double *scale)
{
    for (int i = 0; i < d->first_whole; i++) {
        size_t kept = d->n[i] - d->dropped[i];
        scale[i] = !exact ? 1.0 / (1.0 - p) : kept ? (double)d->n[i] / (double)kept : 1.0;
    }
}

/* Metrics: delta_sparsity (fraction of the pruned tensors' delta entries
 * dropped), delta_l2 (||delta|| over them, before dropping) and
 * delta_abs_mean. */
static inline int delta_report(const pb_host *h, pb_ctx *c, const delta_set *d)
{
    int rc;
    if ((rc = PB_NEED_HOST(h, c, metric)))
        return rc;
    size_t n = 0, dropped = 0;
    double l2 = 0, l1 = 0;
    for (int i = 0; i < d->first_whole; i++) {
        n += d->n[i];
        dropped += d->dropped[i];
        for (size_t j = 0; j < d->n[i]; j++) {
            l2 += (double)d->delta[i][j] * d->delta[i][j];
            l1 += fabs((double)d->delta[i][j]);
        }
    }
    if ((rc = h->metric(c, "delta_sparsity", n ? (double)dropped / (double)n : 0)) ||
        (rc = h->metric(c, "delta_l2", sqrt(l2))) || (rc = h->metric(c, "delta_abs_mean", n ? l1 / (double)n : 0)))
        return rc;
    h->log(c, "dropped %zu of %zu delta entries (%.6f) in %d tensors; ||delta|| %.6g", dropped, n,
           n ? (double)dropped / (double)n : 0, d->first_whole, sqrt(l2));
    return PB_PLUGIN_OK;
}

#endif
