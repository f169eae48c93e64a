/* pb_datasel: the data-selection binding of a context — a second plugin, of
 * kind PB_KIND_DATA, that chooses the examples of every epoch ("round") of a
 * cell's training stages while the context's own plugin prunes weights.
 *
 * The context binds one plugin (c->plugin, c->state, c->argv, c->rng). While a
 * data plugin's hook runs, this module swaps its binding in (and the weight
 * plugin's out), so every host function names, parameterizes and seeds the
 * data plugin, and a scoring run it trains (host->train_phase in attach) runs
 * none of the weight plugin's hooks. The binding is made lazily, at the first
 * training that selects data: attach() may train and score a model (EL2N,
 * GraNd, forgetting events); afterwards the model's values, masks and BN
 * statistics and the context's step count are put back, so the cell trains
 * from the model it had. The scoring run's time and FLOPs stay in the job's
 * clock and counters: they are part of the cell's cost.
 *
 * A budget bounds the training stage: optimizer steps, full-data epochs
 * (each ceil(N / batch) steps) or seconds on the job's clock (which includes
 * the scoring run). */
#ifndef PB_DATASEL_H
#define PB_DATASEL_H

#include "engine/pb_train.h"
#include "pb_plugin.h"

typedef enum pb_budget_kind {
    PB_BUDGET_NONE = 0,
    PB_BUDGET_STEPS,
    PB_BUDGET_EPOCHS,   /* full-data epochs */
    PB_BUDGET_SECONDS
} pb_budget_kind;

extern const char *const pb_budget_names[]; /* "none", "steps", "epochs", "seconds", NULL */

#define PB_DATASEL_MAX_ARGS 32

typedef struct pb_datasel {
    pb_loaded plugin;
    double args[64];
    const char *argv[PB_DATASEL_MAX_ARGS];
    int argc;
    void *state;
    pb_rng rng;
    int bound;                 /* create() and attach() have run */
    int on;                    /* the training in progress selects data (a train stage) */
    pb_budget_kind budget_kind;
    double budget;
    double fraction;           /* the plugin's `fraction` parameter (1 without one) */
} pb_datasel;

struct pb_ctx;

/* Loads data method `name` with "k=v" args and a budget, refusing a weight
 * method, unknown parameters, a fraction outside (0, 1] and a budget that is
 * not a positive number. The strings must outlive ds. */
int pb_datasel_open(pb_datasel *ds, const char *name, const char *const *args, int nargs, const char *plugin_path,
                    pb_budget_kind budget_kind, double budget, char *err, size_t errlen);
/* Refuses a budget that cannot be met on ntrain examples in batches of
 * `batch` (fewer than one step) or a recipe that already bounds its steps. */
int pb_datasel_check_budget(const pb_datasel *ds, int ntrain, const pb_train_cfg *cfg, char *err, size_t errlen);
/* Destroys the plugin's state and closes it. */
void pb_datasel_close(pb_datasel *ds);

/* Called by pb_ctx_train before a training that selects data: binds the
 * plugin on first use (create, attach with its scoring run, model restored),
 * then bounds cfg by the budget. */
int pb_datasel_begin(struct pb_ctx *c, pb_train_cfg *cfg);
/* The plugin's select hook for one epoch, checked: 1 <= *n <= n_total, every
 * index in [0, n_total). */
int pb_datasel_select(struct pb_ctx *c, int epoch, int n_total, int *idx, int *n);

#endif
