/* random: zero a uniformly random fraction of the prunable weights, globally or
 * in each layer — the control every comparison needs. */
#include <prunebench/plugin_util.h>

enum { ARG_SCOPE };

static const pb_param_spec params[] = {
    {.name = "scope", .type = PB_PT_CHOICE, .def = 0, .lo = 0, .hi = 1, .choices = "global|layer",
     .help = "global: the fraction s of all prunable weights; layer: the fraction s of each layer"},
    {.name = NULL},
};

typedef struct state {
    int scope;   /* mask_topk scope: 0 global, 1 per tensor */
} state;

static int create(const pb_host *h, pb_ctx *c, const double *args, void **out)
{
    int rc;
    if ((rc = PB_NEED_HOST(h, c, scores)) || (rc = pb_state_new(h, c, sizeof(state), out)))
        return rc;
    state *st = *out;
    st->scope = args[ARG_SCOPE] != 0;
    return PB_PLUGIN_OK;
}

/* 24 random bits: every value is exact in a float, so the score is uniform. */
static float uniform01(const pb_host *h, pb_ctx *c)
{
    return (float)(h->random(c) >> 40) * (1.0f / 16777216.0f);
}

static int prune(void *p, const pb_host *h, pb_ctx *c, double sparsity)
{
    const state *st = p;
    float *const *scores = h->scores(c);
    if (!scores)
        return PB_PLUGIN_FAIL;
    int nw = h->nweights(c), rc;
    for (int i = 0; i < nw; i++) {
        pb_weights wt = {.size = sizeof wt};
        if ((rc = h->weights(c, i, &wt)) != PB_PLUGIN_OK)
            return rc;
        for (size_t j = 0; j < wt.n; j++)
            scores[i][j] = uniform01(h, c);
    }
    return h->mask_topk(c, scores, sparsity, st->scope, 0);
}

PB_PLUGIN_DEFINE(
    .name = "random",
    .description = "Random pruning: zero a uniformly random fraction s of weights, globally or per layer",
    .kind = PB_KIND_UNSTRUCTURED,
    .when = PB_WHEN_TRAINED,
    .params = params,
    .create = create,
    .destroy = pb_state_free,
    .prune = prune)
