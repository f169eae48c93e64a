/* magnitude: layerwise magnitude pruning — in each layer zero the fraction s of
 * weights with the smallest |w| (ties: the lower index is kept). */
#include <prunebench/plugin_util.h>


static const pb_param_spec params[] = {
    {.name = NULL},
};

static int prune(void *p, const pb_host *h, pb_ctx *c, double sparsity)
{
    (void)p;
    if (!PB_HOST_HAS(h, mask_magnitude))
        return h->fail(c, "the host lacks mask_magnitude()");
    return h->mask_magnitude(c, sparsity, 1, 0);
}

PB_PLUGIN_DEFINE(
    .name = "magnitude",
    .description = "Layerwise magnitude pruning: in each layer zero the fraction s with smallest |w|",
    .kind = PB_KIND_UNSTRUCTURED,
    .when = PB_WHEN_TRAINED,
    .params = params,
    .prune = prune)
