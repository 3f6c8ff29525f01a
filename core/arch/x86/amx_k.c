/*
 * amx_k.c — prompt-processing tiles of Q4_K, Q5_K and Q6_K weights against
 * Q8_K activations on AMX (Intel Advanced Matrix Extensions, int8 tiles),
 * over the repacked weights of pack_k.h, so decode (the AVX-512 VNNI tiles
 * of avx512_k.c) and prompts share one packed copy. Registered by
 * arch_amx_k_init over the AVX-512 table; tests/test_simd_k.c checks every
 * tile shape against the scalar reference, bit for bit.
 *
 * Exactness. Per super-block the reference computes integer sums
 *     isum = Σ_j sc_j·Σ_{e∈j} q_e·a_e,   msum = Σ_j m_j·(bsums of j)
 * (Q6_K: no msum, q signed) and then d·d_a·isum − dmin·d_a·msum in float.
 * Here the sub-block scales are folded into the weights before the tile
 * product: p_e = sc_j·q_e (at most 63·31 for Q5_K, |p| <= 4096 for Q6_K)
 * does not fit a byte, so it is split into its low byte (unsigned) and high
 * byte (signed), p = lo + 256·hi, and two tile products give
 *     isum = Σ_e lo_e·a_e + 256·Σ_e hi_e·a_e
 * exactly (int32 sums, far from overflow: |isum| < 2^25). msum is the
 * reference's own expression, by vpdpwssd of the word pairs (m_2p, m_2p+1)
 * of 16 rows with a token's sub-block sums bsums[2j] + bsums[2j+1] (made
 * once per call for every token). The epilogue then applies the reference's
 * float expression to each super-block, in order: results are the
 * reference's bit for bit, as the VNNI tiles' are, so a token's logits do
 * not depend on whether its batch went through AMX.
 *
 * Tiles (all 16 rows × 64 bytes: K = 64 elements per product, the most one
 * TDPB* takes, at the same cost as fewer): A (tmm4/5) = 16 tokens × 64
 * activation quants, loaded straight from the Q8_K rows with the row stride
 * (a last tile of fewer tokens from a zero-padded copy); B (tmm6/7) = lo
 * and hi of 64 elements × 16 weight rows in the VNNI layout (row kk holds
 * elements 4kk..4kk+3 of each weight row), unpacked from the panels once
 * per call into a stack buffer and used by every token tile; C (tmm0..3) =
 * a super-block's lo and hi sums for two panels (or, with a single panel,
 * two token tiles), accumulated over its 4 chunks, then stored and read
 * back as 16 zmm rows (lane = weight row). A call takes two panels (the
 * AMX level's gemm_mr is 32): loading A — 16 strided rows from L2, the
 * costliest tile operation — once for both halves its cost per product.
 * The next item's products are issued before the current one's epilogue,
 * so the tile unit and the vector units work at the same time.
 *
 * Tile configuration: cfg_k, loaded through amx_use (amx_common.h) only
 * when the thread's loaded one is another kernel's.
 *
 * With few tokens (decode, small batches) the VNNI tile is used: unpacking
 * the scaled B costs about what 6-8 tokens of VNNI products do.
 *
 * Throughput, one thread, L2-resident (CPU time, the development Xeon):
 * 32 rows × 128 tokens Q4_K ~1000 GOP/s, Q6_K ~1200, against ~390 / ~300 for
 * the VNNI tile of 16 tokens. Per 16 rows × 16 tokens × 256 elements the
 * tile side (8 products, 2 A and 8 B tile loads, 2 C stores) takes ~75 ns,
 * the unpacking ~13 (Q4_K), the epilogue ~55 (Q4_K, with the mins) or ~25
 * (Q6_K), and they overlap only in part.
 */
#include "../../quant_impl.h"
#include "../arch.h"

#include <immintrin.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define AI static inline __attribute__((always_inline))

#include "amx_common.h"
#include "k_common.h"
#include "pack_k.h"

#define TT 16       /* tokens per tile (rows of A and C) */
#define AMXK_NC 128 /* tokens per call */
/* Fewer tokens than this: the VNNI tile. Crossovers, one thread, L2:
 * Q4_K 7-8 tokens (300 GOP/s either way at 7), Q6_K 5-6 (VNNI 204, AMX
 * 229 at 6). */
#define AMXK_MIN(T) ((T) == HR_TYPE_Q6_K ? 6 : 8)
#define SBCH 1      /* super-blocks whose B is unpacked at a time (2 panels: 17 KB) */
#define Q8K_SIZE 292

/* tmm0..7 all 16 rows × 64 bytes */
static const _Alignas(64) struct tilecfg cfg_k = {
    .palette = 1,
    .colsb = {64, 64, 64, 64, 64, 64, 64, 64},
    .rows = {16, 16, 16, 16, 16, 16, 16, 16},
};

/* The VNNI tiles of the level below, for few tokens. */
static quant_gemm_packed_fn vnni[HR_TYPE_COUNT];

/* B of one super-block, per 64-element chunk c: the low and high bytes of
 * sc·q, each a 16 × 64-byte tile; and for the mins (Q4_K/Q5_K) the word
 * pairs (m_2p, m_2p+1) of each row, the vpdpwssd operand against the sums
 * of a token's sub-blocks (bsums[2j] + bsums[2j+1]) taken in pairs. */
struct bsb {
    int8_t lo[4][16][64];
    int8_t hi[4][16][64];
    int32_t mp[4][16];
};

/* The low and high bytes of p = n·sc per byte: n unsigned, se the bytes
 * (sc, 0, sc, 0) of each dword (sc signed), off the words to subtract from
 * every product (Q6_K: 32·sc, as q = n − 32), else zero. */
AI void mulsplit(__m512i n, __m512i se, __m512i off, __m512i *lo, __m512i *hi)
{
    const __m512i m = _mm512_set1_epi16(0x00ff);
    __m512i pe = _mm512_sub_epi16(_mm512_maddubs_epi16(n, se), off); /* even bytes */
    __m512i po = _mm512_sub_epi16(_mm512_maddubs_epi16(n, _mm512_slli_epi16(se, 8)), off);
    /* C ? A : B per bit (0xE4) */
    *lo = _mm512_ternarylogic_epi32(pe, _mm512_slli_epi16(po, 8), m, 0xE4);
    *hi = _mm512_ternarylogic_epi32(_mm512_srai_epi16(pe, 8), po, m, 0xE4);
}

/* Unpacks super-block record v (index i of the panel pan of nb) into B, and
 * its d (and dmin) as floats. */
AI void unpack_sb(const int T, const uint8_t *pan, int64_t nb, int64_t i, struct bsb *B, float *dv,
                  float *mv)
{
    const uint8_t *v = pan + (size_t)i * pkk_rec(T);
    const __m512i m0f = _mm512_set1_epi8(0x0f), m30 = _mm512_set1_epi8(0x30);
    if (T == HR_TYPE_Q6_K) {
        const uint8_t *pd = pan + (size_t)nb * pkk_rec(T) + 32 * (size_t)i;
        _mm512_store_ps(dv, _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)pd)));
        /* chunk c = 2h + hn: B row kk (gl = kk/8) holds the low (hn = 0) or
         * high (hn = 1) nibbles of ql vector 16h + kk, with bit pair
         * gl + 2hn of qh vector 8h + kk%8; sub-block 4c + kk/4 */
#pragma GCC unroll 1
        for (int c = 0; c < 4; c++) {
            const int h = c / 2, hn = c % 2;
            const __m512i sc = ldv(v + 64 * (size_t)(pkk_sc(T) + c));
#pragma GCC unroll 4
            for (int s = 0; s < 4; s++) {
                const __m512i se = _mm512_shuffle_epi8(sc, ctl_pair(s));
                const __m512i off = _mm512_srai_epi16(_mm512_slli_epi16(se, 8), 3); /* 32·sc */
#pragma GCC unroll 4
                for (int kq = 0; kq < 4; kq++) {
                    const int kk = 4 * s + kq, gl = kk / 8, p = gl + 2 * hn;
                    const __m512i L = ldv(v + 64 * (size_t)(16 * h + kk));
                    const __m512i H = ldv(v + 64 * (size_t)(pkk_qh(T) + 8 * h + kk % 8));
                    __m512i nib = hn ? _mm512_srli_epi16(L, 4) : L;
                    __m512i hb = p == 0   ? _mm512_slli_epi16(H, 4)
                                 : p == 1 ? _mm512_slli_epi16(H, 2)
                                 : p == 2 ? H
                                          : _mm512_srli_epi16(H, 2);
                    __m512i u = _mm512_ternarylogic_epi32(nib, m0f, _mm512_and_si512(hb, m30),
                                                          0xEA); /* (nib & 15) | hb */
                    __m512i lo, hi;
                    mulsplit(u, se, off, &lo, &hi);
                    _mm512_store_si512(B->lo[c][kk], lo);
                    _mm512_store_si512(B->hi[c][kk], hi);
                }
            }
        }
        return;
    }
    const __m512i dm = ldv(v + 64 * (size_t)pkk_dm(T));
    _mm512_store_ps(dv, _mm512_cvtph_ps(_mm512_cvtepi32_epi16(dm)));
    _mm512_store_ps(mv, _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(dm, 16))));
    __m512i sc[2], mn[2];
    k4_dec(v + 64 * (size_t)pkk_sc(T), sc, mn);
    const __m512i zero = _mm512_setzero_si512();
    /* chunk h: rows 0..7 the low nibbles of qs vectors 8h..8h+7 (sub-block
     * 2h), rows 8..15 their high nibbles (sub-block 2h + 1) */
#pragma GCC unroll 1
    for (int h = 0; h < 4; h++) {
        const int jl = 2 * h, jh = 2 * h + 1;
        const __m512i se_lo = _mm512_shuffle_epi8(sc[jl / 4], ctl_pair(jl % 4));
        const __m512i se_hi = _mm512_shuffle_epi8(sc[jh / 4], ctl_pair(jh % 4));
        _mm512_store_si512(B->mp[h], _mm512_shuffle_epi8(mn[h / 2], ctl_zpair(h % 2)));
#pragma GCC unroll 8
        for (int g = 0; g < 8; g++) {
            const __m512i Q = ldv(v + 64 * (size_t)(8 * h + g));
            __m512i nl = _mm512_and_si512(Q, m0f);
            __m512i nh = _mm512_and_si512(_mm512_srli_epi16(Q, 4), m0f);
            if (T == HR_TYPE_Q5_K) {
                const __m512i H = ldv(v + 64 * (size_t)(pkk_qh(T) + g));
                nl = q5_hi(nl, H, jl);
                nh = q5_hi(nh, H, jh);
            }
            __m512i lo, hi;
            mulsplit(nl, se_lo, zero, &lo, &hi);
            _mm512_store_si512(B->lo[h][g], lo);
            _mm512_store_si512(B->hi[h][g], hi);
            mulsplit(nh, se_hi, zero, &lo, &hi);
            _mm512_store_si512(B->lo[h][8 + g], lo);
            _mm512_store_si512(B->hi[h][8 + g], hi);
        }
    }
}

/* The tile products of one super-block, C = A·B for every (panel, token
 * tile) pair, lo sums in C tmm2k and hi sums in tmm2k+1, k = the pair:
 *  - two panels (B0, B1) × one token tile (A at a0): k = panel;
 *  - one panel (B0) × one or two token tiles (a0, a1 when two): k = tile.
 * A in tmm4/5 (alternate chunks, or the two tiles), B lo/hi in tmm6/7;
 * rows of A are s0 (s1) bytes apart, its chunks 64. Q6_K's high bytes are
 * signed (TDPBSSD), the others' unsigned (TDPBSUD). */
#define AMXK_HI(C, A)                                                                              \
    do {                                                                                           \
        if (T == HR_TYPE_Q6_K)                                                                     \
            _tile_dpbssd(C, A, 7);                                                                 \
        else                                                                                       \
            _tile_dpbsud(C, A, 7);                                                                 \
    } while (0)

AI void products2p(const int T, const uint8_t *a0, size_t s0, const struct bsb *B0,
                   const struct bsb *B1)
{
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
#define AMXK_C2P(A, c)                                                                             \
    do {                                                                                           \
        _tile_loadd(A, a0 + 64 * (c), (long)s0);                                                   \
        _tile_loadd(6, B0->lo[c], 64);                                                             \
        _tile_loadd(7, B0->hi[c], 64);                                                             \
        _tile_dpbsud(0, A, 6);                                                                     \
        AMXK_HI(1, A);                                                                             \
        _tile_loadd(6, B1->lo[c], 64);                                                             \
        _tile_loadd(7, B1->hi[c], 64);                                                             \
        _tile_dpbsud(2, A, 6);                                                                     \
        AMXK_HI(3, A);                                                                             \
    } while (0)
    AMXK_C2P(4, 0);
    AMXK_C2P(5, 1);
    AMXK_C2P(4, 2);
    AMXK_C2P(5, 3);
#undef AMXK_C2P
}

AI void products1p(const int T, const uint8_t *a0, size_t s0, const uint8_t *a1, size_t s1,
                   bool two, const struct bsb *B0)
{
    _tile_zero(0);
    _tile_zero(1);
    if (two) {
        _tile_zero(2);
        _tile_zero(3);
    }
#pragma GCC unroll 4
    for (int c = 0; c < 4; c++) {
        _tile_loadd(4, a0 + 64 * c, (long)s0);
        _tile_loadd(6, B0->lo[c], 64);
        _tile_loadd(7, B0->hi[c], 64);
        _tile_dpbsud(0, 4, 6);
        AMXK_HI(1, 4);
        if (two) {
            _tile_loadd(5, a1 + 64 * c, (long)s1);
            _tile_dpbsud(2, 5, 6);
            AMXK_HI(3, 5);
        }
    }
}

/* C to memory (k pairs). Issued after the previous item's epilogue: loads
 * after a tile store wait for it, so the epilogue comes first and runs
 * while the tile unit works. */
AI void store_c(int k, int32_t cb[4][TT][16])
{
    _tile_stored(0, cb[0], 64);
    _tile_stored(1, cb[1], 64);
    if (k > 1) {
        _tile_stored(2, cb[2], 64);
        _tile_stored(3, cb[3], 64);
    }
}

/* acc[r·ast] += d·d_a·isum − dmin·d_a·msum (Q6_K: d·d_a·isum) for the m
 * tokens of a tile (sums lo, hi in cb[0], cb[1]), in the reference's order
 * (the first super-block adds to 0, where the reference's sum starts);
 * msum by vpdpwssd of the (m_2p, m_2p+1) pairs with token r's sub-block
 * sums bp[r] (the reference's Σ_j m_j·(bsums[2j] + bsums[2j+1]), exact:
 * each pair sum is at most 32·128 in magnitude). xd: token 0's Q8_K block
 * (its fp32 d first), tokens xs apart. */
AI void epilogue(const int T, int32_t cb[][TT][16], const struct bsb *B, const float *dvp,
                 const float *mvp, const uint8_t *xd, size_t xs, int32_t (*bp)[4], int m,
                 bool first, float *acc, size_t ast)
{
    const __m512 dv = _mm512_load_ps(dvp);
    __m512 mv = _mm512_setzero_ps();
    __m512i mp[4];
    if (T != HR_TYPE_Q6_K) {
        mv = _mm512_load_ps(mvp);
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++)
            mp[j] = _mm512_load_si512(B->mp[j]);
    }
#pragma GCC unroll 16
    for (int r = 0; r < TT; r++)
        if (r < m) {
            const uint8_t *xr = xd + (size_t)r * xs;
            const __m512 da = _mm512_set1_ps(ldf(xr));
            __m512i isum = _mm512_add_epi32(_mm512_load_si512(cb[0][r]),
                                            _mm512_slli_epi32(_mm512_load_si512(cb[1][r]), 8));
            __m512 t = _mm512_mul_ps(_mm512_mul_ps(dv, da), _mm512_cvtepi32_ps(isum));
            if (T != HR_TYPE_Q6_K) {
                __m512i ms = _mm512_setzero_si512();
#pragma GCC unroll 4
                for (int j = 0; j < 4; j++)
                    ms = _mm512_dpwssd_epi32(ms, mp[j], _mm512_set1_epi32(bp[r][j]));
                t = _mm512_sub_ps(t, _mm512_mul_ps(_mm512_mul_ps(mv, da), _mm512_cvtepi32_ps(ms)));
            }
            float *ar = acc + (size_t)r * ast;
            const __m512 prev = first ? _mm512_setzero_ps() : _mm512_load_ps(ar);
            _mm512_store_ps(ar, _mm512_add_ps(prev, t));
        }
}

/* One call: weight rows row0 .. row0+nr−1 (one or two panels, nr <= 32)
 * × nc tokens. */
AI void amx_k(const int T, int64_t n, float *y, size_t ldy, const void *wp, int64_t row0, int nr,
              const void *vx, size_t xs, int nc)
{
    if (nc < AMXK_MIN(T)) { /* the VNNI tile, a panel at a time */
        for (int p = 0; p * PKK_ROWS < nr; p++)
            vnni[T](n, y + p * PKK_ROWS, ldy, wp, row0 + p * PKK_ROWS,
                    nr - p * PKK_ROWS < PKK_ROWS ? nr - p * PKK_ROWS : PKK_ROWS, vx, xs, nc);
        return;
    }
    const int64_t nb = n / QK_K;
    const int np = nr > PKK_ROWS ? 2 : 1;
    const int ntile = (nc + TT - 1) / TT;
    const int tl = ntile - 1, ml = nc - tl * TT; /* the last tile and its tokens */
    /* items: (token tile, super-block) with both panels, or with one panel
     * (tile pair, super-block) */
    const int nunit = np == 2 ? ntile : (ntile + 1) / 2;
    const size_t psz = pkk_panel(T, nb);
    const uint8_t *pan = (const uint8_t *)wp + (size_t)(row0 / PKK_ROWS) * psz;
    const uint8_t *x = vx;
    _Alignas(64) struct bsb B[SBCH][2];
    _Alignas(64) float dvb[SBCH][2][16], mvb[SBCH][2][16];
    _Alignas(64) int8_t apad[SBCH][TT][QK_K]; /* A of a last tile of fewer than 16 tokens */
    _Alignas(64) int32_t cb[2][4][TT][16];
    _Alignas(64) float accm[AMXK_NC][2][16];
    _Alignas(64) int32_t bp[SBCH][AMXK_NC][4]; /* each token's sub-block sums, in word pairs */

    amx_use(&cfg_k);

    for (int64_t i0 = 0; i0 < nb; i0 += SBCH) {
        const int cnt = nb - i0 < SBCH ? (int)(nb - i0) : SBCH;
        for (int s = 0; s < cnt; s++)
            for (int p = 0; p < np; p++)
                unpack_sb(T, pan + (size_t)p * psz, nb, i0 + s, &B[s][p], dvb[s][p], mvb[s][p]);
        if (T != HR_TYPE_Q6_K) /* bsums[2j] + bsums[2j+1] of every token, as 8 words */
            for (int s = 0; s < cnt; s++)
                for (int c = 0; c < nc; c++) {
                    const __m256i b16 = lu256(x + (size_t)c * xs + (size_t)(i0 + s) * Q8K_SIZE + 260);
                    const __m256i b32 = _mm256_madd_epi16(b16, _mm256_set1_epi16(1));
                    _mm_store_si128((__m128i *)bp[s][c], _mm256_cvtepi32_epi16(b32));
                }
        if (ml < TT) { /* the last tile's A from a copy, rows ml..15 zero */
            const uint8_t *xl = x + (size_t)tl * TT * xs + (size_t)i0 * Q8K_SIZE + 4;
            for (int s = 0; s < cnt; s++) {
                for (int r = 0; r < ml; r++)
                    memcpy(apad[s][r], xl + (size_t)r * xs + (size_t)s * Q8K_SIZE, QK_K);
                memset(apad[s][ml], 0, (size_t)(TT - ml) * QK_K);
            }
        }
        MEMORY_BARRIER();
        /* one pipeline over the items q: the products of q + 1 go out
         * before the epilogue of q, their C store after it */
        const int nq = nunit * cnt;
#define AMXK_A(t, s) /* A of token tile t at super-block i0 + s */                                  \
    ((t) == tl && ml < TT ? (const uint8_t *)apad[s]                                               \
                          : x + (size_t)(t) * TT * xs + (size_t)(i0 + (s)) * Q8K_SIZE + 4)
#define AMXK_AS(t) ((t) == tl && ml < TT ? (size_t)QK_K : xs)
#define AMXK_PAIRS(q) (np == 2 ? 2 : 2 * ((q) / cnt) + 1 < ntile ? 2 : 1)
#define AMXK_ISSUE(q)                                                                              \
    do {                                                                                           \
        const int u_ = (q) / cnt, s_ = (q) % cnt;                                                  \
        if (np == 2) {                                                                             \
            products2p(T, AMXK_A(u_, s_), AMXK_AS(u_), &B[s_][0], &B[s_][1]);                      \
        } else {                                                                                   \
            const int t_ = 2 * u_;                                                                 \
            const bool two_ = t_ + 1 < ntile;                                                      \
            products1p(T, AMXK_A(t_, s_), AMXK_AS(t_), two_ ? AMXK_A(t_ + 1, s_) : NULL,           \
                       two_ ? AMXK_AS(t_ + 1) : 0, two_, &B[s_][0]);                               \
        }                                                                                          \
    } while (0)
        AMXK_ISSUE(0);
        store_c(AMXK_PAIRS(0), cb[0]);
        for (int q = 0; q < nq; q++) {
            const int u = q / cnt, sb = q % cnt;
            if (q + 1 < nq) AMXK_ISSUE(q + 1);
            for (int k = 0; k < AMXK_PAIRS(q); k++) {
                const int t = np == 2 ? u : 2 * u + k, p = np == 2 ? k : 0, t0 = t * TT;
                epilogue(T, cb[q % 2] + 2 * k, &B[sb][p], dvb[sb][p], mvb[sb][p],
                         x + (size_t)t0 * xs + (size_t)(i0 + sb) * Q8K_SIZE, xs, bp[sb] + t0,
                         nc - t0 < TT ? nc - t0 : TT, i0 + sb == 0, accm[t0][p], 32);
            }
            if (q + 1 < nq) store_c(AMXK_PAIRS(q + 1), cb[(q + 1) % 2]);
        }
#undef AMXK_A
#undef AMXK_AS
#undef AMXK_PAIRS
#undef AMXK_ISSUE
    }
    for (int p = 0; p < np; p++) {
        const int rows = nr - p * PKK_ROWS < PKK_ROWS ? nr - p * PKK_ROWS : PKK_ROWS;
        const __mmask16 keep = (__mmask16)((1u << rows) - 1);
        for (int c = 0; c < nc; c++)
            _mm512_mask_storeu_ps(y + (size_t)c * ldy + p * PKK_ROWS, keep,
                                  _mm512_load_ps(accm[c][p]));
    }
}

#define AMXK_KERNEL(name, T)                                                                       \
    static void name##_amx(int64_t n, float *y, size_t ldy, const void *wp, int64_t row0, int nr,  \
                           const void *x, size_t xs, int nc)                                       \
    {                                                                                              \
        amx_k(T, n, y, ldy, wp, row0, nr, x, xs, nc);                                              \
    }

AMXK_KERNEL(q4_K, HR_TYPE_Q4_K)
AMXK_KERNEL(q5_K, HR_TYPE_Q5_K)
AMXK_KERNEL(q6_K, HR_TYPE_Q6_K)

static void set(struct quant_kernels *k, uint32_t type, quant_gemm_packed_fn fn)
{
    /* only over the AVX-512 repacked layout (pack_k.h) these tiles read */
    if (!k->gemm_packed || k->gemm_mr != PKK_ROWS) return;
    vnni[type] = k->gemm_packed;
    k->gemm_packed = fn;
    k->gemm_mr = 2 * PKK_ROWS; /* two panels a call: one A load feeds both */
    k->packed_nc = AMXK_NC;
}

void arch_amx_k_init(struct quant_kernels tab[HR_TYPE_COUNT])
{
    set(&tab[HR_TYPE_Q4_K], HR_TYPE_Q4_K, q4_K_amx);
    set(&tab[HR_TYPE_Q5_K], HR_TYPE_Q5_K, q5_K_amx);
    set(&tab[HR_TYPE_Q6_K], HR_TYPE_Q6_K, q6_K_amx);
}
