/* pb_kern_vec: what the kernel modules share (not pb_layer.c): GCC vector
 * types, the per-CPU-level cloning of hot functions, and how a batch is split
 * across pb_par's threads. */
#ifndef PB_KERN_VEC_H
#define PB_KERN_VEC_H

#include <stddef.h>
#include <stdint.h>

#include "pb_layer.h"
#include "pb_par.h"

#define VL 16 /* floats per vector: one AVX-512 register, two AVX2 ones */

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

/* e = exp(t) in the lanes of t (a statement, as VGATE in pb_kern_lm.c): t is
 * clamped to [-87, 88], reduced by powers of 2 and the rest is a degree-6
 * polynomial (relative error below 2e-7 against expf). */
#define VEXP(e, t)                                                                            \
    do {                                                                                      \
        vf t_ = (t);                                                                          \
        vi m_ = t_ > 88.0f;                                                                   \
        t_ = (vf)(((vi)t_ & ~m_) | ((vi)((vf){0} + 88.0f) & m_));                             \
        m_ = t_ < -87.0f;                                                                     \
        t_ = (vf)(((vi)t_ & ~m_) | ((vi)((vf){0} - 87.0f) & m_));                             \
        const vf n_ = (t_ * 1.44269504f + 12582912.0f) - 12582912.0f; /* round(t / ln 2) */  \
        const vf r_ = t_ - n_ * 0.693145751953125f - n_ * 1.428606765330187e-06f;             \
        vf p_ = (vf){0} + 1.0f / 720;                                                         \
        p_ = p_ * r_ + 1.0f / 120;                                                            \
        p_ = p_ * r_ + 1.0f / 24;                                                             \
        p_ = p_ * r_ + 1.0f / 6;                                                              \
        p_ = p_ * r_ + 0.5f;                                                                  \
        p_ = p_ * r_ + 1.0f;                                                                  \
        p_ = p_ * r_ + 1.0f;                                                                  \
        const vi e_ = (__builtin_convertvector(n_, vi) + 127) << 23;                          \
        (e) = p_ * (vf)e_;                                                                    \
    } while (0)

/* Transposes 16 vectors in place, v[i][j] becoming v[j][i] (the conv and
 * sparse kernels' layouts): four rounds of two-source shuffles that swap the
 * blocks of h = 8, 4, 2, 1 lanes between rows h apart (the off-diagonal
 * blocks of ever smaller blocks). Unrolled, so that v stays in registers. */
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

static inline size_t round_up(size_t n, size_t m) { return (n + m - 1) / m * m; }

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

static inline int batch_parts(int B, size_t floats, int most)
{
    int n = pb_par_threads();
    if (n > most)
        n = most;
    if (n > B)
        n = B;
    return floats < PAR_MIN_FLOATS || n < 1 ? 1 : n;
}

#endif
