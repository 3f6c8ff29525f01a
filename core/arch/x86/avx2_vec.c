/* avx2_vec.c — the vec.h primitives with AVX2+FMA: each 16-lane vector of
 * the reference order is a pair of ymm registers (low, high 8 lanes). */
#include "../vec.h"
#include "vec_x86.h"

#include <immintrin.h>
#include <math.h>
#include <string.h>

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

/* ---- the forward pass's elementwise ops (vec.h states what each computes) ---- */

void arch_avx2_add_f32(float *y, const float *x, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_loadu_ps(y + i), _mm256_loadu_ps(x + i)));
    for (; i < n; i++)
        y[i] += x[i];
}

/* mask of the first k (< 8) lanes, for maskload / maskstore */
static inline __m256i first_lanes(int64_t k)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)k), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* The squares (rounded to f32, as the reference) are summed in 8 double
 * lanes (two vectors of 4); zero-filled tail lanes add exact zeros. */
void arch_avx2_rmsnorm_f32(float *y, const float *x, const float *w, int64_t n, float eps)
{
    __m256d lo = _mm256_setzero_pd(), hi = _mm256_setzero_pd();
    for (int64_t i = 0; i < n; i += 8) {
        __m256 v = n - i >= 8 ? _mm256_loadu_ps(x + i) : _mm256_maskload_ps(x + i, first_lanes(n - i));
        __m256 sq = _mm256_mul_ps(v, v);
        lo = _mm256_add_pd(lo, _mm256_cvtps_pd(_mm256_castps256_ps128(sq)));
        hi = _mm256_add_pd(hi, _mm256_cvtps_pd(_mm256_extractf128_ps(sq, 1)));
    }
    __m256d s4 = _mm256_add_pd(lo, hi);
    __m128d s2 = _mm_add_pd(_mm256_castpd256_pd128(s4), _mm256_extractf128_pd(s4, 1));
    double sum = _mm_cvtsd_f64(_mm_add_sd(s2, _mm_unpackhi_pd(s2, s2)));
    float mean = (float)(sum / (double)n);
    float sc = 1.0f / sqrtf(mean + eps);
    __m256 scale = _mm256_set1_ps(sc);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), scale),
                                              _mm256_loadu_ps(w + i)));
    for (; i < n; i++)
        y[i] = (x[i] * sc) * w[i];
}

/* Tails go through an 8-lane buffer, so that every element gets the vector
 * exponential. */
void arch_avx2_exp_f32(float *y, const float *x, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, vx256_exp(_mm256_loadu_ps(x + i)));
    if (i < n) {
        float b[8] = {0};
        memcpy(b, x + i, (size_t)(n - i) * sizeof *b);
        _mm256_storeu_ps(b, vx256_exp(_mm256_loadu_ps(b)));
        memcpy(y + i, b, (size_t)(n - i) * sizeof *b);
    }
}

static inline __m256 swiglu8(__m256 g, __m256 u)
{
    __m256 e = vx256_exp(_mm256_sub_ps(_mm256_setzero_ps(), g));
    return _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(_mm256_set1_ps(1.0f), e)), u);
}

void arch_avx2_swiglu_f32(float *g, const float *u, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(g + i, swiglu8(_mm256_loadu_ps(g + i), _mm256_loadu_ps(u + i)));
    if (i < n) {
        float bg[8] = {0}, bu[8] = {0};
        memcpy(bg, g + i, (size_t)(n - i) * sizeof *bg);
        memcpy(bu, u + i, (size_t)(n - i) * sizeof *bu);
        _mm256_storeu_ps(bg, swiglu8(_mm256_loadu_ps(bg), _mm256_loadu_ps(bu)));
        memcpy(g + i, bg, (size_t)(n - i) * sizeof *bg);
    }
}

/* As avx512_rope_f32: NORM pairs in adjacent lanes, the odd lanes' partner
 * product added, the even lanes' subtracted (its sign flipped). */
void arch_avx2_rope_f32(float *x, const float *cs, const float *sn, int64_t n_half, bool neox)
{
    int64_t i = 0;
    if (neox) {
        for (; i + 8 <= n_half; i += 8) {
            __m256 x0 = _mm256_loadu_ps(x + i), x1 = _mm256_loadu_ps(x + n_half + i);
            __m256 c = _mm256_loadu_ps(cs + i), s = _mm256_loadu_ps(sn + i);
            _mm256_storeu_ps(x + i, _mm256_sub_ps(_mm256_mul_ps(x0, c), _mm256_mul_ps(x1, s)));
            _mm256_storeu_ps(x + n_half + i,
                             _mm256_add_ps(_mm256_mul_ps(x0, s), _mm256_mul_ps(x1, c)));
        }
    } else {
        const __m256i dup = _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3);
        const __m256 even_neg = _mm256_castsi256_ps(
            _mm256_setr_epi32(INT32_MIN, 0, INT32_MIN, 0, INT32_MIN, 0, INT32_MIN, 0));
        for (; i + 4 <= n_half; i += 4) { /* 4 pairs = 8 lanes */
            __m256 c = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(_mm_loadu_ps(cs + i)), dup);
            __m256 s = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(_mm_loadu_ps(sn + i)), dup);
            __m256 v = _mm256_loadu_ps(x + 2 * i);
            __m256 t = _mm256_xor_ps(_mm256_mul_ps(_mm256_permute_ps(v, 0xB1), s), even_neg);
            _mm256_storeu_ps(x + 2 * i, _mm256_add_ps(_mm256_mul_ps(v, c), t));
        }
    }
    for (; i < n_half; i++) {
        int64_t i0 = neox ? i : 2 * i, i1 = neox ? i + n_half : 2 * i + 1;
        float x0 = x[i0], x1 = x[i1];
        x[i0] = x0 * cs[i] - x1 * sn[i];
        x[i1] = x0 * sn[i] + x1 * cs[i];
    }
}

/* F16C rounds to nearest even and quiets NaNs keeping their top payload bits,
 * as quant_f32_to_f16. */
void arch_avx2_f32_to_f16(uint16_t *y, const float *x, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(y + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(x + i),
                                         _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    if (i < n) {
        float b[8] = {0};
        uint16_t h[8];
        memcpy(b, x + i, (size_t)(n - i) * sizeof *b);
        _mm_storeu_si128((__m128i *)h, _mm256_cvtps_ph(_mm256_loadu_ps(b), _MM_FROUND_TO_NEAREST_INT |
                                                                                _MM_FROUND_NO_EXC));
        memcpy(y + i, h, (size_t)(n - i) * sizeof *h);
    }
}
