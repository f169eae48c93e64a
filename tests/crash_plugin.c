/* A method plugin that crashes: its prune hook writes through a NULL pointer.
 * t_run.sh builds it and checks that only its own cell fails. */
#include <stddef.h>

#include "prunebench/plugin.h"

static int prune(void *state, const pb_host *h, pb_ctx *c, double sparsity)
{
    (void)state, (void)h, (void)c, (void)sparsity;
    volatile int *p = NULL;
    *p = 42; /* SIGSEGV */
    return PB_PLUGIN_OK;
}

static const pb_param_spec params[] = {{.name = NULL}};

const pb_plugin *prunebench_plugin(void);

const pb_plugin *prunebench_plugin(void)
{
    static const pb_plugin desc = {
        .abi_major = PB_ABI_MAJOR,
        .abi_minor = PB_ABI_MINOR,
        .size = sizeof(pb_plugin),
        .name = "crash",
        .description = "test plugin whose prune hook dereferences NULL",
        .kind = PB_KIND_UNSTRUCTURED,
        .when = PB_WHEN_INIT,
        .params = params,
        .prune = prune,
    };
    return &desc;
}
