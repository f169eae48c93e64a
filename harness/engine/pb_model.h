/* pb_model: a network as an ordered list of layers (a DAG through in/in2),
 * its parameters, loss, forward/backward, and the access pruning methods need. */
#ifndef PB_MODEL_H
#define PB_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "pb_layer.h"
#include "pb_check.h"
#include "pb_util.h"

#define PB_MAX_LAYERS 128
#define PB_MAX_PARAMS 256
#define PB_MAX_HIDDEN 16     /* hidden layers of a named MLP */

typedef struct pb_model pb_model;

/* Produces a parameter's values from another array before each forward
 * (parameter sharing) and routes its gradient back after each backward. */
typedef struct pb_param_gen {
    void *ud;
    void (*generate)(void *ud, pb_param *target);         /* fill target->w */
    void (*backprop)(void *ud, const pb_param *target);    /* read target->g, add to source grads */
} pb_param_gen;

/* A method's own count of what a prunable tensor costs as the method would
 * run it (pb_model_set_cost): multiply-adds per output position (per example
 * for a dense layer) and values stored. A factored or compressed tensor (ARMOR's
 * wrappers around a 2:4 core) is executed here as its dense product, but is
 * charged in FLOPs and `stored` for its own form. */
typedef struct pb_param_cost {
    int set;
    double macs, stored;
} pb_param_cost;

/* Called during forward with a layer's input (B examples of l->ic*ih*iw floats),
 * e.g. to gather calibration statistics (Wanda, SparseGPT). */
typedef void (*pb_input_hook)(void *ud, const pb_model *m, int layer, const float *x, int B);

struct pb_model {
    char arch[64];            /* "lenet300", "lenet5:w=0.5", "custom" */
    int ic, ih, iw, ncls;     /* input shape and classes */
    int nlayers;
    pb_layer layers[PB_MAX_LAYERS];
    int nparams;
    pb_param *params[PB_MAX_PARAMS];
    pb_param_gen gens[PB_MAX_PARAMS];   /* gens[i].generate != NULL: params[i] is generated */
    pb_param_cost costs[PB_MAX_PARAMS]; /* costs[i].set: params[i]'s cost as its method reported it */
    pb_input_hook input_hook;
    void *input_hook_ud;
    int max_batch;
    float *dlogits;           /* [max_batch * ncls] */
    float *probs;             /* [max_batch * ncls] softmax of the last forward */
    float *dx_scratch;        /* gradient w.r.t. model input, when requested */
    pb_rng rng;               /* dropout */
    int finalized;
    int gen_stale;            /* generated parameters must be generated again before the next forward */
    long generations;         /* times the generators ran (tests count them) */
    /* Predictions per example: 1 for a classifier; a language model's last
     * layer (LINEAR or TIEDOUT) gives one row of ncls logits per token, and
     * its data a target per token (pb_dataset.ny). Set by pb_model_finalize. */
    int ntok;
    /* Sparse formats of the dense layers (pb_sparse.h): rebuilt from the
     * masks before the next forward (sp_stale), or their values gathered
     * again (sp_vals_stale); sp_mode is the kernel mode they were built
     * under, plus one (0: never built). dense_grads: backward computes the
     * weight gradients of pruned weights too (the scores of SNIP, GraSP). */
    int sp_stale, sp_vals_stale, sp_mode;
    int dense_grads;
    int kernels;              /* 0: the process's kernel mode (pb_sparse_get_mode); else a pb_sparse_mode + 1 */
    /* param_capped: parameters may still take param_room values in all (the
     * checkpoint loader sets it from the file, so a forged header cannot
     * allocate more than the file holds). */
    int param_capped;
    size_t param_room;
};

/* ---- building ---- */
void pb_model_init(pb_model *m, const char *arch, int ic, int ih, int iw, int ncls);
/* Each adder appends a layer reading from the last layer (or the input) and
 * returns its index, or -1 with err set. name NULL = generated ("fc1", "conv2"). */
int pb_model_dense(pb_model *m, const char *name, int out, int bias, char *err, size_t errlen);
int pb_model_conv(pb_model *m, const char *name, int oc, int k, int stride, int pad, int bias,
                  char *err, size_t errlen);
int pb_model_pool(pb_model *m, pb_layer_kind kind, int k, int stride, char *err, size_t errlen);
int pb_model_simple(pb_model *m, pb_layer_kind kind, char *err, size_t errlen); /* RELU, GAP, FLATTEN */
int pb_model_bn(pb_model *m, char *err, size_t errlen);
int pb_model_dropout(pb_model *m, float p, char *err, size_t errlen);
/* Residual add of layer a's and layer b's outputs (indices; -1 = input). */
int pb_model_add(pb_model *m, int a, int b, char *err, size_t errlen);
/* Generic: append a fully described layer (used by checkpoints and model surgery). */
int pb_model_append(pb_model *m, const pb_layer *proto, char *err, size_t errlen);
/* Registers an extra trainable array (owned by the model), e.g. a shared weight array. */
pb_param *pb_model_extra_param(pb_model *m, const char *name, size_t n, char *err, size_t errlen);

/* Allocates parameters (if not yet) and workspaces for batches up to max_batch.
 * May be called again to change max_batch. */
int pb_model_finalize(pb_model *m, int max_batch, char *err, size_t errlen);

/* Kaiming-uniform init like PyTorch's default (weights U(-1/sqrt(fan_in).. ) ),
 * BN gamma=1 beta=0, seeded. */
void pb_model_init_weights(pb_model *m, uint64_t seed);

void pb_model_free(pb_model *m);

/* Builds a model by name: "lenet300", "lenet5", "conv4", "resnet20", "mlp".
 * width scales every hidden width (rounded, at least 1). hidden: for "mlp",
 * the hidden widths (nh of them); ignored otherwise. */
int pb_model_build(pb_model *m, const char *name, double width, const int *hidden, int nh,
                   int ic, int ih, int iw, int ncls, char *err, size_t errlen);
extern const char *const pb_model_names[]; /* NULL-terminated */
/* The options each named model takes (pb_model_build's width and hidden, a
 * gpt's layers, dim, heads, ctx, ff): the keys an experiment script may give. */
extern const pb_keyset pb_model_keys[];

/* Deep copy (architecture, values, masks; no optimizer state). */
int pb_model_clone(const pb_model *src, pb_model *dst, int max_batch, char *err, size_t errlen);

/* ---- running ---- */
/* Forward of B examples x [B * ic*ih*iw]; returns the logits [B * ntok * ncls]. */
const float *pb_model_forward(pb_model *m, const float *x, int B, int train);
/* The same in eval mode for inference only (evaluation): each layer's
 * pb_layer_infer, which keeps nothing for a backward. pb_model_loss may
 * follow; a backward must follow a pb_model_forward instead. */
const float *pb_model_infer(pb_model *m, const float *x, int B);

/* Softmax cross-entropy of the last forward; fills m->dlogits with dL/dlogits
 * (mean over the batch), per-example losses into per_ex when non-NULL, and the
 * number correct into *correct when non-NULL. Returns the mean loss. With
 * ntok > 1, y holds B * ntok targets, the loss is the mean over every token
 * (nats per token), per_ex an example's mean and *correct counts tokens.
 * temperature != 1 divides logits by it first (GraSP). */
double pb_model_loss(pb_model *m, const int *y, int B, float temperature, float *per_ex,
                     int *correct);

/* Zeroes all parameter gradients. */
void pb_model_zero_grad(pb_model *m);

/* Backward from m->dlogits (or from a caller's dlogits if non-NULL) through all
 * layers, accumulating parameter gradients; dx receives dL/dinput if non-NULL. */
void pb_model_backward(pb_model *m, const float *x, int B, const float *dlogits, float *dx);

/* Masked weights to exact zero (after any change to weights or masks). */
void pb_model_apply_masks(pb_model *m);

/* ---- pruning access ---- */
int pb_model_nprunable(const pb_model *m);
pb_param *pb_model_prunable(const pb_model *m, int i); /* i-th prunable parameter */
int pb_model_ensure_masks(pb_model *m, char *err, size_t errlen); /* all-ones masks where missing */
/* Counts over prunable weights (mask-aware, exact zeros count as pruned).
 * With parameter sharing, generated weights count as the values stored for
 * them: nonzero adds the shared arrays whole instead of the generated weights,
 * so 1 - nonzero / total is 1 - stored / params over the prunable weights.
 * Values structural pruning removed physically (pb_param.removed) are in
 * total, as pruned: a channel-pruned model's sparsity is over the
 * architecture it was pruned from, as a masked one's is. */
void pb_model_sparsity(const pb_model *m, size_t *total, size_t *nonzero);
/* Parameters over everything (weights, biases, BN), total and nonzero; total
 * includes the values removed physically, as pruned (see above). */
void pb_model_count_params(const pb_model *m, size_t *total, size_t *nonzero);
/* Values a deployed model must store: nonzero weights and biases, BN
 * parameters and running statistics, shared arrays whole; weights generated
 * from shared arrays are not stored. */
size_t pb_model_stored(const pb_model *m);
/* Inference FLOPs per example: dense and effective (only nonzero weights count). */
void pb_model_flops(const pb_model *m, double *dense, double *effective);
/* Training FLOPs per example step (forward + backward, ~3x forward). */
double pb_model_train_flops(const pb_model *m);
/* The same over the nonzero weights only: what training a pruned model costs. */
double pb_model_train_flops_eff(const pb_model *m);
pb_param *pb_model_find_param(const pb_model *m, const char *name);

void pb_model_set_generator(pb_model *m, pb_param *target, pb_param_gen gen);
/* Charges target (a prunable tensor) macs multiply-adds per output position
 * and `stored` values in place of its dense or nonzero count: pb_model_flops'
 * effective FLOPs, pb_model_stored (for a tensor that is not generated: a
 * generated one is stored as its arrays) and the layer rows of the results
 * use them. Kept until set again (a model rebuilt by surgery starts without). */
void pb_model_set_cost(pb_model *m, const pb_param *target, double macs, double stored);
/* The reported cost of p, or NULL. */
const pb_param_cost *pb_model_cost_of(const pb_model *m, const pb_param *p);
/* Parameter sharing. The generated weights are made from the shared arrays
 * lazily: pb_model_forward regenerates them only when an array changed since
 * the last generation (an optimizer step, a load, a rewind or a method's own
 * write, which pb_model_arrays_changed announces), so one optimizer step costs
 * one generation however many evaluation batches follow. pb_model_generate
 * makes them now if stale. */
void pb_model_arrays_changed(pb_model *m);
/* The same for a write that changed values of parameters but no mask (an
 * optimizer step): the sparse formats keep their structure. */
void pb_model_values_changed(pb_model *m);
void pb_model_generate(pb_model *m);
/* Whether parameter i (index into m->params) is generated from a shared array. */
int pb_model_is_generated(const pb_model *m, int i);
void pb_model_set_input_hook(pb_model *m, pb_input_hook hook, void *ud);

/* Prints a layer table with shapes and parameter counts. */
void pb_model_print(const pb_model *m, void *file);

#endif
