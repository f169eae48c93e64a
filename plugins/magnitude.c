/* magnitude: layerwise magnitude pruning — in each layer zero the fraction s of
 * weights with the smallest |w| (ties: the lower index is kept). */
#include <prunebench/plugin.h>

#include <math.h>

static const pb_param_spec params[] = {
    {.name = NULL},
};

static int prune(void *p, const pb_host *h, pb_ctx *c, double sparsity)
{
    (void)p;
    if (!PB_HOST_HAS(h, scores))
        return h->fail(c, "the host lacks scores()");
    float *const *scores = h->scores(c);
    if (!scores)
        return PB_PLUGIN_FAIL;
    int nw = h->nweights(c), rc;
    for (int i = 0; i < nw; i++) {
        pb_weights wt = {.size = sizeof wt};
        if ((rc = h->weights(c, i, &wt)) != PB_PLUGIN_OK)
            return rc;
        for (size_t j = 0; j < wt.n; j++)
            scores[i][j] = fabsf(wt.w[j]);
    }
    return h->mask_topk(c, scores, sparsity, 1, 0);
}

const pb_plugin *prunebench_plugin(void);

const pb_plugin *prunebench_plugin(void)
{
    static const pb_plugin desc = {
        .abi_major = PB_ABI_MAJOR,
        .abi_minor = PB_ABI_MINOR,
        .size = sizeof(pb_plugin),
        .name = "magnitude",
        .description = "Layerwise magnitude pruning: in each layer zero the fraction s with smallest |w|",
        .kind = PB_KIND_UNSTRUCTURED,
        .when = PB_WHEN_TRAINED,
        .params = params,
        .prune = prune,
    };
    return &desc;
}
