/* pb_cost: the cost model of an experiment. */
#include "pb_cost.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "host/pb_datasel.h"

int openblas_get_num_threads(void);
void openblas_set_num_threads(int);

/* An explicit pipeline: the epochs of its training stages after the cached prefix. */
static double stages_cost(const pb_cell *c, int *needs_dense)
{
    double per_epoch = c->train_flops_ex * (double)c->ntrain, cost = 0;
    int prefix = pb_job_prefix_len(c->stages, c->nstages), cache = 0;
    for (int i = 0; i < c->nstages; i++) {
        const pb_stage *s = &c->stages[i];
        if (s->kind != PB_STAGE_TRAIN && s->kind != PB_STAGE_FINETUNE)
            continue;
        int ep = s->recipe ? s->recipe->epochs : s->kind == PB_STAGE_TRAIN ? c->train.epochs : c->finetune.epochs;
        if (i < prefix)
            cache = 1;
        else
            cost += per_epoch * ep;
    }
    if (needs_dense)
        *needs_dense = cache;
    return cost;
}

/* The FLOPs of an explicit pipeline's cached prefix (counted once per key). */
static double prefix_cost(const pb_cell *c)
{
    double per_epoch = c->train_flops_ex * (double)c->ntrain, cost = 0;
    int prefix = pb_job_prefix_len(c->stages, c->nstages);
    for (int i = 0; i < prefix; i++) {
        const pb_stage *s = &c->stages[i];
        if (s->kind == PB_STAGE_TRAIN || s->kind == PB_STAGE_FINETUNE)
            cost += per_epoch * (s->recipe ? s->recipe->epochs
                                           : s->kind == PB_STAGE_TRAIN ? c->train.epochs : c->finetune.epochs);
    }
    return cost;
}

static int data_arg(const pb_cell *c, const char *key, int def)
{
    size_t n = strlen(key);
    for (int i = 0; i < c->ndata_args; i++)
        if (!strncmp(c->data_args[i], key, n) && c->data_args[i][n] == '=')
            return atoi(c->data_args[i] + n + 1);
    return def;
}

/* A data cell's train stage: the examples the budget or the rounds of r * N
 * allow, and the scoring run of a score-based method (its training, and one
 * forward per example and check, four for GraNd's per-example gradients). */
static double data_train_cost(const pb_cell *c)
{
    double ex = c->train_flops_ex, n = c->ntrain, b = c->train.batch > 0 ? c->train.batch : 128;
    double round = ceil(ceil(c->data_fraction * n) / b) * b, cost;
    if (c->budget_kind == PB_BUDGET_STEPS)
        cost = ex * c->budget * b;
    else if (c->budget_kind == PB_BUDGET_EPOCHS)
        cost = ex * c->budget * ceil(n / b) * b;
    else
        cost = ex * round * c->train.epochs;
    const char *d = c->data;
    int scoring = !strcmp(d, "el2n") || !strcmp(d, "grand"), forget = !strcmp(d, "forgetting");
    if (scoring || forget) {
        int epochs = data_arg(c, "epochs", forget ? 5 : 1), seeds = data_arg(c, "seeds", 1);
        double checks = forget ? epochs : !strcmp(d, "grand") ? 4 : 1;
        cost += seeds * (ex * n * epochs + ex / 3 * n * checks);
    }
    return cost;
}

double pb_cost_cell(const pb_cell *c, int *needs_dense)
{
    if (c->nstages > 0)
        return stages_cost(c, needs_dense);
    double per_epoch = c->train_flops_ex * (double)c->ntrain;
    int dense = !strcmp(c->when, "dense") || !strcmp(c->when, "trained");
    if (needs_dense)
        *needs_dense = dense;
    if (!strcmp(c->when, "dense"))
        return 0; /* its cost is the pre-training, counted once per dense key */
    if (!strcmp(c->when, "trained"))
        return per_epoch * c->finetune.epochs;
    if (!strcmp(c->when, "run")) {
        /* iterative methods (lottery tickets): rounds x epochs per round, and
         * the final training of the ticket; without `rounds`, as many rounds
         * as a 20% rate needs */
        int rounds = 0, epochs = 0;
        for (int i = 0; i < c->nargs; i++) {
            if (!strncmp(c->args[i], "rounds=", 7))
                rounds = atoi(c->args[i] + 7);
            if (!strncmp(c->args[i], "epochs=", 7))
                epochs = atoi(c->args[i] + 7);
        }
        if (rounds <= 0)
            rounds = c->sparsity > 0 ? (int)ceil(log(1 - c->sparsity) / log(0.8)) : 1;
        if (epochs <= 0)
            epochs = c->train.epochs;
        return per_epoch * (double)(rounds + 1) * epochs;
    }
    return c->data ? data_train_cost(c) : per_epoch * c->train.epochs;
}

double pb_cost_experiment(const pb_experiment *x, double *cost, int *needs)
{
    double total_cost = 0;
    for (int i = 0; i < x->ncells; i++) {
        const pb_cell *c = &x->cells[i];
        cost[i] = pb_cost_cell(c, &needs[i]);
        if (needs[i]) {
            int first = 1;
            for (int k = 0; k < i && first; k++)
                if (needs[k] && !strcmp(x->cells[k].dense_key, c->dense_key))
                    first = 0;
            if (first)
                cost[i] += c->nstages > 0 ? prefix_cost(c)
                           : c->data        ? data_train_cost(c)
                                            : c->train_flops_ex * c->ntrain * c->train.epochs;
        }
        total_cost += cost[i];
    }
    return total_cost;
}

double pb_cost_sgemm_gflops(void)
{
    enum { M = 128, K = 784, N = 300 };
    float *a = calloc((size_t)M * K, sizeof(float)), *b = calloc((size_t)K * N, sizeof(float)),
          *c = calloc((size_t)M * N, sizeof(float));
    double gflops = 10.0;
    if (a && b && c) {
        int saved = openblas_get_num_threads();
        openblas_set_num_threads(1);
        int reps = 0;
        double t0 = pb_now(), t;
        do {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, a, K, b, N, 0.0f, c, N);
            reps++;
        } while ((t = pb_now() - t0) < 0.1);
        gflops = 2.0 * M * N * K * reps / t / 1e9;
        openblas_set_num_threads(saved);
    }
    free(a);
    free(b);
    free(c);
    return gflops;
}
