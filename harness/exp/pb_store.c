/* pb_store: the result store of an experiment (layout in pb_store.h). */
#include "pb_store.h"

#include "host/pb_datasel.h"
#include "engine/pb_file.h"
#include "engine/pb_text.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "pb_revision.h"

char *openblas_get_config(void);
char *openblas_get_corename(void);

/* ------------------------------------------------- files and directories */

int pb_store_mkdirs(const char *path, char *err, size_t errlen)
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

int pb_store_check_writable(const char *dir, char *err, size_t errlen)
{
    int rc = pb_store_mkdirs(dir, err, errlen);
    if (rc != PB_OK)
        return rc;
    char probe[4200];
    snprintf(probe, sizeof probe, "%s/.probe.%ld", dir, (long)getpid());
    int fd = open(probe, O_WRONLY | O_CREAT | O_TRUNC, 0666);
    if (fd < 0)
        return pb_err(err, errlen, PB_EIO, "cannot write to %s: %s", dir, strerror(errno));
    close(fd);
    unlink(probe);
    return PB_OK;
}

int pb_store_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

char *pb_store_read_text(const char *path, size_t *n)
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

int pb_store_write_atomic(const char *path, const char *text, size_t n, char *err, size_t errlen)
{
    return pb_file_write_atomic(path, text, n, err, errlen);
}

FILE *pb_store_open_tmp(const char *path, char *tmp, size_t tmplen, char *err, size_t errlen)
{
    return pb_file_open_tmp(path, tmp, tmplen, err, errlen);
}

int pb_store_commit(FILE *f, const char *tmp, const char *path, char *err, size_t errlen)
{
    return pb_file_commit(f, tmp, path, err, errlen);
}

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

void pb_store_clean(const pb_store *s, int tmp_only)
{
    clean_dir(s->cells, tmp_only);
    clean_dir(s->dense, tmp_only);
    if (tmp_only)
        clean_dir(s->dir, 1); /* the merged files' and metadata's, of a runner killed mid-write */
}

/* Removes dir's files named PREFIX*.tmp.PID. */
static void remove_worker_tmp(const char *dir, const char *prefix, long pid)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    char tail[32], path[4400];
    snprintf(tail, sizeof tail, ".tmp.%ld", pid);
    size_t k = strlen(prefix), t = strlen(tail);
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len <= k + t || strncmp(e->d_name, prefix, k) || strcmp(e->d_name + len - t, tail))
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
}

void pb_store_remove_dense(const pb_store *s, const char *name)
{
    char path[4600];
    snprintf(path, sizeof path, "%s/%s", s->dense, name);
    unlink(path);
    snprintf(path, sizeof path, "%s/%s.cost", s->dense, name);
    unlink(path);
    DIR *d = opendir(s->dense);
    if (!d)
        return;
    char keep[128];
    snprintf(keep, sizeof keep, "%s.keep-", name);
    struct dirent *e;
    while ((e = readdir(d)))
        if (!strncmp(e->d_name, keep, strlen(keep))) {
            snprintf(path, sizeof path, "%s/%s", s->dense, e->d_name);
            unlink(path);
        }
    closedir(d);
}

void pb_store_clean_worker(const pb_store *s, const pb_cell *c, long pid)
{
    char prefix[64];
    snprintf(prefix, sizeof prefix, "%s.", c->hash);
    remove_worker_tmp(s->cells, prefix, pid);
    snprintf(prefix, sizeof prefix, "%s.pb", c->dense_key);
    remove_worker_tmp(s->dense, prefix, pid);
}

int pb_store_open(const pb_store *s, int *lockfd, char *err, size_t errlen)
{
    *lockfd = -1;
    int rc = pb_store_mkdirs(s->cells, err, errlen);
    if (rc == PB_OK)
        rc = pb_store_mkdirs(s->dense, err, errlen);
    if (rc != PB_OK)
        return rc;
    char lock[4400];
    snprintf(lock, sizeof lock, "%s/.lock", s->dir);
    int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0)
        return pb_err(err, errlen, PB_EIO, "cannot write to %s: %s", s->dir, strerror(errno));
    *lockfd = fd; /* closed by the caller even when another run holds the lock */
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        char owner[300];
        pb_store_lock_owner(fd, owner, sizeof owner);
        return pb_err(err, errlen, PB_EUSAGE, "another prunebench run%s is using %s: wait for it to finish (or "
                      "stop it: its finished cells are kept)", owner, s->dir);
    }
    /* who holds it, for the message of a run refused meanwhile */
    char host[256] = "?", text[320];
    gethostname(host, sizeof host - 1);
    int k = snprintf(text, sizeof text, "%s %ld\n", host, (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, text, (size_t)k, 0) != k)
        (void)0; /* only the refusal message of another run would miss it */
    return PB_OK;
}

void pb_store_lock_owner(int fd, char *buf, size_t n)
{
    char text[320], host[256];
    long pid;
    ssize_t k = pread(fd, text, sizeof text - 1, 0);
    buf[0] = '\0';
    if (k <= 0)
        return;
    text[k] = '\0';
    if (sscanf(text, "%255s %ld", host, &pid) != 2 || pid <= 0)
        return;
    /* a dead run's record (killed -9; shards take the lock without writing one) says nothing */
    char here[256] = "";
    gethostname(here, sizeof here - 1);
    if (!strcmp(here, host) && kill((pid_t)pid, 0) != 0 && errno == ESRCH)
        return;
    snprintf(buf, n, " (pid %ld on %s)", pid, host);
}

/* ---------------------------------------------------------------- build */

/* Compiled in (pb_revision.h, generated when the program is built): what was
 * built, not what the source checkout holds when the program runs. */
void pb_store_build(const char **rev, const char **build)
{
    *rev = PB_REVISION;
    *build = PB_BUILD;
}

void pb_store_init(pb_store *s, const char *out_dir, const pb_experiment *x)
{
    memset(s, 0, sizeof *s);
    s->x = x;
    pb_store_build(&s->rev, &s->build);
    snprintf(s->dir, sizeof s->dir, "%s/%s", out_dir, x->name);
    snprintf(s->cells, sizeof s->cells, "%s/cells", s->dir);
    snprintf(s->dense, sizeof s->dense, "%s/dense", s->dir);
}

/* ---------------------------------------------------------------- cells */

void pb_store_cell_path(const pb_store *s, const pb_cell *c, const char *suffix, char *buf, size_t n)
{
    snprintf(buf, n, "%s/%s%s", s->cells, c->hash, suffix);
}

void pb_store_dense_path(const pb_store *s, const pb_cell *c, char *buf, size_t n)
{
    snprintf(buf, n, "%s/%s.pb", s->dense, c->dense_key);
}

static int ncols(const char *const *cols)
{
    int k = 0;
    while (cols[k])
        k++;
    return k;
}

/* The fewest fields a row of each file has ever had: columns are only appended. */
#define ROW_MIN_FIELDS 21
#define CURVE_MIN_FIELDS 10

/* Checks every record of a per-cell file: between lo and hi fields, the
 * experiment and the cell in the first two, the whole text made of records
 * ending in a line end. Empty text is valid when empty_ok. */
static int check_records(char *text, size_t len, const pb_experiment *x, const pb_cell *c, int lo, int hi,
                         int empty_ok, const char *name, char *why, size_t wn)
{
    if (strlen(text) != len)
        return pb_err(why, wn, PB_EIO, "%s holds a NUL byte", name);
    if (len == 0)
        return empty_ok ? PB_OK : pb_err(why, wn, PB_EIO, "%s is empty", name);
    if (text[len - 1] != '\n')
        return pb_err(why, wn, PB_EIO, "%s ends in the middle of a line", name);
    char *fields[128], *p = text;
    for (int line = 1; *p; line++) {
        int nf = pb_csv_split_next(&p, fields, 128);
        if (nf < lo || nf > hi)
            return pb_err(why, wn, PB_EIO, "%s, record %d: %d fields, not %d to %d", name, line, nf, lo, hi);
        if (strcmp(fields[0], x->name) || strcmp(fields[1], c->hash))
            return pb_err(why, wn, PB_EIO, "%s, record %d: not a record of this cell", name, line);
    }
    return PB_OK;
}

int pb_store_cell_check(const pb_store *s, const pb_cell *c, char *why, size_t wn)
{
    static const struct { const char *suffix, *const *cols; int lo; } parts[] = {
        {".curves", pb_csv_curves_cols, CURVE_MIN_FIELDS},
        {".layers", pb_csv_layers_cols, 6},
        {".metrics", pb_csv_metrics_cols, 4},
    };
    char path[4400], name[64];
    snprintf(why, wn, "-");
    pb_store_cell_path(s, c, ".row", path, sizeof path);
    struct stat st;
    if (lstat(path, &st) != 0)
        return PB_STORE_CELL_NONE;
    snprintf(name, sizeof name, "%s.row", c->hash);
    if (!S_ISREG(st.st_mode)) {
        pb_err(why, wn, PB_EIO, "%s is not a regular file", name);
        return PB_STORE_CELL_DAMAGED;
    }
    size_t len;
    char *text = pb_store_read_text(path, &len), *copy = text ? strdup(text) : NULL;
    if (!text || !copy) {
        pb_err(why, wn, PB_EIO, "cannot read %s", name);
        free(text);
        return PB_STORE_CELL_DAMAGED;
    }
    int rc = check_records(copy, len, s->x, c, ROW_MIN_FIELDS, ncols(pb_csv_cells_cols), 0, name, why, wn);
    int kind = PB_STORE_CELL_DAMAGED;
    if (rc == PB_OK) {
        char *f[128];
        pb_csv_split(text, f, 128);
        char *end;
        double acc = strtod(f[10], &end);
        if (!strcmp(f[8], "ok") && (end == f[10] || *end || !(acc >= 0 && acc <= 1)))
            rc = pb_err(why, wn, PB_EIO, "%s: status ok without a test accuracy in [0, 1]", name);
        else if (!strcmp(f[8], "ok"))
            kind = PB_STORE_CELL_OK;
        else if (!strcmp(f[8], "failed"))
            kind = PB_STORE_CELL_FAILED;
        else
            rc = pb_err(why, wn, PB_EIO, "%s: status '%.20s' is neither ok nor failed", name, f[8]);
    }
    free(text);
    free(copy);
    /* a finished cell's other files: present, unless an older prunebench
     * wrote none, and whole */
    for (size_t i = 0; rc == PB_OK && kind == PB_STORE_CELL_OK && i < sizeof parts / sizeof parts[0]; i++) {
        pb_store_cell_path(s, c, parts[i].suffix, path, sizeof path);
        snprintf(name, sizeof name, "%s%s", c->hash, parts[i].suffix);
        if (lstat(path, &st) != 0)
            continue;
        if (!S_ISREG(st.st_mode) || !(text = pb_store_read_text(path, &len))) {
            rc = pb_err(why, wn, PB_EIO, "cannot read %s", name);
            break;
        }
        rc = check_records(text, len, s->x, c, parts[i].lo, ncols(parts[i].cols), 1, name, why, wn);
        free(text);
    }
    return rc == PB_OK ? kind : PB_STORE_CELL_DAMAGED;
}

void pb_store_cell_remove(const pb_store *s, const pb_cell *c)
{
    static const char *const suffixes[] = {".row", ".curves", ".layers", ".metrics"};
    char path[4400];
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
        pb_store_cell_path(s, c, suffixes[i], path, sizeof path);
        unlink(path);
    }
}

int pb_store_row_status(const pb_store *s, const pb_cell *c, char *status, size_t sn, char *reason, size_t rn,
                        double *acc)
{
    char why[PB_ERRLEN];
    int kind = pb_store_cell_check(s, c, why, sizeof why);
    if (kind != PB_STORE_CELL_OK && kind != PB_STORE_CELL_FAILED)
        return PB_EIO;
    char path[4400];
    pb_store_cell_path(s, c, ".row", path, sizeof path);
    char *text = pb_store_read_text(path, NULL);
    if (!text)
        return PB_EIO;
    char *fields[64];
    int nf = pb_csv_split(text, fields, 64);
    int rc = nf >= 11 ? PB_OK : PB_EIO;
    if (rc == PB_OK) {
        snprintf(status, sn, "%s", fields[8]);
        snprintf(reason, rn, "%s", fields[9]);
        *acc = fields[10][0] ? strtod(fields[10], NULL) : NAN;
    }
    free(text);
    return rc;
}

void pb_store_last_log_line(const pb_store *s, const pb_cell *c, char *buf, size_t n)
{
    char path[4400];
    pb_store_cell_path(s, c, ".log", path, sizeof path);
    buf[0] = '\0';
    char *text = pb_store_read_text(path, NULL);
    if (!text)
        return;
    size_t len = strlen(text);
    while (len && text[len - 1] == '\n')
        text[--len] = '\0';
    char *last = strrchr(text, '\n');
    snprintf(buf, n, "%s", last ? last + 1 : text);
    free(text);
}

/* ----------------------------------------------------------------- rows */

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

/* The data axis columns: data, data_label, fraction, data_args, budget, target. */
static void data_fields(pb_csv_row *r, const pb_cell *c)
{
    pb_csv_str(r, c->data);
    pb_csv_str(r, c->data_label);
    if (c->data)
        pb_csv_num(r, c->data_fraction);
    else
        pb_csv_empty(r);
    pb_csv_str(r, c->data_args_joined);
    if (c->data && c->budget_kind) {
        char b[64];
        snprintf(b, sizeof b, "%s=%.17g", pb_budget_names[c->budget_kind], c->budget);
        pb_csv_str(r, b);
    } else {
        pb_csv_empty(r);
    }
    if (c->target > 0)
        pb_csv_num(r, c->target);
    else
        pb_csv_empty(r);
}

/* test_ppl, test_bpb, pruned_ppl of a text data set's cell (losses are nats per token) */
static void lm_fields(pb_csv_row *r, const pb_cell *c, const pb_job_result *res)
{
    if (!res || !pb_text_is(c->dataset)) {
        for (int i = 0; i < 3; i++)
            pb_csv_empty(r);
        return;
    }
    pb_csv_num(r, exp(res->test_loss));
    pb_csv_num(r, res->test_loss / log(2.0));
    if (res->pruned_acc >= 0)
        pb_csv_num(r, exp(res->pruned_loss));
    else
        pb_csv_empty(r);
}

int pb_store_cell_row(pb_csv_row *r, const pb_experiment *x, const pb_cell *c, const char *reason,
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
    pb_csv_int(r, pb_cell_finetune_epochs(c));
    if (res) {
        pb_csv_int(r, (long long)res->prunable);
        pb_csv_int(r, (long long)res->prunable_nonzero);
        pb_csv_num(r, res->sparsity);
    } else {
        for (int i = 0; i < 3; i++)
            pb_csv_empty(r);
    }
    pb_csv_str(r, build);
    if (res) {
        pb_csv_int(r, (long long)res->stored);
        pb_csv_num(r, res->stored ? (double)res->params / (double)res->stored : INFINITY);
        pb_csv_num(r, res->prefix_wall_s);
        pb_csv_num(r, res->prefix_flops);
        pb_csv_num(r, res->probe_flops);
        pb_csv_num(r, res->cost_wall_s);
        pb_csv_num(r, res->cost_flops);
    } else {
        for (int i = 0; i < 7; i++)
            pb_csv_empty(r);
    }
    pb_csv_str(r, c->stages_canon ? c->stages_canon : "");
    data_fields(r, c);
    if (res && res->pruned_acc >= 0) {
        pb_csv_num(r, res->pruned_acc);
        pb_csv_num(r, res->pruned_loss);
    } else {
        pb_csv_empty(r);
        pb_csv_empty(r);
    }
    if (res && res->infer_us_b1 > 0) {
        pb_csv_num(r, res->infer_us_b1);
        pb_csv_num(r, res->infer_ips_b128);
        pb_csv_num(r, res->infer_us_b1_dense / res->infer_us_b1); /* batch-1 latency, dense over executed */
    } else {
        for (int i = 0; i < 3; i++)
            pb_csv_empty(r);
    }
    lm_fields(r, c, res);
    return pb_csv_end(r);
}

int pb_store_curve_row(pb_csv_row *r, const pb_experiment *x, const pb_cell *c, const pb_curve_rec *rec)
{
    pb_csv_row_init(r);
    pb_csv_str(r, x->name);
    pb_csv_str(r, c->hash);
    pb_csv_str(r, rec->phase);
    pb_csv_int(r, rec->index);
    pb_csv_int(r, rec->step);
    pb_csv_num(r, rec->wall_s);
    pb_csv_num(r, rec->train_flops);
    pb_csv_num(r, rec->sparsity);
    pb_csv_num(r, rec->test_acc);
    pb_csv_num(r, rec->test_loss);
    pb_csv_num(r, rec->train_s);
    pb_csv_num(r, rec->eval_s);
    pb_csv_num(r, rec->probe_flops);
    if (pb_text_is(c->dataset) && rec->test_acc >= 0)
        pb_csv_num(r, exp(rec->test_loss));
    else
        pb_csv_empty(r);
    return pb_csv_end(r);
}

int pb_store_metric_rows(pb_csv_row *r, const pb_experiment *x, const pb_cell *c, const pb_job_result *res)
{
    pb_csv_row_init(r);
    for (int i = 0; i < res->nmetrics; i++) {
        pb_csv_str(r, x->name);
        pb_csv_str(r, c->hash);
        pb_csv_str(r, res->metrics[i].name);
        pb_csv_num(r, res->metrics[i].value);
        pb_csv_end(r);
        r->nfields = 0;
    }
    return r->oom ? PB_ENOMEM : PB_OK;
}

int pb_store_layer_rows(pb_csv_row *r, const pb_experiment *x, const pb_cell *c, const pb_job_result *res)
{
    pb_csv_row_init(r);
    for (int i = 0; i < res->nlayers; i++) {
        const pb_layer_stat *s = &res->layers[i];
        pb_csv_str(r, x->name);
        pb_csv_str(r, c->hash);
        pb_csv_str(r, s->name);
        pb_csv_int(r, (long long)s->n);
        pb_csv_int(r, (long long)s->nonzero);
        pb_csv_num(r, s->n ? 1.0 - (double)s->nonzero / (double)s->n : 0);
        pb_csv_end(r);
        r->nfields = 0;
    }
    return r->oom ? PB_ENOMEM : PB_OK;
}

/* ------------------------------------------------ adopting CSV rows */

static int cell_index(const pb_experiment *x, const char *hash)
{
    for (int i = 0; i < x->ncells; i++)
        if (!strcmp(x->cells[i].hash, hash))
            return i;
    return -1;
}

/* Reads DIR/name and calls take(u, i, raw, n, fields, nf) for every record
 * after the header whose first field is the experiment and second a cell i of
 * it, raw being the record as written (with its line end). A file that does
 * not exist has no records. */
static int each_record(const pb_store *s, const char *name,
                       int (*take)(void *u, int i, const char *raw, size_t n, char **f, int nf), void *u)
{
    char path[4400];
    snprintf(path, sizeof path, "%s/%s", s->dir, name);
    struct stat st;
    if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode))
        return PB_OK; /* none, or not a file to read (a FIFO would block): the writes name it */
    size_t len;
    char *orig = pb_store_read_text(path, &len);
    if (!orig)
        return PB_OK;
    char *work = strlen(orig) == len ? strdup(orig) : NULL;
    int rc = work ? PB_OK : PB_EIO;
    char *fields[128], *p = work;
    if (rc == PB_OK)
        pb_csv_split_next(&p, fields, 128); /* the header */
    while (rc == PB_OK && p && *p) {
        char *start = p;
        int nf = pb_csv_split_next(&p, fields, 128);
        const char *raw = orig + (start - work);
        const size_t n = (size_t)(p - start);
        if (nf < 2 || nf > 128 || strcmp(fields[0], s->x->name))
            continue;
        const int i = cell_index(s->x, fields[1]);
        if (i >= 0 && n > 0 && raw[n - 1] == '\n')
            rc = take(u, i, raw, n, fields, nf);
    }
    free(work);
    free(orig);
    return rc;
}

typedef struct adopt_ctx {
    const pb_store *s;
    signed char *state;   /* per cell: 0 not seen, 1 one row of status ok, 2 of status failed, -1 not to adopt */
    pb_buf *row, *part; /* per cell */
} adopt_ctx;

static int take_row(void *u, int i, const char *raw, size_t n, char **f, int nf)
{
    adopt_ctx *a = u;
    if (a->state[i] != 0) { /* a second row of one cell: which is right is unknown */
        a->state[i] = -1;
        return PB_OK;
    }
    /* no cell has a row file here (pb_store_adopt checks first) */
    if (nf < ROW_MIN_FIELDS || nf > ncols(pb_csv_cells_cols) || (strcmp(f[8], "ok") && strcmp(f[8], "failed"))) {
        a->state[i] = -1;
        return PB_OK;
    }
    a->state[i] = strcmp(f[8], "failed") ? 1 : 2;
    return pb_buf_add(&a->row[i], raw, n);
}

static int take_part(void *u, int i, const char *raw, size_t n, char **f, int nf)
{
    (void)f;
    (void)nf;
    adopt_ctx *a = u;
    return a->state[i] > 0 ? pb_buf_add(&a->part[i], raw, n) : PB_OK;
}

/* Whether cells/ holds a row file: then the per-cell files are the record. */
static int any_row_file(const pb_store *s)
{
    DIR *d = opendir(s->cells);
    if (!d)
        return 0;
    int found = 0;
    for (struct dirent *e; !found && (e = readdir(d));) {
        size_t n = strlen(e->d_name);
        found = n > 4 && !strcmp(e->d_name + n - 4, ".row");
    }
    closedir(d);
    return found;
}

int pb_store_adopt(const pb_store *s, int write, unsigned char *adopted, int *count, char *err, size_t errlen)
{
    static const struct { const char *file, *suffix; } parts[] = {
        {"curves.csv", ".curves"}, {"layers.csv", ".layers"}, {"metrics.csv", ".metrics"}};
    const int nc = s->x->ncells > 0 ? s->x->ncells : 1;
    *count = 0;
    adopt_ctx a = {.s = s, .state = calloc((size_t)nc, 1), .row = calloc((size_t)nc, sizeof(pb_buf)),
                   .part = calloc((size_t)nc, sizeof(pb_buf))};
    int rc = a.state && a.row && a.part ? PB_OK : pb_err(err, errlen, PB_ENOMEM, "out of memory");
    if (adopted)
        memset(adopted, 0, (size_t)nc);
    if (rc == PB_OK && any_row_file(s))
        goto out; /* not a directory of CSV files alone */
    if (rc == PB_OK && (rc = each_record(s, "cells.csv", take_row, &a)) != PB_OK)
        rc = pb_err(err, errlen, rc, "%s/cells.csv: cannot read it", s->dir);
    for (size_t k = 0; rc == PB_OK && write && k < sizeof parts / sizeof parts[0]; k++) {
        for (int i = 0; i < s->x->ncells; i++)
            a.part[i].n = 0;
        if ((rc = each_record(s, parts[k].file, take_part, &a)) != PB_OK) {
            rc = pb_err(err, errlen, rc, "%s/%s: cannot read it", s->dir, parts[k].file);
            break;
        }
        char path[4400];
        for (int i = 0; rc == PB_OK && i < s->x->ncells; i++)
            if (a.state[i] > 0) {
                pb_store_cell_path(s, &s->x->cells[i], parts[k].suffix, path, sizeof path);
                rc = pb_store_write_atomic(path, a.part[i].p ? a.part[i].p : "", a.part[i].n, err, errlen);
            }
    }
    /* the row last: a cell is finished once its row file is there */
    for (int i = 0; rc == PB_OK && i < s->x->ncells; i++) {
        if (adopted)
            adopted[i] = a.state[i] > 0 ? (unsigned char)a.state[i] : 0;
        if (a.state[i] <= 0)
            continue;
        char path[4400];
        pb_store_cell_path(s, &s->x->cells[i], ".row", path, sizeof path);
        if (write && (rc = pb_store_write_atomic(path, a.row[i].p, a.row[i].n, err, errlen)) != PB_OK)
            break;
        (*count)++;
    }
out:
    for (int i = 0; a.row && a.part && i < s->x->ncells; i++) {
        free(a.row[i].p);
        free(a.part[i].p);
    }
    free(a.state);
    free(a.row);
    free(a.part);
    return rc;
}

/* ------------------------------------------------------ the CSV files */

/* name from the cells' suffix files, in matrix order, the cells whose files
 * are whole only (keep[i]): a damaged file never reaches a merged one. */
static int concat_files(const pb_store *s, const char *name, const char *suffix, const char *const *cols,
                        const unsigned char *keep, char *err, size_t errlen)
{
    char path[4400], tmp[4500], part[4400];
    snprintf(path, sizeof path, "%s/%s", s->dir, name);
    FILE *f = pb_store_open_tmp(path, tmp, sizeof tmp, err, errlen);
    if (!f)
        return PB_EIO;
    pb_csv_header(f, cols);
    for (int i = 0; i < s->x->ncells; i++) {
        if (!keep[i])
            continue;
        pb_store_cell_path(s, &s->x->cells[i], suffix, part, sizeof part);
        size_t n;
        char *text = pb_store_read_text(part, &n);
        if (text) {
            fwrite(text, 1, n, f);
            free(text);
        }
    }
    return pb_store_commit(f, tmp, path, err, errlen);
}

int pb_store_regenerate(const pb_store *s, char *err, size_t errlen)
{
    unsigned char *keep = malloc((size_t)(s->x->ncells > 0 ? s->x->ncells : 1));
    if (!keep)
        return pb_err(err, errlen, PB_ENOMEM, "out of memory");
    char why[PB_ERRLEN];
    for (int i = 0; i < s->x->ncells; i++) {
        int k = pb_store_cell_check(s, &s->x->cells[i], why, sizeof why);
        keep[i] = k == PB_STORE_CELL_OK || k == PB_STORE_CELL_FAILED;
    }
    int rc = concat_files(s, "cells.csv", ".row", pb_csv_cells_cols, keep, err, errlen);
    if (rc == PB_OK)
        rc = concat_files(s, "curves.csv", ".curves", pb_csv_curves_cols, keep, err, errlen);
    if (rc == PB_OK)
        rc = concat_files(s, "layers.csv", ".layers", pb_csv_layers_cols, keep, err, errlen);
    if (rc == PB_OK)
        rc = concat_files(s, "metrics.csv", ".metrics", pb_csv_metrics_cols, keep, err, errlen);
    free(keep);
    return rc;
}

/* ------------------------------------------------------------- metadata */

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

/* The CPU's model name from /proc/cpuinfo ("unknown" where there is none):
 * with openblas_kernels it says which kernels produced the figures. */
static void cpu_model(char *buf, size_t n)
{
    snprintf(buf, n, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) != 0)
            continue;
        const char *v = strchr(line, ':');
        if (!v)
            break;
        v += strspn(v + 1, " \t") + 1;
        size_t len = strcspn(v, "\n");
        snprintf(buf, n, "%.*s", (int)len, v);
        break;
    }
    fclose(f);
}

/* The earlier runs of metadata.txt as text to keep (malloc'd; NULL if none),
 * and their number. A file from before the history becomes run 1. */
static char *earlier_runs(const char *path, int *nruns)
{
    *nruns = 0;
    char *old = pb_store_read_text(path, NULL);
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

int pb_store_write_metadata(const pb_store *s, const pb_store_run *run, char *err, size_t errlen)
{
    const char *script_text = run->script_text;
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
    const char *kern = openblas_get_corename();
    char cpu[256];
    cpu_model(cpu, sizeof cpu);
    char path[4400];
    snprintf(path, sizeof path, "%s/metadata.txt", s->dir);
    const int keep = run->noop && !run->fresh && pb_store_exists(path);
    int nruns = 0;
    char *old = run->fresh ? NULL : earlier_runs(path, &nruns);
    size_t n = strlen(script_text) + (old ? strlen(old) : 0) + 8192 +
               (s->x->provenance ? strlen(s->x->provenance) : 0);
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
                     "openblas_kernels: %s\n"
                     "openblas_threads_per_worker: %d\n"
                     "workers: %d\n"
                     "host: %s\n"
                     "cpu: %s\n"
                     "cores: %ld\n"
                     "date: %s\n"
                     "experiment: %s\n"
                     "declared_at: %s\n"
                     "cells: %d\n"
                     "cells_finished_before: %d\n"
                     "script: %s\n"
                     "%s"
                     "%s"
                     "\n" META_SCRIPT "%s",
                     old ? old : META_HEAD, nruns + 1, date, s->rev, PACKAGE_VERSION, s->rev, s->build,
                     blas ? blas : "unknown", kern ? kern : "unknown", run->threads, run->workers, host, cpu, sysconf(_SC_NPROCESSORS_ONLN), date,
                     s->x->name, s->x->where, s->x->ncells, run->finished, run->script,
                     run->extra ? run->extra : "", s->x->provenance ? s->x->provenance : "", script_text);
    free(old);
    int rc = keep ? PB_OK : pb_store_write_atomic(path, text, (size_t)(k < (int)n ? k : (int)n - 1), err, errlen);
    if (rc == PB_OK && !keep) {
        snprintf(path, sizeof path, "%s/script.lua", s->dir);
        rc = pb_store_write_atomic(path, script_text, strlen(script_text), err, errlen);
    }
    if (rc == PB_OK) {
        /* the charts the script asked for, for `prunebench plot` */
        size_t len = 0;
        text[0] = '\0';
        for (int i = 0; i < s->x->nplots; i++)
            len += (size_t)snprintf(text + len, n - len, "%s\n", s->x->plots[i]);
        snprintf(path, sizeof path, "%s/plots.list", s->dir);
        rc = pb_store_write_atomic(path, text, len, err, errlen);
    }
    free(text);
    return rc;
}
