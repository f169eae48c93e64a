/* A plugin for the loader's checks of ABI 1.1 descriptors, its variant chosen
 * when it is compiled:
 *   -DNEEDS=bits      what it declares it needs (default PB_NEEDS_SELECT)
 *   -DNO_SELECT       leave out the select hook
 * Its descriptor calls it "needs_plugin"; built under another file name it is
 * a plugin whose name and file disagree. */
#include <prunebench/plugin.h>

#ifndef NEEDS
#define NEEDS PB_NEEDS_SELECT
#endif

static int prune(void *s, const pb_host *h, pb_ctx *c, double sp)
{
    (void)s;
    return h->mask_magnitude(c, sp, 1, 0);
}

#ifndef NO_SELECT
/* every example, in order */
static int select_all(void *s, const pb_host *h, pb_ctx *c, int epoch, int n_total, int *idx, int *n)
{
    (void)s, (void)h, (void)c, (void)epoch;
    for (int i = 0; i < n_total; i++)
        idx[i] = i;
    *n = n_total;
    return PB_PLUGIN_OK;
}
#endif

const pb_plugin *prunebench_plugin(void);
const pb_plugin *prunebench_plugin(void)
{
    static const pb_plugin d = {
        .abi_major = PB_ABI_MAJOR, .abi_minor = PB_ABI_MINOR, .size = sizeof(pb_plugin),
        .name = "needs_plugin", .description = "declares what it needs",
        .kind = PB_KIND_UNSTRUCTURED, .when = PB_WHEN_TRAINED, .prune = prune,
#ifndef NO_SELECT
        .select = select_all,
#endif
        .needs = NEEDS,
    };
    return &d;
}
