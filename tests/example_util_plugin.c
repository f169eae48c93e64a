/* noisy_magnitude: global magnitude pruning with the scores |w| jittered by a
 * relative uniform noise, written with <prunebench/plugin_util.h> (compare
 * example_plugin.c, which spells out the raw ABI). Build:
 *   cc -shared -fPIC $(pkg-config --cflags prunebench) -o noisy_magnitude.so noisy_magnitude.c -lm */
#include <math.h>
#include <prunebench/plugin_util.h>

enum { ARG_NOISE };

static const pb_param_spec params[] = {
    {.name = "noise", .type = PB_PT_REAL, .def = 0.1, .lo = 0, .hi = 1,
     .help = "score = |w| * (1 + noise * u), u uniform in [-1, 1]"},
    {.name = NULL},
};

typedef struct state {
    double noise;
} state;

static int create(const pb_host *h, pb_ctx *c, const double *args, void **out)
{
    int rc;
    if ((rc = PB_NEED_HOST(h, c, scores)) || (rc = PB_NEED_HOST(h, c, mask_topk)) ||
        (rc = pb_state_new(h, c, sizeof(state), out)))
        return rc;
    state *st = (state *)*out;
    st->noise = args[ARG_NOISE];
    return PB_PLUGIN_OK;
}

static int prune(void *p, const pb_host *h, pb_ctx *c, double sparsity)
{
    const state *st = (const state *)p;
    int nw, rc;
    if ((rc = pb_need_weights(h, c, &nw)) || (rc = pb_check_sparsity(h, c, sparsity, PB_SPARSITY_TO_1)))
        return rc;
    float *const *scores = h->scores(c);
    if (!scores)
        return PB_PLUGIN_FAIL;
    for (int i = 0; i < nw; i++) {
        pb_weights t = {.size = sizeof t};
        if ((rc = h->weights(c, i, &t)) != PB_PLUGIN_OK)
            return rc;
        for (size_t j = 0; j < t.n; j++) {
            double u = (double)(h->random(c) >> 11) * 0x1p-52 - 1.0; /* [-1, 1) */
            scores[i][j] = (float)(fabs((double)t.w[j]) * (1.0 + st->noise * u));
        }
    }
    return h->mask_topk(c, scores, sparsity, 0, 0);
}

PB_PLUGIN_DEFINE(
    .name = "noisy_magnitude",
    .description = "global magnitude pruning with the scores |w| jittered by a relative noise",
    .kind = PB_KIND_UNSTRUCTURED,
    .when = PB_WHEN_TRAINED,
    .params = params,
    .create = create,
    .destroy = pb_state_free,
    .prune = prune)
