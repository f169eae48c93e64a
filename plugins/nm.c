/* nm: N:M semi-structured sparsity. In every group of m consecutive inputs of
 * each output row (the cols of pb_weights; for a conv weight the ic*kh*kw
 * values in memory order) the n weights with the highest score are kept:
 * score |w| (magnitude) or |W_ij|*||X_j||_2 (Wanda, X_j the j-th input column
 * over 128 calibration examples). Ties keep the lower index.
 *
 * When cols is not a multiple of m, the ragged last group of len < m weights
 * keeps round(n*len/m) of them, rounding halves up. Weights already pruned
 * (mask 0) stay pruned and count against their group's n. The run's sparsity
 * argument is ignored: the pattern defines it (1 - n/m), and both are logged. */
#include <prunebench/plugin_util.h>

#include <math.h>
#include <stdlib.h>

enum { ARG_N, ARG_M, ARG_SCORE };
enum { SCORE_MAGNITUDE, SCORE_WANDA };

#define CALIB_EXAMPLES 128

static const pb_param_spec params[] = {
    {.name = "n", .type = PB_PT_INT, .def = 2, .lo = 1, .hi = 1024,
     .help = "weights kept in each group"},
    {.name = "m", .type = PB_PT_INT, .def = 4, .lo = 1, .hi = 1024,
     .help = "group size: consecutive inputs of one output row"},
    {.name = "score", .type = PB_PT_CHOICE, .def = SCORE_MAGNITUDE, .lo = 0, .hi = 1,
     .choices = "magnitude|wanda",
     .help = "magnitude: |w|; wanda: |w|*||X_j||_2 over 128 calibration examples"},
    {.name = NULL},
};

typedef struct state {
    int n, m, score;
} state;

static int create(const pb_host *h, pb_ctx *c, const double *args, void **out)
{
    int n = (int)args[ARG_N], m = (int)args[ARG_M];
    if (n > m)
        return h->fail(c, "n=%d is larger than m=%d (a group of m weights cannot keep n)", n, m);
    int rc = pb_state_new(h, c, sizeof(state), out);
    if (rc != PB_PLUGIN_OK)
        return rc;
    state *st = *out;
    st->n = n;
    st->m = m;
    st->score = (int)args[ARG_SCORE];
    return PB_PLUGIN_OK;
}

/* Wanda statistics: per tensor, the sum over calibration rows of x_j^2. */
typedef struct calib {
    int nw;
    int *cols;
    double **sq;
    int bad_param, bad_cols; /* first mismatch seen (-1: none) */
} calib;

static void on_input(void *ud, int param, const float *x, int nrows, int cols)
{
    calib *cb = ud;
    if (param < 0 || param >= cb->nw || cols != cb->cols[param]) {
        if (cb->bad_param < 0) {
            cb->bad_param = param;
            cb->bad_cols = cols;
        }
        return;
    }
    double *sq = cb->sq[param];
    for (int r = 0; r < nrows; r++) {
        const float *row = x + (size_t)r * cols;
        for (int j = 0; j < cols; j++)
            sq[j] += (double)row[j] * row[j];
    }
}

static void calib_free(calib *cb)
{
    for (int i = 0; cb->sq && i < cb->nw; i++)
        free(cb->sq[i]);
    free(cb->sq);
    free(cb->cols);
}

static int wanda_norms(const pb_host *h, pb_ctx *c, calib *cb)
{
    int nw = h->nweights(c), rc;
    cb->nw = nw;
    cb->bad_param = -1;
    cb->cols = calloc((size_t)nw, sizeof *cb->cols);
    cb->sq = calloc((size_t)nw, sizeof *cb->sq);
    if (!cb->cols || !cb->sq)
        return h->fail(c, "out of memory");
    for (int i = 0; i < nw; i++) {
        pb_weights wt = {.size = sizeof wt};
        if ((rc = h->weights(c, i, &wt)) != PB_PLUGIN_OK)
            return rc;
        cb->cols[i] = wt.cols;
        if (!(cb->sq[i] = calloc((size_t)wt.cols, sizeof(double))))
            return h->fail(c, "out of memory");
    }
    if ((rc = h->calibrate(c, CALIB_EXAMPLES, on_input, cb)) != PB_PLUGIN_OK)
        return rc;
    if (cb->bad_param >= 0)
        return h->fail(c, "calibration gave tensor %d an input of %d columns, expected %d",
                       cb->bad_param, cb->bad_cols, cb->bad_param < nw ? cb->cols[cb->bad_param] : -1);
    for (int i = 0; i < nw; i++)
        for (int j = 0; j < cb->cols[i]; j++)
            cb->sq[i][j] = sqrt(cb->sq[i][j]);
    return PB_PLUGIN_OK;
}

/* Keeps the top `keep` scores of one group w[0..len-1] (unpruned only). */
static size_t keep_group(const float *w, float *mask, const double *norm, int len, int keep,
                         int *idx)
{
    int ncand = 0;
    for (int j = 0; j < len; j++)
        if (mask[j] != 0.0f)
            idx[ncand++] = j;
    if (keep >= ncand)
        return (size_t)ncand;
    /* partial selection sort: the first `keep` of idx become the winners */
    for (int r = 0; r < keep; r++) {
        int best = r;
        double bs = fabs((double)w[idx[r]]) * (norm ? norm[idx[r]] : 1.0);
        for (int q = r + 1; q < ncand; q++) {
            double sc = fabs((double)w[idx[q]]) * (norm ? norm[idx[q]] : 1.0);
            if (sc > bs || (sc == bs && idx[q] < idx[best])) {
                bs = sc;
                best = q;
            }
        }
        int t = idx[r];
        idx[r] = idx[best];
        idx[best] = t;
    }
    for (int r = keep; r < ncand; r++)
        mask[idx[r]] = 0.0f;
    return (size_t)keep;
}

static int prune(void *p, const pb_host *h, pb_ctx *c, double sparsity)
{
    const state *st = p;
    int nw = h->nweights(c), rc = PB_PLUGIN_OK;
    calib cb = {0};
    if (st->score == SCORE_WANDA && (rc = wanda_norms(h, c, &cb)) != PB_PLUGIN_OK) {
        calib_free(&cb);
        return rc;
    }
    int *idx = malloc((size_t)st->m * sizeof *idx);
    if (!idx) {
        calib_free(&cb);
        return h->fail(c, "out of memory");
    }
    size_t total = 0, kept = 0;
    for (int i = 0; i < nw && rc == PB_PLUGIN_OK; i++) {
        pb_weights wt = {.size = sizeof wt};
        if ((rc = h->weights(c, i, &wt)) != PB_PLUGIN_OK)
            break;
        int ragged = wt.cols % st->m;
        for (int r = 0; r < wt.rows; r++) {
            size_t off = (size_t)r * wt.cols;
            for (int j = 0; j < wt.cols; j += st->m) {
                int len = wt.cols - j < st->m ? wt.cols - j : st->m;
                int keep = len == st->m ? st->n : (int)floor((double)st->n * len / st->m + 0.5);
                kept += keep_group(wt.w + off + j, wt.mask + off + j,
                                   cb.sq ? cb.sq[i] + j : NULL, len, keep, idx);
            }
        }
        total += wt.n;
        if (ragged)
            h->log(c, "%s has %d inputs per row, not a multiple of %d: the last %d of each row "
                      "keep %d", wt.name, wt.cols, st->m, ragged,
                   (int)floor((double)st->n * ragged / st->m + 0.5));
    }
    if (rc == PB_PLUGIN_OK) {
        h->apply_masks(c);
        h->log(c, "%d:%d pattern by %s, sparsity %.4f (pattern 1-n/m = %.4f; the requested "
                  "sparsity %g is ignored)", st->n, st->m, st->score == SCORE_WANDA ? "wanda" : "magnitude",
               total ? 1.0 - (double)kept / (double)total : 0.0, 1.0 - (double)st->n / st->m, sparsity);
    }
    free(idx);
    calib_free(&cb);
    return rc;
}

PB_PLUGIN_DEFINE(
    .name = "nm",
    .description = "N:M sparsity: keep the n highest-scoring (|w| or Wanda) of every m consecutive inputs",
    .kind = PB_KIND_SEMISTRUCTURED,
    .when = PB_WHEN_TRAINED,
    .params = params,
    .create = create,
    .destroy = pb_state_free,
    .prune = prune,
    .needs = PB_NEEDS_CALIBRATION) /* only score=wanda calibrates, but needs are per plugin, not per argument */
