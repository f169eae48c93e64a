/* pb_report: what a reviewer asks of a pruning experiment, from its
 * cells.csv files — the checklist of Blalock et al. 2020 ("What is the state
 * of neural network pruning?": model/data pairs, operating points, seeds, a
 * dense baseline, both compression and theoretical speedup), a table of
 * mean ± std and 95 % confidence intervals per method and sparsity, and paired
 * comparisons across seeds. The statistics are here too, for the tests. */
#ifndef PB_REPORT_H
#define PB_REPORT_H

#include <stddef.h>
#include <stdio.h>

typedef enum pb_report_format { PB_REPORT_MARKDOWN = 0, PB_REPORT_LATEX } pb_report_format;

typedef struct pb_report_opts {
    pb_report_format format;
    const char *metric;    /* a cells.csv column (default test_acc) */
    const char *against;   /* a label: paired comparisons of every other label with it (NULL: none) */
    double alpha;          /* two-sided level of the paired tests and intervals (default 0.05) */
} pb_report_opts;

/* Reads DIR/cells.csv (and DIR/plots.list) of each directory and prints the
 * checklist, the table and the comparisons to f. Errors name the file. */
int pb_report(const char *const *dirs, int ndirs, const pb_report_opts *o, FILE *f, char *err, size_t errlen);

/* Student's t distribution with df degrees of freedom: P(T <= t), and the
 * t with P(T <= t) = p (0 < p < 1). */
double pb_t_cdf(double t, double df);
double pb_t_quantile(double p, double df);

#endif
