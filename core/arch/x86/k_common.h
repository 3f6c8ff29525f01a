/*
 * k_common.h — helpers shared by the AVX2 and AVX-512 K-quant kernels
 * (avx2_k.c, avx512_k.c): unaligned little-endian loads, the unpacking of
 * the K-quants' packed sub-block scales and mins into int16 vectors, and
 * per-type block facts. AVX2-level code, included by files compiled with at
 * least -mavx2; each includer defines AI (forced inline) first. The last
 * section (AVX-512BW builds only: avx512_k.c, amx_k.c) decodes the scales of
 * the repacked layout, 16 rows at a time.
 */
#ifndef HEARTH_ARCH_X86_K_COMMON_H
#define HEARTH_ARCH_X86_K_COMMON_H

#include "../../quant_impl.h"

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

/* ---- small helpers ------------------------------------------------------------------ */

AI uint32_t ld32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

AI uint16_t ld16(const uint8_t *p)
{
    uint16_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

AI float ldf(const uint8_t *p)
{
    float v;
    memcpy(&v, p, sizeof v);
    return v;
}

AI __m128i lu128(const void *p)
{
    return _mm_loadu_si128((const __m128i *)p);
}

AI __m256i lu256(const void *p)
{
    return _mm256_loadu_si256((const __m256i *)p);
}

/* Scales of one super-block of one row, per 16-element group g (0..15):
 * sc[g] the integer sub-scale, mc[g] the coefficient of bsums[g] (the min
 * for Q2_K/Q4_K/Q5_K, −offset·sc for Q3_K/Q6_K), both int16; d and dmin as
 * fp16 bits. */
struct rowsc {
    __m256i sc, mc;
    uint16_t d, dmin;
};

/* Q4_K/Q5_K 6-bit scales and mins from 12 bytes: 8 scale bytes, 8 min bytes. */
AI void k4_scales(const uint8_t *s, uint64_t *sc, uint64_t *mn)
{
    uint32_t a = ld32(s), b = ld32(s + 4), c = ld32(s + 8);
    uint32_t sc_lo = a & 0x3f3f3f3fu, m_lo = b & 0x3f3f3f3fu;
    uint32_t sc_hi = (c & 0x0f0f0f0fu) | ((a >> 2) & 0x30303030u);
    uint32_t m_hi = ((c >> 4) & 0x0f0f0f0fu) | ((b >> 2) & 0x30303030u);
    *sc = sc_lo | (uint64_t)sc_hi << 32;
    *mn = m_lo | (uint64_t)m_hi << 32;
}

/* 8 bytes → 16 int16, each byte twice (one 32-element sub-block = 2 groups) */
AI __m256i dup8(uint64_t v)
{
    __m128i x = _mm_cvtsi64_si128((long long)v);
    return _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(x, x));
}

/* Q3_K: the 16 6-bit scales, biased (0..63), as 16 bytes. */
AI __m128i q3_scales(const uint8_t *t)
{
    uint32_t a = ld32(t), b = ld32(t + 4), c = ld32(t + 8);
    uint32_t s0 = (a & 0x0f0f0f0fu) | ((c & 0x03030303u) << 4);
    uint32_t s1 = (b & 0x0f0f0f0fu) | (((c >> 2) & 0x03030303u) << 4);
    uint32_t s2 = ((a >> 4) & 0x0f0f0f0fu) | (((c >> 4) & 0x03030303u) << 4);
    uint32_t s3 = ((b >> 4) & 0x0f0f0f0fu) | (((c >> 6) & 0x03030303u) << 4);
    return _mm_set_epi32((int)s3, (int)s2, (int)s1, (int)s0);
}

AI struct rowsc row_scales(const int T, const uint8_t *b)
{
    struct rowsc r;
    r.dmin = 0;
    switch (T) {
    case HR_TYPE_Q2_K: {
        __m256i s = _mm256_cvtepu8_epi16(lu128(b));
        r.sc = _mm256_and_si256(s, _mm256_set1_epi16(15));
        r.mc = _mm256_srli_epi16(s, 4);
        r.d = ld16(b + 80);
        r.dmin = ld16(b + 82);
        break;
    }
    case HR_TYPE_Q3_K: {
        __m256i s =
            _mm256_sub_epi16(_mm256_cvtepu8_epi16(q3_scales(b + 96)), _mm256_set1_epi16(32));
        r.sc = s;
        r.mc = _mm256_sub_epi16(_mm256_setzero_si256(), _mm256_slli_epi16(s, 2));
        r.d = ld16(b + 108);
        break;
    }
    case HR_TYPE_Q4_K:
    case HR_TYPE_Q5_K: {
        uint64_t sc, mn;
        k4_scales(b + 4, &sc, &mn);
        r.sc = dup8(sc);
        r.mc = dup8(mn);
        r.d = ld16(b);
        r.dmin = ld16(b + 2);
        break;
    }
    default: { /* Q6_K */
        __m256i s = _mm256_cvtepi8_epi16(lu128(b + 192));
        r.sc = s;
        r.mc = _mm256_sub_epi16(_mm256_setzero_si256(), _mm256_slli_epi16(s, 5));
        r.d = ld16(b + 208);
        break;
    }
    }
    return r;
}

AI int has_min(const int T)
{
    return T == HR_TYPE_Q2_K || T == HR_TYPE_Q4_K || T == HR_TYPE_Q5_K;
}

AI size_t blk_size(const int T)
{
    switch (T) {
    case HR_TYPE_Q2_K:
        return 84;
    case HR_TYPE_Q3_K:
        return 110;
    case HR_TYPE_Q4_K:
        return 144;
    case HR_TYPE_Q5_K:
        return 176;
    default:
        return 210;
    }
}

/* ---- AVX-512 helpers of the repacked layout (pack_k.h: 16 rows in the lanes) ----------- */
#if defined(__AVX512BW__)
AI __m512i ldv(const uint8_t *p)
{
    return _mm512_load_si512(p);
}

/* vpshufb controls: byte b of each dword, zero-extended to the dword */
AI __m512i ctl_byte(int b)
{
    return _mm512_set4_epi32((int)(0x80808000u | (12u + (unsigned)b)),
                             (int)(0x80808000u | (8u + (unsigned)b)),
                             (int)(0x80808000u | (4u + (unsigned)b)), (int)(0x80808000u | (unsigned)b));
}

/* byte b of each dword into both words, zero-extended: the pair (v, v) */
AI __m512i ctl_pair(int b)
{
    unsigned k[4];
    for (int i = 0; i < 4; i++) {
        unsigned s = 4u * (unsigned)i + (unsigned)b;
        k[i] = 0x80008000u | s << 16 | s;
    }
    return _mm512_set4_epi32((int)k[3], (int)k[2], (int)k[1], (int)k[0]);
}

/* byte b of each dword into all four of its bytes */
AI __m512i ctl_rep(int b)
{
    unsigned k[4];
    for (int i = 0; i < 4; i++)
        k[i] = (4u * (unsigned)i + (unsigned)b) * 0x01010101u;
    return _mm512_set4_epi32((int)k[3], (int)k[2], (int)k[1], (int)k[0]);
}

/* byte b of each dword into its top byte (then an arithmetic shift by 24
 * sign-extends it) */
AI __m512i ctl_top(int b)
{
    unsigned k[4];
    for (int i = 0; i < 4; i++)
        k[i] = 0x00808080u | (4u * (unsigned)i + (unsigned)b) << 24;
    return _mm512_set4_epi32((int)k[3], (int)k[2], (int)k[1], (int)k[0]);
}

/* bytes 2q, 2q+1 of each dword into its two words, zero-extended */
AI __m512i ctl_zpair(int q)
{
    unsigned k[4];
    for (int i = 0; i < 4; i++) {
        unsigned s = 4u * (unsigned)i + 2u * (unsigned)q;
        k[i] = 0x80000000u | (s + 1) << 16 | 0x8000u | s;
    }
    return _mm512_set4_epi32((int)k[3], (int)k[2], (int)k[1], (int)k[0]);
}

/* bytes 2q, 2q+1 of each dword into the high bytes of its two words (an
 * arithmetic word shift by 8 then sign-extends them) */
AI __m512i ctl_wpair(int q)
{
    unsigned k[4];
    for (int i = 0; i < 4; i++) {
        unsigned s = 4u * (unsigned)i + 2u * (unsigned)q;
        k[i] = (s + 1) << 24 | 0x800000u | s << 8 | 0x80u;
    }
    return _mm512_set4_epi32((int)k[3], (int)k[2], (int)k[1], (int)k[0]);
}


/* Q4_K/Q5_K: the 6-bit scales and mins of 16 rows from the three scale
 * vectors: sc[0] bytes = sc_0..sc_3 of the lane's row, sc[1] sc_4..sc_7,
 * mn[] likewise (k4_scales, lane-wise). */
AI void k4_dec(const uint8_t *v, __m512i sc[2], __m512i mn[2])
{
    const __m512i s0 = ldv(v), s1 = ldv(v + 64), s2 = ldv(v + 128);
    const __m512i m3f = _mm512_set1_epi8(0x3f), m0f = _mm512_set1_epi8(0x0f);
    const __m512i m30 = _mm512_set1_epi8(0x30);
    sc[0] = _mm512_and_si512(s0, m3f);
    mn[0] = _mm512_and_si512(s1, m3f);
    sc[1] = _mm512_or_si512(_mm512_and_si512(s2, m0f),
                            _mm512_and_si512(_mm512_srli_epi32(s0, 2), m30));
    mn[1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(s2, 4), m0f),
                            _mm512_and_si512(_mm512_srli_epi32(s1, 2), m30));
}

/* Q5_K: nibbles q (elements of sub-block j, lanes as qs) plus 16 where bit
 * j of the matching qh bytes is set. */
AI __m512i q5_hi(__m512i q, __m512i qh, int j)
{
    /* bit j of each byte to bit 4 of the same byte (16-bit shifts move
     * both bytes of a word alike; the mask drops what crossed over) */
    __m512i h = j <= 4 ? _mm512_slli_epi16(qh, 4 - j) : _mm512_srli_epi16(qh, j - 4);
    return _mm512_ternarylogic_epi32(q, h, _mm512_set1_epi8(0x10), 0xF8); /* q | (h & 16) */
}
#endif

#endif
