/* pb_kern_sparse: a dense layer's forward and backward on its csr or nm
 * format (pb_sparse.h).
 *
 * Batched kernels work on transposed copies: the input as cols rows of bp
 * floats (bp = the batch rounded up to 16, padded with zeros), the output
 * gradient likewise, so that each stored weight is one multiply-add of 16
 * examples per vector: out^T[r] = sum_k val[k] x^T[col[k]] (forward),
 * dx^T[col[k]] += val[k] dout^T[r] (input gradient), g[r, col[k]] +=
 * dout^T[r] . x^T[col[k]] (weight gradient, kept weights only). Every sum
 * runs over the row's stored weights in column order, one thread an output
 * element, so csr and nm give the same bits on the same mask and a result
 * does not depend on the thread count.
 *
 * Evaluation batches of fewer than PB_SPARSE_GATHER_B examples take the
 * format's sliced-ELL layout, with the input permuted out of registers
 * (sell_avx512); without the layout (nm wider than 65535 inputs) one dot
 * product per row and example with AVX-512 gathers from the input, and
 * scalar code on CPUs without AVX-512. On the same mask csr and nm have the
 * same layout, so they give the same bits at batch 1 as well. */
#include "pb_sparse.h"

#include <string.h>

#include "pb_kern_vec.h"

#if CLONES_ENABLED
#include <immintrin.h>
#endif

/* Below this many multiply-adds a kernel runs on the calling thread. */
#define SPARSE_PAR_MIN (1 << 17)

/* The stored weights of row r in column order: k indexes val, c is the
 * column; body may `continue` to skip one. Padding slots of nm (value 0)
 * are visited too; is_pad(s, k) tells them. */
#define FOR_SLOTS(s, r, k, c, body)                                                            \
    do {                                                                                       \
        if ((s)->fmt == PB_WFMT_CSR) {                                                         \
            const int32_t k1_ = (s)->rowptr[(r) + 1];                                          \
            for (int32_t k = (s)->rowptr[r]; k < k1_; k++) {                                   \
                const size_t c = (s)->col[k];                                                  \
                body                                                                           \
            }                                                                                  \
        } else {                                                                               \
            const size_t base_ = (size_t)(r) * (size_t)(s)->groups * (size_t)(s)->nm_n;        \
            for (int g_ = 0; g_ < (s)->groups; g_++)                                           \
                for (int t_ = 0; t_ < (s)->nm_n; t_++) {                                       \
                    const size_t k = base_ + (size_t)g_ * (s)->nm_n + (size_t)t_;              \
                    const size_t c = (size_t)g_ * (s)->nm_m + ((s)->off[k] & 0x7f);            \
                    body                                                                       \
                }                                                                              \
        }                                                                                      \
    } while (0)

static inline int is_pad(const pb_sparse *s, size_t k) { return s->fmt == PB_WFMT_NM && (s->off[k] & 0x80); }

/* ------------------------------------------------------------ transposes */

/* a [n x m] (row stride lda) -> t [m x ld] columns 0..n-1, zeros in n..npad-1
 * (ld and npad multiples of 16, t aligned) */
CLONES static void transpose_pad(const float *restrict a, int n, int m, size_t lda, float *restrict t,
                                 size_t ld, int npad)
{
    const int m16 = m / 16 * 16;
    for (int i0 = 0; i0 < npad; i0 += 16) {
        for (int c0 = 0; c0 < m16; c0 += 16) {
            vf r[16];
            for (int q = 0; q < 16; q++)
                r[q] = i0 + q < n ? (vf) * (const vf_unaligned *)(a + (size_t)(i0 + q) * lda + c0) : (vf){0};
            transpose16(r);
            for (int q = 0; q < 16; q++)
                *(vf *)(t + (size_t)(c0 + q) * ld + i0) = r[q];
        }
        for (int c = m16; c < m; c++)
            for (int q = 0; q < 16; q++)
                t[(size_t)c * ld + i0 + q] = i0 + q < n ? a[(size_t)(i0 + q) * lda + c] : 0.0f;
    }
}

/* t [m x ld] columns 0..n-1 -> a [n x m], written or added to */
CLONES static void transpose_back(const float *restrict t, int n, int m, size_t ld, float *restrict a,
                                  int add)
{
    const int m16 = m / 16 * 16;
    for (int i0 = 0; i0 < n; i0 += 16) {
        const int rows = n - i0 < 16 ? n - i0 : 16;
        for (int c0 = 0; c0 < m16; c0 += 16) {
            vf r[16];
            for (int q = 0; q < 16; q++)
                r[q] = *(const vf *)(t + (size_t)(c0 + q) * ld + i0);
            transpose16(r);
            for (int q = 0; q < rows; q++) {
                vf_unaligned *o = (vf_unaligned *)(a + (size_t)(i0 + q) * m + c0);
                *o = add ? *o + r[q] : r[q];
            }
        }
        for (int q = 0; q < rows; q++) {
            float *restrict ar = a + (size_t)(i0 + q) * m;
            for (int c = m16; c < m; c++)
                ar[c] = add ? ar[c] + t[(size_t)c * ld + i0 + q] : t[(size_t)c * ld + i0 + q];
        }
    }
}

/* ------------------------------------------------------ batched kernels */

typedef struct sp_job {
    const pb_sparse *s;
    const float *bias;
    float *g;      /* weight gradient, dense rows x cols */
    int nv;        /* vectors of 16 examples in a transposed row */
} sp_job;

/* yt rows [r0, r1) = bias + W xt */
CLONES static void fwd_rows(const pb_sparse *s, const float *bias, int nv, int r0, int r1)
{
    const size_t bp = (size_t)nv * VL;
    const float *xt = s->xt;
    for (int r = r0; r < r1; r++) {
        const float b0 = bias ? bias[r] : 0.0f;
        vf *yr = (vf *)(s->yt + (size_t)r * bp);
        int v = 0;
        for (; v + 4 <= nv; v += 4) {
            vf a0 = (vf){0} + b0, a1 = a0, a2 = a0, a3 = a0;
            FOR_SLOTS(s, r, k, c, {
                const vf *p = (const vf *)(xt + c * bp) + v;
                const float wv = s->val[k];
                a0 += wv * p[0];
                a1 += wv * p[1];
                a2 += wv * p[2];
                a3 += wv * p[3];
            });
            yr[v] = a0;
            yr[v + 1] = a1;
            yr[v + 2] = a2;
            yr[v + 3] = a3;
        }
        for (; v < nv; v++) {
            vf a0 = (vf){0} + b0;
            FOR_SLOTS(s, r, k, c, { a0 += s->val[k] * ((const vf *)(xt + c * bp))[v]; });
            yr[v] = a0;
        }
    }
}

static void fwd_part(void *ctx, int part, int nparts)
{
    const sp_job *j = ctx;
    fwd_rows(j->s, j->bias, j->nv, pb_par_begin(j->s->rows, part, nparts),
             pb_par_begin(j->s->rows, part + 1, nparts));
}

static inline float hsum(vf a)
{
    const v8f h = __builtin_shufflevector(a, a, 0, 1, 2, 3, 4, 5, 6, 7) +
                  __builtin_shufflevector(a, a, 8, 9, 10, 11, 12, 13, 14, 15);
    return ((h[0] + h[4]) + (h[1] + h[5])) + ((h[2] + h[6]) + (h[3] + h[7]));
}

/* g[r, c] += yt[r] . xt[c] for the kept weights of rows [r0, r1) */
CLONES static void wgrad_rows(const pb_sparse *s, float *g, int nv, int r0, int r1)
{
    const size_t bp = (size_t)nv * VL;
    for (int r = r0; r < r1; r++) {
        const vf *d = (const vf *)(s->yt + (size_t)r * bp);
        float *gr = g + (size_t)r * s->cols;
        FOR_SLOTS(s, r, k, c, {
            if (is_pad(s, k))
                continue;
            const vf *p = (const vf *)(s->xt + c * bp);
            vf a = d[0] * p[0];
            for (int v = 1; v < nv; v++)
                a += d[v] * p[v];
            gr[c] += hsum(a);
        });
    }
}

static void wgrad_part(void *ctx, int part, int nparts)
{
    const sp_job *j = ctx;
    wgrad_rows(j->s, j->g, j->nv, pb_par_begin(j->s->rows, part, nparts),
               pb_par_begin(j->s->rows, part + 1, nparts));
}

/* dxt[c, v0..v1) += val * yt[r, v0..v1) over every stored weight; dxt is
 * zero on entry in that range */
CLONES static void dx_vectors(const pb_sparse *s, int nv, int v0, int v1)
{
    const size_t bp = (size_t)nv * VL;
    float *dxt = s->dxt;
    for (int r = 0; r < s->rows; r++) {
        const vf *d = (const vf *)(s->yt + (size_t)r * bp);
        int v = v0;
        for (; v + 4 <= v1; v += 4) {
            const vf d0 = d[v], d1 = d[v + 1], d2 = d[v + 2], d3 = d[v + 3];
            FOR_SLOTS(s, r, k, c, {
                vf *p = (vf *)(dxt + c * bp) + v;
                const float wv = s->val[k];
                p[0] += wv * d0;
                p[1] += wv * d1;
                p[2] += wv * d2;
                p[3] += wv * d3;
            });
        }
        for (; v < v1; v++) {
            const vf d0 = d[v];
            FOR_SLOTS(s, r, k, c, { ((vf *)(dxt + c * bp))[v] += s->val[k] * d0; });
        }
    }
}

static void dx_part(void *ctx, int part, int nparts)
{
    const sp_job *j = ctx;
    const pb_sparse *s = j->s;
    /* parts of whole 4-vector blocks, so the split leaves the sums alone */
    const int blocks = (j->nv + 3) / 4;
    const int v0 = pb_par_begin(blocks, part, nparts) * 4;
    int v1 = pb_par_begin(blocks, part + 1, nparts) * 4;
    if (v1 > j->nv)
        v1 = j->nv;
    if (v0 >= v1)
        return;
    const size_t bp = (size_t)j->nv * VL;
    for (int c = 0; c < s->cols; c++)
        memset(s->dxt + (size_t)c * bp + (size_t)v0 * VL, 0, (size_t)(v1 - v0) * VL * sizeof(float));
    dx_vectors(s, j->nv, v0, v1);
}

static int parts_for(const pb_sparse *s, int nv, int most)
{
    const double macs = (double)s->slots * nv * VL;
    int n = pb_par_threads();
    if (n > most)
        n = most;
    return macs < SPARSE_PAR_MIN || n < 1 ? 1 : n;
}

/* ------------------------------------------------------ gathered kernels */

#if CLONES_ENABLED
__attribute__((target("avx512f,avx512bw,avx512vl,fma"))) static void
gather_avx512(const pb_sparse *s, const float *x, const float *bias, float *y)
{
    if (s->fmt == PB_WFMT_CSR) {
        for (int r = 0; r < s->rows; r++) {
            const int32_t k1 = s->rowptr[r + 1];
            int32_t k = s->rowptr[r];
            __m512 acc = _mm512_setzero_ps();
            for (; k + 16 <= k1; k += 16) {
                const __m512i idx = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(s->col + k)));
                acc = _mm512_fmadd_ps(_mm512_loadu_ps(s->val + k), _mm512_i32gather_ps(idx, x, 4), acc);
            }
            if (k < k1) {
                const __mmask16 mk = (__mmask16)((1u << (k1 - k)) - 1);
                const __m512i idx = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(mk, s->col + k));
                const __m512 xv = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), mk, idx, x, 4);
                acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mk, s->val + k), xv, acc);
            }
            y[r] = (bias ? bias[r] : 0.0f) + _mm512_reduce_add_ps(acc);
        }
        return;
    }
    /* nm with n dividing 16: slot j of a row is in group j / n, so lane l
     * of the 16 slots from j0 (a multiple of 16) is in group j0 / n + l / n */
    const int n = s->nm_n, m = s->nm_m, per_row = s->groups * n;
    int lane[16];
    for (int l = 0; l < 16; l++)
        lane[l] = l / n * m;
    const __m512i lane_base = _mm512_loadu_si512(lane), mask7 = _mm512_set1_epi32(0x7f);
    const __m512i step = _mm512_set1_epi32(16 / n * m);
    for (int r = 0; r < s->rows; r++) {
        const size_t k0 = (size_t)r * per_row;
        __m512 acc = _mm512_setzero_ps();
        __m512i base = lane_base;
        int j = 0;
        for (; j + 16 <= per_row; j += 16, base = _mm512_add_epi32(base, step)) {
            const __m512i o = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(s->off + k0 + j)));
            const __m512i idx = _mm512_add_epi32(base, _mm512_and_si512(o, mask7));
            acc = _mm512_fmadd_ps(_mm512_loadu_ps(s->val + k0 + j), _mm512_i32gather_ps(idx, x, 4), acc);
        }
        if (j < per_row) {
            const __mmask16 mk = (__mmask16)((1u << (per_row - j)) - 1);
            const __m512i o = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(mk, s->off + k0 + j));
            const __m512i idx = _mm512_add_epi32(base, _mm512_and_si512(o, mask7));
            const __m512 xv = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), mk, idx, x, 4);
            acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mk, s->val + k0 + j), xv, acc);
        }
        y[r] = (bias ? bias[r] : 0.0f) + _mm512_reduce_add_ps(acc);
    }
}

/* The sliced-ELL layout: per 16-row slice, per chunk of 32 inputs
 * in two registers, each step of 16 slots permutes its inputs out of them
 * (vpermt2ps on the 1-byte indices) into four accumulators in turn; the
 * rows' sums are the slice's lanes, so no horizontal reduction is needed. */
__attribute__((target("avx512f,avx512bw,avx512vl,fma"))) static void
sell_avx512(const pb_sparse *s, const float *x, const float *bias, float *y)
{
    const int cols = s->cols;
    const float *v = s->sell_val;
    const uint8_t *ix = s->sell_idx;
#define SELL_STEP(a, t)                                                                              \
    a = _mm512_fmadd_ps(_mm512_load_ps(v + 16 * (t)),                                              \
                        _mm512_permutex2var_ps(lo, _mm512_cvtepu8_epi32(_mm_loadu_si128(           \
                                                       (const __m128i *)(ix + 16 * (t)))),         \
                                               hi),                                                \
                        a)
    for (int sl = 0; sl < s->sell_slices; sl++) {
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (int32_t u = s->sell_rptr[sl]; u < s->sell_rptr[sl + 1]; u++) {
            const int c0 = (int)(s->sell_run[u] >> 8) * 32, n = (int)(s->sell_run[u] & 0xff);
            __m512 lo, hi;
            if (c0 + 32 <= cols) {
                lo = _mm512_loadu_ps(x + c0);
                hi = _mm512_loadu_ps(x + c0 + 16);
            } else {
                const int left = cols - c0;
                lo = _mm512_maskz_loadu_ps(left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1),
                                           x + c0);
                hi = left > 16 ? _mm512_maskz_loadu_ps((__mmask16)((1u << (left - 16)) - 1), x + c0 + 16)
                               : _mm512_setzero_ps();
            }
            int t = 0;
            for (; t + 4 <= n; t += 4) {
                SELL_STEP(a0, t);
                SELL_STEP(a1, t + 1);
                SELL_STEP(a2, t + 2);
                SELL_STEP(a3, t + 3);
            }
            if (t < n)
                SELL_STEP(a0, t);
            if (t + 1 < n)
                SELL_STEP(a1, t + 1);
            if (t + 2 < n)
                SELL_STEP(a2, t + 2);
            v += 16 * (size_t)n;
            ix += 16 * (size_t)n;
        }
#undef SELL_STEP
        const int r0 = sl * 16, nl = s->rows - r0 < 16 ? s->rows - r0 : 16;
        const __mmask16 mk = nl == 16 ? (__mmask16)0xffff : (__mmask16)((1u << nl) - 1);
        __m512 acc = _mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3));
        if (bias)
            acc = _mm512_add_ps(_mm512_maskz_loadu_ps(mk, bias + r0), acc);
        _mm512_mask_storeu_ps(y + r0, mk, acc);
    }
}

static int have_avx512(void)
{
    static int have = -1;
    if (have < 0) {
        __builtin_cpu_init();
        have = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl");
    }
    return have;
}
#endif

static void gather_scalar(const pb_sparse *s, const float *x, const float *bias, float *y)
{
    for (int r = 0; r < s->rows; r++) {
        float a = 0.0f;
        FOR_SLOTS(s, r, k, c, { a += s->val[k] * x[c]; });
        y[r] = (bias ? bias[r] : 0.0f) + a;
    }
}

static void gather_rows(const pb_sparse *s, const float *x, const float *bias, float *y)
{
#if CLONES_ENABLED
    if (have_avx512() && s->sell_val) {
        sell_avx512(s, x, bias, y);
        return;
    }
    if (have_avx512() && (s->fmt == PB_WFMT_CSR || 16 % s->nm_n == 0)) {
        gather_avx512(s, x, bias, y);
        return;
    }
#endif
    gather_scalar(s, x, bias, y);
}

/* ------------------------------------------------------------ the layer */

static void transpose_input(pb_sparse *s, const float *x, int B)
{
    const int bpad = (B + VL - 1) / VL * VL;
    transpose_pad(x, B, s->cols, (size_t)s->cols, s->xt, (size_t)bpad, bpad);
    s->xt_of = x;
    s->xt_b = B;
}

void pb_kern_sparse_forward(pb_layer *l, const float *x, int B, int train)
{
    pb_sparse *s = l->sp;
    const float *bias = l->has_bias ? l->b->w : NULL;
    if (!train && B < PB_SPARSE_GATHER_B) {
        for (int b = 0; b < B; b++)
            gather_rows(s, x + (size_t)b * s->cols, bias, l->out + (size_t)b * s->rows);
        return;
    }
    const int nv = (B + VL - 1) / VL;
    transpose_input(s, x, B);
    sp_job j = {.s = s, .bias = bias, .nv = nv};
    pb_par_run(fwd_part, &j, parts_for(s, nv, s->rows));
    transpose_back(s->yt, B, s->rows, (size_t)nv * VL, l->out, 0);
}

void pb_kern_sparse_backward(pb_layer *l, const float *x, float *dx, int B, int write)
{
    pb_sparse *s = l->sp;
    const int nv = (B + VL - 1) / VL;
    const size_t bp = (size_t)nv * VL;
    if (s->xt_of != x || s->xt_b != B)
        transpose_input(s, x, B);
    transpose_pad(l->dout, B, s->rows, (size_t)s->rows, s->yt, bp, (int)bp);
    if (l->has_bias) {
        float *restrict gb = l->b->g;
        for (int b = 0; b < B; b++) {
            const float *restrict d = l->dout + (size_t)b * s->rows;
            for (int r = 0; r < s->rows; r++)
                gb[r] += d[r];
        }
    }
    sp_job j = {.s = s, .g = l->w->g, .nv = nv};
    pb_par_run(wgrad_part, &j, parts_for(s, nv, s->rows));
    if (dx) {
        pb_par_run(dx_part, &j, parts_for(s, nv, (nv + 3) / 4));
        transpose_back(s->dxt, B, s->cols, bp, dx, !write);
    }
}
