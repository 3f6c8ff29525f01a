/*
 * train_graph.c — one training pass over T tokens (train.h): the forward
 * pass through every layer of the frozen base plus the LoRA deltas, the
 * loss head (RMSNorm, output projection, cross-entropy on the labelled
 * tokens), and the backward pass into the activations, leaving the
 * gradients of every A and B in t->grad.
 *
 * Memory: a pass keeps, per layer and token, what its backward needs
 * (struct train_acts: the layer input, the normed inputs, q/k/v after RoPE,
 * the attention output and log-sum-exps, the residual, gate and up, and
 * A·x of each pair) — about 2·E + 3·n_q + 2·n_kv + 2·F floats; with
 * recomputation only the layer input is kept and the rest is recomputed
 * one layer at a time during the backward pass (one more forward's work).
 * The loss head works on chunks of head_C labelled rows so that only
 * head_C × n_vocab logits exist at a time; rows without a label skip it.
 *
 * Layer forward (x → x'), the shapes [T][width]:
 *   xn1 = RMSNorm(x)⊙attn_norm                          [E]
 *   q = Wq·xn1 + s·Bq·Aq·xn1 + bq (qwen3: head norm), RoPE   [n_q]; k, v alike [n_kv]
 *   o = attention(q, k, v) with the packing mask         [n_q]
 *   h1 = x + Wo·o + s·Bo·Ao·o + bo                        [E]
 *   xn2 = RMSNorm(h1)⊙ffn_norm; g, u = W·xn2 + deltas      [F]
 *   x' = h1 + Wd·(silu(g)⊙u) + delta                      [E]
 * and its backward in reverse order, products with Wᵀ through the
 * transposed copies (train_mm.c).
 */
#include "train.h"

#include "pool.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- buffers ------------------------------------------------------------------------------ */

/* Lays out the arrays of one set of activations from `base` (NULL: only
 * counts) and returns its size in floats. full: everything, else x only. */
static size_t acts_layout(const struct hr_train *t, struct train_acts *a, float *base, bool full)
{
    const struct hparams *hp = &t->model->hp;
    size_t T = (size_t)t->pass_T, E = (size_t)hp->n_embd, hd = (size_t)hp->head_dim;
    size_t nq = (size_t)hp->n_head * hd, nkv = (size_t)hp->n_head_kv * hd, F = (size_t)hp->n_ff;
    size_t off = 0;
#define TAKE(field, n)                                                                             \
    do {                                                                                           \
        if (base) a->field = base + off;                                                           \
        off += (n + 15) / 16 * 16;                                                                 \
    } while (0)
    if (base) memset(a, 0, sizeof *a);
    TAKE(x, T * E);
    if (!full) return off;
    TAKE(r1, T);
    TAKE(xn1, T * E);
    if (t->model->arch == ARCH_QWEN3) {
        TAKE(qp, T * nq);
        TAKE(kp, T * nkv);
        TAKE(qr, T * (size_t)hp->n_head);
        TAKE(kr, T * (size_t)hp->n_head_kv);
    }
    TAKE(q, T * nq);
    TAKE(k, T * nkv);
    TAKE(v, T * nkv);
    TAKE(lse, T * (size_t)hp->n_head);
    TAKE(o, T * nq);
    TAKE(h1, T * E);
    TAKE(r2, T);
    TAKE(xn2, T * E);
    TAKE(g, T * F);
    TAKE(u, T * F);
    for (int k = 0; k < TK_COUNT; k++)
        if (t->p.targets & (1u << k)) TAKE(ax[k], T * (size_t)t->p.rank);
#undef TAKE
    return off;
}

void tgraph_free(struct hr_train *t)
{
    if (t->acts) free(t->acts[0].x);
    free(t->acts);
    free(t->work.x);
    free(t->x_out);
    free(t->tok);
    free(t->lab);
    free(t->pos);
    free(t->dx);
    free(t->dh);
    free(t->dt);
    free(t->dxn);
    free(t->dq);
    free(t->dk);
    free(t->dv);
    free(t->dat);
    free(t->hbuf);
    free(t->dg);
    free(t->du);
    free(t->lbuf);
    free(t->dsum);
    free(t->seg_end);
    free(t->ascratch);
    free(t->atr);
    free(t->logits);
    free(t->hx);
    free(t->hrow);
    free(t->wdata);
    free(t->rope_cos);
    free(t->rope_sin);
    t->acts = NULL;
}

int tgraph_alloc(struct hr_train *t, bool alloc)
{
    const struct hparams *hp = &t->model->hp;
    size_t T = (size_t)t->pass_T, E = (size_t)hp->n_embd, hd = (size_t)hp->head_dim;
    size_t nq = (size_t)hp->n_head * hd, nkv = (size_t)hp->n_head_kv * hd, F = (size_t)hp->n_ff;
    size_t V = (size_t)hp->n_vocab, L = (size_t)hp->n_layer, r = (size_t)t->p.rank;
    /* the head: chunks of at most 64 MiB of logits */
    size_t C = ((size_t)64 << 20) / (V * sizeof(float));
    if (C < 8) C = 8;
    if (C > T) C = T;
    t->head_C = (int64_t)C;

    size_t per_layer = acts_layout(t, &t->work, NULL, !t->p.recompute);
    size_t work = t->p.recompute ? acts_layout(t, &t->work, NULL, true) : 0;
    size_t max_w = E > nq ? E : nq;
    if (F > max_w) max_w = F;
    size_t wdata = T * max_w * 4;
    if (C * V * 4 > wdata) wdata = C * V * 4;
    t->wdata_size = wdata + 4096;
    size_t n_ctx = (size_t)t->p.n_ctx, n_half = (size_t)hp->n_rot / 2;
    t->act_bytes = (per_layer * L + work + T * E) * sizeof(float);
    t->scratch_bytes =
        (T * (4 * E + 2 * nq + 2 * nkv + 3 * F + r + (size_t)hp->n_head) +
         (size_t)t->n_threads *
             (size_t)top_attn_scratch((int64_t)n_ctx, (int64_t)hd, hp->n_head, hp->n_head_kv) +
         C * V + (size_t)top_attn_tsize((int64_t)T, hp->n_head, hp->n_head_kv, hp->head_dim) +
         C * E + 2 * n_ctx * n_half) *
            sizeof(float) +
        T * 4 * sizeof(int32_t) + C * sizeof(int32_t) + t->wdata_size;
    if (!alloc) return 0;

    if (!(t->acts = calloc(L, sizeof *t->acts))) return -ENOMEM;
    float *blk = malloc(per_layer * L * sizeof(float));
    if (!blk) return -ENOMEM;
    for (size_t l = 0; l < L; l++)
        acts_layout(t, &t->acts[l], blk + l * per_layer, !t->p.recompute);
    if (t->p.recompute) {
        float *wb = malloc(work * sizeof(float));
        if (!wb) return -ENOMEM;
        acts_layout(t, &t->work, wb, true);
    }
#define A(p, n) ((p = malloc((n) * sizeof *(p))) != NULL)
    if (!A(t->x_out, T * E) || !A(t->tok, T) || !A(t->lab, T) || !A(t->pos, T) ||
        !A(t->dx, T * E) || !A(t->dh, T * E) || !A(t->dt, T * E) || !A(t->dxn, T * E) ||
        !A(t->dq, T * nq) || !A(t->dk, T * nkv) || !A(t->dv, T * nkv) || !A(t->dat, T * nq) ||
        !A(t->hbuf, T * F) || !A(t->dg, T * F) || !A(t->du, T * F) || !A(t->lbuf, T * r) ||
        !A(t->dsum, T * (size_t)hp->n_head) || !A(t->seg_end, T) ||
        !A(t->ascratch,
           (size_t)t->n_threads *
               (size_t)top_attn_scratch((int64_t)n_ctx, (int64_t)hd, hp->n_head, hp->n_head_kv)) ||
        !A(t->atr, (size_t)top_attn_tsize((int64_t)T, hp->n_head, hp->n_head_kv, hp->head_dim)) ||
        !A(t->logits, C * V) || !A(t->hx, C * E) || !A(t->hrow, C) ||
        !A(t->rope_cos, n_ctx * n_half) || !A(t->rope_sin, n_ctx * n_half))
        return -ENOMEM;
#undef A
    if (!(t->wdata = malloc(t->wdata_size))) return -ENOMEM;
    top_rope_tables(hp, t->model->rope_freqs, (int64_t)n_ctx, t->rope_cos, t->rope_sin);
    return 0;
}

/* ---- elementwise work in parallel ----------------------------------------------------- */

/* Row-wise and elementwise steps run on the pool too: on two cores a
 * step left to one thread costs the other one its time. Each task owns a
 * range of rows (or elements), so the results do not depend on the split. */
enum ew_op {
    EW_NORM,       /* r[i] = rmsnorm(out_i, a_i, w) */
    EW_ADD_NORM,   /* sum_i = a_i + b_i (+ bias), then r[i] = rmsnorm(out_i, sum_i, w) */
    EW_NORM_BWD,   /* dx_i (+)= rmsnorm_bwd(dy_i; a_i, w, r[i]) */
    EW_ADD,        /* sum_i = a_i + b_i (+ bias) */
    EW_BIAS,       /* out_i += bias */
    EW_SWIGLU,     /* out = silu(a)⊙b over elements */
    EW_SWIGLU_BWD, /* out (dg), sum (du) from dy (dh) aliasing out, a (g), b (u) */
    EW_ROPE,       /* rope rows of out in place (inverse: acc) */
};

struct ew_job {
    struct hr_train *t;
    enum ew_op op;
    int64_t n;     /* row width (elements per row; EW_SWIGLU*: total elements) */
    int64_t rows;  /* rows per task */
    int64_t total; /* rows (EW_SWIGLU*: elements) */
    float *out, *sum, *dx, *r;
    const float *a, *b, *w, *dy, *bias;
    bool acc;
    int64_t heads; /* EW_ROPE */
};

static void ew_task(void *arg, int64_t task, int thread)
{
    const struct ew_job *j = arg;
    const struct hparams *hp = &j->t->model->hp;
    int64_t i0 = task * j->rows, i1 = i0 + j->rows < j->total ? i0 + j->rows : j->total;
    int64_t n = j->n;
    switch (j->op) {
    case EW_SWIGLU:
        top_swiglu(j->out + i0, j->a + i0, j->b + i0, i1 - i0);
        return;
    case EW_SWIGLU_BWD:
        top_swiglu_bwd(j->out + i0, j->sum + i0, j->dy + i0, j->a + i0, j->b + i0, i1 - i0);
        return;
    case EW_ROPE:
        top_rope(j->out + i0 * j->heads * hp->head_dim, j->t->pos + i0, i1 - i0, j->heads, hp,
                 j->t->rope_cos, j->t->rope_sin, j->acc);
        return;
    default:
        break;
    }
    for (int64_t i = i0; i < i1; i++) {
        switch (j->op) {
        case EW_NORM:
            j->r[i] = top_rmsnorm(j->out + i * n, j->a + i * n, j->w, n, hp->eps);
            break;
        case EW_ADD:
        case EW_ADD_NORM: {
            float *s = j->sum + i * n;
            const float *a = j->a + i * n, *b = j->b + i * n;
            for (int64_t k = 0; k < n; k++)
                s[k] = a[k] + (j->bias ? b[k] + j->bias[k] : b[k]);
            if (j->op == EW_ADD_NORM) j->r[i] = top_rmsnorm(j->out + i * n, s, j->w, n, hp->eps);
            break;
        }
        case EW_NORM_BWD:
            top_rmsnorm_bwd(j->dx + i * n, j->dy + i * n, j->a + i * n, j->w, j->r[i], n, j->acc);
            break;
        case EW_BIAS: {
            float *o = j->out + i * n;
            for (int64_t k = 0; k < n; k++)
                o[k] += j->bias[k];
            break;
        }
        default:
            break;
        }
    }
}

static void ew_run(struct ew_job *j)
{
    int64_t per = j->op == EW_SWIGLU || j->op == EW_SWIGLU_BWD ? 16384 : 4;
    j->rows = per;
    pool_run(j->t->pool, ew_task, j, (j->total + per - 1) / per);
}

/* ---- layers ---------------------------------------------------------------------------------- */

static const struct train_target *target(const struct hr_train *t, int64_t il, int kind)
{
    const struct train_target *tg = &t->tg[il * TK_COUNT + kind];
    return tg->w ? tg : NULL;
}

static const struct weight *base_weight(const struct layer *l, int kind)
{
    const struct weight *ws[TK_COUNT] = {&l->wq,   &l->wk, &l->wv,  &l->wo,
                                         &l->gate, &l->up, &l->down};
    return ws[kind];
}

static void add_bias(struct hr_train *t, float *y, const float *b, int64_t T, int64_t n)
{
    if (!b) return;
    struct ew_job j = {.t = t, .op = EW_BIAS, .n = n, .total = T, .out = y, .bias = b};
    ew_run(&j);
}

/* y = W·x (+ the pair's delta, keeping A·x in a->ax[kind]) */
static void product(struct hr_train *t, struct train_acts *a, int64_t il, int kind, const float *x,
                    float *y, int64_t T)
{
    const struct layer *l = &t->model->layers[il];
    double t0 = train_clock();
    tmm(t, base_weight(l, kind), x, y, T);
    double t1 = train_clock();
    t->prof[TP_FWD_MM] += t1 - t0;
    const struct train_target *tg = target(t, il, kind);
    if (tg) {
        tlora_fwd(t, tg, x, a->ax[kind], y, T);
        t->prof[TP_LORA] += train_clock() - t1;
    }
}

/* dx = Wᵀ·dy (accumulate: dx += ...) plus the pair's part, and the pair's
 * gradients; dx NULL: the gradients only. */
static void product_bwd(struct hr_train *t, struct train_acts *a, int64_t il, int kind,
                        const float *x, const float *dy, float *dx, bool accumulate, int64_t T)
{
    const struct train_target *tg = target(t, il, kind);
    double t0 = train_clock();
    if (dx) {
        const struct weight *wt = &t->wt[il * TK_COUNT + kind];
        if (accumulate) {
            tmm(t, wt, dy, t->dt, T);
            tmm_add(t, dx, t->dt, T * wt->n_out);
        } else {
            tmm(t, wt, dy, dx, T);
        }
    }
    double t1 = train_clock();
    t->prof[TP_BWD_MM] += t1 - t0;
    if (tg) {
        tlora_bwd(t, tg, x, a->ax[kind], dy, dx, T);
        t->prof[TP_LORA] += train_clock() - t1;
    }
}

static void attn_setup(struct hr_train *t, struct top_attn *at, struct train_acts *a, int64_t T)
{
    const struct hparams *hp = &t->model->hp;
    *at =
        (struct top_attn){T,     hp->n_head, hp->n_head_kv, hp->head_dim, t->p.n_ctx, t->pos, a->q,
                          a->k,  a->v,       a->o,          a->lse,       t->dat,     t->dq,  t->dk,
                          t->dv, t->dsum,    t->seg_end,    t->ascratch,  t->atr};
}

static void layer_fwd(struct hr_train *t, int64_t il, struct train_acts *a, const float *x,
                      float *xo, int64_t T)
{
    const struct hparams *hp = &t->model->hp;
    const struct layer *l = &t->model->layers[il];
    int64_t E = hp->n_embd, hd = hp->head_dim, nq = hp->n_head * hd, nkv = hp->n_head_kv * hd;
    int64_t F = hp->n_ff;
    bool qk_norm = l->q_norm != NULL;

    double t0 = train_clock();
    struct ew_job j = {.t = t,
                       .op = EW_NORM,
                       .n = E,
                       .total = T,
                       .out = a->xn1,
                       .a = x,
                       .w = l->attn_norm,
                       .r = a->r1};
    ew_run(&j);
    t->prof[TP_OTHER] += train_clock() - t0;
    float *qd = qk_norm ? a->qp : a->q, *kd = qk_norm ? a->kp : a->k;
    product(t, a, il, TK_Q, a->xn1, qd, T);
    product(t, a, il, TK_K, a->xn1, kd, T);
    product(t, a, il, TK_V, a->xn1, a->v, T);
    t0 = train_clock();
    add_bias(t, qd, l->bq, T, nq);
    add_bias(t, kd, l->bk, T, nkv);
    add_bias(t, a->v, l->bv, T, nkv);
    if (qk_norm) {
        j = (struct ew_job){.t = t,
                            .op = EW_NORM,
                            .n = hd,
                            .total = T * hp->n_head,
                            .out = a->q,
                            .a = a->qp,
                            .w = l->q_norm,
                            .r = a->qr};
        ew_run(&j);
        j = (struct ew_job){.t = t,
                            .op = EW_NORM,
                            .n = hd,
                            .total = T * hp->n_head_kv,
                            .out = a->k,
                            .a = a->kp,
                            .w = l->k_norm,
                            .r = a->kr};
        ew_run(&j);
    }
    j = (struct ew_job){.t = t, .op = EW_ROPE, .total = T, .out = a->q, .heads = hp->n_head};
    ew_run(&j);
    j = (struct ew_job){.t = t, .op = EW_ROPE, .total = T, .out = a->k, .heads = hp->n_head_kv};
    ew_run(&j);
    double t1 = train_clock();
    t->prof[TP_OTHER] += t1 - t0;

    struct top_attn at;
    attn_setup(t, &at, a, T);
    top_attn_fwd(t->pool, &at);
    t->prof[TP_ATTN_FWD] += train_clock() - t1;

    product(t, a, il, TK_O, a->o, t->dt, T);
    t0 = train_clock();
    j = (struct ew_job){.t = t,
                        .op = EW_ADD_NORM,
                        .n = E,
                        .total = T,
                        .out = a->xn2,
                        .sum = a->h1,
                        .a = x,
                        .b = t->dt,
                        .bias = l->bo,
                        .w = l->ffn_norm,
                        .r = a->r2};
    ew_run(&j);
    t->prof[TP_OTHER] += train_clock() - t0;
    product(t, a, il, TK_GATE, a->xn2, a->g, T);
    product(t, a, il, TK_UP, a->xn2, a->u, T);
    t0 = train_clock();
    j = (struct ew_job){
        .t = t, .op = EW_SWIGLU, .total = T * F, .out = t->hbuf, .a = a->g, .b = a->u};
    ew_run(&j);
    t->prof[TP_OTHER] += train_clock() - t0;
    product(t, a, il, TK_DOWN, t->hbuf, t->dt, T);
    t0 = train_clock();
    j = (struct ew_job){
        .t = t, .op = EW_ADD, .n = E, .total = T, .sum = xo, .a = a->h1, .b = t->dt};
    ew_run(&j);
    t->prof[TP_OTHER] += train_clock() - t0;
}

/* t->dx holds the gradient of the layer's output; leaves that of its input
 * (need_dx false: the first layer, whose input gradient nobody uses). */
static void layer_bwd(struct hr_train *t, int64_t il, struct train_acts *a, const float *x,
                      int64_t T, bool need_dx)
{
    const struct hparams *hp = &t->model->hp;
    const struct layer *l = &t->model->layers[il];
    int64_t E = hp->n_embd, hd = hp->head_dim, F = hp->n_ff;
    float *dx = t->dx;

    /* FFN: x' = h1 + down(silu(g)⊙u) */
    double t0 = train_clock();
    struct ew_job j = {
        .t = t, .op = EW_SWIGLU, .total = T * F, .out = t->hbuf, .a = a->g, .b = a->u};
    ew_run(&j);
    t->prof[TP_OTHER] += train_clock() - t0;
    product_bwd(t, a, il, TK_DOWN, t->hbuf, dx, t->dg, false, T);
    t0 = train_clock();
    j = (struct ew_job){.t = t,
                        .op = EW_SWIGLU_BWD,
                        .total = T * F,
                        .out = t->dg,
                        .sum = t->du,
                        .dy = t->dg,
                        .a = a->g,
                        .b = a->u};
    ew_run(&j);
    t->prof[TP_OTHER] += train_clock() - t0;
    product_bwd(t, a, il, TK_GATE, a->xn2, t->dg, t->dxn, false, T);
    product_bwd(t, a, il, TK_UP, a->xn2, t->du, t->dxn, true, T);
    t0 = train_clock();
    j = (struct ew_job){.t = t,
                        .op = EW_NORM_BWD,
                        .n = E,
                        .total = T,
                        .dx = dx,
                        .dy = t->dxn,
                        .a = a->h1,
                        .w = l->ffn_norm,
                        .r = a->r2,
                        .acc = true};
    ew_run(&j); /* dx becomes dh1 */
    t->prof[TP_OTHER] += train_clock() - t0;

    /* attention: h1 = x + Wo·o */
    product_bwd(t, a, il, TK_O, a->o, dx, t->dat, false, T);
    t0 = train_clock();
    struct top_attn at;
    attn_setup(t, &at, a, T);
    top_attn_bwd(t->pool, &at);
    double t1 = train_clock();
    t->prof[TP_ATTN_BWD] += t1 - t0;
    j = (struct ew_job){
        .t = t, .op = EW_ROPE, .total = T, .out = t->dq, .heads = hp->n_head, .acc = true};
    ew_run(&j);
    j = (struct ew_job){
        .t = t, .op = EW_ROPE, .total = T, .out = t->dk, .heads = hp->n_head_kv, .acc = true};
    ew_run(&j);
    if (l->q_norm) {
        j = (struct ew_job){.t = t,
                            .op = EW_NORM_BWD,
                            .n = hd,
                            .total = T * hp->n_head,
                            .dx = t->dq,
                            .dy = t->dq,
                            .a = a->qp,
                            .w = l->q_norm,
                            .r = a->qr};
        ew_run(&j);
        j = (struct ew_job){.t = t,
                            .op = EW_NORM_BWD,
                            .n = hd,
                            .total = T * hp->n_head_kv,
                            .dx = t->dk,
                            .dy = t->dk,
                            .a = a->kp,
                            .w = l->k_norm,
                            .r = a->kr};
        ew_run(&j);
    }
    t->prof[TP_OTHER] += train_clock() - t1;
    float *dxn = need_dx ? t->dxn : NULL;
    product_bwd(t, a, il, TK_Q, a->xn1, t->dq, dxn, false, T);
    product_bwd(t, a, il, TK_K, a->xn1, t->dk, dxn, true, T);
    product_bwd(t, a, il, TK_V, a->xn1, t->dv, dxn, true, T);
    if (need_dx) {
        t0 = train_clock();
        j = (struct ew_job){.t = t,
                            .op = EW_NORM_BWD,
                            .n = E,
                            .total = T,
                            .dx = dx,
                            .dy = t->dxn,
                            .a = x,
                            .w = l->attn_norm,
                            .r = a->r1,
                            .acc = true};
        ew_run(&j);
        t->prof[TP_OTHER] += train_clock() - t0;
    }
}

/* ---- the loss head --------------------------------------------------------------------------- */

struct xent_job {
    float *logits;
    int64_t V;
    const int32_t *lab, *rows;
    float gscale;
    double *loss; /* [n] */
};

static void xent_task(void *arg, int64_t c, int thread)
{
    const struct xent_job *j = arg;
    j->loss[c] = top_xent(j->logits + c * j->V, j->V, j->lab[j->rows[c]], j->gscale);
}

/* Loss of the labelled rows of x[T][E]; with backward, t->dx = its gradient
 * (rows without a label: 0). */
static int head(struct hr_train *t, const float *x, int64_t T, bool backward, float gscale,
                double *loss_sum)
{
    const struct hr_model *m = t->model;
    int64_t E = m->hp.n_embd, V = m->hp.n_vocab;
    double losses[64];
    if (backward) memset(t->dx, 0, (size_t)(T * E) * sizeof(float));
    int64_t i = 0;
    while (i < T) {
        int64_t C = 0;
        for (; i < T && C < t->head_C; i++)
            if (t->lab[i] >= 0) t->hrow[C++] = (int32_t)i;
        if (!C) break;
        float *rs = t->dsum; /* free during the head: [T] floats */
        for (int64_t c = 0; c < C; c++)
            rs[c] = top_rmsnorm(t->hx + c * E, x + (int64_t)t->hrow[c] * E, m->output_norm, E,
                                m->hp.eps);
        double t0 = train_clock();
        tmm(t, &m->output, t->hx, t->logits, C);
        double t1 = train_clock();
        t->prof[TP_HEAD] += t1 - t0;
        add_bias(t, t->logits, m->output_bias, C, V);
        for (int64_t c0 = 0; c0 < C; c0 += 64) {
            int64_t n = C - c0 < 64 ? C - c0 : 64;
            struct xent_job j = {t->logits + c0 * V, V, t->lab, t->hrow + c0, gscale, losses};
            pool_run(t->pool, xent_task, &j, n);
            for (int64_t c = 0; c < n; c++)
                *loss_sum += losses[c];
        }
        t0 = train_clock();
        t->prof[TP_XENT] += t0 - t1;
        if (backward) {
            const struct weight *wt = &t->wt[m->hp.n_layer * TK_COUNT];
            float *dhx = t->dh; /* [C][E], C <= T */
            tmm(t, wt, t->logits, dhx, C);
            t->prof[TP_HEAD] += train_clock() - t0;
            for (int64_t c = 0; c < C; c++)
                top_rmsnorm_bwd(t->dx + (int64_t)t->hrow[c] * E, dhx + c * E,
                                x + (int64_t)t->hrow[c] * E, m->output_norm, rs[c], E, false);
        }
    }
    return 0;
}

/* ---- a pass ------------------------------------------------------------------------------------
 */

static bool aborted(const struct hr_train *t)
{
    return t->abort_fn && t->abort_fn(t->abort_user);
}

int tgraph_pass(struct hr_train *t, int64_t T, bool backward, float gscale, double *loss_sum)
{
    const struct hr_model *m = t->model;
    int64_t E = m->hp.n_embd, L = m->hp.n_layer;

    float *x0 = t->acts[0].x;
    for (int64_t i = 0; i < T; i++)
        m->tok_embd.k->to_float((const char *)m->tok_embd.data +
                                    (size_t)t->tok[i] * m->tok_embd.row_size,
                                x0 + i * E, E);
    for (int64_t il = 0; il < L; il++) {
        if (aborted(t)) return -ECANCELED;
        struct train_acts *a = t->p.recompute ? &t->work : &t->acts[il];
        float *xo = il + 1 < L ? t->acts[il + 1].x : t->x_out;
        layer_fwd(t, il, a, t->acts[il].x, xo, T);
    }
    if (aborted(t)) return -ECANCELED;
    head(t, t->x_out, T, backward, gscale, loss_sum);
    if (!backward) return 0;
    for (int64_t il = L - 1; il >= 0; il--) {
        if (aborted(t)) return -ECANCELED;
        struct train_acts *a = &t->acts[il];
        if (t->p.recompute) {
            a = &t->work;
            float *xo = il + 1 < L ? t->acts[il + 1].x : t->x_out;
            /* recompute writes the layer's output again: the same values */
            layer_fwd(t, il, a, t->acts[il].x, xo, T);
        }
        layer_bwd(t, il, a, t->acts[il].x, T, il > 0);
    }
    return 0;
}
