/*
 * x86_common.h — small helpers shared by the x86 kernel files
 * (core/arch/x86/avx2_*.c, avx512_*.c): unaligned scalar loads from block
 * fields, horizontal sums, and the force-inline attribute the register-tiled
 * kernels rely on.
 *
 * Each kernel file is compiled with its own target flags, so the helpers of
 * a level are only visible where the compiler was told the CPU has it
 * (__AVX2__ / __AVX512F__ guards). Everything is static inline: no symbol
 * crosses between files built for different ISAs.
 */
#ifndef HEARTH_CORE_ARCH_X86_COMMON_H
#define HEARTH_CORE_ARCH_X86_COMMON_H

#include "../../quant_blocks.h"

#include <immintrin.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* The tile kernels are written once as generic inline functions whose tile
 * shape and block kind are compile-time constants at each call site; forcing
 * inlining lets the compiler unroll the tile loops and keep every accumulator
 * in a register. */
#define X86_INLINE static inline __attribute__((always_inline))

/* Block fields are at most 2-byte aligned: read them through memcpy. */
X86_INLINE uint32_t x86_ld16(const uint8_t *p)
{
    uint16_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

X86_INLINE uint32_t x86_ld32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

#if defined(__AVX2__)
/* Sum of the 8 lanes. */
X86_INLINE float x86_hsum256(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* {Σa, Σb, Σc, Σd} of four 8-lane vectors, each sum in the order of
 * x86_hsum256 (bit-identical to it). */
X86_INLINE __m128 x86_hsum4x256(__m256 a, __m256 b, __m256 c, __m256 d)
{
    /* p_i = x_i + x_i+4 per vector; then (p0 + p2) + (p1 + p3) */
    __m128 a4 = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    __m128 b4 = _mm_add_ps(_mm256_castps256_ps128(b), _mm256_extractf128_ps(b, 1));
    __m128 c4 = _mm_add_ps(_mm256_castps256_ps128(c), _mm256_extractf128_ps(c, 1));
    __m128 d4 = _mm_add_ps(_mm256_castps256_ps128(d), _mm256_extractf128_ps(d, 1));
    __m128 ab = _mm_add_ps(_mm_unpacklo_ps(a4, b4), _mm_unpackhi_ps(a4, b4));
    __m128 cd = _mm_add_ps(_mm_unpacklo_ps(c4, d4), _mm_unpackhi_ps(c4, d4));
    return _mm_add_ps(_mm_movelh_ps(ab, cd), _mm_movehl_ps(cd, ab));
}
#endif

#if defined(__AVX512F__) && defined(__AVX512DQ__)
/* {Σa, Σb, Σc, Σd} of four 16-lane vectors. */
X86_INLINE __m128 x86_hsum4x512(__m512 a, __m512 b, __m512 c, __m512 d)
{
    __m256 a8 = _mm256_add_ps(_mm512_castps512_ps256(a), _mm512_extractf32x8_ps(a, 1));
    __m256 b8 = _mm256_add_ps(_mm512_castps512_ps256(b), _mm512_extractf32x8_ps(b, 1));
    __m256 c8 = _mm256_add_ps(_mm512_castps512_ps256(c), _mm512_extractf32x8_ps(c, 1));
    __m256 d8 = _mm256_add_ps(_mm512_castps512_ps256(d), _mm512_extractf32x8_ps(d, 1));
    return x86_hsum4x256(a8, b8, c8, d8);
}
#endif

/* ---- block facts of the legacy quants (avx2_legacy.c, avx512_legacy.c) ---- */

enum qkind { K_Q4_0, K_Q4_1, K_Q5_0, K_Q5_1, K_Q8_0 };

/* Block geometry of the weight kind and of its activation format. */
X86_INLINE size_t w_bytes(enum qkind k)
{
    return k == K_Q4_0   ? sizeof(struct block_q4_0)
           : k == K_Q4_1 ? sizeof(struct block_q4_1)
           : k == K_Q5_0 ? sizeof(struct block_q5_0)
           : k == K_Q5_1 ? sizeof(struct block_q5_1)
                         : sizeof(struct block_q8_0);
}

X86_INLINE size_t w_qs(enum qkind k)
{
    return k == K_Q4_0   ? offsetof(struct block_q4_0, qs)
           : k == K_Q4_1 ? offsetof(struct block_q4_1, qs)
           : k == K_Q5_0 ? offsetof(struct block_q5_0, qs)
           : k == K_Q5_1 ? offsetof(struct block_q5_1, qs)
                         : offsetof(struct block_q8_0, qs);
}

X86_INLINE size_t w_qh(enum qkind k)
{
    return k == K_Q5_0 ? offsetof(struct block_q5_0, qh) : offsetof(struct block_q5_1, qh);
}

X86_INLINE bool has_m(enum qkind k) /* Q4_1/Q5_1: x = q·d + m, Q8_1 activations */
{
    return k == K_Q4_1 || k == K_Q5_1;
}

X86_INLINE bool has_qh(enum qkind k)
{
    return k == K_Q5_0 || k == K_Q5_1;
}

X86_INLINE size_t x_bytes(enum qkind k)
{
    return has_m(k) ? sizeof(struct block_q8_1) : sizeof(struct block_q8_0);
}

X86_INLINE size_t x_qs(enum qkind k)
{
    return has_m(k) ? offsetof(struct block_q8_1, qs) : offsetof(struct block_q8_0, qs);
}

#endif
