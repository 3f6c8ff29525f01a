/*
 * lorautil.h — helpers of the LoRA tests (test_lora.c, test_lora_files.c):
 * the syn-llama models and adapters of tests/data (or ../shared/refdata),
 * whole-sequence logits, comparisons, and adapter files written on the spot
 * with the GGUF writer in a private temporary directory.
 */
#ifndef HEARTH_TESTS_LORAUTIL_H
#define HEARTH_TESTS_LORAUTIL_H

#include <hearth/hearth.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MAXTOK 128
#define N_CTX 80
#define N_THREADS 2

/* models/NAME.gguf, loaded; NULL when absent from both data trees. */
struct hr_model *lu_load_model(const char *name);
/* A context of N_CTX tokens (n_batch when larger), N_THREADS threads. */
struct hr_ctx *lu_new_ctx(struct hr_model *m, int32_t n_batch);
/* Path of lora-llama-NAME.gguf ("a" or "b"), in a buffer of its own. */
const char *lu_adapter(const char *name);
/* tu_find(rel) copied to buf (tu_find's buffers are reused); NULL if absent. */
const char *lu_find_copy(const char *rel, char *buf, size_t cap);
/* hr_lora_load or a failed assertion. */
struct hr_lora *lu_load_lora(struct hr_model *m, const char *path);
size_t lu_read_ids(const char *rel, int32_t *out, size_t cap);
int32_t lu_argmax(const float *v, int32_t n);
/* The 40 reference tokens of the llama models. */
size_t lu_tokens(int32_t *toks);
/* Logits of every token of toks evaluated from an empty cache on c's
 * default sequence: owned [n][nv]. */
float *lu_eval_all(struct hr_ctx *c, int32_t nv, const int32_t *toks, size_t n);
double lu_max_diff(const float *a, const float *b, size_t n); /* max |a−b|, NaN counts */
double lu_range_of(const float *v, size_t n);                 /* max − min */

/* A temporary directory for the test's files (one at a time), and paths in
 * it (4 rotating buffers). */
void lu_mkdtemp(void);
void lu_rmdtemp(void);
const char *lu_tmp(const char *file);

struct lu_tensor {
    const char *name;
    uint32_t type;
    int64_t ne0, ne1;
    const float *values; /* NULL: a fixed pattern */
};

/* Writes lu_tmp(file): an adapter for architecture `arch` with general.type
 * `gtype`, alpha 8, the tensors `ts` (values quantized to their types) and,
 * with alora, adapter.alora.invocation_tokens. Returns its path. */
const char *lu_make_adapter(const char *file, const char *arch, const char *gtype,
                            const struct lu_tensor *ts, int n, bool alora);

#endif
