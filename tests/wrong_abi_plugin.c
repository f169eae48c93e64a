/* A plugin built for an ABI this host does not speak: the loader must refuse it. */
#include <prunebench/plugin.h>

static int prune(void *s, const pb_host *h, pb_ctx *c, double sp)
{
    (void)s, (void)h, (void)c, (void)sp;
    return PB_PLUGIN_OK;
}

const pb_plugin *prunebench_plugin(void);
const pb_plugin *prunebench_plugin(void)
{
    static const pb_plugin d = {
        .abi_major = PB_ABI_MAJOR + 1, .abi_minor = 0, .size = sizeof(pb_plugin),
        .name = "future", .description = "built against a newer ABI",
        .kind = PB_KIND_UNSTRUCTURED, .when = PB_WHEN_TRAINED, .prune = prune,
    };
    return &d;
}
