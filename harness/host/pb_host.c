#include "pb_host.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------- messages ---------- */

static int h_fail(pb_ctx *c, const char *fmt, ...)
{
    char msg[PB_ERRLEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return pb_err(c->err, c->errlen, PB_EPLUGIN, "method %s: %s",
                  c->plugin ? c->plugin->desc.name : "?", msg);
}

static void h_log(pb_ctx *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "[%s] ", c->plugin ? c->plugin->desc.name : "host");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* A plugin that returned an error without saying why still gets a message. */
static int plugin_status(pb_ctx *c, int rc, const char *hook)
{
    if (rc == PB_OK)
        return PB_OK;
    if (!c->err[0])
        pb_err(c->err, c->errlen, PB_EPLUGIN, "method %s: %s failed (status %d)", c->plugin->desc.name, hook, rc);
    return rc == PB_ENUM || rc == PB_ENOMEM ? rc : PB_EPLUGIN;
}

static void free_scratch(pb_ctx *c)
{
    for (int i = 0; i < c->nscratch; i++)
        free(c->scratch[i]);
    c->nscratch = 0;
}

/* ---------- model access ---------- */

static int h_nweights(pb_ctx *c) { return pb_model_nprunable(c->m); }

static int h_weights(pb_ctx *c, int i, pb_weights *out)
{
    pb_param *p = pb_model_prunable(c->m, i);
    if (!p)
        return pb_err(c->err, c->errlen, PB_EPLUGIN, "method %s asked for weight tensor %d of %d",
                      c->plugin ? c->plugin->desc.name : "?", i, pb_model_nprunable(c->m));
    size_t sz = out->size && out->size < sizeof *out ? out->size : sizeof *out;
    pb_weights v;
    memset(&v, 0, sizeof v);
    v.size = sz;
    v.name = p->name;
    v.layer_kind = c->m->layers[p->layer].kind == PB_CONV ? 1 : 0;
    v.ndim = p->ndim;
    memcpy(v.shape, p->shape, sizeof v.shape);
    v.n = p->n;
    v.rows = p->shape[0];
    v.cols = (int)(p->n / (size_t)p->shape[0]);
    v.w = p->w;
    v.g = p->g;
    v.mask = p->mask;
    int pi = 0;
    while (c->m->params[pi] != p)
        pi++;
    v.w_init = c->init ? c->init[pi] : NULL;
    memcpy(out, &v, sz);
    return PB_OK;
}

static void h_apply_masks(pb_ctx *c) { pb_model_apply_masks(c->m); }

static uint64_t h_random(pb_ctx *c) { return pb_rng_next(&c->rng); }

/* Keeps the k highest scores among candidates of one or more tensors: finds the
 * k-th largest by selection, then takes ties in index order so the count is exact. */
static int keep_topk(pb_ctx *c, pb_param **ps, float *const *scores, int np, size_t k, int regrow)
{
    size_t ncand = 0;
    for (int t = 0; t < np; t++)
        for (size_t j = 0; j < ps[t]->n; j++)
            ncand += regrow || ps[t]->mask[j] != 0.0f;
    if (k > ncand)
        k = ncand;
    float *buf = malloc((ncand ? ncand : 1) * sizeof(float));
    if (!buf)
        return pb_err(c->err, c->errlen, PB_ENOMEM, "out of memory");
    size_t q = 0;
    for (int t = 0; t < np; t++)
        for (size_t j = 0; j < ps[t]->n; j++)
            if (regrow || ps[t]->mask[j] != 0.0f) {
                float s = scores[t][j];
                buf[q++] = isnan(s) ? -INFINITY : -s; /* select the k-th smallest of -score */
            }
    float thr = INFINITY;
    size_t above = 0;
    if (k > 0) {
        thr = -pb_select_kth(buf, ncand, k - 1); /* the k-th highest score */
        above = 0;
        for (int t = 0; t < np; t++)
            for (size_t j = 0; j < ps[t]->n; j++)
                if (regrow || ps[t]->mask[j] != 0.0f) {
                    float s = isnan(scores[t][j]) ? -INFINITY : scores[t][j];
                    above += s > thr;
                }
    }
    size_t ties = k - above; /* scores equal to thr to keep, lowest index first */
    for (int t = 0; t < np; t++)
        for (size_t j = 0; j < ps[t]->n; j++) {
            int cand = regrow || ps[t]->mask[j] != 0.0f;
            float s = isnan(scores[t][j]) ? -INFINITY : scores[t][j];
            int keep = 0;
            if (cand && k > 0) {
                if (s > thr)
                    keep = 1;
                else if (s == thr && ties > 0) {
                    keep = 1;
                    ties--;
                }
            }
            ps[t]->mask[j] = keep ? 1.0f : 0.0f;
        }
    free(buf);
    return PB_OK;
}

static int h_mask_topk(pb_ctx *c, float *const *scores, double sparsity, int scope, int regrow)
{
    if (!(sparsity >= 0.0 && sparsity <= 1.0))
        return pb_err(c->err, c->errlen, PB_EPLUGIN, "method %s: sparsity %g not in [0, 1]",
                      c->plugin ? c->plugin->desc.name : "?", sparsity);
    int np = pb_model_nprunable(c->m);
    pb_param *ps[PB_MAX_PARAMS];
    size_t total = 0;
    for (int t = 0; t < np; t++) {
        ps[t] = pb_model_prunable(c->m, t);
        total += ps[t]->n;
    }
    int rc = PB_OK;
    if (scope == 0) {
        size_t k = (size_t)llround((1.0 - sparsity) * (double)total);
        rc = keep_topk(c, ps, scores, np, k, regrow);
    } else {
        for (int t = 0; t < np && rc == PB_OK; t++) {
            size_t k = (size_t)llround((1.0 - sparsity) * (double)ps[t]->n);
            rc = keep_topk(c, &ps[t], &scores[t], 1, k, regrow);
        }
    }
    pb_model_apply_masks(c->m);
    return rc;
}

/* ---------- gradients ---------- */

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

static int h_grad(pb_ctx *c, int n, double temperature, double *loss)
{
    if (draw_examples(c, n) < 0)
        return pb_err(c->err, c->errlen, PB_ENOMEM, "out of memory");
    c->grad_temp = temperature > 0 ? temperature : 1.0;
    return pb_model_grad_on(c->m, c->train, c->grad_idx, c->grad_n, (float)c->grad_temp, loss, c->err,
                            c->errlen);
}

static int h_hvp(pb_ctx *c, const float *const *v, float *const *out)
{
    if (!c->grad_n)
        return pb_err(c->err, c->errlen, PB_EPLUGIN, "method %s: hvp() before grad()",
                      c->plugin ? c->plugin->desc.name : "?");
    int np = pb_model_nprunable(c->m);
    double vn = 0, wn = 0;
    for (int t = 0; t < np; t++) {
        pb_param *p = pb_model_prunable(c->m, t);
        for (size_t j = 0; j < p->n; j++) {
            vn += (double)v[t][j] * v[t][j];
            wn += (double)p->w[j] * p->w[j];
        }
    }
    vn = sqrt(vn);
    if (vn == 0) {
        for (int t = 0; t < np; t++)
            memset(out[t], 0, pb_model_prunable(c->m, t)->n * sizeof(float));
        return PB_OK;
    }
    /* Central differences of gradients: H v ~ (g(w + r v) - g(w - r v)) / 2r, with the step
     * a small fraction of the weights' norm so float32 rounding stays well below it. */
    double r = 1e-2 * (sqrt(wn) > 0 ? sqrt(wn) : 1.0) / vn;
    float *saved_g[PB_MAX_PARAMS];
    int rc = PB_OK;
    for (int t = 0; t < np; t++) {
        pb_param *p = pb_model_prunable(c->m, t);
        saved_g[t] = malloc(p->n * sizeof(float));
        if (!saved_g[t])
            return pb_err(c->err, c->errlen, PB_ENOMEM, "out of memory");
        memcpy(saved_g[t], p->g, p->n * sizeof(float));
    }
    for (int sign = 1; sign >= -1 && rc == PB_OK; sign -= 2) {
        for (int t = 0; t < np; t++) {
            pb_param *p = pb_model_prunable(c->m, t);
            for (size_t j = 0; j < p->n; j++)
                p->w[j] += (float)(sign * r) * v[t][j];
        }
        rc = pb_model_grad_on(c->m, c->train, c->grad_idx, c->grad_n, (float)c->grad_temp, NULL, c->err,
                              c->errlen);
        for (int t = 0; t < np; t++) {
            pb_param *p = pb_model_prunable(c->m, t);
            for (size_t j = 0; j < p->n; j++) {
                p->w[j] -= (float)(sign * r) * v[t][j];
                if (sign > 0)
                    out[t][j] = p->g[j];
                else
                    out[t][j] = (float)((out[t][j] - p->g[j]) / (2.0 * r));
            }
        }
    }
    for (int t = 0; t < np; t++) {
        pb_param *p = pb_model_prunable(c->m, t);
        memcpy(p->g, saved_g[t], p->n * sizeof(float));
        free(saved_g[t]);
    }
    return rc;
}

static int h_grad_output_sum(pb_ctx *c, double *R)
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
    pb_ctx *c;
    pb_calib_fn fn;
    void *ud;
    int layer_to_param[PB_MAX_LAYERS];
    float *cols;
    size_t cols_n;
    int failed;
} calib_state;

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
    /* conv: unfold to rows (example, output position) x cols (ic, kh, kw) */
    int K = l->k, cols = l->ic * K * K, P = l->oh * l->ow;
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
    for (int b = 0; b < B; b++) {
        const float *xb = x + (size_t)b * pb_layer_isize(l);
        for (int oy = 0; oy < l->oh; oy++)
            for (int ox = 0; ox < l->ow; ox++) {
                float *row = s->cols + ((size_t)b * P + (size_t)oy * l->ow + ox) * cols;
                for (int ci = 0; ci < l->ic; ci++)
                    for (int ky = 0; ky < K; ky++)
                        for (int kx = 0; kx < K; kx++) {
                            int iy = oy * l->stride - l->pad + ky, ix = ox * l->stride - l->pad + kx;
                            row[(ci * K + ky) * K + kx] =
                                (iy >= 0 && iy < l->ih && ix >= 0 && ix < l->iw)
                                    ? xb[((size_t)ci * l->ih + iy) * l->iw + ix]
                                    : 0.0f;
                        }
            }
    }
    s->fn(s->ud, pi, s->cols, B * P, cols);
}

static int h_calibrate(pb_ctx *c, int n, pb_calib_fn fn, void *ud)
{
    calib_state s = {.c = c, .fn = fn, .ud = ud};
    for (int i = 0; i < PB_MAX_LAYERS; i++)
        s.layer_to_param[i] = -1;
    int np = pb_model_nprunable(c->m);
    for (int t = 0; t < np; t++)
        s.layer_to_param[pb_model_prunable(c->m, t)->layer] = t;
    if (draw_examples(c, n) < 0)
        return pb_err(c->err, c->errlen, PB_ENOMEM, "out of memory");
    pb_model *m = c->m;
    int batch = m->max_batch;
    pb_batch b;
    if (pb_batch_init(&b, c->train, batch, c->err, c->errlen) != PB_OK)
        return PB_ENOMEM;
    pb_input_hook old = m->input_hook;
    void *old_ud = m->input_hook_ud;
    pb_model_set_input_hook(m, calib_hook, &s);
    for (int i = 0; i < c->grad_n && !s.failed; i += batch) {
        int B = c->grad_n - i < batch ? c->grad_n - i : batch;
        pb_data_batch(c->train, c->grad_idx + i, B, NULL, b.x, b.y);
        pb_model_forward(m, b.x, B, 0);
    }
    pb_model_set_input_hook(m, old, old_ud);
    pb_batch_free(&b);
    free(s.cols);
    return s.failed ? pb_err(c->err, c->errlen, PB_ENOMEM, "out of memory during calibration") : PB_OK;
}

/* ---------- training ---------- */

typedef struct train_glue {
    pb_ctx *c;
    long step0;
} train_glue;

static int g_select(void *ud, pb_model *m, int epoch, int n_total, int *idx, int *n, char *err, size_t errlen)
{
    (void)m, (void)err, (void)errlen;
    pb_ctx *c = ((train_glue *)ud)->c;
    return plugin_status(c, c->plugin->desc.select(c->state, &pb_host_table, c, epoch, n_total, idx, n), "select");
}

static int g_before(void *ud, pb_model *m, long step, char *err, size_t errlen)
{
    (void)m, (void)err, (void)errlen;
    train_glue *g = ud;
    pb_ctx *c = g->c;
    c->steps = g->step0 + step;
    return plugin_status(c, c->plugin->desc.before_step(c->state, &pb_host_table, c, c->steps), "before_step");
}

static int g_after(void *ud, pb_model *m, long step, char *err, size_t errlen)
{
    (void)m, (void)err, (void)errlen;
    train_glue *g = ud;
    pb_ctx *c = g->c;
    c->steps = g->step0 + step;
    if (!c->plugin || !c->plugin->desc.after_step)
        return PB_OK;
    return plugin_status(c, c->plugin->desc.after_step(c->state, &pb_host_table, c, c->steps), "after_step");
}

static double sparsity_now(const pb_model *m)
{
    size_t t, nz;
    pb_model_sparsity(m, &t, &nz);
    return t ? 1.0 - (double)nz / (double)t : 0;
}

static void emit(pb_ctx *c, const char *phase, int index, long step, double acc, double loss, double flops)
{
    if (!c->on_curve)
        return;
    pb_curve_rec r = {.phase = phase, .index = index, .step = step, .wall_s = pb_now() - c->t0,
                      .train_flops = flops, .sparsity = sparsity_now(c->m), .test_acc = acc,
                      .test_loss = loss};
    c->on_curve(c->curve_ud, &r);
}

static int g_epoch(void *ud, pb_model *m, const pb_epoch_rec *rec, char *err, size_t errlen)
{
    (void)m, (void)err, (void)errlen;
    train_glue *g = ud;
    pb_ctx *c = g->c;
    emit(c, c->phase, rec->epoch, g->step0 + rec->step, rec->test_acc, rec->test_loss,
         c->train_flops + rec->train_flops);
    if (c->plugin && c->plugin->desc.epoch_end)
        return plugin_status(c, c->plugin->desc.epoch_end(c->state, &pb_host_table, c, rec->epoch, rec->test_acc), "epoch_end");
    return PB_OK;
}

int pb_ctx_train(pb_ctx *c, int epochs, const char *phase, pb_train_result *res)
{
    pb_train_cfg cfg = c->cfg;
    if (epochs >= 0)
        cfg.epochs = epochs;
    pb_train_result local;
    if (!res)
        res = &local;
    memset(res, 0, sizeof *res);
    res->test_acc = -1;
    if (cfg.epochs == 0)
        return PB_OK;
    train_glue g = {.c = c, .step0 = c->steps};
    const pb_plugin *d = c->plugin ? &c->plugin->desc : NULL;
    pb_train_hooks hooks = {.ud = &g, .epoch_end = g_epoch, .after_step = g_after};
    if (d && d->select)
        hooks.select = g_select;
    if (d && d->before_step)
        hooks.before_step = g_before;
    const char *saved = c->phase;
    c->phase = phase ? phase : "train";
    c->total_steps = (long)((c->train->n + cfg.batch - 1) / cfg.batch) * cfg.epochs;
    int rc = pb_train(c->m, c->train, c->test, &cfg, &hooks, res, c->err, c->errlen);
    c->phase = saved;
    c->steps = g.step0 + res->steps;
    c->train_flops += res->train_flops;
    c->total_steps = 0;
    return rc;
}

static int h_train(pb_ctx *c, int epochs) { return pb_ctx_train(c, epochs, c->phase, NULL); }

static int h_evaluate(pb_ctx *c, double *acc, double *loss)
{
    double a, l;
    int rc = pb_evaluate(c->m, c->test, c->cfg.batch, &a, &l, c->err, c->errlen);
    if (acc)
        *acc = a;
    if (loss)
        *loss = l;
    return rc;
}

static void free_copy(float **v, int n)
{
    if (!v)
        return;
    for (int i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static float **copy_params(const pb_model *m)
{
    float **v = calloc((size_t)m->nparams, sizeof *v);
    if (!v)
        return NULL;
    for (int i = 0; i < m->nparams; i++) {
        if (!(v[i] = malloc(m->params[i]->n * sizeof(float)))) {
            free_copy(v, m->nparams);
            return NULL;
        }
        memcpy(v[i], m->params[i]->w, m->params[i]->n * sizeof(float));
    }
    return v;
}

static int h_snapshot(pb_ctx *c, int slot)
{
    if (slot < 0 || slot >= PB_SNAPSHOTS)
        return h_fail(c, "snapshot slot %d not in [0, %d]", slot, PB_SNAPSHOTS - 1);
    free_copy(c->snap[slot], c->m->nparams);
    if (!(c->snap[slot] = copy_params(c->m)))
        return pb_err(c->err, c->errlen, PB_ENOMEM, "out of memory");
    return PB_OK;
}

static int h_rewind(pb_ctx *c, int slot)
{
    if (slot < 0 || slot >= PB_SNAPSHOTS || !c->snap[slot])
        return h_fail(c, "rewind to slot %d, which holds no snapshot", slot);
    for (int i = 0; i < c->m->nparams; i++)
        memcpy(c->m->params[i]->w, c->snap[slot][i], c->m->params[i]->n * sizeof(float));
    pb_model_apply_masks(c->m);
    return PB_OK;
}

static int h_reinit(pb_ctx *c, uint64_t seed)
{
    pb_model_init_weights(c->m, seed);
    return PB_OK;
}

static int h_record(pb_ctx *c, const char *event, int index, double acc, double loss)
{
    emit(c, event ? event : "round", index, c->steps, acc, loss, c->train_flops);
    return PB_OK;
}

static long h_steps(pb_ctx *c) { return c->steps; }
static long h_total_steps(pb_ctx *c) { return c->total_steps; }

/* ---------- structure ---------- */

/* Copies rows/channels: dst[o][i] = src[keep_o[o]][keep_i[i]] over blocks of `inner` floats. */
static void gather(float *dst, const float *src, int nin_src, const int *ko, int no, const int *ki, int ni,
                   int inner)
{
    for (int o = 0; o < no; o++)
        for (int i = 0; i < ni; i++)
            memcpy(dst + ((size_t)o * ni + i) * inner, src + ((size_t)ko[o] * nin_src + ki[i]) * inner,
                   (size_t)inner * sizeof(float));
}

static int h_remove_units(pb_ctx *c, int i, const int *keep, int nkeep)
{
    pb_model *m = c->m;
    pb_param *p = pb_model_prunable(m, i);
    if (!p)
        return h_fail(c, "remove_units: no weight tensor %d", i);
    int L = p->layer, oc = m->layers[L].oc;
    if (nkeep < 1 || nkeep > oc)
        return h_fail(c, "remove_units(%s): keeping %d of %d units", p->name, nkeep, oc);
    for (int k = 0; k < nkeep; k++)
        if (keep[k] < 0 || keep[k] >= oc || (k && keep[k] <= keep[k - 1]))
            return h_fail(c, "remove_units(%s): keep list must be ascending unit indices in [0, %d)", p->name, oc);
    /* Follow the output through shape-preserving layers to the one consumer that has weights. */
    int cur = L, next = -1, flat_hw = 1;
    for (;;) {
        int users = 0, user = -1;
        for (int j = cur + 1; j < m->nlayers; j++)
            if (m->layers[j].in == cur || m->layers[j].in2 == cur) {
                users++;
                user = j;
            }
        if (users == 0)
            return h_fail(c, "remove_units(%s): it is the output layer; the classes cannot be removed", p->name);
        if (users > 1 || m->layers[user].kind == PB_ADD)
            return h_fail(c, "remove_units(%s): its output feeds a residual connection; not supported", p->name);
        pb_layer_kind k = m->layers[user].kind;
        if (k == PB_DENSE || k == PB_CONV) {
            next = user;
            /* a dense consumer reached through FLATTEN sees channel-major blocks of h*w */
            if (k == PB_DENSE)
                flat_hw = (int)(pb_layer_isize(&m->layers[user]) / (size_t)oc);
            break;
        }
        cur = user;
    }
    pb_model nm;
    char e2[PB_ERRLEN];
    pb_model_init(&nm, m->arch, m->ic, m->ih, m->iw, m->ncls);
    for (int j = 0; j < m->nlayers; j++) {
        pb_layer proto = m->layers[j];
        if (j == L)
            proto.oc = nkeep;
        if (pb_model_append(&nm, &proto, e2, sizeof e2) < 0) {
            pb_model_free(&nm);
            return h_fail(c, "remove_units(%s): %s", p->name, e2);
        }
    }
    int *all = malloc(sizeof(int) * 65536);
    if (!all) {
        pb_model_free(&nm);
        return pb_err(c->err, c->errlen, PB_ENOMEM, "out of memory");
    }
    for (int k = 0; k < 65536; k++)
        all[k] = k;
    for (int q = 0; q < m->nparams; q++) {
        pb_param *s = m->params[q], *d = nm.params[q];
        int li = s->layer;
        const pb_layer *sl = li >= 0 ? &m->layers[li] : NULL;
        int touched_out = li == L, touched_in = li == next && s == sl->w;
        int between = li > L && li < next && sl && sl->kind == PB_BN;
        if (touched_out) {
            int inner = (int)(s->n / (size_t)s->shape[0]);
            gather(d->w, s->w, 1, keep, nkeep, all, 1, inner);
            if (s->mask)
                d->mask = pb_alloc(d->n * sizeof(float)), gather(d->mask, s->mask, 1, keep, nkeep, all, 1, inner);
        } else if (between) {
            gather(d->w, s->w, 1, keep, nkeep, all, 1, 1);
        } else if (touched_in) {
            int rows = s->shape[0], inner = sl->kind == PB_CONV ? sl->k * sl->k : flat_hw;
            int nin = (int)(s->n / (size_t)rows / (size_t)inner);
            gather(d->w, s->w, nin, all, rows, keep, nkeep, inner);
            if (s->mask)
                d->mask = pb_alloc(d->n * sizeof(float)), gather(d->mask, s->mask, nin, all, rows, keep, nkeep, inner);
        } else {
            memcpy(d->w, s->w, s->n * sizeof(float));
            if (s->mask) {
                d->mask = pb_alloc(d->n * sizeof(float));
                memcpy(d->mask, s->mask, s->n * sizeof(float));
            }
        }
        d->trainable = s->trainable;
    }
    for (int j = 0; j < m->nlayers; j++)
        if (m->layers[j].kind == PB_BN) {
            int between = j > L && j < next;
            if (between) {
                gather(nm.layers[j].run_mean, m->layers[j].run_mean, 1, keep, nkeep, all, 1, 1);
                gather(nm.layers[j].run_var, m->layers[j].run_var, 1, keep, nkeep, all, 1, 1);
            } else {
                memcpy(nm.layers[j].run_mean, m->layers[j].run_mean, (size_t)m->layers[j].oc * sizeof(float));
                memcpy(nm.layers[j].run_var, m->layers[j].run_var, (size_t)m->layers[j].oc * sizeof(float));
            }
        }
    free(all);
    nm.rng = m->rng;
    int rc = pb_model_finalize(&nm, m->max_batch, c->err, c->errlen);
    if (rc != PB_OK) {
        pb_model_free(&nm);
        return rc;
    }
    /* Snapshots and the init copy describe the old shapes: drop them. */
    for (int s = 0; s < PB_SNAPSHOTS; s++) {
        free_copy(c->snap[s], m->nparams);
        c->snap[s] = NULL;
    }
    free_copy(c->init, m->nparams);
    c->init = NULL;
    free_scratch(c);
    pb_model_free(m);
    *m = nm;
    return PB_OK;
}

/* ---------- data ---------- */

static int h_ntrain(pb_ctx *c) { return c->train->n; }

static int h_example_scores(pb_ctx *c, const int *idx, int n, float *loss, float *el2n)
{
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

/* ---------- parameter sharing ---------- */

static int h_add_array(pb_ctx *c, const char *name, size_t n, float **w, float **g)
{
    pb_param *p = pb_model_extra_param(c->m, name, n, c->err, c->errlen);
    if (!p)
        return PB_ENOMEM;
    *w = p->w;
    *g = p->g;
    return PB_OK;
}

static void gen_generate(void *ud, pb_param *target)
{
    pb_gen_slot *s = ud;
    s->gen.generate(s->gen.ud, s->index, target->w, target->n);
    if (target->mask)
        for (size_t j = 0; j < target->n; j++)
            target->w[j] *= target->mask[j];
}

static void gen_backprop(void *ud, const pb_param *target)
{
    pb_gen_slot *s = ud;
    s->gen.backprop(s->gen.ud, s->index, target->g, target->n);
}

static int h_set_generator(pb_ctx *c, int i, const pb_generator *gen)
{
    pb_param *p = pb_model_prunable(c->m, i);
    if (!p || !gen || !gen->generate || !gen->backprop)
        return h_fail(c, "set_generator: tensor %d or its callbacks missing", i);
    c->gens[i] = (pb_gen_slot){.ctx = c, .index = i, .gen = *gen};
    pb_model_set_generator(c->m, p, (pb_param_gen){.ud = &c->gens[i], .generate = gen_generate,
                                                    .backprop = gen_backprop});
    return PB_OK;
}

static float *const *h_scores(pb_ctx *c)
{
    if (c->nscratch == 0) {
        int np = pb_model_nprunable(c->m);
        for (int i = 0; i < np; i++) {
            c->scratch[i] = malloc((pb_model_prunable(c->m, i)->n + 1) * sizeof(float));
            c->nscratch = i + 1;
            if (!c->scratch[i]) {
                free_scratch(c);
                pb_err(c->err, c->errlen, PB_ENOMEM, "out of memory for scores");
                return NULL;
            }
        }
    }
    return c->scratch;
}

static int h_mask_magnitude(pb_ctx *c, double sparsity, int scope, int regrow)
{
    float *const *scores = h_scores(c);
    if (!scores)
        return PB_ENOMEM;
    for (int i = 0; i < c->nscratch; i++) {
        const pb_param *p = pb_model_prunable(c->m, i);
        for (size_t j = 0; j < p->n; j++)
            scores[i][j] = fabsf(p->w[j]);
    }
    return h_mask_topk(c, scores, sparsity, scope, regrow);
}

const pb_host pb_host_table = {
    .size = sizeof(pb_host),
    .abi_major = PB_ABI_MAJOR,
    .abi_minor = PB_ABI_MINOR,
    .fail = h_fail,
    .log = h_log,
    .nweights = h_nweights,
    .weights = h_weights,
    .apply_masks = h_apply_masks,
    .mask_topk = h_mask_topk,
    .random = h_random,
    .grad = h_grad,
    .hvp = h_hvp,
    .grad_output_sum = h_grad_output_sum,
    .calibrate = h_calibrate,
    .train = h_train,
    .evaluate = h_evaluate,
    .snapshot = h_snapshot,
    .rewind = h_rewind,
    .reinit = h_reinit,
    .record = h_record,
    .steps = h_steps,
    .remove_units = h_remove_units,
    .ntrain = h_ntrain,
    .example_scores = h_example_scores,
    .add_array = h_add_array,
    .set_generator = h_set_generator,
    .total_steps = h_total_steps,
    .scores = h_scores,
    .mask_magnitude = h_mask_magnitude,
};

/* ---------- context ---------- */

int pb_ctx_init(pb_ctx *c, pb_model *m, const pb_dataset *train, const pb_dataset *test,
                const pb_train_cfg *cfg, uint64_t seed, char *err, size_t errlen)
{
    memset(c, 0, sizeof *c);
    c->m = m;
    c->train = train;
    c->test = test;
    c->cfg = *cfg;
    c->seed = seed;
    c->err = err;
    c->errlen = errlen;
    c->phase = "train";
    c->t0 = pb_now();
    pb_rng_seed(&c->rng, seed ^ 0x91a6c0deULL);
    int rc = pb_model_ensure_masks(m, err, errlen);
    if (rc != PB_OK)
        return rc;
    if (!(c->init = copy_params(m)))
        return pb_err(err, errlen, PB_ENOMEM, "out of memory");
    return PB_OK;
}

void pb_ctx_free(pb_ctx *c)
{
    if (c->plugin && c->plugin->desc.destroy && c->state)
        c->plugin->desc.destroy(c->state);
    c->state = NULL;
    for (int s = 0; s < PB_SNAPSHOTS; s++)
        free_copy(c->snap[s], c->m ? c->m->nparams : 0);
    free_copy(c->init, c->m ? c->m->nparams : 0);
    free_scratch(c);
    free(c->grad_idx);
    memset(c, 0, sizeof *c);
}

int pb_ctx_bind(pb_ctx *c, const pb_loaded *p, const double *args)
{
    c->plugin = p;
    const pb_plugin *d = &p->desc;
    c->err[0] = 0;
    /* create() refuses parameter combinations (n > m ...): a usage error */
    if (d->create && plugin_status(c, d->create(&pb_host_table, c, args, &c->state), "create") != PB_OK)
        return PB_EUSAGE;
    if (d->attach && plugin_status(c, d->attach(c->state, &pb_host_table, c), "attach") != PB_OK)
        return PB_EPLUGIN;
    return PB_OK;
}

int pb_ctx_prune(pb_ctx *c, double sparsity)
{
    const pb_plugin *d = &c->plugin->desc;
    if (!d->prune)
        return pb_err(c->err, c->errlen, PB_EPLUGIN, "method %s has no prune hook", d->name);
    c->err[0] = 0;
    int rc = plugin_status(c, d->prune(c->state, &pb_host_table, c, sparsity), "prune");
    pb_model_apply_masks(c->m);
    return rc;
}

int pb_ctx_run(pb_ctx *c, double sparsity)
{
    const pb_plugin *d = &c->plugin->desc;
    c->err[0] = 0;
    return plugin_status(c, d->run(c->state, &pb_host_table, c, sparsity), "run");
}
