/* t_lm_host: structured removal on a transformer through the host's
 * remove_units: removing attention heads (whole heads of a qkv layer) and MLP
 * neurons gives the outputs of the network in which they are masked, and
 * anything but whole heads is refused. Prints TAP. */
#include "engine/pb_gpt.h"
#include "host/pb_host.h"
#include "host/pb_surgery.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tap.h"

enum { T = 6, V = 16, B = 4 };

static pb_dataset data;

static void make_data(void)
{
    memset(&data, 0, sizeof data);
    data.n = 8, data.c = 1, data.h = T, data.w = 1, data.ncls = V, data.ny = T, data.std[0] = 1;
    data.x = malloc(8 * T);
    data.y = malloc(8 * T);
    for (int i = 0; i < 8 * T; i++) {
        data.x[i] = (uint8_t)((i * 7 + 3) % V);
        data.y[i] = (uint8_t)((i * 5 + 1) % V);
    }
}

static int build(pb_model *m, char *err, size_t errlen)
{
    int rc = pb_gpt_build(m, "gpt:layers=1,dim=8,heads=2,ctx=6,ff=12", 1, T, 1, V, err, errlen);
    if (rc == PB_OK)
        rc = pb_model_finalize(m, B, err, errlen);
    if (rc == PB_OK) {
        pb_model_init_weights(m, 7);
        /* nonzero biases, so that a masked unit still carries its bias */
        for (int i = 0; i < m->nparams; i++)
            if (strstr(m->params[i]->name, ".bias") && strncmp(m->params[i]->name, "b0.ln", 5))
                for (size_t j = 0; j < m->params[i]->n; j++)
                    m->params[i]->w[j] = 0.1f * (float)((int)(j % 5) - 2);
    }
    return rc;
}

static void logits_of(pb_model *m, float *out)
{
    float x[B * T];
    int y[B * T], idx[B] = {0, 1, 2, 3};
    pb_data_batch(&data, idx, B, NULL, x, y);
    memcpy(out, pb_model_forward(m, x, B, 0), sizeof(float) * B * T * V);
}

static double maxdiff(const float *a, const float *b, size_t n)
{
    double d = 0;
    for (size_t i = 0; i < n; i++)
        d = fmax(d, fabs(a[i] - b[i]));
    return d;
}

static pb_param *param(pb_model *m, const char *name) { return pb_model_find_param(m, name); }

/* zeroes rows [r0, r1) of a weight, or columns [c0, c1) when cols */
static void zero(pb_param *p, int a, int b, int cols)
{
    int rows = p->shape[0], in = (int)(p->n / (size_t)rows);
    for (int r = 0; r < rows; r++)
        for (int k = 0; k < in; k++)
            if (cols ? (k >= a && k < b) : (r >= a && r < b))
                p->w[(size_t)r * in + k] = 0.0f;
}

static int prunable_index(pb_model *m, const char *name)
{
    for (int i = 0; i < pb_model_nprunable(m); i++)
        if (!strcmp(pb_model_prunable(m, i)->name, name))
            return i;
    return -1;
}

int main(void)
{
    char err[PB_ERRLEN];
    tap_plan(6);
    make_data();
    pb_train_cfg cfg;
    pb_train_defaults(&cfg);
    cfg.batch = B;
    float masked[B * T * V], removed[B * T * V];

    /* heads: keep head 0 of 2 (dimension 4): q 0..3, k 8..11, v 16..19 */
    pb_model m, mm;
    pb_ctx c;
    int rc = build(&m, err, sizeof err);
    if (rc == PB_OK)
        rc = build(&mm, err, sizeof err);
    if (rc != PB_OK) {
        printf("# %s\n", err);
        return 1;
    }
    pb_param *qkv = param(&mm, "b0.qkv.weight"), *proj = param(&mm, "b0.proj.weight");
    zero(qkv, 4, 8, 0), zero(qkv, 12, 16, 0), zero(qkv, 20, 24, 0), zero(proj, 4, 8, 1);
    logits_of(&mm, masked);
    rc = pb_ctx_init(&c, &m, &data, &data, &cfg, 1, err, sizeof err);
    const int keep[12] = {0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19};
    int qi = prunable_index(&m, "b0.qkv.weight");
    if (rc == PB_OK)
        rc = pb_surgery_remove_units(&c, qi, keep, 12);
    if (rc == PB_OK)
        logits_of(c.m, removed);
    const pb_layer *attn = rc == PB_OK ? &c.m->layers[3] : NULL;
    ok(rc == PB_OK && attn->kind == PB_ATTN && attn->oc == 4 && param(c.m, "b0.proj.weight")->n == 8 * 4 &&
       maxdiff(masked, removed, sizeof masked / sizeof *masked) < 1e-5,
       "removing head 1 keeps the outputs of the network with it masked (max diff %.2g)",
       rc == PB_OK ? maxdiff(masked, removed, sizeof masked / sizeof *masked) : -1.0);
    if (rc != PB_OK)
        printf("# %s\n", err);
    size_t total, nz, before;
    pb_model_count_params(c.m, &total, &nz);
    pb_model_count_params(&mm, &before, &nz);
    /* a head of q, k, v (3 x 4 rows of 8 and their biases) and 4 columns of the projection */
    size_t gone = 0;
    for (int i = 0; rc == PB_OK && i < c.m->nparams; i++)
        gone += c.m->params[i]->removed;
    /* the values are gone from the tensors; the counts keep them, as pruned */
    ok(rc == PB_OK && gone == 3 * 4 * 8 + 12 + 4 * 8 && total == before,
       "the pruned network stores %zu parameters fewer of %zu, and counts them as pruned (%zu of %zu)", gone,
       before, total, before);

    /* not whole heads, or not the same heads in q, k and v */
    const int half[6] = {0, 1, 8, 9, 16, 17}, mixed[12] = {0, 1, 2, 3, 12, 13, 14, 15, 16, 17, 18, 19};
    pb_model m2;
    pb_ctx c2;
    rc = build(&m2, err, sizeof err);
    if (rc == PB_OK)
        rc = pb_ctx_init(&c2, &m2, &data, &data, &cfg, 1, err, sizeof err);
    int r1 = pb_surgery_remove_units(&c2, qi, half, 6);
    ok(r1 != PB_OK && strstr(c2.err, "whole heads"), "half heads refused: %s", c2.err);
    int r2 = pb_surgery_remove_units(&c2, qi, mixed, 12);
    ok(r2 != PB_OK && strstr(c2.err, "same in q"), "different heads in q and k refused: %s", c2.err);
    int pi = prunable_index(&m2, "b0.proj.weight");
    int r3 = pb_surgery_remove_units(&c2, pi, keep, 4);
    ok(r3 != PB_OK && strstr(c2.err, "residual"), "the projection into the residual stream refused: %s", c2.err);

    /* MLP neurons: keep 0..7 of fc1's 12 */
    pb_model m3, mm3;
    pb_ctx c3;
    rc = build(&m3, err, sizeof err);
    if (rc == PB_OK)
        rc = build(&mm3, err, sizeof err);
    zero(param(&mm3, "b0.fc1.weight"), 8, 12, 0), zero(param(&mm3, "b0.fc2.weight"), 8, 12, 1);
    logits_of(&mm3, masked);
    const int keep8[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    if (rc == PB_OK)
        rc = pb_ctx_init(&c3, &m3, &data, &data, &cfg, 1, err, sizeof err);
    if (rc == PB_OK)
        rc = pb_surgery_remove_units(&c3, prunable_index(&m3, "b0.fc1.weight"), keep8, 8);
    if (rc == PB_OK)
        logits_of(c3.m, removed);
    ok(rc == PB_OK && param(c3.m, "b0.fc2.weight")->n == 8 * 8 &&
       maxdiff(masked, removed, sizeof masked / sizeof *masked) < 1e-5,
       "removing 4 MLP neurons keeps the outputs of the network with them masked");
    pb_ctx_free(&c);
    pb_ctx_free(&c2);
    pb_ctx_free(&c3);
    pb_model_free(&m);
    pb_model_free(&mm);
    pb_model_free(&m2);
    pb_model_free(&m3);
    pb_model_free(&mm3);
    pb_data_free(&data);
    return tap_done();
}
