/* pb_plot_data: time-to-accuracy charts of the data axis (see pb_plot_data.h). */
#include "pb_plot_data.h"

#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "pb_csv.h"
#include "pb_plot.h"

#define MAXSER 256
#define MAXSEED 16
#define MAXROUND 4096

typedef struct seed_curve {
    int n;
    double clock[MAXROUND], flops[MAXROUND], acc[MAXROUND];
} seed_curve;

typedef struct series {
    char key[256];       /* model|dataset|method label|data label */
    char model[96], dataset[48], label[160];
    char data[48];
    double fraction, target, budget_s;
    int nseeds;
    char cell[MAXSEED][17];
    seed_curve *c[MAXSEED];
} series;

typedef struct set {
    series *s[MAXSER];
    int n;
} set;

static const char *const colours[] = {"#0072b2", "#d55e00", "#009e73", "#cc79a7",
                                      "#e69f00", "#56b4e9", "#000000", "#999933"};

static void gp_quote(FILE *f, const char *s)
{
    fputc('\'', f);
    for (; *s; s++) {
        if (*s == '\'')
            fputc('\'', f);
        fputc(*s, f);
    }
    fputc('\'', f);
}

static int draw(const char *plots_dir, const char *name, int *drawn, int *missing)
{
    if (*missing)
        return 0;
    pid_t pid = fork();
    if (pid < 0)
        return 0;
    if (pid == 0) {
        char gp[512];
        snprintf(gp, sizeof gp, "%s.gp", name);
        if (chdir(plots_dir) != 0)
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
    if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
        *missing = 1;
    else if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        (*drawn)++;
    return 0;
}

static FILE *open_file(const char *plots_dir, const char *name, const char *ext)
{
    char path[4400];
    snprintf(path, sizeof path, "%s/%s.%s", plots_dir, name, ext);
    return fopen(path, "w");
}

static void head(FILE *f, const char *name, const char *title, const char *xlabel, const char *ylabel)
{
    fprintf(f, "# Written by prunebench %s from cells.csv and curves.csv; edit and rerun with gnuplot %s.gp\n",
            PACKAGE_VERSION, name);
    fprintf(f, "set terminal pngcairo size 960,600 font ',10' noenhanced\nset output '%s.png'\nset title ", name);
    gp_quote(f, title);
    fprintf(f, "\nset xlabel ");
    gp_quote(f, xlabel);
    fprintf(f, "\nset ylabel ");
    gp_quote(f, ylabel);
    fprintf(f, "\nset grid\n" PB_PLOT_KEY "\n");
}

static void tail(FILE *f, const char *name)
{
    fprintf(f, "\nset terminal svg size 960,600 dynamic font 'sans,10' noenhanced\nset output '%s.svg'\nreplot\n"
               "unset output\n", name);
    fclose(f);
}

static int wanted(char **want, int n, const char *name)
{
    if (n == 0)
        return 1;
    for (int i = 0; i < n; i++)
        if (!strcmp(want[i], name))
            return 1;
    return 0;
}

static void safe_name(char *out, size_t n, const char *s)
{
    size_t k = 0;
    for (; *s && k + 1 < n; s++)
        out[k++] = (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '.' ||
                           *s == '-' || *s == '_'
                       ? *s
                       : '_';
    out[k] = '\0';
}

/* ---------------------------------------------------------- reading */

static series *find_series(set *st, const char *key)
{
    for (int i = 0; i < st->n; i++)
        if (!strcmp(st->s[i]->key, key))
            return st->s[i];
    if (st->n == MAXSER)
        return NULL;
    series *s = calloc(1, sizeof *s);
    if (s)
        st->s[st->n++] = s;
    return s;
}

static int load(const char *dir, set *st)
{
    char path[4400];
    pb_csv_table cells, curves;
    snprintf(path, sizeof path, "%s/cells.csv", dir);
    if (pb_csv_read(path, &cells, NULL, 0) != 0)
        return 0;
    snprintf(path, sizeof path, "%s/curves.csv", dir);
    if (pb_csv_read(path, &curves, NULL, 0) != 0) {
        pb_csv_table_free(&cells);
        return 0;
    }
    int c_cell = pb_csv_col(&cells, "cell"), c_model = pb_csv_col(&cells, "model"),
        c_ds = pb_csv_col(&cells, "dataset"), c_label = pb_csv_col(&cells, "label"),
        c_method = pb_csv_col(&cells, "method"), c_sp = pb_csv_col(&cells, "sparsity"),
        c_status = pb_csv_col(&cells, "status"), c_data = pb_csv_col(&cells, "data"),
        c_dl = pb_csv_col(&cells, "data_label"), c_fr = pb_csv_col(&cells, "fraction"),
        c_budget = pb_csv_col(&cells, "budget"), c_target = pb_csv_col(&cells, "target");
    int k_cell = pb_csv_col(&curves, "cell"), k_phase = pb_csv_col(&curves, "phase"),
        k_wall = pb_csv_col(&curves, "wall_s"), k_eval = pb_csv_col(&curves, "eval_s"),
        k_fl = pb_csv_col(&curves, "train_flops"), k_pf = pb_csv_col(&curves, "probe_flops"),
        k_acc = pb_csv_col(&curves, "test_acc");
    if (c_data < 0 || k_eval < 0 || c_cell < 0 || k_cell < 0) {
        pb_csv_table_free(&cells);
        pb_csv_table_free(&curves);
        return 0;
    }
    for (int i = 0; i < cells.nrows; i++) {
        const char *data = pb_csv_get(&cells, i, c_data);
        if (!data[0] || strcmp(pb_csv_get(&cells, i, c_status), "ok"))
            continue;
        char key[256], label[160];
        if (!strcmp(pb_csv_get(&cells, i, c_method), "dense"))
            snprintf(label, sizeof label, "%s", pb_csv_get(&cells, i, c_dl));
        else
            snprintf(label, sizeof label, "%s %s + %s", pb_csv_get(&cells, i, c_label), pb_csv_get(&cells, i, c_sp),
                     pb_csv_get(&cells, i, c_dl));
        snprintf(key, sizeof key, "%s|%s|%s", pb_csv_get(&cells, i, c_model), pb_csv_get(&cells, i, c_ds), label);
        series *s = find_series(st, key);
        if (!s || s->nseeds == MAXSEED)
            continue;
        if (!s->key[0]) {
            snprintf(s->key, sizeof s->key, "%s", key);
            snprintf(s->model, sizeof s->model, "%s", pb_csv_get(&cells, i, c_model));
            snprintf(s->dataset, sizeof s->dataset, "%s", pb_csv_get(&cells, i, c_ds));
            snprintf(s->label, sizeof s->label, "%s", label);
            snprintf(s->data, sizeof s->data, "%s", data);
            s->fraction = pb_csv_getnum(&cells, i, c_fr);
            s->target = c_target >= 0 ? pb_csv_getnum(&cells, i, c_target) : NAN;
            const char *b = pb_csv_get(&cells, i, c_budget);
            s->budget_s = !strncmp(b, "seconds=", 8) ? atof(b + 8) : NAN;
        }
        seed_curve *c = calloc(1, sizeof *c);
        if (!c)
            continue;
        snprintf(s->cell[s->nseeds], 17, "%s", pb_csv_get(&cells, i, c_cell));
        s->c[s->nseeds++] = c;
    }
    for (int r = 0; r < curves.nrows; r++) {
        if (strcmp(pb_csv_get(&curves, r, k_phase), "train"))
            continue;
        double acc = pb_csv_getnum(&curves, r, k_acc);
        if (!(acc >= 0))
            continue;
        const char *cell = pb_csv_get(&curves, r, k_cell);
        for (int i = 0; i < st->n; i++)
            for (int k = 0; k < st->s[i]->nseeds; k++)
                if (!strcmp(st->s[i]->cell[k], cell) && st->s[i]->c[k]->n < MAXROUND) {
                    seed_curve *c = st->s[i]->c[k];
                    double pf = k_pf >= 0 ? pb_csv_getnum(&curves, r, k_pf) : 0;
                    c->clock[c->n] = pb_csv_getnum(&curves, r, k_wall) - pb_csv_getnum(&curves, r, k_eval);
                    c->flops[c->n] = pb_csv_getnum(&curves, r, k_fl) + (isnan(pf) ? 0 : pf);
                    c->acc[c->n++] = acc;
                }
    }
    pb_csv_table_free(&cells);
    pb_csv_table_free(&curves);
    return st->n;
}

/* ------------------------------------------------------- statistics */

static void mean_std(const double *v, int n, double *m, double *sd)
{
    double s = 0, ss = 0;
    for (int i = 0; i < n; i++)
        s += v[i];
    *m = n ? s / n : NAN;
    for (int i = 0; i < n; i++)
        ss += (v[i] - *m) * (v[i] - *m);
    *sd = n > 1 ? sqrt(ss / (n - 1)) : 0;
}

/* Seconds until the target on the training clock per seed (-1: never). */
static double seed_time_to(const seed_curve *c, double target)
{
    for (int i = 0; i < c->n; i++)
        if (c->acc[i] >= target)
            return c->clock[i];
    return -1;
}

/* Accuracy at time T: the last evaluation at or before T (-1: none yet). */
static double seed_acc_at(const seed_curve *c, double t)
{
    double a = -1;
    for (int i = 0; i < c->n && c->clock[i] <= t; i++)
        a = c->acc[i];
    return a;
}

static int cmp_series(const void *a, const void *b)
{
    const series *x = *(series *const *)a, *y = *(series *const *)b;
    int d = strcmp(x->model, y->model);
    if (d)
        return d;
    if ((d = strcmp(x->dataset, y->dataset)))
        return d;
    if (x->fraction != y->fraction)
        return x->fraction > y->fraction ? -1 : 1;
    return strcmp(x->label, y->label);
}

/* ----------------------------------------------------------- charts */

static int curve_chart(const char *plots_dir, const char *family, series **ss, int n, const char *model,
                       double fraction, int by_flops, int *drawn, int *missing)
{
    char name[512], sm[128];
    safe_name(sm, sizeof sm, model);
    snprintf(name, sizeof name, "%s-%s-r%g", family, sm, fraction);
    FILE *d = open_file(plots_dir, name, "dat"), *f = open_file(plots_dir, name, "gp");
    if (!d || !f) {
        if (d)
            fclose(d);
        if (f)
            fclose(f);
        return -1;
    }
    fprintf(d, "# per series (one index block each): x mean, accuracy mean, accuracy std, x std, seeds; "
               "round by round\n");
    double target = NAN;
    for (int i = 0; i < n; i++) {
        const series *s = ss[i];
        int rounds = MAXROUND;
        for (int k = 0; k < s->nseeds; k++)
            rounds = s->c[k]->n < rounds ? s->c[k]->n : rounds;
        fprintf(d, "# %s\n", s->label);
        for (int r = 0; r < rounds; r++) {
            double x[MAXSEED], y[MAXSEED], xm, xs, ym, ys;
            for (int k = 0; k < s->nseeds; k++) {
                x[k] = by_flops ? s->c[k]->flops[r] : s->c[k]->clock[r];
                y[k] = s->c[k]->acc[r];
            }
            mean_std(x, s->nseeds, &xm, &xs);
            mean_std(y, s->nseeds, &ym, &ys);
            fprintf(d, "%.9g %.6g %.6g %.6g %d\n", xm, ym, ys, xs, s->nseeds);
        }
        if (rounds == 0)
            fprintf(d, "nan nan nan nan 0\n");
        fprintf(d, "\n\n");
        if (s->target > 0)
            target = s->target;
    }
    fclose(d);
    char title[512];
    snprintf(title, sizeof title, "%s: test accuracy vs %s at r = %g (mean ± std over seeds; full data for reference)",
             model, by_flops ? "training FLOPs" : "training time", fraction);
    head(f, name, title,
         by_flops ? "training FLOPs (scoring runs and per-example statistics included)"
                  : "training clock, s (wall clock since the cell started, less test evaluations; scoring included)",
         "test accuracy");
    if (by_flops)
        fprintf(f, "set logscale x\n");
    if (target > 0)
        fprintf(f, "set arrow from graph 0, first %g to graph 1, first %g nohead dt 2 lc rgb '#444444'\n"
                   "set label 'target %g' at graph 0.01, first %g offset 0,0.6\n", target, target, target, target);
    fprintf(f, "plot ");
    for (int i = 0; i < n; i++) {
        const char *col = colours[i % 8];
        fprintf(f, "%s'%s.dat' index %d using 1:($2-$3):($2+$3) with filledcurves fs transparent solid 0.15 noborder "
                   "lc rgb '%s' notitle, \\\n     '%s.dat' index %d using 1:2 with linespoints pt 7 ps 0.5 dt %d "
                   "lc rgb '%s' title ",
                i ? ", \\\n     " : "", name, i, col, name, i, 1 + i / 8 % 5, col);
        gp_quote(f, ss[i]->label);
    }
    fprintf(f, "\n");
    tail(f, name);
    return draw(plots_dir, name, drawn, missing);
}

static int bar_chart(const char *plots_dir, const char *family, series **ss, int n, const char *model, double t,
                     int *drawn, int *missing)
{
    char name[512], sm[128];
    safe_name(sm, sizeof sm, model);
    snprintf(name, sizeof name, "%s-%s", family, sm);
    const int ttt = !strcmp(family, "time_to_target");
    double target = NAN;
    for (int i = 0; i < n; i++)
        if (ss[i]->target > 0)
            target = ss[i]->target;
    if (ttt && !(target > 0))
        return 0;
    FILE *d = open_file(plots_dir, name, "dat"), *f = open_file(plots_dir, name, "gp");
    if (!d || !f) {
        if (d)
            fclose(d);
        if (f)
            fclose(f);
        return -1;
    }
    fprintf(d, ttt ? "# position, mean seconds to target over the seeds that reached it, std, note, series, "
                     "seeds reached, seeds\n"
                   : "# position, mean accuracy at the time budget, std, note, series, seeds with an evaluation, "
                     "seeds\n");
    double top = 0;
    for (int i = 0; i < n; i++) {
        const series *s = ss[i];
        double v[MAXSEED], m = 0, sd = 0;
        int k = 0;
        for (int q = 0; q < s->nseeds; q++) {
            double x = ttt ? seed_time_to(s->c[q], target) : seed_acc_at(s->c[q], t);
            if (x >= 0)
                v[k++] = x;
        }
        if (k)
            mean_std(v, k, &m, &sd);
        char note[64];
        if (k == 0)
            snprintf(note, sizeof note, ttt ? "never" : "none yet");
        else if (k < s->nseeds)
            snprintf(note, sizeof note, "%d/%d seeds", k, s->nseeds);
        else
            snprintf(note, sizeof note, ttt ? "%.3g s" : "%.3f", m);
        top = m + sd > top ? m + sd : top;
        fprintf(d, "%d %.6g %.6g \"%s\" \"%s\" %d %d\n", i, m, sd, note, s->label, k, s->nseeds);
    }
    fclose(d);
    char title[512];
    if (ttt)
        snprintf(title, sizeof title, "%s: seconds of training clock until test accuracy %g (mean ± std over the seeds "
                 "that reached it)", model, target);
    else
        snprintf(title, sizeof title, "%s: test accuracy at a training time of %.3g s (mean ± std over seeds)", model, t);
    head(f, name, title, "", ttt ? "seconds to target (training clock, scoring included)" : "test accuracy");
    fprintf(f, "set style fill solid 0.6 border -1\nset boxwidth 0.7\nset xtics rotate by -40 left\nunset key\n"
               "set xrange [-0.6:%d.6]\nset yrange [0:%g]\n", n - 1, top > 0 ? top * 1.15 : 1);
    fprintf(f, "plot '%s.dat' using 1:2:xtic(5) with boxes lc rgb '#0072b2', \\\n"
               "     '' using 1:2:3 with yerrorbars lc rgb '#000000' pt 0, \\\n"
               "     '' using 1:($2+$3):4 with labels offset 0,0.8\n", name);
    tail(f, name);
    return draw(plots_dir, name, drawn, missing);
}

int pb_plot_data_charts(const char *dir, const char *plots_dir, char **want, int nwant, int *drawn, int *missing)
{
    set st = {0};
    if (load(dir, &st) == 0)
        return 0;
    qsort(st.s, (size_t)st.n, sizeof *st.s, cmp_series);
    int bad = 0;
    for (int a = 0; a < st.n;) {
        int b = a;
        while (b < st.n && !strcmp(st.s[b]->model, st.s[a]->model) && !strcmp(st.s[b]->dataset, st.s[a]->dataset))
            b++;
        /* the group [a, b): one model on one data set */
        series *grp[MAXSER], *full[MAXSER];
        int nf = 0;
        for (int i = a; i < b; i++)
            if (st.s[i]->fraction >= 1)
                full[nf++] = st.s[i];
        double fr[64];
        int nfr = 0;
        for (int i = a; i < b; i++) {
            int seen = 0;
            for (int k = 0; k < nfr; k++)
                seen |= fr[k] == st.s[i]->fraction;
            if (!seen && st.s[i]->fraction < 1 && nfr < 64)
                fr[nfr++] = st.s[i]->fraction;
        }
        if (nfr == 0)
            fr[nfr++] = 1;
        for (int q = 0; q < nfr; q++) {
            int n = 0;
            for (int i = a; i < b; i++)
                if (st.s[i]->fraction == fr[q] && fr[q] < 1)
                    grp[n++] = st.s[i];
            for (int i = 0; i < nf; i++)
                grp[n++] = full[i];
            if (wanted(want, nwant, "time_to_accuracy"))
                bad |= curve_chart(plots_dir, "time_to_accuracy", grp, n, st.s[a]->model, fr[q], 0, drawn, missing);
            if (wanted(want, nwant, "accuracy_vs_train_flops"))
                bad |= curve_chart(plots_dir, "accuracy_vs_train_flops", grp, n, st.s[a]->model, fr[q], 1, drawn,
                                   missing);
        }
        /* the time budget: a seconds budget, else the median of the series' final times */
        double t = NAN, finals[MAXSER];
        int nfin = 0;
        for (int i = a; i < b; i++) {
            if (st.s[i]->budget_s > 0)
                t = st.s[i]->budget_s;
            double v[MAXSEED], m, sd;
            int k = 0;
            for (int q = 0; q < st.s[i]->nseeds; q++)
                if (st.s[i]->c[q]->n)
                    v[k++] = st.s[i]->c[q]->clock[st.s[i]->c[q]->n - 1];
            if (k) {
                mean_std(v, k, &m, &sd);
                finals[nfin++] = m;
            }
        }
        if (!(t > 0) && nfin) {
            for (int i = 1; i < nfin; i++)
                for (int k = i; k > 0 && finals[k - 1] > finals[k]; k--) {
                    double x = finals[k];
                    finals[k] = finals[k - 1];
                    finals[k - 1] = x;
                }
            t = finals[nfin / 2];
        }
        if (wanted(want, nwant, "time_to_target"))
            bad |= bar_chart(plots_dir, "time_to_target", st.s + a, b - a, st.s[a]->model, t, drawn, missing);
        if (wanted(want, nwant, "accuracy_at_time") && t > 0)
            bad |= bar_chart(plots_dir, "accuracy_at_time", st.s + a, b - a, st.s[a]->model, t, drawn, missing);
        a = b;
    }
    for (int i = 0; i < st.n; i++) {
        for (int k = 0; k < st.s[i]->nseeds; k++)
            free(st.s[i]->c[k]);
        free(st.s[i]);
    }
    return bad ? -1 : 0;
}
