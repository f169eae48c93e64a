/* prunebench: the command-line front end; the only place that decides to exit. */
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "pb_cli.h"
#include "pb_run.h"

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
    {.name = NULL},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: prunebench COMMAND [options]   (prunebench COMMAND --help for its options)\n\n"
               "commands:\n");
    for (const command *c = commands; c->name; c++)
        fprintf(f, "  %-9s %s\n", c->name, c->help);
    fprintf(f, "\nprunebench %s: a benchmark harness for neural-network pruning.\n", PACKAGE_VERSION);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("prunebench %s\n", PACKAGE_VERSION);
        return 0;
    }
    for (const command *c = commands; c->name; c++)
        if (!strcmp(argv[1], c->name))
            return c->fn(argc - 1, argv + 1);
    fprintf(stderr, "prunebench: unknown command '%s' (valid:", argv[1]);
    for (const command *c = commands; c->name; c++)
        fprintf(stderr, " %s", c->name);
    fprintf(stderr, ")\n");
    return 2;
}
