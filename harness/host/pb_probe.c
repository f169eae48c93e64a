/* pb_probe: what the host measures for plugins without changing the model —
 * gradients on chosen examples, Hessian-vector products, SynFlow's objective,
 * calibration inputs of the prunable layers, per-example statistics. */
#include "pb_probe.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/pb_hvp.h"

/* ---------- gradients ---------- */

/* A uniform sample of n training examples (n <= 0: 128) from the context's
 * stream into c->grad_idx[0..grad_n-1]: a new draw at every call. */
/* Refuses a missing list (n > 0, or n < min) or an index outside d: the
 * functions that take example indices check them all in one place. */
static int check_examples(pb_ctx *c, const char *what, const pb_dataset *d, const int *idx, int n, int min)
{
    if (n < min || (n > 0 && !idx))
        return pb_ctx_fail(c, "%s: no examples", what);
    for (int i = 0; i < n; i++)
        if (idx[i] < 0 || idx[i] >= d->n)
            return pb_ctx_fail(c, "%s: example %d not in [0, %d)", what, idx[i], d->n);
    return PB_OK;
}

/* Charges `passes` forward-equivalents (a gradient is 3) over n examples to
 * the run's probe FLOPs. */
static void charge(pb_ctx *c, double passes, int n)
{
    double e;
    pb_model_flops(c->m, NULL, &e);
    c->probe_flops += passes * e * n;
}

static int draw_examples(pb_ctx *c, int n)
{
    if (n <= 0 || n > c->train->n)
        n = c->train->n < 128 ? c->train->n : (n <= 0 ? 128 : c->train->n);
    int *idx = realloc(c->grad_idx, (size_t)c->train->n * sizeof(int));
    if (!idx)
        return -1;
    c->grad_idx = idx;
    for (int i = 0; i < c->train->n; i++)
        idx[i] = i;
    /* partial Fisher-Yates: the first n are a uniform sample */
    for (int i = 0; i < n; i++) {
        int j = i + (int)pb_rng_below(&c->rng, (uint32_t)(c->train->n - i));
        int t = idx[i];
        idx[i] = idx[j];
        idx[j] = t;
    }
    c->grad_n = n;
    return n;
}

int pb_probe_grad(pb_ctx *c, int n, double temperature, double *loss)
{
    if (draw_examples(c, n) < 0)
        return pb_err(c->err, c->errlen, PB_ENOMEM, "out of memory");
    c->grad_temp = temperature > 0 ? temperature : 1.0;
    charge(c, 3, c->grad_n);
    return pb_model_grad_on(c->m, c->train, c->grad_idx, c->grad_n, (float)c->grad_temp, loss, c->err,
                            c->errlen);
}

int pb_probe_hvp(pb_ctx *c, const float *const *v, float *const *out)
{
    if (!c->grad_n)
        return pb_err(c->err, c->errlen, PB_EPLUGIN, "method %s: hvp() before grad()",
                      c->plugin ? c->plugin->desc.name : "?");
    /* exact, by forward-over-reverse differentiation (pb_hvp.h): the
     * directions and products of the prunable tensors, in the model's
     * parameter order */
    const float *pv[PB_MAX_PARAMS] = {0};
    double *ph[PB_MAX_PARAMS] = {0};
    float *dst[PB_MAX_PARAMS] = {0};
    int np = pb_model_nprunable(c->m), rc = PB_OK;
    for (int t = 0; t < np && rc == PB_OK; t++) {
        const pb_param *p = pb_model_prunable(c->m, t);
        for (int i = 0; i < c->m->nparams; i++)
            if (c->m->params[i] == p) {
                pv[i] = v[t];
                dst[i] = out[t];
                if (!(ph[i] = malloc(p->n * sizeof(double))))
                    rc = pb_err(c->err, c->errlen, PB_ENOMEM, "out of memory");
            }
    }
    charge(c, 6, c->grad_n);
    if (rc == PB_OK)
        rc = pb_model_hvp_on(c->m, c->train, c->grad_idx, c->grad_n, (float)c->grad_temp, pv, ph, NULL, NULL,
                             c->err, c->errlen);
    for (int i = 0; i < c->m->nparams; i++) {
        if (rc == PB_OK && ph[i])
            for (size_t j = 0; j < c->m->params[i]->n; j++)
                dst[i][j] = (float)ph[i][j];
        free(ph[i]);
    }
    return rc;
}

int pb_probe_grad_output_sum(pb_ctx *c, double *R)
{
    pb_model *m = c->m;
    size_t in = (size_t)m->ic * m->ih * m->iw;
    float *x = malloc(in * sizeof(float)), *dl = malloc((size_t)m->ncls * sizeof(float));
    if (!x || !dl) {
        free(x);
        free(dl);
        return pb_err(c->err, c->errlen, PB_ENOMEM, "out of memory");
    }
    for (size_t j = 0; j < in; j++)
        x[j] = 1.0f;
    for (int k = 0; k < m->ncls; k++)
        dl[k] = 1.0f;
    /* SynFlow linearizes the network on |theta|: biases and BN parameters too
     * (prunable weights are the plugin's to set, since it needs their signs). */
    float **saved = calloc((size_t)m->nparams, sizeof *saved);
    if (!saved) {
        free(x);
        free(dl);
        return pb_err(c->err, c->errlen, PB_ENOMEM, "out of memory");
    }
    for (int i = 0; i < m->nparams; i++) {
        pb_param *p = m->params[i];
        if (p->prunable || p->layer < 0 || !(saved[i] = malloc(p->n * sizeof(float))))
            continue;
        memcpy(saved[i], p->w, p->n * sizeof(float));
        for (size_t j = 0; j < p->n; j++)
            p->w[j] = fabsf(p->w[j]);
    }
    charge(c, 3, 1);
    pb_model_zero_grad(m);
    const float *out = pb_model_forward(m, x, 1, 0);
    double s = 0;
    for (int k = 0; k < m->ncls; k++)
        s += out[k];
    pb_model_backward(m, x, 1, dl, NULL);
    for (int i = 0; i < m->nparams; i++)
        if (saved[i]) {
            memcpy(m->params[i]->w, saved[i], m->params[i]->n * sizeof(float));
            free(saved[i]);
        }
    free(saved);
    free(x);
    free(dl);
    if (R)
        *R = s;
    return PB_OK;
}

/* ---------- calibration ---------- */

typedef struct calib_state {
    pb_calib_fn fn;
    void *ud;
    int layer_to_param[PB_MAX_LAYERS];
    float *cols;
    size_t cols_n;
    int failed;
} calib_state;

/* The input of a prunable tensor's layer, unfolded for conv (rows = example
 * and output position, cols = the weight's ic*kh*kw order). */
static void calib_hook(void *ud, const pb_model *m, int li, const float *x, int B)
{
    calib_state *s = ud;
    int pi = s->layer_to_param[li];
    if (pi < 0 || s->failed)
        return;
    const pb_layer *l = &m->layers[li];
    if (l->kind == PB_DENSE) {
        s->fn(s->ud, pi, x, B, (int)pb_layer_isize(l));
        return;
    }
    int cols = (int)pb_layer_unfold_cols(l), P = l->oh * l->ow;
    size_t need = (size_t)B * P * cols;
    if (need > s->cols_n) {
        free(s->cols);
        s->cols = malloc(need * sizeof(float));
        s->cols_n = s->cols ? need : 0;
        if (!s->cols) {
            s->failed = 1;
            return;
        }
    }
    pb_layer_unfold(l, x, B, s->cols); /* the engine's im2col order: the weight's columns */
    s->fn(s->ud, pi, s->cols, B * P, cols);
}

int pb_probe_calibrate_on(pb_ctx *c, const int *idx, int n, const int *params, int nparams, pb_calib_fn fn,
                          void *ud)
{
    const pb_dataset *d = c->calib_set ? c->calib_set : c->train;
    int np = pb_model_nprunable(c->m);
    if (!fn)
        return pb_ctx_fail(c, "calibrate_on: no callback");
    int rc = check_examples(c, "calibrate_on", d, idx, n, 0);
    if (rc != PB_OK)
        return rc;
    calib_state s = {.fn = fn, .ud = ud};
    for (int i = 0; i < PB_MAX_LAYERS; i++)
        s.layer_to_param[i] = -1;
    if (!params) {
        for (int t = 0; t < np; t++)
            s.layer_to_param[pb_model_prunable(c->m, t)->layer] = t;
    } else {
        for (int k = 0; k < nparams; k++) {
            if (params[k] < 0 || params[k] >= np)
                return pb_ctx_fail(c, "calibrate_on: weight tensor %d of %d", params[k], np);
            s.layer_to_param[pb_model_prunable(c->m, params[k])->layer] = params[k];
        }
    }
    pb_model *m = c->m;
    int batch = m->max_batch;
    pb_batch b;
    if (pb_batch_init(&b, d, batch, c->err, c->errlen) != PB_OK)
        return PB_ENOMEM;
    pb_input_hook old = m->input_hook;
    void *old_ud = m->input_hook_ud;
    charge(c, 1, n);
    pb_model_set_input_hook(m, calib_hook, &s);
    for (int i = 0; i < n && !s.failed; i += batch) {
        int B = n - i < batch ? n - i : batch;
        pb_data_batch(d, idx + i, B, NULL, b.x, b.y);
        pb_model_forward(m, b.x, B, 0);
    }
    pb_model_set_input_hook(m, old, old_ud);
    pb_batch_free(&b);
    free(s.cols);
    return s.failed ? pb_err(c->err, c->errlen, PB_ENOMEM, "out of memory during calibration") : PB_OK;
}

int pb_probe_calib_draw(pb_ctx *c, int n)
{
    const pb_dataset *d = c->calib_set ? c->calib_set : c->train;
    if (n <= 0)
        n = 128;
    if (n > d->n)
        n = d->n;
    int *idx = malloc((size_t)d->n * sizeof(int));
    if (!idx)
        return pb_err(c->err, c->errlen, PB_ENOMEM, "out of memory");
    for (int i = 0; i < d->n; i++)
        idx[i] = i;
    /* its own stream, a function of the run's seed and n alone: the sample does
     * not depend on what else drew from the context's stream before */
    pb_rng r;
    pb_rng_seed(&r, c->seed ^ 0xca11b7a7e5ULL ^ ((uint64_t)n << 32));
    for (int i = 0; i < n; i++) {
        int j = i + (int)pb_rng_below(&r, (uint32_t)(d->n - i));
        int t = idx[i];
        idx[i] = idx[j];
        idx[j] = t;
    }
    free(c->calib_idx);
    c->calib_idx = idx;
    c->calib_n = n;
    return PB_OK;
}

int pb_probe_calibration_sample(pb_ctx *c, const int **idx, int *n)
{
    if (!c->calib_idx) {
        int rc = pb_probe_calib_draw(c, 0);
        if (rc != PB_OK)
            return rc;
    }
    if (idx)
        *idx = c->calib_idx;
    if (n)
        *n = c->calib_n;
    return PB_OK;
}

int pb_probe_calibrate(pb_ctx *c, int n, pb_calib_fn fn, void *ud)
{
    /* A calibrate stage fixes the sample for the whole run; otherwise the sample
     * of n examples is drawn once and every call with the same n reuses it. */
    if (!c->calib_fixed && (!c->calib_idx || (n > 0 && n != c->calib_n))) {
        int rc = pb_probe_calib_draw(c, n);
        if (rc != PB_OK)
            return rc;
    }
    return pb_probe_calibrate_on(c, c->calib_idx, c->calib_n, NULL, 0, fn, ud);
}

/* ---------- data ---------- */

int pb_probe_example_scores(pb_ctx *c, const int *idx, int n, float *loss, float *el2n)
{
    int rc = check_examples(c, "example_scores", c->train, idx, n, 0);
    if (rc != PB_OK)
        return rc;
    charge(c, 1, n);
    pb_model *m = c->m;
    int batch = m->max_batch;
    pb_batch b;
    if (pb_batch_init(&b, c->train, batch, c->err, c->errlen) != PB_OK)
        return PB_ENOMEM;
    for (int s = 0; s < n; s += batch) {
        int B = n - s < batch ? n - s : batch;
        pb_data_batch(c->train, idx + s, B, NULL, b.x, b.y);
        pb_model_forward(m, b.x, B, 0);
        pb_model_loss(m, b.y, B, 1.0f, loss ? loss + s : NULL, NULL);
        if (el2n)
            for (int e = 0; e < B; e++) {
                double acc = 0;
                for (int k = 0; k < m->ncls; k++) {
                    double d = m->probs[(size_t)e * m->ncls + k] - (k == b.y[e]);
                    acc += d * d;
                }
                el2n[s + e] = (float)sqrt(acc);
            }
    }
    pb_batch_free(&b);
    return PB_OK;
}


int pb_probe_grad_examples(pb_ctx *c, const int *idx, int n, double temperature, double *loss)
{
    int rc = check_examples(c, "grad_examples", c->train, idx, n, 1);
    if (rc != PB_OK)
        return rc;
    /* hvp() differentiates the gradient on the same examples */
    int *copy = realloc(c->grad_idx, (size_t)n * sizeof(int));
    if (!copy)
        return pb_err(c->err, c->errlen, PB_ENOMEM, "out of memory");
    memcpy(copy, idx, (size_t)n * sizeof(int));
    c->grad_idx = copy;
    c->grad_n = n;
    c->grad_temp = temperature > 0 ? temperature : 1.0;
    charge(c, 3, n);
    return pb_model_grad_on(c->m, c->train, c->grad_idx, n, (float)c->grad_temp, loss, c->err, c->errlen);
}

/* Squared norm of the gradient over every trainable parameter; pruned
 * weights (mask 0) are not parameters of the pruned model and do not count. */
static double grad_sq(const pb_model *m)
{
    double s = 0;
    for (int i = 0; i < m->nparams; i++) {
        const pb_param *p = m->params[i];
        if (!p->trainable)
            continue;
        for (size_t j = 0; j < p->n; j++)
            if (!p->mask || p->mask[j] != 0.0f)
                s += (double)p->g[j] * p->g[j];
    }
    return s;
}

int pb_probe_example_stats(pb_ctx *c, const int *idx, int n, pb_example_stats *out)
{
    pb_example_stats st;
    memset(&st, 0, sizeof st);
    if (!out)
        return pb_ctx_fail(c, "example_stats: no output");
    memcpy(&st, out, out->size && out->size < sizeof st ? out->size : sizeof st);
    int rc = check_examples(c, "example_stats", c->train, idx, n, 0);
    if (rc != PB_OK)
        return rc;
    charge(c, st.grad_norm ? 4 : 1, n);
    pb_model *m = c->m;
    int batch = m->max_batch;
    pb_batch b;
    if (pb_batch_init(&b, c->train, batch, c->err, c->errlen) != PB_OK)
        return PB_ENOMEM;
    for (int s = 0; s < n; s += batch) {
        int B = n - s < batch ? n - s : batch;
        pb_data_batch(c->train, idx + s, B, NULL, b.x, b.y);
        pb_model_forward(m, b.x, B, 0);
        pb_model_loss(m, b.y, B, 1.0f, st.loss ? st.loss + s : NULL, NULL);
        for (int e = 0; e < B; e++) {
            const float *pr = m->probs + (size_t)e * m->ncls;
            double acc = 0;
            int best = 0;
            for (int k = 0; k < m->ncls; k++) {
                double d = pr[k] - (k == b.y[e]);
                acc += d * d;
                if (pr[k] > pr[best])
                    best = k;
            }
            if (st.el2n)
                st.el2n[s + e] = (float)sqrt(acc);
            if (st.correct)
                st.correct[s + e] = best == b.y[e];
        }
        /* GraNd: one backward per example (a batch's gradient is their mean, not their norms) */
        for (int e = 0; st.grad_norm && e < B; e++) {
            const float *xe = b.x + (size_t)e * ((size_t)c->train->c * c->train->h * c->train->w);
            pb_model_zero_grad(m);
            pb_model_forward(m, xe, 1, 0);
            pb_model_loss(m, b.y + e, 1, 1.0f, NULL, NULL);
            pb_model_backward(m, xe, 1, NULL, NULL);
            st.grad_norm[s + e] = (float)sqrt(grad_sq(m));
        }
    }
    pb_batch_free(&b);
    return PB_OK;
}
