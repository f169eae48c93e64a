/* synflow: SynFlow (Tanaka et al. 2020), data-free iterative pruning at
 * initialization. In each of `rounds` rounds k = 1..n: every prunable weight is
 * replaced by |w| (masked weights stay 0), the host feeds an all-ones input
 * with BN in eval mode and returns R = sum of the outputs and dR/dw; the score
 * is |dR/dw * w|; the signed weights are restored and the top scores are kept
 * globally at sparsity 1 - d^(k/n) (d = 1 - s), already-pruned weights not
 * competing. The last round lands exactly on s.
 *
 * The scoring lives in synflow_score.h, shared with precropping; its header
 * says how float overflow of R is handled. */
#include "synflow_score.h"

enum { ARG_ROUNDS };

static const pb_param_spec params[] = {
    {.name = "rounds", .type = PB_PT_INT, .def = 100, .lo = 1, .hi = 100000,
     .help = "pruning rounds n; round k prunes to sparsity 1 - d^(k/n)"},
    {.name = NULL},
};

typedef struct state {
    int rounds;
} state;

static int create(const pb_host *h, pb_ctx *c, const double *args, void **out)
{
    int rc;
    if ((rc = PB_NEED_HOST(h, c, grad_output_sum)) || (rc = PB_NEED_HOST(h, c, mask_topk)) ||
        (rc = PB_NEED_HOST(h, c, scores)) || (rc = pb_state_new(h, c, sizeof(state), out)))
        return rc;
    state *st = *out;
    st->rounds = (int)args[ARG_ROUNDS];
    return PB_PLUGIN_OK;
}

static int prune(void *p, const pb_host *h, pb_ctx *c, double sparsity)
{
    const state *st = p;
    return synflow_prune(h, c, st->rounds, sparsity);
}

PB_PLUGIN_DEFINE(
    .name = "synflow",
    .description = "SynFlow, data-free: iteratively keep the top |dR/dw * w| of R = sum of outputs on |w|, all-ones input",
    .kind = PB_KIND_UNSTRUCTURED,
    .when = PB_WHEN_INIT,
    .params = params,
    .create = create,
    .destroy = pb_state_free,
    .prune = prune)
