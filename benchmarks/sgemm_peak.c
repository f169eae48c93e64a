/* sgemm_peak: single-thread cblas_sgemm GFLOP/s at the shapes LeNet-300-100
 * trains with and at 1024^3, the reference the training benchmark compares
 * its sustained GFLOP/s against.
 *
 * usage: sgemm_peak [seconds per shape, default 0.5]
 * prints "openblas_core NAME" (the kernel set OpenBLAS chose for this CPU),
 * one line per shape: "sgemm M N K gflops", and a last line
 * "sgemm_peak_gflops X" (the best of all shapes). */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <cblas.h> /* OpenBLAS's: also declares openblas_set_num_threads, openblas_get_corename */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* C[m,n] = A[m,k] * B[k,n] row-major, repeated for about secs; best of 5 trials. */
static double gflops(int m, int n, int k, double secs)
{
    float *a = malloc((size_t)m * k * sizeof *a), *b = malloc((size_t)k * n * sizeof *b);
    float *c = malloc((size_t)m * n * sizeof *c);
    if (!a || !b || !c) {
        free(a);
        free(b);
        free(c);
        return 0.0;
    }
    for (size_t i = 0; i < (size_t)m * k; i++)
        a[i] = (float)(i % 7) * 0.1f;
    for (size_t i = 0; i < (size_t)k * n; i++)
        b[i] = (float)(i % 5) * 0.1f;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, a, k, b, n, 0.0f, c, n);
    double best = 0.0, flop = 2.0 * m * n * k;
    for (int trial = 0; trial < 5; trial++) {
        long reps = 0;
        double t0 = now(), t;
        do {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, a, k, b, n, 0.0f,
                        c, n);
            reps++;
        } while ((t = now() - t0) < secs / 5);
        double g = flop * reps / t * 1e-9;
        if (g > best)
            best = g;
    }
    free(a);
    free(b);
    free(c);
    return best;
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 0.5;
    if (!(secs > 0)) {
        fprintf(stderr, "usage: sgemm_peak [seconds per shape]\n");
        return 2;
    }
    openblas_set_num_threads(1);
    printf("openblas_core %s\n", openblas_get_corename());
    /* forward fc1, its weight gradient, then the reference cube */
    static const int shapes[][3] = {{128, 300, 784}, {300, 784, 128}, {1024, 1024, 1024}};
    double peak = 0.0;
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        double g = gflops(shapes[i][0], shapes[i][1], shapes[i][2], secs);
        printf("sgemm %d %d %d %.1f\n", shapes[i][0], shapes[i][1], shapes[i][2], g);
        if (g > peak)
            peak = g;
    }
    printf("sgemm_peak_gflops %.1f\n", peak);
    return 0;
}
