/* `prunebench prune`. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pb_cli.h"
#include "pb_cmd.h"
#include "exp/pb_job.h"

static void prune_usage(FILE *f)
{
    fprintf(f,
            "usage: prunebench prune --method NAME [--param k=v ...] --sparsity S\n"
            "                        (--load FILE | --model NAME [--dataset NAME]) [options]\n\n"
            "Runs one pruning method. Methods that prune a trained model start from --load or\n"
            "train the dense model first (--epochs); methods that prune at initialization or\n"
            "during training train from scratch (--epochs). Prints the result line and the\n"
            "sparsity of every layer.\n\n"
            "options:\n"
            "      --method NAME     a plugin name or a path to a .so (prunebench plugins lists them)\n"
            "      --param K=V       a method parameter (repeatable)\n"
            "      --sparsity S      target fraction of prunable weights removed, in [0, 1)\n"
            "      --finetune-epochs N  epochs of fine-tuning after pruning a trained model (default 0)\n"
            "      --finetune-lr X   fine-tuning learning rate (default 0.01)\n"
            "      --plugin-path DIR search DIR first for plugins\n"
            "      --target-acc A    report the wall time at which test accuracy first reaches A\n"
            "      --stages LIST     the pipeline, e.g. train,keep=base,finetune,prune (default: the\n"
            "                        method's: train,prune,finetune for a trained model; prune,train\n"
            "                        at initialization); stages: train, prune, finetune, calibrate=N,\n"
            "                        keep=NAME, load=NAME|FILE\n" PB_COMMON_HELP
            "      --save FILE       write the pruned model\n"
            "      --load FILE       start from a trained checkpoint\n"
            "  -h, --help            this help\n");
}

/* A plugin runs in this process: one that calls exit() would end it with
 * status 0 and no result line. The handler turns that into a failure. */
static volatile int prune_finished = 1;

static void prune_exit_check(void)
{
    if (!prune_finished) {
        fputs("prunebench prune: the process exited before the run finished (did the method call exit()?)\n",
              stderr);
        _exit(1);
    }
}

int pb_cmd_prune(int argc, char **argv)
{
    static const struct option longopts[] = {
        PB_COMMON_LONGOPTS,
        {"method", required_argument, 0, 2001},
        {"param", required_argument, 0, 2002},
        {"sparsity", required_argument, 0, 2003},
        {"finetune-epochs", required_argument, 0, 2004},
        {"finetune-lr", required_argument, 0, 2005},
        {"plugin-path", required_argument, 0, 2006},
        {"target-acc", required_argument, 0, 2007},
        {"stages", required_argument, 0, 2008},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    pb_common c;
    pb_common_defaults(&c);
    pb_job j;
    pb_job_defaults(&j);
    int opt, have_sparsity = 0;
    pb_stage stages[PB_JOB_MAX_STAGES];
    char err[PB_ERRLEN] = "";
    double num;
    static const pb_range ft_lr = {.name = "finetune lr", .lo = 0, .hi = 100, .lo_open = 1};
    optind = 1;
    while ((opt = getopt_long(argc, argv, "m:d:e:b:s:t:qh", longopts, NULL)) != -1) {
        switch (opt) {
        case 'h':
            prune_usage(stdout);
            return 0;
        case 2001: j.method = optarg; break;
        case 2002:
            if (j.nargs >= PB_JOB_MAX_ARGS) {
                fprintf(stderr, "prunebench prune: too many --param options\n");
                return 2;
            }
            j.args[j.nargs++] = optarg;
            break;
        case 2003:
            if (pb_cli_num("prune", "--sparsity", pb_range_find("sparsity"), optarg, &j.sparsity))
                return 2;
            have_sparsity = 1;
            break;
        case 2004:
            if (pb_cli_num("prune", "--finetune-epochs", pb_range_find("epochs"), optarg, &num))
                return 2;
            j.finetune.epochs = (int)num;
            break;
        case 2005:
            if (pb_cli_num("prune", "--finetune-lr", &ft_lr, optarg, &j.finetune.opt.lr))
                return 2;
            break;
        case 2006: j.plugin_path = optarg; break;
        case 2007:
            if (pb_cli_num("prune", "--target-acc", pb_range_find("target accuracy"), optarg, &c.train.target_acc))
                return 2;
            break;
        case 2008: {
            int n;
            if (pb_job_parse_stages(optarg, stages, PB_JOB_MAX_STAGES, &n, err, sizeof err) != PB_OK) {
                fprintf(stderr, "prunebench prune: %s\n", err);
                return 2;
            }
            j.stages = stages;
            j.nstages = n;
            break;
        }
        default: {
            int r = pb_common_opt(&c, opt, optarg);
            if (r < 0)
                return 2;
            if (r == 0)
                return pb_cli_bad_option("prune", argv, "m:d:e:b:s:t:qh", longopts);
        }
        }
    }
    if (optind < argc) {
        fprintf(stderr, "prunebench prune: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (!j.method || !have_sparsity || (!c.model && !c.load)) {
        fprintf(stderr, "prunebench prune: --method, --sparsity and --model or --load are required\n");
        prune_usage(stderr);
        return 2;
    }
    j.model = c.model;
    j.width = c.width;
    j.hidden = c.hidden;
    j.nhidden = c.nhidden;
    j.load = c.load;
    j.save = c.save;
    j.dataset = c.dataset;
    j.data_dir = c.data_dir;
    j.subset = c.subset;
    j.val = c.val;
    j.threads = c.threads;
    j.train = c.train;
    j.finetune.batch = c.train.batch;
    j.finetune.progress = c.train.progress;
    j.finetune.log_epochs = c.train.log_epochs;
    j.finetune.opt.kind = c.train.opt.kind;
    j.finetune.opt.momentum = c.train.opt.momentum;
    j.finetune.opt.wd = c.train.opt.wd;
    j.finetune.target_acc = c.train.target_acc;

    pb_job_result *res = calloc(1, sizeof *res);
    if (!res)
        return 1;
    static int registered;
    if (!registered)
        registered = atexit(prune_exit_check) == 0;
    prune_finished = 0;
    int rc = pb_job_run(&j, res, err, sizeof err);
    prune_finished = 1;
    if (rc == PB_OK) {
        printf("result: test_acc=%.4f test_loss=%.4f params=%zu nonzero=%zu flops=%.0f eff_flops=%.0f "
               "sparsity=%.4f wall_s=%.2f stored=%zu cost_wall_s=%.2f cost_flops=%.4g",
               res->test_acc, res->test_loss, res->params, res->nonzero,
               /* as cells.csv: the unpruned architecture's, when structural pruning shrank it */
               res->flops_dense_orig > 0 ? res->flops_dense_orig : res->flops_dense, res->flops_eff,
               res->sparsity, res->wall_s, res->stored, res->cost_wall_s, res->cost_flops);
        if (res->time_to_target_s >= 0)
            printf(" time_to_target_s=%.2f", res->time_to_target_s);
        if (res->pruned_acc >= 0)
            printf(" pruned_acc=%.4f pruned_loss=%.4f", res->pruned_acc, res->pruned_loss);
        for (int i = 0; i < res->nmetrics; i++)
            printf(" %s=%.6g", res->metrics[i].name, res->metrics[i].value);
        printf("\nlayer                      weights    nonzero  sparsity\n");
        for (int i = 0; i < res->nlayers; i++) {
            const pb_layer_stat *s = &res->layers[i];
            printf("%-24s %9zu  %9zu  %8.4f\n", s->name, s->n, s->nonzero,
                   s->n ? 1.0 - (double)s->nonzero / (double)s->n : 0);
        }
        if (!isfinite(res->test_loss) || !isfinite(res->test_acc)) {
            fprintf(stderr, "prunebench prune: the final model's test loss is %g: its weights hold NaN or "
                            "infinite values (written by the method, or a diverged fine-tuning)\n",
                    res->test_loss);
            rc = PB_ENUM;
        }
    } else {
        fprintf(stderr, "prunebench prune: %s\n", err);
    }
    free(res);
    return rc == PB_OK ? 0 : rc == PB_EUSAGE ? 2 : 1;
}
