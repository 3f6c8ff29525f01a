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

/* ---- elementwise ops ------------------------------------------------------------- */

/* out = x / sqrt(mean(x²) + eps) ⊙ w, the sum of squares in double as ggml does */
static void rmsnorm(float *out, const float *x, const float *w, int64_t n, float eps)
{
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++)
        sum += (double)(x[i] * x[i]);
    float mean = (float)(sum / (double)n);
    float scale = 1.0f / sqrtf(mean + eps);
    for (int64_t i = 0; i < n; i++)
        out[i] = (x[i] * scale) * w[i];
}

static void add_bias(float *y, const float *b, int64_t T, int64_t n)
{
    if (!b)
        return;
    for (int64_t t = 0; t < T; t++)
        for (int64_t i = 0; i < n; i++)
            y[t * n + i] += b[i];
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

/* Rotates every head of x[T][n_heads*head_dim] in place. */
static void rope_apply(struct hr_ctx *c, float *x, int64_t T, int64_t n_heads)
{
    const struct hparams *hp = &c->model->hp;
    int64_t hd = hp->head_dim, n_half = hp->n_rot / 2;
    for (int64_t t = 0; t < T; t++) {
        const float *cs = c->rope_cos + t * n_half, *sn = c->rope_sin + t * n_half;
        for (int64_t h = 0; h < n_heads; h++) {
            float *v = x + (t * n_heads + h) * hd;
            for (int64_t i = 0; i < n_half; i++) {
                int64_t i0 = hp->rope_mode == ROPE_NEOX ? i : 2 * i;
                int64_t i1 = hp->rope_mode == ROPE_NEOX ? i + n_half : 2 * i + 1;
                float x0 = v[i0], x1 = v[i1];
                v[i0] = x0 * cs[i] - x1 * sn[i];
                v[i1] = x0 * sn[i] + x1 * cs[i];
            }
        }
    }
}

/* ---- attention ----------------------------------------------------------------------- */

/* The attention task is compiled for several ISA levels and picked at load
 * time (GCC function multiversioning) for its own loops; the f32 dot
 * products, multiply-adds and scalings come from arch/vec.h, which sum in
 * the reference's order on every path. The F16-cache dot uses 16 partial
 * sums so the compiler can vectorize it without -ffast-math. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__gnu_linux__)
#define HR_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define HR_CLONES
#endif

__attribute__((always_inline)) static inline float dot_f16(const float *a, const fp16 *b,
                                                         int64_t n)
{
    float acc[16] = {0};
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int l = 0; l < 16; l++)
            acc[l] += a[i + l] * quant_f16_to_f32(b[i + l]);
    float s = 0.0f;
    for (; i < n; i++)
        s += a[i] * quant_f16_to_f32(b[i]);
    for (int l = 0; l < 16; l++)
        s += acc[l];
    return s;
}

struct attn_job {
    struct hr_ctx *c;
    int64_t layer;
};

/* One task = one (row, KV head): the query heads that share the KV head
 * (GQA) are handled together, so each cached key and value row is read once
 * for all of them. The row attends to its own sequence's cache, positions
 * 0..pos (pos = its own position; rows of other sequences in the pass are
 * never seen). Per query head h, with an online softmax over p = 0..pos
 * (the reference's flash-attention order):
 *   s = (q_h·k_p)/√d; if s > M: rescale o by e^(M−s), M = s, w = 1
 *   else w = e^(s−M);  o += w·v_p;  S = S·rescale + w;   finally o /= S. */
HR_CLONES
static void attn_task(void *arg, int64_t task, int thread)
{
    const struct attn_job *j = arg;
    struct hr_ctx *c = j->c;
    const struct hparams *hp = &c->model->hp;
    int64_t hd = hp->head_dim, n_kv = hp->n_head_kv * hd;
    int64_t group = hp->n_head / hp->n_head_kv;
    int64_t t = task / hp->n_head_kv, kvh = task % hp->n_head_kv;
    const struct hr_seq *sq = c->items[c->row_item[t]].seq;
    int64_t n_pos = (int64_t)c->row_pos[t] + 1;
    size_t base = (size_t)(j->layer * (int64_t)sq->n_ctx * n_kv + kvh * hd);
    float *ms = c->scores + (int64_t)thread * (2 * group + hd); /* M, S per head */
    float *vrow = ms + 2 * group;                               /* [hd] */
    float scale = 1.0f / sqrtf((float)hd);
    const struct vec_kernels *vk = c->vec;
    const float *q0 = c->q + (t * hp->n_head + kvh * group) * hd;
    float *o0 = c->att + (t * hp->n_head + kvh * group) * hd;

    for (int64_t g = 0; g < group; g++) {
        ms[2 * g] = -INFINITY;
        ms[2 * g + 1] = 0.0f;
        for (int64_t i = 0; i < hd; i++)
            o0[g * hd + i] = 0.0f;
    }
    for (int64_t p = 0; p < n_pos; p++) {
        size_t off = base + (size_t)(p * n_kv);
        const float *v;
        if (c->kv_f16) {
            for (int64_t i = 0; i < hd; i++)
                vrow[i] = quant_f16_to_f32(sq->v16[off + i]);
            v = vrow;
        } else {
            v = sq->v_cache + off;
        }
        for (int64_t g = 0; g < group; g++) {
            float s = (c->kv_f16 ? dot_f16(q0 + g * hd, sq->k16 + off, hd)
                                 : vk->dot_f32(q0 + g * hd, sq->k_cache + off, hd)) *
                      scale;
            float *o = o0 + g * hd, m_old = ms[2 * g], rescale = 1.0f, w = 1.0f;
            if (s > m_old) {
                ms[2 * g] = s;
                rescale = expf(m_old - s);
                vk->scale_f32(o, rescale, hd);
            } else {
                w = expf(s - m_old);
            }
            vk->mad_f32(o, v, w, hd);
            ms[2 * g + 1] = ms[2 * g + 1] * rescale + w;
        }
    }
    for (int64_t g = 0; g < group; g++) {
        float inv = ms[2 * g + 1] == 0.0f ? 0.0f : 1.0f / ms[2 * g + 1];
        for (int64_t i = 0; i < hd; i++)
            o0[g * hd + i] *= inv;
    }
}

/* Writes the pass's K and V rows [T][n_kv] to layer il of each item's
 * sequence, at the positions n_past .. n_past+n−1 (n_past itself moves only
 * when the whole pass has run). */
static void kv_store(struct hr_ctx *c, int64_t il)
{
    int64_t n_kv = c->model->hp.n_head_kv * c->model->hp.head_dim;
    for (int32_t i = 0; i < c->n_items; i++) {
        const struct fwd_item *it = &c->items[i];
        struct hr_seq *sq = it->seq;
        size_t off = (size_t)((il * sq->n_ctx + sq->n_past) * n_kv), n = (size_t)(it->n * n_kv);
        const float *k = c->k + (size_t)it->row0 * (size_t)n_kv;
        const float *v = c->v + (size_t)it->row0 * (size_t)n_kv;
        if (c->kv_f16) {
            for (size_t e = 0; e < n; e++) {
                sq->k16[off + e] = quant_f32_to_f16(k[e]);
                sq->v16[off + e] = quant_f32_to_f16(v[e]);
            }
        } else {
            memcpy(sq->k_cache + off, k, n * sizeof(float));
            memcpy(sq->v_cache + off, v, n * sizeof(float));
        }
    }
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
    int64_t T = n_rows, n_embd = hp->n_embd, hd = hp->head_dim;
    int64_t n_q = hp->n_head * hd, n_kv = hp->n_head_kv * hd, n_ff = hp->n_ff;

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
        for (int64_t t = 0; t < T; t++)
            rmsnorm(c->xn + t * n_embd, c->x + t * n_embd, l->attn_norm, n_embd, hp->eps);
        matmul(c, &l->wq, LORA_SLOT(il, LORA_Q), NULL, c->xn, c->q, T);
        matmul(c, &l->wk, LORA_SLOT(il, LORA_K), NULL, c->xn, c->k, T);
        matmul(c, &l->wv, LORA_SLOT(il, LORA_V), NULL, c->xn, c->v, T);
        add_bias(c->q, l->bq, T, n_q);
        add_bias(c->k, l->bk, T, n_kv);
        add_bias(c->v, l->bv, T, n_kv);
        if (l->q_norm) {
            for (int64_t r = 0; r < T * hp->n_head; r++)
                rmsnorm(c->q + r * hd, c->q + r * hd, l->q_norm, hd, hp->eps);
            for (int64_t r = 0; r < T * hp->n_head_kv; r++)
                rmsnorm(c->k + r * hd, c->k + r * hd, l->k_norm, hd, hp->eps);
        }
        rope_apply(c, c->q, T, hp->n_head);
        rope_apply(c, c->k, T, hp->n_head_kv);
        kv_store(c, il);

        struct attn_job aj = {c, il};
        pool_run(c->pool, attn_task, &aj, T * hp->n_head_kv);

        matmul(c, &l->wo, LORA_SLOT(il, LORA_O), NULL, c->att, c->tmp, T);
        add_bias(c->tmp, l->bo, T, n_embd);
        for (int64_t i = 0; i < T * n_embd; i++)
            c->x[i] += c->tmp[i];

        for (int64_t t = 0; t < T; t++)
            rmsnorm(c->xn + t * n_embd, c->x + t * n_embd, l->ffn_norm, n_embd, hp->eps);
        matmul(c, &l->gate, LORA_SLOT(il, LORA_GATE), NULL, c->xn, c->g, T);
        matmul(c, &l->up, LORA_SLOT(il, LORA_UP), NULL, c->xn, c->u, T);
        for (int64_t i = 0; i < T * n_ff; i++) {
            float gv = c->g[i];
            c->g[i] = gv / (1.0f + expf(-gv)) * c->u[i];
        }
        matmul(c, &l->down, LORA_SLOT(il, LORA_DOWN), NULL, c->g, c->tmp, T);
        for (int64_t i = 0; i < T * n_embd; i++)
            c->x[i] += c->tmp[i];
    }
    if (aborted(c))
        return -ECANCELED;

    /* the output head, on the kept rows only */
    for (int32_t i = 0; i < c->n_out; i++)
        rmsnorm(c->xn + (int64_t)i * n_embd, c->x + (int64_t)c->out_rows[i] * n_embd,
                m->output_norm, n_embd, hp->eps);
    matmul(c, &m->output, LORA_SLOT_OUTPUT, c->out_rows, c->xn, c->logits, c->n_out);
    add_bias(c->logits, m->output_bias, c->n_out, hp->n_vocab);
    for (int32_t i = 0; i < c->n_items; i++)
        c->items[i].seq->n_past += c->items[i].n;
    return 0;
}
