/* pb_text: byte-level language-model data from Debian's fortunes package.
 *
 * A spec names the corpus and, after a colon, comma-separated options:
 * topic names (files of the corpus directory: "science", "medicine", ...)
 * and ctx=N, the tokens per example (default 64):
 *   "fortunes"                         every topic, 64 tokens
 *   "fortunes:science,medicine,ctx=32" two topics, 32 tokens
 * Every fortune (a document between lines of "%") goes to train, validation
 * or test by a seeded draw on its topic and position, so a document's split
 * is the same whichever topics are selected: a domain subset's test split is
 * never in the general model's training data. A split's documents, in topic
 * then file order, are one byte stream cut into windows of ctx+1 bytes
 * (stride ctx); an example's input is a window's first ctx bytes (c=1, h=ctx,
 * w=1, token ids) and its ny = ctx labels the next byte at each position. */
#ifndef PB_TEXT_H
#define PB_TEXT_H

#include <stddef.h>
#include <stdint.h>

#include "pb_data.h"

#define PB_TEXT_DIR "/usr/share/games/fortunes"
#define PB_TEXT_CTX 64
#define PB_TEXT_MAX_TOPICS 128
#define PB_TEXT_SEED 0xf0a7u /* the document draw; fixed so every run sees the same split */

enum { PB_TEXT_TRAIN = 0, PB_TEXT_TEST = 1, PB_TEXT_VAL = 2 };

/* Whether a data set name is a text spec ("fortunes" or "fortunes:..."). */
int pb_text_is(const char *name);

/* The topics of the corpus in dir (NULL: PB_TEXT_DIR), sorted: the regular
 * files that have a strfile index (name.dat) beside them. names holds max
 * entries of 32 chars; *n receives the count. */
int pb_text_topics(const char *dir, char (*names)[32], int max, int *n, char *err, size_t errlen);

/* The split (PB_TEXT_TRAIN, _VAL, _TEST) of document `index` of `topic`
 * under `seed`: 80 % train, 10 % validation, 10 % test. */
int pb_text_split_of(const char *topic, int index, uint64_t seed);

/* Loads one split of a spec into out (see above). Errors name the missing
 * package, directory or file, or the unknown topic with the valid ones. */
int pb_text_load(const char *spec, const char *dir, int split, pb_dataset *out, char *err, size_t errlen);

#endif
