/*
 * avx512_legacy.c — AVX-512 (F/BW/VL/DQ + VNNI) kernels of the float types
 * F32, F16, BF16 and of the legacy block quants Q4_0, Q4_1, Q5_0, Q5_1,
 * Q8_0, and the activation converters run before their products (Q8_0,
 * Q8_1, F16, BF16). Registered by arch_avx512_legacy_init over the AVX2
 * table; tests/test_simd_legacy.c checks each against the scalar reference.
 *
 * Integer products (legacy quants × Q8_0/Q8_1 activations). One step covers
 * two consecutive 32-element blocks b, b+1 in one 512-bit register, their
 * 4-byte groups interleaved: dword lane L holds elements 4j..4j+3 (j = L/2)
 * of block b + (L&1). The order of the elements inside a block does not
 * matter to a dot product as long as both operands use the same one, and
 * this order lets a block pair's two fp16 scales enter as one broadcast
 * 32-bit word converted to 16 floats {d_b, d_b+1, d_b, d_b+1, ...}.
 *
 * vpdpbusd multiplies unsigned by signed bytes and adds each group of 4
 * products to an int32 lane, without saturation. The weights are made
 * unsigned by an offset o whose contribution is removed exactly, in the
 * integer domain:  Σ (q − o)·a = Σ q·a − o·Σa.  The lane's −o·Σa depends
 * only on the activations; it is computed once per activation row and step
 * and fed to vpdpbusd as its accumulator input. Q4_0: q = nibble, o = 8;
 * Q5_0: q = 5-bit value, o = 16; Q8_0: q = w XOR 0x80 = w + 128, o = 128.
 * Q4_1/Q5_1 need no offset; their m·s term is one more multiply-add, on
 * lanes 0 and 1 only (one lane per block). So every int32 lane is an exact
 * partial sum of a block's integer dot; it is converted to float (exact,
 * |lane| < 2^24) and multiplied by the block's d_w·d_a (that product rounded
 * once, as the reference rounds it). Results differ from the reference only
 * by the order of the float additions.
 *
 * Tiles: gemm computes QMR weight rows × up to QNC activation rows. A step's
 * unpacked weights are reused for every activation row of the tile, its
 * activations for every weight row, and the QMR·QNC accumulators stay in
 * registers (32 zmm). vec_dot is the 1×1 tile. A tile with fewer than QMR
 * rows repeats its last row (the extra results are dropped): only edge tiles
 * pay for it.
 *
 * Float types: 16 elements per step, products by FMA in f32 (exact for F16
 * and BF16 operands), a masked step for a tail shorter than 16.
 */
#include "x86_common.h"

#include "../../quant_impl.h"
#include "../arch.h"

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

#define QMR 8 /* weight rows per tile: QRP pairs, one pair per zmm */
#define QRP (QMR / 2)
#define QNC 4        /* activation rows per tile */
#define CHUNK 8      /* blocks per set of scale products */
#define PF_DIST 1024 /* vec_dot: bytes ahead in its row */

enum qkind { K_Q4_0, K_Q4_1, K_Q5_0, K_Q5_1, K_Q8_0 };

/* Block geometry of the weight kind and of its activation format. */
X86_INLINE size_t w_bytes(enum qkind k)
{
    return k == K_Q4_0   ? sizeof(struct block_q4_0)
           : k == K_Q4_1 ? sizeof(struct block_q4_1)
           : k == K_Q5_0 ? sizeof(struct block_q5_0)
           : k == K_Q5_1 ? sizeof(struct block_q5_1)
                         : sizeof(struct block_q8_0);
}

X86_INLINE size_t w_qs(enum qkind k)
{
    return k == K_Q4_0   ? offsetof(struct block_q4_0, qs)
           : k == K_Q4_1 ? offsetof(struct block_q4_1, qs)
           : k == K_Q5_0 ? offsetof(struct block_q5_0, qs)
           : k == K_Q5_1 ? offsetof(struct block_q5_1, qs)
                         : offsetof(struct block_q8_0, qs);
}

X86_INLINE size_t w_qh(enum qkind k)
{
    return k == K_Q5_0 ? offsetof(struct block_q5_0, qh) : offsetof(struct block_q5_1, qh);
}

X86_INLINE bool has_m(enum qkind k) /* Q4_1/Q5_1: x = q·d + m, Q8_1 activations */
{
    return k == K_Q4_1 || k == K_Q5_1;
}

X86_INLINE bool has_qh(enum qkind k)
{
    return k == K_Q5_0 || k == K_Q5_1;
}

X86_INLINE int offset_of(enum qkind k) /* o in Σ (q − o)·a */
{
    return k == K_Q4_0 ? 8 : k == K_Q5_0 ? 16 : k == K_Q8_0 ? 128 : 0;
}

X86_INLINE size_t x_bytes(enum qkind k)
{
    return has_m(k) ? sizeof(struct block_q8_1) : sizeof(struct block_q8_0);
}

X86_INLINE size_t x_qs(enum qkind k)
{
    return has_m(k) ? offsetof(struct block_q8_1, qs) : offsetof(struct block_q8_0, qs);
}

/* The fp16 field at byte `off` of cnt (<= 8) consecutive blocks of `stride`
 * bytes, as 8 floats (0 past cnt). The gather reads 4 bytes per block,
 * within it (blocks are at least 18 bytes). */
X86_INLINE __m256 scales8(const uint8_t *p, const size_t stride, const size_t off, int cnt)
{
    const __m256i idx = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                                           _mm256_set1_epi32((int)stride));
    __mmask8 m = (__mmask8)(cnt >= 8 ? 0xffu : (1u << cnt) - 1);
    __m256i v = _mm256_mmask_i32gather_epi32(_mm256_setzero_si256(), m, idx, p + off, 1);
    return _mm256_cvtph_ps(_mm256_cvtepi32_epi16(v));
}

/* Lane L <- dword L/2 of (L odd ? b : a), from the low 256 bits of each. */
X86_INLINE __m512i ilv8(__m512i a, __m512i b)
{
    const __m512i idx = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    return _mm512_permutex2var_epi32(a, idx, b);
}

X86_INLINE __m512 ilv8_ps(__m256 a, __m256 b)
{
    return _mm512_castsi512_ps(ilv8(_mm512_castsi256_si512(_mm256_castps_si256(a)),
                                    _mm512_castsi256_si512(_mm256_castps_si256(b))));
}

/* The unpacked weights of one block of rows p0 (even lanes) and p1 (odd
 * lanes) in the pair layout: lane L holds elements 4j..4j+3, j = L/2. */
X86_INLINE __m512i load_wpair(const enum qkind k, const uint8_t *p0, const uint8_t *p1, size_t pf)
{
    _mm_prefetch((const char *)p0 + pf, _MM_HINT_T0);
    _mm_prefetch((const char *)p1 + pf, _MM_HINT_T0);
    if (k == K_Q8_0) {
        __m512i a = _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(p0 + w_qs(k))));
        __m512i b = _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(p1 + w_qs(k))));
        return _mm512_xor_si512(ilv8(a, b), _mm512_set1_epi8((char)0x80));
    }
    /* nibbles: dwords 0..3 of both rows' qs interleaved, twice; the upper
     * copy shifted right by 4 gives the high nibbles (elements 16..31) */
    const __m512i idx = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 0, 16, 1, 17, 2, 18, 3, 19);
    const __m512i shift = _mm512_setr_epi64(0, 0, 0, 0, 0x0004000400040004ll, 0x0004000400040004ll,
                                            0x0004000400040004ll, 0x0004000400040004ll);
    __m512i a = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)(p0 + w_qs(k))));
    __m512i b = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)(p1 + w_qs(k))));
    __m512i v = _mm512_permutex2var_epi32(a, idx, b);
    v = _mm512_and_si512(_mm512_srlv_epi16(v, shift), _mm512_set1_epi8(0x0f));
    if (has_qh(k)) {
        /* bit e of qh is the 5th bit of element e; byte 8j+i (i < 4) is
         * element 4j+i of row p0, byte 8j+4+i that of row p1: spread each
         * row's 32 bits over alternate nibbles of the byte mask */
        uint64_t h0 = x86_ld32(p0 + w_qh(k)), h1 = x86_ld32(p1 + w_qh(k));
        __mmask64 hb = _pdep_u64(h0, 0x0f0f0f0f0f0f0f0full) | _pdep_u64(h1, 0xf0f0f0f0f0f0f0f0ull);
        v = _mm512_mask_add_epi8(v, hb, v, _mm512_set1_epi8(0x10));
    }
    return v;
}

/* One activation block in the pair layout (each dword twice) and its lane
 * corrections −o·Σa. */
X86_INLINE void load_x(const enum qkind k, const uint8_t *p, __m512i *a, __m512i *corr)
{
    const __m512i dup = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
    *a = _mm512_permutexvar_epi32(
        dup, _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(p + x_qs(k)))));
    if (offset_of(k)) {
        __m512i sum =
            _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8((char)offset_of(k)), *a);
        *corr = _mm512_sub_epi32(_mm512_setzero_si512(), sum);
    } else {
        *corr = _mm512_setzero_si512();
    }
}

/* Scale products d_w·d_a of a chunk for each row pair and activation row:
 * d[p][c][2j + i] belongs to row 2p+i and chunk block j, so a block's pair
 * is one 64-bit broadcast matching the lane layout. */
struct chunk_scales {
    _Alignas(64) float d[QRP][QNC][2 * CHUNK];
};

/* One block (chunk index j) of a tile of rp row pairs × nc activation
 * rows; wo/xo: the block's byte offsets in the weight and activation rows. */
X86_INLINE void qstep(const enum qkind k, const int rp, const int nc, __m512 acc[QRP][QNC],
                      const uint8_t *const wr[QMR], const uint8_t *const xc[QNC], size_t wo,
                      size_t xo, const struct chunk_scales *cs, int j, size_t pf)
{
    __m512i q[QRP];
#pragma GCC unroll 4
    for (int p = 0; p < rp; p++)
        q[p] = load_wpair(k, wr[2 * p] + wo, wr[2 * p + 1] + wo, pf);
#pragma GCC unroll 4
    for (int c = 0; c < nc; c++) {
        __m512i a, corr;
        load_x(k, xc[c] + xo, &a, &corr);
#pragma GCC unroll 4
        for (int p = 0; p < rp; p++) {
            double dd;
            memcpy(&dd, &cs->d[p][c][2 * j], sizeof dd);
            __m512 d = _mm512_castpd_ps(_mm512_set1_pd(dd));
            __m512i t = _mm512_dpbusd_epi32(corr, q[p], a);
            acc[p][c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(t), d, acc[p][c]);
        }
    }
}

/* y[c·ldy + r] for r < nr: each row's 8 lanes summed as x86_hsum256 does. */
X86_INLINE void qstore(const int rp, const int nc, __m512 acc[QRP][QNC], float *y, size_t ldy,
                       int nr)
{
    const __m512i split = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
#pragma GCC unroll 4
    for (int c = 0; c < nc; c++) {
        float t[QMR];
        __m256 rows[QMR];
#pragma GCC unroll 4
        for (int p = 0; p < rp; p++) {
            __m512 v = _mm512_permutexvar_ps(split, acc[p][c]);
            rows[2 * p] = _mm512_castps512_ps256(v);
            rows[2 * p + 1] = _mm512_extractf32x8_ps(v, 1);
        }
        if (rp % 2 == 0) {
#pragma GCC unroll 4
            for (int i = 0; i < 2 * rp; i += 4)
                _mm_storeu_ps(t + i, x86_hsum4x256(rows[i], rows[i + 1], rows[i + 2], rows[i + 3]));
        } else {
#pragma GCC unroll 4
            for (int i = 0; i < 2 * rp; i++)
                t[i] = x86_hsum256(rows[i]);
        }
        float *yc = y + (size_t)c * ldy;
        if (nr == 2 * rp) {
            memcpy(yc, t, (size_t)nr * sizeof *yc);
        } else {
            for (int r = 0; r < nr; r++)
                yc[r] = t[r];
        }
    }
}

X86_INLINE void qtile(const enum qkind k, const int rp, const int nc, int64_t n, float *y,
                      size_t ldy, const void *w, size_t w_stride, int nr, const void *x,
                      size_t x_stride)
{
    const uint8_t *wr[QMR], *xc[QNC];
    __m512 acc[QRP][QNC];
    struct chunk_scales cs;
#pragma GCC unroll 8
    for (int r = 0; r < 2 * rp; r++)
        wr[r] = (const uint8_t *)w + (size_t)(r < nr ? r : nr - 1) * w_stride;
#pragma GCC unroll 4
    for (int c = 0; c < nc; c++) {
        xc[c] = (const uint8_t *)x + (size_t)c * x_stride;
#pragma GCC unroll 4
        for (int p = 0; p < rp; p++)
            acc[p][c] = _mm512_setzero_ps();
    }
    const int64_t nb = n / 32;
    const size_t wb = w_bytes(k), xb = x_bytes(k);
    const size_t pf = rp > 1 ? (size_t)QMR * w_stride : PF_DIST;
    const __m512i dup = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
    for (int64_t b0 = 0; b0 < nb; b0 += CHUNK) {
        int cnt = nb - b0 < CHUNK ? (int)(nb - b0) : CHUNK;
        /* the chunk's scale products; Q4_1/Q5_1: each block's m_w·s_a
         * goes into lane j of its (row, activation) first, as the AVX2
         * kernel does it */
        __m512 dw[QRP], mw[QRP];
#pragma GCC unroll 4
        for (int p = 0; p < rp; p++) {
            const uint8_t *p0 = wr[2 * p] + (size_t)b0 * wb, *p1 = wr[2 * p + 1] + (size_t)b0 * wb;
            dw[p] = ilv8_ps(scales8(p0, wb, 0, cnt), scales8(p1, wb, 0, cnt));
            if (has_m(k)) mw[p] = ilv8_ps(scales8(p0, wb, 2, cnt), scales8(p1, wb, 2, cnt));
        }
#pragma GCC unroll 4
        for (int c = 0; c < nc; c++) {
            const uint8_t *px = xc[c] + (size_t)b0 * xb;
            __m512 dx = _mm512_permutexvar_ps(dup, _mm512_castps256_ps512(scales8(px, xb, 0, cnt)));
            __m512 sx =
                has_m(k)
                    ? _mm512_permutexvar_ps(dup, _mm512_castps256_ps512(scales8(px, xb, 2, cnt)))
                    : dx;
#pragma GCC unroll 4
            for (int p = 0; p < rp; p++) {
                _mm512_store_ps(cs.d[p][c], _mm512_mul_ps(dw[p], dx));
                if (has_m(k)) acc[p][c] = _mm512_fmadd_ps(mw[p], sx, acc[p][c]);
            }
        }
        for (int j = 0; j < cnt; j++)
            qstep(k, rp, nc, acc, wr, xc, (size_t)(b0 + j) * wb, (size_t)(b0 + j) * xb, &cs, j, pf);
    }
    qstore(rp, nc, acc, y, ldy, nr);
}

/* vec_dot (one row pair, the row twice), the gemm entry, one tile function
 * per nc. */
#define QUANT_KERNELS(name, kind)                                                                  \
    static void name##_dot(int64_t n, float *s, const void *vx, const void *vy)                    \
    {                                                                                              \
        qtile(kind, 1, 1, n, s, 1, vx, 0, 1, vy, 0);                                               \
    }                                                                                              \
    static void name##_t1(int64_t n, float *y, size_t ldy, const void *w, size_t ws, int nr,       \
                          const void *x, size_t xs)                                                \
    {                                                                                              \
        qtile(kind, QRP, 1, n, y, ldy, w, ws, nr, x, xs);                                          \
    }                                                                                              \
    static void name##_t2(int64_t n, float *y, size_t ldy, const void *w, size_t ws, int nr,       \
                          const void *x, size_t xs)                                                \
    {                                                                                              \
        qtile(kind, QRP, 2, n, y, ldy, w, ws, nr, x, xs);                                          \
    }                                                                                              \
    static void name##_t3(int64_t n, float *y, size_t ldy, const void *w, size_t ws, int nr,       \
                          const void *x, size_t xs)                                                \
    {                                                                                              \
        qtile(kind, QRP, 3, n, y, ldy, w, ws, nr, x, xs);                                          \
    }                                                                                              \
    static void name##_t4(int64_t n, float *y, size_t ldy, const void *w, size_t ws, int nr,       \
                          const void *x, size_t xs)                                                \
    {                                                                                              \
        qtile(kind, QRP, 4, n, y, ldy, w, ws, nr, x, xs);                                          \
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
#define FNC 4

enum fkind { K_F32, K_F16, K_BF16 };

/* 16 elements from index i of a row (the first `m` of them when masked). */
X86_INLINE __m512 fload(const enum fkind k, const bool masked, __mmask16 m, const void *row,
                        int64_t i)
{
    if (k == K_F32)
        return masked ? _mm512_maskz_loadu_ps(m, (const float *)row + i)
                      : _mm512_loadu_ps((const float *)row + i);
    const uint16_t *p = (const uint16_t *)row + i;
    __m256i h = masked ? _mm256_maskz_loadu_epi16(m, p) : _mm256_loadu_si256((const __m256i *)p);
    if (k == K_F16) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

X86_INLINE size_t fsize(const enum fkind k)
{
    return k == K_F32 ? 4 : 2;
}

X86_INLINE void fstep(const enum fkind k, const int mr, const int nc, const bool masked,
                      __mmask16 m, __m512 acc[FMR][FNC], const void *const wr[FMR],
                      const void *const xc[FNC], int64_t i, size_t pf)
{
    __m512 wv[FMR];
#pragma GCC unroll 4
    for (int r = 0; r < mr; r++) {
        _mm_prefetch((const char *)wr[r] + (size_t)i * fsize(k) + pf, _MM_HINT_T0);
        wv[r] = fload(k, masked, m, wr[r], i);
    }
#pragma GCC unroll 4
    for (int c = 0; c < nc; c++) {
        __m512 xv = fload(k, masked, m, xc[c], i);
#pragma GCC unroll 4
        for (int r = 0; r < mr; r++)
            acc[r][c] = _mm512_fmadd_ps(wv[r], xv, acc[r][c]);
    }
}

/* y[c·ldy + r] = Σ acc[r][c] for r < nr, c < nc. */
X86_INLINE void fstore(const int mr, const int nc, __m512 acc[FMR][FNC], float *y, size_t ldy,
                       int nr)
{
#pragma GCC unroll 4
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
#pragma GCC unroll 4
    for (int c = 0; c < nc; c++) {
        xc[c] = (const uint8_t *)x + (size_t)c * x_stride;
#pragma GCC unroll 4
        for (int r = 0; r < mr; r++)
            acc[r][c] = _mm512_setzero_ps();
    }
    const size_t pf = mr > 1 ? (size_t)FMR * w_stride : PF_DIST;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        fstep(k, mr, nc, false, 0, acc, wr, xc, i, pf);
    if (i < n) fstep(k, mr, nc, true, (__mmask16)((1u << (n - i)) - 1), acc, wr, xc, i, pf);
    fstore(mr, nc, acc, y, ldy, nr);
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
    static void name##_t4(int64_t n, float *y, size_t ldy, const void *w, size_t ws, int nr,       \
                          const void *x, size_t xs)                                                \
    {                                                                                              \
        ftile(kind, FMR, 4, n, y, ldy, w, ws, nr, x, xs);                                          \
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
        case 3:                                                                                    \
            name##_t3(n, y, ldy, w, ws, nr, x, xs);                                                \
            break;                                                                                 \
        default:                                                                                   \
            name##_t4(n, y, ldy, w, ws, nr, x, xs);                                                \
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
    /* activation converters: the vec_dot_type entries (quant_act_from_float) */
    tab[HR_TYPE_Q8_0].act_from_float = q8_0_act;
    tab[HR_TYPE_Q8_1].act_from_float = q8_1_act;
    tab[HR_TYPE_F16].act_from_float = f16_act;
    tab[HR_TYPE_BF16].act_from_float = bf16_act;
}
