/* pb_run: the experiment runner behind `prunebench run` — results layout,
 * worker processes, resuming, the dense-model cache, progress and metadata.
 *
 * Layout under OUT/<experiment>/:
 *   cells/<hash>.row      one finished cell: its cells.csv row (written last, atomically)
 *   cells/<hash>.curves   its curves.csv rows;  cells/<hash>.layers  its layers.csv rows
 *   cells/<hash>.log      the worker's log (stderr)
 *   dense/<key>.pb        trained dense models shared by the cells that start from one
 *   cells.csv curves.csv layers.csv   regenerated from cells/ in matrix order
 *   metadata.txt script.lua plots/    one block per run and the latest script, the script, the charts */
#ifndef PB_RUN_H
#define PB_RUN_H

#include "pb_lua.h"

typedef struct pb_run_opts {
    const char *script;
    const char *out_dir;        /* default "results" */
    const char *plugin_path;
    const char *data_dir;
    int jobs;                   /* worker processes (default 1) */
    int threads;                /* OpenBLAS threads per worker (0: cores / jobs) */
    int fresh, dry_run, retry_failed, no_plot, quiet;
} pb_run_opts;

typedef struct pb_run_summary {
    int total, skipped, ran, failed;
} pb_run_summary;

/* Runs (or resumes) one expanded experiment. script_text is recorded in the metadata. */
int pb_run_experiment(const pb_run_opts *o, const pb_experiment *x, const char *script_text,
                      pb_run_summary *sum, char *err, size_t errlen);

/* Estimated training FLOPs of a cell (pre-training counted by the caller once per dense key). */
double pb_run_cell_cost(const pb_cell *c, int *needs_dense);

int pb_cmd_run(int argc, char **argv);
int pb_cmd_plot(int argc, char **argv);

#endif
