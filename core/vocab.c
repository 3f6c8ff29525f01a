/*
 * vocab.c — the vocabulary at work: token and merge lookups, tokenization
 * entry points (special-token partition, then SentencePiece or BPE per raw
 * fragment) and detokenization (FORMATS.md §5.2, §5.5). Loading is in
 * vocab_load.c.
 *
 * Tokenizing first cuts the text at every occurrence of a special token
 * (llama.cpp's tokenizer_st_partition); the raw fragments in between go to
 * tok_spm.c or tok_bpe.c independently. Nothing here keeps state between
 * calls, so a loaded vocabulary may be used from any number of threads.
 */
#include "vocab_impl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- lookups ------------------------------------------------------------------- */

int32_t vocab_find(const struct hr_vocab *v, const char *s, size_t len)
{
    size_t i = vocab_slot(vocab_hash(VOCAB_HASH_SEED, s, len), v->tok_mask);
    for (;;) {
        uint32_t slot = v->tok_slot[i];
        if (!slot)
            return -1;
        const struct vocab_token *t = &v->tok[slot - 1];
        if (t->len == len && memcmp(v->text + t->off, s, len) == 0)
            return (int32_t)(slot - 1);
        i = (i + 1) & v->tok_mask;
    }
}

int32_t vocab_merge_rank(const struct hr_vocab *v, const char *a, size_t la, const char *b,
                         size_t lb)
{
    if (!v->merge_slot)
        return -1;
    size_t i = vocab_slot(vocab_merge_hash(a, la, b, lb), v->merge_mask);
    for (;;) {
        uint32_t slot = v->merge_slot[i];
        if (!slot)
            return -1;
        const struct vocab_merge *m = &v->merge[slot - 1];
        const char *mt = v->merge_text + m->off;
        if (m->len_a == la && m->len_b == lb && memcmp(mt, a, la) == 0 &&
            memcmp(mt + la, b, lb) == 0)
            return (int32_t)(slot - 1);
        i = (i + 1) & v->merge_mask;
    }
}

int vocab_ids_push(struct vocab_ids *v, int32_t id)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? 2 * v->cap : 64;
        int32_t *p = realloc(v->id, cap * sizeof *p);
        if (!p)
            return -ENOMEM;
        v->id = p;
        v->cap = cap;
    }
    v->id[v->n++] = id;
    return 0;
}

/* ---- queries ------------------------------------------------------------------- */

int32_t hr_vocab_n_tokens(const struct hr_vocab *v)
{
    return v ? v->n_tokens : 0;
}

int32_t hr_vocab_bos(const struct hr_vocab *v)
{
    return v ? v->bos : -1;
}

int32_t hr_vocab_eos(const struct hr_vocab *v)
{
    return v ? v->eos : -1;
}

bool hr_vocab_add_bos(const struct hr_vocab *v)
{
    return v && v->add_bos;
}

bool hr_vocab_is_eog(const struct hr_vocab *v, int32_t token)
{
    return v && token >= 0 && token < v->n_tokens && (v->tok[token].attr & VATTR_EOG);
}

const char *vocab_token_text(const struct hr_vocab *v, int32_t token)
{
    if (!v || token < 0 || token >= v->n_tokens)
        return NULL;
    return vocab_text(v, token);
}

/* ---- tokenize ------------------------------------------------------------------ */

/* A piece of the input: raw text [off, off+len) (tok < 0) or a special token. */
struct frag {
    size_t off, len;
    int32_t tok;
};

struct frags {
    struct frag *f;
    size_t n, cap;
};

static int frag_push(struct frags *a, size_t off, size_t len, int32_t tok)
{
    if (a->n == a->cap) {
        size_t cap = a->cap ? 2 * a->cap : 16;
        struct frag *p = realloc(a->f, cap * sizeof *p);
        if (!p)
            return -ENOMEM;
        a->f = p;
        a->cap = cap;
    }
    a->f[a->n++] = (struct frag){off, len, tok};
    return 0;
}

static bool c_isspace(char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r');
}

/* Cuts raw fragments at every occurrence of special token `id` (left to
 * right), applying its LSTRIP/RSTRIP to the neighbouring text. */
static int cut_at(const struct hr_vocab *v, int32_t id, const char *s, const struct frags *in,
                  struct frags *out)
{
    const struct vocab_token *t = &v->tok[id];
    const char *tt = v->text + t->off;
    int rc;

    out->n = 0;
    for (size_t i = 0; i < in->n; i++) {
        const struct frag *fr = &in->f[i];
        if (fr->tok >= 0) {
            if ((rc = frag_push(out, fr->off, fr->len, fr->tok)) < 0)
                return rc;
            continue;
        }
        size_t base = fr->off, blen = fr->len;
        for (;;) {
            const char *m = memmem(s + base, blen, tt, t->len);
            if (!m) {
                if (blen && (rc = frag_push(out, base, blen, -1)) < 0)
                    return rc;
                break;
            }
            size_t mpos = (size_t)(m - s), left = mpos - base;
            if (t->attr & VATTR_LSTRIP)
                while (left > 0 && c_isspace(s[base + left - 1]))
                    left--;
            if (left && (rc = frag_push(out, base, left, -1)) < 0)
                return rc;
            if ((rc = frag_push(out, 0, 0, id)) < 0)
                return rc;
            size_t rstart = mpos + t->len, rlen = base + blen - rstart;
            if (t->attr & VATTR_RSTRIP)
                while (rlen > 0 && c_isspace(s[rstart])) {
                    rstart++;
                    rlen--;
                }
            base = rstart;
            blen = rlen;
        }
    }
    return 0;
}

int64_t hr_tokenize(const struct hr_vocab *v, const char *text, size_t len, bool add_special,
                    bool parse_special, int32_t *out, size_t cap)
{
    struct frags a = {0}, b = {0};
    struct vocab_ids ids = {0};
    int64_t rc;

    if (!v || (!text && len) || (!out && cap))
        return -EINVAL;
    if (len && (rc = frag_push(&a, 0, len, -1)) < 0)
        goto fail;
    for (size_t k = 0; k < v->n_special && a.n; k++) {
        int32_t id = v->special[k];
        if (!parse_special && (v->tok[id].attr & (VATTR_CONTROL | VATTR_UNKNOWN)))
            continue; /* USER_DEFINED tokens are matched even then */
        if ((rc = cut_at(v, id, text, &a, &b)) < 0)
            goto fail;
        struct frags tmp = a;
        a = b;
        b = tmp;
    }

    if (add_special && v->add_bos && (rc = vocab_ids_push(&ids, v->bos)) < 0)
        goto fail;
    bool prev_special = true; /* SPM: the first fragment gets the space prefix */
    for (size_t i = 0; i < a.n; i++) {
        const struct frag *fr = &a.f[i];
        if (fr->tok >= 0) {
            rc = vocab_ids_push(&ids, fr->tok);
            prev_special = true;
        } else if (v->type == VOCAB_SPM) {
            rc = spm_tokenize(v, text + fr->off, fr->len, v->add_space_prefix && prev_special,
                              &ids);
            prev_special = false;
        } else {
            rc = bpe_tokenize(v, text + fr->off, fr->len, &ids);
        }
        if (rc < 0)
            goto fail;
    }
    if (add_special && v->add_eos && (rc = vocab_ids_push(&ids, v->eos)) < 0)
        goto fail;

    if (cap && ids.n)
        memcpy(out, ids.id, (ids.n < cap ? ids.n : cap) * sizeof *out);
    rc = (int64_t)ids.n;
fail:
    free(a.f);
    free(b.f);
    free(ids.id);
    return rc;
}

/* ---- detokenize ---------------------------------------------------------------- */

/* Output that counts everything and stores what fits. `lstrip` drops up to
 * that many spaces at the start of the current piece. */
struct sink {
    char *buf;
    size_t cap, n;
    size_t piece_n;
    int lstrip;
};

static void put(struct sink *k, const char *p, size_t m)
{
    while (k->lstrip > 0 && k->piece_n == 0 && m > 0 && *p == ' ') {
        p++;
        m--;
        k->lstrip--;
    }
    if (m == 0)
        return;
    if (k->n < k->cap) {
        size_t c = k->cap - k->n < m ? k->cap - k->n : m;
        memcpy(k->buf + k->n, p, c);
    }
    k->n += m;
    k->piece_n += m;
}

static int hex_val(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The byte of a "<0xNN>" token (0 when the text does not spell one). */
static uint8_t byte_of(const char *text, uint32_t len)
{
    unsigned b = 0;
    for (uint32_t i = 3; i < len && i < 5 && hex_val(text[i]) >= 0; i++)
        b = b * 16 + (unsigned)hex_val(text[i]);
    return (uint8_t)b;
}

static void put_piece(const struct hr_vocab *v, int32_t id, bool special, bool lstrip,
                      struct sink *k)
{
    const struct vocab_token *t = &v->tok[id];
    const char *text = v->text + t->off;
    const uint32_t a = t->attr;

    k->piece_n = 0;
    k->lstrip = lstrip ? 1 : 0;
    if (!special && (a & (VATTR_CONTROL | VATTR_UNKNOWN)))
        return;
    if (a & (VATTR_CONTROL | VATTR_UNKNOWN | VATTR_USER_DEFINED)) {
        put(k, text, t->len);
    } else if ((a & VATTR_NORMAL) && v->type == VOCAB_SPM) {
        size_t run = 0; /* bytes copied as they are */
        for (uint32_t i = 0; i < t->len;) {
            if (t->len - i >= 3 && memcmp(text + i, VOCAB_SPM_SPACE, 3) == 0) {
                put(k, text + run, i - run);
                put(k, " ", 1);
                i += 3;
                run = i;
            } else {
                i++;
            }
        }
        put(k, text + run, t->len - run);
    } else if (a & VATTR_NORMAL) {
        for (uint32_t i = 0; i < t->len;) {
            size_t adv;
            uint32_t cp = uni_decode(text + i, t->len - i, &adv);
            int byte = uni_cpt_to_byte(cp);
            i += (uint32_t)adv;
            if (byte >= 0) {
                char c = (char)byte;
                put(k, &c, 1);
                continue;
            }
            /* as llama.cpp: the code point's bytes, then the whole text */
            char u8[4], hex[3];
            size_t n8 = uni_encode(cp, u8);
            put(k, "[UNK_BYTE_0x", 12);
            for (size_t j = 0; j < n8; j++) {
                snprintf(hex, sizeof hex, "%02x", (unsigned)(uint8_t)u8[j]);
                put(k, hex, 2);
            }
            put(k, text, t->len);
            put(k, "]", 1);
        }
    } else if (a & VATTR_BYTE) {
        char c = (char)byte_of(text, t->len);
        put(k, &c, 1);
    }
    /* UNUSED and undefined tokens print nothing */
}

int64_t hr_token_to_piece(const struct hr_vocab *v, int32_t token, bool special, char *buf,
                          size_t cap)
{
    if (!v || token < 0 || token >= v->n_tokens || (!buf && cap))
        return -EINVAL;
    struct sink k = {.buf = buf, .cap = cap};
    put_piece(v, token, special, false, &k);
    return (int64_t)k.n;
}

/* gpt-2 / llama3 tidying of the joined text (llama.cpp's three passes, done in
 * place exactly as there: each reads the previous pass's characters). */
static size_t clean_spaces(char *t, size_t n)
{
    size_t o;

    /* " ?", " !", " .", " ," lose the space */
    o = n ? 1 : 0;
    for (size_t i = 1; i < n; i++) {
        char x = t[i];
        if (t[i - 1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ','))
            o--;
        t[o++] = x;
    }
    n = o;

    /* " ' " becomes "'" */
    o = n ? 1 : 0;
    for (size_t i = 1; i < n; i++) {
        char x = t[i];
        if (x == '\'' && i + 1 < n && t[i - 1] == ' ' && t[i + 1] == ' ') {
            o--;
            t[++i] = '\0';
        }
        t[o++] = x;
    }
    n = o;

    /* " 's", " 'm", " 're", " 've" lose the space */
    o = n ? 1 : 0;
    for (size_t i = 1; i < n; i++) {
        char x = t[i];
        if (t[i - 1] == ' ' && x == '\'' && i + 1 < n) {
            char x1 = t[i + 1];
            if (x1 == 's' || x1 == 'm') {
                o--;
            } else if (x1 != 't' && x1 != 'd' && i + 2 < n) {
                char x2 = t[i + 2];
                if ((x1 == 'r' && x2 == 'e') || (x1 == 'v' && x2 == 'e'))
                    o--;
            }
        }
        t[o++] = x;
    }
    return o;
}

int64_t vocab_detokenize(const struct hr_vocab *v, const int32_t *tokens, size_t n,
                         bool remove_special, bool unparse_special, char *buf, size_t cap)
{
    bool remove_space;
    struct sink k = {0};

    if (!v || (!tokens && n) || (!buf && cap))
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= v->n_tokens)
            return -EINVAL;

    remove_space = v->add_space_prefix;
    if (remove_special && v->add_bos && n > 0 && tokens[0] == v->bos) {
        remove_space = false; /* the space after BOS is kept */
        tokens++;
        n--;
    }
    if (remove_special && v->add_eos && n > 0 && tokens[n - 1] == v->eos)
        n--;

    /* first count, then write: the cleaning passes need the whole text */
    for (size_t i = 0; i < n; i++)
        put_piece(v, tokens[i], unparse_special, i == 0 && remove_space, &k);
    size_t total = k.n;
    char *t = malloc(total ? total : 1);
    if (!t)
        return -ENOMEM;
    k = (struct sink){.buf = t, .cap = total};
    for (size_t i = 0; i < n; i++)
        put_piece(v, tokens[i], unparse_special, i == 0 && remove_space, &k);
    if (v->clean_spaces)
        total = clean_spaces(t, total);
    if (cap && total)
        memcpy(buf, t, total < cap ? total : cap);
    free(t);
    return (int64_t)total;
}
