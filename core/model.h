/*
 * model.h — a loaded model: hyperparameters and weight views into the
 * mapped GGUF file (FORMATS.md §4), shared by the loader (model.c) and the
 * forward pass (forward.c).
 *
 * Weights stay in the file mapping in their stored type; only the small
 * one-dimensional tensors (norm weights, biases, RoPE frequency factors) are
 * converted to f32 copies at load, since every op reads them as f32.
 */
#ifndef HEARTH_CORE_MODEL_H
#define HEARTH_CORE_MODEL_H

#include "gguf.h"
#include "quant.h"

#include <hearth/hearth.h>

enum model_arch { ARCH_LLAMA, ARCH_QWEN2, ARCH_QWEN3 };
enum rope_mode { ROPE_NORM = 0, ROPE_NEOX = 2 };

/* A weight matrix ne=[n_in, n_out] in the mapping: row o (one output) is
 * data + o*row_size and holds n_in elements of `type`.
 *
 * packed: when the active kernels of the type offer repack (k->repack), the
 * matrix products use this copy made at load in the kernel's layout (owned
 * by the model, 64-byte aligned, freed with it; k->gemm_packed reads it).
 * The mapped pages of such a tensor are then never touched again, so the
 * copy replaces them in RAM use rather than adding to it — except for a tied
 * output, whose mapped rows stay in use as token_embd's embeddings. */
struct weight {
    const void *data;
    uint32_t type;
    int64_t n_in, n_out;
    size_t row_size;
    const struct quant_kernels *k;
    const char *name; /* borrowed from the gguf tensor info */
    void *packed;     /* NULL: products read `data` */
};

struct layer {
    float *attn_norm;          /* [n_embd] */
    struct weight wq, wk, wv;  /* [n_embd, n_q], [n_embd, n_kv] x2 */
    float *bq, *bk, *bv;       /* optional biases [n_q], [n_kv], [n_kv] */
    struct weight wo;          /* [n_q, n_embd] */
    float *bo;                 /* optional [n_embd] */
    float *q_norm, *k_norm;    /* qwen3: [head_dim] */
    float *ffn_norm;           /* [n_embd] */
    struct weight gate, up;    /* [n_embd, n_ff] */
    struct weight down;        /* [n_ff, n_embd] */
};

struct hparams {
    int64_t n_vocab, n_ctx_train, n_embd, n_layer, n_ff;
    int64_t n_head, n_head_kv, head_dim, n_rot;
    float eps;
    float rope_base;
    float rope_freq_scale; /* 1/scaling.factor, 1 when none */
    float rope_attn_factor;
    bool rope_yarn;
    int64_t rope_n_ctx_orig;
    enum rope_mode rope_mode;
};

struct hr_model {
    struct gguf_file *gguf;
    struct hr_vocab *vocab;
    enum model_arch arch;
    char arch_name[16];
    struct hparams hp;
    bool vocab_only;

    struct weight tok_embd; /* [n_embd, n_vocab]: row t = embedding of t (never packed) */
    struct weight output;   /* [n_embd, n_vocab]; token_embd when tied */
    float *output_bias;     /* qwen2, optional [n_vocab] */
    float *output_norm;     /* [n_embd] */
    float *rope_freqs;      /* llama 3, optional [n_rot/2] */
    struct layer *layers;   /* [n_layer] */

    float **owned; /* every f32 copy above, freed with the model */
    size_t n_owned;

    char *chat_template; /* tokenizer.chat_template, NUL-terminated copy, or NULL */
};

#endif
