/* sparsegpt: one-shot pruning with optimal-brain-surgeon updates (Frantar and
 * Alistarh, "SparseGPT: Massive Language Models Can Be Accurately Pruned in
 * One-Shot", ICML 2023; Algorithm 1 and the reference implementation).
 *
 * Layers are processed in order; each layer's input is recorded on the run's
 * calibration sample with every earlier layer already pruned and updated. Per
 * layer: H = (2/N) X^T X over the N rows of its (unfolded) input, inputs
 * never active get H_jj = 1 and their weights zeroed, H += lambda I with
 * lambda = damp * mean(diag H); U = the upper Cholesky factor of H^-1. The
 * columns are walked in blocks of `block`: the mask of a block is chosen by
 * the smallest w^2 / U_jj^2 (N:M: per row and group of m, at the group's
 * first column), and after each column i its error e = (w_i - q_i) / U_ii is
 * spread over the block's later columns, W[:, i:] -= e U[i, i:]; the block's
 * errors update all later columns at once with one GEMM (lazy batch update).
 *
 * Departures. The reference picks a block's mask as the smallest s fraction
 * of the block; here block b prunes llround(s*rows*end_b) - llround(s*rows*
 * start_b) weights, so the layer prunes exactly llround(s * size). U comes
 * from a Cholesky factorization of H with the index order reversed (H = R R^T,
 * R upper, U = R^-1), one factorization instead of the reference's three;
 * the test against the closed-form OBS update checks it. H and U are computed
 * in double, the weight updates in float as in the reference. A layer whose
 * damped H is not positive definite fails with its name. */
#include "pt_common.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { ARG_CALIB, ARG_N, ARG_M, ARG_BLOCK, ARG_DAMP };

static const pb_param_spec params[] = {
    {.name = "calib", .type = PB_PT_INT, .def = 128, .lo = 1, .hi = 1000000,
     .help = "calibration examples (a calibrate stage's sample wins)"},
    {.name = "n", .type = PB_PT_INT, .def = 0, .lo = 0, .hi = 1024,
     .help = "N:M: weights kept in each group (0: unstructured, at the run's sparsity)"},
    {.name = "m", .type = PB_PT_INT, .def = 4, .lo = 1, .hi = 1024, .help = "N:M: group size"},
    {.name = "block", .type = PB_PT_INT, .def = 128, .lo = 1, .hi = 65536,
     .help = "columns per block of lazy updates (N:M: rounded up to a multiple of m)"},
    {.name = "damp", .type = PB_PT_REAL, .def = 0.01, .lo = 0, .hi = 10,
     .help = "dampening: lambda = damp * mean(diag H)"},
    {.name = NULL},
};

typedef struct state {
    int calib, n, m, block;
    double damp;
} state;

static int create(const pb_host *h, pb_ctx *c, const double *args, void **out)
{
    int n = (int)args[ARG_N], m = (int)args[ARG_M], rc;
    if (n > m)
        return h->fail(c, "n=%d is larger than m=%d (a group of m weights cannot keep n)", n, m);
    if ((rc = PB_NEED_HOST(h, c, calibrate_on)) || (rc = PB_NEED_HOST(h, c, calibration_sample)) ||
        (rc = PB_NEED_HOST(h, c, gemm)) || (rc = PB_NEED_HOST(h, c, select_kth)) ||
        (rc = pt_check_calib(h, c, (int)args[ARG_CALIB])) || (rc = pb_state_new(h, c, sizeof(state), out)))
        return rc;
    state *st = *out;
    st->calib = (int)args[ARG_CALIB];
    st->n = n;
    st->m = m;
    st->block = (int)args[ARG_BLOCK];
    if (n > 0 && st->block % m)
        st->block += m - st->block % m;
    st->damp = args[ARG_DAMP];
    return PB_PLUGIN_OK;
}

/* U (upper, row-major, n x n) with U^T U = H^-1, from H (destroyed): with J
 * the index reversal, J H J = L L^T gives H = R R^T, R = J L J upper, and
 * U = R^-1 = J L^-1 J. */
static int inverse_factor(double *H, int n, double *U)
{
    double *G = U; /* J H J, factored in place, then L^-1 read into H */
    for (int a = 0; a < n; a++)
        for (int b = 0; b < n; b++)
            G[(size_t)a * n + b] = H[(size_t)(n - 1 - a) * n + (n - 1 - b)];
    if (pt_cholesky(G, n) != 0)
        return -1;
    double *Li = H;
    memset(Li, 0, (size_t)n * n * sizeof *Li);
    double *x = malloc((size_t)n * sizeof *x);
    if (!x)
        return -2;
    for (int j = 0; j < n; j++) {
        for (int i = j; i < n; i++) {
            const double *gi = G + (size_t)i * n;
            double s = i == j ? 1.0 : 0.0;
            for (int k = j; k < i; k++)
                s -= gi[k] * x[k];
            x[i] = s / gi[i];
        }
        for (int i = j; i < n; i++)
            Li[(size_t)i * n + j] = x[i];
    }
    free(x);
    for (int a = 0; a < n; a++)
        for (int b = 0; b < n; b++)
            U[(size_t)a * n + b] = Li[(size_t)(n - 1 - a) * n + (n - 1 - b)];
    return 0;
}

/* Prunes and updates one tensor given its H (cols x cols, destroyed). */
static int prune_layer(const state *st, const pb_host *h, pb_ctx *c, pb_weights *wt, double *H, long nrows,
                       double sparsity, size_t *kept)
{
    const int rows = wt->rows, cols = wt->cols;
    float *W = wt->w, *M = wt->mask;
    double mean = 0, scale = 2.0 / (double)(nrows > 0 ? nrows : 1);
    for (size_t k = 0; k < (size_t)cols * cols; k++)
        H[k] *= scale;
    for (int j = 0; j < cols; j++) {
        double *hj = H + (size_t)j * cols + j;
        if (*hj == 0.0) { /* an input never active: its weights do nothing on the sample */
            *hj = 1.0;
            for (int r = 0; r < rows; r++)
                W[(size_t)r * cols + j] = 0.0f;
        }
        mean += *hj;
    }
    double lambda = st->damp * mean / cols;
    for (int j = 0; j < cols; j++)
        H[(size_t)j * cols + j] += lambda;
    size_t nn = (size_t)cols * cols;
    double *U = malloc(nn * sizeof *U);
    float *Uf = malloc(nn * sizeof *Uf), *invd = malloc((size_t)cols * sizeof *invd);
    double *invdd = malloc((size_t)cols * sizeof *invdd);
    int B = st->block < cols ? st->block : cols;
    float *E = malloc((size_t)rows * B * sizeof *E), *bs = malloc((size_t)rows * B * sizeof *bs),
          *bm = malloc((size_t)rows * B * sizeof *bm), *tmp = malloc((size_t)rows * B * sizeof *tmp);
    int *idx = malloc((size_t)(st->m + 1) * sizeof *idx);
    int rc = PB_PLUGIN_OK;
    if (!U || !Uf || !invd || !invdd || !E || !bs || !bm || !tmp || !idx) {
        rc = h->fail(c, "out of memory");
        goto out;
    }
    int f = inverse_factor(H, cols, U);
    if (f != 0) {
        rc = f == -2 ? h->fail(c, "out of memory")
                     : h->fail(c, "%s: the damped Hessian is not positive definite (raise damp=%g)", wt->name,
                               st->damp);
        goto out;
    }
    for (size_t k = 0; k < nn; k++)
        Uf[k] = (float)U[k];
    for (int j = 0; j < cols; j++) {
        invdd[j] = 1.0 / U[(size_t)j * cols + j];
        invd[j] = (float)invdd[j];
    }
    for (int i1 = 0; i1 < cols; i1 += B) {
        int i2 = i1 + B < cols ? i1 + B : cols, len = i2 - i1;
        if (st->n == 0) {
            long long P = llround(sparsity * (double)rows * i2) - llround(sparsity * (double)rows * i1);
            for (int r = 0; r < rows; r++)
                for (int j = 0; j < len; j++) {
                    size_t k = (size_t)r * cols + i1 + j;
                    float s = W[k] * invd[i1 + j];
                    bs[(size_t)r * len + j] = s * s;
                    bm[(size_t)r * len + j] = M[k];
                }
            long long keep = (long long)rows * len - P;
            pt_keep_top(h, bs, bm, rows * len, keep > 0 ? (int)keep : 0, tmp);
            for (int r = 0; r < rows; r++)
                for (int j = 0; j < len; j++)
                    M[(size_t)r * cols + i1 + j] = bm[(size_t)r * len + j];
        }
        for (int i = i1; i < i2; i++) {
            if (st->n > 0 && (i - i1) % st->m == 0) {
                int g = cols - i < st->m ? cols - i : st->m;
                for (int r = 0; r < rows; r++)
                    pt_nm_group(W + (size_t)r * cols + i, M + (size_t)r * cols + i, invdd + i, g,
                                pt_nm_keep(st->n, st->m, g), idx);
            }
            const float *ui = Uf + (size_t)i * cols;
            for (int r = 0; r < rows; r++) {
                float *wr = W + (size_t)r * cols;
                float w = wr[i], q = M[(size_t)r * cols + i] != 0.0f ? w : 0.0f;
                float e = (w - q) * invd[i];
                wr[i] = q;
                E[(size_t)r * len + (i - i1)] = e;
                if (e != 0.0f)
                    for (int k = i + 1; k < i2; k++)
                        wr[k] -= e * ui[k];
            }
        }
        if (i2 < cols)
            h->gemm(c, 0, 0, rows, cols - i2, len, -1.0f, E, len, Uf + (size_t)i1 * cols + i2, cols, 1.0f, W + i2,
                    cols);
    }
    for (size_t k = 0; k < (size_t)rows * cols; k++)
        *kept += M[k] != 0.0f;
out:
    free(U);
    free(Uf);
    free(invd);
    free(invdd);
    free(E);
    free(bs);
    free(bm);
    free(tmp);
    free(idx);
    return rc;
}

typedef struct first_gram {
    const pb_host *h;
    pb_ctx *c;
    int cols;
    double *H;
    float *tmp;
    long rows;
    int bad;
} first_gram;

static void on_first(void *ud, int param, const float *x, int nrows, int cols)
{
    first_gram *a = ud;
    if (param != 0)
        return;
    if (cols != a->cols) {
        a->bad = 1;
        return;
    }
    for (int r0 = 0; r0 < nrows; r0 += 256) {
        int nr = nrows - r0 < 256 ? nrows - r0 : 256;
        const float *xr = x + (size_t)r0 * cols;
        a->h->gemm(a->c, 1, 0, cols, cols, nr, 1.0f, xr, cols, xr, cols, 0.0f, a->tmp, cols);
        for (size_t k = 0; k < (size_t)cols * cols; k++)
            a->H[k] += a->tmp[k];
    }
    a->rows += nrows;
}

static int prune(void *p, const pb_host *h, pb_ctx *c, double sparsity)
{
    const state *st = p;
    int nw, rc;
    if ((rc = pb_need_weights(h, c, &nw)) || (rc = pb_check_sparsity(h, c, sparsity, PB_SPARSITY_TO_1)))
        return rc;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    size_t kept = 0, total = 0;
    const int *idx = NULL;
    int nidx = 0;
    for (int i = 0; i < nw && rc == PB_PLUGIN_OK; i++) {
        pb_weights wt = {.size = sizeof wt};
        if ((rc = h->weights(c, i, &wt)) != PB_PLUGIN_OK)
            break;
        double *H = calloc((size_t)wt.cols * wt.cols, sizeof *H);
        if (!H) {
            rc = h->fail(c, "out of memory");
            break;
        }
        long nrows = 0;
        if (i == 0) {
            /* the first pass draws (or reads) the run's sample; later layers reuse it */
            first_gram a = {h, c, wt.cols, H, malloc((size_t)wt.cols * wt.cols * sizeof(float)), 0, 0};
            if (!a.tmp)
                rc = h->fail(c, "out of memory");
            else if ((rc = h->calibrate(c, st->calib, on_first, &a)) == PB_PLUGIN_OK && a.bad)
                rc = h->fail(c, "calibration gave %s an input whose width is not its %d columns", wt.name, wt.cols);
            free(a.tmp);
            nrows = a.rows;
            if (rc == PB_PLUGIN_OK)
                rc = h->calibration_sample(c, &idx, &nidx);
        } else {
            rc = pt_gram_on(h, c, idx, nidx, i, wt.cols, H, &nrows);
        }
        if (rc == PB_PLUGIN_OK)
            rc = prune_layer(st, h, c, &wt, H, nrows, sparsity, &kept);
        free(H);
        total += wt.n;
        h->apply_masks(c); /* the next layer's calibration sees this one pruned */
    }
    if (rc != PB_PLUGIN_OK)
        return rc;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    h->log(c, "sparsegpt%s: sparsity %.4f over %d tensors in %.3f s", st->n ? " N:M" : "",
           total ? 1.0 - (double)kept / (double)total : 0.0, nw, secs);
    return PB_HOST_HAS(h, metric) ? h->metric(c, "prune_s", secs) : PB_PLUGIN_OK;
}

PB_PLUGIN_DEFINE(
    .name = "sparsegpt",
    .description = "SparseGPT: layer by layer OBS pruning with lazy column-block updates; unstructured or N:M",
    .kind = PB_KIND_POSTTRAIN,
    .when = PB_WHEN_TRAINED,
    .params = params,
    .create = create,
    .destroy = pb_state_free,
    .prune = prune,
    .needs = PB_NEEDS_CALIBRATION)
