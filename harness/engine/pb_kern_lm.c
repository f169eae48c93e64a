/* pb_kern_lm: embedding, LayerNorm, per-token linear, causal multi-head
 * attention, GELU. */
#include "pb_kern_lm.h"

#include <math.h>
#include <string.h>

#include <cblas.h>

#include "pb_kern.h"
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

void pb_kern_layernorm_forward(pb_layer *l, const float *x, int B)
{
    const size_t R = rows_of(l, B);
    const int c = l->ic;
    const float *gain = l->w->w, *shift = l->b->w;
    for (size_t r = 0; r < R; r++) {
        const float *xr = x + r * c;
        float *xh = l->ws + r * c, *o = l->out + r * c;
        double mean = 0, var = 0;
        for (int j = 0; j < c; j++)
            mean += xr[j];
        mean /= c;
        for (int j = 0; j < c; j++)
            var += (xr[j] - mean) * (xr[j] - mean);
        var /= c;
        const float rstd = (float)(1.0 / sqrt(var + l->bn_eps)), mu = (float)mean;
        l->stat[r] = rstd;
        for (int j = 0; j < c; j++) {
            xh[j] = (xr[j] - mu) * rstd;
            o[j] = xh[j] * gain[j] + shift[j];
        }
    }
}

void pb_kern_layernorm_backward(pb_layer *l, float *dx, int B, int write)
{
    const size_t R = rows_of(l, B);
    const int c = l->ic;
    const float *gain = l->w->w;
    float *gg = l->w->g, *gb = l->b->g;
    for (size_t r = 0; r < R; r++) {
        const float *xh = l->ws + r * c, *g = l->dout + r * c;
        double s1 = 0, s2 = 0; /* mean of dx-hat and of dx-hat * x-hat */
        for (int j = 0; j < c; j++) {
            const float dh = g[j] * gain[j];
            s1 += dh;
            s2 += dh * xh[j];
            gg[j] += g[j] * xh[j];
            gb[j] += g[j];
        }
        if (!dx)
            continue;
        const float m1 = (float)(s1 / c), m2 = (float)(s2 / c), rstd = l->stat[r];
        float *d = dx + r * c;
        for (int j = 0; j < c; j++) {
            const float v = rstd * (g[j] * gain[j] - m1 - xh[j] * m2);
            d[j] = write ? v : d[j] + v;
        }
    }
}

/* --------------------------------------------------------------- linear */

void pb_kern_linear_forward(pb_layer *l, const float *x, int B)
{
    const int R = (int)rows_of(l, B), in = l->ic, oc = l->oc;
    pb_kern_gemm(CblasNoTrans, CblasTrans, R, oc, in, 1.0f, x, in, l->w->w, in, 0.0f, l->out, oc);
    if (l->has_bias) {
        const float *restrict bias = l->b->w;
        for (int r = 0; r < R; r++) {
            float *restrict o = l->out + (size_t)r * oc;
            for (int j = 0; j < oc; j++)
                o[j] += bias[j];
        }
    }
}

void pb_kern_linear_backward(pb_layer *l, const float *x, float *dx, int B, int write)
{
    const int R = (int)rows_of(l, B), in = l->ic, oc = l->oc;
    pb_kern_gemm(CblasTrans, CblasNoTrans, oc, in, R, 1.0f, l->dout, oc, x, in, 1.0f, l->w->g, in);
    if (l->has_bias) {
        float *restrict g = l->b->g;
        for (int r = 0; r < R; r++) {
            const float *restrict d = l->dout + (size_t)r * oc;
            for (int j = 0; j < oc; j++)
                g[j] += d[j];
        }
    }
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
            float s = 0;
            for (int c = 0; c <= r; c++) {
                pr[c] = expf(pr[c] - mx);
                s += pr[c];
            }
            const float inv = 1.0f / s;
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

#define GELU_C 0.7978845608028654f /* sqrt(2 / pi) */

void pb_kern_gelu_forward(pb_layer *l, const float *x, int B)
{
    const size_t n = (size_t)B * pb_layer_osize(l);
    for (size_t i = 0; i < n; i++) {
        const float v = x[i];
        l->out[i] = 0.5f * v * (1.0f + tanhf(GELU_C * (v + 0.044715f * v * v * v)));
    }
}

void pb_kern_gelu_backward(pb_layer *l, const float *x, float *dx, int B, int write)
{
    if (!dx)
        return;
    const size_t n = (size_t)B * pb_layer_osize(l);
    for (size_t i = 0; i < n; i++) {
        const float v = x[i], u = GELU_C * (v + 0.044715f * v * v * v), t = tanhf(u);
        const float dgelu = 0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * GELU_C * (1.0f + 3.0f * 0.044715f * v * v);
        const float g = l->dout[i] * dgelu;
        dx[i] = write ? g : dx[i] + g;
    }
}
