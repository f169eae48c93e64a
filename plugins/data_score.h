/* data_score.h: the static score-based subsets of Paul et al. 2021 ("Deep
 * Learning on a Data Diet: Finding Important Examples Early in Training"),
 * EL2N and GraNd. Included by el2n.c and grand.c after defining
 *   DS_NAME        the plugin's name ("el2n")
 *   DS_GRAD_NORM   1: score by the loss gradient's norm (GraNd), 0: by
 *                  ||softmax - onehot||_2 (EL2N)
 *   DS_DESCRIPTION its one-line description
 *
 * attach() runs the scoring: for each of `seeds` scoring runs (the first from
 * the cell's own initialization, the others from fresh ones drawn from the
 * data method's stream), train `epochs` epochs on the full data (curve rows
 * "score"), then score every training example in eval mode; the scores are
 * averaged over the runs. The kept subset is the examples ranked
 * [skip * N, skip * N + r * N) by descending score (the hardest kept, the very
 * hardest beta = skip optionally left out as in Paul et al.'s offset
 * experiments); it is reshuffled every round. The host then puts the model
 * back: the cell trains from its own initialization, and the scoring run's time
 * and FLOPs count in its cost.
 *
 * Departures: the paper scores after a fraction of the full training budget
 * and averages over 10 runs; both are parameters here (defaults 1 epoch, 1
 * run, for cost). GraNd's gradient is exact (one backward per example) and is
 * taken over every trainable parameter, biases included. */
#ifndef PB_DATA_SCORE_H
#define PB_DATA_SCORE_H

#include "data_select.h"

enum { ARG_FRACTION, ARG_EPOCHS, ARG_SEEDS, ARG_SKIP };

static const pb_param_spec params[] = {
    DS_FRACTION_PARAM,
    {.name = "epochs", .type = PB_PT_INT, .def = 1, .lo = 0, .hi = 10000,
     .help = "epochs of each scoring run on the full data before scoring (0: score at initialization)"},
    {.name = "seeds", .type = PB_PT_INT, .def = 1, .lo = 1, .hi = 100,
     .help = "scoring runs whose scores are averaged (the first from the cell's initialization)"},
    {.name = "skip", .type = PB_PT_REAL, .def = 0, .lo = 0, .hi = 1,
     .help = "beta: the fraction of the highest-scoring (hardest) examples left out before keeping r*N"},
    {.name = NULL},
};

typedef struct state {
    double fraction, skip;
    int epochs, seeds;
    int scoring;   /* attach's scoring run is training: select gives it every example */
    ds_fixed f;
} state;

static int create(const pb_host *h, pb_ctx *c, const double *args, void **out)
{
    int rc;
    if ((rc = PB_NEED_HOST(h, c, example_stats)) || (rc = PB_NEED_HOST(h, c, train_phase)) ||
        (rc = PB_NEED_HOST(h, c, metric)) || (rc = ds_check_fraction(h, c, args[ARG_FRACTION])))
        return rc;
    if (args[ARG_SKIP] >= 1 || args[ARG_FRACTION] + args[ARG_SKIP] > 1 + 1e-12)
        return h->fail(c, "fraction %g plus skip %g leave nothing to keep (their sum must be at most 1)",
                       args[ARG_FRACTION], args[ARG_SKIP]);
    if ((rc = pb_state_new(h, c, sizeof(state), out)))
        return rc;
    state *st = *out;
    st->fraction = args[ARG_FRACTION];
    st->epochs = (int)args[ARG_EPOCHS];
    st->seeds = (int)args[ARG_SEEDS];
    st->skip = args[ARG_SKIP];
    return PB_PLUGIN_OK;
}

static void destroy(void *p)
{
    state *st = p;
    if (st)
        free(st->f.keep);
    free(st);
}

static int attach(void *p, const pb_host *h, pb_ctx *c)
{
    state *st = p;
    const int n = h->ntrain(c);
    int *all = malloc((size_t)n * sizeof(int));
    float *s = malloc((size_t)n * sizeof(float));
    double *sum = calloc((size_t)n, sizeof(double));
    float *mean = malloc((size_t)n * sizeof(float));
    st->f.keep = malloc((size_t)n * sizeof(int));
    int rc = all && s && sum && mean && st->f.keep ? PB_PLUGIN_OK : h->fail(c, "out of memory");
    if (rc == PB_PLUGIN_OK)
        ds_iota(all, n);
    for (int k = 0; rc == PB_PLUGIN_OK && k < st->seeds; k++) {
        if (k > 0)
            rc = h->reinit(c, h->random(c));
        st->scoring = 1;
        if (rc == PB_PLUGIN_OK && st->epochs > 0)
            rc = h->train_phase(c, "score", st->epochs);
        st->scoring = 0;
        pb_example_stats out = {.size = sizeof out};
        if (DS_GRAD_NORM)
            out.grad_norm = s;
        else
            out.el2n = s;
        if (rc == PB_PLUGIN_OK)
            rc = h->example_stats(c, all, n, &out);
        for (int i = 0; rc == PB_PLUGIN_OK && i < n; i++)
            sum[i] += s[i];
    }
    double total = 0, kept = 0;
    const int nkeep = ds_count(st->fraction, n), skip = (int)lround(st->skip * n);
    if (rc == PB_PLUGIN_OK) {
        for (int i = 0; i < n; i++) {
            mean[i] = (float)(sum[i] / st->seeds);
            total += mean[i];
        }
        rc = ds_keep_top(h, c, mean, n, skip > n - nkeep ? n - nkeep : skip, nkeep, st->f.keep);
    }
    if (rc == PB_PLUGIN_OK) {
        for (int i = 0; i < nkeep; i++)
            kept += mean[st->f.keep[i]];
        st->f.nkeep = nkeep;
        st->f.ntotal = n;
        if ((rc = h->metric(c, DS_NAME ".score_mean", total / n)) == PB_PLUGIN_OK)
            rc = h->metric(c, DS_NAME ".kept_score_mean", kept / nkeep);
    }
    free(all);
    free(s);
    free(sum);
    free(mean);
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

PB_PLUGIN_DEFINE(.name = DS_NAME, .description = DS_DESCRIPTION, .kind = PB_KIND_DATA, .when = PB_WHEN_TRAINING,
                 .params = params, .create = create, .destroy = destroy, .select = select_subset,
                 .attach = attach, .needs = PB_NEEDS_SELECT)

#endif
