/* magnitude: layerwise magnitude pruning — in each layer zero the fraction s of
 * weights with the smallest |w| (ties: the lower index is kept). */
#include <prunebench/plugin_util.h>

static const pb_param_spec params[] = {
    {.name = NULL},
};

static int prune(void *p, const pb_host *h, pb_ctx *c, double sparsity)
{
    (void)p;
    int rc = PB_NEED_HOST(h, c, mask_magnitude);
    return rc != PB_PLUGIN_OK ? rc : h->mask_magnitude(c, sparsity, 1, 0);
}

PB_PLUGIN_DEFINE(
    .name = "magnitude",
    .description = "Layerwise magnitude pruning: in each layer zero the fraction s with smallest |w|",
    .kind = PB_KIND_UNSTRUCTURED,
    .when = PB_WHEN_TRAINED,
    .params = params,
    .prune = prune)
