/* pb_layer: parameters and the layer kinds, each with forward and backward.
 *
 * Activations are float32, NCHW, batch-major: a layer's output for a batch of B
 * examples is B * (oc*oh*ow) floats. Dense layers see their input flattened.
 * Backward ACCUMULATES into the input gradient buffers (dx += ...), because one
 * output may feed two consumers (residual add); the model zeroes them first. */
#ifndef PB_LAYER_H
#define PB_LAYER_H

#include <stddef.h>
#include <stdint.h>

#include "pb_util.h"

/* A named parameter tensor: weight and bias of a layer, or an extra array
 * (e.g. the shared array of parameter sharing). */
typedef struct pb_param {
    char name[48];        /* "fc1.weight" */
    int ndim;
    int shape[4];         /* dense [out, in]; conv [out, in, kh, kw]; bias [out] */
    size_t n;             /* number of elements */
    float *w;             /* values */
    float *g;             /* gradient, accumulated by backward */
    float *mask;          /* NULL = dense; else 1.0f kept / 0.0f pruned, length n */
    float *opt1, *opt2;   /* optimizer state (momentum / Adam moments), owned by pb_optim */
    int prunable;         /* 1 for weights of dense and conv layers */
    int trainable;        /* 0: the optimizer leaves it alone (e.g. generated weights) */
    int layer;            /* owning layer index, -1 for extra arrays */
    int fan_in;           /* inputs per output unit (in * kh * kw) */
    int generated;        /* read from a checkpoint that holds no values for it (parameter sharing) */
    size_t removed;       /* values structural pruning removed from it physically (pb_surgery): counted
                           * with n, as pruned, wherever parameters and sparsity are reported */
} pb_param;

typedef enum pb_layer_kind {
    PB_DENSE = 0,
    PB_CONV,       /* 2-D convolution, square kernel k, stride, pad */
    PB_MAXPOOL,    /* k x k window, stride */
    PB_AVGPOOL,    /* k x k window, stride */
    PB_GAP,        /* global average pooling: C x H x W -> C x 1 x 1 */
    PB_RELU,
    PB_BN,         /* batch normalization over N,H,W per channel (also after dense: H=W=1) */
    PB_FLATTEN,    /* shape change only: C x H x W -> (CHW) x 1 x 1 */
    PB_ADD,        /* residual add of inputs in and in2 (same shape) */
    PB_DROPOUT,    /* inverted dropout with probability p, identity in eval */
    /* Language-model kinds (pb_kern_lm.c). Their activations are token-major:
     * an example of shape (c, T, 1) is T rows of c features, row t the
     * token at position t (not NCHW). */
    PB_EMBED,      /* token ids (1, T, 1) -> (oc, T, 1): w = token table [k = vocab, oc],
                    * b = position table [stride = context, oc], out = w[id] + b[t] */
    PB_LAYERNORM,  /* per row over c features, eps bn_eps; w = gain, b = shift [c] */
    PB_LINEAR,     /* per row: out = x w^T + b, w [oc, ic]; prunable like dense */
    PB_ATTN,       /* causal multi-head self-attention over rows q|k|v (ic = 3 * heads * k,
                    * k = head dimension) -> (heads * k, T, 1); no parameters */
    PB_GELU,       /* GELU, tanh approximation */
    PB_TIEDOUT,    /* logits per row over the vocabulary of the EMBED layer in2, with its
                    * token table as weights (tied): (c, T, 1) -> (vocab, T, 1) */
    PB_LAYER_KINDS
} pb_layer_kind;

extern const char *const pb_layer_kind_names[PB_LAYER_KINDS]; /* "dense", "conv", ... */

struct pb_sparse;

typedef struct pb_layer {
    pb_layer_kind kind;
    char name[32];        /* "fc1", "conv2", "relu3" */
    int in, in2;          /* producer layer index; -1 = model input; in2 only for ADD (else -1) */
    int ic, ih, iw;       /* input shape per example */
    int oc, oh, ow;       /* output shape per example */
    int k, stride, pad;   /* CONV, MAXPOOL, AVGPOOL */
    int has_bias;         /* DENSE, CONV */
    float p;              /* DROPOUT probability */
    float bn_eps, bn_momentum;  /* BN (PyTorch convention: run = (1-m)*run + m*batch) */
    pb_param *w, *b;      /* DENSE/CONV: weight, bias (b may be NULL); BN: gamma, beta */
    float *run_mean, *run_var;  /* BN running statistics [oc] */

    /* Workspace, sized for max_batch by pb_layer_alloc. */
    int max_batch;
    float *out;           /* [max_batch * osize] */
    float *dout;          /* [max_batch * osize] gradient w.r.t. out */
    float *ws;            /* kind-specific scratch (im2col columns, BN x-hat, dropout mask ...) */
    size_t ws_n;
    int32_t *idx;         /* MAXPOOL argmax per output element */
    float *stat;          /* BN: saved batch mean [oc] then inv-std [oc] */

    /* ReLU fusion, set by the model (pb_model_finalize, pb_model_forward):
     * a RELU that is the only reader of a layer that can apply it
     * (pb_layer_fuses_relu) works in place on that layer's out and dout
     * (in_place: they are not its own and are not freed with it). While the
     * producer's relu_after is set, the producer applies the ReLU as it
     * writes out and masks dout by out > 0 as it reads it, and the RELU's
     * own forward and backward are skipped. */
    int relu_after;       /* CONV, BN, ADD: apply the ReLU that follows (see above) */
    int in_place;         /* RELU: out and dout belong to the producer */

    /* DENSE: the weights in a sparse format (pb_sparse.h), NULL while the
     * layer runs dense; the model builds it, pb_layer_free frees it. */
    struct pb_sparse *sp;
} pb_layer;

static inline size_t pb_layer_isize(const pb_layer *l) { return (size_t)l->ic * l->ih * l->iw; }
static inline size_t pb_layer_osize(const pb_layer *l) { return (size_t)l->oc * l->oh * l->ow; }

/* Computes oc/oh/ow from ic/ih/iw and the kind's hyper-parameters.
 * For DENSE, oc must already be set. Returns PB_EUSAGE for impossible shapes. */
int pb_layer_infer_shape(pb_layer *l, char *err, size_t errlen);

/* Allocates out, dout and the workspace for batches up to max_batch.
 * Parameters are allocated by the model, not here. */
int pb_layer_alloc(pb_layer *l, int max_batch, char *err, size_t errlen);
void pb_layer_free(pb_layer *l);

/* Forward for B examples: x (and x2 for ADD) is the input, result in l->out.
 * train=1 uses batch statistics (BN) and draws dropout masks from rng. */
void pb_layer_forward(pb_layer *l, const float *x, const float *x2, int B, int train, pb_rng *rng);

/* Inference forward for B examples: what pb_layer_forward computes with
 * train=0, writing only l->out (and the kind's own scratch), keeping nothing
 * that a backward would read (BN's x-hat). A backward must follow a
 * pb_layer_forward, not this. */
void pb_layer_infer(pb_layer *l, const float *x, const float *x2, int B);

/* Backward for B examples from l->dout: adds to dx (and dx2 for ADD) when
 * non-NULL, and adds parameter gradients to l->w->g / l->b->g.
 * x is the same input given to forward. dx may be NULL (first layer). */
void pb_layer_backward(pb_layer *l, const float *x, float *dx, float *dx2, int B);

/* The same for a layer with one input, except that dx is overwritten instead
 * of added to: the model uses it where l is the only consumer of its input,
 * which saves zeroing the largest gradient buffers before every backward. */
void pb_layer_backward_write(pb_layer *l, const float *x, float *dx, int B);

/* A DENSE, CONV or LINEAR layer's input as the matrix its weights multiply, for
 * calibration: pb_layer_unfold writes B * oh*ow rows (B for DENSE) of
 * pb_layer_unfold_cols(l) floats to `rows`. A conv's row is one example's
 * window at one output position, rows in (example, oy, ox) order, columns
 * (ic, kh, kw) as in the weights, zero where the window covers padding; a
 * dense layer's rows are its input, a linear layer's its input rows (B * T
 * of ic). Either way the layer's output before a
 * fused ReLU is rows x weight^T + bias. */
size_t pb_layer_unfold_cols(const pb_layer *l);
void pb_layer_unfold(const pb_layer *l, const float *x, int B, float *rows);

/* Floating-point operations (2 per multiply-accumulate, plus bias adds) of one
 * example's forward pass through a DENSE or CONV layer (0 for other kinds); a weight counts only
 * where its mask is nonzero when effective=1 (for convolutions per output position). */
double pb_layer_flops(const pb_layer *l, int effective);

/* Whether the layer can apply a following ReLU itself (relu_after): a conv,
 * BN or residual add, whose kernels write every output and read every output
 * gradient in loops of their own anyway. */
int pb_layer_fuses_relu(const pb_layer *l);

/* Makes a RELU work in place on its producer's out and dout (in_place),
 * freeing its own; both must be allocated for the same batch. */
void pb_layer_run_in_place(pb_layer *l, const pb_layer *producer);

#endif
