/* t_lm: the language-model pieces. The new layer kinds' backward against
 * central finite differences, causal masking, the uniform model's perplexity,
 * the text data's seeded and disjoint document split and its topic subsets,
 * the gpt builder's errors, bit-identical reruns, and the Hessian-vector
 * product's refusal. Tests that read the installed fortunes corpus are
 * skipped when it is absent. Prints TAP. */
#include "engine/pb_gpt.h"
#include "engine/pb_hvp.h"
#include "engine/pb_layer.h"
#include "engine/pb_model.h"
#include "engine/pb_par.h"
#include "engine/pb_text.h"
#include "engine/pb_train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tap.h"

static pb_rng g_rng;

static void skip(const char *why, const char *what)
{
    printf("ok %d - %s # SKIP %s\n", ++tap_n, what, why);
}

static float *falloc(size_t n)
{
    float *p = pb_alloc(n * sizeof(float));
    if (!p)
        abort();
    return p;
}

static void newp(pb_param *p, const char *name, size_t n, float mean, float scale)
{
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    p->ndim = 1;
    p->shape[0] = (int)n;
    p->n = n;
    p->w = falloc(n);
    p->g = falloc(n);
    for (size_t i = 0; i < n; i++)
        p->w[i] = mean + scale * pb_rng_normal(&g_rng);
    p->trainable = 1;
}

static pb_layer mk(pb_layer_kind kind, int ic, int T)
{
    pb_layer l;
    memset(&l, 0, sizeof l);
    l.kind = kind;
    snprintf(l.name, sizeof l.name, "%s1", pb_layer_kind_names[kind]);
    l.in = l.in2 = -1;
    l.ic = ic;
    l.ih = T;
    l.iw = 1;
    l.bn_eps = 1e-5f;
    return l;
}

/* loss = sum(out * R) in double */
static double loss_of(pb_layer *l, const float *x, int B, const float *R)
{
    pb_layer_forward(l, x, NULL, B, 1, NULL);
    double s = 0;
    for (size_t i = 0; i < (size_t)B * pb_layer_osize(l); i++)
        s += (double)l->out[i] * R[i];
    return s;
}

/* Largest relative error of an analytic gradient g against central differences
 * of `v` (n values), relative to the tensor's largest gradient. */
static double fd_err(pb_layer *l, float *x, int B, const float *R, float *v, const float *g, size_t n, float eps)
{
    double worst = 0, gmax = 1e-6;
    for (size_t i = 0; i < n; i++)
        gmax = fabs(g[i]) > gmax ? fabs(g[i]) : gmax;
    for (size_t i = 0; i < n; i++) {
        float keep = v[i];
        v[i] = keep + eps;
        double lp = loss_of(l, x, B, R);
        v[i] = keep - eps;
        double lm = loss_of(l, x, B, R);
        v[i] = keep;
        double fd = (lp - lm) / (2.0 * eps), e = fabs(fd - g[i]) / (gmax + fabs(fd));
        worst = e > worst ? e : worst;
    }
    return worst;
}

/* One layer's gradient check: dx (unless ids) and every parameter. */
static void gradcheck(const char *what, pb_layer l, pb_param *w, pb_param *b, int B, int ids, float eps)
{
    char err[PB_ERRLEN];
    if (pb_layer_infer_shape(&l, err, sizeof err) != PB_OK || (l.w = w, l.b = b, 0) ||
        pb_layer_alloc(&l, B, err, sizeof err) != PB_OK) {
        ok(0, "%s: setup: %s", what, err);
        return;
    }
    const size_t nin = (size_t)B * pb_layer_isize(&l), nout = (size_t)B * pb_layer_osize(&l);
    float *x = falloc(nin), *dx = falloc(nin), *R = falloc(nout);
    for (size_t i = 0; i < nin; i++)
        x[i] = ids ? (float)pb_rng_below(&g_rng, (uint32_t)l.k) : pb_rng_normal(&g_rng);
    for (size_t i = 0; i < nout; i++)
        R[i] = pb_rng_normal(&g_rng);
    if (w)
        memset(w->g, 0, w->n * sizeof(float));
    if (b)
        memset(b->g, 0, b->n * sizeof(float));
    memset(dx, 0, nin * sizeof(float));
    loss_of(&l, x, B, R);
    memcpy(l.dout, R, nout * sizeof(float));
    pb_layer_backward(&l, x, ids ? NULL : dx, NULL, B);
    double ex = ids ? 0 : fd_err(&l, x, B, R, x, dx, nin, eps);
    double ew = w ? fd_err(&l, x, B, R, w->w, w->g, w->n, eps) : 0;
    double eb = b ? fd_err(&l, x, B, R, b->w, b->g, b->n, eps) : 0;
    ok(ex < 2e-2 && ew < 2e-2 && eb < 2e-2, "%s: gradients match finite differences (input %.2g, weight %.2g, "
       "bias %.2g)", what, ex, ew, eb);
    /* backward_write overwrites what backward adds */
    if (!ids) {
        float *dx2 = falloc(nin);
        for (size_t i = 0; i < nin; i++)
            dx2[i] = 7.0f;
        pb_layer_backward_write(&l, x, dx2, B);
        double d = 0;
        for (size_t i = 0; i < nin; i++)
            d = fmax(d, fabs(dx2[i] - dx[i]));
        ok(d < 1e-5, "%s: backward_write overwrites the input gradient (max diff %.2g)", what, d);
        pb_free(dx2);
    }
    pb_layer_free(&l);
    pb_free(x);
    pb_free(dx);
    pb_free(R);
}

static void test_gradients(void)
{
    pb_param w, b;
    const int B = 2, T = 5;
    {
        pb_layer l = mk(PB_EMBED, 1, T);
        l.oc = 4;
        l.k = 7;      /* vocabulary */
        l.stride = 6; /* context */
        newp(&w, "embed.weight", 7 * 4, 0, 1);
        newp(&b, "embed.pos", 6 * 4, 0, 1);
        gradcheck("embed", l, &w, &b, B, 1, 1e-2f);
        pb_free(w.w), pb_free(w.g), pb_free(b.w), pb_free(b.g);
    }
    {
        pb_layer l = mk(PB_LAYERNORM, 6, T);
        newp(&w, "ln.weight", 6, 1, 0.3f);
        newp(&b, "ln.bias", 6, 0, 0.3f);
        gradcheck("layernorm", l, &w, &b, B, 0, 1e-2f);
        pb_free(w.w), pb_free(w.g), pb_free(b.w), pb_free(b.g);
    }
    {
        pb_layer l = mk(PB_LINEAR, 6, T);
        l.oc = 5;
        l.has_bias = 1;
        newp(&w, "lin.weight", 5 * 6, 0, 0.4f);
        newp(&b, "lin.bias", 5, 0, 0.4f);
        gradcheck("linear", l, &w, &b, B, 0, 1e-2f);
        pb_free(w.w), pb_free(w.g), pb_free(b.w), pb_free(b.g);
    }
    {
        pb_layer l = mk(PB_TIEDOUT, 4, T);
        l.oc = 7;
        newp(&w, "embed.weight", 7 * 4, 0, 0.5f);
        gradcheck("tiedout", l, &w, NULL, B, 0, 1e-2f);
        pb_free(w.w), pb_free(w.g);
    }
    {
        pb_layer l = mk(PB_ATTN, 3 * 2 * 3, T); /* 2 heads of dimension 3 */
        l.k = 3;
        gradcheck("attn (2 heads, causal)", l, NULL, NULL, B, 0, 1e-2f);
    }
    {
        pb_layer l = mk(PB_GELU, 4, T);
        gradcheck("gelu", l, NULL, NULL, B, 0, 1e-2f);
    }
}

/* A token's output never depends on later tokens: in one attention layer and
 * through a whole model. */
static void test_causal(void)
{
    char err[PB_ERRLEN];
    pb_layer l = mk(PB_ATTN, 3 * 8, 6);
    l.k = 4;
    int okk = pb_layer_infer_shape(&l, err, sizeof err) == PB_OK && pb_layer_alloc(&l, 1, err, sizeof err) == PB_OK;
    const size_t nin = pb_layer_isize(&l), nout = pb_layer_osize(&l);
    float *x = falloc(nin), *o1 = falloc(nout);
    for (size_t i = 0; i < nin; i++)
        x[i] = pb_rng_normal(&g_rng);
    pb_layer_forward(&l, x, NULL, 1, 0, NULL);
    memcpy(o1, l.out, nout * sizeof(float));
    const int t = 2, row = 24, orow = 8;
    for (size_t i = (size_t)(t + 1) * row; i < nin; i++)
        x[i] += 3.0f;
    pb_layer_forward(&l, x, NULL, 1, 0, NULL);
    int same = !memcmp(o1, l.out, (size_t)(t + 1) * orow * sizeof(float));
    int later = memcmp(o1 + (t + 1) * orow, l.out + (t + 1) * orow, (nout - (size_t)(t + 1) * orow) * sizeof(float));
    ok(okk && same && later, "attention: rows 0..%d unchanged when later rows change, later rows change", t);
    pb_layer_free(&l);
    pb_free(x);
    pb_free(o1);

    pb_model m;
    int T = 8, V = 11;
    okk = pb_gpt_build(&m, "gpt:layers=2,dim=8,heads=2,ctx=8", 1, T, 1, V, err, sizeof err) == PB_OK &&
          pb_model_finalize(&m, 2, err, sizeof err) == PB_OK;
    if (!okk) {
        ok(0, "gpt build: %s", err);
        return;
    }
    pb_model_init_weights(&m, 3);
    float ids[8] = {1, 2, 3, 4, 5, 6, 7, 8}, out1[8 * 11];
    memcpy(out1, pb_model_forward(&m, ids, 1, 0), sizeof out1);
    ids[5] = 0;
    ids[7] = 10;
    const float *out2 = pb_model_forward(&m, ids, 1, 0);
    ok(!memcmp(out1, out2, 5 * (size_t)V * sizeof(float)) && memcmp(out1 + 5 * V, out2 + 5 * V, (size_t)V * 4),
       "gpt: the logits of positions 0..4 ignore tokens 5..7, position 5's do not");
    pb_model_free(&m);
}

/* With a zero token table the tied logits are all zero: perplexity = vocabulary. */
static void test_uniform(void)
{
    char err[PB_ERRLEN];
    pb_model m;
    const int T = 6, V = 256, B = 3;
    if (pb_gpt_build(&m, "gpt:layers=1,dim=8,heads=2,ctx=6", 1, T, 1, V, err, sizeof err) != PB_OK ||
        pb_model_finalize(&m, B, err, sizeof err) != PB_OK) {
        ok(0, "gpt build: %s", err);
        return;
    }
    pb_model_init_weights(&m, 1);
    pb_param *e = pb_model_find_param(&m, "embed.weight");
    memset(e->w, 0, e->n * sizeof(float));
    float x[3 * 6];
    int y[3 * 6];
    for (int i = 0; i < B * T; i++) {
        x[i] = (float)pb_rng_below(&g_rng, V);
        y[i] = (int)pb_rng_below(&g_rng, V);
    }
    pb_model_forward(&m, x, B, 0);
    double loss = pb_model_loss(&m, y, B, 1.0f, NULL, NULL);
    ok(m.ntok == T && fabs(exp(loss) - V) < 1e-3 * V, "uniform model: perplexity %.4f = vocabulary %d (%d tokens "
       "per example)", exp(loss), V, m.ntok);
    pb_model_free(&m);
}

static int write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return 0;
    fputs(text, f);
    return fclose(f) == 0;
}

/* A corpus of two topics with numbered documents, in a fresh directory. */
static int make_corpus(char *dir, size_t n)
{
    snprintf(dir, n, "/tmp/t_lm.XXXXXX");
    if (!mkdtemp(dir))
        return 0;
    const char *topics[2] = {"alpha", "beta"};
    for (int t = 0; t < 2; t++) {
        char path[512], *text = malloc(200000);
        size_t k = 0;
        for (int i = 0; i < 400; i++)
            k += (size_t)sprintf(text + k, "<%s %d> the quick brown fox jumps over the lazy dog\n%%\n", topics[t], i);
        snprintf(path, sizeof path, "%s/%s", dir, topics[t]);
        int w = write_file(path, text);
        free(text);
        snprintf(path, sizeof path, "%s/%s.dat", dir, topics[t]);
        if (!w || !write_file(path, ""))
            return 0;
    }
    return 1;
}

/* The split's byte stream rebuilt from its windows. */
static char *stream_of(const pb_dataset *d)
{
    size_t T = (size_t)d->h, n = (size_t)d->n * T + 2;
    char *s = malloc(n);
    for (size_t i = 0; i < (size_t)d->n * T; i++)
        s[i] = (char)d->x[i];
    s[(size_t)d->n * T] = (char)d->y[(size_t)d->n * T - 1];
    s[n - 1] = 0;
    return s;
}

/* the index into {train, val, test} of a document's split */
static int splits_index(int topic, int i)
{
    int s = pb_text_split_of(topic ? "beta" : "alpha", i, PB_TEXT_SEED);
    return s == PB_TEXT_TRAIN ? 0 : s == PB_TEXT_VAL ? 1 : 2;
}

static void test_split(void)
{
    char dir[256], err[PB_ERRLEN];
    int a = 0, same = 1, counts[3] = {0};
    for (int i = 0; i < 10000; i++) {
        int s = pb_text_split_of("science", i, PB_TEXT_SEED);
        counts[s]++;
        same &= s == pb_text_split_of("science", i, PB_TEXT_SEED);
        a += s != pb_text_split_of("science", i, PB_TEXT_SEED + 1);
    }
    ok(same && a > 1000 && abs(counts[PB_TEXT_TRAIN] - 8000) < 300 && abs(counts[PB_TEXT_VAL] - 1000) < 200,
       "document split: seeded (another seed moves %d of 10000), 80/10/10 (%d/%d/%d)", a, counts[0], counts[2],
       counts[1]);
    if (!make_corpus(dir, sizeof dir)) {
        ok(0, "corpus fixture");
        return;
    }
    pb_dataset sp[3];
    const int splits[3] = {PB_TEXT_TRAIN, PB_TEXT_VAL, PB_TEXT_TEST};
    int loaded = 1;
    for (int k = 0; k < 3; k++)
        loaded &= pb_text_load("fortunes:ctx=16", dir, splits[k], &sp[k], err, sizeof err) == PB_OK;
    if (!loaded) {
        ok(0, "load the fixture: %s", err);
        return;
    }
    char *st[3] = {stream_of(&sp[0]), stream_of(&sp[1]), stream_of(&sp[2])};
    int once = 1, where_ok = 1, total = 0;
    for (int t = 0; t < 2; t++)
        for (int i = 0; i < 400; i++) {
            char tag[32];
            snprintf(tag, sizeof tag, "<%s %d>", t ? "beta" : "alpha", i);
            int in = 0, found = -1;
            for (int k = 0; k < 3; k++)
                if (strstr(st[k], tag))
                    in++, found = k;
            /* a document cut at a window's end may lose its last byte, never its tag */
            once &= in == 1;
            where_ok &= found == splits_index(t, i);
            total += in;
        }
    ok(once && where_ok, "text split: each of the 800 documents in exactly one split, the one its draw names");
    ok(sp[0].ny == 16 && sp[0].h == 16 && sp[0].ncls == 256 && !memcmp(sp[0].x + 1, sp[0].y, 15),
       "text examples: 16 token ids, targets the next bytes");
    /* a topic subset's test documents are the full set's test documents of that topic */
    pb_dataset beta;
    int rc = pb_text_load("fortunes:beta,ctx=16", dir, PB_TEXT_TEST, &beta, err, sizeof err);
    char *bs = rc == PB_OK ? stream_of(&beta) : NULL;
    int sub = bs && !strstr(bs, "<alpha") && strstr(bs, "<beta");
    for (int i = 0; sub && i < 400; i++) {
        char tag[32];
        snprintf(tag, sizeof tag, "<beta %d>", i);
        sub &= !!strstr(bs, tag) == !!strstr(st[2], tag);
    }
    ok(sub, "topic subset: beta's test split holds exactly the full set's beta test documents");
    if (rc == PB_OK)
        pb_data_free(&beta); /* LeakSanitizer in the sanitizer build counts it */
    rc = pb_text_load("fortunes:gamma", dir, PB_TEXT_TRAIN, &beta, err, sizeof err);
    ok(rc == PB_EUSAGE && strstr(err, "unknown topic 'gamma'") && strstr(err, "valid: alpha, beta"),
       "unknown topic: %s", err);
    rc = pb_text_load("fortunes", "/nonexistent-dir", PB_TEXT_TRAIN, &beta, err, sizeof err);
    ok(rc == PB_EIO && strstr(err, "fortunes") && strstr(err, "/nonexistent-dir"), "missing corpus: %s", err);
    char path[512];
    snprintf(path, sizeof path, "%s/beta", dir);
    write_file(path, "");
    rc = pb_text_load("fortunes", dir, PB_TEXT_TRAIN, &beta, err, sizeof err);
    ok(rc == PB_EIO && strstr(err, "beta") && strstr(err, "empty"), "empty topic file: %s", err);
    for (int k = 0; k < 3; k++) {
        free(st[k]);
        pb_data_free(&sp[k]);
    }
    free(bs);
    (void)total;
    snprintf(path, sizeof path, "rm -rf '%s'", dir);
    if (system(path) != 0)
        printf("# could not remove %s\n", dir);
}

static void test_bad_input(void)
{
    char err[PB_ERRLEN];
    pb_model m;
    int rc = pb_gpt_build(&m, "gpt:dim=100,heads=3", 1, 64, 1, 256, err, sizeof err);
    ok(rc == PB_EUSAGE && strstr(err, "3 heads do not divide the width dim=100"), "heads not dividing: %s", err);
    pb_model_free(&m);
    rc = pb_gpt_build(&m, "gpt:ctx=32", 1, 64, 1, 256, err, sizeof err);
    ok(rc == PB_EUSAGE && strstr(err, "context of 64 tokens is longer than the model's (ctx=32)"),
       "context too long: %s", err);
    pb_model_free(&m);
    rc = pb_gpt_build(&m, "gpt:depth=3", 1, 64, 1, 256, err, sizeof err);
    ok(rc == PB_EUSAGE && strstr(err, "unknown option 'depth'") && strstr(err, "layers, dim, heads, ctx, ff"),
       "unknown gpt option: %s", err);
    pb_model_free(&m);
}

/* a tiny gpt trained on a fixed random byte set */
static int train_once(int threads, float **weights, size_t *n)
{
    char err[PB_ERRLEN];
    pb_par_set_threads(threads);
    pb_dataset d;
    memset(&d, 0, sizeof d);
    d.n = 64, d.c = 1, d.h = 8, d.w = 1, d.ncls = 256, d.ny = 8, d.std[0] = 1;
    d.x = malloc(64 * 8);
    d.y = malloc(64 * 8);
    pb_rng r;
    pb_rng_seed(&r, 5);
    for (int i = 0; i < 64 * 8; i++)
        d.x[i] = (uint8_t)("abcab cab"[pb_rng_below(&r, 9)]);
    for (int i = 0; i < 64 * 8; i++)
        d.y[i] = i % 8 < 7 ? d.x[i + 1] : d.x[i];
    pb_model m;
    int rc = pb_gpt_build(&m, "gpt:layers=1,dim=16,heads=2,ctx=8", 1, 8, 1, 256, err, sizeof err);
    if (rc == PB_OK)
        rc = pb_model_finalize(&m, 16, err, sizeof err);
    pb_train_cfg cfg;
    pb_train_defaults(&cfg);
    cfg.epochs = 2;
    cfg.batch = 16;
    cfg.opt.kind = PB_OPT_ADAMW;
    cfg.opt.lr = 0.01;
    cfg.opt.wd = 0.1;
    cfg.opt.sched = PB_SCHED_COSINE;
    cfg.opt.warmup_steps = 2;
    cfg.log_epochs = 0;
    cfg.seed = 9;
    pb_train_result res;
    if (rc == PB_OK) {
        pb_model_init_weights(&m, 9);
        rc = pb_train(&m, &d, &d, &cfg, NULL, &res, err, sizeof err);
    }
    if (rc != PB_OK)
        printf("# train: %s\n", err);
    size_t total = 0;
    for (int i = 0; i < m.nparams; i++)
        total += m.params[i]->n;
    *weights = malloc(total * sizeof(float));
    *n = total;
    size_t k = 0;
    for (int i = 0; rc == PB_OK && i < m.nparams; i++) {
        memcpy(*weights + k, m.params[i]->w, m.params[i]->n * sizeof(float));
        k += m.params[i]->n;
    }
    pb_model_free(&m);
    pb_data_free(&d);
    return rc == PB_OK;
}

static void test_rerun(void)
{
    float *a, *b, *c;
    size_t na, nb, nc;
    int ok1 = train_once(2, &a, &na), ok2 = train_once(2, &b, &nb), ok3 = train_once(1, &c, &nc);
    ok(ok1 && ok2 && na == nb && !memcmp(a, b, na * sizeof(float)),
       "gpt: two runs with one seed and 2 threads end with bit-identical weights");
    ok(ok3 && nc == na, "gpt: a run on 1 thread trains too");
    free(a), free(b), free(c);
    pb_par_set_threads(1);
}

static void test_hvp_refuses(void)
{
    char err[PB_ERRLEN];
    pb_model m;
    pb_dataset d;
    memset(&d, 0, sizeof d);
    d.n = 2, d.c = 1, d.h = 4, d.w = 1, d.ncls = 16, d.ny = 4, d.std[0] = 1;
    d.x = calloc(8, 1);
    d.y = calloc(8, 1);
    int idx[2] = {0, 1};
    int rc = pb_gpt_build(&m, "gpt:layers=1,dim=4,heads=1,ctx=4", 1, 4, 1, 16, err, sizeof err);
    if (rc == PB_OK)
        rc = pb_model_finalize(&m, 2, err, sizeof err);
    if (rc == PB_OK)
        rc = pb_model_hvp_on(&m, &d, idx, 2, 1.0f, NULL, NULL, NULL, NULL, err, sizeof err);
    ok(rc == PB_EUSAGE && strstr(err, "embed") && strstr(err, "does not cover"), "hvp refuses a gpt: %s", err);
    pb_model_free(&m);
    pb_data_free(&d);
}

/* the installed corpus, when there is one */
static void test_corpus(void)
{
    char err[PB_ERRLEN];
    struct stat st;
    if (stat(PB_TEXT_DIR "/science", &st) != 0) {
        skip("the fortunes package is not installed", "fortunes corpus: science and medicine load");
        skip("the fortunes package is not installed", "fortunes corpus: an unknown topic lists the valid ones");
        return;
    }
    pb_dataset d;
    int rc = pb_data_load("fortunes:science,medicine", NULL, PB_SPLIT_TRAIN, &d, err, sizeof err);
    ok(rc == PB_OK && d.n > 100 && d.ny == 64, "fortunes corpus: science and medicine load (%d examples)",
       rc == PB_OK ? d.n : 0);
    pb_data_free(&d);
    rc = pb_data_load("fortunes:sciense", NULL, PB_SPLIT_TRAIN, &d, err, sizeof err);
    ok(rc == PB_EUSAGE && strstr(err, "unknown topic 'sciense'") && strstr(err, "science") &&
       strstr(err, "computers"), "fortunes corpus: an unknown topic lists the valid ones");
}

int main(void)
{
    pb_rng_seed(&g_rng, 42);
    tap_plan(29);
    test_gradients();
    test_causal();
    test_uniform();
    test_split();
    test_bad_input();
    test_rerun();
    test_hvp_refuses();
    test_corpus();
    return tap_done();
}
