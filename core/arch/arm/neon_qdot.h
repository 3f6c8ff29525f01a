/*
 * neon_qdot.h — the integer dot products of the aarch64 levels: legacy
 * block quants (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 × Q8_0/Q8_1 activations) and
 * K-quants (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K × Q8_K). Written once and compiled
 * twice: by neon.c (ARMv8.0 AdvSIMD, arm_dot16 = SMULL + SADALP) and by
 * neon_dotprod.c (+dotprod, arm_dot16 = SDOT); each includer gets its own
 * static copy and registers it with qdot_register().
 *
 * Results are bit-identical to the scalar reference (core/quant.c,
 * core/quant_k.c), under the same contract as the x86 files
 * (core/arch/x86/avx2_legacy.c, avx512_k.c): every integer sum of a block
 * (legacy) or super-block (K: Σ_j sc_j·Σ_e q_e·a_e and Σ_j m_j·bsums) is
 * computed exactly — weight quants are unpacked to int8 with their format's
 * offset already subtracted, the 16-byte products are exact (arm_dot16), and
 * the per-group sums are combined in int32, which reorders nothing that can
 * round — and then the reference's float expression is applied to it,
 * operand for operand, and added to the running sum block after block in
 * element order. Legacy blocks go four at a time: the four integer sums and
 * the four (d_w·d_a)·isum [+ m_w·s_a] terms are computed in the lanes of one
 * vector (IEEE products, the same roundings as the scalar ones), then added
 * to the running sum one lane after the other.
 *
 * The files are built with -ffp-contract=off (as the ISO C build of the
 * reference is), so no product is fused into an addition. Activation blocks
 * of any content are handled exactly: Q8_0/Q8_1 quants may be −128, Q8_K
 * bsums are read as given and widened before they are added.
 */
#ifndef HEARTH_CORE_ARCH_ARM_NEON_QDOT_H
#define HEARTH_CORE_ARCH_ARM_NEON_QDOT_H

#include "arm_common.h"

#include "../../quant_impl.h"
#include "../arch.h"

#include <stdbool.h>
#include <stddef.h>

/* ---- legacy quants ------------------------------------------------------------------ */

enum qkind { K_Q4_0, K_Q4_1, K_Q5_0, K_Q5_1, K_Q8_0 };

ARM_INLINE size_t w_bytes(const enum qkind k)
{
    return k == K_Q4_0   ? sizeof(struct block_q4_0)
           : k == K_Q4_1 ? sizeof(struct block_q4_1)
           : k == K_Q5_0 ? sizeof(struct block_q5_0)
           : k == K_Q5_1 ? sizeof(struct block_q5_1)
                         : sizeof(struct block_q8_0);
}

ARM_INLINE size_t w_qs(const enum qkind k)
{
    return k == K_Q4_0   ? offsetof(struct block_q4_0, qs)
           : k == K_Q4_1 ? offsetof(struct block_q4_1, qs)
           : k == K_Q5_0 ? offsetof(struct block_q5_0, qs)
           : k == K_Q5_1 ? offsetof(struct block_q5_1, qs)
                         : offsetof(struct block_q8_0, qs);
}

ARM_INLINE size_t w_qh(const enum qkind k)
{
    return k == K_Q5_0 ? offsetof(struct block_q5_0, qh) : offsetof(struct block_q5_1, qh);
}

ARM_INLINE bool has_m(const enum qkind k) /* x = q·d + m; Q8_1 activations */
{
    return k == K_Q4_1 || k == K_Q5_1;
}

ARM_INLINE bool has_qh(const enum qkind k)
{
    return k == K_Q5_0 || k == K_Q5_1;
}

ARM_INLINE int offset_of(const enum qkind k) /* o in Σ (q − o)·a */
{
    return k == K_Q4_0 ? 8 : k == K_Q5_0 ? 16 : 0;
}

ARM_INLINE size_t x_bytes(const enum qkind k)
{
    return has_m(k) ? sizeof(struct block_q8_1) : sizeof(struct block_q8_0);
}

ARM_INLINE size_t x_qs(const enum qkind k)
{
    return has_m(k) ? offsetof(struct block_q8_1, qs) : offsetof(struct block_q8_0, qs);
}

/* The 32 quants of the weight block at p as signed bytes with the format's
 * offset subtracted: lo = elements 0..15, hi = 16..31. */
ARM_INLINE void wquants(const enum qkind k, const uint8_t *p, int8x16_t *lo, int8x16_t *hi)
{
    if (k == K_Q8_0) {
        *lo = vld1q_s8((const int8_t *)(p + w_qs(k)));
        *hi = vld1q_s8((const int8_t *)(p + w_qs(k) + 16));
        return;
    }
    uint8x16_t b = vld1q_u8(p + w_qs(k));
    uint8x16_t l = vandq_u8(b, vdupq_n_u8(15)), h = vshrq_n_u8(b, 4);
    if (has_qh(k)) {
        /* byte e of l gets bit e of qh as 16, byte e of h bit e + 16: route
         * qh byte e/8 to lane e, then test bit e%8 */
        static const uint8_t route_lo[16] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1};
        static const uint8_t route_hi[16] = {2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3};
        static const uint8_t bits[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
        uint8x16_t qh = vreinterpretq_u8_u32(vdupq_n_u32(arm_ld32(p + w_qh(k))));
        uint8x16_t bit = vld1q_u8(bits), sixteen = vdupq_n_u8(16);
        uint8x16_t bl = vtstq_u8(vqtbl1q_u8(qh, vld1q_u8(route_lo)), bit);
        uint8x16_t bh = vtstq_u8(vqtbl1q_u8(qh, vld1q_u8(route_hi)), bit);
        l = vorrq_u8(l, vandq_u8(bl, sixteen));
        h = vorrq_u8(h, vandq_u8(bh, sixteen));
    }
    int8x16_t sl = vreinterpretq_s8_u8(l), sh = vreinterpretq_s8_u8(h);
    if (offset_of(k)) {
        int8x16_t o = vdupq_n_s8((int8_t)offset_of(k));
        sl = vsubq_s8(sl, o);
        sh = vsubq_s8(sh, o);
    }
    *lo = sl;
    *hi = sh;
}

/* The products of one block, over four lanes (total = the block's isum). */
ARM_INLINE int32x4_t block_dot(const enum qkind k, const uint8_t *pw, const uint8_t *px)
{
    int8x16_t lo, hi;
    wquants(k, pw, &lo, &hi);
    const int8_t *a = (const int8_t *)(px + x_qs(k));
    return arm_dot16(arm_dot16(vdupq_n_s32(0), lo, vld1q_s8(a)), hi, vld1q_s8(a + 16));
}

/* Four fp16 fields, `stride` bytes apart from p, as floats (exact). */
ARM_INLINE float32x4_t h2f4(const uint8_t *p, size_t stride)
{
    uint16_t h[4] = {arm_ld16(p), arm_ld16(p + stride), arm_ld16(p + 2 * stride),
                     arm_ld16(p + 3 * stride)};
    return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(h)));
}

/* vec_dot: the reference's per-block float expression, blocks in order. */
ARM_INLINE void qdot(const enum qkind k, int64_t n, float *s, const void *vw, const void *vx)
{
    const uint8_t *pw = vw, *px = vx;
    const size_t wb = w_bytes(k), xb = x_bytes(k);
    const int64_t nb = n / 32;
    float sum = 0.0f;
    int64_t b = 0;
    for (; b + 4 <= nb; b += 4, pw += 4 * wb, px += 4 * xb) {
        int32x4_t isum = arm_hsum4(block_dot(k, pw, px), block_dot(k, pw + wb, px + xb),
                                   block_dot(k, pw + 2 * wb, px + 2 * xb),
                                   block_dot(k, pw + 3 * wb, px + 3 * xb));
        float32x4_t d = vmulq_f32(h2f4(pw, wb), h2f4(px, xb));
        float32x4_t v = vmulq_f32(d, vcvtq_f32_s32(isum));
        if (has_m(k)) v = vaddq_f32(v, vmulq_f32(h2f4(pw + 2, wb), h2f4(px + 2, xb)));
        sum += vgetq_lane_f32(v, 0);
        sum += vgetq_lane_f32(v, 1);
        sum += vgetq_lane_f32(v, 2);
        sum += vgetq_lane_f32(v, 3);
    }
    for (; b < nb; b++, pw += wb, px += xb) {
        float d = arm_h2f(arm_ld16(pw)) * arm_h2f(arm_ld16(px));
        float v = d * (float)vaddvq_s32(block_dot(k, pw, px));
        if (has_m(k)) v = v + arm_h2f(arm_ld16(pw + 2)) * arm_h2f(arm_ld16(px + 2));
        sum += v;
    }
    *s = sum;
}

static void q4_0_dot(int64_t n, float *s, const void *vx, const void *vy)
{
    qdot(K_Q4_0, n, s, vx, vy);
}

static void q4_1_dot(int64_t n, float *s, const void *vx, const void *vy)
{
    qdot(K_Q4_1, n, s, vx, vy);
}

static void q5_0_dot(int64_t n, float *s, const void *vx, const void *vy)
{
    qdot(K_Q5_0, n, s, vx, vy);
}

static void q5_1_dot(int64_t n, float *s, const void *vx, const void *vy)
{
    qdot(K_Q5_1, n, s, vx, vy);
}

static void q8_0_dot(int64_t n, float *s, const void *vx, const void *vy)
{
    qdot(K_Q8_0, n, s, vx, vy);
}

/* ---- K-quants × Q8_K ------------------------------------------------------------------ */

/* The 16 int16 bsums of a Q8_K block as pair sums widened to int32:
 * lo = {b0+b1, b2+b3, b4+b5, b6+b7}, hi = the same for b8..b15 (Q4_K/Q5_K's
 * 32-element sub-blocks). */
ARM_INLINE void bsums_pairs(const struct block_q8_K *y, int32x4_t *lo, int32x4_t *hi)
{
    *lo = vpaddlq_s16(vld1q_s16(y->bsums));
    *hi = vpaddlq_s16(vld1q_s16(y->bsums + 8));
}

/* 16 bytes (unsigned when !sgn) as four int32x4 in order. */
ARM_INLINE void widen16(uint8x16_t v, bool sgn, int32x4_t w[4])
{
    int16x8_t a, b;
    if (sgn) {
        a = vmovl_s8(vget_low_s8(vreinterpretq_s8_u8(v)));
        b = vmovl_high_s8(vreinterpretq_s8_u8(v));
    } else {
        a = vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(v)));
        b = vreinterpretq_s16_u16(vmovl_high_u8(v));
    }
    w[0] = vmovl_s16(vget_low_s16(a));
    w[1] = vmovl_high_s16(a);
    w[2] = vmovl_s16(vget_low_s16(b));
    w[3] = vmovl_high_s16(b);
}

/* Σ_g sub[g]·sc[g] over 16 groups given as 4 vectors each. */
ARM_INLINE int32_t mac16(const int32x4_t sub[4], const int32x4_t sc[4])
{
    int32x4_t t = vmulq_s32(sub[0], sc[0]);
    t = vmlaq_s32(t, sub[1], sc[1]);
    t = vmlaq_s32(t, sub[2], sc[2]);
    t = vmlaq_s32(t, sub[3], sc[3]);
    return vaddvq_s32(t);
}

/* The 2-bit fields g of 32 bytes (q0, q1), as 32 signed bytes. */
ARM_INLINE void crumbs(uint8x16_t q0, uint8x16_t q1, int g, int8x16_t *w0, int8x16_t *w1)
{
    int8x16_t sh = vdupq_n_s8((int8_t)(-2 * g));
    *w0 = vreinterpretq_s8_u8(vandq_u8(vshlq_u8(q0, sh), vdupq_n_u8(3)));
    *w1 = vreinterpretq_s8_u8(vandq_u8(vshlq_u8(q1, sh), vdupq_n_u8(3)));
}

/* Per-16-group integer sums of a 256-element super-block whose weights are
 * produced 32 at a time (elements 32i..32i+31 for i = 0..7) by `make`:
 * sub[k] lane l = the sum of group 4k + l. */
#define GROUP_SUMS(sub, a, make)                                                                   \
    do {                                                                                           \
        int32x4_t d_[16];                                                                          \
        for (int i_ = 0; i_ < 8; i_++) {                                                           \
            int8x16_t w0_, w1_;                                                                    \
            make(i_, &w0_, &w1_);                                                                  \
            d_[2 * i_] = arm_dot16(vdupq_n_s32(0), w0_, vld1q_s8((a) + 32 * i_));                  \
            d_[2 * i_ + 1] = arm_dot16(vdupq_n_s32(0), w1_, vld1q_s8((a) + 32 * i_ + 16));         \
        }                                                                                          \
        for (int k_ = 0; k_ < 4; k_++)                                                             \
            (sub)[k_] = arm_hsum4(d_[4 * k_], d_[4 * k_ + 1], d_[4 * k_ + 2], d_[4 * k_ + 3]);     \
    } while (0)

/* Q4_K/Q5_K 6-bit scales and mins from 12 bytes: 8 scale bytes, 8 min
 * bytes (FORMATS.md §2.3, get_scale_min_k4). */
ARM_INLINE void k4_scales(const uint8_t *s, uint8_t sc[8], uint8_t mn[8])
{
    uint32_t a = arm_ld32(s), b = arm_ld32(s + 4), c = arm_ld32(s + 8);
    uint32_t v[4] = {a & 0x3f3f3f3fu, (c & 0x0f0f0f0fu) | ((a >> 2) & 0x30303030u),
                     b & 0x3f3f3f3fu, ((c >> 4) & 0x0f0f0f0fu) | ((b >> 2) & 0x30303030u)};
    memcpy(sc, v, 8);
    memcpy(mn, v + 2, 8);
}

/* Q3_K: the 16 6-bit scales, biased (0..63), as 16 bytes. */
ARM_INLINE uint8x16_t q3_scales(const uint8_t *t)
{
    uint32_t a = arm_ld32(t), b = arm_ld32(t + 4), c = arm_ld32(t + 8);
    uint32_t v[4] = {(a & 0x0f0f0f0fu) | ((c & 0x03030303u) << 4),
                     (b & 0x0f0f0f0fu) | (((c >> 2) & 0x03030303u) << 4),
                     ((a >> 4) & 0x0f0f0f0fu) | (((c >> 4) & 0x03030303u) << 4),
                     ((b >> 4) & 0x0f0f0f0fu) | (((c >> 6) & 0x03030303u) << 4)};
    return vreinterpretq_u8_u32(vld1q_u32(v));
}

/* Q4_K / Q5_K: per super-block isum = Σ_j sc_j·Σ q·a over the 8 sub-blocks of
 * 32 (groups 2j, 2j+1), msum = Σ_j m_j·(bsums[2j] + bsums[2j+1]). */
ARM_INLINE void k4_sums(const uint8_t *scales, const int32x4_t sub[4], const struct block_q8_K *y,
                        int32_t *isum, int32_t *msum)
{
    uint8_t sc[8], mn[8];
    k4_scales(scales, sc, mn);
    /* each sub-block scale twice, one per group */
    uint8x16_t sc2 = vcombine_u8(vld1_u8(sc), vld1_u8(sc));
    uint8x16_t scd = vzip1q_u8(sc2, sc2);
    int32x4_t scw[4];
    widen16(scd, false, scw);
    *isum = mac16(sub, scw);
    int32x4_t blo, bhi;
    bsums_pairs(y, &blo, &bhi);
    int16x8_t m = vreinterpretq_s16_u16(vmovl_u8(vld1_u8(mn)));
    int32x4_t t = vmulq_s32(blo, vmovl_s16(vget_low_s16(m)));
    t = vmlaq_s32(t, bhi, vmovl_high_s16(m));
    *msum = vaddvq_s32(t);
}

static void q2_K_dot(int64_t n, float *s, const void *vx, const void *vy)
{
    const struct block_q2_K *x = vx;
    const struct block_q8_K *y = vy;
    float sum = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const uint8_t *qs = x[i].qs;
#define Q2_MAKE(i_, w0, w1)                                                                        \
    crumbs(vld1q_u8(qs + 32 * ((i_) / 4)), vld1q_u8(qs + 32 * ((i_) / 4) + 16), (i_) % 4, w0, w1)
        int32x4_t sub[4];
        GROUP_SUMS(sub, y[i].qs, Q2_MAKE);
#undef Q2_MAKE
        uint8x16_t sb = vld1q_u8(x[i].scales);
        int32x4_t sc[4], mn[4], bs[4];
        widen16(vandq_u8(sb, vdupq_n_u8(15)), false, sc);
        widen16(vshrq_n_u8(sb, 4), false, mn);
        int16x8_t b0 = vld1q_s16(y[i].bsums), b1 = vld1q_s16(y[i].bsums + 8);
        bs[0] = vmovl_s16(vget_low_s16(b0));
        bs[1] = vmovl_high_s16(b0);
        bs[2] = vmovl_s16(vget_low_s16(b1));
        bs[3] = vmovl_high_s16(b1);
        int32_t isum = mac16(sub, sc), msum = mac16(bs, mn);
        float dall = y[i].d * arm_h2f(x[i].d);
        float dmin = y[i].d * arm_h2f(x[i].dmin);
        sum += dall * (float)isum - dmin * (float)msum;
    }
    *s = sum;
}

static void q3_K_dot(int64_t n, float *s, const void *vx, const void *vy)
{
    const struct block_q3_K *x = vx;
    const struct block_q8_K *y = vy;
    float sum = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const uint8_t *qs = x[i].qs;
        const uint8x16_t hm0 = vld1q_u8(x[i].hmask), hm1 = vld1q_u8(x[i].hmask + 16);
        /* q = q2 − 4 unless the high bit (bit e/32 of hmask[e%32]) is set */
#define Q3_MAKE(i_, w0, w1)                                                                        \
    do {                                                                                           \
        crumbs(vld1q_u8(qs + 32 * ((i_) / 4)), vld1q_u8(qs + 32 * ((i_) / 4) + 16), (i_) % 4, w0,  \
               w1);                                                                                \
        uint8x16_t bit_ = vdupq_n_u8((uint8_t)(1u << (i_)));                                       \
        uint8x16_t four_ = vdupq_n_u8(4);                                                          \
        *(w0) = vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(vreinterpretq_u8_s8(*(w0)),                  \
                                                      vandq_u8(vtstq_u8(hm0, bit_), four_))),      \
                         vdupq_n_s8(4));                                                           \
        *(w1) = vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(vreinterpretq_u8_s8(*(w1)),                  \
                                                      vandq_u8(vtstq_u8(hm1, bit_), four_))),      \
                         vdupq_n_s8(4));                                                           \
    } while (0)
        int32x4_t sub[4];
        GROUP_SUMS(sub, y[i].qs, Q3_MAKE);
#undef Q3_MAKE
        int32x4_t sc[4];
        widen16(q3_scales(x[i].scales), false, sc);
        for (int k = 0; k < 4; k++)
            sc[k] = vsubq_s32(sc[k], vdupq_n_s32(32));
        int32_t isum = mac16(sub, sc);
        sum += (arm_h2f(x[i].d) * y[i].d) * (float)isum;
    }
    *s = sum;
}

/* Q4_K sub-block i (elements 32i..32i+31): the low nibbles of the 32-byte
 * group i/2 when i is even, the high ones when odd. */
ARM_INLINE void nibbles(const uint8_t *qs, int i, int8x16_t *w0, int8x16_t *w1)
{
    uint8x16_t b0 = vld1q_u8(qs + 32 * (i / 2)), b1 = vld1q_u8(qs + 32 * (i / 2) + 16);
    if (i % 2) {
        b0 = vshrq_n_u8(b0, 4);
        b1 = vshrq_n_u8(b1, 4);
    } else {
        b0 = vandq_u8(b0, vdupq_n_u8(15));
        b1 = vandq_u8(b1, vdupq_n_u8(15));
    }
    *w0 = vreinterpretq_s8_u8(b0);
    *w1 = vreinterpretq_s8_u8(b1);
}

static void q4_K_dot(int64_t n, float *s, const void *vx, const void *vy)
{
    const struct block_q4_K *x = vx;
    const struct block_q8_K *y = vy;
    float sum = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const uint8_t *qs = x[i].qs;
#define Q4_MAKE(i_, w0, w1) nibbles(qs, i_, w0, w1)
        int32x4_t sub[4];
        GROUP_SUMS(sub, y[i].qs, Q4_MAKE);
#undef Q4_MAKE
        int32_t isum, msum;
        k4_sums(x[i].scales, sub, &y[i], &isum, &msum);
        float d = arm_h2f(x[i].d) * y[i].d;
        float dm = arm_h2f(x[i].dmin) * y[i].d;
        sum += d * (float)isum - dm * (float)msum;
    }
    *s = sum;
}

static void q5_K_dot(int64_t n, float *s, const void *vx, const void *vy)
{
    const struct block_q5_K *x = vx;
    const struct block_q8_K *y = vy;
    float sum = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const uint8_t *qs = x[i].qs;
        const uint8x16_t qh0 = vld1q_u8(x[i].qh), qh1 = vld1q_u8(x[i].qh + 16);
        /* the 5th bit of element e is bit e/32 of qh[e%32] */
#define Q5_MAKE(i_, w0, w1)                                                                        \
    do {                                                                                           \
        nibbles(qs, i_, w0, w1);                                                                   \
        uint8x16_t bit_ = vdupq_n_u8((uint8_t)(1u << (i_))), sixteen_ = vdupq_n_u8(16);            \
        *(w0) = vreinterpretq_s8_u8(vorrq_u8(vreinterpretq_u8_s8(*(w0)),                           \
                                             vandq_u8(vtstq_u8(qh0, bit_), sixteen_)));            \
        *(w1) = vreinterpretq_s8_u8(vorrq_u8(vreinterpretq_u8_s8(*(w1)),                           \
                                             vandq_u8(vtstq_u8(qh1, bit_), sixteen_)));            \
    } while (0)
        int32x4_t sub[4];
        GROUP_SUMS(sub, y[i].qs, Q5_MAKE);
#undef Q5_MAKE
        int32_t isum, msum;
        k4_sums(x[i].scales, sub, &y[i], &isum, &msum);
        float d = arm_h2f(x[i].d) * y[i].d;
        float dm = arm_h2f(x[i].dmin) * y[i].d;
        sum += d * (float)isum - dm * (float)msum;
    }
    *s = sum;
}

/* Q6_K elements 32i..32i+31 (h = i/4, g = i%4) as signed q − 32: low 4 bits
 * from ql[64h + 32(g&1) + l] (low nibble for g < 2), high 2 bits from bit
 * pair g of qh[32h + l]. */
ARM_INLINE void q6_quants(const struct block_q6_K *b, int i, int8x16_t *w0, int8x16_t *w1)
{
    int h = i / 4, g = i % 4;
    const uint8_t *ql = b->ql + 64 * h + 32 * (g & 1), *qh = b->qh + 32 * h;
    uint8x16_t l0 = vld1q_u8(ql), l1 = vld1q_u8(ql + 16);
    if (g < 2) {
        l0 = vandq_u8(l0, vdupq_n_u8(15));
        l1 = vandq_u8(l1, vdupq_n_u8(15));
    } else {
        l0 = vshrq_n_u8(l0, 4);
        l1 = vshrq_n_u8(l1, 4);
    }
    int8x16_t sh = vdupq_n_s8((int8_t)(4 - 2 * g)); /* bit pair g to bits 4..5 */
    uint8x16_t h0 = vandq_u8(vshlq_u8(vld1q_u8(qh), sh), vdupq_n_u8(0x30));
    uint8x16_t h1 = vandq_u8(vshlq_u8(vld1q_u8(qh + 16), sh), vdupq_n_u8(0x30));
    *w0 = vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(l0, h0)), vdupq_n_s8(32));
    *w1 = vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(l1, h1)), vdupq_n_s8(32));
}

static void q6_K_dot(int64_t n, float *s, const void *vx, const void *vy)
{
    const struct block_q6_K *x = vx;
    const struct block_q8_K *y = vy;
    float sum = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
#define Q6_MAKE(i_, w0, w1) q6_quants(&x[i], i_, w0, w1)
        int32x4_t sub[4];
        GROUP_SUMS(sub, y[i].qs, Q6_MAKE);
#undef Q6_MAKE
        int32x4_t sc[4];
        widen16(vreinterpretq_u8_s8(vld1q_s8(x[i].scales)), true, sc);
        int32_t isum = mac16(sub, sc);
        sum += (arm_h2f(x[i].d) * y[i].d) * (float)isum;
    }
    *s = sum;
}

/* ---- registration ------------------------------------------------------------------- */

/* Sets the vec_dot of every integer type this header implements. */
static void qdot_register(struct quant_kernels tab[HR_TYPE_COUNT])
{
    tab[HR_TYPE_Q4_0].vec_dot = q4_0_dot;
    tab[HR_TYPE_Q4_1].vec_dot = q4_1_dot;
    tab[HR_TYPE_Q5_0].vec_dot = q5_0_dot;
    tab[HR_TYPE_Q5_1].vec_dot = q5_1_dot;
    tab[HR_TYPE_Q8_0].vec_dot = q8_0_dot;
    tab[HR_TYPE_Q2_K].vec_dot = q2_K_dot;
    tab[HR_TYPE_Q3_K].vec_dot = q3_K_dot;
    tab[HR_TYPE_Q4_K].vec_dot = q4_K_dot;
    tab[HR_TYPE_Q5_K].vec_dot = q5_K_dot;
    tab[HR_TYPE_Q6_K].vec_dot = q6_K_dot;
}

#endif
