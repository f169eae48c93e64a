/* pb_check: what a user types, checked before use. Every number from an
 * experiment script or the command line goes through pb_check_num against a
 * stated range (finite, whole where it must be), and an unknown name gets the
 * nearest valid one ("did you mean"). */
#ifndef PB_CHECK_H
#define PB_CHECK_H

#include <stddef.h>

typedef struct pb_range {
    const char *name;  /* what the number is: "epochs", "conv pad" */
    double lo, hi;     /* the bounds, inclusive unless open */
    int integral;      /* must be a whole number */
    int lo_open;       /* (lo, ... */
    int hi_open;       /* ..., hi) */
} pb_range;

/* The options one kind of model or data set takes, by name (the keys of its
 * entry in an experiment script besides the name itself); a table of these
 * ends with kind NULL. */
typedef struct pb_keyset {
    const char *kind;
    const char *const *keys; /* NULL-terminated */
} pb_keyset;

/* The keys of kind in a keyset table, or NULL for an unknown kind. */
const char *const *pb_keyset_find(const pb_keyset *sets, const char *kind);

/* The ranges scripts and the command line share, by name; NULL-terminated. */
extern const pb_range pb_ranges[];

/* The range called name, or NULL. */
const pb_range *pb_range_find(const char *name);

/* "an integer in [0, 100000]", "a number in (0, 1]" */
void pb_range_describe(const pb_range *r, char *buf, size_t n);

/* PB_OK when v is finite, whole if it must be, and within r; otherwise
 * PB_EUSAGE and err = "VALUE is not an integer in [lo, hi]". */
int pb_check_num(const pb_range *r, double v, char *err, size_t errlen);

/* Parses a whole command-line word as a number (an integer range reads
 * integers exactly, so a 64-bit seed is not rounded) and checks it. */
int pb_check_parse(const pb_range *r, const char *text, double *out, char *err, size_t errlen);

/* The name in the NULL-terminated list nearest to word by edit distance
 * (insertions, deletions, substitutions, transpositions), when it is close
 * enough to be a typo; else NULL. */
const char *pb_check_suggest(const char *word, const char *const *names);

/* Edit distance between a and b (optimal string alignment). */
int pb_check_distance(const char *a, const char *b);

#endif
