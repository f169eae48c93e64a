/* pb_plot: charts of a results directory through gnuplot.
 *
 * Every chart is DIR/plots/NAME.png and NAME.svg, drawn by the gnuplot script
 * NAME.gp from the data NAME.dat beside it (aggregated from the CSV files), so
 * a chart can be restyled by editing the .gp and running `gnuplot NAME.gp` in
 * that directory. */
#ifndef PB_PLOT_H
#define PB_PLOT_H

#include <stddef.h>

/* Names of the chart families (NULL-terminated): accuracy_vs_compression,
 * accuracy_vs_params, accuracy_vs_flops, accuracy_vs_time, accuracy_vs_epochs,
 * layer_sparsity. */
extern const char *const pb_plot_names[];

/* Draws the charts listed in DIR/plots.list (all when absent) from
 * DIR/cells.csv, curves.csv and layers.csv. Without gnuplot, only the .gp and
 * .dat files are written (a warning is printed when verbose). */
int pb_plot_dir(const char *dir, int verbose, char *err, size_t errlen);

/* Every chart's key: below the plot, in as many columns as fit, so that long
 * series names (a model and data set per series) take height and never the
 * plot's width, and a long title stays centred over a full-width plot. */
#define PB_PLOT_KEY "set key outside bottom center horizontal maxcols 4 samplen 2 spacing 0.9"

#endif
