/* pb_kern_lm: embedding, LayerNorm, per-token linear, causal multi-head
 * attention, GELU. */
#include "pb_kern_lm.h"

#include <math.h>
#include <string.h>

#include <cblas.h>

#include "pb_kern.h"
#include "pb_kern_vec.h"
#include "pb_par.h"

static size_t rows_of(const pb_layer *l, int B) { return (size_t)B * l->ih; }

size_t pb_kern_lm_ws(const pb_layer *l, int max_batch)
{
    switch (l->kind) {
    case PB_LAYERNORM: return (size_t)max_batch * pb_layer_osize(l); /* x-hat */
    case PB_ATTN: {
        /* the probabilities and, in backward, the score gradients of every (example, head) */
        const size_t T = (size_t)l->ih, heads = (size_t)(l->oc / l->k);
        return 2 * (size_t)max_batch * heads * T * T;
    }
    default: return 0;
    }
}

size_t pb_kern_lm_stat(const pb_layer *l, int max_batch)
{
    return l->kind == PB_LAYERNORM ? rows_of(l, max_batch) : 0; /* 1 / std per row */
}

/* ------------------------------------------------------------ embedding */

static int token_of(const pb_layer *l, float v)
{
    /* ids come from bytes; anything outside the table reads its ends */
    int id = (int)lrintf(v);
    return id < 0 ? 0 : id >= l->k ? l->k - 1 : id;
}

void pb_kern_embed_forward(pb_layer *l, const float *x, int B)
{
    const int T = l->ih, d = l->oc;
    const float *tok = l->w->w, *pos = l->b->w;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            const float *e = tok + (size_t)token_of(l, x[(size_t)b * T + t]) * d, *p = pos + (size_t)t * d;
            float *o = l->out + ((size_t)b * T + t) * d;
            for (int j = 0; j < d; j++)
                o[j] = e[j] + p[j];
        }
}

void pb_kern_embed_backward(pb_layer *l, const float *x, float *dx, int B, int write)
{
    const int T = l->ih, d = l->oc;
    float *gt = l->w->g, *gp = l->b->g;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            const float *g = l->dout + ((size_t)b * T + t) * d;
            float *e = gt + (size_t)token_of(l, x[(size_t)b * T + t]) * d, *p = gp + (size_t)t * d;
            for (int j = 0; j < d; j++) {
                e[j] += g[j];
                p[j] += g[j];
            }
        }
    /* token ids have no gradient */
    if (dx && write)
        memset(dx, 0, (size_t)B * T * sizeof(float));
}

/* ------------------------------------------------------------ LayerNorm */

/* A row's sum in LANES interleaved partial sums, added pairwise at the end:
 * a fixed order (so results do not depend on the machine's vector width),
 * and one the compiler can vectorize, where a single running float sum is
 * bound by the latency of one add per element. */
#define LANES 16
CLONES static float row_sum(const float *restrict x, int c)
{
    float p[LANES] = { 0 };
    int j = 0;
    for (; j + LANES <= c; j += LANES)
        for (int k = 0; k < LANES; k++)
            p[k] += x[j + k];
    for (int k = 0; j < c; j++, k++)
        p[k] += x[j];
    for (int w = LANES / 2; w > 0; w /= 2)
        for (int k = 0; k < w; k++)
            p[k] += p[k + w];
    return p[0];
}

/* the sum of (x - m)^2 over a row, in row_sum's order */
CLONES static float row_sqdev(const float *restrict x, float m, int c)
{
    float p[LANES] = { 0 };
    int j = 0;
    for (; j + LANES <= c; j += LANES)
        for (int k = 0; k < LANES; k++)
            p[k] += (x[j + k] - m) * (x[j + k] - m);
    for (int k = 0; j < c; j++, k++)
        p[k] += (x[j] - m) * (x[j] - m);
    for (int w = LANES / 2; w > 0; w /= 2)
        for (int k = 0; k < w; k++)
            p[k] += p[k + w];
    return p[0];
}

/* One row: x-hat into xh, the output into o; returns 1 / std. */
CLONES static float ln_row(const float *restrict x, float *restrict xh, float *restrict o, const float *restrict gain,
                           const float *restrict shift, int c, float eps)
{
    const float mean = row_sum(x, c) / (float)c;
    const float var = row_sqdev(x, mean, c) / (float)c;
    const float rstd = 1.0f / sqrtf(var + eps);
    for (int j = 0; j < c; j++) {
        xh[j] = (x[j] - mean) * rstd;
        o[j] = xh[j] * gain[j] + shift[j];
    }
    return rstd;
}

void pb_kern_layernorm_forward(pb_layer *l, const float *x, int B)
{
    const size_t R = rows_of(l, B);
    const int c = l->ic;
    for (size_t r = 0; r < R; r++)
        l->stat[r] = ln_row(x + r * c, l->ws + r * c, l->out + r * c, l->w->w, l->b->w, c, l->bn_eps);
}

CLONES static void ln_row_back(const float *restrict xh, const float *restrict g, const float *restrict gain,
                               float *restrict gg, float *restrict gb, float *restrict d, int c, float rstd,
                               int write)
{
    /* sums of dx-hat and of dx-hat * x-hat, in row_sum's order */
    float p1[LANES] = { 0 }, p2[LANES] = { 0 };
    for (int j = 0; j < c; j++) {
        gg[j] += g[j] * xh[j];
        gb[j] += g[j];
    }
    int j = 0;
    for (; j + LANES <= c; j += LANES)
        for (int k = 0; k < LANES; k++) {
            const float dh = g[j + k] * gain[j + k];
            p1[k] += dh;
            p2[k] += dh * xh[j + k];
        }
    for (int k = 0; j < c; j++, k++) {
        const float dh = g[j] * gain[j];
        p1[k] += dh;
        p2[k] += dh * xh[j];
    }
    if (!d)
        return;
    for (int w = LANES / 2; w > 0; w /= 2)
        for (int k = 0; k < w; k++) {
            p1[k] += p1[k + w];
            p2[k] += p2[k + w];
        }
    const float m1 = p1[0] / (float)c, m2 = p2[0] / (float)c;
    if (write)
        for (int i = 0; i < c; i++)
            d[i] = rstd * (g[i] * gain[i] - m1 - xh[i] * m2);
    else
        for (int i = 0; i < c; i++)
            d[i] += rstd * (g[i] * gain[i] - m1 - xh[i] * m2);
}

void pb_kern_layernorm_backward(pb_layer *l, float *dx, int B, int write)
{
    const size_t R = rows_of(l, B);
    const int c = l->ic;
    for (size_t r = 0; r < R; r++)
        ln_row_back(l->ws + r * c, l->dout + r * c, l->w->w, l->w->g, l->b->g, dx ? dx + r * c : NULL, c,
                    l->stat[r], write);
}

/* --------------------------------------------------------------- linear */

static void set_rows(float *restrict out, const float *restrict bias, int rows, int cols)
{
    for (int r = 0; r < rows; r++)
        memcpy(out + (size_t)r * cols, bias, (size_t)cols * sizeof(float));
}

/* g += the sum of the rows */
CLONES static void sum_rows(float *restrict g, const float *restrict d, int rows, int cols)
{
    for (int r = 0; r < rows; r++) {
        const float *restrict dr = d + (size_t)r * cols;
        for (int j = 0; j < cols; j++)
            g[j] += dr[j];
    }
}

void pb_kern_linear_forward(pb_layer *l, const float *x, int B)
{
    const int R = (int)rows_of(l, B), in = l->ic, oc = l->oc;
    /* the bias goes in first and the product is added to it: the GEMM then
     * accumulates into C instead of clearing it, saving a pass over out */
    if (l->has_bias)
        set_rows(l->out, l->b->w, R, oc);
    pb_kern_gemm(CblasNoTrans, CblasTrans, R, oc, in, 1.0f, x, in, l->w->w, in, l->has_bias ? 1.0f : 0.0f, l->out,
                 oc);
}

void pb_kern_linear_backward(pb_layer *l, const float *x, float *dx, int B, int write)
{
    const int R = (int)rows_of(l, B), in = l->ic, oc = l->oc;
    pb_kern_gemm(CblasTrans, CblasNoTrans, oc, in, R, 1.0f, l->dout, oc, x, in, 1.0f, l->w->g, in);
    if (l->has_bias)
        sum_rows(l->b->g, l->dout, R, oc);
    if (dx)
        pb_kern_gemm(CblasNoTrans, CblasNoTrans, R, in, oc, 1.0f, l->dout, oc, l->w->w, in, write ? 0.0f : 1.0f,
                     dx, in);
}

/* ------------------------------------------------------------ attention */

typedef struct attn_job {
    pb_layer *l;
    const float *x;
    float *dx;
    int B, write;
} attn_job;

/* the (example, head) pair's q, k, v and its probability and score-gradient blocks */
typedef struct attn_pair {
    const float *q, *k, *v;
    float *p, *ds;
    int T, dh, ld, D;
} attn_pair;

static attn_pair pair_of(const attn_job *j, int bh)
{
    const pb_layer *l = j->l;
    const int T = l->ih, dh = l->k, D = l->oc, H = D / dh, b = bh / H, h = bh % H;
    attn_pair a;
    a.T = T;
    a.dh = dh;
    a.D = D;
    a.ld = 3 * D;
    a.q = j->x + (size_t)b * T * a.ld + (size_t)h * dh;
    a.k = a.q + D;
    a.v = a.q + 2 * D;
    const size_t blk = (size_t)T * T, pairs = (size_t)j->l->max_batch * H;
    a.p = l->ws + (size_t)bh * blk;
    a.ds = l->ws + (pairs + (size_t)bh) * blk;
    return a;
}

static void attn_fwd_part(void *ctx, int part, int nparts)
{
    const attn_job *j = ctx;
    const pb_layer *l = j->l;
    const int H = l->oc / l->k, n = j->B * H;
    for (int bh = pb_par_begin(n, part, nparts); bh < pb_par_begin(n, part + 1, nparts); bh++) {
        attn_pair a = pair_of(j, bh);
        const int T = a.T, b = bh / H, h = bh % H;
        const float scale = 1.0f / sqrtf((float)a.dh);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, a.dh, scale, a.q, a.ld, a.k, a.ld, 0.0f, a.p, T);
        for (int r = 0; r < T; r++) {
            float *pr = a.p + (size_t)r * T, mx = pr[0];
            for (int c = 1; c <= r; c++)
                mx = pr[c] > mx ? pr[c] : mx;
            const float inv = 1.0f / pb_kern_exp_sum(pr, pr, r + 1, 1.0f, mx);
            for (int c = 0; c <= r; c++)
                pr[c] *= inv;
            /* causal: position r never sees a later one */
            for (int c = r + 1; c < T; c++)
                pr[c] = 0.0f;
        }
        float *o = l->out + (size_t)b * T * a.D + (size_t)h * a.dh;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, a.dh, T, 1.0f, a.p, T, a.v, a.ld, 0.0f, o, a.D);
    }
}

static void attn_bwd_part(void *ctx, int part, int nparts)
{
    const attn_job *j = ctx;
    const pb_layer *l = j->l;
    const int H = l->oc / l->k, n = j->B * H;
    const float beta = j->write ? 0.0f : 1.0f;
    for (int bh = pb_par_begin(n, part, nparts); bh < pb_par_begin(n, part + 1, nparts); bh++) {
        attn_pair a = pair_of(j, bh);
        const int T = a.T, b = bh / H, h = bh % H;
        const float scale = 1.0f / sqrtf((float)a.dh);
        const float *go = l->dout + (size_t)b * T * a.D + (size_t)h * a.dh;
        float *dq = j->dx + (size_t)b * T * a.ld + (size_t)h * a.dh, *dk = dq + a.D, *dv = dq + 2 * a.D;
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, a.dh, T, 1.0f, a.p, T, go, a.D, beta, dv, a.ld);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, a.dh, 1.0f, go, a.D, a.v, a.ld, 0.0f, a.ds, T);
        for (int r = 0; r < T; r++) {
            const float *pr = a.p + (size_t)r * T;
            float *dr = a.ds + (size_t)r * T, dot = 0;
            for (int c = 0; c <= r; c++)
                dot += pr[c] * dr[c];
            for (int c = 0; c <= r; c++)
                dr[c] = pr[c] * (dr[c] - dot) * scale;
            for (int c = r + 1; c < T; c++)
                dr[c] = 0.0f;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, a.dh, T, 1.0f, a.ds, T, a.k, a.ld, beta, dq, a.ld);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, a.dh, T, 1.0f, a.ds, T, a.q, a.ld, beta, dk, a.ld);
    }
}

static int attn_parts(const pb_layer *l, int B)
{
    const int n = B * (l->oc / l->k), t = pb_par_threads();
    return n < t ? n : t;
}

void pb_kern_attn_forward(pb_layer *l, const float *x, int B)
{
    attn_job j = {.l = l, .x = x, .B = B};
    pb_par_run(attn_fwd_part, &j, attn_parts(l, B));
}

void pb_kern_attn_backward(pb_layer *l, const float *x, float *dx, int B, int write)
{
    if (!dx)
        return;
    attn_job j = {.l = l, .x = x, .dx = dx, .B = B, .write = write};
    pb_par_run(attn_bwd_part, &j, attn_parts(l, B));
}

/* ----------------------------------------------------------------- GELU */

/* GELU's tanh form is x * sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3):
 * one exponential instead of tanhf, whose libm call took two fifths of a
 * training step. The exponential is a degree-6 polynomial after a reduction
 * by powers of 2 (relative error below 2e-7), 16 lanes at a time. */
#define GELU_C 0.7978845608028654f /* sqrt(2 / pi) */
#define GELU_A 0.044715f

/* g = sigmoid(2u) of the lanes of x (a statement: gcc warns that a function
 * returning a 64-byte vector changes the ABI where AVX-512 is off) */
#define VGATE(g, x)                                                                           \
    do {                                                                                      \
        vf x_;                                                                                \
        VEXP(x_, -2.0f * GELU_C * ((x) + GELU_A * (x) * (x) * (x)));                           \
        (g) = 1.0f / (1.0f + x_);                                                             \
    } while (0)

static inline float gate1(float x)
{
    const float u = GELU_C * (x + GELU_A * x * x * x);
    return 1.0f / (1.0f + expf(-2.0f * u));
}

CLONES static void gelu_fwd(float *restrict out, const float *restrict x, size_t n)
{
    size_t i = 0;
    for (; i + VL <= n; i += VL) {
        vf v;
        memcpy(&v, x + i, sizeof v);
        vf s;
        VGATE(s, v);
        v = v * s;
        memcpy(out + i, &v, sizeof v);
    }
    for (; i < n; i++)
        out[i] = x[i] * gate1(x[i]);
}

CLONES static void gelu_bwd(float *restrict dx, const float *restrict x, const float *restrict d, size_t n, int write)
{
    size_t i = 0;
    for (; i + VL <= n; i += VL) {
        vf v, g, o;
        memcpy(&v, x + i, sizeof v);
        memcpy(&g, d + i, sizeof g);
        vf s;
        VGATE(s, v);
        const vf du = GELU_C * (1.0f + 3.0f * GELU_A * v * v);
        g = g * (s + 2.0f * v * s * (1.0f - s) * du);
        if (!write) {
            memcpy(&o, dx + i, sizeof o);
            g += o;
        }
        memcpy(dx + i, &g, sizeof g);
    }
    for (; i < n; i++) {
        const float v = x[i], s = gate1(v), du = GELU_C * (1.0f + 3.0f * GELU_A * v * v);
        const float g = d[i] * (s + 2.0f * v * s * (1.0f - s) * du);
        dx[i] = write ? g : dx[i] + g;
    }
}

void pb_kern_gelu_forward(pb_layer *l, const float *x, int B)
{
    gelu_fwd(l->out, x, (size_t)B * pb_layer_osize(l));
}

void pb_kern_gelu_backward(pb_layer *l, const float *x, float *dx, int B, int write)
{
    if (dx)
        gelu_bwd(dx, x, l->dout, (size_t)B * pb_layer_osize(l), write);
}
