#include "pb_optim.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "pb_check.h"
#include "pb_sparse.h"

const char *const pb_opt_names[] = {[PB_OPT_SGD] = "sgd", [PB_OPT_ADAM] = "adam", [PB_OPT_ADAMW] = "adamw", NULL};
const char *const pb_sched_names[] = {[PB_SCHED_CONSTANT] = "constant", [PB_SCHED_STEP] = "step",
                                      [PB_SCHED_COSINE] = "cosine", [PB_SCHED_LINEAR] = "linear",
                                      NULL};

void pb_optim_defaults(pb_optim_cfg *c)
{
    memset(c, 0, sizeof *c);
    c->kind = PB_OPT_SGD;
    c->lr = 0.05;
    c->momentum = 0.9;
    c->beta1 = 0.9;
    c->beta2 = 0.999;
    c->eps = 1e-8;
    c->sched = PB_SCHED_CONSTANT;
    c->step_epochs = 10;
    c->gamma = 0.1;
}

int pb_name_lookup(const char *const *names, const char *what, const char *name, char *err,
                   size_t errlen)
{
    char list[512] = "";
    size_t used = 0;
    for (int i = 0; names[i]; i++) {
        if (name && !strcmp(names[i], name))
            return i;
        used += (size_t)snprintf(list + used, used < sizeof list ? sizeof list - used : 0, "%s%s",
                                 i ? ", " : "", names[i]);
    }
    const char *near = pb_check_suggest(name, names);
    if (near)
        pb_err(err, errlen, PB_EUSAGE, "unknown %s '%s': did you mean '%s'? (valid: %s)", what, name, near, list);
    else
        pb_err(err, errlen, PB_EUSAGE, "unknown %s '%s' (valid: %s)", what, name ? name : "", list);
    return -1;
}

int pb_optim_init(pb_optim *o, pb_model *m, const pb_optim_cfg *cfg, char *err, size_t errlen)
{
    o->cfg = *cfg;
    o->t = 0;
    for (int i = 0; i < m->nparams; i++) {
        pb_param *p = m->params[i];
        if (!p->opt1 && !(p->opt1 = pb_alloc(p->n * sizeof(float))))
            return pb_err(err, errlen, PB_ENOMEM, "out of memory for optimizer state");
        if ((cfg->kind == PB_OPT_ADAM || cfg->kind == PB_OPT_ADAMW) && !p->opt2 && !(p->opt2 = pb_alloc(p->n * sizeof(float))))
            return pb_err(err, errlen, PB_ENOMEM, "out of memory for optimizer state");
    }
    pb_optim_reset(o, m);
    return PB_OK;
}

void pb_optim_reset(pb_optim *o, pb_model *m)
{
    o->t = 0;
    for (int i = 0; i < m->nparams; i++) {
        pb_param *p = m->params[i];
        if (p->opt1)
            memset(p->opt1, 0, p->n * sizeof(float));
        if (p->opt2)
            memset(p->opt2, 0, p->n * sizeof(float));
    }
}

double pb_optim_lr(const pb_optim_cfg *c, long step, long total, long per_epoch)
{
    double lr = c->lr;
    if (total < 1)
        total = 1;
    switch (c->sched) {
    case PB_SCHED_STEP:
        if (per_epoch > 0 && c->step_epochs > 0)
            lr *= pow(c->gamma, (double)(step / per_epoch / c->step_epochs));
        break;
    case PB_SCHED_COSINE:
        lr *= 0.5 * (1.0 + cos(M_PI * (double)step / (double)total));
        break;
    case PB_SCHED_LINEAR:
        lr *= 1.0 - (double)step / (double)total;
        break;
    default:
        break;
    }
    if (c->warmup_steps > 0 && step < c->warmup_steps)
        lr *= (double)(step + 1) / (double)c->warmup_steps;
    return lr;
}

/* The SGD update runs over every parameter at every step, so it is written
 * with GCC vector extensions and cloned for AVX-512 and AVX2 like the thin
 * convolutions in pb_layer.c (gcc -O2 does not vectorize loops). Each lane
 * does the scalar code's operations in the same order, without contraction
 * into FMA, so every clone gives the same bits. */
#define VL 16
typedef float vf_unaligned
    __attribute__((vector_size(VL * sizeof(float)), aligned(sizeof(float))));
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define CLONES
#endif

/* PyTorch semantics: g += wd*w; v = mu*v + g; step = nesterov ? g + mu*v : v. */
CLONES static void sgd_update(float *restrict w, float *restrict g, float *restrict v, size_t n,
                              float lr, float mu, float wd, int nesterov)
{
    size_t j = 0;
    for (; j + VL <= n; j += VL) {
        vf_unaligned *wv = (vf_unaligned *)(w + j), *vv = (vf_unaligned *)(v + j);
        const vf_unaligned gj = *(const vf_unaligned *)(g + j) + wd * *wv;
        *vv = mu * *vv + gj;
        *wv -= lr * (nesterov ? gj + mu * *vv : *vv);
    }
    for (; j < n; j++) {
        float gj = g[j] + wd * w[j];
        v[j] = mu * v[j] + gj;
        w[j] -= lr * (nesterov ? gj + mu * v[j] : v[j]);
    }
}

static void adam_update(float *restrict w, const float *restrict g, float *restrict m1,
                        float *restrict m2, size_t n, float lr, float b1, float b2, float eps,
                        float wd, float bc1, float bc2)
{
    float sc = lr / bc1, isq = 1.0f / sqrtf(bc2);
    for (size_t j = 0; j < n; j++) {
        float gj = g[j] + wd * w[j];
        m1[j] = b1 * m1[j] + (1.0f - b1) * gj;
        m2[j] = b2 * m2[j] + (1.0f - b2) * gj * gj;
        w[j] -= sc * m1[j] / (sqrtf(m2[j]) * isq + eps);
    }
}

/* The same updates on the kept weights of a sparse layer alone (pos: their
 * indices, UINT32_MAX for padding), in the same operations, so the same
 * bits: the pruned ones stay at zero, value and moments (opt_clean). */
static void sgd_update_kept(float *restrict w, const float *restrict g, float *restrict v,
                            const uint32_t *pos, size_t n, float lr, float mu, float wd, int nesterov)
{
    for (size_t k = 0; k < n; k++) {
        const uint32_t j = pos[k];
        if (j == UINT32_MAX)
            continue;
        float gj = g[j] + wd * w[j];
        v[j] = mu * v[j] + gj;
        w[j] -= lr * (nesterov ? gj + mu * v[j] : v[j]);
    }
}

static void adam_update_kept(float *restrict w, const float *restrict g, float *restrict m1,
                             float *restrict m2, const uint32_t *pos, size_t n, float lr, float b1,
                             float b2, float eps, float wd, float bc1, float bc2)
{
    float sc = lr / bc1, isq = 1.0f / sqrtf(bc2);
    for (size_t k = 0; k < n; k++) {
        const uint32_t j = pos[k];
        if (j == UINT32_MAX)
            continue;
        float gj = g[j] + wd * w[j];
        m1[j] = b1 * m1[j] + (1.0f - b1) * gj;
        m2[j] = b2 * m2[j] + (1.0f - b2) * gj * gj;
        w[j] -= sc * m1[j] / (sqrtf(m2[j]) * isq + eps);
    }
}

static void mask_mul(float *restrict a, const float *restrict mask, size_t n)
{
    for (size_t j = 0; j < n; j++)
        a[j] *= mask[j];
}

void pb_optim_step(pb_optim *o, pb_model *m, double lr)
{
    const pb_optim_cfg *c = &o->cfg;
    o->t++;
    float bc1 = (float)(1.0 - pow(c->beta1, (double)o->t));
    float bc2 = (float)(1.0 - pow(c->beta2, (double)o->t));
    for (int i = 0; i < m->nparams; i++) {
        pb_param *p = m->params[i];
        if (!p->trainable || m->gens[i].generate)
            continue;
        const uint32_t *pos;
        size_t npos;
        if (p->mask && pb_sparse_kept(m, p, &pos, &npos) && m->layers[p->layer].sp->opt_clean) {
            if (c->kind == PB_OPT_ADAM)
                adam_update_kept(p->w, p->g, p->opt1, p->opt2, pos, npos, (float)lr, (float)c->beta1,
                                 (float)c->beta2, (float)c->eps, (float)c->wd, bc1, bc2);
            else
                sgd_update_kept(p->w, p->g, p->opt1, pos, npos, (float)lr, (float)c->momentum,
                                (float)c->wd, c->nesterov);
            continue;
        }
        if (p->mask && pb_sparse_kept(m, p, &pos, &npos))
            m->layers[p->layer].sp->opt_clean = 1; /* this step zeroes the pruned moments */
        if (p->mask)
            mask_mul(p->g, p->mask, p->n);
        if (c->kind == PB_OPT_ADAMW) {
            const float decay = 1.0f - (float)(lr * c->wd);
            for (size_t j = 0; j < p->n; j++)
                p->w[j] *= decay;
            adam_update(p->w, p->g, p->opt1, p->opt2, p->n, (float)lr, (float)c->beta1, (float)c->beta2,
                        (float)c->eps, 0.0f, bc1, bc2);
        } else if (c->kind == PB_OPT_ADAM)
            adam_update(p->w, p->g, p->opt1, p->opt2, p->n, (float)lr, (float)c->beta1,
                        (float)c->beta2, (float)c->eps, (float)c->wd, bc1, bc2);
        else
            sgd_update(p->w, p->g, p->opt1, p->n, (float)lr, (float)c->momentum, (float)c->wd,
                       c->nesterov);
        if (p->mask) {
            /* exact zeros: value and every optimizer moment */
            mask_mul(p->w, p->mask, p->n);
            mask_mul(p->opt1, p->mask, p->n);
            if (p->opt2)
                mask_mul(p->opt2, p->mask, p->n);
        }
    }
    pb_model_values_changed(m); /* generated weights and sparse formats follow */
}
