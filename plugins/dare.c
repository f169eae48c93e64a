/* dare: DARE, "Drop And REscale" (Yu et al. 2024, "Language Models are Super
 * Mario: Absorbing Abilities from Homologous Models as a Free Lunch"). With
 * delta = w_ft - w_base against the kept base model, drop each entry with
 * probability p (the target sparsity) and rescale the survivors by 1/(1 - p):
 * w = w_base + (1 - m) * delta / (1 - p). The classifier head keeps its whole
 * delta (head = 1 drops there too).
 *
 * Departures. By default (draw = exact) each tensor drops exactly
 * llround(p * n) entries, a uniformly random subset, instead of independent
 * coin flips, so the delta sparsity is exact and every cell at one p drops
 * the same amount; the rescale is then n / (n - k), which equals 1/(1 - p)
 * whenever p * n is an integer and keeps E[kept delta] = delta exactly
 * otherwise. draw = bernoulli is the paper's i.i.d. draw with 1/(1 - p).
 * Biases and normalization parameters keep their fine-tuned values (see
 * delta_common.h). */
#include "delta_common.h"

enum { ARG_DRAW, ARG_HEAD };

static const pb_param_spec params[] = {
    {.name = "draw", .type = PB_PT_CHOICE, .def = 0, .choices = "exact|bernoulli",
     .help = "exact: llround(p*n) entries per tensor, rescale n/(n-k); bernoulli: each with probability p, 1/(1-p)"},
    {.name = "head", .type = PB_PT_BOOL, .def = 0, .lo = 0, .hi = 1,
     .help = "also drop the delta of the classifier head (the last prunable tensor)"},
    {.name = NULL},
};

typedef struct state {
    int exact, head;
} state;

static int create(const pb_host *h, pb_ctx *c, const double *args, void **out)
{
    int rc;
    if ((rc = PB_NEED_HOST(h, c, reference)) || (rc = PB_NEED_HOST(h, c, metric)) ||
        (rc = pb_state_new(h, c, sizeof(state), out)))
        return rc;
    state *st = *out;
    st->exact = (int)args[ARG_DRAW] == 0;
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
        rc = delta_draw_random(h, c, &d, sparsity, st->exact);
    if (!rc) {
        delta_dare_scale(&d, sparsity, st->exact, scale);
        rc = delta_apply(h, c, &d, scale);
    }
    if (!rc)
        rc = delta_report(h, c, &d);
    free(scale);
    delta_free(&d);
    return rc;
}

PB_PLUGIN_DEFINE(
    .name = "dare",
    .description = "DARE: drop each delta w_ft - w_base with probability p, rescale the rest by 1/(1-p)",
    .kind = PB_KIND_DELTA,
    .when = PB_WHEN_TRAINED,
    .params = params,
    .create = create,
    .destroy = pb_state_free,
    .prune = prune,
    .needs = PB_NEEDS_REFERENCE,
    .reference = "base")
