/*
 * lora_apply.c — the low-rank deltas of the forward pass (lora.h): for a
 * product y = W·x over the T rows of a pass, every row whose sequence has
 * an adapter set gets y += s·(α/r)·B·(A·x) for each adapter of its set that
 * changes W, in the set's order (the reference adds its adapters' deltas one
 * after the other, each scaled in f32 before the add).
 *
 * The work rides on the base product's two pool runs (forward.c matmul):
 *   1. beside the activations' conversion: la[t][off_u + k] = A_u[k]·x_t for
 *      every row t, adapter u of its set and k < r_u; tasks are a block of
 *      LORA_NC rows × an adapter × a slice of the rank (so that one row of
 *      one adapter, a decode step, still spreads over the threads); off_u is
 *      the sum of the max ranks of the adapters before u in the set.
 *   2. after each base task's outputs: y[t][o] += s_u·B_u[o]·la[t][off_u ..]
 *      for the task's outputs o, every row and adapter — for F32 and F16 B
 *      as r multiply-adds over the outputs through Bᵀ (lora.h), for other
 *      types through the type's dot products.
 * Both convert their activations (x_t, then la_t) to the matrix type's
 * vec_dot_type first, as the reference's mul_mat does, and multiply through
 * the type's gemm tiles over runs of consecutive rows of the same sequence
 * (the A or B rows are read once per run, not once per row). The tiles
 * compute every element with the same operations whatever their width
 * (quant.h), and everything else is per row, so a row's result does not
 * depend on the other rows of the pass (ctx.h's batch invariance).
 *
 * Nothing is allocated here: the scratch (ctx->lora) was sized when a set
 * was given to a sequence of the context (lora_set_replace).
 */
#include "lora.h"

#include "arch/vec.h"
#include "ctx.h"
#include "pool.h"
#include "quant.h"

#include <string.h>

/* The set of pass row t. */
static const struct lora_set *set_of(const struct hr_ctx *c, int64_t t)
{
    return &c->items[c->row_item[t]].seq->loras;
}

/* Thread `thread`'s conversion buffer (LORA_NC activation rows in a
 * vec_dot_type) and its tmp floats ([LORA_NC][tmp_size / LORA_NC bytes]). */
static void *conv_of(const struct hr_ctx *c, int thread)
{
    return (char *)c->lora.conv + (size_t)thread * c->lora.conv_size;
}

static float *tmp_of(const struct hr_ctx *c, int thread)
{
    return (float *)((char *)conv_of(c, thread) + c->lora.conv_size - c->lora.tmp_size);
}

/* nc rows of n f32 values (x, row stride x_stride floats) as the activation
 * operand of kernels k: converted into buf (row stride *stride bytes), or x
 * itself when the kernels read f32. */
static const void *as_act(const struct quant_kernels *k, const float *x, size_t x_stride, int64_t n,
                          int nc, void *buf, size_t *stride)
{
    if (k->vec_dot_type == HR_TYPE_F32) {
        *stride = x_stride * sizeof(float);
        return x;
    }
    quant_from_float_fn conv = quant_act_from_float(k->vec_dot_type);
    *stride = hr_row_size(k->vec_dot_type, n);
    for (int i = 0; i < nc; i++)
        conv(x + (size_t)i * x_stride, (char *)buf + (size_t)i * *stride, n);
    return buf;
}

/* out[c·ldo + i] = W_{r0+i}·act_c for i < nr, c < nc (act_c at act +
 * c·stride): gemm tiles, or vec_dot without them. */
static void rows_dot(const struct weight *w, int64_t r0, int64_t nr, const void *act, size_t stride,
                     int nc, float *out, size_t ldo)
{
    const struct quant_kernels *k = w->k;
    const char *wd = (const char *)w->data + (size_t)r0 * w->row_size;
    const char *a = act;
    if (k->gemm) {
        for (int c0 = 0; c0 < nc; c0 += k->gemm_nc) {
            int cn = nc - c0 < k->gemm_nc ? nc - c0 : k->gemm_nc;
            for (int64_t i = 0; i < nr; i += k->gemm_mr) {
                int n = nr - i < k->gemm_mr ? (int)(nr - i) : k->gemm_mr;
                k->gemm(w->n_in, out + (size_t)c0 * ldo + i, ldo, wd + (size_t)i * w->row_size,
                        w->row_size, n, a + (size_t)c0 * stride, stride, cn);
            }
        }
        return;
    }
    for (int c = 0; c < nc; c++)
        for (int64_t i = 0; i < nr; i++)
            k->vec_dot(w->n_in, &out[(size_t)c * ldo + i], wd + (size_t)i * w->row_size,
                       a + (size_t)c * stride);
}

/* Rows t0 .. t0+n−1 of the product (t < T): the length of the run from t0
 * whose rows share t0's set (one sequence's consecutive rows), at most
 * `max`. */
static int run_length(const struct lora_product *lp, int64_t t0, int64_t max)
{
    const struct hr_ctx *c = lp->c;
    const struct lora_set *s0 = set_of(c, lp->row_map ? lp->row_map[t0] : t0);
    int n = 1;
    while (n < max && t0 + n < lp->T && set_of(c, lp->row_map ? lp->row_map[t0 + n] : t0 + n) == s0)
        n++;
    return n;
}

/* The offset of use u's A·x values in a row of la. */
static int64_t use_offset(const struct lora_set *set, int64_t u)
{
    int64_t off = 0;
    for (int64_t v = 0; v < u; v++)
        off += set->uses[v].lora->max_r;
    return off;
}

/* Most adapters in the set of any row of the pass (0: nothing to do). */
static int32_t max_uses(const struct hr_ctx *c)
{
    int32_t m = 0;
    for (int32_t i = 0; i < c->n_items; i++)
        if (c->items[i].seq->loras.n > m) m = c->items[i].seq->loras.n;
    return m;
}

bool lora_product_init(struct lora_product *lp, struct hr_ctx *c, int64_t slot, const float *x,
                       float *y, int64_t T, const int32_t *row_map)
{
    int32_t mu = max_uses(c);
    if (mu == 0) return false;
    /* the product's shape, from any adapter of the pass that changes it */
    const struct lora_pair *any = NULL;
    for (int32_t i = 0; i < c->n_items && !any; i++) {
        const struct lora_set *set = &c->items[i].seq->loras;
        for (int32_t u = 0; u < set->n && !any; u++)
            any = set->uses[u].lora->slot[slot];
    }
    if (!any) return false;
    int nt = pool_size(c->pool);
    int64_t blocks = (T + LORA_NC - 1) / LORA_NC;
    *lp = (struct lora_product){c, slot, x, y, T, any->a.n_in, any->b.n_out, row_map, mu, 1};
    /* few (block, adapter) pairs, as in a decode step: slice the ranks so
     * that every thread takes part */
    if (blocks * mu < nt) lp->split = (nt + blocks * mu - 1) / (blocks * mu);
    lp->n_p1 = blocks * mu * lp->split;
    return true;
}

void lora_product_p1(const struct lora_product *lp, int64_t i, int thread)
{
    struct hr_ctx *c = lp->c;
    int64_t s = i % lp->split, u = (i / lp->split) % lp->max_uses;
    int64_t b = i / (lp->split * lp->max_uses);
    int64_t t1 = (b + 1) * LORA_NC < lp->T ? (b + 1) * LORA_NC : lp->T;
    for (int64_t t = b * LORA_NC; t < t1;) {
        int nc = run_length(lp, t, t1 - t);
        const struct lora_set *set = set_of(c, lp->row_map ? lp->row_map[t] : t);
        const struct lora_pair *p =
            u < set->n && set->uses[u].scale != 0.0f ? set->uses[u].lora->slot[lp->slot] : NULL;
        int64_t k0 = p ? p->r * s / lp->split : 0, k1 = p ? p->r * (s + 1) / lp->split : 0;
        if (k1 > k0) {
            size_t stride;
            const void *act = as_act(p->a.k, lp->x + t * lp->n_in, (size_t)lp->n_in, lp->n_in, nc,
                                     conv_of(c, thread), &stride);
            rows_dot(&p->a, k0, k1 - k0, act, stride, nc,
                     c->lora.la + t * c->lora.rank_cap + use_offset(set, u) + k0,
                     (size_t)c->lora.rank_cap);
        }
        t += nc;
    }
}

/* Phase 2 through Bᵀ (lora.h) for rows t .. t+nc−1, outputs [o0, o1):
 * tmp = Σ_k v[k]·Bᵀ[k][o0 .. o1) in k order, one fused multiply-add per
 * element and k, with v = the row's A·x values rounded to B's activation
 * format as the reference's product rounds them (F16: to binary16); then
 * y += s·tmp. */
static void bt_rows(const struct lora_product *lp, const struct lora_pair *p, int64_t off,
                    int64_t t, int nc, int64_t o0, int64_t o1, float sc, int thread)
{
    struct hr_ctx *c = lp->c;
    float *tmp = tmp_of(c, thread);
    float *v = tmp + c->lora.tmp_size / LORA_NC / sizeof(float); /* the tmp's second row */
    const struct vec_kernels *vk = c->vec;
    bool f16 = p->b.type == HR_TYPE_F16;
    int64_t n_out = p->b.n_out;
    for (int r = 0; r < nc; r++) {
        const float *la = c->lora.la + (t + r) * c->lora.rank_cap + off;
        for (int64_t k = 0; k < p->r; k++)
            v[k] = f16 ? hr_fp16_to_fp32(hr_fp32_to_fp16(la[k])) : la[k];
        float *yr = lp->y + (t + r) * lp->n_out;
        for (int64_t o = o0; o < o1; o += LORA_TMP_ROWS) {
            int64_t n = o1 - o < LORA_TMP_ROWS ? o1 - o : LORA_TMP_ROWS;
            memset(tmp, 0, (size_t)n * sizeof *tmp);
            for (int64_t k = 0; k < p->r; k++) {
                if (f16)
                    vk->mad_f16(tmp, (const uint16_t *)p->bt + k * n_out + o, v[k], n);
                else
                    vk->mad_f32(tmp, (const float *)p->bt + k * n_out + o, v[k], n);
            }
            for (int64_t i = 0; i < n; i++)
                yr[o + i] += tmp[i] * sc;
        }
    }
}

void lora_product_rows(const struct lora_product *lp, int64_t o0, int64_t o1, int thread)
{
    struct hr_ctx *c = lp->c;
    float *tmp = tmp_of(c, thread);
    size_t ldt = c->lora.tmp_size / LORA_NC / sizeof(float); /* >= LORA_TMP_ROWS */
    for (int64_t t = 0; t < lp->T;) {
        int nc = run_length(lp, t, LORA_NC);
        const struct lora_set *set = set_of(c, lp->row_map ? lp->row_map[t] : t);
        int64_t off = 0;
        for (int32_t u = 0; u < set->n; off += set->uses[u].lora->max_r, u++) {
            const struct hr_lora_use *use = &set->uses[u];
            const struct lora_pair *p = use->lora->slot[lp->slot];
            if (!p || use->scale == 0.0f)
                continue;
            float sc = lora_eff_scale(use->scale, use->lora->file->alpha, p->r);
            if (p->bt) {
                bt_rows(lp, p, off, t, nc, o0, o1, sc, thread);
                continue;
            }
            size_t stride;
            const void *act =
                as_act(p->b.k, c->lora.la + t * c->lora.rank_cap + off, (size_t)c->lora.rank_cap,
                       p->r, nc, conv_of(c, thread), &stride);
            for (int64_t o = o0; o < o1; o += LORA_TMP_ROWS) {
                int64_t n = o1 - o < LORA_TMP_ROWS ? o1 - o : LORA_TMP_ROWS;
                rows_dot(&p->b, o, n, act, stride, nc, tmp, ldt);
                for (int r = 0; r < nc; r++) {
                    float *yr = lp->y + (t + r) * lp->n_out + o;
                    const float *tr = tmp + (size_t)r * ldt;
                    for (int64_t i = 0; i < n; i++)
                        yr[i] += tr[i] * sc;
                }
            }
        }
        t += nc;
    }
}

void lora_apply_embd(struct hr_ctx *c, float *x, int64_t T)
{
    if (max_uses(c) == 0) return;
    int64_t n_embd = c->model->hp.n_embd;
    float *a_t = tmp_of(c, 0);
    float *d = a_t + c->lora.tmp_size / LORA_NC / sizeof(float); /* the tmp's second row */
    for (int64_t t = 0; t < T; t++) {
        const struct lora_set *set = set_of(c, t);
        for (int32_t u = 0; u < set->n; u++) {
            const struct hr_lora_use *use = &set->uses[u];
            const struct lora_pair *p = use->lora->slot[LORA_SLOT_EMBD];
            if (!p || use->scale == 0.0f) continue;
            /* row `token` of A: its r values (A ne=[r, n_vocab]) */
            p->a.k->to_float((const char *)p->a.data + (size_t)c->row_tok[t] * p->a.row_size, a_t,
                             p->r);
            size_t stride;
            const void *act = as_act(p->b.k, a_t, (size_t)p->r, p->r, 1, conv_of(c, 0), &stride);
            float sc = lora_eff_scale(use->scale, use->lora->file->alpha, p->r);
            float *xr = x + t * n_embd;
            for (int64_t o = 0; o < n_embd; o += LORA_TMP_ROWS) {
                int64_t n = n_embd - o < LORA_TMP_ROWS ? n_embd - o : LORA_TMP_ROWS;
                rows_dot(&p->b, o, n, act, stride, 1, d, 0);
                for (int64_t i = 0; i < n; i++)
                    xr[o + i] += d[i] * sc;
            }
        }
    }
}
