/* pb_layer: forward and backward of each layer kind.
 *
 * Dense and conv layers run on OpenBLAS SGEMM; the other kinds are plain loops
 * over restrict pointers so gcc can vectorize them at -O2. Nothing here
 * allocates after pb_layer_alloc, and nothing starts threads of its own, so a
 * run is as deterministic as OpenBLAS is. */
#include "pb_layer.h"

#include <assert.h>
#include <limits.h>
#include <math.h>
#include <string.h>

#include <cblas.h>

const char *const pb_layer_kind_names[PB_LAYER_KINDS] = {
    [PB_DENSE] = "dense",
    [PB_CONV] = "conv",
    [PB_MAXPOOL] = "maxpool",
    [PB_AVGPOOL] = "avgpool",
    [PB_GAP] = "gap",
    [PB_RELU] = "relu",
    [PB_BN] = "bn",
    [PB_FLATTEN] = "flatten",
    [PB_ADD] = "add",
    [PB_DROPOUT] = "dropout",
};

/* The conv workspace holds im2col columns, their gradient and the output in
 * [oc, columns] order for a chunk of the batch. The cap keeps a ResNet layer at
 * batch 128 from asking for hundreds of MB; LeNet-5 and smaller fit whole. */
#define CONV_WS_BYTES ((size_t)64 << 20)

/* stat[] carries one float past the BN statistics (and is one float for
 * dropout) telling backward whether the last forward ran in train mode, so a
 * gradient taken through an eval-mode forward is the gradient of what ran. */
#define MODE_EVAL 0.0f
#define MODE_TRAIN 1.0f

static const char *lname(const pb_layer *l) { return l->name[0] ? l->name : "(unnamed)"; }

static void add_into(float *restrict y, const float *restrict x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] += x[i];
}

/* ---------------------------------------------------------------- shapes */

int pb_layer_infer_shape(pb_layer *l, char *err, size_t errlen)
{
    if ((unsigned)l->kind >= PB_LAYER_KINDS)
        return pb_err(err, errlen, PB_EUSAGE, "layer %s: unknown kind %d", lname(l), (int)l->kind);
    const char *kn = pb_layer_kind_names[l->kind];
    if (l->ic < 1 || l->ih < 1 || l->iw < 1)
        return pb_err(err, errlen, PB_EUSAGE, "layer %s (%s): empty input shape %dx%dx%d", lname(l),
                      kn, l->ic, l->ih, l->iw);
    if ((size_t)l->ic * l->ih * l->iw > INT_MAX)
        return pb_err(err, errlen, PB_EUSAGE, "layer %s (%s): input %dx%dx%d too large", lname(l), kn,
                      l->ic, l->ih, l->iw);

    switch (l->kind) {
    case PB_DENSE:
        if (l->oc < 1)
            return pb_err(err, errlen, PB_EUSAGE, "layer %s (dense): %d outputs", lname(l), l->oc);
        l->oh = l->ow = 1;
        break;
    case PB_CONV:
        if (l->oc < 1 || l->k < 1 || l->stride < 1 || l->pad < 0)
            return pb_err(err, errlen, PB_EUSAGE,
                          "layer %s (conv): bad hyper-parameters oc=%d k=%d stride=%d pad=%d",
                          lname(l), l->oc, l->k, l->stride, l->pad);
        if (l->ih + 2 * l->pad < l->k || l->iw + 2 * l->pad < l->k)
            return pb_err(err, errlen, PB_EUSAGE,
                          "layer %s (conv): kernel %d larger than padded input %dx%d (pad %d)",
                          lname(l), l->k, l->ih, l->iw, l->pad);
        l->oh = (l->ih + 2 * l->pad - l->k) / l->stride + 1;
        l->ow = (l->iw + 2 * l->pad - l->k) / l->stride + 1;
        break;
    case PB_MAXPOOL:
    case PB_AVGPOOL:
        if (l->k < 1 || l->stride < 1)
            return pb_err(err, errlen, PB_EUSAGE, "layer %s (%s): bad window k=%d stride=%d",
                          lname(l), kn, l->k, l->stride);
        if (l->ih < l->k || l->iw < l->k)
            return pb_err(err, errlen, PB_EUSAGE, "layer %s (%s): window %d larger than input %dx%d",
                          lname(l), kn, l->k, l->ih, l->iw);
        l->oc = l->ic;
        l->oh = (l->ih - l->k) / l->stride + 1;
        l->ow = (l->iw - l->k) / l->stride + 1;
        break;
    case PB_GAP:
        l->oc = l->ic;
        l->oh = l->ow = 1;
        break;
    case PB_FLATTEN:
        l->oc = l->ic * l->ih * l->iw;
        l->oh = l->ow = 1;
        break;
    case PB_DROPOUT:
    case PB_BN:
    case PB_RELU:
    case PB_ADD:
        if (l->kind == PB_DROPOUT && !(l->p >= 0.0f && l->p < 1.0f))
            return pb_err(err, errlen, PB_EUSAGE, "layer %s (dropout): p=%g not in [0,1)", lname(l),
                          (double)l->p);
        if (l->kind == PB_BN &&
            (!(l->bn_eps >= 0.0f) || !(l->bn_momentum >= 0.0f && l->bn_momentum <= 1.0f)))
            return pb_err(err, errlen, PB_EUSAGE, "layer %s (bn): eps=%g momentum=%g out of range",
                          lname(l), (double)l->bn_eps, (double)l->bn_momentum);
        l->oc = l->ic;
        l->oh = l->ih;
        l->ow = l->iw;
        break;
    default:
        return pb_err(err, errlen, PB_EINTERNAL, "layer %s: kind %d not handled", lname(l), (int)l->kind);
    }
    return PB_OK;
}

/* ------------------------------------------------------------ allocation */

static size_t conv_cols_rows(const pb_layer *l) { return (size_t)l->ic * l->k * l->k; }

/* Floats of conv workspace per example: columns, their gradient, [oc, ohw]. */
static size_t conv_ws_per_example(const pb_layer *l)
{
    return (2 * conv_cols_rows(l) + (size_t)l->oc) * (size_t)l->oh * l->ow;
}

/* Examples per conv chunk; derived from ws_n so no extra field is needed. */
static int conv_chunk(const pb_layer *l) { return (int)(l->ws_n / conv_ws_per_example(l)); }

static int check_param(const pb_layer *l, const pb_param *p, const char *what, size_t n, char *err,
                       size_t errlen)
{
    if (!p || !p->w || !p->g)
        return pb_err(err, errlen, PB_EUSAGE,
                      "layer %s (%s): %s not allocated (the model owns parameters and must create "
                      "them before pb_layer_alloc)",
                      lname(l), pb_layer_kind_names[l->kind], what);
    if (p->n != n)
        return pb_err(err, errlen, PB_EUSAGE, "layer %s (%s): %s has %zu elements, expected %zu",
                      lname(l), pb_layer_kind_names[l->kind], what, p->n, n);
    return PB_OK;
}

void pb_layer_free(pb_layer *l)
{
    pb_free(l->out);
    pb_free(l->dout);
    pb_free(l->ws);
    pb_free(l->idx);
    pb_free(l->stat);
    l->out = l->dout = l->ws = l->stat = NULL;
    l->idx = NULL;
    l->ws_n = 0;
    l->max_batch = 0;
}

int pb_layer_alloc(pb_layer *l, int max_batch, char *err, size_t errlen)
{
    pb_layer_free(l);
    if (max_batch < 1)
        return pb_err(err, errlen, PB_EUSAGE, "layer %s: max_batch %d < 1", lname(l), max_batch);
    const size_t osz = pb_layer_osize(l), isz = pb_layer_isize(l);
    if (osz == 0)
        return pb_err(err, errlen, PB_EUSAGE, "layer %s: output shape not inferred", lname(l));

    int rc = PB_OK;
    switch (l->kind) {
    case PB_DENSE:
    case PB_CONV: {
        size_t nw = (size_t)l->oc * (l->kind == PB_DENSE ? isz : conv_cols_rows(l));
        if ((rc = check_param(l, l->w, "weight", nw, err, errlen)) != PB_OK)
            return rc;
        if (l->has_bias && (rc = check_param(l, l->b, "bias", (size_t)l->oc, err, errlen)) != PB_OK)
            return rc;
        break;
    }
    case PB_BN:
        if ((rc = check_param(l, l->w, "gamma", (size_t)l->oc, err, errlen)) != PB_OK ||
            (rc = check_param(l, l->b, "beta", (size_t)l->oc, err, errlen)) != PB_OK)
            return rc;
        if (!l->run_mean || !l->run_var)
            return pb_err(err, errlen, PB_EUSAGE,
                          "layer %s (bn): running statistics not allocated (owned by the model)",
                          lname(l));
        break;
    case PB_MAXPOOL:
        /* argmax indices are int32 offsets within one example */
        if (isz > INT32_MAX)
            return pb_err(err, errlen, PB_EUSAGE, "layer %s (maxpool): input too large", lname(l));
        break;
    default:
        break;
    }

    const size_t on = (size_t)max_batch * osz;
    int fail = 0;
    l->out = pb_alloc(on * sizeof(float));
    l->dout = pb_alloc(on * sizeof(float));
    fail |= !l->out || !l->dout;
    switch (l->kind) {
    case PB_CONV: {
        size_t per = conv_ws_per_example(l);
        size_t cb = CONV_WS_BYTES / (per * sizeof(float));
        if (cb < 1)
            cb = 1;
        if (cb > (size_t)max_batch)
            cb = (size_t)max_batch;
        if (cb * l->oh * l->ow > INT_MAX) /* SGEMM dimensions are int */
            cb = INT_MAX / ((size_t)l->oh * l->ow);
        if (cb < 1)
            return pb_err(err, errlen, PB_EUSAGE, "layer %s (conv): output %dx%d too large", lname(l),
                          l->oh, l->ow);
        l->ws_n = cb * per;
        break;
    }
    case PB_BN:
    case PB_DROPOUT:
        l->ws_n = on;
        l->stat = pb_alloc((l->kind == PB_BN ? 2 * (size_t)l->oc + 1 : 1) * sizeof(float));
        fail |= !l->stat;
        break;
    case PB_MAXPOOL:
        l->idx = pb_alloc(on * sizeof(int32_t));
        fail |= !l->idx;
        break;
    default:
        break;
    }
    if (l->ws_n) {
        l->ws = pb_alloc(l->ws_n * sizeof(float));
        fail |= !l->ws;
    }
    if (fail) {
        pb_layer_free(l);
        return pb_err(err, errlen, PB_ENOMEM, "layer %s (%s): out of memory for batch %d", lname(l),
                      pb_layer_kind_names[l->kind], max_batch);
    }
    l->max_batch = max_batch;
    return PB_OK;
}

/* ----------------------------------------------------------------- dense */

static void dense_forward(pb_layer *l, const float *x, int B)
{
    const int in = (int)pb_layer_isize(l), oc = l->oc;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, oc, in, 1.0f, x, in, l->w->w, in, 0.0f,
                l->out, oc);
    if (l->has_bias) {
        const float *restrict bias = l->b->w;
        for (int b = 0; b < B; b++) {
            float *restrict o = l->out + (size_t)b * oc;
            for (int j = 0; j < oc; j++)
                o[j] += bias[j];
        }
    }
}

static void bias_grad_rows(float *restrict g, const float *restrict dout, int rows, int cols)
{
    for (int r = 0; r < rows; r++) {
        const float *restrict d = dout + (size_t)r * cols;
        for (int j = 0; j < cols; j++)
            g[j] += d[j];
    }
}

static void dense_backward(pb_layer *l, const float *x, float *dx, int B)
{
    const int in = (int)pb_layer_isize(l), oc = l->oc;
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, oc, in, B, 1.0f, l->dout, oc, x, in, 1.0f,
                l->w->g, in);
    if (l->has_bias)
        bias_grad_rows(l->b->g, l->dout, B, oc);
    if (dx)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, in, oc, 1.0f, l->dout, oc,
                    l->w->w, in, 1.0f, dx, in);
}

/* ------------------------------------------------------------------ conv */

/* Output columns [xlo, xhi) of kernel column kj read inside the input row;
 * the rest read padding. */
static void conv_xrange(const pb_layer *l, int kj, int *xlo, int *xhi)
{
    const int s = l->stride, off = kj - l->pad;
    int lo = off >= 0 ? 0 : (-off + s - 1) / s;
    int hi = l->iw - 1 - off < 0 ? 0 : (l->iw - 1 - off) / s + 1;
    if (hi > l->ow)
        hi = l->ow;
    if (lo > l->ow)
        lo = l->ow;
    if (hi < lo)
        hi = lo;
    *xlo = lo;
    *xhi = hi;
}

/* cols [ic*k*k, nb*oh*ow]: row (c,ki,kj), column (example, oy, ox). */
static void im2col(const pb_layer *l, const float *restrict x, int nb, float *restrict cols)
{
    const int k = l->k, s = l->stride, ih = l->ih, iw = l->iw, oh = l->oh, ow = l->ow;
    const size_t ohw = (size_t)oh * ow, isz = pb_layer_isize(l), n = (size_t)nb * ohw;
    for (int c = 0; c < l->ic; c++)
        for (int ki = 0; ki < k; ki++)
            for (int kj = 0; kj < k; kj++) {
                int xlo, xhi;
                conv_xrange(l, kj, &xlo, &xhi);
                const int off = kj - l->pad;
                float *restrict row = cols + ((size_t)(c * k + ki) * k + kj) * n;
                for (int b = 0; b < nb; b++) {
                    const float *restrict xc = x + b * isz + (size_t)c * ih * iw;
                    for (int y = 0; y < oh; y++) {
                        float *restrict d = row + b * ohw + (size_t)y * ow;
                        const int iy = y * s - l->pad + ki;
                        if (iy < 0 || iy >= ih) {
                            memset(d, 0, (size_t)ow * sizeof(float));
                            continue;
                        }
                        const float *restrict src = xc + (size_t)iy * iw;
                        for (int xo = 0; xo < xlo; xo++)
                            d[xo] = 0.0f;
                        if (s == 1)
                            memcpy(d + xlo, src + xlo + off, (size_t)(xhi - xlo) * sizeof(float));
                        else
                            for (int xo = xlo; xo < xhi; xo++)
                                d[xo] = src[xo * s + off];
                        for (int xo = xhi; xo < ow; xo++)
                            d[xo] = 0.0f;
                    }
                }
            }
}

/* Adjoint of im2col: dx += scatter(dcols); padding positions are dropped. */
static void col2im(const pb_layer *l, const float *restrict dcols, int nb, float *restrict dx)
{
    const int k = l->k, s = l->stride, ih = l->ih, iw = l->iw, oh = l->oh, ow = l->ow;
    const size_t ohw = (size_t)oh * ow, isz = pb_layer_isize(l), n = (size_t)nb * ohw;
    for (int c = 0; c < l->ic; c++)
        for (int ki = 0; ki < k; ki++)
            for (int kj = 0; kj < k; kj++) {
                int xlo, xhi;
                conv_xrange(l, kj, &xlo, &xhi);
                const int off = kj - l->pad;
                const float *restrict row = dcols + ((size_t)(c * k + ki) * k + kj) * n;
                for (int b = 0; b < nb; b++) {
                    float *restrict xc = dx + b * isz + (size_t)c * ih * iw;
                    for (int y = 0; y < oh; y++) {
                        const int iy = y * s - l->pad + ki;
                        if (iy < 0 || iy >= ih)
                            continue;
                        const float *restrict d = row + b * ohw + (size_t)y * ow;
                        float *restrict dst = xc + (size_t)iy * iw;
                        if (s == 1) {
                            float *restrict dd = dst + xlo + off;
                            const float *restrict ds = d + xlo;
                            for (int xo = 0; xo < xhi - xlo; xo++)
                                dd[xo] += ds[xo];
                        } else {
                            for (int xo = xlo; xo < xhi; xo++)
                                dst[xo * s + off] += d[xo];
                        }
                    }
                }
            }
}

static void conv_forward(pb_layer *l, const float *x, int B)
{
    const int oc = l->oc, rows = (int)conv_cols_rows(l), cb = conv_chunk(l);
    const size_t ohw = (size_t)l->oh * l->ow, isz = pb_layer_isize(l), osz = pb_layer_osize(l);
    float *cols = l->ws;
    float *tmp = l->ws + 2 * (size_t)rows * cb * ohw;
    for (int b0 = 0; b0 < B; b0 += cb) {
        const int nb = B - b0 < cb ? B - b0 : cb;
        const size_t n = (size_t)nb * ohw;
        im2col(l, x + b0 * isz, nb, cols);
        /* one GEMM over the whole chunk: tiny per-example GEMMs (6 x 25 x 784
         * for LeNet's conv1) leave OpenBLAS far from peak */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, oc, (int)n, rows, 1.0f, l->w->w, rows,
                    cols, (int)n, 0.0f, tmp, (int)n);
        for (int b = 0; b < nb; b++)
            for (int o = 0; o < oc; o++) {
                const float *restrict src = tmp + (size_t)o * n + b * ohw;
                float *restrict dst = l->out + (b0 + b) * osz + (size_t)o * ohw;
                const float bias = l->has_bias ? l->b->w[o] : 0.0f;
                for (size_t p = 0; p < ohw; p++)
                    dst[p] = src[p] + bias;
            }
    }
}

static void conv_backward(pb_layer *l, const float *x, float *dx, int B)
{
    const int oc = l->oc, rows = (int)conv_cols_rows(l), cb = conv_chunk(l);
    const size_t ohw = (size_t)l->oh * l->ow, isz = pb_layer_isize(l), osz = pb_layer_osize(l);
    float *cols = l->ws;
    float *dcols = l->ws + (size_t)rows * cb * ohw;
    float *tmp = l->ws + 2 * (size_t)rows * cb * ohw;
    for (int b0 = 0; b0 < B; b0 += cb) {
        const int nb = B - b0 < cb ? B - b0 : cb;
        const size_t n = (size_t)nb * ohw;
        /* A batch that fit in one chunk still has its columns from forward
         * (backward is given the same x); otherwise rebuild this chunk's. */
        if (B > cb)
            im2col(l, x + b0 * isz, nb, cols);
        for (int b = 0; b < nb; b++)
            for (int o = 0; o < oc; o++)
                memcpy(tmp + (size_t)o * n + b * ohw, l->dout + (b0 + b) * osz + (size_t)o * ohw,
                       ohw * sizeof(float));
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, oc, rows, (int)n, 1.0f, tmp, (int)n, cols,
                    (int)n, 1.0f, l->w->g, rows);
        if (l->has_bias)
            for (int o = 0; o < oc; o++) {
                const float *restrict t = tmp + (size_t)o * n;
                double acc = 0.0;
                for (size_t p = 0; p < n; p++)
                    acc += t[p];
                l->b->g[o] += (float)acc;
            }
        if (dx) {
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, rows, (int)n, oc, 1.0f, l->w->w, rows,
                        tmp, (int)n, 0.0f, dcols, (int)n);
            col2im(l, dcols, nb, dx + b0 * isz);
        }
    }
}

/* ----------------------------------------------------------------- pools */

static void maxpool_forward(pb_layer *l, const float *x, int B)
{
    const int k = l->k, s = l->stride, ih = l->ih, iw = l->iw, oh = l->oh, ow = l->ow;
    const size_t isz = pb_layer_isize(l), osz = pb_layer_osize(l);
    for (int b = 0; b < B; b++)
        for (int c = 0; c < l->ic; c++) {
            const float *restrict xc = x + b * isz + (size_t)c * ih * iw;
            float *restrict o = l->out + b * osz + (size_t)c * oh * ow;
            int32_t *restrict ix = l->idx + b * osz + (size_t)c * oh * ow;
            const int32_t cbase = c * ih * iw;
            for (int y = 0; y < oh; y++)
                for (int xo = 0; xo < ow; xo++) {
                    int best = (y * s) * iw + xo * s;
                    float bv = xc[best];
                    for (int ki = 0; ki < k; ki++)
                        for (int kj = 0; kj < k; kj++) {
                            const int at = (y * s + ki) * iw + xo * s + kj;
                            const float v = xc[at];
                            /* NaN wins, as in PyTorch, so divergence shows up in the loss */
                            if (v > bv || v != v) {
                                bv = v;
                                best = at;
                            }
                        }
                    o[y * ow + xo] = bv;
                    ix[y * ow + xo] = cbase + best;
                }
        }
}

static void maxpool_backward(pb_layer *l, float *dx, int B)
{
    const size_t isz = pb_layer_isize(l), osz = pb_layer_osize(l);
    for (int b = 0; b < B; b++) {
        const float *restrict d = l->dout + b * osz;
        const int32_t *restrict ix = l->idx + b * osz;
        float *restrict g = dx + b * isz;
        for (size_t j = 0; j < osz; j++)
            g[ix[j]] += d[j];
    }
}

static void avgpool_forward(pb_layer *l, const float *x, int B)
{
    const int k = l->k, s = l->stride, ih = l->ih, iw = l->iw, oh = l->oh, ow = l->ow;
    const size_t isz = pb_layer_isize(l), osz = pb_layer_osize(l);
    const float scale = 1.0f / (float)(k * k);
    for (int b = 0; b < B; b++)
        for (int c = 0; c < l->ic; c++) {
            const float *restrict xc = x + b * isz + (size_t)c * ih * iw;
            float *restrict o = l->out + b * osz + (size_t)c * oh * ow;
            for (int y = 0; y < oh; y++)
                for (int xo = 0; xo < ow; xo++) {
                    float acc = 0.0f;
                    for (int ki = 0; ki < k; ki++)
                        for (int kj = 0; kj < k; kj++)
                            acc += xc[(y * s + ki) * iw + xo * s + kj];
                    o[y * ow + xo] = acc * scale;
                }
        }
}

static void avgpool_backward(pb_layer *l, float *dx, int B)
{
    const int k = l->k, s = l->stride, ih = l->ih, iw = l->iw, oh = l->oh, ow = l->ow;
    const size_t isz = pb_layer_isize(l), osz = pb_layer_osize(l);
    const float scale = 1.0f / (float)(k * k);
    for (int b = 0; b < B; b++)
        for (int c = 0; c < l->ic; c++) {
            float *restrict g = dx + b * isz + (size_t)c * ih * iw;
            const float *restrict d = l->dout + b * osz + (size_t)c * oh * ow;
            for (int y = 0; y < oh; y++)
                for (int xo = 0; xo < ow; xo++) {
                    const float v = d[y * ow + xo] * scale;
                    for (int ki = 0; ki < k; ki++)
                        for (int kj = 0; kj < k; kj++)
                            g[(y * s + ki) * iw + xo * s + kj] += v;
                }
        }
}

static void gap_forward(pb_layer *l, const float *x, int B)
{
    const size_t hw = (size_t)l->ih * l->iw, rows = (size_t)B * l->ic;
    const float scale = 1.0f / (float)hw;
    for (size_t r = 0; r < rows; r++) {
        const float *restrict xc = x + r * hw;
        float acc = 0.0f;
        for (size_t p = 0; p < hw; p++)
            acc += xc[p];
        l->out[r] = acc * scale;
    }
}

static void gap_backward(pb_layer *l, float *dx, int B)
{
    const size_t hw = (size_t)l->ih * l->iw, rows = (size_t)B * l->ic;
    const float scale = 1.0f / (float)hw;
    for (size_t r = 0; r < rows; r++) {
        float *restrict g = dx + r * hw;
        const float v = l->dout[r] * scale;
        for (size_t p = 0; p < hw; p++)
            g[p] += v;
    }
}

/* ------------------------------------------------------- elementwise kinds */

static void relu_forward(float *restrict o, const float *restrict x, size_t n)
{
    /* written so that NaN passes through instead of becoming 0 */
    for (size_t i = 0; i < n; i++)
        o[i] = x[i] < 0.0f ? 0.0f : x[i];
}

static void relu_backward(float *restrict dx, const float *restrict out, const float *restrict d,
                          size_t n)
{
    for (size_t i = 0; i < n; i++)
        dx[i] += out[i] > 0.0f ? d[i] : 0.0f;
}

static void add_forward(float *restrict o, const float *x, const float *x2, size_t n)
{
    for (size_t i = 0; i < n; i++)
        o[i] = x[i] + x2[i];
}

static void dropout_forward(pb_layer *l, const float *restrict x, size_t n, int train, pb_rng *rng)
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

static void dropout_backward(pb_layer *l, float *restrict dx, size_t n)
{
    const float *restrict d = l->dout, *restrict mask = l->ws;
    if (l->stat[0] == MODE_EVAL) {
        add_into(dx, d, n);
        return;
    }
    for (size_t i = 0; i < n; i++)
        dx[i] += d[i] * mask[i];
}

/* -------------------------------------------------------------------- BN */

static void bn_forward(pb_layer *l, const float *x, int B, int train)
{
    const int C = l->oc;
    const size_t hw = (size_t)l->oh * l->ow, osz = pb_layer_osize(l), N = (size_t)B * hw;
    float *mean_s = l->stat, *invstd_s = l->stat + C;
    const float *gamma = l->w->w, *beta = l->b->w;
    for (int c = 0; c < C; c++) {
        double mean, invstd;
        if (train) {
            /* two passes in double: one-pass E[x^2]-E[x]^2 loses the variance
             * of large-mean activations in float */
            double s = 0.0;
            for (int b = 0; b < B; b++) {
                const float *restrict xc = x + b * osz + c * hw;
                for (size_t p = 0; p < hw; p++)
                    s += xc[p];
            }
            mean = s / (double)N;
            double v = 0.0;
            for (int b = 0; b < B; b++) {
                const float *restrict xc = x + b * osz + c * hw;
                for (size_t p = 0; p < hw; p++) {
                    const double dv = xc[p] - mean;
                    v += dv * dv;
                }
            }
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
        const float fm = (float)mean, fi = (float)invstd, g = gamma[c], be = beta[c];
        for (int b = 0; b < B; b++) {
            const float *restrict xc = x + b * osz + c * hw;
            float *restrict xh = l->ws + b * osz + c * hw;
            float *restrict o = l->out + b * osz + c * hw;
            for (size_t p = 0; p < hw; p++) {
                const float h = (xc[p] - fm) * fi;
                xh[p] = h;
                o[p] = g * h + be;
            }
        }
    }
    l->stat[2 * C] = train ? MODE_TRAIN : MODE_EVAL;
}

static void bn_backward(pb_layer *l, float *dx, int B)
{
    const int C = l->oc;
    const size_t hw = (size_t)l->oh * l->ow, osz = pb_layer_osize(l), N = (size_t)B * hw;
    const float *invstd_s = l->stat + C;
    const int train = l->stat[2 * C] == MODE_TRAIN;
    for (int c = 0; c < C; c++) {
        double sdy = 0.0, sdyh = 0.0;
        for (int b = 0; b < B; b++) {
            const float *restrict d = l->dout + b * osz + c * hw;
            const float *restrict xh = l->ws + b * osz + c * hw;
            for (size_t p = 0; p < hw; p++) {
                sdy += d[p];
                sdyh += (double)d[p] * xh[p];
            }
        }
        l->w->g[c] += (float)sdyh;
        l->b->g[c] += (float)sdy;
        if (!dx)
            continue;
        const float k = l->w->w[c] * invstd_s[c];
        /* in train mode the batch mean and variance depend on x too */
        const float mdy = train ? (float)(sdy / (double)N) : 0.0f;
        const float mdyh = train ? (float)(sdyh / (double)N) : 0.0f;
        for (int b = 0; b < B; b++) {
            const float *restrict d = l->dout + b * osz + c * hw;
            const float *restrict xh = l->ws + b * osz + c * hw;
            float *restrict g = dx + b * osz + c * hw;
            for (size_t p = 0; p < hw; p++)
                g[p] += k * (d[p] - mdy - xh[p] * mdyh);
        }
    }
}

/* -------------------------------------------------------------- dispatch */

void pb_layer_forward(pb_layer *l, const float *x, const float *x2, int B, int train, pb_rng *rng)
{
    assert(B >= 1 && B <= l->max_batch);
    const size_t n = (size_t)B * pb_layer_osize(l);
    switch (l->kind) {
    case PB_DENSE: dense_forward(l, x, B); break;
    case PB_CONV: conv_forward(l, x, B); break;
    case PB_MAXPOOL: maxpool_forward(l, x, B); break;
    case PB_AVGPOOL: avgpool_forward(l, x, B); break;
    case PB_GAP: gap_forward(l, x, B); break;
    case PB_RELU: relu_forward(l->out, x, n); break;
    case PB_BN: bn_forward(l, x, B, train); break;
    case PB_FLATTEN: memcpy(l->out, x, n * sizeof(float)); break;
    case PB_ADD: add_forward(l->out, x, x2, n); break;
    case PB_DROPOUT: dropout_forward(l, x, n, train, rng); break;
    default: assert(!"unknown layer kind"); break;
    }
}

void pb_layer_backward(pb_layer *l, const float *x, float *dx, float *dx2, int B)
{
    assert(B >= 1 && B <= l->max_batch);
    const size_t n = (size_t)B * pb_layer_osize(l);
    switch (l->kind) {
    case PB_DENSE: dense_backward(l, x, dx, B); break;
    case PB_CONV: conv_backward(l, x, dx, B); break;
    case PB_BN: bn_backward(l, dx, B); break;
    case PB_ADD:
        /* separate calls: dx and dx2 are the same buffer when a layer is added to itself */
        if (dx)
            add_into(dx, l->dout, n);
        if (dx2)
            add_into(dx2, l->dout, n);
        break;
    default:
        if (!dx)
            break;
        switch (l->kind) {
        case PB_MAXPOOL: maxpool_backward(l, dx, B); break;
        case PB_AVGPOOL: avgpool_backward(l, dx, B); break;
        case PB_GAP: gap_backward(l, dx, B); break;
        case PB_RELU: relu_backward(dx, l->out, l->dout, n); break;
        case PB_FLATTEN: add_into(dx, l->dout, n); break;
        case PB_DROPOUT: dropout_backward(l, dx, n); break;
        default: assert(!"unknown layer kind"); break;
        }
        break;
    }
}

/* ----------------------------------------------------------------- FLOPs */

double pb_layer_flops(const pb_layer *l, int effective)
{
    if (l->kind != PB_DENSE && l->kind != PB_CONV)
        return 0.0;
    const double positions = l->kind == PB_CONV ? (double)l->oh * l->ow : 1.0;
    size_t nw = (size_t)l->oc * (l->kind == PB_DENSE ? pb_layer_isize(l) : conv_cols_rows(l));
    if (effective && l->w && l->w->w) {
        const float *w = l->w->w, *mask = l->w->mask;
        size_t live = 0;
        for (size_t i = 0; i < l->w->n; i++)
            live += (!mask || mask[i] != 0.0f) && w[i] != 0.0f;
        nw = live;
    }
    double flops = 2.0 * (double)nw * positions;
    if (l->has_bias)
        flops += (double)l->oc * positions;
    return flops;
}
