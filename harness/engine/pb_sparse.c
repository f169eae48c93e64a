/* pb_sparse: the formats, the mode and the per-layer choice (kernels in
 * pb_kern_sparse.c). */
#include "pb_sparse.h"

#include <stdlib.h>
#include <string.h>

#include "pb_model.h"

const char *const pb_wfmt_names[] = {[PB_WFMT_DENSE] = "dense", [PB_WFMT_CSR] = "csr",
                                     [PB_WFMT_NM] = "nm", NULL};
const char *const pb_sparse_mode_names[] = {[PB_KERNELS_AUTO] = "auto", [PB_KERNELS_DENSE] = "dense",
                                            [PB_KERNELS_SPARSE] = "sparse", [PB_KERNELS_CSR] = "csr",
                                            NULL};

/* -1: not yet read from PB_KERNELS */
static int mode_now = -1;

int pb_sparse_parse_mode(const char *name, pb_sparse_mode *mode, char *err, size_t errlen)
{
    for (int i = 0; pb_sparse_mode_names[i]; i++)
        if (name && !strcmp(name, pb_sparse_mode_names[i])) {
            *mode = (pb_sparse_mode)i;
            return PB_OK;
        }
    return pb_err(err, errlen, PB_EUSAGE, "unknown kernels '%s' (valid: auto, dense, sparse, csr)",
                  name ? name : "");
}

pb_sparse_mode pb_sparse_get_mode(void)
{
    if (mode_now < 0) {
        pb_sparse_mode m = PB_KERNELS_AUTO;
        const char *env = getenv("PB_KERNELS");
        /* a bad value is refused where the program reads its options
         * (pb_cli); here it falls back to auto */
        if (env && *env && pb_sparse_parse_mode(env, &m, NULL, 0) != PB_OK)
            m = PB_KERNELS_AUTO;
        mode_now = (int)m;
    }
    return (pb_sparse_mode)mode_now;
}

void pb_sparse_set_mode(pb_sparse_mode mode) { mode_now = (int)mode; }

/* Densities below which the sparse kernels beat the dense ones, measured by
 * benchmarks/bench_sparse.sh (and bench_sparse --nm for N:M masks) on
 * LeNet-300-100's and LeNet-5's dense layers (one thread, AVX-512). Below
 * PB_SPARSE_GATHER_B examples both formats run the sliced-ELL kernel, once
 * per example. At batch 1 csr matched the dense kernel at about 50 %
 * density (fc1 1.0x, fc2 1.6x at 50 %; fc1 1.7x at 20 %), and nm, whose
 * layout is nearly free of padding, is ahead at every N:M density (fc1
 * 1.6x at 2:4), so nm takes any mask detected as N:M (at most half kept).
 * At batches of 2 and 3 the sparse cost grows with the batch while the
 * dense one hardly does: csr matched dense at about 30 % (fc1 0.99x at 30 %,
 * 1.4x at 20 %, batch 2) and nm at about 45 % (fc1 1.18x at 3:8, 0.87x at
 * 2:4, batch 2). In batches of 128 the batched kernels matched dense at
 * about 40 % (fc1 2.2x at 20 %, 0.86x at 50 %). Each is the crossing
 * rounded down. */
double pb_sparse_threshold(pb_wfmt fmt, int B)
{
    if (fmt == PB_WFMT_DENSE)
        return 0.0;
    if (B <= 1)
        return fmt == PB_WFMT_CSR ? 0.4 : 0.55;
    if (B < PB_SPARSE_GATHER_B)
        return fmt == PB_WFMT_CSR ? 0.25 : 0.4;
    return 0.35;
}

static double max_threshold(pb_wfmt fmt)
{
    const double a = pb_sparse_threshold(fmt, 1), b = pb_sparse_threshold(fmt, PB_SPARSE_GATHER_B);
    return a > b ? a : b;
}

/* ------------------------------------------------------------ formats */

int pb_sparse_detect_nm(const float *mask, int rows, int cols, int *n, int *m)
{
    size_t nnz = 0;
    for (size_t j = 0; j < (size_t)rows * cols; j++)
        nnz += mask[j] != 0.0f;
    if (nnz == 0)
        return 0;
    for (int mm = 4; mm <= 32; mm *= 2) {
        const int groups = (cols + mm - 1) / mm;
        int most = 0;
        for (int r = 0; r < rows && most <= mm / 2; r++)
            for (int g = 0; g < groups; g++) {
                int kept = 0;
                const int c1 = (g + 1) * mm < cols ? (g + 1) * mm : cols;
                for (int c = g * mm; c < c1; c++)
                    kept += mask[(size_t)r * cols + c] != 0.0f;
                if (kept > most)
                    most = kept;
            }
        const size_t slots = (size_t)rows * groups * most;
        if (most >= 1 && most <= mm / 2 && slots * 16 <= nnz * 17) {
            *n = most;
            *m = mm;
            return 1;
        }
    }
    return 0;
}

void pb_sparse_free(pb_sparse *s)
{
    free(s->rowptr);
    free(s->col);
    free(s->off);
    free(s->pos);
    free(s->sell_rptr);
    free(s->sell_run);
    free(s->sell_idx);
    free(s->sell_src);
    pb_free(s->sell_val);
    pb_free(s->val);
    pb_free(s->xt);
    pb_free(s->yt);
    pb_free(s->dxt);
    memset(s, 0, sizeof *s);
}

/* The sliced-ELL layout (pb_sparse.h) of the stored weights listed row by
 * row in column order: row r's are entries rp[r] .. rp[r+1]-1, entry k in
 * column cl[k], its value val[src[k]] (src NULL: val[k]). Two passes over
 * the slices, the first counting runs and steps; 0 or PB_ENOMEM */
static int build_sell(pb_sparse *s, const int32_t *rp, const uint16_t *cl, const int32_t *src)
{
    const int rows = s->rows, chunks = (s->cols + 31) / 32;
    s->sell_slices = (rows + 15) / 16;
    s->sell_rptr = malloc(((size_t)s->sell_slices + 1) * sizeof *s->sell_rptr);
    if (!s->sell_rptr)
        return PB_ENOMEM;
    size_t nruns = 0, steps = 0;
    int32_t cur[16];
    for (int pass = 0; pass < 2; pass++) {
        nruns = steps = 0;
        for (int sl = 0; sl < s->sell_slices; sl++) {
            const int r0 = sl * 16, nl = rows - r0 < 16 ? rows - r0 : 16;
            if (pass)
                s->sell_rptr[sl] = (int32_t)nruns;
            for (int l = 0; l < nl; l++)
                cur[l] = rp[r0 + l];
            for (int q = 0; q < chunks; q++) {
                int most = 0;
                for (int l = 0; l < nl; l++) {
                    int32_t k = cur[l];
                    while (k < rp[r0 + l + 1] && cl[k] < 32 * (q + 1))
                        k++;
                    if (k - cur[l] > most)
                        most = k - cur[l];
                }
                if (!most)
                    continue;
                if (pass) {
                    s->sell_run[nruns] = (uint32_t)q << 8 | (uint32_t)most;
                    for (int t = 0; t < most; t++) {
                        const size_t o = (steps + (size_t)t) * 16;
                        for (int l = 0; l < 16; l++) {
                            const int32_t k = cur[l];
                            if (l < nl && k < rp[r0 + l + 1] && cl[k] < 32 * (q + 1)) {
                                s->sell_idx[o + l] = (uint8_t)(cl[k] - 32 * q);
                                s->sell_src[o + l] = src ? src[k] : k;
                                cur[l]++;
                            } else {
                                s->sell_idx[o + l] = 0;
                                s->sell_src[o + l] = -1;
                            }
                        }
                    }
                } else {
                    for (int l = 0; l < nl; l++)
                        while (cur[l] < rp[r0 + l + 1] && cl[cur[l]] < 32 * (q + 1))
                            cur[l]++;
                }
                nruns++;
                steps += (size_t)most;
            }
        }
        if (!pass) {
            s->sell_steps = steps;
            s->sell_run = malloc((nruns ? nruns : 1) * sizeof *s->sell_run);
            s->sell_idx = malloc((steps ? steps : 1) * 16);
            s->sell_src = malloc((steps ? steps : 1) * 16 * sizeof *s->sell_src);
            s->sell_val = pb_alloc((steps ? steps : 1) * 16 * sizeof(float));
            if (!s->sell_run || !s->sell_idx || !s->sell_src || !s->sell_val)
                return PB_ENOMEM;
        }
    }
    s->sell_rptr[s->sell_slices] = (int32_t)nruns;
    return PB_OK;
}

/* nm's sliced-ELL layout, of its slots that are not padding */
static int build_nm_sell(pb_sparse *s)
{
    int32_t *rp = malloc(((size_t)s->rows + 1) * sizeof *rp);
    uint16_t *cl = malloc((s->slots ? s->slots : 1) * sizeof *cl);
    int32_t *src = malloc((s->slots ? s->slots : 1) * sizeof *src);
    int rc = PB_ENOMEM;
    if (rp && cl && src) {
        size_t k = 0, e = 0;
        for (int r = 0; r < s->rows; r++) {
            rp[r] = (int32_t)e;
            for (int g = 0; g < s->groups; g++)
                for (int t = 0; t < s->nm_n; t++, k++)
                    if (!(s->off[k] & 0x80)) {
                        cl[e] = (uint16_t)(g * s->nm_m + s->off[k]);
                        src[e++] = (int32_t)k;
                    }
        }
        rp[s->rows] = (int32_t)e;
        rc = build_sell(s, rp, cl, src);
    }
    free(rp);
    free(cl);
    free(src);
    return rc;
}

static size_t bp_of(int B) { return ((size_t)B + 15) / 16 * 16; }

int pb_sparse_build(pb_sparse *s, const pb_param *w, int rows, int cols, pb_wfmt fmt, int n, int m,
                    int max_batch, char *err, size_t errlen)
{
    pb_sparse_free(s);
    const float *mask = w->mask;
    if (!mask || w->n != (size_t)rows * cols)
        return pb_err(err, errlen, PB_EUSAGE, "%s: no mask of %d x %d to build a sparse format from",
                      w->name, rows, cols);
    s->fmt = fmt;
    s->rows = rows;
    s->cols = cols;
    for (size_t j = 0; j < w->n; j++)
        s->nnz += mask[j] != 0.0f;
    if (fmt == PB_WFMT_CSR) {
        if (cols > 65535 || (size_t)rows * cols >= UINT32_MAX)
            return pb_err(err, errlen, PB_EUSAGE, "%s: %d inputs, more than csr's 16-bit columns hold",
                          w->name, cols);
        s->slots = s->nnz;
        s->rowptr = malloc(((size_t)rows + 1) * sizeof *s->rowptr);
        s->col = malloc((s->nnz ? s->nnz : 1) * sizeof *s->col);
        if (!s->rowptr || !s->col)
            goto nomem;
        size_t k = 0;
        for (int r = 0; r < rows; r++) {
            s->rowptr[r] = (int32_t)k;
            for (int c = 0; c < cols; c++)
                if (mask[(size_t)r * cols + c] != 0.0f)
                    s->col[k++] = (uint16_t)c;
        }
        s->rowptr[rows] = (int32_t)k;
        if (build_sell(s, s->rowptr, s->col, NULL) != PB_OK)
            goto nomem;
    } else if (fmt == PB_WFMT_NM) {
        if (n < 1 || m < n || m > 64 || (size_t)rows * cols >= UINT32_MAX)
            return pb_err(err, errlen, PB_EUSAGE, "%s: bad n:m %d:%d", w->name, n, m);
        s->nm_n = n;
        s->nm_m = m;
        s->groups = (cols + m - 1) / m;
        s->slots = (size_t)rows * s->groups * n;
        s->off = malloc(s->slots ? s->slots : 1);
        if (!s->off)
            goto nomem;
        size_t k = 0;
        for (int r = 0; r < rows; r++)
            for (int g = 0; g < s->groups; g++) {
                int t = 0;
                const int c1 = (g + 1) * m < cols ? (g + 1) * m : cols;
                for (int c = g * m; c < c1; c++)
                    if (mask[(size_t)r * cols + c] != 0.0f) {
                        if (t == n) {
                            pb_sparse_free(s);
                            return pb_err(err, errlen, PB_EUSAGE,
                                          "%s: row %d keeps more than %d of the %d inputs from %d",
                                          w->name, r, n, m, g * m);
                        }
                        s->off[k + t++] = (uint8_t)(c - g * m);
                    }
                for (; t < n; t++)
                    s->off[k + t] = 0x80;
                k += (size_t)n;
            }
        if (cols <= 65535 && build_nm_sell(s) != PB_OK)
            goto nomem;
    } else {
        return pb_err(err, errlen, PB_EUSAGE, "%s: format %d is not a sparse one", w->name, (int)fmt);
    }
    s->val = pb_alloc((s->slots ? s->slots : 1) * sizeof(float));
    s->pos = malloc((s->slots ? s->slots : 1) * sizeof *s->pos);
    if (!s->pos)
        goto nomem;
    if (fmt == PB_WFMT_CSR) {
        for (int r = 0; r < rows; r++)
            for (int32_t k = s->rowptr[r]; k < s->rowptr[r + 1]; k++)
                s->pos[k] = (uint32_t)((size_t)r * cols + s->col[k]);
    } else {
        size_t k = 0;
        for (int r = 0; r < rows; r++)
            for (int g = 0; g < s->groups; g++)
                for (int t = 0; t < n; t++, k++)
                    s->pos[k] = s->off[k] & 0x80 ? UINT32_MAX
                                                 : (uint32_t)((size_t)r * cols + (size_t)g * m + s->off[k]);
    }
    s->g_dirty = 1;
    const size_t bp = bp_of(max_batch);
    s->xt = pb_alloc((size_t)cols * bp * sizeof(float));
    s->yt = pb_alloc((size_t)rows * bp * sizeof(float));
    s->dxt = pb_alloc((size_t)cols * bp * sizeof(float));
    if (!s->val || !s->xt || !s->yt || !s->dxt)
        goto nomem;
    s->max_batch = max_batch;
    pb_sparse_refresh(s, w);
    return PB_OK;
nomem:
    pb_sparse_free(s);
    return pb_err(err, errlen, PB_ENOMEM, "%s: out of memory for its sparse format", w->name);
}

void pb_sparse_refresh(pb_sparse *s, const pb_param *w)
{
    const float *wv = w->w;
    if (s->fmt == PB_WFMT_CSR) {
        for (int r = 0; r < s->rows; r++) {
            const float *row = wv + (size_t)r * s->cols;
            for (int32_t k = s->rowptr[r]; k < s->rowptr[r + 1]; k++)
                s->val[k] = row[s->col[k]];
        }
    } else if (s->fmt == PB_WFMT_NM) {
        size_t k = 0;
        for (int r = 0; r < s->rows; r++)
            for (int g = 0; g < s->groups; g++) {
                const float *grp = wv + (size_t)r * s->cols + (size_t)g * s->nm_m;
                for (int t = 0; t < s->nm_n; t++, k++)
                    s->val[k] = s->off[k] & 0x80 ? 0.0f : grp[s->off[k]];
            }
    }
    for (size_t j = 0; j < s->sell_steps * 16; j++)
        s->sell_val[j] = s->sell_src[j] < 0 ? 0.0f : s->val[s->sell_src[j]];
    s->xt_of = NULL; /* the next backward transposes its input again */
}

void pb_sparse_to_dense(const pb_sparse *s, float *w)
{
    memset(w, 0, (size_t)s->rows * s->cols * sizeof(float));
    if (s->fmt == PB_WFMT_CSR) {
        for (int r = 0; r < s->rows; r++)
            for (int32_t k = s->rowptr[r]; k < s->rowptr[r + 1]; k++)
                w[(size_t)r * s->cols + s->col[k]] = s->val[k];
    } else if (s->fmt == PB_WFMT_NM) {
        size_t k = 0;
        for (int r = 0; r < s->rows; r++)
            for (int g = 0; g < s->groups; g++)
                for (int t = 0; t < s->nm_n; t++, k++)
                    if (!(s->off[k] & 0x80))
                        w[(size_t)r * s->cols + (size_t)g * s->nm_m + s->off[k]] = s->val[k];
    }
}

/* ------------------------------------------------------- the model's layers */

void pb_sparse_drop(pb_layer *l)
{
    if (!l->sp)
        return;
    pb_sparse_free(l->sp);
    free(l->sp);
    l->sp = NULL;
}

static int generated(const pb_model *m, const pb_param *p)
{
    for (int i = 0; i < m->nparams; i++)
        if (m->params[i] == p)
            return m->gens[i].generate != NULL;
    return 0;
}

/* Chooses and builds layer l's format from its mask under mode. */
static void rebuild(pb_model *m, pb_layer *l, pb_sparse_mode mode)
{
    pb_param *w = l->w;
    const int rows = l->oc, cols = (int)pb_layer_isize(l);
    if (mode == PB_KERNELS_DENSE || !w || !w->mask || generated(m, w)) {
        pb_sparse_drop(l);
        return;
    }
    int n = 0, mm = 0;
    pb_wfmt fmt = PB_WFMT_CSR;
    if (mode != PB_KERNELS_CSR && pb_sparse_detect_nm(w->mask, rows, cols, &n, &mm))
        fmt = PB_WFMT_NM;
    if (mode == PB_KERNELS_AUTO) {
        size_t nnz = 0;
        for (size_t j = 0; j < w->n; j++)
            nnz += w->mask[j] != 0.0f;
        if ((double)nnz >= max_threshold(fmt) * (double)w->n) {
            pb_sparse_drop(l);
            return;
        }
    }
    if (!l->sp && !(l->sp = calloc(1, sizeof *l->sp)))
        return;
    if (pb_sparse_build(l->sp, w, rows, cols, fmt, n, mm, m->max_batch, NULL, 0) != PB_OK) {
        pb_sparse_drop(l); /* the dense kernels compute the same */
        return;
    }
    l->sp->forced = mode != PB_KERNELS_AUTO;
    l->sp->full_grad = m->dense_grads;
}

void pb_sparse_sync(pb_model *m)
{
    const pb_sparse_mode mode = m->kernels > 0 ? (pb_sparse_mode)(m->kernels - 1) : pb_sparse_get_mode();
    const int all = m->sp_stale || m->sp_mode != (int)mode + 1;
    for (int i = 0; i < m->nlayers; i++)
        if (m->layers[i].sp)
            m->layers[i].sp->full_grad = m->dense_grads;
    if (!all && !m->sp_vals_stale)
        return;
    for (int i = 0; i < m->nlayers; i++) {
        pb_layer *l = &m->layers[i];
        if (l->kind != PB_DENSE)
            continue;
        if (all || (l->sp && l->sp->max_batch < m->max_batch))
            rebuild(m, l, mode);
        else if (l->sp)
            pb_sparse_refresh(l->sp, l->w);
    }
    m->sp_mode = (int)mode + 1;
    m->sp_stale = m->sp_vals_stale = 0;
}

int pb_sparse_kept(const pb_model *m, const pb_param *p, const uint32_t **pos, size_t *n)
{
    if (m->sp_stale || p->layer < 0 || p->layer >= m->nlayers)
        return 0;
    const pb_layer *l = &m->layers[p->layer];
    if (l->kind != PB_DENSE || l->w != p || !l->sp)
        return 0;
    *pos = l->sp->pos;
    *n = l->sp->slots;
    return 1;
}

void pb_sparse_zero_grad(const pb_model *m, pb_param *p)
{
    const uint32_t *pos;
    size_t n;
    if (pb_sparse_kept(m, p, &pos, &n) && !m->layers[p->layer].sp->g_dirty) {
        float *g = p->g;
        for (size_t k = 0; k < n; k++)
            if (pos[k] != UINT32_MAX)
                g[pos[k]] = 0.0f;
        return;
    }
    memset(p->g, 0, p->n * sizeof(float));
    if (pb_sparse_kept(m, p, &pos, &n))
        m->layers[p->layer].sp->g_dirty = 0;
}

int pb_sparse_active(const pb_layer *l, int B)
{
    const pb_sparse *s = l->sp;
    if (!s || s->fmt == PB_WFMT_DENSE || B > s->max_batch)
        return 0;
    if (s->forced)
        return 1;
    /* nm wider than its layout's 16-bit columns gathers at small batches:
     * the threshold measured for that kernel (10 %) */
    const double t = s->fmt == PB_WFMT_NM && !s->sell_val && B < PB_SPARSE_GATHER_B ? 0.1
                                                                                    : pb_sparse_threshold(s->fmt, B);
    return (double)s->nnz < t * (double)s->rows * s->cols;
}

pb_wfmt pb_sparse_layer_format(const pb_layer *l, int B)
{
    return pb_sparse_active(l, B) ? l->sp->fmt : PB_WFMT_DENSE;
}
