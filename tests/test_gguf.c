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
