/*
 * avx512_legacy.c — AVX-512 (F/BW/VL/DQ + VNNI) kernels of the float types
 * F32, F16, BF16 and of the legacy block quants Q4_0, Q4_1, Q5_0, Q5_1,
 * Q8_0, and the activation converters run before their products (Q8_0,
 * Q8_1, F16, BF16). Registered by arch_avx512_legacy_init over the AVX2
 * table; tests/test_simd_legacy.c checks each against the scalar reference.
 *
 * Integer products (legacy quants × Q8_0/Q8_1 activations) are bit-identical
 * to the scalar reference. Its per-block expression is kept exactly:
 * isum is an exact int32 sum, then sum += (d_w·d_a)·isum [+ m_w·s_a], block
 * after block, each product and sum rounded as the scalar code rounds them.
 * Only the integer part is reorganised, which changes nothing.
 *
 * Tiles ("row lanes"): gemm computes 16 weight rows × up to 16 activation
 * rows. Lane r of every zmm belongs to weight row r. A block's quants are
 * transposed into 8 vectors q[g] (lane r = the 4 quants of elements
 * 4g..4g+3 of row r: 4×4 dword transposes of 16-byte loads), and each
 * activation dword is broadcast to all lanes, so 8 vpdpbusd leave the
 * block's whole integer sum for 16 rows in one register; the float work is
 * then 4 vector operations per block for 16 rows. One accumulator per
 * activation row; the weights of a block are unpacked once for all of them.
 *
 * vpdpbusd multiplies unsigned by signed bytes, adding each group of 4
 * products into an int32 lane, without saturation:
 *  - Q4_0/Q5_0/Q8_0: the weights are the signed operand, w = q − o (o = 8,
 *    16; Q8_0: w itself), the activations the unsigned one, a + 128 (a XOR
 *    0x80, made once per tile): Σ (a + 128)·w − 128·Σw = Σ a·w, with Σw from
 *    the weights alone (once per block for all activation rows);
 *  - Q4_1/Q5_1: unsigned q times signed a directly; m_w·s_a is added in the
 *    float expression as the reference does.
 * vec_dot puts 16 consecutive blocks of its row in the lanes instead (the
 * activations gathered alike, the Σa correction from the activations) and
 * adds the 16 block terms in order.
 *
 * Float types: 4×6 tiles, products by FMA in f32 (exact for F16 and BF16
 * operands), 16 elements per step (BF16: 32, widened by interleaving zero
 * words, one µop per 16 values), a masked step for the tail. The reference
 * sums these in double, so they agree to float rounding (the test states
 * the bound), not bit for bit.
 */
#include "x86_common.h"

#include "../../quant_impl.h"
#include "../arch.h"
#include "pack_legacy.h"

#include <stdbool.h>
#include <stddef.h>

/* ---- activation converters ------------------------------------------------------ */

/* Per 32-element block: amax = max |x| ignoring NaN (as the scalar loop,
 * whose `a > amax` never takes a NaN), d = amax/127 stored fp16,
 * q = nearbyint(x·(127/amax)) in the current rounding mode (nearest even).
 * The multiply, the divisions and the conversions are the scalar ones, so
 * the blocks are bit-identical for finite input. */
X86_INLINE float absmax32(__m512 v0, __m512 v1)
{
    /* vmaxps returns its second operand when either is NaN: fold NaN away
     * against 0 first, then against a NaN-free value */
    __m512 m = _mm512_max_ps(_mm512_abs_ps(v1), _mm512_setzero_ps());
    m = _mm512_max_ps(_mm512_abs_ps(v0), m);
    return _mm512_reduce_max_ps(m);
}

static void q8_0_act(const float *src, void *dst, int64_t n)
{
    struct block_q8_0 *b = dst;
    for (int64_t i = 0; i < n / QK8_0; i++, src += QK8_0) {
        __m512 v0 = _mm512_loadu_ps(src), v1 = _mm512_loadu_ps(src + 16);
        float amax = absmax32(v0, v1);
        float id = amax != 0.0f ? 127.0f / amax : 0.0f;
        b[i].d = quant_f32_to_f16(amax / 127.0f);
        __m512 vid = _mm512_set1_ps(id);
        __m512i q0 = _mm512_cvtps_epi32(_mm512_mul_ps(v0, vid));
        __m512i q1 = _mm512_cvtps_epi32(_mm512_mul_ps(v1, vid));
        _mm_storeu_si128((__m128i *)b[i].qs, _mm512_cvtsepi32_epi8(q0));
        _mm_storeu_si128((__m128i *)(b[i].qs + 16), _mm512_cvtsepi32_epi8(q1));
    }
}

static void q8_1_act(const float *src, void *dst, int64_t n)
{
    struct block_q8_1 *b = dst;
    for (int64_t i = 0; i < n / QK8_1; i++, src += QK8_1) {
        __m512 v0 = _mm512_loadu_ps(src), v1 = _mm512_loadu_ps(src + 16);
        float amax = absmax32(v0, v1);
        float d = amax / 127.0f;
        float id = amax != 0.0f ? 127.0f / amax : 0.0f;
        b[i].d = quant_f32_to_f16(d);
        __m512 vid = _mm512_set1_ps(id);
        __m512i q0 = _mm512_cvtps_epi32(_mm512_mul_ps(v0, vid));
        __m512i q1 = _mm512_cvtps_epi32(_mm512_mul_ps(v1, vid));
        _mm_storeu_si128((__m128i *)b[i].qs, _mm512_cvtsepi32_epi8(q0));
        _mm_storeu_si128((__m128i *)(b[i].qs + 16), _mm512_cvtsepi32_epi8(q1));
        int sum = _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
        b[i].s = quant_f32_to_f16((float)sum * d);
    }
}

/* fp32 -> fp16 by vcvtps2ph with round-to-nearest-even: the same result as
 * quant_f32_to_f16 for every input (NaN quieted, payload top bits kept). */
static void f16_act(const float *src, void *dst, int64_t n)
{
    uint16_t *h = dst;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm256_storeu_si256((__m256i *)(h + i),
                            _mm512_cvtps_ph(_mm512_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        __m256i v = _mm512_cvtps_ph(_mm512_maskz_loadu_ps(m, src + i), _MM_FROUND_TO_NEAREST_INT);
        _mm256_mask_storeu_epi16(h + i, m, v);
    }
}

/* fp32 -> bf16 in integers, as quant_f32_to_bf16: (u + 0x7fff + lsb) >> 16,
 * NaN -> (u >> 16) | 64. (vcvtneps2bf16 would flush subnormals.) */
X86_INLINE __m256i bf16_round16(__m512 v)
{
    __m512i u = _mm512_castps_si512(v);
    __m512i hi = _mm512_srli_epi32(u, 16);
    __m512i r = _mm512_add_epi32(u, _mm512_set1_epi32(0x7fff));
    r = _mm512_srli_epi32(_mm512_add_epi32(r, _mm512_and_si512(hi, _mm512_set1_epi32(1))), 16);
    __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)),
                                            _mm512_set1_epi32(0x7f800000));
    r = _mm512_mask_or_epi32(r, nan, hi, _mm512_set1_epi32(64));
    return _mm512_cvtepi32_epi16(r);
}

static void bf16_act(const float *src, void *dst, int64_t n)
{
    uint16_t *h = dst;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm256_storeu_si256((__m256i *)(h + i), bf16_round16(_mm512_loadu_ps(src + i)));
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        _mm256_mask_storeu_epi16(h + i, m, bf16_round16(_mm512_maskz_loadu_ps(m, src + i)));
    }
}

/* ---- legacy quants × Q8_0 / Q8_1 ------------------------------------------------ */

#define QMR PK_ROWS /* weight rows per tile: one per int32 lane (16) */
#define QNC 16     /* activation rows per tile */
#define CH 16      /* blocks per chunk of activation-side data */
#define PF_EVERY 2 /* decode: prefetch every this many blocks, one tile ahead */
#define CG 8       /* activation rows whose dot chains are interleaved (two per row) */
/* Decode on packed weights: software prefetch of the qs stream into L1
 * PK_PF bytes ahead and into L2 PK_PF2 bytes ahead. Measured in place on
 * qwen2.5-0.5b Q4_K_M generation (Q5_0 and Q8_0 are 81% of its bytes), two
 * threads, best of 4 runs on the shared development Xeon, packed copies in
 * 4 KB / 2 MB pages: 60.8 / 69.9 tok/s; L1 4 KB ahead only (as before):
 * 51.2 / 57.6; L1 4 KB + L2 16 KB: 59.1 / 69.0; L1 1 KB + L2 4 KB: 51.8 /
 * 59.0. Prefetching the qh and d streams too gained nothing. */
#ifndef PK_PF
#define PK_PF 2048
#endif
#ifndef PK_PF2
#define PK_PF2 16384
#endif







X86_INLINE int offset_log2(enum qkind k) /* o = 2^this in Σ (q − o)·a; 0: none */
{
    return k == K_Q4_0 ? 3 : k == K_Q5_0 ? 4 : k == K_Q8_0 ? 7 : 0;
}



/* 16 fp16 patterns in the low halves of the dwords of v, as floats. */
X86_INLINE __m512 f16_lo(__m512i v)
{
    return _mm512_cvtph_ps(_mm512_cvtepi32_epi16(v));
}

/* Q5: adds 16 to the quants whose 5th bit is set. h lane i holds the qh
 * word of lane i's block; group g takes bits 4g..4g+3, i.e. nibble g%2 of
 * byte g/2: spread that byte over the lane, then test one bit per byte. */
X86_INLINE void add_high_bits(__m512i h, __m512i q[8])
{
    const __m512i lo = _mm512_set1_epi32(0x08040201), hi = _mm512_set1_epi32((int)0x80402010);
    const __m512i base = _mm512_set4_epi32(0x0c0c0c0c, 0x08080808, 0x04040404, 0);
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) {
        __m512i t = _mm512_shuffle_epi8(h, _mm512_add_epi8(base, _mm512_set1_epi8((char)j)));
        q[2 * j] = _mm512_mask_add_epi8(q[2 * j], _mm512_test_epi8_mask(t, lo), q[2 * j],
                                        _mm512_set1_epi8(0x10));
        q[2 * j + 1] = _mm512_mask_add_epi8(q[2 * j + 1], _mm512_test_epi8_mask(t, hi),
                                            q[2 * j + 1], _mm512_set1_epi8(0x10));
    }
}

/* The quants of one block as 8 vectors of 16 lanes: q[g] lane i holds the
 * unsigned quants (nibble, 5-bit value, or w XOR 0x80 for Q8_0) of elements
 * 4g..4g+3 of the block at p + off[i] (off: byte offsets, < 2^31). Gathers
 * read 4 bytes at a time, all inside the blocks; masked-off lanes read
 * nothing and hold 0. */
X86_INLINE void quants16(const enum qkind k, const uint8_t *p, __m512i off, __mmask16 m,
                         __m512i q[8])
{
    const __m512i zero = _mm512_setzero_si512();
    if (k == K_Q8_0) {
#pragma GCC unroll 8
        for (int g = 0; g < 8; g++)
            q[g] =
                _mm512_xor_si512(_mm512_mask_i32gather_epi32(zero, m, off, p + w_qs(k) + 4 * g, 1),
                                 _mm512_set1_epi8((char)0x80));
        return;
    }
#pragma GCC unroll 4
    for (int g = 0; g < 4; g++) {
        __m512i v = _mm512_mask_i32gather_epi32(zero, m, off, p + w_qs(k) + 4 * g, 1);
        q[g] = _mm512_and_si512(v, _mm512_set1_epi8(0x0f));
        q[g + 4] = _mm512_and_si512(_mm512_srli_epi16(v, 4), _mm512_set1_epi8(0x0f));
    }
    if (has_qh(k)) add_high_bits(_mm512_mask_i32gather_epi32(zero, m, off, p + w_qh(k), 1), q);
}

/* 16 weight rows' 16 bytes at p + ro[r] as 4 vectors: v[j] lane r = dword j
 * of row r (4×4 dword transposes of 16-byte loads: cheaper than gathers). */
X86_INLINE void transpose16(const uint8_t *p, const size_t ro[QMR], __m512i v[4])
{
    __m512i z[4];
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) {
        z[i] = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(p + ro[i])));
        z[i] = _mm512_mask_broadcast_i32x4(z[i], 0x00f0,
                                           _mm_loadu_si128((const __m128i *)(p + ro[i + 4])));
        z[i] = _mm512_mask_broadcast_i32x4(z[i], 0x0f00,
                                           _mm_loadu_si128((const __m128i *)(p + ro[i + 8])));
        z[i] = _mm512_mask_broadcast_i32x4(z[i], 0xf000,
                                           _mm_loadu_si128((const __m128i *)(p + ro[i + 12])));
    }
    /* 128-bit lane L of z[i] holds row 4L+i; transpose each lane's 4×4 */
    __m512i t0 = _mm512_unpacklo_epi32(z[0], z[1]), t1 = _mm512_unpackhi_epi32(z[0], z[1]);
    __m512i t2 = _mm512_unpacklo_epi32(z[2], z[3]), t3 = _mm512_unpackhi_epi32(z[2], z[3]);
    v[0] = _mm512_unpacklo_epi64(t0, t2);
    v[1] = _mm512_unpackhi_epi64(t0, t2);
    v[2] = _mm512_unpacklo_epi64(t1, t3);
    v[3] = _mm512_unpackhi_epi64(t1, t3);
}

/* 4-bit kinds: q[8] from v[4] (v[g] lane r = dword g of row r's qs), h the
 * qh words (Q5_0/Q5_1; ignored otherwise), as quants_rows describes. */
X86_INLINE void nibbles(const enum qkind k, const bool sgn, const __m512i v[4], __m512i h,
                        __m512i q[8])
{
#pragma GCC unroll 4
    for (int g = 0; g < 4; g++) {
        q[g] = _mm512_and_si512(v[g], _mm512_set1_epi8(0x0f));
        q[g + 4] = _mm512_and_si512(_mm512_srli_epi16(v[g], 4), _mm512_set1_epi8(0x0f));
    }
    if (has_qh(k)) add_high_bits(h, q);
    if (sgn && offset_log2(k)) {
        const __m512i o = _mm512_set1_epi8((char)(1 << offset_log2(k)));
#pragma GCC unroll 8
        for (int g = 0; g < 8; g++)
            q[g] = _mm512_sub_epi8(q[g], o);
    }
}

/* The quants of one block of 16 weight rows, q[g] lane r = elements
 * 4g..4g+3 of row r: `sgn`: the signed q − o (w for Q8_0), else unsigned
 * (q, w XOR 0x80 for Q8_0; Q4_1/Q5_1 are always these). */
X86_INLINE void quants_rows(const enum qkind k, const bool sgn, const uint8_t *p,
                            const size_t ro[QMR], __m512i roff, __m512i q[8])
{
    if (k == K_Q8_0) {
        transpose16(p + w_qs(k), ro, q);
        transpose16(p + w_qs(k) + 16, ro, q + 4);
        if (!sgn)
#pragma GCC unroll 8
            for (int g = 0; g < 8; g++)
                q[g] = _mm512_xor_si512(q[g], _mm512_set1_epi8((char)0x80));
        return;
    }
    __m512i v[4];
    transpose16(p + w_qs(k), ro, v);
    nibbles(k, sgn, v, has_qh(k) ? _mm512_i32gather_epi32(roff, p + w_qh(k), 1) : v[0], q);
}

/* The q[8] of block j of a panel (as quants_rows). */
X86_INLINE void quants_packed(const enum qkind k, const bool sgn, const uint8_t *pan, int64_t nb,
                              int64_t j, __m512i q[8])
{
    const uint8_t *pq = pan + (size_t)j * pk_qs(k);
    if (k == K_Q8_0) {
#pragma GCC unroll 8
        for (int g = 0; g < 8; g++) {
            q[g] = _mm512_load_si512(pq + 64 * g);
            if (!sgn) q[g] = _mm512_xor_si512(q[g], _mm512_set1_epi8((char)0x80));
        }
        return;
    }
    __m512i v[4];
#pragma GCC unroll 4
    for (int g = 0; g < 4; g++)
        v[g] = _mm512_load_si512(pq + 64 * g);
    if (k == K_Q4_0) { /* nibbles q XOR 8 (pk_repack) */
        const __m512i hi = _mm512_set1_epi8((char)0xf0);
        if (sgn) { /* a nibble n = q XOR 8 in a byte's high half is 16·(q − 8) as int8 */
#pragma GCC unroll 4
            for (int g = 0; g < 4; g++) {
                q[g] = _mm512_and_si512(_mm512_slli_epi16(v[g], 4), hi);
                q[g + 4] = _mm512_and_si512(v[g], hi);
            }
            return;
        }
#pragma GCC unroll 4
        for (int g = 0; g < 4; g++)
            v[g] = _mm512_xor_si512(v[g], _mm512_set1_epi8((char)0x88));
    }
    __m512i h = v[0];
    if (has_qh(k)) h = _mm512_load_si512(pan + (size_t)nb * pk_qs(k) + (size_t)j * 64);
    nibbles(k, sgn, v, h, q);
}

/* The d|m dwords of block j of a panel (Q4_1/Q5_1), as the gather of d|m gives. */
X86_INLINE __m512i dm_packed(const enum qkind k, const uint8_t *pan, int64_t nb, int64_t j)
{
    const uint8_t *p = pan + (size_t)nb * (pk_qs(k) + (has_qh(k) ? 64 : 0)) + (size_t)j * pk_dm(k);
    return _mm512_load_si512(p);
}

/* The 16 d of block j of a panel as floats (kinds without m). */
X86_INLINE __m512 d_packed(const enum qkind k, const uint8_t *pan, int64_t nb, int64_t j)
{
    const uint8_t *p = pan + (size_t)nb * (pk_qs(k) + (has_qh(k) ? 64 : 0)) + (size_t)j * pk_dm(k);
    return _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)p));
}

/* Activation-side data of a chunk of blocks, per activation row: d_a (and
 * Q8_1's s) as floats and, for the offset kinds, the quants made unsigned
 * (a XOR 0x80 = a + 128). */
struct xchunk {
    _Alignas(64) uint8_t q[QNC][CH][32];
    float d[QNC][CH];
    float s[QNC][CH];
    int32_t corr[QNC][CH];
};

/* Σ of the 32 int8 quants at p. */
X86_INLINE int32_t sum_q8(const uint8_t *p)
{
    __m256i u =
        _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)p), _mm256_set1_epi8((char)0x80));
    __m256i s = _mm256_sad_epu8(u, _mm256_setzero_si256()); /* Σ (a + 128) per 8 bytes */
    __m128i t = _mm_add_epi64(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
    t = _mm_add_epi64(t, _mm_unpackhi_epi64(t, t));
    return _mm_cvtsi128_si32(t) - 32 * 128;
}

/* One tile: 16 weight rows (rows >= nr repeat row nr−1; only nr are
 * stored) × nc activation rows. Lane r of acc[c] is the reference's running
 * sum for (row r, activation c), updated block by block with the
 * reference's float expression, so results are the reference's bit for
 * bit. The integer sum of a block:
 *  - Q4_0/Q5_0/Q8_0: signed weights w = q − o (w itself for Q8_0) times
 *    unsigned a + 128: Σ (a + 128)·w − 128·Σw, the correction from the
 *    weights alone (once per block for all activation rows);
 *  - Q4_1/Q5_1: unsigned q times signed a, no correction. */
X86_INLINE void qtile(const enum qkind k, const bool pk, const int nc, int64_t n, float *y,
                      size_t ldy, const void *w, size_t w_stride, int nr, const void *x,
                      size_t x_stride)
{
    const size_t wb = w_bytes(k), xb = x_bytes(k);
    /* offset kinds with enough activation rows: signed weights and the
     * correction from Σw; with one or two (decode), unsigned weights and
     * the correction −o·Σa from each activation block is cheaper */
    const bool offs = offset_log2(k) != 0 && nc > 2, acorr = offset_log2(k) != 0 && nc <= 2;
    const int64_t nb = n / 32;
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    size_t ro[QMR];
    for (int r = 0; r < QMR; r++)
        ro[r] = (size_t)(r < nr ? r : nr - 1) * w_stride;
    const __m512i roff = _mm512_mullo_epi32(_mm512_min_epi32(iota, _mm512_set1_epi32(nr - 1)),
                                            _mm512_set1_epi32((int)w_stride));
    const __m512i xoff = _mm512_mullo_epi32(iota, _mm512_set1_epi32((int)xb));
    const uint8_t *xc[QNC];
    __m512 acc[QNC];
#pragma GCC unroll 16
    for (int c = 0; c < nc; c++) {
        xc[c] = (const uint8_t *)x + (size_t)c * x_stride;
        acc[c] = _mm512_setzero_ps();
    }
    struct xchunk xd;
    for (int64_t b0 = 0; b0 < nb; b0 += CH) {
        int cnt = nb - b0 < CH ? (int)(nb - b0) : CH;
        __mmask16 cm = (__mmask16)((1u << cnt) - 1);
        for (int c = 0; c < nc; c++) {
            const uint8_t *p = xc[c] + (size_t)b0 * xb;
            __m512i ds = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), cm, xoff, p, 1);
            _mm512_store_ps(xd.d[c], f16_lo(ds));
            if (has_m(k)) _mm512_store_ps(xd.s[c], f16_lo(_mm512_srli_epi32(ds, 16)));
            if (acorr)
                for (int j = 0; j < cnt; j++)
                    xd.corr[c][j] = -sum_q8(p + (size_t)j * xb + x_qs(k)) * (1 << offset_log2(k));
            if (offs)
                for (int j = 0; j < cnt; j++)
                    _mm256_store_si256(
                        (__m256i *)xd.q[c][j],
                        _mm256_xor_si256(
                            _mm256_loadu_si256((const __m256i *)(p + (size_t)j * xb + x_qs(k))),
                            _mm256_set1_epi8((char)0x80)));
        }
        for (int j = 0; j < cnt; j++) {
            __m512i dm = _mm512_setzero_si512(), q[8];
            __m512 dw, mw = _mm512_setzero_ps();
            if (pk) { /* w: the panel, read in sequence */
                if (nc <= 2) /* decode: the qs stream ahead (across pages), L1 and L2 */
                    for (size_t o = 0; o < pk_qs(k); o += 64) {
                        const char *at = (const char *)w + (size_t)(b0 + j) * pk_qs(k) + o;
                        _mm_prefetch(at + PK_PF, _MM_HINT_T0);
                        _mm_prefetch(at + PK_PF2, _MM_HINT_T1);
                    }
                if (has_m(k)) {
                    dm = dm_packed(k, w, nb, b0 + j);
                    dw = f16_lo(dm);
                } else {
                    dw = d_packed(k, w, nb, b0 + j);
                    /* Q4_0 signed quants come as 16·w: (d_w/16·d_a)·(16·isum)
                     * is (d_w·d_a)·isum exactly (powers of 2, all normal) */
                    if (k == K_Q4_0 && offs) dw = _mm512_mul_ps(dw, _mm512_set1_ps(0.0625f));
                }
                quants_packed(k, offs, w, nb, b0 + j, q);
            } else {
                const uint8_t *p = (const uint8_t *)w + (size_t)(b0 + j) * wb;
                if (nc <= 2 && j % PF_EVERY == 0) /* decode: fetch the next tile's rows ahead */
                    for (int r = 0; r < QMR; r++)
                        _mm_prefetch((const char *)p + ro[r] + QMR * w_stride, _MM_HINT_T1);
                dm = _mm512_i32gather_epi32(roff, p, 1); /* d, and m for Q4_1/Q5_1 */
                quants_rows(k, offs, p, ro, roff, q);
                dw = f16_lo(dm);
            }
            if (has_m(k)) mw = f16_lo(_mm512_srli_epi32(dm, 16));
            __m512i corr = _mm512_setzero_si512();
            if (offs) {
                /* −128·Σw as a shallow tree: it heads every dot chain */
                const __m512i one = _mm512_set1_epi8(1);
                __m512i c0 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), one, q[0]);
                __m512i c1 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), one, q[1]);
                __m512i c2 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), one, q[2]);
                __m512i c3 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), one, q[3]);
                c0 = _mm512_dpbusd_epi32(c0, one, q[4]);
                c1 = _mm512_dpbusd_epi32(c1, one, q[5]);
                c2 = _mm512_dpbusd_epi32(c2, one, q[6]);
                c3 = _mm512_dpbusd_epi32(c3, one, q[7]);
                corr = _mm512_add_epi32(_mm512_add_epi32(c0, c1), _mm512_add_epi32(c2, c3));
                corr = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(corr, 7));
            }
            /* activation rows in groups of CG, their dpbusd chains
             * interleaved so that enough independent ones are in flight */
#pragma GCC unroll 16
            for (int c0 = 0; c0 < nc; c0 += CG) {
                const int cg = nc - c0 < CG ? nc - c0 : CG;
                const uint8_t *a[CG];
                __m512i t[CG];
#pragma GCC unroll 8
                for (int i = 0; i < cg; i++) {
                    a[i] = offs ? xd.q[c0 + i][j] : xc[c0 + i] + (size_t)(b0 + j) * xb + x_qs(k);
                    t[i] = acorr ? _mm512_set1_epi32(xd.corr[c0 + i][j]) : corr;
                }
                __m512i u[CG];
#pragma GCC unroll 8
                for (int i = 0; i < cg; i++)
                    u[i] = _mm512_setzero_si512();
#pragma GCC unroll 8
                for (int g = 0; g < 4; g++)
#pragma GCC unroll 8
                    for (int i = 0; i < cg; i++) {
                        __m512i av = _mm512_set1_epi32((int)x86_ld32(a[i] + 4 * g));
                        __m512i bv = _mm512_set1_epi32((int)x86_ld32(a[i] + 4 * g + 16));
                        t[i] = offs ? _mm512_dpbusd_epi32(t[i], av, q[g])
                                    : _mm512_dpbusd_epi32(t[i], q[g], av);
                        u[i] = offs ? _mm512_dpbusd_epi32(u[i], bv, q[g + 4])
                                    : _mm512_dpbusd_epi32(u[i], q[g + 4], bv);
                    }
#pragma GCC unroll 8
                for (int i = 0; i < cg; i++)
                    t[i] = _mm512_add_epi32(t[i], u[i]);
#pragma GCC unroll 8
                for (int i = 0; i < cg; i++) {
                    /* sum += (d_w·d_a)·isum [+ m_w·s_a], in that order */
                    const int c = c0 + i;
                    __m512 d = _mm512_mul_ps(dw, _mm512_set1_ps(xd.d[c][j]));
                    __m512 v = _mm512_mul_ps(d, _mm512_cvtepi32_ps(t[i]));
                    if (has_m(k))
                        v = _mm512_add_ps(v, _mm512_mul_ps(mw, _mm512_set1_ps(xd.s[c][j])));
                    acc[c] = _mm512_add_ps(acc[c], v);
                }
            }
        }
    }
    const __mmask16 keep = (__mmask16)((1u << nr) - 1);
#pragma GCC unroll 16
    for (int c = 0; c < nc; c++)
        _mm512_mask_storeu_ps(y + (size_t)c * ldy, keep, acc[c]);
}

/* vec_dot: 16 consecutive blocks of the row per step, one per lane (the
 * activations gathered the same way); the per-block terms are then added
 * in block order, as the reference does. */
X86_INLINE void qdot(const enum qkind k, int64_t n, float *s, const void *vw, const void *vx)
{
    const size_t wb = w_bytes(k), xb = x_bytes(k);
    const int64_t nb = n / 32;
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i woff = _mm512_mullo_epi32(iota, _mm512_set1_epi32((int)wb));
    const __m512i xoff = _mm512_mullo_epi32(iota, _mm512_set1_epi32((int)xb));
    const __m512i zero = _mm512_setzero_si512();
    float sum = 0.0f;
    for (int64_t b0 = 0; b0 < nb; b0 += 16) {
        int cnt = nb - b0 < 16 ? (int)(nb - b0) : 16;
        __mmask16 m = (__mmask16)((1u << cnt) - 1);
        const uint8_t *pw = (const uint8_t *)vw + (size_t)b0 * wb;
        const uint8_t *px = (const uint8_t *)vx + (size_t)b0 * xb;
        __m512i q[8], a[8];
        quants16(k, pw, woff, m, q);
        __m512i sa = zero;
#pragma GCC unroll 8
        for (int g = 0; g < 8; g++) {
            a[g] = _mm512_mask_i32gather_epi32(zero, m, xoff, px + x_qs(k) + 4 * g, 1);
            if (offset_log2(k)) sa = _mm512_dpbusd_epi32(sa, _mm512_set1_epi8(1), a[g]);
        }
        __m512i t = _mm512_sub_epi32(zero, _mm512_slli_epi32(sa, (unsigned)offset_log2(k)));
#pragma GCC unroll 8
        for (int g = 0; g < 8; g++)
            t = _mm512_dpbusd_epi32(t, q[g], a[g]);
        __m512i dmw = _mm512_mask_i32gather_epi32(zero, m, woff, pw, 1);
        __m512i dsx = _mm512_mask_i32gather_epi32(zero, m, xoff, px, 1);
        __m512 v = _mm512_mul_ps(_mm512_mul_ps(f16_lo(dmw), f16_lo(dsx)), _mm512_cvtepi32_ps(t));
        if (has_m(k))
            v = _mm512_add_ps(v, _mm512_mul_ps(f16_lo(_mm512_srli_epi32(dmw, 16)),
                                               f16_lo(_mm512_srli_epi32(dsx, 16))));
        float tv[16];
        _mm512_storeu_ps(tv, v);
        for (int i = 0; i < cnt; i++)
            sum += tv[i];
    }
    *s = sum;
}

/* The tile functions per nc, and their gemm entry (nc >= 1). */
#define QTILE_FN(name, kind, NCX)                                                                  \
    static void name##_t##NCX(int64_t n, float *y, size_t ldy, const void *w, size_t ws, int nr,   \
                              const void *x, size_t xs)                                            \
    {                                                                                              \
        qtile(kind, false, NCX, n, y, ldy, w, ws, nr, x, xs);                                      \
    }                                                                                              \
    static void name##_p##NCX(int64_t n, float *y, size_t ldy, const void *w, int nr,              \
                              const void *x, size_t xs)                                            \
    {                                                                                              \
        qtile(kind, true, NCX, n, y, ldy, w, 0, nr, x, xs);                                        \
    }

#define QUANT_KERNELS(name, kind)                                                                  \
    static void name##_dot(int64_t n, float *s, const void *vx, const void *vy)                    \
    {                                                                                              \
        qdot(kind, n, s, vx, vy);                                                                  \
    }                                                                                              \
    QTILE_FN(name, kind, 1)                                                                        \
    QTILE_FN(name, kind, 2)                                                                        \
    QTILE_FN(name, kind, 3)                                                                        \
    QTILE_FN(name, kind, 4)                                                                        \
    QTILE_FN(name, kind, 5)                                                                        \
    QTILE_FN(name, kind, 6)                                                                        \
    QTILE_FN(name, kind, 7)                                                                        \
    QTILE_FN(name, kind, 8)                                                                        \
    QTILE_FN(name, kind, QNC)                                                                      \
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
        while (nc > 0) {                                                                           \
            int t = nc >= QNC ? QNC : nc >= 8 ? 8 : nc;                                            \
            switch (t) {                                                                           \
            case 1:                                                                                \
                name##_t1(n, y, ldy, w, ws, nr, x, xs);                                            \
                break;                                                                             \
            case 2:                                                                                \
                name##_t2(n, y, ldy, w, ws, nr, x, xs);                                            \
                break;                                                                             \
            case 3:                                                                                \
                name##_t3(n, y, ldy, w, ws, nr, x, xs);                                            \
                break;                                                                             \
            case 4:                                                                                \
                name##_t4(n, y, ldy, w, ws, nr, x, xs);                                            \
                break;                                                                             \
            case 5:                                                                                \
                name##_t5(n, y, ldy, w, ws, nr, x, xs);                                            \
                break;                                                                             \
            case 6:                                                                                \
                name##_t6(n, y, ldy, w, ws, nr, x, xs);                                            \
                break;                                                                             \
            case 7:                                                                                \
                name##_t7(n, y, ldy, w, ws, nr, x, xs);                                            \
                break;                                                                             \
            case 8:                                                                                \
                name##_t8(n, y, ldy, w, ws, nr, x, xs);                                            \
                break;                                                                             \
            default:                                                                               \
                name##_tQNC(n, y, ldy, w, ws, nr, x, xs);                                          \
                break;                                                                             \
            }                                                                                      \
            y += (size_t)t * ldy;                                                                  \
            x = (const uint8_t *)x + (size_t)t * xs;                                               \
            nc -= t;                                                                               \
        }                                                                                          \
    }

/* The repacked path of a kind: the tiles on panels, by nc as name##_gemm. */
#define PACKED_KERNELS(name, kind)                                                                 \
    static size_t name##_packed_size(int64_t n_in, int64_t n_out)                                  \
    {                                                                                              \
        return pk_size(kind, n_in, n_out);                                                         \
    }                                                                                              \
    static void name##_repack(const void *src, void *dst, int64_t n_in, int64_t n_out)             \
    {                                                                                              \
        pk_repack(kind, src, dst, n_in, n_out);                                                    \
    }                                                                                              \
    static void name##_gemm_packed(int64_t n, float *y, size_t ldy, const void *wp, int64_t row0,  \
                                   int nr, const void *x, size_t xs, int nc)                       \
    {                                                                                              \
        static void (*const tile[QNC + 1])(int64_t, float *, size_t, const void *, int,            \
                                           const void *, size_t) = {                               \
            NULL,       name##_p1, name##_p2, name##_p3, name##_p4, name##_p5,                     \
            name##_p6,  name##_p7, name##_p8, NULL,      NULL,      NULL,                          \
            NULL,       NULL,      NULL,      NULL,      name##_pQNC};                             \
        const uint8_t *pan = (const uint8_t *)wp + (size_t)(row0 / QMR) * pk_panel(kind, n / 32);  \
        while (nc > 0) {                                                                           \
            int t = nc >= QNC ? QNC : nc >= 8 ? 8 : nc;                                            \
            tile[t](n, y, ldy, pan, nr, x, xs);                                                    \
            y += (size_t)t * ldy;                                                                  \
            x = (const uint8_t *)x + (size_t)t * xs;                                               \
            nc -= t;                                                                               \
        }                                                                                          \
    }

QUANT_KERNELS(q4_0, K_Q4_0)
QUANT_KERNELS(q4_1, K_Q4_1)
QUANT_KERNELS(q5_0, K_Q5_0)
QUANT_KERNELS(q5_1, K_Q5_1)
QUANT_KERNELS(q8_0, K_Q8_0)
PACKED_KERNELS(q4_0, K_Q4_0)
PACKED_KERNELS(q4_1, K_Q4_1)
PACKED_KERNELS(q5_0, K_Q5_0)
PACKED_KERNELS(q5_1, K_Q5_1)
PACKED_KERNELS(q8_0, K_Q8_0)

/* ---- F32, F16, BF16 ---------------------------------------------------------------- */

#define FMR 4
#define FNC 6

enum fkind { K_F32, K_F16, K_BF16 };

/* Elements per step: BF16 takes 32 (one 64-byte load per operand, widened
 * in two halves), F32 and F16 take 16. */
X86_INLINE int fstep_len(const enum fkind k)
{
    return k == K_BF16 ? 32 : 16;
}

X86_INLINE size_t fsize(const enum fkind k)
{
    return k == K_F32 ? 4 : 2;
}

/* Half h of a step from index i of a row as 16 floats (only the first
 * elements of mask m when masked). BF16 widens by interleaving zero words
 * below each value: the 16 floats of a half come in a permuted order, the
 * same for weights and activations, which a dot product does not notice. */
X86_INLINE __m512 fload(const enum fkind k, const bool masked, __mmask32 m, const void *row,
                        int64_t i, int h)
{
    if (k == K_F32)
        return masked ? _mm512_maskz_loadu_ps((__mmask16)m, (const float *)row + i)
                      : _mm512_loadu_ps((const float *)row + i);
    const uint16_t *p = (const uint16_t *)row + i;
    if (k == K_F16) {
        __m256i v = masked ? _mm256_maskz_loadu_epi16((__mmask16)m, p)
                           : _mm256_loadu_si256((const __m256i *)p);
        return _mm512_cvtph_ps(v);
    }
    __m512i v = masked ? _mm512_maskz_loadu_epi16(m, p) : _mm512_loadu_si512(p);
    __m512i z = _mm512_setzero_si512();
    return _mm512_castsi512_ps(h ? _mm512_unpackhi_epi16(z, v) : _mm512_unpacklo_epi16(z, v));
}

X86_INLINE void fstep(const enum fkind k, const int mr, const int nc, const bool masked,
                      __mmask32 m, __m512 acc[FMR][FNC], const void *const wr[FMR],
                      const void *const xc[FNC], int64_t i, size_t pf)
{
    if (nc <= 2) /* decode: fetch the next tile's rows ahead */
#pragma GCC unroll 4
        for (int r = 0; r < mr; r++)
            _mm_prefetch((const char *)wr[r] + (size_t)i * fsize(k) + pf, _MM_HINT_T1);
    for (int h = 0; h < (k == K_BF16 ? 2 : 1); h++) { /* constant bound: unrolled */
        __m512 wv[FMR];
#pragma GCC unroll 4
        for (int r = 0; r < mr; r++)
            wv[r] = fload(k, masked, m, wr[r], i, h);
#pragma GCC unroll 8
        for (int c = 0; c < nc; c++) {
            __m512 xv = fload(k, masked, m, xc[c], i, h);
#pragma GCC unroll 4
            for (int r = 0; r < mr; r++)
                acc[r][c] = _mm512_fmadd_ps(wv[r], xv, acc[r][c]);
        }
    }
}

/* y[c·ldy + r] = Σ acc[r][c] for r < nr, c < nc. */
X86_INLINE void fstore(const int mr, const int nc, __m512 acc[FMR][FNC], float *y, size_t ldy,
                       int nr)
{
#pragma GCC unroll 8
    for (int c = 0; c < nc; c++) {
        float *yc = y + (size_t)c * ldy;
        if (mr == 4) {
            float t[4];
            _mm_storeu_ps(t, x86_hsum4x512(acc[0][c], acc[1][c], acc[2][c], acc[3][c]));
            for (int r = 0; r < nr; r++)
                yc[r] = t[r];
        } else {
#pragma GCC unroll 4
            for (int r = 0; r < mr; r++)
                if (r < nr) yc[r] = _mm512_reduce_add_ps(acc[r][c]);
        }
    }
}

X86_INLINE void ftile(const enum fkind k, const int mr, const int nc, int64_t n, float *y,
                      size_t ldy, const void *w, size_t w_stride, int nr, const void *x,
                      size_t x_stride)
{
    const void *wr[FMR], *xc[FNC];
    __m512 acc[FMR][FNC];
#pragma GCC unroll 4
    for (int r = 0; r < mr; r++)
        wr[r] = (const uint8_t *)w + (size_t)(r < nr ? r : nr - 1) * w_stride;
#pragma GCC unroll 8
    for (int c = 0; c < nc; c++) {
        xc[c] = (const uint8_t *)x + (size_t)c * x_stride;
#pragma GCC unroll 4
        for (int r = 0; r < mr; r++)
            acc[r][c] = _mm512_setzero_ps();
    }
    const size_t pf = mr > 1 ? (size_t)FMR * w_stride : 1024;
    const int len = fstep_len(k);
    int64_t i = 0;
    for (; i + len <= n; i += len)
        fstep(k, mr, nc, false, 0, acc, wr, xc, i, pf);
    if (i < n) fstep(k, mr, nc, true, (__mmask32)((1ull << (n - i)) - 1), acc, wr, xc, i, pf);
    fstore(mr, nc, acc, y, ldy, nr);
}

#define FTILE_FN(name, kind, NCX)                                                                  \
    static void name##_t##NCX(int64_t n, float *y, size_t ldy, const void *w, size_t ws, int nr,   \
                              const void *x, size_t xs)                                            \
    {                                                                                              \
        ftile(kind, FMR, NCX, n, y, ldy, w, ws, nr, x, xs);                                        \
    }

#define FLOAT_KERNELS(name, kind)                                                                  \
    static void name##_dot(int64_t n, float *s, const void *vx, const void *vy)                    \
    {                                                                                              \
        ftile(kind, 1, 1, n, s, 1, vx, 0, 1, vy, 0);                                               \
    }                                                                                              \
    FTILE_FN(name, kind, 1)                                                                        \
    FTILE_FN(name, kind, 2)                                                                        \
    FTILE_FN(name, kind, 3)                                                                        \
    FTILE_FN(name, kind, 4)                                                                        \
    FTILE_FN(name, kind, 5)                                                                        \
    FTILE_FN(name, kind, 6)                                                                        \
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
        case 3:                                                                                    \
            name##_t3(n, y, ldy, w, ws, nr, x, xs);                                                \
            break;                                                                                 \
        case 4:                                                                                    \
            name##_t4(n, y, ldy, w, ws, nr, x, xs);                                                \
            break;                                                                                 \
        case 5:                                                                                    \
            name##_t5(n, y, ldy, w, ws, nr, x, xs);                                                \
            break;                                                                                 \
        default:                                                                                   \
            name##_t6(n, y, ldy, w, ws, nr, x, xs);                                                \
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
    /* the level below's repacked layout does not fit these tiles */
    k->packed_size = NULL;
    k->repack = NULL;
    k->gemm_packed = NULL;
}

#define SET_PACKED(k, name)                                                                        \
    ((k)->packed_size = name##_packed_size, (k)->repack = name##_repack,                          \
     (k)->gemm_packed = name##_gemm_packed)

void arch_avx512_legacy_init(struct quant_kernels tab[HR_TYPE_COUNT])
{
    set(&tab[HR_TYPE_F32], f32_dot, f32_gemm, FMR, FNC);
    set(&tab[HR_TYPE_F16], f16_dot, f16_gemm, FMR, FNC);
    set(&tab[HR_TYPE_BF16], bf16_dot, bf16_gemm, FMR, FNC);
    set(&tab[HR_TYPE_Q4_0], q4_0_dot, q4_0_gemm, QMR, QNC);
    set(&tab[HR_TYPE_Q4_1], q4_1_dot, q4_1_gemm, QMR, QNC);
    set(&tab[HR_TYPE_Q5_0], q5_0_dot, q5_0_gemm, QMR, QNC);
    set(&tab[HR_TYPE_Q5_1], q5_1_dot, q5_1_gemm, QMR, QNC);
    set(&tab[HR_TYPE_Q8_0], q8_0_dot, q8_0_gemm, QMR, QNC);
    SET_PACKED(&tab[HR_TYPE_Q4_0], q4_0);
    SET_PACKED(&tab[HR_TYPE_Q4_1], q4_1);
    SET_PACKED(&tab[HR_TYPE_Q5_0], q5_0);
    SET_PACKED(&tab[HR_TYPE_Q5_1], q5_1);
    SET_PACKED(&tab[HR_TYPE_Q8_0], q8_0);
    /* activation converters: the vec_dot_type entries (quant_act_from_float) */
    tab[HR_TYPE_Q8_0].act_from_float = q8_0_act;
    tab[HR_TYPE_Q8_1].act_from_float = q8_1_act;
    tab[HR_TYPE_F16].act_from_float = f16_act;
    tab[HR_TYPE_BF16].act_from_float = bf16_act;
}
