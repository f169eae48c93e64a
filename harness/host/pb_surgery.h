/* pb_surgery: host->remove_units. */
#ifndef PB_SURGERY_H
#define PB_SURGERY_H

#include "pb_host.h"

/* Keeps output units keep[0..nkeep-1] (ascending) of prunable tensor i and the
 * matching inputs of its consumer; rebuilds c->m and forgets every copy of
 * the old shapes (snapshots, init values, scratch). A transformer's MLP
 * neurons are the units of its fc1 (the inputs of fc2 go with them); its
 * attention heads are units of its qkv layer: keeping heads S means keeping
 * the q, k and v units of S (the inputs of the output projection go with
 * them); any other choice of a qkv layer's units is refused. */
int pb_surgery_remove_units(pb_ctx *c, int i, const int *keep, int nkeep);

#endif
