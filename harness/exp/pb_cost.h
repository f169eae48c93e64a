/* pb_cost: the cost model of an experiment — estimated training FLOPs per
 * cell, and the SGEMM rate that turns them into a time for --dry-run. */
#ifndef PB_COST_H
#define PB_COST_H

#include "pb_cell.h"

/* Training runs at about this fraction of one thread's SGEMM speed on the layer
 * shapes of LeNet-300-100 (bench_train.sh measured 0.3 to 1.0 of it, per
 * worker, on LeNet-5 and LeNet-300-100). */
#define PB_COST_SGEMM_FRACTION 0.4

/* Estimated training FLOPs of a cell, without the pre-training of its dense
 * model; *needs_dense (may be NULL) says whether it starts from one. */
double pb_cost_cell(const pb_cell *c, int *needs_dense);

/* The cost of every cell of x into cost[] (and needs_dense[]), each dense model
 * counted once, by the first cell that needs it; returns the sum. */
double pb_cost_experiment(const pb_experiment *x, double *cost, int *needs_dense);

/* Single-thread SGEMM GFLOP/s on a 128x784 by 784x300 product, timed ~0.1 s. */
double pb_cost_sgemm_gflops(void);

#endif
