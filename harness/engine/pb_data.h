/* pb_data: data sets kept as bytes in memory, normalized per batch.
 *
 * Names: "fashion-mnist" (default dir /usr/share/datasets/fashion-mnist),
 * "mnist" (IDX files in a user's dir), "cifar10" (binary batches
 * data_batch_1.bin .. data_batch_5.bin, test_batch.bin), "synthetic" (seeded,
 * generated, for tests), "fortunes" and "fortunes:topic,...,ctx=N" (byte-level
 * text, pb_text.h). IDX files may be gzipped (.gz) or plain. */
#ifndef PB_DATA_H
#define PB_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "pb_check.h"
#include "pb_util.h"

typedef struct pb_dataset {
    char name[32];
    int n;               /* examples */
    int c, h, w;         /* per-example shape */
    int ncls;
    uint8_t *x;          /* n * c*h*w bytes, NCHW per example */
    uint8_t *y;          /* n labels */
    float mean[3], std[3];  /* per-channel normalization, on the [0,1] scale */
    int augment;         /* 1: random crop (pad 4) and horizontal flip in pb_data_batch (CIFAR) */
    /* Labels per example: 0 (one class label, y holds n bytes) or, for a
     * language-model set (pb_text.h), the tokens per example: y holds n * ny
     * next-token targets and x token ids, which pb_data_batch copies as
     * floats instead of normalizing them. */
    int ny;
} pb_dataset;

/* Labels per example: 1, or ny of a language-model set. */
static inline int pb_data_ny(const pb_dataset *d) { return d->ny > 0 ? d->ny : 1; }

enum { PB_SPLIT_TRAIN = 0, PB_SPLIT_TEST = 1, PB_SPLIT_VAL = 2 /* text sets only */ };

extern const char *const pb_dataset_names[]; /* NULL-terminated */
/* The options each data set takes (subset and val; a text set's topics and
 * ctx): the keys an experiment script may give. */
extern const pb_keyset pb_dataset_keys[];

/* Directory used when dir is NULL: $PRUNEBENCH_DATA, else the data set's default. */
const char *pb_data_default_dir(const char *name);

/* Loads one split. dir NULL = default. Errors name the file and what was expected
 * (bad magic, dimensions, truncated, image/label count mismatch). For "synthetic"
 * dir is ignored, and n, seed come from pb_data_synthetic. */
int pb_data_load(const char *name, const char *dir, int split, pb_dataset *out,
                 char *err, size_t errlen);

/* A seeded synthetic classification set: ncls classes, c x h x w images whose
 * pixels are class prototypes plus noise; learnable but not trivial. */
int pb_data_synthetic(pb_dataset *out, int n, int c, int h, int w, int ncls, uint64_t seed,
                      char *err, size_t errlen);

/* As pb_data_synthetic, with the class prototypes (the task) seeded apart from
 * the samples: two sets with one task_seed and different seeds are a train and
 * a test set of the same problem. pb_data_synthetic(seed) = task_seed = seed. */
int pb_data_synthetic_task(pb_dataset *out, int n, int c, int h, int w, int ncls,
                           uint64_t task_seed, uint64_t seed, char *err, size_t errlen);

/* Reads one IDX file (gzipped or plain) into *data (malloc'd) with its dims.
 * Exposed for tests. */
int pb_idx_read(const char *path, int expect_ndim, uint8_t **data, int dims[3],
                char *err, size_t errlen);

/* Moves the last nval examples of *train (after a seeded shuffle) into *val. */
int pb_data_split(pb_dataset *train, pb_dataset *val, int nval, uint64_t seed,
                  char *err, size_t errlen);

/* A sub-set of src by index list (copies bytes). */
int pb_data_subset(const pb_dataset *src, const int *idx, int n, pb_dataset *out,
                   char *err, size_t errlen);

/* A derived task: every label y becomes perm[y], perm a permutation of the
 * classes drawn from seed (the same seed gives the same task on every split). */
void pb_data_permute_labels(pb_dataset *d, uint64_t seed);

/* A class subset, in place: keeps the examples whose label k has bit k of
 * `classes` set (classes 0..63); the label space (ncls) is unchanged. Fails
 * if no example is left. */
int pb_data_keep_classes(pb_dataset *d, uint64_t classes, char *err, size_t errlen);

/* A label map, in place: every label y becomes map[y]; map has one entry per
 * class, each in [0, ncls) (several classes may merge into one). */
int pb_data_map_labels(pb_dataset *d, const int *map, int nmap, char *err, size_t errlen);

/* The train and test splits of a data set, the first `subset` training
 * examples only (0: all), `nval` of them (seeded) held out as val (may be
 * NULL when nval is 0); a text set's val is instead the first nval examples
 * of its own validation documents. On failure nothing is left to free. */
int pb_data_open(const char *name, const char *dir, int subset, int nval, uint64_t seed, pb_dataset *train,
                 pb_dataset *val, pb_dataset *test, char *err, size_t errlen);

/* Fills x (B * c*h*w floats, normalized) and y (B ints) with examples idx[0..B-1].
 * With d->augment and rng non-NULL applies random crop + flip. */
void pb_data_batch(const pb_dataset *d, const int *idx, int B, pb_rng *rng,
                   float *x, int *y);

void pb_data_free(pb_dataset *d);

#endif
