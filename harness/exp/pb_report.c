/* pb_report: the checklist, the mean ± std table and paired comparisons of
 * an experiment's cells (see pb_report.h). */
#include "pb_report.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "engine/pb_util.h"
#include "exp/pb_cell.h"
#include "exp/pb_csv.h"

/* ------------------------------------------------------------ statistics */

/* Continued fraction of the regularized incomplete beta function (modified
 * Lentz), valid for x < (a + 1) / (a + b + 2). */
static double beta_cf(double a, double b, double x)
{
    const double tiny = 1e-300;
    double c = 1, d = 1 - (a + b) * x / (a + 1);
    d = fabs(d) < tiny ? tiny : d;
    d = 1 / d;
    double h = d;
    for (int m = 1; m <= 300; m++) {
        double m2 = 2.0 * m, aa = m * (b - m) * x / ((a + m2 - 1) * (a + m2));
        d = 1 + aa * d;
        d = fabs(d) < tiny ? tiny : d;
        c = 1 + aa / c;
        c = fabs(c) < tiny ? tiny : c;
        d = 1 / d;
        h *= d * c;
        aa = -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1));
        d = 1 + aa * d;
        d = fabs(d) < tiny ? tiny : d;
        c = 1 + aa / c;
        c = fabs(c) < tiny ? tiny : c;
        d = 1 / d;
        double del = d * c;
        h *= del;
        if (fabs(del - 1) < 1e-15)
            break;
    }
    return h;
}

/* I_x(a, b) */
static double beta_inc(double a, double b, double x)
{
    if (x <= 0)
        return 0;
    if (x >= 1)
        return 1;
    double lbt = lgamma(a + b) - lgamma(a) - lgamma(b) + a * log(x) + b * log(1 - x);
    if (x < (a + 1) / (a + b + 2))
        return exp(lbt) * beta_cf(a, b, x) / a;
    return 1 - exp(lbt) * beta_cf(b, a, 1 - x) / b;
}

double pb_t_cdf(double t, double df)
{
    if (isnan(t) || df <= 0)
        return NAN;
    double tail = 0.5 * beta_inc(df / 2, 0.5, df / (df + t * t)); /* P(T > |t|) */
    return t >= 0 ? 1 - tail : tail;
}

double pb_t_quantile(double p, double df)
{
    if (!(p > 0 && p < 1) || df <= 0)
        return NAN;
    double lo = -1e6, hi = 1e6;
    for (int i = 0; i < 200; i++) {
        double mid = 0.5 * (lo + hi);
        if (pb_t_cdf(mid, df) < p)
            lo = mid;
        else
            hi = mid;
    }
    return 0.5 * (lo + hi);
}

/* ------------------------------------------------------------- the cells */

/* A row's operating point is its sparsity, or on the data axis (a data
 * method bound to the cell: RS2 and the static baselines) its data fraction;
 * its baseline is the dense model, or there the full data set. */
typedef struct row {
    const char *model, *dataset, *label, *method, *spars, *dir;
    double s, value, compression, speedup;
    long seed;
    int ok, base, data;
    int diverged; /* failed because training diverged: an outcome of the method, not a missing run */
    char own[128]; /* the label of a data-axis row: [LABEL+]DATA METHOD */
} row;

typedef struct group {
    const char *model, *dataset, *label, *spars;
    double s;
    int dense;    /* the pair's baseline: the dense model, or the full data set */
    int data;     /* on the data axis: s is the data fraction */
    int n;        /* ok rows */
    int ndiv;     /* rows whose training diverged */
    double mean, sd, half; /* half: CI half-width (NAN below 2 seeds) */
    double compression, speedup;
    int first;    /* index of its first row in the sorted rows */
} group;

typedef struct report {
    pb_csv_table t[64];
    int nt;
    int data_axis; /* some row is on the data axis */
    row *rows;
    int nrows;
    group *groups;
    int ngroups;
} report;

static int same_pair(const row *a, const row *b) { return !strcmp(a->model, b->model) && !strcmp(a->dataset, b->dataset); }

/* A row's label wherever qsort has moved it (own lives in the row). */
static const char *row_label(const row *r) { return r->data ? r->own : r->label; }

static int row_cmp(const void *pa, const void *pb)
{
    const row *a = pa, *b = pb;
    int c;
    if ((c = strcmp(a->model, b->model)) || (c = strcmp(a->dataset, b->dataset)))
        return c;
    if (a->base != b->base)
        return b->base - a->base; /* the baseline first */
    if ((c = strcmp(row_label(a), row_label(b))))
        return c;
    if (a->s != b->s)
        return a->s < b->s ? -1 : 1;
    return a->seed < b->seed ? -1 : a->seed > b->seed;
}

static const char *col(const pb_csv_table *t, int r, const char *name) { return pb_csv_get(t, r, pb_csv_col(t, name)); }

static int load(report *R, const char *const *dirs, int ndirs, const char *metric, char *err, size_t errlen)
{
    if (ndirs > 64)
        return pb_err(err, errlen, PB_EUSAGE, "report: at most 64 directories");
    int total = 0;
    for (int i = 0; i < ndirs; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/cells.csv", dirs[i]);
        int rc = pb_csv_read(path, &R->t[i], err, errlen);
        if (rc != PB_OK)
            return rc;
        R->nt++;
        static const char *const need[] = {"model", "dataset", "method", "label", "sparsity", "seed", "status", NULL};
        for (int k = 0; need[k]; k++)
            if (pb_csv_col(&R->t[i], need[k]) < 0)
                return pb_err(err, errlen, PB_EIO, "%s: no column '%s' (not a prunebench cells.csv?)", path, need[k]);
        if (pb_csv_col(&R->t[i], metric) < 0)
            return pb_err(err, errlen, PB_EUSAGE, "%s: no column '%s' to report (columns: test_acc, test_loss, ...)",
                          path, metric);
        total += R->t[i].nrows;
    }
    R->rows = calloc((size_t)total + 1, sizeof(row));
    if (!R->rows)
        return pb_err(err, errlen, PB_ENOMEM, "out of memory");
    for (int i = 0; i < ndirs; i++) {
        const pb_csv_table *t = &R->t[i];
        for (int r = 0; r < t->nrows; r++) {
            row *w = &R->rows[R->nrows++];
            w->dir = dirs[i];
            w->model = col(t, r, "model");
            w->dataset = col(t, r, "dataset");
            w->label = col(t, r, "label");
            w->method = col(t, r, "method");
            w->spars = col(t, r, "sparsity");
            w->s = pb_csv_getnum(t, r, pb_csv_col(t, "sparsity"));
            w->seed = atol(col(t, r, "seed"));
            w->ok = !strcmp(col(t, r, "status"), "ok");
            /* pb_train's reason for a NaN or infinite loss */
            w->diverged = !strcmp(col(t, r, "status"), "failed") &&
                          !strncmp(col(t, r, "reason"), "training diverged", 17);
            w->value = pb_csv_getnum(t, r, pb_csv_col(t, metric));
            w->compression = pb_csv_getnum(t, r, pb_csv_col(t, "compression"));
            w->speedup = pb_csv_getnum(t, r, pb_csv_col(t, "speedup"));
            w->base = !strcmp(w->method, "dense");
            const char *data = col(t, r, "data"), *dlabel = col(t, r, "data_label");
            if (*data && *dlabel) {
                /* "rs2 r=0.1" is the data method rs2 at the point r = 0.1 */
                const char *cut = strstr(dlabel, " r=");
                int dl = cut ? (int)(cut - dlabel) : (int)strlen(dlabel);
                if (strcmp(w->label, "dense"))
                    snprintf(w->own, sizeof w->own, "%s+%.*s", w->label, dl, dlabel);
                else
                    snprintf(w->own, sizeof w->own, "%.*s", dl, dlabel);
                w->spars = col(t, r, "fraction");
                w->s = pb_csv_getnum(t, r, pb_csv_col(t, "fraction"));
                w->base = !strcmp(data, "full");
                w->data = 1;
                R->data_axis = 1;
            }
            if (!isfinite(w->value))
                w->ok = 0;
        }
    }
    qsort(R->rows, (size_t)R->nrows, sizeof(row), row_cmp);
    for (int i = 0; i < R->nrows; i++)
        R->rows[i].label = row_label(&R->rows[i]);
    return PB_OK;
}

static int same_group(const row *a, const row *b) { return same_pair(a, b) && !strcmp(a->label, b->label) && a->s == b->s; }

static int make_groups(report *R, double alpha, char *err, size_t errlen)
{
    R->groups = calloc((size_t)R->nrows + 1, sizeof(group));
    if (!R->groups)
        return pb_err(err, errlen, PB_ENOMEM, "out of memory");
    for (int i = 0; i < R->nrows;) {
        int j = i;
        while (j < R->nrows && same_group(&R->rows[i], &R->rows[j]))
            j++;
        group *g = &R->groups[R->ngroups++];
        const row *r0 = &R->rows[i];
        *g = (group){.model = r0->model, .dataset = r0->dataset, .label = r0->label, .spars = r0->spars, .s = r0->s,
                     .dense = r0->base, .data = r0->data, .first = i};
        double sum = 0, sc = 0, ss = 0;
        for (int k = i; k < j; k++)
            g->ndiv += R->rows[k].diverged;
        for (int k = i; k < j; k++)
            if (R->rows[k].ok) {
                g->n++;
                sum += R->rows[k].value;
                sc += R->rows[k].compression;
                ss += R->rows[k].speedup;
            }
        g->mean = g->n ? sum / g->n : NAN;
        g->compression = g->n ? sc / g->n : NAN;
        g->speedup = g->n ? ss / g->n : NAN;
        double v = 0;
        for (int k = i; k < j; k++)
            if (R->rows[k].ok)
                v += (R->rows[k].value - g->mean) * (R->rows[k].value - g->mean);
        g->sd = g->n > 1 ? sqrt(v / (g->n - 1)) : NAN;
        g->half = g->n > 1 ? pb_t_quantile(1 - alpha / 2, g->n - 1) * g->sd / sqrt(g->n) : NAN;
        i = j;
    }
    return PB_OK;
}

/* -------------------------------------------------------------- printing */

static void mark(FILE *f, int good, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void mark(FILE *f, int good, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(f, "- [%s] ", good ? "x" : " ");
    vfprintf(f, fmt, ap);
    fputc('\n', f);
    va_end(ap);
}

static int in_plots(const char *dir, const char *name)
{
    char path[4096], line[256];
    snprintf(path, sizeof path, "%s/plots.list", dir);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    int found = 0;
    while (!found && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        found = !strcmp(line, name);
    }
    fclose(f);
    return found;
}

static void checklist(const report *R, const char *const *dirs, int ndirs, FILE *f)
{
    fprintf(f, "## Checklist (Blalock et al. 2020)\n\n");
    /* model/data pairs; a narrowed model ("lenet5@w0.3") beside its full
     * width on the same data is that pair's baseline, not a pair of its own */
    char pairs[2048] = "", narrowed[2048] = "";
    int npairs = 0, pairs_with_dense = 0, nnarrow = 0;
    for (int i = 0; i < R->ngroups; i++) {
        const group *g = &R->groups[i];
        if (i && !strcmp(g->model, R->groups[i - 1].model) && !strcmp(g->dataset, R->groups[i - 1].dataset))
            continue;
        /* narrowed: only dense cells, beside a wider model of its base on
         * the same data (the full width, or conv4@w0.25 where that is the
         * large model) */
        const size_t base = pb_cell_model_base_len(g->model);
        const double w = pb_cell_model_width(g->model);
        int of_full = 0, only_dense = 1;
        for (int q = i; q < R->ngroups && !strcmp(R->groups[q].model, g->model) &&
                        !strcmp(R->groups[q].dataset, g->dataset);
             q++)
            only_dense &= R->groups[q].dense;
        for (int k = 0; only_dense && base < strlen(g->model) && k < R->ngroups && !of_full; k++)
            of_full = pb_cell_model_base_len(R->groups[k].model) == base &&
                      !strncmp(R->groups[k].model, g->model, base) && !strcmp(R->groups[k].dataset, g->dataset) &&
                      pb_cell_model_width(R->groups[k].model) > w;
        char *list = of_full ? narrowed : pairs;
        size_t k = strlen(list);
        snprintf(list + k, sizeof pairs - k, "%s%s on %s", k ? ", " : "", g->model, g->dataset);
        if (of_full) {
            nnarrow++;
            continue;
        }
        npairs++;
        /* the dense model, or a method at sparsity 0 (it prunes nothing:
         * dare.lua's fine-tuned model is its p = 0 point) */
        int has_base = 0;
        for (int q = i; q < R->ngroups && !has_base && !strcmp(R->groups[q].model, g->model) &&
                        !strcmp(R->groups[q].dataset, g->dataset);
             q++)
            has_base = (R->groups[q].dense || R->groups[q].s == 0) && R->groups[q].n > 0;
        pairs_with_dense += has_base;
    }
    mark(f, npairs >= 3, "%d model/data pair%s (at least 3): %s%s%s%s", npairs, npairs == 1 ? "" : "s", pairs,
         nnarrow ? " (and narrowed dense baselines of them, not pairs: " : "", narrowed, nnarrow ? ")" : "");
    mark(f, pairs_with_dense == npairs, R->data_axis ? "a baseline (the full data set) in %d of %d pairs" : "a dense baseline (or a method at sparsity 0) in %d of %d pairs",
         pairs_with_dense, npairs);
    /* operating points per method */
    int minpts = -1, nmethods = 0;
    char few[1024] = "";
    for (int i = 0; i < R->ngroups;) {
        const group *g = &R->groups[i];
        int j = i, pts = 0, pruned = 0;
        while (j < R->ngroups && !strcmp(R->groups[j].model, g->model) && !strcmp(R->groups[j].dataset, g->dataset) &&
               !strcmp(R->groups[j].label, g->label)) {
            pts += R->groups[j].n + R->groups[j].ndiv > 0; /* a point where every seed diverged was run */
            pruned |= R->groups[j].s != 0;
            j++;
        }
        if (!g->dense && pruned) { /* a label only at sparsity 0 is a baseline, not a method */
            nmethods++;
            if (minpts < 0 || pts < minpts)
                minpts = pts;
            if (pts < 5) {
                size_t k = strlen(few);
                snprintf(few + k, sizeof few - k, "%s%s (%s): %d", k ? ", " : "", g->label, g->model, pts);
            }
        }
        i = j;
    }
    mark(f, nmethods > 0 && minpts >= 5, "operating points per method: at least %d (at least 5)%s%s",
         minpts < 0 ? 0 : minpts, few[0] ? "; fewer: " : "", few);
    /* seeds */
    int short_n = 0, min_seeds = -1, ndiv = 0;
    char shortl[1024] = "";
    for (int i = 0; i < R->ngroups; i++) {
        const group *g = &R->groups[i];
        int want = !g->data && g->s >= 0.99 ? 5 : 3, ran = g->n + g->ndiv;
        ndiv += g->ndiv;
        if (min_seeds < 0 || ran < min_seeds)
            min_seeds = ran;
        if (ran < want) {
            short_n++;
            size_t k = strlen(shortl);
            if (k < sizeof shortl - 80)
                snprintf(shortl + k, sizeof shortl - k, "%s%s %s s=%s: %d", k ? ", " : "", g->model, g->label, g->spars,
                         ran);
        }
    }
    mark(f, short_n == 0,
         "seeds: at least %d per point (at least 3; 5 at s >= 0.99; a seed whose training diverged counts: %d "
         "did)%s%d point%s short%s%s",
         min_seeds < 0 ? 0 : min_seeds, ndiv, "; ", short_n, short_n == 1 ? "" : "s", short_n ? ": " : "", shortl);
    /* both axes */
    int comp = 0, speed = 0;
    for (int d = 0; d < ndirs; d++) {
        comp += in_plots(dirs[d], "accuracy_vs_compression") || in_plots(dirs[d], "accuracy_vs_params");
        /* the compression chart brings the speedup chart with it (pb_plot) */
        speed += in_plots(dirs[d], "accuracy_vs_flops") || in_plots(dirs[d], "accuracy_vs_speedup") ||
                 in_plots(dirs[d], "accuracy_vs_compression");
    }
    if (R->data_axis) {
        /* data pruning is judged on time to accuracy, not on the weights */
        int timed = 0;
        for (int d = 0; d < ndirs; d++)
            timed += in_plots(dirs[d], "time_to_accuracy") || in_plots(dirs[d], "accuracy_vs_train_flops");
        mark(f, timed == ndirs,
             "data axis: time to accuracy charted (time_to_accuracy or accuracy_vs_train_flops) in %d of %d "
             "directories (compression and speedup do not apply: the weights are not pruned)",
             timed, ndirs);
    } else {
        mark(f, comp == ndirs, "compression charted (accuracy_vs_compression or _params) in %d of %d directories",
             comp, ndirs);
        mark(f, speed == ndirs, "theoretical speedup charted (accuracy_vs_speedup or _flops) in %d of %d directories",
             speed, ndirs);
    }
    int failed = 0;
    for (int i = 0; i < R->nrows; i++)
        failed += !R->rows[i].ok && !R->rows[i].diverged;
    mark(f, failed == 0, "%d of %d cells failed or have no value (besides the %d whose training diverged)", failed,
         R->nrows, ndiv);
    fputc('\n', f);
}

static void num(FILE *f, double v, const char *fmt)
{
    if (isnan(v))
        fprintf(f, "–");
    else
        fprintf(f, fmt, v);
}

/* The operating point's column: sparsity, or r (data fraction) on the data axis. */
#define POINT(R) ((R)->data_axis ? "sparsity or r" : "sparsity")

static void table(const report *R, const pb_report_opts *o, FILE *f)
{
    const int tex = o->format == PB_REPORT_LATEX;
    const double conf = 100 * (1 - o->alpha);
    fprintf(f, "## %s: mean ± std over seeds, %.0f %% confidence interval\n\n", o->metric, conf);
    if (tex)
        fprintf(f, "\\begin{tabular}{lllrrlrrr}\n\\hline\nmodel & data & method & %s & seeds & %s & "
                   "%.0f\\,\\%% CI & compression & speedup \\\\\n\\hline\n",
                POINT(R), o->metric, conf);
    else
        fprintf(f, "| model | data | method | %s | seeds | %s | %.0f %% CI | compression | speedup |\n"
                   "|---|---|---|---:|---:|---|---|---:|---:|\n",
                POINT(R), o->metric, conf);
    for (int i = 0; i < R->ngroups; i++) {
        const group *g = &R->groups[i];
        const char *sep = tex ? " & " : " | ";
        fprintf(f, "%s%s%s%s%s%s%s%s%s%d", tex ? "" : "| ", g->model, sep, g->dataset, sep, g->label, sep, g->spars,
                sep, g->n);
        if (g->ndiv)
            fprintf(f, " (+%d diverged)", g->ndiv);
        fprintf(f, "%s", sep);
        num(f, g->mean, "%.4f");
        fprintf(f, tex ? " $\\pm$ " : " ± ");
        num(f, g->sd, "%.4f");
        fprintf(f, "%s", sep);
        if (isnan(g->half))
            fprintf(f, "–");
        else
            fprintf(f, "[%.4f, %.4f]", g->mean - g->half, g->mean + g->half);
        fprintf(f, "%s", sep);
        num(f, g->compression, "%.4g");
        fprintf(f, "%s", sep);
        num(f, g->speedup, "%.4g");
        fprintf(f, "%s\n", tex ? " \\\\" : " |");
    }
    if (tex)
        fprintf(f, "\\hline\n\\end{tabular}\n");
    fputc('\n', f);
}

/* The reference group a group is compared with: the same pair and sparsity,
 * or the pair's only point of the reference label (a dense baseline). */
static const group *reference_of(const report *R, const group *g, const char *against)
{
    const group *only = NULL;
    int count = 0;
    for (int i = 0; i < R->ngroups; i++) {
        const group *h = &R->groups[i];
        if (strcmp(h->model, g->model) || strcmp(h->dataset, g->dataset) || strcmp(h->label, against))
            continue;
        if (h->s == g->s)
            return h;
        only = h;
        count++;
    }
    return count == 1 ? only : NULL;
}

static void paired(const report *R, const pb_report_opts *o, FILE *f)
{
    const int tex = o->format == PB_REPORT_LATEX;
    fprintf(f, "## Paired by seed against %s: %s difference, two-sided t test at %.2g\n\n", o->against, o->metric,
            o->alpha);
    if (!tex)
        fprintf(f, "| model | data | method | %s | pairs | difference | %.0f %% CI | t | p | verdict |\n"
                   "|---|---|---|---:|---:|---|---|---:|---:|---|\n",
                POINT(R), 100 * (1 - o->alpha));
    else
        fprintf(f, "\\begin{tabular}{lllrrllrrl}\n\\hline\nmodel & data & method & %s & pairs & difference & "
                   "CI & $t$ & $p$ & verdict \\\\\n\\hline\n", POINT(R));
    int shown = 0;
    for (int i = 0; i < R->ngroups; i++) {
        const group *g = &R->groups[i];
        if (!strcmp(g->label, o->against))
            continue;
        const group *h = reference_of(R, g, o->against);
        if (!h)
            continue;
        /* rows of both groups, matched by seed */
        double d[4096];
        int n = 0;
        for (int a = g->first; a < R->nrows && same_group(&R->rows[a], &R->rows[g->first]); a++)
            for (int b = h->first; b < R->nrows && same_group(&R->rows[b], &R->rows[h->first]); b++)
                if (R->rows[a].ok && R->rows[b].ok && R->rows[a].seed == R->rows[b].seed && n < 4096)
                    d[n++] = R->rows[a].value - R->rows[b].value;
        double mean = 0, v = 0;
        for (int k = 0; k < n; k++)
            mean += d[k];
        mean = n ? mean / n : NAN;
        for (int k = 0; k < n; k++)
            v += (d[k] - mean) * (d[k] - mean);
        double sd = n > 1 ? sqrt(v / (n - 1)) : NAN, t = NAN, p = NAN, half = NAN;
        const char *verdict;
        if (n < 2)
            verdict = "too few paired seeds";
        else {
            double se = sd / sqrt(n);
            half = pb_t_quantile(1 - o->alpha / 2, n - 1) * se;
            if (se > 0) {
                t = mean / se;
                p = 2 * (1 - pb_t_cdf(fabs(t), n - 1));
            } else {
                t = mean == 0 ? 0 : copysign(INFINITY, mean);
                p = mean == 0 ? 1 : 0;
            }
            verdict = p < o->alpha ? (mean > 0 ? "higher, beyond noise" : "lower, beyond noise") : "within noise";
        }
        const char *sep = tex ? " & " : " | ";
        fprintf(f, "%s%s%s%s%s%s%s%s%s%d%s", tex ? "" : "| ", g->model, sep, g->dataset, sep, g->label, sep, g->spars,
                sep, n, sep);
        num(f, mean, "%+.4f");
        fprintf(f, tex ? " $\\pm$ " : " ± ");
        num(f, sd, "%.4f");
        fprintf(f, "%s", sep);
        if (isnan(half))
            fprintf(f, "–");
        else
            fprintf(f, "[%+.4f, %+.4f]", mean - half, mean + half);
        fprintf(f, "%s", sep);
        num(f, t, "%.2f");
        fprintf(f, "%s", sep);
        num(f, p, "%.3g");
        fprintf(f, "%s%s%s\n", sep, verdict, tex ? " \\\\" : " |");
        shown++;
    }
    if (tex)
        fprintf(f, "\\hline\n\\end{tabular}\n");
    if (!shown)
        fprintf(f, "(no method shares a model, data set and sparsity with %s)\n", o->against);
    fputc('\n', f);
}

int pb_report(const char *const *dirs, int ndirs, const pb_report_opts *o, FILE *f, char *err, size_t errlen)
{
    pb_report_opts opts = *o;
    if (!opts.metric)
        opts.metric = "test_acc";
    if (!(opts.alpha > 0 && opts.alpha < 1))
        opts.alpha = 0.05;
    report R;
    memset(&R, 0, sizeof R);
    int rc = load(&R, dirs, ndirs, opts.metric, err, errlen);
    if (rc == PB_OK)
        rc = make_groups(&R, opts.alpha, err, errlen);
    if (rc == PB_OK && opts.against) {
        int found = 0;
        for (int i = 0; i < R.ngroups && !found; i++)
            found = !strcmp(R.groups[i].label, opts.against);
        if (!found) {
            char labels[1024] = "";
            for (int i = 0; i < R.ngroups; i++)
                if (!strstr(labels, R.groups[i].label)) {
                    size_t k = strlen(labels);
                    snprintf(labels + k, sizeof labels - k, "%s%s", k ? ", " : "", R.groups[i].label);
                }
            rc = pb_err(err, errlen, PB_EUSAGE, "--against: no method labelled '%s' (labels: %s)", opts.against, labels);
        }
    }
    if (rc == PB_OK) {
        fprintf(f, "# Report:");
        for (int i = 0; i < ndirs; i++)
            fprintf(f, " %s", dirs[i]);
        fprintf(f, "\n\n%d cells in %d groups (model, data set, method, sparsity).\n\n", R.nrows, R.ngroups);
        checklist(&R, dirs, ndirs, f);
        table(&R, &opts, f);
        if (opts.against)
            paired(&R, &opts, f);
    }
    for (int i = 0; i < R.nt; i++)
        pb_csv_table_free(&R.t[i]);
    free(R.rows);
    free(R.groups);
    return rc;
}
