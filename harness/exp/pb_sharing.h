/* pb_sharing: the results of a parameter-sharing model (weights generated
 * from shared arrays, METHODS.md "Randomized parameter sharing").
 *
 * Over the prunable weights such a model stores its arrays, not its weights:
 * pb_model_sparsity counts the arrays whole for them, so `prunable_nonzero`
 * and `achieved_sparsity` = 1 - stored / params over the prunable weights are
 * the axis a pruning cell of the same memory shares. A generated layer's row of
 * layers.csv counts the array values it reads, as the method reported them
 * with host->set_layer_cost (ABI 1.2) or else host->metric("reads.<weight
 * name>", count); a layer without either counts its weights. The metric memory_bytes = 4 * stored is added
 * (float32 values; the hash maps are recomputed from the seed). */
#ifndef PB_SHARING_H
#define PB_SHARING_H

#include "engine/pb_model.h"
#include "pb_job.h"

/* Rewrites res's layer counts for a model with generated weights (measure()
 * has filled them as for pruning) and adds memory_bytes; a model without any
 * is left alone. */
void pb_sharing_measure(const pb_model *m, pb_job_result *res);

#endif
