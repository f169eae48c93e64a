/* synflow_score.h: SynFlow's iterative scoring and pruning (Tanaka et al.
 * 2020), shared by the synflow plugin and precropping (which takes SynFlow's
 * per-layer densities), compiled into each (static functions, no symbol of
 * its own). See synflow.c for the algorithm.
 *
 * Range. The reference code computes R in double; the host computes in float,
 * and R grows roughly like the product of the layers' row sums of |w|, which
 * can pass FLT_MAX in deep networks. Each round is first computed unscaled
 * (the exact algorithm). Only if R, a gradient or a score is not finite is
 * every prunable weight scaled by the same power of two 2^-k (exact in float,
 * undone exactly by restoring the saved weights), k found by doubling and then
 * bisection, and kept for later rounds (lowered again if R drops below 2^-60).
 * For a bias-free network in which every input-output path crosses the same
 * number L of prunable layers, R and every score are homogeneous of degree L
 * in that scale, so all scores shrink by one factor 2^-kL and the global
 * ranking is unchanged. Biases (which the plugin cannot reach) and residual
 * shortcuts (paths of different lengths) make the scaled ranking an
 * approximation; the log says when scaling was used. If no k gives a finite R
 * the prune fails and says so. */
#ifndef PB_SYNFLOW_SCORE_H
#define PB_SYNFLOW_SCORE_H

#include <prunebench/plugin_util.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { EVAL_OK = 0, EVAL_OVERFLOW, EVAL_UNDERFLOW };

#define MAX_SHIFT 120
#define R_TINY 0x1p-60

/* One SynFlow evaluation with every |w| scaled by 2^-shift: fills scores,
 * restores the signed weights from saved. *verdict says whether R and the
 * scores are usable. Returns a host status. */
static int eval_scores(const pb_host *h, pb_ctx *c, int nw, int shift, float **saved,
                       float *const *scores, double *R, int *verdict)
{
    int rc = PB_PLUGIN_OK;
    for (int i = 0; i < nw; i++) {
        pb_weights wt = {.size = sizeof wt};
        if ((rc = h->weights(c, i, &wt)) != PB_PLUGIN_OK)
            return rc;
        memcpy(saved[i], wt.w, wt.n * sizeof(float));
        for (size_t j = 0; j < wt.n; j++)
            wt.w[j] = ldexpf(fabsf(wt.w[j]), -shift);
    }
    *R = 0;
    int rc_grad = h->grad_output_sum(c, R);
    int finite = isfinite(*R);
    for (int i = 0; i < nw; i++) {
        pb_weights wt = {.size = sizeof wt};
        if ((rc = h->weights(c, i, &wt)) != PB_PLUGIN_OK)
            return rc;
        for (size_t j = 0; j < wt.n && rc_grad == PB_PLUGIN_OK; j++) {
            float sc = fabsf(wt.g[j] * wt.w[j]);
            finite &= isfinite(wt.g[j]) && isfinite(sc);
            scores[i][j] = sc;
        }
        memcpy(wt.w, saved[i], wt.n * sizeof(float)); /* signs back, bit for bit */
    }
    if (rc_grad != PB_PLUGIN_OK)
        return rc_grad;
    *verdict = !finite ? EVAL_OVERFLOW : shift > 0 && *R < R_TINY ? EVAL_UNDERFLOW : EVAL_OK;
    return PB_PLUGIN_OK;
}

/* Scores for one round, searching the shift when float overflows. */
static int round_scores(const pb_host *h, pb_ctx *c, int nw, int *shift, float **saved,
                        float *const *scores, double *R)
{
    int over = -1, under = MAX_SHIFT + 1; /* largest shift known to overflow, smallest to underflow */
    for (;;) {
        int verdict = EVAL_OK, rc = eval_scores(h, c, nw, *shift, saved, scores, R, &verdict);
        if (rc != PB_PLUGIN_OK)
            return rc;
        if (verdict == EVAL_OK)
            return PB_PLUGIN_OK;
        if (verdict == EVAL_OVERFLOW) {
            over = *shift;
            *shift = under > MAX_SHIFT ? (*shift ? 2 * *shift : 1) : (over + under) / 2;
            if (*shift > MAX_SHIFT)
                *shift = MAX_SHIFT;
        } else {
            under = *shift;
            *shift = (over + under) / 2;
            if (*shift < 0)
                *shift = 0;
        }
        if (*shift <= over || *shift >= under)
            return h->fail(c,
                           "R = sum of outputs is not representable in float: it overflows "
                           "with the weights scaled by 2^-%d and is below 2^-60 (or overflows) at "
                           "2^-%d; the host would have to compute R in double",
                           over, under > MAX_SHIFT ? MAX_SHIFT : under);
    }
}

/* SynFlow to `sparsity` in `rounds` rounds on the current model: writes and
 * applies the masks (the plugin's whole prune). */
static int synflow_prune(const pb_host *h, pb_ctx *c, int rounds, double sparsity)
{
    int nw, rc;
    if ((rc = pb_need_weights(h, c, &nw)) || (rc = pb_check_sparsity(h, c, sparsity, PB_SPARSITY_TO_1)))
        return rc;
    float *const *scores = h->scores(c);
    if (!scores)
        return PB_PLUGIN_FAIL;
    float **saved = calloc((size_t)nw, sizeof *saved);
    if (!saved)
        return h->fail(c, "out of memory");
    for (int i = 0; i < nw; i++) {
        pb_weights wt = {.size = sizeof wt};
        if ((rc = h->weights(c, i, &wt)) != PB_PLUGIN_OK)
            goto out;
        if (!(saved[i] = malloc((wt.n ? wt.n : 1) * sizeof(float)))) {
            rc = h->fail(c, "out of memory");
            goto out;
        }
    }
    double d = 1.0 - sparsity, R = 0, R0 = 0;
    int shift = 0, max_shift = 0;
    for (int k = 1; k <= rounds; k++) {
        if ((rc = round_scores(h, c, nw, &shift, saved, scores, &R)) != PB_PLUGIN_OK)
            goto out;
        if (k == 1)
            R0 = R;
        if (shift > max_shift)
            max_shift = shift;
        double sk = k == rounds ? sparsity : 1.0 - pow(d, (double)k / rounds);
        if ((rc = h->mask_topk(c, scores, sk, 0, 0)) != PB_PLUGIN_OK)
            goto out;
    }
    h->log(c, "%d rounds to sparsity %g; R %.6g in round 1, %.6g in the last (weights scaled by 2^-%d)",
           rounds, sparsity, R0, R, shift);
    if (max_shift > 0)
        h->log(c, "R overflowed float, so every prunable weight was scaled by the same power "
                  "of two (at most 2^-%d) while scoring; the ranking is exact only for bias-free "
                  "networks whose paths all cross the same number of prunable layers",
               max_shift);
out:
    for (int i = 0; i < nw; i++)
        free(saved[i]);
    free(saved);
    return rc;
}

#endif
