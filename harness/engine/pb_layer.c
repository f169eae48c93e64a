/* pb_layer: the layer kinds' shapes, buffers and dispatch.
 *
 * Every kind is one row of `kinds` below, a table of hooks indexed by
 * pb_layer_kind and filled with designated initializers: its shape, the
 * parameters and buffers it needs, its forward and backward. The hooks are
 * thin: the computing is done by the kernels of pb_kern.h. */
#include "pb_layer.h"

#include <assert.h>
#include <limits.h>
#include <string.h>

#include "pb_kern.h"
#include "pb_kern_lm.h"
#include "pb_sparse.h"

const char *const pb_layer_kind_names[PB_LAYER_KINDS] = {
    [PB_DENSE] = "dense",
    [PB_CONV] = "conv",
    [PB_MAXPOOL] = "maxpool",
    [PB_AVGPOOL] = "avgpool",
    [PB_GAP] = "gap",
    [PB_RELU] = "relu",
    [PB_BN] = "bn",
    [PB_FLATTEN] = "flatten",
    [PB_ADD] = "add",
    [PB_DROPOUT] = "dropout",
    [PB_EMBED] = "embed",
    [PB_LAYERNORM] = "layernorm",
    [PB_LINEAR] = "linear",
    [PB_ATTN] = "attn",
    [PB_GELU] = "gelu",
    [PB_TIEDOUT] = "tiedout",
};

static const char *lname(const pb_layer *l) { return l->name[0] ? l->name : "(unnamed)"; }

/* ---------------------------------------------------------------- shapes */

/* Each sets oc/oh/ow from the input shape, which pb_layer_infer_shape has
 * checked, and refuses impossible hyper-parameters. */

static int same_shape(pb_layer *l, char *err, size_t errlen)
{
    (void)err, (void)errlen;
    l->oc = l->ic;
    l->oh = l->ih;
    l->ow = l->iw;
    return PB_OK;
}

static int dense_shape(pb_layer *l, char *err, size_t errlen)
{
    if (l->oc < 1)
        return pb_err(err, errlen, PB_EUSAGE, "layer %s (dense): %d outputs", lname(l), l->oc);
    l->oh = l->ow = 1;
    return PB_OK;
}

static int conv_shape(pb_layer *l, char *err, size_t errlen)
{
    if (l->oc < 1 || l->k < 1 || l->stride < 1 || l->pad < 0)
        return pb_err(err, errlen, PB_EUSAGE,
                      "layer %s (conv): bad hyper-parameters oc=%d k=%d stride=%d pad=%d",
                      lname(l), l->oc, l->k, l->stride, l->pad);
    /* the script's limits (pb_check.c), so ih + 2*pad cannot overflow */
    if (l->k > 256 || l->stride > 256 || l->pad > 256)
        return pb_err(err, errlen, PB_EUSAGE,
                      "layer %s (conv): k=%d stride=%d pad=%d: each must be at most 256",
                      lname(l), l->k, l->stride, l->pad);
    if (l->ih + 2 * l->pad < l->k || l->iw + 2 * l->pad < l->k)
        return pb_err(err, errlen, PB_EUSAGE,
                      "layer %s (conv): kernel %d larger than padded input %dx%d (pad %d)",
                      lname(l), l->k, l->ih, l->iw, l->pad);
    l->oh = (l->ih + 2 * l->pad - l->k) / l->stride + 1;
    l->ow = (l->iw + 2 * l->pad - l->k) / l->stride + 1;
    return PB_OK;
}

/* MAXPOOL and AVGPOOL */
static int pool_shape(pb_layer *l, char *err, size_t errlen)
{
    const char *kn = pb_layer_kind_names[l->kind];
    if (l->k < 1 || l->stride < 1)
        return pb_err(err, errlen, PB_EUSAGE, "layer %s (%s): bad window k=%d stride=%d",
                      lname(l), kn, l->k, l->stride);
    if (l->ih < l->k || l->iw < l->k)
        return pb_err(err, errlen, PB_EUSAGE, "layer %s (%s): window %d larger than input %dx%d",
                      lname(l), kn, l->k, l->ih, l->iw);
    l->oc = l->ic;
    l->oh = (l->ih - l->k) / l->stride + 1;
    l->ow = (l->iw - l->k) / l->stride + 1;
    return PB_OK;
}

static int gap_shape(pb_layer *l, char *err, size_t errlen)
{
    (void)err, (void)errlen;
    l->oc = l->ic;
    l->oh = l->ow = 1;
    return PB_OK;
}

static int flatten_shape(pb_layer *l, char *err, size_t errlen)
{
    (void)err, (void)errlen;
    l->oc = l->ic * l->ih * l->iw;
    l->oh = l->ow = 1;
    return PB_OK;
}

static int bn_shape(pb_layer *l, char *err, size_t errlen)
{
    if (!(l->bn_eps >= 0.0f) || !(l->bn_momentum >= 0.0f && l->bn_momentum <= 1.0f))
        return pb_err(err, errlen, PB_EUSAGE, "layer %s (bn): eps=%g momentum=%g out of range",
                      lname(l), (double)l->bn_eps, (double)l->bn_momentum);
    return same_shape(l, err, errlen);
}

static int dropout_shape(pb_layer *l, char *err, size_t errlen)
{
    if (!(l->p >= 0.0f && l->p < 1.0f))
        return pb_err(err, errlen, PB_EUSAGE, "layer %s (dropout): p=%g not in [0,1)", lname(l),
                      (double)l->p);
    return same_shape(l, err, errlen);
}

/* Language-model kinds: rows of features, one per token (pb_layer.h). */
static int rows_shape(pb_layer *l, char *err, size_t errlen)
{
    const char *kn = pb_layer_kind_names[l->kind];
    if (l->iw != 1)
        return pb_err(err, errlen, PB_EUSAGE, "layer %s (%s): input %dx%dx%d is not rows of tokens (c x T x 1)",
                      lname(l), kn, l->ic, l->ih, l->iw);
    l->oh = l->ih;
    l->ow = 1;
    switch (l->kind) {
    case PB_EMBED:
        if (l->ic != 1 || l->oc < 1 || l->k < 1 || l->stride < 1)
            return pb_err(err, errlen, PB_EUSAGE, "layer %s (embed): needs token ids (1 x T x 1), a width, a "
                          "vocabulary and a context (got input %dx%d, width %d, vocabulary %d, context %d)",
                          lname(l), l->ic, l->ih, l->oc, l->k, l->stride);
        if (l->ih > l->stride)
            return pb_err(err, errlen, PB_EUSAGE, "layer %s (embed): the data's context of %d tokens is longer "
                          "than the model's (%d)", lname(l), l->ih, l->stride);
        break;
    case PB_ATTN:
        if (l->k < 1 || l->ic % (3 * l->k))
            return pb_err(err, errlen, PB_EUSAGE, "layer %s (attn): %d inputs are not q, k and v of heads of "
                          "dimension %d", lname(l), l->ic, l->k);
        l->oc = l->ic / 3;
        break;
    case PB_LINEAR:
    case PB_TIEDOUT:
        if (l->oc < 1)
            return pb_err(err, errlen, PB_EUSAGE, "layer %s (%s): %d outputs", lname(l), kn, l->oc);
        break;
    case PB_LAYERNORM:
        if (!(l->bn_eps > 0.0f))
            return pb_err(err, errlen, PB_EUSAGE, "layer %s (layernorm): eps=%g must be > 0", lname(l),
                          (double)l->bn_eps);
        /* fall through */
    default:
        l->oc = l->ic;
    }
    return PB_OK;
}

/* ------------------------------------------------- parameters and buffers */

static int check_param(const pb_layer *l, const pb_param *p, const char *what, size_t n, char *err,
                       size_t errlen)
{
    if (!p || !p->w || !p->g)
        return pb_err(err, errlen, PB_EUSAGE,
                      "layer %s (%s): %s not allocated (the model owns parameters and must create "
                      "them before pb_layer_alloc)",
                      lname(l), pb_layer_kind_names[l->kind], what);
    if (p->n != n)
        return pb_err(err, errlen, PB_EUSAGE, "layer %s (%s): %s has %zu elements, expected %zu",
                      lname(l), pb_layer_kind_names[l->kind], what, p->n, n);
    return PB_OK;
}

/* DENSE and CONV */
static int weights_check(const pb_layer *l, char *err, size_t errlen)
{
    const size_t nw = (size_t)l->oc * pb_layer_unfold_cols(l);
    int rc;
    if ((rc = check_param(l, l->w, "weight", nw, err, errlen)) != PB_OK)
        return rc;
    if (l->has_bias && (rc = check_param(l, l->b, "bias", (size_t)l->oc, err, errlen)) != PB_OK)
        return rc;
    return PB_OK;
}

static int embed_check(const pb_layer *l, char *err, size_t errlen)
{
    int rc;
    if ((rc = check_param(l, l->w, "token table", (size_t)l->k * l->oc, err, errlen)) != PB_OK ||
        (rc = check_param(l, l->b, "position table", (size_t)l->stride * l->oc, err, errlen)) != PB_OK)
        return rc;
    return PB_OK;
}

static int layernorm_check(const pb_layer *l, char *err, size_t errlen)
{
    int rc;
    if ((rc = check_param(l, l->w, "gain", (size_t)l->oc, err, errlen)) != PB_OK ||
        (rc = check_param(l, l->b, "shift", (size_t)l->oc, err, errlen)) != PB_OK)
        return rc;
    return PB_OK;
}

static int lm_buffers(pb_layer *l, int max_batch, char *err, size_t errlen)
{
    (void)err, (void)errlen;
    l->ws_n = pb_kern_lm_ws(l, max_batch);
    size_t ns = pb_kern_lm_stat(l, max_batch);
    if (ns && !(l->stat = pb_alloc(ns * sizeof(float))))
        return PB_ENOMEM;
    return PB_OK;
}

static int bn_check(const pb_layer *l, char *err, size_t errlen)
{
    int rc;
    if ((rc = check_param(l, l->w, "gamma", (size_t)l->oc, err, errlen)) != PB_OK ||
        (rc = check_param(l, l->b, "beta", (size_t)l->oc, err, errlen)) != PB_OK)
        return rc;
    if (!l->run_mean || !l->run_var)
        return pb_err(err, errlen, PB_EUSAGE,
                      "layer %s (bn): running statistics not allocated (owned by the model)",
                      lname(l));
    return PB_OK;
}

static int maxpool_check(const pb_layer *l, char *err, size_t errlen)
{
    /* argmax indices are int32 offsets within one example */
    if (pb_layer_isize(l) > INT32_MAX)
        return pb_err(err, errlen, PB_EUSAGE, "layer %s (maxpool): input too large", lname(l));
    return PB_OK;
}

/* Each sets ws_n (pb_layer_alloc allocates ws) and allocates the kind's other
 * buffers; PB_ENOMEM is returned without a message, which the caller writes. */

static int conv_buffers(pb_layer *l, int max_batch, char *err, size_t errlen)
{
    l->ws_n = pb_kern_conv_ws(l, max_batch);
    if (l->ws_n == 0)
        return pb_err(err, errlen, PB_EUSAGE, "layer %s (conv): output %dx%d too large", lname(l),
                      l->oh, l->ow);
    return PB_OK;
}

/* BN: x-hat in ws; the batch mean and inverse std, then the mode of the last
 * forward (train or eval) in stat. Dropout: the mask in ws, the mode in stat. */
static int stat_buffers(pb_layer *l, int max_batch, char *err, size_t errlen)
{
    (void)err, (void)errlen;
    l->ws_n = (size_t)max_batch * pb_layer_osize(l);
    l->stat = pb_alloc((l->kind == PB_BN ? 2 * (size_t)l->oc + 1 : 1) * sizeof(float));
    return l->stat ? PB_OK : PB_ENOMEM;
}

static int maxpool_buffers(pb_layer *l, int max_batch, char *err, size_t errlen)
{
    (void)err, (void)errlen;
    l->idx = pb_alloc((size_t)max_batch * pb_layer_osize(l) * sizeof(int32_t));
    return l->idx ? PB_OK : PB_ENOMEM;
}

/* ---------------------------------------------------- forward and backward */

/* One forward or backward call's arguments, so that every kind's hook has
 * the same signature. */
typedef struct layer_call {
    const float *x, *x2; /* the input, and ADD's second input */
    float *dx, *dx2;     /* backward: their gradients, NULL where not wanted */
    int B;               /* examples */
    int train;           /* forward: batch statistics (BN), dropout masks drawn from rng */
    pb_rng *rng;
    int write;           /* backward: overwrite dx instead of adding to it */
} layer_call;

static size_t out_n(const pb_layer *l, const layer_call *c) { return (size_t)c->B * pb_layer_osize(l); }

static void dense_forward(pb_layer *l, const layer_call *c)
{
    if (pb_sparse_active(l, c->B))
        pb_kern_sparse_forward(l, c->x, c->B, c->train);
    else
        pb_kern_dense_forward(l, c->x, c->B);
}

static void dense_backward(pb_layer *l, const layer_call *c)
{
    if (pb_sparse_active(l, c->B) && !l->sp->full_grad) {
        pb_kern_sparse_backward(l, c->x, c->dx, c->B, c->write);
        return;
    }
    pb_kern_dense_backward(l, c->x, c->dx, c->B, c->write);
    if (l->sp)
        l->sp->g_dirty = 1; /* pruned weights got gradients too */
}

static void conv_forward(pb_layer *l, const layer_call *c) { pb_kern_conv_forward(l, c->x, c->B); }

static void conv_backward(pb_layer *l, const layer_call *c)
{
    pb_kern_conv_backward(l, c->x, c->dx, c->B, c->write);
}

static void maxpool_forward(pb_layer *l, const layer_call *c) { pb_kern_maxpool_forward(l, c->x, c->B); }

static void maxpool_backward(pb_layer *l, const layer_call *c)
{
    if (c->dx)
        pb_kern_maxpool_backward(l, c->dx, c->B, c->write);
}

static void avgpool_forward(pb_layer *l, const layer_call *c) { pb_kern_avgpool_forward(l, c->x, c->B); }

static void avgpool_backward(pb_layer *l, const layer_call *c)
{
    if (c->dx)
        pb_kern_avgpool_backward(l, c->dx, c->B);
}

static void gap_forward(pb_layer *l, const layer_call *c) { pb_kern_gap_forward(l, c->x, c->B); }

static void gap_backward(pb_layer *l, const layer_call *c)
{
    if (c->dx)
        pb_kern_gap_backward(l, c->dx, c->B);
}

static void relu_forward(pb_layer *l, const layer_call *c)
{
    pb_kern_relu_forward(l->out, c->x, out_n(l, c));
}

static void relu_backward(pb_layer *l, const layer_call *c)
{
    if (c->dx)
        pb_kern_relu_backward(c->dx, l->out, l->dout, out_n(l, c), c->write);
}

static void bn_forward(pb_layer *l, const layer_call *c) { pb_kern_bn_forward(l, c->x, c->B, c->train); }

static void bn_infer(pb_layer *l, const layer_call *c) { pb_kern_bn_infer(l, c->x, c->B); }

/* also without dx: it adds the gradients of gamma and beta */
static void bn_backward(pb_layer *l, const layer_call *c) { pb_kern_bn_backward(l, c->dx, c->B); }

static void flatten_forward(pb_layer *l, const layer_call *c)
{
    memcpy(l->out, c->x, out_n(l, c) * sizeof(float));
}

static void flatten_backward(pb_layer *l, const layer_call *c)
{
    if (c->dx && c->write)
        memcpy(c->dx, l->dout, out_n(l, c) * sizeof(float));
    else if (c->dx)
        pb_kern_add_into(c->dx, l->dout, out_n(l, c));
}

static void add_forward(pb_layer *l, const layer_call *c)
{
    pb_kern_add_forward(l->out, c->x, c->x2, out_n(l, c), l->relu_after);
}

static void add_backward(pb_layer *l, const layer_call *c)
{
    /* separate calls: dx and dx2 are the same buffer when a layer is added to
     * itself; a fused ReLU passes the gradient where out > 0 */
    if (c->dx && l->relu_after)
        pb_kern_relu_backward(c->dx, l->out, l->dout, out_n(l, c), 0);
    else if (c->dx)
        pb_kern_add_into(c->dx, l->dout, out_n(l, c));
    if (c->dx2 && l->relu_after)
        pb_kern_relu_backward(c->dx2, l->out, l->dout, out_n(l, c), 0);
    else if (c->dx2)
        pb_kern_add_into(c->dx2, l->dout, out_n(l, c));
}

static void dropout_forward(pb_layer *l, const layer_call *c)
{
    pb_kern_dropout_forward(l, c->x, out_n(l, c), c->train, c->rng);
}

static void dropout_backward(pb_layer *l, const layer_call *c)
{
    if (c->dx)
        pb_kern_dropout_backward(l, c->dx, out_n(l, c));
}

static void embed_forward(pb_layer *l, const layer_call *c) { pb_kern_embed_forward(l, c->x, c->B); }

static void embed_backward(pb_layer *l, const layer_call *c)
{
    pb_kern_embed_backward(l, c->x, c->dx, c->B, c->write);
}

static void layernorm_forward(pb_layer *l, const layer_call *c) { pb_kern_layernorm_forward(l, c->x, c->B); }

static void layernorm_backward(pb_layer *l, const layer_call *c)
{
    pb_kern_layernorm_backward(l, c->dx, c->B, c->write);
}

static void linear_forward(pb_layer *l, const layer_call *c) { pb_kern_linear_forward(l, c->x, c->B); }

static void linear_backward(pb_layer *l, const layer_call *c)
{
    pb_kern_linear_backward(l, c->x, c->dx, c->B, c->write);
}

static void attn_forward(pb_layer *l, const layer_call *c) { pb_kern_attn_forward(l, c->x, c->B); }

static void attn_backward(pb_layer *l, const layer_call *c)
{
    pb_kern_attn_backward(l, c->x, c->dx, c->B, c->write);
}

static void gelu_forward(pb_layer *l, const layer_call *c) { pb_kern_gelu_forward(l, c->x, c->B); }

static void gelu_backward(pb_layer *l, const layer_call *c)
{
    pb_kern_gelu_backward(l, c->x, c->dx, c->B, c->write);
}

static void dense_unfold(const pb_layer *l, const float *x, int B, float *rows)
{
    memcpy(rows, x, (size_t)B * pb_layer_isize(l) * sizeof(float));
}

/* ------------------------------------------------------------ the table */

typedef struct layer_ops {
    int (*shape)(pb_layer *l, char *err, size_t errlen);
    /* the parameters the model must have created; NULL: none */
    int (*check)(const pb_layer *l, char *err, size_t errlen);
    /* workspace and other buffers beyond out and dout; NULL: none */
    int (*buffers)(pb_layer *l, int max_batch, char *err, size_t errlen);
    void (*forward)(pb_layer *l, const layer_call *c);
    /* adds to dx (and dx2) when non-NULL, and to the parameter gradients;
     * overwrites dx instead when c->write is set, unless backward_adds */
    void (*backward)(pb_layer *l, const layer_call *c);
    /* backward can only add to dx: to overwrite it, the dispatcher zeroes
     * dx first (kinds whose writes do not cover their input, or are rare) */
    int backward_adds;
    /* whether the layer applies a following ReLU itself; NULL: never */
    int (*fuses_relu)(const pb_layer *l);
    /* the input as rows that the weights multiply (pb_layer_unfold); NULL:
     * the kind has no weights */
    void (*unfold)(const pb_layer *l, const float *x, int B, float *rows);
    /* inference forward (pb_layer_infer); NULL: forward with train=0 */
    void (*infer)(pb_layer *l, const layer_call *c);
} layer_ops;

/* The kinds that write every output and read every output gradient in a
 * loop of their own apply a following ReLU there (relu_after). */
static int fuses(const pb_layer *l)
{
    (void)l;
    return 1;
}

static const layer_ops kinds[PB_LAYER_KINDS] = {
    [PB_DENSE] = {.shape = dense_shape, .check = weights_check,
                  .forward = dense_forward, .backward = dense_backward, .unfold = dense_unfold},
    [PB_CONV] = {.shape = conv_shape, .check = weights_check, .buffers = conv_buffers,
                 .forward = conv_forward, .backward = conv_backward,
                 .fuses_relu = fuses, .unfold = pb_kern_conv_unfold},
    [PB_MAXPOOL] = {.shape = pool_shape, .check = maxpool_check, .buffers = maxpool_buffers,
                    .forward = maxpool_forward, .backward = maxpool_backward},
    [PB_AVGPOOL] = {.shape = pool_shape, .forward = avgpool_forward, .backward = avgpool_backward,
                    .backward_adds = 1},
    [PB_GAP] = {.shape = gap_shape, .forward = gap_forward, .backward = gap_backward,
                .backward_adds = 1},
    [PB_RELU] = {.shape = same_shape, .forward = relu_forward, .backward = relu_backward},
    [PB_BN] = {.shape = bn_shape, .check = bn_check, .buffers = stat_buffers,
               .forward = bn_forward, .backward = bn_backward, .backward_adds = 1,
               .fuses_relu = fuses, .infer = bn_infer},
    [PB_FLATTEN] = {.shape = flatten_shape, .forward = flatten_forward, .backward = flatten_backward},
    [PB_ADD] = {.shape = same_shape, .forward = add_forward, .backward = add_backward,
                .backward_adds = 1, .fuses_relu = fuses},
    [PB_DROPOUT] = {.shape = dropout_shape, .buffers = stat_buffers,
                    .forward = dropout_forward, .backward = dropout_backward, .backward_adds = 1},
    [PB_EMBED] = {.shape = rows_shape, .check = embed_check, .forward = embed_forward,
                  .backward = embed_backward},
    [PB_LAYERNORM] = {.shape = rows_shape, .check = layernorm_check, .buffers = lm_buffers,
                      .forward = layernorm_forward, .backward = layernorm_backward},
    /* a linear layer's rows are its input: it unfolds like a dense layer */
    [PB_LINEAR] = {.shape = rows_shape, .check = weights_check, .forward = linear_forward,
                   .backward = linear_backward, .unfold = dense_unfold},
    [PB_ATTN] = {.shape = rows_shape, .buffers = lm_buffers, .forward = attn_forward,
                 .backward = attn_backward},
    [PB_GELU] = {.shape = rows_shape, .forward = gelu_forward, .backward = gelu_backward},
    [PB_TIEDOUT] = {.shape = rows_shape, .check = weights_check, .forward = linear_forward,
                    .backward = linear_backward},
};

/* ------------------------------------------------------------- the API */

int pb_layer_infer_shape(pb_layer *l, char *err, size_t errlen)
{
    if ((unsigned)l->kind >= PB_LAYER_KINDS)
        return pb_err(err, errlen, PB_EUSAGE, "layer %s: unknown kind %d", lname(l), (int)l->kind);
    const char *kn = pb_layer_kind_names[l->kind];
    if (l->ic < 1 || l->ih < 1 || l->iw < 1)
        return pb_err(err, errlen, PB_EUSAGE, "layer %s (%s): empty input shape %dx%dx%d", lname(l),
                      kn, l->ic, l->ih, l->iw);
    if ((size_t)l->ic * l->ih * l->iw > INT_MAX)
        return pb_err(err, errlen, PB_EUSAGE, "layer %s (%s): input %dx%dx%d too large", lname(l), kn,
                      l->ic, l->ih, l->iw);
    const layer_ops *ops = &kinds[l->kind];
    if (!ops->shape || !ops->forward || !ops->backward)
        return pb_err(err, errlen, PB_EINTERNAL, "layer %s: kind %d not handled", lname(l), (int)l->kind);
    return ops->shape(l, err, errlen);
}

void pb_layer_run_in_place(pb_layer *l, const pb_layer *producer)
{
    if (!l->in_place) {
        pb_free(l->out);
        pb_free(l->dout);
    }
    l->out = producer->out;
    l->dout = producer->dout;
    l->in_place = 1;
}

void pb_layer_free(pb_layer *l)
{
    if (!l->in_place) {
        pb_free(l->out);
        pb_free(l->dout);
    }
    l->in_place = 0;
    pb_sparse_drop(l);
    pb_free(l->ws);
    pb_free(l->idx);
    pb_free(l->stat);
    l->out = l->dout = l->ws = l->stat = NULL;
    l->idx = NULL;
    l->ws_n = 0;
    l->max_batch = 0;
}

int pb_layer_alloc(pb_layer *l, int max_batch, char *err, size_t errlen)
{
    pb_layer_free(l);
    if ((unsigned)l->kind >= PB_LAYER_KINDS)
        return pb_err(err, errlen, PB_EUSAGE, "layer %s: unknown kind %d", lname(l), (int)l->kind);
    if (max_batch < 1)
        return pb_err(err, errlen, PB_EUSAGE, "layer %s: max_batch %d < 1", lname(l), max_batch);
    const size_t osz = pb_layer_osize(l);
    if (osz == 0)
        return pb_err(err, errlen, PB_EUSAGE, "layer %s: output shape not inferred", lname(l));
    const layer_ops *ops = &kinds[l->kind];
    int rc;
    if (ops->check && (rc = ops->check(l, err, errlen)) != PB_OK)
        return rc;

    const size_t on = (size_t)max_batch * osz;
    l->out = pb_alloc(on * sizeof(float));
    l->dout = pb_alloc(on * sizeof(float));
    rc = l->out && l->dout ? PB_OK : PB_ENOMEM;
    if (rc == PB_OK && ops->buffers)
        rc = ops->buffers(l, max_batch, err, errlen);
    if (rc == PB_OK && l->ws_n && !(l->ws = pb_alloc(l->ws_n * sizeof(float))))
        rc = PB_ENOMEM;
    if (rc != PB_OK) {
        pb_layer_free(l);
        if (rc == PB_ENOMEM)
            pb_err(err, errlen, PB_ENOMEM, "layer %s (%s): out of memory for batch %d", lname(l),
                   pb_layer_kind_names[l->kind], max_batch);
        return rc;
    }
    l->max_batch = max_batch;
    return PB_OK;
}

void pb_layer_forward(pb_layer *l, const float *x, const float *x2, int B, int train, pb_rng *rng)
{
    assert(B >= 1 && B <= l->max_batch);
    assert((unsigned)l->kind < PB_LAYER_KINDS);
    const layer_call c = {.x = x, .x2 = x2, .B = B, .train = train, .rng = rng};
    kinds[l->kind].forward(l, &c);
}

void pb_layer_infer(pb_layer *l, const float *x, const float *x2, int B)
{
    assert(B >= 1 && B <= l->max_batch);
    assert((unsigned)l->kind < PB_LAYER_KINDS);
    const layer_call c = {.x = x, .x2 = x2, .B = B};
    const layer_ops *ops = &kinds[l->kind];
    (ops->infer ? ops->infer : ops->forward)(l, &c);
}

static void backward(pb_layer *l, const float *x, float *dx, float *dx2, int B, int write)
{
    assert(B >= 1 && B <= l->max_batch);
    assert((unsigned)l->kind < PB_LAYER_KINDS);
    const layer_ops *ops = &kinds[l->kind];
    if (dx && write && ops->backward_adds) {
        memset(dx, 0, (size_t)B * pb_layer_isize(l) * sizeof(float));
        write = 0;
    }
    const layer_call c = {.x = x, .dx = dx, .dx2 = dx2, .B = B, .write = write};
    ops->backward(l, &c);
}

void pb_layer_backward(pb_layer *l, const float *x, float *dx, float *dx2, int B)
{
    backward(l, x, dx, dx2, B, 0);
}

void pb_layer_backward_write(pb_layer *l, const float *x, float *dx, int B)
{
    assert(l->kind != PB_ADD);
    backward(l, x, dx, NULL, B, 1);
}

int pb_layer_fuses_relu(const pb_layer *l)
{
    const layer_ops *ops = &kinds[l->kind];
    return ops->fuses_relu && ops->fuses_relu(l);
}

size_t pb_layer_unfold_cols(const pb_layer *l)
{
    if (l->kind == PB_LINEAR || l->kind == PB_TIEDOUT)
        return (size_t)l->ic; /* per row */
    return l->kind == PB_CONV ? (size_t)l->ic * l->k * l->k : pb_layer_isize(l);
}

void pb_layer_unfold(const pb_layer *l, const float *x, int B, float *rows)
{
    assert((unsigned)l->kind < PB_LAYER_KINDS && kinds[l->kind].unfold);
    kinds[l->kind].unfold(l, x, B, rows);
}

/* ----------------------------------------------------------------- FLOPs */

double pb_layer_flops(const pb_layer *l, int effective)
{
    if (l->kind == PB_ATTN) /* scores and mixing, the causal half counted whole */
        return 4.0 * (double)l->ih * l->ih * l->oc;
    if (l->kind != PB_DENSE && l->kind != PB_CONV && l->kind != PB_LINEAR && l->kind != PB_TIEDOUT)
        return 0.0;
    const double positions = l->kind == PB_CONV ? (double)l->oh * l->ow
                             : l->kind == PB_LINEAR || l->kind == PB_TIEDOUT ? (double)l->oh : 1.0;
    size_t nw = (size_t)l->oc * pb_layer_unfold_cols(l);
    if (effective && l->w && l->w->w) {
        const float *w = l->w->w, *mask = l->w->mask;
        size_t live = 0;
        for (size_t i = 0; i < l->w->n; i++)
            live += (!mask || mask[i] != 0.0f) && w[i] != 0.0f;
        nw = live;
    }
    double flops = 2.0 * (double)nw * positions;
    if (l->has_bias)
        flops += (double)l->oc * positions;
    return flops;
}
