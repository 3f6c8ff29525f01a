/*
 * avx2_attn.c — vec.h attention tiles with AVX2+FMA: up to 8 query vectors
 * (lanes), each computing exactly the recurrence and sums vec.h states;
 * only the exponential is the vector one. The structure is avx512_attn.c's
 * (see there), with ymm registers: a pair's 16-element vector v of
 * dot_f32's tree is two ymm (elements l and l + 8), whose sum is the tree's
 * first fold; 8 pairs are then folded together by 128-, 64- and 32-bit
 * halves, which leaves pair σ(i) in lane i (reduce8). Few lanes put several keys
 * into one reduction. Tails of the head dimension go through maskload /
 * maskstore; compare results are lane masks.
 */
#include "../vec.h"
#include "vec_x86.h"

#include <immintrin.h>
#include <math.h>
#include <stdint.h>

#define L 8 /* lanes */
#define KB VEC_ATTN_KB
#define AI static inline __attribute__((always_inline))

/* mask of the first k lanes (all of them when k >= 8) */
AI __m256i first_lanes(int64_t k)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(k >= 8 ? 8 : (int)k),
                              _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* n binary16 values to f32 */
static void f16_row(float *dst, const uint16_t *src, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
    for (; i < n; i++)
        dst[i] = _cvtsh_ss(src[i]);
}

/* ---- scores ------------------------------------------------------------------------ */

/* One pair's v folded once: lane l = v[l] + v[l + 8], v as in avx512_attn.c
 * (fused multiply-adds from 0 per 64 elements, (c0 + c2) + (c1 + c3)). */
AI __m256 pair_h(const float *q, const float *k, int64_t NP)
{
    __m256 v[2];
    for (int x = 0; x < 2; x++) {
        __m256 acc[4];
        for (int c = 0; c < 4; c++) {
            acc[c] = _mm256_setzero_ps();
            for (int64_t i = 0; i < NP; i += 64)
                acc[c] = _mm256_fmadd_ps(_mm256_loadu_ps(q + i + 16 * c + 8 * x),
                                         _mm256_loadu_ps(k + i + 16 * c + 8 * x), acc[c]);
        }
        v[x] = _mm256_add_ps(_mm256_add_ps(acc[0], acc[2]), _mm256_add_ps(acc[1], acc[3]));
    }
    return _mm256_add_ps(v[0], v[1]);
}

/* Lane i of the result = the rest of pair h[σ(i)]'s tree (+ 4, + 2, + 1,
 * lower index first), σ(i) = 2·(i mod 4) + i/4. */
AI __m256 reduce8(const __m256 *h)
{
    __m256 s[4], u[2];
    for (int p = 0; p < 4; p++) /* [A l + A l+4 (4 lanes), B (4 lanes)] */
        s[p] = _mm256_add_ps(_mm256_permute2f128_ps(h[2 * p], h[2 * p + 1], 0x20),
                             _mm256_permute2f128_ps(h[2 * p], h[2 * p + 1], 0x31));
    for (int p = 0; p < 2; p++) /* per 128 bits: [P 0+2, P 1+3, Q 0+2, Q 1+3] */
        u[p] = _mm256_add_ps(_mm256_shuffle_ps(s[2 * p], s[2 * p + 1], 0x44),
                             _mm256_shuffle_ps(s[2 * p], s[2 * p + 1], 0xEE));
    return _mm256_add_ps(_mm256_shuffle_ps(u[0], u[1], 0x88), _mm256_shuffle_ps(u[0], u[1], 0xDD));
}

/* the lane whose pair goes into slot p (σ⁻¹) */
#define TAU(p) (4 * ((p)&1) + ((p) >> 1))

static float dot_tail(float head, const float *q, const float *k, int64_t np, int64_t hd)
{
    double sum = head;
    for (int64_t i = np; i < hd; i++)
        sum += (double)(q[i] * k[i]);
    return (float)sum;
}

/* sc[j][l] = (q_l·k_j)·scale, −inf past lane l's last key (see avx512_attn.c) */
AI void scores_np(float *sc, const float *const *q, int n, int n_pad, int shift,
                  const float *const *kr, int nb, int64_t hd, int64_t NP, float scale,
                  __m256i lastv, int32_t b0)
{
    const int kpr = L / n_pad;
    const __m256 ninf = _mm256_set1_ps(-INFINITY), vscale = _mm256_set1_ps(scale);
    const __m256i lane_idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for (int j0 = 0; j0 < nb; j0 += kpr) {
        __m256 h[8];
#pragma GCC unroll 8
        for (int p = 0; p < 8; p++) {
            int i = TAU(p), l = i & (n_pad - 1), j = j0 + (i >> shift);
            h[p] = l < n && j < nb && NP ? pair_h(q[l], kr[j], NP) : _mm256_setzero_ps();
        }
        __m256 r = reduce8(h);
        if (NP < hd) {
            float rr[8];
            _mm256_storeu_ps(rr, r);
            for (int i = 0; i < 8; i++) {
                int l = i & (n_pad - 1), j = j0 + (i >> shift);
                if (l < n && j < nb) rr[i] = dot_tail(NP ? rr[i] : 0.0f, q[l], kr[j], NP, hd);
            }
            r = _mm256_loadu_ps(rr);
        }
        for (int g = 0; g < kpr && j0 + g < nb; g++) {
            __m256 s = _mm256_permutevar8x32_ps(
                r, _mm256_and_si256(_mm256_add_epi32(lane_idx, _mm256_set1_epi32(g * n_pad)),
                                    _mm256_set1_epi32(7)));
            __m256 unseen =
                _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(b0 + j0 + g), lastv));
            _mm256_storeu_ps(sc + (j0 + g) * L,
                             _mm256_blendv_ps(_mm256_mul_ps(s, vscale), ninf, unseen));
        }
    }
}

/* the lane count and head size as constants for the common shapes (see
 * avx512_attn.c) */
#define SCORES_NP(NPAD, SHIFT)                                                                     \
    static void scores_##NPAD(float *sc, const float *const *q, int n, const float *const *kr,     \
                              int nb, int64_t hd, float scale, __m256i lastv, int32_t b0)          \
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

static void scores(float *sc, const float *const *q, int n, int n_pad, const float *const *kr,
                   int nb, int64_t hd, float scale, __m256i lastv, int32_t b0)
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
    default:
        scores_8(sc, q, n, kr, nb, hd, scale, lastv, b0);
        break;
    }
}

/* ---- the weighted sums of V -------------------------------------------------------- */

AI __m256 load_part(const float *p, bool part, __m256i m)
{
    return part ? _mm256_maskload_ps(p, m) : _mm256_loadu_ps(p);
}

/* o[c0 .. c0 + 8·NV) of NL lanes (1 or 2) over the block's first je keys
 * (the last vector partial when PART, mask mlast); see avx512_attn.c */
AI void pv_chunk(int NL, int NV, bool PART, float *const *o, const int *lane, const float *rv,
                 const float *wv, const unsigned *gt, const float *const *vr, int je, int64_t c0,
                 __m256i mlast)
{
    __m256 acc[2][4];
    for (int a = 0; a < NL; a++)
        for (int u = 0; u < NV; u++)
            acc[a][u] = load_part(o[a] + c0 + 8 * u, PART && u == NV - 1, mlast);
    for (int j = 0; j < je; j++) {
        __m256 w[2];
        for (int a = 0; a < NL; a++) {
            if (gt[j] >> lane[a] & 1) {
                __m256 r = _mm256_broadcast_ss(rv + j * L + lane[a]);
                for (int u = 0; u < NV; u++)
                    acc[a][u] = _mm256_mul_ps(acc[a][u], r);
            }
            w[a] = _mm256_broadcast_ss(wv + j * L + lane[a]);
        }
        for (int u = 0; u < NV; u++) {
            __m256 vv = load_part(vr[j] + c0 + 8 * u, PART && u == NV - 1, mlast);
            for (int a = 0; a < NL; a++)
                acc[a][u] = _mm256_fmadd_ps(vv, w[a], acc[a][u]);
        }
    }
    for (int a = 0; a < NL; a++)
        for (int u = 0; u < NV; u++) {
            if (PART && u == NV - 1)
                _mm256_maskstore_ps(o[a] + c0 + 8 * u, mlast, acc[a][u]);
            else
                _mm256_storeu_ps(o[a] + c0 + 8 * u, acc[a][u]);
        }
}

/* lanes lane[0..nl) (nl <= 2, both ending at key je of the block), in
 * 32-float slices of the row */
static void pv(int nl, const struct vec_attn *a, const int *lane, const float *rv, const float *wv,
               const unsigned *gt, const float *const *vr, int je)
{
    float *o[2] = {a->o[lane[0]], nl > 1 ? a->o[lane[1]] : NULL};
    const __m256i all = _mm256_set1_epi32(-1);
    for (int64_t c0 = 0; c0 < a->hd; c0 += 32) {
        int64_t left = a->hd - c0;
        if (left >= 32) {
            if (nl == 2)
                pv_chunk(2, 4, false, o, lane, rv, wv, gt, vr, je, c0, all);
            else
                pv_chunk(1, 4, false, o, lane, rv, wv, gt, vr, je, c0, all);
            continue;
        }
        int nv = (int)((left + 7) / 8);
        __m256i mlast = first_lanes(left - 8 * (nv - 1));
        for (int x = 0; x < nl; x++) { /* rare shapes: one lane at a time */
            switch (nv) {
            case 3:
                pv_chunk(1, 3, true, o + x, lane + x, rv, wv, gt, vr, je, c0, mlast);
                break;
            case 2:
                pv_chunk(1, 2, true, o + x, lane + x, rv, wv, gt, vr, je, c0, mlast);
                break;
            default:
                pv_chunk(1, 1, true, o + x, lane + x, rv, wv, gt, vr, je, c0, mlast);
                break;
            }
        }
    }
}

/* ---- the tile ------------------------------------------------------------------------- */

void arch_avx2_attn_tile(const struct vec_attn *a)
{
    const int64_t hd = a->hd;
    const int n = a->n;
    int n_pad = 1;
    while (n_pad < n)
        n_pad *= 2;
    float *sc = a->scratch;      /* [KB][L] scores */
    float *dx = sc + KB * L;     /* [KB·n_pad + 8]: exponents, then their exponentials */
    float *rv = dx + KB * L + L; /* [KB][L] rescale factors */
    float *wv = rv + KB * L;     /* [KB][L] weights */
    float *kf = wv + KB * L;     /* [KB][hd] (f16 cache) */
    float *vf = kf + KB * hd;    /* [KB][hd] */
    unsigned gt[KB];

    /* lanes past n see key 0 only: their values stay finite, and unused */
    int32_t lastv_[L], n_keys = 0;
    const float *q[L];
    for (int l = 0; l < L; l++) {
        lastv_[l] = l < n ? a->last[l] : 0;
        q[l] = a->q[l < n ? l : 0];
        if (lastv_[l] + 1 > n_keys) n_keys = lastv_[l] + 1;
    }
    for (int l = 0; l < n; l++)
        for (int64_t i = 0; i < hd; i++)
            a->o[l][i] = 0.0f;
    const __m256i lastv = _mm256_loadu_si256((const __m256i *)lastv_);
    const __m256i used = first_lanes(n_pad);
    const __m256 one = _mm256_set1_ps(1.0f);
    __m256 m_run = _mm256_set1_ps(-INFINITY), s_run = _mm256_setzero_ps();

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

        /* the max and each key's exponent, n_pad per key; the exponentials
         * in bulk; then the sums, rescales and weights (avx512_attn.c) */
        for (int j = 0; j < nb; j++) {
            __m256 s = _mm256_loadu_ps(sc + j * L);
            __m256 up = _mm256_cmp_ps(s, m_run, _CMP_GT_OQ);
            _mm256_storeu_ps(dx + j * n_pad, _mm256_blendv_ps(_mm256_sub_ps(s, m_run),
                                                              _mm256_sub_ps(m_run, s), up));
            m_run = _mm256_blendv_ps(m_run, s, up);
            gt[j] = (unsigned)_mm256_movemask_ps(up);
        }
        for (int i = 0; i < nb * n_pad; i += 8)
            _mm256_storeu_ps(dx + i,
                             vx256_exp(_mm256_maskload_ps(dx + i, first_lanes(nb * n_pad - i))));
        for (int j = 0; j < nb; j++) {
            __m256 e = _mm256_maskload_ps(dx + j * n_pad, used);
            __m256 up = _mm256_castsi256_ps(
                _mm256_cmpgt_epi32(_mm256_and_si256(_mm256_set1_epi32((int)gt[j]),
                                                    _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128)),
                                   _mm256_setzero_si256()));
            __m256 r = _mm256_blendv_ps(one, e, up), w = _mm256_blendv_ps(e, one, up);
            s_run = _mm256_add_ps(_mm256_mul_ps(s_run, r), w);
            _mm256_storeu_ps(rv + j * L, r);
            _mm256_storeu_ps(wv + j * L, w);
        }

        for (int l = 0; l < n; l++) {
            if (b0 > a->last[l]) continue;
            int je = a->last[l] + 1 - b0 < nb ? a->last[l] + 1 - b0 : nb;
            int lane[2] = {l, l + 1};
            if (l + 1 < n && b0 <= a->last[l + 1] &&
                (a->last[l + 1] + 1 - b0 < nb ? a->last[l + 1] + 1 - b0 : nb) == je) {
                pv(2, a, lane, rv, wv, gt, vr, je);
                l++;
            } else {
                pv(1, a, lane, rv, wv, gt, vr, je);
            }
        }
    }

    float sv[L];
    _mm256_storeu_ps(sv, s_run);
    for (int l = 0; l < n; l++) {
        float inv = sv[l] == 0.0f ? 0.0f : 1.0f / sv[l];
        __m256 iv = _mm256_set1_ps(inv);
        int64_t i = 0;
        for (; i + 8 <= hd; i += 8)
            _mm256_storeu_ps(a->o[l] + i, _mm256_mul_ps(_mm256_loadu_ps(a->o[l] + i), iv));
        for (; i < hd; i++)
            a->o[l][i] *= inv;
    }
}
