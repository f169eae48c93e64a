/* pb_cli: the options the subcommands share. */
#include "pb_cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/pb_check.h"
#include "engine/pb_ckpt.h"
#include "engine/pb_gpt.h"
#include "engine/pb_text.h"
#include "engine/pb_par.h"

void pb_common_defaults(pb_common *c)
{
    memset(c, 0, sizeof *c);
    c->width = 1.0;
    c->hidden[0] = 300;
    c->hidden[1] = 100;
    c->nhidden = 2;
    c->dataset = "fashion-mnist";
    pb_train_defaults(&c->train);
    c->train.progress = 1;
}

int pb_cli_num(const char *cmd, const char *opt, const pb_range *r, const char *arg, double *out)
{
    char err[PB_ERRLEN];
    if (pb_check_parse(r, arg, out, err, sizeof err) == PB_OK)
        return 0;
    fprintf(stderr, "prunebench%s%s: %s: %s\n", cmd ? " " : "", cmd ? cmd : "", opt, err);
    return -1;
}

/* One option's number, checked against the range of that name (pb_check.h),
 * the range the experiment language uses for the same key. */
static int parse_num(const char *opt, const char *range, const char *arg, double *out)
{
    char flag[64];
    snprintf(flag, sizeof flag, "--%s", opt);
    return pb_cli_num(NULL, flag, pb_range_find(range), arg, out);
}

static int parse_int(const char *opt, const char *range, const char *arg, long *out)
{
    double v;
    if (parse_num(opt, range, arg, &v))
        return -1;
    *out = (long)v;
    return 0;
}

/* --hidden 300,100: every width given, none empty (",", "300,", "") */
static int parse_hidden(pb_common *c, const char *arg)
{
    int n = 0;
    const char *p = arg;
    for (;;) {
        size_t len = strcspn(p, ",");
        char tok[32];
        if (len == 0 || len >= sizeof tok) {
            fprintf(stderr, "prunebench: --hidden: '%s' is not a list of widths such as 300,100 (%s)\n", arg,
                    len ? "a width is too long" : "an empty width");
            return -1;
        }
        if (n >= PB_MAX_HIDDEN) {
            fprintf(stderr, "prunebench: --hidden: at most %d hidden layers\n", PB_MAX_HIDDEN);
            return -1;
        }
        memcpy(tok, p, len);
        tok[len] = '\0';
        long iv;
        if (parse_int("hidden", "hidden", tok, &iv))
            return -1;
        c->hidden[n++] = (int)iv;
        if (!p[len])
            break;
        p += len + 1;
    }
    c->nhidden = n;
    return 0;
}

static int lookup(const char *const *names, const char *what, const char *arg)
{
    char err[PB_ERRLEN];
    int i = pb_name_lookup(names, what, arg, err, sizeof err);
    if (i < 0)
        fprintf(stderr, "prunebench: %s\n", err);
    return i;
}

int pb_common_opt(pb_common *c, int opt, const char *arg)
{
    long iv;
    double dv;
    static int lr_given;
    switch (opt) {
    case 'm':
        /* a gpt takes its options in the name: gpt:layers=2,dim=128,... */
        if (!pb_gpt_is(arg) && lookup(pb_model_names, "model", arg) < 0)
            return -1;
        c->model = arg;
        return 1;
    case 1001:
        if (parse_num("width", "width", arg, &c->width))
            return -1;
        return 1;
    case 1002:
        return parse_hidden(c, arg) ? -1 : 1;
    case 'd':
        /* a text set takes its topics in the name: fortunes:science,ctx=32 */
        if (!pb_text_is(arg) && lookup(pb_dataset_names, "dataset", arg) < 0)
            return -1;
        c->dataset = arg;
        return 1;
    case 1003: c->data_dir = arg; return 1;
    case 1004:
        if (parse_int("subset", "subset", arg, &iv)) return -1;
        c->subset = (int)iv;
        return 1;
    case 1014:
        if (parse_int("val", "val", arg, &iv)) return -1;
        c->val = (int)iv;
        return 1;
    case 'e':
        if (parse_int("epochs", "epochs", arg, &iv)) return -1;
        c->train.epochs = (int)iv;
        return 1;
    case 'b':
        if (parse_int("batch", "batch", arg, &iv)) return -1;
        c->train.batch = (int)iv;
        return 1;
    case 1005: {
        int k = lookup(pb_opt_names, "optimizer", arg);
        if (k < 0) return -1;
        c->train.opt.kind = (pb_opt_kind)k;
        if ((k == PB_OPT_ADAM || k == PB_OPT_ADAMW) && !lr_given)
            c->train.opt.lr = 0.001;
        return 1;
    }
    case 1006:
        if (parse_num("lr", "lr", arg, &c->train.opt.lr)) return -1;
        lr_given = 1;
        return 1;
    case 1007:
        if (parse_num("momentum", "momentum", arg, &c->train.opt.momentum)) return -1;
        return 1;
    case 1008:
        if (parse_num("wd", "wd", arg, &c->train.opt.wd)) return -1;
        return 1;
    case 1009: c->train.opt.nesterov = 1; return 1;
    case 1017: c->train.early_stop = 1; return 1;
    case 1010: {
        int k = lookup(pb_sched_names, "schedule", arg);
        if (k < 0) return -1;
        c->train.opt.sched = (pb_sched_kind)k;
        return 1;
    }
    case 1011:
        if (parse_int("warmup", "warmup", arg, &iv)) return -1;
        c->train.opt.warmup_steps = iv;
        return 1;
    case 1015:
        if (parse_int("step-epochs", "step_epochs", arg, &iv)) return -1;
        c->train.opt.step_epochs = (int)iv;
        return 1;
    case 1016:
        if (parse_num("gamma", "gamma", arg, &dv)) return -1;
        c->train.opt.gamma = dv;
        return 1;
    case 's':
        if (parse_int("seed", "seed", arg, &iv)) return -1;
        c->train.seed = (uint64_t)iv;
        return 1;
    case 't':
        if (parse_int("threads", "threads", arg, &iv)) return -1;
        c->threads = (int)iv;
        return 1;
    case 1012: c->save = arg; return 1;
    case 1013: c->load = arg; return 1;
    case 'q': c->train.log_epochs = 0; c->train.progress = 0; return 1;
    default: return 0;
    }
}

int pb_cli_bad_option(const char *cmd, char **argv, const char *shortopts, const struct option *longopts)
{
    char what[128];
    int missing = 0;
    if (optopt == 0) { /* an unknown or ambiguous long option: the word, without its =value */
        const char *a = argv[optind - 1];
        snprintf(what, sizeof what, "%.*s", (int)strcspn(a, "="), a);
        char names[512] = "";
        size_t len = strlen(what) > 2 ? strlen(what) - 2 : 0, used = 0;
        int matches = 0;
        for (const struct option *o = longopts; len && o && o->name; o++)
            if (!strncmp(o->name, what + 2, len) && used < sizeof names) {
                used += (size_t)snprintf(names + used, sizeof names - used, "%s--%s", matches ? ", " : "", o->name);
                matches++;
            }
        if (matches > 1) { /* getopt_long takes a unique prefix; this one is not */
            fprintf(stderr, "prunebench: option '%s' is ambiguous (%s); try 'prunebench %s --help'\n", what, names,
                    cmd);
            return 2;
        }
    } else if (optopt < 256 && !strchr(shortopts, optopt)) {
        snprintf(what, sizeof what, "-%c", optopt);
    } else { /* a known option without its value */
        missing = 1;
        snprintf(what, sizeof what, "-%c", optopt < 256 ? optopt : '?');
        for (const struct option *o = longopts; o && o->name; o++)
            if (o->val == optopt && (optopt >= 256 || strncmp(argv[optind - 1], "--", 2) == 0)) {
                snprintf(what, sizeof what, "--%s", o->name);
                break;
            }
    }
    fprintf(stderr, "prunebench: %s '%s'%s; try 'prunebench %s --help'\n", missing ? "option" : "unknown option",
            what, missing ? " needs a value" : "", cmd);
    return 2;
}

int pb_common_data(pb_common *c, pb_dataset *train, pb_dataset *val, pb_dataset *test, char *err,
                   size_t errlen)
{
    pb_par_use_threads(c->threads);
    return pb_data_open(c->dataset, c->data_dir, c->subset, c->val, c->train.seed, train, val, test, err, errlen);
}

int pb_common_model(pb_common *c, const pb_dataset *d, pb_model *m, char *err, size_t errlen)
{
    if (c->load)
        return pb_ckpt_load(m, c->load, c->train.batch, err, errlen);
    if (!c->model)
        return pb_err(err, errlen, PB_EUSAGE, "no model given: use --model NAME (valid: lenet300, lenet5, conv4, resnet20, mlp, gpt[:layers=L,dim=D,heads=H,ctx=C,ff=F]) or --load FILE");
    int rc = pb_model_build(m, c->model, c->width, c->hidden, c->nhidden, d->c, d->h, d->w, d->ncls,
                            err, errlen);
    if (rc == PB_OK)
        rc = pb_model_finalize(m, c->train.batch, err, errlen);
    if (rc == PB_OK)
        pb_model_init_weights(m, c->train.seed);
    return rc;
}
