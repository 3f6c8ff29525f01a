/*
 * ctx.h — the evaluation context and its sequences, shared by the context
 * API (ctx.c: lifecycle, argument checks, the public entry points) and the
 * forward pass (forward.c).
 *
 * A sequence owns a KV cache and its length n_past; a context owns the
 * scratch of one pass, the logits, the thread pool and a default sequence
 * (the one hr_ctx_eval uses). A pass evaluates T rows (tokens) that come in
 * items: item i is a run of rows [row0, row0 + n) of one sequence, at that
 * sequence's positions n_past .. n_past + n − 1. Rows are the items
 * concatenated in order; per-row work (embeddings, norms, products, RoPE,
 * SwiGLU) runs over all T rows at once, the KV store and attention per row
 * against the row's own sequence.
 */
#ifndef HEARTH_CORE_CTX_H
#define HEARTH_CORE_CTX_H

#include "lora.h"
#include "model.h"

#include <hearth/hearth.h>
#include <stdbool.h>
#include <stdint.h>

/* The F16 cache stores IEEE binary16 bit patterns, converted with the
 * engine's own round-to-nearest-even helpers (quant_impl.h), as the
 * reference's F16 cache rounds. (_Float16 would be neater, but clang 14
 * does not offer it on x86 without AVX-512 FP16.) */
typedef uint16_t fp16;

struct hr_seq {
    struct hr_ctx *ctx; /* the context it was made for (borrowed: it outlives the seq) */
    int32_t n_ctx;      /* cache length in tokens */
    int32_t n_past;     /* positions 0 .. n_past−1 hold valid K and V */
    /* [n_layer][n_ctx][n_kv]: f32 (the reference's precision) or, with
     * ctx->kv_f16, f16 in k16/v16. Rows at positions >= n_past may hold
     * anything (an aborted pass leaves its rows there). */
    float *k_cache, *v_cache;
    fp16 *k16, *v16;
    /* ctx->batch_gen when last listed in hr_ctx_eval_batch, and as which
     * item: finds a sequence listed twice without a search */
    uint64_t mark_gen;
    int32_t mark_item;
    struct lora_set loras; /* adapters of its rows (hr_seq_set_loras), references held */
};

struct fwd_item {
    struct hr_seq *seq;
    int32_t row0, n;
};

struct hr_ctx {
    struct hr_model *model;
    struct pool *pool;
    const struct vec_kernels *vec;
    int32_t n_ctx, n_batch;
    bool kv_f16;
    struct hr_seq *seq0; /* the default sequence (hr_ctx_eval & co.), owned */

    /* scratch, [n_batch][width] */
    float *x;    /* residual stream [T][n_embd] */
    float *xn;   /* normed input [T][n_embd] */
    float *q;    /* [T][n_q] */
    float *k;    /* [T][n_kv] */
    float *v;    /* [T][n_kv] */
    float *att;  /* attention output [T][n_q] */
    float *tmp;  /* [T][n_embd] */
    float *g;    /* [T][n_ff] */
    float *u;    /* [T][n_ff] */
    float *scores; /* per pool thread: forward_scratch_floats() of attention scratch */
    void *wdata;   /* quantized activations */
    size_t wdata_size;
    float *rope_cos, *rope_sin; /* [T][n_rot/2] for the current pass */

    /* The plan of the next pass, filled by ctx.c (all [n_batch]: every item
     * has at least one row, so there are at most n_batch items). */
    struct fwd_item *items;
    int32_t n_items;
    int32_t *row_tok;  /* token of each row */
    int32_t *row_pos;  /* position of each row in its sequence */
    int32_t *row_item; /* item of each row */
    int32_t *out_rows; /* rows whose logits are kept, ascending */
    int32_t n_out;

    float *logits;        /* [n_batch][n_vocab]: row i = out_rows[i] of the last pass */
    int32_t n_logits;     /* rows hr_ctx_logits may return (0 after a batch or an abort) */
    int32_t n_eval_last;  /* tokens in the last hr_ctx_eval call */

    hr_abort_fn abort_fn;
    void *abort_user;
    uint64_t batch_gen; /* counts hr_ctx_eval_batch calls (see hr_seq.mark_gen) */
    struct lora_scratch lora; /* the adapters' deltas (lora_apply.c), sized by the sets */
};

/* Runs the planned pass over T rows (the items' rows, T <= n_batch). On
 * success writes the logits of out_rows to logits[0 .. n_out) and advances
 * every item's sequence by its n; returns 0. When the abort function fires
 * (polled before every layer) returns -ECANCELED with every n_past as it
 * was (KV rows past n_past may have been overwritten; logits are garbage).
 * Allocates nothing. */
int forward_pass(struct hr_ctx *c, int32_t T);
/* Floats of scratch (ctx->scores) forward_pass needs per pool thread. */
size_t forward_scratch_floats(const struct hparams *hp);

#endif
