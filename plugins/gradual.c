/* gradual: gradual magnitude pruning (Zhu & Gupta 2017), during training from
 * scratch. With T the training's total optimizer steps, t0 = round(start*T),
 * t_end = round(end*T) and n = floor((t_end - t0)/dt), after optimizer step t
 * (counted from 1) at t = t0 + k*dt, k = 0..n, every layer is set to sparsity
 *     s_t = s_f + (s_i - s_f) * (1 - k/n)^3        (n = 0: s_t = s_f at t0)
 * by |w| of its surviving weights; pruned weights never come back. After the
 * last step of the schedule the mask is frozen (the host keeps masked weights
 * at zero), also through any later training such as fine-tuning. If a step of
 * the schedule is skipped, the next step catches up to where it should be.
 *
 * s_f is the run's target sparsity. ABI 1.0 hands it to a plugin only through
 * prune(), so here prune() records it and prunes nothing; the host must call
 * it before training (after_step fails with a clear message otherwise). */
#include <prunebench/plugin_util.h>

#include <math.h>

enum { ARG_SI, ARG_START, ARG_END, ARG_DT, ARG_TOTAL };

static const pb_param_spec params[] = {
    {.name = "initial_sparsity", .type = PB_PT_REAL, .def = 0, .lo = 0, .hi = 0.999999,
     .help = "s_i: sparsity of each layer at the first pruning step"},
    {.name = "start", .type = PB_PT_REAL, .def = 0.1, .lo = 0, .hi = 1,
     .help = "pruning begins at this fraction of the training steps (t0)"},
    {.name = "end", .type = PB_PT_REAL, .def = 0.65, .lo = 0, .hi = 1,
     .help = "pruning ends (the mask freezes) by this fraction of the training steps"},
    {.name = "dt", .type = PB_PT_INT, .def = 100, .lo = 1, .hi = 1e9,
     .help = "pruning frequency in optimizer steps"},
    {.name = "total_steps", .type = PB_PT_INT, .def = 0, .lo = 0, .hi = 1e12,
     .help = "training steps the schedule spans; 0 = ask the host (the training's own length)"},
    {.name = NULL},
};

typedef struct state {
    double si, start, end, sf;
    long dt, total;
    int have_sf;
    int planned;     /* base, t0, n fixed at the first step of training */
    long base;       /* host step count before this training's first step */
    long t0, n;
    long last_k;     /* last schedule point applied, -1 none */
    int frozen;
} state;

static int create(const pb_host *h, pb_ctx *c, const double *args, void **out)
{
    int rc;
    if ((rc = PB_NEED_HOST(h, c, mask_magnitude)) != PB_PLUGIN_OK)
        return rc;
    if (args[ARG_END] < args[ARG_START])
        return h->fail(c, "end=%g is before start=%g", args[ARG_END], args[ARG_START]);
    if ((rc = pb_state_new(h, c, sizeof(state), out)) != PB_PLUGIN_OK)
        return rc;
    state *st = *out;
    st->si = args[ARG_SI];
    st->start = args[ARG_START];
    st->end = args[ARG_END];
    st->dt = (long)args[ARG_DT];
    st->total = (long)args[ARG_TOTAL];
    st->last_k = -1;
    return PB_PLUGIN_OK;
}

/* Records the target sparsity; the schedule prunes during training. */
static int prune(void *p, const pb_host *h, pb_ctx *c, double sparsity)
{
    state *st = p;
    int rc = pb_check_sparsity(h, c, sparsity, PB_SPARSITY_BELOW_1);
    if (rc != PB_PLUGIN_OK)
        return rc;
    if (sparsity < st->si)
        return h->fail(c, "target sparsity %g is below initial_sparsity %g", sparsity, st->si);
    st->sf = sparsity;
    st->have_sf = 1;
    return PB_PLUGIN_OK;
}

/* Fixes the schedule at the first step of training. The host counts steps
 * over all of a context's training, so the schedule counts from this one. */
static int plan(state *st, const pb_host *h, pb_ctx *c, long step)
{
    long T = st->total;
    if (T <= 0 && PB_HOST_HAS(h, total_steps))
        T = h->total_steps(c);
    if (T <= 0)
        return h->fail(c, "the number of training steps is unknown (this host has no "
                          "total_steps()); pass total_steps=N");
    if (!st->have_sf)
        return h->fail(c, "the host did not pass the target sparsity (prune() was not called "
                          "before training)");
    st->t0 = lround(st->start * (double)T);
    long tend = lround(st->end * (double)T);
    st->n = (tend - st->t0) / st->dt;
    st->base = step - 1;
    st->planned = 1;
    h->log(c, "s_i=%g -> s_f=%g over steps %ld..%ld every %ld (%ld prunings, %ld steps in all)",
           st->si, st->sf, st->t0, st->t0 + st->n * st->dt, st->dt, st->n + 1, T);
    return PB_PLUGIN_OK;
}

static int after_step(void *p, const pb_host *h, pb_ctx *c, long step)
{
    state *st = p;
    int rc;
    if (st->frozen)
        return PB_PLUGIN_OK;
    if (!st->planned && (rc = plan(st, h, c, step)) != PB_PLUGIN_OK)
        return rc;
    step -= st->base;
    if (step < st->t0)
        return PB_PLUGIN_OK;
    long k = (step - st->t0) / st->dt;
    if (k > st->n)
        k = st->n;
    if (k <= st->last_k)
        return PB_PLUGIN_OK;
    st->last_k = k;
    double s = st->sf;
    if (st->n > 0) {
        double r = 1.0 - (double)k / (double)st->n;
        s = st->sf + (st->si - st->sf) * r * r * r;
    }
    if (s > 0 && (rc = h->mask_magnitude(c, s, 1, 0)) != PB_PLUGIN_OK)
        return rc;
    if (k == st->n) {
        st->frozen = 1;
        h->log(c, "step %ld: sparsity %.4f reached, mask frozen", step, s);
    }
    return PB_PLUGIN_OK;
}

PB_PLUGIN_DEFINE(
    .name = "gradual",
    .description = "Gradual magnitude pruning (Zhu & Gupta 2017): cubic sparsity schedule during training",
    .kind = PB_KIND_UNSTRUCTURED,
    .when = PB_WHEN_TRAINING,
    .params = params,
    .create = create,
    .destroy = pb_state_free,
    .prune = prune,
    .after_step = after_step)
