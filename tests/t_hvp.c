/* t_hvp: exact Hessian-vector products (pb_hvp) on every layer kind —
 * the gradient of the reference path against the engine's, H v against the
 * closed-form Hessian of a softmax regression, against central differences
 * of the gradient on smooth networks (and on ReLU / max-pool networks with a
 * step too small to cross their kinks), symmetry u.Hv = v.Hu, and linearity. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/pb_data.h"
#include "engine/pb_hvp.h"
#include "engine/pb_model.h"
#include "engine/pb_par.h"
#include "engine/pb_train.h"
#include "tap.h"

static pb_dataset train;
static int idx[64];
#define NEX 40

typedef int (*build_fn)(pb_model *m, char *err, size_t errlen);

/* ---------- networks over 1 x 8 x 8 inputs, 4 classes ---------- */

static int finish(pb_model *m, int rc, int batch, uint64_t seed, char *err, size_t errlen)
{
    if (rc == PB_OK)
        rc = pb_model_finalize(m, batch, err, errlen);
    if (rc == PB_OK)
        pb_model_init_weights(m, seed);
    return rc;
}

static int softmax_regression(pb_model *m, char *err, size_t errlen)
{
    pb_model_init(m, "custom", 1, 8, 8, 4);
    int rc = pb_model_simple(m, PB_FLATTEN, err, errlen) < 0 || pb_model_dense(m, NULL, 4, 1, err, errlen) < 0;
    return finish(m, rc ? PB_EUSAGE : PB_OK, 64, 5, err, errlen);
}

/* smooth: dense, BN (batch statistics), dense; batches of 16 so BN sees several */
static int dense_bn(pb_model *m, char *err, size_t errlen)
{
    pb_model_init(m, "custom", 1, 8, 8, 4);
    int rc = pb_model_simple(m, PB_FLATTEN, err, errlen) < 0 || pb_model_dense(m, NULL, 12, 1, err, errlen) < 0 ||
             pb_model_bn(m, err, errlen) < 0 || pb_model_dense(m, NULL, 4, 1, err, errlen) < 0;
    return finish(m, rc ? PB_EUSAGE : PB_OK, 16, 6, err, errlen);
}

/* smooth: conv pad 1, BN, avg pool, conv stride 2, residual-free GAP head and a dense */
static int conv_smooth(pb_model *m, char *err, size_t errlen)
{
    pb_model_init(m, "custom", 1, 8, 8, 4);
    int rc = pb_model_conv(m, NULL, 3, 3, 1, 1, 1, err, errlen) < 0 || pb_model_bn(m, err, errlen) < 0 ||
             pb_model_pool(m, PB_AVGPOOL, 2, 2, err, errlen) < 0 ||
             pb_model_conv(m, NULL, 5, 3, 2, 1, 0, err, errlen) < 0 || pb_model_simple(m, PB_GAP, err, errlen) < 0 ||
             pb_model_simple(m, PB_FLATTEN, err, errlen) < 0 || pb_model_dense(m, NULL, 4, 1, err, errlen) < 0;
    return finish(m, rc ? PB_EUSAGE : PB_OK, 16, 7, err, errlen);
}

/* smooth residual: conv, then add(conv(bn(x)), x), GAP, dense */
static int residual(pb_model *m, char *err, size_t errlen)
{
    pb_model_init(m, "custom", 1, 8, 8, 4);
    int a = pb_model_conv(m, NULL, 3, 3, 1, 1, 1, err, errlen);
    int rc = a < 0 || pb_model_bn(m, err, errlen) < 0;
    int b = rc ? -1 : pb_model_conv(m, NULL, 3, 3, 1, 1, 0, err, errlen);
    rc = rc || b < 0 || pb_model_add(m, a, b, err, errlen) < 0 || pb_model_simple(m, PB_GAP, err, errlen) < 0 ||
         pb_model_simple(m, PB_FLATTEN, err, errlen) < 0 || pb_model_dense(m, NULL, 4, 1, err, errlen) < 0;
    return finish(m, rc ? PB_EUSAGE : PB_OK, 16, 8, err, errlen);
}

/* kinks: conv, ReLU (fused in the engine), max pool, conv stride 2, ReLU, flatten, dense, ReLU, dense */
static int relu_pool(pb_model *m, char *err, size_t errlen)
{
    pb_model_init(m, "custom", 1, 8, 8, 4);
    int rc = pb_model_conv(m, NULL, 4, 3, 1, 1, 1, err, errlen) < 0 || pb_model_simple(m, PB_RELU, err, errlen) < 0 ||
             pb_model_pool(m, PB_MAXPOOL, 2, 2, err, errlen) < 0 ||
             pb_model_conv(m, NULL, 6, 3, 2, 1, 1, err, errlen) < 0 || pb_model_simple(m, PB_RELU, err, errlen) < 0 ||
             pb_model_simple(m, PB_FLATTEN, err, errlen) < 0 || pb_model_dense(m, NULL, 10, 1, err, errlen) < 0 ||
             pb_model_simple(m, PB_RELU, err, errlen) < 0 || pb_model_dense(m, NULL, 4, 1, err, errlen) < 0;
    return finish(m, rc ? PB_EUSAGE : PB_OK, 16, 9, err, errlen);
}

/* ---------- vectors over all parameters ---------- */

typedef struct pvec {
    int n;
    float *a[PB_MAX_PARAMS];
} pvec;

/* the same in double, for the outputs */
typedef struct dvec {
    int n;
    double *a[PB_MAX_PARAMS];
} dvec;

static void dv_alloc(dvec *v, const pb_model *m)
{
    v->n = m->nparams;
    for (int i = 0; i < m->nparams; i++)
        v->a[i] = calloc(m->params[i]->n, sizeof(double));
}

static void dv_free(dvec *v)
{
    for (int i = 0; i < v->n; i++)
        free(v->a[i]);
}

static void pv_alloc(pvec *v, const pb_model *m)
{
    v->n = m->nparams;
    for (int i = 0; i < m->nparams; i++)
        v->a[i] = calloc(m->params[i]->n, sizeof(float));
}

static void pv_free(pvec *v)
{
    for (int i = 0; i < v->n; i++)
        free(v->a[i]);
}

static void pv_random(pvec *v, const pb_model *m, uint64_t seed)
{
    pb_rng r;
    pb_rng_seed(&r, seed);
    for (int i = 0; i < m->nparams; i++)
        for (size_t j = 0; j < m->params[i]->n; j++)
            v->a[i][j] = pb_rng_normal(&r);
}

static double pv_dot(const pvec *a, const dvec *b, const pb_model *m)
{
    double s = 0;
    for (int i = 0; i < m->nparams; i++)
        for (size_t j = 0; j < m->params[i]->n; j++)
            s += (double)a->a[i][j] * b->a[i][j];
    return s;
}

/* max |a - b| / max |b| */
static double dv_rel(const dvec *a, const dvec *b, const pb_model *m)
{
    double d = 0, s = 0;
    for (int i = 0; i < m->nparams; i++)
        for (size_t j = 0; j < m->params[i]->n; j++) {
            d = fmax(d, fabs(a->a[i][j] - b->a[i][j]));
            s = fmax(s, fabs(b->a[i][j]));
        }
    return s > 0 ? d / s : INFINITY;
}

static int hvp(pb_model *m, const pvec *v, dvec *hv, dvec *g, char *err)
{
    return pb_model_hvp_on(m, &train, idx, NEX, 1.0f, v ? (const float *const *)v->a : NULL, hv ? hv->a : NULL,
                           g ? g->a : NULL, NULL, err, PB_ERRLEN);
}

/* ---------- checks ---------- */

/* The reference path's gradient is the engine's (pb_model_grad_on). */
static void check_gradient(const char *name, pb_model *m)
{
    char err[PB_ERRLEN];
    dvec g, ge;
    dv_alloc(&g, m);
    dv_alloc(&ge, m);
    int rc = hvp(m, NULL, NULL, &g, err);
    pb_rng saved = m->rng;
    rc = rc ? rc : pb_model_grad_on(m, &train, idx, NEX, 1.0f, NULL, err, sizeof err);
    m->rng = saved;
    for (int i = 0; i < m->nparams; i++)
        for (size_t j = 0; j < m->params[i]->n; j++)
            ge.a[i][j] = m->params[i]->g[j];
    double rel = rc ? INFINITY : dv_rel(&g, &ge, m);
    ok(rel < 1e-4, "%s: the reference path's gradient is the engine's (relative %.2g)%s%s", name, rel,
       rc ? ": " : "", rc ? err : "");
    dv_free(&g);
    dv_free(&ge);
}

/* H v against central differences of the reference path's gradient (double
 * precision) along v, taken so that float rounding plays no part: the weights
 * are moved to a grid of 2^-21 and v's entries are small multiples of 2^-21,
 * so w + v and w - v are exact in float. Between kinks a ReLU / max-pool
 * network's gradient is smooth, and steps this small (about 1e-6) cross no
 * kink of these networks; their activation pattern is checked to be the same
 * on both sides. */
static int pattern(pb_model *m, unsigned char *out, size_t cap)
{
    /* signs of every ReLU input and max-pool winners, from the engine's forward */
    float x[64 * NEX];
    int y[NEX];
    size_t k = 0;
    pb_data_batch(&train, idx, m->max_batch < NEX ? m->max_batch : NEX, NULL, x, y);
    pb_model_forward(m, x, m->max_batch < NEX ? m->max_batch : NEX, 0);
    for (int i = 0; i < m->nlayers; i++) {
        const pb_layer *l = &m->layers[i];
        const size_t n = (size_t)(m->max_batch < NEX ? m->max_batch : NEX) * pb_layer_osize(l);
        for (size_t j = 0; j < n && k < cap; j++) {
            if (l->kind == PB_MAXPOOL)
                out[k++] = (unsigned char)(l->idx[j] & 0xff);
            else if (i + 1 < m->nlayers && m->layers[i + 1].kind == PB_RELU && l->kind != PB_RELU)
                out[k++] = l->out[j] > 0; /* a fused ReLU's producer holds its output after the ReLU */
        }
    }
    return (int)k;
}

static void check_differences(const char *name, pb_model *m, double tol)
{
    char err[PB_ERRLEN];
    const double q = ldexp(1.0, -21);
    pvec v;
    dvec hv, gp, gm, fd;
    pv_alloc(&v, m);
    dv_alloc(&hv, m);
    dv_alloc(&gp, m);
    dv_alloc(&gm, m);
    dv_alloc(&fd, m);
    pb_rng r;
    pb_rng_seed(&r, 17);
    for (int i = 0; i < m->nparams; i++)
        for (size_t j = 0; j < m->params[i]->n; j++) {
            m->params[i]->w[j] = (float)(nearbyint(m->params[i]->w[j] / q) * q);
            v.a[i][j] = (float)(((int)pb_rng_below(&r, 5) - 2) * q);
        }
    int rc = hvp(m, &v, &hv, NULL, err);
    float *w0[PB_MAX_PARAMS];
    static unsigned char p0[1 << 16], p1[1 << 16];
    int np0 = pattern(m, p0, sizeof p0), same = 1;
    for (int i = 0; i < m->nparams; i++) {
        w0[i] = malloc(m->params[i]->n * sizeof(float));
        memcpy(w0[i], m->params[i]->w, m->params[i]->n * sizeof(float));
    }
    for (int side = 0; side < 2 && rc == PB_OK; side++) {
        for (int i = 0; i < m->nparams; i++)
            for (size_t j = 0; j < m->params[i]->n; j++)
                m->params[i]->w[j] = side ? w0[i][j] - v.a[i][j] : w0[i][j] + v.a[i][j];
        same = same && pattern(m, p1, sizeof p1) == np0 && !memcmp(p0, p1, (size_t)np0);
        rc = hvp(m, NULL, NULL, side ? &gm : &gp, err);
    }
    for (int i = 0; i < m->nparams; i++) {
        memcpy(m->params[i]->w, w0[i], m->params[i]->n * sizeof(float));
        free(w0[i]);
    }
    for (int i = 0; i < m->nparams && rc == PB_OK; i++)
        for (size_t j = 0; j < m->params[i]->n; j++)
            fd.a[i][j] = (gp.a[i][j] - gm.a[i][j]) / 2.0;
    double rel = rc ? INFINITY : dv_rel(&hv, &fd, m);
    ok(rel < tol && same,
       "%s: H v matches central differences of the gradient (relative %.2g, bound %.0g; activation pattern %s)%s%s",
       name, rel, tol, same ? "unchanged" : "CHANGED", rc ? ": " : "", rc ? err : "");
    pv_free(&v);
    dv_free(&hv);
    dv_free(&gp);
    dv_free(&gm);
    dv_free(&fd);
}

/* A Hessian is symmetric: u.(H v) = v.(H u), and H is linear in v. */
static void check_symmetry(const char *name, pb_model *m)
{
    char err[PB_ERRLEN];
    pvec u, v, w;
    dvec hu, hv, hw;
    pv_alloc(&u, m);
    pv_alloc(&v, m);
    dv_alloc(&hu, m);
    dv_alloc(&hv, m);
    pv_alloc(&w, m);
    dv_alloc(&hw, m);
    pv_random(&u, m, 31);
    pv_random(&v, m, 32);
    for (int i = 0; i < m->nparams; i++)
        for (size_t j = 0; j < m->params[i]->n; j++)
            w.a[i][j] = 2.0f * u.a[i][j] - 3.0f * v.a[i][j];
    int rc = hvp(m, &u, &hu, NULL, err);
    rc = rc ? rc : hvp(m, &v, &hv, NULL, err);
    rc = rc ? rc : hvp(m, &w, &hw, NULL, err);
    double a = pv_dot(&u, &hv, m), b = pv_dot(&v, &hu, m);
    double asym = fabs(a - b) / fmax(fabs(a), fabs(b));
    double lin = 0, sc = 0;
    for (int i = 0; i < m->nparams; i++)
        for (size_t j = 0; j < m->params[i]->n; j++) {
            lin = fmax(lin, fabs(hw.a[i][j] - (2.0 * hu.a[i][j] - 3.0 * hv.a[i][j])));
            sc = fmax(sc, fabs(hw.a[i][j]));
        }
    ok(rc == PB_OK && asym < 1e-5 && lin < 1e-5 * sc,
       "%s: u.Hv = v.Hu (%.6g vs %.6g, relative %.1g) and H(2u - 3v) = 2Hu - 3Hv (%.1g)", name, a, b, asym,
       sc > 0 ? lin / sc : lin);
    pv_free(&u);
    pv_free(&v);
    dv_free(&hu);
    dv_free(&hv);
    pv_free(&w);
    dv_free(&hw);
}

/* Softmax regression z = W x + b, L = mean CE(z / T): for the weights,
 * (H v)[a][i] = 1/(n T^2) sum_e x_i p_a (u_a - sum_b p_b u_b), u = V x. */
static void check_closed_form(void)
{
    char err[PB_ERRLEN];
    pb_model m;
    if (softmax_regression(&m, err, sizeof err) != PB_OK) {
        ok(0, "softmax regression: %s", err);
        return;
    }
    const double T = 3.0;
    const pb_layer *fc = &m.layers[1];
    const int K = 4, I = 64;
    pvec v;
    dvec hv;
    pv_alloc(&v, &m);
    dv_alloc(&hv, &m);
    pv_random(&v, &m, 41);
    int wi = -1;
    for (int i = 0; i < m.nparams; i++)
        if (m.params[i] == fc->w)
            wi = i;
        else
            memset(v.a[i], 0, m.params[i]->n * sizeof(float)); /* bias: zero direction */
    int rc = pb_model_hvp_on(&m, &train, idx, NEX, (float)T, (const float *const *)v.a, hv.a, NULL, NULL, err,
                             sizeof err);
    double *ref = calloc((size_t)K * I, sizeof(double));
    float x[64];
    int y;
    for (int e = 0; e < NEX; e++) {
        pb_data_batch(&train, &idx[e], 1, NULL, x, &y);
        double z[4], p[4], u[4], mx = -INFINITY, s = 0, pu = 0;
        for (int a = 0; a < K; a++) {
            z[a] = fc->b->w[a];
            u[a] = 0;
            for (int i = 0; i < I; i++) {
                z[a] += (double)fc->w->w[a * I + i] * x[i];
                u[a] += (double)v.a[wi][a * I + i] * x[i];
            }
            mx = fmax(mx, z[a] / T);
        }
        for (int a = 0; a < K; a++)
            s += (p[a] = exp(z[a] / T - mx));
        for (int a = 0; a < K; a++)
            pu += (p[a] /= s) * u[a];
        for (int a = 0; a < K; a++)
            for (int i = 0; i < I; i++)
                ref[a * I + i] += x[i] * p[a] * (u[a] - pu) / (NEX * T * T);
    }
    double d = 0, sc = 0;
    for (int j = 0; j < K * I; j++) {
        d = fmax(d, fabs(hv.a[wi][j] - ref[j]));
        sc = fmax(sc, fabs(ref[j]));
    }
    ok(rc == PB_OK && wi >= 0 && d < 1e-5 * sc,
       "softmax regression at T = 3: H v is the closed form (max error %.2g of %.2g)", d, sc);
    free(ref);
    pv_free(&v);
    dv_free(&hv);
    pb_model_free(&m);
}

/* The model is as it was: values, gradients and BN running statistics. */
static void check_untouched(void)
{
    char err[PB_ERRLEN];
    pb_model m;
    if (dense_bn(&m, err, sizeof err) != PB_OK) {
        ok(0, "dense-BN: %s", err);
        return;
    }
    pb_model_grad_on(&m, &train, idx, NEX, 1.0f, NULL, err, sizeof err);
    float *w0[PB_MAX_PARAMS], *g0[PB_MAX_PARAMS];
    for (int i = 0; i < m.nparams; i++) {
        w0[i] = malloc(m.params[i]->n * sizeof(float));
        g0[i] = malloc(m.params[i]->n * sizeof(float));
        memcpy(w0[i], m.params[i]->w, m.params[i]->n * sizeof(float));
        memcpy(g0[i], m.params[i]->g, m.params[i]->n * sizeof(float));
    }
    const pb_layer *bn = &m.layers[2];
    float rm = bn->run_mean[0], rv = bn->run_var[0];
    pvec v;
    dvec hv;
    pv_alloc(&v, &m);
    dv_alloc(&hv, &m);
    pv_random(&v, &m, 5);
    int rc = hvp(&m, &v, &hv, NULL, err), same = rc == PB_OK && bn->run_mean[0] == rm && bn->run_var[0] == rv;
    for (int i = 0; i < m.nparams; i++) {
        same = same && !memcmp(w0[i], m.params[i]->w, m.params[i]->n * sizeof(float)) &&
               !memcmp(g0[i], m.params[i]->g, m.params[i]->n * sizeof(float));
        free(w0[i]);
        free(g0[i]);
    }
    ok(same, "hvp leaves values, gradients and BN running statistics bit for bit");
    int bad = pb_model_hvp_on(&m, &train, idx, 0, 1.0f, NULL, NULL, NULL, NULL, err, sizeof err);
    ok(bad == PB_EUSAGE && strstr(err, "no examples"), "no examples is refused (%s)", err);
    pv_free(&v);
    dv_free(&hv);
    pb_model_free(&m);
}

int main(void)
{
    char err[PB_ERRLEN];
    static const struct {
        const char *name;
        build_fn build;
        double tol;
    } nets[] = {
        {"dense-BN", dense_bn, 1e-4},
        {"conv-BN-avgpool-GAP", conv_smooth, 1e-4},
        {"residual", residual, 1e-4},
        {"conv-ReLU-maxpool", relu_pool, 1e-4},
    };
    const int nn = (int)(sizeof nets / sizeof nets[0]);
    tap_plan(1 + 2 + 3 * nn);
    pb_par_use_threads(1);
    if (pb_data_synthetic_task(&train, 256, 1, 8, 8, 4, 21, 1, err, sizeof err) != PB_OK) {
        printf("Bail out! synthetic data: %s\n", err);
        return 1;
    }
    for (int i = 0; i < NEX; i++)
        idx[i] = (i * 37 + 11) % 256;
    check_closed_form();
    check_untouched();
    for (int k = 0; k < nn; k++) {
        pb_model m;
        if (nets[k].build(&m, err, sizeof err) != PB_OK) {
            for (int t = 0; t < 3; t++)
                ok(0, "%s: %s", nets[k].name, err);
            continue;
        }
        check_gradient(nets[k].name, &m);
        check_differences(nets[k].name, &m, nets[k].tol);
        check_symmetry(nets[k].name, &m);
        pb_model_free(&m);
    }
    pb_data_free(&train);
    return tap_done();
}
