/* pb_optim: SGD (momentum, Nesterov, weight decay), Adam, learning-rate schedules.
 * Masked weights stay exactly zero: their gradient, optimizer state and value
 * are zeroed at every step. */
#ifndef PB_OPTIM_H
#define PB_OPTIM_H

#include "pb_model.h"

/* ADAMW: Adam with decoupled weight decay (Loshchilov & Hutter): w -= lr * wd * w
 * besides the Adam step, instead of wd * w added to the gradient. */
typedef enum { PB_OPT_SGD = 0, PB_OPT_ADAM, PB_OPT_ADAMW, PB_OPT_KINDS } pb_opt_kind;
typedef enum {
    PB_SCHED_CONSTANT = 0,
    PB_SCHED_STEP,    /* lr * gamma^(floor(epoch / step_epochs)) */
    PB_SCHED_COSINE,  /* lr * (1 + cos(pi * t / T)) / 2, stepped per iteration */
    PB_SCHED_LINEAR,  /* lr * (1 - t / T), stepped per iteration */
    PB_SCHED_KINDS
} pb_sched_kind;

extern const char *const pb_opt_names[];   /* NULL-terminated */
extern const char *const pb_sched_names[]; /* NULL-terminated */

typedef struct pb_optim_cfg {
    pb_opt_kind kind;
    double lr, momentum, wd;
    int nesterov;
    double beta1, beta2, eps;  /* Adam */
    pb_sched_kind sched;
    int step_epochs;           /* STEP */
    double gamma;              /* STEP */
    long warmup_steps;         /* linear warm-up from 0 over the first steps, any schedule */
} pb_optim_cfg;

void pb_optim_defaults(pb_optim_cfg *c);
/* Looks up a name in a NULL-terminated table; -1 and err listing the valid names if absent. */
int pb_name_lookup(const char *const *names, const char *what, const char *name, char *err,
                   size_t errlen);

typedef struct pb_optim {
    pb_optim_cfg cfg;
    long t;            /* steps taken */
} pb_optim;

int pb_optim_init(pb_optim *o, pb_model *m, const pb_optim_cfg *cfg, char *err, size_t errlen);
/* Learning rate at step `step` (0-based) of total_steps, with steps_per_epoch. */
double pb_optim_lr(const pb_optim_cfg *c, long step, long total_steps, long steps_per_epoch);
/* One update of every trainable parameter from its gradient. */
void pb_optim_step(pb_optim *o, pb_model *m, double lr);
/* Clears momentum/Adam state (e.g. after rewinding weights). */
void pb_optim_reset(pb_optim *o, pb_model *m);

#endif
