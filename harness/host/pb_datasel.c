/* pb_datasel: the data-selection binding of a context (see pb_datasel.h). */
#include "pb_datasel.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pb_host.h"

const char *const pb_budget_names[] = {"none", "steps", "epochs", "seconds", NULL};

int pb_datasel_open(pb_datasel *ds, const char *name, const char *const *args, int nargs, const char *plugin_path,
                    pb_budget_kind budget_kind, double budget, char *err, size_t errlen)
{
    memset(ds, 0, sizeof *ds);
    if (nargs > PB_DATASEL_MAX_ARGS)
        return pb_err(err, errlen, PB_EUSAGE, "data method %s: more than %d parameters", name,
                      PB_DATASEL_MAX_ARGS);
    if (!strcmp(name, "dense"))
        return pb_err(err, errlen, PB_EUSAGE,
                      "data method 'dense' does not exist: dense is the unpruned weight baseline; the whole "
                      "training set is the data method 'full'");
    int rc = pb_plugin_find(name, plugin_path, &ds->plugin, err, errlen);
    if (rc != PB_OK)
        return rc;
    const pb_plugin *d = &ds->plugin.desc;
    if (d->kind != PB_KIND_DATA || !d->select) {
        rc = pb_err(err, errlen, PB_EUSAGE,
                    "%s is a weight-pruning method (kind %s), not a data-selection method: give it as a "
                    "method, and a data method (full, rs2, static_random, el2n, grand, forgetting) as data",
                    name, pb_plugin_kind_name(d->kind));
    } else if (pb_plugin_nparams(d) > 64) {
        rc = pb_err(err, errlen, PB_EPLUGIN, "data method %s declares too many parameters", name);
    } else if ((rc = pb_plugin_parse_args(d, args, nargs, ds->args, err, errlen)) == PB_OK) {
        ds->fraction = 1.0;
        for (int k = 0; d->params && d->params[k].name; k++)
            if (!strcmp(d->params[k].name, "fraction"))
                ds->fraction = ds->args[k];
        if (!(ds->fraction > 0.0 && ds->fraction <= 1.0))
            rc = pb_err(err, errlen, PB_EUSAGE, "data method %s: fraction %g is not in (0, 1]", name, ds->fraction);
    }
    if (rc == PB_OK && budget_kind != PB_BUDGET_NONE && !(budget > 0 && isfinite(budget)))
        rc = pb_err(err, errlen, PB_EUSAGE, "budget of %g %s: a budget must be a positive number", budget,
                    pb_budget_names[budget_kind]);
    if (rc == PB_OK && budget_kind == PB_BUDGET_STEPS && budget != floor(budget))
        rc = pb_err(err, errlen, PB_EUSAGE, "budget of %g steps is not a whole number of steps", budget);
    if (rc != PB_OK) {
        pb_plugin_close(&ds->plugin);
        return rc;
    }
    for (int i = 0; i < nargs; i++)
        ds->argv[i] = args[i];
    ds->argc = nargs;
    ds->budget_kind = budget_kind;
    ds->budget = budget;
    return PB_OK;
}

/* The steps a steps- or epochs-budget allows (0 for the others). */
static long budget_steps(const pb_datasel *ds, int ntrain, int batch)
{
    if (ds->budget_kind == PB_BUDGET_STEPS)
        return (long)ds->budget;
    if (ds->budget_kind == PB_BUDGET_EPOCHS)
        return (long)llround(ds->budget * (double)((ntrain + batch - 1) / batch));
    return 0;
}

int pb_datasel_check_budget(const pb_datasel *ds, int ntrain, const pb_train_cfg *cfg, char *err, size_t errlen)
{
    if (ds->budget_kind == PB_BUDGET_NONE)
        return PB_OK;
    if (cfg->max_steps > 0)
        return pb_err(err, errlen, PB_EUSAGE,
                      "a budget of %g %s and the recipe's max_steps = %ld both bound the training: give one",
                      ds->budget, pb_budget_names[ds->budget_kind], cfg->max_steps);
    if (ds->budget_kind != PB_BUDGET_SECONDS && budget_steps(ds, ntrain, cfg->batch) < 1)
        return pb_err(err, errlen, PB_EUSAGE,
                      "a budget of %g %s cannot be met: it is less than one optimizer step (%d examples in "
                      "batches of %d)", ds->budget, pb_budget_names[ds->budget_kind], ntrain, cfg->batch);
    return PB_OK;
}

void pb_datasel_close(pb_datasel *ds)
{
    if (ds->bound && ds->plugin.desc.destroy && ds->state)
        ds->plugin.desc.destroy(ds->state);
    ds->state = NULL;
    pb_plugin_close(&ds->plugin);
}

/* ---------- swapping the binding ---------- */

typedef struct binding {
    const pb_loaded *plugin;
    const char *const *argv;
    int argc;
    void *state;
    pb_rng rng;
    struct pb_datasel *data;
} binding;

static void swap_in(pb_ctx *c, pb_datasel *ds, binding *saved)
{
    *saved = (binding){c->plugin, c->argv, c->argc, c->state, c->rng, c->data};
    c->plugin = &ds->plugin;
    c->argv = ds->argv;
    c->argc = ds->argc;
    c->state = ds->state;
    c->rng = ds->rng;
    c->data = NULL; /* the data plugin's own training (scoring) selects nothing */
}

static void swap_out(pb_ctx *c, pb_datasel *ds, const binding *saved)
{
    ds->state = c->state;
    ds->rng = c->rng;
    c->plugin = saved->plugin;
    c->argv = saved->argv;
    c->argc = saved->argc;
    c->state = saved->state;
    c->rng = saved->rng;
    c->data = saved->data;
}

static int status(pb_ctx *c, int rc, const char *hook)
{
    if (rc == PB_OK)
        return PB_OK;
    if (!c->err[0])
        pb_err(c->err, c->errlen, PB_EPLUGIN, "data method %s: %s failed (status %d)", c->plugin->desc.name, hook,
               rc);
    return rc == PB_ENUM || rc == PB_ENOMEM ? rc : PB_EPLUGIN;
}

/* ---------- the model around a scoring run ---------- */

typedef struct saved_model {
    float **w, **mask, **bn;
    int nparams, nlayers;
} saved_model;

static void saved_free(saved_model *s)
{
    for (int i = 0; i < s->nparams; i++) {
        free(s->w ? s->w[i] : NULL);
        free(s->mask ? s->mask[i] : NULL);
    }
    for (int i = 0; s->bn && i < 2 * s->nlayers; i++)
        free(s->bn[i]);
    free(s->w);
    free(s->mask);
    free(s->bn);
    memset(s, 0, sizeof *s);
}

static float *dup_floats(const float *a, size_t n)
{
    float *p = a ? malloc((n ? n : 1) * sizeof(float)) : NULL;
    if (p)
        memcpy(p, a, n * sizeof(float));
    return p;
}

static int save_model(const pb_model *m, saved_model *s)
{
    memset(s, 0, sizeof *s);
    s->nparams = m->nparams;
    s->nlayers = m->nlayers;
    s->w = calloc((size_t)m->nparams + 1, sizeof *s->w);
    s->mask = calloc((size_t)m->nparams + 1, sizeof *s->mask);
    s->bn = calloc(2 * (size_t)m->nlayers + 1, sizeof *s->bn);
    int ok = s->w && s->mask && s->bn;
    for (int i = 0; ok && i < m->nparams; i++) {
        const pb_param *p = m->params[i];
        ok = (s->w[i] = dup_floats(p->w, p->n)) != NULL;
        if (ok && p->mask)
            ok = (s->mask[i] = dup_floats(p->mask, p->n)) != NULL;
    }
    for (int i = 0; ok && i < m->nlayers; i++)
        if (m->layers[i].kind == PB_BN)
            ok = (s->bn[2 * i] = dup_floats(m->layers[i].run_mean, (size_t)m->layers[i].oc)) &&
                 (s->bn[2 * i + 1] = dup_floats(m->layers[i].run_var, (size_t)m->layers[i].oc));
    if (!ok)
        saved_free(s);
    return ok ? PB_OK : PB_ENOMEM;
}

static void restore_model(pb_model *m, const saved_model *s)
{
    for (int i = 0; i < m->nparams && i < s->nparams; i++) {
        memcpy(m->params[i]->w, s->w[i], m->params[i]->n * sizeof(float));
        if (s->mask[i] && m->params[i]->mask)
            memcpy(m->params[i]->mask, s->mask[i], m->params[i]->n * sizeof(float));
    }
    for (int i = 0; i < m->nlayers && i < s->nlayers; i++)
        if (m->layers[i].kind == PB_BN && s->bn[2 * i]) {
            memcpy(m->layers[i].run_mean, s->bn[2 * i], (size_t)m->layers[i].oc * sizeof(float));
            memcpy(m->layers[i].run_var, s->bn[2 * i + 1], (size_t)m->layers[i].oc * sizeof(float));
        }
    pb_model_arrays_changed(m);
}

static int bind(pb_ctx *c, pb_datasel *ds)
{
    saved_model sm;
    if (save_model(c->m, &sm) != PB_OK)
        return pb_err(c->err, c->errlen, PB_ENOMEM, "out of memory");
    const int nparams = c->m->nparams;
    const long steps = c->steps;
    binding saved;
    pb_rng_seed(&ds->rng, c->seed ^ 0xda7a5e1ec7ULL);
    swap_in(c, ds, &saved);
    ds->bound = 1;
    int rc = pb_ctx_bind(c, &ds->plugin, ds->args);
    swap_out(c, ds, &saved);
    if (rc == PB_OK && c->m->nparams != nparams)
        rc = pb_err(c->err, c->errlen, PB_EPLUGIN, "data method %s added parameters to the model",
                    ds->plugin.desc.name);
    if (rc == PB_OK) {
        restore_model(c->m, &sm);
        c->steps = steps; /* the cell's steps: a scoring run is not part of its schedule */
    }
    saved_free(&sm);
    return rc;
}

int pb_datasel_begin(pb_ctx *c, pb_train_cfg *cfg)
{
    pb_datasel *ds = c->data;
    int rc = PB_OK;
    if (!ds->bound && (rc = bind(c, ds)) != PB_OK)
        return rc;
    switch (ds->budget_kind) {
    case PB_BUDGET_STEPS:
    case PB_BUDGET_EPOCHS: {
        long s = budget_steps(ds, c->train->n, cfg->batch);
        if (s < 1)
            return pb_err(c->err, c->errlen, PB_EUSAGE, "a budget of %g %s is less than one step", ds->budget,
                          pb_budget_names[ds->budget_kind]);
        /* every round takes at least one step: s rounds reach the budget */
        cfg->max_steps = s;
        cfg->epochs = s > 1000000 ? 1000000 : (int)s;
        break;
    }
    case PB_BUDGET_SECONDS:
        cfg->deadline = c->t0 + ds->budget;
        break;
    default:
        break;
    }
    return PB_OK;
}

int pb_datasel_select(pb_ctx *c, int epoch, int n_total, int *idx, int *n)
{
    pb_datasel *ds = c->data;
    binding saved;
    swap_in(c, ds, &saved);
    c->err[0] = 0;
    int rc = status(c, ds->plugin.desc.select(ds->state, &pb_host_table, c, epoch, n_total, idx, n), "select");
    if (rc == PB_OK && (*n < 1 || *n > n_total))
        rc = pb_err(c->err, c->errlen, PB_EPLUGIN, "data method %s: select chose %d examples of %d",
                    ds->plugin.desc.name, *n, n_total);
    for (int i = 0; rc == PB_OK && i < *n; i++)
        if (idx[i] < 0 || idx[i] >= n_total)
            rc = pb_err(c->err, c->errlen, PB_EPLUGIN, "data method %s: select chose example %d, not in [0, %d)",
                        ds->plugin.desc.name, idx[i], n_total);
    swap_out(c, ds, &saved);
    return rc;
}
