/*
 * neon_vec.c — the vec.h primitives with AdvSIMD (both aarch64 levels).
 *
 * ARM. dot_f32 keeps the reference's order (vec.h): 64 elements per step
 * into 4×16 lanes by fused multiply-adds — each 16-lane vector of the
 * reference is four q registers, lane l in register l/4 — the four folded
 * (0+2) + (1+3), the 16 lanes folded by halves (8, 4, 2, 1), the tail in
 * double: the same bits as the scalar version. mad_f32/mad_f16 are one FMLA
 * per element (fmaf), scale_f32 one FMUL: the same bits too.
 */
#include "../../quant_impl.h"
#include "../vec.h"

#include <arm_neon.h>

float arch_neon_dot_f32(const float *a, const float *b, int64_t n)
{
    int64_t np = n & ~(int64_t)63;
    double sum = 0.0;
    if (np) {
        float32x4_t acc[4][4]; /* [16-lane vector j][quarter q] */
        for (int j = 0; j < 4; j++)
            for (int q = 0; q < 4; q++)
                acc[j][q] = vdupq_n_f32(0);
        for (int64_t i = 0; i < np; i += 64)
            for (int j = 0; j < 4; j++)
                for (int q = 0; q < 4; q++)
                    acc[j][q] = vfmaq_f32(acc[j][q], vld1q_f32(a + i + 16 * j + 4 * q),
                                          vld1q_f32(b + i + 16 * j + 4 * q));
        float32x4_t v[4];
        for (int q = 0; q < 4; q++)
            v[q] = vaddq_f32(vaddq_f32(acc[0][q], acc[2][q]), vaddq_f32(acc[1][q], acc[3][q]));
        v[0] = vaddq_f32(v[0], v[2]); /* w = 8 */
        v[1] = vaddq_f32(v[1], v[3]);
        v[0] = vaddq_f32(v[0], v[1]); /* w = 4 */
        float32x2_t h = vadd_f32(vget_low_f32(v[0]), vget_high_f32(v[0])); /* w = 2 */
        sum = vget_lane_f32(h, 0) + vget_lane_f32(h, 1);                     /* w = 1 */
    }
    for (int64_t i = np; i < n; i++)
        sum += (double)(a[i] * b[i]);
    return (float)sum;
}

void arch_neon_mad_f32(float *y, const float *x, float v, int64_t n)
{
    int64_t i = 0;
    for (; i + 4 <= n; i += 4)
        vst1q_f32(y + i, vfmaq_n_f32(vld1q_f32(y + i), vld1q_f32(x + i), v));
    for (; i < n; i++)
        y[i] = __builtin_fmaf(x[i], v, y[i]);
}

void arch_neon_scale_f32(float *y, float v, int64_t n)
{
    int64_t i = 0;
    for (; i + 4 <= n; i += 4)
        vst1q_f32(y + i, vmulq_n_f32(vld1q_f32(y + i), v));
    for (; i < n; i++)
        y[i] *= v;
}

void arch_neon_mad_f16(float *y, const uint16_t *x, float v, int64_t n)
{
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        float32x4_t xf = vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(x + i)));
        vst1q_f32(y + i, vfmaq_n_f32(vld1q_f32(y + i), xf, v));
    }
    for (; i < n; i++)
        y[i] = __builtin_fmaf(quant_f16_to_f32(x[i]), v, y[i]);
}
