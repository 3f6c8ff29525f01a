/*
 * avx512_k.c — AVX-512 (F/BW/VL/DQ + VNNI) dot products and register-tiled
 * matrix tiles of the K-quants (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K) against Q8_K
 * activations. The Q8_K activation quantizer comes from the AVX2 level
 * (avx2_k.c): 512-bit registers buy nothing there.
 *
 * Integer arithmetic, exact. Every weight quant is first made unsigned by the
 * offset its format defines (Q3_K: q + 4 in 0..7, Q6_K: q + 32 in 0..63;
 * Q2_K/Q4_K/Q5_K are unsigned already), so one vpmaddubsw multiplies 64
 * unsigned weight bytes by 64 signed activation bytes into 32 int16 pair
 * sums (at most 2·63·128 = 16128: never saturates), and one vpdpwssd (VNNI)
 * multiplies those by the sub-block scales and accumulates in int32. The
 * offsets come back through the Q8_K bsums: Σ_j sc_j·Σ_e (u_e − off)·a_e =
 * Σ_j sc_j·Σ_e u_e·a_e − off·Σ_j sc_j·bsums_j, which is exactly the reference's
 * integer sum (bsums are the sums of the quants; every Q8_K quantizer writes
 * them so). The min terms of Q2_K/Q4_K/Q5_K use the bsums as the reference
 * does. Per super-block the integer sums are therefore the reference's, and
 * the float expression applied to them (d·d_a·isum − dmin·d_a·msum, or
 * (d·d_a)·isum) and the order in which super-blocks are added are the
 * reference's too: results are bit-identical to quant_q*_K_vec_dot.
 *
 * Tile layout ("row lanes"): a tile of 4 weight rows keeps row r in 128-bit
 * lane r of every zmm, 16 quants (one Q8_K bsums group) at a time; the
 * activation group is broadcast to all four lanes (a plain load), so one
 * maddubs + dpwssd pair serves 4 rows × 16 elements of one activation row,
 * and the unpacked weights and scale vectors of a group are reused across up
 * to 16 activation rows. Accumulators are one zmm per activation row; at the
 * end of a super-block two rounds of unpack+add turn four of them into one
 * zmm whose lane 4r + c holds the integer sum of (row r, column c).
 *
 * Throughput (one thread on the development Xeon, bench/kernels_k.c): a 4×16
 * tile does ~270-290 GOP/s on L2-resident data, about two thirds of the
 * ~420 GOP/s of independent vpdpbusd chains that `hearth bench --limits`
 * measures; the rest goes to unpacking, scale shuffles and the per-block
 * reductions that keep the sums exact.
 *
 * A single weight row (vec_dot, decode, and tiles of one row) holds four
 * consecutive groups of that row in the four lanes; against one activation
 * row it reduces and scales four super-blocks at once (blocks1), so a weight
 * stream runs at memory bandwidth.
 *
 * Q4_K, Q5_K and Q6_K also offer a repacked copy (pack_k.h, made at load),
 * which the forward pass then uses for every product: 16 weight rows in the
 * 16 int32 lanes, an activation dword broadcast, so one vpdpbusd does 4
 * elements of 16 rows, the scales of 16 rows are decoded with a handful of
 * vector operations, and the float part of a super-block is a few vector
 * operations for all 16 rows — no reductions across lanes (ptile, below).
 * Decode reads the panel as one sequential stream, with prefetches. One
 * thread, L2-resident, development Xeon (bench/kernels_k.c, CPU time):
 * Q4_K 16 rows × 1 token ~180 GOP/s (~50 GB/s of weights, 3-4× a thread's
 * DRAM bandwidth; the 1-row layout: ~20 GB/s), × 16 tokens ~390 GOP/s
 * (the 4×16 tile above: ~270); Q6_K 16 × 1 ~110 (~43 GB/s), 16 × 16 ~300.
 */
#include "../../quant_impl.h"
#include "../arch.h"

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#define AI static inline __attribute__((always_inline))

#include "k_common.h"
#include "pack_k.h"

#define NCMAX 16      /* activation rows per tile (gemm_any's column split assumes 16) */
/* Software prefetch distance along a weight row. The prefetches go to L2
 * (T1), not L1: with T0 a one-row decode stream ran at ~10 GB/s per thread,
 * with T1 at 11-13 GB/s (bench/kernels_k.c) and generation on a Q4_K_M
 * Llama-3.2-1B went from 22.9 to 27.2 tok/s on 2 threads (development Xeon);
 * 8192 bytes ahead was no better than 4096. */
#define PF_BYTES 4096
/* Tiles of at most this many activation rows run row by row (1-row layout):
 * decode streams weights, and the 4-row layout only pays with columns to
 * share its unpacking. */
#define ROWWISE_NC 1
#define Q8K_QS 4
#define Q8K_BSUMS 260
#define Q8K_SIZE 292

/* An empty asm that claims to modify v: keeps each accumulator a single
 * register updated in order (GCC otherwise may reorganise the chains and
 * spill partial results). */
#define KEEP(v) __asm__("" : "+v"(v))






/* 128-bit lane r = 16 bytes at rows[r] + off */
AI __m512i ld4(const uint8_t **rows, size_t off)
{
    __m512i v = _mm512_castsi128_si512(lu128(rows[0] + off));
    v = _mm512_inserti32x4(v, lu128(rows[1] + off), 1);
    v = _mm512_inserti32x4(v, lu128(rows[2] + off), 2);
    return _mm512_inserti32x4(v, lu128(rows[3] + off), 3);
}

/* the 32 bytes at p in both 256-bit halves */
AI __m512i bc256(const uint8_t *p)
{
    return _mm512_broadcast_i64x4(lu256(p));
}

/* byte mask: 1 << lo in the low 256 bits, 1 << hi in the high ones */
AI __m512i bits2(int lo, int hi)
{
    return _mm512_inserti64x4(_mm512_set1_epi8((char)(1 << lo)), _mm256_set1_epi8((char)(1 << hi)),
                              1);
}

/* 16-bit lane shift counts: lo in the low 256 bits, hi in the high ones */
AI __m512i sh2(int lo, int hi)
{
    return _mm512_inserti64x4(_mm512_set1_epi16((short)lo), _mm256_set1_epi16((short)hi), 1);
}

/* ---- per-row scale decoding ----------------------------------------------------------- */








/* int16 scales → dwords holding the scale in both halves (vpdpwssd operand) */
AI __m512i sc_dwords(__m256i sc)
{
    __m512i x = _mm512_cvtepu16_epi32(sc);
    return _mm512_or_si512(x, _mm512_slli_epi32(x, 16));
}

/* ---- the tile -------------------------------------------------------------------------------- */

/* Lane maps of the 4-row layout: S for group g = permute(STG[g/4]) where
 * STG[q] lane r = row r's scale dwords of groups 4q..4q+3. */
static const int32_t idx_grp[4][16] = {
    {0, 0, 0, 0, 4, 4, 4, 4, 8, 8, 8, 8, 12, 12, 12, 12},
    {1, 1, 1, 1, 5, 5, 5, 5, 9, 9, 9, 9, 13, 13, 13, 13},
    {2, 2, 2, 2, 6, 6, 6, 6, 10, 10, 10, 10, 14, 14, 14, 14},
    {3, 3, 3, 3, 7, 7, 7, 7, 11, 11, 11, 11, 15, 15, 15, 15},
};
/* 1-row layout: lanes hold groups 4it..4it+3 */
static const int32_t idx_it[4][16] = {
    {0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3},
    {4, 4, 4, 4, 5, 5, 5, 5, 6, 6, 6, 6, 7, 7, 7, 7},
    {8, 8, 8, 8, 9, 9, 9, 9, 10, 10, 10, 10, 11, 11, 11, 11},
    {12, 12, 12, 12, 13, 13, 13, 13, 14, 14, 14, 14, 15, 15, 15, 15},
};
static const int32_t idx_rows[16] = {0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3};
static const int32_t idx_cols[16] = {0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3};

AI __m512i ldidx(const int32_t *p)
{
    return _mm512_loadu_si512(p);
}

/* Per 128-bit lane: {Σa, Σb, Σc, Σd} of the lane's four dwords. */
AI __m512i red4(__m512i a, __m512i b, __m512i c, __m512i d)
{
    __m512i ab = _mm512_add_epi32(_mm512_unpacklo_epi32(a, b), _mm512_unpackhi_epi32(a, b));
    __m512i cd = _mm512_add_epi32(_mm512_unpacklo_epi32(c, d), _mm512_unpackhi_epi32(c, d));
    return _mm512_add_epi32(_mm512_unpacklo_epi64(ab, cd), _mm512_unpackhi_epi64(ab, cd));
}

/* Lane sums of the 4 128-bit lanes into every lane (1-row layout). */
AI __m512i fold_lanes(__m512i v)
{
    v = _mm512_add_epi32(v, _mm512_shuffle_i64x2(v, v, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm512_add_epi32(v, _mm512_shuffle_i64x2(v, v, _MM_SHUFFLE(1, 0, 3, 2)));
}

/* Reduces acc[c0 .. c0+3] (missing ones zero) to lane 4r + c (4-row layout,
 * MR == 4) or lane c (MR == 1). */
AI __m512i reduce(const int MR, const int NC, const __m512i *acc, int c0)
{
    __m512i z = _mm512_setzero_si512();
    __m512i a = acc[c0];
    __m512i b = c0 + 1 < NC ? acc[c0 + 1] : z;
    __m512i c = c0 + 2 < NC ? acc[c0 + 2] : z;
    __m512i d = c0 + 3 < NC ? acc[c0 + 3] : z;
    __m512i v = red4(a, b, c, d);
    return MR == 1 ? fold_lanes(v) : v;
}

/* The unsigned quants of one 64-element stretch (it = 0..3, elements
 * 64it..64it+63) of one row, for the 1-row layout. */
AI __m512i row_quants(const int T, const uint8_t *b, int it)
{
    const __m512i m0f = _mm512_set1_epi8(0x0f), m03 = _mm512_set1_epi8(3);
    switch (T) {
    case HR_TYPE_Q2_K:
    case HR_TYPE_Q3_K: {
        const uint8_t *qs = b + (T == HR_TYPE_Q2_K ? 16 : 32) + 32 * (it / 2);
        int g0 = 2 * (it % 2);
        __m512i q = _mm512_and_si512(_mm512_srlv_epi16(bc256(qs), sh2(2 * g0, 2 * g0 + 2)), m03);
        if (T == HR_TYPE_Q2_K) return q;
        __mmask64 hb = _mm512_test_epi8_mask(bc256(b), bits2(2 * it, 2 * it + 1));
        return _mm512_mask_add_epi8(q, hb, q, _mm512_set1_epi8(4));
    }
    case HR_TYPE_Q4_K:
    case HR_TYPE_Q5_K: {
        const uint8_t *qs = b + (T == HR_TYPE_Q4_K ? 16 : 48) + 32 * it;
        __m512i q = _mm512_and_si512(_mm512_srlv_epi16(bc256(qs), sh2(0, 4)), m0f);
        if (T == HR_TYPE_Q4_K) return q;
        __mmask64 hb = _mm512_test_epi8_mask(bc256(b + 16), bits2(2 * it, 2 * it + 1));
        return _mm512_mask_add_epi8(q, hb, q, _mm512_set1_epi8(16));
    }
    default: { /* Q6_K */
        __m512i ql = _mm512_loadu_si512(b + 64 * (it / 2));
        __m512i lo = it % 2 ? _mm512_srli_epi16(ql, 4) : ql;
        __m512i qh = bc256(b + 128 + 32 * (it / 2));
        /* bit pair g of qh to bits 4..5: g = 0,1 (even it) or 2,3 (odd) */
        __m512i h = it % 2 ? _mm512_srlv_epi16(qh, sh2(0, 2)) : _mm512_sllv_epi16(qh, sh2(4, 2));
        h = _mm512_and_si512(h, _mm512_set1_epi8(0x30));
        return _mm512_ternarylogic_epi32(lo, h, m0f, 0xEC); /* (lo & 0x0f) | h */
    }
    }
}

/*
 * y[c*ldy + r] = Σ_k W_r[k]·X_c[k] for r < nr, c < NC. MR is 4 (rows[] holds
 * 4 pointers, duplicates past nr) or 1.
 */
AI void tile(const int T, const int MR, const int NC, int64_t nb, float *y, size_t ldy,
             const uint8_t **rows, int nr, const uint8_t *x, size_t x_stride)
{
    const size_t bs = blk_size(T);
    const __m512i m0f = _mm512_set1_epi8(0x0f), m03 = _mm512_set1_epi8(3);
    const __m512i m30 = _mm512_set1_epi8(0x30);
    (void)m03;
    (void)m30;
    const int NV = (NC + 3) / 4; /* output vectors: 4 columns each */
    __m512 sum[NCMAX / 4];
#pragma GCC unroll 16
    for (int v = 0; v < NCMAX / 4; v++)
        sum[v] = _mm512_setzero_ps();

    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *b[4];
#pragma GCC unroll 16
        for (int r = 0; r < MR; r++)
            b[r] = rows[r] + (size_t)i * bs;
        const uint8_t *xq[NCMAX];
#pragma GCC unroll 16
        for (int c = 0; c < NC; c++)
            xq[c] = x + (size_t)c * x_stride + (size_t)i * Q8K_SIZE;

/* the hardware prefetcher alone leaves a weight stream well below
 * memory bandwidth: ask for the bytes PF_BYTES ahead, into L2 */
#pragma GCC unroll 16
        for (int r = 0; r < MR; r++)
            for (size_t o = 0; o < bs; o += 64)
                _mm_prefetch((const char *)b[r] + PF_BYTES + o, _MM_HINT_T1);

        struct rowsc rs[4];
#pragma GCC unroll 16
        for (int r = 0; r < MR; r++)
            rs[r] = row_scales(T, b[r]);

        /* bsums terms: lanes of acc (folded types) or accm (min types) */
        __m512i acc[NCMAX], accm[NCMAX];
        if (MR == 4) {
            __m512i a01 = _mm512_inserti64x4(_mm512_castsi256_si512(rs[0].mc), rs[1].mc, 1);
            __m512i a23 = _mm512_inserti64x4(_mm512_castsi256_si512(rs[2].mc), rs[3].mc, 1);
            __m512i mlo = _mm512_shuffle_i64x2(a01, a23, _MM_SHUFFLE(2, 0, 2, 0));
            __m512i mhi = _mm512_shuffle_i64x2(a01, a23, _MM_SHUFFLE(3, 1, 3, 1));
#pragma GCC unroll 16
            for (int c = 0; c < NC; c++) {
                __m512i bl = _mm512_broadcast_i32x4(lu128(xq[c] + Q8K_BSUMS));
                __m512i bh = _mm512_broadcast_i32x4(lu128(xq[c] + Q8K_BSUMS + 16));
                __m512i t = _mm512_dpwssd_epi32(_mm512_setzero_si512(), bl, mlo);
                t = _mm512_dpwssd_epi32(t, bh, mhi);
                if (has_min(T))
                    accm[c] = t;
                else
                    acc[c] = t;
            }
        } else {
            __m512i m = _mm512_zextsi256_si512(rs[0].mc);
#pragma GCC unroll 16
            for (int c = 0; c < NC; c++) {
                __m512i t = _mm512_dpwssd_epi32(
                    _mm512_setzero_si512(), _mm512_zextsi256_si512(lu256(xq[c] + Q8K_BSUMS)), m);
                if (has_min(T))
                    accm[c] = t;
                else
                    acc[c] = t;
            }
        }
        /* 1-row tiles of up to 2 columns reduce both sums together below */
        const int joint = MR == 1 && NC <= 2 && has_min(T);
        __m512i msum[NCMAX / 4];
        if (has_min(T)) {
            if (!joint)
#pragma GCC unroll 16
                for (int v = 0; v < NV; v++)
                    msum[v] = reduce(MR, NC, accm, 4 * v);
#pragma GCC unroll 16
            for (int c = 0; c < NC; c++)
                acc[c] = _mm512_setzero_si512();
        }

        /* the integer dot products */
        if (MR == 4) {
            __m512i sc[4];
#pragma GCC unroll 16
            for (int r = 0; r < 4; r++)
                sc[r] = sc_dwords(rs[r].sc);
            __m512i t0 = _mm512_shuffle_i64x2(sc[0], sc[1], _MM_SHUFFLE(1, 0, 1, 0));
            __m512i t1 = _mm512_shuffle_i64x2(sc[0], sc[1], _MM_SHUFFLE(3, 2, 3, 2));
            __m512i t2 = _mm512_shuffle_i64x2(sc[2], sc[3], _MM_SHUFFLE(1, 0, 1, 0));
            __m512i t3 = _mm512_shuffle_i64x2(sc[2], sc[3], _MM_SHUFFLE(3, 2, 3, 2));
            __m512i stg[4];
            stg[0] = _mm512_shuffle_i64x2(t0, t2, _MM_SHUFFLE(2, 0, 2, 0));
            stg[1] = _mm512_shuffle_i64x2(t0, t2, _MM_SHUFFLE(3, 1, 3, 1));
            stg[2] = _mm512_shuffle_i64x2(t1, t3, _MM_SHUFFLE(2, 0, 2, 0));
            stg[3] = _mm512_shuffle_i64x2(t1, t3, _MM_SHUFFLE(3, 1, 3, 1));

#define APPLY4(g, W)                                                                               \
    do {                                                                                           \
        __m512i S_ = _mm512_permutexvar_epi32(ldidx(idx_grp[(g) % 4]), stg[(g) / 4]);              \
        __m512i W_ = (W);                                                                          \
        _Pragma("GCC unroll 16") for (int c_ = 0; c_ < NC; c_++)                                   \
        {                                                                                          \
            __m512i Y_ = _mm512_broadcast_i32x4(lu128(xq[c_] + Q8K_QS + 16 * (g)));                \
            acc[c_] = _mm512_dpwssd_epi32(acc[c_], _mm512_maddubs_epi16(W_, Y_), S_);              \
            KEEP(acc[c_]);                                                                         \
        }                                                                                          \
    } while (0)

            switch (T) {
            case HR_TYPE_Q4_K:
#pragma GCC unroll 16
                for (int p = 0; p < 8; p++) {
                    __m512i R = ld4(b, 16 + 16 * (size_t)p);
                    int g = 4 * (p / 2) + p % 2;
                    APPLY4(g, _mm512_and_si512(R, m0f));
                    APPLY4(g + 2, _mm512_and_si512(_mm512_srli_epi16(R, 4), m0f));
                }
                break;
            case HR_TYPE_Q5_K: {
                __m512i qh[2] = {ld4(b, 16), ld4(b, 32)};
                const __m512i k16 = _mm512_set1_epi8(16);
#pragma GCC unroll 16
                for (int p = 0; p < 8; p++) {
                    __m512i R = ld4(b, 48 + 16 * (size_t)p);
                    int g = 4 * (p / 2) + p % 2;
                    __m512i lo = _mm512_and_si512(R, m0f);
                    __m512i hi = _mm512_and_si512(_mm512_srli_epi16(R, 4), m0f);
                    __mmask64 hl =
                        _mm512_test_epi8_mask(qh[g % 2], _mm512_set1_epi8((char)(1 << (g / 2))));
                    __mmask64 hh = _mm512_test_epi8_mask(
                        qh[g % 2], _mm512_set1_epi8((char)(1 << ((g + 2) / 2))));
                    APPLY4(g, _mm512_mask_add_epi8(lo, hl, lo, k16));
                    APPLY4(g + 2, _mm512_mask_add_epi8(hi, hh, hi, k16));
                }
                break;
            }
            case HR_TYPE_Q6_K:
/* ql piece p (16 bytes at 16p): h = p/4, gg&1 = (p/2)&1, l16 = p&1;
 * group g = 8h + 2gg + l16 takes the low nibble for gg < 2. qh
 * piece ph (at 128 + 16ph): h = ph/2, l16 = ph&1, bit pair gg. */
#pragma GCC unroll 16
                for (int ph = 0; ph < 4; ph++) {
                    __m512i H = ld4(b, 128 + 16 * (size_t)ph);
                    int h = ph / 2, l16 = ph % 2;
                    __m512i hs[4];
                    hs[0] = _mm512_and_si512(_mm512_slli_epi16(H, 4), m30);
                    hs[1] = _mm512_and_si512(_mm512_slli_epi16(H, 2), m30);
                    hs[2] = _mm512_and_si512(H, m30);
                    hs[3] = _mm512_and_si512(_mm512_srli_epi16(H, 2), m30);
#pragma GCC unroll 16
                    for (int odd = 0; odd < 2; odd++) {
                        __m512i L = ld4(b, 16 * (size_t)(4 * h + 2 * odd + l16));
                        int gg = odd; /* low nibble: gg = odd, high: gg = odd + 2 */
                        APPLY4(8 * h + 2 * gg + l16,
                               _mm512_ternarylogic_epi32(L, hs[gg], m0f, 0xEC));
                        APPLY4(8 * h + 2 * (gg + 2) + l16,
                               _mm512_ternarylogic_epi32(_mm512_srli_epi16(L, 4), hs[gg + 2], m0f,
                                                         0xEC));
                    }
                }
                break;
            default: { /* Q2_K, Q3_K: qs piece pq (h = pq/2, l16 = pq&1), bit pair gg */
                const size_t qo = T == HR_TYPE_Q2_K ? 16 : 32;
                __m512i hm[2];
                if (T == HR_TYPE_Q3_K) {
                    hm[0] = ld4(b, 0);
                    hm[1] = ld4(b, 16);
                }
#pragma GCC unroll 16
                for (int pq = 0; pq < 4; pq++) {
                    __m512i R = ld4(b, qo + 16 * (size_t)pq);
                    int h = pq / 2, l16 = pq % 2;
#pragma GCC unroll 16
                    for (int gg = 0; gg < 4; gg++) {
                        int g = 8 * h + 2 * gg + l16;
                        __m512i q = _mm512_and_si512(_mm512_srli_epi16(R, 2 * gg), m03);
                        if (T == HR_TYPE_Q3_K) {
                            __mmask64 hb = _mm512_test_epi8_mask(
                                hm[g % 2], _mm512_set1_epi8((char)(1 << (g / 2))));
                            q = _mm512_mask_add_epi8(q, hb, q, _mm512_set1_epi8(4));
                        }
                        APPLY4(g, q);
                    }
                }
                break;
            }
            }
#undef APPLY4
        } else {
            __m512i scd = sc_dwords(rs[0].sc);
#pragma GCC unroll 16
            for (int it = 0; it < 4; it++) {
                __m512i S = _mm512_permutexvar_epi32(ldidx(idx_it[it]), scd);
                __m512i W = row_quants(T, b[0], it);
#pragma GCC unroll 16
                for (int c = 0; c < NC; c++) {
                    __m512i Y = _mm512_loadu_si512(xq[c] + Q8K_QS + 64 * it);
                    acc[c] = _mm512_dpwssd_epi32(acc[c], _mm512_maddubs_epi16(W, Y), S);
                }
            }
        }

        /* float part, lane 4r + c, in the reference's order */
        uint16_t dh[4] = {0, 0, 0, 0}, mh[4] = {0, 0, 0, 0};
#pragma GCC unroll 16
        for (int r = 0; r < MR; r++) {
            dh[r] = rs[r].d;
            mh[r] = rs[r].dmin;
        }
        const __m512i ir = MR == 4 ? ldidx(idx_rows) : _mm512_setzero_si512();
        const __m512i ic = ldidx(idx_cols);
        __m512 dv = _mm512_permutexvar_ps(
            ir, _mm512_castps128_ps512(_mm_cvtph_ps(_mm_loadl_epi64((const __m128i *)dh))));
        __m512 mv = _mm512_setzero_ps();
        if (has_min(T))
            mv = _mm512_permutexvar_ps(
                ir, _mm512_castps128_ps512(_mm_cvtph_ps(_mm_loadl_epi64((const __m128i *)mh))));
#pragma GCC unroll 16
        for (int v = 0; v < NV; v++) {
            float dyv[4];
#pragma GCC unroll 16
            for (int c = 0; c < 4; c++)
                dyv[c] = 4 * v + c < NC ? ldf(xq[4 * v + c]) : 0.0f;
            __m512 dy = _mm512_permutexvar_ps(
                ic, _mm512_castps128_ps512(_mm_setr_ps(dyv[0], dyv[1], dyv[2], dyv[3])));
            __m512i isum;
            if (joint) {
                __m512i z = _mm512_setzero_si512();
                isum = fold_lanes(red4(acc[0], NC > 1 ? acc[1] : z, accm[0], NC > 1 ? accm[1] : z));
                msum[0] = _mm512_shuffle_epi32(isum, _MM_PERM_BADC);
            } else {
                isum = reduce(MR, NC, acc, 4 * v);
            }
            __m512 t = _mm512_mul_ps(_mm512_mul_ps(dv, dy), _mm512_cvtepi32_ps(isum));
            if (has_min(T))
                t = _mm512_sub_ps(
                    t, _mm512_mul_ps(_mm512_mul_ps(mv, dy), _mm512_cvtepi32_ps(msum[v])));
            sum[v] = _mm512_add_ps(sum[v], t);
        }
    }

    float out[NCMAX / 4][16];
#pragma GCC unroll 16
    for (int v = 0; v < NV; v++)
        _mm512_storeu_ps(out[v], sum[v]);
#pragma GCC unroll 16
    for (int c = 0; c < NC; c++)
#pragma GCC unroll 16
        for (int r = 0; r < nr; r++)
            y[(size_t)c * ldy + (size_t)r] =
                MR == 4 ? out[c / 4][4 * r + c % 4] : out[c / 4][c % 4];
}

/* ---- one row, one activation row (vec_dot, decode) ---------------------------------------- */

/*
 * NB (1 or 4) consecutive super-blocks of one row against one activation
 * row, added to *sum one block after another as the reference does. Four
 * blocks at a time share one integer reduction and one set of float
 * operations (lane j = block j), which the per-block cost of a memory-bound
 * stream cannot otherwise afford.
 */
AI void blocks1(const int T, const int NB, const uint8_t *w, const uint8_t *x, float *sum)
{
    const size_t bs = blk_size(T);
    __m512i acc[4], accm[4];
    uint16_t dh[8] = {0}, mh[8] = {0};
    float dyv[4] = {0, 0, 0, 0};
#pragma GCC unroll 4
    for (int j = 0; j < NB; j++) {
        const uint8_t *b = w + (size_t)j * bs, *xq = x + (size_t)j * Q8K_SIZE;
        for (size_t o = 0; o < bs; o += 64)
            _mm_prefetch((const char *)b + PF_BYTES + o, _MM_HINT_T1);
        struct rowsc rs = row_scales(T, b);
        dh[j] = rs.d;
        mh[j] = rs.dmin;
        dyv[j] = ldf(xq);
        __m512i t = _mm512_dpwssd_epi32(_mm512_setzero_si512(),
                                        _mm512_zextsi256_si512(lu256(xq + Q8K_BSUMS)),
                                        _mm512_zextsi256_si512(rs.mc));
        __m512i a = has_min(T) ? _mm512_setzero_si512() : t;
        accm[j] = t;
        __m512i scd = sc_dwords(rs.sc);
#pragma GCC unroll 4
        for (int it = 0; it < 4; it++) {
            __m512i S = _mm512_permutexvar_epi32(ldidx(idx_it[it]), scd);
            __m512i P = _mm512_maddubs_epi16(row_quants(T, b, it),
                                             _mm512_loadu_si512(xq + Q8K_QS + 64 * it));
            a = _mm512_dpwssd_epi32(a, P, S);
            KEEP(a);
        }
        acc[j] = a;
    }
    /* lane j: block j's integer sums */
    __m128i isum, msum = _mm_setzero_si128();
    const __m512i z = _mm512_setzero_si512();
    if (NB == 1) {
        __m512i v = fold_lanes(red4(acc[0], has_min(T) ? accm[0] : z, z, z));
        isum = _mm512_castsi512_si128(v);
        msum = _mm_shuffle_epi32(isum, _MM_SHUFFLE(3, 2, 0, 1));
    } else {
        isum = _mm512_castsi512_si128(fold_lanes(red4(acc[0], acc[1], acc[2], acc[3])));
        if (has_min(T))
            msum = _mm512_castsi512_si128(fold_lanes(red4(accm[0], accm[1], accm[2], accm[3])));
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

/* ---- repacked weights (pack_k.h): 16 rows in the lanes ------------------------------------
 *
 * Lane r of every vector belongs to weight row r of the panel; an activation
 * dword (4 quants) is broadcast to all lanes, so one vpdpbusd does 4 elements
 * of 16 rows, and the per-super-block float work is a few vector operations
 * for 16 rows at once (no reductions across lanes). Weights are the unsigned
 * operand (Q4_K nibbles, Q5_K 5-bit values, Q6_K q + 32), activations the
 * signed one. Integer sums, exact:
 *  - Q4_K: 16-element partial sums (|Σ| <= 16·15·128 < 2^15) are weighted by
 *    the sub-scale with one vpdpwssd (the sum sits in the low word; the
 *    scale dword's high word is 0, so the sign-extension word adds nothing);
 *  - Q5_K (32-element sums, up to 16·31·128·2 > 2^15) and Q6_K (16-element
 *    sums up to 16·63·128): vpmulld by the sub-scale, then added;
 *  - mins (Q4_K/Q5_K): Σ_j m_j·(bsums[2j] + bsums[2j+1]) by vpdpwssd of the
 *    word pair (m_j, m_j) with the bsums dword; Q6_K's offset 32 comes back
 *    as −32·Σ_j sc_j·bsums_j, by vpdpwssd of (sc_2p, sc_2p+1) pairs.
 * The reference's float expression then runs per super-block, in order. */

#define PCG 4 /* activation rows whose dot chains run together (the weights are
               * unpacked once per group; 4: accumulators fit the registers) */
/* Decode: software prefetch of the panel stream, into L1 this many bytes
 * ahead and into L2 four times as far (Q6_K: twice both; it spends more
 * time per byte unpacking). Chosen on llama-3.2-1b Q4_K_M generation, two
 * threads, best of 4 runs on the shared development Xeon, packed copies in
 * 4 KB / 2 MB pages: 29.2 / 33.4 tok/s; L2 only, 4 KB ahead: 28.2 / 30.9;
 * L1 only, 1 KB ahead: 27.2 / 32.4; L1 only, 4 KB ahead: 23.7 / 28.2. */
#ifndef PKK_PF
#define PKK_PF 1024
#endif

AI __m512i bcast32(const uint8_t *p)
{
    return _mm512_set1_epi32((int)ld32(p));
}

/*
 * y[c·ldy + r] = Σ_k W_r[k]·X_c[k], r < nr, c < NC: the 16 rows of one panel
 * (pan) against NC Q8_K rows.
 */
AI void ptile(const int T, const int NC, int64_t n, float *y, size_t ldy, const uint8_t *pan,
              int nr, const uint8_t *x, size_t xs)
{
    const int64_t nb = n / QK_K;
    const size_t rec = pkk_rec(T);
    const __m512i m0f = _mm512_set1_epi8(0x0f), m30 = _mm512_set1_epi8(0x30);
    /* the running sums: registers for one group of activation rows, memory
     * (touched once per super-block) for more */
    __m512 fs[PCG];
    _Alignas(64) float fsm[NCMAX][16];
#pragma GCC unroll 16
    for (int c = 0; c < PCG; c++)
        fs[c] = _mm512_setzero_ps();
    if (NC > PCG)
        for (int c = 0; c < NC; c++)
            _mm512_store_ps(fsm[c], _mm512_setzero_ps());

    const size_t pf = T == HR_TYPE_Q6_K ? 2 * PKK_PF : PKK_PF;
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *v = pan + (size_t)i * rec;
        if (NC <= 2) { /* decode: a weight stream; fetch ahead into L2, then L1 */
#pragma GCC unroll 64
            for (size_t o = 0; o < rec; o += 64) {
                _mm_prefetch((const char *)v + pf + o, _MM_HINT_T0);
                _mm_prefetch((const char *)v + 4 * pf + o, _MM_HINT_T1);
            }
        }
        __m512 dv, mv = _mm512_setzero_ps();
        __m512i sc[4], mn[2];
        if (T == HR_TYPE_Q6_K) {
            const uint8_t *pd = pan + (size_t)nb * rec + 32 * (size_t)i;
            if (NC <= 2 && i % 2 == 0)
                _mm_prefetch((const char *)pd + 256, _MM_HINT_T0);
            dv = _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)pd));
#pragma GCC unroll 4
            for (int s = 0; s < 4; s++)
                sc[s] = ldv(v + 64 * (size_t)(pkk_sc(T) + s));
        } else {
            __m512i dm = ldv(v + 64 * (size_t)pkk_dm(T));
            dv = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(dm));
            mv = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(dm, 16)));
            k4_dec(v + 64 * (size_t)pkk_sc(T), sc, mn);
        }

#pragma GCC unroll 1
        for (int c0 = 0; c0 < NC; c0 += PCG) {
            const int cg = NC - c0 < PCG ? NC - c0 : PCG;
            const uint8_t *xq[PCG];
            __m512i isum[PCG], acc_lo[PCG], acc_hi[PCG];
#pragma GCC unroll 4
            for (int c = 0; c < cg; c++) {
                xq[c] = x + (size_t)(c0 + c) * xs + (size_t)i * Q8K_SIZE;
                isum[c] = _mm512_setzero_si512();
            }
            if (T == HR_TYPE_Q6_K) {
                /* ql vector g = 16h + 8gl + 4half + gg: low nibbles are
                 * elements 128h + 32gl + 16half + 4gg .. +3 (sub-block
                 * 8h + 2gl + half), high nibbles 64 further (gl + 2); the
                 * 2 high bits in qh vector 8h + 4half + gg, pairs gl, gl + 2 */
#pragma GCC unroll 2
                for (int h = 0; h < 2; h++)
#pragma GCC unroll 2
                    for (int gl = 0; gl < 2; gl++)
#pragma GCC unroll 2
                        for (int half = 0; half < 2; half++) {
#pragma GCC unroll 4
                            for (int c = 0; c < cg; c++)
                                acc_lo[c] = acc_hi[c] = _mm512_setzero_si512();
#pragma GCC unroll 4
                            for (int gg = 0; gg < 4; gg++) {
                                const int g = 16 * h + 8 * gl + 4 * half + gg;
                                const __m512i L = ldv(v + 64 * (size_t)g);
                                const __m512i H =
                                    ldv(v + 64 * (size_t)(pkk_qh(T) + 8 * h + 4 * half + gg));
                                /* bit pair p of each qh byte to bits 4..5 */
                                __m512i hl = gl ? _mm512_slli_epi16(H, 2) : _mm512_slli_epi16(H, 4);
                                __m512i hh = gl ? _mm512_srli_epi16(H, 2) : H;
                                __m512i ulo = _mm512_ternarylogic_epi32(L, m0f, _mm512_and_si512(hl, m30), 0xEA);
                                __m512i uhi = _mm512_ternarylogic_epi32(
                                    _mm512_srli_epi16(L, 4), m0f, _mm512_and_si512(hh, m30), 0xEA);
                                const size_t e = (size_t)(128 * h + 32 * gl + 16 * half + 4 * gg);
#pragma GCC unroll 4
                                for (int c = 0; c < cg; c++) {
                                    acc_lo[c] = _mm512_dpbusd_epi32(acc_lo[c], ulo,
                                                                    bcast32(xq[c] + Q8K_QS + e));
                                    acc_hi[c] = _mm512_dpbusd_epi32(
                                        acc_hi[c], uhi, bcast32(xq[c] + Q8K_QS + e + 64));
                                    KEEP(acc_lo[c]);
                                    KEEP(acc_hi[c]);
                                }
                            }
                            const int jl = 8 * h + 2 * gl + half, jh = jl + 4;
                            const __m512i sl = _mm512_srai_epi32(
                                _mm512_shuffle_epi8(sc[jl / 4], ctl_top(jl % 4)), 24);
                            const __m512i sh = _mm512_srai_epi32(
                                _mm512_shuffle_epi8(sc[jh / 4], ctl_top(jh % 4)), 24);
#pragma GCC unroll 4
                            for (int c = 0; c < cg; c++) {
                                isum[c] = _mm512_add_epi32(isum[c], _mm512_mullo_epi32(acc_lo[c], sl));
                                isum[c] = _mm512_add_epi32(isum[c], _mm512_mullo_epi32(acc_hi[c], sh));
                            }
                        }
                /* − 32·Σ_j sc_j·bsums_j */
                __m512i corr[PCG];
#pragma GCC unroll 4
                for (int c = 0; c < cg; c++)
                    corr[c] = _mm512_setzero_si512();
#pragma GCC unroll 8
                for (int p = 0; p < 8; p++) {
                    const __m512i sp =
                        _mm512_srai_epi16(_mm512_shuffle_epi8(sc[p / 2], ctl_wpair(p % 2)), 8);
#pragma GCC unroll 4
                    for (int c = 0; c < cg; c++)
                        corr[c] = _mm512_dpwssd_epi32(corr[c], sp,
                                                      bcast32(xq[c] + Q8K_BSUMS + 4 * (size_t)p));
                }
#pragma GCC unroll 4
                for (int c = 0; c < cg; c++)
                    isum[c] = _mm512_sub_epi32(isum[c], _mm512_slli_epi32(corr[c], 5));
            } else {
                /* qs vector g = 8h + 4half + gg: low nibbles are elements
                 * 64h + 16half + 4gg .. +3 (sub-block 2h), high nibbles 32
                 * further (sub-block 2h + 1) */
#pragma GCC unroll 4
                for (int h = 0; h < 4; h++) {
                    const __m512i slo = _mm512_shuffle_epi8(sc[(2 * h) / 4], ctl_byte((2 * h) % 4));
                    const __m512i shi =
                        _mm512_shuffle_epi8(sc[(2 * h + 1) / 4], ctl_byte((2 * h + 1) % 4));
#pragma GCC unroll 2
                    for (int half = 0; half < 2; half++) {
                        if (T == HR_TYPE_Q4_K || half == 0)
#pragma GCC unroll 4
                            for (int c = 0; c < cg; c++)
                                acc_lo[c] = acc_hi[c] = _mm512_setzero_si512();
#pragma GCC unroll 4
                        for (int gg = 0; gg < 4; gg++) {
                            const int g = 8 * h + 4 * half + gg;
                            const __m512i Q = ldv(v + 64 * (size_t)g);
                            __m512i lo = _mm512_and_si512(Q, m0f);
                            __m512i hi = _mm512_and_si512(_mm512_srli_epi16(Q, 4), m0f);
                            if (T == HR_TYPE_Q5_K) {
                                const __m512i H = ldv(v + 64 * (size_t)(pkk_qh(T) + 4 * half + gg));
                                lo = q5_hi(lo, H, 2 * h);
                                hi = q5_hi(hi, H, 2 * h + 1);
                            }
                            const size_t e = (size_t)(64 * h + 16 * half + 4 * gg);
#pragma GCC unroll 4
                            for (int c = 0; c < cg; c++) {
                                acc_lo[c] =
                                    _mm512_dpbusd_epi32(acc_lo[c], lo, bcast32(xq[c] + Q8K_QS + e));
                                acc_hi[c] = _mm512_dpbusd_epi32(acc_hi[c], hi,
                                                                bcast32(xq[c] + Q8K_QS + e + 32));
                                KEEP(acc_lo[c]);
                                KEEP(acc_hi[c]);
                            }
                        }
                        if (T == HR_TYPE_Q4_K) {
#pragma GCC unroll 4
                            for (int c = 0; c < cg; c++) {
                                isum[c] = _mm512_dpwssd_epi32(isum[c], acc_lo[c], slo);
                                isum[c] = _mm512_dpwssd_epi32(isum[c], acc_hi[c], shi);
                            }
                        } else if (half == 1) {
#pragma GCC unroll 4
                            for (int c = 0; c < cg; c++) {
                                isum[c] = _mm512_add_epi32(isum[c], _mm512_mullo_epi32(acc_lo[c], slo));
                                isum[c] = _mm512_add_epi32(isum[c], _mm512_mullo_epi32(acc_hi[c], shi));
                            }
                        }
                    }
                }
            }
            /* the mins (Q4_K/Q5_K), then the float part, per activation row */
            __m512i msum[PCG];
            if (T != HR_TYPE_Q6_K) {
#pragma GCC unroll 4
                for (int c = 0; c < cg; c++)
                    msum[c] = _mm512_setzero_si512();
#pragma GCC unroll 8
                for (int j = 0; j < 8; j++) {
                    const __m512i mp = _mm512_shuffle_epi8(mn[j / 4], ctl_pair(j % 4));
#pragma GCC unroll 4
                    for (int c = 0; c < cg; c++)
                        msum[c] = _mm512_dpwssd_epi32(msum[c], mp,
                                                      bcast32(xq[c] + Q8K_BSUMS + 4 * (size_t)j));
                }
            }
#pragma GCC unroll 4
            for (int c = 0; c < cg; c++) {
                const __m512 da = _mm512_set1_ps(ldf(xq[c]));
                __m512 t = _mm512_mul_ps(_mm512_mul_ps(dv, da), _mm512_cvtepi32_ps(isum[c]));
                if (T != HR_TYPE_Q6_K)
                    t = _mm512_sub_ps(t, _mm512_mul_ps(_mm512_mul_ps(mv, da),
                                                       _mm512_cvtepi32_ps(msum[c])));
                if (NC > PCG)
                    _mm512_store_ps(fsm[c0 + c], _mm512_add_ps(_mm512_load_ps(fsm[c0 + c]), t));
                else
                    fs[c] = _mm512_add_ps(fs[c], t);
            }
        }
    }
    const __mmask16 keep = (__mmask16)((1u << nr) - 1);
#pragma GCC unroll 16
    for (int c = 0; c < NC; c++)
        _mm512_mask_storeu_ps(y + (size_t)c * ldy, keep,
                              NC > PCG ? _mm512_load_ps(fsm[c]) : fs[c]);
}

/* ---- entry points ------------------------------------------------------------------------- */

/* one weight row against nc activation rows, 4 at a time */
AI void gemm_rows1(const int T, int64_t n, float *y, size_t ldy, const uint8_t *w, const void *x,
                   size_t x_stride, int nc)
{
    const uint8_t *rows[4] = {w, w, w, w};
    const uint8_t *xb = x;
    int64_t nb = n / QK_K;
    if (nc == 1) {
        *y = dot1(T, nb, w, xb);
        return;
    }
    for (int c0 = 0; c0 < nc; c0 += 4) {
        float *yc = y + (size_t)c0 * ldy;
        const uint8_t *xc = xb + (size_t)c0 * x_stride;
        switch (nc - c0) {
        case 1:
            tile(T, 1, 1, nb, yc, ldy, rows, 1, xc, x_stride);
            break;
        case 2:
            tile(T, 1, 2, nb, yc, ldy, rows, 1, xc, x_stride);
            break;
        case 3:
            tile(T, 1, 3, nb, yc, ldy, rows, 1, xc, x_stride);
            break;
        default:
            tile(T, 1, 4, nb, yc, ldy, rows, 1, xc, x_stride);
            break;
        }
    }
}

AI void gemm_any(const int T, int64_t n, float *y, size_t ldy, const void *w, size_t w_stride,
                 int nr, const void *x, size_t x_stride, int nc)
{
    if (nr == 1 || nc <= ROWWISE_NC) {
        for (int r = 0; r < nr; r++)
            gemm_rows1(T, n, y + r, ldy, (const uint8_t *)w + (size_t)r * w_stride, x, x_stride,
                       nc);
        return;
    }
    const uint8_t *rows[4];
    for (int r = 0; r < 4; r++)
        rows[r] = (const uint8_t *)w + (size_t)(r < nr ? r : nr - 1) * w_stride;
    const uint8_t *xb = x;
    int64_t nb = n / QK_K;
    /* full tiles are 16 columns; an edge tile runs as pieces of 12, 8, 4
     * and the 1..3 left over */
    for (int c0 = 0; c0 < nc;) {
        float *yc = y + (size_t)c0 * ldy;
        const uint8_t *xc = xb + (size_t)c0 * x_stride;
        int left = nc - c0, k;
        if (left >= 16) {
            k = 16;
            tile(T, 4, 16, nb, yc, ldy, rows, nr, xc, x_stride);
        } else if (left >= 12) {
            k = 12;
            tile(T, 4, 12, nb, yc, ldy, rows, nr, xc, x_stride);
        } else if (left >= 8) {
            k = 8;
            tile(T, 4, 8, nb, yc, ldy, rows, nr, xc, x_stride);
        } else if (left >= 4) {
            k = 4;
            tile(T, 4, 4, nb, yc, ldy, rows, nr, xc, x_stride);
        } else if (left == 3) {
            k = 3;
            tile(T, 4, 3, nb, yc, ldy, rows, nr, xc, x_stride);
        } else if (left == 2) {
            k = 2;
            tile(T, 4, 2, nb, yc, ldy, rows, nr, xc, x_stride);
        } else {
            k = 1;
            tile(T, 4, 1, nb, yc, ldy, rows, nr, xc, x_stride);
        }
        c0 += k;
    }
}

#define DEFINE_TYPE(NAME, T)                                                                       \
    static void NAME##_gemm(int64_t n, float *y, size_t ldy, const void *w, size_t w_stride,       \
                            int nr, const void *x, size_t x_stride, int nc)                        \
    {                                                                                              \
        for (int r = 0; r < nr; r += 4) /* tiles of 4 rows (gemm_mr is the panel's 16) */          \
            gemm_any(T, n, y + r, ldy, (const uint8_t *)w + (size_t)r * w_stride, w_stride,       \
                     nr - r < 4 ? nr - r : 4, x, x_stride, nc);                                    \
    }                                                                                              \
    static void NAME##_vec_dot(int64_t n, float *s, const void *w, const void *x)                  \
    {                                                                                              \
        *s = dot1(T, n / QK_K, w, x);                                                              \
    }

/* The repacked path of a type: tiles of one panel by nc (gemm_packed). */
#define PACKED_TYPE(NAME, T)                                                                       \
    static void NAME##_p1(int64_t n, float *y, size_t ldy, const uint8_t *p, int nr,              \
                          const void *x, size_t xs)                                                \
    {                                                                                              \
        ptile(T, 1, n, y, ldy, p, nr, x, xs);                                                      \
    }                                                                                              \
    static void NAME##_p2(int64_t n, float *y, size_t ldy, const uint8_t *p, int nr,              \
                          const void *x, size_t xs)                                                \
    {                                                                                              \
        ptile(T, 2, n, y, ldy, p, nr, x, xs);                                                      \
    }                                                                                              \
    static void NAME##_p4(int64_t n, float *y, size_t ldy, const uint8_t *p, int nr,              \
                          const void *x, size_t xs)                                                \
    {                                                                                              \
        ptile(T, 4, n, y, ldy, p, nr, x, xs);                                                      \
    }                                                                                              \
    static void NAME##_p8(int64_t n, float *y, size_t ldy, const uint8_t *p, int nr,              \
                          const void *x, size_t xs)                                                \
    {                                                                                              \
        ptile(T, 8, n, y, ldy, p, nr, x, xs);                                                      \
    }                                                                                              \
    static void NAME##_p16(int64_t n, float *y, size_t ldy, const uint8_t *p, int nr,             \
                           const void *x, size_t xs)                                               \
    {                                                                                              \
        ptile(T, 16, n, y, ldy, p, nr, x, xs);                                                     \
    }                                                                                              \
    static size_t NAME##_packed_size(int64_t n_in, int64_t n_out)                                  \
    {                                                                                              \
        return pkk_size(T, n_in, n_out);                                                           \
    }                                                                                              \
    static void NAME##_repack(const void *src, void *dst, int64_t n_in, int64_t n_out)             \
    {                                                                                              \
        pkk_repack(T, src, dst, n_in, n_out);                                                      \
    }                                                                                              \
    static void NAME##_gemm_packed(int64_t n, float *y, size_t ldy, const void *wp, int64_t row0, \
                                   int nr, const void *x, size_t xs, int nc)                       \
    {                                                                                              \
        const uint8_t *pan = (const uint8_t *)wp + (size_t)(row0 / PKK_ROWS) * pkk_panel(T, n / QK_K); \
        while (nc > 0) {                                                                           \
            int t = nc >= 16 ? 16 : nc >= 8 ? 8 : nc >= 4 ? 4 : nc >= 2 ? 2 : 1;                  \
            switch (t) {                                                                           \
            case 1:                                                                                \
                NAME##_p1(n, y, ldy, pan, nr, x, xs);                                              \
                break;                                                                             \
            case 2:                                                                                \
                NAME##_p2(n, y, ldy, pan, nr, x, xs);                                              \
                break;                                                                             \
            case 4:                                                                                \
                NAME##_p4(n, y, ldy, pan, nr, x, xs);                                              \
                break;                                                                             \
            case 8:                                                                                \
                NAME##_p8(n, y, ldy, pan, nr, x, xs);                                              \
                break;                                                                             \
            default:                                                                               \
                NAME##_p16(n, y, ldy, pan, nr, x, xs);                                             \
                break;                                                                             \
            }                                                                                      \
            y += (size_t)t * ldy;                                                                  \
            x = (const uint8_t *)x + (size_t)t * xs;                                               \
            nc -= t;                                                                               \
        }                                                                                          \
    }

DEFINE_TYPE(q2_K, HR_TYPE_Q2_K)
DEFINE_TYPE(q3_K, HR_TYPE_Q3_K)
DEFINE_TYPE(q4_K, HR_TYPE_Q4_K)
DEFINE_TYPE(q5_K, HR_TYPE_Q5_K)
DEFINE_TYPE(q6_K, HR_TYPE_Q6_K)
PACKED_TYPE(q4_K, HR_TYPE_Q4_K)
PACKED_TYPE(q5_K, HR_TYPE_Q5_K)
PACKED_TYPE(q6_K, HR_TYPE_Q6_K)

static void set(struct quant_kernels *k, quant_vec_dot_fn dot, quant_gemm_fn gemm)
{
    k->vec_dot = dot;
    k->gemm = gemm;
    k->gemm_mr = PKK_ROWS; /* a panel; the unpacked gemm runs it as 4-row tiles */
    k->gemm_nc = NCMAX;
}

#define SET_PACKED(k, name)                                                                        \
    ((k)->packed_size = name##_packed_size, (k)->repack = name##_repack,                          \
     (k)->gemm_packed = name##_gemm_packed)

void arch_avx512_k_init(struct quant_kernels tab[HR_TYPE_COUNT])
{
    set(&tab[HR_TYPE_Q2_K], q2_K_vec_dot, q2_K_gemm);
    set(&tab[HR_TYPE_Q3_K], q3_K_vec_dot, q3_K_gemm);
    set(&tab[HR_TYPE_Q4_K], q4_K_vec_dot, q4_K_gemm);
    set(&tab[HR_TYPE_Q5_K], q5_K_vec_dot, q5_K_gemm);
    set(&tab[HR_TYPE_Q6_K], q6_K_vec_dot, q6_K_gemm);
    SET_PACKED(&tab[HR_TYPE_Q4_K], q4_K);
    SET_PACKED(&tab[HR_TYPE_Q5_K], q5_K);
    SET_PACKED(&tab[HR_TYPE_Q6_K], q6_K);
}
