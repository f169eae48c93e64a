/* pb_gpt: the decoder-only transformer language model "gpt".
 *
 * A spec is "gpt" or "gpt:" followed by comma-separated key=value options:
 *   layers (default 2), dim (128), heads (4), ctx (64, the position table),
 *   ff (4 * dim, the MLP's hidden width)
 * e.g. "gpt:layers=4,dim=96,heads=3,ctx=128". The network: token and position
 * embeddings; per block, pre-LayerNorm causal multi-head self-attention (one
 * qkv linear layer, the attention, an output projection) and a GELU MLP, each
 * added to the residual stream; a final LayerNorm; logits from the token
 * table (tied). Layers are named b<i>.qkv, b<i>.proj, b<i>.fc1, b<i>.fc2. */
#ifndef PB_GPT_H
#define PB_GPT_H

#include <stddef.h>

#include "pb_model.h"

typedef struct pb_gpt_cfg {
    int layers, dim, heads, ctx, ff;
} pb_gpt_cfg;

/* Whether a model name is a gpt spec. */
int pb_gpt_is(const char *name);
/* Parses a spec; errors name the bad key or value and the valid keys. */
int pb_gpt_parse(const char *spec, pb_gpt_cfg *cfg, char *err, size_t errlen);
/* Builds the model into m (pb_model_init'ed here) for token inputs ic x ih x iw
 * (1 x T x 1, T <= ctx) and a vocabulary of ncls. */
int pb_gpt_build(pb_model *m, const char *spec, int ic, int ih, int iw, int ncls, char *err, size_t errlen);

#endif
