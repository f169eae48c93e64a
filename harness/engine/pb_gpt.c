/* pb_gpt: builds the transformer language model from its spec. */
#include "pb_gpt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int pb_gpt_is(const char *name) { return name && !strncmp(name, "gpt", 3) && (name[3] == 0 || name[3] == ':'); }

int pb_gpt_parse(const char *spec, pb_gpt_cfg *cfg, char *err, size_t errlen)
{
    *cfg = (pb_gpt_cfg){.layers = 2, .dim = 128, .heads = 4, .ctx = 64, .ff = 0};
    if (!pb_gpt_is(spec))
        return pb_err(err, errlen, PB_EUSAGE, "'%s' is not a gpt spec", spec ? spec : "(null)");
    const char *p = spec[3] == ':' ? spec + 4 : "";
    while (*p) {
        size_t len = strcspn(p, ",");
        char word[64];
        if (len == 0 || len >= sizeof word)
            return pb_err(err, errlen, PB_EUSAGE, "%s: empty or overlong option", spec);
        memcpy(word, p, len);
        word[len] = 0;
        p += len + (p[len] == ',');
        char *eq = strchr(word, '='), *end;
        if (!eq)
            return pb_err(err, errlen, PB_EUSAGE, "%s: option '%s' is not key=value", spec, word);
        *eq = 0;
        long v = strtol(eq + 1, &end, 10);
        int *dst = !strcmp(word, "layers") ? &cfg->layers : !strcmp(word, "dim") ? &cfg->dim
                 : !strcmp(word, "heads") ? &cfg->heads : !strcmp(word, "ctx") ? &cfg->ctx
                 : !strcmp(word, "ff") ? &cfg->ff : NULL;
        if (!dst)
            return pb_err(err, errlen, PB_EUSAGE, "%s: unknown option '%s' (valid: layers, dim, heads, ctx, ff)",
                          spec, word);
        if (*end || end == eq + 1 || v < 1 || v > 65536)
            return pb_err(err, errlen, PB_EUSAGE, "%s: %s=%s is not an integer in [1, 65536]", spec, word, eq + 1);
        *dst = (int)v;
    }
    if (!cfg->ff)
        cfg->ff = 4 * cfg->dim;
    if (cfg->dim % cfg->heads)
        return pb_err(err, errlen, PB_EUSAGE, "%s: %d heads do not divide the width dim=%d", spec, cfg->heads,
                      cfg->dim);
    if (cfg->layers > 30)
        return pb_err(err, errlen, PB_EUSAGE, "%s: at most 30 layers (the engine holds %d layers)", spec,
                      PB_MAX_LAYERS);
    return PB_OK;
}

/* a layer of kind `kind` reading from `in` */
static int add(pb_model *m, pb_layer_kind kind, const char *name, int in, int oc, char *err, size_t errlen)
{
    pb_layer l;
    memset(&l, 0, sizeof l);
    l.kind = kind;
    l.in = in;
    l.in2 = -1;
    l.oc = oc;
    l.has_bias = kind == PB_LINEAR;
    l.bn_eps = 1e-5f;
    if (name)
        snprintf(l.name, sizeof l.name, "%s", name);
    return pb_model_append(m, &l, err, errlen);
}

#define TRY(expr)                 \
    do {                          \
        if ((expr) < 0)           \
            return PB_EUSAGE;     \
    } while (0)

int pb_gpt_build(pb_model *m, const char *spec, int ic, int ih, int iw, int ncls, char *err, size_t errlen)
{
    pb_gpt_cfg g;
    pb_model_init(m, "gpt", ic, ih, iw, ncls); /* a refused spec still leaves a model to free */
    int rc = pb_gpt_parse(spec, &g, err, errlen);
    if (rc != PB_OK)
        return rc;
    char arch[64];
    snprintf(arch, sizeof arch, "gpt:layers=%d,dim=%d,heads=%d,ctx=%d,ff=%d", g.layers, g.dim, g.heads, g.ctx,
             g.ff);
    pb_model_init(m, arch, ic, ih, iw, ncls);
    if (ic != 1 || iw != 1)
        return pb_err(err, errlen, PB_EUSAGE, "gpt: its input is a sequence of token ids (1 x T x 1), not %dx%dx%d",
                      ic, ih, iw);
    if (ih > g.ctx)
        return pb_err(err, errlen, PB_EUSAGE, "gpt: the data's context of %d tokens is longer than the model's "
                      "(ctx=%d)", ih, g.ctx);
    pb_layer e;
    memset(&e, 0, sizeof e);
    e.kind = PB_EMBED;
    e.in = e.in2 = -1;
    e.oc = g.dim;
    e.k = ncls;
    e.stride = g.ctx;
    snprintf(e.name, sizeof e.name, "embed");
    int emb = pb_model_append(m, &e, err, errlen), x = emb;
    TRY(emb);
    char nm[32];
    for (int b = 0; b < g.layers; b++) {
        int h;
        snprintf(nm, sizeof nm, "b%d.ln1", b);
        TRY(h = add(m, PB_LAYERNORM, nm, x, 0, err, errlen));
        snprintf(nm, sizeof nm, "b%d.qkv", b);
        TRY(h = add(m, PB_LINEAR, nm, h, 3 * g.dim, err, errlen));
        snprintf(nm, sizeof nm, "b%d.attn", b);
        pb_layer a;
        memset(&a, 0, sizeof a);
        a.kind = PB_ATTN;
        a.in = h;
        a.in2 = -1;
        a.k = g.dim / g.heads;
        snprintf(a.name, sizeof a.name, "%s", nm);
        TRY(h = pb_model_append(m, &a, err, errlen));
        snprintf(nm, sizeof nm, "b%d.proj", b);
        TRY(h = add(m, PB_LINEAR, nm, h, g.dim, err, errlen));
        TRY(x = pb_model_add(m, x, h, err, errlen));
        snprintf(nm, sizeof nm, "b%d.ln2", b);
        TRY(h = add(m, PB_LAYERNORM, nm, x, 0, err, errlen));
        snprintf(nm, sizeof nm, "b%d.fc1", b);
        TRY(h = add(m, PB_LINEAR, nm, h, g.ff, err, errlen));
        snprintf(nm, sizeof nm, "b%d.gelu", b);
        TRY(h = add(m, PB_GELU, nm, h, 0, err, errlen));
        snprintf(nm, sizeof nm, "b%d.fc2", b);
        TRY(h = add(m, PB_LINEAR, nm, h, g.dim, err, errlen));
        TRY(x = pb_model_add(m, x, h, err, errlen));
    }
    int f;
    TRY(f = add(m, PB_LAYERNORM, "ln_f", x, 0, err, errlen));
    pb_layer o;
    memset(&o, 0, sizeof o);
    o.kind = PB_TIEDOUT;
    o.in = f;
    o.in2 = emb;
    o.oc = ncls;
    snprintf(o.name, sizeof o.name, "head");
    TRY(pb_model_append(m, &o, err, errlen));
    return PB_OK;
}
