/* pb_kern: the compute kernels behind pb_layer's table of layer kinds,
 * internal to the engine.
 *
 * Dense and conv layers run on OpenBLAS SGEMM, except thin convolutions
 * (pb_kern_conv.c), which have kernels of their own; the other kinds are
 * plain or vector loops. gcc -O2 does not vectorize loops, so the hot ones (thin
 * convolutions, ReLU, short-row copies) use GCC vector extensions and are
 * cloned for AVX-512 and AVX2 (pb_kern_vec.h). Nothing here allocates: the
 * buffers are the layer's, sized by pb_layer_alloc. Thin convolutions, max
 * pooling and ReLU split the batch across pb_par's threads; each part writes
 * its own examples or its own partial sums, added in part order, so a run
 * with a given thread count is as deterministic as OpenBLAS is.
 *
 * Kernels take the layer for its shape, parameters and buffers, read the
 * input x, write l->out (forward) and ADD to dx (backward) unless `write`
 * asks them to overwrite it. */
#ifndef PB_KERN_H
#define PB_KERN_H

#include <stddef.h>

#include <cblas.h>

#include "pb_layer.h"
#include "pb_util.h"

/* pb_kern_dense.c: cblas_sgemm (row-major) split across pb_par's threads,
 * and the dense layer on it. */
void pb_kern_gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int m, int n, int k, float alpha,
                  const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc);
void pb_kern_dense_forward(pb_layer *l, const float *x, int B);
void pb_kern_dense_backward(pb_layer *l, const float *x, float *dx, int B, int write);

/* pb_kern_conv.c. Whether a conv takes the thin kernels; the floats of workspace it needs
 * for batches up to max_batch (0: its output is too large); forward and
 * backward (dx may be NULL); and unfold (see pb_layer_unfold). */
int pb_kern_conv_is_thin(const pb_layer *l);
/* Whether a conv runs Winograd F(2x2, 3x3) (3x3, stride 1, padding 1, not
 * thin, and by default only the shapes where it measured faster);
 * use_winograd(0) sends every conv to im2col's SGEMM (the reference path),
 * 1 restores the default, 2 takes Winograd for every shape it supports (for
 * tests); it returns the previous mode. */
int pb_kern_conv_is_winograd(const pb_layer *l);
int pb_kern_conv_use_winograd(int on);
size_t pb_kern_conv_ws(const pb_layer *l, int max_batch);
void pb_kern_conv_forward(pb_layer *l, const float *x, int B);
void pb_kern_conv_backward(pb_layer *l, const float *x, float *dx, int B, int write);
void pb_kern_conv_unfold(const pb_layer *l, const float *x, int B, float *rows);

/* pb_kern_pool.c. Max pooling keeps its argmax in l->idx; its backward can
 * overwrite dx, the others only add to it. */
void pb_kern_maxpool_forward(pb_layer *l, const float *x, int B);
void pb_kern_maxpool_backward(pb_layer *l, float *dx, int B, int write);
void pb_kern_avgpool_forward(pb_layer *l, const float *x, int B);
void pb_kern_avgpool_backward(pb_layer *l, float *dx, int B);
void pb_kern_gap_forward(pb_layer *l, const float *x, int B);
void pb_kern_gap_backward(pb_layer *l, float *dx, int B);

/* pb_kern_elem.c, on n = B * osize floats (BN: on B examples). BN and add
 * apply a fused ReLU (l->relu_after, relu for add) as conv does. */
void pb_kern_relu_forward(float *out, const float *x, size_t n);
void pb_kern_relu_backward(float *dx, const float *out, const float *d, size_t n, int write);
void pb_kern_add_into(float *restrict y, const float *restrict x, size_t n);
/* w *= mask, reading the mask and writing only blocks holding a value other than 1. */
void pb_kern_mask_generated(float *restrict w, const float *restrict mask, size_t n);
void pb_kern_add_forward(float *restrict o, const float *x, const float *x2, size_t n, int relu);
void pb_kern_dropout_forward(pb_layer *l, const float *restrict x, size_t n, int train, pb_rng *rng);
void pb_kern_dropout_backward(pb_layer *l, float *restrict dx, size_t n);
void pb_kern_bn_forward(pb_layer *l, const float *x, int B, int train);
void pb_kern_bn_infer(pb_layer *l, const float *x, int B); /* out only, running statistics */
void pb_kern_bn_backward(pb_layer *l, float *dx, int B);
/* p[k] = exp(z[k] * scale - shift) for k < n (p may be z), by VEXP; returns
 * their sum, added in a fixed order of 16 lanes */
float pb_kern_exp_sum(float *p, const float *z, int n, float scale, float shift);

#endif
