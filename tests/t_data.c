/* t_data: loaders, error messages, synthetic data, split/subset and batches.
 * Writes its own tiny IDX and CIFAR files into a temporary directory. */
#ifndef _GNU_SOURCE
#define _XOPEN_SOURCE 700 /* mkdtemp, nftw, setenv under -std=c11 */
#endif

#include "engine/pb_data.h"

#include <ftw.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define PLAN 44
#define REAL_DIR "/usr/share/datasets/fashion-mnist"

static int ntest, nfail;
static char tmpdir[512];

static void ok(int cond, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void ok(int cond, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("%sok %d - ", cond ? "" : "not ", ++ntest);
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    if (!cond)
        nfail++;
}

static void diag(const char *what, const char *err) { printf("# %s: %s\n", what, err); }

static int has(const char *s, const char *sub) { return s && strstr(s, sub) != NULL; }

/* A fresh sub-directory per case, so one case's files never satisfy another's lookup. */
static const char *mkcase(const char *name)
{
    static char buf[600];
    snprintf(buf, sizeof buf, "%s/%s", tmpdir, name);
    if (mkdir(buf, 0700) != 0) {
        perror(buf);
        abort();
    }
    return buf;
}

static void be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* Writes an IDX header (magic, ndim dims) and then exactly len payload bytes,
 * which may be fewer or more than the header promises. */
static void write_idx(const char *dir, const char *file, int gz, uint32_t magic, int ndim,
                      const int *dims, const uint8_t *payload, size_t len)
{
    char path[700];
    unsigned char hdr[16];
    snprintf(path, sizeof path, "%s/%s%s", dir, file, gz ? ".gz" : "");
    be32(hdr, magic);
    for (int i = 0; i < ndim; i++)
        be32(hdr + 4 + 4 * i, (uint32_t)dims[i]);
    size_t hlen = 4 + 4 * (size_t)ndim;
    if (gz) {
        gzFile f = gzopen(path, "wb");
        if (!f || gzwrite(f, hdr, (unsigned)hlen) != (int)hlen ||
            (len && gzwrite(f, payload, (unsigned)len) != (int)len) || gzclose(f) != Z_OK) {
            fprintf(stderr, "cannot write %s\n", path);
            abort();
        }
    } else {
        FILE *f = fopen(path, "wb");
        if (!f || fwrite(hdr, 1, hlen, f) != hlen || fwrite(payload, 1, len, f) != len ||
            fclose(f) != 0) {
            fprintf(stderr, "cannot write %s\n", path);
            abort();
        }
    }
}

static void write_raw(const char *dir, const char *file, const uint8_t *data, size_t len)
{
    char path[700];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
        fprintf(stderr, "cannot write %s\n", path);
        abort();
    }
}

/* n images of 28x28 whose pixel (i, j) is (i*7 + j*3 + k) & 0xff, labels k % 10. */
static uint8_t pix(int k, int j) { return (uint8_t)((k * 7 + j * 3 + k * j) & 0xff); }

static void write_mnist_pair(const char *dir, const char *pre, int gz, int nimg, int nlab)
{
    size_t np = (size_t)nimg * 784;
    uint8_t *img = malloc(np), *lab = malloc((size_t)nlab + 1);
    for (int k = 0; k < nimg; k++)
        for (int j = 0; j < 784; j++)
            img[(size_t)k * 784 + j] = pix(k, j);
    for (int k = 0; k < nlab; k++)
        lab[k] = (uint8_t)(k % 10);
    char f[64];
    int idims[3] = {nimg, 28, 28}, ldims[1] = {nlab};
    snprintf(f, sizeof f, "%s-images-idx3-ubyte", pre);
    write_idx(dir, f, gz, 0x803, 3, idims, img, np);
    snprintf(f, sizeof f, "%s-labels-idx1-ubyte", pre);
    write_idx(dir, f, gz, 0x801, 1, ldims, lab, (size_t)nlab);
    free(img);
    free(lab);
}

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

/* ---- cases ---- */

static void t_names(void)
{
    char err[PB_ERRLEN] = "";
    int n = 0;
    while (pb_dataset_names[n])
        n++;
    ok(n == 5 && !strcmp(pb_dataset_names[0], "fashion-mnist") &&
           !strcmp(pb_dataset_names[1], "mnist") && !strcmp(pb_dataset_names[2], "cifar10") &&
           !strcmp(pb_dataset_names[3], "synthetic") && !strcmp(pb_dataset_names[4], "fortunes"),
       "pb_dataset_names lists the five data sets");
    pb_dataset d;
    int rc = pb_data_load("imagenet", NULL, PB_SPLIT_TRAIN, &d, err, sizeof err);
    ok(rc == PB_EUSAGE && has(err, "imagenet") && has(err, "fashion-mnist") && has(err, "cifar10") &&
           has(err, "synthetic"),
       "unknown name is refused with the valid names listed");
    diag("unknown", err);
}

static void t_idx_valid(void)
{
    char err[PB_ERRLEN] = "";
    const char *dir = mkcase("valid");
    write_mnist_pair(dir, "train", 1, 25, 25);
    write_mnist_pair(dir, "t10k", 0, 7, 7);

    pb_dataset d;
    int rc = pb_data_load("mnist", dir, PB_SPLIT_TRAIN, &d, err, sizeof err);
    if (rc)
        diag("load", err);
    int good = rc == PB_OK && d.n == 25 && d.c == 1 && d.h == 28 && d.w == 28 && d.ncls == 10 &&
               !strcmp(d.name, "mnist") && d.augment == 0 && fabsf(d.mean[0] - 0.1307f) < 1e-6f &&
               fabsf(d.std[0] - 0.3081f) < 1e-6f;
    for (int k = 0; good && k < d.n; k++) {
        good = d.y[k] == k % 10;
        for (int j = 0; good && j < 784; j++)
            good = d.x[(size_t)k * 784 + j] == pix(k, j);
    }
    ok(good, "gzipped train pair loads with the right shape, constants, pixels and labels");
    pb_data_free(&d);
    ok(d.x == NULL && d.y == NULL && d.n == 0, "pb_data_free releases and zeroes");

    rc = pb_data_load("mnist", dir, PB_SPLIT_TEST, &d, err, sizeof err);
    good = rc == PB_OK && d.n == 7 && d.x[6 * 784 + 100] == pix(6, 100) && d.y[6] == 6;
    ok(good, "plain (not gzipped) t10k pair loads as the test split");
    pb_data_free(&d);

    /* Odd dimensions through the reader itself. */
    uint8_t raw[3 * 4 * 5];
    for (int i = 0; i < 60; i++)
        raw[i] = (uint8_t)(i * 4);
    int dims3[3] = {3, 4, 5};
    write_idx(dir, "odd-idx3", 0, 0x803, 3, dims3, raw, sizeof raw);
    char path[700];
    snprintf(path, sizeof path, "%s/odd-idx3", dir);
    uint8_t *data = NULL;
    int dims[3];
    rc = pb_idx_read(path, 3, &data, dims, err, sizeof err);
    ok(rc == PB_OK && dims[0] == 3 && dims[1] == 4 && dims[2] == 5 && data &&
           memcmp(data, raw, sizeof raw) == 0,
       "pb_idx_read returns dims 3x4x5 and the bytes");
    free(data);
}

static void t_idx_errors(void)
{
    char err[PB_ERRLEN] = "";
    pb_dataset d;
    int rc;

    /* Header promises 20 images, the file holds 1234 bytes of them. */
    const char *dir = mkcase("trunc");
    write_mnist_pair(dir, "train", 1, 20, 20);
    uint8_t *img = calloc(20 * 784, 1);
    int idims[3] = {20, 28, 28};
    write_idx(dir, "train-images-idx3-ubyte", 1, 0x803, 3, idims, img, 1234);
    rc = pb_data_load("mnist", dir, PB_SPLIT_TRAIN, &d, err, sizeof err);
    ok(rc == PB_EIO && has(err, "truncated") && has(err, "train-images-idx3-ubyte.gz") &&
           has(err, "15680") && has(err, "1234") && d.x == NULL,
       "truncated image file: error says truncated, names the file, expected and got");
    diag("truncated", err);

    /* A .gz cut mid-stream (a partial download), not a short header. */
    dir = mkcase("cutgz");
    write_mnist_pair(dir, "train", 1, 20, 20);
    char path[700];
    snprintf(path, sizeof path, "%s/train-images-idx3-ubyte.gz", dir);
    struct stat st;
    stat(path, &st);
    if (truncate(path, st.st_size / 2) != 0)
        perror("truncate");
    rc = pb_data_load("mnist", dir, PB_SPLIT_TRAIN, &d, err, sizeof err);
    ok(rc == PB_EIO && has(err, "truncated") && has(err, "train-images-idx3-ubyte.gz"),
       "gzip file cut in half: truncated error");
    diag("cut gz", err);

    dir = mkcase("magic");
    write_mnist_pair(dir, "train", 0, 5, 5);
    write_idx(dir, "train-images-idx3-ubyte", 0, 0x0c03, 3, idims, img, 5 * 784);
    rc = pb_data_load("mnist", dir, PB_SPLIT_TRAIN, &d, err, sizeof err);
    ok(rc == PB_EIO && has(err, "magic") && has(err, "0x00000c03") && has(err, "0x00000803") &&
           has(err, "train-images-idx3-ubyte"),
       "wrong magic: error names magic, expected magic and the file");
    diag("magic", err);

    /* Labels where images belong. */
    snprintf(path, sizeof path, "%s/train-labels-idx1-ubyte", dir);
    uint8_t *data = NULL;
    int dims[3];
    rc = pb_idx_read(path, 3, &data, dims, err, sizeof err);
    ok(rc == PB_EIO && has(err, "magic") && has(err, "1 dimension") && data == NULL,
       "label file read as images: bad magic, says it has 1 dimension");
    diag("swapped", err);

    dir = mkcase("count");
    write_mnist_pair(dir, "train", 1, 12, 11);
    rc = pb_data_load("mnist", dir, PB_SPLIT_TRAIN, &d, err, sizeof err);
    ok(rc == PB_EIO && has(err, "12") && has(err, "11") && has(err, "train-images-idx3-ubyte") &&
           has(err, "train-labels-idx1-ubyte"),
       "image/label count mismatch names both files and both counts");
    diag("count", err);

    dir = mkcase("missing");
    write_mnist_pair(dir, "t10k", 1, 3, 3);
    int ldims[1] = {3};
    write_idx(dir, "train-labels-idx1-ubyte", 1, 0x801, 1, ldims, (const uint8_t *)"\1\2\3", 3);
    rc = pb_data_load("mnist", dir, PB_SPLIT_TRAIN, &d, err, sizeof err);
    char want[700];
    snprintf(want, sizeof want, "%s/train-images-idx3-ubyte", dir);
    ok(rc == PB_EIO && has(err, want) && has(err, "not found"), "missing file: error names the path");
    diag("missing", err);

    dir = mkcase("label");
    write_mnist_pair(dir, "train", 0, 4, 4);
    int l4[1] = {4}; /* the third label is 10 (octal 12) */
    write_idx(dir, "train-labels-idx1-ubyte", 0, 0x801, 1, l4, (const uint8_t *)"\1\2\12\0", 4);
    rc = pb_data_load("mnist", dir, PB_SPLIT_TRAIN, &d, err, sizeof err);
    ok(rc == PB_EIO && has(err, "label 10") && has(err, "train-labels-idx1-ubyte"),
       "label 10 is refused with the file named");
    diag("label", err);

    dir = mkcase("trailing");
    write_mnist_pair(dir, "train", 0, 4, 4);
    write_idx(dir, "train-labels-idx1-ubyte", 0, 0x801, 1, l4, (const uint8_t *)"\1\2\3\4\5", 5);
    rc = pb_data_load("mnist", dir, PB_SPLIT_TRAIN, &d, err, sizeof err);
    ok(rc == PB_EIO && has(err, "trailing") && has(err, "train-labels-idx1-ubyte"),
       "more data than the header promises is refused");
    diag("trailing", err);

    dir = mkcase("zerodim");
    int z[3] = {0, 28, 28};
    write_idx(dir, "x", 0, 0x803, 3, z, img, 0);
    snprintf(path, sizeof path, "%s/x", dir);
    rc = pb_idx_read(path, 3, &data, dims, err, sizeof err);
    ok(rc == PB_EIO && has(err, "dimension 0 is 0") && has(err, path), "a zero dimension is refused");
    diag("zero dim", err);
    free(img);

    snprintf(path, sizeof path, "%s/no-such-dir", tmpdir);
    rc = pb_data_load("mnist", path, PB_SPLIT_TRAIN, &d, err, sizeof err);
    ok(rc == PB_EIO && has(err, path) && has(err, "not found"), "missing directory is named");
    diag("missing dir", err);

    unsetenv("PRUNEBENCH_DATA");
    rc = pb_data_load("mnist", NULL, PB_SPLIT_TRAIN, &d, err, sizeof err);
    ok(rc == PB_EUSAGE && has(err, "--data-dir") && pb_data_default_dir("mnist") == NULL,
       "mnist without a directory asks for --data-dir");
    diag("mnist default", err);

    setenv("PRUNEBENCH_DATA", path, 1);
    rc = pb_data_load("fashion-mnist", NULL, PB_SPLIT_TRAIN, &d, err, sizeof err);
    ok(rc == PB_EIO && has(err, path) && has(err, "PRUNEBENCH_DATA") &&
           has(err, "dataset-fashion-mnist") && !strcmp(pb_data_default_dir("mnist"), path),
       "$PRUNEBENCH_DATA is used; fashion-mnist error names it and the Debian package");
    diag("fashion env", err);
    unsetenv("PRUNEBENCH_DATA");
    ok(!strcmp(pb_data_default_dir("fashion-mnist"), REAL_DIR),
       "fashion-mnist defaults to " REAL_DIR);
}

/* Record r of a tiny CIFAR batch: label (b + r) % 10, pixel p = (b*31 + r*7 + p) & 0xff. */
static void write_cifar(const char *dir, const char *file, int b, int nrec, size_t extra)
{
    size_t len = (size_t)nrec * 3073 + extra;
    uint8_t *buf = calloc(len ? len : 1, 1);
    for (int r = 0; r < nrec; r++) {
        uint8_t *p = buf + (size_t)r * 3073;
        p[0] = (uint8_t)((b + r) % 10);
        for (int j = 0; j < 3072; j++)
            p[1 + j] = (uint8_t)((b * 31 + r * 7 + j) & 0xff);
    }
    write_raw(dir, file, buf, len);
    free(buf);
}

static void t_cifar(void)
{
    char err[PB_ERRLEN] = "", f[64];
    pb_dataset d;
    const char *dir = mkcase("cifar");
    for (int b = 1; b <= 5; b++) {
        snprintf(f, sizeof f, "data_batch_%d.bin", b);
        write_cifar(dir, f, b, b + 1, 0); /* 2+3+4+5+6 = 20 records */
    }
    write_cifar(dir, "test_batch.bin", 9, 3, 0);
    int rc = pb_data_load("cifar10", dir, PB_SPLIT_TRAIN, &d, err, sizeof err);
    if (rc)
        diag("cifar", err);
    /* Example 2 + 3 = 5 is record 0 of batch 3. */
    int good = rc == PB_OK && d.n == 20 && d.c == 3 && d.h == 32 && d.w == 32 && d.ncls == 10 &&
               d.augment == 1 && fabsf(d.mean[2] - 0.4465f) < 1e-6f &&
               fabsf(d.std[1] - 0.2435f) < 1e-6f && d.y[5] == 3 &&
               d.x[5 * 3072 + 0] == (uint8_t)(3 * 31) && d.x[5 * 3072 + 2047] == (uint8_t)(93 + 2047) &&
               d.y[19] == (5 + 5) % 10 && d.x[19 * 3072 + 3071] == (uint8_t)(5 * 31 + 35 + 3071);
    ok(good, "cifar10 train: 5 batches, 3x32x32, labels and planes in order, augment on");
    pb_data_free(&d);

    rc = pb_data_load("cifar10", dir, PB_SPLIT_TEST, &d, err, sizeof err);
    ok(rc == PB_OK && d.n == 3 && d.augment == 0 && d.y[2] == 1, "cifar10 test: test_batch.bin, no augment");
    pb_data_free(&d);

    const char *bad = mkcase("cifar-bad");
    for (int b = 1; b <= 5; b++) {
        snprintf(f, sizeof f, "data_batch_%d.bin", b);
        write_cifar(bad, f, b, 2, b == 4 ? 17 : 0);
    }
    rc = pb_data_load("cifar10", bad, PB_SPLIT_TRAIN, &d, err, sizeof err);
    ok(rc == PB_EIO && has(err, "data_batch_4.bin") && has(err, "3073") && has(err, "6163"),
       "cifar10 batch whose size is not a multiple of 3073 is refused");
    diag("cifar size", err);

    char path[700];
    snprintf(path, sizeof path, "%s/data_batch_3.bin", dir);
    remove(path);
    rc = pb_data_load("cifar10", dir, PB_SPLIT_TRAIN, &d, err, sizeof err);
    ok(rc == PB_EIO && has(err, path) && d.n == 0, "cifar10 missing data_batch_3.bin is named");
    diag("cifar missing", err);
}

static void t_synthetic(void)
{
    char err[PB_ERRLEN] = "";
    pb_dataset a, b, c;
    int rc = pb_data_synthetic(&a, 300, 2, 8, 9, 5, 42, err, sizeof err);
    rc |= pb_data_synthetic(&b, 300, 2, 8, 9, 5, 42, err, sizeof err);
    rc |= pb_data_synthetic(&c, 300, 2, 8, 9, 5, 43, err, sizeof err);
    size_t bytes = (size_t)300 * 2 * 8 * 9;
    ok(rc == PB_OK && a.n == 300 && a.c == 2 && a.h == 8 && a.w == 9 && a.ncls == 5 &&
           !memcmp(a.x, b.x, bytes) && !memcmp(a.y, b.y, 300),
       "synthetic: same seed, same bytes");
    ok(rc == PB_OK && memcmp(a.x, c.x, bytes) != 0, "synthetic: another seed, other bytes");
    int cnt[5] = {0};
    for (int i = 0; i < a.n; i++)
        cnt[a.y[i]]++;
    ok(cnt[0] == 60 && cnt[4] == 60 && a.std[0] > 0.1f && a.std[1] > 0.1f,
       "synthetic: balanced labels, sane std");
    pb_data_free(&a);
    pb_data_free(&b);
    pb_data_free(&c);

    rc = pb_data_synthetic(&a, 10, 4, 8, 8, 5, 1, err, sizeof err);
    ok(rc == PB_EUSAGE && a.x == NULL, "synthetic: 4 channels refused");

    pb_dataset tr, te;
    rc = pb_data_load("synthetic", "/ignored", PB_SPLIT_TRAIN, &tr, err, sizeof err);
    rc |= pb_data_load("synthetic", NULL, PB_SPLIT_TEST, &te, err, sizeof err);
    ok(rc == PB_OK && tr.n == 2000 && te.n == 500 && tr.c == 1 && tr.h == 28 && tr.w == 28 &&
           tr.ncls == 10 && te.ncls == 10 && tr.mean[0] == te.mean[0] && tr.std[0] == te.std[0] &&
           memcmp(tr.x, te.x, 784) != 0,
       "synthetic load: 2000 train / 500 test of 1x28x28, same normalization, other samples");

    /* Nearest class mean is a linear classifier: fit on train, score on test. */
    static double mean[10][784];
    int n[10] = {0}, right = 0;
    memset(mean, 0, sizeof mean);
    for (int i = 0; i < tr.n; i++) {
        n[tr.y[i]]++;
        for (int j = 0; j < 784; j++)
            mean[tr.y[i]][j] += tr.x[(size_t)i * 784 + j];
    }
    for (int k = 0; k < 10; k++)
        for (int j = 0; j < 784; j++)
            mean[k][j] /= n[k] ? n[k] : 1;
    for (int i = 0; i < te.n; i++) {
        double best = 1e300;
        int arg = -1;
        for (int k = 0; k < 10; k++) {
            double e = 0;
            for (int j = 0; j < 784; j++) {
                double q = te.x[(size_t)i * 784 + j] - mean[k][j];
                e += q * q;
            }
            if (e < best)
                best = e, arg = k;
        }
        right += arg == te.y[i];
    }
    double acc = right / (double)te.n;
    ok(acc > 0.4 && acc < 0.97, "synthetic is learnable from train but not separable (test acc %.3f)", acc);
    pb_data_free(&tr);
    pb_data_free(&te);
}

static void t_split_subset(void)
{
    char err[PB_ERRLEN] = "";
    pb_dataset d, v, d2, v2, s;
    pb_data_synthetic(&d, 100, 1, 4, 4, 10, 5, err, sizeof err);
    /* Tag each example by its index so contents can be traced. */
    for (int i = 0; i < d.n; i++)
        d.x[i * 16] = (uint8_t)i, d.x[i * 16 + 1] = d.y[i];
    pb_data_synthetic(&d2, 100, 1, 4, 4, 10, 5, err, sizeof err);
    memcpy(d2.x, d.x, 1600);
    d.augment = d2.augment = 1;

    int rc = pb_data_split(&d, &v, 30, 77, err, sizeof err);
    rc |= pb_data_split(&d2, &v2, 30, 77, err, sizeof err);
    int seen[100] = {0}, good = rc == PB_OK && d.n == 70 && v.n == 30 && v.c == 1 && v.h == 4 &&
                             v.augment == 0 && d.augment == 1;
    for (int i = 0; good && i < 70; i++)
        seen[d.x[i * 16]]++, good = d.y[i] == d.x[i * 16 + 1];
    for (int i = 0; good && i < 30; i++)
        seen[v.x[i * 16]]++, good = v.y[i] == v.x[i * 16 + 1];
    for (int i = 0; good && i < 100; i++)
        good = seen[i] == 1;
    ok(good, "split: 70 train + 30 val, every example once, labels travel with images");
    ok(rc == PB_OK && !memcmp(d.x, d2.x, 70 * 16) && !memcmp(v.x, v2.x, 30 * 16),
       "split: same seed, same split");
    int moved = 0;
    for (int i = 0; i < 70; i++)
        moved += d.x[i * 16] != i;
    ok(moved > 0, "split: examples are shuffled, not just cut off the end");
    ok(pb_data_split(&d, &v2, 70, 1, err, sizeof err) == PB_EUSAGE, "split: nval >= n refused");
    pb_data_free(&d2);
    pb_data_free(&v2);

    int idx[4] = {3, 3, 0, 29};
    rc = pb_data_subset(&v, idx, 4, &s, err, sizeof err);
    good = rc == PB_OK && s.n == 4 && s.c == 1 && s.h == 4 && s.w == 4 &&
           !memcmp(s.x, v.x + 3 * 16, 16) && !memcmp(s.x + 16, v.x + 3 * 16, 16) &&
           !memcmp(s.x + 32, v.x, 16) && !memcmp(s.x + 48, v.x + 29 * 16, 16) && s.y[3] == v.y[29];
    ok(good, "subset copies the chosen examples (repeats allowed)");
    pb_data_free(&s);
    idx[1] = 30;
    rc = pb_data_subset(&v, idx, 4, &s, err, sizeof err);
    ok(rc == PB_EUSAGE && has(err, "30"), "subset index out of range refused");
    pb_data_free(&d);
    pb_data_free(&v);
}

static void t_batch(void)
{
    char err[PB_ERRLEN] = "";
    pb_dataset d;
    pb_data_synthetic(&d, 4, 3, 6, 5, 2, 9, err, sizeof err);
    d.mean[0] = 0.5f, d.std[0] = 0.25f;
    d.mean[1] = 0.1f, d.std[1] = 2.0f;
    d.mean[2] = 0.0f, d.std[2] = 1.0f;
    for (int j = 0; j < 90; j++)
        d.x[2 * 90 + j] = (uint8_t)(j * 2);
    d.x[2 * 90 + 0] = 0, d.x[2 * 90 + 1] = 255, d.x[2 * 90 + 30] = 51, d.x[2 * 90 + 60] = 255;
    float x[2 * 90];
    int y[2], idx[2] = {2, 0};
    pb_data_batch(&d, idx, 2, NULL, x, y);
    int good = y[0] == d.y[2] && y[1] == d.y[0] && fabsf(x[0] - (-2.0f)) < 1e-6f &&
               fabsf(x[1] - 2.0f) < 1e-6f && fabsf(x[30] - (0.2f - 0.1f) / 2.0f) < 1e-6f &&
               fabsf(x[60] - 1.0f) < 1e-6f;
    for (int j = 0; j < 90; j++)
        good &= fabsf(x[90 + j] - ((float)d.x[j] / 255.0f - d.mean[j / 30]) / d.std[j / 30]) < 1e-5f;
    ok(good, "batch: (byte/255 - mean[c]) / std[c] per channel, labels copied");
    pb_data_free(&d);
}

/* Does out (c x h x w floats) equal src cropped at (oy, ox) from a 4-padded image, then mirrored? */
static int matches(const float *out, const float *plain, int c, int h, int w, const float *pad,
                   int oy, int ox, int flip)
{
    for (int ch = 0; ch < c; ch++)
        for (int yy = 0; yy < h; yy++)
            for (int xx = 0; xx < w; xx++) {
                int sy = yy + oy, sx = (flip ? w - 1 - xx : xx) + ox;
                float want = (sy < 0 || sy >= h || sx < 0 || sx >= w)
                                 ? pad[ch]
                                 : plain[(size_t)ch * h * w + (size_t)sy * w + sx];
                if (out[(size_t)ch * h * w + (size_t)yy * w + xx] != want)
                    return 0;
            }
    return 1;
}

static void t_augment(void)
{
    char err[PB_ERRLEN] = "";
    pb_dataset d;
    pb_data_synthetic(&d, 2, 3, 32, 32, 2, 3, err, sizeof err);
    /* Distinct values everywhere except 0, so a match pins down offset and flip. */
    for (int j = 0; j < 3072; j++)
        d.x[j] = (uint8_t)(1 + (j * 37 % 255));
    d.augment = 1;
    enum { B = 400 };
    float *x = malloc(sizeof(float) * B * 3072), plain[3072];
    int *idx = calloc(B, sizeof(int)), *y = malloc(sizeof(int) * B), y0;
    pb_data_batch(&d, idx, 1, NULL, plain, &y0);
    pb_rng r;
    pb_rng_seed(&r, 11);
    pb_data_batch(&d, idx, B, &r, x, y);
    float pad[3];
    for (int ch = 0; ch < 3; ch++)
        pad[ch] = (0.0f - d.mean[ch]) / d.std[ch];
    int all = 1, flips = 0, mirrored = 0, shifted = 0;
    for (int i = 0; i < B; i++) {
        int found = 0;
        for (int oy = -4; oy <= 4 && !found; oy++)
            for (int ox = -4; ox <= 4 && !found; ox++)
                for (int fl = 0; fl < 2 && !found; fl++)
                    if (matches(x + (size_t)i * 3072, plain, 3, 32, 32, pad, oy, ox, fl)) {
                        found = 1;
                        flips += fl;
                        shifted += oy || ox;
                        if (fl && !oy && !ox) {
                            /* row 5 of channel 1 must be the reverse of the plain row */
                            const float *o = x + (size_t)i * 3072 + 1024 + 5 * 32;
                            const float *p = plain + 1024 + 5 * 32;
                            int rev = 1;
                            for (int k = 0; k < 32; k++)
                                rev &= o[k] == p[31 - k];
                            mirrored += rev;
                        }
                    }
        all &= found;
    }
    ok(all, "augment: every output is a zero-padded (pad 4) 32x32 crop, maybe mirrored");
    ok(flips > B / 4 && flips < 3 * B / 4 && shifted > B / 2 && mirrored > 0,
       "augment: about half flipped (%d/%d), mostly shifted (%d), unshifted flips mirror rows (%d)",
       flips, B, shifted, mirrored);
    pb_rng_seed(&r, 11);
    float *x2 = malloc(sizeof(float) * B * 3072);
    pb_data_batch(&d, idx, B, &r, x2, y);
    ok(!memcmp(x, x2, sizeof(float) * B * 3072), "augment: same rng seed, same batch");
    pb_data_batch(&d, idx, 1, NULL, x2, y);
    ok(!memcmp(x2, plain, sizeof plain), "augment: rng NULL leaves images unchanged");
    free(x);
    free(x2);
    free(idx);
    free(y);
    pb_data_free(&d);
}

static void t_real(void)
{
    struct stat st;
    if (stat(REAL_DIR, &st) != 0) {
        printf("ok %d # SKIP no dataset\n", ++ntest);
        printf("ok %d # SKIP no dataset\n", ++ntest);
        return;
    }
    char err[PB_ERRLEN] = "";
    pb_dataset tr, te;
    double t0 = pb_now();
    int rc = pb_data_load("fashion-mnist", REAL_DIR, PB_SPLIT_TRAIN, &tr, err, sizeof err);
    double dt = pb_now() - t0;
    if (rc)
        diag("fashion-mnist", err);
    int cnt[10] = {0};
    for (int i = 0; rc == PB_OK && i < tr.n; i++)
        cnt[tr.y[i]]++;
    ok(rc == PB_OK && tr.n == 60000 && tr.c == 1 && tr.h == 28 && tr.w == 28 && cnt[0] == 6000 &&
           cnt[9] == 6000,
       "real Fashion-MNIST train: 60000 of 1x28x28, 6000 per class (%.2f s)", dt);
    rc = pb_data_load("fashion-mnist", NULL, PB_SPLIT_TEST, &te, err, sizeof err);
    ok(rc == PB_OK && te.n == 10000, "real Fashion-MNIST test via the default dir: 10000");
    pb_data_free(&tr);
    pb_data_free(&te);
}

/* pb_buf, the growable buffer the text loader and the results store read into */
static void t_buf(void)
{
    pb_buf b = {0};
    int rc = PB_OK;
    char chunk[300];
    for (int i = 0; i < 300; i++)
        chunk[i] = (char)(i % 7 == 0 ? 0 : 'a' + i % 26);
    for (int k = 0; k < 20 && rc == PB_OK; k++)
        rc = pb_buf_add(&b, chunk, sizeof chunk);
    int same = rc == PB_OK && b.n == 6000 && b.cap > b.n;
    for (size_t i = 0; same && i < b.n; i++)
        same = b.p[i] == chunk[i % 300];
    ok(same && b.p[b.n] == '\0', "pb_buf_add appends bytes (NULs included) across growths and keeps a NUL after them");
    size_t n = b.n, cap = b.cap;
    rc = pb_buf_add(&b, "", 0);
    ok(rc == PB_OK && b.n == n && b.cap == cap && pb_buf_add(&b, chunk, SIZE_MAX) == PB_ENOMEM && b.n == n,
       "an empty append changes nothing; one that cannot fit is refused and leaves the buffer whole");
    free(b.p);
}

int main(void)
{
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/t_data.XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror(tmpdir);
        return 1;
    }
    printf("1..%d\n", PLAN);
    t_names();
    t_idx_valid();
    t_idx_errors();
    t_cifar();
    t_synthetic();
    t_split_subset();
    t_batch();
    t_augment();
    t_real();
    t_buf();
    nftw(tmpdir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    if (ntest != PLAN) {
        printf("# planned %d tests, ran %d\n", PLAN, ntest);
        return 1;
    }
    return nfail ? 1 : 0;
}
