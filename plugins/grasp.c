/* grasp: GraSP (Wang, Zhang & Grosse 2020), pruning at initialization by
 * preserving gradient flow. With the logits divided by `temperature`,
 * g = dL/dw on `examples` training examples, Hg = the Hessian of the same loss
 * times g (the host's hvp: exact, by forward-over-reverse differentiation, as
 * the reference code's double backprop), and the paper's score is S(-w) = -w * Hg: the
 * first-order change of the gradient norm when w is removed. GraSP removes the
 * s*N weights with the HIGHEST S(-w), ranked globally.
 *
 * Sign: the reference code (alecwangcq/GraSP, pruner/GraSP.py) computes
 * -weight * grad(g^T stop_grad(g)) and keeps `score <= threshold` of the top
 * s*N, i.e. it keeps the lowest -w*Hg. Keeping the lowest -w*Hg is keeping the
 * highest w*Hg, so w*Hg is what goes to mask_topk (which keeps the highest).
 * The reference code's division by |sum of scores| does not change the ranking
 * and is skipped. Weights already pruned (mask 0) stay pruned. */
#include <prunebench/plugin_util.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { ARG_EXAMPLES, ARG_TEMPERATURE };

static const pb_param_spec params[] = {
    {.name = "examples", .type = PB_PT_INT, .def = 128, .lo = 1, .hi = 1000000,
     .help = "training examples for g and Hg (the same draw for both)"},
    {.name = "temperature", .type = PB_PT_REAL, .def = 200, .lo = 1e-3, .hi = 1e6,
     .help = "logits are divided by this before the loss (the paper's T = 200)"},
    {.name = NULL},
};

typedef struct state {
    int examples;
    double temperature;
} state;

static int create(const pb_host *h, pb_ctx *c, const double *args, void **out)
{
    int rc;
    if ((rc = PB_NEED_HOST(h, c, grad)) || (rc = PB_NEED_HOST(h, c, hvp)) ||
        (rc = PB_NEED_HOST(h, c, mask_topk)) || (rc = PB_NEED_HOST(h, c, scores)) ||
        (rc = pb_state_new(h, c, sizeof(state), out)))
        return rc;
    state *st = *out;
    st->examples = (int)args[ARG_EXAMPLES];
    st->temperature = args[ARG_TEMPERATURE];
    return PB_PLUGIN_OK;
}

static int prune(void *p, const pb_host *h, pb_ctx *c, double sparsity)
{
    const state *st = p;
    int nw, rc;
    if ((rc = pb_need_weights(h, c, &nw)) || (rc = pb_check_sparsity(h, c, sparsity, PB_SPARSITY_TO_1)))
        return rc;
    double loss = 0;
    if ((rc = h->grad(c, st->examples, st->temperature, &loss)) != PB_PLUGIN_OK)
        return rc;
    /* v is a copy of g (hosts whose hvp() took differences of gradients
     * overwrote g); hg (the host's scores) receives H v and then the scores */
    float *const *hg = h->scores(c);
    if (!hg)
        return PB_PLUGIN_FAIL;
    float **v = calloc((size_t)nw, sizeof *v);
    if (!v)
        return h->fail(c, "out of memory");
    double gnorm2 = 0;
    for (int i = 0; i < nw; i++) {
        pb_weights wt = {.size = sizeof wt};
        if ((rc = h->weights(c, i, &wt)) != PB_PLUGIN_OK)
            goto out;
        if (!(v[i] = malloc((wt.n ? wt.n : 1) * sizeof(float)))) {
            rc = h->fail(c, "out of memory");
            goto out;
        }
        memcpy(v[i], wt.g, wt.n * sizeof(float));
        for (size_t j = 0; j < wt.n; j++)
            gnorm2 += (double)wt.g[j] * wt.g[j];
    }
    if ((rc = h->hvp(c, (const float *const *)v, hg)) != PB_PLUGIN_OK)
        goto out;
    double gHg = 0;
    for (int i = 0; i < nw; i++) {
        pb_weights wt = {.size = sizeof wt};
        if ((rc = h->weights(c, i, &wt)) != PB_PLUGIN_OK)
            goto out;
        for (size_t j = 0; j < wt.n; j++) {
            gHg += (double)v[i][j] * hg[i][j];
            hg[i][j] *= wt.w[j]; /* w * Hg: keep the highest (see the top comment) */
            if (!isfinite(hg[i][j])) {
                rc = h->fail(c, "the score of %s[%zu] is not finite (%g)", wt.name, j,
                             (double)hg[i][j]);
                goto out;
            }
        }
    }
    h->log(c, "T=%g, %d examples, loss %.6f, |g|^2 %.4g, g^T H g %.4g", st->temperature,
           st->examples, loss, gnorm2, gHg);
    rc = h->mask_topk(c, hg, sparsity, 0, 0);
out:
    for (int i = 0; i < nw; i++)
        free(v[i]);
    free(v);
    return rc;
}

PB_PLUGIN_DEFINE(
    .name = "grasp",
    .description = "GraSP at initialization: remove the s*N weights with the highest -w*Hg (gradient flow)",
    .kind = PB_KIND_UNSTRUCTURED,
    .when = PB_WHEN_INIT,
    .params = params,
    .create = create,
    .destroy = pb_state_free,
    .prune = prune)
