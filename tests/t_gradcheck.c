/* t_gradcheck: every layer kind's backward against central finite differences
 * of loss = sum(out * R), plus conv against a direct convolution, BN running
 * statistics, dropout masks, accumulation and FLOP counts. Prints TAP. */
#include "engine/pb_kern.h"
#include "engine/pb_layer.h"
#include "engine/pb_par.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FD_EPS 1e-2f
#define RTOL 2e-2
#define ATOL 1e-3 /* scaled by the tensor's largest gradient, see close_enough */

typedef struct fixture {
    pb_layer l;
    pb_param w, b;
    float *run_mean, *run_var;
} fixture;

/* How test inputs are drawn: finite differences must not cross a kink of
 * ReLU or change a max-pool argmax, so those get inputs kept away from them. */
enum gen { GEN_NORMAL, GEN_AWAY0, GEN_DISTINCT };

static pb_rng g_rng;

static float *falloc(size_t n)
{
    float *p = pb_alloc(n * sizeof(float));
    if (!p) {
        fprintf(stderr, "out of memory\n");
        abort(); /* a test program has no caller to report to */
    }
    return p;
}

static void fill(float *a, size_t n, enum gen g)
{
    switch (g) {
    case GEN_NORMAL:
        for (size_t i = 0; i < n; i++)
            a[i] = pb_rng_normal(&g_rng);
        break;
    case GEN_AWAY0:
        for (size_t i = 0; i < n; i++) {
            float u = 0.05f + fabsf(pb_rng_normal(&g_rng));
            a[i] = pb_rng_below(&g_rng, 2) ? u : -u;
        }
        break;
    case GEN_DISTINCT: {
        /* spaced 0.05 apart, more than twice the finite-difference step */
        int *perm = malloc(n * sizeof(int));
        if (!perm)
            abort();
        for (size_t i = 0; i < n; i++)
            perm[i] = (int)i;
        pb_rng_shuffle(&g_rng, perm, (int)n);
        for (size_t i = 0; i < n; i++)
            a[i] = 0.05f * (float)perm[i] - 0.025f * (float)n;
        free(perm);
        break;
    }
    }
}

static pb_layer mk(pb_layer_kind kind, int ic, int ih, int iw)
{
    pb_layer l;
    memset(&l, 0, sizeof l);
    l.kind = kind;
    snprintf(l.name, sizeof l.name, "%s1", pb_layer_kind_names[kind]);
    l.in = -1;
    l.in2 = -1;
    l.ic = ic;
    l.ih = ih;
    l.iw = iw;
    l.bn_eps = 1e-5f;
    l.bn_momentum = 0.1f;
    return l;
}

static void param_init(pb_param *p, const char *name, size_t n, float mean, float scale)
{
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    p->ndim = 1;
    p->shape[0] = (int)n;
    p->n = n;
    p->w = falloc(n);
    p->g = falloc(n);
    for (size_t i = 0; i < n; i++)
        p->w[i] = mean + scale * pb_rng_normal(&g_rng);
    p->trainable = 1;
    p->layer = 0;
}

static void param_free(pb_param *p)
{
    pb_free(p->w);
    pb_free(p->g);
    pb_free(p->mask);
    memset(p, 0, sizeof *p);
}

/* Infers the shape, creates the parameters a model would own, allocates. */
static int fx_setup(fixture *f, pb_layer proto, int max_batch)
{
    char err[PB_ERRLEN];
    memset(f, 0, sizeof *f);
    f->l = proto;
    pb_layer *l = &f->l;
    if (pb_layer_infer_shape(l, err, sizeof err) != PB_OK) {
        printf("# infer_shape: %s\n", err);
        return 0;
    }
    char nm[64];
    switch (l->kind) {
    case PB_DENSE:
    case PB_CONV: {
        size_t fan = l->kind == PB_DENSE ? pb_layer_isize(l) : (size_t)l->ic * l->k * l->k;
        snprintf(nm, sizeof nm, "%s.weight", l->name);
        param_init(&f->w, nm, (size_t)l->oc * fan, 0.0f, 1.0f / sqrtf((float)fan));
        f->w.prunable = 1;
        f->w.fan_in = (int)fan;
        l->w = &f->w;
        if (l->has_bias) {
            snprintf(nm, sizeof nm, "%s.bias", l->name);
            param_init(&f->b, nm, (size_t)l->oc, 0.0f, 0.5f);
            l->b = &f->b;
        }
        break;
    }
    case PB_BN:
        snprintf(nm, sizeof nm, "%s.weight", l->name);
        param_init(&f->w, nm, (size_t)l->oc, 1.0f, 0.3f);
        snprintf(nm, sizeof nm, "%s.bias", l->name);
        param_init(&f->b, nm, (size_t)l->oc, 0.0f, 0.3f);
        l->w = &f->w;
        l->b = &f->b;
        f->run_mean = falloc((size_t)l->oc);
        f->run_var = falloc((size_t)l->oc);
        for (int c = 0; c < l->oc; c++)
            f->run_var[c] = 1.0f;
        l->run_mean = f->run_mean;
        l->run_var = f->run_var;
        break;
    default:
        break;
    }
    if (pb_layer_alloc(l, max_batch, err, sizeof err) != PB_OK) {
        printf("# alloc: %s\n", err);
        return 0;
    }
    return 1;
}

static void fx_free(fixture *f)
{
    pb_layer_free(&f->l);
    param_free(&f->w);
    param_free(&f->b);
    pb_free(f->run_mean);
    pb_free(f->run_var);
}

static void zero_grads(pb_layer *l)
{
    if (l->w)
        memset(l->w->g, 0, l->w->n * sizeof(float));
    if (l->b)
        memset(l->b->g, 0, l->b->n * sizeof(float));
}

#define DROP_SEED 4242

/* Reseeding before every forward gives dropout the same mask each time. */
static double loss_of(pb_layer *l, const float *x, const float *x2, const float *R, int B, int train)
{
    pb_rng r;
    pb_rng_seed(&r, DROP_SEED);
    pb_layer_forward(l, x, x2, B, train, &r);
    double s = 0.0;
    size_t n = (size_t)B * pb_layer_osize(l);
    for (size_t i = 0; i < n; i++)
        s += (double)l->out[i] * R[i];
    return s;
}

/* Numerical derivative of the loss with respect to each element of v. */
static void numgrad(pb_layer *l, float *v, size_t nv, double *num, const float *x, const float *x2,
                    const float *R, int B, int train)
{
    for (size_t i = 0; i < nv; i++) {
        const float keep = v[i];
        v[i] = keep + FD_EPS;
        double lp = loss_of(l, x, x2, R, B, train);
        v[i] = keep - FD_EPS;
        double lm = loss_of(l, x, x2, R, B, train);
        v[i] = keep;
        /* divide by the step actually taken, which float rounding changes */
        num[i] = (lp - lm) / ((double)(keep + FD_EPS) - (double)(keep - FD_EPS));
    }
}

static int close_enough(const char *what, const float *an, const double *num, size_t n)
{
    double scale = 1.0;
    for (size_t i = 0; i < n; i++)
        if (fabs(num[i]) > scale)
            scale = fabs(num[i]);
    double worst = -INFINITY;
    size_t wi = 0;
    int ok = 1;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)an[i] - num[i]);
        double lim = RTOL * fmax(fabs(an[i]), fabs(num[i])) + ATOL * scale;
        if (d > lim)
            ok = 0;
        if (d - lim > worst) {
            worst = d - lim;
            wi = i;
        }
    }
    if (!ok)
        printf("# %s[%zu]: analytic %.6g numeric %.6g\n", what, wi, (double)an[wi], num[wi]);
    return ok;
}

/* Forward + backward with dout = R, then finite differences on x, x2 and
 * the layer's parameters. */
static int gradcheck(pb_layer proto, int B, enum gen g, int train)
{
    fixture f;
    if (!fx_setup(&f, proto, B)) {
        fx_free(&f);
        return 0;
    }
    pb_layer *l = &f.l;
    const size_t ni = (size_t)B * pb_layer_isize(l), no = (size_t)B * pb_layer_osize(l);
    float *x = falloc(ni), *x2 = NULL, *R = falloc(no), *dx = falloc(ni), *dx2 = NULL;
    fill(x, ni, g);
    fill(R, no, GEN_NORMAL);
    if (l->kind == PB_ADD) {
        x2 = falloc(ni);
        dx2 = falloc(ni);
        fill(x2, ni, g);
    }
    zero_grads(l);
    loss_of(l, x, x2, R, B, train);
    memcpy(l->dout, R, no * sizeof(float));
    pb_layer_backward(l, x, dx, dx2, B);

    size_t most = ni;
    if (l->w && l->w->n > most)
        most = l->w->n;
    double *num = malloc(most * sizeof(double));
    if (!num)
        abort();
    int ok = 1;
    numgrad(l, x, ni, num, x, x2, R, B, train);
    ok &= close_enough("dx", dx, num, ni);
    if (x2) {
        numgrad(l, x2, ni, num, x, x2, R, B, train);
        ok &= close_enough("dx2", dx2, num, ni);
    }
    if (l->w) {
        numgrad(l, l->w->w, l->w->n, num, x, x2, R, B, train);
        ok &= close_enough(l->w->name, l->w->g, num, l->w->n);
    }
    if (l->b) {
        numgrad(l, l->b->w, l->b->n, num, x, x2, R, B, train);
        ok &= close_enough(l->b->name, l->b->g, num, l->b->n);
    }
    free(num);
    pb_free(x);
    pb_free(x2);
    pb_free(R);
    pb_free(dx);
    pb_free(dx2);
    fx_free(&f);
    return ok;
}

static pb_layer mk_conv(int ic, int ih, int iw, int oc, int k, int stride, int pad, int bias)
{
    pb_layer l = mk(PB_CONV, ic, ih, iw);
    l.oc = oc;
    l.k = k;
    l.stride = stride;
    l.pad = pad;
    l.has_bias = bias;
    return l;
}

static pb_layer mk_pool(pb_layer_kind kind, int ic, int ih, int iw, int k, int stride)
{
    pb_layer l = mk(kind, ic, ih, iw);
    l.k = k;
    l.stride = stride;
    return l;
}

static pb_layer mk_dense(int ic, int ih, int iw, int oc, int bias)
{
    pb_layer l = mk(PB_DENSE, ic, ih, iw);
    l.oc = oc;
    l.has_bias = bias;
    return l;
}

/* ------------------------------------------------------------------ tests */

static int t_names(void)
{
    static const char *const want[PB_LAYER_KINDS] = {"dense", "conv", "maxpool", "avgpool", "gap",
                                                     "relu",  "bn",   "flatten", "add",     "dropout",
                                                     "embed", "layernorm", "linear", "attn", "gelu", "tiedout"};
    for (int i = 0; i < PB_LAYER_KINDS; i++)
        if (!pb_layer_kind_names[i] || strcmp(pb_layer_kind_names[i], want[i]) != 0) {
            printf("# kind %d named %s\n", i, pb_layer_kind_names[i] ? pb_layer_kind_names[i] : "NULL");
            return 0;
        }
    return 1;
}

static int shape_is(pb_layer l, int oc, int oh, int ow)
{
    char err[PB_ERRLEN];
    if (pb_layer_infer_shape(&l, err, sizeof err) != PB_OK) {
        printf("# %s: %s\n", l.name, err);
        return 0;
    }
    if (l.oc != oc || l.oh != oh || l.ow != ow) {
        printf("# %s: got %dx%dx%d want %dx%dx%d\n", l.name, l.oc, l.oh, l.ow, oc, oh, ow);
        return 0;
    }
    return 1;
}

static int shape_fails(pb_layer l)
{
    char err[PB_ERRLEN] = "";
    int rc = pb_layer_infer_shape(&l, err, sizeof err);
    if (rc != PB_EUSAGE || !strstr(err, l.name)) {
        printf("# %s: rc %d, message '%s'\n", l.name, rc, err);
        return 0;
    }
    return 1;
}

static int t_shapes(void)
{
    int ok = 1;
    ok &= shape_is(mk_conv(1, 28, 28, 6, 5, 1, 2, 1), 6, 28, 28);
    ok &= shape_is(mk_conv(6, 14, 14, 16, 5, 1, 0, 1), 16, 10, 10);
    ok &= shape_is(mk_conv(3, 7, 9, 4, 3, 2, 1, 1), 4, 4, 5);
    ok &= shape_is(mk_pool(PB_MAXPOOL, 6, 28, 28, 2, 2), 6, 14, 14);
    ok &= shape_is(mk_pool(PB_AVGPOOL, 3, 5, 5, 2, 2), 3, 2, 2);
    ok &= shape_is(mk(PB_GAP, 8, 4, 4), 8, 1, 1);
    ok &= shape_is(mk(PB_FLATTEN, 16, 5, 5), 400, 1, 1);
    ok &= shape_is(mk_dense(16, 5, 5, 120, 1), 120, 1, 1);
    ok &= shape_is(mk(PB_RELU, 3, 4, 5), 3, 4, 5);
    ok &= shape_is(mk(PB_BN, 3, 4, 5), 3, 4, 5);
    ok &= shape_is(mk(PB_ADD, 3, 4, 5), 3, 4, 5);
    ok &= shape_is(mk(PB_DROPOUT, 3, 4, 5), 3, 4, 5);
    ok &= shape_fails(mk_conv(1, 3, 3, 2, 7, 1, 1, 1));
    ok &= shape_fails(mk_conv(1, 8, 8, 2, 3, 0, 1, 1));
    ok &= shape_fails(mk_conv(1, 8, 8, 0, 3, 1, 1, 1));
    ok &= shape_fails(mk_pool(PB_MAXPOOL, 1, 2, 2, 3, 1));
    ok &= shape_fails(mk_dense(1, 4, 4, 0, 1));
    ok &= shape_fails(mk(PB_GAP, 0, 4, 4));
    pb_layer d = mk(PB_DROPOUT, 1, 4, 4);
    d.p = 1.0f;
    ok &= shape_fails(d);
    return ok;
}

static int t_dense_bias(void) { return gradcheck(mk_dense(2, 3, 2, 5, 1), 3, GEN_NORMAL, 1); }
static int t_dense_nobias(void) { return gradcheck(mk_dense(7, 1, 1, 4, 0), 3, GEN_NORMAL, 1); }
static int t_conv_k5s1p2(void) { return gradcheck(mk_conv(2, 6, 6, 3, 5, 1, 2, 1), 3, GEN_NORMAL, 1); }
static int t_conv_k3s2p1(void) { return gradcheck(mk_conv(3, 7, 6, 4, 3, 2, 1, 1), 3, GEN_NORMAL, 1); }
/* More than 8 channels: forward and weight gradient in the cv layout, with
 * 3x3 and LeNet-5's 5x5 kernels (each k is its own register block). */
static int t_conv_channel_vector(void)
{
    return gradcheck(mk_conv(2, 7, 9, 12, 3, 1, 1, 1), 2, GEN_NORMAL, 1) &&
           gradcheck(mk_conv(2, 8, 8, 16, 5, 1, 0, 1), 2, GEN_NORMAL, 1);
}
/* Few taps and many channels (conv4's first layer) stay on the thin kernels. */
static int t_conv_few_taps(void)
{
    pb_layer l = mk_conv(1, 6, 7, 40, 3, 1, 1, 1);
    char err[PB_ERRLEN];
    if (pb_layer_infer_shape(&l, err, sizeof err) != PB_OK || !pb_kern_conv_is_thin(&l))
        return 0;
    return gradcheck(mk_conv(1, 6, 7, 40, 3, 1, 1, 1), 2, GEN_NORMAL, 1) &&
           gradcheck(mk_conv(3, 5, 5, 20, 3, 1, 0, 0), 2, GEN_NORMAL, 1);
}
static int t_conv_nobias(void) { return gradcheck(mk_conv(2, 5, 5, 2, 2, 3, 2, 0), 2, GEN_NORMAL, 1); }

/* Convolutions on the im2col/SGEMM chunks (not thin): more than 16 output
 * channels or more than 256 taps, channel counts that are no multiple of the
 * vector width, odd sizes, stride 2 and 1x1 projections. */
static const int wide_shapes[][8] = {
    /* ic ih iw oc k stride pad bias */
    {17, 5, 7, 20, 3, 1, 1, 0}, {5, 9, 7, 33, 3, 2, 1, 1}, {6, 7, 7, 18, 1, 2, 0, 1},
    {4, 6, 6, 24, 3, 1, 1, 1},  {30, 4, 5, 7, 3, 1, 1, 1}, {9, 6, 5, 17, 3, 2, 0, 0},
};
#define NWIDE (sizeof wide_shapes / sizeof wide_shapes[0])

static pb_layer mk_wide(size_t i)
{
    const int *s = wide_shapes[i];
    return mk_conv(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]);
}

static int t_conv_wide(void)
{
    int ok = 1;
    for (size_t i = 0; i < NWIDE && ok; i++) {
        pb_layer l = mk_wide(i);
        char err[PB_ERRLEN];
        if (pb_layer_infer_shape(&l, err, sizeof err) != PB_OK || pb_kern_conv_is_thin(&l)) {
            printf("# shape %zu does not take the SGEMM path\n", i);
            return 0;
        }
        ok &= gradcheck(mk_wide(i), 2, GEN_NORMAL, 1);
        if (!ok)
            printf("# shape %zu\n", i);
    }
    return ok;
}
static int t_maxpool(void)
{
    return gradcheck(mk_pool(PB_MAXPOOL, 2, 4, 6, 2, 2), 3, GEN_DISTINCT, 1) &&
           gradcheck(mk_pool(PB_MAXPOOL, 2, 5, 5, 3, 2), 2, GEN_DISTINCT, 1);
}
static int t_avgpool(void)
{
    return gradcheck(mk_pool(PB_AVGPOOL, 2, 4, 6, 2, 2), 3, GEN_NORMAL, 1) &&
           gradcheck(mk_pool(PB_AVGPOOL, 2, 5, 5, 3, 1), 2, GEN_NORMAL, 1);
}
static int t_gap(void) { return gradcheck(mk(PB_GAP, 3, 3, 4), 3, GEN_NORMAL, 1); }
static int t_relu(void) { return gradcheck(mk(PB_RELU, 2, 3, 3), 3, GEN_AWAY0, 1); }
static int t_bn_conv(void) { return gradcheck(mk(PB_BN, 3, 2, 3), 3, GEN_NORMAL, 1); }
static int t_bn_dense(void) { return gradcheck(mk(PB_BN, 5, 1, 1), 4, GEN_NORMAL, 1); }
static int t_bn_eval_grad(void) { return gradcheck(mk(PB_BN, 3, 2, 2), 3, GEN_NORMAL, 0); }
static int t_flatten(void) { return gradcheck(mk(PB_FLATTEN, 2, 3, 2), 3, GEN_NORMAL, 1); }
static int t_add(void) { return gradcheck(mk(PB_ADD, 2, 2, 3), 3, GEN_NORMAL, 1); }
static int t_dropout(void)
{
    pb_layer l = mk(PB_DROPOUT, 2, 3, 4);
    l.p = 0.4f;
    return gradcheck(l, 3, GEN_NORMAL, 1);
}

/* BN running statistics follow PyTorch (unbiased variance); eval uses them. */
static int t_bn_running(void)
{
    fixture f;
    int ok = fx_setup(&f, mk(PB_BN, 3, 2, 2), 4);
    pb_layer *l = &f.l;
    const int B = 4, C = 3, hw = 4;
    const size_t n = (size_t)B * C * hw;
    float *x = falloc(n);
    fill(x, n, GEN_NORMAL);
    for (int c = 0; c < C; c++) {
        l->run_mean[c] = 0.5f;
        l->run_var[c] = 2.0f;
    }
    if (ok)
        pb_layer_forward(l, x, NULL, B, 1, &g_rng);
    for (int c = 0; ok && c < C; c++) {
        double s = 0, ss = 0;
        for (int b = 0; b < B; b++)
            for (int p = 0; p < hw; p++)
                s += x[(b * C + c) * hw + p];
        double mean = s / (B * hw);
        for (int b = 0; b < B; b++)
            for (int p = 0; p < hw; p++) {
                double d = x[(b * C + c) * hw + p] - mean;
                ss += d * d;
            }
        double rm = 0.9 * 0.5 + 0.1 * mean, rv = 0.9 * 2.0 + 0.1 * ss / (B * hw - 1);
        if (fabs(l->run_mean[c] - rm) > 1e-5 || fabs(l->run_var[c] - rv) > 1e-5) {
            printf("# channel %d: running %g %g want %g %g\n", c, (double)l->run_mean[c],
                   (double)l->run_var[c], rm, rv);
            ok = 0;
        }
        /* train-mode output is normalized with the biased batch variance */
        double ivs = 1.0 / sqrt(ss / (B * hw) + 1e-5);
        for (int b = 0; b < B; b++)
            for (int p = 0; p < hw; p++) {
                size_t i = (size_t)(b * C + c) * hw + p;
                double want = l->w->w[c] * (x[i] - mean) * ivs + l->b->w[c];
                if (fabs(l->out[i] - want) > 1e-4) {
                    printf("# train out[%zu] %g want %g\n", i, (double)l->out[i], want);
                    ok = 0;
                }
            }
    }
    /* eval: running statistics, and they stay put */
    for (int c = 0; c < C; c++) {
        l->run_mean[c] = 0.25f * (float)c - 0.3f;
        l->run_var[c] = 0.5f + (float)c;
    }
    fill(x, n, GEN_NORMAL);
    if (ok)
        pb_layer_forward(l, x, NULL, B, 0, NULL);
    for (size_t i = 0; ok && i < n; i++) {
        int c = (int)(i / hw) % C;
        double want = l->w->w[c] * (x[i] - l->run_mean[c]) / sqrt(l->run_var[c] + 1e-5) + l->b->w[c];
        if (fabs(l->out[i] - want) > 1e-4) {
            printf("# eval out[%zu] %g want %g\n", i, (double)l->out[i], want);
            ok = 0;
        }
    }
    for (int c = 0; ok && c < C; c++)
        if (l->run_mean[c] != 0.25f * (float)c - 0.3f || l->run_var[c] != 0.5f + (float)c) {
            printf("# eval changed running stats\n");
            ok = 0;
        }
    pb_free(x);
    fx_free(&f);
    return ok;
}

static int t_dropout_mask(void)
{
    pb_layer proto = mk(PB_DROPOUT, 4, 50, 50);
    proto.p = 0.3f;
    fixture f;
    int ok = fx_setup(&f, proto, 4);
    pb_layer *l = &f.l;
    const size_t n = 4 * pb_layer_osize(l);
    float *x = falloc(n), *dx = falloc(n);
    fill(x, n, GEN_AWAY0);
    size_t kept = 0;
    if (ok) {
        pb_layer_forward(l, x, NULL, 4, 1, &g_rng);
        for (size_t i = 0; i < n; i++) {
            if (l->out[i] == 0.0f)
                continue;
            kept++;
            if (fabsf(l->out[i] - x[i] / 0.7f) > 1e-6f * fabsf(x[i]) * 2)
                ok = 0;
        }
        double frac = (double)kept / (double)n;
        if (fabs(frac - 0.7) > 0.01) {
            printf("# kept fraction %g, want 0.7\n", frac);
            ok = 0;
        }
        /* eval: identity both ways */
        pb_layer_forward(l, x, NULL, 4, 0, NULL);
        ok &= memcmp(l->out, x, n * sizeof(float)) == 0;
        fill(l->dout, n, GEN_NORMAL);
        pb_layer_backward(l, x, dx, NULL, 4);
        ok &= memcmp(l->dout, dx, n * sizeof(float)) == 0;
    }
    pb_free(x);
    pb_free(dx);
    fx_free(&f);
    return ok;
}

/* Direct convolution in double. */
static void naive_conv(const pb_layer *l, const float *x, int B, double *out)
{
    for (int b = 0; b < B; b++)
        for (int o = 0; o < l->oc; o++)
            for (int y = 0; y < l->oh; y++)
                for (int xo = 0; xo < l->ow; xo++) {
                    double s = l->has_bias ? l->b->w[o] : 0.0;
                    for (int c = 0; c < l->ic; c++)
                        for (int ki = 0; ki < l->k; ki++)
                            for (int kj = 0; kj < l->k; kj++) {
                                int iy = y * l->stride - l->pad + ki, ix = xo * l->stride - l->pad + kj;
                                if (iy < 0 || iy >= l->ih || ix < 0 || ix >= l->iw)
                                    continue;
                                s += (double)l->w->w[((o * l->ic + c) * l->k + ki) * l->k + kj] *
                                     x[((size_t)(b * l->ic + c) * l->ih + iy) * l->iw + ix];
                            }
                    out[((size_t)(b * l->oc + o) * l->oh + y) * l->ow + xo] = s;
                }
}

static int t_conv_naive(void)
{
    const pb_layer cfg[] = {
        mk_conv(1, 28, 28, 6, 5, 1, 2, 1), mk_conv(6, 14, 14, 16, 5, 1, 0, 1),
        mk_conv(3, 7, 9, 4, 3, 2, 1, 1),   mk_conv(2, 8, 7, 3, 3, 3, 2, 0),
        mk_conv(4, 5, 5, 5, 1, 1, 0, 1),   mk_conv(2, 4, 4, 3, 5, 1, 3, 1),
        /* more than 8 channels: a vector of channels per pixel, rows in
         * pairs (9 is odd) and columns in chunks (27 = 3 x 9) */
        mk_conv(3, 9, 27, 12, 3, 1, 1, 1), mk_conv(2, 5, 5, 9, 3, 1, 0, 0),
    };
    int ok = 1;
    for (size_t t = 0; t < sizeof cfg / sizeof cfg[0]; t++) {
        fixture f;
        const int B = 3;
        if (!fx_setup(&f, cfg[t], B)) {
            fx_free(&f);
            return 0;
        }
        pb_layer *l = &f.l;
        size_t ni = B * pb_layer_isize(l), no = B * pb_layer_osize(l);
        float *x = falloc(ni);
        double *ref = malloc(no * sizeof(double));
        if (!ref)
            abort();
        fill(x, ni, GEN_NORMAL);
        pb_layer_forward(l, x, NULL, B, 1, NULL);
        naive_conv(l, x, B, ref);
        for (size_t i = 0; i < no; i++)
            if (fabs(l->out[i] - ref[i]) > 1e-4 * (1.0 + fabs(ref[i]))) {
                printf("# config %zu out[%zu] %g want %g\n", t, i, (double)l->out[i], ref[i]);
                ok = 0;
                break;
            }
        free(ref);
        pb_free(x);
        fx_free(&f);
    }
    return ok;
}

static int near_all(const char *what, const float *a, const float *b, size_t n, double tol);

/* The adjoint of naive_conv in double: dW, db and dx of loss = sum(out * R). */
static void naive_conv_grads(const pb_layer *l, const float *x, const float *R, int B, double *dw,
                             double *db, double *dx)
{
    memset(dw, 0, l->w->n * sizeof(double));
    memset(db, 0, (size_t)l->oc * sizeof(double));
    memset(dx, 0, (size_t)B * pb_layer_isize(l) * sizeof(double));
    for (int b = 0; b < B; b++)
        for (int o = 0; o < l->oc; o++)
            for (int y = 0; y < l->oh; y++)
                for (int xo = 0; xo < l->ow; xo++) {
                    const double r = R[((size_t)(b * l->oc + o) * l->oh + y) * l->ow + xo];
                    db[o] += r;
                    for (int c = 0; c < l->ic; c++)
                        for (int ki = 0; ki < l->k; ki++)
                            for (int kj = 0; kj < l->k; kj++) {
                                int iy = y * l->stride - l->pad + ki, ix = xo * l->stride - l->pad + kj;
                                if (iy < 0 || iy >= l->ih || ix < 0 || ix >= l->iw)
                                    continue;
                                const size_t wi = ((size_t)(o * l->ic + c) * l->k + ki) * l->k + kj;
                                const size_t xi = ((size_t)(b * l->ic + c) * l->ih + iy) * l->iw + ix;
                                dw[wi] += r * x[xi];
                                dx[xi] += r * l->w->w[wi];
                            }
                }
}

static int near_ref(const char *what, size_t shape, const float *got, const double *ref, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (fabs(got[i] - ref[i]) > 1e-4 * (1.0 + fabs(ref[i]))) {
            printf("# shape %zu %s[%zu] %g, reference %g\n", shape, what, i, (double)got[i], ref[i]);
            return 0;
        }
    return 1;
}

/* The SGEMM path's forward, weight, bias and input gradients against the
 * direct convolution and its adjoint, for batches of 1, 3 and 5 examples. */
static int t_conv_wide_ref(void)
{
    int ok = 1;
    for (size_t t = 0; t < NWIDE && ok; t++)
        for (int B = 1; B <= 5 && ok; B += 2) {
            fixture f;
            if (!fx_setup(&f, mk_wide(t), B)) {
                fx_free(&f);
                return 0;
            }
            pb_layer *l = &f.l;
            const size_t ni = B * pb_layer_isize(l), no = B * pb_layer_osize(l);
            float *x = falloc(ni), *R = falloc(no), *dx = falloc(ni);
            double *ref = malloc(no * sizeof(double)), *rdw = malloc(l->w->n * sizeof(double));
            double *rdb = malloc((size_t)l->oc * sizeof(double)), *rdx = malloc(ni * sizeof(double));
            if (!ref || !rdw || !rdb || !rdx)
                abort();
            fill(x, ni, GEN_NORMAL);
            fill(R, no, GEN_NORMAL);
            zero_grads(l);
            pb_layer_forward(l, x, NULL, B, 1, NULL);
            naive_conv(l, x, B, ref);
            ok &= near_ref("out", t, l->out, ref, no);
            memcpy(l->dout, R, no * sizeof(float));
            for (size_t i = 0; i < ni; i++)
                dx[i] = 1e6f; /* backward_write must overwrite it */
            pb_layer_backward_write(l, x, dx, B);
            naive_conv_grads(l, x, R, B, rdw, rdb, rdx);
            ok &= near_ref("dW", t, l->w->g, rdw, l->w->n);
            ok &= near_ref("dx", t, dx, rdx, ni);
            if (l->b)
                ok &= near_ref("db", t, l->b->g, rdb, (size_t)l->oc);
            free(ref);
            free(rdw);
            free(rdb);
            free(rdx);
            pb_free(x);
            pb_free(R);
            pb_free(dx);
            fx_free(&f);
        }
    return ok;
}

/* Winograd F(2x2, 3x3) (3x3, stride 1, padding 1, not thin): odd sizes,
 * channel counts no multiple of the vector width, fewer input than output
 * channels and the reverse, a tile row wider than one vector, a fused ReLU. */
static const int wino_shapes[][6] = {
    /* ic ih iw oc bias relu */
    {17, 5, 7, 20, 0, 0}, {30, 4, 5, 7, 1, 0}, {20, 9, 9, 33, 1, 1}, {33, 3, 3, 18, 0, 1},
    {18, 11, 37, 24, 1, 0}, {40, 1, 2, 17, 1, 1},
};
#define NWINO (sizeof wino_shapes / sizeof wino_shapes[0])

static pb_layer mk_wino(size_t i)
{
    const int *s = wino_shapes[i];
    pb_layer l = mk_conv(s[0], s[1], s[2], s[3], 3, 1, 1, s[4]);
    l.relu_after = s[5];
    return l;
}

/* The shapes below are smaller than those Winograd takes by default, so
 * these tests force it (mode 2). */
static int wino_taken(pb_layer l, size_t i)
{
    char err[PB_ERRLEN];
    pb_kern_conv_use_winograd(2);
    if (pb_layer_infer_shape(&l, err, sizeof err) != PB_OK || !pb_kern_conv_is_winograd(&l)) {
        printf("# Winograd shape %zu does not take the Winograd path\n", i);
        return 0;
    }
    return 1;
}

/* Gradients against finite differences (no fused ReLU there: its kink). */
static int t_conv_winograd_grad(void)
{
    int ok = 1;
    for (size_t i = 0; i < NWINO && ok; i++) {
        pb_layer l = mk_wino(i);
        l.relu_after = 0;
        if (!wino_taken(l, i))
            return 0;
        ok &= gradcheck(l, 2, GEN_NORMAL, 1);
        if (!ok)
            printf("# Winograd shape %zu\n", i);
    }
    pb_kern_conv_use_winograd(1);
    return ok;
}

/* Forward, weight, bias and input gradients against the reference path
 * (im2col and SGEMM) and against the direct convolution, batches of 1 and 5,
 * dx overwritten and added to. */
static int t_conv_winograd_ref(void)
{
    int ok = 1;
    for (size_t t = 0; t < NWINO && ok; t++)
        for (int B = 1; B <= 5 && ok; B += 4) {
            if (!wino_taken(mk_wino(t), t))
                return 0;
            fixture f;
            if (!fx_setup(&f, mk_wino(t), B)) {
                fx_free(&f);
                return 0;
            }
            pb_layer *l = &f.l;
            const size_t ni = B * pb_layer_isize(l), no = B * pb_layer_osize(l), nw = l->w->n;
            float *x = falloc(ni), *R = falloc(no), *out[2], *dx[2], *dxa[2], *gw[2], *gb[2];
            fill(x, ni, GEN_NORMAL);
            fill(R, no, GEN_NORMAL);
            for (int w = 0; w < 2; w++) {
                const int was = pb_kern_conv_use_winograd(2 * w);
                out[w] = falloc(no);
                dx[w] = falloc(ni);
                dxa[w] = falloc(ni);
                gw[w] = falloc(nw);
                gb[w] = falloc((size_t)l->oc);
                zero_grads(l);
                pb_layer_forward(l, x, NULL, B, 1, NULL);
                memcpy(out[w], l->out, no * sizeof(float));
                memcpy(l->dout, R, no * sizeof(float));
                for (size_t i = 0; i < ni; i++)
                    dx[w][i] = 1e6f; /* backward_write must overwrite it */
                pb_layer_backward_write(l, x, dx[w], B);
                memcpy(gw[w], l->w->g, nw * sizeof(float));
                if (l->b)
                    memcpy(gb[w], l->b->g, (size_t)l->oc * sizeof(float));
                for (size_t i = 0; i < ni; i++)
                    dxa[w][i] = 0.5f;
                pb_layer_backward(l, x, dxa[w], NULL, B);
                pb_kern_conv_use_winograd(was);
            }
            ok &= near_all("out", out[1], out[0], no, 1e-4);
            ok &= near_all("dx", dx[1], dx[0], ni, 1e-4);
            ok &= near_all("dx added", dxa[1], dxa[0], ni, 1e-4);
            ok &= near_all("dW", gw[1], gw[0], nw, 1e-4);
            if (l->b)
                ok &= near_all("db", gb[1], gb[0], (size_t)l->oc, 1e-4);
            if (!l->relu_after) {
                double *ref = malloc(no * sizeof(double));
                if (!ref)
                    abort();
                naive_conv(l, x, B, ref);
                ok &= near_ref("out", t, out[1], ref, no);
                free(ref);
            }
            if (!ok)
                printf("# Winograd shape %zu, batch %d\n", t, B);
            for (int w = 0; w < 2; w++) {
                pb_free(out[w]);
                pb_free(dx[w]);
                pb_free(dxa[w]);
                pb_free(gw[w]);
                pb_free(gb[w]);
            }
            pb_free(x);
            pb_free(R);
            fx_free(&f);
        }
    pb_kern_conv_use_winograd(1);
    return ok;
}

/* The default takes Winograd for conv4's wide layers and not for ResNet-20's. */
static int t_conv_winograd_default(void)
{
    pb_layer wide = mk_conv(64, 28, 28, 64, 3, 1, 1, 1), r32 = mk_conv(32, 14, 14, 32, 3, 1, 1, 0);
    pb_layer r64 = mk_conv(64, 7, 7, 64, 3, 1, 1, 0), s2 = mk_conv(64, 28, 28, 64, 3, 2, 1, 0);
    char err[PB_ERRLEN];
    if (pb_layer_infer_shape(&wide, err, sizeof err) != PB_OK || pb_layer_infer_shape(&r32, err, sizeof err) ||
        pb_layer_infer_shape(&r64, err, sizeof err) || pb_layer_infer_shape(&s2, err, sizeof err))
        return 0;
    const int on = pb_kern_conv_is_winograd(&wide) && !pb_kern_conv_is_winograd(&r32) &&
                   !pb_kern_conv_is_winograd(&r64) && !pb_kern_conv_is_winograd(&s2);
    pb_kern_conv_use_winograd(0);
    const int off = !pb_kern_conv_is_winograd(&wide);
    pb_kern_conv_use_winograd(1);
    return on && off;
}

/* A conv applying the ReLU that follows it (relu_after) gives, bit for bit,
 * the outputs and gradients of the conv and a separate ReLU, on the thin
 * kernels and on the SGEMM path. */
static int t_conv_relu_fused(void)
{
    const pb_layer protos[3] = {mk_conv(2, 7, 9, 12, 3, 1, 1, 1), mk_wide(1), mk_wide(4)};
    const int B = 3;
    int ok = 1;
    for (int t = 0; t < 3 && ok; t++) {
        fixture f;
        if (!fx_setup(&f, protos[t], B)) {
            fx_free(&f);
            return 0;
        }
        pb_layer *l = &f.l;
        const size_t ni = B * pb_layer_isize(l), no = B * pb_layer_osize(l);
        float *x = falloc(ni), *R = falloc(no), *out[2], *dx[2], *gw[2];
        fill(x, ni, GEN_NORMAL);
        fill(R, no, GEN_NORMAL);
        for (int fused = 0; fused < 2; fused++) {
            out[fused] = falloc(no);
            dx[fused] = falloc(ni);
            gw[fused] = falloc(l->w->n);
            zero_grads(l);
            l->relu_after = fused;
            pb_layer_forward(l, x, NULL, B, 1, NULL);
            if (!fused)
                for (size_t i = 0; i < no; i++)
                    l->out[i] = l->out[i] < 0.0f ? 0.0f : l->out[i];
            memcpy(out[fused], l->out, no * sizeof(float));
            for (size_t i = 0; i < no; i++)
                l->dout[i] = fused || l->out[i] > 0.0f ? R[i] : 0.0f;
            pb_layer_backward_write(l, x, dx[fused], B);
            memcpy(gw[fused], l->w->g, l->w->n * sizeof(float));
        }
        l->relu_after = 0;
        size_t neg = 0;
        for (size_t i = 0; i < no; i++)
            neg += out[0][i] == 0.0f;
        ok &= neg > no / 10 && neg < no - no / 10;
        ok &= near_all("out", out[1], out[0], no, 0.0);
        ok &= near_all("dx", dx[1], dx[0], ni, 0.0);
        ok &= near_all("dW", gw[1], gw[0], l->w->n, 0.0);
        for (int fused = 0; fused < 2; fused++) {
            pb_free(out[fused]);
            pb_free(dx[fused]);
            pb_free(gw[fused]);
        }
        pb_free(x);
        pb_free(R);
        fx_free(&f);
    }
    return ok;
}

/* pb_layer_infer: BN's inference forward gives eval mode's output bit for
 * bit and leaves what a backward reads (x-hat, saved statistics) alone. */
static int t_bn_infer(void)
{
    fixture f;
    const int B = 3;
    int ok = fx_setup(&f, mk(PB_BN, 5, 7, 3), B); /* 21 floats a plane: vectors and a tail */
    pb_layer *l = &f.l;
    const size_t n = B * pb_layer_osize(l), ns = 2 * (size_t)l->oc + 1;
    float *x = falloc(n), *x2 = falloc(n), *want = falloc(n), *xh = falloc(n), *st = falloc(ns);
    fill(x, n, GEN_NORMAL);
    fill(x2, n, GEN_NORMAL);
    for (int c = 0; c < l->oc; c++) {
        l->run_mean[c] = 0.1f * (float)c;
        l->run_var[c] = 0.5f + 0.3f * (float)c;
        l->w->w[c] = 1.0f + 0.2f * (float)c;
        l->b->w[c] = -0.1f * (float)c;
    }
    float rm[5], rv[5];
    if (ok) {
        pb_layer_forward(l, x2, NULL, B, 0, NULL);
        memcpy(want, l->out, n * sizeof(float));
        memcpy(rm, l->run_mean, sizeof rm);
        memcpy(rv, l->run_var, sizeof rv);
        pb_layer_forward(l, x, NULL, B, 1, &g_rng);
        memcpy(l->run_mean, rm, sizeof rm); /* the train-mode forward moved them */
        memcpy(l->run_var, rv, sizeof rv);
        memcpy(xh, l->ws, n * sizeof(float));
        memcpy(st, l->stat, ns * sizeof(float));
        pb_layer_infer(l, x2, NULL, B);
        ok &= near_all("out", l->out, want, n, 0.0);
        ok &= memcmp(xh, l->ws, n * sizeof(float)) == 0 && memcmp(st, l->stat, ns * sizeof(float)) == 0;
    }
    pb_free(x);
    pb_free(x2);
    pb_free(want);
    pb_free(xh);
    pb_free(st);
    fx_free(&f);
    return ok;
}

/* pb_layer_unfold against its definition, entry by entry, and a conv's
 * forward against the unfolded rows times the weights plus the bias. */
static int t_unfold(void)
{
    const pb_layer cfg[] = {
        mk_conv(3, 7, 6, 4, 3, 2, 1, 1), /* stride 2, pad 1 (im2col and SGEMM) */
        mk_conv(2, 6, 5, 3, 3, 1, 0, 1), /* stride 1, pad 0 (the thin kernels) */
        mk_conv(2, 5, 5, 2, 2, 3, 2, 0), /* pad = k: whole windows on padding */
    };
    const int B = 3;
    int ok = 1;
    for (size_t t = 0; t < sizeof cfg / sizeof cfg[0] && ok; t++) {
        fixture f;
        if (!fx_setup(&f, cfg[t], B)) {
            fx_free(&f);
            return 0;
        }
        pb_layer *l = &f.l;
        const int k = l->k, np = l->oh * l->ow;
        const size_t nc = pb_layer_unfold_cols(l), ni = B * pb_layer_isize(l);
        if (nc != (size_t)l->ic * k * k) {
            printf("# config %zu: unfold_cols %zu\n", t, nc);
            ok = 0;
        }
        float *x = falloc(ni), *rows = falloc((size_t)B * np * nc);
        fill(x, ni, GEN_NORMAL);
        for (size_t i = 0; i < (size_t)B * np * nc; i++)
            rows[i] = NAN; /* an entry left unwritten fails */
        pb_layer_unfold(l, x, B, rows);
        for (int b = 0; b < B && ok; b++)
            for (int p = 0; p < np && ok; p++)
                for (size_t col = 0; col < nc && ok; col++) {
                    const int c = (int)col / (k * k), ki = (int)col / k % k, kj = (int)col % k;
                    const int iy = p / l->ow * l->stride - l->pad + ki;
                    const int ix = p % l->ow * l->stride - l->pad + kj;
                    const float want = iy < 0 || iy >= l->ih || ix < 0 || ix >= l->iw
                                           ? 0.0f
                                           : x[((size_t)(b * l->ic + c) * l->ih + iy) * l->iw + ix];
                    const float got = rows[((size_t)b * np + p) * nc + col];
                    if (!(got == want)) {
                        printf("# config %zu: row (%d, %d) col %zu = %g, want %g\n", t, b, p, col,
                               (double)got, (double)want);
                        ok = 0;
                    }
                }
        pb_layer_forward(l, x, NULL, B, 1, NULL);
        for (int b = 0; b < B && ok; b++)
            for (int o = 0; o < l->oc && ok; o++)
                for (int p = 0; p < np && ok; p++) {
                    double want = l->has_bias ? l->b->w[o] : 0.0;
                    for (size_t col = 0; col < nc; col++)
                        want += (double)rows[((size_t)b * np + p) * nc + col] * l->w->w[o * nc + col];
                    const float got = l->out[((size_t)b * l->oc + o) * np + p];
                    if (fabs(got - want) > 1e-4 * (1.0 + fabs(want))) {
                        printf("# config %zu: out (%d, %d, %d) = %g, unfold x W^T + b = %g\n", t, b, o, p,
                               (double)got, want);
                        ok = 0;
                    }
                }
        pb_free(rows);
        pb_free(x);
        fx_free(&f);
    }
    /* a dense layer's rows are its input */
    fixture f;
    if (!fx_setup(&f, mk_dense(2, 3, 2, 5, 1), B)) {
        fx_free(&f);
        return 0;
    }
    const size_t ni = B * pb_layer_isize(&f.l);
    float *x = falloc(ni), *rows = falloc(ni);
    fill(x, ni, GEN_NORMAL);
    pb_layer_unfold(&f.l, x, B, rows);
    if (pb_layer_unfold_cols(&f.l) != pb_layer_isize(&f.l) || memcmp(rows, x, ni * sizeof(float))) {
        printf("# dense: unfold is not a copy of the input\n");
        ok = 0;
    }
    pb_free(rows);
    pb_free(x);
    fx_free(&f);
    return ok;
}

static int near_all(const char *what, const float *a, const float *b, size_t n, double tol)
{
    for (size_t i = 0; i < n; i++)
        if (fabs((double)a[i] - b[i]) > tol * (1.0 + fabs(b[i]))) {
            printf("# %s[%zu]: %g vs %g\n", what, i, (double)a[i], (double)b[i]);
            return 0;
        }
    return 1;
}

/* A batch too big for one workspace chunk gives the same results as the
 * examples one at a time (which fit in one chunk and reuse forward's columns). */
static int t_conv_chunked(void)
{
    fixture f;
    const int B = 32;
    if (!fx_setup(&f, mk_conv(32, 32, 32, 16, 3, 1, 1, 1), B)) {
        fx_free(&f);
        return 0;
    }
    pb_layer *l = &f.l;
    const size_t isz = pb_layer_isize(l), osz = pb_layer_osize(l);
    const size_t per = (size_t)(2 * 32 * 9 + 16) * 32 * 32;
    int ok = 1;
    if (l->ws_n >= (size_t)B * per) {
        printf("# workspace holds the whole batch (%zu floats); chunking not exercised\n", l->ws_n);
        ok = 0;
    }
    float *x = falloc(B * isz), *R = falloc(B * osz), *dx = falloc(B * isz);
    float *out = falloc(B * osz), *gw = falloc(l->w->n), *gb = falloc(l->b->n), *dx1 = falloc(B * isz);
    fill(x, B * isz, GEN_NORMAL);
    fill(R, B * osz, GEN_NORMAL);
    zero_grads(l);
    pb_layer_forward(l, x, NULL, B, 1, NULL);
    memcpy(out, l->out, B * osz * sizeof(float));
    memcpy(l->dout, R, B * osz * sizeof(float));
    pb_layer_backward(l, x, dx, NULL, B);
    memcpy(gw, l->w->g, l->w->n * sizeof(float));
    memcpy(gb, l->b->g, l->b->n * sizeof(float));
    zero_grads(l);
    for (int b = 0; b < B; b++) {
        pb_layer_forward(l, x + b * isz, NULL, 1, 1, NULL);
        ok &= near_all("out", l->out, out + b * osz, osz, 1e-5);
        memcpy(l->dout, R + b * osz, osz * sizeof(float));
        pb_layer_backward(l, x + b * isz, dx1 + b * isz, NULL, 1);
    }
    ok &= near_all("dx", dx1, dx, B * isz, 1e-4);
    ok &= near_all("dW", l->w->g, gw, l->w->n, 1e-3);
    ok &= near_all("db", l->b->g, gb, l->b->n, 1e-3);
    pb_free(x);
    pb_free(R);
    pb_free(dx);
    pb_free(out);
    pb_free(gw);
    pb_free(gb);
    pb_free(dx1);
    fx_free(&f);
    return ok;
}

/* The 2x2 max pool's vector path (blocks of 8 outputs, or one block with
 * fewer kept) picks what the generic scan picks, ties (first maximum) and NaN
 * (last NaN) included, on rows of 9, 5 and 3 outputs (odd input width). */
static int t_maxpool2_scan(void)
{
    static const int shapes[][3] = {{3, 20, 18}, {16, 10, 10}, {2, 7, 7}};
    int ok = 1;
    for (int s = 0; s < 3 && ok; s++) {
        fixture f;
        const int B = 2;
        if (!fx_setup(&f, mk_pool(PB_MAXPOOL, shapes[s][0], shapes[s][1], shapes[s][2], 2, 2), B)) {
            fx_free(&f);
            return 0;
        }
        pb_layer *l = &f.l;
        const size_t isz = pb_layer_isize(l), osz = pb_layer_osize(l);
        float *x = falloc(B * isz);
        for (size_t i = 0; i < B * isz; i++)
            x[i] = pb_rng_below(&g_rng, 50) == 0 ? NAN : (float)pb_rng_below(&g_rng, 3);
        pb_layer_forward(l, x, NULL, B, 1, NULL);
        for (int b = 0; b < B && ok; b++)
            for (int c = 0; c < l->ic; c++)
                for (int y = 0; y < l->oh; y++)
                    for (int xo = 0; xo < l->ow; xo++) {
                        const float *xc = x + b * isz + (size_t)c * l->ih * l->iw;
                        int best = 2 * y * l->iw + 2 * xo;
                        for (int k = 1; k < 4; k++) {
                            const int at = (2 * y + k / 2) * l->iw + 2 * xo + k % 2;
                            if (xc[at] > xc[best] || xc[at] != xc[at])
                                best = at;
                        }
                        const size_t o = b * osz + ((size_t)c * l->oh + y) * l->ow + xo;
                        const float want = xc[best];
                        if (l->idx[o] != c * l->ih * l->iw + best ||
                            !(l->out[o] == want || (want != want && l->out[o] != l->out[o]))) {
                            printf("# %dx%dx%d: example %d channel %d (%d,%d): index %d value %g, "
                                   "scan picks %d (%g)\n",
                                   l->ic, l->ih, l->iw, b, c, y, xo, (int)l->idx[o],
                                   (double)l->out[o], c * l->ih * l->iw + best, (double)want);
                            ok = 0;
                        }
                    }
        pb_free(x);
        fx_free(&f);
    }
    return ok;
}

/* Split across two threads, forward outputs and dx are the same as on one
 * thread (each example is computed alike) and weight gradients agree to
 * rounding (partial sums per part); backward_write overwrites dx. */
static int t_threads(void)
{
    /* the BN layer's batch (16 x 20 x 8 x 8 floats) is large enough for two
     * parts; the last conv takes Winograd */
    const pb_layer protos[8] = {mk_conv(1, 28, 28, 6, 5, 1, 2, 1), mk_conv(6, 14, 14, 16, 5, 1, 0, 1),
                                mk_pool(PB_MAXPOOL, 6, 28, 28, 2, 2), mk_conv(16, 14, 14, 32, 3, 2, 1, 0),
                                mk_conv(20, 9, 9, 24, 3, 1, 1, 1), mk_conv(1, 12, 11, 64, 3, 1, 1, 1),
                                mk(PB_BN, 20, 8, 8), mk_conv(64, 14, 14, 64, 3, 1, 1, 0)};
    const int B = 16;
    int ok = 1;
    for (int t = 0; t < 8 && ok; t++) {
        fixture f;
        if (!fx_setup(&f, protos[t], B)) {
            fx_free(&f);
            return 0;
        }
        pb_layer *l = &f.l;
        const size_t isz = pb_layer_isize(l), osz = pb_layer_osize(l);
        const size_t nw = l->w ? l->w->n : 0;
        float *x = falloc(B * isz), *R = falloc(B * osz), *out[2], *dx[2], *gw[2];
        fill(x, B * isz, protos[t].kind == PB_MAXPOOL ? GEN_DISTINCT : GEN_NORMAL);
        fill(R, B * osz, GEN_NORMAL);
        for (int run = 0; run < 2; run++) {
            out[run] = falloc(B * osz);
            dx[run] = falloc(B * isz);
            gw[run] = falloc(nw + 1);
            /* run 1: two threads, and a dx full of garbage that must be overwritten */
            pb_par_set_threads(run + 1);
            pb_layer_free(l);
            char err[PB_ERRLEN];
            if (pb_layer_alloc(l, B, err, sizeof err) != PB_OK) {
                printf("# %s\n", err);
                ok = 0;
                break;
            }
            zero_grads(l);
            pb_layer_forward(l, x, NULL, B, 1, NULL);
            memcpy(out[run], l->out, B * osz * sizeof(float));
            memcpy(l->dout, R, B * osz * sizeof(float));
            if (run == 0) {
                pb_layer_backward(l, x, dx[run], NULL, B);
            } else {
                for (size_t i = 0; i < B * isz; i++)
                    dx[run][i] = 1e6f;
                pb_layer_backward_write(l, x, dx[run], B);
            }
            if (nw)
                memcpy(gw[run], l->w->g, nw * sizeof(float));
        }
        pb_par_set_threads(1);
        if (ok) {
            ok &= near_all("out", out[1], out[0], B * osz, 0.0);
            ok &= near_all("dx", dx[1], dx[0], B * isz, 0.0);
            ok &= near_all("dW", gw[1], gw[0], nw, 1e-4);
        }
        for (int run = 0; run < 2; run++) {
            pb_free(out[run]);
            pb_free(dx[run]);
            pb_free(gw[run]);
        }
        pb_free(x);
        pb_free(R);
        fx_free(&f);
    }
    return ok;
}

/* Backward adds to dx and to parameter gradients: twice doubles them. */
static int t_accumulates(void)
{
    pb_layer cases[PB_LAYER_KINDS] = {
        [PB_DENSE] = mk_dense(3, 2, 2, 4, 1),
        [PB_CONV] = mk_conv(2, 5, 5, 3, 3, 1, 1, 1),
        [PB_MAXPOOL] = mk_pool(PB_MAXPOOL, 2, 4, 4, 2, 2),
        [PB_AVGPOOL] = mk_pool(PB_AVGPOOL, 2, 4, 4, 2, 2),
        [PB_GAP] = mk(PB_GAP, 2, 3, 3),
        [PB_RELU] = mk(PB_RELU, 2, 3, 3),
        [PB_BN] = mk(PB_BN, 2, 3, 3),
        [PB_FLATTEN] = mk(PB_FLATTEN, 2, 3, 3),
        [PB_ADD] = mk(PB_ADD, 2, 3, 3),
        [PB_DROPOUT] = mk(PB_DROPOUT, 2, 3, 3),
    };
    cases[PB_DROPOUT].p = 0.5f;
    int ok = 1;
    const int B = 3;
    /* the language-model kinds (PB_EMBED on) are checked by t_lm */
    for (int kind = 0; kind <= PB_DROPOUT; kind++) {
        fixture f;
        if (!fx_setup(&f, cases[kind], B)) {
            fx_free(&f);
            return 0;
        }
        pb_layer *l = &f.l;
        const size_t ni = B * pb_layer_isize(l), no = B * pb_layer_osize(l);
        float *x = falloc(ni), *x2 = falloc(ni), *dx = falloc(ni), *dx2 = falloc(ni);
        float *once = falloc(ni), *once2 = falloc(ni);
        float *gw = l->w ? falloc(l->w->n) : NULL, *gb = l->b ? falloc(l->b->n) : NULL;
        fill(x, ni, GEN_AWAY0);
        fill(x2, ni, GEN_NORMAL);
        zero_grads(l);
        pb_layer_forward(l, x, x2, B, 1, &g_rng);
        fill(l->dout, no, GEN_NORMAL);
        pb_layer_backward(l, x, dx, dx2, B);
        memcpy(once, dx, ni * sizeof(float));
        memcpy(once2, dx2, ni * sizeof(float));
        if (gw)
            memcpy(gw, l->w->g, l->w->n * sizeof(float));
        if (gb)
            memcpy(gb, l->b->g, l->b->n * sizeof(float));
        pb_layer_backward(l, x, dx, dx2, B);
        int kok = 1;
        for (size_t i = 0; i < ni; i++) {
            kok &= fabsf(dx[i] - 2 * once[i]) <= 1e-5f * (1 + fabsf(once[i]));
            kok &= fabsf(dx2[i] - 2 * once2[i]) <= 1e-5f * (1 + fabsf(once2[i]));
        }
        for (size_t i = 0; gw && i < l->w->n; i++)
            kok &= fabsf(l->w->g[i] - 2 * gw[i]) <= 1e-5f * (1 + fabsf(gw[i]));
        for (size_t i = 0; gb && i < l->b->n; i++)
            kok &= fabsf(l->b->g[i] - 2 * gb[i]) <= 1e-5f * (1 + fabsf(gb[i]));
        /* dx NULL (first layer) still yields parameter gradients */
        pb_layer_backward(l, x, NULL, NULL, B);
        for (size_t i = 0; gw && i < l->w->n; i++)
            kok &= fabsf(l->w->g[i] - 3 * gw[i]) <= 1e-5f * (1 + fabsf(gw[i]));
        if (!kok) {
            printf("# %s does not accumulate\n", pb_layer_kind_names[kind]);
            ok = 0;
        }
        pb_free(x);
        pb_free(x2);
        pb_free(dx);
        pb_free(dx2);
        pb_free(once);
        pb_free(once2);
        pb_free(gw);
        pb_free(gb);
        fx_free(&f);
    }
    return ok;
}

/* A layer added to itself: dx and dx2 are one buffer and get dout twice. */
static int t_add_self(void)
{
    fixture f;
    int ok = fx_setup(&f, mk(PB_ADD, 2, 2, 2), 2);
    const size_t n = 2 * pb_layer_osize(&f.l);
    float *x = falloc(n), *dx = falloc(n);
    fill(x, n, GEN_NORMAL);
    if (ok) {
        pb_layer_forward(&f.l, x, x, 2, 1, NULL);
        fill(f.l.dout, n, GEN_NORMAL);
        pb_layer_backward(&f.l, x, dx, dx, 2);
        for (size_t i = 0; i < n; i++)
            ok &= f.l.out[i] == 2 * x[i] && dx[i] == 2 * f.l.dout[i];
    }
    pb_free(x);
    pb_free(dx);
    fx_free(&f);
    return ok;
}

static int t_flops(void)
{
    int ok = 1;
    fixture f;
    ok &= fx_setup(&f, mk_dense(4, 1, 1, 3, 1), 1);
    ok &= pb_layer_flops(&f.l, 0) == 2.0 * 12 + 3;
    f.w.mask = falloc(12);
    for (int i = 0; i < 12; i++)
        f.w.mask[i] = 1.0f;
    f.w.mask[0] = f.w.mask[5] = 0.0f;
    f.w.w[7] = 0.0f; /* an exact zero counts as pruned too */
    ok &= pb_layer_flops(&f.l, 1) == 2.0 * 9 + 3;
    ok &= pb_layer_flops(&f.l, 0) == 2.0 * 12 + 3;
    fx_free(&f);

    ok &= fx_setup(&f, mk_conv(2, 5, 5, 3, 3, 1, 1, 1), 1);
    ok &= pb_layer_flops(&f.l, 0) == 2.0 * 54 * 25 + 3 * 25;
    f.w.w[3] = f.w.w[4] = 0.0f; /* no mask: zeros alone */
    ok &= pb_layer_flops(&f.l, 1) == 2.0 * 52 * 25 + 3 * 25;
    fx_free(&f);

    ok &= fx_setup(&f, mk_conv(2, 5, 5, 3, 3, 2, 0, 0), 1);
    ok &= pb_layer_flops(&f.l, 1) == 2.0 * 54 * 4;
    fx_free(&f);

    ok &= fx_setup(&f, mk(PB_RELU, 2, 3, 3), 1);
    ok &= pb_layer_flops(&f.l, 1) == 0.0 && pb_layer_flops(&f.l, 0) == 0.0;
    fx_free(&f);
    return ok;
}

/* Re-allocating for a larger batch replaces the buffers; missing parameters
 * are refused with the layer's name. */
static int t_realloc(void)
{
    char err[PB_ERRLEN] = "";
    fixture f;
    int ok = fx_setup(&f, mk_conv(2, 6, 6, 3, 3, 1, 1, 1), 2);
    ok &= pb_layer_alloc(&f.l, 9, err, sizeof err) == PB_OK && f.l.max_batch == 9;
    size_t ni = 9 * pb_layer_isize(&f.l);
    float *x = falloc(ni), *dx = falloc(ni);
    fill(x, ni, GEN_NORMAL);
    if (ok) {
        pb_layer_forward(&f.l, x, NULL, 9, 1, NULL);
        fill(f.l.dout, 9 * pb_layer_osize(&f.l), GEN_NORMAL);
        pb_layer_backward(&f.l, x, dx, NULL, 9);
    }
    pb_layer_free(&f.l);
    pb_layer_free(&f.l); /* idempotent */
    ok &= f.l.out == NULL && f.l.max_batch == 0;
    pb_free(x);
    pb_free(dx);
    fx_free(&f);

    pb_layer l = mk_dense(4, 1, 1, 2, 1);
    ok &= pb_layer_infer_shape(&l, err, sizeof err) == PB_OK;
    ok &= pb_layer_alloc(&l, 4, err, sizeof err) == PB_EUSAGE && strstr(err, l.name) != NULL;
    ok &= l.out == NULL;
    if (!ok)
        printf("# %s\n", err);
    return ok;
}

/* pb_kern_exp_sum (softmax rows of attention and the loss): every value within
 * 1e-6 relative of exp over [-87, 88], nothing past n written, and the sum
 * equal to the values' sum in double within 1e-6. */
static int t_exp_sum(void)
{
    enum { N = 37 }; /* two vectors and a tail of 5 */
    float z[N], p[N + 3];
    double worst = 0, sumerr = 0;
    int tail_kept = 1;
    for (int trial = 0; trial < 200; trial++) {
        for (int i = 0; i < N; i++)
            z[i] = -87.0f + 175.0f * (float)((trial * N + i) * 7919 % 10007) / 10007.0f;
        const int n = 1 + trial % N;
        const float scale = trial % 2 ? 1.0f : 0.5f, shift = trial % 3 ? 0.0f : 3.0f;
        for (int i = 0; i < N + 3; i++)
            p[i] = -1.0f;
        const float s = pb_kern_exp_sum(p, z, n, scale, shift);
        double ref = 0;
        for (int i = 0; i < n; i++) {
            const double t = (double)(z[i] * scale - shift);
            const double e = exp(t < -87 ? -87 : t > 88 ? 88 : t), rel = fabs(p[i] - e) / e;
            worst = rel > worst ? rel : worst;
            ref += p[i];
        }
        for (int i = n; i < N + 3; i++)
            tail_kept &= p[i] == -1.0f;
        const double se = fabs(s - ref) / ref;
        sumerr = se > sumerr ? se : sumerr;
    }
    printf("# exp_sum: worst relative error %.3g, sum %.3g\n", worst, sumerr);
    return worst < 1e-6 && sumerr < 1e-6 && tail_kept;
}

typedef struct test {
    const char *desc;
    int (*fn)(void);
} test;

static const test tests[] = {
    {"layer kind names", t_names},
    {"infer_shape: output shapes and errors naming the layer", t_shapes},
    {"dense with bias: dx, dW, db match finite differences", t_dense_bias},
    {"dense without bias: dx, dW match finite differences", t_dense_nobias},
    {"conv k5 stride 1 pad 2, ic 2 oc 3: gradients", t_conv_k5s1p2},
    {"conv k3 stride 2 pad 1, ic 3 oc 4: gradients", t_conv_k3s2p1},
    {"conv k2 stride 3 pad 2 without bias: gradients", t_conv_nobias},
    {"conv with 12 and 16 channels, 3x3 and 5x5 (a vector of channels per pixel): gradients", t_conv_channel_vector},
    {"conv forward matches direct convolution", t_conv_naive},
    {"conv with few taps and 40 or 20 channels (thin kernels): gradients", t_conv_few_taps},
    {"conv on the SGEMM path (>16 channels, >256 taps, odd sizes, stride 2, 1x1): gradients", t_conv_wide},
    {"conv on the SGEMM path: forward and gradients match the direct convolution and its adjoint", t_conv_wide_ref},
    {"conv with its ReLU fused matches conv and ReLU bit for bit (thin and SGEMM paths)", t_conv_relu_fused},
    {"conv on Winograd F(2x2,3x3) (odd sizes, channels not a multiple of 16): gradients", t_conv_winograd_grad},
    {"conv on Winograd matches the im2col/SGEMM reference and the direct convolution (fwd, dW, db, dx)",
     t_conv_winograd_ref},
    {"Winograd by default for 64+ channels at 14+ wide only; mode 0 turns it off", t_conv_winograd_default},
    {"bn inference forward: eval output bit for bit, backward state untouched", t_bn_infer},
    {"unfold: conv rows by definition (stride 2 pad 1, stride 1 pad 0, pad k), forward = rows x W^T + b; dense copies", t_unfold},
    {"conv in workspace chunks matches one example at a time", t_conv_chunked},
    {"maxpool k2s2 and k3s2: dx", t_maxpool},
    {"maxpool k2s2 vector path picks what the scan picks (ties, NaN; rows of 9, 5, 3)", t_maxpool2_scan},
    {"conv (thin, SGEMM, Winograd), maxpool and BN on two threads match one thread; backward_write overwrites dx", t_threads},
    {"avgpool k2s2 and k3s1: dx", t_avgpool},
    {"global average pooling: dx", t_gap},
    {"relu: dx", t_relu},
    {"bn over N,H,W (train): dx, dgamma, dbeta", t_bn_conv},
    {"bn after dense, H=W=1 (train): dx, dgamma, dbeta", t_bn_dense},
    {"bn eval-mode forward: gradients through running statistics", t_bn_eval_grad},
    {"bn running statistics (unbiased, momentum) and eval output", t_bn_running},
    {"flatten: dx", t_flatten},
    {"add: dx and dx2", t_add},
    {"add of a layer to itself (dx == dx2)", t_add_self},
    {"dropout with a fixed mask: dx", t_dropout},
    {"dropout keep rate, scaling, eval identity", t_dropout_mask},
    {"backward accumulates for every kind", t_accumulates},
    {"flops, dense and effective", t_flops},
    {"alloc again with a larger batch; missing parameters refused", t_realloc},
    {"exp_sum (softmax rows): within 1e-6 of exp, its sum exact to 1e-6, nothing past n written", t_exp_sum},
};

int main(void)
{
    const int n = (int)(sizeof tests / sizeof tests[0]);
    int failed = 0;
    pb_rng_seed(&g_rng, 20240601);
    printf("1..%d\n", n);
    for (int i = 0; i < n; i++) {
        int ok = tests[i].fn();
        printf("%sok %d - %s\n", ok ? "" : "not ", i + 1, tests[i].desc);
        fflush(stdout);
        failed += !ok;
    }
    return failed ? 1 : 0;
}
