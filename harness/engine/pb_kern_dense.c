/* pb_kern_dense: SGEMM on pb_par's threads, and the dense layer on it. */
#include "pb_kern.h"

#include <cblas.h>

#include "pb_par.h"

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
void pb_kern_gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int m, int n, int k, float alpha,
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

void pb_kern_dense_forward(pb_layer *l, const float *x, int B)
{
    const int in = (int)pb_layer_isize(l), oc = l->oc;
    pb_kern_gemm(CblasNoTrans, CblasTrans, B, oc, in, 1.0f, x, in, l->w->w, in, 0.0f, l->out, oc);
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

void pb_kern_dense_backward(pb_layer *l, const float *x, float *dx, int B, int write)
{
    const int in = (int)pb_layer_isize(l), oc = l->oc;
    pb_kern_gemm(CblasTrans, CblasNoTrans, oc, in, B, 1.0f, l->dout, oc, x, in, 1.0f, l->w->g, in);
    if (l->has_bias)
        bias_grad_rows(l->b->g, l->dout, B, oc);
    if (dx)
        pb_kern_gemm(CblasNoTrans, CblasNoTrans, B, in, oc, 1.0f, l->dout, oc, l->w->w, in,
                     write ? 0.0f : 1.0f, dx, in);
}
