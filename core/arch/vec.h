/*
 * vec.h — the f32 vector primitives of the forward pass (attention, the
 * elementwise ops between the products) and of LoRA's and the trainer's
 * inner loops, chosen per ISA like the quant kernels (arch.h).
 *
 * dot_f32 sums in the order of the reference's ggml_vec_dot_f32 on an
 * AVX-512 build — 64 elements per step into 4×16 lanes with fused
 * multiply-adds, the 4 vectors folded (0+2, 1+3, then 0+1), the 16 lanes
 * folded by halves, the tail (n mod 64) added in double — so every path
 * returns the same bits, and the same bits as the reference. mad_f32 is
 * y += x·v with one fused multiply-add per element, scale_f32 is y *= v;
 * mad_f16 is mad_f32 of x given as IEEE binary16 bit patterns (exact
 * conversion), also the same bits on every path.
 *
 * The forward pass's elementwise ops and its attention tiles follow (their
 * scalar reference and the per-level tables: core/arch/vec_ops.c). Each
 * computes every row (every attention lane) from that row alone, so a row
 * of the pass gets the same bits whatever the other rows are (forward.c's
 * batch independence); across ISA levels they agree within the limits stated
 * at each (tests/test_vec.c checks them).
 */
#ifndef HEARTH_CORE_VEC_H
#define HEARTH_CORE_VEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- attention tiles ------------------------------------------------------------ */

#define VEC_ATTN_KB 32    /* keys read per block */
#define VEC_ATTN_LANES 16 /* the most lanes of any level's tile */

/* One tile: n query vectors ("lanes") of one KV head, lane l against the
 * cached positions 0..last[l]:
 *     o_l = Σ_j softmax_j(scale·(q_l·k_j)) v_j,   j = 0..last[l],
 * each lane with the reference's flash-attention recurrence (ggml's
 * flash_attn_ext on the CPU), key by key in position order:
 *     s = (q·k_j)·scale
 *     if s > M: r = e^(M−s), M = s, o = o·r, w = 1     else: r = 1, w = e^(s−M)
 *     o = fma(v_j, w, o) per element;  S = S·r + w
 * from M = −inf, S = 0, o = 0, and at the end o *= 1/S (0 when S = 0);
 * q·k_j sums in dot_f32's order (an f16 key converted exactly first), so
 * an f32 cache gives the reference's bits up to the exponential. Every
 * operation is a lane's own, so its bits do not depend on the other lanes
 * nor on their count: a query row gets the same result in any tile. The
 * scalar reference uses libm's expf, the vector levels
 * exp_f32's exponential — the only difference between levels. Keys are
 * read in blocks of VEC_ATTN_KB (an f16 block converted once for every
 * lane); blocks do not change the order. */
struct vec_attn {
    int n;                  /* lanes, 1 .. attn_lanes */
    int64_t hd;             /* head dimension */
    const float *const *q;  /* [n] query rows [hd] (read) */
    float *const *o;        /* [n] output rows [hd] (written) */
    const int32_t *last;    /* [n] last position each lane sees (>= 0) */
    const void *k, *v;      /* K and V of position 0: f32, or binary16 when f16 */
    int64_t stride;         /* elements from one position's K (V) to the next */
    bool f16;
    float scale;
    float *scratch;         /* vec_attn_scratch(hd) floats, the caller's, any alignment */
};

/* Floats of scratch an attn_tile call needs at head dimension hd. */
static inline size_t vec_attn_scratch(int64_t hd)
{
    /* a block's scores, exponents (with a vector of slack), rescales and
     * weights per lane; the block's K and V as f32 (an f16 cache) */
    return 4 * (size_t)VEC_ATTN_KB * VEC_ATTN_LANES + VEC_ATTN_LANES +
           2 * (size_t)VEC_ATTN_KB * (size_t)hd;
}

struct vec_kernels {
    float (*dot_f32)(const float *a, const float *b, int64_t n);
    void (*mad_f32)(float *y, const float *x, float v, int64_t n);
    void (*scale_f32)(float *y, float v, int64_t n);
    void (*mad_f16)(float *y, const uint16_t *x, float v, int64_t n);

    /* ---- the forward pass (filled by vec_ops_init where a table leaves them NULL) ---- */
    /* y += x: the same bits on every level */
    void (*add_f32)(float *y, const float *x, int64_t n);
    /* y = (x·r)·w, r = 1/sqrtf(mean + eps), mean = Σx²/n with the squares
     * rounded to f32 and summed in double (ggml's rms_norm): levels differ
     * only in the order of the double sum (y in place of x is allowed) */
    void (*rmsnorm_f32)(float *y, const float *x, const float *w, int64_t n, float eps);
    /* y = e^x: scalar is libm's expf; the vector levels a range reduction and
     * polynomial within 2 ulp of it (e^0 = 1, e^−inf = 0, overflow to inf,
     * gradual underflow, NaN kept); y == x is allowed */
    void (*exp_f32)(float *y, const float *x, int64_t n);
    /* g = g/(1 + e^−g)·u (SwiGLU), in that order, with exp_f32's exponential */
    void (*swiglu_f32)(float *g, const float *u, int64_t n);
    /* rotates the n_half pairs of one head (FORMATS.md §4.4): NEOX pairs
     * (x[i], x[i+n_half]), NORM pairs (x[2i], x[2i+1]); x0' = x0·c − x1·s,
     * x1' = x0·s + x1·c without fused multiply-adds: the same bits on every
     * level */
    void (*rope_f32)(float *x, const float *cos, const float *sin, int64_t n_half, bool neox);
    /* y = binary16 of x rounded to nearest even (quant_f32_to_f16, NaN
     * quieted): the same bits on every level */
    void (*f32_to_f16)(uint16_t *y, const float *x, int64_t n);
    /* one attention tile (struct vec_attn) of at most attn_lanes lanes */
    void (*attn_tile)(const struct vec_attn *a);
    int attn_lanes;
};

/* Completes the table of level `isa` (dispatch.c, once per level built):
 * every forward-pass entry left NULL gets that level's kernel, or the
 * scalar one where the level has none. */
void vec_ops_init(struct vec_kernels *k, int isa);

/* The scalar dot_f32 (dispatch.c), also the scalar attention tile's q·k. */
float vec_scalar_dot_f32(const float *a, const float *b, int64_t n);

/* For the active ISA (see hr_isa_active). Borrowed, static. */
const struct vec_kernels *vec_kernels(void);
/* For a given ISA level (<= hr_isa_detect()), for tests; NULL otherwise. */
const struct vec_kernels *vec_kernels_isa(int isa);

/* per-ISA implementations (core/arch/x86/avx*_vec.c) */
float arch_avx2_dot_f32(const float *a, const float *b, int64_t n);
void arch_avx2_mad_f32(float *y, const float *x, float v, int64_t n);
void arch_avx2_scale_f32(float *y, float v, int64_t n);
void arch_avx2_mad_f16(float *y, const uint16_t *x, float v, int64_t n);
float arch_avx512_dot_f32(const float *a, const float *b, int64_t n);
void arch_avx512_mad_f32(float *y, const float *x, float v, int64_t n);
void arch_avx512_scale_f32(float *y, float v, int64_t n);
void arch_avx512_mad_f16(float *y, const uint16_t *x, float v, int64_t n);
void arch_avx2_add_f32(float *y, const float *x, int64_t n);
void arch_avx2_rmsnorm_f32(float *y, const float *x, const float *w, int64_t n, float eps);
void arch_avx2_exp_f32(float *y, const float *x, int64_t n);
void arch_avx2_swiglu_f32(float *g, const float *u, int64_t n);
void arch_avx2_rope_f32(float *x, const float *cos, const float *sin, int64_t n_half, bool neox);
void arch_avx2_f32_to_f16(uint16_t *y, const float *x, int64_t n);
void arch_avx2_attn_tile(const struct vec_attn *a);
void arch_avx512_add_f32(float *y, const float *x, int64_t n);
void arch_avx512_rmsnorm_f32(float *y, const float *x, const float *w, int64_t n, float eps);
void arch_avx512_exp_f32(float *y, const float *x, int64_t n);
void arch_avx512_swiglu_f32(float *g, const float *u, int64_t n);
void arch_avx512_rope_f32(float *x, const float *cos, const float *sin, int64_t n_half,
                          bool neox);
void arch_avx512_f32_to_f16(uint16_t *y, const float *x, int64_t n);
void arch_avx512_attn_tile(const struct vec_attn *a);
/* aarch64, both NEON levels (core/arch/arm/neon_vec.c) */
float arch_neon_dot_f32(const float *a, const float *b, int64_t n);
void arch_neon_mad_f32(float *y, const float *x, float v, int64_t n);
void arch_neon_scale_f32(float *y, float v, int64_t n);
void arch_neon_mad_f16(float *y, const uint16_t *x, float v, int64_t n);

#endif
