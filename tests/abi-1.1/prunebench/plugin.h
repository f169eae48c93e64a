/* prunebench/plugin.h: the plugin ABI for pruning methods.
 *
 * A plugin is a shared object exporting one symbol,
 *
 *     const pb_plugin *prunebench_plugin(void);
 *
 * that returns a descriptor (static storage, never freed). The host calls the
 * descriptor's hooks and hands each hook a table of host functions (pb_host) and
 * an opaque context (pb_ctx): plugins never link back into the executable.
 *
 * Versioning. PB_ABI_MAJOR changes only when something already published
 * changes meaning or layout; the loader refuses any other major. Structs grow
 * only at their end; each starts with (or carries) its size, and neither side
 * reads past the size the other declared. A plugin built against minor N runs
 * on a host of minor >= N; it must check host->size before calling a function
 * added after the minor it was built against (PB_HOST_HAS(host, fn)).
 * Entries marked "since 1.1" are absent from a host of ABI 1.0; a plugin of
 * minor 0 (whose descriptor ends at attach) runs unchanged on a 1.1 host.
 *
 * Memory. The host owns the model, the views (pb_weights), gradients and masks;
 * a plugin may read and write w, g and mask in place during a hook but must not
 * keep the pointers across hooks (structured pruning and fine-tuning may
 * reallocate them). A plugin owns what it allocates in create() and frees it
 * in destroy(). Errors: a hook returns PB_PLUGIN_OK or calls host->fail(),
 * whose message names the plugin and becomes the cell's failure reason.
 *
 * Threads: hooks are called from one thread. */
#ifndef PRUNEBENCH_PLUGIN_H
#define PRUNEBENCH_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PB_ABI_MAJOR 1
#define PB_ABI_MINOR 1
#define PB_PLUGIN_ENTRY "prunebench_plugin"

#define PB_PLUGIN_OK 0
#define PB_PLUGIN_FAIL 6

typedef struct pb_ctx pb_ctx; /* opaque: the host's model, data and run */

/* ---- parameters a plugin accepts (--param name=value, or Lua keys) ---- */
typedef enum pb_ptype {
    PB_PT_REAL = 0,   /* double in [lo, hi] */
    PB_PT_INT,        /* integer in [lo, hi] */
    PB_PT_BOOL,       /* 0 or 1 (true/false/yes/no accepted) */
    PB_PT_CHOICE,     /* one of the '|'-separated words in choices; value = its index */
    PB_PT_STRING      /* since 1.1: free text (a file, a kept model's name); `choices` holds the
                       * default (NULL: empty); args[k] is 0, the text is host->arg_string(c, k) */
} pb_ptype;

typedef struct pb_param_spec {
    const char *name;
    pb_ptype type;
    double def, lo, hi;
    const char *choices;   /* PB_PT_CHOICE: "global|layer" */
    const char *help;
} pb_param_spec;          /* a table ends with an entry whose name is NULL */

/* When the host calls prune() in the default pipeline. */
typedef enum pb_when {
    PB_WHEN_TRAINED = 0,  /* on a trained dense model, then fine-tune (magnitude, Wanda) */
    PB_WHEN_INIT,         /* at initialization, then train the sparse model (SNIP, SynFlow) */
    PB_WHEN_TRAINING,     /* train from scratch with step/epoch hooks (gradual, ISS-P, RS2, sharing);
                           * prune(), if present, is called once at initialization with the
                           * target sparsity (it may prune then, or only record the target) */
    PB_WHEN_RUN           /* the plugin's run() drives training itself (lottery tickets) */
} pb_when;

typedef enum pb_kind {
    PB_KIND_UNSTRUCTURED = 0, /* masks individual weights */
    PB_KIND_SEMISTRUCTURED,   /* N:M patterns */
    PB_KIND_STRUCTURED,       /* removes channels / neurons */
    PB_KIND_POSTTRAIN,        /* uses calibration data, may update weights */
    PB_KIND_DATA,             /* prunes training data */
    PB_KIND_SHARING,          /* parameter sharing / hashing */
    PB_KIND_DELTA             /* prunes the difference to a base model */
} pb_kind;

/* A prunable weight tensor (dense or conv weight), viewed as a row-major
 * matrix of rows = shape[0] output units by cols = n / rows inputs. */
typedef struct pb_weights {
    size_t size;            /* sizeof as the host built it */
    const char *name;       /* "conv1.weight" */
    int layer_kind;         /* 0 dense, 1 conv */
    int ndim;
    int shape[4];           /* dense [out, in]; conv [out, in, kh, kw] */
    size_t n;
    int rows, cols;
    float *w;               /* values (read/write) */
    float *g;               /* gradient of the last host->grad() call */
    float *mask;            /* 1 kept / 0 pruned; always present (read/write; call apply_masks) */
    const float *w_init;    /* values at initialization (rewinding, DARE base); may be NULL */
} pb_weights;

/* Called by host->calibrate for each prunable weight with its layer's input
 * unfolded to a [nrows x cols] row-major matrix (dense: one row per example;
 * conv: one row per example and output position, im2col order = weight cols). */
typedef void (*pb_calib_fn)(void *ud, int param, const float *x, int nrows, int cols);

/* Parameter sharing: fill the weights' w from plugin-owned arrays before every
 * forward; after every backward route the weights' g into the arrays' grads. */
/* Per-example statistics (host->example_stats, since 1.1). Caller-allocated
 * arrays of n entries; any may be NULL. size = sizeof as the caller built it. */
typedef struct pb_example_stats {
    size_t size;
    float *loss;        /* cross-entropy */
    float *el2n;        /* ||softmax - onehot||_2 (Paul et al.) */
    float *grad_norm;   /* ||dloss/dtheta||_2 over every trainable parameter (GraNd), exact, one backward per example */
    int *correct;       /* 1 if the arg-max is the label */
} pb_example_stats;

/* Requirements a plugin declares (pb_plugin.needs, since 1.1). The loader
 * refuses a plugin that needs what this host does not know, or that lacks the
 * hook a requirement implies; a job refuses a pipeline that cannot give it. */
#define PB_NEEDS_CALIBRATION 0x1u  /* calibration data: host->calibrate / calibrate_on */
#define PB_NEEDS_REFERENCE   0x2u  /* a kept model (pb_plugin.reference names it): host->reference */
#define PB_NEEDS_SELECT      0x4u  /* data selection: the select hook */
#define PB_NEEDS_SHARING     0x8u  /* parameter sharing: the attach hook, add_array, set_generator */
#define PB_NEEDS_KNOWN       0xfu  /* every bit this host understands */

/* host->parallel_for's body: handles items [begin, end). */
typedef void (*pb_range_fn)(void *ud, long begin, long end);

typedef struct pb_generator {
    void *ud;
    void (*generate)(void *ud, int param, float *w, size_t n);
    void (*backprop)(void *ud, int param, const float *g, size_t n);
} pb_generator;

/* Host functions. Each returns PB_PLUGIN_OK or an error status with the
 * context's error already set (just return it). */
typedef struct pb_host {
    size_t size;
    int abi_major, abi_minor;

    /* -- messages -- */
    int (*fail)(pb_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
    void (*log)(pb_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

    /* -- the model -- */
    int (*nweights)(pb_ctx *c);
    /* Fills *out (out->size must be set by the caller) for prunable tensor i. */
    int (*weights)(pb_ctx *c, int i, pb_weights *out);
    void (*apply_masks)(pb_ctx *c);          /* w *= mask for every tensor */
    /* Keeps the top (1 - sparsity) fraction of scores (highest first; ties
     * broken by index), globally over all tensors (scope 0) or in each tensor
     * (scope 1); scores[i] has weights(i).n entries; writes masks and applies them.
     * Kept count: llround((1 - sparsity) * n) over the total (scope 0) or per tensor.
     * Already-pruned weights (mask 0) compete only if allow_regrow. */
    int (*mask_topk)(pb_ctx *c, float *const *scores, double sparsity, int scope, int allow_regrow);
    uint64_t (*random)(pb_ctx *c);          /* seeded by the run's seed */

    /* -- gradients and curvature -- */
    /* Gradient of the mean loss on n training examples (a seeded draw) into g,
     * logits divided by temperature (1 = plain). loss may be NULL. */
    int (*grad)(pb_ctx *c, int n, double temperature, double *loss);
    /* Hessian-vector product: out[i] = (H v)[i], H the Hessian of the loss on the
     * same examples as the last grad() call, with respect to the prunable
     * tensors; exact (forward-over-reverse differentiation; hosts before this
     * header said "central differences"); g is left as grad() wrote it. */
    int (*hvp)(pb_ctx *c, const float *const *v, float *const *out);
    /* SynFlow's objective: all-ones input, R = sum of outputs, dR/dw into g,
     * with BN in eval mode and biases / BN parameters replaced by their absolute
     * values for the call. The plugin sets |w| of the prunable tensors itself. */
    int (*grad_output_sum)(pb_ctx *c, double *R);

    /* -- calibration (post-training) -- */
    /* Forward passes on n calibration examples; fn sees each prunable
     * tensor's input (see pb_calib_fn). */
    int (*calibrate)(pb_ctx *c, int n, pb_calib_fn fn, void *ud);

    /* -- training, for PB_WHEN_RUN plugins -- */
    int (*train)(pb_ctx *c, int epochs);   /* the run's recipe (epochs < 0: its own epochs), masks kept */
    int (*evaluate)(pb_ctx *c, double *acc, double *loss);  /* test split */
    int (*snapshot)(pb_ctx *c, int slot);  /* save weights (slots 0..7) */
    int (*rewind)(pb_ctx *c, int slot);    /* restore weights (masks stay), reset optimizer */
    int (*reinit)(pb_ctx *c, uint64_t seed); /* fresh initialization (masks stay) */
    /* One row of the curves file for this run ("round" and its value). */
    int (*record)(pb_ctx *c, const char *event, int index, double acc, double loss);
    long (*steps)(pb_ctx *c);              /* optimizer steps taken so far */

    /* -- structure -- */
    /* Keeps output units keep[0..nkeep-1] (ascending) of tensor i and removes
     * the matching inputs of the layer(s) it feeds (through ReLU, BN, pooling,
     * flatten). Invalidates every pb_weights view. */
    int (*remove_units)(pb_ctx *c, int i, const int *keep, int nkeep);

    /* -- data -- */
    int (*ntrain)(pb_ctx *c);
    /* Per-example loss and EL2N (||softmax - onehot||) for training examples
     * idx[0..n-1], eval-mode forward. Either output may be NULL. */
    int (*example_scores)(pb_ctx *c, const int *idx, int n, float *loss, float *el2n);

    /* -- parameter sharing -- */
    /* A trainable array owned by the host and updated by its optimizer; *w and
     * *g stay valid for the whole run. */
    int (*add_array)(pb_ctx *c, const char *name, size_t n, float **w, float **g);
    int (*set_generator)(pb_ctx *c, int i, const pb_generator *gen);

    /* -- schedule -- */
    /* Optimizer steps the current training will take in all (for schedules
     * such as gradual pruning); 0 outside training. */
    long (*total_steps)(pb_ctx *c);

    /* -- scratch -- */
    /* One float array per prunable tensor (scores[i] has weights(i).n entries),
     * owned by the host, contents unspecified: the place to compute scores for
     * mask_topk without allocating. Valid until the hook returns or
     * remove_units() is called; every call returns the same arrays. */
    float *const *(*scores)(pb_ctx *c);

    /* mask_topk with |w| as the score: the magnitude criterion that many
     * methods share (layerwise magnitude, gradual pruning, ISS-P's freeze). */
    int (*mask_magnitude)(pb_ctx *c, double sparsity, int scope, int allow_regrow);

    /* ======== since 1.1 ======== */

    /* The text of PB_PT_STRING parameter k (its default if not given); NULL if
     * k is not a string parameter. Valid for the plugin's life. */
    const char *(*arg_string)(pb_ctx *c, int k);

    /* -- data, addressed by example index -- */
    /* Calibration on training examples idx[0..n-1] (forward passes of the model
     * as it is now, in eval mode); fn sees the inputs of the prunable tensors
     * params[0..nparams-1] only (params NULL: all). Layers not asked for are
     * not unfolded. */
    int (*calibrate_on)(pb_ctx *c, const int *idx, int n, const int *params, int nparams, pb_calib_fn fn,
                        void *ud);
    /* The run's calibration sample: the examples a `calibrate` stage fixed, or
     * else those of the last calibrate(n) (128 if none was made yet). A sample
     * is a function of the run's seed and n alone: calibrate() with the same n
     * always sees the same examples (with any n once a stage fixed them), so a
     * layer-by-layer method sees one sample in every layer. */
    int (*calibration_sample)(pb_ctx *c, const int **idx, int *n);
    /* Gradient of the mean loss on training examples idx[0..n-1] into g (as grad()). */
    int (*grad_examples)(pb_ctx *c, const int *idx, int n, double temperature, double *loss);
    /* Per-example loss, EL2N, gradient norm and correctness, eval mode. Asking
     * for grad_norm overwrites every parameter's g (one backward per example). */
    int (*example_stats)(pb_ctx *c, const int *idx, int n, pb_example_stats *out);

    /* -- kept models -- */
    /* A read-only view of prunable tensor i of the model kept under `name` by
     * a `keep` stage (e.g. "base"): w and mask point to its values (do not
     * write), g is NULL, w_init NULL. Fails if no such model was kept or its
     * shapes differ from the current model's. */
    int (*reference)(pb_ctx *c, const char *name, int i, pb_weights *out);

    /* -- training and results -- */
    /* host->train with a label for its curve rows ("score", "train"...): a
     * scoring run and the real training then write distinct rows. */
    int (*train_phase)(pb_ctx *c, const char *label, int epochs);
    /* One figure of the plugin's own into the results (metrics.csv:
     * experiment, cell, name, value); name is [A-Za-z0-9_.]+. */
    int (*metric)(pb_ctx *c, const char *name, double value);

    /* -- utilities plugins would otherwise copy -- */
    uint64_t (*hash64)(const void *data, size_t n, uint64_t seed);  /* FNV-1a 64 (seed 0: the standard basis) */
    float (*select_kth)(float *a, size_t n, size_t k);              /* k-th smallest (0-based), O(n), reorders a */
    /* C = alpha * op(A) op(B) + beta * C, row-major float; op = transpose if trans*. */
    void (*gemm)(pb_ctx *c, int transa, int transb, int m, int n, int k, float alpha, const float *a, int lda,
                 const float *b, int ldb, float beta, float *cm, int ldc);
    /* fn over [0, n) split into the host pool's parts: each part a contiguous
     * range, the split depending only on n and the thread count, so a body
     * that writes its own range is deterministic. fn must not call the host. */
    void (*parallel_for)(pb_ctx *c, long n, pb_range_fn fn, void *ud);
} pb_host;

#define PB_HOST_HAS(h, fn) ((h)->size >= offsetof(pb_host, fn) + sizeof((h)->fn) && (h)->fn)

/* The descriptor. Hooks a method does not need are NULL. */
typedef struct pb_plugin {
    int abi_major;          /* PB_ABI_MAJOR */
    int abi_minor;          /* PB_ABI_MINOR */
    size_t size;            /* sizeof(pb_plugin) */
    const char *name;       /* unique, [a-z0-9_]+ */
    const char *description;/* one line */
    pb_kind kind;
    pb_when when;
    const pb_param_spec *params;

    /* args[k] is the value of params[k] (defaults filled, validated by the host).
     * *state may be left NULL. */
    int (*create)(const pb_host *h, pb_ctx *c, const double *args, void **state);
    void (*destroy)(void *state);

    /* Prune the model now to the target sparsity (required unless when is
     * PB_WHEN_TRAINING or PB_WHEN_RUN). For PB_WHEN_TRAINING it is called once
     * before training, at initialization, and may only record the target. */
    int (*prune)(void *state, const pb_host *h, pb_ctx *c, double sparsity);
    /* PB_WHEN_RUN: the whole schedule, through host->train/rewind/record. */
    int (*run)(void *state, const pb_host *h, pb_ctx *c, double sparsity);
    /* Training events (any PB_WHEN_*; called during every host training).
     * step is 1-based after the step and counts across all training of the run. */
    int (*before_step)(void *state, const pb_host *h, pb_ctx *c, long step);
    int (*after_step)(void *state, const pb_host *h, pb_ctx *c, long step);
    int (*epoch_end)(void *state, const pb_host *h, pb_ctx *c, int epoch, double test_acc);
    /* Data pruning: choose this epoch's examples idx[0..*n-1] from [0, n_total). */
    int (*select)(void *state, const pb_host *h, pb_ctx *c, int epoch, int n_total, int *idx, int *n);
    /* Called once after create, before any training (parameter sharing sets generators). */
    int (*attach)(void *state, const pb_host *h, pb_ctx *c);

    /* ======== since 1.1 ======== */
    unsigned needs;         /* PB_NEEDS_* */
    const char *reference;  /* PB_NEEDS_REFERENCE: the kept model read by default ("base") */
} pb_plugin;

typedef const pb_plugin *(*pb_plugin_entry_fn)(void);

#ifdef __cplusplus
}
#endif
#endif
