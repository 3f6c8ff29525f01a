/* avx512_vec.c — the vec.h primitives with AVX-512 (16 lanes = one zmm). */
#include "../vec.h"

#include <immintrin.h>

float arch_avx512_dot_f32(const float *a, const float *b, int64_t n)
{
    int64_t np = n & ~(int64_t)63;
    double sum = 0.0;
    if (np) {
        __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(),
                         _mm512_setzero_ps()};
        for (int64_t i = 0; i < np; i += 64)
            for (int j = 0; j < 4; j++)
                acc[j] = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16 * j),
                                         _mm512_loadu_ps(b + i + 16 * j), acc[j]);
        __m512 v = _mm512_add_ps(_mm512_add_ps(acc[0], acc[2]), _mm512_add_ps(acc[1], acc[3]));
        /* halves: 16 -> 8 -> 4 -> 2 -> 1 */
        __m256 h8 = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
        __m128 h4 = _mm_add_ps(_mm256_castps256_ps128(h8), _mm256_extractf128_ps(h8, 1));
        __m128 h2 = _mm_add_ps(h4, _mm_movehl_ps(h4, h4));
        __m128 h1 = _mm_add_ss(h2, _mm_movehdup_ps(h2));
        sum = _mm_cvtss_f32(h1);
    }
    for (int64_t i = np; i < n; i++)
        sum += (double)(a[i] * b[i]);
    return (float)sum;
}

void arch_avx512_mad_f32(float *y, const float *x, float v, int64_t n)
{
    __m512 vv = _mm512_set1_ps(v);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(y + i, _mm512_fmadd_ps(_mm512_loadu_ps(x + i), vv, _mm512_loadu_ps(y + i)));
    for (; i < n; i++)
        y[i] = __builtin_fmaf(x[i], v, y[i]);
}

void arch_avx512_scale_f32(float *y, float v, int64_t n)
{
    __m512 vv = _mm512_set1_ps(v);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(y + i, _mm512_mul_ps(_mm512_loadu_ps(y + i), vv));
    for (; i < n; i++)
        y[i] *= v;
}

void arch_avx512_mad_f16(float *y, const uint16_t *x, float v, int64_t n)
{
    __m512 vv = _mm512_set1_ps(v);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 xf = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(x + i)));
        _mm512_storeu_ps(y + i, _mm512_fmadd_ps(xf, vv, _mm512_loadu_ps(y + i)));
    }
    for (; i < n; i++)
        y[i] = __builtin_fmaf(_cvtsh_ss(x[i]), v, y[i]);
}
