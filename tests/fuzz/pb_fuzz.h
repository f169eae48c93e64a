/* pb_fuzz: the entry points the fuzz targets (libFuzzer, tests/fuzz/smoke.sh)
 * and the regression replay (tests/t_fuzz.sh) share. Each takes the bytes of
 * one untrusted file, hands them to the loader as the program would read
 * them, and returns the loader's status with its message in err: PB_OK for
 * an accepted input, an error code for a refused one. A crash, a sanitizer
 * report or a hang is the bug. */
#ifndef PB_FUZZ_H
#define PB_FUZZ_H

#include <stddef.h>
#include <stdint.h>

typedef int (*pb_fuzz_fn)(const uint8_t *data, size_t size, char *err, size_t errlen);

/* A checkpoint file (pb_ckpt_load_mem). The CRC-32 trailer is recomputed
 * first, so mutations reach the parser instead of the checksum. */
int pb_fuzz_ckpt(const uint8_t *data, size_t size, char *err, size_t errlen);
/* An IDX file, plain or gzipped (pb_idx_read); the first byte picks the
 * expected dimensions (1 + byte % 3), the rest is the file. */
int pb_fuzz_idx(const uint8_t *data, size_t size, char *err, size_t errlen);
/* A CIFAR-10 binary batch: test_batch.bin of a data directory (pb_data_load). */
int pb_fuzz_cifar(const uint8_t *data, size_t size, char *err, size_t errlen);
/* A per-cell row file read on resume (pb_store_row_status), the same bytes
 * as a results CSV (pb_csv_read) and as a cell's log (pb_store_last_log_line). */
int pb_fuzz_row(const uint8_t *data, size_t size, char *err, size_t errlen);
/* An experiment script, loaded and expanded into cells without training
 * (pb_lua_run); os, io, package and the loaders are removed from the state,
 * and instructions and memory are bounded. */
int pb_fuzz_lua(const uint8_t *data, size_t size, char *err, size_t errlen);

/* The entry of a target by name ("ckpt", "idx", "cifar", "row", "lua"), or NULL. */
pb_fuzz_fn pb_fuzz_find(const char *name);

#endif
