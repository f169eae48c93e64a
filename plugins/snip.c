/* snip: SNIP (Lee et al. 2019), pruning at initialization by connection
 * sensitivity. One gradient of the mean loss on `examples` training examples
 * (plain logits), score |dL/dw * w|, keep the top (1-s)*N scores globally
 * over all prunable tensors.
 *
 * The paper normalises the scores by their sum; that does not change the
 * ranking and is skipped. Weights already pruned (mask 0) stay pruned. */
#include <prunebench/plugin_util.h>

#include <math.h>

enum { ARG_EXAMPLES };

static const pb_param_spec params[] = {
    {.name = "examples", .type = PB_PT_INT, .def = 128, .lo = 1, .hi = 1000000,
     .help = "training examples in the one batch the gradient is taken on"},
    {.name = NULL},
};

typedef struct state {
    int examples;
} state;

static int create(const pb_host *h, pb_ctx *c, const double *args, void **out)
{
    int rc;
    if ((rc = PB_NEED_HOST(h, c, grad)) || (rc = PB_NEED_HOST(h, c, mask_topk)) ||
        (rc = PB_NEED_HOST(h, c, scores)) || (rc = pb_state_new(h, c, sizeof(state), out)))
        return rc;
    state *st = *out;
    st->examples = (int)args[ARG_EXAMPLES];
    return PB_PLUGIN_OK;
}

static int prune(void *p, const pb_host *h, pb_ctx *c, double sparsity)
{
    const state *st = p;
    int nw, rc;
    if ((rc = pb_need_weights(h, c, &nw)) || (rc = pb_check_sparsity(h, c, sparsity, PB_SPARSITY_TO_1)))
        return rc;
    double loss = 0;
    if ((rc = h->grad(c, st->examples, 1.0, &loss)) != PB_PLUGIN_OK)
        return rc;
    float *const *scores = h->scores(c);
    if (!scores)
        return PB_PLUGIN_FAIL;
    for (int i = 0; i < nw; i++) {
        pb_weights wt = {.size = sizeof wt};
        if ((rc = h->weights(c, i, &wt)) != PB_PLUGIN_OK)
            return rc;
        for (size_t j = 0; j < wt.n; j++)
            scores[i][j] = fabsf(wt.g[j] * wt.w[j]);
    }
    h->log(c, "gradient on %d examples, loss %.4f", st->examples, loss);
    return h->mask_topk(c, scores, sparsity, 0, 0);
}

PB_PLUGIN_DEFINE(
    .name = "snip",
    .description = "SNIP at initialization: keep the top (1-s)*N of |dL/dw * w| over all layers",
    .kind = PB_KIND_UNSTRUCTURED,
    .when = PB_WHEN_INIT,
    .params = params,
    .create = create,
    .destroy = pb_state_free,
    .prune = prune)
