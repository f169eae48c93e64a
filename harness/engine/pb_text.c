/* pb_text: the fortunes corpus as byte-level language-model examples. */
#include "pb_text.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define PATHLEN 4096

static const char *hint = "install the Debian package fortunes (apt-get install fortunes), or pass --data-dir DIR "
                          "to a directory of fortune files";

int pb_text_is(const char *name)
{
    return name && !strncmp(name, "fortunes", 8) && (name[8] == 0 || name[8] == ':');
}

static int is_reg(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int cmp_name(const void *a, const void *b) { return strcmp(a, b); }

int pb_text_topics(const char *dir, char (*names)[32], int max, int *n, char *err, size_t errlen)
{
    if (!dir)
        dir = PB_TEXT_DIR;
    DIR *d = opendir(dir);
    if (!d)
        return pb_err(err, errlen, PB_EIO, "%s: fortunes directory not found; %s", dir, hint);
    struct dirent *e;
    int k = 0;
    char path[PATHLEN];
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (e->d_name[0] == '.' || len >= 32 || strchr(e->d_name, '.'))
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (!is_reg(path))
            continue;
        snprintf(path, sizeof path, "%s/%s.dat", dir, e->d_name);
        if (!is_reg(path))
            continue;
        if (k >= max) {
            closedir(d);
            return pb_err(err, errlen, PB_EIO, "%s: more than %d fortune files", dir, max);
        }
        memcpy(names[k++], e->d_name, len + 1);
    }
    closedir(d);
    if (k == 0)
        return pb_err(err, errlen, PB_EIO, "%s: no fortune files (a file with its .dat index); %s", dir, hint);
    qsort(names, (size_t)k, sizeof names[0], cmp_name);
    *n = k;
    return PB_OK;
}

/* splitmix64 over the topic's bytes and the index: a draw per document that
 * depends on nothing else. */
static uint64_t mix(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

int pb_text_split_of(const char *topic, int index, uint64_t seed)
{
    uint64_t h = mix(seed);
    for (const unsigned char *p = (const unsigned char *)topic; *p; p++)
        h = mix(h ^ *p);
    h = mix(h ^ (uint64_t)(uint32_t)index);
    double u = (double)(h >> 11) / 9007199254740992.0;
    return u < 0.8 ? PB_TEXT_TRAIN : u < 0.9 ? PB_TEXT_VAL : PB_TEXT_TEST;
}

/* Appends the documents of one topic file that fall in `split`, each with
 * its closing "%\n" line, as the file has them. */
static int read_topic(const char *dir, const char *topic, int split, pb_buf *out, int *ndocs, char *err,
                      size_t errlen)
{
    char path[PATHLEN];
    snprintf(path, sizeof path, "%s/%s", dir, topic);
    FILE *f = fopen(path, "rb");
    if (!f)
        return pb_err(err, errlen, PB_EIO, "%s: cannot open the fortune file; %s", path, hint);
    pb_buf all = {0};
    uint8_t chunk[65536];
    size_t got;
    int rc = PB_OK;
    while (rc == PB_OK && (got = fread(chunk, 1, sizeof chunk, f)) > 0)
        rc = pb_buf_add(&all, chunk, got);
    int bad = ferror(f);
    fclose(f);
    if (rc != PB_OK) {
        free(all.p);
        return pb_err(err, errlen, PB_ENOMEM, "out of memory reading %s", path);
    }
    if (bad || all.n == 0) {
        free(all.p);
        return pb_err(err, errlen, PB_EIO, "%s: %s", path, bad ? "read error" : "empty fortune file");
    }
    int index = 0, found = 0;
    size_t start = 0;
    for (size_t i = 0; i <= all.n && rc == PB_OK; i++) {
        /* a document ends at a line "%" or at the end of the file */
        int sep = i + 1 < all.n && (i == 0 || all.p[i - 1] == '\n') && all.p[i] == '%' && all.p[i + 1] == '\n';
        if (!sep && i < all.n)
            continue;
        size_t end = sep ? i + 2 : all.n;
        if (i > start) {
            found++;
            if (pb_text_split_of(topic, index, PB_TEXT_SEED) == split) {
                rc = pb_buf_add(out, all.p + start, i - start);
                if (rc == PB_OK)
                    rc = pb_buf_add(out, "%\n", 2);
            }
            index++;
        }
        if (!sep)
            break;
        start = end;
        i = end - 1;
    }
    free(all.p);
    if (rc != PB_OK)
        return pb_err(err, errlen, PB_ENOMEM, "out of memory reading %s", path);
    if (!found)
        return pb_err(err, errlen, PB_EIO, "%s: no fortune in the file", path);
    *ndocs += found;
    return PB_OK;
}

static void list_topics(char (*names)[32], int n, char *list, size_t len)
{
    size_t k = 0;
    list[0] = 0;
    for (int i = 0; i < n && k + 1 < len; i++)
        k += (size_t)snprintf(list + k, len - k, "%s%s", i ? ", " : "", names[i]);
}

static int parse_and_read(const char *spec, const char *dir, int split, char (*names)[32], int ntopics,
                          pb_dataset *out, char *err, size_t errlen);

int pb_text_load(const char *spec, const char *dir, int split, pb_dataset *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!pb_text_is(spec))
        return pb_err(err, errlen, PB_EUSAGE, "'%s' is not a text data set", spec ? spec : "(null)");
    if (split != PB_TEXT_TRAIN && split != PB_TEXT_VAL && split != PB_TEXT_TEST)
        return pb_err(err, errlen, PB_EUSAGE, "%s: split %d is none of train (0), test (1), val (2)", spec, split);
    if (!dir)
        dir = PB_TEXT_DIR;
    char (*names)[32] = malloc(PB_TEXT_MAX_TOPICS * sizeof *names);
    if (!names)
        return pb_err(err, errlen, PB_ENOMEM, "out of memory");
    int ntopics, rc = pb_text_topics(dir, names, PB_TEXT_MAX_TOPICS, &ntopics, err, errlen);
    if (rc == PB_OK)
        rc = parse_and_read(spec, dir, split, names, ntopics, out, err, errlen);
    free(names);
    return rc;
}

static int parse_and_read(const char *spec, const char *dir, int split, char (*names)[32], int ntopics,
                          pb_dataset *out, char *err, size_t errlen)
{
    int rc = PB_OK;
    unsigned char chosen[PB_TEXT_MAX_TOPICS] = {0};
    int any = 0, ctx = PB_TEXT_CTX;
    const char *opt = spec[8] == ':' ? spec + 9 : "";
    while (*opt) {
        size_t len = strcspn(opt, ",");
        char word[64];
        if (len == 0 || len >= sizeof word)
            return pb_err(err, errlen, PB_EUSAGE, "%s: empty or overlong option in the list", spec);
        memcpy(word, opt, len);
        word[len] = 0;
        opt += len + (opt[len] == ',');
        if (!strncmp(word, "ctx=", 4)) {
            char *endp;
            long v = strtol(word + 4, &endp, 10);
            if (*endp || endp == word + 4 || v < 1 || v > 4096)
                return pb_err(err, errlen, PB_EUSAGE, "%s: ctx=%s is not a token count in [1, 4096]", spec, word + 4);
            ctx = (int)v;
            continue;
        }
        int t = -1;
        for (int i = 0; i < ntopics; i++)
            if (!strcmp(names[i], word))
                t = i;
        if (t < 0) {
            char list[4096];
            list_topics(names, ntopics, list, sizeof list);
            return pb_err(err, errlen, PB_EUSAGE, "%s: unknown topic '%s' (valid: %s)", spec, word, list);
        }
        chosen[t] = 1;
        any = 1;
    }
    pb_buf text = {0};
    int ndocs = 0;
    for (int i = 0; i < ntopics && rc == PB_OK; i++)
        if (!any || chosen[i])
            rc = read_topic(dir, names[i], split, &text, &ndocs, err, errlen);
    if (rc != PB_OK) {
        free(text.p);
        return rc;
    }
    size_t nex = text.n > 1 ? (text.n - 1) / (size_t)ctx : 0;
    if (nex == 0 || nex > 1u << 30) {
        free(text.p);
        return pb_err(err, errlen, PB_EUSAGE, "%s: the %s split has %zu bytes, %s", spec,
                      split == PB_TEXT_TRAIN ? "train" : split == PB_TEXT_VAL ? "validation" : "test", text.n,
                      nex ? "too many" : "not one example of ctx+1 bytes");
    }
    out->x = malloc(nex * (size_t)ctx);
    out->y = malloc(nex * (size_t)ctx);
    if (!out->x || !out->y) {
        free(text.p);
        pb_data_free(out);
        return pb_err(err, errlen, PB_ENOMEM, "out of memory for %s", spec);
    }
    for (size_t e = 0; e < nex; e++) {
        memcpy(out->x + e * ctx, text.p + e * ctx, (size_t)ctx);
        memcpy(out->y + e * ctx, text.p + e * ctx + 1, (size_t)ctx);
    }
    free(text.p);
    snprintf(out->name, sizeof out->name, "%s", spec);
    out->n = (int)nex;
    out->c = 1;
    out->h = ctx;
    out->w = 1;
    out->ncls = 256;
    out->ny = ctx;
    out->std[0] = 1.0f;
    return PB_OK;
}
