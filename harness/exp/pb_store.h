/* pb_store: the result store of one experiment — the per-cell files, their
 * rows, and the files regenerated from them.
 *
 * Layout under OUT/<experiment>/:
 *   cells/<hash>.row      one finished cell: its cells.csv row (written last, atomically)
 *   cells/<hash>.curves   its curves.csv rows;  cells/<hash>.layers  its layers.csv rows
 *   cells/<hash>.log      the worker's log (stderr)
 *   dense/<key>.pb        trained dense models shared by the cells that start from one
 *   cells.csv curves.csv layers.csv   regenerated from cells/ in matrix order
 *   metadata.txt script.lua plots.list   one block per run and the latest script,
 *                         the script, the charts it asked for (plots/ is pb_plot's) */
#ifndef PB_STORE_H
#define PB_STORE_H

#include <stddef.h>
#include <stdio.h>

#include "pb_cell.h"
#include "pb_csv.h"
#include "pb_job.h"

typedef struct pb_store {
    const pb_experiment *x;
    char dir[4096];            /* OUT/<experiment> */
    char cells[4200];          /* dir/cells */
    char dense[4200];          /* dir/dense */
    const char *rev, *build;   /* git revision and build of this program (pb_store_build) */
} pb_store;

/* The store of experiment x under out_dir; touches no file. */
void pb_store_init(pb_store *s, const char *out_dir, const pb_experiment *x);

/* The git revision this program was built from ("unknown" for a build outside
 * a checkout) and its build string (version+revision, or the version alone),
 * both compiled in: git is never asked at run time. */
void pb_store_build(const char **rev, const char **build);

/* ---- files and directories ---- */

/* Creates path and its parents. */
int pb_store_mkdirs(const char *path, char *err, size_t errlen);
/* Creates dir and checks that a file can be created in it. */
int pb_store_check_writable(const char *dir, char *err, size_t errlen);
int pb_store_exists(const char *path);
/* The whole file, NUL-terminated (malloc'd), its length in *n (may be NULL);
 * NULL if it cannot be read. */
char *pb_store_read_text(const char *path, size_t *n);
/* Writes path through a temporary file and rename(): readers see the old file
 * or the new one, never a part (pb_file_write_atomic: a path that is not a
 * regular file is refused, every write error reported). */
int pb_store_write_atomic(const char *path, const char *text, size_t n, char *err, size_t errlen);
/* The same for a file written bit by bit: open writes tmp (path.tmp.<pid>),
 * commit flushes, syncs, closes f and renames tmp to path (f may be NULL: the
 * open failed). On failure tmp is removed. */
FILE *pb_store_open_tmp(const char *path, char *tmp, size_t tmplen, char *err, size_t errlen);
int pb_store_commit(FILE *f, const char *tmp, const char *path, char *err, size_t errlen);

/* Creates cells/ and dense/ and takes the experiment's lock (held while *lockfd
 * stays open): two runs must not write one directory. */
int pb_store_open(const pb_store *s, int *lockfd, char *err, size_t errlen);
/* " (pid P on HOST)" of the run holding the lock file open as fd ("" if unknown). */
void pb_store_lock_owner(int fd, char *buf, size_t n);
/* Removes the files of cells/ and dense/, or only the temporary files of
 * workers killed mid-write if tmp_only. */
void pb_store_clean(const pb_store *s, int tmp_only);
/* Removes a cache entry of dense/: the model NAME (KEY.pb), NAME.cost and
 * every NAME.keep-*. */
void pb_store_remove_dense(const pb_store *s, const char *name);
/* Removes the temporary files worker pid left of cell c (its cell files and
 * its cached model's), after it was stopped (timeout, interruption). */
void pb_store_clean_worker(const pb_store *s, const pb_cell *c, long pid);

/* ---- the cells ---- */

/* cells/<hash><suffix> of a cell (suffix ".row", ".curves", ".layers", ".log"). */
void pb_store_cell_path(const pb_store *s, const pb_cell *c, const char *suffix, char *buf, size_t n);
/* dense/<dense_key>.pb of a cell. */
void pb_store_dense_path(const pb_store *s, const pb_cell *c, char *buf, size_t n);
/* What a cell's files hold, checked on resume: no row file; a whole row of
 * status ok (and whole curves, layers and metrics files) or failed; or
 * damaged (emptied, truncated, garbled, another cell's, a bad status or
 * accuracy, a damaged companion file), why saying what. */
enum { PB_STORE_CELL_NONE, PB_STORE_CELL_OK, PB_STORE_CELL_FAILED, PB_STORE_CELL_DAMAGED };
int pb_store_cell_check(const pb_store *s, const pb_cell *c, char *why, size_t wn);
/* Takes the finished cells of the experiment's own cells.csv when the per-cell
 * files are missing (a results directory as committed: its CSV files, and no
 * row file in cells/; once cells/ holds one, the per-cell files are the
 * record, and a cell whose row file is gone runs again): for each cell with
 * exactly one row of status ok or
 * failed in cells.csv, writes its curves, layers and metrics files from those
 * CSVs' records of the cell, then its row file, so that a run resumes from the
 * CSV files alone. A record cut off without its line end is not taken. With
 * write 0 nothing is written: adopted[i] (may be NULL; 1 for a row of status
 * ok, 2 for one of status failed) and *count say which cells would be taken. pb_store_cell_check judges them afterwards like any
 * other cell. */
int pb_store_adopt(const pb_store *s, int write, unsigned char *adopted, int *count, char *err, size_t errlen);
/* Removes a cell's row, curves, layers and metrics files (a damaged cell, run again). */
void pb_store_cell_remove(const pb_store *s, const pb_cell *c);
/* The status ("ok" or "failed"), reason and test accuracy of a cell's row
 * file; PB_EIO if it has none or pb_store_cell_check finds it damaged. */
int pb_store_row_status(const pb_store *s, const pb_cell *c, char *status, size_t sn, char *reason, size_t rn,
                        double *acc);
/* The last line of a cell's log ("" if none). */
void pb_store_last_log_line(const pb_store *s, const pb_cell *c, char *buf, size_t n);

/* The rows (columns: pb_csv_*_cols). Each initializes r; the caller frees it. */
/* The cells.csv row of a cell: res NULL for a failed cell, with reason; build
 * names the prunebench that ran it (not part of the cell's hash, so a new build
 * resumes). */
int pb_store_cell_row(pb_csv_row *r, const pb_experiment *x, const pb_cell *c, const char *reason,
                      const pb_job_result *res, const char *build);
/* One curves.csv row. */
int pb_store_curve_row(pb_csv_row *r, const pb_experiment *x, const pb_cell *c, const pb_curve_rec *rec);
/* The layers.csv rows of a finished cell, one per layer. */
int pb_store_layer_rows(pb_csv_row *r, const pb_experiment *x, const pb_cell *c, const pb_job_result *res);

/* ---- the experiment's files ---- */

/* cells.csv, curves.csv and layers.csv from the per-cell files, in matrix order:
 * a cell appears once whatever happened to earlier runs. */
/* metrics.csv rows (experiment, cell, name, value): the plugin's host->metric() figures. */
int pb_store_metric_rows(pb_csv_row *r, const pb_experiment *x, const pb_cell *c, const pb_job_result *res);
int pb_store_regenerate(const pb_store *s, char *err, size_t errlen);

/* What metadata.txt says of a run besides the experiment. */
typedef struct pb_store_run {
    const char *script;        /* its path */
    const char *script_text;
    int workers, threads;      /* worker processes; OpenBLAS threads per worker */
    int fresh;                 /* 1: the history of earlier runs starts over */
    int finished;              /* cells earlier runs had recorded */
    const char *extra;         /* more "key: value" lines for the block (a shard's), or NULL */
    int noop;                  /* 1: every cell was finished before; an existing metadata.txt
                                * and script.lua stay as they are (no run block for a run
                                * that ran nothing) */
} pb_store_run;

/* metadata.txt (the earlier runs' blocks, this run's block, the script text),
 * script.lua and plots.list. */
int pb_store_write_metadata(const pb_store *s, const pb_store_run *run, char *err, size_t errlen);

#endif
