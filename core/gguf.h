/*
 * gguf.h — reading GGUF files (v2 and v3), FORMATS.md §1.
 *
 * On-disk format (little-endian): magic "GGUF", u32 version, i64 n_tensors,
 * i64 n_kv, n_kv key/value pairs (string key, i32 value type, value), n_tensors
 * tensor infos (string name, u32 n_dims, i64 ne[n_dims], i32 type, u64
 * offset), zero padding to `general.alignment` (default 32), then the tensor
 * data blob. Strings are u64 length + bytes, no NUL.
 *
 * The parser validates everything against the buffer size before use, with
 * overflow-checked arithmetic, and fails with -EINVAL and an hr_err naming the
 * field and its byte offset. It never reads outside the buffer, never aborts.
 * All tables it builds come out of a memory budget, so a hostile header
 * cannot make it allocate without bound (-E2BIG when exceeded).
 *
 * Lifetimes: every pointer in a struct gguf_file (strings, array data, tensor
 * data) points into the mapped/borrowed buffer or into tables owned by the
 * gguf_file, and is valid until gguf_free.
 */
#ifndef HEARTH_CORE_GGUF_H
#define HEARTH_CORE_GGUF_H

#include <hearth/hearth.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum gguf_vtype {
    GGUF_UINT8 = 0,
    GGUF_INT8 = 1,
    GGUF_UINT16 = 2,
    GGUF_INT16 = 3,
    GGUF_UINT32 = 4,
    GGUF_INT32 = 5,
    GGUF_FLOAT32 = 6,
    GGUF_BOOL = 7,
    GGUF_STRING = 8,
    GGUF_ARRAY = 9,
    GGUF_UINT64 = 10,
    GGUF_INT64 = 11,
    GGUF_FLOAT64 = 12,
    GGUF_VTYPE_COUNT
};

#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_NAME 64 /* tensor names are < 64 bytes */

/* A string inside the file: not NUL-terminated. */
struct gguf_str {
    const char *ptr;
    uint64_t len;
};

struct gguf_value {
    uint32_t type; /* enum gguf_vtype */
    union {
        uint64_t u;          /* UINT8/16/32/64, BOOL (0/1) */
        int64_t i;           /* INT8/16/32/64 */
        double f;            /* FLOAT32/64 */
        struct gguf_str str; /* STRING */
        struct {
            uint32_t type; /* element type */
            uint64_t n;    /* element count */
            /* scalar elements: n packed little-endian values (possibly
             * unaligned: read with the gguf_arr_* helpers) */
            const void *data;
            const struct gguf_str *strs;   /* STRING elements */
            const struct gguf_value *vals; /* ARRAY elements (nested arrays) */
        } arr;
    };
};

struct gguf_kv {
    struct gguf_str key;
    struct gguf_value val;
    uint64_t offset; /* byte offset of the pair in the file */
};

struct gguf_tensor {
    char name[GGUF_MAX_NAME]; /* NUL-terminated copy */
    uint32_t n_dims;
    int64_t ne[4]; /* absent dims are 1; ne[0] is contiguous */
    uint32_t type; /* enum hr_type (any id with a size in hr_type_info) */
    uint64_t offset; /* relative to the data blob */
    uint64_t nbytes;
    const void *data; /* into the buffer */
    uint64_t info_offset; /* byte offset of the tensor info in the file */
};

struct gguf_file {
    uint32_t version;
    uint32_t alignment;
    uint64_t n_kv;
    struct gguf_kv *kv;
    uint64_t n_tensors;
    struct gguf_tensor *tensors;
    uint64_t data_offset; /* start of the data blob in the file */
    const uint8_t *base;  /* the whole file */
    size_t size;
    /* private: mapping and allocations */
    void *map;
    size_t map_size;
    void *arena;
};

/* Default memory budget for the parser's tables (keys, string indexes,
 * tensor infos): 1 GiB, far above any real model's header. */
#define GGUF_DEFAULT_BUDGET ((size_t)1 << 30)

/* Maps the file at `path` read-only and parses it. *out owned: gguf_free. */
int gguf_open(const char *path, size_t budget, struct gguf_file **out, struct hr_err *err);

/* Parses a GGUF image in memory (borrowed: must outlive *out). */
int gguf_parse(const void *buf, size_t size, size_t budget, struct gguf_file **out,
               struct hr_err *err);

void gguf_free(struct gguf_file *f);

/* Lookups; NULL when absent. Borrowed. */
const struct gguf_kv *gguf_find_kv(const struct gguf_file *f, const char *key);
const struct gguf_tensor *gguf_find_tensor(const struct gguf_file *f, const char *name);

/* Typed getters: 0 on success, -ENOENT when the key is absent, -EINVAL when
 * it has another type or does not fit (err says which key and type).
 * gguf_get_u32/i32/u64 accept any integer type whose value fits; gguf_get_f32
 * accepts FLOAT32/FLOAT64. *out is written only on success. */
int gguf_get_u32(const struct gguf_file *f, const char *key, uint32_t *out, struct hr_err *err);
int gguf_get_i64(const struct gguf_file *f, const char *key, int64_t *out, struct hr_err *err);
int gguf_get_f32(const struct gguf_file *f, const char *key, float *out, struct hr_err *err);
int gguf_get_bool(const struct gguf_file *f, const char *key, bool *out, struct hr_err *err);
int gguf_get_str(const struct gguf_file *f, const char *key, struct gguf_str *out,
                 struct hr_err *err);
/* An array with elements of elem_type (GGUF_VTYPE_COUNT: any). */
int gguf_get_arr(const struct gguf_file *f, const char *key, uint32_t elem_type,
                 const struct gguf_value **out, struct hr_err *err);

/* Element i of a scalar array, converted. Callers check i < n and the type. */
int64_t gguf_arr_int(const struct gguf_value *arr, uint64_t i);
double gguf_arr_float(const struct gguf_value *arr, uint64_t i);

/* True if s equals the NUL-terminated c string. */
bool gguf_str_eq(struct gguf_str s, const char *c);

/* ---- writing (for quantize, mkmodel, tests) -------------------------------- */

/* Builds a GGUF file in memory: add metadata and tensors, then write.
 * Keys are written in insertion order and are not checked for uniqueness
 * (the tests build malformed files with it). A UINT32 general.alignment
 * that is a power of two sets the alignment of the data. */
struct gguf_writer;
struct gguf_writer *gguf_writer_new(void);
void gguf_writer_free(struct gguf_writer *w);
/* Values are copied. Returns 0 or -ENOMEM. */
int gguf_writer_add_u32(struct gguf_writer *w, const char *key, uint32_t v);
int gguf_writer_add_i32(struct gguf_writer *w, const char *key, int32_t v);
int gguf_writer_add_f32(struct gguf_writer *w, const char *key, float v);
int gguf_writer_add_bool(struct gguf_writer *w, const char *key, bool v);
int gguf_writer_add_str(struct gguf_writer *w, const char *key, const char *v);
/* Scalar array: n elements of elem_type, packed little-endian in `data`. */
int gguf_writer_add_arr(struct gguf_writer *w, const char *key, uint32_t elem_type,
                        const void *data, uint64_t n);
int gguf_writer_add_str_arr(struct gguf_writer *w, const char *key, const char *const *v,
                            uint64_t n);
/* Any value (every scalar type, strings, arrays of scalars, strings or
 * nested arrays), deep-copied. -EINVAL for an invalid type. */
int gguf_writer_add_value(struct gguf_writer *w, const char *key, const struct gguf_value *v);
/* Copies every key/value of `src` except those for which skip(key) is true
 * (skip may be NULL). */
int gguf_writer_copy_kv(struct gguf_writer *w, const struct gguf_file *src,
                        bool (*skip)(const char *key, void *ud), void *ud);
/* A tensor (-EINVAL: name of 64 bytes or more, unknown type, n_dims > 4,
 * negative ne, ne[0] not a multiple of the block size, size overflow).
 * data (nbytes = hr_row_size(type, ne[0]) * ne[1]*ne[2]*ne[3]) is
 * borrowed until gguf_writer_write returns. */
int gguf_writer_add_tensor(struct gguf_writer *w, const char *name, uint32_t type,
                           uint32_t n_dims, const int64_t *ne, const void *data);
/* Writes the file (version 3) atomically (temp file + rename). */
int gguf_writer_write(struct gguf_writer *w, const char *path, struct hr_err *err);
/* Builds the same image in memory. *out owned: free(). 0 or -ENOMEM. */
int gguf_writer_write_mem(struct gguf_writer *w, void **out, size_t *size);

#endif
