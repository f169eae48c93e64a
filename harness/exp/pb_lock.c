/* pb_lock: owner-recorded lock files on a shared file system (see pb_lock.h). */
#include "pb_lock.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "engine/pb_util.h"

double pb_lock_stale_s(void)
{
    const char *e = getenv("PRUNEBENCH_LOCK_STALE_S");
    double v = e ? strtod(e, NULL) : 0;
    return v > 0 ? v : PB_LOCK_STALE_S;
}

typedef struct owner_rec {
    char host[128], boot[96], token[256];
    long pid;
    unsigned long long start;
} owner_rec;

/* The start time of a process in clock ticks since boot, 0 if it has none;
 * *zombie set if it has died but not been reaped. */
static unsigned long long proc_start(long pid, int *zombie)
{
    char path[64], buf[1024];
    *zombie = 0;
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* the command name may hold spaces and parentheses */
    char state = 0;
    unsigned long long start = 0;
    if (!p || sscanf(p + 1, " %c %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %llu",
                     &state, &start) != 2)
        return 0;
    *zombie = state == 'Z' || state == 'X';
    return start;
}

static void self_rec(owner_rec *r)
{
    memset(r, 0, sizeof *r);
    struct utsname u;
    snprintf(r->host, sizeof r->host, "%s", uname(&u) == 0 ? u.nodename : "unknown");
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
    if (!f || !fgets(r->boot, sizeof r->boot, f))
        snprintf(r->boot, sizeof r->boot, "-");
    if (f)
        fclose(f);
    r->boot[strcspn(r->boot, "\n")] = '\0';
    /* containers on one kernel share its boot id: a pid is only comparable in one pid namespace */
    char ns[64];
    ssize_t k = readlink("/proc/self/ns/pid", ns, sizeof ns - 1);
    if (k > 0) {
        ns[k] = '\0';
        size_t b = strlen(r->boot);
        snprintf(r->boot + b, sizeof r->boot - b, "/%s", ns + strcspn(ns, "[") + (ns[strcspn(ns, "[")] ? 1 : 0));
        r->boot[strcspn(r->boot, "]")] = '\0';
    }
    r->pid = (long)getpid();
    int z;
    r->start = proc_start(r->pid, &z);
}

static int parse_rec(const char *text, owner_rec *r)
{
    memset(r, 0, sizeof *r);
    return sscanf(text, "host=%127s boot=%95s pid=%ld start=%llu token=%255s", r->host, r->boot, &r->pid, &r->start,
                  r->token) == 5;
}

static char *read_small(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char *s = calloc(1, 1024);
    if (s)
        s[fread(s, 1, 1023, f)] = '\0';
    fclose(f);
    return s;
}

/* Is the owner of a lock whose file reads `text` (modified at mtime) dead? */
static int owner_dead(pb_lock *l, const char *text, const struct timespec *mtime)
{
    owner_rec me, o;
    self_rec(&me);
    int ok = parse_rec(text, &o);
    if (ok) {
        snprintf(l->owner, sizeof l->owner, "host %s pid %ld", o.host, o.pid);
        if (!strcmp(o.host, me.host) && !strcmp(o.boot, me.boot)) {
            int zombie;
            unsigned long long start = proc_start(o.pid, &zombie);
            if (me.start == 0) /* no /proc: only the pid can tell */
                return kill((pid_t)o.pid, 0) != 0 && errno == ESRCH;
            return start == 0 || zombie || start != o.start;
        }
    } else {
        /* being written by its creator this instant, or left half-written by a dead one */
        snprintf(l->owner, sizeof l->owner, "an owner whose record is unreadable");
    }
    /* another host's: dead when nothing has touched it for the stale time, on our clock */
    const char *seen = ok ? o.token : "?";
    double now = pb_now();
    if (strcmp(l->seen, seen) || l->seen_mtime.tv_sec != mtime->tv_sec || l->seen_mtime.tv_nsec != mtime->tv_nsec) {
        snprintf(l->seen, sizeof l->seen, "%s", seen);
        l->seen_mtime = *mtime;
        l->seen_since = now;
        return 0;
    }
    return now - l->seen_since >= pb_lock_stale_s();
}

int pb_lock_try(pb_lock *l, const char *path, int *got, char *err, size_t errlen)
{
    *got = 0;
    if (strcmp(l->path, path)) {
        char note[sizeof l->note];
        snprintf(note, sizeof note, "%s", l->note);
        memset(l, 0, sizeof *l);
        snprintf(l->path, sizeof l->path, "%s", path);
        snprintf(l->note, sizeof l->note, "%s", note);
    }
    if (l->held) {
        *got = 1;
        return PB_OK;
    }
    l->took_over = 0;
    static unsigned long counter;
    owner_rec me;
    self_rec(&me);
    for (int attempt = 0; attempt < 4; attempt++) {
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd >= 0) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            snprintf(l->token, sizeof l->token, "%s.%ld.%llu.%lu.%ld", me.host, me.pid, me.start, ++counter,
                     (long)ts.tv_nsec);
            char rec[512];
            int n = snprintf(rec, sizeof rec, "host=%s boot=%s pid=%ld start=%llu token=%s note=%s\n", me.host,
                             me.boot, me.pid, me.start, l->token, l->note);
            int ok = write(fd, rec, (size_t)n) == n;
            ok = fsync(fd) == 0 && ok;
            ok = close(fd) == 0 && ok;
            if (!ok) {
                int e = errno;
                unlink(path);
                return pb_err(err, errlen, PB_EIO, "cannot write the lock %s: %s", path, strerror(e));
            }
            l->held = 1;
            l->refreshed = pb_now();
            *got = 1;
            return PB_OK;
        }
        if (errno != EEXIST)
            return pb_err(err, errlen, PB_EIO, "cannot create the lock %s: %s", path, strerror(errno));
        /* the times of the file just opened: NFS revalidates them at open, while a
         * plain stat() may answer from attributes cached for up to a minute */
        struct stat st;
        char text[1024];
        int rfd = open(path, O_RDONLY | O_CLOEXEC);
        ssize_t k = rfd < 0 ? -1 : fstat(rfd, &st) != 0 ? -1 : read(rfd, text, sizeof text - 1);
        if (rfd >= 0)
            close(rfd);
        if (k < 0)
            continue; /* released meanwhile */
        text[k] = '\0';
        if (!owner_dead(l, text, &st.st_mtim))
            return PB_OK;
        /* take it over: move it aside, and make sure what moved is the dead owner's */
        char priv[4600];
        snprintf(priv, sizeof priv, "%s.dead.%s.%ld", path, me.host, me.pid);
        if (rename(path, priv) != 0) {
            if (errno == ENOENT)
                continue;
            return pb_err(err, errlen, PB_EIO, "cannot take over the lock %s: %s", path, strerror(errno));
        }
        struct stat mst;
        char *moved = read_small(priv);
        int same = moved && !strcmp(moved, text) && stat(priv, &mst) == 0 && mst.st_ino == st.st_ino &&
                   mst.st_dev == st.st_dev;
        free(moved);
        if (!same) {
            /* a live owner had just replaced the dead one: give it back */
            if (link(priv, path) != 0 && errno != EEXIST) {
                int e = errno;
                unlink(priv);
                return pb_err(err, errlen, PB_EIO, "cannot restore the lock %s: %s", path, strerror(e));
            }
            unlink(priv);
            return PB_OK;
        }
        unlink(priv);
        l->took_over = 1;
        l->seen[0] = '\0';
    }
    return PB_OK;
}

int pb_lock_wait(pb_lock *l, const char *path, const char *what, char *err, size_t errlen)
{
    int said = 0;
    for (;;) {
        int got;
        int rc = pb_lock_try(l, path, &got, err, errlen);
        if (rc != PB_OK || got)
            return rc;
        if (what && !said) {
            fprintf(stderr, "prunebench: waiting for %s (held by %s)\n", what, l->owner);
            said = 1;
        }
        struct timespec ts = {0, 200 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

int pb_lock_note(const char *path, char *note, size_t n)
{
    note[0] = '\0';
    char *text = read_small(path);
    if (!text)
        return 0;
    const char *p = strstr(text, " note=");
    if (p)
        snprintf(note, n, "%.*s", (int)strcspn(p + 6, " \n"), p + 6);
    free(text);
    return 1;
}

static int still_ours(const pb_lock *l)
{
    char *text = read_small(l->path);
    owner_rec o;
    int ours = text && parse_rec(text, &o) && !strcmp(o.token, l->token);
    free(text);
    return ours;
}

int pb_lock_refresh(pb_lock *l)
{
    if (!l->held)
        return 0;
    double now = pb_now();
    if (now - l->refreshed < pb_lock_stale_s() / 6)
        return 1;
    if (!still_ours(l)) {
        l->held = 0;
        return 0;
    }
    utimensat(AT_FDCWD, l->path, NULL, 0);
    l->refreshed = now;
    return 1;
}

void pb_lock_release(pb_lock *l)
{
    if (l->held && still_ours(l))
        unlink(l->path);
    l->held = 0;
}
