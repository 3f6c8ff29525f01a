/*
 * fuzz_gguf.c — libFuzzer target for the GGUF reader: parses the input with
 * a 64 MiB table budget and, when it is accepted, walks every key/value pair
 * (arrays and nested arrays included) and every tensor, touching each byte
 * the parser claims is inside the buffer, so an out-of-bounds pointer or
 * length shows up as an ASan report. It also exercises the lookups, the
 * typed getters and a writer round trip of the accepted metadata.
 */
#include "gguf.h"
#include "quant.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile uint8_t sink;

static void touch(const void *p, uint64_t n)
{
    const uint8_t *c = p;
    uint8_t x = 0;
    if (n) /* first and last byte, plus a stride through the middle */
        for (uint64_t i = 0; i < n; i += 1 + n / 64)
            x ^= c[i];
    if (n)
        x ^= c[n - 1];
    sink ^= x;
}

static void walk_value(const struct gguf_value *v)
{
    static const uint8_t sizes[GGUF_VTYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    if (v->type == GGUF_STRING) {
        touch(v->str.ptr, v->str.len);
        return;
    }
    if (v->type != GGUF_ARRAY)
        return;
    if (v->arr.type == GGUF_STRING) {
        for (uint64_t i = 0; i < v->arr.n; i++)
            touch(v->arr.strs[i].ptr, v->arr.strs[i].len);
    } else if (v->arr.type == GGUF_ARRAY) {
        for (uint64_t i = 0; i < v->arr.n; i++)
            walk_value(&v->arr.vals[i]);
    } else if (v->arr.type < GGUF_VTYPE_COUNT) {
        touch(v->arr.data, v->arr.n * sizes[v->arr.type]);
        if (v->arr.n) {
            sink ^= (uint8_t)gguf_arr_int(v, v->arr.n - 1);
            sink ^= (uint8_t)(gguf_arr_float(v, 0) != 0);
        }
    } else {
        abort(); /* the parser let an invalid element type through */
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct gguf_file *f = NULL;
    struct hr_err err;
    if (gguf_parse(data, size, (size_t)64 << 20, &f, &err) < 0)
        return 0;
    for (uint64_t i = 0; i < f->n_kv; i++) {
        const struct gguf_kv *kv = &f->kv[i];
        touch(kv->key.ptr, kv->key.len);
        walk_value(&kv->val);
        if (kv->key.len < 256 && !memchr(kv->key.ptr, 0, kv->key.len)) {
            char key[256];
            memcpy(key, kv->key.ptr, kv->key.len);
            key[kv->key.len] = '\0';
            if (gguf_find_kv(f, key) != kv)
                abort();
            uint32_t u;
            int64_t i64;
            float x;
            bool b;
            struct gguf_str s;
            const struct gguf_value *a;
            (void)gguf_get_u32(f, key, &u, &err);
            (void)gguf_get_i64(f, key, &i64, &err);
            (void)gguf_get_f32(f, key, &x, &err);
            (void)gguf_get_bool(f, key, &b, &err);
            (void)gguf_get_str(f, key, &s, &err);
            (void)gguf_get_arr(f, key, GGUF_VTYPE_COUNT, &a, &err);
        }
    }
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const struct gguf_tensor *t = &f->tensors[i];
        if (!hr_type_info(t->type) || t->n_dims > 4 || gguf_find_tensor(f, t->name) != t)
            abort();
        if ((const uint8_t *)t->data < f->base ||
            (uint64_t)((const uint8_t *)t->data - f->base) + t->nbytes > f->size)
            abort();
        touch(t->data, t->nbytes);
    }
    /* the accepted metadata survives a writer round trip */
    struct gguf_writer *w = gguf_writer_new();
    void *img = NULL;
    size_t img_size = 0;
    if (w && gguf_writer_copy_kv(w, f, NULL, NULL) == 0 &&
        gguf_writer_write_mem(w, &img, &img_size) == 0) {
        struct gguf_file *g = NULL;
        if (gguf_parse(img, img_size, (size_t)64 << 20, &g, &err) == 0) {
            if (g->n_kv != f->n_kv)
                abort();
            gguf_free(g);
        }
        free(img);
    }
    gguf_writer_free(w);
    gguf_free(f);
    return 0;
}
