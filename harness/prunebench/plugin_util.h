/* prunebench/plugin_util.h: optional helpers for writing a plugin.
 *
 * Header-only (every function is static inline), so a plugin still links
 * against nothing: it adds no symbol and no ABI of its own. It removes what
 * every plugin would otherwise repeat:
 *
 *     #include <prunebench/plugin_util.h>
 *
 *     static int create(const pb_host *h, pb_ctx *c, const double *args, void **out)
 *     {
 *         int rc = PB_NEED_HOST(h, c, grad);
 *         if (rc == PB_PLUGIN_OK)
 *             rc = pb_state_new(h, c, sizeof(state), out);
 *         if (rc != PB_PLUGIN_OK)
 *             return rc;
 *         state *st = *out;
 *         st->examples = (int)args[ARG_EXAMPLES];
 *         return PB_PLUGIN_OK;
 *     }
 *
 *     PB_PLUGIN_DEFINE(.name = "snip", .description = "...", .kind = PB_KIND_UNSTRUCTURED,
 *                      .when = PB_WHEN_INIT, .params = params, .create = create,
 *                      .destroy = pb_state_free, .prune = prune)
 *
 * Every check returns PB_PLUGIN_OK or the status of host->fail() (the
 * context's error already set), so a hook just returns what it got.
 *
 * C++: the header compiles as C++, but PB_PLUGIN_DEFINE's designated
 * initializers need C++20, written in the order of pb_plugin's fields. */
#ifndef PRUNEBENCH_PLUGIN_UTIL_H
#define PRUNEBENCH_PLUGIN_UTIL_H

#include <prunebench/plugin.h>

#include <stdlib.h>

/* C++ gives the entry symbol C linkage; g++ -Wextra warns about every hook a
 * designated initializer leaves out, which is the point of one, so the
 * descriptor is compiled without that warning. */
#ifdef __cplusplus
#define PB_PLUGIN_LINKAGE extern "C"
#define PB_PLUGIN_INIT_BEGIN \
    _Pragma("GCC diagnostic push") _Pragma("GCC diagnostic ignored \"-Wmissing-field-initializers\"")
#define PB_PLUGIN_INIT_END _Pragma("GCC diagnostic pop")
#else
#define PB_PLUGIN_LINKAGE
#define PB_PLUGIN_INIT_BEGIN
#define PB_PLUGIN_INIT_END
#endif

/* Defines the entry symbol prunebench_plugin() and its static descriptor from
 * the designated initializers given (.name, .description, .kind, .when, the
 * hooks...), with abi_major, abi_minor and size filled for this header's ABI.
 * Use it once per plugin, at file scope, after the hooks. */
#define PB_PLUGIN_DEFINE(...)                                                                        \
    PB_PLUGIN_LINKAGE const pb_plugin *prunebench_plugin(void);                                     \
    PB_PLUGIN_LINKAGE const pb_plugin *prunebench_plugin(void)                                      \
    {                                                                                               \
        PB_PLUGIN_INIT_BEGIN                                                                        \
        static const pb_plugin pb_plugin_desc = {                                                   \
            .abi_major = PB_ABI_MAJOR, .abi_minor = PB_ABI_MINOR, .size = sizeof(pb_plugin),        \
            __VA_ARGS__};                                                                           \
        PB_PLUGIN_INIT_END                                                                          \
        return &pb_plugin_desc;                                                                     \
    }

/* ---- state ---- */

/* create()'s allocation: a zeroed block of size bytes into *state (create's
 * own out-parameter); out of memory is reported through h->fail. */
static inline int pb_state_new(const pb_host *h, pb_ctx *c, size_t size, void **state)
{
    *state = calloc(1, size ? size : 1);
    return *state ? PB_PLUGIN_OK : h->fail(c, "out of memory");
}

/* The matching destroy hook, for a state that owns no other allocation. */
static inline void pb_state_free(void *state) { free(state); }

/* ---- checks ---- */

/* Fails with "the host lacks NAME()" unless has is true; has is normally
 * PB_HOST_HAS(h, NAME), which PB_NEED_HOST(h, c, NAME) spells out. A host of an
 * older minor, or one leaving an entry NULL, is refused with a message naming
 * the function. Chain several with ||:
 *     if ((rc = PB_NEED_HOST(h, c, grad)) || (rc = PB_NEED_HOST(h, c, scores)))
 *         return rc;  */
static inline int pb_need_host(const pb_host *h, pb_ctx *c, int has, const char *name)
{
    return has ? PB_PLUGIN_OK : h->fail(c, "the host lacks %s()", name);
}

#define PB_NEED_HOST(h, c, fn) pb_need_host((h), (c), PB_HOST_HAS(h, fn), #fn)

/* The model's count of prunable tensors into *nw; fails if there are none. */
static inline int pb_need_weights(const pb_host *h, pb_ctx *c, int *nw)
{
    *nw = h->nweights(c);
    return *nw > 0 ? PB_PLUGIN_OK : h->fail(c, "the model has no prunable weights");
}

/* Which sparsities a method accepts: one-shot pruning can remove everything
 * ([0, 1]); a method that trains or ranks what survives needs something left
 * ([0, 1)). */
typedef enum pb_sparsity_range {
    PB_SPARSITY_TO_1 = 0,  /* [0, 1] */
    PB_SPARSITY_BELOW_1    /* [0, 1) */
} pb_sparsity_range;

/* Fails unless sparsity lies in range (NaN never does). */
static inline int pb_check_sparsity(const pb_host *h, pb_ctx *c, double sparsity, pb_sparsity_range range)
{
    if (range == PB_SPARSITY_BELOW_1)
        return sparsity >= 0 && sparsity < 1 ? PB_PLUGIN_OK
                                             : h->fail(c, "sparsity %g not in [0, 1)", sparsity);
    return sparsity >= 0 && sparsity <= 1 ? PB_PLUGIN_OK : h->fail(c, "sparsity %g not in [0, 1]", sparsity);
}

#endif
