/* pb_cell: one cell of an experiment matrix and the experiment that holds the
 * cells — the canonical configuration string of a cell, its hash (the name of
 * its result files) and the key of the dense model it starts from, and the
 * pb_job a cell runs. The Lua reader (pb_lua) fills cells; the runner runs them. */
#ifndef PB_CELL_H
#define PB_CELL_H

#include <stddef.h>

#include "pb_job.h"
#include "engine/pb_model.h"
#include "engine/pb_train.h"

/* One cell of an experiment matrix, fully resolved. Strings are owned by the
 * experiment; proto is owned by the Lua state (alive until pb_lua_close). */
typedef struct pb_cell {
    char hash[17];            /* 16 hex digits of pb_hash64(config) */
    char dense_key[17];       /* hash of what determines the trained dense model */
    char *config;             /* the canonical configuration string */
    char *model;              /* display name: "lenet300", "lenet300@w0.5", a Lua model's name */
    char *arch;               /* named architecture for pb_job, or NULL with proto */
    double width;
    int hidden[PB_MAX_HIDDEN];
    int nhidden;
    const pb_model *proto;    /* a model defined in Lua, or NULL */
    char *dataset;
    int subset, val;
    char *method, *label;
    char *when;               /* "dense", "trained", "init", "training", "run" */
    char *args[PB_JOB_MAX_ARGS];
    int nargs;
    char *args_joined;        /* "a=1 b=2" */
    double sparsity;
    long seed;
    pb_train_cfg train, finetune;
    double target;
    /* for cost estimates */
    double params, flops, train_flops_ex;   /* per example */
    int ntrain;
    /* an explicit pipeline (nstages 0: the method's default); the strings
     * and recipes the stages point to are the cell's own */
    pb_stage stages[PB_JOB_MAX_STAGES];
    pb_train_cfg stage_recipe[PB_JOB_MAX_STAGES];
    int nstages;
    char *stages_canon;       /* pb_job_stages_canon of all stages, "" for none */
    /* the data axis: a data-selection method (NULL: all the data) with its
     * "name=value" arguments, its display label ("rs2 r=0.1"), its fraction
     * (1 without one) and the train stage's budget (a pb_budget_kind) */
    char *data, *data_label;
    char *data_args[PB_JOB_MAX_ARGS];
    int ndata_args;
    char *data_args_joined;
    double data_fraction;
    int budget_kind;
    double budget;
    double timeout_s;         /* the cell's wall-clock limit (train.timeout; 0: none); not in the hash */
} pb_cell;

typedef struct pb_experiment {
    char *name;
    char *where;              /* "script.lua:12" */
    pb_cell *cells;
    int ncells;
    char **plots;
    int nplots;
    char *provenance;         /* "plugin: NAME PATH fnv1a64=HEX built-in|out-of-tree" lines, or NULL */
} pb_experiment;

/* Computes c->config (the canonical configuration string), c->hash and
 * c->dense_key. On entry c->config may hold a Lua model's canonical
 * description (it is replaced). The strings are stable across versions:
 * results directories of earlier runs resume by these hashes. */
int pb_cell_finish(pb_cell *c, char *err, size_t errlen);

/* Finds the file of every method and data-selection plugin the cells use,
 * hashes it (pb_plugin_provenance) and fills x->provenance. A cell whose
 * plugin is out-of-tree (not one of prunebench's own) gets the file's hash in
 * its configuration, so a rebuilt plugin makes new cells instead of reusing
 * the old plugin's results; a data plugin's hash also goes into the dense
 * key. Built-in plugins leave the hashes as they were: they are named by the
 * build, whose revision each cell's `build` column records, and their files
 * differ between compilers, so hashing them would orphan every earlier
 * results directory. */
int pb_cell_provenance(pb_experiment *x, const char *plugin_path, char *err, size_t errlen);

/* Fills a pb_job from a cell (paths and callbacks are left to the caller). */
void pb_cell_job(const pb_cell *c, pb_job *j);

/* The fine-tune epochs a cell runs: those of its finetune stages, or with the
 * method's default stages the finetune recipe's when the method prunes a
 * trained model; 0 for the dense model and for methods that train after
 * pruning (init, training) or drive their own training (run). */
int pb_cell_finetune_epochs(const pb_cell *c);

/* Frees the experiments and their cells (not a cell's proto). NULL is allowed. */
void pb_cell_free_experiments(pb_experiment *exps, int nexp);

/* Length of the base model's name in a display name: a width-scaled model
 * is NAME@wX (the prelude names it so), anything else is its own base. */
size_t pb_cell_model_base_len(const char *model);
/* The width of a display name: X of NAME@wX, 1 for a name without one. */
double pb_cell_model_width(const char *model);

#endif
