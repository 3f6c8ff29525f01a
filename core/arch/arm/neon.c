/*
 * neon.c — the NEON level (HR_ISA_NEON, ARMv8.0 AdvSIMD, every aarch64
 * CPU): the activation converters run before a matrix product (Q8_0, Q8_1,
 * Q8_K, F16, BF16), the float dot products (F32, F16, BF16) and the integer
 * dot products and tiles of neon_qdot.h built without SDOT. Registered by
 * arch_neon_init over the scalar table; the neon-dotprod level
 * (neon_dotprod.c) then replaces the integer products.
 *
 * ARM. Built only for aarch64 hosts (core/meson.build), with
 * -march=armv8-a -ffp-contract=off; tested against the scalar reference by
 * tests/arm/test_neon.c, which runs under qemu-user in a cross build
 * (scripts/cross/, `scripts/run-tests.sh`) — qemu checks results, not speed.
 *
 * Converters, bit for bit the scalar ones (core/quant.c, core/quant_k.c):
 *  - Q8_0/Q8_1 (the x86-style activation quantizer of the reference table,
 *    act_from_float): amax by FMAXNM over |x| (a quiet NaN is ignored, as the
 *    scalar `a > amax` does), id = 127/amax, quants by FCVTNS (nearest, ties
 *    to even, as nearbyintf under the default mode) saturated to int8;
 *  - Q8_K: the signed extreme is found on the |x| bit patterns (integer order
 *    is float order for non-negative floats; the first index wins ties as in
 *    the reference), iscale·x is rounded by FCVTNS (ties to even, what the
 *    reference's 1.5·2^23 trick computes for |iscale·x| <= 127); a block the
 *    fast path cannot reproduce (an inf or NaN, or a max so small that
 *    −127/max overflows) goes to the scalar reference itself;
 *  - F16: FCVTN rounds to nearest even and keeps NaN payload top bits
 *    (quieted) under Linux's default FPCR (no flush-to-zero, no default NaN),
 *    as quant_f32_to_f16; BF16 in integers, as quant_f32_to_bf16.
 *
 * Float products: 16 lanes (four vectors) of fused multiply-adds in f32,
 * folded at the end, the tail (n mod 16) in double. The reference sums in
 * double, so these agree with it to float rounding, not bit for bit (the
 * test states the bound).
 */
#include "arm_common.h"

#include "../../quant_impl.h"
#include "../arch.h"
#include "neon_qdot.h"

#include <math.h>

/* ---- activation converters ------------------------------------------------------ */

/* max |x| of 32 floats */
ARM_INLINE float absmax32(const float32x4_t v[8])
{
    float32x4_t m = vabsq_f32(v[0]);
    for (int j = 1; j < 8; j++)
        m = vmaxnmq_f32(m, vabsq_f32(v[j]));
    return vmaxnmvq_f32(m);
}

/* nearbyint(x·id) of 32 floats as int8 into qs; returns Σ of the quants. */
ARM_INLINE int32_t quantize32(const float32x4_t v[8], float id, int8_t *qs)
{
    int16x8_t h[4];
    for (int j = 0; j < 4; j++) {
        int32x4_t a = vcvtnq_s32_f32(vmulq_n_f32(v[2 * j], id));
        int32x4_t b = vcvtnq_s32_f32(vmulq_n_f32(v[2 * j + 1], id));
        h[j] = vcombine_s16(vqmovn_s32(a), vqmovn_s32(b));
    }
    int8x16_t q0 = vcombine_s8(vqmovn_s16(h[0]), vqmovn_s16(h[1]));
    int8x16_t q1 = vcombine_s8(vqmovn_s16(h[2]), vqmovn_s16(h[3]));
    vst1q_s8(qs, q0);
    vst1q_s8(qs + 16, q1);
    return vaddlvq_s8(q0) + vaddlvq_s8(q1);
}

ARM_INLINE void load32(const float *src, float32x4_t v[8])
{
    for (int j = 0; j < 8; j++)
        v[j] = vld1q_f32(src + 4 * j);
}

static void q8_0_act(const float *src, void *dst, int64_t n)
{
    struct block_q8_0 *b = dst;
    for (int64_t i = 0; i < n / QK8_0; i++, src += QK8_0) {
        float32x4_t v[8];
        load32(src, v);
        float amax = absmax32(v);
        float id = amax != 0.0f ? 127.0f / amax : 0.0f;
        b[i].d = quant_f32_to_f16(amax / 127.0f);
        quantize32(v, id, b[i].qs);
    }
}

static void q8_1_act(const float *src, void *dst, int64_t n)
{
    struct block_q8_1 *b = dst;
    for (int64_t i = 0; i < n / QK8_1; i++, src += QK8_1) {
        float32x4_t v[8];
        load32(src, v);
        float amax = absmax32(v);
        float d = amax / 127.0f;
        float id = amax != 0.0f ? 127.0f / amax : 0.0f;
        b[i].d = quant_f32_to_f16(d);
        int32_t sum = quantize32(v, id, b[i].qs);
        b[i].s = quant_f32_to_f16((float)sum * d);
    }
}

/* One Q8_K block (256 floats at x) by the fast path; false when only the
 * reference can reproduce it (non-finite input or overflowing scale). */
static bool q8_K_block(const float *x, struct block_q8_K *y)
{
    const uint32x4_t mask = vdupq_n_u32(0x7fffffffu);
    uint32x4_t m = vdupq_n_u32(0);
    for (int l = 0; l < QK_K; l += 4)
        m = vmaxq_u32(m, vandq_u32(vreinterpretq_u32_f32(vld1q_f32(x + l)), mask));
    uint32_t amax = vmaxvq_u32(m);
    if (amax >= 0x7f800000u) /* inf or NaN somewhere */
        return false;
    if (amax == 0) {
        memset(y, 0, sizeof *y);
        return true;
    }
    /* the first element of that magnitude gives the sign */
    int at = 0;
    while ((quant_f32_bits(x[at]) & 0x7fffffffu) != amax)
        at++;
    float iscale = -127.0f / x[at];
    if (!isfinite(iscale))
        return false;
    for (int g = 0; g < QK_K / 16; g++) {
        int16x8_t h[2];
        for (int j = 0; j < 2; j++) {
            const float *p = x + 16 * g + 8 * j;
            int32x4_t a = vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(p), iscale));
            int32x4_t b = vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(p + 4), iscale));
            h[j] = vcombine_s16(vqmovn_s32(a), vqmovn_s32(b));
        }
        int8x16_t q = vcombine_s8(vqmovn_s16(h[0]), vqmovn_s16(h[1]));
        vst1q_s8(y->qs + 16 * g, q);
        y->bsums[g] = (int16_t)vaddlvq_s8(q);
    }
    y->d = 1 / iscale;
    return true;
}

static void q8_K_act(const float *src, void *dst, int64_t n)
{
    struct block_q8_K *y = dst;
    for (int64_t i = 0; i < n / QK_K; i++, src += QK_K)
        if (!q8_K_block(src, &y[i]))
            quant_q8_K_from_float(src, &y[i], QK_K);
}

static void f16_act(const float *src, void *dst, int64_t n)
{
    uint16_t *h = dst;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        float16x4_t a = vcvt_f16_f32(vld1q_f32(src + i));
        float16x8_t b = vcvt_high_f16_f32(a, vld1q_f32(src + i + 4));
        vst1q_u16(h + i, vreinterpretq_u16_f16(b));
    }
    for (; i < n; i++)
        h[i] = quant_f32_to_f16(src[i]);
}

/* fp32 -> bf16 as quant_f32_to_bf16: (u + 0x7fff + lsb) >> 16, NaN ->
 * (u >> 16) | 64. */
ARM_INLINE uint16x4_t bf16_round4(float32x4_t v)
{
    uint32x4_t u = vreinterpretq_u32_f32(v);
    uint32x4_t lsb = vandq_u32(vshrq_n_u32(u, 16), vdupq_n_u32(1));
    uint16x4_t r = vshrn_n_u32(vaddq_u32(vaddq_u32(u, vdupq_n_u32(0x7fff)), lsb), 16);
    uint16x4_t q = vorr_u16(vshrn_n_u32(u, 16), vdup_n_u16(64));
    uint32x4_t nan = vcgtq_u32(vandq_u32(u, vdupq_n_u32(0x7fffffffu)), vdupq_n_u32(0x7f800000u));
    return vbsl_u16(vmovn_u32(nan), q, r);
}

static void bf16_act(const float *src, void *dst, int64_t n)
{
    uint16_t *h = dst;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        vst1q_u16(h + i, vcombine_u16(bf16_round4(vld1q_f32(src + i)),
                                      bf16_round4(vld1q_f32(src + i + 4))));
    for (; i < n; i++)
        h[i] = quant_f32_to_bf16(src[i]);
}

/* ---- F32, F16, BF16 vec_dot ---------------------------------------------------------- */

enum fkind { K_F32, K_F16, K_BF16 };

/* 4 elements of the row at p from element i, as floats (exact). */
ARM_INLINE float32x4_t fload4(const enum fkind k, const void *p, int64_t i)
{
    if (k == K_F32) return vld1q_f32((const float *)p + i);
    uint16x4_t h = vld1_u16((const uint16_t *)p + i);
    if (k == K_F16) return vcvt_f32_f16(vreinterpret_f16_u16(h));
    return vreinterpretq_f32_u32(vshll_n_u16(h, 16));
}

ARM_INLINE float fscalar(const enum fkind k, const void *p, int64_t i)
{
    if (k == K_F32) return ((const float *)p)[i];
    uint16_t h = ((const uint16_t *)p)[i];
    return k == K_F16 ? quant_f16_to_f32(h) : quant_bf16_to_f32(h);
}

ARM_INLINE void fdot(const enum fkind k, int64_t n, float *s, const void *x, const void *y)
{
    float32x4_t acc[4] = {vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0)};
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int j = 0; j < 4; j++)
            acc[j] = vfmaq_f32(acc[j], fload4(k, x, i + 4 * j), fload4(k, y, i + 4 * j));
    float32x4_t t = vaddq_f32(vaddq_f32(acc[0], acc[2]), vaddq_f32(acc[1], acc[3]));
    double sum = vaddvq_f32(t);
    for (; i < n; i++)
        sum += (double)(fscalar(k, x, i) * fscalar(k, y, i));
    *s = (float)sum;
}

static void f32_dot(int64_t n, float *s, const void *x, const void *y)
{
    fdot(K_F32, n, s, x, y);
}

static void f16_dot(int64_t n, float *s, const void *x, const void *y)
{
    fdot(K_F16, n, s, x, y);
}

static void bf16_dot(int64_t n, float *s, const void *x, const void *y)
{
    fdot(K_BF16, n, s, x, y);
}

/* ---- registration ---------------------------------------------------------------------- */

void arch_neon_init(struct quant_kernels tab[HR_TYPE_COUNT])
{
    tab[HR_TYPE_F32].vec_dot = f32_dot;
    tab[HR_TYPE_F16].vec_dot = f16_dot;
    tab[HR_TYPE_BF16].vec_dot = bf16_dot;
    qdot_register(tab);
    /* activation converters: the vec_dot_type entries (quant_act_from_float) */
    tab[HR_TYPE_Q8_0].act_from_float = q8_0_act;
    tab[HR_TYPE_Q8_1].act_from_float = q8_1_act;
    tab[HR_TYPE_Q8_K].act_from_float = q8_K_act;
    tab[HR_TYPE_F16].act_from_float = f16_act;
    tab[HR_TYPE_BF16].act_from_float = bf16_act;
}
