/* full: every training example in every round, reshuffled — the reference the
 * data-selection methods are measured against (Okanovic et al. 2023, "Repeated
 * Random Sampling for Minimizing the Time-to-Accuracy of Learning", compare
 * every method with training on the full data set). It is the same training as
 * no data method at all, except that the order of each epoch is drawn from the
 * data method's own random stream. */
#include "data_select.h"

static int create(const pb_host *h, pb_ctx *c, const double *args, void **out)
{
    (void)args;
    *out = NULL;
    return PB_NEED_HOST(h, c, random);
}

static int select_all(void *st, const pb_host *h, pb_ctx *c, int epoch, int n_total, int *idx, int *n)
{
    (void)st, (void)epoch;
    ds_iota(idx, n_total);
    ds_shuffle(h, c, idx, n_total, n_total);
    *n = n_total;
    return PB_PLUGIN_OK;
}

static const pb_param_spec params[] = {{.name = NULL}};

PB_PLUGIN_DEFINE(.name = "full", .description = "data: the whole training set every round (the reference)",
                 .kind = PB_KIND_DATA, .when = PB_WHEN_TRAINING, .params = params, .create = create,
                 .select = select_all, .needs = PB_NEEDS_SELECT)
