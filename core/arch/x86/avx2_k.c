/*
 * avx2_k.c — AVX2 (+FMA, F16C) kernels of the K-quants: the Q8_K activation
 * quantizer, and dot products / register-tiled matrix tiles of Q2_K, Q3_K,
 * Q4_K, Q5_K and Q6_K against Q8_K activations.
 *
 * The quantizer reproduces quant_q8_K_from_float bit for bit: the signed
 * extreme is found on the |x| bit patterns (for non-negative floats integer
 * order is float order, and the first index wins ties as in the reference),
 * iscale·x is rounded by vcvtps2dq under the default rounding mode (nearest,
 * ties to even — what the reference's 1.5·2^23 trick computes for
 * |iscale·x| <= 127), and blocks the fast path cannot reproduce exactly
 * (an inf or NaN input, or |max| so small that −127/max overflows) go to the
 * scalar reference itself.
 *
 * The dot products follow the scheme of avx512_k.c (see its header): weight
 * quants made unsigned by their format's offset, vpmaddubsw into int16 pair
 * sums, vpmaddwd by the sub-block scales into int32, offsets and mins through
 * the Q8_K bsums, exact integer sums per super-block, then the reference's
 * float expression in the reference's order — bit-identical results. AVX2
 * has 16 vector registers, so a tile is 4 weight rows × 8 activation rows
 * worked as two "row pairs" one after the other, each ymm holding one row
 * per 128-bit lane (16 quants of one group), the activation group broadcast
 * to both lanes: 8 accumulators live at a time. A single row (vec_dot, and
 * tiles with one activation row, which are memory-bound) runs 32 consecutive
 * quants per ymm instead, reducing four super-blocks at once.
 */
#include "../../quant_impl.h"
#include "../arch.h"

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#define AI static inline __attribute__((always_inline))

#include "k_common.h"

#define MR 4    /* weight rows per tile (two row pairs) */
#define NCMAX 8 /* activation rows per tile */
#ifndef PF_BYTES
#define PF_BYTES 2048 /* software prefetch distance along a weight row */
#endif
#define Q8K_QS 4
#define Q8K_BSUMS 260
#define Q8K_SIZE 292

/* An empty asm that claims to modify v: it pins each accumulation in order.
 * Without it GCC reassociates the long chains of integer adds into trees,
 * keeping dozens of partial products alive, and spills them to the stack. */
#define KEEP(v) __asm__("" : "+x"(v))






/* lane 0 = 16 bytes at a, lane 1 = 16 bytes at b */
AI __m256i ld2(const uint8_t *a, const uint8_t *b)
{
    return _mm256_inserti128_si256(_mm256_castsi128_si256(lu128(a)), lu128(b), 1);
}

AI __m256i bc128(const uint8_t *p)
{
    return _mm256_broadcastsi128_si256(lu128(p));
}

/* ---- Q8_K activation quantizer ----------------------------------------------------------- */

/* 32 int32 (a, b, c, d: 8 each, in element order) → 32 int8 in order */
AI __m256i pack32(__m256i a, __m256i b, __m256i c, __m256i d)
{
    __m256i ab = _mm256_packs_epi32(a, b), cd = _mm256_packs_epi32(c, d);
    return _mm256_permutevar8x32_epi32(_mm256_packs_epi16(ab, cd),
                                       _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

/* {Σs0, ..., Σs3 | Σs4, ..., Σs7}... as 8 int32: lane sums of 8 vectors */
AI __m256i hsum8x8(const __m256i s[8])
{
    __m256i h0 = _mm256_hadd_epi32(_mm256_hadd_epi32(s[0], s[1]), _mm256_hadd_epi32(s[2], s[3]));
    __m256i h1 = _mm256_hadd_epi32(_mm256_hadd_epi32(s[4], s[5]), _mm256_hadd_epi32(s[6], s[7]));
    return _mm256_add_epi32(_mm256_permute2x128_si256(h0, h1, 0x20),
                            _mm256_permute2x128_si256(h0, h1, 0x31));
}

static void q8_K_act(const float *x, void *dst, int64_t n)
{
    struct block_q8_K *y = dst;
    const __m256i absmask = _mm256_set1_epi32(0x7fffffff);
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        __m256i mx = _mm256_setzero_si256();
        for (int v = 0; v < QK_K / 8; v++)
            mx = _mm256_max_epi32(
                mx, _mm256_and_si256(_mm256_castps_si256(_mm256_loadu_ps(x + 8 * v)), absmask));
        __m128i m4 = _mm_max_epi32(_mm256_castsi256_si128(mx), _mm256_extracti128_si256(mx, 1));
        m4 = _mm_max_epi32(m4, _mm_shuffle_epi32(m4, _MM_SHUFFLE(1, 0, 3, 2)));
        m4 = _mm_max_epi32(m4, _mm_shuffle_epi32(m4, _MM_SHUFFLE(2, 3, 0, 1)));
        uint32_t abits = (uint32_t)_mm_cvtsi128_si32(m4);
        if (abits == 0) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        if (abits >= 0x7f800000u) { /* inf or NaN */
            quant_q8_K_from_float(x, &y[i], QK_K);
            continue;
        }
        /* first element whose |x| is the maximum */
        const __m256i target = _mm256_set1_epi32((int)abits);
        int idx = 0;
        for (int v = 0; v < QK_K / 8; v++) {
            __m256i ab = _mm256_and_si256(_mm256_castps_si256(_mm256_loadu_ps(x + 8 * v)), absmask);
            int m = _mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(ab, target)));
            if (m) {
                idx = 8 * v + __builtin_ctz((unsigned)m);
                break;
            }
        }
        float iscale = -127.0f / x[idx];
        if (!(iscale - iscale == 0.0f)) { /* −127/max overflowed */
            quant_q8_K_from_float(x, &y[i], QK_K);
            continue;
        }
        const __m256 is = _mm256_set1_ps(iscale);
        __m256i s[16];
        for (int c = 0; c < QK_K / 32; c++) {
            __m256i q[4];
            for (int k = 0; k < 4; k++)
                q[k] = _mm256_cvtps_epi32(_mm256_mul_ps(is, _mm256_loadu_ps(x + 32 * c + 8 * k)));
            _mm256_storeu_si256((__m256i *)(y[i].qs + 32 * c), pack32(q[0], q[1], q[2], q[3]));
            s[2 * c] = _mm256_add_epi32(q[0], q[1]);
            s[2 * c + 1] = _mm256_add_epi32(q[2], q[3]);
        }
        __m256i b0 = hsum8x8(s), b1 = hsum8x8(s + 8);
        _mm256_storeu_si256((__m256i *)y[i].bsums,
                            _mm256_permute4x64_epi64(_mm256_packs_epi32(b0, b1), 0xD8));
        y[i].d = 1 / iscale;
    }
}

/* ---- per-row scale decoding ------------------------------------------------------------- */








/* Per 128-bit lane: {Σa, Σb, Σc, Σd} of the lane's four dwords. */
AI __m256i red4(__m256i a, __m256i b, __m256i c, __m256i d)
{
    __m256i ab = _mm256_add_epi32(_mm256_unpacklo_epi32(a, b), _mm256_unpackhi_epi32(a, b));
    __m256i cd = _mm256_add_epi32(_mm256_unpacklo_epi32(c, d), _mm256_unpackhi_epi32(c, d));
    return _mm256_add_epi32(_mm256_unpacklo_epi64(ab, cd), _mm256_unpackhi_epi64(ab, cd));
}

/* red4 of the first min(n, 4) of acc, zeros for the rest */
AI __m256i red(const int n, const __m256i *acc)
{
    __m256i z = _mm256_setzero_si256();
    return red4(acc[0], n > 1 ? acc[1] : z, n > 2 ? acc[2] : z, n > 3 ? acc[3] : z);
}

/* both 128-bit lanes summed, in both */
AI __m256i fold_lanes(__m256i v)
{
    return _mm256_add_epi32(v, _mm256_permute2x128_si256(v, v, 0x01));
}

/* int16 scales of 8 groups (a 128-bit half) → int16 lanes, for pshufb:
 * group m of a lane occupies bytes 2m, 2m+1 */
static const uint8_t shuf_grp[8][32] = {
#define SG(m)                                                                                      \
    {                                                                                              \
        2 * m, 2 * m + 1, 2 * m, 2 * m + 1, 2 * m, 2 * m + 1, 2 * m, 2 * m + 1, 2 * m, 2 * m + 1,  \
            2 * m, 2 * m + 1, 2 * m, 2 * m + 1, 2 * m, 2 * m + 1, 2 * m, 2 * m + 1, 2 * m,         \
            2 * m + 1, 2 * m, 2 * m + 1, 2 * m, 2 * m + 1, 2 * m, 2 * m + 1, 2 * m, 2 * m + 1,     \
            2 * m, 2 * m + 1, 2 * m, 2 * m + 1                                                     \
    }
    SG(0), SG(1), SG(2), SG(3), SG(4), SG(5), SG(6), SG(7),
#undef SG
};

/* ---- the 4-row tile (two row pairs) ------------------------------------------------------ */

/*
 * The quants of group g of rows a (lane 0) and b (lane 1), unsigned, via
 * APPLY(g, W) for every g; the per-type loops reuse loaded bytes.
 */
#define PAIR_GROUPS(T, ra, rb, APPLY)                                                              \
    do {                                                                                           \
        const __m256i m0f_ = _mm256_set1_epi8(0x0f), m03_ = _mm256_set1_epi8(3);                   \
        const __m256i m30_ = _mm256_set1_epi8(0x30);                                               \
        switch (T) {                                                                               \
        case HR_TYPE_Q4_K:                                                                         \
        case HR_TYPE_Q5_K: {                                                                       \
            const size_t qo_ = T == HR_TYPE_Q4_K ? 16 : 48;                                        \
            __m256i qh_[2] = {_mm256_setzero_si256(), _mm256_setzero_si256()};                     \
            if (T == HR_TYPE_Q5_K) {                                                               \
                qh_[0] = ld2(ra + 16, rb + 16);                                                    \
                qh_[1] = ld2(ra + 32, rb + 32);                                                    \
            }                                                                                      \
            _Pragma("GCC unroll 16") for (int p_ = 0; p_ < 8; p_++)                                \
            {                                                                                      \
                __m256i R_ = ld2(ra + qo_ + 16 * p_, rb + qo_ + 16 * p_);                          \
                int g_ = 4 * (p_ / 2) + p_ % 2;                                                    \
                __m256i lo_ = _mm256_and_si256(R_, m0f_);                                          \
                __m256i hi_ = _mm256_and_si256(_mm256_srli_epi16(R_, 4), m0f_);                    \
                if (T == HR_TYPE_Q5_K) {                                                           \
                    /* bit g/2 of qh piece g%2 → bit 4 */                                        \
                    __m256i h_ = qh_[g_ % 2];                                                      \
                    int bl_ = g_ / 2, bh_ = (g_ + 2) / 2;                                          \
                    __m256i tl_ = _mm256_and_si256(h_, _mm256_set1_epi8((char)(1 << bl_)));        \
                    __m256i th_ = _mm256_and_si256(h_, _mm256_set1_epi8((char)(1 << bh_)));        \
                    tl_ = bl_ <= 4 ? _mm256_slli_epi16(tl_, 4 - bl_)                               \
                                   : _mm256_srli_epi16(tl_, bl_ - 4);                              \
                    th_ = bh_ <= 4 ? _mm256_slli_epi16(th_, 4 - bh_)                               \
                                   : _mm256_srli_epi16(th_, bh_ - 4);                              \
                    lo_ = _mm256_or_si256(lo_, tl_);                                               \
                    hi_ = _mm256_or_si256(hi_, th_);                                               \
                }                                                                                  \
                APPLY(g_, lo_);                                                                    \
                APPLY(g_ + 2, hi_);                                                                \
            }                                                                                      \
            break;                                                                                 \
        }                                                                                          \
        case HR_TYPE_Q6_K:                                                                         \
            _Pragma("GCC unroll 16") for (int ph_ = 0; ph_ < 4; ph_++)                             \
            {                                                                                      \
                __m256i H_ = ld2(ra + 128 + 16 * ph_, rb + 128 + 16 * ph_);                        \
                int h_ = ph_ / 2, l16_ = ph_ % 2;                                                  \
                __m256i hs_[4];                                                                    \
                hs_[0] = _mm256_and_si256(_mm256_slli_epi16(H_, 4), m30_);                         \
                hs_[1] = _mm256_and_si256(_mm256_slli_epi16(H_, 2), m30_);                         \
                hs_[2] = _mm256_and_si256(H_, m30_);                                               \
                hs_[3] = _mm256_and_si256(_mm256_srli_epi16(H_, 2), m30_);                         \
                _Pragma("GCC unroll 16") for (int odd_ = 0; odd_ < 2; odd_++)                      \
                {                                                                                  \
                    size_t lo_off_ = 16 * (size_t)(4 * h_ + 2 * odd_ + l16_);                      \
                    __m256i L_ = ld2(ra + lo_off_, rb + lo_off_);                                  \
                    APPLY(8 * h_ + 2 * odd_ + l16_,                                                \
                          _mm256_or_si256(_mm256_and_si256(L_, m0f_), hs_[odd_]));                 \
                    APPLY(8 * h_ + 2 * (odd_ + 2) + l16_,                                          \
                          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(L_, 4), m0f_),        \
                                          hs_[odd_ + 2]));                                         \
                }                                                                                  \
            }                                                                                      \
            break;                                                                                 \
        default: {                                                                                 \
            const size_t qo_ = T == HR_TYPE_Q2_K ? 16 : 32;                                        \
            __m256i hm_[2] = {_mm256_setzero_si256(), _mm256_setzero_si256()};                     \
            if (T == HR_TYPE_Q3_K) {                                                               \
                hm_[0] = ld2(ra, rb);                                                              \
                hm_[1] = ld2(ra + 16, rb + 16);                                                    \
            }                                                                                      \
            _Pragma("GCC unroll 16") for (int pq_ = 0; pq_ < 4; pq_++)                             \
            {                                                                                      \
                __m256i R_ = ld2(ra + qo_ + 16 * pq_, rb + qo_ + 16 * pq_);                        \
                int h_ = pq_ / 2, l16_ = pq_ % 2;                                                  \
                _Pragma("GCC unroll 16") for (int gg_ = 0; gg_ < 4; gg_++)                         \
                {                                                                                  \
                    int g_ = 8 * h_ + 2 * gg_ + l16_;                                              \
                    __m256i q_ = _mm256_and_si256(_mm256_srli_epi16(R_, 2 * gg_), m03_);           \
                    if (T == HR_TYPE_Q3_K) {                                                       \
                        int bt_ = g_ / 2; /* bit bt_ of hmask → bit 2 */                         \
                        __m256i t_ =                                                               \
                            _mm256_and_si256(hm_[g_ % 2], _mm256_set1_epi8((char)(1 << bt_)));     \
                        t_ = bt_ <= 2 ? _mm256_slli_epi16(t_, 2 - bt_)                             \
                                      : _mm256_srli_epi16(t_, bt_ - 2);                            \
                        q_ = _mm256_or_si256(q_, t_);                                              \
                    }                                                                              \
                    APPLY(g_, q_);                                                                 \
                }                                                                                  \
            }                                                                                      \
            break;                                                                                 \
        }                                                                                          \
        }                                                                                          \
        (void)m03_;                                                                                \
        (void)m30_;                                                                                \
    } while (0)

/*
 * y[c*ldy + r] = Σ_k W_r[k]·X_c[k] for r < nr, c < NC; rows[] holds 4
 * pointers (duplicates past nr).
 */
AI void tile4(const int T, const int NC, int64_t nb, float *y, size_t ldy, const uint8_t **rows,
              int nr, const uint8_t *x, size_t x_stride)
{
    const size_t bs = blk_size(T);
    const int NV = (NC + 3) / 4; /* output vectors per row pair: 4 columns each */
    __m256 sum[2][NCMAX / 4];
#pragma GCC unroll 16
    for (int v = 0; v < NCMAX / 4; v++)
        sum[0][v] = sum[1][v] = _mm256_setzero_ps();
    const __m256i rowlanes = _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1);
    const __m256i collanes = _mm256_setr_epi32(0, 1, 2, 3, 0, 1, 2, 3);

    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *b[MR];
#pragma GCC unroll 16
        for (int r = 0; r < MR; r++)
            b[r] = rows[r] + (size_t)i * bs;
        const uint8_t *xq[NCMAX];
#pragma GCC unroll 16
        for (int c = 0; c < NC; c++)
            xq[c] = x + (size_t)c * x_stride + (size_t)i * Q8K_SIZE;
#pragma GCC unroll 16
        for (int r = 0; r < MR; r++)
            for (size_t o = 0; o < bs; o += 64)
                _mm_prefetch((const char *)b[r] + PF_BYTES + o, _MM_HINT_T0);

        __m256 dy[NCMAX / 4];
#pragma GCC unroll 16
        for (int v = 0; v < NV; v++) {
            float dyv[4];
#pragma GCC unroll 16
            for (int c = 0; c < 4; c++)
                dyv[c] = 4 * v + c < NC ? ldf(xq[4 * v + c]) : 0.0f;
            dy[v] = _mm256_permutevar8x32_ps(
                _mm256_castps128_ps256(_mm_setr_ps(dyv[0], dyv[1], dyv[2], dyv[3])), collanes);
        }

#pragma GCC unroll 16
        for (int pr = 0; pr < 2; pr++) {
            /* a compiler barrier: without it the activation loads of the
             * second pair are merged with the first's and the 16 × NC
             * vectors spill to the stack */
            __asm__ __volatile__("" ::: "memory");
            const uint8_t *ra = b[2 * pr], *rb = b[2 * pr + 1];
            struct rowsc sa = row_scales(T, ra), sb = row_scales(T, rb);

            /* bsums terms: lane r of the pair, per column */
            __m256i mlo = _mm256_permute2x128_si256(sa.mc, sb.mc, 0x20);
            __m256i mhi = _mm256_permute2x128_si256(sa.mc, sb.mc, 0x31);
            __m256i acc[NCMAX], msum[NCMAX / 4];
#pragma GCC unroll 16
            for (int c = 0; c < NC; c++)
                acc[c] = _mm256_add_epi32(_mm256_madd_epi16(bc128(xq[c] + Q8K_BSUMS), mlo),
                                          _mm256_madd_epi16(bc128(xq[c] + Q8K_BSUMS + 16), mhi));
            if (has_min(T)) {
#pragma GCC unroll 16
                for (int v = 0; v < NV; v++)
                    msum[v] = red(NC - 4 * v, acc + 4 * v);
#pragma GCC unroll 16
                for (int c = 0; c < NC; c++)
                    acc[c] = _mm256_setzero_si256();
            }

            /* scales: lane r = row r's 8 int16 scales of groups 0..7 / 8..15 */
            __m256i slo = _mm256_permute2x128_si256(sa.sc, sb.sc, 0x20);
            __m256i shi = _mm256_permute2x128_si256(sa.sc, sb.sc, 0x31);

#define APPLY2(g, W)                                                                               \
    do {                                                                                           \
        __m256i S_ = _mm256_shuffle_epi8((g) < 8 ? slo : shi,                                      \
                                         _mm256_loadu_si256((const __m256i *)shuf_grp[(g) % 8]));  \
        __m256i W_ = (W);                                                                          \
        _Pragma("GCC unroll 16") for (int c_ = 0; c_ < NC; c_++)                                   \
        {                                                                                          \
            __m256i P_ = _mm256_maddubs_epi16(W_, bc128(xq[c_] + Q8K_QS + 16 * (g)));              \
            acc[c_] = _mm256_add_epi32(acc[c_], _mm256_madd_epi16(P_, S_));                        \
            KEEP(acc[c_]);                                                                         \
        }                                                                                          \
    } while (0)

            PAIR_GROUPS(T, ra, rb, APPLY2);
#undef APPLY2

            /* lane 4r + c; the reference's float expression */
            uint16_t dh[8] = {sa.d, sb.d, 0, 0, 0, 0, 0, 0};
            uint16_t mh[8] = {sa.dmin, sb.dmin, 0, 0, 0, 0, 0, 0};
            __m256 dv = _mm256_permutevar8x32_ps(
                _mm256_castps128_ps256(_mm_cvtph_ps(_mm_loadu_si128((const __m128i *)dh))),
                rowlanes);
            __m256 mv = _mm256_permutevar8x32_ps(
                _mm256_castps128_ps256(_mm_cvtph_ps(_mm_loadu_si128((const __m128i *)mh))),
                rowlanes);
#pragma GCC unroll 16
            for (int v = 0; v < NV; v++) {
                __m256i isum = red(NC - 4 * v, acc + 4 * v);
                __m256 t = _mm256_mul_ps(_mm256_mul_ps(dv, dy[v]), _mm256_cvtepi32_ps(isum));
                if (has_min(T))
                    t = _mm256_sub_ps(
                        t, _mm256_mul_ps(_mm256_mul_ps(mv, dy[v]), _mm256_cvtepi32_ps(msum[v])));
                sum[pr][v] = _mm256_add_ps(sum[pr][v], t);
            }
        }
    }

    float out[2][NCMAX / 4][8];
#pragma GCC unroll 16
    for (int v = 0; v < NV; v++) {
        _mm256_storeu_ps(out[0][v], sum[0][v]);
        _mm256_storeu_ps(out[1][v], sum[1][v]);
    }
    for (int c = 0; c < NC; c++)
        for (int r = 0; r < nr; r++)
            y[(size_t)c * ldy + (size_t)r] = out[r / 2][c / 4][4 * (r % 2) + c % 4];
}

/* ---- one weight row ------------------------------------------------------------------------ */

/* The unsigned quants of elements 32it..32it+31 (groups 2it, 2it+1) of one row. */
AI __m256i row_quants(const int T, const uint8_t *b, int it)
{
    const __m256i m0f = _mm256_set1_epi8(0x0f), m03 = _mm256_set1_epi8(3);
    switch (T) {
    case HR_TYPE_Q2_K:
    case HR_TYPE_Q3_K: {
        int h = it / 4, gg = it % 4;
        __m256i q = _mm256_and_si256(
            _mm256_srli_epi16(lu256(b + (T == HR_TYPE_Q2_K ? 16 : 32) + 32 * h), 2 * gg), m03);
        if (T == HR_TYPE_Q2_K) return q;
        /* hmask[l] bit it → bit 2 */
        __m256i t = _mm256_and_si256(lu256(b), _mm256_set1_epi8((char)(1 << it)));
        t = it <= 2 ? _mm256_slli_epi16(t, 2 - it) : _mm256_srli_epi16(t, it - 2);
        return _mm256_or_si256(q, t);
    }
    case HR_TYPE_Q4_K:
    case HR_TYPE_Q5_K: {
        __m256i raw = lu256(b + (T == HR_TYPE_Q4_K ? 16 : 48) + 32 * (it / 2));
        __m256i q = _mm256_and_si256(it % 2 ? _mm256_srli_epi16(raw, 4) : raw, m0f);
        if (T == HR_TYPE_Q4_K) return q;
        /* qh[l] bit it → bit 4 */
        __m256i t = _mm256_and_si256(lu256(b + 16), _mm256_set1_epi8((char)(1 << it)));
        t = it <= 4 ? _mm256_slli_epi16(t, 4 - it) : _mm256_srli_epi16(t, it - 4);
        return _mm256_or_si256(q, t);
    }
    default: { /* Q6_K: element 128h + 32gg + l */
        int h = it / 4, gg = it % 4;
        __m256i ql = lu256(b + 64 * h + 32 * (gg & 1));
        __m256i lo = _mm256_and_si256(gg >= 2 ? _mm256_srli_epi16(ql, 4) : ql, m0f);
        __m256i qh = lu256(b + 128 + 32 * h);
        __m256i hb = gg == 0   ? _mm256_slli_epi16(qh, 4)
                     : gg == 1 ? _mm256_slli_epi16(qh, 2)
                     : gg == 2 ? qh
                               : _mm256_srli_epi16(qh, 2);
        return _mm256_or_si256(lo, _mm256_and_si256(hb, _mm256_set1_epi8(0x30)));
    }
    }
}

/* dword j of chunk it's scale vector = group 2it + j/4 */
static const int32_t idx_it[4][8] = {
    {0, 0, 0, 0, 1, 1, 1, 1},
    {2, 2, 2, 2, 3, 3, 3, 3},
    {4, 4, 4, 4, 5, 5, 5, 5},
    {6, 6, 6, 6, 7, 7, 7, 7},
};

/* One row against NC (<= 4) activation rows: y[c*ldy] for c < NC. */
AI void tile1(const int T, const int NC, int64_t nb, float *y, size_t ldy, const uint8_t *w,
              const uint8_t *x, size_t x_stride)
{
    const size_t bs = blk_size(T);
    __m128 sum = _mm_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *b = w + (size_t)i * bs;
        const uint8_t *xq[NCMAX];
#pragma GCC unroll 16
        for (int c = 0; c < NC; c++)
            xq[c] = x + (size_t)c * x_stride + (size_t)i * Q8K_SIZE;
        for (size_t o = 0; o < bs; o += 64)
            _mm_prefetch((const char *)b + PF_BYTES + o, _MM_HINT_T0);

        struct rowsc rs = row_scales(T, b);
        __m256i acc[NCMAX], accm[NCMAX];
#pragma GCC unroll 16
        for (int c = 0; c < NC; c++) {
            __m256i t = _mm256_madd_epi16(lu256(xq[c] + Q8K_BSUMS), rs.mc);
            if (has_min(T)) {
                accm[c] = t;
                acc[c] = _mm256_setzero_si256();
            } else {
                acc[c] = t;
            }
        }
        /* dword scale vectors: sc in both int16 halves, groups 0..7 / 8..15 */
        __m256i s0 = _mm256_cvtepu16_epi32(_mm256_castsi256_si128(rs.sc));
        __m256i s1 = _mm256_cvtepu16_epi32(_mm256_extracti128_si256(rs.sc, 1));
        s0 = _mm256_or_si256(s0, _mm256_slli_epi32(s0, 16));
        s1 = _mm256_or_si256(s1, _mm256_slli_epi32(s1, 16));
#pragma GCC unroll 16
        for (int it = 0; it < 8; it++) {
            __m256i S = _mm256_permutevar8x32_epi32(
                it < 4 ? s0 : s1, _mm256_loadu_si256((const __m256i *)idx_it[it % 4]));
            __m256i W = row_quants(T, b, it);
#pragma GCC unroll 16
            for (int c = 0; c < NC; c++) {
                __m256i P = _mm256_maddubs_epi16(W, lu256(xq[c] + Q8K_QS + 32 * it));
                acc[c] = _mm256_add_epi32(acc[c], _mm256_madd_epi16(P, S));
            }
        }

        /* lane c (of 4) */
        __m128i isum, msum = _mm_setzero_si128();
        if (has_min(T) && NC <= 2) {
            __m256i z = _mm256_setzero_si256();
            __m256i v =
                fold_lanes(red4(acc[0], NC > 1 ? acc[1] : z, accm[0], NC > 1 ? accm[1] : z));
            isum = _mm256_castsi256_si128(v);
            msum = _mm_shuffle_epi32(isum, _MM_SHUFFLE(1, 0, 3, 2));
        } else {
            isum = _mm256_castsi256_si128(fold_lanes(red(NC, acc)));
            if (has_min(T)) msum = _mm256_castsi256_si128(fold_lanes(red(NC, accm)));
        }
        float dyv[4];
#pragma GCC unroll 16
        for (int c = 0; c < 4; c++)
            dyv[c] = c < NC ? ldf(xq[c]) : 0.0f;
        __m128 dy = _mm_setr_ps(dyv[0], dyv[1], dyv[2], dyv[3]);
        __m128 d = _mm_set1_ps(_cvtsh_ss(rs.d));
        __m128 t = _mm_mul_ps(_mm_mul_ps(d, dy), _mm_cvtepi32_ps(isum));
        if (has_min(T)) {
            __m128 dm = _mm_set1_ps(_cvtsh_ss(rs.dmin));
            t = _mm_sub_ps(t, _mm_mul_ps(_mm_mul_ps(dm, dy), _mm_cvtepi32_ps(msum)));
        }
        sum = _mm_add_ps(sum, t);
    }
    float out[4];
    _mm_storeu_ps(out, sum);
#pragma GCC unroll 16
    for (int c = 0; c < NC; c++)
        y[(size_t)c * ldy] = out[c];
}

/*
 * NB (1 or 4) consecutive super-blocks of one row against one activation
 * row, added to *sum one block after another as the reference does; four
 * blocks share one integer reduction and one set of float operations
 * (lane j = block j), which a memory-bound stream cannot otherwise afford.
 */
AI void blocks1(const int T, const int NB, const uint8_t *w, const uint8_t *x, float *sum)
{
    const size_t bs = blk_size(T);
    __m256i acc[4], accm[4];
    uint16_t dh[8] = {0}, mh[8] = {0};
    float dyv[4] = {0, 0, 0, 0};
#pragma GCC unroll 4
    for (int j = 0; j < NB; j++) {
        const uint8_t *b = w + (size_t)j * bs, *xq = x + (size_t)j * Q8K_SIZE;
        for (size_t o = 0; o < bs; o += 64)
            _mm_prefetch((const char *)b + PF_BYTES + o, _MM_HINT_T0);
        struct rowsc rs = row_scales(T, b);
        dh[j] = rs.d;
        mh[j] = rs.dmin;
        dyv[j] = ldf(xq);
        __m256i t = _mm256_madd_epi16(lu256(xq + Q8K_BSUMS), rs.mc);
        __m256i a = has_min(T) ? _mm256_setzero_si256() : t;
        accm[j] = t;
        __m256i s0 = _mm256_cvtepu16_epi32(_mm256_castsi256_si128(rs.sc));
        __m256i s1 = _mm256_cvtepu16_epi32(_mm256_extracti128_si256(rs.sc, 1));
        s0 = _mm256_or_si256(s0, _mm256_slli_epi32(s0, 16));
        s1 = _mm256_or_si256(s1, _mm256_slli_epi32(s1, 16));
#pragma GCC unroll 8
        for (int it = 0; it < 8; it++) {
            __m256i S = _mm256_permutevar8x32_epi32(
                it < 4 ? s0 : s1, _mm256_loadu_si256((const __m256i *)idx_it[it % 4]));
            __m256i P = _mm256_maddubs_epi16(row_quants(T, b, it), lu256(xq + Q8K_QS + 32 * it));
            a = _mm256_add_epi32(a, _mm256_madd_epi16(P, S));
            KEEP(a);
        }
        acc[j] = a;
    }
    /* lane j: block j's integer sums */
    __m128i isum, msum = _mm_setzero_si128();
    const __m256i z = _mm256_setzero_si256();
    if (NB == 1) {
        isum = _mm256_castsi256_si128(fold_lanes(red4(acc[0], has_min(T) ? accm[0] : z, z, z)));
        msum = _mm_shuffle_epi32(isum, _MM_SHUFFLE(3, 2, 0, 1));
    } else {
        isum = _mm256_castsi256_si128(fold_lanes(red4(acc[0], acc[1], acc[2], acc[3])));
        if (has_min(T))
            msum = _mm256_castsi256_si128(fold_lanes(red4(accm[0], accm[1], accm[2], accm[3])));
    }
    __m128 dy = _mm_loadu_ps(dyv);
    __m128 t = _mm_mul_ps(_mm_mul_ps(_mm_cvtph_ps(_mm_loadu_si128((const __m128i *)dh)), dy),
                          _mm_cvtepi32_ps(isum));
    if (has_min(T))
        t = _mm_sub_ps(
            t, _mm_mul_ps(_mm_mul_ps(_mm_cvtph_ps(_mm_loadu_si128((const __m128i *)mh)), dy),
                          _mm_cvtepi32_ps(msum)));
    float tv[4];
    _mm_storeu_ps(tv, t);
    float s = *sum;
    for (int j = 0; j < NB; j++)
        s += tv[j];
    *sum = s;
}

AI float dot1(const int T, int64_t nb, const uint8_t *w, const uint8_t *x)
{
    const size_t bs = blk_size(T);
    float sum = 0.0f;
    int64_t i = 0;
    for (; i + 4 <= nb; i += 4)
        blocks1(T, 4, w + (size_t)i * bs, x + (size_t)i * Q8K_SIZE, &sum);
    for (; i < nb; i++)
        blocks1(T, 1, w + (size_t)i * bs, x + (size_t)i * Q8K_SIZE, &sum);
    return sum;
}

/* ---- entry points ------------------------------------------------------------------------- */

/* one weight row against nc activation rows, 4 at a time */
AI void rows1(const int T, int64_t nb, float *y, size_t ldy, const uint8_t *w, const uint8_t *x,
              size_t x_stride, int nc)
{
    if (nc == 1) {
        *y = dot1(T, nb, w, x);
        return;
    }
    for (int c0 = 0; c0 < nc; c0 += 4) {
        float *yc = y + (size_t)c0 * ldy;
        const uint8_t *xc = x + (size_t)c0 * x_stride;
        switch (nc - c0) {
        case 1:
            tile1(T, 1, nb, yc, ldy, w, xc, x_stride);
            break;
        case 2:
            tile1(T, 2, nb, yc, ldy, w, xc, x_stride);
            break;
        case 3:
            tile1(T, 3, nb, yc, ldy, w, xc, x_stride);
            break;
        default:
            tile1(T, 4, nb, yc, ldy, w, xc, x_stride);
            break;
        }
    }
}

AI void gemm_any(const int T, int64_t n, float *y, size_t ldy, const void *w, size_t w_stride,
                 int nr, const void *x, size_t x_stride, int nc)
{
    int64_t nb = n / QK_K;
    /* one activation row (decode) is memory-bound: stream row by row */
    if (nr == 1 || nc == 1) {
        for (int r = 0; r < nr; r++)
            rows1(T, nb, y + r, ldy, (const uint8_t *)w + (size_t)r * w_stride, x, x_stride, nc);
        return;
    }
    const uint8_t *rows[MR];
    for (int r = 0; r < MR; r++)
        rows[r] = (const uint8_t *)w + (size_t)(r < nr ? r : nr - 1) * w_stride;
    switch (nc) {
    case 2:
        tile4(T, 2, nb, y, ldy, rows, nr, x, x_stride);
        break;
    case 3:
        tile4(T, 3, nb, y, ldy, rows, nr, x, x_stride);
        break;
    case 4:
        tile4(T, 4, nb, y, ldy, rows, nr, x, x_stride);
        break;
    case 5:
        tile4(T, 5, nb, y, ldy, rows, nr, x, x_stride);
        break;
    case 6:
        tile4(T, 6, nb, y, ldy, rows, nr, x, x_stride);
        break;
    case 7:
        tile4(T, 7, nb, y, ldy, rows, nr, x, x_stride);
        break;
    default:
        tile4(T, 8, nb, y, ldy, rows, nr, x, x_stride);
        break;
    }
}

#define DEFINE_TYPE(NAME, T)                                                                       \
    static void NAME##_gemm(int64_t n, float *y, size_t ldy, const void *w, size_t w_stride,       \
                            int nr, const void *x, size_t x_stride, int nc)                        \
    {                                                                                              \
        gemm_any(T, n, y, ldy, w, w_stride, nr, x, x_stride, nc);                                  \
    }                                                                                              \
    static void NAME##_vec_dot(int64_t n, float *s, const void *w, const void *x)                  \
    {                                                                                              \
        *s = dot1(T, n / QK_K, w, x);                                                              \
    }

DEFINE_TYPE(q2_K, HR_TYPE_Q2_K)
DEFINE_TYPE(q3_K, HR_TYPE_Q3_K)
DEFINE_TYPE(q4_K, HR_TYPE_Q4_K)
DEFINE_TYPE(q5_K, HR_TYPE_Q5_K)
DEFINE_TYPE(q6_K, HR_TYPE_Q6_K)

static void set(struct quant_kernels *k, quant_vec_dot_fn dot, quant_gemm_fn gemm)
{
    k->vec_dot = dot;
    k->gemm = gemm;
    k->gemm_mr = MR;
    k->gemm_nc = NCMAX;
}

void arch_avx2_k_init(struct quant_kernels tab[HR_TYPE_COUNT])
{
    tab[HR_TYPE_Q8_K].act_from_float = q8_K_act;
    set(&tab[HR_TYPE_Q2_K], q2_K_vec_dot, q2_K_gemm);
    set(&tab[HR_TYPE_Q3_K], q3_K_vec_dot, q3_K_gemm);
    set(&tab[HR_TYPE_Q4_K], q4_K_vec_dot, q4_K_gemm);
    set(&tab[HR_TYPE_Q5_K], q5_K_vec_dot, q5_K_gemm);
    set(&tab[HR_TYPE_Q6_K], q6_K_vec_dot, q6_K_gemm);
}
