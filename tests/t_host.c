/* The host functions of ABI 1.1, called the way a plugin calls them: through
 * pb_host_table, on a context over a small model and the synthetic data set. */
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/pb_data.h"
#include "engine/pb_hvp.h"
#include "engine/pb_model.h"
#include "engine/pb_par.h"
#include "engine/pb_train.h"
#include "host/pb_host.h"
#include "tap.h"

static const pb_host *const H = &pb_host_table;
static pb_dataset train, test;

/* ---------- models, contexts ---------- */

static pb_train_cfg quick_cfg(int epochs)
{
    pb_train_cfg c;
    pb_train_defaults(&c);
    c.epochs = epochs;
    c.batch = 32;
    c.opt.lr = 0.05;
    c.eval_every = 0;
    c.log_epochs = 0;
    return c;
}

/* An MLP 64-16-4: no BN, no dropout, so train-mode and eval-mode forwards agree. */
static int mlp(pb_model *m, uint64_t seed, char *err, size_t errlen)
{
    static const int hidden[] = {16};
    int rc = pb_model_build(m, "mlp", 1.0, hidden, 1, 1, 8, 8, 4, err, errlen);
    if (rc == PB_OK)
        rc = pb_model_finalize(m, 32, err, errlen);
    if (rc == PB_OK)
        pb_model_init_weights(m, seed);
    return rc;
}

/* conv 3x3 pad 1 (3 channels), ReLU, 2x2 max pool, conv 3x3 stride 2 pad 1
 * (4 channels), flatten, dense: padding and a stride in the unfolded rows. */
static int convnet(pb_model *m, uint64_t seed, char *err, size_t errlen)
{
    pb_model_init(m, "custom", 1, 8, 8, 4);
    if (pb_model_conv(m, NULL, 3, 3, 1, 1, 1, err, errlen) < 0 || pb_model_simple(m, PB_RELU, err, errlen) < 0 ||
        pb_model_pool(m, PB_MAXPOOL, 2, 2, err, errlen) < 0 || pb_model_conv(m, NULL, 4, 3, 2, 1, 1, err, errlen) < 0 ||
        pb_model_simple(m, PB_FLATTEN, err, errlen) < 0 || pb_model_dense(m, NULL, 4, 1, err, errlen) < 0)
        return PB_EUSAGE;
    int rc = pb_model_finalize(m, 16, err, errlen);
    if (rc == PB_OK)
        pb_model_init_weights(m, seed);
    return rc;
}

static int ctx_open(pb_ctx *c, pb_model *m, uint64_t seed, char *err, size_t errlen)
{
    pb_train_cfg cfg = quick_cfg(1);
    int rc = pb_ctx_init(c, m, &train, &test, &cfg, seed, err, errlen);
    if (rc != PB_OK)
        printf("# context: %s\n", err);
    return rc;
}

static size_t input_size(void) { return (size_t)train.c * train.h * train.w; }

/* ---------- calibration ---------- */

/* Every row the callback saw, per tensor, in call order. */
typedef struct rows {
    float *x[8];
    size_t n[8];      /* floats */
    int cols[8];
    int calls[8];
} rows;

static void rows_cb(void *ud, int param, const float *x, int nrows, int cols)
{
    rows *r = ud;
    if (param < 0 || param >= 8)
        return;
    size_t add = (size_t)nrows * cols;
    r->x[param] = realloc(r->x[param], (r->n[param] + add) * sizeof(float));
    memcpy(r->x[param] + r->n[param], x, add * sizeof(float));
    r->n[param] += add;
    r->cols[param] = cols;
    r->calls[param]++;
}

static void rows_free(rows *r)
{
    for (int i = 0; i < 8; i++)
        free(r->x[i]);
    memset(r, 0, sizeof *r);
}

static int rows_equal(const rows *a, const rows *b, int param)
{
    return a->n[param] == b->n[param] && a->cols[param] == b->cols[param] &&
           (!a->n[param] || !memcmp(a->x[param], b->x[param], a->n[param] * sizeof(float)));
}

/* Example e's unfolded input of the conv layer l, written out from the
 * layer's input x (ic x ih x iw) as im2col with zero padding. */
static void unfold(const pb_layer *l, const float *x, float *out)
{
    int K = l->k, cols = l->ic * K * K;
    for (int oy = 0; oy < l->oh; oy++)
        for (int ox = 0; ox < l->ow; ox++)
            for (int ci = 0; ci < l->ic; ci++)
                for (int ky = 0; ky < K; ky++)
                    for (int kx = 0; kx < K; kx++) {
                        int iy = oy * l->stride - l->pad + ky, ix = ox * l->stride - l->pad + kx;
                        int in = iy >= 0 && iy < l->ih && ix >= 0 && ix < l->iw;
                        out[((size_t)oy * l->ow + ox) * cols + (ci * K + ky) * K + kx] =
                            in ? x[((size_t)ci * l->ih + iy) * l->iw + ix] : 0.0f;
                    }
}

/* The direct convolution (no bias) of x with output channel o at (oy, ox). */
static double conv_at(const pb_layer *l, const float *x, int o, int oy, int ox)
{
    double s = 0;
    int K = l->k;
    for (int ci = 0; ci < l->ic; ci++)
        for (int ky = 0; ky < K; ky++)
            for (int kx = 0; kx < K; kx++) {
                int iy = oy * l->stride - l->pad + ky, ix = ox * l->stride - l->pad + kx;
                if (iy >= 0 && iy < l->ih && ix >= 0 && ix < l->iw)
                    s += (double)l->w->w[((o * l->ic + ci) * K + ky) * K + kx] *
                         x[((size_t)ci * l->ih + iy) * l->iw + ix];
            }
    return s;
}

static void test_calibrate_on(void)
{
    char err[PB_ERRLEN];
    pb_model m;
    pb_ctx c;
    if (convnet(&m, 3, err, sizeof err) != PB_OK || ctx_open(&c, &m, 7, err, sizeof err) != PB_OK) {
        printf("# %s\n", err);
        for (int i = 0; i < 8; i++)
            ok(0, "calibrate_on set-up");
        return;
    }
    /* the run's sample, as calibrate() uses it, against calibrate_on on the same examples */
    rows all = {0}, sub = {0};
    int rc = H->calibrate(&c, 40, rows_cb, &all);
    const int *idx = NULL;
    int n = 0;
    rc = rc ? rc : H->calibration_sample(&c, &idx, &n);
    static const int params[] = {2, 0};
    rc = rc ? rc : H->calibrate_on(&c, idx, n, params, 2, rows_cb, &sub);
    ok(rc == PB_OK && n == 40 && sub.calls[0] && sub.calls[2] && !sub.calls[1] && all.calls[1],
       "calibrate_on with tensors {2, 0} calls back for those two only (calls %d %d %d; %s)", sub.calls[0],
       sub.calls[1], sub.calls[2], rc ? err : "ok");
    ok(rows_equal(&all, &sub, 0) && rows_equal(&all, &sub, 2) && sub.cols[0] == 9 && sub.cols[2] == 16 &&
           sub.n[0] == (size_t)40 * 64 * 9,
       "its rows are calibrate()'s rows on the same examples (conv1 %zu floats of %d columns)", sub.n[0],
       sub.cols[0]);
    rows_free(&all);
    rows_free(&sub);

    /* the unfolded rows of one example, written out from each conv layer's input */
    int ex[] = {17};
    rc = H->calibrate_on(&c, ex, 1, NULL, 0, rows_cb, &sub);
    float *x = malloc(input_size() * sizeof(float));
    int y;
    pb_data_batch(&train, ex, 1, NULL, x, &y);
    pb_model_forward(&m, x, 1, 0);
    int good = rc == PB_OK, dots = 1;
    for (int t = 0; t < 2 && good; t++) {
        const pb_layer *l = &m.layers[pb_model_prunable(&m, t)->layer];
        const float *in = l->in < 0 ? x : m.layers[l->in].out;
        int P = l->oh * l->ow, cols = l->ic * l->k * l->k;
        float *want = malloc((size_t)P * cols * sizeof(float));
        unfold(l, in, want);
        good = sub.n[t] == (size_t)P * cols && !memcmp(sub.x[t], want, (size_t)P * cols * sizeof(float));
        /* and a row times a weight row is the convolution at that position */
        for (int o = 0; o < l->oc; o++) {
            int oy = l->oh - 1, ox = 1, p = oy * l->ow + ox;
            double d = 0;
            for (int j = 0; j < cols; j++)
                d += (double)sub.x[t][(size_t)p * cols + j] * l->w->w[(size_t)o * cols + j];
            dots &= fabs(d - conv_at(l, in, o, oy, ox)) < 1e-5;
        }
        free(want);
    }
    ok(good, "conv rows (pad 1, and stride 2) equal im2col of the layer's input, every position");
    ok(good && dots, "a row times a weight row is the direct convolution at that output position");
    free(x);
    rows_free(&sub);

    static const int bad_t[] = {0, 3};
    c.err[0] = 0;
    rc = H->calibrate_on(&c, ex, 1, bad_t, 2, rows_cb, &sub);
    ok(rc != PB_OK && strstr(err, "weight tensor 3 of 3") && !sub.calls[0],
       "tensor 3 of 3 is refused before any forward (%s)", err);
    int bad_ex[] = {1, train.n};
    err[0] = 0;
    rc = H->calibrate_on(&c, bad_ex, 2, NULL, 0, rows_cb, &sub);
    ok(rc != PB_OK && strstr(err, "example 256 not in [0, 256)"), "an example past the data is refused (%s)", err);
    rows_free(&sub);
    pb_ctx_free(&c);
    pb_model_free(&m);
}

static void test_calibration_sample(void)
{
    char err[PB_ERRLEN];
    pb_model m;
    pb_ctx a, b, d;
    if (mlp(&m, 1, err, sizeof err) != PB_OK || ctx_open(&a, &m, 11, err, sizeof err) != PB_OK ||
        ctx_open(&b, &m, 11, err, sizeof err) != PB_OK || ctx_open(&d, &m, 12, err, sizeof err) != PB_OK) {
        for (int i = 0; i < 4; i++)
            ok(0, "calibration_sample set-up");
        return;
    }
    const int *i1, *i2, *ib, *id;
    int n1, n2, nb, nd;
    H->calibration_sample(&a, &i1, &n1);
    int *first = malloc((size_t)n1 * sizeof(int));
    memcpy(first, i1, (size_t)n1 * sizeof(int));
    /* the context's own stream moves in between: the sample must not */
    H->random(&a);
    H->grad(&a, 16, 1.0, NULL);
    H->calibration_sample(&a, &i2, &n2);
    int sorted = 1;
    for (int i = 1; i < n1; i++)
        sorted &= first[i] == first[i - 1] + 1;
    ok(n1 == 128 && n2 == n1 && !memcmp(first, i2, (size_t)n1 * sizeof(int)) && !sorted,
       "calibration_sample gives the same %d examples on every call (a shuffled draw of %d)", n1, train.n);

    /* calibrate() feeds those very examples: fc1's rows are their inputs */
    rows r = {0};
    int rc = H->calibrate(&a, 0, rows_cb, &r);
    float *x = malloc((size_t)n1 * input_size() * sizeof(float));
    int *y = malloc((size_t)n1 * sizeof(int));
    pb_data_batch(&train, first, n1, NULL, x, y);
    ok(rc == PB_OK && r.n[0] == (size_t)n1 * input_size() && !memcmp(r.x[0], x, r.n[0] * sizeof(float)),
       "calibrate() runs on the calibration sample (fc1's rows are those examples' inputs)");
    rows_free(&r);
    free(x);
    free(y);

    /* b has drawn from its stream before its first sample, a had not */
    H->random(&b);
    H->grad(&b, 16, 1.0, NULL);
    H->calibration_sample(&b, &ib, &nb);
    H->calibration_sample(&d, &id, &nd);
    ok(nb == n1 && !memcmp(ib, first, (size_t)n1 * sizeof(int)) && nd == n1 &&
           memcmp(id, first, (size_t)n1 * sizeof(int)),
       "two contexts with seed 11 draw the same sample whatever else they drew first, seed 12 another");

    rows r1 = {0}, r2 = {0};
    rc = H->calibrate(&b, 40, rows_cb, &r1);
    rc = rc ? rc : H->calibrate(&b, 40, rows_cb, &r2);
    ok(rc == PB_OK && r1.n[0] == (size_t)40 * input_size() && rows_equal(&r1, &r2, 0) && rows_equal(&r1, &r2, 1),
       "calibrate(40) twice sees identical inputs in every layer");
    rows_free(&r1);
    rows_free(&r2);
    free(first);
    pb_ctx_free(&a);
    pb_ctx_free(&b);
    pb_ctx_free(&d);
    pb_model_free(&m);
}

/* ---------- gradients ---------- */

static float **grads(const pb_model *m)
{
    int np = pb_model_nprunable(m);
    float **g = calloc((size_t)np, sizeof *g);
    for (int t = 0; t < np; t++) {
        const pb_param *p = pb_model_prunable(m, t);
        g[t] = malloc(p->n * sizeof(float));
        memcpy(g[t], p->g, p->n * sizeof(float));
    }
    return g;
}

static float **zeros_like(const pb_model *m)
{
    int np = pb_model_nprunable(m);
    float **g = calloc((size_t)np, sizeof *g);
    for (int t = 0; t < np; t++)
        g[t] = calloc(pb_model_prunable(m, t)->n, sizeof(float));
    return g;
}

static void free_all(float **v, int n)
{
    for (int i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* Largest |a - b| over every prunable tensor. */
static double max_diff(const pb_model *m, float *const *a, float *const *b)
{
    double d = 0;
    for (int t = 0; t < pb_model_nprunable(m); t++)
        for (size_t j = 0; j < pb_model_prunable(m, t)->n; j++)
            d = fmax(d, fabs((double)a[t][j] - b[t][j]));
    return d;
}

static void test_grad_examples(void)
{
    char err[PB_ERRLEN];
    pb_model m;
    pb_ctx c;
    if (mlp(&m, 2, err, sizeof err) != PB_OK || ctx_open(&c, &m, 3, err, sizeof err) != PB_OK) {
        for (int i = 0; i < 4; i++)
            ok(0, "grad_examples set-up");
        return;
    }
    int np = pb_model_nprunable(&m);
    static const int A[] = {1, 5, 9, 200, 77}, B[] = {2, 6, 10, 201, 78};
    double la, lb;
    int rc = H->grad_examples(&c, A, 5, 1.0, &la);
    float **ga = grads(&m);
    rc = rc ? rc : pb_model_grad_on(&m, &train, A, 5, 1.0f, &lb, err, sizeof err);
    float **gb = grads(&m);
    ok(rc == PB_OK && la == lb && max_diff(&m, ga, gb) == 0,
       "grad_examples on 5 examples is pb_model_grad_on on them (loss %.4f, %s)", la, rc ? err : "ok");
    free_all(ga, np);
    free_all(gb, np);

    float **v = zeros_like(&m), **h1 = zeros_like(&m), **h2 = zeros_like(&m), **h3 = zeros_like(&m);
    pb_rng r;
    pb_rng_seed(&r, 99);
    for (int t = 0; t < np; t++)
        for (size_t j = 0; j < pb_model_prunable(&m, t)->n; j++)
            v[t][j] = pb_rng_normal(&r);
    const float *const *cv = (const float *const *)v;
    float **w0 = zeros_like(&m);
    for (int t = 0; t < np; t++)
        memcpy(w0[t], pb_model_prunable(&m, t)->w, pb_model_prunable(&m, t)->n * sizeof(float));
    rc = H->grad_examples(&c, A, 5, 1.0, NULL);
    rc = rc ? rc : H->hvp(&c, cv, h1);
    int kept = rc == PB_OK;
    for (int t = 0; t < np && kept; t++)
        kept = !memcmp(w0[t], pb_model_prunable(&m, t)->w, pb_model_prunable(&m, t)->n * sizeof(float));
    ok(kept, "hvp leaves every weight as it was, bit for bit");
    free_all(w0, np);
    rc = rc ? rc : H->grad_examples(&c, B, 5, 1.0, NULL);
    rc = rc ? rc : H->hvp(&c, cv, h2);
    rc = rc ? rc : H->grad_examples(&c, A, 5, 1.0, NULL);
    rc = rc ? rc : H->hvp(&c, cv, h3);
    double dab = max_diff(&m, h1, h2), daa = max_diff(&m, h1, h3);
    ok(rc == PB_OK && dab > 1e-3 && daa == 0,
       "hvp after grad_examples differentiates those examples (A vs B differ by %.3g; A again by %g)", dab,
       daa);
    /* and it is the exact product on their loss (pb_hvp, tested in t_hvp), tensor by tensor */
    const float *pv[PB_MAX_PARAMS] = {0};
    double *ph[PB_MAX_PARAMS] = {0};
    int who[PB_MAX_PARAMS];
    for (int t = 0; t < np; t++)
        for (int i = 0; i < m.nparams; i++)
            if (m.params[i] == pb_model_prunable(&m, t)) {
                who[t] = i;
                pv[i] = v[t];
                ph[i] = calloc(m.params[i]->n, sizeof(double));
            }
    rc = pb_model_hvp_on(&m, &train, A, 5, 1.0f, pv, ph, NULL, NULL, err, sizeof err);
    int same = rc == PB_OK;
    double scale = 0;
    for (int t = 0; t < np && same; t++)
        for (size_t j = 0; j < pb_model_prunable(&m, t)->n; j++) {
            same = same && h1[t][j] == (float)ph[who[t]][j];
            scale = fmax(scale, fabs(h1[t][j]));
        }
    ok(same && scale > 0, "hvp on A is the exact product on A's loss, for every prunable tensor (largest %.3g)",
       scale);
    for (int i = 0; i < m.nparams; i++)
        free(ph[i]);
    free_all(v, np);
    free_all(h1, np);
    free_all(h2, np);
    free_all(h3, np);
    err[0] = 0;
    static const int bad[] = {3, -1};
    ok(H->grad_examples(&c, bad, 2, 1.0, NULL) != PB_OK && strstr(err, "example -1"),
       "grad_examples refuses example -1 (%s)", err);
    pb_ctx_free(&c);
    pb_model_free(&m);
}

static void test_example_stats(void)
{
    char err[PB_ERRLEN];
    pb_model m;
    pb_ctx c;
    if (mlp(&m, 4, err, sizeof err) != PB_OK || ctx_open(&c, &m, 5, err, sizeof err) != PB_OK) {
        for (int i = 0; i < 3; i++)
            ok(0, "example_stats set-up");
        return;
    }
    /* 40 examples: more than one batch of 32 */
    enum { N = 40 };
    int idx[N];
    for (int i = 0; i < N; i++)
        idx[i] = (i * 37 + 3) % train.n;
    float loss[N], el2n[N], gn[N], sl[N], se[N];
    int correct[N];
    pb_example_stats st = {.size = sizeof st, .loss = loss, .el2n = el2n, .grad_norm = gn, .correct = correct};
    int rc = H->example_stats(&c, idx, N, &st);
    rc = rc ? rc : H->example_scores(&c, idx, N, sl, se);
    ok(rc == PB_OK && !memcmp(loss, sl, sizeof sl) && !memcmp(el2n, se, sizeof se),
       "example_stats' loss and el2n are example_scores' (%s)", rc ? err : "ok");

    int agree = 1, ncorrect = 0;
    float *x = malloc(input_size() * sizeof(float));
    for (int i = 0; i < N; i++) {
        int y;
        pb_data_batch(&train, &idx[i], 1, NULL, x, &y);
        const float *z = pb_model_forward(&m, x, 1, 0);
        int best = 0;
        for (int k = 1; k < m.ncls; k++)
            if (z[k] > z[best])
                best = k;
        agree &= correct[i] == (best == y);
        ncorrect += correct[i];
    }
    free(x);
    ok(agree && ncorrect > 0 && ncorrect < N, "correct is argmax == label of an eval forward (%d of %d)", ncorrect,
       N);

    double worst = 0;
    for (int i = 0; i < N; i += 5) {
        rc = H->grad_examples(&c, &idx[i], 1, 1.0, NULL);
        double s = 0;
        for (int p = 0; p < m.nparams; p++)
            for (size_t j = 0; m.params[p]->trainable && j < m.params[p]->n; j++)
                s += (double)m.params[p]->g[j] * m.params[p]->g[j];
        worst = fmax(worst, fabs(gn[i] - sqrt(s)) / sqrt(s));
    }
    ok(rc == PB_OK && worst < 1e-4,
       "grad_norm is the norm of grad_examples on that example alone, weights, biases and all (rel. %.2g)", worst);
    pb_ctx_free(&c);
    pb_model_free(&m);
}

/* ---------- kept models ---------- */

static void test_reference(void)
{
    char err[PB_ERRLEN];
    pb_model m;
    pb_ctx c;
    if (mlp(&m, 6, err, sizeof err) != PB_OK || ctx_open(&c, &m, 7, err, sizeof err) != PB_OK) {
        for (int i = 0; i < 4; i++)
            ok(0, "reference set-up");
        return;
    }
    int np = H->nweights(&c);
    float **before = calloc((size_t)np, sizeof *before);
    for (int t = 0; t < np; t++) {
        pb_param *p = pb_model_prunable(&m, t);
        before[t] = malloc(p->n * sizeof(float));
        memcpy(before[t], p->w, p->n * sizeof(float));
    }
    int rc = pb_ctx_keep(&c, "base", NULL);
    rc = rc ? rc : pb_ctx_train(&c, 1, NULL, NULL);
    int changed = 0, same = rc == PB_OK, fields = rc == PB_OK;
    for (int t = 0; t < np && rc == PB_OK; t++) {
        pb_weights cur = {.size = sizeof cur}, ref = {.size = sizeof ref};
        rc = H->weights(&c, t, &cur);
        rc = rc ? rc : H->reference(&c, "base", t, &ref);
        if (rc != PB_OK)
            break;
        changed |= memcmp(cur.w, before[t], cur.n * sizeof(float)) != 0;
        same &= ref.w != cur.w && !memcmp(ref.w, before[t], ref.n * sizeof(float));
        fields &= !strcmp(ref.name, cur.name) && ref.ndim == cur.ndim &&
                  !memcmp(ref.shape, cur.shape, sizeof ref.shape) && ref.n == cur.n && ref.rows == cur.rows &&
                  ref.cols == cur.cols && ref.layer_kind == cur.layer_kind && ref.size == sizeof ref &&
                  ref.mask && !ref.g && !ref.w_init;
    }
    ok(rc == PB_OK && changed && same, "after keep(base) and training, reference(base) still holds the kept values (%s)",
       rc ? err : "ok");
    ok(fields, "reference views name, shape, n, rows and cols as weights() does; g and w_init are NULL");
    pb_ctx_keep(&c, "dense2", NULL);
    err[0] = 0;
    pb_weights v = {.size = sizeof v};
    rc = H->reference(&c, "nosuch", 0, &v);
    ok(rc != PB_OK && strstr(err, "'nosuch'") && strstr(err, "kept: base, dense2"),
       "an unknown name fails and lists the kept ones (%s)", err);
    err[0] = 0;
    ok(H->reference(&c, "base", np, &v) != PB_OK && strstr(err, "no weight tensor"),
       "tensor %d of %d is refused (%s)", np, np, err);
    free_all(before, np);
    pb_ctx_free(&c);
    pb_model_free(&m);
}

/* ---------- training phases, metrics ---------- */

typedef struct seen {
    int rows, labelled;
    char metric[64];
    double value;
    int metrics;
} seen;

static void on_curve(void *ud, const pb_curve_rec *r)
{
    seen *s = ud;
    s->rows++;
    s->labelled += !strcmp(r->phase, "score");
}

static void on_metric(void *ud, const char *name, double value)
{
    seen *s = ud;
    snprintf(s->metric, sizeof s->metric, "%s", name);
    s->value = value;
    s->metrics++;
}

static void test_phase_metric(void)
{
    char err[PB_ERRLEN];
    pb_model m;
    pb_ctx c;
    if (mlp(&m, 8, err, sizeof err) != PB_OK || ctx_open(&c, &m, 9, err, sizeof err) != PB_OK) {
        for (int i = 0; i < 5; i++)
            ok(0, "train_phase set-up");
        return;
    }
    seen s = {0};
    c.on_curve = on_curve;
    c.on_metric = on_metric;
    c.curve_ud = &s;
    c.cfg.eval_every = 1;
    int rc = H->train_phase(&c, "score", 2);
    ok(rc == PB_OK && s.rows == 2 && s.labelled == 2, "train_phase(score, 2): %d curve rows, %d labelled score",
       s.rows, s.labelled);
    rc = H->train(&c, 1);
    ok(rc == PB_OK && s.rows == 3 && s.labelled == 2, "a later train() writes its rows under its own label");
    int before = s.rows;
    err[0] = 0;
    int r1 = H->train_phase(&c, "a,b", 1), r2 = H->train_phase(&c, "a b", 1);
    ok(r1 != PB_OK && r2 != PB_OK && s.rows == before && strstr(err, "label 'a b'"),
       "labels with a comma or a space are refused without training (%s)", err);

    rc = H->metric(&c, "score.mean_2", 0.625);
    ok(rc == PB_OK && s.metrics == 1 && !strcmp(s.metric, "score.mean_2") && s.value == 0.625,
       "metric hands on_metric its name and value (%s = %g)", s.metric, s.value);
    err[0] = 0;
    r1 = H->metric(&c, "bad name", 1);
    r2 = H->metric(&c, "", 1);
    ok(r1 != PB_OK && r2 != PB_OK && s.metrics == 1 && strstr(err, "metric name"),
       "metric names outside [A-Za-z0-9_.]+ are refused (%s)", err);
    pb_ctx_free(&c);
    pb_model_free(&m);
}

/* ---------- string arguments ---------- */

static void test_arg_string(void)
{
    char err[PB_ERRLEN];
    pb_model m;
    pb_ctx c;
    if (mlp(&m, 8, err, sizeof err) != PB_OK || ctx_open(&c, &m, 9, err, sizeof err) != PB_OK) {
        for (int i = 0; i < 3; i++)
            ok(0, "arg_string set-up");
        return;
    }
    static const pb_param_spec params[] = {
        {.name = "file", .type = PB_PT_STRING, .choices = "scores.bin"},
        {.name = "rate", .type = PB_PT_REAL, .def = 0.5, .lo = 0, .hi = 1},
        {.name = "base", .type = PB_PT_STRING},
        {.name = NULL},
    };
    static pb_loaded pl;
    pl.desc = (pb_plugin){.abi_major = PB_ABI_MAJOR, .abi_minor = PB_ABI_MINOR, .size = sizeof(pb_plugin),
                          .name = "strings", .description = "string parameters", .params = params};
    static const char *const argv[] = {"rate=0.25", "file=a b.txt", "base=dense"};
    c.plugin = &pl;
    c.argv = argv;
    c.argc = 3;
    const char *f = H->arg_string(&c, 0), *b = H->arg_string(&c, 2);
    ok(f && !strcmp(f, "a b.txt") && b && !strcmp(b, "dense"), "arg_string gives the texts given (%s, %s)",
       f ? f : "NULL", b ? b : "NULL");
    c.argc = 1;
    f = H->arg_string(&c, 0);
    b = H->arg_string(&c, 2);
    ok(f && !strcmp(f, "scores.bin") && b && !strcmp(b, ""),
       "and the defaults when not given (scores.bin; no default: empty)");
    ok(!H->arg_string(&c, 1) && !H->arg_string(&c, 3) && !H->arg_string(&c, -1),
       "NULL for a real parameter and for indices outside the table");
    pb_ctx_free(&c);
    pb_model_free(&m);
}

/* ---------- utilities ---------- */

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

typedef struct ranges {
    atomic_int n;
    long b[64], e[64];
    atomic_int *cover;
} ranges;

static void range_cb(void *ud, long begin, long end)
{
    ranges *r = ud;
    int k = atomic_fetch_add(&r->n, 1);
    if (k < 64) {
        r->b[k] = begin;
        r->e[k] = end;
    }
    for (long i = begin; i < end; i++)
        atomic_fetch_add(&r->cover[i], 1);
}

/* [0, n) exactly once, in contiguous non-empty ranges, at most one per thread. */
static int covers_once(long n, int threads)
{
    ranges r;
    memset(&r, 0, sizeof r);
    r.cover = calloc((size_t)n, sizeof *r.cover);
    H->parallel_for(NULL, n, range_cb, &r);
    int k = atomic_load(&r.n), good = k >= 1 && k <= threads && k <= n;
    for (long i = 0; i < n; i++)
        good &= atomic_load(&r.cover[i]) == 1;
    /* sorted by begin, each range starts where the last ended */
    for (int i = 0; i < k && good; i++)
        for (int j = i + 1; j < k; j++)
            if (r.b[j] < r.b[i]) {
                long t = r.b[i], u = r.e[i];
                r.b[i] = r.b[j], r.e[i] = r.e[j];
                r.b[j] = t, r.e[j] = u;
            }
    for (int i = 0; i < k && good; i++)
        good &= r.e[i] > r.b[i] && r.b[i] == (i ? r.e[i - 1] : 0);
    good &= k > 0 && r.e[k - 1] == n;
    free(r.cover);
    return good;
}

static void test_utilities(void)
{
    ok(H->hash64("a", 1, 0) == 0xaf63dc4c8601ec8cULL && H->hash64("", 0, 0) == 0xcbf29ce484222325ULL,
       "hash64 with seed 0 is FNV-1a 64 (\"a\" and \"\")");
    ok(H->hash64("a", 1, 12345) == ((12345ULL ^ 'a') * 0x100000001b3ULL),
       "a non-zero seed is the basis the bytes are folded into");

    pb_rng r;
    pb_rng_seed(&r, 5);
    int good = 1;
    static const size_t sizes[] = {1, 2, 7, 100, 1001};
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        size_t n = sizes[s];
        float *a = malloc(n * sizeof(float)), *sorted = malloc(n * sizeof(float)), *work = malloc(n * sizeof(float));
        for (size_t i = 0; i < n; i++)
            a[i] = (float)(pb_rng_below(&r, 50)) - 25.0f; /* many ties */
        memcpy(sorted, a, n * sizeof(float));
        qsort(sorted, n, sizeof(float), cmp_float);
        size_t ks[] = {0, n / 3, n / 2, n - 1};
        for (int q = 0; q < 4; q++) {
            memcpy(work, a, n * sizeof(float));
            good &= H->select_kth(work, n, ks[q]) == sorted[ks[q]];
        }
        free(a);
        free(sorted);
        free(work);
    }
    ok(good, "select_kth agrees with sorting (n up to 1001, with ties, k first, middle, last)");

    enum { M = 5, N = 4, K = 3, LD = 9 };
    float a[LD * LD], b[LD * LD], c0[M * LD], c1[M * LD];
    for (int i = 0; i < LD * LD; i++) {
        a[i] = (float)pb_rng_normal(&r);
        b[i] = (float)pb_rng_normal(&r);
    }
    for (int i = 0; i < M * LD; i++)
        c0[i] = (float)pb_rng_normal(&r);
    int all = 1;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            memcpy(c1, c0, sizeof c0);
            H->gemm(NULL, ta, tb, M, N, K, 1.5f, a, LD, b, LD, 0.5f, c1, LD);
            for (int i = 0; i < M; i++)
                for (int j = 0; j < LD; j++) {
                    double want = c0[i * LD + j];
                    if (j < N) {
                        double s = 0;
                        for (int p = 0; p < K; p++)
                            s += (double)(ta ? a[p * LD + i] : a[i * LD + p]) * (tb ? b[j * LD + p] : b[p * LD + j]);
                        want = 1.5 * s + 0.5 * c0[i * LD + j];
                    }
                    if (fabs(c1[i * LD + j] - want) > 1e-5)
                        all = 0;
                }
        }
    ok(all, "gemm is alpha op(A) op(B) + beta C for the four transpose combinations (leading dimensions 9)");

    int threads = pb_par_set_threads(2);
    ok(threads == 2 && covers_once(1, 2) && covers_once(2, 2) && covers_once(7, 2) && covers_once(1000, 2),
       "parallel_for on 2 threads covers [0, n) once in contiguous ranges (n = 1, 2, 7, 1000)");
    pb_par_set_threads(1);
}

/* ---------- parameter sharing ---------- */

/* Every prunable weight reads A[hash(tensor, j) mod k] (HashedNets). */
typedef struct hashed {
    float *a, *ga;
    size_t k;
    uint32_t *bucket[8];
} hashed;

static uint32_t bucket_of(int t, size_t j, size_t k)
{
    uint64_t key[2] = {(uint64_t)t, (uint64_t)j};
    return (uint32_t)(H->hash64(key, sizeof key, 0) % k);
}

static void hashed_generate(void *ud, int t, float *w, size_t n)
{
    hashed *s = ud;
    for (size_t j = 0; j < n; j++)
        w[j] = s->a[s->bucket[t][j]];
}

static void hashed_backprop(void *ud, int t, const float *g, size_t n)
{
    hashed *s = ud;
    for (size_t j = 0; j < n; j++)
        s->ga[s->bucket[t][j]] += g[j];
}

static void test_sharing(void)
{
    char err[PB_ERRLEN];
    pb_model m;
    pb_ctx c;
    if (mlp(&m, 10, err, sizeof err) != PB_OK || ctx_open(&c, &m, 11, err, sizeof err) != PB_OK) {
        for (int i = 0; i < 4; i++)
            ok(0, "sharing set-up");
        return;
    }
    int np = H->nweights(&c), nparams0 = m.nparams;
    hashed s = {.k = 97};
    int rc = H->add_array(&c, "shared", s.k, &s.a, &s.ga);
    pb_rng r;
    pb_rng_seed(&r, 3);
    for (size_t j = 0; rc == PB_OK && j < s.k; j++)
        s.a[j] = 0.1f * pb_rng_normal(&r);
    float a0[97];
    memcpy(a0, s.a, sizeof a0);
    pb_generator gen = {.ud = &s, .generate = hashed_generate, .backprop = hashed_backprop};
    for (int t = 0; t < np && rc == PB_OK; t++) {
        size_t n = pb_model_prunable(&m, t)->n;
        s.bucket[t] = malloc(n * sizeof(uint32_t));
        for (size_t j = 0; j < n; j++)
            s.bucket[t][j] = bucket_of(t, j, s.k);
        rc = H->set_generator(&c, t, &gen);
    }
    c.cfg.max_steps = 4;
    rc = rc ? rc : pb_ctx_train(&c, 1, NULL, NULL);
    ok(rc == PB_OK && m.nparams == nparams0 + 1 && memcmp(a0, s.a, sizeof a0),
       "with add_array and a hashed generator on every tensor, training moves the shared array (%s)",
       rc ? err : "ok");
    double acc;
    rc = rc ? rc : H->evaluate(&c, &acc, NULL); /* a forward after the last step */
    int gen_ok = rc == PB_OK;
    for (int t = 0; t < np && gen_ok; t++) {
        pb_weights v = {.size = sizeof v};
        gen_ok = H->weights(&c, t, &v) == PB_OK && v.w_init;
        for (size_t j = 0; gen_ok && j < v.n; j++)
            gen_ok = v.w[j] == s.a[s.bucket[t][j]];
    }
    ok(gen_ok, "the generated weights are A[hash(i) mod k] of the trained array (and still have their w_init)");

    /* a snapshot taken before a second array: rewinding restores the model and leaves the array alone */
    rc = H->snapshot(&c, 0);
    float saved[97];
    memcpy(saved, s.a, sizeof saved);
    float *b = NULL, *gb = NULL;
    rc = rc ? rc : H->add_array(&c, "late", 5, &b, &gb);
    for (int j = 0; rc == PB_OK && j < 5; j++)
        b[j] = 2.0f + (float)j;
    for (size_t j = 0; j < s.k; j++)
        s.a[j] += 1.0f;
    rc = rc ? rc : H->rewind(&c, 0);
    int late_kept = rc == PB_OK;
    for (int j = 0; late_kept && j < 5; j++)
        late_kept = b[j] == 2.0f + (float)j;
    ok(rc == PB_OK && !memcmp(saved, s.a, sizeof saved) && late_kept,
       "snapshot, add_array, rewind: the snapshot's arrays come back, the later array keeps its values (%s)",
       rc ? err : "ok");
    pb_ctx_free(&c);
    ok(c.m == NULL && c.init == NULL, "pb_ctx_free with more parameters than the init copy holds");
    for (int t = 0; t < np; t++)
        free(s.bucket[t]);
    pb_model_free(&m);
}

/* ---------- total_steps under data selection ---------- */

typedef struct steps_probe {
    long lo, hi, calls, last_step;
    int n_keep;
} steps_probe;

static steps_probe SP;

static void probe_total(pb_ctx *c)
{
    long t = H->total_steps(c);
    SP.lo = SP.calls ? (t < SP.lo ? t : SP.lo) : t;
    SP.hi = SP.calls ? (t > SP.hi ? t : SP.hi) : t;
    SP.calls++;
}

static int sp_select(void *st, const pb_host *h, pb_ctx *c, int epoch, int n_total, int *idx, int *n)
{
    (void)st, (void)h, (void)c, (void)epoch;
    SP.n_keep = n_total / 10;
    for (int i = 0; i < SP.n_keep; i++)
        idx[i] = i * 10;
    *n = SP.n_keep;
    return PB_PLUGIN_OK;
}

static int sp_before(void *st, const pb_host *h, pb_ctx *c, long step)
{
    (void)st, (void)h, (void)step;
    probe_total(c);
    return PB_PLUGIN_OK;
}

static int sp_after(void *st, const pb_host *h, pb_ctx *c, long step)
{
    (void)st, (void)h;
    probe_total(c);
    SP.last_step = step;
    return PB_PLUGIN_OK;
}

static void test_total_steps(void)
{
    char err[PB_ERRLEN];
    pb_model m;
    pb_ctx c;
    if (mlp(&m, 12, err, sizeof err) != PB_OK || ctx_open(&c, &m, 13, err, sizeof err) != PB_OK) {
        for (int i = 0; i < 2; i++)
            ok(0, "total_steps set-up");
        return;
    }
    static pb_loaded pl;
    pl.desc = (pb_plugin){.abi_major = PB_ABI_MAJOR, .abi_minor = PB_ABI_MINOR, .size = sizeof(pb_plugin),
                          .name = "tenth", .description = "a tenth of the data", .kind = PB_KIND_DATA,
                          .when = PB_WHEN_TRAINING, .select = sp_select, .before_step = sp_before,
                          .after_step = sp_after, .needs = PB_NEEDS_SELECT};
    c.plugin = &pl;
    c.cfg.batch = 8;
    /* 256 examples, 25 kept: 4 batches of 8 an epoch, 3 epochs */
    memset(&SP, 0, sizeof SP);
    pb_train_result res;
    int rc = pb_ctx_train(&c, 3, NULL, &res);
    ok(rc == PB_OK && SP.calls == 2 * res.steps && res.steps == 12 && SP.lo == 12 && SP.hi == 12 &&
           H->total_steps(&c) == 0,
       "total_steps is the %ld steps training takes on a tenth of the data, in every hook (seen %ld..%ld), 0 after",
       res.steps, SP.lo, SP.hi);
    memset(&SP, 0, sizeof SP);
    c.cfg.max_steps = 5;
    rc = pb_ctx_train(&c, 3, NULL, &res);
    ok(rc == PB_OK && res.steps == 5 && SP.lo == 5 && SP.hi == 5 && SP.last_step == 12 + 5,
       "and max_steps 5 bounds it (seen %ld..%ld, steps counted on from %ld)", SP.lo, SP.hi, SP.last_step - 5);
    c.plugin = NULL;
    pb_ctx_free(&c);
    pb_model_free(&m);
}

int main(void)
{
    char err[PB_ERRLEN];
    tap_plan(41);
    pb_par_use_threads(1);
    if (pb_data_synthetic_task(&train, 256, 1, 8, 8, 4, 21, 1, err, sizeof err) != PB_OK ||
        pb_data_synthetic_task(&test, 128, 1, 8, 8, 4, 21, 2, err, sizeof err) != PB_OK) {
        printf("Bail out! synthetic data: %s\n", err);
        return 1;
    }
    test_calibrate_on();        /* 6 */
    test_calibration_sample();  /* 4 */
    test_grad_examples();       /* 5 */
    test_example_stats();       /* 3 */
    test_reference();           /* 4 */
    test_phase_metric();        /* 5 */
    test_arg_string();          /* 3 */
    test_utilities();           /* 5 */
    test_sharing();             /* 4 */
    test_total_steps();         /* 2 */
    pb_data_free(&train);
    pb_data_free(&test);
    return tap_done();
}
