/* A method plugin that misbehaves in one of two ways, chosen by its `what`
 * parameter: nan writes NaN into the first weight tensor, exit calls exit(0)
 * in the middle of the run. t_prune_fail.sh checks that `prune` reports both
 * as failures. */
#include <math.h>
#include <stdlib.h>

#include "prunebench/plugin_util.h"

enum { WHAT_NAN, WHAT_EXIT };

static const pb_param_spec params[] = {
    {.name = "what", .type = PB_PT_CHOICE, .def = WHAT_NAN, .lo = 0, .hi = 1, .choices = "nan|exit",
     .help = "how to misbehave"},
    {.name = NULL},
};

static int create(const pb_host *h, pb_ctx *c, const double *args, void **out)
{
    int rc = pb_state_new(h, c, sizeof(int), out);
    if (rc == PB_PLUGIN_OK)
        *(int *)*out = (int)args[0];
    return rc;
}

static int prune(void *state, const pb_host *h, pb_ctx *c, double sparsity)
{
    (void)sparsity;
    if (*(int *)state == WHAT_EXIT)
        exit(0);
    pb_weights w = {.size = sizeof w};
    int rc = h->weights(c, 0, &w);
    if (rc == PB_PLUGIN_OK)
        for (size_t j = 0; j < w.n; j++)
            w.w[j] = NAN;
    return rc;
}

PB_PLUGIN_DEFINE(.name = "misbehave", .description = "test plugin: writes NaN or calls exit(0)",
                 .kind = PB_KIND_UNSTRUCTURED, .when = PB_WHEN_TRAINED, .params = params, .create = create,
                 .destroy = pb_state_free, .prune = prune)
