/*
 * quant.h — tensor types: sizes of every ggml type id, and the reference
 * kernels (dequantize, quantize, dot product) of the types hearth computes.
 *
 * Block layouts are in quant_blocks.h (one struct per format, sizes asserted).
 * The facts come from ../shared/FORMATS.md §1.5, §2 and §3.
 *
 * A matrix product y = W·x with W of type T runs as follows (as llama.cpp's
 * CPU backend does, so results agree with it): each activation row x (f32) is
 * first converted with quant_kernels(T)->from_float into the format
 * vec_dot_type (Q8_0 for legacy quants, Q8_1 for Q4_1/Q5_1, Q8_K for K-quants,
 * F16/BF16 for the half types, F32 for F32), then every output is
 * vec_dot(n, &y, W_row, x_row_converted).
 */
#ifndef HEARTH_CORE_QUANT_H
#define HEARTH_CORE_QUANT_H

#include <hearth/hearth.h>
#include <stddef.h>
#include <stdint.h>

#define QK_K 256

/* Size facts for a type id. blck == 0 marks a removed or unknown id. */
struct hr_type_info {
    const char *name; /* llama.cpp's spelling: "f32", "q4_0", "q4_K", ... */
    uint32_t blck;    /* elements per block */
    uint32_t size;    /* bytes per block */
};

/* NULL for an id >= HR_TYPE_COUNT or a removed id. Borrowed, static. */
const struct hr_type_info *hr_type_info(uint32_t type);

/* Bytes of a row of n elements; n must be a multiple of the block size. */
size_t hr_row_size(uint32_t type, int64_t n);

/* fp16 / bf16 <-> fp32, rounding as ggml does (nearest even). */
float hr_fp16_to_fp32(uint16_t h);
uint16_t hr_fp32_to_fp16(float f);
float hr_bf16_to_fp32(uint16_t h);
uint16_t hr_fp32_to_bf16(float f);

/* n is always a multiple of the type's block size. */
typedef void (*quant_to_float_fn)(const void *src, float *dst, int64_t n);
typedef void (*quant_from_float_fn)(const float *src, void *dst, int64_t n);
/* *s = Σ x[i]·y[i] over n elements, x a row of the weight type, y a row of
 * its vec_dot_type. */
typedef void (*quant_vec_dot_fn)(int64_t n, float *s, const void *x, const void *y);

/* A tile of a matrix product, for r < nr and c < nc:
 *   y[c*ldy + r] = Σ_k W_r[k]·X_c[k]   (k < n)
 * W_r = the weight row at w + r*w_stride (weight type), X_c = the activation
 * row at x + c*x_stride (vec_dot_type). nr <= gemm_mr and nc <= gemm_nc of
 * the kernel; edge tiles are smaller. y is row-major [token][output] as in
 * the forward pass, hence ldy = the layer's output width. */
typedef void (*quant_gemm_fn)(int64_t n, float *y, size_t ldy, const void *w, size_t w_stride,
                              int nr, const void *x, size_t x_stride, int nc);

/* The same tile on weights repacked by the kernel's own `repack` (below):
 * wp is the start of the whole packed matrix, row0 the index of the tile's
 * first weight row, a multiple of gemm_mr; rows row0 .. row0+nr−1 are
 * computed (nr <= gemm_mr, row0 + nr <= n_out of the repack). Otherwise as
 * quant_gemm_fn: same results, bit for bit. */
typedef void (*quant_gemm_packed_fn)(int64_t n, float *y, size_t ldy, const void *wp,
                                     int64_t row0, int nr, const void *x, size_t x_stride, int nc);

/* gemm_packed with the activations' block scales given as floats: xd[c *
 * xd_stride + j] = the d of block j of activation row c (the fp16 d that
 * heads every Q8_0/Q8_1 block, converted), which the driver converts once
 * per product rather than every tile converting them again. */
typedef void (*quant_gemm_packed_xd_fn)(int64_t n, float *y, size_t ldy, const void *wp,
                                        int64_t row0, int nr, const void *x, size_t x_stride,
                                        const float *xd, size_t xd_stride, int nc);

struct quant_kernels {
    quant_to_float_fn to_float;       /* dequantize (exact for F32/F16/BF16) */
    quant_from_float_fn from_float;   /* reference quantizer (writes files; the
                                         activation quantizer for Q8_0/Q8_1/Q8_K) */
    quant_vec_dot_fn vec_dot;         /* NULL for activation-only types */
    uint32_t vec_dot_type;            /* format of the other operand of vec_dot */
    /* The activation quantizer the reference's x86 build runs before a dot
     * (Q8_0/Q8_1: id = 127/amax, ties to even — FORMATS.md §3); NULL means
     * from_float. Use quant_act_from_float() rather than reading it. */
    quant_from_float_fn act_from_float;
    /* Optional register-tiled product (SIMD paths); NULL: use vec_dot. */
    quant_gemm_fn gemm;
    int gemm_mr, gemm_nc; /* largest tile: weight rows × activation rows */
    /* Optional repacked weights (SIMD paths; all three NULL or none): a
     * layout of the kernel's choosing, made once at load, that its tile reads
     * in the order it computes (no transposes, sequential streams).
     * packed_size: bytes of the packed copy of n_out rows of n_in elements
     * (n_in a multiple of the block size), to be allocated aligned 64.
     * repack: fills it from src, n_out rows of the stored type, contiguous.
     * gemm_packed: the tile on it, tiles of up to gemm_mr × gemm_nc.
     * Rows are packed in independent groups of gemm_mr: for a multiple a of
     * gemm_mr, packed_size(n_in, a) is the offset of row a's group, so
     * repack may be run on row ranges starting there (in parallel). */
    size_t (*packed_size)(int64_t n_in, int64_t n_out);
    void (*repack)(const void *src, void *dst, int64_t n_in, int64_t n_out);
    quant_gemm_packed_fn gemm_packed;
    /* Activation rows one gemm_packed call takes (the driver passes up to
     * this many); 0 means gemm_nc. A kernel that unpacks a panel once for
     * many rows (AMX) takes more than its register tile. */
    int packed_nc;
    quant_gemm_packed_xd_fn gemm_packed_xd; /* optional, with gemm_packed */
};

static inline int quant_packed_nc(const struct quant_kernels *k)
{
    return k->packed_nc ? k->packed_nc : k->gemm_nc;
}

/* The function that converts f32 activations into `type` (a vec_dot_type)
 * exactly as the reference CPU backend does before a matrix product. */
quant_from_float_fn quant_act_from_float(uint32_t type);

/* Kernels of a type hearth can compute with, or NULL (unsupported: IQ types,
 * ternary, MXFP4 ...): the fastest ones for this CPU (core/arch/, chosen at
 * first use; see hr_isa_active). Borrowed, static. */
const struct quant_kernels *quant_kernels(uint32_t type);

/* The scalar reference kernels (the `_ref` of every type). */
const struct quant_kernels *quant_kernels_ref(uint32_t type);

/* Quantizes nrows contiguous rows of n_per_row f32 values into dst (which
 * must hold nrows·hr_row_size(type, n_per_row) bytes) with the type's
 * reference quantizer, as llama-quantize does without an importance matrix.
 * Returns the number of bytes written, or -EINVAL when the type has no
 * kernels or n_per_row is not a positive multiple of its block size. */
int64_t quant_quantize(uint32_t type, const float *src, void *dst, int64_t nrows,
                       int64_t n_per_row);

#endif
