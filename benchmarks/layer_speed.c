/* layer_speed: where a model's training step spends its time, by layer kind.
 *
 * Builds a model (resnet20, conv4, lenet5, ...) for 1x28x28 inputs and 10
 * classes, runs one forward and backward of a batch of random inputs, then
 * times every layer's forward (train mode), its backward and its inference
 * forward (pb_model_infer's), each the median of REPS calls, and sums them by
 * layer kind: "conv3x3/s1/16-16ch" (a convolution's kernel, stride and output
 * channels), "bn", "add", "gap", "dense" and so on. It prints milliseconds per
 * batch for each, and GFLOP/s for the kinds with multiply-adds (forward
 * 2*MACs, backward 4*MACs: the weight and the input gradient), to be read
 * against single-thread SGEMM (benchmarks/sgemm_peak) measured in the same run.
 *
 * usage: layer_speed [model] [batch] [threads] [reps]
 *        (defaults resnet20 128 1 5)
 * prints one line per kind:
 *   "kind NAME fwd_ms F bwd_ms B infer_ms I fwd_gflops G bwd_gflops H infer_gflops J"
 * and "total fwd_ms F bwd_ms B infer_ms I". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/pb_model.h"
#include "engine/pb_par.h"

#define MAX_KINDS 32

typedef struct kind_sum {
    char name[48];
    double fwd, bwd, inf, flops; /* seconds per batch, forward FLOPs per batch */
} kind_sum;

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void kind_name(const pb_layer *l, char *buf, size_t n)
{
    if (l->kind == PB_CONV)
        snprintf(buf, n, "conv%dx%d/s%d/%d-%dch", l->k, l->k, l->stride, l->ic, l->oc);
    else
        snprintf(buf, n, "%s", pb_layer_kind_names[l->kind]);
}

int main(int argc, char **argv)
{
    const char *model = argc > 1 ? argv[1] : "resnet20";
    const int B = argc > 2 ? atoi(argv[2]) : 128, threads = argc > 3 ? atoi(argv[3]) : 1;
    const int reps = argc > 4 ? atoi(argv[4]) : 5;
    if (B < 1 || threads < 1 || reps < 1 || reps > 99) {
        fprintf(stderr, "usage: layer_speed [model] [batch >= 1] [threads >= 1] [reps 1..99]\n");
        return 2;
    }
    pb_par_use_threads(threads);
    char err[256];
    pb_model m;
    if (pb_model_build(&m, model, 1.0, NULL, 0, 1, 28, 28, 10, err, sizeof err) != PB_OK ||
        pb_model_finalize(&m, B, err, sizeof err) != PB_OK) {
        fprintf(stderr, "layer_speed: %s\n", err);
        return 2;
    }
    pb_model_init_weights(&m, 1);
    float *x = pb_alloc((size_t)B * 28 * 28 * sizeof(float));
    int *y = malloc((size_t)B * sizeof(int));
    if (!x || !y) {
        fprintf(stderr, "layer_speed: out of memory\n");
        return 2;
    }
    pb_rng r;
    pb_rng_seed(&r, 7);
    for (size_t i = 0; i < (size_t)B * 28 * 28; i++)
        x[i] = pb_rng_normal(&r);
    for (int i = 0; i < B; i++)
        y[i] = i % 10;
    pb_model_forward(&m, x, B, 1);
    pb_model_loss(&m, y, B, 1.0f, NULL, NULL);
    pb_model_backward(&m, x, B, NULL, NULL);

    kind_sum sums[MAX_KINDS];
    int nk = 0;
    double tf = 0, tb = 0, ti = 0, t[3][99];
    for (int i = 0; i < m.nlayers; i++) {
        pb_layer *l = &m.layers[i];
        if (l->in_place && m.layers[l->in].relu_after)
            continue; /* applied by its producer */
        const float *in = l->in < 0 ? x : m.layers[l->in].out;
        const float *in2 = l->kind == PB_ADD ? (l->in2 < 0 ? x : m.layers[l->in2].out) : NULL;
        float *din = l->in < 0 ? NULL : m.layers[l->in].dout;
        float *din2 = l->kind == PB_ADD && l->in2 >= 0 ? m.layers[l->in2].dout : NULL;
        for (int k = 0; k < reps; k++) {
            double t0 = pb_now();
            pb_layer_forward(l, in, in2, B, 1, &m.rng);
            double t1 = pb_now();
            pb_layer_backward(l, in, din, din2, B);
            double t2 = pb_now();
            pb_layer_infer(l, in, in2, B);
            double t3 = pb_now();
            t[0][k] = t1 - t0;
            t[1][k] = t2 - t1;
            t[2][k] = t3 - t2;
        }
        for (int s = 0; s < 3; s++)
            qsort(t[s], (size_t)reps, sizeof(double), cmp_double);
        char name[48];
        kind_name(l, name, sizeof name);
        int j = 0;
        while (j < nk && strcmp(sums[j].name, name))
            j++;
        if (j == nk) {
            if (nk == MAX_KINDS)
                continue;
            memset(&sums[nk], 0, sizeof sums[nk]);
            snprintf(sums[nk].name, sizeof sums[nk].name, "%s", name);
            nk++;
        }
        sums[j].fwd += t[0][reps / 2];
        sums[j].bwd += t[1][reps / 2];
        sums[j].inf += t[2][reps / 2];
        sums[j].flops += pb_layer_flops(l, 0) * B;
        tf += t[0][reps / 2];
        tb += t[1][reps / 2];
        ti += t[2][reps / 2];
    }
    printf("model %s batch %d threads %d reps %d\n", model, B, threads, reps);
    for (int j = 0; j < nk; j++) {
        const kind_sum *s = &sums[j];
        printf("kind %-18s fwd_ms %8.3f bwd_ms %8.3f infer_ms %8.3f", s->name, 1e3 * s->fwd,
               1e3 * s->bwd, 1e3 * s->inf);
        if (s->flops > 0)
            printf(" fwd_gflops %6.1f bwd_gflops %6.1f infer_gflops %6.1f", s->flops / s->fwd * 1e-9,
                   2 * s->flops / s->bwd * 1e-9, s->flops / s->inf * 1e-9);
        printf("\n");
    }
    printf("total fwd_ms %.3f bwd_ms %.3f infer_ms %.3f\n", 1e3 * tf, 1e3 * tb, 1e3 * ti);
    pb_model_free(&m);
    pb_free(x);
    free(y);
    return 0;
}
