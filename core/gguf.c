/*
 * gguf.c — the GGUF reader (FORMATS.md §1): parses a v2/v3 image from a
 * memory buffer or an mmapped file into a struct gguf_file.
 *
 * The input is hostile until proven otherwise. A cursor (struct rd) walks the
 * buffer and every read goes through need(), which compares the request with
 * the bytes left, so nothing is read past the end. Counts read from the file
 * are checked against what the remaining bytes could possibly hold before
 * anything proportional to them is allocated (a kv pair needs >= 14 bytes, a
 * tensor info >= 24, a string >= 8, a nested array >= 12), and every table
 * comes out of a budget (struct priv) so a header that passes those checks
 * still cannot make us allocate without bound. Nested arrays recurse, at most
 * MAX_DEPTH levels deep, so the stack is bounded too.
 *
 * Every failure names the field (and the key or tensor it belongs to) and
 * sets err->offset to the byte offset of that field.
 *
 * (The file runs past the ~800-line mark of STYLE.md: the accessors share
 * the private index with the parser, and splitting them off would add a
 * source file to core/meson.build, which belongs to everyone.)
 *
 * The parsed file keeps two hash indexes (keys, tensor names) in the same
 * budgeted storage; they serve the uniqueness checks during the parse and the
 * lookups afterwards.
 */
#include "err.h"
#include "gguf.h"
#include "quant.h"

#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define GGUF_MAGIC "GGUF"
#define MAX_STR_LEN ((uint64_t)1 << 30)
#define MAX_ARR_LEN ((uint64_t)1 << 30)
#define MAX_DEPTH 16 /* nesting of arrays of arrays */
#define MIN_KV_BYTES 14     /* key length 8 + key >= 1 + type 4 + value >= 1 */
#define MIN_TENSOR_BYTES 24 /* name length 8 + n_dims 4 + type 4 + offset 8 */
#define MIN_NESTED_BYTES 12 /* element type 4 + count 8 */

/* ---- budgeted storage ------------------------------------------------------- */

struct blk {
    struct blk *next;
    max_align_t data[]; /* payload, suitably aligned */
};

/* What f->arena points to. */
struct priv {
    struct blk *blocks;
    size_t used, budget;
    uint64_t *kv_hash; /* open addressing: index + 1, 0 = empty; kv_mask + 1 slots */
    uint64_t kv_mask;
    uint64_t *t_hash; /* same, over tensor names */
    uint64_t t_mask;
};

/* Allocates n * elsize zeroed bytes charged to the budget; NULL with
 * *code = -E2BIG (budget) or -ENOMEM. */
static void *palloc(struct priv *p, uint64_t n, size_t elsize, int *code)
{
    uint64_t bytes;
    if (__builtin_mul_overflow(n, (uint64_t)elsize, &bytes) ||
        bytes > SIZE_MAX - sizeof(struct blk) || bytes > p->budget - p->used) {
        *code = -E2BIG;
        return NULL;
    }
    struct blk *b = calloc(1, sizeof *b + (size_t)bytes);
    if (!b) {
        *code = -ENOMEM;
        return NULL;
    }
    p->used += (size_t)bytes;
    b->next = p->blocks;
    p->blocks = b;
    return b->data;
}

static void priv_free(struct priv *p)
{
    if (!p)
        return;
    struct blk *b = p->blocks;
    while (b) {
        struct blk *next = b->next;
        free(b);
        b = next;
    }
    free(p);
}

static uint64_t hash_bytes(const void *s, size_t n)
{
    const unsigned char *c = s;
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= c[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* Number of hash slots for n entries: a power of two >= 2n (>= 8). n is at
 * most size / 14, so this cannot overflow. */
static uint64_t hash_slots(uint64_t n)
{
    uint64_t s = 8;
    while (s < 2 * n)
        s <<= 1;
    return s;
}

/* ---- little-endian decoding -------------------------------------------------- */

static uint16_t rd16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (unsigned)p[1] << 8);
}

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd64(const uint8_t *p)
{
    return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

static const char *const vtype_names[GGUF_VTYPE_COUNT] = {
    "UINT8", "INT8",   "UINT16", "INT16", "UINT32", "INT32",   "FLOAT32",
    "BOOL",  "STRING", "ARRAY",  "UINT64", "INT64", "FLOAT64",
};

static const uint8_t vtype_size[GGUF_VTYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

static const char *vtype_name(uint32_t t)
{
    return t < GGUF_VTYPE_COUNT ? vtype_names[t] : "invalid";
}

static bool is_scalar(uint32_t t)
{
    return t < GGUF_VTYPE_COUNT && vtype_size[t] != 0;
}

static bool is_int(uint32_t t)
{
    return t <= GGUF_INT32 || t == GGUF_UINT64 || t == GGUF_INT64;
}

static bool is_signed(uint32_t t)
{
    return t == GGUF_INT8 || t == GGUF_INT16 || t == GGUF_INT32 || t == GGUF_INT64;
}

/* Decodes one scalar of type t at p into v (t must be scalar). */
static void decode_scalar(uint32_t t, const uint8_t *p, struct gguf_value *v)
{
    v->type = t;
    switch (t) {
    case GGUF_UINT8: v->u = p[0]; break;
    case GGUF_INT8: v->i = (int8_t)p[0]; break;
    case GGUF_UINT16: v->u = rd16(p); break;
    case GGUF_INT16: v->i = (int16_t)rd16(p); break;
    case GGUF_UINT32: v->u = rd32(p); break;
    case GGUF_INT32: v->i = (int32_t)rd32(p); break;
    case GGUF_UINT64: v->u = rd64(p); break;
    case GGUF_INT64: v->i = (int64_t)rd64(p); break;
    case GGUF_BOOL: v->u = p[0] != 0; break;
    case GGUF_FLOAT32: {
        uint32_t b = rd32(p);
        float f;
        memcpy(&f, &b, sizeof f);
        v->f = f;
        break;
    }
    case GGUF_FLOAT64: {
        uint64_t b = rd64(p);
        memcpy(&v->f, &b, sizeof v->f);
        break;
    }
    default: break;
    }
}

/* ---- the cursor --------------------------------------------------------------- */

struct rd {
    const uint8_t *base;
    size_t size;
    size_t pos;
    struct priv *priv;
    struct hr_err *err;
    char ctx[128]; /* "kv 3 'general.name': " or "tensor 2 'x': " or "" */
};

static int fail(struct rd *r, int code, uint64_t off, const char *fmt, ...) HR_PRINTF(4, 5);

static int fail(struct rd *r, int code, uint64_t off, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return hr_err_set(r->err, code, (int64_t)off, "%s%s", r->ctx, msg);
}

static int fail_alloc(struct rd *r, int code, uint64_t off, const char *what, uint64_t n,
                      size_t elsize)
{
    if (code == -E2BIG)
        return fail(r, code, off,
                    "%s: %llu entries of %zu bytes exceed the memory budget (%zu of %zu bytes "
                    "used)",
                    what, (unsigned long long)n, elsize, r->priv->used, r->priv->budget);
    return fail(r, code, off, "%s: out of memory", what);
}

static size_t left(const struct rd *r)
{
    return r->size - r->pos;
}

/* Ensures n more bytes exist; `what` names the field for the message. */
static int need(struct rd *r, uint64_t n, const char *what)
{
    if (n <= left(r))
        return 0;
    return fail(r, -EINVAL, r->pos,
                "%s at offset %zu: needs %llu bytes but the file ends at %zu (%zu bytes left)",
                what, r->pos, (unsigned long long)n, r->size, left(r));
}

static int get_u32(struct rd *r, uint32_t *v, const char *what)
{
    int rc = need(r, 4, what);
    if (rc < 0)
        return rc;
    *v = rd32(r->base + r->pos);
    r->pos += 4;
    return 0;
}

static int get_u64(struct rd *r, uint64_t *v, const char *what)
{
    int rc = need(r, 8, what);
    if (rc < 0)
        return rc;
    *v = rd64(r->base + r->pos);
    r->pos += 8;
    return 0;
}

/* A string: u64 length (<= 2^30) + bytes. `what` names it ("key", "name"...). */
static int get_str(struct rd *r, struct gguf_str *s, const char *what)
{
    char field[96];
    snprintf(field, sizeof field, "%s length", what);
    uint64_t off = r->pos, len;
    int rc = get_u64(r, &len, field);
    if (rc < 0)
        return rc;
    if (len > MAX_STR_LEN)
        return fail(r, -EINVAL, off, "%s length %llu at offset %llu exceeds the limit of 2^30",
                    what, (unsigned long long)len, (unsigned long long)off);
    if (len > left(r))
        return fail(r, -EINVAL, off,
                    "%s of %llu bytes at offset %llu extends past end of file (size %zu)", what,
                    (unsigned long long)len, (unsigned long long)off, r->size);
    s->ptr = (const char *)(r->base + r->pos);
    s->len = len;
    r->pos += (size_t)len;
    return 0;
}

static int get_value(struct rd *r, uint32_t type, struct gguf_value *v, int depth);

/* The body of an ARRAY value: element type, count, elements. */
static int get_array(struct rd *r, struct gguf_value *v, int depth)
{
    uint64_t toff = r->pos, coff, n;
    uint32_t et;
    int rc = get_u32(r, &et, "array element type");
    if (rc < 0)
        return rc;
    if (et >= GGUF_VTYPE_COUNT)
        return fail(r, -EINVAL, toff,
                    "array element type %u at offset %llu is not a GGUF value type (0..12)", et,
                    (unsigned long long)toff);
    coff = r->pos;
    if ((rc = get_u64(r, &n, "array count")) < 0)
        return rc;
    if (n > MAX_ARR_LEN)
        return fail(r, -EINVAL, coff, "array count %llu at offset %llu exceeds the limit of 2^30",
                    (unsigned long long)n, (unsigned long long)coff);
    v->type = GGUF_ARRAY;
    v->arr.type = et;
    v->arr.n = n;
    v->arr.data = NULL;
    v->arr.strs = NULL;
    v->arr.vals = NULL;
    if (is_scalar(et)) {
        uint64_t bytes = n * vtype_size[et]; /* <= 2^33: no overflow */
        if (bytes > left(r))
            return fail(r, -EINVAL, coff,
                        "array of %llu %s (%llu bytes) at offset %llu extends past end of file "
                        "(size %zu)",
                        (unsigned long long)n, vtype_names[et], (unsigned long long)bytes,
                        (unsigned long long)r->pos, r->size);
        v->arr.data = r->base + r->pos;
        r->pos += (size_t)bytes;
        return 0;
    }
    uint64_t min = et == GGUF_STRING ? 8 : MIN_NESTED_BYTES;
    if (n > left(r) / min)
        return fail(r, -EINVAL, coff,
                    "array count %llu at offset %llu: the %zu bytes left cannot hold that many "
                    "%s elements (each needs at least %llu bytes)",
                    (unsigned long long)n, (unsigned long long)coff, left(r), vtype_names[et],
                    (unsigned long long)min);
    if (n == 0)
        return 0;
    if (et == GGUF_STRING) {
        struct gguf_str *s = palloc(r->priv, n, sizeof *s, &rc);
        if (!s)
            return fail_alloc(r, rc, coff, "string array index", n, sizeof *s);
        for (uint64_t i = 0; i < n; i++)
            if ((rc = get_str(r, &s[i], "array string")) < 0)
                return rc;
        v->arr.strs = s;
        return 0;
    }
    /* et == GGUF_ARRAY: each element is (element type, count, elements). */
    if (depth >= MAX_DEPTH)
        return fail(r, -EINVAL, toff, "arrays nested more than %d levels deep at offset %llu",
                    MAX_DEPTH, (unsigned long long)toff);
    struct gguf_value *vals = palloc(r->priv, n, sizeof *vals, &rc);
    if (!vals)
        return fail_alloc(r, rc, coff, "nested array", n, sizeof *vals);
    for (uint64_t i = 0; i < n; i++)
        if ((rc = get_array(r, &vals[i], depth + 1)) < 0)
            return rc;
    v->arr.vals = vals;
    return 0;
}

static int get_value(struct rd *r, uint32_t type, struct gguf_value *v, int depth)
{
    if (type == GGUF_STRING) {
        v->type = type;
        return get_str(r, &v->str, "string value");
    }
    if (type == GGUF_ARRAY)
        return get_array(r, v, depth);
    char field[64];
    snprintf(field, sizeof field, "%s value", vtype_names[type]);
    int rc = need(r, vtype_size[type], field);
    if (rc < 0)
        return rc;
    decode_scalar(type, r->base + r->pos, v);
    r->pos += vtype_size[type];
    return 0;
}

/* Sets the context prefix from a (possibly hostile) name: printable ASCII
 * only, cut at 48 bytes. */
static void set_ctx(struct rd *r, const char *kind, uint64_t i, const char *s, uint64_t len)
{
    char name[64];
    size_t n = 0;
    for (uint64_t k = 0; k < len && n < 48; k++)
        name[n++] = (s[k] >= 0x20 && s[k] < 0x7f) ? s[k] : '?';
    name[n] = '\0';
    snprintf(r->ctx, sizeof r->ctx, "%s %llu '%s%s': ", kind, (unsigned long long)i, name,
             len > 48 ? "..." : "");
}

/* ---- the parse -------------------------------------------------------------------- */

static int parse_kv(struct rd *r, struct gguf_file *f)
{
    struct priv *p = r->priv;
    int rc;
    for (uint64_t i = 0; i < f->n_kv; i++) {
        struct gguf_kv *kv = &f->kv[i];
        snprintf(r->ctx, sizeof r->ctx, "kv %llu: ", (unsigned long long)i);
        kv->offset = r->pos;
        if ((rc = get_str(r, &kv->key, "key")) < 0)
            return rc;
        if (kv->key.len == 0)
            return fail(r, -EINVAL, kv->offset, "empty key at offset %llu",
                        (unsigned long long)kv->offset);
        set_ctx(r, "kv", i, kv->key.ptr, kv->key.len);
        uint64_t h = hash_bytes(kv->key.ptr, (size_t)kv->key.len) & p->kv_mask;
        for (; p->kv_hash[h]; h = (h + 1) & p->kv_mask) {
            const struct gguf_kv *o = &f->kv[p->kv_hash[h] - 1];
            if (o->key.len == kv->key.len && !memcmp(o->key.ptr, kv->key.ptr, kv->key.len))
                return fail(r, -EINVAL, kv->offset,
                            "duplicate key at offset %llu (first defined by kv %llu at offset "
                            "%llu)",
                            (unsigned long long)kv->offset,
                            (unsigned long long)(p->kv_hash[h] - 1),
                            (unsigned long long)o->offset);
        }
        p->kv_hash[h] = i + 1;
        uint64_t toff = r->pos;
        uint32_t type;
        if ((rc = get_u32(r, &type, "value type")) < 0)
            return rc;
        if (type >= GGUF_VTYPE_COUNT)
            return fail(r, -EINVAL, toff,
                        "value type %u at offset %llu is not a GGUF value type (0..12)", type,
                        (unsigned long long)toff);
        if ((rc = get_value(r, type, &kv->val, 0)) < 0)
            return rc;
    }
    r->ctx[0] = '\0';
    return 0;
}

static int check_alignment(struct rd *r, struct gguf_file *f)
{
    f->alignment = GGUF_DEFAULT_ALIGNMENT;
    const struct gguf_kv *kv = gguf_find_kv(f, "general.alignment");
    if (!kv)
        return 0;
    if (kv->val.type != GGUF_UINT32)
        return fail(r, -EINVAL, kv->offset,
                    "general.alignment at offset %llu has type %s, must be UINT32",
                    (unsigned long long)kv->offset, vtype_name(kv->val.type));
    uint64_t a = kv->val.u;
    if (a == 0 || (a & (a - 1)) != 0)
        return fail(r, -EINVAL, kv->offset,
                    "general.alignment = %llu at offset %llu is not a nonzero power of two",
                    (unsigned long long)a, (unsigned long long)kv->offset);
    f->alignment = (uint32_t)a;
    return 0;
}

/* x rounded up to a multiple of a (a power of two); false on overflow. */
static bool align_up(uint64_t x, uint64_t a, uint64_t *out)
{
    if (x > UINT64_MAX - (a - 1))
        return false;
    *out = (x + a - 1) & ~(a - 1);
    return true;
}

static int parse_tensor(struct rd *r, struct gguf_file *f, uint64_t i, uint64_t *expect)
{
    struct gguf_tensor *t = &f->tensors[i];
    struct gguf_str name;
    int rc;
    snprintf(r->ctx, sizeof r->ctx, "tensor %llu: ", (unsigned long long)i);
    t->info_offset = r->pos;
    if ((rc = get_str(r, &name, "name")) < 0)
        return rc;
    if (name.len >= GGUF_MAX_NAME)
        return fail(r, -EINVAL, t->info_offset,
                    "name length %llu at offset %llu: tensor names must be shorter than %d bytes",
                    (unsigned long long)name.len, (unsigned long long)t->info_offset,
                    GGUF_MAX_NAME);
    /* As llama.cpp, the name is a C string: an embedded NUL ends it. */
    memcpy(t->name, name.ptr, (size_t)name.len);
    t->name[name.len] = '\0';
    set_ctx(r, "tensor", i, t->name, strlen(t->name));

    struct priv *p = r->priv;
    size_t nlen = strlen(t->name);
    uint64_t h = hash_bytes(t->name, nlen) & p->t_mask;
    for (; p->t_hash[h]; h = (h + 1) & p->t_mask) {
        const struct gguf_tensor *o = &f->tensors[p->t_hash[h] - 1];
        if (!strcmp(o->name, t->name))
            return fail(r, -EINVAL, t->info_offset,
                        "duplicate tensor name at offset %llu (first used by tensor %llu at "
                        "offset %llu)",
                        (unsigned long long)t->info_offset,
                        (unsigned long long)(p->t_hash[h] - 1),
                        (unsigned long long)o->info_offset);
    }
    p->t_hash[h] = i + 1;

    uint64_t off = r->pos;
    if ((rc = get_u32(r, &t->n_dims, "n_dims")) < 0)
        return rc;
    if (t->n_dims > 4)
        return fail(r, -EINVAL, off, "n_dims %u at offset %llu exceeds the maximum of 4",
                    t->n_dims, (unsigned long long)off);
    for (int d = 0; d < 4; d++)
        t->ne[d] = 1;
    for (uint32_t d = 0; d < t->n_dims; d++) {
        uint64_t v;
        off = r->pos;
        if ((rc = get_u64(r, &v, "ne")) < 0)
            return rc;
        t->ne[d] = (int64_t)v;
        if (t->ne[d] < 0)
            return fail(r, -EINVAL, off, "ne[%u] = %lld at offset %llu is negative", d,
                        (long long)t->ne[d], (unsigned long long)off);
    }
    off = r->pos;
    if ((rc = get_u32(r, &t->type, "type")) < 0)
        return rc;
    const struct hr_type_info *ti = hr_type_info(t->type);
    if (!ti)
        return fail(r, -EINVAL, off,
                    "type id %u at offset %llu is not a known ggml type (removed or >= %d)",
                    t->type, (unsigned long long)off, HR_TYPE_COUNT);
    if (t->ne[0] % ti->blck != 0)
        return fail(r, -EINVAL, off,
                    "ne[0] = %lld is not a multiple of the block size %u of type %s (type at "
                    "offset %llu)",
                    (long long)t->ne[0], ti->blck, ti->name, (unsigned long long)off);
    /* Element count must fit in int64, byte size in size_t. */
    int64_t nel = t->ne[0];
    uint64_t nbytes;
    bool ovf = __builtin_mul_overflow((uint64_t)(t->ne[0] / ti->blck), (uint64_t)ti->size,
                                      &nbytes);
    for (int d = 1; d < 4; d++) {
        ovf |= __builtin_mul_overflow(nel, t->ne[d], &nel);
        ovf |= __builtin_mul_overflow(nbytes, (uint64_t)t->ne[d], &nbytes);
    }
    if (ovf || nbytes > SIZE_MAX)
        return fail(r, -EINVAL, t->info_offset,
                    "shape [%lld, %lld, %lld, %lld] of type %s overflows the element count or "
                    "byte size (info at offset %llu)",
                    (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2],
                    (long long)t->ne[3], ti->name, (unsigned long long)t->info_offset);
    t->nbytes = nbytes;
    off = r->pos;
    if ((rc = get_u64(r, &t->offset, "offset")) < 0)
        return rc;
    if (t->offset != *expect)
        return fail(r, -EINVAL, off,
                    "data offset %llu (field at offset %llu) is not the expected %llu: tensor "
                    "data must follow the tensor infos' order, each padded to the alignment %u",
                    (unsigned long long)t->offset, (unsigned long long)off,
                    (unsigned long long)*expect, f->alignment);
    uint64_t padded;
    if (!align_up(nbytes, f->alignment, &padded) || padded > UINT64_MAX - *expect)
        return fail(r, -EINVAL, off, "data offset overflows after %llu bytes",
                    (unsigned long long)*expect);
    *expect += padded;
    return 0;
}

static int parse(struct rd *r, struct gguf_file *f)
{
    struct priv *p = r->priv;
    int rc;
    if (r->size < 4 || memcmp(r->base, GGUF_MAGIC, 4) != 0) {
        if (r->size < 4)
            return fail(r, -EINVAL, 0, "magic: file is %zu bytes, too short for a GGUF header",
                        r->size);
        return fail(r, -EINVAL, 0, "bad magic %02x %02x %02x %02x at offset 0 (expected \"GGUF\")",
                    r->base[0], r->base[1], r->base[2], r->base[3]);
    }
    r->pos = 4;
    if ((rc = get_u32(r, &f->version, "version")) < 0)
        return rc;
    if ((f->version & 0xffff) == 0)
        return fail(r, -EINVAL, 4,
                    "version %u at offset 4 is invalid (low 16 bits zero: wrong byte order?)",
                    f->version);
    if (f->version == 1)
        return fail(r, -EINVAL, 4, "version 1 at offset 4 is no longer supported");
    if (f->version > 3)
        return fail(r, -EINVAL, 4, "version %u at offset 4 is newer than supported (3)",
                    f->version);
    uint64_t nt, nkv;
    if ((rc = get_u64(r, &nt, "n_tensors")) < 0 || (rc = get_u64(r, &nkv, "n_kv")) < 0)
        return rc;
    if ((int64_t)nt < 0)
        return fail(r, -EINVAL, 8, "n_tensors %lld at offset 8 is negative", (long long)nt);
    if ((int64_t)nkv < 0)
        return fail(r, -EINVAL, 16, "n_kv %lld at offset 16 is negative", (long long)nkv);
    if (nkv > left(r) / MIN_KV_BYTES)
        return fail(r, -EINVAL, 16,
                    "n_kv %llu at offset 16: the %zu bytes left cannot hold that many key/value "
                    "pairs (each needs at least %d bytes)",
                    (unsigned long long)nkv, left(r), MIN_KV_BYTES);
    if (nt > left(r) / MIN_TENSOR_BYTES)
        return fail(r, -EINVAL, 8,
                    "n_tensors %llu at offset 8: the %zu bytes left cannot hold that many tensor "
                    "infos (each needs at least %d bytes)",
                    (unsigned long long)nt, left(r), MIN_TENSOR_BYTES);
    f->n_kv = nkv;
    f->n_tensors = nt;

    p->kv_mask = hash_slots(nkv) - 1;
    if (!(p->kv_hash = palloc(p, p->kv_mask + 1, sizeof *p->kv_hash, &rc)))
        return fail_alloc(r, rc, 16, "key index", p->kv_mask + 1, sizeof *p->kv_hash);
    if (nkv && !(f->kv = palloc(p, nkv, sizeof *f->kv, &rc)))
        return fail_alloc(r, rc, 16, "key/value table", nkv, sizeof *f->kv);
    if ((rc = parse_kv(r, f)) < 0 || (rc = check_alignment(r, f)) < 0)
        return rc;

    uint64_t toff = r->pos;
    if (nt > left(r) / MIN_TENSOR_BYTES)
        return fail(r, -EINVAL, 8,
                    "n_tensors %llu at offset 8: the %zu bytes left after the key/value pairs "
                    "(offset %llu) cannot hold that many tensor infos",
                    (unsigned long long)nt, left(r), (unsigned long long)toff);
    p->t_mask = hash_slots(nt) - 1;
    if (!(p->t_hash = palloc(p, p->t_mask + 1, sizeof *p->t_hash, &rc)))
        return fail_alloc(r, rc, 8, "tensor name index", p->t_mask + 1, sizeof *p->t_hash);
    if (nt && !(f->tensors = palloc(p, nt, sizeof *f->tensors, &rc)))
        return fail_alloc(r, rc, 8, "tensor info table", nt, sizeof *f->tensors);
    uint64_t expect = 0;
    for (uint64_t i = 0; i < nt; i++)
        if ((rc = parse_tensor(r, f, i, &expect)) < 0)
            return rc;
    r->ctx[0] = '\0';

    /* The data blob starts at the next multiple of the alignment (no padding
     * when there are no tensors). */
    f->data_offset = r->pos;
    if (nt && !align_up(r->pos, f->alignment, &f->data_offset))
        return fail(r, -EINVAL, r->pos, "data start overflows");
    for (uint64_t i = 0; i < nt; i++) {
        struct gguf_tensor *t = &f->tensors[i];
        uint64_t start, end;
        /* the offset field is the last 8 bytes of the info, which the next
         * info (or the end of the infos) follows */
        uint64_t next = i + 1 < nt ? f->tensors[i + 1].info_offset : r->pos;
        uint64_t ofield = next - 8;
        if (__builtin_add_overflow(f->data_offset, t->offset, &start) ||
            __builtin_add_overflow(start, t->nbytes, &end) || end > r->size) {
            set_ctx(r, "tensor", i, t->name, strlen(t->name));
            return fail(r, -EINVAL, ofield,
                        "data [file offset %llu, %llu bytes] extends past end of file (size %zu)",
                        (unsigned long long)f->data_offset + t->offset,
                        (unsigned long long)t->nbytes, r->size);
        }
        t->data = r->base + start;
    }
    return 0;
}

int gguf_parse(const void *buf, size_t size, size_t budget, struct gguf_file **out,
               struct hr_err *err)
{
    int rc = 0;
    struct gguf_file *f = NULL;
    struct priv *p = NULL;
    struct rd r = {.base = buf, .size = size, .err = err};
    if (!buf && size)
        return hr_err_set(err, -EINVAL, -1, "gguf_parse: NULL buffer");
    if (sizeof *f + sizeof *p > budget) {
        rc = hr_err_set(err, -E2BIG, -1, "memory budget of %zu bytes is too small", budget);
        goto fail;
    }
    f = calloc(1, sizeof *f);
    p = calloc(1, sizeof *p);
    if (!f || !p) {
        rc = hr_err_set(err, -ENOMEM, -1, "out of memory");
        goto fail;
    }
    p->budget = budget - sizeof *f - sizeof *p;
    f->arena = p;
    f->base = buf;
    f->size = size;
    f->alignment = GGUF_DEFAULT_ALIGNMENT;
    r.priv = p;
    if ((rc = parse(&r, f)) < 0)
        goto fail;
    *out = f;
    return 0;
fail:
    priv_free(p);
    free(f);
    return rc;
}

int gguf_open(const char *path, size_t budget, struct gguf_file **out, struct hr_err *err)
{
    int rc, fd = open(path, O_RDONLY | O_CLOEXEC);
    void *map = NULL;
    size_t size = 0;
    struct gguf_file *f = NULL;
    struct stat st;
    if (fd < 0)
        return hr_err_set(err, -errno, -1, "cannot open '%s': %s", path, strerror(errno));
    if (fstat(fd, &st) < 0) {
        rc = hr_err_set(err, -errno, -1, "cannot stat '%s': %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = hr_err_set(err, -EINVAL, -1, "'%s' is not a regular file", path);
        goto fail;
    }
    if ((uint64_t)st.st_size > SIZE_MAX) {
        rc = hr_err_set(err, -EFBIG, -1, "'%s' is too large to map", path);
        goto fail;
    }
    size = (size_t)st.st_size;
    if (size > 0) {
        map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            map = NULL;
            rc = hr_err_set(err, -errno, -1, "cannot map '%s': %s", path, strerror(errno));
            goto fail;
        }
    }
    close(fd);
    fd = -1;
    if ((rc = gguf_parse(map ? map : "", size, budget, &f, err)) < 0)
        goto fail;
    f->map = map;
    f->map_size = size;
    *out = f;
    return 0;
fail:
    if (map)
        munmap(map, size);
    if (fd >= 0)
        close(fd);
    return rc;
}

void gguf_free(struct gguf_file *f)
{
    if (!f)
        return;
    if (f->map)
        munmap(f->map, f->map_size);
    priv_free(f->arena);
    free(f);
}

/* ---- lookups and getters ------------------------------------------------------ */

const struct gguf_kv *gguf_find_kv(const struct gguf_file *f, const char *key)
{
    if (!f || !key)
        return NULL;
    const struct priv *p = f->arena;
    size_t n = strlen(key);
    if (!p || !p->kv_hash)
        return NULL;
    for (uint64_t h = hash_bytes(key, n) & p->kv_mask; p->kv_hash[h]; h = (h + 1) & p->kv_mask) {
        const struct gguf_kv *kv = &f->kv[p->kv_hash[h] - 1];
        if (gguf_str_eq(kv->key, key))
            return kv;
    }
    return NULL;
}

const struct gguf_tensor *gguf_find_tensor(const struct gguf_file *f, const char *name)
{
    if (!f || !name)
        return NULL;
    const struct priv *p = f->arena;
    if (!p || !p->t_hash)
        return NULL;
    for (uint64_t h = hash_bytes(name, strlen(name)) & p->t_mask; p->t_hash[h];
         h = (h + 1) & p->t_mask) {
        const struct gguf_tensor *t = &f->tensors[p->t_hash[h] - 1];
        if (!strcmp(t->name, name))
            return t;
    }
    return NULL;
}

static int get_kv(const struct gguf_file *f, const char *key, const struct gguf_kv **kv,
                  struct hr_err *err)
{
    *kv = gguf_find_kv(f, key);
    if (!*kv)
        return hr_err_set(err, -ENOENT, -1, "key '%s' not found", key);
    return 0;
}

static int wrong_type(const struct gguf_kv *kv, const char *key, const char *want,
                      struct hr_err *err)
{
    return hr_err_set(err, -EINVAL, (int64_t)kv->offset, "key '%s' has type %s, expected %s", key,
                      vtype_name(kv->val.type), want);
}

int gguf_get_u32(const struct gguf_file *f, const char *key, uint32_t *out, struct hr_err *err)
{
    const struct gguf_kv *kv;
    int rc = get_kv(f, key, &kv, err);
    if (rc < 0)
        return rc;
    uint32_t t = kv->val.type;
    if (!is_int(t))
        return wrong_type(kv, key, "an integer", err);
    if (is_signed(t) ? (kv->val.i < 0 || kv->val.i > UINT32_MAX) : kv->val.u > UINT32_MAX) {
        if (is_signed(t))
            return hr_err_set(err, -EINVAL, (int64_t)kv->offset,
                              "key '%s' value %lld does not fit in u32", key,
                              (long long)kv->val.i);
        return hr_err_set(err, -EINVAL, (int64_t)kv->offset,
                          "key '%s' value %llu does not fit in u32", key,
                          (unsigned long long)kv->val.u);
    }
    *out = is_signed(t) ? (uint32_t)kv->val.i : (uint32_t)kv->val.u;
    return 0;
}

int gguf_get_i64(const struct gguf_file *f, const char *key, int64_t *out, struct hr_err *err)
{
    const struct gguf_kv *kv;
    int rc = get_kv(f, key, &kv, err);
    if (rc < 0)
        return rc;
    uint32_t t = kv->val.type;
    if (!is_int(t))
        return wrong_type(kv, key, "an integer", err);
    if (!is_signed(t) && kv->val.u > INT64_MAX)
        return hr_err_set(err, -EINVAL, (int64_t)kv->offset,
                          "key '%s' value %llu does not fit in i64", key,
                          (unsigned long long)kv->val.u);
    *out = is_signed(t) ? kv->val.i : (int64_t)kv->val.u;
    return 0;
}

int gguf_get_f32(const struct gguf_file *f, const char *key, float *out, struct hr_err *err)
{
    const struct gguf_kv *kv;
    int rc = get_kv(f, key, &kv, err);
    if (rc < 0)
        return rc;
    if (kv->val.type != GGUF_FLOAT32 && kv->val.type != GGUF_FLOAT64)
        return wrong_type(kv, key, "FLOAT32 or FLOAT64", err);
    double v = kv->val.f;
    if ((v > FLT_MAX || v < -FLT_MAX) && !isinf(v)) /* finite but beyond float */
        return hr_err_set(err, -EINVAL, (int64_t)kv->offset,
                          "key '%s' value %g does not fit in f32", key, v);
    *out = (float)v;
    return 0;
}

int gguf_get_bool(const struct gguf_file *f, const char *key, bool *out, struct hr_err *err)
{
    const struct gguf_kv *kv;
    int rc = get_kv(f, key, &kv, err);
    if (rc < 0)
        return rc;
    if (kv->val.type != GGUF_BOOL)
        return wrong_type(kv, key, "BOOL", err);
    *out = kv->val.u != 0;
    return 0;
}

int gguf_get_str(const struct gguf_file *f, const char *key, struct gguf_str *out,
                 struct hr_err *err)
{
    const struct gguf_kv *kv;
    int rc = get_kv(f, key, &kv, err);
    if (rc < 0)
        return rc;
    if (kv->val.type != GGUF_STRING)
        return wrong_type(kv, key, "STRING", err);
    *out = kv->val.str;
    return 0;
}

int gguf_get_arr(const struct gguf_file *f, const char *key, uint32_t elem_type,
                 const struct gguf_value **out, struct hr_err *err)
{
    const struct gguf_kv *kv;
    int rc = get_kv(f, key, &kv, err);
    if (rc < 0)
        return rc;
    if (kv->val.type != GGUF_ARRAY)
        return wrong_type(kv, key, "ARRAY", err);
    if (elem_type < GGUF_VTYPE_COUNT && kv->val.arr.type != elem_type)
        return hr_err_set(err, -EINVAL, (int64_t)kv->offset,
                          "key '%s' is an array of %s, expected an array of %s", key,
                          vtype_name(kv->val.arr.type), vtype_name(elem_type));
    *out = &kv->val;
    return 0;
}

int64_t gguf_arr_int(const struct gguf_value *arr, uint64_t i)
{
    if (!arr || arr->type != GGUF_ARRAY || !is_scalar(arr->arr.type) || i >= arr->arr.n)
        return 0;
    struct gguf_value v;
    uint32_t t = arr->arr.type;
    decode_scalar(t, (const uint8_t *)arr->arr.data + i * vtype_size[t], &v);
    if (t == GGUF_FLOAT32 || t == GGUF_FLOAT64) /* truncated; NaN and out of range: 0 */
        return (v.f > -9.2e18 && v.f < 9.2e18) ? (int64_t)v.f : 0;
    return is_signed(t) ? v.i : (int64_t)v.u;
}

double gguf_arr_float(const struct gguf_value *arr, uint64_t i)
{
    if (!arr || arr->type != GGUF_ARRAY || !is_scalar(arr->arr.type) || i >= arr->arr.n)
        return 0;
    struct gguf_value v;
    uint32_t t = arr->arr.type;
    decode_scalar(t, (const uint8_t *)arr->arr.data + i * vtype_size[t], &v);
    if (t == GGUF_FLOAT32 || t == GGUF_FLOAT64)
        return v.f;
    return is_signed(t) ? (double)v.i : (double)v.u;
}

bool gguf_str_eq(struct gguf_str s, const char *c)
{
    size_t n = strlen(c);
    return s.len == n && (n == 0 || memcmp(s.ptr, c, n) == 0);
}
