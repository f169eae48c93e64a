/* channel: structured pruning of output units (conv filters, dense neurons) by
 * the L1 or L2 norm of their weights (Li et al. 2017, "Pruning Filters for
 * Efficient ConvNets"), on a trained model. Removed units are cut out of the
 * model together with the matching inputs of the layer(s) they feed, so the
 * result is a physically smaller dense network whose FLOPs really drop.
 *
 * The sparsity s is the fraction of units removed. Every prunable tensor
 * except the last (the output layer keeps its classes) takes part.
 * scope=layer: each tensor keeps its ceil((1-s)*rows) units (at least 1) with
 * the largest norms. scope=global: raw norms are not comparable across layers
 * (they scale with fan-in and init), so each unit's norm is divided by the
 * mean norm of its layer, as Torch-Pruning's global ranking does
 * (normalizer "mean"); the ceil((1-s)*units) largest over all those tensors
 * are kept, and every tensor keeps at least one unit. A layer whose norms are
 * spread out thus loses more units than one whose units are all alike.
 *
 * All norms are computed on the model as given, before any removal (Li et
 * al.'s "independent" strategy): removing a layer's inputs does not re-rank
 * its units. Ties keep the lower unit index. */
#include <prunebench/plugin_util.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { ARG_NORM, ARG_SCOPE };
enum { NORM_L1, NORM_L2 };
enum { SCOPE_LAYER, SCOPE_GLOBAL };

static const pb_param_spec params[] = {
    {.name = "norm", .type = PB_PT_CHOICE, .def = 0, .lo = 0, .hi = 1, .choices = "l1|l2",
     .help = "rank a unit by the L1 or L2 norm of its weights"},
    {.name = "scope", .type = PB_PT_CHOICE, .def = 0, .lo = 0, .hi = 1, .choices = "layer|global",
     .help = "remove the fraction s of units in each layer, or of all units ranked by norm / layer mean norm"},
    {.name = NULL},
};

typedef struct state {
    int norm, scope;
} state;

static int create(const pb_host *h, pb_ctx *c, const double *args, void **out)
{
    int rc;
    if ((rc = PB_NEED_HOST(h, c, remove_units)) || (rc = pb_state_new(h, c, sizeof(state), out)))
        return rc;
    state *st = *out;
    st->norm = (int)args[ARG_NORM];
    st->scope = (int)args[ARG_SCOPE];
    return PB_PLUGIN_OK;
}

typedef struct unit {
    double score;
    int tensor, row;
} unit;

static int cmp_unit(const void *pa, const void *pb)
{
    const unit *x = pa, *y = pb;
    if (x->score != y->score)
        return x->score < y->score ? 1 : -1;
    if (x->tensor != y->tensor)
        return x->tensor - y->tensor;
    return x->row - y->row;
}

static int cmp_int(const void *pa, const void *pb)
{
    int x = *(const int *)pa, y = *(const int *)pb;
    return (x > y) - (x < y);
}

static size_t total_weights(const pb_host *h, pb_ctx *c, int nw)
{
    size_t n = 0;
    for (int i = 0; i < nw; i++) {
        pb_weights wt = {.size = sizeof wt};
        if (h->weights(c, i, &wt) == PB_PLUGIN_OK)
            n += wt.n;
    }
    return n;
}

static int prune(void *p, const pb_host *h, pb_ctx *c, double sparsity)
{
    const state *st = p;
    int nw, rc;
    if ((rc = pb_need_weights(h, c, &nw)) || (rc = pb_check_sparsity(h, c, sparsity, PB_SPARSITY_BELOW_1)))
        return rc;
    int nt = nw - 1; /* the output layer is left alone */
    if (nt == 0) {
        h->log(c, "only one prunable tensor (the output layer); nothing to remove");
        return PB_PLUGIN_OK;
    }
    size_t before = total_weights(h, c, nw), nunits = 0;
    int *rows = calloc((size_t)nt, sizeof *rows), *nkeep = calloc((size_t)nt, sizeof *nkeep);
    int **keep = calloc((size_t)nt, sizeof *keep);
    unit *U = NULL;
    if (!rows || !nkeep || !keep) {
        rc = h->fail(c, "out of memory");
        goto out;
    }
    for (int i = 0; i < nt; i++) {
        pb_weights wt = {.size = sizeof wt};
        if ((rc = h->weights(c, i, &wt)) != PB_PLUGIN_OK)
            goto out;
        rows[i] = wt.rows;
        nunits += (size_t)wt.rows;
        if (!(keep[i] = malloc((size_t)(wt.rows > 0 ? wt.rows : 1) * sizeof(int)))) {
            rc = h->fail(c, "out of memory");
            goto out;
        }
    }
    if (!(U = malloc((nunits ? nunits : 1) * sizeof *U))) {
        rc = h->fail(c, "out of memory");
        goto out;
    }
    size_t u = 0;
    for (int i = 0; i < nt; i++) {
        pb_weights wt = {.size = sizeof wt};
        if ((rc = h->weights(c, i, &wt)) != PB_PLUGIN_OK)
            goto out;
        for (int r = 0; r < wt.rows; r++) {
            const float *row = wt.w + (size_t)r * (size_t)wt.cols;
            double s = 0;
            for (int j = 0; j < wt.cols; j++)
                s += st->norm == NORM_L1 ? fabs((double)row[j]) : (double)row[j] * row[j];
            if (st->norm == NORM_L2)
                s = sqrt(s);
            U[u++] = (unit){s, i, r};
        }
        if (st->scope == SCOPE_GLOBAL && wt.rows > 0) {
            double mean = 0;
            for (int r = 0; r < wt.rows; r++)
                mean += U[u - 1 - r].score;
            mean /= wt.rows;
            for (int r = 0; r < wt.rows && mean > 0; r++)
                U[u - 1 - r].score /= mean;
        }
    }

    if (st->scope == SCOPE_LAYER) {
        unit *base = U;
        for (int i = 0; i < nt; i++) {
            qsort(base, (size_t)rows[i], sizeof *base, cmp_unit);
            int k = (int)ceil((1.0 - sparsity) * rows[i] - 1e-9);
            nkeep[i] = k < 1 ? 1 : k > rows[i] ? rows[i] : k;
            for (int r = 0; r < nkeep[i]; r++)
                keep[i][r] = base[r].row;
            base += rows[i];
        }
    } else {
        qsort(U, nunits, sizeof *U, cmp_unit);
        size_t K = (size_t)ceil((1.0 - sparsity) * (double)nunits - 1e-9), taken = 0;
        /* every tensor's best unit first, so none is emptied, then the global order */
        for (size_t k = 0; k < nunits; k++)
            if (nkeep[U[k].tensor] == 0) {
                keep[U[k].tensor][nkeep[U[k].tensor]++] = U[k].row;
                U[k].tensor = -1 - U[k].tensor; /* taken */
                taken++;
            }
        for (size_t k = 0; k < nunits && taken < K; k++)
            if (U[k].tensor >= 0) {
                keep[U[k].tensor][nkeep[U[k].tensor]++] = U[k].row;
                taken++;
            }
    }

    for (int i = 0; i < nt; i++) {
        qsort(keep[i], (size_t)nkeep[i], sizeof(int), cmp_int);
        pb_weights wt = {.size = sizeof wt};
        if ((rc = h->weights(c, i, &wt)) != PB_PLUGIN_OK) /* earlier removals invalidated views */
            goto out;
        h->log(c, "%s keeps %d of %d units", wt.name, nkeep[i], rows[i]);
        if (nkeep[i] == rows[i])
            continue;
        if ((rc = h->remove_units(c, i, keep[i], nkeep[i])) != PB_PLUGIN_OK)
            goto out;
    }
    size_t after = total_weights(h, c, nw);
    h->log(c, "%s norm, %s scope, %.4g of the units removed: prunable weights %zu -> %zu (%.2f%% fewer)",
           st->norm == NORM_L1 ? "L1" : "L2", st->scope == SCOPE_LAYER ? "layer" : "global", sparsity,
           before, after, before ? 100.0 * (1.0 - (double)after / (double)before) : 0.0);
out:
    if (keep)
        for (int i = 0; i < nt; i++)
            free(keep[i]);
    free(keep);
    free(rows);
    free(nkeep);
    free(U);
    return rc;
}

PB_PLUGIN_DEFINE(
    .name = "channel",
    .description = "Structured: remove the fraction s of conv filters / dense neurons with the smallest L1/L2 norm",
    .kind = PB_KIND_STRUCTURED,
    .when = PB_WHEN_TRAINED,
    .params = params,
    .create = create,
    .destroy = pb_state_free,
    .prune = prune)
