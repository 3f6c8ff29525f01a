/*
 * cmd_mkmodel.c — `hearth mkmodel`: a random-weight GGUF with the exact
 * tensor shapes, hyperparameters and vocabulary size of a published model,
 * so that benchmarks need no download.
 *
 *   hearth mkmodel --shape NAME --type TYPE -o FILE [--seed S] [-t THREADS]
 *   hearth mkmodel --shape NAME --type TYPE --plan   (tensors, types, sizes; no file)
 *   hearth mkmodel --list
 *
 * What is real: every key the converter (convert_hf_to_gguf) writes for the
 * architecture, every tensor name and shape (FORMATS.md §4.1-4.2), the
 * vocabulary size and the ids of the special tokens, the Llama 3 RoPE
 * frequency factors, and the per-tensor types llama-quantize would choose for
 * the requested mix (FORMATS.md §2.4). What is synthetic: the weights (random,
 * σ = 0.02 like a fresh initialisation; norm weights 1, biases σ = 0.01) and
 * the vocabulary texts (a valid byte-level BPE vocabulary: the 256 byte
 * tokens in GPT-2 order, a few hundred merges of common English words, then
 * unique filler words, then the family's special tokens). The model computes
 * nonsense at exactly the cost of the real one.
 *
 * Random values come from a counter-based generator keyed by (seed, tensor,
 * row), so a file depends only on its arguments, not on the thread count.
 * Quantization uses the reference quantizers (quant_quantize), spread over a
 * thread pool by row chunks; the whole file is built in memory and written
 * atomically by the GGUF writer.
 *
 * Tensor types come from quantize_choose_type (core/quantize.h), the same
 * rules `hearth quantize` applies, so a random file has the type mix of the
 * file llama-quantize would make from the real model.
 *
 * (One subject, a bit past 800 lines; the vocabulary builder is the part to
 * move into its own file if this grows.)
 */
#include "cli.h"
#include "err.h"
#include "gguf.h"
#include "pool.h"
#include "quant.h"
#include "quantize.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- model shapes ------------------------------------------------------------ */

enum vocab_family {
    FAM_SMOLLM, /* 17 special tokens first, then the BPE vocabulary */
    FAM_QWEN2,  /* BPE vocabulary, 22 specials, [PADn] up to n_vocab */
    FAM_QWEN3,  /* as qwen2 with 4 more specials (<think> ...) */
    FAM_LLAMA3, /* BPE vocabulary, then <|begin_of_text|> ... reserved specials */
};

struct shape {
    const char *name, *arch, *general_name;
    int64_t n_embd, n_layer, n_head, n_head_kv;
    int64_t head_dim; /* 0: n_embd / n_head, not written to the file */
    int64_t n_ff, n_vocab, n_ctx;
    float rope_base, eps;
    bool qkv_bias, qk_norm;
    float llama3_factor; /* > 0: rope_freqs.weight with Llama 3 scaling */
    enum vocab_family fam;
    int64_t n_special; /* ids reserved for specials (and padding) */
    bool hidden;       /* small shapes for the tests, not listed */
};

/* Published configs (config.json of each HF repository). All five tie the
 * output to the token embedding, so the files have no output.weight. */
static const struct shape shapes[] = {
    {"smollm2-135m", "llama", "SmolLM2 135M", 576, 30, 9, 3, 0, 1536, 49152, 8192, 100000.0f,
     1e-5f, false, false, 0, FAM_SMOLLM, 17, false},
    {"qwen2.5-0.5b", "qwen2", "Qwen2.5 0.5B", 896, 24, 14, 2, 0, 4864, 151936, 32768, 1e6f, 1e-6f,
     true, false, 0, FAM_QWEN2, 151936 - 151643, false},
    {"qwen2.5-1.5b", "qwen2", "Qwen2.5 1.5B", 1536, 28, 12, 2, 0, 8960, 151936, 32768, 1e6f,
     1e-6f, true, false, 0, FAM_QWEN2, 151936 - 151643, false},
    {"qwen3-0.6b", "qwen3", "Qwen3 0.6B", 1024, 28, 16, 8, 128, 3072, 151936, 40960, 1e6f, 1e-6f,
     false, true, 0, FAM_QWEN3, 151936 - 151643, false},
    {"llama-3.2-1b", "llama", "Llama 3.2 1B", 2048, 16, 32, 8, 64, 8192, 128256, 131072,
     500000.0f, 1e-5f, false, false, 32.0f, FAM_LLAMA3, 256, false},
    /* tests: a few MB each. tiny-qwen2's width 128 makes K-quants fall back. */
    {"tiny-llama", "llama", "tiny llama", 256, 2, 4, 2, 64, 512, 1024, 2048, 500000.0f, 1e-5f,
     false, false, 32.0f, FAM_LLAMA3, 16, true},
    {"tiny-qwen2", "qwen2", "tiny qwen2", 128, 2, 4, 2, 0, 512, 1024, 2048, 1e6f, 1e-6f, true,
     false, 0, FAM_QWEN2, 64, true},
    {"tiny-qwen3", "qwen3", "tiny qwen3", 256, 2, 4, 2, 128, 512, 1024, 2048, 1e6f, 1e-6f, false,
     true, 0, FAM_QWEN3, 64, true},
};

/* ---- tensor kinds ------------------------------------------------------------- */

enum tkind {
    T_NORM, T_BIAS, T_ROPE_FREQS, /* one-dimensional: always F32 */
    T_WEIGHT,                     /* matrices: the mix decides */
};

static bool is_quantized(uint32_t t)
{
    return t != HR_TYPE_F32 && t != HR_TYPE_F16 && t != HR_TYPE_BF16;
}

/* ---- the synthetic vocabulary --------------------------------------------------- */

enum { TT_NORMAL = 1, TT_CONTROL = 3, TT_USER_DEFINED = 4, TT_UNUSED = 5 };

struct vocab {
    char *arena;  /* every text, NUL-terminated */
    size_t n_arena, cap_arena;
    size_t *off;  /* [n] offsets of the token texts */
    int32_t *type; /* [n] token types */
    int64_t n, cap;
    size_t *merge_off; /* merges "A B" in the arena */
    int64_t n_merges, cap_merges;
    int64_t bos, eos, pad; /* -1: none */
    bool add_bos;
    const char *pre;
};

static void vocab_done(struct vocab *v)
{
    free(v->arena);
    free(v->off);
    free(v->type);
    free(v->merge_off);
}

/* Appends a string to the arena; returns its offset, or -1 when out of memory. */
static int64_t arena_add(struct vocab *v, const char *s, size_t len)
{
    if (v->n_arena + len + 1 > v->cap_arena) {
        size_t cap = v->cap_arena ? v->cap_arena : 1 << 16;
        while (cap < v->n_arena + len + 1)
            cap *= 2;
        char *p = realloc(v->arena, cap);
        if (!p)
            return -1;
        v->arena = p;
        v->cap_arena = cap;
    }
    memcpy(v->arena + v->n_arena, s, len);
    v->arena[v->n_arena + len] = '\0';
    size_t off = v->n_arena;
    v->n_arena += len + 1;
    return (int64_t)off;
}

static int add_token(struct vocab *v, const char *s, int32_t type)
{
    if (v->n == v->cap)
        return -ENOSPC; /* callers size the table to n_vocab */
    int64_t off = arena_add(v, s, strlen(s));
    if (off < 0)
        return -ENOMEM;
    v->off[v->n] = (size_t)off;
    v->type[v->n++] = type;
    return 0;
}

static bool has_token(const struct vocab *v, int64_t from, const char *s)
{
    for (int64_t i = from; i < v->n; i++)
        if (!strcmp(v->arena + v->off[i], s))
            return true;
    return false;
}

static int add_merge(struct vocab *v, const char *a, const char *b)
{
    char buf[128];
    snprintf(buf, sizeof buf, "%s %s", a, b);
    for (int64_t i = 0; i < v->n_merges; i++)
        if (!strcmp(v->arena + v->merge_off[i], buf))
            return 0;
    if (v->n_merges == v->cap_merges) {
        int64_t cap = v->cap_merges ? v->cap_merges * 2 : 256;
        size_t *p = realloc(v->merge_off, (size_t)cap * sizeof *p);
        if (!p)
            return -ENOMEM;
        v->merge_off = p;
        v->cap_merges = cap;
    }
    int64_t off = arena_add(v, buf, strlen(buf));
    if (off < 0)
        return -ENOMEM;
    v->merge_off[v->n_merges++] = (size_t)off;
    return 0;
}

/* UTF-8 of a code point below U+0800 (all the byte map needs). */
static void utf8_cp(uint32_t cp, char out[4])
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        out[1] = '\0';
    } else {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        out[2] = '\0';
    }
}

/* The 256 byte tokens in GPT-2's order: the printable bytes map to
 * themselves, the other 68 to U+0100.. in increasing order (FORMATS.md §5.4). */
static int add_byte_tokens(struct vocab *v)
{
    char buf[4];
    int rc;
    for (uint32_t b = 0; b < 256; b++)
        if ((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE) {
            utf8_cp(b, buf);
            if ((rc = add_token(v, buf, TT_NORMAL)) < 0)
                return rc;
        }
    uint32_t n = 0;
    for (uint32_t b = 0; b < 256; b++)
        if (!((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE)) {
            utf8_cp(0x100 + n++, buf);
            if ((rc = add_token(v, buf, TT_NORMAL)) < 0)
                return rc;
        }
    return 0;
}

/* Merges that build common words left to right, with and without the
 * leading space "Ġ" (U+0120), so ordinary prompts tokenize into words. */
static int add_word_merges(struct vocab *v, int64_t limit)
{
    static const char *const words[] = {
        "the", "and", "of", "to", "in", "is", "was", "that", "it", "he", "she", "they", "for",
        "on", "with", "as", "at", "by", "from", "his", "her", "but", "not", "had", "have", "one",
        "once", "upon", "time", "there", "little", "girl", "boy", "cat", "dog", "day", "said",
        "play", "happy", "friend", "hello", "world", "what", "when", "where", "who", "this",
        "will", "would", "can", "could", "about", "into", "more", "some", "very", "good", "like",
        "story", "tree", "sun", "big", "red", "blue", "house", "water", "run", "went", "saw"};
    int64_t start = v->n;
    for (size_t w = 0; w < sizeof words / sizeof words[0]; w++)
        for (int space = 1; space >= 0; space--) {
            char prefix[64];
            snprintf(prefix, sizeof prefix, "%s", space ? "\xc4\xa0" : "");
            size_t len = strlen(prefix);
            for (const char *c = words[w]; *c; c++) {
                char sym[2] = {*c, '\0'};
                if (len == 0) { /* the first letter of a bare word is a byte token */
                    prefix[len++] = *c;
                    prefix[len] = '\0';
                    continue;
                }
                if (v->n >= limit)
                    return 0;
                int rc = add_merge(v, prefix, sym);
                if (rc < 0)
                    return rc;
                prefix[len++] = *c;
                prefix[len] = '\0';
                if (!has_token(v, start, prefix) && (rc = add_token(v, prefix, TT_NORMAL)) < 0)
                    return rc;
            }
        }
    return 0;
}

/* Filler word k: capitalised consonant-vowel syllables spelling k in base
 * 80 (injective: fixed-width syllables, no leading zero). Even k get the
 * leading space. Capitals keep them apart from the lowercase merge words. */
static void filler(int64_t k, char *out)
{
    static const char cons[] = "bdfghjklmnprstvz", vow[] = "aeiou";
    char digits[16];
    int nd = 0;
    int64_t x = k / 2;
    do {
        digits[nd++] = (char)(x % 80);
        x /= 80;
    } while (x);
    char *p = out;
    if (k % 2 == 0) {
        memcpy(p, "\xc4\xa0", 2);
        p += 2;
    }
    for (int i = nd - 1; i >= 0; i--) {
        char c = cons[digits[i] / 5];
        *p++ = i == nd - 1 ? (char)(c - 'a' + 'A') : c;
        *p++ = vow[digits[i] % 5];
    }
    *p = '\0';
}

static int add_fillers(struct vocab *v, int64_t until)
{
    char buf[48];
    for (int64_t k = 0; v->n < until; k++) {
        filler(k, buf);
        int rc = add_token(v, buf, TT_NORMAL);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static const char *const smollm_specials[] = {
    "<|endoftext|>",   "<|im_start|>",    "<|im_end|>",      "<repo_name>",
    "<reponame>",      "<file_sep>",      "<filename>",      "<gh_stars>",
    "<issue_start>",   "<issue_comment>", "<issue_closed>",  "<jupyter_start>",
    "<jupyter_text>",  "<jupyter_code>",  "<jupyter_output>", "<jupyter_script>",
    "<empty_output>"};
/* Qwen: CONTROL except the ones HF marks "special": false (USER_DEFINED). */
static const struct {
    const char *text;
    int32_t type;
} qwen_specials[] = {
    {"<|endoftext|>", TT_CONTROL},       {"<|im_start|>", TT_CONTROL},
    {"<|im_end|>", TT_CONTROL},          {"<|object_ref_start|>", TT_CONTROL},
    {"<|object_ref_end|>", TT_CONTROL},  {"<|box_start|>", TT_CONTROL},
    {"<|box_end|>", TT_CONTROL},         {"<|quad_start|>", TT_CONTROL},
    {"<|quad_end|>", TT_CONTROL},        {"<|vision_start|>", TT_CONTROL},
    {"<|vision_end|>", TT_CONTROL},      {"<|vision_pad|>", TT_CONTROL},
    {"<|image_pad|>", TT_CONTROL},       {"<|video_pad|>", TT_CONTROL},
    {"<tool_call>", TT_USER_DEFINED},    {"</tool_call>", TT_USER_DEFINED},
    {"<|fim_prefix|>", TT_USER_DEFINED}, {"<|fim_middle|>", TT_USER_DEFINED},
    {"<|fim_suffix|>", TT_USER_DEFINED}, {"<|fim_pad|>", TT_USER_DEFINED},
    {"<|repo_name|>", TT_USER_DEFINED},  {"<|file_sep|>", TT_USER_DEFINED},
    /* Qwen3 only */
    {"<tool_response>", TT_USER_DEFINED}, {"</tool_response>", TT_USER_DEFINED},
    {"<think>", TT_USER_DEFINED},        {"</think>", TT_USER_DEFINED},
};
static const char *const llama3_specials[] = {
    "<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>",
    "<|reserved_special_token_1|>", "<|finetune_right_pad_id|>", "<|reserved_special_token_2|>",
    "<|start_header_id|>", "<|end_header_id|>", "<|eom_id|>", "<|eot_id|>", "<|python_tag|>"};

#define COUNT(a) ((int64_t)(sizeof(a) / sizeof(a)[0]))

static int build_vocab(const struct shape *s, struct vocab *v)
{
    int rc;
    *v = (struct vocab){.bos = -1, .eos = -1, .pad = -1};
    v->cap = s->n_vocab;
    v->off = malloc((size_t)v->cap * sizeof *v->off);
    v->type = malloc((size_t)v->cap * sizeof *v->type);
    if (!v->off || !v->type)
        return -ENOMEM;
    char buf[64];
    int64_t n_regular = s->n_vocab - s->n_special;
    switch (s->fam) {
    case FAM_SMOLLM:
        /* the real file says "smollm", a pre-tokenizer hearth does not have
         * yet; gpt-2's splits text almost the same way */
        v->pre = "gpt-2";
        for (int64_t i = 0; i < COUNT(smollm_specials) && i < s->n_special; i++)
            if ((rc = add_token(v, smollm_specials[i], TT_CONTROL)) < 0)
                return rc;
        v->bos = v->eos = 0; /* <|endoftext|> in the base model */
        n_regular = s->n_vocab;
        break;
    case FAM_QWEN2:
    case FAM_QWEN3:
        v->pre = "qwen2";
        break;
    case FAM_LLAMA3:
        v->pre = "llama-bpe";
        v->add_bos = true;
        break;
    }
    if ((rc = add_byte_tokens(v)) < 0 || (rc = add_word_merges(v, n_regular)) < 0 ||
        (rc = add_fillers(v, n_regular)) < 0)
        return rc;
    switch (s->fam) {
    case FAM_SMOLLM:
        break;
    case FAM_QWEN2:
    case FAM_QWEN3: {
        int64_t n_named = s->fam == FAM_QWEN3 ? COUNT(qwen_specials) : 22;
        for (int64_t i = 0; i < n_named && v->n < s->n_vocab; i++)
            if ((rc = add_token(v, qwen_specials[i].text, qwen_specials[i].type)) < 0)
                return rc;
        while (v->n < s->n_vocab) {
            snprintf(buf, sizeof buf, "[PAD%lld]", (long long)v->n);
            if ((rc = add_token(v, buf, TT_UNUSED)) < 0)
                return rc;
        }
        v->bos = v->pad = n_regular; /* <|endoftext|> */
        v->eos = s->fam == FAM_QWEN3 ? n_regular + 2 : n_regular; /* <|im_end|> for Qwen3 */
        break;
    }
    case FAM_LLAMA3:
        for (int64_t i = 0; v->n < s->n_vocab; i++) {
            if (i < COUNT(llama3_specials))
                snprintf(buf, sizeof buf, "%s", llama3_specials[i]);
            else
                snprintf(buf, sizeof buf, "<|reserved_special_token_%lld|>", (long long)(i - 8));
            if ((rc = add_token(v, buf, TT_CONTROL)) < 0)
                return rc;
        }
        v->bos = n_regular;
        v->eos = n_regular + 1; /* <|end_of_text|> in the base model */
        break;
    }
    return v->n == s->n_vocab ? 0 : -EINVAL;
}

/* ---- tensors ------------------------------------------------------------------- */

struct tensor {
    char name[GGUF_MAX_NAME];
    enum tkind kind;
    int64_t layer;
    uint32_t n_dims;
    int64_t ne[2];
    uint32_t type;
    float sigma; /* random N(0, σ²); 0: constant `value` */
    float value;
    size_t nbytes;
    void *data;
};

struct plan {
    struct tensor *t;
    size_t n, cap;
};

static int plan_add(struct plan *p, enum tkind kind, int64_t layer, const char *name,
                    int64_t ne0, int64_t ne1, float sigma, float value)
{
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 64;
        struct tensor *t = realloc(p->t, cap * sizeof *t);
        if (!t)
            return -ENOMEM;
        p->t = t;
        p->cap = cap;
    }
    struct tensor *t = &p->t[p->n++];
    *t = (struct tensor){.kind = kind, .layer = layer, .n_dims = ne1 > 1 ? 2 : 1,
                         .ne = {ne0, ne1}, .sigma = sigma, .value = value};
    if (layer >= 0)
        snprintf(t->name, sizeof t->name, "blk.%lld.%s", (long long)layer, name);
    else
        snprintf(t->name, sizeof t->name, "%s", name);
    return 0;
}

#define SIGMA 0.02f

static int plan_model(const struct shape *s, int ftype, struct plan *p)
{
    int64_t hd = s->head_dim ? s->head_dim : s->n_embd / s->n_head;
    int64_t n_q = hd * s->n_head, n_kv = hd * s->n_head_kv;
    int rc = 0;
#define ADD(kind, l, name, ne0, ne1, sigma, value)                                         \
    do {                                                                                   \
        if ((rc = plan_add(p, kind, l, name, ne0, ne1, sigma, value)) < 0)                 \
            return rc;                                                                     \
    } while (0)
    ADD(T_WEIGHT, -1, "token_embd.weight", s->n_embd, s->n_vocab, SIGMA, 0);
    if (s->llama3_factor > 0)
        ADD(T_ROPE_FREQS, -1, "rope_freqs.weight", hd / 2, 1, 0, 1);
    for (int64_t i = 0; i < s->n_layer; i++) {
        ADD(T_NORM, i, "attn_norm.weight", s->n_embd, 1, 0, 1);
        ADD(T_WEIGHT, i, "attn_q.weight", s->n_embd, n_q, SIGMA, 0);
        if (s->qkv_bias)
            ADD(T_BIAS, i, "attn_q.bias", n_q, 1, 0.01f, 0);
        ADD(T_WEIGHT, i, "attn_k.weight", s->n_embd, n_kv, SIGMA, 0);
        if (s->qkv_bias)
            ADD(T_BIAS, i, "attn_k.bias", n_kv, 1, 0.01f, 0);
        ADD(T_WEIGHT, i, "attn_v.weight", s->n_embd, n_kv, SIGMA, 0);
        if (s->qkv_bias)
            ADD(T_BIAS, i, "attn_v.bias", n_kv, 1, 0.01f, 0);
        if (s->qk_norm) {
            ADD(T_NORM, i, "attn_q_norm.weight", hd, 1, 0, 1);
            ADD(T_NORM, i, "attn_k_norm.weight", hd, 1, 0, 1);
        }
        ADD(T_WEIGHT, i, "attn_output.weight", n_q, s->n_embd, SIGMA, 0);
        ADD(T_NORM, i, "ffn_norm.weight", s->n_embd, 1, 0, 1);
        ADD(T_WEIGHT, i, "ffn_gate.weight", s->n_embd, s->n_ff, SIGMA, 0);
        ADD(T_WEIGHT, i, "ffn_up.weight", s->n_embd, s->n_ff, SIGMA, 0);
        ADD(T_WEIGHT, i, "ffn_down.weight", s->n_ff, s->n_embd, SIGMA, 0);
    }
    ADD(T_NORM, -1, "output_norm.weight", s->n_embd, 1, 0, 1);
#undef ADD
    /* tied output: no output.weight, token_embd.weight is treated as it */
    struct quantize_model_info info = {.n_layer = (int)s->n_layer, .n_head = (int)s->n_head,
                                       .n_head_kv = (int)s->n_head_kv,
                                       .n_attn_v = (int)s->n_layer};
    for (size_t i = 0; i < p->n; i++) {
        struct tensor *t = &p->t[i];
        int64_t ne[4] = {t->ne[0], t->ne[1], 1, 1};
        int type = quantize_choose_type(&info, t->name, ne, ftype);
        if (type < 0 && type != QUANTIZE_KEEP)
            return type;
        t->type = type == QUANTIZE_KEEP ? HR_TYPE_F32 : (uint32_t)type;
        t->nbytes = hr_row_size(t->type, t->ne[0]) * (size_t)t->ne[1];
    }
    return 0;
}

/* Llama 3 RoPE frequency factors, as the converter computes them from HF's
 * rope_scaling {factor, low_freq_factor 1, high_freq_factor 4,
 * original_max_position_embeddings 8192} (FORMATS.md §4.4). */
static void llama3_rope_freqs(const struct shape *s, float *out, int64_t n)
{
    const double low = 1, high = 4, L = 8192, factor = s->llama3_factor;
    int64_t dim = 2 * n;
    for (int64_t i = 0; i < n; i++) {
        double freq = 1.0 / pow(s->rope_base, (double)(2 * i) / (double)dim);
        double wavelen = 2 * M_PI / freq;
        if (wavelen < L / high)
            out[i] = 1.0f;
        else if (wavelen > L / low)
            out[i] = (float)factor;
        else {
            double smooth = (L / wavelen - low) / (high - low);
            out[i] = (float)(1.0 / ((1 - smooth) / factor + smooth));
        }
    }
}

/* ---- random values and the parallel quantization ------------------------------------ */

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* n values ~ N(0, σ²): each is the sum of four 16-bit uniforms (Irwin-Hall),
 * standardised — bell-shaped, bounded at ±3.46σ, and cheap. */
static void fill_normal(float *x, int64_t n, float sigma, uint64_t key)
{
    uint64_t st = key;
    const float scale = sigma / (65536.0f * 0.57735027f); /* sd of the sum: 65536·sqrt(4/12) */
    for (int64_t i = 0; i < n; i++) {
        uint64_t r = splitmix64(&st);
        int32_t sum = (int32_t)(r & 0xFFFF) + (int32_t)((r >> 16) & 0xFFFF) +
                      (int32_t)((r >> 32) & 0xFFFF) + (int32_t)(r >> 48);
        x[i] = ((float)sum - 131070.0f) * scale;
    }
}

struct job {
    struct tensor *t;
    int64_t row0, nrows;
};

struct gen {
    struct job *jobs;
    int64_t n_jobs;
    float **scratch; /* per thread, max_chunk floats */
    uint64_t seed;
    const struct tensor *first; /* to number tensors in the random key */
    atomic_int_fast64_t done;  /* elements finished */
    int64_t total;
    atomic_int failed;
    int last_pct;
    bool tty;
    const char *label;
};

static void gen_job(void *arg, int64_t i, int thread)
{
    struct gen *g = arg;
    const struct job *j = &g->jobs[i];
    struct tensor *t = j->t;
    int64_t ne0 = t->ne[0];
    float *buf = g->scratch[thread];
    uint64_t tkey = g->seed * 0x9E3779B97F4A7C15ull ^ (uint64_t)(t - g->first) << 40;
    for (int64_t r = 0; r < j->nrows; r++) {
        float *row = buf + r * ne0;
        if (t->sigma > 0)
            fill_normal(row, ne0, t->sigma, tkey ^ (uint64_t)(j->row0 + r) * 0xD1B54A32D192ED03ull);
        else
            for (int64_t e = 0; e < ne0; e++)
                row[e] = t->value;
    }
    size_t row_size = hr_row_size(t->type, ne0);
    if (quant_quantize(t->type, buf, (uint8_t *)t->data + (size_t)j->row0 * row_size, j->nrows,
                       ne0) < 0)
        atomic_store(&g->failed, 1);
    int64_t done = atomic_fetch_add(&g->done, j->nrows * ne0) + j->nrows * ne0;
    if (thread == 0) { /* only the caller's thread prints */
        int pct = (int)(100 * done / g->total);
        if (pct != g->last_pct && (g->tty || pct / 10 != g->last_pct / 10)) {
            fprintf(stderr, g->tty ? "\rhearth: %s: %3d%%" : "hearth: %s: %3d%%\n", g->label, pct);
            g->last_pct = pct;
        }
    }
}

/* Fills every tensor's data (allocated here; freed by the caller). */
static int generate(struct plan *p, const struct shape *s, uint64_t seed, int threads,
                    const char *label)
{
    const int64_t chunk = 1 << 18; /* elements per job */
    struct gen g = {.seed = seed, .first = p->t, .last_pct = -1, .label = label,
                    .tty = isatty(2)};
    struct pool *pool = NULL;
    int rc = -ENOMEM;
    int64_t max_chunk = 0;
    for (size_t i = 0; i < p->n; i++) {
        struct tensor *t = &p->t[i];
        if (!(t->data = malloc(t->nbytes ? t->nbytes : 1)))
            goto fail;
        if (t->kind == T_ROPE_FREQS) {
            llama3_rope_freqs(s, t->data, t->ne[0]);
            continue;
        }
        int64_t rows = t->ne[0] >= chunk ? 1 : chunk / t->ne[0];
        g.n_jobs += (t->ne[1] + rows - 1) / rows;
        g.total += t->ne[0] * t->ne[1];
        if (rows * t->ne[0] > max_chunk)
            max_chunk = rows * t->ne[0];
    }
    if (!(g.jobs = malloc((size_t)g.n_jobs * sizeof *g.jobs)))
        goto fail;
    int64_t k = 0;
    for (size_t i = 0; i < p->n; i++) {
        struct tensor *t = &p->t[i];
        if (t->kind == T_ROPE_FREQS)
            continue;
        int64_t rows = t->ne[0] >= chunk ? 1 : chunk / t->ne[0];
        for (int64_t r = 0; r < t->ne[1]; r += rows)
            g.jobs[k++] = (struct job){t, r, r + rows <= t->ne[1] ? rows : t->ne[1] - r};
    }
    if ((rc = pool_new(threads, &pool)) < 0)
        goto fail;
    rc = -ENOMEM;
    if (!(g.scratch = calloc((size_t)threads, sizeof *g.scratch)))
        goto fail;
    for (int i = 0; i < threads; i++)
        if (!(g.scratch[i] = malloc((size_t)max_chunk * sizeof(float))))
            goto fail;
    pool_run(pool, gen_job, &g, g.n_jobs);
    if (g.tty)
        fputc('\n', stderr);
    rc = atomic_load(&g.failed) ? -EINVAL : 0;
fail:
    for (int i = 0; g.scratch && i < threads; i++)
        free(g.scratch[i]);
    free(g.scratch);
    free(g.jobs);
    pool_free(pool);
    return rc;
}

/* ---- the command ----------------------------------------------------------------- */

static void list_names(char *buf, size_t cap, bool want_shapes)
{
    size_t n = 0;
    buf[0] = '\0';
    if (want_shapes) {
        for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
            if (!shapes[i].hidden && n < cap)
                n += (size_t)snprintf(buf + n, cap - n, "%s%s", n ? ", " : "", shapes[i].name);
    } else {
        for (int ft = 0; ft < 64; ft++) /* llama_ftype values */
            if (quantize_ftype_name(ft) && n < cap)
                n += (size_t)snprintf(buf + n, cap - n, "%s%s", n ? ", " : "",
                                      quantize_ftype_name(ft));
    }
}

/* Fails early, before minutes of quantization, if the file cannot be
 * written: the writer creates FILE.tmp.XXXXXX next to it, so try that. */
static void check_writable(const char *path)
{
    size_t len = strlen(path);
    char *tmp = malloc(len + 16);
    if (!tmp)
        cli_die(1, "out of memory");
    memcpy(tmp, path, len);
    memcpy(tmp + len, ".tmp.XXXXXX", 12);
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0)
        cli_die(1, "%s: cannot write: %s", path, strerror(errno));
    close(fd);
    unlink(tmp);
    free(tmp);
}

static int write_model(const struct shape *s, int ftype, const struct vocab *v,
                       const struct plan *p, const char *path, struct hr_err *err)
{
    struct gguf_writer *w = gguf_writer_new();
    const char **texts = malloc((size_t)v->n * sizeof *texts);
    const char **merges = malloc((size_t)(v->n_merges ? v->n_merges : 1) * sizeof *merges);
    char key[96];
    int rc = -ENOMEM;
    if (!w || !texts || !merges)
        goto fail;
    for (int64_t i = 0; i < v->n; i++)
        texts[i] = v->arena + v->off[i];
    for (int64_t i = 0; i < v->n_merges; i++)
        merges[i] = v->arena + v->merge_off[i];
    int64_t hd = s->head_dim ? s->head_dim : s->n_embd / s->n_head;
    bool quantized = false;
    for (size_t i = 0; i < p->n; i++)
        quantized |= is_quantized(p->t[i].type);

#define A(suffix) (snprintf(key, sizeof key, "%s.%s", s->arch, suffix), key)
#define TRY(call)                                                                         \
    do {                                                                                  \
        if ((rc = (call)) < 0)                                                            \
            goto fail;                                                                    \
    } while (0)
    TRY(gguf_writer_add_str(w, "general.architecture", s->arch));
    TRY(gguf_writer_add_str(w, "general.type", "model"));
    TRY(gguf_writer_add_str(w, "general.name", s->general_name));
    TRY(gguf_writer_add_str(w, "general.description",
                            "random weights made by hearth mkmodel, for benchmarks only"));
    TRY(gguf_writer_add_u32(w, A("block_count"), (uint32_t)s->n_layer));
    TRY(gguf_writer_add_u32(w, A("context_length"), (uint32_t)s->n_ctx));
    TRY(gguf_writer_add_u32(w, A("embedding_length"), (uint32_t)s->n_embd));
    TRY(gguf_writer_add_u32(w, A("feed_forward_length"), (uint32_t)s->n_ff));
    TRY(gguf_writer_add_u32(w, A("attention.head_count"), (uint32_t)s->n_head));
    TRY(gguf_writer_add_u32(w, A("attention.head_count_kv"), (uint32_t)s->n_head_kv));
    TRY(gguf_writer_add_f32(w, A("rope.freq_base"), s->rope_base));
    TRY(gguf_writer_add_f32(w, A("attention.layer_norm_rms_epsilon"), s->eps));
    if (s->head_dim) {
        TRY(gguf_writer_add_u32(w, A("attention.key_length"), (uint32_t)hd));
        TRY(gguf_writer_add_u32(w, A("attention.value_length"), (uint32_t)hd));
    }
    if (!strcmp(s->arch, "llama")) { /* the llama converter also writes these */
        TRY(gguf_writer_add_u32(w, A("vocab_size"), (uint32_t)s->n_vocab));
        TRY(gguf_writer_add_u32(w, A("rope.dimension_count"), (uint32_t)hd));
    }
    TRY(gguf_writer_add_u32(w, "general.file_type", (uint32_t)ftype));
    if (quantized)
        TRY(gguf_writer_add_u32(w, "general.quantization_version", 2));
    TRY(gguf_writer_add_str(w, "tokenizer.ggml.model", "gpt2"));
    TRY(gguf_writer_add_str(w, "tokenizer.ggml.pre", v->pre));
    TRY(gguf_writer_add_str_arr(w, "tokenizer.ggml.tokens", texts, (uint64_t)v->n));
    TRY(gguf_writer_add_arr(w, "tokenizer.ggml.token_type", GGUF_INT32, v->type, (uint64_t)v->n));
    TRY(gguf_writer_add_str_arr(w, "tokenizer.ggml.merges", merges, (uint64_t)v->n_merges));
    if (v->bos >= 0)
        TRY(gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)v->bos));
    if (v->eos >= 0)
        TRY(gguf_writer_add_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)v->eos));
    if (v->pad >= 0)
        TRY(gguf_writer_add_u32(w, "tokenizer.ggml.padding_token_id", (uint32_t)v->pad));
    TRY(gguf_writer_add_bool(w, "tokenizer.ggml.add_bos_token", v->add_bos));
    for (size_t i = 0; i < p->n; i++) {
        const struct tensor *t = &p->t[i];
        TRY(gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data));
    }
#undef TRY
#undef A
    rc = gguf_writer_write(w, path, err);
    goto done;
fail:
    hr_err_set(err, rc, -1, "cannot build the GGUF image: %s", strerror(-rc));
done:
    free(texts);
    free(merges);
    gguf_writer_free(w);
    return rc;
}

/* "Q4_K 61.2%, Q6_K 20.1%, ..." by share of the weight bytes. */
static void type_mix(const struct plan *p, char *out, size_t cap)
{
    size_t bytes[HR_TYPE_COUNT] = {0}, total = 0, n = 0;
    for (size_t i = 0; i < p->n; i++) {
        bytes[p->t[i].type] += p->t[i].nbytes;
        total += p->t[i].nbytes;
    }
    out[0] = '\0';
    for (;;) {
        uint32_t best = HR_TYPE_COUNT;
        for (uint32_t t = 0; t < HR_TYPE_COUNT; t++)
            if (bytes[t] && (best == HR_TYPE_COUNT || bytes[t] > bytes[best]))
                best = t;
        if (best == HR_TYPE_COUNT || n >= cap)
            break;
        char up[16];
        snprintf(up, sizeof up, "%s", hr_type_name(best));
        for (char *c = up; *c; c++)
            if (*c >= 'a' && *c <= 'z')
                *c = (char)(*c - 'a' + 'A');
        n += (size_t)snprintf(out + n, cap - n, "%s%s %.1f%%", n ? ", " : "", up,
                              100.0 * (double)bytes[best] / (double)total);
        bytes[best] = 0;
    }
}

int cmd_mkmodel(int argc, char **argv)
{
    const char *shape_name = NULL, *type_name = NULL, *out = NULL;
    unsigned long long seed = 1;
    long threads = sysconf(_SC_NPROCESSORS_ONLN);
    char names[512];
    bool plan_only = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--plan")) {
            plan_only = true;
            continue;
        }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fprintf(stdout, "see hearth --help\n");
            return 0;
        }
        if (!strcmp(a, "--list")) {
            for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++)
                if (!shapes[k].hidden)
                    printf("%s\n", shapes[k].name);
            return 0;
        }
        if (i + 1 >= argc)
            cli_die(EXIT_USAGE, "%s: %s", a,
                    a[0] == '-' ? "missing value" : "unexpected argument (see hearth --help)");
        const char *v = argv[++i];
        if (!strcmp(a, "--shape"))
            shape_name = v;
        else if (!strcmp(a, "--type"))
            type_name = v;
        else if (!strcmp(a, "-o") || !strcmp(a, "--output"))
            out = v;
        else if (!strcmp(a, "--seed")) {
            char *end;
            errno = 0;
            seed = strtoull(v, &end, 10);
            if (errno || end == v || *end || v[0] == '-')
                cli_die(EXIT_USAGE, "--seed: '%s' is not a non-negative integer", v);
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads"))
            threads = cli_long(a, v, 1, 1024);
        else
            cli_die(EXIT_USAGE, "unknown option '%s' (see hearth --help)", a);
    }
    if (!shape_name)
        cli_die(EXIT_USAGE, "missing --shape NAME");
    if (!type_name)
        cli_die(EXIT_USAGE, "missing --type TYPE");
    if (!out && !plan_only)
        cli_die(EXIT_USAGE, "missing -o FILE");
    const struct shape *s = NULL;
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        if (!strcmp(shape_name, shapes[i].name))
            s = &shapes[i];
    if (!s) {
        list_names(names, sizeof names, true);
        cli_die(EXIT_USAGE, "--shape: unknown shape '%s' (known: %s)", shape_name, names);
    }
    int ftype = quantize_ftype_from_name(type_name);
    if (ftype < 0) {
        list_names(names, sizeof names, false);
        cli_die(EXIT_USAGE, "--type: unknown type '%s' (known: %s)", type_name, names);
    }
    if (threads < 1)
        threads = 1;

    double t0 = cli_now();
    struct vocab v;
    struct plan p = {0};
    struct hr_err err;
    hr_err_clear(&err);
    int rc = plan_model(s, ftype, &p);
    if (rc < 0)
        cli_die(1, "cannot plan the tensors: %s", strerror(-rc));
    char mix[256];
    size_t total = 0;
    type_mix(&p, mix, sizeof mix);
    for (size_t i = 0; i < p.n; i++)
        total += p.t[i].nbytes;
    if (plan_only) {
        for (size_t i = 0; i < p.n; i++)
            printf("%s %s %lld %lld %zu\n", p.t[i].name, hr_type_name(p.t[i].type),
                   (long long)p.t[i].ne[0], (long long)p.t[i].ne[1], p.t[i].nbytes);
        fprintf(stderr, "hearth: %s %s: %zu tensors, %.1f MiB (%s)\n", s->name,
                quantize_ftype_name(ftype), p.n, (double)total / (1 << 20), mix);
        free(p.t);
        return 0;
    }
    check_writable(out);
    if ((rc = build_vocab(s, &v)) < 0)
        cli_die(1, "cannot build the vocabulary: %s", strerror(-rc));
    char label[96];
    snprintf(label, sizeof label, "mkmodel %s %s", s->name, quantize_ftype_name(ftype));
    if ((rc = generate(&p, s, seed, (int)threads, label)) < 0)
        cli_die(1, "cannot generate the weights: %s", strerror(-rc));
    if ((rc = write_model(s, ftype, &v, &p, out, &err)) < 0)
        cli_die(1, "%s", err.msg[0] ? err.msg : strerror(-rc));

    fprintf(stderr, "hearth: wrote %s: %s %s, %zu tensors, %.1f MiB (%s) in %.1f s\n", out,
            s->name, quantize_ftype_name(ftype), p.n, (double)total / (1 << 20), mix,
            cli_now() - t0);
    for (size_t i = 0; i < p.n; i++)
        free(p.t[i].data);
    free(p.t);
    vocab_done(&v);
    return 0;
}
