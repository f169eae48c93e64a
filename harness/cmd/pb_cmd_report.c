/* `prunebench report`: the checklist and tables of results directories. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pb_cli.h"
#include "pb_cmd.h"
#include "engine/pb_util.h"
#include "exp/pb_report.h"

static void report_usage(FILE *f)
{
    fprintf(f,
            "usage: prunebench report DIR... [--latex] [--metric COLUMN] [--against LABEL] [--alpha A]\n\n"
            "Reads DIR/cells.csv of one or more experiment results directories (e.g. the\n"
            "LeNet-300-100 and LeNet-5 halves of a paper script) and prints, in Markdown:\n"
            "  - the checklist of Blalock et al. 2020: model/data pairs (>= 3), operating points\n"
            "    per method (>= 5), seeds per point (>= 3; >= 5 at s >= 0.99; a seed whose\n"
            "    training diverged counts, as an outcome), a dense baseline, compression and\n"
            "    theoretical speedup both charted, failed cells;\n"
            "  - mean ± std over seeds and the confidence interval (Student's t) of the metric\n"
            "    for every model, data set, method and sparsity;\n"
            "  - with --against LABEL, every other method paired by seed with LABEL at the same\n"
            "    sparsity (or with LABEL's only point, e.g. dense): the mean difference ± std,\n"
            "    its interval, t, the two-sided p and a verdict (beyond noise / within noise).\n\n"
            "options:\n"
            "      --latex           LaTeX tabulars instead of Markdown tables\n"
            "      --metric COLUMN   the cells.csv column to report (default test_acc)\n"
            "      --against LABEL   paired comparisons with this method label\n"
            "      --alpha A         level of the tests and intervals (default 0.05: 95 %%)\n"
            "  -h, --help            this help\n");
}

int pb_cmd_report(int argc, char **argv)
{
    static const struct option longopts[] = {{"latex", no_argument, 0, 1001},
                                             {"metric", required_argument, 0, 1002},
                                             {"against", required_argument, 0, 1003},
                                             {"alpha", required_argument, 0, 1004},
                                             {"help", no_argument, 0, 'h'},
                                             {0, 0, 0, 0}};
    pb_report_opts o = {.format = PB_REPORT_MARKDOWN, .metric = "test_acc", .alpha = 0.05};
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        static const pb_range alpha_range = {.name = "alpha", .lo = 0, .hi = 0.5, .lo_open = 1, .hi_open = 1};
        switch (opt) {
        case 1001: o.format = PB_REPORT_LATEX; break;
        case 1002: o.metric = optarg; break;
        case 1003: o.against = optarg; break;
        case 1004:
            if (pb_cli_num("report", "--alpha", &alpha_range, optarg, &o.alpha))
                return 2;
            break;
        case 'h': report_usage(stdout); return 0;
        default: return pb_cli_bad_option("report", argv, "h", longopts);
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "prunebench report: no results directory (usage: prunebench report DIR...; see --help)\n");
        return 2;
    }
    char err[PB_ERRLEN];
    int rc = pb_report((const char *const *)argv + optind, argc - optind, &o, stdout, err, sizeof err);
    if (rc != PB_OK) {
        fprintf(stderr, "prunebench report: %s\n", err);
        return rc == PB_EUSAGE ? 2 : 1;
    }
    return 0;
}
