/* pb_kern_pool: max and average pooling over k x k windows, and global
 * average pooling. */
#include "pb_kern.h"

#include <limits.h>
#include <string.h>

#include "pb_kern_vec.h"
#include "pb_par.h"

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

void pb_kern_maxpool_forward(pb_layer *l, const float *x, int B)
{
    batch_job j = {l, x, NULL, B, 0};
    pb_par_run(maxpool_forward_part, &j, batch_parts(B, (size_t)B * pb_layer_isize(l), INT_MAX));
}

void pb_kern_maxpool_backward(pb_layer *l, float *dx, int B, int write)
{
    batch_job j = {l, NULL, dx, B, write};
    pb_par_run(maxpool_backward_part, &j, batch_parts(B, (size_t)B * pb_layer_isize(l), INT_MAX));
}

void pb_kern_avgpool_forward(pb_layer *l, const float *x, int B)
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

void pb_kern_avgpool_backward(pb_layer *l, float *dx, int B)
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

void pb_kern_gap_forward(pb_layer *l, const float *x, int B)
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

void pb_kern_gap_backward(pb_layer *l, float *dx, int B)
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
