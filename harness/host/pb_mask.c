/* pb_mask: choosing masks from scores — exact top-k over one tensor or all
 * of them, the magnitude criterion, and the host-owned score arrays. */
#include "pb_mask.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void pb_mask_free_scratch(pb_ctx *c)
{
    for (int i = 0; i < c->nscratch; i++)
        free(c->scratch[i]);
    c->nscratch = 0;
}

/* Keeps the k highest scores among candidates of one or more tensors: finds the
 * k-th largest by selection, then takes ties in index order so the count is exact. */
static int keep_topk(pb_ctx *c, pb_param **ps, float *const *scores, int np, size_t k, int regrow)
{
    size_t ncand = 0;
    for (int t = 0; t < np; t++)
        for (size_t j = 0; j < ps[t]->n; j++)
            ncand += regrow || ps[t]->mask[j] != 0.0f;
    if (k > ncand)
        k = ncand;
    float *buf = malloc((ncand ? ncand : 1) * sizeof(float));
    if (!buf)
        return pb_err(c->err, c->errlen, PB_ENOMEM, "out of memory");
    size_t q = 0;
    for (int t = 0; t < np; t++)
        for (size_t j = 0; j < ps[t]->n; j++)
            if (regrow || ps[t]->mask[j] != 0.0f) {
                float s = scores[t][j];
                buf[q++] = isnan(s) ? -INFINITY : -s; /* select the k-th smallest of -score */
            }
    float thr = INFINITY;
    size_t above = 0;
    if (k > 0) {
        thr = -pb_select_kth(buf, ncand, k - 1); /* the k-th highest score */
        above = 0;
        for (int t = 0; t < np; t++)
            for (size_t j = 0; j < ps[t]->n; j++)
                if (regrow || ps[t]->mask[j] != 0.0f) {
                    float s = isnan(scores[t][j]) ? -INFINITY : scores[t][j];
                    above += s > thr;
                }
    }
    size_t ties = k - above; /* scores equal to thr to keep, lowest index first */
    for (int t = 0; t < np; t++)
        for (size_t j = 0; j < ps[t]->n; j++) {
            int cand = regrow || ps[t]->mask[j] != 0.0f;
            float s = isnan(scores[t][j]) ? -INFINITY : scores[t][j];
            int keep = 0;
            if (cand && k > 0) {
                if (s > thr)
                    keep = 1;
                else if (s == thr && ties > 0) {
                    keep = 1;
                    ties--;
                }
            }
            ps[t]->mask[j] = keep ? 1.0f : 0.0f;
        }
    free(buf);
    return PB_OK;
}

int pb_mask_topk(pb_ctx *c, float *const *scores, double sparsity, int scope, int regrow)
{
    if (!(sparsity >= 0.0 && sparsity <= 1.0))
        return pb_err(c->err, c->errlen, PB_EPLUGIN, "method %s: sparsity %g not in [0, 1]",
                      c->plugin ? c->plugin->desc.name : "?", sparsity);
    int np = pb_model_nprunable(c->m);
    pb_param *ps[PB_MAX_PARAMS];
    size_t total = 0;
    for (int t = 0; t < np; t++) {
        ps[t] = pb_model_prunable(c->m, t);
        total += ps[t]->n;
    }
    int rc = PB_OK;
    if (scope == 0) {
        size_t k = (size_t)llround((1.0 - sparsity) * (double)total);
        rc = keep_topk(c, ps, scores, np, k, regrow);
    } else {
        for (int t = 0; t < np && rc == PB_OK; t++) {
            size_t k = (size_t)llround((1.0 - sparsity) * (double)ps[t]->n);
            rc = keep_topk(c, &ps[t], &scores[t], 1, k, regrow);
        }
    }
    pb_model_apply_masks(c->m);
    return rc;
}

float *const *pb_mask_scores(pb_ctx *c)
{
    if (c->nscratch == 0) {
        int np = pb_model_nprunable(c->m);
        for (int i = 0; i < np; i++) {
            c->scratch[i] = malloc((pb_model_prunable(c->m, i)->n + 1) * sizeof(float));
            c->nscratch = i + 1;
            if (!c->scratch[i]) {
                pb_mask_free_scratch(c);
                pb_err(c->err, c->errlen, PB_ENOMEM, "out of memory for scores");
                return NULL;
            }
        }
    }
    return c->scratch;
}

int pb_mask_magnitude(pb_ctx *c, double sparsity, int scope, int regrow)
{
    float *const *scores = pb_mask_scores(c);
    if (!scores)
        return PB_ENOMEM;
    for (int i = 0; i < c->nscratch; i++) {
        const pb_param *p = pb_model_prunable(c->m, i);
        for (size_t j = 0; j < p->n; j++)
            scores[i][j] = fabsf(p->w[j]);
    }
    return pb_mask_topk(c, scores, sparsity, scope, regrow);
}

