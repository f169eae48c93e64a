/* pb_lock: a lock on a shared file system that outlives a dead owner.
 *
 * The lock is a file created with O_EXCL, holding its owner's record (host,
 * boot id, pid, process start time, a token). The owner refreshes the file's
 * modification time (pb_lock_refresh) while it works. Another process finds
 * the owner dead when
 *   - the owner ran on the same host (same name, boot id and pid namespace) and its pid is
 *     gone or now belongs to a younger process, or
 *   - the owner ran on another host and the file's modification time has not
 *     changed for PB_LOCK_STALE_S seconds of the waiter's own clock (so the
 *     clocks of hosts and file server need not agree),
 * and then takes the lock over: it renames the file to a private name, checks
 * that what it moved is the record it judged dead (else it puts it back) and
 * competes for a fresh O_EXCL create. fcntl and flock locks are not used
 * because some cluster file systems do not support them and NFSv3 keeps a dead
 * client's locks until that client reboots. */
#ifndef PB_LOCK_H
#define PB_LOCK_H

#include <stddef.h>
#include <time.h>

/* Seconds without a refresh after which another host's lock is dead;
 * $PRUNEBENCH_LOCK_STALE_S overrides it. The owner refreshes 6 times as often. */
#define PB_LOCK_STALE_S 60

typedef struct pb_lock {
    char path[4400];
    int held;                 /* 1: this process owns the lock */
    int took_over;            /* the last pb_lock_try took it from a dead owner (l->owner) */
    char note[64];            /* set before pb_lock_try: written in the record (what the lock is for) */
    char token[256];          /* ours when held */
    double refreshed;         /* pb_now() of the last refresh */
    /* a lock held by another host: what it looked like, since when (our clock) */
    char seen[256];
    struct timespec seen_mtime;
    double seen_since;
    char owner[256];          /* the owner's record as text, for messages */
} pb_lock;

/* One attempt: *got = 1 if the lock at path is now ours (l->held), 0 if a live
 * owner holds it (l->owner says who). l keeps what it saw between attempts: pass
 * the same l again with the same path. Fails only on I/O errors. */
int pb_lock_try(pb_lock *l, const char *path, int *got, char *err, size_t errlen);
/* Waits (polling) until the lock is ours; says once on stderr whom it waits
 * for when what is non-NULL. */
int pb_lock_wait(pb_lock *l, const char *path, const char *what, char *err, size_t errlen);
/* 1 if a lock file exists at path, its note (or "") in note. */
int pb_lock_note(const char *path, char *note, size_t n);
/* Keeps a held lock alive; cheap to call often (it touches the file only every
 * PB_LOCK_STALE_S / 6 s). Returns 0 if the lock is no longer ours. */
int pb_lock_refresh(pb_lock *l);
/* Removes a held lock (if it is still ours); no-op otherwise. */
void pb_lock_release(pb_lock *l);

/* The stale timeout in effect (PB_LOCK_STALE_S or the environment's). */
double pb_lock_stale_s(void);

#endif
