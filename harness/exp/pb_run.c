/* pb_run: the scheduler of an experiment's cells. */
#include "pb_run.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine/pb_ckpt.h"
#include "engine/pb_file.h"
#include "pb_cost.h"
#include "pb_csv.h"
#include "pb_plot.h"
#include "pb_shard.h"
#include "pb_store.h"

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

/* ------------------------------------------------------------ stopping */

/* SIGINT or SIGTERM: the runner stops its workers, leaves their cells to the
 * next run (they are not recorded as failed), removes their temporary files,
 * regenerates the merged files from the finished cells and returns. A second
 * signal of the same kind ends the runner at once (the handler is reset). */
static volatile sig_atomic_t stop_signal;

static void on_stop(int sig)
{
    stop_signal = sig;
}

static void catch_stop_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sa.sa_flags = SA_RESETHAND; /* no SA_RESTART: poll() and nanosleep() return at once */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

int pb_run_stop_signal(void)
{
    return stop_signal;
}

/* Each worker leads its own process group, so stopping it also stops what a
 * plugin started, and a terminal's ^C reaches the runner alone. */
static void stop_worker(pid_t pid)
{
    if (kill(-pid, SIGKILL) != 0)
        kill(pid, SIGKILL);
}

/* ---------------------------------------------------------------- workers */

typedef struct run_ctx {
    const pb_run_opts *o;
    const pb_experiment *x;
    pb_store store;
    int threads;
    pid_t parent;
    pb_shard shard;            /* count 0: the whole matrix */
    pb_lock own;               /* sharded: the shard's lock */
    pb_lock *dlocks;           /* sharded: each cached model's lock, at the index of its first cell */
    int *keyof;                /* sharded: the first cell with the same dense key */
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
    if (pb_store_curve_row(&r, w->x, w->c, rec) == PB_OK && w->curves)
        fputs(r.s, w->curves);
    else
        w->curve_fail = 1;
    pb_csv_row_free(&r);
    char msg[96];
    int n = snprintf(msg, sizeof msg, "%s %d %.4f\n", rec->phase, rec->index, rec->test_acc);
    if (w->fd >= 0 && write(w->fd, msg, (size_t)n) < 0)
        w->fd = -1; /* the runner went away; PDEATHSIG ends us */
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
    const pb_store *st = &ctx->store;
    pb_store_cell_path(st, c, ".log", path, sizeof path);
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
    char cerr[PB_ERRLEN] = "";
    pb_store_cell_path(st, c, ".curves", path, sizeof path);
    w.curves = pb_store_open_tmp(path, tmp, sizeof tmp, cerr, sizeof cerr);
    if (!w.curves)
        fprintf(stderr, "%s\n", cerr);

    pb_job j;
    pb_cell_job(c, &j);
    pb_store_dense_path(st, c, dense, sizeof dense);
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

    /* the reason of a failed cell stays in err: a failed write must not replace
     * it; what went wrong with the files goes to cerr */
    int ok = w.curves && pb_store_commit(w.curves, tmp, path, cerr, sizeof cerr) == PB_OK;
    if (ok && w.curve_fail)
        ok = !pb_err(cerr, sizeof cerr, PB_ENOMEM, "out of memory while writing %s", path);
    if (rc == PB_OK && ok) {
        pb_csv_row r;
        pb_store_cell_path(st, c, ".layers", path, sizeof path);
        if (pb_store_layer_rows(&r, ctx->x, c, res) != PB_OK ||
            pb_store_write_atomic(path, r.s ? r.s : "", r.len, cerr, sizeof cerr) != PB_OK)
            ok = 0;
        pb_csv_row_free(&r);
        pb_store_cell_path(st, c, ".metrics", path, sizeof path);
        if (ok && (pb_store_metric_rows(&r, ctx->x, c, res) != PB_OK ||
                   pb_store_write_atomic(path, r.s ? r.s : "", r.len, cerr, sizeof cerr) != PB_OK))
            ok = 0;
        pb_csv_row_free(&r);
    }
    pb_csv_row row;
    int rrc = pb_store_cell_row(&row, ctx->x, c, rc == PB_OK ? NULL : err, rc == PB_OK ? res : NULL, st->build);
    pb_store_cell_path(st, c, ".row", path, sizeof path);
    if (rrc != PB_OK && ok)
        ok = !pb_err(cerr, sizeof cerr, PB_ENOMEM, "out of memory while writing %s", path);
    if (!ok || pb_store_write_atomic(path, row.s, row.len, cerr, sizeof cerr) != PB_OK) {
        fprintf(stderr, "cannot record the cell: %s\n", cerr);
        _exit(4);
    }
    _exit(rc == PB_OK ? 0 : 1);
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
    int dlock;     /* the index in dlocks of the lock the runner holds for this worker, -1: none */
    double limit;  /* the cell's time limit in seconds, 0: none */
    int timed_out; /* the runner killed the worker at its limit */
} slot;

typedef struct progress {
    int tty, quiet;
    int total, done, failed, skipped;
    double t0, cost_total, cost_done;
} progress;

static void cell_desc(char *buf, size_t n, const pb_experiment *x, const pb_cell *c)
{
    snprintf(buf, n, "%s s=%g seed=%ld %s/%s%s%s", c->label, c->sparsity, c->seed, c->model, c->dataset,
             c->data ? " data=" : "", c->data ? c->data_label : "");
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
        setpgid(0, 0);
        close(pfd[0]);
        signal(SIGPIPE, SIG_IGN);
        /* the runner decides what an interruption does to a cell: a ^C sent
         * to the runner's process group does not stop the cell, the runner does */
        signal(SIGINT, SIG_IGN);
        signal(SIGTERM, SIG_DFL);
        worker(ctx, &ctx->x->cells[cell], pfd[1]);
    }
    setpgid(pid, pid); /* as the child does: whichever runs first */
    close(pfd[1]);
    fcntl(pfd[0], F_SETFL, O_NONBLOCK);
    memset(s, 0, sizeof *s);
    s->dlock = -1;
    s->pid = pid;
    s->cell = cell;
    s->fd = pfd[0];
    s->t0 = pb_now();
    s->limit = ctx->o->timeout >= 0 ? ctx->o->timeout : ctx->x->cells[cell].timeout_s;
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

static int reap(run_ctx *ctx, slot *s, int status, progress *p, const double *cost, char *err, size_t errlen)
{
    const pb_cell *c = &ctx->x->cells[s->cell];
    char path[4400], desc[256], st[16] = "", reason[PB_ERRLEN] = "";
    double acc = NAN;
    if (s->dlock >= 0) {
        pb_lock_release(&ctx->dlocks[s->dlock]);
        s->dlock = -1;
    }
    pb_store_cell_path(&ctx->store, c, ".row", path, sizeof path);
    cell_desc(desc, sizeof desc, ctx->x, c);
    drain(s);
    close(s->fd);
    int have_row = pb_store_row_status(&ctx->store, c, st, sizeof st, reason, sizeof reason, &acc) == PB_OK;
    if (!have_row && (s->timed_out || stop_signal))
        pb_store_clean_worker(&ctx->store, c, (long)s->pid);
    if (!have_row && stop_signal && !s->timed_out) {
        /* stopped with the runner: not a result, the next run runs it */
        s->pid = 0;
        return PB_OK;
    }
    if (!have_row) {
        /* the worker died before recording: the runner records the failure */
        char why[PB_ERRLEN], last[256];
        pb_store_last_log_line(&ctx->store, c, last, sizeof last);
        if (s->timed_out)
            snprintf(why, sizeof why, "timeout after %g s%s%.200s", s->limit, last[0] ? "; last log line: " : "",
                     last);
        else if (WIFSIGNALED(status))
            snprintf(why, sizeof why, "worker killed by %s%s%.200s", signal_name(WTERMSIG(status)),
                     last[0] ? "; last log line: " : "", last);
        else
            snprintf(why, sizeof why, "worker exited with status %d without a result%s%.200s",
                     WIFEXITED(status) ? WEXITSTATUS(status) : -1, last[0] ? "; last log line: " : "", last);
        pb_csv_row row;
        int rc = pb_store_cell_row(&row, ctx->x, c, why, NULL, ctx->store.build);
        if (rc == PB_OK)
            rc = pb_store_write_atomic(path, row.s, row.len, err, errlen);
        pb_csv_row_free(&row);
        if (rc != PB_OK) {
            char e2[PB_ERRLEN];
            snprintf(e2, sizeof e2, "%s", err);
            return pb_err(err, errlen, rc, "%s (the cell %s could not be recorded); the cells finished so far "
                          "are kept: run the same command again to resume", e2, desc);
        }
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
    /* shards regenerate when no other shard is at it; each one's last regeneration waits */
    if (ctx->shard.count)
        return pb_shard_regenerate(&ctx->store, 0, err, errlen);
    return pb_store_regenerate(&ctx->store, err, errlen);
}

/* Sharded: keeps the runner's locks alive. A worker whose cached model's lock
 * another runner took (it judged this one dead) is stopped and its cell waits
 * again, so two runners never make one model at once. */
static int heartbeat(run_ctx *ctx, slot *slots, int nslots, int *state, const progress *p, char *err,
                     size_t errlen)
{
    if (!pb_lock_refresh(&ctx->own))
        return pb_err(err, errlen, PB_EIO, "lost the lock of shard %d/%d (%s) to another runner: stopping",
                      ctx->shard.index, ctx->shard.count, ctx->own.path);
    for (int k = 0; k < nslots; k++) {
        slot *s = &slots[k];
        if (s->pid <= 0 || s->dlock < 0 || pb_lock_refresh(&ctx->dlocks[s->dlock]))
            continue;
        const pb_cell *c = &ctx->x->cells[s->cell];
        stop_worker(s->pid);
        waitpid(s->pid, NULL, 0);
        close(s->fd);
        pb_store_clean_worker(&ctx->store, c, (long)s->pid);
        log_line(p, "another runner took the lock of dense/%s.pb: stopped the cell making it, which waits",
                 c->dense_key);
        state[s->cell] = pb_shard_mine(&ctx->shard, c) ? 0 : 3;
        s->pid = 0;
        s->dlock = -1;
    }
    return PB_OK;
}

static int cell_finished(const run_ctx *ctx, const pb_cell *c, int retry_failed)
{
    char why[PB_ERRLEN];
    int k = pb_store_cell_check(&ctx->store, c, why, sizeof why);
    return k == PB_STORE_CELL_OK || (k == PB_STORE_CELL_FAILED && !retry_failed);
}

/* Unsharded: each cached model a pending cell will read is loaded once; a
 * damaged one (checksum, truncation, not a regular file) is said so and
 * removed with its cost record and kept models, and the first cell that needs
 * it makes it again (the cells after it wait for it, as for a new model).
 * Sharded runs leave this to the worker (pb_job), since another shard may be
 * reading the file. */
static void check_caches(const run_ctx *ctx, const int *state, const int *needs)
{
    const pb_experiment *x = ctx->x;
    for (int i = 0; i < x->ncells; i++) {
        if (!needs[i] || state[i] != 0)
            continue;
        int seen = 0;
        for (int k = 0; k < i && !seen; k++)
            seen = needs[k] && state[k] == 0 && !strcmp(x->cells[k].dense_key, x->cells[i].dense_key);
        char path[4400], why[PB_ERRLEN];
        pb_store_dense_path(&ctx->store, &x->cells[i], path, sizeof path);
        if (seen || !pb_store_exists(path))
            continue;
        pb_model m;
        if (!pb_file_is_regular(path))
            snprintf(why, sizeof why, "not a regular file");
        else if (pb_ckpt_load(&m, path, 1, why, sizeof why) == PB_OK) {
            pb_model_free(&m);
            continue;
        }
        fprintf(stderr, "prunebench: %s: the cached model dense/%s.pb is damaged (%s): removing it; the first "
                        "cell that needs it makes it again\n", x->name, x->cells[i].dense_key, why);
        char prefix[64];
        snprintf(prefix, sizeof prefix, "%s.pb", x->cells[i].dense_key);
        pb_store_remove_dense(&ctx->store, prefix);
    }
}

/* The first cell of the matrix that needs cell i's cached model and has not
 * run: in an unsharded run it makes the model, so it does when sharded too. */
static int maker(const run_ctx *ctx, const int *state, const int *needs, int i)
{
    for (int k = 0; k < ctx->x->ncells; k++) {
        if (!needs[k] || ctx->keyof[k] != ctx->keyof[i])
            continue;
        if (state[k] == 0 && !cell_finished(ctx, &ctx->x->cells[k], ctx->o->retry_failed))
            return k;
        char path[4400];
        pb_store_cell_path(&ctx->store, &ctx->x->cells[k], ".row", path, sizeof path);
        if (state[k] == 3 && !pb_store_exists(path))
            return k;
    }
    return i;
}

/* Sharded: what may start for pending cell i, which needs the cached model
 * `model`: *run is the cell to start (-1: none, wait) and *lock the index in
 * dlocks of the model's lock the runner now holds for it (-1: none).
 *   - The model exists: i starts, unless another runner holds the model's lock
 *     for i itself (it is running i, the cell that made the model).
 *   - It does not: the runner that gets its lock starts the first cell of the
 *     matrix that needs it (maker), whichever shard's it is; the others wait. */
static int shard_pick(run_ctx *ctx, const int *state, const int *needs, int i, const char *model, int *run,
                      int *lock, char *err, size_t errlen)
{
    const pb_cell *c = &ctx->x->cells[i];
    const int key = ctx->keyof[i];
    pb_lock *l = &ctx->dlocks[key];
    char path[4400], note[64];
    int got = 0, rc;
    *run = -1;
    *lock = -1;
    pb_shard_dense_lock_path(&ctx->store, c, path, sizeof path);
    if (pb_store_exists(model)) {
        if (!pb_lock_note(path, note, sizeof note) || strcmp(note, c->hash)) {
            *run = i;
            return PB_OK;
        }
        snprintf(l->note, sizeof l->note, "%s", c->hash);
        if ((rc = pb_lock_try(l, path, &got, err, errlen)) != PB_OK || !got)
            return rc;
        if (!cell_finished(ctx, c, ctx->o->retry_failed)) { /* its runner died before recording it */
            *run = i;
            *lock = key;
        } else {
            pb_lock_release(l);
        }
        return PB_OK;
    }
    int m = maker(ctx, state, needs, i);
    snprintf(l->note, sizeof l->note, "%s", ctx->x->cells[m].hash);
    if ((rc = pb_lock_try(l, path, &got, err, errlen)) != PB_OK || !got)
        return rc;
    /* under the lock no other runner starts a maker: look again */
    if (pb_store_exists(model) || maker(ctx, state, needs, i) != m) {
        pb_lock_release(l);
        return PB_OK;
    }
    if (l->took_over)
        fprintf(stderr, "prunebench: dense/%s.pb: taking over from %s, which is dead\n", c->dense_key, l->owner);
    pb_shard_clean_dense(&ctx->store, c);
    *run = m;
    *lock = key;
    return PB_OK;
}

/* The lines a shard adds to its metadata block (and the Slurm job of any run). */
static void run_extra(const run_ctx *ctx, int mine, char *buf, size_t n)
{
    size_t k = 0;
    buf[0] = '\0';
    if (ctx->shard.count)
        k += (size_t)snprintf(buf, n, "shard: %d/%d (%d of %d cells)\n", ctx->shard.index, ctx->shard.count, mine,
                              ctx->x->ncells);
    const char *job = getenv("SLURM_JOB_ID"), *ajob = getenv("SLURM_ARRAY_JOB_ID"),
               *task = getenv("SLURM_ARRAY_TASK_ID");
    if (ajob && task && k < n)
        snprintf(buf + k, n - k, "slurm_job: %s_%s (job %s)\n", ajob, task, job ? job : "?");
    else if (job && k < n)
        snprintf(buf + k, n - k, "slurm_job: %s\n", job);
}

/* --merge-only: the merged CSV files and charts from whatever the shards recorded. */
static int merge(run_ctx *ctx, pb_run_summary *sum, char *err, size_t errlen)
{
    int rc = pb_shard_regenerate(&ctx->store, 1, err, errlen);
    if (rc != PB_OK)
        return rc;
    for (int i = 0; i < ctx->x->ncells; i++) {
        char st[16] = "", reason[PB_ERRLEN];
        double acc;
        if (pb_store_cell_check(&ctx->store, &ctx->x->cells[i], reason, sizeof reason) == PB_STORE_CELL_DAMAGED &&
            !ctx->o->quiet)
            fprintf(stderr, "prunebench: %s: cell %s is damaged (%s): counted as missing; running its shard "
                            "again runs it again\n", ctx->x->name, ctx->x->cells[i].hash, reason);
        if (pb_store_row_status(&ctx->store, &ctx->x->cells[i], st, sizeof st, reason, sizeof reason, &acc) != PB_OK)
            sum->missing++;
        else if (strcmp(st, "ok"))
            sum->failed++;
        else
            sum->skipped++;
    }
    if (!ctx->o->no_plot) {
        char e2[PB_ERRLEN];
        if (pb_plot_dir(ctx->store.dir, !ctx->o->quiet, e2, sizeof e2) != PB_OK && !ctx->o->quiet)
            fprintf(stderr, "prunebench: charts: %s\n", e2);
    }
    return PB_OK;
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
    pb_store_init(&ctx->store, o->out_dir, x);
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int jobs = o->jobs > 0 ? o->jobs : 1;
    ctx->threads = o->threads > 0 ? o->threads : (int)(ncpu / jobs > 0 ? ncpu / jobs : 1);
    sum->total = x->ncells;

    int rc = PB_OK, lockfd = -1;
    slot slots[PB_RUN_MAX_JOBS];
    memset(slots, 0, sizeof slots);
    progress p = {.tty = isatty(2), .quiet = o->quiet, .total = x->ncells, .t0 = pb_now()};

    double total_cost = pb_cost_experiment(x, cost, needs);
    if (o->shard_count > 0) {
        ctx->shard = (pb_shard){.index = o->shard_index, .count = o->shard_count};
        ctx->dlocks = calloc((size_t)x->ncells, sizeof *ctx->dlocks);
        ctx->keyof = calloc((size_t)x->ncells, sizeof *ctx->keyof);
        if (!ctx->dlocks || !ctx->keyof) {
            rc = pb_err(err, errlen, PB_ENOMEM, "out of memory");
            goto done;
        }
        sum->total = 0;
        for (int i = 0; i < x->ncells; i++) {
            ctx->keyof[i] = i;
            for (int k = 0; k < i; k++)
                if (!strcmp(x->cells[k].dense_key, x->cells[i].dense_key)) {
                    ctx->keyof[i] = k;
                    break;
                }
            if (pb_shard_mine(&ctx->shard, &x->cells[i]))
                sum->total++;
            else
                state[i] = 3; /* another shard's */
        }
        total_cost = pb_shard_cost(x, ctx->shard.index, ctx->shard.count);
        p.total = sum->total;
    }

    if (o->dry_run) {
        if (ctx->shard.count)
            printf("experiment %s (%s): shard %d/%d: %d of %d cells -> %s\n", x->name, x->where, ctx->shard.index,
                   ctx->shard.count, sum->total, x->ncells, ctx->store.dir);
        else
            printf("experiment %s (%s): %d cells -> %s\n", x->name, x->where, x->ncells, ctx->store.dir);
        printf("%-16s %-14s %-13s %-18s %8s %5s %6s %6s %10s  %s\n", "cell", "model", "dataset", "label",
               "sparsity", "seed", "epochs", "ft_ep", "train_TFLOP", "args");
        unsigned char *from_csv = o->fresh || ctx->shard.count ? NULL : calloc((size_t)x->ncells + 1, 1);
        int nfrom = 0, ndone = 0;
        if (from_csv && pb_store_adopt(&ctx->store, 0, from_csv, &nfrom, err, errlen) != PB_OK)
            nfrom = 0, memset(from_csv, 0, (size_t)x->ncells + 1);
        for (int i = 0; i < x->ncells; i++) {
            const pb_cell *c = &x->cells[i];
            if (state[i] == 3)
                continue;
            /* what a run would do with the cell: skip it, or run it (again) */
            static const char *const mark[] = {[PB_STORE_CELL_NONE] = "", [PB_STORE_CELL_OK] = " (done)",
                                               [PB_STORE_CELL_FAILED] = " (failed)",
                                               [PB_STORE_CELL_DAMAGED] = " (damaged: runs again)"};
            char why[PB_ERRLEN];
            int k = o->fresh ? PB_STORE_CELL_NONE : pb_store_cell_check(&ctx->store, c, why, sizeof why);
            if (k == PB_STORE_CELL_NONE && from_csv && from_csv[i]) /* a run takes it from cells.csv */
                k = from_csv[i] == 2 ? PB_STORE_CELL_FAILED : PB_STORE_CELL_OK;
            if (k == PB_STORE_CELL_OK || (k == PB_STORE_CELL_FAILED && !o->retry_failed)) {
                total_cost -= cost[i]; /* as a run skips it */
                ndone++;
            }
            printf("%-16s %-14s %-13s %-18s %8g %5ld %6d %6d %10.4f  %s%s%s%s\n", c->hash, c->model, c->dataset,
                   c->label, c->sparsity, c->seed, c->train.epochs, pb_cell_finetune_epochs(c), cost[i] / 1e12,
                   c->args_joined ? c->args_joined : "", c->data ? " data: " : "", c->data ? c->data_label : "",
                   k == PB_STORE_CELL_FAILED && o->retry_failed ? " (failed: runs again)" : mark[k]);
        }
        double peak = pb_cost_sgemm_gflops(), rate = PB_COST_SGEMM_FRACTION * peak;
        if (total_cost < 0)
            total_cost = 0;
        double secs = total_cost / (rate * 1e9 * jobs);
        char d[32];
        fmt_duration(d, sizeof d, secs);
        printf("estimated training cost: %.3f TFLOP (each dense model counted once%s); about %s with -j %d "
               "at %.0f GFLOP/s per worker (%.0f%% of the %.0f GFLOP/s one-thread SGEMM measured now)\n",
               total_cost / 1e12, ndone ? ", the cells marked done not counted" : "", d, jobs, rate,
               100 * PB_COST_SGEMM_FRACTION, peak);
        if (nfrom)
            printf("%d of the cells marked done have no per-cell files: a run takes them from cells.csv\n", nfrom);
        free(from_csv);
        goto done;
    }

    /* the output directory, before anything trains */
    if (o->merge_only) {
        rc = pb_shard_open(&ctx->store, NULL, &lockfd, NULL, err, errlen);
        if (rc == PB_OK)
            rc = merge(ctx, sum, err, errlen);
        goto done;
    }
    if (ctx->shard.count) {
        if ((rc = pb_shard_open(&ctx->store, &ctx->shard, &lockfd, &ctx->own, err, errlen)) != PB_OK)
            goto done;
    } else {
        if ((rc = pb_store_open(&ctx->store, &lockfd, err, errlen)) != PB_OK)
            goto done;
        pb_store_clean(&ctx->store, !o->fresh); /* or only what workers killed mid-write left */
        /* a directory with its CSV files and no cells/ (results as committed) resumes too */
        int adopted = 0;
        if (!o->fresh && (rc = pb_store_adopt(&ctx->store, 1, NULL, &adopted, err, errlen)) != PB_OK)
            goto done;
        if (adopted && !o->quiet)
            fprintf(stderr, "prunebench: %s: %d finished cells taken from %s/cells.csv (their per-cell files were missing)\n",
                    x->name, adopted, ctx->store.dir);
    }
    /* what earlier runs finished; a damaged cell (an emptied, truncated or
     * garbled file) is said so and runs again */
    for (int i = 0; i < x->ncells; i++) {
        if (state[i] == 3)
            continue;
        char why[PB_ERRLEN];
        int k = pb_store_cell_check(&ctx->store, &x->cells[i], why, sizeof why);
        if (k == PB_STORE_CELL_DAMAGED) {
            char d[256];
            cell_desc(d, sizeof d, x, &x->cells[i]);
            fprintf(stderr, "prunebench: %s: cell %s (%s) is damaged: %s; running it again\n", x->name,
                    x->cells[i].hash, d, why);
            pb_store_cell_remove(&ctx->store, &x->cells[i]);
            sum->damaged++;
        } else if (k == PB_STORE_CELL_OK || (k == PB_STORE_CELL_FAILED && !o->retry_failed)) {
            state[i] = 2;
            sum->skipped++;
            total_cost -= cost[i];
        }
    }
    if (!ctx->shard.count)
        check_caches(ctx, state, needs);
    char extra[512];
    run_extra(ctx, sum->total, extra, sizeof extra);
    pb_store_run run = {.script = o->script, .script_text = script_text, .workers = o->jobs,
                        .threads = ctx->threads, .fresh = o->fresh, .finished = sum->skipped,
                        .extra = extra[0] ? extra : NULL,
                        .noop = !ctx->shard.count && sum->skipped == x->ncells};
    rc = ctx->shard.count ? pb_shard_write_metadata(&ctx->store, &run, err, errlen)
                          : pb_store_write_metadata(&ctx->store, &run, err, errlen);
    if (rc != PB_OK)
        goto done;
    p.skipped = sum->skipped;
    p.cost_total = total_cost;
    if (sum->skipped && !o->quiet)
        fprintf(stderr, "prunebench: %s: %d of %d cells already finished (resuming; --fresh starts over)\n",
                x->name, sum->skipped, x->ncells);
    if (jobs > PB_RUN_MAX_JOBS)
        jobs = PB_RUN_MAX_JOBS;

    int idle_told = 0;
    catch_stop_signals();
    for (;;) {
        if (stop_signal)
            break;
        /* start what may start: a cell that needs a dense model nobody has
         * written yet waits while another cell is training that same model */
        int running = 0, waiting = 0;
        int waiting_for = -1;       /* a cached model's first cell */
        for (int k = 0; k < jobs; k++)
            running += slots[k].pid > 0;
        for (int i = 0; i < x->ncells && running < jobs && rc == PB_OK; i++) {
            int take = -1, start = i;
            if (state[i] != 0)
                continue;
            if (needs[i]) {
                char path[4400];
                pb_store_dense_path(&ctx->store, &x->cells[i], path, sizeof path);
                int blocked = 0;
                if (!pb_store_exists(path))
                    for (int k = 0; k < jobs; k++)
                        if (slots[k].pid > 0 && needs[slots[k].cell] &&
                            !strcmp(x->cells[slots[k].cell].dense_key, x->cells[i].dense_key))
                            blocked = 1;
                if (blocked)
                    continue;
                if (ctx->shard.count) {
                    /* another shard may have run it, as the first cell that needs its model */
                    if (cell_finished(ctx, &x->cells[i], o->retry_failed)) {
                        state[i] = 2;
                        sum->by_others++;
                        p.skipped++;
                        continue;
                    }
                    if ((rc = shard_pick(ctx, state, needs, i, path, &start, &take, err, errlen)) != PB_OK)
                        break;
                    if (start < 0) {
                        waiting++;
                        waiting_for = ctx->keyof[i];
                        continue;
                    }
                }
            }
            int k = 0;
            while (slots[k].pid > 0)
                k++;
            if (ctx->shard.count)
                pb_shard_clean_cell(&ctx->store, &x->cells[start]); /* what a killed worker left of it */
            /* a failed row run again (--retry-failed) goes first: the runner reads
             * the worker's outcome from the row, never from an earlier run's */
            pb_store_cell_remove(&ctx->store, &x->cells[start]);
            if ((rc = spawn(ctx, &slots[k], start, err, errlen)) != PB_OK) {
                if (take >= 0)
                    pb_lock_release(&ctx->dlocks[take]);
                break;
            }
            if (state[start] == 3) {
                char d[256];
                cell_desc(d, sizeof d, x, &x->cells[start]);
                log_line(&p, "making dense/%s.pb with %s (shard %d's), the first cell that needs it",
                         x->cells[start].dense_key, d, pb_shard_of_hash(x->cells[start].hash, ctx->shard.count));
                p.total++;
            }
            slots[k].dlock = take;
            state[start] = 1;
            running++;
            idle_told = 0;
        }
        if (rc != PB_OK)
            break;
        if (running == 0) {
            if (!waiting)
                break;
            /* what is left waits for models other runners are making */
            if (!idle_told) {
                log_line(&p, "waiting: %d cell%s need cached models other shards are making (dense/%s.pb: %s)",
                         waiting, waiting > 1 ? "s" : "", x->cells[waiting_for].dense_key,
                         ctx->dlocks[waiting_for].owner);
                idle_told = 1;
            }
            if ((rc = heartbeat(ctx, slots, jobs, state, &p, err, errlen)) != PB_OK)
                break;
            struct timespec ts = {0, 500 * 1000 * 1000};
            nanosleep(&ts, NULL);
            continue;
        }
        show_progress(&p, ctx, slots, jobs);

        struct pollfd pfds[PB_RUN_MAX_JOBS];
        int np = 0;
        for (int k = 0; k < jobs; k++)
            if (slots[k].pid > 0)
                pfds[np++] = (struct pollfd){.fd = slots[k].fd, .events = POLLIN};
        poll(pfds, (nfds_t)np, 500);
        const double now = pb_now();
        for (int k = 0; k < jobs; k++)
            if (slots[k].pid > 0) {
                drain(&slots[k]);
                /* a cell past its limit: reap() records it as failed by timeout */
                if (slots[k].limit > 0 && !slots[k].timed_out && now - slots[k].t0 >= slots[k].limit) {
                    stop_worker(slots[k].pid);
                    slots[k].timed_out = 1;
                }
            }
        if (ctx->shard.count && (rc = heartbeat(ctx, slots, jobs, state, &p, err, errlen)) != PB_OK)
            break;
        int status;
        pid_t pid;
        while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
            for (int k = 0; k < jobs; k++)
                if (slots[k].pid == pid) {
                    const int cell = slots[k].cell, before = p.done;
                    int r2 = reap(ctx, &slots[k], status, &p, cost, err, errlen);
                    if (r2 != PB_OK && rc == PB_OK)
                        rc = r2;
                    if (p.done == before) { /* stopped with the runner: left for the next run */
                        state[cell] = 0;
                        continue;
                    }
                    state[cell] = 2;
                    if (pb_shard_mine(&ctx->shard, &x->cells[cell]))
                        sum->ran++;
                    else
                        sum->theirs++;
                }
        }
    }
    /* on an error of the runner itself or a stop signal, stop the workers it
     * started; their cells stay unrecorded, and run again next time */
    for (int k = 0; k < jobs; k++)
        if (slots[k].pid > 0) {
            stop_worker(slots[k].pid);
            waitpid(slots[k].pid, NULL, 0);
            pb_store_clean_worker(&ctx->store, &x->cells[slots[k].cell], (long)slots[k].pid);
            sum->stopped++;
            close(slots[k].fd);
            if (slots[k].dlock >= 0)
                pb_lock_release(&ctx->dlocks[slots[k].dlock]);
        }
    if (p.tty && !o->quiet)
        fprintf(stderr, "\r\033[K");
    sum->failed = 0;
    {
        char e2[PB_ERRLEN];
        int r2 = ctx->shard.count ? pb_shard_regenerate(&ctx->store, 1, e2, sizeof e2)
                                  : pb_store_regenerate(&ctx->store, e2, sizeof e2);
        if (r2 != PB_OK && rc == PB_OK) {
            rc = r2;
            snprintf(err, errlen, "%s", e2);
        }
    }
    for (int i = 0; i < x->ncells; i++) {
        char st[16] = "", reason[PB_ERRLEN];
        double acc;
        if (state[i] != 3 && pb_store_row_status(&ctx->store, &x->cells[i], st, sizeof st, reason, sizeof reason, &acc) == PB_OK &&
            strcmp(st, "ok"))
            sum->failed++;
    }
    sum->stop_signal = stop_signal;
    if (rc == PB_OK && !o->no_plot && !ctx->shard.count && !stop_signal) { /* shards: the charts are the merge's */
        char e2[PB_ERRLEN];
        int prc = pb_plot_dir(ctx->store.dir, !o->quiet, e2, sizeof e2);
        if (prc != PB_OK && !o->quiet)
            fprintf(stderr, "prunebench: charts: %s\n", e2);
    }
done:
    pb_lock_release(&ctx->own);
    if (lockfd >= 0)
        close(lockfd);
    free(ctx->dlocks);
    free(ctx->keyof);
    free(ctx);
    free(state);
    free(cost);
    free(needs);
    return rc;
}
