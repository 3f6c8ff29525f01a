/*
 * test_lora.c — LoRA adapters in the engine (hearth.h "LoRA adapters",
 * core/lora.c, core/lora_apply.c); files and commands: test_lora_files.c.
 *
 * Against llama.cpp's reference logits (../shared/refdata, the q8_0 and
 * q4_k_m cases also in tests/data): one adapter, two stacked, a quantized
 * base, scale 2.0 — within the README's tolerances, with teacher-forced
 * greedy agreement and (F32) free-running greedy. meson runs this
 * executable again with HEARTH_ISA=scalar and avx2 so that every kernel
 * path is compared.
 *
 * Then: sequences with different adapter sets in one batch give the bits of
 * each evaluated alone (and a sequence without adapters the base model's
 * bits); scale 0 is the base; the set is refcounted (the caller may drop its
 * reference while a sequence uses the adapter); adapters of every kind of
 * mismatch, made here with the GGUF writer, are refused with a message
 * naming what differs; F16/BF16/Q8_0 adapters agree with their F32 values;
 * the vec kernel of the F16 B product gives the scalar path's bits on every
 * ISA.
 */
#include "arch/arch.h"
#include "arch/vec.h"
#include "gguf.h"
#include "lorautil.h"
#include "quant.h"
#include "testutil.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <hearth/hearth.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- against the reference ---------------------------------------------------------- */

struct use_spec {
    const char *name; /* "a" or "b" */
    float scale;
};

/* The reference case `ref` (ref/REF.logits.f32 / .greedy.txt) of base
 * `model` with the adapters `us`; tol_rel < 0: F32 (2e-3 absolute and
 * free-running greedy). */
static void ref_case(const char *model, const char *ref, const struct use_spec *us, int n_us,
                     double tol_rel)
{
    char rel[160];
    snprintf(rel, sizeof rel, "ref/%s.logits.f32", ref);
    struct hr_model *m = lu_load_model(model);
    if (!m || !tu_find(rel))
        cr_skip_test("%s or %s not present (fresh clone without ../shared/refdata)", model, rel);
    struct hr_ctx *c = lu_new_ctx(m, N_CTX);
    struct hr_lora_use uses[4];
    for (int i = 0; i < n_us; i++)
        uses[i] = (struct hr_lora_use){lu_load_lora(m, lu_adapter(us[i].name)), us[i].scale};
    struct hr_err err;
    cr_assert_eq(hr_ctx_set_loras(c, uses, n_us, &err), 0, "%s", err.msg);
    for (int i = 0; i < n_us; i++)
        hr_lora_free(uses[i].lora); /* the context's sequence keeps them */

    int32_t toks[MAXTOK], greedy[MAXTOK];
    size_t n = lu_tokens(toks);
    snprintf(rel, sizeof rel, "ref/%s.greedy.txt", ref);
    size_t ng = lu_read_ids(rel, greedy, MAXTOK);
    cr_assert_eq(ng, 24);
    int32_t nv = hr_model_n_vocab(m);

    float *got = lu_eval_all(c, nv, toks, n);
    size_t len;
    snprintf(rel, sizeof rel, "ref/%s.logits.f32", ref);
    float *want = tu_read_file(tu_find(rel), &len);
    cr_assert_eq(len, n * (size_t)nv * sizeof(float));
    double d = lu_max_diff(got, want, n * (size_t)nv), range = lu_range_of(want, n * (size_t)nv);
    cr_log_info("%s: max |logit - ref| = %.3g (%.3f%% of %.3g)", ref, d, 100 * d / range, range);
    if (tol_rel < 0)
        cr_expect_leq(d, 2e-3, "%s: max |logit - ref| = %g (tolerance 2e-3)", ref, d);
    else
        cr_expect_leq(d, tol_rel * range, "%s: max |logit - ref| = %g = %.2f%% of %g (tol %.1f%%)",
                      ref, d, 100 * d / range, range, 100 * tol_rel);
    /* and the adapters matter: the base model is far from this reference */
    struct hr_ctx *c0 = lu_new_ctx(m, N_CTX);
    float *base = lu_eval_all(c0, nv, toks, n);
    double d0 = lu_max_diff(base, want, n * (size_t)nv);
    cr_expect_gt(d0, 10 * d, "%s: the base without adapters is as close (%g) as with (%g)", ref, d0,
                 d);

    /* teacher-forced greedy */
    int32_t all[MAXTOK];
    memcpy(all, toks, n * sizeof *all);
    memcpy(all + n, greedy, ng * sizeof *all);
    hr_ctx_truncate(c, 0);
    cr_assert_eq(hr_ctx_eval(c, all, (int32_t)(n + ng - 1), true, &err), 0, "%s", err.msg);
    size_t agree = 0;
    for (size_t k = 0; k < ng; k++)
        agree += lu_argmax(hr_ctx_logits(c, (int32_t)(n - 1 + k)), nv) == greedy[k];
    double need = tol_rel < 0 ? 0.98 : 0.95;
    cr_expect_geq((double)agree, need * (double)ng, "%s: teacher-forced argmax agrees at %zu/%zu",
                  ref, agree, ng);
    if (tol_rel < 0) { /* free-running */
        hr_ctx_truncate(c, 0);
        cr_assert_eq(hr_ctx_eval(c, toks, (int32_t)n, false, &err), 0, "%s", err.msg);
        for (size_t k = 0; k < ng; k++) {
            int32_t t = lu_argmax(hr_ctx_logits(c, -1), nv);
            cr_assert_eq(t, greedy[k], "%s: free-running token %zu is %d, reference %d", ref, k, t,
                         greedy[k]);
            if (k + 1 < ng) cr_assert_eq(hr_ctx_eval(c, &t, 1, false, &err), 0, "%s", err.msg);
        }
    }
    free(got);
    free(want);
    free(base);
    hr_ctx_free(c0);
    hr_ctx_free(c);
    hr_model_free(m);
}

Test(ref, f32_lora_a, .timeout = 120)
{
    struct use_spec us[] = {{"a", 1.0f}};
    ref_case("syn-llama-f32", "syn-llama-f32+lora-a", us, 1, -1);
}

Test(ref, f32_lora_a_b_stacked, .timeout = 120)
{
    struct use_spec us[] = {{"a", 0.5f}, {"b", 1.0f}};
    ref_case("syn-llama-f32", "syn-llama-f32+lora-a0.5+lora-b1.0", us, 2, -1);
}

Test(ref, f32_lora_b_a_other_order, .timeout = 120)
{
    struct use_spec us[] = {{"b", 1.0f}, {"a", 0.5f}}; /* the order only changes rounding */
    ref_case("syn-llama-f32", "syn-llama-f32+lora-a0.5+lora-b1.0", us, 2, -1);
}

Test(ref, q4_k_m_lora_a_b_stacked, .timeout = 120)
{
    struct use_spec us[] = {{"a", 0.5f}, {"b", 1.0f}};
    ref_case("syn-llama-q4_k_m", "syn-llama-q4_k_m+lora-a0.5+lora-b1.0", us, 2, 0.05);
}

Test(ref, q8_0_lora_b_scale_2, .timeout = 120)
{
    struct use_spec us[] = {{"b", 2.0f}};
    ref_case("syn-llama-q8_0", "syn-llama-q8_0+lora-b2.0", us, 1, 0.01);
}

/* ---- sets per sequence, in one batch ----------------------------------------------- */

#define STEPS 6

/* Greedy run of one sequence alone on a context of its own with `uses`:
 * logits after the prompt and after each of STEPS−1 generated lu_tokens
 * ([STEPS][nv], owned). */
static float *solo(struct hr_model *m, const struct hr_lora_use *uses, int n_uses,
                   const int32_t *prompt, size_t n_prompt)
{
    int32_t nv = hr_model_n_vocab(m);
    struct hr_ctx *c = lu_new_ctx(m, N_CTX);
    struct hr_err err;
    cr_assert_eq(hr_ctx_set_loras(c, uses, n_uses, &err), 0, "%s", err.msg);
    float *out = malloc(STEPS * (size_t)nv * sizeof *out);
    cr_assert_eq(hr_ctx_eval(c, prompt, (int32_t)n_prompt, false, &err), 0, "%s", err.msg);
    for (int s = 0; s < STEPS; s++) {
        const float *l = hr_ctx_logits(c, -1);
        memcpy(out + (size_t)s * (size_t)nv, l, (size_t)nv * sizeof *out);
        int32_t t = lu_argmax(l, nv);
        if (s + 1 < STEPS) cr_assert_eq(hr_ctx_eval(c, &t, 1, false, &err), 0, "%s", err.msg);
    }
    hr_ctx_free(c);
    return out;
}

Test(batch, different_sets_share_a_pass_with_solo_bits, .timeout = 300)
{
    struct hr_model *m = lu_load_model("syn-llama-q8_0");
    cr_assert(m, "syn-llama-q8_0 missing from tests/data");
    int32_t nv = hr_model_n_vocab(m);
    struct hr_lora *a = lu_load_lora(m, lu_adapter("a")), *b = lu_load_lora(m, lu_adapter("b"));
    enum { NS = 5 };
    struct hr_lora_use sets[NS][2] = {
        {{a, 0.5f}, {b, 1.0f}}, /* stacked */
        {{b, 2.0f}},            /* one, scale 2 */
        {{0}},                  /* none: the base */
        {{a, 0.0f}},            /* scale 0: the base too */
        {{a, -1.0f}},           /* negative */
    };
    int n_set[NS] = {2, 1, 0, 1, 1};
    size_t n_prompt[NS] = {40, 25, 10, 10, 31}; /* 2 and 3: the same prompt */
    int32_t toks[MAXTOK];
    lu_tokens(toks);

    float *want[NS];
    for (int i = 0; i < NS; i++)
        want[i] = solo(m, sets[i], n_set[i], toks, n_prompt[i]);
    /* the base's own bits: no adapters, and an adapter at scale 0 */
    cr_assert_eq(memcmp(want[2], want[3], STEPS * (size_t)nv * sizeof(float)), 0,
                 "an adapter at scale 0 changed the logits");
    cr_assert_gt(lu_max_diff(want[0], want[2], STEPS * (size_t)nv), 1e-3,
                 "the adapters changed nothing");
    cr_assert_gt(lu_max_diff(want[4], want[2], STEPS * (size_t)nv), 1e-3,
                 "a negative scale changed nothing");

    struct hr_ctx *c = lu_new_ctx(m, 128);
    struct hr_seq *seq[NS];
    struct hr_err err;
    for (int i = 0; i < NS; i++) {
        cr_assert_eq(hr_seq_new(c, N_CTX, &seq[i], &err), 0, "%s", err.msg);
        cr_assert_eq(hr_seq_set_loras(seq[i], sets[i], n_set[i], &err), 0, "%s", err.msg);
    }
    /* the caller's references may go: the sequences hold theirs */
    hr_lora_free(a);
    hr_lora_free(b);
    int32_t next[NS];
    for (int s = 0; s < STEPS; s++) {
        struct hr_batch_item items[NS];
        for (int i = 0; i < NS; i++)
            items[i] = (struct hr_batch_item){seq[i], s == 0 ? toks : &next[i],
                                              s == 0 ? (int32_t)n_prompt[i] : 1, NULL};
        cr_assert_eq(hr_ctx_eval_batch(c, items, NS, &err), 0, "step %d: %s", s, err.msg);
        for (int i = 0; i < NS; i++) {
            const float *w = want[i] + (size_t)s * (size_t)nv;
            cr_assert_eq(memcmp(items[i].logits, w, (size_t)nv * sizeof(float)), 0,
                         "step %d, sequence %d: batched logits differ from solo (max %g)", s, i,
                         lu_max_diff(items[i].logits, w, (size_t)nv));
            next[i] = lu_argmax(items[i].logits, nv);
        }
    }
    for (int i = 0; i < NS; i++) {
        hr_seq_free(seq[i]);
        free(want[i]);
    }
    hr_ctx_free(c);
    hr_model_free(m);
}

Test(batch, changing_the_set_of_a_sequence, .timeout = 120)
{
    struct hr_model *m = lu_load_model("syn-llama-q8_0");
    cr_assert(m);
    int32_t nv = hr_model_n_vocab(m);
    struct hr_lora *b = lu_load_lora(m, lu_adapter("b"));
    int32_t toks[MAXTOK];
    size_t n = lu_tokens(toks);
    struct hr_ctx *c = lu_new_ctx(m, N_CTX), *cb = lu_new_ctx(m, N_CTX);
    struct hr_lora_use ub = {b, 2.0f};
    struct hr_err err;
    cr_assert_eq(hr_ctx_set_loras(cb, &ub, 1, &err), 0, "%s", err.msg);
    float *base = lu_eval_all(c, nv, toks, n), *with_b = lu_eval_all(cb, nv, toks, n);
    /* set, evaluate, clear, evaluate: each time the bits of that set */
    for (int round = 0; round < 2; round++) {
        cr_assert_eq(hr_ctx_set_loras(c, &ub, 1, &err), 0, "%s", err.msg);
        float *x = lu_eval_all(c, nv, toks, n);
        cr_assert_eq(memcmp(x, with_b, n * (size_t)nv * sizeof(float)), 0);
        free(x);
        cr_assert_eq(hr_ctx_set_loras(c, NULL, 0, &err), 0, "%s", err.msg);
        x = lu_eval_all(c, nv, toks, n);
        cr_assert_eq(memcmp(x, base, n * (size_t)nv * sizeof(float)), 0);
        free(x);
    }
    /* a refused set changes nothing */
    struct hr_lora_use bad[2] = {{b, 1.0f}, {b, NAN}};
    cr_assert_eq(hr_ctx_set_loras(c, &ub, 1, &err), 0);
    cr_assert_eq(hr_ctx_set_loras(c, bad, 2, &err), -EINVAL);
    cr_assert(strstr(err.msg, "finite"), "%s", err.msg);
    float *x = lu_eval_all(c, nv, toks, n);
    cr_assert_eq(memcmp(x, with_b, n * (size_t)nv * sizeof(float)), 0);
    free(x);
    struct hr_lora_use null_use = {NULL, 1.0f};
    cr_assert_eq(hr_ctx_set_loras(c, &null_use, 1, &err), -EINVAL);
    cr_assert_eq(hr_ctx_set_loras(c, &ub, -1, &err), -EINVAL);

    /* an adapter of another model (another load of the same file) is refused */
    struct hr_model *m2 = lu_load_model("syn-llama-q8_0");
    struct hr_lora *b2 = lu_load_lora(m2, lu_adapter("b"));
    struct hr_lora_use u2 = {b2, 1.0f};
    cr_assert_eq(hr_ctx_set_loras(c, &u2, 1, &err), -EINVAL);
    cr_assert(strstr(err.msg, "another model"), "%s", err.msg);
    hr_lora_free(b2);
    hr_model_free(m2);

    /* info */
    struct hr_lora_info info;
    hr_lora_get_info(b, &info);
    cr_assert_eq(info.rank, 8);
    cr_assert_float_eq(info.alpha, 4.0f, 0);
    cr_assert_eq(info.n_tensors, 3 * 7);
    cr_assert_gt(info.n_bytes, 0);
    cr_assert_eq(hr_lora_retain(b), b);
    hr_lora_free(b);
    hr_lora_retain(NULL);
    hr_lora_free(NULL);

    hr_lora_free(b);
    hr_ctx_free(cb);
    hr_ctx_free(c); /* drops the last reference */
    free(base);
    free(with_b);
    hr_model_free(m);
}

static void refused(struct hr_model *m, const char *path, int code, ...)
{
    struct hr_lora *l = (struct hr_lora *)0x1;
    struct hr_err err;
    int rc = hr_lora_load(m, path, &l, &err);
    cr_assert_eq(rc, code, "%s: rc %d, expected %d (%s)", path, rc, code, err.msg);
    cr_assert_eq(l, (struct hr_lora *)0x1, "output written on failure");
    va_list ap;
    va_start(ap, code);
    for (const char *s; (s = va_arg(ap, const char *));)
        cr_assert(strstr(err.msg, s), "message '%s' lacks '%s'", err.msg, s);
    va_end(ap);
}

#define F32 HR_TYPE_F32
#define QA(l, x, ne0, r)                                                                           \
    {                                                                                              \
        "blk." #l "." x ".weight.lora_a", F32, ne0, r, NULL                                        \
    }
#define QB(l, x, r, ne1)                                                                           \
    {                                                                                              \
        "blk." #l "." x ".weight.lora_b", F32, r, ne1, NULL                                        \
    }

Test(mismatch, refused_naming_what_differs, .timeout = 120)
{
    struct hr_model *m = lu_load_model("syn-llama-q8_0");
    cr_assert(m);
    lu_mkdtemp();
    /* the generator makes loadable adapters: a minimal good one first */
    struct lu_tensor good[] = {QA(0, "attn_q", 256, 4), QB(0, "attn_q", 4, 256),
                               QA(2, "ffn_down", 768, 4), QB(2, "ffn_down", 4, 256)};
    struct hr_lora *l =
        lu_load_lora(m, lu_make_adapter("good.gguf", "llama", "adapter", good, 4, false));
    struct hr_lora_info info;
    hr_lora_get_info(l, &info);
    cr_assert_eq(info.n_tensors, 2);
    hr_lora_free(l);

    refused(m, lu_make_adapter("arch.gguf", "qwen2", "adapter", good, 4, false), -EINVAL,
            "arch.gguf", "'qwen2'", "'llama'", NULL);
    refused(m, lu_make_adapter("model.gguf", "llama", "model", good, 4, false), -EINVAL,
            "not a LoRA adapter", "general.type", NULL);
    struct lu_tensor missing[] = {QA(7, "attn_q", 256, 4), QB(7, "attn_q", 4, 256)};
    refused(m, lu_make_adapter("missing.gguf", "llama", "adapter", missing, 2, false), -EINVAL,
            "blk.7.attn_q.weight", "does not have", NULL);
    struct lu_tensor shape[] = {QA(0, "attn_k", 128, 4), QB(0, "attn_k", 4, 64)};
    refused(m, lu_make_adapter("shape.gguf", "llama", "adapter", shape, 2, false), -EINVAL,
            "blk.0.attn_k.weight", "[128, 4]", "[256, 64]", NULL);
    struct lu_tensor out_shape[] = {QA(1, "attn_v", 256, 4), QB(1, "attn_v", 4, 256)};
    refused(m, lu_make_adapter("out.gguf", "llama", "adapter", out_shape, 2, false), -EINVAL,
            "blk.1.attn_v.weight", "[4, 256]", NULL);
    struct lu_tensor rank[] = {QA(0, "attn_q", 256, 4), QB(0, "attn_q", 8, 256)};
    refused(m, lu_make_adapter("rank.gguf", "llama", "adapter", rank, 2, false), -EINVAL,
            "rank of A (4)", "rank of B", "(8)", NULL);
    struct lu_tensor half[] = {QA(0, "attn_q", 256, 4)};
    refused(m, lu_make_adapter("half.gguf", "llama", "adapter", half, 1, false), -EINVAL,
            "blk.0.attn_q.weight", "incomplete", NULL);
    struct lu_tensor suffix[] = {{"blk.0.attn_q.weight.lora_c", F32, 256, 4, NULL}};
    refused(m, lu_make_adapter("suffix.gguf", "llama", "adapter", suffix, 1, false), -EINVAL,
            "lora_c", "not a LoRA tensor", NULL);
    struct lu_tensor norm[] = {{"blk.0.attn_norm.weight.lora_a", F32, 256, 4, NULL},
                               {"blk.0.attn_norm.weight.lora_b", F32, 4, 1, NULL}};
    refused(m, lu_make_adapter("norm.gguf", "llama", "adapter", norm, 2, false), -ENOTSUP,
            "blk.0.attn_norm.weight", "applies LoRA to", NULL);
    refused(m, lu_make_adapter("alora.gguf", "llama", "adapter", good, 4, true), -ENOTSUP,
            "activated LoRA", NULL);
    refused(m, lu_tmp("absent.gguf"), -ENOENT, "absent.gguf", NULL);
    /* a norm vector among the pairs is ignored, as the reference does */
    struct lu_tensor with_norm[] = {QA(0, "attn_q", 256, 4),
                                    QB(0, "attn_q", 4, 256),
                                    {"blk.0.attn_norm.weight", F32, 256, 1, NULL}};
    l = lu_load_lora(m, lu_make_adapter("norm_ok.gguf", "llama", "adapter", with_norm, 3, false));
    hr_lora_get_info(l, &info);
    cr_assert_eq(info.n_tensors, 1);
    hr_lora_free(l);
    hr_model_free(m);
    lu_rmdtemp();
}

/* The same values as F32 and as `type` on every projection of layer 1:
 * logits agree to a small fraction of what the adapter moves them by. The
 * base is an F16 model: on a Q8_0 base the activations' 8-bit rounding
 * turns any change of an input (as rounding the adapter's values to F16)
 * into jumps of whole quantization steps, which would hide the kernels'
 * own error. */
static void type_case(uint32_t type, int64_t r, double tol)
{
    const char *mpath = tu_find("models/syn-qwen2-f16.gguf");
    cr_assert(mpath, "syn-qwen2-f16 missing from tests/data");
    char base[4096];
    snprintf(base, sizeof base, "%s", mpath);
    struct hr_model *m;
    struct hr_err err;
    cr_assert_eq(hr_model_load(base, NULL, &m, &err), 0, "%s", err.msg);
    struct gguf_file *bf;
    cr_assert_eq(gguf_open(base, GGUF_DEFAULT_BUDGET, &bf, &err), 0);
    int32_t nv = hr_model_n_vocab(m);
    lu_mkdtemp();
    static const char *const proj[7] = {"attn_q",   "attn_k", "attn_v",  "attn_output",
                                        "ffn_gate", "ffn_up", "ffn_down"};
    struct lu_tensor ts[2][14];
    char names[14][80];
    float *vals[14];
    for (int p = 0; p < 7; p++) {
        char bn[64];
        snprintf(bn, sizeof bn, "blk.1.%s.weight", proj[p]);
        const struct gguf_tensor *bt = gguf_find_tensor(bf, bn);
        cr_assert(bt, "%s", bn);
        for (int h = 0; h < 2; h++) {
            int i = 2 * p + h;
            snprintf(names[i], sizeof names[i], "%s.lora_%c", bn, "ab"[h]);
            int64_t ne0 = h ? r : bt->ne[0], ne1 = h ? bt->ne[1] : r;
            vals[i] = malloc((size_t)(ne0 * ne1) * sizeof(float));
            for (int64_t e = 0; e < ne0 * ne1; e++)
                vals[i][e] =
                    (h ? 0.6f : 0.25f) * sinf(0.61f * (float)e + (float)i) / sqrtf((float)ne0);
            ts[0][i] = (struct lu_tensor){names[i], HR_TYPE_F32, ne0, ne1, vals[i]};
            ts[1][i] = (struct lu_tensor){names[i], type, ne0, ne1, vals[i]};
        }
    }
    struct hr_lora *lf =
        lu_load_lora(m, lu_make_adapter("f32.gguf", "qwen2", "adapter", ts[0], 14, false));
    struct hr_lora *lt =
        lu_load_lora(m, lu_make_adapter("t.gguf", "qwen2", "adapter", ts[1], 14, false));
    int32_t toks[MAXTOK];
    size_t n = lu_read_ids("ref/tokens-qwen.txt", toks, MAXTOK);
    struct hr_ctx *c = lu_new_ctx(m, N_CTX);
    float *base_l = lu_eval_all(c, nv, toks, n);
    struct hr_lora_use u = {lf, 1.0f};
    cr_assert_eq(hr_ctx_set_loras(c, &u, 1, &err), 0, "%s", err.msg);
    float *with_f = lu_eval_all(c, nv, toks, n);
    u.lora = lt;
    cr_assert_eq(hr_ctx_set_loras(c, &u, 1, &err), 0, "%s", err.msg);
    float *with_t = lu_eval_all(c, nv, toks, n);
    size_t all = n * (size_t)nv;
    double d = lu_max_diff(with_f, with_t, all), moved = lu_max_diff(with_f, base_l, all);
    cr_log_info("%s adapter: max diff to f32 %.3g, moved %.3g (%.2f%%)", hr_type_name(type), d,
                moved, 100 * d / moved);
    cr_expect_leq(d, tol * moved,
                  "%s adapter differs from its f32 values by %g, %.2f%% of the "
                  "%g the adapter moves the logits (tolerance %.1f%%)",
                  hr_type_name(type), d, 100 * d / moved, moved, 100 * tol);
    cr_expect_gt(moved, 0.1, "the adapter moved the logits by %g only", moved);
    for (int i = 0; i < 14; i++)
        free(vals[i]);
    free(base_l);
    free(with_f);
    free(with_t);
    hr_lora_free(lf);
    hr_lora_free(lt);
    hr_ctx_free(c);
    gguf_free(bf);
    hr_model_free(m);
    lu_rmdtemp();
}

Test(types, f16_adapter, .timeout = 120)
{
    type_case(HR_TYPE_F16, 8, 0.01);
}

Test(types, bf16_adapter, .timeout = 120)
{
    type_case(HR_TYPE_BF16, 8, 0.03);
}

Test(types, q8_0_adapter, .timeout = 120)
{
    type_case(HR_TYPE_Q8_0, 32, 0.03);
}

/* ---- the B-product kernel ------------------------------------------------------------ */

/* vec.h mad_f16 (B·(A·x) through Bᵀ for F16 adapters): every ISA path gives
 * the scalar path's bits, tails included. */
Test(vec, mad_f16_matches_scalar)
{
    const struct vec_kernels *ref = vec_kernels_isa(HR_ISA_SCALAR);
    cr_assert(ref && ref->mad_f16);
    enum { N = 77 };
    uint16_t x[N];
    float y0[N], y[N];
    for (int i = 0; i < N; i++) {
        x[i] = hr_fp32_to_fp16(0.37f * sinf((float)i * 1.3f) * (i % 5 ? 1.0f : 1e-5f));
        y0[i] = cosf((float)i);
    }
    int checked = 0;
    for (int isa = HR_ISA_SCALAR; isa <= (int)hr_isa_detect(); isa++) {
        const struct vec_kernels *k = vec_kernels_isa(isa);
        if (!k)
            continue;
        for (int n = 0; n <= N; n += 7) {
            float want[N];
            memcpy(want, y0, sizeof want);
            memcpy(y, y0, sizeof y);
            ref->mad_f16(want, x, -0.731f, n);
            k->mad_f16(y, x, -0.731f, n);
            cr_assert_eq(memcmp(y, want, sizeof y), 0, "%s, n = %d: differs from scalar",
                         hr_isa_name((enum hr_isa)isa), n);
        }
        checked++;
    }
    cr_assert_geq(checked, 1);
}
