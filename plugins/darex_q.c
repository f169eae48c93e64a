/* darex_q: DAREx-q (Deng et al. 2024, "DARE the Extreme: Revisiting
 * Delta-Parameter Pruning for Fine-Tuned Models"). DARE's drop of each delta
 * w_ft - w_base with probability p (the target sparsity), but the survivors
 * are rescaled by 1/q instead of 1/(1 - p), q in [1 - p, 1] chosen on the
 * run's calibration sample (host->calibration_sample: the examples a
 * `calibrate` stage fixed, else 128 training examples; it must be a sample
 * of the training split):
 *   criterion = acc     highest accuracy on the sample, ties to lower loss
 *                        (the paper's DAREx-q with validation data);
 *   criterion = loss    lowest mean cross-entropy on the sample;
 *   criterion = output  label-free: the q whose last-layer outputs differ
 *                        least (mean squared) from the fine-tuned model's
 *                        (the paper's unlabeled variant).
 * The search is the paper's coarse-to-fine one: `grid` values of q spaced
 * evenly in log q over [1 - p, 1] (both ends included: plain DARE and no
 * rescale), then `refine` times `grid` values between the neighbours of the
 * best. One q serves every tensor (the paper's global q). The drop itself is
 * dare's (same draws for the same seed and draw mode), so q is the only
 * difference to a dare cell. The classifier head keeps its whole delta, which
 * makes the output criterion exact: with the head's weights and bias
 * unchanged, the change of the logits is W_head (x_q - x_ft), x the head's
 * input. Biases and normalization parameters keep their fine-tuned values
 * (see delta_common.h). Metrics: q, q_dare (1 - the fraction dropped) and
 * the criterion's best value (q_objective). */
#include "delta_common.h"

#include <float.h>

enum { ARG_CRITERION, ARG_GRID, ARG_REFINE, ARG_DRAW };
enum { CRIT_ACC = 0, CRIT_LOSS, CRIT_OUTPUT };

static const pb_param_spec params[] = {
    {.name = "criterion", .type = PB_PT_CHOICE, .def = 0, .choices = "acc|loss|output",
     .help = "how q is chosen on the calibration sample: accuracy, loss, or closeness of the outputs (no labels)"},
    {.name = "grid", .type = PB_PT_INT, .def = 10, .lo = 2, .hi = 1000,
     .help = "values of q tried per pass, log-spaced"},
    {.name = "refine", .type = PB_PT_INT, .def = 1, .lo = 0, .hi = 10,
     .help = "finer passes between the neighbours of the best q"},
    {.name = "draw", .type = PB_PT_CHOICE, .def = 0, .choices = "exact|bernoulli",
     .help = "as dare's draw"},
    {.name = NULL},
};

typedef struct state {
    int criterion, grid, refine, exact;
} state;

static int create(const pb_host *h, pb_ctx *c, const double *args, void **out)
{
    int rc;
    if ((rc = PB_NEED_HOST(h, c, reference)) || (rc = PB_NEED_HOST(h, c, metric)) ||
        (rc = PB_NEED_HOST(h, c, calibration_sample)) || (rc = PB_NEED_HOST(h, c, example_stats)) ||
        (rc = PB_NEED_HOST(h, c, calibrate_on)) || (rc = PB_NEED_HOST(h, c, gemm)) ||
        (rc = pb_state_new(h, c, sizeof(state), out)))
        return rc;
    state *st = *out;
    st->criterion = (int)args[ARG_CRITERION];
    st->grid = (int)args[ARG_GRID];
    st->refine = (int)args[ARG_REFINE];
    st->exact = (int)args[ARG_DRAW] == 0;
    return PB_PLUGIN_OK;
}

/* The head's inputs over the sample, appended batch by batch. */
typedef struct rows {
    float *x;
    size_t used, cap;
    int cols, failed;
} rows;

static void collect(void *ud, int param, const float *x, int nrows, int cols)
{
    (void)param;
    rows *r = ud;
    size_t need = r->used + (size_t)nrows * cols;
    if (r->failed || need > r->cap) {
        r->failed = 1;
        return;
    }
    memcpy(r->x + r->used, x, (size_t)nrows * cols * sizeof(float));
    r->used = need;
    r->cols = cols;
}

typedef struct search {
    const pb_host *h;
    pb_ctx *c;
    const state *st;
    delta_set *d;
    double *scale;
    const int *idx;
    int n, head;
    float *loss;
    int *correct;
    rows ft, cur;      /* output criterion: the head's inputs, fine-tuned and at q */
    float *diff, *logits;
    int head_rows;
    float *head_w;
} search;

/* The objective at q (lower is better): -accuracy + loss * 1e-9 tie-break,
 * the mean loss, or the mean squared change of the logits. */
static int objective(search *s, double q, double *obj)
{
    const pb_host *h = s->h;
    pb_ctx *c = s->c;
    int rc;
    for (int i = 0; i < s->d->first_whole; i++)
        s->scale[i] = 1.0 / q;
    if ((rc = delta_apply(h, c, s->d, s->scale)))
        return rc;
    if (s->st->criterion == CRIT_OUTPUT) {
        s->cur.used = 0;
        if ((rc = h->calibrate_on(c, s->idx, s->n, &s->head, 1, collect, &s->cur)))
            return rc;
        if (s->cur.failed || s->cur.used != s->ft.used)
            return h->fail(c, "the head's calibration inputs changed size between two passes");
        size_t m = s->cur.used / (size_t)s->cur.cols;
        for (size_t j = 0; j < s->cur.used; j++)
            s->diff[j] = s->cur.x[j] - s->ft.x[j];
        /* logits change = diff * W_head^T: [m x cols] x [cols x rows] */
        h->gemm(c, 0, 1, (int)m, s->head_rows, s->cur.cols, 1.0f, s->diff, s->cur.cols, s->head_w, s->cur.cols,
                0.0f, s->logits, s->head_rows);
        double sq = 0;
        for (size_t j = 0; j < m * (size_t)s->head_rows; j++)
            sq += (double)s->logits[j] * s->logits[j];
        *obj = sq / (double)s->n;
        return PB_PLUGIN_OK;
    }
    pb_example_stats es = {.size = sizeof es, .loss = s->loss, .correct = s->correct};
    if ((rc = h->example_stats(c, s->idx, s->n, &es)))
        return rc;
    double loss = 0, acc = 0;
    for (int k = 0; k < s->n; k++) {
        loss += s->loss[k];
        acc += s->correct[k];
    }
    loss /= s->n;
    acc /= s->n;
    *obj = s->st->criterion == CRIT_LOSS ? loss : -acc + 1e-9 * fmin(loss, 1e6);
    return isfinite(*obj) ? PB_PLUGIN_OK : (*obj = DBL_MAX, PB_PLUGIN_OK);
}

/* One pass: K values of q log-spaced over [lo, hi]. The best q over all
 * passes so far is kept in *best_q / *best_obj (ties keep the earlier); the
 * neighbours of this pass's best bound the next pass. */
static int pass(search *s, double lo, double hi, double *best_q, double *best_obj, double *nlo, double *nhi)
{
    int K = s->st->grid, rc, kb = 0;
    double qs[1000] = {0}, pass_best = DBL_MAX;
    for (int k = 0; k < K; k++) {
        qs[k] = k == 0 ? lo : k == K - 1 ? hi : lo * pow(hi / lo, (double)k / (K - 1));
        double obj = DBL_MAX;
        if ((rc = objective(s, qs[k], &obj)))
            return rc;
        s->h->log(s->c, "q %.6g: objective %.6g", qs[k], obj);
        if (obj < pass_best) {
            pass_best = obj;
            kb = k;
        }
        if (obj < *best_obj) {
            *best_obj = obj;
            *best_q = qs[k];
        }
    }
    *nlo = qs[kb > 0 ? kb - 1 : 0];
    *nhi = qs[kb < K - 1 ? kb + 1 : K - 1];
    return PB_PLUGIN_OK;
}

static int prune(void *p, const pb_host *h, pb_ctx *c, double sparsity)
{
    const state *st = p;
    int rc;
    if ((rc = pb_check_sparsity(h, c, sparsity, PB_SPARSITY_BELOW_1)))
        return rc;
    delta_set d;
    if ((rc = delta_load(h, c, "base", 0, &d)))
        return rc;
    search s = {.h = h, .c = c, .st = st, .d = &d, .head = d.nw - 1};
    s.scale = calloc((unsigned)d.nw, sizeof *s.scale);
    if (!s.scale) {
        rc = h->fail(c, "out of memory");
        goto out;
    }
    if ((rc = h->calibration_sample(c, &s.idx, &s.n)) || (rc = delta_draw_random(h, c, &d, sparsity, st->exact)))
        goto out;
    if (s.n < 1) {
        rc = h->fail(c, "darex_q needs a calibration sample of at least one example");
        goto out;
    }
    if (st->criterion == CRIT_OUTPUT) {
        pb_weights hw = {.size = sizeof hw};
        if ((rc = h->weights(c, s.head, &hw)))
            goto out;
        if (hw.layer_kind == 1) {
            rc = h->fail(c, "darex_q criterion=output needs a dense classifier head (%s is a convolution)", hw.name);
            goto out;
        }
        /* the fine-tuned model's head inputs, one row per example, before any weight changes */
        size_t cap = (size_t)s.n * hw.cols;
        s.head_rows = hw.rows;
        s.ft.x = malloc(cap * sizeof(float));
        s.cur.x = malloc(cap * sizeof(float));
        s.diff = malloc(cap * sizeof(float));
        s.logits = malloc((size_t)s.n * hw.rows * sizeof(float));
        s.head_w = malloc(hw.n * sizeof(float));
        s.ft.cap = s.cur.cap = cap;
        if (!s.ft.x || !s.cur.x || !s.diff || !s.logits || !s.head_w) {
            rc = h->fail(c, "out of memory");
            goto out;
        }
        memcpy(s.head_w, hw.w, hw.n * sizeof(float)); /* views do not outlive calls */
        if ((rc = h->calibrate_on(c, s.idx, s.n, &s.head, 1, collect, &s.ft)))
            goto out;
        if (s.ft.failed || s.ft.used != cap) {
            rc = h->fail(c, "the head's calibration inputs are not one row per example");
            goto out;
        }
    } else {
        s.loss = malloc((size_t)s.n * sizeof *s.loss);
        s.correct = malloc((size_t)s.n * sizeof *s.correct);
        if (!s.loss || !s.correct) {
            rc = h->fail(c, "out of memory");
            goto out;
        }
    }
    size_t n = 0, dropped = 0;
    for (int i = 0; i < d.first_whole; i++) {
        n += d.n[i];
        dropped += d.dropped[i];
    }
    double q_dare = n ? 1.0 - (double)dropped / (double)n : 1.0;
    double lo = q_dare > 0 ? q_dare : 1.0 / (double)(n ? n : 1), hi = 1.0;
    double best_q = hi, best_obj = DBL_MAX;
    if (lo >= hi) { /* nothing dropped: q = 1 is the fine-tuned model */
        best_q = 1.0;
        best_obj = 0;
    } else {
        for (int r = 0; r <= st->refine; r++) {
            double nlo, nhi;
            if ((rc = pass(&s, lo, hi, &best_q, &best_obj, &nlo, &nhi)))
                goto out;
            if (nlo >= nhi)
                break;
            lo = nlo;
            hi = nhi;
        }
    }
    for (int i = 0; i < d.first_whole; i++)
        s.scale[i] = 1.0 / best_q;
    if ((rc = delta_apply(h, c, &d, s.scale)) || (rc = delta_report(h, c, &d)) ||
        (rc = h->metric(c, "q", best_q)) || (rc = h->metric(c, "q_dare", q_dare)) ||
        (rc = h->metric(c, "q_objective", best_obj)))
        goto out;
    h->log(c, "q = %.6g (DARE's 1 - p = %.6g), objective %.6g on %d examples", best_q, q_dare, best_obj, s.n);
out:
    free(s.scale);
    free(s.loss);
    free(s.correct);
    free(s.ft.x);
    free(s.cur.x);
    free(s.diff);
    free(s.logits);
    free(s.head_w);
    delta_free(&d);
    return rc;
}

PB_PLUGIN_DEFINE(
    .name = "darex_q",
    .description = "DAREx-q: DARE's random delta drop, survivors rescaled by 1/q with q tuned on calibration data",
    .kind = PB_KIND_DELTA,
    .when = PB_WHEN_TRAINED,
    .params = params,
    .create = create,
    .destroy = pb_state_free,
    .prune = prune,
    .needs = PB_NEEDS_REFERENCE,
    .reference = "base")
