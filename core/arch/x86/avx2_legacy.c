/*
 * avx2_legacy.c — AVX2 (+FMA, F16C) kernels of the float types F32, F16,
 * BF16 and of the legacy block quants Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, and the
 * activation converters run before their products (Q8_0, Q8_1, F16, BF16).
 * Registered by arch_avx2_legacy_init over the scalar table;
 * tests/test_simd_legacy.c checks each against the scalar reference.
 *
 * Integer products (legacy quants × Q8_0/Q8_1 activations) are bit-identical
 * to the scalar reference, as at the AVX-512 level (avx512_legacy.c): each
 * block's integer sum is exact, then the reference's float expression
 * sum += (d_w·d_a)·isum [+ m_w·s_a] is applied block after block.
 *
 * Tiles ("row lanes"): gemm computes 8 weight rows × up to 4 activation rows.
 * Lane r of every ymm belongs to weight row r; a block's quants are
 * transposed into 8 vectors q[g] (lane r = elements 4g..4g+3 of row r) and
 * each activation dword is broadcast to all lanes. vpmaddubsw multiplies
 * unsigned by signed bytes into int16 pair sums (saturating: every use stays
 * within ±32767, see groups16), which are added in int16 across as many
 * groups as fit and widened by vpmaddwd:
 *  - Q4_0/Q5_0: unsigned a + 128 (a XOR 0x80, made once per tile) times
 *    signed w = q − o, minus 128·Σw (from the weights, once per block);
 *  - Q4_1/Q5_1: unsigned q times signed a;
 *  - Q8_0: |w| times a·sign(w) (vpsignb); exact for activation quants in
 *    [−127, 127], the range every activation quantizer produces.
 * vec_dot works block by block in element order (exact for any input).
 *
 * Float types: 4×3 tiles of 8 elements per step, products by FMA in f32
 * (exact for F16 and BF16 operands); a tail shorter than 8 goes through a
 * zero-padded copy. The reference sums these in double, so they agree to
 * float rounding (the test states the bound), not bit for bit.
 */
#include "x86_common.h"

#include "../../quant_impl.h"
#include "../arch.h"

#include <stdbool.h>
#include <stddef.h>

#define PF_DIST 1024 /* float vec_dot: bytes ahead in its row */

/* ---- activation converters ------------------------------------------------------ */

/* max |x| over 32 floats, NaN ignored as in the scalar loop: vmaxps returns
 * its second operand when either is NaN, so NaNs fold into a NaN-free
 * running value. */
X86_INLINE float absmax32(const __m256 v[4])
{
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 m = _mm256_max_ps(_mm256_andnot_ps(sign, v[3]), _mm256_setzero_ps());
    m = _mm256_max_ps(_mm256_andnot_ps(sign, v[2]), m);
    m = _mm256_max_ps(_mm256_andnot_ps(sign, v[1]), m);
    m = _mm256_max_ps(_mm256_andnot_ps(sign, v[0]), m);
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_movehdup_ps(h));
    return _mm_cvtss_f32(h);
}

/* q = nearbyint(x·id) of 32 floats as int8 (saturating; |q| ≤ 127 for
 * finite blocks) into qs; returns the four int32 vectors' sum vector. */
X86_INLINE __m256i quantize32(const __m256 v[4], float id, int8_t *qs)
{
    __m256 vid = _mm256_set1_ps(id);
    __m256i q0 = _mm256_cvtps_epi32(_mm256_mul_ps(v[0], vid));
    __m256i q1 = _mm256_cvtps_epi32(_mm256_mul_ps(v[1], vid));
    __m256i q2 = _mm256_cvtps_epi32(_mm256_mul_ps(v[2], vid));
    __m256i q3 = _mm256_cvtps_epi32(_mm256_mul_ps(v[3], vid));
    /* the packs work per 128-bit lane: dwords come out as 0 2 4 6 1 3 5 7 */
    __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(q0, q1), _mm256_packs_epi32(q2, q3));
    p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256((__m256i *)qs, p);
    return _mm256_add_epi32(_mm256_add_epi32(q0, q1), _mm256_add_epi32(q2, q3));
}

static void q8_0_act(const float *src, void *dst, int64_t n)
{
    struct block_q8_0 *b = dst;
    for (int64_t i = 0; i < n / QK8_0; i++, src += QK8_0) {
        __m256 v[4];
        for (int j = 0; j < 4; j++)
            v[j] = _mm256_loadu_ps(src + 8 * j);
        float amax = absmax32(v);
        float id = amax != 0.0f ? 127.0f / amax : 0.0f;
        b[i].d = quant_f32_to_f16(amax / 127.0f);
        quantize32(v, id, b[i].qs);
    }
}

static void q8_1_act(const float *src, void *dst, int64_t n)
{
    struct block_q8_1 *b = dst;
    for (int64_t i = 0; i < n / QK8_1; i++, src += QK8_1) {
        __m256 v[4];
        for (int j = 0; j < 4; j++)
            v[j] = _mm256_loadu_ps(src + 8 * j);
        float amax = absmax32(v);
        float d = amax / 127.0f;
        float id = amax != 0.0f ? 127.0f / amax : 0.0f;
        b[i].d = quant_f32_to_f16(d);
        __m256i s = quantize32(v, id, b[i].qs);
        __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4e));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xb1));
        b[i].s = quant_f32_to_f16((float)_mm_cvtsi128_si32(s4) * d);
    }
}

/* fp32 -> fp16 by vcvtps2ph, round to nearest even: the same bits as
 * quant_f32_to_f16 for every input (NaN quieted, payload top bits kept). */
static void f16_act(const float *src, void *dst, int64_t n)
{
    uint16_t *h = dst;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(h + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++)
        h[i] = quant_f32_to_f16(src[i]);
}

/* fp32 -> bf16 in integers, as quant_f32_to_bf16: (u + 0x7fff + lsb) >> 16,
 * NaN -> (u >> 16) | 64. Results are 16-bit values in int32 lanes. */
X86_INLINE __m256i bf16_round8(__m256 v)
{
    __m256i u = _mm256_castps_si256(v);
    __m256i hi = _mm256_srli_epi32(u, 16);
    __m256i r = _mm256_add_epi32(u, _mm256_set1_epi32(0x7fff));
    r = _mm256_srli_epi32(_mm256_add_epi32(r, _mm256_and_si256(hi, _mm256_set1_epi32(1))), 16);
    /* |u| > inf pattern: NaN (signed compare is fine, both sides < 2^31) */
    __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff)),
                                     _mm256_set1_epi32(0x7f800000));
    return _mm256_blendv_epi8(r, _mm256_or_si256(hi, _mm256_set1_epi32(64)), nan);
}

static void bf16_act(const float *src, void *dst, int64_t n)
{
    uint16_t *h = dst;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256i lo = bf16_round8(_mm256_loadu_ps(src + i));
        __m256i hi = bf16_round8(_mm256_loadu_ps(src + i + 8));
        /* values fit 16 bits: the unsigned saturating pack is exact */
        __m256i p = _mm256_permute4x64_epi64(_mm256_packus_epi32(lo, hi), 0xd8);
        _mm256_storeu_si256((__m256i *)(h + i), p);
    }
    for (; i < n; i++)
        h[i] = quant_f32_to_bf16(src[i]);
}

/* ---- legacy quants × Q8_0 / Q8_1 ------------------------------------------------ */

#define QMR 8      /* weight rows per tile: one per int32 lane */
#define QNC 4      /* activation rows per tile */
#define CH 8       /* blocks per chunk of activation-side data */
#define PF_EVERY 2 /* decode: prefetch every this many blocks, one tile ahead */







X86_INLINE int offset_of(enum qkind k) /* o in Σ (q − o)·a (Q4_0, Q5_0) */
{
    return k == K_Q4_0 ? 8 : k == K_Q5_0 ? 16 : 0;
}

/* Groups of 4 elements whose vpmaddubsw pair sums can be added in int16:
 * |pair| <= 2·255·8 (Q4_0: (a+128)·w), 2·15·128 (Q4_1) -> 8 groups;
 * 2·255·16, 2·31·128 (Q5) -> 4; Q8_0's 2·128·127 -> 1. */
X86_INLINE int groups16(enum qkind k)
{
    return k == K_Q8_0 ? 1 : has_qh(k) ? 4 : 8;
}



/* 8 fp16 patterns in the low halves of the dwords of v, as floats. */
X86_INLINE __m256 f16_lo(__m256i v)
{
    v = _mm256_and_si256(v, _mm256_set1_epi32(0xffff));
    __m256i h = _mm256_permute4x64_epi64(_mm256_packus_epi32(v, v), 0x08);
    return _mm256_cvtph_ps(_mm256_castsi256_si128(h));
}

/* 8 weight rows' 16 bytes at p + ro[r] as 4 vectors: v[j] lane r = dword j
 * of row r (4×4 dword transposes within each 128-bit lane). */
X86_INLINE void transpose8(const uint8_t *p, const size_t ro[QMR], __m256i v[4])
{
    __m256i z[4];
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++)
        z[i] = _mm256_loadu2_m128i((const __m128i *)(p + ro[i + 4]), (const __m128i *)(p + ro[i]));
    /* 128-bit lane L of z[i] holds row 4L+i */
    __m256i t0 = _mm256_unpacklo_epi32(z[0], z[1]), t1 = _mm256_unpackhi_epi32(z[0], z[1]);
    __m256i t2 = _mm256_unpacklo_epi32(z[2], z[3]), t3 = _mm256_unpackhi_epi32(z[2], z[3]);
    v[0] = _mm256_unpacklo_epi64(t0, t2);
    v[1] = _mm256_unpackhi_epi64(t0, t2);
    v[2] = _mm256_unpacklo_epi64(t1, t3);
    v[3] = _mm256_unpackhi_epi64(t1, t3);
}

/* Q5: adds 16 to the quants whose 5th bit is set; h lane r holds row r's qh
 * word. Group g takes bits 4g..4g+3 (nibble g%2 of byte g/2): spread that
 * byte over the lane, then one bit per byte. */
X86_INLINE void add_high_bits(__m256i h, __m256i q[8])
{
    const __m256i lo = _mm256_set1_epi32(0x08040201), hi = _mm256_set1_epi32((int)0x80402010);
    const __m256i base = _mm256_setr_epi32(0, 0x04040404, 0x08080808, 0x0c0c0c0c, 0, 0x04040404,
                                           0x08080808, 0x0c0c0c0c);
    const __m256i sixteen = _mm256_set1_epi8(0x10);
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) {
        __m256i t = _mm256_shuffle_epi8(h, _mm256_add_epi8(base, _mm256_set1_epi8((char)j)));
        __m256i bl = _mm256_cmpeq_epi8(_mm256_and_si256(t, lo), lo);
        __m256i bh = _mm256_cmpeq_epi8(_mm256_and_si256(t, hi), hi);
        q[2 * j] = _mm256_add_epi8(q[2 * j], _mm256_and_si256(bl, sixteen));
        q[2 * j + 1] = _mm256_add_epi8(q[2 * j + 1], _mm256_and_si256(bh, sixteen));
    }
}

/* The quants of one block of 8 weight rows, q[g] lane r = elements
 * 4g..4g+3 of row r: Q4_0/Q5_0 signed w = q − o; Q4_1/Q5_1 unsigned q;
 * Q8_0 the signed bytes. */
X86_INLINE void quants_rows(const enum qkind k, const uint8_t *p, const size_t ro[QMR],
                            __m256i roff, __m256i q[8])
{
    if (k == K_Q8_0) {
        transpose8(p + w_qs(k), ro, q);
        transpose8(p + w_qs(k) + 16, ro, q + 4);
        return;
    }
    __m256i v[4];
    transpose8(p + w_qs(k), ro, v);
#pragma GCC unroll 4
    for (int g = 0; g < 4; g++) {
        q[g] = _mm256_and_si256(v[g], _mm256_set1_epi8(0x0f));
        q[g + 4] = _mm256_and_si256(_mm256_srli_epi16(v[g], 4), _mm256_set1_epi8(0x0f));
    }
    if (has_qh(k)) add_high_bits(_mm256_i32gather_epi32((const int *)(p + w_qh(k)), roff, 1), q);
    if (offset_of(k)) {
        const __m256i o = _mm256_set1_epi8((char)offset_of(k));
#pragma GCC unroll 8
        for (int g = 0; g < 8; g++)
            q[g] = _mm256_sub_epi8(q[g], o);
    }
}

/* Activation-side data of a chunk of blocks, per activation row: d_a (and
 * Q8_1's s) as floats and, for Q4_0/Q5_0, the quants made unsigned (a XOR
 * 0x80 = a + 128). */
struct xchunk {
    _Alignas(32) uint8_t q[QNC][CH][32];
    float d[QNC][CH];
    float s[QNC][CH];
};

/* One tile: 8 weight rows (rows >= nr repeat row nr−1; only nr are stored)
 * × nc activation rows. Lane r of acc[c] is the reference's running sum for
 * (row r, activation c), updated block by block with its float expression,
 * so results are the reference's bit for bit. The integer sum of a block:
 *  - Q4_0/Q5_0: unsigned a + 128 times signed w = q − o by vpmaddubsw, minus
 *    128·Σw (from the weights alone, once per block);
 *  - Q4_1/Q5_1: unsigned q times signed a;
 *  - Q8_0: |w| times a·sign(w) (vpsignb): exact for activation quants in
 *    [−127, 127], the range every activation quantizer produces.
 * Pair sums are added in int16 for groups16() groups, then widened. */
X86_INLINE void qtile(const enum qkind k, const int nc, int64_t n, float *y, size_t ldy,
                      const void *w, size_t w_stride, int nr, const void *x, size_t x_stride)
{
    const size_t wb = w_bytes(k), xb = x_bytes(k);
    const bool offs = offset_of(k) != 0;
    const int64_t nb = n / 32;
    const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i ones16 = _mm256_set1_epi16(1);
    size_t ro[QMR];
    for (int r = 0; r < QMR; r++)
        ro[r] = (size_t)(r < nr ? r : nr - 1) * w_stride;
    const __m256i roff = _mm256_mullo_epi32(_mm256_min_epi32(iota, _mm256_set1_epi32(nr - 1)),
                                            _mm256_set1_epi32((int)w_stride));
    const __m256i xoff = _mm256_mullo_epi32(iota, _mm256_set1_epi32((int)xb));
    const uint8_t *xc[QNC];
    __m256 acc[QNC];
#pragma GCC unroll 8
    for (int c = 0; c < nc; c++) {
        xc[c] = (const uint8_t *)x + (size_t)c * x_stride;
        acc[c] = _mm256_setzero_ps();
    }
    struct xchunk xd;
    for (int64_t b0 = 0; b0 < nb; b0 += CH) {
        int cnt = nb - b0 < CH ? (int)(nb - b0) : CH;
        __m256i cm = _mm256_cmpgt_epi32(_mm256_set1_epi32(cnt), iota);
        for (int c = 0; c < nc; c++) {
            const uint8_t *p = xc[c] + (size_t)b0 * xb;
            __m256i ds =
                _mm256_mask_i32gather_epi32(_mm256_setzero_si256(), (const int *)p, xoff, cm, 1);
            _mm256_storeu_ps(xd.d[c], f16_lo(ds));
            if (has_m(k)) _mm256_storeu_ps(xd.s[c], f16_lo(_mm256_srli_epi32(ds, 16)));
            if (offs)
                for (int j = 0; j < cnt; j++)
                    _mm256_store_si256(
                        (__m256i *)xd.q[c][j],
                        _mm256_xor_si256(
                            _mm256_loadu_si256((const __m256i *)(p + (size_t)j * xb + x_qs(k))),
                            _mm256_set1_epi8((char)0x80)));
        }
        for (int j = 0; j < cnt; j++) {
            const uint8_t *p = (const uint8_t *)w + (size_t)(b0 + j) * wb;
            if (nc <= 2 && j % PF_EVERY == 0) /* decode: fetch the next tile's rows ahead */
                for (int r = 0; r < QMR; r++)
                    _mm_prefetch((const char *)p + ro[r] + QMR * w_stride, _MM_HINT_T0);
            __m256i dm = _mm256_i32gather_epi32((const int *)p, roff, 1);
            __m256 dw = f16_lo(dm), mw = _mm256_setzero_ps();
            if (has_m(k)) mw = f16_lo(_mm256_srli_epi32(dm, 16));
            __m256i q[8], aq[8];
            quants_rows(k, p, ro, roff, q);
            __m256i corr = _mm256_setzero_si256();
            if (offs) {
                __m256i s16 = _mm256_maddubs_epi16(_mm256_set1_epi8(1), q[0]);
#pragma GCC unroll 8
                for (int g = 1; g < 8; g++)
                    s16 = _mm256_add_epi16(s16, _mm256_maddubs_epi16(_mm256_set1_epi8(1), q[g]));
                corr = _mm256_sub_epi32(_mm256_setzero_si256(),
                                        _mm256_slli_epi32(_mm256_madd_epi16(s16, ones16), 7));
            }
            if (k == K_Q8_0)
#pragma GCC unroll 8
                for (int g = 0; g < 8; g++)
                    aq[g] = _mm256_abs_epi8(q[g]);
#pragma GCC unroll 8
            for (int c = 0; c < nc; c++) {
                const uint8_t *a = offs ? xd.q[c][j] : xc[c] + (size_t)(b0 + j) * xb + x_qs(k);
                __m256i t = corr, t16 = _mm256_setzero_si256();
#pragma GCC unroll 8
                for (int g = 0; g < 8; g++) {
                    __m256i av = _mm256_set1_epi32((int)x86_ld32(a + 4 * g));
                    __m256i pr = offs ? _mm256_maddubs_epi16(av, q[g])
                                 : k == K_Q8_0
                                     ? _mm256_maddubs_epi16(aq[g], _mm256_sign_epi8(av, q[g]))
                                     : _mm256_maddubs_epi16(q[g], av);
                    t16 = g % groups16(k) ? _mm256_add_epi16(t16, pr) : pr;
                    if (g % groups16(k) == groups16(k) - 1)
                        t = _mm256_add_epi32(t, _mm256_madd_epi16(t16, ones16));
                }
                /* sum += (d_w·d_a)·isum [+ m_w·s_a], in that order */
                __m256 d = _mm256_mul_ps(dw, _mm256_set1_ps(xd.d[c][j]));
                __m256 v = _mm256_mul_ps(d, _mm256_cvtepi32_ps(t));
                if (has_m(k)) v = _mm256_add_ps(v, _mm256_mul_ps(mw, _mm256_set1_ps(xd.s[c][j])));
                acc[c] = _mm256_add_ps(acc[c], v);
            }
        }
    }
    float t[QMR];
#pragma GCC unroll 8
    for (int c = 0; c < nc; c++) {
        _mm256_storeu_ps(t, acc[c]);
        memcpy(y + (size_t)c * ldy, t, (size_t)nr * sizeof *y);
    }
}

/* The integer sum of one block (weights at pw, activations at px) by
 * 32-byte vectors in element order; exact for every input. */
X86_INLINE int32_t block_isum(const enum qkind k, const uint8_t *pw, const uint8_t *px)
{
    const __m256i ones16 = _mm256_set1_epi16(1);
    __m256i a = _mm256_loadu_si256((const __m256i *)(px + x_qs(k)));
    __m256i p;
    if (k == K_Q8_0) {
        __m256i wv = _mm256_loadu_si256((const __m256i *)(pw + w_qs(k)));
        __m256i w0 = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(wv));
        __m256i w1 = _mm256_cvtepi8_epi16(_mm256_extracti128_si256(wv, 1));
        __m256i a0 = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(a));
        __m256i a1 = _mm256_cvtepi8_epi16(_mm256_extracti128_si256(a, 1));
        p = _mm256_add_epi32(_mm256_madd_epi16(w0, a0), _mm256_madd_epi16(w1, a1));
    } else {
        __m128i qs = _mm_loadu_si128((const __m128i *)(pw + w_qs(k)));
        __m256i q =
            _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(qs, 4), qs), _mm256_set1_epi8(0x0f));
        if (has_qh(k)) {
            /* byte e gets bit e of qh */
            const __m256i route = _mm256_setr_epi64x(0, 0x0101010101010101ll, 0x0202020202020202ll,
                                                     0x0303030303030303ll);
            const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
            __m256i h = _mm256_shuffle_epi8(_mm256_set1_epi32((int)x86_ld32(pw + w_qh(k))), route);
            h = _mm256_cmpeq_epi8(_mm256_and_si256(h, bit), bit);
            q = _mm256_or_si256(q, _mm256_and_si256(h, _mm256_set1_epi8(0x10)));
        }
        __m256i p16 = _mm256_maddubs_epi16(q, a); /* |pair| <= 2·31·128 */
        if (offset_of(k)) /* minus o·a, in int16: |o·pair| <= 2·16·128 */
            p16 = _mm256_sub_epi16(p16,
                                   _mm256_maddubs_epi16(_mm256_set1_epi8((char)offset_of(k)), a));
        p = _mm256_madd_epi16(p16, ones16);
    }
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(p), _mm256_extracti128_si256(p, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

/* vec_dot: block by block, the reference's float expression. */
X86_INLINE void qdot(const enum qkind k, int64_t n, float *s, const void *vw, const void *vx)
{
    const uint8_t *pw = vw, *px = vx;
    float sum = 0.0f;
    for (int64_t b = 0; b < n / 32; b++, pw += w_bytes(k), px += x_bytes(k)) {
        float d = _cvtsh_ss((unsigned short)x86_ld16(pw)) * _cvtsh_ss((unsigned short)x86_ld16(px));
        float v = d * (float)block_isum(k, pw, px);
        if (has_m(k))
            v = v + _cvtsh_ss((unsigned short)x86_ld16(pw + 2)) *
                        _cvtsh_ss((unsigned short)x86_ld16(px + 2));
        sum += v;
    }
    *s = sum;
}

#define QTILE_FN(name, kind, NCX)                                                                  \
    static void name##_t##NCX(int64_t n, float *y, size_t ldy, const void *w, size_t ws, int nr,   \
                              const void *x, size_t xs)                                            \
    {                                                                                              \
        qtile(kind, NCX, n, y, ldy, w, ws, nr, x, xs);                                             \
    }

/* vec_dot, the tile functions per nc and the gemm entry. */
#define QUANT_KERNELS(name, kind)                                                                  \
    static void name##_dot(int64_t n, float *s, const void *vx, const void *vy)                    \
    {                                                                                              \
        qdot(kind, n, s, vx, vy);                                                                  \
    }                                                                                              \
    QTILE_FN(name, kind, 1)                                                                        \
    QTILE_FN(name, kind, 2)                                                                        \
    QTILE_FN(name, kind, 3)                                                                        \
    QTILE_FN(name, kind, 4)                                                                        \
    static void name##_gemm(int64_t n, float *y, size_t ldy, const void *w, size_t ws, int nr,     \
                            const void *x, size_t xs, int nc)                                      \
    {                                                                                              \
        if (ws > (size_t)INT32_MAX / QMR) { /* gather offsets would overflow */                    \
            for (int c = 0; c < nc; c++)                                                           \
                for (int r = 0; r < nr; r++)                                                       \
                    name##_dot(n, y + (size_t)c * ldy + r, (const uint8_t *)w + (size_t)r * ws,    \
                               (const uint8_t *)x + (size_t)c * xs);                               \
            return;                                                                                \
        }                                                                                          \
        switch (nc) {                                                                              \
        case 1:                                                                                    \
            name##_t1(n, y, ldy, w, ws, nr, x, xs);                                                \
            break;                                                                                 \
        case 2:                                                                                    \
            name##_t2(n, y, ldy, w, ws, nr, x, xs);                                                \
            break;                                                                                 \
        case 3:                                                                                    \
            name##_t3(n, y, ldy, w, ws, nr, x, xs);                                                \
            break;                                                                                 \
        default:                                                                                   \
            name##_t4(n, y, ldy, w, ws, nr, x, xs);                                                \
            break;                                                                                 \
        }                                                                                          \
    }

QUANT_KERNELS(q4_0, K_Q4_0)
QUANT_KERNELS(q4_1, K_Q4_1)
QUANT_KERNELS(q5_0, K_Q5_0)
QUANT_KERNELS(q5_1, K_Q5_1)
QUANT_KERNELS(q8_0, K_Q8_0)

/* ---- F32, F16, BF16 ---------------------------------------------------------------- */

#define FMR 4
#define FNC 3

/* y[c·ldy + r] = Σ acc[r·ld + c] for r < nr, c < nc (ld: the tile array's
 * row length). */
X86_INLINE void store_tile(const int mr, const int nc, const __m256 *acc, const int ld, float *y,
                           size_t ldy, int nr)
{
#pragma GCC unroll 4
    for (int c = 0; c < nc; c++) {
        float *yc = y + (size_t)c * ldy;
        if (mr == 4) {
            float t[4];
            _mm_storeu_ps(t, x86_hsum4x256(acc[c], acc[ld + c], acc[2 * ld + c], acc[3 * ld + c]));
            for (int r = 0; r < nr; r++)
                yc[r] = t[r];
        } else {
#pragma GCC unroll 4
            for (int r = 0; r < mr; r++)
                if (r < nr) yc[r] = x86_hsum256(acc[r * ld + c]);
        }
    }
}

enum fkind { K_F32, K_F16, K_BF16 };

X86_INLINE size_t fsize(const enum fkind k)
{
    return k == K_F32 ? 4 : 2;
}

/* 8 elements at p (row element pointer) as floats. */
X86_INLINE __m256 fload(const enum fkind k, const uint8_t *p)
{
    if (k == K_F32) return _mm256_loadu_ps((const float *)(const void *)p);
    __m128i h = _mm_loadu_si128((const __m128i *)p);
    if (k == K_F16) return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

X86_INLINE void fstep(const enum fkind k, const int mr, const int nc, __m256 acc[FMR][FNC],
                      const uint8_t *const wr[FMR], const uint8_t *const xc[FNC], size_t off,
                      size_t pf)
{
    __m256 wv[FMR];
#pragma GCC unroll 4
    for (int r = 0; r < mr; r++) {
        _mm_prefetch((const char *)wr[r] + off + pf, _MM_HINT_T0);
        wv[r] = fload(k, wr[r] + off);
    }
#pragma GCC unroll 4
    for (int c = 0; c < nc; c++) {
        __m256 xv = fload(k, xc[c] + off);
#pragma GCC unroll 4
        for (int r = 0; r < mr; r++)
            acc[r][c] = _mm256_fmadd_ps(wv[r], xv, acc[r][c]);
    }
}

X86_INLINE void ftile(const enum fkind k, const int mr, const int nc, int64_t n, float *y,
                      size_t ldy, const void *w, size_t w_stride, int nr, const void *x,
                      size_t x_stride)
{
    const uint8_t *wr[FMR], *xc[FNC];
    __m256 acc[FMR][FNC];
#pragma GCC unroll 4
    for (int r = 0; r < mr; r++)
        wr[r] = (const uint8_t *)w + (size_t)(r < nr ? r : nr - 1) * w_stride;
#pragma GCC unroll 4
    for (int c = 0; c < nc; c++) {
        xc[c] = (const uint8_t *)x + (size_t)c * x_stride;
#pragma GCC unroll 4
        for (int r = 0; r < mr; r++)
            acc[r][c] = _mm256_setzero_ps();
    }
    const size_t es = fsize(k);
    const size_t pf = mr > 1 ? (size_t)FMR * w_stride : PF_DIST;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        fstep(k, mr, nc, acc, wr, xc, (size_t)i * es, pf);
    if (i < n) {
        /* the tail through zero-padded copies (zeros add nothing) */
        _Alignas(32) uint8_t wt[FMR][32], xt[FNC][32];
        const uint8_t *wp[FMR] = {0}, *xp[FNC] = {0};
        size_t len = (size_t)(n - i) * es;
        for (int r = 0; r < mr; r++) {
            memset(wt[r], 0, sizeof wt[r]);
            memcpy(wt[r], wr[r] + (size_t)i * es, len);
            wp[r] = wt[r];
        }
        for (int c = 0; c < nc; c++) {
            memset(xt[c], 0, sizeof xt[c]);
            memcpy(xt[c], xc[c] + (size_t)i * es, len);
            xp[c] = xt[c];
        }
        fstep(k, mr, nc, acc, wp, xp, 0, 0);
    }
    store_tile(mr, nc, &acc[0][0], FNC, y, ldy, nr);
}

#define FLOAT_KERNELS(name, kind)                                                                  \
    static void name##_dot(int64_t n, float *s, const void *vx, const void *vy)                    \
    {                                                                                              \
        ftile(kind, 1, 1, n, s, 1, vx, 0, 1, vy, 0);                                               \
    }                                                                                              \
    static void name##_t1(int64_t n, float *y, size_t ldy, const void *w, size_t ws, int nr,       \
                          const void *x, size_t xs)                                                \
    {                                                                                              \
        ftile(kind, FMR, 1, n, y, ldy, w, ws, nr, x, xs);                                          \
    }                                                                                              \
    static void name##_t2(int64_t n, float *y, size_t ldy, const void *w, size_t ws, int nr,       \
                          const void *x, size_t xs)                                                \
    {                                                                                              \
        ftile(kind, FMR, 2, n, y, ldy, w, ws, nr, x, xs);                                          \
    }                                                                                              \
    static void name##_t3(int64_t n, float *y, size_t ldy, const void *w, size_t ws, int nr,       \
                          const void *x, size_t xs)                                                \
    {                                                                                              \
        ftile(kind, FMR, 3, n, y, ldy, w, ws, nr, x, xs);                                          \
    }                                                                                              \
    static void name##_gemm(int64_t n, float *y, size_t ldy, const void *w, size_t ws, int nr,     \
                            const void *x, size_t xs, int nc)                                      \
    {                                                                                              \
        switch (nc) {                                                                              \
        case 1:                                                                                    \
            name##_t1(n, y, ldy, w, ws, nr, x, xs);                                                \
            break;                                                                                 \
        case 2:                                                                                    \
            name##_t2(n, y, ldy, w, ws, nr, x, xs);                                                \
            break;                                                                                 \
        default:                                                                                   \
            name##_t3(n, y, ldy, w, ws, nr, x, xs);                                                \
            break;                                                                                 \
        }                                                                                          \
    }

FLOAT_KERNELS(f32, K_F32)
FLOAT_KERNELS(f16, K_F16)
FLOAT_KERNELS(bf16, K_BF16)

/* ---- registration ------------------------------------------------------------------- */

static void set(struct quant_kernels *k, quant_vec_dot_fn dot, quant_gemm_fn gemm, int mr, int nc)
{
    k->vec_dot = dot;
    k->gemm = gemm;
    k->gemm_mr = mr;
    k->gemm_nc = nc;
}

void arch_avx2_legacy_init(struct quant_kernels tab[HR_TYPE_COUNT])
{
    set(&tab[HR_TYPE_F32], f32_dot, f32_gemm, FMR, FNC);
    set(&tab[HR_TYPE_F16], f16_dot, f16_gemm, FMR, FNC);
    set(&tab[HR_TYPE_BF16], bf16_dot, bf16_gemm, FMR, FNC);
    set(&tab[HR_TYPE_Q4_0], q4_0_dot, q4_0_gemm, QMR, QNC);
    set(&tab[HR_TYPE_Q4_1], q4_1_dot, q4_1_gemm, QMR, QNC);
    set(&tab[HR_TYPE_Q5_0], q5_0_dot, q5_0_gemm, QMR, QNC);
    set(&tab[HR_TYPE_Q5_1], q5_1_dot, q5_1_gemm, QMR, QNC);
    set(&tab[HR_TYPE_Q8_0], q8_0_dot, q8_0_gemm, QMR, QNC);
    /* activation converters: the vec_dot_type entries (quant_act_from_float) */
    tab[HR_TYPE_Q8_0].act_from_float = q8_0_act;
    tab[HR_TYPE_Q8_1].act_from_float = q8_1_act;
    tab[HR_TYPE_F16].act_from_float = f16_act;
    tab[HR_TYPE_BF16].act_from_float = bf16_act;
}
