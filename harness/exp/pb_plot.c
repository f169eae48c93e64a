/* pb_plot: aggregation of results and gnuplot scripts. */
#include "pb_plot.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "pb_cell.h"
#include "pb_csv.h"
#include "pb_plot_data.h"
#include "engine/pb_util.h"

const char *const pb_plot_names[] = {"accuracy_vs_compression", "accuracy_vs_params", "accuracy_vs_flops",
                                     "accuracy_vs_time", "accuracy_vs_epochs", "layer_sparsity",
                                     "time_to_accuracy", "accuracy_vs_train_flops", "time_to_target",
                                     "accuracy_at_time", "accuracy_vs_sparsity", "accuracy_vs_speedup",
                                     "measured_speedup", NULL};

#define MAXS 64      /* series per chart */
#define MAXG 4096    /* groups (series x target sparsity) */

typedef struct results {
    pb_csv_table cells, curves, layers;
    int have_curves, have_layers;
    int c_cell, c_label, c_model, c_dataset, c_sparsity, c_seed, c_status, c_acc, c_comp, c_nonzero,
        c_flops, c_method, c_params;
    int c_stored, c_speedup, c_flops_dense;
    /* language-model results (a test_ppl value in cells.csv): the charts plot
     * perplexity, lower is better, on a log axis, in place of accuracy */
    int lm;
    const char *ylabel, *ycol;
    int multi;                 /* more than one (base model, dataset): series names carry them */
    int widths_differ;         /* methods on more than one model string: a width suffix tells series apart */
    int models_differ;         /* cells on more than one model string: the curves' series (one per width) */
    char *series[MAXS];        /* series names, in order of first appearance; index = style */
    int nseries;
    int *row_series;           /* per cells row: series of the accuracy charts, -1 if not ok */
    int *row_cseries;          /* per cells row: series of the curves (one per width), -1 if not ok */
    int *row_narrowed;         /* per cells row: 1 for a dense cell joined into "dense (narrowed)" */
    double sparsities[256];    /* distinct target sparsities > 0, ascending */
    int nsp;
} results;

typedef struct chart {
    const char *dir;           /* DIR/plots */
    const char *ctx;           /* "experiment: models on data sets", the head of every title */
    int gnuplot_missing;
    int drawn, verbose;
} chart;

static size_t base_len(const char *model) { return pb_cell_model_base_len(model); }

static int same_base(const char *a, const char *b)
{
    size_t n = base_len(a);
    return n == base_len(b) && !strncmp(a, b, n);
}

static int is_dense_row(const results *r, int row)
{
    return !strcmp(pb_csv_get(&r->cells, row, r->c_method), "dense");
}

/* The series of a row; a narrowed dense cell is named after its base model so
 * that every width of it lands in one series. The curves (curves = 1) keep
 * one series per width. */
static void series_name(const results *r, int row, int narrowed, int curves, char *buf, size_t n)
{
    const char *label = narrowed ? "dense" : pb_csv_get(&r->cells, row, r->c_label);
    const char *model = pb_csv_get(&r->cells, row, r->c_model);
    int mlen = narrowed ? (int)base_len(model) : (int)strlen(model);
    if (r->multi)
        snprintf(buf, n, "%s (%s%.*s, %s)", label, narrowed ? "narrowed " : "", mlen, model,
                 pb_csv_get(&r->cells, row, r->c_dataset));
    else if (narrowed)
        snprintf(buf, n, "dense (narrowed)");
    else if (!narrowed && model[base_len(model)] && (curves ? r->models_differ : r->widths_differ))
        snprintf(buf, n, "%s (%s)", label, model);
    else
        snprintf(buf, n, "%s", label);
}

static int series_index(results *r, const char *name)
{
    int s = 0;
    while (s < r->nseries && strcmp(r->series[s], name))
        s++;
    if (s == r->nseries) {
        if (r->nseries == MAXS)
            return -1;
        r->series[r->nseries++] = strdup(name);
    }
    return s;
}

/* Whether dense cells of row's base model and data set were run at more than one width. */
static int has_narrowed(const results *r, int row)
{
    const pb_csv_table *t = &r->cells;
    const char *model = pb_csv_get(t, row, r->c_model), *ds = pb_csv_get(t, row, r->c_dataset);
    for (int i = 0; i < t->nrows; i++)
        if (is_dense_row(r, i) && !strcmp(pb_csv_get(t, i, r->c_status), "ok") &&
            !strcmp(pb_csv_get(t, i, r->c_dataset), ds) && same_base(pb_csv_get(t, i, r->c_model), model) &&
            strcmp(pb_csv_get(t, i, r->c_model), model))
            return 1;
    return 0;
}

static int prepare(results *r)
{
    const pb_csv_table *t = &r->cells;
    r->c_cell = pb_csv_col(t, "cell");
    r->c_label = pb_csv_col(t, "label");
    r->c_model = pb_csv_col(t, "model");
    r->c_dataset = pb_csv_col(t, "dataset");
    r->c_method = pb_csv_col(t, "method");
    r->c_sparsity = pb_csv_col(t, "sparsity");
    r->c_seed = pb_csv_col(t, "seed");
    r->c_status = pb_csv_col(t, "status");
    r->c_acc = pb_csv_col(t, "test_acc");
    r->c_comp = pb_csv_col(t, "compression");
    r->c_nonzero = pb_csv_col(t, "nonzero");
    r->c_flops = pb_csv_col(t, "flops_eff");
    r->c_params = pb_csv_col(t, "params");
    r->c_stored = pb_csv_col(t, "stored");
    r->c_speedup = pb_csv_col(t, "speedup");
    r->c_flops_dense = pb_csv_col(t, "flops_dense");
    if (r->c_cell < 0 || r->c_label < 0 || r->c_sparsity < 0 || r->c_status < 0 || r->c_acc < 0)
        return -1;
    r->ycol = "test_acc";
    r->ylabel = "test accuracy";
    const int c_ppl = pb_csv_col(t, "test_ppl");
    for (int i = 0; c_ppl >= 0 && i < t->nrows && !r->lm; i++)
        r->lm = pb_csv_get(t, i, c_ppl)[0] != 0;
    if (r->lm) {
        r->c_acc = c_ppl;
        r->ycol = "test_ppl";
        r->ylabel = "test perplexity (lower is better)";
    }
    size_t n = (size_t)(t->nrows ? t->nrows : 1);
    r->row_series = malloc(sizeof(int) * n);
    r->row_cseries = malloc(sizeof(int) * n);
    r->row_narrowed = calloc(n, sizeof(int));
    if (!r->row_series || !r->row_cseries || !r->row_narrowed)
        return -1;
    for (int i = 1; i < t->nrows; i++)
        if (!same_base(pb_csv_get(t, i, r->c_model), pb_csv_get(t, 0, r->c_model)) ||
            strcmp(pb_csv_get(t, i, r->c_dataset), pb_csv_get(t, 0, r->c_dataset)))
            r->multi = 1;
    /* the dense cells of a narrowed baseline are one series of their own
     * ("dense (narrowed)"), so only the other methods' models count: pruned
     * at one width, their series need no width suffix */
    for (int i = 0; i < t->nrows; i++)
        r->row_narrowed[i] = is_dense_row(r, i) && has_narrowed(r, i);
    for (int i = 1; i < t->nrows; i++)
        r->models_differ |= strcmp(pb_csv_get(t, i, r->c_model), pb_csv_get(t, 0, r->c_model)) != 0;
    for (int i = 0, first = -1; i < t->nrows; i++) {
        if (r->row_narrowed[i])
            continue;
        if (first < 0)
            first = i;
        else
            r->widths_differ |= strcmp(pb_csv_get(t, i, r->c_model), pb_csv_get(t, first, r->c_model)) != 0;
    }
    for (int i = 0; i < t->nrows; i++) {
        r->row_series[i] = r->row_cseries[i] = -1;
        if (strcmp(pb_csv_get(t, i, r->c_status), "ok"))
            continue;
        char name[256];
        series_name(r, i, r->row_narrowed[i], 0, name, sizeof name);
        r->row_series[i] = series_index(r, name);
        double sp = pb_csv_getnum(t, i, r->c_sparsity);
        if (sp > 0 && !is_dense_row(r, i)) {
            int k = 0;
            while (k < r->nsp && fabs(r->sparsities[k] - sp) > 1e-12)
                k++;
            if (k == r->nsp && r->nsp < 256)
                r->sparsities[r->nsp++] = sp;
        }
    }
    /* the curves' own series (one per width) after those of the accuracy charts,
     * so that the first colours go to the series most charts show */
    for (int i = 0; i < t->nrows; i++) {
        if (r->row_series[i] < 0)
            continue;
        char name[256];
        series_name(r, i, 0, 1, name, sizeof name);
        r->row_cseries[i] = series_index(r, name);
    }
    for (int a = 0; a < r->nsp; a++)
        for (int b = a + 1; b < r->nsp; b++)
            if (r->sparsities[b] < r->sparsities[a]) {
                double tmp = r->sparsities[a];
                r->sparsities[a] = r->sparsities[b];
                r->sparsities[b] = tmp;
            }
    return 0;
}

static void free_results(results *r)
{
    pb_csv_table_free(&r->cells);
    if (r->have_curves)
        pb_csv_table_free(&r->curves);
    if (r->have_layers)
        pb_csv_table_free(&r->layers);
    for (int i = 0; i < r->nseries; i++)
        free(r->series[i]);
    free(r->row_series);
    free(r->row_cseries);
    free(r->row_narrowed);
}

/* gnuplot single-quoted string: '' inside */
/* Every text of the results that reaches a .gp or .dat file (labels, model,
 * data set and experiment names) comes from a CSV file that may have been
 * crafted: a newline would end gnuplot's command and start one of the
 * sender's (`!cmd` runs a shell). Control characters become spaces. */
static int gp_char(int ch) { return (unsigned char)ch < 0x20 || ch == 0x7f ? ' ' : ch; }

static void gp_quote(FILE *f, const char *s)
{
    fputc('\'', f);
    for (; *s; s++) {
        if (*s == '\'')
            fputc('\'', f);
        fputc(gp_char(*s), f);
    }
    fputc('\'', f);
}

/* A text in a .dat file (a comment or a field): one line, no quotes. */
static void dat_text(FILE *d, const char *s)
{
    for (; *s; s++)
        fputc(*s == '"' ? '\'' : gp_char(*s), d);
}

/* The style of series k: 8 colours, and from the 9th series on other dash
 * types; the point type cycles with a period prime to both, so no two of the
 * MAXS series look alike. The same series keeps its style in every chart. */
static const char *const colours[] = {"#0072b2", "#d55e00", "#009e73", "#cc79a7",
                                      "#e69f00", "#56b4e9", "#000000", "#999933"};
static const int point_types[] = {7, 5, 9, 13, 11, 6, 4, 8, 12, 10, 1, 2, 3};

static void style(FILE *f, int k)
{
    fprintf(f, " lc rgb '%s' pt %d dt %d", colours[k % 8], point_types[k % 13], 1 + k / 8 % 5);
}

/* A bar's fill: solid for the first 8 series, then hatched patterns. */
static void bar_style(FILE *f, int k)
{
    if (k < 8)
        fprintf(f, " lc rgb '%s' fs solid 0.85 border -1", colours[k]);
    else
        fprintf(f, " lc rgb '%s' fs pattern %d border -1", colours[k % 8], 1 + (k / 8 - 1) % 7);
}

/* A perplexity axis: log scale over [lo, hi] (clamped at 1) with six ticks
 * spaced evenly in log, since a range narrower than a decade gets no default
 * tick of gnuplot's. */
static void log_ppl_axis(FILE *f, double lo, double hi)
{
    lo = (lo > 1 ? lo : 1) / 1.05;
    hi = hi > lo ? hi * 1.05 : lo * 1.2;
    fprintf(f, "set logscale y\nset yrange [%g:%g]\nset ytics (", lo, hi);
    for (int k = 0; k < 6; k++)
        fprintf(f, "%s%.3g", k ? ", " : "", lo * pow(hi / lo, (k + 0.5) / 6.0));
    fprintf(f, ")\n");
}

static FILE *open_gp(const chart *ch, const char *name, const char *title, const char *xlabel,
                     const char *ylabel)
{
    char path[4400];
    snprintf(path, sizeof path, "%s/%s.gp", ch->dir, name);
    FILE *f = fopen(path, "w");
    if (!f)
        return NULL;
    /* no absolute path: the scripts travel with the results they draw */
    fprintf(f, "# Written by prunebench %s from the results CSV files; edit and rerun with\n"
               "#   gnuplot %s.gp\n# in this directory (the plots directory of the results).\n", PACKAGE_VERSION, name);
    fprintf(f, "set terminal pngcairo size 960,600 font ',10' noenhanced\nset output '%s.png'\n", name);
    char full[1024];
    snprintf(full, sizeof full, "%s%s%s", ch->ctx ? ch->ctx : "", ch->ctx ? ": " : "", title);
    fprintf(f, "set title ");
    gp_quote(f, full);
    fprintf(f, "\nset xlabel ");
    gp_quote(f, xlabel);
    fprintf(f, "\nset ylabel ");
    gp_quote(f, ylabel);
    fprintf(f, "\nset grid\n" PB_PLOT_KEY "\n");
    return f;
}

/* Closes the script with the SVG copy of the same plot. */
static void close_gp(FILE *f, const char *name)
{
    fprintf(f, "\nset terminal svg size 960,600 dynamic font 'sans,10' noenhanced\nset output '%s.svg'\nreplot\n"
               "unset output\n", name);
    fclose(f);
}

static void draw(chart *ch, const char *name)
{
    if (ch->gnuplot_missing)
        return;
    pid_t pid = fork();
    if (pid < 0)
        return;
    if (pid == 0) {
        char gp[512], log[4400];
        snprintf(gp, sizeof gp, "%s.gp", name);
        snprintf(log, sizeof log, "%s/gnuplot.log", ch->dir);
        if (chdir(ch->dir) != 0)
            _exit(126);
        int fd = open("gnuplot.log", O_WRONLY | O_CREAT | O_APPEND, 0666);
        if (fd >= 0) {
            dup2(fd, 2);
            dup2(fd, 1);
            close(fd);
        }
        execlp(PB_GNUPLOT, "gnuplot", gp, (char *)NULL);
        _exit(127);
    }
    int status;
    waitpid(pid, &status, 0);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 127) {
        ch->gnuplot_missing = 1;
        if (ch->verbose)
            fprintf(stderr, "prunebench: gnuplot (%s) not found: wrote the .gp scripts and data under %s; "
                            "install the Debian package gnuplot-nox to draw them\n", PB_GNUPLOT, ch->dir);
        return;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        ch->drawn++;
    else if (ch->verbose)
        fprintf(stderr, "prunebench: gnuplot failed on %s/%s.gp (see %s/gnuplot.log)\n", ch->dir, name, ch->dir);
}

/* ---- accuracy against a per-cell x (compression, nonzero, FLOPs), mean ± std over seeds ---- */

typedef struct group {
    int series;
    int row;                   /* the first cells row of the group (its model) */
    double sp;
    int n;
    double sx, sy, syy, snz;
    double key;                /* order along the series' line */
} group;

static int cmp_group(const void *a, const void *b)
{
    const group *x = a, *y = b;
    if (x->series != y->series)
        return x->series - y->series;
    return (x->key > y->key) - (x->key < y->key);
}

/* Column col (parameters, dense FLOPs) of the full-width model a narrowed
 * row was cut from: the widest model of its base and data set in the
 * experiment (conv4 at width 0.25 where that is the large model), NaN when
 * there is none. */
static double full_value(const results *r, int row, int col)
{
    const pb_csv_table *t = &r->cells;
    const char *model = pb_csv_get(t, row, r->c_model), *ds = pb_csv_get(t, row, r->c_dataset);
    double best = NAN, wbest = -1;
    for (int i = 0; col >= 0 && i < t->nrows; i++) {
        const char *m = pb_csv_get(t, i, r->c_model);
        if (r->row_series[i] < 0 || !same_base(m, model) || strcmp(pb_csv_get(t, i, r->c_dataset), ds))
            continue;
        const double w = pb_cell_model_width(m);
        if (w > wbest)
            wbest = w, best = pb_csv_getnum(t, i, col);
    }
    return best;
}

/* rel_full: x of a narrowed dense cell is measured against the full-width
 * model (its own compression and speedup are 1): the full model's parameters
 * over its nonzero ones, or the full model's dense FLOPs over its effective
 * ones. */
static int chart_scatter(chart *ch, const results *r, const char *name, int xcol, const char *xlabel,
                         int logbase, int rel_full)
{
    const pb_csv_table *t = &r->cells;
    if (xcol < 0)
        return 0;
    group *g = calloc(MAXG, sizeof *g);
    if (!g)
        return -1;
    int ng = 0;
    for (int i = 0; i < t->nrows; i++) {
        int s = r->row_series[i];
        double x = pb_csv_getnum(t, i, xcol), y = pb_csv_getnum(t, i, r->c_acc);
        double sp = pb_csv_getnum(t, i, r->c_sparsity), nz = pb_csv_getnum(t, i, r->c_nonzero);
        if (rel_full == 2) /* x is the target sparsity: drawn as 1 / (1 - s), the drop's rescale */
            x = x < 1 ? 1.0 / (1.0 - x) : NAN;
        /* parameter sharing stores fewer values than it has nonzero weights: it
         * sits where a pruned model storing as many values does */
        double st = r->c_stored >= 0 ? pb_csv_getnum(t, i, r->c_stored) : NAN;
        if (st > 0 && st < nz && (xcol == r->c_comp || xcol == r->c_nonzero)) {
            x = xcol == r->c_comp ? pb_csv_getnum(t, i, r->c_params) / st : st;
            nz = st;
        }
        if (s >= 0 && rel_full == 1 && r->row_narrowed[i] && nz > 0) {
            const int speed = xcol == r->c_speedup;
            const double full = full_value(r, i, speed ? r->c_flops_dense : r->c_params),
                         own = speed ? pb_csv_getnum(t, i, r->c_flops) : nz;
            if (full > 0 && own > 0)
                x = full / own;
        }
        if (s < 0 || !isfinite(x) || !isfinite(y) || x <= 0)
            continue;
        int k = 0;
        while (k < ng && !(g[k].series == s && fabs(g[k].sp - sp) < 1e-12 &&
                           !strcmp(pb_csv_get(t, g[k].row, r->c_model), pb_csv_get(t, i, r->c_model))))
            k++;
        if (k == ng) {
            if (ng == MAXG)
                continue;
            g[ng++] = (group){.series = s, .sp = sp, .row = i};
        }
        g[k].n++;
        g[k].sx += x;
        g[k].sy += y;
        g[k].syy += y * y;
        g[k].snz += nz;
    }
    if (ng == 0) {
        free(g);
        return 0;
    }
    /* a narrowed dense series is a line over widths, by nonzero parameters */
    for (int k = 0; k < ng; k++)
        g[k].key = r->row_narrowed[g[k].row] ? g[k].snz / g[k].n : g[k].sx / g[k].n;
    qsort(g, (size_t)ng, sizeof *g, cmp_group);
    char path[4400];
    snprintf(path, sizeof path, "%s/%s.dat", ch->dir, name);
    FILE *d = fopen(path, "w");
    char chart_title[160];
    snprintf(chart_title, sizeof chart_title, "%s (mean ± std over seeds)", r->ylabel);
    FILE *f = d ? open_gp(ch, name, chart_title, xlabel, r->ylabel) : NULL;
    if (!d || !f) {
        if (d)
            fclose(d);
        free(g);
        return -1;
    }
    /* The unpruned model of a (model, data set) is a reference, not a point
     * on the x axis: a horizontal line at its mean with its ± std band across
     * the chart (unless it is all there is). Narrowed dense models stay a
     * series: their widths are operating points. */
    int *band = calloc((size_t)ng, sizeof *band);
    if (!band) {
        fclose(d), fclose(f), free(g);
        return -1;
    }
    int nonband = 0;
    for (int k = 0; k < ng; k++) {
        band[k] = is_dense_row(r, g[k].row) && !r->row_narrowed[g[k].row];
        nonband += !band[k];
    }
    for (int k = 0; k < ng && nonband == 0; k++)
        band[k] = 0;
    /* the x range from the operating points, the y range from every mean ± std */
    double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
    for (int k = 0; k < ng; k++) {
        double m = g[k].sy / g[k].n;
        double var = g[k].n > 1 ? (g[k].syy - g[k].n * m * m) / (g[k].n - 1) : 0;
        double sd = var > 0 ? sqrt(var) : 0;
        ymin = m - sd < ymin ? m - sd : ymin;
        ymax = m + sd > ymax ? m + sd : ymax;
        if (band[k])
            continue;
        double x = g[k].sx / g[k].n;
        xmin = x < xmin ? x : xmin;
        xmax = x > xmax ? x : xmax;
    }
    double xlo, xhi;
    if (logbase) {
        xlo = xmin / 1.3, xhi = xmax * 1.3;
        fprintf(f, "set logscale x %d\n", logbase);
    } else {
        double span = xmax > xmin ? xmax - xmin : fabs(xmin) > 0 ? fabs(xmin) : 1;
        xlo = xmin - 0.04 * span, xhi = xmax + 0.04 * span;
    }
    double yspan = ymax - ymin > 0.01 ? ymax - ymin : 0.01;
    if (r->lm) /* perplexity on a log axis */
    {
        fprintf(f, "set xrange [%g:%g]\n", xlo, xhi);
        log_ppl_axis(f, ymin, ymax);
    }
    else
        fprintf(f, "set xrange [%g:%g]\nset yrange [%g:%g]\n", xlo, xhi, ymin - 0.05 * yspan, ymax + 0.05 * yspan);
    fprintf(d, "# x mean, %s mean, %s std, seeds, target sparsity, nonzero mean, model; "
               "one block per series; a baseline band block: x, mean - std, mean + std, mean, seeds\n", r->ycol, r->ycol);
    int block = -1, prev = -1;
    fprintf(f, "plot ");
    for (int k = 0; k < ng; k++) {
        if (band[k])
            continue;
        if (g[k].series != prev) {
            if (block >= 0)
                fprintf(d, "\n\n");
            block++;
            prev = g[k].series;
            fprintf(d, "# ");
            dat_text(d, r->series[prev]);
            fprintf(d, "\n");
            fprintf(f, "%s'%s.dat' index %d using 1:2:3 with yerrorlines pointsize 0.8", block ? ", \\\n     " : "",
                    name, block);
            style(f, prev);
            fprintf(f, " title ");
            gp_quote(f, r->series[prev]);
        }
        double m = g[k].sy / g[k].n;
        double var = g[k].n > 1 ? (g[k].syy - g[k].n * m * m) / (g[k].n - 1) : 0;
        fprintf(d, "%.8g %.6f %.6f %d %g %.8g ", g[k].sx / g[k].n, m, var > 0 ? sqrt(var) : 0, g[k].n, g[k].sp,
                g[k].snz / g[k].n);
        dat_text(d, pb_csv_get(t, g[k].row, r->c_model));
        fputc('\n', d);
    }
    for (int k = 0; k < ng; k++) {
        if (!band[k])
            continue;
        double m = g[k].sy / g[k].n;
        double var = g[k].n > 1 ? (g[k].syy - g[k].n * m * m) / (g[k].n - 1) : 0;
        double sd = var > 0 ? sqrt(var) : 0;
        block++;
        fprintf(d, "\n\n# baseline band: ");
        dat_text(d, r->series[g[k].series]);
        fprintf(d, " (");
        dat_text(d, pb_csv_get(t, g[k].row, r->c_model));
        fprintf(d, ")\n%g %.6f %.6f %.6f %d\n%g %.6f %.6f %.6f %d\n", xlo, m - sd, m + sd, m, g[k].n, xhi, m - sd,
                m + sd, m, g[k].n);
        const char *col = colours[g[k].series % 8];
        char title[320];
        snprintf(title, sizeof title, "%s: %.4f ± %.4f (%d seed%s)", r->series[g[k].series], m, sd, g[k].n,
                 g[k].n == 1 ? "" : "s");
        fprintf(f, "%s'%s.dat' index %d using 1:2:3 with filledcurves fs transparent solid 0.15 noborder "
                   "lc rgb '%s' notitle, \\\n     '%s.dat' index %d using 1:4 with lines lw 1.5 dt 2 lc rgb '%s' title ",
                block ? ", \\\n     " : "", name, block, col, name, block, col);
        gp_quote(f, title);
    }
    free(band);
    fprintf(f, "\n");
    fclose(d);
    close_gp(f, name);
    free(g);
    draw(ch, name);
    return 0;
}

/* ---- measured against theoretical speedup (sparse execution) ---- */

/* Per series and target sparsity, the batch-1 inference speedup measured
 * (dense kernels over the kernels the engine chose, measured_speedup)
 * against the theoretical one (flops_dense / flops_eff, speedup), means over
 * seeds with the measured one's std; the diagonal is where the measured
 * speedup reaches the theoretical. */
static int chart_speed(chart *ch, const results *r)
{
    const pb_csv_table *t = &r->cells;
    const int cm = pb_csv_col(t, "measured_speedup"), ct = pb_csv_col(t, "speedup");
    if (cm < 0 || ct < 0)
        return 0;
    group *g = calloc(MAXG, sizeof *g);
    if (!g)
        return -1;
    int ng = 0;
    for (int i = 0; i < t->nrows; i++) {
        const int s = r->row_series[i];
        const double x = pb_csv_getnum(t, i, ct), y = pb_csv_getnum(t, i, cm), sp = pb_csv_getnum(t, i, r->c_sparsity);
        if (s < 0 || !isfinite(x) || !isfinite(y) || x <= 0 || y <= 0)
            continue;
        int k = 0;
        while (k < ng && !(g[k].series == s && fabs(g[k].sp - sp) < 1e-12 &&
                           !strcmp(pb_csv_get(t, g[k].row, r->c_model), pb_csv_get(t, i, r->c_model))))
            k++;
        if (k == ng) {
            if (ng == MAXG)
                continue;
            g[ng++] = (group){.series = s, .sp = sp, .row = i};
        }
        g[k].n++;
        g[k].sx += x;
        g[k].sy += y;
        g[k].syy += y * y;
    }
    if (ng == 0) {
        free(g);
        return 0;
    }
    for (int k = 0; k < ng; k++)
        g[k].key = g[k].sx / g[k].n;
    qsort(g, (size_t)ng, sizeof *g, cmp_group);
    const char *name = "measured_speedup";
    char path[4400];
    snprintf(path, sizeof path, "%s/%s.dat", ch->dir, name);
    FILE *d = fopen(path, "w");
    FILE *f = d ? open_gp(ch, name, "batch-1 inference, measured vs theoretical speedup (mean ± std)",
                          "theoretical speedup (dense FLOPs / effective FLOPs)",
                          "measured speedup (dense kernels / kernels as executed)")
                : NULL;
    if (!d || !f) {
        if (d)
            fclose(d);
        free(g);
        return -1;
    }
    double hi = 1;
    for (int k = 0; k < ng; k++) {
        const double m = g[k].sy / g[k].n, x = g[k].sx / g[k].n;
        hi = fmax(hi, fmax(m, x));
    }
    fprintf(f, "set logscale xy 2\nset xrange [0.8:%g]\nset yrange [0.4:%g]\n", hi * 1.3, hi * 1.3);
    fprintf(d, "# theoretical speedup mean, measured speedup mean, its std, seeds, target sparsity, model; "
               "one block per series\n");
    fprintf(f, "plot x with lines lc rgb '#999999' dt 2 title 'measured = theoretical'");
    int block = -1, prev = -1;
    for (int k = 0; k < ng; k++) {
        if (g[k].series != prev) {
            if (block >= 0)
                fprintf(d, "\n\n");
            block++;
            prev = g[k].series;
            fprintf(d, "# ");
            dat_text(d, r->series[prev]);
            fprintf(d, "\n");
            fprintf(f, ", \\\n     '%s.dat' index %d using 1:2:3 with yerrorbars pointsize 1", name, block);
            style(f, prev);
            fprintf(f, " title ");
            gp_quote(f, r->series[prev]);
        }
        const double m = g[k].sy / g[k].n;
        const double var = g[k].n > 1 ? (g[k].syy - g[k].n * m * m) / (g[k].n - 1) : 0;
        fprintf(d, "%.8g %.6g %.6g %d %g ", g[k].sx / g[k].n, m, var > 0 ? sqrt(var) : 0, g[k].n, g[k].sp);
        dat_text(d, pb_csv_get(t, g[k].row, r->c_model));
        fputc('\n', d);
    }
    fprintf(f, "\n");
    fclose(d);
    close_gp(f, name);
    free(g);
    draw(ch, name);
    return 0;
}

/* ---- accuracy over time and epochs, per target sparsity (dense runs as reference) ---- */

static int cell_row_of(const results *r, const char *hash)
{
    for (int i = 0; i < r->cells.nrows; i++)
        if (!strcmp(pb_csv_get(&r->cells, i, r->c_cell), hash))
            return i;
    return -1;
}

typedef struct point {
    int n;
    double sx, sy, syy;
} point;

/* The accuracy target of the cells at sparsity sp (cells.csv "target"), or 0
 * when none of them sets one. */
static double curve_target(const results *r, double sp)
{
    int c = pb_csv_col(&r->cells, "target");
    if (c < 0)
        return 0;
    for (int i = 0; i < r->cells.nrows; i++) {
        double v = pb_csv_getnum(&r->cells, i, c);
        if (isfinite(v) && v > 0 && fabs(pb_csv_getnum(&r->cells, i, r->c_sparsity) - sp) < 1e-12)
            return v;
    }
    return 0;
}

static int chart_curves(chart *ch, const results *r, int by_time)
{
    if (!r->have_curves)
        return 0;
    const pb_csv_table *c = &r->curves;
    int cc = pb_csv_col(c, "cell"), cp = pb_csv_col(c, "phase"), cw = pb_csv_col(c, "wall_s"),
        ca = pb_csv_col(c, r->ycol), cs = pb_csv_col(c, "step");
    if (cc < 0 || cp < 0 || cw < 0 || ca < 0)
        return 0;
    int *crow = malloc(sizeof(int) * (size_t)(c->nrows ? c->nrows : 1));
    if (!crow)
        return -1;
    for (int i = 0; i < c->nrows; i++)
        crow[i] = (i > 0 && !strcmp(pb_csv_get(c, i, cc), pb_csv_get(c, i - 1, cc))) ? crow[i - 1]
                                                                                   : cell_row_of(r, pb_csv_get(c, i, cc));
    /* A cell that started from the cached dense model is shifted by that
     * model's pre-training (its epochs, and the time its producer spent in
     * "train" rows), so time-to-accuracy compares whole pipelines. */
    const pb_csv_table *t = &r->cells;
    int c_hit = pb_csv_col(t, "dense_cache_hit"), c_key = pb_csv_col(t, "dense_key"),
        c_ep = pb_csv_col(t, "epochs");
    double *off_t = calloc((size_t)t->nrows + 1, sizeof(double)), *off_e = calloc((size_t)t->nrows + 1, sizeof(double));
    if (!off_t || !off_e) {
        free(off_t), free(off_e), free(crow);
        return -1;
    }
    /* Rows written since cells.csv has prefix_wall_s are on a clock that
     * already includes a cached prefix: only older results need the shift. */
    const int shifted_clock = pb_csv_col(t, "prefix_wall_s") >= 0;
    for (int i = 0; i < c->nrows && !shifted_clock; i++) {
        int row = crow[i];
        if (row >= 0 && pb_csv_getnum(t, row, c_hit) == 0 && !strcmp(pb_csv_get(c, i, cp), "train")) {
            /* a producer: its train rows time the dense model of its key */
            double w = pb_csv_getnum(c, i, cw);
            for (int q = 0; q < t->nrows; q++)
                if (pb_csv_getnum(t, q, c_hit) == 1 && !strcmp(pb_csv_get(t, q, c_key), pb_csv_get(t, row, c_key)) &&
                    w > off_t[q])
                    off_t[q] = w;
        }
    }
    for (int q = 0; q < t->nrows; q++)
        if (pb_csv_getnum(t, q, c_hit) == 1)
            off_e[q] = pb_csv_getnum(t, q, c_ep);
    enum { MAXP = 512 };
    int rc = 0;
    for (int k = 0; k < r->nsp; k++) {
        double sp = r->sparsities[k];
        char name[128];
        snprintf(name, sizeof name, "%s_s%g", by_time ? "accuracy_vs_time" : "accuracy_vs_epochs", sp);
        /* per series, per position in the cell's curve: sums over seeds */
        point *pts = calloc((size_t)MAXS * MAXP, sizeof *pts);
        int len[MAXS] = {0};
        if (!pts) {
            rc = -1;
            break;
        }
        int pos = 0, epochs = 0;
        for (int i = 0; i < c->nrows; i++) {
            int row = crow[i];
            int first = i == 0 || crow[i] != crow[i - 1];
            if (first)
                pos = 0, epochs = 0;
            if (row < 0 || r->row_cseries[row] < 0)
                continue;
            double csp = pb_csv_getnum(&r->cells, row, r->c_sparsity);
            if (!(fabs(csp - sp) < 1e-12 || is_dense_row(r, row)))
                continue;
            double acc = pb_csv_getnum(c, i, ca);
            /* Only training epochs advance the x axis: a lottery "round" row
             * marks the end of a round whose epochs were already counted, and
             * repeats the last evaluation when it is at the same step. */
            const char *phase = pb_csv_get(c, i, cp);
            if (!strcmp(phase, "train") || !strcmp(phase, "finetune"))
                epochs++;
            else if (!strcmp(phase, "round") && !first && cs >= 0 &&
                     !strcmp(pb_csv_get(c, i, cs), pb_csv_get(c, i - 1, cs)))
                continue;
            if (!(acc >= 0) || pos >= MAXP)
                continue;
            int s = r->row_cseries[row];
            point *pt = &pts[s * MAXP + pos];
            pt->n++;
            pt->sx += by_time ? pb_csv_getnum(c, i, cw) + off_t[row] : epochs + off_e[row];
            pt->sy += acc;
            pt->syy += acc * acc;
            pos++;
            if (pos > len[s])
                len[s] = pos;
        }
        int any = 0;
        for (int s = 0; s < r->nseries; s++)
            any |= len[s] > 0;
        if (!any) {
            free(pts);
            continue;
        }
        char path[4400], title[320];
        snprintf(path, sizeof path, "%s/%s.dat", ch->dir, name);
        snprintf(title, sizeof title, "%s over %s at s = %g (mean, ± std band)", r->lm ? "perplexity" : "accuracy",
                 by_time ? "time" : "epochs", sp);
        FILE *d = fopen(path, "w");
        FILE *f = d ? open_gp(ch, name, title, by_time ? "wall seconds (pruning a trained model includes its pre-training)"
                                                     : "epochs (pruning a trained model includes its pre-training)",
                              r->ylabel) : NULL;
        if (!d || !f) {
            if (d)
                fclose(d);
            free(pts);
            rc = -1;
            break;
        }
        /* fitted ranges; whole epochs on the epoch axis; the target where the
         * experiment sets one */
        double xmax = 0, ymin = INFINITY, ymax = -INFINITY;
        for (int s = 0; s < r->nseries; s++)
            for (int q = 0; q < len[s]; q++) {
                point *pt = &pts[s * MAXP + q];
                if (!pt->n)
                    continue;
                double m = pt->sy / pt->n, var = pt->n > 1 ? (pt->syy - pt->n * m * m) / (pt->n - 1) : 0;
                double sd = var > 0 ? sqrt(var) : 0;
                xmax = pt->sx / pt->n > xmax ? pt->sx / pt->n : xmax;
                ymin = m - sd < ymin ? m - sd : ymin;
                ymax = m + sd > ymax ? m + sd : ymax;
            }
        double target = curve_target(r, sp);
        if (target > 0) {
            ymin = target < ymin ? target : ymin;
            ymax = target > ymax ? target : ymax;
            fprintf(f, "set arrow from graph 0, first %g to graph 1, first %g nohead dt 3 lw 1.5 lc rgb '#444444'\n"
                       "set label 'target %g' at graph 0.01, first %g offset 0, 0.6 tc rgb '#444444'\n",
                    target, target, target, target);
        }
        double yspan = ymax - ymin > 0.01 ? ymax - ymin : 0.01;
        if (r->lm) /* perplexity on a log axis */
            log_ppl_axis(f, ymin, ymax);
        else
            fprintf(f, "set yrange [%g:%g]\n", ymin - 0.05 * yspan, ymax + 0.05 * yspan);
        if (!by_time) {
            int step = xmax > 10 ? (int)ceil(xmax / 10) : 1;
            fprintf(f, "set xrange [0:%d]\nset xtics %d\nset mxtics 1\nset format x '%%.0f'\n",
                    (int)ceil(xmax) > 0 ? (int)ceil(xmax) : 1, step);
        } else {
            fprintf(f, "set xrange [0:%g]\n", xmax > 0 ? xmax * 1.02 : 1);
        }
        fprintf(d, "# %s, %s mean, %s std, seeds; over seeds; one block per series\n",
                by_time ? "wall_s" : "epoch", r->ycol, r->ycol);
        fprintf(f, "plot ");
        int block = 0;
        for (int s = 0; s < r->nseries; s++) {
            if (!len[s])
                continue;
            fprintf(d, "%s# ", block ? "\n\n" : "");
            dat_text(d, r->series[s]);
            fputc('\n', d);
            for (int q = 0; q < len[s]; q++) {
                point *pt = &pts[s * MAXP + q];
                if (!pt->n)
                    continue;
                double m = pt->sy / pt->n, var = pt->n > 1 ? (pt->syy - pt->n * m * m) / (pt->n - 1) : 0;
                fprintf(d, "%.6g %.6f %.6f %d\n", pt->sx / pt->n, m, var > 0 ? sqrt(var) : 0, pt->n);
            }
            fprintf(f, "%s'%s.dat' index %d using 1:($2-$3):($2+$3) with filledcurves fs transparent solid 0.12 "
                       "noborder lc rgb '%s' notitle, \\\n     '%s.dat' index %d using 1:2 with linespoints pointsize 0.6",
                    block ? ", \\\n     " : "", name, block, colours[s % 8], name, block);
            style(f, s);
            fprintf(f, " title ");
            gp_quote(f, r->series[s]);
            block++;
        }
        fprintf(f, "\n");
        fclose(d);
        close_gp(f, name);
        free(pts);
        draw(ch, name);
    }
    free(crow);
    free(off_t);
    free(off_e);
    return rc;
}

/* ---- values stored per layer: one clustered bar chart per target sparsity ----
 *
 * A bar is layers.csv's nonzero: the weights a mask keeps, or the values a
 * method stores for the layer where it reported them (ARMOR's factors,
 * a shared array's share), which can exceed the layer's weights.
 *
 * Kept counts on a log axis, so that 200 weights and 0 weights look different
 * at 99.9 % sparsity; a layer with none left is drawn at ZERO_AT with the tic
 * "0". A cluster is one layer of one network (and data set), bars are methods. */

#define ZERO_AT 0.25

typedef struct lcluster {
    char *model, *dataset, *layer;
    double params;
} lcluster;

/* A layer's tic: prefixed with its network (and data set) when the experiment has several. */
static void cluster_name(const lcluster *q, int models_differ, int datasets_differ, char *buf, size_t n)
{
    if (models_differ && datasets_differ)
        snprintf(buf, n, "%s/%s:%s", q->model, q->dataset, q->layer);
    else if (models_differ || datasets_differ)
        snprintf(buf, n, "%s:%s", models_differ ? q->model : q->dataset, q->layer);
    else
        snprintf(buf, n, "%s", q->layer);
}

static int chart_layers(chart *ch, const results *r)
{
    if (!r->have_layers)
        return 0;
    const pb_csv_table *l = &r->layers, *t = &r->cells;
    int lc = pb_csv_col(l, "cell"), ll = pb_csv_col(l, "layer"), lp = pb_csv_col(l, "params"),
        lz = pb_csv_col(l, "nonzero");
    if (lc < 0 || ll < 0 || lp < 0 || lz < 0)
        return 0;
    enum { MAXL = 256 };
    lcluster cl[MAXL];
    int nl = 0;
    const char *labels[MAXS];  /* bars: method labels, each styled as its first series */
    int lstyle[MAXS], nlab = 0;
    int *lrow = malloc(sizeof(int) * (size_t)(l->nrows ? l->nrows : 1)); /* layers row -> cells row */
    int *lcl = malloc(sizeof(int) * (size_t)(l->nrows ? l->nrows : 1));  /* layers row -> cluster */
    int *llab = malloc(sizeof(int) * (size_t)(l->nrows ? l->nrows : 1)); /* layers row -> label */
    if (!lrow || !lcl || !llab) {
        free(lrow), free(lcl), free(llab);
        return -1;
    }
    int models_differ = 0, datasets_differ = 0, rc = 0;
    for (int i = 0; i < l->nrows; i++) {
        lrow[i] = (i > 0 && !strcmp(pb_csv_get(l, i, lc), pb_csv_get(l, i - 1, lc))) ? lrow[i - 1]
                                                                                   : cell_row_of(r, pb_csv_get(l, i, lc));
        lcl[i] = llab[i] = -1;
        int row = lrow[i];
        if (row < 0 || r->row_series[row] < 0 || is_dense_row(r, row))
            continue;
        const char *model = pb_csv_get(t, row, r->c_model), *ds = pb_csv_get(t, row, r->c_dataset),
                   *layer = pb_csv_get(l, i, ll), *label = pb_csv_get(t, row, r->c_label);
        int q = 0;
        while (q < nl && (strcmp(cl[q].model, model) || strcmp(cl[q].dataset, ds) || strcmp(cl[q].layer, layer)))
            q++;
        if (q == nl && nl < MAXL) {
            cl[nl++] = (lcluster){strdup(model), strdup(ds), strdup(layer), pb_csv_getnum(l, i, lp)};
            models_differ |= strcmp(cl[q].model, cl[0].model) != 0;
            datasets_differ |= strcmp(cl[q].dataset, cl[0].dataset) != 0;
        }
        int u = 0;
        while (u < nlab && strcmp(labels[u], label))
            u++;
        if (u == nlab && nlab < MAXS) {
            labels[nlab] = label;
            lstyle[nlab++] = r->row_series[row];
        }
        lcl[i] = q < nl ? q : -1;
        llab[i] = u < nlab ? u : -1;
    }
    for (int k = 0; k < r->nsp && nl > 0; k++) {
        double sp = r->sparsities[k];
        double *sum = calloc((size_t)MAXS * MAXL, sizeof(double));
        int *cnt = calloc((size_t)MAXS * MAXL, sizeof(int));
        if (!sum || !cnt) {
            free(sum), free(cnt);
            rc = -1;
            break;
        }
        for (int i = 0; i < l->nrows; i++) {
            if (lcl[i] < 0 || llab[i] < 0 || fabs(pb_csv_getnum(t, lrow[i], r->c_sparsity) - sp) > 1e-12)
                continue;
            sum[llab[i] * MAXL + lcl[i]] += pb_csv_getnum(l, i, lz);
            cnt[llab[i] * MAXL + lcl[i]]++;
        }
        int used[MAXS], nu = 0, ncl = 0, clu[MAXL];
        for (int u = 0; u < nlab; u++) {
            int any = 0;
            for (int q = 0; q < nl; q++)
                any |= cnt[u * MAXL + q] > 0;
            if (any)
                used[nu++] = u;
        }
        for (int q = 0; q < nl; q++) {
            int any = 0;
            for (int u = 0; u < nlab; u++)
                any |= cnt[u * MAXL + q] > 0;
            if (any)
                clu[ncl++] = q;
        }
        if (nu == 0) {
            free(sum), free(cnt);
            continue;
        }
        char name[128], path[4400], title[200];
        snprintf(name, sizeof name, "layer_sparsity_s%g", sp);
        snprintf(path, sizeof path, "%s/%s.dat", ch->dir, name);
        snprintf(title, sizeof title, "values stored in each layer at overall target sparsity %g (mean over seeds)", sp);
        FILE *d = fopen(path, "w");
        FILE *f = d ? open_gp(ch, name, title, "layer", "values stored: weights kept or a method's arrays (log; 0 at tic 0)") : NULL;
        if (!d || !f) {
            if (d)
                fclose(d);
            free(sum), free(cnt);
            rc = -1;
            break;
        }
        /* the .dat: one row per layer, its size, then the kept weights of each method */
        fprintf(d, "# layer, weights in the layer, then values stored (nonzero) per method, mean over seeds:\n"
                   "# layer params");
        for (int u = 0; u < nu; u++) {
            fprintf(d, " | ");
            dat_text(d, labels[used[u]]);
        }
        fprintf(d, "\n");
        double ymax = 1;
        for (int c = 0; c < ncl; c++) {
            const lcluster *q = &cl[clu[c]];
            char cname[512];
            cluster_name(q, models_differ, datasets_differ, cname, sizeof cname);
            fputc('"', d);
            dat_text(d, cname);
            fprintf(d, "\" %.0f", q->params);
            ymax = q->params > ymax ? q->params : ymax;
            for (int u = 0; u < nu; u++) {
                int n = cnt[used[u] * MAXL + clu[c]];
                if (n)
                    fprintf(d, " %.6g", sum[used[u] * MAXL + clu[c]] / n);
                else
                    fprintf(d, " NaN");
            }
            fprintf(d, "\n");
        }
        /* bar u of cluster c at x = c * (nu + 1) + u; the layer's size as a dashed line above its cluster */
        int gap = nu + 1;
        fprintf(f, "set logscale y 10\nset yrange [%g:%g]\nset ytics add ('0' %g)\n", ZERO_AT / 1.6, ymax * 4, ZERO_AT);
        fprintf(f, "set grid noxtics\nset xrange [-1:%d]\nset xtics rotate by -30 scale 0 (", ncl * gap - 1);
        for (int c = 0; c < ncl; c++) {
            fprintf(f, "%s", c ? ", " : "");
            const lcluster *q = &cl[clu[c]];
            char cname[512];
            cluster_name(q, models_differ, datasets_differ, cname, sizeof cname);
            gp_quote(f, cname);
            fprintf(f, " %g", c * gap + (nu - 1) / 2.0);
        }
        fprintf(f, ")\nG = %d\nkept(v) = v > 0 ? v : %g\nfloor = %g\n", gap, ZERO_AT, ZERO_AT / 1.6);
        fprintf(f, "plot '%s.dat' using ($0*G - 0.5):2:(G - 1):(0) with vectors nohead dt 2 lw 1.5 lc rgb '#555555' "
                   "title 'weights in the layer'", name);
        for (int u = 0; u < nu; u++) {
            int col = u + 3;
            fprintf(f, ", \\\n     '%s.dat' using ($0*G + %d):(kept($%d)):($0*G + %d - 0.42):($0*G + %d + 0.42):(floor):"
                       "(kept($%d)) with boxxyerror", name, u, col, u, u, col);
            bar_style(f, lstyle[used[u]]);
            fprintf(f, " title ");
            gp_quote(f, labels[used[u]]);
        }
        /* the kept counts, written on the bars */
        for (int u = 0; u < nu; u++)
            fprintf(f, ", \\\n     '%s.dat' using ($0*G + %d):(kept($%d)):(sprintf('%%g', $%d)) with labels "
                       "rotate by 90 left offset 0,0.4 font ',7' notitle", name, u, u + 3, u + 3);
        fprintf(f, "\n");
        fclose(d);
        close_gp(f, name);
        free(sum), free(cnt);
        draw(ch, name);
    }
    for (int q = 0; q < nl; q++)
        free(cl[q].model), free(cl[q].dataset), free(cl[q].layer);
    free(lrow), free(lcl), free(llab);
    return rc;
}

/* ---- the directory ---- */

static int wanted(char **list, int n, const char *name)
{
    if (n == 0)
        return 1;
    for (int i = 0; i < n; i++)
        if (!strcmp(list[i], name))
            return 1;
    return 0;
}

/* "experiment: model, model on data set": the experiment is the results
 * directory's name, the models (base names, widths folded; at one width, the
 * methods' model with its width, a narrowed baseline's widths left out) and
 * data sets those of its cells, in order of first appearance. */
static void plot_context(const results *r, const char *dir, char *buf, size_t n)
{
    size_t len = strlen(dir);
    while (len > 1 && dir[len - 1] == '/')
        len--;
    size_t b = len;
    while (b > 0 && dir[b - 1] != '/')
        b--;
    size_t k = (size_t)snprintf(buf, n, "%.*s:", (int)(len - b), dir + b);
    const pb_csv_table *t = &r->cells;
    int others = 0; /* rows that are not a narrowed baseline's */
    for (int i = 0; i < t->nrows; i++)
        others += !r->row_narrowed || !r->row_narrowed[i];
    for (int pass = 0; pass < 2 && k < n; pass++) {
        int col = pass ? r->c_dataset : r->c_model, any = 0;
        if (col < 0)
            continue;
        for (int i = 0; i < t->nrows && k < n; i++) {
            const char *v = pb_csv_get(t, i, col);
            /* one model at one width: the title names the width, the series do not */
            const int whole = pass || !r->widths_differ;
            if (!pass && whole && others && r->row_narrowed && r->row_narrowed[i])
                continue; /* a narrowed baseline's widths are in its series' x */
            size_t vl = whole ? strlen(v) : base_len(v);
            int seen = 0;
            for (int j = 0; j < i && !seen; j++) {
                if (!pass && whole && others && r->row_narrowed && r->row_narrowed[j])
                    continue;
                const char *u = pb_csv_get(t, j, col);
                seen = (whole ? strlen(u) : base_len(u)) == vl && !strncmp(u, v, vl);
            }
            if (seen || !vl)
                continue;
            k += (size_t)snprintf(buf + k, n - k, "%s%.*s", any ? ", " : pass ? " on " : " ", (int)vl, v);
            any = 1;
        }
    }
}

int pb_plot_dir(const char *dir, int verbose, char *err, size_t errlen)
{
    char path[4400], plots[4200];
    results r;
    memset(&r, 0, sizeof r);
    snprintf(path, sizeof path, "%s/cells.csv", dir);
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return pb_err(err, errlen, PB_EUSAGE, "%s is not a results directory", dir);
    int rc = pb_csv_read(path, &r.cells, err, errlen);
    if (rc != PB_OK)
        return pb_err(err, errlen, rc == PB_EIO ? PB_EUSAGE : rc,
                      "%s has no readable cells.csv: is it a results/<experiment> directory?", dir);
    snprintf(path, sizeof path, "%s/curves.csv", dir);
    r.have_curves = pb_csv_read(path, &r.curves, NULL, 0) == PB_OK;
    snprintf(path, sizeof path, "%s/layers.csv", dir);
    r.have_layers = pb_csv_read(path, &r.layers, NULL, 0) == PB_OK;
    if (prepare(&r) != 0) {
        free_results(&r);
        return pb_err(err, errlen, PB_EIO, "%s/cells.csv lacks the columns of a prunebench results file", dir);
    }
    /* which families: the script's list, when the run recorded one */
    char *list[16];
    int nlist = 0;
    snprintf(path, sizeof path, "%s/plots.list", dir);
    FILE *lf = fopen(path, "r");
    if (lf) {
        char line[128];
        while (nlist < 16 && fgets(line, sizeof line, lf)) {
            line[strcspn(line, "\r\n")] = '\0';
            if (line[0])
                list[nlist++] = strdup(line);
        }
        fclose(lf);
    }
    snprintf(plots, sizeof plots, "%s/plots", dir);
    if (mkdir(plots, 0777) != 0 && errno != EEXIST) {
        rc = pb_err(err, errlen, PB_EIO, "cannot create %s: %s", plots, strerror(errno));
        goto out;
    }
    char ctx[512];
    plot_context(&r, dir, ctx, sizeof ctx);
    chart ch = {.dir = plots, .ctx = ctx, .verbose = verbose};
    int bad = 0;
    {
        int narrowed = 0;
        for (int i = 0; i < r.cells.nrows; i++)
            narrowed |= r.row_narrowed[i];
        if (wanted(list, nlist, "accuracy_vs_compression"))
            bad |= chart_scatter(&ch, &r, "accuracy_vs_compression", r.c_comp,
                                 narrowed ? "compression ratio (parameters / nonzero parameters; a narrowed "
                                            "model: full-width parameters / its own)"
                                          : "compression ratio (parameters / nonzero parameters)", 2, 1);
        /* compression and theoretical speedup go together (Blalock et al. 2020):
         * a script asking for one gets both */
        if (wanted(list, nlist, "accuracy_vs_speedup") || wanted(list, nlist, "accuracy_vs_compression"))
            bad |= chart_scatter(&ch, &r, "accuracy_vs_speedup", r.c_speedup,
                                 narrowed ? "theoretical speedup (dense FLOPs / effective FLOPs per example; a "
                                            "narrowed model: full-width FLOPs / its own)"
                                          : "theoretical speedup (dense FLOPs / effective FLOPs per example)",
                                 2, 1);
    }
    if (wanted(list, nlist, "accuracy_vs_params"))
        bad |= chart_scatter(&ch, &r, "accuracy_vs_params", r.c_nonzero, "nonzero parameters", 10, 0);
    if (wanted(list, nlist, "accuracy_vs_flops"))
        bad |= chart_scatter(&ch, &r, "accuracy_vs_flops", r.c_flops,
                             "effective inference FLOPs per example (nonzero weights)", 10, 0);
    /* only when a script asks for it: delta pruning, where nonzero counts do not change */
    if (nlist > 0 && wanted(list, nlist, "accuracy_vs_sparsity"))
        bad |= chart_scatter(&ch, &r, "accuracy_vs_sparsity", r.c_sparsity,
                             "1 / (1 - target sparsity); for delta methods 1 / (1 - p), p the fraction of the delta dropped",
                             10, 2);
    if (wanted(list, nlist, "accuracy_vs_time"))
        bad |= chart_curves(&ch, &r, 1);
    if (wanted(list, nlist, "accuracy_vs_epochs"))
        bad |= chart_curves(&ch, &r, 0);
    if (wanted(list, nlist, "layer_sparsity"))
        bad |= chart_layers(&ch, &r);
    if (wanted(list, nlist, "measured_speedup"))
        bad |= chart_speed(&ch, &r);
    /* the data axis: time-to-accuracy (pb_plot_data) */
    bad |= pb_plot_data_charts(dir, plots, list, nlist, &ch.drawn, &ch.gnuplot_missing) != 0;
    if (bad)
        rc = pb_err(err, errlen, PB_EIO, "cannot write the chart files under %s", plots);
    else if (verbose && ch.drawn)
        fprintf(stderr, "prunebench: %d charts under %s\n", ch.drawn, plots);
out:
    for (int i = 0; i < nlist; i++)
        free(list[i]);
    free_results(&r);
    return rc;
}
