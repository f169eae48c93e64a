/* wanda: pruning by weights and activations (Sun, Liu, Bair and Kolter, "A
 * Simple and Effective Pruning Approach for Large Language Models", ICLR 2024).
 * Score S_ij = |W_ij| * ||X_j||_2, X_j the j-th input feature of the layer
 * over the run's calibration sample (conv: every example and output position
 * of the unfolded input), compared within each output row; no weight update.
 *
 * Unstructured (n = 0): each layer keeps exactly llround((1 - s) * size)
 * weights, floor(K / rows) per row and one more in the first K % rows rows
 * (the paper prunes s of every row, which leaves a layer up to rows / 2 off
 * the target). N:M (n > 0): the n highest scores of every m consecutive inputs
 * of a row, the requested sparsity ignored; a ragged last group of len < m
 * keeps round(n * len / m). Ties keep the lower index. Weights already pruned
 * stay pruned. All tensors are scored on the dense model in one pass, as in
 * the paper (no sequential re-calibration). */
#include "pt_common.h"

#include <math.h>
#include <stdlib.h>

enum { ARG_CALIB, ARG_N, ARG_M };

static const pb_param_spec params[] = {
    {.name = "calib", .type = PB_PT_INT, .def = 128, .lo = 1, .hi = 1000000,
     .help = "calibration examples (a calibrate stage's sample wins)"},
    {.name = "n", .type = PB_PT_INT, .def = 0, .lo = 0, .hi = 1024,
     .help = "N:M: weights kept in each group (0: unstructured, at the run's sparsity)"},
    {.name = "m", .type = PB_PT_INT, .def = 4, .lo = 1, .hi = 1024, .help = "N:M: group size"},
    {.name = NULL},
};

typedef struct state {
    int calib, n, m;
} state;

static int create(const pb_host *h, pb_ctx *c, const double *args, void **out)
{
    int n = (int)args[ARG_N], m = (int)args[ARG_M], rc;
    if (n > m)
        return h->fail(c, "n=%d is larger than m=%d (a group of m weights cannot keep n)", n, m);
    if ((rc = PB_NEED_HOST(h, c, select_kth)) || (rc = pt_check_calib(h, c, (int)args[ARG_CALIB])) ||
        (rc = pb_state_new(h, c, sizeof(state), out)))
        return rc;
    state *st = *out;
    st->calib = (int)args[ARG_CALIB];
    st->n = n;
    st->m = m;
    return PB_PLUGIN_OK;
}

static int prune(void *p, const pb_host *h, pb_ctx *c, double sparsity)
{
    const state *st = p;
    int nw, rc;
    double **norm = NULL;
    if ((rc = pb_need_weights(h, c, &nw)) || (rc = pb_check_sparsity(h, c, sparsity, PB_SPARSITY_TO_1)) ||
        (rc = pt_input_norms(h, c, st->calib, &norm)))
        return rc;
    size_t total = 0, kept = 0;
    for (int i = 0; i < nw && rc == PB_PLUGIN_OK; i++) {
        pb_weights wt = {.size = sizeof wt};
        if ((rc = h->weights(c, i, &wt)) != PB_PLUGIN_OK)
            break;
        if (st->n > 0) {
            int *idx = malloc((size_t)st->m * sizeof *idx);
            if (!idx) {
                rc = h->fail(c, "out of memory");
                break;
            }
            kept += pt_nm_tensor(wt.w, wt.mask, norm[i], wt.rows, wt.cols, st->n, st->m, idx);
            free(idx);
        } else {
            float *score = malloc(wt.n * sizeof *score), *tmp = malloc((size_t)wt.cols * sizeof *tmp);
            if (!score || !tmp) {
                free(score);
                free(tmp);
                rc = h->fail(c, "out of memory");
                break;
            }
            for (size_t k = 0; k < wt.n; k++)
                score[k] = (float)(fabs((double)wt.w[k]) * norm[i][k % (size_t)wt.cols]);
            size_t K = (size_t)llround((1.0 - sparsity) * (double)wt.n);
            kept += pt_keep_rows(h, score, wt.mask, wt.rows, wt.cols, K, tmp);
            free(score);
            free(tmp);
        }
        total += wt.n;
    }
    pt_free_rows(norm, nw);
    if (rc != PB_PLUGIN_OK)
        return rc;
    h->apply_masks(c);
    if (st->n > 0)
        h->log(c, "wanda %d:%d, sparsity %.4f (the requested %g is ignored)", st->n, st->m,
               total ? 1.0 - (double)kept / (double)total : 0.0, sparsity);
    return PB_PLUGIN_OK;
}

PB_PLUGIN_DEFINE(
    .name = "wanda",
    .description = "Wanda: |W_ij|*||X_j||_2 over calibration inputs, compared per output row; unstructured or N:M",
    .kind = PB_KIND_POSTTRAIN,
    .when = PB_WHEN_TRAINED,
    .params = params,
    .create = create,
    .destroy = pb_state_free,
    .prune = prune,
    .needs = PB_NEEDS_CALIBRATION)
