/* pb_kern_conv: convolution forward and backward, as im2col and SGEMM, or
 * for thin convolutions (below) with kernels of their own; and unfold, the
 * im2col columns transposed to one row per output position. */
#include "pb_kern.h"

#include <assert.h>
#include <limits.h>
#include <string.h>

#include <cblas.h>

#include "pb_kern_vec.h"
#include "pb_par.h"

static size_t conv_cols_rows(const pb_layer *l) { return (size_t)l->ic * l->k * l->k; }

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
/* Convolutions with at most this many taps take the thin kernels whatever
 * their channels: conv4's first layer (1 to 64 channels, 9 taps) ran its
 * backward 3 to 5 times faster there than as SGEMMs of 9 columns (measured
 * with benchmarks/layer_speed). */
#define THIN_FEW_TAPS 27
#define THIN_MAX_ROWS 256
#define CV_XB 12   /* output columns per register block of thin_cv_forward */
#define CV_MAX_K 5 /* kernels up to 5x5 take thin_cv_wgrad */
#define OB 8  /* output channels (or taps) kept in registers at once;
               * the kernels' "#pragma GCC unroll 8" must match */

int pb_kern_conv_is_thin(const pb_layer *l)
{
    const size_t rows = conv_cols_rows(l);
    return l->stride == 1 && rows <= THIN_MAX_ROWS && (l->oc <= THIN_MAX_OC || rows <= THIN_FEW_TAPS);
}


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

/* Wider convolutions (ResNet-20's 32 and 64 channels, stride 2, 1x1
 * projections, conv4) run as im2col and SGEMM, in chunks of cb examples
 * small enough that a chunk's columns and outputs stay in L2 (GEMM_CHUNK_BYTES):
 * built in cache, the columns cost little to rebuild in backward, and
 * OpenBLAS runs these shapes (32 to 64 rows, a few hundred columns and
 * taps) at 130 to 170 GFLOP/s from L2 against 90 to 150 from memory. The
 * chunks are fixed by the batch (examples [i*cb, (i+1)*cb)), whatever the
 * thread count, since OpenBLAS's result for a column depends on the shape
 * it is part of; pb_par's threads take whole chunks, each part with its
 * chunk buffers and its own weight and bias gradient, which the caller adds
 * in part order. So outputs and input gradients do not depend on the thread
 * count, and the weight gradients are deterministic for a thread count,
 * like the thin kernels'. */
#define GEMM_CHUNK_BYTES ((size_t)1 << 20)
/* A full batch makes at least this many chunks, for the threads to share. */
#define GEMM_MIN_CHUNKS 8

typedef struct gemm_ws {
    int cb;               /* examples per chunk (0: a chunk is too large for SGEMM's int) */
    size_t cols_n, tmp_n; /* floats of the chunk's columns [rows, cb*ohw] and outputs [oc, cb*ohw] */
    float *cols;          /* im2col columns; in backward, then their gradient */
    float *tmp;           /* outputs (forward) or their gradient (backward), [oc, cb*ohw] */
    float *g, *gb;        /* the part's weight [oc, rows] and bias [oc] gradients */
    size_t part_n;        /* floats of one part */
} gemm_ws;

/* Winograd F(2x2, 3x3) for 3x3 convolutions of stride 1 and padding 1 on the
 * SGEMM path (ResNet-20's and conv4's): each 4x4 input tile d (2x2 outputs)
 * becomes V = B^T d B, the weights U = G g G^T, and the tile's outputs
 * A^T (U . V) A, where the 16 products U . V over the input channels are 16
 * SGEMMs [oc, ic] x [ic, tiles]: 2.25 times fewer multiply-adds than im2col's
 * SGEMM and no im2col. The input gradient is the same convolution of the
 * output gradient with the weights flipped and their channels swapped; the
 * weight gradient stays on im2col's SGEMM. Chunks of examples are fixed by
 * the batch, as for the SGEMM path, so results do not depend on the thread
 * count. The transformed arrays of a part are V [16][ch, tiles] and
 * M [16][ch, tiles] for ch the larger of ic and oc; the transformed weights
 * are shared, ahead of the parts. */
#define WINO_TILES 16 /* a 4x4 tile's transformed values */
/* Winograd wins where its SGEMMs are large enough and its tile rows fill
 * vectors: at least this many channels in and out, and images this wide.
 * Measured with one thread, batch 128 (thread CPU time): conv4's 64-64 at
 * 28x28 fwd 65 -> 42 ms, bwd 129 -> 119; 64-128 and 128-128 at 14x14 fwd
 * 88 -> 70; but ResNet-20's 32-32 at 14x14 fwd 5.1 -> 6.6 and 64-64 at 7x7
 * 4.5 -> 6.4 lost (SGEMMs of 32 or 64 deep, 4 to 7 tiles in a 16-lane row). */
#define WINO_MIN_CH 64
#define WINO_MIN_W 14
#define WINO_MAX_TW 64 /* tiles across: images up to 128 wide */
static int wino_mode = 1; /* 0: never, 1: where it wins (above), 2: every shape it supports */

static int wino_shape(const pb_layer *l)
{
    return l->k == 3 && l->stride == 1 && l->pad == 1 && (l->ow + 1) / 2 <= WINO_MAX_TW &&
           !pb_kern_conv_is_thin(l);
}

int pb_kern_conv_is_winograd(const pb_layer *l)
{
    if (!wino_mode || !wino_shape(l))
        return 0;
    return wino_mode == 2 || (l->ic >= WINO_MIN_CH && l->oc >= WINO_MIN_CH && l->ow >= WINO_MIN_W);
}

int pb_kern_conv_use_winograd(int mode)
{
    const int was = wino_mode;
    wino_mode = mode < 0 ? 0 : mode > 2 ? 2 : mode;
    return was;
}

typedef struct wino_ws {
    int cb;          /* examples per chunk */
    int th, tw;      /* tiles down and across one example */
    size_t ld;       /* floats per transformed channel row: cb*th*tw, rounded up */
    size_t ch;       /* channels of the larger side */
    float *u;        /* [16][oc, ic] (forward) or [16][ic, oc] (input gradient), shared */
    float *v, *m;    /* [16][ch, ld] transformed input, products */
    size_t shared_n, part_n;
} wino_ws;

static void wino_layout(const pb_layer *l, int max_batch, float *ws, int part, wino_ws *w)
{
    memset(w, 0, sizeof *w);
    if (!wino_shape(l))
        return;
    w->th = (l->oh + 1) / 2;
    w->tw = (l->ow + 1) / 2;
    w->ch = (size_t)(l->ic > l->oc ? l->ic : l->oc);
    const size_t tiles = (size_t)w->th * w->tw, per = 2 * WINO_TILES * w->ch * tiles * sizeof(float);
    size_t cb = GEMM_CHUNK_BYTES / per;
    const size_t most = ((size_t)max_batch + GEMM_MIN_CHUNKS - 1) / GEMM_MIN_CHUNKS;
    if (cb > most)
        cb = most;
    if (cb < 1)
        cb = 1;
    if (cb * tiles > INT_MAX / 2)
        cb = INT_MAX / 2 / tiles;
    w->cb = (int)cb;
    w->ld = round_up(cb * tiles, VL);
    w->shared_n = round_up(WINO_TILES * (size_t)l->oc * l->ic, VL);
    w->part_n = 2 * WINO_TILES * w->ch * w->ld;
    if (!ws)
        return;
    w->u = ws;
    (void)part; /* the part's v and m: see wino_part */
}

/* The layout for batches up to max_batch (chunks are never larger than what
 * one of pb_par's threads gets of it), with part `part`'s arrays when ws != NULL. */
static void gemm_layout(const pb_layer *l, int max_batch, float *ws, int part, gemm_ws *g)
{
    const size_t ohw = (size_t)l->oh * l->ow, rows = conv_cols_rows(l), oc = (size_t)l->oc;
    const size_t per = (rows + oc) * ohw * sizeof(float);
    size_t cb = GEMM_CHUNK_BYTES / per;
    const size_t most = ((size_t)max_batch + GEMM_MIN_CHUNKS - 1) / GEMM_MIN_CHUNKS;
    if (cb > most)
        cb = most;
    if (cb < 1)
        cb = 1;
    if (cb * ohw > INT_MAX || rows * ohw > INT_MAX) /* SGEMM dimensions are int */
        cb = INT_MAX / (ohw * (rows > 1 ? rows : 1));
    g->cb = (int)cb;
    g->cols_n = round_up(rows * cb * ohw, VL);
    g->tmp_n = round_up(oc * cb * ohw, VL);
    g->part_n = g->cols_n + g->tmp_n + round_up(oc * rows, VL) + round_up(oc, VL);
    /* a Winograd layer's parts hold either layout (see wino_layout) */
    wino_ws w;
    wino_layout(l, max_batch, NULL, 0, &w);
    if (w.part_n > g->part_n)
        g->part_n = w.part_n;
    float *p = ws ? ws + w.shared_n + (size_t)part * g->part_n : NULL;
    g->cols = p;
    g->tmp = p ? p + g->cols_n : NULL;
    g->g = p ? g->tmp + g->tmp_n : NULL;
    g->gb = p ? g->g + round_up(oc * rows, VL) : NULL;
}

/* Floats of workspace for batches up to max_batch: the thin layout for each
 * of pb_par's threads, else im2col chunks of at most CONV_WS_BYTES; 0 when
 * one example's output is too large for SGEMM's int dimensions. */
size_t pb_kern_conv_ws(const pb_layer *l, int max_batch)
{
    if (pb_kern_conv_is_thin(l)) {
        thin_ws t;
        thin_layout(l, NULL, 0, &t);
        return t.shared_n + (size_t)pb_par_threads() * t.part_n;
    }
    gemm_ws g;
    gemm_layout(l, max_batch, NULL, 0, &g);
    if (g.cb == 0)
        return 0;
    wino_ws w;
    wino_layout(l, max_batch, NULL, 0, &w);
    return w.shared_n + (size_t)pb_par_threads() * g.part_n;
}
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

/* Output rows [*ylo, *yhi) of kernel row ki read inside the input; with
 * stride 1 and ow == iw ("same" convolutions) their im2col rows are one
 * contiguous run of the input plane, shifted by (ki - pad) * iw + kj - pad,
 * except the columns outside [xlo, xhi), which fall on padding: im2col and
 * col2im move such a run as one vector copy instead of rows of 7 or 14
 * floats one at a time. */
static int conv_same_run(const pb_layer *l, int ki, int *ylo, int *yhi)
{
    if (l->stride != 1 || l->ow != l->iw)
        return 0;
    int lo = l->pad - ki, hi = l->ih + l->pad - ki;
    lo = lo < 0 ? 0 : lo;
    hi = hi > l->oh ? l->oh : hi;
    *ylo = lo;
    *yhi = hi < lo ? lo : hi;
    return 1;
}

/* cols [ic*k*k, ld >= nb*oh*ow]: row (c,ki,kj), column (example, oy, ox). */
CLONES static void im2col(const pb_layer *l, const float *restrict x, int nb, size_t ld,
                   float *restrict cols)
{
    const int k = l->k, s = l->stride, ih = l->ih, iw = l->iw, oh = l->oh, ow = l->ow;
    const size_t ohw = (size_t)oh * ow, isz = pb_layer_isize(l), n = ld, plane = (size_t)ih * iw;
    for (int c = 0; c < l->ic; c++)
        for (int ki = 0; ki < k; ki++)
            for (int kj = 0; kj < k; kj++) {
                int xlo, xhi, ylo, yhi;
                conv_xrange(l, kj, &xlo, &xhi);
                const int off = kj - l->pad;
                float *restrict row = cols + ((size_t)(c * k + ki) * k + kj) * n;
                if (conv_same_run(l, ki, &ylo, &yhi)) {
                    const long start = (long)(ylo + ki - l->pad) * iw + off, len = (long)(yhi - ylo) * ow;
                    /* the run's first and last floats may lie outside the
                     * plane; they are padding columns, zeroed below */
                    const long a = start < 0 ? -start : 0;
                    const long e = start + len > (long)plane ? (long)plane - start : len;
                    for (int b = 0; b < nb; b++) {
                        const float *restrict xc = x + b * isz + (size_t)c * plane;
                        float *restrict d = row + b * ohw;
                        memset(d, 0, (size_t)ylo * ow * sizeof(float));
                        memset(d + (size_t)yhi * ow, 0, (size_t)(oh - yhi) * ow * sizeof(float));
                        float *restrict dr = d + (size_t)ylo * ow;
                        if (e > a)
                            row_copy(dr + a, xc + start + a, (int)(e - a));
                        for (int y = 0; y < yhi - ylo; y++) {
                            for (int xo = 0; xo < xlo; xo++)
                                dr[(size_t)y * ow + xo] = 0.0f;
                            for (int xo = xhi; xo < ow; xo++)
                                dr[(size_t)y * ow + xo] = 0.0f;
                        }
                        for (long i = 0; i < a && i < len; i++)
                            dr[i] = 0.0f;
                        for (long i = e > a ? e : a; i < len; i++)
                            dr[i] = 0.0f;
                    }
                    continue;
                }
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

/* Adjoint of im2col: dx += scatter(dcols); padding positions are dropped.
 * The runs of conv_same_run are added whole after their padding columns are
 * zeroed (dcols is scratch), so what lands on a neighbouring row adds 0. */
CLONES static void col2im(const pb_layer *l, float *restrict dcols, int nb, size_t ld,
                   float *restrict dx)
{
    const int k = l->k, s = l->stride, ih = l->ih, iw = l->iw, oh = l->oh, ow = l->ow;
    const size_t ohw = (size_t)oh * ow, isz = pb_layer_isize(l), n = ld, plane = (size_t)ih * iw;
    for (int c = 0; c < l->ic; c++)
        for (int ki = 0; ki < k; ki++)
            for (int kj = 0; kj < k; kj++) {
                int xlo, xhi, ylo, yhi;
                conv_xrange(l, kj, &xlo, &xhi);
                const int off = kj - l->pad;
                float *restrict row = dcols + ((size_t)(c * k + ki) * k + kj) * n;
                if (conv_same_run(l, ki, &ylo, &yhi)) {
                    const long start = (long)(ylo + ki - l->pad) * iw + off, len = (long)(yhi - ylo) * ow;
                    const long a = start < 0 ? -start : 0;
                    const long e = start + len > (long)plane ? (long)plane - start : len;
                    for (int b = 0; b < nb; b++) {
                        float *restrict xc = dx + b * isz + (size_t)c * plane;
                        float *restrict dr = row + b * ohw + (size_t)ylo * ow;
                        for (int y = 0; y < yhi - ylo; y++) {
                            for (int xo = 0; xo < xlo; xo++)
                                dr[(size_t)y * ow + xo] = 0.0f;
                            for (int xo = xhi; xo < ow; xo++)
                                dr[(size_t)y * ow + xo] = 0.0f;
                        }
                        if (e > a)
                            row_add(xc + start + a, dr + a, (int)(e - a));
                    }
                    continue;
                }
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

/* rows [nb*oh*ow, ic*k*k]: row (example, oy, ox), column (c, ki, kj) as in
 * the weights, so out = rows x weights^T + bias: im2col's layout transposed,
 * for callers that want one row per output position (calibration). Window
 * row (c, ki) is k consecutive floats of input row iy, of which taps
 * [lo, hi) fall inside the row and the rest on padding. */
void pb_kern_conv_unfold(const pb_layer *l, const float *x, int nb, float *rows)
{
    const int k = l->k, s = l->stride, ih = l->ih, iw = l->iw;
    const size_t isz = pb_layer_isize(l), ncols = conv_cols_rows(l);
    float *restrict r = rows;
    for (int b = 0; b < nb; b++)
        for (int y = 0; y < l->oh; y++)
            for (int xo = 0; xo < l->ow; xo++, r += ncols) {
                const int x0 = xo * s - l->pad;
                int lo = x0 < 0 ? -x0 : 0, hi = iw - x0 < k ? iw - x0 : k;
                if (lo > k)
                    lo = k;
                if (hi < lo)
                    hi = lo;
                for (int c = 0; c < l->ic; c++)
                    for (int ki = 0; ki < k; ki++) {
                        float *restrict d = r + ((size_t)c * k + ki) * k;
                        const int iy = y * s - l->pad + ki;
                        if (iy < 0 || iy >= ih) {
                            memset(d, 0, (size_t)k * sizeof(float));
                            continue;
                        }
                        const float *restrict src = x + b * isz + ((size_t)c * ih + iy) * iw;
                        for (int kj = 0; kj < lo; kj++)
                            d[kj] = 0.0f;
                        if (hi > lo)
                            row_copy(d + lo, src + x0 + lo, hi - lo);
                        for (int kj = hi; kj < k; kj++)
                            d[kj] = 0.0f;
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

/* o = src + bias, through a ReLU when relu is set (NaN passes) */
CLONES static void bias_store(float *restrict o, const float *restrict src, size_t n, float bias, int relu)
{
    const vf bv = bias - (vf){0};
    size_t i = 0;
    for (; i + VL <= n; i += VL) {
        const vf v = *(const vf_unaligned *)(src + i) + bv;
        *(vf_unaligned *)(o + i) = relu ? (vf)((vi)v & ~(v < (vf){0})) : v;
    }
    for (; i < n; i++) {
        const float v = src[i] + bias;
        o[i] = relu && v < 0.0f ? 0.0f : v;
    }
}

CLONES static float row_sum(const float *restrict x, size_t n)
{
    vf a = {0};
    size_t i = 0;
    for (; i + VL <= n; i += VL)
        a += *(const vf_unaligned *)(x + i);
    float s = 0.0f;
    for (int k = 0; k < VL; k++)
        s += a[k];
    for (; i < n; i++)
        s += x[i];
    return s;
}

/* Part `part`'s chunks, one at a time. */
static void gemm_forward_part(void *ctx, int part, int nparts)
{
    const batch_job *j = ctx;
    pb_layer *l = j->l;
    gemm_ws g;
    gemm_layout(l, l->max_batch, l->ws, part, &g);
    const int oc = l->oc, rows = (int)conv_cols_rows(l);
    const size_t ohw = (size_t)l->oh * l->ow, isz = pb_layer_isize(l), osz = pb_layer_osize(l);
    const int nchunks = (j->B + g.cb - 1) / g.cb, c1 = pb_par_begin(nchunks, part + 1, nparts);
    for (int ch = pb_par_begin(nchunks, part, nparts); ch < c1; ch++) {
        const int b0 = ch * g.cb, nb = j->B - b0 < g.cb ? j->B - b0 : g.cb;
        const int n = (int)((size_t)nb * ohw);
        im2col(l, j->x + b0 * isz, nb, (size_t)n, g.cols);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, oc, n, rows, 1.0f, l->w->w, rows, g.cols, n,
                    0.0f, g.tmp, n);
        for (int b = 0; b < nb; b++)
            for (int o = 0; o < oc; o++)
                bias_store(l->out + (b0 + b) * osz + (size_t)o * ohw, g.tmp + (size_t)o * n + b * ohw, ohw,
                           l->has_bias ? l->b->w[o] : 0.0f, l->relu_after);
    }
}

static void gemm_backward_part(void *ctx, int part, int nparts)
{
    const batch_job *j = ctx;
    pb_layer *l = j->l;
    gemm_ws g;
    gemm_layout(l, l->max_batch, l->ws, part, &g);
    const int oc = l->oc, rows = (int)conv_cols_rows(l);
    const size_t ohw = (size_t)l->oh * l->ow, isz = pb_layer_isize(l), osz = pb_layer_osize(l);
    memset(g.g, 0, ((size_t)oc * rows) * sizeof(float));
    memset(g.gb, 0, (size_t)oc * sizeof(float));
    const int nchunks = (j->B + g.cb - 1) / g.cb, c1 = pb_par_begin(nchunks, part + 1, nparts);
    for (int ch = pb_par_begin(nchunks, part, nparts); ch < c1; ch++) {
        const int b0 = ch * g.cb, nb = j->B - b0 < g.cb ? j->B - b0 : g.cb;
        const int n = (int)((size_t)nb * ohw);
        im2col(l, j->x + b0 * isz, nb, (size_t)n, g.cols);
        for (int b = 0; b < nb; b++)
            for (int o = 0; o < oc; o++) {
                float *dst = g.tmp + (size_t)o * n + b * ohw;
                const size_t at = (b0 + b) * osz + (size_t)o * ohw;
                if (l->relu_after)
                    row_relu_grad(dst, l->dout + at, l->out + at, (int)ohw);
                else
                    row_copy(dst, l->dout + at, (int)ohw);
            }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, oc, rows, n, 1.0f, g.tmp, n, g.cols, n, 1.0f,
                    g.g, rows);
        if (l->has_bias)
            for (int o = 0; o < oc; o++)
                g.gb[o] += row_sum(g.tmp + (size_t)o * n, (size_t)n);
        if (!j->dx)
            continue;
        /* the columns are spent: their gradient takes their place */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, rows, n, oc, 1.0f, l->w->w, rows, g.tmp, n, 0.0f,
                    g.cols, n);
        float *dx = j->dx + b0 * isz;
        if (j->write)
            memset(dx, 0, (size_t)nb * isz * sizeof(float));
        col2im(l, g.cols, nb, (size_t)n, dx);
    }
}


/* ---- Winograd F(2x2, 3x3) (see wino_layout) ---- */

/* Part `part`'s v and m, in the part's block of the SGEMM path's layout. */
static void wino_part(const pb_layer *l, int part, wino_ws *w)
{
    wino_layout(l, l->max_batch, l->ws, part, w);
    gemm_ws g;
    gemm_layout(l, l->max_batch, l->ws, part, &g);
    w->v = g.cols;
    w->m = w->v + WINO_TILES * w->ch * w->ld;
}

/* u[t][a, b] = (G g G^T)[t] of the 3x3 kernel g = w[a, b] (flip: of
 * w[b, a] turned by 180 degrees, for the input gradient), a < na, b < nb. */
static void wino_weights(const float *wt, int na, int nb, int flip, float *u)
{
    const size_t st = (size_t)na * nb;
    for (int a = 0; a < na; a++)
        for (int b = 0; b < nb; b++) {
            float g[9];
            for (int i = 0; i < 9; i++)
                g[i] = flip ? wt[((size_t)b * na + a) * 9 + 8 - i] : wt[((size_t)a * nb + b) * 9 + i];
            float r[4][3];
            for (int j = 0; j < 3; j++) {
                r[0][j] = g[j];
                r[1][j] = 0.5f * (g[j] + g[3 + j] + g[6 + j]);
                r[2][j] = 0.5f * (g[j] - g[3 + j] + g[6 + j]);
                r[3][j] = g[6 + j];
            }
            float *d = u + (size_t)a * nb + b;
            for (int i = 0; i < 4; i++) {
                d[(4 * i + 0) * st] = r[i][0];
                d[(4 * i + 1) * st] = 0.5f * (r[i][0] + r[i][1] + r[i][2]);
                d[(4 * i + 2) * st] = 0.5f * (r[i][0] - r[i][1] + r[i][2]);
                d[(4 * i + 3) * st] = r[i][2];
            }
        }
}


/* v[t][c, tile] = (B^T d B)[t] of the nb examples' tiles, channels c < nc
 * of planes h x w (example stride esz); where mask is set, x is taken only
 * where mask > 0 (a fused ReLU's backward). A tile row goes at once: the
 * four input rows are split into even and odd columns (e[k] = row[2k-1],
 * o[k] = row[2k], zero outside), so that the transform along the rows is
 * vector arithmetic over the tiles. */
/* Even and odd floats of p[0 .. 2*n): e[k] = p[2k], o[k] = p[2k+1], for
 * whole vectors (p readable to 2*VL past 2*n rounded up). */
static inline void deinterleave(const float *restrict p, float *restrict e, float *restrict o, int n)
{
    const vi ev = {0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30};
    const vi od = ev + 1;
    for (int k = 0; k < n; k += VL) {
        const vf a = *(const vf_unaligned *)(p + 2 * k), b = *(const vf_unaligned *)(p + 2 * k + VL);
        *(vf *)(e + k) = __builtin_shuffle(a, b, ev);
        *(vf *)(o + k) = __builtin_shuffle(a, b, od);
    }
}

/* p[2k] = e[k], p[2k+1] = o[k], k < n rounded up to vectors. */
static inline void interleave(const float *restrict e, const float *restrict o, float *restrict p, int n)
{
    const vi lo = {0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23};
    const vi hi = lo + 8;
    for (int k = 0; k < n; k += VL) {
        const vf a = *(const vf *)(e + k), b = *(const vf *)(o + k);
        *(vf *)(p + 2 * k) = __builtin_shuffle(a, b, lo);
        *(vf *)(p + 2 * k + VL) = __builtin_shuffle(a, b, hi);
    }
}

#define WINO_ROW (2 * WINO_MAX_TW + 4 * VL) /* floats of a padded row buffer */

/* v[t][c, tile] = (B^T d B)[t] of the nb examples' tiles, channels c < nc
 * of planes h x w (example stride esz); where mask is set, x is taken only
 * where mask > 0 (a fused ReLU's backward). A tile row goes at once: each of
 * its four input rows is copied into a zero-padded row (column -1 first)
 * and split into even and odd columns, e[k] = row[2k-1], o[k] = row[2k], so
 * that the tile (k) reads e[k], o[k], e[k+1], o[k+1], and both transforms
 * are vector arithmetic over the tiles. */
CLONES static void wino_input(const float *x, const float *mask, size_t esz, int nc, int h, int w, int nb,
                              const wino_ws *ws)
{
    const int th = ws->th, tw = ws->tw, tiles = th * tw;
    const size_t ld = ws->ld, tstride = ws->ch * ld;
    const int nv = (tw + VL - 1) / VL;
    float p[WINO_ROW] __attribute__((aligned(64)));
    float e[4][WINO_MAX_TW + 2 * VL] __attribute__((aligned(64)));
    float o[4][WINO_MAX_TW + 2 * VL] __attribute__((aligned(64)));
    float out[WINO_TILES][WINO_MAX_TW + VL] __attribute__((aligned(64)));
    memset(p, 0, sizeof p); /* p[0] and p[w+1 ..] stay zero */
    for (int c = 0; c < nc; c++)
        for (int b = 0; b < nb; b++) {
            const float *xc = x + b * esz + (size_t)c * h * w;
            const float *mc = mask ? mask + b * esz + (size_t)c * h * w : NULL;
            for (int ty = 0; ty < th; ty++) {
                for (int i = 0; i < 4; i++) {
                    const int y = 2 * ty - 1 + i;
                    if (y < 0 || y >= h) {
                        memset(e[i], 0, sizeof e[i]);
                        memset(o[i], 0, sizeof o[i]);
                        continue;
                    }
                    if (mc)
                        row_relu_grad(p + 1, xc + (size_t)y * w, mc + (size_t)y * w, w);
                    else
                        row_copy(p + 1, xc + (size_t)y * w, w);
                    deinterleave(p, e[i], o[i], tw + 1);
                }
                for (int v = 0; v < nv; v++) {
                    const int k = v * VL;
                    vf e0[4], e1[4], o0[4], o1[4];
#pragma GCC unroll 4
                    for (int i = 0; i < 4; i++) {
                        e0[i] = *(const vf *)(e[i] + k);
                        e1[i] = *(const vf_unaligned *)(e[i] + k + 1);
                        o0[i] = *(const vf *)(o[i] + k);
                        o1[i] = *(const vf_unaligned *)(o[i] + k + 1);
                    }
                    /* down the columns: rows d0 - d2, d1 + d2, d2 - d1, d1 - d3 */
                    vf ce[4], ce1[4], co[4], co1[4];
                    ce[0] = e0[0] - e0[2], ce[1] = e0[1] + e0[2], ce[2] = e0[2] - e0[1], ce[3] = e0[1] - e0[3];
                    ce1[0] = e1[0] - e1[2], ce1[1] = e1[1] + e1[2], ce1[2] = e1[2] - e1[1], ce1[3] = e1[1] - e1[3];
                    co[0] = o0[0] - o0[2], co[1] = o0[1] + o0[2], co[2] = o0[2] - o0[1], co[3] = o0[1] - o0[3];
                    co1[0] = o1[0] - o1[2], co1[1] = o1[1] + o1[2], co1[2] = o1[2] - o1[1], co1[3] = o1[1] - o1[3];
                    /* along the rows: the tile's columns are e[k], o[k], e[k+1], o[k+1] */
#pragma GCC unroll 4
                    for (int i = 0; i < 4; i++) {
                        *(vf *)(out[4 * i + 0] + k) = ce[i] - ce1[i];
                        *(vf *)(out[4 * i + 1] + k) = co[i] + ce1[i];
                        *(vf *)(out[4 * i + 2] + k) = ce1[i] - co[i];
                        *(vf *)(out[4 * i + 3] + k) = co[i] - co1[i];
                    }
                }
                float *d = ws->v + (size_t)c * ld + (size_t)b * tiles + (size_t)ty * tw;
                for (int t = 0; t < WINO_TILES; t++)
                    row_copy(d + t * tstride, out[t], tw);
            }
        }
}

/* y = (A^T m A) of the tiles, channels c < nc, into planes h x w (example
 * stride esz): y = value + bias (through a ReLU when relu is set), or, for
 * an input gradient, y += value. */
CLONES static void wino_output(const wino_ws *ws, int nc, int h, int w, int nb, size_t esz, float *y,
                               const float *bias, int relu, int accumulate)
{
    const int th = ws->th, tw = ws->tw, tiles = th * tw;
    const size_t ld = ws->ld, tstride = ws->ch * ld;
    const int nv = (tw + VL - 1) / VL;
    float r[4][WINO_MAX_TW + VL] __attribute__((aligned(64)));
    float in[WINO_TILES][WINO_MAX_TW + VL] __attribute__((aligned(64)));
    float p[WINO_ROW] __attribute__((aligned(64)));
    memset(in, 0, sizeof in); /* lanes past tw: computed, never stored */
    for (int c = 0; c < nc; c++) {
        const float bv = bias ? bias[c] : 0.0f;
        for (int b = 0; b < nb; b++) {
            float *yc = y + b * esz + (size_t)c * h * w;
            for (int ty = 0; ty < th; ty++) {
                const float *src = ws->m + (size_t)c * ld + (size_t)b * tiles + (size_t)ty * tw;
                for (int t = 0; t < WINO_TILES; t++)
                    row_copy(in[t], src + t * tstride, tw);
                for (int v = 0; v < nv; v++) {
                    const int k = v * VL;
                    vf m[WINO_TILES];
#pragma GCC unroll 16
                    for (int t = 0; t < WINO_TILES; t++)
                        m[t] = *(const vf *)(in[t] + k);
                    vf s0[4], s1[4];
#pragma GCC unroll 4
                    for (int j = 0; j < 4; j++) {
                        s0[j] = m[j] + m[4 + j] + m[8 + j];
                        s1[j] = m[4 + j] - m[8 + j] - m[12 + j];
                    }
                    *(vf *)(r[0] + k) = s0[0] + s0[1] + s0[2];
                    *(vf *)(r[1] + k) = s0[1] - s0[2] - s0[3];
                    *(vf *)(r[2] + k) = s1[0] + s1[1] + s1[2];
                    *(vf *)(r[3] + k) = s1[1] - s1[2] - s1[3];
                }
                for (int i = 0; i < 2 && 2 * ty + i < h; i++) {
                    float *row = yc + (size_t)(2 * ty + i) * w;
                    interleave(r[2 * i], r[2 * i + 1], p, tw);
                    if (accumulate)
                        row_add(row, p, w);
                    else
                        bias_store(row, p, (size_t)w, bv, relu);
                }
            }
        }
    }
}

/* The 16 products of one chunk: m[t] = u[t] [na, nk] x v[t] [nk, n]. */
static void wino_products(const wino_ws *w, int na, int nk, int n)
{
    const size_t tstride = w->ch * w->ld, ust = (size_t)na * nk;
    for (int t = 0; t < WINO_TILES; t++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, na, n, nk, 1.0f, w->u + t * ust, nk,
                    w->v + t * tstride, (int)w->ld, 0.0f, w->m + t * tstride, (int)w->ld);
}

static void wino_forward_part(void *ctx, int part, int nparts)
{
    const batch_job *j = ctx;
    pb_layer *l = j->l;
    wino_ws w;
    wino_part(l, part, &w);
    const size_t isz = pb_layer_isize(l), osz = pb_layer_osize(l);
    const int nchunks = (j->B + w.cb - 1) / w.cb, c1 = pb_par_begin(nchunks, part + 1, nparts);
    for (int ch = pb_par_begin(nchunks, part, nparts); ch < c1; ch++) {
        const int b0 = ch * w.cb, nb = j->B - b0 < w.cb ? j->B - b0 : w.cb;
        wino_input(j->x + b0 * isz, NULL, isz, l->ic, l->ih, l->iw, nb, &w);
        wino_products(&w, l->oc, l->ic, nb * w.th * w.tw);
        wino_output(&w, l->oc, l->oh, l->ow, nb, osz, l->out + b0 * osz, l->has_bias ? l->b->w : NULL,
                    l->relu_after, 0);
    }
}

/* The input gradient: the output gradient (where out > 0 under a fused
 * ReLU) convolved with the flipped weights. */
static void wino_dx_part(void *ctx, int part, int nparts)
{
    const batch_job *j = ctx;
    pb_layer *l = j->l;
    wino_ws w;
    wino_part(l, part, &w);
    const size_t isz = pb_layer_isize(l), osz = pb_layer_osize(l);
    const int nchunks = (j->B + w.cb - 1) / w.cb, c1 = pb_par_begin(nchunks, part + 1, nparts);
    for (int ch = pb_par_begin(nchunks, part, nparts); ch < c1; ch++) {
        const int b0 = ch * w.cb, nb = j->B - b0 < w.cb ? j->B - b0 : w.cb;
        wino_input(l->dout + b0 * osz, l->relu_after ? l->out + b0 * osz : NULL, osz, l->oc, l->oh, l->ow, nb,
                   &w);
        wino_products(&w, l->ic, l->oc, nb * w.th * w.tw);
        float *dx = j->dx + b0 * isz;
        if (j->write)
            memset(dx, 0, (size_t)nb * isz * sizeof(float));
        wino_output(&w, l->ic, l->ih, l->iw, nb, isz, dx, NULL, 0, 1);
    }
}

static int wino_parts(const pb_layer *l, int B)
{
    wino_ws w;
    wino_layout(l, l->max_batch, NULL, 0, &w);
    gemm_ws g;
    gemm_layout(l, l->max_batch, NULL, 0, &g);
    const int room = (int)((l->ws_n - w.shared_n) / g.part_n), nchunks = (B + w.cb - 1) / w.cb;
    return room < nchunks ? room : nchunks;
}

/* Parts a batch of B examples can take: no more than the workspace has room
 * for, nor than its chunks. */
static int gemm_parts(const pb_layer *l, const gemm_ws *g, int B)
{
    wino_ws w;
    wino_layout(l, l->max_batch, NULL, 0, &w);
    const int room = (int)((l->ws_n - w.shared_n) / g->part_n), nchunks = (B + g->cb - 1) / g->cb;
    return room < nchunks ? room : nchunks;
}

void pb_kern_conv_forward(pb_layer *l, const float *x, int B)
{
    if (pb_kern_conv_is_thin(l)) {
        thin_conv_forward(l, x, B);
        return;
    }
    if (pb_kern_conv_is_winograd(l)) {
        wino_ws w;
        wino_layout(l, l->max_batch, l->ws, 0, &w);
        wino_weights(l->w->w, l->oc, l->ic, 0, w.u);
        batch_job j = {l, x, NULL, B, 0};
        pb_par_run(wino_forward_part, &j, batch_parts(B, (size_t)B * pb_layer_osize(l), wino_parts(l, B)));
        return;
    }
    gemm_ws g;
    gemm_layout(l, l->max_batch, l->ws, 0, &g);
    batch_job j = {l, x, NULL, B, 0};
    pb_par_run(gemm_forward_part, &j, batch_parts(B, (size_t)B * pb_layer_osize(l), gemm_parts(l, &g, B)));
}

void pb_kern_conv_backward(pb_layer *l, const float *x, float *dx, int B, int write)
{
    if (pb_kern_conv_is_thin(l)) {
        thin_conv_backward(l, x, dx, B, write);
        return;
    }
    gemm_ws g;
    gemm_layout(l, l->max_batch, l->ws, 0, &g);
    const int wino = dx && pb_kern_conv_is_winograd(l);
    /* under Winograd the SGEMM path computes the weight gradient only */
    batch_job j = {l, x, wino ? NULL : dx, B, write};
    const int nparts = batch_parts(B, (size_t)B * pb_layer_osize(l), gemm_parts(l, &g, B));
    pb_par_run(gemm_backward_part, &j, nparts);

    /* the parts' sums are added in part order, so the sums do not depend on
     * which part finished first */
    const size_t nw = (size_t)l->oc * conv_cols_rows(l);
    for (int p = 0; p < nparts; p++) {
        gemm_ws gp;
        gemm_layout(l, l->max_batch, l->ws, p, &gp);
        pb_kern_add_into(l->w->g, gp.g, nw);
        if (l->has_bias)
            pb_kern_add_into(l->b->g, gp.gb, (size_t)l->oc);
    }
    /* after the sums: the Winograd arrays overlap the parts' gradients */
    if (wino) {
        wino_ws w;
        wino_layout(l, l->max_batch, l->ws, 0, &w);
        wino_weights(l->w->w, l->ic, l->oc, 1, w.u);
        batch_job jd = {l, x, dx, B, write};
        pb_par_run(wino_dx_part, &jd, batch_parts(B, (size_t)B * pb_layer_osize(l), wino_parts(l, B)));
    }
}
