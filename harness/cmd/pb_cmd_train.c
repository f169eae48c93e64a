/* `prunebench train` and `prunebench eval`. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "pb_cli.h"
#include "pb_cmd.h"
#include "engine/pb_file.h"
#include "engine/pb_ckpt.h"
#include "engine/pb_par.h"

static void train_usage(FILE *f)
{
    fprintf(f, "usage: prunebench train --model NAME [options]\n\n"
               "Trains a dense model and prints a result line:\n"
               "  result: test_acc=... test_loss=... params=... nonzero=... flops=... wall_s=...\n\n"
               "options:\n" PB_COMMON_HELP
               "      --save FILE       write a checkpoint after training\n"
               "      --load FILE       start from a checkpoint instead of --model\n"
               "  -h, --help            this help\n");
}

int pb_cmd_train(int argc, char **argv)
{
    static const struct option longopts[] = {PB_COMMON_LONGOPTS, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    pb_common c;
    pb_common_defaults(&c);
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "m:d:e:b:s:t:qh", longopts, NULL)) != -1) {
        if (opt == 'h') {
            train_usage(stdout);
            return 0;
        }
        int r = pb_common_opt(&c, opt, optarg);
        if (r < 0)
            return 2;
        if (r == 0)
            return pb_cli_bad_option("train", argv, "m:d:e:b:s:t:qh", longopts);
    }
    if (optind < argc) {
        fprintf(stderr, "prunebench train: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    char err[PB_ERRLEN] = "";
    pb_dataset train, val, test;
    pb_model m;
    memset(&m, 0, sizeof m);
    char target[4096];
    /* a --save target that cannot be written is refused before the training */
    int rc = c.save ? pb_file_target(c.save, target, sizeof target, err, sizeof err) : PB_OK;
    if (rc == PB_OK)
        rc = pb_common_data(&c, &train, &val, &test, err, sizeof err);
    if (rc == PB_OK)
        rc = pb_common_model(&c, &train, &m, err, sizeof err);
    if (rc == PB_OK) {
        size_t total, nz;
        pb_model_count_params(&m, &total, &nz);
        fprintf(stderr, "model %s: %zu parameters; data %s: %d train, %d test\n", m.arch, total,
                train.name, train.n, test.n);
        pb_train_result res;
        c.train.val = val.n ? &val : NULL;
        rc = pb_train(&m, &train, &test, &c.train, NULL, &res, err, sizeof err);
        /* no epoch ran (--epochs 0): the figures are the initialization's, measured */
        if (rc == PB_OK && res.test_acc < 0)
            rc = pb_evaluate(&m, &test, c.train.batch, &res.test_acc, &res.test_loss, err, sizeof err);
        if (rc == PB_OK && c.save)
            rc = pb_ckpt_save(&m, c.save, err, sizeof err);
        if (rc == PB_OK)
            pb_print_result(stdout, &m, res.test_acc, res.test_loss, res.wall_s);
    }
    if (rc != PB_OK)
        fprintf(stderr, "prunebench train: %s\n", err);
    pb_model_free(&m);
    pb_data_free(&train);
    pb_data_free(&val);
    pb_data_free(&test);
    return rc == PB_OK ? 0 : rc == PB_EUSAGE ? 2 : 1;
}

static void eval_usage(FILE *f)
{
    fprintf(f, "usage: prunebench eval --load FILE [--dataset NAME] [--data-dir DIR] [--batch B]\n\n"
               "Evaluates a checkpoint on the test split and prints the result line.\n");
}

int pb_cmd_eval(int argc, char **argv)
{
    static const struct option longopts[] = {PB_COMMON_LONGOPTS, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    pb_common c;
    pb_common_defaults(&c);
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "m:d:e:b:s:t:qh", longopts, NULL)) != -1) {
        if (opt == 'h') {
            eval_usage(stdout);
            return 0;
        }
        int r = pb_common_opt(&c, opt, optarg);
        if (r < 0)
            return 2;
        if (r == 0)
            return pb_cli_bad_option("eval", argv, "m:d:e:b:s:t:qh", longopts);
    }
    if (!c.load) {
        eval_usage(stderr);
        return 2;
    }
    char err[PB_ERRLEN] = "";
    pb_dataset test;
    pb_model m;
    memset(&m, 0, sizeof m);
    memset(&test, 0, sizeof test);
    pb_par_use_threads(c.threads);
    int rc = pb_ckpt_load(&m, c.load, c.train.batch, err, sizeof err);
    if (rc == PB_OK)
        rc = pb_data_load(c.dataset, c.data_dir, PB_SPLIT_TEST, &test, err, sizeof err);
    if (rc == PB_OK && (test.c != m.ic || test.h != m.ih || test.w != m.iw || test.ncls != m.ncls))
        rc = pb_err(err, sizeof err, PB_EUSAGE, "checkpoint %s expects %dx%dx%d inputs and %d classes; %s has %dx%dx%d and %d",
                    c.load, m.ic, m.ih, m.iw, m.ncls, test.name, test.c, test.h, test.w, test.ncls);
    if (rc == PB_OK) {
        double t0 = pb_now(), acc, loss;
        rc = pb_evaluate(&m, &test, c.train.batch, &acc, &loss, err, sizeof err);
        if (rc == PB_OK)
            pb_print_result(stdout, &m, acc, loss, pb_now() - t0);
    }
    if (rc != PB_OK)
        fprintf(stderr, "prunebench eval: %s\n", err);
    pb_model_free(&m);
    pb_data_free(&test);
    return rc == PB_OK ? 0 : rc == PB_EUSAGE ? 2 : 1;
}
