/* pb_sparse: compressed weight formats for the dense layers of a pruned
 * model, their kernels, and the choice between them and the dense kernels.
 *
 * A dense layer whose weight has a mask can run on its mask's kept weights
 * alone, in one of two formats built from the mask:
 *   csr  compressed sparse rows: row offsets, 16-bit column indices, values;
 *        for any mask;
 *   nm   packed N:M: in every group of m consecutive inputs of a row, n
 *        values and their 8-bit offsets in the group (a group keeping fewer
 *        than n holds padding slots of value 0); for the masks of N:M
 *        pruning, detected from the mask.
 * Forward, the input gradient and the weight gradient all run through the
 * format, and the weight gradient is computed only where the mask is 1
 * (elsewhere the gradient stays as zero_grad left it). Biases are dense.
 *
 * Batches run on transposed copies (inputs as rows of the batch, padded to
 * 16 examples) so that every kept weight is one vector multiply-add over the
 * batch; batches of fewer than PB_SPARSE_GATHER_B examples in evaluation
 * run on a sliced-ELL layout of the same weights instead (below).
 *
 * Which kernel a layer takes: pb_sparse_mode. In auto mode a layer runs
 * sparse when its mask's density is below the threshold measured for its
 * batch size (pb_sparse_threshold), dense otherwise; the other modes force
 * one kernel for every masked dense layer (benchmarks, tests). The mode
 * starts as the environment variable PB_KERNELS says (auto when unset).
 *
 * The formats are the model's, rebuilt lazily by pb_sparse_sync at the next
 * forward after the model is told its weights or masks changed
 * (pb_model_arrays_changed, which every writer outside the optimizer must
 * call, as for generated weights); after an optimizer step only the values
 * are gathered again. Results are deterministic: each output element and
 * each weight gradient is summed by one thread in a fixed order. */
#ifndef PB_SPARSE_H
#define PB_SPARSE_H

#include <stddef.h>
#include <stdint.h>

#include "pb_layer.h"

typedef struct pb_model pb_model;

typedef enum pb_wfmt {
    PB_WFMT_DENSE = 0,
    PB_WFMT_CSR,
    PB_WFMT_NM,
    PB_WFMT_COUNT
} pb_wfmt;

extern const char *const pb_wfmt_names[]; /* "dense", "csr", "nm", NULL */

typedef enum pb_sparse_mode {
    PB_KERNELS_AUTO = 0, /* by measured density thresholds */
    PB_KERNELS_DENSE,    /* always the dense kernels */
    PB_KERNELS_SPARSE,   /* nm where the mask is N:M, csr elsewhere */
    PB_KERNELS_CSR,      /* csr for every masked dense layer */
    PB_KERNELS_COUNT
} pb_sparse_mode;

extern const char *const pb_sparse_mode_names[]; /* "auto", "dense", "sparse", "csr", NULL */

/* Batches below this many examples take the one-example kernels (sliced ELL,
 * else gathered) in evaluation, once per example. */
#define PB_SPARSE_GATHER_B 4

typedef struct pb_sparse {
    pb_wfmt fmt;
    int rows, cols;      /* the layer's outputs and inputs */
    size_t nnz;          /* kept weights (mask nonzero) */
    size_t slots;        /* stored values: nnz (csr), rows * groups * n (nm) */
    int nm_n, nm_m;      /* nm: n kept of every m */
    int groups;          /* nm: groups per row, ceil(cols / m) */
    int32_t *rowptr;     /* csr: [rows + 1] */
    uint16_t *col;       /* csr: [nnz] */
    uint8_t *off;        /* nm: [slots] offset in the group; bit 7 marks padding */
    float *val;          /* [slots] */
    uint32_t *pos;       /* [slots] the weight's index in the dense array; UINT32_MAX: padding */
    int g_dirty;         /* the dense gradient may be nonzero where pruned (a dense backward ran) */
    int opt_clean;       /* the optimizer moments are zero where pruned (a dense step ran) */
    int forced;          /* the mode forces this format: used at every batch size */
    int full_grad;       /* the model wants dense weight gradients (pb_model.h's dense_grads) */
    /* workspace for batches up to max_batch, padded to bp floats a row */
    int max_batch;
    float *xt;           /* [cols * bp] the input, transposed */
    float *yt;           /* [rows * bp] the output or its gradient, transposed */
    float *dxt;          /* [cols * bp] the input gradient, transposed */
    const float *xt_of;  /* the input xt holds, and its batch */
    int xt_b;
    /* the batch-1 layout (derived from csr, or from nm's slots that are
     * not padding, when it has at most 65535 inputs; rebuilt and refreshed
     * with the format): sliced ELL of 16-row slices, each lane one row, over 32-column
     * chunks; in a slice a chunk its rows touch takes as many steps of 16
     * slots as the row keeping most in it (padding: value 0, index 0), and
     * each slot's 1-byte index picks its input within the chunk, so the
     * AVX-512 kernel permutes the input from two registers instead of
     * gathering it from memory */
    int sell_slices;     /* ceil(rows / 16) */
    size_t sell_steps;   /* steps of 16 slots over all slices */
    int32_t *sell_rptr;  /* [sell_slices + 1] into sell_run */
    uint32_t *sell_run;  /* chunk << 8 | steps, the slice's chunks in order */
    float *sell_val;     /* [sell_steps * 16] */
    uint8_t *sell_idx;   /* [sell_steps * 16] column - 32 * chunk */
    int32_t *sell_src;   /* [sell_steps * 16] the slot's index in val; -1: padding */
} pb_sparse;

/* The process's mode; pb_sparse_set_mode also marks no model: set it before
 * a model's first forward, or announce a change (pb_model_arrays_changed). */
pb_sparse_mode pb_sparse_get_mode(void);
void pb_sparse_set_mode(pb_sparse_mode mode);
/* Parses a mode name into *mode; PB_EUSAGE naming the valid ones otherwise. */
int pb_sparse_parse_mode(const char *name, pb_sparse_mode *mode, char *err, size_t errlen);

/* The density (kept / all weights) below which auto mode runs a layer of
 * format fmt sparse at batch size B. */
double pb_sparse_threshold(pb_wfmt fmt, int B);

/* Whether a mask of rows x cols is N:M along its rows for some m in 4, 8,
 * 16, 32 (the smallest such m, with n the most any group keeps, as long as
 * n <= m/2 and padding adds at most 1/16 to the kept weights); fills *n, *m. */
int pb_sparse_detect_nm(const float *mask, int rows, int cols, int *n, int *m);

/* Builds s (freed first) from w's mask in format fmt (CSR or NM; for NM, n
 * and m as detected), with workspace for batches up to max_batch. Values are
 * gathered from w. PB_EUSAGE for a layer wider than 65535 inputs (csr) or a
 * mask that is not n:m (nm); PB_ENOMEM. */
int pb_sparse_build(pb_sparse *s, const pb_param *w, int rows, int cols, pb_wfmt fmt, int n, int m,
                    int max_batch, char *err, size_t errlen);
/* Gathers the values from w again (the mask unchanged). */
void pb_sparse_refresh(pb_sparse *s, const pb_param *w);
void pb_sparse_free(pb_sparse *s);
/* Writes the format's weights back as a dense rows x cols matrix (zeros
 * where pruned): what the format holds, for checks. */
void pb_sparse_to_dense(const pb_sparse *s, float *w);

/* Brings every dense layer's format up to date with its weights and masks
 * and with the mode (called by pb_model_forward). A format that cannot be
 * built leaves its layer on the dense kernels. */
void pb_sparse_sync(pb_model *m);
/* Frees a layer's format. */
void pb_sparse_drop(pb_layer *l);

/* For an optimizer step or zero_grad on parameter p of model m: when p is
 * the weight of a layer whose format is current, fills *pos and *n with the
 * dense indices of its kept weights (padding is UINT32_MAX) and returns 1;
 * else 0 (then every element must be visited). */
int pb_sparse_kept(const pb_model *m, const pb_param *p, const uint32_t **pos, size_t *n);
/* Zeroes p's gradient: only at the kept weights where the rest is known to
 * be zero, else whole. */
void pb_sparse_zero_grad(const pb_model *m, pb_param *p);

/* Whether layer l runs sparse for a batch of B examples. */
int pb_sparse_active(const pb_layer *l, int B);
/* The format layer l runs at batch size B (PB_WFMT_DENSE when dense). */
pb_wfmt pb_sparse_layer_format(const pb_layer *l, int B);

/* pb_kern_sparse.c: the layer's forward (into l->out) and backward (weight
 * and bias gradients added to; dx added to, or overwritten when write) on
 * l->sp. train selects the batched kernels also for small batches, whose
 * transposed input backward reuses. */
void pb_kern_sparse_forward(pb_layer *l, const float *x, int B, int train);
void pb_kern_sparse_backward(pb_layer *l, const float *x, float *dx, int B, int write);

#endif
