/*
 * test_model.c — the forward pass against llama.cpp's reference outputs.
 *
 * For every synthetic model (llama / qwen2 / qwen3 × every tensor type) and
 * the stories260K models: logits of the reference token list evaluated as one
 * batch must match the reference logits (F32: within 2e-3 absolute, the
 * reference sums in another order; other types: within a few percent of the
 * logit range, per ../shared/refdata/README.md); greedy decoding is checked
 * teacher-forced (argmax after prompt + reference continuation) and, for F32
 * models, free-running token for token.
 *
 * Data: ../shared/refdata when present, else the lean copy in tests/data;
 * a model found in neither place is skipped (reported as skipped).
 */
#include "testutil.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <hearth/hearth.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAXTOK 256

struct run {
    struct hr_model *m;
    struct hr_ctx *ctx;
    int32_t n_vocab;
};

static bool open_model(const char *name, int32_t n_ctx, struct run *r)
{
    char rel[256];
    snprintf(rel, sizeof rel, "models/%s.gguf", name);
    const char *path = tu_find(rel);
    if (!path && !strcmp(name, "stories260K"))
        path = tu_data("../../models/stories260K.gguf");
    if (!path || !tu_exists(path))
        return false;
    struct hr_err err;
    int rc = hr_model_load(path, NULL, &r->m, &err);
    cr_assert_eq(rc, 0, "%s: load failed: %s", name, err.msg);
    struct hr_ctx_params cp = {.n_ctx = n_ctx, .n_batch = n_ctx, .n_threads = 2};
    rc = hr_ctx_new(r->m, &cp, &r->ctx, &err);
    cr_assert_eq(rc, 0, "%s: context: %s", name, err.msg);
    r->n_vocab = hr_model_n_vocab(r->m);
    return true;
}

static void close_model(struct run *r)
{
    hr_ctx_free(r->ctx);
    hr_model_free(r->m);
}

static size_t read_ids(const char *rel, int32_t *out, size_t cap)
{
    const char *path = tu_find(rel);
    cr_assert(path, "reference file %s not found", rel);
    char *txt = tu_read_file(path, NULL);
    cr_assert(txt);
    size_t n = tu_parse_ids(txt, out, cap);
    free(txt);
    return n;
}

static int32_t argmax(const float *v, int32_t n)
{
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++)
        if (v[i] > v[best])
            best = i;
    return best;
}

/* Compares the logits of evaluating `toks` in one batch with a reference
 * file; tol_abs for F32, tol_rel (fraction of the reference's logit range)
 * otherwise. */
static void check_logits(const char *label, struct run *r, const int32_t *toks, size_t n,
                         const char *ref_rel, bool is_f32, double tol_rel)
{
    struct hr_err err;
    hr_ctx_truncate(r->ctx, 0);
    int rc = hr_ctx_eval(r->ctx, toks, (int32_t)n, true, &err);
    cr_assert_eq(rc, 0, "%s: eval: %s", label, err.msg);
    size_t len;
    const char *path = tu_find(ref_rel);
    cr_assert(path, "%s: missing %s", label, ref_rel);
    float *ref = tu_read_file(path, &len);
    cr_assert_eq(len, n * (size_t)r->n_vocab * sizeof(float), "%s: %s has %zu bytes", label,
                 ref_rel, len);
    double max_diff = 0, lo = INFINITY, hi = -INFINITY;
    size_t at = 0;
    for (size_t t = 0; t < n; t++) {
        const float *got = hr_ctx_logits(r->ctx, (int32_t)t);
        cr_assert(got);
        for (int32_t i = 0; i < r->n_vocab; i++) {
            float e = ref[t * (size_t)r->n_vocab + (size_t)i];
            double d = fabs((double)got[i] - (double)e);
            cr_assert(isfinite(got[i]), "%s: logit [%zu][%d] is %f", label, t, i, got[i]);
            if (d > max_diff) {
                max_diff = d;
                at = t;
            }
            lo = fmin(lo, e);
            hi = fmax(hi, e);
        }
    }
    free(ref);
    double range = hi - lo;
    cr_log_info("%s: max |logit - ref| = %.3g (%.3f%% of range %.3g)", label, max_diff,
                100 * max_diff / range, range);
    if (is_f32)
        cr_expect_leq(max_diff, 2e-3, "%s: max |logit - ref| = %g at token %zu (tolerance 2e-3)",
                      label, max_diff, at);
    else
        cr_expect_leq(max_diff, tol_rel * range,
                      "%s: max |logit - ref| = %g at token %zu = %.2f%% of the range %g "
                      "(tolerance %.1f%%)",
                      label, max_diff, at, 100 * max_diff / range, range, 100 * tol_rel);
}

/* Teacher-forced greedy: after prompt + ref[0..k-1], argmax must be ref[k]. */
static void check_teacher_forced(const char *label, struct run *r, const int32_t *prompt,
                                 size_t n_prompt, const int32_t *ref, size_t n_ref, double min_frac)
{
    int32_t all[MAXTOK];
    cr_assert_leq(n_prompt + n_ref, MAXTOK);
    memcpy(all, prompt, n_prompt * sizeof *all);
    memcpy(all + n_prompt, ref, n_ref * sizeof *all);
    struct hr_err err;
    hr_ctx_truncate(r->ctx, 0);
    int rc = hr_ctx_eval(r->ctx, all, (int32_t)(n_prompt + n_ref - 1), true, &err);
    cr_assert_eq(rc, 0, "%s: eval: %s", label, err.msg);
    size_t agree = 0;
    for (size_t k = 0; k < n_ref; k++)
        agree += argmax(hr_ctx_logits(r->ctx, (int32_t)(n_prompt - 1 + k)), r->n_vocab) == ref[k];
    cr_expect_geq((double)agree, min_frac * (double)n_ref,
                  "%s: teacher-forced argmax agrees at %zu of %zu positions (need %.0f%%)", label,
                  agree, n_ref, 100 * min_frac);
}

/* Free-running greedy decode must reproduce the reference ids exactly. */
static void check_free_running(const char *label, struct run *r, const int32_t *prompt,
                               size_t n_prompt, const int32_t *ref, size_t n_ref)
{
    struct hr_err err;
    hr_ctx_truncate(r->ctx, 0);
    int rc = hr_ctx_eval(r->ctx, prompt, (int32_t)n_prompt, false, &err);
    cr_assert_eq(rc, 0, "%s: eval: %s", label, err.msg);
    for (size_t k = 0; k < n_ref; k++) {
        int32_t tok = argmax(hr_ctx_logits(r->ctx, -1), r->n_vocab);
        cr_assert_eq(tok, ref[k], "%s: free-running greedy token %zu is %d, reference %d", label,
                     k, tok, ref[k]);
        if (k + 1 < n_ref) {
            rc = hr_ctx_eval(r->ctx, &tok, 1, false, &err);
            cr_assert_eq(rc, 0, "%s: eval: %s", label, err.msg);
        }
    }
}

/* Tolerance for quantized types, as a fraction of the reference logit range.
 * The reference data README: "a few percent of the logit range". */
static double quant_tol(const char *type)
{
    if (!strcmp(type, "f16") || !strcmp(type, "bf16") || !strcmp(type, "q8_0"))
        return 0.01;
    return 0.05;
}

static void syn_case(const char *arch, const char *type)
{
    char name[64], rel[128];
    snprintf(name, sizeof name, "syn-%s-%s", arch, type);
    struct run r;
    if (!open_model(name, 80, &r))
        cr_skip_test("%s not present (fresh clone without ../shared/refdata)", name);
    int32_t toks[MAXTOK], greedy[MAXTOK];
    size_t n = read_ids(!strcmp(arch, "llama") ? "ref/tokens-llama.txt" : "ref/tokens-qwen.txt",
                        toks, MAXTOK);
    cr_assert_eq(n, 40);
    snprintf(rel, sizeof rel, "ref/%s.greedy.txt", name);
    size_t ng = read_ids(rel, greedy, MAXTOK);
    cr_assert_eq(ng, 24);
    bool f32 = !strcmp(type, "f32");
    snprintf(rel, sizeof rel, "ref/%s.logits.f32", name);
    check_logits(name, &r, toks, n, rel, f32, quant_tol(type));
    check_teacher_forced(name, &r, toks, n, greedy, ng, f32 ? 0.98 : 0.95);
    if (f32)
        check_free_running(name, &r, toks, n, greedy, ng);
    close_model(&r);
}

#define SYN(arch, type)                                                                          \
    Test(syn_##arch, type, .timeout = 120)                                                       \
    {                                                                                            \
        syn_case(#arch, #type);                                                                  \
    }
#define SYN_ALL(arch)                                                                            \
    SYN(arch, f32)                                                                               \
    SYN(arch, f16) SYN(arch, bf16) SYN(arch, q8_0) SYN(arch, q4_0) SYN(arch, q4_1)               \
        SYN(arch, q5_0) SYN(arch, q5_1) SYN(arch, q2_k) SYN(arch, q3_k_m) SYN(arch, q4_k_m)     \
            SYN(arch, q5_k_m) SYN(arch, q6_k)

SYN_ALL(llama)
SYN_ALL(qwen2)
SYN_ALL(qwen3)

/* ---- stories260K: a real trained model ------------------------------------------- */

static void stories_case(const char *type)
{
    char name[64], rel[128];
    snprintf(name, sizeof name, "stories260K%s%s", type[0] ? "-" : "", type);
    struct run r;
    if (!open_model(name, 128, &r))
        cr_skip_test("%s not present", name);
    const char *pp = tu_find("ref/stories/prompts.txt");
    cr_assert(pp, "ref/stories/prompts.txt not found");
    char *txt = tu_read_file(pp, NULL);
    int cases = 0;
    for (char *line = strtok(txt, "\n"); line; line = strtok(NULL, "\n")) {
        char *bar1 = strchr(line, '|'), *bar2 = bar1 ? strchr(bar1 + 1, '|') : NULL;
        cr_assert(bar2, "malformed prompts.txt line '%s'", line);
        int idx = atoi(line);
        int32_t prompt[MAXTOK], greedy[MAXTOK];
        size_t np = tu_parse_ids(bar2 + 1, prompt, MAXTOK);
        char label[96];
        snprintf(label, sizeof label, "%s p%d", name, idx);
        snprintf(rel, sizeof rel, "ref/stories/p%d%s%s.greedy.txt", idx, type[0] ? "-" : "", type);
        if (!tu_find(rel))
            continue;
        size_t ng = read_ids(rel, greedy, MAXTOK);
        cr_assert_eq(ng, 64, "%s: %zu reference ids", label, ng);
        snprintf(rel, sizeof rel, "ref/stories/p%d%s%s.logits.f32", idx, type[0] ? "-" : "", type);
        check_logits(label, &r, prompt, np, rel, !type[0], quant_tol(type));
        check_teacher_forced(label, &r, prompt, np, greedy, ng, type[0] ? 0.95 : 0.98);
        if (!type[0])
            check_free_running(label, &r, prompt, np, greedy, ng);
        cases++;
    }
    free(txt);
    cr_assert_gt(cases, 0, "%s: no reference prompts found", name);
    close_model(&r);
}

Test(stories, f32, .timeout = 120)
{
    stories_case("");
}
Test(stories, q8_0, .timeout = 120)
{
    stories_case("q8_0");
}
Test(stories, q4_0, .timeout = 120)
{
    stories_case("q4_0");
}
Test(stories, q5_1, .timeout = 120)
{
    stories_case("q5_1");
}

/* ---- engine behaviour ---------------------------------------------------------------- */

/* Evaluating a sequence in one batch or token by token gives the same logits
 * (the KV cache carries the state). */
Test(engine, batch_equals_incremental, .timeout = 60)
{
    struct run r;
    cr_assert(open_model("stories260K", 64, &r));
    int32_t toks[12] = {1, 403, 407, 261, 378, 29, 300, 303, 263, 286, 336, 400};
    struct hr_err err;
    cr_assert_eq(hr_ctx_eval(r.ctx, toks, 12, true, &err), 0);
    float *batch = malloc(12 * (size_t)r.n_vocab * sizeof(float));
    for (int t = 0; t < 12; t++)
        memcpy(batch + t * r.n_vocab, hr_ctx_logits(r.ctx, t), (size_t)r.n_vocab * sizeof(float));
    hr_ctx_truncate(r.ctx, 0);
    for (int t = 0; t < 12; t++) {
        cr_assert_eq(hr_ctx_eval(r.ctx, &toks[t], 1, false, &err), 0);
        const float *l = hr_ctx_logits(r.ctx, -1);
        for (int i = 0; i < r.n_vocab; i++)
            cr_assert_float_eq(l[i], batch[t * r.n_vocab + i], 1e-4, "token %d logit %d", t, i);
    }
    free(batch);
    close_model(&r);
}

Test(engine, rejects_bad_tokens_and_overflow, .timeout = 60)
{
    struct run r;
    cr_assert(open_model("stories260K", 8, &r));
    struct hr_err err;
    int32_t bad[2] = {1, 512};
    cr_assert_eq(hr_ctx_eval(r.ctx, bad, 2, false, &err), -EINVAL);
    cr_assert(strstr(err.msg, "512") && strstr(err.msg, "out of range"), "%s", err.msg);
    int32_t neg = -1;
    cr_assert_eq(hr_ctx_eval(r.ctx, &neg, 1, false, &err), -EINVAL);
    int32_t many[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    cr_assert_eq(hr_ctx_eval(r.ctx, many, 9, false, &err), -ENOSPC);
    cr_assert(strstr(err.msg, "context is full"), "%s", err.msg);
    cr_assert_eq(hr_ctx_n_past(r.ctx), 0, "a refused eval must not change the cache");
    cr_assert_eq(hr_ctx_eval(r.ctx, many, 8, false, &err), 0);
    cr_assert_eq(hr_ctx_eval(r.ctx, many, 1, false, &err), -ENOSPC);
    close_model(&r);
}

Test(engine, refuses_unsupported_and_missing, .timeout = 60)
{
    struct hr_model *m = NULL;
    struct hr_err err;
    cr_assert_eq(hr_model_load("/nonexistent/model.gguf", NULL, &m, &err), -ENOENT);
    cr_assert_null(m);
    const char *vocab = tu_find("vocab/ggml-vocab-gpt-2.gguf");
    if (vocab) {
        /* a vocab-only file is not a model: it lacks the weights */
        int rc = hr_model_load(vocab, NULL, &m, &err);
        cr_assert_lt(rc, 0);
        cr_assert(strlen(err.msg) > 0);
        struct hr_model_params vp = {.vocab_only = true};
        cr_assert_eq(hr_model_load(vocab, &vp, &m, &err), 0, "%s", err.msg);
        struct hr_ctx *ctx;
        cr_assert_eq(hr_ctx_new(m, NULL, &ctx, &err), -EINVAL);
        hr_model_free(m);
    }
}

/* Copies stories260K into a temp file, changing the architecture name or
 * giving one tensor a type hearth cannot compute with. */
#include "gguf.h"
#include "quant.h"

static bool skip_arch(const char *key, void *ud)
{
    (void)ud;
    return !strcmp(key, "general.architecture");
}

static char *write_variant(const char *arch, const char *odd_tensor, uint32_t odd_type)
{
    struct gguf_file *f;
    struct hr_err err;
    cr_assert_eq(gguf_open(tu_data("../../models/stories260K.gguf"), GGUF_DEFAULT_BUDGET, &f, &err),
                 0, "%s", err.msg);
    struct gguf_writer *w = gguf_writer_new();
    cr_assert_eq(gguf_writer_add_str(w, "general.architecture", arch), 0);
    cr_assert_eq(gguf_writer_copy_kv(w, f, skip_arch, NULL), 0);
    void *odd = NULL;
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const struct gguf_tensor *t = &f->tensors[i];
        if (odd_tensor && !strcmp(t->name, odd_tensor)) {
            size_t nb = hr_row_size(odd_type, t->ne[0]) * (size_t)t->ne[1];
            odd = calloc(1, nb);
            cr_assert_eq(gguf_writer_add_tensor(w, t->name, odd_type, t->n_dims, t->ne, odd), 0);
        } else {
            cr_assert_eq(gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data), 0);
        }
    }
    static char path[64];
    snprintf(path, sizeof path, "/tmp/hearth-variant-%d.gguf", (int)getpid());
    cr_assert_eq(gguf_writer_write(w, path, &err), 0, "%s", err.msg);
    gguf_writer_free(w);
    free(odd);
    gguf_free(f);
    return path;
}

Test(engine, refuses_unknown_architecture, .timeout = 60)
{
    char *path = write_variant("gemma2", NULL, 0);
    struct hr_model *m = NULL;
    struct hr_err err;
    cr_assert_eq(hr_model_load(path, NULL, &m, &err), -ENOTSUP);
    cr_assert(strstr(err.msg, "gemma2") && strstr(err.msg, "architecture"), "%s", err.msg);
    cr_assert_null(m);
    unlink(path);
}

Test(engine, refuses_unsupported_tensor_type, .timeout = 60)
{
    /* iq4_nl (id 20): a valid GGUF type without kernels in hearth */
    char *path = write_variant("llama", "blk.2.attn_q.weight", 20);
    struct hr_model *m = NULL;
    struct hr_err err;
    cr_assert_eq(hr_model_load(path, NULL, &m, &err), -ENOTSUP);
    cr_assert(strstr(err.msg, "blk.2.attn_q.weight") && strstr(err.msg, "iq4_nl"), "%s", err.msg);
    unlink(path);
}

/* An F16 KV cache halves the cache memory; logits move by ~1e-3 (the
 * reference README), so they stay close to the F32-cache reference. */
Test(engine, f16_kv_cache, .timeout = 60)
{
    const char *path = tu_data("../../models/stories260K.gguf");
    struct hr_model *m;
    struct hr_err err;
    cr_assert_eq(hr_model_load(path, NULL, &m, &err), 0, "%s", err.msg);
    struct hr_ctx *ctx;
    struct hr_ctx_params bad = {.n_ctx = 64, .kv_type = HR_TYPE_Q4_0};
    cr_assert_eq(hr_ctx_new(m, &bad, &ctx, &err), -EINVAL);
    cr_assert(strstr(err.msg, "KV cache type"), "%s", err.msg);
    struct hr_ctx_params cp = {.n_ctx = 128, .n_batch = 128, .n_threads = 2,
                               .kv_type = HR_TYPE_F16};
    cr_assert_eq(hr_ctx_new(m, &cp, &ctx, &err), 0, "%s", err.msg);
    int32_t prompt[MAXTOK], greedy[MAXTOK];
    const char *pp = tu_find("ref/stories/prompts.txt");
    char *txt = tu_read_file(pp, NULL);
    size_t np = tu_parse_ids(strrchr(strtok(txt, "\n"), '|') + 1, prompt, MAXTOK);
    size_t ng = read_ids("ref/stories/p1.greedy.txt", greedy, MAXTOK);
    struct run r = {m, ctx, hr_model_n_vocab(m)};
    /* the F32 tolerance does not hold for an F16 cache: compare with 1e-2 */
    hr_ctx_truncate(ctx, 0);
    cr_assert_eq(hr_ctx_eval(ctx, prompt, (int32_t)np, true, &err), 0);
    size_t len;
    float *ref = tu_read_file(tu_find("ref/stories/p1.logits.f32"), &len);
    double max_diff = 0;
    for (size_t t = 0; t < np; t++)
        for (int i = 0; i < r.n_vocab; i++)
            max_diff = fmax(max_diff, fabs(hr_ctx_logits(ctx, (int32_t)t)[i] -
                                           ref[t * (size_t)r.n_vocab + (size_t)i]));
    cr_expect_leq(max_diff, 1e-2, "F16 cache: max |logit - ref| = %g", max_diff);
    cr_expect_gt(max_diff, 0.0, "an F16 cache should round something");
    check_teacher_forced("stories260K f16-cache", &r, prompt, np, greedy, ng, 0.95);
    free(ref);
    free(txt);
    close_model(&r);
}
