/* pb_cli: options shared by the subcommands (model, data, training recipe);
 * the entry points are in pb_cmd.h. */
#ifndef PB_CLI_H
#define PB_CLI_H

#include <getopt.h>

#include "engine/pb_check.h"
#include "engine/pb_data.h"
#include "engine/pb_model.h"
#include "engine/pb_train.h"

typedef struct pb_common {
    const char *model;         /* NULL until given */
    double width;
    int hidden[PB_MAX_HIDDEN];
    int nhidden;
    const char *dataset;
    const char *data_dir;
    int subset;                /* use only the first k training examples (0: all) */
    int val;                   /* hold out this many training examples for validation */
    int threads;
    pb_train_cfg train;
    const char *save, *load;
} pb_common;

/* getopt_long entries for the common options; a command appends its own. */
#define PB_COMMON_LONGOPTS                                                                     \
    {"model", required_argument, 0, 'm'}, {"width", required_argument, 0, 1001},                \
    {"hidden", required_argument, 0, 1002}, {"dataset", required_argument, 0, 'd'},            \
    {"data-dir", required_argument, 0, 1003}, {"subset", required_argument, 0, 1004},          \
    {"epochs", required_argument, 0, 'e'}, {"batch", required_argument, 0, 'b'},                \
    {"opt", required_argument, 0, 1005}, {"lr", required_argument, 0, 1006},                    \
    {"momentum", required_argument, 0, 1007}, {"wd", required_argument, 0, 1008},              \
    {"nesterov", no_argument, 0, 1009}, {"schedule", required_argument, 0, 1010},              \
    {"warmup", required_argument, 0, 1011}, {"seed", required_argument, 0, 's'},                \
    {"threads", required_argument, 0, 't'}, {"save", required_argument, 0, 1012},              \
    {"load", required_argument, 0, 1013}, {"val", required_argument, 0, 1014},                  \
    {"step-epochs", required_argument, 0, 1015}, {"gamma", required_argument, 0, 1016},        \
    {"quiet", no_argument, 0, 'q'}, {"early-stop", no_argument, 0, 1017}

#define PB_COMMON_HELP                                                                         \
    "  -m, --model NAME      lenet300 | lenet5 | conv4 | resnet20 | mlp | gpt[:layers=L,dim=D,heads=H,ctx=C,ff=F]\n" \
    "      --width X         width multiplier of hidden layers (default 1)\n"                       \
    "      --hidden A,B,..   hidden widths for --model mlp (default 300,100)\n"                    \
    "  -d, --dataset NAME    fashion-mnist (default) | mnist | cifar10 | synthetic | fortunes[:TOPIC,..,ctx=N]\n" \
    "      --data-dir DIR    data directory (default $PRUNEBENCH_DATA or the Debian path)\n"      \
    "      --subset K        train on the first K training examples only\n"                     \
    "      --val K           hold out K training examples (seeded) as a validation set\n"        \
    "  -e, --epochs N        epochs (default 10)\n"                                               \
    "  -b, --batch B         batch size (default 128)\n"                                          \
    "      --opt NAME        sgd (default) | adam | adamw\n"                                               \
    "      --lr X            learning rate (default 0.05 for sgd, 0.001 for adam)\n"             \
    "      --momentum M      SGD momentum (default 0.9)\n"                                        \
    "      --nesterov        Nesterov momentum\n"                                                 \
    "      --wd W            weight decay (default 0)\n"                                          \
    "      --schedule NAME   constant (default) | step | cosine | linear\n"                      \
    "      --step-epochs K   step schedule: decay every K epochs (default 10)\n"                \
    "      --gamma G         step schedule: decay factor (default 0.1)\n"                        \
    "      --warmup K        linear warm-up over the first K steps\n"                            \
    "      --early-stop      end with the weights of the epoch of lowest validation loss (needs --val)\n" \
    "  -s, --seed S          seed for initialization, shuffling, dropout (default 1)\n"          \
    "  -t, --threads T       threads (default: all cores)\n"                                     \
    "  -q, --quiet           no per-epoch lines\n"

void pb_common_defaults(pb_common *c);
/* Parses option opt's number arg into out within r (pb_check.h); on a bad
 * value prints "prunebench CMD: OPT: 'ARG' is not an integer in [lo, hi]" and
 * returns -1. */
int pb_cli_num(const char *cmd, const char *opt, const pb_range *r, const char *arg, double *out);
/* Handles one getopt result; returns 1 if it was a common option, 0 if not,
 * -1 on an invalid value (message printed). */
int pb_common_opt(pb_common *c, int opt, const char *arg);
/* For a command's getopt_long result '?' (opterr is 0): prints the one line
 * "prunebench: unknown option '--x'; try 'prunebench CMD --help'" (or that an
 * option needs its value) and returns the exit status 2. */
int pb_cli_bad_option(const char *cmd, char **argv, const char *shortopts, const struct option *longopts);
/* Applies threads, loads the data sets (train, optional val, test). */
int pb_common_data(pb_common *c, pb_dataset *train, pb_dataset *val, pb_dataset *test, char *err,
                   size_t errlen);
/* Builds and initializes the model named in c for data set d (or loads c->load). */
int pb_common_model(pb_common *c, const pb_dataset *d, pb_model *m, char *err, size_t errlen);

#endif
