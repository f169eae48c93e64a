/* Experiment scripts: matrix expansion, filters and overrides, configuration
 * hashes, script errors, and CSV quoting. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "exp/pb_cell.h"
#include "exp/pb_csv.h"
#include "exp/pb_lua.h"
#include "tap.h"

static char tmpdir[] = "/tmp/pb_t_lua_XXXXXX";
static char err[PB_ERRLEN];

/* Runs a script text in a fresh state; returns the status (experiments in *x). */
static int run(const char *text, pb_lua **L, pb_experiment **x, int *nx)
{
    char path[256];
    snprintf(path, sizeof path, "%s/s.lua", tmpdir);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    *x = NULL;
    *nx = 0;
    err[0] = '\0';
    int rc = pb_lua_open(L, NULL, NULL, err, sizeof err);
    if (rc == PB_OK)
        rc = pb_lua_run(*L, path, x, nx, err, sizeof err);
    return rc;
}

static void done(pb_lua *L, pb_experiment *x, int nx)
{
    pb_cell_free_experiments(x, nx);
    pb_lua_close(L);
}

/* hash of the first cell of a one-experiment script */
static int first_hash(const char *text, char *hash, char *dense)
{
    pb_lua *L;
    pb_experiment *x;
    int nx;
    int rc = run(text, &L, &x, &nx);
    if (rc == PB_OK) {
        strcpy(hash, x[0].cells[0].hash);
        strcpy(dense, x[0].cells[0].dense_key);
    }
    done(L, x, nx);
    return rc;
}

static int count(const pb_experiment *x, const char *label, double sp)
{
    int n = 0;
    for (int i = 0; i < x->ncells; i++)
        if ((!label || !strcmp(x->cells[i].label, label)) && (sp < 0 || fabs(x->cells[i].sparsity - sp) < 1e-9))
            n++;
    return n;
}

#define BASE "experiment \"e\" { models = {%s}, datasets = {\"synthetic\"}, methods = {%s}, " \
             "sparsity = {%s}, seeds = {%s}, train = {%s}, finetune = {%s} %s }\n"

static int hash_of(char *hash, char *dense, const char *models, const char *methods, const char *sp,
                   const char *seeds, const char *train, const char *ft, const char *extra)
{
    char text[2048];
    snprintf(text, sizeof text, BASE, models, methods, sp, seeds, train, ft, extra);
    return first_hash(text, hash, dense);
}

int main(void)
{
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    tap_plan(27);
    pb_lua *L;
    pb_experiment *x;
    int nx, rc;

    /* ---- expansion ---- */
    rc = run("experiment \"m\" {\n"
             "  models = { \"lenet300\", {\"lenet300\", width = 0.5}, model{ name = \"tiny\", dense(16), relu(), dense(10) } },\n"
             "  datasets = { \"synthetic\" },\n"
             "  methods = { \"dense\", \"magnitude\", { \"global_magnitude\", min_threshold = 0.001, label = \"gmt\" },\n"
             "              { \"random\", sparsity = { 0.5 } } },\n"
             "  sparsity = { 0.5, 0.9 }, seeds = { 1, 2 },\n"
             "  train = { epochs = 3, lr = function(c) return c.seed == 2 and 0.02 or 0.05 end },\n"
             "  finetune = { epochs = 1 },\n"
             "  exclude = { { method = \"magnitude\", sparsity = 0.9, model = \"tiny\" } },\n"
             "  filter = function(c) return not (c.label == \"gmt\" and c.seed == 2) end,\n"
             "}\n", &L, &x, &nx);
    ok(rc == PB_OK && nx == 1, "a script with every axis expands (%s)", err);
    if (rc != PB_OK) {
        done(L, x, nx);
        return tap_done();
    }
    /* per (model, seed): dense 1 + magnitude 2 + gmt 2 + random 1 = 6; 3 models x 2 seeds = 36;
     * minus exclude (tiny, magnitude, 0.9: 2 seeds) = 34; minus filter (gmt seed 2: 3 models x 2) = 28 */
    ok(x[0].ncells == 28, "cells = models x seeds x (methods x sparsity) - excluded - filtered (%d)", x[0].ncells);
    ok(count(&x[0], "dense", -1) == 6 && count(&x[0], "dense", 0) == 6, "dense collapses the sparsity axis to 0");
    ok(count(&x[0], "random", 0.9) == 0 && count(&x[0], "random", 0.5) == 6, "a method's own sparsity list overrides the axis");
    ok(count(&x[0], "gmt", -1) == 6, "the filter function removes cells (gmt seed 2)");
    int excl = 0, hw = 0, lua_model = 0, lr_ok = 1, ft_inherits = 1, args_ok = 0;
    for (int i = 0; i < x[0].ncells; i++) {
        pb_cell *c = &x[0].cells[i];
        if (!strcmp(c->model, "tiny") && !strcmp(c->label, "magnitude") && fabs(c->sparsity - 0.9) < 1e-9)
            excl++;
        if (!strcmp(c->model, "lenet300@w0.5") && fabs(c->width - 0.5) < 1e-12 && c->arch && !strcmp(c->arch, "lenet300"))
            hw++;
        if (!strcmp(c->model, "tiny") && c->proto && !c->arch && c->proto->nlayers == 3)
            lua_model++;
        if (fabs(c->train.opt.lr - (c->seed == 2 ? 0.02 : 0.05)) > 1e-12)
            lr_ok = 0;
        if (c->finetune.epochs != 1 || c->train.epochs != 3 || fabs(c->finetune.opt.lr - c->train.opt.lr) > 1e-12)
            ft_inherits = 0;
        if (!strcmp(c->label, "gmt") && c->nargs == 1 && !strcmp(c->args[0], "min_threshold=0.001"))
            args_ok++;
    }
    ok(excl == 0, "exclude patterns remove matching cells");
    ok(hw > 0, "a width-scaled baseline is named lenet300@w0.5 and built as lenet300 with width 0.5");
    ok(lua_model > 0, "a model{} defined in Lua is passed as a built prototype");
    ok(lr_ok, "a function where a number is expected is resolved per cell");
    ok(ft_inherits, "finetune inherits the training recipe and overrides its own fields");
    ok(args_ok == 6, "method parameters become name=value arguments");
    int unique = 1;
    for (int i = 0; i < x[0].ncells; i++)
        for (int k = 0; k < i; k++)
            if (!strcmp(x[0].cells[i].hash, x[0].cells[k].hash))
                unique = 0;
    ok(unique && strlen(x[0].cells[0].hash) == 16, "every cell has its own 16-hex-digit hash");
    int shared = 0;
    for (int i = 0; i < x[0].ncells; i++)
        if (!strcmp(x[0].cells[i].dense_key, x[0].cells[0].dense_key))
            shared++;
    ok(shared > 1, "cells of one model, data set, seed and recipe share a dense key (%d)", shared);
    done(L, x, nx);

    /* ---- hashes ---- */
    char h0[17], d0[17], h1[17], d1[17];
    hash_of(h0, d0, "\"lenet300\"", "\"magnitude\"", "0.9", "1", "epochs = 2, lr = 0.05", "epochs = 1", "");
    hash_of(h1, d1, "\"lenet300\"", "\"magnitude\"", "0.9", "1", "epochs = 2, lr = 0.05", "epochs = 1", "");
    ok(!strcmp(h0, h1) && !strcmp(d0, d1), "the same configuration gives the same hash (%s)", h0);
    hash_of(h1, d1, "\"lenet300\"", "\"magnitude\"", "0.9", "1", "lr = 0.05, epochs = 2", "epochs = 1",
            ", plots = {\"accuracy_vs_flops\"}");
    ok(!strcmp(h0, h1), "key order and presentation do not change the hash");
    hash_of(h1, d1, "\"lenet300\"", "\"magnitude\"", "0.9", "1", "epochs = 2, lr = 0.051", "epochs = 1", "");
    ok(strcmp(h0, h1) && strcmp(d0, d1), "a different learning rate changes the hash and the dense key");
    hash_of(h1, d1, "\"lenet300\"", "\"magnitude\"", "0.95", "1", "epochs = 2, lr = 0.05", "epochs = 1", "");
    ok(strcmp(h0, h1) && !strcmp(d0, d1), "a different sparsity changes the hash, not the dense key");
    hash_of(h1, d1, "\"lenet300\"", "\"magnitude\"", "0.9", "1", "epochs = 2, lr = 0.05", "epochs = 2", "");
    ok(strcmp(h0, h1) && !strcmp(d0, d1), "a different fine-tuning recipe changes the hash, not the dense key");
    hash_of(h1, d1, "\"lenet300\"", "\"magnitude\"", "0.9", "2", "epochs = 2, lr = 0.05", "epochs = 1", "");
    ok(strcmp(h0, h1) && strcmp(d0, d1), "a different seed changes both");
    hash_of(h1, d1, "{\"lenet300\", width = 0.5}", "\"magnitude\"", "0.9", "1", "epochs = 2, lr = 0.05", "epochs = 1", "");
    ok(strcmp(h0, h1) && strcmp(d0, d1), "a different width changes both");
    hash_of(h1, d1, "\"lenet300\"", "{\"magnitude\", scope = \"layer\"}", "0.9", "1", "epochs = 2, lr = 0.05", "epochs = 1", "");
    ok(strcmp(h0, h1), "a method parameter changes the hash");

    /* ---- errors ---- */
    rc = run("experiment \"e\" {\n  models = { \"lenet300\" \n", &L, &x, &nx);
    ok(rc == PB_EUSAGE && strstr(err, "s.lua:3:"), "a syntax error reads file:line: (%s)", err);
    done(L, x, nx);
    rc = run("local a = 1\nerror(\"boom\")\n", &L, &x, &nx);
    ok(rc == PB_EUSAGE && strstr(err, "s.lua:2: boom"), "a run-time error reads file:line: message (%s)", err);
    done(L, x, nx);
    rc = run("\n\nexperiment \"e\" { models = { \"lenet9000\" } }\n", &L, &x, &nx);
    ok(rc == PB_EUSAGE && strstr(err, "s.lua:3:") && strstr(err, "lenet9000") && strstr(err, "resnet20"),
       "an unknown model names the line and lists the valid ones (%s)", err);
    done(L, x, nx);
    rc = run("experiment \"e\" { datasets = {\"synthetic\"}, methods = { \"nosuch\" } }\n", &L, &x, &nx);
    ok(rc == PB_EUSAGE && strstr(err, "nosuch") && strstr(err, "magnitude"),
       "an unknown method lists the plugins (%s)", err);
    done(L, x, nx);
    rc = run("experiment \"e\" { datasets = {\"synthetic\"}, methods = {\"magnitude\"}, sparsity = { 0.5, 1.5 } }\n", &L, &x, &nx);
    ok(rc == PB_EUSAGE && strstr(err, "sparsity[2]") && strstr(err, "1.5"), "an invalid axis value names the axis (%s)", err);
    done(L, x, nx);

    /* ---- CSV ---- */
    pb_csv_row r;
    pb_csv_row_init(&r);
    pb_csv_str(&r, "plain");
    pb_csv_str(&r, "a,b");
    pb_csv_str(&r, "say \"hi\"\nbye");
    pb_csv_num(&r, 0.25);
    pb_csv_end(&r);
    char path[256];
    snprintf(path, sizeof path, "%s/q.csv", tmpdir);
    FILE *f = fopen(path, "w");
    fputs("a,b,c,d\n", f);
    fputs(r.s, f);
    fclose(f);
    pb_csv_table t;
    rc = pb_csv_read(path, &t, err, sizeof err);
    ok(rc == PB_OK && t.nrows == 1 && !strcmp(pb_csv_get(&t, 0, 1), "a,b") &&
           !strcmp(pb_csv_get(&t, 0, 2), "say \"hi\"\nbye") && pb_csv_getnum(&t, 0, 3) == 0.25,
       "CSV fields with commas, quotes and newlines are quoted and read back");
    if (rc == PB_OK)
        pb_csv_table_free(&t);
    pb_csv_row_free(&r);
    unlink(path);
    snprintf(path, sizeof path, "%s/s.lua", tmpdir);
    unlink(path);
    rmdir(tmpdir);
    return tap_done();
}
