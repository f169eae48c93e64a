#include "pb_model.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pb_gpt.h"
#include "pb_kern.h"
#include "pb_sparse.h"

const char *const pb_model_names[] = {"lenet300", "lenet5", "conv4", "resnet20", "mlp", "gpt", NULL};

/* lenet300 is the MLP of hidden widths 300, 100: it takes no hidden list */
static const char *const width_only[] = {"width", NULL};
const pb_keyset pb_model_keys[] = {
    {.kind = "lenet300", .keys = width_only},
    {.kind = "lenet5", .keys = width_only},
    {.kind = "conv4", .keys = width_only},
    {.kind = "resnet20", .keys = width_only},
    {.kind = "mlp", .keys = (const char *const[]){"width", "hidden", NULL}},
    {.kind = "gpt", .keys = (const char *const[]){"layers", "dim", "heads", "ctx", "ff", NULL}},
    {.kind = NULL},
};

void pb_model_init(pb_model *m, const char *arch, int ic, int ih, int iw, int ncls)
{
    memset(m, 0, sizeof *m);
    snprintf(m->arch, sizeof m->arch, "%s", arch ? arch : "custom");
    m->ic = ic;
    m->ih = ih;
    m->iw = iw;
    m->ncls = ncls;
    m->ntok = 1;
    pb_rng_seed(&m->rng, 0x5eed);
}

static pb_param *new_param(pb_model *m, const char *lname, const char *suffix, int ndim,
                           const int *shape, int layer, char *err, size_t errlen)
{
    if (m->nparams >= PB_MAX_PARAMS) {
        pb_err(err, errlen, PB_EUSAGE, "too many parameters (limit %d)", PB_MAX_PARAMS);
        return NULL;
    }
    /* The element count is checked before anything is allocated: a shape
     * read from a file must neither wrap nor exceed what the file can hold. */
    size_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 1 || n > SIZE_MAX / sizeof(float) / (size_t)shape[i]) {
            pb_err(err, errlen, PB_EUSAGE, "%s%s%s: shape dimension %d is %d (too large or not positive)",
                   lname, suffix ? "." : "", suffix ? suffix : "", i, shape[i]);
            return NULL;
        }
        n *= (size_t)shape[i];
    }
    if (m->param_capped && n > m->param_room) {
        pb_err(err, errlen, PB_EUSAGE, "%s%s%s: %zu values, more than the %zu left of the parameters' limit",
               lname, suffix ? "." : "", suffix ? suffix : "", n, m->param_room);
        return NULL;
    }
    pb_param *p = calloc(1, sizeof *p);
    if (!p) {
        pb_err(err, errlen, PB_ENOMEM, "out of memory");
        return NULL;
    }
    snprintf(p->name, sizeof p->name, "%s%s%s", lname, suffix ? "." : "", suffix ? suffix : "");
    p->ndim = ndim;
    p->n = n;
    for (int i = 0; i < ndim; i++)
        p->shape[i] = shape[i];
    p->w = pb_alloc(p->n * sizeof(float));
    p->g = pb_alloc(p->n * sizeof(float));
    if (!p->w || !p->g) {
        pb_free(p->w);
        pb_free(p->g);
        free(p);
        pb_err(err, errlen, PB_ENOMEM, "out of memory for %s", lname);
        return NULL;
    }
    p->trainable = 1;
    p->layer = layer;
    p->fan_in = ndim > 1 ? (int)(p->n / (size_t)shape[0]) : 1;
    m->params[m->nparams++] = p;
    if (m->param_capped)
        m->param_room -= n;
    return p;
}

static void free_param(pb_param *p)
{
    if (!p)
        return;
    pb_free(p->w);
    pb_free(p->g);
    pb_free(p->mask);
    pb_free(p->opt1);
    pb_free(p->opt2);
    free(p);
}

static void producer_shape(const pb_model *m, int in, int *c, int *h, int *w)
{
    if (in < 0) {
        *c = m->ic;
        *h = m->ih;
        *w = m->iw;
    } else {
        const pb_layer *p = &m->layers[in];
        *c = p->oc;
        *h = p->oh;
        *w = p->ow;
    }
}

static int count_kind(const pb_model *m, pb_layer_kind k)
{
    int n = 0;
    for (int i = 0; i < m->nlayers; i++)
        n += m->layers[i].kind == k;
    return n;
}

int pb_model_append(pb_model *m, const pb_layer *proto, char *err, size_t errlen)
{
    if (m->nlayers >= PB_MAX_LAYERS)
        return pb_err(err, errlen, PB_EUSAGE, "too many layers (limit %d)", PB_MAX_LAYERS), -1;
    int idx = m->nlayers;
    pb_layer *l = &m->layers[idx];
    *l = *proto;
    l->w = l->b = NULL;
    l->run_mean = l->run_var = NULL;
    l->out = l->dout = l->ws = l->stat = NULL;
    l->idx = NULL;
    l->max_batch = 0;
    l->ws_n = 0;
    l->relu_after = l->in_place = 0;
    l->sp = NULL;
    if (l->in >= idx || l->in2 >= idx || l->in < -1 || l->in2 < -1)
        return pb_err(err, errlen, PB_EUSAGE, "layer %s reads from a later layer", l->name), -1;
    producer_shape(m, l->in, &l->ic, &l->ih, &l->iw);
    if (l->kind == PB_ADD) {
        int c2, h2, w2;
        producer_shape(m, l->in2, &c2, &h2, &w2);
        if (c2 != l->ic || h2 != l->ih || w2 != l->iw)
            return pb_err(err, errlen, PB_EUSAGE,
                          "residual add %s: shapes %dx%dx%d and %dx%dx%d differ", l->name, l->ic,
                          l->ih, l->iw, c2, h2, w2), -1;
    }
    if (!l->name[0]) {
        static const char *const prefix[PB_LAYER_KINDS] = {
            [PB_DENSE] = "fc", [PB_CONV] = "conv", [PB_MAXPOOL] = "pool", [PB_AVGPOOL] = "avgpool",
            [PB_GAP] = "gap", [PB_RELU] = "relu", [PB_BN] = "bn", [PB_FLATTEN] = "flatten",
            [PB_ADD] = "add", [PB_DROPOUT] = "dropout", [PB_EMBED] = "embed", [PB_LAYERNORM] = "ln",
            [PB_LINEAR] = "linear", [PB_ATTN] = "attn", [PB_GELU] = "gelu", [PB_TIEDOUT] = "head"};
        snprintf(l->name, sizeof l->name, "%s%d", prefix[l->kind], count_kind(m, l->kind) + 1);
    }
    if (pb_layer_infer_shape(l, err, errlen) != PB_OK)
        return -1;
    m->nlayers++;
    if (l->kind == PB_TIEDOUT) {
        /* the token table of an earlier embedding, shared, not a parameter of its own */
        const pb_layer *e = l->in2 >= 0 && l->in2 < idx ? &m->layers[l->in2] : NULL;
        if (!e || e->kind != PB_EMBED || e->oc != l->ic || e->k != l->oc) {
            m->nlayers--;
            return pb_err(err, errlen, PB_EUSAGE, "layer %s (tiedout): layer %d is not an embedding of %d "
                          "tokens by %d features", l->name, l->in2, l->oc, l->ic), -1;
        }
        l->w = e->w;
        l->has_bias = 0;
    } else if (l->kind == PB_EMBED) {
        int tok[2] = {l->k, l->oc}, pos[2] = {l->stride, l->oc};
        if (!(l->w = new_param(m, l->name, "weight", 2, tok, idx, err, errlen)) ||
            !(l->b = new_param(m, l->name, "pos", 2, pos, idx, err, errlen)))
            goto fail;
        l->has_bias = 1;
    } else if (l->kind == PB_LAYERNORM) {
        if (!(l->w = new_param(m, l->name, "weight", 1, &l->oc, idx, err, errlen)) ||
            !(l->b = new_param(m, l->name, "bias", 1, &l->oc, idx, err, errlen)))
            goto fail;
        l->has_bias = 1;
        for (int c = 0; c < l->oc; c++)
            l->w->w[c] = 1.0f;
    } else if (l->kind == PB_LINEAR) {
        int shp[2] = {l->oc, l->ic};
        if (!(l->w = new_param(m, l->name, "weight", 2, shp, idx, err, errlen)))
            goto fail;
        l->w->prunable = 1;
        if (l->has_bias && !(l->b = new_param(m, l->name, "bias", 1, &l->oc, idx, err, errlen)))
            goto fail;
    } else if (l->kind == PB_DENSE || l->kind == PB_CONV) {
        int shp[4] = {l->oc, (int)pb_layer_isize(l), 0, 0};
        int nd = 2;
        if (l->kind == PB_CONV) {
            shp[1] = l->ic;
            shp[2] = shp[3] = l->k;
            nd = 4;
        }
        if (!(l->w = new_param(m, l->name, "weight", nd, shp, idx, err, errlen)))
            goto fail;
        l->w->prunable = 1;
        if (l->has_bias && !(l->b = new_param(m, l->name, "bias", 1, &l->oc, idx, err, errlen)))
            goto fail;
    } else if (l->kind == PB_BN) {
        if (!(l->w = new_param(m, l->name, "weight", 1, &l->oc, idx, err, errlen)) ||
            !(l->b = new_param(m, l->name, "bias", 1, &l->oc, idx, err, errlen)))
            goto fail;
        l->run_mean = pb_alloc((size_t)l->oc * sizeof(float));
        l->run_var = pb_alloc((size_t)l->oc * sizeof(float));
        if (!l->run_mean || !l->run_var)
            goto fail;
        for (int c = 0; c < l->oc; c++) {
            l->run_var[c] = 1.0f;
            l->w->w[c] = 1.0f;
        }
        if (l->bn_eps == 0)
            l->bn_eps = 1e-5f;
        if (l->bn_momentum == 0)
            l->bn_momentum = 0.1f;
    }
    m->finalized = 0;
    return idx;
fail:
    m->nlayers--;
    if (!err || !err[0])
        pb_err(err, errlen, PB_ENOMEM, "out of memory");
    return -1;
}

static pb_layer proto_of(pb_model *m, pb_layer_kind kind, const char *name)
{
    pb_layer l;
    memset(&l, 0, sizeof l);
    l.kind = kind;
    l.in = m->nlayers - 1;
    l.in2 = -1;
    if (name)
        snprintf(l.name, sizeof l.name, "%s", name);
    return l;
}

int pb_model_dense(pb_model *m, const char *name, int out, int bias, char *err, size_t errlen)
{
    pb_layer l = proto_of(m, PB_DENSE, name);
    l.oc = out;
    l.has_bias = bias;
    return pb_model_append(m, &l, err, errlen);
}

int pb_model_conv(pb_model *m, const char *name, int oc, int k, int stride, int pad, int bias,
                  char *err, size_t errlen)
{
    pb_layer l = proto_of(m, PB_CONV, name);
    l.oc = oc;
    l.k = k;
    l.stride = stride;
    l.pad = pad;
    l.has_bias = bias;
    return pb_model_append(m, &l, err, errlen);
}

int pb_model_pool(pb_model *m, pb_layer_kind kind, int k, int stride, char *err, size_t errlen)
{
    pb_layer l = proto_of(m, kind, NULL);
    l.k = k;
    l.stride = stride;
    return pb_model_append(m, &l, err, errlen);
}

int pb_model_simple(pb_model *m, pb_layer_kind kind, char *err, size_t errlen)
{
    pb_layer l = proto_of(m, kind, NULL);
    return pb_model_append(m, &l, err, errlen);
}

int pb_model_bn(pb_model *m, char *err, size_t errlen)
{
    pb_layer l = proto_of(m, PB_BN, NULL);
    l.bn_eps = 1e-5f;
    l.bn_momentum = 0.1f;
    return pb_model_append(m, &l, err, errlen);
}

int pb_model_dropout(pb_model *m, float p, char *err, size_t errlen)
{
    pb_layer l = proto_of(m, PB_DROPOUT, NULL);
    l.p = p;
    return pb_model_append(m, &l, err, errlen);
}

int pb_model_add(pb_model *m, int a, int b, char *err, size_t errlen)
{
    pb_layer l = proto_of(m, PB_ADD, NULL);
    l.in = a;
    l.in2 = b;
    return pb_model_append(m, &l, err, errlen);
}

pb_param *pb_model_extra_param(pb_model *m, const char *name, size_t n, char *err, size_t errlen)
{
    if (n < 1 || n > INT_MAX) {
        pb_err(err, errlen, PB_EUSAGE, "%s: %zu values (expected 1..%d)", name, n, INT_MAX);
        return NULL;
    }
    int shp = (int)n;
    return new_param(m, name, NULL, 1, &shp, -1, err, errlen);
}

static int sole_consumer(const pb_model *m, int i);

int pb_model_finalize(pb_model *m, int max_batch, char *err, size_t errlen)
{
    if (m->nlayers == 0)
        return pb_err(err, errlen, PB_EUSAGE, "model %s has no layers", m->arch);
    pb_layer *last = &m->layers[m->nlayers - 1];
    m->ntok = last->kind == PB_LINEAR || last->kind == PB_TIEDOUT ? last->oh : 1;
    if (m->ncls < 1 || pb_layer_osize(last) != (size_t)m->ncls * (size_t)m->ntok)
        return pb_err(err, errlen, PB_EUSAGE, "model %s ends with %zu outputs but the data has %d classes",
                      m->arch, pb_layer_osize(last), m->ncls);
    if (m->finalized && m->max_batch >= max_batch)
        return PB_OK;
    /* Every layer's output and its gradient, for max_batch examples: refused
     * before allocating (the buffers are zeroed, so touched) when they would
     * not fit in memory, rather than leaving the out-of-memory killer to end
     * the process. A model read from a file bounds its activations per
     * example (pb_ckpt), not per batch. */
    if (max_batch >= 1) {
        double need = 0;
        for (int i = 0; i < m->nlayers; i++)
            need += 2.0 * (double)max_batch * (double)pb_layer_osize(&m->layers[i]) * sizeof(float);
        const double have = pb_mem_physical();
        if (have > 0 && need > 0.75 * have)
            return pb_err(err, errlen, PB_ENOMEM,
                          "model %s: its activations at batch %d need %.1f GiB, more than 3/4 of this machine's "
                          "%.1f GiB of memory (use a smaller batch)", m->arch, max_batch, need / 1073741824.0,
                          have / 1073741824.0);
    }
    for (int i = 0; i < m->nlayers; i++) {
        int rc = pb_layer_alloc(&m->layers[i], max_batch, err, errlen);
        if (rc != PB_OK)
            return rc;
    }
    /* A ReLU that is the only reader of a layer able to apply it works in
     * place on that layer's buffers, and the layer applies it (pb_layer.h):
     * one pass less over LeNet-5's largest activations, each way. */
    for (int i = 0; i < m->nlayers; i++) {
        pb_layer *r = &m->layers[i];
        if (r->kind != PB_RELU || r->in < 0 || !pb_layer_fuses_relu(&m->layers[r->in]) ||
            sole_consumer(m, r->in) != i)
            continue;
        pb_layer_run_in_place(r, &m->layers[r->in]);
    }
    pb_free(m->dlogits);
    pb_free(m->probs);
    pb_free(m->dx_scratch);
    m->dlogits = pb_alloc((size_t)max_batch * m->ntok * m->ncls * sizeof(float));
    m->probs = pb_alloc((size_t)max_batch * m->ntok * m->ncls * sizeof(float));
    m->dx_scratch = NULL;
    if (!m->dlogits || !m->probs)
        return pb_err(err, errlen, PB_ENOMEM, "out of memory");
    m->max_batch = max_batch;
    m->finalized = 1;
    m->sp_stale = 1; /* the layers' buffers, sparse formats among them, are new */
    return PB_OK;
}

void pb_model_init_weights(pb_model *m, uint64_t seed)
{
    pb_rng r;
    pb_rng_seed(&r, seed);
    for (int i = 0; i < m->nlayers; i++) {
        pb_layer *l = &m->layers[i];
        if (l->kind == PB_DENSE || l->kind == PB_CONV) {
            /* PyTorch's default: kaiming_uniform(a=sqrt(5)) = U(-1/sqrt(fan_in), 1/sqrt(fan_in)). */
            float bound = 1.0f / sqrtf((float)l->w->fan_in);
            for (size_t j = 0; j < l->w->n; j++)
                l->w->w[j] = (float)(2.0 * pb_rng_uniform(&r) - 1.0) * bound;
            if (l->b)
                for (size_t j = 0; j < l->b->n; j++)
                    l->b->w[j] = (float)(2.0 * pb_rng_uniform(&r) - 1.0) * bound;
        } else if (l->kind == PB_BN) {
            for (int c = 0; c < l->oc; c++) {
                l->w->w[c] = 1.0f;
                l->b->w[c] = 0.0f;
                l->run_mean[c] = 0.0f;
                l->run_var[c] = 1.0f;
            }
        } else if (l->kind == PB_LINEAR) {
            /* GPT-2's: N(0, 0.02), zero biases */
            for (size_t j = 0; j < l->w->n; j++)
                l->w->w[j] = 0.02f * pb_rng_normal(&r);
            if (l->b)
                memset(l->b->w, 0, l->b->n * sizeof(float));
        } else if (l->kind == PB_EMBED) {
            for (size_t j = 0; j < l->w->n; j++)
                l->w->w[j] = 0.02f * pb_rng_normal(&r);
            for (size_t j = 0; j < l->b->n; j++)
                l->b->w[j] = 0.02f * pb_rng_normal(&r);
        } else if (l->kind == PB_LAYERNORM) {
            for (int c = 0; c < l->oc; c++) {
                l->w->w[c] = 1.0f;
                l->b->w[c] = 0.0f;
            }
        }
    }
    pb_rng_seed(&m->rng, seed ^ 0xd00dULL);
    pb_model_apply_masks(m);
    m->gen_stale = 1; /* generated weights were overwritten */
    m->sp_stale = 1;
}

void pb_model_free(pb_model *m)
{
    for (int i = 0; i < m->nlayers; i++) {
        pb_layer_free(&m->layers[i]);
        pb_free(m->layers[i].run_mean);
        pb_free(m->layers[i].run_var);
    }
    for (int i = 0; i < m->nparams; i++)
        free_param(m->params[i]);
    pb_free(m->dlogits);
    pb_free(m->probs);
    pb_free(m->dx_scratch);
    memset(m, 0, sizeof *m);
}

static int scaled(int w, double width)
{
    int v = (int)lround(w * width);
    return v < 1 ? 1 : v;
}

#define TRY(expr)                 \
    do {                          \
        if ((expr) < 0)           \
            return PB_EUSAGE;     \
    } while (0)

static int build_resnet20(pb_model *m, double width, char *err, size_t errlen)
{
    int c = scaled(16, width);
    TRY(pb_model_conv(m, NULL, c, 3, 1, 1, 0, err, errlen));
    TRY(pb_model_bn(m, err, errlen));
    TRY(pb_model_simple(m, PB_RELU, err, errlen));
    for (int stage = 0; stage < 3; stage++) {
        int oc = scaled(16 << stage, width);
        for (int blk = 0; blk < 3; blk++) {
            int stride = (stage > 0 && blk == 0) ? 2 : 1;
            int entry = m->nlayers - 1;
            TRY(pb_model_conv(m, NULL, oc, 3, stride, 1, 0, err, errlen));
            TRY(pb_model_bn(m, err, errlen));
            TRY(pb_model_simple(m, PB_RELU, err, errlen));
            TRY(pb_model_conv(m, NULL, oc, 3, 1, 1, 0, err, errlen));
            int main_out = pb_model_bn(m, err, errlen);
            TRY(main_out);
            int shortcut = entry;
            if (stride != 1 || oc != c) {
                /* Projection shortcut (option B): 1x1 conv + BN reading the block input. */
                pb_layer l = proto_of(m, PB_CONV, NULL);
                l.in = entry;
                l.oc = oc;
                l.k = 1;
                l.stride = stride;
                TRY(pb_model_append(m, &l, err, errlen));
                TRY(shortcut = pb_model_bn(m, err, errlen));
            }
            TRY(pb_model_add(m, main_out, shortcut, err, errlen));
            TRY(pb_model_simple(m, PB_RELU, err, errlen));
            c = oc;
        }
    }
    TRY(pb_model_simple(m, PB_GAP, err, errlen));
    TRY(pb_model_dense(m, NULL, m->ncls, 1, err, errlen));
    return PB_OK;
}

int pb_model_build(pb_model *m, const char *name, double width, const int *hidden, int nh,
                   int ic, int ih, int iw, int ncls, char *err, size_t errlen)
{
    char arch[64];
    if (pb_gpt_is(name))
        return pb_gpt_build(m, name, ic, ih, iw, ncls, err, errlen);
    if (width <= 0)
        return pb_err(err, errlen, PB_EUSAGE, "width multiplier %g must be > 0", width);
    if (width != 1.0)
        snprintf(arch, sizeof arch, "%s:w=%g", name, width);
    else
        snprintf(arch, sizeof arch, "%s", name);
    pb_model_init(m, arch, ic, ih, iw, ncls);
    if (!strcmp(name, "lenet300") || !strcmp(name, "mlp")) {
        static const int lenet[2] = {300, 100};
        if (!strcmp(name, "lenet300")) {
            hidden = lenet;
            nh = 2;
        }
        for (int i = 0; i < nh; i++) {
            TRY(pb_model_dense(m, NULL, scaled(hidden[i], width), 1, err, errlen));
            TRY(pb_model_simple(m, PB_RELU, err, errlen));
        }
        TRY(pb_model_dense(m, NULL, ncls, 1, err, errlen));
    } else if (!strcmp(name, "lenet5")) {
        TRY(pb_model_conv(m, NULL, scaled(6, width), 5, 1, 2, 1, err, errlen));
        TRY(pb_model_simple(m, PB_RELU, err, errlen));
        TRY(pb_model_pool(m, PB_MAXPOOL, 2, 2, err, errlen));
        TRY(pb_model_conv(m, NULL, scaled(16, width), 5, 1, 0, 1, err, errlen));
        TRY(pb_model_simple(m, PB_RELU, err, errlen));
        TRY(pb_model_pool(m, PB_MAXPOOL, 2, 2, err, errlen));
        TRY(pb_model_dense(m, NULL, scaled(120, width), 1, err, errlen));
        TRY(pb_model_simple(m, PB_RELU, err, errlen));
        TRY(pb_model_dense(m, NULL, scaled(84, width), 1, err, errlen));
        TRY(pb_model_simple(m, PB_RELU, err, errlen));
        TRY(pb_model_dense(m, NULL, ncls, 1, err, errlen));
    } else if (!strcmp(name, "conv4")) {
        for (int blk = 0; blk < 2; blk++) {
            int c = scaled(64 << blk, width);
            TRY(pb_model_conv(m, NULL, c, 3, 1, 1, 1, err, errlen));
            TRY(pb_model_simple(m, PB_RELU, err, errlen));
            TRY(pb_model_conv(m, NULL, c, 3, 1, 1, 1, err, errlen));
            TRY(pb_model_simple(m, PB_RELU, err, errlen));
            TRY(pb_model_pool(m, PB_MAXPOOL, 2, 2, err, errlen));
        }
        for (int i = 0; i < 2; i++) {
            TRY(pb_model_dense(m, NULL, scaled(256, width), 1, err, errlen));
            TRY(pb_model_simple(m, PB_RELU, err, errlen));
        }
        TRY(pb_model_dense(m, NULL, ncls, 1, err, errlen));
    } else if (!strcmp(name, "resnet20")) {
        int rc = build_resnet20(m, width, err, errlen);
        if (rc != PB_OK)
            return rc;
    } else {
        char list[256] = "";
        for (int i = 0; pb_model_names[i]; i++) {
            strcat(list, i ? ", " : "");
            strcat(list, pb_model_names[i]);
        }
        return pb_err(err, errlen, PB_EUSAGE, "unknown model '%s' (valid: %s)", name, list);
    }
    return PB_OK;
}

int pb_model_clone(const pb_model *src, pb_model *dst, int max_batch, char *err, size_t errlen)
{
    pb_model_init(dst, src->arch, src->ic, src->ih, src->iw, src->ncls);
    for (int i = 0; i < src->nlayers; i++)
        if (pb_model_append(dst, &src->layers[i], err, errlen) < 0) {
            pb_model_free(dst);
            return PB_EUSAGE;
        }
    for (int i = 0; i < src->nparams; i++) {
        const pb_param *s = src->params[i];
        pb_param *d = i < dst->nparams ? dst->params[i] : NULL;
        if (!d) {
            if (!(d = pb_model_extra_param(dst, s->name, s->n, err, errlen))) {
                pb_model_free(dst);
                return PB_ENOMEM;
            }
        }
        memcpy(d->w, s->w, s->n * sizeof(float));
        d->trainable = s->trainable;
        d->removed = s->removed;
        if (s->mask) {
            d->mask = pb_alloc(s->n * sizeof(float));
            if (!d->mask) {
                pb_model_free(dst);
                return pb_err(err, errlen, PB_ENOMEM, "out of memory");
            }
            memcpy(d->mask, s->mask, s->n * sizeof(float));
        }
    }
    for (int i = 0; i < src->nlayers; i++)
        if (src->layers[i].kind == PB_BN) {
            memcpy(dst->layers[i].run_mean, src->layers[i].run_mean, (size_t)src->layers[i].oc * sizeof(float));
            memcpy(dst->layers[i].run_var, src->layers[i].run_var, (size_t)src->layers[i].oc * sizeof(float));
        }
    dst->rng = src->rng;
    int rc = pb_model_finalize(dst, max_batch, err, errlen);
    if (rc != PB_OK)
        pb_model_free(dst);
    return rc;
}

/* Whether layer l is an in-place ReLU that its producer applies (pb_layer.h). */
static int relu_fused(const pb_model *m, const pb_layer *l)
{
    return l->in_place && m->layers[l->in].relu_after;
}

void pb_model_arrays_changed(pb_model *m)
{
    m->gen_stale = 1;
    m->sp_stale = 1;
}

void pb_model_values_changed(pb_model *m)
{
    m->gen_stale = 1;
    m->sp_vals_stale = 1;
}

int pb_model_is_generated(const pb_model *m, int i) { return i >= 0 && i < m->nparams && m->gens[i].generate; }

void pb_model_generate(pb_model *m)
{
    if (!m->gen_stale)
        return;
    int any = 0;
    for (int i = 0; i < m->nparams; i++)
        if (m->gens[i].generate) {
            m->gens[i].generate(m->gens[i].ud, m->params[i]);
            any = 1;
        }
    m->generations += any;
    m->gen_stale = 0;
}

const float *pb_model_forward(pb_model *m, const float *x, int B, int train)
{
    pb_model_generate(m);
    pb_sparse_sync(m);
    /* An input hook must see a fused ReLU's input before the ReLU, so while
     * one is set the ReLUs run themselves, in place. */
    for (int i = 0; i < m->nlayers; i++)
        if (m->layers[i].in_place)
            m->layers[m->layers[i].in].relu_after = m->input_hook == NULL;
    for (int i = 0; i < m->nlayers; i++) {
        pb_layer *l = &m->layers[i];
        const float *in = l->in < 0 ? x : m->layers[l->in].out;
        const float *in2 = l->kind == PB_ADD ? (l->in2 < 0 ? x : m->layers[l->in2].out) : NULL;
        if (m->input_hook)
            m->input_hook(m->input_hook_ud, m, i, in, B);
        if (!relu_fused(m, l))
            pb_layer_forward(l, in, in2, B, train, &m->rng);
    }
    return m->layers[m->nlayers - 1].out;
}

const float *pb_model_infer(pb_model *m, const float *x, int B)
{
    pb_model_generate(m);
    pb_sparse_sync(m); /* the sparse formats follow the weights and masks, as in pb_model_forward */
    for (int i = 0; i < m->nlayers; i++)
        if (m->layers[i].in_place)
            m->layers[m->layers[i].in].relu_after = m->input_hook == NULL;
    for (int i = 0; i < m->nlayers; i++) {
        pb_layer *l = &m->layers[i];
        const float *in = l->in < 0 ? x : m->layers[l->in].out;
        const float *in2 = l->kind == PB_ADD ? (l->in2 < 0 ? x : m->layers[l->in2].out) : NULL;
        if (m->input_hook)
            m->input_hook(m->input_hook_ud, m, i, in, B);
        if (!relu_fused(m, l))
            pb_layer_infer(l, in, in2, B);
    }
    return m->layers[m->nlayers - 1].out;
}

double pb_model_loss(pb_model *m, const int *y, int B, float temperature, float *per_ex,
                     int *correct)
{
    const float *logits = m->layers[m->nlayers - 1].out;
    int K = m->ncls, ok = 0, nt = m->ntok;
    double total = 0;
    /* a language model's rows are its tokens: B * ntok of them, one target each */
    const int R = B * nt;
    float invt = 1.0f / temperature, invb = 1.0f / (float)R;
    if (per_ex && nt > 1)
        memset(per_ex, 0, (size_t)B * sizeof(float));
    for (int i = 0; i < R; i++) {
        const float *z = logits + (size_t)i * K;
        float *p = m->probs + (size_t)i * K, *d = m->dlogits + (size_t)i * K;
        float mx = z[0] * invt;
        int arg = 0;
        for (int k = 1; k < K; k++)
            if (z[k] * invt > mx) {
                mx = z[k] * invt;
                arg = k;
            }
        const double s = pb_kern_exp_sum(p, z, K, invt, mx);
        float invs = (float)(1.0 / s);
        for (int k = 0; k < K; k++) {
            p[k] *= invs;
            d[k] = p[k] * invb * invt;
        }
        d[y[i]] -= invb * invt;
        double li = -(z[y[i]] * invt - mx - log(s));
        if (per_ex && nt > 1)
            per_ex[i / nt] += (float)(li / nt);
        else if (per_ex)
            per_ex[i] = (float)li;
        total += li;
        ok += arg == y[i];
    }
    if (correct)
        *correct = ok;
    return total / R;
}

void pb_model_zero_grad(pb_model *m)
{
    /* a generated tensor's g is cleared by the backward that routes it (and
     * when its generator is set) */
    for (int i = 0; i < m->nparams; i++)
        if (!m->gens[i].backprop)
            pb_sparse_zero_grad(m, m->params[i]); /* a sparse layer's gradient is zero where pruned */
}

/* The layer whose backward alone writes layer i's output gradient: the only
 * reader of that output, unless it is a residual add (which accumulates);
 * -1 when there is no such layer. */
static int sole_consumer(const pb_model *m, int i)
{
    int n = 0, who = -1;
    for (int j = i + 1; j < m->nlayers; j++) {
        const pb_layer *l = &m->layers[j];
        const int reads = (l->in == i) + (l->kind == PB_ADD && l->in2 == i);
        n += reads;
        if (reads)
            who = j;
    }
    return n == 1 && m->layers[who].kind != PB_ADD ? who : -1;
}

void pb_model_backward(pb_model *m, const float *x, int B, const float *dlogits, float *dx)
{
    /* A gradient buffer with a sole consumer is written by that consumer's
     * backward (pb_layer_backward_write); the others (two consumers, as at a
     * residual add) are zeroed and accumulated into. */
    for (int i = 0; i < m->nlayers - 1; i++)
        if (sole_consumer(m, i) < 0)
            memset(m->layers[i].dout, 0, (size_t)B * pb_layer_osize(&m->layers[i]) * sizeof(float));
    pb_layer *last = &m->layers[m->nlayers - 1];
    memcpy(last->dout, dlogits ? dlogits : m->dlogits, (size_t)B * m->ntok * m->ncls * sizeof(float));
    if (dx)
        memset(dx, 0, (size_t)B * m->ic * m->ih * m->iw * sizeof(float));
    for (int i = m->nlayers - 1; i >= 0; i--) {
        pb_layer *l = &m->layers[i];
        const float *in = l->in < 0 ? x : m->layers[l->in].out;
        float *din = l->in < 0 ? dx : m->layers[l->in].dout;
        float *din2 = NULL;
        if (l->kind == PB_ADD) {
            const float *in2 = l->in2 < 0 ? x : m->layers[l->in2].out;
            (void)in2;
            din2 = l->in2 < 0 ? dx : m->layers[l->in2].dout;
        }
        if (relu_fused(m, l))
            continue;
        if (l->in >= 0 && sole_consumer(m, l->in) == i)
            pb_layer_backward_write(l, in, din, B);
        else
            pb_layer_backward(l, in, din, din2, B);
    }
    /* The generated weights' gradients move into the arrays' (and are
     * cleared), so a second backward before zero_grad (gradients accumulated
     * over batches) routes only its own contribution. */
    for (int i = 0; i < m->nparams; i++)
        if (m->gens[i].backprop) {
            m->gens[i].backprop(m->gens[i].ud, m->params[i]);
            memset(m->params[i]->g, 0, m->params[i]->n * sizeof(float));
        }
}

void pb_model_apply_masks(pb_model *m)
{
    for (int i = 0; i < m->nparams; i++) {
        pb_param *p = m->params[i];
        if (!p->mask)
            continue;
        for (size_t j = 0; j < p->n; j++)
            p->w[j] *= p->mask[j];
    }
    m->sp_stale = 1; /* masks may have changed too */
}

int pb_model_nprunable(const pb_model *m)
{
    int n = 0;
    for (int i = 0; i < m->nparams; i++)
        n += m->params[i]->prunable;
    return n;
}

pb_param *pb_model_prunable(const pb_model *m, int k)
{
    for (int i = 0; i < m->nparams; i++)
        if (m->params[i]->prunable && k-- == 0)
            return m->params[i];
    return NULL;
}

int pb_model_ensure_masks(pb_model *m, char *err, size_t errlen)
{
    for (int i = 0; i < m->nparams; i++) {
        pb_param *p = m->params[i];
        if (!p->prunable || p->mask)
            continue;
        p->mask = pb_alloc(p->n * sizeof(float));
        if (!p->mask)
            return pb_err(err, errlen, PB_ENOMEM, "out of memory for the mask of %s", p->name);
        for (size_t j = 0; j < p->n; j++)
            p->mask[j] = 1.0f;
    }
    return PB_OK;
}

static size_t nonzero_of(const pb_param *p)
{
    size_t nz = 0;
    for (size_t j = 0; j < p->n; j++)
        nz += p->w[j] != 0.0f && (!p->mask || p->mask[j] != 0.0f);
    return nz;
}

void pb_model_sparsity(const pb_model *m, size_t *total, size_t *nonzero)
{
    size_t t = 0, nz = 0;
    for (int i = 0; i < m->nparams; i++)
        if (m->params[i]->prunable) {
            t += m->params[i]->n + m->params[i]->removed;
            nz += m->gens[i].generate ? 0 : nonzero_of(m->params[i]);
        }
    /* generated weights are stored as their shared arrays */
    for (int i = 0; i < m->nparams; i++)
        if (m->params[i]->layer < 0 && !m->params[i]->prunable)
            for (int k = 0; k < m->nparams; k++)
                if (m->gens[k].generate) {
                    nz += m->params[i]->n;
                    break;
                }
    *total = t;
    *nonzero = nz;
}

void pb_model_count_params(const pb_model *m, size_t *total, size_t *nonzero)
{
    size_t t = 0, nz = 0;
    int shared = 0;
    for (int i = 0; i < m->nparams; i++)
        shared |= m->gens[i].generate != NULL;
    for (int i = 0; i < m->nparams; i++) {
        /* with parameter sharing the network's parameters are its weights,
         * generated or not; the shared arrays are what it stores (stored) */
        if (shared && m->params[i]->layer < 0)
            continue;
        t += m->params[i]->n + m->params[i]->removed;
        nz += nonzero_of(m->params[i]);
    }
    *total = t;
    *nonzero = nz;
}

size_t pb_model_stored(const pb_model *m)
{
    size_t st = 0;
    for (int i = 0; i < m->nparams; i++) {
        const pb_param *p = m->params[i];
        if (m->gens[i].generate)
            continue;
        if (m->costs[i].set) {
            st += (size_t)llround(m->costs[i].stored);
            continue;
        }
        st += p->layer < 0 ? p->n : nonzero_of(p); /* a shared array is stored whole */
    }
    for (int i = 0; i < m->nlayers; i++)
        if (m->layers[i].kind == PB_BN)
            st += 2 * (size_t)m->layers[i].oc; /* running mean and variance */
    return st;
}

static int layer_generated(const pb_model *m, const pb_layer *l)
{
    for (int i = 0; l->w && i < m->nparams; i++)
        if (m->params[i] == l->w)
            return m->gens[i].generate != NULL;
    return 0;
}

/* A layer whose weight's method reported its cost: 2 FLOPs per multiply-add
 * at every output position, and the bias. */
static double reported_flops(const pb_layer *l, const pb_param_cost *c)
{
    const double positions = l->kind == PB_CONV ? (double)l->oh * l->ow : 1.0;
    return 2.0 * c->macs * positions + (l->has_bias ? (double)l->oc * positions : 0.0);
}

void pb_model_flops(const pb_model *m, double *dense, double *effective)
{
    double d = 0, e = 0;
    for (int i = 0; i < m->nlayers; i++) {
        const pb_layer *l = &m->layers[i];
        const pb_param_cost *c = l->w && (l->kind == PB_DENSE || l->kind == PB_CONV) ? pb_model_cost_of(m, l->w) : NULL;
        d += pb_layer_flops(l, 0);
        e += c ? reported_flops(l, c) : pb_layer_flops(l, !layer_generated(m, l)); /* a generated layer is dense */
    }
    if (dense)
        *dense = d;
    if (effective)
        *effective = e;
}

double pb_model_train_flops(const pb_model *m)
{
    double d;
    pb_model_flops(m, &d, NULL);
    return 3.0 * d;
}

double pb_model_train_flops_eff(const pb_model *m)
{
    double e;
    pb_model_flops(m, NULL, &e);
    return 3.0 * e;
}

pb_param *pb_model_find_param(const pb_model *m, const char *name)
{
    for (int i = 0; i < m->nparams; i++)
        if (!strcmp(m->params[i]->name, name))
            return m->params[i];
    return NULL;
}

void pb_model_set_generator(pb_model *m, pb_param *target, pb_param_gen gen)
{
    for (int i = 0; i < m->nparams; i++)
        if (m->params[i] == target) {
            m->gens[i] = gen;
            target->trainable = gen.generate ? 0 : 1;
            memset(target->g, 0, target->n * sizeof(float));
            m->gen_stale = 1;
        }
}

void pb_model_set_cost(pb_model *m, const pb_param *target, double macs, double stored)
{
    for (int i = 0; i < m->nparams; i++)
        if (m->params[i] == target)
            m->costs[i] = (pb_param_cost){.set = 1, .macs = macs, .stored = stored};
}

const pb_param_cost *pb_model_cost_of(const pb_model *m, const pb_param *p)
{
    for (int i = 0; i < m->nparams; i++)
        if (m->params[i] == p)
            return m->costs[i].set ? &m->costs[i] : NULL;
    return NULL;
}

void pb_model_set_input_hook(pb_model *m, pb_input_hook hook, void *ud)
{
    m->input_hook = hook;
    m->input_hook_ud = ud;
}

void pb_model_print(const pb_model *m, void *file)
{
    FILE *f = file;
    size_t total, nz;
    fprintf(f, "model %s: input %dx%dx%d, %d classes\n", m->arch, m->ic, m->ih, m->iw, m->ncls);
    for (int i = 0; i < m->nlayers; i++) {
        const pb_layer *l = &m->layers[i];
        size_t np = (l->w ? l->w->n : 0) + (l->b ? l->b->n : 0);
        fprintf(f, "  %-10s %-8s %4dx%-3dx%-3d -> %4dx%-3dx%-3d params %zu\n", l->name,
                pb_layer_kind_names[l->kind], l->ic, l->ih, l->iw, l->oc, l->oh, l->ow, np);
    }
    pb_model_count_params(m, &total, &nz);
    size_t removed = 0;
    for (int i = 0; i < m->nparams; i++)
        removed += m->params[i]->removed;
    double df;
    pb_model_flops(m, &df, NULL);
    fprintf(f, "  parameters: %zu, inference FLOPs per example: %.0f\n", total - removed, df);
    if (removed)
        fprintf(f, "  removed by structural pruning: %zu parameters\n", removed);
}
