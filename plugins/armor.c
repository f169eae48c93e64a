/* armor: a 2:4 core between block-diagonal wrappers (Liu et al., "ARMOR:
 * High-Performance Semi-Structured Pruning via Adaptive Matrix
 * Factorization", 2025). Each prunable tensor W (rows x cols) becomes
 *
 *     W^ = A (W' (.) M) B,   A: rows x rows, B: cols x cols, both block
 *     diagonal with blocks of d (the last block of each smaller if d does
 *     not divide), M an N:M mask (2:4 by default),
 *
 * fitted to the layer-wise objective L = sum_ij (W^ - W)_ij^2 ||X_j||^2
 * (X_j the j-th input over the calibration sample, normalised by its mean)
 * by block coordinate descent from A = B = I, W' = W and M = Wanda's N:M
 * mask: per iteration a gradient step on A, one on B and one on the kept
 * entries of W', each with a backtracking step size and accepted only if L
 * falls, then a greedy re-choice of every group's pattern (all C(m, n)
 * patterns, the change of L in closed form from the gradient and the group's
 * Gram matrix, applied one group at a time). L never increases; its first
 * and last values are the metrics loss_start and loss_end.
 *
 * The factors are the model: A's and B's blocks and the kept values of W'
 * are host arrays (add_array, trained by fine-tuning), and W^ is generated
 * from them before every forward pass (set_generator); so `stored` counts
 * the wrappers and the core (kept values only, not the pattern's 2 bits per
 * value) and not W^. The engine multiplies by the dense W^, but each tensor's
 * cost is reported as the factored form's (host->set_layer_cost, ABI 1.2):
 * per output position A (C (B x)) takes one multiply-add per kept core value
 * and per wrapper block entry, and those are the values it stores, so
 * flops_eff and the layer rows count them. The metrics macs_ratio.I (that
 * count over the dense tensor's) and stored_factored (its sum) say the same.
 *
 * Departures: the paper optimises the wrappers with Adam on the
 * reconstruction loss of transformer layers with the full X^T X; here the
 * diagonal weighting of METHODS.md and plain gradient steps with
 * backtracking (which make "never increases" exact). */
#include "pt_common.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { ARG_CALIB, ARG_N, ARG_M, ARG_D, ARG_ITERS };

static const pb_param_spec params[] = {
    {.name = "calib", .type = PB_PT_INT, .def = 128, .lo = 1, .hi = 1000000,
     .help = "calibration examples for ||X_j||"},
    {.name = "n", .type = PB_PT_INT, .def = 2, .lo = 1, .hi = 8, .help = "core: weights kept in each group"},
    {.name = "m", .type = PB_PT_INT, .def = 4, .lo = 1, .hi = 8, .help = "core: group size"},
    {.name = "d", .type = PB_PT_INT, .def = 16, .lo = 1, .hi = 4096,
     .help = "wrapper block size (rounded up to a multiple of m)"},
    {.name = "iters", .type = PB_PT_INT, .def = 40, .lo = 0, .hi = 100000,
     .help = "block coordinate descent iterations"},
    {.name = NULL},
};

#define MAX_TENSORS 64

/* One factored tensor. Blocks of A: rows [ob, ob + sb), values at pa[b]. */
typedef struct fac {
    int rows, cols, nbA, nbB;
    int *oA, *sA, *oB, *sB;
    size_t *pA, *pB, nA, nB;
    float *A, *B, *gA, *gB;      /* host arrays once placed; work copies during the fit */
    float *cv, *gcv;             /* kept values of W' (host array) */
    size_t ncore;
    size_t *cidx;                /* their flat positions */
    float *Cd, *T, *S;           /* scratch rows x cols */
} fac;

typedef struct state {
    int calib, n, m, d, iters;
    const pb_host *h;
    pb_ctx *c;
    int nf;
    fac f[MAX_TENSORS];
} state;

static void fac_free(fac *f)
{
    free(f->oA);
    free(f->sA);
    free(f->oB);
    free(f->sB);
    free(f->pA);
    free(f->pB);
    free(f->cidx);
    free(f->Cd);
    free(f->T);
    free(f->S);
}

static void destroy(void *p)
{
    state *st = p;
    for (int i = 0; st && i < st->nf; i++)
        fac_free(&st->f[i]);
    free(st);
}

static int create(const pb_host *h, pb_ctx *c, const double *args, void **out)
{
    int n = (int)args[ARG_N], m = (int)args[ARG_M], rc;
    if (n > m)
        return h->fail(c, "n=%d is larger than m=%d (a group of m weights cannot keep n)", n, m);
    if ((rc = PB_NEED_HOST(h, c, gemm)) || (rc = PB_NEED_HOST(h, c, add_array)) ||
        (rc = PB_NEED_HOST(h, c, set_generator)) || (rc = pt_check_calib(h, c, (int)args[ARG_CALIB])) ||
        (rc = pb_state_new(h, c, sizeof(state), out)))
        return rc;
    state *st = *out;
    st->calib = (int)args[ARG_CALIB];
    st->n = n;
    st->m = m;
    st->d = (int)args[ARG_D];
    if (st->d % m)
        st->d += m - st->d % m;
    st->iters = (int)args[ARG_ITERS];
    return PB_PLUGIN_OK;
}

static int blocks(int len, int d, int **o, int **s, size_t **p, size_t *total)
{
    int nb = (len + d - 1) / d;
    *o = malloc((size_t)nb * sizeof **o);
    *s = malloc((size_t)nb * sizeof **s);
    *p = malloc((size_t)nb * sizeof **p);
    if (!*o || !*s || !*p)
        return -1;
    size_t t = 0;
    for (int b = 0; b < nb; b++) {
        (*o)[b] = b * d;
        (*s)[b] = len - b * d < d ? len - b * d : d;
        (*p)[b] = t;
        t += (size_t)(*s)[b] * (*s)[b];
    }
    *total = t;
    return nb;
}

/* Y = op(A) X with A block diagonal over rows (X, Y rows x cols) */
static void lmul(const state *st, const fac *f, const float *A, int trans, const float *X, float *Y)
{
    for (int b = 0; b < f->nbA; b++)
        st->h->gemm(st->c, trans, 0, f->sA[b], f->cols, f->sA[b], 1.0f, A + f->pA[b], f->sA[b],
                    X + (size_t)f->oA[b] * f->cols, f->cols, 0.0f, Y + (size_t)f->oA[b] * f->cols, f->cols);
}

/* Y = X op(B) with B block diagonal over columns */
static void rmul(const state *st, const fac *f, const float *X, const float *B, int trans, float *Y)
{
    for (int b = 0; b < f->nbB; b++)
        st->h->gemm(st->c, 0, trans, f->rows, f->sB[b], f->sB[b], 1.0f, X + f->oB[b], f->cols, B + f->pB[b],
                    f->sB[b], 0.0f, Y + f->oB[b], f->cols);
}

/* W^ = A (C) B into out, C dense rows x cols (T = C B kept in f->T) */
static void product(const state *st, fac *f, const float *A, const float *Cm, const float *B, float *out)
{
    rmul(st, f, Cm, B, 0, f->T);
    lmul(st, f, A, 0, f->T, out);
}

/* ---- the generator: W^ from the host arrays ---- */

static void scatter_core(fac *f)
{
    memset(f->Cd, 0, (size_t)f->rows * f->cols * sizeof(float));
    for (size_t k = 0; k < f->ncore; k++)
        f->Cd[f->cidx[k]] = f->cv[k];
}

static void gen_generate(void *ud, int param, float *w, size_t n)
{
    state *st = ud;
    fac *f = &st->f[param];
    (void)n;
    scatter_core(f);
    product(st, f, f->A, f->Cd, f->B, w);
}

static void gen_backprop(void *ud, int param, const float *g, size_t n)
{
    state *st = ud;
    fac *f = &st->f[param];
    (void)n;
    scatter_core(f);
    /* dA = blockdiag(g T^T), T = C B; dB = blockdiag(S^T g), S = A C; dC = A^T g B^T at the kept entries */
    rmul(st, f, f->Cd, f->B, 0, f->T);
    lmul(st, f, f->A, 0, f->Cd, f->S);
    for (int b = 0; b < f->nbA; b++)
        st->h->gemm(st->c, 0, 1, f->sA[b], f->sA[b], f->cols, 1.0f, g + (size_t)f->oA[b] * f->cols, f->cols,
                    f->T + (size_t)f->oA[b] * f->cols, f->cols, 1.0f, f->gA + f->pA[b], f->sA[b]);
    for (int b = 0; b < f->nbB; b++)
        st->h->gemm(st->c, 1, 0, f->sB[b], f->sB[b], f->rows, 1.0f, f->S + f->oB[b], f->cols, g + f->oB[b], f->cols,
                    1.0f, f->gB + f->pB[b], f->sB[b]);
    lmul(st, f, f->A, 1, g, f->T);
    rmul(st, f, f->T, f->B, 1, f->S);
    for (size_t k = 0; k < f->ncore; k++)
        f->gcv[k] += f->S[f->cidx[k]];
}

/* ---- the fit ---- */

typedef struct fit {
    const float *W0;
    const double *D2;
    float *A, *B, *C, *M;   /* work values; C is W' (dense), M the mask */
    float *E, *What, *G, *tmpA, *tmpB, *tmpC;
} fit;

static double loss_of(const state *st, fac *f, fit *ft, const float *A, const float *B, const float *C)
{
    size_t nn = (size_t)f->rows * f->cols;
    for (size_t k = 0; k < nn; k++)
        f->Cd[k] = C[k] * ft->M[k];
    product(st, f, A, f->Cd, B, ft->What);
    double L = 0;
    for (size_t k = 0; k < nn; k++) {
        double e = (double)ft->What[k] - ft->W0[k];
        ft->E[k] = (float)e;
        L += e * e * ft->D2[k % (size_t)f->cols];
    }
    return L;
}

/* E' = 2 E D2 into ft->G */
static void scaled_err(fac *f, fit *ft)
{
    size_t nn = (size_t)f->rows * f->cols;
    for (size_t k = 0; k < nn; k++)
        ft->G[k] = (float)(2.0 * ft->E[k] * ft->D2[k % (size_t)f->cols]);
}

static double step(const state *st, fac *f, fit *ft, int which, double L, double *lr)
{
    /* gradient at the current point (E from the last loss_of at this point) */
    scaled_err(f, ft);
    size_t nn = (size_t)f->rows * f->cols;
    float *grad, *cur, *trial;
    size_t len;
    for (size_t k = 0; k < nn; k++)
        f->Cd[k] = ft->C[k] * ft->M[k];
    if (which == 0) { /* dA = blockdiag(G (C B)^T) */
        rmul(st, f, f->Cd, ft->B, 0, f->T);
        memset(ft->tmpA, 0, f->nA * sizeof(float));
        for (int b = 0; b < f->nbA; b++)
            st->h->gemm(st->c, 0, 1, f->sA[b], f->sA[b], f->cols, 1.0f, ft->G + (size_t)f->oA[b] * f->cols, f->cols,
                        f->T + (size_t)f->oA[b] * f->cols, f->cols, 0.0f, ft->tmpA + f->pA[b], f->sA[b]);
        grad = ft->tmpA;
        cur = ft->A;
        len = f->nA;
    } else if (which == 1) { /* dB = blockdiag((A C)^T G) */
        lmul(st, f, ft->A, 0, f->Cd, f->S);
        for (int b = 0; b < f->nbB; b++)
            st->h->gemm(st->c, 1, 0, f->sB[b], f->sB[b], f->rows, 1.0f, f->S + f->oB[b], f->cols, ft->G + f->oB[b],
                        f->cols, 0.0f, ft->tmpB + f->pB[b], f->sB[b]);
        grad = ft->tmpB;
        cur = ft->B;
        len = f->nB;
    } else { /* dC = A^T G B^T (.) M */
        lmul(st, f, ft->A, 1, ft->G, f->T);
        rmul(st, f, f->T, ft->B, 1, ft->tmpC);
        for (size_t k = 0; k < nn; k++)
            ft->tmpC[k] *= ft->M[k];
        grad = ft->tmpC;
        cur = ft->C;
        len = nn;
    }
    double gn = 0;
    for (size_t k = 0; k < len; k++)
        gn += (double)grad[k] * grad[k];
    if (!(gn > 0))
        return L;
    float *save = malloc(len * sizeof *save);
    if (!save)
        return L;
    memcpy(save, cur, len * sizeof *save);
    trial = cur;
    double best = L;
    int accepted = 0;
    for (int t = 0; t < 12 && !accepted; t++) {
        double a = *lr / sqrt(gn);  /* a step of length lr along -grad */
        for (size_t k = 0; k < len; k++)
            trial[k] = save[k] - (float)(a * grad[k]);
        double Lt = loss_of(st, f, ft, ft->A, ft->B, ft->C);
        if (Lt < L) {
            best = Lt;
            accepted = 1;
            *lr *= 1.5;
        } else {
            *lr *= 0.3;
        }
    }
    if (!accepted) {
        memcpy(cur, save, len * sizeof *save);
        best = loss_of(st, f, ft, ft->A, ft->B, ft->C);
    }
    free(save);
    return best;
}

/* Greedy pattern re-choice of every group; returns the new loss. */
static double rechoose(const state *st, fac *f, fit *ft, double L, long *changes)
{
    const int m = st->m, rows = f->rows, cols = f->cols;
    size_t nn = (size_t)rows * cols;
    /* P = A^T (E D2) B^T; the true loss is tracked in double through the changes */
    for (size_t k = 0; k < nn; k++)
        ft->G[k] = (float)(ft->E[k] * ft->D2[k % (size_t)cols]);
    lmul(st, f, ft->A, 1, ft->G, f->T);
    rmul(st, f, f->T, ft->B, 1, f->S); /* S = P */
    double *anorm = calloc((size_t)rows, sizeof *anorm);
    if (!anorm)
        return L;
    for (int b = 0; b < f->nbA; b++)
        for (int i = 0; i < f->sA[b]; i++)
            for (int r = 0; r < f->sA[b]; r++) {
                double a = ft->A[f->pA[b] + (size_t)i * f->sA[b] + r]; /* A[oA+i][oA+r] */
                anorm[f->oA[b] + r] += a * a;
            }
    double Q[64], p[8], delta[8], bestd[8], u[4096], v[4096];
    for (int g = 0; g < cols; g += m) {
        int len = cols - g < m ? cols - g : m, keep = pt_nm_keep(st->n, m, len);
        int bb = g / st->d; /* the B block holding the group (d is a multiple of m) */
        int ob = f->oB[bb], sb = f->sB[bb];
        const float *Bb = ft->B + f->pB[bb];
        for (int k = 0; k < len; k++)
            for (int l = 0; l < len; l++) {
                double s = 0;
                for (int j = 0; j < sb; j++)
                    s += (double)Bb[(size_t)(g - ob + k) * sb + j] * Bb[(size_t)(g - ob + l) * sb + j] * ft->D2[ob + j];
                Q[k * m + l] = s;
            }
        for (int r = 0; r < rows; r++) {
            size_t base = (size_t)r * cols + g;
            double bestv = 0;
            int bestmask = -1, curmask = 0;
            for (int k = 0; k < len; k++)
                curmask |= (ft->M[base + k] != 0.0f) << k;
            for (int k = 0; k < len; k++)
                p[k] = f->S[base + k];
            for (int pat = 0; pat < (1 << len); pat++) {
                if (__builtin_popcount((unsigned)pat) != keep || pat == curmask)
                    continue;
                for (int k = 0; k < len; k++)
                    delta[k] = (double)ft->C[base + k] * (((pat >> k) & 1) - ((curmask >> k) & 1));
                double dl = 0, qq = 0;
                for (int k = 0; k < len; k++) {
                    dl += 2 * delta[k] * p[k];
                    for (int l = 0; l < len; l++)
                        qq += delta[k] * Q[k * m + l] * delta[l];
                }
                dl += anorm[r] * qq;
                if (dl < bestv) {
                    bestv = dl;
                    bestmask = pat;
                    memcpy(bestd, delta, sizeof delta);
                }
            }
            if (bestmask < 0 || !(bestv < -1e-12 * (L > 0 ? L : 1)))
                continue;
            /* apply: E += a b^T on the (A block of r) x (B block) patch; P += (A^T a)(B (D2 b))^T */
            int ba = r / st->d, oa = f->oA[ba], sa = f->sA[ba];
            if (sa > 4096 || sb > 4096)
                continue;
            const float *Ab = ft->A + f->pA[ba];
            double bvec[4096];
            for (int j = 0; j < sb; j++) {
                double s = 0;
                for (int k = 0; k < len; k++)
                    s += bestd[k] * Bb[(size_t)(g - ob + k) * sb + j];
                bvec[j] = s;
            }
            for (int i = 0; i < sa; i++) {
                double ai = Ab[(size_t)i * sa + (r - oa)];
                for (int j = 0; j < sb; j++)
                    ft->E[(size_t)(oa + i) * cols + ob + j] += (float)(ai * bvec[j]);
            }
            for (int q = 0; q < sa; q++) { /* u = A_b^T a, a = column r-oa of A_b */
                double s = 0;
                for (int i = 0; i < sa; i++)
                    s += (double)Ab[(size_t)i * sa + q] * Ab[(size_t)i * sa + (r - oa)];
                u[q] = s;
            }
            for (int k = 0; k < sb; k++) { /* v = B_b (D2 b) */
                double s = 0;
                for (int j = 0; j < sb; j++)
                    s += (double)Bb[(size_t)k * sb + j] * ft->D2[ob + j] * bvec[j];
                v[k] = s;
            }
            for (int q = 0; q < sa; q++)
                for (int k = 0; k < sb; k++)
                    f->S[(size_t)(oa + q) * cols + ob + k] += (float)(u[q] * v[k]);
            for (int k = 0; k < len; k++)
                ft->M[base + k] = (float)((bestmask >> k) & 1);
            L += bestv;
            (*changes)++;
        }
    }
    free(anorm);
    return loss_of(st, f, ft, ft->A, ft->B, ft->C); /* exact, from scratch */
}

static int fit_tensor(state *st, int i, const pb_weights *wt, const double *norm, double *l0, double *l1)
{
    const pb_host *h = st->h;
    pb_ctx *c = st->c;
    fac *f = &st->f[i];
    f->rows = wt->rows;
    f->cols = wt->cols;
    size_t nn = wt->n;
    if ((f->nbA = blocks(f->rows, st->d, &f->oA, &f->sA, &f->pA, &f->nA)) < 0 ||
        (f->nbB = blocks(f->cols, st->d, &f->oB, &f->sB, &f->pB, &f->nB)) < 0)
        return h->fail(c, "out of memory");
    f->Cd = malloc(nn * sizeof(float));
    f->T = malloc(nn * sizeof(float));
    f->S = malloc(nn * sizeof(float));
    fit ft = {0};
    double *D2 = malloc((size_t)f->cols * sizeof *D2);
    float *buf = malloc((nn * 7 + f->nA * 2 + f->nB * 2) * sizeof(float));
    int *idx = malloc((size_t)st->m * sizeof *idx);
    if (!f->Cd || !f->T || !f->S || !D2 || !buf || !idx) {
        free(D2);
        free(buf);
        free(idx);
        return h->fail(c, "out of memory");
    }
    double mean = 0;
    for (int j = 0; j < f->cols; j++)
        mean += norm[j] * norm[j];
    mean /= f->cols;
    for (int j = 0; j < f->cols; j++)
        D2[j] = mean > 0 ? norm[j] * norm[j] / mean : 1.0;
    float *q = buf;
    ft.W0 = wt->w;
    ft.D2 = D2;
    float *W0 = q;
    q += nn;
    memcpy(W0, wt->w, nn * sizeof(float));
    ft.W0 = W0;
    ft.C = q, q += nn;
    ft.M = q, q += nn;
    ft.E = q, q += nn;
    ft.What = q, q += nn;
    ft.G = q, q += nn;
    ft.tmpC = q, q += nn;
    ft.A = q, q += f->nA;
    ft.tmpA = q, q += f->nA;
    ft.B = q, q += f->nB;
    ft.tmpB = q, q += f->nB;
    memcpy(ft.C, W0, nn * sizeof(float));
    memcpy(ft.M, wt->mask, nn * sizeof(float));
    pt_nm_tensor(W0, ft.M, norm, f->rows, f->cols, st->n, st->m, idx);
    memset(ft.A, 0, f->nA * sizeof(float));
    memset(ft.B, 0, f->nB * sizeof(float));
    for (int b = 0; b < f->nbA; b++)
        for (int k = 0; k < f->sA[b]; k++)
            ft.A[f->pA[b] + (size_t)k * f->sA[b] + k] = 1.0f;
    for (int b = 0; b < f->nbB; b++)
        for (int k = 0; k < f->sB[b]; k++)
            ft.B[f->pB[b] + (size_t)k * f->sB[b] + k] = 1.0f;
    double L = loss_of(st, f, &ft, ft.A, ft.B, ft.C);
    *l0 = L;
    double lr[3];
    double wn = 0;
    for (size_t k = 0; k < nn; k++)
        wn += (double)W0[k] * W0[k];
    lr[0] = lr[1] = 0.01 * sqrt((double)f->rows);
    lr[2] = 0.01 * sqrt(wn);
    long changes = 0;
    int increases = 0;
    for (int it = 0; it < st->iters; it++) {
        double before = L;
        for (int which = 0; which < 3; which++)
            L = step(st, f, &ft, which, L, &lr[which]);
        L = rechoose(st, f, &ft, L, &changes);
        increases += L > before;
    }
    *l1 = L;
    /* the factors become host arrays: the kept values of W', A's and B's blocks */
    size_t ncore = 0;
    for (size_t k = 0; k < nn; k++)
        ncore += ft.M[k] != 0.0f;
    f->ncore = ncore;
    f->cidx = malloc((ncore + 1) * sizeof *f->cidx);
    char name[96];
    int rc = f->cidx ? PB_PLUGIN_OK : h->fail(c, "out of memory");
    snprintf(name, sizeof name, "%s.armor_core", wt->name);
    if (rc == PB_PLUGIN_OK)
        rc = h->add_array(c, name, ncore ? ncore : 1, &f->cv, &f->gcv);
    snprintf(name, sizeof name, "%s.armor_A", wt->name);
    if (rc == PB_PLUGIN_OK)
        rc = h->add_array(c, name, f->nA, &f->A, &f->gA);
    snprintf(name, sizeof name, "%s.armor_B", wt->name);
    if (rc == PB_PLUGIN_OK)
        rc = h->add_array(c, name, f->nB, &f->B, &f->gB);
    if (rc == PB_PLUGIN_OK) {
        size_t t = 0;
        for (size_t k = 0; k < nn; k++)
            if (ft.M[k] != 0.0f) {
                f->cidx[t] = k;
                f->cv[t++] = ft.C[k];
            }
        memcpy(f->A, ft.A, f->nA * sizeof(float));
        memcpy(f->B, ft.B, f->nB * sizeof(float));
        h->log(c, "%s: loss %.6g -> %.6g in %d iterations (%ld pattern changes, %d increases); core %zu, "
                  "wrappers %zu + %zu", wt->name, *l0, *l1, st->iters, changes, increases, ncore, f->nA, f->nB);
        if (increases)
            rc = h->fail(c, "%s: the objective increased in %d iterations", wt->name, increases);
    }
    free(D2);
    free(buf);
    free(idx);
    return rc;
}

static int prune(void *p, const pb_host *h, pb_ctx *c, double sparsity)
{
    state *st = p;
    int nw, rc;
    (void)sparsity;
    if ((rc = pb_need_weights(h, c, &nw)) != PB_PLUGIN_OK)
        return rc;
    if (nw > MAX_TENSORS)
        return h->fail(c, "the model has %d prunable tensors, more than %d", nw, MAX_TENSORS);
    if (st->nf)
        return h->fail(c, "armor prunes once per run");
    st->h = h;
    st->c = c;
    double **norm = NULL;
    if ((rc = pt_input_norms(h, c, st->calib, &norm)) != PB_PLUGIN_OK)
        return rc;
    double ls0 = 0, ls1 = 0, stored = 0;
    for (int i = 0; i < nw && rc == PB_PLUGIN_OK; i++) {
        pb_weights wt = {.size = sizeof wt};
        if ((rc = h->weights(c, i, &wt)) != PB_PLUGIN_OK)
            break;
        double l0 = 0, l1 = 0;
        st->nf = i + 1;
        if ((rc = fit_tensor(st, i, &wt, norm[i], &l0, &l1)) != PB_PLUGIN_OK)
            break;
        ls0 += l0;
        ls1 += l1;
        fac *f = &st->f[i];
        if (PB_HOST_HAS(h, metric)) { /* multiply-adds of the factored form over the dense tensor's */
            char name[64];
            snprintf(name, sizeof name, "macs_ratio.%d", i);
            h->metric(c, name, ((double)f->ncore + (double)f->nA + (double)f->nB) / (double)wt.n);
        }
        stored += (double)f->ncore + (double)f->nA + (double)f->nB;
        /* y = A (C (B x)): per output position the kept core values and the
         * wrappers' block entries are one multiply-add each, and those values
         * are what the tensor stores (not the pattern's 2 bits per value) */
        if (PB_HOST_HAS(h, set_layer_cost))
            rc = h->set_layer_cost(c, i, (double)f->ncore + (double)f->nA + (double)f->nB,
                                   (double)f->ncore + (double)f->nA + (double)f->nB);
        /* the mask of a generated tensor stays all ones: W^ is dense */
        for (size_t k = 0; k < wt.n; k++)
            wt.mask[k] = 1.0f;
        pb_generator gen = {.ud = st, .generate = gen_generate, .backprop = gen_backprop};
        if (rc == PB_PLUGIN_OK)
            rc = h->set_generator(c, i, &gen);
    }
    pt_free_rows(norm, nw);
    if (rc != PB_PLUGIN_OK)
        return rc;
    if (PB_HOST_HAS(h, metric)) {
        h->metric(c, "loss_start", ls0);
        h->metric(c, "loss_end", ls1);
        h->metric(c, "stored_factored", stored);
    }
    h->log(c, "objective %.6g (Wanda %d:%d) -> %.6g", ls0, st->n, st->m, ls1);
    return PB_PLUGIN_OK;
}

PB_PLUGIN_DEFINE(
    .name = "armor",
    .description = "ARMOR: an N:M core between block-diagonal wrappers, A (W' (.) M) B, fitted layer by layer",
    .kind = PB_KIND_POSTTRAIN,
    .when = PB_WHEN_TRAINED,
    .params = params,
    .create = create,
    .destroy = destroy,
    .prune = prune,
    .needs = PB_NEEDS_CALIBRATION)
