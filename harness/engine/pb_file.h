/* pb_file: files replaced whole — written to a temporary file beside the
 * target, flushed, synced, closed and renamed over it, so a reader sees the
 * old file or the new one, never a part, and every write error is reported.
 *
 * What may be replaced: a regular file, or a path that does not exist yet. A
 * symbolic link is written through: the file it points to is replaced (in its
 * own directory) and the link stays. Anything else — a directory, a FIFO, a
 * device node such as /dev/full, a socket, a dangling link — is refused with a
 * message naming it, before anything is written: renaming a regular file over
 * it would silently replace the node, and writing into it would not be atomic.
 *
 * The temporary file is TARGET.tmp.<pid>, created exclusively (never through
 * a link an earlier owner of the name left); it is removed on every failure. */
#ifndef PB_FILE_H
#define PB_FILE_H

#include <stddef.h>
#include <stdio.h>

/* Checks that path may be replaced and writes into target the file that will
 * be (path itself, or what its symbolic links point to). */
int pb_file_target(const char *path, char *target, size_t tn, char *err, size_t errlen);

/* Replaces path with the n bytes of data. */
int pb_file_write_atomic(const char *path, const void *data, size_t n, char *err, size_t errlen);

/* The same for a file written bit by bit: pb_file_open_tmp checks path and
 * opens the temporary file (its name into tmp); pb_file_commit checks f's
 * error state, flushes, syncs and closes it and renames tmp over path's
 * target. f may be NULL (the open failed: commit only reports). */
FILE *pb_file_open_tmp(const char *path, char *tmp, size_t tmplen, char *err, size_t errlen);
int pb_file_commit(FILE *f, const char *tmp, const char *path, char *err, size_t errlen);

/* 1 if path names a regular file (after symbolic links). */
int pb_file_is_regular(const char *path);

#endif
