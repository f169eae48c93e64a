/* pb_util: status codes, error buffers, seeded RNG, clocks, aligned memory. */
#ifndef PB_UTIL_H
#define PB_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Status codes returned by every fallible function; details go to an error buffer. */
enum {
    PB_OK = 0,
    PB_EUSAGE = 2,   /* bad arguments or names (main exits 2) */
    PB_EIO = 3,      /* file missing, truncated, corrupt */
    PB_ENOMEM = 4,
    PB_ENUM = 5,     /* NaN / Inf in training */
    PB_EPLUGIN = 6,  /* plugin refused or failed */
    PB_EINTERNAL = 7
};

#define PB_ERRLEN 512

/* Writes a printf-style message into err (may be NULL) and returns code. */
int pb_err(char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* xoshiro256** seeded through splitmix64: fast, reproducible on every host. */
typedef struct pb_rng { uint64_t s[4]; } pb_rng;

void pb_rng_seed(pb_rng *r, uint64_t seed);
uint64_t pb_rng_next(pb_rng *r);
double pb_rng_uniform(pb_rng *r);             /* [0, 1) */
uint32_t pb_rng_below(pb_rng *r, uint32_t n); /* [0, n) */
float pb_rng_normal(pb_rng *r);               /* N(0, 1), Box-Muller */
void pb_rng_shuffle(pb_rng *r, int *a, int n);

/* 64-bit FNV-1a, for config hashes and hashed parameter sharing. */
uint64_t pb_hash64(const void *data, size_t n, uint64_t h);
#define PB_HASH_INIT 0xcbf29ce484222325ULL

double pb_now(void); /* monotonic seconds */

/* 64-byte aligned, zeroed allocation; free with pb_free. */
void *pb_alloc(size_t bytes);
/* Bytes of physical memory of this machine (0 if unknown). */
double pb_mem_physical(void);
void pb_free(void *p);

/* A growable byte buffer: n bytes at p, always followed by a NUL (so text
 * can be used as a string); free(p) when done. Start from {0}. */
typedef struct pb_buf {
    char *p;
    size_t n, cap;
} pb_buf;
/* Appends n bytes; PB_ENOMEM (the buffer unchanged) if it cannot grow. */
int pb_buf_add(pb_buf *b, const void *bytes, size_t n);

/* Selects the k-th smallest of n floats (0-based) in O(n); reorders a. */
float pb_select_kth(float *a, size_t n, size_t k);

#endif
