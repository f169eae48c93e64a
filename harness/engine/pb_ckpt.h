/* pb_ckpt: checkpoint files.
 *
 * Format (little-endian), version 1:
 *   magic   8 bytes  "PBCKPT\r\n"
 *   u32     version (1)
 *   u32     ic, ih, iw, ncls, nlayers, nparams
 *   char    arch[64]
 *   nlayers records: u32 kind, char name[32], i32 in, in2, oc, k, stride, pad,
 *                    has_bias, f32 p, bn_eps, bn_momentum
 *   nparams records: char name[48], u64 n, u8 has_mask, u8 trainable, f32 w[n],
 *                    f32 mask[n] if has_mask
 *   per BN layer (in layer order): f32 run_mean[oc], f32 run_var[oc]
 *   u32     CRC-32 (zlib) of every byte before it
 * Version 2, written when some weights are generated from shared arrays
 * (parameter sharing): the same, except that a generated weight's record has
 * has_mask = 2 and no w[] or mask[] (the shared arrays, ordinary records, are
 * what is stored). Both versions are read.
 * Written to a temporary file and renamed, so a file on disk is always whole
 * (pb_file_write_atomic: a target that is not a regular file is refused, a
 * symbolic link written through, every write error reported). */
#ifndef PB_CKPT_H
#define PB_CKPT_H

#include "pb_model.h"

#define PB_CKPT_VERSION 1
#define PB_CKPT_VERSION_SHARED 2
#define PB_CKPT_GENERATED 2   /* has_mask value of a generated weight (version 2) */

int pb_ckpt_save(const pb_model *m, const char *path, char *err, size_t errlen);
/* Builds *m from the file (pb_model_free it later), finalized for max_batch. */
int pb_ckpt_load(pb_model *m, const char *path, int max_batch, char *err, size_t errlen);
/* Loads the file's values into m, an existing model of the same shapes: what
 * a `load` stage does. Weights the file marks as generated must be generated
 * in m too (a parameter-sharing method bound); they follow the loaded arrays
 * at the next forward. */
int pb_ckpt_restore(pb_model *m, const char *path, char *err, size_t errlen);
/* pb_ckpt_load from the bytes of a file already read (name is what errors
 * call it); allow_generated as pb_ckpt_restore reads (weights generated from
 * shared arrays), else refused. Every size and count is checked against len
 * and the program's limits before anything is allocated. */
int pb_ckpt_load_mem(pb_model *m, const void *data, size_t len, const char *name, int max_batch,
                     int allow_generated, char *err, size_t errlen);

#endif
