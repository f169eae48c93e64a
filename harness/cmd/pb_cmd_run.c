/* `prunebench run` and `prunebench plot`. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pb_cli.h"
#include "pb_cmd.h"
#include "exp/pb_cell.h"
#include "exp/pb_lua.h"
#include "exp/pb_plot.h"
#include "exp/pb_run.h"
#include "exp/pb_shard.h"
#include "exp/pb_store.h"

static void run_usage(FILE *f)
{
    char prelude[4200];
    pb_lua_prelude_path(prelude, sizeof prelude);
    fprintf(f,
            "usage: prunebench run SCRIPT.lua [-j N] [--out DIR] [--fresh] [--dry-run] [--plugin-path DIR]\n"
            "                      [--timeout S] [--shard I/N | --merge-only] [-e NAME]... [--sandbox]\n\n"
            "Runs the experiment matrix a Lua script declares, one worker process per cell, and\n"
            "writes DIR/<experiment>/cells.csv, curves.csv, layers.csv, metadata.txt and charts\n"
            "under plots/. Finished cells are kept: running the script again resumes.\n"
            "The experiment language: man prunebench-lua; its definitions (the prelude):\n"
            "  %s\n\n"
            "options:\n"
            "  -j, --jobs N          worker processes (default 1)\n"
            "  -o, --out DIR         results directory (default results)\n"
            "      --fresh           discard earlier results and cached dense models of the experiment\n"
            "      --retry-failed    run failed cells again\n"
            "      --timeout S       fail a cell still running after S seconds of wall clock (\"timeout\n"
            "                        after S s\"; --retry-failed runs it again), over the script's\n"
            "                        train.timeout; 0: no limit\n"
            "  -n, --dry-run         print the expanded cells and a cost estimate; train nothing\n"
            "      --plugin-path DIR look for method plugins in DIR first\n"
            "      --data-dir DIR    data directory (default $PRUNEBENCH_DATA or the Debian path)\n"
            "  -t, --threads T       threads per worker (default: cores / jobs)\n"
            "      --no-plot         do not draw charts at the end\n"
            "  -q, --quiet           no progress or log lines\n"
            "      --shard I/N       run only shard I of N (0 <= I < N; cells assigned by hash): the\n"
            "                        shards share DIR and its cached models, on any hosts that see it,\n"
            "                        and draw no charts (see --merge-only, prunebench slurm)\n"
            "      --merge-only      train nothing: regenerate the CSV files from the cells every\n"
            "                        shard recorded and draw the charts (exit 1 if cells are missing)\n"
            "  -e, --experiment NAME run only the experiment NAME of the script (repeatable; default:\n"
            "                        all of them)\n"
            "      --sandbox         run the script without files, processes or C modules: it sees\n"
            "                        only the experiment language, string, table, math, utf8,\n"
            "                        coroutine, os.clock/time/date, print and load of text, and\n"
            "                        names methods, not plugin files (use it for scripts you did\n"
            "                        not write; see README, \"What a script can do\")\n"
            "  -h, --help            this help\n\n"
            "SIGINT (^C) or SIGTERM stops the running cells (they are not recorded) and keeps\n"
            "the finished ones; running the same command again resumes.\n\n"
            "Exit status: 0 all cells ok, 1 some cells failed or the run could not finish,\n"
            "2 bad arguments or a script error (nothing trained), 130 or 143 stopped by\n"
            "SIGINT or SIGTERM.\n", prelude);
}

int pb_cmd_run(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"jobs", required_argument, 0, 'j'},     {"out", required_argument, 0, 'o'},
        {"fresh", no_argument, 0, 1001},          {"dry-run", no_argument, 0, 'n'},
        {"plugin-path", required_argument, 0, 1002}, {"data-dir", required_argument, 0, 1003},
        {"threads", required_argument, 0, 't'},  {"retry-failed", no_argument, 0, 1004},
        {"no-plot", no_argument, 0, 1005},        {"quiet", no_argument, 0, 'q'},
        {"shard", required_argument, 0, 1006},    {"merge-only", no_argument, 0, 1007},
        {"experiment", required_argument, 0, 'e'}, {"help", no_argument, 0, 'h'},
        {"sandbox", no_argument, 0, 1008},        {"timeout", required_argument, 0, 1009},
        {0, 0, 0, 0}};
    enum { MAX_ONLY = 32 };
    const char *only[MAX_ONLY];
    int nonly = 0;
    pb_run_opts o = {.out_dir = "results", .jobs = 1, .timeout = -1};
    pb_shard shard = {0, 0};
    int sandbox = 0;
    char serr[PB_ERRLEN];
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "j:o:nt:qe:h", longopts, NULL)) != -1) {
        double num;
        static const pb_range jobs_range = {.name = "jobs", .lo = 1, .hi = PB_RUN_MAX_JOBS, .integral = 1};
        switch (opt) {
        case 'j':
            if (pb_cli_num("run", "-j", &jobs_range, optarg, &num))
                return 2;
            o.jobs = (int)num;
            break;
        case 't':
            if (pb_cli_num("run", "--threads", pb_range_find("threads"), optarg, &num))
                return 2;
            o.threads = (int)num;
            break;
        case 'o': o.out_dir = optarg; break;
        case 1001: o.fresh = 1; break;
        case 'n': o.dry_run = 1; break;
        case 1002: o.plugin_path = optarg; break;
        case 1003: o.data_dir = optarg; break;
        case 1004: o.retry_failed = 1; break;
        case 1005: o.no_plot = 1; break;
        case 1006:
            if (pb_shard_parse(optarg, &shard, serr, sizeof serr) != PB_OK) {
                fprintf(stderr, "prunebench run: %s\n", serr);
                return 2;
            }
            o.shard_index = shard.index;
            o.shard_count = shard.count;
            break;
        case 1007: o.merge_only = 1; break;
        case 1008: sandbox = 1; break;
        case 1009: /* seconds, 0: no limit */
            if (pb_cli_num("run", "--timeout", pb_range_find("timeout"), optarg, &num))
                return 2;
            o.timeout = num;
            break;
        case 'q': o.quiet = 1; break;
        case 'e':
            if (nonly == MAX_ONLY) {
                fprintf(stderr, "prunebench run: --experiment: at most %d names\n", MAX_ONLY);
                return 2;
            }
            only[nonly++] = optarg;
            break;
        case 'h': run_usage(stdout); return 0;
        default: return pb_cli_bad_option("run", argv, "j:o:nt:qe:h", longopts);
        }
    }
    if (optind != argc - 1) {
        if (optind == argc)
            fprintf(stderr, "prunebench run: no script given (prunebench run SCRIPT.lua [options]); try "
                            "'prunebench run --help'\n");
        else
            fprintf(stderr, "prunebench run: one script at a time: '%s' after '%s'\n", argv[optind + 1],
                    argv[optind]);
        return 2;
    }
    o.script = argv[optind];
    if (o.shard_count && (o.fresh || o.merge_only)) {
        fprintf(stderr, "prunebench run: --shard cannot go with %s: it would discard or merge the other shards' "
                        "work while they run\n", o.fresh ? "--fresh" : "--merge-only");
        return 2;
    }
    if (o.merge_only && (o.fresh || o.dry_run || o.retry_failed)) {
        fprintf(stderr, "prunebench run: --merge-only trains nothing: it cannot go with --fresh, --dry-run or "
                        "--retry-failed\n");
        return 2;
    }
    char err[PB_ERRLEN] = "";
    size_t n;
    char *text = pb_store_read_text(o.script, &n);
    if (!text) {
        fprintf(stderr, "prunebench run: cannot read %s: %s\n", o.script, strerror(errno));
        return 2;
    }
    pb_lua *L = NULL;
    pb_experiment *exps = NULL;
    int nexp = 0;
    int rc = pb_lua_open(&L, o.plugin_path, o.data_dir, err, sizeof err);
    if (rc == PB_OK)
        pb_lua_set_sandbox(L, sandbox);
    if (rc == PB_OK)
        rc = pb_lua_run(L, o.script, &exps, &nexp, err, sizeof err);
    if (rc != PB_OK) {
        fprintf(stderr, "%s\n", err);
        free(text);
        pb_lua_close(L);
        return rc == PB_EUSAGE ? 2 : 1;
    }
    /* --experiment: keep the named experiments, in the script's order; a name
     * the script does not declare is an error that lists those it does */
    for (int k = 0; k < nonly && rc == PB_OK; k++) {
        int e = 0;
        while (e < nexp && strcmp(exps[e].name, only[k]))
            e++;
        if (e == nexp) {
            fprintf(stderr, "prunebench run: %s declares no experiment '%s'; it declares:", o.script, only[k]);
            for (int q = 0; q < nexp; q++)
                fprintf(stderr, " %s", exps[q].name);
            fprintf(stderr, "\n");
            pb_cell_free_experiments(exps, nexp);
            pb_lua_close(L);
            free(text);
            return 2;
        }
    }
    int *skip = calloc((size_t)(nexp > 0 ? nexp : 1), sizeof *skip);
    if (!skip) {
        fprintf(stderr, "prunebench run: out of memory\n");
        pb_cell_free_experiments(exps, nexp);
        pb_lua_close(L);
        free(text);
        return 1;
    }
    for (int e = 0; e < nexp && nonly; e++) {
        skip[e] = 1;
        for (int k = 0; k < nonly; k++)
            skip[e] &= strcmp(exps[e].name, only[k]) != 0;
    }
    /* an unwritable output directory is reported before anything trains */
    if (!o.dry_run) {
        for (int e = 0; e < nexp && rc == PB_OK; e++) {
            if (skip[e])
                continue;
            char dir[4096];
            snprintf(dir, sizeof dir, "%s/%s", o.out_dir, exps[e].name);
            rc = pb_store_check_writable(dir, err, sizeof err);
        }
    }
    int any_failed = 0;
    for (int e = 0; e < nexp && rc == PB_OK; e++) {
        if (skip[e])
            continue;
        pb_run_summary sum;
        rc = pb_run_experiment(&o, &exps[e], text, &sum, err, sizeof err);
        if (sum.stop_signal) {
            char dir[4096];
            snprintf(dir, sizeof dir, "%s/%s", o.out_dir, exps[e].name);
            fprintf(stderr, "prunebench run: stopped by %s: %d cells finished are kept in %s, %d running cells "
                            "were stopped and not recorded; run the same command to resume\n",
                    sum.stop_signal == SIGINT ? "SIGINT" : "SIGTERM", sum.skipped + sum.ran, dir, sum.stopped);
            break;
        }
        if (rc != PB_OK || o.dry_run)
            continue;
        any_failed |= sum.failed > 0 || sum.missing > 0;
        if (o.merge_only) {
            if (!o.quiet)
                printf("experiment %s: %d cells: %d ok, %d failed, %d missing (no shard has recorded them)\n",
                       exps[e].name, sum.total, sum.skipped, sum.failed, sum.missing);
        } else if (o.shard_count && !o.quiet) {
            printf("experiment %s: shard %d/%d: %d cells (%d run now, %d from earlier runs, %d run by other shards), "
                   "%d failed; %d cells of other shards run here (the first to need a cached model)\n",
                   exps[e].name, o.shard_index, o.shard_count, sum.total, sum.ran, sum.skipped, sum.by_others,
                   sum.failed, sum.theirs);
        } else if (!o.quiet) {
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
    free(skip);
    pb_cell_free_experiments(exps, nexp);
    pb_lua_close(L);
    free(text);
    if (pb_run_stop_signal())
        return 128 + pb_run_stop_signal();
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
    if (argc >= 2 && argv[1][0] == '-' && argv[1][1]) {
        fprintf(stderr, "prunebench: unknown option '%s'; try 'prunebench plot --help'\n", argv[1]);
        return 2;
    }
    if (argc != 2) {
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
