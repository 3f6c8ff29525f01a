/*
 * unicode.h — UTF-8, Unicode classes and the BPE pre-tokenizers
 * (FORMATS.md §5.4), internal to the tokenizers.
 *
 * UTF-8 is decoded the lenient way llama.cpp decodes it: a lead byte fixes
 * the length, only the continuation bytes' top bits are checked (overlong
 * forms and surrogates pass), and anything else becomes U+FFFD consuming one
 * byte. One deliberate difference: a decoded value above U+10FFFF is also
 * U+FFFD (llama.cpp aborts on it when re-encoding).
 *
 * Classes come from utf8proc's general categories, folded into the flag set
 * llama.cpp's matchers test (letter, number, mark, ...); unassigned code
 * points carry UNI_UNDEFINED, which is non-zero, so they count as "some
 * class" exactly as in llama.cpp's tables.
 */
#ifndef HEARTH_CORE_UNICODE_H
#define HEARTH_CORE_UNICODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
    UNI_UNDEFINED = 0x0001, /* Cn */
    UNI_NUMBER = 0x0002,    /* \p{N} */
    UNI_LETTER = 0x0004,    /* \p{L} */
    UNI_SEPARATOR = 0x0008, /* \p{Z} */
    UNI_MARK = 0x0010,      /* \p{M} */
    UNI_PUNCT = 0x0020,     /* \p{P} */
    UNI_SYMBOL = 0x0040,    /* \p{S} */
    UNI_CONTROL = 0x0080,   /* \p{C} except Cn */
    UNI_WHITESPACE = 0x0100 /* \s: White_Space = \p{Z} plus U+0009..000D, U+0085 */
};

#define UNI_REPLACEMENT 0xFFFDu

/* Length of the UTF-8 sequence a lead byte announces (1 for continuation
 * bytes, 4 for 0xF8..0xFF), as llama.cpp's unicode_len_utf8. */
static inline size_t uni_len_utf8(uint8_t lead)
{
    static const uint8_t len[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return len[lead >> 4];
}

/* Decodes one code point at s[0..n) (n >= 1); *adv gets the bytes consumed. */
uint32_t uni_decode(const char *s, size_t n, size_t *adv);
/* Encodes cp (<= 0x10FFFF) into out; returns 1..4. */
size_t uni_encode(uint32_t cp, char out[4]);
/* UNI_* flags of a code point (UNI_UNDEFINED above U+10FFFF). */
unsigned uni_flags(uint32_t cp);
uint32_t uni_tolower(uint32_t cp);

/* The byte-level BPE alphabet (GPT-2 bytes_to_unicode): every byte maps to a
 * printable code point below U+0144; uni_cpt_to_byte inverts it (-1 if cp is
 * not in the alphabet). */
uint32_t uni_byte_to_cpt(uint8_t b);
int uni_cpt_to_byte(uint32_t cp);

/* Pre-tokenizer regex lists (FORMATS.md §5.4). */
enum uni_pre {
    UNI_PRE_DEFAULT,
    UNI_PRE_GPT2,
    UNI_PRE_LLAMA3,
    UNI_PRE_QWEN2,
    UNI_PRE_QWEN35,
};

/* A text as code points with their flags, split into pieces. */
struct uni_text {
    uint32_t *cpt;
    uint16_t *flags;
    size_t n, cap;
    size_t *piece; /* piece lengths in code points; they sum to n */
    size_t n_piece, cap_piece;
    size_t *tmp; /* scratch for the passes */
    size_t cap_tmp;
};

void uni_text_init(struct uni_text *t);
void uni_text_done(struct uni_text *t);
/* Decodes s[0..len) into t (replacing its content) and splits it with the
 * passes of `pre`. 0 or -ENOMEM. */
int uni_pre_split(struct uni_text *t, enum uni_pre pre, const char *s, size_t len);

#endif
