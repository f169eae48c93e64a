/* pb_run: the experiment runner. */
#include "pb_run.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cblas.h>

#include "config.h"
#include "pb_csv.h"
#include "pb_plot.h"

char *openblas_get_config(void);
int openblas_get_num_threads(void);
void openblas_set_num_threads(int);

/* --dry-run's time estimate: training runs at about this fraction of one
 * thread's SGEMM speed on the layer shapes of LeNet-300-100 (bench_train.sh
 * measured 0.3 to 1.0 of it, per worker, on LeNet-5 and LeNet-300-100). */
#define EST_SGEMM_FRACTION 0.4

/* Single-thread SGEMM GFLOP/s on a 128x784 by 784x300 product, timed ~0.1 s. */
static double sgemm_gflops(void)
{
    enum { M = 128, K = 784, N = 300 };
    float *a = calloc((size_t)M * K, sizeof(float)), *b = calloc((size_t)K * N, sizeof(float)),
          *c = calloc((size_t)M * N, sizeof(float));
    double gflops = 10.0;
    if (a && b && c) {
        int saved = openblas_get_num_threads();
        openblas_set_num_threads(1);
        int reps = 0;
        double t0 = pb_now(), t;
        do {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, a, K, b, N, 0.0f, c, N);
            reps++;
        } while ((t = pb_now() - t0) < 0.1);
        gflops = 2.0 * M * N * K * reps / t / 1e9;
        openblas_set_num_threads(saved);
    }
    free(a);
    free(b);
    free(c);
    return gflops;
}

#define MAX_JOBS 64

/* ------------------------------------------------------------ small helpers */

static int mkdirs(const char *path, char *err, size_t errlen)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || !*p) {
            char c = *p;
            *p = '\0';
            if (mkdir(buf, 0777) != 0 && errno != EEXIST)
                return pb_err(err, errlen, PB_EIO, "cannot create directory %s: %s", buf, strerror(errno));
            *p = c;
            if (!c)
                break;
        }
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return pb_err(err, errlen, PB_EIO, "%s is not a directory", path);
    return PB_OK;
}

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Writes text to path through a temporary file and rename(): readers see the
 * old file or the new one, never a part. */
static int write_atomic(const char *path, const char *text, size_t n, char *err, size_t errlen)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f)
        return pb_err(err, errlen, PB_EIO, "cannot write %s: %s", tmp, strerror(errno));
    int ok = fwrite(text, 1, n, f) == n;
    ok = (fflush(f) == 0) && ok;
    ok = (fsync(fileno(f)) == 0) && ok;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return pb_err(err, errlen, PB_EIO, "cannot write %s: %s", path, strerror(e));
    }
    return PB_OK;
}

static char *read_text(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, len = 0;
    char *s = malloc(cap);
    while (s) {
        len += fread(s + len, 1, cap - len - 1, f);
        if (len + 1 < cap)
            break;
        char *p = realloc(s, cap *= 2);
        if (!p) {
            free(s);
            s = NULL;
        } else
            s = p;
    }
    fclose(f);
    if (s) {
        s[len] = '\0';
        if (n)
            *n = len;
    }
    return s;
}

/* Removes the files of dir, or only temporary ones (".tmp" in the name) if tmp_only. */
static void clean_dir(const char *dir, int tmp_only)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    char path[4400];
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        if (tmp_only && !strstr(e->d_name, ".tmp"))
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
}

static void fmt_duration(char *buf, size_t n, double s)
{
    if (!(s >= 0) || s > 1e7) {
        snprintf(buf, n, "?");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(buf, n, "%02ld:%02ld", t / 60, t % 60);
}

static const char *signal_name(int sig)
{
    const char *abbrev = sigabbrev_np(sig);
    static char buf[64];
    if (abbrev)
        snprintf(buf, sizeof buf, "SIG%s (%s)", abbrev, strsignal(sig));
    else
        snprintf(buf, sizeof buf, "signal %d", sig);
    return buf;
}

/* ------------------------------------------------------------- cost model */

double pb_run_cell_cost(const pb_cell *c, int *needs_dense)
{
    double per_epoch = c->train_flops_ex * (double)c->ntrain;
    int dense = !strcmp(c->when, "dense") || !strcmp(c->when, "trained");
    if (needs_dense)
        *needs_dense = dense;
    if (!strcmp(c->when, "dense"))
        return 0; /* its cost is the pre-training, counted once per dense key */
    if (!strcmp(c->when, "trained"))
        return per_epoch * c->finetune.epochs;
    if (!strcmp(c->when, "run")) {
        /* iterative methods (lottery tickets): rounds x epochs per round, and
         * the final training of the ticket; without `rounds`, as many rounds
         * as a 20% rate needs */
        int rounds = 0, epochs = 0;
        for (int i = 0; i < c->nargs; i++) {
            if (!strncmp(c->args[i], "rounds=", 7))
                rounds = atoi(c->args[i] + 7);
            if (!strncmp(c->args[i], "epochs=", 7))
                epochs = atoi(c->args[i] + 7);
        }
        if (rounds <= 0)
            rounds = c->sparsity > 0 ? (int)ceil(log(1 - c->sparsity) / log(0.8)) : 1;
        if (epochs <= 0)
            epochs = c->train.epochs;
        return per_epoch * (double)(rounds + 1) * epochs;
    }
    return per_epoch * c->train.epochs;
}

/* --------------------------------------------------------------- the rows */

static void row_prefix(pb_csv_row *r, const pb_experiment *x, const pb_cell *c)
{
    pb_csv_str(r, x->name);
    pb_csv_str(r, c->hash);
    pb_csv_str(r, c->model);
    pb_csv_str(r, c->dataset);
    pb_csv_str(r, c->method);
    pb_csv_str(r, c->label);
    pb_csv_num(r, c->sparsity);
    pb_csv_int(r, c->seed);
}

/* The cells.csv row of a cell: res NULL for a failed cell; build names the
 * prunebench that ran it (not part of the cell's hash, so a new build resumes). */
static int cell_row(pb_csv_row *r, const pb_experiment *x, const pb_cell *c, const char *reason,
                    const pb_job_result *res, const char *build)
{
    pb_csv_row_init(r);
    row_prefix(r, x, c);
    pb_csv_str(r, res ? "ok" : "failed");
    pb_csv_str(r, reason);
    if (res) {
        double fd = res->flops_dense_orig > 0 ? res->flops_dense_orig : res->flops_dense;
        pb_csv_num(r, res->test_acc);
        pb_csv_num(r, res->test_loss);
        pb_csv_int(r, (long long)res->params);
        pb_csv_int(r, (long long)res->nonzero);
        pb_csv_num(r, res->nonzero ? (double)res->params / (double)res->nonzero : INFINITY);
        pb_csv_num(r, fd);
        pb_csv_num(r, res->flops_eff);
        pb_csv_num(r, res->flops_eff > 0 ? fd / res->flops_eff : INFINITY);
        pb_csv_num(r, res->wall_s);
        pb_csv_num(r, res->train_flops);
        if (res->time_to_target_s >= 0)
            pb_csv_num(r, res->time_to_target_s);
        else
            pb_csv_empty(r);
    } else {
        for (int i = 0; i < 11; i++)
            pb_csv_empty(r);
    }
    pb_csv_num(r, c->width);
    if (res)
        pb_csv_int(r, res->dense_from_cache);
    else
        pb_csv_empty(r);
    pb_csv_str(r, c->dense_key);
    pb_csv_str(r, c->args_joined);
    pb_csv_int(r, c->train.epochs);
    pb_csv_int(r, c->finetune.epochs);
    if (res) {
        pb_csv_int(r, (long long)res->prunable);
        pb_csv_int(r, (long long)res->prunable_nonzero);
        pb_csv_num(r, res->sparsity);
    } else {
        for (int i = 0; i < 3; i++)
            pb_csv_empty(r);
    }
    pb_csv_str(r, build);
    return pb_csv_end(r);
}

/* ---------------------------------------------------------------- workers */

typedef struct run_ctx {
    const pb_run_opts *o;
    const pb_experiment *x;
    char dir[4096], cells[4200], dense[4200];
    const char *rev, *build;   /* git revision and build of this run */
    int threads;
    pid_t parent;
} run_ctx;

typedef struct worker_ud {
    FILE *curves;
    const pb_experiment *x;
    const pb_cell *c;
    int fd;        /* progress pipe to the runner */
    int curve_fail;
} worker_ud;

static void worker_curve(void *ud, const pb_curve_rec *rec)
{
    worker_ud *w = ud;
    pb_csv_row r;
    pb_csv_row_init(&r);
    pb_csv_str(&r, w->x->name);
    pb_csv_str(&r, w->c->hash);
    pb_csv_str(&r, rec->phase);
    pb_csv_int(&r, rec->index);
    pb_csv_int(&r, rec->step);
    pb_csv_num(&r, rec->wall_s);
    pb_csv_num(&r, rec->train_flops);
    pb_csv_num(&r, rec->sparsity);
    pb_csv_num(&r, rec->test_acc);
    pb_csv_num(&r, rec->test_loss);
    if (pb_csv_end(&r) == PB_OK && w->curves)
        fputs(r.s, w->curves);
    else
        w->curve_fail = 1;
    pb_csv_row_free(&r);
    char msg[96];
    int n = snprintf(msg, sizeof msg, "%s %d %.4f\n", rec->phase, rec->index, rec->test_acc);
    if (w->fd >= 0 && write(w->fd, msg, (size_t)n) < 0)
        w->fd = -1; /* the runner went away; PDEATHSIG ends us */
}

static int finish_file(FILE *f, const char *tmp, const char *path)
{
    int ok = f && fflush(f) == 0 && fsync(fileno(f)) == 0;
    if (f)
        ok = (fclose(f) == 0) && ok;
    if (ok && rename(tmp, path) == 0)
        return 1;
    unlink(tmp);
    return 0;
}

/* Runs in the forked child and never returns: the child's outcome is its
 * files, its exit status the runner's only other information. */
static void worker(const run_ctx *ctx, const pb_cell *c, int fd) __attribute__((noreturn));
static void worker(const run_ctx *ctx, const pb_cell *c, int fd)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != ctx->parent)
        _exit(3);
    char path[4400], tmp[4500], dense[4400];
    snprintf(path, sizeof path, "%s/%s.log", ctx->cells, c->hash);
    int logfd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0666);
    if (logfd >= 0) {
        dup2(logfd, 1);
        dup2(logfd, 2);
        close(logfd);
    }
    setvbuf(stderr, NULL, _IOLBF, 0);
    fprintf(stderr, "cell %s: %s %s method=%s label=%s sparsity=%g seed=%ld args=%s\nconfig: %s\n", c->hash,
            c->model, c->dataset, c->method, c->label, c->sparsity, c->seed,
            c->args_joined ? c->args_joined : "", c->config);

    worker_ud w = {.x = ctx->x, .c = c, .fd = fd};
    snprintf(path, sizeof path, "%s/%s.curves", ctx->cells, c->hash);
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    w.curves = fopen(tmp, "w");

    pb_job j;
    pb_cell_job(c, &j);
    snprintf(dense, sizeof dense, "%s/%s.pb", ctx->dense, c->dense_key);
    j.dense_cache = dense;
    j.data_dir = ctx->o->data_dir;
    j.plugin_path = ctx->o->plugin_path;
    j.threads = ctx->threads;
    j.on_curve = worker_curve;
    j.ud = &w;
    pb_job_result *res = calloc(1, sizeof *res);
    char err[PB_ERRLEN] = "";
    int rc = res ? pb_job_run(&j, res, err, sizeof err) : pb_err(err, sizeof err, PB_ENOMEM, "out of memory");
    if (rc == PB_OK && (!isfinite(res->test_loss) || !isfinite(res->test_acc)))
        rc = pb_err(err, sizeof err, PB_ENUM, "final test loss is %g (NaN or infinite)", res->test_loss);
    if (rc != PB_OK)
        fprintf(stderr, "failed: %s\n", err);
    else
        fprintf(stderr, "done: test_acc=%.4f test_loss=%.4f nonzero=%zu/%zu dense_from_cache=%d wall_s=%.2f\n",
                res->test_acc, res->test_loss, res->nonzero, res->params, res->dense_from_cache, res->wall_s);

    int ok = finish_file(w.curves, tmp, path) && !w.curve_fail;
    if (rc == PB_OK) {
        /* per-layer sparsity */
        pb_csv_row r;
        pb_csv_row_init(&r);
        for (int i = 0; i < res->nlayers; i++) {
            const pb_layer_stat *s = &res->layers[i];
            pb_csv_str(&r, ctx->x->name);
            pb_csv_str(&r, c->hash);
            pb_csv_str(&r, s->name);
            pb_csv_int(&r, (long long)s->n);
            pb_csv_int(&r, (long long)s->nonzero);
            pb_csv_num(&r, s->n ? 1.0 - (double)s->nonzero / (double)s->n : 0);
            pb_csv_end(&r);
            r.nfields = 0;
        }
        snprintf(path, sizeof path, "%s/%s.layers", ctx->cells, c->hash);
        if (r.oom || write_atomic(path, r.s ? r.s : "", r.len, err, sizeof err) != PB_OK)
            ok = 0;
        pb_csv_row_free(&r);
    }
    pb_csv_row row;
    int rrc = cell_row(&row, ctx->x, c, rc == PB_OK ? NULL : err, rc == PB_OK ? res : NULL, ctx->build);
    snprintf(path, sizeof path, "%s/%s.row", ctx->cells, c->hash);
    if (rrc != PB_OK || !ok || write_atomic(path, row.s, row.len, err, sizeof err) != PB_OK) {
        fprintf(stderr, "cannot record the cell: %s\n", err);
        _exit(4);
    }
    _exit(rc == PB_OK ? 0 : 1);
}

/* --------------------------------------------------------- the CSV files */

static int concat_files(const run_ctx *ctx, const char *name, const char *suffix,
                        const char *const *cols, char *err, size_t errlen)
{
    char path[4400], tmp[4500], part[4400];
    snprintf(path, sizeof path, "%s/%s", ctx->dir, name);
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f)
        return pb_err(err, errlen, PB_EIO, "cannot write %s: %s", tmp, strerror(errno));
    pb_csv_header(f, cols);
    for (int i = 0; i < ctx->x->ncells; i++) {
        snprintf(part, sizeof part, "%s/%s%s", ctx->cells, ctx->x->cells[i].hash, suffix);
        size_t n;
        char *text = read_text(part, &n);
        if (text) {
            fwrite(text, 1, n, f);
            free(text);
        }
    }
    if (!finish_file(f, tmp, path))
        return pb_err(err, errlen, PB_EIO, "cannot write %s", path);
    return PB_OK;
}

/* cells.csv, curves.csv and layers.csv from the per-cell files, in matrix order:
 * a cell appears once whatever happened to earlier runs. */
static int regenerate(const run_ctx *ctx, char *err, size_t errlen)
{
    int rc = concat_files(ctx, "cells.csv", ".row", pb_csv_cells_cols, err, errlen);
    if (rc == PB_OK)
        rc = concat_files(ctx, "curves.csv", ".curves", pb_csv_curves_cols, err, errlen);
    if (rc == PB_OK)
        rc = concat_files(ctx, "layers.csv", ".layers", pb_csv_layers_cols, err, errlen);
    return rc;
}

/* ---------------------------------------------------------------- metadata */

static void git_revision(char *buf, size_t n)
{
    snprintf(buf, n, "unknown");
    char cmd[4600];
    char src[4096];
    snprintf(src, sizeof src, "%s", PB_SRC_LUADIR);
    char *slash = strrchr(src, '/');
    if (slash)
        *slash = '\0';
    if (!exists(src))
        return;
    snprintf(cmd, sizeof cmd, "git -C '%s' rev-parse HEAD 2>/dev/null", src);
    FILE *p = popen(cmd, "r");
    if (!p)
        return;
    char line[128] = "";
    if (fgets(line, sizeof line, p) && strlen(line) >= 40) {
        line[strcspn(line, "\n")] = '\0';
        snprintf(buf, n, "%s", line);
    }
    pclose(p);
    if (!strcmp(buf, "unknown"))
        return;
    snprintf(cmd, sizeof cmd, "git -C '%s' status --porcelain --untracked-files=no 2>/dev/null", src);
    if ((p = popen(cmd, "r"))) {
        if (fgets(line, sizeof line, p)) {
            size_t k = strlen(buf);
            snprintf(buf + k, n - k, "-dirty");
        }
        pclose(p);
    }
}

/* The git revision and the build (version + revision) of this run, asked of
 * git once per process: a run is one process. */
static void run_build(const char **rev, const char **build)
{
    static char r[128], b[192];
    if (!r[0]) {
        git_revision(r, sizeof r);
        snprintf(b, sizeof b, "%s+%s", PACKAGE_VERSION, r);
    }
    *rev = r;
    *build = b;
}

#define META_HEAD "# prunebench metadata: one block per run of the experiment, oldest first " \
                  "(--fresh starts the history over);\n# the script text of the latest run at the end."
#define META_SCRIPT "--- script text ---\n"

/* The value of "key: value" in text (up to the line's end), or "?" */
static void meta_value(const char *text, const char *key, char *buf, size_t n)
{
    size_t k = strlen(key);
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (!strncmp(p, key, k) && p[k] == ':' && p[k + 1] == ' ') {
            snprintf(buf, n, "%.*s", (int)strcspn(p + k + 2, "\n"), p + k + 2);
            return;
        }
    snprintf(buf, n, "?");
}

/* The earlier runs of metadata.txt as text to keep (malloc'd; NULL if none),
 * and their number. A file from before the history becomes run 1. */
static char *earlier_runs(const char *path, int *nruns)
{
    *nruns = 0;
    char *old = read_text(path, NULL);
    if (!old)
        return NULL;
    char *sep = strstr(old, META_SCRIPT);
    if (sep)
        *sep = '\0';
    size_t len = strlen(old);
    while (len && old[len - 1] == '\n')
        old[--len] = '\0';
    if (!len) {
        free(old);
        return NULL;
    }
    int k;
    for (const char *p = old; p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (sscanf(p, "run %d:", &k) == 1)
            (*nruns)++;
    if (*nruns > 0)
        return old;
    char date[64], rev[128];
    meta_value(old, "date", date, sizeof date);
    meta_value(old, "git_revision", rev, sizeof rev);
    size_t n = len + sizeof META_HEAD + 256;
    char *text = malloc(n);
    if (text)
        snprintf(text, n, "%s\n\nrun 1: %s, %s\n%s", META_HEAD, date, rev, old);
    free(old);
    *nruns = text ? 1 : 0;
    return text;
}

/* metadata.txt: the earlier runs' blocks, this run's block, the script text;
 * finished is the number of cells earlier runs had recorded. */
static int write_metadata(const run_ctx *ctx, const char *script_text, int finished, char *err, size_t errlen)
{
    char date[64], host[512];
    time_t now = time(NULL);
    struct tm tm;
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S%z", localtime_r(&now, &tm));
    struct utsname u;
    if (uname(&u) == 0)
        snprintf(host, sizeof host, "%s (%s %s %s)", u.nodename, u.sysname, u.release, u.machine);
    else
        snprintf(host, sizeof host, "unknown");
    const char *blas = openblas_get_config();
    char path[4400];
    snprintf(path, sizeof path, "%s/metadata.txt", ctx->dir);
    int nruns = 0;
    char *old = ctx->o->fresh ? NULL : earlier_runs(path, &nruns);
    size_t n = strlen(script_text) + (old ? strlen(old) : 0) + 8192;
    char *text = malloc(n);
    if (!text) {
        free(old);
        return pb_err(err, errlen, PB_ENOMEM, "out of memory");
    }
    int k = snprintf(text, n,
                     "%s\n\n"
                     "run %d: %s, %s\n"
                     "prunebench_version: %s\n"
                     "git_revision: %s\n"
                     "build: %s\n"
                     "openblas_config: %s\n"
                     "openblas_threads_per_worker: %d\n"
                     "workers: %d\n"
                     "host: %s\n"
                     "cores: %ld\n"
                     "date: %s\n"
                     "experiment: %s\n"
                     "declared_at: %s\n"
                     "cells: %d\n"
                     "cells_finished_before: %d\n"
                     "script: %s\n"
                     "\n" META_SCRIPT "%s",
                     old ? old : META_HEAD, nruns + 1, date, ctx->rev, PACKAGE_VERSION, ctx->rev, ctx->build,
                     blas ? blas : "unknown", ctx->threads, ctx->o->jobs, host, sysconf(_SC_NPROCESSORS_ONLN), date,
                     ctx->x->name, ctx->x->where, ctx->x->ncells, finished, ctx->o->script, script_text);
    free(old);
    int rc = write_atomic(path, text, (size_t)(k < (int)n ? k : (int)n - 1), err, errlen);
    if (rc == PB_OK) {
        snprintf(path, sizeof path, "%s/script.lua", ctx->dir);
        rc = write_atomic(path, script_text, strlen(script_text), err, errlen);
    }
    if (rc == PB_OK) {
        /* the charts the script asked for, for `prunebench plot` */
        size_t len = 0;
        text[0] = '\0';
        for (int i = 0; i < ctx->x->nplots; i++)
            len += (size_t)snprintf(text + len, n - len, "%s\n", ctx->x->plots[i]);
        snprintf(path, sizeof path, "%s/plots.list", ctx->dir);
        rc = write_atomic(path, text, len, err, errlen);
    }
    free(text);
    return rc;
}

/* -------------------------------------------------------------- the loop */

typedef struct slot {
    pid_t pid;
    int cell;
    int fd;
    double t0;
    char phase[32];
    int index;
    char buf[256];
    size_t blen;
} slot;

typedef struct progress {
    int tty, quiet;
    int total, done, failed, skipped;
    double t0, cost_total, cost_done;
} progress;

static void cell_desc(char *buf, size_t n, const pb_experiment *x, const pb_cell *c)
{
    snprintf(buf, n, "%s s=%g seed=%ld %s/%s", c->label, c->sparsity, c->seed, c->model, c->dataset);
    (void)x;
}

static void show_progress(const progress *p, const run_ctx *ctx, const slot *slots, int nslots)
{
    if (!p->tty || p->quiet)
        return;
    double el = pb_now() - p->t0;
    char e[32], eta[32], running[256] = "";
    fmt_duration(e, sizeof e, el);
    fmt_duration(eta, sizeof eta, p->cost_done > 0 ? el * (p->cost_total - p->cost_done) / p->cost_done : -1);
    int nrun = 0;
    for (int i = 0; i < nslots; i++) {
        if (slots[i].pid <= 0)
            continue;
        if (nrun++ == 0) {
            char d[200];
            cell_desc(d, sizeof d, ctx->x, &ctx->x->cells[slots[i].cell]);
            if (slots[i].phase[0])
                snprintf(running, sizeof running, "%s (%s %d)", d, slots[i].phase, slots[i].index);
            else
                snprintf(running, sizeof running, "%s", d);
        }
    }
    if (nrun > 1) {
        size_t k = strlen(running);
        snprintf(running + k, sizeof running - k, " +%d", nrun - 1);
    }
    char line[512];
    snprintf(line, sizeof line, "[%d/%d done, %d failed] %s | %s elapsed, ETA %s", p->done + p->skipped,
             p->total, p->failed, running, e, eta);
    struct winsize ws;
    int cols = ioctl(2, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 20 ? ws.ws_col - 1 : 159;
    fprintf(stderr, "\r\033[K%.*s", cols, line);
    fflush(stderr);
}

static void log_line(const progress *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void log_line(const progress *p, const char *fmt, ...)
{
    if (p->quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    if (p->tty)
        fprintf(stderr, "\r\033[K");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static int spawn(run_ctx *ctx, slot *s, int cell, char *err, size_t errlen)
{
    int pfd[2];
    if (pipe(pfd) != 0)
        return pb_err(err, errlen, PB_EIO, "pipe: %s", strerror(errno));
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        close(pfd[0]);
        close(pfd[1]);
        return pb_err(err, errlen, PB_EIO, "fork: %s", strerror(errno));
    }
    if (pid == 0) {
        close(pfd[0]);
        signal(SIGPIPE, SIG_IGN);
        worker(ctx, &ctx->x->cells[cell], pfd[1]);
    }
    close(pfd[1]);
    fcntl(pfd[0], F_SETFL, O_NONBLOCK);
    memset(s, 0, sizeof *s);
    s->pid = pid;
    s->cell = cell;
    s->fd = pfd[0];
    s->t0 = pb_now();
    return PB_OK;
}

static void drain(slot *s)
{
    for (;;) {
        ssize_t k = read(s->fd, s->buf + s->blen, sizeof s->buf - 1 - s->blen);
        if (k <= 0)
            break;
        s->blen += (size_t)k;
        s->buf[s->blen] = '\0';
        char *nl;
        while ((nl = strchr(s->buf, '\n'))) {
            *nl = '\0';
            char phase[32];
            int idx;
            if (sscanf(s->buf, "%31s %d", phase, &idx) == 2) {
                snprintf(s->phase, sizeof s->phase, "%s", phase);
                s->index = idx;
            }
            size_t rest = s->blen - (size_t)(nl + 1 - s->buf);
            memmove(s->buf, nl + 1, rest + 1);
            s->blen = rest;
        }
        if (s->blen >= sizeof s->buf - 1)
            s->blen = 0;
    }
}

/* The row file of a finished cell: its status, reason and accuracy. */
static int read_row_status(const char *path, char *status, size_t sn, char *reason, size_t rn, double *acc)
{
    char *text = read_text(path, NULL);
    if (!text)
        return -1;
    char *fields[64];
    int nf = pb_csv_split(text, fields, 64);
    int rc = nf >= 11 ? 0 : -1;
    if (rc == 0) {
        snprintf(status, sn, "%s", fields[8]);
        snprintf(reason, rn, "%s", fields[9]);
        *acc = fields[10][0] ? strtod(fields[10], NULL) : NAN;
    }
    free(text);
    return rc;
}

static void last_log_line(const run_ctx *ctx, const pb_cell *c, char *buf, size_t n)
{
    char path[4400];
    snprintf(path, sizeof path, "%s/%s.log", ctx->cells, c->hash);
    buf[0] = '\0';
    char *text = read_text(path, NULL);
    if (!text)
        return;
    size_t len = strlen(text);
    while (len && text[len - 1] == '\n')
        text[--len] = '\0';
    char *last = strrchr(text, '\n');
    snprintf(buf, n, "%s", last ? last + 1 : text);
    free(text);
}

static int reap(run_ctx *ctx, slot *s, int status, progress *p, const double *cost, char *err, size_t errlen)
{
    const pb_cell *c = &ctx->x->cells[s->cell];
    char path[4400], desc[256], st[16] = "", reason[PB_ERRLEN] = "";
    double acc = NAN;
    snprintf(path, sizeof path, "%s/%s.row", ctx->cells, c->hash);
    cell_desc(desc, sizeof desc, ctx->x, c);
    drain(s);
    close(s->fd);
    int have_row = read_row_status(path, st, sizeof st, reason, sizeof reason, &acc) == 0;
    if (!have_row) {
        /* the worker died before recording: the runner records the failure */
        char why[PB_ERRLEN], last[256];
        last_log_line(ctx, c, last, sizeof last);
        if (WIFSIGNALED(status))
            snprintf(why, sizeof why, "worker killed by %s%s%.200s", signal_name(WTERMSIG(status)),
                     last[0] ? "; last log line: " : "", last);
        else
            snprintf(why, sizeof why, "worker exited with status %d without a result%s%.200s",
                     WIFEXITED(status) ? WEXITSTATUS(status) : -1, last[0] ? "; last log line: " : "", last);
        pb_csv_row row;
        int rc = cell_row(&row, ctx->x, c, why, NULL, ctx->build);
        if (rc == PB_OK)
            rc = write_atomic(path, row.s, row.len, err, errlen);
        pb_csv_row_free(&row);
        if (rc != PB_OK)
            return rc;
        snprintf(st, sizeof st, "failed");
        snprintf(reason, sizeof reason, "%s", why);
    }
    p->done++;
    p->cost_done += cost[s->cell];
    if (strcmp(st, "ok")) {
        p->failed++;
        log_line(p, "[%d/%d] %s: FAILED: %s", p->done + p->skipped, p->total, desc, reason);
    } else {
        log_line(p, "[%d/%d] %s: test_acc=%.4f (%.1f s)", p->done + p->skipped, p->total, desc, acc,
                 pb_now() - s->t0);
    }
    s->pid = 0;
    return regenerate(ctx, err, errlen);
}

static int cell_finished(const run_ctx *ctx, const pb_cell *c, int retry_failed)
{
    char path[4400];
    snprintf(path, sizeof path, "%s/%s.row", ctx->cells, c->hash);
    if (!exists(path))
        return 0;
    if (!retry_failed)
        return 1;
    char st[16] = "", reason[PB_ERRLEN];
    double acc;
    if (read_row_status(path, st, sizeof st, reason, sizeof reason, &acc) != 0)
        return 0;
    return !strcmp(st, "ok");
}

int pb_run_experiment(const pb_run_opts *o, const pb_experiment *x, const char *script_text,
                      pb_run_summary *sum, char *err, size_t errlen)
{
    memset(sum, 0, sizeof *sum);
    run_ctx *ctx = calloc(1, sizeof *ctx);
    int *state = calloc((size_t)x->ncells, sizeof(int)); /* 0 pending, 1 running, 2 finished */
    double *cost = calloc((size_t)x->ncells, sizeof(double));
    int *needs = calloc((size_t)x->ncells, sizeof(int));
    if (!ctx || !state || !cost || !needs) {
        free(ctx), free(state), free(cost), free(needs);
        return pb_err(err, errlen, PB_ENOMEM, "out of memory");
    }
    ctx->o = o;
    ctx->x = x;
    ctx->parent = getpid();
    run_build(&ctx->rev, &ctx->build);
    snprintf(ctx->dir, sizeof ctx->dir, "%s/%s", o->out_dir, x->name);
    snprintf(ctx->cells, sizeof ctx->cells, "%s/cells", ctx->dir);
    snprintf(ctx->dense, sizeof ctx->dense, "%s/dense", ctx->dir);
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int jobs = o->jobs > 0 ? o->jobs : 1;
    ctx->threads = o->threads > 0 ? o->threads : (int)(ncpu / jobs > 0 ? ncpu / jobs : 1);
    sum->total = x->ncells;

    int rc = PB_OK, lockfd = -1;
    slot slots[MAX_JOBS];
    memset(slots, 0, sizeof slots);
    progress p = {.tty = isatty(2), .quiet = o->quiet, .total = x->ncells, .t0 = pb_now()};

    /* costs: each dense model once, by the first cell that needs it */
    double total_cost = 0;
    for (int i = 0; i < x->ncells; i++) {
        const pb_cell *c = &x->cells[i];
        cost[i] = pb_run_cell_cost(c, &needs[i]);
        if (needs[i]) {
            int first = 1;
            for (int k = 0; k < i && first; k++)
                if (needs[k] && !strcmp(x->cells[k].dense_key, c->dense_key))
                    first = 0;
            if (first)
                cost[i] += c->train_flops_ex * c->ntrain * c->train.epochs;
        }
        total_cost += cost[i];
    }

    if (o->dry_run) {
        printf("experiment %s (%s): %d cells -> %s\n", x->name, x->where, x->ncells, ctx->dir);
        printf("%-16s %-14s %-13s %-18s %8s %5s %6s %6s %10s  %s\n", "cell", "model", "dataset", "label",
               "sparsity", "seed", "epochs", "ft_ep", "train_TFLOP", "args");
        for (int i = 0; i < x->ncells; i++) {
            const pb_cell *c = &x->cells[i];
            char path[4400];
            snprintf(path, sizeof path, "%s/%s.row", ctx->cells, c->hash);
            printf("%-16s %-14s %-13s %-18s %8g %5ld %6d %6d %10.4f  %s%s\n", c->hash, c->model, c->dataset,
                   c->label, c->sparsity, c->seed, c->train.epochs, c->finetune.epochs, cost[i] / 1e12,
                   c->args_joined ? c->args_joined : "", exists(path) && !o->fresh ? " (done)" : "");
        }
        double peak = sgemm_gflops(), rate = EST_SGEMM_FRACTION * peak;
        double secs = total_cost / (rate * 1e9 * jobs);
        char d[32];
        fmt_duration(d, sizeof d, secs);
        printf("estimated training cost: %.3f TFLOP (each dense model counted once); about %s with -j %d "
               "at %.0f GFLOP/s per worker (%.0f%% of the %.0f GFLOP/s one-thread SGEMM measured now)\n",
               total_cost / 1e12, d, jobs, rate, 100 * EST_SGEMM_FRACTION, peak);
        goto done;
    }

    /* the output directory, before anything trains */
    if ((rc = mkdirs(ctx->cells, err, errlen)) != PB_OK || (rc = mkdirs(ctx->dense, err, errlen)) != PB_OK)
        goto done;
    {
        char lock[4400];
        snprintf(lock, sizeof lock, "%s/.lock", ctx->dir);
        lockfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
        if (lockfd < 0) {
            rc = pb_err(err, errlen, PB_EIO, "cannot write to %s: %s", ctx->dir, strerror(errno));
            goto done;
        }
        if (flock(lockfd, LOCK_EX | LOCK_NB) != 0) {
            rc = pb_err(err, errlen, PB_EUSAGE, "another prunebench run is using %s", ctx->dir);
            goto done;
        }
    }
    if (o->fresh) {
        clean_dir(ctx->cells, 0);
        clean_dir(ctx->dense, 0);
    } else {
        clean_dir(ctx->cells, 1); /* temporary files of workers killed mid-write */
        clean_dir(ctx->dense, 1);
    }
    for (int i = 0; i < x->ncells; i++)
        if (cell_finished(ctx, &x->cells[i], o->retry_failed)) {
            state[i] = 2;
            sum->skipped++;
            total_cost -= cost[i];
        }
    if ((rc = write_metadata(ctx, script_text, sum->skipped, err, errlen)) != PB_OK)
        goto done;
    p.skipped = sum->skipped;
    p.cost_total = total_cost;
    if (sum->skipped && !o->quiet)
        fprintf(stderr, "prunebench: %s: %d of %d cells already finished (resuming; --fresh starts over)\n",
                x->name, sum->skipped, x->ncells);
    if (jobs > MAX_JOBS)
        jobs = MAX_JOBS;

    for (;;) {
        /* start what may start: a cell that needs a dense model nobody has
         * written yet waits while another cell is training that same model */
        int running = 0;
        for (int k = 0; k < jobs; k++)
            running += slots[k].pid > 0;
        for (int i = 0; i < x->ncells && running < jobs && rc == PB_OK; i++) {
            if (state[i] != 0)
                continue;
            if (needs[i]) {
                char path[4400];
                snprintf(path, sizeof path, "%s/%s.pb", ctx->dense, x->cells[i].dense_key);
                int blocked = 0;
                if (!exists(path))
                    for (int k = 0; k < jobs; k++)
                        if (slots[k].pid > 0 && needs[slots[k].cell] &&
                            !strcmp(x->cells[slots[k].cell].dense_key, x->cells[i].dense_key))
                            blocked = 1;
                if (blocked)
                    continue;
            }
            int k = 0;
            while (slots[k].pid > 0)
                k++;
            if ((rc = spawn(ctx, &slots[k], i, err, errlen)) != PB_OK)
                break;
            state[i] = 1;
            running++;
        }
        if (running == 0 || rc != PB_OK)
            break;
        show_progress(&p, ctx, slots, jobs);

        struct pollfd pfds[MAX_JOBS];
        int np = 0;
        for (int k = 0; k < jobs; k++)
            if (slots[k].pid > 0)
                pfds[np++] = (struct pollfd){.fd = slots[k].fd, .events = POLLIN};
        poll(pfds, (nfds_t)np, 500);
        for (int k = 0; k < jobs; k++)
            if (slots[k].pid > 0)
                drain(&slots[k]);
        int status;
        pid_t pid;
        while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
            for (int k = 0; k < jobs; k++)
                if (slots[k].pid == pid) {
                    state[slots[k].cell] = 2;
                    sum->ran++;
                    int r2 = reap(ctx, &slots[k], status, &p, cost, err, errlen);
                    if (r2 != PB_OK && rc == PB_OK)
                        rc = r2;
                }
        }
    }
    /* on an error of the runner itself, stop the workers it started */
    for (int k = 0; k < jobs; k++)
        if (slots[k].pid > 0) {
            kill(slots[k].pid, SIGKILL);
            waitpid(slots[k].pid, NULL, 0);
            close(slots[k].fd);
        }
    if (p.tty && !o->quiet)
        fprintf(stderr, "\r\033[K");
    sum->failed = 0;
    {
        char e2[PB_ERRLEN];
        int r2 = regenerate(ctx, e2, sizeof e2);
        if (r2 != PB_OK && rc == PB_OK) {
            rc = r2;
            snprintf(err, errlen, "%s", e2);
        }
    }
    for (int i = 0; i < x->ncells; i++) {
        char path[4400], st[16] = "", reason[PB_ERRLEN];
        double acc;
        snprintf(path, sizeof path, "%s/%s.row", ctx->cells, x->cells[i].hash);
        if (read_row_status(path, st, sizeof st, reason, sizeof reason, &acc) == 0 && strcmp(st, "ok"))
            sum->failed++;
    }
    if (rc == PB_OK && !o->no_plot) {
        char e2[PB_ERRLEN];
        int prc = pb_plot_dir(ctx->dir, !o->quiet, e2, sizeof e2);
        if (prc != PB_OK && !o->quiet)
            fprintf(stderr, "prunebench: charts: %s\n", e2);
    }
done:
    if (lockfd >= 0)
        close(lockfd);
    free(ctx);
    free(state);
    free(cost);
    free(needs);
    return rc;
}

/* -------------------------------------------------------------- commands */

static void run_usage(FILE *f)
{
    fprintf(f,
            "usage: prunebench run SCRIPT.lua [-j N] [--out DIR] [--fresh] [--dry-run] [--plugin-path DIR]\n\n"
            "Runs the experiment matrix a Lua script declares (see lua/prelude.lua and README.md),\n"
            "one worker process per cell, and writes DIR/<experiment>/cells.csv, curves.csv,\n"
            "layers.csv, metadata.txt and charts under plots/. Finished cells are kept: running\n"
            "the script again resumes.\n\n"
            "options:\n"
            "  -j, --jobs N          worker processes (default 1)\n"
            "  -o, --out DIR         results directory (default results)\n"
            "      --fresh           discard earlier results and cached dense models of the experiment\n"
            "      --retry-failed    run failed cells again\n"
            "  -n, --dry-run         print the expanded cells and a cost estimate; train nothing\n"
            "      --plugin-path DIR look for method plugins in DIR first\n"
            "      --data-dir DIR    data directory (default $PRUNEBENCH_DATA or the Debian path)\n"
            "  -t, --threads T       threads per worker (default: cores / jobs)\n"
            "      --no-plot         do not draw charts at the end\n"
            "  -q, --quiet           no progress or log lines\n"
            "  -h, --help            this help\n\n"
            "Exit status: 0 all cells ok, 1 some cells failed or the run could not finish,\n"
            "2 bad arguments or a script error (nothing trained).\n");
}

int pb_cmd_run(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"jobs", required_argument, 0, 'j'},     {"out", required_argument, 0, 'o'},
        {"fresh", no_argument, 0, 1001},          {"dry-run", no_argument, 0, 'n'},
        {"plugin-path", required_argument, 0, 1002}, {"data-dir", required_argument, 0, 1003},
        {"threads", required_argument, 0, 't'},  {"retry-failed", no_argument, 0, 1004},
        {"no-plot", no_argument, 0, 1005},        {"quiet", no_argument, 0, 'q'},
        {"help", no_argument, 0, 'h'},            {0, 0, 0, 0}};
    pb_run_opts o = {.out_dir = "results", .jobs = 1};
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "j:o:nt:qh", longopts, NULL)) != -1) {
        char *end;
        switch (opt) {
        case 'j':
            o.jobs = (int)strtol(optarg, &end, 10);
            if (*end || o.jobs < 1 || o.jobs > MAX_JOBS) {
                fprintf(stderr, "prunebench run: -j: '%s' is not an integer in [1, %d]\n", optarg, MAX_JOBS);
                return 2;
            }
            break;
        case 't':
            o.threads = (int)strtol(optarg, &end, 10);
            if (*end || o.threads < 1 || o.threads > 256) {
                fprintf(stderr, "prunebench run: --threads: '%s' is not an integer in [1, 256]\n", optarg);
                return 2;
            }
            break;
        case 'o': o.out_dir = optarg; break;
        case 1001: o.fresh = 1; break;
        case 'n': o.dry_run = 1; break;
        case 1002: o.plugin_path = optarg; break;
        case 1003: o.data_dir = optarg; break;
        case 1004: o.retry_failed = 1; break;
        case 1005: o.no_plot = 1; break;
        case 'q': o.quiet = 1; break;
        case 'h': run_usage(stdout); return 0;
        default: run_usage(stderr); return 2;
        }
    }
    if (optind != argc - 1) {
        run_usage(stderr);
        return 2;
    }
    o.script = argv[optind];
    char err[PB_ERRLEN] = "";
    size_t n;
    char *text = read_text(o.script, &n);
    if (!text) {
        fprintf(stderr, "prunebench run: cannot read %s: %s\n", o.script, strerror(errno));
        return 2;
    }
    pb_lua *L = NULL;
    pb_experiment *exps = NULL;
    int nexp = 0;
    int rc = pb_lua_open(&L, o.plugin_path, o.data_dir, err, sizeof err);
    if (rc == PB_OK)
        rc = pb_lua_run(L, o.script, &exps, &nexp, err, sizeof err);
    if (rc != PB_OK) {
        fprintf(stderr, "%s\n", err);
        free(text);
        pb_lua_close(L);
        return rc == PB_EUSAGE ? 2 : 1;
    }
    /* an unwritable output directory is reported before anything trains */
    if (!o.dry_run) {
        for (int e = 0; e < nexp && rc == PB_OK; e++) {
            char dir[4096], probe[4200];
            snprintf(dir, sizeof dir, "%s/%s", o.out_dir, exps[e].name);
            if ((rc = mkdirs(dir, err, sizeof err)) == PB_OK) {
                snprintf(probe, sizeof probe, "%s/.probe.%ld", dir, (long)getpid());
                int fd = open(probe, O_WRONLY | O_CREAT | O_TRUNC, 0666);
                if (fd < 0)
                    rc = pb_err(err, sizeof err, PB_EIO, "cannot write to %s: %s", dir, strerror(errno));
                else {
                    close(fd);
                    unlink(probe);
                }
            }
        }
    }
    int any_failed = 0;
    for (int e = 0; e < nexp && rc == PB_OK; e++) {
        pb_run_summary sum;
        rc = pb_run_experiment(&o, &exps[e], text, &sum, err, sizeof err);
        if (rc != PB_OK || o.dry_run)
            continue;
        any_failed |= sum.failed > 0;
        if (!o.quiet) {
            char dir[4096];
            snprintf(dir, sizeof dir, "%s/%s", o.out_dir, exps[e].name);
            printf("experiment %s: %d cells (%d run now, %d from earlier runs), %d failed\n", exps[e].name,
                   sum.total, sum.ran, sum.skipped, sum.failed);
            printf("  results: %s/cells.csv  %s/curves.csv  %s/layers.csv\n", dir, dir, dir);
            printf("  charts:  %s/plots/*.png (and .svg; .gp scripts beside them)\n", dir);
            printf("  about the run: %s/metadata.txt\n", dir);
        }
    }
    if (rc != PB_OK)
        fprintf(stderr, "prunebench run: %s\n", err);
    pb_cell_free_experiments(exps, nexp);
    pb_lua_close(L);
    free(text);
    if (rc != PB_OK)
        return rc == PB_EUSAGE ? 2 : 1;
    return any_failed ? 1 : 0;
}

static void plot_usage(FILE *f)
{
    fprintf(f, "usage: prunebench plot DIR\n\n"
               "Regenerates every chart of a results directory (results/<experiment>) from its\n"
               "cells.csv, curves.csv and layers.csv alone: DIR/plots/NAME.{png,svg} with the\n"
               "gnuplot script NAME.gp and its data NAME.dat beside each.\n");
}

int pb_cmd_plot(int argc, char **argv)
{
    if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        plot_usage(stdout);
        return 0;
    }
    if (argc != 2 || argv[1][0] == '-') {
        plot_usage(stderr);
        return 2;
    }
    char err[PB_ERRLEN];
    int rc = pb_plot_dir(argv[1], 1, err, sizeof err);
    if (rc != PB_OK) {
        fprintf(stderr, "prunebench plot: %s\n", err);
        return rc == PB_EUSAGE ? 2 : 1;
    }
    return 0;
}
