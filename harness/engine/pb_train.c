#include "pb_train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void pb_train_defaults(pb_train_cfg *c)
{
    memset(c, 0, sizeof *c);
    c->epochs = 10;
    c->batch = 128;
    pb_optim_defaults(&c->opt);
    c->seed = 1;
    c->eval_every = 1;
    c->log_epochs = 1;
}

int pb_batch_init(pb_batch *b, const pb_dataset *d, int cap, char *err, size_t errlen)
{
    b->cap = cap;
    b->x = pb_alloc((size_t)cap * d->c * d->h * d->w * sizeof(float));
    b->y = malloc((size_t)cap * pb_data_ny(d) * sizeof(int));
    if (!b->x || !b->y) {
        pb_batch_free(b);
        return pb_err(err, errlen, PB_ENOMEM, "out of memory for a batch of %d", cap);
    }
    return PB_OK;
}

void pb_batch_free(pb_batch *b)
{
    pb_free(b->x);
    free(b->y);
    b->x = NULL;
    b->y = NULL;
}

int pb_evaluate(pb_model *m, const pb_dataset *d, int batch, double *acc, double *loss, char *err,
                size_t errlen)
{
    if (batch > m->max_batch)
        batch = m->max_batch;
    pb_batch b;
    int *idx = malloc((size_t)batch * sizeof(int));
    if (!idx)
        return pb_err(err, errlen, PB_ENOMEM, "out of memory");
    if (pb_batch_init(&b, d, batch, err, errlen) != PB_OK) {
        free(idx);
        return PB_ENOMEM;
    }
    long ok = 0;
    double tl = 0;
    for (int s = 0; s < d->n; s += batch) {
        int B = d->n - s < batch ? d->n - s : batch, c = 0;
        for (int i = 0; i < B; i++)
            idx[i] = s + i;
        pb_data_batch(d, idx, B, NULL, b.x, b.y);
        pb_model_infer(m, b.x, B);
        tl += pb_model_loss(m, b.y, B, 1.0f, NULL, &c) * B;
        ok += c;
    }
    pb_batch_free(&b);
    free(idx);
    /* a language model's accuracy is over its predicted tokens */
    *acc = d->n ? (double)ok / ((double)d->n * m->ntok) : 0;
    if (loss)
        *loss = d->n ? tl / d->n : 0;
    return PB_OK;
}

int pb_model_grad_on(pb_model *m, const pb_dataset *d, const int *idx, int n, float temperature,
                     double *loss, char *err, size_t errlen)
{
    int batch = m->max_batch;
    pb_batch b;
    if (pb_batch_init(&b, d, batch, err, errlen) != PB_OK)
        return PB_ENOMEM;
    pb_model_zero_grad(m);
    m->dense_grads = 1; /* scores need the gradients of pruned weights too */
    double tl = 0;
    for (int s = 0; s < n; s += batch) {
        int B = n - s < batch ? n - s : batch;
        pb_data_batch(d, idx + s, B, NULL, b.x, b.y);
        pb_model_forward(m, b.x, B, 1);
        tl += pb_model_loss(m, b.y, B, temperature, NULL, NULL) * B;
        /* dlogits are per-batch means; reweight so the sum is the mean over all n */
        float sc = (float)B / (float)n;
        for (size_t j = 0; j < (size_t)B * m->ncls * m->ntok; j++)
            m->dlogits[j] *= sc;
        pb_model_backward(m, b.x, B, NULL, NULL);
    }
    m->dense_grads = 0;
    pb_batch_free(&b);
    if (loss)
        *loss = tl / n;
    return PB_OK;
}

/* Steps taken so far plus per_epoch for each epoch left, bounded by max_steps. */
static long planned_steps(const pb_train_cfg *cfg, long done, long per_epoch, int epochs_left)
{
    long t = done + per_epoch * epochs_left;
    return cfg->max_steps > 0 && cfg->max_steps < t ? cfg->max_steps : t;
}

void pb_train_canon(const pb_train_cfg *c, char *buf, size_t n)
{
    snprintf(buf, n,
             "epochs=%d,batch=%d,opt=%s,lr=%.17g,momentum=%.17g,wd=%.17g,nesterov=%d,"
             "beta1=%.17g,beta2=%.17g,eps=%.17g,schedule=%s,step_epochs=%d,gamma=%.17g,"
             "warmup=%ld,max_steps=%ld",
             c->epochs, c->batch, pb_opt_names[c->opt.kind], c->opt.lr, c->opt.momentum, c->opt.wd,
             c->opt.nesterov, c->opt.beta1, c->opt.beta2, c->opt.eps, pb_sched_names[c->opt.sched],
             c->opt.step_epochs, c->opt.gamma, c->opt.warmup_steps, c->max_steps);
    if (c->early_stop) {
        size_t k = strlen(buf);
        snprintf(buf + k, n > k ? n - k : 0, ",early_stop=1");
    }
}

static double sparsity_of(const pb_model *m)
{
    size_t t, nz;
    pb_model_sparsity(m, &t, &nz);
    return t ? 1.0 - (double)nz / (double)t : 0.0;
}

static void progress(const pb_train_cfg *cfg, int epoch, int done, int total, double loss,
                     double t0)
{
    int width = 24, fill = total ? done * width / total : 0;
    char bar[32];
    for (int i = 0; i < width; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[width] = 0;
    fprintf(stderr, "\r%s%sepoch %d/%d [%s] %3d%% loss %.4f %.1fs ", cfg->label ? cfg->label : "",
            cfg->label ? " " : "", epoch, cfg->epochs, bar, total ? done * 100 / total : 0, loss,
            pb_now() - t0);
    fflush(stderr);
}

/* Copies every parameter and BN statistic into buf (save) or back from it:
 * the values early stopping returns to. Returns their count (buf NULL: only
 * counts). */
static size_t best_walk(pb_model *m, float *buf, int save)
{
    size_t k = 0;
    for (int i = 0; i < m->nparams; i++) {
        if (buf)
            save ? memcpy(buf + k, m->params[i]->w, m->params[i]->n * sizeof(float))
                 : memcpy(m->params[i]->w, buf + k, m->params[i]->n * sizeof(float));
        k += m->params[i]->n;
    }
    for (int i = 0; i < m->nlayers; i++) {
        pb_layer *l = &m->layers[i];
        if (l->kind != PB_BN)
            continue;
        for (int s = 0; s < 2; s++) {
            float *a = s ? l->run_var : l->run_mean;
            if (buf)
                save ? memcpy(buf + k, a, (size_t)l->oc * sizeof(float)) : memcpy(a, buf + k, (size_t)l->oc * sizeof(float));
            k += (size_t)l->oc;
        }
    }
    return k;
}

int pb_train(pb_model *m, const pb_dataset *train, const pb_dataset *test, const pb_train_cfg *cfg,
             const pb_train_hooks *hooks, pb_train_result *res, char *err, size_t errlen)
{
    static const pb_train_hooks none;
    if (cfg->early_stop && (!cfg->val || cfg->val->n == 0))
        return pb_err(err, errlen, PB_EUSAGE,
                      "early_stop needs a validation split: hold out training examples with val = K (--val K)");
    if (!hooks)
        hooks = &none;
    float *best = NULL;
    int rc = pb_model_finalize(m, cfg->batch, err, errlen);
    if (rc != PB_OK)
        return rc;
    if (train->c != m->ic || train->h != m->ih || train->w != m->iw)
        return pb_err(err, errlen, PB_EUSAGE, "data set %s is %dx%dx%d but model %s expects %dx%dx%d",
                      train->name, train->c, train->h, train->w, m->arch, m->ic, m->ih, m->iw);
    pb_optim opt;
    if ((rc = pb_optim_init(&opt, m, &cfg->opt, err, errlen)) != PB_OK)
        return rc;
    pb_batch b = {0};
    int *idx = malloc((size_t)train->n * sizeof(int));
    if (!idx || pb_batch_init(&b, train, cfg->batch, err, errlen) != PB_OK) {
        rc = pb_err(err, errlen, PB_ENOMEM, "out of memory");
        goto out;
    }
    pb_rng rng;
    pb_rng_seed(&rng, cfg->seed ^ 0x7a11ULL);
    memset(res, 0, sizeof *res);
    res->time_to_target_s = -1;
    res->test_acc = -1;
    res->best_val_loss = -1;
    if (cfg->early_stop && !(best = malloc(best_walk(m, NULL, 0) * sizeof(float) + 1))) {
        rc = pb_err(err, errlen, PB_ENOMEM, "out of memory");
        goto out;
    }
    /* FLOPs of the weights nonzero at each step: a step hook may prune (or
     * regrow), so they are counted again after it */
    const int masks_move = hooks->after_step != NULL;
    double t0 = pb_now(), flops_ex = pb_model_train_flops_eff(m), last_draw = 0;
    long step = 0;
    /* Steps of the whole run for per-iteration schedules; a data-pruning select
     * hook may shrink epochs, so it is counted again after every selection. */
    long per_epoch = (train->n + cfg->batch - 1) / cfg->batch;
    long total_steps = planned_steps(cfg, 0, per_epoch, cfg->epochs);
    if (hooks->total_steps)
        *hooks->total_steps = total_steps;
    int show = cfg->progress && isatty(2), out_of_time = 0;
    for (int ep = 1; ep <= cfg->epochs; ep++) {
        const double ep_t0 = pb_now();
        flops_ex = pb_model_train_flops_eff(m); /* epoch_end may have pruned */
        int n = train->n;
        if (hooks->select) {
            if ((rc = hooks->select(hooks->ud, m, ep, train->n, idx, &n, err, errlen)) != PB_OK)
                goto out;
            long now = (n + cfg->batch - 1) / cfg->batch;
            if (ep == 1 || now != per_epoch) {
                per_epoch = now;
                total_steps = planned_steps(cfg, step, per_epoch, cfg->epochs - ep + 1);
                if (hooks->total_steps)
                    *hooks->total_steps = total_steps;
            }
        } else {
            for (int i = 0; i < n; i++)
                idx[i] = i;
            pb_rng_shuffle(&rng, idx, n);
        }
        double eloss = 0;
        int nb = 0;
        for (int s = 0; s < n; s += cfg->batch) {
            int B = n - s < cfg->batch ? n - s : cfg->batch;
            if (hooks->before_step && (rc = hooks->before_step(hooks->ud, m, step, err, errlen)) != PB_OK)
                goto out;
            if (hooks->before_step)
                flops_ex = pb_model_train_flops_eff(m);
            pb_data_batch(train, idx + s, B, &rng, b.x, b.y);
            pb_model_zero_grad(m);
            pb_model_forward(m, b.x, B, 1);
            double loss = pb_model_loss(m, b.y, B, 1.0f, NULL, NULL);
            if (!isfinite(loss)) {
                rc = pb_err(err, errlen, PB_ENUM,
                            "training diverged: loss is %s at epoch %d, step %ld (lower the learning rate %g?)",
                            isnan(loss) ? "NaN" : "infinite", ep, step + 1, cfg->opt.lr);
                goto out;
            }
            pb_model_backward(m, b.x, B, NULL, NULL);
            pb_optim_step(&opt, m, pb_optim_lr(&cfg->opt, step, total_steps, per_epoch));
            step++;
            res->train_flops += flops_ex * B;
            eloss += loss;
            nb++;
            if (hooks->after_step && (rc = hooks->after_step(hooks->ud, m, step, err, errlen)) != PB_OK)
                goto out;
            if (masks_move)
                flops_ex = pb_model_train_flops_eff(m); /* for the next step */
            if (show && pb_now() - last_draw > 0.25) {
                last_draw = pb_now();
                progress(cfg, ep, s + B, n, eloss / nb, t0);
            }
            if (cfg->max_steps && step >= cfg->max_steps)
                break;
            if (cfg->deadline > 0 && pb_now() >= cfg->deadline) {
                out_of_time = 1;
                break;
            }
        }
        pb_epoch_rec rec = {.epoch = ep, .step = step, .train_flops = res->train_flops,
                            .train_loss = nb ? eloss / nb : 0, .test_acc = -1, .test_loss = -1,
                            .train_s = pb_now() - ep_t0, .val_loss = -1};
        rec.sparsity = sparsity_of(m);
        if (cfg->early_stop) {
            double va;
            if ((rc = pb_evaluate(m, cfg->val, cfg->batch, &va, &rec.val_loss, err, errlen)) != PB_OK)
                goto out;
            if (!res->best_epoch || rec.val_loss < res->best_val_loss) {
                best_walk(m, best, 1);
                res->best_epoch = ep;
                res->best_step = step;
                res->best_val_loss = rec.val_loss;
            }
        }
        int last = ep == cfg->epochs || (cfg->max_steps && step >= cfg->max_steps) || out_of_time;
        if (test && ((cfg->eval_every > 0 && ep % cfg->eval_every == 0) || last)) {
            const double ev_t0 = pb_now();
            if ((rc = pb_evaluate(m, test, cfg->batch, &rec.test_acc, &rec.test_loss, err, errlen)) != PB_OK)
                goto out;
            rec.eval_s = pb_now() - ev_t0;
            res->test_acc = rec.test_acc;
            res->test_loss = rec.test_loss;
        }
        rec.wall_s = pb_now() - t0;
        /* a language model's target is a perplexity, reached from above */
        const int reached = m->ntok > 1 ? exp(rec.test_loss) <= cfg->target_acc : rec.test_acc >= cfg->target_acc;
        if (cfg->target_acc > 0 && res->time_to_target_s < 0 && rec.test_acc >= 0 && reached) {
            res->time_to_target_s = rec.wall_s;
            res->epoch_to_target = ep;
        }
        if (show)
            fprintf(stderr, "\r\033[K");
        if (cfg->log_epochs) {
            fprintf(stderr, "%s%sepoch %d/%d train_loss=%.4f", cfg->label ? cfg->label : "",
                    cfg->label ? " " : "", ep, cfg->epochs, rec.train_loss);
            if (rec.test_acc >= 0)
                fprintf(stderr, " test_acc=%.4f test_loss=%.4f", rec.test_acc, rec.test_loss);
            if (rec.val_loss >= 0)
                fprintf(stderr, " val_loss=%.4f", rec.val_loss);
            fprintf(stderr, " sparsity=%.4f wall_s=%.2f train_s=%.3f", rec.sparsity, rec.wall_s, rec.train_s);
            if (rec.test_acc >= 0)
                fprintf(stderr, " eval_s=%.3f", rec.eval_s);
            fprintf(stderr, "\n");
        }
        res->epochs_done = ep;
        res->steps = step;
        res->wall_s = rec.wall_s;
        if (hooks->epoch_end && (rc = hooks->epoch_end(hooks->ud, m, &rec, err, errlen)) != PB_OK)
            goto out;
        if (last)
            break;
    }
    rc = PB_OK;
    if (cfg->early_stop && res->best_epoch && res->best_epoch < res->epochs_done) {
        best_walk(m, best, 0);
        pb_model_arrays_changed(m);
        if (test && (rc = pb_evaluate(m, test, cfg->batch, &res->test_acc, &res->test_loss, err, errlen)) != PB_OK)
            goto out;
        if (cfg->log_epochs)
            fprintf(stderr, "%s%searly stop: the weights of epoch %d (step %ld, val_loss=%.4f)\n",
                    cfg->label ? cfg->label : "", cfg->label ? " " : "", res->best_epoch, res->best_step,
                    res->best_val_loss);
    }
out:
    free(best);
    pb_batch_free(&b);
    free(idx);
    return rc;
}

void pb_print_result(FILE *f, const pb_model *m, double acc, double loss, double wall_s)
{
    size_t total, nz;
    double df, ef;
    pb_model_count_params(m, &total, &nz);
    pb_model_flops(m, &df, &ef);
    fprintf(f,
            "result: test_acc=%.4f test_loss=%.4f params=%zu nonzero=%zu flops=%.0f "
            "eff_flops=%.0f sparsity=%.4f wall_s=%.2f",
            acc, loss, total, nz, df, ef, sparsity_of(m), wall_s);
    /* a language model's loss is nats per token (byte): perplexity and bits per byte */
    if (m->ntok > 1)
        fprintf(f, " test_ppl=%.4f test_bpb=%.4f", exp(loss), loss / log(2.0));
    fputc('\n', f);
}
