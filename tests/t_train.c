/* t_train: early stopping in the training loop — the model ends with the
 * weights of the epoch of lowest validation loss, the choice is the minimum
 * of the losses it saw, a missing validation split is refused, and the
 * recipe's text (cell hashes) changes only when early stopping is on. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/pb_data.h"
#include "engine/pb_model.h"
#include "engine/pb_par.h"
#include "engine/pb_train.h"
#include "tap.h"

static pb_dataset train, val, test;

typedef struct seen {
    int n;
    double val_loss[64];
} seen;

static int on_epoch(void *ud, pb_model *m, const pb_epoch_rec *rec, char *err, size_t errlen)
{
    (void)m;
    (void)err;
    (void)errlen;
    seen *s = ud;
    if (s->n < 64)
        s->val_loss[s->n++] = rec->val_loss;
    return PB_OK;
}

static int mlp(pb_model *m, char *err, size_t errlen)
{
    static const int hidden[] = {32};
    int rc = pb_model_build(m, "mlp", 1.0, hidden, 1, 1, 8, 8, 4, err, errlen);
    if (rc == PB_OK)
        rc = pb_model_finalize(m, 16, err, errlen);
    if (rc == PB_OK)
        pb_model_init_weights(m, 3);
    return rc;
}

int main(void)
{
    char err[PB_ERRLEN];
    tap_plan(5);
    pb_par_use_threads(1);
    if (pb_data_synthetic_task(&train, 96, 1, 8, 8, 4, 21, 1, err, sizeof err) != PB_OK ||
        pb_data_synthetic_task(&val, 200, 1, 8, 8, 4, 21, 3, err, sizeof err) != PB_OK ||
        pb_data_synthetic_task(&test, 200, 1, 8, 8, 4, 21, 2, err, sizeof err) != PB_OK) {
        printf("Bail out! synthetic data: %s\n", err);
        return 1;
    }
    /* few examples and a large rate: the model overfits and the validation
     * loss turns upwards within the epochs given */
    pb_train_cfg cfg;
    pb_train_defaults(&cfg);
    cfg.epochs = 30;
    cfg.batch = 16;
    cfg.opt.lr = 0.02;
    cfg.log_epochs = 0;
    cfg.eval_every = 0;
    cfg.early_stop = 1;

    pb_model m;
    int rc = mlp(&m, err, sizeof err);
    pb_train_result res;
    rc = rc ? rc : pb_train(&m, &train, &test, &cfg, NULL, &res, err, sizeof err);
    ok(rc == PB_EUSAGE && strstr(err, "validation split"), "early stopping without a validation split is refused (%s)",
       err);

    seen s = {0};
    pb_train_hooks hooks = {.ud = &s, .epoch_end = on_epoch};
    cfg.val = &val;
    rc = pb_train(&m, &train, &test, &cfg, &hooks, &res, err, sizeof err);
    int argmin = 0;
    for (int i = 1; i < s.n; i++)
        if (s.val_loss[i] < s.val_loss[argmin])
            argmin = i;
    ok(rc == PB_OK && s.n == 30 && res.best_epoch == argmin + 1 && res.best_val_loss == s.val_loss[argmin],
       "the epoch kept is the one of lowest validation loss (epoch %d of %d, val_loss %.4f; last %.4f)",
       res.best_epoch, s.n, res.best_val_loss, s.n ? s.val_loss[s.n - 1] : -1.0);
    ok(rc == PB_OK && res.best_epoch > 1 && res.best_epoch < 30,
       "the validation loss fell, then rose: the weights kept are from the middle of the run");
    double va, vl, ta, tl;
    rc = rc ? rc : pb_evaluate(&m, &val, 16, &va, &vl, err, sizeof err);
    rc = rc ? rc : pb_evaluate(&m, &test, 16, &ta, &tl, err, sizeof err);
    ok(rc == PB_OK && vl == res.best_val_loss && ta == res.test_acc && tl == res.test_loss,
       "the model ends with that epoch's weights: its validation loss again (%.6f) and the reported test figures",
       vl);

    char a[512], b[512];
    cfg.early_stop = 0;
    pb_train_canon(&cfg, a, sizeof a);
    cfg.early_stop = 1;
    pb_train_canon(&cfg, b, sizeof b);
    ok(!strstr(a, "early_stop") && strstr(b, ",early_stop=1") && !strncmp(a, b, strlen(a)),
       "the recipe's text is unchanged without early stopping and gains early_stop=1 with it");
    pb_model_free(&m);
    pb_data_free(&train);
    pb_data_free(&val);
    pb_data_free(&test);
    return tap_done();
}
