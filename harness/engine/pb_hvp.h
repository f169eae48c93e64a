/* pb_hvp: exact Hessian-vector products of the training loss, by
 * forward-over-reverse differentiation (Pearlmutter 1994, "Fast exact
 * multiplication by the Hessian"): the R-operator R{f} = d/dr f(w + r v) at
 * r = 0 is carried through the forward pass and through the backward pass of
 * every layer kind, so R{dL/dw} = H v with no step size and no truncation
 * error. Piecewise-linear layers (ReLU, max pooling) contribute their
 * derivative on the side of the kink the forward pass is on, as backprop does.
 *
 * It is a reference path, separate from the fast kernels: plain loops in
 * double precision, so it also serves to check them. */
#ifndef PB_HVP_H
#define PB_HVP_H

#include <stddef.h>

#include "pb_data.h"
#include "pb_model.h"

/* The loss is the one pb_model_grad_on differentiates: train-mode forward (BN
 * batch statistics, dropout masks drawn from the model's stream) in batches of
 * m->max_batch over examples idx[0..n-1] of d, softmax cross-entropy of the
 * logits divided by temperature, mean over the n examples.
 *
 * v[i] is the direction for m->params[i] (NULL or v NULL: zero); hv[i]
 * (m->params[i]->n doubles) receives (H v) restricted to m->params[i] (NULL: not wanted); g, if
 * non-NULL, receives the gradient as this path computes it (g[i] NULL: not
 * wanted); loss, if non-NULL, the mean loss. Parameter values, gradients and
 * BN running statistics are left as they were (generated weights are
 * generated first, as by a forward). */
int pb_model_hvp_on(pb_model *m, const pb_dataset *d, const int *idx, int n, float temperature,
                    const float *const *v, double *const *hv, double *const *g, double *loss, char *err,
                    size_t errlen);

#endif
