/*
 * lora.h — LoRA adapters inside the engine (FORMATS.md §6): an adapter file
 * checked against a base model (lora.c), the adapter sets of sequences and
 * the low-rank deltas the forward pass adds (lora_apply.c), merging adapters
 * into a model file (lora_merge.c) and converting PEFT adapters
 * (lora_import.c).
 *
 * An adapter holds, for some base weights W ne=[n_in, n_out], a pair
 * A ne=[n_in, r] (r rows of n_in) and B ne=[r, n_out] (n_out rows of r);
 * the product y = W·x becomes y = W·x + Σ_adapters s·(α/r)·B·(A·x) with s
 * the user's scale of that adapter (α/r replaced by 1 when the file has no
 * alpha). token_embd is the exception: A ne=[r, n_vocab] (row t: r values
 * for token t), B ne=[r, n_embd], and the embedding of t gains
 * s·(α/r)·B·a_t. A and B stay in the adapter's mapped file in their stored
 * type (F32, F16, BF16, Q8_0, any type with kernels); the products quantize
 * their activations to the type's vec_dot_type as the reference does.
 */
#ifndef HEARTH_CORE_LORA_H
#define HEARTH_CORE_LORA_H

#include "gguf.h"
#include "model.h"

#include <hearth/hearth.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* ---- an adapter file checked against a base (model-independent) ---------------- */

/* One base weight the adapter changes. Pointers borrowed from the gguf
 * files (the adapter's, and the base's for `base`). */
struct lora_file_pair {
    const struct gguf_tensor *base, *a, *b;
    int64_t r; /* rank: b->ne[0] */
    bool embd; /* token_embd.weight: the transposed layout above */
};

struct lora_file {
    struct gguf_file *gguf; /* the adapter, mapped; owned */
    float alpha;            /* adapter.lora.alpha, 0 when absent */
    struct lora_file_pair *pairs;
    int n_pairs;
};

/* Opens the adapter at `path` and checks it against the base model file
 * `base` (its general.architecture and tensor table; FORMATS.md §6 rules):
 * general.type "adapter", adapter.type "lora", the same architecture, every
 * X.lora_a with its X.lora_b, X present in the base, 2-D shapes that fit X,
 * types with kernels, no activated-LoRA invocation tokens (not supported).
 * Plain tensors named *_norm.weight are ignored, as the reference does.
 * Errors name the file and what differs: -EINVAL (not an adapter, another
 * architecture, a tensor the base lacks, a shape or rank mismatch, an
 * incomplete pair), -ENOTSUP (a type without kernels, activated LoRA),
 * -ENOENT/-EACCES (open), -ENOMEM. *out owned: lora_file_free. */
int lora_file_open(const struct gguf_file *base, const char *path, struct lora_file **out,
                   struct hr_err *err);
/* The same on an adapter image in memory (buf borrowed: it must outlive
 * *out); `label` names it in messages. */
int lora_file_parse(const struct gguf_file *base, const void *buf, size_t size, const char *label,
                    struct lora_file **out, struct hr_err *err);
void lora_file_free(struct lora_file *f);

/* The scale of a pair's delta for the user's scale: user·α/r, or the user's
 * scale when the file has no alpha — in the reference's float order
 * (llama_adapter_lora_weight::get_scale). */
static inline float lora_eff_scale(float user, float alpha, int64_t r)
{
    return alpha != 0.0f ? user * alpha / (float)r : user;
}

/* ---- an adapter bound to a loaded model ---------------------------------------- */

/* The model weights an adapter can change, by slot: token_embd, output, then
 * per layer the seven products in forward-pass order. */
enum lora_kind { LORA_Q, LORA_K, LORA_V, LORA_O, LORA_GATE, LORA_UP, LORA_DOWN, LORA_PER_LAYER };
#define LORA_SLOT_EMBD 0
#define LORA_SLOT_OUTPUT 1
#define LORA_SLOT(il, kind) (2 + (int64_t)(il)*LORA_PER_LAYER + (int64_t)(kind))

/* A and B as matrices the kernels read: a has r rows of n_in (token_embd:
 * n_vocab rows of r), b has n_out rows of r (token_embd: n_embd rows).
 *
 * bt: for an F32 or F16 B (not token_embd's), B transposed — r rows of
 * n_out, in B's type, owned — made at load: with a rank of 8 to 64, a row
 * of B is too short for the dot-product kernels to be efficient, while
 * B·v as r multiply-adds of v[k]·(row k of Bᵀ) over the outputs runs at the
 * vector units' speed (vec.h mad_f32/mad_f16). NULL: the B rows are used. */
struct lora_pair {
    struct weight a, b;
    int64_t r;
    void *bt;
};

struct hr_lora {
    atomic_int refs;              /* hr_lora_retain / hr_lora_free */
    const struct hr_model *model; /* borrowed: outlives the adapter */
    struct lora_file *file;
    int64_t n_slots;
    struct lora_pair **slot; /* [n_slots]: the pair of that weight or NULL */
    struct lora_pair *pairs; /* [file->n_pairs], what slot points into */
    int32_t max_r;
    uint64_t n_bytes;
};

/* ---- adapter sets and the forward pass ------------------------------------------ */

struct hr_ctx;
struct hr_seq;

/* A sequence's adapters: uses[i].lora holds a reference (released by
 * lora_set_done or when replaced). */
struct lora_set {
    struct hr_lora_use *uses;
    int32_t n;
    int32_t rank_sum; /* Σ max_r of the uses: an upper bound of the A·x values of a row */
};

void lora_set_done(struct lora_set *s);

/* Rows multiplied together (a gemm over a run of one sequence's rows), and
 * outputs of B computed per step into a thread's tmp floats. */
#define LORA_NC 8
#define LORA_TMP_ROWS 256

/* Scratch of the deltas, per context, grown when a sequence of the context
 * gets a set that needs more (evaluation allocates nothing). */
struct lora_scratch {
    float *la; /* [n_batch][rank_cap]: A·x of every row, per use in set order */
    int32_t rank_cap;
    /* [n_threads][conv_size]: per thread, LORA_NC activation rows in a
     * kernel's vec_dot_type, then (the last tmp_size bytes) LORA_NC rows of
     * tmp floats, each at least LORA_TMP_ROWS and the largest rank long */
    void *conv;
    size_t conv_size, tmp_size;
    int n_threads;
};

void lora_scratch_done(struct lora_scratch *s);

/* Replaces seq's set (in `set`, of a sequence of ctx c) with `uses` (copied;
 * every lora retained), after checking them and growing c's scratch. On any
 * error nothing changes. */
int lora_set_replace(struct hr_ctx *c, struct lora_set *set, const struct hr_lora_use *uses,
                     int32_t n, struct hr_err *err);

/* The deltas of one product y[T][n_out] = W·x[T][n_in] of the planned pass,
 * computed inside the base product's own pool runs (forward.c's matmul), so
 * adapters add no synchronization to a pass: phase 1 (A·x of every row and
 * adapter, into the scratch) runs as extra tasks beside the activations'
 * conversion, phase 2 (y += s·(α/r)·B·(A·x)) on the output rows each base
 * task has just computed. Row t of x and y is row t of the pass, or with
 * row_map, row row_map[t] (the output head runs on the kept rows only). */
struct lora_product {
    struct hr_ctx *c;
    int64_t slot;
    const float *x;
    float *y;
    int64_t T, n_in, n_out;
    const int32_t *row_map;
    int32_t max_uses; /* most adapters in any row's set */
    int64_t split;    /* phase 1: rank slices per (row, adapter) */
    int64_t n_p1;     /* phase-1 tasks */
};

/* Fills *lp for weight `slot`; false when no row of the pass has an adapter
 * that changes it (then there is nothing to do). */
bool lora_product_init(struct lora_product *lp, struct hr_ctx *c, int64_t slot, const float *x,
                       float *y, int64_t T, const int32_t *row_map);
/* Phase-1 task i < lp->n_p1, on pool thread `thread`. */
void lora_product_p1(const struct lora_product *lp, int64_t i, int thread);
/* Phase 2 for outputs [o0, o1) of every row, after phase 1 and after the
 * base product has written those outputs. */
void lora_product_rows(const struct lora_product *lp, int64_t o0, int64_t o1, int thread);

/* x[T][n_embd] (the embeddings just fetched) += the token_embd deltas. */
void lora_apply_embd(struct hr_ctx *c, float *x, int64_t T);

/* ---- merging and importing (files) ----------------------------------------------- */

/* Progress of lora_merge, once per tensor of the base after it is written
 * to the scratch file or found unchanged. */
struct lora_merge_progress {
    int index, count; /* 1-based */
    const char *name; /* borrowed for the call */
    uint32_t from_type, to_type;
    int n_deltas; /* adapters that changed this tensor */
};

struct lora_merge_input {
    const char *path;
    float scale; /* user scale (α/r comes from the file) */
};

struct lora_merge_params {
    int ftype;     /* a quantize mix (quantize.h) for every tensor, or -1: keep each type */
    int n_threads; /* >= 1 */
    void (*progress)(void *ud, const struct lora_merge_progress *p); /* optional */
    void *progress_ud;
};

struct lora_merge_stats {
    int n_tensors; /* tensors in the output */
    int n_merged;  /* tensors that got at least one delta */
    uint64_t out_file_bytes;
};

/* Writes base_path with the deltas of the adapters folded in:
 * W' = W + Σ s·(α/r)·B·A, computed in f32 from the dequantized W and
 * requantized with the reference quantizers (quant.h) to W's own type, or
 * with p->ftype ≥ 0 to the type that mix chooses for each tensor (as
 * hearth quantize; tensors whose type does not change and that no adapter
 * touches are copied as they are). Every adapter is checked against the
 * base first (lora_file_open). out_path is written atomically. Errors as
 * lora_file_open and quantize_model, naming the file or tensor. */
int lora_merge(const char *base_path, const struct lora_merge_input *adapters, int n_adapters,
               const char *out_path, const struct lora_merge_params *p,
               struct lora_merge_stats *stats, struct hr_err *err);

struct lora_import_stats {
    int n_pairs;  /* tensor pairs written */
    int32_t rank; /* r of the config */
    float alpha;  /* written adapter.lora.alpha (rsLoRA folded in) */
};

/* Converts a PEFT adapter directory (adapter_config.json: r, lora_alpha,
 * target_modules, use_rslora; adapter_model.safetensors with F32/F16/BF16
 * tensors) for the base model file `base_path` into a GGUF adapter at
 * out_path: Hugging Face names → GGUF names, lora_A [r, n_in] → .lora_a
 * ne=[n_in, r], lora_B [n_out, r] → .lora_b ne=[r, n_out] (same bytes:
 * safetensors are row-major), tensors kept in their type, and for the
 * llama architecture the rows of q_proj's and k_proj's lora_B permuted as
 * llama.cpp's converter permutes q/k weights (its `permute`: the halves of
 * every head interleaved, for the reference's RoPE pairing). The scale
 * PEFT applies, α/r (use_rslora: α/√r), is kept: adapter.lora.alpha = α
 * (use_rslora: α·√r, so that alpha/r = α/√r). The result is checked against
 * the base (lora_file_parse) before it is written to out_path (atomically).
 * Errors name the file, key or tensor: -EINVAL (malformed JSON or
 * safetensors, unknown module name, shape mismatch), -ENOTSUP (a dtype
 * other than F32/F16/BF16, DoRA, unsupported config), -ENOENT, -ENOMEM. */
int lora_import_peft(const char *dir, const char *base_path, const char *out_path,
                     struct lora_import_stats *stats, struct hr_err *err);

#endif
