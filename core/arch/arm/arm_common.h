/*
 * arm_common.h — small helpers shared by the aarch64 kernel files
 * (core/arch/arm/): unaligned loads of block fields, the 16-byte signed dot
 * product every integer kernel is built on, and the forced-inline attribute.
 *
 * arm_dot16 is the one place where the two NEON levels differ: files built
 * with +dotprod (__ARM_FEATURE_DOTPROD) get SDOT, the others the ARMv8.0
 * sequence SMULL/SMULL2 + SADALP. Both are exact: int8 × int8 products are
 * at most 128·128 = 16384 in magnitude, so the int16 products of SMULL
 * cannot overflow and SADALP widens before adding. The lanes of the result
 * hold different partial sums on the two paths, so callers may only use the
 * total over all four lanes of a call (or of calls on the same group).
 */
#ifndef HEARTH_CORE_ARCH_ARM_COMMON_H
#define HEARTH_CORE_ARCH_ARM_COMMON_H

#include "../../quant_blocks.h"

#include <arm_neon.h>
#include <stdint.h>
#include <string.h>

/* The kernels are written as generic inline functions whose block kind is a
 * compile-time constant at each call site. */
#define ARM_INLINE static inline __attribute__((always_inline))

/* Block fields are at most 2-byte aligned: read them through memcpy. */
ARM_INLINE uint16_t arm_ld16(const uint8_t *p)
{
    uint16_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

ARM_INLINE uint32_t arm_ld32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

ARM_INLINE float arm_ldf(const uint8_t *p)
{
    float v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* fp16 bits -> fp32, exact (FCVT; AdvSIMD half conversions are ARMv8.0). */
ARM_INLINE float arm_h2f(uint16_t h)
{
    return vgetq_lane_f32(vcvt_f32_f16(vreinterpret_f16_u16(vdup_n_u16(h))), 0);
}

/* acc + the products of 16 int8 pairs, spread over four int32 lanes. */
ARM_INLINE int32x4_t arm_dot16(int32x4_t acc, int8x16_t a, int8x16_t b)
{
#if defined(__ARM_FEATURE_DOTPROD)
    return vdotq_s32(acc, a, b);
#else
    int16x8_t lo = vmull_s8(vget_low_s8(a), vget_low_s8(b));
    int16x8_t hi = vmull_high_s8(a, b);
    return vpadalq_s16(vpadalq_s16(acc, lo), hi);
#endif
}

/* {Σa, Σb, Σc, Σd} of four int32x4 vectors. */
ARM_INLINE int32x4_t arm_hsum4(int32x4_t a, int32x4_t b, int32x4_t c, int32x4_t d)
{
    return vpaddq_s32(vpaddq_s32(a, b), vpaddq_s32(c, d));
}

#endif
