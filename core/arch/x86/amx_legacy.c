/*
 * amx_legacy.c — prompt-processing tiles of Q4_0, Q5_0 and Q8_0 weights on
 * AMX (Intel Advanced Matrix Extensions, int8 tiles), over the repacked
 * weights of pack_legacy.h, so decode (the AVX-512 VNNI tiles) and prompt
 * processing share one packed copy. Registered by arch_amx_legacy_init over
 * the AVX-512 table; tests/test_simd_legacy.c checks every tile shape
 * against the scalar reference, bit for bit.
 *
 * Exactness. The reference computes, per 32-element block j,
 *     isum_j = Σ_k w_k·a_k (an exact int32),  sum += (d_w·d_a)·isum_j
 * block after block, in float. One TDPBSSD with K = 32 bytes gives exactly
 * the isum_j of 16 tokens × 16 weight rows (signed × signed int8 products,
 * summed in int32 without saturation), so the tile computes the reference's
 * integers; the epilogue applies the reference's float expression to each
 * of them in block order (multiply, multiply, add: no fused multiply-add,
 * which would round differently). Results are the reference's bit for bit,
 * hence also the VNNI tiles' — a token's logits do not depend on whether its
 * batch went through AMX or not.
 *
 * Tiles. A (tmm2/3) = 16 tokens × the 32 quants of one activation block,
 * loaded straight from the Q8_0 rows with the row stride; B (tmm4/5) = the
 * block's weights in the "VNNI" layout (row g holds elements 4g..4g+3 of the
 * 16 weight rows, 4 bytes each), which is the packed qs stream itself for
 * Q8_0 and is unpacked once per call into a stack buffer for the 4-/5-bit
 * kinds (Q4_0 as 16·(q − 8), whose isum is 16 times the reference's and
 * whose scale is d_w/16: powers of two, so the products are unchanged);
 * C (tmm0/1) = the 16×16 int32 sums, stored and read back as 16 zmm rows
 * (lane = weight row, as the output row of a token). Two blocks are in
 * flight on alternate tiles, so the tile unit works while the vector units
 * run the previous block's epilogue. A call takes up to 64 tokens: the
 * weights are unpacked once for four token tiles.
 *
 * The epilogue (convert, two multiplies, add per token and block) is the
 * bound, not the tile unit: ~4 vector µops per 16×32 products, against 8
 * vpdpbusd (plus the same float work) on the VNNI path.
 *
 * With few tokens (decode, small batches) the VNNI tile is used: it streams
 * the weights with prefetches and has no tile setup.
 */
#include "amx_common.h"
#include "pack_legacy.h"

#include "../../quant_impl.h"
#include "../arch.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define TT 16      /* tokens per tile (rows of A and C) */
#define AMX_NC 128 /* tokens per call */
#define BCH 32     /* blocks per chunk: unpacked B (16 KB) and scales on the stack */
#define AMX_MIN 4  /* fewer tokens than this: the VNNI tile */

#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18

bool arch_amx_enable(void)
{
    /* idempotent; granted to the whole process (threads included) */
    return syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
}

_Thread_local const struct tilecfg *amx_loaded;

/* tmm0..3: C (16 × 16 int32), tmm4/5: A (16 × 32 bytes), tmm6/7: B (8 × 64
 * bytes); loaded through amx_use (amx_common.h). A tile of fewer than 16
 * tokens reads its A from a zero-padded copy instead of loading a smaller
 * configuration. */
static const _Alignas(64) struct tilecfg cfg_legacy = {
    .palette = 1,
    .colsb = {64, 64, 64, 64, 32, 32, 64, 64},
    .rows = {TT, TT, TT, TT, TT, TT, 8, 8},
};

/* The VNNI tiles of the level below, for few tokens. */
static quant_gemm_packed_fn vnni[HR_TYPE_COUNT];

/* B of block j of a panel for the 4-/5-bit kinds, into b[8][64]: signed
 * int8 weights (Q4_0: 16·(q − 8)), and their scale d_w (Q4_0: d_w/16). */
X86_INLINE void unpack_block(const enum qkind k, const uint8_t *pan, int64_t nb, int64_t j,
                             int8_t b[8][64], float dw[16])
{
    const uint8_t *pq = pan + (size_t)j * pk_qs(k);
    const uint8_t *pd = pan + (size_t)nb * (pk_qs(k) + (has_qh(k) ? 64 : 0)) + (size_t)j * pk_dm(k);
    __m512 d = _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)pd));
    if (k == K_Q4_0) { /* nibbles stored as q XOR 8: in a byte's high half, 16·(q − 8) */
        const __m512i hi = _mm512_set1_epi8((char)0xf0);
#pragma GCC unroll 4
        for (int g = 0; g < 4; g++) {
            __m512i v = _mm512_load_si512(pq + 64 * g);
            _mm512_store_si512(b[g], _mm512_and_si512(_mm512_slli_epi16(v, 4), hi));
            _mm512_store_si512(b[g + 4], _mm512_and_si512(v, hi));
        }
        _mm512_store_ps(dw, _mm512_mul_ps(d, _mm512_set1_ps(0.0625f)));
        return;
    }
    /* Q5_0: q = nibble | (bit e of the row's qh) << 4, weight q − 16 */
    const __m512i h = _mm512_load_si512(pan + (size_t)nb * pk_qs(k) + (size_t)j * 64);
    const __m512i lo4 = _mm512_set1_epi8(0x0f), bitsel = _mm512_set1_epi32(0x08040201);
#pragma GCC unroll 4
    for (int g = 0; g < 4; g++) {
        __m512i v = _mm512_load_si512(pq + 64 * g);
        __m512i q[2] = {_mm512_and_si512(v, lo4), _mm512_and_si512(_mm512_srli_epi16(v, 4), lo4)};
#pragma GCC unroll 2
        for (int half = 0; half < 2; half++) {
            /* elements 16·half + 4g .. +3: qh bits 16·half + 4g .. +3, one per byte */
            __m512i bits = _mm512_and_si512(_mm512_srli_epi32(h, 16 * half + 4 * g),
                                            _mm512_set1_epi32(0xf));
            __m512i spread = _mm512_mullo_epi32(bits, _mm512_set1_epi32(0x01010101));
            __mmask64 set = _mm512_test_epi8_mask(spread, bitsel);
            __m512i w = _mm512_mask_add_epi8(q[half], set, q[half], _mm512_set1_epi8(0x10));
            _mm512_store_si512(b[g + 4 * half], _mm512_sub_epi8(w, _mm512_set1_epi8(16)));
        }
    }
    _mm512_store_ps(dw, d);
}

/* The epilogue reads d_a of token r, block j at da + r·ts + j·bs. */
struct ascale {
    const float *p;
    size_t ts, bs;
};

/* acc[r] (token r, lane = weight row) += (d_w·d_a[r])·C[r] for r < m: the
 * reference's expression for block j. */
X86_INLINE void epilogue(const int32_t *c, __m512 dw, struct ascale da, int j, int m,
                         __m512 acc[TT])
{
    const float *d = da.p + (size_t)j * da.bs;
#pragma GCC unroll 16
    for (int r = 0; r < TT; r++)
        if (r < m) {
            __m512 s = _mm512_mul_ps(dw, _mm512_set1_ps(d[(size_t)r * da.ts]));
            __m512 v = _mm512_mul_ps(s, _mm512_cvtepi32_ps(_mm512_load_si512(c + 16 * r)));
            acc[r] = _mm512_add_ps(acc[r], v);
        }
}

/* d_a of tokens 0..m−1 at block j (fp16 at x + r·xs + 34·j) as floats. */
X86_INLINE void act_scales(const uint8_t *x, size_t xs, int m, int64_t j, float *da)
{
    const __m512i off = _mm512_mullo_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
        _mm512_set1_epi32((int)xs));
    __mmask16 mk = (__mmask16)((1u << m) - 1);
    __m512i v = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), mk, off,
                                            x + (size_t)j * sizeof(struct block_q8_0), 1);
    _mm512_store_ps(da, _mm512_cvtph_ps(_mm512_cvtepi32_epi16(v)));
}

/* One call: weight rows row0 .. row0+nr−1 (one panel) × nc tokens. xd:
 * the activations' block scales as floats (xd[c·xds + j]), or NULL: then
 * each call converts them (gathers) itself. */
X86_INLINE void amx_tiles(const enum qkind k, uint32_t type, int64_t n, float *y, size_t ldy,
                          const void *wp, int64_t row0, int nr, const void *vx, size_t xs,
                          const float *xd, size_t xds, int nc)
{
    if (nc < AMX_MIN) {
        for (int c = 0; c < nc; c += PK_ROWS) {
            int cn = nc - c < PK_ROWS ? nc - c : PK_ROWS;
            vnni[type](n, y + (size_t)c * ldy, ldy, wp, row0, nr, (const uint8_t *)vx + c * xs,
                       xs, cn);
        }
        return;
    }
    const size_t qb = sizeof(struct block_q8_0), qs0 = offsetof(struct block_q8_0, qs);
    const int64_t nb = n / 32;
    const int ntile = (nc + TT - 1) / TT;
    const uint8_t *pan = (const uint8_t *)wp + (size_t)(row0 / PK_ROWS) * pk_panel(k, nb);
    const uint8_t *x = vx;
    _Alignas(64) int8_t bbuf[BCH][8][64];  /* unused for Q8_0 */
    _Alignas(64) int8_t apad[BCH][TT][32]; /* A of a last tile of fewer than 16 tokens */
    _Alignas(64) float dwb[BCH][16];
    _Alignas(64) float dab[AMX_NC / TT][BCH][16]; /* d_a when xd is NULL */
    _Alignas(64) int32_t cb[4][TT][16];
    _Alignas(64) float accm[AMX_NC][16];
    amx_use(&cfg_legacy);
    for (int64_t b0 = 0; b0 < nb; b0 += BCH) {
        const int cnt = nb - b0 < BCH ? (int)(nb - b0) : BCH;
        for (int j = 0; j < cnt; j++) {
            if (k == K_Q8_0) {
                const uint8_t *pd = pan + (size_t)nb * pk_qs(k) + (size_t)(b0 + j) * pk_dm(k);
                _mm512_store_ps(dwb[j], _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)pd)));
            } else {
                unpack_block(k, pan, nb, b0 + j, bbuf[j], dwb[j]);
            }
        }
        /* per token tile: where its A rows are, and its d_a */
        const uint8_t *xa[AMX_NC / TT];
        size_t as[AMX_NC / TT], ab[AMX_NC / TT];
        struct ascale da[AMX_NC / TT];
        int mt[AMX_NC / TT];
        for (int t = 0; t < ntile; t++) {
            const int t0 = t * TT, m = nc - t0 < TT ? nc - t0 : TT;
            const uint8_t *xt = x + (size_t)t0 * xs;
            mt[t] = m;
            if (xd) {
                da[t] = (struct ascale){xd + (size_t)t0 * xds + b0, xds, 1};
            } else {
                for (int j = 0; j < cnt; j++)
                    act_scales(xt, xs, m, b0 + j, dab[t][j]);
                da[t] = (struct ascale){dab[t][0], 1, 16};
            }
            xa[t] = xt + (size_t)b0 * qb + qs0;
            as[t] = xs;
            ab[t] = qb;
            if (m < TT) { /* rows m..15 zero */
                for (int j = 0; j < cnt; j++) {
                    for (int r = 0; r < m; r++)
                        memcpy(apad[j][r], xa[t] + (size_t)r * xs + (size_t)j * qb, 32);
                    memset(apad[j][m], 0, (size_t)(TT - m) * 32);
                }
                xa[t] = (const uint8_t *)apad;
                as[t] = 32;
                ab[t] = sizeof apad[0];
            }
        }
        MEMORY_BARRIER();
        const uint8_t *bq = k == K_Q8_0 ? pan + (size_t)b0 * pk_qs(k) : (const uint8_t *)bbuf[0];
        for (int t = 0; t < ntile; t++) {
            __m512 acc[TT];
#pragma GCC unroll 16
            for (int r = 0; r < TT; r++)
                acc[r] = b0 == 0 ? _mm512_setzero_ps() : _mm512_load_ps(accm[t * TT + r]);
            /* two blocks in flight: C tmm0/1, A tmm4/5, B tmm6/7 */
#define AMX_DP(c, a, b, jj)                                                                        \
    do {                                                                                           \
        _tile_loadd(a, xa[t] + (size_t)(jj) * ab[t], (long)as[t]);                                 \
        _tile_loadd(b, bq + (size_t)(jj) * 512, 64);                                               \
        _tile_zero(c);                                                                             \
        _tile_dpbssd(c, a, b);                                                                     \
    } while (0)
#define AMX_EPI(c, jj)                                                                             \
    do {                                                                                           \
        _tile_stored(c, cb[c], 64);                                                                \
        epilogue(&cb[c][0][0], _mm512_load_ps(dwb[jj]), da[t], jj, mt[t], acc);                   \
    } while (0)
            /* pairs of blocks, the tile products of the next pair issued
             * before the epilogue of the current one (C sets tmm0/1, tmm2/3) */
            const int npair = cnt / 2;
            if (npair > 0) {
                AMX_DP(0, 4, 6, 0);
                AMX_DP(1, 5, 7, 1);
            }
            for (int p = 0; p < npair; p += 2) {
                if (p + 1 < npair) {
                    AMX_DP(2, 4, 6, 2 * p + 2);
                    AMX_DP(3, 5, 7, 2 * p + 3);
                }
                AMX_EPI(0, 2 * p);
                AMX_EPI(1, 2 * p + 1);
                if (p + 1 < npair) {
                    if (p + 2 < npair) {
                        AMX_DP(0, 4, 6, 2 * p + 4);
                        AMX_DP(1, 5, 7, 2 * p + 5);
                    }
                    AMX_EPI(2, 2 * p + 2);
                    AMX_EPI(3, 2 * p + 3);
                }
            }
            if (cnt % 2) {
                AMX_DP(0, 4, 6, cnt - 1);
                AMX_EPI(0, cnt - 1);
            }
#undef AMX_DP
#undef AMX_EPI
#pragma GCC unroll 16
            for (int r = 0; r < TT; r++)
                _mm512_store_ps(accm[t * TT + r], acc[r]);
        }
    }
    const __mmask16 keep = (__mmask16)((1u << nr) - 1);
    for (int c = 0; c < nc; c++)
        _mm512_mask_storeu_ps(y + (size_t)c * ldy, keep, _mm512_load_ps(accm[c]));
}

#define AMX_KERNEL(name, kind, type)                                                               \
    static void name##_amx(int64_t n, float *y, size_t ldy, const void *wp, int64_t row0, int nr,  \
                           const void *x, size_t xs, int nc)                                       \
    {                                                                                              \
        amx_tiles(kind, type, n, y, ldy, wp, row0, nr, x, xs, NULL, 0, nc);                        \
    }                                                                                              \
    static void name##_amx_xd(int64_t n, float *y, size_t ldy, const void *wp, int64_t row0,       \
                              int nr, const void *x, size_t xs, const float *xd, size_t xds,       \
                              int nc)                                                              \
    {                                                                                              \
        amx_tiles(kind, type, n, y, ldy, wp, row0, nr, x, xs, xd, xds, nc);                        \
    }

AMX_KERNEL(q4_0, K_Q4_0, HR_TYPE_Q4_0)
AMX_KERNEL(q5_0, K_Q5_0, HR_TYPE_Q5_0)
AMX_KERNEL(q8_0, K_Q8_0, HR_TYPE_Q8_0)

static void set(struct quant_kernels *k, uint32_t type, quant_gemm_packed_fn fn,
                quant_gemm_packed_xd_fn fn_xd)
{
    /* only over the AVX-512 repacked layout (pack_legacy.h) these tiles read */
    if (!k->gemm_packed || k->gemm_mr != PK_ROWS) return;
    vnni[type] = k->gemm_packed;
    k->gemm_packed = fn;
    k->gemm_packed_xd = fn_xd;
    k->packed_nc = AMX_NC;
}

void arch_amx_legacy_init(struct quant_kernels tab[HR_TYPE_COUNT])
{
    set(&tab[HR_TYPE_Q4_0], HR_TYPE_Q4_0, q4_0_amx, q4_0_amx_xd);
    set(&tab[HR_TYPE_Q5_0], HR_TYPE_Q5_0, q5_0_amx, q5_0_amx_xd);
    set(&tab[HR_TYPE_Q8_0], HR_TYPE_Q8_0, q8_0_amx, q8_0_amx_xd);
}
