/* pb_data: loaders for IDX (MNIST, Fashion-MNIST), CIFAR-10 binary batches and
 * a synthetic set, plus splitting, sub-setting and batch normalization.
 * Images stay as bytes so Fashion-MNIST costs 47 MB, not 188 MB of floats. */
#ifndef _GNU_SOURCE
#define _XOPEN_SOURCE 700 /* stat, fileno under -std=c11 */
#endif

#include "pb_data.h"
#include "pb_text.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#define PATHLEN 4096
#define CIFAR_REC 3073 /* 1 label byte + 3 planes of 32x32 */

const char *const pb_dataset_names[] = {"fashion-mnist", "mnist", "cifar10", "synthetic", "fortunes", NULL};

static const char *const image_keys[] = {"subset", "val", NULL};
const pb_keyset pb_dataset_keys[] = {
    {.kind = "fashion-mnist", .keys = image_keys},
    {.kind = "mnist", .keys = image_keys},
    {.kind = "cifar10", .keys = image_keys},
    {.kind = "synthetic", .keys = image_keys},
    {.kind = "fortunes", .keys = (const char *const[]){"subset", "val", "topics", "ctx", NULL}},
    {.kind = NULL},
};

enum { DS_FASHION, DS_MNIST, DS_CIFAR, DS_SYNTH };

static const char *fashion_hint =
    "install the Debian package dataset-fashion-mnist, or pass --data-dir DIR "
    "(or set PRUNEBENCH_DATA) to a directory holding the IDX files";

static int find_name(const char *name)
{
    for (int i = 0; name && pb_dataset_names[i]; i++)
        if (strcmp(name, pb_dataset_names[i]) == 0)
            return i;
    return -1;
}

static int unknown_name(const char *name, char *err, size_t errlen)
{
    char list[128] = "";
    for (int i = 0; pb_dataset_names[i]; i++) {
        if (i)
            strcat(list, ", ");
        strcat(list, pb_dataset_names[i]);
    }
    return pb_err(err, errlen, PB_EUSAGE, "unknown data set '%s' (valid: %s)",
                  name ? name : "(null)", list);
}

const char *pb_data_default_dir(const char *name)
{
    const char *env = getenv("PRUNEBENCH_DATA");
    if (env && *env)
        return env;
    if (name && strcmp(name, "fashion-mnist") == 0)
        return "/usr/share/datasets/fashion-mnist";
    return NULL;
}

static int is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int join(char *buf, const char *dir, const char *file, const char *suffix,
                char *err, size_t errlen)
{
    int k = snprintf(buf, PATHLEN, "%s/%s%s", dir, file, suffix);
    if (k < 0 || k >= PATHLEN)
        return pb_err(err, errlen, PB_EUSAGE, "%s/%s%s: path too long", dir, file, suffix);
    return PB_OK;
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* gzread takes an unsigned and returns an int, so large reads go in pieces.
 * Returns bytes read, or -1 on a decompression error. */
static long long gz_read_all(gzFile f, uint8_t *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        size_t want = len - got;
        if (want > (1u << 30))
            want = 1u << 30;
        int r = gzread(f, buf + got, (unsigned)want);
        if (r < 0)
            return -1;
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (long long)got;
}

int pb_idx_read(const char *path, int expect_ndim, uint8_t **data, int dims[3],
                char *err, size_t errlen)
{
    if (!path || !data || !dims || expect_ndim < 1 || expect_ndim > 3)
        return pb_err(err, errlen, PB_EUSAGE, "pb_idx_read: bad arguments (ndim %d)", expect_ndim);
    *data = NULL;
    dims[0] = dims[1] = dims[2] = 1;
    const char *what = expect_ndim == 1 ? "label" : "image";

    errno = 0;
    gzFile f = gzopen(path, "rb");
    if (!f)
        return pb_err(err, errlen, PB_EIO, "%s: cannot open: %s", path,
                      errno ? strerror(errno) : "out of memory");
    gzbuffer(f, 1u << 17); /* default 8 KB input buffer makes 26 MB .gz reads slower */

    int rc = PB_OK;
    uint8_t *buf = NULL;
    unsigned char hdr[16];
    size_t hlen = 4 + 4 * (size_t)expect_ndim;
    long long r = gz_read_all(f, hdr, 4);
    if (r < 0) {
        int zerr;
        rc = pb_err(err, errlen, PB_EIO, "%s: read error: %s", path, gzerror(f, &zerr));
        goto out;
    }
    if (r < 4) {
        rc = pb_err(err, errlen, PB_EIO, "%s: truncated: %lld bytes, too short for an IDX header",
                    path, r);
        goto out;
    }
    uint32_t magic = be32(hdr), want = 0x800u | (uint32_t)expect_ndim;
    if (magic != want) {
        /* Name what the file looks like, so swapped image/label paths are obvious. */
        char seen[96] = "";
        if ((magic >> 16) == 0 && (magic & 0xff) >= 1 && (magic & 0xff) <= 4)
            snprintf(seen, sizeof seen, "; the file is IDX with type 0x%02x and %u dimension%s",
                     (magic >> 8) & 0xff, magic & 0xff, (magic & 0xff) == 1 ? "" : "s");
        rc = pb_err(err, errlen, PB_EIO,
                    "%s: bad magic 0x%08x (expected 0x%08x, an IDX file of unsigned bytes "
                    "with %d dimension%s)%s",
                    path, magic, want, expect_ndim, expect_ndim == 1 ? "" : "s", seen);
        goto out;
    }
    r = gz_read_all(f, hdr + 4, hlen - 4);
    if (r < 0 || (size_t)r < hlen - 4) {
        rc = pb_err(err, errlen, PB_EIO, "%s: truncated: header needs %zu bytes, got %lld", path,
                    hlen, r < 0 ? 4 : 4 + r);
        goto out;
    }
    size_t total = 1;
    for (int i = 0; i < expect_ndim; i++) {
        uint32_t d = be32(hdr + 4 + 4 * i);
        /* Limits keep n in an int and an example under 16 M bytes; a header
         * beyond them is corrupt, not a data set we can train on. */
        uint32_t lim = i == 0 ? (uint32_t)INT_MAX : 1u << 16;
        if (d == 0 || d > lim) {
            rc = pb_err(err, errlen, PB_EIO, "%s: dimension %d is %u (expected 1..%u)", path, i,
                        d, lim);
            goto out;
        }
        dims[i] = (int)d;
        total *= d;
    }
    if (total > ((size_t)1 << 40) || (expect_ndim == 3 && (size_t)dims[1] * dims[2] > (1u << 24))) {
        rc = pb_err(err, errlen, PB_EIO, "%s: header promises %zu bytes, more than a data set "
                    "this program handles", path, total);
        goto out;
    }

    /* Grow toward the promised size rather than trusting it up front: a corrupt
     * or truncated file then fails with "truncated", not a huge allocation
     * (1 MB first, doubling: a real 47 MB file takes six reallocs). */
    size_t cap = total < ((size_t)1 << 20) ? total : ((size_t)1 << 20), got = 0;
    buf = malloc(cap);
    if (!buf) {
        rc = pb_err(err, errlen, PB_ENOMEM, "%s: out of memory for %zu bytes", path, cap);
        goto out;
    }
    for (;;) {
        r = gz_read_all(f, buf + got, cap - got);
        if (r < 0) {
            int zerr;
            rc = pb_err(err, errlen, PB_EIO, "%s: read error after %zu bytes of %s data: %s",
                        path, got, what, gzerror(f, &zerr));
            goto out;
        }
        got += (size_t)r;
        if (got < cap || cap == total)
            break;
        size_t ncap = cap * 2 < total ? cap * 2 : total;
        uint8_t *nb = realloc(buf, ncap);
        if (!nb) {
            rc = pb_err(err, errlen, PB_ENOMEM, "%s: out of memory for %zu bytes", path, ncap);
            goto out;
        }
        buf = nb;
        cap = ncap;
    }
    if (got < total) {
        int zerr;
        gzerror(f, &zerr); /* its message repeats the path; say it shorter */
        rc = pb_err(err, errlen, PB_EIO, "%s: truncated: expected %zu bytes of %s data, got %zu%s",
                    path, total, what, got,
                    zerr == Z_BUF_ERROR ? " (the gzip stream ends early: a partial download?)" : "");
        goto out;
    }
    unsigned char extra;
    if (gzread(f, &extra, 1) > 0) {
        /* More data than the header says means the header is wrong, and then
         * the dimensions we would report are wrong too. */
        rc = pb_err(err, errlen, PB_EIO, "%s: trailing data after the %zu bytes of %s data the "
                    "header promises", path, total, what);
        goto out;
    }
    *data = buf;
    buf = NULL;
out:
    free(buf);
    gzclose(f);
    if (rc != PB_OK)
        dims[0] = dims[1] = dims[2] = 1;
    return rc;
}

/* Picks base.gz, else base; "not found" names both tries. */
static int find_idx(const char *dir, const char *base, int kind, char *path,
                    char *err, size_t errlen)
{
    int rc = join(path, dir, base, ".gz", err, errlen);
    if (rc || is_file(path))
        return rc;
    if ((rc = join(path, dir, base, "", err, errlen)) || is_file(path))
        return rc;
    return pb_err(err, errlen, PB_EIO, "%s/%s.gz: not found (nor %s/%s)%s%s", dir, base, dir,
                  base, kind == DS_FASHION ? "; " : "", kind == DS_FASHION ? fashion_hint : "");
}

static int load_idx(int kind, const char *dir, int split, pb_dataset *out, char *err, size_t errlen)
{
    const char *pre = split == PB_SPLIT_TRAIN ? "train" : "t10k";
    char ibase[64], lbase[64], ipath[PATHLEN], lpath[PATHLEN];
    snprintf(ibase, sizeof ibase, "%s-images-idx3-ubyte", pre);
    snprintf(lbase, sizeof lbase, "%s-labels-idx1-ubyte", pre);
    int rc = find_idx(dir, ibase, kind, ipath, err, errlen);
    if (!rc)
        rc = find_idx(dir, lbase, kind, lpath, err, errlen);
    if (rc)
        return rc;

    uint8_t *x = NULL, *y = NULL;
    int idims[3], ldims[3];
    if ((rc = pb_idx_read(ipath, 3, &x, idims, err, errlen)))
        return rc;
    if ((rc = pb_idx_read(lpath, 1, &y, ldims, err, errlen))) {
        free(x);
        return rc;
    }
    if (idims[0] != ldims[0]) {
        rc = pb_err(err, errlen, PB_EIO, "%s holds %d images but %s holds %d labels", ipath,
                    idims[0], lpath, ldims[0]);
        goto fail;
    }
    for (int i = 0; i < ldims[0]; i++)
        if (y[i] >= 10) {
            rc = pb_err(err, errlen, PB_EIO, "%s: label %d of example %d is out of range 0..9",
                        lpath, y[i], i);
            goto fail;
        }
    snprintf(out->name, sizeof out->name, "%s", pb_dataset_names[kind]);
    out->n = idims[0];
    out->c = 1;
    out->h = idims[1];
    out->w = idims[2];
    out->ncls = 10;
    out->x = x;
    out->y = y;
    /* The usual published constants, so results compare with other code. */
    float m = kind == DS_FASHION ? 0.2860f : 0.1307f, s = kind == DS_FASHION ? 0.3530f : 0.3081f;
    for (int c = 0; c < 3; c++) {
        out->mean[c] = m;
        out->std[c] = s;
    }
    return PB_OK;
fail:
    free(x);
    free(y);
    return rc;
}

static int load_cifar(const char *dir, int split, pb_dataset *out, char *err, size_t errlen)
{
    const char *names[5];
    char bufs[5][32];
    int nf = split == PB_SPLIT_TRAIN ? 5 : 1;
    for (int i = 0; i < nf; i++) {
        if (split == PB_SPLIT_TRAIN)
            snprintf(bufs[i], sizeof bufs[i], "data_batch_%d.bin", i + 1);
        else
            snprintf(bufs[i], sizeof bufs[i], "test_batch.bin");
        names[i] = bufs[i];
    }
    /* The official tarball unpacks into cifar-10-batches-bin/; accept either. */
    char sub[PATHLEN], path[PATHLEN];
    int rc = join(path, dir, names[0], "", err, errlen);
    if (rc)
        return rc;
    if (!is_file(path) && join(sub, dir, "cifar-10-batches-bin", "", NULL, 0) == PB_OK &&
        is_dir(sub))
        dir = sub;

    long long nrec[5], total = 0;
    for (int i = 0; i < nf; i++) {
        struct stat st;
        if ((rc = join(path, dir, names[i], "", err, errlen)))
            return rc;
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
            return pb_err(err, errlen, PB_EIO, "%s: not found (CIFAR-10 needs data_batch_1.bin .. "
                          "data_batch_5.bin and test_batch.bin, the binary version)", path);
        if (st.st_size == 0 || st.st_size % CIFAR_REC != 0)
            return pb_err(err, errlen, PB_EIO, "%s: size %lld bytes is not a positive multiple of "
                          "%d (1 label byte + 3072 pixel bytes per image)", path,
                          (long long)st.st_size, CIFAR_REC);
        nrec[i] = (long long)st.st_size / CIFAR_REC;
        total += nrec[i];
    }
    if (total > INT_MAX / 3072)
        return pb_err(err, errlen, PB_EIO, "%s: %lld images are more than this program handles",
                      dir, total);

    uint8_t *x = malloc((size_t)total * 3072), *y = malloc((size_t)total);
    uint8_t *rec = malloc((size_t)CIFAR_REC * 256);
    if (!x || !y || !rec) {
        rc = pb_err(err, errlen, PB_ENOMEM, "%s: out of memory for %lld CIFAR-10 images", dir, total);
        goto fail;
    }
    long long at = 0;
    for (int i = 0; i < nf; i++) {
        join(path, dir, names[i], "", NULL, 0);
        FILE *f = fopen(path, "rb");
        if (!f) {
            rc = pb_err(err, errlen, PB_EIO, "%s: cannot open: %s", path, strerror(errno));
            goto fail;
        }
        for (long long k = 0; k < nrec[i];) {
            size_t want = nrec[i] - k < 256 ? (size_t)(nrec[i] - k) : 256;
            size_t got = fread(rec, CIFAR_REC, want, f);
            for (size_t j = 0; j < got; j++, at++) {
                const uint8_t *r = rec + j * CIFAR_REC;
                if (r[0] >= 10) {
                    fclose(f);
                    rc = pb_err(err, errlen, PB_EIO, "%s: label %d of record %lld is out of range "
                                "0..9", path, r[0], k + (long long)j);
                    goto fail;
                }
                y[at] = r[0];
                memcpy(x + (size_t)at * 3072, r + 1, 3072);
            }
            k += (long long)got;
            if (got < want) {
                /* The size checked above changed under us, or the read failed. */
                rc = pb_err(err, errlen, PB_EIO, "%s: truncated: expected %lld records, got %lld%s%s",
                            path, nrec[i], k, ferror(f) ? ": " : "",
                            ferror(f) ? strerror(errno) : "");
                fclose(f);
                goto fail;
            }
        }
        fclose(f);
    }
    free(rec);
    snprintf(out->name, sizeof out->name, "cifar10");
    out->n = (int)total;
    out->c = 3;
    out->h = out->w = 32;
    out->ncls = 10;
    out->x = x;
    out->y = y;
    static const float mean[3] = {0.4914f, 0.4822f, 0.4465f}, sd[3] = {0.2470f, 0.2435f, 0.2616f};
    memcpy(out->mean, mean, sizeof mean);
    memcpy(out->std, sd, sizeof sd);
    out->augment = split == PB_SPLIT_TRAIN;
    return PB_OK;
fail:
    free(rec);
    free(x);
    free(y);
    return rc;
}

int pb_data_load(const char *name, const char *dir, int split, pb_dataset *out,
                 char *err, size_t errlen)
{
    if (!out)
        return pb_err(err, errlen, PB_EUSAGE, "pb_data_load: out is NULL");
    memset(out, 0, sizeof *out);
    if (pb_text_is(name))
        return pb_text_load(name, dir, split, out, err, errlen);
    int kind = find_name(name);
    if (kind < 0)
        return unknown_name(name, err, errlen);
    if (split != PB_SPLIT_TRAIN && split != PB_SPLIT_TEST)
        return pb_err(err, errlen, PB_EUSAGE, "%s: split %d is neither train (0) nor test (1)",
                      name, split);
    if (kind == DS_SYNTH) {
        /* One task (prototypes) for both splits, different samples per split,
         * so accuracy on test measures what was learned on train. */
        int rc = pb_data_synthetic_task(out, split == PB_SPLIT_TRAIN ? 2000 : 500, 1, 28, 28, 10,
                                        0x5eed, split == PB_SPLIT_TRAIN ? 1 : 2, err, errlen);
        if (rc == PB_OK)
            snprintf(out->name, sizeof out->name, "synthetic");
        return rc;
    }

    const char *from = "";
    if (!dir) {
        dir = pb_data_default_dir(name);
        const char *env = getenv("PRUNEBENCH_DATA");
        if (env && *env)
            from = " (from $PRUNEBENCH_DATA)";
    }
    if (!dir)
        return pb_err(err, errlen, PB_EUSAGE, "%s has no system-wide default directory; pass "
                      "--data-dir DIR (or set PRUNEBENCH_DATA) to a directory holding %s", name,
                      kind == DS_CIFAR ? "data_batch_1.bin .. data_batch_5.bin and test_batch.bin"
                                       : "train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], "
                                         "t10k-images-idx3-ubyte[.gz] and t10k-labels-idx1-ubyte[.gz]");
    if (!is_dir(dir))
        return pb_err(err, errlen, PB_EIO, "%s: data directory%s for %s not found%s%s", dir, from,
                      name, kind == DS_FASHION ? "; " : "", kind == DS_FASHION ? fashion_hint : "");
    int rc = kind == DS_CIFAR ? load_cifar(dir, split, out, err, errlen)
                              : load_idx(kind, dir, split, out, err, errlen);
    if (rc)
        memset(out, 0, sizeof *out);
    return rc;
}

/* Adds a Gaussian blob to a plane: smooth prototypes have image-like spatial
 * structure, so convolutions have something to find. */
static void add_blob(float *p, int h, int w, pb_rng *r)
{
    float cy = (float)pb_rng_uniform(r) * (float)h, cx = (float)pb_rng_uniform(r) * (float)w;
    float s = (0.08f + 0.17f * (float)pb_rng_uniform(r)) * (float)(h > w ? h : w);
    float a = pb_rng_uniform(r) < 0.5 ? -1.0f : 1.0f;
    float inv = 1.0f / (2.0f * s * s);
    for (int yy = 0; yy < h; yy++)
        for (int xx = 0; xx < w; xx++) {
            float dy = (float)yy - cy, dx = (float)xx - cx;
            p[yy * w + xx] += a * expf(-(dy * dy + dx * dx) * inv);
        }
}

/* Prototype contrast against per-pixel noise (both on the [0,1] scale), tuned
 * for 1x28x28, 10 classes: about 90% Bayes accuracy, about 75% for a
 * nearest-centroid classifier fit on the 2000 "synthetic" training examples.
 * Learnable, but never perfectly separable. */
#define SYNTH_NOISE 0.30f
#define SYNTH_CONTRAST 0.035f

int pb_data_synthetic_task(pb_dataset *out, int n, int c, int h, int w, int ncls,
                           uint64_t task_seed, uint64_t seed, char *err, size_t errlen)
{
    if (!out)
        return pb_err(err, errlen, PB_EUSAGE, "pb_data_synthetic: out is NULL");
    memset(out, 0, sizeof *out);
    if (n < 1 || c < 1 || c > 3 || h < 1 || w < 1 || h > 4096 || w > 4096 || ncls < 2 || ncls > 256)
        return pb_err(err, errlen, PB_EUSAGE, "synthetic: bad shape n=%d c=%d h=%d w=%d ncls=%d "
                      "(need n>=1, 1<=c<=3, 1<=h,w<=4096, 2<=ncls<=256)", n, c, h, w, ncls);
    size_t chw = (size_t)c * h * w;
    if ((size_t)n > ((size_t)1 << 34) / chw)
        return pb_err(err, errlen, PB_EUSAGE, "synthetic: %d examples of %zu bytes is too large",
                      n, chw);

    float *proto = malloc(sizeof(float) * chw * (size_t)ncls);
    int *lab = malloc(sizeof(int) * (size_t)n);
    uint8_t *x = malloc((size_t)n * chw), *y = malloc((size_t)n);
    if (!proto || !lab || !x || !y) {
        free(proto);
        free(lab);
        free(x);
        free(y);
        return pb_err(err, errlen, PB_ENOMEM, "synthetic: out of memory for %d examples", n);
    }

    pb_rng r;
    pb_rng_seed(&r, task_seed);
    size_t hw = (size_t)h * w;
    for (int k = 0; k < ncls; k++)
        for (int ch = 0; ch < c; ch++) {
            float *p = proto + (size_t)k * chw + (size_t)ch * hw;
            memset(p, 0, sizeof(float) * hw);
            for (int b = 0; b < 6; b++)
                add_blob(p, h, w, &r);
            for (size_t i = 0; i < hw; i++)
                p[i] = 0.5f + SYNTH_CONTRAST * 2.0f * tanhf(p[i]);
        }
    /* Normalization from the task, not the sample, so train and test of one
     * task are normalized alike; the noise variance adds to the pattern's. */
    for (int ch = 0; ch < c; ch++) {
        double s = 0, s2 = 0;
        for (int k = 0; k < ncls; k++)
            for (size_t i = 0; i < hw; i++) {
                double v = proto[(size_t)k * chw + (size_t)ch * hw + i];
                s += v;
                s2 += v * v;
            }
        double cnt = (double)ncls * (double)hw, m = s / cnt;
        double var = s2 / cnt - m * m + (double)SYNTH_NOISE * SYNTH_NOISE;
        out->mean[ch] = (float)m;
        out->std[ch] = (float)sqrt(var);
    }
    for (int ch = c; ch < 3; ch++) {
        out->mean[ch] = out->mean[0];
        out->std[ch] = out->std[0];
    }

    /* XOR keeps the sample stream distinct from the task stream when the seeds match. */
    pb_rng_seed(&r, seed ^ 0x9e3779b97f4a7c15ULL);
    for (int i = 0; i < n; i++)
        lab[i] = i % ncls;
    pb_rng_shuffle(&r, lab, n);
    for (int i = 0; i < n; i++) {
        const float *p = proto + (size_t)lab[i] * chw;
        uint8_t *dst = x + (size_t)i * chw;
        for (size_t j = 0; j < chw; j++) {
            float v = p[j] + SYNTH_NOISE * pb_rng_normal(&r);
            v = v < 0 ? 0 : v > 1 ? 1 : v;
            dst[j] = (uint8_t)lrintf(v * 255.0f);
        }
        y[i] = (uint8_t)lab[i];
    }
    free(proto);
    free(lab);
    snprintf(out->name, sizeof out->name, "synthetic");
    out->n = n;
    out->c = c;
    out->h = h;
    out->w = w;
    out->ncls = ncls;
    out->x = x;
    out->y = y;
    return PB_OK;
}

int pb_data_synthetic(pb_dataset *out, int n, int c, int h, int w, int ncls, uint64_t seed,
                      char *err, size_t errlen)
{
    return pb_data_synthetic_task(out, n, c, h, w, ncls, seed, seed, err, errlen);
}

/* Copies examples idx[0..n-1] of src into fresh arrays of dst (metadata from src). */
static int gather(const pb_dataset *src, const int *idx, int n, pb_dataset *dst)
{
    size_t chw = (size_t)src->c * src->h * src->w, ny = (size_t)pb_data_ny(src);
    *dst = *src;
    dst->n = n;
    /* malloc(0) may return NULL; one byte keeps "NULL = failure" unambiguous. */
    dst->x = malloc(n ? (size_t)n * chw : 1);
    dst->y = malloc(n ? (size_t)n * ny : 1);
    if (!dst->x || !dst->y) {
        free(dst->x);
        free(dst->y);
        dst->x = dst->y = NULL;
        return PB_ENOMEM;
    }
    for (int i = 0; i < n; i++) {
        memcpy(dst->x + (size_t)i * chw, src->x + (size_t)idx[i] * chw, chw);
        memcpy(dst->y + (size_t)i * ny, src->y + (size_t)idx[i] * ny, ny);
    }
    return PB_OK;
}

int pb_data_split(pb_dataset *train, pb_dataset *val, int nval, uint64_t seed,
                  char *err, size_t errlen)
{
    if (!train || !val || train == val)
        return pb_err(err, errlen, PB_EUSAGE, "pb_data_split: train and val must be two data sets");
    if (nval < 0 || nval >= train->n)
        return pb_err(err, errlen, PB_EUSAGE, "%s: validation size %d not in [0, %d)", train->name,
                      nval, train->n);
    int *perm = malloc(sizeof(int) * (size_t)train->n);
    if (!perm)
        return pb_err(err, errlen, PB_ENOMEM, "%s: out of memory for a split", train->name);
    for (int i = 0; i < train->n; i++)
        perm[i] = i;
    pb_rng r;
    pb_rng_seed(&r, seed);
    pb_rng_shuffle(&r, perm, train->n);

    int ntr = train->n - nval;
    pb_dataset tr, va;
    if (gather(train, perm, ntr, &tr) != PB_OK) {
        free(perm);
        return pb_err(err, errlen, PB_ENOMEM, "%s: out of memory for a split", train->name);
    }
    if (gather(train, perm + ntr, nval, &va) != PB_OK) {
        free(perm);
        pb_data_free(&tr);
        return pb_err(err, errlen, PB_ENOMEM, "%s: out of memory for a split", train->name);
    }
    free(perm);
    /* Validation measures the model, not the augmentation. */
    va.augment = 0;
    pb_data_free(train);
    *train = tr;
    *val = va;
    return PB_OK;
}

int pb_data_subset(const pb_dataset *src, const int *idx, int n, pb_dataset *out,
                   char *err, size_t errlen)
{
    if (!src || !out || (n > 0 && !idx) || n < 0)
        return pb_err(err, errlen, PB_EUSAGE, "pb_data_subset: bad arguments (n=%d)", n);
    for (int i = 0; i < n; i++)
        if (idx[i] < 0 || idx[i] >= src->n)
            return pb_err(err, errlen, PB_EUSAGE, "%s: subset index %d at position %d not in "
                          "[0, %d)", src->name, idx[i], i, src->n);
    pb_dataset tmp;
    if (gather(src, idx, n, &tmp) != PB_OK)
        return pb_err(err, errlen, PB_ENOMEM, "%s: out of memory for a subset of %d", src->name, n);
    if (out == src) /* in place: the source arrays are no longer needed */
        pb_data_free(out);
    *out = tmp;
    return PB_OK;
}

void pb_data_batch(const pb_dataset *d, const int *idx, int B, pb_rng *rng,
                   float *x, int *y)
{
    /* Per call, not cached: 768 divisions are noise next to one example,
     * and no shared state means no thread or staleness questions. */
    if (d->ny > 0) {
        /* token ids as they are, and ny targets per example */
        size_t len = (size_t)d->c * d->h * d->w, ny = (size_t)d->ny;
        for (int i = 0; i < B; i++) {
            const uint8_t *src = d->x + (size_t)idx[i] * len, *ys = d->y + (size_t)idx[i] * ny;
            for (size_t j = 0; j < len; j++)
                x[(size_t)i * len + j] = (float)src[j];
            for (size_t j = 0; j < ny; j++)
                y[(size_t)i * ny + j] = ys[j];
        }
        return;
    }
    float lut[3][256];
    int C = d->c < 3 ? d->c : 3, h = d->h, w = d->w;
    for (int c = 0; c < C; c++) {
        float inv = 1.0f / d->std[c];
        for (int v = 0; v < 256; v++)
            lut[c][v] = ((float)v / 255.0f - d->mean[c]) * inv;
    }
    size_t hw = (size_t)h * w, chw = (size_t)C * hw;
    int aug = d->augment && rng;
    for (int i = 0; i < B; i++) {
        const uint8_t *src = d->x + (size_t)idx[i] * chw;
        float *dst = x + (size_t)i * chw;
        y[i] = d->y[idx[i]];
        if (!aug) {
            for (int c = 0; c < C; c++) {
                const float *t = lut[c];
                const uint8_t *s = src + (size_t)c * hw;
                float *o = dst + (size_t)c * hw;
                for (size_t j = 0; j < hw; j++)
                    o[j] = t[s[j]];
            }
            continue;
        }
        /* Crop a window of the image padded by 4 zero pixels at offset (oy, ox)
         * in [-4, 4], then mirror it with p = 0.5. Draw order is fixed so a
         * seeded rng reproduces the same batch. */
        int oy = (int)pb_rng_below(rng, 9) - 4;
        int ox = (int)pb_rng_below(rng, 9) - 4;
        int flip = (int)pb_rng_below(rng, 2);
        for (int c = 0; c < C; c++) {
            const float *t = lut[c];
            const uint8_t *s = src + (size_t)c * hw;
            float *o = dst + (size_t)c * hw;
            for (int yy = 0; yy < h; yy++) {
                int sy = yy + oy;
                float *orow = o + (size_t)yy * w;
                if (sy < 0 || sy >= h) {
                    for (int xx = 0; xx < w; xx++)
                        orow[xx] = t[0];
                    continue;
                }
                const uint8_t *srow = s + (size_t)sy * w;
                for (int xx = 0; xx < w; xx++) {
                    int sx = (flip ? w - 1 - xx : xx) + ox;
                    orow[xx] = (sx < 0 || sx >= w) ? t[0] : t[srow[sx]];
                }
            }
        }
    }
}

void pb_data_free(pb_dataset *d)
{
    if (!d)
        return;
    free(d->x);
    free(d->y);
    memset(d, 0, sizeof *d);
}

int pb_data_open(const char *name, const char *dir, int subset, int nval, uint64_t seed, pb_dataset *train,
                 pb_dataset *val, pb_dataset *test, char *err, size_t errlen)
{
    memset(train, 0, sizeof *train);
    memset(test, 0, sizeof *test);
    if (val)
        memset(val, 0, sizeof *val);
    int rc = pb_data_load(name, dir, PB_SPLIT_TRAIN, train, err, errlen);
    if (rc == PB_OK)
        rc = pb_data_load(name, dir, PB_SPLIT_TEST, test, err, errlen);
    if (rc == PB_OK && nval > 0 && val && train->ny > 0) {
        /* a text set holds out documents, not windows: its own split */
        rc = pb_data_load(name, dir, PB_SPLIT_VAL, val, err, errlen);
        if (rc == PB_OK && nval < val->n)
            val->n = nval;
    } else if (rc == PB_OK && nval > 0 && val) {
        if (nval >= train->n)
            rc = pb_err(err, errlen, PB_EUSAGE, "--val %d leaves no training data (%d examples)", nval, train->n);
        else
            rc = pb_data_split(train, val, nval, seed, err, errlen);
    }
    if (rc == PB_OK && subset > 0 && subset < train->n) {
        pb_dataset sub;
        int *idx = malloc((size_t)subset * sizeof(int));
        if (!idx)
            return pb_err(err, errlen, PB_ENOMEM, "out of memory");
        for (int i = 0; i < subset; i++)
            idx[i] = i;
        rc = pb_data_subset(train, idx, subset, &sub, err, errlen);
        free(idx);
        if (rc == PB_OK) {
            pb_data_free(train);
            *train = sub;
        }
    }
    if (rc != PB_OK) {
        pb_data_free(train);
        pb_data_free(test);
        if (val)
            pb_data_free(val);
    }
    return rc;
}

void pb_data_permute_labels(pb_dataset *d, uint64_t seed)
{
    int perm[256];
    for (int k = 0; k < d->ncls; k++)
        perm[k] = k;
    pb_rng r;
    pb_rng_seed(&r, seed ^ 0x7e57a5c0ULL);
    pb_rng_shuffle(&r, perm, d->ncls);
    for (size_t i = 0; i < (size_t)d->n * pb_data_ny(d); i++)
        d->y[i] = (uint8_t)perm[d->y[i]];
}

int pb_data_keep_classes(pb_dataset *d, uint64_t classes, char *err, size_t errlen)
{
    if (d->ny > 0)
        return pb_err(err, errlen, PB_EUSAGE, "%s: a language-model data set has no classes to keep", d->name);
    int *idx = malloc(sizeof(int) * (size_t)(d->n ? d->n : 1));
    if (!idx)
        return pb_err(err, errlen, PB_ENOMEM, "out of memory");
    int n = 0;
    for (int i = 0; i < d->n; i++)
        if (d->y[i] < 64 && (classes >> d->y[i] & 1u))
            idx[n++] = i;
    int rc = n > 0 ? pb_data_subset(d, idx, n, d, err, errlen)
                   : pb_err(err, errlen, PB_EUSAGE, "%s: no example of the classes asked for (mask 0x%llx of %d classes)",
                            d->name, (unsigned long long)classes, d->ncls);
    free(idx);
    return rc;
}

int pb_data_map_labels(pb_dataset *d, const int *map, int nmap, char *err, size_t errlen)
{
    if (d->ny > 0)
        return pb_err(err, errlen, PB_EUSAGE, "%s: a language-model data set has no class labels to map", d->name);
    if (nmap != d->ncls)
        return pb_err(err, errlen, PB_EUSAGE, "%s: a label map needs one entry per class (%d), got %d", d->name,
                      d->ncls, nmap);
    for (int k = 0; k < nmap; k++)
        if (map[k] < 0 || map[k] >= d->ncls)
            return pb_err(err, errlen, PB_EUSAGE, "%s: label map sends class %d to %d, not in [0, %d)", d->name, k,
                          map[k], d->ncls);
    for (int i = 0; i < d->n; i++)
        d->y[i] = (uint8_t)map[d->y[i]];
    return PB_OK;
}
