/*
 * train_mm.c — matrix products of training (train.h): the frozen base's
 * y = W·x through the engine's kernels, its dx = Wᵀ·dy on a transposed copy,
 * and the LoRA pairs' products with their gradients.
 *
 * Why a transposed copy: the kernels compute dot products of weight rows
 * with activation rows; Wᵀ·dy needs dot products of W's columns. Made once
 * at start, a copy whose row i is column i of W (requantized to Q8_0 for
 * quantized bases: dy is quantized to Q8_0 anyway, as any activation of a
 * Q8_0 product) lets the same tiled int8 kernels run the backward products
 * at the speed of the forward ones. It costs about the model's size again
 * in memory (docs/training.md has the measurements). For F32/F16/BF16 bases
 * the copy keeps the type, so the transpose is exact.
 *
 * The driver (tmm) is the forward pass's (forward.c `matmul`): activations
 * converted to the kernel's vec_dot_type, then tasks of whole gemm tiles of
 * output rows over every token, so each output element is computed the same
 * way whatever the thread count.
 */
#include "train.h"

#include "pool.h"
#include "quant_impl.h"
#include "train_vec.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* see train_vec.h: every vector helper is inlined, so no ABI is at stake; and
 * multiply-adds are fused where the ISA level has them */
#pragma GCC diagnostic ignored "-Wpsabi"
#pragma GCC optimize("fp-contract=fast")

/* ---- y = W·x ---------------------------------------------------------------------------- */

struct mm_job {
    const struct weight *w;
    const void *xq;
    size_t xq_row;
    float *y;
    int64_t T, rows_per_task;
};

static void mm_task(void *arg, int64_t task, int thread)
{
    const struct mm_job *j = arg;
    const struct weight *w = j->w;
    const struct quant_kernels *k = w->k;
    int64_t r0 = task * j->rows_per_task;
    int64_t r1 = r0 + j->rows_per_task < w->n_out ? r0 + j->rows_per_task : w->n_out;
    const char *wd = w->data;
    if (w->packed || k->gemm) {
        int mr = k->gemm_mr, nc = w->packed ? quant_packed_nc(k) : k->gemm_nc;
        for (int64_t t = 0; t < j->T; t += nc) {
            int tn = j->T - t < nc ? (int)(j->T - t) : nc;
            const char *xr = (const char *)j->xq + (size_t)t * j->xq_row;
            for (int64_t o = r0; o < r1; o += mr) {
                int on = r1 - o < mr ? (int)(r1 - o) : mr;
                if (w->packed)
                    k->gemm_packed(w->n_in, j->y + t * w->n_out + o, (size_t)w->n_out, w->packed, o,
                                   on, xr, j->xq_row, tn);
                else
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

struct conv_job {
    quant_from_float_fn fn;
    const float *x;
    void *xq;
    int64_t n;
    size_t row;
};

static void conv_task(void *arg, int64_t t, int thread)
{
    const struct conv_job *c = arg;
    c->fn(c->x + t * c->n, (char *)c->xq + (size_t)t * c->row, c->n);
}

void tmm(struct hr_train *t, const struct weight *w, const float *x, float *y, int64_t T)
{
    size_t xq_row = hr_row_size(w->k->vec_dot_type, w->n_in);
    const void *xq = x;
    if (w->k->vec_dot_type != HR_TYPE_F32) {
        struct conv_job c = {quant_act_from_float(w->k->vec_dot_type), x, t->wdata, w->n_in,
                             xq_row};
        pool_run(t->pool, conv_task, &c, T);
        xq = t->wdata;
    }
    int64_t mr = w->packed || w->k->gemm ? w->k->gemm_mr : 1;
    int64_t n_tasks = (int64_t)t->n_threads * 4;
    int64_t rows = (w->n_out + n_tasks - 1) / n_tasks;
    /* a task's weights stay in cache while the token tiles pass over them:
     * at most ~256 KiB of them (the output head has 150k rows) */
    int64_t cap = (int64_t)(((size_t)256 << 10) / w->row_size);
    if (rows > cap) rows = cap;
    if (rows < 16) rows = 16;
    rows = (rows + mr - 1) / mr * mr;
    struct mm_job j = {w, xq, xq_row, y, T, rows};
    pool_run(t->pool, mm_task, &j, (w->n_out + rows - 1) / rows);
}

/* ---- transposed copies ------------------------------------------------------------------- */

uint32_t tmm_transposed_type(const struct weight *w, uint32_t requested)
{
    uint32_t type = requested;
    if (!type)
        type = w->type == HR_TYPE_F32 || w->type == HR_TYPE_F16 || w->type == HR_TYPE_BF16
                   ? w->type
                   : HR_TYPE_Q8_0;
    if (type == HR_TYPE_Q8_0 && w->n_out % 32) type = HR_TYPE_F32;
    return type;
}

uint64_t tmm_transposed_bytes(const struct weight *w, uint32_t requested)
{
    uint32_t type = tmm_transposed_type(w, requested);
    const struct quant_kernels *k = quant_kernels(type);
    if (k->repack) return k->packed_size(w->n_out, w->n_in);
    return (uint64_t)hr_row_size(type, w->n_out) * (uint64_t)w->n_in;
}

#define TBLK 32 /* columns of W (= elements of a transposed row) per task */

struct tr_job {
    const struct weight *w;
    uint32_t type;
    char *dst;
    size_t dst_row;
    float *buf; /* [n_threads][TBLK][n_in] */
};

/* Columns o0 .. o0+nb−1 of the copy = rows o0 .. of W, dequantized then
 * written (converted) into every transposed row i. */
static void tr_task(void *arg, int64_t task, int thread)
{
    const struct tr_job *j = arg;
    const struct weight *w = j->w;
    int64_t o0 = task * TBLK, nb = w->n_out - o0 < TBLK ? w->n_out - o0 : TBLK;
    float *buf = j->buf + (size_t)thread * TBLK * (size_t)w->n_in;
    for (int64_t b = 0; b < nb; b++)
        w->k->to_float((const char *)w->data + (size_t)(o0 + b) * w->row_size, buf + b * w->n_in,
                       w->n_in);
    /* the activation quantizer: the SIMD one, a valid block of the type */
    quant_from_float_fn conv = quant_act_from_float(j->type);
    size_t off = hr_row_size(j->type, o0);
    float col[TBLK];
    for (int64_t i = 0; i < w->n_in; i++) {
        for (int64_t b = 0; b < nb; b++)
            col[b] = buf[b * w->n_in + i];
        conv(col, j->dst + (size_t)i * j->dst_row + off, nb);
    }
}

struct repack_job {
    const struct quant_kernels *k;
    const char *src;
    char *dst;
    size_t src_row;
    int64_t n, rows, per_task; /* row length, rows, rows per task (a multiple of gemm_mr) */
};

static void repack_task(void *arg, int64_t task, int thread)
{
    const struct repack_job *j = arg;
    int64_t r0 = task * j->per_task, nr = j->rows - r0 < j->per_task ? j->rows - r0 : j->per_task;
    j->k->repack(j->src + (size_t)r0 * j->src_row, j->dst + j->k->packed_size(j->n, r0), j->n, nr);
}

int tmm_transpose(struct hr_train *t, const struct weight *w, uint32_t requested,
                  struct weight *out, void **mem)
{
    uint32_t type = tmm_transposed_type(w, requested);
    const struct quant_kernels *k = quant_kernels(type);
    size_t row = hr_row_size(type, w->n_out);
    char *data = malloc(row * (size_t)w->n_in);
    float *buf = malloc((size_t)t->n_threads * TBLK * (size_t)w->n_in * sizeof(float));
    int rc = -ENOMEM;
    if (!data || !buf) goto fail;
    struct tr_job j = {w, type, data, row, buf};
    pool_run(t->pool, tr_task, &j, (w->n_out + TBLK - 1) / TBLK);
    free(buf);
    buf = NULL;
    memset(out, 0, sizeof *out);
    out->type = type;
    out->n_in = w->n_out;
    out->n_out = w->n_in;
    out->row_size = row;
    out->k = k;
    out->name = w->name;
    if (k->repack) {
        size_t sz = k->packed_size(out->n_in, out->n_out);
        void *packed = aligned_alloc(64, (sz + 63) / 64 * 64);
        if (!packed) goto fail;
        int64_t per = (int64_t)k->gemm_mr * 16;
        struct repack_job rj = {k, data, packed, row, out->n_in, out->n_out, per};
        pool_run(t->pool, repack_task, &rj, (out->n_out + per - 1) / per);
        free(data);
        out->packed = packed;
        *mem = packed;
    } else {
        out->data = data;
        *mem = data;
    }
    return 0;
fail:
    free(data);
    free(buf);
    return rc;
}

/* ---- LoRA pairs ------------------------------------------------------------------------------ */

/* The pairs' products are small matrix products (one side is the rank r,
 * 16 by default) in f32, blocked so that each weight row is loaded once
 * for several tokens:
 *   rows_dot:    out[t][j] = Σ_i X[t][i]·W[j][i]         (A·x, Bᵀ·dy)
 *   rows_madsum: Y[t] += s·Σ_j C[t][j]·W[j]              (B·(A·x), A·(Bᵀ·dy))
 *   outer_grad:  G[j] += s·Σ_t C[t][j]·D[t]              (the gradients)
 * Each output element is summed in one fixed order (i, j or t ascending:
 * vector lanes, then the lanes, then the tail), so results do not depend on
 * the blocking, the task split or the thread count. */

#define TB 4 /* tokens per block */
#define JB 4 /* rank rows per block of rows_dot */

/* sum of the 16 lanes in a fixed order */
#define HSUM(v, out)                                                                               \
    do {                                                                                           \
        float s_ = 0.0f;                                                                           \
        for (int l_ = 0; l_ < VL; l_++)                                                            \
            s_ += (v)[l_];                                                                         \
        (out) = s_;                                                                                \
    } while (0)

/* out[t][j], t < nt <= TB, j in [j0, j0 + nj), nj <= JB */
ALWAYS_INLINE void dot_block(float *out, int64_t r, const float *X, const float *W, int64_t n,
                             int nt, int64_t j0, int nj)
{
    vf acc[TB][JB];
    for (int a = 0; a < TB; a++)
        for (int b = 0; b < JB; b++)
            acc[a][b] = (vf){0};
    int64_t i = 0;
    for (; i + VL <= n; i += VL) {
        vf w[JB], x[TB];
        for (int b = 0; b < JB; b++)
            w[b] = b < nj ? VLD(W + (j0 + b) * n + i) : (vf){0};
        for (int a = 0; a < TB; a++)
            x[a] = a < nt ? VLD(X + a * n + i) : (vf){0};
        for (int a = 0; a < TB; a++)
            for (int b = 0; b < JB; b++)
                acc[a][b] += x[a] * w[b];
    }
    for (int a = 0; a < nt; a++)
        for (int b = 0; b < nj; b++) {
            float v;
            HSUM(acc[a][b], v);
            for (int64_t k = i; k < n; k++)
                v += X[a * n + k] * W[(j0 + b) * n + k];
            out[a * r + j0 + b] = v;
        }
}

TRAIN_CLONES
static void rows_dot(float *out, int64_t r, const float *X, const float *W, int64_t n, int nt)
{
    for (int64_t j0 = 0; j0 < r; j0 += JB)
        dot_block(out, r, X, W, n, nt, j0, r - j0 < JB ? (int)(r - j0) : JB);
}

/* Y[t][0..m) += s·Σ_j C[t][j]·W[j][0..m) for t < nt (rows of Y m apart) */
TRAIN_CLONES
static void rows_madsum(float *Y, int64_t m, const float *C, const float *W, int64_t r, float s,
                        int nt)
{
    float c[TB][64];
    for (int a = 0; a < nt; a++)
        for (int64_t j = 0; j < r && j < 64; j++)
            c[a][j] = s * C[a * r + j];
    for (int64_t o = 0; o < m; o += VL) {
        if (o + VL <= m && r <= 64) {
            vf acc[TB];
            for (int a = 0; a < TB; a++)
                acc[a] = (vf){0};
            for (int64_t j = 0; j < r; j++) {
                vf w = VLD(W + j * m + o);
                for (int a = 0; a < TB; a++)
                    acc[a] += w * c[a][j];
            }
            for (int a = 0; a < nt; a++)
                VST(Y + a * m + o, VLD(Y + a * m + o) + acc[a]);
        } else {
            for (int a = 0; a < nt; a++)
                for (int64_t k = o; k < m && k < o + VL; k++) {
                    float v = 0.0f;
                    for (int64_t j = 0; j < r; j++)
                        v += W[j * m + k] * (s * C[a * r + j]);
                    Y[a * m + k] += v;
                }
        }
    }
}

/* G[j][c0..c0+len) += s·Σ_t C[t][j]·D[t][c0..) over t < T (rows of D and G
 * m apart), len <= 2·VL */
#define GW (2 * VL)

TRAIN_CLONES
static void outer_grad(float *G, int64_t m, const float *C, int64_t r, const float *D, int64_t T,
                       int64_t c0, int64_t len, float s)
{
    for (int64_t j0 = 0; j0 < r; j0 += 8) {
        int64_t nj = r - j0 < 8 ? r - j0 : 8;
        if (len == GW) {
            vf acc[8][2];
            for (int b = 0; b < 8; b++)
                acc[b][0] = acc[b][1] = (vf){0};
            for (int64_t t = 0; t < T; t++) {
                vf d0 = VLD(D + t * m + c0), d1 = VLD(D + t * m + c0 + VL);
                const float *ct = C + t * r + j0;
                for (int b = 0; b < 8; b++) {
                    float cb = b < nj ? ct[b] : 0.0f;
                    acc[b][0] += d0 * cb;
                    acc[b][1] += d1 * cb;
                }
            }
            for (int b = 0; b < nj; b++) {
                float *g = G + (j0 + b) * m + c0;
                VST(g, VLD(g) + acc[b][0] * s);
                VST(g + VL, VLD(g + VL) + acc[b][1] * s);
            }
        } else {
            for (int b = 0; b < nj; b++)
                for (int64_t k = 0; k < len; k++) {
                    float v = 0.0f;
                    for (int64_t t = 0; t < T; t++)
                        v += D[t * m + c0 + k] * C[t * r + j0 + b];
                    G[(j0 + b) * m + c0 + k] += v * s;
                }
        }
    }
}

struct lora_job {
    struct hr_train *t;
    const struct train_target *tg;
    const float *x, *dy;
    float *ax, *y, *dx;
    int64_t T;
    int64_t n_oc; /* backward: column chunks of Bᵀ, then of A */
};

/* forward, per block of tokens: ax = x·Aᵀ, y += s·ax·Bᵀ */
static void lora_fwd_task(void *arg, int64_t blk, int thread)
{
    const struct lora_job *j = arg;
    const struct train_target *tg = j->tg;
    int64_t r = j->t->p.rank, t0 = blk * TB;
    int nt = j->T - t0 < TB ? (int)(j->T - t0) : TB;
    const float *A = j->t->param + tg->off_a, *BT = j->t->param + tg->off_bt;
    rows_dot(j->ax + t0 * r, r, j->x + t0 * tg->n_in, A, tg->n_in, nt);
    rows_madsum(j->y + t0 * tg->n_out, tg->n_out, j->ax + t0 * r, BT, r, j->t->scale, nt);
}

void tlora_fwd(struct hr_train *t, const struct train_target *tg, const float *x, float *ax,
               float *y, int64_t T)
{
    struct lora_job j = {t, tg, x, NULL, ax, y, NULL, T, 0};
    pool_run(t->pool, lora_fwd_task, &j, (T + TB - 1) / TB);
}

/* backward, per block of tokens: b = dy·B (into t->lbuf), dx += s·b·A */
static void lora_bwd_tok_task(void *arg, int64_t blk, int thread)
{
    const struct lora_job *j = arg;
    const struct train_target *tg = j->tg;
    int64_t r = j->t->p.rank, t0 = blk * TB;
    int nt = j->T - t0 < TB ? (int)(j->T - t0) : TB;
    const float *A = j->t->param + tg->off_a, *BT = j->t->param + tg->off_bt;
    float *b = j->t->lbuf + t0 * r;
    rows_dot(b, r, j->dy + t0 * tg->n_out, BT, tg->n_out, nt);
    if (j->dx) rows_madsum(j->dx + t0 * tg->n_in, tg->n_in, b, A, r, j->t->scale, nt);
}

/* gradients, per chunk of GW columns:
 *   dBᵀ[j] += s·Σ_t ax_t[j]·dy_t     dA[j] += s·Σ_t b_t[j]·x_t */
static void lora_bwd_grad_task(void *arg, int64_t task, int thread)
{
    const struct lora_job *j = arg;
    const struct train_target *tg = j->tg;
    int64_t r = j->t->p.rank;
    bool b_side = task < j->n_oc;
    int64_t c0 = (b_side ? task : task - j->n_oc) * GW;
    int64_t m = b_side ? tg->n_out : tg->n_in;
    int64_t len = m - c0 < GW ? m - c0 : GW;
    if (b_side)
        outer_grad(j->t->grad + tg->off_bt, m, j->ax, r, j->dy, j->T, c0, len, j->t->scale);
    else
        outer_grad(j->t->grad + tg->off_a, m, j->t->lbuf, r, j->x, j->T, c0, len, j->t->scale);
}

void tlora_bwd(struct hr_train *t, const struct train_target *tg, const float *x, const float *ax,
               const float *dy, float *dx, int64_t T)
{
    int64_t n_oc = (tg->n_out + GW - 1) / GW, n_ic = (tg->n_in + GW - 1) / GW;
    struct lora_job j = {t, tg, x, dy, (float *)ax, NULL, dx, T, n_oc};
    pool_run(t->pool, lora_bwd_tok_task, &j, (T + TB - 1) / TB);
    pool_run(t->pool, lora_bwd_grad_task, &j, n_oc + n_ic);
}

/* ---- helpers ------------------------------------------------------------------------------------
 */

struct add_job {
    float *dst;
    const float *src;
    int64_t n;
};

#define ADD_CHUNK 16384

static void add_task(void *arg, int64_t task, int thread)
{
    const struct add_job *j = arg;
    int64_t i0 = task * ADD_CHUNK, i1 = i0 + ADD_CHUNK < j->n ? i0 + ADD_CHUNK : j->n;
    for (int64_t i = i0; i < i1; i++)
        j->dst[i] += j->src[i];
}

void tmm_add(struct hr_train *t, float *dst, const float *src, int64_t n)
{
    struct add_job j = {dst, src, n};
    pool_run(t->pool, add_task, &j, (n + ADD_CHUNK - 1) / ADD_CHUNK);
}
