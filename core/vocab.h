/*
 * vocab.h — the tokenizer built from a GGUF vocabulary (FORMATS.md §5 and §7).
 *
 * Supported: tokenizer.ggml.model "llama" (SentencePiece with byte fallback)
 * and "gpt2" (byte-level BPE with the pre-tokenizers named by
 * tokenizer.ggml.pre). The public entry points (hr_tokenize,
 * hr_token_to_piece, hr_vocab_*) are declared in <hearth/hearth.h> and
 * implemented with it.
 */
#ifndef HEARTH_CORE_VOCAB_H
#define HEARTH_CORE_VOCAB_H

#include "gguf.h"

#include <hearth/hearth.h>

/* Builds the vocabulary from the tokenizer.* keys of `f`. The vocab copies
 * what it needs: it does not keep pointers into f. *out owned (vocab_free).
 * -ENOTSUP for an unknown tokenizer model or pre-tokenizer (err names it),
 * -EINVAL for malformed keys. */
int vocab_load(const struct gguf_file *f, struct hr_vocab **out, struct hr_err *err);
void vocab_free(struct hr_vocab *vocab);

/* Whole-sequence detokenization as llama.cpp's detokenize (FORMATS.md §5.5):
 * remove_special drops a leading BOS / trailing EOS, unparse_special prints
 * control tokens. Same buffer contract as hr_token_to_piece. */
int64_t vocab_detokenize(const struct hr_vocab *vocab, const int32_t *tokens, size_t n,
                         bool remove_special, bool unparse_special, char *buf, size_t cap);

/* Token text as stored (borrowed, NUL-terminated; NULL if out of range). */
const char *vocab_token_text(const struct hr_vocab *vocab, int32_t token);

#endif
