/* Plugins random, magnitude, global_magnitude, nm, gradual and iss_p, loaded
 * as modules and driven through the host (pb_host.h) and the job (pb_job.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/pb_data.h"
#include "host/pb_host.h"
#include "exp/pb_job.h"
#include "engine/pb_model.h"
#include "host/pb_plugin.h"
#include "tap.h"

static pb_dataset train, test;

/* A model, a host context and one bound plugin. Must not move once opened
 * (the context points into it). */
typedef struct rig {
    pb_model m;
    pb_ctx ctx;
    pb_loaded pl;
    char err[PB_ERRLEN];
    int open;
} rig;

static pb_train_cfg quick_cfg(int epochs)
{
    pb_train_cfg c;
    pb_train_defaults(&c);
    c.epochs = epochs;
    c.batch = 32;
    c.opt.lr = 0.05;
    c.eval_every = 0;
    c.log_epochs = 0;
    return c;
}

/* Binds method (with "k=v" args) to a context over m, which the caller built. */
static int rig_bind(rig *r, const char *method, const char *const *args, int nargs)
{
    pb_train_cfg cfg = quick_cfg(1);
    double vals[64];
    int rc = pb_ctx_init(&r->ctx, &r->m, &train, &test, &cfg, 5, r->err, sizeof r->err);
    if (rc == PB_OK)
        rc = pb_plugin_find(method, NULL, &r->pl, r->err, sizeof r->err);
    if (rc == PB_OK)
        rc = pb_plugin_parse_args(&r->pl.desc, args, nargs, vals, r->err, sizeof r->err);
    if (rc == PB_OK)
        rc = pb_ctx_bind(&r->ctx, &r->pl, vals);
    r->open = 1;
    if (rc != PB_OK)
        printf("# %s: %s\n", method, r->err);
    return rc;
}

/* An MLP 64-32-16-4 on the 8x8 synthetic set. */
static int rig_mlp(rig *r, const char *method, const char *const *args, int nargs, uint64_t seed)
{
    memset(r, 0, sizeof *r);
    static const int hidden[] = {32, 16};
    int rc = pb_model_build(&r->m, "mlp", 1.0, hidden, 2, 1, 8, 8, 4, r->err, sizeof r->err);
    if (rc == PB_OK)
        rc = pb_model_finalize(&r->m, 32, r->err, sizeof r->err);
    if (rc != PB_OK) {
        printf("# model: %s\n", r->err);
        return rc;
    }
    pb_model_init_weights(&r->m, seed);
    return rig_bind(r, method, args, nargs);
}

static void rig_close(rig *r)
{
    if (r->open)
        pb_ctx_free(&r->ctx);
    pb_model_free(&r->m);
    pb_plugin_close(&r->pl);
    r->open = 0;
}

static size_t kept(const pb_model *m, int i)
{
    const pb_param *p = pb_model_prunable(m, i);
    size_t k = 0;
    for (size_t j = 0; j < p->n; j++)
        k += p->mask[j] != 0.0f;
    return k;
}

static size_t kept_all(const pb_model *m, size_t *total)
{
    size_t k = 0, t = 0;
    for (int i = 0; i < pb_model_nprunable(m); i++) {
        k += kept(m, i);
        t += pb_model_prunable(m, i)->n;
    }
    if (total)
        *total = t;
    return k;
}

static int masked_are_zero(const pb_model *m)
{
    for (int i = 0; i < pb_model_nprunable(m); i++) {
        const pb_param *p = pb_model_prunable(m, i);
        for (size_t j = 0; j < p->n; j++)
            if (p->mask[j] == 0.0f && p->w[j] != 0.0f)
                return 0;
    }
    return 1;
}

static int within_one(size_t a, size_t b) { return a + 1 >= b && b + 1 >= a; }

static size_t target_keep(double s, size_t n) { return (size_t)llround((1.0 - s) * (double)n); }

static int per_layer_exact(const pb_model *m, double s)
{
    for (int i = 0; i < pb_model_nprunable(m); i++)
        if (kept(m, i) != target_keep(s, pb_model_prunable(m, i)->n)) {
            printf("# %s keeps %zu, expected %zu\n", pb_model_prunable(m, i)->name, kept(m, i),
                   target_keep(s, pb_model_prunable(m, i)->n));
            return 0;
        }
    return 1;
}

/* Copies of all masks, to check that pruned weights stay pruned. */
static float **save_masks(const pb_model *m)
{
    int np = pb_model_nprunable(m);
    float **v = calloc((size_t)np, sizeof *v);
    for (int i = 0; i < np; i++) {
        const pb_param *p = pb_model_prunable(m, i);
        v[i] = malloc(p->n * sizeof(float));
        memcpy(v[i], p->mask, p->n * sizeof(float));
    }
    return v;
}

static float **save_weights(const pb_model *m)
{
    int np = pb_model_nprunable(m);
    float **v = calloc((size_t)np, sizeof *v);
    for (int i = 0; i < np; i++) {
        const pb_param *p = pb_model_prunable(m, i);
        v[i] = malloc(p->n * sizeof(float));
        memcpy(v[i], p->w, p->n * sizeof(float));
    }
    return v;
}

static void free_masks(float **v, int np)
{
    for (int i = 0; i < np && v; i++)
        free(v[i]);
    free(v);
}

/* 1 if every weight pruned in old is still pruned (mask 0 and value 0). */
static int still_pruned(const pb_model *m, float **old)
{
    for (int i = 0; i < pb_model_nprunable(m); i++) {
        const pb_param *p = pb_model_prunable(m, i);
        for (size_t j = 0; j < p->n; j++)
            if (old[i][j] == 0.0f && (p->mask[j] != 0.0f || p->w[j] != 0.0f))
                return 0;
    }
    return 1;
}

static int same_masks(const pb_model *m, float **old)
{
    for (int i = 0; i < pb_model_nprunable(m); i++) {
        const pb_param *p = pb_model_prunable(m, i);
        if (memcmp(p->mask, old[i], p->n * sizeof(float)))
            return 0;
    }
    return 1;
}

/* ---- exact sparsity for the one-shot methods ---- */

static void test_exact_sparsity(void)
{
    static const struct {
        const char *method, *arg;
        int per_layer;
    } cases[] = {
        {"random", "scope=global", 0},        {"random", "scope=layer", 1},
        {"magnitude", NULL, 1},               {"global_magnitude", NULL, 0},
        {"global_magnitude", "min_threshold=0.02", 0},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        rig r;
        const char *args[1] = {cases[k].arg};
        int rc = rig_mlp(&r, cases[k].method, args, cases[k].arg ? 1 : 0, 11);
        double s = 0.9;
        if (rc == PB_OK)
            rc = pb_ctx_prune(&r.ctx, s);
        size_t N, K = kept_all(&r.m, &N);
        ok(rc == PB_OK && within_one(K, target_keep(s, N)) && masked_are_zero(&r.m),
           "%s %s: s=0.9 keeps %zu of %zu (target %zu)", cases[k].method, cases[k].arg ? cases[k].arg : "",
           K, N, target_keep(s, N));
        if (cases[k].per_layer)
            ok(rc == PB_OK && per_layer_exact(&r.m, s), "%s %s: every layer at exactly s", cases[k].method,
               cases[k].arg ? cases[k].arg : "");
        if (k == 2) { /* masks survive fine-tuning steps */
            float **old = save_masks(&r.m);
            rc = pb_ctx_train(&r.ctx, 2, "finetune", NULL);
            ok(rc == PB_OK && same_masks(&r.m, old) && masked_are_zero(&r.m),
               "magnitude: masks and zeros survive 2 epochs of fine-tuning");
            free_masks(old, pb_model_nprunable(&r.m));
        }
        rig_close(&r);
    }
}

/* ---- magnitude picks the known weights on a hand-built network ---- */

static const float fc1_w[12] = {0.5f, -0.1f, 0.9f, 0.2f, -0.7f, 0.05f, 0.3f, -0.3f, 0.8f, -0.6f, 0.01f, 0.4f};
static const float fc2_w[6] = {0.2f, -0.25f, 0.1f, 0.6f, -0.05f, 0.3f};

static int rig_tiny(rig *r, const char *method)
{
    memset(r, 0, sizeof *r);
    pb_model_init(&r->m, "custom", 1, 1, 4, 2);
    if (pb_model_dense(&r->m, "fc1", 3, 0, r->err, sizeof r->err) < 0 ||
        pb_model_simple(&r->m, PB_RELU, r->err, sizeof r->err) < 0 ||
        pb_model_dense(&r->m, "fc2", 2, 0, r->err, sizeof r->err) < 0 ||
        pb_model_finalize(&r->m, 8, r->err, sizeof r->err) != PB_OK) {
        printf("# tiny model: %s\n", r->err);
        return PB_EINTERNAL;
    }
    memcpy(pb_model_prunable(&r->m, 0)->w, fc1_w, sizeof fc1_w);
    memcpy(pb_model_prunable(&r->m, 1)->w, fc2_w, sizeof fc2_w);
    return rig_bind(r, method, NULL, 0);
}

static int mask_is(const pb_model *m, int i, const int *keep, int nkeep)
{
    const pb_param *p = pb_model_prunable(m, i);
    for (size_t j = 0; j < p->n; j++) {
        int want = 0;
        for (int q = 0; q < nkeep; q++)
            want |= keep[q] == (int)j;
        float expect = want ? (i == 0 ? fc1_w[j] : fc2_w[j]) : 0.0f;
        if ((p->mask[j] != 0.0f) != want || p->w[j] != expect)
            return 0;
    }
    return 1;
}

static void test_known_weights(void)
{
    rig r;
    /* s = 0.4: fc1 keeps round(7.2) = 7 of 12 (|0.3| tie at 6 and 7: the lower index), fc2 round(3.6) = 4 */
    int rc = rig_tiny(&r, "magnitude");
    if (rc == PB_OK)
        rc = pb_ctx_prune(&r.ctx, 0.4);
    static const int k1[] = {0, 2, 4, 6, 8, 9, 11}, k2[] = {0, 1, 3, 5};
    ok(rc == PB_OK && mask_is(&r.m, 0, k1, 7) && mask_is(&r.m, 1, k2, 4),
       "magnitude: hand-set weights, the expected ones kept per layer (ties to the lower index)");
    rig_close(&r);

    /* global: K = 9 of 18; the three |0.3| ties go to the earlier layer first */
    rc = rig_tiny(&r, "global_magnitude");
    if (rc == PB_OK)
        rc = pb_ctx_prune(&r.ctx, 0.5);
    static const int g1[] = {0, 2, 4, 6, 7, 8, 9, 11}, g2[] = {3};
    ok(rc == PB_OK && mask_is(&r.m, 0, g1, 8) && mask_is(&r.m, 1, g2, 1),
       "global_magnitude: hand-set weights, the 9 largest |w| over both layers kept");
    rig_close(&r);
}

/* ---- MT: floors and exact totals ---- */

static void test_mt(void)
{
    /* fc1 scaled down 1000x: plain global MP keeps none of it at s = 0.9 */
    static const struct {
        const char *mt;
        double s;
    } cases[] = {{"min_threshold=0.01", 0.9}, {"min_threshold=0.05", 0.7}};
    for (size_t k = 0; k < 2; k++) {
        rig r;
        const char *args[1] = {cases[k].mt};
        int rc = rig_mlp(&r, "global_magnitude", args, 1, 3);
        pb_param *fc1 = pb_model_prunable(&r.m, 0);
        float *orig = malloc(fc1->n * sizeof(float));
        for (size_t j = 0; j < fc1->n; j++) {
            fc1->w[j] *= 1e-3f;
            orig[j] = fc1->w[j];
        }
        if (rc == PB_OK)
            rc = pb_ctx_prune(&r.ctx, cases[k].s);
        size_t N, K = kept_all(&r.m, &N);
        size_t M = (size_t)floor((double)N * atof(cases[k].mt + strlen("min_threshold=")));
        int floors = 1;
        for (int i = 0; i < pb_model_nprunable(&r.m); i++) {
            size_t n = pb_model_prunable(&r.m, i)->n;
            size_t want = n < M ? n : M;
            if (kept(&r.m, i) < want) {
                printf("# %s keeps %zu < %zu\n", pb_model_prunable(&r.m, i)->name, kept(&r.m, i), want);
                floors = 0;
            }
        }
        ok(rc == PB_OK && floors, "global_magnitude %s s=%g: every layer keeps >= M=%zu (or all if smaller)",
           cases[k].mt, cases[k].s, M);
        ok(rc == PB_OK && K == target_keep(cases[k].s, N), "global_magnitude %s s=%g: total kept %zu == %zu",
           cases[k].mt, cases[k].s, K, target_keep(cases[k].s, N));
        /* fc1 keeps its own largest |w| */
        float minkept = INFINITY, maxpruned = 0;
        for (size_t j = 0; j < fc1->n; j++) {
            float a = fabsf(orig[j]);
            if (fc1->mask[j] != 0.0f)
                minkept = a < minkept ? a : minkept;
            else
                maxpruned = a > maxpruned ? a : maxpruned;
        }
        if (k == 0)
            ok(rc == PB_OK && kept(&r.m, 0) == M && minkept >= maxpruned,
               "global_magnitude %s: the collapsed layer is clamped to exactly M by its own magnitude",
               cases[k].mt);
        else
            ok(rc == PB_OK && kept(&r.m, 2) == pb_model_prunable(&r.m, 2)->n && kept(&r.m, 1) <= 512 &&
                   minkept >= maxpruned,
               "global_magnitude %s: a layer smaller than M is not pruned, no layer over its size",
               cases[k].mt);
        free(orig);
        rig_close(&r);
    }
    /* floors over the budget: 3 layers x M=13 > 26 kept at s = 0.99; the
     * largest feasible M is 8 (mt = 8/2624) */
    rig r;
    const char *bad[1] = {"min_threshold=0.005"};
    int rc = rig_mlp(&r, "global_magnitude", bad, 1, 3);
    rc = rc ? rc : pb_ctx_prune(&r.ctx, 0.99);
    size_t N, K = kept_all(&r.m, &N);
    ok(rc != PB_OK && strstr(r.err, "infeasible") && strstr(r.err, "0.00304878") && K == N,
       "global_magnitude: floors over the budget are refused before pruning, naming the largest feasible mt (%s)",
       r.err);
    rig_close(&r);
    const char *denser[2] = {"min_threshold=0.005", "on_infeasible=denser"};
    rc = rig_mlp(&r, "global_magnitude", denser, 2, 3);
    rc = rc ? rc : pb_ctx_prune(&r.ctx, 0.99);
    K = kept_all(&r.m, &N);
    ok(rc == PB_OK && K == 39, "global_magnitude on_infeasible=denser keeps every floor: %zu kept (3 x 13)", K);
    rig_close(&r);
}

/* ---- N:M ---- */

/* orig: the weights before pruning (NULL: don't check which were kept). */
static int groups_hold(const pb_model *m, int n, int mm, float **orig)
{
    for (int i = 0; i < pb_model_nprunable(m); i++) {
        const pb_param *p = pb_model_prunable(m, i);
        int rows = p->shape[0], cols = (int)(p->n / (size_t)rows);
        for (int r = 0; r < rows; r++)
            for (int j = 0; j < cols; j += mm) {
                int len = cols - j < mm ? cols - j : mm;
                int want = len == mm ? n : (int)floor((double)n * len / mm + 0.5), got = 0;
                float minkept = INFINITY, maxpruned = -1;
                for (int q = 0; q < len; q++) {
                    size_t at = (size_t)r * cols + j + q;
                    float a = orig ? fabsf(orig[i][at]) : 0;
                    if (p->mask[at] != 0.0f) {
                        got++;
                        minkept = fminf(minkept, a);
                    } else
                        maxpruned = fmaxf(maxpruned, a);
                }
                if (got != want || maxpruned > minkept) {
                    printf("# %s row %d group at %d: %d kept, want %d\n", p->name, r, j, got, want);
                    return 0;
                }
            }
    }
    return 1;
}

static void test_nm(void)
{
    static const struct {
        const char *a[3];
        int n, m, top;
    } cases[] = {
        {{"n=2", "m=4", "score=magnitude"}, 2, 4, 1},
        {{"n=2", "m=4", "score=wanda"}, 2, 4, 0},
        {{"n=3", "m=5", "score=magnitude"}, 3, 5, 1}, /* ragged: 64, 32, 16 inputs */
        {{"n=1", "m=8", "score=wanda"}, 1, 8, 0},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        rig r;
        int rc = rig_mlp(&r, "nm", cases[k].a, 3, 7);
        float **orig = save_weights(&r.m);
        if (rc == PB_OK)
            rc = pb_ctx_prune(&r.ctx, 0.9); /* ignored */
        ok(rc == PB_OK && groups_hold(&r.m, cases[k].n, cases[k].m, cases[k].top ? orig : NULL) &&
               masked_are_zero(&r.m),
           "nm %s %s %s: every group keeps exactly its count%s", cases[k].a[0], cases[k].a[1], cases[k].a[2],
           cases[k].top ? ", the largest |w|" : "");
        free_masks(orig, pb_model_nprunable(&r.m));
        rig_close(&r);
    }
    rig r;
    const char *bad[] = {"n=5", "m=4"};
    int rc = rig_mlp(&r, "nm", bad, 2, 7);
    ok(rc != PB_OK && strstr(r.err, "n=5 is larger than m=4"), "nm n=5 m=4 is refused: %s", r.err);
    rig_close(&r);
}

/* ---- gradual ---- */

static double cubic(double si, double sf, long k, long n)
{
    double r = 1.0 - (double)k / (double)n;
    return sf + (si - sf) * r * r * r;
}

static void test_gradual(void)
{
    /* 512 examples, batch 32: 16 steps an epoch; total 64, dt 4: t0 = 6, end
     * round(41.6) = 42, n = 9 */
    rig r;
    const char *args[] = {"dt=4", "total_steps=64"};
    int rc = rig_mlp(&r, "gradual", args, 2, 9);
    double sf = 0.8;
    if (rc == PB_OK)
        rc = pb_ctx_prune(&r.ctx, sf);
    int monotone = 1, schedule = 1;
    float **old = NULL;
    for (int e = 1; e <= 4 && rc == PB_OK; e++) {
        rc = pb_ctx_train(&r.ctx, 1, "train", NULL);
        if (old && !still_pruned(&r.m, old))
            monotone = 0;
        free_masks(old, pb_model_nprunable(&r.m));
        old = save_masks(&r.m);
        long k = (16 * e - 6) / 4;
        k = k > 9 ? 9 : k;
        if (!per_layer_exact(&r.m, cubic(0, sf, k, 9))) {
            printf("# after epoch %d (step %d), expected s=%.4f\n", e, 16 * e, cubic(0, sf, k, 9));
            schedule = 0;
        }
    }
    ok(rc == PB_OK && schedule, "gradual: each layer follows the cubic schedule after every epoch");
    ok(rc == PB_OK && monotone && masked_are_zero(&r.m), "gradual: pruned weights stay pruned and zero");
    ok(rc == PB_OK && per_layer_exact(&r.m, sf), "gradual: final sparsity %.2f exact in every layer", sf);
    free_masks(old, pb_model_nprunable(&r.m));
    rig_close(&r);

    /* the schedule from the host's total_steps, then fine-tuning leaves the mask alone */
    const char *a2[] = {"dt=2", "initial_sparsity=0.2", "start=0", "end=1"};
    rc = rig_mlp(&r, "gradual", a2, 4, 9);
    sf = 0.95;
    if (rc == PB_OK)
        rc = pb_ctx_prune(&r.ctx, sf);
    if (rc == PB_OK)
        rc = pb_ctx_train(&r.ctx, 3, "train", NULL);
    ok(rc == PB_OK && per_layer_exact(&r.m, sf) && masked_are_zero(&r.m),
       "gradual (total_steps from the host, start=0 end=1): final sparsity exact");
    old = save_masks(&r.m);
    if (rc == PB_OK)
        rc = pb_ctx_train(&r.ctx, 2, "finetune", NULL);
    ok(rc == PB_OK && same_masks(&r.m, old) && masked_are_zero(&r.m),
       "gradual: the frozen mask survives 2 more epochs of training");
    free_masks(old, pb_model_nprunable(&r.m));
    rig_close(&r);

    rc = rig_mlp(&r, "gradual", NULL, 0, 9);
    if (rc == PB_OK)
        rc = pb_ctx_train(&r.ctx, 1, "train", NULL);
    ok(rc != PB_OK && strstr(r.err, "target sparsity"), "gradual without a target fails clearly: %s", r.err);
    rig_close(&r);
}

/* ---- ISS-P ---- */

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* One after_step by hand: the k smallest |w| of each layer times alpha, rest
 * untouched, masks untouched. */
static void test_iss_step(double alpha)
{
    rig r;
    char a[32];
    snprintf(a, sizeof a, "alpha=%g", alpha);
    const char *args[] = {a, "kp=0.5", "ramp=0", "total_steps=100"};
    int rc = rig_mlp(&r, "iss_p", args, 4, 13);
    double s = 0.5;
    if (rc == PB_OK)
        rc = pb_ctx_prune(&r.ctx, s);
    int np = pb_model_nprunable(&r.m);
    float **before = calloc((size_t)np, sizeof *before);
    for (int i = 0; i < np; i++) {
        pb_param *p = pb_model_prunable(&r.m, i);
        before[i] = malloc(p->n * sizeof(float));
        memcpy(before[i], p->w, p->n * sizeof(float));
    }
    const pb_plugin *d = &r.pl.desc;
    if (rc == PB_OK)
        rc = d->after_step(r.ctx.state, &pb_host_table, &r.ctx, 1);
    int shrunk = 1, untouched = 1;
    for (int i = 0; i < np && rc == PB_OK; i++) {
        pb_param *p = pb_model_prunable(&r.m, i);
        float *sorted = malloc(p->n * sizeof(float));
        for (size_t j = 0; j < p->n; j++)
            sorted[j] = fabsf(before[i][j]);
        qsort(sorted, p->n, sizeof(float), cmp_float);
        size_t k = target_keep(1.0 - s, p->n); /* round(s*n) shrunk */
        float t = sorted[k - 1];
        size_t nshrunk = 0;
        for (size_t j = 0; j < p->n; j++) {
            float expect = fabsf(before[i][j]) <= t ? (float)(before[i][j] * alpha) : before[i][j];
            nshrunk += fabsf(before[i][j]) <= t;
            if (p->w[j] != expect)
                shrunk = 0;
            if (p->mask[j] != 1.0f)
                untouched = 0;
        }
        if (nshrunk != k)
            shrunk = 0;
        free(sorted);
    }
    ok(rc == PB_OK && shrunk, "iss_p alpha=%g: one step multiplies exactly the round(pr*n) smallest |w| by alpha",
       alpha);
    ok(rc == PB_OK && untouched, "iss_p alpha=%g: shrinking leaves the mask alone", alpha);
    /* a shrunk weight that an update makes large is no longer shrunk: it came back */
    pb_param *p0 = pb_model_prunable(&r.m, 0);
    size_t jmin = 0;
    for (size_t j = 1; j < p0->n; j++)
        if (fabsf(before[0][j]) < fabsf(before[0][jmin]))
            jmin = j;
    p0->w[jmin] = 1.0f;
    if (rc == PB_OK)
        rc = d->after_step(r.ctx.state, &pb_host_table, &r.ctx, 2);
    ok(rc == PB_OK && p0->w[jmin] == 1.0f && p0->mask[jmin] == 1.0f,
       "iss_p alpha=%g: a shrunk weight that grows large is left alone the next step", alpha);
    if (rc == PB_OK)
        rc = d->after_step(r.ctx.state, &pb_host_table, &r.ctx, 50);
    ok(rc == PB_OK && per_layer_exact(&r.m, s) && masked_are_zero(&r.m),
       "iss_p alpha=%g: at K_p the hard mask is exact in every layer", alpha);
    for (int i = 0; i < np; i++)
        free(before[i]);
    free(before);
    rig_close(&r);
}

static size_t zeros(const pb_model *m, int i)
{
    const pb_param *p = pb_model_prunable(m, i);
    size_t z = 0;
    for (size_t j = 0; j < p->n; j++)
        z += p->w[j] == 0.0f;
    return z;
}

static void test_iss_training(double alpha)
{
    /* 64 steps: the shrink fraction reaches s at step 32, the mask freezes at 51 */
    rig r;
    char a[32];
    snprintf(a, sizeof a, "alpha=%g", alpha);
    const char *args[] = {a, "total_steps=64"};
    int rc = rig_mlp(&r, "iss_p", args, 2, 17);
    double s = 0.7;
    if (rc == PB_OK)
        rc = pb_ctx_prune(&r.ctx, s);
    if (rc == PB_OK)
        rc = pb_ctx_train(&r.ctx, 2, "train", NULL);
    int np = pb_model_nprunable(&r.m);
    size_t N, K = kept_all(&r.m, &N);
    int hard = 1, soft = 1;
    for (int i = 0; i < np; i++) {
        size_t k = target_keep(1.0 - s, pb_model_prunable(&r.m, i)->n);
        hard &= zeros(&r.m, i) >= k;
        soft &= zeros(&r.m, i) < k / 10;
    }
    if (alpha == 0)
        ok(rc == PB_OK && K == N && hard, "iss_p alpha=0 at step 32: >= round(s*n) exact zeros per layer, no mask");
    else
        ok(rc == PB_OK && K == N && soft, "iss_p alpha=%g at step 32: weights shrunk, not zeroed, no mask", alpha);
    if (rc == PB_OK)
        rc = pb_ctx_train(&r.ctx, 2, "train", NULL);
    ok(rc == PB_OK && per_layer_exact(&r.m, s) && masked_are_zero(&r.m),
       "iss_p alpha=%g: after K_p the hard mask is exact (s=%.2f per layer)", alpha, s);
    float **old = save_masks(&r.m);
    if (rc == PB_OK)
        rc = pb_ctx_train(&r.ctx, 1, "finetune", NULL);
    ok(rc == PB_OK && same_masks(&r.m, old) && masked_are_zero(&r.m),
       "iss_p alpha=%g: the mask survives fine-tuning", alpha);
    free_masks(old, np);
    rig_close(&r);
}

/* ---- through the job, as `prunebench prune` runs them ---- */

static void test_job(const char *method, const char *arg, double s, double expect_s)
{
    pb_job j;
    pb_job_defaults(&j);
    static const int hidden[] = {64};
    j.model = "mlp";
    j.hidden = hidden;
    j.nhidden = 1;
    j.dataset = "synthetic";
    j.threads = 1;
    j.train.epochs = 1;
    j.train.log_epochs = 0;
    j.finetune.epochs = 1;
    j.finetune.log_epochs = 0;
    j.method = method;
    if (arg)
        j.args[j.nargs++] = arg;
    j.sparsity = s;
    pb_job_result res;
    char err[PB_ERRLEN] = "";
    int rc = pb_job_run(&j, &res, err, sizeof err);
    if (rc != PB_OK)
        printf("# %s\n", err);
    size_t want = target_keep(expect_s, res.prunable);
    ok(rc == PB_OK && within_one(res.prunable_nonzero, want) && res.test_acc > 0.15,
       "job %s %s s=%g: %zu of %zu kept (want %zu), test acc %.3f", method, arg ? arg : "", s,
       res.prunable_nonzero, res.prunable, want, res.test_acc);
}

int main(void)
{
    char err[PB_ERRLEN];
    if (pb_data_synthetic_task(&train, 512, 1, 8, 8, 4, 21, 1, err, sizeof err) != PB_OK ||
        pb_data_synthetic_task(&test, 256, 1, 8, 8, 4, 21, 2, err, sizeof err) != PB_OK) {
        printf("Bail out! %s\n", err);
        return 1;
    }
    test_exact_sparsity();
    test_known_weights();
    test_mt();
    test_nm();
    test_gradual();
    test_iss_step(0);
    test_iss_step(0.95);
    test_iss_training(0);
    test_iss_training(0.95);
    test_job("magnitude", NULL, 0.9, 0.9);
    test_job("global_magnitude", "min_threshold=0.001", 0.95, 0.95);
    test_job("nm", "score=wanda", 0.9, 0.5);
    test_job("gradual", "dt=5", 0.8, 0.8);
    test_job("iss_p", "alpha=0", 0.8, 0.8);
    tap_plan(tap_n);
    pb_data_free(&train);
    pb_data_free(&test);
    return tap_done();
}
