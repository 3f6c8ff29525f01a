/* avx512_vec.c — the vec.h primitives with AVX-512 (16 lanes = one zmm);
 * tails of the forward pass's ops are masked loads and stores. */
#include "../vec.h"
#include "vec_x86.h"

#include <immintrin.h>
#include <math.h>

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

/* ---- the forward pass's elementwise ops (vec.h states what each computes) ---- */

/* lanes [0, n − i) of a 16-lane step at i (n − i < 16) */
static inline __mmask16 tail_mask(int64_t left)
{
    return (__mmask16)((1u << left) - 1u);
}

void arch_avx512_add_f32(float *y, const float *x, int64_t n)
{
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(y + i, _mm512_add_ps(_mm512_loadu_ps(y + i), _mm512_loadu_ps(x + i)));
    if (i < n) {
        __mmask16 m = tail_mask(n - i);
        _mm512_mask_storeu_ps(y + i, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, y + i),
                                                      _mm512_maskz_loadu_ps(m, x + i)));
    }
}

/* The squares (rounded to f32, as the reference) are summed in 16 double
 * lanes (two vectors of 8); zero-filled tail lanes add exact zeros. */
void arch_avx512_rmsnorm_f32(float *y, const float *x, const float *w, int64_t n, float eps)
{
    __m512d lo = _mm512_setzero_pd(), hi = _mm512_setzero_pd();
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : tail_mask(n - i);
        __m512 v = _mm512_maskz_loadu_ps(m, x + i);
        __m512 sq = _mm512_mul_ps(v, v);
        lo = _mm512_add_pd(lo, _mm512_cvtps_pd(_mm512_castps512_ps256(sq)));
        hi = _mm512_add_pd(hi, _mm512_cvtps_pd(_mm512_extractf32x8_ps(sq, 1)));
    }
    double sum = _mm512_reduce_add_pd(_mm512_add_pd(lo, hi));
    float mean = (float)(sum / (double)n);
    __m512 scale = _mm512_set1_ps(1.0f / sqrtf(mean + eps));
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : tail_mask(n - i);
        __m512 v = _mm512_maskz_loadu_ps(m, x + i);
        _mm512_mask_storeu_ps(
            y + i, m, _mm512_mul_ps(_mm512_mul_ps(v, scale), _mm512_maskz_loadu_ps(m, w + i)));
    }
}

void arch_avx512_exp_f32(float *y, const float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : tail_mask(n - i);
        _mm512_mask_storeu_ps(y + i, m, vx512_exp(_mm512_maskz_loadu_ps(m, x + i)));
    }
}

void arch_avx512_swiglu_f32(float *g, const float *u, int64_t n)
{
    const __m512 one = _mm512_set1_ps(1.0f);
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : tail_mask(n - i);
        __m512 v = _mm512_maskz_loadu_ps(m, g + i);
        __m512 e = vx512_exp(_mm512_sub_ps(_mm512_setzero_ps(), v));
        __m512 s = _mm512_div_ps(v, _mm512_add_ps(one, e));
        _mm512_mask_storeu_ps(g + i, m, _mm512_mul_ps(s, _mm512_maskz_loadu_ps(m, u + i)));
    }
}

/* NORM pairs sit in adjacent lanes: with xs = x with each pair swapped and
 * c, s duplicated per pair, x0' = x·c − xs·s (even lanes) and
 * x1' = x·c + xs·s (odd lanes) — the scalar's products, added the same way
 * (a − b is a + (−b) exactly, and + commutes). */
void arch_avx512_rope_f32(float *x, const float *cs, const float *sn, int64_t n_half, bool neox)
{
    if (neox) {
        for (int64_t i = 0; i < n_half; i += 16) {
            __mmask16 m = n_half - i >= 16 ? (__mmask16)0xffff : tail_mask(n_half - i);
            __m512 x0 = _mm512_maskz_loadu_ps(m, x + i), x1 = _mm512_maskz_loadu_ps(m, x + n_half + i);
            __m512 c = _mm512_maskz_loadu_ps(m, cs + i), s = _mm512_maskz_loadu_ps(m, sn + i);
            _mm512_mask_storeu_ps(x + i, m, _mm512_sub_ps(_mm512_mul_ps(x0, c), _mm512_mul_ps(x1, s)));
            _mm512_mask_storeu_ps(x + n_half + i, m,
                                  _mm512_add_ps(_mm512_mul_ps(x0, s), _mm512_mul_ps(x1, c)));
        }
        return;
    }
    const __m512i dup = _mm512_set_epi32(7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0);
    const __m512 even_neg = _mm512_castsi512_ps(
        _mm512_set_epi32(0, INT32_MIN, 0, INT32_MIN, 0, INT32_MIN, 0, INT32_MIN, 0, INT32_MIN, 0,
                         INT32_MIN, 0, INT32_MIN, 0, INT32_MIN));
    for (int64_t i = 0; i < n_half; i += 8) { /* 8 pairs = 16 lanes */
        int64_t left = n_half - i >= 8 ? 8 : n_half - i;
        __mmask16 mp = tail_mask(left), m = tail_mask(2 * left);
        __m512 c = _mm512_permutexvar_ps(dup, _mm512_maskz_loadu_ps(mp, cs + i));
        __m512 s = _mm512_permutexvar_ps(dup, _mm512_maskz_loadu_ps(mp, sn + i));
        __m512 v = _mm512_maskz_loadu_ps(m, x + 2 * i);
        __m512 vs = _mm512_permute_ps(v, 0xB1);
        __m512 t = _mm512_xor_ps(_mm512_mul_ps(vs, s), even_neg);
        _mm512_mask_storeu_ps(x + 2 * i, m, _mm512_add_ps(_mm512_mul_ps(v, c), t));
    }
}

void arch_avx512_f32_to_f16(uint16_t *y, const float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : tail_mask(n - i);
        __m256i h = _mm512_cvtps_ph(_mm512_maskz_loadu_ps(m, x + i),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        _mm256_mask_storeu_epi16(y + i, m, h);
    }
}
