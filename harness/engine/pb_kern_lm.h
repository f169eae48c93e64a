/* pb_kern_lm: kernels of the language-model layer kinds (pb_layer.h: EMBED,
 * LAYERNORM, LINEAR, ATTN, GELU, TIEDOUT), on token-major activations: an
 * example is T rows of c features. Like pb_kern.h, nothing here allocates,
 * forward writes l->out and backward adds to dx unless `write` asks it to
 * overwrite it. Attention splits its (example, head) pairs across pb_par's
 * threads, each writing its own slices; the rest runs on SGEMMs split as in
 * pb_kern_gemm or on the calling thread, so results depend on the thread
 * count only. */
#ifndef PB_KERN_LM_H
#define PB_KERN_LM_H

#include <stddef.h>

#include "pb_layer.h"

/* floats of workspace (ws) and of stat a kind needs for batches up to max_batch */
size_t pb_kern_lm_ws(const pb_layer *l, int max_batch);
size_t pb_kern_lm_stat(const pb_layer *l, int max_batch);

void pb_kern_embed_forward(pb_layer *l, const float *x, int B);
void pb_kern_embed_backward(pb_layer *l, const float *x, float *dx, int B, int write);
void pb_kern_layernorm_forward(pb_layer *l, const float *x, int B);
void pb_kern_layernorm_backward(pb_layer *l, float *dx, int B, int write);
/* LINEAR, and TIEDOUT (a linear layer without bias on the tied table) */
void pb_kern_linear_forward(pb_layer *l, const float *x, int B);
void pb_kern_linear_backward(pb_layer *l, const float *x, float *dx, int B, int write);
void pb_kern_attn_forward(pb_layer *l, const float *x, int B);
void pb_kern_attn_backward(pb_layer *l, const float *x, float *dx, int B, int write);
void pb_kern_gelu_forward(pb_layer *l, const float *x, int B);
void pb_kern_gelu_backward(pb_layer *l, const float *x, float *dx, int B, int write);

#endif
