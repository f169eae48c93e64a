/* pb_cell: the cells of an experiment matrix — canonical strings, hashes, jobs. */
#include "pb_cell.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/pb_optim.h"
#include "host/pb_datasel.h"
#include "host/pb_plugin.h"

/* Every field that changes what a recipe trains, at full precision: the
 * string is hashed, and a changed string would orphan earlier results. */
static void recipe_canon(char *buf, size_t n, const pb_train_cfg *c)
{
    snprintf(buf, n,
             "epochs=%d,batch=%d,opt=%s,lr=%.17g,momentum=%.17g,wd=%.17g,nesterov=%d,"
             "beta1=%.17g,beta2=%.17g,eps=%.17g,schedule=%s,step_epochs=%d,gamma=%.17g,"
             "warmup=%ld,max_steps=%ld",
             c->epochs, c->batch, pb_opt_names[c->opt.kind], c->opt.lr, c->opt.momentum, c->opt.wd,
             c->opt.nesterov, c->opt.beta1, c->opt.beta2, c->opt.eps, pb_sched_names[c->opt.sched],
             c->opt.step_epochs, c->opt.gamma, c->opt.warmup_steps, c->max_steps);
    if (c->early_stop) {
        size_t k = strlen(buf);
        snprintf(buf + k, n > k ? n - k : 0, ",early_stop=1");
    }
}

static void hex64(char out[17], uint64_t h) { snprintf(out, 17, "%016llx", (unsigned long long)h); }

int pb_cell_finish(pb_cell *c, char *err, size_t errlen)
{
    char model[2048], hidden[256] = "", train[512], ft[512], dense[4096];
    const char *canon = c->config; /* the Lua model's description, if any */
    if (c->arch)
        snprintf(model, sizeof model, "%s", c->arch);
    else
        snprintf(model, sizeof model, "%s", canon ? canon : c->model);
    for (int i = 0; i < c->nhidden; i++) {
        size_t k = strlen(hidden);
        snprintf(hidden + k, sizeof hidden - k, "%s%d", i ? "," : "", c->hidden[i]);
    }
    recipe_canon(train, sizeof train, &c->train);
    recipe_canon(ft, sizeof ft, &c->finetune);
    snprintf(dense, sizeof dense,
             "pbdense/1|model=%s|width=%.17g|hidden=%s|dataset=%s|subset=%d|val=%d|seed=%ld|train=%s",
             model, c->width, hidden, c->dataset, c->subset, c->val, c->seed, train);
    /* an explicit pipeline: the cache key names its plugin-free prefix (none
     * for a plain [train] prefix, so such cells share the default's model),
     * and the cell's configuration all of it */
    char *all = NULL;
    if (c->nstages > 0) {
        size_t cap = 4096 + (size_t)c->nstages * 1024;
        all = malloc(cap);
        char *pre = malloc(cap);
        if (!all || !pre) {
            free(all);
            free(pre);
            return pb_err(err, errlen, PB_ENOMEM, "out of memory");
        }
        pb_job_stages_canon(c->stages, pb_job_prefix_len(c->stages, c->nstages), pre, cap);
        pb_job_stages_canon(c->stages, c->nstages, all, cap);
        if (pre[0]) {
            size_t k = strlen(dense);
            snprintf(dense + k, sizeof dense - k, "|prefix=%s", pre);
        }
        free(pre);
    }
    free(c->stages_canon);
    c->stages_canon = all ? all : strdup("");
    if (c->data) {
        /* the data axis changes the trained model: part of both keys, and
         * absent without one, so earlier cells keep their hashes */
        size_t k = strlen(dense);
        snprintf(dense + k, sizeof dense - k, "|data=%s|data_args=%s|budget=%s:%.17g", c->data,
                 c->data_args_joined ? c->data_args_joined : "", pb_budget_names[c->budget_kind], c->budget);
    }
    hex64(c->dense_key, pb_hash64(dense, strlen(dense), PB_HASH_INIT));
    size_t n = strlen(dense) + strlen(ft) + strlen(c->method) + strlen(c->label) +
               (c->args_joined ? strlen(c->args_joined) : 0) + strlen(c->stages_canon ? c->stages_canon : "") + 256 +
               (c->data_label ? strlen(c->data_label) : 0);
    char *cfg = malloc(n);
    if (!cfg)
        return pb_err(err, errlen, PB_ENOMEM, "out of memory");
    snprintf(cfg, n, "pbcell/1|%s|method=%s|args=%s|sparsity=%.17g|finetune=%s|target=%.17g|label=%s",
             dense + strlen("pbdense/1|"), c->method, c->args_joined ? c->args_joined : "", c->sparsity,
             ft, c->target, c->label);
    if (c->nstages > 0) {
        size_t k = strlen(cfg);
        snprintf(cfg + k, n - k, "|stages=%s", c->stages_canon);
    }
    if (c->data && c->data_label) {
        size_t k = strlen(cfg);
        snprintf(cfg + k, n - k, "|data_label=%s", c->data_label);
    }
    hex64(c->hash, pb_hash64(cfg, strlen(cfg), PB_HASH_INIT));
    free(c->config);
    c->config = cfg;
    return PB_OK;
}

/* One plugin an experiment uses, found once. */
typedef struct used_plugin {
    const char *name;
    pb_provenance p;
} used_plugin;

static int find_used(used_plugin *u, int *nu, int max, const char *name, const char *plugin_path,
                     const used_plugin **out, char *err, size_t errlen)
{
    for (int i = 0; i < *nu; i++)
        if (!strcmp(u[i].name, name)) {
            *out = &u[i];
            return PB_OK;
        }
    if (*nu == max)
        return pb_err(err, errlen, PB_EUSAGE, "more than %d method plugins in one experiment", max);
    char path[4096];
    int rc = pb_plugin_locate(name, plugin_path, path, sizeof path, err, errlen);
    if (rc == PB_OK)
        rc = pb_plugin_provenance(path, &u[*nu].p, err, errlen);
    if (rc != PB_OK)
        return rc;
    u[*nu].name = name;
    *out = &u[(*nu)++];
    return PB_OK;
}

/* Appends "|KEY=fnv1a64:HEX" to a cell's configuration and hashes it again. */
static int append_sig(pb_cell *c, const char *key, uint64_t h, char *err, size_t errlen)
{
    size_t n = strlen(c->config) + strlen(key) + 32;
    char *cfg = realloc(c->config, n);
    if (!cfg)
        return pb_err(err, errlen, PB_ENOMEM, "out of memory");
    size_t k = strlen(cfg);
    snprintf(cfg + k, n - k, "|%s=fnv1a64:%016llx", key, (unsigned long long)h);
    c->config = cfg;
    hex64(c->hash, pb_hash64(cfg, strlen(cfg), PB_HASH_INIT));
    return PB_OK;
}

int pb_cell_provenance(pb_experiment *x, const char *plugin_path, char *err, size_t errlen)
{
    enum { MAX_USED = 128 };
    used_plugin *used = calloc(MAX_USED, sizeof *used); /* 4 KiB paths: not on the stack */
    if (!used)
        return pb_err(err, errlen, PB_ENOMEM, "out of memory");
    int nused = 0, rc = PB_OK;
    for (int i = 0; i < x->ncells && rc == PB_OK; i++) {
        pb_cell *c = &x->cells[i];
        if (strcmp(c->method, "dense")) {
            const used_plugin *u = NULL;
            rc = find_used(used, &nused, MAX_USED, c->method, plugin_path, &u, err, errlen);
            if (rc == PB_OK && !u->p.builtin)
                rc = append_sig(c, "plugin_file", u->p.hash, err, errlen);
        }
        if (rc == PB_OK && c->data) {
            const used_plugin *u = NULL;
            rc = find_used(used, &nused, MAX_USED, c->data, plugin_path, &u, err, errlen);
            if (rc == PB_OK && !u->p.builtin) {
                /* the data method shapes the trained model, so its file is
                 * part of the dense key too: FNV-1a goes on from the key's
                 * value as if the suffix had been hashed with the rest */
                char sfx[64];
                snprintf(sfx, sizeof sfx, "|data_plugin_file=fnv1a64:%016llx", (unsigned long long)u->p.hash);
                uint64_t dk = strtoull(c->dense_key, NULL, 16);
                hex64(c->dense_key, pb_hash64(sfx, strlen(sfx), dk));
                rc = append_sig(c, "data_plugin_file", u->p.hash, err, errlen);
            }
        }
    }
    size_t cap = 1 + (size_t)nused * (sizeof used->p.path + 200), len = 0;
    char *text = rc == PB_OK ? malloc(cap) : NULL;
    if (rc == PB_OK && !text)
        rc = pb_err(err, errlen, PB_ENOMEM, "out of memory");
    if (rc != PB_OK) {
        free(used);
        return rc;
    }
    text[0] = '\0';
    for (int i = 0; i < nused; i++) {
        /* one line per plugin, whatever bytes a directory's name holds */
        for (char *q = used[i].p.path; *q; q++)
            if ((unsigned char)*q < 0x20 || *q == 0x7f)
                *q = '?';
        len += (size_t)snprintf(text + len, cap - len, "plugin: %s %s fnv1a64=%016llx %s\n", used[i].name,
                                pb_plugin_shown_path(used[i].p.path), (unsigned long long)used[i].p.hash,
                                used[i].p.builtin ? "built-in" : "out-of-tree");
    }
    free(used);
    free(x->provenance);
    x->provenance = text;
    return PB_OK;
}

static void free_cell(pb_cell *c)
{
    free(c->config);
    free(c->model);
    free(c->arch);
    free(c->dataset);
    free(c->method);
    free(c->label);
    free(c->when);
    for (int i = 0; i < c->nargs; i++)
        free(c->args[i]);
    free(c->args_joined);
    free(c->stages_canon);
    free(c->data);
    free(c->data_label);
    for (int i = 0; i < c->ndata_args; i++)
        free(c->data_args[i]);
    free(c->data_args_joined);
    for (int i = 0; i < c->nstages; i++) {
        free((char *)c->stages[i].label);
        free((char *)c->stages[i].name);
        free((char *)c->stages[i].path);
        free((char *)c->stages[i].dataset);
    }
}

void pb_cell_free_experiments(pb_experiment *exps, int nexp)
{
    for (int e = 0; exps && e < nexp; e++) {
        for (int i = 0; i < exps[e].ncells; i++)
            free_cell(&exps[e].cells[i]);
        free(exps[e].cells);
        for (int i = 0; i < exps[e].nplots; i++)
            free(exps[e].plots[i]);
        free(exps[e].plots);
        free(exps[e].name);
        free(exps[e].where);
        free(exps[e].provenance);
    }
    free(exps);
}

void pb_cell_job(const pb_cell *c, pb_job *j)
{
    pb_job_defaults(j);
    j->model = c->arch;
    j->width = c->width;
    j->hidden = c->nhidden ? c->hidden : NULL;
    j->nhidden = c->nhidden;
    j->proto = c->proto;
    j->dataset = c->dataset;
    j->subset = c->subset;
    j->val = c->val;
    j->train = c->train;
    j->finetune = c->finetune;
    j->method = c->method;
    for (int i = 0; i < c->nargs; i++)
        j->args[i] = c->args[i];
    j->nargs = c->nargs;
    j->sparsity = c->sparsity;
    if (c->nstages > 0) {
        j->stages = c->stages;
        j->nstages = c->nstages;
    }
    if (c->data) {
        j->data_method = c->data;
        for (int i = 0; i < c->ndata_args; i++)
            j->data_args[i] = c->data_args[i];
        j->ndata_args = c->ndata_args;
        j->budget_kind = c->budget_kind;
        j->budget = c->budget;
    }
}

int pb_cell_finetune_epochs(const pb_cell *c)
{
    if (c->nstages) {
        int e = 0;
        for (int i = 0; i < c->nstages; i++)
            if (c->stages[i].kind == PB_STAGE_FINETUNE)
                e += c->stages[i].recipe ? c->stages[i].recipe->epochs : c->finetune.epochs;
        return e;
    }
    return c->when && !strcmp(c->when, "trained") ? c->finetune.epochs : 0;
}

size_t pb_cell_model_base_len(const char *model)
{
    const char *at = strstr(model, "@w");
    return at ? (size_t)(at - model) : strlen(model);
}

double pb_cell_model_width(const char *model)
{
    const char *at = strstr(model, "@w");
    return at ? strtod(at + 2, NULL) : 1.0;
}
