/* pt_common: see pt_common.h. */
#include "pt_common.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int pt_check_calib(const pb_host *h, pb_ctx *c, int n)
{
    int have = h->ntrain(c);
    if (n > have)
        return h->fail(c, "calibration size %d is larger than the training split (%d examples): give calib <= %d",
                       n, have, have);
    return PB_PLUGIN_OK;
}

void pt_free_rows(double **v, int nw)
{
    for (int i = 0; v && i < nw; i++)
        free(v[i]);
    free(v);
}

typedef struct norms_acc {
    int nw;
    const int *cols;
    double **sq;
    int bad;
} norms_acc;

static void on_norm_input(void *ud, int param, const float *x, int nrows, int cols)
{
    norms_acc *a = ud;
    if (param < 0 || param >= a->nw || cols != a->cols[param]) {
        a->bad = 1;
        return;
    }
    double *sq = a->sq[param];
    for (int r = 0; r < nrows; r++) {
        const float *row = x + (size_t)r * cols;
        for (int j = 0; j < cols; j++)
            sq[j] += (double)row[j] * row[j];
    }
}

int pt_input_norms(const pb_host *h, pb_ctx *c, int n, double ***out)
{
    int nw = h->nweights(c), rc;
    *out = NULL;
    int *cols = calloc((size_t)nw + 1, sizeof *cols);
    double **sq = calloc((size_t)nw + 1, sizeof *sq);
    if (!cols || !sq) {
        free(cols);
        free(sq);
        return h->fail(c, "out of memory");
    }
    rc = PB_PLUGIN_OK;
    for (int i = 0; i < nw && rc == PB_PLUGIN_OK; i++) {
        pb_weights wt = {.size = sizeof wt};
        if ((rc = h->weights(c, i, &wt)) != PB_PLUGIN_OK)
            break;
        cols[i] = wt.cols;
        if (!(sq[i] = calloc((size_t)wt.cols, sizeof(double))))
            rc = h->fail(c, "out of memory");
    }
    norms_acc a = {nw, cols, sq, 0};
    if (rc == PB_PLUGIN_OK && (rc = h->calibrate(c, n, on_norm_input, &a)) == PB_PLUGIN_OK && a.bad)
        rc = h->fail(c, "calibration gave a tensor an input whose width is not its weight's columns");
    if (rc == PB_PLUGIN_OK)
        for (int i = 0; i < nw; i++)
            for (int j = 0; j < cols[i]; j++)
                sq[i][j] = sqrt(sq[i][j]);
    free(cols);
    if (rc != PB_PLUGIN_OK) {
        pt_free_rows(sq, nw);
        return rc;
    }
    *out = sq;
    return PB_PLUGIN_OK;
}

typedef struct gram_acc {
    const pb_host *h;
    pb_ctx *c;
    int param, cols;
    double *H;
    float *tmp;
    long rows;
    int bad;
} gram_acc;

static void on_gram_input(void *ud, int param, const float *x, int nrows, int cols)
{
    gram_acc *a = ud;
    if (param != a->param)
        return;
    if (cols != a->cols) {
        a->bad = 1;
        return;
    }
    /* SGEMM on chunks of at most 256 rows, summed in double: the float error
     * stays that of a 256-term dot product however many rows there are */
    for (int r0 = 0; r0 < nrows; r0 += 256) {
        int nr = nrows - r0 < 256 ? nrows - r0 : 256;
        const float *xr = x + (size_t)r0 * cols;
        a->h->gemm(a->c, 1, 0, cols, cols, nr, 1.0f, xr, cols, xr, cols, 0.0f, a->tmp, cols);
        size_t nn = (size_t)cols * cols;
        for (size_t k = 0; k < nn; k++)
            a->H[k] += a->tmp[k];
    }
    a->rows += nrows;
}

int pt_gram_on(const pb_host *h, pb_ctx *c, const int *idx, int n, int param, int cols, double *H, long *nrows)
{
    gram_acc a = {h, c, param, cols, H, malloc((size_t)cols * cols * sizeof(float)), 0, 0};
    if (!a.tmp)
        return h->fail(c, "out of memory");
    int rc = h->calibrate_on(c, idx, n, &param, 1, on_gram_input, &a);
    free(a.tmp);
    if (rc != PB_PLUGIN_OK)
        return rc;
    if (a.bad)
        return h->fail(c, "calibration gave tensor %d an input whose width is not its %d columns", param, cols);
    *nrows += a.rows;
    return PB_PLUGIN_OK;
}

size_t pt_keep_top(const pb_host *h, const float *score, float *mask, int len, int keep, float *tmp)
{
    int ncand = 0;
    for (int j = 0; j < len; j++)
        if (mask[j] != 0.0f)
            tmp[ncand++] = score[j];
    if (keep >= ncand)
        return (size_t)ncand;
    if (keep <= 0) {
        for (int j = 0; j < len; j++)
            mask[j] = 0.0f;
        return 0;
    }
    /* the keep-th largest; above it kept, at it the lowest indices first */
    float t = h->select_kth(tmp, (size_t)ncand, (size_t)(ncand - keep));
    int above = 0;
    for (int j = 0; j < len; j++)
        above += mask[j] != 0.0f && score[j] > t;
    int ties = keep - above;
    for (int j = 0; j < len; j++) {
        if (mask[j] == 0.0f || score[j] > t)
            continue;
        if (score[j] == t && ties > 0)
            ties--;
        else
            mask[j] = 0.0f;
    }
    return (size_t)keep;
}

size_t pt_keep_rows(const pb_host *h, const float *score, float *mask, int rows, int cols, size_t K, float *tmp)
{
    size_t kept = 0, base = rows ? K / (size_t)rows : 0, extra = rows ? K % (size_t)rows : 0;
    for (int r = 0; r < rows; r++) {
        size_t off = (size_t)r * cols;
        int keep = (int)(base + ((size_t)r < extra));
        kept += pt_keep_top(h, score + off, mask + off, cols, keep, tmp);
    }
    return kept;
}

int pt_nm_keep(int n, int m, int len)
{
    return len == m ? n : (int)floor((double)n * len / m + 0.5);
}

size_t pt_nm_group(const float *w, float *mask, const double *norm, int len, int keep, int *idx)
{
    int ncand = 0;
    for (int j = 0; j < len; j++)
        if (mask[j] != 0.0f)
            idx[ncand++] = j;
    if (keep >= ncand)
        return (size_t)ncand;
    /* partial selection sort: the first `keep` of idx become the winners */
    for (int r = 0; r < keep; r++) {
        int best = r;
        double bs = fabs((double)w[idx[r]]) * (norm ? norm[idx[r]] : 1.0);
        for (int q = r + 1; q < ncand; q++) {
            double sc = fabs((double)w[idx[q]]) * (norm ? norm[idx[q]] : 1.0);
            if (sc > bs || (sc == bs && idx[q] < idx[best])) {
                bs = sc;
                best = q;
            }
        }
        int t = idx[r];
        idx[r] = idx[best];
        idx[best] = t;
    }
    for (int r = keep; r < ncand; r++)
        mask[idx[r]] = 0.0f;
    return (size_t)keep;
}

size_t pt_nm_tensor(const float *w, float *mask, const double *norm, int rows, int cols, int n, int m, int *idx)
{
    size_t kept = 0;
    for (int r = 0; r < rows; r++) {
        size_t off = (size_t)r * cols;
        for (int j = 0; j < cols; j += m) {
            int len = cols - j < m ? cols - j : m;
            kept += pt_nm_group(w + off + j, mask + off + j, norm ? norm + j : NULL, len, pt_nm_keep(n, m, len), idx);
        }
    }
    return kept;
}

int pt_cholesky(double *A, int n)
{
    /* lower factor in place, row by row (A = L L^T) */
    for (int i = 0; i < n; i++) {
        double *ai = A + (size_t)i * n;
        for (int j = 0; j <= i; j++) {
            const double *aj = A + (size_t)j * n;
            double s = ai[j];
            for (int k = 0; k < j; k++)
                s -= ai[k] * aj[k];
            if (j == i) {
                if (!(s > 0))
                    return -1;
                ai[i] = sqrt(s);
            } else {
                ai[j] = s / aj[j];
            }
        }
        for (int j = i + 1; j < n; j++)
            ai[j] = 0.0;
    }
    return 0;
}

void pt_cholesky_solve(const double *L, int n, double *b)
{
    for (int i = 0; i < n; i++) {
        double s = b[i];
        for (int k = 0; k < i; k++)
            s -= L[(size_t)i * n + k] * b[k];
        b[i] = s / L[(size_t)i * n + i];
    }
    for (int i = n - 1; i >= 0; i--) {
        double s = b[i];
        for (int k = i + 1; k < n; k++)
            s -= L[(size_t)k * n + i] * b[k];
        b[i] = s / L[(size_t)i * n + i];
    }
}
