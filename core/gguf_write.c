/*
 * gguf_write.c — the GGUF writer (FORMATS.md §1): version 3, little-endian.
 *
 * Layout written: "GGUF", u32 3, i64 n_tensors, i64 n_kv, the key/value pairs
 * in insertion order, the tensor infos in insertion order with offsets
 * Σ align_up(nbytes, alignment) (the only layout llama.cpp accepts), zero
 * padding to the alignment, then each tensor's data followed by zero padding
 * to the alignment. With no tensors nothing follows the pairs.
 *
 * Key/value pairs are serialized when added (so values are copied at once);
 * tensor data stays borrowed and is streamed out by gguf_writer_write, which
 * writes to a temporary file next to the target and renames it into place,
 * so a reader never sees a half-written model.
 */
#include "err.h"
#include "gguf.h"
#include "quant.h"

#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct buf {
    uint8_t *p;
    size_t n, cap;
};

struct wtensor {
    char name[GGUF_MAX_NAME];
    uint32_t type, n_dims;
    int64_t ne[4];
    uint64_t nbytes;
    const void *data;
};

struct gguf_writer {
    struct buf kv; /* serialized pairs */
    uint64_t n_kv;
    struct wtensor *t;
    size_t n_t, cap_t;
    uint32_t alignment;
};

static const uint8_t elem_size[GGUF_VTYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

static int reserve(struct buf *b, size_t extra)
{
    if (extra <= b->cap - b->n)
        return 0;
    if (extra > SIZE_MAX / 2 - b->n)
        return -ENOMEM;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->n < extra)
        cap *= 2;
    uint8_t *p = realloc(b->p, cap);
    if (!p)
        return -ENOMEM;
    b->p = p;
    b->cap = cap;
    return 0;
}

static int put(struct buf *b, const void *src, size_t n)
{
    int rc = reserve(b, n);
    if (rc < 0)
        return rc;
    if (n)
        memcpy(b->p + b->n, src, n);
    b->n += n;
    return 0;
}

static int put_zeros(struct buf *b, size_t n)
{
    int rc = reserve(b, n);
    if (rc < 0)
        return rc;
    memset(b->p + b->n, 0, n);
    b->n += n;
    return 0;
}

static int put_u32(struct buf *b, uint32_t v)
{
    uint8_t le[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    return put(b, le, 4);
}

static int put_u64(struct buf *b, uint64_t v)
{
    int rc = put_u32(b, (uint32_t)v);
    return rc < 0 ? rc : put_u32(b, (uint32_t)(v >> 32));
}

static int put_str(struct buf *b, const char *s, uint64_t len)
{
    if (len > SIZE_MAX)
        return -EINVAL;
    int rc = put_u64(b, len);
    return rc < 0 ? rc : put(b, s, (size_t)len);
}

/* Encodes scalar value v of type t (little-endian). */
static int put_scalar(struct buf *b, uint32_t t, const struct gguf_value *v)
{
    switch (t) {
    case GGUF_UINT8: case GGUF_INT8: case GGUF_BOOL: {
        uint8_t x = t == GGUF_INT8 ? (uint8_t)v->i : (uint8_t)(t == GGUF_BOOL ? v->u != 0 : v->u);
        return put(b, &x, 1);
    }
    case GGUF_UINT16: case GGUF_INT16: {
        uint16_t x = t == GGUF_INT16 ? (uint16_t)v->i : (uint16_t)v->u;
        uint8_t le[2] = {(uint8_t)x, (uint8_t)(x >> 8)};
        return put(b, le, 2);
    }
    case GGUF_UINT32: return put_u32(b, (uint32_t)v->u);
    case GGUF_INT32: return put_u32(b, (uint32_t)v->i);
    case GGUF_UINT64: return put_u64(b, v->u);
    case GGUF_INT64: return put_u64(b, (uint64_t)v->i);
    case GGUF_FLOAT32: {
        /* beyond float range: infinity (the conversion would be undefined) */
        float f = v->f > FLT_MAX ? INFINITY : v->f < -FLT_MAX ? -INFINITY : (float)v->f;
        uint32_t x;
        memcpy(&x, &f, 4);
        return put_u32(b, x);
    }
    case GGUF_FLOAT64: {
        uint64_t x;
        memcpy(&x, &v->f, 8);
        return put_u64(b, x);
    }
    default: return -EINVAL;
    }
}

/* The body of an array value: element type, count, elements. */
static int put_array(struct buf *b, const struct gguf_value *v)
{
    uint32_t et = v->arr.type;
    uint64_t n = v->arr.n;
    int rc;
    if (et >= GGUF_VTYPE_COUNT)
        return -EINVAL;
    if ((rc = put_u32(b, et)) < 0 || (rc = put_u64(b, n)) < 0)
        return rc;
    if (elem_size[et]) {
        if (n > SIZE_MAX / elem_size[et] || (n && !v->arr.data))
            return -EINVAL;
        return put(b, v->arr.data, (size_t)n * elem_size[et]);
    }
    if (n && !(et == GGUF_STRING ? (const void *)v->arr.strs : (const void *)v->arr.vals))
        return -EINVAL;
    for (uint64_t i = 0; i < n; i++) {
        if (et == GGUF_STRING)
            rc = put_str(b, v->arr.strs[i].ptr, v->arr.strs[i].len);
        else
            rc = v->arr.vals[i].type == GGUF_ARRAY ? put_array(b, &v->arr.vals[i]) : -EINVAL;
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Appends one pair; on failure the buffer is left as it was. */
static int add_kv(struct gguf_writer *w, const char *key, size_t klen, const struct gguf_value *v)
{
    if (!w || !key || klen == 0 || !v || v->type >= GGUF_VTYPE_COUNT)
        return -EINVAL;
    size_t mark = w->kv.n;
    int rc;
    if ((rc = put_str(&w->kv, key, klen)) < 0 || (rc = put_u32(&w->kv, v->type)) < 0)
        goto fail;
    if (v->type == GGUF_STRING)
        rc = put_str(&w->kv, v->str.ptr, v->str.len);
    else if (v->type == GGUF_ARRAY)
        rc = put_array(&w->kv, v);
    else
        rc = put_scalar(&w->kv, v->type, v);
    if (rc < 0)
        goto fail;
    w->n_kv++;
    if (v->type == GGUF_UINT32 && klen == 17 && !memcmp(key, "general.alignment", 17) &&
        v->u && !(v->u & (v->u - 1)))
        w->alignment = (uint32_t)v->u;
    return 0;
fail:
    w->kv.n = mark;
    return rc;
}

struct gguf_writer *gguf_writer_new(void)
{
    struct gguf_writer *w = calloc(1, sizeof *w);
    if (w)
        w->alignment = GGUF_DEFAULT_ALIGNMENT;
    return w;
}

void gguf_writer_free(struct gguf_writer *w)
{
    if (!w)
        return;
    free(w->kv.p);
    free(w->t);
    free(w);
}

int gguf_writer_add_value(struct gguf_writer *w, const char *key, const struct gguf_value *v)
{
    return add_kv(w, key, key ? strlen(key) : 0, v);
}

int gguf_writer_add_u32(struct gguf_writer *w, const char *key, uint32_t v)
{
    struct gguf_value val = {.type = GGUF_UINT32, .u = v};
    return gguf_writer_add_value(w, key, &val);
}

int gguf_writer_add_i32(struct gguf_writer *w, const char *key, int32_t v)
{
    struct gguf_value val = {.type = GGUF_INT32, .i = v};
    return gguf_writer_add_value(w, key, &val);
}

int gguf_writer_add_f32(struct gguf_writer *w, const char *key, float v)
{
    struct gguf_value val = {.type = GGUF_FLOAT32, .f = v};
    return gguf_writer_add_value(w, key, &val);
}

int gguf_writer_add_bool(struct gguf_writer *w, const char *key, bool v)
{
    struct gguf_value val = {.type = GGUF_BOOL, .u = v};
    return gguf_writer_add_value(w, key, &val);
}

int gguf_writer_add_str(struct gguf_writer *w, const char *key, const char *v)
{
    if (!v)
        return -EINVAL;
    struct gguf_value val = {.type = GGUF_STRING, .str = {v, strlen(v)}};
    return gguf_writer_add_value(w, key, &val);
}

int gguf_writer_add_arr(struct gguf_writer *w, const char *key, uint32_t elem_type,
                        const void *data, uint64_t n)
{
    if (elem_type >= GGUF_VTYPE_COUNT || !elem_size[elem_type])
        return -EINVAL;
    struct gguf_value val = {.type = GGUF_ARRAY};
    val.arr.type = elem_type;
    val.arr.n = n;
    val.arr.data = data;
    return gguf_writer_add_value(w, key, &val);
}

int gguf_writer_add_str_arr(struct gguf_writer *w, const char *key, const char *const *v,
                            uint64_t n)
{
    if (n && !v)
        return -EINVAL;
    if (n > SIZE_MAX / sizeof(struct gguf_str))
        return -ENOMEM;
    struct gguf_str *s = n ? malloc((size_t)n * sizeof *s) : NULL;
    if (n && !s)
        return -ENOMEM;
    int rc = 0;
    for (uint64_t i = 0; i < n; i++) {
        if (!v[i]) {
            rc = -EINVAL;
            goto done;
        }
        s[i].ptr = v[i];
        s[i].len = strlen(v[i]);
    }
    struct gguf_value val = {.type = GGUF_ARRAY};
    val.arr.type = GGUF_STRING;
    val.arr.n = n;
    val.arr.strs = s;
    rc = gguf_writer_add_value(w, key, &val);
done:
    free(s);
    return rc;
}

int gguf_writer_copy_kv(struct gguf_writer *w, const struct gguf_file *src,
                        bool (*skip)(const char *key, void *ud), void *ud)
{
    if (!w || !src)
        return -EINVAL;
    for (uint64_t i = 0; i < src->n_kv; i++) {
        const struct gguf_kv *kv = &src->kv[i];
        char *key = malloc((size_t)kv->key.len + 1);
        if (!key)
            return -ENOMEM;
        memcpy(key, kv->key.ptr, (size_t)kv->key.len);
        key[kv->key.len] = '\0';
        int rc = 0;
        if (!skip || !skip(key, ud))
            rc = add_kv(w, kv->key.ptr, (size_t)kv->key.len, &kv->val);
        free(key);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int gguf_writer_add_tensor(struct gguf_writer *w, const char *name, uint32_t type,
                           uint32_t n_dims, const int64_t *ne, const void *data)
{
    if (!w || !name || strlen(name) >= GGUF_MAX_NAME || n_dims > 4 || (n_dims && !ne))
        return -EINVAL;
    const struct hr_type_info *ti = hr_type_info(type);
    if (!ti)
        return -EINVAL;
    struct wtensor t = {.type = type, .n_dims = n_dims, .ne = {1, 1, 1, 1}, .data = data};
    strcpy(t.name, name);
    for (uint32_t d = 0; d < n_dims; d++) {
        if (ne[d] < 0)
            return -EINVAL;
        t.ne[d] = ne[d];
    }
    if (t.ne[0] % ti->blck)
        return -EINVAL;
    uint64_t nb;
    bool ovf = __builtin_mul_overflow((uint64_t)(t.ne[0] / ti->blck), (uint64_t)ti->size, &nb);
    for (int d = 1; d < 4; d++)
        ovf |= __builtin_mul_overflow(nb, (uint64_t)t.ne[d], &nb);
    if (ovf || nb > SIZE_MAX || (nb && !data))
        return -EINVAL;
    t.nbytes = nb;
    if (w->n_t == w->cap_t) {
        size_t cap = w->cap_t ? 2 * w->cap_t : 16;
        struct wtensor *p = realloc(w->t, cap * sizeof *p);
        if (!p)
            return -ENOMEM;
        w->t = p;
        w->cap_t = cap;
    }
    w->t[w->n_t++] = t;
    return 0;
}

static uint64_t pad_to(uint64_t x, uint32_t a)
{
    return (a - x % a) % a;
}

/* Everything before the tensor data: header, pairs, infos, padding. */
static int build_head(const struct gguf_writer *w, struct buf *b)
{
    int rc;
    if ((rc = put(b, "GGUF", 4)) < 0 || (rc = put_u32(b, 3)) < 0 ||
        (rc = put_u64(b, w->n_t)) < 0 || (rc = put_u64(b, w->n_kv)) < 0 ||
        (rc = put(b, w->kv.p, w->kv.n)) < 0)
        return rc;
    uint64_t off = 0;
    for (size_t i = 0; i < w->n_t; i++) {
        const struct wtensor *t = &w->t[i];
        if ((rc = put_str(b, t->name, strlen(t->name))) < 0 || (rc = put_u32(b, t->n_dims)) < 0)
            return rc;
        for (uint32_t d = 0; d < t->n_dims; d++)
            if ((rc = put_u64(b, (uint64_t)t->ne[d])) < 0)
                return rc;
        if ((rc = put_u32(b, t->type)) < 0 || (rc = put_u64(b, off)) < 0)
            return rc;
        off += t->nbytes + pad_to(t->nbytes, w->alignment);
    }
    if (w->n_t)
        rc = put_zeros(b, (size_t)pad_to(b->n, w->alignment));
    return rc;
}

int gguf_writer_write_mem(struct gguf_writer *w, void **out, size_t *size)
{
    struct buf b = {0};
    int rc = build_head(w, &b);
    if (rc < 0)
        goto fail;
    for (size_t i = 0; i < w->n_t; i++) {
        const struct wtensor *t = &w->t[i];
        if ((rc = put(&b, t->data, (size_t)t->nbytes)) < 0 ||
            (rc = put_zeros(&b, (size_t)pad_to(t->nbytes, w->alignment))) < 0)
            goto fail;
    }
    *out = b.p;
    *size = b.n;
    return 0;
fail:
    free(b.p);
    return rc;
}

static int write_all(int fd, const void *p, size_t n)
{
    const uint8_t *c = p;
    while (n) {
        ssize_t k = write(fd, c, n);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        c += k;
        n -= (size_t)k;
    }
    return 0;
}

static int write_zeros(int fd, uint64_t n)
{
    static const uint8_t zeros[4096];
    int rc = 0;
    while (rc == 0 && n) {
        size_t k = n < sizeof zeros ? (size_t)n : sizeof zeros;
        rc = write_all(fd, zeros, k);
        n -= k;
    }
    return rc;
}

int gguf_writer_write(struct gguf_writer *w, const char *path, struct hr_err *err)
{
    struct buf b = {0};
    char *tmp = NULL;
    int fd = -1, rc;
    if (!w || !path)
        return hr_err_set(err, -EINVAL, -1, "gguf_writer_write: no writer or path");
    if ((rc = build_head(w, &b)) < 0) {
        rc = hr_err_set(err, rc, -1, "cannot build the GGUF header for '%s'", path);
        goto fail;
    }
    size_t plen = strlen(path);
    if (!(tmp = malloc(plen + 16))) {
        rc = hr_err_set(err, -ENOMEM, -1, "out of memory");
        goto fail;
    }
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp.XXXXXX", 12);
    if ((fd = mkostemp(tmp, O_CLOEXEC)) < 0) {
        rc = hr_err_set(err, -errno, -1, "cannot create a temporary file for '%s': %s", path,
                        strerror(errno));
        free(tmp);
        tmp = NULL;
        goto fail;
    }
    (void)fchmod(fd, 0644);
    rc = write_all(fd, b.p, b.n);
    for (size_t i = 0; rc == 0 && i < w->n_t; i++) {
        const struct wtensor *t = &w->t[i];
        if ((rc = write_all(fd, t->data, (size_t)t->nbytes)) == 0)
            rc = write_zeros(fd, pad_to(t->nbytes, w->alignment));
    }
    if (rc == 0 && fsync(fd) < 0)
        rc = -errno;
    if (close(fd) < 0 && rc == 0)
        rc = -errno;
    fd = -1;
    if (rc < 0) {
        rc = hr_err_set(err, rc, -1, "cannot write '%s': %s", tmp, strerror(-rc));
        goto fail;
    }
    if (rename(tmp, path) < 0) {
        rc = hr_err_set(err, -errno, -1, "cannot rename '%s' to '%s': %s", tmp, path,
                        strerror(errno));
        goto fail;
    }
    free(tmp);
    free(b.p);
    return 0;
fail:
    if (fd >= 0)
        close(fd);
    if (tmp)
        unlink(tmp);
    free(tmp);
    free(b.p);
    return rc;
}
