/* pb_host: the host side of the plugin ABI — the context a plugin acts on and
 * the table of host functions (pb_host) it calls. The table's entries live in
 * this module (messages, model views, training, snapshots, kept models,
 * results, utilities) and in pb_mask (mask selection), pb_probe (gradients,
 * curvature, calibration, per-example statistics) and pb_surgery (removing
 * units). */
#ifndef PB_HOST_H
#define PB_HOST_H

#include "engine/pb_data.h"
#include "engine/pb_model.h"
#include "engine/pb_train.h"
#include "pb_plugin.h"

#define PB_SNAPSHOTS 8
#define PB_MAX_KEPT 4

/* One row of a run's curves: an evaluation after an epoch, a round or a prune. */
typedef struct pb_curve_rec {
    const char *phase;     /* "train", "finetune", "round" (iterative methods), "prune", a plugin's label */
    int index;             /* epoch (1-based) or round */
    long step;
    double wall_s;         /* since the job started */
    double train_flops;    /* accumulated over the job */
    double sparsity;
    double test_acc, test_loss;
    double train_s;        /* the epoch's training loop alone (0 for rows that are not epochs) */
    double eval_s;         /* test-set evaluations so far on the job's clock (wall_s - eval_s: training clock) */
    double probe_flops;    /* accumulated probe FLOPs (scoring, gradients) over the job */
} pb_curve_rec;

typedef struct pb_gen_slot {
    pb_ctx *ctx;
    int index;            /* prunable tensor */
    pb_generator gen;
} pb_gen_slot;

/* A named read-only copy of the model (a `keep` stage), for host->reference. */
typedef struct pb_kept {
    char name[32];
    pb_model m;
} pb_kept;

struct pb_ctx {
    pb_model *m;                    /* the caller's model; remove_units rebuilds it in place */
    const pb_dataset *train, *test;
    const pb_dataset *val;          /* the held-out split for early stopping (NULL: none) */
    const pb_dataset *calib_set;    /* calibration examples (NULL: train) */
    pb_train_cfg cfg;               /* recipe of host->train() */
    const pb_loaded *plugin;        /* NULL when no plugin is bound */
    const char *const *argv;        /* the plugin's "name=value" arguments (string parameters) */
    int argc;
    void *state;
    pb_rng rng;
    uint64_t seed;
    char *err;
    size_t errlen;
    const char *phase;              /* label of curve rows of the training in progress */
    float **init;                   /* values of the first ninit parameters at initialization */
    int ninit;
    float **snap[PB_SNAPSHOTS];     /* host->snapshot() copies of the first nsnap[s] parameters */
    int nsnap[PB_SNAPSHOTS];
    int *grad_idx;                  /* examples of the last grad() (for hvp) */
    int grad_n;
    double grad_temp;
    int *calib_idx;                 /* the run's calibration sample */
    int calib_n;
    int calib_fixed;                /* set by a calibrate stage: calibrate() always uses it */
    pb_kept kept[PB_MAX_KEPT];
    int nkept;
    long steps;                     /* optimizer steps over all of this context's training */
    long total_steps;               /* of the training in progress */
    double t0, train_flops;         /* job clock and accumulated training FLOPs */
    double probe_flops;             /* gradients, curvature, calibration, scoring outside training */
    pb_gen_slot gens[PB_MAX_PARAMS];
    float *scratch[PB_MAX_PARAMS];  /* host->scores(), sized to the prunable tensors */
    int nscratch;
    void (*on_curve)(void *ud, const pb_curve_rec *r);
    void (*on_metric)(void *ud, const char *name, double value);
    void *curve_ud;                 /* for on_curve and on_metric */
    struct pb_datasel *data;        /* a data-selection method beside the plugin (pb_datasel), or NULL */
    double eval_s;                  /* seconds spent evaluating the test set after epochs */
};

extern const pb_host pb_host_table;

/* Sets up a context over m (masks created), remembering m's current values as
 * its initialization. err must stay valid for the context's life. */
int pb_ctx_init(pb_ctx *c, pb_model *m, const pb_dataset *train, const pb_dataset *test,
                const pb_train_cfg *cfg, uint64_t seed, char *err, size_t errlen);
void pb_ctx_free(pb_ctx *c);

/* Binds a loaded plugin: create() with parsed args, then attach(). String
 * parameters are read from c->argv (set it first). */
int pb_ctx_bind(pb_ctx *c, const pb_loaded *p, const double *args);
/* create() then destroy() on the context as it is (before any training), so
 * that a plugin refuses its arguments early; the context stays unbound. */
int pb_ctx_check_args(pb_ctx *c, const pb_loaded *p, const double *args);
/* The plugin's prune / run hook. */
int pb_ctx_prune(pb_ctx *c, double sparsity);
int pb_ctx_run(pb_ctx *c, double sparsity);
/* Trains with c->cfg (epochs < 0: cfg's) with the plugin's training hooks. */
int pb_ctx_train(pb_ctx *c, int epochs, const char *phase, pb_train_result *res);

/* Keeps a read-only copy of src (NULL: the model as it is now) under name,
 * replacing one of that name. */
int pb_ctx_keep(pb_ctx *c, const char *name, const pb_model *src);
const pb_kept *pb_ctx_kept(const pb_ctx *c, const char *name);

/* An error of the plugin's: "method NAME: message", status PB_EPLUGIN. */
int pb_ctx_fail(pb_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Forgets every copy made with the model's old shapes (snapshots, the init
 * copy, scratch scores): remove_units calls it before replacing the model. */
void pb_ctx_forget_values(pb_ctx *c);
/* A curve row at the current step (the job's prune row, a plugin's record()). */
void pb_ctx_emit(pb_ctx *c, const char *phase, int index, double acc, double loss);

#endif
