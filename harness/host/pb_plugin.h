/* pb_plugin: finding, loading, validating and describing method plugins. */
#ifndef PB_PLUGIN_H
#define PB_PLUGIN_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "prunebench/plugin.h"

typedef struct pb_loaded {
    void *dl;
    pb_plugin desc;        /* the plugin's descriptor, zero-filled past its declared size */
    char path[1024];
} pb_loaded;

/* Loads one shared object and validates its descriptor: entry symbol, ABI
 * major, size, name (it must match the file's), required hooks and
 * declared needs. A refused plugin is dlclose()d; the
 * error names the file, the plugin's ABI and the host's. */
int pb_plugin_open(const char *path, pb_loaded *out, char *err, size_t errlen);

/* Finds a method by name, or by an explicit path to a .so. Search order:
 * extra_dir, $PRUNEBENCH_PLUGIN_PATH (colon-separated), the build tree (only
 * for a program that runs from it), the installed plugin directory. Unknown
 * names list the valid ones. */
int pb_plugin_find(const char *name, const char *extra_dir, pb_loaded *out, char *err, size_t errlen);

/* The file pb_plugin_find would load for name, without loading it. */
int pb_plugin_locate(const char *name, const char *extra_dir, char *path, size_t pathlen, char *err,
                     size_t errlen);

/* Where a plugin's code came from: its resolved path, the 64-bit FNV-1a hash
 * of its file's bytes (not a cryptographic hash: it tells builds apart, it
 * does not authenticate them), and whether it is one of prunebench's own
 * plugins (a file in the build tree's or the installed plugin directory). */
typedef struct pb_provenance {
    char path[PATH_MAX];
    uint64_t hash;
    int builtin;
} pb_provenance;
int pb_plugin_provenance(const char *path, pb_provenance *out, char *err, size_t errlen);

/* All plugins on the search path (first of each name wins), sorted by name.
 * *out is malloc'd; close each with pb_plugin_close, then free(*out). */
int pb_plugin_list(const char *extra_dir, pb_loaded **out, int *n, char *err, size_t errlen);

void pb_plugin_close(pb_loaded *p);

/* 1 when this program runs from its build tree (then the build's plugins and
 * Lua prelude come before the installed ones), 0 for an installed program. */
int pb_plugin_from_build_tree(void);
/* path as results name it: relative to the build tree for a file inside it
 * (which directory the tree was built in is not the experiment's business),
 * else unchanged */
const char *pb_plugin_shown_path(const char *path);

/* Parses "name=value" strings against the plugin's parameter table into
 * values[] (one per table entry, defaults first). Unknown names, values out of
 * range and bad choices are errors that list what is valid. */
int pb_plugin_parse_args(const pb_plugin *d, const char *const *args, int nargs, double *values,
                         char *err, size_t errlen);
int pb_plugin_nparams(const pb_plugin *d);
/* The text of string parameter k: the last "name=text" in args, else its default. */
const char *pb_plugin_arg_string(const pb_plugin *d, const char *const *args, int nargs, int k);

const char *pb_plugin_kind_name(int kind);
const char *pb_plugin_when_name(int when);

/* Prints a plugin's parameters (name, type, default, range, help). */
void pb_plugin_describe(const pb_loaded *p, void *file);

#endif
