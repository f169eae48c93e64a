/* delta_probe: a test plugin for stages and kept models. At prune time it
 * reports, as metrics, a hash of the current weights (w_hash) and, when its
 * string parameter `ref` names a kept model, a hash of that model's weights
 * (ref_hash) and the largest |w - ref| (delta_max); then prunes nothing.
 * Built with -DNEEDS_REF it declares PB_NEEDS_REFERENCE on "base". */
#include <math.h>
#include <string.h>
#include <prunebench/plugin_util.h>

static const pb_param_spec params[] = {
    {.name = "ref", .type = PB_PT_STRING, .choices = "base", .help = "kept model to compare with (empty: none)"},
    {.name = NULL},
};

static int prune(void *state, const pb_host *h, pb_ctx *c, double sparsity)
{
    (void)state, (void)sparsity;
    int rc = PB_NEED_HOST(h, c, arg_string) || PB_NEED_HOST(h, c, metric) || PB_NEED_HOST(h, c, reference) ||
             PB_NEED_HOST(h, c, hash64);
    if (rc)
        return rc;
    const char *ref = h->arg_string(c, 0);
    uint64_t hw = 0, hr = 0;
    double dmax = 0;
    for (int i = 0; i < h->nweights(c); i++) {
        pb_weights t = {.size = sizeof t}, r = {.size = sizeof r};
        if ((rc = h->weights(c, i, &t)) != PB_PLUGIN_OK)
            return rc;
        hw = h->hash64(t.w, t.n * sizeof(float), hw);
        if (ref && ref[0]) {
            if ((rc = h->reference(c, ref, i, &r)) != PB_PLUGIN_OK)
                return rc;
            hr = h->hash64(r.w, r.n * sizeof(float), hr);
            for (size_t j = 0; j < t.n; j++)
                dmax = fmax(dmax, fabs((double)t.w[j] - r.w[j]));
        }
    }
    /* 48 bits: a double holds them exactly */
    if ((rc = h->metric(c, "w_hash", (double)(hw >> 16))) != PB_PLUGIN_OK)
        return rc;
    if (ref && ref[0]) {
        if ((rc = h->metric(c, "ref_hash", (double)(hr >> 16))) != PB_PLUGIN_OK)
            return rc;
        rc = h->metric(c, "delta_max", dmax);
    }
    return rc;
}

#ifdef NEEDS_REF
PB_PLUGIN_DEFINE(.name = "delta_probe", .description = "reports hashes of the weights and of a kept model",
                 .kind = PB_KIND_DELTA, .when = PB_WHEN_TRAINED, .params = params, .prune = prune,
                 .needs = PB_NEEDS_REFERENCE, .reference = "base")
#else
PB_PLUGIN_DEFINE(.name = "delta_probe", .description = "reports hashes of the weights and of a kept model",
                 .kind = PB_KIND_DELTA, .when = PB_WHEN_TRAINED, .params = params, .prune = prune)
#endif
