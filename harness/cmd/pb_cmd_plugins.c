/* `prunebench plugins`. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "pb_cli.h"
#include "pb_cmd.h"
#include "engine/pb_util.h"
#include "host/pb_plugin.h"

int pb_cmd_plugins(int argc, char **argv)
{
    static const struct option longopts[] = {{"plugin-path", required_argument, 0, 1},
                                             {"help", no_argument, 0, 'h'},
                                             {0, 0, 0, 0}};
    const char *extra = NULL;
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if (opt == 'h') {
            printf("usage: prunebench plugins [NAME] [--plugin-path DIR]\n\n"
                   "Lists the method plugins found (name, kind, when it prunes, description), or\n"
                   "shows one plugin's parameters with types, defaults and ranges.\n"
                   "Search order: --plugin-path, $PRUNEBENCH_PLUGIN_PATH, the build tree (for a\n"
                   "program run from it), the installed plugin directory (" PB_PLUGINDIR ").\n");
            return 0;
        }
        if (opt == 1)
            extra = optarg;
        else
            return pb_cli_bad_option("plugins", argv, "h", longopts);
    }
    char err[PB_ERRLEN];
    if (optind < argc) {
        pb_loaded p;
        int rc = pb_plugin_find(argv[optind], extra, &p, err, sizeof err);
        if (rc != PB_OK) {
            fprintf(stderr, "prunebench plugins: %s\n", err);
            return rc == PB_EUSAGE ? 2 : 1;
        }
        pb_plugin_describe(&p, stdout);
        pb_plugin_close(&p);
        return 0;
    }
    pb_loaded *v;
    int n;
    if (pb_plugin_list(extra, &v, &n, err, sizeof err) != PB_OK) {
        fprintf(stderr, "prunebench plugins: %s\n", err);
        return 1;
    }
    for (int i = 0; i < n; i++) {
        printf("%-18s %-15s %-9s %s\n", v[i].desc.name, pb_plugin_kind_name(v[i].desc.kind),
               pb_plugin_when_name(v[i].desc.when), v[i].desc.description);
        if (v[i].desc.kind == PB_KIND_DATA) {
            /* data methods go on the data axis of a script: their parameters at a glance */
            const pb_param_spec *ps = v[i].desc.params;
            printf("%-18s   data axis; parameters:", "");
            for (int k = 0; ps && ps[k].name; k++)
                printf(" %s=%g", ps[k].name, ps[k].def);
            printf("%s\n", ps && ps[0].name ? "" : " none");
        }
        pb_plugin_close(&v[i]);
    }
    if (n == 0)
        fprintf(stderr, "prunebench plugins: no plugins found\n");
    free(v);
    return 0;
}
