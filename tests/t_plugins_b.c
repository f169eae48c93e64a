/* Plugins snip, grasp, synflow, lottery and channel, loaded from the build tree
 * and run through the host (pb_host.h), checked against scores and masks
 * computed here. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/pb_par.h"
#include "engine/pb_data.h"
#include "host/pb_host.h"
#include "exp/pb_job.h"
#include "engine/pb_model.h"
#include "host/pb_plugin.h"
#include "engine/pb_train.h"
#include "tap.h"

static char err[PB_ERRLEN];

/* ---------- helpers ---------- */

typedef struct bound {
    pb_loaded lp;
    pb_ctx ctx;
    int loaded;
} bound;

/* Loads `method`, parses args and binds it to a fresh context over m. */
static int bind(bound *b, const char *method, const char *const *args, int nargs, pb_model *m,
                const pb_dataset *tr, const pb_dataset *te, const pb_train_cfg *cfg, uint64_t seed)
{
    double vals[64];
    memset(b, 0, sizeof *b);
    int rc = pb_plugin_find(method, NULL, &b->lp, err, sizeof err);
    if (rc != PB_OK)
        return rc;
    b->loaded = 1;
    if ((rc = pb_plugin_parse_args(&b->lp.desc, args, nargs, vals, err, sizeof err)) != PB_OK)
        return rc;
    if ((rc = pb_ctx_init(&b->ctx, m, tr, te, cfg, seed, err, sizeof err)) != PB_OK)
        return rc;
    return pb_ctx_bind(&b->ctx, &b->lp, vals);
}

static void unbind(bound *b)
{
    pb_ctx_free(&b->ctx);
    if (b->loaded)
        pb_plugin_close(&b->lp);
    b->loaded = 0;
}

static size_t mask_ones(const pb_model *m)
{
    size_t k = 0;
    for (int i = 0; i < pb_model_nprunable(m); i++) {
        const pb_param *p = pb_model_prunable(m, i);
        for (size_t j = 0; j < p->n; j++)
            k += p->mask[j] != 0.0f;
    }
    return k;
}

static size_t prunable_total(const pb_model *m)
{
    size_t t, nz;
    pb_model_sparsity(m, &t, &nz);
    return t;
}

/* Expected global top-k of scores (ties: lower tensor, then lower index) as a
 * mask, compared with the model's masks. Returns the number of differences. */
static size_t topk_mismatch(const pb_model *m, float **scores, double sparsity)
{
    int np = pb_model_nprunable(m);
    size_t total = prunable_total(m), k = (size_t)llround((1.0 - sparsity) * (double)total);
    float *all = malloc(total * sizeof(float));
    size_t q = 0;
    for (int i = 0; i < np; i++)
        for (size_t j = 0; j < pb_model_prunable(m, i)->n; j++)
            all[q++] = scores[i][j];
    /* threshold: the k-th largest, by a plain sort of a copy */
    float *s = malloc(total * sizeof(float));
    memcpy(s, all, total * sizeof(float));
    for (size_t a = 1; a < total; a++) { /* insertion sort, descending: the nets here are tiny */
        float v = s[a];
        size_t b = a;
        for (; b > 0 && s[b - 1] < v; b--)
            s[b] = s[b - 1];
        s[b] = v;
    }
    float thr = k ? s[k - 1] : INFINITY;
    size_t above = 0;
    for (size_t a = 0; a < total; a++)
        above += all[a] > thr;
    size_t ties = k - above, diff = 0;
    q = 0;
    for (int i = 0; i < np; i++) {
        const pb_param *p = pb_model_prunable(m, i);
        for (size_t j = 0; j < p->n; j++, q++) {
            int keep = all[q] > thr || (all[q] == thr && ties > 0 && ties--);
            diff += keep != (p->mask[j] != 0.0f);
        }
    }
    free(s);
    free(all);
    return diff;
}

static float **alloc_like(const pb_model *m)
{
    int np = pb_model_nprunable(m);
    float **a = calloc((size_t)np, sizeof *a);
    for (int i = 0; i < np; i++)
        a[i] = calloc(pb_model_prunable(m, i)->n, sizeof(float));
    return a;
}

static void free_n(float **a, int n)
{
    for (int i = 0; i < n; i++)
        free(a[i]);
    free(a);
}

static void free_like(const pb_model *m, float **a) { free_n(a, pb_model_nprunable(m)); }

static int tiny_mlp(pb_model *m, int in, int hidden, int out, int bias, uint64_t seed)
{
    pb_model_init(m, "custom", 1, 1, in, out);
    if (pb_model_dense(m, NULL, hidden, bias, err, sizeof err) < 0 ||
        pb_model_simple(m, PB_RELU, err, sizeof err) < 0 || pb_model_dense(m, NULL, out, bias, err, sizeof err) < 0 ||
        pb_model_finalize(m, 64, err, sizeof err) != PB_OK)
        return -1;
    pb_model_init_weights(m, seed);
    return 0;
}

static pb_train_cfg quick_cfg(void)
{
    pb_train_cfg c;
    pb_train_defaults(&c);
    c.epochs = 1;
    c.batch = 32;
    c.opt.lr = 0.05;
    c.log_epochs = 0;
    c.progress = 0;
    c.seed = 3;
    return c;
}

/* ---------- SNIP and GraSP against scores computed here ---------- */

static void test_snip_grasp(void)
{
    pb_dataset tr;
    pb_train_cfg cfg = quick_cfg();
    if (pb_data_synthetic_task(&tr, 96, 1, 1, 12, 3, 5, 6, err, sizeof err) != PB_OK) {
        ok(0, "synthetic data: %s", err);
        return;
    }
    /* SNIP: |g*w| on the very examples the host drew */
    {
        pb_model m, ref;
        bound b;
        const char *args[] = {"examples=48"};
        int rc = tiny_mlp(&m, 12, 16, 3, 1, 11);
        if (rc == 0)
            rc = pb_model_clone(&m, &ref, 64, err, sizeof err);
        if (rc == 0)
            rc = bind(&b, "snip", args, 1, &m, &tr, &tr, &cfg, 21);
        if (rc == 0)
            rc = pb_ctx_prune(&b.ctx, 0.7);
        ok(rc == 0, "snip prunes a tiny net (%s)", rc ? err : "ok");
        if (rc == 0) {
            double loss;
            rc = pb_model_grad_on(&ref, &tr, b.ctx.grad_idx, b.ctx.grad_n, 1.0f, &loss, err, sizeof err);
            float **sc = alloc_like(&ref);
            for (int i = 0; i < pb_model_nprunable(&ref); i++) {
                const pb_param *p = pb_model_prunable(&ref, i);
                for (size_t j = 0; j < p->n; j++)
                    sc[i][j] = fabsf(p->g[j] * p->w[j]);
            }
            size_t d = topk_mismatch(&m, sc, 0.7);
            ok(rc == 0 && b.ctx.grad_n == 48 && d == 0,
               "snip keeps exactly the top 30%% of |g*w| computed here (%zu differences)", d);
            ok(mask_ones(&m) == (size_t)llround(0.3 * (double)prunable_total(&m)),
               "snip keeps round(0.3*N) = %zu weights (%zu)", (size_t)llround(0.3 * (double)prunable_total(&m)),
               mask_ones(&m));
            free_like(&ref, sc);
        } else
            ok(0, "snip scores (skipped)"), ok(0, "snip count (skipped)");
        unbind(&b);
        pb_model_free(&ref);
        pb_model_free(&m);
    }
    /* GraSP: keeps the highest w*Hg (= removes the highest -w*Hg, as the paper) */
    {
        pb_model m, ref;
        bound b, r;
        const char *args[] = {"examples=48", "temperature=200"};
        int rc = tiny_mlp(&m, 12, 16, 3, 1, 12);
        if (rc == 0)
            rc = pb_model_clone(&m, &ref, 64, err, sizeof err);
        if (rc == 0)
            rc = bind(&b, "grasp", args, 2, &m, &tr, &tr, &cfg, 22);
        if (rc == 0)
            rc = pb_ctx_prune(&b.ctx, 0.6);
        ok(rc == 0, "grasp prunes a tiny net (%s)", rc ? err : "ok");
        /* the same computation through the host table on a context with the same seed */
        if (rc == 0)
            rc = bind(&r, "grasp", args, 2, &ref, &tr, &tr, &cfg, 22);
        if (rc == 0) {
            const pb_host *h = &pb_host_table;
            rc = h->grad(&r.ctx, 48, 200.0, NULL);
            float **v = alloc_like(&ref), **hg = alloc_like(&ref);
            for (int i = 0; i < pb_model_nprunable(&ref); i++)
                memcpy(v[i], pb_model_prunable(&ref, i)->g, pb_model_prunable(&ref, i)->n * sizeof(float));
            if (rc == 0)
                rc = h->hvp(&r.ctx, (const float *const *)v, hg);
            for (int i = 0; i < pb_model_nprunable(&ref); i++) {
                const pb_param *p = pb_model_prunable(&ref, i);
                for (size_t j = 0; j < p->n; j++)
                    hg[i][j] *= p->w[j];
            }
            size_t d = topk_mismatch(&m, hg, 0.6);
            ok(rc == 0 && d == 0, "grasp keeps exactly the top 40%% of w*Hg computed here (%zu differences)", d);
            free_like(&ref, v);
            free_like(&ref, hg);
            unbind(&r);
        } else
            ok(0, "grasp scores: %s", err);
        unbind(&b);
        pb_model_free(&ref);
        pb_model_free(&m);
    }
    pb_data_free(&tr);
}

/* ---------- SynFlow by hand ---------- */

static void set_dense(pb_model *m, int i, const float *w)
{
    pb_param *p = pb_model_prunable(m, i);
    memcpy(p->w, w, p->n * sizeof(float));
}

static void test_synflow(void)
{
    pb_dataset tr;
    pb_train_cfg cfg = quick_cfg();
    if (pb_data_synthetic_task(&tr, 16, 1, 1, 2, 2, 5, 6, err, sizeof err) != PB_OK) {
        ok(0, "synthetic data: %s", err);
        return;
    }
    {
        /* 2 -> 2 -> 2 without biases, all-ones input: the score of W1[j][i] is
         * |W1[j][i]| * sum_k |W2[k][j]|, of W2[k][j] it is |W2[k][j]| * sum_i |W1[j][i]|:
         * W1 9, 3, 2.125, 8.5; W2 4, 10, 8, 0.625. Half kept: W1[0][0], W1[1][1], W2[0][1], W2[1][0]. */
        static const float w1[] = {3, -1, 0.5f, 2}, w2[] = {-1, 4, 2, 0.25f};
        static const float keep1[] = {1, 0, 0, 1}, keep2[] = {0, 1, 1, 0};
        pb_model m;
        bound b;
        const char *args[] = {"rounds=1"};
        int rc = tiny_mlp(&m, 2, 2, 2, 0, 1);
        if (rc == 0) {
            set_dense(&m, 0, w1);
            set_dense(&m, 1, w2);
            rc = bind(&b, "synflow", args, 1, &m, &tr, &tr, &cfg, 1);
        }
        if (rc == 0)
            rc = pb_ctx_prune(&b.ctx, 0.5);
        int same = rc == 0;
        for (int j = 0; j < 4 && same; j++) {
            const pb_param *p1 = pb_model_prunable(&m, 0), *p2 = pb_model_prunable(&m, 1);
            same &= p1->mask[j] == keep1[j] && p2->mask[j] == keep2[j];
            same &= p1->w[j] == w1[j] * keep1[j] && p2->w[j] == w2[j] * keep2[j]; /* signs restored */
        }
        ok(same, "synflow (1 round) keeps the weights with the hand-computed highest scores, signs intact (%s)",
           rc ? err : "ok");
        unbind(&b);
        pb_model_free(&m);
    }
    {
        /* A deep bias-free net whose R overflows float, against the same net
         * scaled by 2^-12 in every layer (exact): same masks. */
        pb_model a, s;
        pb_model_init(&a, "custom", 1, 1, 2, 2);
        int rc = 0;
        for (int l = 0; l < 12 && rc == 0; l++)
            rc = pb_model_dense(&a, NULL, 8, 0, err, sizeof err) < 0 || pb_model_simple(&a, PB_RELU, err, sizeof err) < 0;
        if (rc == 0)
            rc = pb_model_dense(&a, NULL, 2, 0, err, sizeof err) < 0 || pb_model_finalize(&a, 16, err, sizeof err) != PB_OK;
        if (rc == 0) {
            pb_model_init_weights(&a, 5);
            for (int i = 0; i < pb_model_nprunable(&a); i++) {
                pb_param *p = pb_model_prunable(&a, i);
                for (size_t j = 0; j < p->n; j++)
                    p->w[j] = ldexpf(p->w[j] > 0 ? 1.0f + p->w[j] : -1.0f + p->w[j], 9);
            }
            rc = pb_model_clone(&a, &s, 16, err, sizeof err);
        }
        double R = 0;
        if (rc == 0) { /* R of the unscaled net really overflows float */
            pb_model chk;
            rc = pb_model_clone(&a, &chk, 16, err, sizeof err);
            if (rc == 0) {
                for (int i = 0; i < pb_model_nprunable(&chk); i++) {
                    pb_param *p = pb_model_prunable(&chk, i);
                    for (size_t j = 0; j < p->n; j++)
                        p->w[j] = fabsf(p->w[j]);
                }
                float x[2] = {1, 1};
                const float *out = pb_model_forward(&chk, x, 1, 0);
                R = (double)out[0] + out[1];
                pb_model_free(&chk);
            }
        }
        ok(rc == 0 && !isfinite(R), "the deep test net's R overflows float (%g)", R);
        if (rc == 0)
            for (int i = 0; i < pb_model_nprunable(&s); i++) {
                pb_param *p = pb_model_prunable(&s, i);
                for (size_t j = 0; j < p->n; j++)
                    p->w[j] = ldexpf(p->w[j], -12);
            }
        bound ba, bs;
        const char *args[] = {"rounds=4"};
        memset(&ba, 0, sizeof ba);
        memset(&bs, 0, sizeof bs);
        int rca = rc ? rc : bind(&ba, "synflow", args, 1, &a, &tr, &tr, &cfg, 1);
        if (rca == 0)
            rca = pb_ctx_prune(&ba.ctx, 0.8);
        char erra[PB_ERRLEN];
        snprintf(erra, sizeof erra, "%s", rca ? err : "ok");
        int rcs = rc ? rc : bind(&bs, "synflow", args, 1, &s, &tr, &tr, &cfg, 1);
        if (rcs == 0)
            rcs = pb_ctx_prune(&bs.ctx, 0.8);
        size_t diff = 0;
        if (rca == 0 && rcs == 0)
            for (int i = 0; i < pb_model_nprunable(&a); i++) {
                const pb_param *p = pb_model_prunable(&a, i), *q = pb_model_prunable(&s, i);
                for (size_t j = 0; j < p->n; j++)
                    diff += (p->w[j] != 0.0f) != (q->w[j] != 0.0f);
            }
        ok(rca == 0 && rcs == 0 && diff == 0,
           "synflow on a net whose R overflows float keeps what the 2^-12-scaled net keeps (%s; %zu differ)", erra,
           diff);
        unbind(&ba);
        unbind(&bs);
        if (rc == 0)
            pb_model_free(&s);
        pb_model_free(&a);
    }
    pb_data_free(&tr);
}

/* ---------- lottery: rewinding, controls, target ---------- */

typedef struct probe {
    pb_host host;          /* pb_host_table with train() wrapped */
    pb_model *m;
    int np;
    float **init, **late, **mask2, **final_mask;
    int (*real_after_step)(void *, const pb_host *, pb_ctx *, long);
    long late_step;
    int calls;
    int rewound;           /* every train() after the first started from rewind point * mask */
    int nested;            /* masks only shrink */
    size_t survivors_equal_init, survivors;  /* at the last train() */
    int nrounds_rec, rounds_in_order;
    double last_round_sparsity;
} probe;

static probe P;

static float **copy_w(const pb_model *m, int masks)
{
    float **a = alloc_like(m);
    for (int i = 0; i < pb_model_nprunable(m); i++) {
        const pb_param *p = pb_model_prunable(m, i);
        memcpy(a[i], masks ? p->mask : p->w, p->n * sizeof(float));
    }
    return a;
}

static int probe_train(pb_ctx *c, int epochs)
{
    P.calls++;
    const pb_model *m = P.m;
    if (P.calls > 1) {
        const float *const *ref = (const float *const *)(P.late ? P.late : P.init);
        P.survivors = P.survivors_equal_init = 0;
        for (int i = 0; i < pb_model_nprunable(m); i++) {
            const pb_param *p = pb_model_prunable(m, i);
            for (size_t j = 0; j < p->n; j++) {
                if (p->mask[j] != 0.0f) {
                    P.survivors++;
                    P.survivors_equal_init += p->w[j] == ref[i][j];
                } else
                    P.rewound &= p->w[j] == 0.0f;
                if (P.mask2)
                    P.nested &= p->mask[j] <= P.mask2[i][j];
            }
        }
        P.rewound &= P.survivors_equal_init == P.survivors;
        if (P.calls == 2)
            P.mask2 = copy_w(m, 1);
        else {
            if (P.final_mask)
                free_n(P.final_mask, P.np);
            P.final_mask = copy_w(m, 1);
        }
    }
    return pb_host_table.train(c, epochs);
}

static int probe_after_step(void *st, const pb_host *h, pb_ctx *c, long step)
{
    int rc = P.real_after_step(st, h, c, step);
    if (step == P.late_step && !P.late)
        P.late = copy_w(P.m, 0);
    return rc;
}

static void probe_curve(void *ud, const pb_curve_rec *r)
{
    (void)ud;
    if (strcmp(r->phase, "round") != 0)
        return;
    P.rounds_in_order &= r->index == P.nrounds_rec;
    P.nrounds_rec++;
    P.last_round_sparsity = r->sparsity;
}

static void probe_reset(pb_model *m)
{
    if (P.init)
        free_n(P.init, P.np);
    if (P.late)
        free_n(P.late, P.np);
    if (P.mask2)
        free_n(P.mask2, P.np);
    if (P.final_mask)
        free_n(P.final_mask, P.np);
    memset(&P, 0, sizeof P);
    P.m = m;
    P.np = pb_model_nprunable(m);
    P.rewound = P.nested = P.rounds_in_order = 1;
}

/* One lottery run on a fresh lenet300 (width 0.25, same seed every time). */
static int run_lottery(const char *const *args, int nargs, long late_step, double s, pb_model *m,
                       const pb_dataset *tr, const pb_dataset *te)
{
    pb_train_cfg cfg = quick_cfg();
    int rc = pb_model_build(m, "lenet300", 0.25, NULL, 0, 1, 28, 28, 10, err, sizeof err);
    if (rc == PB_OK)
        rc = pb_model_finalize(m, cfg.batch, err, sizeof err);
    if (rc != PB_OK)
        return rc;
    pb_model_init_weights(m, 9);
    probe_reset(m);
    P.init = copy_w(m, 0);
    P.late_step = late_step;
    bound b;
    if ((rc = bind(&b, "lottery", args, nargs, m, tr, te, &cfg, 9)) == PB_OK) {
        P.host = pb_host_table;
        P.host.train = probe_train;
        P.real_after_step = b.lp.desc.after_step;
        b.lp.desc.after_step = probe_after_step;
        b.ctx.on_curve = probe_curve;
        rc = b.lp.desc.run(b.ctx.state, &P.host, &b.ctx, s);
    }
    unbind(&b);
    return rc;
}

static size_t tensor_ones(const float *mask, size_t n)
{
    size_t k = 0;
    for (size_t j = 0; j < n; j++)
        k += mask[j] != 0.0f;
    return k;
}

static void test_lottery(void)
{
    pb_dataset tr, te;
    if (pb_data_synthetic_task(&tr, 512, 1, 28, 28, 10, 5, 6, err, sizeof err) != PB_OK ||
        pb_data_synthetic_task(&te, 256, 1, 28, 28, 10, 5, 7, err, sizeof err) != PB_OK) {
        ok(0, "synthetic data: %s", err);
        return;
    }
    const double s = 0.8;
    pb_model m;
    const char *ticket[] = {"rounds=2", "epochs=1"};
    int rc = run_lottery(ticket, 2, 0, s, &m, &tr, &te);
    ok(rc == PB_OK && P.calls == 3, "lottery ticket, rounds=2: runs, trains 3 times (%d; %s)", P.calls,
       rc ? err : "ok");
    size_t N = prunable_total(&m), K = (size_t)llround((1 - s) * (double)N);
    ok(mask_ones(&m) + 1 >= K && mask_ones(&m) <= K + 1, "lottery reaches the target: %zu of %zu kept (target %zu)",
       mask_ones(&m), N, K);
    ok(P.rewound && P.survivors > 0, "after each rewind every survivor equals its value at initialization "
       "and pruned weights are 0 (%zu of %zu equal)", P.survivors_equal_init, P.survivors);
    ok(P.nested, "masks only shrink from round to round");
    ok(P.nrounds_rec == 3 && P.rounds_in_order && fabs(P.last_round_sparsity - s) < 1e-4,
       "rounds 0, 1, 2 recorded, the last at sparsity %.4f", P.last_round_sparsity);
    {
        const pb_param *f1 = pb_model_prunable(&m, 0), *f3 = pb_model_prunable(&m, 2);
        double d1 = (double)tensor_ones(f1->mask, f1->n) / (double)f1->n;
        double d3 = (double)tensor_ones(f3->mask, f3->n) / (double)f3->n;
        ok(d3 > d1, "the output layer (rate 0.1) stays denser than fc1 (rate 0.2): %.3f > %.3f", d3, d1);
    }
    float **ticket_mask = copy_w(&m, 1);
    size_t layer_keep[8];
    for (int i = 0; i < pb_model_nprunable(&m) && i < 8; i++)
        layer_keep[i] = tensor_ones(ticket_mask[i], pb_model_prunable(&m, i)->n);
    int np = pb_model_nprunable(&m);
    probe_reset(&m);
    pb_model_free(&m);

    /* reinit: the ticket's masks, fresh weights */
    const char *reinit[] = {"rounds=2", "epochs=1", "control=reinit"};
    rc = run_lottery(reinit, 3, 0, s, &m, &tr, &te);
    size_t same = 0;
    for (int i = 0; rc == PB_OK && P.final_mask && i < np; i++)
        same += memcmp(P.final_mask[i], ticket_mask[i], pb_model_prunable(&m, i)->n * sizeof(float)) == 0;
    ok(rc == PB_OK && same == (size_t)np && P.survivors_equal_init < P.survivors / 10,
       "reinit: the ticket's masks, survivors re-initialized (%zu of %zu equal init; %s)", P.survivors_equal_init,
       P.survivors, rc ? err : "ok");
    probe_reset(&m);
    pb_model_free(&m);

    /* random: random masks at the ticket's per-layer counts, rewound to init */
    const char *rnd[] = {"rounds=2", "epochs=1", "control=random"};
    rc = run_lottery(rnd, 3, 0, s, &m, &tr, &te);
    int counts = rc == PB_OK && P.final_mask != NULL;
    size_t overlap = 0, kept = 0;
    for (int i = 0; counts && i < np; i++) {
        const pb_param *p = pb_model_prunable(&m, i);
        counts &= tensor_ones(P.final_mask[i], p->n) == layer_keep[i];
        for (size_t j = 0; j < p->n; j++) {
            overlap += P.final_mask[i][j] != 0.0f && ticket_mask[i][j] != 0.0f;
            kept += P.final_mask[i][j] != 0.0f;
        }
    }
    ok(counts && P.rewound && overlap < kept / 2,
       "random: the ticket's per-layer counts, other weights (overlap %zu of %zu), rewound to init (%s)", overlap,
       kept, rc ? err : "ok");
    probe_reset(&m);
    pb_model_free(&m);

    /* late rewinding to the weights after 3 steps */
    const char *late[] = {"rounds=2", "epochs=1", "rewind_step=3"};
    rc = run_lottery(late, 3, 3, s, &m, &tr, &te);
    ok(rc == PB_OK && P.late && P.rewound && P.survivors > 0,
       "rewind_step=3: survivors restart from their values after step 3 (%zu of %zu; %s)", P.survivors_equal_init,
       P.survivors, rc ? err : "ok");
    probe_reset(&m);
    pb_model_free(&m);

    /* rounds=0: as many rounds as the rates need */
    const char *autor[] = {"epochs=1"};
    rc = run_lottery(autor, 1, 0, 0.5, &m, &tr, &te);
    N = prunable_total(&m);
    K = (size_t)llround(0.5 * (double)N);
    /* 0.8^3 = 0.512 > 0.5: four rounds, plus the final training */
    ok(rc == PB_OK && P.calls == 5 && mask_ones(&m) == K && P.rewound,
       "rounds=0 to s=0.5 takes 4 rounds and lands on %zu weights exactly (%zu; %d trainings)", K, mask_ones(&m),
       P.calls);
    probe_reset(&m);
    pb_model_free(&m);
    free_n(ticket_mask, np);
    pb_data_free(&tr);
    pb_data_free(&te);
}

/* ---------- channel: whole units removed, smaller model still trains ---------- */

typedef struct finetune_seen {
    int rows;
    int finite;
} finetune_seen;

static void ft_curve(void *ud, const pb_curve_rec *r)
{
    finetune_seen *f = ud;
    if (strcmp(r->phase, "finetune") == 0) {
        f->rows++;
        f->finite &= isfinite(r->test_loss) && r->test_acc >= 0;
    }
}

/* full: each prunable tensor's size in the unpruned architecture; kept: what
 * channel leaves of it. Removed units count as pruned weights. */
static void test_channel_job(const char *model, const size_t *full, const size_t *kept, int nexp)
{
    pb_job j;
    pb_job_defaults(&j);
    j.model = model;
    j.dataset = "synthetic";
    j.method = "channel";
    j.sparsity = 0.5;
    j.threads = 1;
    j.train.epochs = 1;
    j.train.batch = 64;
    j.train.log_epochs = 0;
    j.train.progress = 0;
    j.finetune.epochs = 1;
    j.finetune.batch = 64;
    j.finetune.log_epochs = 0;
    j.finetune.progress = 0;
    finetune_seen f = {0, 1};
    j.on_curve = ft_curve;
    j.ud = &f;
    pb_job_result res;
    int rc = pb_job_run(&j, &res, err, sizeof err);
    ok(rc == PB_OK, "channel on %s runs (%s)", model, rc ? err : "ok");
    int shapes = rc == PB_OK && res.nlayers == nexp;
    size_t sfull = 0, skept = 0;
    for (int i = 0; shapes && i < nexp; i++) {
        shapes &= res.layers[i].n == full[i] && res.layers[i].nonzero == kept[i];
        sfull += full[i];
        skept += kept[i];
    }
    ok(shapes, "channel on %s: every layer but the output lost half its units, the layer table counts them "
       "against the unpruned sizes (%s %zu of %zu, ...)", model, res.nlayers ? res.layers[0].name : "?",
       res.nlayers ? res.layers[0].nonzero : 0, res.nlayers ? res.layers[0].n : 0);
    const double want = 1.0 - (double)skept / (double)sfull;
    ok(rc == PB_OK && res.flops_dense < 0.6 * res.flops_dense_orig && res.prunable == sfull &&
           res.prunable_nonzero == skept && fabs(res.sparsity - want) < 1e-12 && res.params > res.nonzero,
       "channel on %s: dense FLOPs %.0f of %.0f; achieved sparsity %.4f (want %.4f: the removed units are "
       "pruned weights); params %zu > nonzero %zu", model, res.flops_dense, res.flops_dense_orig, res.sparsity,
       want, res.params, res.nonzero);
    ok(rc == PB_OK && f.rows == 1 && f.finite && res.test_acc >= 0,
       "channel on %s: the smaller model fine-tunes and evaluates (acc %.3f)", model, res.test_acc);
}

static double row_l1(const pb_param *p, int r)
{
    int cols = (int)(p->n / (size_t)p->shape[0]);
    double s = 0;
    for (int j = 0; j < cols; j++)
        s += fabs(p->w[(size_t)r * cols + j]);
    return s;
}

/* Rows of p ranked by L1 norm: the top nkeep, ascending. */
static void top_rows(const pb_param *p, int nkeep, int *keep)
{
    int rows = p->shape[0];
    char *taken = calloc((size_t)rows, 1);
    for (int k = 0; k < nkeep; k++) {
        int best = -1;
        for (int r = 0; r < rows; r++)
            if (!taken[r] && (best < 0 || row_l1(p, r) > row_l1(p, best)))
                best = r;
        if (best < 0)
            break;
        taken[best] = 1;
    }
    for (int r = 0, k = 0; r < rows; r++)
        if (taken[r])
            keep[k++] = r;
    free(taken);
}

static void test_channel_rows(void)
{
    pb_dataset tr;
    pb_train_cfg cfg = quick_cfg();
    if (pb_data_synthetic_task(&tr, 64, 1, 28, 28, 10, 5, 6, err, sizeof err) != PB_OK) {
        ok(0, "synthetic data: %s", err);
        return;
    }
    pb_model m, ref;
    int have_ref = 0;
    bound b;
    memset(&b, 0, sizeof b);
    int rc = pb_model_build(&m, "lenet300", 0.1, NULL, 0, 1, 28, 28, 10, err, sizeof err);
    if (rc == PB_OK)
        rc = pb_model_finalize(&m, 32, err, sizeof err);
    if (rc == PB_OK) {
        pb_model_init_weights(&m, 4);
        rc = pb_model_clone(&m, &ref, 32, err, sizeof err);
        have_ref = rc == PB_OK;
    }
    const char *args[] = {"norm=l1", "scope=layer"};
    if (rc == PB_OK)
        rc = bind(&b, "channel", args, 2, &m, &tr, &tr, &cfg, 1);
    if (rc == PB_OK)
        rc = pb_ctx_prune(&b.ctx, 0.6);
    /* fc1 30 -> 12 rows, fc2 10 -> 4 rows; fc2's inputs follow fc1's kept rows */
    int k1[30], k2[10], good = rc == PB_OK;
    if (good) {
        const pb_param *o1 = pb_model_prunable(&ref, 0), *o2 = pb_model_prunable(&ref, 1);
        const pb_param *n1 = pb_model_prunable(&m, 0), *n2 = pb_model_prunable(&m, 1), *n3 = pb_model_prunable(&m, 2);
        top_rows(o1, 12, k1);
        top_rows(o2, 4, k2);
        good = n1->shape[0] == 12 && n2->shape[0] == 4 && n2->shape[1] == 12 && n3->shape[0] == 10 &&
               n3->shape[1] == 4;
        for (int r = 0; good && r < 12; r++)
            good &= memcmp(n1->w + (size_t)r * 784, o1->w + (size_t)k1[r] * 784, 784 * sizeof(float)) == 0;
        for (int r = 0; good && r < 4; r++)
            for (int c = 0; c < 12; c++)
                good &= n2->w[r * 12 + c] == o2->w[k2[r] * 30 + k1[c]];
        const pb_param *o3 = pb_model_prunable(&ref, 2);
        for (int r = 0; good && r < 10; r++)
            for (int c = 0; c < 4; c++)
                good &= n3->w[r * 4 + c] == o3->w[r * 10 + k2[c]];
    }
    ok(good, "channel keeps the ceil(0.4*rows) rows of largest L1 norm and the matching inputs downstream (%s)",
       rc ? err : "ok");
    unbind(&b);
    pb_model_free(&m);
    if (have_ref)
        pb_model_free(&ref);

    /* global scope: ceil((1-s) * all units) kept over fc1 and fc2 together */
    rc = pb_model_build(&m, "lenet300", 0.1, NULL, 0, 1, 28, 28, 10, err, sizeof err);
    if (rc == PB_OK)
        rc = pb_model_finalize(&m, 32, err, sizeof err);
    const char *gargs[] = {"norm=l2", "scope=global"};
    if (rc == PB_OK) {
        pb_model_init_weights(&m, 4);
        rc = bind(&b, "channel", gargs, 2, &m, &tr, &tr, &cfg, 1);
    }
    if (rc == PB_OK)
        rc = pb_ctx_prune(&b.ctx, 0.75);
    int units = rc == PB_OK ? pb_model_prunable(&m, 0)->shape[0] + pb_model_prunable(&m, 1)->shape[0] : -1;
    ok(units == 10, "channel scope=global keeps ceil(0.25*40) = 10 units in all (%d; %s)", units, rc ? err : "ok");
    unbind(&b);
    pb_model_free(&m);
    pb_data_free(&tr);
}

/* ---------- exact global sparsity on lenet300 (prune at init, no training) ---------- */

static void test_exact_sparsity(const char *method)
{
    pb_job j;
    pb_job_defaults(&j);
    j.model = "lenet300";
    j.dataset = "synthetic";
    j.method = method;
    j.sparsity = 0.9;
    j.threads = 1;
    j.train.epochs = 0;
    j.train.log_epochs = 0;
    j.train.progress = 0;
    pb_job_result res;
    int rc = pb_job_run(&j, &res, err, sizeof err);
    size_t K = (size_t)llround(0.1 * (double)res.prunable);
    ok(rc == PB_OK && res.prunable == 266200 && res.prunable_nonzero + 1 >= K && res.prunable_nonzero <= K + 1,
       "%s on lenet300 at s=0.9 keeps %zu of %zu weights (target %zu; %s)", method, res.prunable_nonzero,
       res.prunable, K, rc ? err : "ok");
}

int main(void)
{
    tap_plan(31);
    pb_par_use_threads(1);
    test_snip_grasp();       /* 5 */
    test_synflow();          /* 3 */
    test_exact_sparsity("snip");
    test_exact_sparsity("grasp");
    test_exact_sparsity("synflow");
    test_lottery();          /* 10 */
    {
        /* lenet300 at half the units: 784-150-50-10 */
        static const size_t l300[] = {150 * 784, 50 * 150, 10 * 50};
        static const size_t l300_full[] = {300 * 784, 100 * 300, 10 * 100};
        test_channel_job("lenet300", l300_full, l300, 3); /* 4 */
        /* lenet5: conv 6->3, 16->8; fc 120->60, 84->42 */
        static const size_t l5[] = {3 * 1 * 25, 8 * 3 * 25, 60 * 8 * 25, 42 * 60, 10 * 42};
        static const size_t l5_full[] = {6 * 1 * 25, 16 * 6 * 25, 120 * 16 * 25, 84 * 120, 10 * 84};
        test_channel_job("lenet5", l5_full, l5, 5); /* 4 */
    }
    test_channel_rows();     /* 2 */
    return tap_done();
}
