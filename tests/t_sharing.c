/* Parameter sharing: the hashednets, roast and stable_rps plugins loaded as
 * modules, and what the engine does for them (generation once per array
 * change, gradients into the arrays, checkpoints of the arrays, results). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/pb_ckpt.h"
#include "engine/pb_data.h"
#include "engine/pb_model.h"
#include "engine/pb_par.h"
#include "engine/pb_train.h"
#include "exp/pb_job.h"
#include "host/pb_host.h"
#include "host/pb_plugin.h"
#include "tap.h"

static pb_dataset train, test;

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

/* MLP 64-32-16-4 (dense layers only); wide: 64-16384-32-4, whose first layer
 * (2^20 weights) is large enough for the sharing kernels to split it over the pool. */
static int build_mlp(pb_model *m, int wide, char *err, size_t errlen)
{
    static const int hidden[] = {32, 16}, wide_hidden[] = {16384, 32};
    int rc = pb_model_build(m, "mlp", 1.0, wide ? wide_hidden : hidden, 2, 1, 8, 8, 4, err, errlen);
    return rc == PB_OK ? pb_model_finalize(m, 32, err, errlen) : rc;
}

/* conv 3x3 pad 1 (3 channels), ReLU, 2x2 max pool, conv 3x3 stride 2 pad 1 (4), flatten, dense 4. */
static int build_conv(pb_model *m, char *err, size_t errlen)
{
    pb_model_init(m, "custom", 1, 8, 8, 4);
    if (pb_model_conv(m, NULL, 3, 3, 1, 1, 1, err, errlen) < 0 || pb_model_simple(m, PB_RELU, err, errlen) < 0 ||
        pb_model_pool(m, PB_MAXPOOL, 2, 2, err, errlen) < 0 || pb_model_conv(m, NULL, 4, 3, 2, 1, 1, err, errlen) < 0 ||
        pb_model_simple(m, PB_FLATTEN, err, errlen) < 0 || pb_model_dense(m, NULL, 4, 1, err, errlen) < 0)
        return PB_EUSAGE;
    return pb_model_finalize(m, 32, err, errlen);
}

enum { MLP = 0, CONV = 1, WIDE_MLP = 2 };

/* Builds a model (MLP, CONV or WIDE_MLP), binds method with args at seed and prunes to s. */
static int rig_open(rig *r, int conv, const char *method, const char *const *args, int nargs, uint64_t seed,
                    double s)
{
    memset(r, 0, sizeof *r);
    int rc = conv == CONV ? build_conv(&r->m, r->err, sizeof r->err)
                          : build_mlp(&r->m, conv == WIDE_MLP, r->err, sizeof r->err);
    if (rc != PB_OK)
        return rc;
    pb_model_init_weights(&r->m, seed);
    pb_train_cfg cfg = quick_cfg(1);
    double vals[64];
    rc = pb_ctx_init(&r->ctx, &r->m, &train, &test, &cfg, seed, r->err, sizeof r->err);
    r->open = rc == PB_OK;
    if (rc == PB_OK)
        rc = pb_plugin_find(method, NULL, &r->pl, r->err, sizeof r->err);
    if (rc == PB_OK)
        rc = pb_plugin_parse_args(&r->pl.desc, args, nargs, vals, r->err, sizeof r->err);
    if (rc == PB_OK)
        rc = pb_ctx_bind(&r->ctx, &r->pl, vals);
    if (rc == PB_OK)
        rc = pb_ctx_prune(&r->ctx, s);
    return rc;
}

static void rig_close(rig *r)
{
    if (r->open)
        pb_ctx_free(&r->ctx);
    pb_model_free(&r->m);
    pb_plugin_close(&r->pl);
    memset(r, 0, sizeof *r);
}

/* The shared arrays of a model: its extra parameters. */
static int arrays_of(const pb_model *m, pb_param **out, int max)
{
    int n = 0;
    for (int i = 0; i < m->nparams && n < max; i++)
        if (m->params[i]->layer < 0)
            out[n++] = m->params[i];
    return n;
}

static double batch_loss(pb_model *m, const float *x, const int *y, int B)
{
    pb_model_forward(m, x, B, 1);
    return pb_model_loss(m, y, B, 1.0f, NULL, NULL);
}

/* ---- gradients of the arrays against central differences ---- */

static void test_gradcheck(const char *method, const char *arg, int conv)
{
    rig r;
    const char *args[1] = {arg};
    int rc = rig_open(&r, conv, method, args, arg ? 1 : 0, 7, 0.75);
    const int B = 32;
    float *x = malloc((size_t)B * 64 * sizeof(float));
    int y[32], idx[32];
    for (int i = 0; i < B; i++)
        idx[i] = i;
    pb_data_batch(&train, idx, B, NULL, x, y);
    pb_param *a[8];
    int na = rc == PB_OK ? arrays_of(&r.m, a, 8) : 0;
    double worst = rc == PB_OK && na > 0 ? 0 : INFINITY;
    int checked = 0;
    if (rc == PB_OK && na > 0) {
        pb_model_zero_grad(&r.m);
        batch_loss(&r.m, x, y, B);
        pb_model_backward(&r.m, x, B, NULL, NULL);
        for (int k = 0; k < na; k++) {
            /* the 4 entries of largest gradient of each array, and entry 0 */
            size_t pick[5] = {0};
            for (int q = 1; q < 5; q++) {
                float best = -1;
                for (size_t j = 0; j < a[k]->n; j++) {
                    int used = 0;
                    for (int p = 0; p < q; p++)
                        used |= pick[p] == j;
                    if (!used && fabsf(a[k]->g[j]) > best) {
                        best = fabsf(a[k]->g[j]);
                        pick[q] = j;
                    }
                }
            }
            float *g = malloc(a[k]->n * sizeof(float));
            memcpy(g, a[k]->g, a[k]->n * sizeof(float));
            for (int q = 0; q < 5; q++) {
                size_t j = pick[q];
                float keep = a[k]->w[j], h = 1e-3f * (fabsf(keep) + 0.05f);
                a[k]->w[j] = keep + h;
                pb_model_arrays_changed(&r.m);
                double lp = batch_loss(&r.m, x, y, B);
                a[k]->w[j] = keep - h;
                pb_model_arrays_changed(&r.m);
                double lm = batch_loss(&r.m, x, y, B);
                a[k]->w[j] = keep;
                pb_model_arrays_changed(&r.m);
                double fd = (lp - lm) / (2.0 * (double)h);
                double e = fabs(fd - g[j]) / (fabs(fd) + 1e-3);
                worst = e > worst ? e : worst;
                checked++;
            }
            free(g);
        }
    }
    ok(rc == PB_OK && worst < 0.01, "%s%s%s on %s layers: array gradients match central differences (%d values, worst rel. error %.2g) %s",
       method, arg ? " " : "", arg ? arg : "", conv ? "conv" : "dense", checked, worst, rc == PB_OK ? "" : r.err);
    free(x);
    rig_close(&r);
}

/* ---- generation once per array change, not per evaluation batch ---- */

static void test_generations(void)
{
    rig r;
    int rc = rig_open(&r, 0, "stable_rps", NULL, 0, 3, 0.9);
    long g0 = r.m.generations;
    r.ctx.cfg.max_steps = 5;
    if (rc == PB_OK)
        rc = pb_ctx_train(&r.ctx, 1, NULL, NULL);
    long after_train = r.m.generations;
    double acc = 0;
    if (rc == PB_OK)
        rc = pb_evaluate(&r.m, &test, 16, &acc, NULL, r.err, sizeof r.err); /* 8 batches */
    if (rc == PB_OK)
        rc = pb_evaluate(&r.m, &test, 16, &acc, NULL, r.err, sizeof r.err);
    ok(rc == PB_OK && g0 == 0 && after_train == 6 && r.m.generations == 6,
       "5 optimizer steps, the final evaluation and 16 more evaluation batches: %ld generations, %ld by the end "
       "of training (want 6: 1 before the first step, 1 after each)",
       r.m.generations, after_train);
    rig_close(&r);
}

/* ---- determinism of the hashes and of training ---- */

static int same_generated(const pb_model *a, const pb_model *b)
{
    for (int t = 0; t < pb_model_nprunable(a); t++) {
        const pb_param *p = pb_model_prunable(a, t), *q = pb_model_prunable(b, t);
        if (p->n != q->n || memcmp(p->w, q->w, p->n * sizeof(float)))
            return 0;
    }
    return 1;
}

static void test_determinism(const char *method)
{
    rig a, b, c;
    int rc = rig_open(&a, 0, method, NULL, 0, 11, 0.9);
    rc = rc ? rc : rig_open(&b, 0, method, NULL, 0, 11, 0.9);
    rc = rc ? rc : rig_open(&c, 0, method, NULL, 0, 12, 0.9);
    if (rc == PB_OK) {
        pb_model_generate(&a.m);
        pb_model_generate(&b.m);
        pb_model_generate(&c.m);
    }
    ok(rc == PB_OK && same_generated(&a.m, &b.m) && !same_generated(&a.m, &c.m),
       "%s: seed 11 twice generates identical weights, seed 12 others", method);
    a.ctx.cfg.max_steps = b.ctx.cfg.max_steps = 12;
    rc = rc ? rc : pb_ctx_train(&a.ctx, 1, NULL, NULL);
    rc = rc ? rc : pb_ctx_train(&b.ctx, 1, NULL, NULL);
    pb_param *za[8], *zb[8];
    int na = rc == PB_OK ? arrays_of(&a.m, za, 8) : 0, same = na > 0 && na == arrays_of(&b.m, zb, 8);
    for (int k = 0; same && k < na; k++)
        same = !memcmp(za[k]->w, zb[k]->w, za[k]->n * sizeof(float)) &&
               !memcmp(za[k]->g, zb[k]->g, za[k]->n * sizeof(float));
    ok(rc == PB_OK && same, "%s: two trainings with seed 11 leave bit-identical arrays and gradients", method);
    rig_close(&a);
    rig_close(&b);
    rig_close(&c);
}

/* ---- the pool's split of generation and routing ---- */

/* Generation and routing of the wide MLP's arrays with `threads` threads:
 * the generated weights into w, the arrays' gradients of the fixed weight
 * gradient G_i = sin(i + 0.5 t) into gz, and the adjoint sums sum <W, G> and
 * <z, dz> (equal when routing is the transpose of generation). */
static size_t par_pass(rig *r, int threads, float *w, float *gz, double *wg, double *zdz)
{
    pb_par_set_threads(threads);
    pb_param *a[8];
    int na = arrays_of(&r->m, a, 8);
    size_t nw = 0, nz = 0;
    *wg = *zdz = 0;
    for (int k = 0; k < na; k++)
        memset(a[k]->g, 0, a[k]->n * sizeof(float));
    pb_model_arrays_changed(&r->m);
    pb_model_generate(&r->m);
    for (int t = 0; t < pb_model_nprunable(&r->m); t++) {
        pb_param *p = pb_model_prunable(&r->m, t);
        memcpy(w + nw, p->w, p->n * sizeof(float));
        for (size_t i = 0; i < p->n; i++) {
            p->g[i] = sinf((float)i + 0.5f * (float)t);
            *wg += (double)p->w[i] * p->g[i];
        }
        nw += p->n;
    }
    for (int i = 0; i < r->m.nparams; i++)
        if (r->m.gens[i].backprop)
            r->m.gens[i].backprop(r->m.gens[i].ud, r->m.params[i]);
    for (int k = 0; k < na; k++) {
        memcpy(gz + nz, a[k]->g, a[k]->n * sizeof(float));
        for (size_t j = 0; j < a[k]->n; j++)
            *zdz += (double)a[k]->w[j] * a[k]->g[j];
        nz += a[k]->n;
    }
    pb_par_set_threads(1);
    return nw + nz;
}

/* adjoint: whether routing is generation's transpose (not with STABLE-RPS's scaling) */
static void test_threads(const char *method, const char *arg, int adjoint)
{
    rig r;
    const char *args[1] = {arg};
    int rc = rig_open(&r, WIDE_MLP, method, args, arg ? 1 : 0, 5, 0.9);
    size_t N = 64 * 16384 + 16384 * 32 + 32 * 4, m = 0;
    float *w[2] = {malloc(N * sizeof(float)), malloc(N * sizeof(float))};
    float *gz[2] = {malloc(N * sizeof(float)), malloc(N * sizeof(float))};
    double wg[2] = {0}, zdz[2] = {0};
    int same = 0;
    if (rc == PB_OK) {
        pb_param *a[8];
        int na = arrays_of(&r.m, a, 8);
        for (int k = 0; k < na; k++)
            m += a[k]->n;
        par_pass(&r, 1, w[0], gz[0], &wg[0], &zdz[0]);
        par_pass(&r, 2, w[1], gz[1], &wg[1], &zdz[1]);
        same = !memcmp(w[0], w[1], N * sizeof(float)) && !memcmp(gz[0], gz[1], m * sizeof(float));
    }
    double adj = fabs(wg[0] - zdz[0]) / (fabs(wg[0]) + 1e-12);
    ok(rc == PB_OK && same && (!adjoint || adj < 1e-5) && wg[0] == wg[1],
       "%s%s%s on 64-16384-32-4: 1 and 2 threads generate the same weights and route the same array gradients "
       "(%zu values)%s (sum W.G = %.6g, z.dz = %.6g) %s",
       method, arg ? " " : "", arg ? arg : "", m, adjoint ? ", and routing is generation's transpose" : "", wg[0],
       zdz[0], rc == PB_OK ? "" : r.err);
    for (int k = 0; k < 2; k++) {
        free(w[k]);
        free(gz[k]);
    }
    rig_close(&r);
}

static void test_hash64(void)
{
    /* FNV-1a 64 of "a": 0xaf63dc4c8601ec8c (the published test vector) */
    uint64_t h = pb_host_table.hash64("a", 1, 0), h2 = pb_host_table.hash64("a", 1, 0);
    ok(h == 0xaf63dc4c8601ec8cULL && h2 == h && pb_host_table.hash64("a", 1, 5) != h,
       "host->hash64 is FNV-1a (\"a\" -> %016llx) and the seed changes it", (unsigned long long)h);
}

/* ---- STABLE-RPS's scaling: at s = 0 training is dense SGD whatever the init scale ---- */

static double max_rel_diff(const pb_model *a, const pb_model *b)
{
    double worst = 0, big = 0;
    for (int t = 0; t < pb_model_nprunable(a); t++) {
        const pb_param *p = pb_model_prunable(a, t), *q = pb_model_prunable(b, t);
        for (size_t j = 0; j < p->n; j++) {
            double d = fabs((double)p->w[j] - q->w[j]);
            worst = d > worst ? d : worst;
            big = fabs(p->w[j]) > big ? fabs(p->w[j]) : big;
        }
    }
    return worst / (big > 0 ? big : 1);
}

static void test_scale_invariance(void)
{
    double d[2] = {-1, -1};
    const char *methods[2] = {"stable_rps", "roast"};
    for (int k = 0; k < 2; k++) {
        rig a, b;
        const char *lo[1] = {"init_scale=0.1"}, *hi[1] = {"init_scale=10"};
        int rc = rig_open(&a, 0, methods[k], lo, 1, 4, 0.0);
        rc = rc ? rc : rig_open(&b, 0, methods[k], hi, 1, 4, 0.0);
        a.ctx.cfg.max_steps = b.ctx.cfg.max_steps = 10;
        rc = rc ? rc : pb_ctx_train(&a.ctx, 1, NULL, NULL);
        rc = rc ? rc : pb_ctx_train(&b.ctx, 1, NULL, NULL);
        if (rc == PB_OK) {
            pb_model_generate(&a.m);
            pb_model_generate(&b.m);
            d[k] = max_rel_diff(&a.m, &b.m);
        }
        rig_close(&a);
        rig_close(&b);
    }
    ok(d[0] >= 0 && d[0] < 1e-4 && d[1] > 1e-2,
       "s = 0, 10 SGD steps from init_scale 0.1 and 10: stable_rps weights agree (%.2g), roast's differ (%.2g)", d[0],
       d[1]);
}

/* ---- stored values, compression and memory against hand counts (through the job) ---- */

static void test_accounting(const char *method, double s)
{
    pb_job j;
    pb_job_defaults(&j);
    static const int hidden[] = {32, 16};
    j.model = "mlp";
    j.hidden = hidden;
    j.nhidden = 2;
    j.dataset = "synthetic";
    j.threads = 1;
    j.train.epochs = 1;
    j.train.log_epochs = 0;
    j.train.max_steps = 3;
    j.method = method;
    j.sparsity = s;
    pb_job_result res;
    char err[PB_ERRLEN] = "";
    int rc = pb_job_run(&j, &res, err, sizeof err);
    /* the job's synthetic set is 1x28x28, 10 classes: 784-32-16-10, weights
     * 25088 + 512 + 160 = 25760, biases 32 + 16 + 10 = 58 */
    const size_t N = 25760, nb = 58, n[3] = {25088, 512, 160};
    size_t arrays = 0, reads_ok = 1;
    if (!strcmp(method, "hashednets"))
        for (int l = 0; l < 3; l++)
            arrays += (size_t)llround((1 - s) * (double)n[l]);
    else
        arrays = (size_t)llround((1 - s) * (double)N);
    double mem = -1;
    for (int i = 0; i < res.nmetrics; i++)
        if (!strcmp(res.metrics[i].name, "memory_bytes"))
            mem = res.metrics[i].value;
    for (int l = 0; rc == PB_OK && l < res.nlayers; l++)
        reads_ok &= res.layers[l].nonzero >= 1 && res.layers[l].nonzero <= res.layers[l].n &&
                    (strcmp(method, "hashednets") || res.layers[l].nonzero <= (size_t)llround((1 - s) * (double)n[l]));
    ok(rc == PB_OK && res.params == N + nb && res.stored == arrays + nb && res.prunable == N &&
           res.prunable_nonzero == arrays && fabs(res.sparsity - (1.0 - (double)arrays / N)) < 1e-12 &&
           mem == 4.0 * (double)(arrays + nb) && res.nonzero == res.params && res.flops_eff == res.flops_dense &&
           reads_ok && res.nlayers == 3,
       "%s s=%g: params %zu (want %zu), stored %zu (want %zu), achieved sparsity %.4f, memory %g B, dense FLOPs %s",
       method, s, res.params, N + nb, res.stored, arrays + nb, res.sparsity, mem, rc ? err : "");
}

/* ---- checkpoints hold the arrays ---- */

static long file_size(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 ? (long)st.st_size : -1;
}

static void test_checkpoint(void)
{
    char dir[] = "/tmp/pb_sharing_XXXXXX", path[64];
    if (!mkdtemp(dir)) {
        ok(0, "checkpoint: temporary directory");
        return;
    }
    snprintf(path, sizeof path, "%s/m.pb", dir);
    rig a, b;
    int rc = rig_open(&a, 1, "roast", NULL, 0, 21, 0.8);
    a.ctx.cfg.max_steps = 6;
    rc = rc ? rc : pb_ctx_train(&a.ctx, 1, NULL, NULL);
    double acc1 = -1, l1 = -1, acc2 = -2, l2 = -2;
    rc = rc ? rc : pb_evaluate(&a.m, &test, 32, &acc1, &l1, a.err, sizeof a.err);
    rc = rc ? rc : pb_ckpt_save(&a.m, path, a.err, sizeof a.err);
    size_t N = 0;
    for (int t = 0; t < pb_model_nprunable(&a.m); t++)
        N += pb_model_prunable(&a.m, t)->n;
    long sz = file_size(path);
    /* a fresh model with the method bound (its arrays freshly initialized), then the file */
    int rb = rig_open(&b, 1, "roast", NULL, 0, 21, 0.8);
    if (rb == PB_OK)
        pb_model_init_weights(&b.m, 99);
    rb = rb ? rb : pb_ckpt_restore(&b.m, path, b.err, sizeof b.err);
    rb = rb ? rb : pb_evaluate(&b.m, &test, 32, &acc2, &l2, b.err, sizeof b.err);
    ok(rc == PB_OK && rb == PB_OK && acc1 == acc2 && l1 == l2 && same_generated(&a.m, &b.m),
       "checkpoint round trip of a roast model: restored arrays give the same weights and loss (%.6f, %.6f) %s", l1, l2,
       rc ? a.err : rb ? b.err : "");
    /* the same model without sharing, masks and all: its file less the weights' values and masks, plus the array's record */
    pb_model plain;
    char e2[PB_ERRLEN];
    long want = -1;
    if (build_conv(&plain, e2, sizeof e2) == PB_OK && pb_model_ensure_masks(&plain, e2, sizeof e2) == PB_OK &&
        pb_ckpt_save(&plain, path, e2, sizeof e2) == PB_OK) {
        pb_param *z[1];
        int nz = arrays_of(&a.m, z, 1);
        want = file_size(path) - (long)(2 * N * sizeof(float)) + (nz ? 48 + 8 + 2 + (long)(z[0]->n * sizeof(float)) : 0);
        pb_ckpt_save(&a.m, path, e2, sizeof e2);
    }
    pb_model_free(&plain);
    ok(sz > 0 && sz == want, "the checkpoint (%ld bytes, want %ld) holds the array, not the %zu generated weights",
       sz, want, N);
    pb_model c;
    char err[PB_ERRLEN] = "";
    int rl = pb_ckpt_load(&c, path, 32, err, sizeof err);
    ok(rl == PB_EUSAGE && strstr(err, "generated") && strstr(err, path),
       "loading it as a plain model is refused: %s", err);
    if (rl == PB_OK)
        pb_model_free(&c);
    rig_close(&a);
    rig_close(&b);
    remove(path);
    rmdir(dir);
}

/* ---- bad input ---- */

static void test_errors(void)
{
    rig r;
    int rc = rig_open(&r, 0, "hashednets", NULL, 0, 1, 0.995);
    ok(rc != PB_OK && strstr(r.err, "fc3.weight") && strstr(r.err, "fewer than one"),
       "hashednets at s=0.995 (fc3 has 64 weights): %s", r.err);
    rig_close(&r);
    rc = rig_open(&r, 0, "stable_rps", NULL, 0, 1, 0.9995);
    ok(rc != PB_OK && strstr(r.err, "fewer than one per layer") && strstr(r.err, "at most"),
       "stable_rps at s=0.9995 (2624 weights, 3 layers): %s", r.err);
    rig_close(&r);

    /* a model with no prunable layer: global average pooling of 3 channels into 3 classes */
    memset(&r, 0, sizeof r);
    pb_model_init(&r.m, "custom", 3, 2, 2, 3);
    rc = pb_model_simple(&r.m, PB_GAP, r.err, sizeof r.err) < 0 ? PB_EUSAGE : PB_OK;
    rc = rc ? rc : pb_model_finalize(&r.m, 8, r.err, sizeof r.err);
    pb_dataset t4;
    char err[PB_ERRLEN];
    int rd = pb_data_synthetic_task(&t4, 16, 3, 2, 2, 3, 3, 1, err, sizeof err);
    pb_train_cfg cfg = quick_cfg(1);
    double vals[8];
    rc = rc ? rc : rd;
    rc = rc ? rc : pb_ctx_init(&r.ctx, &r.m, &t4, &t4, &cfg, 1, r.err, sizeof r.err);
    r.open = rc == PB_OK;
    rc = rc ? rc : pb_plugin_find("roast", NULL, &r.pl, r.err, sizeof r.err);
    rc = rc ? rc : pb_plugin_parse_args(&r.pl.desc, NULL, 0, vals, r.err, sizeof r.err);
    rc = rc ? rc : pb_ctx_bind(&r.ctx, &r.pl, vals);
    ok(rc != PB_OK && strstr(r.err, "no prunable"), "a model without dense or conv layers: %s%s", r.err, rd ? err : "");
    rig_close(&r);
    if (rd == PB_OK)
        pb_data_free(&t4);
}

int main(void)
{
    char err[PB_ERRLEN];
    if (pb_data_synthetic_task(&train, 256, 1, 8, 8, 4, 21, 1, err, sizeof err) != PB_OK ||
        pb_data_synthetic_task(&test, 128, 1, 8, 8, 4, 21, 2, err, sizeof err) != PB_OK) {
        printf("Bail out! %s\n", err);
        return 1;
    }
    for (int conv = 0; conv < 2; conv++) {
        test_gradcheck("hashednets", NULL, conv);
        test_gradcheck("roast", NULL, conv);
        test_gradcheck("roast", "tile_rows=2", conv);
        test_gradcheck("stable_rps", "scaling=0", conv);
    }
    test_threads("roast", NULL, 1);
    test_threads("stable_rps", "scaling=0", 1);
    test_threads("stable_rps", NULL, 0);
    test_threads("hashednets", NULL, 1);
    test_generations();
    test_hash64();
    test_determinism("hashednets");
    test_determinism("roast");
    test_determinism("stable_rps");
    test_scale_invariance();
    test_accounting("stable_rps", 0.9);
    test_accounting("roast", 0.99);
    test_accounting("hashednets", 0.9);
    test_checkpoint();
    test_errors();
    tap_plan(tap_n);
    pb_data_free(&train);
    pb_data_free(&test);
    return tap_done();
}
