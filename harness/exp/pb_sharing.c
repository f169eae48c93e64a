#include "pb_sharing.h"

#include <stdio.h>
#include <string.h>

static const pb_metric *metric_of(const pb_job_result *res, const char *name)
{
    for (int i = 0; i < res->nmetrics; i++)
        if (!strcmp(res->metrics[i].name, name))
            return &res->metrics[i];
    return NULL;
}

void pb_sharing_measure(const pb_model *m, pb_job_result *res)
{
    int shared = 0;
    for (int i = 0; i < m->nparams; i++)
        shared |= pb_model_is_generated(m, i);
    if (!shared)
        return;
    if (res->nmetrics < PB_JOB_MAX_METRICS) {
        /* float32 values; the hash maps are recomputed from the seed, not stored */
        pb_metric *mb = &res->metrics[res->nmetrics++];
        snprintf(mb->name, sizeof mb->name, "memory_bytes");
        mb->value = 4.0 * (double)res->stored;
    }
    for (int k = 0; k < res->nlayers; k++) {
        pb_layer_stat *s = &res->layers[k];
        const pb_param *p = pb_model_find_param(m, s->name);
        int i = 0;
        while (i < m->nparams && m->params[i] != p)
            i++;
        if (!p || !pb_model_is_generated(m, i) || pb_model_cost_of(m, p))
            continue; /* a reported cost has set the row */
        char name[80];
        snprintf(name, sizeof name, "reads.%s", s->name);
        const pb_metric *r = metric_of(res, name);
        s->nonzero = r && r->value >= 0 && r->value <= (double)s->n ? (size_t)r->value : s->n;
    }
}
