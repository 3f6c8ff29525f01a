/*
 * vec_x86.h — the vector exponential shared by the x86 vec.h files
 * (avx2_vec.c, avx2_attn.c, avx512_vec.c, avx512_attn.c): e^x for 8 or 16
 * lanes, within 2 ulp of the correctly rounded value (tests/test_vec.c
 * checks it against libm's expf).
 *
 * Range reduction: n = round(x·log2 e), r = x − n·ln2 with ln2 split in two
 * (Cody and Waite), so |r| <= ln2/2 (a hair more when x·log2 e rounds across
 * a half); e^r ≈ 1 + r + c2·r² + … + c6·r⁶, coefficients fitted here for the
 * least maximum relative error over that interval (3.8e-9, far below the
 * 6e-8 of half an ulp), by Horner's rule with fused multiply-adds; then
 * e^x = e^r·2^n. x is clamped to 89 first (beyond it the result is inf
 * anyway); below −104 (where e^x rounds to 0) the lanes compute e^0 and are
 * zeroed at the end: an underflowing product would cost a microcode assist
 * of ~100 cycles, and the attention softmax feeds −inf (a masked key) all
 * the time. Between −104 and −87.3 the result is subnormal, assists and
 * all (rare in practice). n stays within [−150, 128]. AVX-512
 * scales with vscalefps (correct overflow and gradual underflow in one
 * instruction); AVX2 multiplies by 2^⌊n/2⌋ and 2^(n−⌊n/2⌋), two normal
 * powers, so that only the second product can round (into the subnormals).
 * Exact cases: e^0 = 1 (r = 0 leaves the constant term), e^−inf = 0;
 * a NaN stays NaN (the clamp returns its second operand when it is one, and
 * NaN < −104 is false).
 *
 * Each part is compiled only where its ISA is enabled (the file's flags).
 */
#ifndef HEARTH_CORE_ARCH_VEC_X86_H
#define HEARTH_CORE_ARCH_VEC_X86_H

#include <immintrin.h>

#define VX_EXP_LO -104.0f
#define VX_EXP_HI 89.0f
#define VX_LOG2E 0x1.715476p+0f
#define VX_LN2_HI 0x1.62e4p-1f    /* 0.693145751953125: few bits, n·hi is exact */
#define VX_LN2_LO 0x1.7f7d1cp-20f /* ln2 − hi */
#define VX_C2 0x1.fffffcp-2f
#define VX_C3 0x1.555492p-3f
#define VX_C4 0x1.5558f2p-5f
#define VX_C5 0x1.1239d4p-7f
#define VX_C6 0x1.6a244ap-10f

#if defined(__AVX512F__)
static inline __attribute__((always_inline)) __m512 vx512_exp(__m512 x)
{
    __mmask16 zero = _mm512_cmp_ps_mask(x, _mm512_set1_ps(VX_EXP_LO), _CMP_LT_OQ);
    __m512 xc = _mm512_maskz_min_ps((__mmask16)~zero, _mm512_set1_ps(VX_EXP_HI), x);
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(xc, _mm512_set1_ps(VX_LOG2E)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(VX_LN2_HI), xc);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(VX_LN2_LO), r);
    __m512 p = _mm512_fmadd_ps(_mm512_set1_ps(VX_C6), r, _mm512_set1_ps(VX_C5));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(VX_C4));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(VX_C3));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(VX_C2));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_maskz_scalef_ps((__mmask16)~zero, p, n);
}
#endif

#if defined(__AVX2__) && defined(__FMA__)
static inline __attribute__((always_inline)) __m256 vx256_exp(__m256 x)
{
    __m256 zero = _mm256_cmp_ps(x, _mm256_set1_ps(VX_EXP_LO), _CMP_LT_OQ);
    __m256 xc = _mm256_andnot_ps(zero, _mm256_min_ps(_mm256_set1_ps(VX_EXP_HI), x));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(xc, _mm256_set1_ps(VX_LOG2E)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(VX_LN2_HI), xc);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(VX_LN2_LO), r);
    __m256 p = _mm256_fmadd_ps(_mm256_set1_ps(VX_C6), r, _mm256_set1_ps(VX_C5));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(VX_C4));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(VX_C3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(VX_C2));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    /* n in [−150, 128]: n1 = ⌊n/2⌋ and n2 = n − n1 both in [−75, 64] */
    __m256i ni = _mm256_cvtps_epi32(n);
    __m256i n1 = _mm256_srai_epi32(ni, 1), n2 = _mm256_sub_epi32(ni, n1);
    __m256i bias = _mm256_set1_epi32(127);
    __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
    __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
    return _mm256_andnot_ps(zero, _mm256_mul_ps(_mm256_mul_ps(p, s1), s2));
}
#endif

#endif
