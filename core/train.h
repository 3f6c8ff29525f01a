/*
 * train.h — LoRA fine-tuning inside the engine (hearth.h "training"),
 * shared by its files:
 *
 *   train_ops.c    the elementwise and attention operations, forward and
 *                  backward, on row-major f32 activations (each checked
 *                  against finite differences by tests/test_train.c)
 *   train_mm.c     matrix products with the frozen base through the
 *                  engine's kernels (y = W·x and dx = Wᵀ·dy, the latter on a
 *                  transposed copy of W made at start), and the LoRA
 *                  products with their gradients
 *   train_graph.c  one pass: forward through every layer keeping what the
 *                  backward pass needs (or only each layer's input, then
 *                  recomputing), the loss head, and the backward pass
 *   train.c        the session: parameters, AdamW, clipping, schedule, the
 *                  public entry points
 *   train_io.c     the adapter file (llama.cpp's GGUF LoRA format) and
 *                  checkpoints
 *   train_data.c   training data: text and JSONL examples, tokenized, with
 *                  their loss masks, split and packed into rows
 *
 * Shapes: a pass evaluates T tokens as row-major activations [T][width].
 * The T tokens are whole rows of n_ctx tokens; inside a row, examples are
 * told apart by their positions (pos[t] == 0 starts an example), and a
 * token attends to the earlier tokens of its own example only — the
 * block-diagonal causal mask of packing.
 *
 * Determinism: every output element of every parallel section is computed
 * by one task in an order that does not depend on the number of threads or
 * on which thread runs the task, and every sum across tokens (gradients of
 * A and B, the loss) runs in token order. So results depend on the seed
 * and the data only — not on the thread count.
 */
#ifndef HEARTH_CORE_TRAIN_H
#define HEARTH_CORE_TRAIN_H

#include "model.h"

#include <hearth/hearth.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

struct pool;
struct vec_kernels;

/* ---- random numbers ----------------------------------------------------------------- */

/* splitmix64: the initialisation of A and the shuffles of the data. */
static inline uint64_t train_rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* uniform in [0, 1) with 53 bits */
static inline double train_rng_unit(uint64_t *s)
{
    return (double)(train_rng_next(s) >> 11) * 0x1p-53;
}

/* ---- operations (train_ops.c) -------------------------------------------------------- */

/* RMSNorm of one row of n as the forward pass computes it (FORMATS.md
 * §4.3): out = (x·r)·w with r = 1/sqrt(mean(x²) + eps), the squares summed
 * in double. Returns r. out may be x. */
float top_rmsnorm(float *out, const float *x, const float *w, int64_t n, float eps);

/* Backward of one row given the forward's x, w and r:
 * dx (+)= r·w⊙dy − x·r³/n·Σ(dy⊙w⊙x). accumulate: add to dx, else write. */
void top_rmsnorm_bwd(float *dx, const float *dy, const float *x, const float *w, float r, int64_t n,
                     bool accumulate);

/* RoPE tables for positions 0 .. n_pos−1 as the forward pass builds them
 * (FORMATS.md §4.4: iterative θ, frequency factors, linear or YaRN scaling,
 * the magnitude folded into cos and sin): cos_t/sin_t [n_pos][n_rot/2]. */
void top_rope_tables(const struct hparams *hp, const float *freq_factors, int64_t n_pos,
                     float *cos_t, float *sin_t);

/* Rotates (inverse: by −θ, the transpose, for the backward pass) every head
 * of x[T][n_heads·head_dim] in place, row t at position pos[t]. */
void top_rope(float *x, const int32_t *pos, int64_t T, int64_t n_heads, const struct hparams *hp,
              const float *cos_t, const float *sin_t, bool inverse);

/* silu(g)⊙u; backward: dg = dh⊙u⊙silu'(g), du = dh⊙silu(g). */
void top_swiglu(float *h, const float *g, const float *u, int64_t n);
void top_swiglu_bwd(float *dg, float *du, const float *dh, const float *g, const float *u,
                    int64_t n);

/* x[i] = e^x[i] over n floats (a polynomial: relative error ~1e-7, 0 below
 * −87, vectorized) */
void top_vexp(float *x, int64_t n);

/* Softmax cross-entropy of one row of logits z[V] against `label`, in
 * place: returns lse(z) − z[label] (in double) and leaves
 * z = gscale·(softmax(z) − onehot(label)). */
double top_xent(float *z, int64_t V, int32_t label, float gscale);

/* Attention of T tokens with the packing mask: query t sees the keys
 * j ∈ [t − pos[t], t]. q [T][n_head·hd], k and v [T][n_head_kv·hd]; query
 * head h uses KV head h / (n_head / n_head_kv). Writes o [T][n_head·hd] and
 * the log-sum-exp of the scaled scores lse [T][n_head] (what the backward
 * pass needs to rebuild the probabilities).
 *
 * The loops run along tokens, not along head_dim: scores of queries against
 * keys are Σ_d q[d]·Kᵀ[d][j..] over a transposed copy of K, and the heads
 * that share a KV head (or, backward, several keys) share each load, so the
 * inner loops are long vector operations without horizontal sums. Buffers
 * (caller-owned, floats): tr of top_attn_tsize (the copies), scratch of
 * top_attn_scratch per thread (n_ctx >= the longest example). */
struct top_attn {
    int64_t T, n_head, n_head_kv, hd, n_ctx;
    const int32_t *pos;
    const float *q, *k, *v;
    float *o, *lse;
    /* backward */
    const float *dout; /* [T][n_head·hd] */
    float *dq, *dk, *dv;
    float *dsum;      /* [T][n_head]: Σ_j P·dP = dout·o, filled by the backward */
    int32_t *seg_end; /* [T]: one past the last token of t's example, filled by the backward */
    float *scratch, *tr;
};
int64_t top_attn_scratch(int64_t n_ctx, int64_t hd, int64_t n_head, int64_t n_head_kv);
int64_t top_attn_tsize(int64_t T, int64_t n_head, int64_t n_head_kv, int64_t hd);
void top_attn_fwd(struct pool *pool, struct top_attn *a);
void top_attn_bwd(struct pool *pool, struct top_attn *a);

/* ---- the session ---------------------------------------------------------------------- */

/* The seven products a LoRA pair may change, in forward order; bit i of
 * hr_train_params.targets is kind i. */
enum train_kind { TK_Q, TK_K, TK_V, TK_O, TK_GATE, TK_UP, TK_DOWN, TK_COUNT };

/* One trained pair: A [r][n_in] (the rows of GGUF lora_a ne=[n_in, r]) and
 * Bᵀ [r][n_out] (GGUF lora_b ne=[r, n_out] is B [n_out][r], transposed when
 * written), at offsets of the flat parameter vector. */
struct train_target {
    const struct weight *w; /* the frozen base weight (borrowed from the model) */
    int64_t n_in, n_out;
    int64_t off_a, off_bt; /* in floats */
};

/* Activations of one layer over a pass of T tokens (sizes in train_graph.c).
 * x is the layer's input. In recomputation mode every layer keeps x only
 * and one shared set holds the rest while a layer is worked on. */
struct train_acts {
    float *x;            /* [T][E] input */
    float *r1, *xn1;     /* [T], [T][E]: attention norm */
    float *qp, *kp;      /* qwen3: q, k before their head norms [T][n_q], [T][n_kv] */
    float *qr, *kr;      /* qwen3: head norm inverses [T][n_head], [T][n_head_kv] */
    float *q, *k, *v;    /* after bias, norm and RoPE */
    float *lse;          /* [T][n_head] */
    float *o;            /* attention output [T][n_q] */
    float *h1;           /* [T][E]: residual after attention */
    float *r2, *xn2;     /* [T], [T][E]: FFN norm */
    float *g, *u;        /* [T][F] */
    float *ax[TK_COUNT]; /* [T][r]: A·x of each trained product */
};

/* Where a pass's time goes (seconds, summed over passes), for benchmarks. */
enum train_prof {
    TP_FWD_MM,   /* the layers' products W·x */
    TP_BWD_MM,   /* the layers' products Wᵀ·dy */
    TP_HEAD,     /* the output head's two products */
    TP_LORA,     /* the pairs' products and gradients */
    TP_ATTN_FWD, /* attention, forward */
    TP_ATTN_BWD, /* attention, backward */
    TP_XENT,     /* softmax cross-entropy */
    TP_OTHER,    /* norms, RoPE, SwiGLU, residuals, biases */
    TP_OPT,      /* clipping and AdamW */
    TP_COUNT
};

static inline double train_clock(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

struct hr_train {
    struct hr_model *model;
    struct hr_train_params p;
    struct pool *pool;
    int n_threads;
    const struct vec_kernels *vec;
    float scale; /* alpha / rank */

    /* parameters: flat vectors of n_params floats */
    int64_t n_params;
    float *param, *grad, *m, *v;
    struct train_target *tg; /* [n_layer][TK_COUNT]; w NULL when not trained */
    int64_t step;            /* optimizer steps taken */

    /* transposed copies of the base products: [n_layer][TK_COUNT], then the output */
    struct weight *wt;
    void **wt_mem; /* the owned buffer of each (data or packed) */
    uint64_t wt_bytes;

    /* pass scratch, sized for pass_T tokens */
    int64_t pass_T, head_C;
    float *rope_cos, *rope_sin; /* [n_ctx][n_rot/2] */
    struct train_acts *acts;    /* [n_layer] */
    struct train_acts work;     /* recomputation: the layer being worked on */
    float *x_out;               /* [T][E] the last layer's output */
    int32_t *tok, *lab, *pos;   /* [T] */
    float *dx, *dh, *dt, *dxn;  /* [T][E] */
    float *dq, *dk, *dv, *dat;  /* [T][n_q], [T][n_kv] x2, [T][n_q] */
    float *hbuf, *dg, *du;      /* [T][F] */
    float *lbuf;                /* [T][r]: B·dy of a LoRA backward */
    float *dsum;                /* [T][n_head] */
    int32_t *seg_end;           /* [T] */
    float *ascratch;            /* [n_threads][top_attn_scratch()] */
    float *atr;                 /* attention's transposed copies (top_attn_tsize) */
    float *logits;              /* [head_C][V] */
    float *hx;                  /* [head_C][E]: normed rows of the head */
    int32_t *hrow;              /* [head_C] */
    void *wdata;                /* converted activations of a product */
    size_t wdata_size;
    uint64_t act_bytes, scratch_bytes;

    hr_abort_fn abort_fn;
    void *abort_user;
    double prof[TP_COUNT];
};

/* ---- products (train_mm.c) ------------------------------------------------------------- */

/* y[T][w->n_out] = x[T][w->n_in]·Wᵀ through the weight's kernels (x
 * converted to its vec_dot_type first, as the forward pass does). */
void tmm(struct hr_train *t, const struct weight *w, const float *x, float *y, int64_t T);

/* The type of the transposed copy of w used for dx = Wᵀ·dy: requested
 * (hr_train_params.grad_type) or, by default, the base's own type for
 * F32/F16/BF16 (an exact transpose) and Q8_0 for quantized bases (when
 * n_out is a multiple of 32; F32 otherwise). */
uint32_t tmm_transposed_type(const struct weight *w, uint32_t requested);
/* Bytes of that copy. */
uint64_t tmm_transposed_bytes(const struct weight *w, uint32_t requested);
/* Makes it: out is a weight [n_out → n_in] (row i = column i of W); its
 * memory (*mem, owned: free()) is the data or the kernels' packed layout. */
int tmm_transpose(struct hr_train *t, const struct weight *w, uint32_t requested,
                  struct weight *out, void **mem);

/* y[T][n_out] += scale·(x·Aᵀ)·B, keeping ax[T][r] = x·Aᵀ. */
void tlora_fwd(struct hr_train *t, const struct train_target *tg, const float *x, float *ax,
               float *y, int64_t T);
/* Gradients of a pair from its input x, its ax and dy (accumulated into
 * t->grad); dx (when not NULL) += scale·(dy·Bᵀ)·A. */
void tlora_bwd(struct hr_train *t, const struct train_target *tg, const float *x, const float *ax,
               const float *dy, float *dx, int64_t T);

/* Parallel helpers: dst[i] += src[i] over n floats. */
void tmm_add(struct hr_train *t, float *dst, const float *src, int64_t n);

/* ---- one pass (train_graph.c) ---------------------------------------------------------- */

/* Sizes the pass buffers of t (t->pass_T, head_C and the arrays above) and
 * reports their bytes; alloc false only counts. */
int tgraph_alloc(struct hr_train *t, bool alloc);
void tgraph_free(struct hr_train *t);

/* Evaluates T tokens (t->tok, t->lab, t->pos filled; T a whole number of
 * rows, <= pass_T). Adds Σ cross-entropy over the labelled tokens to
 * *loss_sum. With backward, also adds the gradients of the loss scaled by
 * gscale (1 / labels of the step) to t->grad. -ECANCELED when the abort
 * function fires (polled per layer). */
int tgraph_pass(struct hr_train *t, int64_t T, bool backward, float gscale, double *loss_sum);

#endif
