/* stable_rps: STABLE-RPS (Desai & Shrivastava, "In defense of parameter
 * sharing for model-compression", ICLR 2024). One array z of round((1 - s) * N)
 * trained values for the whole model, read through the global fold of
 * METHODS.md: all prunable weights flattened in layer order to an index g,
 * h(g) = (hash(g div m) + g mod m) mod m, so each run of m consecutive weights
 * reads z whole from a hashed rotation (a permutation at s = 0: the dense
 * model is recovered), W_g = lambda_l * G_g * z[h(g)] with lambda_l and z's
 * initialization as in roast. Gradient scaling (scaling = 1): dL/dz_j is
 * multiplied by count_j / (sum_{g: h(g)=j} lambda_g)^2, which makes a shared
 * value move like the mean of its weights under SGD whatever z's init scale
 * (at s = 0 it is exactly dense SGD, a test checks it).
 *
 * Departures from the paper: the scaling is METHODS.md's form of the paper's
 * rule, applied in the generator's backward (before the optimizer, so with
 * momentum SGD it scales the update and with Adam it mostly cancels); the
 * hash is splitmix64's finalizer seeded by the run's seed; initialization
 * uniform as in roast. scaling = 0 keeps the fold without the scaling (an
 * ablation). See sharing.h. */
#include "sharing.h"

enum { ARG_INIT_SCALE, ARG_SCALING };

static const pb_param_spec params[] = {
    {.name = "init_scale", .type = PB_PT_REAL, .def = 1, .lo = 1e-4, .hi = 1e4,
     .help = "scale of the shared array's initialization relative to the mean layer init (changes lambda only)"},
    {.name = "scaling", .type = PB_PT_BOOL, .def = 1, .lo = 0, .hi = 1,
     .help = "STABLE-RPS gradient scaling count_j / (sum lambda)^2 (0: the fold alone)"},
    {.name = NULL},
};

static int create(const pb_host *h, pb_ctx *c, const double *args, void **out)
{
    return sh_create(h, c, SH_FOLD, args[ARG_INIT_SCALE], 1, 1, (int)args[ARG_SCALING], out);
}

PB_PLUGIN_DEFINE(.name = "stable_rps",
                 .description = "STABLE-RPS: global fold into one shared array with gradient scaling (Desai & Shrivastava 2024)",
                 .kind = PB_KIND_SHARING, .when = PB_WHEN_TRAINING, .params = params, .create = create,
                 .destroy = sh_destroy, .prune = sh_prune, .attach = sh_attach, .needs = PB_NEEDS_SHARING)
