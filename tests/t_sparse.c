/* t_sparse: the sparse weight formats and kernels (pb_sparse.h) against the
 * dense kernels on the same masked weights, forward and backward, at batch
 * sizes that take the gathered and the batched kernels; the weight gradient
 * only where the mask is 1; csr and nm giving the same bits; determinism
 * over runs and thread counts; the formats rebuilt when masks change during
 * training and after a checkpoint round trip; the kernel choice; csr's
 * sliced-ELL batch-1 layout holding exactly the masked weights. Prints TAP.
 *
 * Tolerance against the dense kernels (OpenBLAS sums in another order):
 * |sparse - dense| <= 1e-5 * sum |a||b| over the terms of that element
 * + 1e-7, with sum |a||b| bounded by the largest such sum of the tensor. */
#include "engine/pb_ckpt.h"
#include "engine/pb_data.h"
#include "engine/pb_kern.h"
#include "engine/pb_model.h"
#include "engine/pb_optim.h"
#include "engine/pb_par.h"
#include "engine/pb_sparse.h"
#include "engine/pb_train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tap.h"

#define RTOL 1e-5

static pb_rng rng;

static float *falloc(size_t n)
{
    float *p = pb_alloc(n * sizeof(float));
    if (!p)
        abort(); /* a test program has no caller to report to */
    return p;
}

static void fill(float *a, size_t n)
{
    for (size_t i = 0; i < n; i++)
        a[i] = pb_rng_normal(&rng);
}

/* A dense layer of rows x cols on its own, weights and mask as the model
 * would own them. */
typedef struct fixture {
    pb_layer l;
    pb_param w, b;
} fixture;

static void fixture_init(fixture *f, int rows, int cols, int max_batch)
{
    memset(f, 0, sizeof *f);
    f->l.kind = PB_DENSE;
    snprintf(f->l.name, sizeof f->l.name, "fc");
    f->l.in = -1;
    f->l.in2 = -1;
    f->l.ic = cols;
    f->l.ih = f->l.iw = 1;
    f->l.oc = rows;
    f->l.has_bias = 1;
    char err[PB_ERRLEN];
    pb_layer_infer_shape(&f->l, err, sizeof err);
    f->w.n = (size_t)rows * cols;
    f->w.w = falloc(f->w.n);
    f->w.g = falloc(f->w.n);
    f->w.mask = falloc(f->w.n);
    snprintf(f->w.name, sizeof f->w.name, "fc.weight");
    f->b.n = (size_t)rows;
    f->b.w = falloc(f->b.n);
    f->b.g = falloc(f->b.n);
    fill(f->w.w, f->w.n);
    fill(f->b.w, f->b.n);
    f->l.w = &f->w;
    f->l.b = &f->b;
    if (pb_layer_alloc(&f->l, max_batch, err, sizeof err) != PB_OK) {
        fprintf(stderr, "%s\n", err);
        abort();
    }
}

static void fixture_free(fixture *f)
{
    pb_layer_free(&f->l);
    pb_free(f->w.w);
    pb_free(f->w.g);
    pb_free(f->w.mask);
    pb_free(f->b.w);
    pb_free(f->b.g);
}

static void mask_random(fixture *f, double density)
{
    for (size_t j = 0; j < f->w.n; j++)
        f->w.mask[j] = pb_rng_uniform(&rng) < density ? 1.0f : 0.0f;
    for (size_t j = 0; j < f->w.n; j++)
        f->w.w[j] *= f->w.mask[j];
}

/* n of every m consecutive inputs of a row, fewer in some groups (padding) */
static void mask_nm(fixture *f, int n, int m, int ragged)
{
    const int rows = f->l.oc, cols = (int)pb_layer_isize(&f->l);
    for (int r = 0; r < rows; r++)
        for (int g = 0; g * m < cols; g++) {
            const int c1 = (g + 1) * m < cols ? (g + 1) * m : cols;
            for (int c = g * m; c < c1; c++)
                f->w.mask[(size_t)r * cols + c] = 0.0f;
            int want = ragged && (r + g) % 3 == 0 ? n - 1 : n, got = 0;
            for (int c = g * m; c < c1 && got < want; c++)
                if (pb_rng_below(&rng, 2) || c1 - c <= want - got) {
                    f->w.mask[(size_t)r * cols + c] = 1.0f;
                    got++;
                }
        }
    for (size_t j = 0; j < f->w.n; j++)
        f->w.w[j] *= f->w.mask[j];
}

/* builds f's format; n:m as given (nm) */
static int build(fixture *f, pb_wfmt fmt, int max_batch, int n, int m)
{
    char err[PB_ERRLEN] = "";
    pb_sparse_drop(&f->l);
    f->l.sp = calloc(1, sizeof *f->l.sp);
    int rc = pb_sparse_build(f->l.sp, &f->w, f->l.oc, (int)pb_layer_isize(&f->l), fmt, n, m, max_batch,
                             err, sizeof err);
    if (rc != PB_OK)
        fprintf(stderr, "# %s\n", err);
    f->l.sp->forced = 1;
    return rc == PB_OK;
}

/* largest |a - b| over n, and whether it is within the tolerance for terms
 * of magnitude scale */
static int close_to(const float *a, const float *b, size_t n, double scale, double *worst)
{
    double w = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= w))
            w = d;
    }
    *worst = w;
    return w <= RTOL * scale + 1e-7;
}

/* sum |w||x| over a row, largest over rows and examples: the scale of an output */
static double out_scale(const fixture *f, const float *x, int B)
{
    const int rows = f->l.oc, cols = (int)pb_layer_isize(&f->l);
    double best = 1;
    for (int b = 0; b < B; b++)
        for (int r = 0; r < rows; r++) {
            double s = fabs(f->b.w[r]);
            for (int c = 0; c < cols; c++)
                s += fabs(f->w.w[(size_t)r * cols + c]) * fabs(x[(size_t)b * cols + c]);
            if (s > best)
                best = s;
        }
    return best;
}

static int bit_equal(const float *a, const float *b, size_t n) { return !memcmp(a, b, n * sizeof(float)); }

/* equal values (a pruned weight may be -0.0 in the dense array) */
static int same_values(const float *a, const float *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i])
            return 0;
    return 1;
}

/* Forward and backward of the sparse kernels against the dense ones. */
static void check_kernels(const char *what, fixture *f, pb_wfmt fmt, int n, int m, int B)
{
    const int rows = f->l.oc, cols = (int)pb_layer_isize(&f->l);
    const size_t nx = (size_t)B * cols, ny = (size_t)B * rows;
    float *x = falloc(nx), *yd = falloc(ny), *dout = falloc(ny);
    float *dxd = falloc(nx), *dxs = falloc(nx), *gd = falloc(f->w.n), *gbd = falloc((size_t)rows);
    fill(x, nx);
    fill(dout, ny);
    if (!build(f, fmt, B, n, m)) {
        ok(0, "%s: build", what);
        goto out;
    }
    const double sy = out_scale(f, x, B);
    double worst = 0;
    for (int train = 0; train <= 1; train++) {
        pb_kern_dense_forward(&f->l, x, B);
        memcpy(yd, f->l.out, ny * sizeof(float));
        pb_kern_sparse_forward(&f->l, x, B, train);
        ok(close_to(f->l.out, yd, ny, sy, &worst), "%s B=%d %s: forward equals dense (max diff %.2g)",
           what, B, train ? "train" : "eval", worst);
    }
    /* backward: dense on the masked weights, gradients masked as the optimizer would */
    memcpy(f->l.dout, dout, ny * sizeof(float));
    memset(f->w.g, 0, f->w.n * sizeof(float));
    memset(f->b.g, 0, (size_t)rows * sizeof(float));
    fill(dxd, nx);
    memcpy(dxs, dxd, nx * sizeof(float));
    pb_kern_dense_backward(&f->l, x, dxd, B, 0);
    memcpy(gd, f->w.g, f->w.n * sizeof(float));
    memcpy(gbd, f->b.g, (size_t)rows * sizeof(float));
    for (size_t j = 0; j < f->w.n; j++)
        gd[j] *= f->w.mask[j];
    memset(f->w.g, 0, f->w.n * sizeof(float));
    memset(f->b.g, 0, (size_t)rows * sizeof(float));
    pb_kern_sparse_forward(&f->l, x, B, 0); /* the gathered forward leaves no transposed input */
    memcpy(f->l.dout, dout, ny * sizeof(float));
    pb_kern_sparse_backward(&f->l, x, dxs, B, 0);
    double sdx = 1, sg = 1;
    for (int b = 0; b < B; b++)
        for (int c = 0; c < cols; c++) {
            double s = fabs(dxd[(size_t)b * cols + c]);
            for (int r = 0; r < rows; r++)
                s += fabs(dout[(size_t)b * rows + r]) * fabs(f->w.w[(size_t)r * cols + c]);
            sdx = s > sdx ? s : sdx;
        }
    for (int c = 0; c < cols; c++)
        for (int r = 0; r < rows; r++) {
            double s = 0;
            for (int b = 0; b < B; b++)
                s += fabs(dout[(size_t)b * rows + r]) * fabs(x[(size_t)b * cols + c]);
            sg = s > sg ? s : sg;
        }
    ok(close_to(dxs, dxd, nx, sdx, &worst), "%s B=%d: input gradient (added) equals dense (max diff %.2g)",
       what, B, worst);
    ok(close_to(f->w.g, gd, f->w.n, sg, &worst), "%s B=%d: weight gradient equals dense where kept (max diff %.2g)",
       what, B, worst);
    size_t outside = 0;
    for (size_t j = 0; j < f->w.n; j++)
        outside += f->w.mask[j] == 0.0f && f->w.g[j] != 0.0f;
    ok(outside == 0, "%s B=%d: no weight gradient where the mask is 0 (%zu)", what, B, outside);
    ok(bit_equal(f->b.g, gbd, (size_t)rows), "%s B=%d: bias gradient bit-identical (same order)", what, B);
    /* write mode overwrites */
    for (size_t j = 0; j < nx; j++)
        dxs[j] = NAN;
    pb_kern_sparse_backward(&f->l, x, dxs, B, 1);
    pb_kern_dense_backward(&f->l, x, dxd, B, 1);
    ok(close_to(dxs, dxd, nx, sdx, &worst), "%s B=%d: input gradient (written) equals dense (max diff %.2g)",
       what, B, worst);
out:
    pb_free(x);
    pb_free(yd);
    pb_free(dout);
    pb_free(dxd);
    pb_free(dxs);
    pb_free(gd);
    pb_free(gbd);
}

/* ------------------------------------------------------------ formats */

static void test_kernels(void)
{
    static const int batches[] = {1, 3, 5, 17, 128};
    fixture f;
    for (size_t i = 0; i < sizeof batches / sizeof *batches; i++) {
        const int B = batches[i];
        fixture_init(&f, 37, 101, B);
        mask_random(&f, 0.1);
        check_kernels("csr 10%", &f, PB_WFMT_CSR, 0, 0, B);
        fixture_free(&f);
    }
    fixture_init(&f, 20, 64, 17);
    mask_random(&f, 0.0);
    check_kernels("csr empty", &f, PB_WFMT_CSR, 0, 0, 17);
    fixture_free(&f);
    fixture_init(&f, 20, 64, 17);
    mask_random(&f, 1.0);
    check_kernels("csr full", &f, PB_WFMT_CSR, 0, 0, 17);
    fixture_free(&f);
    /* 2:4 exact, 2:8 with groups keeping fewer, 3:8 (no vector gather), ragged last group */
    for (int B = 1; B <= 40; B += 39) {
        fixture_init(&f, 33, 96, B);
        mask_nm(&f, 2, 4, 0);
        check_kernels("nm 2:4", &f, PB_WFMT_NM, 2, 4, B);
        fixture_free(&f);
        fixture_init(&f, 33, 100, B);
        mask_nm(&f, 2, 8, 1);
        check_kernels("nm 2:8 padded", &f, PB_WFMT_NM, 2, 8, B);
        fixture_free(&f);
        fixture_init(&f, 9, 30, B);
        mask_nm(&f, 3, 8, 0);
        check_kernels("nm 3:8 ragged", &f, PB_WFMT_NM, 3, 8, B);
        fixture_free(&f);
    }
}

static void test_detect_and_build(void)
{
    fixture f;
    fixture_init(&f, 16, 64, 4);
    int n = 0, m = 0;
    mask_nm(&f, 2, 4, 0);
    ok(pb_sparse_detect_nm(f.w.mask, 16, 64, &n, &m) && n == 2 && m == 4, "2:4 mask detected as 2:4 (%d:%d)", n, m);
    mask_nm(&f, 1, 8, 0);
    ok(pb_sparse_detect_nm(f.w.mask, 16, 64, &n, &m) && n == 1 && m == 8, "1:8 mask detected as 1:8 (%d:%d)", n, m);
    mask_random(&f, 0.3);
    ok(!pb_sparse_detect_nm(f.w.mask, 16, 64, &n, &m), "random mask is not n:m");
    pb_sparse s = {0};
    char err[PB_ERRLEN] = "";
    int rc = pb_sparse_build(&s, &f.w, 16, 64, PB_WFMT_NM, 1, 4, 4, err, sizeof err);
    ok(rc == PB_EUSAGE && strstr(err, "keeps more than 1"), "nm build refuses a mask that is not 1:4 (%s)", err);
    rc = pb_sparse_build(&s, &f.w, 16, 64, PB_WFMT_CSR, 0, 0, 4, err, sizeof err);
    float *back = falloc(f.w.n);
    pb_sparse_to_dense(&s, back);
    ok(rc == PB_OK && same_values(back, f.w.w, f.w.n), "csr holds exactly the masked weights");
    size_t nnz = 0;
    for (size_t j = 0; j < f.w.n; j++)
        nnz += f.w.mask[j] != 0;
    ok(s.nnz == nnz && s.slots == nnz, "csr stores the %zu kept weights", nnz);
    pb_sparse_free(&s);
    pb_free(back);
    pb_sparse_mode mode;
    rc = pb_sparse_parse_mode("fast", &mode, err, sizeof err);
    ok(rc == PB_EUSAGE && strstr(err, "auto, dense, sparse, csr"), "a bad kernel mode names the valid ones (%s)", err);
    fixture_free(&f);
}

/* csr and nm on the same n:m mask, batched: the same sums in the same order */
static void test_csr_nm_bits(void)
{
    fixture f;
    const int B = 24;
    fixture_init(&f, 21, 64, B);
    mask_nm(&f, 2, 8, 1);
    float *x = falloc((size_t)B * 64), *y = falloc((size_t)B * 21), *dx = falloc((size_t)B * 64);
    float *g = falloc(f.w.n);
    fill(x, (size_t)B * 64);
    fill(f.l.dout, (size_t)B * 21);
    build(&f, PB_WFMT_CSR, B, 0, 0);
    pb_kern_sparse_forward(&f.l, x, B, 1);
    memcpy(y, f.l.out, (size_t)B * 21 * sizeof(float));
    memset(f.w.g, 0, f.w.n * sizeof(float));
    pb_kern_sparse_backward(&f.l, x, dx, B, 1);
    memcpy(g, f.w.g, f.w.n * sizeof(float));
    build(&f, PB_WFMT_NM, B, 2, 8);
    ok(f.l.sp->fmt == PB_WFMT_NM && f.l.sp->slots > f.l.sp->nnz, "nm format with padding slots (%zu > %zu)",
       f.l.sp->slots, f.l.sp->nnz);
    pb_kern_sparse_forward(&f.l, x, B, 1);
    ok(bit_equal(y, f.l.out, (size_t)B * 21), "csr and nm forward bit-identical");
    memset(f.w.g, 0, f.w.n * sizeof(float));
    float *dx2 = falloc((size_t)B * 64);
    pb_kern_sparse_backward(&f.l, x, dx2, B, 1);
    ok(bit_equal(dx, dx2, (size_t)B * 64) && bit_equal(g, f.w.g, f.w.n), "csr and nm backward bit-identical");
    pb_free(x);
    pb_free(y);
    pb_free(dx);
    pb_free(dx2);
    pb_free(g);
    fixture_free(&f);
}

/* one layer large enough to be split across threads: the same bits */
static void test_threads(void)
{
    fixture f;
    const int B = 128, rows = 300, cols = 784;
    fixture_init(&f, rows, cols, B);
    mask_random(&f, 0.1);
    build(&f, PB_WFMT_CSR, B, 0, 0);
    float *x = falloc((size_t)B * cols), *y[2], *dx[2], *g[2];
    fill(x, (size_t)B * cols);
    fill(f.l.dout, (size_t)B * rows);
    for (int t = 0; t < 2; t++) {
        pb_par_set_threads(t + 1);
        y[t] = falloc((size_t)B * rows);
        dx[t] = falloc((size_t)B * cols);
        g[t] = falloc(f.w.n);
        pb_kern_sparse_forward(&f.l, x, B, 1);
        memcpy(y[t], f.l.out, (size_t)B * rows * sizeof(float));
        memset(f.w.g, 0, f.w.n * sizeof(float));
        pb_kern_sparse_backward(&f.l, x, dx[t], B, 1);
        memcpy(g[t], f.w.g, f.w.n * sizeof(float));
    }
    pb_par_set_threads(1);
    ok(pb_par_threads() == 1 && bit_equal(y[0], y[1], (size_t)B * rows) && bit_equal(dx[0], dx[1], (size_t)B * cols) &&
           bit_equal(g[0], g[1], f.w.n),
       "300x784 at batch 128: 1 and 2 threads give the same bits, forward and backward");
    for (int t = 0; t < 2; t++) {
        pb_free(y[t]);
        pb_free(dx[t]);
        pb_free(g[t]);
    }
    pb_free(x);
    fixture_free(&f);
}

/* ------------------------------------------------- csr's sliced ELL */

/* The sliced-ELL layout read back as a dense rows x cols matrix; 0 when a
 * slot's row or column disagrees with where its source slot of the format
 * sits (pos), a slot takes an nm padding slot, or two slots hold one weight */
static int sell_decode(const pb_sparse *s, float *w, size_t *pad)
{
    memset(w, 0, (size_t)s->rows * s->cols * sizeof(float));
    *pad = 0;
    if (s->sell_slices != (s->rows + 15) / 16)
        return 0;
    size_t step = 0, seen = 0;
    for (int sl = 0; sl < s->sell_slices; sl++)
        for (int32_t u = s->sell_rptr[sl]; u < s->sell_rptr[sl + 1]; u++) {
            const int q = (int)(s->sell_run[u] >> 8), n = (int)(s->sell_run[u] & 0xff);
            for (int t = 0; t < n; t++, step++)
                for (int l = 0; l < 16; l++) {
                    const size_t o = step * 16 + (size_t)l;
                    const int r = sl * 16 + l, c = q * 32 + s->sell_idx[o];
                    if (s->sell_src[o] < 0) {
                        (*pad)++;
                        if (s->sell_val[o] != 0.0f)
                            return 0;
                        continue;
                    }
                    if (r >= s->rows || c >= s->cols || (size_t)s->sell_src[o] >= s->slots ||
                        s->pos[s->sell_src[o]] != (uint32_t)((size_t)r * s->cols + c) ||
                        w[(size_t)r * s->cols + c] != 0.0f)
                        return 0;
                    w[(size_t)r * s->cols + c] = s->sell_val[o];
                    seen++;
                }
        }
    return step == s->sell_steps && seen == s->nnz;
}

/* csr at batch 1 runs on its sliced-ELL layout: the layout holds exactly
 * the masked weights (after a value refresh and a mask change too), and the
 * forward equals dense and repeats its bits, at odd shapes and densities */
static void test_sell(void)
{
    static const int shapes[][2] = {{1, 1}, {15, 33}, {17, 31}, {45, 77}, {16, 64}, {300, 784}};
    static const double dens[] = {0.02, 0.05, 0.2, 0.5, 1.0};
    fixture g;
    fixture_init(&g, 100, 300, 4);
    mask_random(&g, 0.375);
    if (build(&g, PB_WFMT_CSR, 4, 0, 0)) {
        g.l.sp->forced = 0;
        ok(pb_sparse_active(&g.l, 1) && !pb_sparse_active(&g.l, 2) && !pb_sparse_active(&g.l, 4),
           "auto: a 37.5%% dense layer runs csr (sliced ELL) at batch 1, dense at batches 2 and 4");
        mask_random(&g, 0.2);
        ok(build(&g, PB_WFMT_CSR, 4, 0, 0) && (g.l.sp->forced = 0, 1) && pb_sparse_active(&g.l, 2) &&
               pb_sparse_active(&g.l, 3) && pb_sparse_active(&g.l, 4),
           "auto: a 20%% dense layer runs csr at batches 2 and 3 too (and batched at 4)");
    } else {
        ok(0, "auto: build a 37.5%% dense csr");
    }
    fixture_free(&g);
    fixture_init(&g, 100, 300, 4);
    mask_nm(&g, 2, 4, 0);
    if (build(&g, PB_WFMT_NM, 4, 2, 4)) {
        g.l.sp->forced = 0;
        ok(pb_sparse_active(&g.l, 1) && !pb_sparse_active(&g.l, 2) && !pb_sparse_active(&g.l, 4),
           "auto: a 2:4 layer runs nm (sliced ELL) at batch 1, dense at batches 2 and 4");
        mask_nm(&g, 3, 8, 0);
        ok(build(&g, PB_WFMT_NM, 4, 3, 8) && (g.l.sp->forced = 0, 1) && pb_sparse_active(&g.l, 1) &&
               pb_sparse_active(&g.l, 3) && !pb_sparse_active(&g.l, 4),
           "auto: a 3:8 layer runs nm at batches 1 to 3, dense at 4");
    } else {
        ok(0, "auto: build a 2:4 nm");
    }
    fixture_free(&g);
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++)
        for (size_t d = 0; d < sizeof dens / sizeof *dens; d++) {
            const int rows = shapes[i][0], cols = shapes[i][1];
            fixture f;
            fixture_init(&f, rows, cols, 1);
            mask_random(&f, dens[d]);
            float *wd = falloc(f.w.n), *x = falloc((size_t)cols), *yd = falloc((size_t)rows),
                  *y1 = falloc((size_t)rows);
            fill(x, (size_t)cols);
            size_t pad = 0;
            int okb = build(&f, PB_WFMT_CSR, 1, 0, 0);
            ok(okb && sell_decode(f.l.sp, wd, &pad) && same_values(wd, f.w.w, f.w.n),
               "sell %dx%d at %.0f%%: the layout holds the masked weights (%zu nonzeros, %zu padding slots)",
               rows, cols, 100 * dens[d], okb ? f.l.sp->nnz : 0, pad);
            if (!okb)
                goto next;
            const double sy = out_scale(&f, x, 1);
            double worst = 0;
            pb_kern_dense_forward(&f.l, x, 1);
            memcpy(yd, f.l.out, (size_t)rows * sizeof(float));
            pb_kern_sparse_forward(&f.l, x, 1, 0);
            memcpy(y1, f.l.out, (size_t)rows * sizeof(float));
            ok(close_to(y1, yd, (size_t)rows, sy, &worst), "sell %dx%d at %.0f%%: batch-1 forward equals dense (max diff %.2g)",
               rows, cols, 100 * dens[d], worst);
            pb_par_set_threads(2);
            pb_kern_sparse_forward(&f.l, x, 1, 0);
            pb_par_set_threads(1);
            ok(bit_equal(y1, f.l.out, (size_t)rows), "sell %dx%d at %.0f%%: same bits again, at 2 threads", rows,
               cols, 100 * dens[d]);
            if (i == 3 || i == 5) {
                /* new values under the same mask, then a new mask */
                for (size_t j = 0; j < f.w.n; j++)
                    f.w.w[j] = f.w.mask[j] * pb_rng_normal(&rng);
                pb_sparse_refresh(f.l.sp, &f.w);
                ok(sell_decode(f.l.sp, wd, &pad) && same_values(wd, f.w.w, f.w.n),
                   "sell %dx%d at %.0f%%: a value refresh reaches the layout", rows, cols, 100 * dens[d]);
                fill(f.w.w, f.w.n);
                mask_random(&f, dens[d] < 0.5 ? 2 * dens[d] : dens[d] / 3);
                okb = build(&f, PB_WFMT_CSR, 1, 0, 0);
                ok(okb && sell_decode(f.l.sp, wd, &pad) && same_values(wd, f.w.w, f.w.n),
                   "sell %dx%d: rebuilt for a changed mask, the layout holds its weights", rows, cols);
                pb_kern_dense_forward(&f.l, x, 1);
                memcpy(yd, f.l.out, (size_t)rows * sizeof(float));
                pb_kern_sparse_forward(&f.l, x, 1, 0);
                ok(okb && close_to(f.l.out, yd, (size_t)rows, out_scale(&f, x, 1), &worst),
                   "sell %dx%d: forward after the mask change equals dense (max diff %.2g)", rows, cols, worst);
            }
        next:
            pb_free(wd);
            pb_free(x);
            pb_free(yd);
            pb_free(y1);
            pb_sparse_drop(&f.l);
            fixture_free(&f);
        }
}

/* nm at batch 1 runs on the same sliced-ELL layout, built from its slots
 * that are not padding: the layout holds the masked weights, the forward
 * equals dense and gives csr's bits on the same mask, and a value refresh
 * reaches it */
static void test_nm_sell(void)
{
    static const struct { int rows, cols, n, m, ragged; } cases[] = {
        {16, 64, 2, 4, 0}, {33, 100, 2, 8, 1}, {9, 30, 3, 8, 0}, {300, 784, 1, 16, 0}, {45, 77, 4, 32, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const int rows = cases[i].rows, cols = cases[i].cols, n = cases[i].n, m = cases[i].m;
        fixture f;
        fixture_init(&f, rows, cols, 1);
        mask_nm(&f, n, m, cases[i].ragged);
        float *wd = falloc(f.w.n), *x = falloc((size_t)cols), *yd = falloc((size_t)rows),
              *yc = falloc((size_t)rows);
        fill(x, (size_t)cols);
        size_t pad = 0;
        int okb = build(&f, PB_WFMT_CSR, 1, 0, 0);
        if (okb) {
            pb_kern_sparse_forward(&f.l, x, 1, 0);
            memcpy(yc, f.l.out, (size_t)rows * sizeof(float));
        }
        okb = okb && build(&f, PB_WFMT_NM, 1, n, m);
        ok(okb && f.l.sp->sell_val && sell_decode(f.l.sp, wd, &pad) && same_values(wd, f.w.w, f.w.n),
           "nm %d:%d %dx%d: the sliced-ELL layout holds the masked weights (%zu nonzeros, %zu padding slots)", n,
           m, rows, cols, okb ? f.l.sp->nnz : 0, pad);
        if (okb) {
            double worst = 0;
            pb_kern_dense_forward(&f.l, x, 1);
            memcpy(yd, f.l.out, (size_t)rows * sizeof(float));
            pb_kern_sparse_forward(&f.l, x, 1, 0);
            ok(close_to(f.l.out, yd, (size_t)rows, out_scale(&f, x, 1), &worst),
               "nm %d:%d %dx%d: batch-1 forward equals dense (max diff %.2g)", n, m, rows, cols, worst);
            ok(bit_equal(f.l.out, yc, (size_t)rows), "nm %d:%d %dx%d: batch-1 forward gives csr's bits", n, m,
               rows, cols);
            for (size_t j = 0; j < f.w.n; j++)
                f.w.w[j] = f.w.mask[j] * pb_rng_normal(&rng);
            pb_sparse_refresh(f.l.sp, &f.w);
            ok(sell_decode(f.l.sp, wd, &pad) && same_values(wd, f.w.w, f.w.n),
               "nm %d:%d %dx%d: a value refresh reaches the layout", n, m, rows, cols);
        }
        pb_free(wd);
        pb_free(x);
        pb_free(yd);
        pb_free(yc);
        pb_sparse_drop(&f.l);
        fixture_free(&f);
    }
}

/* -------------------------------------------------- models and training */

static void masks_random(pb_model *m, double density, uint64_t seed)
{
    pb_rng r;
    pb_rng_seed(&r, seed);
    for (int i = 0; i < pb_model_nprunable(m); i++) {
        pb_param *p = pb_model_prunable(m, i);
        for (size_t j = 0; j < p->n; j++)
            p->mask[j] = pb_rng_uniform(&r) < density ? 1.0f : 0.0f;
    }
    pb_model_apply_masks(m);
}

static int build_mlp(pb_model *m, int batch)
{
    static const int hidden[2] = {40, 24};
    char err[PB_ERRLEN];
    if (pb_model_build(m, "mlp", 1.0, hidden, 2, 1, 8, 8, 5, err, sizeof err) != PB_OK ||
        pb_model_finalize(m, batch, err, sizeof err) != PB_OK || pb_model_ensure_masks(m, err, sizeof err) != PB_OK) {
        fprintf(stderr, "%s\n", err);
        abort();
    }
    pb_model_init_weights(m, 3);
    return 1;
}

/* Gradual pruning as a step hook: every k steps the smallest kept weights go. */
typedef struct gradual {
    int every;
    int rounds;
} gradual;

static int prune_step(void *ud, pb_model *m, long step, char *err, size_t errlen)
{
    (void)err, (void)errlen;
    gradual *g = ud;
    if (step % g->every)
        return PB_OK;
    g->rounds++;
    for (int i = 0; i < pb_model_nprunable(m); i++) {
        pb_param *p = pb_model_prunable(m, i);
        /* drop a fifth of the kept weights: those below the 20th percentile of |w| */
        float *a = malloc(p->n * sizeof(float));
        size_t k = 0;
        for (size_t j = 0; j < p->n; j++)
            if (p->mask[j] != 0)
                a[k++] = fabsf(p->w[j]);
        if (k > 4) {
            const float t = pb_select_kth(a, k, k / 5);
            for (size_t j = 0; j < p->n; j++)
                if (fabsf(p->w[j]) < t)
                    p->mask[j] = 0.0f;
        }
        free(a);
    }
    pb_model_apply_masks(m);
    return PB_OK;
}

static int train_run(pb_sparse_mode mode, int threads, float **weights, double *acc)
{
    pb_sparse_set_mode(mode);
    pb_par_set_threads(threads);
    pb_model m;
    build_mlp(&m, 32);
    masks_random(&m, 0.3, 7);
    char err[PB_ERRLEN] = "";
    pb_dataset tr, te;
    pb_data_synthetic(&tr, 512, 1, 8, 8, 5, 11, err, sizeof err);
    pb_data_synthetic(&te, 256, 1, 8, 8, 5, 12, err, sizeof err);
    pb_train_cfg cfg;
    pb_train_defaults(&cfg);
    cfg.epochs = 3;
    cfg.batch = 32;
    cfg.log_epochs = 0;
    gradual g = {.every = 10};
    pb_train_hooks hooks = {.ud = &g, .after_step = prune_step};
    pb_train_result res;
    int rc = pb_train(&m, &tr, &te, &cfg, &hooks, &res, err, sizeof err);
    if (rc != PB_OK)
        fprintf(stderr, "# %s\n", err);
    *acc = res.test_acc;
    size_t n = 0;
    for (int i = 0; i < m.nparams; i++)
        n += m.params[i]->n;
    *weights = malloc(n * sizeof(float));
    size_t k = 0;
    int formats_ok = 1;
    for (int i = 0; i < m.nparams; i++) {
        memcpy(*weights + k, m.params[i]->w, m.params[i]->n * sizeof(float));
        k += m.params[i]->n;
    }
    /* the test evaluation after the last step and pruning synced the
     * formats: they hold the final masked weights */
    int formats = 0;
    for (int i = 0; i < m.nlayers; i++) {
        pb_layer *l = &m.layers[i];
        if (l->kind != PB_DENSE || !l->sp)
            continue;
        float *back = falloc(l->w->n);
        pb_sparse_to_dense(l->sp, back);
        formats_ok &= same_values(back, l->w->w, l->w->n);
        size_t nnz = 0;
        for (size_t j = 0; j < l->w->n; j++)
            nnz += l->w->mask[j] != 0;
        formats_ok &= nnz == l->sp->nnz;
        formats++;
        pb_free(back);
    }
    formats_ok &= mode == PB_KERNELS_DENSE ? formats == 0 : formats == 3;
    pb_data_free(&tr);
    pb_data_free(&te);
    pb_model_free(&m);
    pb_par_set_threads(1);
    if (rc != PB_OK || !formats_ok || g.rounds == 0)
        fprintf(stderr, "# train_run %s: rc %d formats %d (%d) rounds %d\n", pb_sparse_mode_names[mode], rc,
                formats_ok, formats, g.rounds);
    return rc == PB_OK && formats_ok && g.rounds > 0 ? (int)n : -1;
}

static void test_training(void)
{
    float *wd, *ws, *ws2, *wt;
    double ad, as, as2, at;
    const int n = train_run(PB_KERNELS_DENSE, 1, &wd, &ad);
    const int n1 = train_run(PB_KERNELS_CSR, 1, &ws, &as);
    const int n2 = train_run(PB_KERNELS_CSR, 1, &ws2, &as2);
    const int n3 = train_run(PB_KERNELS_CSR, 2, &wt, &at);
    ok(n > 0 && n1 == n && n2 == n && n3 == n,
       "gradual pruning trains with csr kernels; formats rebuilt to the final masks and weights");
    double worst = 0, big = 0;
    for (int j = 0; n > 0 && j < n; j++) {
        worst = fmax(worst, fabs((double)wd[j] - ws[j]));
        big = fmax(big, fabs((double)wd[j]));
    }
    ok(n > 0 && worst <= 1e-3 * big, "sparse and dense training end at the same weights (max diff %.2g of %.2g)",
       worst, big);
    ok(fabs(ad - as) <= 0.02, "same test accuracy (dense %.4f, csr %.4f)", ad, as);
    ok(n > 0 && bit_equal(ws, ws2, (size_t)n), "sparse training is deterministic (two runs bit-identical)");
    ok(n > 0 && bit_equal(ws, wt, (size_t)n), "sparse training: 1 and 2 threads bit-identical");
    free(wd);
    free(ws);
    free(ws2);
    free(wt);
}

static void test_model_sync(void)
{
    pb_model m;
    const int B = 9;
    build_mlp(&m, B);
    masks_random(&m, 0.1, 5);
    float *x = falloc((size_t)B * 64), *y = falloc((size_t)B * 5);
    fill(x, (size_t)B * 64);
    pb_sparse_set_mode(PB_KERNELS_AUTO);
    pb_model_forward(&m, x, B, 0);
    ok(pb_sparse_layer_format(&m.layers[0], B) == PB_WFMT_CSR &&
           pb_sparse_layer_format(&m.layers[0], 1) == PB_WFMT_CSR,
       "auto: a 10%% dense layer runs csr at batch 1 and %d", B);
    /* an optimizer step: the values follow */
    char err[PB_ERRLEN];
    pb_optim_cfg oc;
    pb_optim_defaults(&oc);
    pb_optim o;
    pb_optim_init(&o, &m, &oc, err, sizeof err);
    for (int i = 0; i < m.nparams; i++)
        fill(m.params[i]->g, m.params[i]->n);
    pb_optim_step(&o, &m, 0.1);
    pb_model_forward(&m, x, B, 0);
    memcpy(y, m.layers[m.nlayers - 1].out, (size_t)B * 5 * sizeof(float));
    pb_sparse_set_mode(PB_KERNELS_DENSE);
    pb_model_forward(&m, x, B, 0);
    ok(m.layers[0].sp == NULL, "dense mode drops the formats");
    double worst = 0;
    ok(close_to(y, m.layers[m.nlayers - 1].out, (size_t)B * 5, 50.0, &worst),
       "after an optimizer step the sparse forward follows the new weights (max diff %.2g)", worst);
    /* a mask change, announced: rebuilt */
    pb_sparse_set_mode(PB_KERNELS_CSR);
    pb_model_forward(&m, x, B, 0);
    const size_t before = m.layers[0].sp->nnz;
    masks_random(&m, 0.05, 6);
    pb_model_forward(&m, x, B, 0);
    size_t nnz = 0;
    for (size_t j = 0; j < m.layers[0].w->n; j++)
        nnz += m.layers[0].w->mask[j] != 0;
    ok(m.layers[0].sp->nnz == nnz && nnz != before, "a mask change rebuilds the format (%zu -> %zu kept)", before,
       nnz);
    /* full density in auto mode: dense */
    pb_sparse_set_mode(PB_KERNELS_AUTO);
    masks_random(&m, 1.0, 6);
    pb_model_forward(&m, x, B, 0);
    ok(m.layers[0].sp == NULL, "auto: an unpruned layer runs dense");
    /* grad_on computes the gradients of pruned weights too */
    pb_sparse_set_mode(PB_KERNELS_CSR);
    pb_model_init_weights(&m, 4);
    masks_random(&m, 0.2, 8);
    pb_dataset d;
    pb_data_synthetic(&d, 16, 1, 8, 8, 5, 3, err, sizeof err);
    int idx[16];
    for (int i = 0; i < 16; i++)
        idx[i] = i;
    pb_model_grad_on(&m, &d, idx, 16, 1.0f, NULL, err, sizeof err);
    size_t pruned_grads = 0;
    for (size_t j = 0; j < m.layers[0].w->n; j++)
        pruned_grads += m.layers[0].w->mask[j] == 0 && m.layers[0].w->g[j] != 0;
    ok(pruned_grads > 0 && !m.dense_grads, "pb_model_grad_on gives the pruned weights' gradients (%zu)", pruned_grads);
    pb_data_free(&d);

    /* checkpoint round trip: the loaded model rebuilds the same format */
    pb_model_forward(&m, x, B, 0);
    memcpy(y, m.layers[m.nlayers - 1].out, (size_t)B * 5 * sizeof(float));
    char path[] = "/tmp/t_sparse_XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    pb_model m2;
    int rc = pb_ckpt_save(&m, path, err, sizeof err);
    if (rc == PB_OK)
        rc = pb_ckpt_load(&m2, path, B, err, sizeof err);
    unlink(path);
    if (rc == PB_OK) {
        pb_model_forward(&m2, x, B, 0);
        float *a = falloc(m.layers[0].w->n), *b = falloc(m.layers[0].w->n);
        pb_sparse_to_dense(m.layers[0].sp, a);
        pb_sparse_to_dense(m2.layers[0].sp, b);
        ok(m2.layers[0].sp && m2.layers[0].sp->nnz == m.layers[0].sp->nnz && bit_equal(a, b, m.layers[0].w->n),
           "checkpoint round trip: the same csr format");
        ok(bit_equal(y, m2.layers[m2.nlayers - 1].out, (size_t)B * 5), "checkpoint round trip: forward bit-identical");
        pb_free(a);
        pb_free(b);
        pb_model_free(&m2);
    } else {
        ok(0, "checkpoint round trip: %s", err);
        ok(0, "checkpoint round trip: forward");
    }
    pb_sparse_set_mode(PB_KERNELS_AUTO);
    pb_free(x);
    pb_free(y);
    pb_model_free(&m);
}

int main(void)
{
    pb_rng_seed(&rng, 2024);
    test_kernels();
    test_detect_and_build();
    test_csr_nm_bits();
    test_threads();
    test_sell();
    test_nm_sell();
    test_model_sync();
    test_training();
    tap_plan(tap_n);
    return tap_done();
}
