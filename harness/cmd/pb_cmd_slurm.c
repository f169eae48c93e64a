/* `prunebench slurm`: an experiment as a Slurm job array of shards and a
 * dependent job that merges their results and draws the charts. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pb_cli.h"
#include "pb_cmd.h"
#include "exp/pb_cell.h"
#include "exp/pb_cost.h"
#include "exp/pb_lua.h"
#include "exp/pb_shard.h"
#include "exp/pb_store.h"

/* The time limit is the cost model's estimate of the largest shard times this,
 * plus PB_SLURM_MARGIN_S: the estimate is measured on the submitting host, and a
 * task that hits its limit is killed (its finished cells are kept). */
#define PB_SLURM_FACTOR 2.0
#define PB_SLURM_MARGIN_S 600
#define PB_SLURM_DEFAULT_ARRAY 16

static void slurm_usage(FILE *f)
{
    fprintf(f,
            "usage: prunebench slurm SCRIPT.lua [--array N] [--partition P] [--time T] [--cpus-per-task C]\n"
            "                        [--out DIR] [--submit] [--plugin-path DIR] [--data-dir DIR]\n"
            "                        [--sandbox]\n\n"
            "Writes DIR/slurm-NAME/array.sbatch, a Slurm job array of N tasks whose task I runs\n"
            "`prunebench run SCRIPT.lua --shard I/N` with C workers, and charts.sbatch, which\n"
            "runs `prunebench run SCRIPT.lua --merge-only` after the array (afterany): it merges\n"
            "the shards' results and draws the charts. DIR must be on a file system every node sees.\n\n"
            "options:\n"
            "  -a, --array N          tasks (shards) of the array (default: the cells, at most %d)\n"
            "  -p, --partition P      Slurm partition (default: the cluster's)\n"
            "      --time T           time limit per task, in any Slurm form (default: the dry-run cost\n"
            "                         model's estimate for the largest shard x %.0f + %d min)\n"
            "  -c, --cpus-per-task C  CPUs of each task, one worker each (default 1)\n"
            "  -o, --out DIR          results directory (default results)\n"
            "      --submit           submit both jobs with sbatch and print their job ids\n"
            "      --plugin-path DIR  passed on to prunebench run\n"
            "      --data-dir DIR     passed on to prunebench run\n"
            "      --sandbox          read the script under prunebench run's sandbox, and pass it on\n"
            "  -h, --help             this help\n\n"
            "A task that failed or was killed is run again with `sbatch --array=I DIR/slurm-NAME/array.sbatch`:\n"
            "it resumes, keeping every cell its earlier run finished.\n",
            PB_SLURM_DEFAULT_ARRAY, PB_SLURM_FACTOR, PB_SLURM_MARGIN_S / 60);
}

/* A word for a POSIX shell script: single-quoted. */
static void sh_quote(FILE *f, const char *s)
{
    fputc('\'', f);
    for (; *s; s++)
        if (*s == '\'')
            fputs("'\\''", f);
        else
            fputc(*s, f);
    fputc('\'', f);
}

/* D-HH:MM:SS or HH:MM:SS, rounded up to the second, or to the minute for a limit. */
static void fmt_slurm_time(char *buf, size_t n, double secs, int whole_minutes)
{
    long t = whole_minutes ? (long)ceil(secs / 60) * 60 : (long)ceil(secs);
    if (t >= 86400)
        snprintf(buf, n, "%ld-%02ld:%02ld:%02ld", t / 86400, t / 3600 % 24, t / 60 % 60, t % 60);
    else
        snprintf(buf, n, "%02ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
}

/* Runs argv, its standard output in out (NUL-terminated, trailing newline
 * removed); returns its exit status, -1 if it could not run. */
static int capture(char *const argv[], char *out, size_t n)
{
    int pfd[2];
    out[0] = '\0';
    if (pipe(pfd) != 0)
        return -1;
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        close(pfd[0]);
        close(pfd[1]);
        return -1;
    }
    if (pid == 0) {
        dup2(pfd[1], 1);
        close(pfd[0]);
        close(pfd[1]);
        execvp(argv[0], argv);
        _exit(127);
    }
    close(pfd[1]);
    size_t len = 0;
    ssize_t k;
    while (len + 1 < n && (k = read(pfd[0], out + len, n - 1 - len)) > 0)
        len += (size_t)k;
    out[len] = '\0';
    close(pfd[0]);
    int status;
    if (waitpid(pid, &status, 0) < 0)
        return -1;
    out[strcspn(out, "\n")] = '\0';
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

typedef struct slurm_opts {
    const char *script, *out, *partition, *time, *plugin_path, *data_dir;
    int array, cpus, submit, sandbox;
} slurm_opts;

/* The header lines both scripts share. */
static void sbatch_head(FILE *f, const slurm_opts *so, const char *name, const char *dir, const char *cwd,
                        const char *log)
{
    fprintf(f, "#!/bin/sh\n#SBATCH --job-name=%s\n", name);
    if (so->partition)
        fprintf(f, "#SBATCH --partition=%s\n", so->partition);
    fprintf(f, "#SBATCH --output=%s/%s\n#SBATCH --chdir=%s\n", dir, log, cwd);
}

static void run_args(FILE *f, const slurm_opts *so, const char *exe, const char *script, const char *out)
{
    fputs("exec ", f);
    sh_quote(f, exe);
    fputs(" run ", f);
    sh_quote(f, script);
    fputs(" --out ", f);
    sh_quote(f, out);
    if (so->plugin_path) {
        fputs(" --plugin-path ", f);
        sh_quote(f, so->plugin_path);
    }
    if (so->data_dir) {
        fputs(" --data-dir ", f);
        sh_quote(f, so->data_dir);
    }
    if (so->sandbox)
        fputs(" --sandbox", f);
}

static int write_scripts(const slurm_opts *so, const char *dir, const char *stem, const char *time, double est,
                         char *array_path, char *charts_path, size_t n, char *err, size_t errlen)
{
    char exe[PATH_MAX], script[PATH_MAX], out[PATH_MAX], cwd[PATH_MAX], name[300];
    if (!realpath("/proc/self/exe", exe) || !realpath(so->script, script) || !realpath(so->out, out) ||
        !getcwd(cwd, sizeof cwd))
        return pb_err(err, errlen, PB_EIO, "cannot resolve the paths of prunebench, %s or %s: %s", so->script,
                      so->out, strerror(errno));
    snprintf(name, sizeof name, "pb-%s", stem);
    snprintf(array_path, n, "%s/array.sbatch", dir);
    snprintf(charts_path, n, "%s/charts.sbatch", dir);
    FILE *f = fopen(array_path, "w");
    if (!f)
        return pb_err(err, errlen, PB_EIO, "cannot write %s: %s", array_path, strerror(errno));
    sbatch_head(f, so, name, dir, cwd, "%A_%a.out");
    char d[64];
    fmt_slurm_time(d, sizeof d, est, 0);
    fprintf(f,
            "#SBATCH --array=0-%d\n#SBATCH --cpus-per-task=%d\n#SBATCH --time=%s\n"
            "# Written by prunebench slurm: task I runs shard I of %d of the script (the largest\n"
            "# shard's estimated time: %s). Run task I again: sbatch --array=I %s\n",
            so->array - 1, so->cpus, time, so->array, d, array_path);
    run_args(f, so, exe, script, out);
    fprintf(f, " --shard \"$SLURM_ARRAY_TASK_ID/%d\" -j \"${SLURM_CPUS_PER_TASK:-%d}\" -t 1\n", so->array, so->cpus);
    int ok = fclose(f) == 0;
    if (!ok)
        return pb_err(err, errlen, PB_EIO, "cannot write %s", array_path);
    if (!(f = fopen(charts_path, "w")))
        return pb_err(err, errlen, PB_EIO, "cannot write %s: %s", charts_path, strerror(errno));
    snprintf(name, sizeof name, "pb-%s-charts", stem);
    sbatch_head(f, so, name, dir, cwd, "charts_%j.out");
    fprintf(f, "#SBATCH --cpus-per-task=1\n#SBATCH --time=00:30:00\n"
               "# Written by prunebench slurm: after the array, the merged CSV files and the charts.\n");
    run_args(f, so, exe, script, out);
    fputs(" --merge-only\n", f);
    if (fclose(f) != 0)
        return pb_err(err, errlen, PB_EIO, "cannot write %s", charts_path);
    return PB_OK;
}

static int submit(const char *array_path, const char *charts_path, char *err, size_t errlen)
{
    char id[256], dep[300], out[256];
    char *a[] = {"sbatch", "--parsable", (char *)array_path, NULL};
    int st = capture(a, id, sizeof id);
    if (st < 0 || st == 127)
        return pb_err(err, errlen, PB_EIO, "cannot run sbatch (not in PATH: is this a Slurm submit host?); "
                      "the scripts are written: %s, %s", array_path, charts_path);
    if (st != 0 || !id[0])
        return pb_err(err, errlen, PB_EIO, "sbatch refused %s (exit status %d, its message above)", array_path, st);
    id[strcspn(id, ";")] = '\0'; /* "JOBID;CLUSTER" on a federation */
    snprintf(dep, sizeof dep, "--dependency=afterany:%s", id);
    char *c[] = {"sbatch", "--parsable", dep, (char *)charts_path, NULL};
    st = capture(c, out, sizeof out);
    if (st != 0 || !out[0])
        return pb_err(err, errlen, PB_EIO, "sbatch refused %s (the array is job %s)", charts_path, id);
    out[strcspn(out, ";")] = '\0';
    printf("submitted: array job %s, chart job %s (after the array)\n", id, out);
    return PB_OK;
}

int pb_cmd_slurm(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"array", required_argument, 0, 'a'},      {"partition", required_argument, 0, 'p'},
        {"time", required_argument, 0, 1001},      {"cpus-per-task", required_argument, 0, 'c'},
        {"out", required_argument, 0, 'o'},        {"submit", no_argument, 0, 1002},
        {"plugin-path", required_argument, 0, 1003}, {"data-dir", required_argument, 0, 1004},
        {"sandbox", no_argument, 0, 1005},
        {"help", no_argument, 0, 'h'},             {0, 0, 0, 0}};
    slurm_opts so = {.out = "results", .cpus = 1};
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "a:p:c:o:h", longopts, NULL)) != -1) {
        double num;
        static const pb_range array_range = {.name = "array", .lo = 1, .hi = PB_SHARD_MAX, .integral = 1};
        static const pb_range cpus_range = {.name = "cpus", .lo = 1, .hi = 64, .integral = 1};
        switch (opt) {
        case 'a':
            if (pb_cli_num("slurm", "--array", &array_range, optarg, &num))
                return 2;
            so.array = (int)num;
            break;
        case 'c':
            if (pb_cli_num("slurm", "--cpus-per-task", &cpus_range, optarg, &num))
                return 2;
            so.cpus = (int)num;
            break;
        case 'p': so.partition = optarg; break;
        case 1001:
            if (!*optarg || strspn(optarg, "0123456789:-") != strlen(optarg)) {
                fprintf(stderr, "prunebench slurm: --time: '%s' is not a Slurm time (MINUTES, HH:MM:SS or "
                                "D-HH:MM:SS)\n", optarg);
                return 2;
            }
            so.time = optarg;
            break;
        case 'o': so.out = optarg; break;
        case 1002: so.submit = 1; break;
        case 1003: so.plugin_path = optarg; break;
        case 1004: so.data_dir = optarg; break;
        case 1005: so.sandbox = 1; break;
        case 'h': slurm_usage(stdout); return 0;
        default: return pb_cli_bad_option("slurm", argv, "a:p:c:o:h", longopts);
        }
    }
    if (optind != argc - 1) {
        slurm_usage(stderr);
        return 2;
    }
    if (so.partition && strpbrk(so.partition, " \t\n'\"")) {
        fprintf(stderr, "prunebench slurm: --partition: '%s' is not a partition name\n", so.partition);
        return 2;
    }
    so.script = argv[optind];
    char err[PB_ERRLEN] = "";
    if (access(so.script, R_OK) != 0) {
        fprintf(stderr, "prunebench slurm: cannot read %s: %s\n", so.script, strerror(errno));
        return 2;
    }
    pb_lua *L = NULL;
    pb_experiment *exps = NULL;
    int nexp = 0;
    int rc = pb_lua_open(&L, so.plugin_path, so.data_dir, err, sizeof err);
    if (rc == PB_OK)
        pb_lua_set_sandbox(L, so.sandbox);
    if (rc == PB_OK)
        rc = pb_lua_run(L, so.script, &exps, &nexp, err, sizeof err);
    if (rc != PB_OK) {
        fprintf(stderr, "%s\n", err);
        pb_lua_close(L);
        return rc == PB_EUSAGE ? 2 : 1;
    }
    int ncells = 0;
    for (int e = 0; e < nexp; e++)
        ncells += exps[e].ncells;
    if (!so.array)
        so.array = ncells < PB_SLURM_DEFAULT_ARRAY ? (ncells > 0 ? ncells : 1) : PB_SLURM_DEFAULT_ARRAY;

    /* the largest shard's estimate: a task runs its shard of every experiment of the script */
    double worst = 0;
    int worst_shard = 0;
    for (int i = 0; i < so.array; i++) {
        double c = 0;
        for (int e = 0; e < nexp; e++)
            c += pb_shard_cost(&exps[e], i, so.array);
        if (c > worst) {
            worst = c;
            worst_shard = i;
        }
    }
    double peak = pb_cost_sgemm_gflops(), rate = PB_COST_SGEMM_FRACTION * peak;
    double est = worst / (rate * 1e9 * so.cpus);
    char limit[64];
    if (so.time)
        snprintf(limit, sizeof limit, "%s", so.time);
    else
        fmt_slurm_time(limit, sizeof limit, est * PB_SLURM_FACTOR + PB_SLURM_MARGIN_S, 1);

    const char *base = strrchr(so.script, '/') ? strrchr(so.script, '/') + 1 : so.script;
    char stem[256], dir[PATH_MAX + 300], array_path[PATH_MAX + 400], charts_path[PATH_MAX + 400];
    snprintf(stem, sizeof stem, "%.*s", (int)strcspn(base, "."), base);
    for (char *p = stem; *p; p++)
        if (!(*p == '-' || *p == '_' || (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') ||
              (*p >= 'A' && *p <= 'Z')))
            *p = '_';
    rc = pb_store_mkdirs(so.out, err, sizeof err);
    if (rc == PB_OK) {
        char out[PATH_MAX];
        if (!realpath(so.out, out))
            rc = pb_err(err, sizeof err, PB_EIO, "cannot resolve %s: %s", so.out, strerror(errno));
        else
            snprintf(dir, sizeof dir, "%s/slurm-%s", out, stem);
    }
    if (rc == PB_OK)
        rc = pb_store_mkdirs(dir, err, sizeof err);
    if (rc == PB_OK)
        rc = write_scripts(&so, dir, stem, limit, est, array_path, charts_path, sizeof array_path, err, sizeof err);
    if (rc == PB_OK) {
        char d[64];
        fmt_slurm_time(d, sizeof d, est, 0);
        printf("%d cells in %d experiment%s, %d tasks of %d CPU%s: the largest shard (%d) is %.3f TFLOP, about %s "
               "at %.0f GFLOP/s per worker; time limit %s%s\n",
               ncells, nexp, nexp == 1 ? "" : "s", so.array, so.cpus, so.cpus == 1 ? "" : "s", worst_shard,
               worst / 1e12, d, rate, limit, so.time ? " (--time)" : "");
        printf("  array:  %s\n  charts: %s (after the array)\n", array_path, charts_path);
        if (so.submit)
            rc = submit(array_path, charts_path, err, sizeof err);
        else
            printf("submit: jid=$(sbatch --parsable %s) && sbatch --dependency=afterany:$jid %s\n", array_path,
                   charts_path);
    }
    if (rc != PB_OK)
        fprintf(stderr, "prunebench slurm: %s\n", err);
    pb_cell_free_experiments(exps, nexp);
    pb_lua_close(L);
    return rc == PB_OK ? 0 : rc == PB_EUSAGE ? 2 : 1;
}
