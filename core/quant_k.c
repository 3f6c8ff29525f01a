/*
 * quant_k.c — scalar reference kernels of the K-quants: Q2_K, Q3_K, Q4_K,
 * Q5_K, Q6_K (256-element super-blocks of 16 or 32-element sub-blocks) and
 * the Q8_K activation format their dot products use.
 *
 * Quantizers (FORMATS.md §2.4) work in three steps per super-block:
 *   1. a per-sub-block float scale (and min) found by a small search —
 *      fit_scale_min (llama.cpp's make_qkx2_quants) for the types with a
 *      min, fit_signed_cd (make_q3_quants) for Q3_K, fit_signed_sweep
 *      (make_qx_quants, rmse_type 1) for Q6_K;
 *   2. those scales quantized to 4/6/8-bit integers under one fp16 super-scale;
 *   3. every element re-quantized against the *stored* scales (fp16 super-scale
 *      times integer sub-scale), so the quants match what decoding will use.
 * Matching llama.cpp's bytes requires evaluating every float expression in the
 * same order with fp32 rounding (no FMA contraction: the build is ISO C11, in
 * which GCC keeps -ffp-contract=off), so the expressions below keep the
 * reference's association, e.g. (w·l)·l rather than w·(l·l).
 *
 * Dot products (FORMATS.md §3) take one weight row and one Q8_K row, sum
 * integer products per sub-block, weight them by the integer sub-scales, and
 * apply fp16(d)·d_q8 once per super-block; the min terms use the Q8_K bsums.
 */
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "quant_impl.h"

/* A sub-block whose largest |x| is below this is treated as all zero. */
#define GROUP_MAX_EPS 1e-15f

static inline int clampi(int v, int lo, int hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* ---- step 1: per-sub-block scale searches ------------------------------------- */

/*
 * Fits x ≈ scale·L − offset with L in 0..nmax, offset >= 0, minimizing the
 * weighted error Σ w·|err| (use_mad) or Σ w·err². Starts from the plain
 * min/max mapping, then tries nstep+1 slightly different inverse scales
 * (rmin + rdelta·is + nmax)/(max − min); for each, the weighted least-squares
 * (scale, min) for those L, with min forced to 0 when the fit wants it > 0.
 * Returns scale; *offset = −min. Laux is scratch of n bytes.
 */
static float fit_scale_min(int n, int nmax, const float *x, const float *w, uint8_t *L,
                           float *offset, uint8_t *Laux, float rmin, float rdelta, int nstep,
                           bool use_mad)
{
    float mn = x[0], mx = x[0];
    float sum_w = w[0];
    float sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < mn)
            mn = x[i];
        if (x[i] > mx)
            mx = x[i];
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if (mn > 0)
        mn = 0;
    if (mx == mn) {
        memset(L, 0, (size_t)n);
        *offset = -mn;
        return 0.0f;
    }
    float iscale = (float)nmax / (mx - mn);
    float scale = 1 / iscale;
    float best = 0;
    for (int i = 0; i < n; i++) {
        L[i] = (uint8_t)clampi(quant_nearest_int(iscale * (x[i] - mn)), 0, nmax);
        float diff = scale * L[i] + mn - x[i];
        diff = use_mad ? fabsf(diff) : diff * diff;
        best += w[i] * diff;
    }
    for (int is = 0; is <= nstep; is++) {
        iscale = (rmin + rdelta * (float)is + (float)nmax) / (mx - mn);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            int l = clampi(quant_nearest_int(iscale * (x[i] - mn)), 0, nmax);
            Laux[i] = (uint8_t)l;
            sum_l += w[i] * (float)l;
            sum_l2 += w[i] * (float)l * (float)l;
            sum_xl += w[i] * (float)l * x[i];
        }
        float D = sum_w * sum_l2 - sum_l * sum_l;
        if (!(D > 0))
            continue;
        float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
        float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
        if (this_min > 0) {
            this_min = 0;
            this_scale = sum_xl / sum_l2;
        }
        float err = 0;
        for (int i = 0; i < n; i++) {
            float diff = this_scale * Laux[i] + this_min - x[i];
            diff = use_mad ? fabsf(diff) : diff * diff;
            err += w[i] * diff;
        }
        if (err < best) {
            memcpy(L, Laux, (size_t)n);
            best = err;
            scale = this_scale;
            mn = this_min;
        }
    }
    *offset = -mn;
    return scale;
}

/* Signed value of largest magnitude (first wins ties); *amax gets |it|. */
static float signed_max(const float *x, int n, float *amax)
{
    float a = 0, m = 0;
    for (int i = 0; i < n; i++) {
        float ax = fabsf(x[i]);
        if (ax > a) {
            a = ax;
            m = x[i];
        }
    }
    *amax = a;
    return m;
}

/*
 * Q3_K's fit: symmetric quants l in −nmax..nmax−1 with weights x², starting
 * from l = round(−nmax·x/max), then up to 5 passes of coordinate descent: for
 * each element, the l that best fits the scale implied by the others is kept
 * if it raises (Σwxl)²/Σwl². L gets l + nmax. Returns the least-squares scale.
 * An all-zero group gets L = 0 (not nmax) and scale 0.
 */
static float fit_signed_cd(int n, int nmax, const float *x, int8_t *L)
{
    float amax;
    float max = signed_max(x, n, &amax);
    if (amax < GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.0f;
    }
    float iscale = (float)-nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = clampi(quant_nearest_int(iscale * x[i]), -nmax, nmax - 1);
        L[i] = (int8_t)l;
        float w = x[i] * x[i];
        sumlx += w * x[i] * (float)l;
        suml2 += w * (float)l * (float)l;
    }
    for (int pass = 0; pass < 5; pass++) {
        int changed = 0;
        for (int i = 0; i < n; i++) {
            float w = x[i] * x[i];
            float slx = sumlx - w * x[i] * (float)L[i];
            if (!(slx > 0))
                continue;
            float sl2 = suml2 - w * (float)L[i] * (float)L[i];
            int nl = clampi(quant_nearest_int(x[i] * sl2 / slx), -nmax, nmax - 1);
            if (nl == L[i])
                continue;
            slx += w * x[i] * (float)nl;
            sl2 += w * (float)nl * (float)nl;
            if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                L[i] = (int8_t)nl;
                sumlx = slx;
                suml2 = sl2;
                changed++;
            }
        }
        if (!changed)
            break;
    }
    for (int i = 0; i < n; i++)
        L[i] = (int8_t)(L[i] + nmax);
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

/*
 * Q6_K's fit: symmetric quants with weights x²; tries the inverse scales
 * −(nmax + 0.1·is)/max for is = 0, −9..9 and keeps the one with the largest
 * (Σwxl)²/Σwl² (the smallest weighted squared error at its optimal scale).
 * L gets l + nmax; an all-zero group gets L = 0 and scale 0.
 */
static float fit_signed_sweep(int n, int nmax, const float *x, int8_t *L)
{
    float amax;
    float max = signed_max(x, n, &amax);
    if (amax < GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.0f;
    }
    float iscale = (float)-nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = clampi(quant_nearest_int(iscale * x[i]), -nmax, nmax - 1);
        L[i] = (int8_t)(l + nmax);
        float w = x[i] * x[i];
        sumlx += w * x[i] * (float)l;
        suml2 += w * (float)l * (float)l;
    }
    float scale = suml2 != 0 ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0)
            continue;
        iscale = -((float)nmax + 0.1f * (float)is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; i++) {
            int l = clampi(quant_nearest_int(iscale * x[i]), -nmax, nmax - 1);
            float w = x[i] * x[i];
            sumlx += w * x[i] * (float)l;
            suml2 += w * (float)l * (float)l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++) {
                int l = clampi(quant_nearest_int(iscale * x[i]), -nmax, nmax - 1);
                L[i] = (int8_t)(l + nmax);
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

/* ---- shared packing ------------------------------------------------------------ */

/* 2-bit values of Q2_K/Q3_K: byte l of each 32-byte half h holds elements
 * 128h + l + 32g in bit pair g. */
static void pack_2bit(const uint8_t *L, uint8_t *qs)
{
    for (int h = 0; h < 2; h++)
        for (int l = 0; l < 32; l++) {
            const uint8_t *q = L + 128 * h + l;
            qs[32 * h + l] = (uint8_t)(q[0] | q[32] << 2 | q[64] << 4 | q[96] << 6);
        }
}

static void unpack_2bit(const uint8_t *qs, int8_t *q)
{
    for (int h = 0; h < 2; h++)
        for (int g = 0; g < 4; g++)
            for (int l = 0; l < 32; l++)
                q[128 * h + 32 * g + l] = (int8_t)((qs[32 * h + l] >> (2 * g)) & 3);
}

/* Q4_K/Q5_K: 6-bit scale and min of sub-block j (0..7) from 12 bytes. */
static inline void get_scale_min(int j, const uint8_t *s, int *sc, int *m)
{
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 15) | (s[j - 4] >> 6) << 4;
        *m = (s[j + 4] >> 4) | (s[j] >> 6) << 4;
    }
}

static void put_scale_min(int j, uint8_t *s, int sc, int m)
{
    if (j < 4) {
        s[j] = (uint8_t)sc;
        s[j + 4] = (uint8_t)m;
    } else {
        s[j + 4] = (uint8_t)((sc & 15) | (m & 15) << 4);
        s[j - 4] |= (uint8_t)((sc >> 4) << 6);
        s[j] |= (uint8_t)((m >> 4) << 6);
    }
}

/* Q3_K: the 16 scales as signed values −32..31 from 12 bytes t: low 4 bits
 * in the low (j < 8) or high (j >= 8) nibble of t[j%8], high 2 bits in bit
 * pair j/4 of t[8 + j%4]. */
static void q3_get_scales(const uint8_t *t, int *sc)
{
    for (int j = 0; j < 16; j++) {
        int lo = j < 8 ? t[j] & 15 : t[j - 8] >> 4;
        int hi = (t[8 + j % 4] >> (2 * (j / 4))) & 3;
        sc[j] = (lo | hi << 4) - 32;
    }
}

/* v in 0..63 (the biased scale) */
static void q3_put_scale(int j, uint8_t *t, int v)
{
    if (j < 8)
        t[j] = (uint8_t)(v & 15);
    else
        t[j - 8] |= (uint8_t)((v & 15) << 4);
    t[8 + j % 4] |= (uint8_t)((v >> 4) << (2 * (j / 4)));
}

/* ---- Q2_K ------------------------------------------------------------------------ */

void quant_q2_K_to_float(const void *src, float *dst, int64_t n)
{
    const struct block_q2_K *b = src;
    int8_t q[QK_K];
    for (int64_t i = 0; i < n / QK_K; i++, dst += QK_K) {
        float d = quant_f16_to_f32(b[i].d);
        float dmin = quant_f16_to_f32(b[i].dmin);
        unpack_2bit(b[i].qs, q);
        for (int j = 0; j < QK_K / 16; j++) {
            float dl = d * (float)(b[i].scales[j] & 15);
            float ml = dmin * (float)(b[i].scales[j] >> 4);
            for (int l = 0; l < 16; l++)
                dst[16 * j + l] = dl * (float)q[16 * j + l] - ml;
        }
    }
}

void quant_q2_K_from_float(const float *x, void *dst, int64_t n)
{
    struct block_q2_K *y = dst;
    uint8_t L[QK_K], Laux[16];
    float w[16], scales[QK_K / 16], mins[QK_K / 16];

    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        float max_scale = 0, max_min = 0;
        for (int j = 0; j < QK_K / 16; j++) {
            for (int l = 0; l < 16; l++)
                w[l] = fabsf(x[16 * j + l]);
            scales[j] = fit_scale_min(16, 3, x + 16 * j, w, L + 16 * j, &mins[j], Laux, -0.5f,
                                      0.1f, 15, true);
            if (scales[j] > max_scale)
                max_scale = scales[j];
            if (mins[j] > max_min)
                max_min = mins[j];
        }
        memset(y[i].scales, 0, sizeof y[i].scales);
        y[i].d = quant_f32_to_f16(0.0f);
        y[i].dmin = quant_f32_to_f16(0.0f);
        if (max_scale > 0) {
            float iscale = 15.0f / max_scale;
            for (int j = 0; j < QK_K / 16; j++)
                y[i].scales[j] = (uint8_t)clampi(quant_nearest_int(iscale * scales[j]), 0, 15);
            y[i].d = quant_f32_to_f16(max_scale / 15.0f);
        }
        if (max_min > 0) {
            float iscale = 15.0f / max_min;
            for (int j = 0; j < QK_K / 16; j++) {
                int l = clampi(quant_nearest_int(iscale * mins[j]), 0, 15);
                y[i].scales[j] |= (uint8_t)(l << 4);
            }
            y[i].dmin = quant_f32_to_f16(max_min / 15.0f);
        }
        float d_all = quant_f16_to_f32(y[i].d), m_all = quant_f16_to_f32(y[i].dmin);
        for (int j = 0; j < QK_K / 16; j++) {
            float d = d_all * (float)(y[i].scales[j] & 15);
            if (d == 0)
                continue;
            float dm = m_all * (float)(y[i].scales[j] >> 4);
            for (int l = 0; l < 16; l++) {
                int q = quant_nearest_int((x[16 * j + l] + dm) / d);
                L[16 * j + l] = (uint8_t)clampi(q, 0, 3);
            }
        }
        pack_2bit(L, y[i].qs);
    }
}

void quant_q2_K_vec_dot(int64_t n, float *s, const void *vx, const void *vy)
{
    const struct block_q2_K *x = vx;
    const struct block_q8_K *y = vy;
    int8_t q[QK_K];
    float sum = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        unpack_2bit(x[i].qs, q);
        int32_t isum = 0, msum = 0;
        for (int j = 0; j < QK_K / 16; j++) {
            int32_t sub = 0;
            for (int l = 0; l < 16; l++)
                sub += q[16 * j + l] * y[i].qs[16 * j + l];
            isum += (x[i].scales[j] & 15) * sub;
            msum += (x[i].scales[j] >> 4) * y[i].bsums[j];
        }
        float dall = y[i].d * quant_f16_to_f32(x[i].d);
        float dmin = y[i].d * quant_f16_to_f32(x[i].dmin);
        sum += dall * (float)isum - dmin * (float)msum;
    }
    *s = sum;
}

/* ---- Q3_K ------------------------------------------------------------------------ */

static void q3_unpack(const struct block_q3_K *b, int8_t *q)
{
    unpack_2bit(b->qs, q);
    for (int e = 0; e < QK_K; e++)
        if (!((b->hmask[e % 32] >> (e / 32)) & 1))
            q[e] = (int8_t)(q[e] - 4);
}

void quant_q3_K_to_float(const void *src, float *dst, int64_t n)
{
    const struct block_q3_K *b = src;
    int8_t q[QK_K];
    int sc[16];
    for (int64_t i = 0; i < n / QK_K; i++, dst += QK_K) {
        float d = quant_f16_to_f32(b[i].d);
        q3_unpack(&b[i], q);
        q3_get_scales(b[i].scales, sc);
        for (int j = 0; j < QK_K / 16; j++) {
            float dl = d * (float)sc[j];
            for (int l = 0; l < 16; l++)
                dst[16 * j + l] = dl * (float)q[16 * j + l];
        }
    }
}

void quant_q3_K_from_float(const float *x, void *dst, int64_t n)
{
    struct block_q3_K *y = dst;
    int8_t L[QK_K];
    float scales[QK_K / 16];
    int sc[16];

    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        float amax = 0, max_scale = 0;
        for (int j = 0; j < QK_K / 16; j++) {
            scales[j] = fit_signed_cd(16, 4, x + 16 * j, L + 16 * j);
            float a = fabsf(scales[j]);
            if (a > amax) {
                amax = a;
                max_scale = scales[j];
            }
        }
        memset(y[i].scales, 0, sizeof y[i].scales);
        if (max_scale != 0) {
            float iscale = -32.0f / max_scale;
            for (int j = 0; j < QK_K / 16; j++) {
                int l = clampi(quant_nearest_int(iscale * scales[j]), -32, 31);
                q3_put_scale(j, y[i].scales, l + 32);
            }
            y[i].d = quant_f32_to_f16(1 / iscale);
        } else {
            y[i].d = quant_f32_to_f16(0.0f);
        }
        float d_all = quant_f16_to_f32(y[i].d);
        q3_get_scales(y[i].scales, sc);
        for (int j = 0; j < QK_K / 16; j++) {
            float d = d_all * (float)sc[j];
            if (d == 0)
                continue;
            for (int l = 0; l < 16; l++) {
                int q = clampi(quant_nearest_int(x[16 * j + l] / d), -4, 3);
                L[16 * j + l] = (int8_t)(q + 4);
            }
        }
        /* the high bit (value 4 of the 0..7 quant) goes to hmask; a set bit
         * means "no −4" on decoding */
        uint8_t low[QK_K];
        memset(y[i].hmask, 0, sizeof y[i].hmask);
        for (int e = 0; e < QK_K; e++) {
            int l = L[e];
            if (l > 3) {
                y[i].hmask[e % 32] |= (uint8_t)(1u << (e / 32));
                l -= 4;
            }
            low[e] = (uint8_t)l;
        }
        pack_2bit(low, y[i].qs);
    }
}

void quant_q3_K_vec_dot(int64_t n, float *s, const void *vx, const void *vy)
{
    const struct block_q3_K *x = vx;
    const struct block_q8_K *y = vy;
    int8_t q[QK_K];
    int sc[16];
    float sum = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        q3_unpack(&x[i], q);
        q3_get_scales(x[i].scales, sc);
        int32_t isum = 0;
        for (int j = 0; j < QK_K / 16; j++) {
            int32_t sub = 0;
            for (int l = 0; l < 16; l++)
                sub += q[16 * j + l] * y[i].qs[16 * j + l];
            isum += sc[j] * sub;
        }
        sum += (quant_f16_to_f32(x[i].d) * y[i].d) * (float)isum;
    }
    *s = sum;
}

/* ---- Q4_K, Q5_K -------------------------------------------------------------------- */

/*
 * Steps 1 and 2 shared by Q4_K (nmax 15) and Q5_K (nmax 31): weights
 * sqrt(mean x²) + |x| per 32-element sub-block, fit_scale_min, then 6-bit
 * sub-scales and sub-mins under fp16 d = max_scale/63, dmin = max_min/63.
 * Step 3: L gets every element re-quantized with the stored values.
 */
static void k4_quantize_block(const float *x, int nmax, float rmin, int nstep, uint16_t *dd,
                              uint16_t *dmin, uint8_t *packed, uint8_t *L)
{
    uint8_t Laux[32];
    float w[32], scales[QK_K / 32], mins[QK_K / 32];
    float max_scale = 0, max_min = 0;

    for (int j = 0; j < QK_K / 32; j++) {
        const float *xs = x + 32 * j;
        float sum_x2 = 0;
        for (int l = 0; l < 32; l++)
            sum_x2 += xs[l] * xs[l];
        float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; l++)
            w[l] = av_x + fabsf(xs[l]);
        scales[j] =
            fit_scale_min(32, nmax, xs, w, L + 32 * j, &mins[j], Laux, rmin, 0.1f, nstep, false);
        if (scales[j] > max_scale)
            max_scale = scales[j];
        if (mins[j] > max_min)
            max_min = mins[j];
    }
    float inv_scale = max_scale > 0 ? 63.0f / max_scale : 0.0f;
    float inv_min = max_min > 0 ? 63.0f / max_min : 0.0f;
    memset(packed, 0, 12);
    for (int j = 0; j < QK_K / 32; j++) {
        int ls = clampi(quant_nearest_int(inv_scale * scales[j]), 0, 63);
        int lm = clampi(quant_nearest_int(inv_min * mins[j]), 0, 63);
        put_scale_min(j, packed, ls, lm);
    }
    *dd = quant_f32_to_f16(max_scale / 63.0f);
    *dmin = quant_f32_to_f16(max_min / 63.0f);

    float d_all = quant_f16_to_f32(*dd), m_all = quant_f16_to_f32(*dmin);
    for (int j = 0; j < QK_K / 32; j++) {
        int sc, m;
        get_scale_min(j, packed, &sc, &m);
        float d = d_all * (float)sc;
        if (d == 0)
            continue;
        float dm = m_all * (float)m;
        for (int l = 0; l < 32; l++) {
            int q = quant_nearest_int((x[32 * j + l] + dm) / d);
            L[32 * j + l] = (uint8_t)clampi(q, 0, nmax);
        }
    }
}

/* 4-bit part of Q4_K/Q5_K: 32-byte group c holds elements 64c..64c+31 in
 * the low nibbles and 64c+32..64c+63 in the high ones. */
static void unpack_4bit(const uint8_t *qs, int8_t *q)
{
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++) {
            q[64 * c + l] = (int8_t)(qs[32 * c + l] & 15);
            q[64 * c + l + 32] = (int8_t)(qs[32 * c + l] >> 4);
        }
}

static void q5_unpack(const struct block_q5_K *b, int8_t *q)
{
    unpack_4bit(b->qs, q);
    for (int e = 0; e < QK_K; e++)
        q[e] = (int8_t)(q[e] | ((b->qh[e % 32] >> (e / 32)) & 1) << 4);
}

static void k4_to_float(uint16_t dd, uint16_t dmin, const uint8_t *packed, const int8_t *q,
                        float *dst)
{
    float d = quant_f16_to_f32(dd), mn = quant_f16_to_f32(dmin);
    for (int j = 0; j < QK_K / 32; j++) {
        int sc, m;
        get_scale_min(j, packed, &sc, &m);
        float dl = d * (float)sc, ml = mn * (float)m;
        for (int l = 0; l < 32; l++)
            dst[32 * j + l] = dl * (float)q[32 * j + l] - ml;
    }
}

/* One super-block of Q4_K/Q5_K (quants q in 0..nmax) against Q8_K. */
static float k4_dot(uint16_t dd, uint16_t dmin, const uint8_t *packed, const int8_t *q,
                    const struct block_q8_K *y)
{
    int32_t isum = 0, msum = 0;
    for (int j = 0; j < QK_K / 32; j++) {
        int sc, m;
        get_scale_min(j, packed, &sc, &m);
        int32_t sub = 0;
        for (int l = 0; l < 32; l++)
            sub += q[32 * j + l] * y->qs[32 * j + l];
        isum += sc * sub;
        msum += m * (y->bsums[2 * j] + y->bsums[2 * j + 1]);
    }
    float d = quant_f16_to_f32(dd) * y->d;
    float dm = quant_f16_to_f32(dmin) * y->d;
    return d * (float)isum - dm * (float)msum;
}

void quant_q4_K_to_float(const void *src, float *dst, int64_t n)
{
    const struct block_q4_K *b = src;
    int8_t q[QK_K];
    for (int64_t i = 0; i < n / QK_K; i++, dst += QK_K) {
        unpack_4bit(b[i].qs, q);
        k4_to_float(b[i].d, b[i].dmin, b[i].scales, q, dst);
    }
}

void quant_q4_K_from_float(const float *x, void *dst, int64_t n)
{
    struct block_q4_K *y = dst;
    uint8_t L[QK_K];
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        k4_quantize_block(x, 15, -1.0f, 20, &y[i].d, &y[i].dmin, y[i].scales, L);
        for (int c = 0; c < 4; c++)
            for (int l = 0; l < 32; l++)
                y[i].qs[32 * c + l] = (uint8_t)(L[64 * c + l] | L[64 * c + l + 32] << 4);
    }
}

void quant_q4_K_vec_dot(int64_t n, float *s, const void *vx, const void *vy)
{
    const struct block_q4_K *x = vx;
    const struct block_q8_K *y = vy;
    int8_t q[QK_K];
    float sum = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        unpack_4bit(x[i].qs, q);
        sum += k4_dot(x[i].d, x[i].dmin, x[i].scales, q, &y[i]);
    }
    *s = sum;
}

void quant_q5_K_to_float(const void *src, float *dst, int64_t n)
{
    const struct block_q5_K *b = src;
    int8_t q[QK_K];
    for (int64_t i = 0; i < n / QK_K; i++, dst += QK_K) {
        q5_unpack(&b[i], q);
        k4_to_float(b[i].d, b[i].dmin, b[i].scales, q, dst);
    }
}

void quant_q5_K_from_float(const float *x, void *dst, int64_t n)
{
    struct block_q5_K *y = dst;
    uint8_t L[QK_K];
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        k4_quantize_block(x, 31, -0.5f, 15, &y[i].d, &y[i].dmin, y[i].scales, L);
        memset(y[i].qh, 0, sizeof y[i].qh);
        for (int e = 0; e < QK_K; e++)
            if (L[e] > 15)
                y[i].qh[e % 32] |= (uint8_t)(1u << (e / 32));
        for (int c = 0; c < 4; c++)
            for (int l = 0; l < 32; l++)
                y[i].qs[32 * c + l] =
                    (uint8_t)((L[64 * c + l] & 15) | (L[64 * c + l + 32] & 15) << 4);
    }
}

void quant_q5_K_vec_dot(int64_t n, float *s, const void *vx, const void *vy)
{
    const struct block_q5_K *x = vx;
    const struct block_q8_K *y = vy;
    int8_t q[QK_K];
    float sum = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        q5_unpack(&x[i], q);
        sum += k4_dot(x[i].d, x[i].dmin, x[i].scales, q, &y[i]);
    }
    *s = sum;
}

/* ---- Q6_K ------------------------------------------------------------------------ */

static void q6_unpack(const struct block_q6_K *b, int8_t *q)
{
    for (int h = 0; h < 2; h++)
        for (int g = 0; g < 4; g++)
            for (int l = 0; l < 32; l++) {
                uint8_t lb = b->ql[64 * h + l + 32 * (g & 1)];
                int lo = g < 2 ? lb & 15 : lb >> 4;
                int hi = (b->qh[32 * h + l] >> (2 * g)) & 3;
                q[128 * h + 32 * g + l] = (int8_t)((lo | hi << 4) - 32);
            }
}

void quant_q6_K_to_float(const void *src, float *dst, int64_t n)
{
    const struct block_q6_K *b = src;
    int8_t q[QK_K];
    for (int64_t i = 0; i < n / QK_K; i++, dst += QK_K) {
        float d = quant_f16_to_f32(b[i].d);
        q6_unpack(&b[i], q);
        for (int j = 0; j < QK_K / 16; j++) {
            float dl = d * (float)b[i].scales[j];
            for (int l = 0; l < 16; l++)
                dst[16 * j + l] = dl * (float)q[16 * j + l];
        }
    }
}

void quant_q6_K_from_float(const float *x, void *dst, int64_t n)
{
    struct block_q6_K *y = dst;
    int8_t L[QK_K];
    float scales[QK_K / 16];

    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        float amax = 0, max_scale = 0;
        for (int j = 0; j < QK_K / 16; j++) {
            scales[j] = fit_signed_sweep(16, 32, x + 16 * j, L + 16 * j);
            float a = fabsf(scales[j]);
            if (a > amax) {
                amax = a;
                max_scale = scales[j];
            }
        }
        memset(&y[i], 0, sizeof y[i]);
        if (amax < GROUP_MAX_EPS)
            continue; /* all-zero block, d = +0 */
        float iscale = -128.0f / max_scale;
        y[i].d = quant_f32_to_f16(1 / iscale);
        for (int j = 0; j < QK_K / 16; j++)
            y[i].scales[j] = (int8_t)clampi(quant_nearest_int(iscale * scales[j]), -128, 127);
        float d_all = quant_f16_to_f32(y[i].d);
        for (int j = 0; j < QK_K / 16; j++) {
            float d = d_all * (float)y[i].scales[j];
            if (d == 0)
                continue;
            for (int l = 0; l < 16; l++) {
                int q = clampi(quant_nearest_int(x[16 * j + l] / d), -32, 31);
                L[16 * j + l] = (int8_t)(q + 32);
            }
        }
        for (int h = 0; h < 2; h++)
            for (int l = 0; l < 32; l++) {
                const int8_t *q = L + 128 * h + l; /* values 0..63 */
                y[i].ql[64 * h + l] = (uint8_t)((q[0] & 15) | (q[64] & 15) << 4);
                y[i].ql[64 * h + l + 32] = (uint8_t)((q[32] & 15) | (q[96] & 15) << 4);
                y[i].qh[32 * h + l] =
                    (uint8_t)(q[0] >> 4 | (q[32] >> 4) << 2 | (q[64] >> 4) << 4 | (q[96] >> 4) << 6);
            }
    }
}

void quant_q6_K_vec_dot(int64_t n, float *s, const void *vx, const void *vy)
{
    const struct block_q6_K *x = vx;
    const struct block_q8_K *y = vy;
    int8_t q[QK_K];
    float sum = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        q6_unpack(&x[i], q);
        int32_t isum = 0;
        for (int j = 0; j < QK_K / 16; j++) {
            int32_t sub = 0;
            for (int l = 0; l < 16; l++)
                sub += q[16 * j + l] * y[i].qs[16 * j + l];
            isum += x[i].scales[j] * sub;
        }
        sum += (quant_f16_to_f32(x[i].d) * y[i].d) * (float)isum;
    }
    *s = sum;
}

/* ---- Q8_K (activations) ----------------------------------------------------------- */

void quant_q8_K_to_float(const void *src, float *dst, int64_t n)
{
    const struct block_q8_K *b = src;
    for (int64_t i = 0; i < n / QK_K; i++, dst += QK_K)
        for (int l = 0; l < QK_K; l++)
            dst[l] = b[i].d * (float)b[i].qs[l];
}

/* iscale = −127/max with max the signed extreme, so that element becomes
 * −127 exactly; ties to even; d = 1/iscale kept in fp32 (may be negative). */
void quant_q8_K_from_float(const float *x, void *dst, int64_t n)
{
    struct block_q8_K *y = dst;
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        float amax;
        float max = signed_max(x, QK_K, &amax);
        if (amax == 0) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        float iscale = -127.0f / max;
        for (int l = 0; l < QK_K; l++)
            y[i].qs[l] = (int8_t)clampi(quant_nearest_int(iscale * x[l]), -128, 127);
        for (int j = 0; j < QK_K / 16; j++) {
            int sum = 0;
            for (int l = 0; l < 16; l++)
                sum += y[i].qs[16 * j + l];
            y[i].bsums[j] = (int16_t)sum;
        }
        y[i].d = 1 / iscale;
    }
}
