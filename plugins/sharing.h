/* sharing.h: randomized parameter sharing, the part hashednets, roast and
 * stable_rps have in common (METHODS.md, "Randomized parameter sharing").
 *
 * Every weight of every prunable (dense or conv) tensor is read from a
 * trained array through a hash: W_i = lambda_l * G_i * z[h(i)], G_i = +-1 a
 * hashed sign, lambda_l a per-layer scale. The arrays are host arrays
 * (host->add_array), so the host's optimizer trains them; each tensor gets a
 * generator (host->set_generator) that fills its weights from the arrays and
 * adds its weight gradient back into the arrays' gradients.
 *
 * Memory: at target sparsity s the arrays hold round((1 - s) * N) values in
 * all (N = prunable weights; per layer for hashednets), so a sharing cell
 * stores what a pruned cell at the same s keeps. Indices and signs are never
 * stored: they are recomputed from the hash seed (the run's seed) and the
 * weight's position. The maps below are built once in prune() and are a cache
 * of that computation (a few bytes per run of weights; hashednets hashes every
 * element on the fly).
 *
 * Layouts:
 *   SH_HASHED  one array per layer, h(i) an element-wise hash (HashedNets).
 *   SH_ROAST   one global array; each layer is cut into tiles of tr x tc
 *              weights and a tile reads tr * tc consecutive values of z from
 *              a hashed offset (mod m), row after row (ROAST).
 *   SH_FOLD    one global array; all weights flattened in layer order to g,
 *              h(g) = (hash(g div m) + g mod m) mod m: consecutive runs of m
 *              weights read z whole from a hashed rotation, a permutation at
 *              s = 0 (STABLE-RPS's global memory sharing).
 * Gradient scaling (STABLE-RPS): dL/dz_j is multiplied by
 * count_j / (sum_{i: h(i)=j} lambda_i)^2, so that a weight moves by the
 * learning rate times the mean gradient of the weights sharing its value,
 * whatever z's initialization scale (at s = 0 training is exactly dense SGD).
 *
 * Cost. The run layouts (SH_ROAST, SH_FOLD) generate and route in vector
 * kernels over whole runs, the sign hash computed 16 weights at a time; a
 * layer of at least SH_PAR_MIN (2^20) weights is split over the host's pool
 * (host->parallel_for): generation by ranges of weights, gradient routing by
 * ranges of array values, each thread taking from every run (in run order)
 * the part that reads its values. So every array value sums the gradients of
 * its weights in one fixed order whatever the thread count, and the arrays'
 * gradients are bit-identical from run to run and across thread counts.
 * SH_HASHED (a scatter through an element-wise hash) runs on the calling
 * thread in weight order. */
#ifndef PB_PLUGINS_SHARING_H
#define PB_PLUGINS_SHARING_H

#include <prunebench/plugin_util.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { SH_HASHED = 0, SH_ROAST, SH_FOLD };

/* A run of consecutive weights reading consecutive values of z. */
typedef struct sh_run {
    uint32_t i0;   /* first weight, index within the tensor */
    uint32_t len;
    uint32_t z0;   /* first value read, index into the (global) array */
} sh_run;

typedef struct sh_layer {
    size_t n;            /* weights */
    size_t goff;         /* index of its first weight among all prunable weights */
    int rows, cols;
    float bound;         /* the layer's own initialization: U(-bound, bound), bound = 1/sqrt(fan_in) */
    float lambda;
    sh_run *runs;        /* SH_ROAST, SH_FOLD */
    size_t nruns, cap;
    float *a, *ga;       /* SH_HASHED: the layer's array */
    size_t m;            /* SH_HASHED: its size */
    char name[64];
} sh_layer;

typedef struct sh_state {
    int layout;
    int scaling;          /* STABLE-RPS gradient scaling */
    double init_scale;    /* z ~ U(-init_scale * b, init_scale * b), b the weight-mean of the layers' bounds */
    int tile_rows, tile_cols;
    int nl;
    size_t N;             /* prunable weights */
    sh_layer *ly;
    float *z, *gz;        /* global array (SH_ROAST, SH_FOLD) */
    size_t m;
    float *gscale;        /* SH_FOLD with scaling: count_j / (sum lambda)^2 */
    uint64_t seed;
    int built;
    /* for generate/backprop, which run outside hooks: the host's pool (par: it has parallel_for) */
    const pb_host *host;
    pb_ctx *ctx;
    int par;
} sh_state;

/* splitmix64's finalizer: a bijective 64-bit mix. */
static inline uint64_t sh_mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/* A 32-bit mix (lowbias32) for the per-weight sign; vectorizes. */
static inline uint32_t sh_mix32(uint32_t x)
{
    x ^= x >> 16;
    x *= 0x7feb352dU;
    x ^= x >> 15;
    x *= 0x846ca68bU;
    return x ^ (x >> 16);
}

/* [0, m) from 32 random bits, without a division (Lemire). */
static inline uint32_t sh_range(uint64_t h, size_t m) { return (uint32_t)(((h >> 32) * (uint64_t)m) >> 32); }

/* The sign bit (0x80000000 or 0) of global weight g. */
static inline uint32_t sh_sign_bit(uint32_t seed32, uint32_t g) { return sh_mix32(g ^ seed32) & 0x80000000U; }

static inline float sh_signed(float v, uint32_t bit)
{
    uint32_t u;
    memcpy(&u, &v, 4);
    u ^= bit;
    memcpy(&v, &u, 4);
    return v;
}

/* HashedNets' element-wise hash of weight i of layer l: index and sign bit. */
static inline uint32_t sh_hashed_index(const sh_state *s, int l, size_t i, uint32_t *sign)
{
    uint64_t h = sh_mix64(s->seed ^ ((uint64_t)(l + 1) << 44) ^ (uint64_t)i);
    *sign = (uint32_t)(h & 1u) << 31;
    return sh_range(h, s->ly[l].m);
}

static int sh_push(const pb_host *h, pb_ctx *c, sh_layer *L, uint32_t i0, uint32_t len, uint32_t z0)
{
    if (L->nruns == L->cap) {
        size_t cap = L->cap ? 2 * L->cap : 64;
        sh_run *r = realloc(L->runs, cap * sizeof *r);
        if (!r)
            return h->fail(c, "out of memory for the runs of %s", L->name);
        L->runs = r;
        L->cap = cap;
    }
    L->runs[L->nruns++] = (sh_run){.i0 = i0, .len = len, .z0 = z0};
    return PB_PLUGIN_OK;
}

/* Weights [i0, i0 + len) of L read z from z0 on, wrapping at m: split into runs that do not wrap. */
static int sh_push_wrapped(const pb_host *h, pb_ctx *c, sh_layer *L, size_t m, size_t i0, size_t len, size_t z0)
{
    while (len > 0) {
        size_t take = m - z0 < len ? m - z0 : len;
        int rc = sh_push(h, c, L, (uint32_t)i0, (uint32_t)take, (uint32_t)z0);
        if (rc != PB_PLUGIN_OK)
            return rc;
        i0 += take;
        len -= take;
        z0 = 0;
    }
    return PB_PLUGIN_OK;
}

static void sh_destroy(void *p)
{
    sh_state *s = p;
    if (!s)
        return;
    for (int l = 0; l < s->nl; l++)
        free(s->ly[l].runs);
    free(s->ly);
    free(s->gscale);
    free(s);
}

/* create(): the state, with the layout's parameters. */
static int sh_create(const pb_host *h, pb_ctx *c, int layout, double init_scale, int tr, int tc, int scaling,
                     void **out)
{
    int rc = PB_NEED_HOST(h, c, add_array);
    if (rc == PB_PLUGIN_OK)
        rc = PB_NEED_HOST(h, c, metric);
    if (rc == PB_PLUGIN_OK)
        rc = pb_state_new(h, c, sizeof(sh_state), out);
    if (rc != PB_PLUGIN_OK)
        return rc;
    sh_state *s = *out;
    s->layout = layout;
    s->init_scale = init_scale;
    s->tile_rows = tr;
    s->tile_cols = tc;
    s->scaling = scaling;
    return PB_PLUGIN_OK;
}

/* attach(): the layers (a model without a prunable tensor is refused) and the hash seed. */
static int sh_attach(void *p, const pb_host *h, pb_ctx *c)
{
    sh_state *s = p;
    int nl = h->nweights(c);
    if (nl <= 0)
        return h->fail(c, "the model has no prunable (dense or conv) weight to generate from a shared array");
    if (!(s->ly = calloc((size_t)nl, sizeof *s->ly)))
        return h->fail(c, "out of memory");
    s->nl = nl;
    size_t N = 0;
    for (int l = 0; l < nl; l++) {
        pb_weights v = {.size = sizeof v};
        int rc = h->weights(c, l, &v);
        if (rc != PB_PLUGIN_OK)
            return rc;
        sh_layer *L = &s->ly[l];
        L->n = v.n;
        L->goff = N;
        L->rows = v.rows;
        L->cols = v.cols;
        L->bound = 1.0f / sqrtf((float)v.cols); /* cols = fan_in (in * kh * kw) */
        snprintf(L->name, sizeof L->name, "%s", v.name);
        N += v.n;
    }
    if (N >= 0xffffffffULL)
        return h->fail(c, "%zu prunable weights: the hashes index at most 2^32 - 1", N);
    s->N = N;
    s->seed = h->random(c);
    return PB_PLUGIN_OK;
}

/* A uniform draw in [-1, 1) from a splitmix64 stream. */
static inline float sh_uniform(uint64_t *state)
{
    *state += 0x9e3779b97f4a7c15ULL;
    return (float)((double)(sh_mix64(*state) >> 11) * 0x1.0p-53 * 2.0 - 1.0);
}

static int sh_report_reads(sh_state *s, const pb_host *h, pb_ctx *c)
{
    size_t big = s->layout == SH_HASHED ? 0 : s->m;
    for (int l = 0; l < s->nl && s->layout == SH_HASHED; l++)
        big = s->ly[l].m > big ? s->ly[l].m : big;
    unsigned char *seen = malloc(big ? big : 1);
    if (!seen)
        return h->fail(c, "out of memory");
    int rc = PB_PLUGIN_OK;
    for (int l = 0; l < s->nl && rc == PB_PLUGIN_OK; l++) {
        sh_layer *L = &s->ly[l];
        size_t m = s->layout == SH_HASHED ? L->m : s->m, reads = 0;
        memset(seen, 0, m);
        if (s->layout == SH_HASHED) {
            uint32_t sg;
            for (size_t i = 0; i < L->n; i++)
                seen[sh_hashed_index(s, l, i, &sg)] = 1;
        } else {
            for (size_t r = 0; r < L->nruns; r++)
                memset(seen + L->runs[r].z0, 1, L->runs[r].len);
        }
        for (size_t j = 0; j < m; j++)
            reads += seen[j];
        char name[96];
        snprintf(name, sizeof name, "reads.%s", L->name);
        rc = h->metric(c, name, (double)reads);
        /* a generated layer multiplies by all its weights and reads `reads` stored values */
        if (rc == PB_PLUGIN_OK && PB_HOST_HAS(h, set_layer_cost))
            rc = h->set_layer_cost(c, l, (double)L->n, (double)reads);
    }
    free(seen);
    return rc;
}

/* The run layouts' kernels, on GCC vector types and cloned for AVX-512 and
 * AVX2 (GNU ifunc), like the engine's hot loops: a weight's value and its
 * gradient's contribution are the same IEEE operations in a vector lane and
 * in the scalar tail (no contraction into FMAs under -std=c11), so where a
 * span is cut between vector and tail changes no bit. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define SH_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define SH_CLONES
#endif
#define SH_VL 16
typedef float sh_vf __attribute__((vector_size(SH_VL * sizeof(float)), aligned(sizeof(float))));
typedef uint32_t sh_vu __attribute__((vector_size(SH_VL * sizeof(uint32_t)), aligned(sizeof(uint32_t))));

/* sh_sign_bit of SH_VL consecutive global weights from g (a macro: a
 * function returning a vector would change the ABI between clones). */
#define SH_SIGN_BITS(bits, g, seed32)                                                                       \
    do {                                                                                                     \
        sh_vu x_ = (sh_iota + (g)) ^ (seed32);                                                              \
        x_ ^= x_ >> 16;                                                                                      \
        x_ *= 0x7feb352dU;                                                                                   \
        x_ ^= x_ >> 15;                                                                                      \
        x_ *= 0x846ca68bU;                                                                                   \
        (bits) = (x_ ^ (x_ >> 16)) & 0x80000000U;                                                            \
    } while (0)

static const sh_vu sh_iota = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};

/* w[k] = G(g + k) * lam * z[k], k < len. */
SH_CLONES static void sh_gen_span(float *restrict w, const float *restrict z, uint32_t g, uint32_t seed32, float lam,
                                  size_t len)
{
    size_t k = 0;
    for (; k + SH_VL <= len; k += SH_VL) {
        sh_vu bits;
        SH_SIGN_BITS(bits, g + (uint32_t)k, seed32);
        sh_vf v = lam * *(const sh_vf *)(z + k);
        *(sh_vf *)(w + k) = (sh_vf)((sh_vu)v ^ bits);
    }
    for (; k < len; k++)
        w[k] = sh_signed(lam * z[k], sh_sign_bit(seed32, g + (uint32_t)k));
}

/* gz[k] += G(g + k) * lam * gw[k] (times sc[k] if sc), k < len. */
SH_CLONES static void sh_back_span(float *restrict gz, const float *restrict gw, const float *restrict sc, uint32_t g,
                                   uint32_t seed32, float lam, size_t len)
{
    size_t k = 0;
    if (sc) {
        for (; k + SH_VL <= len; k += SH_VL) {
            sh_vu bits;
        SH_SIGN_BITS(bits, g + (uint32_t)k, seed32);
            sh_vf v = lam * *(const sh_vf *)(gw + k);
            *(sh_vf *)(gz + k) += (sh_vf)((sh_vu)v ^ bits) * *(const sh_vf *)(sc + k);
        }
        for (; k < len; k++)
            gz[k] += sh_signed(lam * gw[k], sh_sign_bit(seed32, g + (uint32_t)k)) * sc[k];
        return;
    }
    for (; k + SH_VL <= len; k += SH_VL) {
        sh_vu bits;
        SH_SIGN_BITS(bits, g + (uint32_t)k, seed32);
        sh_vf v = lam * *(const sh_vf *)(gw + k);
        *(sh_vf *)(gz + k) += (sh_vf)((sh_vu)v ^ bits);
    }
    for (; k < len; k++)
        gz[k] += sh_signed(lam * gw[k], sh_sign_bit(seed32, g + (uint32_t)k));
}

/* One layer's generation or gradient routing, as a host->parallel_for body. */
typedef struct sh_job {
    const sh_state *s;
    const sh_layer *L;
    float *w;       /* generate: the weights */
    const float *g; /* backprop: their gradient */
} sh_job;

/* Weights [lo, hi) of the layer: every run's part in that range. */
static void sh_gen_range(void *ud, long lo, long hi)
{
    const sh_job *j = ud;
    const sh_layer *L = j->L;
    const uint32_t seed32 = (uint32_t)(j->s->seed >> 32);
    for (size_t r = 0; r < L->nruns; r++) {
        const sh_run *u = &L->runs[r];
        size_t a = u->i0 > (size_t)lo ? u->i0 : (size_t)lo, b = u->i0 + u->len < (size_t)hi ? u->i0 + u->len : (size_t)hi;
        if (a < b)
            sh_gen_span(j->w + a, j->s->z + u->z0 + (a - u->i0), (uint32_t)(L->goff + a), seed32, L->lambda, b - a);
    }
}

/* Array values [lo, hi): every run's part that reads them, in run order, so
 * each value sums its weights' contributions in one fixed order however the
 * array is split among threads. */
static void sh_back_range(void *ud, long lo, long hi)
{
    const sh_job *j = ud;
    const sh_layer *L = j->L;
    const sh_state *s = j->s;
    const uint32_t seed32 = (uint32_t)(s->seed >> 32);
    for (size_t r = 0; r < L->nruns; r++) {
        const sh_run *u = &L->runs[r];
        size_t a = u->z0 > (size_t)lo ? u->z0 : (size_t)lo, b = u->z0 + u->len < (size_t)hi ? u->z0 + u->len : (size_t)hi;
        if (a >= b)
            continue;
        size_t i = u->i0 + (a - u->z0);
        sh_back_span(s->gz + a, j->g + i, s->gscale ? s->gscale + a : NULL, (uint32_t)(L->goff + i), seed32,
                     L->lambda, b - a);
    }
}

/* Layers of fewer weights run on the calling thread. Waking the pool's
 * workers costs more than splitting saves on smaller layers: with LeNet-300-100
 * (fc1: 235200 weights) on 2 threads a split at 16384 weights made the
 * stable_rps epoch slower (median 2.04 s vs 1.63 s on the calling thread, 9
 * alternated runs), since generation starts each forward after the step's
 * serial work, when the workers have gone to sleep. */
#define SH_PAR_MIN ((size_t)1 << 20)

static void sh_split(const sh_state *s, size_t n, size_t weights, pb_range_fn fn, sh_job *j)
{
    if (weights >= SH_PAR_MIN && s->par)
        s->host->parallel_for(s->ctx, (long)n, fn, j);
    else
        fn(j, 0, (long)n);
}

static void sh_generate(void *ud, int t, float *w, size_t n)
{
    const sh_state *s = ud;
    const sh_layer *L = &s->ly[t];
    (void)n;
    if (s->layout == SH_HASHED) {
        for (size_t i = 0; i < L->n; i++) {
            uint32_t sg, j = sh_hashed_index(s, t, i, &sg);
            w[i] = sh_signed(L->a[j], sg);
        }
        return;
    }
    sh_job j = {.s = s, .L = L, .w = w};
    sh_split(s, L->n, L->n, sh_gen_range, &j);
}

static void sh_backprop(void *ud, int t, const float *g, size_t n)
{
    const sh_state *s = ud;
    const sh_layer *L = &s->ly[t];
    (void)n;
    if (s->layout == SH_HASHED) {
        for (size_t i = 0; i < L->n; i++) {
            uint32_t sg, j = sh_hashed_index(s, t, i, &sg);
            L->ga[j] += sh_signed(g[i], sg);
        }
        return;
    }
    sh_job j = {.s = s, .L = L, .g = g};
    sh_split(s, s->m, L->n, sh_back_range, &j);
}

static int sh_build_roast(sh_state *s, const pb_host *h, pb_ctx *c)
{
    for (int l = 0; l < s->nl; l++) {
        sh_layer *L = &s->ly[l];
        int tr = s->tile_rows < L->rows ? s->tile_rows : L->rows;
        int tc = s->tile_cols < L->cols ? s->tile_cols : L->cols;
        uint64_t tile = 0;
        for (int bi = 0; bi < L->rows; bi += tr)
            for (int bj = 0; bj < L->cols; bj += tc, tile++) {
                int w = L->cols - bj < tc ? L->cols - bj : tc;
                int hgt = L->rows - bi < tr ? L->rows - bi : tr;
                size_t o = sh_range(sh_mix64(s->seed ^ ((uint64_t)(l + 1) << 40) ^ tile), s->m);
                for (int r = 0; r < hgt; r++) {
                    size_t i0 = (size_t)(bi + r) * (size_t)L->cols + (size_t)bj;
                    size_t z0 = (o + (size_t)r * (size_t)w) % s->m;
                    int rc = sh_push_wrapped(h, c, L, s->m, i0, (size_t)w, z0);
                    if (rc != PB_PLUGIN_OK)
                        return rc;
                }
            }
    }
    return PB_PLUGIN_OK;
}

static int sh_build_fold(sh_state *s, const pb_host *h, pb_ctx *c)
{
    const size_t m = s->m;
    int l = 0;
    for (size_t b = 0; b * m < s->N; b++) {
        size_t o = sh_range(sh_mix64(s->seed ^ 0x5ab1e0000000000ULL ^ b), m);
        size_t g = b * m, end = g + m < s->N ? g + m : s->N;
        while (g < end) {
            while (g >= s->ly[l].goff + s->ly[l].n)
                l++;
            sh_layer *L = &s->ly[l];
            size_t stop = L->goff + L->n < end ? L->goff + L->n : end;
            int rc = sh_push_wrapped(h, c, L, m, g - L->goff, stop - g, (o + (g - b * m)) % m);
            if (rc != PB_PLUGIN_OK)
                return rc;
            g = stop;
        }
    }
    if (!s->scaling)
        return PB_PLUGIN_OK;
    double *sum = calloc(m, sizeof *sum);
    double *cnt = calloc(m, sizeof *cnt);
    if (!sum || !cnt || !(s->gscale = malloc(m * sizeof *s->gscale))) {
        free(sum);
        free(cnt);
        return h->fail(c, "out of memory");
    }
    for (int k = 0; k < s->nl; k++)
        for (size_t r = 0; r < s->ly[k].nruns; r++) {
            const sh_run *u = &s->ly[k].runs[r];
            for (uint32_t j = 0; j < u->len; j++) {
                sum[u->z0 + j] += s->ly[k].lambda;
                cnt[u->z0 + j] += 1.0;
            }
        }
    for (size_t j = 0; j < m; j++)
        s->gscale[j] = cnt[j] > 0 ? (float)(cnt[j] / (sum[j] * sum[j])) : 0.0f;
    free(sum);
    free(cnt);
    return PB_PLUGIN_OK;
}

/* prune(): the arrays for target sparsity sp, their initialization, the maps, the generators. */
static int sh_prune(void *p, const pb_host *h, pb_ctx *c, double sp)
{
    sh_state *s = p;
    if (s->built)
        return h->fail(c, "the shared arrays are already built (prune called twice)");
    uint64_t rng = s->seed ^ 0x1a17ULL;
    if (s->layout == SH_HASHED) {
        for (int l = 0; l < s->nl; l++) {
            sh_layer *L = &s->ly[l];
            double want = (1.0 - sp) * (double)L->n;
            L->m = (size_t)llround(want);
            if (L->m < 1)
                return h->fail(c,
                               "sparsity %g leaves %s (%zu weights) an array of %.3g values, fewer than one; "
                               "per-layer arrays allow a sparsity of at most %.6g",
                               sp, L->name, L->n, want, 1.0 - 0.5 / (double)L->n);
            char name[96];
            snprintf(name, sizeof name, "%s.shared", L->name);
            int rc = h->add_array(c, name, L->m, &L->a, &L->ga);
            if (rc != PB_PLUGIN_OK)
                return rc;
            for (size_t j = 0; j < L->m; j++)
                L->a[j] = L->bound * sh_uniform(&rng);
            L->lambda = 1.0f;
        }
    } else {
        double want = (1.0 - sp) * (double)s->N;
        s->m = (size_t)llround(want);
        if (s->m < (size_t)s->nl)
            return h->fail(c,
                           "sparsity %g leaves a shared array of %zu values for %d layers, fewer than one per "
                           "layer; with %zu weights the sparsity can be at most %.6g",
                           sp, s->m, s->nl, s->N, 1.0 - ((double)s->nl - 0.5) / (double)s->N);
        int rc = h->add_array(c, "shared", s->m, &s->z, &s->gz);
        if (rc != PB_PLUGIN_OK)
            return rc;
        double bsum = 0;
        for (int l = 0; l < s->nl; l++)
            bsum += (double)s->ly[l].bound * (double)s->ly[l].n;
        double zb = s->init_scale * bsum / (double)s->N;
        for (int l = 0; l < s->nl; l++)
            s->ly[l].lambda = (float)((double)s->ly[l].bound / zb);
        for (size_t j = 0; j < s->m; j++)
            s->z[j] = (float)zb * sh_uniform(&rng);
        rc = s->layout == SH_ROAST ? sh_build_roast(s, h, c) : sh_build_fold(s, h, c);
        if (rc != PB_PLUGIN_OK)
            return rc;
    }
    s->built = 1;
    s->host = h;
    s->ctx = c;
    s->par = PB_HOST_HAS(h, parallel_for);
    pb_generator gen = {.ud = s, .generate = sh_generate, .backprop = sh_backprop};
    for (int l = 0; l < s->nl; l++) {
        int rc = h->set_generator(c, l, &gen);
        if (rc != PB_PLUGIN_OK)
            return rc;
    }
    size_t stored = 0;
    for (int l = 0; l < s->nl; l++)
        stored += s->layout == SH_HASHED ? s->ly[l].m : 0;
    stored += s->m;
    int rc = h->metric(c, "shared_values", (double)stored);
    if (rc == PB_PLUGIN_OK)
        rc = h->metric(c, "shared_compression", (double)s->N / (double)stored);
    if (rc == PB_PLUGIN_OK)
        rc = sh_report_reads(s, h, c);
    return rc;
}

#endif
