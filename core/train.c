/*
 * train.c — the LoRA trainer (hearth.h "training"): parameter checks, the
 * trained pairs and their initialisation, the transposed base copies, the
 * optimizer step (gradients over the step's rows in passes, global-norm
 * clipping, the warmup + cosine/linear schedule, AdamW), evaluation and
 * the cost estimate. The passes themselves are train_graph.c's; files are
 * train_io.c's.
 *
 * AdamW as PyTorch's torch.optim.AdamW (decoupled weight decay, bias
 * correction), clipping as torch.nn.utils.clip_grad_norm_ (coefficient
 * clip / (norm + 1e-6) when below 1), so hyperparameters carry over from
 * PEFT recipes. The loss of a step is the mean over all its labelled
 * tokens, whatever the passes it is split into.
 */
#include "train.h"

#include "arch/vec.h"
#include "err.h"
#include "pool.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

void hr_train_defaults(struct hr_train_params *p)
{
    memset(p, 0, sizeof *p);
    p->rank = 16;
    p->alpha = 32.0f;
    p->targets = HR_TRAIN_ALL;
    p->init = HR_TRAIN_INIT_KAIMING;
    p->lr = 2e-4f;
    p->beta1 = 0.9f;
    p->beta2 = 0.999f;
    p->adam_eps = 1e-8f;
    p->weight_decay = 0.0f;
    p->clip = 1.0f;
    p->schedule = HR_TRAIN_COSINE;
    p->n_ctx = 512;
}

static int check_params(const struct hr_model *m, const struct hr_train_params *p,
                        struct hr_err *err)
{
    if (m->vocab_only)
        return hr_err_set(err, -EINVAL, -1, "model was loaded vocab-only: it cannot be trained");
    if (p->rank < 1 || p->rank > 4096)
        return hr_err_set(err, -EINVAL, -1, "rank %d is out of range (1..4096)", p->rank);
    if (!(p->alpha > 0.0f) || !isfinite(p->alpha))
        return hr_err_set(err, -EINVAL, -1, "alpha must be a positive number");
    if (!p->targets || (p->targets & ~(uint32_t)HR_TRAIN_ALL))
        return hr_err_set(err, -EINVAL, -1, "targets 0x%x: choose among q,k,v,o,gate,up,down",
                          p->targets);
    if (p->init != HR_TRAIN_INIT_KAIMING && p->init != HR_TRAIN_INIT_GAUSSIAN)
        return hr_err_set(err, -EINVAL, -1, "unknown initialisation %d", p->init);
    if (!(p->lr > 0.0f) || !isfinite(p->lr))
        return hr_err_set(err, -EINVAL, -1, "learning rate must be a positive number");
    if (!(p->beta1 >= 0.0f && p->beta1 < 1.0f) || !(p->beta2 >= 0.0f && p->beta2 < 1.0f) ||
        !(p->adam_eps > 0.0f) || !(p->weight_decay >= 0.0f) || !isfinite(p->weight_decay) ||
        isnan(p->clip))
        return hr_err_set(err, -EINVAL, -1, "AdamW parameters out of range");
    if (p->warmup_steps < 0 || p->total_steps < 0)
        return hr_err_set(err, -EINVAL, -1, "warmup and total steps must not be negative");
    if (p->schedule < HR_TRAIN_COSINE || p->schedule > HR_TRAIN_CONSTANT)
        return hr_err_set(err, -EINVAL, -1, "unknown schedule %d", p->schedule);
    if (p->n_ctx < 2 || p->n_ctx > (1 << 20))
        return hr_err_set(err, -EINVAL, -1, "row length %d is out of range (2..1048576)", p->n_ctx);
    if (p->pass_tokens < 0 || p->n_threads < 0)
        return hr_err_set(err, -EINVAL, -1, "pass tokens and threads must not be negative");
    if (p->grad_type && p->grad_type != HR_TYPE_F32 && p->grad_type != HR_TYPE_F16 &&
        p->grad_type != HR_TYPE_BF16 && p->grad_type != HR_TYPE_Q8_0)
        return hr_err_set(err, -EINVAL, -1, "gradient copies can be f32, f16, bf16 or q8_0");
    return 0;
}

static int64_t pass_rows(const struct hr_train_params *p)
{
    int64_t rows = p->pass_tokens ? p->pass_tokens / p->n_ctx : 512 / p->n_ctx;
    return rows < 1 ? 1 : rows;
}

static const struct weight *kind_weight(const struct layer *l, int kind)
{
    const struct weight *ws[TK_COUNT] = {&l->wq,   &l->wk, &l->wv,  &l->wo,
                                         &l->gate, &l->up, &l->down};
    return ws[kind];
}

/* The transposed copies needed: every product's but the first layer's
 * q, k, v (the gradient of the embeddings is never needed), and the
 * output's. Index il*TK_COUNT + kind, or n_layer*TK_COUNT for the output. */
static const struct weight *wt_source(const struct hr_model *m, int64_t i)
{
    int64_t L = m->hp.n_layer;
    if (i == L * TK_COUNT) return &m->output;
    int64_t il = i / TK_COUNT;
    int kind = (int)(i % TK_COUNT);
    if (il == 0 && kind <= TK_V) return NULL;
    return kind_weight(&m->layers[il], kind);
}

/* Reading a weight to transpose it brought its mapped pages back; when the
 * products read the kernels' packed copy instead (model.h), nothing reads
 * them again (but the tied output: token_embd's rows), so they are given
 * back as the loader gave them back after repacking (clean pages of a
 * read-only file mapping: the advice cannot lose anything). */
static void drop_pages(const struct hr_model *m, const struct weight *w)
{
    long page = sysconf(_SC_PAGESIZE);
    if (!w->packed || w->data == m->tok_embd.data || page <= 0)
        return;
    uintptr_t a = (uintptr_t)w->data, e = a + w->row_size * (size_t)w->n_out;
    a = (a + (uintptr_t)page - 1) & ~((uintptr_t)page - 1);
    e &= ~((uintptr_t)page - 1);
    if (e > a)
        madvise((void *)a, e - a, MADV_DONTNEED);
}

void hr_train_free(struct hr_train *t)
{
    if (!t) return;
    pool_free(t->pool);
    tgraph_free(t);
    if (t->wt_mem)
        for (int64_t i = 0; i <= t->model->hp.n_layer * TK_COUNT; i++)
            free(t->wt_mem[i]);
    free(t->wt_mem);
    free(t->wt);
    free(t->tg);
    free(t->param);
    free(t->grad);
    free(t->m);
    free(t->v);
    free(t);
}

/* Gaussian by Box-Muller from the splitmix stream. */
static double rng_normal(uint64_t *s)
{
    double u1 = train_rng_unit(s), u2 = train_rng_unit(s);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

static void init_params(struct hr_train *t)
{
    uint64_t s = t->p.seed ^ 0x6c6f72612d696e69ull; /* "lora-ini" */
    int64_t r = t->p.rank;
    memset(t->param, 0, (size_t)t->n_params * sizeof(float));
    for (int64_t i = 0; i < t->model->hp.n_layer * TK_COUNT; i++) {
        const struct train_target *tg = &t->tg[i];
        if (!tg->w) continue;
        float *a = t->param + tg->off_a;
        double bound = 1.0 / sqrt((double)tg->n_in), std = 1.0 / (double)r;
        for (int64_t k = 0; k < r * tg->n_in; k++)
            a[k] = t->p.init == HR_TRAIN_INIT_KAIMING
                       ? (float)((2.0 * train_rng_unit(&s) - 1.0) * bound)
                       : (float)(rng_normal(&s) * std);
        /* B = 0: the adapter starts as the identity */
    }
}

/* Lays out the pairs (tg may be NULL: only counts); returns n_params. */
static int64_t layout_targets(const struct hr_model *m, const struct hr_train_params *p,
                              struct train_target *tg)
{
    int64_t off = 0;
    for (int64_t il = 0; il < m->hp.n_layer; il++)
        for (int k = 0; k < TK_COUNT; k++) {
            if (!(p->targets & (1u << k))) continue;
            const struct weight *w = kind_weight(&m->layers[il], k);
            if (tg) {
                struct train_target *x = &tg[il * TK_COUNT + k];
                x->w = w;
                x->n_in = w->n_in;
                x->n_out = w->n_out;
                x->off_a = off;
                x->off_bt = off + p->rank * w->n_in;
            }
            off += (int64_t)p->rank * (w->n_in + w->n_out);
        }
    return off;
}

int hr_train_new(struct hr_model *model, const struct hr_train_params *params,
                 struct hr_train **out, struct hr_err *err)
{
    hr_err_clear(err);
    struct hr_train_params def;
    if (!params) {
        hr_train_defaults(&def);
        params = &def;
    }
    int rc = check_params(model, params, err);
    if (rc < 0) return rc;
    struct hr_train *t = calloc(1, sizeof *t);
    if (!t) return -ENOMEM;
    const struct hparams *hp = &model->hp;
    t->model = model;
    t->p = *params;
    t->scale = t->p.alpha / (float)t->p.rank;
    t->vec = vec_kernels();
    t->n_threads = t->p.n_threads;
    if (t->n_threads <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        t->n_threads = n > 0 ? (int)n : 1;
    }
    t->pass_T = pass_rows(&t->p) * t->p.n_ctx;
    if ((rc = pool_new(t->n_threads, &t->pool)) < 0) {
        hr_err_set(err, rc, -1, "cannot start %d compute threads", t->n_threads);
        goto fail_quiet;
    }
    int64_t n_w = hp->n_layer * TK_COUNT + 1;
    rc = -ENOMEM;
    if (!(t->tg = calloc((size_t)n_w, sizeof *t->tg)) ||
        !(t->wt = calloc((size_t)n_w, sizeof *t->wt)) ||
        !(t->wt_mem = calloc((size_t)n_w, sizeof *t->wt_mem)))
        goto fail;
    t->n_params = layout_targets(model, &t->p, t->tg);
    size_t pb = (size_t)t->n_params * sizeof(float);
    if (!(t->param = malloc(pb)) || !(t->grad = calloc(1, pb)) || !(t->m = calloc(1, pb)) ||
        !(t->v = calloc(1, pb)))
        goto fail;
    init_params(t);
    if ((rc = tgraph_alloc(t, true)) < 0) goto fail;
    for (int64_t i = 0; i < n_w; i++) {
        const struct weight *w = wt_source(model, i);
        if (!w) continue;
        if ((rc = tmm_transpose(t, w, t->p.grad_type, &t->wt[i], &t->wt_mem[i])) < 0)
            goto fail;
        drop_pages(model, w);
        t->wt_bytes += tmm_transposed_bytes(w, t->p.grad_type);
    }
    *out = t;
    return 0;
fail:
    hr_err_set(err, rc, -1, "cannot allocate the trainer (out of memory)");
fail_quiet:
    hr_train_free(t);
    return rc;
}

void hr_train_set_abort(struct hr_train *t, hr_abort_fn fn, void *user)
{
    t->abort_fn = fn;
    t->abort_user = fn ? user : NULL;
}

int64_t hr_train_get_step(const struct hr_train *t)
{
    return t->step;
}

/* ---- rows ---------------------------------------------------------------------------------- */

static int check_rows(const struct hr_train *t, const struct hr_train_rows *rows,
                      const int32_t *idx, int32_t n, int64_t *n_labels, struct hr_err *err)
{
    int64_t V = t->model->hp.n_vocab, C = rows->n_ctx;
    if (rows->n_ctx != t->p.n_ctx)
        return hr_err_set(err, -EINVAL, -1, "rows of %d tokens, the trainer's are %d", rows->n_ctx,
                          t->p.n_ctx);
    if (n < 0) return hr_err_set(err, -EINVAL, -1, "negative row count");
    int64_t nl = 0;
    for (int32_t i = 0; i < n; i++) {
        int32_t r = idx ? idx[i] : i;
        if (r < 0 || r >= rows->n_rows)
            return hr_err_set(err, -EINVAL, -1, "row %d out of range (%d rows)", r, rows->n_rows);
        const int32_t *tok = rows->tokens + (int64_t)r * C, *lab = rows->labels + (int64_t)r * C;
        const int32_t *pos = rows->pos + (int64_t)r * C;
        for (int64_t j = 0; j < C; j++) {
            if (tok[j] < 0 || tok[j] >= V || lab[j] < -1 || lab[j] >= V)
                return hr_err_set(err, -EINVAL, -1, "row %d token %lld: id out of range", r,
                                  (long long)j);
            if (pos[j] != (j ? pos[j - 1] + 1 : 0) && pos[j] != 0)
                return hr_err_set(err, -EINVAL, -1,
                                  "row %d token %lld: position %d does not follow %d", r,
                                  (long long)j, pos[j], j ? pos[j - 1] : -1);
            nl += lab[j] >= 0;
        }
    }
    *n_labels = nl;
    return 0;
}

/* Runs the passes over the rows; gscale 0: forward only. */
static int run_rows(struct hr_train *t, const struct hr_train_rows *rows, const int32_t *idx,
                    int32_t n, bool backward, float gscale, double *loss)
{
    int64_t C = t->p.n_ctx, per = t->pass_T / C;
    for (int32_t i0 = 0; i0 < n; i0 += (int32_t)per) {
        int32_t nr = n - i0 < per ? n - i0 : (int32_t)per;
        for (int32_t i = 0; i < nr; i++) {
            int64_t r = idx ? idx[i0 + i] : i0 + i;
            memcpy(t->tok + i * C, rows->tokens + r * C, (size_t)C * sizeof(int32_t));
            memcpy(t->lab + i * C, rows->labels + r * C, (size_t)C * sizeof(int32_t));
            memcpy(t->pos + i * C, rows->pos + r * C, (size_t)C * sizeof(int32_t));
        }
        int rc = tgraph_pass(t, nr * C, backward, gscale, loss);
        if (rc < 0) return rc;
    }
    return 0;
}

int hr_train_eval(struct hr_train *t, const struct hr_train_rows *rows, const int32_t *idx,
                  int32_t n, double *loss_sum, int64_t *n_labels, struct hr_err *err)
{
    hr_err_clear(err);
    int64_t nl;
    int rc = check_rows(t, rows, idx, n, &nl, err);
    if (rc < 0) return rc;
    double loss = 0.0;
    if ((rc = run_rows(t, rows, idx, n, false, 0.0f, &loss)) < 0)
        return hr_err_set(err, rc, -1, "evaluation cancelled");
    *loss_sum = loss;
    *n_labels = nl;
    return 0;
}

/* ---- the optimizer -----------------------------------------------------------------------------
 */

static float lr_at(const struct hr_train_params *p, int64_t s)
{
    if (p->warmup_steps > 0 && s < p->warmup_steps)
        return p->lr * (float)(s + 1) / (float)p->warmup_steps;
    if (p->schedule == HR_TRAIN_CONSTANT || p->total_steps <= p->warmup_steps) return p->lr;
    double prog = (double)(s - p->warmup_steps) / (double)(p->total_steps - p->warmup_steps);
    if (prog > 1.0) prog = 1.0;
    if (p->schedule == HR_TRAIN_LINEAR) return (float)((double)p->lr * (1.0 - prog));
    return (float)((double)p->lr * 0.5 * (1.0 + cos(M_PI * prog)));
}

struct adam_job {
    struct hr_train *t;
    float lr, gmul, bc1, bc2;
};

#define ADAM_CHUNK 65536

static void adam_task(void *arg, int64_t task, int thread)
{
    const struct adam_job *j = arg;
    struct hr_train *t = j->t;
    const struct hr_train_params *p = &t->p;
    int64_t i0 = task * ADAM_CHUNK,
            i1 = i0 + ADAM_CHUNK < t->n_params ? i0 + ADAM_CHUNK : t->n_params;
    float decay = 1.0f - j->lr * p->weight_decay;
    for (int64_t i = i0; i < i1; i++) {
        float g = t->grad[i] * j->gmul;
        t->m[i] = p->beta1 * t->m[i] + (1.0f - p->beta1) * g;
        t->v[i] = p->beta2 * t->v[i] + (1.0f - p->beta2) * g * g;
        float mh = t->m[i] / j->bc1, vh = t->v[i] / j->bc2;
        t->param[i] = t->param[i] * decay - j->lr * mh / (sqrtf(vh) + p->adam_eps);
    }
}

int hr_train_step(struct hr_train *t, const struct hr_train_rows *rows, const int32_t *idx,
                  int32_t n, struct hr_train_stats *st, struct hr_err *err)
{
    hr_err_clear(err);
    int64_t nl;
    int rc = check_rows(t, rows, idx, n, &nl, err);
    if (rc < 0) return rc;
    memset(t->grad, 0, (size_t)t->n_params * sizeof(float));
    double loss = 0.0;
    float gscale = nl > 0 ? (float)(1.0 / (double)nl) : 0.0f;
    if ((rc = run_rows(t, rows, idx, n, true, gscale, &loss)) < 0)
        return hr_err_set(err, rc, -1, "training step cancelled");

    double t0 = train_clock();
    double ss = 0.0;
    for (int64_t i = 0; i < t->n_params; i++)
        ss += (double)t->grad[i] * (double)t->grad[i];
    double norm = sqrt(ss);
    float gmul = 1.0f;
    if (t->p.clip > 0.0f && norm > (double)t->p.clip)
        gmul = (float)((double)t->p.clip / (norm + 1e-6));
    float lr = lr_at(&t->p, t->step);
    t->step++;
    struct adam_job j = {t, lr, gmul, 1.0f - powf(t->p.beta1, (float)t->step),
                         1.0f - powf(t->p.beta2, (float)t->step)};
    pool_run(t->pool, adam_task, &j, (t->n_params + ADAM_CHUNK - 1) / ADAM_CHUNK);
    t->prof[TP_OPT] += train_clock() - t0;
    if (st) {
        st->step = t->step;
        st->loss = nl > 0 ? loss / (double)nl : 0.0;
        st->n_labels = nl;
        st->n_tokens = (int64_t)n * t->p.n_ctx;
        st->grad_norm = (float)norm;
        st->lr = lr;
    }
    return 0;
}

/* ---- the estimate
 * --------------------------------------------------------------------------------- */

int hr_train_estimate(const struct hr_model *m, const struct hr_train_params *params,
                      struct hr_train_estimate *e, struct hr_err *err)
{
    hr_err_clear(err);
    struct hr_train_params def;
    if (!params) {
        hr_train_defaults(&def);
        params = &def;
    }
    int rc = check_params(m, params, err);
    if (rc < 0) return rc;
    const struct hparams *hp = &m->hp;
    struct hr_train t = {0};
    t.model = (struct hr_model *)m;
    t.p = *params;
    t.n_threads = params->n_threads > 0 ? params->n_threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (t.n_threads < 1) t.n_threads = 1;
    t.pass_T = pass_rows(params) * params->n_ctx;
    tgraph_alloc(&t, false);

    memset(e, 0, sizeof *e);
    e->n_params = layout_targets(m, params, NULL);
    e->bytes_optimizer = (uint64_t)e->n_params * 4 * sizeof(float);
    e->bytes_activations = t.act_bytes;
    e->bytes_scratch = t.scratch_bytes;
    double fwd = 0, bwd = 0, lora = 0;
    for (int64_t i = 0; i <= hp->n_layer * TK_COUNT; i++) {
        const struct weight *w = i == hp->n_layer * TK_COUNT
                                     ? &m->output
                                     : kind_weight(&m->layers[i / TK_COUNT], (int)(i % TK_COUNT));
        double ops = 2.0 * (double)w->n_in * (double)w->n_out;
        fwd += ops;
        e->bytes_model += (uint64_t)w->row_size * (uint64_t)w->n_out;
        if (wt_source(m, i)) {
            bwd += ops;
            e->bytes_transposed += tmm_transposed_bytes(w, params->grad_type);
        }
        if (i < hp->n_layer * TK_COUNT && (params->targets & (1u << (i % TK_COUNT))))
            lora += 2.0 * params->rank * (double)(w->n_in + w->n_out);
    }
    if (m->output.data != m->tok_embd.data)
        e->bytes_model += (uint64_t)m->tok_embd.row_size * (uint64_t)m->tok_embd.n_out;
    else if (m->output.packed) /* tied: the embeddings stay mapped beside the packed copy */
        e->bytes_model += m->output.k->packed_size(m->output.n_in, m->output.n_out);
    /* attention: a token sees (n_ctx+1)/2 keys on average in a full row;
     * forward 2 products of head_dim per key and head, backward 7 */
    double attn = 2.0 * (double)hp->n_head * (double)hp->head_dim * ((double)params->n_ctx + 1.0) /
                  2.0 * (double)hp->n_layer;
    double out_ops = 2.0 * (double)m->output.n_in * (double)m->output.n_out;
    double layers_fwd = fwd - out_ops + lora + 2.0 * attn;
    e->flop_per_token = fwd + bwd + lora * 4.0 + attn * 9.0;
    e->flop_per_token_base = fwd + bwd;
    if (params->recompute) {
        e->flop_per_token += layers_fwd;
        e->flop_per_token_base += fwd - out_ops;
    }
    return 0;
}
