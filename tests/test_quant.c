/*
 * test_quant.c — tensor types: fp16/bf16 conversion, the block layouts, the
 * reference quantizers, dequantizers and dot products of core/quant*.c.
 *
 * What is checked, and against what:
 *  - fp16/bf16: exhaustively (all 65536 patterns, every rounding midpoint)
 *    and against an independent double-precision oracle.
 *  - layouts: to_float on random blocks equals a per-element decoder written
 *    here from FORMATS.md §2 by byte offsets (independent of the structs).
 *  - round trips on synthetic data: hard per-element error bounds derived
 *    from each legacy format's step size, measured-and-justified bounds for
 *    the K-quants, and the ordering of errors by bit width.
 *  - dot products: equal (to float rounding) to the dot of the dequantized
 *    operands, and within the Cauchy–Schwarz bound of the exact f32 dot.
 *  - bytes written by llama.cpp: quantizing f32 tensors must reproduce its
 *    files **bit for bit** for every type, K-quants included. On a fresh
 *    clone this uses tests/data/quant/syn-extract.gguf (rows of each type,
 *    see its README) and the stories260K files; with
 *    ../shared/refdata the sweep covers every tensor of every syn-* model.
 */
#include "gguf.h"
#include "quant.h"
#include "quant_blocks.h"
#include "testutil.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BUDGET ((size_t)64 << 20)

/* ---- helpers ------------------------------------------------------------------ */

static uint64_t rng_state;

static void rng_seed(uint64_t s)
{
    rng_state = s * 0x9E3779B97F4A7C15ull + 1;
}

static uint64_t rng_u64(void)
{
    /* splitmix64 */
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double rng_u01(void)
{
    return (double)(rng_u64() >> 11) * 0x1p-53;
}

static double rng_gauss(void)
{
    double a = rng_u01(), b = rng_u01();
    return sqrt(-2.0 * log(a + 1e-300)) * cos(6.283185307179586 * b);
}

static float bits_f(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static uint32_t f_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static uint16_t rd16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static void wr16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

/* Every type with kernels, in a fixed order. */
static const uint32_t all_types[] = {
    HR_TYPE_F32,  HR_TYPE_F16,  HR_TYPE_BF16, HR_TYPE_Q4_0, HR_TYPE_Q4_1,
    HR_TYPE_Q5_0, HR_TYPE_Q5_1, HR_TYPE_Q8_0, HR_TYPE_Q8_1, HR_TYPE_Q2_K,
    HR_TYPE_Q3_K, HR_TYPE_Q4_K, HR_TYPE_Q5_K, HR_TYPE_Q6_K, HR_TYPE_Q8_K,
};
#define N_TYPES (sizeof all_types / sizeof all_types[0])

static const char *tname(uint32_t t)
{
    return hr_type_name(t);
}

/* ---- fp16 ---------------------------------------------------------------------- */

/* Independent oracle: the nearest binary16 value computed in double (exact
 * for every fp32 input), ties to even, as a bit pattern. */
static uint16_t oracle_fp16(float f)
{
    if (isnan(f))
        return 0x7e00;
    uint16_t sign = signbit(f) ? 0x8000 : 0;
    double a = fabs((double)f);
    if (a >= 65520.0)
        return sign | 0x7c00;
    int e;
    frexp(a, &e); /* a = m·2^e, m in [0.5, 1) */
    int exp = e - 1;
    if (exp < -14)
        exp = -14; /* subnormal spacing 2^-24 */
    double q = ldexp(1.0, exp - 10);
    double r = nearbyint(a / q); /* default rounding mode: ties to even */
    double v = r * q;
    if (v == 0)
        return sign;
    frexp(v, &e);
    exp = e - 1;
    if (exp < -14) /* subnormal: mantissa counts 2^-24 units */
        return sign | (uint16_t)ldexp(v, 24);
    uint16_t man = (uint16_t)(ldexp(v, 10 - exp) - 1024);
    return sign | (uint16_t)((exp + 15) << 10) | man;
}

Test(quant, fp16_exhaustive_roundtrip)
{
    for (uint32_t h = 0; h < 65536; h++) {
        float f = hr_fp16_to_fp32((uint16_t)h);
        bool nan = (h & 0x7c00) == 0x7c00 && (h & 0x3ff);
        if (nan) {
            cr_assert(isnan(f), "0x%04x should decode to NaN", h);
            cr_assert(isnan(hr_fp16_to_fp32(hr_fp32_to_fp16(f))), "NaN 0x%04x lost", h);
            continue;
        }
        cr_assert_eq(hr_fp32_to_fp16(f), h, "0x%04x -> %a -> 0x%04x", h, (double)f,
                     hr_fp32_to_fp16(f));
        cr_assert_eq(oracle_fp16(f), h, "oracle disagrees on 0x%04x", h);
    }
}

Test(quant, fp16_known_values)
{
    cr_assert_eq(hr_fp16_to_fp32(0x3c00), 1.0f);
    cr_assert_eq(hr_fp16_to_fp32(0xc000), -2.0f);
    cr_assert_eq(hr_fp16_to_fp32(0x7bff), 65504.0f);
    cr_assert_eq(hr_fp16_to_fp32(0x0400), 0x1p-14f);
    cr_assert_eq(hr_fp16_to_fp32(0x0001), 0x1p-24f);
    cr_assert_eq(hr_fp16_to_fp32(0x83ff), -0x3ffp-24f);
    cr_assert(isinf(hr_fp16_to_fp32(0x7c00)) && hr_fp16_to_fp32(0x7c00) > 0);
    cr_assert(signbit(hr_fp16_to_fp32(0x8000)) && hr_fp16_to_fp32(0x8000) == 0);
    /* overflow: 65520 is the midpoint to 2^16 and rounds to even = inf */
    cr_assert_eq(hr_fp32_to_fp16(65519.996f), 0x7bff);
    cr_assert_eq(hr_fp32_to_fp16(65520.0f), 0x7c00);
    cr_assert_eq(hr_fp32_to_fp16(-1e10f), 0xfc00);
    cr_assert_eq(hr_fp32_to_fp16(INFINITY), 0x7c00);
    /* subnormals and underflow */
    cr_assert_eq(hr_fp32_to_fp16(0x1p-25f), 0x0000); /* tie -> even (0) */
    cr_assert_eq(hr_fp32_to_fp16(nextafterf(0x1p-25f, 1)), 0x0001);
    cr_assert_eq(hr_fp32_to_fp16(0x3p-25f), 0x0002); /* tie 1|2 -> 2 */
    cr_assert_eq(hr_fp32_to_fp16(-0x1p-24f), 0x8001);
    cr_assert_eq(hr_fp32_to_fp16(0x1p-30f), 0x0000);
    cr_assert_eq(hr_fp32_to_fp16(-0.0f), 0x8000);
    cr_assert_eq(hr_fp32_to_fp16(0x7ffp-25f), 0x0400); /* rounds up into the normals */
    /* NaN stays NaN, sign kept */
    uint16_t n = hr_fp32_to_fp16(bits_f(0xffc00001));
    cr_assert((n & 0x7c00) == 0x7c00 && (n & 0x3ff) && (n & 0x8000));
    cr_assert(((hr_fp32_to_fp16(bits_f(0x7f800001)) & 0x3ff)) != 0, "signalling NaN became inf");
}

/* Every midpoint between adjacent halves rounds to the even one; one fp32
 * ulp either side rounds to the nearer one. */
Test(quant, fp16_ties_to_even)
{
    for (uint32_t h = 0; h < 0x7c00; h++) {
        double lo = hr_fp16_to_fp32((uint16_t)h);
        double hi = h + 1 < 0x7c00 ? hr_fp16_to_fp32((uint16_t)(h + 1)) : 65536.0;
        float mid = (float)((lo + hi) / 2); /* exact: needs 12 significant bits */
        cr_assert_eq((double)mid, (lo + hi) / 2);
        uint16_t even = (h & 1) ? (uint16_t)(h + 1) : (uint16_t)h;
        cr_assert_eq(hr_fp32_to_fp16(mid), even, "midpoint after 0x%04x", h);
        cr_assert_eq(hr_fp32_to_fp16(-mid), even | 0x8000);
        cr_assert_eq(hr_fp32_to_fp16(nextafterf(mid, 0)), h);
        cr_assert_eq(hr_fp32_to_fp16(nextafterf(mid, INFINITY)), h + 1);
    }
}

Test(quant, fp16_random_vs_oracle)
{
    rng_seed(1);
    for (int i = 0; i < 2000000; i++) {
        uint32_t u = (uint32_t)rng_u64();
        if (i & 1) /* half of them in the fp16 range, where the work is */
            u = (u & 0x80000000u) | (0x30000000u + (u & 0x1fffffffu) % 0x18000000u);
        float f = bits_f(u);
        if (isnan(f))
            continue;
        cr_assert_eq(hr_fp32_to_fp16(f), oracle_fp16(f), "0x%08x", u);
    }
}

/* ---- bf16 ------------------------------------------------------------------------ */

Test(quant, bf16)
{
    for (uint32_t h = 0; h < 65536; h++) {
        float f = hr_bf16_to_fp32((uint16_t)h);
        cr_assert_eq(f_bits(f), h << 16);
        if ((h & 0x7f80) == 0x7f80 && (h & 0x7f))
            cr_assert(isnan(hr_bf16_to_fp32(hr_fp32_to_bf16(f))));
        else
            cr_assert_eq(hr_fp32_to_bf16(f), h, "0x%04x", h);
    }
    cr_assert_eq(hr_fp32_to_bf16(bits_f(0x3f808000)), 0x3f80); /* tie -> even */
    cr_assert_eq(hr_fp32_to_bf16(bits_f(0x3f818000)), 0x3f82); /* tie -> even */
    cr_assert_eq(hr_fp32_to_bf16(bits_f(0x3f808001)), 0x3f81);
    cr_assert_eq(hr_fp32_to_bf16(bits_f(0x7f7f8000)), 0x7f80); /* to inf */
    cr_assert_eq(hr_fp32_to_bf16(bits_f(0x00018000)), 0x0002); /* subnormals kept */
    cr_assert_eq(hr_fp32_to_bf16(bits_f(0x7f800001)), 0x7fc0); /* quiet NaN */
    cr_assert_eq(hr_fp32_to_bf16(bits_f(0xff800001)), 0xffc0);
    rng_seed(2);
    for (int i = 0; i < 1000000; i++) {
        uint32_t u = (uint32_t)rng_u64();
        if ((u & 0x7fffffffu) > 0x7f800000u)
            continue;
        uint32_t low = u & 0xffff, q = u >> 16;
        if (low > 0x8000 || (low == 0x8000 && (q & 1)))
            q++;
        cr_assert_eq(hr_fp32_to_bf16(bits_f(u)), q, "0x%08x", u);
    }
}

/* ---- the table ---------------------------------------------------------------------- */

Test(quant, kernel_table)
{
    static const uint32_t dot_type[] = {
        [HR_TYPE_F32] = HR_TYPE_F32,   [HR_TYPE_F16] = HR_TYPE_F16,
        [HR_TYPE_BF16] = HR_TYPE_BF16, [HR_TYPE_Q4_0] = HR_TYPE_Q8_0,
        [HR_TYPE_Q4_1] = HR_TYPE_Q8_1, [HR_TYPE_Q5_0] = HR_TYPE_Q8_0,
        [HR_TYPE_Q5_1] = HR_TYPE_Q8_1, [HR_TYPE_Q8_0] = HR_TYPE_Q8_0,
        [HR_TYPE_Q8_1] = HR_TYPE_Q8_1, [HR_TYPE_Q2_K] = HR_TYPE_Q8_K,
        [HR_TYPE_Q3_K] = HR_TYPE_Q8_K, [HR_TYPE_Q4_K] = HR_TYPE_Q8_K,
        [HR_TYPE_Q5_K] = HR_TYPE_Q8_K, [HR_TYPE_Q6_K] = HR_TYPE_Q8_K,
        [HR_TYPE_Q8_K] = HR_TYPE_Q8_K,
    };
    int n = 0;
    for (uint32_t t = 0; t < HR_TYPE_COUNT + 5; t++) {
        const struct quant_kernels *k = quant_kernels(t);
        bool want = false;
        for (size_t i = 0; i < N_TYPES; i++)
            want |= all_types[i] == t;
        cr_assert_eq(k != NULL, want, "type %u", t);
        if (!k)
            continue;
        n++;
        cr_assert(k->to_float && k->from_float);
        cr_assert_eq(k->vec_dot_type, dot_type[t], "%s", tname(t));
        bool activation = t == HR_TYPE_Q8_1 || t == HR_TYPE_Q8_K;
        cr_assert_eq(k->vec_dot == NULL, activation, "%s", tname(t));
        /* the dot type must itself be quantizable */
        cr_assert(quant_kernels(k->vec_dot_type));
    }
    cr_assert_eq(n, (int)N_TYPES);
    cr_assert_null(quant_kernels(16)); /* iq2_xxs: sizes known, no kernels */
    cr_assert_null(quant_kernels(4));  /* removed id */
}

Test(quant, quantize_helper)
{
    float x[512];
    uint8_t out[2 * 210 + 8];
    for (int i = 0; i < 512; i++)
        x[i] = (float)sin(i * 0.37);
    memset(out, 0xAA, sizeof out);
    cr_assert_eq(quant_quantize(HR_TYPE_Q6_K, x, out, 2, 256), 420);
    cr_assert_eq(out[420], 0xAA, "wrote past the end");
    uint8_t one[210];
    quant_kernels(HR_TYPE_Q6_K)->from_float(x + 256, one, 256);
    cr_assert_eq(memcmp(out + 210, one, 210), 0, "row 1 differs from a single-row quantization");
    cr_assert_eq(quant_quantize(HR_TYPE_Q6_K, x, out, 1, 100), -EINVAL);
    cr_assert_eq(quant_quantize(HR_TYPE_Q4_0, x, out, 1, 0), -EINVAL);
    cr_assert_eq(quant_quantize(16, x, out, 1, 256), -EINVAL);
    cr_assert_eq(quant_quantize(4, x, out, 1, 256), -EINVAL);
    cr_assert_eq(quant_quantize(HR_TYPE_Q4_0, x, out, 0, 32), 0);
}

/* ---- layouts: per-element decoder from FORMATS.md §2, by byte offsets ------------- */

static float h2f(const uint8_t *p)
{
    return hr_fp16_to_fp32(rd16(p));
}

static float naive_elem(uint32_t type, const uint8_t *b, int e)
{
    int h = e / 128, g = (e % 128) / 32, l = e % 32;
    switch (type) {
    case HR_TYPE_Q4_0: {
        int n = e < 16 ? b[2 + e] & 15 : b[2 + e - 16] >> 4;
        return (float)(n - 8) * h2f(b);
    }
    case HR_TYPE_Q4_1: {
        int n = e < 16 ? b[4 + e] & 15 : b[4 + e - 16] >> 4;
        return (float)n * h2f(b) + h2f(b + 2);
    }
    case HR_TYPE_Q5_0:
    case HR_TYPE_Q5_1: {
        int off = type == HR_TYPE_Q5_0 ? 2 : 4;
        uint32_t qh = (uint32_t)b[off] | (uint32_t)b[off + 1] << 8 | (uint32_t)b[off + 2] << 16 |
                      (uint32_t)b[off + 3] << 24;
        const uint8_t *qs = b + off + 4;
        int n = e < 16 ? qs[e] & 15 : qs[e - 16] >> 4;
        int q = n | (int)((qh >> e) & 1) << 4;
        return type == HR_TYPE_Q5_0 ? (float)(q - 16) * h2f(b) : (float)q * h2f(b) + h2f(b + 2);
    }
    case HR_TYPE_Q8_0:
        return (float)(int8_t)b[2 + e] * h2f(b);
    case HR_TYPE_Q8_1:
        return (float)(int8_t)b[4 + e] * h2f(b);
    case HR_TYPE_Q2_K: {
        uint8_t S = b[e / 16];
        int q = (b[16 + 32 * h + l] >> (2 * g)) & 3;
        float dl = h2f(b + 80) * (float)(S & 15), ml = h2f(b + 82) * (float)(S >> 4);
        return dl * (float)q - ml;
    }
    case HR_TYPE_Q3_K: {
        const uint8_t *t = b + 96;
        int j = e / 16;
        int q2 = (b[32 + 32 * h + l] >> (2 * g)) & 3;
        int hb = (b[e % 32] >> (e / 32)) & 1;
        int q = q2 - (hb ? 0 : 4);
        int low = j < 8 ? t[j] & 15 : t[j - 8] >> 4;
        int high = (t[8 + j % 4] >> (2 * (j / 4))) & 3;
        int sc = (low | high << 4) - 32;
        return h2f(b + 108) * (float)sc * (float)q;
    }
    case HR_TYPE_Q4_K:
    case HR_TYPE_Q5_K: {
        const uint8_t *s = b + 4;
        int j = e / 32, sc, m;
        if (j < 4) {
            sc = s[j] & 63;
            m = s[j + 4] & 63;
        } else {
            sc = (s[j + 4] & 15) | (s[j - 4] >> 6) << 4;
            m = (s[j + 4] >> 4) | (s[j] >> 6) << 4;
        }
        const uint8_t *qs = b + (type == HR_TYPE_Q4_K ? 16 : 48);
        uint8_t byte = qs[32 * (e / 64) + e % 32];
        int q = (e % 64) < 32 ? byte & 15 : byte >> 4;
        if (type == HR_TYPE_Q5_K)
            q += 16 * ((b[16 + e % 32] >> (e / 32)) & 1);
        return h2f(b) * (float)sc * (float)q - h2f(b + 2) * (float)m;
    }
    case HR_TYPE_Q6_K: {
        uint8_t lb = b[64 * h + l + 32 * (g & 1)];
        int low = g < 2 ? lb & 15 : lb >> 4;
        int high = (b[128 + 32 * h + l] >> (2 * g)) & 3;
        int q = (low | high << 4) - 32;
        return h2f(b + 208) * (float)(int8_t)b[192 + e / 16] * (float)q;
    }
    case HR_TYPE_Q8_K: {
        float d;
        memcpy(&d, b, 4);
        return d * (float)(int8_t)b[4 + e];
    }
    }
    cr_assert_fail("no naive decoder for %u", type);
    return 0;
}

/* Random bytes with sane scales (no inf/NaN) at the FORMATS.md offsets. */
static void random_block(uint32_t type, uint8_t *b, size_t size)
{
    static const int f16_off[][2] = {
        [HR_TYPE_Q4_0] = {0, -1}, [HR_TYPE_Q4_1] = {0, 2},   [HR_TYPE_Q5_0] = {0, -1},
        [HR_TYPE_Q5_1] = {0, 2},  [HR_TYPE_Q8_0] = {0, -1},  [HR_TYPE_Q8_1] = {0, 2},
        [HR_TYPE_Q2_K] = {80, 82}, [HR_TYPE_Q3_K] = {108, -1}, [HR_TYPE_Q4_K] = {0, 2},
        [HR_TYPE_Q5_K] = {0, 2},  [HR_TYPE_Q6_K] = {208, -1},
    };
    for (size_t i = 0; i < size; i++)
        b[i] = (uint8_t)rng_u64();
    if (type == HR_TYPE_Q8_K) {
        float d = (float)(rng_gauss() * 1e-2);
        memcpy(b, &d, 4);
        return;
    }
    for (int k = 0; k < 2; k++)
        if (f16_off[type][k] >= 0)
            wr16(b + f16_off[type][k], hr_fp32_to_fp16((float)(rng_gauss() * 1e-2)));
}

Test(quant, layouts_match_formats)
{
    rng_seed(3);
    for (size_t ti = 0; ti < N_TYPES; ti++) {
        uint32_t t = all_types[ti];
        const struct hr_type_info *info = hr_type_info(t);
        if (info->blck == 1)
            continue;
        uint8_t blk[4][292];
        float out[4 * QK_K];
        for (int rep = 0; rep < 200; rep++) {
            uint8_t raw[4 * 292];
            for (int i = 0; i < 4; i++) {
                random_block(t, blk[i], info->size);
                memcpy(raw + i * info->size, blk[i], info->size);
            }
            quant_kernels(t)->to_float(raw, out, 4 * (int64_t)info->blck);
            for (int i = 0; i < 4; i++)
                for (uint32_t e = 0; e < info->blck; e++) {
                    float want = naive_elem(t, blk[i], (int)e);
                    float got = out[i * info->blck + e];
                    cr_assert(f_bits(want) == f_bits(got), "%s block %d elem %u: %g != %g",
                              tname(t), i, e, (double)got, (double)want);
                }
        }
    }
}

/* ---- round trips ---------------------------------------------------------------- */

enum data_kind { D_GAUSS, D_UNIFORM, D_OUTLIER, D_ZEROS, D_TINY, D_KINDS };
static const char *kind_name[] = {"gaussian", "uniform", "outlier", "zeros", "tiny"};

static void fill(enum data_kind kind, float *x, int64_t n, uint64_t seed)
{
    rng_seed(seed);
    for (int64_t i = 0; i < n; i++) {
        switch (kind) {
        case D_GAUSS:
            x[i] = (float)rng_gauss();
            break;
        case D_UNIFORM:
            x[i] = (float)(2 * rng_u01() - 1);
            break;
        case D_OUTLIER: /* one element per 32 at 30σ */
            x[i] = (float)(rng_gauss() * (i % 32 == 7 ? 30 : 1));
            break;
        case D_ZEROS:
            x[i] = 0;
            break;
        case D_TINY: /* scales end up fp16-subnormal */
            x[i] = (float)(rng_gauss() * 1e-4);
            break;
        default:
            break;
        }
    }
}

/*
 * Per-type bounds. elem: largest |x − x̂| over a block, relative to the block's
 * max |x|. For the legacy types this is a proof, not a measurement: the
 * reference maps the block onto a grid of step d and clamps at most one step
 * (Q4_0: d = amax/8, the side opposite the extreme ends at 7d, so err ≤ d;
 * Q5_0 d = amax/16; Q4_1 rounds half up on d = range/15 ≤ 2·amax/15, err ≤ d/2;
 * Q5_1 d ≤ 2·amax/31; Q8_x err ≤ d/2 = amax/254), plus the fp16 rounding of the
 * stored d and m (≤ 2^-11 relative, times the largest multiplier, added by
 * elem_slack below). K-quants search their scales, so their bounds are
 * measured worst cases over 65536 gaussian/uniform/outlier values with ~20%
 * margin (Q8_K's fp32 d makes its amax/254 exact).
 * gauss: RMS error / RMS signal on N(0,1) data: step/√12 with the typical step
 * of each format (e.g. Q4_0: amax of 32 gaussians ≈ 2.1σ, step amax/8 →
 * 0.076σ plus clamping ≈ 0.086), measured, with ~10% margin.
 * mult: the largest integer multiplying the fp16 super-scale (for the
 * absolute slack when that scale is subnormal).
 */
struct bound {
    double elem, gauss, mult;
};

static struct bound bound_of(uint32_t t)
{
    switch (t) {
    case HR_TYPE_F32: return (struct bound){0, 0, 0};
    case HR_TYPE_F16: return (struct bound){0x1p-11, 0x1p-11, 0};
    case HR_TYPE_BF16: return (struct bound){0x1p-8, 0x1p-8, 0};
    case HR_TYPE_Q4_0: return (struct bound){1.0 / 8, 0.095, 8};
    case HR_TYPE_Q4_1: return (struct bound){1.0 / 15, 0.087, 16};
    case HR_TYPE_Q5_0: return (struct bound){1.0 / 16, 0.047, 16};
    case HR_TYPE_Q5_1: return (struct bound){1.0 / 31, 0.042, 32};
    case HR_TYPE_Q8_0: return (struct bound){1.0 / 254, 0.006, 127};
    case HR_TYPE_Q8_1: return (struct bound){1.0 / 254, 0.006, 127};
    case HR_TYPE_Q2_K: return (struct bound){0.50, 0.33, 15 * 3 + 15};
    case HR_TYPE_Q3_K: return (struct bound){0.32, 0.17, 32 * 4};
    case HR_TYPE_Q4_K: return (struct bound){0.12, 0.080, 63 * 15 + 63};
    case HR_TYPE_Q5_K: return (struct bound){0.065, 0.040, 63 * 31 + 63};
    case HR_TYPE_Q6_K: return (struct bound){0.025, 0.020, 128 * 32};
    case HR_TYPE_Q8_K: return (struct bound){1.0 / 254 * (1 + 0x1p-20), 0.0075, 0};
    }
    return (struct bound){0, 0, 0};
}

/* Error allowance from storing scales in fp16. Legacy quants are computed
 * with the unrounded d, so the stored d (and m) add up to 2^-11 of the
 * decoded value, i.e. ≤ amax·2^-11 each. When a scale is fp16-subnormal its
 * error is up to 2^-25 absolute (half the spacing), multiplied by the largest
 * integer factor applied to it. (K-quants re-quantize against the stored
 * scales, which absorbs the relative part; the absolute part still moves
 * their clamp range.) */
static double elem_slack(uint32_t t, double amax)
{
    return 2 * amax * 0x1p-11 + (bound_of(t).mult + 1) * 0x1p-25;
}

struct rt_stats {
    double rel_rms;   /* over the whole array */
    double worst;     /* max over blocks of max |err| / allowed */
};

static struct rt_stats round_trip(uint32_t t, const float *x, int64_t n)
{
    const struct quant_kernels *k = quant_kernels(t);
    const struct hr_type_info *info = hr_type_info(t);
    void *q = malloc(hr_row_size(t, n));
    float *y = malloc((size_t)n * sizeof *y);
    cr_assert(q && y);
    k->from_float(x, q, n);
    k->to_float(q, y, n);
    /* blocks of the type (for F32/F16/BF16: groups of 32 for the statistics) */
    int64_t B = info->blck > 1 ? info->blck : 32;
    double se = 0, sx = 0, worst = 0;
    for (int64_t b0 = 0; b0 < n; b0 += B) {
        double amax = 0;
        for (int64_t i = b0; i < b0 + B; i++)
            amax = fmax(amax, fabs(x[i]));
        double allowed = bound_of(t).elem * amax + elem_slack(t, amax);
        for (int64_t i = b0; i < b0 + B; i++) {
            cr_assert(isfinite(y[i]), "%s: element %lld not finite", tname(t), (long long)i);
            double e = fabs((double)y[i] - x[i]);
            if (t <= HR_TYPE_F16 || t == HR_TYPE_BF16) /* per-element relative */
                allowed = bound_of(t).elem * fabs(x[i]) + (t == HR_TYPE_F16 ? 0x1p-25 : 0);
            if (e > 0)
                worst = fmax(worst, allowed > 0 ? e / allowed : INFINITY);
            se += e * e;
            sx += (double)x[i] * x[i];
        }
    }
    free(q);
    free(y);
    return (struct rt_stats){sx > 0 ? sqrt(se / sx) : sqrt(se), worst};
}

Test(quant, round_trip_bounds)
{
    enum { N = 256 * 128 };
    float *x = malloc(N * sizeof *x);
    cr_assert(x);
    for (int kind = 0; kind < D_KINDS; kind++) {
        fill(kind, x, N, 100 + (uint64_t)kind);
        for (size_t ti = 0; ti < N_TYPES; ti++) {
            uint32_t t = all_types[ti];
            struct rt_stats s = round_trip(t, x, N);
            cr_log_info("%-8s %-5s rel_rms %.5f worst/allowed %.3f", kind_name[kind], tname(t),
                        s.rel_rms, s.worst);
            cr_expect(s.worst <= 1.0, "%s on %s data: error %.3f× the bound", tname(t),
                      kind_name[kind], s.worst);
            if (kind == D_ZEROS)
                cr_expect_eq(s.rel_rms, 0.0, "%s: zeros must stay zeros", tname(t));
            if (kind == D_GAUSS)
                cr_expect(s.rel_rms <= bound_of(t).gauss, "%s: gaussian rel RMS %.5f > %.5f",
                          tname(t), s.rel_rms, bound_of(t).gauss);
            if (t == HR_TYPE_F32)
                cr_expect_eq(s.rel_rms, 0.0);
        }
    }
    free(x);
}

/* More bits, less error: on gaussian and uniform data each chain is strictly
 * increasing in accuracy. */
Test(quant, error_ordering)
{
    static const uint32_t chains[][6] = {
        {HR_TYPE_Q2_K, HR_TYPE_Q3_K, HR_TYPE_Q4_K, HR_TYPE_Q5_K, HR_TYPE_Q6_K, HR_TYPE_Q8_0},
        {HR_TYPE_Q4_0, HR_TYPE_Q5_0, HR_TYPE_Q8_0, HR_TYPE_BF16, HR_TYPE_F16, HR_TYPE_F32},
        {HR_TYPE_Q4_1, HR_TYPE_Q5_1, HR_TYPE_Q6_K, HR_TYPE_Q8_0, HR_TYPE_F16, HR_TYPE_F32},
        {HR_TYPE_Q4_0, HR_TYPE_Q5_0, HR_TYPE_Q6_K, HR_TYPE_Q8_K, HR_TYPE_F16, HR_TYPE_F32},
    };
    enum { N = 256 * 64 };
    float *x = malloc(N * sizeof *x);
    for (int kind = D_GAUSS; kind <= D_OUTLIER; kind++) {
        fill(kind, x, N, 200 + (uint64_t)kind);
        for (size_t c = 0; c < sizeof chains / sizeof chains[0]; c++) {
            double prev = INFINITY;
            for (int i = 0; i < 6; i++) {
                double e = round_trip(chains[c][i], x, N).rel_rms;
                cr_expect(e < prev || (e == 0 && prev == 0), "%s data: %s (%.5f) not better than %s",
                          kind_name[kind], tname(chains[c][i]), e,
                          i ? tname(chains[c][i - 1]) : "-");
                prev = e;
            }
        }
        /* with a min, Q4_1/Q5_1 beat Q4_0/Q5_0 on uniform data (no clamped side) */
        if (kind == D_UNIFORM) {
            cr_expect(round_trip(HR_TYPE_Q4_1, x, N).rel_rms < round_trip(HR_TYPE_Q4_0, x, N).rel_rms);
            cr_expect(round_trip(HR_TYPE_Q5_1, x, N).rel_rms < round_trip(HR_TYPE_Q5_0, x, N).rel_rms);
        }
    }
    free(x);
}

/* ---- quantizer details FORMATS.md §2.4 / §3 singles out ---------------------------- */

Test(quant, q8_rounding_rules)
{
    /* Q8_0: amax 127 gives d = 1, id = 1: x·id is exact and roundf rounds
     * halves away from zero. */
    float x[QK_K];
    for (int i = 0; i < QK_K; i++)
        x[i] = 0;
    x[0] = 127;
    x[1] = 2.5f;
    x[2] = -2.5f;
    x[3] = 3.5f;
    x[4] = 0.5f;
    struct block_q8_0 b0[QK_K / 32];
    quant_kernels(HR_TYPE_Q8_0)->from_float(x, b0, QK_K);
    cr_assert_eq(hr_fp16_to_fp32(b0[0].d), 1.0f);
    cr_assert_eq(b0[0].qs[0], 127);
    cr_assert_eq(b0[0].qs[1], 3);
    cr_assert_eq(b0[0].qs[2], -3);
    cr_assert_eq(b0[0].qs[3], 4);
    cr_assert_eq(b0[0].qs[4], 1);
    cr_assert_eq(b0[1].d, 0, "an all-zero block has d = 0");

    struct block_q8_1 b1[QK_K / 32];
    quant_kernels(HR_TYPE_Q8_1)->from_float(x, b1, QK_K);
    cr_assert_eq(hr_fp16_to_fp32(b1[0].s), 127.0f + 3 - 3 + 4 + 1);

    /* Q8_K: the signed extreme maps to −127 and d keeps its sign; ties go
     * to even. Here max = −127, iscale = 1. */
    x[0] = -127;
    struct block_q8_K k;
    quant_kernels(HR_TYPE_Q8_K)->from_float(x, &k, QK_K);
    cr_assert_eq(k.d, 1.0f);
    cr_assert_eq(k.qs[0], -127);
    cr_assert_eq(k.qs[1], 2);  /* 2.5 -> 2 */
    cr_assert_eq(k.qs[2], -2); /* -2.5 -> -2 */
    cr_assert_eq(k.qs[3], 4);  /* 3.5 -> 4 */
    cr_assert_eq(k.qs[4], 0);  /* 0.5 -> 0 */
    cr_assert_eq(k.bsums[0], -127 + 2 - 2 + 4);
    for (int j = 1; j < 16; j++)
        cr_assert_eq(k.bsums[j], 0);
    /* positive extreme: d negative, extreme -> -127 */
    x[0] = 50;
    quant_kernels(HR_TYPE_Q8_K)->from_float(x, &k, QK_K);
    cr_assert(k.d < 0);
    cr_assert_eq(k.qs[0], -127);
    cr_assert(fabsf(k.d * k.qs[0] - 50.0f) <= 50.0f * 0x1p-22f);
}

Test(quant, legacy_extreme_maps_to_end)
{
    /* Q4_0/Q5_0: the element of largest |x| maps to n = 0 and decodes to
     * exactly itself up to the fp16 rounding of d; the first one wins ties. */
    float x[32] = {0};
    x[5] = 0.75f;
    x[9] = -0.75f;
    x[20] = 0.1f;
    struct block_q4_0 b;
    quant_kernels(HR_TYPE_Q4_0)->from_float(x, &b, 32);
    cr_assert_eq(b.qs[5] & 15, 0);
    cr_assert_eq(hr_fp16_to_fp32(b.d), 0.75f / -8);
    struct block_q5_0 c;
    quant_kernels(HR_TYPE_Q5_0)->from_float(x, &c, 32);
    cr_assert_eq(c.qs[5] & 15, 0);
    cr_assert_eq(c.qh[0] & (1 << 5), 0);
    cr_assert_eq(hr_fp16_to_fp32(c.d), 0.75f / -16);
}

/* ---- dot products ------------------------------------------------------------------ */

/* The activation-sum correction of Q8_1: the reference uses the stored
 * s = fp16(d·Σqs) where the dequantized operand has fp16(d)·Σqs. */
static double q8_1_s_correction(uint32_t wt, const void *w, const void *a, int64_t n)
{
    if (wt != HR_TYPE_Q4_1 && wt != HR_TYPE_Q5_1)
        return 0;
    const struct hr_type_info *wi = hr_type_info(wt);
    double c = 0;
    for (int64_t b = 0; b < n / 32; b++) {
        const uint8_t *wb = (const uint8_t *)w + b * wi->size;
        const uint8_t *ab = (const uint8_t *)a + b * 36;
        int sum = 0;
        for (int e = 0; e < 32; e++)
            sum += (int8_t)ab[4 + e];
        c += (double)h2f(wb + 2) * ((double)h2f(ab + 2) - (double)h2f(ab) * sum);
    }
    return c;
}

struct dot_case {
    double got, deq, exact, tol_deq, tol_exact, norm;
};

static struct dot_case run_dot(uint32_t t, const float *w, const float *a, int64_t n,
                               const void *wq_in)
{
    const struct quant_kernels *k = quant_kernels(t), *ka = quant_kernels(k->vec_dot_type);
    void *wq = malloc(hr_row_size(t, n)), *aq = malloc(hr_row_size(k->vec_dot_type, n));
    float *wd = malloc((size_t)n * 4), *ad = malloc((size_t)n * 4);
    cr_assert(wq && aq && wd && ad);
    if (wq_in)
        memcpy(wq, wq_in, hr_row_size(t, n));
    else
        k->from_float(w, wq, n);
    ka->from_float(a, aq, n);
    k->to_float(wq, wd, n);
    ka->to_float(aq, ad, n);
    float s = NAN;
    k->vec_dot(n, &s, wq, aq);

    struct dot_case c = {.got = s};
    double abs_deq = 0, ew = 0, ea = 0, nw = 0, na = 0;
    for (int64_t i = 0; i < n; i++) {
        c.deq += (double)wd[i] * ad[i];
        c.exact += (double)w[i] * a[i];
        abs_deq += fabs((double)wd[i] * ad[i]);
        ew += ((double)w[i] - wd[i]) * ((double)w[i] - wd[i]);
        ea += ((double)a[i] - ad[i]) * ((double)a[i] - ad[i]);
        nw += (double)wd[i] * wd[i];
        na += (double)a[i] * a[i];
    }
    c.deq += q8_1_s_correction(t, wq, aq, n);
    /* float accumulation: a few ulps per block of the magnitudes involved */
    c.tol_deq = 4e-6 * abs_deq + 1e-30;
    /* |w·a − ŵ·â| ≤ ‖w−ŵ‖‖a‖ + ‖ŵ‖‖a−â‖ (Cauchy–Schwarz), + the s term */
    c.tol_exact = sqrt(ew * na) + sqrt(nw * ea) + fabs(q8_1_s_correction(t, wq, aq, n)) +
                  c.tol_deq;
    c.norm = sqrt(nw * na);
    free(wq);
    free(aq);
    free(wd);
    free(ad);
    return c;
}

Test(quant, vec_dot_matches_dequantized)
{
    enum { N = 1024 };
    float w[N], a[N];
    for (size_t ti = 0; ti < N_TYPES; ti++) {
        uint32_t t = all_types[ti];
        if (!quant_kernels(t)->vec_dot)
            continue;
        for (int kind = D_GAUSS; kind <= D_TINY; kind++) {
            for (int rep = 0; rep < 8; rep++) {
                fill(kind, w, N, 1000 + (uint64_t)rep * 7 + (uint64_t)kind);
                fill(D_GAUSS, a, N, 5000 + (uint64_t)rep);
                if (rep & 1) /* activations with a few large features, as in real models */
                    for (int i = 3; i < N; i += 97)
                        a[i] *= 20;
                struct dot_case c = run_dot(t, w, a, N, NULL);
                cr_assert(fabs(c.got - c.deq) <= c.tol_deq,
                          "%s %s: vec_dot %.9g, dequantized dot %.9g", tname(t), kind_name[kind],
                          c.got, c.deq);
                cr_assert(fabs(c.got - c.exact) <= c.tol_exact,
                          "%s %s: vec_dot %.9g, f32 dot %.9g, bound %.3g", tname(t),
                          kind_name[kind], c.got, c.exact, c.tol_exact);
                if (kind == D_GAUSS) /* typical size of the error vs the norms */
                    cr_assert(fabs(c.got - c.exact) <= 2 * bound_of(t).gauss * c.norm + 1e-6 * c.norm,
                              "%s: dot error %.4g of the norm", tname(t),
                              fabs(c.got - c.exact) / c.norm);
                if (kind == D_ZEROS)
                    cr_assert_eq(c.got, 0.0);
            }
        }
    }
}

/* Weights that no quantizer would produce: random bytes with random scales
 * (all sub-scale and min combinations), so every path of the dot is used. */
Test(quant, vec_dot_random_blocks)
{
    enum { NB = 8 };
    rng_seed(9);
    for (size_t ti = 0; ti < N_TYPES; ti++) {
        uint32_t t = all_types[ti];
        const struct hr_type_info *info = hr_type_info(t);
        if (!quant_kernels(t)->vec_dot || info->blck == 1)
            continue;
        int64_t n = (int64_t)(info->blck == QK_K ? NB : NB * 8) * info->blck;
        uint8_t *wq = malloc(hr_row_size(t, n));
        float *a = malloc((size_t)n * 4), *w = malloc((size_t)n * 4);
        for (int rep = 0; rep < 20; rep++) {
            for (int64_t b = 0; b < n / info->blck; b++)
                random_block(t, wq + b * info->size, info->size);
            quant_kernels(t)->to_float(wq, w, n);
            fill(rep & 1 ? D_UNIFORM : D_GAUSS, a, n, 700 + (uint64_t)rep);
            struct dot_case c = run_dot(t, w, a, n, wq);
            cr_assert(fabs(c.got - c.deq) <= c.tol_deq, "%s: vec_dot %.9g, dequantized dot %.9g",
                      tname(t), c.got, c.deq);
        }
        free(wq);
        free(a);
        free(w);
    }
}

/* ---- against llama.cpp's files ------------------------------------------------------- */

struct cmp_stats {
    int tensors, exact, skipped;
    uint64_t blocks, same_blocks;
};

/* Quantizes `src` (F32) as `q` is stored and compares bytes; dequantizes `q`
 * and checks it against src with the round-trip bounds. */
static void compare_tensor(const struct gguf_tensor *src, const struct gguf_tensor *q,
                           const char *label, struct cmp_stats *st)
{
    uint32_t t = q->type;
    const struct hr_type_info *info = hr_type_info(t);
    cr_assert(quant_kernels(t), "%s: %s has type %s without kernels", label, q->name, tname(t));
    cr_assert_eq(src->type, HR_TYPE_F32);
    for (int d = 0; d < 4; d++)
        cr_assert_eq(src->ne[d], q->ne[d], "%s: %s shape", label, q->name);
    int64_t rows = q->ne[1] * q->ne[2] * q->ne[3], n = q->ne[0] * rows;
    uint8_t *mine = malloc(q->nbytes);
    float *deq = malloc((size_t)n * sizeof *deq);
    cr_assert(mine && deq);
    cr_assert_eq(quant_quantize(t, src->data, mine, rows, q->ne[0]), (int64_t)q->nbytes);

    uint64_t nb = q->nbytes / info->size, same = 0;
    for (uint64_t b = 0; b < nb; b++)
        same += !memcmp(mine + b * info->size, (const uint8_t *)q->data + b * info->size,
                        info->size);
    st->tensors++;
    st->blocks += nb;
    st->same_blocks += same;
    st->exact += same == nb;
    cr_expect_eq(same, nb, "%s: %s (%s): %llu of %llu blocks differ from llama.cpp's", label,
                 q->name, tname(t), (unsigned long long)(nb - same), (unsigned long long)nb);

    /* llama.cpp's bytes decode close to the f32 weights */
    quant_kernels(t)->to_float(q->data, deq, n);
    const float *x = src->data;
    int64_t B = info->blck > 1 ? info->blck : 32;
    double worst = 0;
    for (int64_t b0 = 0; b0 + B <= n; b0 += B) {
        double amax = 0;
        for (int64_t i = b0; i < b0 + B; i++)
            amax = fmax(amax, fabs(x[i]));
        for (int64_t i = b0; i < b0 + B; i++) {
            double allowed = info->blck > 1
                                 ? bound_of(t).elem * amax + elem_slack(t, amax)
                                 : bound_of(t).elem * fabs(x[i]) + 0x1p-25;
            double e = fabs((double)deq[i] - x[i]);
            if (e > 0)
                worst = fmax(worst, allowed > 0 ? e / allowed : INFINITY);
        }
    }
    cr_expect(worst <= 1.0, "%s: %s (%s) decodes %.3f× the error bound from the f32 weights",
              label, q->name, tname(t), worst);
    free(mine);
    free(deq);
}

/* Every non-F32 tensor of `qpath` against the same-named F32 tensor of `fpath`. */
static struct cmp_stats compare_files(const char *fpath, const char *qpath)
{
    struct gguf_file *f = NULL, *q = NULL;
    struct hr_err err;
    struct cmp_stats st = {0};
    cr_assert_eq(gguf_open(fpath, GGUF_DEFAULT_BUDGET, &f, &err), 0, "%s: %s", fpath, err.msg);
    cr_assert_eq(gguf_open(qpath, GGUF_DEFAULT_BUDGET, &q, &err), 0, "%s: %s", qpath, err.msg);
    const char *label = strrchr(qpath, '/') ? strrchr(qpath, '/') + 1 : qpath;
    for (uint64_t i = 0; i < q->n_tensors; i++) {
        const struct gguf_tensor *t = &q->tensors[i];
        const struct gguf_tensor *s = gguf_find_tensor(f, t->name);
        cr_assert(s, "%s: %s missing from %s", label, t->name, fpath);
        if (t->type == HR_TYPE_F32) { /* norms and biases stay f32 */
            cr_expect_eq(memcmp(t->data, s->data, t->nbytes), 0, "%s: %s", label, t->name);
            st.skipped++;
            continue;
        }
        compare_tensor(s, t, label, &st);
    }
    gguf_free(f);
    gguf_free(q);
    return st;
}

static const char *stories_f32(void)
{
    const char *p = tu_data("../../models/stories260K.gguf");
    if (tu_exists(p))
        return p;
    return tu_find("models/stories260K.gguf");
}

/* Shipped: quantizing stories260K's F32 tensors gives llama-quantize's files
 * byte for byte, including the tensors that fell back to F16 or Q8_0. */
Test(quant, stories260K_bit_exact)
{
    const char *f = stories_f32();
    cr_assert(f, "stories260K.gguf not found");
    static const char *files[] = {"stories260K-q8_0.gguf", "stories260K-q4_0.gguf",
                                  "stories260K-q5_1.gguf"};
    for (size_t i = 0; i < 3; i++) {
        char rel[128];
        snprintf(rel, sizeof rel, "models/%s", files[i]);
        const char *q = tu_find(rel);
        cr_assert(q, "%s not found in tests/data or refdata", rel);
        struct cmp_stats st = compare_files(f, q);
        cr_log_info("%s: %d/%d tensors bit-exact", files[i], st.exact, st.tensors);
        cr_assert(st.tensors >= 30);
        cr_assert_eq(st.exact, st.tensors);
    }
}

/* Shipped (tests/data/quant/README): for every type, rows of one syn-llama
 * tensor, f32 and as llama.cpp quantized them ("T.src", "T.ref"); for the
 * K-quants also "hard" super-blocks from all syn-* models ("T.hard.src",
 * "T.hard.ref"), ones whose bytes change under small deviations from the
 * reference arithmetic. Every one must match bit for bit. */
Test(quant, extract_bit_exact)
{
    struct gguf_file *f = NULL;
    struct hr_err err;
    const char *path = tu_data("quant/syn-extract.gguf");
    cr_assert_eq(gguf_open(path, BUDGET, &f, &err), 0, "%s: %s", path, err.msg);
    int seen = 0, hard = 0;
    for (size_t ti = 0; ti < N_TYPES; ti++) {
        uint32_t t = all_types[ti];
        for (int h = 0; h < 2; h++) {
            const char *part = h ? ".hard" : "";
            char name[64];
            snprintf(name, sizeof name, "%s%s.ref", tname(t), part);
            const struct gguf_tensor *ref = gguf_find_tensor(f, name);
            if (!ref)
                continue;
            snprintf(name, sizeof name, "%s%s.src", tname(t), part);
            const struct gguf_tensor *src = gguf_find_tensor(f, name);
            cr_assert(src, "%s missing", name);
            cr_assert_eq(ref->type, t);
            struct cmp_stats st = {0};
            compare_tensor(src, ref, h ? "extract (hard blocks)" : "extract", &st);
            cr_assert_eq(st.exact, 1, "%s%s: not bit-exact", tname(t), part);
            seen += !h;
            hard += h;
        }
    }
    /* every weight type llama-quantize writes: F16 BF16, 5 legacy, 5 K */
    cr_assert_eq(seen, 12);
    cr_assert_eq(hard, 5);
    gguf_free(f);
}

/* The extract's "T[.hard].origin" entries name where each row came from
 * ("file:tensor" for the first `rows`, "file:tensor:block" per hard block);
 * check the shipped bytes are those of refdata. */
static void check_origin(const struct gguf_file *x, const char *tensor_prefix, const char *origin,
                         int64_t index)
{
    char file[128], tensor[96];
    long long block = -1;
    const char *c1 = strchr(origin, ':');
    cr_assert(c1, "%s", origin);
    snprintf(file, sizeof file, "%.*s", (int)(c1 - origin), origin);
    const char *c2 = strchr(c1 + 1, ':');
    snprintf(tensor, sizeof tensor, "%.*s", (int)(c2 ? c2 - c1 - 1 : (long)strlen(c1 + 1)), c1 + 1);
    if (c2)
        block = atoll(c2 + 1);
    char rel[200], n1[64], n2[64];
    snprintf(rel, sizeof rel, "models/%s", file);
    struct gguf_file *q = NULL, *s = NULL;
    cr_assert_eq(gguf_open(tu_ref(rel), GGUF_DEFAULT_BUDGET, &q, NULL), 0, "%s", rel);
    /* the f32 model of the same architecture: "syn-ARCH-" + "f32.gguf" */
    snprintf(rel, sizeof rel, "models/%.*sf32.gguf", (int)(strrchr(file, '-') - file + 1), file);
    cr_assert_eq(gguf_open(tu_ref(rel), GGUF_DEFAULT_BUDGET, &s, NULL), 0, "%s", rel);
    snprintf(n1, sizeof n1, "%s.ref", tensor_prefix);
    snprintf(n2, sizeof n2, "%s.src", tensor_prefix);
    const struct gguf_tensor *xr = gguf_find_tensor(x, n1), *xs = gguf_find_tensor(x, n2);
    const struct gguf_tensor *qr = gguf_find_tensor(q, tensor), *qs = gguf_find_tensor(s, tensor);
    cr_assert(xr && xs && qr && qs, "%s", origin);
    size_t bs = hr_type_info(xr->type)->size, blck = hr_type_info(xr->type)->blck;
    if (block < 0) { /* a prefix of rows */
        cr_assert_eq(memcmp(xr->data, qr->data, xr->nbytes), 0, "%s", n1);
        cr_assert_eq(memcmp(xs->data, qs->data, xs->nbytes), 0, "%s", n2);
    } else {
        cr_assert_eq(memcmp((const uint8_t *)xr->data + index * bs,
                            (const uint8_t *)qr->data + block * bs, bs),
                     0, "%s", origin);
        cr_assert_eq(memcmp((const float *)xs->data + index * blck,
                            (const float *)qs->data + block * blck, blck * sizeof(float)),
                     0, "%s", origin);
    }
    gguf_free(q);
    gguf_free(s);
}

/* With ../shared/refdata: the shipped extract is what the refdata files hold,
 * and every tensor of every syn-* quantization is reproduced bit for bit. */
Test(quant, refdata_sweep, .timeout = 600)
{
    const char *dir = tu_ref("models");
    if (!dir || !tu_exists(dir))
        cr_skip_test("../shared/refdata not present (fresh clone)");
    static const char *archs[] = {"llama", "qwen2", "qwen3"};
    static const char *mixes[] = {"f16",  "bf16", "q8_0", "q4_0",   "q4_1",   "q5_0", "q5_1",
                                  "q2_k", "q3_k_m", "q4_k_m", "q5_k_m", "q6_k"};
    struct cmp_stats total = {0};
    int type_seen[HR_TYPE_COUNT] = {0};
    for (size_t a = 0; a < 3; a++) {
        char fp[128];
        snprintf(fp, sizeof fp, "models/syn-%s-f32.gguf", archs[a]);
        char *f32 = strdup(tu_ref(fp));
        for (size_t m = 0; m < sizeof mixes / sizeof mixes[0]; m++) {
            char qp[128];
            snprintf(qp, sizeof qp, "models/syn-%s-%s.gguf", archs[a], mixes[m]);
            const char *q = tu_ref(qp);
            cr_assert(tu_exists(q), "%s missing", q);
            struct gguf_file *g = NULL;
            cr_assert_eq(gguf_open(q, GGUF_DEFAULT_BUDGET, &g, NULL), 0);
            for (uint64_t i = 0; i < g->n_tensors; i++)
                type_seen[g->tensors[i].type]++;
            gguf_free(g);
            struct cmp_stats st = compare_files(f32, q);
            cr_log_info("%s: %d/%d tensors bit-exact (%llu/%llu blocks)", qp, st.exact,
                        st.tensors, (unsigned long long)st.same_blocks,
                        (unsigned long long)st.blocks);
            total.tensors += st.tensors;
            total.exact += st.exact;
            total.blocks += st.blocks;
            total.same_blocks += st.same_blocks;
        }
        free(f32);
    }
    cr_log_info("all: %d/%d tensors, %llu/%llu blocks bit-exact", total.exact, total.tensors,
                (unsigned long long)total.same_blocks, (unsigned long long)total.blocks);
    cr_assert_eq(total.exact, total.tensors);
    static const uint32_t must[] = {HR_TYPE_F16,  HR_TYPE_BF16, HR_TYPE_Q4_0, HR_TYPE_Q4_1,
                                    HR_TYPE_Q5_0, HR_TYPE_Q5_1, HR_TYPE_Q8_0, HR_TYPE_Q2_K,
                                    HR_TYPE_Q3_K, HR_TYPE_Q4_K, HR_TYPE_Q5_K, HR_TYPE_Q6_K};
    for (size_t i = 0; i < sizeof must / sizeof must[0]; i++)
        cr_assert(type_seen[must[i]] > 0, "no %s tensor in the sweep", tname(must[i]));

    /* the shipped extract holds the refdata bytes it claims to */
    struct gguf_file *x = NULL;
    cr_assert_eq(gguf_open(tu_data("quant/syn-extract.gguf"), BUDGET, &x, NULL), 0);
    int checked = 0;
    for (uint64_t i = 0; i < x->n_kv; i++) {
        const struct gguf_kv *kv = &x->kv[i];
        char key[64];
        snprintf(key, sizeof key, "%.*s", (int)kv->key.len, kv->key.ptr);
        char *dot = strstr(key, ".origin");
        if (!dot)
            continue;
        *dot = '\0'; /* key is now the tensor prefix, "q4_K" or "q4_K.hard" */
        char origin[300];
        if (kv->val.type == GGUF_STRING) {
            snprintf(origin, sizeof origin, "%.*s", (int)kv->val.str.len, kv->val.str.ptr);
            check_origin(x, key, origin, 0);
            checked++;
            continue;
        }
        cr_assert_eq(kv->val.type, GGUF_ARRAY);
        for (uint64_t j = 0; j < kv->val.arr.n; j++) {
            const struct gguf_str *o = &kv->val.arr.strs[j];
            snprintf(origin, sizeof origin, "%.*s", (int)o->len, o->ptr);
            check_origin(x, key, origin, (int64_t)j);
            checked++;
        }
    }
    cr_assert(checked >= 12 + 5, "only %d origins", checked);
    gguf_free(x);
}
