/* ecoflap: layer-wise sparsities from a zeroth-order estimate of global
 * importance, then Wanda inside each layer (Sung, Yoon and Bansal, "ECoFLaP:
 * Efficient Coarse-to-Fine Layer-wise Pruning for Vision-Language Models",
 * ICLR 2024).
 *
 * Coarse step: per layer l, g_l = mean over `draws` Gaussian directions z
 * (on that layer alone) of |L(theta + eps z) - L(theta - eps z)| / (2 eps),
 * L the mean cross-entropy on the run's calibration sample, forward passes
 * only. Every layer keeps at least n_l (1 - s_max), s_max = min(1, s + gap);
 * the rest of the budget llround((1 - s) N) is shared in proportion to g_l,
 * capped at n_l and redistributed until it is spent, the fractions rounded
 * by largest remainder so the total is exact. Fine step: Wanda (|W_ij| *
 * ||X_j||_2 compared within each output row) at each layer's own count.
 *
 * Departures: the paper scores layers by the norm of the zeroth-order
 * gradient estimate averaged over blocks of a transformer; a small network
 * has few layers, so each prunable tensor is its own block, and the magnitude
 * of the directional derivative is the score (as METHODS.md states). The
 * loss is taken on training examples with the calibration sample's indices
 * (a calibrate stage on the validation split gives other examples there). */
#include "pt_common.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { ARG_CALIB, ARG_EPS, ARG_GAP, ARG_DRAWS };

static const pb_param_spec params[] = {
    {.name = "calib", .type = PB_PT_INT, .def = 128, .lo = 1, .hi = 1000000,
     .help = "calibration examples (a calibrate stage's sample wins)"},
    {.name = "eps", .type = PB_PT_REAL, .def = 1e-3, .lo = 1e-8, .hi = 1, .help = "finite-difference step"},
    {.name = "gap", .type = PB_PT_REAL, .def = 0.1, .lo = 0, .hi = 1,
     .help = "s_max = s + gap: no layer is pruned beyond it"},
    {.name = "draws", .type = PB_PT_INT, .def = 4, .lo = 1, .hi = 1000,
     .help = "random directions per layer (their |derivatives| are averaged)"},
    {.name = NULL},
};

typedef struct state {
    int calib, draws;
    double eps, gap;
} state;

static int create(const pb_host *h, pb_ctx *c, const double *args, void **out)
{
    int rc;
    if ((rc = PB_NEED_HOST(h, c, example_stats)) || (rc = PB_NEED_HOST(h, c, calibration_sample)) ||
        (rc = PB_NEED_HOST(h, c, select_kth)) || (rc = pt_check_calib(h, c, (int)args[ARG_CALIB])) ||
        (rc = pb_state_new(h, c, sizeof(state), out)))
        return rc;
    state *st = *out;
    st->calib = (int)args[ARG_CALIB];
    st->eps = args[ARG_EPS];
    st->gap = args[ARG_GAP];
    st->draws = (int)args[ARG_DRAWS];
    return PB_PLUGIN_OK;
}

static double gauss(const pb_host *h, pb_ctx *c)
{
    double u1 = ((double)(h->random(c) >> 11) + 0.5) / 9007199254740992.0;
    double u2 = (double)(h->random(c) >> 11) / 9007199254740992.0;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

static int mean_loss(const pb_host *h, pb_ctx *c, const int *idx, int n, float *buf, double *out)
{
    pb_example_stats es = {.size = sizeof es, .loss = buf};
    int rc = h->example_stats(c, idx, n, &es);
    if (rc != PB_PLUGIN_OK)
        return rc;
    double s = 0;
    for (int i = 0; i < n; i++)
        s += buf[i];
    *out = s / n;
    return PB_PLUGIN_OK;
}

/* Layer budgets: keep[l] in [lo[l], n[l]], summing to K, the part above lo in
 * proportion to g (water-filling with caps), rounded by largest remainder. */
static void share_budget(int nw, const size_t *n, const size_t *lo, const double *g, size_t K, size_t *keep)
{
    double *want = calloc((size_t)nw, sizeof *want);
    int *capped = calloc((size_t)nw, sizeof *capped);
    size_t base = 0;
    for (int l = 0; l < nw; l++)
        base += lo[l];
    double rest = K > base ? (double)(K - base) : 0;
    for (int l = 0; l < nw; l++)
        want[l] = (double)lo[l];
    for (int round = 0; round <= nw && rest > 1e-9; round++) {
        double gs = 0;
        for (int l = 0; l < nw; l++)
            if (!capped[l])
                gs += g[l] > 0 ? g[l] : 0;
        int uniform = !(gs > 0);
        int free_layers = 0;
        for (int l = 0; l < nw; l++)
            free_layers += !capped[l];
        if (!free_layers)
            break;
        double spent = 0;
        for (int l = 0; l < nw; l++) {
            if (capped[l])
                continue;
            double share = rest * (uniform ? 1.0 / free_layers : (g[l] > 0 ? g[l] : 0) / gs);
            double room = (double)n[l] - want[l];
            if (share >= room) {
                share = room;
                capped[l] = 1;
            }
            want[l] += share;
            spent += share;
        }
        rest -= spent;
    }
    size_t tot = 0;
    for (int l = 0; l < nw; l++) {
        keep[l] = (size_t)floor(want[l]);
        if (keep[l] > n[l])
            keep[l] = n[l];
        tot += keep[l];
    }
    while (tot < K) { /* largest remainder first, the lower index on ties */
        int best = -1;
        double br = -1;
        for (int l = 0; l < nw; l++)
            if (keep[l] < n[l] && want[l] - floor(want[l]) > br) {
                br = want[l] - floor(want[l]);
                best = l;
            }
        if (best < 0)
            break;
        keep[best]++;
        want[best] = floor(want[best]); /* its remainder is used */
        tot++;
    }
    free(want);
    free(capped);
}

static int prune(void *p, const pb_host *h, pb_ctx *c, double sparsity)
{
    const state *st = p;
    int nw, rc;
    if ((rc = pb_need_weights(h, c, &nw)) || (rc = pb_check_sparsity(h, c, sparsity, PB_SPARSITY_TO_1)))
        return rc;
    double **norm = NULL;
    if ((rc = pt_input_norms(h, c, st->calib, &norm)) != PB_PLUGIN_OK)
        return rc;
    const int *idx;
    int ni;
    if ((rc = h->calibration_sample(c, &idx, &ni)) != PB_PLUGIN_OK) {
        pt_free_rows(norm, nw);
        return rc;
    }
    size_t *n = calloc((size_t)nw, sizeof *n), *lo = calloc((size_t)nw, sizeof *lo),
           *keep = calloc((size_t)nw, sizeof *keep);
    double *g = calloc((size_t)nw, sizeof *g);
    float *buf = malloc((size_t)ni * sizeof *buf), *save = NULL, *z = NULL;
    if (!n || !lo || !keep || !g || !buf) {
        rc = h->fail(c, "out of memory");
        goto out;
    }
    double smax = sparsity + st->gap < 1 ? sparsity + st->gap : 1;
    size_t N = 0;
    for (int l = 0; l < nw && rc == PB_PLUGIN_OK; l++) {
        pb_weights wt = {.size = sizeof wt};
        if ((rc = h->weights(c, l, &wt)) != PB_PLUGIN_OK)
            break;
        n[l] = wt.n;
        N += wt.n;
        lo[l] = (size_t)ceil((double)wt.n * (1.0 - smax) - 1e-9);
        free(save);
        free(z);
        save = malloc(wt.n * sizeof *save);
        z = malloc(wt.n * sizeof *z);
        if (!save || !z) {
            rc = h->fail(c, "out of memory");
            break;
        }
        memcpy(save, wt.w, wt.n * sizeof *save);
        double acc = 0;
        for (int d = 0; d < st->draws && rc == PB_PLUGIN_OK; d++) {
            for (size_t k = 0; k < wt.n; k++)
                z[k] = (float)gauss(h, c);
            double lp = 0, lm = 0;
            for (size_t k = 0; k < wt.n; k++)
                wt.w[k] = save[k] + (float)st->eps * z[k];
            if ((rc = mean_loss(h, c, idx, ni, buf, &lp)) != PB_PLUGIN_OK)
                break;
            for (size_t k = 0; k < wt.n; k++)
                wt.w[k] = save[k] - (float)st->eps * z[k];
            if ((rc = mean_loss(h, c, idx, ni, buf, &lm)) != PB_PLUGIN_OK)
                break;
            acc += fabs(lp - lm) / (2.0 * st->eps);
        }
        memcpy(wt.w, save, wt.n * sizeof *save);
        g[l] = acc / st->draws;
    }
    if (rc != PB_PLUGIN_OK)
        goto out;
    size_t K = (size_t)llround((1.0 - sparsity) * (double)N);
    share_budget(nw, n, lo, g, K, keep);
    for (int l = 0; l < nw && rc == PB_PLUGIN_OK; l++) {
        pb_weights wt = {.size = sizeof wt};
        if ((rc = h->weights(c, l, &wt)) != PB_PLUGIN_OK)
            break;
        float *score = malloc(wt.n * sizeof *score), *tmp = malloc((size_t)wt.cols * sizeof *tmp);
        if (!score || !tmp) {
            free(score);
            free(tmp);
            rc = h->fail(c, "out of memory");
            break;
        }
        for (size_t k = 0; k < wt.n; k++)
            score[k] = (float)(fabs((double)wt.w[k]) * norm[l][k % (size_t)wt.cols]);
        pt_keep_rows(h, score, wt.mask, wt.rows, wt.cols, keep[l], tmp);
        free(score);
        free(tmp);
        h->log(c, "%s: importance %.4g, keeps %zu of %zu (sparsity %.4f)", wt.name, g[l], keep[l], wt.n,
               1.0 - (double)keep[l] / (double)wt.n);
        if (PB_HOST_HAS(h, metric)) {
            char name[64];
            snprintf(name, sizeof name, "importance.%d", l);
            h->metric(c, name, g[l]);
        }
    }
    if (rc == PB_PLUGIN_OK)
        h->apply_masks(c);
out:
    pt_free_rows(norm, nw);
    free(n);
    free(lo);
    free(keep);
    free(g);
    free(buf);
    free(save);
    free(z);
    return rc;
}

PB_PLUGIN_DEFINE(
    .name = "ecoflap",
    .description = "ECoFLaP: layer sparsities from zeroth-order importance, then Wanda within each layer",
    .kind = PB_KIND_POSTTRAIN,
    .when = PB_WHEN_TRAINED,
    .params = params,
    .create = create,
    .destroy = pb_state_free,
    .prune = prune,
    .needs = PB_NEEDS_CALIBRATION)
