/* pb_probe: the host's gradient, curvature, calibration and per-example
 * functions (see prunebench/plugin.h for each one's contract). */
#ifndef PB_PROBE_H
#define PB_PROBE_H

#include "pb_host.h"

int pb_probe_grad(pb_ctx *c, int n, double temperature, double *loss);
int pb_probe_grad_examples(pb_ctx *c, const int *idx, int n, double temperature, double *loss);
int pb_probe_hvp(pb_ctx *c, const float *const *v, float *const *out);
int pb_probe_grad_output_sum(pb_ctx *c, double *R);

/* Draws the run's calibration sample of n examples (n <= 0: 128) of the
 * calibration split, a function of the run's seed and n alone. */
int pb_probe_calib_draw(pb_ctx *c, int n);
int pb_probe_calibrate(pb_ctx *c, int n, pb_calib_fn fn, void *ud);
int pb_probe_calibrate_on(pb_ctx *c, const int *idx, int n, const int *params, int nparams, pb_calib_fn fn,
                          void *ud);
int pb_probe_calibration_sample(pb_ctx *c, const int **idx, int *n);

int pb_probe_example_scores(pb_ctx *c, const int *idx, int n, float *loss, float *el2n);
int pb_probe_example_stats(pb_ctx *c, const int *idx, int n, pb_example_stats *out);

#endif
