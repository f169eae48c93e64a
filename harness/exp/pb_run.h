/* pb_run: the scheduler behind `prunebench run` — one worker process per cell,
 * at most -j at a time, resuming from the cells the store already holds, and
 * holding back a cell whose dense model another worker is training. What is
 * written where is pb_store's; what a cell costs is pb_cost's. */
#ifndef PB_RUN_H
#define PB_RUN_H

#include <stddef.h>

#include "pb_cell.h"

#define PB_RUN_MAX_JOBS 64

typedef struct pb_run_opts {
    const char *script;
    const char *out_dir;        /* default "results" */
    const char *plugin_path;
    const char *data_dir;
    int jobs;                   /* worker processes (default 1, at most PB_RUN_MAX_JOBS) */
    int threads;                /* OpenBLAS threads per worker (0: cores / jobs) */
    int fresh, dry_run, retry_failed, no_plot, quiet;
    int shard_index, shard_count; /* --shard I/N: only the cells of shard I (count 0: all); see pb_shard.h */
    int merge_only;            /* train nothing: regenerate the CSV files of all shards, draw the charts */
    double timeout;            /* --timeout: every cell's wall-clock limit in seconds (0: none), over the
                                * script's train.timeout; -1: the script's */
} pb_run_opts;

typedef struct pb_run_summary {
    int total, skipped, ran, failed;
    int missing;               /* --merge-only: cells no shard has recorded */
    int by_others, theirs;     /* sharded: cells of this shard another ran (as the first cell
                                * needing a cached model), and cells of others this one ran */
    int damaged;               /* cells whose files were damaged, run again */
    int stop_signal;           /* SIGINT or SIGTERM stopped the run (0: none) */
    int stopped;               /* cells running then, stopped and left for the next run */
} pb_run_summary;

/* Runs (or resumes) one expanded experiment. script_text is recorded in the
 * metadata. A cell past its time limit is killed and recorded as failed
 * ("timeout after N s"). On SIGINT or SIGTERM the running cells are stopped
 * and left unrecorded, the merged files regenerated, and the summary's
 * stop_signal set; pb_run_stop_signal() tells the caller not to go on. */
int pb_run_experiment(const pb_run_opts *o, const pb_experiment *x, const char *script_text,
                      pb_run_summary *sum, char *err, size_t errlen);

int pb_run_stop_signal(void);

#endif
