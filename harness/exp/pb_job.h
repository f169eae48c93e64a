/* pb_job: one run of the pipeline — build or load a model, then an ordered
 * list of stages (train, prune, finetune, calibrate, keep, load), then measure.
 * Used by the `prune` command and by every cell of a Lua experiment.
 *
 * Without an explicit list a method's `when` gives the stages:
 *   dense      train
 *   trained    train, prune, finetune      (with a loaded model: prune, finetune)
 *   init       prune, train
 *   training   prune, train                (prune() only if the plugin has one)
 *   run        prune                       (the plugin's run() drives training)
 * The plugin is bound (create, attach) at the first prune stage: every stage
 * before it is the method's own business of nobody, so the model after that
 * plugin-free prefix is cached (dense_cache) and shared by every cell with the
 * same prefix. */
#ifndef PB_JOB_H
#define PB_JOB_H

#include "engine/pb_model.h"
#include "engine/pb_train.h"
#include "host/pb_host.h"

#define PB_JOB_MAX_ARGS 32

typedef enum pb_stage_kind {
    PB_STAGE_TRAIN = 0,   /* train with a recipe (default: the job's train recipe), label "train" */
    PB_STAGE_PRUNE,       /* the method at the job's sparsity (run() for a `run` method) */
    PB_STAGE_FINETUNE,    /* train with the finetune recipe, label "finetune" */
    PB_STAGE_CALIBRATE,   /* fix the run's calibration sample: n examples of a split */
    PB_STAGE_KEEP,        /* a named read-only copy of the model (host->reference) */
    PB_STAGE_LOAD         /* values from a checkpoint file, or from a kept model */
} pb_stage_kind;

extern const char *const pb_stage_names[]; /* "train", "prune", ... NULL-terminated */

#define PB_STAGE_MAX_CLASSES 64 /* derived tasks address classes 0..63 */

typedef struct pb_stage {
    pb_stage_kind kind;
    const char *label;         /* train/finetune: the curves' phase (NULL: the kind's name) */
    const char *name;          /* keep: the copy's name; load: a kept model's name */
    const char *path;          /* load: a checkpoint file (instead of name) */
    const char *dataset;       /* train/finetune/calibrate: another data set of the same shape (NULL: the job's) */
    int subset;                /* of that data: the first k training examples (0: all) */
    uint64_t permute;          /* a derived task: labels permuted by this seed (0: none) */
    const pb_train_cfg *recipe;/* train/finetune: NULL = the job's train / finetune recipe */
    int n;                     /* calibrate: examples (0: 128) */
    int split;                 /* calibrate: 0 the training set, 1 the held-out validation set */
    /* derived tasks, applied in this order after `subset`, before `permute`: */
    uint64_t classes;          /* train/finetune: keep examples of the classes whose bit is set (0: all) */
    int nlabel_map;            /* train/finetune: label y becomes label_map[y] (0: no map) */
    int label_map[PB_STAGE_MAX_CLASSES];
} pb_stage;

#define PB_JOB_MAX_STAGES 16

typedef struct pb_metric {
    char name[64];
    double value;
} pb_metric;

#define PB_JOB_MAX_METRICS 64

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

    const pb_stage *stages;    /* NULL: the default list for the method's `when` (see above) */
    int nstages;

    const char *method;        /* NULL or "dense": no pruning */
    const char *args[PB_JOB_MAX_ARGS]; /* "name=value" for the plugin */
    int nargs;
    double sparsity;
    const char *plugin_path;   /* extra directory searched first */

    /* The model after the plugin-free prefix of the stages (for the default
     * lists: the trained dense model): read if the file exists, else made and
     * written here (atomically), with FILE.cost (its wall seconds and FLOPs)
     * and FILE.keep-NAME for each model the prefix kept. May be NULL. */
    const char *dense_cache;
    const char *save;          /* checkpoint of the final model */

    void (*on_curve)(void *ud, const pb_curve_rec *r);
    void *ud;

    /* Data selection (pb_datasel): a data method choosing the examples of
     * every epoch of the train stages, with its "name=value" arguments, and a
     * budget of the train stage (pb_budget_kind; 0: none). NULL: all data. */
    const char *data_method;
    const char *data_args[PB_JOB_MAX_ARGS];
    int ndata_args;
    int budget_kind;
    double budget;
} pb_job;

void pb_job_defaults(pb_job *j);

typedef struct pb_job_result {
    double test_acc, test_loss;
    size_t params, nonzero;          /* all stored parameters */
    size_t prunable, prunable_nonzero;
    double sparsity;                 /* of prunable weights */
    double flops_dense, flops_eff;   /* inference, per example */
    double flops_dense_orig;         /* of the unpruned architecture (structured pruning shrinks it) */
    size_t stored;                   /* values the model must store: nonzero weights and biases,
                                      * BN parameters and statistics, shared arrays (not the
                                      * weights generated from them) */
    double wall_s, train_flops;      /* the cell's own work, after the cached prefix */
    double prefix_wall_s, prefix_flops; /* the plugin-free prefix (pre-training), cached or not */
    double probe_flops;              /* the cell's gradients, calibration, scoring (not training) */
    double cost_wall_s, cost_flops;  /* everything the result depends on: prefix + own (+ probes) */
    double time_to_target_s;         /* -1: target not reached or none; on the curves' clock,
                                      * which includes the prefix */
    int dense_from_cache;
    int nmetrics;
    pb_metric metrics[PB_JOB_MAX_METRICS]; /* host->metric() figures, in order */
    int nlayers;
    pb_layer_stat layers[PB_MAX_PARAMS];
    double pruned_acc, pruned_loss;  /* test split right after the last prune stage of a trained
                                      * model, before any fine-tuning (-1: none evaluated) */
    /* inference speed of the final model (pb_infer): latency at batch 1 and
     * throughput at batch 128, as executed and on the dense kernels; -1:
     * not measured */
    double infer_us_b1, infer_us_b1_dense, infer_ips_b128, infer_ips_b128_dense;
} pb_job_result;

int pb_job_run(const pb_job *j, pb_job_result *res, char *err, size_t errlen);

/* The stages a job runs: j->stages, or the default list for `when` (a
 * pb_when, -1 for no method) and whether a model is loaded. Returns the count. */
int pb_job_default_stages(int when, int loaded, pb_stage *out);
/* Parses "train,keep=base,finetune,prune,calibrate=256,load=NAME|FILE" (the
 * text is split in place and must outlive the stages) into out[0..*count-1]. */
int pb_job_parse_stages(char *text, pb_stage *out, int max, int *count, char *err, size_t errlen);
/* The number of leading stages before the first prune stage (the cacheable prefix). */
int pb_job_prefix_len(const pb_stage *st, int n);
/* A canonical text of stages [0, n) for cache keys: "" for the default
 * [train] prefix, so keys of earlier runs stay valid. */
void pb_job_stages_canon(const pb_stage *st, int n, char *buf, size_t len);

#endif
