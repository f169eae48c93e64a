/* pb_lua: the embedded Lua 5.4 state that runs experiment scripts — the C
 * bindings the prelude (lua/prelude.lua) builds on, and the conversion of the
 * expanded matrix into cells. */
#ifndef PB_LUA_H
#define PB_LUA_H

#include <stddef.h>
#include <stdint.h>

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
} pb_cell;

typedef struct pb_experiment {
    char *name;
    char *where;              /* "script.lua:12" */
    pb_cell *cells;
    int ncells;
    char **plots;
    int nplots;
} pb_experiment;

typedef struct pb_lua pb_lua;

/* Opens a state with the standard libraries and the prelude. plugin_path and
 * data_dir may be NULL. */
int pb_lua_open(pb_lua **out, const char *plugin_path, const char *data_dir, char *err,
                size_t errlen);
/* Runs a script and returns its expanded experiments. A Lua error is returned
 * as PB_EUSAGE with err = "file.lua:LINE: message" (plus a traceback if
 * with_traceback). */
int pb_lua_run(pb_lua *s, const char *script, pb_experiment **exps, int *nexp, char *err,
               size_t errlen);
void pb_lua_free_experiments(pb_experiment *exps, int nexp);
void pb_lua_close(pb_lua *s);

/* The canonical configuration strings and their hashes (exposed for tests). */
int pb_cell_finish(pb_cell *c, char *err, size_t errlen);

/* Fills a pb_job from a cell (paths and callbacks are left to the caller). */
void pb_cell_job(const pb_cell *c, pb_job *j);

#endif
