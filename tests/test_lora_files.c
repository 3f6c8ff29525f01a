/*
 * test_lora_files.c — LoRA adapter files and commands: merging adapters
 * into a model (core/lora_merge.c, `hearth lora merge`) reproduces the
 * reference logits through the merged file, keeps or converts tensor types
 * and refuses a mismatched adapter before writing; a PEFT directory written
 * here (safetensors by hand, q/k rows of lora_B back in Hugging Face order)
 * imports (core/lora_import.c, `hearth lora import`) to exactly the GGUF
 * adapter it came from, also as rsLoRA and F16, and broken or unsupported
 * ones are refused naming the problem; `hearth logits/generate --lora`.
 */
#include "gguf.h"
#include "lora.h"
#include "lorautil.h"
#include "quant.h"
#include "testutil.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <hearth/hearth.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define F32 HR_TYPE_F32
#define QA(l, x, ne0, r)                                                                           \
    {                                                                                              \
        "blk." #l "." x ".weight.lora_a", F32, ne0, r, NULL                                        \
    }
#define QB(l, x, r, ne1)                                                                           \
    {                                                                                              \
        "blk." #l "." x ".weight.lora_b", F32, r, ne1, NULL                                        \
    }

/* ---- merge ------------------------------------------------------------------------------ */

/* Logits of `path` (a merged model) against reference `ref`. */
static double merged_vs_ref(const char *path, const char *ref, double *range)
{
    struct hr_model *m;
    struct hr_err err;
    cr_assert_eq(hr_model_load(path, NULL, &m, &err), 0, "%s", err.msg);
    int32_t nv = hr_model_n_vocab(m), toks[MAXTOK];
    size_t n = lu_tokens(toks);
    struct hr_ctx *c = lu_new_ctx(m, N_CTX);
    float *got = lu_eval_all(c, nv, toks, n);
    char rel[160];
    snprintf(rel, sizeof rel, "ref/%s.logits.f32", ref);
    size_t len;
    float *want = tu_read_file(tu_find(rel), &len);
    cr_assert_eq(len, n * (size_t)nv * sizeof(float));
    double d = lu_max_diff(got, want, n * (size_t)nv);
    *range = lu_range_of(want, n * (size_t)nv);
    cr_log_info("merged %s: max |logit - ref| = %.3g (%.3f%% of %.3g)", ref, d, 100 * d / *range,
                *range);
    free(got);
    free(want);
    hr_ctx_free(c);
    hr_model_free(m);
    return d;
}

static int progress_calls;
static void count_progress(void *ud, const struct lora_merge_progress *p)
{
    (void)ud;
    cr_assert_eq(p->index, ++progress_calls);
    cr_assert(p->name && p->index <= p->count);
}

Test(merge, q8_0_base_keeps_types_and_matches_reference, .timeout = 300)
{
    char base_buf[4096];
    const char *base = lu_find_copy("models/syn-llama-q8_0.gguf", base_buf, sizeof base_buf);
    cr_assert(base);
    lu_mkdtemp();
    struct lora_merge_input in[] = {{lu_adapter("b"), 2.0f}};
    struct lora_merge_params p = {.ftype = -1, .n_threads = 2, .progress = count_progress};
    struct lora_merge_stats st;
    struct hr_err err;
    const char *out = lu_tmp("merged.gguf");
    progress_calls = 0;
    cr_assert_eq(lora_merge(base, in, 1, out, &p, &st, &err), 0, "%s", err.msg);
    cr_assert_eq(st.n_merged, 21);
    cr_assert_eq(progress_calls, st.n_tensors);
    /* every tensor keeps its type; those without a delta keep their bytes */
    struct gguf_file *fb, *fm;
    cr_assert_eq(gguf_open(base, GGUF_DEFAULT_BUDGET, &fb, &err), 0);
    cr_assert_eq(gguf_open(out, GGUF_DEFAULT_BUDGET, &fm, &err), 0, "%s", err.msg);
    cr_assert_eq(fb->n_tensors, fm->n_tensors);
    int same = 0;
    for (uint64_t i = 0; i < fb->n_tensors; i++) {
        const struct gguf_tensor *a = &fb->tensors[i], *b = gguf_find_tensor(fm, a->name);
        cr_assert(b, "%s missing", a->name);
        cr_assert_eq(a->type, b->type, "%s changed type", a->name);
        bool eq = a->nbytes == b->nbytes && !memcmp(a->data, b->data, a->nbytes);
        bool changed = strstr(a->name, "blk.") && !strstr(a->name, "norm");
        cr_assert_eq(eq, !changed, "%s: %s", a->name, eq ? "not merged" : "changed");
        same += eq;
    }
    cr_assert_eq(same, (int)fb->n_tensors - 21);
    gguf_free(fb);
    gguf_free(fm);
    double range, d = merged_vs_ref(out, "syn-llama-q8_0+lora-b2.0", &range);
    cr_expect_leq(d, 0.02 * range, "merged model: %g (%.2f%% of the range)", d, 100 * d / range);

    /* the CLI writes the same file */
    char *o, *e;
    const char *out2 = lu_tmp("cli.gguf");
    char spec[4200];
    snprintf(spec, sizeof spec, "%s:2", lu_adapter("b"));
    int rc = tu_hearth(&o, &e, "lora", "merge", base, spec, "-o", out2, "-t", "1", NULL);
    cr_assert_eq(rc, 0, "%s", e);
    cr_assert(strstr(e, "+ 1 adapter"), "no progress lines: %s", e);
    cr_assert(strstr(e, "(kept)"), "%s", e);
    size_t l1, l2;
    char *b1 = tu_read_file(out, &l1), *b2 = tu_read_file(out2, &l2);
    cr_assert(l1 == l2 && !memcmp(b1, b2, l1), "CLI output differs from lora_merge's");
    free(b1);
    free(b2);
    free(o);
    free(e);

    /* --type: every matrix requantized to the mix */
    p.ftype = 1; /* F16 */
    progress_calls = 0;
    cr_assert_eq(lora_merge(base, in, 1, out, &p, &st, &err), 0, "%s", err.msg);
    cr_assert_eq(gguf_open(out, GGUF_DEFAULT_BUDGET, &fm, &err), 0, "%s", err.msg);
    cr_assert_eq(gguf_find_tensor(fm, "blk.0.ffn_up.weight")->type, HR_TYPE_F16);
    cr_assert_eq(gguf_find_tensor(fm, "output.weight")->type, HR_TYPE_F16);
    uint32_t ft;
    cr_assert_eq(gguf_get_u32(fm, "general.file_type", &ft, NULL), 0);
    cr_assert_eq(ft, 1);
    gguf_free(fm);
    d = merged_vs_ref(out, "syn-llama-q8_0+lora-b2.0", &range);
    cr_expect_leq(d, 0.02 * range, "merged f16 model: %g", d);

    /* a mismatched adapter: refused before anything is written */
    struct lu_tensor bad[] = {QA(0, "attn_q", 256, 4), QB(0, "attn_q", 4, 128)};
    struct lora_merge_input in_bad[] = {
        {lu_adapter("a"), 1.0f},
        {lu_make_adapter("bad.gguf", "llama", "adapter", bad, 2, false), 1.0f}};
    const char *out3 = lu_tmp("never.gguf");
    p.ftype = -1;
    cr_assert_eq(lora_merge(base, in_bad, 2, out3, &p, &st, &err), -EINVAL);
    cr_assert(strstr(err.msg, "bad.gguf") && strstr(err.msg, "blk.0.attn_q.weight"), "%s", err.msg);
    cr_assert(!tu_exists(out3));
    rc = tu_hearth(&o, &e, "lora", "merge", base, in_bad[1].path, "-o", out3, NULL);
    cr_assert_eq(rc, 1);
    tu_assert_one_line_error(e, "blk.0.attn_q.weight");
    free(o);
    free(e);
    lu_rmdtemp();
}

Test(merge, f32_base_two_adapters, .timeout = 300)
{
    char base_buf[4096];
    const char *base = lu_find_copy("models/syn-llama-f32.gguf", base_buf, sizeof base_buf);
    if (!base || !tu_find("ref/syn-llama-f32+lora-a0.5+lora-b1.0.logits.f32"))
        cr_skip_test("syn-llama-f32 not present (fresh clone without ../shared/refdata)");
    lu_mkdtemp();
    struct lora_merge_input in[] = {{lu_adapter("a"), 0.5f}, {lu_adapter("b"), 1.0f}};
    struct lora_merge_params p = {.ftype = -1, .n_threads = 2};
    struct hr_err err;
    const char *out = lu_tmp("merged.gguf");
    cr_assert_eq(lora_merge(base, in, 2, out, &p, NULL, &err), 0, "%s", err.msg);
    double range, d = merged_vs_ref(out, "syn-llama-f32+lora-a0.5+lora-b1.0", &range);
    cr_expect_leq(d, 2e-3, "merged f32 model: max |logit - ref| = %g", d);
    lu_rmdtemp();
}

/* ---- PEFT import -------------------------------------------------------------------------- */

/* The Hugging Face module of GGUF base tensor `name` (blk.N.X.weight). */
static void hf_module(const char *name, char *out, size_t cap, int *perm)
{
    static const char *const map[][2] = {
        {"attn_q", "self_attn.q_proj"}, {"attn_k", "self_attn.k_proj"},
        {"attn_v", "self_attn.v_proj"}, {"attn_output", "self_attn.o_proj"},
        {"ffn_gate", "mlp.gate_proj"},  {"ffn_up", "mlp.up_proj"},
        {"ffn_down", "mlp.down_proj"},
    };
    int layer, n = 0;
    cr_assert_eq(sscanf(name, "blk.%d.%n", &layer, &n), 1);
    for (size_t i = 0; i < 7; i++) {
        size_t l = strlen(map[i][0]);
        if (!strncmp(name + n, map[i][0], l) && !strcmp(name + n + l, ".weight")) {
            snprintf(out, cap, "base_model.model.model.layers.%d.%s", layer, map[i][1]);
            *perm = i == 0 ? 8 : i == 1 ? 2 : 0; /* heads of q and k (syn-llama: 8 / 2) */
            return;
        }
    }
    cr_assert_fail("unexpected tensor %s", name);
}

struct peft_opts {
    const char *dtype; /* "F32" or "F16" (or anything, written as F32 bytes) */
    double alpha;
    bool rslora, dora;
    int r;               /* in the config */
    const char *targets; /* JSON */
    bool truncate;       /* cut the data short */
};

/* Writes DIR (lu_tmp(dir)) as PEFT would save lora-llama-a: its tensors
 * with HF names and shapes, q/k rows of lora_B back in HF order. */
static const char *write_peft(const char *dir, const struct peft_opts *o)
{
    const char *d = lu_tmp(dir);
    char dpath[256];
    snprintf(dpath, sizeof dpath, "%s", d);
    cr_assert_eq(mkdir(dpath, 0700), 0);
    struct gguf_file *f;
    struct hr_err err;
    cr_assert_eq(gguf_open(lu_adapter("a"), GGUF_DEFAULT_BUDGET, &f, &err), 0);
    bool f16 = !strcmp(o->dtype, "F16");
    size_t es = f16 ? 2 : 4, cap = 1 << 20, hn = 0, dn = 0;
    char *hdr = malloc(cap);
    uint8_t *data = malloc(f->n_tensors ? 4 << 20 : 1);
    hn += (size_t)snprintf(hdr + hn, cap - hn, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const struct gguf_tensor *t = &f->tensors[i];
        cr_assert_eq(t->type, HR_TYPE_F32);
        char base[64], mod[160];
        size_t bl = strlen(t->name) - 7;
        memcpy(base, t->name, bl);
        base[bl] = '\0';
        int perm;
        hf_module(base, mod, sizeof mod, &perm);
        bool is_b = t->name[strlen(t->name) - 1] == 'b';
        int64_t rows = t->ne[1], cols = t->ne[0]; /* torch shape [rows, cols] */
        const float *src = t->data;
        size_t off = dn;
        for (int64_t row = 0; row < rows; row++) {
            int64_t from = row;
            if (is_b && perm) { /* HF row h·hd + i·hd/2 + j is GGUF row h·hd + 2j + i */
                int64_t hd = rows / perm, h = row / hd, w = row % hd, half = hd / 2;
                int64_t i2 = w / half, j = w % half;
                from = h * hd + 2 * j + i2;
            }
            for (int64_t c = 0; c < cols; c++) {
                float v = src[from * cols + c];
                if (f16) {
                    uint16_t hv = hr_fp32_to_fp16(v);
                    memcpy(data + dn, &hv, 2);
                } else {
                    memcpy(data + dn, &v, 4);
                }
                dn += es;
            }
        }
        hn += (size_t)snprintf(hdr + hn, cap - hn,
                               ",\"%s.lora_%c.weight\":{\"dtype\":\"%s\",\"shape\":[%lld,%lld],"
                               "\"data_offsets\":[%zu,%zu]}",
                               mod, is_b ? 'B' : 'A', o->dtype, (long long)rows, (long long)cols,
                               off, dn);
    }
    hn += (size_t)snprintf(hdr + hn, cap - hn, "}");
    while (hn % 8) /* the writer pads the header with spaces */
        hdr[hn++] = ' ';
    char p[320];
    snprintf(p, sizeof p, "%s/adapter_model.safetensors", dpath);
    FILE *fp = fopen(p, "wb");
    cr_assert(fp);
    uint8_t len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (uint8_t)((uint64_t)hn >> (8 * i));
    fwrite(len8, 1, 8, fp);
    fwrite(hdr, 1, hn, fp);
    fwrite(data, 1, o->truncate ? dn / 2 : dn, fp);
    fclose(fp);
    snprintf(p, sizeof p, "%s/adapter_config.json", dpath);
    fp = fopen(p, "w");
    cr_assert(fp);
    fprintf(fp,
            "{\"peft_type\": \"LORA\", \"base_model_name_or_path\": \"syn-llama\", \"r\": %d,\n"
            " \"lora_alpha\": %g, \"lora_dropout\": 0.05, \"use_rslora\": %s, \"use_dora\": %s,\n"
            " \"target_modules\": %s, \"bias\": \"none\", \"task_type\": \"CAUSAL_LM\"}\n",
            o->r, o->alpha, o->rslora ? "true" : "false", o->dora ? "true" : "false", o->targets);
    fclose(fp);
    free(hdr);
    free(data);
    gguf_free(f);
    return d;
}

static const char *all_targets =
    "[\"q_proj\", \"k_proj\", \"v_proj\", \"o_proj\", \"gate_proj\", \"up_proj\", \"down_proj\"]";

/* The imported file holds exactly lora-llama-a's tensors and alpha. */
static void same_as_a(const char *path)
{
    struct gguf_file *fa, *fi;
    struct hr_err err;
    cr_assert_eq(gguf_open(lu_adapter("a"), GGUF_DEFAULT_BUDGET, &fa, &err), 0);
    cr_assert_eq(gguf_open(path, GGUF_DEFAULT_BUDGET, &fi, &err), 0, "%s", err.msg);
    cr_assert_eq(fa->n_tensors, fi->n_tensors);
    for (uint64_t i = 0; i < fa->n_tensors; i++) {
        const struct gguf_tensor *a = &fa->tensors[i], *b = gguf_find_tensor(fi, a->name);
        cr_assert(b, "imported adapter lacks %s", a->name);
        cr_assert(a->type == b->type && a->ne[0] == b->ne[0] && a->ne[1] == b->ne[1],
                  "%s: type/shape differ", a->name);
        cr_assert_eq(memcmp(a->data, b->data, a->nbytes), 0, "%s: values differ", a->name);
    }
    float alpha;
    cr_assert_eq(gguf_get_f32(fi, "adapter.lora.alpha", &alpha, NULL), 0);
    cr_assert_float_eq(alpha, 8.0f, 1e-6);
    gguf_free(fa);
    gguf_free(fi);
}

Test(import, peft_to_gguf_is_the_original_adapter, .timeout = 120)
{
    char base_buf[4096];
    const char *base = lu_find_copy("models/syn-llama-q8_0.gguf", base_buf, sizeof base_buf);
    cr_assert(base);
    lu_mkdtemp();
    struct peft_opts o = {"F32", 8, false, false, 4, all_targets, false};
    const char *dir = write_peft("peft", &o);
    struct lora_import_stats st;
    struct hr_err err;
    const char *out = lu_tmp("imported.gguf");
    cr_assert_eq(lora_import_peft(dir, base, out, &st, &err), 0, "%s", err.msg);
    cr_assert_eq(st.n_pairs, 21);
    cr_assert_eq(st.rank, 4);
    same_as_a(out);

    /* the same logits as the GGUF adapter it came from */
    struct hr_model *m = lu_load_model("syn-llama-q8_0");
    int32_t nv = hr_model_n_vocab(m), toks[MAXTOK];
    size_t n = lu_tokens(toks);
    struct hr_ctx *c = lu_new_ctx(m, N_CTX);
    struct hr_lora_use u = {lu_load_lora(m, lu_adapter("a")), 1.0f};
    cr_assert_eq(hr_ctx_set_loras(c, &u, 1, &err), 0);
    float *want = lu_eval_all(c, nv, toks, n);
    hr_lora_free(u.lora);
    u.lora = lu_load_lora(m, out);
    cr_assert_eq(hr_ctx_set_loras(c, &u, 1, &err), 0);
    float *got = lu_eval_all(c, nv, toks, n);
    cr_assert_eq(memcmp(got, want, n * (size_t)nv * sizeof(float)), 0);
    hr_lora_free(u.lora);

    /* rsLoRA: alpha/√r is the scale, so alpha 4 at r 4 is alpha 8 of plain LoRA */
    o = (struct peft_opts){"F32", 4, true, false, 4, all_targets, false};
    dir = write_peft("rslora", &o);
    out = lu_tmp("rslora.gguf");
    cr_assert_eq(lora_import_peft(dir, base, out, &st, &err), 0, "%s", err.msg);
    same_as_a(out);

    /* F16 tensors stay F16; the logits move by the rounding only (on this
     * Q8_0 base amplified into whole activation quantization steps, hence
     * the reference README's tolerance for quantized models) */
    o = (struct peft_opts){"F16", 8, false, false, 4, "\"all-linear\"", false};
    dir = write_peft("f16", &o);
    out = lu_tmp("f16.gguf");
    cr_assert_eq(lora_import_peft(dir, base, out, &st, &err), 0, "%s", err.msg);
    u.lora = lu_load_lora(m, out);
    cr_assert_eq(hr_ctx_set_loras(c, &u, 1, &err), 0);
    float *f16 = lu_eval_all(c, nv, toks, n);
    double d = lu_max_diff(f16, want, n * (size_t)nv), range = lu_range_of(want, n * (size_t)nv);
    cr_expect_leq(d, 0.02 * range, "F16 import: %g of %g", d, range);
    hr_lora_free(u.lora);
    free(f16);

    /* the CLI */
    char *so, *se;
    const char *out_cli = lu_tmp("cli.gguf");
    dir = lu_tmp("peft");
    int rc = tu_hearth(&so, &se, "lora", "import", dir, "-m", base, "-o", out_cli, NULL);
    cr_assert_eq(rc, 0, "%s", se);
    same_as_a(out_cli);
    free(so);
    free(se);
    rc = tu_hearth(&so, &se, "lora", "import", dir, "-o", out_cli, NULL);
    cr_assert_eq(rc, 2);
    tu_assert_one_line_error(se, "-m BASE");
    free(so);
    free(se);

    free(got);
    free(want);
    hr_ctx_free(c);
    hr_model_free(m);
    lu_rmdtemp();
}

/* Import of a broken or unsupported PEFT dir: code and message. */
static void import_refused(const char *name, const struct peft_opts *o, const char *base, int code,
                           const char *what)
{
    const char *dir = write_peft(name, o);
    char out[300];
    snprintf(out, sizeof out, "%s/out.gguf", dir);
    struct hr_err err;
    int rc = lora_import_peft(dir, base, out, NULL, &err);
    cr_assert_eq(rc, code, "%s: rc %d (%s)", name, rc, err.msg);
    cr_assert(strstr(err.msg, what), "%s: message '%s' lacks '%s'", name, err.msg, what);
    cr_assert(!tu_exists(out), "%s: an output was written", name);
}

Test(import, refused_clearly, .timeout = 120)
{
    char base_buf[4096];
    const char *base = lu_find_copy("models/syn-llama-q8_0.gguf", base_buf, sizeof base_buf);
    cr_assert(base);
    lu_mkdtemp();
    struct peft_opts o = {"I32", 8, false, false, 4, all_targets, false};
    import_refused("dtype", &o, base, -ENOTSUP, "dtype I32");
    o = (struct peft_opts){"F32", 8, false, false, 8, all_targets, false};
    import_refused("rank", &o, base, -EINVAL, "r = 8");
    o.r = 4;
    o.targets = "[\"q_proj\", \"k_proj\", \"v_proj\", \"o_proj\"]";
    import_refused("targets", &o, base, -EINVAL, "target_modules");
    o.targets = all_targets;
    o.dora = true;
    import_refused("dora", &o, base, -ENOTSUP, "DoRA");
    o.dora = false;
    o.truncate = true;
    import_refused("short", &o, base, -EINVAL, "data_offsets");
    o.truncate = false;
    /* another base: the converted adapter does not fit it */
    char qwen_buf[4096];
    const char *qwen = lu_find_copy("models/syn-qwen2-q4_0.gguf", qwen_buf, sizeof qwen_buf);
    cr_assert(qwen);
    import_refused("qwen", &o, qwen, -EINVAL, "blk.");
    struct hr_err err;
    cr_assert_eq(lora_import_peft(lu_tmp("nowhere"), base, lu_tmp("x.gguf"), NULL, &err), -ENOENT);
    cr_assert(strstr(err.msg, "adapter_config.json"), "%s", err.msg);
    lu_rmdtemp();
}

/* ---- --lora on generate and logits --------------------------------------------------------- */

Test(cli, logits_and_generate_take_lora, .timeout = 120)
{
    char base_buf[4096];
    const char *base = lu_find_copy("models/syn-llama-q8_0.gguf", base_buf, sizeof base_buf);
    cr_assert(base);
    lu_mkdtemp();
    int32_t toks[MAXTOK];
    size_t n = lu_tokens(toks);
    char list[1024];
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += (size_t)snprintf(list + k, sizeof list - k, i ? ",%d" : "%d", toks[i]);
    char sa[4200], sb[4200];
    snprintf(sa, sizeof sa, "%s:0.5", lu_adapter("a"));
    snprintf(sb, sizeof sb, "%s", lu_adapter("b"));
    const char *out = lu_tmp("logits.f32");
    char *o, *e;
    int rc = tu_hearth(&o, &e, "logits", "-m", base, "--tokens", list, "-o", out, "-t", "2",
                       "--lora", sa, "--lora", sb, NULL);
    cr_assert_eq(rc, 0, "%s", e);
    cr_assert(strstr(e, "scale 0.5") && strstr(e, "scale 1"), "%s", e);
    free(o);
    free(e);

    struct hr_model *m = lu_load_model("syn-llama-q8_0");
    int32_t nv = hr_model_n_vocab(m);
    struct hr_ctx *c = lu_new_ctx(m, N_CTX);
    struct hr_lora_use u[2] = {{lu_load_lora(m, lu_adapter("a")), 0.5f},
                               {lu_load_lora(m, lu_adapter("b")), 1.0f}};
    struct hr_err err;
    cr_assert_eq(hr_ctx_set_loras(c, u, 2, &err), 0);
    float *want = lu_eval_all(c, nv, toks, n);
    size_t len;
    float *got = tu_read_file(out, &len);
    cr_assert_eq(len, n * (size_t)nv * sizeof(float));
    cr_assert_eq(memcmp(got, want, len), 0, "hearth logits --lora differs (max %g)",
                 lu_max_diff(got, want, n * (size_t)nv));
    free(got);
    free(want);
    hr_lora_free(u[0].lora);
    hr_lora_free(u[1].lora);
    hr_ctx_free(c);
    hr_model_free(m);

    rc = tu_hearth(&o, &e, "generate", "-m", base, "-p", "hello", "-n", "4", "--temp", "0",
                   "--lora", sb, NULL);
    cr_assert_eq(rc, 0, "%s", e);
    cr_assert(strstr(e, "rank 8"), "%s", e);
    free(o);
    free(e);
    /* bench: the base and the adapters alternate, and the cost is reported */
    rc = tu_hearth(&o, &e, "bench", "-m", base, "-p", "8", "-n", "4", "-r", "1", "-t", "2",
                   "--no-limits", "--lora", sb, NULL);
    cr_assert_eq(rc, 0, "%s", e);
    cr_assert(strstr(o, "| tg4 |") && strstr(o, "| tg4+lora |") && strstr(o, "| pp8+lora |"),
              "%s", o);
    cr_assert(strstr(o, "lora cost"), "%s", o);
    free(o);
    free(e);
    const char *missing = lu_tmp("missing.gguf");
    rc = tu_hearth(&o, &e, "generate", "-m", base, "-p", "hello", "--lora", missing, NULL);
    cr_assert_eq(rc, 1);
    /* after the model's load line: one error line naming the adapter */
    const char *last = strstr(e, "hearth: error: ");
    cr_assert(last, "%s", e);
    tu_assert_one_line_error(last, "missing.gguf");
    free(o);
    free(e);
    lu_rmdtemp();
}
