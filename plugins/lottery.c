/* lottery: iterative magnitude pruning with rewinding (Frankle & Carbin 2019;
 * late rewinding: Frankle et al. 2020). The plugin drives training itself.
 *
 * Schedule. Weights are saved at the start (slot 0 = initialization) and, with
 * rewind_step = k > 0, once more after the k-th optimizer step of the first
 * training (slot 1). Each round trains the masked network (`epochs`, or the
 * run's recipe), evaluates and records ("round", r), prunes each prunable
 * tensor by |w| among its surviving weights, and resets the survivors to the
 * rewind point. A final training at the last mask is recorded as round R; the
 * host measures the model after run() returns.
 *
 * Per-round rates: p = `rate` for dense tensors, `rate_conv` for conv tensors,
 * `rate_output` for the last prunable tensor (the output layer); a round keeps
 * ceil((1-p)*surviving) weights of a tensor. With rounds = 0 the number of
 * rounds R is the smallest for which these rates bring the global kept
 * fraction to at most 1-s, and the last round prunes exactly to the target:
 * its per-tensor keep fractions are (1-p)^mu with one mu in (0, 1] chosen so
 * the kept total is round((1-s)*N), rounded by largest remainder. With
 * rounds = R > 0 every round uses that rule, with targets on the geometric
 * schedule N0*(K/N0)^(r/R) (N0 = weights surviving at the start, K the target),
 * so the rates only set how the pruning is shared between tensors.
 *
 * Controls (Frankle & Carbin's): ticket = the above; reinit = after the last
 * round's masks are chosen the survivors get a fresh initialization
 * (host->reinit with a seed drawn from the run's RNG) instead of the rewind;
 * random = after the last round, masks drawn uniformly at random with the
 * ticket's per-tensor kept counts, weights rewound to the same point as the
 * ticket (initialization, or step k with late rewinding), so the control
 * differs from the ticket only in which weights are kept.
 *
 * Early stopping. With a recipe's early_stop (and a validation split held out
 * with val = K) each round's training ends with the weights of its epoch of
 * lowest validation loss, Frankle & Carbin's early-stopping iteration: the
 * round's curve row reports the test accuracy there, the round's masks are
 * chosen from those weights, and the host records the final round's step as
 * the metric train.early_stop_step. Departure: the validation loss is taken
 * after every epoch, not every 100 iterations as in the paper. */
#include <prunebench/plugin_util.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { ARG_RATE, ARG_RATE_CONV, ARG_RATE_OUTPUT, ARG_ROUNDS, ARG_EPOCHS, ARG_REWIND_STEP, ARG_CONTROL };
enum { CONTROL_TICKET, CONTROL_REINIT, CONTROL_RANDOM };
enum { SLOT_INIT = 0, SLOT_LATE = 1 };

static const pb_param_spec params[] = {
    {.name = "rate", .type = PB_PT_REAL, .def = 0.2, .lo = 0, .hi = 0.99,
     .help = "fraction of the surviving weights pruned per round in dense layers"},
    {.name = "rate_conv", .type = PB_PT_REAL, .def = 0.1, .lo = 0, .hi = 0.99,
     .help = "fraction of the surviving weights pruned per round in conv layers"},
    {.name = "rate_output", .type = PB_PT_REAL, .def = 0.1, .lo = 0, .hi = 0.99,
     .help = "fraction of the surviving weights pruned per round in the last prunable tensor"},
    {.name = "rounds", .type = PB_PT_INT, .def = 0, .lo = 0, .hi = 1000,
     .help = "pruning rounds; 0 = as many as the rates need to reach the sparsity"},
    {.name = "epochs", .type = PB_PT_INT, .def = 0, .lo = 0, .hi = 100000,
     .help = "training epochs per round; 0 = the run's recipe"},
    {.name = "rewind_step", .type = PB_PT_INT, .def = 0, .lo = 0, .hi = 1e9,
     .help = "rewind to the weights after this many optimizer steps; 0 = to initialization"},
    {.name = "control", .type = PB_PT_CHOICE, .def = 0, .lo = 0, .hi = 2, .choices = "ticket|reinit|random",
     .help = "ticket; reinit = ticket masks, fresh weights; random = random masks at the ticket's layer densities"},
    {.name = NULL},
};

typedef struct state {
    double rate, rate_conv, rate_output;
    int rounds, epochs, control;
    long rewind_step;
    long step0;        /* host steps when run() began: rewind_step counts from there */
    int have_late;     /* slot 1 holds the weights after rewind_step steps */
} state;

static int create(const pb_host *h, pb_ctx *c, const double *args, void **out)
{
    int rc;
    if ((rc = PB_NEED_HOST(h, c, train)) || (rc = PB_NEED_HOST(h, c, evaluate)) ||
        (rc = PB_NEED_HOST(h, c, snapshot)) || (rc = PB_NEED_HOST(h, c, rewind)) ||
        (rc = PB_NEED_HOST(h, c, reinit)) || (rc = PB_NEED_HOST(h, c, record)) ||
        (rc = pb_state_new(h, c, sizeof(state), out)))
        return rc;
    state *st = *out;
    st->rate = args[ARG_RATE];
    st->rate_conv = args[ARG_RATE_CONV];
    st->rate_output = args[ARG_RATE_OUTPUT];
    st->rounds = (int)args[ARG_ROUNDS];
    st->epochs = (int)args[ARG_EPOCHS];
    st->rewind_step = (long)args[ARG_REWIND_STEP];
    st->control = (int)args[ARG_CONTROL];
    return PB_PLUGIN_OK;
}

static int after_step(void *p, const pb_host *h, pb_ctx *c, long step)
{
    state *st = p;
    if (st->rewind_step > 0 && !st->have_late && step - st->step0 == st->rewind_step) {
        int rc = h->snapshot(c, SLOT_LATE);
        if (rc != PB_PLUGIN_OK)
            return rc;
        st->have_late = 1;
    }
    return PB_PLUGIN_OK;
}

typedef struct tensor {
    size_t n, surv, keep;
    double p;          /* per-round rate */
    double x;          /* real-valued keep count while planning */
} tensor;

/* Kept total when every tensor keeps surv*(1-p)^mu. */
static double kept_at(const tensor *T, int nw, double mu)
{
    double s = 0;
    for (int i = 0; i < nw; i++)
        s += (double)T[i].surv * pow(1.0 - T[i].p, mu);
    return s;
}

/* Sets T[i].keep so that they sum to exactly target, each tensor keeping the
 * fraction (1-p)^mu of its survivors for one common mu, rounded by largest
 * remainder. Returns 0 if target is below what the tensors with p = 0 keep. */
static int plan_exact(tensor *T, int nw, size_t target)
{
    size_t total = 0, fixed = 0;
    for (int i = 0; i < nw; i++) {
        total += T[i].surv;
        if (T[i].p <= 0)
            fixed += T[i].surv;
    }
    if (target >= total) {
        for (int i = 0; i < nw; i++)
            T[i].keep = T[i].surv;
        return 1;
    }
    if (target < fixed)
        return 0;
    double lo = 0, hi = 1;
    while (kept_at(T, nw, hi) > (double)target && hi < 1e12)
        hi *= 2;
    for (int it = 0; it < 200 && hi - lo > 1e-12 * hi; it++) {
        double mid = 0.5 * (lo + hi);
        if (kept_at(T, nw, mid) > (double)target)
            lo = mid;
        else
            hi = mid;
    }
    long rem = (long)target;
    for (int i = 0; i < nw; i++) {
        T[i].x = (double)T[i].surv * pow(1.0 - T[i].p, hi);
        T[i].keep = (size_t)floor(T[i].x);
        if (T[i].keep > T[i].surv)
            T[i].keep = T[i].surv;
        rem -= (long)T[i].keep;
    }
    for (; rem > 0; rem--) {
        int best = -1;
        for (int i = 0; i < nw; i++)
            if (T[i].keep < T[i].surv &&
                (best < 0 || T[i].x - (double)T[i].keep > T[best].x - (double)T[best].keep))
                best = i;
        if (best < 0)
            break;
        T[best].keep++;
    }
    for (; rem < 0; rem++) {
        int best = -1;
        for (int i = 0; i < nw; i++)
            if (T[i].keep > 0 && T[i].p > 0 &&
                (best < 0 || T[i].x - (double)T[i].keep < T[best].x - (double)T[best].keep))
                best = i;
        if (best < 0)
            break;
        T[best].keep--;
    }
    return 1;
}

/* The standard round: ceil((1-p)*surviving) per tensor. */
static size_t plan_rates(tensor *T, int nw)
{
    size_t kept = 0;
    for (int i = 0; i < nw; i++) {
        T[i].keep = (size_t)ceil((1.0 - T[i].p) * (double)T[i].surv - 1e-9);
        if (T[i].keep > T[i].surv)
            T[i].keep = T[i].surv;
        kept += T[i].keep;
    }
    return kept;
}

typedef struct cand {
    float a;
    size_t j;
} cand;

static int cmp_cand(const void *pa, const void *pb)
{
    const cand *x = pa, *y = pb;
    if (x->a != y->a)
        return x->a < y->a ? 1 : -1;
    return (x->j > y->j) - (x->j < y->j);
}

/* Keeps the `keep` largest |w| among the surviving weights (ties: lower index). */
static void prune_tensor(const pb_weights *wt, size_t keep, cand *buf)
{
    size_t m = 0;
    for (size_t j = 0; j < wt->n; j++)
        if (wt->mask[j] != 0.0f)
            buf[m++] = (cand){fabsf(wt->w[j]), j};
    if (keep >= m)
        return;
    qsort(buf, m, sizeof *buf, cmp_cand);
    for (size_t k = keep; k < m; k++)
        wt->mask[buf[k].j] = 0.0f;
}

/* Uniformly random mask with exactly `keep` ones over the whole tensor. */
static void random_mask(const pb_host *h, pb_ctx *c, const pb_weights *wt, size_t keep, cand *buf)
{
    for (size_t j = 0; j < wt->n; j++)
        buf[j].j = j;
    for (size_t k = 0; k < keep && k < wt->n; k++) { /* partial Fisher-Yates */
        size_t r = k + (size_t)(h->random(c) % (uint64_t)(wt->n - k));
        size_t t = buf[k].j;
        buf[k].j = buf[r].j;
        buf[r].j = t;
    }
    memset(wt->mask, 0, wt->n * sizeof(float));
    for (size_t k = 0; k < keep && k < wt->n; k++)
        wt->mask[buf[k].j] = 1.0f;
}

static int train_and_record(const pb_host *h, pb_ctx *c, const state *st, int round, size_t kept,
                            size_t N)
{
    int rc = h->train(c, st->epochs > 0 ? st->epochs : -1);
    double acc = 0, loss = 0;
    if (rc == PB_PLUGIN_OK)
        rc = h->evaluate(c, &acc, &loss);
    if (rc == PB_PLUGIN_OK)
        rc = h->record(c, "round", round, acc, loss);
    if (rc == PB_PLUGIN_OK)
        h->log(c, "round %d: %zu of %zu weights (%.3f%%), test accuracy %.4f, loss %.4f", round,
               kept, N, N ? 100.0 * (double)kept / (double)N : 0.0, acc, loss);
    return rc;
}

static int run(void *p, const pb_host *h, pb_ctx *c, double sparsity)
{
    state *st = p;
    int nw, rc;
    if ((rc = pb_need_weights(h, c, &nw)) || (rc = pb_check_sparsity(h, c, sparsity, PB_SPARSITY_BELOW_1)))
        return rc;
    tensor *T = calloc((size_t)nw, sizeof *T);
    if (!T)
        return h->fail(c, "out of memory");
    cand *buf = NULL;
    size_t N = 0, S0 = 0, nmax = 1;
    for (int i = 0; i < nw; i++) {
        pb_weights wt = {.size = sizeof wt};
        if ((rc = h->weights(c, i, &wt)) != PB_PLUGIN_OK)
            goto out;
        T[i].n = wt.n;
        for (size_t j = 0; j < wt.n; j++)
            T[i].surv += wt.mask[j] != 0.0f;
        T[i].p = i == nw - 1 ? st->rate_output : wt.layer_kind == 1 ? st->rate_conv : st->rate;
        N += wt.n;
        S0 += T[i].surv;
        if (wt.n > nmax)
            nmax = wt.n;
    }
    if (!(buf = malloc(nmax * sizeof *buf))) {
        rc = h->fail(c, "out of memory");
        goto out;
    }
    size_t K = (size_t)llround((1.0 - sparsity) * (double)N);
    if (K > S0)
        K = S0;

    /* the number of rounds */
    int R = st->rounds;
    if (R == 0 && K < S0) {
        tensor *sim = malloc((size_t)nw * sizeof *sim);
        if (!sim) {
            rc = h->fail(c, "out of memory");
            goto out;
        }
        memcpy(sim, T, (size_t)nw * sizeof *sim);
        size_t kept = S0;
        while (kept > K && R < 100000) {
            size_t next = plan_rates(sim, nw);
            if (next >= kept)
                break;
            for (int i = 0; i < nw; i++)
                sim[i].surv = sim[i].keep;
            kept = next;
            R++;
        }
        free(sim);
        if (kept > K) {
            rc = h->fail(c, "the rates (%g dense, %g conv, %g output) cannot reach sparsity %g",
                         st->rate, st->rate_conv, st->rate_output, sparsity);
            goto out;
        }
    }
    int slot = st->rewind_step > 0 ? SLOT_LATE : SLOT_INIT;
    h->log(c, "%d rounds to %zu of %zu weights (sparsity %g), rewinding to %s, control %s", R, K, N,
           sparsity, slot == SLOT_LATE ? "a late step" : "initialization",
           st->control == CONTROL_REINIT   ? "reinit"
           : st->control == CONTROL_RANDOM ? "random"
                                           : "ticket");
    if ((rc = h->snapshot(c, SLOT_INIT)) != PB_PLUGIN_OK)
        goto out;
    st->step0 = PB_HOST_HAS(h, steps) ? h->steps(c) : 0;
    st->have_late = 0;

    size_t kept = S0;
    for (int r = 0; r < R; r++) {
        if ((rc = train_and_record(h, c, st, r, kept, N)) != PB_PLUGIN_OK)
            goto out;
        if (slot == SLOT_LATE && !st->have_late) {
            rc = h->fail(c, "the first training took %ld optimizer steps, fewer than rewind_step = %ld",
                         PB_HOST_HAS(h, steps) ? h->steps(c) - st->step0 : -1L, st->rewind_step);
            goto out;
        }
        int last = r == R - 1;
        if (st->rounds == 0 && !last) {
            plan_rates(T, nw);
        } else {
            size_t target = last ? K
                                 : (size_t)llround((double)S0 * pow((double)K / (double)S0,
                                                                    (double)(r + 1) / (double)R));
            if (!plan_exact(T, nw, target)) {
                rc = h->fail(c, "%zu weights cannot be reached with a zero rate in some tensor", target);
                goto out;
            }
        }
        kept = 0;
        for (int i = 0; i < nw; i++) {
            pb_weights wt = {.size = sizeof wt};
            if ((rc = h->weights(c, i, &wt)) != PB_PLUGIN_OK)
                goto out;
            if (last && st->control == CONTROL_RANDOM)
                random_mask(h, c, &wt, T[i].keep, buf);
            else
                prune_tensor(&wt, T[i].keep, buf);
            T[i].surv = T[i].keep;
            kept += T[i].keep;
        }
        h->apply_masks(c);
        if (last && st->control == CONTROL_REINIT)
            rc = h->reinit(c, h->random(c));
        else
            rc = h->rewind(c, slot);
        if (rc != PB_PLUGIN_OK)
            goto out;
        h->apply_masks(c);
    }
    rc = train_and_record(h, c, st, R, kept, N);
out:
    free(buf);
    free(T);
    return rc;
}

PB_PLUGIN_DEFINE(
    .name = "lottery",
    .description = "Lottery tickets: iterative magnitude pruning per layer with rewinding; reinit/random controls",
    .kind = PB_KIND_UNSTRUCTURED,
    .when = PB_WHEN_RUN,
    .params = params,
    .create = create,
    .destroy = pb_state_free,
    .run = run,
    .after_step = after_step)
