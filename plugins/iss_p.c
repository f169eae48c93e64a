/* iss_p: ISS-P, iterative soft shrinkage by percentage, training from scratch.
 * With T the training's total optimizer steps and t the steps taken so far
 * (from 1), after every optimizer step, in each layer, the fraction pr(t) of
 * weights with the smallest |w| is multiplied by alpha. The set is recomputed
 * every step and the mask is not touched, so shrunk weights can grow back;
 * alpha = 0 is iterative hard thresholding.
 *
 * The shrink fraction ramps up with the cubic schedule of gradual pruning:
 *     pr(t) = s * (1 - (1 - t/R)^3)   for t < R,   pr(t) = s   for t >= R,
 * R = round(ramp*T) (ramp = 0: pr = s from the first step; ramp is capped at
 * kp). At t = K_p = round(kp*T) (at least step 1) the hard mask is frozen: each
 * layer keeps its top round((1-s)*n) weights by |w| (host->mask_topk, scope 1),
 * so the final sparsity is exact; later steps (fine-tuning) leave it alone.
 * In each layer k = round(pr*n) weights are shrunk; ties in |w| shrink the
 * higher index first (the host's top-k keeps the lower index).
 *
 * s is the run's target sparsity. ABI 1.0 hands it to a plugin only through
 * prune(), so here prune() records it and prunes nothing; the host must call
 * it before training (after_step fails with a clear message otherwise). */
#include <prunebench/plugin_util.h>

#include <math.h>

enum { ARG_ALPHA, ARG_KP, ARG_RAMP, ARG_TOTAL };

static const pb_param_spec params[] = {
    {.name = "alpha", .type = PB_PT_REAL, .def = 0.95, .lo = 0, .hi = 1,
     .help = "shrink factor for the smallest weights each step (0 = iterative hard thresholding)"},
    {.name = "kp", .type = PB_PT_REAL, .def = 0.8, .lo = 0, .hi = 1,
     .help = "K_p as a fraction of the training steps: the hard mask freezes there"},
    {.name = "ramp", .type = PB_PT_REAL, .def = 0.5, .lo = 0, .hi = 1,
     .help = "the shrink fraction rises from 0 to s (cubic) over this fraction of the steps (capped at kp)"},
    {.name = "total_steps", .type = PB_PT_INT, .def = 0, .lo = 0, .hi = 1e12,
     .help = "training steps the schedule spans; 0 = ask the host (the training's own length)"},
    {.name = NULL},
};

typedef struct state {
    double alpha, kp, ramp, s;
    long total;
    int have_s;
    int planned;
    long base;       /* host step count before this training's first step */
    long kstep, rstep;   /* K_p and R in steps */
    int frozen;
} state;

static int create(const pb_host *h, pb_ctx *c, const double *args, void **out)
{
    int rc;
    if ((rc = PB_NEED_HOST(h, c, mask_magnitude)) || (rc = pb_state_new(h, c, sizeof(state), out)))
        return rc;
    state *st = *out;
    st->alpha = args[ARG_ALPHA];
    st->kp = args[ARG_KP];
    st->ramp = args[ARG_RAMP] < args[ARG_KP] ? args[ARG_RAMP] : args[ARG_KP];
    st->total = (long)args[ARG_TOTAL];
    return PB_PLUGIN_OK;
}

/* Records the target sparsity; shrinking happens during training. */
static int prune(void *p, const pb_host *h, pb_ctx *c, double sparsity)
{
    state *st = p;
    int rc = pb_check_sparsity(h, c, sparsity, PB_SPARSITY_BELOW_1);
    if (rc != PB_PLUGIN_OK)
        return rc;
    st->s = sparsity;
    st->have_s = 1;
    return PB_PLUGIN_OK;
}

static void swapf(float *a, float *b)
{
    float t = *a;
    *a = *b;
    *b = t;
}

/* The k-th smallest (0-based) of a[0..n-1], n > k; reorders a. Three-way
 * partitions, so the many equal values of hard thresholding cost nothing. */
static float select_kth(float *a, size_t n, size_t k)
{
    size_t lo = 0, hi = n;
    while (hi - lo > 1) {
        float x = a[lo], y = a[lo + (hi - lo) / 2], z = a[hi - 1];
        float piv = x < y ? (y < z ? y : (x < z ? z : x)) : (x < z ? x : (y < z ? z : y));
        size_t lt = lo, i = lo, gt = hi;
        while (i < gt) {
            if (a[i] < piv)
                swapf(&a[lt++], &a[i++]);
            else if (a[i] > piv)
                swapf(&a[i], &a[--gt]);
            else
                i++;
        }
        if (k < lt)
            hi = lt;
        else if (k >= gt)
            lo = gt;
        else
            return piv;
    }
    return a[lo];
}

/* Multiplies the k smallest |w| of one tensor by alpha. */
static void shrink(float *w, size_t n, size_t k, double alpha, float *buf)
{
    if (k == 0)
        return;
    if (k >= n) {
        for (size_t j = 0; j < n; j++)
            w[j] = (float)(w[j] * alpha);
        return;
    }
    for (size_t j = 0; j < n; j++)
        buf[j] = fabsf(w[j]);
    float t = select_kth(buf, n, k - 1);
    size_t below = 0;
    for (size_t j = 0; j < n; j++)
        if (fabsf(w[j]) < t) {
            w[j] = (float)(w[j] * alpha);
            below++;
        }
    size_t ties = k - below;
    for (size_t j = n; j-- > 0 && ties > 0;)
        if (fabsf(w[j]) == t) {
            w[j] = (float)(w[j] * alpha);
            ties--;
        }
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
    if (!st->have_s)
        return h->fail(c, "the host did not pass the target sparsity (prune() was not called "
                          "before training)");
    st->kstep = lround(st->kp * (double)T);
    if (st->kstep < 1)
        st->kstep = 1;
    st->rstep = lround(st->ramp * (double)T);
    st->base = step - 1;
    st->planned = 1;
    h->log(c, "alpha=%g, shrink fraction 0 -> %g over %ld steps, hard mask at step %ld of %ld",
           st->alpha, st->s, st->rstep, st->kstep, T);
    return PB_PLUGIN_OK;
}

static int freeze(state *st, const pb_host *h, pb_ctx *c, long step)
{
    int rc = h->mask_magnitude(c, st->s, 1, 0);
    if (rc != PB_PLUGIN_OK)
        return rc;
    st->frozen = 1;
    h->log(c, "step %ld: hard mask frozen at sparsity %g", step, st->s);
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
    if (step >= st->kstep)
        return freeze(st, h, c, step);
    double pr = st->s;
    if (step < st->rstep) {
        double r = 1.0 - (double)step / (double)st->rstep;
        pr = st->s * (1.0 - r * r * r);
    }
    float *const *scratch = h->scores(c); /* shrink() selects on a copy of |w| */
    if (!scratch)
        return PB_PLUGIN_FAIL;
    int nw = h->nweights(c);
    for (int i = 0; i < nw; i++) {
        pb_weights wt = {.size = sizeof wt};
        if ((rc = h->weights(c, i, &wt)) != PB_PLUGIN_OK)
            return rc;
        shrink(wt.w, wt.n, (size_t)llround(pr * (double)wt.n), st->alpha, scratch[i]);
    }
    return PB_PLUGIN_OK;
}

PB_PLUGIN_DEFINE(
    .name = "iss_p",
    .description = "ISS-P: each step shrink the smallest-|w| fraction of every layer by alpha; hard mask at K_p",
    .kind = PB_KIND_UNSTRUCTURED,
    .when = PB_WHEN_TRAINING,
    .params = params,
    .create = create,
    .destroy = pb_state_free,
    .prune = prune,
    .after_step = after_step)
