/* pb_host: the plugin host table and the context (see pb_host.h). */
#include "pb_host.h"

#include <cblas.h>

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/pb_kern.h"
#include "engine/pb_par.h"
#include "pb_datasel.h"
#include "pb_mask.h"
#include "pb_probe.h"
#include "pb_surgery.h"

#define h_fail pb_ctx_fail

/* ---------- messages ---------- */

int pb_ctx_fail(pb_ctx *c, const char *fmt, ...)
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
    /* a hook may have written a shared array: generate again before the next forward */
    pb_model_arrays_changed(c->m);
    if (rc == PB_OK)
        return PB_OK;
    if (!c->err[0])
        pb_err(c->err, c->errlen, PB_EPLUGIN, "method %s: %s failed (status %d)", c->plugin->desc.name, hook, rc);
    return rc == PB_ENUM || rc == PB_ENOMEM ? rc : PB_EPLUGIN;
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
    v.w_init = c->init && pi < c->ninit ? c->init[pi] : NULL;
    memcpy(out, &v, sz);
    return PB_OK;
}

static void h_apply_masks(pb_ctx *c) { pb_model_apply_masks(c->m); }

static uint64_t h_random(pb_ctx *c) { return pb_rng_next(&c->rng); }

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

static int g_data_select(void *ud, pb_model *m, int epoch, int n_total, int *idx, int *n, char *err,
                         size_t errlen)
{
    (void)m, (void)err, (void)errlen;
    return pb_datasel_select(((train_glue *)ud)->c, epoch, n_total, idx, n);
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

static void emit(pb_ctx *c, const char *phase, int index, long step, double acc, double loss, double flops,
                 double train_s)
{
    if (!c->on_curve)
        return;
    pb_curve_rec r = {.phase = phase, .index = index, .step = step, .wall_s = pb_now() - c->t0,
                      .train_flops = flops, .sparsity = sparsity_now(c->m), .test_acc = acc,
                      .test_loss = loss, .train_s = train_s, .eval_s = c->eval_s,
                      .probe_flops = c->probe_flops};
    c->on_curve(c->curve_ud, &r);
}

void pb_ctx_emit(pb_ctx *c, const char *phase, int index, double acc, double loss)
{
    emit(c, phase, index, c->steps, acc, loss, c->train_flops, 0);
}

static int g_epoch(void *ud, pb_model *m, const pb_epoch_rec *rec, char *err, size_t errlen)
{
    (void)m, (void)err, (void)errlen;
    train_glue *g = ud;
    pb_ctx *c = g->c;
    c->steps = g->step0 + rec->step;
    c->eval_s += rec->eval_s;
    emit(c, c->phase, rec->epoch, g->step0 + rec->step, rec->test_acc, rec->test_loss,
         c->train_flops + rec->train_flops, rec->train_s);
    if (c->plugin && c->plugin->desc.epoch_end)
        return plugin_status(c, c->plugin->desc.epoch_end(c->state, &pb_host_table, c, rec->epoch, rec->test_acc), "epoch_end");
    return PB_OK;
}

int pb_ctx_train(pb_ctx *c, int epochs, const char *phase, pb_train_result *res)
{
    pb_train_cfg cfg = c->cfg;
    if (epochs >= 0)
        cfg.epochs = epochs;
    if (!cfg.val)
        cfg.val = c->val;
    pb_train_result local;
    if (!res)
        res = &local;
    memset(res, 0, sizeof *res);
    res->test_acc = -1;
    if (cfg.epochs == 0)
        return PB_OK;
    const int select_data = c->data && c->data->on;
    int rc0 = select_data ? pb_datasel_begin(c, &cfg) : PB_OK;
    if (rc0 != PB_OK)
        return rc0;
    train_glue g = {.c = c, .step0 = c->steps};
    const pb_plugin *d = c->plugin ? &c->plugin->desc : NULL;
    /* after_step only when the plugin has one: the loop counts effective FLOPs
     * again after every step hook, which costs a pass over the weights */
    pb_train_hooks hooks = {.ud = &g, .epoch_end = g_epoch};
    if (d && d->after_step)
        hooks.after_step = g_after;
    if (d && d->select)
        hooks.select = g_select;
    if (d && d->before_step)
        hooks.before_step = g_before;
    if (select_data && !hooks.select)
        hooks.select = g_data_select;
    const char *saved = c->phase;
    c->phase = phase ? phase : "train";
    /* pb_train publishes its count of steps (exact once select() has chosen
     * the first epoch's examples, and bounded by max_steps) */
    c->total_steps = 0;
    hooks.total_steps = &c->total_steps;
    int rc = pb_train(c->m, c->train, c->test, &cfg, &hooks, res, c->err, c->errlen);
    if (rc == PB_OK && cfg.early_stop && c->on_metric) {
        /* the step counts across the run's training, as curve rows do */
        char name[64];
        snprintf(name, sizeof name, "%s.early_stop_step", c->phase);
        c->on_metric(c->curve_ud, name, (double)(g.step0 + res->best_step));
        snprintf(name, sizeof name, "%s.early_stop_val_loss", c->phase);
        c->on_metric(c->curve_ud, name, res->best_val_loss);
    }
    c->phase = saved;
    c->steps = g.step0 + res->steps;
    c->train_flops += res->train_flops;
    c->total_steps = 0;
    return rc;
}

static int h_train(pb_ctx *c, int epochs) { return pb_ctx_train(c, epochs, c->phase, NULL); }

static int h_train_phase(pb_ctx *c, const char *label, int epochs)
{
    if (!label || !label[0] || strlen(label) > 31 || strpbrk(label, ",\"\n\r "))
        return h_fail(c, "train_phase: label '%s' is not a word of at most 31 characters", label ? label : "");
    return pb_ctx_train(c, epochs, label, NULL);
}

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

/* A copy of the values of m's parameters (n of them). */
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
    free_copy(c->snap[slot], c->nsnap[slot]);
    c->nsnap[slot] = 0;
    if (!(c->snap[slot] = copy_params(c->m)))
        return pb_err(c->err, c->errlen, PB_ENOMEM, "out of memory");
    c->nsnap[slot] = c->m->nparams;
    return PB_OK;
}

static int h_rewind(pb_ctx *c, int slot)
{
    if (slot < 0 || slot >= PB_SNAPSHOTS || !c->snap[slot])
        return h_fail(c, "rewind to slot %d, which holds no snapshot", slot);
    /* parameters added after the snapshot (add_array) keep their values */
    for (int i = 0; i < c->m->nparams && i < c->nsnap[slot]; i++)
        memcpy(c->m->params[i]->w, c->snap[slot][i], c->m->params[i]->n * sizeof(float));
    pb_model_apply_masks(c->m);
    pb_model_arrays_changed(c->m);
    return PB_OK;
}

static int h_reinit(pb_ctx *c, uint64_t seed)
{
    pb_model_init_weights(c->m, seed);
    return PB_OK;
}

static int h_record(pb_ctx *c, const char *event, int index, double acc, double loss)
{
    emit(c, event ? event : "round", index, c->steps, acc, loss, c->train_flops, 0);
    return PB_OK;
}

static long h_steps(pb_ctx *c) { return c->steps; }
static long h_total_steps(pb_ctx *c) { return c->total_steps; }

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
        pb_kern_mask_generated(target->w, target->mask, target->n);
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

/* ---------- since 1.1: arguments, kept models, results, utilities ---------- */

static const char *h_arg_string(pb_ctx *c, int k)
{
    if (!c->plugin)
        return NULL;
    const pb_plugin *d = &c->plugin->desc;
    int np = pb_plugin_nparams(d);
    if (k < 0 || k >= np || d->params[k].type != PB_PT_STRING)
        return NULL;
    return pb_plugin_arg_string(d, c->argv, c->argc, k);
}

static int h_ntrain(pb_ctx *c) { return c->train->n; }

static int h_reference(pb_ctx *c, const char *name, int i, pb_weights *out)
{
    const pb_kept *k = pb_ctx_kept(c, name);
    if (!k) {
        char list[256] = "";
        size_t used = 0;
        for (int j = 0; j < c->nkept && used < sizeof list; j++)
            used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", j ? ", " : "", c->kept[j].name);
        return h_fail(c, "no kept model named '%s' (kept: %s; add a keep stage)", name ? name : "",
                      c->nkept ? list : "none");
    }
    pb_param *cur = pb_model_prunable(c->m, i), *p = pb_model_prunable((pb_model *)&k->m, i);
    if (!cur || !p)
        return h_fail(c, "reference(%s): no weight tensor %d", name, i);
    if (p->n != cur->n || memcmp(p->shape, cur->shape, sizeof p->shape) != 0)
        return h_fail(c, "reference(%s): %s has another shape in the kept model", name, cur->name);
    size_t sz = out->size && out->size < sizeof *out ? out->size : sizeof *out;
    pb_weights v;
    memset(&v, 0, sizeof v);
    v.size = sz;
    v.name = p->name;
    v.layer_kind = k->m.layers[p->layer].kind == PB_CONV ? 1 : 0;
    v.ndim = p->ndim;
    memcpy(v.shape, p->shape, sizeof v.shape);
    v.n = p->n;
    v.rows = p->shape[0];
    v.cols = (int)(p->n / (size_t)p->shape[0]);
    v.w = p->w;
    v.mask = p->mask;
    memcpy(out, &v, sz);
    return PB_OK;
}

static int metric_name_ok(const char *s)
{
    if (!s || !*s || strlen(s) > 63)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_' ||
              *s == '.'))
            return 0;
    return 1;
}

static int h_metric(pb_ctx *c, const char *name, double value)
{
    if (!metric_name_ok(name))
        return h_fail(c, "metric name '%s' is not [A-Za-z0-9_.]+ of at most 63 characters", name ? name : "");
    if (c->on_metric)
        c->on_metric(c->curve_ud, name, value);
    return PB_OK;
}

static uint64_t h_hash64(const void *data, size_t n, uint64_t seed)
{
    return pb_hash64(data, n, seed ? seed : PB_HASH_INIT);
}

static void h_gemm(pb_ctx *c, int transa, int transb, int m, int n, int k, float alpha, const float *a, int lda,
                   const float *b, int ldb, float beta, float *cm, int ldc)
{
    (void)c;
    /* the engine's SGEMM, split over its pool in a fixed way (deterministic) */
    pb_kern_gemm(transa ? CblasTrans : CblasNoTrans, transb ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b,
                 ldb, beta, cm, ldc);
}

typedef struct range_job {
    long n;
    pb_range_fn fn;
    void *ud;
} range_job;

static void range_part(void *ctx, int part, int nparts)
{
    const range_job *r = ctx;
    long b = (long)((__int128)r->n * part / nparts), e = (long)((__int128)r->n * (part + 1) / nparts);
    if (e > b)
        r->fn(r->ud, b, e);
}

static void h_parallel_for(pb_ctx *c, long n, pb_range_fn fn, void *ud)
{
    (void)c;
    if (n <= 0 || !fn)
        return;
    int parts = pb_par_threads();
    if (parts > n)
        parts = (int)n;
    range_job r = {n, fn, ud};
    pb_par_run(range_part, &r, parts);
}

/* ---------- since 1.2: a method's own cost of a tensor ---------- */

static int h_set_layer_cost(pb_ctx *c, int i, double macs, double stored)
{
    pb_param *p = pb_model_prunable(c->m, i);
    if (!p)
        return h_fail(c, "set_layer_cost: no weight tensor %d (the model has %d)", i, pb_model_nprunable(c->m));
    if (!isfinite(macs) || macs < 0 || !isfinite(stored) || stored < 0)
        return h_fail(c, "set_layer_cost(%s): macs %g and stored %g must be finite and >= 0", p->name, macs, stored);
    pb_model_set_cost(c->m, p, macs, stored);
    return PB_OK;
}

const pb_host pb_host_table = {
    .size = sizeof(pb_host),
    .abi_major = PB_ABI_MAJOR,
    .abi_minor = PB_ABI_MINOR,
    .fail = pb_ctx_fail,
    .log = h_log,
    .nweights = h_nweights,
    .weights = h_weights,
    .apply_masks = h_apply_masks,
    .mask_topk = pb_mask_topk,
    .random = h_random,
    .grad = pb_probe_grad,
    .hvp = pb_probe_hvp,
    .grad_output_sum = pb_probe_grad_output_sum,
    .calibrate = pb_probe_calibrate,
    .train = h_train,
    .evaluate = h_evaluate,
    .snapshot = h_snapshot,
    .rewind = h_rewind,
    .reinit = h_reinit,
    .record = h_record,
    .steps = h_steps,
    .remove_units = pb_surgery_remove_units,
    .ntrain = h_ntrain,
    .example_scores = pb_probe_example_scores,
    .add_array = h_add_array,
    .set_generator = h_set_generator,
    .total_steps = h_total_steps,
    .scores = pb_mask_scores,
    .mask_magnitude = pb_mask_magnitude,
    /* since 1.1 */
    .arg_string = h_arg_string,
    .calibrate_on = pb_probe_calibrate_on,
    .calibration_sample = pb_probe_calibration_sample,
    .grad_examples = pb_probe_grad_examples,
    .example_stats = pb_probe_example_stats,
    .reference = h_reference,
    .train_phase = h_train_phase,
    .metric = h_metric,
    .hash64 = h_hash64,
    .select_kth = pb_select_kth,
    .gemm = h_gemm,
    .parallel_for = h_parallel_for,
    .set_layer_cost = h_set_layer_cost,
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
    c->ninit = m->nparams;
    return PB_OK;
}

void pb_ctx_forget_values(pb_ctx *c)
{
    for (int s = 0; s < PB_SNAPSHOTS; s++) {
        free_copy(c->snap[s], c->nsnap[s]);
        c->snap[s] = NULL;
        c->nsnap[s] = 0;
    }
    free_copy(c->init, c->ninit);
    c->init = NULL;
    c->ninit = 0;
    pb_mask_free_scratch(c);
}

void pb_ctx_free(pb_ctx *c)
{
    if (c->plugin && c->plugin->desc.destroy && c->state)
        c->plugin->desc.destroy(c->state);
    c->state = NULL;
    pb_ctx_forget_values(c);
    for (int k = 0; k < c->nkept; k++)
        pb_model_free(&c->kept[k].m);
    free(c->grad_idx);
    free(c->calib_idx);
    memset(c, 0, sizeof *c);
}

int pb_ctx_keep(pb_ctx *c, const char *name, const pb_model *src)
{
    if (!name || !name[0] || strlen(name) >= sizeof c->kept[0].name)
        return pb_err(c->err, c->errlen, PB_EUSAGE, "keep: a name of 1 to %d characters is needed",
                      (int)sizeof c->kept[0].name - 1);
    int k = 0;
    while (k < c->nkept && strcmp(c->kept[k].name, name))
        k++;
    if (k == PB_MAX_KEPT)
        return pb_err(c->err, c->errlen, PB_EUSAGE, "keep %s: at most %d kept models", name, PB_MAX_KEPT);
    pb_model copy;
    int rc = pb_model_clone(src ? src : c->m, &copy, 1, c->err, c->errlen);
    if (rc != PB_OK)
        return rc;
    if (k < c->nkept)
        pb_model_free(&c->kept[k].m);
    else
        c->nkept++;
    snprintf(c->kept[k].name, sizeof c->kept[k].name, "%s", name);
    c->kept[k].m = copy;
    return PB_OK;
}

const pb_kept *pb_ctx_kept(const pb_ctx *c, const char *name)
{
    for (int k = 0; name && k < c->nkept; k++)
        if (!strcmp(c->kept[k].name, name))
            return &c->kept[k];
    return NULL;
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

int pb_ctx_check_args(pb_ctx *c, const pb_loaded *p, const double *args)
{
    const pb_plugin *d = &p->desc;
    if (!d->create)
        return PB_OK;
    const pb_loaded *old = c->plugin;
    void *state = NULL;
    c->plugin = p;
    c->err[0] = 0;
    int rc = plugin_status(c, d->create(&pb_host_table, c, args, &state), "create");
    if (rc == PB_OK && d->destroy)
        d->destroy(state);
    c->plugin = old;
    return rc == PB_OK ? PB_OK : PB_EUSAGE;
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

