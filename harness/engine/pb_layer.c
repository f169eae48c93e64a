/* pb_layer: layer shapes, allocation, and forward and backward of each kind
 * through the kernels of pb_kern.h. */
#include "pb_layer.h"

#include <assert.h>
#include <limits.h>
#include <string.h>

#include "pb_kern.h"
#include "pb_par.h"

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
};

static const char *lname(const pb_layer *l) { return l->name[0] ? l->name : "(unnamed)"; }

/* ---------------------------------------------------------------- shapes */

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

    switch (l->kind) {
    case PB_DENSE:
        if (l->oc < 1)
            return pb_err(err, errlen, PB_EUSAGE, "layer %s (dense): %d outputs", lname(l), l->oc);
        l->oh = l->ow = 1;
        break;
    case PB_CONV:
        if (l->oc < 1 || l->k < 1 || l->stride < 1 || l->pad < 0)
            return pb_err(err, errlen, PB_EUSAGE,
                          "layer %s (conv): bad hyper-parameters oc=%d k=%d stride=%d pad=%d",
                          lname(l), l->oc, l->k, l->stride, l->pad);
        if (l->ih + 2 * l->pad < l->k || l->iw + 2 * l->pad < l->k)
            return pb_err(err, errlen, PB_EUSAGE,
                          "layer %s (conv): kernel %d larger than padded input %dx%d (pad %d)",
                          lname(l), l->k, l->ih, l->iw, l->pad);
        l->oh = (l->ih + 2 * l->pad - l->k) / l->stride + 1;
        l->ow = (l->iw + 2 * l->pad - l->k) / l->stride + 1;
        break;
    case PB_MAXPOOL:
    case PB_AVGPOOL:
        if (l->k < 1 || l->stride < 1)
            return pb_err(err, errlen, PB_EUSAGE, "layer %s (%s): bad window k=%d stride=%d",
                          lname(l), kn, l->k, l->stride);
        if (l->ih < l->k || l->iw < l->k)
            return pb_err(err, errlen, PB_EUSAGE, "layer %s (%s): window %d larger than input %dx%d",
                          lname(l), kn, l->k, l->ih, l->iw);
        l->oc = l->ic;
        l->oh = (l->ih - l->k) / l->stride + 1;
        l->ow = (l->iw - l->k) / l->stride + 1;
        break;
    case PB_GAP:
        l->oc = l->ic;
        l->oh = l->ow = 1;
        break;
    case PB_FLATTEN:
        l->oc = l->ic * l->ih * l->iw;
        l->oh = l->ow = 1;
        break;
    case PB_DROPOUT:
    case PB_BN:
    case PB_RELU:
    case PB_ADD:
        if (l->kind == PB_DROPOUT && !(l->p >= 0.0f && l->p < 1.0f))
            return pb_err(err, errlen, PB_EUSAGE, "layer %s (dropout): p=%g not in [0,1)", lname(l),
                          (double)l->p);
        if (l->kind == PB_BN &&
            (!(l->bn_eps >= 0.0f) || !(l->bn_momentum >= 0.0f && l->bn_momentum <= 1.0f)))
            return pb_err(err, errlen, PB_EUSAGE, "layer %s (bn): eps=%g momentum=%g out of range",
                          lname(l), (double)l->bn_eps, (double)l->bn_momentum);
        l->oc = l->ic;
        l->oh = l->ih;
        l->ow = l->iw;
        break;
    default:
        return pb_err(err, errlen, PB_EINTERNAL, "layer %s: kind %d not handled", lname(l), (int)l->kind);
    }
    return PB_OK;
}

/* ------------------------------------------------------------ allocation */

static size_t conv_cols_rows(const pb_layer *l) { return (size_t)l->ic * l->k * l->k; }

int pb_layer_fuses_relu(const pb_layer *l) { return l->kind == PB_CONV && pb_kern_conv_is_thin(l); }

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
    if (max_batch < 1)
        return pb_err(err, errlen, PB_EUSAGE, "layer %s: max_batch %d < 1", lname(l), max_batch);
    const size_t osz = pb_layer_osize(l), isz = pb_layer_isize(l);
    if (osz == 0)
        return pb_err(err, errlen, PB_EUSAGE, "layer %s: output shape not inferred", lname(l));

    int rc = PB_OK;
    switch (l->kind) {
    case PB_DENSE:
    case PB_CONV: {
        size_t nw = (size_t)l->oc * (l->kind == PB_DENSE ? isz : conv_cols_rows(l));
        if ((rc = check_param(l, l->w, "weight", nw, err, errlen)) != PB_OK)
            return rc;
        if (l->has_bias && (rc = check_param(l, l->b, "bias", (size_t)l->oc, err, errlen)) != PB_OK)
            return rc;
        break;
    }
    case PB_BN:
        if ((rc = check_param(l, l->w, "gamma", (size_t)l->oc, err, errlen)) != PB_OK ||
            (rc = check_param(l, l->b, "beta", (size_t)l->oc, err, errlen)) != PB_OK)
            return rc;
        if (!l->run_mean || !l->run_var)
            return pb_err(err, errlen, PB_EUSAGE,
                          "layer %s (bn): running statistics not allocated (owned by the model)",
                          lname(l));
        break;
    case PB_MAXPOOL:
        /* argmax indices are int32 offsets within one example */
        if (isz > INT32_MAX)
            return pb_err(err, errlen, PB_EUSAGE, "layer %s (maxpool): input too large", lname(l));
        break;
    default:
        break;
    }

    const size_t on = (size_t)max_batch * osz;
    int fail = 0;
    l->out = pb_alloc(on * sizeof(float));
    l->dout = pb_alloc(on * sizeof(float));
    fail |= !l->out || !l->dout;
    switch (l->kind) {
    case PB_CONV:
        l->ws_n = pb_kern_conv_ws(l, max_batch);
        if (l->ws_n == 0)
            return pb_err(err, errlen, PB_EUSAGE, "layer %s (conv): output %dx%d too large", lname(l),
                          l->oh, l->ow);
        break;
    case PB_BN:
    case PB_DROPOUT:
        l->ws_n = on;
        l->stat = pb_alloc((l->kind == PB_BN ? 2 * (size_t)l->oc + 1 : 1) * sizeof(float));
        fail |= !l->stat;
        break;
    case PB_MAXPOOL:
        l->idx = pb_alloc(on * sizeof(int32_t));
        fail |= !l->idx;
        break;
    default:
        break;
    }
    if (l->ws_n) {
        l->ws = pb_alloc(l->ws_n * sizeof(float));
        fail |= !l->ws;
    }
    if (fail) {
        pb_layer_free(l);
        return pb_err(err, errlen, PB_ENOMEM, "layer %s (%s): out of memory for batch %d", lname(l),
                      pb_layer_kind_names[l->kind], max_batch);
    }
    l->max_batch = max_batch;
    return PB_OK;
}

/* -------------------------------------------------------------- dispatch */

void pb_layer_forward(pb_layer *l, const float *x, const float *x2, int B, int train, pb_rng *rng)
{
    assert(B >= 1 && B <= l->max_batch);
    const size_t n = (size_t)B * pb_layer_osize(l);
    switch (l->kind) {
    case PB_DENSE: pb_kern_dense_forward(l, x, B); break;
    case PB_CONV: pb_kern_conv_forward(l, x, B); break;
    case PB_MAXPOOL: pb_kern_maxpool_forward(l, x, B); break;
    case PB_AVGPOOL: pb_kern_avgpool_forward(l, x, B); break;
    case PB_GAP: pb_kern_gap_forward(l, x, B); break;
    case PB_RELU: pb_kern_relu_forward(l->out, x, n); break;
    case PB_BN: pb_kern_bn_forward(l, x, B, train); break;
    case PB_FLATTEN: memcpy(l->out, x, n * sizeof(float)); break;
    case PB_ADD: pb_kern_add_forward(l->out, x, x2, n); break;
    case PB_DROPOUT: pb_kern_dropout_forward(l, x, n, train, rng); break;
    default: assert(!"unknown layer kind"); break;
    }
}

static void backward(pb_layer *l, const float *x, float *dx, float *dx2, int B, int write)
{
    assert(B >= 1 && B <= l->max_batch);
    const size_t n = (size_t)B * pb_layer_osize(l);
    switch (l->kind) {
    case PB_DENSE: pb_kern_dense_backward(l, x, dx, B, write); break;
    case PB_CONV: pb_kern_conv_backward(l, x, dx, B, write); break;
    case PB_MAXPOOL:
        if (dx)
            pb_kern_maxpool_backward(l, dx, B, write);
        break;
    case PB_RELU:
        if (dx)
            pb_kern_relu_backward(dx, l->out, l->dout, n, write);
        break;
    case PB_FLATTEN:
        if (dx && write)
            memcpy(dx, l->dout, n * sizeof(float));
        else if (dx)
            pb_kern_add_into(dx, l->dout, n);
        break;
    default:
        if (dx && write)
            memset(dx, 0, (size_t)B * pb_layer_isize(l) * sizeof(float));
        switch (l->kind) {
        case PB_BN: pb_kern_bn_backward(l, dx, B); break;
        case PB_ADD:
            /* separate calls: dx and dx2 are the same buffer when a layer is added to itself */
            if (dx)
                pb_kern_add_into(dx, l->dout, n);
            if (dx2)
                pb_kern_add_into(dx2, l->dout, n);
            break;
        case PB_AVGPOOL:
            if (dx)
                pb_kern_avgpool_backward(l, dx, B);
            break;
        case PB_GAP:
            if (dx)
                pb_kern_gap_backward(l, dx, B);
            break;
        case PB_DROPOUT:
            if (dx)
                pb_kern_dropout_backward(l, dx, n);
            break;
        default: assert(!"unknown layer kind"); break;
        }
        break;
    }
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

/* ----------------------------------------------------------------- FLOPs */

double pb_layer_flops(const pb_layer *l, int effective)
{
    if (l->kind != PB_DENSE && l->kind != PB_CONV)
        return 0.0;
    const double positions = l->kind == PB_CONV ? (double)l->oh * l->ow : 1.0;
    size_t nw = (size_t)l->oc * (l->kind == PB_DENSE ? pb_layer_isize(l) : conv_cols_rows(l));
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
