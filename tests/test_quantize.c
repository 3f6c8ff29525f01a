/*
 * test_quantize.c — `hearth quantize` and core/quantize.h.
 *
 * The main check is end to end: quantize an F32 model with the CLI and
 * compare the result with the file llama-quantize made from the same model —
 * every key/value pair byte for byte (same order), every tensor with the same
 * type, shape and bytes, tensors in the input's order. With
 * ../shared/refdata: the synthetic llama/qwen2/qwen3 models in every mix
 * refdata has, and stories260K (odd widths: F16/Q8_0 fallbacks). On a fresh
 * clone: the bundled models/stories260K.gguf against the shipped copies in
 * tests/data/models.
 *
 * Then the rules on their own (quantize_choose_type with hand-built model
 * facts: layer patterns, GQA, 70B, experts, tied output, fallbacks, ranks in
 * llama-quantize's order), the mixes refdata lacks (decoded and compared with
 * the input), F16/BF16 input, thread-count independence, and bad input: one
 * line on stderr, non-zero exit, and no OUT (nor any stray file) left.
 */
#include "gguf.h"
#include "quant.h"
#include "quantize.h"
#include "testutil.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- helpers ------------------------------------------------------------------ */

/* A fresh directory for one test's outputs; rm_dir removes it (and checks
 * that it holds only `expect` files: no temp or scratch file left). */
static char *mk_dir(void)
{
    char tmpl[] = "/tmp/hearth-quantize-XXXXXX";
    char *d = mkdtemp(tmpl);
    cr_assert(d, "mkdtemp: %s", strerror(errno));
    return strdup(d);
}

static int count_files(const char *dir)
{
    DIR *d = opendir(dir);
    cr_assert(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

static void rm_dir(char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        char p[4096];
        for (struct dirent *e; (e = readdir(d));) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
        closedir(d);
    }
    rmdir(dir);
    free(dir);
}

static char *path_in(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* Quantizes `in` to `type` with the CLI into dir/out.gguf; returns the path
 * (owned). Asserts success, silence on stdout, one progress line per tensor
 * plus the two summary lines on stderr. */
static char *quantize_cli(const char *dir, const char *in, const char *type, const char *threads)
{
    char *out_path = path_in(dir, "out.gguf");
    char *out, *err;
    int st = tu_hearth(&out, &err, "quantize", in, out_path, type, "-t", threads, NULL);
    cr_assert_eq(st, 0, "quantize %s %s: exit %d: %s", in, type, st, err);
    cr_assert_str_empty(out, "stdout: '%s'", out);
    struct gguf_file *f;
    cr_assert_eq(gguf_open(in, GGUF_DEFAULT_BUDGET, &f, NULL), 0);
    int lines = 0;
    for (const char *c = err; *c; c++)
        lines += *c == '\n';
    cr_assert_eq(lines, (int)f->n_tensors + 2, "stderr has %d lines:\n%s", lines, err);
    cr_assert(strstr(err, "smaller"), "no summary: %s", err);
    gguf_free(f);
    free(out);
    free(err);
    return out_path;
}

/* Byte range of key/value pair i in a file. */
static void kv_span(const struct gguf_file *f, uint64_t i, uint64_t *lo, uint64_t *hi)
{
    *lo = f->kv[i].offset;
    if (i + 1 < f->n_kv)
        *hi = f->kv[i + 1].offset;
    else if (f->n_tensors)
        *hi = f->tensors[0].info_offset;
    else
        *hi = f->size;
}

/* Our output equals llama-quantize's: same pairs in the same order, byte for
 * byte; same tensors with the same type, shape and bytes; our tensors in the
 * input's order. */
static void assert_same_model(const char *ours, const char *ref, const char *in)
{
    struct gguf_file *a, *b, *c;
    struct hr_err e;
    cr_assert_eq(gguf_open(ours, GGUF_DEFAULT_BUDGET, &a, &e), 0, "%s: %s", ours, e.msg);
    cr_assert_eq(gguf_open(ref, GGUF_DEFAULT_BUDGET, &b, &e), 0, "%s: %s", ref, e.msg);
    cr_assert_eq(gguf_open(in, GGUF_DEFAULT_BUDGET, &c, &e), 0, "%s: %s", in, e.msg);
    cr_assert_eq(a->n_kv, b->n_kv, "%s: %llu pairs, reference %llu", ours,
                 (unsigned long long)a->n_kv, (unsigned long long)b->n_kv);
    for (uint64_t i = 0; i < a->n_kv; i++) {
        uint64_t alo, ahi, blo, bhi;
        kv_span(a, i, &alo, &ahi);
        kv_span(b, i, &blo, &bhi);
        cr_assert(ahi - alo == bhi - blo && !memcmp(a->base + alo, b->base + blo, ahi - alo),
                  "%s: pair %llu (%.*s) differs from the reference's (%.*s)", ours,
                  (unsigned long long)i, (int)a->kv[i].key.len, a->kv[i].key.ptr,
                  (int)b->kv[i].key.len, b->kv[i].key.ptr);
    }
    uint32_t ft_a, ft_b;
    cr_assert_eq(gguf_get_u32(a, "general.file_type", &ft_a, NULL), 0);
    cr_assert_eq(gguf_get_u32(b, "general.file_type", &ft_b, NULL), 0);
    cr_assert_eq(ft_a, ft_b);
    cr_assert_eq(a->n_tensors, b->n_tensors);
    cr_assert_eq(a->n_tensors, c->n_tensors);
    for (uint64_t i = 0; i < a->n_tensors; i++) {
        const struct gguf_tensor *t = &a->tensors[i];
        cr_assert_str_eq(t->name, c->tensors[i].name, "%s: tensor %llu is not in input order",
                         ours, (unsigned long long)i);
        const struct gguf_tensor *r = gguf_find_tensor(b, t->name);
        cr_assert(r, "%s: %s not in the reference", ours, t->name);
        cr_assert_eq(t->type, r->type, "%s: %s is %s, llama-quantize wrote %s", ours, t->name,
                     hr_type_name(t->type), hr_type_name(r->type));
        cr_assert_eq(t->n_dims, r->n_dims, "%s: %s n_dims", ours, t->name);
        for (int d = 0; d < 4; d++)
            cr_assert_eq(t->ne[d], r->ne[d], "%s: %s ne[%d]", ours, t->name, d);
        cr_assert_eq(t->nbytes, r->nbytes);
        if (memcmp(t->data, r->data, (size_t)t->nbytes) != 0) {
            size_t k = 0;
            while (((const uint8_t *)t->data)[k] == ((const uint8_t *)r->data)[k])
                k++;
            cr_assert_fail("%s: %s (%s) differs from llama-quantize's at byte %zu of %llu", ours,
                           t->name, hr_type_name(t->type), k, (unsigned long long)t->nbytes);
        }
    }
    gguf_free(a);
    gguf_free(b);
    gguf_free(c);
}

/* ---- against llama-quantize's files --------------------------------------------- */

static const char *const ref_types[] = {"f16",  "bf16", "q8_0",   "q4_0",   "q4_1",   "q5_0",
                                        "q5_1", "q2_k", "q3_k_m", "q4_k_m", "q5_k_m", "q6_k"};

Test(quantize, synthetic_models_match_llama_quantize, .timeout = 600)
{
    if (!tu_ref("models"))
        cr_skip_test("../shared/refdata not present (fresh clone)");
    const char *archs[] = {"llama", "qwen2", "qwen3"};
    int n = 0;
    for (size_t a = 0; a < 3; a++) {
        char rel[128];
        snprintf(rel, sizeof rel, "models/syn-%s-f32.gguf", archs[a]);
        char *in = strdup(tu_ref(rel));
        cr_assert(tu_exists(in), "%s missing", in);
        for (size_t t = 0; t < sizeof ref_types / sizeof ref_types[0]; t++) {
            snprintf(rel, sizeof rel, "models/syn-%s-%s.gguf", archs[a], ref_types[t]);
            const char *ref = tu_ref(rel);
            cr_assert(tu_exists(ref), "%s missing", ref);
            char *dir = mk_dir();
            /* alternate the thread count: the bytes must not depend on it */
            char *out = quantize_cli(dir, in, ref_types[t], (t % 3) == 0 ? "1" : "3");
            assert_same_model(out, ref, in);
            cr_assert_eq(count_files(dir), 1, "stray files next to %s", out);
            free(out);
            rm_dir(dir);
            n++;
        }
        free(in);
    }
    cr_assert_eq(n, 36);
}

static void stories_vs(const char *(*locate)(const char *), const char *base)
{
    const char *types[] = {"q8_0", "q4_0", "q5_1"};
    for (int t = 0; t < 3; t++) {
        char rel[128];
        snprintf(rel, sizeof rel, "models/stories260K-%s.gguf", types[t]);
        char *ref = strdup(locate(rel));
        cr_assert(tu_exists(ref), "%s missing", ref);
        char *dir = mk_dir();
        char *out = quantize_cli(dir, base, types[t], "2");
        assert_same_model(out, ref, base);
        /* the odd widths took the fallbacks: ffn_down (172 wide) is F16,
         * output (64 wide) Q8_0 */
        struct gguf_file *f;
        cr_assert_eq(gguf_open(out, GGUF_DEFAULT_BUDGET, &f, NULL), 0);
        cr_assert_eq(gguf_find_tensor(f, "blk.0.ffn_down.weight")->type, HR_TYPE_F16);
        cr_assert_eq(gguf_find_tensor(f, "output.weight")->type, HR_TYPE_Q8_0);
        gguf_free(f);
        free(out);
        free(ref);
        rm_dir(dir);
    }
}

Test(quantize, stories_fallbacks_match_llama_quantize, .timeout = 300)
{
    if (!tu_ref("models"))
        cr_skip_test("../shared/refdata not present (fresh clone)");
    char *base = strdup(tu_ref("models/stories260K.gguf"));
    stories_vs(tu_ref, base);
    free(base);
}

/* Runs on a fresh clone too: the bundled model against the shipped copies. */
Test(quantize, bundled_stories_match_shipped_copies, .timeout = 300)
{
    stories_vs(tu_data, tu_stories());
}

/* ---- the rules on their own ---------------------------------------------------- */

static const int64_t NE_SQ[4] = {4096, 4096, 1, 1};
static const int64_t NE_V[4] = {4096, 1024, 1, 1};
static const int64_t NE_DOWN[4] = {11008, 4096, 1, 1};

static struct quantize_model_info llama7(int n_layer, int n_head, int n_head_kv)
{
    return (struct quantize_model_info){.n_layer = n_layer, .n_head = n_head,
                                        .n_head_kv = n_head_kv, .n_attn_v = n_layer,
                                        .has_output = true};
}

static int pick(const struct quantize_model_info *info, const char *name, const int64_t *ne,
                int ftype)
{
    return quantize_choose_type(info, name, ne, ftype);
}

static int layer_type(const struct quantize_model_info *info, int il, const char *what,
                      const int64_t *ne, int ftype)
{
    char name[64];
    snprintf(name, sizeof name, "blk.%d.%s.weight", il, what);
    return pick(info, name, ne, ftype);
}

Test(quantize, mix_names_and_file_types)
{
    cr_assert_eq(quantize_ftype_from_name("q8_0"), 7);
    cr_assert_eq(quantize_ftype_from_name("Q4_0"), 2);
    cr_assert_eq(quantize_ftype_from_name("q4_K_m"), 15);
    cr_assert_eq(quantize_ftype_from_name("Q6_K"), 18);
    cr_assert_eq(quantize_ftype_from_name("bf16"), 32);
    cr_assert_eq(quantize_ftype_from_name("F32"), 0);
    cr_assert_eq(quantize_ftype_from_name("q4_k"), -EINVAL);
    cr_assert_eq(quantize_ftype_from_name("iq2_xxs"), -EINVAL);
    cr_assert_eq(quantize_ftype_from_name(""), -EINVAL);
    cr_assert_eq(quantize_ftype_from_name(NULL), -EINVAL);
    const char *all[] = {"f32",    "f16",    "bf16",   "q8_0",   "q4_0",   "q4_1",
                         "q5_0",   "q5_1",   "q2_k",   "q3_k_s", "q3_k_m", "q3_k_l",
                         "q4_k_s", "q4_k_m", "q5_k_s", "q5_k_m", "q6_k"};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        int ft = quantize_ftype_from_name(all[i]);
        cr_assert_geq(ft, 0, "%s", all[i]);
        cr_assert(!strcasecmp(quantize_ftype_name(ft), all[i]), "%s", all[i]);
        cr_assert_geq(quantize_ftype_type(ft), 0);
    }
    cr_assert_eq(quantize_ftype_type(QUANTIZE_FTYPE_Q3_K_L), HR_TYPE_Q3_K);
    cr_assert_eq(quantize_ftype_type(QUANTIZE_FTYPE_Q5_K_S), HR_TYPE_Q5_K);
    cr_assert_null(quantize_ftype_name(4));
    cr_assert_eq(quantize_ftype_type(19), -EINVAL);
}

Test(quantize, which_tensors_are_quantized)
{
    struct quantize_model_info m = llama7(32, 32, 32);
    const int64_t vec[4] = {4096, 1, 1, 1};
    cr_assert_eq(pick(&m, "blk.0.attn_norm.weight", vec, QUANTIZE_FTYPE_Q4_0), QUANTIZE_KEEP);
    cr_assert_eq(pick(&m, "blk.0.attn_q.bias", vec, QUANTIZE_FTYPE_Q4_0), QUANTIZE_KEEP);
    /* 2-D but never quantized */
    cr_assert_eq(pick(&m, "blk.0.attn_q_norm.weight", NE_SQ, QUANTIZE_FTYPE_Q4_0),
                 QUANTIZE_KEEP);
    cr_assert_eq(pick(&m, "blk.0.ffn_gate_inp.weight", NE_SQ, QUANTIZE_FTYPE_Q4_0),
                 QUANTIZE_KEEP);
    cr_assert_eq(pick(&m, "rope_freqs.weight", vec, QUANTIZE_FTYPE_Q4_0), QUANTIZE_KEEP);
    cr_assert_eq(pick(&m, "position_embd.weight", NE_SQ, QUANTIZE_FTYPE_Q4_0), QUANTIZE_KEEP);
    cr_assert_eq(pick(&m, "blk.0.attn_q.weight_scale", NE_SQ, QUANTIZE_FTYPE_Q4_0),
                 QUANTIZE_KEEP);
    /* a [4096, 1] matrix is 1-D for ggml */
    const int64_t col[4] = {4096, 1, 1, 1};
    cr_assert_eq(pick(&m, "blk.0.attn_q.weight", col, QUANTIZE_FTYPE_Q4_0), QUANTIZE_KEEP);
    cr_assert_eq(pick(&m, "blk.0.attn_q.weight", NE_SQ, QUANTIZE_FTYPE_Q4_0), HR_TYPE_Q4_0);
    /* 3-D expert stacks are quantized */
    const int64_t exps[4] = {4096, 1024, 8, 1};
    cr_assert_eq(pick(&m, "blk.0.ffn_up_exps.weight", exps, QUANTIZE_FTYPE_Q8_0), HR_TYPE_Q8_0);
    /* the float mixes convert every quantizable tensor, output included */
    cr_assert_eq(pick(&m, "output.weight", NE_SQ, QUANTIZE_FTYPE_F16), HR_TYPE_F16);
    cr_assert_eq(pick(&m, "blk.3.attn_v.weight", NE_V, QUANTIZE_FTYPE_BF16), HR_TYPE_BF16);
    cr_assert_eq(pick(&m, "blk.3.attn_norm.weight", vec, QUANTIZE_FTYPE_F16), QUANTIZE_KEEP);
    cr_assert_eq(pick(&m, "blk.0.attn_q.weight", NE_SQ, 4), -EINVAL);
}

Test(quantize, output_and_tied_embeddings)
{
    struct quantize_model_info m = llama7(32, 32, 32);
    const int64_t emb[4] = {4096, 32000, 1, 1};
    int mixes[] = {QUANTIZE_FTYPE_Q4_0, QUANTIZE_FTYPE_Q5_1, QUANTIZE_FTYPE_Q2_K,
                   QUANTIZE_FTYPE_Q3_K_S, QUANTIZE_FTYPE_Q4_K_M, QUANTIZE_FTYPE_Q6_K};
    for (size_t i = 0; i < sizeof mixes / sizeof mixes[0]; i++) {
        cr_assert_eq(pick(&m, "output.weight", emb, mixes[i]), HR_TYPE_Q6_K, "mix %d", mixes[i]);
        cr_assert_eq(pick(&m, "token_embd.weight", emb, mixes[i]), quantize_ftype_type(mixes[i]));
    }
    cr_assert_eq(pick(&m, "output.weight", emb, QUANTIZE_FTYPE_Q8_0), HR_TYPE_Q8_0);
    /* no output.weight: the embeddings are the output */
    m.has_output = false;
    cr_assert_eq(pick(&m, "token_embd.weight", emb, QUANTIZE_FTYPE_Q4_K_S), HR_TYPE_Q6_K);
    cr_assert_eq(pick(&m, "token_embd.weight", emb, QUANTIZE_FTYPE_Q8_0), HR_TYPE_Q8_0);
    /* a width the mix's block does not divide: Q8_0 */
    const int64_t odd[4] = {4000, 32000, 1, 1};
    cr_assert_eq(pick(&m, "token_embd.weight", odd, QUANTIZE_FTYPE_Q4_K_M), HR_TYPE_Q8_0);
    /* falcon always Q8_0 */
    m.falcon = true;
    cr_assert_eq(pick(&m, "token_embd.weight", emb, QUANTIZE_FTYPE_Q4_K_M), HR_TYPE_Q8_0);
}

/* use_more_bits(i, 32): the first and last 4 layers and every third
 * between them, starting at layer 6. */
static bool more_bits_32(int i)
{
    static const int set[] = {0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31};
    for (size_t k = 0; k < sizeof set / sizeof set[0]; k++)
        if (set[k] == i)
            return true;
    return false;
}

Test(quantize, k_mix_layer_rules)
{
    struct quantize_model_info m = llama7(32, 32, 8); /* n_gqa 4 */
    for (int i = 0; i < 32; i++) {
        int more = more_bits_32(i);
        /* Q4_K_M / Q5_K_M: attn_v and ffn_down get Q6_K on those layers */
        cr_assert_eq(layer_type(&m, i, "attn_v", NE_V, QUANTIZE_FTYPE_Q4_K_M),
                     more ? HR_TYPE_Q6_K : HR_TYPE_Q4_K, "layer %d", i);
        cr_assert_eq(layer_type(&m, i, "ffn_down", NE_DOWN, QUANTIZE_FTYPE_Q5_K_M),
                     more ? HR_TYPE_Q6_K : HR_TYPE_Q5_K, "layer %d", i);
        cr_assert_eq(layer_type(&m, i, "attn_q", NE_SQ, QUANTIZE_FTYPE_Q4_K_M), HR_TYPE_Q4_K);
        cr_assert_eq(layer_type(&m, i, "ffn_up", NE_DOWN, QUANTIZE_FTYPE_Q5_K_M), HR_TYPE_Q5_K);
        /* Q4_K_S: attn_v of the first 4, ffn_down of the first n/8 */
        cr_assert_eq(layer_type(&m, i, "attn_v", NE_V, QUANTIZE_FTYPE_Q4_K_S),
                     i < 4 ? HR_TYPE_Q5_K : HR_TYPE_Q4_K);
        cr_assert_eq(layer_type(&m, i, "ffn_down", NE_DOWN, QUANTIZE_FTYPE_Q4_K_S),
                     i < 4 ? HR_TYPE_Q5_K : HR_TYPE_Q4_K);
        /* Q3_K_M: attn_v Q5_K for the first two, then Q4_K; ffn_down Q5_K
         * for the first n/16, then Q4_K; attn_output Q4_K */
        cr_assert_eq(layer_type(&m, i, "attn_v", NE_V, QUANTIZE_FTYPE_Q3_K_M),
                     i < 2 ? HR_TYPE_Q5_K : HR_TYPE_Q4_K);
        cr_assert_eq(layer_type(&m, i, "ffn_down", NE_DOWN, QUANTIZE_FTYPE_Q3_K_M),
                     i < 2 ? HR_TYPE_Q5_K : HR_TYPE_Q4_K);
        cr_assert_eq(layer_type(&m, i, "attn_output", NE_SQ, QUANTIZE_FTYPE_Q3_K_M),
                     HR_TYPE_Q4_K);
        cr_assert_eq(layer_type(&m, i, "attn_q", NE_SQ, QUANTIZE_FTYPE_Q3_K_M), HR_TYPE_Q3_K);
        /* Q3_K_L: attn_v, ffn_down, attn_output Q5_K */
        cr_assert_eq(layer_type(&m, i, "attn_v", NE_V, QUANTIZE_FTYPE_Q3_K_L), HR_TYPE_Q5_K);
        cr_assert_eq(layer_type(&m, i, "ffn_down", NE_DOWN, QUANTIZE_FTYPE_Q3_K_L),
                     HR_TYPE_Q5_K);
        cr_assert_eq(layer_type(&m, i, "attn_output", NE_SQ, QUANTIZE_FTYPE_Q3_K_L),
                     HR_TYPE_Q5_K);
        /* Q3_K_S and Q5_K_S: no promotions */
        cr_assert_eq(layer_type(&m, i, "attn_v", NE_V, QUANTIZE_FTYPE_Q3_K_S), HR_TYPE_Q3_K);
        cr_assert_eq(layer_type(&m, i, "ffn_down", NE_DOWN, QUANTIZE_FTYPE_Q5_K_S),
                     HR_TYPE_Q5_K);
        /* Q2_K: attn_v Q4_K (GQA >= 4), ffn_down and attn_output Q3_K */
        cr_assert_eq(layer_type(&m, i, "attn_v", NE_V, QUANTIZE_FTYPE_Q2_K), HR_TYPE_Q4_K);
        cr_assert_eq(layer_type(&m, i, "ffn_down", NE_DOWN, QUANTIZE_FTYPE_Q2_K), HR_TYPE_Q3_K);
        cr_assert_eq(layer_type(&m, i, "attn_output", NE_SQ, QUANTIZE_FTYPE_Q2_K),
                     HR_TYPE_Q3_K);
        cr_assert_eq(layer_type(&m, i, "ffn_gate", NE_DOWN, QUANTIZE_FTYPE_Q2_K), HR_TYPE_Q2_K);
        /* the fused qkv follows the attn_v rules */
        cr_assert_eq(layer_type(&m, i, "attn_qkv", NE_SQ, QUANTIZE_FTYPE_Q4_K_M),
                     more ? HR_TYPE_Q6_K : HR_TYPE_Q4_K);
        /* legacy mixes have no layer rules */
        cr_assert_eq(layer_type(&m, i, "ffn_down", NE_DOWN, QUANTIZE_FTYPE_Q4_1), HR_TYPE_Q4_1);
    }
    /* Q2_K attn_v without much GQA: Q3_K */
    struct quantize_model_info mha = llama7(32, 32, 32);
    cr_assert_eq(layer_type(&mha, 5, "attn_v", NE_V, QUANTIZE_FTYPE_Q2_K), HR_TYPE_Q3_K);
    struct quantize_model_info gqa2 = llama7(32, 32, 16);
    cr_assert_eq(layer_type(&gqa2, 5, "attn_v", NE_V, QUANTIZE_FTYPE_Q2_K), HR_TYPE_Q3_K);
}

Test(quantize, special_models)
{
    /* 70B: attn_v Q3_K/Q4_K become Q5_K */
    struct quantize_model_info m = llama7(80, 64, 8);
    m.type_70b = true;
    cr_assert_eq(layer_type(&m, 40, "attn_v", NE_V, QUANTIZE_FTYPE_Q4_K_S), HR_TYPE_Q5_K);
    cr_assert_eq(layer_type(&m, 40, "attn_v", NE_V, QUANTIZE_FTYPE_Q2_K), HR_TYPE_Q5_K);
    cr_assert_eq(layer_type(&m, 40, "attn_v", NE_V, QUANTIZE_FTYPE_Q5_K_S), HR_TYPE_Q5_K);
    cr_assert_eq(layer_type(&m, 40, "attn_q", NE_SQ, QUANTIZE_FTYPE_Q4_K_S), HR_TYPE_Q4_K);
    /* 8 experts: attn_v and attn_k Q8_0, attn_output Q5_K in the small mixes */
    struct quantize_model_info x = llama7(32, 32, 8);
    x.n_expert = 8;
    cr_assert_eq(layer_type(&x, 3, "attn_v", NE_V, QUANTIZE_FTYPE_Q4_K_M), HR_TYPE_Q8_0);
    cr_assert_eq(layer_type(&x, 3, "attn_k", NE_V, QUANTIZE_FTYPE_Q3_K_S), HR_TYPE_Q8_0);
    cr_assert_eq(layer_type(&x, 3, "attn_output", NE_SQ, QUANTIZE_FTYPE_Q3_K_S), HR_TYPE_Q5_K);
    cr_assert_eq(layer_type(&x, 3, "attn_output", NE_SQ, QUANTIZE_FTYPE_Q3_K_L), HR_TYPE_Q3_K);
    cr_assert_eq(layer_type(&x, 3, "attn_output", NE_SQ, QUANTIZE_FTYPE_Q5_K_M), HR_TYPE_Q5_K);
    /* experts: the ffn_down layer comes from the name; no layer: error */
    const int64_t exps[4] = {11008, 4096, 8, 1};
    cr_assert_eq(layer_type(&x, 31, "ffn_down_exps", exps, QUANTIZE_FTYPE_Q4_K_M),
                 HR_TYPE_Q6_K);
    cr_assert_eq(layer_type(&x, 4, "ffn_down_exps", exps, QUANTIZE_FTYPE_Q4_K_M), HR_TYPE_Q4_K);
    cr_assert_eq(pick(&x, "ffn_down_exps.weight", exps, QUANTIZE_FTYPE_Q4_K_M), -EINVAL);
    cr_assert_eq(layer_type(&x, 32, "ffn_down_exps", exps, QUANTIZE_FTYPE_Q4_K_M), -EINVAL);
    /* falcon ffn_down in Q4_K_M: Q6_K for the first n/16, Q5_K on the
     * more-bits layers, else Q4_K */
    struct quantize_model_info f = llama7(32, 32, 32);
    f.falcon = true;
    cr_assert_eq(layer_type(&f, 1, "ffn_down", NE_DOWN, QUANTIZE_FTYPE_Q4_K_M), HR_TYPE_Q6_K);
    cr_assert_eq(layer_type(&f, 3, "ffn_down", NE_DOWN, QUANTIZE_FTYPE_Q4_K_M), HR_TYPE_Q5_K);
    cr_assert_eq(layer_type(&f, 4, "ffn_down", NE_DOWN, QUANTIZE_FTYPE_Q4_K_M), HR_TYPE_Q4_K);
    cr_assert_eq(layer_type(&f, 4, "ffn_down", NE_DOWN, QUANTIZE_FTYPE_Q3_K_M), HR_TYPE_Q3_K);
    cr_assert_eq(layer_type(&f, 4, "attn_output", NE_SQ, QUANTIZE_FTYPE_Q3_K_L), HR_TYPE_Q4_K);
}

Test(quantize, row_length_fallbacks)
{
    struct quantize_model_info m = llama7(32, 32, 32);
    const int64_t w96[4] = {96, 256, 1, 1};   /* multiple of 32, not 256 */
    const int64_t w172[4] = {172, 256, 1, 1}; /* not even a multiple of 32 */
    struct {
        int ftype;
        const char *what;
        int t96, t172;
    } c[] = {
        {QUANTIZE_FTYPE_Q2_K, "attn_q", HR_TYPE_Q4_0, HR_TYPE_F16},
        {QUANTIZE_FTYPE_Q3_K_S, "attn_q", HR_TYPE_Q4_0, HR_TYPE_F16},
        {QUANTIZE_FTYPE_Q4_K_S, "attn_q", HR_TYPE_Q5_0, HR_TYPE_F16},
        {QUANTIZE_FTYPE_Q5_K_M, "attn_q", HR_TYPE_Q5_1, HR_TYPE_F16},
        {QUANTIZE_FTYPE_Q6_K, "attn_q", HR_TYPE_Q8_0, HR_TYPE_F16},
        {QUANTIZE_FTYPE_Q4_K_M, "ffn_down", HR_TYPE_Q8_0, HR_TYPE_F16}, /* layer 0: Q6_K */
        {QUANTIZE_FTYPE_Q8_0, "attn_q", HR_TYPE_Q8_0, HR_TYPE_F16},
        {QUANTIZE_FTYPE_Q4_1, "attn_q", HR_TYPE_Q4_1, HR_TYPE_F16},
        {QUANTIZE_FTYPE_F16, "attn_q", HR_TYPE_F16, HR_TYPE_F16},
        {QUANTIZE_FTYPE_F32, "attn_q", HR_TYPE_F32, HR_TYPE_F32},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        cr_assert_eq(layer_type(&m, 0, c[i].what, w96, c[i].ftype), c[i].t96, "case %zu", i);
        cr_assert_eq(layer_type(&m, 0, c[i].what, w172, c[i].ftype), c[i].t172, "case %zu", i);
    }
    /* the output: Q8_0 up front when the mix's block does not fit, F16
     * when not even Q8_0 does */
    cr_assert_eq(pick(&m, "output.weight", w96, QUANTIZE_FTYPE_Q4_K_M), HR_TYPE_Q8_0);
    cr_assert_eq(pick(&m, "output.weight", w172, QUANTIZE_FTYPE_Q4_K_M), HR_TYPE_F16);
}

/* llama-quantize numbers attn_v and ffn_down tensors in (layer, name) order;
 * with a layer that has none, that number is not the layer any more. */
Test(quantize, ranks_follow_llama_quantize_order)
{
    struct gguf_writer *w = gguf_writer_new();
    cr_assert(w);
    cr_assert_eq(gguf_writer_add_str(w, "general.architecture", "llama"), 0);
    cr_assert_eq(gguf_writer_add_u32(w, "llama.block_count", 4), 0);
    cr_assert_eq(gguf_writer_add_u32(w, "llama.attention.head_count", 4), 0);
    cr_assert_eq(gguf_writer_add_u32(w, "llama.attention.head_count_kv", 4), 0);
    static float zero[32 * 64];
    const int64_t ne[2] = {32, 64};
    /* in reverse layer order in the file; layer 1 has neither tensor */
    const char *names[] = {"blk.3.attn_v.weight", "blk.3.ffn_down.weight",
                           "blk.2.attn_v.weight", "blk.2.ffn_down.weight",
                           "blk.0.attn_v.weight", "blk.0.ffn_down.weight"};
    for (int i = 0; i < 6; i++)
        cr_assert_eq(gguf_writer_add_tensor(w, names[i], HR_TYPE_F32, 2, ne, zero), 0);
    void *img;
    size_t size;
    cr_assert_eq(gguf_writer_write_mem(w, &img, &size), 0);
    gguf_writer_free(w);
    struct gguf_file *f;
    cr_assert_eq(gguf_parse(img, size, GGUF_DEFAULT_BUDGET, &f, NULL), 0);
    struct quantize_model_info info;
    cr_assert_eq(quantize_model_info_init(&info, f, NULL), 0);
    cr_assert_eq(info.n_layer, 4);
    cr_assert_eq(info.n_attn_v, 3);
    cr_assert(!info.has_output);
    const int64_t ne4[4] = {32, 64, 1, 1};
    /* attn_v ranks 0, 1, 2 of n = 3: use_more_bits is true for 2 only;
     * by layer number layer 2 would be promoted too */
    cr_assert_eq(pick(&info, "blk.0.attn_v.weight", ne4, QUANTIZE_FTYPE_Q4_K_M), HR_TYPE_Q5_0);
    cr_assert_eq(pick(&info, "blk.2.attn_v.weight", ne4, QUANTIZE_FTYPE_Q4_K_M), HR_TYPE_Q5_0);
    cr_assert_eq(pick(&info, "blk.3.attn_v.weight", ne4, QUANTIZE_FTYPE_Q4_K_M), HR_TYPE_Q8_0);
    /* ffn_down: ranks 0, 1, 2 of n_layer = 4: 7n/8 = 3, (i - 0) % 3 == 2 */
    cr_assert_eq(pick(&info, "blk.2.ffn_down.weight", ne4, QUANTIZE_FTYPE_Q4_K_M),
                 HR_TYPE_Q5_0);
    cr_assert_eq(pick(&info, "blk.3.ffn_down.weight", ne4, QUANTIZE_FTYPE_Q4_K_M),
                 HR_TYPE_Q8_0);
    /* without the tensor list the layer number stands in for the rank */
    info.tensors = NULL;
    cr_assert_eq(pick(&info, "blk.2.attn_v.weight", ne4, QUANTIZE_FTYPE_Q4_K_M), HR_TYPE_Q8_0);
    gguf_free(f);
    free(img);
}

/* ---- the mixes refdata has no file for, and other inputs ------------------------- */

/* Every tensor of `out` decodes to within `tol` relative RMS of the input's,
 * and has the type quantize_choose_type names. */
static void assert_close(const char *in, const char *out, int ftype, double tol)
{
    struct gguf_file *a, *b;
    cr_assert_eq(gguf_open(in, GGUF_DEFAULT_BUDGET, &a, NULL), 0);
    cr_assert_eq(gguf_open(out, GGUF_DEFAULT_BUDGET, &b, NULL), 0);
    uint32_t ft;
    cr_assert_eq(gguf_get_u32(b, "general.file_type", &ft, NULL), 0);
    cr_assert_eq((int)ft, ftype);
    cr_assert_eq(gguf_get_u32(b, "general.quantization_version", &ft, NULL), 0);
    cr_assert_eq(ft, 2);
    struct quantize_model_info info;
    cr_assert_eq(quantize_model_info_init(&info, a, NULL), 0);
    cr_assert_eq(a->n_tensors, b->n_tensors);
    for (uint64_t i = 0; i < a->n_tensors; i++) {
        const struct gguf_tensor *x = &a->tensors[i], *y = &b->tensors[i];
        cr_assert_str_eq(x->name, y->name);
        int want = quantize_choose_type(&info, x->name, x->ne, ftype);
        cr_assert_eq(y->type, want == QUANTIZE_KEEP ? x->type : (uint32_t)want, "%s", x->name);
        int64_t n = x->ne[0] * x->ne[1] * x->ne[2] * x->ne[3];
        float *fx = malloc((size_t)n * sizeof *fx), *fy = malloc((size_t)n * sizeof *fy);
        quant_kernels_ref(x->type)->to_float(x->data, fx, n);
        quant_kernels_ref(y->type)->to_float(y->data, fy, n);
        double se = 0, ss = 0;
        for (int64_t k = 0; k < n; k++) {
            se += ((double)fx[k] - fy[k]) * ((double)fx[k] - fy[k]);
            ss += (double)fx[k] * fx[k];
        }
        double rel = ss > 0 ? sqrt(se / ss) : sqrt(se);
        cr_assert(rel <= tol, "%s (%s): relative RMS error %g > %g", x->name,
                  hr_type_name(y->type), rel, tol);
        free(fx);
        free(fy);
    }
    gguf_free(a);
    gguf_free(b);
}

Test(quantize, other_mixes_decode_close_to_the_input, .timeout = 300)
{
    const char *in = tu_find("models/syn-llama-f32.gguf");
    if (!in)
        in = tu_stories();
    char *src = strdup(in);
    struct {
        const char *name;
        double tol;
    } c[] = {{"q3_k_s", 0.25}, {"q3_k_l", 0.25}, {"q4_k_s", 0.12}, {"q5_k_s", 0.06},
             {"f32", 0},       {"Q8_0", 0.01}};
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        char *dir = mk_dir();
        char *out = quantize_cli(dir, src, c[i].name, "2");
        assert_close(src, out, quantize_ftype_from_name(c[i].name), c[i].tol);
        free(out);
        rm_dir(dir);
    }
    free(src);
}

/* F16 and BF16 inputs: widened exactly, then quantized as F32 would be. */
Test(quantize, half_precision_input, .timeout = 300)
{
    char *dir = mk_dir();
    char *f16 = path_in(dir, "f16.gguf"), *bf16 = path_in(dir, "bf16.gguf");
    char *out_path = path_in(dir, "out.gguf");
    char *out, *err;
    cr_assert_eq(tu_hearth(&out, &err, "quantize", tu_stories(), f16, "f16", NULL), 0, "%s", err);
    free(out);
    free(err);
    cr_assert_eq(tu_hearth(&out, &err, "quantize", f16, bf16, "BF16", NULL), 0, "%s", err);
    free(out);
    free(err);
    assert_close(tu_stories(), bf16, QUANTIZE_FTYPE_BF16, 0.01);

    /* f16 -> q4_0 equals quantizing the widened f16 values ourselves */
    cr_assert_eq(tu_hearth(&out, &err, "quantize", f16, out_path, "q4_0", "-t", "3", NULL), 0, "%s",
                 err);
    free(out);
    free(err);
    struct gguf_file *a, *b;
    cr_assert_eq(gguf_open(f16, GGUF_DEFAULT_BUDGET, &a, NULL), 0);
    cr_assert_eq(gguf_open(out_path, GGUF_DEFAULT_BUDGET, &b, NULL), 0);
    int checked = 0;
    for (uint64_t i = 0; i < a->n_tensors; i++) {
        const struct gguf_tensor *x = &a->tensors[i], *y = &b->tensors[i];
        if (x->type == y->type) {
            cr_assert(!memcmp(x->data, y->data, (size_t)x->nbytes), "%s changed", x->name);
            continue;
        }
        cr_assert_eq(x->type, HR_TYPE_F16);
        int64_t n = x->ne[0] * x->ne[1] * x->ne[2] * x->ne[3];
        float *fx = malloc((size_t)n * sizeof *fx);
        void *q = malloc((size_t)y->nbytes);
        quant_kernels_ref(HR_TYPE_F16)->to_float(x->data, fx, n);
        cr_assert_eq(quant_quantize(y->type, fx, q, n / x->ne[0], x->ne[0]), (int64_t)y->nbytes);
        cr_assert(!memcmp(q, y->data, (size_t)y->nbytes), "%s (%s)", x->name,
                  hr_type_name(y->type));
        free(fx);
        free(q);
        checked++;
    }
    cr_assert_gt(checked, 10);
    gguf_free(a);
    gguf_free(b);
    free(f16);
    free(bf16);
    free(out_path);
    rm_dir(dir);
}

/* The library entry point: progress once per tensor, in order; stats. */
struct seen {
    int calls, last, converted;
    uint64_t out_bytes;
};

static void on_progress(void *ud, const struct quantize_progress *p)
{
    struct seen *s = ud;
    cr_assert_eq(p->index, s->last + 1);
    cr_assert_eq(p->count, 48);
    cr_assert(p->name && p->ne);
    s->last = p->index;
    s->calls++;
    s->converted += p->from_type != p->to_type;
    s->out_bytes += p->out_bytes;
}

Test(quantize, library_progress_and_stats)
{
    char *dir = mk_dir();
    char *out = path_in(dir, "out.gguf");
    struct seen s = {0};
    struct quantize_params qp = {.ftype = QUANTIZE_FTYPE_Q8_0, .n_threads = 2,
                                 .progress = on_progress, .progress_ud = &s};
    struct quantize_stats st;
    struct hr_err e;
    cr_assert_eq(quantize_model(tu_stories(), out, &qp, &st, &e), 0, "%s", e.msg);
    cr_assert_eq(s.calls, 48);
    cr_assert_eq(st.n_tensors, 48);
    cr_assert_eq(st.n_converted, s.converted);
    cr_assert_eq(st.out_bytes, s.out_bytes);
    cr_assert_eq(st.n_fallback, 5, "the five 172-wide ffn_down"); /* F16 */
    struct stat sb;
    cr_assert_eq(stat(out, &sb), 0);
    cr_assert_eq((uint64_t)sb.st_size, st.out_file_bytes);
    cr_assert_lt(st.out_bytes, st.in_bytes);
    /* bad parameters */
    qp.n_threads = 0;
    cr_assert_eq(quantize_model(tu_stories(), out, &qp, NULL, &e), -EINVAL);
    qp.n_threads = 1;
    qp.ftype = 5;
    cr_assert_eq(quantize_model(tu_stories(), out, &qp, NULL, &e), -EINVAL);
    free(out);
    rm_dir(dir);
}

/* ---- bad input ------------------------------------------------------------------ */

/* Runs `quantize in out type`, expects a one-line error mentioning `what`,
 * a non-zero exit, no OUT and nothing else new in dir. */
static void assert_refused(const char *dir, const char *in, const char *out_path,
                           const char *type, const char *what, int status)
{
    int before = count_files(dir);
    char *out, *err;
    int st = tu_hearth(&out, &err, "quantize", in, out_path, type, NULL);
    cr_assert_eq(st, status, "quantize %s %s %s: exit %d, stderr '%s'", in, out_path, type, st,
                 err);
    cr_assert_str_empty(out);
    tu_assert_one_line_error(err, what);
    cr_assert_eq(count_files(dir), before, "files left in %s after: %s", dir, err);
    free(out);
    free(err);
}

Test(quantize, refuses_bad_input, .timeout = 120)
{
    char *dir = mk_dir();
    char *out = path_in(dir, "out.gguf");

    /* an already quantized model */
    const char *q = tu_find("models/syn-llama-q8_0.gguf");
    cr_assert(q);
    assert_refused(dir, q, out, "q4_0", "already quantized", 1);
    cr_assert(!tu_exists(out));
    /* unknown type */
    assert_refused(dir, tu_stories(), out, "q7_0", "unknown quantization type 'q7_0'", 2);
    assert_refused(dir, tu_stories(), out, "iq2_xxs", "iq2_xxs", 2);
    /* missing input */
    char *missing = path_in(dir, "nope.gguf");
    assert_refused(dir, missing, out, "q8_0", "nope.gguf", 1);
    /* output directory that does not exist */
    char *nodir = path_in(dir, "nodir/out.gguf");
    assert_refused(dir, tu_stories(), nodir, "q8_0", "nodir/out.gguf", 1);

    /* truncated input: cut inside the tensor data and inside the header */
    size_t len;
    char *img = tu_read_file(tu_stories(), &len);
    cr_assert(img);
    char *trunc = path_in(dir, "trunc.gguf");
    size_t cuts[] = {len - 100, len / 2, 1000, 10};
    for (size_t k = 0; k < 4; k++) {
        FILE *f = fopen(trunc, "wb");
        cr_assert(f);
        cr_assert_eq(fwrite(img, 1, cuts[k], f), cuts[k]);
        fclose(f);
        assert_refused(dir, trunc, out, "q4_0", "trunc.gguf", 1);
    }

    /* same file as input and output, also under another spelling; the input
     * is left as it was */
    char *copy = path_in(dir, "model.gguf");
    FILE *f = fopen(copy, "wb");
    cr_assert(f);
    cr_assert_eq(fwrite(img, 1, len, f), len);
    fclose(f);
    assert_refused(dir, copy, copy, "q8_0", "same file", 1);
    char *other = malloc(strlen(dir) + 32);
    sprintf(other, "%s/./model.gguf", dir);
    assert_refused(dir, copy, other, "q4_k_m", "same file", 1);
    size_t len2;
    char *img2 = tu_read_file(copy, &len2);
    cr_assert(len2 == len && !memcmp(img, img2, len), "the input was modified");
    cr_assert(!tu_exists(out));

    free(img2);
    free(other);
    free(copy);
    free(trunc);
    free(img);
    free(nodir);
    free(missing);
    free(out);
    rm_dir(dir);
}

Test(quantize, usage_errors)
{
    char *out, *err;
    int st = tu_hearth(&out, &err, "quantize", tu_stories(), NULL);
    cr_assert_eq(st, 2);
    tu_assert_one_line_error(err, "missing OUT and TYPE");
    free(out);
    free(err);
    st = tu_hearth(&out, &err, "quantize", tu_stories(), "/tmp/x.gguf", "q8_0", "-t", "0", NULL);
    cr_assert_eq(st, 2);
    tu_assert_one_line_error(err, "-t");
    free(out);
    free(err);
    st = tu_hearth(&out, &err, "quantize", "a", "b", "q8_0", "extra", NULL);
    cr_assert_eq(st, 2);
    tu_assert_one_line_error(err, "extra");
    free(out);
    free(err);
    st = tu_hearth(&out, &err, "quantize", "a", "b", "q8_0", "--frobnicate", NULL);
    cr_assert_eq(st, 2);
    tu_assert_one_line_error(err, "--frobnicate");
    free(out);
    free(err);
    cr_assert(!tu_exists("b"));
}
