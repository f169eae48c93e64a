/* pb_shard: shares of an experiment on a shared results directory. */
#include "pb_shard.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "pb_cost.h"

int pb_shard_parse(const char *text, pb_shard *s, char *err, size_t errlen)
{
    char *end;
    errno = 0;
    long i = strtol(text, &end, 10);
    long n = -1;
    if (!errno && end != text && *end == '/') {
        const char *p = end + 1;
        n = strtol(p, &end, 10);
        if (errno || end == p || *end)
            n = -1;
    }
    if (n < 1 || n > PB_SHARD_MAX || i < 0 || i >= n)
        return pb_err(err, errlen, PB_EUSAGE,
                      "--shard: '%s' is not I/N with 0 <= I < N <= %d (e.g. 0/4 for the first of 4 shards)", text,
                      PB_SHARD_MAX);
    s->index = (int)i;
    s->count = (int)n;
    return PB_OK;
}

int pb_shard_of_hash(const char *hash, int count)
{
    /* FNV-1a's low bits follow its last input bytes closely: mix first (splitmix64's finalizer) */
    uint64_t h = strtoull(hash, NULL, 16);
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebULL;
    h ^= h >> 31;
    return (int)(h % (uint64_t)count);
}

int pb_shard_mine(const pb_shard *s, const pb_cell *c)
{
    return s->count <= 0 || pb_shard_of_hash(c->hash, s->count) == s->index;
}

double pb_shard_cost(const pb_experiment *x, int index, int count)
{
    double *cost = calloc((size_t)x->ncells + 1, sizeof *cost);
    int *needs = calloc((size_t)x->ncells + 1, sizeof *needs);
    double total = 0;
    if (!cost || !needs) {
        free(cost);
        free(needs);
        return 0;
    }
    pb_cost_experiment(x, cost, needs);
    pb_shard s = {index, count};
    for (int i = 0; i < x->ncells; i++) {
        const pb_cell *c = &x->cells[i];
        if (!pb_shard_mine(&s, c))
            continue;
        total += pb_cost_cell(c, NULL);
        if (!needs[i])
            continue;
        /* the model's cost is in cost[] of the first cell of the matrix that needs it */
        int first_here = 1, first = -1;
        for (int k = 0; k < x->ncells && (first < 0 || (first_here && k < i)); k++) {
            if (!needs[k] || strcmp(x->cells[k].dense_key, c->dense_key))
                continue;
            if (first < 0)
                first = k;
            if (k < i && pb_shard_mine(&s, &x->cells[k]))
                first_here = 0;
        }
        if (first_here && first >= 0)
            total += cost[first] - pb_cost_cell(&x->cells[first], NULL);
    }
    free(cost);
    free(needs);
    return total;
}

int pb_shard_open(const pb_store *st, const pb_shard *s, int *lockfd, pb_lock *own, char *err, size_t errlen)
{
    *lockfd = -1;
    int rc = pb_store_mkdirs(st->cells, err, errlen);
    if (rc == PB_OK)
        rc = pb_store_mkdirs(st->dense, err, errlen);
    if (rc != PB_OK)
        return rc;
    char path[4400];
    snprintf(path, sizeof path, "%s/.lock", st->dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0)
        return pb_err(err, errlen, PB_EIO, "cannot write to %s: %s", st->dir, strerror(errno));
    *lockfd = fd;
    if (flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK) {
        char owner[300];
        pb_store_lock_owner(fd, owner, sizeof owner);
        return pb_err(err, errlen, PB_EUSAGE, "an unsharded prunebench run%s is using %s", owner, st->dir);
    }
    if (!s)
        return PB_OK;
    snprintf(path, sizeof path, "%s/.shard-%d-of-%d.lock", st->dir, s->index, s->count);
    char what[128];
    snprintf(what, sizeof what, "shard %d/%d, which another runner has", s->index, s->count);
    rc = pb_lock_wait(own, path, what, err, errlen);
    if (rc == PB_OK && own->took_over)
        fprintf(stderr, "prunebench: shard %d/%d: taking over from %s, which is dead\n", s->index, s->count,
                own->owner);
    /* shards of another N would share cells with this one: wait until none lives */
    DIR *d = rc == PB_OK ? opendir(st->dir) : NULL;
    struct dirent *e;
    while (d && rc == PB_OK && (e = readdir(d))) {
        int i, m;
        char tail;
        if (sscanf(e->d_name, ".shard-%d-of-%d.loc%c", &i, &m, &tail) != 3 || tail != 'k' || m == s->count)
            continue;
        pb_lock other = {0};
        snprintf(path, sizeof path, "%s/%s", st->dir, e->d_name);
        snprintf(what, sizeof what, "shard %d/%d (the shards of one directory must share N)", i, m);
        if ((rc = pb_lock_wait(&other, path, what, err, errlen)) == PB_OK)
            pb_lock_release(&other);
    }
    if (d)
        closedir(d);
    return rc;
}

/* Removes dir's files whose names start with prefix and hold ".tmp". */
static void remove_tmp(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    char path[4400];
    size_t k = strlen(prefix);
    while ((e = readdir(d))) {
        if (!strstr(e->d_name, ".tmp") || strncmp(e->d_name, prefix, k))
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
}

void pb_shard_clean_cell(const pb_store *st, const pb_cell *c)
{
    char prefix[32];
    snprintf(prefix, sizeof prefix, "%s.", c->hash);
    remove_tmp(st->cells, prefix);
}

void pb_shard_dense_lock_path(const pb_store *st, const pb_cell *c, char *buf, size_t n)
{
    snprintf(buf, n, "%s/%s.pb.lock", st->dense, c->dense_key);
}

void pb_shard_clean_dense(const pb_store *st, const pb_cell *c)
{
    char prefix[64];
    snprintf(prefix, sizeof prefix, "%s.pb", c->dense_key);
    remove_tmp(st->dense, prefix);
}

int pb_shard_regenerate(const pb_store *st, int wait, char *err, size_t errlen)
{
    char path[4400];
    snprintf(path, sizeof path, "%s/.merge.lock", st->dir);
    pb_lock l = {0};
    int got = 0;
    int rc = wait ? pb_lock_wait(&l, path, NULL, err, errlen) : pb_lock_try(&l, path, &got, err, errlen);
    if (rc != PB_OK || (!wait && !got))
        return rc;
    rc = pb_store_regenerate(st, err, errlen);
    pb_lock_release(&l);
    return rc;
}

int pb_shard_write_metadata(const pb_store *st, const pb_store_run *run, char *err, size_t errlen)
{
    char path[4400];
    snprintf(path, sizeof path, "%s/.merge.lock", st->dir);
    pb_lock l = {0};
    int rc = pb_lock_wait(&l, path, NULL, err, errlen);
    if (rc != PB_OK)
        return rc;
    rc = pb_store_write_metadata(st, run, err, errlen);
    pb_lock_release(&l);
    return rc;
}
