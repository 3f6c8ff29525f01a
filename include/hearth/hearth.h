/*
 * hearth.h — the public API of hearth's inference engine (libhearth-core).
 *
 * The engine loads a GGUF model (mmapped, read-only), tokenizes text with the
 * model's own vocabulary, evaluates tokens through the transformer with a KV
 * cache, and samples the next token. It never logs and never exits: every
 * failure is a negative errno return, with a message (and, for files, the
 * byte offset) in a caller-owned struct hr_err.
 *
 * Threading: a struct hr_model is immutable after load and may be shared by
 * any number of contexts on any threads. A struct hr_ctx (KV cache, scratch
 * buffers, logits) with its sequences, and a struct hr_sampler, belong to
 * one thread at a time.
 *
 * Versions: HR_API_VERSION grows with every change to this header, recorded
 * in docs/api-changes.md.
 */
#ifndef HEARTH_HEARTH_H
#define HEARTH_HEARTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HR_API_VERSION 5

/* ---- errors --------------------------------------------------------------- */

/* Where a failure happened and why. Owned by the caller; every function that
 * takes one may be passed NULL. Fields not known for a failure are -1/0/"". */
struct hr_err {
    char msg[512];  /* one line, no trailing newline, names the field/problem */
    int64_t offset; /* byte offset in the file being parsed, or -1 */
    int line;       /* 1-based line in a text input, or 0 */
    int column;     /* 1-based column in a text input, or 0 */
};

/* Resets *err to "no error". Accepts NULL. */
void hr_err_clear(struct hr_err *err);

/* ---- tensor types (ggml type ids, as stored in GGUF) ----------------------- */

enum hr_type {
    HR_TYPE_F32 = 0,
    HR_TYPE_F16 = 1,
    HR_TYPE_Q4_0 = 2,
    HR_TYPE_Q4_1 = 3,
    HR_TYPE_Q5_0 = 6,
    HR_TYPE_Q5_1 = 7,
    HR_TYPE_Q8_0 = 8,
    HR_TYPE_Q8_1 = 9,
    HR_TYPE_Q2_K = 10,
    HR_TYPE_Q3_K = 11,
    HR_TYPE_Q4_K = 12,
    HR_TYPE_Q5_K = 13,
    HR_TYPE_Q6_K = 14,
    HR_TYPE_Q8_K = 15,
    HR_TYPE_BF16 = 30,
    HR_TYPE_COUNT = 43, /* ids below this are known to the GGUF reader */
};

/* Name of a type id ("q4_K", "f16", ...), or NULL for an unknown id.
 * Borrowed, static storage. */
const char *hr_type_name(uint32_t type);

/* ---- model ------------------------------------------------------------------ */

struct hr_model;
struct hr_vocab;

struct hr_model_params {
    bool vocab_only; /* load the tokenizer only (works on vocab-only GGUF files) */
};

/* Loads the GGUF model at `path` (mmapped). On success *out owns the model
 * (free with hr_model_free). Errors: -ENOENT/-EACCES (open), -EINVAL (malformed
 * file; err names the field and byte offset), -ENOTSUP (architecture or tensor
 * type not supported; err names it), -ENOMEM. `params` may be NULL. */
int hr_model_load(const char *path, const struct hr_model_params *params, struct hr_model **out,
                  struct hr_err *err);
void hr_model_free(struct hr_model *model);

/* Borrowed, valid while the model lives. */
const struct hr_vocab *hr_model_vocab(const struct hr_model *model);
const char *hr_model_arch(const struct hr_model *model);
int32_t hr_model_n_vocab(const struct hr_model *model);
int32_t hr_model_n_ctx_train(const struct hr_model *model);

/* ---- vocabulary ----------------------------------------------------------- */

int32_t hr_vocab_n_tokens(const struct hr_vocab *vocab);
int32_t hr_vocab_bos(const struct hr_vocab *vocab); /* -1 if none */
int32_t hr_vocab_eos(const struct hr_vocab *vocab); /* -1 if none */
bool hr_vocab_add_bos(const struct hr_vocab *vocab);
bool hr_vocab_is_eog(const struct hr_vocab *vocab, int32_t token);

/* Tokenizes `len` bytes of `text`. add_special adds BOS/EOS as the vocabulary
 * asks; parse_special matches control tokens written in the text. Writes at
 * most `cap` ids to `out` and returns the total number of tokens (which may be
 * larger than cap: call again with a bigger buffer), or a negative errno. */
int64_t hr_tokenize(const struct hr_vocab *vocab, const char *text, size_t len, bool add_special,
                    bool parse_special, int32_t *out, size_t cap);

/* The text of one token as it should be printed in a stream (SentencePiece
 * "▁" becomes a space; byte tokens give their raw byte, which may be part of
 * a multi-byte UTF-8 character). special: also print control tokens. Writes at
 * most `cap` bytes (no NUL) and returns the full length, or a negative errno
 * (-EINVAL for an id out of range). */
int64_t hr_token_to_piece(const struct hr_vocab *vocab, int32_t token, bool special, char *buf,
                          size_t cap);

/* ---- evaluation context ---------------------------------------------------- */

struct hr_ctx;

struct hr_ctx_params {
    int32_t n_ctx;     /* KV cache length in tokens; 0 = min(n_ctx_train, 4096) */
    int32_t n_batch;   /* most tokens evaluated in one pass; 0 = 512 */
    int32_t n_threads; /* compute threads; 0 = number of online CPUs */
    uint32_t kv_type;  /* KV cache precision: HR_TYPE_F32 (0, the default, what the
                          reference data use) or HR_TYPE_F16 (half the memory) */
};

/* Creates a context (KV cache and scratch) for `model`, which must outlive it.
 * On success *out is owned (free with hr_ctx_free). `params` may be NULL. */
int hr_ctx_new(struct hr_model *model, const struct hr_ctx_params *params, struct hr_ctx **out,
               struct hr_err *err);
void hr_ctx_free(struct hr_ctx *ctx);

/* Evaluates n tokens at positions n_past .. n_past+n-1 and appends them to the
 * KV cache. With all_logits, logits of every token are kept; otherwise only of
 * the last. Errors: -EINVAL (token id out of range, n <= 0), -ENOSPC (the
 * context is full: err says how many tokens fit). */
int hr_ctx_eval(struct hr_ctx *ctx, const int32_t *tokens, int32_t n, bool all_logits,
                struct hr_err *err);

/* Logits of the i-th token of the last hr_ctx_eval call (i < 0: the last
 * token). Borrowed, [n_vocab] floats, valid until the next eval; NULL if that
 * token's logits were not kept. */
const float *hr_ctx_logits(const struct hr_ctx *ctx, int32_t i);

int32_t hr_ctx_n_past(const struct hr_ctx *ctx);
int32_t hr_ctx_n_ctx(const struct hr_ctx *ctx);
/* Forgets the cache after position n_past (0 clears it). */
void hr_ctx_truncate(struct hr_ctx *ctx, int32_t n_past);

/* ---- sequences and batched evaluation --------------------------------------- */

/* A context evaluates its default sequence (hr_ctx_eval above) and any
 * number of sequences of its own, several of them in one pass: the matrix
 * products run over the tokens of all of them together, attention per
 * sequence. A token's logits do not depend on what else is in the pass nor
 * on how its sequence was split into calls: they are the same bits as
 * evaluating the sequence alone with hr_ctx_eval (so greedy outputs of
 * concurrent sessions equal single-session ones). */
struct hr_seq;

/* A sequence: its own KV cache of n_ctx tokens (0 = the ctx's n_ctx) for
 * ctx's model, in ctx's KV type, empty. Evaluated with hr_ctx_eval_batch on
 * ctx. Owned: free with hr_seq_free (before ctx). The cache's pages are
 * touched (take memory) only as positions are filled. Errors: -EINVAL
 * (n_ctx < 0), -ENOMEM. */
int hr_seq_new(struct hr_ctx *ctx, int32_t n_ctx, struct hr_seq **out, struct hr_err *err);
void hr_seq_free(struct hr_seq *seq);
int32_t hr_seq_n_past(const struct hr_seq *seq);
int32_t hr_seq_n_ctx(const struct hr_seq *seq);
void hr_seq_truncate(struct hr_seq *seq, int32_t n_past); /* forget positions >= n_past */

struct hr_batch_item {
    struct hr_seq *seq;     /* each seq at most once per call */
    const int32_t *tokens;  /* evaluated at positions seq n_past .. n_past+n-1 */
    int32_t n;
    const float *logits;    /* out: logits of the item's last token, [n_vocab]; borrowed, valid
                               until the next evaluation on ctx */
};

/* Evaluates the tokens of several sequences in one pass and appends them to
 * their caches. The total token count must be <= the ctx's n_batch (-EINVAL
 * otherwise). Errors as hr_ctx_eval, the message naming the item ("item 2:
 * token id ... out of range", "item 1: context is full ..."): -EINVAL (a
 * token out of range, n <= 0, no seq, a seq of another ctx or listed twice,
 * too many tokens), -ENOSPC (a sequence is full); on any error nothing is
 * evaluated and no cache changes. -ECANCELED: see hr_ctx_set_abort. After
 * this call hr_ctx_logits returns NULL (it answers for hr_ctx_eval). */
int hr_ctx_eval_batch(struct hr_ctx *ctx, struct hr_batch_item *items, int32_t n_items,
                      struct hr_err *err);

/* Cancellation: fn is polled between layers of every evaluation on ctx
 * (also hr_ctx_eval); when it returns true the evaluation stops and returns
 * -ECANCELED, and every sequence keeps the n_past it had before the call
 * (the logits of earlier calls are gone: hr_ctx_logits returns NULL). fn
 * runs on the evaluating thread. NULL removes it. */
typedef bool (*hr_abort_fn)(void *user);
void hr_ctx_set_abort(struct hr_ctx *ctx, hr_abort_fn fn, void *user);

/* ---- sampling --------------------------------------------------------------- */

struct hr_sampler_params {
    float temp;          /* <= 0: greedy */
    int32_t top_k;       /* <= 0: off */
    float top_p;         /* >= 1: off */
    float min_p;         /* <= 0: off */
    float repeat_penalty;   /* 1: off */
    float freq_penalty;     /* 0: off */
    float presence_penalty; /* 0: off */
    int32_t penalty_last_n; /* tokens of history the penalties look at; 0: off, -1: context */
    uint64_t seed;
};

/* Fills *p with llama.cpp's defaults (temp 0.8, top_k 40, top_p 0.95,
 * min_p 0.05, penalties off, penalty_last_n 64, seed = `seed`). */
void hr_sampler_defaults(struct hr_sampler_params *p, uint64_t seed);

struct hr_sampler;
int hr_sampler_new(const struct hr_sampler_params *p, int32_t n_vocab, struct hr_sampler **out);
void hr_sampler_free(struct hr_sampler *s);
/* Picks the next token from `logits` ([n_vocab]), which are not modified. */
int32_t hr_sampler_sample(struct hr_sampler *s, const float *logits);
/* Records a token of the sequence (prompt or generated) for the penalties. */
void hr_sampler_accept(struct hr_sampler *s, int32_t token);

/* ---- chat templates ---------------------------------------------------------- */

/* Chat requests become the prompt text through the model's own chat template:
 * the Jinja2 source GGUF files carry in tokenizer.chat_template, rendered as
 * Hugging Face transformers renders it (jinja2 with trim_blocks and
 * lstrip_blocks, tojson = json.dumps(ensure_ascii=False), raise_exception,
 * strftime_now), byte for byte. Rendering is bounded in output size (64 MiB),
 * memory, steps and nesting, so no template or request can hang or crash it. */

struct hr_chat_opts {
    bool add_generation_prompt;        /* end with the opening of an assistant turn */
    const char *bos_token, *eos_token; /* printed by some templates; NULL = "" */
    int64_t now;            /* unix time for strftime_now and date_string, formatted in
                               the local time zone (0 = time(NULL)) */
    const char *extra_json; /* optional JSON object of extra template variables
                               (e.g. {"enable_thinking": false}); NULL = none */
};

/* Renders `messages_json` (a JSON array of OpenAI-style messages: role,
 * content — a string, null, or an array of {"type": "text", "text": ...}
 * parts, joined with "\n" —, tool_calls with function.name/arguments (an
 * object or a JSON string), tool_call_id, name) and `tools_json` (a JSON
 * array of OpenAI tool definitions, or NULL: the template sees no `tools`)
 * with the Jinja template `tmpl`. `opts` may be NULL (all zero).
 *
 * The template sees: messages, tools, add_generation_prompt, bos_token,
 * eos_token, date_string (`now` as "26 Nov 2026", which Llama 3 templates
 * print), then the extra_json variables, which may override bos_token,
 * eos_token and date_string but not the first three. As llama.cpp does, the
 * messages are adapted to what the template can render, found by rendering
 * probe conversations: a template that cannot show a system message (its
 * output lacks it, or it raises) gets the system text prepended to the next
 * user message ("system\nuser"); one that prints tool-call arguments only
 * when they are an object gets JSON-string arguments parsed. A leading
 * bos_token is removed from the result, since tokenizing adds the BOS.
 *
 * tmpl NULL (a model without a template, e.g. a base model): the non-empty
 * message contents joined by "\n\n", without role markers, and nothing for
 * the generation prompt; tools are ignored.
 *
 * On success *out is owned (free()), NUL-terminated. Errors: -EINVAL with
 * err->msg naming the problem (bad JSON or a malformed message, with the
 * JSON's line:column; a template syntax error, unknown filter or test, or
 * unsupported construct, as "template:LINE:COL: ..." with err->line/column
 * set; a runtime error such as an undefined variable used as a value; a
 * raise_exception, as "template:LINE:COL: raise_exception: <its message>"),
 * -E2BIG (a rendering limit was hit), -ENOMEM. */
int hr_chat_render(const char *tmpl, const char *messages_json, const char *tools_json,
                   const struct hr_chat_opts *opts, char **out, struct hr_err *err);

/* The model's tokenizer.chat_template, or NULL if it has none. Borrowed,
 * valid while the model lives. */
const char *hr_model_chat_template(const struct hr_model *model);

/* ---- grammar-constrained sampling --------------------------------------------- */

/* A grammar restricts what the sampler may pick so that the generated text
 * is a sentence of a GBNF grammar (llama.cpp's format; docs/grammar.md has
 * the reference): JSON that fits a schema, a tool call, a fixed answer set.
 * The grammar works on the text of the tokens, code point by code point, so
 * it does not care how the model splits the text into tokens (a token may
 * end inside a UTF-8 character). End-of-generation tokens are allowed only
 * where the text may end; tokens that print nothing (control tokens) never.
 *
 * Typical use (one grammar per request; it is stateful):
 *
 *     hr_grammar_new(hr_model_vocab(model), gbnf, NULL, &g, &err);
 *     hr_sampler_set_grammar(smp, g);      // after feeding the prompt
 *     loop: t = hr_sampler_sample(smp, logits);      // only allowed tokens
 *           hr_sampler_accept_generated(smp, t);     // advances g too
 *           stop on an EOG token, or when hr_grammar_done(g)
 *     hr_sampler_set_grammar(smp, NULL); hr_grammar_free(g);
 *
 * A grammar belongs to one thread at a time, like the sampler. */
struct hr_grammar;

/* Compiles GBNF text with start rule `root` (NULL: "root") for `vocab`'s
 * tokens (borrowed: the model must outlive the grammar; NULL gives a grammar
 * that only checks syntax and cannot be attached to a sampler). On success
 * *out is owned (free with hr_grammar_free). Errors: -EINVAL with err->msg
 * "LINE:COL: what" and err->line/column/offset set (a syntax error, bad
 * escape, unbalanced parentheses, an undefined rule, a rule defined twice,
 * left recursion — not supported), or "no rule named 'root'" without a
 * position; -E2BIG (grammar past the size limits: 4 MiB of text, 2M elements
 * after expanding repetitions, counts in {m,n} up to 10000, parentheses 200
 * deep); -ENOMEM. */
int hr_grammar_new(const struct hr_vocab *vocab, const char *gbnf, const char *root,
                   struct hr_grammar **out, struct hr_err *err);
void hr_grammar_free(struct hr_grammar *g);

/* Converts a JSON Schema (text) to GBNF whose root rule matches exactly the
 * JSON documents the schema describes (the subset in docs/grammar.md:
 * object properties/required/additionalProperties, arrays with
 * items/prefixItems/minItems/maxItems, strings with enum/const/minLength/
 * maxLength/format date, time, date-time, uuid, integer minimum/maximum,
 * number, boolean, null, enum, const, anyOf/oneOf/allOf of objects, type
 * lists, $ref to #/$defs and #/definitions; {} or true: any JSON value).
 * Whitespace between tokens is allowed but bounded, as llama.cpp does. On
 * success *gbnf_out is owned (free()). Errors: -EINVAL with err->msg naming
 * the schema path and the problem (malformed JSON with its line:column, an
 * unsupported keyword such as "pattern", a bad $ref), -E2BIG (schema too
 * large or deep), -ENOMEM. */
int hr_grammar_from_json_schema(const char *schema_json, char **gbnf_out, struct hr_err *err);

/* Feeds a token the grammar did not see through a sampler (e.g. text forced
 * by the caller). 0, or -EINVAL when the grammar does not allow it (the
 * grammar is then unchanged). An EOG token is accepted where the text may
 * end and changes nothing. */
int hr_grammar_accept(struct hr_grammar *g, int32_t token);

/* The text so far is a complete sentence of the grammar and no character can
 * follow it: generation should stop (only EOG tokens are allowed now). */
bool hr_grammar_done(const struct hr_grammar *g);

/* Attaches g to the sampler (borrowed: g must outlive the attachment; NULL
 * detaches; one grammar per sampler, a new one replaces the old). From then
 * on hr_sampler_sample returns only tokens g allows: the grammar filters the
 * candidates left by the other stages (penalties, top-k, top-p, min-p —
 * cheap: only those are checked), and when none of them is allowed, the
 * chain runs again on the allowed tokens of the whole vocabulary. It returns
 * -ENOENT when the grammar allows no token at all (e.g. the grammar is done
 * and the vocabulary has no EOG token). A sampler without a grammar samples
 * exactly as before. */
void hr_sampler_set_grammar(struct hr_sampler *s, struct hr_grammar *g);

/* Records a generated token: the penalties' history (as hr_sampler_accept)
 * and, with a grammar attached, advances the grammar. Use this for sampled
 * tokens and hr_sampler_accept for the prompt's, which the grammar must not
 * see. 0, or -EINVAL when the attached grammar rejects the token (then
 * nothing is recorded). */
int hr_sampler_accept_generated(struct hr_sampler *s, int32_t token);

/* ---- LoRA adapters ------------------------------------------------------------------ */

/* A LoRA adapter (a GGUF file in llama.cpp's adapter format: general.type
 * "adapter", adapter.type "lora", tensors X.lora_a / X.lora_b for base
 * weights X) changes the model's matrix products without touching its
 * weights: y = W·x + Σ s·(α/r)·B·(A·x) over the adapters in use, s the
 * scale the caller gives each one (negative allowed, 0 = off), α the file's
 * adapter.lora.alpha (none: α/r is taken as 1), r the rank. The base stays
 * mapped and shared; adapters are small and also stay mapped. Which
 * adapters apply is a property of each sequence (hr_seq_set_loras; the
 * default sequence: hr_ctx_set_loras), so sequences with different sets are
 * evaluated together in one hr_ctx_eval_batch pass.
 *
 * Typical use:
 *
 *     hr_lora_load(model, "style.gguf", &style, &err);
 *     struct hr_lora_use uses[] = {{style, 0.8f}, {terse, 0.3f}};
 *     hr_seq_set_loras(seq, uses, 2, &err);  hr_seq_truncate(seq, 0);
 *     ... evaluate ...
 *     hr_lora_free(style);   // the sequence keeps its own reference
 *
 * Lifetime: an adapter is reference counted. hr_lora_load returns one
 * reference; every sequence whose set lists it holds one until the set is
 * replaced or the sequence is freed; hr_lora_retain adds one. hr_lora_free
 * drops one, and the last one unmaps the file — so a caller may "unload" an
 * adapter while sequences still evaluate with it (the counting is atomic:
 * retain and free may be called from any thread). The adapter itself is
 * immutable and may be shared by contexts on any threads. The model must
 * outlive its adapters. */
struct hr_lora;

/* Loads the adapter at `path` and checks it against `model`: the same
 * architecture, every pair complete, every changed tensor present in the
 * model with fitting shapes ([n_in, r] and [r, n_out]; token_embd
 * [r, n_vocab] and [r, n_embd]), tensor types the engine computes with
 * (F32, F16, BF16, Q8_0, ...). On success *out owns one reference (drop it
 * with hr_lora_free). Errors, the message naming the file and what differs:
 * -ENOENT/-EACCES (open), -EINVAL (not a LoRA adapter, another architecture,
 * a tensor the model lacks, a shape or rank mismatch, an incomplete pair,
 * a malformed file), -ENOTSUP (a tensor type without kernels, a tensor
 * hearth applies no adapter to, activated LoRA), -ENOMEM. */
int hr_lora_load(struct hr_model *model, const char *path, struct hr_lora **out,
                 struct hr_err *err);
/* Adds a reference; returns lora. Accepts NULL. */
struct hr_lora *hr_lora_retain(struct hr_lora *lora);
/* Drops a reference (the last frees the adapter). Accepts NULL. */
void hr_lora_free(struct hr_lora *lora);

struct hr_lora_info {
    float alpha;       /* adapter.lora.alpha; 0 when the file has none */
    int32_t rank;      /* the largest rank of its tensors */
    int32_t n_tensors; /* model weights it changes */
    uint64_t n_bytes;  /* size of its A and B tensors */
};
void hr_lora_get_info(const struct hr_lora *lora, struct hr_lora_info *info);

/* One adapter of a set and its scale s (see above). */
struct hr_lora_use {
    struct hr_lora *lora;
    float scale;
};

/* Sets the adapters that apply to seq's tokens from its next evaluation on:
 * `uses` (n entries, copied; n = 0 clears) in that order — the deltas are
 * added in the set's order. Each listed adapter gains a reference held by
 * the sequence; those of the previous set are dropped. The KV cache is left
 * as it is: positions already cached were computed with the old set, so a
 * caller that changes the set normally clears the cache too
 * (hr_seq_truncate(seq, 0)). May allocate scratch on seq's context (once
 * per larger set), never during evaluation. Errors (nothing changes):
 * -EINVAL (an adapter NULL or loaded for another model, a scale that is not
 * finite, n < 0), -ENOMEM. */
int hr_seq_set_loras(struct hr_seq *seq, const struct hr_lora_use *uses, int32_t n,
                     struct hr_err *err);
/* The same for the context's default sequence (hr_ctx_eval). */
int hr_ctx_set_loras(struct hr_ctx *ctx, const struct hr_lora_use *uses, int32_t n,
                     struct hr_err *err);

/* ---- training (LoRA fine-tuning) ------------------------------------------------------- */

/* hearth trains LoRA adapters on the CPU: the base model stays frozen, in
 * its stored type (quantized or not), and only the low-rank pairs A, B of
 * the chosen products are learned — y = W·x + (α/r)·B·(A·x), A initialised
 * at random and B at zero (as PEFT does), so training starts from the base
 * model's exact behaviour. The result is written as a GGUF LoRA adapter
 * that hr_lora_load (and llama.cpp) reads.
 *
 * Typical use:
 *
 *     hr_train_data_load(model, "chats.jsonl", HR_TRAIN_AUTO, 512, &data, &err);
 *     hr_train_data_pack(data, 512, n_val, seed, &train_rows, &val_rows, &err);
 *     hr_train_defaults(&p);  p.total_steps = ...;
 *     hr_train_new(model, &p, &t, &err);
 *     for each step: hr_train_step(t, train_rows, idx, rows_per_step, &st, &err);
 *     hr_train_eval(t, val_rows, NULL, val_rows->n_rows, &loss, &n, &err);
 *     hr_train_save_adapter(t, "out.gguf", &err);
 *
 * Training is deterministic: the same model, data, parameters and seed give
 * the same adapter bytes, whatever the thread count. A struct hr_train
 * belongs to one thread at a time and borrows the model (which must outlive
 * it; contexts may use the model meanwhile). */

/* The products a LoRA pair can be trained on (hr_train_params.targets). */
enum hr_train_target {
    HR_TRAIN_Q = 1 << 0,
    HR_TRAIN_K = 1 << 1,
    HR_TRAIN_V = 1 << 2,
    HR_TRAIN_O = 1 << 3,
    HR_TRAIN_GATE = 1 << 4,
    HR_TRAIN_UP = 1 << 5,
    HR_TRAIN_DOWN = 1 << 6,
    HR_TRAIN_ALL = 0x7f,
};

enum hr_train_schedule { HR_TRAIN_COSINE = 0, HR_TRAIN_LINEAR = 1, HR_TRAIN_CONSTANT = 2 };
enum hr_train_init {
    HR_TRAIN_INIT_KAIMING = 0,  /* A ~ U(−1/√n_in, 1/√n_in): PEFT's default */
    HR_TRAIN_INIT_GAUSSIAN = 1, /* A ~ N(0, 1/r): PEFT's init_lora_weights="gaussian" */
};

struct hr_train_params {
    int32_t rank;        /* r (16) */
    float alpha;         /* α (32): the deltas are scaled by α/r */
    uint32_t targets;    /* HR_TRAIN_* bits (HR_TRAIN_ALL) */
    int32_t init;        /* enum hr_train_init (KAIMING) */
    float lr;            /* peak learning rate (2e-4) */
    float beta1, beta2;  /* AdamW moments (0.9, 0.999) */
    float adam_eps;      /* (1e-8) */
    float weight_decay;  /* decoupled, on A and B (0) */
    float clip;          /* largest global gradient norm (1.0); <= 0: no clipping */
    int64_t warmup_steps; /* linear warmup from lr/warmup_steps to lr (0: none) */
    int64_t total_steps;  /* the schedule's length; later steps keep its final rate (0: constant) */
    int32_t schedule;    /* enum hr_train_schedule after the warmup (COSINE: down to 0) */
    int32_t n_ctx;       /* tokens per row (512) */
    int32_t pass_tokens; /* tokens per forward/backward pass, a multiple of n_ctx rounded
                            down (0: n_ctx, or several rows up to 512 tokens when rows are
                            short); bounds the activations' memory */
    bool recompute;      /* keep only each layer's input; recompute the rest during the
                            backward pass (less memory, about 1/3 more work) */
    uint32_t grad_type;  /* type of the transposed base copies of the backward products:
                            0 = the base's type for F32/F16/BF16 bases (exact), Q8_0 for
                            quantized ones; HR_TYPE_F32 = exact for any base (slower, 4× the
                            memory of a Q8_0 copy) */
    int32_t n_threads;   /* 0 = online CPUs */
    uint64_t seed;       /* initialisation of A (0) */
};

/* Fills *p with the defaults above. */
void hr_train_defaults(struct hr_train_params *p);

/* -- data -- */

/* Training data: examples of tokens with a loss mask, parsed from
 *  - plain text (HR_TRAIN_TEXT): the whole text, tokenized, cut into
 *    examples of n_ctx tokens; loss on every token;
 *  - JSON lines (HR_TRAIN_JSONL), one example per non-blank line:
 *    {"messages": [...]} (OpenAI-style chat, rendered with the model's chat
 *    template; loss on the assistant messages' tokens only, found by
 *    rendering the conversation's prefixes), {"prompt": P, "completion": C}
 *    (loss on C and the EOS token that ends it), or {"text": T} (loss on
 *    every token). Examples longer than n_ctx are cut to n_ctx tokens.
 * HR_TRAIN_AUTO: JSONL when the first non-blank character is '{'. */
enum hr_train_format { HR_TRAIN_AUTO = 0, HR_TRAIN_TEXT = 1, HR_TRAIN_JSONL = 2 };

struct hr_train_data;

struct hr_train_data_info {
    int32_t n_examples;
    int64_t n_tokens;      /* all tokens of all examples */
    int64_t n_loss_tokens; /* tokens the loss is taken on */
    int32_t n_truncated;   /* JSONL examples cut to n_ctx */
    int32_t n_dropped;     /* JSONL examples left out: no token to learn within n_ctx */
    int32_t n_chat, n_completion, n_text; /* JSONL examples of each kind */
};

/* Reads and tokenizes the file at `path` for `model` (borrowed: it must
 * outlive the data). On success *out is owned (hr_train_data_free). Errors
 * name the file and, for JSONL, the line (err->line): -EINVAL (malformed
 * JSON, a line that is not one of the three kinds, a bad message, a chat
 * template error, an example without any token to learn), -ENOENT/-EACCES,
 * -ENOMEM. */
int hr_train_data_load(const struct hr_model *model, const char *path, int32_t format,
                       int32_t n_ctx, struct hr_train_data **out, struct hr_err *err);
/* The same from len bytes in memory; `label` names it in messages. */
int hr_train_data_parse(const struct hr_model *model, const char *buf, size_t len,
                        const char *label, int32_t format, int32_t n_ctx,
                        struct hr_train_data **out, struct hr_err *err);
void hr_train_data_free(struct hr_train_data *data);
void hr_train_data_get_info(const struct hr_train_data *data, struct hr_train_data_info *info);

/* Rows of n_ctx tokens made by packing examples one after the other (an
 * example that does not fit in a row's rest starts a new row; the rest is
 * padding without a label). A token attends only to the earlier tokens of
 * its own example: pos restarts at 0 with each example and the attention
 * mask follows it (block-diagonal causal). */
struct hr_train_rows {
    int32_t n_rows, n_ctx;
    int32_t *tokens; /* [n_rows][n_ctx] */
    int32_t *labels; /* [n_rows][n_ctx]: the token to predict after this one, or −1 (no loss) */
    int32_t *pos;    /* [n_rows][n_ctx]: position in its example, 0 at its start */
    int64_t n_labels; /* labels >= 0 in all rows */
};

/* Chooses n_val examples at random (seed) for validation and packs them and
 * the others into rows of n_ctx tokens (every example <= n_ctx tokens: make
 * the data with the same n_ctx). On success *train and *val are owned
 * (hr_train_rows_free; *val has 0 rows when n_val is 0). Errors: -EINVAL
 * (n_val >= the examples, or an example longer than n_ctx), -ENOMEM. */
int hr_train_data_pack(const struct hr_train_data *data, int32_t n_ctx, int32_t n_val,
                       uint64_t seed, struct hr_train_rows **train, struct hr_train_rows **val,
                       struct hr_err *err);
void hr_train_rows_free(struct hr_train_rows *rows);

/* -- the trainer -- */

struct hr_train;

/* Prepares training of a new adapter for `model` (borrowed: it must outlive
 * the trainer): checks the parameters, allocates the parameters, gradients,
 * AdamW moments and the activations of a pass, and makes the transposed
 * copies of the base products (seconds for a large model). `p` may be NULL
 * (defaults). Errors: -EINVAL (a parameter out of range, named in err),
 * -ENOTSUP (a base whose products hearth cannot transpose), -ENOMEM. */
int hr_train_new(struct hr_model *model, const struct hr_train_params *p, struct hr_train **out,
                 struct hr_err *err);
void hr_train_free(struct hr_train *t);

struct hr_train_stats {
    int64_t step;     /* steps taken, this one included */
    double loss;      /* mean cross-entropy over the step's labels (before the update) */
    int64_t n_labels; /* tokens the loss was taken on */
    int64_t n_tokens; /* tokens evaluated */
    float grad_norm;  /* global gradient norm before clipping */
    float lr;         /* learning rate of this step */
};

/* One optimizer step on rows idx[0..n) of `rows` (idx NULL: rows 0..n):
 * forward and backward passes over them, the gradient of the mean loss over
 * their labels, clipping, the scheduled learning rate, AdamW. `st` may be
 * NULL. Errors: -EINVAL (rows of another n_ctx, a token out of range, a
 * position sequence that is not 0,1,2.. restarting at 0), -ECANCELED (the
 * abort function fired; nothing changed). */
int hr_train_step(struct hr_train *t, const struct hr_train_rows *rows, const int32_t *idx,
                  int32_t n, struct hr_train_stats *st, struct hr_err *err);

/* The summed cross-entropy over the labels of rows idx[0..n) (idx NULL:
 * 0..n) with the current adapter, and how many labels there were
 * (perplexity = exp(*loss_sum / *n_labels)). Errors as hr_train_step. */
int hr_train_eval(struct hr_train *t, const struct hr_train_rows *rows, const int32_t *idx,
                  int32_t n, double *loss_sum, int64_t *n_labels, struct hr_err *err);

/* Polled between layers by hr_train_step and hr_train_eval (see
 * hr_ctx_set_abort): when it returns true they return -ECANCELED. */
void hr_train_set_abort(struct hr_train *t, hr_abort_fn fn, void *user);

/* Optimizer steps taken so far. */
int64_t hr_train_get_step(const struct hr_train *t);

/* Writes the adapter (llama.cpp's GGUF LoRA format: general.type "adapter",
 * adapter.type "lora", adapter.lora.alpha; F32 tensors
 * blk.N.<weight>.lora_a ne=[n_in, r] and .lora_b ne=[r, n_out]) atomically. */
int hr_train_save_adapter(const struct hr_train *t, const char *path, struct hr_err *err);

/* A checkpoint holds the parameters, the trainer's A, B and AdamW moments
 * and the step, so that training resumed from it continues exactly as if it
 * had not stopped; `note` (optional, any text, e.g. the caller's own
 * settings as JSON) is stored with it. Written atomically. */
int hr_train_save_checkpoint(const struct hr_train *t, const char *path, const char *note,
                             struct hr_err *err);
/* Reads a checkpoint's parameters, step and note (owned: free(); may be
 * NULL when none), e.g. to make the trainer to resume. p, step and note may
 * be NULL. Errors: -EINVAL (not a checkpoint, malformed), -ENOENT, -ENOMEM. */
int hr_train_checkpoint_info(const char *path, struct hr_train_params *p, int64_t *step,
                             char **note, struct hr_err *err);
/* Restores A, B, the moments and the step of a checkpoint into t, which
 * must have been made for the same model with the same rank, targets and
 * shapes (-EINVAL otherwise, naming what differs). */
int hr_train_load_checkpoint(struct hr_train *t, const char *path, struct hr_err *err);

/* What training would cost, without allocating anything. */
struct hr_train_estimate {
    int64_t n_params;          /* trained parameters (A and B) */
    uint64_t bytes_model;      /* the base's weights (file size of the tensors) */
    uint64_t bytes_transposed; /* transposed copies for the backward products */
    uint64_t bytes_optimizer;  /* parameters, gradients, two moments */
    uint64_t bytes_activations; /* kept activations of one pass */
    uint64_t bytes_scratch;    /* other buffers of a pass */
    double flop_per_token;     /* of a training step: 2·(forward + backward products + LoRA
                                  + attention), per token of a full row */
    double flop_per_token_base; /* the part in the frozen base's products */
};
int hr_train_estimate(const struct hr_model *model, const struct hr_train_params *p,
                      struct hr_train_estimate *e, struct hr_err *err);

#ifdef __cplusplus
}
#endif
#endif
