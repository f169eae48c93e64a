/* delta_magnitude: magnitude pruning of the delta, the baseline that the
 * DARE papers compare random dropping with (Yu et al. 2024, "Language Models
 * are Super Mario"; Deng et al. 2024, "DARE the Extreme"). With delta = w_ft - w_base against the kept base model, keep the
 * llround((1 - p) * n) entries of largest |delta| in each tensor (scope =
 * layer) or over all pruned tensors (scope = global), p the target sparsity,
 * and set the others back to the base value, without rescaling (rescale = 1
 * multiplies the kept entries by n / kept, as DARE would). The classifier head
 * keeps its whole delta unless head = 1. Ties at the threshold are broken by
 * index, so the count is exact. Biases and normalization parameters keep
 * their fine-tuned values (see delta_common.h). */
#include "delta_common.h"

enum { ARG_SCOPE, ARG_RESCALE, ARG_HEAD };

static const pb_param_spec params[] = {
    {.name = "scope", .type = PB_PT_CHOICE, .def = 0, .choices = "layer|global",
     .help = "rank |delta| within each tensor or over all pruned tensors"},
    {.name = "rescale", .type = PB_PT_BOOL, .def = 0, .lo = 0, .hi = 1,
     .help = "multiply the kept deltas by n / kept (DARE's rescale)"},
    {.name = "head", .type = PB_PT_BOOL, .def = 0, .lo = 0, .hi = 1,
     .help = "also prune the delta of the classifier head (the last prunable tensor)"},
    {.name = NULL},
};

typedef struct state {
    int scope, rescale, head;
} state;

static int create(const pb_host *h, pb_ctx *c, const double *args, void **out)
{
    int rc;
    if ((rc = PB_NEED_HOST(h, c, reference)) || (rc = PB_NEED_HOST(h, c, metric)) ||
        (rc = PB_NEED_HOST(h, c, select_kth)) || (rc = pb_state_new(h, c, sizeof(state), out)))
        return rc;
    state *st = *out;
    st->scope = (int)args[ARG_SCOPE] == 0;
    st->rescale = (int)args[ARG_RESCALE];
    st->head = (int)args[ARG_HEAD];
    return PB_PLUGIN_OK;
}

static int prune(void *p, const pb_host *h, pb_ctx *c, double sparsity)
{
    const state *st = p;
    int rc;
    if ((rc = pb_check_sparsity(h, c, sparsity, PB_SPARSITY_BELOW_1)))
        return rc;
    delta_set d;
    if ((rc = delta_load(h, c, "base", st->head, &d)))
        return rc;
    double *scale = calloc((unsigned)d.nw, sizeof *scale);
    if (!scale)
        rc = h->fail(c, "out of memory");
    if (!rc)
        rc = delta_draw_magnitude(h, c, &d, sparsity, st->scope);
    if (!rc) {
        for (int i = 0; i < d.nw; i++)
            scale[i] = 1.0;
        if (st->rescale)
            delta_dare_scale(&d, sparsity, 1, scale);
        rc = delta_apply(h, c, &d, scale);
    }
    if (!rc)
        rc = delta_report(h, c, &d);
    free(scale);
    delta_free(&d);
    return rc;
}

PB_PLUGIN_DEFINE(
    .name = "delta_magnitude",
    .description = "magnitude pruning of the delta w_ft - w_base: keep the largest |delta|, reset the rest to the base",
    .kind = PB_KIND_DELTA,
    .when = PB_WHEN_TRAINED,
    .params = params,
    .create = create,
    .destroy = pb_state_free,
    .prune = prune,
    .needs = PB_NEEDS_REFERENCE,
    .reference = "base")
