/* pb_hvp: exact Hessian-vector products by forward-over-reverse
 * differentiation (see pb_hvp.h).
 *
 * Notation: for every quantity a of the forward and backward passes, the pass
 * here carries a and Ra = d/dr a(w + r v) at r = 0. Forward: each layer's
 * output value (o->v) and R-value (o->t). Backward: the loss gradient with
 * respect to each layer's output (o->dv) and its R-value (o->dt); a
 * parameter's R{dL/dw} is the Hessian-vector product. Inputs have R = 0. */
#include "pb_hvp.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pb_train.h"

typedef struct hlayer {
    double *v, *t;     /* output and R{output}, B * osize */
    double *dv, *dt;   /* dL/d output and its R{} */
    double *xh, *xht;  /* BN: x-hat and R{x-hat}; DROPOUT: the mask in xh */
    double *s, *q;     /* BN, per channel: 1/std and mean(x-hat * R{x}) */
    int *arg;          /* MAXPOOL: the input index each output took */
    int mode_train;    /* BN, DROPOUT: batch statistics / a drawn mask */
} hlayer;

/* what the pass knows of one parameter */
typedef struct hslot {
    const float *v;    /* direction (NULL: zero) */
    double *g, *h;     /* gradient and H v accumulators (NULL: not wanted) */
} hslot;

static const hslot zero_slot;

static const hslot *slot_of(const pb_model *m, const hslot *slots, const pb_param *p)
{
    if (p)
        for (int i = 0; i < m->nparams; i++)
            if (m->params[i] == p)
                return &slots[i];
    return &zero_slot;
}

static inline double vat(const hslot *s, size_t i) { return s->v ? (double)s->v[i] : 0.0; }

/* ------------------------------------------------------------ forward */

static void dense_fwd(const pb_layer *l, const hslot *W, const hslot *Bs, const double *x, const double *xt,
                      hlayer *o, int B)
{
    const size_t I = pb_layer_isize(l);
    const int O = l->oc;
    const float *w = l->w->w, *bias = l->b ? l->b->w : NULL;
    for (int b = 0; b < B; b++)
        for (int j = 0; j < O; j++) {
            const float *wr = w + (size_t)j * I;
            const double *xb = x + (size_t)b * I, *tb = xt + (size_t)b * I;
            double s = bias ? bias[j] : 0.0, st = bias ? vat(Bs, (size_t)j) : 0.0;
            for (size_t i = 0; i < I; i++) {
                s += wr[i] * xb[i];
                st += wr[i] * tb[i] + vat(W, (size_t)j * I + i) * xb[i];
            }
            o->v[(size_t)b * O + j] = s;
            o->t[(size_t)b * O + j] = st;
        }
}

/* Input position of output (oy, ox) and kernel tap (ky, kx), -1 in the padding. */
static inline int conv_at(const pb_layer *l, int oy, int ox, int ky, int kx)
{
    const int iy = oy * l->stride - l->pad + ky, ix = ox * l->stride - l->pad + kx;
    return iy < 0 || iy >= l->ih || ix < 0 || ix >= l->iw ? -1 : iy * l->iw + ix;
}

static void conv_fwd(const pb_layer *l, const hslot *W, const hslot *Bs, const double *x, const double *xt,
                     hlayer *o, int B)
{
    const int k = l->k, C = l->ic, O = l->oc, OH = l->oh, OW = l->ow;
    const size_t isz = pb_layer_isize(l), osz = pb_layer_osize(l), hw = (size_t)l->ih * l->iw;
    const float *w = l->w->w, *bias = l->b ? l->b->w : NULL;
    for (int b = 0; b < B; b++)
        for (int j = 0; j < O; j++)
            for (int oy = 0; oy < OH; oy++)
                for (int ox = 0; ox < OW; ox++) {
                    double s = bias ? bias[j] : 0.0, st = bias ? vat(Bs, (size_t)j) : 0.0;
                    for (int c = 0; c < C; c++) {
                        const double *xc = x + b * isz + c * hw, *tc = xt + b * isz + c * hw;
                        const size_t wb = (((size_t)j * C + c) * k) * k;
                        for (int ky = 0; ky < k; ky++)
                            for (int kx = 0; kx < k; kx++) {
                                const int at = conv_at(l, oy, ox, ky, kx);
                                if (at < 0)
                                    continue;
                                const size_t wi = wb + (size_t)ky * k + kx;
                                s += w[wi] * xc[at];
                                st += w[wi] * tc[at] + vat(W, wi) * xc[at];
                            }
                    }
                    const size_t oi = b * osz + ((size_t)j * OH + oy) * OW + ox;
                    o->v[oi] = s;
                    o->t[oi] = st;
                }
}

static void pool_fwd(const pb_layer *l, const double *x, const double *xt, hlayer *o, int B)
{
    const int k = l->k, st = l->stride, iw = l->iw, OH = l->oh, OW = l->ow;
    const size_t isz = pb_layer_isize(l), osz = pb_layer_osize(l), hw = (size_t)l->ih * iw;
    for (int b = 0; b < B; b++)
        for (int c = 0; c < l->ic; c++)
            for (int oy = 0; oy < OH; oy++)
                for (int ox = 0; ox < OW; ox++) {
                    const size_t base = b * isz + c * hw, oi = b * osz + ((size_t)c * OH + oy) * OW + ox;
                    if (l->kind == PB_MAXPOOL) {
                        /* the engine's choice: first maximum in scan order, NaN wins */
                        int best = (oy * st) * iw + ox * st;
                        double bv = x[base + best];
                        for (int ky = 0; ky < k; ky++)
                            for (int kx = 0; kx < k; kx++) {
                                const int at = (oy * st + ky) * iw + ox * st + kx;
                                const double xv = x[base + at];
                                if (xv > bv || xv != xv) {
                                    bv = xv;
                                    best = at;
                                }
                            }
                        o->arg[oi] = (int)base + best;
                        o->v[oi] = bv;
                        o->t[oi] = xt[base + best];
                    } else {
                        double s = 0, s2 = 0;
                        for (int ky = 0; ky < k; ky++)
                            for (int kx = 0; kx < k; kx++) {
                                const size_t at = base + (size_t)(oy * st + ky) * iw + ox * st + kx;
                                s += x[at];
                                s2 += xt[at];
                            }
                        o->v[oi] = s / (k * k);
                        o->t[oi] = s2 / (k * k);
                    }
                }
}

static void gap_fwd(const pb_layer *l, const double *x, const double *xt, hlayer *o, int B)
{
    const size_t hw = (size_t)l->ih * l->iw;
    for (size_t r = 0; r < (size_t)B * l->ic; r++) {
        double s = 0, s2 = 0;
        for (size_t p = 0; p < hw; p++) {
            s += x[r * hw + p];
            s2 += xt[r * hw + p];
        }
        o->v[r] = s / (double)hw;
        o->t[r] = s2 / (double)hw;
    }
}

/* Batch normalization per channel c over the N = B*H*W values x:
 *   mu = mean x, s = 1/sqrt(var + eps), xh = (x - mu) s, y = gamma xh + beta;
 *   R{xh} = s (Rx - mean Rx - xh q) with q = mean(xh Rx), R{s} = -s^2 q
 * (train mode; in eval mode mu and s are constants and R{xh} = s Rx). */
static void bn_fwd(const pb_layer *l, const hslot *G, const hslot *Be, const double *x, const double *xt,
                   hlayer *o, int B, int train)
{
    const int C = l->oc;
    const size_t hw = (size_t)l->oh * l->ow, osz = pb_layer_osize(l), N = (size_t)B * hw;
    o->mode_train = train;
    for (int c = 0; c < C; c++) {
        double mu, s;
        if (train) {
            double a = 0;
            for (int b = 0; b < B; b++)
                for (size_t p = 0; p < hw; p++)
                    a += x[b * osz + c * hw + p];
            mu = a / (double)N;
            double var = 0;
            for (int b = 0; b < B; b++)
                for (size_t p = 0; p < hw; p++) {
                    const double dv = x[b * osz + c * hw + p] - mu;
                    var += dv * dv;
                }
            s = 1.0 / sqrt(var / (double)N + (double)l->bn_eps);
        } else {
            mu = l->run_mean[c];
            s = 1.0 / sqrt((double)l->run_var[c] + (double)l->bn_eps);
        }
        double mt = 0, q = 0;
        for (int b = 0; b < B; b++)
            for (size_t p = 0; p < hw; p++) {
                const size_t i = b * osz + c * hw + p;
                o->xh[i] = (x[i] - mu) * s;
                mt += xt[i];
                q += o->xh[i] * xt[i];
            }
        mt /= (double)N;
        q /= (double)N;
        if (!train)
            mt = q = 0;
        o->s[c] = s;
        o->q[c] = q;
        const double gm = l->w->w[c], gt = vat(G, (size_t)c), bt = vat(Be, (size_t)c);
        for (int b = 0; b < B; b++)
            for (size_t p = 0; p < hw; p++) {
                const size_t i = b * osz + c * hw + p;
                o->xht[i] = s * (xt[i] - mt - o->xh[i] * q);
                o->v[i] = gm * o->xh[i] + l->b->w[c];
                o->t[i] = gt * o->xh[i] + gm * o->xht[i] + bt;
            }
    }
}

/* The engine's dropout draw (pb_kern_dropout_forward), from the same stream. */
static void dropout_fwd(const pb_layer *l, const double *x, const double *xt, hlayer *o, size_t n, int train,
                        pb_rng *rng)
{
    o->mode_train = train && l->p > 0.0f;
    if (o->mode_train) {
        const uint64_t thr = (uint64_t)((double)l->p * 4294967296.0);
        const double scale = 1.0f / (1.0f - l->p);
        size_t i = 0;
        for (; i + 1 < n; i += 2) {
            const uint64_t r = pb_rng_next(rng);
            o->xh[i] = (r & 0xffffffffu) >= thr ? scale : 0.0;
            o->xh[i + 1] = (r >> 32) >= thr ? scale : 0.0;
        }
        if (i < n)
            o->xh[i] = (pb_rng_next(rng) & 0xffffffffu) >= thr ? scale : 0.0;
    } else {
        for (size_t i = 0; i < n; i++)
            o->xh[i] = 1.0;
    }
    for (size_t i = 0; i < n; i++) {
        o->v[i] = x[i] * o->xh[i];
        o->t[i] = xt[i] * o->xh[i];
    }
}

/* ----------------------------------------------------------- backward */

static void acc(double *a, size_t i, double x)
{
    if (a)
        a[i] += x;
}

/* y = W x + b:  dx = W^T dy,  R{dx} = W^T R{dy} + V^T dy,
 *               dW = dy x^T,  R{dW} = R{dy} x^T + dy R{x}^T. */
static void dense_bwd(const pb_layer *l, const hslot *W, const hslot *Bs, const double *x, const double *xt,
                      double *dx, double *dxt, const hlayer *o, int B)
{
    const size_t I = pb_layer_isize(l);
    const int O = l->oc;
    const float *w = l->w->w;
    for (int b = 0; b < B; b++)
        for (int j = 0; j < O; j++) {
            const double dy = o->dv[(size_t)b * O + j], dyt = o->dt[(size_t)b * O + j];
            const double *xb = x + (size_t)b * I, *tb = xt + (size_t)b * I;
            if (l->b) {
                acc(Bs->g, (size_t)j, dy);
                acc(Bs->h, (size_t)j, dyt);
            }
            for (size_t i = 0; i < I; i++) {
                const size_t wi = (size_t)j * I + i;
                acc(W->g, wi, dy * xb[i]);
                acc(W->h, wi, dyt * xb[i] + dy * tb[i]);
                if (dx) {
                    dx[(size_t)b * I + i] += w[wi] * dy;
                    dxt[(size_t)b * I + i] += w[wi] * dyt + vat(W, wi) * dy;
                }
            }
        }
}

static void conv_bwd(const pb_layer *l, const hslot *W, const hslot *Bs, const double *x, const double *xt,
                     double *dx, double *dxt, const hlayer *o, int B)
{
    const int k = l->k, C = l->ic, O = l->oc, OH = l->oh, OW = l->ow;
    const size_t isz = pb_layer_isize(l), osz = pb_layer_osize(l), hw = (size_t)l->ih * l->iw;
    const float *w = l->w->w;
    for (int b = 0; b < B; b++)
        for (int j = 0; j < O; j++)
            for (int oy = 0; oy < OH; oy++)
                for (int ox = 0; ox < OW; ox++) {
                    const size_t oi = b * osz + ((size_t)j * OH + oy) * OW + ox;
                    const double dy = o->dv[oi], dyt = o->dt[oi];
                    if (l->b) {
                        acc(Bs->g, (size_t)j, dy);
                        acc(Bs->h, (size_t)j, dyt);
                    }
                    for (int c = 0; c < C; c++) {
                        const size_t xb = b * isz + c * hw, wb = (((size_t)j * C + c) * k) * k;
                        for (int ky = 0; ky < k; ky++)
                            for (int kx = 0; kx < k; kx++) {
                                const int at = conv_at(l, oy, ox, ky, kx);
                                if (at < 0)
                                    continue;
                                const size_t wi = wb + (size_t)ky * k + kx;
                                acc(W->g, wi, dy * x[xb + at]);
                                acc(W->h, wi, dyt * x[xb + at] + dy * xt[xb + at]);
                                if (dx) {
                                    dx[xb + at] += w[wi] * dy;
                                    dxt[xb + at] += w[wi] * dyt + vat(W, wi) * dy;
                                }
                            }
                    }
                }
}

static void pool_bwd(const pb_layer *l, double *dx, double *dxt, const hlayer *o, int B)
{
    const int k = l->k, st = l->stride, iw = l->iw, OH = l->oh, OW = l->ow;
    const size_t isz = pb_layer_isize(l), osz = pb_layer_osize(l), hw = (size_t)l->ih * iw;
    for (int b = 0; b < B; b++)
        for (int c = 0; c < l->ic; c++)
            for (int oy = 0; oy < OH; oy++)
                for (int ox = 0; ox < OW; ox++) {
                    const size_t oi = b * osz + ((size_t)c * OH + oy) * OW + ox;
                    if (l->kind == PB_MAXPOOL) {
                        dx[o->arg[oi]] += o->dv[oi];
                        dxt[o->arg[oi]] += o->dt[oi];
                        continue;
                    }
                    const double a = o->dv[oi] / (k * k), at = o->dt[oi] / (k * k);
                    for (int ky = 0; ky < k; ky++)
                        for (int kx = 0; kx < k; kx++) {
                            const size_t i = b * isz + c * hw + (size_t)(oy * st + ky) * iw + ox * st + kx;
                            dx[i] += a;
                            dxt[i] += at;
                        }
                }
}

/* dxh = gamma dy; train mode:
 *   dx = s (dxh - mean dxh - xh mean(dxh xh)),
 *   R{dx} = R{s} (...) + s (R{dxh} - mean R{dxh} - R{xh} mean(dxh xh) - xh mean(R{dxh} xh + dxh R{xh})). */
static void bn_bwd(const pb_layer *l, const hslot *G, const hslot *Be, double *dx, double *dxt, const hlayer *o,
                   int B)
{
    const int C = l->oc;
    const size_t hw = (size_t)l->oh * l->ow, osz = pb_layer_osize(l), N = (size_t)B * hw;
    for (int c = 0; c < C; c++) {
        const double gm = l->w->w[c], gt = vat(G, (size_t)c), s = o->s[c], sr = -s * s * o->q[c];
        double sdy = 0, sdyt = 0, sdyh = 0, sdyht = 0, a = 0, bm = 0, at = 0, bt = 0;
        for (int b = 0; b < B; b++)
            for (size_t p = 0; p < hw; p++) {
                const size_t i = b * osz + c * hw + p;
                const double dy = o->dv[i], dyt = o->dt[i], xh = o->xh[i], xht = o->xht[i];
                const double dxh = gm * dy, dxht = gt * dy + gm * dyt;
                sdy += dy;
                sdyt += dyt;
                sdyh += dy * xh;
                sdyht += dyt * xh + dy * xht;
                a += dxh;
                bm += dxh * xh;
                at += dxht;
                bt += dxht * xh + dxh * xht;
            }
        acc(G->g, (size_t)c, sdyh);
        acc(G->h, (size_t)c, sdyht);
        acc(Be->g, (size_t)c, sdy);
        acc(Be->h, (size_t)c, sdyt);
        if (!dx)
            continue;
        a /= (double)N;
        bm /= (double)N;
        at /= (double)N;
        bt /= (double)N;
        for (int b = 0; b < B; b++)
            for (size_t p = 0; p < hw; p++) {
                const size_t i = b * osz + c * hw + p;
                const double dxh = gm * o->dv[i], dxht = gt * o->dv[i] + gm * o->dt[i];
                const double xh = o->xh[i], xht = o->xht[i];
                if (o->mode_train) {
                    dx[i] += s * (dxh - a - xh * bm);
                    dxt[i] += sr * (dxh - a - xh * bm) + s * (dxht - at - xht * bm - xh * bt);
                } else {
                    dx[i] += s * dxh;
                    dxt[i] += s * dxht;
                }
            }
    }
}

/* --------------------------------------------------------------- the pass */

typedef struct hpass {
    pb_model *m;
    hlayer h[PB_MAX_LAYERS];
    double *x, *xt, *dxin, *dxint; /* model input (R = 0) and its unused gradient */
    int cap;
} hpass;

static void pass_free(hpass *p)
{
    for (int i = 0; i < p->m->nlayers; i++) {
        hlayer *o = &p->h[i];
        free(o->v);
        free(o->t);
        free(o->dv);
        free(o->dt);
        free(o->xh);
        free(o->xht);
        free(o->s);
        free(o->q);
        free(o->arg);
    }
    free(p->x);
    free(p->xt);
    free(p->dxin);
    free(p->dxint);
}

static int pass_alloc(hpass *p, pb_model *m, int cap)
{
    memset(p, 0, sizeof(*p));
    p->m = m;
    p->cap = cap;
    const size_t in = (size_t)cap * m->ic * m->ih * m->iw;
    int ok = (p->x = calloc(in, sizeof(double))) && (p->xt = calloc(in, sizeof(double))) &&
             (p->dxin = calloc(in, sizeof(double))) && (p->dxint = calloc(in, sizeof(double)));
    for (int i = 0; ok && i < m->nlayers; i++) {
        const pb_layer *l = &m->layers[i];
        hlayer *o = &p->h[i];
        const size_t n = (size_t)cap * pb_layer_osize(l);
        ok = (o->v = calloc(n, sizeof(double))) && (o->t = calloc(n, sizeof(double))) &&
             (o->dv = calloc(n, sizeof(double))) && (o->dt = calloc(n, sizeof(double)));
        if (ok && (l->kind == PB_BN || l->kind == PB_DROPOUT))
            ok = (o->xh = calloc(n, sizeof(double))) && (o->xht = calloc(n, sizeof(double)));
        if (ok && l->kind == PB_BN)
            ok = (o->s = calloc((size_t)l->oc, sizeof(double))) && (o->q = calloc((size_t)l->oc, sizeof(double)));
        if (ok && l->kind == PB_MAXPOOL)
            ok = (o->arg = calloc(n, sizeof(int))) != NULL;
    }
    if (!ok) {
        pass_free(p);
        return PB_ENOMEM;
    }
    return PB_OK;
}

static void layer_in(hpass *p, int src, const double **x, const double **xt, double **dx, double **dxt)
{
    if (src < 0) {
        *x = p->x;
        *xt = p->xt;
        if (dx) {
            *dx = NULL; /* nobody asks for the input's gradient */
            *dxt = NULL;
        }
        return;
    }
    *x = p->h[src].v;
    *xt = p->h[src].t;
    if (dx) {
        *dx = p->h[src].dv;
        *dxt = p->h[src].dt;
    }
}

static void forward(hpass *p, const hslot *slots, int B)
{
    pb_model *m = p->m;
    for (int i = 0; i < m->nlayers; i++) {
        const pb_layer *l = &m->layers[i];
        hlayer *o = &p->h[i];
        const double *x, *xt;
        layer_in(p, l->in, &x, &xt, NULL, NULL);
        const size_t n = (size_t)B * pb_layer_osize(l);
        const hslot *W = slot_of(m, slots, l->w), *Bs = slot_of(m, slots, l->b);
        switch (l->kind) {
        case PB_DENSE: dense_fwd(l, W, Bs, x, xt, o, B); break;
        case PB_CONV: conv_fwd(l, W, Bs, x, xt, o, B); break;
        case PB_MAXPOOL:
        case PB_AVGPOOL: pool_fwd(l, x, xt, o, B); break;
        case PB_GAP: gap_fwd(l, x, xt, o, B); break;
        case PB_BN: bn_fwd(l, W, Bs, x, xt, o, B, 1); break;
        case PB_DROPOUT: dropout_fwd(l, x, xt, o, n, 1, &m->rng); break;
        case PB_RELU:
            for (size_t j = 0; j < n; j++) {
                o->v[j] = x[j] > 0 ? x[j] : 0.0;
                o->t[j] = x[j] > 0 ? xt[j] : 0.0;
            }
            break;
        case PB_FLATTEN:
            memcpy(o->v, x, n * sizeof(double));
            memcpy(o->t, xt, n * sizeof(double));
            break;
        case PB_ADD: {
            const double *x2, *x2t;
            layer_in(p, l->in2, &x2, &x2t, NULL, NULL);
            for (size_t j = 0; j < n; j++) {
                o->v[j] = x[j] + x2[j];
                o->t[j] = xt[j] + x2t[j];
            }
            break;
        }
        default: break;
        }
    }
}

static void backward(hpass *p, const hslot *slots, int B)
{
    pb_model *m = p->m;
    for (int i = 0; i < m->nlayers - 1; i++) {
        const size_t n = (size_t)B * pb_layer_osize(&m->layers[i]);
        memset(p->h[i].dv, 0, n * sizeof(double));
        memset(p->h[i].dt, 0, n * sizeof(double));
    }
    for (int i = m->nlayers - 1; i >= 0; i--) {
        const pb_layer *l = &m->layers[i];
        const hlayer *o = &p->h[i];
        const double *x, *xt;
        double *dx, *dxt;
        layer_in(p, l->in, &x, &xt, &dx, &dxt);
        const size_t n = (size_t)B * pb_layer_osize(l);
        const hslot *W = slot_of(m, slots, l->w), *Bs = slot_of(m, slots, l->b);
        if (l->kind == PB_ADD && l->in2 >= 0)
            for (size_t j = 0; j < n; j++) {
                p->h[l->in2].dv[j] += o->dv[j];
                p->h[l->in2].dt[j] += o->dt[j];
            }
        switch (l->kind) {
        case PB_DENSE: dense_bwd(l, W, Bs, x, xt, dx, dxt, o, B); break;
        case PB_CONV: conv_bwd(l, W, Bs, x, xt, dx, dxt, o, B); break;
        case PB_BN: bn_bwd(l, W, Bs, dx, dxt, o, B); break;
        default:
            if (!dx)
                break;
            switch (l->kind) {
            case PB_MAXPOOL:
            case PB_AVGPOOL: pool_bwd(l, dx, dxt, o, B); break;
            case PB_GAP: {
                const size_t hw = (size_t)l->ih * l->iw;
                for (size_t r = 0; r < (size_t)B * l->ic; r++)
                    for (size_t q = 0; q < hw; q++) {
                        dx[r * hw + q] += o->dv[r] / (double)hw;
                        dxt[r * hw + q] += o->dt[r] / (double)hw;
                    }
                break;
            }
            case PB_RELU:
                for (size_t j = 0; j < n; j++)
                    if (x[j] > 0) {
                        dx[j] += o->dv[j];
                        dxt[j] += o->dt[j];
                    }
                break;
            case PB_DROPOUT:
                for (size_t j = 0; j < n; j++) {
                    dx[j] += o->dv[j] * o->xh[j];
                    dxt[j] += o->dt[j] * o->xh[j];
                }
                break;
            case PB_FLATTEN:
            case PB_ADD:
                for (size_t j = 0; j < n; j++) {
                    dx[j] += o->dv[j];
                    dxt[j] += o->dt[j];
                }
                break;
            default: break;
            }
        }
    }
}

/* Softmax cross-entropy of z / T, weighted 1/n per example (the mean over all
 * n examples): dL/dz = (p - onehot) / (n T), R{dL/dz} = R{p} / (n T) with
 * R{p} = p (Rz/T - sum_k p_k Rz_k/T). Returns the summed loss. */
static double loss_grad(hpass *p, const int *y, int B, double T, int n)
{
    pb_model *m = p->m;
    hlayer *o = &p->h[m->nlayers - 1];
    const int K = m->ncls;
    double total = 0, pk[4096];
    for (int b = 0; b < B; b++) {
        const double *z = o->v + (size_t)b * K, *zt = o->t + (size_t)b * K;
        double mx = z[0] / T, s = 0, pr = 0;
        for (int k = 1; k < K; k++)
            if (z[k] / T > mx)
                mx = z[k] / T;
        for (int k = 0; k < K; k++)
            s += (pk[k] = exp(z[k] / T - mx));
        for (int k = 0; k < K; k++) {
            pk[k] /= s;
            pr += pk[k] * zt[k] / T;
        }
        total += -(z[y[b]] / T - mx - log(s));
        for (int k = 0; k < K; k++) {
            o->dv[(size_t)b * K + k] = (pk[k] - (k == y[b])) / (n * T);
            o->dt[(size_t)b * K + k] = pk[k] * (zt[k] / T - pr) / (n * T);
        }
    }
    return total;
}

int pb_model_hvp_on(pb_model *m, const pb_dataset *d, const int *idx, int n, float temperature,
                    const float *const *v, double *const *hv, double *const *g, double *loss, char *err,
                    size_t errlen)
{
    if (n <= 0 || !idx)
        return pb_err(err, errlen, PB_EUSAGE, "hvp: no examples");
    if (m->ncls > 4096)
        return pb_err(err, errlen, PB_EUSAGE, "hvp: %d classes (at most 4096)", m->ncls);
    for (int i = 0; i < m->nlayers; i++)
        if (m->layers[i].kind >= PB_EMBED)
            return pb_err(err, errlen, PB_EUSAGE,
                          "hvp: layer %s is a %s layer, which the exact Hessian-vector product does not "
                          "cover (it covers dense, conv, pooling, relu, bn, flatten, add and dropout)",
                          m->layers[i].name, pb_layer_kind_names[m->layers[i].kind]);
    const double T = temperature > 0 ? temperature : 1.0;
    for (int i = 0; i < m->nparams; i++)
        if (m->gens[i].generate)
            m->gens[i].generate(m->gens[i].ud, m->params[i]);
    hslot slots[PB_MAX_PARAMS];
    memset(slots, 0, sizeof(slots));
    for (int i = 0; i < m->nparams; i++) {
        slots[i].v = v ? v[i] : NULL;
        slots[i].h = hv ? hv[i] : NULL;
        slots[i].g = g ? g[i] : NULL;
        if (slots[i].h)
            memset(slots[i].h, 0, m->params[i]->n * sizeof(double));
        if (slots[i].g)
            memset(slots[i].g, 0, m->params[i]->n * sizeof(double));
    }
    const int cap = m->max_batch < n ? m->max_batch : n;
    hpass p;
    pb_batch b;
    int rc = pass_alloc(&p, m, cap);
    if (rc != PB_OK)
        return pb_err(err, errlen, PB_ENOMEM, "hvp: out of memory");
    if ((rc = pb_batch_init(&b, d, cap, err, errlen)) == PB_OK) {
        const size_t in = (size_t)m->ic * m->ih * m->iw;
        double total = 0;
        for (int s = 0; s < n; s += cap) {
            const int B = n - s < cap ? n - s : cap;
            pb_data_batch(d, idx + s, B, NULL, b.x, b.y);
            for (size_t j = 0; j < (size_t)B * in; j++)
                p.x[j] = b.x[j];
            forward(&p, slots, B);
            total += loss_grad(&p, b.y, B, T, n);
            backward(&p, slots, B);
        }
        if (loss)
            *loss = total / n;
        pb_batch_free(&b);
    }
    pass_free(&p);
    return rc;
}
