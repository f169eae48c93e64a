/* pb_cmd: the subcommand entry points, one per `prunebench COMMAND`. Each takes
 * argv from the command's name on and returns the exit status (0 ok, 1 failed,
 * 2 bad arguments). */
#ifndef PB_CMD_H
#define PB_CMD_H

typedef int (*pb_cmd_fn)(int argc, char **argv);

int pb_cmd_train(int argc, char **argv);    /* pb_cmd_train.c */
int pb_cmd_eval(int argc, char **argv);     /* pb_cmd_train.c */
int pb_cmd_prune(int argc, char **argv);    /* pb_cmd_prune.c */
int pb_cmd_plugins(int argc, char **argv);  /* pb_cmd_plugins.c */
int pb_cmd_run(int argc, char **argv);      /* pb_cmd_run.c */
int pb_cmd_plot(int argc, char **argv);     /* pb_cmd_run.c */
int pb_cmd_report(int argc, char **argv);   /* pb_cmd_report.c */
int pb_cmd_slurm(int argc, char **argv);    /* pb_cmd_slurm.c */

#endif
