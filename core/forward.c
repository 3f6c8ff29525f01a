/*
 * forward.c — the forward pass of the llama / qwen2 / qwen3 graphs
 * (FORMATS.md §4.3–§4.5) over a planned batch of rows (ctx.h: the rows of
 * one or more sequences, each at its own positions).
 *
 * Shapes: a pass of T tokens flows as row-major activations [T][width]
 * (one row per token). Matrix products y = W·x quantize each activation row
 * to the weight type's vec_dot_type first, exactly as llama.cpp's CPU
 * backend does, so quantized models see the same activation rounding.
 *
 * Batch independence: every step computes each row from that row alone
 * (norms, RoPE at the row's own position, attention over the row's own
 * sequence) and the matrix kernels compute every output element of a tile
 * with the same operations whatever the tile's width (quant.h: gemm tiles
 * are bit-identical to vec_dot on the integer types; the float tiles sum
 * each element in lanes of its own). Hence a row's logits have the same
 * bits whether it is evaluated alone or beside other sequences' rows — what
 * continuous batching relies on (tests/test_batch.c checks it).
 *
 * LoRA adapters (lora.h): the deltas of each sequence's adapters are added
 * inside matmul, in the same pool runs as the base product, to the rows of
 * that sequence only (each row again on its own).
 *
 * KV cache (one per sequence): per layer [n_ctx][n_head_kv*head_dim] for K
 * (after RoPE) and for V, f32 — the precision the reference data were
 * produced with — or f16.
 *
 * Between the products, the elementwise steps run in parallel over rows
 * and attention over tiles of query heads (both below): the vec.h ops of
 * the active ISA level.
 *
 * forward_pass allocates nothing: the context was sized for n_batch rows.
 */
#include "ctx.h"

#include "arch/vec.h"
#include "pool.h"
#include "quant_impl.h"

#include <errno.h>
#include <math.h>
#include <string.h>

/* ---- matrix product ---------------------------------------------------------- */

struct matmul_job {
    const struct weight *w;
    const void *xq;   /* [T] rows of vec_dot_type */
    size_t xq_row;    /* bytes per converted row */
    const float *xd;  /* [T][n_in / 32] block scales of xq as floats (gemm_packed_xd), or NULL */
    float *y;         /* [T][n_out] */
    int64_t T;
    int64_t rows_per_task; /* a multiple of the kernel's gemm_mr */
    const struct lora_product *lora; /* the adapters' deltas of these rows, or NULL */
};

/* One task = a chunk of output rows for every token. The chunk's weights
 * (a few KB to tens of KB) stay in cache while the token tiles pass over
 * them; with a gemm kernel each call reuses its unpacked weight rows across
 * gemm_nc tokens. */
static void matmul_rows(const struct matmul_job *j, int64_t r0, int64_t r1)
{
    const struct weight *w = j->w;
    const struct quant_kernels *k = w->k;
    const char *wd = w->data;
    if (w->packed) { /* the kernel's own layout, tiles of gemm_mr rows from r0 */
        int mr = k->gemm_mr, nc = quant_packed_nc(k);
        for (int64_t t = 0; t < j->T; t += nc) {
            int tn = j->T - t < nc ? (int)(j->T - t) : nc;
            const char *xr = (const char *)j->xq + (size_t)t * j->xq_row;
            for (int64_t o = r0; o < r1; o += mr) {
                int on = r1 - o < mr ? (int)(r1 - o) : mr;
                float *y = j->y + t * w->n_out + o;
                if (j->xd) {
                    size_t xds = (size_t)w->n_in / 32;
                    k->gemm_packed_xd(w->n_in, y, (size_t)w->n_out, w->packed, o, on, xr,
                                      j->xq_row, j->xd + (size_t)t * xds, xds, tn);
                } else {
                    k->gemm_packed(w->n_in, y, (size_t)w->n_out, w->packed, o, on, xr, j->xq_row,
                                   tn);
                }
            }
        }
        return;
    }
    if (k->gemm) {
        int mr = k->gemm_mr, nc = k->gemm_nc;
        for (int64_t t = 0; t < j->T; t += nc) {
            int tn = j->T - t < nc ? (int)(j->T - t) : nc;
            const char *xr = (const char *)j->xq + (size_t)t * j->xq_row;
            for (int64_t o = r0; o < r1; o += mr) {
                int on = r1 - o < mr ? (int)(r1 - o) : mr;
                k->gemm(w->n_in, j->y + t * w->n_out + o, (size_t)w->n_out,
                        wd + (size_t)o * w->row_size, w->row_size, on, xr, j->xq_row, tn);
            }
        }
        return;
    }
    for (int64_t t = 0; t < j->T; t++) {
        const void *xr = (const char *)j->xq + (size_t)t * j->xq_row;
        float *yr = j->y + t * w->n_out;
        for (int64_t o = r0; o < r1; o++)
            k->vec_dot(w->n_in, &yr[o], wd + (size_t)o * w->row_size, xr);
    }
}

static void matmul_task(void *arg, int64_t task, int thread)
{
    const struct matmul_job *j = arg;
    int64_t n_out = j->w->n_out, r0 = task * j->rows_per_task;
    int64_t r1 = r0 + j->rows_per_task < n_out ? r0 + j->rows_per_task : n_out;
    matmul_rows(j, r0, r1);
    if (j->lora) /* the adapters' deltas of the rows just computed (lora.h) */
        lora_product_rows(j->lora, r0, r1, thread);
}

struct quant_job {
    quant_from_float_fn act; /* NULL: no conversion (an F32 product) */
    const float *x;
    void *xq;
    int64_t n_in;
    size_t xq_row;
    float *xd; /* [T][n_in / 32]: the d of every Q8_0/Q8_1 block as a float, or NULL */
    int64_t T;
    const struct lora_product *lora; /* tasks T.. are its phase 1, or NULL */
};

static void quant_task(void *arg, int64_t t, int thread)
{
    const struct quant_job *q = arg;
    if (t >= q->T) {
        lora_product_p1(q->lora, t - q->T, thread);
    } else if (q->act) {
        char *row = (char *)q->xq + (size_t)t * q->xq_row;
        q->act(q->x + t * q->n_in, row, q->n_in);
        if (q->xd) { /* 32-element blocks headed by their fp16 d (Q8_0, Q8_1) */
            int64_t nb = q->n_in / 32;
            size_t bsz = q->xq_row / (size_t)nb;
            for (int64_t b = 0; b < nb; b++) {
                uint16_t h;
                memcpy(&h, row + (size_t)b * bsz, sizeof h);
                q->xd[t * nb + b] = hr_fp16_to_fp32(h);
            }
        }
    }
}

/* y[T][n_out] = x[T][n_in] · Wᵀ, with x converted to the weight type's
 * vec_dot_type first (as the reference does), plus the deltas of the
 * adapters of weight `slot` (lora.h; row_map as there). */
static void matmul(struct hr_ctx *c, const struct weight *w, int64_t slot,
                   const int32_t *row_map, const float *x, float *y, int64_t T)
{
    size_t xq_row = hr_row_size(w->k->vec_dot_type, w->n_in);
    const void *xq = x;
    struct lora_product lp;
    bool lora = lora_product_init(&lp, c, slot, x, y, T, row_map);
    /* a packed tile that takes the activations' scales as floats gets them
     * converted once here, after the rows (wdata holds 4 bytes per input) */
    float *xd = NULL;
    uint32_t vt = w->k->vec_dot_type;
    if (w->packed && w->k->gemm_packed_xd && (vt == HR_TYPE_Q8_0 || vt == HR_TYPE_Q8_1))
        xd = (float *)((char *)c->wdata + ((size_t)T * xq_row + 63) / 64 * 64);
    if (w->k->vec_dot_type != HR_TYPE_F32 || lora) {
        bool conv = w->k->vec_dot_type != HR_TYPE_F32;
        struct quant_job q = {conv ? quant_act_from_float(w->k->vec_dot_type) : NULL,
                              x, c->wdata, w->n_in, xq_row, xd, conv ? T : 0, lora ? &lp : NULL};
        pool_run(c->pool, quant_task, &q, q.T + (lora ? lp.n_p1 : 0));
        if (conv)
            xq = c->wdata;
    }
    /* about 4 tasks per thread for balance, each a whole number of tiles */
    int64_t mr = w->k->gemm ? w->k->gemm_mr : 1;
    int64_t n_tasks = (int64_t)pool_size(c->pool) * 4;
    int64_t rows = (w->n_out + n_tasks - 1) / n_tasks;
    if (rows < 16)
        rows = 16;
    rows = (rows + mr - 1) / mr * mr;
    struct matmul_job j = {w, xq, xq_row, xd, y, T, rows, lora ? &lp : NULL};
    pool_run(c->pool, matmul_task, &j, (w->n_out + rows - 1) / rows);
}

/* ---- per-row steps ----------------------------------------------------------------- */

/* Everything between the products runs as pool runs over chunks of rows,
 * each row computed from itself alone (vec.h ops, the same on every row):
 *   ATTN_IN  [x += tmp, the previous layer's FFN output;] xn = RMSNorm(x)⊙attn_norm
 *   QKV      q,k,v += biases; qwen3's per-head norms; RoPE on q and k; k, v
 *            stored at the row's position in its sequence's cache
 *   FFN_IN   tmp += bo; x += tmp; xn = RMSNorm(x)⊙ffn_norm
 *   FFN_MID  g = silu(g)⊙u
 *   OUT      the kept rows only: [x += tmp;] xn[i] = RMSNorm(x)⊙output_norm */
enum step { STEP_ATTN_IN, STEP_QKV, STEP_FFN_IN, STEP_FFN_MID, STEP_OUT };

struct step_job {
    struct hr_ctx *c;
    const struct layer *l; /* NULL for STEP_OUT */
    int64_t il;
    enum step kind;
    bool resid;       /* STEP_ATTN_IN, STEP_OUT: add tmp (the last FFN's output) to x first */
    int64_t n_rows;   /* T, or n_out for STEP_OUT */
    int64_t per_task; /* rows per task */
};

static void step_row(const struct step_job *j, int64_t t)
{
    struct hr_ctx *c = j->c;
    const struct hparams *hp = &c->model->hp;
    const struct vec_kernels *vk = c->vec;
    const struct layer *l = j->l;
    int64_t n_embd = hp->n_embd, hd = hp->head_dim;
    int64_t n_q = hp->n_head * hd, n_kv = hp->n_head_kv * hd, n_ff = hp->n_ff;
    float *x = c->x + t * n_embd, *xn = c->xn + t * n_embd, *tmp = c->tmp + t * n_embd;
    switch (j->kind) {
    case STEP_ATTN_IN:
        if (j->resid)
            vk->add_f32(x, tmp, n_embd);
        vk->rmsnorm_f32(xn, x, l->attn_norm, n_embd, hp->eps);
        break;
    case STEP_QKV: {
        float *q = c->q + t * n_q, *k = c->k + t * n_kv, *v = c->v + t * n_kv;
        if (l->bq)
            vk->add_f32(q, l->bq, n_q);
        if (l->bk)
            vk->add_f32(k, l->bk, n_kv);
        if (l->bv)
            vk->add_f32(v, l->bv, n_kv);
        if (l->q_norm) {
            for (int64_t h = 0; h < hp->n_head; h++)
                vk->rmsnorm_f32(q + h * hd, q + h * hd, l->q_norm, hd, hp->eps);
            for (int64_t h = 0; h < hp->n_head_kv; h++)
                vk->rmsnorm_f32(k + h * hd, k + h * hd, l->k_norm, hd, hp->eps);
        }
        int64_t n_half = hp->n_rot / 2;
        const float *cs = c->rope_cos + t * n_half, *sn = c->rope_sin + t * n_half;
        bool neox = hp->rope_mode == ROPE_NEOX;
        for (int64_t h = 0; h < hp->n_head; h++)
            vk->rope_f32(q + h * hd, cs, sn, n_half, neox);
        for (int64_t h = 0; h < hp->n_head_kv; h++)
            vk->rope_f32(k + h * hd, cs, sn, n_half, neox);
        /* the row's K and V at its position (n_past itself moves only when
         * the whole pass has run) */
        struct hr_seq *sq = c->items[c->row_item[t]].seq;
        size_t off = (size_t)((j->il * sq->n_ctx + c->row_pos[t]) * n_kv);
        if (c->kv_f16) {
            vk->f32_to_f16(sq->k16 + off, k, n_kv);
            vk->f32_to_f16(sq->v16 + off, v, n_kv);
        } else {
            memcpy(sq->k_cache + off, k, (size_t)n_kv * sizeof(float));
            memcpy(sq->v_cache + off, v, (size_t)n_kv * sizeof(float));
        }
        break;
    }
    case STEP_FFN_IN:
        if (l->bo)
            vk->add_f32(tmp, l->bo, n_embd);
        vk->add_f32(x, tmp, n_embd);
        vk->rmsnorm_f32(xn, x, l->ffn_norm, n_embd, hp->eps);
        break;
    case STEP_FFN_MID:
        vk->swiglu_f32(c->g + t * n_ff, c->u + t * n_ff, n_ff);
        break;
    case STEP_OUT: {
        int64_t r = c->out_rows[t];
        if (j->resid)
            vk->add_f32(c->x + r * n_embd, c->tmp + r * n_embd, n_embd);
        vk->rmsnorm_f32(xn, c->x + r * n_embd, c->model->output_norm, n_embd, hp->eps);
        break;
    }
    }
}

static void step_task(void *arg, int64_t task, int thread)
{
    (void)thread;
    const struct step_job *j = arg;
    int64_t t1 = (task + 1) * j->per_task < j->n_rows ? (task + 1) * j->per_task : j->n_rows;
    for (int64_t t = task * j->per_task; t < t1; t++)
        step_row(j, t);
}

static void step(struct hr_ctx *c, const struct layer *l, int64_t il, enum step kind, bool resid,
                 int64_t n_rows)
{
    /* about 4 tasks per thread; a single row (decode) runs in the caller */
    int64_t n_tasks = (int64_t)pool_size(c->pool) * 4;
    int64_t per = (n_rows + n_tasks - 1) / n_tasks;
    if (per < 1)
        per = 1;
    struct step_job j = {c, l, il, kind, resid, n_rows, per};
    pool_run(c->pool, step_task, &j, (n_rows + per - 1) / per);
}

/* cos/sin tables for the positions of the pass's rows (FORMATS.md §4.4):
 * θ_i is built iteratively in fp32 (θ_{i+1} = θ_i·base^(−2/n_rot)),
 * divided by the frequency factor, then scaled (linear) or blended (YaRN). */
static void rope_tables(struct hr_ctx *c, int64_t T)
{
    const struct hparams *hp = &c->model->hp;
    const float *ff = c->model->rope_freqs;
    int64_t n_half = hp->n_rot / 2;
    float step = powf(hp->rope_base, -2.0f / (float)hp->n_rot);
    float fs = hp->rope_freq_scale;
    float mscale = hp->rope_attn_factor;
    float lo = 0, hi = 0;
    if (hp->rope_yarn) {
        /* correction dims for β_fast = 32, β_slow = 1 */
        float n_rot = (float)hp->n_rot, base = logf(hp->rope_base);
        float orig = (float)hp->rope_n_ctx_orig;
        float dfast = n_rot * logf(orig / (32.0f * 2.0f * (float)M_PI)) / (2.0f * base);
        float dslow = n_rot * logf(orig / (1.0f * 2.0f * (float)M_PI)) / (2.0f * base);
        lo = floorf(dfast) > 0 ? floorf(dfast) : 0;
        hi = ceilf(dslow) < n_rot - 1 ? ceilf(dslow) : n_rot - 1;
        mscale *= 1.0f + 0.1f * logf(1.0f / fs);
    }
    for (int64_t t = 0; t < T; t++) {
        float theta = (float)c->row_pos[t];
        for (int64_t i = 0; i < n_half; i++) {
            float th = ff ? theta / ff[i] : theta;
            float th_int = fs * th;
            float a = th_int;
            if (hp->rope_yarn) {
                float y = ((float)i - lo) / fmaxf(0.001f, hi - lo);
                float ramp = 1.0f - fminf(1.0f, fmaxf(0.0f, y));
                a = th_int * (1.0f - ramp) + th * ramp;
            }
            c->rope_cos[t * n_half + i] = cosf(a) * mscale;
            c->rope_sin[t * n_half + i] = sinf(a) * mscale;
            theta *= step;
        }
    }
}

/* ---- attention ----------------------------------------------------------------------- */

/* Attention runs in tiles (vec.h attn_tile): the query heads that share a
 * KV head (GQA) of a few consecutive rows, as many as the level's tile has
 * lanes, against blocks of the cached keys — each K and V row is read once
 * per tile instead of once per query head and row. A row attends to its own
 * sequence's cache, positions 0..pos (its own position; the rows of other
 * sequences are never seen). A tile's rows may belong to several sequences
 * (the items of a batch): it is then cut at their boundaries, one kernel
 * call per sequence. A lane's result does not depend on its tile (vec.h), so
 * a row gets the same bits alone, in a decode step or in a prompt. */
struct attn_job {
    struct hr_ctx *c;
    int64_t il, T;
    int64_t rows_per_tile, n_tiles;
    int64_t heads_per_tile, head_tiles; /* the group's query heads, in tiles of lanes */
};

/* Floats of c->scores per pool thread. */
size_t forward_scratch_floats(const struct hparams *hp)
{
    return vec_attn_scratch(hp->head_dim);
}

/* Task = (tile of rows, KV head, part of its query heads). The tiles of the
 * last rows come first: with a causal mask they have the most keys, and
 * taking the longest tasks first balances the threads. */
static void attn_task(void *arg, int64_t task, int thread)
{
    const struct attn_job *j = arg;
    struct hr_ctx *c = j->c;
    const struct hparams *hp = &c->model->hp;
    int64_t hd = hp->head_dim, n_kv = hp->n_head_kv * hd, group = hp->n_head / hp->n_head_kv;
    int64_t kvh = task % hp->n_head_kv, rest = task / hp->n_head_kv;
    int64_t g0 = (rest % j->head_tiles) * j->heads_per_tile;
    int64_t g1 = g0 + j->heads_per_tile < group ? g0 + j->heads_per_tile : group;
    int64_t tile = j->n_tiles - 1 - rest / j->head_tiles;
    int64_t t0 = tile * j->rows_per_tile, t_end = t0 + j->rows_per_tile;
    if (t_end > j->T)
        t_end = j->T;

    const float *q[VEC_ATTN_LANES];
    float *o[VEC_ATTN_LANES];
    int32_t last[VEC_ATTN_LANES];
    while (t0 < t_end) { /* one call per sequence */
        const struct fwd_item *it = &c->items[c->row_item[t0]];
        int64_t t1 = it->row0 + it->n < t_end ? it->row0 + it->n : t_end;
        int n = 0;
        for (int64_t t = t0; t < t1; t++)
            for (int64_t g = g0; g < g1; g++, n++) {
                int64_t off = (t * hp->n_head + kvh * group + g) * hd;
                q[n] = c->q + off;
                o[n] = c->att + off;
                last[n] = c->row_pos[t];
            }
        const struct hr_seq *sq = it->seq;
        size_t base = (size_t)(j->il * (int64_t)sq->n_ctx * n_kv + kvh * hd);
        struct vec_attn a = {
            .n = n,
            .hd = hd,
            .q = q,
            .o = o,
            .last = last,
            .k = c->kv_f16 ? (const void *)(sq->k16 + base) : (const void *)(sq->k_cache + base),
            .v = c->kv_f16 ? (const void *)(sq->v16 + base) : (const void *)(sq->v_cache + base),
            .stride = n_kv,
            .f16 = c->kv_f16,
            .scale = 1.0f / sqrtf((float)hd),
            .scratch = c->scores + (size_t)thread * forward_scratch_floats(hp),
        };
        c->vec->attn_tile(&a);
        t0 = t1;
    }
}

static void attention(struct hr_ctx *c, int64_t il, int64_t T)
{
    const struct hparams *hp = &c->model->hp;
    int64_t lanes = c->vec->attn_lanes, group = hp->n_head / hp->n_head_kv;
    struct attn_job j = {c, il, T, 1, T, group, 1};
    if (group <= lanes) {
        j.rows_per_tile = lanes / group;
        j.n_tiles = (T + j.rows_per_tile - 1) / j.rows_per_tile;
    } else {
        j.heads_per_tile = lanes;
        j.head_tiles = (group + lanes - 1) / lanes;
    }
    pool_run(c->pool, attn_task, &j, j.n_tiles * j.head_tiles * hp->n_head_kv);
}

/* ---- one pass ------------------------------------------------------------------------- */

static bool aborted(const struct hr_ctx *c)
{
    return c->abort_fn && c->abort_fn(c->abort_user);
}

int forward_pass(struct hr_ctx *c, int32_t n_rows)
{
    const struct hr_model *m = c->model;
    const struct hparams *hp = &m->hp;
    int64_t T = n_rows, n_embd = hp->n_embd;

    /* embeddings: dequantized rows, no scaling */
    const struct quant_kernels *ek = m->tok_embd.k;
    for (int64_t t = 0; t < T; t++)
        ek->to_float((const char *)m->tok_embd.data +
                         (size_t)c->row_tok[t] * m->tok_embd.row_size,
                     c->x + t * n_embd, n_embd);
    lora_apply_embd(c, c->x, T);
    rope_tables(c, T);

    for (int64_t il = 0; il < hp->n_layer; il++) {
        if (aborted(c))
            return -ECANCELED;
        const struct layer *l = &m->layers[il];
        step(c, l, il, STEP_ATTN_IN, il > 0, T);
        matmul(c, &l->wq, LORA_SLOT(il, LORA_Q), NULL, c->xn, c->q, T);
        matmul(c, &l->wk, LORA_SLOT(il, LORA_K), NULL, c->xn, c->k, T);
        matmul(c, &l->wv, LORA_SLOT(il, LORA_V), NULL, c->xn, c->v, T);
        step(c, l, il, STEP_QKV, false, T);
        attention(c, il, T);
        matmul(c, &l->wo, LORA_SLOT(il, LORA_O), NULL, c->att, c->tmp, T);
        step(c, l, il, STEP_FFN_IN, false, T);
        matmul(c, &l->gate, LORA_SLOT(il, LORA_GATE), NULL, c->xn, c->g, T);
        matmul(c, &l->up, LORA_SLOT(il, LORA_UP), NULL, c->xn, c->u, T);
        step(c, l, il, STEP_FFN_MID, false, T);
        matmul(c, &l->down, LORA_SLOT(il, LORA_DOWN), NULL, c->g, c->tmp, T);
    }
    if (aborted(c))
        return -ECANCELED;

    /* the last FFN's residual and the output head, on the kept rows only */
    step(c, NULL, hp->n_layer, STEP_OUT, hp->n_layer > 0, c->n_out);
    matmul(c, &m->output, LORA_SLOT_OUTPUT, c->out_rows, c->xn, c->logits, c->n_out);
    if (m->output_bias)
        for (int32_t i = 0; i < c->n_out; i++)
            c->vec->add_f32(c->logits + (int64_t)i * hp->n_vocab, m->output_bias, hp->n_vocab);
    for (int32_t i = 0; i < c->n_items; i++)
        c->items[i].seq->n_past += c->items[i].n;
    return 0;
}
