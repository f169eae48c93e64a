/* pb_lock and the shard assignment: mutual exclusion between processes, a dead
 * owner's lock taken over at once on its host and after the stale time from
 * another, a lost lock noticed by its owner; shards partition the cells. */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "exp/pb_lock.h"
#include "exp/pb_shard.h"
#include "tap.h"

static char dir[256];

static void path_of(char *buf, size_t n, const char *name) { snprintf(buf, n, "%s/%s", dir, name); }

/* A counter incremented by read, pause, write: correct only under mutual exclusion. */
static void bump(const char *counter)
{
    FILE *f = fopen(counter, "r");
    long v = 0;
    if (f) {
        if (fscanf(f, "%ld", &v) != 1)
            v = 0;
        fclose(f);
    }
    usleep(2000);
    f = fopen(counter, "w");
    if (f) {
        fprintf(f, "%ld\n", v + 1);
        fclose(f);
    }
}

int main(void)
{
    char err[PB_ERRLEN], lock[300], counter[300];
    snprintf(dir, sizeof dir, "/tmp/pb_t_lock.XXXXXX");
    if (!mkdtemp(dir)) {
        printf("1..0 # SKIP no temporary directory\n");
        return 0;
    }
    tap_plan(9);
    path_of(lock, sizeof lock, "x.lock");
    path_of(counter, sizeof counter, "counter");

    /* 1: mutual exclusion: 4 processes x 6 turns of read-pause-write */
    enum { PROCS = 4, TURNS = 6 };
    for (int p = 0; p < PROCS; p++)
        if (fork() == 0) {
            pb_lock l = {0};
            for (int t = 0; t < TURNS; t++) {
                if (pb_lock_wait(&l, lock, NULL, err, sizeof err) != PB_OK)
                    _exit(2);
                bump(counter);
                pb_lock_release(&l);
            }
            _exit(0);
        }
    int bad = 0, st;
    while (wait(&st) > 0)
        bad |= !WIFEXITED(st) || WEXITSTATUS(st) != 0;
    FILE *f = fopen(counter, "r");
    long v = -1;
    if (f) {
        if (fscanf(f, "%ld", &v) != 1)
            v = -1;
        fclose(f);
    }
    ok(!bad && v == PROCS * TURNS, "4 processes taking one lock 6 times each never overlap (counter %ld of %d)", v,
       PROCS * TURNS);
    ok(access(lock, F_OK) != 0, "a released lock leaves no file");

    /* 2: a live owner holds; a dead one (same host) is taken over at once */
    int pfd[2];
    if (pipe(pfd) != 0)
        return 1;
    pid_t child = fork();
    if (child == 0) {
        pb_lock l = {0};
        snprintf(l.note, sizeof l.note, "cellhash");
        int got = 0;
        pb_lock_try(&l, lock, &got, err, sizeof err);
        char c = got ? 'y' : 'n';
        if (write(pfd[1], &c, 1) != 1)
            _exit(1);
        pause(); /* holds it until killed: never released */
        _exit(0);
    }
    char c = 0;
    if (read(pfd[0], &c, 1) != 1)
        c = 0;
    pb_lock me = {0};
    int got = -1;
    int rc = pb_lock_try(&me, lock, &got, err, sizeof err);
    char note[64];
    int has = pb_lock_note(lock, note, sizeof note);
    ok(c == 'y' && rc == PB_OK && got == 0 && strstr(me.owner, "pid") && has && !strcmp(note, "cellhash"),
       "a live owner's lock is not taken (owner: %s, note '%s')", me.owner, note);
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    rc = pb_lock_try(&me, lock, &got, err, sizeof err);
    ok(rc == PB_OK && got == 1 && me.took_over, "once its owner is killed, it is taken over at once");

    /* 3: the owner notices a lock it lost */
    FILE *g = fopen(lock, "w");
    if (g) {
        fprintf(g, "host=other boot=b pid=1 start=1 token=someone-else note=\n");
        fclose(g);
    }
    setenv("PRUNEBENCH_LOCK_STALE_S", "0.6", 1);
    usleep(200 * 1000); /* past a refresh interval (0.6 / 6 s) */
    ok(pb_lock_refresh(&me) == 0 && !me.held, "an owner whose lock was replaced sees it lost at its next refresh");

    /* 4: another host's lock: live while refreshed, dead once untouched for the stale time */
    pb_lock w = {0};
    rc = pb_lock_try(&w, lock, &got, err, sizeof err);
    int first = rc == PB_OK && got == 0;
    usleep(400 * 1000);
    utimensat(AT_FDCWD, lock, NULL, 0); /* its owner refreshes it */
    rc = pb_lock_try(&w, lock, &got, err, sizeof err);
    int second = rc == PB_OK && got == 0;
    usleep(400 * 1000);
    rc = pb_lock_try(&w, lock, &got, err, sizeof err);
    int third = rc == PB_OK && got == 0; /* 0.4 s since the refresh */
    ok(first && second && third, "another host's lock refreshed within the stale time stays its owner's");
    usleep(400 * 1000);
    rc = pb_lock_try(&w, lock, &got, err, sizeof err);
    ok(rc == PB_OK && got == 1 && w.took_over && !strcmp(w.owner, "host other pid 1"),
       "untouched for the stale time, it is taken over (from %s)", w.owner);
    pb_lock_release(&w);

    /* 5: shards */
    pb_shard s;
    ok(pb_shard_parse("3/8", &s, err, sizeof err) == PB_OK && s.index == 3 && s.count == 8 &&
           pb_shard_parse("8/8", &s, err, sizeof err) == PB_EUSAGE && strstr(err, "0 <= I < N") &&
           pb_shard_parse("1/0", &s, err, sizeof err) == PB_EUSAGE &&
           pb_shard_parse("x", &s, err, sizeof err) == PB_EUSAGE,
       "--shard I/N is parsed and checked");
    int count[4] = {0};
    for (unsigned i = 0; i < 4000; i++) {
        char hash[17];
        snprintf(hash, sizeof hash, "%016llx", (unsigned long long)pb_hash64(&i, sizeof i, PB_HASH_INIT));
        count[pb_shard_of_hash(hash, 4)]++;
    }
    ok(count[0] > 850 && count[1] > 850 && count[2] > 850 && count[3] > 850,
       "4000 cell hashes spread over 4 shards: %d %d %d %d", count[0], count[1], count[2], count[3]);
    unlink(counter);
    rmdir(dir);
    return tap_done();
}
