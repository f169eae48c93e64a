/* pb_kern_elem: the kinds that work element by element (ReLU, add,
 * dropout) or channel by channel (batch normalization). */
#include "pb_kern.h"

#include <assert.h>
#include <limits.h>
#include <math.h>
#include <string.h>

#include "pb_kern_vec.h"
#include "pb_par.h"

/* stat[] carries one float past the BN statistics (and is one float for
 * dropout) telling backward whether the last forward ran in train mode, so a
 * gradient taken through an eval-mode forward is the gradient of what ran. */
#define MODE_EVAL 0.0f
#define MODE_TRAIN 1.0f

/* The residual adds run on ResNet-20's activations whole, each way. */
CLONES void pb_kern_add_into(float *restrict y, const float *restrict x, size_t n)
{
    size_t i = 0;
    for (; i + VL <= n; i += VL)
        *(vf_unaligned *)(y + i) += *(const vf_unaligned *)(x + i);
    for (; i < n; i++)
        y[i] += x[i];
}

/* w *= mask on a tensor just generated from a shared array, whose mask is
 * nearly always all ones: the mask is read in blocks and only a block with a
 * value other than 1 is multiplied, so the pass reads the mask and writes
 * nothing where nothing changes (multiplying by 1 changes no bit). */
#define MASK_BLOCK (4 * VL)

CLONES static void mask_generated(float *restrict w, const float *restrict mask, size_t n)
{
    size_t i = 0;
    for (; i + MASK_BLOCK <= n; i += MASK_BLOCK) {
        vi ne = {0};
        for (size_t k = 0; k < MASK_BLOCK; k += VL)
            ne |= *(const vf_unaligned *)(mask + i + k) != (vf){0} + 1.0f;
        int any = 0;
        for (int k = 0; k < VL; k++)
            any |= ne[k];
        if (any)
            for (size_t k = 0; k < MASK_BLOCK; k++)
                w[i + k] *= mask[i + k];
    }
    for (; i < n; i++)
        if (mask[i] != 1.0f)
            w[i] *= mask[i];
}

void pb_kern_mask_generated(float *restrict w, const float *restrict mask, size_t n) { mask_generated(w, mask, n); }

/* ReLU runs on the largest activations (LeNet-5's conv1: 600k floats a
 * batch), so it is vectorized by hand like the thin convolutions: a float
 * compare gives a lane mask of all ones or zeros that selects by bitwise and. */

CLONES static void relu_forward(float *o, const float *x, size_t n)
{
    /* written so that NaN passes through instead of becoming 0 (NaN < 0 is false) */
    size_t i = 0;
    for (; i + VL <= n; i += VL) {
        const vf v = *(const vf_unaligned *)(x + i);
        *(vf_unaligned *)(o + i) = (vf)((vi)v & ~(v < (vf){0}));
    }
    for (; i < n; i++)
        o[i] = x[i] < 0.0f ? 0.0f : x[i];
}

/* dx += (or, when write, dx =) the gradient passed where out > 0 */
CLONES static void relu_backward(float *dx, const float *out, const float *d, size_t n, int write)
{
    size_t i = 0;
    if (write) {
        for (; i + VL <= n; i += VL) {
            const vf g = *(const vf_unaligned *)(d + i);
            const vi pass = *(const vf_unaligned *)(out + i) > (vf){0};
            *(vf_unaligned *)(dx + i) = (vf)((vi)g & pass);
        }
        for (; i < n; i++)
            dx[i] = out[i] > 0.0f ? d[i] : 0.0f;
        return;
    }
    for (; i + VL <= n; i += VL) {
        const vf g = *(const vf_unaligned *)(d + i);
        const vi pass = *(const vf_unaligned *)(out + i) > (vf){0};
        *(vf_unaligned *)(dx + i) += (vf)((vi)g & pass);
    }
    for (; i < n; i++)
        dx[i] += out[i] > 0.0f ? d[i] : 0.0f;
}

/* ReLU on n floats, split into parts of whole vectors. */
typedef struct relu_job {
    float *dst;       /* out (forward) or dx (backward) */
    const float *src; /* x (forward) or out (backward) */
    const float *d;   /* dout (backward) */
    size_t n;
    int write;        /* backward: overwrite dx */
} relu_job;

static void relu_span(const relu_job *j, int part, int nparts, size_t *i0, size_t *len)
{
    const size_t chunk = round_up((j->n + (size_t)nparts - 1) / (size_t)nparts, VL);
    const size_t lo = (size_t)part * chunk < j->n ? (size_t)part * chunk : j->n;
    *i0 = lo;
    *len = j->n - lo < chunk ? j->n - lo : chunk;
}

static void relu_forward_part(void *ctx, int part, int nparts)
{
    const relu_job *j = ctx;
    size_t i0, len;
    relu_span(j, part, nparts, &i0, &len);
    relu_forward(j->dst + i0, j->src + i0, len);
}

static void relu_backward_part(void *ctx, int part, int nparts)
{
    const relu_job *j = ctx;
    size_t i0, len;
    relu_span(j, part, nparts, &i0, &len);
    relu_backward(j->dst + i0, j->src + i0, j->d + i0, len, j->write);
}

static void relu_run(pb_par_fn fn, float *dst, const float *src, const float *d, size_t n,
                     int write)
{
    relu_job j = {dst, src, d, n, write};
    pb_par_run(fn, &j, batch_parts(INT_MAX, n, INT_MAX));
}

void pb_kern_relu_forward(float *out, const float *x, size_t n)
{
    relu_run(relu_forward_part, out, x, NULL, n, 0);
}

void pb_kern_relu_backward(float *dx, const float *out, const float *d, size_t n, int write)
{
    relu_run(relu_backward_part, dx, out, d, n, write);
}

CLONES void pb_kern_add_forward(float *restrict o, const float *x, const float *x2, size_t n, int relu)
{
    size_t i = 0;
    for (; i + VL <= n; i += VL) {
        const vf v = *(const vf_unaligned *)(x + i) + *(const vf_unaligned *)(x2 + i);
        *(vf_unaligned *)(o + i) = relu ? (vf)((vi)v & ~(v < (vf){0})) : v;
    }
    for (; i < n; i++) {
        const float v = x[i] + x2[i];
        o[i] = relu && v < 0.0f ? 0.0f : v;
    }
}

void pb_kern_dropout_forward(pb_layer *l, const float *restrict x, size_t n, int train, pb_rng *rng)
{
    float *restrict o = l->out, *restrict mask = l->ws;
    if (!train || l->p == 0.0f) {
        memcpy(o, x, n * sizeof(float));
        l->stat[0] = MODE_EVAL;
        return;
    }
    assert(rng != NULL);
    /* two 32-bit draws per generator step; keep iff draw >= p * 2^32 */
    const uint64_t thr = (uint64_t)((double)l->p * 4294967296.0);
    const float scale = 1.0f / (1.0f - l->p);
    size_t i = 0;
    for (; i + 1 < n; i += 2) {
        const uint64_t r = pb_rng_next(rng);
        mask[i] = (r & 0xffffffffu) >= thr ? scale : 0.0f;
        mask[i + 1] = (r >> 32) >= thr ? scale : 0.0f;
    }
    if (i < n)
        mask[i] = (pb_rng_next(rng) & 0xffffffffu) >= thr ? scale : 0.0f;
    for (size_t j = 0; j < n; j++)
        o[j] = x[j] * mask[j];
    l->stat[0] = MODE_TRAIN;
}

void pb_kern_dropout_backward(pb_layer *l, float *restrict dx, size_t n)
{
    const float *restrict d = l->dout, *restrict mask = l->ws;
    if (l->stat[0] == MODE_EVAL) {
        pb_kern_add_into(dx, d, n);
        return;
    }
    for (size_t i = 0; i < n; i++)
        dx[i] += d[i] * mask[i];
}

/* -------------------------------------------------------------------- BN */

/* BN works one channel plane (hw floats of one example) at a time: sums in
 * float vectors over the plane (at most a few thousand floats), their lanes
 * added in double once per plane, and the planes' sums in double, so the
 * statistics keep the two-pass accuracy of the scalar double loops they
 * replace at vector speed (gcc -O2 would not vectorize those). */

CLONES static double plane_sum(const float *restrict x, size_t n)
{
    vf a = {0}, b = {0};
    size_t i = 0;
    for (; i + 2 * VL <= n; i += 2 * VL) {
        a += *(const vf_unaligned *)(x + i);
        b += *(const vf_unaligned *)(x + i + VL);
    }
    for (; i + VL <= n; i += VL)
        a += *(const vf_unaligned *)(x + i);
    a += b;
    double s = 0.0;
    for (int k = 0; k < VL; k++)
        s += a[k];
    for (; i < n; i++)
        s += x[i];
    return s;
}

/* sum of (x - mean)^2 */
CLONES static double plane_sqdev(const float *restrict x, size_t n, float mean)
{
    vf a = {0}, b = {0};
    const vf m = mean - (vf){0};
    size_t i = 0;
    for (; i + 2 * VL <= n; i += 2 * VL) {
        const vf d = *(const vf_unaligned *)(x + i) - m, e = *(const vf_unaligned *)(x + i + VL) - m;
        a += d * d;
        b += e * e;
    }
    for (; i + VL <= n; i += VL) {
        const vf d = *(const vf_unaligned *)(x + i) - m;
        a += d * d;
    }
    a += b;
    double s = 0.0;
    for (int k = 0; k < VL; k++)
        s += a[k];
    for (; i < n; i++) {
        const double d = (double)x[i] - mean;
        s += d * d;
    }
    return s;
}

/* xh = (x - mean) * invstd (unless xh is NULL), o = g * xh + be */
/* a ReLU that keeps NaN, as relu_forward */
#define RELU_V(v) ((vf)((vi)(v) & ~((v) < (vf){0})))
#define RELU_S(v) ((v) < 0.0f ? 0.0f : (v))

CLONES static void plane_norm(float *restrict o, float *restrict xh, const float *restrict x, size_t n,
                              float mean, float invstd, float g, float be, int relu)
{
    const vf m = mean - (vf){0}, iv = invstd - (vf){0}, gv = g - (vf){0}, bv = be - (vf){0};
    size_t i = 0;
    if (xh) {
        for (; i + VL <= n; i += VL) {
            const vf h = (*(const vf_unaligned *)(x + i) - m) * iv, v = gv * h + bv;
            *(vf_unaligned *)(xh + i) = h;
            *(vf_unaligned *)(o + i) = relu ? RELU_V(v) : v;
        }
        for (; i < n; i++) {
            xh[i] = (x[i] - mean) * invstd;
            const float v = g * xh[i] + be;
            o[i] = relu ? RELU_S(v) : v;
        }
        return;
    }
    /* inference: the same arithmetic, x-hat not kept */
    for (; i + VL <= n; i += VL) {
        const vf v = gv * ((*(const vf_unaligned *)(x + i) - m) * iv) + bv;
        *(vf_unaligned *)(o + i) = relu ? RELU_V(v) : v;
    }
    for (; i < n; i++) {
        const float v = g * ((x[i] - mean) * invstd) + be;
        o[i] = relu ? RELU_S(v) : v;
    }
}

/* The output gradient where out > 0 (a fused ReLU's backward; out NULL: no ReLU). */
#define DOUT_V(d, out, i)                                                                   \
    ((out) ? (vf)((vi) * (const vf_unaligned *)((d) + (i)) & (*(const vf_unaligned *)((out) + (i)) > (vf){0})) \
           : *(const vf_unaligned *)((d) + (i)))
#define DOUT_S(d, out, i) ((out) && !((out)[i] > 0.0f) ? 0.0f : (d)[i])

/* sum of d and of d * xh */
CLONES static void plane_dsums(const float *restrict d, const float *restrict out, const float *restrict xh,
                               size_t n, double *sdy, double *sdyh)
{
    vf a = {0}, b = {0};
    size_t i = 0;
    for (; i + VL <= n; i += VL) {
        const vf dv = DOUT_V(d, out, i);
        a += dv;
        b += dv * *(const vf_unaligned *)(xh + i);
    }
    double s = 0.0, t = 0.0;
    for (int k = 0; k < VL; k++) {
        s += a[k];
        t += b[k];
    }
    for (; i < n; i++) {
        const float dv = DOUT_S(d, out, i);
        s += dv;
        t += (double)dv * xh[i];
    }
    *sdy += s;
    *sdyh += t;
}

/* g += k * (d - mdy - xh * mdyh) */
CLONES static void plane_dx(float *restrict g, const float *restrict d, const float *restrict out,
                            const float *restrict xh, size_t n, float k, float mdy, float mdyh)
{
    const vf kv = k - (vf){0}, a = mdy - (vf){0}, b = mdyh - (vf){0};
    size_t i = 0;
    for (; i + VL <= n; i += VL)
        *(vf_unaligned *)(g + i) += kv * (DOUT_V(d, out, i) - a - *(const vf_unaligned *)(xh + i) * b);
    for (; i < n; i++)
        g[i] += k * (DOUT_S(d, out, i) - mdy - xh[i] * mdyh);
}

/* BN runs channels in parallel: a channel's statistics, outputs and
 * gradients are one part's work, in the same order whatever the split, so
 * the results do not depend on the thread count. */
typedef struct bn_job {
    pb_layer *l;
    const float *x;
    float *dx;
    int B;
    int train;
} bn_job;

static void bn_forward_channel(pb_layer *l, const float *x, int B, int train, int c)
{
    const int C = l->oc;
    const size_t hw = (size_t)l->oh * l->ow, osz = pb_layer_osize(l), N = (size_t)B * hw;
    float *mean_s = l->stat, *invstd_s = l->stat + C;
    const float *gamma = l->w->w, *beta = l->b->w;
    double mean, invstd;
    if (train) {
        /* two passes: one-pass E[x^2]-E[x]^2 loses the variance of
         * large-mean activations in float */
        double s = 0.0;
        for (int b = 0; b < B; b++)
            s += plane_sum(x + b * osz + c * hw, hw);
        mean = s / (double)N;
        double v = 0.0;
        for (int b = 0; b < B; b++)
            v += plane_sqdev(x + b * osz + c * hw, hw, (float)mean);
        const double var = v / (double)N;
        invstd = 1.0 / sqrt(var + (double)l->bn_eps);
        const double m = (double)l->bn_momentum;
        /* PyTorch tracks the unbiased variance; with one value per channel
         * it is undefined, so fall back to the biased one */
        const double uvar = N > 1 ? var * (double)N / (double)(N - 1) : var;
        l->run_mean[c] = (float)((1.0 - m) * l->run_mean[c] + m * mean);
        l->run_var[c] = (float)((1.0 - m) * l->run_var[c] + m * uvar);
    } else {
        mean = l->run_mean[c];
        invstd = 1.0 / sqrt((double)l->run_var[c] + (double)l->bn_eps);
    }
    mean_s[c] = (float)mean;
    invstd_s[c] = (float)invstd;
    for (int b = 0; b < B; b++)
        plane_norm(l->out + b * osz + c * hw, l->ws + b * osz + c * hw, x + b * osz + c * hw, hw, (float)mean,
                   (float)invstd, gamma[c], beta[c], l->relu_after);
}

static void bn_infer_channel(pb_layer *l, const float *x, int B, int c)
{
    const size_t hw = (size_t)l->oh * l->ow, osz = pb_layer_osize(l);
    const float invstd = (float)(1.0 / sqrt((double)l->run_var[c] + (double)l->bn_eps));
    for (int b = 0; b < B; b++)
        plane_norm(l->out + b * osz + c * hw, NULL, x + b * osz + c * hw, hw, l->run_mean[c], invstd, l->w->w[c],
                   l->b->w[c], l->relu_after);
}

static void bn_backward_channel(pb_layer *l, float *dx, int B, int c)
{
    const int C = l->oc;
    const size_t hw = (size_t)l->oh * l->ow, osz = pb_layer_osize(l), N = (size_t)B * hw;
    const float *invstd_s = l->stat + C;
    const int train = l->stat[2 * C] == MODE_TRAIN;
    const float *out = l->relu_after ? l->out : NULL;
    double sdy = 0.0, sdyh = 0.0;
    for (int b = 0; b < B; b++)
        plane_dsums(l->dout + b * osz + c * hw, out ? out + b * osz + c * hw : NULL, l->ws + b * osz + c * hw, hw,
                    &sdy, &sdyh);
    l->w->g[c] += (float)sdyh;
    l->b->g[c] += (float)sdy;
    if (!dx)
        return;
    const float k = l->w->w[c] * invstd_s[c];
    /* in train mode the batch mean and variance depend on x too */
    const float mdy = train ? (float)(sdy / (double)N) : 0.0f;
    const float mdyh = train ? (float)(sdyh / (double)N) : 0.0f;
    for (int b = 0; b < B; b++)
        plane_dx(dx + b * osz + c * hw, l->dout + b * osz + c * hw, out ? out + b * osz + c * hw : NULL,
                 l->ws + b * osz + c * hw, hw, k, mdy, mdyh);
}

static void bn_forward_part(void *ctx, int part, int nparts)
{
    const bn_job *j = ctx;
    const int c1 = pb_par_begin(j->l->oc, part + 1, nparts);
    for (int c = pb_par_begin(j->l->oc, part, nparts); c < c1; c++)
        bn_forward_channel(j->l, j->x, j->B, j->train, c);
}

static void bn_infer_part(void *ctx, int part, int nparts)
{
    const bn_job *j = ctx;
    const int c1 = pb_par_begin(j->l->oc, part + 1, nparts);
    for (int c = pb_par_begin(j->l->oc, part, nparts); c < c1; c++)
        bn_infer_channel(j->l, j->x, j->B, c);
}

static void bn_backward_part(void *ctx, int part, int nparts)
{
    const bn_job *j = ctx;
    const int c1 = pb_par_begin(j->l->oc, part + 1, nparts);
    for (int c = pb_par_begin(j->l->oc, part, nparts); c < c1; c++)
        bn_backward_channel(j->l, j->dx, j->B, c);
}

static void bn_run(pb_par_fn fn, pb_layer *l, const float *x, float *dx, int B, int train)
{
    bn_job j = {l, x, dx, B, train};
    pb_par_run(fn, &j, batch_parts(l->oc, (size_t)B * pb_layer_osize(l), l->oc));
}

void pb_kern_bn_forward(pb_layer *l, const float *x, int B, int train)
{
    bn_run(bn_forward_part, l, x, NULL, B, train);
    l->stat[2 * l->oc] = train ? MODE_TRAIN : MODE_EVAL;
}

void pb_kern_bn_infer(pb_layer *l, const float *x, int B) { bn_run(bn_infer_part, l, x, NULL, B, 0); }

void pb_kern_bn_backward(pb_layer *l, float *dx, int B) { bn_run(bn_backward_part, l, NULL, dx, B, 0); }

CLONES float pb_kern_exp_sum(float *p, const float *z, int n, float scale, float shift)
{
    vf acc = {0};
    int i = 0;
    for (; i + VL <= n; i += VL) {
        vf e;
        VEXP(e, *(const vf_unaligned *)(z + i) * scale - shift);
        *(vf_unaligned *)(p + i) = e;
        acc += e;
    }
    if (i < n) {
        /* the tail in a full vector; lanes past n are neither stored nor summed */
        vf t = {0}, e;
        memcpy(&t, z + i, (size_t)(n - i) * sizeof(float));
        VEXP(e, t * scale - shift);
        for (int k = 0; k < VL; k++)
            if (k >= n - i)
                e[k] = 0.0f;
        memcpy(p + i, &e, (size_t)(n - i) * sizeof(float));
        acc += e;
    }
    for (int w = VL / 2; w > 0; w /= 2)
        for (int k = 0; k < w; k++)
            acc[k] += acc[k + w];
    return acc[0];
}
