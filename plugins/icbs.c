/* icbs: iterative combinatorial brain surgeon (Rosenberg et al., "Scalable
 * iterative pruning of large language and vision models using block
 * coordinate descent", 2024). Starting from a magnitude or Wanda mask, blocks
 * of weights are re-decided on a local quadratic model of the loss: with
 * x_j = 1 for a pruned weight, delta = -w (.) x and the empirical Fisher
 * F = G^T G / n of per-example gradients at the trained weights,
 *
 *     f(x) = delta^T F delta = (1/n) sum_e (sum_j g_ej w_j x_j)^2,
 *
 * minimised over one block at a time with the number pruned in the block
 * fixed (so the sparsity stays exact) and every other weight as it is.
 *
 * Blocks: in each output row, the block/2 pruned weights with the highest
 * starting score and the block/2 kept weights with the lowest (the weights
 * nearest the row's threshold, where a combinatorial choice can matter). One
 * iteration visits every row's block once; each block is solved by simulated
 * annealing over swaps (one pruned and one kept member exchange), `sweeps`
 * times block moves from a temperature of `temp` times the mean |change| of
 * a move down to near zero, and the best state seen is accepted only if it
 * lowers f. Other blocks enter through the per-example sums sum_j g_ej w_j
 * x_j, which are updated after every accepted block, so f is the full-Fisher
 * objective, never increasing.
 *
 * Departures: the paper solves each block's QUBO with several solvers and
 * chooses blocks across a whole layer; here blocks lie within one row and
 * the solver is one annealing schedule. The per-example gradients are taken
 * once, at the trained weights; only the pool's entries and the sums are
 * stored. Weights are not updated (as in the paper). */
#include "pt_common.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { ARG_CALIB, ARG_START, ARG_BLOCK, ARG_ITERS, ARG_SWEEPS, ARG_TEMP };
enum { START_MAGNITUDE, START_WANDA };

static const pb_param_spec params[] = {
    {.name = "calib", .type = PB_PT_INT, .def = 128, .lo = 1, .hi = 1000000,
     .help = "examples for the per-example gradients (and Wanda's norms)"},
    {.name = "start", .type = PB_PT_CHOICE, .def = START_WANDA, .lo = 0, .hi = 1, .choices = "magnitude|wanda",
     .help = "the starting mask: layerwise magnitude or Wanda (per row)"},
    {.name = "block", .type = PB_PT_INT, .def = 16, .lo = 2, .hi = 4096,
     .help = "weights per block: block/2 pruned and block/2 kept of one row"},
    {.name = "iters", .type = PB_PT_INT, .def = 3, .lo = 0, .hi = 10000,
     .help = "passes over all blocks (0: the starting mask)"},
    {.name = "sweeps", .type = PB_PT_INT, .def = 20, .lo = 1, .hi = 100000,
     .help = "annealing moves per block, in units of the block size"},
    {.name = "temp", .type = PB_PT_REAL, .def = 1.0, .lo = 0, .hi = 1e6,
     .help = "starting temperature, in mean |change| of a move"},
    {.name = NULL},
};

typedef struct state {
    int calib, start, block, iters, sweeps;
    double temp;
} state;

static int create(const pb_host *h, pb_ctx *c, const double *args, void **out)
{
    int rc;
    if ((rc = PB_NEED_HOST(h, c, grad_examples)) || (rc = PB_NEED_HOST(h, c, calibration_sample)) ||
        (rc = PB_NEED_HOST(h, c, select_kth)) || (rc = pt_check_calib(h, c, (int)args[ARG_CALIB])) ||
        (rc = pb_state_new(h, c, sizeof(state), out)))
        return rc;
    state *st = *out;
    st->calib = (int)args[ARG_CALIB];
    st->start = (int)args[ARG_START];
    st->block = (int)args[ARG_BLOCK] & ~1;
    st->iters = (int)args[ARG_ITERS];
    st->sweeps = (int)args[ARG_SWEEPS];
    st->temp = args[ARG_TEMP];
    return PB_PLUGIN_OK;
}

typedef struct work {
    int nw, n;            /* tensors, examples */
    float **score, **mask;/* per tensor: starting score, working mask */
    int *rows, *cols;
    /* the blocks: block b has members [off[b], off[b+1]) of tensor bt[b] */
    int nblocks;
    int *bt, *off;
    size_t *member;       /* flat index within its tensor */
    float *u;             /* [member][example]: g_ej * w_j */
    double *a;            /* [example]: sum over pruned j of g_ej w_j */
} work;

static void work_free(work *wk)
{
    for (int i = 0; wk->score && i < wk->nw; i++)
        free(wk->score[i]);
    for (int i = 0; wk->mask && i < wk->nw; i++)
        free(wk->mask[i]);
    free(wk->score);
    free(wk->mask);
    free(wk->rows);
    free(wk->cols);
    free(wk->bt);
    free(wk->off);
    free(wk->member);
    free(wk->u);
    free(wk->a);
}

static double objective(const work *wk)
{
    double f = 0;
    for (int e = 0; e < wk->n; e++)
        f += wk->a[e] * wk->a[e];
    return f / wk->n;
}

static double unit(const pb_host *h, pb_ctx *c) { return (double)(h->random(c) >> 11) / 9007199254740992.0; }

/* Anneals block b; returns 1 if its members' mask changed. v[e] holds the
 * per-example sums (wk->a) and is updated along. */
static int solve_block(const state *st, const pb_host *h, pb_ctx *c, work *wk, int b, double *v, double *vb,
                       float *x, float *best)
{
    int lo = wk->off[b], m = wk->off[b + 1] - lo, n = wk->n;
    float *mask = wk->mask[wk->bt[b]];
    int npr = 0;
    for (int k = 0; k < m; k++) {
        x[k] = mask[wk->member[lo + k]] == 0.0f; /* 1: pruned */
        best[k] = x[k];
        npr += x[k] != 0.0f;
    }
    if (npr == 0 || npr == m)
        return 0;
    memcpy(v, wk->a, (size_t)n * sizeof *v);
    double f0 = 0;
    for (int e = 0; e < n; e++)
        f0 += v[e] * v[e];
    double f = f0, fbest = f0;
    long moves = (long)st->sweeps * m;
    /* the scale of a move's change, from a few trial moves */
    double scale = 0;
    int trials = 0;
    for (int t = 0; t < 8; t++) {
        int p = (int)(unit(h, c) * m), q = (int)(unit(h, c) * m);
        if (x[p] == x[q])
            continue;
        if (x[p] == 0.0f) {
            int t2 = p;
            p = q;
            q = t2;
        }
        const float *up = wk->u + (size_t)(lo + p) * n, *uq = wk->u + (size_t)(lo + q) * n;
        double d = 0;
        for (int e = 0; e < n; e++) {
            double nv = v[e] - up[e] + uq[e];
            d += nv * nv - v[e] * v[e];
        }
        scale += fabs(d);
        trials++;
    }
    double T0 = trials && scale > 0 ? st->temp * scale / trials : 0;
    for (long it = 0; it < moves; it++) {
        double T = T0 * (1.0 - (double)it / (double)moves);
        int p = (int)(unit(h, c) * m), q = (int)(unit(h, c) * m);
        if (p >= m || q >= m || x[p] == x[q])
            continue;
        if (x[p] == 0.0f) { /* p: the pruned one that comes back, q: the kept one that goes */
            int t2 = p;
            p = q;
            q = t2;
        }
        const float *up = wk->u + (size_t)(lo + p) * n, *uq = wk->u + (size_t)(lo + q) * n;
        double d = 0;
        for (int e = 0; e < n; e++) {
            double nv = v[e] - up[e] + uq[e];
            d += nv * nv - v[e] * v[e];
        }
        if (d <= 0 || (T > 0 && unit(h, c) < exp(-d / T))) {
            for (int e = 0; e < n; e++)
                v[e] += (double)uq[e] - up[e];
            x[p] = 0.0f;
            x[q] = 1.0f;
            f += d;
            if (f < fbest - 1e-12 * fabs(f0)) {
                fbest = f;
                memcpy(best, x, (size_t)m * sizeof *x);
            }
        }
    }
    if (!(fbest < f0))
        return 0;
    /* accept the best state: recompute the sums exactly from the change */
    memcpy(vb, wk->a, (size_t)n * sizeof *vb);
    int changed = 0;
    for (int k = 0; k < m; k++) {
        float old = mask[wk->member[lo + k]] == 0.0f;
        if (old == best[k])
            continue;
        const float *uk = wk->u + (size_t)(lo + k) * n;
        double sgn = best[k] != 0.0f ? 1.0 : -1.0;
        for (int e = 0; e < n; e++)
            vb[e] += sgn * uk[e];
        changed = 1;
    }
    double fnew = 0, fold = 0;
    for (int e = 0; e < n; e++) {
        fnew += vb[e] * vb[e];
        fold += wk->a[e] * wk->a[e];
    }
    if (!changed || !(fnew < fold)) /* rounding in the running sum: keep the old block */
        return 0;
    memcpy(wk->a, vb, (size_t)n * sizeof *vb);
    for (int k = 0; k < m; k++)
        mask[wk->member[lo + k]] = best[k] != 0.0f ? 0.0f : 1.0f;
    return 1;
}

/* Members of one row's block: block/2 pruned with the highest score and
 * block/2 kept with the lowest (ties: lower index). */
static int row_block(const float *score, const float *mask, int cols, int half, size_t base, size_t *out)
{
    int got = 0;
    for (int side = 0; side < 2; side++) {
        int want = half, taken = 0;
        /* simple repeated selection: half is small */
        char *used = calloc((size_t)cols, 1);
        if (!used)
            return -1;
        while (taken < want) {
            int pick = -1;
            for (int j = 0; j < cols; j++) {
                int pruned = mask[j] == 0.0f;
                if (used[j] || pruned != (side == 0))
                    continue;
                if (pick < 0 || (side == 0 ? score[j] > score[pick] : score[j] < score[pick]))
                    pick = j;
            }
            if (pick < 0)
                break;
            used[pick] = 1;
            out[got++] = base + (size_t)pick;
            taken++;
        }
        free(used);
    }
    return got;
}

static int prune(void *p, const pb_host *h, pb_ctx *c, double sparsity)
{
    const state *st = p;
    int nw, rc;
    if ((rc = pb_need_weights(h, c, &nw)) || (rc = pb_check_sparsity(h, c, sparsity, PB_SPARSITY_TO_1)))
        return rc;
    work wk = {0};
    wk.nw = nw;
    double **norm = NULL;
    wk.score = calloc((size_t)nw, sizeof *wk.score);
    wk.mask = calloc((size_t)nw, sizeof *wk.mask);
    wk.rows = calloc((size_t)nw, sizeof *wk.rows);
    wk.cols = calloc((size_t)nw, sizeof *wk.cols);
    if (!wk.score || !wk.mask || !wk.rows || !wk.cols) {
        work_free(&wk);
        return h->fail(c, "out of memory");
    }
    if (st->start == START_WANDA && (rc = pt_input_norms(h, c, st->calib, &norm)) != PB_PLUGIN_OK) {
        work_free(&wk);
        return rc;
    }
    /* the starting mask, in the plugin's copy (the model stays dense for the gradients) */
    size_t maxcols = 1, total_rows = 0;
    for (int i = 0; i < nw && rc == PB_PLUGIN_OK; i++) {
        pb_weights wt = {.size = sizeof wt};
        if ((rc = h->weights(c, i, &wt)) != PB_PLUGIN_OK)
            break;
        wk.rows[i] = wt.rows;
        wk.cols[i] = wt.cols;
        total_rows += (size_t)wt.rows;
        if ((size_t)wt.cols > maxcols)
            maxcols = (size_t)wt.cols;
        wk.score[i] = malloc(wt.n * sizeof(float));
        wk.mask[i] = malloc(wt.n * sizeof(float));
        float *tmp = malloc(wt.n * sizeof(float));
        if (!wk.score[i] || !wk.mask[i] || !tmp) {
            free(tmp);
            rc = h->fail(c, "out of memory");
            break;
        }
        memcpy(wk.mask[i], wt.mask, wt.n * sizeof(float));
        for (size_t k = 0; k < wt.n; k++)
            wk.score[i][k] = (float)(fabs((double)wt.w[k]) * (norm ? norm[i][k % (size_t)wt.cols] : 1.0));
        size_t K = (size_t)llround((1.0 - sparsity) * (double)wt.n);
        if (norm)
            pt_keep_rows(h, wk.score[i], wk.mask[i], wt.rows, wt.cols, K, tmp);
        else
            pt_keep_top(h, wk.score[i], wk.mask[i], (int)wt.n, (int)K, tmp); /* layerwise magnitude */
        free(tmp);
    }
    pt_free_rows(norm, nw);
    const int *idx = NULL;
    int ni = 0;
    if (rc == PB_PLUGIN_OK && (rc = h->calibration_sample(c, &idx, &ni)) == PB_PLUGIN_OK && ni > st->calib)
        ni = st->calib;
    wk.n = ni;
    /* blocks */
    int half = st->block / 2;
    if (rc == PB_PLUGIN_OK) {
        wk.bt = malloc((total_rows + 1) * sizeof *wk.bt);
        wk.off = malloc((total_rows + 1) * sizeof *wk.off);
        wk.member = malloc((total_rows * (size_t)st->block + 1) * sizeof *wk.member);
        if (!wk.bt || !wk.off || !wk.member)
            rc = h->fail(c, "out of memory");
    }
    int nm = 0;
    for (int i = 0; i < nw && rc == PB_PLUGIN_OK; i++)
        for (int r = 0; r < wk.rows[i]; r++) {
            size_t base = (size_t)r * wk.cols[i];
            int got = row_block(wk.score[i] + base, wk.mask[i] + base, wk.cols[i], half, base, wk.member + nm);
            if (got < 0) {
                rc = h->fail(c, "out of memory");
                break;
            }
            if (got < 2)
                continue;
            wk.bt[wk.nblocks] = i;
            wk.off[wk.nblocks++] = nm;
            nm += got;
        }
    if (rc == PB_PLUGIN_OK) {
        wk.off[wk.nblocks] = nm;
        wk.u = calloc((size_t)nm * ni + 1, sizeof *wk.u);
        wk.a = calloc((size_t)ni + 1, sizeof *wk.a);
        if (!wk.u || !wk.a)
            rc = h->fail(c, "out of memory");
    }
    /* per-example gradients at the trained weights */
    for (int e = 0; e < ni && rc == PB_PLUGIN_OK; e++) {
        if ((rc = h->grad_examples(c, idx + e, 1, 1.0, NULL)) != PB_PLUGIN_OK)
            break;
        double ae = 0;
        for (int i = 0; i < nw && rc == PB_PLUGIN_OK; i++) {
            pb_weights wt = {.size = sizeof wt};
            if ((rc = h->weights(c, i, &wt)) != PB_PLUGIN_OK)
                break;
            for (size_t k = 0; k < wt.n; k++)
                if (wk.mask[i][k] == 0.0f)
                    ae += (double)wt.g[k] * wt.w[k];
        }
        wk.a[e] = ae;
        pb_weights cur = {.size = sizeof cur};
        for (int b = 0; b < wk.nblocks && rc == PB_PLUGIN_OK; b++) {
            if ((b == 0 || wk.bt[b] != wk.bt[b - 1]) && (rc = h->weights(c, wk.bt[b], &cur)) != PB_PLUGIN_OK)
                break;
            for (int k = wk.off[b]; k < wk.off[b + 1]; k++)
                wk.u[(size_t)k * ni + e] = cur.g[wk.member[k]] * cur.w[wk.member[k]];
        }
    }
    double f_start = rc == PB_PLUGIN_OK ? objective(&wk) : 0, f_end = f_start;
    long accepted = 0;
    double *v = malloc(((size_t)ni + 1) * sizeof *v), *vb = malloc(((size_t)ni + 1) * sizeof *vb);
    float *x = malloc(((size_t)st->block + 1) * sizeof *x), *best = malloc(((size_t)st->block + 1) * sizeof *best);
    if (rc == PB_PLUGIN_OK && (!v || !vb || !x || !best))
        rc = h->fail(c, "out of memory");
    for (int it = 0; it < st->iters && rc == PB_PLUGIN_OK; it++) {
        long acc_it = 0;
        for (int b = 0; b < wk.nblocks; b++)
            acc_it += solve_block(st, h, c, &wk, b, v, vb, x, best);
        accepted += acc_it;
        h->log(c, "iteration %d: objective %.6g, %ld of %d blocks changed", it + 1, objective(&wk), acc_it,
               wk.nblocks);
        if (!acc_it)
            break;
    }
    free(v);
    free(vb);
    free(x);
    free(best);
    if (rc == PB_PLUGIN_OK) {
        f_end = objective(&wk);
        for (int i = 0; i < nw && rc == PB_PLUGIN_OK; i++) {
            pb_weights wt = {.size = sizeof wt};
            if ((rc = h->weights(c, i, &wt)) == PB_PLUGIN_OK)
                memcpy(wt.mask, wk.mask[i], wt.n * sizeof(float));
        }
        h->apply_masks(c);
        h->log(c, "objective %.6g from the starting mask's %.6g (%ld block changes)", f_end, f_start, accepted);
        if (PB_HOST_HAS(h, metric)) {
            h->metric(c, "objective_start", f_start);
            h->metric(c, "objective_end", f_end);
            h->metric(c, "blocks_changed", (double)accepted);
        }
    }
    work_free(&wk);
    return rc;
}

PB_PLUGIN_DEFINE(
    .name = "icbs",
    .description = "iCBS: block-wise combinatorial re-choice of a Wanda or magnitude mask on a Fisher quadratic",
    .kind = PB_KIND_POSTTRAIN,
    .when = PB_WHEN_TRAINED,
    .params = params,
    .create = create,
    .destroy = pb_state_free,
    .prune = prune,
    .needs = PB_NEEDS_CALIBRATION)
