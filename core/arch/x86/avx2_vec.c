/* avx2_vec.c — the vec.h primitives with AVX2+FMA: each 16-lane vector of
 * the reference order is a pair of ymm registers (low, high 8 lanes). */
#include "../vec.h"

#include <immintrin.h>

float arch_avx2_dot_f32(const float *a, const float *b, int64_t n)
{
    int64_t np = n & ~(int64_t)63;
    double sum = 0.0;
    if (np) {
        __m256 lo[4], hi[4];
        for (int j = 0; j < 4; j++)
            lo[j] = hi[j] = _mm256_setzero_ps();
        for (int64_t i = 0; i < np; i += 64)
            for (int j = 0; j < 4; j++) {
                lo[j] = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16 * j),
                                        _mm256_loadu_ps(b + i + 16 * j), lo[j]);
                hi[j] = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16 * j + 8),
                                        _mm256_loadu_ps(b + i + 16 * j + 8), hi[j]);
            }
        __m256 vl = _mm256_add_ps(_mm256_add_ps(lo[0], lo[2]), _mm256_add_ps(lo[1], lo[3]));
        __m256 vh = _mm256_add_ps(_mm256_add_ps(hi[0], hi[2]), _mm256_add_ps(hi[1], hi[3]));
        __m256 h8 = _mm256_add_ps(vl, vh); /* lane i + lane i+8 */
        __m128 h4 = _mm_add_ps(_mm256_castps256_ps128(h8), _mm256_extractf128_ps(h8, 1));
        __m128 h2 = _mm_add_ps(h4, _mm_movehl_ps(h4, h4));
        __m128 h1 = _mm_add_ss(h2, _mm_movehdup_ps(h2));
        sum = _mm_cvtss_f32(h1);
    }
    for (int64_t i = np; i < n; i++)
        sum += (double)(a[i] * b[i]);
    return (float)sum;
}

void arch_avx2_mad_f32(float *y, const float *x, float v, int64_t n)
{
    __m256 vv = _mm256_set1_ps(v);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(_mm256_loadu_ps(x + i), vv, _mm256_loadu_ps(y + i)));
    for (; i < n; i++)
        y[i] = __builtin_fmaf(x[i], v, y[i]);
}

void arch_avx2_scale_f32(float *y, float v, int64_t n)
{
    __m256 vv = _mm256_set1_ps(v);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_loadu_ps(y + i), vv));
    for (; i < n; i++)
        y[i] *= v;
}

void arch_avx2_mad_f16(float *y, const uint16_t *x, float v, int64_t n)
{
    __m256 vv = _mm256_set1_ps(v);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 xf = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i)));
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(xf, vv, _mm256_loadu_ps(y + i)));
    }
    for (; i < n; i++)
        y[i] = __builtin_fmaf(_cvtsh_ss(x[i]), v, y[i]);
}
