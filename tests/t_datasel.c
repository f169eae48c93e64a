/* The data-selection methods (rs2, static_random, full, el2n, grand,
 * forgetting) bound beside a weight method through pb_datasel, and the data
 * axis of a job: coverage without replacement, subset sizes, determinism,
 * scores against hand-computed values, scoring cost, budgets, bad input. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../plugins/data_select.h"
#include "engine/pb_data.h"
#include "engine/pb_par.h"
#include "exp/pb_job.h"
#include "host/pb_datasel.h"
#include "host/pb_host.h"
#include "tap.h"

static pb_dataset train, test;

/* ---------------------------------------------------------- a context */

typedef struct rig {
    pb_model m;
    pb_ctx ctx;
    pb_datasel ds;
    char err[PB_ERRLEN];
    int ds_open, ctx_open;
    double metric[8];
    char metric_name[8][64];
    int nmetrics, score_rows;
} rig;

static void rig_metric(void *ud, const char *name, double value)
{
    rig *r = ud;
    if (r->nmetrics < 8) {
        snprintf(r->metric_name[r->nmetrics], 64, "%s", name);
        r->metric[r->nmetrics++] = value;
    }
}

static void rig_curve(void *ud, const pb_curve_rec *rec)
{
    rig *r = ud;
    r->score_rows += !strcmp(rec->phase, "score");
}

static double rig_get(const rig *r, const char *name)
{
    for (int i = 0; i < r->nmetrics; i++)
        if (!strcmp(r->metric_name[i], name))
            return r->metric[i];
    return NAN;
}

/* A linear softmax model (one dense layer, 64 inputs, 4 classes) or an MLP
 * 64-16-4 with a context and data method `name` bound lazily. */
static int rig_open(rig *r, int linear, const char *name, const char *const *args, int nargs, uint64_t seed)
{
    memset(r, 0, sizeof *r);
    int rc;
    if (linear) {
        pb_model_init(&r->m, "linear", 1, 8, 8, 4);
        rc = pb_model_dense(&r->m, NULL, 4, 1, r->err, sizeof r->err) < 0 ? PB_EUSAGE : PB_OK;
    } else {
        static const int hidden[] = {16};
        rc = pb_model_build(&r->m, "mlp", 1.0, hidden, 1, 1, 8, 8, 4, r->err, sizeof r->err);
    }
    if (rc == PB_OK)
        rc = pb_model_finalize(&r->m, 32, r->err, sizeof r->err);
    if (rc != PB_OK) {
        printf("# model: %s\n", r->err);
        return rc;
    }
    pb_model_init_weights(&r->m, seed);
    pb_train_cfg cfg;
    pb_train_defaults(&cfg);
    cfg.epochs = 1;
    cfg.batch = 32;
    cfg.opt.lr = 0.05;
    cfg.log_epochs = 0;
    if ((rc = pb_ctx_init(&r->ctx, &r->m, &train, &test, &cfg, seed, r->err, sizeof r->err)) != PB_OK)
        return rc;
    r->ctx_open = 1;
    r->ctx.on_metric = rig_metric;
    r->ctx.on_curve = rig_curve;
    r->ctx.curve_ud = r;
    if ((rc = pb_datasel_open(&r->ds, name, args, nargs, NULL, PB_BUDGET_NONE, 0, r->err, sizeof r->err)) != PB_OK) {
        printf("# %s: %s\n", name, r->err);
        return rc;
    }
    r->ds_open = 1;
    r->ctx.data = &r->ds;
    r->ds.on = 1;
    pb_train_cfg c2 = r->ctx.cfg;
    if ((rc = pb_datasel_begin(&r->ctx, &c2)) != PB_OK)
        printf("# bind %s: %s\n", name, r->err);
    return rc;
}

static void rig_close(rig *r)
{
    if (r->ctx_open)
        pb_ctx_free(&r->ctx);
    if (r->ds_open)
        pb_datasel_close(&r->ds);
    pb_model_free(&r->m);
    memset(r, 0, sizeof *r);
}

/* ----------------------------------------------------------- rs2 */

static void test_rs2(void)
{
    rig r;
    const char *a1[] = {"fraction=0.3"};
    int idx[256], n, counts[256];
    int ok_pass = rig_open(&r, 0, "rs2", a1, 1, 3) == PB_OK, sizes = 1;
    /* 10 rounds of 60 = 3 passes over 200: each window of 200 selections from
     * a pass start uses every example once */
    int stream[600], ns = 0;
    for (int round = 1; ok_pass && round <= 10; round++) {
        if (pb_datasel_select(&r.ctx, round, train.n, idx, &n) != PB_OK) {
            ok_pass = 0;
            break;
        }
        sizes &= n == 60;
        for (int i = 0; i < n; i++)
            stream[ns++] = idx[i];
    }
    for (int p = 0; ok_pass && p < 3; p++) {
        memset(counts, 0, sizeof counts);
        for (int i = 0; i < 200; i++)
            counts[stream[200 * p + i]]++;
        for (int i = 0; i < 200; i++)
            ok_pass &= counts[i] == 1;
    }
    ok(ok_pass && sizes, "rs2 without replacement: rounds of exactly 60 = 0.3 * 200, every example exactly once per pass");
    rig_close(&r);

    const char *a2[] = {"fraction=0.1", "replace=1"};
    int distinct = 1, repeated = 0;
    if (rig_open(&r, 0, "rs2", a2, 2, 3) == PB_OK) {
        memset(counts, 0, sizeof counts);
        for (int round = 1; round <= 10; round++) {
            int seen[256] = {0};
            pb_datasel_select(&r.ctx, round, train.n, idx, &n);
            distinct &= n == 20;
            for (int i = 0; i < n; i++) {
                distinct &= !seen[idx[i]]++;
                counts[idx[i]]++;
            }
        }
        for (int i = 0; i < 200; i++)
            repeated |= counts[i] > 1;
    }
    ok(distinct && repeated, "rs2 with replacement: 20 distinct examples a round, some used twice within 10 rounds");
    rig_close(&r);

    /* llround(0.333 * 200) = 67 */
    const char *a3[] = {"fraction=0.333"};
    n = 0;
    if (rig_open(&r, 0, "rs2", a3, 1, 3) == PB_OK)
        pb_datasel_select(&r.ctx, 1, train.n, idx, &n);
    ok(n == 67, "rs2 at 0.333 of 200 selects llround(66.6) = 67 (got %d)", n);
    rig_close(&r);
}

static void test_static_and_full(void)
{
    rig r;
    const char *a[] = {"fraction=0.05"};
    int idx[256], n1 = 0, n2 = 0, s1[256], s2[256];
    if (rig_open(&r, 0, "static_random", a, 1, 4) == PB_OK) {
        pb_datasel_select(&r.ctx, 1, train.n, idx, &n1);
        memcpy(s1, idx, sizeof s1);
        pb_datasel_select(&r.ctx, 2, train.n, idx, &n2);
        memcpy(s2, idx, sizeof s2);
    }
    int same = n1 == 10 && n2 == 10, order = 0;
    int in1[256] = {0};
    for (int i = 0; same && i < n1; i++)
        in1[s1[i]] = 1;
    for (int i = 0; same && i < n2; i++)
        same &= in1[s2[i]];
    for (int i = 0; i < n1 && i < n2; i++)
        order |= s1[i] != s2[i];
    ok(same && order, "static_random: the same 10 = 0.05 * 200 examples every round, reshuffled");
    rig_close(&r);

    int n = 0, all = 1, c[256] = {0};
    if (rig_open(&r, 0, "full", NULL, 0, 4) == PB_OK)
        pb_datasel_select(&r.ctx, 1, train.n, idx, &n);
    for (int i = 0; i < n; i++)
        c[idx[i]]++;
    for (int i = 0; i < 200; i++)
        all &= c[i] == 1;
    ok(n == 200 && all, "full: every example once a round");
    rig_close(&r);
}

/* ------------------------------------------------ scores by hand */

/* EL2N and GraNd of a linear softmax model: with p = softmax(Wx + b) and y
 * the one-hot label, dL/dW = (p - y) x^T and dL/db = p - y, so the gradient
 * norm is ||p - y|| * sqrt(||x||^2 + 1). */
static void hand_scores(const pb_model *m, float *el2n, float *grand)
{
    const pb_param *w = m->params[0], *b = m->params[1];
    float x[64];
    int y;
    for (int i = 0; i < train.n; i++) {
        pb_data_batch(&train, &i, 1, NULL, x, &y);
        double z[4], mx = -1e30, s = 0, xx = 0, d2 = 0;
        for (int k = 0; k < 4; k++) {
            z[k] = b->w[k];
            for (int j = 0; j < 64; j++)
                z[k] += (double)w->w[k * 64 + j] * x[j];
            mx = z[k] > mx ? z[k] : mx;
        }
        for (int k = 0; k < 4; k++)
            s += exp(z[k] - mx);
        for (int k = 0; k < 4; k++) {
            double p = exp(z[k] - mx) / s - (k == y);
            d2 += p * p;
        }
        for (int j = 0; j < 64; j++)
            xx += (double)x[j] * x[j];
        el2n[i] = (float)sqrt(d2);
        grand[i] = (float)(sqrt(d2) * sqrt(xx + 1));
    }
}

static int cmp_desc(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return x > y ? -1 : x < y;
}

static void test_scores(void)
{
    static const char *names[] = {"el2n", "grand"};
    for (int which = 0; which < 2; which++) {
        rig r;
        const char *a[] = {"fraction=0.25", "epochs=0", "skip=0.05"};
        float el2n[256], grand[256], sorted[256];
        int idx[256], n = 0;
        int rc = rig_open(&r, 1, names[which], a, 3, 9);
        if (rc == PB_OK)
            hand_scores(&r.m, el2n, grand);
        const float *h = which ? grand : el2n;
        double mean = 0;
        for (int i = 0; i < train.n; i++)
            mean += h[i];
        mean /= train.n;
        char key[64];
        snprintf(key, sizeof key, "%s.score_mean", names[which]);
        double got = rig_get(&r, key);
        ok(rc == PB_OK && fabs(got - mean) <= 1e-5 * fabs(mean),
           "%s at initialization: the plugin's mean score %.7g equals the hand-computed %.7g", names[which], got,
           mean);
        /* kept: ranks [10, 60) of the descending scores (skip 0.05 * 200, keep 0.25 * 200) */
        if (rc == PB_OK)
            rc = pb_datasel_select(&r.ctx, 1, train.n, idx, &n);
        memcpy(sorted, h, sizeof(float) * (size_t)train.n);
        qsort(sorted, (size_t)train.n, sizeof(float), cmp_desc);
        int good = rc == PB_OK && n == 50;
        for (int i = 0; good && i < n; i++)
            good = h[idx[i]] <= sorted[10] && h[idx[i]] >= sorted[59];
        ok(good, "%s keeps the 50 examples ranked 11..60 by the hand-computed score", names[which]);
        rig_close(&r);
    }
}

static void test_forgetting(void)
{
    /* four examples over four checks */
    static const int seq[4][4] = {{1, 0, 1, 0}, {0, 0, 0, 0}, {1, 1, 1, 1}, {0, 1, 0, 1}};
    unsigned char prev[4] = {0}, learned[4] = {0};
    int events[4] = {0};
    for (int t = 0; t < 4; t++) {
        int now[4];
        for (int i = 0; i < 4; i++)
            now[i] = seq[i][t];
        ds_forget_update(now, 4, prev, learned, events);
    }
    float s[4];
    for (int i = 0; i < 4; i++)
        s[i] = ds_forget_score(events[i], learned[i], 4);
    ok(s[0] == 2 && s[1] == 5 && s[2] == 0 && s[3] == 1,
       "forgetting events: 1010 -> 2, never learned -> checks + 1 = 5, 1111 -> 0, 0101 -> 1 (got %g %g %g %g)",
       s[0], s[1], s[2], s[3]);

    rig r;
    const char *a[] = {"fraction=0.2", "epochs=3"};
    int idx[256], n = 0;
    int rc = rig_open(&r, 0, "forgetting", a, 2, 5);
    if (rc == PB_OK)
        rc = pb_datasel_select(&r.ctx, 1, train.n, idx, &n);
    double f = rig_get(&r, "forgetting.forgotten_fraction"), nl = rig_get(&r, "forgetting.never_learned_fraction");
    ok(rc == PB_OK && n == 40 && r.score_rows == 3 && f >= 0 && f <= 1 && nl >= 0 && nl <= 1,
       "forgetting: a 3-epoch scoring run (%d score rows), 40 examples kept, fractions %g forgotten %g never learned",
       r.score_rows, f, nl);
    rig_close(&r);
}

static void test_model_restored(void)
{
    rig r;
    const char *a[] = {"fraction=0.5", "epochs=2"};
    pb_model ref;
    char err[PB_ERRLEN];
    int same = 0;
    /* the initialization the rig's model starts from, built beside it */
    static const int hidden[] = {16};
    if (pb_model_build(&ref, "mlp", 1.0, hidden, 1, 1, 8, 8, 4, err, sizeof err) == PB_OK &&
        pb_model_finalize(&ref, 32, err, sizeof err) == PB_OK) {
        pb_model_init_weights(&ref, 11);
        if (rig_open(&r, 0, "el2n", a, 2, 11) == PB_OK) {
            same = r.score_rows == 2 && r.ctx.steps == 0;
            for (int i = 0; same && i < ref.nparams; i++)
                same = !memcmp(ref.params[i]->w, r.m.params[i]->w, ref.params[i]->n * sizeof(float));
        }
        rig_close(&r);
        pb_model_free(&ref);
    }
    ok(same, "after a 2-epoch scoring run the model is its initialization again and no step is counted");
}

/* ---------------------------------------------------------- jobs */

typedef struct tally {
    int rows, score_rows, train_rows;
    long last_train_step, last_step;
} tally;

static void on_row(void *ud, const pb_curve_rec *rec)
{
    tally *t = ud;
    t->rows++;
    t->score_rows += !strcmp(rec->phase, "score");
    if (!strcmp(rec->phase, "train")) {
        t->train_rows++;
        t->last_train_step = rec->step;
    }
    t->last_step = rec->step;
}

static const int job_hidden[] = {16};

static void job_setup(pb_job *j, tally *t, const char *method, double sparsity, const char *data, const char *arg)
{
    pb_job_defaults(j);
    j->model = "mlp";
    j->hidden = job_hidden;
    j->nhidden = 1;
    j->dataset = "synthetic";
    j->subset = 200;
    j->threads = 1;
    j->train.epochs = 3;
    j->train.batch = 32;
    j->train.opt.lr = 0.05;
    j->train.log_epochs = 0;
    j->train.seed = 7;
    j->finetune.epochs = 1;
    j->finetune.batch = 32;
    j->finetune.log_epochs = 0;
    j->method = method;
    j->sparsity = sparsity;
    j->data_method = data;
    if (arg) {
        j->data_args[0] = arg;
        j->ndata_args = 1;
    }
    memset(t, 0, sizeof *t);
    j->on_curve = on_row;
    j->ud = t;
}

static void test_jobs(void)
{
    char err[PB_ERRLEN];
    pb_job j;
    tally t;
    pb_job_result a, b, c;

    /* magnitude at 0.5 trained on rs2 at 0.25: 3 rounds of 50 = 2 steps each,
     * then 1 fine-tuning epoch on all 200 (7 steps) */
    job_setup(&j, &t, "magnitude", 0.5, "rs2", "fraction=0.25");
    int rc = pb_job_run(&j, &a, err, sizeof err);
    if (rc != PB_OK)
        printf("# %s\n", err);
    ok(rc == PB_OK && fabs(a.sparsity - 0.5) < 0.01 && t.train_rows == 3 && t.last_train_step == 6 &&
           t.last_step == 13,
       "one cell: magnitude at 0.5 trained on rs2 25%% (3 rounds, %ld steps, then %ld), sparsity %.3f",
       t.last_train_step, t.last_step - t.last_train_step, a.sparsity);

    job_setup(&j, &t, "dense", 0, "rs2", "fraction=0.1");
    int rc1 = pb_job_run(&j, &a, err, sizeof err);
    job_setup(&j, &t, "dense", 0, "rs2", "fraction=0.1");
    int rc2 = pb_job_run(&j, &b, err, sizeof err);
    job_setup(&j, &t, "dense", 0, "rs2", "fraction=0.1");
    j.train.seed = 8;
    int rc3 = pb_job_run(&j, &c, err, sizeof err);
    ok(rc1 == PB_OK && rc2 == PB_OK && rc3 == PB_OK && a.test_acc == b.test_acc && a.test_loss == b.test_loss &&
           a.test_loss != c.test_loss,
       "seeded determinism: two runs give test loss %.9g and %.9g bit for bit, seed 8 gives %.9g", a.test_loss,
       b.test_loss, c.test_loss);

    /* the scoring run's cost: 2 epochs on 200 examples plus one forward each */
    job_setup(&j, &t, "dense", 0, "static_random", "fraction=0.5");
    rc1 = pb_job_run(&j, &a, err, sizeof err);
    job_setup(&j, &t, "dense", 0, "el2n", "fraction=0.5");
    j.data_args[1] = "epochs=2";
    j.ndata_args = 2;
    rc2 = pb_job_run(&j, &b, err, sizeof err);
    int score_rows = t.score_rows;
    pb_model m;
    double ex = 0, fe = 0;
    if (pb_model_build(&m, "mlp", 1.0, job_hidden, 1, 1, 28, 28, 10, err, sizeof err) == PB_OK &&
        pb_model_finalize(&m, 32, err, sizeof err) == PB_OK) {
        pb_model_init_weights(&m, 7);
        ex = pb_model_train_flops_eff(&m);
        pb_model_flops(&m, NULL, &fe);
        pb_model_free(&m);
    }
    double expect = 2 * 200 * ex + 200 * fe, diff = b.cost_flops - a.cost_flops;
    ok(rc1 == PB_OK && rc2 == PB_OK && score_rows == 2 && fabs(diff - expect) <= 1e-9 * expect &&
           b.cost_wall_s > 0,
       "scoring cost: el2n's cost_flops exceed static_random's by the scoring run, %.6g = 2 epochs + 1 pass = %.6g",
       diff, expect);

    /* budgets */
    job_setup(&j, &t, "dense", 0, "rs2", "fraction=0.1");
    j.budget_kind = PB_BUDGET_STEPS;
    j.budget = 5;
    rc = pb_job_run(&j, &a, err, sizeof err);
    ok(rc == PB_OK && t.last_train_step == 5 && t.train_rows == 5,
       "a budget of 5 steps: 5 rounds of 20 examples (1 step each), %ld steps", t.last_train_step);
    job_setup(&j, &t, "dense", 0, "rs2", "fraction=0.25");
    j.budget_kind = PB_BUDGET_EPOCHS;
    j.budget = 2;
    rc = pb_job_run(&j, &a, err, sizeof err);
    ok(rc == PB_OK && t.last_train_step == 14 && t.train_rows == 7,
       "a budget of 2 full-data epochs: 2 * 7 = 14 steps in rounds of 2 (got %ld steps, %d rounds)",
       t.last_train_step, t.train_rows);
    job_setup(&j, &t, "dense", 0, "rs2", "fraction=0.25");
    j.budget_kind = PB_BUDGET_SECONDS;
    j.budget = 1e-9;
    rc = pb_job_run(&j, &a, err, sizeof err);
    ok(rc == PB_OK && t.last_train_step == 1 && t.train_rows == 1,
       "a budget of 1 ns: training stops after the first step (%ld)", t.last_train_step);
}

static int refused(int rc, const char *err, const char *needle, const tally *t)
{
    int good = rc != PB_OK && strstr(err, needle) != NULL && (!t || t->rows == 0);
    if (!good)
        printf("# rc %d, error: %s\n", rc, err);
    return good;
}

static void test_errors(void)
{
    char err[PB_ERRLEN] = "";
    pb_datasel ds;
    const char *zero[] = {"fraction=0"}, *big[] = {"fraction=1.5"};
    int rc = pb_datasel_open(&ds, "rs2", zero, 1, NULL, PB_BUDGET_NONE, 0, err, sizeof err);
    ok(refused(rc, err, "fraction 0 is not in (0, 1]", NULL), "fraction 0 is refused: %s", err);
    rc = pb_datasel_open(&ds, "rs2", big, 1, NULL, PB_BUDGET_NONE, 0, err, sizeof err);
    ok(refused(rc, err, "fraction", NULL) && strstr(err, "1.5"), "fraction 1.5 is refused: %s", err);
    rc = pb_datasel_open(&ds, "magnitude", NULL, 0, NULL, PB_BUDGET_NONE, 0, err, sizeof err);
    ok(refused(rc, err, "not a data-selection method", NULL), "a weight method as the data method: %s", err);

    pb_job j;
    tally t;
    pb_job_result res;
    job_setup(&j, &t, "rs2", 0.5, NULL, NULL);
    rc = pb_job_run(&j, &res, err, sizeof err);
    ok(refused(rc, err, "is a data-selection method, not a weight-pruning method", &t),
       "a data method as the weight method, before training: %s", err);
    job_setup(&j, &t, "lottery", 0.5, "rs2", "fraction=0.5");
    rc = pb_job_run(&j, &res, err, sizeof err);
    ok(refused(rc, err, "drives its own training", &t), "a data method with a `run` method: %s", err);
    job_setup(&j, &t, "dense", 0, "rs2", "fraction=0.5");
    j.budget_kind = PB_BUDGET_EPOCHS;
    j.budget = 0.01; /* 0.01 * 7 steps rounds to 0 */
    rc = pb_job_run(&j, &res, err, sizeof err);
    ok(refused(rc, err, "cannot be met", &t), "a budget below one step, before training: %s", err);
    job_setup(&j, &t, "dense", 0, "rs2", "fraction=0.5");
    j.budget_kind = PB_BUDGET_STEPS;
    j.budget = 10;
    j.train.max_steps = 4;
    rc = pb_job_run(&j, &res, err, sizeof err);
    ok(refused(rc, err, "both bound the training", &t), "a budget beside max_steps: %s", err);
    job_setup(&j, &t, "dense", 0, "el2n", "fraction=0.9");
    j.data_args[1] = "skip=0.2";
    j.ndata_args = 2;
    rc = pb_job_run(&j, &res, err, sizeof err);
    ok(refused(rc, err, "leave nothing to keep", &t), "fraction + skip above 1: %s", err);
}

int main(void)
{
    char err[PB_ERRLEN];
    tap_plan(26);
    pb_par_use_threads(1);
    if (pb_data_synthetic_task(&train, 200, 1, 8, 8, 4, 31, 1, err, sizeof err) != PB_OK ||
        pb_data_synthetic_task(&test, 64, 1, 8, 8, 4, 31, 2, err, sizeof err) != PB_OK) {
        printf("Bail out! synthetic data: %s\n", err);
        return 1;
    }
    test_rs2();              /* 3 */
    test_static_and_full();  /* 2 */
    test_scores();           /* 4 */
    test_forgetting();       /* 2 */
    test_model_restored();   /* 1 */
    test_jobs();             /* 6 */
    test_errors();           /* 8 */
    pb_data_free(&train);
    pb_data_free(&test);
    return tap_done();
}
