/* prunebench: the command-line front end; the only place that decides to exit. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "config.h"
#include "pb_revision.h"
#include "pb_cmd.h"
#include "engine/pb_sparse.h"

typedef struct command {
    const char *name;
    pb_cmd_fn fn;
    const char *help;
} command;

static const command commands[] = {
    {.name = "train", .fn = pb_cmd_train, .help = "train a dense model and print its result line"},
    {.name = "eval", .fn = pb_cmd_eval, .help = "evaluate a checkpoint"},
    {.name = "prune", .fn = pb_cmd_prune, .help = "run one pruning method and print its result line"},
    {.name = "plugins", .fn = pb_cmd_plugins, .help = "list the method plugins, or show one's parameters"},
    {.name = "run", .fn = pb_cmd_run, .help = "run the experiment matrix of a Lua script (cells.csv, charts)"},
    {.name = "plot", .fn = pb_cmd_plot, .help = "redraw the charts of a results directory from its CSV files"},
    {.name = "report", .fn = pb_cmd_report, .help = "the reporting checklist and mean ± std tables of results directories"},
    {.name = "slurm", .fn = pb_cmd_slurm, .help = "write (and submit) a Slurm job array running a script's shards"},
    {.name = NULL},
};

char *openblas_get_corename(void);

/* OpenBLAS picks its kernels when it loads, before main. Debian 12's 0.3.21 does
 * not know recent Intel CPUs and falls back to its slowest (SSE3 "Prescott")
 * kernels on them, 4x slower than the AVX-512 ones the CPU can run. In that
 * case only, name the right kernels and start again; an OPENBLAS_CORETYPE the
 * user set is always left alone. */
static void choose_blas_kernels(char **argv)
{
    if (getenv("OPENBLAS_CORETYPE") || getenv("PRUNEBENCH_BLAS_CHOSEN"))
        return;
    const char *core = openblas_get_corename();
    if (!core || strcasecmp(core, "prescott") != 0)
        return;
    __builtin_cpu_init();
    const char *want = NULL;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
        want = "SkylakeX";
    else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        want = "Haswell";
    if (!want)
        return;
    setenv("OPENBLAS_CORETYPE", want, 1);
    setenv("PRUNEBENCH_BLAS_CHOSEN", "1", 1);
    execv("/proc/self/exe", argv); /* on failure, carry on with the slow kernels */
}

static void usage(FILE *f)
{
    fprintf(f, "usage: prunebench COMMAND [options]   (prunebench COMMAND --help for its options)\n\n"
               "commands:\n");
    for (const command *c = commands; c->name; c++)
        fprintf(f, "  %-9s %s\n", c->name, c->help);
    fprintf(f, "\nprunebench %s: a benchmark harness for neural-network pruning.\n", PACKAGE_VERSION);
}

/* A result the standard output could not take (a full disk, /dev/full) is a
 * failure, not a silent success. */
static int check_stdout(int rc)
{
    errno = 0;
    if (fflush(stdout) == 0 && !ferror(stdout))
        return rc;
    fprintf(stderr, "prunebench: cannot write the standard output: %s\n", strerror(errno ? errno : EIO));
    return rc ? rc : 1;
}

int main(int argc, char **argv)
{
    choose_blas_kernels(argv);
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        /* the revision is the one compiled in (unknown for a release tarball) */
        printf("prunebench %s (revision %s; OpenBLAS kernels: %s)\n", PACKAGE_VERSION, PB_REVISION,
               openblas_get_corename());
        return 0;
    }
    /* the kernel mode of the sparse formats (pb_sparse.h), for benchmarks */
    const char *kernels = getenv("PB_KERNELS");
    pb_sparse_mode mode;
    char err[PB_ERRLEN];
    if (kernels && *kernels && pb_sparse_parse_mode(kernels, &mode, err, sizeof err) != PB_OK) {
        fprintf(stderr, "prunebench: environment variable PB_KERNELS: %s\n", err);
        return 2;
    }
    opterr = 0; /* a command reports a bad option in one line (pb_cli_bad_option) */
    for (const command *c = commands; c->name; c++)
        if (!strcmp(argv[1], c->name))
            return check_stdout(c->fn(argc - 1, argv + 1));
    if (argv[1][0] == '-') {
        fprintf(stderr, "prunebench: unknown option '%s'; try 'prunebench --help'\n", argv[1]);
        return 2;
    }
    fprintf(stderr, "prunebench: unknown command '%s' (valid:", argv[1]);
    for (const command *c = commands; c->name; c++)
        fprintf(stderr, " %s", c->name);
    fprintf(stderr, ")\n");
    return 2;
}
