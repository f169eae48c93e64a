/* pt_common: what the post-training plugins (nm, wanda, sparsegpt, ecoflap,
 * icbs, armor) share: input statistics from calibration (Wanda's ||X_j||_2,
 * the Gram matrix X^T X of one layer), exact top-k selection within a row,
 * N:M group selection, and the calibration-size check. A static source
 * compiled into each of those plugins (no symbol is exported: only
 * prunebench_plugin is), so none of them depends on another at run time. */
#ifndef PT_COMMON_H
#define PT_COMMON_H

#include <prunebench/plugin_util.h>

/* Refuses a calibration sample of n examples when the training split holds
 * fewer (the sampler would otherwise silently give fewer). */
int pt_check_calib(const pb_host *h, pb_ctx *c, int n);

/* norm[i][j] = ||X_j||_2 of prunable tensor i's input column j over the run's
 * calibration sample of n examples (one forward pass of all layers). *out is
 * an array of nweights arrays, freed by pt_free_rows. */
int pt_input_norms(const pb_host *h, pb_ctx *c, int n, double ***out);
void pt_free_rows(double **v, int nw);

/* H += sum over the calibration rows of x x^T (cols x cols, double) for
 * tensor `param`, on examples idx[0..n-1] of the model as it is now; *nrows
 * += the rows seen (examples, times output positions for conv). */
int pt_gram_on(const pb_host *h, pb_ctx *c, const int *idx, int n, int param, int cols, double *H, long *nrows);

/* Keeps the `keep` highest scores among the unpruned entries of one row
 * (mask[j] != 0), ties to the lower index, and zeroes the rest of the mask.
 * tmp holds len floats. Returns the count kept (fewer if fewer were unpruned). */
size_t pt_keep_top(const pb_host *h, const float *score, float *mask, int len, int keep, float *tmp);

/* A layer of rows x cols keeping exactly K weights by score, each row
 * keeping floor(K/rows) and the first K % rows rows one more (Wanda compares
 * within a row). Returns the count kept. */
size_t pt_keep_rows(const pb_host *h, const float *score, float *mask, int rows, int cols, size_t K, float *tmp);

/* N:M: weights a group of len <= m keeps (the ragged last group of a row:
 * round(n*len/m), halves up). */
int pt_nm_keep(int n, int m, int len);
/* Keeps the `keep` highest of |w_j| * norm[j] (norm NULL: 1) among the
 * unpruned entries of one group; idx holds len ints. Returns the count kept. */
size_t pt_nm_group(const float *w, float *mask, const double *norm, int len, int keep, int *idx);
/* Applies an N:M pattern by pt_nm_group to every row of a rows x cols
 * tensor; returns the count kept. */
size_t pt_nm_tensor(const float *w, float *mask, const double *norm, int rows, int cols, int n, int m, int *idx);

/* Solves A x = b for a symmetric positive definite A (n x n, row-major,
 * overwritten by its Cholesky factor); b is overwritten by x. Returns 0, or
 * -1 when A is not positive definite. */
int pt_cholesky(double *A, int n);
void pt_cholesky_solve(const double *L, int n, double *b);

#endif
