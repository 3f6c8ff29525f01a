/*
 * avx512_attn.c — vec.h attention tiles with AVX-512: up to 16 query
 * vectors (lanes), each computing exactly the recurrence and sums vec.h
 * states; only the exponential is the vector one.
 *
 * Per block of VEC_ATTN_KB keys:
 * (A) Scores. A (lane, key) pair's dot product is dot_f32's: 16-float
 *     chunks multiplied (fused multiply-adds from 0, or onto the previous
 *     64 elements' products), folded (c0 + c2) + (c1 + c3) into one vector
 *     v, whose 16 elements then sum by halves (8, 4, 2, 1). That last tree
 *     is done for 16 pairs at once: the 16 v vectors are folded pairwise
 *     by 256-, 128-, 64- and 32-bit halves (shuffles and adds), which is
 *     the same tree per pair, and leaves pair σ(i) in lane i of one vector
 *     (σ transposes 4×4). With few lanes (a decode step: the query heads of
 *     one KV head), one reduction holds several keys: n_pad = n rounded up
 *     to a power of two, 16/n_pad keys per reduction.
 * (B) The softmax recurrence on whole vectors (all lanes at once): first
 *     key by key the running max and the exponent each key needs (packed
 *     n_pad per key, so that few lanes do not waste the exponential), then
 *     the exponentials in bulk, then key by key the sums and the rescale and
 *     weight each key applies.
 * (C) Per lane — up to four at once when they end at the same key, sharing
 *     the loads of V — the output row in registers while the block's values
 *     stream past: o·r where that lane's max moved, then one fused
 *     multiply-add per key.
 * An f16 cache's block of K and V is converted to f32 scratch once.
 */
#include "../vec.h"
#include "vec_x86.h"

#include <immintrin.h>
#include <math.h>
#include <stdint.h>

#define L 16 /* lanes */
#define KB VEC_ATTN_KB
#define AI static inline __attribute__((always_inline))

AI __mmask16 lanes_below(int64_t k)
{
    return k >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << k) - 1u);
}

/* n binary16 values to f32 */
static void f16_row(float *dst, const uint16_t *src, int64_t n)
{
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 m = lanes_below(n - i);
        _mm512_mask_storeu_ps(dst + i, m, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, src + i)));
    }
}

/* ---- (A) scores ------------------------------------------------------------------ */

/* The vector v of one pair: element 64s + 16c + l of q·k into accumulator
 * (c, l) by fused multiply-adds from 0, then (c0 + c2) + (c1 + c3). NP is
 * hd rounded down to 64 (a constant at the call sites that matter). */
AI __m512 pair_v(const float *q, const float *k, int64_t NP)
{
    __m512 acc[4];
    for (int c = 0; c < 4; c++) {
        acc[c] = _mm512_setzero_ps();
        for (int64_t i = 0; i < NP; i += 64)
            acc[c] = _mm512_fmadd_ps(_mm512_loadu_ps(q + i + 16 * c),
                                     _mm512_loadu_ps(k + i + 16 * c), acc[c]);
    }
    return _mm512_add_ps(_mm512_add_ps(acc[0], acc[2]), _mm512_add_ps(acc[1], acc[3]));
}

/* Lane i of the result = the sum of v[σ(i)]'s elements by halves
 * (l + 8, then + 4, + 2, + 1, lower index first), σ(i) = 4·(i mod 4) + i/4. */
AI __m512 reduce16(const __m512 *v)
{
    __m512 s[8], t[4], u[2];
    for (int p = 0; p < 8; p++) /* [A l + A l+8 (8 lanes), B l + B l+8 (8 lanes)] */
        s[p] = _mm512_add_ps(_mm512_shuffle_f32x4(v[2 * p], v[2 * p + 1], 0x44),
                             _mm512_shuffle_f32x4(v[2 * p], v[2 * p + 1], 0xEE));
    for (int p = 0; p < 4; p++) /* 4 lanes for each of 4 pairs */
        t[p] = _mm512_add_ps(_mm512_shuffle_f32x4(s[2 * p], s[2 * p + 1], 0x88),
                             _mm512_shuffle_f32x4(s[2 * p], s[2 * p + 1], 0xDD));
    for (int p = 0; p < 2; p++) /* per 128 bits: [P 0+2, P 1+3, Q 0+2, Q 1+3] */
        u[p] = _mm512_add_ps(_mm512_shuffle_ps(t[2 * p], t[2 * p + 1], 0x44),
                             _mm512_shuffle_ps(t[2 * p], t[2 * p + 1], 0xEE));
    return _mm512_add_ps(_mm512_shuffle_ps(u[0], u[1], 0x88), _mm512_shuffle_ps(u[0], u[1], 0xDD));
}

/* σ: the slot of the pair that lands in lane i (an involution) */
#define SIGMA(i) (4 * ((i)&3) + ((i) >> 2))

/* dot_f32's tail: the elements past the last whole 64, added in double to
 * the tree's sum (or to 0 when there is no whole 64) */
static float dot_tail(float head, const float *q, const float *k, int64_t np, int64_t hd)
{
    double sum = head;
    for (int64_t i = np; i < hd; i++)
        sum += (double)(q[i] * k[i]);
    return (float)sum;
}

/* The scores of the block's keys 0..nb−1 (rows kr) for lanes 0..n−1:
 * sc[j][l] = (q_l·k_j)·scale, −inf past lane l's last key (b0: the block's
 * first position); lanes >= n get any finite value. */
AI void scores_np(float *sc, const float *const *q, int n, int n_pad, int shift,
                  const float *const *kr, int nb, int64_t hd, int64_t NP, float scale,
                  __m512i lastv, int32_t b0)
{
    const int kpr = L / n_pad; /* keys per reduction */
    const __m512 ninf = _mm512_set1_ps(-INFINITY), vscale = _mm512_set1_ps(scale);
    const __m512i lane_idx =
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    for (int j0 = 0; j0 < nb; j0 += kpr) {
        __m512 v[16];
#pragma GCC unroll 16
        for (int p = 0; p < 16; p++) {
            int i = SIGMA(p), l = i & (n_pad - 1), j = j0 + (i >> shift);
            v[p] = l < n && j < nb && NP ? pair_v(q[l], kr[j], NP) : _mm512_setzero_ps();
        }
        __m512 r = reduce16(v);
        if (NP < hd) { /* a head size not a multiple of 64: the tail per pair */
            float rr[16];
            _mm512_storeu_ps(rr, r);
            for (int i = 0; i < 16; i++) {
                int l = i & (n_pad - 1), j = j0 + (i >> shift);
                if (l < n && j < nb) rr[i] = dot_tail(NP ? rr[i] : 0.0f, q[l], kr[j], NP, hd);
            }
            r = _mm512_loadu_ps(rr);
        }
        for (int g = 0; g < kpr && j0 + g < nb; g++) {
            __m512 s = _mm512_permutexvar_ps(
                _mm512_and_si512(_mm512_add_epi32(lane_idx, _mm512_set1_epi32(g * n_pad)),
                                 _mm512_set1_epi32(15)),
                r);
            __mmask16 seen = _mm512_cmple_epi32_mask(_mm512_set1_epi32(b0 + j0 + g), lastv);
            _mm512_storeu_ps(sc + (j0 + g) * L, _mm512_mask_mul_ps(ninf, seen, s, vscale));
        }
    }
}

/* the lane count and head size as constants for the common shapes, so that
 * a key's chunks stay in registers across its pairs */
#define SCORES_NP(NPAD, SHIFT)                                                                     \
    static void scores_##NPAD(float *sc, const float *const *q, int n, const float *const *kr,     \
                              int nb, int64_t hd, float scale, __m512i lastv, int32_t b0)          \
    {                                                                                              \
        if (hd == 64)                                                                              \
            scores_np(sc, q, n, NPAD, SHIFT, kr, nb, 64, 64, scale, lastv, b0);                    \
        else if (hd == 128)                                                                        \
            scores_np(sc, q, n, NPAD, SHIFT, kr, nb, 128, 128, scale, lastv, b0);                  \
        else                                                                                       \
            scores_np(sc, q, n, NPAD, SHIFT, kr, nb, hd, hd & ~(int64_t)63, scale, lastv, b0);     \
    }
SCORES_NP(1, 0)
SCORES_NP(2, 1)
SCORES_NP(4, 2)
SCORES_NP(8, 3)
SCORES_NP(16, 4)

static void scores(float *sc, const float *const *q, int n, int n_pad, const float *const *kr,
                   int nb, int64_t hd, float scale, __m512i lastv, int32_t b0)
{
    switch (n_pad) {
    case 1:
        scores_1(sc, q, n, kr, nb, hd, scale, lastv, b0);
        break;
    case 2:
        scores_2(sc, q, n, kr, nb, hd, scale, lastv, b0);
        break;
    case 4:
        scores_4(sc, q, n, kr, nb, hd, scale, lastv, b0);
        break;
    case 8:
        scores_8(sc, q, n, kr, nb, hd, scale, lastv, b0);
        break;
    default:
        scores_16(sc, q, n, kr, nb, hd, scale, lastv, b0);
        break;
    }
}

/* ---- (C) the weighted sums of V ------------------------------------------------------- */

/* o[c0 .. c0 + 16·NV) (the last vector masked by mlast) of NL lanes over
 * the block's first je keys: where a lane's max moved at a key (bit of
 * gt), o·r first; then o = fma(v, w, o). */
AI void pv_chunk(int NL, int NV, float *const *o, const int *lane, const float *rv, const float *wv,
                 const __mmask16 *gt, const float *const *vr, int je, int64_t c0, __mmask16 mlast)
{
    __m512 acc[4][8];
    for (int a = 0; a < NL; a++)
        for (int u = 0; u < NV; u++)
            acc[a][u] = _mm512_maskz_loadu_ps(u == NV - 1 ? mlast : 0xffff, o[a] + c0 + 16 * u);
    for (int j = 0; j < je; j++) {
        __m512 w[4];
        for (int a = 0; a < NL; a++) {
            if (gt[j] >> lane[a] & 1) {
                __m512 r = _mm512_set1_ps(rv[j * L + lane[a]]);
                for (int u = 0; u < NV; u++)
                    acc[a][u] = _mm512_mul_ps(acc[a][u], r);
            }
            w[a] = _mm512_set1_ps(wv[j * L + lane[a]]);
        }
        for (int u = 0; u < NV; u++) {
            __m512 vv = _mm512_maskz_loadu_ps(u == NV - 1 ? mlast : 0xffff, vr[j] + c0 + 16 * u);
            for (int a = 0; a < NL; a++)
                acc[a][u] = _mm512_fmadd_ps(vv, w[a], acc[a][u]);
        }
    }
    for (int a = 0; a < NL; a++)
        for (int u = 0; u < NV; u++)
            _mm512_mask_storeu_ps(o[a] + c0 + 16 * u, u == NV - 1 ? mlast : 0xffff, acc[a][u]);
}

/* lanes lane[0..nl) (nl <= 4; all ending at key je of the block) */
static void pv(int nl, const struct vec_attn *a, const int *lane, const float *rv, const float *wv,
               const __mmask16 *gt, const float *const *vr, int je)
{
    float *o[4];
    for (int x = 0; x < nl; x++)
        o[x] = a->o[lane[x]];
    if (a->hd == 64) { /* the common shapes with constant sizes: registers only */
        switch (nl) {
        case 4:
            pv_chunk(4, 4, o, lane, rv, wv, gt, vr, je, 0, 0xffff);
            break;
        case 3:
            pv_chunk(3, 4, o, lane, rv, wv, gt, vr, je, 0, 0xffff);
            break;
        case 2:
            pv_chunk(2, 4, o, lane, rv, wv, gt, vr, je, 0, 0xffff);
            break;
        default:
            pv_chunk(1, 4, o, lane, rv, wv, gt, vr, je, 0, 0xffff);
            break;
        }
        return;
    }
    if (a->hd == 128) {
        for (int x = 0; x < nl; x += 2) {
            if (nl - x >= 2)
                pv_chunk(2, 8, o + x, lane + x, rv, wv, gt, vr, je, 0, 0xffff);
            else
                pv_chunk(1, 8, o + x, lane + x, rv, wv, gt, vr, je, 0, 0xffff);
        }
        return;
    }
    for (int64_t c0 = 0; c0 < a->hd; c0 += 64) {
        int64_t left = a->hd - c0;
        int nv = left >= 64 ? 4 : (int)((left + 15) / 16);
        __mmask16 mlast = lanes_below(left - 16 * (nv - 1));
        for (int x = 0; x < nl; x++) { /* one lane at a time: rare shapes */
            switch (nv) {
            case 4:
                pv_chunk(1, 4, o + x, lane + x, rv, wv, gt, vr, je, c0, mlast);
                break;
            case 3:
                pv_chunk(1, 3, o + x, lane + x, rv, wv, gt, vr, je, c0, mlast);
                break;
            case 2:
                pv_chunk(1, 2, o + x, lane + x, rv, wv, gt, vr, je, c0, mlast);
                break;
            default:
                pv_chunk(1, 1, o + x, lane + x, rv, wv, gt, vr, je, c0, mlast);
                break;
            }
        }
    }
}

/* ---- the tile ------------------------------------------------------------------------- */

void arch_avx512_attn_tile(const struct vec_attn *a)
{
    const int64_t hd = a->hd;
    const int n = a->n;
    int n_pad = 1;
    while (n_pad < n)
        n_pad *= 2;
    float *sc = a->scratch;      /* [KB][L] scores */
    float *dx = sc + KB * L;     /* [KB·n_pad + 16]: exponents, then their exponentials */
    float *rv = dx + KB * L + L; /* [KB][L] rescale factors */
    float *wv = rv + KB * L;     /* [KB][L] weights */
    float *kf = wv + KB * L;     /* [KB][hd] (f16 cache) */
    float *vf = kf + KB * hd;    /* [KB][hd] */
    __mmask16 gt[KB];

    /* lanes past n see key 0 only: their values stay finite, and unused */
    int32_t lastv_[L], n_keys = 0;
    const float *q[L];
    for (int l = 0; l < L; l++) {
        lastv_[l] = l < n ? a->last[l] : 0;
        q[l] = a->q[l < n ? l : 0];
        if (lastv_[l] + 1 > n_keys) n_keys = lastv_[l] + 1;
    }
    for (int l = 0; l < n; l++)
        for (int64_t i = 0; i < hd; i += 16)
            _mm512_mask_storeu_ps(a->o[l] + i, lanes_below(hd - i), _mm512_setzero_ps());
    const __m512i lastv = _mm512_loadu_si512(lastv_);
    const __m512 one = _mm512_set1_ps(1.0f);
    const __mmask16 used = lanes_below(n_pad);
    __m512 m_run = _mm512_set1_ps(-INFINITY), s_run = _mm512_setzero_ps();

    for (int32_t b0 = 0; b0 < n_keys; b0 += KB) {
        int nb = n_keys - b0 < KB ? n_keys - b0 : KB;
        const float *kr[KB], *vr[KB];
        for (int j = 0; j < nb; j++) {
            size_t off = (size_t)((b0 + j) * a->stride);
            if (a->f16) {
                f16_row(kf + j * hd, (const uint16_t *)a->k + off, hd);
                f16_row(vf + j * hd, (const uint16_t *)a->v + off, hd);
                kr[j] = kf + j * hd, vr[j] = vf + j * hd;
            } else {
                kr[j] = (const float *)a->k + off, vr[j] = (const float *)a->v + off;
            }
        }
        scores(sc, q, n, n_pad, kr, nb, hd, a->scale, lastv, b0);

        /* (B) the max key by key; the exponent of each key (M − s where
         * the max moves, else s − M; −inf past a lane's last key), stored
         * n_pad per key (each store overwrites the previous one's unused
         * lanes) */
        for (int j = 0; j < nb; j++) {
            __m512 s = _mm512_loadu_ps(sc + j * L);
            __mmask16 up = _mm512_cmp_ps_mask(s, m_run, _CMP_GT_OQ);
            _mm512_storeu_ps(dx + j * n_pad,
                             _mm512_mask_sub_ps(_mm512_sub_ps(s, m_run), up, m_run, s));
            m_run = _mm512_mask_mov_ps(m_run, up, s);
            gt[j] = up;
        }
        for (int i = 0; i < nb * n_pad; i += 16) {
            __mmask16 m = lanes_below(nb * n_pad - i);
            _mm512_storeu_ps(dx + i, vx512_exp(_mm512_maskz_loadu_ps(m, dx + i)));
        }
        /* key by key: r = e where the max moved (w = 1), else w = e (r = 1);
         * S = S·r + w */
        for (int j = 0; j < nb; j++) {
            __m512 e = _mm512_maskz_loadu_ps(used, dx + j * n_pad);
            __m512 r = _mm512_mask_blend_ps(gt[j], one, e), w = _mm512_mask_blend_ps(gt[j], e, one);
            s_run = _mm512_add_ps(_mm512_mul_ps(s_run, r), w);
            _mm512_storeu_ps(rv + j * L, r);
            _mm512_storeu_ps(wv + j * L, w);
        }

        /* (C) per lane, up to its own last key; lanes ending at the same
         * key four at a time */
        for (int l = 0; l < n;) {
            if (b0 > a->last[l]) {
                l++;
                continue;
            }
            int je = a->last[l] + 1 - b0 < nb ? a->last[l] + 1 - b0 : nb;
            int lane[4] = {l}, nl = 1;
            while (nl < 4 && l + nl < n && b0 <= a->last[l + nl] &&
                   (a->last[l + nl] + 1 - b0 < nb ? a->last[l + nl] + 1 - b0 : nb) == je) {
                lane[nl] = l + nl;
                nl++;
            }
            pv(nl, a, lane, rv, wv, gt, vr, je);
            l += nl;
        }
    }

    float inv[L];
    __mmask16 zero = _mm512_cmp_ps_mask(s_run, _mm512_setzero_ps(), _CMP_EQ_OQ);
    _mm512_storeu_ps(inv, _mm512_maskz_div_ps((__mmask16)~zero, one, s_run));
    for (int l = 0; l < n; l++) {
        __m512 iv = _mm512_set1_ps(inv[l]);
        for (int64_t i = 0; i < hd; i += 16) {
            __mmask16 m = lanes_below(hd - i);
            _mm512_mask_storeu_ps(a->o[l] + i, m,
                                  _mm512_mul_ps(_mm512_maskz_loadu_ps(m, a->o[l] + i), iv));
        }
    }
}
