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
    cr_assert_eq(gguf_get_f32(f, "s.12", &x, &err), -EINVAL);
    cr_assert(strstr(err.msg, "s.12") && strstr(err.msg, "f32"), "%s", err.msg);
    cr_assert_eq(gguf_get_f32(f, "s.6", &x, &err), 0);
    cr_assert_eq(x, -2.5f);

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

/* ---- malformed files --------------------------------------------------------- */

/* A small valid file and the offsets of its fields. */
struct small {
    uint8_t *buf;
    size_t len;
    uint64_t kv_off[8], kv_type[8], kv_val[8]; /* pair start, value type, value */
    uint64_t t_info[4], t_ndims[4], t_ne[4], t_type[4], t_offset[4];
};

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> 8 * i);
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> 8 * i);
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static float small_f32[8];
static uint8_t small_q8[2 * 34];

/* kv 0 general.architecture (STRING), kv 1 k.u32, kv 2 k.strs (3 strings),
 * kv 3 k.f32s (4 floats); tensors 0 "a" F32 [4, 2], 1 "b" Q8_0 [32, 2],
 * 2 "blk.0.attn_q.weight" F32 [8]. */
static void small_build(struct small *s, struct gguf_writer *extra)
{
    struct gguf_writer *w = extra ? extra : gguf_writer_new();
    const char *strs[] = {"one", "two", "three"};
    float f4[4] = {1, 2, 3, 4};
    cr_assert_eq(gguf_writer_add_str(w, "general.architecture", "llama"), 0);
    cr_assert_eq(gguf_writer_add_u32(w, "k.u32", 5), 0);
    cr_assert_eq(gguf_writer_add_str_arr(w, "k.strs", strs, 3), 0);
    cr_assert_eq(gguf_writer_add_arr(w, "k.f32s", GGUF_FLOAT32, f4, 4), 0);
    fill(small_f32, sizeof small_f32, 1);
    fill(small_q8, sizeof small_q8, 2);
    int64_t ne_a[2] = {4, 2}, ne_b[2] = {32, 2}, ne_c[1] = {8};
    cr_assert_eq(gguf_writer_add_tensor(w, "a", HR_TYPE_F32, 2, ne_a, small_f32), 0);
    cr_assert_eq(gguf_writer_add_tensor(w, "b", HR_TYPE_Q8_0, 2, ne_b, small_q8), 0);
    cr_assert_eq(gguf_writer_add_tensor(w, "blk.0.attn_q.weight", HR_TYPE_F32, 1, ne_c,
                                        small_f32),
                 0);
    void *mem;
    cr_assert_eq(gguf_writer_write_mem(w, &mem, &s->len), 0);
    gguf_writer_free(w);
    s->buf = mem;

    /* field offsets, when the file is valid (extra pairs may make it not) */
    struct gguf_file *f = NULL;
    struct hr_err err;
    memset(s->kv_off, 0, sizeof s->kv_off);
    if (gguf_parse(s->buf, s->len, BUDGET, &f, &err) < 0) {
        cr_assert(extra, "%s", err.msg);
        return;
    }
    cr_assert_leq(f->n_kv, 8);
    for (uint64_t i = 0; i < f->n_kv; i++) {
        s->kv_off[i] = f->kv[i].offset;
        s->kv_type[i] = s->kv_off[i] + 8 + f->kv[i].key.len;
        s->kv_val[i] = s->kv_type[i] + 4;
    }
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const struct gguf_tensor *t = &f->tensors[i];
        s->t_info[i] = t->info_offset;
        s->t_ndims[i] = t->info_offset + 8 + strlen(t->name);
        s->t_ne[i] = s->t_ndims[i] + 4;
        s->t_type[i] = s->t_ne[i] + 8 * t->n_dims;
        s->t_offset[i] = s->t_type[i] + 4;
    }
    gguf_free(f);
}

static void small_free(struct small *s)
{
    free(s->buf);
}

/* Parses a copy of exactly len bytes (so ASan sees any over-read) and
 * expects failure `code` with a message containing each needle and, when
 * offset >= 0, that error offset. */
static void expect_fail(const void *buf, size_t len, size_t budget, int code, int64_t offset,
                        const char *n1, const char *n2)
{
    uint8_t *copy = malloc(len ? len : 1);
    memcpy(copy, buf, len);
    struct gguf_file *f = (struct gguf_file *)0x1;
    struct hr_err err;
    hr_err_clear(&err);
    int rc = gguf_parse(copy, len, budget, &f, &err);
    cr_assert_eq(rc, code, "rc %d, expected %d: %s", rc, code, err.msg);
    cr_assert_eq(f, (struct gguf_file *)0x1, "*out written on failure");
    cr_assert(err.msg[0], "empty message");
    cr_log_info("%s", err.msg);
    if (n1)
        cr_assert(strstr(err.msg, n1), "message lacks '%s': %s", n1, err.msg);
    if (n2)
        cr_assert(strstr(err.msg, n2), "message lacks '%s': %s", n2, err.msg);
    if (offset >= 0)
        cr_assert_eq(err.offset, offset, "offset %lld, expected %lld (%s)",
                     (long long)err.offset, (long long)offset, err.msg);
    free(copy);
}

static void expect_ok(const void *buf, size_t len)
{
    struct gguf_file *f = NULL;
    struct hr_err err;
    cr_assert_eq(gguf_parse(buf, len, BUDGET, &f, &err), 0, "%s", err.msg);
    gguf_free(f);
}

Test(gguf, truncated_everywhere)
{
    struct small s;
    small_build(&s, NULL);
    expect_ok(s.buf, s.len);
    for (size_t n = 0; n < s.len; n++) {
        uint8_t *copy = malloc(n ? n : 1);
        memcpy(copy, s.buf, n);
        struct gguf_file *f = NULL;
        struct hr_err err;
        hr_err_clear(&err);
        int rc = gguf_parse(copy, n, BUDGET, &f, &err);
        cr_assert_eq(rc, -EINVAL, "truncated at %zu: rc %d", n, rc);
        cr_assert_null(f);
        cr_assert(err.msg[0]);
        cr_assert(err.offset >= 0 && (size_t)err.offset <= n, "at %zu: offset %lld: %s", n,
                  (long long)err.offset, err.msg);
        free(copy);
    }
    /* the last tensor's data cut short: names the tensor */
    expect_fail(s.buf, s.len - 1, BUDGET, -EINVAL, (int64_t)s.t_offset[2],
                "tensor 2 'blk.0.attn_q.weight'", "extends past end of file");
    /* inside the string array */
    expect_fail(s.buf, s.kv_val[2] + 12 + 8 + 2, BUDGET, -EINVAL, (int64_t)s.kv_val[2] + 4,
                "kv 2 'k.strs': array count 3", "cannot hold");
    expect_fail(s.buf, s.kv_val[2] + 12 + 22 + 8 + 2, BUDGET, -EINVAL,
                (int64_t)s.kv_val[2] + 12 + 22, "kv 2 'k.strs'", "5 bytes");
    small_free(&s);
}

Test(gguf, header_fields)
{
    struct small s;
    small_build(&s, NULL);
    uint8_t *b = s.buf;

    memcpy(b, "GGUG", 4);
    expect_fail(b, s.len, BUDGET, -EINVAL, 0, "magic", NULL);
    memcpy(b, "GGUF", 4);

    static const uint32_t bad_versions[] = {0, 1, 4, 0x03000000, 0xffffffff};
    for (size_t i = 0; i < 5; i++) {
        put32(b + 4, bad_versions[i]);
        expect_fail(b, s.len, BUDGET, -EINVAL, 4, "version", NULL);
    }
    put32(b + 4, 2);
    expect_ok(b, s.len); /* v2 reads as v3 */
    put32(b + 4, 3);

    put64(b + 16, (uint64_t)1 << 62);
    expect_fail(b, s.len, BUDGET, -EINVAL, 16, "n_kv", NULL);
    put64(b + 16, (uint64_t)-1);
    expect_fail(b, s.len, BUDGET, -EINVAL, 16, "n_kv", "negative");
    put64(b + 16, 200);
    expect_fail(b, s.len, BUDGET, -EINVAL, 16, "n_kv 200", "cannot hold");
    put64(b + 16, 5); /* one more pair than present: the tensor info is read as a pair */
    expect_fail(b, s.len, BUDGET, -EINVAL, -1, NULL, NULL);
    put64(b + 16, 4);

    put64(b + 8, (uint64_t)1 << 62);
    expect_fail(b, s.len, BUDGET, -EINVAL, 8, "n_tensors", NULL);
    put64(b + 8, (uint64_t)INT64_MIN);
    expect_fail(b, s.len, BUDGET, -EINVAL, 8, "n_tensors", "negative");
    put64(b + 8, 3);
    expect_ok(b, s.len);
    small_free(&s);
}

Test(gguf, kv_fields)
{
    struct small s;
    small_build(&s, NULL);
    uint8_t *b = s.buf;
    uint64_t save;

    /* key length 2^40 */
    save = get64(b + s.kv_off[1]);
    put64(b + s.kv_off[1], (uint64_t)1 << 40);
    expect_fail(b, s.len, BUDGET, -EINVAL, (int64_t)s.kv_off[1], "kv 1", "key length");
    put64(b + s.kv_off[1], 0);
    expect_fail(b, s.len, BUDGET, -EINVAL, (int64_t)s.kv_off[1], "kv 1", "empty key");
    put64(b + s.kv_off[1], save);

    /* string value length 2^40, and just past the end */
    save = get64(b + s.kv_val[0]);
    put64(b + s.kv_val[0], (uint64_t)1 << 40);
    expect_fail(b, s.len, BUDGET, -EINVAL, (int64_t)s.kv_val[0], "general.architecture",
                "2^30");
    put64(b + s.kv_val[0], s.len);
    expect_fail(b, s.len, BUDGET, -EINVAL, (int64_t)s.kv_val[0], "general.architecture",
                "past end of file");
    put64(b + s.kv_val[0], save);

    /* bad value types */
    static const uint32_t bad_types[] = {13, 100, 0xffffffff};
    for (size_t i = 0; i < 3; i++) {
        put32(b + s.kv_type[1], bad_types[i]);
        expect_fail(b, s.len, BUDGET, -EINVAL, (int64_t)s.kv_type[1], "kv 1 'k.u32'",
                    "value type");
    }
    put32(b + s.kv_type[1], GGUF_UINT32);

    /* array element type and count */
    put32(b + s.kv_val[3], 13);
    expect_fail(b, s.len, BUDGET, -EINVAL, (int64_t)s.kv_val[3], "k.f32s",
                "array element type");
    put32(b + s.kv_val[3], GGUF_FLOAT32);
    uint64_t cnt = s.kv_val[3] + 4;
    put64(b + cnt, (uint64_t)1 << 40);
    expect_fail(b, s.len, BUDGET, -EINVAL, (int64_t)cnt, "k.f32s", "array count");
    put64(b + cnt, (uint64_t)1 << 29); /* within the limit, beyond the file */
    expect_fail(b, s.len, BUDGET, -EINVAL, (int64_t)cnt, "k.f32s", "past end of file");
    put64(b + cnt, 4);
    cnt = s.kv_val[2] + 4; /* the string array */
    put64(b + cnt, (uint64_t)1 << 40);
    expect_fail(b, s.len, BUDGET, -EINVAL, (int64_t)cnt, "k.strs", "array count");
    put64(b + cnt, (uint64_t)1 << 30);
    expect_fail(b, s.len, BUDGET, -EINVAL, (int64_t)cnt, "k.strs", "cannot hold");
    put64(b + cnt, 3);
    /* a string inside the array with length 2^40 */
    put64(b + cnt + 8, (uint64_t)1 << 40);
    expect_fail(b, s.len, BUDGET, -EINVAL, (int64_t)cnt + 8, "k.strs", "2^30");
    put64(b + cnt + 8, 3);
    expect_ok(b, s.len);
    small_free(&s);
}

Test(gguf, duplicate_and_empty_keys)
{
    struct gguf_writer *w = gguf_writer_new();
    cr_assert_eq(gguf_writer_add_u32(w, "k.u32", 1), 0); /* also defined by small_build */
    struct small s;
    small_build(&s, w);
    /* pairs: k.u32 (21 bytes), general.architecture (45 bytes), k.u32 */
    expect_fail(s.buf, s.len, BUDGET, -EINVAL, 24 + 21 + 45, "kv 2 'k.u32'",
                "duplicate key at offset 90 (first defined by kv 0 at offset 24)");
    small_free(&s);
}

Test(gguf, alignment_key)
{
    static const struct {
        uint32_t type;
        uint64_t v;
        const char *needle;
    } cases[] = {
        {GGUF_UINT32, 48, "power of two"}, {GGUF_UINT32, 0, "power of two"},
        {GGUF_UINT64, 32, "UINT32"},       {GGUF_INT32, 32, "UINT32"},
        {GGUF_UINT16, 32, "UINT32"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct gguf_writer *w = gguf_writer_new();
        struct gguf_value v = {.type = cases[i].type, .u = cases[i].v};
        cr_assert_eq(gguf_writer_add_value(w, "general.alignment", &v), 0);
        struct small s;
        small_build(&s, w);
        expect_fail(s.buf, s.len, BUDGET, -EINVAL, 24, "general.alignment", cases[i].needle);
        small_free(&s);
    }
    /* a string array as the alignment */
    struct gguf_writer *w = gguf_writer_new();
    const char *x[] = {"32"};
    cr_assert_eq(gguf_writer_add_str_arr(w, "general.alignment", x, 1), 0);
    struct small s;
    small_build(&s, w);
    expect_fail(s.buf, s.len, BUDGET, -EINVAL, 24, "general.alignment", "ARRAY");
    small_free(&s);
    /* a valid one is honoured */
    w = gguf_writer_new();
    cr_assert_eq(gguf_writer_add_u32(w, "general.alignment", 128), 0);
    small_build(&s, w);
    struct gguf_file *f = NULL;
    struct hr_err err;
    cr_assert_eq(gguf_parse(s.buf, s.len, BUDGET, &f, &err), 0, "%s", err.msg);
    cr_assert_eq(f->alignment, 128);
    cr_assert_eq(f->data_offset % 128, 0);
    cr_assert_eq(f->tensors[1].offset, 128);
    gguf_free(f);
    small_free(&s);
}

Test(gguf, tensor_fields)
{
    struct small s;
    small_build(&s, NULL);
    uint8_t *b = s.buf;

    static const uint32_t bad_types[] = {4, 5, 31, 43, 1000, 0xffffffff};
    for (size_t i = 0; i < sizeof bad_types / sizeof bad_types[0]; i++) {
        put32(b + s.t_type[1], bad_types[i]);
        expect_fail(b, s.len, BUDGET, -EINVAL, (int64_t)s.t_type[1], "tensor 1 'b'", "type id");
    }
    put32(b + s.t_type[1], HR_TYPE_Q8_0);

    put32(b + s.t_ndims[0], 5);
    expect_fail(b, s.len, BUDGET, -EINVAL, (int64_t)s.t_ndims[0], "tensor 0 'a'", "n_dims");
    put32(b + s.t_ndims[0], 2);

    put64(b + s.t_ne[0] + 8, (uint64_t)-2);
    expect_fail(b, s.len, BUDGET, -EINVAL, (int64_t)s.t_ne[0] + 8, "tensor 0 'a'",
                "ne[1] = -2");
    put64(b + s.t_ne[0] + 8, 2);

    put64(b + s.t_ne[1], 48); /* Q8_0 blocks hold 32 */
    expect_fail(b, s.len, BUDGET, -EINVAL, (int64_t)s.t_type[1], "tensor 1 'b'",
                "block size 32");
    put64(b + s.t_ne[1], 32);

    /* element count / byte size overflow */
    put64(b + s.t_ne[0], (uint64_t)1 << 40);
    put64(b + s.t_ne[0] + 8, (uint64_t)1 << 40);
    expect_fail(b, s.len, BUDGET, -EINVAL, (int64_t)s.t_info[0], "tensor 0 'a'", "overflow");
    put64(b + s.t_ne[0], 4);
    put64(b + s.t_ne[0] + 8, 2);

    /* offsets: misaligned, out of order, not cumulative */
    uint64_t off1 = get64(b + s.t_offset[1]);
    cr_assert_eq(off1, 32);
    put64(b + s.t_offset[1], 33);
    expect_fail(b, s.len, BUDGET, -EINVAL, (int64_t)s.t_offset[1], "tensor 1 'b'",
                "expected 32");
    put64(b + s.t_offset[1], 64);
    expect_fail(b, s.len, BUDGET, -EINVAL, (int64_t)s.t_offset[1], "tensor 1 'b'",
                "expected 32");
    put64(b + s.t_offset[1], 32);
    put64(b + s.t_offset[0], 32);
    expect_fail(b, s.len, BUDGET, -EINVAL, (int64_t)s.t_offset[0], "tensor 0 'a'",
                "expected 0");
    put64(b + s.t_offset[0], 0);

    /* data past the end of the file: grow the last tensor */
    put64(b + s.t_ne[2], 1024);
    expect_fail(b, s.len, BUDGET, -EINVAL, (int64_t)s.t_offset[2],
                "tensor 2 'blk.0.attn_q.weight'", "4096 bytes] extends past end of file");
    put64(b + s.t_ne[2], 8);

    /* tensor name length 64 (the name runs into the next field) */
    put64(b + s.t_info[2], 64);
    expect_fail(b, s.len, BUDGET, -EINVAL, (int64_t)s.t_info[2], "tensor 2", "name length 64");
    put64(b + s.t_info[2], (uint64_t)1 << 40);
    expect_fail(b, s.len, BUDGET, -EINVAL, (int64_t)s.t_info[2], "tensor 2", "2^30");
    put64(b + s.t_info[2], 19);
    expect_ok(b, s.len);
    small_free(&s);
}

Test(gguf, duplicate_tensor_names)
{
    struct gguf_writer *w = gguf_writer_new();
    float d[4] = {0};
    int64_t ne[1] = {4};
    cr_assert_eq(gguf_writer_add_tensor(w, "x", HR_TYPE_F32, 1, ne, d), 0);
    cr_assert_eq(gguf_writer_add_tensor(w, "y", HR_TYPE_F32, 1, ne, d), 0);
    cr_assert_eq(gguf_writer_add_tensor(w, "x", HR_TYPE_F32, 1, ne, d), 0);
    void *mem;
    size_t len;
    cr_assert_eq(gguf_writer_write_mem(w, &mem, &len), 0);
    expect_fail(mem, len, BUDGET, -EINVAL, 24 + 2 * (8 + 1 + 4 + 8 + 4 + 8),
                "tensor 2 'x'", "duplicate tensor name");
    free(mem);
    gguf_writer_free(w);
}

/* A file with no pairs and one tensor: exercises the 0-tensor/no-padding
 * rules and names with NUL bytes. */
Test(gguf, tensor_edge_cases)
{
    /* no tensors: data_offset is the end of the pairs, no padding needed */
    struct gguf_writer *w = gguf_writer_new();
    cr_assert_eq(gguf_writer_add_u32(w, "k", 1), 0);
    void *mem;
    size_t len;
    cr_assert_eq(gguf_writer_write_mem(w, &mem, &len), 0);
    gguf_writer_free(w);
    cr_assert_eq(len, 24 + 8 + 1 + 4 + 4);
    struct gguf_file *f = NULL;
    struct hr_err err;
    cr_assert_eq(gguf_parse(mem, len, BUDGET, &f, &err), 0, "%s", err.msg);
    cr_assert_eq(f->data_offset, len);
    gguf_free(f);
    free(mem);

    /* an empty file header: no pairs, no tensors */
    static const uint8_t empty[24] = {'G', 'G', 'U', 'F', 3};
    cr_assert_eq(gguf_parse(empty, sizeof empty, BUDGET, &f, &err), 0, "%s", err.msg);
    cr_assert_eq(f->n_kv + f->n_tensors, 0);
    cr_assert_null(gguf_find_kv(f, "general.alignment"));
    gguf_free(f);

    /* names "a\0b" and "a\0c" are both "a", as llama.cpp reads them */
    w = gguf_writer_new();
    int64_t ne[1] = {0};
    cr_assert_eq(gguf_writer_add_tensor(w, "aXb", HR_TYPE_F32, 1, ne, NULL), 0);
    cr_assert_eq(gguf_writer_add_tensor(w, "aXc", HR_TYPE_F32, 1, ne, NULL), 0);
    cr_assert_eq(gguf_writer_write_mem(w, &mem, &len), 0);
    gguf_writer_free(w);
    uint8_t *b = mem;
    b[24 + 8 + 1] = 0;
    b[24 + 35 + 8 + 1] = 0; /* each info is 35 bytes */
    expect_fail(b, len, BUDGET, -EINVAL, 24 + 35, "tensor 1 'a'", "duplicate");
    b[24 + 35 + 8 + 1] = 'X';
    cr_assert_eq(gguf_parse(b, len, BUDGET, &f, &err), 0, "%s", err.msg);
    cr_assert(gguf_find_tensor(f, "a"));
    cr_assert_eq(f->tensors[0].nbytes, 0);
    gguf_free(f);
    free(mem);
}

Test(gguf, nested_depth)
{
    /* arrays of arrays nested 17 deep are refused; 16 deep are accepted */
    for (int depth = 16; depth <= 17; depth++) {
        struct gguf_value v[20];
        memset(v, 0, sizeof v);
        for (int i = 0; i <= depth; i++) {
            v[i].type = GGUF_ARRAY;
            v[i].arr.type = i < depth ? GGUF_ARRAY : GGUF_UINT8;
            v[i].arr.n = i < depth ? 1 : 0;
            v[i].arr.vals = i < depth ? &v[i + 1] : NULL;
        }
        struct gguf_writer *w = gguf_writer_new();
        cr_assert_eq(gguf_writer_add_value(w, "deep", &v[0]), 0);
        void *mem;
        size_t len;
        cr_assert_eq(gguf_writer_write_mem(w, &mem, &len), 0);
        gguf_writer_free(w);
        if (depth == 16)
            expect_ok(mem, len);
        else
            expect_fail(mem, len, BUDGET, -EINVAL, -1, "kv 0 'deep'", "nested");
        free(mem);
    }
}

Test(gguf, memory_budget)
{
    struct small s;
    small_build(&s, NULL);
    /* far too small for anything */
    expect_fail(s.buf, s.len, 16, -E2BIG, -1, "budget", NULL);
    /* enough for the structures but not the string index (3 * 16 bytes) */
    struct gguf_file *f = NULL;
    struct hr_err err;
    size_t lo = 0, hi = BUDGET;
    while (lo + 1 < hi) { /* smallest budget that parses */
        size_t mid = (lo + hi) / 2;
        int rc = gguf_parse(s.buf, s.len, mid, &f, &err);
        if (rc == 0) {
            gguf_free(f);
            hi = mid;
        } else {
            cr_assert_eq(rc, -E2BIG, "budget %zu: %s", mid, err.msg);
            cr_assert(strstr(err.msg, "budget"), "%s", err.msg);
            lo = mid;
        }
    }
    cr_assert_lt(hi, 4096, "a tiny file needs %zu bytes of tables", hi);
    free(s.buf);

    /* the real model's 512-token vocab does not fit in 8 KiB */
    size_t len;
    void *buf = tu_read_file(stories_path(), &len);
    cr_assert(buf);
    expect_fail(buf, len, 8192, -E2BIG, -1, "budget", NULL);
    free(buf);
}
