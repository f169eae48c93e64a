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
#include "pt_common.h"

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

static int prune(void *p, const pb_host *h, pb_ctx *c, double sparsity)
{
    const state *st = p;
    int nw = h->nweights(c), rc = PB_PLUGIN_OK;
    double **norm = NULL;
    if (st->score == SCORE_WANDA && (rc = pt_input_norms(h, c, CALIB_EXAMPLES, &norm)) != PB_PLUGIN_OK)
        return rc;
    int *idx = malloc((size_t)st->m * sizeof *idx);
    if (!idx) {
        pt_free_rows(norm, nw);
        return h->fail(c, "out of memory");
    }
    size_t total = 0, kept = 0;
    for (int i = 0; i < nw && rc == PB_PLUGIN_OK; i++) {
        pb_weights wt = {.size = sizeof wt};
        if ((rc = h->weights(c, i, &wt)) != PB_PLUGIN_OK)
            break;
        int ragged = wt.cols % st->m;
        kept += pt_nm_tensor(wt.w, wt.mask, norm ? norm[i] : NULL, wt.rows, wt.cols, st->n, st->m, idx);
        total += wt.n;
        if (ragged)
            h->log(c, "%s has %d inputs per row, not a multiple of %d: the last %d of each row "
                      "keep %d", wt.name, wt.cols, st->m, ragged, pt_nm_keep(st->n, st->m, ragged));
    }
    if (rc == PB_PLUGIN_OK) {
        h->apply_masks(c);
        h->log(c, "%d:%d pattern by %s, sparsity %.4f (pattern 1-n/m = %.4f; the requested "
                  "sparsity %g is ignored)", st->n, st->m, st->score == SCORE_WANDA ? "wanda" : "magnitude",
               total ? 1.0 - (double)kept / (double)total : 0.0, 1.0 - (double)st->n / st->m, sparsity);
    }
    free(idx);
    pt_free_rows(norm, nw);
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
