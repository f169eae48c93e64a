/* pb_mask: the host's mask selection (host->mask_topk, mask_magnitude, scores). */
#ifndef PB_MASK_H
#define PB_MASK_H

#include "pb_host.h"

/* Keeps the top (1 - sparsity) of scores globally (scope 0) or per tensor (1);
 * ties by index; see plugin.h. Writes masks and applies them. */
int pb_mask_topk(pb_ctx *c, float *const *scores, double sparsity, int scope, int regrow);
int pb_mask_magnitude(pb_ctx *c, double sparsity, int scope, int regrow);
/* One scratch array per prunable tensor, allocated on first use. */
float *const *pb_mask_scores(pb_ctx *c);
void pb_mask_free_scratch(pb_ctx *c);

#endif
