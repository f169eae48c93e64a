/* pb_csv: building, quoting and reading CSV. */
#include "pb_csv.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/pb_util.h"

const char *const pb_csv_cells_cols[] = {
    "experiment", "cell", "model", "dataset", "method", "label", "sparsity", "seed", "status",
    "reason", "test_acc", "test_loss", "params", "nonzero", "compression", "flops_dense",
    "flops_eff", "speedup", "wall_s", "train_flops", "time_to_target_s",
    /* appended after the first contract */
    "width", "dense_cache_hit", "dense_key", "args", "epochs", "finetune_epochs",
    "prunable", "prunable_nonzero", "achieved_sparsity",
    "build",
    /* appended with stages and ABI 1.1 */
    "stored", "compression_stored", "prefix_wall_s", "prefix_flops", "probe_flops", "cost_wall_s",
    "cost_flops", "stages",
    /* appended with the data axis */
    "data", "data_label", "fraction", "data_args", "budget", "target",
    /* appended with the post-training methods */
    "pruned_acc", "pruned_loss",
    /* appended with sparse execution: measured inference speed */
    "infer_us_b1", "infer_ips_b128", "measured_speedup",
    /* appended with language models: perplexity exp(loss) and bits per byte
     * loss / ln 2 of a text data set's cells, empty for the others */
    "test_ppl", "test_bpb", "pruned_ppl", NULL};

const char *const pb_csv_curves_cols[] = {
    "experiment", "cell", "phase", "epoch", "step", "wall_s", "train_flops", "sparsity",
    "test_acc", "test_loss",
    /* appended */
    "train_s",
    /* appended with the data axis: wall_s - eval_s is the training clock */
    "eval_s", "probe_flops",
    /* appended with language models (empty for the others) */
    "test_ppl", NULL};

const char *const pb_csv_metrics_cols[] = {"experiment", "cell", "name", "value", NULL};

const char *const pb_csv_layers_cols[] = {
    "experiment", "cell", "layer", "params", "nonzero", "sparsity", NULL};

void pb_csv_row_init(pb_csv_row *r) { memset(r, 0, sizeof *r); }

void pb_csv_row_free(pb_csv_row *r)
{
    free(r->s);
    memset(r, 0, sizeof *r);
}

static void append(pb_csv_row *r, const char *s, size_t n)
{
    if (r->oom)
        return;
    if (r->len + n + 1 > r->cap) {
        size_t cap = r->cap ? r->cap : 128;
        while (cap < r->len + n + 1)
            cap *= 2;
        char *p = realloc(r->s, cap);
        if (!p) {
            r->oom = 1;
            return;
        }
        r->s = p;
        r->cap = cap;
    }
    memcpy(r->s + r->len, s, n);
    r->len += n;
    r->s[r->len] = '\0';
}

static int needs_quotes(const char *s)
{
    if (!*s)
        return 0;
    if (s[0] == ' ' || s[strlen(s) - 1] == ' ')
        return 1;
    return strpbrk(s, ",\"\r\n") != NULL;
}

static void separator(pb_csv_row *r)
{
    if (r->nfields++ > 0)
        append(r, ",", 1);
}

void pb_csv_str(pb_csv_row *r, const char *s)
{
    separator(r);
    if (!s)
        return;
    if (!needs_quotes(s)) {
        append(r, s, strlen(s));
        return;
    }
    append(r, "\"", 1);
    for (const char *p = s; *p; p++) {
        if (*p == '"')
            append(r, "\"\"", 2);
        else
            append(r, p, 1);
    }
    append(r, "\"", 1);
}

void pb_csv_int(pb_csv_row *r, long long v)
{
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%lld", v);
    separator(r);
    append(r, buf, (size_t)n);
}

void pb_csv_num(pb_csv_row *r, double v)
{
    char buf[40];
    int n;
    if (isnan(v))
        n = snprintf(buf, sizeof buf, "nan");
    else if (isinf(v))
        n = snprintf(buf, sizeof buf, v > 0 ? "inf" : "-inf");
    else
        n = snprintf(buf, sizeof buf, "%.6g", v);
    separator(r);
    append(r, buf, (size_t)n);
}

void pb_csv_empty(pb_csv_row *r) { separator(r); }

int pb_csv_end(pb_csv_row *r)
{
    append(r, "\n", 1);
    return r->oom ? PB_ENOMEM : PB_OK;
}

void pb_csv_header(FILE *f, const char *const *cols)
{
    for (int i = 0; cols[i]; i++)
        fprintf(f, "%s%s", i ? "," : "", cols[i]);
    fputc('\n', f);
}

/* ---- reading ---- */

static char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, len = 0;
    char *s = malloc(cap);
    while (s) {
        size_t got = fread(s + len, 1, cap - len - 1, f);
        len += got;
        if (len + 1 < cap)
            break;
        char *p = realloc(s, cap * 2);
        if (!p) {
            free(s);
            s = NULL;
            break;
        }
        s = p;
        cap *= 2;
    }
    fclose(f);
    if (s) {
        s[len] = '\0';
        *n = len;
    }
    return s;
}

/* Splits one record starting at *pp in place (unquoting); returns the field count. */
static int parse_record(char **pp, char **fields, int maxf)
{
    char *p = *pp;
    int nf = 0;
    for (;;) {
        char *out = p, *start = p;
        if (*p == '"') {
            p++;
            for (;;) {
                if (!*p)
                    break;
                if (*p == '"') {
                    if (p[1] == '"') {
                        *out++ = '"';
                        p += 2;
                        continue;
                    }
                    p++;
                    break;
                }
                *out++ = *p++;
            }
            while (*p && *p != ',' && *p != '\n' && *p != '\r')
                p++;
        } else {
            while (*p && *p != ',' && *p != '\n' && *p != '\r')
                p++;
            out = p;
        }
        char c = *p;
        *out = '\0';
        if (nf < maxf)
            fields[nf] = start;
        nf++;
        if (c == ',') {
            p++;
            continue;
        }
        if (c == '\r') {
            p++;
            c = *p;
        }
        if (c == '\n')
            p++;
        break;
    }
    *pp = p;
    return nf;
}

int pb_csv_split(char *line, char **fields, int maxf)
{
    char *p = line;
    return parse_record(&p, fields, maxf);
}

int pb_csv_split_next(char **pp, char **fields, int maxf)
{
    return parse_record(pp, fields, maxf);
}

int pb_csv_read(const char *path, pb_csv_table *t, char *err, size_t errlen)
{
    memset(t, 0, sizeof *t);
    size_t n;
    char *buf = slurp(path, &n);
    if (!buf)
        return pb_err(err, errlen, PB_EIO, "%s: cannot read", path);
    enum { MAXF = 256 };
    char *fields[MAXF];
    char *p = buf;
    int nf = parse_record(&p, fields, MAXF);
    if (nf > MAXF || !fields[0][0]) {
        free(buf);
        return pb_err(err, errlen, PB_EIO, "%s: no header row", path);
    }
    t->ncols = nf;
    t->head = calloc((size_t)nf, sizeof(char *));
    int cap = 64;
    t->rows = malloc((size_t)cap * sizeof(char **));
    int rc = (t->head && t->rows) ? PB_OK : PB_ENOMEM;
    for (int i = 0; rc == PB_OK && i < nf; i++)
        if (!(t->head[i] = strdup(fields[i])))
            rc = PB_ENOMEM;
    while (rc == PB_OK && *p) {
        int k = parse_record(&p, fields, MAXF);
        if (k == 1 && !fields[0][0])
            continue; /* blank line */
        if (t->nrows == cap) {
            char ***q = realloc(t->rows, (size_t)cap * 2 * sizeof(char **));
            if (!q) {
                rc = PB_ENOMEM;
                break;
            }
            t->rows = q;
            cap *= 2;
        }
        char **row = calloc((size_t)t->ncols, sizeof(char *));
        if (!row) {
            rc = PB_ENOMEM;
            break;
        }
        t->rows[t->nrows++] = row;
        for (int i = 0; i < t->ncols; i++)
            if (!(row[i] = strdup(i < k && i < MAXF ? fields[i] : ""))) {
                rc = PB_ENOMEM;
                break;
            }
    }
    free(buf);
    if (rc != PB_OK) {
        pb_csv_table_free(t);
        return pb_err(err, errlen, rc, "%s: out of memory", path);
    }
    return PB_OK;
}

void pb_csv_table_free(pb_csv_table *t)
{
    for (int r = 0; r < t->nrows; r++) {
        for (int i = 0; t->rows[r] && i < t->ncols; i++)
            free(t->rows[r][i]);
        free(t->rows[r]);
    }
    for (int i = 0; t->head && i < t->ncols; i++)
        free(t->head[i]);
    free(t->rows);
    free(t->head);
    memset(t, 0, sizeof *t);
}

int pb_csv_col(const pb_csv_table *t, const char *name)
{
    for (int i = 0; i < t->ncols; i++)
        if (!strcmp(t->head[i], name))
            return i;
    return -1;
}

const char *pb_csv_get(const pb_csv_table *t, int row, int col)
{
    if (col < 0 || col >= t->ncols || row < 0 || row >= t->nrows || !t->rows[row][col])
        return "";
    return t->rows[row][col];
}

double pb_csv_getnum(const pb_csv_table *t, int row, int col)
{
    const char *s = pb_csv_get(t, row, col);
    char *end;
    if (!*s)
        return NAN;
    double v = strtod(s, &end);
    return end == s ? NAN : v;
}
