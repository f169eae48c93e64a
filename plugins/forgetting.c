/* forgetting: the static subset of the most forgettable examples (Toneva et
 * al. 2019, "An Empirical Study of Example Forgetting during Deep Neural
 * Network Learning", ICLR). A scoring run trains `epochs` epochs on the full
 * data; a forgetting event is an example that was classified correctly at one
 * check and wrongly at the next; examples never classified correctly rank
 * above every count (the paper treats them as forgotten infinitely often).
 * The r*N examples with the most events are kept (ties in random order) and
 * reshuffled every round; the scores are averaged over `seeds` scoring runs
 * (the first from the cell's own initialization). The host then puts the
 * model back and counts the scoring run in the cell's cost.
 *
 * Departure: the paper checks an example each time it is presented in a
 * mini-batch (train-mode forward before the update); here every example is
 * checked after each scoring epoch (eval-mode forward of the whole training
 * set), because a plugin does not see which examples a step used. Events
 * between two presentations within one epoch are not seen, so counts are
 * lower and ties more common than in the paper. */
#include "data_select.h"

enum { ARG_FRACTION, ARG_EPOCHS, ARG_SEEDS };

static const pb_param_spec params[] = {
    DS_FRACTION_PARAM,
    {.name = "epochs", .type = PB_PT_INT, .def = 5, .lo = 2, .hi = 10000,
     .help = "epochs of each scoring run; every example is checked after each"},
    {.name = "seeds", .type = PB_PT_INT, .def = 1, .lo = 1, .hi = 100,
     .help = "scoring runs whose scores are averaged"},
    {.name = NULL},
};

typedef struct state {
    double fraction;
    int epochs, seeds;
    int scoring;
    int n, checks;
    int *all, *correct, *events;
    unsigned char *prev, *learned;
    ds_fixed f;
} state;

static int create(const pb_host *h, pb_ctx *c, const double *args, void **out)
{
    int rc;
    if ((rc = PB_NEED_HOST(h, c, example_stats)) || (rc = PB_NEED_HOST(h, c, train_phase)) ||
        (rc = PB_NEED_HOST(h, c, metric)) || (rc = ds_check_fraction(h, c, args[ARG_FRACTION])) ||
        (rc = pb_state_new(h, c, sizeof(state), out)))
        return rc;
    state *st = *out;
    st->fraction = args[ARG_FRACTION];
    st->epochs = (int)args[ARG_EPOCHS];
    st->seeds = (int)args[ARG_SEEDS];
    return PB_PLUGIN_OK;
}

static void free_scratch(state *st)
{
    free(st->all);
    free(st->correct);
    free(st->events);
    free(st->prev);
    free(st->learned);
    st->all = st->correct = st->events = NULL;
    st->prev = st->learned = NULL;
}

static void destroy(void *p)
{
    state *st = p;
    if (st) {
        free_scratch(st);
        free(st->f.keep);
    }
    free(st);
}

static int epoch_end(void *p, const pb_host *h, pb_ctx *c, int epoch, double test_acc)
{
    (void)epoch, (void)test_acc;
    state *st = p;
    if (!st->scoring)
        return PB_PLUGIN_OK;
    pb_example_stats out = {.size = sizeof out, .correct = st->correct};
    int rc = h->example_stats(c, st->all, st->n, &out);
    if (rc == PB_PLUGIN_OK) {
        ds_forget_update(st->correct, st->n, st->prev, st->learned, st->events);
        st->checks++;
    }
    return rc;
}

static int attach(void *p, const pb_host *h, pb_ctx *c)
{
    state *st = p;
    const int n = st->n = h->ntrain(c);
    st->all = malloc((size_t)n * sizeof(int));
    st->correct = malloc((size_t)n * sizeof(int));
    st->events = malloc((size_t)n * sizeof(int));
    st->prev = malloc((size_t)n);
    st->learned = malloc((size_t)n);
    st->f.keep = malloc((size_t)n * sizeof(int));
    float *mean = calloc((size_t)n, sizeof(float));
    int rc = st->all && st->correct && st->events && st->prev && st->learned && st->f.keep && mean
                 ? PB_PLUGIN_OK
                 : h->fail(c, "out of memory");
    if (rc == PB_PLUGIN_OK)
        ds_iota(st->all, n);
    double forgotten = 0, never = 0;
    for (int k = 0; rc == PB_PLUGIN_OK && k < st->seeds; k++) {
        if (k > 0 && (rc = h->reinit(c, h->random(c))) != PB_PLUGIN_OK)
            break;
        memset(st->events, 0, (size_t)n * sizeof(int));
        memset(st->prev, 0, (size_t)n);
        memset(st->learned, 0, (size_t)n);
        st->checks = 0;
        st->scoring = 1;
        rc = h->train_phase(c, "score", st->epochs);
        st->scoring = 0;
        for (int i = 0; rc == PB_PLUGIN_OK && i < n; i++) {
            mean[i] += ds_forget_score(st->events[i], st->learned[i], st->checks) / (float)st->seeds;
            forgotten += st->events[i] > 0;
            never += !st->learned[i];
        }
    }
    const int nkeep = ds_count(st->fraction, n);
    if (rc == PB_PLUGIN_OK)
        rc = ds_keep_top(h, c, mean, n, 0, nkeep, st->f.keep);
    if (rc == PB_PLUGIN_OK) {
        st->f.nkeep = nkeep;
        st->f.ntotal = n;
        if ((rc = h->metric(c, "forgetting.forgotten_fraction", forgotten / ((double)n * st->seeds))) ==
            PB_PLUGIN_OK)
            rc = h->metric(c, "forgetting.never_learned_fraction", never / ((double)n * st->seeds));
    }
    free(mean);
    free_scratch(st);
    return rc;
}

static int select_subset(void *p, const pb_host *h, pb_ctx *c, int epoch, int n_total, int *idx, int *n)
{
    (void)epoch;
    state *st = p;
    if (st->scoring) {
        ds_iota(idx, n_total);
        ds_shuffle(h, c, idx, n_total, n_total);
        *n = n_total;
        return PB_PLUGIN_OK;
    }
    return ds_fixed_select(h, c, &st->f, n_total, idx, n);
}

PB_PLUGIN_DEFINE(.name = "forgetting", .description = "data: a fixed subset of the r*N most forgotten examples",
                 .kind = PB_KIND_DATA, .when = PB_WHEN_TRAINING, .params = params, .create = create,
                 .destroy = destroy, .select = select_subset, .epoch_end = epoch_end, .attach = attach,
                 .needs = PB_NEEDS_SELECT)
