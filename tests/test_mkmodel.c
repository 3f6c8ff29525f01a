/*
 * test_mkmodel.c — `hearth mkmodel` and `hearth bench` as scripts use them:
 * the random models load, carry the real shapes, hyperparameters, vocabulary
 * sizes and llama-quantize's per-tensor types, evaluate and generate; bench
 * prints parseable JSON; bad arguments give one-line errors. Small hidden
 * shapes (tiny-llama, tiny-qwen2, tiny-qwen3) keep it fast; the real shapes
 * are checked through `mkmodel --plan`, which lists tensors without
 * generating them. No test asserts a timing.
 */
#include "arch/arch.h"
#include "gguf.h"
#include "quant.h"
#include "testutil.h"

#include <criterion/criterion.h>
#include <ftw.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- helpers ------------------------------------------------------------------- */

static char tmpdir[64];

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(path);
}

static void setup(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/hearth-mkmodel-XXXXXX");
    cr_assert(mkdtemp(tmpdir), "mkdtemp");
    unsetenv("HEARTH_LIMITS_BUFFER_MIB");
}

static void teardown(void)
{
    nftw(tmpdir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

TestSuite(mkmodel, .init = setup, .fini = teardown);

/* A path inside this test's directory (static: valid until the 4th next call). */
static const char *tmp(const char *name)
{
    static char buf[4][128];
    static int k;
    char *b = buf[k++ % 4];
    snprintf(b, sizeof buf[0], "%s/%s", tmpdir, name);
    return b;
}

static void mk(const char *shape, const char *type, const char *path)
{
    char *out, *err;
    int st = tu_hearth(&out, &err, "mkmodel", "--shape", shape, "--type", type, "-o", path, NULL);
    cr_assert_eq(st, 0, "mkmodel %s %s: exit %d: %s", shape, type, st, err);
    cr_assert_str_empty(out, "mkmodel prints nothing on stdout");
    free(out);
    free(err);
}

static uint32_t u32(const struct gguf_file *f, const char *key)
{
    uint32_t v = 0;
    cr_assert_eq(gguf_get_u32(f, key, &v, NULL), 0, "key %s", key);
    return v;
}

static float f32(const struct gguf_file *f, const char *key)
{
    float v = 0;
    cr_assert_eq(gguf_get_f32(f, key, &v, NULL), 0, "key %s", key);
    return v;
}

static const struct gguf_tensor *tensor(const struct gguf_file *f, const char *name,
                                        uint32_t type, int64_t ne0, int64_t ne1)
{
    const struct gguf_tensor *t = gguf_find_tensor(f, name);
    cr_assert(t, "tensor %s missing", name);
    cr_assert_eq(t->type, type, "%s: type %s, expected %s", name, hr_type_name(t->type),
                 hr_type_name(type));
    cr_assert(t->ne[0] == ne0 && t->ne[1] == ne1 && t->ne[2] == 1,
              "%s: shape [%lld, %lld], expected [%lld, %lld]", name, (long long)t->ne[0],
              (long long)t->ne[1], (long long)ne0, (long long)ne1);
    return t;
}

static struct gguf_str token_text(const struct gguf_file *f, uint32_t id)
{
    const struct gguf_value *toks;
    cr_assert_eq(gguf_get_arr(f, "tokenizer.ggml.tokens", GGUF_STRING, &toks, NULL), 0);
    cr_assert(id < toks->arr.n);
    return toks->arr.strs[id];
}

static uint64_t n_tokens(const struct gguf_file *f)
{
    const struct gguf_value *toks;
    cr_assert_eq(gguf_get_arr(f, "tokenizer.ggml.tokens", GGUF_STRING, &toks, NULL), 0);
    return toks->arr.n;
}

/* Loads the model, evaluates a few tokens, checks the logits are finite and
 * not constant. */
static void check_evaluates(const char *path)
{
    struct hr_model *m = NULL;
    struct hr_err err;
    int rc = hr_model_load(path, NULL, &m, &err);
    cr_assert_eq(rc, 0, "%s: %s", path, err.msg);
    struct hr_ctx_params cp = {.n_ctx = 16, .n_threads = 2};
    struct hr_ctx *ctx;
    cr_assert_eq(hr_ctx_new(m, &cp, &ctx, &err), 0, "%s", err.msg);
    int32_t toks[4] = {1, 100, 300, 5};
    cr_assert_eq(hr_ctx_eval(ctx, toks, 4, false, &err), 0, "%s", err.msg);
    const float *lg = hr_ctx_logits(ctx, -1);
    int32_t n = hr_model_n_vocab(m);
    float lo = lg[0], hi = lg[0];
    for (int32_t i = 0; i < n; i++) {
        cr_assert(isfinite(lg[i]), "%s: logit %d is %g", path, i, lg[i]);
        lo = lg[i] < lo ? lg[i] : lo;
        hi = lg[i] > hi ? lg[i] : hi;
    }
    cr_assert(hi > lo, "%s: constant logits", path);
    hr_ctx_free(ctx);
    hr_model_free(m);
}

/* ---- a minimal JSON validator (objects, arrays, strings, numbers, literals) -- */

static const char *json_ws(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
        p++;
    return p;
}

static const char *json_value(const char *p, int depth);

static const char *json_string(const char *p)
{
    if (*p != '"')
        return NULL;
    for (p++; *p && *p != '"'; p++) {
        if ((unsigned char)*p < 0x20)
            return NULL;
        if (*p == '\\') {
            p++;
            if (*p == 'u') {
                for (int i = 1; i <= 4; i++)
                    if (!strchr("0123456789abcdefABCDEF", p[i]) || !p[i])
                        return NULL;
                p += 4;
            } else if (!*p || !strchr("\"\\/bfnrt", *p))
                return NULL;
        }
    }
    return *p == '"' ? p + 1 : NULL;
}

static const char *json_number(const char *p)
{
    const char *s = p;
    if (*p == '-')
        p++;
    if (*p == '0')
        p++;
    else if (*p >= '1' && *p <= '9')
        while (*p >= '0' && *p <= '9')
            p++;
    else
        return NULL;
    if (*p == '.') {
        p++;
        if (!(*p >= '0' && *p <= '9'))
            return NULL;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-')
            p++;
        if (!(*p >= '0' && *p <= '9'))
            return NULL;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    return p > s ? p : NULL;
}

static const char *json_value(const char *p, int depth)
{
    p = json_ws(p);
    if (depth > 32)
        return NULL;
    if (*p == '{' || *p == '[') {
        char close = *p == '{' ? '}' : ']';
        bool obj = *p == '{';
        p = json_ws(p + 1);
        if (*p == close)
            return p + 1;
        for (;;) {
            if (obj) {
                if (!(p = json_string(json_ws(p))))
                    return NULL;
                p = json_ws(p);
                if (*p++ != ':')
                    return NULL;
            }
            if (!(p = json_value(p, depth + 1)))
                return NULL;
            p = json_ws(p);
            if (*p == close)
                return p + 1;
            if (*p++ != ',')
                return NULL;
        }
    }
    if (*p == '"')
        return json_string(p);
    if (!strncmp(p, "true", 4))
        return p + 4;
    if (!strncmp(p, "false", 5))
        return p + 5;
    if (!strncmp(p, "null", 4))
        return p + 4;
    return json_number(p);
}

/* True if line (up to its newline) is exactly one JSON object. */
static bool json_line_ok(const char *line, size_t len)
{
    char *copy = strndup(line, len);
    const char *end = json_ws(copy);
    bool ok = *end == '{' && (end = json_value(end, 0)) && *json_ws(end) == '\0';
    free(copy);
    return ok;
}

/* The number after "key": in a JSON line; NAN when absent or null. */
static double json_num(const char *line, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\": ", key);
    const char *p = strstr(line, pat);
    if (!p)
        return NAN;
    p += strlen(pat);
    char *end;
    double v = strtod(p, &end);
    return end == p ? NAN : v;
}

/* Splits stdout into lines; checks each is a JSON object; returns the count. */
static int json_lines(char *out, char **lines, int cap)
{
    int n = 0;
    for (char *p = out; *p && n < cap;) {
        char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        cr_assert(json_line_ok(p, len), "not a JSON object: '%.*s'", (int)len, p);
        lines[n++] = p;
        if (!nl)
            break;
        *nl = '\0';
        p = nl + 1;
    }
    return n;
}

Test(mkmodel, json_validator_rejects_garbage)
{
    const char *good = "{\"a\": [1, -2.5e3, \"x\\n\"], \"b\": null, \"c\": {}}";
    cr_assert(json_line_ok(good, strlen(good)));
    const char *bad[] = {"{\"a\": 1,}", "{\"a\" 1}", "{\"a\": 01}", "[1, 2]", "{\"a\": \"x}",
                         "{\"a\": 1} x", "{\"a\": nan}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert(!json_line_ok(bad[i], strlen(bad[i])), "accepted '%s'", bad[i]);
}

/* ---- the files ------------------------------------------------------------------- */

Test(mkmodel, tiny_llama_q4_k_m_has_the_real_layout, .timeout = 60)
{
    const char *path = tmp("llama.gguf");
    mk("tiny-llama", "q4_k_m", path);
    struct gguf_file *f;
    struct hr_err err;
    cr_assert_eq(gguf_open(path, GGUF_DEFAULT_BUDGET, &f, &err), 0, "%s", err.msg);
    struct gguf_str arch;
    cr_assert_eq(gguf_get_str(f, "general.architecture", &arch, NULL), 0);
    cr_assert(gguf_str_eq(arch, "llama"));
    cr_assert_eq(u32(f, "llama.embedding_length"), 256);
    cr_assert_eq(u32(f, "llama.block_count"), 2);
    cr_assert_eq(u32(f, "llama.feed_forward_length"), 512);
    cr_assert_eq(u32(f, "llama.attention.head_count"), 4);
    cr_assert_eq(u32(f, "llama.attention.head_count_kv"), 2);
    cr_assert_eq(u32(f, "llama.attention.key_length"), 64);
    cr_assert_eq(u32(f, "llama.rope.dimension_count"), 64);
    cr_assert_eq(u32(f, "llama.context_length"), 2048);
    cr_assert_eq(u32(f, "general.file_type"), 15); /* LLAMA_FTYPE_MOSTLY_Q4_K_M */
    cr_assert_eq(u32(f, "general.quantization_version"), 2);
    cr_assert_float_eq(f32(f, "llama.rope.freq_base"), 500000.0f, 1e-3);
    cr_assert_float_eq(f32(f, "llama.attention.layer_norm_rms_epsilon"), 1e-5f, 1e-9);

    /* 2 + 2 layers x 9 + rope_freqs; tied: no output.weight */
    cr_assert_eq(f->n_tensors, 21);
    cr_assert_null(gguf_find_tensor(f, "output.weight"));
    tensor(f, "token_embd.weight", HR_TYPE_Q6_K, 256, 1024); /* tied output: Q6_K */
    tensor(f, "output_norm.weight", HR_TYPE_F32, 256, 1);
    tensor(f, "blk.0.attn_norm.weight", HR_TYPE_F32, 256, 1);
    tensor(f, "blk.0.attn_q.weight", HR_TYPE_Q4_K, 256, 256);
    tensor(f, "blk.0.attn_k.weight", HR_TYPE_Q4_K, 256, 128);
    /* use_more_bits with 2 layers: layer 0 no, layer 1 (>= 7n/8) yes */
    tensor(f, "blk.0.attn_v.weight", HR_TYPE_Q4_K, 256, 128);
    tensor(f, "blk.1.attn_v.weight", HR_TYPE_Q6_K, 256, 128);
    tensor(f, "blk.0.ffn_down.weight", HR_TYPE_Q4_K, 512, 256);
    tensor(f, "blk.1.ffn_down.weight", HR_TYPE_Q6_K, 512, 256);
    tensor(f, "blk.1.ffn_gate.weight", HR_TYPE_Q4_K, 256, 512);
    tensor(f, "blk.1.attn_output.weight", HR_TYPE_Q4_K, 256, 256);

    /* Llama 3 factors: 1 for short wavelengths, the factor (32) for long */
    const struct gguf_tensor *rf = tensor(f, "rope_freqs.weight", HR_TYPE_F32, 32, 1);
    const float *ff = rf->data;
    cr_assert_float_eq(ff[0], 1.0f, 1e-6);
    cr_assert_float_eq(ff[31], 32.0f, 1e-4);
    for (int i = 1; i < 32; i++)
        cr_assert(ff[i] >= ff[i - 1], "rope_freqs not monotone at %d", i);

    /* the vocabulary: 1024 tokens, byte tokens first, specials at the end */
    cr_assert_eq(n_tokens(f), 1024);
    cr_assert(gguf_str_eq(token_text(f, 0), "!"));
    cr_assert(gguf_str_eq(token_text(f, 255 - 68 + 1 + 32), "\xc4\xa0"), "space is U+0120");
    uint32_t bos = u32(f, "tokenizer.ggml.bos_token_id");
    cr_assert_eq(bos, 1024 - 16);
    cr_assert(gguf_str_eq(token_text(f, bos), "<|begin_of_text|>"));
    cr_assert(gguf_str_eq(token_text(f, u32(f, "tokenizer.ggml.eos_token_id")),
                          "<|end_of_text|>"));
    struct gguf_str pre;
    cr_assert_eq(gguf_get_str(f, "tokenizer.ggml.pre", &pre, NULL), 0);
    cr_assert(gguf_str_eq(pre, "llama-bpe"));
    gguf_free(f);

    struct hr_model *m;
    cr_assert_eq(hr_model_load(path, NULL, &m, &err), 0, "%s", err.msg);
    cr_assert_str_eq(hr_model_arch(m), "llama");
    cr_assert_eq(hr_model_n_vocab(m), 1024);
    cr_assert_eq(hr_model_n_ctx_train(m), 2048);
    const struct hr_vocab *v = hr_model_vocab(m);
    cr_assert_eq(hr_vocab_bos(v), 1024 - 16);
    cr_assert(hr_vocab_add_bos(v));
    /* the merges make words: " the" is one token after BOS */
    int32_t ids[16];
    int64_t n = hr_tokenize(v, " the", 4, false, false, ids, 16);
    cr_assert_eq(n, 1, "' the' gives %lld tokens", (long long)n);
    hr_model_free(m);
}

Test(mkmodel, tiny_qwen2_falls_back_like_llama_quantize, .timeout = 60)
{
    const char *path = tmp("qwen2.gguf");
    mk("tiny-qwen2", "q4_k_m", path);
    struct gguf_file *f;
    struct hr_err err;
    cr_assert_eq(gguf_open(path, GGUF_DEFAULT_BUDGET, &f, &err), 0, "%s", err.msg);
    cr_assert_eq(u32(f, "qwen2.embedding_length"), 128);
    cr_assert_null(gguf_find_kv(f, "qwen2.attention.key_length"));
    /* width 128 is not a multiple of 256: Q4_K -> Q5_0, Q6_K -> Q8_0, and
     * the tied output's Q6_K -> Q8_0 */
    tensor(f, "token_embd.weight", HR_TYPE_Q8_0, 128, 1024);
    tensor(f, "blk.0.attn_q.weight", HR_TYPE_Q5_0, 128, 128);
    tensor(f, "blk.0.attn_v.weight", HR_TYPE_Q5_0, 128, 64);
    tensor(f, "blk.1.attn_v.weight", HR_TYPE_Q8_0, 128, 64);
    tensor(f, "blk.0.ffn_up.weight", HR_TYPE_Q5_0, 128, 512);
    /* ffn_down rows are n_ff = 512 long: the K types fit */
    tensor(f, "blk.0.ffn_down.weight", HR_TYPE_Q4_K, 512, 128);
    tensor(f, "blk.1.ffn_down.weight", HR_TYPE_Q6_K, 512, 128);
    tensor(f, "blk.0.attn_q.bias", HR_TYPE_F32, 128, 1);
    tensor(f, "blk.1.attn_k.bias", HR_TYPE_F32, 64, 1);
    tensor(f, "blk.1.attn_v.bias", HR_TYPE_F32, 64, 1);
    cr_assert_eq(f->n_tensors, 2 + 2 * 12);
    cr_assert_eq(n_tokens(f), 1024);
    uint32_t eos = u32(f, "tokenizer.ggml.eos_token_id");
    cr_assert_eq(eos, 1024 - 64);
    cr_assert(gguf_str_eq(token_text(f, eos), "<|endoftext|>"));
    cr_assert(gguf_str_eq(token_text(f, 1023), "[PAD1023]"));
    gguf_free(f);

    /* Q2_K: attn_v gets Q3_K (n_gqa 2 < 4), K-quants fall back to Q4_0 */
    const char *p2 = tmp("qwen2-q2k.gguf");
    mk("tiny-qwen2", "q2_k", p2);
    cr_assert_eq(gguf_open(p2, GGUF_DEFAULT_BUDGET, &f, &err), 0, "%s", err.msg);
    tensor(f, "blk.0.attn_q.weight", HR_TYPE_Q4_0, 128, 128);
    tensor(f, "blk.0.attn_v.weight", HR_TYPE_Q4_0, 128, 64);
    tensor(f, "blk.0.ffn_down.weight", HR_TYPE_Q3_K, 512, 128);
    tensor(f, "token_embd.weight", HR_TYPE_Q8_0, 128, 1024);
    gguf_free(f);
    check_evaluates(path);
    check_evaluates(p2);
}

Test(mkmodel, tiny_qwen3_f16, .timeout = 60)
{
    const char *path = tmp("qwen3.gguf");
    mk("tiny-qwen3", "f16", path);
    struct gguf_file *f;
    struct hr_err err;
    cr_assert_eq(gguf_open(path, GGUF_DEFAULT_BUDGET, &f, &err), 0, "%s", err.msg);
    cr_assert_eq(u32(f, "qwen3.attention.key_length"), 128);
    cr_assert_eq(u32(f, "general.file_type"), 1);
    cr_assert_null(gguf_find_kv(f, "general.quantization_version"));
    tensor(f, "token_embd.weight", HR_TYPE_F16, 256, 1024);
    tensor(f, "blk.0.attn_q.weight", HR_TYPE_F16, 256, 512); /* n_head·head_dim != n_embd */
    tensor(f, "blk.0.attn_k.weight", HR_TYPE_F16, 256, 256);
    tensor(f, "blk.0.attn_output.weight", HR_TYPE_F16, 512, 256);
    tensor(f, "blk.1.attn_q_norm.weight", HR_TYPE_F32, 128, 1);
    tensor(f, "blk.1.attn_k_norm.weight", HR_TYPE_F32, 128, 1);
    cr_assert_null(gguf_find_tensor(f, "blk.0.attn_q.bias"));
    /* norm weights are 1 */
    const float *nw = gguf_find_tensor(f, "blk.0.attn_norm.weight")->data;
    for (int i = 0; i < 256; i++)
        cr_assert_eq(nw[i], 1.0f);
    /* weights look like N(0, 0.02²) */
    const struct gguf_tensor *t = gguf_find_tensor(f, "blk.0.ffn_up.weight");
    const uint16_t *h = t->data;
    double s = 0, s2 = 0;
    int64_t n = t->ne[0] * t->ne[1];
    for (int64_t i = 0; i < n; i++) {
        double x = hr_fp16_to_fp32(h[i]);
        s += x;
        s2 += x * x;
    }
    double mean = s / (double)n, sd = sqrt(s2 / (double)n - mean * mean);
    cr_assert(fabs(mean) < 1e-3 && sd > 0.018 && sd < 0.022, "mean %g sd %g", mean, sd);
    gguf_free(f);
    check_evaluates(path);
}

Test(mkmodel, every_type_loads_and_evaluates, .timeout = 300)
{
    static const char *const types[] = {"f32",  "f16",  "bf16",   "q8_0",   "q4_0",
                                        "q4_1", "q5_0", "q5_1",   "q2_k",   "q3_k_m",
                                        "q4_k_m", "q5_k_m", "q6_k"};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        char name[64];
        snprintf(name, sizeof name, "llama-%s.gguf", types[i]);
        mk("tiny-llama", types[i], tmp(name));
        check_evaluates(tmp(name));
        unlink(tmp(name));
    }
}

Test(mkmodel, generate_runs_on_the_file, .timeout = 60)
{
    const char *path = tmp("gen.gguf");
    mk("tiny-qwen3", "q8_0", path);
    char *out, *err;
    int st = tu_hearth(&out, &err, "generate", "-m", path, "-p", "Once upon a time", "-n", "8",
                 "--temp", "0", "-t", "2", NULL);
    cr_assert_eq(st, 0, "exit %d: %s", st, err);
    cr_assert(strlen(out) > 1, "nothing generated: '%s' / %s", out, err);
    cr_assert(strstr(err, "generated "), "%s", err);
    free(out);
    free(err);
}

Test(mkmodel, output_depends_only_on_the_arguments, .timeout = 60)
{
    char *out, *err;
    const char *a = tmp("a.gguf"), *b = tmp("b.gguf"), *c = tmp("c.gguf");
    cr_assert_eq(tu_hearth(&out, &err, "mkmodel", "--shape", "tiny-llama", "--type", "q4_0", "-o", a,
                     "-t", "1", NULL), 0, "%s", err);
    free(out), free(err);
    cr_assert_eq(tu_hearth(&out, &err, "mkmodel", "--shape", "tiny-llama", "--type", "q4_0", "-o", b,
                     "-t", "2", NULL), 0, "%s", err);
    free(out), free(err);
    cr_assert_eq(tu_hearth(&out, &err, "mkmodel", "--shape", "tiny-llama", "--type", "q4_0", "-o", c,
                     "--seed", "7", NULL), 0, "%s", err);
    free(out), free(err);
    size_t na, nb, nc;
    char *da = tu_read_file(a, &na), *db = tu_read_file(b, &nb), *dc = tu_read_file(c, &nc);
    cr_assert(da && db && dc);
    cr_assert(na == nb && memcmp(da, db, na) == 0, "thread count changed the file");
    cr_assert(na == nc && memcmp(da, dc, na) != 0, "the seed changed nothing");
    free(da), free(db), free(dc);
}

/* The real shapes, without generating gigabytes: --plan lists every tensor
 * with its type, shape and size. Tensor counts are those of the published
 * GGUF files. */
static char *plan(const char *shape, const char *type)
{
    char *out, *err;
    int st = tu_hearth(&out, &err, "mkmodel", "--shape", shape, "--type", type, "--plan", NULL);
    cr_assert_eq(st, 0, "%s", err);
    free(err);
    return out;
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static void has_line(const char *out, const char *line)
{
    char pat[160];
    snprintf(pat, sizeof pat, "%s ", line);
    const char *p = strstr(out, pat);
    cr_assert(p && (p == out || p[-1] == '\n'), "plan lacks '%s'", line);
}

Test(mkmodel, real_shapes_plan, .timeout = 60)
{
    char *o = plan("smollm2-135m", "q8_0");
    cr_assert_eq(count_lines(o), 272);
    has_line(o, "token_embd.weight q8_0 576 49152");
    has_line(o, "blk.29.attn_k.weight q8_0 576 192");
    has_line(o, "blk.0.ffn_down.weight q8_0 1536 576");
    free(o);

    o = plan("qwen2.5-0.5b", "q4_k_m");
    cr_assert_eq(count_lines(o), 290);
    has_line(o, "token_embd.weight q8_0 896 151936");
    has_line(o, "blk.0.attn_q.weight q5_0 896 896");
    has_line(o, "blk.0.attn_k.weight q5_0 896 128");
    has_line(o, "blk.0.attn_q.bias f32 896 1");
    has_line(o, "blk.0.attn_v.weight q8_0 896 128"); /* Q6_K fell back */
    has_line(o, "blk.3.attn_v.weight q5_0 896 128");
    has_line(o, "blk.0.ffn_down.weight q6_K 4864 896");
    has_line(o, "blk.3.ffn_down.weight q4_K 4864 896");
    has_line(o, "blk.5.ffn_down.weight q6_K 4864 896"); /* (5 - 3) % 3 == 2 */
    has_line(o, "blk.23.ffn_gate.weight q5_0 896 4864");
    free(o);

    o = plan("qwen2.5-0.5b", "q4_0");
    has_line(o, "token_embd.weight q8_0 896 151936");
    has_line(o, "blk.0.attn_q.weight q4_0 896 896");
    free(o);

    o = plan("qwen2.5-1.5b", "q4_k_m");
    cr_assert_eq(count_lines(o), 338);
    has_line(o, "token_embd.weight q6_K 1536 151936");
    has_line(o, "blk.0.attn_k.weight q4_K 1536 256");
    has_line(o, "blk.27.ffn_up.weight q4_K 1536 8960");
    free(o);

    o = plan("qwen3-0.6b", "q8_0");
    cr_assert_eq(count_lines(o), 310);
    has_line(o, "blk.0.attn_q.weight q8_0 1024 2048");
    has_line(o, "blk.0.attn_k.weight q8_0 1024 1024");
    has_line(o, "blk.0.attn_output.weight q8_0 2048 1024");
    has_line(o, "blk.27.attn_k_norm.weight f32 128 1");
    has_line(o, "blk.0.ffn_down.weight q8_0 3072 1024");
    free(o);

    o = plan("llama-3.2-1b", "q4_k_m");
    cr_assert_eq(count_lines(o), 147);
    has_line(o, "token_embd.weight q6_K 2048 128256");
    has_line(o, "rope_freqs.weight f32 32 1");
    has_line(o, "blk.0.attn_q.weight q4_K 2048 2048");
    has_line(o, "blk.0.attn_k.weight q4_K 2048 512");
    has_line(o, "blk.0.attn_v.weight q6_K 2048 512");
    has_line(o, "blk.15.ffn_down.weight q6_K 8192 2048");
    has_line(o, "blk.1.ffn_down.weight q6_K 8192 2048"); /* i < n/8 */
    has_line(o, "blk.2.ffn_down.weight q4_K 8192 2048");
    free(o);
}

/* ---- bad arguments ---------------------------------------------------------------- */

Test(mkmodel, bad_arguments_give_one_line_errors)
{
    char *out, *err;
    int st = tu_hearth(&out, &err, "mkmodel", "--shape", "gpt-5", "--type", "q8_0", "-o", tmp("x"),
                 NULL);
    cr_assert_eq(st, 2);
    tu_assert_one_line_error(err, "unknown shape 'gpt-5'");
    cr_assert(strstr(err, "qwen2.5-0.5b") && !strstr(err, "tiny"), "%s", err);
    free(out), free(err);

    st = tu_hearth(&out, &err, "mkmodel", "--shape", "tiny-llama", "--type", "q9_9", "-o", tmp("x"),
             NULL);
    cr_assert_eq(st, 2);
    tu_assert_one_line_error(err, "unknown type 'q9_9'");
    free(out), free(err);

    st = tu_hearth(&out, &err, "mkmodel", "--shape", "tiny-llama", "--type", "q8_0", NULL);
    cr_assert_eq(st, 2);
    tu_assert_one_line_error(err, "-o FILE");
    free(out), free(err);

    st = tu_hearth(&out, &err, "mkmodel", "--shape", "tiny-llama", "--type", "q8_0", "-o",
             "/nonexistent-dir/m.gguf", NULL);
    cr_assert_eq(st, 1);
    tu_assert_one_line_error(err, "/nonexistent-dir/m.gguf");
    free(out), free(err);

    st = tu_hearth(&out, &err, "mkmodel", "--shape", "tiny-llama", "--type", "q8_0", "-o", tmp("x"),
             "--seed", "-3", NULL);
    cr_assert_eq(st, 2);
    tu_assert_one_line_error(err, "--seed");
    free(out), free(err);
    cr_assert(!tu_exists(tmp("x")), "a file was written after a usage error");

    st = tu_hearth(&out, &err, "mkmodel", "--list", NULL);
    cr_assert_eq(st, 0);
    cr_assert_str_eq(out, "smollm2-135m\nqwen2.5-0.5b\nqwen2.5-1.5b\nqwen3-0.6b\nllama-3.2-1b\n");
    free(out), free(err);
}

/* ---- hearth bench ----------------------------------------------------------------- */

Test(mkmodel, bench_json_lines, .timeout = 120)
{
    const char *path = tmp("bench.gguf");
    mk("tiny-llama", "q8_0", path);
    char *out, *err, *lines[8];
    int st = tu_hearth(&out, &err, "bench", "-m", path, "--json", "-p", "8", "-n", "4", "-r", "1",
                 "-t", "1", "--no-limits", NULL);
    cr_assert_eq(st, 0, "exit %d: %s", st, err);
    int n = json_lines(out, lines, 8);
    cr_assert_eq(n, 2, "expected 2 lines, got %d", n);
    cr_assert(strstr(lines[0], "\"test\": \"pp8\""), "%s", lines[0]);
    cr_assert(strstr(lines[1], "\"test\": \"tg4\""), "%s", lines[1]);
    for (int i = 0; i < 2; i++) {
        cr_assert(json_num(lines[i], "tokens_per_second") > 0, "%s", lines[i]);
        cr_assert_eq(json_num(lines[i], "threads"), 1);
        cr_assert_eq(json_num(lines[i], "reps"), 1);
        cr_assert(strstr(lines[i], "\"type\": \"Q8_0\"") && strstr(lines[i], "\"isa\": \""),
                  "%s", lines[i]);
        cr_assert(strstr(lines[i], "\"limit_fraction\": null"), "%s", lines[i]);
    }
    cr_assert(json_num(lines[0], "gop_per_second") > 0);
    cr_assert(json_num(lines[1], "gbytes_per_second") > 0);
    /* tied: every tensor is read per token */
    cr_assert_eq(json_num(lines[1], "read_bytes_per_token"), json_num(lines[1], "size_bytes"));
    free(out), free(err);
}

/* -d: the tests start from a cache of D tokens; their names and n_depth say so */
Test(mkmodel, bench_depth, .timeout = 120)
{
    const char *path = tmp("bench.gguf");
    mk("tiny-llama", "q8_0", path);
    char *out, *err, *lines[8];
    int st = tu_hearth(&out, &err, "bench", "-m", path, "--json", "-p", "8", "-n", "4", "-d", "40",
                       "-r", "2", "-t", "1", "--no-limits", NULL);
    cr_assert_eq(st, 0, "exit %d: %s", st, err);
    cr_assert_eq(json_lines(out, lines, 8), 2);
    cr_assert(strstr(lines[0], "\"test\": \"pp8 @ d40\""), "%s", lines[0]);
    cr_assert(strstr(lines[1], "\"test\": \"tg4 @ d40\""), "%s", lines[1]);
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(json_num(lines[i], "n_depth"), 40, "%s", lines[i]);
        cr_assert(json_num(lines[i], "tokens_per_second") > 0, "%s", lines[i]);
    }
    cr_assert(strstr(err, "depth: 40 tokens"), "%s", err); /* filled once */
    cr_assert(!strstr(strstr(err, "depth: 40 tokens") + 1, "depth: 40 tokens"), "%s", err);
    free(out), free(err);
    /* without -d: n_depth 0, the names unchanged */
    st = tu_hearth(&out, &err, "bench", "-m", path, "--json", "-p", "4", "-n", "0", "-r", "1",
                   "-t", "1", "--no-limits", NULL);
    cr_assert_eq(st, 0, "exit %d: %s", st, err);
    cr_assert_eq(json_lines(out, lines, 8), 1);
    cr_assert(strstr(lines[0], "\"test\": \"pp4\"") && json_num(lines[0], "n_depth") == 0,
              "%s", lines[0]);
    free(out), free(err);
    /* a depth past the model's context is refused */
    st = tu_hearth(&out, &err, "bench", "-m", path, "-d", "1000000", "--no-limits", NULL);
    cr_assert_neq(st, 0);
    cr_assert(strstr(err, "context holds"), "%s", err);
    free(out), free(err);
}

Test(mkmodel, bench_measures_limits, .timeout = 120)
{
    const char *path = tmp("bench.gguf");
    mk("tiny-qwen2", "q4_0", path);
    setenv("XDG_CACHE_HOME", tmpdir, 1);
    setenv("HEARTH_LIMITS_BUFFER_MIB", "16", 1); /* small: neither cached nor DRAM */
    char *out, *err, *lines[8];
    int st = tu_hearth(&out, &err, "bench", "--limits", "--json", "-t", "1", NULL);
    cr_assert_eq(st, 0, "exit %d: %s", st, err);
    cr_assert_eq(json_lines(out, lines, 8), 1);
    cr_assert(json_num(lines[0], "read_gbs") > 0 && json_num(lines[0], "int8_gops") > 0 &&
              json_num(lines[0], "fp32_gflops") > 0, "%s", lines[0]);
    /* the AMX tiles' peak: always a number, measured (> 0) exactly where the
     * engine can use the tiles */
    bool amx = hr_isa_detect() == HR_ISA_AMX;
    double ax = json_num(lines[0], "amx_int8_gops");
    cr_assert(amx ? ax > 0 : ax == 0, "AMX %s: %s", amx ? "present" : "absent", lines[0]);
    free(out), free(err);

    st = tu_hearth(&out, &err, "bench", "-m", path, "--json", "-p", "8", "-n", "2", "-r", "2", "-t",
             "1", NULL);
    cr_assert_eq(st, 0, "exit %d: %s", st, err);
    cr_assert_eq(json_lines(out, lines, 8), 2);
    for (int i = 0; i < 2; i++)
        cr_assert(json_num(lines[i], "limit_fraction") > 0, "%s", lines[i]);
    cr_assert(strstr(lines[0], "\"limit\": \"int8_gops\""), "%s", lines[0]);
    cr_assert(strstr(lines[1], "\"limit\": \"read_gbs\""), "%s", lines[1]);
    /* int8 pp: also against the AMX peak where there is one; never tg */
    if (amx)
        cr_assert(json_num(lines[0], "amx_limit_value") > 0 &&
                      json_num(lines[0], "amx_limit_fraction") > 0 &&
                      json_num(lines[0], "amx_limit_value") > json_num(lines[0], "limit_value"),
                  "%s", lines[0]);
    else
        cr_assert(!strstr(lines[0], "amx_limit"), "no AMX, yet: %s", lines[0]);
    cr_assert(!strstr(lines[1], "amx_limit"), "%s", lines[1]);
    free(out), free(err);
    cr_assert(!tu_exists(tmp("hearth/limits.json")), "a test-sized measurement was cached");
    unsetenv("HEARTH_LIMITS_BUFFER_MIB");
    unsetenv("XDG_CACHE_HOME");
}

Test(mkmodel, bench_reads_the_cache, .timeout = 60)
{
    const char *path = tmp("bench.gguf");
    mk("tiny-llama", "f16", path);
    /* this machine's CPU model, as /proc/cpuinfo names it */
    char cpu[256] = "unknown", line[512];
    FILE *ci = fopen("/proc/cpuinfo", "r");
    while (ci && fgets(line, sizeof line, ci))
        if (!strncmp(line, "model name", 10) && strchr(line, ':')) {
            char *v = strchr(line, ':') + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            v[strcspn(v, "\n")] = '\0';
            snprintf(cpu, sizeof cpu, "%s", v);
            break;
        }
    if (ci)
        fclose(ci);
    cr_assert(!strchr(cpu, '"') && !strchr(cpu, '\\'));
    mkdir(tmp("hearth"), 0755);
    FILE *f = fopen(tmp("hearth/limits.json"), "w");
    cr_assert(f);
    /* an entry agrees with the machine about AMX, else it is stale */
    fprintf(f,
            "[\n{\"cpu\": \"%s\", \"threads\": 1, \"read_gbs\": 123.5, \"read_kernel\": \"avx2\", "
            "\"int8_gops\": 1000.0, \"int8_kernel\": \"x\", \"fp32_gflops\": 250.0, "
            "\"fp32_kernel\": \"y\", \"amx_int8_gops\": %s}\n]\n",
            cpu, hr_isa_detect() == HR_ISA_AMX ? "5000.0" : "0.000");
    fclose(f);
    setenv("XDG_CACHE_HOME", tmpdir, 1);
    char *out, *err, *lines[8];
    int st = tu_hearth(&out, &err, "bench", "-m", path, "--json", "-p", "4", "-n", "2", "-r", "1",
                 "-t", "1", NULL);
    unsetenv("XDG_CACHE_HOME");
    cr_assert_eq(st, 0, "exit %d: %s", st, err);
    cr_assert(!strstr(err, "measuring"), "measured despite the cache: %s", err);
    cr_assert_eq(json_lines(out, lines, 8), 2);
    /* F16 weights: the fp32 peak is the limit for pp */
    cr_assert(strstr(lines[0], "\"limit\": \"fp32_gflops\""), "%s", lines[0]);
    cr_assert_float_eq(json_num(lines[0], "limit_value"), 250.0, 1e-9);
    cr_assert_float_eq(json_num(lines[1], "limit_value"), 123.5, 1e-9);
    cr_assert(!strstr(lines[0], "amx_limit"), "AMX's peak is int8's: %s", lines[0]);
    free(out), free(err);
}

/* A cache entry written before AMX was measured (no "amx_int8_gops") is read
 * as it is on a CPU without AMX, and on one with AMX measured again and
 * replaced (not duplicated), the other entries kept. */
Test(mkmodel, bench_cache_before_amx, .timeout = 240)
{
    const char *path = tmp("bench-q8.gguf");
    mk("tiny-llama", "q8_0", path);
    char cpu[256] = "unknown", line[1024];
    FILE *ci = fopen("/proc/cpuinfo", "r");
    while (ci && fgets(line, sizeof line, ci))
        if (!strncmp(line, "model name", 10) && strchr(line, ':')) {
            char *v = strchr(line, ':') + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            v[strcspn(v, "\n")] = '\0';
            snprintf(cpu, sizeof cpu, "%s", v);
            break;
        }
    if (ci)
        fclose(ci);
    cr_assert(!strchr(cpu, '"') && !strchr(cpu, '\\'));
    mkdir(tmp("hearth"), 0755);
    FILE *f = fopen(tmp("hearth/limits.json"), "w");
    cr_assert(f);
    fprintf(f,
            "[\n{\"cpu\": \"another CPU\", \"threads\": 1, \"read_gbs\": 1.5, "
            "\"int8_gops\": 2.5, \"fp32_gflops\": 3.5},\n"
            "{\"cpu\": \"%s\", \"threads\": 1, \"read_gbs\": 123.5, \"read_kernel\": \"avx2\", "
            "\"int8_gops\": 1000.0, \"int8_kernel\": \"x\", \"fp32_gflops\": 250.0, "
            "\"fp32_kernel\": \"y\"}\n]\n",
            cpu);
    fclose(f);
    bool amx = hr_isa_detect() == HR_ISA_AMX;
    setenv("XDG_CACHE_HOME", tmpdir, 1);
    char *out, *err, *lines[8];
    int st = tu_hearth(&out, &err, "bench", "-m", path, "--json", "-p", "4", "-n", "0", "-r", "1",
                       "-t", "1", NULL);
    unsetenv("XDG_CACHE_HOME");
    cr_assert_eq(st, 0, "exit %d: %s", st, err);
    cr_assert_eq(json_lines(out, lines, 8), 1);
    if (!amx) {
        cr_assert(!strstr(err, "measuring"), "measured despite the cache: %s", err);
        cr_assert_float_eq(json_num(lines[0], "limit_value"), 1000.0, 1e-9);
        cr_assert(!strstr(lines[0], "amx_limit"), "%s", lines[0]);
        free(out), free(err);
        return;
    }
    cr_assert(strstr(err, "measuring"), "an entry without the AMX peak was used: %s", err);
    cr_assert(json_num(lines[0], "amx_limit_value") > 0, "%s", lines[0]);
    free(out), free(err);
    /* the file: the other CPU's entry, and this one once, with the AMX peak */
    f = fopen(tmp("hearth/limits.json"), "r");
    cr_assert(f);
    int others = 0, mine = 0;
    while (fgets(line, sizeof line, f)) {
        if (strstr(line, "\"another CPU\""))
            others++;
        else if (strstr(line, cpu)) {
            mine++;
            cr_assert(json_num(line, "amx_int8_gops") > 0, "%s", line);
        }
    }
    fclose(f);
    cr_assert(others == 1 && mine == 1, "%d entries of the other CPU, %d of this one", others,
              mine);
}

Test(mkmodel, bench_bad_arguments)
{
    char *out, *err;
    int st = tu_hearth(&out, &err, "bench", "--json", NULL);
    cr_assert_eq(st, 2);
    tu_assert_one_line_error(err, "-m MODEL");
    free(out), free(err);

    st = tu_hearth(&out, &err, "bench", "-m", tmp("missing.gguf"), NULL);
    cr_assert_eq(st, 1);
    tu_assert_one_line_error(err, "missing.gguf");
    free(out), free(err);

    st = tu_hearth(&out, &err, "bench", "-m", tmp("missing.gguf"), "-p", "0", "-n", "0", NULL);
    cr_assert_eq(st, 2);
    tu_assert_one_line_error(err, "nothing to measure");
    free(out), free(err);

    st = tu_hearth(&out, &err, "bench", "-m", tmp("missing.gguf"), "-r", "0", NULL);
    cr_assert_eq(st, 2);
    tu_assert_one_line_error(err, "-r");
    free(out), free(err);
}
