/* pb_surgery: structural pruning — removing output units of a layer and the
 * matching inputs of the layer(s) it feeds, rebuilding the model in place. */
#include "pb_surgery.h"

#include <stdlib.h>
#include <string.h>

/* Copies rows/channels: dst[o][i] = src[keep_o[o]][keep_i[i]] over blocks of `inner` floats. */
static void gather(float *dst, const float *src, int nin_src, const int *ko, int no, const int *ki, int ni,
                   int inner)
{
    for (int o = 0; o < no; o++)
        for (int i = 0; i < ni; i++)
            memcpy(dst + ((size_t)o * ni + i) * inner, src + ((size_t)ko[o] * nin_src + ki[i]) * inner,
                   (size_t)inner * sizeof(float));
}

/* A qkv layer's kept units (ascending) must be whole heads of the attention
 * a, the same heads in q, k and v: then *cols receives the attention's kept
 * output columns (heads * head dimension, malloc'd). */
static int attn_heads(pb_ctx *c, const char *name, const pb_layer *a, const int *keep, int nkeep, int **cols)
{
    const int dh = a->k, D = a->oc, H = D / dh;
    if (nkeep % (3 * dh))
        return pb_ctx_fail(c, "remove_units(%s): it feeds attention heads of %d units in each of q, k and v; "
                           "keep whole heads (a multiple of %d units, not %d)", name, dh, 3 * dh, nkeep);
    const int nh = nkeep / (3 * dh);
    int *out = malloc(sizeof(int) * (size_t)(nh * dh));
    if (!out)
        return pb_err(c->err, c->errlen, PB_ENOMEM, "out of memory");
    /* the heads named by the q part, then the whole expected list */
    int q = 0, bad = 0;
    for (int k = 0; k < nh && !bad; k++) {
        int h = keep[k * dh] / dh;
        bad = h >= H;
        for (int j = 0; j < dh && !bad; j++)
            for (int part = 0; part < 3 && !bad; part++)
                bad = keep[part * nh * dh + k * dh + j] != part * D + h * dh + j;
        for (int j = 0; j < dh && !bad; j++)
            out[q++] = h * dh + j;
    }
    if (bad) {
        free(out);
        return pb_ctx_fail(c, "remove_units(%s): the kept units are not whole heads (of %d units), the same in q, "
                           "k and v", name, dh);
    }
    *cols = out;
    return PB_OK;
}

int pb_surgery_remove_units(pb_ctx *c, int i, const int *keep, int nkeep)
{
    pb_model *m = c->m;
    pb_param *p = pb_model_prunable(m, i);
    if (!p)
        return pb_ctx_fail(c, "remove_units: no weight tensor %d", i);
    int L = p->layer, oc = m->layers[L].oc;
    if (nkeep < 1 || nkeep > oc)
        return pb_ctx_fail(c, "remove_units(%s): keeping %d of %d units", p->name, nkeep, oc);
    for (int k = 0; k < nkeep; k++)
        if (keep[k] < 0 || keep[k] >= oc || (k && keep[k] <= keep[k - 1]))
            return pb_ctx_fail(c, "remove_units(%s): keep list must be ascending unit indices in [0, %d)", p->name, oc);
    /* Follow the output through shape-preserving layers to the one consumer that has weights. */
    int cur = L, next = -1, flat_hw = 1;
    /* the consumer's input columns to keep: the units, or an attention's heads */
    const int *kin = keep;
    int nkin = nkeep, *heads_in = NULL;
    for (;;) {
        int users = 0, user = -1;
        for (int j = cur + 1; j < m->nlayers; j++)
            if (m->layers[j].in == cur || m->layers[j].in2 == cur) {
                users++;
                user = j;
            }
        if (users == 0 && heads_in)
            free(heads_in);
        if (users == 0)
            return pb_ctx_fail(c, "remove_units(%s): it is the output layer; the classes cannot be removed", p->name);
        if ((users > 1 || m->layers[user].kind == PB_ADD) && heads_in)
            free(heads_in);
        if (users > 1 || m->layers[user].kind == PB_ADD)
            return pb_ctx_fail(c, "remove_units(%s): its output feeds a residual connection; not supported", p->name);
        pb_layer_kind k = m->layers[user].kind;
        if (k == PB_ATTN && cur == L) {
            /* units are q, k and v of heads: whole heads go, the same in all three */
            int rc = attn_heads(c, p->name, &m->layers[user], keep, nkeep, &heads_in);
            if (rc != PB_OK)
                return rc;
            kin = heads_in;
            nkin = nkeep / 3;
            cur = user;
            continue;
        }
        if (k == PB_EMBED || k == PB_LAYERNORM || k == PB_ATTN || k == PB_TIEDOUT) {
            free(heads_in);
            return pb_ctx_fail(c, "remove_units(%s): its output feeds a %s layer; not supported", p->name,
                               pb_layer_kind_names[k]);
        }
        if (k == PB_LINEAR) {
            next = user;
            break;
        }
        if (k == PB_DENSE || k == PB_CONV) {
            next = user;
            /* a dense consumer reached through FLATTEN sees channel-major blocks of h*w */
            if (k == PB_DENSE)
                flat_hw = (int)(pb_layer_isize(&m->layers[user]) / (size_t)oc);
            break;
        }
        cur = user;
    }
    pb_model nm;
    char e2[PB_ERRLEN];
    pb_model_init(&nm, m->arch, m->ic, m->ih, m->iw, m->ncls);
    for (int j = 0; j < m->nlayers; j++) {
        pb_layer proto = m->layers[j];
        if (j == L)
            proto.oc = nkeep;
        if (pb_model_append(&nm, &proto, e2, sizeof e2) < 0) {
            pb_model_free(&nm);
            free(heads_in);
            return pb_ctx_fail(c, "remove_units(%s): %s", p->name, e2);
        }
    }
    int *all = malloc(sizeof(int) * 65536);
    if (!all) {
        free(heads_in);
        pb_model_free(&nm);
        return pb_err(c->err, c->errlen, PB_ENOMEM, "out of memory");
    }
    for (int k = 0; k < 65536; k++)
        all[k] = k;
    for (int q = 0; q < m->nparams; q++) {
        pb_param *s = m->params[q], *d = nm.params[q];
        int li = s->layer;
        const pb_layer *sl = li >= 0 ? &m->layers[li] : NULL;
        int touched_out = li == L, touched_in = li == next && s == sl->w;
        int between = li > L && li < next && sl && sl->kind == PB_BN;
        if (touched_out) {
            int inner = (int)(s->n / (size_t)s->shape[0]);
            gather(d->w, s->w, 1, keep, nkeep, all, 1, inner);
            if (s->mask)
                d->mask = pb_alloc(d->n * sizeof(float)), gather(d->mask, s->mask, 1, keep, nkeep, all, 1, inner);
        } else if (between) {
            gather(d->w, s->w, 1, keep, nkeep, all, 1, 1);
        } else if (touched_in) {
            int rows = s->shape[0], inner = sl->kind == PB_CONV ? sl->k * sl->k : flat_hw;
            int nin = (int)(s->n / (size_t)rows / (size_t)inner);
            gather(d->w, s->w, nin, all, rows, kin, nkin, inner);
            if (s->mask)
                d->mask = pb_alloc(d->n * sizeof(float)), gather(d->mask, s->mask, nin, all, rows, kin, nkin, inner);
        } else {
            memcpy(d->w, s->w, s->n * sizeof(float));
            if (s->mask) {
                d->mask = pb_alloc(d->n * sizeof(float));
                memcpy(d->mask, s->mask, s->n * sizeof(float));
            }
        }
        d->trainable = s->trainable;
        d->removed = s->removed + (s->n - d->n); /* the units gone count as pruned */
    }
    for (int j = 0; j < m->nlayers; j++)
        if (m->layers[j].kind == PB_BN) {
            int between = j > L && j < next;
            if (between) {
                gather(nm.layers[j].run_mean, m->layers[j].run_mean, 1, keep, nkeep, all, 1, 1);
                gather(nm.layers[j].run_var, m->layers[j].run_var, 1, keep, nkeep, all, 1, 1);
            } else {
                memcpy(nm.layers[j].run_mean, m->layers[j].run_mean, (size_t)m->layers[j].oc * sizeof(float));
                memcpy(nm.layers[j].run_var, m->layers[j].run_var, (size_t)m->layers[j].oc * sizeof(float));
            }
        }
    free(all);
    free(heads_in);
    nm.rng = m->rng;
    int rc = pb_model_finalize(&nm, m->max_batch, c->err, c->errlen);
    if (rc != PB_OK) {
        pb_model_free(&nm);
        return rc;
    }
    pb_ctx_forget_values(c); /* snapshots, init copy, kept views, scratch: old shapes */
    pb_model_free(m);
    *m = nm;
    return PB_OK;
}

