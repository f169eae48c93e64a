/* pb_job: one run of the pipeline — build or load a model, train, prune with a
 * plugin at the moment it asks for, fine-tune, measure. Used by the `prune`
 * command and by every cell of a Lua experiment. */
#ifndef PB_JOB_H
#define PB_JOB_H

#include "engine/pb_model.h"
#include "engine/pb_train.h"
#include "host/pb_host.h"

#define PB_JOB_MAX_ARGS 32

typedef struct pb_layer_stat {
    char name[48];
    size_t n, nonzero;
} pb_layer_stat;

typedef struct pb_job {
    /* the model: a named architecture, or a prototype built by the caller (Lua) */
    const char *model;
    double width;
    const int *hidden;
    int nhidden;
    const pb_model *proto;     /* if non-NULL, cloned instead of building `model` */
    const char *load;          /* start from this checkpoint (trained dense model) */

    const char *dataset, *data_dir;
    int subset, val;
    int threads;

    pb_train_cfg train;        /* from scratch (dense pre-training, or sparse training) */
    pb_train_cfg finetune;     /* after pruning a trained model */

    const char *method;        /* NULL or "dense": no pruning */
    const char *args[PB_JOB_MAX_ARGS]; /* "name=value" for the plugin */
    int nargs;
    double sparsity;
    const char *plugin_path;   /* extra directory searched first */

    /* A trained dense model for (model, dataset, seed, recipe): read if the
     * file exists, else trained and written here (atomically). May be NULL. */
    const char *dense_cache;
    const char *save;          /* checkpoint of the final model */

    void (*on_curve)(void *ud, const pb_curve_rec *r);
    void *ud;
} pb_job;

void pb_job_defaults(pb_job *j);

typedef struct pb_job_result {
    double test_acc, test_loss;
    size_t params, nonzero;          /* all stored parameters */
    size_t prunable, prunable_nonzero;
    double sparsity;                 /* of prunable weights */
    double flops_dense, flops_eff;   /* inference, per example */
    double flops_dense_orig;         /* of the unpruned architecture (structured pruning shrinks it) */
    double wall_s, train_flops;
    double time_to_target_s;         /* -1: target not reached or none */
    int dense_from_cache;
    int nlayers;
    pb_layer_stat layers[PB_MAX_PARAMS];
} pb_job_result;

int pb_job_run(const pb_job *j, pb_job_result *res, char *err, size_t errlen);

#endif
