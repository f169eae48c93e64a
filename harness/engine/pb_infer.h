/* pb_infer: how fast a model runs inference on this machine, as the engine
 * executes it (the kernels pb_sparse chooses) and on the dense kernels. */
#ifndef PB_INFER_H
#define PB_INFER_H

#include "pb_data.h"
#include "pb_model.h"

typedef struct pb_infer_rec {
    double us_b1, us_b1_dense;       /* microseconds per forward of one example */
    double ips_b128, ips_b128_dense; /* examples per second in forwards of 128 */
} pb_infer_rec;

/* Times evaluation forwards of two copies of m on examples of d (the first
 * 128, repeated if d has fewer), one on the dense kernels (a copy of ref
 * instead when not NULL: the architecture before structured pruning made
 * m's layers narrower), one in m's kernel mode (m->kernels, by default the process's), alternating blocks of
 * forwards of the two, at least min_s seconds each: at batch 1 and 128, 5
 * rounds, the median of the single forwards of every round. */
int pb_infer_measure(const pb_model *m, const pb_model *ref, const pb_dataset *d, double min_s, pb_infer_rec *out,
                     char *err, size_t errlen);

#endif
