/* lorautil.c — see lorautil.h. */
#include "lorautil.h"

#include "gguf.h"
#include "quant.h"
#include "testutil.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct hr_model *lu_load_model(const char *name)
{
    char rel[128];
    snprintf(rel, sizeof rel, "models/%s.gguf", name);
    const char *path = tu_find(rel);
    if (!path) return NULL;
    struct hr_model *m;
    struct hr_err err;
    cr_assert_eq(hr_model_load(path, NULL, &m, &err), 0, "%s: %s", name, err.msg);
    return m;
}

/* A context of N_CTX tokens (or n_batch when larger: the batch is capped
 * by the default sequence's length). */
struct hr_ctx *lu_new_ctx(struct hr_model *m, int32_t n_batch)
{
    struct hr_ctx_params cp = {
        .n_ctx = n_batch > N_CTX ? n_batch : N_CTX, .n_batch = n_batch, .n_threads = N_THREADS};
    struct hr_ctx *c;
    struct hr_err err;
    cr_assert_eq(hr_ctx_new(m, &cp, &c, &err), 0, "%s", err.msg);
    return c;
}

/* lora-llama-a or -b: a path of its own (tu_find's buffers are reused). */
const char *lu_adapter(const char *name)
{
    static char paths[2][4096];
    char rel[128];
    snprintf(rel, sizeof rel, "models/lora-llama-%s.gguf", name);
    const char *p = tu_find(rel);
    cr_assert(p, "%s missing from tests/data", rel);
    char *buf = paths[name[0] == 'b'];
    snprintf(buf, sizeof paths[0], "%s", p);
    return buf;
}

/* A file under tests/data or refdata copied to `buf` (tu_find's buffers are
 * reused); NULL when absent. */
const char *lu_find_copy(const char *rel, char *buf, size_t cap)
{
    const char *p = tu_find(rel);
    if (!p) return NULL;
    snprintf(buf, cap, "%s", p);
    return buf;
}

struct hr_lora *lu_load_lora(struct hr_model *m, const char *path)
{
    struct hr_lora *l;
    struct hr_err err;
    int rc = hr_lora_load(m, path, &l, &err);
    cr_assert_eq(rc, 0, "%s: %s", path, err.msg);
    return l;
}

size_t lu_read_ids(const char *rel, int32_t *out, size_t cap)
{
    const char *path = tu_find(rel);
    cr_assert(path, "reference file %s not found", rel);
    char *txt = tu_read_file(path, NULL);
    cr_assert(txt);
    size_t n = tu_parse_ids(txt, out, cap);
    free(txt);
    return n;
}

int32_t lu_argmax(const float *v, int32_t n)
{
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++)
        if (v[i] > v[best]) best = i;
    return best;
}

size_t lu_tokens(int32_t *toks)
{
    size_t n = lu_read_ids("ref/tokens-llama.txt", toks, MAXTOK);
    cr_assert_eq(n, 40);
    return n;
}

/* Logits of all n tokens of a fresh evaluation, owned [n][n_vocab]. */
float *lu_eval_all(struct hr_ctx *c, int32_t nv, const int32_t *toks, size_t n)
{
    struct hr_err err;
    hr_ctx_truncate(c, 0);
    cr_assert_eq(hr_ctx_eval(c, toks, (int32_t)n, true, &err), 0, "%s", err.msg);
    float *out = malloc(n * (size_t)nv * sizeof *out);
    for (size_t t = 0; t < n; t++)
        memcpy(out + t * (size_t)nv, hr_ctx_logits(c, (int32_t)t), (size_t)nv * sizeof *out);
    return out;
}

/* max |a - b| over n floats */
double lu_max_diff(const float *a, const float *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= m)) m = d; /* NaN too */
    }
    return m;
}

double lu_range_of(const float *v, size_t n)
{
    float lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        lo = fminf(lo, v[i]);
        hi = fmaxf(hi, v[i]);
    }
    return (double)hi - (double)lo;
}

/* ---- adapters made here ------------------------------------------------------------ */

static char lu_dir[64];

void lu_mkdtemp(void)
{
    snprintf(lu_dir, sizeof lu_dir, "/tmp/hearth-lora-XXXXXX");
    cr_assert(mkdtemp(lu_dir));
}

void lu_rmdtemp(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", lu_dir);
    cr_assert_eq(system(cmd), 0);
}

const char *lu_tmp(const char *file)
{
    static char buf[4][256];
    static int k;
    char *p = buf[k++ % 4];
    snprintf(p, sizeof buf[0], "%s/%s", lu_dir, file);
    return p;
}

/* Writes an adapter file: architecture `arch`, general.type `gtype`, alpha
 * 8, the tensors of `ts` (values quantized to their type), optionally an
 * activated-LoRA key. Returns its path (lu_tmp). */
const char *lu_make_adapter(const char *file, const char *arch, const char *gtype,
                            const struct lu_tensor *ts, int n, bool alora)
{
    struct gguf_writer *w = gguf_writer_new();
    cr_assert(w);
    cr_assert_eq(gguf_writer_add_str(w, "general.architecture", arch), 0);
    cr_assert_eq(gguf_writer_add_str(w, "general.type", gtype), 0);
    cr_assert_eq(gguf_writer_add_str(w, "adapter.type", "lora"), 0);
    cr_assert_eq(gguf_writer_add_f32(w, "adapter.lora.alpha", 8.0f), 0);
    if (alora) {
        uint32_t inv[2] = {5, 6};
        cr_assert_eq(gguf_writer_add_arr(w, "adapter.alora.invocation_tokens", GGUF_UINT32, inv, 2),
                     0);
    }
    void *bufs[32];
    cr_assert_leq(n, 32);
    for (int i = 0; i < n; i++) {
        int64_t cnt = ts[i].ne0 * ts[i].ne1;
        float *f = malloc((size_t)cnt * sizeof *f);
        for (int64_t e = 0; e < cnt; e++)
            f[e] = ts[i].values ? ts[i].values[e] : 0.05f * sinf(0.37f * (float)e + (float)i);
        size_t bytes = hr_row_size(ts[i].type, ts[i].ne0) * (size_t)ts[i].ne1;
        bufs[i] = malloc(bytes);
        if (ts[i].type == HR_TYPE_F32)
            memcpy(bufs[i], f, bytes);
        else
            cr_assert_geq(quant_quantize(ts[i].type, f, bufs[i], ts[i].ne1, ts[i].ne0), 0);
        free(f);
        int64_t ne[2] = {ts[i].ne0, ts[i].ne1};
        cr_assert_eq(gguf_writer_add_tensor(w, ts[i].name, ts[i].type, 2, ne, bufs[i]), 0, "%s",
                     ts[i].name);
    }
    const char *path = lu_tmp(file);
    struct hr_err err;
    cr_assert_eq(gguf_writer_write(w, path, &err), 0, "%s", err.msg);
    for (int i = 0; i < n; i++)
        free(bufs[i]);
    gguf_writer_free(w);
    return path;
}

/* hr_lora_load must fail with `code` and a message containing each of the
 * NULL-terminated strings. */
