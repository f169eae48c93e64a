/* pb_infer: inference latency and throughput, dense and as executed. */
#include "pb_infer.h"

#include <stdlib.h>

#include "pb_sparse.h"
#include "pb_train.h"

#define ROUNDS 5
#define BIG 128
#define MAX_REPS 4096

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, size_t n)
{
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Times reps forwards of B examples on a (dense kernels), each on its own,
 * then as many on b (as executed), into ta and tb: blocks of one model at a
 * time, each warmed up by one forward (the two models' weights need not fit
 * in the cache at once: alternating single forwards timed whichever had
 * been evicted). */
static void paired(pb_model *a, pb_model *b, const float *x, int B, long reps, double *ta, double *tb)
{
    pb_model *mm[2] = {a, b};
    double *out[2] = {ta, tb};
    for (int i = 0; i < 2; i++) {
        pb_model_forward(mm[i], x, B, 0);
        for (long k = 0; k < reps; k++) {
            const double t0 = pb_now();
            pb_model_forward(mm[i], x, B, 0);
            out[i][k] = pb_now() - t0;
        }
    }
}

/* The median single forward of each: on a machine shared with other work,
 * a block's mean counts the time the process was descheduled, a median of
 * single forwards does not. */
int pb_infer_measure(const pb_model *m, const pb_model *ref, const pb_dataset *d, double min_s, pb_infer_rec *out,
                     char *err, size_t errlen)
{
    if (d->n < 1)
        return pb_err(err, errlen, PB_EUSAGE, "inference timing needs examples (data set %s is empty)", d->name);
    pb_model dense, exec;
    int rc = pb_model_clone(ref ? ref : m, &dense, BIG, err, errlen);
    if (rc != PB_OK)
        return rc;
    if ((rc = pb_model_clone(m, &exec, BIG, err, errlen)) != PB_OK) {
        pb_model_free(&dense);
        return rc;
    }
    dense.kernels = PB_KERNELS_DENSE + 1;
    exec.kernels = m->kernels;
    pb_batch b;
    int idx[BIG];
    double *ta = NULL, *tb = NULL;
    if ((rc = pb_batch_init(&b, d, BIG, err, errlen)) != PB_OK)
        goto out;
    for (int i = 0; i < BIG; i++)
        idx[i] = i % d->n;
    pb_data_batch(d, idx, BIG, NULL, b.x, b.y);
    for (int s = 0; s < 2; s++) {
        const int B = s ? BIG : 1;
        double once_a, once_b;
        paired(&dense, &exec, b.x, B, 1, &once_a, &once_b); /* builds the formats */
        const double once = once_a + once_b;
        long reps = once > 0 ? (long)(min_s / once) + 1 : 1;
        if (reps > MAX_REPS)
            reps = MAX_REPS;
        ta = malloc((size_t)(reps * ROUNDS) * sizeof *ta);
        tb = malloc((size_t)(reps * ROUNDS) * sizeof *tb);
        if (!ta || !tb) {
            rc = pb_err(err, errlen, PB_ENOMEM, "out of memory");
            goto out;
        }
        for (int r = 0; r < ROUNDS; r++)
            paired(&dense, &exec, b.x, B, reps, ta + r * reps, tb + r * reps);
        const double ma = median(ta, (size_t)(reps * ROUNDS)), mb = median(tb, (size_t)(reps * ROUNDS));
        if (s) {
            out->ips_b128_dense = BIG / ma;
            out->ips_b128 = BIG / mb;
        } else {
            out->us_b1_dense = ma * 1e6;
            out->us_b1 = mb * 1e6;
        }
        free(ta);
        free(tb);
        ta = tb = NULL;
    }
out:
    free(ta);
    free(tb);
    pb_batch_free(&b);
    pb_model_free(&dense);
    pb_model_free(&exec);
    return rc;
}
