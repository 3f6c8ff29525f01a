/*
 * test_gguf.c — the GGUF reader and writer: real files (the shipped
 * stories260K model, and every refdata model and vocab file when present),
 * a writer round trip, and malformed files built with the writer or by
 * patching bytes, each of which must fail with the right code and a message
 * that names the field.
 */
#include "err.h"
#include "gguf.h"
#include "quant.h"
#include "testutil.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BUDGET ((size_t)64 << 20)

static const char *stories_path(void)
{
    const char *p = tu_data("../../models/stories260K.gguf");
    if (tu_exists(p))
        return p;
    p = tu_find("models/stories260K.gguf");
    cr_assert(p, "stories260K.gguf not found");
    return p;
}

/* Structural checks every valid file passes, whatever its content. */
static void check_file(const struct gguf_file *f, const char *path)
{
    cr_assert(f->version == 2 || f->version == 3, "%s: version %u", path, f->version);
    cr_assert(f->alignment && !(f->alignment & (f->alignment - 1)));
    cr_assert(f->data_offset <= f->size, "%s", path);
    if (f->n_tensors)
        cr_assert_eq(f->data_offset % f->alignment, 0);
    for (uint64_t i = 0; i < f->n_kv; i++) {
        const struct gguf_kv *kv = &f->kv[i];
        cr_assert(kv->key.len > 0);
        char key[256];
        snprintf(key, sizeof key, "%.*s", (int)kv->key.len, kv->key.ptr);
        cr_assert_eq(gguf_find_kv(f, key), kv, "%s: lookup of '%s'", path, key);
        cr_assert(kv->offset < f->size);
        if (kv->val.type == GGUF_ARRAY && kv->val.arr.type == GGUF_STRING)
            for (uint64_t j = 0; j < kv->val.arr.n; j++) {
                const struct gguf_str *s = &kv->val.arr.strs[j];
                cr_assert((const uint8_t *)s->ptr >= f->base &&
                          (const uint8_t *)s->ptr + s->len <= f->base + f->size);
            }
    }
    uint64_t expect = 0;
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const struct gguf_tensor *t = &f->tensors[i];
        cr_assert_eq(gguf_find_tensor(f, t->name), t, "%s: lookup of '%s'", path, t->name);
        cr_assert(hr_type_info(t->type), "%s: %s type %u", path, t->name, t->type);
        cr_assert_eq(t->offset, expect);
        uint64_t nb = hr_row_size(t->type, t->ne[0]) * (uint64_t)(t->ne[1] * t->ne[2] * t->ne[3]);
        cr_assert_eq(t->nbytes, nb, "%s: %s nbytes", path, t->name);
        cr_assert_eq((const uint8_t *)t->data, f->base + f->data_offset + t->offset);
        cr_assert(f->data_offset + t->offset + t->nbytes <= f->size);
        expect += (t->nbytes + f->alignment - 1) / f->alignment * f->alignment;
    }
    cr_assert_null(gguf_find_kv(f, "no.such.key"));
    cr_assert_null(gguf_find_tensor(f, "no.such.tensor"));
}

static void check_path(const char *path)
{
    struct gguf_file *f = NULL;
    struct hr_err err;
    hr_err_clear(&err);
    int rc = gguf_open(path, GGUF_DEFAULT_BUDGET, &f, &err);
    cr_assert_eq(rc, 0, "%s: %d %s", path, rc, err.msg);
    check_file(f, path);

    /* gguf_parse of the same bytes gives the same result. */
    size_t len;
    void *buf = tu_read_file(path, &len);
    cr_assert(buf);
    struct gguf_file *g = NULL;
    rc = gguf_parse(buf, len, GGUF_DEFAULT_BUDGET, &g, &err);
    cr_assert_eq(rc, 0, "%s: %s", path, err.msg);
    cr_assert_eq(g->n_kv, f->n_kv);
    cr_assert_eq(g->n_tensors, f->n_tensors);
    cr_assert_eq(g->data_offset, f->data_offset);
    gguf_free(g);
    free(buf);
    gguf_free(f);
}

Test(gguf, stories260K_facts)
{
    const char *path = stories_path();
    struct gguf_file *f = NULL;
    struct hr_err err;
    hr_err_clear(&err);
    cr_assert_eq(gguf_open(path, GGUF_DEFAULT_BUDGET, &f, &err), 0, "%s", err.msg);
    check_file(f, path);

    struct gguf_str arch;
    cr_assert_eq(gguf_get_str(f, "general.architecture", &arch, &err), 0, "%s", err.msg);
    cr_assert(gguf_str_eq(arch, "llama"));
    uint32_t n_layer = 0;
    cr_assert_eq(gguf_get_u32(f, "llama.block_count", &n_layer, &err), 0, "%s", err.msg);
    cr_assert_eq(n_layer, 5);
    int64_t n_embd = 0;
    cr_assert_eq(gguf_get_i64(f, "llama.embedding_length", &n_embd, &err), 0);
    cr_assert_eq(n_embd, 64);

    const struct gguf_value *toks = NULL;
    cr_assert_eq(gguf_get_arr(f, "tokenizer.ggml.tokens", GGUF_STRING, &toks, &err), 0, "%s",
                 err.msg);
    cr_assert_eq(toks->arr.n, 512);
    const struct gguf_value *scores = NULL;
    cr_assert_eq(gguf_get_arr(f, "tokenizer.ggml.scores", GGUF_FLOAT32, &scores, &err), 0);
    cr_assert_eq(scores->arr.n, 512);
    cr_assert(isfinite(gguf_arr_float(scores, 511)));

    const struct gguf_tensor *t = gguf_find_tensor(f, "token_embd.weight");
    cr_assert(t);
    cr_assert_eq(t->type, HR_TYPE_F32);
    cr_assert_eq(t->ne[0], 64);
    cr_assert_eq(t->ne[1], 512);
    cr_assert_eq(t->ne[2], 1);
    cr_assert_eq(t->nbytes, 64 * 512 * 4);
    cr_assert(gguf_find_tensor(f, "blk.4.attn_q.weight"));
    cr_assert_null(gguf_find_tensor(f, "blk.5.attn_q.weight"));

    /* Typed getters: wrong type and absence. */
    uint32_t u;
    float x;
    bool b;
    cr_assert_eq(gguf_get_u32(f, "no.such.key", &u, &err), -ENOENT);
    cr_assert_eq(gguf_get_u32(f, "general.architecture", &u, &err), -EINVAL);
    cr_assert(strstr(err.msg, "general.architecture") && strstr(err.msg, "STRING"), "%s",
              err.msg);
    cr_assert_eq(gguf_get_f32(f, "llama.block_count", &x, &err), -EINVAL);
    cr_assert_eq(gguf_get_bool(f, "llama.block_count", &b, &err), -EINVAL);
    cr_assert_eq(gguf_get_arr(f, "tokenizer.ggml.tokens", GGUF_INT32, &toks, &err), -EINVAL);
    cr_assert(strstr(err.msg, "tokenizer.ggml.tokens"), "%s", err.msg);
    cr_assert_eq(gguf_get_str(f, "llama.block_count", &arch, &err), -EINVAL);
    gguf_free(f);
}

static int sweep_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l < 5 || strcmp(e->d_name + l - 5, ".gguf") != 0)
            continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        check_path(path);
        n++;
    }
    closedir(d);
    return n;
}

Test(gguf, refdata_sweep)
{
    int n = sweep_dir(tu_data("models")) + sweep_dir(tu_data("gguf"));
    const char *models = tu_ref("models");
    if (models) {
        int m = sweep_dir(models), v = sweep_dir(tu_ref("vocab"));
        cr_assert_gt(m, 10, "refdata/models holds only %d files", m);
        cr_assert_gt(v, 2, "refdata/vocab holds only %d files", v);
        n += m + v;
    }
    check_path(stories_path());
    cr_log_info("parsed %d files", n + 1);
}

/* ---- writer round trip ------------------------------------------------------ */

static char tmpdir[256];

static const char *tmp_path(const char *name)
{
    static char path[512];
    if (!tmpdir[0]) {
        strcpy(tmpdir, "/tmp/hearth-gguf-XXXXXX");
        cr_assert(mkdtemp(tmpdir));
    }
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    return path;
}

static void rm_tmp(void)
{
    if (!tmpdir[0])
        return;
    DIR *d = opendir(tmpdir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char p[600];
        snprintf(p, sizeof p, "%s/%s", tmpdir, e->d_name);
        unlink(p);
    }
    if (d)
        closedir(d);
    rmdir(tmpdir);
    tmpdir[0] = '\0';
}

/* Deterministic pseudo-random bytes. */
static void fill(void *p, size_t n, uint32_t seed)
{
    uint8_t *c = p;
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        c[i] = (uint8_t)(seed >> 24);
    }
}

struct rt_tensor {
    const char *name;
    uint32_t type, n_dims;
    int64_t ne[4];
};

static const struct rt_tensor rt_tensors[] = {
    {"token_embd.weight", HR_TYPE_F32, 2, {8, 5, 1, 1}},
    {"blk.0.attn_q.weight", HR_TYPE_Q4_0, 2, {64, 3, 1, 1}},
    {"blk.0.ffn_up.weight", HR_TYPE_Q8_0, 3, {32, 2, 2, 1}},
    {"blk.0.ffn_down.weight", HR_TYPE_Q4_K, 2, {256, 2, 1, 1}},
    {"blk.0.attn_norm.weight", HR_TYPE_F16, 1, {7, 1, 1, 1}},
    {"four.dims", HR_TYPE_BF16, 4, {2, 3, 2, 2}},
    {"empty", HR_TYPE_Q5_1, 2, {32, 0, 1, 1}},
    {"abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij123", HR_TYPE_F32, 0,
     {1, 1, 1, 1}},
};
#define N_RT (sizeof rt_tensors / sizeof rt_tensors[0])

static size_t rt_nbytes(const struct rt_tensor *t)
{
    return hr_row_size(t->type, t->ne[0]) * (size_t)(t->ne[1] * t->ne[2] * t->ne[3]);
}

/* Builds the round-trip writer; tensor data buffers are returned in data[]. */
static struct gguf_writer *rt_writer(uint32_t alignment, void *data[N_RT])
{
    struct gguf_writer *w = gguf_writer_new();
    cr_assert(w);
    if (alignment)
        cr_assert_eq(gguf_writer_add_u32(w, "general.alignment", alignment), 0);
    cr_assert_eq(gguf_writer_add_str(w, "general.architecture", "llama"), 0);
    cr_assert_eq(gguf_writer_add_u32(w, "t.u32", 4000000000u), 0);
    cr_assert_eq(gguf_writer_add_i32(w, "t.i32", -123456), 0);
    cr_assert_eq(gguf_writer_add_f32(w, "t.f32", 0.15625f), 0);
    cr_assert_eq(gguf_writer_add_bool(w, "t.bool", true), 0);
    cr_assert_eq(gguf_writer_add_str(w, "t.empty_str", ""), 0);
    /* every scalar type through add_value */
    struct gguf_value v[] = {
        {.type = GGUF_UINT8, .u = 200},       {.type = GGUF_INT8, .i = -100},
        {.type = GGUF_UINT16, .u = 60000},    {.type = GGUF_INT16, .i = -30000},
        {.type = GGUF_UINT32, .u = 7},        {.type = GGUF_INT32, .i = -7},
        {.type = GGUF_FLOAT32, .f = -2.5},    {.type = GGUF_BOOL, .u = 0},
        {.type = GGUF_UINT64, .u = UINT64_MAX - 1}, {.type = GGUF_INT64, .i = INT64_MIN + 3},
        {.type = GGUF_FLOAT64, .f = 1e300},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        char key[32];
        snprintf(key, sizeof key, "s.%u", v[i].type);
        cr_assert_eq(gguf_writer_add_value(w, key, &v[i]), 0);
    }
    /* arrays of every scalar type: 5 elements of pseudo-random bytes */
    static const uint8_t sizes[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    for (uint32_t t = 0; t < GGUF_VTYPE_COUNT; t++) {
        if (!sizes[t])
            continue;
        uint8_t raw[40];
        fill(raw, sizeof raw, t);
        if (t == GGUF_BOOL)
            for (int i = 0; i < 5; i++)
                raw[i] &= 1;
        if (t == GGUF_FLOAT32 || t == GGUF_FLOAT64) /* keep them finite */
            for (int i = 0; i < 5; i++)
                raw[i * sizes[t] + sizes[t] - 1] = 0x3f;
        char key[32];
        snprintf(key, sizeof key, "a.%u", t);
        cr_assert_eq(gguf_writer_add_arr(w, key, t, raw, 5), 0);
    }
    cr_assert_eq(gguf_writer_add_arr(w, "a.empty", GGUF_INT32, NULL, 0), 0);
    const char *strs[] = {"<unk>", "", "héllo", "a\nb"};
    cr_assert_eq(gguf_writer_add_str_arr(w, "a.strs", strs, 4), 0);
    /* a nested array: [[1, 2, 3], [], [["x", "yz"]]] */
    int32_t ints[] = {1, 2, 3};
    struct gguf_str xs[] = {{"x", 1}, {"yz", 2}};
    struct gguf_value deep = {.type = GGUF_ARRAY};
    deep.arr.type = GGUF_STRING;
    deep.arr.n = 2;
    deep.arr.strs = xs;
    struct gguf_value inner[3] = {{.type = GGUF_ARRAY}, {.type = GGUF_ARRAY}, {.type = GGUF_ARRAY}};
    inner[0].arr.type = GGUF_INT32;
    inner[0].arr.n = 3;
    inner[0].arr.data = ints;
    inner[1].arr.type = GGUF_FLOAT32;
    inner[2].arr.type = GGUF_ARRAY;
    inner[2].arr.n = 1;
    inner[2].arr.vals = &deep;
    struct gguf_value outer = {.type = GGUF_ARRAY};
    outer.arr.type = GGUF_ARRAY;
    outer.arr.n = 3;
    outer.arr.vals = inner;
    cr_assert_eq(gguf_writer_add_value(w, "a.nested", &outer), 0);

    for (size_t i = 0; i < N_RT; i++) {
        const struct rt_tensor *t = &rt_tensors[i];
        size_t nb = rt_nbytes(t);
        data[i] = malloc(nb ? nb : 1);
        fill(data[i], nb, (uint32_t)i + 100);
        cr_assert_eq(gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, data[i]), 0,
                     "%s", t->name);
    }
    return w;
}

static void rt_check(const struct gguf_file *f, uint32_t alignment, void *data[N_RT])
{
    struct hr_err err;
    hr_err_clear(&err);
    check_file(f, "round trip");
    cr_assert_eq(f->version, 3);
    cr_assert_eq(f->alignment, alignment ? alignment : 32);
    cr_assert_eq(f->n_tensors, N_RT);
    /* insertion order */
    cr_assert(gguf_str_eq(f->kv[alignment ? 1 : 0].key, "general.architecture"));
    uint32_t u;
    int64_t i64;
    float x;
    bool b;
    struct gguf_str s;
    cr_assert_eq(gguf_get_u32(f, "t.u32", &u, &err), 0);
    cr_assert_eq(u, 4000000000u);
    cr_assert_eq(gguf_get_i64(f, "t.i32", &i64, &err), 0);
    cr_assert_eq(i64, -123456);
    cr_assert_eq(gguf_get_u32(f, "t.i32", &u, &err), -EINVAL);
    cr_assert(strstr(err.msg, "t.i32") && strstr(err.msg, "fit"), "%s", err.msg);
    cr_assert_eq(gguf_get_f32(f, "t.f32", &x, &err), 0);
    cr_assert_eq(x, 0.15625f);
    cr_assert_eq(gguf_get_bool(f, "t.bool", &b, &err), 0);
    cr_assert(b);
    cr_assert_eq(gguf_get_str(f, "t.empty_str", &s, &err), 0);
    cr_assert_eq(s.len, 0);

    const struct gguf_kv *kv;
    cr_assert((kv = gguf_find_kv(f, "s.0")) && kv->val.type == GGUF_UINT8 && kv->val.u == 200);
    cr_assert((kv = gguf_find_kv(f, "s.1")) && kv->val.type == GGUF_INT8 && kv->val.i == -100);
    cr_assert((kv = gguf_find_kv(f, "s.2")) && kv->val.u == 60000);
    cr_assert((kv = gguf_find_kv(f, "s.3")) && kv->val.i == -30000);
    cr_assert((kv = gguf_find_kv(f, "s.4")) && kv->val.u == 7);
    cr_assert((kv = gguf_find_kv(f, "s.5")) && kv->val.i == -7);
    cr_assert((kv = gguf_find_kv(f, "s.6")) && kv->val.f == -2.5);
    cr_assert((kv = gguf_find_kv(f, "s.7")) && kv->val.type == GGUF_BOOL && kv->val.u == 0);
    cr_assert((kv = gguf_find_kv(f, "s.10")) && kv->val.u == UINT64_MAX - 1);
    cr_assert((kv = gguf_find_kv(f, "s.11")) && kv->val.i == INT64_MIN + 3);
    cr_assert((kv = gguf_find_kv(f, "s.12")) && kv->val.f == 1e300);
    cr_assert_eq(gguf_get_u32(f, "s.2", &u, &err), 0);
    cr_assert_eq(u, 60000);
    cr_assert_eq(gguf_get_i64(f, "s.10", &i64, &err), -EINVAL);
    cr_assert_eq(gguf_get_i64(f, "s.11", &i64, &err), 0);
    cr_assert_eq(i64, INT64_MIN + 3);
    cr_assert_eq(gguf_get_f32(f, "s.12", &x, &err), 0);
    cr_assert(isinf(x));

    /* scalar arrays: decode the raw bytes independently and compare */
    static const uint8_t sizes[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    for (uint32_t t = 0; t < GGUF_VTYPE_COUNT; t++) {
        if (!sizes[t])
            continue;
        char key[32];
        snprintf(key, sizeof key, "a.%u", t);
        const struct gguf_value *a;
        cr_assert_eq(gguf_get_arr(f, key, t, &a, &err), 0, "%s", err.msg);
        cr_assert_eq(a->arr.n, 5);
        const uint8_t *p = a->arr.data;
        for (int i = 0; i < 5; i++, p += sizes[t]) {
            uint64_t raw = 0;
            for (int k = sizes[t] - 1; k >= 0; k--)
                raw = raw << 8 | p[k];
            int64_t want_i;
            double want_f;
            switch (t) {
            case GGUF_INT8: want_i = (int8_t)raw; break;
            case GGUF_INT16: want_i = (int16_t)raw; break;
            case GGUF_INT32: want_i = (int32_t)raw; break;
            default: want_i = (int64_t)raw; break;
            }
            want_f = t == GGUF_UINT64 ? (double)raw : (double)want_i;
            if (t == GGUF_FLOAT32) {
                float ff;
                uint32_t r32 = (uint32_t)raw;
                memcpy(&ff, &r32, 4);
                want_f = ff;
            } else if (t == GGUF_FLOAT64) {
                memcpy(&want_f, &raw, 8);
            }
            if (t != GGUF_FLOAT32 && t != GGUF_FLOAT64)
                cr_assert_eq(gguf_arr_int(a, (uint64_t)i), want_i, "type %u elem %d", t, i);
            cr_assert_eq(gguf_arr_float(a, (uint64_t)i), want_f, "type %u elem %d", t, i);
        }
    }
    const struct gguf_value *a;
    cr_assert_eq(gguf_get_arr(f, "a.empty", GGUF_INT32, &a, &err), 0);
    cr_assert_eq(a->arr.n, 0);
    cr_assert_eq(gguf_get_arr(f, "a.strs", GGUF_STRING, &a, &err), 0);
    cr_assert_eq(a->arr.n, 4);
    cr_assert(gguf_str_eq(a->arr.strs[0], "<unk>"));
    cr_assert(gguf_str_eq(a->arr.strs[1], ""));
    cr_assert(gguf_str_eq(a->arr.strs[2], "héllo"));
    cr_assert(gguf_str_eq(a->arr.strs[3], "a\nb"));
    cr_assert_eq(gguf_get_arr(f, "a.nested", GGUF_ARRAY, &a, &err), 0);
    cr_assert_eq(a->arr.n, 3);
    const struct gguf_value *in = a->arr.vals;
    cr_assert(in[0].type == GGUF_ARRAY && in[0].arr.type == GGUF_INT32 && in[0].arr.n == 3);
    cr_assert_eq(gguf_arr_int(&in[0], 2), 3);
    cr_assert(in[1].arr.type == GGUF_FLOAT32 && in[1].arr.n == 0);
    cr_assert(in[2].arr.type == GGUF_ARRAY && in[2].arr.n == 1);
    const struct gguf_value *d = &in[2].arr.vals[0];
    cr_assert(d->arr.type == GGUF_STRING && d->arr.n == 2);
    cr_assert(gguf_str_eq(d->arr.strs[1], "yz"));

    for (size_t i = 0; i < N_RT; i++) {
        const struct rt_tensor *rt = &rt_tensors[i];
        const struct gguf_tensor *t = gguf_find_tensor(f, rt->name);
        cr_assert(t, "%s", rt->name);
        cr_assert_eq(t, &f->tensors[i]);
        cr_assert_eq(t->type, rt->type);
        cr_assert_eq(t->n_dims, rt->n_dims);
        for (int k = 0; k < 4; k++)
            cr_assert_eq(t->ne[k], rt->ne[k]);
        cr_assert_eq(t->nbytes, rt_nbytes(rt));
        cr_assert_eq(((const uint8_t *)t->data - f->base) % f->alignment, 0);
        cr_assert_eq(memcmp(t->data, data[i], t->nbytes), 0, "%s data", rt->name);
    }
}

static void rt_run(uint32_t alignment)
{
    void *data[N_RT];
    struct gguf_writer *w = rt_writer(alignment, data);
    struct hr_err err;
    hr_err_clear(&err);
    const char *path = tmp_path("rt.gguf");
    cr_assert_eq(gguf_writer_write(w, path, &err), 0, "%s", err.msg);
    void *mem;
    size_t size;
    cr_assert_eq(gguf_writer_write_mem(w, &mem, &size), 0);

    struct gguf_file *f = NULL;
    cr_assert_eq(gguf_open(path, GGUF_DEFAULT_BUDGET, &f, &err), 0, "%s", err.msg);
    cr_assert_eq(f->size, size);
    cr_assert_eq(memcmp(f->base, mem, size), 0, "file and memory images differ");
    rt_check(f, alignment, data);

    /* copy_kv reproduces the pairs (minus skipped ones) */
    struct gguf_writer *w2 = gguf_writer_new();
    cr_assert_eq(gguf_writer_copy_kv(w2, f, NULL, NULL), 0);
    for (size_t i = 0; i < N_RT; i++) {
        const struct gguf_tensor *t = &f->tensors[i];
        cr_assert_eq(gguf_writer_add_tensor(w2, t->name, t->type, t->n_dims, t->ne, t->data), 0);
    }
    void *mem2;
    size_t size2;
    cr_assert_eq(gguf_writer_write_mem(w2, &mem2, &size2), 0);
    cr_assert_eq(size2, size);
    cr_assert_eq(memcmp(mem2, mem, size), 0, "copy differs");
    free(mem2);
    gguf_writer_free(w2);

    gguf_free(f);
    free(mem);
    gguf_writer_free(w);
    for (size_t i = 0; i < N_RT; i++)
        free(data[i]);
}

Test(gguf, writer_round_trip, .fini = rm_tmp)
{
    rt_run(0);
    rt_run(64);
    rt_run(1);
    rt_run(4096);
}

static bool skip_t(const char *key, void *ud)
{
    ++*(int *)ud;
    return strncmp(key, "t.", 2) == 0;
}

Test(gguf, writer_copy_skip_and_replace, .fini = rm_tmp)
{
    void *data[N_RT];
    struct gguf_writer *w = rt_writer(0, data);
    void *mem;
    size_t size;
    cr_assert_eq(gguf_writer_write_mem(w, &mem, &size), 0);
    struct gguf_file *f = NULL;
    struct hr_err err;
    cr_assert_eq(gguf_parse(mem, size, BUDGET, &f, &err), 0, "%s", err.msg);

    struct gguf_writer *w2 = gguf_writer_new();
    int calls = 0;
    cr_assert_eq(gguf_writer_copy_kv(w2, f, skip_t, &calls), 0);
    cr_assert_eq((uint64_t)calls, f->n_kv);
    const char *path = tmp_path("copy.gguf");
    /* an existing file is replaced atomically, no temp file left behind */
    FILE *old = fopen(path, "w");
    cr_assert(old);
    fputs("old", old);
    fclose(old);
    cr_assert_eq(gguf_writer_write(w2, path, &err), 0, "%s", err.msg);
    struct gguf_file *g = NULL;
    cr_assert_eq(gguf_open(path, BUDGET, &g, &err), 0, "%s", err.msg);
    cr_assert_eq(g->n_kv, f->n_kv - 5);
    cr_assert_eq(g->n_tensors, 0);
    cr_assert_eq(g->data_offset, g->size, "no padding without tensors");
    cr_assert_null(gguf_find_kv(g, "t.u32"));
    cr_assert(gguf_find_kv(g, "a.nested"));
    int n = 0;
    DIR *d = opendir(tmpdir);
    while (readdir(d))
        n++;
    closedir(d);
    cr_assert_eq(n, 3, "stray files next to the output");

    /* a write into a missing directory fails and says where */
    cr_assert_lt(gguf_writer_write(w2, "/nonexistent-dir/x.gguf", &err), 0);
    cr_assert(strstr(err.msg, "/nonexistent-dir/x.gguf"), "%s", err.msg);

    /* invalid tensors are refused */
    int64_t ne[2] = {33, 2}, neg[2] = {32, -1};
    cr_assert_eq(gguf_writer_add_tensor(w2, "x", HR_TYPE_Q8_0, 2, ne, data[0]), -EINVAL);
    cr_assert_eq(gguf_writer_add_tensor(w2, "x", HR_TYPE_Q8_0, 2, neg, data[0]), -EINVAL);
    cr_assert_eq(gguf_writer_add_tensor(w2, "x", 4, 2, ne, data[0]), -EINVAL);
    cr_assert_eq(gguf_writer_add_tensor(w2, "x", HR_TYPE_F32, 5, ne, data[0]), -EINVAL);
    cr_assert_eq(gguf_writer_add_arr(w2, "k", GGUF_STRING, data[0], 1), -EINVAL);
    cr_assert_eq(gguf_writer_add_u32(w2, "", 1), -EINVAL);

    gguf_free(g);
    gguf_writer_free(w2);
    gguf_free(f);
    free(mem);
    gguf_writer_free(w);
    for (size_t i = 0; i < N_RT; i++)
        free(data[i]);
}

Test(gguf, open_errors)
{
    struct gguf_file *f = NULL;
    struct hr_err err;
    cr_assert_eq(gguf_open("/nonexistent/file.gguf", BUDGET, &f, &err), -ENOENT);
    cr_assert(strstr(err.msg, "/nonexistent/file.gguf"), "%s", err.msg);
    cr_assert_eq(gguf_open("/", BUDGET, &f, &err), -EINVAL);
    cr_assert_eq(gguf_open("/dev/null", BUDGET, &f, &err), -EINVAL);
    cr_assert_null(f);
    gguf_free(NULL);
    gguf_writer_free(NULL);
}
