/* global_magnitude: Global MP (Gupta et al. 2022). |w| is pooled over all
 * prunable layers and the s*N smallest are zeroed. With min_threshold = mt > 0
 * (the MT variant) no layer keeps fewer than M = floor(N*mt) weights: the
 * per-layer keep-counts of global MP are taken, offending layers are clamped up
 * to M (a layer with fewer than M weights is not pruned at all), the remaining
 * budget is re-spread over the other layers in proportion to their global-MP
 * counts, and this repeats until no layer violates; each layer is then pruned
 * by its own magnitude to its count. The total kept is exactly
 * round((1-s)*N) whenever the floors fit in that budget.
 *
 * Floors that do not fit (the layers' floors alone exceed the budget) would
 * keep more weights than asked and compare MT at a lower sparsity than the
 * others. By default the method refuses them, naming the largest feasible mt
 * at this sparsity; on_infeasible=denser keeps every layer at its floor
 * instead, and says so in the log and in the metric mt_feasible (0). The
 * metrics mt_floor (M) and mt_max_feasible go to the results either way.
 *
 * Weights already pruned (mask 0) stay pruned and are not counted as kept;
 * ties in |w| keep the lower index (across layers: the earlier layer). */
#include <prunebench/plugin_util.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { ARG_MT, ARG_INFEASIBLE };
enum { INFEASIBLE_REFUSE, INFEASIBLE_DENSER };

static const pb_param_spec params[] = {
    {.name = "min_threshold", .type = PB_PT_REAL, .def = 0, .lo = 0, .hi = 0.1,
     .help = "MT: every layer keeps at least floor(N*mt) weights (N = all prunable weights); 0 = off"},
    {.name = "on_infeasible", .type = PB_PT_CHOICE, .def = INFEASIBLE_REFUSE, .lo = 0, .hi = 1,
     .choices = "refuse|denser",
     .help = "floors over the budget: refuse (fail, naming the largest feasible mt) or keep them (a denser model)"},
    {.name = NULL},
};

typedef struct state {
    double mt;
    int infeasible;
} state;

static int create(const pb_host *h, pb_ctx *c, const double *args, void **out)
{
    int rc = pb_state_new(h, c, sizeof(state), out);
    if (rc != PB_PLUGIN_OK)
        return rc;
    state *st = *out;
    st->mt = args[ARG_MT];
    st->infeasible = (int)args[ARG_INFEASIBLE];
    return PB_PLUGIN_OK;
}

static int cmp_desc(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

/* Value of the k-th largest (k >= 1) of buf[0..m-1]; reorders buf. */
static float kth_largest(float *buf, size_t m, size_t k)
{
    qsort(buf, m, sizeof *buf, cmp_desc);
    return buf[k - 1];
}

/* Marks the top k of |w| among unpruned weights (ties: lower index), clears the
 * rest of the mask. buf holds at least n floats. */
static void keep_topk(const pb_weights *wt, size_t k, float *buf)
{
    size_t m = 0;
    for (size_t j = 0; j < wt->n; j++)
        if (wt->mask[j] != 0.0f)
            buf[m++] = fabsf(wt->w[j]);
    if (k >= m)
        return; /* every candidate stays */
    if (k == 0) {
        memset(wt->mask, 0, wt->n * sizeof(float));
        return;
    }
    float t = kth_largest(buf, m, k);
    size_t above = 0;
    for (size_t j = 0; j < m; j++)
        above += buf[j] > t;
    size_t ties = k - above;
    for (size_t j = 0; j < wt->n; j++) {
        if (wt->mask[j] == 0.0f)
            continue;
        float a = fabsf(wt->w[j]);
        int keep = a > t || (a == t && ties > 0);
        if (a == t && keep)
            ties--;
        wt->mask[j] = keep ? 1.0f : 0.0f;
    }
}

typedef struct layer {
    pb_weights wt;
    size_t cand;     /* unpruned weights: the most this layer can keep */
    size_t base;     /* keep-count under plain global MP */
    size_t floor;    /* MT minimum */
    size_t keep;     /* final count */
    double x;        /* real-valued share while re-spreading */
    int fixed;
} layer;

/* Re-spreads the budget K over the layers so that floor <= keep <= cand, in
 * proportion to the global-MP counts, then rounds by largest remainder so the
 * counts sum to exactly K. Returns 0 when the floors alone exceed K (every
 * layer is then at its floor). */
static int spread(layer *L, int nw, size_t K)
{
    for (;;) {
        double B = (double)K, S = 0, Scap = 0;
        int nfree = 0;
        for (int i = 0; i < nw; i++) {
            if (L[i].fixed)
                B -= (double)L[i].keep;
            else {
                S += (double)L[i].base;
                Scap += (double)L[i].cand;
                nfree++;
            }
        }
        if (nfree == 0)
            break;
        /* with nothing kept by global MP in the free layers, spread by size */
        int by_cap = S <= 0;
        double den = by_cap ? Scap : S;
        int low = 0, high = 0;
        for (int i = 0; i < nw; i++) {
            if (L[i].fixed)
                continue;
            double wgt = by_cap ? (double)L[i].cand : (double)L[i].base;
            L[i].x = den > 0 && B > 0 ? wgt * B / den : 0;
            low |= L[i].x < (double)L[i].floor;
            high |= L[i].x > (double)L[i].cand;
        }
        if (low || high) {
            /* clamp one side at a time: lower floors shrink the others' share,
             * upper caps grow it, so each pass fixes layers for good */
            for (int i = 0; i < nw; i++) {
                if (L[i].fixed)
                    continue;
                if (low && L[i].x < (double)L[i].floor) {
                    L[i].keep = L[i].floor;
                    L[i].fixed = 1;
                } else if (!low && L[i].x > (double)L[i].cand) {
                    L[i].keep = L[i].cand;
                    L[i].fixed = 1;
                }
            }
            continue;
        }
        /* largest remainder: floors first, then +1 by descending fraction */
        long R = (long)llround(B);
        for (int i = 0; i < nw; i++)
            if (!L[i].fixed) {
                L[i].keep = (size_t)floor(L[i].x);
                R -= (long)L[i].keep;
            }
        while (R > 0) {
            int best = -1;
            double bf = -1;
            for (int i = 0; i < nw; i++) {
                if (L[i].fixed || L[i].keep >= L[i].cand)
                    continue;
                double f = L[i].x - floor(L[i].x);
                if (f > bf) {
                    bf = f;
                    best = i;
                }
            }
            if (best < 0)
                break;
            L[best].keep++;
            L[best].x = floor(L[best].x); /* at most one extra per layer per pass */
            R--;
        }
        while (R < 0) { /* only from rounding noise in x */
            int best = -1;
            double bf = 2;
            for (int i = 0; i < nw; i++) {
                if (L[i].fixed || L[i].keep <= L[i].floor)
                    continue;
                double f = L[i].x - floor(L[i].x);
                if (f < bf) {
                    bf = f;
                    best = i;
                }
            }
            if (best < 0)
                break;
            L[best].keep--;
            L[best].x = floor(L[best].x) + 0.999;
            R++;
        }
        break;
    }
    size_t tot = 0;
    for (int i = 0; i < nw; i++)
        tot += L[i].keep;
    return tot <= K;
}

/* Weights the floors alone keep with a floor of M: a layer smaller than M is
 * not pruned, any other keeps min(M, its candidates). */
static size_t floors_total(const layer *L, int nw, size_t M)
{
    size_t t = 0;
    for (int i = 0; i < nw; i++)
        t += L[i].wt.n < M ? L[i].cand : (M < L[i].cand ? M : L[i].cand);
    return t;
}

/* The largest mt whose floors fit in K (floors_total is monotone in M). */
static double max_feasible_mt(const layer *L, int nw, size_t N, size_t K)
{
    size_t lo = 0, hi = N;
    while (lo < hi) {
        size_t mid = lo + (hi - lo + 1) / 2;
        if (floors_total(L, nw, mid) <= K)
            lo = mid;
        else
            hi = mid - 1;
    }
    /* M = floor(N*mt) <= lo  <=>  mt < (lo + 1) / N */
    return N ? (double)lo / (double)N : 0.0;
}

static int prune(void *p, const pb_host *h, pb_ctx *c, double sparsity)
{
    const state *st = p;
    int nw, rc;
    if ((rc = pb_need_weights(h, c, &nw)) || (rc = pb_check_sparsity(h, c, sparsity, PB_SPARSITY_TO_1)))
        return rc;
    layer *L = calloc((size_t)nw, sizeof *L);
    if (!L)
        return h->fail(c, "out of memory");
    size_t N = 0, C = 0, nmax = 0;
    for (int i = 0; i < nw; i++) {
        L[i].wt.size = sizeof L[i].wt;
        if ((rc = h->weights(c, i, &L[i].wt)) != PB_PLUGIN_OK) {
            free(L);
            return rc;
        }
        for (size_t j = 0; j < L[i].wt.n; j++)
            L[i].cand += L[i].wt.mask[j] != 0.0f;
        N += L[i].wt.n;
        C += L[i].cand;
        if (L[i].wt.n > nmax)
            nmax = L[i].wt.n;
    }
    size_t K = (size_t)llround((1.0 - sparsity) * (double)N);
    if (K > C)
        K = C;
    float *buf = malloc((C > nmax ? C : nmax) * sizeof(float) + sizeof(float));
    if (!buf) {
        free(L);
        return h->fail(c, "out of memory");
    }

    /* plain global MP: threshold t at the K-th largest |w|; ties to earlier layers */
    size_t m = 0;
    for (int i = 0; i < nw; i++)
        for (size_t j = 0; j < L[i].wt.n; j++)
            if (L[i].wt.mask[j] != 0.0f)
                buf[m++] = fabsf(L[i].wt.w[j]);
    float t = K > 0 ? kth_largest(buf, m, K) : INFINITY;
    size_t ties = K;
    for (int i = 0; i < nw; i++)
        for (size_t j = 0; j < L[i].wt.n; j++)
            if (L[i].wt.mask[j] != 0.0f && fabsf(L[i].wt.w[j]) > t) {
                L[i].base++;
                ties--;
            }
    for (int i = 0; i < nw && ties > 0; i++)
        for (size_t j = 0; j < L[i].wt.n && ties > 0; j++)
            if (L[i].wt.mask[j] != 0.0f && fabsf(L[i].wt.w[j]) == t) {
                L[i].base++;
                ties--;
            }

    size_t M = (size_t)floor((double)N * st->mt);
    int fits = 1;
    if (M > 0) {
        const double mx = max_feasible_mt(L, nw, N, K);
        if (PB_HOST_HAS(h, metric)) {
            h->metric(c, "mt_floor", (double)M);
            h->metric(c, "mt_max_feasible", mx);
            h->metric(c, "mt_feasible", floors_total(L, nw, M) <= K);
        }
        if (floors_total(L, nw, M) > K && st->infeasible == INFEASIBLE_REFUSE) {
            free(buf);
            free(L);
            return h->fail(c,
                           "min_threshold=%g is infeasible at sparsity %g: the floors (M=%zu weights per layer) "
                           "exceed the budget of %zu weights; the largest feasible min_threshold here is %.6g "
                           "(or on_infeasible=denser keeps the floors and a denser model)",
                           st->mt, sparsity, M, K, mx);
        }
        for (int i = 0; i < nw; i++) {
            if (L[i].wt.n < M) { /* too small to prune at all */
                L[i].keep = L[i].cand;
                L[i].fixed = 1;
            } else
                L[i].floor = M < L[i].cand ? M : L[i].cand;
        }
        fits = spread(L, nw, K);
    } else {
        for (int i = 0; i < nw; i++)
            L[i].keep = L[i].base;
    }

    size_t kept = 0;
    for (int i = 0; i < nw; i++) {
        keep_topk(&L[i].wt, L[i].keep, buf);
        kept += L[i].keep;
        h->log(c, "%s keeps %zu of %zu (%.4f%%; global MP %zu)", L[i].wt.name,
               L[i].keep, L[i].wt.n, L[i].wt.n ? 100.0 * (double)L[i].keep / (double)L[i].wt.n : 0.0,
               L[i].base);
    }
    h->log(c, "mt=%g M=%zu kept %zu of %zu (target %zu, sparsity %.6f)", st->mt, M,
           kept, N, K, N ? 1.0 - (double)kept / (double)N : 0.0);
    if (!fits)
        h->log(c, "warning: the MT floors (M=%zu per layer) exceed the budget of %zu "
                  "weights; every layer keeps its floor and the model is denser than asked",
               M, K);
    h->apply_masks(c);
    free(buf);
    free(L);
    return PB_PLUGIN_OK;
}

PB_PLUGIN_DEFINE(
    .name = "global_magnitude",
    .description = "Global MP: zero the s*N smallest |w| over all layers; optional MT per-layer floor",
    .kind = PB_KIND_UNSTRUCTURED,
    .when = PB_WHEN_TRAINED,
    .params = params,
    .create = create,
    .destroy = pb_state_free,
    .prune = prune)
