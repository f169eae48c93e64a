/* precropping: PreCropping (Cai et al. 2022, "Structured Pruning is All You
 * Need for Pruning CNNs at Initialization"), structured pruning at
 * initialization. Their finding: what decides the accuracy of a network
 * pruned at initialization is each layer's density d_l, not which weights
 * are kept; so the densities of a prune-at-init score can be realised by a
 * physically narrower dense network instead of a mask.
 *
 * 1. SynFlow (synflow_score.h, `rounds` rounds) prunes the model at the target
 *    sparsity; d_l = kept / size of each prunable tensor l = 0..L-1.
 * 2. mode = crop: width ratios r_l of each tensor's output units with
 *    r_(l-1) * r_l ~ d_l, r_(-1) = 1 (the input) and r_(L-1) = 1 (the
 *    classes) fixed, by least squares on the log-ratios,
 *        min sum_l w_l (log r_(l-1) + log r_l - log d_l)^2,
 *    subject to r_l <= 1 (a layer cannot widen), solved exactly on the
 *    normal equations with the constraint's active set; w_l = the tensor's
 *    size (fit = size, the default: the big layers, which hold the budget,
 *    are matched best) or 1 (fit = uniform, the plain least squares). Each
 *    tensor keeps max(1, lround(r_l * units)) units; host->remove_units cuts the rest with the matching inputs
 *    of the next layer, and host->reinit gives the narrower network a fresh
 *    initialization for its own fan-ins (seeded from the run), so it is
 *    trained from scratch as a dense network.
 *    mode = random: the control, a random mask with exactly SynFlow's kept
 *    count in every tensor, on the original initialization.
 * Metrics: crop_density (prunable weights of the result over the original
 * count; for mode = random the mask's density) and units.NAME per cropped
 * tensor.
 *
 * Departures. The paper solves for channel ratios with a convex program
 * under the parameter or FLOP budget; here the log-ratio least squares of
 * the densities is used, so the cropped network's size follows SynFlow's
 * layer densities, not the budget exactly (crop_density says by how much).
 * Only SynFlow is offered as the score. Cropping keeps the first units of a
 * layer; after the re-initialization which ones is immaterial. */
#include "synflow_score.h"

#include <ctype.h>
#include <stdio.h>

enum { ARG_MODE, ARG_FIT, ARG_ROUNDS };
enum { MODE_CROP = 0, MODE_RANDOM };
enum { FIT_SIZE = 0, FIT_UNIFORM };

#define MAX_T 64

static const pb_param_spec params[] = {
    {.name = "mode", .type = PB_PT_CHOICE, .def = 0, .lo = 0, .hi = 1, .choices = "crop|random",
     .help = "crop: a narrower dense network at SynFlow's layer densities; random: a random mask at them"},
    {.name = "fit", .type = PB_PT_CHOICE, .def = 0, .lo = 0, .hi = 1, .choices = "size|uniform",
     .help = "least-squares weight of each layer's density: its size, or 1"},
    {.name = "rounds", .type = PB_PT_INT, .def = 100, .lo = 1, .hi = 100000, .help = "SynFlow's pruning rounds"},
    {.name = NULL},
};

typedef struct state {
    int mode, fit, rounds;
} state;

static int create(const pb_host *h, pb_ctx *c, const double *args, void **out)
{
    int rc;
    if ((rc = PB_NEED_HOST(h, c, grad_output_sum)) || (rc = PB_NEED_HOST(h, c, mask_topk)) ||
        (rc = PB_NEED_HOST(h, c, scores)) || (rc = PB_NEED_HOST(h, c, remove_units)) ||
        (rc = PB_NEED_HOST(h, c, snapshot)) || (rc = PB_NEED_HOST(h, c, rewind)) ||
        (rc = PB_NEED_HOST(h, c, reinit)) || (rc = PB_NEED_HOST(h, c, metric)) ||
        (rc = pb_state_new(h, c, sizeof(state), out)))
        return rc;
    state *st = *out;
    st->mode = (int)args[ARG_MODE];
    st->fit = (int)args[ARG_FIT];
    st->rounds = (int)args[ARG_ROUNDS];
    return PB_PLUGIN_OK;
}

/* Solves min sum_l w[l] (x[l-1] + x[l] - y[l])^2 over x[0..L-2] subject to
 * x <= 0 (no layer widens), x[-1] = x[L-1] = 0: the normal equations of the
 * free variables (a tridiagonal system, by Gaussian elimination on its dense
 * form), fixing at 0 every variable that comes out positive and solving
 * again until none does (at most L - 1 passes). */
static void fit_log_ratios(int L, const double *y, const double *w, double *x)
{
    int n = L - 1, fixed[MAX_T] = {0};
    static double A[MAX_T][MAX_T + 1];
    for (int pass = 0; pass < n; pass++) {
        int idx[MAX_T], m = 0;
        for (int j = 0; j < n; j++)
            if (!fixed[j])
                idx[m++] = j;
        for (int a = 0; a < m; a++) {
            int j = idx[a];
            for (int b = 0; b <= m; b++)
                A[a][b] = 0;
            /* x[j] appears in residual j (with x[j-1]) and residual j+1 (with x[j+1]) */
            A[a][m] = w[j] * y[j] + w[j + 1] * y[j + 1];
            for (int b = 0; b < m; b++) {
                int k = idx[b];
                A[a][b] = k == j ? w[j] + w[j + 1] : k == j - 1 ? w[j] : k == j + 1 ? w[j + 1] : 0;
            }
        }
        for (int a = 0; a < m; a++) { /* positive definite: no pivoting needed */
            for (int r = a + 1; r < m; r++) {
                double f = A[r][a] / A[a][a];
                for (int b = a; b <= m; b++)
                    A[r][b] -= f * A[a][b];
            }
        }
        for (int j = 0; j < n; j++)
            x[j] = 0;
        for (int a = m - 1; a >= 0; a--) {
            double v = A[a][m];
            for (int b = a + 1; b < m; b++)
                v -= A[a][b] * x[idx[b]];
            x[idx[a]] = v / A[a][a];
        }
        int changed = 0;
        for (int a = 0; a < m; a++)
            if (x[idx[a]] > 0) {
                fixed[idx[a]] = 1;
                x[idx[a]] = 0;
                changed = 1;
            }
        if (!changed)
            return;
    }
}

static int prune(void *p, const pb_host *h, pb_ctx *c, double sparsity)
{
    const state *st = p;
    int nw, rc;
    if ((rc = pb_need_weights(h, c, &nw)) || (rc = pb_check_sparsity(h, c, sparsity, PB_SPARSITY_BELOW_1)))
        return rc;
    if (nw > MAX_T)
        return h->fail(c, "precropping handles at most %d prunable tensors; the model has %d", MAX_T, nw);
    if (nw < 2 && st->mode == MODE_CROP)
        return h->fail(c, "precropping (mode=crop) needs two prunable tensors or more: the only one is the output layer");
    if ((rc = h->snapshot(c, 0)) || (rc = synflow_prune(h, c, st->rounds, sparsity)))
        return rc;
    size_t n[MAX_T], kept[MAX_T], total = 0, total_kept = 0;
    int units[MAX_T];
    for (int i = 0; i < nw; i++) {
        pb_weights t = {.size = sizeof t};
        if ((rc = h->weights(c, i, &t)))
            return rc;
        n[i] = t.n;
        units[i] = t.rows;
        kept[i] = 0;
        for (size_t j = 0; j < t.n; j++) {
            kept[i] += t.mask[j] != 0.0f;
            t.mask[j] = 1.0f;
        }
        total += n[i];
        h->log(c, "SynFlow keeps %zu of %zu weights of %s (density %.6f)", kept[i], n[i], t.name,
               (double)kept[i] / (double)n[i]);
    }
    if ((rc = h->rewind(c, 0))) /* the original initialization, unmasked */
        return rc;
    if (st->mode == MODE_RANDOM) {
        for (int i = 0; i < nw; i++) {
            pb_weights t = {.size = sizeof t};
            if ((rc = h->weights(c, i, &t)))
                return rc;
            size_t *idx = malloc((t.n ? t.n : 1) * sizeof *idx);
            if (!idx)
                return h->fail(c, "out of memory");
            for (size_t j = 0; j < t.n; j++) {
                idx[j] = j;
                t.mask[j] = 0.0f;
            }
            for (size_t j = 0; j < kept[i]; j++) { /* partial Fisher-Yates */
                size_t r = j + (size_t)((double)(h->random(c) >> 11) * 0x1p-53 * (double)(t.n - j));
                if (r >= t.n)
                    r = t.n - 1;
                size_t tmp = idx[j];
                idx[j] = idx[r];
                idx[r] = tmp;
                t.mask[idx[j]] = 1.0f;
            }
            free(idx);
            total_kept += kept[i];
        }
        h->apply_masks(c);
        return h->metric(c, "crop_density", (double)total_kept / (double)total);
    }
    double y[MAX_T], w[MAX_T], x[MAX_T];
    for (int i = 0; i < nw; i++) {
        /* an empty layer would ask for log 0: one weight is the least a layer can hold */
        double d = kept[i] ? (double)kept[i] / (double)n[i] : 1.0 / (double)n[i];
        y[i] = log(d);
        w[i] = st->fit == FIT_SIZE ? (double)n[i] : 1.0;
    }
    fit_log_ratios(nw, y, w, x);
    int keepn[MAX_T];
    for (int i = 0; i < nw - 1; i++) {
        double r = fmin(exp(x[i]), 1.0);
        long k = lround(r * units[i]);
        keepn[i] = (int)(k < 1 ? 1 : k > units[i] ? units[i] : k);
    }
    int maxu = 1;
    for (int i = 0; i < nw; i++)
        maxu = units[i] > maxu ? units[i] : maxu;
    int *keep = malloc((size_t)maxu * sizeof *keep);
    if (!keep)
        return h->fail(c, "out of memory");
    for (int u = 0; u < maxu; u++)
        keep[u] = u;
    for (int i = 0; i < nw - 1; i++)
        if (keepn[i] < units[i] && (rc = h->remove_units(c, i, keep, keepn[i]))) {
            free(keep);
            return rc;
        }
    free(keep);
    if ((rc = h->reinit(c, h->random(c))))
        return rc;
    for (int i = 0; i < nw; i++) {
        pb_weights t = {.size = sizeof t};
        if ((rc = h->weights(c, i, &t)))
            return rc;
        total_kept += t.n;
        char name[64];
        snprintf(name, sizeof name, "units.%s", t.name);
        for (char *q = name; *q; q++)
            if (!(isalnum((unsigned char)*q) || *q == '_' || *q == '.'))
                *q = '_';
        if (i < nw - 1 && (rc = h->metric(c, name, t.rows)))
            return rc;
        h->log(c, "%s: %d units, %zu weights (SynFlow's density %.6f, the cropped layer's %.6f)", t.name, t.rows,
               t.n, (double)kept[i] / (double)n[i], (double)t.n / (double)n[i]);
    }
    return h->metric(c, "crop_density", (double)total_kept / (double)total);
}

PB_PLUGIN_DEFINE(
    .name = "precropping",
    .description = "PreCropping: SynFlow's layer densities realised as a narrower dense network, trained from scratch",
    .kind = PB_KIND_STRUCTURED,
    .when = PB_WHEN_INIT,
    .params = params,
    .create = create,
    .destroy = pb_state_free,
    .prune = prune)
