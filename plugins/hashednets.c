/* hashednets: HashedNets (Chen, Wilson, Tyree, Weinberger & Chen, "Compressing
 * Neural Networks with the Hashing Trick", ICML 2015). Each prunable layer l
 * gets its own array A_l of round((1 - s) * n_l) trained values; weight i of
 * the layer is w_i = xi(i) * A_l[h_l(i)], h_l an element-wise hash into A_l and
 * xi(i) = +-1 a second hash (the paper's sign hash, which makes the inner
 * products unbiased). The gradient of A_l[j] is the signed sum of the
 * gradients of the weights mapped to j.
 *
 * Departures from the paper: one 64-bit mix (splitmix64's finalizer, seeded
 * by the run's seed) gives both the index and the sign instead of xxHash;
 * conv layers are hashed as well as dense ones (the paper hashes fully
 * connected layers); A_l starts from U(-1/sqrt(fan_in), 1/sqrt(fan_in)), the
 * dense layer's own initialization, so the generated layer starts with the
 * dense layer's weight distribution; every layer has the same compression
 * (the paper's experiments also use one factor for all layers). Training is
 * the run's recipe, without the paper's dropout schedule. See sharing.h. */
#include "sharing.h"

static const pb_param_spec params[] = {
    {.name = NULL},
};

static int create(const pb_host *h, pb_ctx *c, const double *args, void **out)
{
    (void)args;
    return sh_create(h, c, SH_HASHED, 1.0, 1, 1, 0, out);
}

PB_PLUGIN_DEFINE(.name = "hashednets",
                 .description = "HashedNets: per-layer shared arrays, w_i = sign(i) * A[h(i)] (Chen et al. 2015)",
                 .kind = PB_KIND_SHARING, .when = PB_WHEN_TRAINING, .params = params, .create = create,
                 .destroy = sh_destroy, .prune = sh_prune, .attach = sh_attach, .needs = PB_NEEDS_SHARING)
