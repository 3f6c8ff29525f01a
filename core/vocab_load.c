/*
 * vocab_load.c — building a vocabulary from the tokenizer.* keys of a GGUF
 * file (FORMATS.md §5.1, §7).
 *
 * Loading follows llama.cpp's order, because later steps see what earlier
 * ones decided: token types become attributes; the bos/eos/... keys override
 * the per-model defaults; tokens named like an EOT/EOM/FIM token are found by
 * text (lowest id first, where llama.cpp takes its hash-map order) and forced
 * to CONTROL; CONTROL tokens named "unused" are marked UNUSED; the EOG set is
 * built; then the special-token candidates are listed, longest text first
 * (ties: lower id; llama.cpp's sort is unstable there); finally phi-3 gets
 * its RSTRIP rule. Everything kept is copied: the vocabulary does not point
 * into the gguf_file.
 */
#include "err.h"
#include "vocab_impl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Smallest power of two >= 2n (at least 16): tables stay at most half full. */
static size_t table_size(size_t n)
{
    size_t s = 16;
    while (s < 2 * n)
        s *= 2;
    return s;
}

#define KEY_MODEL "tokenizer.ggml.model"
#define KEY_PRE "tokenizer.ggml.pre"
#define KEY_TOKENS "tokenizer.ggml.tokens"
#define KEY_SCORES "tokenizer.ggml.scores"
#define KEY_TYPES "tokenizer.ggml.token_type"
#define KEY_MERGES "tokenizer.ggml.merges"

/* BPE pre-tokenizer names (tokenizer.ggml.pre) and what each implies. */
static const struct pre_def {
    const char *name;
    enum uni_pre pre;
    bool ignore_merges, add_bos, clean_spaces;
} pre_defs[] = {
    {"default", UNI_PRE_DEFAULT, false, false, true},
    {"llama3", UNI_PRE_LLAMA3, true, true, true},
    {"llama-v3", UNI_PRE_LLAMA3, true, true, true},
    {"llama-bpe", UNI_PRE_LLAMA3, true, true, true},
    {"falcon3", UNI_PRE_LLAMA3, true, true, true},
    {"falcon-h1", UNI_PRE_LLAMA3, true, true, true},
    {"pixtral", UNI_PRE_LLAMA3, true, true, true},
    {"midm-2.0", UNI_PRE_LLAMA3, true, true, true},
    {"lfm2", UNI_PRE_LLAMA3, true, true, true},
    {"qwen2", UNI_PRE_QWEN2, false, false, false},
    {"deepseek-r1-qwen", UNI_PRE_QWEN2, false, false, false},
    {"megrez", UNI_PRE_QWEN2, false, false, true}, /* llama.cpp keeps clean_spaces */
    {"qwen35", UNI_PRE_QWEN35, false, false, false},
    {"gpt-2", UNI_PRE_GPT2, false, false, true},
    {"phi-2", UNI_PRE_GPT2, false, false, true},
    {"jina-es", UNI_PRE_GPT2, false, false, true},
    {"jina-de", UNI_PRE_GPT2, false, false, true},
    {"jina-v2-es", UNI_PRE_GPT2, false, false, true},
    {"jina-v2-de", UNI_PRE_GPT2, false, false, true},
    {"gigachat", UNI_PRE_GPT2, false, false, true},
    {"a.x-4.0", UNI_PRE_GPT2, false, false, true},
    {"mellum", UNI_PRE_GPT2, false, false, true},
};

/* Texts that name special tokens when the GGUF does not (FORMATS.md §7).
 * DeepSeek's use U+FF5C (fullwidth vertical line) and U+2581. */
#define BAR "\xef\xbd\x9c"
#define SP VOCAB_SPM_SPACE
#define DEEPSEEK_EOS "<" BAR "end" SP "of" SP "sentence" BAR ">"
static const char *const eot_names[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>",
    "<EOT>", "_<EOT>", "[EOT]", DEEPSEEK_EOS, "<end_of_utterance>", NULL};
static const char *const eom_names[] = {"<|eom_id|>", NULL};
static const char *const fim_pre_names[] = {
    "<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<" BAR "fim" SP "begin" BAR ">",
    "<PRE>", SP "<PRE>", "<|code_prefix|>", "<|prefix|>", NULL};
static const char *const fim_suf_names[] = {
    "<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<" BAR "fim" SP "hole" BAR ">",
    "<SUF>", SP "<SUF>", "<|code_suffix|>", "<|suffix|>", NULL};
static const char *const fim_mid_names[] = {
    "<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<" BAR "fim" SP "end" BAR ">",
    "<MID>", SP "<MID>", "<|code_middle|>", "<|middle|>", NULL};
static const char *const fim_pad_names[] = {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>",
                                            "[PAD]", NULL};
static const char *const fim_rep_names[] = {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>",
                                            "<REPO>", "<reponame>", NULL};
static const char *const fim_sep_names[] = {"<|file_sep|>", NULL};
static const char *const eog_names[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>",
    "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]",
    "<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
    DEEPSEEK_EOS, "[e~[", NULL};
#undef SP
#undef BAR

static bool name_in(const char *text, const char *const *names)
{
    for (; *names; names++)
        if (strcmp(text, *names) == 0)
            return true;
    return false;
}

static int64_t key_offset(const struct gguf_file *f, const char *key)
{
    const struct gguf_kv *kv = gguf_find_kv(f, key);
    return kv ? (int64_t)kv->offset : -1;
}

/* The value of `key` if it is an array of elem_type (or alt_type) elements;
 * -ENOENT when absent, -EINVAL with a message for any other type. */
static int get_array(const struct gguf_file *f, const char *key, uint32_t elem_type,
                     uint32_t alt_type, const struct gguf_value **out, struct hr_err *err)
{
    const struct gguf_kv *kv = gguf_find_kv(f, key);
    if (!kv)
        return -ENOENT;
    if (kv->val.type != GGUF_ARRAY ||
        (kv->val.arr.type != elem_type && kv->val.arr.type != alt_type))
        return hr_err_set(err, -EINVAL, (int64_t)kv->offset,
                          "%s: invalid type (expected an array of %s)", key,
                          elem_type == GGUF_STRING    ? "strings"
                          : elem_type == GGUF_INT32   ? "int32"
                                                      : "float32 or int32");
    *out = &kv->val;
    return 0;
}

/* Optional keys: absent leaves *out alone and err untouched. The string
 * getter returns 0 found, 1 absent, < 0 error. */
static int get_str_opt(const struct gguf_file *f, const char *key, struct gguf_str *out,
                       struct hr_err *err)
{
    if (!gguf_find_kv(f, key))
        return 1;
    return gguf_get_str(f, key, out, err);
}

static int get_bool_opt(const struct gguf_file *f, const char *key, bool *out, struct hr_err *err)
{
    if (!gguf_find_kv(f, key))
        return 0;
    return gguf_get_bool(f, key, out, err);
}

static bool str_contains_ci(struct gguf_str s, const char *needle)
{
    size_t nl = strlen(needle);
    for (size_t i = 0; i + nl <= s.len; i++) {
        size_t k = 0;
        while (k < nl) {
            char c = s.ptr[i + k];
            if (c >= 'A' && c <= 'Z')
                c = (char)(c - 'A' + 'a');
            if (c != needle[k])
                break;
            k++;
        }
        if (k == nl)
            return true;
    }
    return false;
}

/* Token texts: copy into the arena and index them. */
static int load_tokens(struct hr_vocab *v, const struct gguf_file *f, struct hr_err *err)
{
    const struct gguf_value *toks = NULL, *scores = NULL, *types = NULL;
    int rc;

    rc = get_array(f, KEY_TOKENS, GGUF_STRING, GGUF_STRING, &toks, err);
    if (rc == -ENOENT)
        return hr_err_set(err, -EINVAL, -1, "%s: missing", KEY_TOKENS);
    if (rc < 0)
        return rc;
    if (toks->arr.n == 0 || toks->arr.n >= INT32_MAX)
        return hr_err_set(err, -EINVAL, key_offset(f, KEY_TOKENS), "%s: %llu tokens", KEY_TOKENS,
                          (unsigned long long)toks->arr.n);
    const uint32_t n = (uint32_t)toks->arr.n;

    rc = get_array(f, KEY_SCORES, GGUF_FLOAT32, GGUF_INT32, &scores, err);
    if (rc < 0 && rc != -ENOENT)
        return rc;
    if (scores && scores->arr.n < n)
        return hr_err_set(err, -EINVAL, key_offset(f, KEY_SCORES),
                          "%s: %llu scores for %u tokens", KEY_SCORES,
                          (unsigned long long)scores->arr.n, n);
    rc = get_array(f, KEY_TYPES, GGUF_INT32, GGUF_INT32, &types, err);
    if (rc < 0 && rc != -ENOENT)
        return rc;
    if (types && types->arr.n < n)
        return hr_err_set(err, -EINVAL, key_offset(f, KEY_TYPES),
                          "%s: %llu token types for %u tokens", KEY_TYPES,
                          (unsigned long long)types->arr.n, n);

    /* arena size: every text plus its NUL ("[EMPTY_<id>]" for empty ones) */
    uint64_t total = 0;
    for (uint32_t i = 0; i < n; i++)
        total += (toks->arr.strs[i].len ? toks->arr.strs[i].len : 20) + 1;
    if (total > UINT32_MAX)
        return hr_err_set(err, -EINVAL, key_offset(f, KEY_TOKENS), "%s: texts too large",
                          KEY_TOKENS);

    v->n_tokens = (int32_t)n;
    v->tok = calloc(n, sizeof *v->tok);
    v->text = malloc((size_t)total);
    v->tok_mask = table_size(n) - 1;
    v->tok_slot = calloc(v->tok_mask + 1, sizeof *v->tok_slot);
    if (!v->tok || !v->text || !v->tok_slot)
        return -ENOMEM;

    uint32_t off = 0;
    for (uint32_t i = 0; i < n; i++) {
        struct gguf_str s = toks->arr.strs[i];
        struct vocab_token *t = &v->tok[i];
        t->off = off;
        if (s.len) {
            memcpy(v->text + off, s.ptr, s.len);
            t->len = (uint32_t)s.len;
        } else {
            t->len = (uint32_t)snprintf(v->text + off, 21, "[EMPTY_%u]", i);
        }
        v->text[off + t->len] = '\0';
        off += t->len + 1;

        uint64_t hv = vocab_hash(VOCAB_HASH_SEED, v->text + t->off, t->len);
        size_t h = vocab_slot(hv, v->tok_mask);
        while (v->tok_slot[h]) {
            const struct vocab_token *o = &v->tok[v->tok_slot[h] - 1];
            if (o->len == t->len && memcmp(v->text + o->off, v->text + t->off, t->len) == 0)
                return hr_err_set(err, -EINVAL, key_offset(f, KEY_TOKENS),
                                  "%s: duplicate token '%.*s' (ids %u and %u)", KEY_TOKENS,
                                  (int)(t->len > 64 ? 64 : t->len), v->text + t->off,
                                  v->tok_slot[h] - 1, i);
            h = (h + 1) & v->tok_mask;
        }
        v->tok_slot[h] = i + 1;

        if (scores)
            t->score = scores->arr.type == GGUF_FLOAT32 ? (float)gguf_arr_float(scores, i)
                                                        : (float)gguf_arr_int(scores, i);
        t->attr = VATTR_NORMAL;
        if (types) {
            switch (gguf_arr_int(types, i)) {
            case 1: t->attr = VATTR_NORMAL; break;
            case 2: t->attr = VATTR_UNKNOWN; break;
            case 3: t->attr = VATTR_CONTROL; break;
            case 4: t->attr = VATTR_USER_DEFINED; break;
            case 5: t->attr = VATTR_UNUSED; break;
            case 6: t->attr = VATTR_BYTE; break;
            default: t->attr = 0; break; /* undefined */
            }
        }
    }
    return 0;
}

/* BPE merges "A B" (split at the first space at index >= 1); the first of
 * duplicate pairs keeps its rank, as with llama.cpp's map emplace. */
static int load_merges(struct hr_vocab *v, const struct gguf_file *f, struct hr_err *err)
{
    const struct gguf_value *arr = NULL;
    int rc = get_array(f, KEY_MERGES, GGUF_STRING, GGUF_STRING, &arr, err);
    if (rc == -ENOENT)
        return hr_err_set(err, -EINVAL, -1, "%s: missing (required for gpt2 vocabularies)",
                          KEY_MERGES);
    if (rc < 0)
        return rc;
    if (arr->arr.n >= INT32_MAX)
        return hr_err_set(err, -EINVAL, key_offset(f, KEY_MERGES), "%s: too many merges",
                          KEY_MERGES);
    const uint32_t n = (uint32_t)arr->arr.n;
    uint64_t total = 0;
    for (uint32_t i = 0; i < n; i++)
        total += arr->arr.strs[i].len;
    if (total > UINT32_MAX)
        return hr_err_set(err, -EINVAL, key_offset(f, KEY_MERGES), "%s: too large", KEY_MERGES);

    v->n_merges = (int32_t)n;
    v->merge = calloc(n ? n : 1, sizeof *v->merge);
    v->merge_text = malloc(total ? (size_t)total : 1);
    v->merge_mask = table_size(n) - 1;
    v->merge_slot = calloc(v->merge_mask + 1, sizeof *v->merge_slot);
    if (!v->merge || !v->merge_text || !v->merge_slot)
        return -ENOMEM;

    uint32_t off = 0;
    for (uint32_t i = 0; i < n; i++) {
        struct gguf_str s = arr->arr.strs[i];
        const char *sp = s.len > 1 ? memchr(s.ptr + 1, ' ', s.len - 1) : NULL;
        if (!sp)
            continue; /* pairs ("", "") never match a symbol */
        struct vocab_merge *m = &v->merge[i];
        m->off = off;
        m->len_a = (uint32_t)(sp - s.ptr);
        m->len_b = (uint32_t)(s.len - m->len_a - 1);
        memcpy(v->merge_text + off, s.ptr, m->len_a);
        memcpy(v->merge_text + off + m->len_a, sp + 1, m->len_b);
        off += m->len_a + m->len_b;

        const char *a = v->merge_text + m->off, *b = a + m->len_a;
        size_t h = vocab_slot(vocab_merge_hash(a, m->len_a, b, m->len_b), v->merge_mask);
        bool dup = false;
        while (v->merge_slot[h]) {
            const struct vocab_merge *o = &v->merge[v->merge_slot[h] - 1];
            if (o->len_a == m->len_a && o->len_b == m->len_b &&
                memcmp(v->merge_text + o->off, a, m->len_a + m->len_b) == 0) {
                dup = true;
                break;
            }
            h = (h + 1) & v->merge_mask;
        }
        if (!dup)
            v->merge_slot[h] = i + 1;
    }
    return 0;
}

/* The special-token id keys; out-of-range values are ignored (the default
 * stays), out-of-range defaults are disabled. */
static int load_special_ids(struct hr_vocab *v, const struct gguf_file *f, struct hr_err *err)
{
    const struct {
        const char *key;
        int32_t *id;
    } keys[] = {
        {"tokenizer.ggml.bos_token_id", &v->bos},
        {"tokenizer.ggml.eos_token_id", &v->eos},
        {"tokenizer.ggml.eot_token_id", &v->eot},
        {"tokenizer.ggml.eom_token_id", &v->eom},
        {"tokenizer.ggml.unknown_token_id", &v->unk},
        {"tokenizer.ggml.seperator_token_id", &v->sep},
        {"tokenizer.ggml.padding_token_id", &v->pad},
        {"tokenizer.ggml.mask_token_id", &v->mask},
        {"tokenizer.ggml.fim_pre_token_id", &v->fim_pre},
        {"tokenizer.ggml.fim_suf_token_id", &v->fim_suf},
        {"tokenizer.ggml.fim_mid_token_id", &v->fim_mid},
        {"tokenizer.ggml.fim_pad_token_id", &v->fim_pad},
        {"tokenizer.ggml.fim_rep_token_id", &v->fim_rep},
        {"tokenizer.ggml.fim_sep_token_id", &v->fim_sep},
        /* deprecated spellings */
        {"tokenizer.ggml.prefix_token_id", &v->fim_pre},
        {"tokenizer.ggml.suffix_token_id", &v->fim_suf},
        {"tokenizer.ggml.middle_token_id", &v->fim_mid},
    };

    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        int32_t *id = keys[k].id;
        if (*id >= v->n_tokens)
            *id = -1;
        uint32_t val;
        if (!gguf_find_kv(f, keys[k].key))
            continue;
        int rc = gguf_get_u32(f, keys[k].key, &val, err);
        if (rc < 0)
            return rc;
        if (val < (uint32_t)v->n_tokens)
            *id = (int32_t)val;
    }
    return 0;
}

static void force_control(struct hr_vocab *v, int32_t id)
{
    v->tok[id].attr |= VATTR_CONTROL;
}

/* EOT/EOM/FIM by text, UNUSED marking, the EOG set and its exceptions. */
static void detect_special(struct hr_vocab *v)
{
    const struct {
        int32_t *id;
        const char *const *names;
    } auto_ids[] = {
        {&v->eot, eot_names},         {&v->eom, eom_names},         {&v->fim_pre, fim_pre_names},
        {&v->fim_suf, fim_suf_names}, {&v->fim_mid, fim_mid_names}, {&v->fim_pad, fim_pad_names},
        {&v->fim_rep, fim_rep_names}, {&v->fim_sep, fim_sep_names},
    };
    const size_t n_auto = sizeof auto_ids / sizeof auto_ids[0];
    bool unset[sizeof auto_ids / sizeof auto_ids[0]];

    for (size_t k = 0; k < n_auto; k++)
        unset[k] = *auto_ids[k].id < 0;
    for (int32_t id = 0; id < v->n_tokens; id++) {
        const char *text = vocab_text(v, id);
        for (size_t k = 0; k < n_auto; k++) {
            if (unset[k] && *auto_ids[k].id < 0 && name_in(text, auto_ids[k].names)) {
                *auto_ids[k].id = id;
                force_control(v, id);
            }
        }
    }

    for (int32_t id = 0; id < v->n_tokens; id++) {
        struct vocab_token *t = &v->tok[id];
        if ((t->attr & VATTR_CONTROL) && strstr(v->text + t->off, "unused"))
            t->attr |= VATTR_UNUSED;
    }

    const int32_t by_id[] = {v->fim_pad, v->fim_rep, v->fim_sep, v->eos, v->eot, v->eom};
    for (size_t k = 0; k < sizeof by_id / sizeof by_id[0]; k++)
        if (by_id[k] >= 0)
            v->tok[by_id[k]].attr |= VATTR_EOG;
    for (int32_t id = 0; id < v->n_tokens; id++) {
        if (name_in(vocab_text(v, id), eog_names)) {
            v->tok[id].attr |= VATTR_EOG;
            force_control(v, id);
        }
    }

    /* harmony / solar-open: "<|end|>" is not an end of generation there */
    int32_t end_id = -1, s_id = -1;
    bool has_return = false, has_call = false, has_flush = false, has_tool_response = false;
    for (int32_t id = 0; id < v->n_tokens; id++) {
        if (!(v->tok[id].attr & VATTR_EOG))
            continue;
        const char *text = vocab_text(v, id);
        if (strcmp(text, "<|return|>") == 0)
            has_return = true;
        else if (strcmp(text, "<|call|>") == 0 || strcmp(text, "<|calls|>") == 0)
            has_call = true;
        else if (strcmp(text, "<|flush|>") == 0)
            has_flush = true;
        else if (strcmp(text, "<|end|>") == 0)
            end_id = id;
        else if (strcmp(text, "<|tool_response>") == 0)
            has_tool_response = true;
        else if (strcmp(text, "</s>") == 0)
            s_id = id;
    }
    if (end_id >= 0 && has_call && (has_return || has_flush))
        v->tok[end_id].attr = VATTR_USER_DEFINED;
    /* gemma4 / paddleocr: "</s>" is an ordinary token there */
    if (s_id >= 0 && has_tool_response)
        v->tok[s_id].attr = VATTR_NORMAL;
}

struct by_len {
    uint32_t len;
    int32_t id;
};

/* Longest first; equal lengths by id, so the order is reproducible. */
static int cmp_by_len(const void *pa, const void *pb)
{
    const struct by_len *a = pa, *b = pb;
    if (a->len != b->len)
        return a->len > b->len ? -1 : 1;
    return (a->id > b->id) - (a->id < b->id);
}

static int list_specials(struct hr_vocab *v)
{
    const uint32_t kinds = VATTR_CONTROL | VATTR_USER_DEFINED | VATTR_UNKNOWN;
    struct by_len *tmp;
    size_t n = 0;

    for (int32_t id = 0; id < v->n_tokens; id++)
        n += (v->tok[id].attr & kinds) != 0;
    v->special = malloc((n ? n : 1) * sizeof *v->special);
    tmp = malloc((n ? n : 1) * sizeof *tmp);
    if (!v->special || !tmp) {
        free(tmp);
        return -ENOMEM;
    }
    for (int32_t id = 0; id < v->n_tokens; id++)
        if (v->tok[id].attr & kinds)
            tmp[v->n_special++] = (struct by_len){v->tok[id].len, id};
    qsort(tmp, v->n_special, sizeof *tmp, cmp_by_len);
    for (size_t i = 0; i < v->n_special; i++)
        v->special[i] = tmp[i].id;
    free(tmp);
    return 0;
}

static void set_attr(struct hr_vocab *v, const char *text, uint32_t attr, bool on)
{
    int32_t id = vocab_find(v, text, strlen(text));
    if (id < 0)
        return;
    if (on)
        v->tok[id].attr |= attr;
    else
        v->tok[id].attr &= ~attr;
}

int vocab_load(const struct gguf_file *f, struct hr_vocab **out, struct hr_err *err)
{
    struct hr_vocab *v = NULL;
    struct gguf_str model, pre = {"", 0}, name = {"", 0};
    int rc;

    rc = get_str_opt(f, KEY_MODEL, &model, err);
    if (rc == 1)
        return hr_err_set(err, -EINVAL, -1, "%s: missing", KEY_MODEL);
    if (rc < 0)
        return rc;
    int has_pre = get_str_opt(f, KEY_PRE, &pre, err);
    if (has_pre < 0)
        return has_pre;
    if ((rc = get_str_opt(f, "general.name", &name, err)) < 0)
        return rc;

    v = calloc(1, sizeof *v);
    if (!v)
        return -ENOMEM;
    v->bos = v->eos = v->eot = v->eom = v->unk = v->sep = v->pad = v->mask = -1;
    v->fim_pre = v->fim_suf = v->fim_mid = v->fim_pad = v->fim_rep = v->fim_sep = -1;

    if (gguf_str_eq(model, "llama")) {
        v->type = VOCAB_SPM;
        v->pre = UNI_PRE_DEFAULT; /* the pre-tokenizer name is ignored */
        v->bos = 1;
        v->eos = 2;
        v->unk = 0;
        v->add_bos = true;
        v->add_space_prefix = true;
    } else if (gguf_str_eq(model, "gpt2")) {
        const struct pre_def *d = NULL;
        v->type = VOCAB_BPE;
        v->bos = 11;
        v->eos = 11;
        if (has_pre == 1) {
            d = &pre_defs[0]; /* missing: "default" */
        } else {
            for (size_t i = 0; i < sizeof pre_defs / sizeof pre_defs[0]; i++)
                if (gguf_str_eq(pre, pre_defs[i].name))
                    d = &pre_defs[i];
        }
        if (!d) {
            rc = hr_err_set(err, -ENOTSUP, key_offset(f, KEY_PRE),
                            "unsupported pre-tokenizer '%.*s' (%s)",
                            (int)(pre.len > 64 ? 64 : pre.len), pre.ptr, KEY_PRE);
            goto fail;
        }
        v->pre = d->pre;
        v->ignore_merges = d->ignore_merges;
        v->add_bos = d->add_bos;
        v->clean_spaces = d->clean_spaces;
    } else {
        rc = hr_err_set(err, -ENOTSUP, key_offset(f, KEY_MODEL),
                        "unsupported tokenizer model '%.*s' (%s)",
                        (int)(model.len > 64 ? 64 : model.len), model.ptr, KEY_MODEL);
        goto fail;
    }
    if ((rc = get_bool_opt(f, "tokenizer.ggml.add_space_prefix", &v->add_space_prefix, err)) < 0)
        goto fail;

    if ((rc = load_tokens(v, f, err)) < 0)
        goto fail;
    if (v->type == VOCAB_BPE && (rc = load_merges(v, f, err)) < 0)
        goto fail;
    if ((rc = load_special_ids(v, f, err)) < 0)
        goto fail;
    if ((rc = get_bool_opt(f, "tokenizer.ggml.add_bos_token", &v->add_bos, err)) < 0 ||
        (rc = get_bool_opt(f, "tokenizer.ggml.add_eos_token", &v->add_eos, err)) < 0)
        goto fail;
    if (v->add_bos && v->bos < 0) {
        rc = hr_err_set(err, -EINVAL, key_offset(f, "tokenizer.ggml.add_bos_token"),
                        "tokenizer.ggml.add_bos_token is true but there is no BOS token");
        goto fail;
    }
    if (v->add_eos && v->eos < 0) {
        rc = hr_err_set(err, -EINVAL, key_offset(f, "tokenizer.ggml.add_eos_token"),
                        "tokenizer.ggml.add_eos_token is true but there is no EOS token");
        goto fail;
    }

    detect_special(v);
    if ((rc = list_specials(v)) < 0)
        goto fail;

    if (str_contains_ci(name, "phi-3") || str_contains_ci(name, "phi3")) {
        for (size_t i = 0; i < v->n_special; i++)
            v->tok[v->special[i]].attr |= VATTR_RSTRIP;
        set_attr(v, "</s>", VATTR_RSTRIP, true);
        set_attr(v, "<unk>", VATTR_RSTRIP, false);
        set_attr(v, "<s>", VATTR_RSTRIP, false);
        set_attr(v, "<|endoftext|>", VATTR_RSTRIP, false);
    } else if (has_pre == 0 && (str_contains_ci(pre, "jina-v2-de") ||
                                str_contains_ci(pre, "jina-v2-es"))) {
        set_attr(v, "<mask>", VATTR_LSTRIP, true);
    }

    *out = v;
    return 0;
fail:
    vocab_free(v);
    return rc;
}

void vocab_free(struct hr_vocab *v)
{
    if (!v)
        return;
    free(v->tok);
    free(v->text);
    free(v->tok_slot);
    free(v->merge);
    free(v->merge_text);
    free(v->merge_slot);
    free(v->special);
    free(v);
}
