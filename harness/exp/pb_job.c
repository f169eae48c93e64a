#include "pb_job.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/pb_ckpt.h"
#include "engine/pb_par.h"
#include "host/pb_host.h"
#include "host/pb_plugin.h"

void pb_job_defaults(pb_job *j)
{
    memset(j, 0, sizeof *j);
    j->width = 1.0;
    j->dataset = "fashion-mnist";
    pb_train_defaults(&j->train);
    pb_train_defaults(&j->finetune);
    j->finetune.epochs = 0;
    j->finetune.opt.lr = 0.01;
}

static int file_exists(const char *p)
{
    struct stat st;
    return p && stat(p, &st) == 0;
}

/* Copies values (and BN statistics) of a same-shaped model into m. */
static int copy_values(pb_model *m, const pb_model *src, const char *what, char *err, size_t errlen)
{
    if (src->nparams != m->nparams || src->nlayers != m->nlayers)
        return pb_err(err, errlen, PB_EIO, "%s does not match the model's architecture", what);
    for (int i = 0; i < m->nparams; i++) {
        if (src->params[i]->n != m->params[i]->n)
            return pb_err(err, errlen, PB_EIO, "%s: %s has %zu values, the model %zu", what,
                          src->params[i]->name, src->params[i]->n, m->params[i]->n);
        memcpy(m->params[i]->w, src->params[i]->w, m->params[i]->n * sizeof(float));
    }
    for (int i = 0; i < m->nlayers; i++)
        if (m->layers[i].kind == PB_BN) {
            memcpy(m->layers[i].run_mean, src->layers[i].run_mean, (size_t)m->layers[i].oc * sizeof(float));
            memcpy(m->layers[i].run_var, src->layers[i].run_var, (size_t)m->layers[i].oc * sizeof(float));
        }
    return PB_OK;
}

/* The trained dense model: from the cache if present, else trained (and cached). */
static int dense_model(const pb_job *j, pb_ctx *ctx, pb_job_result *res)
{
    pb_model *m = ctx->m;
    if (file_exists(j->dense_cache)) {
        pb_model cached;
        int rc = pb_ckpt_load(&cached, j->dense_cache, j->train.batch, ctx->err, ctx->errlen);
        if (rc != PB_OK)
            return rc;
        rc = copy_values(m, &cached, j->dense_cache, ctx->err, ctx->errlen);
        pb_model_free(&cached);
        if (rc == PB_OK) {
            res->dense_from_cache = 1;
            fprintf(stderr, "dense model from cache %s\n", j->dense_cache);
        }
        return rc;
    }
    int rc = pb_ctx_train(ctx, -1, "train", NULL);
    if (rc == PB_OK && j->dense_cache)
        rc = pb_ckpt_save(m, j->dense_cache, ctx->err, ctx->errlen);
    return rc;
}

static void measure(pb_model *m, const pb_dataset *test, int batch, pb_job_result *res, char *err,
                    size_t errlen)
{
    pb_evaluate(m, test, batch, &res->test_acc, &res->test_loss, err, errlen);
    pb_model_count_params(m, &res->params, &res->nonzero);
    pb_model_sparsity(m, &res->prunable, &res->prunable_nonzero);
    res->sparsity = res->prunable ? 1.0 - (double)res->prunable_nonzero / (double)res->prunable : 0;
    pb_model_flops(m, &res->flops_dense, &res->flops_eff);
    res->nlayers = 0;
    for (int i = 0; i < m->nparams; i++) {
        pb_param *p = m->params[i];
        if (!p->prunable)
            continue;
        pb_layer_stat *s = &res->layers[res->nlayers++];
        snprintf(s->name, sizeof s->name, "%s", p->name);
        s->n = p->n;
        s->nonzero = 0;
        for (size_t k = 0; k < p->n; k++)
            s->nonzero += p->w[k] != 0.0f && (!p->mask || p->mask[k] != 0.0f);
    }
}

typedef struct curve_tap {
    const pb_job *j;
    pb_job_result *res;
} curve_tap;

/* Sees every curve row first: time-to-target is the first row at the target. */
static void on_curve(void *ud, const pb_curve_rec *r)
{
    curve_tap *t = ud;
    double target = t->j->train.target_acc;
    if (target > 0 && t->res->time_to_target_s < 0 && r->test_acc >= target)
        t->res->time_to_target_s = r->wall_s;
    if (t->j->on_curve)
        t->j->on_curve(t->j->ud, r);
}

int pb_job_run(const pb_job *j, pb_job_result *res, char *err, size_t errlen)
{
    memset(res, 0, sizeof *res);
    res->time_to_target_s = -1;
    res->test_acc = -1;
    const int has_method = j->method && strcmp(j->method, "dense") != 0;
    if (has_method && !(j->sparsity >= 0.0 && j->sparsity < 1.0))
        return pb_err(err, errlen, PB_EUSAGE, "sparsity %g is not in [0, 1)", j->sparsity);

    /* Everything that can be refused is checked before any training. */
    pb_loaded plugin;
    memset(&plugin, 0, sizeof plugin);
    double args[64];
    int rc = PB_OK;
    if (has_method) {
        if ((rc = pb_plugin_find(j->method, j->plugin_path, &plugin, err, errlen)) != PB_OK)
            return rc;
        if (pb_plugin_nparams(&plugin.desc) > 64)
            rc = pb_err(err, errlen, PB_EPLUGIN, "method %s declares too many parameters", j->method);
        else
            rc = pb_plugin_parse_args(&plugin.desc, j->args, j->nargs, args, err, errlen);
        if (rc != PB_OK) {
            pb_plugin_close(&plugin);
            return rc;
        }
    }
    pb_par_use_threads(j->threads);
    pb_dataset train, val, test;
    pb_model m;
    memset(&m, 0, sizeof m);
    pb_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    if ((rc = pb_data_open(j->dataset, j->data_dir, j->subset, j->val, j->train.seed, &train, &val, &test, err,
                           errlen)) != PB_OK) {
        pb_plugin_close(&plugin);
        return rc;
    }
    double t0 = pb_now();
    if (j->load)
        rc = pb_ckpt_load(&m, j->load, j->train.batch, err, errlen);
    else if (j->proto)
        rc = pb_model_clone(j->proto, &m, j->train.batch, err, errlen);
    else if (!j->model)
        rc = pb_err(err, errlen, PB_EUSAGE, "no model given");
    else if ((rc = pb_model_build(&m, j->model, j->width, j->hidden, j->nhidden, train.c, train.h, train.w,
                                  train.ncls, err, errlen)) == PB_OK)
        rc = pb_model_finalize(&m, j->train.batch, err, errlen);
    if (rc == PB_OK && !j->load)
        pb_model_init_weights(&m, j->train.seed);
    if (rc == PB_OK && (train.c != m.ic || train.h != m.ih || train.w != m.iw || train.ncls != m.ncls))
        rc = pb_err(err, errlen, PB_EUSAGE, "model %s expects %dx%dx%d inputs and %d classes; %s has %dx%dx%d and %d",
                    m.arch, m.ic, m.ih, m.iw, m.ncls, train.name, train.c, train.h, train.w, train.ncls);
    if (rc == PB_OK)
        rc = pb_ctx_init(&ctx, &m, &train, &test, &j->train, j->train.seed, err, errlen);
    if (rc != PB_OK)
        goto out;
    curve_tap tap = {j, res};
    ctx.on_curve = on_curve;
    ctx.curve_ud = &tap;
    ctx.t0 = t0;
    pb_model_flops(&m, &res->flops_dense_orig, NULL);

    if (!has_method) {
        rc = j->load ? PB_OK : dense_model(j, &ctx, res);
    } else {
        if ((rc = pb_ctx_bind(&ctx, &plugin, args)) != PB_OK)
            goto out;
        switch (plugin.desc.when) {
        case PB_WHEN_TRAINED: {
            if (!j->load && (rc = dense_model(j, &ctx, res)) != PB_OK)
                break;
            if ((rc = pb_ctx_prune(&ctx, j->sparsity)) != PB_OK)
                break;
            double acc, loss;
            pb_evaluate(&m, &test, j->train.batch, &acc, &loss, err, errlen);
            pb_curve_rec r = {.phase = "prune", .index = 0, .step = ctx.steps, .wall_s = pb_now() - t0,
                              .train_flops = ctx.train_flops, .sparsity = j->sparsity, .test_acc = acc,
                              .test_loss = loss};
            on_curve(&tap, &r);
            ctx.cfg = j->finetune;
            ctx.cfg.seed = j->train.seed;
            rc = pb_ctx_train(&ctx, -1, "finetune", NULL);
            break;
        }
        case PB_WHEN_INIT:
            if ((rc = pb_ctx_prune(&ctx, j->sparsity)) == PB_OK)
                rc = pb_ctx_train(&ctx, -1, "train", NULL);
            break;
        case PB_WHEN_TRAINING:
            if (!plugin.desc.prune || (rc = pb_ctx_prune(&ctx, j->sparsity)) == PB_OK)
                rc = pb_ctx_train(&ctx, -1, "train", NULL);
            break;
        case PB_WHEN_RUN:
            rc = pb_ctx_run(&ctx, j->sparsity);
            break;
        }
    }
    if (rc != PB_OK)
        goto out;
    measure(&m, &test, j->train.batch, res, err, errlen);
    res->wall_s = pb_now() - t0;
    res->train_flops = ctx.train_flops;
    if (j->save)
        rc = pb_ckpt_save(&m, j->save, err, errlen);
out:
    pb_ctx_free(&ctx);
    pb_model_free(&m);
    pb_plugin_close(&plugin);
    pb_data_free(&train);
    pb_data_free(&val);
    pb_data_free(&test);
    return rc;
}
