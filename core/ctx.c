/*
 * ctx.c — evaluation contexts and sequences (hearth.h): allocation, the
 * checks every evaluation makes before it touches anything, and the plan
 * (ctx.h) that hr_ctx_eval and hr_ctx_eval_batch hand to forward_pass.
 *
 * hr_ctx_eval is hr_ctx_eval_batch of one item on the context's default
 * sequence, split into passes of n_batch tokens, keeping the logits of every
 * token or of the last. Everything is allocated in hr_ctx_new and
 * hr_seq_new; evaluating allocates nothing.
 */
#include "ctx.h"

#include "arch/vec.h"
#include "err.h"
#include "pool.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* ---- sequences ----------------------------------------------------------------------- */

/* The cache is calloc'ed: large blocks come from fresh zero pages, so a
 * sequence costs memory only as far as it has been filled (a context whose
 * default sequence is never used, as in a server that evaluates its own
 * sequences only, pays address space, not RAM). */
static int seq_alloc(struct hr_ctx *c, int32_t n_ctx, struct hr_seq **out)
{
    const struct hparams *hp = &c->model->hp;
    size_t cache = (size_t)hp->n_layer * (size_t)n_ctx * (size_t)(hp->n_head_kv * hp->head_dim);
    struct hr_seq *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->ctx = c;
    s->n_ctx = n_ctx;
    if (c->kv_f16 ? !(s->k16 = calloc(cache, sizeof(fp16))) ||
                        !(s->v16 = calloc(cache, sizeof(fp16)))
                  : !(s->k_cache = calloc(cache, sizeof(float))) ||
                        !(s->v_cache = calloc(cache, sizeof(float)))) {
        hr_seq_free(s);
        return -ENOMEM;
    }
    *out = s;
    return 0;
}

int hr_seq_new(struct hr_ctx *c, int32_t n_ctx, struct hr_seq **out, struct hr_err *err)
{
    hr_err_clear(err);
    if (n_ctx < 0)
        return hr_err_set(err, -EINVAL, -1, "sequence length %d is negative", n_ctx);
    if (n_ctx == 0)
        n_ctx = c->n_ctx;
    int rc = seq_alloc(c, n_ctx, out);
    if (rc < 0)
        return hr_err_set(err, rc, -1, "cannot allocate a KV cache of %d tokens (out of memory)",
                          n_ctx);
    return 0;
}

void hr_seq_free(struct hr_seq *s)
{
    if (!s)
        return;
    lora_set_done(&s->loras);
    free(s->k_cache);
    free(s->v_cache);
    free(s->k16);
    free(s->v16);
    free(s);
}

int32_t hr_seq_n_past(const struct hr_seq *s)
{
    return s->n_past;
}

int32_t hr_seq_n_ctx(const struct hr_seq *s)
{
    return s->n_ctx;
}

void hr_seq_truncate(struct hr_seq *s, int32_t n_past)
{
    if (n_past < 0)
        n_past = 0;
    if (n_past < s->n_past)
        s->n_past = n_past;
}

/* ---- context ------------------------------------------------------------------------- */

int hr_ctx_new(struct hr_model *m, const struct hr_ctx_params *params, struct hr_ctx **out,
               struct hr_err *err)
{
    hr_err_clear(err);
    if (m->vocab_only)
        return hr_err_set(err, -EINVAL, -1, "model was loaded vocab-only: it cannot evaluate");
    if (params && params->kv_type != HR_TYPE_F32 && params->kv_type != HR_TYPE_F16)
        return hr_err_set(err, -EINVAL, -1, "unsupported KV cache type %s (use f32 or f16)",
                          hr_type_name(params->kv_type) ? hr_type_name(params->kv_type) : "?");
    const struct hparams *hp = &m->hp;
    struct hr_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    c->model = m;
    c->vec = vec_kernels();
    c->kv_f16 = params && params->kv_type == HR_TYPE_F16;
    c->n_ctx = params && params->n_ctx > 0 ? params->n_ctx
               : hp->n_ctx_train < 4096 ? (int32_t)hp->n_ctx_train : 4096;
    c->n_batch = params && params->n_batch > 0 ? params->n_batch : 512;
    if (c->n_batch > c->n_ctx)
        c->n_batch = c->n_ctx;
    int n_threads = params && params->n_threads > 0 ? params->n_threads : 0;
    if (n_threads <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = n > 0 ? (int)n : 1;
    }
    int rc = pool_new(n_threads, &c->pool);
    if (rc < 0)
        goto fail;

    size_t T = (size_t)c->n_batch, hd = (size_t)hp->head_dim;
    size_t n_embd = (size_t)hp->n_embd, n_q = (size_t)hp->n_head * hd;
    size_t n_kv = (size_t)hp->n_head_kv * hd;
    size_t n_ff = (size_t)hp->n_ff, n_vocab = (size_t)hp->n_vocab;
    size_t max_in = n_embd > n_q ? n_embd : n_q;
    if (n_ff > max_in)
        max_in = n_ff;
    c->wdata_size = T * max_in * 4 + 4096;
    size_t per_thread = forward_scratch_floats(hp);
    if ((rc = seq_alloc(c, c->n_ctx, &c->seq0)) < 0)
        goto fail;
    rc = -ENOMEM;
    if (!(c->x = malloc(T * n_embd * sizeof(float))) ||
        !(c->xn = malloc(T * n_embd * sizeof(float))) ||
        !(c->tmp = malloc(T * n_embd * sizeof(float))) ||
        !(c->q = malloc(T * n_q * sizeof(float))) ||
        !(c->att = malloc(T * n_q * sizeof(float))) ||
        !(c->k = malloc(T * n_kv * sizeof(float))) ||
        !(c->v = malloc(T * n_kv * sizeof(float))) ||
        !(c->g = malloc(T * n_ff * sizeof(float))) ||
        !(c->u = malloc(T * n_ff * sizeof(float))) ||
        !(c->scores = malloc((size_t)n_threads * per_thread * sizeof(float))) ||
        !(c->wdata = malloc(c->wdata_size)) ||
        !(c->rope_cos = malloc(T * (size_t)(hp->n_rot / 2) * sizeof(float))) ||
        !(c->rope_sin = malloc(T * (size_t)(hp->n_rot / 2) * sizeof(float))) ||
        !(c->logits = malloc(T * n_vocab * sizeof(float))) ||
        !(c->items = malloc(T * sizeof *c->items)) ||
        !(c->row_tok = malloc(T * sizeof(int32_t))) ||
        !(c->row_pos = malloc(T * sizeof(int32_t))) ||
        !(c->row_item = malloc(T * sizeof(int32_t))) ||
        !(c->out_rows = malloc(T * sizeof(int32_t))))
        goto fail;
    *out = c;
    return 0;
fail:
    hr_err_set(err, rc, -1, "cannot allocate a context of %d tokens (%s)", c->n_ctx,
               rc == -ENOMEM ? "out of memory" : "thread creation failed");
    hr_ctx_free(c);
    return rc;
}

void hr_ctx_free(struct hr_ctx *c)
{
    if (!c)
        return;
    pool_free(c->pool);
    hr_seq_free(c->seq0);
    lora_scratch_done(&c->lora);
    free(c->x);
    free(c->xn);
    free(c->tmp);
    free(c->q);
    free(c->att);
    free(c->k);
    free(c->v);
    free(c->g);
    free(c->u);
    free(c->scores);
    free(c->wdata);
    free(c->rope_cos);
    free(c->rope_sin);
    free(c->logits);
    free(c->items);
    free(c->row_tok);
    free(c->row_pos);
    free(c->row_item);
    free(c->out_rows);
    free(c);
}

void hr_ctx_set_abort(struct hr_ctx *c, hr_abort_fn fn, void *user)
{
    c->abort_fn = fn;
    c->abort_user = fn ? user : NULL;
}

/* ---- evaluation ---------------------------------------------------------------------- */

/* Appends item (s, tokens[0..n)) to the plan being built: its rows follow
 * the rows planned so far (*T), at s's next positions. */
static void plan_item(struct hr_ctx *c, struct hr_seq *s, const int32_t *tokens, int32_t n,
                      int32_t *T)
{
    int32_t i = c->n_items++;
    c->items[i] = (struct fwd_item){s, *T, n};
    for (int32_t j = 0; j < n; j++) {
        c->row_tok[*T + j] = tokens[j];
        c->row_pos[*T + j] = s->n_past + j;
        c->row_item[*T + j] = i;
    }
    *T += n;
}

/* The checks of one sequence's tokens; `what` names it in messages ("" or
 * "item 2: "). */
static int check_tokens(const struct hr_ctx *c, const struct hr_seq *s, const int32_t *tokens,
                        int32_t n, const char *what, struct hr_err *err)
{
    int64_t n_vocab = c->model->hp.n_vocab;
    if (n <= 0 || !tokens)
        return hr_err_set(err, -EINVAL, -1, "%snothing to evaluate (%d tokens)", what, n);
    for (int32_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= n_vocab)
            return hr_err_set(err, -EINVAL, -1,
                              "%stoken id %d at position %d is out of range (vocabulary has "
                              "%lld tokens)",
                              what, tokens[i], i, (long long)n_vocab);
    if ((int64_t)s->n_past + n > s->n_ctx)
        return hr_err_set(err, -ENOSPC, -1,
                          "%scontext is full: %d tokens cached, %d more do not fit in %d "
                          "(room for %d)",
                          what, s->n_past, n, s->n_ctx, s->n_ctx - s->n_past);
    return 0;
}

int hr_ctx_eval(struct hr_ctx *c, const int32_t *tokens, int32_t n, bool all_logits,
                struct hr_err *err)
{
    hr_err_clear(err);
    struct hr_seq *s = c->seq0;
    int rc = check_tokens(c, s, tokens, n, "", err);
    if (rc < 0)
        return rc;
    if (all_logits && n > c->n_batch)
        return hr_err_set(err, -EINVAL, -1,
                          "all logits of %d tokens requested but the batch size is %d", n,
                          c->n_batch);
    int32_t n_past0 = s->n_past;
    c->n_eval_last = n;
    c->n_logits = 0;
    for (int32_t done = 0; done < n;) {
        int32_t T = 0, chunk = n - done < c->n_batch ? n - done : c->n_batch;
        c->n_items = 0;
        plan_item(c, s, tokens + done, chunk, &T);
        c->n_out = all_logits ? T : 1;
        for (int32_t i = 0; i < c->n_out; i++)
            c->out_rows[i] = T - c->n_out + i;
        if (forward_pass(c, T) < 0) {
            s->n_past = n_past0; /* earlier chunks' rows are past it: forgotten */
            return hr_err_set(err, -ECANCELED, -1, "evaluation cancelled after %d of %d tokens",
                              done, n);
        }
        done += T;
    }
    c->n_logits = c->n_out;
    return 0;
}

int hr_ctx_eval_batch(struct hr_ctx *c, struct hr_batch_item *items, int32_t n_items,
                      struct hr_err *err)
{
    hr_err_clear(err);
    if (n_items <= 0 || !items)
        return hr_err_set(err, -EINVAL, -1, "nothing to evaluate (%d items)", n_items);
    uint64_t gen = ++c->batch_gen;
    int64_t total = 0;
    for (int32_t i = 0; i < n_items; i++) {
        struct hr_seq *s = items[i].seq;
        if (!s)
            return hr_err_set(err, -EINVAL, -1, "item %d has no sequence", i);
        if (s->ctx != c)
            return hr_err_set(err, -EINVAL, -1,
                              "item %d: its sequence belongs to another context", i);
        if (s->mark_gen == gen)
            return hr_err_set(err, -EINVAL, -1, "item %d: its sequence is also item %d", i,
                              s->mark_item);
        s->mark_gen = gen;
        s->mark_item = i;
        if (items[i].n > 0)
            total += items[i].n;
    }
    if (total > c->n_batch)
        return hr_err_set(err, -EINVAL, -1,
                          "%lld tokens in %d items exceed the batch size %d",
                          (long long)total, n_items, c->n_batch);
    for (int32_t i = 0; i < n_items; i++) {
        char what[32];
        snprintf(what, sizeof what, "item %d: ", i);
        int rc = check_tokens(c, items[i].seq, items[i].tokens, items[i].n, what, err);
        if (rc < 0)
            return rc;
    }

    int32_t T = 0;
    c->n_items = 0;
    c->n_out = n_items;
    for (int32_t i = 0; i < n_items; i++) {
        plan_item(c, items[i].seq, items[i].tokens, items[i].n, &T);
        c->out_rows[i] = T - 1;
    }
    c->n_logits = 0; /* hr_ctx_logits answers for hr_ctx_eval only */
    if (forward_pass(c, T) < 0)
        return hr_err_set(err, -ECANCELED, -1, "evaluation of %d items cancelled", n_items);
    size_t n_vocab = (size_t)c->model->hp.n_vocab;
    for (int32_t i = 0; i < n_items; i++)
        items[i].logits = c->logits + (size_t)i * n_vocab;
    return 0;
}

const float *hr_ctx_logits(const struct hr_ctx *c, int32_t i)
{
    if (c->n_logits == 0)
        return NULL;
    /* the kept rows are tokens [n_eval_last - n_logits, n_eval_last) */
    int32_t row = i < 0 ? c->n_logits - 1 : i - (c->n_eval_last - c->n_logits);
    if (row < 0 || row >= c->n_logits)
        return NULL;
    return c->logits + (size_t)row * (size_t)c->model->hp.n_vocab;
}

int32_t hr_ctx_n_past(const struct hr_ctx *c)
{
    return c->seq0->n_past;
}

int32_t hr_ctx_n_ctx(const struct hr_ctx *c)
{
    return c->n_ctx;
}

void hr_ctx_truncate(struct hr_ctx *c, int32_t n_past)
{
    hr_seq_truncate(c->seq0, n_past);
}
