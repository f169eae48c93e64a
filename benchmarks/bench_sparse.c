/* bench_sparse: times the engine's dense and sparse kernels on one model
 * whose dense layers are pruned at random to a density, for
 * benchmarks/bench_sparse.sh.
 *
 * usage: bench_sparse --model lenet300|lenet5 --density D --batch B
 *                     [--rounds R] [--reps N] [--kernels sparse|csr]
 *                     [--nm N:M]
 *
 * Every dense layer gets a uniformly random mask keeping round(D * n) of its
 * n weights (seeded); convolutions stay dense. With --nm N:M the masks are
 * N:M instead (in every group of M consecutive inputs of a row, N kept at
 * random; D is then N/M). Each round times N forwards
 * of each layer alone, dense kernel then sparse kernel, then N forwards of
 * the whole model in dense mode then in the sparse mode, each forward timed
 * on its own; the lines give the median microseconds of those single
 * forwards over all rounds:
 *   layer NAME ROWS COLS DENSITY BATCH FORMAT DENSE_US SPARSE_US
 *   model NAME DENSITY BATCH DENSE_US SPARSE_US
 * and, at batch 1, what the batch-1 kernels read per forward, in bytes:
 *   layout NAME DENSITY KEPT DENSE_BYTES SPARSE_BYTES FILL
 * (the dense weights; the sliced-ELL layout's values, indices and run
 * table; FILL = kept weights / slots of the layout). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/pb_kern.h"
#include "engine/pb_model.h"
#include "engine/pb_par.h"
#include "engine/pb_sparse.h"

#define MAX_ROUNDS 64

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* N of every M consecutive inputs of each row (of cols), at random */
static void nm_mask(pb_param *p, int cols, int n, int m, pb_rng *r)
{
    for (size_t j = 0; j < p->n; j++)
        p->mask[j] = 0.0f;
    for (size_t row = 0; row < p->n / (size_t)cols; row++)
        for (int g = 0; g < cols; g += m) {
            const int len = cols - g < m ? cols - g : m;
            for (int t = 0, left = n; t < len && left > 0; t++)
                if (pb_rng_uniform(r) * (double)(len - t) < (double)left) {
                    p->mask[row * (size_t)cols + (size_t)(g + t)] = 1.0f;
                    left--;
                }
        }
}

static void random_mask(pb_param *p, double density, pb_rng *r)
{
    const size_t keep = (size_t)llround(density * (double)p->n);
    size_t *idx = malloc(p->n * sizeof *idx);
    for (size_t j = 0; j < p->n; j++) {
        idx[j] = j;
        p->mask[j] = 0.0f;
    }
    for (size_t j = 0; j < keep; j++) { /* partial Fisher-Yates */
        size_t t = j + (size_t)(pb_rng_uniform(r) * (double)(p->n - j));
        size_t tmp = idx[j];
        idx[j] = idx[t];
        idx[t] = tmp;
        p->mask[idx[j]] = 1.0f;
    }
    free(idx);
}

int main(int argc, char **argv)
{
    const char *model = "lenet300", *kern = "sparse";
    double density = 0.05;
    int B = 1, rounds = 7, reps = 0, nm_n = 0, nm_m = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--model"))
            model = argv[i + 1];
        else if (!strcmp(argv[i], "--density"))
            density = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--batch"))
            B = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--rounds"))
            rounds = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps"))
            reps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--kernels"))
            kern = argv[i + 1];
        else if (!strcmp(argv[i], "--nm")) {
            if (sscanf(argv[i + 1], "%d:%d", &nm_n, &nm_m) != 2 || nm_n < 1 || nm_m < nm_n || nm_m > 64) {
                fprintf(stderr, "bench_sparse: --nm %s: want N:M with 1 <= N <= M <= 64\n", argv[i + 1]);
                return 2;
            }
            density = (double)nm_n / nm_m;
        } else {
            fprintf(stderr, "bench_sparse: unknown option %s (valid: --model --density --batch --rounds --reps --kernels --nm)\n", argv[i]);
            return 2;
        }
    }
    char err[PB_ERRLEN] = "";
    pb_sparse_mode smode;
    if (pb_sparse_parse_mode(kern, &smode, err, sizeof err) != PB_OK || smode == PB_KERNELS_DENSE ||
        smode == PB_KERNELS_AUTO) {
        fprintf(stderr, "bench_sparse: --kernels %s: valid: sparse, csr\n", kern);
        return 2;
    }
    if (!(density > 0 && density <= 1) || B < 1 || rounds < 1 || rounds > MAX_ROUNDS) {
        fprintf(stderr, "bench_sparse: need 0 < density <= 1, batch >= 1, 1 <= rounds <= %d\n", MAX_ROUNDS);
        return 2;
    }
    if (reps < 1)
        reps = B == 1 ? 1000 : 30;
    pb_par_set_threads(1);
    pb_model m;
    const int conv = !strcmp(model, "lenet5");
    if (pb_model_build(&m, model, 1.0, NULL, 0, 1, 28, 28, 10, err, sizeof err) != PB_OK ||
        pb_model_finalize(&m, B, err, sizeof err) != PB_OK ||
        pb_model_ensure_masks(&m, err, sizeof err) != PB_OK) {
        fprintf(stderr, "bench_sparse: %s\n", err);
        return 2;
    }
    (void)conv;
    pb_model_init_weights(&m, 1);
    pb_rng r;
    pb_rng_seed(&r, 42);
    for (int i = 0; i < m.nlayers; i++)
        if (m.layers[i].kind == PB_DENSE) {
            if (nm_m)
                nm_mask(m.layers[i].w, (int)pb_layer_isize(&m.layers[i]), nm_n, nm_m, &r);
            else
                random_mask(m.layers[i].w, density, &r);
        }
    pb_model_apply_masks(&m);
    const size_t nin = (size_t)B * m.ic * m.ih * m.iw;
    float *x = pb_alloc(nin * sizeof(float));
    for (size_t j = 0; j < nin; j++)
        x[j] = (float)pb_rng_uniform(&r);

    /* each dense layer's input: the model's activations from one forward */
    pb_sparse_set_mode(smode);
    pb_model_forward(&m, x, B, 0);
    /* every forward timed on its own: the median of single forwards leaves
     * out the ones during which the process was descheduled */
    const size_t ns = (size_t)rounds * reps;
    double *ld[PB_MAX_LAYERS] = {0}, *ls[PB_MAX_LAYERS] = {0};
    double *md = malloc(ns * sizeof *md), *ms = malloc(ns * sizeof *ms);
    for (int i = 0; i < m.nlayers; i++)
        if (m.layers[i].kind == PB_DENSE) {
            ld[i] = malloc(ns * sizeof(double));
            ls[i] = malloc(ns * sizeof(double));
        }
    for (int rd = 0; rd < rounds; rd++) {
        pb_sparse_set_mode(smode);
        pb_model_forward(&m, x, B, 0);
        for (int i = 0; i < m.nlayers; i++) {
            pb_layer *l = &m.layers[i];
            if (l->kind != PB_DENSE || !l->sp)
                continue;
            const float *in = l->in < 0 ? x : m.layers[l->in].out;
            for (int k = 0; k < reps; k++) {
                const double t0 = pb_now();
                pb_kern_dense_forward(l, in, B);
                ld[i][(size_t)rd * reps + k] = pb_now() - t0;
            }
            for (int k = 0; k < reps; k++) {
                const double t0 = pb_now();
                pb_kern_sparse_forward(l, in, B, 0);
                ls[i][(size_t)rd * reps + k] = pb_now() - t0;
            }
        }
        for (int side = 0; side < 2; side++) {
            pb_sparse_set_mode(side ? smode : PB_KERNELS_DENSE);
            pb_model_forward(&m, x, B, 0);
            for (int k = 0; k < reps; k++) {
                const double t0 = pb_now();
                pb_model_forward(&m, x, B, 0);
                (side ? ms : md)[(size_t)rd * reps + k] = pb_now() - t0;
            }
        }
    }
    for (int i = 0; i < m.nlayers; i++) {
        pb_layer *l = &m.layers[i];
        if (l->kind != PB_DENSE || !l->sp)
            continue;
        printf("layer %s %d %d %.4f %d %s %.3f %.3f\n", l->name, l->oc, (int)pb_layer_isize(l), density, B,
               pb_wfmt_names[l->sp->fmt], median(ld[i], (int)ns) * 1e6, median(ls[i], (int)ns) * 1e6);
    }
    printf("model %s %.4f %d %.3f %.3f\n", model, density, B, median(md, (int)ns) * 1e6, median(ms, (int)ns) * 1e6);
    for (int i = 0; i < m.nlayers && B == 1; i++) {
        const pb_layer *l = &m.layers[i];
        if (l->kind != PB_DENSE || !l->sp || !l->sp->sell_val)
            continue;
        const pb_sparse *sp = l->sp;
        const size_t runs = (size_t)sp->sell_rptr[sp->sell_slices];
        const double bytes = (double)sp->sell_steps * 16 * (sizeof(float) + 1) + (double)runs * sizeof(uint32_t) +
                             ((double)sp->sell_slices + 1) * sizeof(int32_t);
        printf("layout %s %.4f %zu %.0f %.0f %.3f\n", l->name, density, sp->nnz, (double)l->w->n * sizeof(float), bytes,
               sp->sell_steps ? (double)sp->nnz / (16.0 * (double)sp->sell_steps) : 0.0);
    }
    for (int i = 0; i < m.nlayers; i++) {
        free(ld[i]);
        free(ls[i]);
    }
    free(md);
    free(ms);
    pb_free(x);
    pb_model_free(&m);
    return 0;
}
