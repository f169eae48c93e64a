/* pb_file: files replaced whole (see pb_file.h). */
#include "pb_file.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pb_util.h"

static const char *kind_of(mode_t m)
{
    if (S_ISDIR(m))
        return "a directory";
    if (S_ISFIFO(m))
        return "a FIFO (named pipe)";
    if (S_ISCHR(m))
        return "a character device";
    if (S_ISBLK(m))
        return "a block device";
    if (S_ISSOCK(m))
        return "a socket";
    return "not a regular file";
}

int pb_file_target(const char *path, char *target, size_t tn, char *err, size_t errlen)
{
    struct stat st;
    if (!path || !*path)
        return pb_err(err, errlen, PB_EUSAGE, "no file name given");
    if (lstat(path, &st) != 0) {
        if (errno != ENOENT)
            return pb_err(err, errlen, PB_EIO, "cannot write %s: %s", path, strerror(errno));
        if ((size_t)snprintf(target, tn, "%s", path) >= tn)
            return pb_err(err, errlen, PB_EUSAGE, "cannot write %s: the name is too long", path);
        return PB_OK;
    }
    if (S_ISLNK(st.st_mode)) {
        char real[PATH_MAX];
        if (!realpath(path, real))
            return pb_err(err, errlen, PB_EIO, "cannot write %s: a symbolic link whose target %s (%s)", path,
                          errno == ENOENT ? "does not exist" : "cannot be resolved", strerror(errno));
        if (stat(real, &st) != 0)
            return pb_err(err, errlen, PB_EIO, "cannot write %s: %s", path, strerror(errno));
        if (!S_ISREG(st.st_mode))
            return pb_err(err, errlen, PB_EUSAGE,
                          "refusing to write %s: it is a symbolic link to %s, which is %s, not a regular file "
                          "(give the path of a regular file or a new one)", path, real, kind_of(st.st_mode));
        if ((size_t)snprintf(target, tn, "%s", real) >= tn)
            return pb_err(err, errlen, PB_EUSAGE, "cannot write %s: the name is too long", real);
        return PB_OK;
    }
    if (!S_ISREG(st.st_mode))
        return pb_err(err, errlen, PB_EUSAGE,
                      "refusing to write %s: it is %s, not a regular file (give the path of a regular file or "
                      "a new one)", path, kind_of(st.st_mode));
    if ((size_t)snprintf(target, tn, "%s", path) >= tn)
        return pb_err(err, errlen, PB_EUSAGE, "cannot write %s: the name is too long", path);
    return PB_OK;
}

int pb_file_is_regular(const char *path)
{
    struct stat st;
    return path && stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Creates target.tmp.<pid> exclusively; a file of that name is a dead
 * process's leftover (the pid is ours now) and goes first. */
static int open_tmp_fd(const char *target, char *tmp, size_t tmplen, char *err, size_t errlen)
{
    if ((size_t)snprintf(tmp, tmplen, "%s.tmp.%ld", target, (long)getpid()) >= tmplen)
        return -pb_err(err, errlen, PB_EUSAGE, "cannot write %s: the name is too long", target);
    for (int attempt = 0;; attempt++) {
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
        if (fd >= 0)
            return fd;
        if (errno != EEXIST || attempt > 0 || unlink(tmp) != 0)
            return -pb_err(err, errlen, PB_EIO, "cannot write %s: %s", tmp, strerror(errno));
    }
}

/* After the rename, the directory entry itself is made durable (best effort:
 * some file systems refuse to sync a directory). */
static void sync_dir_of(const char *target)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", target);
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        slash[1] = '\0';
    else if (slash)
        *slash = '\0';
    else
        snprintf(dir, sizeof dir, ".");
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

static int finish(const char *tmp, const char *target, const char *path, int e, char *err, size_t errlen)
{
    if (e == 0 && rename(tmp, target) != 0)
        e = errno;
    if (e) {
        unlink(tmp);
        return pb_err(err, errlen, PB_EIO, "cannot write %s: %s", path, strerror(e));
    }
    sync_dir_of(target);
    return PB_OK;
}

int pb_file_write_atomic(const char *path, const void *data, size_t n, char *err, size_t errlen)
{
    char target[PATH_MAX], tmp[PATH_MAX + 32];
    int rc = pb_file_target(path, target, sizeof target, err, errlen);
    if (rc != PB_OK)
        return rc;
    int fd = open_tmp_fd(target, tmp, sizeof tmp, err, errlen);
    if (fd < 0)
        return -fd;
    const char *p = data;
    int e = 0;
    while (n > 0 && !e) {
        ssize_t k = write(fd, p, n);
        if (k < 0 && errno != EINTR)
            e = errno;
        else if (k > 0) {
            p += k;
            n -= (size_t)k;
        }
    }
    if (!e && fsync(fd) != 0)
        e = errno;
    if (close(fd) != 0 && !e)
        e = errno;
    return finish(tmp, target, path, e, err, errlen);
}

FILE *pb_file_open_tmp(const char *path, char *tmp, size_t tmplen, char *err, size_t errlen)
{
    char target[PATH_MAX];
    tmp[0] = '\0';
    if (pb_file_target(path, target, sizeof target, err, errlen) != PB_OK)
        return NULL;
    int fd = open_tmp_fd(target, tmp, tmplen, err, errlen);
    if (fd < 0) {
        tmp[0] = '\0';
        return NULL;
    }
    FILE *f = fdopen(fd, "w");
    if (!f) {
        pb_err(err, errlen, PB_EIO, "cannot write %s: %s", tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        tmp[0] = '\0';
    }
    return f;
}

int pb_file_commit(FILE *f, const char *tmp, const char *path, char *err, size_t errlen)
{
    if (!f) {
        if (tmp && tmp[0])
            unlink(tmp);
        return pb_err(err, errlen, PB_EIO, "cannot write %s", path);
    }
    int e = 0;
    errno = 0;
    if (fflush(f) != 0 || ferror(f))
        e = errno ? errno : EIO;
    if (!e && fsync(fileno(f)) != 0)
        e = errno;
    if (fclose(f) != 0 && !e)
        e = errno;
    char target[PATH_MAX];
    int rc = pb_file_target(path, target, sizeof target, err, errlen);
    if (rc != PB_OK) {
        unlink(tmp);
        return rc;
    }
    return finish(tmp, target, path, e, err, errlen);
}
