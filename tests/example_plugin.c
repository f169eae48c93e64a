/* rowwise: keep the largest |w| of every output row (each neuron keeps the same
 * number of inputs). Build: cc -shared -fPIC $(pkg-config --cflags prunebench) \
 *   -o rowwise.so rowwise.c */
#include <math.h>
#include <stdlib.h>
#include <prunebench/plugin.h>

static int cmp_desc(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

static int prune(void *state, const pb_host *h, pb_ctx *c, double sparsity)
{
    (void)state;
    for (int i = 0; i < h->nweights(c); i++) {
        pb_weights t = {.size = sizeof t};
        if (h->weights(c, i, &t) != PB_PLUGIN_OK)
            return PB_PLUGIN_FAIL;
        int keep = (int)lround((1.0 - sparsity) * t.cols);
        float *row = malloc((size_t)t.cols * sizeof *row);
        if (!row)
            return h->fail(c, "out of memory");
        for (int r = 0; r < t.rows; r++) {
            float *w = t.w + (size_t)r * t.cols, *m = t.mask + (size_t)r * t.cols;
            for (int j = 0; j < t.cols; j++)
                row[j] = fabsf(w[j]);
            qsort(row, (size_t)t.cols, sizeof *row, cmp_desc);
            float thr = keep > 0 ? row[keep - 1] : INFINITY;
            int kept = 0;
            for (int j = 0; j < t.cols; j++) {
                int on = fabsf(w[j]) >= thr && kept < keep;
                kept += on;
                m[j] = on ? 1.0f : 0.0f;
            }
        }
        free(row);
    }
    h->apply_masks(c);
    return PB_PLUGIN_OK;
}

const pb_plugin *prunebench_plugin(void);
const pb_plugin *prunebench_plugin(void)
{
    static const pb_plugin d = {
        .abi_major = PB_ABI_MAJOR, .abi_minor = PB_ABI_MINOR, .size = sizeof(pb_plugin),
        .name = "rowwise", .description = "keep the largest |w| of every output row",
        .kind = PB_KIND_UNSTRUCTURED, .when = PB_WHEN_TRAINED, .prune = prune,
    };
    return &d;
}
