/* A method plugin for the runner's tests, steered by $PB_TEST_STUCK:
 *   unset or "hang"  prune() never returns (a method stuck in a loop);
 *   "fill:FILE"      prune() writes FILE until the file system is full, then
 *                    goes on (the cell's own files then meet a full disk);
 *   "child:FILE"     prune() starts a child process that writes its pid to
 *                    FILE and sleeps, then hangs (stopping the cell must stop
 *                    what its method started);
 *   "none"           prune() keeps every weight and returns.
 * t_timeout.sh, t_signal.sh and t_diskfull.sh build it with cc. */
#define _POSIX_C_SOURCE 200809L
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "prunebench/plugin_util.h"

static int prune(void *state, const pb_host *h, pb_ctx *c, double sparsity)
{
    (void)state, (void)h, (void)c, (void)sparsity;
    const char *what = getenv("PB_TEST_STUCK");
    if (what && !strncmp(what, "fill:", 5)) {
        int fd = open(what + 5, O_WRONLY | O_CREAT | O_TRUNC, 0666);
        static char block[4096];
        while (fd >= 0 && write(fd, block, sizeof block) > 0)
            ;
        if (fd >= 0)
            close(fd);
        return PB_PLUGIN_OK;
    }
    if (what && !strcmp(what, "none"))
        return PB_PLUGIN_OK;
    if (what && !strncmp(what, "child:", 6) && fork() == 0) {
        int fd = open(what + 6, O_WRONLY | O_CREAT | O_TRUNC, 0666);
        char buf[32];
        int n = snprintf(buf, sizeof buf, "%ld\n", (long)getpid());
        if (fd >= 0 && write(fd, buf, (size_t)n) == n)
            close(fd);
        for (;;)
            pause();
    }
    for (;;) {
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

PB_PLUGIN_DEFINE(.name = "stuck", .description = "test plugin: hangs in prune(), or fills the disk ($PB_TEST_STUCK)",
                 .kind = PB_KIND_UNSTRUCTURED, .when = PB_WHEN_TRAINED, .prune = prune)
