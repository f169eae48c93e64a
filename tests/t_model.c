/* Models, optimizer, training loop and checkpoints. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/pb_ckpt.h"
#include "host/pb_host.h"
#include "engine/pb_data.h"
#include "engine/pb_model.h"
#include "engine/pb_optim.h"
#include "engine/pb_par.h"
#include "engine/pb_train.h"
#include "tap.h"

static char err[PB_ERRLEN];

static size_t nparams_of(const char *name)
{
    pb_model m;
    size_t t, nz;
    if (pb_model_build(&m, name, 1.0, NULL, 0, 1, 28, 28, 10, err, sizeof err) != PB_OK)
        return 0;
    pb_model_count_params(&m, &t, &nz);
    pb_model_free(&m);
    return t;
}

static pb_train_cfg quick_cfg(int epochs)
{
    pb_train_cfg c;
    pb_train_defaults(&c);
    c.epochs = epochs;
    c.batch = 32;
    c.opt.lr = 0.05;
    c.log_epochs = 0;
    return c;
}

static int train_width(const char *arch, double width, uint64_t seed, pb_dataset *tr, pb_dataset *te,
                       pb_model *m, pb_train_result *res, int epochs);

static int train_small(const char *arch, uint64_t seed, pb_dataset *tr, pb_dataset *te, pb_model *m,
                       pb_train_result *res, int epochs)
{
    return train_width(arch, 0.25, seed, tr, te, m, res, epochs);
}

static int train_width(const char *arch, double width, uint64_t seed, pb_dataset *tr, pb_dataset *te,
                       pb_model *m, pb_train_result *res, int epochs)
{
    pb_train_cfg c = quick_cfg(epochs);
    c.seed = seed;
    int rc = pb_model_build(m, arch, width, NULL, 0, tr->c, tr->h, tr->w, tr->ncls, err, sizeof err);
    if (rc == PB_OK)
        rc = pb_model_finalize(m, c.batch, err, sizeof err);
    if (rc == PB_OK) {
        pb_model_init_weights(m, seed);
        rc = pb_train(m, tr, te, &c, NULL, res, err, sizeof err);
    }
    return rc;
}

static int same_weights(const pb_model *a, const pb_model *b)
{
    if (a->nparams != b->nparams)
        return 0;
    for (int i = 0; i < a->nparams; i++)
        if (a->params[i]->n != b->params[i]->n ||
            memcmp(a->params[i]->w, b->params[i]->w, a->params[i]->n * sizeof(float)))
            return 0;
    return 1;
}

/* Parameter sharing through a generator: fc1's weights read z[j % nz]. */
typedef struct share { float *z, *gz; size_t nz; } share;

static void share_gen(void *ud, pb_param *t)
{
    share *s = ud;
    for (size_t j = 0; j < t->n; j++)
        t->w[j] = s->z[j % s->nz];
}

static void share_back(void *ud, const pb_param *t)
{
    share *s = ud;
    for (size_t j = 0; j < t->n; j++)
        s->gz[j % s->nz] += t->g[j];
}

typedef struct seen { int calls, rows; } seen;

static void count_inputs(void *ud, const pb_model *m, int layer, const float *x, int B)
{
    (void)x;
    seen *s = ud;
    if (m->layers[layer].kind == PB_DENSE) {
        s->calls++;
        s->rows += B;
    }
}

/* Counts the negative inputs the hook sees at one layer. */
typedef struct neg_count {
    int layer;
    size_t neg;
} neg_count;

static void count_negatives(void *ud, const pb_model *m, int layer, const float *x, int B)
{
    neg_count *nc = ud;
    if (layer != nc->layer)
        return;
    const pb_layer *l = &m->layers[layer];
    for (size_t i = 0; i < (size_t)B * l->ic * l->ih * l->iw; i++)
        nc->neg += x[i] < 0.0f;
}

/* LeNet-5's conv layers apply the ReLUs that follow them (pb_layer.h), as
 * do ResNet-20's BNs and residual adds; with an input hook set the ReLUs run
 * themselves, in place. Both give the same logits, weight gradients and
 * input gradient, bit for bit, and the hook sees a ReLU's input before the
 * ReLU. */
static int relu_fusion_matches(const char *arch, int want_fused)
{
    pb_model m;
    const int B = 7;
    if (pb_model_build(&m, arch, 1.0, NULL, 0, 1, 28, 28, 10, err, sizeof err) != PB_OK ||
        pb_model_finalize(&m, B, err, sizeof err) != PB_OK)
        return 0;
    size_t np = 0;
    for (int i = 0; i < m.nparams; i++)
        np += m.params[i]->n;
    pb_model_init_weights(&m, 5);
    int fused = 0, relu1 = -1;
    for (int i = 0; i < m.nlayers; i++)
        if (m.layers[i].in_place) {
            fused++;
            if (relu1 < 0)
                relu1 = i;
        }
    float *x = pb_alloc((size_t)B * 784 * sizeof(float));
    float *dx[2] = {pb_alloc((size_t)B * 784 * sizeof(float)), pb_alloc((size_t)B * 784 * sizeof(float))};
    float *logits[2] = {pb_alloc((size_t)B * 10 * sizeof(float)), pb_alloc((size_t)B * 10 * sizeof(float))};
    float *grads[2] = {pb_alloc(np * sizeof(float)), pb_alloc(np * sizeof(float))};
    int y[7] = {0, 1, 2, 3, 4, 5, 6};
    pb_rng r;
    pb_rng_seed(&r, 9);
    for (int i = 0; i < B * 784; i++)
        x[i] = (float)pb_rng_uniform(&r) * 2.0f - 0.5f;
    neg_count nc = {relu1, 0};
    for (int run = 0; run < 2; run++) {
        pb_model_set_input_hook(&m, run ? count_negatives : NULL, run ? &nc : NULL);
        pb_model_zero_grad(&m);
        memcpy(logits[run], pb_model_forward(&m, x, B, 1), (size_t)B * 10 * sizeof(float));
        pb_model_loss(&m, y, B, 1.0f, NULL, NULL);
        pb_model_backward(&m, x, B, NULL, dx[run]);
        size_t at = 0;
        for (int i = 0; i < m.nparams; i++) {
            memcpy(grads[run] + at, m.params[i]->g, m.params[i]->n * sizeof(float));
            at += m.params[i]->n;
        }
    }
    pb_model_set_input_hook(&m, NULL, NULL);
    const int same = !memcmp(logits[0], logits[1], (size_t)B * 10 * sizeof(float)) &&
                     !memcmp(grads[0], grads[1], np * sizeof(float)) &&
                     !memcmp(dx[0], dx[1], (size_t)B * 784 * sizeof(float));
    int nonzero = 0;
    for (size_t i = 0; i < np; i++)
        nonzero += grads[0][i] != 0.0f;
    ok(fused == want_fused && same && nc.neg > 0 && nonzero > (int)(np / 2),
       "%s: fused ReLUs (%d) give the same logits and gradients as unfused; the hook sees "
       "pre-activations (%zu negative)",
       arch, fused, nc.neg);
    for (int run = 0; run < 2; run++) {
        pb_free(dx[run]);
        pb_free(logits[run]);
        pb_free(grads[run]);
    }
    pb_free(x);
    pb_model_free(&m);
    return 1;
}

int main(void)
{
    tap_plan(30);
    /* Parameter counts of the named architectures (PyTorch gives the same). */
    ok(nparams_of("lenet300") == 266610, "lenet300 has 266610 parameters");
    ok(nparams_of("lenet5") == 61706, "lenet5 has 61706 parameters (got %zu)", nparams_of("lenet5"));
    if (!relu_fusion_matches("lenet5", 2))
        ok(0, "lenet5 for the ReLU fusion check: %s", err);
    /* the stem's and every block's BN-ReLU, and every block's add-ReLU */
    if (!relu_fusion_matches("resnet20", 19))
        ok(0, "resnet20 for the ReLU fusion check: %s", err);
    ok(nparams_of("conv4") > 0, "conv4 builds (%zu parameters)", nparams_of("conv4"));
    {
        /* 16.7 M activation values per example from a 1x1 convolution of
         * one channel (a model a checkpoint may describe): at the largest
         * batch it is refused before anything is allocated, at batch 1 it is
         * made */
        pb_model m;
        pb_model_init(&m, "huge", 1, 4096, 4096, 10);
        int rc = pb_model_conv(&m, NULL, 1, 1, 1, 0, 0, err, sizeof err) >= 0 &&
                         pb_model_simple(&m, PB_GAP, err, sizeof err) >= 0 &&
                         pb_model_simple(&m, PB_FLATTEN, err, sizeof err) >= 0 &&
                         pb_model_dense(&m, NULL, 10, 1, err, sizeof err) >= 0
                     ? PB_OK
                     : PB_EUSAGE;
        int big = rc == PB_OK ? pb_model_finalize(&m, 65536, err, sizeof err) : rc;
        char e1[PB_ERRLEN];
        snprintf(e1, sizeof e1, "%s", err);
        int one = rc == PB_OK ? pb_model_finalize(&m, 1, err, sizeof err) : rc;
        ok(big == PB_ENOMEM && strstr(e1, "batch 65536") && strstr(e1, "GiB") && one == PB_OK,
           "activations that cannot fit in memory are refused before allocating, naming the batch (%s); batch 1 "
           "is made (%d)", e1, one);
        pb_model_free(&m);
    }
    {
        pb_model m;
        int rc = pb_model_build(&m, "resnet20", 1.0, NULL, 0, 3, 32, 32, 10, err, sizeof err);
        size_t t = 0, nz;
        if (rc == PB_OK) {
            pb_model_count_params(&m, &t, &nz);
            pb_model_free(&m);
        }
        /* 0.27M as in He et al., plus the projection shortcuts (option B) */
        ok(rc == PB_OK && t > 260000 && t < 290000, "resnet20 builds with ~0.27M parameters (%zu)", t);
    }
    {
        pb_model m;
        int rc = pb_model_build(&m, "nosuch", 1.0, NULL, 0, 1, 28, 28, 10, err, sizeof err);
        ok(rc == PB_EUSAGE && strstr(err, "lenet300") && strstr(err, "nosuch"),
           "unknown model lists the valid ones: %s", err);
    }
    {
        pb_model m;
        int h[3] = {64, 32, 16};
        size_t t, nz;
        pb_model_build(&m, "mlp", 0.5, h, 3, 1, 28, 28, 10, err, sizeof err);
        pb_model_count_params(&m, &t, &nz);
        ok(t == (784 * 32 + 32) + (32 * 16 + 16) + (16 * 8 + 8) + (8 * 10 + 10),
           "mlp with hidden widths and a width multiplier (%zu)", t);
        pb_model_free(&m);
    }

    pb_dataset tr, te;
    int rc = pb_data_load("synthetic", NULL, PB_SPLIT_TRAIN, &tr, err, sizeof err);
    if (rc == PB_OK)
        rc = pb_data_load("synthetic", NULL, PB_SPLIT_TEST, &te, err, sizeof err);
    if (!ok(rc == PB_OK, "synthetic data loads %s", err))
        return 1;

    /* Training: loss falls and accuracy beats chance (10 %) by a wide margin. */
    pb_model a, b;
    pb_train_result ra, rb;
    double acc0, loss0;
    pb_model_build(&a, "lenet300", 0.25, NULL, 0, 1, 28, 28, 10, err, sizeof err);
    pb_model_finalize(&a, 32, err, sizeof err);
    pb_model_init_weights(&a, 7);
    pb_evaluate(&a, &te, 32, &acc0, &loss0, err, sizeof err);
    pb_model_free(&a);
    rc = train_small("lenet300", 7, &tr, &te, &a, &ra, 3);
    ok(rc == PB_OK && ra.test_loss < loss0 * 0.7, "training lowers test loss (%.3f -> %.3f)", loss0, ra.test_loss);
    ok(rc == PB_OK && ra.test_acc > 0.5, "trained accuracy %.3f beats chance by a wide margin", ra.test_acc);

    /* Determinism: the same seed gives bit-identical weights, another seed does not. */
    rc = train_small("lenet300", 7, &tr, &te, &b, &rb, 3);
    ok(rc == PB_OK && same_weights(&a, &b), "same seed, bit-identical weights");
    pb_model_free(&b);
    rc = train_small("lenet300", 8, &tr, &te, &b, &rb, 1);
    ok(rc == PB_OK && !same_weights(&a, &b), "different seed, different weights");
    pb_model_free(&b);

    /* ResNet-20 (thin convolutions at 16 channels, the SGEMM chunks at 32
     * and 64, stride 2, 1x1 projections, BN, residual adds) and conv4 (fused
     * ReLUs on the SGEMM path): a rerun with the same seed and thread count
     * gives bit-identical weights, on 1 and on 2 threads. */
    {
        static const char *const nets[2] = {"resnet20", "conv4"};
        static const double widths[2] = {1.0, 0.25};
        for (int t = 1; t <= 2; t++) {
            pb_par_set_threads(t);
            int same = 1, trained = 1;
            for (int k = 0; k < 2; k++) {
                pb_model r[2];
                pb_train_result rr;
                for (int run = 0; run < 2; run++) {
                    pb_train_cfg c = quick_cfg(1);
                    c.seed = 11;
                    c.max_steps = 3;
                    int rc2 = pb_model_build(&r[run], nets[k], widths[k], NULL, 0, tr.c, tr.h, tr.w, tr.ncls,
                                             err, sizeof err);
                    if (rc2 == PB_OK)
                        rc2 = pb_model_finalize(&r[run], c.batch, err, sizeof err);
                    if (rc2 == PB_OK) {
                        pb_model_init_weights(&r[run], 11);
                        rc2 = pb_train(&r[run], &tr, &te, &c, NULL, &rr, err, sizeof err);
                    }
                    trained &= rc2 == PB_OK;
                }
                same &= trained && same_weights(&r[0], &r[1]);
                /* and the steps did move the weights */
                pb_model init;
                if (trained && pb_model_build(&init, nets[k], widths[k], NULL, 0, tr.c, tr.h, tr.w, tr.ncls, err,
                                              sizeof err) == PB_OK) {
                    pb_model_init_weights(&init, 11);
                    same &= !same_weights(&init, &r[0]);
                    pb_model_free(&init);
                }
                pb_model_free(&r[0]);
                pb_model_free(&r[1]);
            }
            ok(same, "resnet20 and conv4 on %d thread%s: same seed, bit-identical weights after 3 steps %s", t,
               t > 1 ? "s" : "", trained ? "" : err);
        }
        pb_par_set_threads(1);
    }

    /* A conv net trains too (lenet5 at half width). */
    rc = train_width("lenet5", 0.5, 3, &tr, &te, &b, &rb, 3);
    ok(rc == PB_OK && rb.test_acc > 0.4, "lenet5 trains on synthetic data (acc %.3f)", rb.test_acc);
    pb_model_free(&b);

    /* Masks: masked weights stay exactly zero through SGD+momentum and Adam steps. */
    for (int kind = 0; kind < 2; kind++) {
        pb_model m;
        pb_train_cfg c = quick_cfg(1);
        c.opt.kind = kind ? PB_OPT_ADAM : PB_OPT_SGD;
        c.opt.lr = kind ? 0.001 : 0.05;
        c.opt.wd = 1e-4;
        pb_model_clone(&a, &m, 32, err, sizeof err);
        pb_model_ensure_masks(&m, err, sizeof err);
        pb_param *p = pb_model_prunable(&m, 0);
        for (size_t j = 0; j < p->n; j += 2)
            p->mask[j] = 0.0f;
        pb_model_apply_masks(&m);
        pb_train_result r;
        rc = pb_train(&m, &tr, NULL, &c, NULL, &r, err, sizeof err);
        int zero = 1, moved = 0;
        for (size_t j = 0; j < p->n; j++) {
            if (j % 2 == 0 && p->w[j] != 0.0f)
                zero = 0;
            if (j % 2 == 1 && p->w[j] != a.params[0]->w[j])
                moved = 1;
        }
        ok(rc == PB_OK && zero && moved, "%s: masked weights stay exactly zero, the others train",
           kind ? "adam" : "sgd+momentum");
        pb_model_free(&m);
    }

    /* NaN in training is reported, not trained through. */
    {
        pb_model m;
        pb_train_cfg c = quick_cfg(1);
        c.opt.lr = 1e30;
        pb_model_clone(&a, &m, 32, err, sizeof err);
        pb_train_result r;
        rc = pb_train(&m, &tr, NULL, &c, NULL, &r, err, sizeof err);
        ok(rc == PB_ENUM && strstr(err, "epoch 1"), "a diverging run stops with: %s", err);
        pb_model_free(&m);
    }

    /* Checkpoints: round trip, then refuse corruption and truncation. */
    char dir[] = "/tmp/pbckXXXXXX", path[256];
    if (!mkdtemp(dir))
        return 1;
    snprintf(path, sizeof path, "%s/a.pb", dir);
    pb_model_ensure_masks(&a, err, sizeof err);
    pb_model_prunable(&a, 1)->mask[3] = 0;
    pb_model_apply_masks(&a);
    rc = pb_ckpt_save(&a, path, err, sizeof err);
    ok(rc == PB_OK, "checkpoint saved %s", err);
    rc = pb_ckpt_load(&b, path, 32, err, sizeof err);
    double acc1 = -1, acc2 = -2, l1, l2;
    if (rc == PB_OK) {
        pb_evaluate(&a, &te, 32, &acc1, &l1, err, sizeof err);
        pb_evaluate(&b, &te, 32, &acc2, &l2, err, sizeof err);
    }
    ok(rc == PB_OK && same_weights(&a, &b) && acc1 == acc2 && l1 == l2 &&
           pb_model_prunable(&b, 1)->mask && pb_model_prunable(&b, 1)->mask[3] == 0,
       "checkpoint round trip keeps weights, masks and results");
    if (rc == PB_OK)
        pb_model_free(&b);
    FILE *f = fopen(path, "r+b");
    fseek(f, 300, SEEK_SET);
    fputc(0x5a, f);
    fclose(f);
    rc = pb_ckpt_load(&b, path, 32, err, sizeof err);
    ok(rc == PB_EIO && strstr(err, "checksum") && strstr(err, path), "corrupt checkpoint refused: %s", err);
    pb_ckpt_save(&a, path, err, sizeof err);
    if (truncate(path, 1000) != 0)
        return 1;
    rc = pb_ckpt_load(&b, path, 32, err, sizeof err);
    ok(rc == PB_EIO && strstr(err, path), "truncated checkpoint refused: %s", err);
    f = fopen(path, "wb");
    fputs("not a checkpoint at all, just text padding padding padding padding padding padding "
          "padding padding padding padding padding padding padding", f);
    fclose(f);
    rc = pb_ckpt_load(&b, path, 32, err, sizeof err);
    ok(rc == PB_EIO && strstr(err, "magic"), "foreign file refused: %s", err);
    remove(path);
    rmdir(dir);


    /* Parameter sharing: gradients of generated weights reach the shared array
     * (checked against finite differences), and the optimizer trains it. */
    {
        pb_model m;
        pb_model_build(&m, "lenet300", 0.25, NULL, 0, 1, 28, 28, 10, err, sizeof err);
        pb_model_finalize(&m, 16, err, sizeof err);
        pb_model_init_weights(&m, 5);
        pb_param *fc1 = pb_model_prunable(&m, 0);
        pb_param *z = pb_model_extra_param(&m, "fc1.shared", 97, err, sizeof err);
        share sh = {z->w, z->g, z->n};
        pb_rng r;
        pb_rng_seed(&r, 3);
        for (size_t j = 0; j < z->n; j++)
            z->w[j] = 0.05f * pb_rng_normal(&r);
        pb_model_set_generator(&m, fc1, (pb_param_gen){.ud = &sh, .generate = share_gen, .backprop = share_back});
        int idx[16], y[16];
        float *x = malloc(16 * 784 * sizeof(float));
        for (int i = 0; i < 16; i++)
            idx[i] = i;
        pb_data_batch(&tr, idx, 16, NULL, x, y);
        pb_model_zero_grad(&m);
        pb_model_forward(&m, x, 16, 1);
        pb_model_loss(&m, y, 16, 1.0f, NULL, NULL);
        pb_model_backward(&m, x, 16, NULL, NULL);
        double worst = 0;
        for (size_t j = 0; j < 5; j++) {
            float keep = z->w[j], h = 1e-2f;
            z->w[j] = keep + h;
            pb_model_arrays_changed(&m); /* a write outside the optimizer is announced */
            pb_model_forward(&m, x, 16, 1);
            double lp = pb_model_loss(&m, y, 16, 1.0f, NULL, NULL);
            z->w[j] = keep - h;
            pb_model_arrays_changed(&m);
            pb_model_forward(&m, x, 16, 1);
            double lm = pb_model_loss(&m, y, 16, 1.0f, NULL, NULL);
            z->w[j] = keep;
            pb_model_arrays_changed(&m);
            double fd = (lp - lm) / (2 * h), e = fabs(fd - z->g[j]) / (fabs(fd) + 1e-3);
            if (e > worst)
                worst = e;
        }
        ok(worst < 0.05, "shared-array gradient matches finite differences (worst relative error %.3g)", worst);
        float before = z->w[0];
        pb_train_cfg c = quick_cfg(1);
        pb_train_result r2;
        rc = pb_train(&m, &tr, NULL, &c, NULL, &r2, err, sizeof err);
        pb_model_forward(&m, x, 16, 0); /* weights are generated after every step */
        int tied = 1;
        for (size_t j = 0; j < fc1->n; j++)
            tied &= fc1->w[j] == z->w[j % z->n];
        ok(rc == PB_OK && z->w[0] != before && tied && !fc1->trainable,
           "the optimizer trains the shared array; generated weights follow it");
        free(x);
        pb_model_free(&m);
    }
    /* Input hooks see every dense layer's input on each forward (calibration). */
    {
        seen sn = {0, 0};
        pb_model_set_input_hook(&a, count_inputs, &sn);
        double acc, loss;
        pb_evaluate(&a, &te, 32, &acc, &loss, err, sizeof err);
        pb_model_set_input_hook(&a, NULL, NULL);
        ok(sn.rows == 3 * te.n, "input hook saw each of 3 dense layers for all %d test examples (%d rows)", te.n, sn.rows);
    }

    /* Per-example scores through the host table (data pruning): the loss of
     * each example and EL2N = ||softmax - onehot|| match a direct computation. */
    {
        pb_ctx ctx;
        pb_train_cfg c = quick_cfg(1);
        rc = pb_ctx_init(&ctx, &a, &tr, &te, &c, 1, err, sizeof err);
        int idx[5] = {3, 1, 4, 1, 5}, y[5];
        float loss[5], el2n[5], direct[5], x[5 * 784];
        if (rc == PB_OK)
            rc = pb_host_table.example_scores(&ctx, idx, 5, loss, el2n);
        pb_data_batch(&tr, idx, 5, NULL, x, y);
        pb_model_forward(&a, x, 5, 0);
        pb_model_loss(&a, y, 5, 1.0f, direct, NULL);
        double worst = 0;
        for (int i = 0; i < 5; i++) {
            double e2 = 0;
            for (int k = 0; k < 10; k++) {
                double d = a.probs[i * 10 + k] - (k == y[i]);
                e2 += d * d;
            }
            worst = fmax(worst, fabs(loss[i] - direct[i]) + fabs(el2n[i] - sqrt(e2)));
        }
        ok(rc == PB_OK && worst < 1e-5, "example_scores: per-example loss and EL2N (max error %.2g)", worst);
        pb_ctx_free(&ctx);
    }
    /* Schedules. */
    {
        pb_optim_cfg oc;
        pb_optim_defaults(&oc);
        oc.lr = 1.0;
        oc.sched = PB_SCHED_COSINE;
        double l0 = pb_optim_lr(&oc, 0, 100, 10), lm = pb_optim_lr(&oc, 50, 100, 10),
               le = pb_optim_lr(&oc, 100, 100, 10);
        oc.sched = PB_SCHED_STEP;
        oc.step_epochs = 2;
        double s = pb_optim_lr(&oc, 25, 100, 10);
        oc.sched = PB_SCHED_CONSTANT;
        oc.warmup_steps = 10;
        double w = pb_optim_lr(&oc, 4, 100, 10);
        ok(fabs(l0 - 1) < 1e-9 && fabs(lm - 0.5) < 1e-9 && fabs(le) < 1e-9 && fabs(s - 0.1) < 1e-9 &&
               fabs(w - 0.5) < 1e-9,
           "cosine, step and warm-up schedules give the expected rates");
    }
    pb_model_free(&a);
    pb_data_free(&tr);
    pb_data_free(&te);
    return tap_done();
}
