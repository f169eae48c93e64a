/* pb_train: the training loop, evaluation, per-epoch records and the hooks
 * through which pruning methods act during training. */
#ifndef PB_TRAIN_H
#define PB_TRAIN_H

#include <stdio.h>

#include "pb_data.h"
#include "pb_model.h"
#include "pb_optim.h"

typedef struct pb_train_cfg {
    int epochs;
    int batch;
    pb_optim_cfg opt;
    uint64_t seed;          /* shuffling, dropout */
    int eval_every;         /* evaluate the test set every k epochs (0: only at the end) */
    int progress;           /* 1: an updating progress line on stderr (a terminal) */
    int log_epochs;         /* 1: one line per epoch on stderr */
    long max_steps;         /* stop after this many steps (0: no limit) */
    double target_acc;      /* record the first time test accuracy reaches it (0: none); for a
                             * language model (ntok > 1), test perplexity falls to it */
    const char *label;      /* prefix for log lines */
    /* Early stopping: evaluate `val` after every epoch and end with the weights
     * (and BN statistics) of the epoch of lowest validation loss. */
    int early_stop;
    const pb_dataset *val;  /* the validation split (set by the caller; not part of the recipe's text) */
    double deadline;        /* pb_now() at which training stops after the step in progress (0: none) */
} pb_train_cfg;

void pb_train_defaults(pb_train_cfg *c);
/* The recipe as a canonical text (what determines the trained model; not
 * seed, target, logging) for configuration hashes. */
void pb_train_canon(const pb_train_cfg *c, char *buf, size_t n);

typedef struct pb_epoch_rec {
    int epoch;              /* 1-based */
    long step;              /* optimizer steps so far */
    double wall_s;          /* since training started */
    double train_flops;     /* accumulated */
    double sparsity;        /* of prunable weights */
    double train_loss;      /* mean over the epoch */
    double test_acc;        /* -1 when not evaluated */
    double test_loss;
    double train_s;         /* this epoch's training loop alone (steps and step hooks), without evaluation */
    double val_loss;        /* early_stop: on the validation split; -1 otherwise */
    double eval_s;          /* this epoch's evaluation of the test set */
} pb_epoch_rec;

/* Hooks: any may be NULL. Each returns PB_OK or an error code (with err filled),
 * which stops training with that error. */
typedef struct pb_train_hooks {
    void *ud;
    /* Choose the examples of this epoch (data pruning): fill idx[0..*n-1] from
     * [0, n_total); *n starts at n_total. Default: all, shuffled. */
    int (*select)(void *ud, pb_model *m, int epoch, int n_total, int *idx, int *n, char *err,
                  size_t errlen);
    int (*before_step)(void *ud, pb_model *m, long step, char *err, size_t errlen);
    int (*after_step)(void *ud, pb_model *m, long step, char *err, size_t errlen);
    int (*epoch_end)(void *ud, pb_model *m, const pb_epoch_rec *rec, char *err, size_t errlen);
    /* If set, receives the number of optimizer steps the training will take:
     * before the first step and again after each select(), as the steps so far
     * plus this epoch's batches times the epochs left, bounded by max_steps
     * (exact when every epoch selects the same number of examples). */
    long *total_steps;
} pb_train_hooks;

typedef struct pb_train_result {
    int epochs_done;
    long steps;
    double wall_s, train_flops;
    double test_acc, test_loss;
    double time_to_target_s;   /* -1 if the target was not reached */
    int epoch_to_target;
    /* early_stop: the epoch (1-based) and step whose weights the model ends
     * with, and its validation loss; 0 / -1 without early stopping */
    int best_epoch;
    long best_step;
    double best_val_loss;
} pb_train_result;

/* Trains m on train, evaluating on test (may be NULL). Returns PB_ENUM if the
 * loss becomes NaN or infinite, naming the epoch and step. */
int pb_train(pb_model *m, const pb_dataset *train, const pb_dataset *test, const pb_train_cfg *cfg,
             const pb_train_hooks *hooks, pb_train_result *res, char *err, size_t errlen);

/* Input and label buffers for batches of up to `cap` examples of one data set. */
typedef struct pb_batch {
    float *x;   /* cap * c*h*w */
    int *y;     /* cap */
    int cap;
} pb_batch;

int pb_batch_init(pb_batch *b, const pb_dataset *d, int cap, char *err, size_t errlen);
void pb_batch_free(pb_batch *b);

/* Accuracy and mean loss of m on d (eval mode). */
int pb_evaluate(pb_model *m, const pb_dataset *d, int batch, double *acc, double *loss, char *err,
                size_t errlen);

/* Gradient of the mean loss over examples idx[0..n-1] into the params' g
 * (zeroed first), in batches; loss returned in *loss. Used by SNIP, GraSP, Fisher. */
int pb_model_grad_on(pb_model *m, const pb_dataset *d, const int *idx, int n, float temperature,
                     double *loss, char *err, size_t errlen);

/* Prints the standard result line:
 * result: test_acc=... test_loss=... params=... nonzero=... flops=... sparsity=... wall_s=...
 * and, for a language model, test_ppl=... test_bpb=... (per token, from the loss in nats). */
void pb_print_result(FILE *f, const pb_model *m, double acc, double loss, double wall_s);

#endif
