/* pb_shard: one share of an experiment's cells (`prunebench run --shard I/N`),
 * run beside the other shares on any hosts that see one results directory.
 *
 * A cell belongs to shard (its hash mixed) mod N: the assignment depends on
 * the cell alone, so every shard agrees on it and a cell keeps its shard when
 * other cells are added to the matrix. What the shards share is guarded by
 * pb_lock files:
 *   DIR/.shard-I-of-N.lock   the runner of shard I (a resubmitted shard waits
 *                            for, or takes over from, an earlier one)
 *   dense/<key>.pb.lock      the runner whose worker is making that cached model
 *   DIR/.merge.lock          regenerating the merged CSV files, writing metadata
 * and DIR/.lock is taken shared, so an unsharded run (which takes it
 * exclusively) never runs beside shards. */
#ifndef PB_SHARD_H
#define PB_SHARD_H

#include <stddef.h>

#include "pb_cell.h"
#include "pb_lock.h"
#include "pb_store.h"

#define PB_SHARD_MAX 100000

typedef struct pb_shard {
    int index, count;          /* count 0: not sharded */
} pb_shard;

/* "I/N" with 0 <= I < N <= PB_SHARD_MAX. */
int pb_shard_parse(const char *text, pb_shard *s, char *err, size_t errlen);
/* The shard (of count) a cell hash (16 hex digits) belongs to. */
int pb_shard_of_hash(const char *hash, int count);
/* 1 if s runs cell c (always when not sharded). */
int pb_shard_mine(const pb_shard *s, const pb_cell *c);

/* Estimated training FLOPs of shard index of count: its cells' own work and
 * each cached model its cells need, once (a shard may have to make it). */
double pb_shard_cost(const pb_experiment *x, int index, int count);

/* Creates cells/ and dense/, takes DIR/.lock shared (*lockfd, closed by the
 * caller) and the shard's own lock (waiting for a live earlier runner of the
 * same shard, taking over from a dead one); with s NULL, no shard's lock (own
 * may be NULL too). */
int pb_shard_open(const pb_store *st, const pb_shard *s, int *lockfd, pb_lock *own, char *err, size_t errlen);
/* Removes the temporary files a killed worker left of a cell: call just before
 * starting it (not at a shard's start: another shard may be running one of its
 * cells then, as the first cell that needs a cached model). */
void pb_shard_clean_cell(const pb_store *st, const pb_cell *c);
/* dense/<key>.pb.lock of a cell's cached model. */
void pb_shard_dense_lock_path(const pb_store *st, const pb_cell *c, char *buf, size_t n);
/* Removes the temporary files a dead maker left of a cell's cached model
 * (call while holding its lock). */
void pb_shard_clean_dense(const pb_store *st, const pb_cell *c);

/* pb_store_regenerate under DIR/.merge.lock; if wait is 0 and another shard
 * holds it, does nothing (that shard's regeneration, or a later one, covers
 * what this one would have written). */
int pb_shard_regenerate(const pb_store *st, int wait, char *err, size_t errlen);
/* pb_store_write_metadata under DIR/.merge.lock: each shard appends its block. */
int pb_shard_write_metadata(const pb_store *st, const pb_store_run *run, char *err, size_t errlen);

#endif
