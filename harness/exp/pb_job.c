#include "pb_job.h"
#include "engine/pb_text.h"
#include "pb_sharing.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/pb_check.h"
#include "engine/pb_ckpt.h"
#include "engine/pb_file.h"
#include "engine/pb_infer.h"
#include "engine/pb_par.h"
#include "host/pb_datasel.h"
#include "host/pb_host.h"
#include "host/pb_plugin.h"
#include "host/pb_probe.h"

const char *const pb_stage_names[] = {[PB_STAGE_TRAIN] = "train",         [PB_STAGE_PRUNE] = "prune",
                                      [PB_STAGE_FINETUNE] = "finetune",   [PB_STAGE_CALIBRATE] = "calibrate",
                                      [PB_STAGE_KEEP] = "keep",           [PB_STAGE_LOAD] = "load",
                                      NULL};

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

int pb_job_default_stages(int when, int loaded, pb_stage *out)
{
    int n = 0;
    memset(out, 0, 3 * sizeof *out);
    switch (when) {
    case PB_WHEN_TRAINED:
        if (!loaded)
            out[n++].kind = PB_STAGE_TRAIN;
        out[n++].kind = PB_STAGE_PRUNE;
        out[n++].kind = PB_STAGE_FINETUNE;
        break;
    case PB_WHEN_INIT:
    case PB_WHEN_TRAINING:
        out[n++].kind = PB_STAGE_PRUNE;
        out[n++].kind = PB_STAGE_TRAIN;
        break;
    case PB_WHEN_RUN:
        out[n++].kind = PB_STAGE_PRUNE;
        break;
    default: /* no method: the dense model */
        if (!loaded)
            out[n++].kind = PB_STAGE_TRAIN;
        break;
    }
    return n;
}

int pb_job_prefix_len(const pb_stage *st, int n)
{
    int i = 0;
    while (i < n && st[i].kind != PB_STAGE_PRUNE)
        i++;
    return i;
}

static int is_default_train(const pb_stage *s)
{
    return s->kind == PB_STAGE_TRAIN && (!s->label || !strcmp(s->label, "train")) && !s->dataset &&
           !s->subset && !s->permute && !s->recipe && !s->classes && !s->nlabel_map;
}

void pb_job_stages_canon(const pb_stage *st, int n, char *buf, size_t len)
{
    size_t k = 0;
    buf[0] = '\0';
    if (n == 1 && is_default_train(&st[0]))
        return;
    for (int i = 0; i < n && k < len; i++) {
        const pb_stage *s = &st[i];
        char recipe[600] = "";
        if (s->recipe)
            pb_train_canon(s->recipe, recipe, sizeof recipe);
        k += (size_t)snprintf(buf + k, len - k,
                              "%s%s(label=%s,name=%s,path=%s,dataset=%s,subset=%d,permute=%llu,n=%d,split=%d,"
                              "recipe=%s",
                              i ? ";" : "", pb_stage_names[s->kind], s->label ? s->label : "", s->name ? s->name : "",
                              s->path ? s->path : "", s->dataset ? s->dataset : "", s->subset,
                              (unsigned long long)s->permute, s->n, s->split, recipe);
        /* derived-task keys only when set, so the keys of earlier stages stay valid */
        if (s->classes && k < len)
            k += (size_t)snprintf(buf + k, len - k, ",classes=%llx", (unsigned long long)s->classes);
        for (int q = 0; q < s->nlabel_map && k < len; q++)
            k += (size_t)snprintf(buf + k, len - k, "%s%d", q ? "." : ",labels=", s->label_map[q]);
        if (k < len)
            k += (size_t)snprintf(buf + k, len - k, ")");
    }
}

int pb_job_parse_stages(char *text, pb_stage *out, int max, int *count, char *err, size_t errlen)
{
    int n = 0;
    *count = 0;
    for (char *save, *tok = strtok_r(text, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (n == max)
            return pb_err(err, errlen, PB_EUSAGE, "--stages: more than %d stages", max);
        char *arg = strchr(tok, '=');
        if (arg)
            *arg++ = '\0';
        int k = 0;
        while (pb_stage_names[k] && strcmp(pb_stage_names[k], tok))
            k++;
        if (!pb_stage_names[k])
            return pb_err(err, errlen, PB_EUSAGE,
                          "--stages: unknown stage '%s' (valid: train, prune, finetune, calibrate=N, keep=NAME, "
                          "load=NAME|FILE)", tok);
        pb_stage *s = &out[n++];
        memset(s, 0, sizeof *s);
        s->kind = (pb_stage_kind)k;
        switch (s->kind) {
        case PB_STAGE_KEEP:
            if (!arg || !*arg)
                return pb_err(err, errlen, PB_EUSAGE, "--stages: keep needs a name (keep=base)");
            s->name = arg;
            break;
        case PB_STAGE_LOAD:
            if (!arg || !*arg)
                return pb_err(err, errlen, PB_EUSAGE, "--stages: load needs a kept model's name or a file");
            if (strchr(arg, '/') || strstr(arg, ".pb"))
                s->path = arg;
            else
                s->name = arg;
            break;
        case PB_STAGE_CALIBRATE: {
            double v = 0;
            char why[PB_ERRLEN];
            if (arg && pb_check_parse(pb_range_find("calibration examples"), arg, &v, why, sizeof why) != PB_OK)
                return pb_err(err, errlen, PB_EUSAGE, "--stages: calibrate=%s: %s", arg, why);
            if (arg && v < 1)
                return pb_err(err, errlen, PB_EUSAGE, "--stages: calibrate=%s is not a count of examples", arg);
            s->n = (int)v;
            break;
        }
        default:
            if (arg)
                return pb_err(err, errlen, PB_EUSAGE, "--stages: %s takes no value", tok);
        }
    }
    *count = n;
    return PB_OK;
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
        if (src->params[i]->mask && m->params[i]->mask)
            memcpy(m->params[i]->mask, src->params[i]->mask, m->params[i]->n * sizeof(float));
    }
    for (int i = 0; i < m->nlayers; i++)
        if (m->layers[i].kind == PB_BN) {
            memcpy(m->layers[i].run_mean, src->layers[i].run_mean, (size_t)m->layers[i].oc * sizeof(float));
            memcpy(m->layers[i].run_var, src->layers[i].run_var, (size_t)m->layers[i].oc * sizeof(float));
        }
    pb_model_arrays_changed(m);
    return PB_OK;
}

static int load_into(pb_model *m, const char *path, int batch, char *err, size_t errlen)
{
    (void)batch;
    return pb_ckpt_restore(m, path, err, errlen); /* also a parameter-sharing model's arrays */
}

static void measure(pb_model *m, const pb_dataset *test, int batch, pb_job_result *res, char *err,
                    size_t errlen)
{
    pb_evaluate(m, test, batch, &res->test_acc, &res->test_loss, err, errlen);
    pb_model_count_params(m, &res->params, &res->nonzero);
    res->stored = pb_model_stored(m);
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
        s->n = p->n + p->removed; /* units removed physically count as pruned */
        s->nonzero = 0;
        for (size_t k = 0; k < p->n; k++)
            s->nonzero += p->w[k] != 0.0f && (!p->mask || p->mask[k] != 0.0f);
        const pb_param_cost *pc = pb_model_cost_of(m, p); /* the values its method stores for it */
        if (pc)
            s->nonzero = (size_t)llround(pc->stored);
    }
    pb_sharing_measure(m, res);
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
    const int scoring = r->phase && !strcmp(r->phase, "score"); /* a data method's scoring run */
    /* a text set's target is a perplexity, reached from above */
    const int reached = pb_text_is(t->j->dataset) ? r->test_acc >= 0 && exp(r->test_loss) <= target
                                                  : r->test_acc >= target;
    if (target > 0 && !scoring && t->res->time_to_target_s < 0 && reached)
        t->res->time_to_target_s = r->wall_s;
    if (t->j->on_curve)
        t->j->on_curve(t->j->ud, r);
}

static void on_metric(void *ud, const char *name, double value)
{
    pb_job_result *res = ((curve_tap *)ud)->res;
    for (int i = 0; i < res->nmetrics; i++)
        if (!strcmp(res->metrics[i].name, name)) { /* the last value of a name wins */
            res->metrics[i].value = value;
            return;
        }
    if (res->nmetrics < PB_JOB_MAX_METRICS) {
        pb_metric *m = &res->metrics[res->nmetrics++];
        snprintf(m->name, sizeof m->name, "%s", name);
        m->value = value;
    }
}

/* ------------------------------------------------ data of the stages */

/* The data sets a job's stages train on: the job's own, and those a stage
 * names (another data set, a subset, a derived task). */
typedef struct stage_data {
    const char *dataset;
    int subset;
    uint64_t permute;
    const pb_stage *task;      /* its classes and label map */
    pb_dataset train, test;
} stage_data;

#define MAX_STAGE_DATA 4

typedef struct job_run {
    const pb_job *j;
    pb_job_result *res;
    pb_ctx ctx;
    pb_model m;
    pb_loaded plugin;
    double args[64];
    int bound;                 /* the plugin has been created */
    int trained;               /* a stage has trained or loaded the model */
    pb_dataset train, val, test;
    stage_data data[MAX_STAGE_DATA];
    int ndata;
    const pb_dataset *eval;    /* the test split of the last training stage's data */
    pb_datasel *ds;            /* the data method, or NULL */
    pb_model arch;             /* the model as built, before any surgery: what a narrowed
                                * model's measured speedup is relative to */
    int have_arch;
    char *err;
    size_t errlen;
} job_run;

static int same_task(const pb_stage *a, const pb_stage *b)
{
    if (a->classes != b->classes || a->nlabel_map != b->nlabel_map)
        return 0;
    return !a->nlabel_map || !memcmp(a->label_map, b->label_map, (size_t)a->nlabel_map * sizeof(int));
}

static int stage_data_of(job_run *r, const pb_stage *s, const pb_dataset **train, const pb_dataset **test)
{
    const pb_job *j = r->j;
    if (!s->dataset && !s->subset && !s->permute && !s->classes && !s->nlabel_map) {
        *train = &r->train;
        *test = &r->test;
        return PB_OK;
    }
    const char *name = s->dataset ? s->dataset : j->dataset;
    for (int i = 0; i < r->ndata; i++) {
        stage_data *d = &r->data[i];
        if (!strcmp(d->dataset, name) && d->subset == s->subset && d->permute == s->permute &&
            same_task(d->task, s)) {
            *train = &d->train;
            *test = &d->test;
            return PB_OK;
        }
    }
    if (r->ndata == MAX_STAGE_DATA)
        return pb_err(r->err, r->errlen, PB_EUSAGE, "the stages use more than %d data sets", MAX_STAGE_DATA);
    stage_data *d = &r->data[r->ndata];
    memset(d, 0, sizeof *d);
    int rc = pb_data_open(name, j->data_dir, s->subset, 0, j->train.seed, &d->train, NULL, &d->test, r->err,
                          r->errlen);
    if (rc != PB_OK)
        return rc;
    r->ndata++;
    d->dataset = name;
    d->subset = s->subset;
    d->permute = s->permute;
    d->task = s;
    if (d->train.c != r->m.ic || d->train.h != r->m.ih || d->train.w != r->m.iw || d->train.ncls != r->m.ncls)
        return pb_err(r->err, r->errlen, PB_EUSAGE,
                      "stage data %s has %dx%dx%d inputs and %d classes; the model expects %dx%dx%d and %d", name,
                      d->train.c, d->train.h, d->train.w, d->train.ncls, r->m.ic, r->m.ih, r->m.iw, r->m.ncls);
    if (s->classes && ((rc = pb_data_keep_classes(&d->train, s->classes, r->err, r->errlen)) != PB_OK ||
                       (rc = pb_data_keep_classes(&d->test, s->classes, r->err, r->errlen)) != PB_OK))
        return rc;
    if (s->nlabel_map &&
        ((rc = pb_data_map_labels(&d->train, s->label_map, s->nlabel_map, r->err, r->errlen)) != PB_OK ||
         (rc = pb_data_map_labels(&d->test, s->label_map, s->nlabel_map, r->err, r->errlen)) != PB_OK))
        return rc;
    if (s->permute) {
        pb_data_permute_labels(&d->train, s->permute);
        pb_data_permute_labels(&d->test, s->permute);
    }
    *train = &d->train;
    *test = &d->test;
    return PB_OK;
}

/* ------------------------------------------------------------ stages */

static int bind_plugin(job_run *r)
{
    if (r->bound)
        return PB_OK;
    r->ctx.argv = r->j->args;
    r->ctx.argc = r->j->nargs;
    r->bound = 1;
    return pb_ctx_bind(&r->ctx, &r->plugin, r->args);
}

static int run_prune(job_run *r)
{
    const pb_job *j = r->j;
    int rc = bind_plugin(r);
    if (rc != PB_OK)
        return rc;
    r->ctx.cfg = j->train;
    switch (r->plugin.desc.when) {
    case PB_WHEN_RUN:
        return pb_ctx_run(&r->ctx, j->sparsity);
    case PB_WHEN_TRAINING:
        if (!r->plugin.desc.prune)
            return PB_OK;
        /* fall through */
    default:
        if ((rc = pb_ctx_prune(&r->ctx, j->sparsity)) != PB_OK)
            return rc;
    }
    if (r->trained) {
        /* the pruned model before any fine-tuning */
        double acc, loss;
        if ((rc = pb_evaluate(&r->m, r->eval, j->train.batch, &acc, &loss, r->err, r->errlen)) != PB_OK)
            return rc;
        pb_ctx_emit(&r->ctx, "prune", 0, acc, loss);
        r->res->pruned_acc = acc;
        r->res->pruned_loss = loss;
    }
    return PB_OK;
}

static int run_train(job_run *r, const pb_stage *s)
{
    const pb_job *j = r->j;
    const pb_dataset *train, *test;
    int rc = stage_data_of(r, s, &train, &test);
    if (rc != PB_OK)
        return rc;
    pb_train_cfg cfg = s->recipe ? *s->recipe : s->kind == PB_STAGE_FINETUNE ? j->finetune : j->train;
    cfg.seed = j->train.seed;
    cfg.target_acc = j->train.target_acc;
    r->ctx.cfg = cfg;
    r->ctx.train = train;
    r->ctx.test = test;
    if (r->ds)
        r->ds->on = s->kind == PB_STAGE_TRAIN && train == &r->train; /* the job's data, a train stage */
    rc = pb_ctx_train(&r->ctx, -1, s->label ? s->label : pb_stage_names[s->kind], NULL);
    if (r->ds)
        r->ds->on = 0;
    /* host->train() of a later `run` method trains on the job's data */
    r->ctx.cfg = j->train;
    r->ctx.train = &r->train;
    r->ctx.test = &r->test;
    r->eval = test;
    r->trained = 1;
    return rc;
}

static int run_stage(job_run *r, const pb_stage *s)
{
    pb_ctx *c = &r->ctx;
    switch (s->kind) {
    case PB_STAGE_PRUNE:
        return run_prune(r);
    case PB_STAGE_TRAIN:
    case PB_STAGE_FINETUNE:
        return run_train(r, s);
    case PB_STAGE_CALIBRATE:
        if (s->split == 1 && r->val.n == 0)
            return pb_err(r->err, r->errlen, PB_EUSAGE,
                          "calibrate on the validation split, but the data set holds none out (give val = K)");
        c->calib_set = s->split == 1 ? &r->val : &r->train;
        c->calib_fixed = 0;
        {
            int rc = pb_probe_calib_draw(c, s->n);
            c->calib_fixed = rc == PB_OK;
            return rc;
        }
    case PB_STAGE_KEEP:
        return pb_ctx_keep(c, s->name, NULL);
    case PB_STAGE_LOAD:
        r->trained = 1;
        if (s->path)
            return load_into(&r->m, s->path, r->j->train.batch, r->err, r->errlen);
        if (!pb_ctx_kept(c, s->name))
            return pb_err(r->err, r->errlen, PB_EUSAGE, "load: no model was kept as '%s'", s->name ? s->name : "");
        return copy_values(&r->m, &pb_ctx_kept(c, s->name)->m, s->name, r->err, r->errlen);
    }
    return pb_err(r->err, r->errlen, PB_EINTERNAL, "unknown stage %d", (int)s->kind);
}

/* ------------------------------------------------------ the prefix cache */

static void kept_path(char *buf, size_t n, const char *cache, const char *name)
{
    snprintf(buf, n, "%s.keep-%s", cache, name);
}

/* The model after the prefix, the models it kept and its cost; the model
 * file last, since its presence marks the entry complete. */
static int cache_save(job_run *r, const pb_stage *st, int prefix, double wall, double flops, char *err,
                      size_t errlen)
{
    const char *cache = r->j->dense_cache;
    char path[4400], text[256];
    snprintf(path, sizeof path, "%s.cost", cache);
    int n = snprintf(text, sizeof text, "wall_s %.17g\nflops %.17g\nsteps %ld\n", wall, flops, r->ctx.steps);
    int rc = pb_file_write_atomic(path, text, (size_t)n, err, errlen);
    for (int i = 0; i < prefix && rc == PB_OK; i++)
        if (st[i].kind == PB_STAGE_KEEP) {
            kept_path(path, sizeof path, cache, st[i].name);
            rc = pb_ckpt_save(&pb_ctx_kept(&r->ctx, st[i].name)->m, path, err, errlen);
        }
    return rc == PB_OK ? pb_ckpt_save(&r->m, cache, err, errlen) : rc;
}

/* Removes a cache entry: its model, cost record and kept models. */
static void cache_remove(const job_run *r, const pb_stage *st, int prefix)
{
    const char *cache = r->j->dense_cache;
    char path[4400];
    unlink(cache);
    snprintf(path, sizeof path, "%s.cost", cache);
    unlink(path);
    for (int i = 0; i < prefix; i++)
        if (st[i].kind == PB_STAGE_KEEP) {
            kept_path(path, sizeof path, cache, st[i].name);
            unlink(path);
        }
}

/* Whether the cache entry can be read whole, into why if not: the model into
 * a copy of the job's (same architecture), every kept model, the cost record.
 * A damaged entry is made again rather than failing every cell that reads it. */
static int cache_valid(job_run *r, const pb_stage *st, int prefix, char *why, size_t n)
{
    const char *cache = r->j->dense_cache;
    char path[4400];
    pb_model k;
    if (!pb_file_is_regular(cache))
        return !pb_err(why, n, PB_EIO, "%s is not a regular file", cache);
    if (pb_model_clone(&r->m, &k, 1, why, n) != PB_OK)
        return 1; /* out of memory: loading will say so */
    int rc = pb_ckpt_restore(&k, cache, why, n);
    pb_model_free(&k);
    for (int i = 0; i < prefix && rc == PB_OK; i++)
        if (st[i].kind == PB_STAGE_KEEP) {
            kept_path(path, sizeof path, cache, st[i].name);
            if ((rc = pb_ckpt_load(&k, path, 1, why, n)) == PB_OK)
                pb_model_free(&k);
        }
    snprintf(path, sizeof path, "%s.cost", cache);
    FILE *f = rc == PB_OK ? fopen(path, "r") : NULL;
    if (f) {
        double w, fl;
        if (fscanf(f, "wall_s %lf flops %lf", &w, &fl) != 2 || !(w >= 0) || !(fl >= 0))
            rc = pb_err(why, n, PB_EIO, "%s: not a cost record", path);
        fclose(f);
    }
    return rc == PB_OK;
}

static int cache_load(job_run *r, const pb_stage *st, int prefix, double *wall, double *flops)
{
    const char *cache = r->j->dense_cache;
    int rc = load_into(&r->m, cache, r->j->train.batch, r->err, r->errlen);
    for (int i = 0; i < prefix && rc == PB_OK; i++)
        if (st[i].kind == PB_STAGE_KEEP) {
            char path[4400];
            kept_path(path, sizeof path, cache, st[i].name);
            pb_model k;
            if ((rc = pb_ckpt_load(&k, path, 1, r->err, r->errlen)) != PB_OK)
                break;
            rc = pb_ctx_keep(&r->ctx, st[i].name, &k);
            pb_model_free(&k);
        } else if (st[i].kind == PB_STAGE_CALIBRATE) {
            rc = run_stage(r, &st[i]);
        } else if (st[i].kind == PB_STAGE_TRAIN || st[i].kind == PB_STAGE_FINETUNE) {
            /* the final evaluation uses the data of the last training stage */
            const pb_dataset *tr;
            if ((rc = stage_data_of(r, &st[i], &tr, &r->eval)) != PB_OK)
                break;
        }
    *wall = *flops = 0;
    char path[4400];
    snprintf(path, sizeof path, "%s.cost", cache);
    FILE *f = fopen(path, "r");
    if (f) {
        long steps = 0;
        if (fscanf(f, "wall_s %lf flops %lf steps %ld", wall, flops, &steps) < 2)
            *wall = *flops = 0;
        r->ctx.steps = steps; /* the curves' step count goes on from the prefix's */
        fclose(f);
    } else if (rc == PB_OK) {
        fprintf(stderr, "note: %s has no cost record (written by an older prunebench): the cost columns leave "
                        "out the pre-training\n", cache);
    }
    if (rc == PB_OK)
        fprintf(stderr, "dense model from cache %s\n", cache);
    return rc;
}

/* ------------------------------------------------------------- the job */

static int check_needs(job_run *r, const pb_stage *st, int n)
{
    const pb_plugin *d = &r->plugin.desc;
    if (!(d->needs & PB_NEEDS_REFERENCE))
        return PB_OK;
    for (int i = 0; i < n; i++)
        if (st[i].kind == PB_STAGE_PRUNE)
            break;
        else if (st[i].kind == PB_STAGE_KEEP && st[i].name && !strcmp(st[i].name, d->reference))
            return PB_OK;
    return pb_err(r->err, r->errlen, PB_EUSAGE,
                  "method %s reads a kept model '%s': the stages must keep it before pruning "
                  "(e.g. stages = { train, keep \"%s\", finetune, prune })", d->name, d->reference, d->reference);
}

/* The data method: loaded and checked with the stages it selects for, before
 * anything trains. */
static int open_data(job_run *r, const pb_stage *st, int n)
{
    const pb_job *j = r->j;
    if (r->plugin.dl && r->plugin.desc.when == PB_WHEN_RUN)
        return pb_err(r->err, r->errlen, PB_EUSAGE,
                      "method %s drives its own training (when = run): a data method applies to train stages; "
                      "combine data selection with another method", j->method);
    int ntrain = 0;
    for (int i = 0; i < n; i++)
        ntrain += st[i].kind == PB_STAGE_TRAIN && !st[i].dataset && !st[i].subset && !st[i].permute;
    if (ntrain == 0)
        return pb_err(r->err, r->errlen, PB_EUSAGE,
                      "data method %s selects the examples of train stages on the job's data, and the stages "
                      "have none", j->data_method);
    pb_datasel *ds = calloc(1, sizeof *ds);
    if (!ds)
        return pb_err(r->err, r->errlen, PB_ENOMEM, "out of memory");
    int rc = pb_datasel_open(ds, j->data_method, j->data_args, j->ndata_args, j->plugin_path,
                             (pb_budget_kind)j->budget_kind, j->budget, r->err, r->errlen);
    if (rc != PB_OK) {
        free(ds);
        return rc;
    }
    r->ds = ds;
    return PB_OK;
}

int pb_job_run(const pb_job *j, pb_job_result *res, char *err, size_t errlen)
{
    memset(res, 0, sizeof *res);
    res->time_to_target_s = -1;
    res->test_acc = -1;
    res->pruned_acc = res->pruned_loss = -1;
    res->infer_us_b1 = res->infer_us_b1_dense = res->infer_ips_b128 = res->infer_ips_b128_dense = -1;
    const int has_method = j->method && strcmp(j->method, "dense") != 0;
    if (has_method && !(j->sparsity >= 0.0 && j->sparsity < 1.0))
        return pb_err(err, errlen, PB_EUSAGE, "sparsity %g is not in [0, 1)", j->sparsity);
    job_run *r = calloc(1, sizeof *r);
    if (!r)
        return pb_err(err, errlen, PB_ENOMEM, "out of memory");
    r->j = j;
    r->res = res;
    r->err = err;
    r->errlen = errlen;

    /* Everything that can be refused is checked before any training. */
    int rc = PB_OK;
    char target[4096];
    if (j->save && (rc = pb_file_target(j->save, target, sizeof target, err, errlen)) != PB_OK) {
        free(r);
        return rc;
    }
    if (has_method) {
        if ((rc = pb_plugin_find(j->method, j->plugin_path, &r->plugin, err, errlen)) != PB_OK) {
            free(r);
            return rc;
        }
        if (pb_plugin_nparams(&r->plugin.desc) > 64)
            rc = pb_err(err, errlen, PB_EPLUGIN, "method %s declares too many parameters", j->method);
        else
            rc = pb_plugin_parse_args(&r->plugin.desc, j->args, j->nargs, r->args, err, errlen);
    }
    pb_stage defaults[3];
    const pb_stage *st = j->stages;
    int nst = j->nstages;
    if (!st) {
        nst = pb_job_default_stages(has_method ? (int)r->plugin.desc.when : -1, j->load != NULL, defaults);
        st = defaults;
    }
    if (rc == PB_OK && nst > PB_JOB_MAX_STAGES)
        rc = pb_err(err, errlen, PB_EUSAGE, "more than %d stages", PB_JOB_MAX_STAGES);
    int nprune = 0;
    for (int i = 0; i < nst; i++)
        nprune += st[i].kind == PB_STAGE_PRUNE;
    if (rc == PB_OK && has_method && nprune == 0)
        rc = pb_err(err, errlen, PB_EUSAGE, "method %s is given but no stage prunes", j->method);
    if (rc == PB_OK && !has_method && nprune > 0)
        rc = pb_err(err, errlen, PB_EUSAGE, "a prune stage needs a method");
    if (rc == PB_OK && has_method)
        rc = check_needs(r, st, nst);
    if (rc == PB_OK && has_method && r->plugin.desc.kind == PB_KIND_DATA)
        rc = pb_err(err, errlen, PB_EUSAGE,
                    "%s is a data-selection method, not a weight-pruning method: give it as the data method "
                    "(data = { \"%s\" } in a script) and a weight method (or dense) as the method", j->method,
                    j->method);
    if (rc == PB_OK && j->data_method)
        rc = open_data(r, st, nst);
    if (rc != PB_OK) {
        pb_plugin_close(&r->plugin);
        free(r);
        return rc;
    }
    pb_par_use_threads(j->threads);
    if ((rc = pb_data_open(j->dataset, j->data_dir, j->subset, j->val, j->train.seed, &r->train, &r->val, &r->test,
                           err, errlen)) != PB_OK) {
        if (r->ds) {
            pb_datasel_close(r->ds);
            free(r->ds);
        }
        pb_plugin_close(&r->plugin);
        free(r);
        return rc;
    }
    r->eval = &r->test;
    const double t_start = pb_now();
    pb_model *m = &r->m;
    const pb_dataset *train = &r->train;
    if (j->load)
        rc = pb_ckpt_load(m, j->load, j->train.batch, err, errlen);
    else if (j->proto)
        rc = pb_model_clone(j->proto, m, j->train.batch, err, errlen);
    else if (!j->model)
        rc = pb_err(err, errlen, PB_EUSAGE, "no model given");
    else if ((rc = pb_model_build(m, j->model, j->width, j->hidden, j->nhidden, train->c, train->h, train->w,
                                  train->ncls, err, errlen)) == PB_OK)
        rc = pb_model_finalize(m, j->train.batch, err, errlen);
    if (rc == PB_OK && !j->load)
        pb_model_init_weights(m, j->train.seed);
    if (rc == PB_OK && (train->c != m->ic || train->h != m->ih || train->w != m->iw || train->ncls != m->ncls))
        rc = pb_err(err, errlen, PB_EUSAGE, "model %s expects %dx%dx%d inputs and %d classes; %s has %dx%dx%d and %d",
                    m->arch, m->ic, m->ih, m->iw, m->ncls, train->name, train->c, train->h, train->w, train->ncls);
    if (rc == PB_OK && r->ds)
        rc = pb_datasel_check_budget(r->ds, train->n, &j->train, err, errlen);
    if (rc == PB_OK)
        rc = pb_ctx_init(&r->ctx, m, train, &r->test, &j->train, j->train.seed, err, errlen);
    if (rc != PB_OK)
        goto out;
    r->ctx.data = r->ds;
    for (int i = 0; i < nst && rc == PB_OK; i++)
        if (st[i].kind == PB_STAGE_CALIBRATE) {
            const pb_dataset *d = st[i].split == 1 ? &r->val : &r->train;
            if (st[i].n > d->n)
                rc = pb_err(err, errlen, PB_EUSAGE, "calibrate: n = %d is larger than the %s split (%d examples)",
                            st[i].n, st[i].split == 1 ? "validation" : "training", d->n);
        }
    /* a trained-model method's create() refuses bad arguments (n > m, a
     * calibration size beyond the split) before the pre-training, not after */
    if (rc == PB_OK && has_method && r->plugin.desc.when == PB_WHEN_TRAINED && !(r->plugin.desc.needs & PB_NEEDS_REFERENCE))
        rc = pb_ctx_check_args(&r->ctx, &r->plugin, r->args);
    if (rc != PB_OK)
        goto out;
    r->trained = j->load != NULL;
    r->ctx.val = r->val.n ? &r->val : NULL;
    curve_tap tap = {j, res};
    pb_ctx *ctx = &r->ctx;
    ctx->on_curve = on_curve;
    ctx->on_metric = on_metric;
    ctx->curve_ud = &tap;
    ctx->t0 = t_start;
    pb_model_flops(m, &res->flops_dense_orig, NULL);
    r->have_arch = pb_model_clone(m, &r->arch, 1, NULL, 0) == PB_OK;

    /* The plugin-free prefix: from the cache, or run (and cached) */
    const int prefix = pb_job_prefix_len(st, nst);
    int cacheable = 0;
    for (int i = 0; i < prefix; i++)
        cacheable |= st[i].kind == PB_STAGE_TRAIN || st[i].kind == PB_STAGE_FINETUNE || st[i].kind == PB_STAGE_LOAD;
    cacheable = cacheable && j->dense_cache;
    int first = 0;
    if (cacheable && file_exists(j->dense_cache)) {
        char why[PB_ERRLEN];
        if (!cache_valid(r, st, prefix, why, sizeof why)) {
            fprintf(stderr, "warning: the cached model is damaged (%s): removing it and making it again\n", why);
            cache_remove(r, st, prefix);
        }
    }
    if (cacheable && file_exists(j->dense_cache)) {
        if ((rc = cache_load(r, st, prefix, &res->prefix_wall_s, &res->prefix_flops)) != PB_OK)
            goto out;
        res->dense_from_cache = 1;
        r->trained = 1;
        first = prefix;
        /* the curves' clock and FLOPs go on from where the prefix ended */
        ctx->t0 = t_start - res->prefix_wall_s;
        ctx->train_flops = res->prefix_flops;
    }
    double prefix_train_flops = ctx->train_flops, prefix_probe = 0;
    for (int i = first; i < nst; i++) {
        if ((rc = run_stage(r, &st[i])) != PB_OK)
            goto out;
        if (i == prefix - 1 && !res->dense_from_cache) {
            res->prefix_wall_s = pb_now() - t_start;
            res->prefix_flops = ctx->train_flops + ctx->probe_flops;
            prefix_train_flops = ctx->train_flops;
            prefix_probe = ctx->probe_flops;
            /* a cache that cannot be written costs later cells time, not this cell its result */
            char cerr[PB_ERRLEN];
            if (cacheable && cache_save(r, st, prefix, res->prefix_wall_s, res->prefix_flops, cerr, sizeof cerr) != PB_OK) {
                fprintf(stderr, "warning: the model after the pre-training is not cached (%s); the cell goes on\n",
                        cerr);
                cache_remove(r, st, prefix);
            }
        }
    }
    measure(m, r->eval, j->train.batch, res, err, errlen);
    double end = pb_now();
    res->wall_s = res->dense_from_cache ? end - t_start : end - t_start - res->prefix_wall_s;
    res->train_flops = ctx->train_flops - prefix_train_flops;
    res->probe_flops = ctx->probe_flops - prefix_probe;
    res->cost_wall_s = res->prefix_wall_s + res->wall_s;
    res->cost_flops = res->prefix_flops + res->train_flops + res->probe_flops;
    /* inference speed, outside the cell's cost; a cell whose timing fails
     * is still a result, with the columns empty */
    pb_infer_rec inf;
    char ierr[PB_ERRLEN];
    const int narrowed = r->have_arch && res->flops_dense_orig > res->flops_dense * (1 + 1e-9);
    if (pb_infer_measure(m, narrowed ? &r->arch : NULL, r->eval, 0.004, &inf, ierr, sizeof ierr) == PB_OK) {
        res->infer_us_b1 = inf.us_b1;
        res->infer_us_b1_dense = inf.us_b1_dense;
        res->infer_ips_b128 = inf.ips_b128;
        res->infer_ips_b128_dense = inf.ips_b128_dense;
    }
    if (j->save)
        rc = pb_ckpt_save(m, j->save, err, errlen);
out:
    pb_ctx_free(&r->ctx);
    if (r->have_arch)
        pb_model_free(&r->arch);
    if (r->ds) {
        pb_datasel_close(r->ds);
        free(r->ds);
    }
    pb_model_free(m);
    pb_plugin_close(&r->plugin);
    pb_data_free(&r->train);
    pb_data_free(&r->val);
    pb_data_free(&r->test);
    for (int i = 0; i < r->ndata; i++) {
        pb_data_free(&r->data[i].train);
        pb_data_free(&r->data[i].test);
    }
    free(r);
    return rc;
}
