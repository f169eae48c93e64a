/* Delta-parameter methods (dare, darex_q, delta_magnitude), precropping and
 * derived tasks (class subsets, label maps), loaded from the build tree and
 * run through the host, checked against values computed here. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/pb_data.h"
#include "engine/pb_model.h"
#include "engine/pb_par.h"
#include "engine/pb_train.h"
#include "exp/pb_job.h"
#include "host/pb_host.h"
#include "host/pb_plugin.h"
#include "host/pb_probe.h"
#include "tap.h"

static char err[PB_ERRLEN];

typedef struct bound {
    pb_loaded lp;
    pb_ctx ctx;
    int loaded, inited;
} bound;

static pb_dataset tr, te;

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

static int tiny_mlp(pb_model *m, int in, int hidden, int out, uint64_t seed)
{
    pb_model_init(m, "custom", 1, 1, in, out);
    if (pb_model_dense(m, NULL, hidden, 1, err, sizeof err) < 0 || pb_model_simple(m, PB_RELU, err, sizeof err) < 0 ||
        pb_model_dense(m, NULL, out, 1, err, sizeof err) < 0 || pb_model_finalize(m, 64, err, sizeof err) != PB_OK)
        return -1;
    pb_model_init_weights(m, seed);
    return 0;
}

/* Dyadic base and delta values, so that b + keep * delta * s is exact in float. */
static float base_val(size_t j) { return (float)((int)(j % 7) - 3) / 8.0f; }
static float delta_val(size_t j) { return (float)((int)((j * 5) % 8) + 1) / 16.0f * ((j & 1) ? -1.0f : 1.0f); }

/* A context over m with "base" kept at base_val and the model at base + delta,
 * then `method` bound with args. */
static int setup(bound *b, pb_model *m, const char *method, const char *const *args, int nargs, uint64_t seed)
{
    memset(b, 0, sizeof *b);
    pb_train_cfg cfg = quick_cfg();
    int rc = pb_ctx_init(&b->ctx, m, &tr, &te, &cfg, seed, err, sizeof err);
    if (rc != PB_OK)
        return rc;
    b->inited = 1;
    for (int i = 0; i < pb_model_nprunable(m); i++) {
        pb_param *p = pb_model_prunable(m, i);
        for (size_t j = 0; j < p->n; j++)
            p->w[j] = base_val(j + 100 * (size_t)i);
    }
    if ((rc = pb_ctx_keep(&b->ctx, "base", NULL)) != PB_OK)
        return rc;
    for (int i = 0; i < pb_model_nprunable(m); i++) {
        pb_param *p = pb_model_prunable(m, i);
        for (size_t j = 0; j < p->n; j++)
            p->w[j] = base_val(j + 100 * (size_t)i) + delta_val(j + 100 * (size_t)i);
    }
    double vals[64];
    if ((rc = pb_plugin_find(method, NULL, &b->lp, err, sizeof err)) != PB_OK)
        return rc;
    b->loaded = 1;
    if ((rc = pb_plugin_parse_args(&b->lp.desc, args, nargs, vals, err, sizeof err)) != PB_OK)
        return rc;
    b->ctx.argv = args;
    b->ctx.argc = nargs;
    return pb_ctx_bind(&b->ctx, &b->lp, vals);
}

static void unbind(bound *b)
{
    if (b->inited)
        pb_ctx_free(&b->ctx);
    if (b->loaded)
        pb_plugin_close(&b->lp);
    memset(b, 0, sizeof *b);
}

/* ---------- DARE against hand-computed values ---------- */

static void test_dare_values(void)
{
    pb_model m;
    tiny_mlp(&m, 5, 4, 3, 1); /* fc1 4x5 = 20, fc2 (the head) 3x4 = 12 */
    bound b;
    int rc = setup(&b, &m, "dare", NULL, 0, 11);
    if (rc == PB_OK)
        rc = pb_ctx_prune(&b.ctx, 0.5);
    pb_param *p = pb_model_prunable(&m, 0), *hd = pb_model_prunable(&m, 1);
    int bad = 0, dropped = 0;
    for (size_t j = 0; j < p->n && rc == PB_OK; j++) {
        float bb = base_val(j), d = delta_val(j);
        if (p->w[j] == bb)
            dropped++;
        else if (p->w[j] != bb + d * 2.0f) /* kept: rescaled by 1/(1 - 0.5) */
            bad++;
    }
    for (size_t j = 0; j < hd->n && rc == PB_OK; j++)
        bad += hd->w[j] != base_val(j + 100) + delta_val(j + 100); /* the head keeps its delta */
    ok(rc == PB_OK && bad == 0 && dropped == 10,
       "dare p=0.5: each weight is the base or base + 2*delta (%d off), exactly 10 of 20 dropped (%d), head whole (%s)",
       bad, dropped, rc ? err : "ok");
    unbind(&b);

    /* p = 0.7 on 20 entries: 14 dropped, the 6 kept rescaled by 20/6, so the
     * sum of (w - b) / delta over the tensor is 20 in every draw, and each
     * entry is kept with frequency 0.3 over seeds */
    const int S = 1500;
    int freq[20] = {0}, sum_bad = 0, fails = 0;
    for (int s = 0; s < S; s++) {
        if ((rc = setup(&b, &m, "dare", NULL, 0, 1000 + (uint64_t)s)) != PB_OK ||
            (rc = pb_ctx_prune(&b.ctx, 0.7)) != PB_OK) {
            fails++;
            unbind(&b);
            continue;
        }
        double sum = 0;
        for (size_t j = 0; j < 20; j++) {
            double r = ((double)p->w[j] - base_val(j)) / delta_val(j);
            sum += r;
            freq[j] += r != 0;
        }
        sum_bad += fabs(sum - 20.0) > 1e-4;
        unbind(&b);
    }
    double worst = 0;
    for (int j = 0; j < 20; j++)
        worst = fmax(worst, fabs(freq[j] / (double)S - 0.3));
    /* sd of one frequency: sqrt(0.3 * 0.7 / 1500) = 0.0118; 5 sd */
    ok(fails == 0 && sum_bad == 0 && worst < 0.059,
       "dare keeps the expected delta: sum of rescaled deltas exact in all %d draws (%d off), "
       "each entry kept with frequency 0.3 (worst deviation %.4f)", S, sum_bad, worst);

    /* draw=bernoulli: the paper's i.i.d. draw, mean of (w - b)/delta over entries and seeds -> 1 */
    const char *bern[] = {"draw=bernoulli"};
    double acc = 0;
    long cnt = 0;
    fails = 0;
    for (int s = 0; s < 400; s++) {
        if ((rc = setup(&b, &m, "dare", bern, 1, 5000 + (uint64_t)s)) != PB_OK ||
            (rc = pb_ctx_prune(&b.ctx, 0.5)) != PB_OK) {
            fails++;
            unbind(&b);
            continue;
        }
        for (size_t j = 0; j < 20; j++, cnt++)
            acc += ((double)p->w[j] - base_val(j)) / delta_val(j);
        unbind(&b);
    }
    /* sd of the mean: 1 / sqrt(8000) = 0.0112; 5 sd */
    ok(fails == 0 && fabs(acc / cnt - 1.0) < 0.056, "dare draw=bernoulli keeps the expected delta: mean ratio %.4f",
       acc / cnt);
    pb_model_free(&m);
}

/* ---------- magnitude of the delta ---------- */

static void test_delta_magnitude(void)
{
    pb_model m;
    tiny_mlp(&m, 5, 4, 3, 1);
    bound b;
    int rc = setup(&b, &m, "delta_magnitude", NULL, 0, 2);
    if (rc == PB_OK)
        rc = pb_ctx_prune(&b.ctx, 0.5);
    pb_param *p = pb_model_prunable(&m, 0);
    /* expected: the 10 largest |delta| of fc1, ties by index */
    int order[20];
    for (int j = 0; j < 20; j++)
        order[j] = j;
    for (int a = 1; a < 20; a++) /* insertion sort by |delta| descending, index ascending */
        for (int q = a; q > 0 && fabsf(delta_val((size_t)order[q])) > fabsf(delta_val((size_t)order[q - 1])); q--) {
            int t = order[q];
            order[q] = order[q - 1];
            order[q - 1] = t;
        }
    int keep[20] = {0}, bad = 0;
    for (int k = 0; k < 10; k++)
        keep[order[k]] = 1;
    for (size_t j = 0; j < 20 && rc == PB_OK; j++)
        bad += p->w[j] != (keep[j] ? base_val(j) + delta_val(j) : base_val(j));
    ok(rc == PB_OK && bad == 0, "delta_magnitude p=0.5 keeps the 10 largest |delta| unscaled, the rest at the base (%d off; %s)",
       bad, rc ? err : "ok");
    unbind(&b);
    pb_model_free(&m);
}

/* ---------- DAREx-q ---------- */

static double sample_loss(pb_ctx *c)
{
    const int *idx;
    int n;
    if (pb_probe_calibration_sample(c, &idx, &n) != PB_OK)
        return NAN;
    float *loss = malloc((size_t)n * sizeof *loss);
    pb_example_stats es = {.size = sizeof es, .loss = loss};
    double s = NAN;
    if (pb_probe_example_stats(c, idx, n, &es) == PB_OK) {
        s = 0;
        for (int k = 0; k < n; k++)
            s += loss[k];
        s /= n;
    }
    free(loss);
    return s;
}

static void on_metric(void *ud, const char *name, double value)
{
    if (!strcmp(name, "q"))
        *(double *)ud = value;
}

static void test_darex_q(void)
{
    pb_model m;
    tiny_mlp(&m, 8, 16, 3, 4);
    /* dare and darex_q on the same seed drop the same entries; darex_q's
     * loss on its calibration sample is at most dare's (q = 1 - p is a
     * candidate) and q lies in [1 - p, 1] */
    const char *largs[] = {"criterion=loss"};
    bound b;
    float *dare_w = malloc(8 * 16 * sizeof(float));
    int rc = setup(&b, &m, "dare", NULL, 0, 21);
    if (rc == PB_OK)
        rc = pb_ctx_prune(&b.ctx, 0.9);
    double dare_loss = rc == PB_OK ? sample_loss(&b.ctx) : NAN;
    memcpy(dare_w, pb_model_prunable(&m, 0)->w, 8 * 16 * sizeof(float));
    unbind(&b);
    double q = -1;
    int rc2 = setup(&b, &m, "darex_q", largs, 1, 21);
    b.ctx.on_metric = on_metric;
    b.ctx.curve_ud = &q;
    if (rc2 == PB_OK)
        rc2 = pb_ctx_prune(&b.ctx, 0.9);
    double x_loss = rc2 == PB_OK ? sample_loss(&b.ctx) : NAN;
    pb_param *p = pb_model_prunable(&m, 0);
    int same = 1, bad = 0;
    for (size_t j = 0; j < p->n; j++) {
        int kd = dare_w[j] != base_val(j), kx = p->w[j] != base_val(j);
        same &= kd == kx;
        /* kept: base + delta / q, as float computes it */
        if (kx && fabsf(p->w[j] - (base_val(j) + delta_val(j) * (float)(1.0 / q))) > 1e-6f)
            bad++;
    }
    ok(rc == PB_OK && rc2 == PB_OK && same && bad == 0 && q >= 0.1 - 1e-9 && q <= 1.0,
       "darex_q drops what dare drops for the same seed and rescales by 1/q, q = %.4f in [0.1, 1] (%d off; %s)", q,
       bad, rc2 ? err : "ok");
    ok(x_loss <= dare_loss + 1e-6, "darex_q criterion=loss: calibration loss %.5f <= dare's %.5f", x_loss, dare_loss);
    unbind(&b);
    const char *oargs[] = {"criterion=output"};
    q = -1;
    rc = setup(&b, &m, "darex_q", oargs, 1, 21);
    b.ctx.on_metric = on_metric;
    b.ctx.curve_ud = &q;
    if (rc == PB_OK)
        rc = pb_ctx_prune(&b.ctx, 0.9);
    ok(rc == PB_OK && q >= 0.1 - 1e-9 && q <= 1.0, "darex_q criterion=output (label-free) runs, q = %.4f (%s)", q,
       rc ? err : "ok");
    unbind(&b);
    free(dare_w);
    pb_model_free(&m);
}

/* ---------- through the job: exact, deterministic, refused without a base ---------- */

static int curve_rows;
static void count_curve(void *ud, const pb_curve_rec *r)
{
    (void)ud, (void)r;
    curve_rows++;
}

static double metric_of(const pb_job_result *r, const char *name)
{
    for (int i = 0; i < r->nmetrics; i++)
        if (!strcmp(r->metrics[i].name, name))
            return r->metrics[i].value;
    return NAN;
}

static int file_equal(const char *a, const char *b)
{
    FILE *f = fopen(a, "rb"), *g = fopen(b, "rb");
    int eq = f && g;
    while (eq) {
        int x = fgetc(f), y = fgetc(g);
        if (x != y)
            eq = 0;
        if (x == EOF || y == EOF)
            break;
    }
    if (f)
        fclose(f);
    if (g)
        fclose(g);
    return eq;
}

static void job_setup(pb_job *j, const char *method, double s)
{
    pb_job_defaults(j);
    j->model = "lenet300";
    j->width = 0.25;
    j->dataset = "synthetic";
    j->method = method;
    j->sparsity = s;
    j->threads = 1;
    j->train.epochs = 1;
    j->train.log_epochs = j->train.progress = 0;
    j->finetune.epochs = 1;
    j->finetune.log_epochs = j->finetune.progress = 0;
}

static void test_jobs(const char *tmpdir)
{
    static const char *methods[] = {"dare", "darex_q", "delta_magnitude"};
    pb_stage st[4];
    memset(st, 0, sizeof st);
    st[0].kind = PB_STAGE_TRAIN;
    st[1].kind = PB_STAGE_KEEP;
    st[1].name = "base";
    st[2].kind = PB_STAGE_FINETUNE;
    st[2].classes = 0x1f; /* a derived task: classes 0..4 only */
    st[3].kind = PB_STAGE_PRUNE;
    for (int k = 0; k < 3; k++) {
        char a[4200], b2[4200];
        snprintf(a, sizeof a, "%s/%s_a.pb", tmpdir, methods[k]);
        snprintf(b2, sizeof b2, "%s/%s_b.pb", tmpdir, methods[k]);
        pb_job j;
        pb_job_result r1, r2;
        job_setup(&j, methods[k], 0.9);
        j.stages = st;
        j.nstages = 4;
        j.save = a;
        int rc = pb_job_run(&j, &r1, err, sizeof err);
        j.save = b2;
        int rc2 = rc == PB_OK ? pb_job_run(&j, &r2, err, sizeof err) : rc;
        /* exact: per tensor llround(0.9 n) of fc1 (784*75) and fc2 (75*25); the head whole */
        double n1 = 784.0 * 75, n2 = 75.0 * 25;
        double expect = (llround(0.9 * n1) + llround(0.9 * n2)) / (n1 + n2);
        double got = metric_of(&r1, "delta_sparsity");
        ok(rc == PB_OK && rc2 == PB_OK && fabs(got - expect) < 1e-12 && file_equal(a, b2) &&
               r1.test_acc == r2.test_acc,
           "%s through train, keep base, finetune (classes 0-4), prune: delta sparsity %.6f exact (%.6f), "
           "two runs bit-identical (%s)", methods[k], got, expect, rc ? err : "ok");
    }
    /* no kept base: refused before anything trains */
    for (int k = 0; k < 3; k++) {
        pb_job j;
        pb_job_result r;
        job_setup(&j, methods[k], 0.5);
        j.train.epochs = 1000;
        j.on_curve = count_curve;
        curve_rows = 0;
        int rc = pb_job_run(&j, &r, err, sizeof err);
        ok(rc == PB_EUSAGE && strstr(err, "reads a kept model 'base'") && strstr(err, "keep") && curve_rows == 0,
           "%s without a keep stage is refused before training: %s", methods[k], err);
    }
}

/* ---------- precropping ---------- */

static void test_precropping(void)
{
    /* SynFlow's layer densities (the synflow plugin, same seed) */
    pb_job j;
    pb_job_result rs, rc_, rr, rc2;
    job_setup(&j, "synflow", 0.9);
    j.width = 1.0;
    j.train.epochs = 0;
    int rc = pb_job_run(&j, &rs, err, sizeof err);
    job_setup(&j, "precropping", 0.9);
    j.width = 1.0;
    j.train.epochs = 0;
    j.args[0] = "mode=random";
    j.nargs = 1;
    int rc1 = rc == PB_OK ? pb_job_run(&j, &rr, err, sizeof err) : rc;
    int same = rc1 == PB_OK && rr.nlayers == rs.nlayers;
    for (int i = 0; same && i < rs.nlayers; i++)
        same = rr.layers[i].nonzero == rs.layers[i].nonzero;
    ok(same, "precropping mode=random keeps exactly SynFlow's count in every layer (%s)", rc1 ? err : "ok");
    /* mode=crop: the widths of the log-ratio least squares, solved here for
     * 784-300-100-10: unknowns x0 (fc1's units), x1 (fc2's), weights = sizes */
    j.nargs = 0;
    int rc3 = rc == PB_OK ? pb_job_run(&j, &rc_, err, sizeof err) : rc;
    int rc4 = rc3 == PB_OK ? pb_job_run(&j, &rc2, err, sizeof err) : rc3;
    double y[3], w[3];
    for (int i = 0; i < 3; i++) {
        y[i] = log((double)rs.layers[i].nonzero / (double)rs.layers[i].n);
        w[i] = (double)rs.layers[i].n;
    }
    /* normal equations: [w0+w1, w1; w1, w1+w2] x = [w0 y0 + w1 y1; w1 y1 + w2 y2] */
    double A = w[0] + w[1], B = w[1], D = w[1] + w[2], r0 = w[0] * y[0] + w[1] * y[1], r1 = w[1] * y[1] + w[2] * y[2];
    double det = A * D - B * B, x0 = (r0 * D - B * r1) / det, x1 = (A * r1 - B * r0) / det;
    /* subject to x <= 0: a positive one is fixed at 0 and the other solved alone */
    if (x1 > 0) {
        x1 = 0;
        x0 = fmin(r0 / A, 0);
    } else if (x0 > 0) {
        x0 = 0;
        x1 = fmin(r1 / D, 0);
    }
    long u0 = lround(fmin(exp(x0), 1.0) * 300), u1 = lround(fmin(exp(x1), 1.0) * 100);
    if (u0 < 1)
        u0 = 1;
    if (u1 < 1)
        u1 = 1;
    double g0 = metric_of(&rc_, "units.fc1.weight"), g1 = metric_of(&rc_, "units.fc2.weight");
    size_t expect_w = (size_t)(u0 * 784 + u1 * u0 + 10 * u1);
    ok(rc3 == PB_OK && g0 == u0 && g1 == u1 && rc_.prunable == 266200 && rc_.prunable_nonzero == expect_w,
       "precropping mode=crop: fc1 %g units, fc2 %g (constrained least squares: %ld, %ld), %zu dense weights (%zu) of "
       "%zu, the cropped ones counted as pruned (%s)", g0, g1, u0, u1, rc_.prunable_nonzero, expect_w, rc_.prunable,
       rc3 ? err : "ok");
    ok(rc4 == PB_OK && rc2.test_acc == rc_.test_acc && rc2.test_loss == rc_.test_loss &&
           rc_.flops_dense < rc_.flops_dense_orig,
       "precropping is deterministic and its network is really smaller (%.0f of %.0f FLOPs)", rc_.flops_dense,
       rc_.flops_dense_orig);
}

/* ---------- derived tasks ---------- */

static void test_tasks(void)
{
    pb_dataset d;
    int rc = pb_data_synthetic(&d, 300, 1, 4, 4, 10, 9, err, sizeof err);
    int count[10] = {0};
    for (int i = 0; rc == PB_OK && i < d.n; i++)
        count[d.y[i]]++;
    int expect = count[2] + count[5] + count[7];
    if (rc == PB_OK)
        rc = pb_data_keep_classes(&d, (1u << 2) | (1u << 5) | (1u << 7), err, sizeof err);
    int only = 1;
    for (int i = 0; rc == PB_OK && i < d.n; i++)
        only &= d.y[i] == 2 || d.y[i] == 5 || d.y[i] == 7;
    ok(rc == PB_OK && d.n == expect && only && d.ncls == 10,
       "class subset {2, 5, 7}: %d examples (%d), only those labels, 10 classes kept", d.n, expect);
    int map[10] = {0, 0, 1, 1, 1, 0, 0, 4, 0, 0}, bad_map[10] = {0, 0, 1, 1, 1, 0, 0, 10, 0, 0};
    int before[300];
    for (int i = 0; i < d.n; i++)
        before[i] = d.y[i];
    int rc2 = pb_data_map_labels(&d, map, 10, err, sizeof err), mapped = 1;
    for (int i = 0; rc2 == PB_OK && i < d.n; i++)
        mapped &= d.y[i] == map[before[i]];
    ok(rc2 == PB_OK && mapped, "label map: every label y becomes map[y]");
    int rc3 = pb_data_map_labels(&d, bad_map, 10, err, sizeof err);
    ok(rc3 == PB_EUSAGE && strstr(err, "sends class 7 to 10"), "a label map outside the classes is refused: %s", err);
    int rc4 = pb_data_keep_classes(&d, 1u << 9, err, sizeof err);
    ok(rc4 == PB_EUSAGE && strstr(err, "no example"), "a class subset with no example is refused: %s", err);
    pb_data_free(&d);
}

int main(void)
{
    char tmp[] = "/tmp/t_delta.XXXXXX";
    if (!mkdtemp(tmp)) {
        printf("Bail out! cannot make a temporary directory\n");
        return 1;
    }
    tap_plan(20);
    pb_par_use_threads(1);
    if (pb_data_synthetic_task(&tr, 256, 1, 1, 8, 3, 5, 1, err, sizeof err) != PB_OK ||
        pb_data_synthetic_task(&te, 128, 1, 1, 8, 3, 5, 2, err, sizeof err) != PB_OK) {
        printf("Bail out! %s\n", err);
        return 1;
    }
    test_dare_values();      /* 3 */
    test_delta_magnitude();  /* 1 */
    test_darex_q();          /* 3 */
    test_jobs(tmp);          /* 6 */
    test_precropping();      /* 3 */
    test_tasks();            /* 4 */
    pb_data_free(&tr);
    pb_data_free(&te);
    static const char *left[] = {"dare", "darex_q", "delta_magnitude"};
    for (int k = 0; k < 3; k++) {
        char f[256];
        snprintf(f, sizeof f, "%s/%s_a.pb", tmp, left[k]);
        remove(f);
        snprintf(f, sizeof f, "%s/%s_b.pb", tmp, left[k]);
        remove(f);
    }
    rmdir(tmp);
    return tap_done();
}
