#include "pb_plugin.h"

#include <dirent.h>
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <limits.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/pb_check.h"
#include "engine/pb_util.h"

static const char *const kind_names[] = {
    [PB_KIND_UNSTRUCTURED] = "unstructured", [PB_KIND_SEMISTRUCTURED] = "semi-structured",
    [PB_KIND_STRUCTURED] = "structured",     [PB_KIND_POSTTRAIN] = "post-training",
    [PB_KIND_DATA] = "data",                 [PB_KIND_SHARING] = "sharing",
    [PB_KIND_DELTA] = "delta"};
static const char *const when_names[] = {[PB_WHEN_TRAINED] = "trained", [PB_WHEN_INIT] = "init",
                                         [PB_WHEN_TRAINING] = "training", [PB_WHEN_RUN] = "run"};

const char *pb_plugin_kind_name(int k)
{
    return k >= 0 && k < (int)(sizeof kind_names / sizeof *kind_names) ? kind_names[k] : "?";
}

const char *pb_plugin_when_name(int w)
{
    return w >= 0 && w < (int)(sizeof when_names / sizeof *when_names) ? when_names[w] : "?";
}

/* The smallest descriptor a plugin of ABI 1.0 can declare: up to and including attach. */
#define MIN_DESC_SIZE (offsetof(pb_plugin, attach) + sizeof(((pb_plugin *)0)->attach))

/* The descriptor's name is the file's name without ".so", so that finding a
 * method by name finds that plugin. */
static int name_matches_file(const char *name, const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t n = strlen(base);
    if (n > 3 && !strcmp(base + n - 3, ".so"))
        n -= 3;
    size_t k = strlen(name);
    return n == k && !strncmp(base, name, k);
}

/* dlopen() maps a shared object's segments from its program headers; a file
 * cut short maps pages past its end, and touching them kills the process with
 * SIGBUS. So before dlopen the file's ELF header, program headers and section
 * headers are checked against its size: a truncated or damaged plugin is
 * refused with a message instead. */
#if UINTPTR_MAX > 0xffffffffu
typedef Elf64_Ehdr elf_ehdr;
typedef Elf64_Phdr elf_phdr;
#define ELF_NATIVE_CLASS ELFCLASS64
#else
typedef Elf32_Ehdr elf_ehdr;
typedef Elf32_Phdr elf_phdr;
#define ELF_NATIVE_CLASS ELFCLASS32
#endif

static int check_elf(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return pb_err(err, errlen, PB_EPLUGIN, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    elf_ehdr eh;
    const char *why = NULL;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode))
        why = "not a regular file";
    else if (fread(&eh, 1, sizeof eh, f) != sizeof eh || memcmp(eh.e_ident, ELFMAG, SELFMAG))
        why = "not an ELF file";
    else if (eh.e_ident[EI_CLASS] != ELF_NATIVE_CLASS)
        why = "an ELF file of another word size";
    else if (eh.e_type != ET_DYN)
        why = "not a shared object";
    else if (eh.e_phentsize != sizeof(elf_phdr) || eh.e_phnum == 0 ||
             (unsigned long long)eh.e_phoff + (unsigned long long)eh.e_phnum * sizeof(elf_phdr) >
                 (unsigned long long)st.st_size)
        why = "its program headers lie past its end: truncated";
    else if (eh.e_shoff && (unsigned long long)eh.e_shoff + (unsigned long long)eh.e_shnum * eh.e_shentsize >
                               (unsigned long long)st.st_size)
        why = "its section headers lie past its end: truncated";
    for (int i = 0; !why && i < eh.e_phnum; i++) {
        elf_phdr ph;
        if (fseek(f, (long)(eh.e_phoff + (unsigned long long)i * sizeof ph), SEEK_SET) != 0 ||
            fread(&ph, 1, sizeof ph, f) != sizeof ph)
            why = "its program headers cannot be read";
        else if (ph.p_type == PT_LOAD &&
                 (unsigned long long)ph.p_offset + (unsigned long long)ph.p_filesz > (unsigned long long)st.st_size)
            why = "a loadable segment lies past its end: truncated";
    }
    fclose(f);
    if (why)
        return pb_err(err, errlen, PB_EPLUGIN, "%s: not a loadable plugin (%s); rebuild or reinstall it", path, why);
    return PB_OK;
}

int pb_plugin_open(const char *path, pb_loaded *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    int erc = check_elf(path, err, errlen);
    if (erc != PB_OK)
        return erc;
    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!dl)
        return pb_err(err, errlen, PB_EPLUGIN, "%s: cannot load: %s", path, dlerror());
    pb_plugin_entry_fn entry;
    *(void **)&entry = dlsym(dl, PB_PLUGIN_ENTRY);
    const pb_plugin *d = entry ? entry() : NULL;
    int rc = PB_OK;
    if (!entry)
        rc = pb_err(err, errlen, PB_EPLUGIN, "%s: no entry symbol '%s' (not a prunebench plugin)", path,
                    PB_PLUGIN_ENTRY);
    else if (!d)
        rc = pb_err(err, errlen, PB_EPLUGIN, "%s: %s() returned no descriptor", path, PB_PLUGIN_ENTRY);
    else if (d->abi_major != PB_ABI_MAJOR)
        rc = pb_err(err, errlen, PB_EPLUGIN,
                    "%s: plugin ABI %d.%d, host ABI %d.%d: rebuild the plugin against this "
                    "prunebench's <prunebench/plugin.h>",
                    path, d->abi_major, d->abi_minor, PB_ABI_MAJOR, PB_ABI_MINOR);
    else if (d->size < MIN_DESC_SIZE)
        rc = pb_err(err, errlen, PB_EPLUGIN,
                    "%s: descriptor size %zu is smaller than ABI %d needs (%zu); plugin ABI %d.%d, host ABI %d.%d",
                    path, d->size, PB_ABI_MAJOR, (size_t)MIN_DESC_SIZE, d->abi_major, d->abi_minor,
                    PB_ABI_MAJOR, PB_ABI_MINOR);
    if (rc == PB_OK) {
        memcpy(&out->desc, d, d->size < sizeof out->desc ? d->size : sizeof out->desc);
        const pb_plugin *c = &out->desc;
        if (!c->name || !c->name[0] || !c->description)
            rc = pb_err(err, errlen, PB_EPLUGIN, "%s: the descriptor has no name or description", path);
        else if ((int)c->when < PB_WHEN_TRAINED || c->when > PB_WHEN_RUN)
            rc = pb_err(err, errlen, PB_EPLUGIN, "%s: plugin %s: unknown 'when' %d", path, c->name, c->when);
        else if ((c->when == PB_WHEN_TRAINED || c->when == PB_WHEN_INIT) && !c->prune)
            rc = pb_err(err, errlen, PB_EPLUGIN, "%s: plugin %s acts on a %s model but has no prune hook",
                        path, c->name, pb_plugin_when_name(c->when));
        else if (c->when == PB_WHEN_RUN && !c->run)
            rc = pb_err(err, errlen, PB_EPLUGIN, "%s: plugin %s has when=run but no run hook", path, c->name);
        else if (!name_matches_file(c->name, path))
            rc = pb_err(err, errlen, PB_EPLUGIN,
                        "%s: the plugin calls itself '%s'; its file must be named %s.so (a method is found "
                        "by its file name)", path, c->name, c->name);
        else if (c->needs & ~PB_NEEDS_KNOWN)
            rc = pb_err(err, errlen, PB_EPLUGIN,
                        "%s: plugin %s needs capabilities 0x%x that this host (ABI %d.%d) does not have",
                        path, c->name, c->needs & ~PB_NEEDS_KNOWN, PB_ABI_MAJOR, PB_ABI_MINOR);
        else if ((c->needs & PB_NEEDS_SELECT) && !c->select)
            rc = pb_err(err, errlen, PB_EPLUGIN, "%s: plugin %s needs data selection but has no select hook",
                        path, c->name);
        else if ((c->needs & PB_NEEDS_SHARING) && !c->attach)
            rc = pb_err(err, errlen, PB_EPLUGIN, "%s: plugin %s needs parameter sharing but has no attach hook",
                        path, c->name);
        else if ((c->needs & PB_NEEDS_REFERENCE) && (!c->reference || !c->reference[0]))
            rc = pb_err(err, errlen, PB_EPLUGIN, "%s: plugin %s needs a kept model but names none (reference)",
                        path, c->name);
        else
            for (const pb_param_spec *s = c->params; s && s->name && rc == PB_OK; s++)
                if (s->type > PB_PT_STRING || (s->type == PB_PT_STRING && c->abi_minor < 1) ||
                    (s->type == PB_PT_CHOICE && !s->choices) || s->lo > s->hi)
                    rc = pb_err(err, errlen, PB_EPLUGIN, "%s: plugin %s: malformed parameter '%s'", path,
                                c->name, s->name);
    }
    if (rc != PB_OK) {
        dlclose(dl);
        memset(out, 0, sizeof *out);
        return rc;
    }
    out->dl = dl;
    snprintf(out->path, sizeof out->path, "%s", path);
    return PB_OK;
}

void pb_plugin_close(pb_loaded *p)
{
    if (p->dl)
        dlclose(p->dl);
    memset(p, 0, sizeof *p);
}

/* The build tree as the kernel names it (symbolic links resolved), or NULL;
 * the caller frees it. */
static char *build_top(void)
{
    char top[4096];
    snprintf(top, sizeof top, "%s", PB_BUILD_PLUGINDIR);
    char *tail = strstr(top, "/plugins/.libs");
    if (!tail)
        return NULL;
    *tail = '\0';
    return realpath(top, NULL);
}

/* the length of the build tree's name when path lies inside it, else 0 */
static size_t inside_build(const char *path)
{
    char *real = build_top();
    const size_t len = real ? strlen(real) : 0;
    const int inside = real && !strncmp(path, real, len) && path[len] == '/';
    free(real);
    return inside ? len : 0;
}

int pb_plugin_from_build_tree(void)
{
    static int known, inside;
    if (known)
        return inside;
    known = 1;
    char exe[4096];
    ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (k > 0) {
        exe[k] = '\0';
        inside = inside_build(exe) > 0;
    }
    return inside;
}

const char *pb_plugin_shown_path(const char *path)
{
    const size_t len = inside_build(path);
    return len ? path + len + 1 : path;
}

/* The directories searched, in order, as one colon-separated string. */
static void search_path(const char *extra, char *buf, size_t n)
{
    const char *env = getenv("PRUNEBENCH_PLUGIN_PATH");
    const int build = pb_plugin_from_build_tree();
    snprintf(buf, n, "%s%s%s%s%s%s%s", extra ? extra : "", extra ? ":" : "", env ? env : "", env ? ":" : "",
             build ? PB_BUILD_PLUGINDIR : "", build ? ":" : "", PB_PLUGINDIR);
}

static int is_file(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static int collect(const char *extra, char names[][64], int max)
{
    char sp[8192];
    int n = 0;
    search_path(extra, sp, sizeof sp);
    for (char *save, *dir = strtok_r(sp, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
        DIR *d = opendir(dir);
        if (!d)
            continue;
        struct dirent *e;
        while ((e = readdir(d)) && n < max) {
            size_t len = strlen(e->d_name);
            if (len < 4 || len > 60 || strcmp(e->d_name + len - 3, ".so") || e->d_name[0] == '.')
                continue;
            char nm[64];
            snprintf(nm, sizeof nm, "%.*s", (int)(len - 3), e->d_name);
            int dup = 0;
            for (int i = 0; i < n && !dup; i++)
                dup = !strcmp(names[i], nm);
            if (!dup)
                snprintf(names[n++], 64, "%s", nm);
        }
        closedir(d);
    }
    return n;
}

static int cmp_name(const void *a, const void *b) { return strcmp(a, b); }

int pb_plugin_locate(const char *name, const char *extra_dir, char *path, size_t pathlen, char *err,
                     size_t errlen)
{
    size_t len = strlen(name);
    if (strchr(name, '/') || (len > 3 && !strcmp(name + len - 3, ".so"))) {
        snprintf(path, pathlen, "%s", name);
        return PB_OK;
    }
    char sp[8192];
    search_path(extra_dir, sp, sizeof sp);
    for (char *save, *dir = strtok_r(sp, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
        snprintf(path, pathlen, "%s/%s.so", dir, name);
        if (is_file(path))
            return PB_OK;
    }
    char names[128][64], list[2048] = "";
    int n = collect(extra_dir, names, 128);
    qsort(names, (size_t)n, sizeof names[0], cmp_name);
    size_t used = 0;
    for (int i = 0; i < n && used < sizeof list; i++)
        used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "", names[i]);
    search_path(extra_dir, sp, sizeof sp);
    path[0] = '\0';
    const char *cand[129];
    for (int i = 0; i < n; i++)
        cand[i] = names[i];
    cand[n] = NULL;
    const char *near = pb_check_suggest(name, cand);
    char hint[96] = "";
    if (near)
        snprintf(hint, sizeof hint, ": did you mean '%s'?", near);
    return pb_err(err, errlen, PB_EUSAGE, "unknown method '%s'%s (valid: %s; searched %s)", name, hint,
                  n ? list : "none found", sp);
}

int pb_plugin_find(const char *name, const char *extra_dir, pb_loaded *out, char *err, size_t errlen)
{
    char path[4096];
    int rc = pb_plugin_locate(name, extra_dir, path, sizeof path, err, errlen);
    if (rc != PB_OK) {
        memset(out, 0, sizeof *out);
        return rc;
    }
    return pb_plugin_open(path, out, err, errlen);
}

/* Same directory: both resolved (symbolic links, "..") and compared. */
static int same_dir(const char *dir, const char *resolved_file)
{
    char d[PATH_MAX];
    if (!realpath(dir, d))
        return 0;
    size_t n = strlen(d);
    return !strncmp(resolved_file, d, n) && resolved_file[n] == '/' && !strchr(resolved_file + n + 1, '/');
}

int pb_plugin_provenance(const char *path, pb_provenance *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!realpath(path, out->path))
        return pb_err(err, errlen, PB_EIO, "%s: cannot resolve: %s", path, strerror(errno));
    FILE *f = fopen(out->path, "rb");
    if (!f)
        return pb_err(err, errlen, PB_EIO, "%s: cannot read: %s", out->path, strerror(errno));
    uint64_t h = PB_HASH_INIT;
    unsigned char buf[65536];
    size_t k;
    while ((k = fread(buf, 1, sizeof buf, f)) > 0)
        h = pb_hash64(buf, k, h);
    int bad = ferror(f);
    fclose(f);
    if (bad)
        return pb_err(err, errlen, PB_EIO, "%s: read error", out->path);
    out->hash = h;
    out->builtin = same_dir(PB_BUILD_PLUGINDIR, out->path) || same_dir(PB_PLUGINDIR, out->path);
    return PB_OK;
}

int pb_plugin_list(const char *extra_dir, pb_loaded **out, int *nout, char *err, size_t errlen)
{
    char names[128][64];
    int n = collect(extra_dir, names, 128);
    qsort(names, (size_t)n, sizeof names[0], cmp_name);
    pb_loaded *v = calloc((size_t)(n ? n : 1), sizeof *v);
    if (!v)
        return pb_err(err, errlen, PB_ENOMEM, "out of memory");
    int k = 0;
    for (int i = 0; i < n; i++) {
        char e[PB_ERRLEN];
        if (pb_plugin_find(names[i], extra_dir, &v[k], e, sizeof e) == PB_OK)
            k++;
        else
            fprintf(stderr, "prunebench: skipping %s\n", e);
    }
    *out = v;
    *nout = k;
    return PB_OK;
}

int pb_plugin_nparams(const pb_plugin *d)
{
    int n = 0;
    while (d->params && d->params[n].name)
        n++;
    return n;
}

static int choice_index(const char *choices, const char *v)
{
    int i = 0;
    size_t vl = strlen(v);
    for (const char *p = choices; *p; i++) {
        const char *bar = strchr(p, '|');
        size_t l = bar ? (size_t)(bar - p) : strlen(p);
        if (l == vl && !strncmp(p, v, l))
            return i;
        if (!bar)
            break;
        p = bar + 1;
    }
    return -1;
}

int pb_plugin_parse_args(const pb_plugin *d, const char *const *args, int nargs, double *values,
                         char *err, size_t errlen)
{
    int np = pb_plugin_nparams(d);
    for (int k = 0; k < np; k++)
        values[k] = d->params[k].def;
    for (int a = 0; a < nargs; a++) {
        const char *eq = strchr(args[a], '=');
        if (!eq)
            return pb_err(err, errlen, PB_EUSAGE, "method %s: parameter '%s' is not name=value", d->name, args[a]);
        size_t kl = (size_t)(eq - args[a]);
        const char *v = eq + 1;
        int k;
        for (k = 0; k < np; k++)
            if (strlen(d->params[k].name) == kl && !strncmp(d->params[k].name, args[a], kl))
                break;
        if (k == np) {
            char list[1024] = "";
            size_t used = 0;
            for (int i = 0; i < np && used < sizeof list; i++)
                used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "", d->params[i].name);
            return pb_err(err, errlen, PB_EUSAGE, "method %s has no parameter '%.*s' (valid: %s)", d->name,
                          (int)kl, args[a], np ? list : "none");
        }
        const pb_param_spec *s = &d->params[k];
        double x;
        char *end;
        switch (s->type) {
        case PB_PT_STRING:
            if (strlen(v) > 1000)
                return pb_err(err, errlen, PB_EUSAGE, "method %s: %s is longer than 1000 characters", d->name,
                              s->name);
            x = 0; /* the text itself: pb_plugin_arg_string */
            break;
        case PB_PT_CHOICE:
            x = choice_index(s->choices, v);
            if (x < 0)
                return pb_err(err, errlen, PB_EUSAGE, "method %s: %s='%s' is not one of %s", d->name, s->name, v,
                              s->choices);
            break;
        case PB_PT_BOOL:
            if (!strcasecmp(v, "1") || !strcasecmp(v, "true") || !strcasecmp(v, "yes"))
                x = 1;
            else if (!strcasecmp(v, "0") || !strcasecmp(v, "false") || !strcasecmp(v, "no"))
                x = 0;
            else
                return pb_err(err, errlen, PB_EUSAGE, "method %s: %s='%s' is not a boolean (true/false)", d->name,
                              s->name, v);
            break;
        default:
            errno = 0;
            x = strtod(v, &end);
            if (errno || end == v || *end || !isfinite(x))
                return pb_err(err, errlen, PB_EUSAGE, "method %s: %s='%s' is not a number", d->name, s->name, v);
            if (s->type == PB_PT_INT && x != floor(x))
                return pb_err(err, errlen, PB_EUSAGE, "method %s: %s='%s' is not an integer", d->name, s->name, v);
            if (x < s->lo || x > s->hi)
                return pb_err(err, errlen, PB_EUSAGE, "method %s: %s=%s is out of range [%g, %g]", d->name,
                              s->name, v, s->lo, s->hi);
        }
        values[k] = x;
    }
    return PB_OK;
}

const char *pb_plugin_arg_string(const pb_plugin *d, const char *const *args, int nargs, int k)
{
    const pb_param_spec *s = &d->params[k];
    size_t kl = strlen(s->name);
    const char *v = s->choices ? s->choices : "";
    for (int a = 0; a < nargs; a++) /* the last one given wins, as in parse_args */
        if (!strncmp(args[a], s->name, kl) && args[a][kl] == '=')
            v = args[a] + kl + 1;
    return v;
}

static const char *const type_names[] = {[PB_PT_REAL] = "real", [PB_PT_INT] = "int",
                                         [PB_PT_BOOL] = "bool", [PB_PT_CHOICE] = "choice",
                                         [PB_PT_STRING] = "string"};

void pb_plugin_describe(const pb_loaded *p, void *file)
{
    FILE *f = file;
    const pb_plugin *d = &p->desc;
    fprintf(f, "%s: %s\n  kind: %s; prunes: %s; ABI %d.%d; file: %s\n", d->name, d->description,
            pb_plugin_kind_name(d->kind), pb_plugin_when_name(d->when), d->abi_major, d->abi_minor, p->path);
    int np = pb_plugin_nparams(d);
    if (!np) {
        fprintf(f, "  no parameters\n");
        return;
    }
    fprintf(f, "  parameters:\n");
    for (int k = 0; k < np; k++) {
        const pb_param_spec *s = &d->params[k];
        char range[160];
        if (s->type == PB_PT_CHOICE) {
            int i = 0;
            const char *q = s->choices;
            for (; i < (int)s->def && strchr(q, '|'); i++)
                q = strchr(q, '|') + 1;
            const char *bar = strchr(q, '|');
            snprintf(range, sizeof range, "default %.*s, one of %s", bar ? (int)(bar - q) : (int)strlen(q), q,
                     s->choices);
        } else if (s->type == PB_PT_STRING)
            snprintf(range, sizeof range, "default '%s'", s->choices ? s->choices : "");
        else if (s->type == PB_PT_BOOL)
            snprintf(range, sizeof range, "default %s", s->def != 0 ? "true" : "false");
        else
            snprintf(range, sizeof range, "default %g, range [%g, %g]", s->def, s->lo, s->hi);
        fprintf(f, "    %-16s %-6s %s\n      %s\n", s->name, type_names[s->type], range, s->help ? s->help : "");
    }
}
