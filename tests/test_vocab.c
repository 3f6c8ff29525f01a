/*
 * test_vocab.c — the tokenizers against llama.cpp's reference cases.
 *
 * The sweep takes every ggml-vocab-NAME.gguf with its NAME.gguf.inp (test
 * strings, each followed by a line "__ggml_vocab_test__") and NAME.gguf.out
 * (one line of expected ids per string, add_special = parse_special =
 * false), from ../shared/refdata/vocab when present, else from
 * tests/data/vocab (llama-spm, phi-3 and gpt-2 ship with the tree). Each
 * string must give exactly its ids, and detokenizing them must give the
 * string back wherever the reference tokenizer is lossless (see
 * roundtrip_skip). Then: the stories260K prompts with BOS, pieces,
 * special-token handling, the EOG set, and malformed vocabularies built with
 * the GGUF writer.
 */
#include "err.h"
#include "gguf.h"
#include "testutil.h"
#include "unicode.h"
#include "vocab.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const vocab_names[] = {"llama-spm", "phi-3", "gpt-2", "llama-bpe", "qwen2",
                                          "qwen35"};
#define N_VOCABS (sizeof vocab_names / sizeof vocab_names[0])

/* Loads a vocabulary and frees the GGUF right away: the vocab must not
 * point into it (ASan would see any use after free). */
static struct hr_vocab *load_vocab(const char *path)
{
    struct gguf_file *f = NULL;
    struct hr_vocab *v = NULL;
    struct hr_err err;
    hr_err_clear(&err);
    int rc = gguf_open(path, GGUF_DEFAULT_BUDGET, &f, &err);
    cr_assert_eq(rc, 0, "%s: %s", path, err.msg);
    rc = vocab_load(f, &v, &err);
    gguf_free(f);
    cr_assert_eq(rc, 0, "%s: vocab_load %d: %s", path, rc, err.msg);
    return v;
}

/* Path of one file of vocab NAME, refdata first; NULL if absent. */
static const char *vocab_file(const char *name, const char *suffix)
{
    char rel[256];
    snprintf(rel, sizeof rel, "vocab/ggml-vocab-%s.gguf%s", name, suffix);
    return tu_find(rel);
}

struct cases {
    char *inp, *out;   /* file contents (owned) */
    char **str;        /* test strings, pointing into inp (NUL-terminated in place) */
    size_t *len;
    char **ids;        /* expected id lines, pointing into out */
    size_t n;
};

/* Every string is followed by "\n__ggml_vocab_test__\n"; .out has one line
 * per string. */
static void read_cases(const char *name, struct cases *c)
{
    static const char sep[] = "\n__ggml_vocab_test__\n";
    const char *pi = vocab_file(name, ".inp"), *po = vocab_file(name, ".out");
    cr_assert(pi && po, "%s: .inp/.out missing", name);
    size_t li, lo;
    memset(c, 0, sizeof *c);
    c->inp = tu_read_file(pi, &li);
    c->out = tu_read_file(po, &lo);
    cr_assert(c->inp && c->out);

    size_t cap = 256;
    c->str = malloc(cap * sizeof *c->str);
    c->len = malloc(cap * sizeof *c->len);
    c->ids = malloc(cap * sizeof *c->ids);
    char *p = c->inp, *end = c->inp + li;
    while (p < end) {
        char *s = memmem(p, (size_t)(end - p), sep, sizeof sep - 1);
        cr_assert(s, "%s.inp: text after the last separator", name);
        cr_assert(c->n < cap);
        *s = '\0';
        c->str[c->n] = p;
        c->len[c->n] = (size_t)(s - p);
        c->n++;
        p = s + sizeof sep - 1;
    }
    size_t k = 0;
    for (char *q = c->out; q < c->out + lo; k++) {
        char *nl = memchr(q, '\n', (size_t)(c->out + lo - q));
        cr_assert(nl, "%s.out: last line without newline", name);
        *nl = '\0';
        cr_assert(k < c->n, "%s: more .out lines than strings", name);
        c->ids[k] = q;
        q = nl + 1;
    }
    cr_assert_eq(k, c->n, "%s: %zu strings but %zu id lines", name, c->n, k);
}

static void free_cases(struct cases *c)
{
    free(c->inp);
    free(c->out);
    free(c->str);
    free(c->len);
    free(c->ids);
}

static int64_t tokenize(const struct hr_vocab *v, const char *s, size_t len, bool add_special,
                        bool parse_special, int32_t *out, size_t cap)
{
    int64_t n = hr_tokenize(v, s, len, add_special, parse_special, out, cap);
    cr_assert_geq(n, 0, "hr_tokenize: %lld", (long long)n);
    cr_assert_leq((size_t)n, cap, "too many tokens");
    return n;
}

static void format_ids(const int32_t *ids, int64_t n, char *buf, size_t cap)
{
    size_t o = 0;
    buf[0] = '\0';
    for (int64_t i = 0; i < n && o + 12 < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, " %d", ids[i]);
}

/* Strings whose detokenization differs from the input by design:
 * clean_spaces vocabularies (gpt-2, llama3) drop the space before ? ! . ,
 * collapse " ' " and join " 's" " 'm" " 're" " 've" (FORMATS.md §5.5). */
static bool roundtrip_skip(const char *name, const char *s, size_t len)
{
    if (strcmp(name, "gpt-2") != 0 && strcmp(name, "llama-bpe") != 0)
        return false;
    for (size_t i = 0; i + 1 < len; i++) {
        if (s[i] != ' ')
            continue;
        char x = s[i + 1];
        if (x == '?' || x == '!' || x == '.' || x == ',')
            return true;
        if (x == '\'' && i + 2 < len &&
            (s[i + 2] == ' ' || s[i + 2] == 's' || s[i + 2] == 'm' ||
             (i + 3 < len && ((s[i + 2] == 'r' && s[i + 3] == 'e') ||
                              (s[i + 2] == 'v' && s[i + 3] == 'e')))))
            return true;
    }
    return false;
}

Test(vocab, reference_cases, .timeout = 300)
{
    int files = 0, total = 0;
    for (size_t k = 0; k < N_VOCABS; k++) {
        const char *name = vocab_names[k];
        const char *path = vocab_file(name, "");
        if (!path)
            continue;
        files++;
        struct hr_vocab *v = load_vocab(path);
        struct cases c;
        read_cases(name, &c);

        enum { CAP = 4096 };
        int32_t *got = malloc(CAP * sizeof *got), *want = malloc(CAP * sizeof *want);
        char *text = malloc(1 << 16), shown[2048];
        int pass = 0, rt_pass = 0, rt_skip = 0;
        for (size_t i = 0; i < c.n; i++) {
            int64_t n = tokenize(v, c.str[i], c.len[i], false, false, got, CAP);
            size_t nw = tu_parse_ids(c.ids[i], want, CAP);
            bool ok = (size_t)n == nw && memcmp(got, want, nw * sizeof *got) == 0;
            if (!ok) {
                format_ids(got, n, shown, sizeof shown);
                cr_log_error("%s case %zu '%s': got%s\n  want %s", name, i, c.str[i], shown,
                             c.ids[i]);
            }
            pass += ok;

            if (roundtrip_skip(name, c.str[i], c.len[i])) {
                rt_skip++;
                continue;
            }
            int64_t tl = vocab_detokenize(v, want, nw, false, false, text, 1 << 16);
            cr_assert(tl >= 0 && tl < (1 << 16));
            if ((size_t)tl == c.len[i] && memcmp(text, c.str[i], c.len[i]) == 0)
                rt_pass++;
            else
                cr_log_error("%s case %zu: detokenize gives '%.*s' for '%s'", name, i, (int)tl,
                             text, c.str[i]);
        }
        cr_log_info("%s (%s): %d/%zu cases match, round trip %d/%zu (%d skipped)", name, path,
                    pass, c.n, rt_pass, c.n - (size_t)rt_skip, rt_skip);
        cr_expect_eq((size_t)pass, c.n, "%s: %d/%zu cases", name, pass, c.n);
        cr_expect_eq((size_t)rt_pass, c.n - (size_t)rt_skip, "%s: round trip", name);
        total += pass;
        free(got);
        free(want);
        free(text);
        free_cases(&c);
        vocab_free(v);
    }
    cr_assert_gt(files, 0, "no ggml-vocab-*.gguf found in refdata or tests/data");
    cr_log_info("%d vocab files, %d cases", files, total);
}

/* The big vocabularies must load fast (hash tables, no quadratic steps). */
Test(vocab, load_time)
{
    const char *path = vocab_file("qwen2", "");
    if (!path)
        path = vocab_file("gpt-2", "");
    cr_assert(path);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    struct hr_vocab *v = load_vocab(path);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
    cr_log_info("%s: %d tokens loaded in %.3f s", path, hr_vocab_n_tokens(v), s);
    cr_expect_lt(s, 2.0, "loading took %.3f s", s); /* generous for sanitizer builds */
    vocab_free(v);
}

/* ---- stories260K --------------------------------------------------------------- */

static struct hr_vocab *stories(void)
{
    const char *p = tu_data("../../models/stories260K.gguf");
    cr_assert(tu_exists(p), "%s missing", p);
    return load_vocab(p);
}

Test(vocab, stories_prompts)
{
    struct hr_vocab *v = stories();
    const char *path = tu_find("ref/stories/prompts.txt");
    cr_assert(path, "prompts.txt missing");
    char *all = tu_read_file(path, NULL);
    cr_assert(all);
    int n_prompts = 0;
    for (char *line = strtok(all, "\n"); line; line = strtok(NULL, "\n")) {
        char *p1 = strchr(line, '|'), *p2 = p1 ? strchr(p1 + 1, '|') : NULL;
        cr_assert(p1 && p2, "bad line '%s'", line);
        *p2 = '\0';
        const char *prompt = p1 + 1;
        int32_t want[256], got[256];
        size_t nw = tu_parse_ids(p2 + 1, want, 256);
        cr_assert_gt(nw, 1);
        for (int ps = 0; ps < 2; ps++) {
            int64_t n = tokenize(v, prompt, strlen(prompt), true, ps, got, 256);
            cr_assert_eq((size_t)n, nw, "'%s': %lld tokens, want %zu", prompt, (long long)n, nw);
            cr_assert_arr_eq(got, want, nw * sizeof *got, "'%s'", prompt);
        }
        /* without add_special: the same minus BOS */
        int64_t n = tokenize(v, prompt, strlen(prompt), false, false, got, 256);
        cr_assert_eq((size_t)n, nw - 1);
        cr_assert_arr_eq(got, want + 1, (nw - 1) * sizeof *got);

        /* streaming pieces: BOS prints nothing, SentencePiece keeps the space */
        char text[1024];
        size_t o = 0;
        for (size_t i = 0; i < nw; i++) {
            int64_t m = hr_token_to_piece(v, want[i], false, text + o, sizeof text - o);
            cr_assert(m >= 0 && o + (size_t)m < sizeof text);
            o += (size_t)m;
        }
        cr_assert_eq(o, strlen(prompt) + 1);
        cr_assert(text[0] == ' ' && memcmp(text + 1, prompt, strlen(prompt)) == 0, "'%.*s'",
                  (int)o, text);

        /* whole-sequence: without BOS the first space goes; with BOS
         * (removed or printed as nothing) the space stays */
        int64_t m = vocab_detokenize(v, want + 1, nw - 1, false, false, text, sizeof text);
        cr_assert_eq((size_t)m, strlen(prompt));
        cr_assert_arr_eq(text, prompt, (size_t)m);
        for (int rs = 0; rs < 2; rs++) {
            m = vocab_detokenize(v, want, nw, rs, false, text, sizeof text);
            cr_assert_eq((size_t)m, strlen(prompt) + 1, "remove_special %d", rs);
            cr_assert(text[0] == ' ' && memcmp(text + 1, prompt, strlen(prompt)) == 0);
        }
        /* unparse_special prints BOS */
        m = vocab_detokenize(v, want, nw, false, true, text, sizeof text);
        cr_assert_eq((size_t)m, strlen(prompt) + 4);
        cr_assert(memcmp(text, "<s> ", 4) == 0, "'%.*s'", (int)m, text);
        n_prompts++;
    }
    cr_assert_eq(n_prompts, 5);
    free(all);
    vocab_free(v);
}

Test(vocab, stories_basics)
{
    struct hr_vocab *v = stories();
    cr_assert_eq(hr_vocab_n_tokens(v), 512);
    cr_assert_eq(hr_vocab_bos(v), 1);
    cr_assert_eq(hr_vocab_eos(v), 2);
    cr_assert(hr_vocab_add_bos(v));
    cr_assert_str_eq(vocab_token_text(v, 1), "<s>");
    cr_assert_null(vocab_token_text(v, -1));
    cr_assert_null(vocab_token_text(v, 512));

    /* EOG: the EOS and the "</s>" text; nothing else */
    int n_eog = 0;
    for (int32_t t = 0; t < 512; t++)
        n_eog += hr_vocab_is_eog(v, t);
    cr_assert_eq(n_eog, 1);
    cr_assert(hr_vocab_is_eog(v, 2));
    cr_assert_not(hr_vocab_is_eog(v, 1));
    cr_assert_not(hr_vocab_is_eog(v, -1));
    cr_assert_not(hr_vocab_is_eog(v, 512));

    char buf[16];
    cr_assert_eq(hr_token_to_piece(v, -1, false, buf, sizeof buf), -EINVAL);
    cr_assert_eq(hr_token_to_piece(v, 512, false, buf, sizeof buf), -EINVAL);
    cr_assert_eq(hr_token_to_piece(v, INT32_MAX, true, buf, sizeof buf), -EINVAL);
    /* control tokens print only on request; byte tokens give their byte */
    cr_assert_eq(hr_token_to_piece(v, 2, false, buf, sizeof buf), 0);
    cr_assert_eq(hr_token_to_piece(v, 2, true, buf, sizeof buf), 4);
    cr_assert_arr_eq(buf, "</s>", 4);
    int32_t nl = -1;
    for (int32_t t = 0; t < 512; t++)
        if (strcmp(vocab_token_text(v, t), "<0x0A>") == 0)
            nl = t;
    cr_assert_geq(nl, 0);
    cr_assert_eq(hr_token_to_piece(v, nl, false, buf, sizeof buf), 1);
    cr_assert_eq(buf[0], '\n');

    /* empty text: nothing, or just BOS */
    int32_t ids[8];
    cr_assert_eq(hr_tokenize(v, "", 0, false, false, ids, 8), 0);
    cr_assert_eq(hr_tokenize(v, "", 0, true, false, ids, 8), 1);
    cr_assert_eq(ids[0], 1);

    /* short buffers: the full count/length comes back, nothing overflows */
    const char *s = "Once upon a time";
    int64_t n = hr_tokenize(v, s, strlen(s), true, false, NULL, 0);
    cr_assert_eq(n, 5);
    ids[2] = -7;
    cr_assert_eq(hr_tokenize(v, s, strlen(s), true, false, ids, 2), 5);
    cr_assert_eq(ids[0], 1);
    cr_assert_eq(ids[2], -7);
    cr_assert_eq(hr_tokenize(NULL, s, 1, true, false, ids, 8), -EINVAL);
    cr_assert_eq(hr_tokenize(v, NULL, 3, true, false, ids, 8), -EINVAL);
    int64_t need = vocab_detokenize(v, ids, 2, false, false, NULL, 0);
    cr_assert_gt(need, 2);
    buf[2] = 'X';
    cr_assert_eq(vocab_detokenize(v, ids, 2, false, false, buf, 2), need);
    cr_assert_eq(buf[2], 'X');
    int32_t bad = 9999;
    cr_assert_eq(vocab_detokenize(v, &bad, 1, false, false, buf, sizeof buf), -EINVAL);
    vocab_free(v);
}

/* Control tokens in the text are matched only with parse_special; a raw
 * fragment after a special token gets the SentencePiece space again. */
Test(vocab, parse_special_spm)
{
    struct hr_vocab *v = stories();
    int32_t a[64], b[64];
    int64_t na = tokenize(v, "<s>hi </s>", 10, false, true, a, 64);
    int64_t nb = tokenize(v, "hi ", 3, false, false, b + 1, 63);
    b[0] = 1;
    b[nb + 1] = 2;
    cr_assert_eq(na, nb + 2);
    cr_assert_arr_eq(a, b, (size_t)na * sizeof *a);
    /* without parse_special the text is plain text */
    na = tokenize(v, "<s>", 3, false, false, a, 64);
    for (int64_t i = 0; i < na; i++)
        cr_assert_neq(a[i], 1);
    vocab_free(v);
}

static int32_t find_token(const struct hr_vocab *v, const char *text)
{
    for (int32_t t = 0; t < hr_vocab_n_tokens(v); t++)
        if (strcmp(vocab_token_text(v, t), text) == 0)
            return t;
    return -1;
}

/* phi-3: special tokens strip the whitespace after them (RSTRIP), except
 * <s>, <unk> and <|endoftext|>. */
Test(vocab, phi3_rstrip)
{
    const char *path = vocab_file("phi-3", "");
    cr_assert(path);
    struct hr_vocab *v = load_vocab(path);
    int32_t end = find_token(v, "<|end|>"), eot = find_token(v, "<|endoftext|>");
    cr_assert(end >= 0 && eot >= 0);
    int32_t a[64], b[64];
    int64_t na = tokenize(v, "<|end|> \n hello", 15, false, true, a, 64);
    int64_t nb = tokenize(v, "hello", 5, false, false, b + 1, 63);
    b[0] = end;
    cr_assert_eq(na, nb + 1);
    cr_assert_arr_eq(a, b, (size_t)na * sizeof *a);
    /* <|endoftext|> keeps the space */
    na = tokenize(v, "<|endoftext|> hello", 19, false, true, a, 64);
    nb = tokenize(v, " hello", 6, false, false, b + 1, 63);
    b[0] = eot;
    cr_assert_eq(na, nb + 1);
    cr_assert_arr_eq(a, b, (size_t)na * sizeof *a);
    /* EOG: eos, <|end|>, </s> and <|endoftext|> (FORMATS.md §7) */
    cr_assert(hr_vocab_is_eog(v, hr_vocab_eos(v)));
    cr_assert(hr_vocab_is_eog(v, end));
    cr_assert(hr_vocab_is_eog(v, eot));
    cr_assert(hr_vocab_is_eog(v, find_token(v, "</s>")));
    cr_assert_not(hr_vocab_is_eog(v, find_token(v, "<|user|>")));
    vocab_free(v);
}

/* EOG sets of the BPE vocabularies, by token text (FORMATS.md §7). */
Test(vocab, eog_sets)
{
    static const struct {
        const char *vocab;
        const char *eog[6];
        const char *not_eog[3];
    } exp[] = {
        {"gpt-2", {"<|endoftext|>"}, {"Hello"}},
        {"llama-bpe",
         {"<|end_of_text|>", "<|eot_id|>"}, /* Llama 3.0: no <|eom_id|> yet */
         {"<|begin_of_text|>", "<|start_header_id|>"}},
        /* this Qwen vocabulary has no FIM tokens; its ordinary "</s>" is
         * on the EOG name list */
        {"qwen2", {"<|endoftext|>", "<|im_end|>", "</s>"}, {"<|im_start|>"}},
    };
    int checked = 0;
    for (size_t k = 0; k < sizeof exp / sizeof exp[0]; k++) {
        const char *path = vocab_file(exp[k].vocab, "");
        if (!path)
            continue;
        struct hr_vocab *v = load_vocab(path);
        int n_eog = 0, n_want = 0;
        for (int32_t t = 0; t < hr_vocab_n_tokens(v); t++)
            n_eog += hr_vocab_is_eog(v, t);
        for (int i = 0; exp[k].eog[i]; i++, n_want++) {
            int32_t t = find_token(v, exp[k].eog[i]);
            cr_assert(t >= 0 && hr_vocab_is_eog(v, t), "%s: %s", exp[k].vocab, exp[k].eog[i]);
            char piece[8];
            cr_assert_eq(hr_token_to_piece(v, t, false, piece, sizeof piece), 0,
                         "EOG tokens are control tokens");
        }
        for (int i = 0; exp[k].not_eog[i]; i++) {
            int32_t t = find_token(v, exp[k].not_eog[i]);
            cr_assert(t >= 0 && !hr_vocab_is_eog(v, t), "%s: %s", exp[k].vocab,
                      exp[k].not_eog[i]);
        }
        cr_assert_eq(n_eog, n_want, "%s: %d EOG tokens", exp[k].vocab, n_eog);
        vocab_free(v);
        checked++;
    }
    cr_assert_gt(checked, 0);
}

/* Qwen2 user-defined and control tokens. */
Test(vocab, parse_special_bpe)
{
    const char *path = vocab_file("qwen2", "");
    if (!path) {
        cr_skip_test("qwen2 vocab only in refdata");
        return;
    }
    struct hr_vocab *v = load_vocab(path);
    int32_t a[64], b[64];
    int32_t im_start = find_token(v, "<|im_start|>");
    const char *s = "<|im_start|>user";
    int64_t na = tokenize(v, s, strlen(s), false, true, a, 64);
    int64_t nb = tokenize(v, "user", 4, false, false, b + 1, 63);
    b[0] = im_start;
    cr_assert_eq(na, nb + 1);
    cr_assert_arr_eq(a, b, (size_t)na * sizeof *a);
    /* forced CONTROL (EOG names) is not matched without parse_special */
    int32_t im_end = find_token(v, "<|im_end|>");
    na = tokenize(v, "<|im_end|>", 10, false, false, a, 64);
    cr_assert_gt(na, 1);
    for (int64_t i = 0; i < na; i++)
        cr_assert_neq(a[i], im_end);
    /* no BOS for qwen2, even with add_special */
    cr_assert_not(hr_vocab_add_bos(v));
    cr_assert_eq(tokenize(v, "user", 4, true, false, a, 64), nb);
    vocab_free(v);
}

/* ---- Unicode helpers and pre-tokenizers ------------------------------------------ */

Test(vocab, utf8_decode)
{
    size_t adv;
    cr_assert_eq(uni_decode("A", 1, &adv), 'A');
    cr_assert_eq(adv, 1);
    cr_assert_eq(uni_decode("\xc3\xa4", 2, &adv), 0xE4);
    cr_assert_eq(adv, 2);
    cr_assert_eq(uni_decode("\xf0\x9f\x98\x81", 4, &adv), 0x1F601);
    cr_assert_eq(adv, 4);
    /* truncated, stray continuation, bad continuation, 0xF8, above U+10FFFF */
    cr_assert_eq(uni_decode("\xc3", 1, &adv), UNI_REPLACEMENT);
    cr_assert_eq(adv, 1);
    cr_assert_eq(uni_decode("\x80x", 2, &adv), UNI_REPLACEMENT);
    cr_assert_eq(adv, 1);
    cr_assert_eq(uni_decode("\xe2\x28\xa1", 3, &adv), UNI_REPLACEMENT);
    cr_assert_eq(adv, 1);
    cr_assert_eq(uni_decode("\xf8\x88\x80\x80", 4, &adv), UNI_REPLACEMENT);
    cr_assert_eq(uni_decode("\xf4\x90\x80\x80", 4, &adv), UNI_REPLACEMENT);
    /* lenient like llama.cpp: an overlong form decodes */
    cr_assert_eq(uni_decode("\xc0\x80", 2, &adv), 0);
    cr_assert_eq(adv, 2);
    char buf[4];
    for (uint32_t cp = 0; cp <= 0x10FFFF; cp += 97) {
        size_t n = uni_encode(cp, buf);
        cr_assert_eq(uni_decode(buf, n, &adv), cp);
        cr_assert_eq(adv, n);
    }
}

Test(vocab, byte_alphabet)
{
    bool seen[0x200] = {false};
    for (int b = 0; b < 256; b++) {
        uint32_t cp = uni_byte_to_cpt((uint8_t)b);
        cr_assert_lt(cp, 0x144u);
        cr_assert_not(seen[cp], "byte %d: code point %u twice", b, cp);
        seen[cp] = true;
        cr_assert_eq(uni_cpt_to_byte(cp), b);
    }
    cr_assert_eq(uni_byte_to_cpt(' '), 0x120u); /* Ġ */
    cr_assert_eq(uni_byte_to_cpt('\n'), 0x10Au); /* Ċ */
    cr_assert_eq(uni_byte_to_cpt('A'), 'A');
    cr_assert_eq(uni_cpt_to_byte(0x144), -1);
    cr_assert_eq(uni_cpt_to_byte(0x20), -1);
}

Test(vocab, unicode_classes)
{
    cr_assert(uni_flags('a') & UNI_LETTER);
    cr_assert(uni_flags(0x4E2D) & UNI_LETTER); /* 中 */
    cr_assert(uni_flags('7') & UNI_NUMBER);
    cr_assert(uni_flags(0xBD) & UNI_NUMBER); /* ½ */
    cr_assert(uni_flags(0x301) & UNI_MARK);
    cr_assert(uni_flags('!') & UNI_PUNCT);
    cr_assert(uni_flags('$') & UNI_SYMBOL);
    const uint32_t ws[] = {9, 10, 11, 12, 13, 0x20, 0x85, 0xA0, 0x1680, 0x2000, 0x200A,
                           0x2028, 0x2029, 0x202F, 0x205F, 0x3000};
    for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++)
        cr_assert(uni_flags(ws[i]) & UNI_WHITESPACE, "U+%04X", ws[i]);
    cr_assert_not(uni_flags(0x200B) & UNI_WHITESPACE);
    cr_assert_not(uni_flags(0x1C) & UNI_WHITESPACE);
    cr_assert_neq(uni_flags(0x378), 0); /* unassigned: a class of its own */
}

/* Pieces of `s` as "a|b|c". */
static void split(enum uni_pre pre, const char *s, char *out, size_t cap)
{
    struct uni_text t;
    uni_text_init(&t);
    cr_assert_eq(uni_pre_split(&t, pre, s, strlen(s)), 0);
    size_t o = 0, c = 0;
    for (size_t p = 0; p < t.n_piece; p++) {
        if (p)
            out[o++] = '|';
        for (size_t i = 0; i < t.piece[p]; i++, c++)
            o += uni_encode(t.cpt[c], out + o);
        cr_assert_lt(o + 8, cap);
    }
    out[o] = '\0';
    cr_assert_eq(c, t.n);
    uni_text_done(&t);
}

/* The examples of FORMATS.md §5.4. */
Test(vocab, pre_tokenizers)
{
    char b[256];
    split(UNI_PRE_LLAMA3, "12345", b, sizeof b);
    cr_assert_str_eq(b, "123|45");
    split(UNI_PRE_QWEN2, "12345", b, sizeof b);
    cr_assert_str_eq(b, "1|2|3|4|5");
    split(UNI_PRE_GPT2, "12345 678", b, sizeof b);
    cr_assert_str_eq(b, "12345| 678");
    for (int pre = UNI_PRE_GPT2; pre <= UNI_PRE_QWEN35; pre++) {
        split((enum uni_pre)pre, "a  b", b, sizeof b);
        cr_assert_str_eq(b, "a| | b", "pre %d", pre);
        split((enum uni_pre)pre, "a  ", b, sizeof b);
        cr_assert_str_eq(b, "a|  ", "pre %d", pre);
    }
    /* contractions: llama3 family case-insensitive, gpt-2 lowercase only */
    split(UNI_PRE_LLAMA3, "I'M", b, sizeof b);
    cr_assert_str_eq(b, "I|'M");
    split(UNI_PRE_GPT2, "I'M", b, sizeof b);
    cr_assert_str_eq(b, "I|'|M");
    /* qwen35: marks join the letter run ("é" as e + U+0301) */
    split(UNI_PRE_QWEN35, "e\xcc\x81t\xc3\xa9", b, sizeof b);
    cr_assert_str_eq(b, "e\xcc\x81t\xc3\xa9");
    split(UNI_PRE_QWEN2, "e\xcc\x81t", b, sizeof b);
    cr_assert_str_eq(b, "e|\xcc\x81t");
    /* newlines: \s*[\r\n]+ and punctuation with trailing newlines */
    split(UNI_PRE_LLAMA3, "a \n\n b", b, sizeof b);
    cr_assert_str_eq(b, "a| \n\n| b");
    split(UNI_PRE_LLAMA3, "x!!\n\ny", b, sizeof b);
    cr_assert_str_eq(b, "x|!!\n\n|y");
    /* default: punctuation runs, then gpt-2, digit runs, triples */
    split(UNI_PRE_DEFAULT, "ab,, 12345", b, sizeof b);
    cr_assert_str_eq(b, "ab|,,| |123|45");
    split(UNI_PRE_GPT2, "", b, sizeof b);
    cr_assert_str_eq(b, "");
}

/* ---- malformed and synthetic vocabularies ------------------------------------------- */

/* Builds a GGUF image with the writer; the caller adds keys to w first. */
static int load_image(struct gguf_writer *w, struct hr_vocab **v, struct hr_err *err)
{
    void *img;
    size_t size;
    struct gguf_file *f = NULL;
    cr_assert_eq(gguf_writer_write_mem(w, &img, &size), 0);
    gguf_writer_free(w);
    cr_assert_eq(gguf_parse(img, size, GGUF_DEFAULT_BUDGET, &f, err), 0, "%s", err->msg);
    hr_err_clear(err);
    int rc = vocab_load(f, v, err);
    gguf_free(f);
    free(img); /* a loaded vocab must not need the image any more */
    return rc;
}

static const char *const tiny_tokens[] = {"<unk>", "<s>", "</s>", "a", "b", "\xe2\x96\x81" "a"};
#define N_TINY 6

static struct gguf_writer *tiny_spm(void)
{
    struct gguf_writer *w = gguf_writer_new();
    cr_assert(w);
    gguf_writer_add_str(w, "tokenizer.ggml.model", "llama");
    gguf_writer_add_str_arr(w, "tokenizer.ggml.tokens", tiny_tokens, N_TINY);
    return w;
}

static void expect_fail(struct gguf_writer *w, int code, const char *needle)
{
    struct hr_vocab *v = (struct hr_vocab *)0x1;
    struct hr_err err;
    int rc = load_image(w, &v, &err);
    cr_assert_eq(rc, code, "rc %d (%s), want %d", rc, err.msg, code);
    cr_assert_eq(v, (struct hr_vocab *)0x1, "*out written on failure");
    cr_assert(strstr(err.msg, needle), "message '%s' lacks '%s'", err.msg, needle);
}

Test(vocab, malformed)
{
    struct gguf_writer *w;
    const float scores[N_TINY] = {0, 0, 0, -1, -2, -3};
    const int32_t types[N_TINY] = {2, 3, 3, 1, 1, 1};

    /* tokens of the wrong type */
    w = gguf_writer_new();
    gguf_writer_add_str(w, "tokenizer.ggml.model", "llama");
    gguf_writer_add_arr(w, "tokenizer.ggml.tokens", GGUF_INT32, types, N_TINY);
    expect_fail(w, -EINVAL, "tokenizer.ggml.tokens");
    /* tokens not an array */
    w = gguf_writer_new();
    gguf_writer_add_str(w, "tokenizer.ggml.model", "llama");
    gguf_writer_add_str(w, "tokenizer.ggml.tokens", "a");
    expect_fail(w, -EINVAL, "tokenizer.ggml.tokens");
    /* tokens missing, model missing */
    w = gguf_writer_new();
    gguf_writer_add_str(w, "tokenizer.ggml.model", "llama");
    expect_fail(w, -EINVAL, "tokenizer.ggml.tokens");
    w = gguf_writer_new();
    gguf_writer_add_str_arr(w, "tokenizer.ggml.tokens", tiny_tokens, N_TINY);
    expect_fail(w, -EINVAL, "tokenizer.ggml.model");
    /* fewer scores than tokens */
    w = tiny_spm();
    gguf_writer_add_arr(w, "tokenizer.ggml.scores", GGUF_FLOAT32, scores, N_TINY - 1);
    expect_fail(w, -EINVAL, "tokenizer.ggml.scores");
    /* scores of the wrong type */
    w = tiny_spm();
    gguf_writer_add_str_arr(w, "tokenizer.ggml.scores", tiny_tokens, N_TINY);
    expect_fail(w, -EINVAL, "tokenizer.ggml.scores");
    /* token types: wrong type, too few */
    w = tiny_spm();
    gguf_writer_add_arr(w, "tokenizer.ggml.token_type", GGUF_FLOAT32, scores, N_TINY);
    expect_fail(w, -EINVAL, "tokenizer.ggml.token_type");
    w = tiny_spm();
    gguf_writer_add_arr(w, "tokenizer.ggml.token_type", GGUF_INT32, types, 2);
    expect_fail(w, -EINVAL, "tokenizer.ggml.token_type");
    /* duplicate token text */
    const char *dup[] = {"<unk>", "<s>", "</s>", "a", "a"};
    w = gguf_writer_new();
    gguf_writer_add_str(w, "tokenizer.ggml.model", "llama");
    gguf_writer_add_str_arr(w, "tokenizer.ggml.tokens", dup, 5);
    expect_fail(w, -EINVAL, "duplicate");
    /* an id key of the wrong type */
    w = tiny_spm();
    gguf_writer_add_str(w, "tokenizer.ggml.bos_token_id", "1");
    expect_fail(w, -EINVAL, "tokenizer.ggml.bos_token_id");
    /* gpt2 without merges, merges of the wrong type */
    w = gguf_writer_new();
    gguf_writer_add_str(w, "tokenizer.ggml.model", "gpt2");
    gguf_writer_add_str(w, "tokenizer.ggml.pre", "gpt-2");
    gguf_writer_add_str_arr(w, "tokenizer.ggml.tokens", tiny_tokens, N_TINY);
    expect_fail(w, -EINVAL, "tokenizer.ggml.merges");
    w = gguf_writer_new();
    gguf_writer_add_str(w, "tokenizer.ggml.model", "gpt2");
    gguf_writer_add_str(w, "tokenizer.ggml.pre", "gpt-2");
    gguf_writer_add_str_arr(w, "tokenizer.ggml.tokens", tiny_tokens, N_TINY);
    gguf_writer_add_arr(w, "tokenizer.ggml.merges", GGUF_INT32, types, N_TINY);
    expect_fail(w, -EINVAL, "tokenizer.ggml.merges");
    /* add_bos without a BOS: the gpt2 default 11 is out of range */
    const char *m[] = {"a b"};
    w = gguf_writer_new();
    gguf_writer_add_str(w, "tokenizer.ggml.model", "gpt2");
    gguf_writer_add_str(w, "tokenizer.ggml.pre", "gpt-2");
    gguf_writer_add_str_arr(w, "tokenizer.ggml.tokens", tiny_tokens, N_TINY);
    gguf_writer_add_str_arr(w, "tokenizer.ggml.merges", m, 1);
    gguf_writer_add_bool(w, "tokenizer.ggml.add_bos_token", true);
    expect_fail(w, -EINVAL, "BOS");
    /* unknown model and pre-tokenizer: -ENOTSUP naming them */
    w = gguf_writer_new();
    gguf_writer_add_str(w, "tokenizer.ggml.model", "bert");
    gguf_writer_add_str_arr(w, "tokenizer.ggml.tokens", tiny_tokens, N_TINY);
    expect_fail(w, -ENOTSUP, "'bert'");
    w = gguf_writer_new();
    gguf_writer_add_str(w, "tokenizer.ggml.model", "gpt2");
    gguf_writer_add_str(w, "tokenizer.ggml.pre", "tekken-9");
    gguf_writer_add_str_arr(w, "tokenizer.ggml.tokens", tiny_tokens, N_TINY);
    gguf_writer_add_str_arr(w, "tokenizer.ggml.merges", m, 1);
    expect_fail(w, -ENOTSUP, "'tekken-9'");
}

/* A hand-made SentencePiece vocabulary: defaults, key overrides, scores,
 * byte fallback to the one-byte token, -EILSEQ when nothing covers a byte. */
Test(vocab, tiny_spm)
{
    const float scores[N_TINY] = {0, 0, 0, -1, -2, -3};
    struct gguf_writer *w = tiny_spm();
    gguf_writer_add_arr(w, "tokenizer.ggml.scores", GGUF_FLOAT32, scores, N_TINY);
    gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id", 999); /* out of range: ignored */
    gguf_writer_add_u32(w, "tokenizer.ggml.eos_token_id", 4);
    gguf_writer_add_bool(w, "tokenizer.ggml.add_eos_token", true);
    struct hr_vocab *v = NULL;
    struct hr_err err;
    cr_assert_eq(load_image(w, &v, &err), 0, "%s", err.msg);
    cr_assert_eq(hr_vocab_bos(v), 1);
    cr_assert_eq(hr_vocab_eos(v), 4);
    cr_assert(hr_vocab_is_eog(v, 4));
    cr_assert(hr_vocab_is_eog(v, 2)); /* "</s>" by name */

    int32_t ids[16];
    /* " ab" → "▁a" (one merge) + "b"; add_special adds BOS and EOS */
    int64_t n = hr_tokenize(v, "ab", 2, true, false, ids, 16);
    cr_assert_eq(n, 4);
    cr_assert_eq(ids[0], 1);
    cr_assert_eq(ids[1], 5);
    cr_assert_eq(ids[2], 4);
    cr_assert_eq(ids[3], 4);
    /* "c" has no token, no <0x63>, no one-byte token */
    cr_assert_eq(hr_tokenize(v, "c", 1, false, false, ids, 16), -EILSEQ);
    char buf[8];
    /* with remove_special: BOS and the trailing EOS go, the space stays */
    int32_t seq[] = {1, 5, 4, 4};
    n = vocab_detokenize(v, seq, 4, true, false, buf, sizeof buf);
    cr_assert_eq(n, 3);
    cr_assert_arr_eq(buf, " ab", 3);
    vocab_free(v);
}

/* A hand-made byte-level BPE vocabulary: merge ranks decide, not scores;
 * a missing one-byte token is dropped. */
Test(vocab, tiny_bpe)
{
    const char *toks[] = {"a", "b", "c", "ab", "bc", "\xc4\xa0", "\xc4\xa0" "a"};
    const char *merges[] = {"b c", "a b", "\xc4\xa0 a"};
    struct gguf_writer *w = gguf_writer_new();
    gguf_writer_add_str(w, "tokenizer.ggml.model", "gpt2");
    gguf_writer_add_str(w, "tokenizer.ggml.pre", "gpt-2");
    gguf_writer_add_str_arr(w, "tokenizer.ggml.tokens", toks, 7);
    gguf_writer_add_str_arr(w, "tokenizer.ggml.merges", merges, 3);
    struct hr_vocab *v = NULL;
    struct hr_err err;
    cr_assert_eq(load_image(w, &v, &err), 0, "%s", err.msg);
    cr_assert_eq(hr_vocab_bos(v), -1); /* default 11 is out of range */
    cr_assert_not(hr_vocab_add_bos(v));
    int32_t ids[16];
    /* "abc": "b c" has the lower rank, so a + bc */
    cr_assert_eq(hr_tokenize(v, "abc", 3, true, false, ids, 16), 2);
    cr_assert_eq(ids[0], 0);
    cr_assert_eq(ids[1], 4);
    /* " ab": pieces " ab"; Ġ a merges (rank 2) only after... a b (rank 1) */
    cr_assert_eq(hr_tokenize(v, " ab", 3, false, false, ids, 16), 2);
    cr_assert_eq(ids[0], 5);
    cr_assert_eq(ids[1], 3);
    /* "d" is not in the vocabulary at all: dropped */
    cr_assert_eq(hr_tokenize(v, "adb", 3, false, false, ids, 16), 2);
    char buf[8];
    int32_t seq[] = {6, 4};
    cr_assert_eq(hr_token_to_piece(v, 5, false, buf, sizeof buf), 1);
    cr_assert_eq(buf[0], ' ');
    cr_assert_eq(vocab_detokenize(v, seq, 2, false, false, buf, sizeof buf), 4);
    cr_assert_arr_eq(buf, " abc", 4);
    vocab_free(v);
}

/* EOG by name and by FIM detection, and the harmony exception for <|end|>. */
static struct hr_vocab *eog_vocab(bool harmony)
{
    const char *toks[] = {"a", "b", "<|endoftext|>", "<|fim_prefix|>", "<|fim_pad|>",
                          "<|repo_name|>", "<|end|>", "<|im_start|>", "<|return|>", "<|call|>"};
    const char *m[] = {"a b"};
    struct gguf_writer *w = gguf_writer_new();
    gguf_writer_add_str(w, "tokenizer.ggml.model", "gpt2");
    gguf_writer_add_str(w, "tokenizer.ggml.pre", "qwen2");
    gguf_writer_add_str_arr(w, "tokenizer.ggml.tokens", toks, harmony ? 10 : 8);
    gguf_writer_add_str_arr(w, "tokenizer.ggml.merges", m, 1);
    gguf_writer_add_u32(w, "tokenizer.ggml.eos_token_id", 2);
    struct hr_vocab *v = NULL;
    struct hr_err err;
    cr_assert_eq(load_image(w, &v, &err), 0, "%s", err.msg);
    return v;
}

Test(vocab, eog_rules)
{
    char buf[32];
    for (int harmony = 0; harmony < 2; harmony++) {
        struct hr_vocab *v = eog_vocab(harmony);
        cr_assert(hr_vocab_is_eog(v, 2));           /* eos, <|endoftext|> */
        cr_assert_not(hr_vocab_is_eog(v, 3));       /* FIM prefix: control, not EOG */
        cr_assert(hr_vocab_is_eog(v, 4));           /* FIM pad */
        cr_assert(hr_vocab_is_eog(v, 5));           /* FIM repo */
        cr_assert_not(hr_vocab_is_eog(v, 7));
        cr_assert_eq(hr_vocab_is_eog(v, 6), !harmony, "<|end|> harmony %d", harmony);
        /* detected tokens became control tokens: silent unless asked */
        cr_assert_eq(hr_token_to_piece(v, 3, false, buf, sizeof buf), 0);
        cr_assert_eq(hr_token_to_piece(v, 3, true, buf, sizeof buf), 14);
        /* harmony's <|end|> is user-defined: always printed */
        cr_assert_eq(hr_token_to_piece(v, 6, false, buf, sizeof buf), harmony ? 7 : 0);
        if (harmony) {
            cr_assert(hr_vocab_is_eog(v, 8) && hr_vocab_is_eog(v, 9));
            /* and user-defined tokens are matched even without parse_special */
            int32_t ids[8];
            cr_assert_eq(hr_tokenize(v, "a<|end|>b", 9, false, false, ids, 8), 3);
            cr_assert_eq(ids[1], 6);
        }
        vocab_free(v);
    }
}

/* Whole-sequence detokenization tidies spaces for gpt-2 and llama3 only
 * (FORMATS.md §5.5); SentencePiece and qwen2 give the text back as it was. */
Test(vocab, clean_spaces)
{
    static const char in[] = "a , b . c ! d ? e ' f g 's h 'm i 're j 've k 't l 'd m 'll";
    static const char tidy[] = "a, b. c! d? e'f g's h'm i're j've k 't l 'd m 'll";
    static const struct {
        const char *vocab;
        const char *want;
    } exp[] = {{"gpt-2", tidy}, {"llama-bpe", tidy}, {"qwen2", in}, {"llama-spm", in}};
    int checked = 0;
    for (size_t k = 0; k < sizeof exp / sizeof exp[0]; k++) {
        const char *path = vocab_file(exp[k].vocab, "");
        if (!path)
            continue;
        struct hr_vocab *v = load_vocab(path);
        int32_t ids[128];
        char out[256];
        int64_t n = tokenize(v, in, strlen(in), false, false, ids, 128);
        int64_t m = vocab_detokenize(v, ids, (size_t)n, false, false, out, sizeof out);
        cr_assert(m >= 0 && (size_t)m < sizeof out);
        out[m] = '\0';
        cr_assert_str_eq(out, exp[k].want, "%s", exp[k].vocab);
        /* streaming pieces are never tidied */
        size_t o = 0;
        for (int64_t i = 0; i < n; i++)
            o += (size_t)hr_token_to_piece(v, ids[i], false, out + o, sizeof out - o);
        cr_assert_eq(o, strlen(in) + (strcmp(exp[k].vocab, "llama-spm") == 0));
        vocab_free(v);
        checked++;
    }
    cr_assert_geq(checked, 2);
}
