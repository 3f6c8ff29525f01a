/*
 * quant_impl.h — internals shared by quant.c (half types, legacy quants,
 * the kernel table) and quant_k.c (K-quants): the half-precision conversions
 * as inline functions for inner loops, the reference rounding helper, and
 * the K-quant kernels the table points at.
 *
 * Not a public header: only core/quant*.c and core/arch/ include it.
 */
#ifndef HEARTH_CORE_QUANT_IMPL_H
#define HEARTH_CORE_QUANT_IMPL_H

#include <stdint.h>
#include <string.h>

#include "quant.h"
#include "quant_blocks.h"

static inline uint32_t quant_f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline float quant_bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* binary16 -> fp32, exact for every pattern (subnormals, inf, NaN payload). */
static inline float quant_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    if (exp == 0x1f) /* inf / NaN: keep the payload */
        return quant_bits_f32(sign | 0x7f800000u | (man << 13));
    if (exp == 0) { /* zero or subnormal: man·2^-24, exact in fp32 */
        float v = (float)man * 0x1p-24f;
        return sign ? -v : v;
    }
    return quant_bits_f32(sign | ((exp + 112) << 23) | (man << 13));
}

/* fp32 -> binary16, round to nearest, ties to even; overflow to ±inf; NaN
 * stays NaN (quieted, top payload bits kept, as x86 F16C does). */
static inline uint16_t quant_f32_to_f16(float f)
{
    uint32_t u = quant_f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    u &= 0x7fffffffu;
    if (u > 0x7f800000u) /* NaN */
        return (uint16_t)(sign | 0x7e00u | ((u >> 13) & 0x3ffu));
    /* 65520 = 0x477ff000 is halfway between 65504 (odd mantissa) and 2^16:
     * it and everything above round to inf. */
    if (u >= 0x477ff000u)
        return (uint16_t)(sign | 0x7c00u);
    if (u >= 0x38800000u) { /* >= 2^-14: a normal half */
        uint32_t r = u - 0x38000000u; /* rebias exponent 127 -> 15 */
        r += 0xfffu + ((r >> 13) & 1u);
        return (uint16_t)(sign | (r >> 13)); /* a carry bumps the exponent */
    }
    /* subnormal half: round |f|·2^24 to an integer, ties to even.
     * |f| <= 2^-25 (exactly half the smallest subnormal) rounds to zero. */
    if (u <= 0x33000000u)
        return sign;
    uint32_t e = u >> 23; /* 102..112 */
    uint32_t m = (u & 0x7fffffu) | 0x800000u;
    uint32_t shift = 126 - e; /* 14..24 */
    uint32_t q = m >> shift;
    uint32_t rem = m & ((1u << shift) - 1);
    uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1u)))
        q++; /* may reach 0x400: the smallest normal, encoded the same way */
    return (uint16_t)(sign | q);
}

static inline float quant_bf16_to_f32(uint16_t h)
{
    return quant_bits_f32((uint32_t)h << 16);
}

/* fp32 -> bf16, ties to even; NaN forced quiet (FORMATS.md §2.1). */
static inline uint16_t quant_f32_to_bf16(float f)
{
    uint32_t u = quant_f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 64u);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

/* Round to nearest, ties to even, as the K-quant reference does: adding
 * 1.5·2^23 leaves the rounded integer in the low mantissa bits. Valid for
 * |x| <= 2^22; outside (or NaN) it returns some int without undefined
 * behaviour, and every caller clamps the result. */
static inline int quant_nearest_int(float x)
{
    uint32_t u = quant_f32_bits(x + 12582912.0f);
    return (int)(u & 0x007fffffu) - 0x00400000;
}

/* K-quant kernels (quant_k.c). n is a multiple of QK_K. */
void quant_q2_K_to_float(const void *src, float *dst, int64_t n);
void quant_q3_K_to_float(const void *src, float *dst, int64_t n);
void quant_q4_K_to_float(const void *src, float *dst, int64_t n);
void quant_q5_K_to_float(const void *src, float *dst, int64_t n);
void quant_q6_K_to_float(const void *src, float *dst, int64_t n);
void quant_q8_K_to_float(const void *src, float *dst, int64_t n);

void quant_q2_K_from_float(const float *src, void *dst, int64_t n);
void quant_q3_K_from_float(const float *src, void *dst, int64_t n);
void quant_q4_K_from_float(const float *src, void *dst, int64_t n);
void quant_q5_K_from_float(const float *src, void *dst, int64_t n);
void quant_q6_K_from_float(const float *src, void *dst, int64_t n);
void quant_q8_K_from_float(const float *src, void *dst, int64_t n);

void quant_q2_K_vec_dot(int64_t n, float *s, const void *x, const void *y);
void quant_q3_K_vec_dot(int64_t n, float *s, const void *x, const void *y);
void quant_q4_K_vec_dot(int64_t n, float *s, const void *x, const void *y);
void quant_q5_K_vec_dot(int64_t n, float *s, const void *x, const void *y);
void quant_q6_K_vec_dot(int64_t n, float *s, const void *x, const void *y);

#endif
