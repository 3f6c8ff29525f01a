/*
 * neon_qdot.h — the integer dot products and matrix tiles of the aarch64
 * levels: legacy block quants (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 × Q8_0/Q8_1
 * activations) and K-quants (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K × Q8_K). Written
 * once and compiled
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
 * Tiles (quant.h's gemm; no repacked layout): legacy 4 weight rows × up to
 * 4 activation rows, lane r of one accumulator per activation row holding
 * row r's running sum, each block's weights unpacked once for all
 * activation rows; K-quants 4 × 4, each weight row's super-block unpacked
 * once (struct kblock) for all activation rows. Every output is updated
 * block by block with vec_dot's expression, so tiles and vec_dot agree bit
 * for bit. Speed is unmeasured: the only aarch64 here is qemu-user.
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

#define QMR 4 /* legacy tile: weight rows (one per lane) */
#define QNC 4 /* legacy tile: activation rows */

/* One tile: nr (<= QMR) weight rows × nc activation rows. Lane r of acc[c]
 * is the reference's running sum for (row r, activation c), updated block
 * by block with its float expression (lane-wise IEEE operations round as
 * the scalar ones do), so every output is vec_dot's, bit for bit. A block's
 * weights are unpacked once for all nc activation rows; rows >= nr repeat
 * row nr − 1 and are not stored. */
ARM_INLINE void qtile(const enum qkind k, const int nc, int64_t n, float *y, size_t ldy,
                      const void *w, size_t ws, int nr, const void *x, size_t xs)
{
    const size_t wb = w_bytes(k), xb = x_bytes(k);
    const uint8_t *wr[QMR];
    for (int r = 0; r < QMR; r++)
        wr[r] = (const uint8_t *)w + (size_t)(r < nr ? r : nr - 1) * ws;
    float32x4_t acc[QNC];
    for (int c = 0; c < nc; c++)
        acc[c] = vdupq_n_f32(0);
    for (int64_t b = 0; b < n / 32; b++) {
        const size_t wo = (size_t)b * wb;
        int8x16_t lo[QMR], hi[QMR];
        uint16_t dh[QMR], mh[QMR];
        for (int r = 0; r < QMR; r++) {
            wquants(k, wr[r] + wo, &lo[r], &hi[r]);
            dh[r] = arm_ld16(wr[r] + wo);
            mh[r] = has_m(k) ? arm_ld16(wr[r] + wo + 2) : 0;
        }
        const float32x4_t dw = vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(dh)));
        const float32x4_t mw = vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(mh)));
        for (int c = 0; c < nc; c++) {
            const uint8_t *px = (const uint8_t *)x + (size_t)c * xs + (size_t)b * xb;
            const int8_t *a = (const int8_t *)(px + x_qs(k));
            const int8x16_t a0 = vld1q_s8(a), a1 = vld1q_s8(a + 16);
            int32x4_t p[QMR];
            for (int r = 0; r < QMR; r++)
                p[r] = arm_dot16(arm_dot16(vdupq_n_s32(0), lo[r], a0), hi[r], a1);
            int32x4_t isum = arm_hsum4(p[0], p[1], p[2], p[3]);
            float32x4_t v = vmulq_f32(vmulq_n_f32(dw, arm_h2f(arm_ld16(px))), vcvtq_f32_s32(isum));
            if (has_m(k)) v = vaddq_f32(v, vmulq_n_f32(mw, arm_h2f(arm_ld16(px + 2))));
            acc[c] = vaddq_f32(acc[c], v);
        }
    }
    for (int c = 0; c < nc; c++) {
        float t[QMR];
        vst1q_f32(t, acc[c]);
        memcpy(y + (size_t)c * ldy, t, (size_t)nr * sizeof *y);
    }
}

#define QGEMM(name, kind)                                                                          \
    static void name##_gemm(int64_t n, float *y, size_t ldy, const void *w, size_t ws, int nr,     \
                            const void *x, size_t xs, int nc)                                      \
    {                                                                                              \
        switch (nc) {                                                                              \
        case 1:                                                                                    \
            qtile(kind, 1, n, y, ldy, w, ws, nr, x, xs);                                           \
            break;                                                                                 \
        case 2:                                                                                    \
            qtile(kind, 2, n, y, ldy, w, ws, nr, x, xs);                                           \
            break;                                                                                 \
        case 3:                                                                                    \
            qtile(kind, 3, n, y, ldy, w, ws, nr, x, xs);                                           \
            break;                                                                                 \
        default:                                                                                   \
            qtile(kind, 4, n, y, ldy, w, ws, nr, x, xs);                                           \
            break;                                                                                 \
        }                                                                                          \
    }

QGEMM(q4_0, K_Q4_0)
QGEMM(q4_1, K_Q4_1)
QGEMM(q5_0, K_Q5_0)
QGEMM(q5_1, K_Q5_1)
QGEMM(q8_0, K_Q8_0)

/* ---- K-quants × Q8_K ------------------------------------------------------------------ */

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

/* Q2_K/Q3_K: the 2-bit fields g of 32 bytes (q0, q1), as 32 signed bytes. */
ARM_INLINE void crumbs(uint8x16_t q0, uint8x16_t q1, int g, int8x16_t *w0, int8x16_t *w1)
{
    int8x16_t sh = vdupq_n_s8((int8_t)(-2 * g));
    *w0 = vreinterpretq_s8_u8(vandq_u8(vshlq_u8(q0, sh), vdupq_n_u8(3)));
    *w1 = vreinterpretq_s8_u8(vandq_u8(vshlq_u8(q1, sh), vdupq_n_u8(3)));
}

/* Q4_K/Q5_K sub-block i (elements 32i..32i+31): the low nibbles of the
 * 32-byte group i/2 when i is even, the high ones when odd. */
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

/* Sets the bits of 32 quants whose flag (bit i of the 32 bytes m0, m1) is
 * set to `add` (Q3_K: 4, Q5_K: 16; the quants are below it). */
ARM_INLINE void flag_bits(uint8x16_t m0, uint8x16_t m1, int i, uint8_t add, int8x16_t *w0,
                          int8x16_t *w1)
{
    uint8x16_t bit = vdupq_n_u8((uint8_t)(1u << i)), v = vdupq_n_u8(add);
    *w0 = vreinterpretq_s8_u8(vorrq_u8(vreinterpretq_u8_s8(*w0), vandq_u8(vtstq_u8(m0, bit), v)));
    *w1 = vreinterpretq_s8_u8(vorrq_u8(vreinterpretq_u8_s8(*w1), vandq_u8(vtstq_u8(m1, bit), v)));
}

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

/* 8 bytes, each twice (a 32-element sub-block is two 16-element groups). */
ARM_INLINE uint8x16_t dup8(const uint8_t v[8])
{
    uint8x16_t t = vcombine_u8(vld1_u8(v), vld1_u8(v));
    return vzip1q_u8(t, t);
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

/* Q6_K elements 32i..32i+31 (h = i/4, g = i%4), 6-bit, unsigned: low 4 bits
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
    *w0 = vreinterpretq_s8_u8(vorrq_u8(l0, h0));
    *w1 = vreinterpretq_s8_u8(vorrq_u8(l1, h1));
}

ARM_INLINE bool k_has_min(const int T)
{
    return T == HR_TYPE_Q2_K || T == HR_TYPE_Q4_K || T == HR_TYPE_Q5_K;
}

ARM_INLINE size_t k_bytes(const int T)
{
    return T == HR_TYPE_Q2_K   ? sizeof(struct block_q2_K)
           : T == HR_TYPE_Q3_K ? sizeof(struct block_q3_K)
           : T == HR_TYPE_Q4_K ? sizeof(struct block_q4_K)
           : T == HR_TYPE_Q5_K ? sizeof(struct block_q5_K)
                               : sizeof(struct block_q6_K);
}

/* One super-block of weights, unpacked: w[g] = the 16 signed quants of
 * group g (elements 16g..16g+15, the format's offset subtracted), sc[] the
 * integer scale of each group, mn[] the coefficient of bsums[g] in the min
 * term (Q2_K: the 4-bit min; Q4_K/Q5_K: the sub-block's min, for both of
 * its groups), d and dmin the fp16 super-scales as floats. */
struct kblock {
    int8x16_t w[16];
    int32x4_t sc[4], mn[4];
    float d, dmin;
};

ARM_INLINE void k_unpack(const int T, const uint8_t *blk, struct kblock *kb)
{
    switch (T) {
    case HR_TYPE_Q2_K: {
        const struct block_q2_K *b = (const struct block_q2_K *)blk;
        for (int i = 0; i < 8; i++)
            crumbs(vld1q_u8(b->qs + 32 * (i / 4)), vld1q_u8(b->qs + 32 * (i / 4) + 16), i % 4,
                   &kb->w[2 * i], &kb->w[2 * i + 1]);
        uint8x16_t s = vld1q_u8(b->scales);
        widen16(vandq_u8(s, vdupq_n_u8(15)), false, kb->sc);
        widen16(vshrq_n_u8(s, 4), false, kb->mn);
        kb->d = arm_h2f(b->d);
        kb->dmin = arm_h2f(b->dmin);
        break;
    }
    case HR_TYPE_Q3_K: {
        /* q = q2 − 4 unless the high bit (bit e/32 of hmask[e%32]) is set */
        const struct block_q3_K *b = (const struct block_q3_K *)blk;
        uint8x16_t m0 = vld1q_u8(b->hmask), m1 = vld1q_u8(b->hmask + 16);
        for (int i = 0; i < 8; i++) {
            int8x16_t *w = &kb->w[2 * i];
            crumbs(vld1q_u8(b->qs + 32 * (i / 4)), vld1q_u8(b->qs + 32 * (i / 4) + 16), i % 4, w,
                   w + 1);
            flag_bits(m0, m1, i, 4, w, w + 1);
            w[0] = vsubq_s8(w[0], vdupq_n_s8(4));
            w[1] = vsubq_s8(w[1], vdupq_n_s8(4));
        }
        widen16(q3_scales(b->scales), false, kb->sc);
        for (int j = 0; j < 4; j++)
            kb->sc[j] = vsubq_s32(kb->sc[j], vdupq_n_s32(32));
        kb->d = arm_h2f(b->d);
        kb->dmin = 0;
        break;
    }
    case HR_TYPE_Q4_K:
    case HR_TYPE_Q5_K: {
        const uint8_t *qs, *scales;
        uint16_t d, dmin;
        if (T == HR_TYPE_Q4_K) {
            const struct block_q4_K *b = (const struct block_q4_K *)blk;
            qs = b->qs;
            scales = b->scales;
            d = b->d;
            dmin = b->dmin;
        } else {
            const struct block_q5_K *b = (const struct block_q5_K *)blk;
            qs = b->qs;
            scales = b->scales;
            d = b->d;
            dmin = b->dmin;
        }
        for (int i = 0; i < 8; i++)
            nibbles(qs, i, &kb->w[2 * i], &kb->w[2 * i + 1]);
        if (T == HR_TYPE_Q5_K) { /* the 5th bit of element e: bit e/32 of qh[e%32] */
            const struct block_q5_K *b = (const struct block_q5_K *)blk;
            uint8x16_t h0 = vld1q_u8(b->qh), h1 = vld1q_u8(b->qh + 16);
            for (int i = 0; i < 8; i++)
                flag_bits(h0, h1, i, 16, &kb->w[2 * i], &kb->w[2 * i + 1]);
        }
        uint8_t sc[8], mn[8];
        k4_scales(scales, sc, mn);
        widen16(dup8(sc), false, kb->sc);
        widen16(dup8(mn), false, kb->mn);
        kb->d = arm_h2f(d);
        kb->dmin = arm_h2f(dmin);
        break;
    }
    default: { /* Q6_K: q − 32 */
        const struct block_q6_K *b = (const struct block_q6_K *)blk;
        for (int i = 0; i < 8; i++) {
            int8x16_t *w = &kb->w[2 * i];
            q6_quants(b, i, w, w + 1);
            w[0] = vsubq_s8(w[0], vdupq_n_s8(32));
            w[1] = vsubq_s8(w[1], vdupq_n_s8(32));
        }
        widen16(vreinterpretq_u8_s8(vld1q_s8(b->scales)), true, kb->sc);
        kb->d = arm_h2f(b->d);
        kb->dmin = 0;
        break;
    }
    }
}

/* The reference's term of one super-block against one Q8_K block: the
 * exact isum = Σ_g sc_g·Σ q·a and msum = Σ_g mn_g·bsums_g, then
 * (d·d_a)·isum − (dmin·d_a)·msum, or (d·d_a)·isum without mins. */
ARM_INLINE float k_term(const int T, const struct kblock *kb, const struct block_q8_K *y)
{
    int32x4_t p[16], sub[4];
    for (int g = 0; g < 16; g++)
        p[g] = arm_dot16(vdupq_n_s32(0), kb->w[g], vld1q_s8(y->qs + 16 * g));
    for (int j = 0; j < 4; j++)
        sub[j] = arm_hsum4(p[4 * j], p[4 * j + 1], p[4 * j + 2], p[4 * j + 3]);
    int32_t isum = mac16(sub, kb->sc);
    if (!k_has_min(T)) return (kb->d * y->d) * (float)isum;
    int16x8_t b0 = vld1q_s16(y->bsums), b1 = vld1q_s16(y->bsums + 8);
    int32x4_t bs[4] = {vmovl_s16(vget_low_s16(b0)), vmovl_high_s16(b0),
                       vmovl_s16(vget_low_s16(b1)), vmovl_high_s16(b1)};
    int32_t msum = mac16(bs, kb->mn);
    float d = kb->d * y->d, dm = kb->dmin * y->d;
    return d * (float)isum - dm * (float)msum;
}

ARM_INLINE void kdot(const int T, int64_t n, float *s, const void *vx, const void *vy)
{
    const uint8_t *x = vx;
    const struct block_q8_K *y = vy;
    float sum = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        struct kblock kb;
        k_unpack(T, x + (size_t)i * k_bytes(T), &kb);
        sum += k_term(T, &kb, &y[i]);
    }
    *s = sum;
}

#define KMR 4 /* K tile: weight rows */
#define KNC 4 /* K tile: activation rows */

/* One tile: each weight row's super-block is unpacked once for all nc
 * activation rows; every output is its own running sum, updated super-block
 * by super-block as vec_dot does (the same bits). */
ARM_INLINE void ktile(const int T, int64_t n, float *y, size_t ldy, const void *w, size_t ws,
                      int nr, const void *x, size_t xs, int nc)
{
    float acc[KMR][KNC] = {{0}};
    for (int64_t i = 0; i < n / QK_K; i++)
        for (int r = 0; r < nr; r++) {
            struct kblock kb;
            k_unpack(T, (const uint8_t *)w + (size_t)r * ws + (size_t)i * k_bytes(T), &kb);
            for (int c = 0; c < nc; c++) {
                const struct block_q8_K *yc =
                    (const struct block_q8_K *)((const uint8_t *)x + (size_t)c * xs);
                acc[r][c] += k_term(T, &kb, &yc[i]);
            }
        }
    for (int c = 0; c < nc; c++)
        for (int r = 0; r < nr; r++)
            y[(size_t)c * ldy + (size_t)r] = acc[r][c];
}

#define KKERNELS(name, T)                                                                          \
    static void name##_dot(int64_t n, float *s, const void *vx, const void *vy)                    \
    {                                                                                              \
        kdot(T, n, s, vx, vy);                                                                     \
    }                                                                                              \
    static void name##_gemm(int64_t n, float *y, size_t ldy, const void *w, size_t ws, int nr,     \
                            const void *x, size_t xs, int nc)                                      \
    {                                                                                              \
        ktile(T, n, y, ldy, w, ws, nr, x, xs, nc);                                                 \
    }

KKERNELS(q2_K, HR_TYPE_Q2_K)
KKERNELS(q3_K, HR_TYPE_Q3_K)
KKERNELS(q4_K, HR_TYPE_Q4_K)
KKERNELS(q5_K, HR_TYPE_Q5_K)
KKERNELS(q6_K, HR_TYPE_Q6_K)

/* ---- registration ------------------------------------------------------------------- */

static void set(struct quant_kernels *k, quant_vec_dot_fn dot, quant_gemm_fn gemm, int mr, int nc)
{
    k->vec_dot = dot;
    k->gemm = gemm;
    k->gemm_mr = mr;
    k->gemm_nc = nc;
}

/* Sets vec_dot and gemm of every integer type this header implements. */
static void qdot_register(struct quant_kernels tab[HR_TYPE_COUNT])
{
    set(&tab[HR_TYPE_Q4_0], q4_0_dot, q4_0_gemm, QMR, QNC);
    set(&tab[HR_TYPE_Q4_1], q4_1_dot, q4_1_gemm, QMR, QNC);
    set(&tab[HR_TYPE_Q5_0], q5_0_dot, q5_0_gemm, QMR, QNC);
    set(&tab[HR_TYPE_Q5_1], q5_1_dot, q5_1_gemm, QMR, QNC);
    set(&tab[HR_TYPE_Q8_0], q8_0_dot, q8_0_gemm, QMR, QNC);
    set(&tab[HR_TYPE_Q2_K], q2_K_dot, q2_K_gemm, KMR, KNC);
    set(&tab[HR_TYPE_Q3_K], q3_K_dot, q3_K_gemm, KMR, KNC);
    set(&tab[HR_TYPE_Q4_K], q4_K_dot, q4_K_gemm, KMR, KNC);
    set(&tab[HR_TYPE_Q5_K], q5_K_dot, q5_K_gemm, KMR, KNC);
    set(&tab[HR_TYPE_Q6_K], q6_K_dot, q6_K_gemm, KMR, KNC);
}

#endif
