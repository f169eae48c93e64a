/* pb_layer: forward and backward of each layer kind.
 *
 * Dense and conv layers run on OpenBLAS SGEMM, except thin convolutions (see
 * "Thin convolutions" below), which have kernels of their own; the other kinds
 * are plain loops. gcc -O2 does not vectorize loops, so the hot ones (thin
 * convolutions, ReLU, short-row copies) use GCC vector extensions and are
 * cloned for AVX-512 and AVX2. Nothing here allocates after pb_layer_alloc.
 * Thin convolutions, max pooling and ReLU split the batch across pb_par's
 * threads; each part writes its own examples or its own partial sums, added
 * in part order, so a run with a given thread count is as deterministic as
 * OpenBLAS is. */
#include "pb_layer.h"

#include <assert.h>
#include <limits.h>
#include <math.h>
#include <string.h>

#include <cblas.h>

#include "pb_par.h"

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

/* Thin convolutions: stride 1, few output channels and short columns, like
 * LeNet-5's (6 and 16 channels, 25 and 150 rows). A batched SGEMM with 6 or
 * 16 rows and 100k columns, plus im2col and the copies into and out of its
 * layout, runs far from peak, so these layers go one example at a time
 * through three small kernels that keep a block of outputs in vector
 * registers and need no im2col: the example is copied once into a zero-padded
 * plane of width pw = iw + 2*pad, outputs are computed on that wide grid
 * (output q = y*pw + x; the columns x >= ow are computed and dropped), and
 * the im2col row of tap (c, ki, kj) is then the planes shifted by
 * c*plane + ki*pw + kj. A vector there holds 16 outputs of one channel.
 * Layers with more than OB channels (LeNet-5's conv2) compute the forward
 * and, for kernels up to CV_MAX_K, the weight gradient in the "cv" layout
 * instead: a vector holds all the channels of one output pixel, so nothing is
 * computed for the grid's columns x >= ow (4 of conv2's 14), and a 16x16
 * transpose in registers converts to and from the layer's [oc, oh*ow]. The
 * input gradient stays on the grid, where it is a sum of shifted vectors.
 * The kernels use GCC vector extensions and are cloned for AVX-512 and AVX2,
 * because the build targets baseline x86-64 (SSE2) and gcc -O2 does not
 * vectorize loops. */
#define THIN_MAX_OC 16
#define THIN_MAX_ROWS 256
#define CV_XB 12   /* output columns per register block of thin_cv_forward */
#define CV_MAX_K 5 /* kernels up to 5x5 take thin_cv_wgrad */
#define VL 16 /* floats per vector: one AVX-512 register, two AVX2 ones */
#define OB 8  /* output channels (or taps) kept in registers at once;
               * the kernels' "#pragma GCC unroll 8" must match */

typedef float vf __attribute__((vector_size(VL * sizeof(float))));
/* The same for loads from any float address (shifted planes, odd rows). */
typedef float vf_unaligned __attribute__((vector_size(VL * sizeof(float)), aligned(sizeof(float))));
typedef int32_t vi __attribute__((vector_size(VL * sizeof(int32_t))));
typedef float v8f __attribute__((vector_size(8 * sizeof(float))));
typedef int32_t v8i __attribute__((vector_size(8 * sizeof(int32_t))));

/* Each function marked CLONES is compiled for x86-64-v4 (AVX-512), v3 (AVX2,
 * FMA) and the baseline, and the loader picks one for the CPU (GNU ifunc).
 * -std=c11 forbids contracting a*b + c into one FMA; the kernels allow it
 * again, for twice the multiply-adds per instruction. So results differ in
 * the last bits between CPUs of different levels, but never between runs on
 * one machine. They also keep gcc from turning the short-row copy loops into
 * calls of memcpy, which cost more than the copy for rows of 10 to 32 floats. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define CLONES_ENABLED 1
#define KERNEL_OPTIMIZE optimize("fp-contract=fast", "no-tree-loop-distribute-patterns")
#define CLONES                                                                           \
    __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"),      \
                   KERNEL_OPTIMIZE))
#else
#define CLONES
#endif

static int conv_is_thin(const pb_layer *l)
{
    return l->stride == 1 && l->oc <= THIN_MAX_OC && conv_cols_rows(l) <= THIN_MAX_ROWS;
}

static size_t round_up(size_t n, size_t m) { return (n + m - 1) / m * m; }

/* The thin workspace: the weights in the kernels' layouts, shared, then one
 * block per part of the batch (see pb_par.h) for the example in flight and
 * the part's gradient lanes. Padding (the border of the planes, grid columns
 * x >= ow, channels oc..ocp, taps rows..rowsp) is zeroed by pb_alloc and never
 * written, so the kernels run whole vectors and whole register blocks without
 * tails. */
typedef struct thin_ws {
    size_t pw;     /* padded input width: the grid's row length */
    size_t nq;     /* grid outputs computed: oh*pw rounded up to VL */
    size_t plane;  /* floats per padded input channel, with room for the last shift */
    size_t rows, rowsp, ocp;
    size_t shift[THIN_MAX_ROWS]; /* tap r = (c, ki, kj): c*plane + ki*pw + kj */
    float *xpad;   /* [ic, plane] the example, zero-padded */
    float *dxpad;  /* [ic, plane] its gradient */
    float *grid;   /* [ocp, nq] outputs on the grid (forward); cv: outputs [oh*ow, VL]
                    * in forward, their gradient in backward */
    float *dgrid;  /* [ocp, nq] their gradient (backward); columns x >= ow stay zero */
    size_t tpad;   /* zeros either side of a dtaps row: (k-1)*(pw+1) rounded up to VL */
    size_t tld;    /* floats per dtaps row: tpad + nq + tpad */
    float *dtaps;  /* [k*k, tld] gradient of one input channel's taps (dx) */
    float *gacc;   /* [oc, rows + 1, VL] lanes of the weight and bias gradients;
                    * cv: [rows + 1, VL] the gradients themselves */
    float *wt;     /* [rows, ocp] weights transposed (forward), shared */
    float *wr;     /* [oc, rowsp] weights with padded taps (dx), shared */
    float *bias;   /* [ocp], shared */
    size_t shared_n, part_n; /* floats of the shared arrays and of one part's */
} thin_ws;

/* Computes the layout and sets the pointers to part `part`'s arrays when
 * ws != NULL. The workspace of nparts parts is shared_n + nparts * part_n. */
static void thin_layout(const pb_layer *l, float *ws, int part, thin_ws *t)
{
    const size_t k = (size_t)l->k;
    t->pw = (size_t)l->iw + 2 * (size_t)l->pad;
    t->nq = round_up((size_t)l->oh * t->pw, VL);
    t->plane = round_up(t->nq + (k - 1) * (t->pw + 1), VL);
    t->rows = conv_cols_rows(l);
    t->rowsp = round_up(t->rows, OB);
    t->ocp = round_up((size_t)l->oc, OB);
    for (size_t r = 0; r < t->rows; r++)
        t->shift[r] = r / (k * k) * t->plane + r / k % k * t->pw + r % k;
    t->tpad = round_up((k - 1) * (t->pw + 1), VL);
    t->tld = 2 * t->tpad + t->nq;
    const size_t ic = (size_t)l->ic, oc = (size_t)l->oc;
    const size_t n[9] = {t->rows * t->ocp, oc * t->rowsp, t->ocp,
                         ic * t->plane, ic * t->plane, t->ocp * t->nq, t->ocp * t->nq,
                         k * k * t->tld, oc * (t->rows + 1) * VL};
    float **dst[9] = {&t->wt, &t->wr, &t->bias,
                      &t->xpad, &t->dxpad, &t->grid, &t->dgrid, &t->dtaps, &t->gacc};
    size_t at = 0;
    for (int i = 0; i < 9; i++) {
        if (i == 3)
            t->shared_n = at;
        *dst[i] = ws ? ws + at : NULL;
        at += round_up(n[i], VL); /* keeps every array aligned for vf */
    }
    t->part_n = at - t->shared_n;
    if (ws)
        for (int i = 3; i < 9; i++)
            *dst[i] += (size_t)part * t->part_n;
}

int pb_layer_fuses_relu(const pb_layer *l) { return l->kind == PB_CONV && conv_is_thin(l); }

/* Whether the weight gradients take the cv layout (a vector of all output
 * channels, see thin_cv_forward) too: gacc then holds [rows + 1, VL]. */
static int thin_cv_grads(const pb_layer *l, const thin_ws *t) { return t->ocp == VL && l->k <= CV_MAX_K; }

/* Parts of the batch the thin workspace has room for. */
static int thin_parts(const pb_layer *l)
{
    thin_ws t;
    thin_layout(l, NULL, 0, &t);
    return (int)((l->ws_n - t.shared_n) / t.part_n);
}

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

void pb_layer_run_in_place(pb_layer *l, const pb_layer *producer)
{
    if (!l->in_place) {
        pb_free(l->out);
        pb_free(l->dout);
    }
    l->out = producer->out;
    l->dout = producer->dout;
    l->in_place = 1;
}

void pb_layer_free(pb_layer *l)
{
    if (!l->in_place) {
        pb_free(l->out);
        pb_free(l->dout);
    }
    l->in_place = 0;
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
        if (conv_is_thin(l)) {
            thin_ws t;
            thin_layout(l, NULL, 0, &t);
            l->ws_n = t.shared_n + (size_t)pb_par_threads() * t.part_n;
            break;
        }
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

/* ------------------------------------------------------------------ gemm */

/* Every SGEMM of the layers runs on our pool, with OpenBLAS on one thread
 * (pb_set_threads). OpenBLAS's own threads spin in sched_yield after each
 * GEMM: with LeNet-5's dense layers between our conv kernels they spun
 * nearly all the time (a fifth of all CPU samples at -t 2) beside our
 * workers, which now poll briefly themselves between runs (pb_par.c). A GEMM
 * is split into blocks of rows or columns of C, never along K, so each
 * element of C comes from one cblas_sgemm call: the result depends on the
 * thread count only. */
typedef struct gemm_job {
    CBLAS_TRANSPOSE ta, tb;
    int m, n, k, lda, ldb, ldc, split_n;
    float alpha, beta;
    const float *a, *b;
    float *c;
} gemm_job;

/* GEMMs below this many multiply-adds run on the calling thread: handing
 * work to a worker costs microseconds, tens of them if it went to sleep. */
#define PAR_MIN_MACS (1 << 21)
#define GEMM_ALIGN 16 /* block boundaries fall on multiples of this (the kernels' width) */

static int gemm_edge(int n, int part, int nparts)
{
    return part == nparts ? n : pb_par_begin(n / GEMM_ALIGN, part, nparts) * GEMM_ALIGN;
}

static void gemm_part(void *ctx, int part, int nparts)
{
    const gemm_job *g = ctx;
    const float *a = g->a, *b = g->b;
    float *c = g->c;
    int m = g->m, n = g->n;
    if (g->split_n) {
        const int n0 = gemm_edge(g->n, part, nparts);
        n = gemm_edge(g->n, part + 1, nparts) - n0;
        b += g->tb == CblasNoTrans ? (size_t)n0 : (size_t)n0 * g->ldb;
        c += n0;
    } else {
        const int m0 = gemm_edge(g->m, part, nparts);
        m = gemm_edge(g->m, part + 1, nparts) - m0;
        a += g->ta == CblasNoTrans ? (size_t)m0 * g->lda : (size_t)m0;
        c += (size_t)m0 * g->ldc;
    }
    if (m > 0 && n > 0)
        cblas_sgemm(CblasRowMajor, g->ta, g->tb, m, n, g->k, g->alpha, a, g->lda, b, g->ldb, g->beta, c,
                    g->ldc);
}

/* cblas_sgemm (row-major) on the pool. C's longer side is split: every part
 * packs all of the operand along the other side, so that one should be the
 * smaller (with its GEMMs split by examples, where each part packs all of
 * fc1's 300x784 weights, LeNet-300-100 trained about 10% slower). */
static void gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int m, int n, int k, float alpha,
                 const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
    int parts = pb_par_threads();
    gemm_job g = {ta, tb, m, n, k, lda, ldb, ldc, n > m, alpha, beta, a, b, c};
    const int blocks = (g.split_n ? n : m) / GEMM_ALIGN;
    if (parts > blocks)
        parts = blocks;
    if ((double)m * n * k < PAR_MIN_MACS || parts < 2)
        parts = 1;
    pb_par_run(gemm_part, &g, parts);
}

/* ----------------------------------------------------------------- dense */

static void dense_forward(pb_layer *l, const float *x, int B)
{
    const int in = (int)pb_layer_isize(l), oc = l->oc;
    gemm(CblasNoTrans, CblasTrans, B, oc, in, 1.0f, x, in, l->w->w, in, 0.0f, l->out, oc);
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

static void dense_backward(pb_layer *l, const float *x, float *dx, int B, int write)
{
    const int in = (int)pb_layer_isize(l), oc = l->oc;
    gemm(CblasTrans, CblasNoTrans, oc, in, B, 1.0f, l->dout, oc, x, in, 1.0f, l->w->g, in);
    if (l->has_bias)
        bias_grad_rows(l->b->g, l->dout, B, oc);
    if (dx)
        gemm(CblasNoTrans, CblasNoTrans, B, in, oc, 1.0f, l->dout, oc, l->w->w, in,
             write ? 0.0f : 1.0f, dx, in);
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

/* Short-row copy and add for im2col and col2im with stride 1: rows are 10 to
 * 32 floats in the models here, too short for memcpy's call and too long to
 * leave to scalar code (gcc -O2 does not vectorize loops). */
typedef float v8f_unaligned __attribute__((vector_size(8 * sizeof(float)), aligned(sizeof(float))));
typedef float v4f_unaligned __attribute__((vector_size(4 * sizeof(float)), aligned(sizeof(float))));
typedef float v4f __attribute__((vector_size(4 * sizeof(float))));
typedef int32_t v4i __attribute__((vector_size(4 * sizeof(int32_t))));

static inline void row_copy(float *restrict d, const float *restrict src, int n)
{
    int i = 0;
    for (; i + VL <= n; i += VL)
        *(vf_unaligned *)(d + i) = *(const vf_unaligned *)(src + i);
    if (i + 8 <= n) {
        *(v8f_unaligned *)(d + i) = *(const v8f_unaligned *)(src + i);
        i += 8;
    }
    if (i + 4 <= n) {
        *(v4f_unaligned *)(d + i) = *(const v4f_unaligned *)(src + i);
        i += 4;
    }
    for (; i < n; i++)
        d[i] = src[i];
}

static inline void row_add(float *restrict d, const float *restrict src, int n)
{
    int i = 0;
    for (; i + VL <= n; i += VL)
        *(vf_unaligned *)(d + i) += *(const vf_unaligned *)(src + i);
    if (i + 8 <= n) {
        *(v8f_unaligned *)(d + i) += *(const v8f_unaligned *)(src + i);
        i += 8;
    }
    if (i + 4 <= n) {
        *(v4f_unaligned *)(d + i) += *(const v4f_unaligned *)(src + i);
        i += 4;
    }
    for (; i < n; i++)
        d[i] += src[i];
}

/* d = g where out > 0, else 0: a ReLU's backward, for a fused ReLU (see
 * pb_layer.h) as a conv reads its output gradient. */
static inline void row_relu_grad(float *restrict d, const float *restrict g, const float *restrict out,
                                 int n)
{
    int i = 0;
    for (; i + VL <= n; i += VL) {
        const vi pass = *(const vf_unaligned *)(out + i) > (vf){0};
        *(vf_unaligned *)(d + i) = (vf)((vi) * (const vf_unaligned *)(g + i) & pass);
    }
    if (i + 8 <= n) {
        const v8i pass = *(const v8f_unaligned *)(out + i) > (v8f){0};
        *(v8f_unaligned *)(d + i) = (v8f)((v8i) * (const v8f_unaligned *)(g + i) & pass);
        i += 8;
    }
    if (i + 4 <= n) {
        const v4i pass = *(const v4f_unaligned *)(out + i) > (v4f){0};
        *(v4f_unaligned *)(d + i) = (v4f)((v4i) * (const v4f_unaligned *)(g + i) & pass);
        i += 4;
    }
    for (; i < n; i++)
        d[i] = out[i] > 0.0f ? g[i] : 0.0f;
}

/* cols [ic*k*k, ld >= nb*oh*ow]: row (c,ki,kj), column (example, oy, ox). */
CLONES static void im2col(const pb_layer *l, const float *restrict x, int nb, size_t ld,
                   float *restrict cols)
{
    const int k = l->k, s = l->stride, ih = l->ih, iw = l->iw, oh = l->oh, ow = l->ow;
    const size_t ohw = (size_t)oh * ow, isz = pb_layer_isize(l), n = ld;
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
                            row_copy(d + xlo, src + xlo + off, xhi - xlo);
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
CLONES static void col2im(const pb_layer *l, const float *restrict dcols, int nb, size_t ld,
                   float *restrict dx)
{
    const int k = l->k, s = l->stride, ih = l->ih, iw = l->iw, oh = l->oh, ow = l->ow;
    const size_t ohw = (size_t)oh * ow, isz = pb_layer_isize(l), n = ld;
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
                            row_add(dst + xlo + off, d + xlo, xhi - xlo);
                        } else {
                            for (int xo = xlo; xo < xhi; xo++)
                                dst[xo * s + off] += d[xo];
                        }
                    }
                }
            }
}

/* The kernels take their register block of nb <= OB output channels as a
 * constant, so each block size gets its own unrolled code (through BLOCKS):
 * LeNet-5's 6 channels run 6 accumulators instead of 8 with two wasted. */
#if defined(CLONES_ENABLED)
#define KERNEL static inline __attribute__((always_inline, KERNEL_OPTIMIZE))
#else
#define KERNEL static inline
#endif
#define BLOCKS(nb, call)                                                                 \
    switch (nb) {                                                                        \
    case 1: call(1); break;                                                              \
    case 2: call(2); break;                                                              \
    case 3: call(3); break;                                                              \
    case 4: call(4); break;                                                              \
    case 5: call(5); break;                                                              \
    case 6: call(6); break;                                                              \
    case 7: call(7); break;                                                              \
    default: call(8); break;                                                             \
    }

/* grid[o, q] = bias[o] + sum_r wt[r, o] * xpad[shift[r] + q], o0 <= o < o0 + nb,
 * through a ReLU when relu is set (NaN passes, as in relu_forward). */
KERNEL void forward_block(const thin_ws *t, int o0, const int nb, int relu)
{
    const size_t nq = t->nq, ocp = t->ocp, rows = t->rows;
    /* two vectors of outputs at a time: each weight loaded feeds two
     * multiply-adds, and 2*nb independent sums hide the FMA latency */
    size_t q = 0;
    for (; q + 2 * VL <= nq; q += 2 * VL) {
        vf acc[OB], acc2[OB];
#pragma GCC unroll 8
        for (int j = 0; j < nb; j++)
            acc[j] = acc2[j] = (vf){0} + t->bias[o0 + j];
        for (size_t r = 0; r < rows; r++) {
            const float *restrict xr = t->xpad + t->shift[r] + q;
            const vf x = *(const vf_unaligned *)xr, x2 = *(const vf_unaligned *)(xr + VL);
            const float *restrict w = t->wt + r * ocp + o0;
#pragma GCC unroll 8
            for (int j = 0; j < nb; j++) {
                acc[j] += w[j] * x;
                acc2[j] += w[j] * x2;
            }
        }
#pragma GCC unroll 8
        for (int j = 0; j < nb; j++) {
            *(vf *)(t->grid + (o0 + j) * nq + q) = relu ? (vf)((vi)acc[j] & ~(acc[j] < (vf){0})) : acc[j];
            *(vf *)(t->grid + (o0 + j) * nq + q + VL) =
                relu ? (vf)((vi)acc2[j] & ~(acc2[j] < (vf){0})) : acc2[j];
        }
    }
    for (; q < nq; q += VL) {
        vf acc[OB];
#pragma GCC unroll 8
        for (int j = 0; j < nb; j++)
            acc[j] = (vf){0} + t->bias[o0 + j];
        for (size_t r = 0; r < rows; r++) {
            const vf x = *(const vf_unaligned *)(t->xpad + t->shift[r] + q);
            const float *restrict w = t->wt + r * ocp + o0;
#pragma GCC unroll 8
            for (int j = 0; j < nb; j++)
                acc[j] += w[j] * x;
        }
#pragma GCC unroll 8
        for (int j = 0; j < nb; j++)
            *(vf *)(t->grid + (o0 + j) * nq + q) = relu ? (vf)((vi)acc[j] & ~(acc[j] < (vf){0})) : acc[j];
    }
}

CLONES static void thin_forward(const thin_ws *t, int oc, int relu)
{
    for (int o0 = 0; o0 < oc; o0 += OB) {
#define FORWARD(n) forward_block(t, o0, n, relu)
        BLOCKS(oc - o0, FORWARD)
#undef FORWARD
    }
}

/* The forward of a layer with more than OB channels (ocp = VL), a vector of
 * all channels per output pixel: outT[p, o] at p = y*ow + x for rows y0 and
 * y0 + 1 (a row past the last is computed and dropped) and columns x0 ..
 * x0 + xb - 1, bias[o] + sum_r xpad[shift[r] + y*pw + x] * wt[r, o], into
 * grid as [oh*ow, VL]. It computes no output of the grid's columns x >= ow,
 * which are 40% of LeNet-5's conv2 grid, and adds the taps in the same order
 * as forward_block, so the outputs are the same. */
KERNEL void cv_forward_tile(const thin_ws *t, int ow, int oh, int y0, int x0, const int xb, int relu)
{
    const size_t rows = t->rows, pw = t->pw;
    vf acc[2][CV_XB];
    const vf bias = *(const vf *)t->bias;
#pragma GCC unroll 12
    for (int j = 0; j < xb; j++)
        acc[0][j] = acc[1][j] = bias;
    const float *restrict base = t->xpad + (size_t)y0 * pw + x0;
    for (size_t r = 0; r < rows; r++) {
        const vf w = *(const vf *)(t->wt + r * VL);
        const float *restrict x = base + t->shift[r], *restrict x1 = x + pw;
#pragma GCC unroll 12
        for (int j = 0; j < xb; j++) {
            acc[0][j] += x[j] * w;
            acc[1][j] += x1[j] * w;
        }
    }
    float *restrict out = t->grid + ((size_t)y0 * ow + x0) * VL;
#pragma GCC unroll 12
    for (int j = 0; j < xb; j++)
        *(vf *)(out + (size_t)j * VL) = relu ? (vf)((vi)acc[0][j] & ~(acc[0][j] < (vf){0})) : acc[0][j];
    if (y0 + 1 < oh)
#pragma GCC unroll 12
        for (int j = 0; j < xb; j++)
            *(vf *)(out + ((size_t)ow + j) * VL) =
                relu ? (vf)((vi)acc[1][j] & ~(acc[1][j] < (vf){0})) : acc[1][j];
}

/* The columns go in chunks of at most CV_XB, as even as they can be. */
CLONES static void thin_cv_forward(const thin_ws *t, int ow, int oh, int relu)
{
    const int nch = (ow + CV_XB - 1) / CV_XB, wide = (ow + nch - 1) / nch;
    for (int y0 = 0; y0 < oh; y0 += 2)
        for (int x0 = 0; x0 < ow; x0 += wide) {
            const int xb = ow - x0 < wide ? ow - x0 : wide;
#define CV(n) cv_forward_tile(t, ow, oh, y0, x0, n, relu)
            switch (xb) {
            case 1: CV(1); break;
            case 2: CV(2); break;
            case 3: CV(3); break;
            case 4: CV(4); break;
            case 5: CV(5); break;
            case 6: CV(6); break;
            case 7: CV(7); break;
            case 8: CV(8); break;
            case 9: CV(9); break;
            case 10: CV(10); break;
            case 11: CV(11); break;
            default: CV(12); break;
            }
#undef CV
        }
}

/* Transposes 16 vectors in place, v[i][j] becoming v[j][i]: four rounds of
 * two-source shuffles that swap the blocks of h = 8, 4, 2, 1 lanes between
 * rows h apart (the off-diagonal blocks of ever smaller blocks). */
#define SWAP_ROWS(h, LO, HI)                                                                 \
    _Pragma("GCC unroll 16") for (int i = 0; i < VL; i++)                                    \
        if (!(i & (h))) {                                                                    \
            const vf a = v[i], b = v[i + (h)];                                               \
            v[i] = __builtin_shufflevector(a, b, LO);                                        \
            v[i + (h)] = __builtin_shufflevector(a, b, HI);                                  \
        }
#define LO8 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23
#define HI8 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31
#define LO4 0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27
#define HI4 4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31
#define LO2 0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29
#define HI2 2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31
#define LO1 0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30
#define HI1 1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31
static inline __attribute__((always_inline)) void transpose16(vf v[VL])
{
    SWAP_ROWS(8, LO8, HI8)
    SWAP_ROWS(4, LO4, HI4)
    SWAP_ROWS(2, LO2, HI2)
    SWAP_ROWS(1, LO1, HI1)
}
#undef SWAP_ROWS
#undef LO8
#undef HI8
#undef LO4
#undef HI4
#undef LO2
#undef HI2
#undef LO1
#undef HI1

/* out[o, p] = outT[p, o] for o < oc: the cv layout back to the layer's. */
CLONES static void thin_cv_store(const float *outT, size_t ohw, int oc, float *out)
{
    vf v[VL];
    for (size_t p0 = 0; p0 < ohw; p0 += VL) {
        const size_t n = ohw - p0 < VL ? ohw - p0 : VL;
        for (int i = 0; i < VL; i++) /* rows past ohw: whatever the grid holds, not stored */
            v[i] = *(const vf *)(outT + (p0 + i) * VL);
        transpose16(v);
        for (int o = 0; o < oc; o++)
            if (n == VL)
                *(vf_unaligned *)(out + o * ohw + p0) = v[o];
            else
                row_copy(out + o * ohw + p0, (const float *)&v[o], (int)n);
    }
}

/* dyT[p, o] = dout[o, p] for o < oc (0 for the other lanes), passed only
 * where out[o, p] > 0 under a fused ReLU: the output gradient of one example
 * in the cv layout, for thin_cv_wgrad. */
CLONES static void thin_cv_load(const float *dout, const float *out, int relu, size_t ohw, int oc,
                                float *dyT)
{
    vf v[VL];
    for (size_t p0 = 0; p0 < ohw; p0 += VL) {
        const int n = ohw - p0 < VL ? (int)(ohw - p0) : VL;
        for (int o = 0; o < VL; o++) {
            v[o] = (vf){0};
            if (o >= oc)
                continue;
            if (relu)
                row_relu_grad((float *)&v[o], dout + o * ohw + p0, out + o * ohw + p0, n);
            else
                row_copy((float *)&v[o], dout + o * ohw + p0, n);
        }
        transpose16(v);
        for (int i = 0; i < n; i++)
            *(vf *)(dyT + (p0 + i) * VL) = v[i];
    }
}

/* gcv[r, o] += sum over the pixels p = (y, x) of xpad[shift[r] + y*pw + x] *
 * dyT[p, o] for the k*k taps r of input channel c, all channels o at once:
 * k*k sums in registers, each pixel's gradient loaded once and no grid
 * columns past the output. */
KERNEL void cv_wgrad_channel(const thin_ws *t, const float *restrict dyT, int c, int ow, int oh,
                             const int k)
{
    const size_t pw = t->pw;
    vf acc[CV_MAX_K][CV_MAX_K];
#pragma GCC unroll 5
    for (int ki = 0; ki < k; ki++)
#pragma GCC unroll 5
        for (int kj = 0; kj < k; kj++)
            acc[ki][kj] = (vf){0};
    const float *restrict xc = t->xpad + c * t->plane;
    for (int y = 0; y < oh; y++) {
        const float *restrict row = xc + (size_t)y * pw;
        const float *restrict d = dyT + (size_t)y * ow * VL;
        for (int x = 0; x < ow; x++) {
            const vf dv = *(const vf *)(d + (size_t)x * VL);
#pragma GCC unroll 5
            for (int ki = 0; ki < k; ki++)
#pragma GCC unroll 5
                for (int kj = 0; kj < k; kj++)
                    acc[ki][kj] += row[ki * pw + kj + x] * dv;
        }
    }
    vf *restrict g = (vf *)t->gacc + (size_t)c * k * k;
#pragma GCC unroll 5
    for (int ki = 0; ki < k; ki++)
#pragma GCC unroll 5
        for (int kj = 0; kj < k; kj++)
            g[ki * k + kj] += acc[ki][kj];
}

/* The weight and bias gradients of one example in the cv layout:
 * gacc[r, o] (as [rows + 1, VL], the bias last). */
CLONES static void thin_cv_wgrad(const thin_ws *t, const float *dyT, int ic, int k, int ow, int oh)
{
    for (int c = 0; c < ic; c++) {
#define CVW(n) cv_wgrad_channel(t, dyT, c, ow, oh, n)
        switch (k) {
        case 1: CVW(1); break;
        case 2: CVW(2); break;
        case 3: CVW(3); break;
        case 4: CVW(4); break;
        default: CVW(5); break;
        }
#undef CVW
    }
    vf sum = (vf){0};
    for (size_t p = 0; p < (size_t)ow * oh; p++)
        sum += *(const vf *)(dyT + p * VL);
    ((vf *)t->gacc)[t->rows] += sum;
}

/* Lanes of the weight gradient sum_q dgrid[o, q] * xpad[shift[r] + q] and of
 * the bias gradient sum_q dgrid[o, q], added to gacc[o, r] and gacc[o, rows]:
 * summing the lanes once per batch instead of once per example saves a
 * dependent chain of 16 additions per weight and example. */
KERNEL void wgrad_block(const thin_ws *t, int o0, const int nb)
{
    const size_t nq = t->nq, rows = t->rows;
    vf *restrict gacc = (vf *)t->gacc;
    const float *restrict d = t->dgrid + o0 * nq;
    /* two taps at a time: each load of dgrid feeds two multiply-adds */
    size_t r = 0;
    for (; r + 2 <= rows; r += 2) {
        vf acc[OB], acc2[OB];
#pragma GCC unroll 8
        for (int j = 0; j < nb; j++)
            acc[j] = acc2[j] = (vf){0};
        const float *restrict x = t->xpad + t->shift[r], *restrict x2 = t->xpad + t->shift[r + 1];
        for (size_t q = 0; q < nq; q += VL) {
            const vf xv = *(const vf_unaligned *)(x + q), xv2 = *(const vf_unaligned *)(x2 + q);
#pragma GCC unroll 8
            for (int j = 0; j < nb; j++) {
                const vf dv = *(const vf *)(d + j * nq + q);
                acc[j] += dv * xv;
                acc2[j] += dv * xv2;
            }
        }
#pragma GCC unroll 8
        for (int j = 0; j < nb; j++) {
            gacc[(o0 + j) * (rows + 1) + r] += acc[j];
            gacc[(o0 + j) * (rows + 1) + r + 1] += acc2[j];
        }
    }
    for (; r < rows; r++) {
        vf acc[OB];
#pragma GCC unroll 8
        for (int j = 0; j < nb; j++)
            acc[j] = (vf){0};
        const float *restrict x = t->xpad + t->shift[r];
        for (size_t q = 0; q < nq; q += VL) {
            const vf xv = *(const vf_unaligned *)(x + q);
#pragma GCC unroll 8
            for (int j = 0; j < nb; j++)
                acc[j] += *(const vf *)(d + j * nq + q) * xv;
        }
#pragma GCC unroll 8
        for (int j = 0; j < nb; j++)
            gacc[(o0 + j) * (rows + 1) + r] += acc[j];
    }
    for (int j = 0; j < nb; j++)
        for (size_t q = 0; q < nq; q += VL)
            gacc[(o0 + j) * (rows + 1) + rows] += *(const vf *)(d + j * nq + q);
}

CLONES static void thin_wgrad(const thin_ws *t, int oc)
{
    for (int o0 = 0; o0 < oc; o0 += OB) {
#define WGRAD(n) wgrad_block(t, o0, n)
        BLOCKS(oc - o0, WGRAD)
#undef WGRAD
    }
}

/* The gradient of taps r0 .. r0+nb-1, sum_o wr[o, r] * dgrid[o, q], into
 * their dtaps rows (row r - r0 + j0). */
KERNEL void dx_block(const thin_ws *t, int oc, size_t r0, size_t j0, const int nb)
{
    const size_t nq = t->nq, rowsp = t->rowsp, tld = t->tld;
    float *restrict dt = t->dtaps + j0 * tld + t->tpad;
    /* two vectors of positions at a time (nq is even in vectors or not) */
    size_t q = 0;
    for (; q + 2 * VL <= nq; q += 2 * VL) {
        vf acc[OB], acc2[OB];
#pragma GCC unroll 8
        for (int j = 0; j < nb; j++)
            acc[j] = acc2[j] = (vf){0};
        for (int o = 0; o < oc; o++) {
            const vf d = *(const vf *)(t->dgrid + o * nq + q), d2 = *(const vf *)(t->dgrid + o * nq + q + VL);
            const float *restrict w = t->wr + o * rowsp + r0;
#pragma GCC unroll 8
            for (int j = 0; j < nb; j++) {
                acc[j] += w[j] * d;
                acc2[j] += w[j] * d2;
            }
        }
#pragma GCC unroll 8
        for (int j = 0; j < nb; j++) {
            *(vf *)(dt + j * tld + q) = acc[j];
            *(vf *)(dt + j * tld + q + VL) = acc2[j];
        }
    }
    for (; q < nq; q += VL) {
        vf acc[OB];
#pragma GCC unroll 8
        for (int j = 0; j < nb; j++)
            acc[j] = (vf){0};
        for (int o = 0; o < oc; o++) {
            const vf d = *(const vf *)(t->dgrid + o * nq + q);
            const float *restrict w = t->wr + o * rowsp + r0;
#pragma GCC unroll 8
            for (int j = 0; j < nb; j++)
                acc[j] += w[j] * d;
        }
#pragma GCC unroll 8
        for (int j = 0; j < nb; j++)
            *(vf *)(dt + j * tld + q) = acc[j];
    }
}

/* dxpad = the sum over taps r of their gradient shifted by shift[r], one
 * input channel at a time: first the gradient of the channel's k*k taps into
 * dtaps, whose rows have zeros either side, then each vector of the channel's
 * plane as a sum of k*k loads from them, with no tap falling off a row and
 * one store per vector. (Adding each tap's row into the plane instead made
 * every load wait for the overlapping store of the tap just before.) */
CLONES static void thin_dx(const thin_ws *t, int oc, int ic, int k)
{
    const size_t kk = (size_t)k * k, pw = t->pw, tld = t->tld;
    for (int c = 0; c < ic; c++) {
        /* blocks as even as they can be: 25 taps as 7, 6, 6, 6, not 8, 8, 8, 1,
         * whose one chain of multiply-adds would wait on itself */
        const size_t nblk = (kk + OB - 1) / OB;
        for (size_t b = 0, j0 = 0; b < nblk; b++) {
            const size_t nb = (kk - j0) / (nblk - b), r0 = c * kk + j0;
#define DX(n) dx_block(t, oc, r0, j0, n)
            assert(nb >= 1 && nb <= OB);
            BLOCKS((int)nb, DX)
#undef DX
            j0 += nb;
        }
        const float *restrict dt = t->dtaps + t->tpad;
        float *restrict dst = t->dxpad + c * t->plane;
        /* four vectors at a time: four chains of additions, not one waiting
         * on itself k*k times */
        size_t p = 0;
        for (; p + 4 * VL <= t->plane; p += 4 * VL) {
            vf acc[4] = {{0}};
            for (int ki = 0; ki < k; ki++) {
                const float *restrict row = dt + (size_t)ki * k * tld + p - ki * pw;
                for (int kj = 0; kj < k; kj++)
#pragma GCC unroll 4
                    for (int i = 0; i < 4; i++)
                        acc[i] += *(const vf_unaligned *)(row + kj * tld - kj + i * VL);
            }
#pragma GCC unroll 4
            for (int i = 0; i < 4; i++)
                *(vf *)(dst + p + i * VL) = acc[i];
        }
        for (; p < t->plane; p += VL) {
            vf acc = (vf){0};
            for (int ki = 0; ki < k; ki++) {
                const float *restrict row = dt + (size_t)ki * k * tld + p - ki * pw;
                for (int kj = 0; kj < k; kj++)
                    acc += *(const vf_unaligned *)(row + kj * tld - kj);
            }
            *(vf *)(dst + p) = acc;
        }
    }
}

/* Copies one example into the interior of its zero-padded planes. */
CLONES static void thin_load_example(const pb_layer *l, const thin_ws *t, const float *x)
{
    for (int c = 0; c < l->ic; c++)
        for (int y = 0; y < l->ih; y++)
            row_copy(t->xpad + c * t->plane + (y + l->pad) * t->pw + l->pad,
                     x + ((size_t)c * l->ih + y) * l->iw, l->iw);
}

/* A layer's work on a batch, split into parts by examples (see pb_par.h). */
typedef struct batch_job {
    pb_layer *l;
    const float *x;
    float *dx;
    int B;
    int write; /* backward: overwrite dx instead of adding to it */
} batch_job;

/* Parts to split a batch of B examples into, when the layer reads or writes
 * `floats` floats in all: one below PAR_MIN_FLOATS, where waking a worker
 * costs more than it saves. */
#define PAR_MIN_FLOATS 16384

static int batch_parts(int B, size_t floats, int most)
{
    int n = pb_par_threads();
    if (n > most)
        n = most;
    if (n > B)
        n = B;
    return floats < PAR_MIN_FLOATS || n < 1 ? 1 : n;
}

CLONES static void thin_forward_part(void *ctx, int part, int nparts)
{
    const batch_job *j = ctx;
    const pb_layer *l = j->l;
    thin_ws t;
    thin_layout(l, l->ws, part, &t);
    const int oc = l->oc, oh = l->oh, ow = l->ow;
    const size_t isz = pb_layer_isize(l), osz = pb_layer_osize(l);
    const int b1 = pb_par_begin(j->B, part + 1, nparts);
    for (int b = pb_par_begin(j->B, part, nparts); b < b1; b++) {
        thin_load_example(l, &t, j->x + b * isz);
        float *out = l->out + b * osz;
        if (t.ocp == VL) {
            thin_cv_forward(&t, ow, oh, l->relu_after);
            thin_cv_store(t.grid, (size_t)oh * ow, oc, out);
            continue;
        }
        thin_forward(&t, oc, l->relu_after);
        for (int o = 0; o < oc; o++)
            for (int y = 0; y < oh; y++)
                row_copy(out + ((size_t)o * oh + y) * ow, t.grid + o * t.nq + y * t.pw, ow);
    }
}

static void thin_conv_forward(pb_layer *l, const float *x, int B)
{
    thin_ws t;
    thin_layout(l, l->ws, 0, &t);
    const int oc = l->oc;
    for (int o = 0; o < oc; o++) {
        for (size_t r = 0; r < t.rows; r++)
            t.wt[r * t.ocp + o] = l->w->w[o * t.rows + r];
        t.bias[o] = l->has_bias ? l->b->w[o] : 0.0f;
    }
    batch_job j = {l, x, NULL, B, 0};
    pb_par_run(thin_forward_part, &j,
               batch_parts(B, (size_t)B * pb_layer_osize(l), thin_parts(l)));
}

CLONES static void thin_backward_part(void *ctx, int part, int nparts)
{
    const batch_job *j = ctx;
    const pb_layer *l = j->l;
    thin_ws t;
    thin_layout(l, l->ws, part, &t);
    const int oc = l->oc, oh = l->oh, ow = l->ow;
    const size_t isz = pb_layer_isize(l), osz = pb_layer_osize(l);
    float *dx = j->dx;
    memset(t.gacc, 0, (size_t)oc * (t.rows + 1) * VL * sizeof(float));
    const int b1 = pb_par_begin(j->B, part + 1, nparts);
    for (int b = pb_par_begin(j->B, part, nparts); b < b1; b++) {
        thin_load_example(l, &t, j->x + b * isz);
        if (thin_cv_grads(l, &t)) {
            /* grid is free in backward: it holds the cv layout's dyT */
            thin_cv_load(l->dout + b * osz, l->out + b * osz, l->relu_after, (size_t)oh * ow, oc, t.grid);
            thin_cv_wgrad(&t, t.grid, l->ic, l->k, ow, oh);
            if (!dx)
                continue;
        }
        /* dgrid columns x >= ow stay zero, so the dropped outputs add nothing */
        for (int o = 0; o < oc; o++)
            for (int y = 0; y < oh; y++) {
                float *dst = t.dgrid + o * t.nq + y * t.pw;
                const size_t at = b * osz + ((size_t)o * oh + y) * ow;
                if (l->relu_after)
                    row_relu_grad(dst, l->dout + at, l->out + at, ow);
                else
                    row_copy(dst, l->dout + at, ow);
            }
        if (!thin_cv_grads(l, &t))
            thin_wgrad(&t, oc);
        if (!dx)
            continue;
        thin_dx(&t, oc, l->ic, l->k);
        for (int c = 0; c < l->ic; c++)
            for (int y = 0; y < l->ih; y++) {
                float *dst = dx + b * isz + ((size_t)c * l->ih + y) * l->iw;
                const float *src = t.dxpad + c * t.plane + (y + l->pad) * t.pw + l->pad;
                if (j->write)
                    row_copy(dst, src, l->iw);
                else
                    row_add(dst, src, l->iw);
            }
    }
}

static void thin_conv_backward(pb_layer *l, const float *x, float *dx, int B, int write)
{
    thin_ws t;
    thin_layout(l, l->ws, 0, &t);
    const int oc = l->oc;
    for (int o = 0; o < oc; o++)
        memcpy(t.wr + o * t.rowsp, l->w->w + o * t.rows, t.rows * sizeof(float));
    batch_job j = {l, x, dx, B, write};
    const int nparts = batch_parts(B, (size_t)B * pb_layer_osize(l), thin_parts(l));
    pb_par_run(thin_backward_part, &j, nparts);
    /* the parts' sums are added in part order, so the sums do not depend on
     * which part finished first */
    const int cv = thin_cv_grads(l, &t);
    const size_t nlanes = cv ? t.rows + 1 : (size_t)oc * (t.rows + 1);
    for (int p = 1; p < nparts; p++) {
        thin_ws tp;
        thin_layout(l, l->ws, p, &tp);
        for (size_t i = 0; i < nlanes; i++)
            ((vf *)t.gacc)[i] += ((const vf *)tp.gacc)[i];
    }
    if (cv) {
        for (int o = 0; o < oc; o++) {
            for (size_t r = 0; r < t.rows; r++)
                l->w->g[o * t.rows + r] += t.gacc[r * VL + o];
            if (l->has_bias)
                l->b->g[o] += t.gacc[t.rows * VL + o];
        }
        return;
    }
    for (int o = 0; o < oc; o++)
        for (size_t r = 0; r <= t.rows; r++) {
            const float *lanes = t.gacc + ((size_t)o * (t.rows + 1) + r) * VL;
            float sum = 0.0f;
            for (int i = 0; i < VL; i++)
                sum += lanes[i];
            if (r < t.rows)
                l->w->g[o * t.rows + r] += sum;
            else if (l->has_bias)
                l->b->g[o] += sum;
        }
}

static void conv_forward(pb_layer *l, const float *x, int B)
{
    if (conv_is_thin(l)) {
        thin_conv_forward(l, x, B);
        return;
    }
    const int oc = l->oc, rows = (int)conv_cols_rows(l), cb = conv_chunk(l);
    const size_t ohw = (size_t)l->oh * l->ow, isz = pb_layer_isize(l), osz = pb_layer_osize(l);
    float *cols = l->ws;
    float *tmp = l->ws + 2 * (size_t)rows * cb * ohw;
    for (int b0 = 0; b0 < B; b0 += cb) {
        const int nb = B - b0 < cb ? B - b0 : cb;
        const size_t n = (size_t)nb * ohw;
        im2col(l, x + b0 * isz, nb, n, cols);
        /* one GEMM over the whole chunk: tiny per-example GEMMs (6 x 25 x 784
         * for LeNet's conv1) leave OpenBLAS far from peak */
        gemm(CblasNoTrans, CblasNoTrans, oc, (int)n, rows, 1.0f, l->w->w, rows, cols, (int)n, 0.0f,
             tmp, (int)n);
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

static void conv_backward(pb_layer *l, const float *x, float *dx, int B, int write)
{
    if (conv_is_thin(l)) {
        thin_conv_backward(l, x, dx, B, write);
        return;
    }
    if (dx && write)
        memset(dx, 0, (size_t)B * pb_layer_isize(l) * sizeof(float));
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
            im2col(l, x + b0 * isz, nb, n, cols);
        for (int b = 0; b < nb; b++)
            for (int o = 0; o < oc; o++)
                memcpy(tmp + (size_t)o * n + b * ohw, l->dout + (b0 + b) * osz + (size_t)o * ohw,
                       ohw * sizeof(float));
        gemm(CblasNoTrans, CblasTrans, oc, rows, (int)n, 1.0f, tmp, (int)n, cols, (int)n, 1.0f,
             l->w->g, rows);
        if (l->has_bias)
            for (int o = 0; o < oc; o++) {
                const float *restrict t = tmp + (size_t)o * n;
                double acc = 0.0;
                for (size_t p = 0; p < n; p++)
                    acc += t[p];
                l->b->g[o] += (float)acc;
            }
        if (dx) {
            gemm(CblasTrans, CblasNoTrans, rows, (int)n, oc, 1.0f, l->w->w, rows, tmp, (int)n, 0.0f,
                 dcols, (int)n);
            col2im(l, dcols, nb, n, dx + b0 * isz);
        }
    }
}

/* ----------------------------------------------------------------- pools */

/* Max pooling of examples [b0, b1). */
static void maxpool_forward_any(pb_layer *l, const float *x, int b0, int b1)
{
    const int k = l->k, s = l->stride, ih = l->ih, iw = l->iw, oh = l->oh, ow = l->ow;
    const size_t isz = pb_layer_isize(l), osz = pb_layer_osize(l);
    for (int b = b0; b < b1; b++)
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

/* Index of the larger of x[i] and x[j] (j after i): NaN wins, as in PyTorch,
 * so divergence shows up in the loss; on a tie or two NaNs the scan order of
 * the generic loop decides (first maximum, last NaN). Computed without a
 * branch: which of two activations is larger is a coin toss that a branch
 * predictor gets wrong half the time. */
static inline int32_t pool_pick(const float *x, int32_t i, int32_t j)
{
    const int32_t take = (x[j] > x[i]) | (x[j] != x[j]);
    return i + ((j - i) & -take);
}

/* The 2x2 window with stride 2 of LeNet and VGG-style nets, as a tournament
 * ((a, b), (c, d)) that picks what the generic scan (a, b, c, d) picks, with
 * two independent comparisons first and no window loops. */
/* Eight outputs of the tournament at once, from 16 inputs of each row: the
 * even and odd columns are split by shuffles, and a compare's lane mask
 * (all ones or zeros) selects by bitwise and/or, the index too
 * (2 * lane - mask adds 1 where the odd column won). */

/* always_inline: compiled into each clone of the caller for its vector ISA */
__attribute__((always_inline)) static inline void pool2_eight(const float *restrict top_row,
                                                              const float *restrict bottom_row,
                                                              int iw, int32_t at, float *restrict o,
                                                              int32_t *restrict ix)
{
    const vf t = *(const vf_unaligned *)top_row, u = *(const vf_unaligned *)bottom_row;
    const v8f a = __builtin_shufflevector(t, t, 0, 2, 4, 6, 8, 10, 12, 14);
    const v8f b = __builtin_shufflevector(t, t, 1, 3, 5, 7, 9, 11, 13, 15);
    const v8f c = __builtin_shufflevector(u, u, 0, 2, 4, 6, 8, 10, 12, 14);
    const v8f d = __builtin_shufflevector(u, u, 1, 3, 5, 7, 9, 11, 13, 15);
    const v8i even = (v8i){0, 2, 4, 6, 8, 10, 12, 14} + at;
    /* take = the later of two wins, as in pool_pick */
    const v8i tt = (b > a) | (b != b), tb = (d > c) | (d != d);
    const v8i top = ((v8i)b & tt) | ((v8i)a & ~tt), bottom = ((v8i)d & tb) | ((v8i)c & ~tb);
    const v8i itop = even - tt, ibottom = even + iw - tb;
    const v8i tk = ((v8f)bottom > (v8f)top) | ((v8f)bottom != (v8f)bottom);
    const v8i best = (bottom & tk) | (top & ~tk), ibest = (ibottom & tk) | (itop & ~tk);
    memcpy(o, &best, sizeof best); /* the bits of floats; o and ix need no alignment */
    memcpy(ix, &ibest, sizeof ibest);
}

CLONES static void maxpool2_forward(pb_layer *l, const float *x, int b0, int b1)
{
    const int ih = l->ih, iw = l->iw, oh = l->oh, ow = l->ow;
    const size_t isz = pb_layer_isize(l), osz = pb_layer_osize(l);
    const float *xend = x + b1 * isz, *oend = l->out + b1 * osz;
    for (int b = b0; b < b1; b++)
        for (int c = 0; c < l->ic; c++) {
            const float *restrict xc = x + b * isz + (size_t)c * ih * iw;
            float *restrict o = l->out + b * osz + (size_t)c * oh * ow;
            int32_t *restrict ix = l->idx + b * osz + (size_t)c * oh * ow;
            const int32_t cbase = c * ih * iw;
            for (int y = 0; y < oh; y++) {
                float *restrict orow = o + y * ow;
                int32_t *restrict irow = ix + y * ow;
                if (ow < 8) {
                    /* one vector of eight, ow of them kept. The loads run
                     * past the rows (from a copy near the end of the input),
                     * the stores into the next rows, written after this one
                     * (through a copy near the end of this part's output). */
                    const int32_t at = 2 * y * iw;
                    const float *top = xc + at, *bottom = top + iw;
                    float pad[2][VL], ob[8];
                    int32_t ib[8];
                    if (bottom + VL > xend) {
                        memset(pad, 0, sizeof pad);
                        memcpy(pad[0], top, 2 * (size_t)ow * sizeof(float));
                        memcpy(pad[1], bottom, 2 * (size_t)ow * sizeof(float));
                        top = pad[0];
                        bottom = pad[1];
                    }
                    if (orow + 8 <= oend) {
                        pool2_eight(top, bottom, iw, cbase + at, orow, irow);
                        continue;
                    }
                    pool2_eight(top, bottom, iw, cbase + at, ob, ib);
                    for (int k = 0; k < ow; k++) {
                        orow[k] = ob[k];
                        irow[k] = ib[k];
                    }
                    continue;
                }
                /* the last block of eight may overlap the one before */
                for (int xo = 0;; xo += 8) {
                    if (xo > ow - 8)
                        xo = ow - 8;
                    const int32_t at = 2 * y * iw + 2 * xo;
                    pool2_eight(xc + at, xc + at + iw, iw, cbase + at, orow + xo, irow + xo);
                    if (xo == ow - 8)
                        break;
                }
            }
        }
}

static void maxpool_forward_part(void *ctx, int part, int nparts)
{
    const batch_job *j = ctx;
    const int b0 = pb_par_begin(j->B, part, nparts), b1 = pb_par_begin(j->B, part + 1, nparts);
    if (j->l->k == 2 && j->l->stride == 2)
        maxpool2_forward(j->l, j->x, b0, b1);
    else
        maxpool_forward_any(j->l, j->x, b0, b1);
}

static void maxpool_backward_part(void *ctx, int part, int nparts)
{
    const batch_job *j = ctx;
    const pb_layer *l = j->l;
    const size_t isz = pb_layer_isize(l), osz = pb_layer_osize(l);
    const int b1 = pb_par_begin(j->B, part + 1, nparts);
    for (int b = pb_par_begin(j->B, part, nparts); b < b1; b++) {
        const float *restrict d = l->dout + b * osz;
        const int32_t *restrict ix = l->idx + b * osz;
        float *restrict g = j->dx + b * isz;
        if (j->write) /* zeroed here, in cache, instead of by the model */
            memset(g, 0, isz * sizeof(float));
        for (size_t i = 0; i < osz; i++)
            g[ix[i]] += d[i];
    }
}

static void maxpool_forward(pb_layer *l, const float *x, int B)
{
    batch_job j = {l, x, NULL, B, 0};
    pb_par_run(maxpool_forward_part, &j, batch_parts(B, (size_t)B * pb_layer_isize(l), INT_MAX));
}

static void maxpool_backward(pb_layer *l, float *dx, int B, int write)
{
    batch_job j = {l, NULL, dx, B, write};
    pb_par_run(maxpool_backward_part, &j, batch_parts(B, (size_t)B * pb_layer_isize(l), INT_MAX));
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
    case PB_RELU: relu_run(relu_forward_part, l->out, x, NULL, n, 0); break;
    case PB_BN: bn_forward(l, x, B, train); break;
    case PB_FLATTEN: memcpy(l->out, x, n * sizeof(float)); break;
    case PB_ADD: add_forward(l->out, x, x2, n); break;
    case PB_DROPOUT: dropout_forward(l, x, n, train, rng); break;
    default: assert(!"unknown layer kind"); break;
    }
}

static void backward(pb_layer *l, const float *x, float *dx, float *dx2, int B, int write)
{
    assert(B >= 1 && B <= l->max_batch);
    const size_t n = (size_t)B * pb_layer_osize(l);
    switch (l->kind) {
    case PB_DENSE: dense_backward(l, x, dx, B, write); break;
    case PB_CONV: conv_backward(l, x, dx, B, write); break;
    case PB_MAXPOOL:
        if (dx)
            maxpool_backward(l, dx, B, write);
        break;
    case PB_RELU:
        if (dx)
            relu_run(relu_backward_part, dx, l->out, l->dout, n, write);
        break;
    case PB_FLATTEN:
        if (dx && write)
            memcpy(dx, l->dout, n * sizeof(float));
        else if (dx)
            add_into(dx, l->dout, n);
        break;
    default:
        if (dx && write)
            memset(dx, 0, (size_t)B * pb_layer_isize(l) * sizeof(float));
        switch (l->kind) {
        case PB_BN: bn_backward(l, dx, B); break;
        case PB_ADD:
            /* separate calls: dx and dx2 are the same buffer when a layer is added to itself */
            if (dx)
                add_into(dx, l->dout, n);
            if (dx2)
                add_into(dx2, l->dout, n);
            break;
        case PB_AVGPOOL:
            if (dx)
                avgpool_backward(l, dx, B);
            break;
        case PB_GAP:
            if (dx)
                gap_backward(l, dx, B);
            break;
        case PB_DROPOUT:
            if (dx)
                dropout_backward(l, dx, n);
            break;
        default: assert(!"unknown layer kind"); break;
        }
        break;
    }
}

void pb_layer_backward(pb_layer *l, const float *x, float *dx, float *dx2, int B)
{
    backward(l, x, dx, dx2, B, 0);
}

void pb_layer_backward_write(pb_layer *l, const float *x, float *dx, int B)
{
    assert(l->kind != PB_ADD);
    backward(l, x, dx, NULL, B, 1);
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
