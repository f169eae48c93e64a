/* static_random: one uniformly random subset of r * N training examples, drawn
 * once before training and used (reshuffled) in every round — the static
 * random baseline of Okanovic et al. 2023 ("Repeated Random Sampling for
 * Minimizing the Time-to-Accuracy of Learning") and of Paul et al. 2021. */
#include "data_select.h"

enum { ARG_FRACTION };

static const pb_param_spec params[] = {DS_FRACTION_PARAM, {.name = NULL}};

typedef struct state {
    double fraction;
    ds_fixed f;
} state;

static int create(const pb_host *h, pb_ctx *c, const double *args, void **out)
{
    int rc;
    if ((rc = PB_NEED_HOST(h, c, random)) || (rc = ds_check_fraction(h, c, args[ARG_FRACTION])) ||
        (rc = pb_state_new(h, c, sizeof(state), out)))
        return rc;
    ((state *)*out)->fraction = args[ARG_FRACTION];
    return PB_PLUGIN_OK;
}

static void destroy(void *p)
{
    state *st = p;
    if (st)
        free(st->f.keep);
    free(st);
}

static int cmp_int(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }

static int select_subset(void *p, const pb_host *h, pb_ctx *c, int epoch, int n_total, int *idx, int *n)
{
    (void)epoch;
    state *st = p;
    if (!st->f.keep) {
        int k = ds_count(st->fraction, n_total);
        if (!(st->f.keep = malloc((size_t)n_total * sizeof(int))))
            return h->fail(c, "out of memory");
        ds_iota(st->f.keep, n_total);
        ds_shuffle(h, c, st->f.keep, n_total, k);
        qsort(st->f.keep, (size_t)k, sizeof(int), cmp_int);
        st->f.nkeep = k;
        st->f.ntotal = n_total;
    }
    return ds_fixed_select(h, c, &st->f, n_total, idx, n);
}

PB_PLUGIN_DEFINE(.name = "static_random", .description = "data: one random subset of r*N examples, fixed",
                 .kind = PB_KIND_DATA, .when = PB_WHEN_TRAINING, .params = params, .create = create,
                 .destroy = destroy, .select = select_subset, .needs = PB_NEEDS_SELECT)
