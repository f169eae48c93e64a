/* pb_plot_data: the time-to-accuracy charts of cells with a data axis.
 *
 * A series is one (model, data set, weight method, data method at a
 * fraction); its seeds are averaged round by round (rounds are equal across
 * seeds). Clocks: the training clock of a curve row is wall_s - eval_s, the
 * job's wall clock since the cell started (scoring runs, selection and
 * training included) less the time spent evaluating the test set; training
 * FLOPs are train_flops + probe_flops (scoring runs' training and
 * per-example statistics included). Charts, per model and data set:
 *   time_to_accuracy-MODEL-rR       test accuracy vs training clock, mean ± std bands, target line
 *   accuracy_vs_train_flops-MODEL-rR  the same against training FLOPs
 *   time_to_target-MODEL            seconds until the target, mean ± std over the seeds that
 *                                   reached it; "never" when none did, "k/n" when some did
 *   accuracy_at_time-MODEL          accuracy at a fixed time T (a seconds budget, else the
 *                                   median over series of their final times)
 * The full-data series ("full") is drawn in every fraction's chart. */
#ifndef PB_PLOT_DATA_H
#define PB_PLOT_DATA_H

#include <stddef.h>

/* Writes the charts under plots_dir for the families in want[0..nwant-1]
 * (all when nwant is 0); *drawn counts the charts gnuplot drew, *missing is
 * set when gnuplot is not installed. Returns 0, or -1 if a file cannot be
 * written. Directories without data cells give no chart. */
int pb_plot_data_charts(const char *dir, const char *plots_dir, char **want, int nwant, int *drawn, int *missing);

#endif
