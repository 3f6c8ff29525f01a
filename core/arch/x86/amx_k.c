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
 * exactly (int32 sums, far from overflow: |isum| < 2^25). The mins come
 * from a third product against m_j repeated over its sub-block's elements,
 * Σ_e m_j(e)·a_e = Σ_j m_j·Σ_{e∈j} a_e, which is the reference's msum since
 * the bsums are the sums of the quants (every Q8_K quantizer writes them
 * so). The epilogue then applies the reference's float expression to each
 * super-block, in order: results are the reference's bit for bit, as the
 * VNNI tiles' are, so a token's logits do not depend on whether its batch
 * went through AMX.
 *
 * Tiles (all 16 rows × 64 bytes: K = 64 elements per product, the most one
 * TDPB* takes, at the same cost as fewer): A (tmm3/4) = 16 tokens × 64
 * activation quants, loaded straight from the Q8_K rows with the row stride
 * (a last tile of fewer tokens from a zero-padded copy); B (tmm5/6/7) = lo,
 * hi and m of 64 elements × 16 weight rows in the VNNI layout (row kk holds
 * elements 4kk..4kk+3 of each weight row), unpacked from the panel once per
 * call into a stack buffer and used by every token tile; C (tmm0/1/2) =
 * the super-block's lo, hi and min sums, accumulated over its 4 chunks,
 * then stored and read back as 16 zmm rows (lane = weight row). The next
 * super-block's products are issued before the current one's epilogue, so
 * the tile unit and the vector units work at the same time.
 *
 * Tile configuration. The configuration is per thread and shared with the
 * other AMX kernels (amx_legacy.c, which keeps its own loaded): a call
 * saves the current one (STTILECFG), loads this file's when it differs,
 * and puts the saved one back before returning.
 *
 * With few tokens (decode, small batches) the VNNI tile is used: unpacking
 * the scaled B costs about what 8 tokens of VNNI products do.
 *
 * Throughput, one thread, L2-resident (bench/kernels_k.c, CPU time, the
 * development Xeon): 16 rows × 128 tokens Q4_K ~750 GOP/s, Q5_K ~750, Q6_K
 * ~1050, against ~390 / ~420 / ~300 for the VNNI tile of 16 tokens. The
 * tile unit is the bound: 12 (Q6_K 8) products, 16 tile loads and 3 tile
 * stores per super-block and 16 tokens take ~100 ns; the epilogue and the
 * unpacking mostly overlap with them.
 */
#include "../../quant_impl.h"
#include "../arch.h"

#include <immintrin.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define AI static inline __attribute__((always_inline))

#include "k_common.h"
#include "pack_k.h"

#define TT 16       /* tokens per tile (rows of A and C) */
#define AMXK_NC 128 /* tokens per call */
#define AMXK_MIN 8  /* fewer tokens than this: the VNNI tile */
#define SBCH 2      /* super-blocks whose B is unpacked at a time (24 KB) */
#define Q8K_SIZE 292

/* gcc's tile loads and ldtilecfg do not declare the memory they read:
 * stores to a buffer a tile load reads must be fenced for the compiler */
#define MEMORY_BARRIER() __asm__ volatile("" ::: "memory")

/* The 64-byte tile configuration (palette 1). */
struct tilecfg {
    uint8_t palette, start_row;
    uint8_t reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
};

/* tmm0..7 all 16 rows × 64 bytes */
static const _Alignas(64) struct tilecfg cfg_k = {
    .palette = 1,
    .colsb = {64, 64, 64, 64, 64, 64, 64, 64},
    .rows = {16, 16, 16, 16, 16, 16, 16, 16},
};

/* The VNNI tiles of the level below, for few tokens. */
static quant_gemm_packed_fn vnni[HR_TYPE_COUNT];

/* B of one super-block, per 64-element chunk c: the low and high bytes of
 * sc·q, and the mins (Q4_K/Q5_K), each a 16 × 64-byte tile. */
struct bsb {
    int8_t lo[4][16][64];
    int8_t hi[4][16][64];
    int8_t m[4][16][64];
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
        const __m512i m_lo = _mm512_shuffle_epi8(mn[jl / 4], ctl_rep(jl % 4));
        const __m512i m_hi = _mm512_shuffle_epi8(mn[jh / 4], ctl_rep(jh % 4));
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
            _mm512_store_si512(B->m[h][g], m_lo);
            _mm512_store_si512(B->m[h][8 + g], m_hi);
        }
    }
}

/* The tile products of one super-block: C tmm0 (lo), tmm1 (hi), tmm2 (m)
 * from A at a (stride as, chunks 64 bytes apart) and B. */
#define AMXK_CHUNK(A, c)                                                                           \
    do {                                                                                           \
        _tile_loadd(A, a + 64 * (c), (long)as);                                                    \
        _tile_loadd(5, B->lo[c], 64);                                                              \
        _tile_dpbsud(0, A, 5);                                                                     \
        _tile_loadd(6, B->hi[c], 64);                                                              \
        if (T == HR_TYPE_Q6_K)                                                                     \
            _tile_dpbssd(1, A, 6);                                                                 \
        else                                                                                       \
            _tile_dpbsud(1, A, 6);                                                                 \
        if (T != HR_TYPE_Q6_K) {                                                                   \
            _tile_loadd(7, B->m[c], 64);                                                           \
            _tile_dpbsud(2, A, 7);                                                                 \
        }                                                                                          \
    } while (0)

AI void products(const int T, const uint8_t *a, size_t as, const struct bsb *B)
{
    _tile_zero(0);
    _tile_zero(1);
    if (T != HR_TYPE_Q6_K) _tile_zero(2);
    AMXK_CHUNK(3, 0);
    AMXK_CHUNK(4, 1);
    AMXK_CHUNK(3, 2);
    AMXK_CHUNK(4, 3);
}

/* C to memory. Issued after the previous super-block's epilogue: loads
 * after a tile store wait for it, so the epilogue must come first to run
 * while the tile unit works. */
AI void store_c(const int T, int32_t cb[3][TT][16])
{
    _tile_stored(0, cb[0], 64);
    _tile_stored(1, cb[1], 64);
    if (T != HR_TYPE_Q6_K) _tile_stored(2, cb[2], 64);
}

/* acc[r] += d·d_a·isum − dmin·d_a·msum (Q6_K: d·d_a·isum) for the m tokens
 * of the tile, in the reference's order; xd: token 0's Q8_K block (its
 * fp32 d first), tokens xs apart. */
AI void epilogue(const int T, int32_t cb[3][TT][16], const float *dvp, const float *mvp,
                 const uint8_t *xd, size_t xs, int m, float acc[][16])
{
    const __m512 dv = _mm512_load_ps(dvp);
    const __m512 mv = T != HR_TYPE_Q6_K ? _mm512_load_ps(mvp) : _mm512_setzero_ps();
#pragma GCC unroll 16
    for (int r = 0; r < TT; r++)
        if (r < m) {
            const __m512 da = _mm512_set1_ps(ldf(xd + (size_t)r * xs));
            __m512i isum = _mm512_add_epi32(_mm512_load_si512(cb[0][r]),
                                            _mm512_slli_epi32(_mm512_load_si512(cb[1][r]), 8));
            __m512 t = _mm512_mul_ps(_mm512_mul_ps(dv, da), _mm512_cvtepi32_ps(isum));
            if (T != HR_TYPE_Q6_K)
                t = _mm512_sub_ps(t, _mm512_mul_ps(_mm512_mul_ps(mv, da),
                                                   _mm512_cvtepi32_ps(_mm512_load_si512(cb[2][r]))));
            _mm512_store_ps(acc[r], _mm512_add_ps(_mm512_load_ps(acc[r]), t));
        }
}

/* One call: weight rows row0 .. row0+nr−1 (one panel) × nc tokens. */
AI void amx_k(const int T, int64_t n, float *y, size_t ldy, const void *wp, int64_t row0, int nr,
              const void *vx, size_t xs, int nc)
{
    if (nc < AMXK_MIN) {
        vnni[T](n, y, ldy, wp, row0, nr, vx, xs, nc);
        return;
    }
    const int64_t nb = n / QK_K;
    const int ntile = (nc + TT - 1) / TT;
    const uint8_t *pan = (const uint8_t *)wp + (size_t)(row0 / PKK_ROWS) * pkk_panel(T, nb);
    const uint8_t *x = vx;
    _Alignas(64) struct bsb B[SBCH];
    _Alignas(64) float dvb[SBCH][16], mvb[SBCH][16];
    _Alignas(64) int8_t apad[SBCH][TT][QK_K]; /* A of a last tile of fewer than 16 tokens */
    _Alignas(64) int32_t cb[2][3][TT][16];
    _Alignas(64) float accm[AMXK_NC][16];
    memset(accm, 0, (size_t)ntile * TT * sizeof accm[0]);

    _Alignas(64) struct tilecfg saved;
    _tile_storeconfig(&saved);
    MEMORY_BARRIER();
    const bool other = memcmp(&saved, &cfg_k, sizeof saved) != 0;
    if (other) _tile_loadconfig(&cfg_k);

    for (int64_t i0 = 0; i0 < nb; i0 += SBCH) {
        const int cnt = nb - i0 < SBCH ? (int)(nb - i0) : SBCH;
        for (int s = 0; s < cnt; s++)
            unpack_sb(T, pan, nb, i0 + s, &B[s], dvb[s], mvb[s]);
        /* a last tile of fewer than 16 tokens: its A from a copy, rows m..15 zero */
        const int tl = ntile - 1, ml = nc - tl * TT;
        if (ml < TT) {
            const uint8_t *xl = x + (size_t)tl * TT * xs + (size_t)i0 * Q8K_SIZE + 4;
            for (int s = 0; s < cnt; s++) {
                for (int r = 0; r < ml; r++)
                    memcpy(apad[s][r], xl + (size_t)r * xs + (size_t)s * Q8K_SIZE, QK_K);
                memset(apad[s][ml], 0, (size_t)(TT - ml) * QK_K);
            }
        }
        MEMORY_BARRIER();
        /* one pipeline over (token tile, super-block) pairs q: the products
         * of q + 1 go out before the epilogue of q, its C store after */
        const int nq = ntile * cnt;
#define AMXK_A(q) /* A of pair q: its first byte, row stride */                                     \
    ((q) / cnt == tl && ml < TT ? (const uint8_t *)apad[(q) % cnt]                                 \
                                : x + (size_t)((q) / cnt) * TT * xs +                              \
                                      (size_t)(i0 + (q) % cnt) * Q8K_SIZE + 4)
#define AMXK_AS(q) ((q) / cnt == tl && ml < TT ? (size_t)QK_K : xs)
        products(T, AMXK_A(0), AMXK_AS(0), &B[0]);
        store_c(T, cb[0]);
        for (int q = 0; q < nq; q++) {
            const int t = q / cnt, sb = q % cnt, t0 = t * TT;
            if (q + 1 < nq) products(T, AMXK_A(q + 1), AMXK_AS(q + 1), &B[(q + 1) % cnt]);
            epilogue(T, cb[q % 2], dvb[sb], mvb[sb],
                     x + (size_t)t0 * xs + (size_t)(i0 + sb) * Q8K_SIZE, xs,
                     nc - t0 < TT ? nc - t0 : TT, accm + t0);
            if (q + 1 < nq) store_c(T, cb[(q + 1) % 2]);
        }
#undef AMXK_A
#undef AMXK_AS
    }
    if (other && saved.palette) { /* the caller's configuration back */
        MEMORY_BARRIER();
        _tile_loadconfig(&saved);
    }
    const __mmask16 keep = (__mmask16)((1u << nr) - 1);
    for (int c = 0; c < nc; c++)
        _mm512_mask_storeu_ps(y + (size_t)c * ldy, keep, _mm512_load_ps(accm[c]));
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
    k->packed_nc = AMXK_NC;
}

void arch_amx_k_init(struct quant_kernels tab[HR_TYPE_COUNT])
{
    set(&tab[HR_TYPE_Q4_K], HR_TYPE_Q4_K, q4_K_amx);
    set(&tab[HR_TYPE_Q5_K], HR_TYPE_Q5_K, q5_K_amx);
    set(&tab[HR_TYPE_Q6_K], HR_TYPE_Q6_K, q6_K_amx);
}
