/*
 * quant.c — scalar reference kernels of the half types (F32, F16, BF16) and
 * the legacy 32-element block quants (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1),
 * and the quant_kernels() table for every type hearth computes with.
 *
 * The quantizers are llama.cpp's reference (`_ref`) quantizers restated from
 * FORMATS.md §2.4: run on the same f32 data they give the same bytes, which
 * the tests check against files llama.cpp wrote. Two details carry that
 * bit-exactness: the quants are computed with the unrounded fp32 scale (only
 * the stored copy is fp16), and Q4_x/Q5_x truncate x·id + 8.5 (resp. + 0.5)
 * toward zero while Q8_x use roundf (ties away from zero).
 *
 * The dot products follow FORMATS.md §3: integer sums inside each block,
 * then one float multiply-add per block with the fp16 scales widened to fp32.
 * These loops are the reference the SIMD kernels in core/arch/ are tested
 * against; they allocate nothing.
 */
#include "quant.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#include "quant_impl.h"

float hr_fp16_to_fp32(uint16_t h)
{
    return quant_f16_to_f32(h);
}

uint16_t hr_fp32_to_fp16(float f)
{
    return quant_f32_to_f16(f);
}

float hr_bf16_to_fp32(uint16_t h)
{
    return quant_bf16_to_f32(h);
}

uint16_t hr_fp32_to_bf16(float f)
{
    return quant_f32_to_bf16(f);
}

/* ---- F32, F16, BF16 --------------------------------------------------------- */

static void f32_to_float(const void *src, float *dst, int64_t n)
{
    memcpy(dst, src, (size_t)n * sizeof(float));
}

static void f32_from_float(const float *src, void *dst, int64_t n)
{
    memcpy(dst, src, (size_t)n * sizeof(float));
}

/* Products in fp32 (as the reference's scalar path), sum in double. */
static void f32_vec_dot(int64_t n, float *s, const void *vx, const void *vy)
{
    const float *x = vx, *y = vy;
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++)
        sum += (double)(x[i] * y[i]);
    *s = (float)sum;
}

static void f16_to_float(const void *src, float *dst, int64_t n)
{
    const uint16_t *h = src;
    for (int64_t i = 0; i < n; i++)
        dst[i] = quant_f16_to_f32(h[i]);
}

static void f16_from_float(const float *src, void *dst, int64_t n)
{
    uint16_t *h = dst;
    for (int64_t i = 0; i < n; i++)
        h[i] = quant_f32_to_f16(src[i]);
}

static void f16_vec_dot(int64_t n, float *s, const void *vx, const void *vy)
{
    const uint16_t *x = vx, *y = vy;
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++)
        sum += (double)(quant_f16_to_f32(x[i]) * quant_f16_to_f32(y[i]));
    *s = (float)sum;
}

static void bf16_to_float(const void *src, float *dst, int64_t n)
{
    const uint16_t *h = src;
    for (int64_t i = 0; i < n; i++)
        dst[i] = quant_bf16_to_f32(h[i]);
}

static void bf16_from_float(const float *src, void *dst, int64_t n)
{
    uint16_t *h = dst;
    for (int64_t i = 0; i < n; i++)
        h[i] = quant_f32_to_bf16(src[i]);
}

static void bf16_vec_dot(int64_t n, float *s, const void *vx, const void *vy)
{
    const uint16_t *x = vx, *y = vy;
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++)
        sum += (double)(quant_bf16_to_f32(x[i]) * quant_bf16_to_f32(y[i]));
    *s = (float)sum;
}

/* ---- helpers for the legacy quantizers ------------------------------------------ */

/* The reference converts v (>= −1 for any finite block) to an integer by
 * truncation and clamps it to hi. Written so that NaN or out-of-range values
 * (only from non-finite weights) give a defined result instead of UB. */
static inline int trunc_clamp(float v, int hi)
{
    if (!(v > 0.0f))
        return 0;
    if (v >= (float)hi)
        return hi;
    return (int)v;
}

/* roundf (ties away from zero) to int8; |v| <= 127·(1+ε) for finite blocks. */
static inline int8_t round_i8(float v)
{
    float r = roundf(v);
    if (!(r > -128.0f))
        return r <= -128.0f ? -128 : 0; /* NaN -> 0 */
    if (r > 127.0f)
        return 127;
    return (int8_t)r;
}

/* Signed value of largest magnitude; the first one wins ties (strict >). */
static inline float signed_absmax(const float *x, int n)
{
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < n; j++) {
        float a = fabsf(x[j]);
        if (amax < a) {
            amax = a;
            max = x[j];
        }
    }
    return max;
}

static inline void min_max(const float *x, int n, float *mn, float *mx)
{
    float lo = x[0], hi = x[0];
    for (int j = 1; j < n; j++) {
        if (x[j] < lo)
            lo = x[j];
        if (x[j] > hi)
            hi = x[j];
    }
    *mn = lo;
    *mx = hi;
}

static inline uint32_t load_u32le(const uint8_t b[4])
{
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static inline void store_u32le(uint8_t b[4], uint32_t v)
{
    b[0] = (uint8_t)v;
    b[1] = (uint8_t)(v >> 8);
    b[2] = (uint8_t)(v >> 16);
    b[3] = (uint8_t)(v >> 24);
}

/* ---- Q4_0 ---------------------------------------------------------------------- */

static void q4_0_to_float(const void *src, float *dst, int64_t n)
{
    const struct block_q4_0 *b = src;
    for (int64_t i = 0; i < n / QK4_0; i++, dst += QK4_0) {
        float d = quant_f16_to_f32(b[i].d);
        for (int j = 0; j < QK4_0 / 2; j++) {
            dst[j] = (float)((b[i].qs[j] & 15) - 8) * d;
            dst[j + 16] = (float)((b[i].qs[j] >> 4) - 8) * d;
        }
    }
}

static void q4_0_from_float(const float *src, void *dst, int64_t n)
{
    struct block_q4_0 *b = dst;
    for (int64_t i = 0; i < n / QK4_0; i++, src += QK4_0) {
        float d = signed_absmax(src, QK4_0) / -8.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = quant_f32_to_f16(d);
        for (int j = 0; j < QK4_0 / 2; j++) {
            int lo = trunc_clamp(src[j] * id + 8.5f, 15);
            int hi = trunc_clamp(src[j + 16] * id + 8.5f, 15);
            b[i].qs[j] = (uint8_t)(lo | hi << 4);
        }
    }
}

static void q4_0_vec_dot(int64_t n, float *s, const void *vx, const void *vy)
{
    const struct block_q4_0 *x = vx;
    const struct block_q8_0 *y = vy;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK4_0; i++) {
        int32_t isum = 0;
        for (int j = 0; j < QK4_0 / 2; j++) {
            isum += ((x[i].qs[j] & 15) - 8) * y[i].qs[j];
            isum += ((x[i].qs[j] >> 4) - 8) * y[i].qs[j + 16];
        }
        sum += (quant_f16_to_f32(x[i].d) * quant_f16_to_f32(y[i].d)) * (float)isum;
    }
    *s = sum;
}

/* ---- Q4_1 ---------------------------------------------------------------------- */

static void q4_1_to_float(const void *src, float *dst, int64_t n)
{
    const struct block_q4_1 *b = src;
    for (int64_t i = 0; i < n / QK4_1; i++, dst += QK4_1) {
        float d = quant_f16_to_f32(b[i].d);
        float m = quant_f16_to_f32(b[i].m);
        for (int j = 0; j < QK4_1 / 2; j++) {
            dst[j] = (float)(b[i].qs[j] & 15) * d + m;
            dst[j + 16] = (float)(b[i].qs[j] >> 4) * d + m;
        }
    }
}

static void q4_1_from_float(const float *src, void *dst, int64_t n)
{
    struct block_q4_1 *b = dst;
    for (int64_t i = 0; i < n / QK4_1; i++, src += QK4_1) {
        float mn, mx;
        min_max(src, QK4_1, &mn, &mx);
        float d = (mx - mn) / 15.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = quant_f32_to_f16(d);
        b[i].m = quant_f32_to_f16(mn);
        for (int j = 0; j < QK4_1 / 2; j++) {
            int lo = trunc_clamp((src[j] - mn) * id + 0.5f, 15);
            int hi = trunc_clamp((src[j + 16] - mn) * id + 0.5f, 15);
            b[i].qs[j] = (uint8_t)(lo | hi << 4);
        }
    }
}

static void q4_1_vec_dot(int64_t n, float *s, const void *vx, const void *vy)
{
    const struct block_q4_1 *x = vx;
    const struct block_q8_1 *y = vy;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK4_1; i++) {
        int32_t isum = 0;
        for (int j = 0; j < QK4_1 / 2; j++) {
            isum += (x[i].qs[j] & 15) * y[i].qs[j];
            isum += (x[i].qs[j] >> 4) * y[i].qs[j + 16];
        }
        /* Σ (n·d + m)·(qa·da) = d·da·Σ n·qa + m·(da·Σ qa), the last factor is s */
        sum += (quant_f16_to_f32(x[i].d) * quant_f16_to_f32(y[i].d)) * (float)isum +
               quant_f16_to_f32(x[i].m) * quant_f16_to_f32(y[i].s);
    }
    *s = sum;
}

/* ---- Q5_0 ---------------------------------------------------------------------- */

static void q5_0_to_float(const void *src, float *dst, int64_t n)
{
    const struct block_q5_0 *b = src;
    for (int64_t i = 0; i < n / QK5_0; i++, dst += QK5_0) {
        float d = quant_f16_to_f32(b[i].d);
        uint32_t h = load_u32le(b[i].qh);
        for (int j = 0; j < QK5_0 / 2; j++) {
            int lo = (b[i].qs[j] & 15) | (int)((h >> j) & 1) << 4;
            int hi = (b[i].qs[j] >> 4) | (int)((h >> (j + 16)) & 1) << 4;
            dst[j] = (float)(lo - 16) * d;
            dst[j + 16] = (float)(hi - 16) * d;
        }
    }
}

static void q5_0_from_float(const float *src, void *dst, int64_t n)
{
    struct block_q5_0 *b = dst;
    for (int64_t i = 0; i < n / QK5_0; i++, src += QK5_0) {
        float d = signed_absmax(src, QK5_0) / -16.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = quant_f32_to_f16(d);
        uint32_t h = 0;
        for (int j = 0; j < QK5_0 / 2; j++) {
            int lo = trunc_clamp(src[j] * id + 16.5f, 31);
            int hi = trunc_clamp(src[j + 16] * id + 16.5f, 31);
            b[i].qs[j] = (uint8_t)((lo & 15) | (hi & 15) << 4);
            h |= (uint32_t)(lo >> 4) << j;
            h |= (uint32_t)(hi >> 4) << (j + 16);
        }
        store_u32le(b[i].qh, h);
    }
}

static void q5_0_vec_dot(int64_t n, float *s, const void *vx, const void *vy)
{
    const struct block_q5_0 *x = vx;
    const struct block_q8_0 *y = vy;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK5_0; i++) {
        uint32_t h = load_u32le(x[i].qh);
        int32_t isum = 0;
        for (int j = 0; j < QK5_0 / 2; j++) {
            int lo = (x[i].qs[j] & 15) | (int)((h >> j) & 1) << 4;
            int hi = (x[i].qs[j] >> 4) | (int)((h >> (j + 16)) & 1) << 4;
            isum += (lo - 16) * y[i].qs[j] + (hi - 16) * y[i].qs[j + 16];
        }
        sum += (quant_f16_to_f32(x[i].d) * quant_f16_to_f32(y[i].d)) * (float)isum;
    }
    *s = sum;
}

/* ---- Q5_1 ---------------------------------------------------------------------- */

static void q5_1_to_float(const void *src, float *dst, int64_t n)
{
    const struct block_q5_1 *b = src;
    for (int64_t i = 0; i < n / QK5_1; i++, dst += QK5_1) {
        float d = quant_f16_to_f32(b[i].d);
        float m = quant_f16_to_f32(b[i].m);
        uint32_t h = load_u32le(b[i].qh);
        for (int j = 0; j < QK5_1 / 2; j++) {
            int lo = (b[i].qs[j] & 15) | (int)((h >> j) & 1) << 4;
            int hi = (b[i].qs[j] >> 4) | (int)((h >> (j + 16)) & 1) << 4;
            dst[j] = (float)lo * d + m;
            dst[j + 16] = (float)hi * d + m;
        }
    }
}

static void q5_1_from_float(const float *src, void *dst, int64_t n)
{
    struct block_q5_1 *b = dst;
    for (int64_t i = 0; i < n / QK5_1; i++, src += QK5_1) {
        float mn, mx;
        min_max(src, QK5_1, &mn, &mx);
        float d = (mx - mn) / 31.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = quant_f32_to_f16(d);
        b[i].m = quant_f32_to_f16(mn);
        uint32_t h = 0;
        for (int j = 0; j < QK5_1 / 2; j++) {
            /* the reference does not clamp; (x−min)·id <= 31·(1+ε) truncates
             * to at most 31 for any finite block */
            int lo = trunc_clamp((src[j] - mn) * id + 0.5f, 31);
            int hi = trunc_clamp((src[j + 16] - mn) * id + 0.5f, 31);
            b[i].qs[j] = (uint8_t)((lo & 15) | (hi & 15) << 4);
            h |= (uint32_t)(lo >> 4) << j;
            h |= (uint32_t)(hi >> 4) << (j + 16);
        }
        store_u32le(b[i].qh, h);
    }
}

static void q5_1_vec_dot(int64_t n, float *s, const void *vx, const void *vy)
{
    const struct block_q5_1 *x = vx;
    const struct block_q8_1 *y = vy;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK5_1; i++) {
        uint32_t h = load_u32le(x[i].qh);
        int32_t isum = 0;
        for (int j = 0; j < QK5_1 / 2; j++) {
            int lo = (x[i].qs[j] & 15) | (int)((h >> j) & 1) << 4;
            int hi = (x[i].qs[j] >> 4) | (int)((h >> (j + 16)) & 1) << 4;
            isum += lo * y[i].qs[j] + hi * y[i].qs[j + 16];
        }
        sum += (quant_f16_to_f32(x[i].d) * quant_f16_to_f32(y[i].d)) * (float)isum +
               quant_f16_to_f32(x[i].m) * quant_f16_to_f32(y[i].s);
    }
    *s = sum;
}

/* ---- Q8_0, Q8_1 ---------------------------------------------------------------- */

static float absmax(const float *x, int n)
{
    float amax = 0.0f;
    for (int j = 0; j < n; j++) {
        float a = fabsf(x[j]);
        if (a > amax)
            amax = a;
    }
    return amax;
}

static void q8_0_to_float(const void *src, float *dst, int64_t n)
{
    const struct block_q8_0 *b = src;
    for (int64_t i = 0; i < n / QK8_0; i++, dst += QK8_0) {
        float d = quant_f16_to_f32(b[i].d);
        for (int j = 0; j < QK8_0; j++)
            dst[j] = (float)b[i].qs[j] * d;
    }
}

static void q8_0_from_float(const float *src, void *dst, int64_t n)
{
    struct block_q8_0 *b = dst;
    for (int64_t i = 0; i < n / QK8_0; i++, src += QK8_0) {
        float d = absmax(src, QK8_0) / 127.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = quant_f32_to_f16(d);
        for (int j = 0; j < QK8_0; j++)
            b[i].qs[j] = round_i8(src[j] * id);
    }
}

static void q8_0_vec_dot(int64_t n, float *s, const void *vx, const void *vy)
{
    const struct block_q8_0 *x = vx;
    const struct block_q8_0 *y = vy;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        int32_t isum = 0;
        for (int j = 0; j < QK8_0; j++)
            isum += x[i].qs[j] * y[i].qs[j];
        sum += (quant_f16_to_f32(x[i].d) * quant_f16_to_f32(y[i].d)) * (float)isum;
    }
    *s = sum;
}

static void q8_1_to_float(const void *src, float *dst, int64_t n)
{
    const struct block_q8_1 *b = src;
    for (int64_t i = 0; i < n / QK8_1; i++, dst += QK8_1) {
        float d = quant_f16_to_f32(b[i].d);
        for (int j = 0; j < QK8_1; j++)
            dst[j] = (float)b[i].qs[j] * d;
    }
}

static void q8_1_from_float(const float *src, void *dst, int64_t n)
{
    struct block_q8_1 *b = dst;
    for (int64_t i = 0; i < n / QK8_1; i++, src += QK8_1) {
        float d = absmax(src, QK8_1) / 127.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        int sum = 0;
        b[i].d = quant_f32_to_f16(d);
        for (int j = 0; j < QK8_1; j++) {
            b[i].qs[j] = round_i8(src[j] * id);
            sum += b[i].qs[j];
        }
        b[i].s = quant_f32_to_f16((float)sum * d);
    }
}

/* The x86 activation quantizers of the reference (FORMATS.md §3): the scale
 * is applied as 127/amax and values round to nearest, ties to even. Using
 * them instead of the _ref quantizers makes quantized-model logits agree with
 * the reference to float rounding instead of to an occasional tie flip. */
static void q8_0_act_from_float(const float *src, void *dst, int64_t n)
{
    struct block_q8_0 *b = dst;
    for (int64_t i = 0; i < n / QK8_0; i++, src += QK8_0) {
        float amax = absmax(src, QK8_0);
        float id = amax != 0.0f ? 127.0f / amax : 0.0f;
        b[i].d = quant_f32_to_f16(amax / 127.0f);
        for (int j = 0; j < QK8_0; j++)
            b[i].qs[j] = (int8_t)nearbyintf(src[j] * id);
    }
}

static void q8_1_act_from_float(const float *src, void *dst, int64_t n)
{
    struct block_q8_1 *b = dst;
    for (int64_t i = 0; i < n / QK8_1; i++, src += QK8_1) {
        float amax = absmax(src, QK8_1);
        float d = amax / 127.0f;
        float id = amax != 0.0f ? 127.0f / amax : 0.0f;
        int sum = 0;
        b[i].d = quant_f32_to_f16(d);
        for (int j = 0; j < QK8_1; j++) {
            b[i].qs[j] = (int8_t)nearbyintf(src[j] * id);
            sum += b[i].qs[j];
        }
        b[i].s = quant_f32_to_f16((float)sum * d);
    }
}

/* ---- the table ------------------------------------------------------------------- */

static const struct quant_kernels kernels[HR_TYPE_COUNT] = {
    [HR_TYPE_F32] = {f32_to_float, f32_from_float, f32_vec_dot, HR_TYPE_F32},
    [HR_TYPE_F16] = {f16_to_float, f16_from_float, f16_vec_dot, HR_TYPE_F16},
    [HR_TYPE_BF16] = {bf16_to_float, bf16_from_float, bf16_vec_dot, HR_TYPE_BF16},
    [HR_TYPE_Q4_0] = {q4_0_to_float, q4_0_from_float, q4_0_vec_dot, HR_TYPE_Q8_0},
    [HR_TYPE_Q4_1] = {q4_1_to_float, q4_1_from_float, q4_1_vec_dot, HR_TYPE_Q8_1},
    [HR_TYPE_Q5_0] = {q5_0_to_float, q5_0_from_float, q5_0_vec_dot, HR_TYPE_Q8_0},
    [HR_TYPE_Q5_1] = {q5_1_to_float, q5_1_from_float, q5_1_vec_dot, HR_TYPE_Q8_1},
    [HR_TYPE_Q8_0] = {q8_0_to_float, q8_0_from_float, q8_0_vec_dot, HR_TYPE_Q8_0,
                      q8_0_act_from_float},
    [HR_TYPE_Q8_1] = {q8_1_to_float, q8_1_from_float, NULL, HR_TYPE_Q8_1, q8_1_act_from_float},
    [HR_TYPE_Q2_K] = {quant_q2_K_to_float, quant_q2_K_from_float, quant_q2_K_vec_dot,
                      HR_TYPE_Q8_K},
    [HR_TYPE_Q3_K] = {quant_q3_K_to_float, quant_q3_K_from_float, quant_q3_K_vec_dot,
                      HR_TYPE_Q8_K},
    [HR_TYPE_Q4_K] = {quant_q4_K_to_float, quant_q4_K_from_float, quant_q4_K_vec_dot,
                      HR_TYPE_Q8_K},
    [HR_TYPE_Q5_K] = {quant_q5_K_to_float, quant_q5_K_from_float, quant_q5_K_vec_dot,
                      HR_TYPE_Q8_K},
    [HR_TYPE_Q6_K] = {quant_q6_K_to_float, quant_q6_K_from_float, quant_q6_K_vec_dot,
                      HR_TYPE_Q8_K},
    [HR_TYPE_Q8_K] = {quant_q8_K_to_float, quant_q8_K_from_float, NULL, HR_TYPE_Q8_K},
};

const struct quant_kernels *quant_kernels_ref(uint32_t type)
{
    if (type >= HR_TYPE_COUNT || !kernels[type].to_float)
        return NULL;
    return &kernels[type];
}

quant_from_float_fn quant_act_from_float(uint32_t type)
{
    const struct quant_kernels *k = quant_kernels(type);
    if (!k)
        return NULL;
    return k->act_from_float ? k->act_from_float : k->from_float;
}

int64_t quant_quantize(uint32_t type, const float *src, void *dst, int64_t nrows,
                       int64_t n_per_row)
{
    const struct quant_kernels *k = quant_kernels_ref(type);
    const struct hr_type_info *t = hr_type_info(type);
    if (!k || !t || nrows < 0 || n_per_row <= 0 || n_per_row % t->blck != 0)
        return -EINVAL;
    size_t row = hr_row_size(type, n_per_row);
    uint8_t *out = dst;
    /* Row by row: the quantizers are row-independent, and this keeps n per
     * call small whatever the tensor size. */
    for (int64_t r = 0; r < nrows; r++)
        k->from_float(src + r * n_per_row, out + (size_t)r * row, n_per_row);
    return (int64_t)((size_t)nrows * row);
}
