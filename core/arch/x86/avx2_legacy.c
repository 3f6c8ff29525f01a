/*
 * avx2_legacy.c — AVX2 (+FMA, F16C) kernels of the float types F32, F16,
 * BF16 and of the legacy block quants Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, and the
 * activation converters run before their products (Q8_0, Q8_1, F16, BF16).
 * Registered by arch_avx2_legacy_init over the scalar table;
 * tests/test_simd_legacy.c checks each against the scalar reference.
 *
 * Integer products (legacy quants × Q8_0/Q8_1 activations): one step is one
 * 32-element block in a 256-bit register, in element order. vpmaddubsw
 * multiplies unsigned by signed bytes and adds adjacent pairs into int16
 * (saturating: every use below stays within ±32767); vpmaddwd by ones widens
 * the pairs to int32 lanes.
 *  - Q4_0/Q5_0: the unsigned value q (nibble, 5-bit value) times a, minus
 *    the activation-only o·a (o = 8, 16) from one vpmaddubsw per activation
 *    row and step, subtracted in int16: Σ (q − o)·a exactly, for any a.
 *    (|pair| ≤ 2·31·128 + 2·16·128 < 2^15.)
 *  - Q4_1/Q5_1: Σ q·a directly; the m·s term of each block is added as a
 *    vector multiply-add over 8 blocks of scales at once.
 *  - Q8_0: Σ |w|·(a·sign w) (vpsignb, vpmaddubsw). Exact when the
 *    activation quants lie in [−127, 127], which every activation quantizer
 *    guarantees (|x·127/amax| ≤ 127); a = −128 would have no negation.
 * Each int32 lane is an exact partial sum of a block's integer dot; it is
 * converted to float and multiplied by d_w·d_a (that product rounded once,
 * as in the reference). The scale products of a chunk of 8 blocks are made
 * once per tile (a gather of the fp16 fields, one vector multiply per
 * weight-row × activation-row pair) and each step broadcasts its own.
 * Results differ from the reference only by the order of float additions.
 *
 * Tiles: gemm computes QMR weight rows × up to QNC activation rows with the
 * accumulators in registers (16 ymm); a tile with fewer rows repeats its
 * last row and drops the extra results. vec_dot is the 1×1 tile. Each step
 * prefetches the weights one tile ahead: in decode every row is a short
 * stream that the hardware prefetcher does not pick up in time.
 *
 * Float types: 8 elements per step, products by FMA in f32 (exact for F16
 * and BF16 operands); a tail shorter than 8 goes through a zero-padded copy.
 */
#include "x86_common.h"

#include "../../quant_impl.h"
#include "../arch.h"

#include <stdbool.h>
#include <stddef.h>

#define PF_DIST 1024 /* vec_dot: bytes ahead in its row */

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

#define QMR 2
#define QNC 4
#define CHUNK 8 /* blocks per set of scale products */

enum qkind { K_Q4_0, K_Q4_1, K_Q5_0, K_Q5_1, K_Q8_0 };

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

X86_INLINE int offset_of(enum qkind k) /* o in Σ (q − o)·a; Q8_0 uses signs */
{
    return k == K_Q4_0 ? 8 : k == K_Q5_0 ? 16 : 0;
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
    __m256i m =
        _mm256_cmpgt_epi32(_mm256_set1_epi32(cnt), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    __m256i v =
        _mm256_mask_i32gather_epi32(_mm256_setzero_si256(), (const int *)(p + off), idx, m, 1);
    v = _mm256_and_si256(v, _mm256_set1_epi32(0xffff));
    __m256i h = _mm256_permute4x64_epi64(_mm256_packus_epi32(v, v), 0x08);
    return _mm256_cvtph_ps(_mm256_castsi256_si128(h));
}

/* The unpacked weights of one block at p: unsigned q for Q4/Q5 (element
 * order), the signed bytes for Q8_0. */
X86_INLINE __m256i load_w(const enum qkind k, const uint8_t *p, size_t pf)
{
    _mm_prefetch((const char *)p + pf, _MM_HINT_T0);
    if (k == K_Q8_0) return _mm256_loadu_si256((const __m256i *)(p + w_qs(k)));
    __m128i q = _mm_loadu_si128((const __m128i *)(p + w_qs(k)));
    __m256i v = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), _mm256_set1_epi8(0x0f));
    if (has_qh(k)) {
        /* byte e gets bit e of qh: broadcast the word, route byte e/8 to
         * byte e, keep bit e%8 */
        const __m256i route =
            _mm256_setr_epi64x(0, 0x0101010101010101ll, 0x0202020202020202ll, 0x0303030303030303ll);
        const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
        __m256i h = _mm256_shuffle_epi8(_mm256_set1_epi32((int)x86_ld32(p + w_qh(k))), route);
        h = _mm256_cmpeq_epi8(_mm256_and_si256(h, bit), bit);
        v = _mm256_or_si256(v, _mm256_and_si256(h, _mm256_set1_epi8(0x10)));
    }
    return v;
}

/* Scale products d_w·d_a of a chunk of up to CHUNK blocks for each (r, c). */
struct chunk_scales {
    _Alignas(32) float d[QMR][QNC][CHUNK];
};

/* One block (chunk index j) of an mr × nc tile; wo/xo: its byte offsets in
 * the weight and activation rows. */
X86_INLINE void qstep(const enum qkind k, const int mr, const int nc, __m256 acc[QMR][QNC],
                      const uint8_t *const wr[QMR], const uint8_t *const xc[QNC], size_t wo,
                      size_t xo, const struct chunk_scales *cs, int j, size_t pf)
{
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i q[QMR], aq[QMR];
#pragma GCC unroll 4
    for (int r = 0; r < mr; r++) {
        q[r] = load_w(k, wr[r] + wo, pf);
        if (k == K_Q8_0) aq[r] = _mm256_abs_epi8(q[r]);
    }
#pragma GCC unroll 4
    for (int c = 0; c < nc; c++) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(xc[c] + xo + x_qs(k)));
        __m256i corr = _mm256_setzero_si256();
        if (offset_of(k)) corr = _mm256_maddubs_epi16(_mm256_set1_epi8((char)offset_of(k)), a);
#pragma GCC unroll 4
        for (int r = 0; r < mr; r++) {
            __m256i p;
            if (k == K_Q8_0) {
                p = _mm256_maddubs_epi16(aq[r], _mm256_sign_epi8(a, q[r]));
            } else {
                p = _mm256_maddubs_epi16(q[r], a);
                if (offset_of(k)) p = _mm256_sub_epi16(p, corr);
            }
            __m256 t = _mm256_cvtepi32_ps(_mm256_madd_epi16(p, ones));
            acc[r][c] = _mm256_fmadd_ps(t, _mm256_broadcast_ss(&cs->d[r][c][j]), acc[r][c]);
        }
    }
}

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

X86_INLINE void qtile(const enum qkind k, const int mr, const int nc, int64_t n, float *y,
                      size_t ldy, const void *w, size_t w_stride, int nr, const void *x,
                      size_t x_stride)
{
    const uint8_t *wr[QMR], *xc[QNC];
    __m256 acc[QMR][QNC];
    struct chunk_scales cs;
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
    const int64_t nb = n / 32;
    const size_t wb = w_bytes(k), xb = x_bytes(k);
    const size_t pf = mr > 1 ? (size_t)QMR * w_stride : PF_DIST;
    for (int64_t b0 = 0; b0 < nb; b0 += CHUNK) {
        int cnt = nb - b0 < CHUNK ? (int)(nb - b0) : CHUNK;
        __m256 dw[QMR], mw[QMR];
#pragma GCC unroll 4
        for (int r = 0; r < mr; r++) {
            dw[r] = scales8(wr[r] + (size_t)b0 * wb, wb, 0, cnt);
            if (has_m(k)) mw[r] = scales8(wr[r] + (size_t)b0 * wb, wb, 2, cnt);
        }
#pragma GCC unroll 4
        for (int c = 0; c < nc; c++) {
            __m256 dx = scales8(xc[c] + (size_t)b0 * xb, xb, 0, cnt);
            __m256 sx = has_m(k) ? scales8(xc[c] + (size_t)b0 * xb, xb, 2, cnt) : dx;
#pragma GCC unroll 4
            for (int r = 0; r < mr; r++) {
                _mm256_store_ps(cs.d[r][c], _mm256_mul_ps(dw[r], dx));
                if (has_m(k)) /* Σ m_w·s_a, one term per block */
                    acc[r][c] = _mm256_fmadd_ps(mw[r], sx, acc[r][c]);
            }
        }
        for (int j = 0; j < cnt; j++)
            qstep(k, mr, nc, acc, wr, xc, (size_t)(b0 + j) * wb, (size_t)(b0 + j) * xb, &cs, j, pf);
    }
    store_tile(mr, nc, &acc[0][0], QNC, y, ldy, nr);
}

/* vec_dot (1×1 tile), the gemm entry, and one tile function per nc. */
#define QUANT_KERNELS(name, kind)                                                                  \
    static void name##_dot(int64_t n, float *s, const void *vx, const void *vy)                    \
    {                                                                                              \
        qtile(kind, 1, 1, n, s, 1, vx, 0, 1, vy, 0);                                               \
    }                                                                                              \
    static void name##_t1(int64_t n, float *y, size_t ldy, const void *w, size_t ws, int nr,       \
                          const void *x, size_t xs)                                                \
    {                                                                                              \
        qtile(kind, QMR, 1, n, y, ldy, w, ws, nr, x, xs);                                          \
    }                                                                                              \
    static void name##_t2(int64_t n, float *y, size_t ldy, const void *w, size_t ws, int nr,       \
                          const void *x, size_t xs)                                                \
    {                                                                                              \
        qtile(kind, QMR, 2, n, y, ldy, w, ws, nr, x, xs);                                          \
    }                                                                                              \
    static void name##_t3(int64_t n, float *y, size_t ldy, const void *w, size_t ws, int nr,       \
                          const void *x, size_t xs)                                                \
    {                                                                                              \
        qtile(kind, QMR, 3, n, y, ldy, w, ws, nr, x, xs);                                          \
    }                                                                                              \
    static void name##_t4(int64_t n, float *y, size_t ldy, const void *w, size_t ws, int nr,       \
                          const void *x, size_t xs)                                                \
    {                                                                                              \
        qtile(kind, QMR, 4, n, y, ldy, w, ws, nr, x, xs);                                          \
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
#define FNC 3

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
