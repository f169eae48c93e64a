/* pb_host: the host side of the plugin ABI — the context a plugin acts on and
 * the table of host functions (pb_host) it calls. */
#ifndef PB_HOST_H
#define PB_HOST_H

#include "engine/pb_data.h"
#include "engine/pb_model.h"
#include "pb_plugin.h"
#include "engine/pb_train.h"

#define PB_SNAPSHOTS 8

/* One row of a run's curves: an evaluation after an epoch, a round or a prune. */
typedef struct pb_curve_rec {
    const char *phase;     /* "train", "finetune", "round" (iterative methods), "prune" */
    int index;             /* epoch (1-based) or round */
    long step;
    double wall_s;         /* since the job started */
    double train_flops;    /* accumulated over the job */
    double sparsity;
    double test_acc, test_loss;
} pb_curve_rec;


typedef struct pb_gen_slot {
    pb_ctx *ctx;
    int index;            /* prunable tensor */
    pb_generator gen;
} pb_gen_slot;

struct pb_ctx {
    pb_model *m;                    /* the caller's model; remove_units rebuilds it in place */
    const pb_dataset *train, *test;
    pb_train_cfg cfg;               /* recipe of host->train() */
    const pb_loaded *plugin;        /* NULL when no plugin is bound */
    void *state;
    pb_rng rng;
    uint64_t seed;
    char *err;
    size_t errlen;
    const char *phase;              /* "train" / "finetune": label of curve rows */
    float **init;                   /* values of every parameter at initialization */
    float **snap[PB_SNAPSHOTS];     /* host->snapshot() copies, per parameter */
    int *grad_idx;                  /* examples of the last grad() (for hvp) */
    int grad_n;
    double grad_temp;
    long steps;                     /* optimizer steps over all of this context's training */
    long total_steps;               /* of the training in progress */
    double t0, train_flops;         /* job clock and accumulated training FLOPs */
    pb_gen_slot gens[PB_MAX_PARAMS];
    float *scratch[PB_MAX_PARAMS];  /* host->scores(), sized to the prunable tensors */
    int nscratch;
    void (*on_curve)(void *ud, const pb_curve_rec *r);
    void *curve_ud;
};

extern const pb_host pb_host_table;

/* Sets up a context over m (masks created), remembering m's current values as
 * its initialization. err must stay valid for the context's life. */
int pb_ctx_init(pb_ctx *c, pb_model *m, const pb_dataset *train, const pb_dataset *test,
                const pb_train_cfg *cfg, uint64_t seed, char *err, size_t errlen);
void pb_ctx_free(pb_ctx *c);

/* Binds a loaded plugin: create() with parsed args, then attach(). */
int pb_ctx_bind(pb_ctx *c, const pb_loaded *p, const double *args);
/* The plugin's prune / run hook. */
int pb_ctx_prune(pb_ctx *c, double sparsity);
int pb_ctx_run(pb_ctx *c, double sparsity);
/* Trains with c->cfg (epochs < 0: cfg's) with the plugin's training hooks. */
int pb_ctx_train(pb_ctx *c, int epochs, const char *phase, pb_train_result *res);

#endif
