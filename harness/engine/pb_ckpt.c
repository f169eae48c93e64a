#include "pb_ckpt.h"
#include "pb_file.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

static const char MAGIC[8] = {'P', 'B', 'C', 'K', 'P', 'T', '\r', '\n'};

typedef struct wbuf { unsigned char *p; size_t n, cap; int oom; } wbuf;

static void put(wbuf *b, const void *data, size_t n)
{
    if (b->oom)
        return;
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + n)
            cap *= 2;
        unsigned char *q = realloc(b->p, cap);
        if (!q) {
            b->oom = 1;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->n, data, n);
    b->n += n;
}

static void put_u32(wbuf *b, uint32_t v) { put(b, &v, 4); }
static void put_f32(wbuf *b, float v) { put(b, &v, 4); }

int pb_ckpt_save(const pb_model *m, const char *path, char *err, size_t errlen)
{
    wbuf b = {0};
    char name[64];
    int shared = 0;
    for (int i = 0; i < m->nparams; i++)
        shared |= pb_model_is_generated(m, i);
    put(&b, MAGIC, 8);
    put_u32(&b, shared ? PB_CKPT_VERSION_SHARED : PB_CKPT_VERSION);
    uint32_t hdr[6] = {(uint32_t)m->ic, (uint32_t)m->ih, (uint32_t)m->iw, (uint32_t)m->ncls,
                       (uint32_t)m->nlayers, (uint32_t)m->nparams};
    put(&b, hdr, sizeof hdr);
    memset(name, 0, sizeof name);
    snprintf(name, 64, "%s", m->arch);
    put(&b, name, 64);
    for (int i = 0; i < m->nlayers; i++) {
        const pb_layer *l = &m->layers[i];
        put_u32(&b, (uint32_t)l->kind);
        memset(name, 0, sizeof name);
        snprintf(name, 32, "%s", l->name);
        put(&b, name, 32);
        int32_t v[7] = {l->in, l->in2, l->oc, l->k, l->stride, l->pad, l->has_bias};
        put(&b, v, sizeof v);
        put_f32(&b, l->p);
        put_f32(&b, l->bn_eps);
        put_f32(&b, l->bn_momentum);
    }
    for (int i = 0; i < m->nparams; i++) {
        const pb_param *p = m->params[i];
        memset(name, 0, sizeof name);
        snprintf(name, 48, "%s", p->name);
        put(&b, name, 48);
        uint64_t n = p->n;
        put(&b, &n, 8);
        /* generated weights are made from the shared arrays, which are stored */
        const int gen = pb_model_is_generated(m, i);
        unsigned char flags[2] = {(unsigned char)(gen ? PB_CKPT_GENERATED : p->mask != NULL), (unsigned char)p->trainable};
        put(&b, flags, 2);
        if (gen)
            continue;
        put(&b, p->w, p->n * sizeof(float));
        if (p->mask)
            put(&b, p->mask, p->n * sizeof(float));
    }
    for (int i = 0; i < m->nlayers; i++)
        if (m->layers[i].kind == PB_BN) {
            put(&b, m->layers[i].run_mean, (size_t)m->layers[i].oc * sizeof(float));
            put(&b, m->layers[i].run_var, (size_t)m->layers[i].oc * sizeof(float));
        }
    put_u32(&b, (uint32_t)crc32(0L, b.p, (uInt)b.n));
    if (b.oom) {
        free(b.p);
        return pb_err(err, errlen, PB_ENOMEM, "%s: out of memory while writing", path);
    }
    /* refuses a target that is not a regular file; reports every write error */
    int rc = pb_file_write_atomic(path, b.p, b.n, err, errlen);
    free(b.p);
    return rc;
}

typedef struct rbuf { const unsigned char *p; size_t n, off; int short_read; } rbuf;

static const void *get(rbuf *r, size_t n)
{
    /* n > r->n - r->off, not r->off + n > r->n, which wraps for a forged n */
    if (r->short_read || r->off > r->n || n > r->n - r->off) {
        r->short_read = 1;
        return NULL;
    }
    const void *q = r->p + r->off;
    r->off += n;
    return q;
}

static int get_u32(rbuf *r, uint32_t *v)
{
    const void *q = get(r, 4);
    if (q)
        memcpy(v, q, 4);
    return q != NULL;
}

/* Limits of what a checkpoint may describe, checked before anything is
 * allocated or multiplied. Stored tensors are bounded by the file itself;
 * these bound what is not stored: shapes, activations, generated weights. */
#define HDR_BYTES (8 + 4 + 24 + 64)
#define LAYER_BYTES (4 + 32 + 7 * 4 + 3 * 4)
#define PARAM_HEAD_BYTES (48 + 8 + 2)
#define MAX_DIM (1 << 24)                /* any count, size or hyper-parameter */
#define MAX_ACT ((size_t)1 << 25)        /* activation values per example, all layers */
#define MAX_GENERATED ((size_t)1 << 26)  /* values of generated (not stored) weights */

static int dim_ok(int32_t v, int lo) { return v >= lo && v <= MAX_DIM; }

/* Walks the parameter records without allocating: every size must fit in
 * what is left of the file. Returns the values the parameters take in all
 * (stored plus generated), or 0 if the records are malformed. */
static size_t scan_params(rbuf r, uint32_t nparams, uint32_t version, const char **why)
{
    size_t total = 0, generated = 0;
    for (uint32_t i = 0; i < nparams; i++) {
        const void *np;
        const unsigned char *flags;
        uint64_t n;
        if (!get(&r, 48) || !(np = get(&r, 8)) || !(flags = get(&r, 2)))
            return *why = "a parameter record is cut short", 0;
        memcpy(&n, np, 8);
        if (n == 0 || n > INT_MAX)
            return *why = "a parameter's size is out of range", 0;
        if (flags[0] > PB_CKPT_GENERATED || flags[1] > 1)
            return *why = "a parameter's flags are out of range", 0;
        if (flags[0] == PB_CKPT_GENERATED) {
            if (version != PB_CKPT_VERSION_SHARED)
                return *why = "a version-1 checkpoint marks a weight as generated", 0;
            if ((generated += n) > MAX_GENERATED)
                return *why = "generated weights larger than this program handles", 0;
        } else {
            size_t copies = flags[0] ? 2 : 1;
            if (n > (r.n - r.off) / sizeof(float) / copies || !get(&r, (size_t)n * sizeof(float) * copies))
                return *why = "a parameter's values run past the end of the file", 0;
        }
        total += (size_t)n;
    }
    return total;
}

/* The activation values one example of layer l needs (output, and the
 * attention probabilities of an ATTN layer). */
static size_t act_of(const pb_layer *l)
{
    size_t a = pb_layer_osize(l);
    if (l->kind == PB_ATTN && l->k > 0) {
        size_t T = (size_t)l->ih, heads = (size_t)(l->oc / l->k);
        if (T > MAX_DIM / 8 || heads * T > MAX_ACT || heads * T * T > MAX_ACT)
            return MAX_ACT + 1;
        a += 2 * heads * T * T;
    }
    return a;
}

static int parse(pb_model *m, const unsigned char *buf, size_t sz, const char *path, int max_batch,
                 int allow_generated, char *err, size_t errlen)
{
    int rc = PB_EIO;
    const char *why = "sections do not match the header";
    memset(m, 0, sizeof *m);
    if (sz < HDR_BYTES + 4)
        return pb_err(err, errlen, PB_EIO, "%s: not a prunebench checkpoint (only %zu bytes)", path, sz);
    if (memcmp(buf, MAGIC, 8) != 0)
        return pb_err(err, errlen, PB_EIO, "%s: not a prunebench checkpoint (bad magic)", path);
    uint32_t version;
    memcpy(&version, buf + 8, 4);
    if (version != PB_CKPT_VERSION && version != PB_CKPT_VERSION_SHARED)
        return pb_err(err, errlen, PB_EIO, "%s: checkpoint version %u, this prunebench reads versions %d and %d",
                      path, version, PB_CKPT_VERSION, PB_CKPT_VERSION_SHARED);
    uint32_t stored;
    memcpy(&stored, buf + sz - 4, 4);
    uint32_t crc = (uint32_t)crc32_z(0L, buf, sz - 4);
    if (crc != stored)
        return pb_err(err, errlen, PB_EIO,
                      "%s: checksum mismatch (stored %08x, computed %08x): the file is corrupt or truncated",
                      path, stored, crc);
    rbuf r = {buf, sz - 4, 12, 0};
    uint32_t hdr[6];
    for (int i = 0; i < 6; i++)
        get_u32(&r, &hdr[i]);
    const char *arch = get(&r, 64);
    if (r.short_read)
        goto corrupt;
    for (int i = 0; i < 4; i++)
        if (!dim_ok((int32_t)hdr[i], 1) || hdr[i] > MAX_DIM) {
            why = "the input shape or class count is out of range";
            goto corrupt;
        }
    if ((size_t)hdr[0] * hdr[1] * hdr[2] > MAX_ACT) {
        why = "the input is larger than this program handles";
        goto corrupt;
    }
    if (hdr[4] < 1 || hdr[4] > PB_MAX_LAYERS || hdr[5] > PB_MAX_PARAMS) {
        why = "the layer or parameter count is out of range";
        goto corrupt;
    }
    /* The parameter records follow the fixed-size layer records: size them
     * all before the model allocates anything. */
    rbuf pr = r;
    if (hdr[4] > (pr.n - pr.off) / LAYER_BYTES) {
        why = "the layer records run past the end of the file";
        goto corrupt;
    }
    pr.off += (size_t)hdr[4] * LAYER_BYTES;
    size_t room = scan_params(pr, hdr[5], version, &why);
    if (hdr[5] && !room)
        goto corrupt;
    char archs[65];
    memcpy(archs, arch, 64);
    archs[64] = 0;
    pb_model_init(m, archs, (int)hdr[0], (int)hdr[1], (int)hdr[2], (int)hdr[3]);
    m->param_capped = 1;
    m->param_room = room;
    size_t act = (size_t)hdr[0] * hdr[1] * hdr[2];
    for (uint32_t i = 0; i < hdr[4]; i++) {
        pb_layer l;
        memset(&l, 0, sizeof l);
        uint32_t kind = 0;
        get_u32(&r, &kind);
        const char *nm = get(&r, 32);
        const void *v = get(&r, 7 * 4);
        const void *fl = get(&r, 12);
        if (r.short_read)
            goto corrupt;
        if (kind >= PB_LAYER_KINDS) {
            why = "a layer's kind is unknown";
            goto corrupt;
        }
        l.kind = (pb_layer_kind)kind;
        memcpy(l.name, nm, 31);
        int32_t iv[7];
        memcpy(iv, v, sizeof iv);
        float fv[3];
        memcpy(fv, fl, sizeof fv);
        /* Hyper-parameters reach shape arithmetic (ih + 2 * pad, 3 * heads)
         * inside pb_model_append: bound them first. */
        if (iv[0] < -1 || iv[0] >= (int32_t)i || iv[1] < -1 || iv[1] >= (int32_t)i || !dim_ok(iv[2], 0) ||
            !dim_ok(iv[3], 0) || !dim_ok(iv[4], 0) || !dim_ok(iv[5], 0) || iv[6] < 0 || iv[6] > 1 ||
            !isfinite(fv[0]) || !isfinite(fv[1]) || !isfinite(fv[2])) {
            pb_err(err, errlen, PB_EIO, "%s: layer %u has out-of-range fields (inputs %d,%d; oc %d, k %d, "
                   "stride %d, pad %d, bias %d)", path, i, iv[0], iv[1], iv[2], iv[3], iv[4], iv[5], iv[6]);
            goto fail;
        }
        l.in = iv[0];
        l.in2 = iv[1];
        l.oc = iv[2];
        l.k = iv[3];
        l.stride = iv[4];
        l.pad = iv[5];
        l.has_bias = iv[6];
        l.p = fv[0];
        l.bn_eps = fv[1];
        l.bn_momentum = fv[2];
        if (pb_model_append(m, &l, err, errlen) < 0) {
            char inner[PB_ERRLEN];
            snprintf(inner, sizeof inner, "%s", err ? err : "");
            pb_err(err, errlen, PB_EIO, "%s: invalid model description: %s", path, inner);
            goto fail;
        }
        const pb_layer *a = &m->layers[m->nlayers - 1];
        if (a->oc > MAX_DIM || a->oh > MAX_DIM || a->ow > MAX_DIM || (act += act_of(a)) > MAX_ACT) {
            pb_err(err, errlen, PB_EIO, "%s: layer %u (%s) makes the activations larger than this program "
                   "handles (%zu values per example, limit %zu)", path, i, a->name, act, MAX_ACT);
            goto fail;
        }
    }
    for (uint32_t i = 0; i < hdr[5]; i++) {
        const char *nm = get(&r, 48);
        const void *np = get(&r, 8);
        const unsigned char *flags = get(&r, 2);
        if (r.short_read)
            goto corrupt;
        char pname[49];
        memcpy(pname, nm, 48);
        pname[48] = 0;
        uint64_t n;
        memcpy(&n, np, 8); /* 1..INT_MAX, as scan_params checked */
        pb_param *p = (int)i < m->nparams ? m->params[i] : NULL;
        if (!p && !(p = pb_model_extra_param(m, pname, (size_t)n, err, errlen))) {
            char inner[PB_ERRLEN];
            snprintf(inner, sizeof inner, "%s", err ? err : "");
            pb_err(err, errlen, PB_EIO, "%s: parameter %u: %s", path, i, inner);
            goto fail;
        }
        if (strcmp(p->name, pname) != 0 || p->n != n) {
            pb_err(err, errlen, PB_EIO, "%s: parameter %u is %s[%llu] but the model needs %s[%zu]",
                   path, i, pname, (unsigned long long)n, p->name, p->n);
            goto fail;
        }
        p->trainable = flags[1];
        if (flags[0] == PB_CKPT_GENERATED) {
            if (!allow_generated) {
                rc = pb_err(err, errlen, PB_EUSAGE,
                       "%s: %s is generated from a shared array by a parameter-sharing method; the checkpoint "
                       "holds the arrays only, so load it into a model with that method bound (a `load` stage)",
                       path, pname);
                goto fail;
            }
            p->generated = 1;
            continue;
        }
        const void *w = get(&r, p->n * sizeof(float));
        if (r.short_read)
            goto corrupt;
        memcpy(p->w, w, p->n * sizeof(float));
        if (flags[0]) {
            const void *mk = get(&r, p->n * sizeof(float));
            if (r.short_read)
                goto corrupt;
            if (!p->mask && !(p->mask = pb_alloc(p->n * sizeof(float)))) {
                pb_err(err, errlen, PB_ENOMEM, "%s: out of memory", path);
                goto fail;
            }
            memcpy(p->mask, mk, p->n * sizeof(float));
        }
    }
    if (m->nparams != (int)hdr[5]) {
        pb_err(err, errlen, PB_EIO, "%s: the layers have %d parameters but the file stores %u", path,
               m->nparams, hdr[5]);
        goto fail;
    }
    for (int i = 0; i < m->nlayers; i++)
        if (m->layers[i].kind == PB_BN) {
            size_t nb = (size_t)m->layers[i].oc * sizeof(float);
            const void *a = get(&r, nb), *b = get(&r, nb);
            if (r.short_read)
                goto corrupt;
            memcpy(m->layers[i].run_mean, a, nb);
            memcpy(m->layers[i].run_var, b, nb);
        }
    if (r.off != r.n)
        goto corrupt;
    m->param_capped = 0; /* the model is the caller's now, to grow as it likes */
    m->param_room = 0;
    if ((rc = pb_model_finalize(m, max_batch, err, errlen)) != PB_OK) {
        char inner[PB_ERRLEN];
        snprintf(inner, sizeof inner, "%s", err ? err : "");
        pb_err(err, errlen, rc, "%s: %s", path, inner);
        goto fail;
    }
    return PB_OK;
corrupt:
    pb_err(err, errlen, PB_EIO, "%s: corrupt checkpoint (%s)", path, why);
fail:
    rc = rc == PB_OK ? PB_EIO : rc;
    pb_model_free(m);
    return rc;
}

static int load(pb_model *m, const char *path, int max_batch, int allow_generated, char *err, size_t errlen)
{
    memset(m, 0, sizeof *m);
    FILE *f = fopen(path, "rb");
    if (!f)
        return pb_err(err, errlen, PB_EIO, "%s: cannot open: %s", path, strerror(errno));
    long sz = -1;
    if (fseek(f, 0, SEEK_END) == 0)
        sz = ftell(f);
    if (sz < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return pb_err(err, errlen, PB_EIO, "%s: not a regular file (cannot find its size)", path);
    }
    if ((size_t)sz < HDR_BYTES + 4) {
        fclose(f);
        return pb_err(err, errlen, PB_EIO, "%s: not a prunebench checkpoint (only %ld bytes)", path, sz);
    }
    unsigned char *buf = malloc((size_t)sz);
    if (!buf || fread(buf, 1, (size_t)sz, f) != (size_t)sz) {
        fclose(f);
        free(buf);
        return pb_err(err, errlen, PB_EIO, "%s: read error", path);
    }
    fclose(f);
    int rc = parse(m, buf, (size_t)sz, path, max_batch, allow_generated, err, errlen);
    free(buf);
    return rc;
}

int pb_ckpt_load_mem(pb_model *m, const void *data, size_t len, const char *name, int max_batch,
                     int allow_generated, char *err, size_t errlen)
{
    return parse(m, data, len, name, max_batch, allow_generated, err, errlen);
}

int pb_ckpt_load(pb_model *m, const char *path, int max_batch, char *err, size_t errlen)
{
    return load(m, path, max_batch, 0, err, errlen);
}

int pb_ckpt_restore(pb_model *m, const char *path, char *err, size_t errlen)
{
    pb_model src;
    int rc = load(&src, path, 1, 1, err, errlen);
    if (rc != PB_OK)
        return rc;
    if (src.nparams != m->nparams || src.nlayers != m->nlayers) {
        rc = pb_err(err, errlen, PB_EIO, "%s does not match the model's architecture", path);
        goto out;
    }
    for (int i = 0; i < m->nparams; i++) {
        const pb_param *a = src.params[i];
        pb_param *p = m->params[i];
        if (a->n != p->n || strcmp(a->name, p->name)) {
            rc = pb_err(err, errlen, PB_EIO, "%s: parameter %d is %s[%zu], the model's %s[%zu]", path, i, a->name,
                        a->n, p->name, p->n);
            goto out;
        }
        if (a->generated != pb_model_is_generated(m, i)) {
            rc = pb_err(err, errlen, PB_EUSAGE, "%s: %s is %s in the checkpoint but %s in the model", path, a->name,
                        a->generated ? "generated from a shared array" : "stored",
                        a->generated ? "stored" : "generated from a shared array");
            goto out;
        }
        if (a->generated)
            continue;
        memcpy(p->w, a->w, p->n * sizeof(float));
        if (a->mask && p->mask)
            memcpy(p->mask, a->mask, p->n * sizeof(float));
    }
    for (int i = 0; i < m->nlayers; i++)
        if (m->layers[i].kind == PB_BN) {
            memcpy(m->layers[i].run_mean, src.layers[i].run_mean, (size_t)m->layers[i].oc * sizeof(float));
            memcpy(m->layers[i].run_var, src.layers[i].run_var, (size_t)m->layers[i].oc * sizeof(float));
        }
    pb_model_arrays_changed(m); /* generated weights follow the loaded arrays */
    rc = PB_OK;
out:
    pb_model_free(&src);
    return rc;
}
