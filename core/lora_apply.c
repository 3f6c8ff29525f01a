/*
 * lora_apply.c — the low-rank deltas of the forward pass (lora.h): after
 * the base product y = W·x over all T rows of a pass, every row whose
 * sequence has an adapter set gets y += s·(α/r)·B·(A·x) for each adapter of
 * its set that changes W, in the set's order (the reference adds its
 * adapters' deltas one after the other, each scaled in f32 before the add).
 *
 * Two parallel phases per product, each one pool run:
 *   1. la[t][off_u + k] = A_u[k]·x_t for every row t, adapter u of its set
 *      and k < r_u (tasks: row × adapter × a slice of the rank, so that one
 *      row of one adapter — a decode step — still spreads over the threads);
 *      off_u is the sum of the max ranks of the adapters before u.
 *   2. y[t][o] += s_u · B_u[o]·la[t][off_u ..] for chunks of outputs o
 *      (tasks: output chunks; every task walks all rows and adapters).
 * Both phases convert their activations (x_t, then la_t) to the matrix's
 * vec_dot_type first, as the reference's mul_mat does, and compute every
 * row on its own with the same operations whatever T is, so a row's result
 * does not depend on the other rows of the pass (ctx.h's batch invariance).
 *
 * Nothing is allocated here: the scratch (ctx->lora) was sized when a set
 * was given to a sequence of the context (lora_set_replace).
 */
#include "lora.h"

#include "ctx.h"
#include "pool.h"
#include "quant.h"

#include <string.h>

#define P2_ROWS LORA_TMP_ROWS /* most outputs of one phase-2 task: its tmp buffer's size */

/* The set of pass row t. */
static const struct lora_set *set_of(const struct hr_ctx *c, int64_t t)
{
    return &c->items[c->row_item[t]].seq->loras;
}

/* Thread `thread`'s conversion buffer (activations in a vec_dot_type) and
 * its tmp floats (see lora_scratch_need). */
static void *conv_of(const struct hr_ctx *c, int thread)
{
    return (char *)c->lora.conv + (size_t)thread * c->lora.conv_size;
}

static float *tmp_of(const struct hr_ctx *c, int thread)
{
    return (float *)((char *)conv_of(c, thread) + c->lora.conv_size - c->lora.tmp_size);
}

/* x[n] (f32) as the activation operand of kernels k: converted into buf, or
 * x itself when the kernels read f32. */
static const void *as_act(const struct quant_kernels *k, const float *x, int64_t n, void *buf)
{
    if (k->vec_dot_type == HR_TYPE_F32) return x;
    quant_act_from_float(k->vec_dot_type)(x, buf, n);
    return buf;
}

/* out[i] = W_{r0+i}·act for i < nr (rows of w, r0 .. r0+nr−1). */
static void rows_dot(const struct weight *w, int64_t r0, int64_t nr, const void *act, float *out)
{
    const struct quant_kernels *k = w->k;
    const char *wd = (const char *)w->data + (size_t)r0 * w->row_size;
    if (k->gemm) {
        for (int64_t i = 0; i < nr; i += k->gemm_mr) {
            int n = nr - i < k->gemm_mr ? (int)(nr - i) : k->gemm_mr;
            k->gemm(w->n_in, out + i, 0, wd + (size_t)i * w->row_size, w->row_size, n, act, 0, 1);
        }
        return;
    }
    for (int64_t i = 0; i < nr; i++)
        k->vec_dot(w->n_in, &out[i], wd + (size_t)i * w->row_size, act);
}

struct job {
    struct hr_ctx *c;
    int64_t slot;
    const float *x;
    float *y;
    int64_t T, n_in, n_out;
    const int32_t *row_map; /* NULL: identity */
    int32_t max_uses;       /* most adapters in any row's set */
    int64_t split;          /* phase 1: rank slices per (row, adapter) */
    int64_t rows;           /* phase 2: outputs per task */
};

static void phase1(void *arg, int64_t i, int thread)
{
    const struct job *j = arg;
    struct hr_ctx *c = j->c;
    int64_t s = i % j->split, u = (i / j->split) % j->max_uses, t = i / (j->split * j->max_uses);
    const struct lora_set *set = set_of(c, j->row_map ? j->row_map[t] : t);
    if (u >= set->n || set->uses[u].scale == 0.0f) return;
    const struct lora_pair *p = set->uses[u].lora->slot[j->slot];
    if (!p) return;
    int64_t off = 0;
    for (int64_t v = 0; v < u; v++)
        off += set->uses[v].lora->max_r;
    int64_t k0 = p->r * s / j->split, k1 = p->r * (s + 1) / j->split;
    if (k1 <= k0) return;
    const void *act = as_act(p->a.k, j->x + t * j->n_in, j->n_in, conv_of(c, thread));
    rows_dot(&p->a, k0, k1 - k0, act, c->lora.la + t * c->lora.rank_cap + off + k0);
}

static void phase2(void *arg, int64_t i, int thread)
{
    const struct job *j = arg;
    struct hr_ctx *c = j->c;
    int64_t o0 = i * j->rows, o1 = o0 + j->rows < j->n_out ? o0 + j->rows : j->n_out;
    float *tmp = tmp_of(c, thread);
    for (int64_t t = 0; t < j->T; t++) {
        const struct lora_set *set = set_of(c, j->row_map ? j->row_map[t] : t);
        int64_t off = 0;
        for (int32_t u = 0; u < set->n; off += set->uses[u].lora->max_r, u++) {
            const struct hr_lora_use *use = &set->uses[u];
            const struct lora_pair *p = use->lora->slot[j->slot];
            if (!p || use->scale == 0.0f) continue;
            const void *act =
                as_act(p->b.k, c->lora.la + t * c->lora.rank_cap + off, p->r, conv_of(c, thread));
            rows_dot(&p->b, o0, o1 - o0, act, tmp);
            float sc = lora_eff_scale(use->scale, use->lora->file->alpha, p->r);
            float *yr = j->y + t * j->n_out;
            for (int64_t o = o0; o < o1; o++)
                yr[o] += tmp[o - o0] * sc;
        }
    }
}

/* Most adapters in the set of any row of the pass (0: nothing to do). */
static int32_t max_uses(const struct hr_ctx *c)
{
    int32_t m = 0;
    for (int32_t i = 0; i < c->n_items; i++)
        if (c->items[i].seq->loras.n > m) m = c->items[i].seq->loras.n;
    return m;
}

bool lora_pass_active(const struct hr_ctx *c)
{
    return max_uses(c) > 0;
}

void lora_apply(struct hr_ctx *c, int64_t slot, const float *x, float *y, int64_t T,
                const int32_t *row_map)
{
    int32_t mu = max_uses(c);
    if (mu == 0) return;
    /* the base product's shape, from any adapter that has this slot */
    const struct lora_pair *any = NULL;
    for (int32_t i = 0; i < c->n_items && !any; i++) {
        const struct lora_set *set = &c->items[i].seq->loras;
        for (int32_t u = 0; u < set->n && !any; u++)
            any = set->uses[u].lora->slot[slot];
    }
    if (!any) return;
    int nt = pool_size(c->pool);
    struct job j = {c, slot, x, y, T, any->a.n_in, any->b.n_out, row_map, mu, 1, P2_ROWS};
    /* few (row, adapter) tasks: slice the ranks so every thread works */
    if (T * mu < nt) j.split = (nt + T * mu - 1) / (T * mu);
    pool_run(c->pool, phase1, &j, T * mu * j.split);
    int64_t rows = (j.n_out + 4 * nt - 1) / (4 * nt);
    rows = rows < 16 ? 16 : rows > P2_ROWS ? P2_ROWS : rows;
    j.rows = (rows + 3) / 4 * 4; /* whole gemm tiles (gemm_mr is 4 on every path) */
    if (j.rows > P2_ROWS) j.rows = P2_ROWS;
    pool_run(c->pool, phase2, &j, (j.n_out + j.rows - 1) / j.rows);
}

void lora_apply_embd(struct hr_ctx *c, float *x, int64_t T)
{
    if (max_uses(c) == 0) return;
    int64_t n_embd = c->model->hp.n_embd;
    float *a_t = tmp_of(c, 0);
    for (int64_t t = 0; t < T; t++) {
        const struct lora_set *set = set_of(c, t);
        for (int32_t u = 0; u < set->n; u++) {
            const struct hr_lora_use *use = &set->uses[u];
            const struct lora_pair *p = use->lora->slot[LORA_SLOT_EMBD];
            if (!p || use->scale == 0.0f) continue;
            /* row `token` of A: its r values (A ne=[r, n_vocab]) */
            p->a.k->to_float((const char *)p->a.data + (size_t)c->row_tok[t] * p->a.row_size, a_t,
                             p->r);
            const void *act = as_act(p->b.k, a_t, p->r, conv_of(c, 0));
            float sc = lora_eff_scale(use->scale, use->lora->file->alpha, p->r);
            float *xr = x + t * n_embd;
            for (int64_t o = 0; o < n_embd; o += P2_ROWS) {
                int64_t n = n_embd - o < P2_ROWS ? n_embd - o : P2_ROWS;
                float d[P2_ROWS];
                rows_dot(&p->b, o, n, act, d);
                for (int64_t i = 0; i < n; i++)
                    xr[o + i] += d[i] * sc;
            }
        }
    }
}
