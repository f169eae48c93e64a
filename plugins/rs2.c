/* rs2: Repeated Sampling of Random Subsets (Okanovic et al. 2023, "Repeated
 * Random Sampling for Minimizing the Time-to-Accuracy of Learning", ICLR 2024).
 * Every round trains one pass over a fresh random subset of r * N examples.
 *
 * Without replacement (the paper's default, Algorithm 1): the examples are
 * shuffled once and each round takes the next r * N of that order; when the
 * order is used up a new permutation is drawn. Rounds are read from the
 * concatenated permutations, so every round has exactly r * N examples and
 * the N selections from the start of a pass use every example exactly once;
 * when N is not a multiple of r * N, the round that straddles two passes
 * finishes one permutation and starts the next (the paper leaves this case
 * open; a short round would change the per-round budget). With replacement:
 * each round is an independent uniform subset of r * N distinct examples.
 *
 * The learning-rate schedule is stepped per iteration over the reduced number
 * of iterations by the host (its total_steps counts the selected rounds). */
#include "data_select.h"

enum { ARG_FRACTION, ARG_REPLACE };

static const pb_param_spec params[] = {
    DS_FRACTION_PARAM,
    {.name = "replace", .type = PB_PT_BOOL, .def = 0, .lo = 0, .hi = 1,
     .help = "1: every round an independent random subset (with replacement across rounds); 0: consecutive "
             "chunks of one permutation, a new one when it is used up"},
    {.name = NULL},
};

typedef struct state {
    double fraction;
    int replace;
    int *perm;     /* the current permutation (with replacement: scratch) */
    int ntotal, pos;
} state;

static int create(const pb_host *h, pb_ctx *c, const double *args, void **out)
{
    int rc;
    if ((rc = PB_NEED_HOST(h, c, random)) || (rc = ds_check_fraction(h, c, args[ARG_FRACTION])) ||
        (rc = pb_state_new(h, c, sizeof(state), out)))
        return rc;
    state *st = *out;
    st->fraction = args[ARG_FRACTION];
    st->replace = args[ARG_REPLACE] != 0;
    return PB_PLUGIN_OK;
}

static void destroy(void *p)
{
    state *st = p;
    if (st)
        free(st->perm);
    free(st);
}

static int select_round(void *p, const pb_host *h, pb_ctx *c, int epoch, int n_total, int *idx, int *n)
{
    (void)epoch;
    state *st = p;
    if (!st->perm || st->ntotal != n_total) {
        free(st->perm);
        if (!(st->perm = malloc((size_t)n_total * sizeof(int))))
            return h->fail(c, "out of memory");
        ds_iota(st->perm, n_total);
        ds_shuffle(h, c, st->perm, n_total, n_total);
        st->ntotal = n_total;
        st->pos = 0;
    }
    const int k = ds_count(st->fraction, n_total);
    if (st->replace) {
        /* a partial shuffle of any permutation leaves a uniform k-subset in front */
        ds_shuffle(h, c, st->perm, n_total, k);
        memcpy(idx, st->perm, (size_t)k * sizeof(int));
    } else {
        for (int i = 0; i < k; i++) {
            if (st->pos == n_total) {
                ds_shuffle(h, c, st->perm, n_total, n_total);
                st->pos = 0;
            }
            idx[i] = st->perm[st->pos++];
        }
    }
    *n = k;
    return PB_PLUGIN_OK;
}

PB_PLUGIN_DEFINE(.name = "rs2", .description = "data: a fresh random r*N subset every round (RS2)",
                 .kind = PB_KIND_DATA, .when = PB_WHEN_TRAINING, .params = params, .create = create,
                 .destroy = destroy, .select = select_round, .needs = PB_NEEDS_SELECT)
