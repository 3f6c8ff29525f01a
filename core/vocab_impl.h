/*
 * vocab_impl.h — the vocabulary's internals, shared by vocab.c (loading,
 * special tokens, detokenization) and the two tokenizers tok_spm.c and
 * tok_bpe.c. Not part of any API.
 *
 * All token texts live in one arena, each NUL-terminated; a token refers to
 * its text by offset. Text → id and merge pair → rank are open-addressing
 * hash tables (linear probing, power-of-two size, at most half full) whose
 * slots hold index + 1, 0 meaning empty.
 */
#ifndef HEARTH_CORE_VOCAB_IMPL_H
#define HEARTH_CORE_VOCAB_IMPL_H

#include "unicode.h"
#include "vocab.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum vocab_type { VOCAB_SPM, VOCAB_BPE };

/* Token attributes (llama.cpp's llama_token_attr bits). */
enum {
    VATTR_UNKNOWN = 1u << 0,
    VATTR_UNUSED = 1u << 1,
    VATTR_NORMAL = 1u << 2,
    VATTR_CONTROL = 1u << 3,
    VATTR_USER_DEFINED = 1u << 4,
    VATTR_BYTE = 1u << 5,
    VATTR_LSTRIP = 1u << 7,
    VATTR_RSTRIP = 1u << 8,
    VATTR_EOG = 1u << 16, /* ours: member of the end-of-generation set */
};

struct vocab_token {
    uint32_t off; /* text = vocab->text + off, NUL-terminated */
    uint32_t len;
    float score;
    uint32_t attr;
};

/* A BPE merge "A B": A then B stored contiguously (no space) at off. */
struct vocab_merge {
    uint32_t off;
    uint32_t len_a, len_b;
};

struct hr_vocab {
    enum vocab_type type;
    enum uni_pre pre;

    int32_t n_tokens;
    struct vocab_token *tok;
    char *text; /* arena of token texts */
    uint32_t *tok_slot;
    size_t tok_mask;

    int32_t n_merges;
    struct vocab_merge *merge; /* rank = index */
    char *merge_text;
    uint32_t *merge_slot;
    size_t merge_mask;

    int32_t bos, eos, eot, eom, unk, sep, pad, mask;
    int32_t fim_pre, fim_suf, fim_mid, fim_pad, fim_rep, fim_sep;

    bool add_bos, add_eos, add_space_prefix;
    bool ignore_merges; /* llama3 family: a piece that is a token is kept whole */
    bool clean_spaces;  /* detokenize tidies " ," and " 's" (gpt-2, llama3) */

    /* CONTROL / USER_DEFINED / UNKNOWN tokens, longest text first */
    int32_t *special;
    size_t n_special;
};

/* A growable array of token ids. */
struct vocab_ids {
    int32_t *id;
    size_t n, cap;
};

int vocab_ids_push(struct vocab_ids *v, int32_t id);

/* Id of the token whose text is s[0..len), or -1. */
int32_t vocab_find(const struct hr_vocab *v, const char *s, size_t len);
/* Rank of the merge (a, b), or -1. */
int32_t vocab_merge_rank(const struct hr_vocab *v, const char *a, size_t la, const char *b,
                         size_t lb);

/* FNV-1a over the bytes, for both tables. */
#define VOCAB_HASH_SEED 0xcbf29ce484222325ull

static inline uint64_t vocab_hash(uint64_t h, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)s[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* The merge (a, b) hashes as its text "a b". */
static inline uint64_t vocab_merge_hash(const char *a, size_t la, const char *b, size_t lb)
{
    return vocab_hash(vocab_hash(vocab_hash(VOCAB_HASH_SEED, a, la), " ", 1), b, lb);
}

static inline size_t vocab_slot(uint64_t h, size_t mask)
{
    return (size_t)(h ^ (h >> 29) ^ (h >> 47)) & mask;
}

/* U+2581, SentencePiece's visible space */
#define VOCAB_SPM_SPACE "\xe2\x96\x81"

static inline const char *vocab_text(const struct hr_vocab *v, int32_t id)
{
    return v->text + v->tok[id].off;
}

/* Tokenize one raw fragment (no special tokens in it) and append the ids.
 * spm_tokenize: `prefix_space` prepends the SentencePiece space.
 * 0, -ENOMEM, or -EILSEQ (SPM: a byte with neither a <0xNN> nor a one-byte
 * token). */
int spm_tokenize(const struct hr_vocab *v, const char *s, size_t len, bool prefix_space,
                 struct vocab_ids *out);
int bpe_tokenize(const struct hr_vocab *v, const char *s, size_t len, struct vocab_ids *out);

#endif
