/*
 * test_simd_legacy.c — the x86 SIMD kernels of the float types and the
 * legacy quants (core/arch/x86/avx2_legacy.c, avx512_legacy.c) against the
 * scalar reference kernels (quant_kernels_isa(type, HR_ISA_SCALAR)), at each
 * ISA level this CPU has; a level it lacks is skipped, saying so.
 *
 * What is checked:
 *  - activation converters (Q8_0, Q8_1, F16, BF16): blocks bit-identical to
 *    the scalar ones on random data of many magnitudes, zero blocks, tiny and
 *    huge values, exact rounding ties, and (F16/BF16, whose scalar converters
 *    are defined for every input) every kind of float bit pattern.
 *  - vec_dot and every gemm tile shape (1..gemm_mr × 1..gemm_nc, strided
 *    rows, a padded output that must stay untouched outside the tile) at row
 *    lengths around the kernels' step and chunk sizes:
 *     · block types (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0): the result must be the
 *       reference's float bit for bit. The kernels compute each block's
 *       integer sum exactly and then the reference's float expression in
 *       block order, so any difference is a bug (a wrong nibble, 5th bit,
 *       offset or sign, or a reordered float sum). Also with "wide" data:
 *       any finite fp16 scale (subnormals, zero, 65504) and raw activation
 *       blocks.
 *     · float types (F32, F16, BF16): the reference sums in double, the
 *       kernels in float lanes of at least 8, so only the rounding of the
 *       additions differs: |Δ| <= (n/8 + 8)·2^-24·Σ|w_i·x_i| (derived at
 *       check_close), at every length 1..4103 including the tails.
 *  - the kernels are actually registered at each level.
 *
 * Activation quants are drawn from [−127, 127], the range every activation
 * quantizer produces (the AVX2 Q8_0 tile relies on it).
 */
#include "arch/arch.h"
#include "quant.h"
#include "quant_blocks.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static float bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static const uint32_t weight_types[] = {HR_TYPE_F32,  HR_TYPE_F16,  HR_TYPE_BF16, HR_TYPE_Q4_0,
                                        HR_TYPE_Q4_1, HR_TYPE_Q5_0, HR_TYPE_Q5_1, HR_TYPE_Q8_0};
#define N_WEIGHT_TYPES (sizeof weight_types / sizeof weight_types[0])

static const struct quant_kernels *ref_k(uint32_t type)
{
    return quant_kernels_isa(type, HR_ISA_SCALAR);
}

/* The activation converter of a vec_dot_type at a level (as
 * quant_act_from_float does for the active one). */
static quant_from_float_fn act_fn(uint32_t type, enum hr_isa isa)
{
    const struct quant_kernels *k = quant_kernels_isa(type, isa);
    cr_assert_not_null(k);
    return k->act_from_float ? k->act_from_float : k->from_float;
}

/* Skips the calling test when the CPU lacks the level. */
static void need(enum hr_isa isa)
{
    if (hr_isa_detect() < isa)
        cr_skip_test("this CPU has no %s (best level: %s): its kernels are not tested here",
                     hr_isa_name(isa), hr_isa_name(hr_isa_detect()));
    /* levels of another architecture (x86 ones on aarch64) have no tables */
    if (!quant_kernels_isa(HR_TYPE_Q8_0, isa))
        cr_skip_test("%s is not a level of this build's architecture", hr_isa_name(isa));
}

static bool is_block_type(uint32_t type)
{
    return hr_type_info(type)->blck > 1;
}

static bool has_min(uint32_t type) /* Q4_1/Q5_1: m field at byte 2 */
{
    return ref_k(type)->vec_dot_type == HR_TYPE_Q8_1;
}

static void put16(void *p, uint16_t v)
{
    memcpy(p, &v, sizeof v);
}

static uint16_t get16(const void *p)
{
    uint16_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* What the dot-product tests feed the kernels (block types; float types
 * always get DATA_RANDOM):
 *  - DATA_RANDOM: random quants and scales of moderate range, activations
 *    from the scalar quantizer of random floats;
 *  - DATA_WIDE: any finite fp16 scale and min (subnormals, zero, ±65504),
 *    raw activation blocks with any finite d and s;
 *  - DATA_EXTREME: every quant of a block at an end of its range (all
 *    nibbles and 5th bits 0 or all set, Q8_0 all −128 or all 127) against
 *    activation blocks of all +127 or all −127: the largest integer sums,
 *    where an int16 partial sum that is too long would saturate. */
enum data { DATA_RANDOM, DATA_WIDE, DATA_EXTREME };

/* A random fp16 scale: magnitude in [2^-12, 2^2) and either sign, or
 * (`wide`) any finite pattern: subnormals, zeros, up to ±65504. */
static uint16_t rand_scale(bool wide)
{
    if (wide) {
        uint16_t h;
        do
            h = (uint16_t)rng_u64();
        while ((h & 0x7c00) == 0x7c00);
        return h;
    }
    double m = ldexp(1.0 + rng_u01(), (int)(rng_u64() % 14) - 12);
    return hr_fp32_to_fp16((float)((rng_u64() & 1) ? -m : m));
}

/* A row of weights (see enum data). Float types: scaled gaussians through
 * the scalar converter. */
static void rand_weights(uint32_t type, void *row, int64_t n, enum data mode)
{
    if (!is_block_type(type)) {
        float *f = malloc((size_t)n * sizeof *f);
        cr_assert_not_null(f);
        double scale = ldexp(1.0, (int)(rng_u64() % 9) - 4);
        for (int64_t i = 0; i < n; i++)
            f[i] = (rng_u64() % 16 == 0) ? 0.0f : (float)(rng_gauss() * scale);
        ref_k(type)->from_float(f, row, n);
        free(f);
        return;
    }
    const struct hr_type_info *ti = hr_type_info(type);
    uint8_t *p = row;
    for (int64_t b = 0; b < n / ti->blck; b++, p += ti->size) {
        for (uint32_t i = 0; i < ti->size; i++)
            p[i] = (uint8_t)rng_u64();
        if (mode == DATA_EXTREME) {
            /* all quant bytes (and qh) 0x00 or 0xff; Q8_0: 0x80 or 0x7f */
            uint8_t v = (rng_u64() & 1) ? 0xff : 0x00;
            if (type == HR_TYPE_Q8_0) v = v ? 0x7f : 0x80;
            memset(p + 2, v, ti->size - 2);
        }
        put16(p, rand_scale(mode == DATA_WIDE));
        if (has_min(type))
            put16(p + 2, mode == DATA_WIDE ? rand_scale(true)
                                           : hr_fp32_to_fp16((float)(rng_gauss() * 0.5)));
    }
}

/* A row of activations in the vec_dot_type (see enum data): Q8 blocks are
 * written directly, with quants in [−127, 127], except for DATA_RANDOM. */
static void rand_acts(uint32_t vt, void *row, int64_t n, enum data mode)
{
    if (mode != DATA_RANDOM && (vt == HR_TYPE_Q8_0 || vt == HR_TYPE_Q8_1)) {
        const struct hr_type_info *ti = hr_type_info(vt);
        size_t qs = vt == HR_TYPE_Q8_1 ? 4 : 2;
        uint8_t *p = row;
        for (int64_t b = 0; b < n / 32; b++, p += ti->size) {
            int8_t all = (rng_u64() & 1) ? 127 : -127;
            for (int e = 0; e < 32; e++)
                p[qs + e] =
                    (uint8_t)(mode == DATA_EXTREME ? all : (int8_t)((int)(rng_u64() % 255) - 127));
            put16(p, rand_scale(mode == DATA_WIDE));
            if (vt == HR_TYPE_Q8_1) put16(p + 2, rand_scale(mode == DATA_WIDE));
        }
        return;
    }
    float *f = malloc((size_t)n * sizeof *f);
    cr_assert_not_null(f);
    for (int64_t i = 0; i < n; i++)
        f[i] = (float)(rng_gauss() * ldexp(1.0, (int)((i / 32 * 7 + 3) % 11) - 5));
    act_fn(vt, HR_ISA_SCALAR)(f, row, n);
    free(f);
}

/* Σ|block terms| of the reference dot of one weight row and one activation
 * row (see the file comment). The integer values of the weights come from
 * the scalar to_float of a copy of each block with d = 1 and m = 0. */
static double term_sum(uint32_t type, const void *w, const void *x, int64_t n)
{
    const struct quant_kernels *k = ref_k(type);
    uint32_t vt = k->vec_dot_type;
    double s = 0;
    if (!is_block_type(type)) {
        float *a = malloc((size_t)n * sizeof *a), *b = malloc((size_t)n * sizeof *b);
        cr_assert(a && b);
        k->to_float(w, a, n);
        ref_k(vt)->to_float(x, b, n);
        for (int64_t i = 0; i < n; i++)
            s += fabs((double)a[i] * (double)b[i]);
        free(a);
        free(b);
        return s;
    }
    const struct hr_type_info *wi = hr_type_info(type), *xi = hr_type_info(vt);
    size_t xqs = vt == HR_TYPE_Q8_1 ? 4 : 2;
    const uint8_t *wp = w, *xp = x;
    for (int64_t b = 0; b < n / 32; b++, wp += wi->size, xp += xi->size) {
        uint8_t blk[64];
        float q[32];
        memcpy(blk, wp, wi->size);
        put16(blk, 0x3c00);
        if (has_min(type)) put16(blk + 2, 0);
        k->to_float(blk, q, 32);
        double iabs = 0;
        for (int e = 0; e < 32; e++)
            iabs += fabs((double)q[e] * (double)(int8_t)xp[xqs + e]);
        s += fabs((double)hr_fp16_to_fp32(get16(wp)) * hr_fp16_to_fp32(get16(xp))) * iabs;
        if (has_min(type))
            s += fabs((double)hr_fp16_to_fp32(get16(wp + 2)) * hr_fp16_to_fp32(get16(xp + 2)));
    }
    return s;
}

/* Float types: the kernels add n products in lanes of at least 8, each
 * lane's sum then folded by a tree of at most 4 levels; every rounded
 * addition moves a partial sum by at most 2^-24 of its magnitude, which is
 * bounded by Σ|terms|. So |Δ| <= (n/8 + 6)·2^-24·Σ|terms|, plus under 2
 * more for the reference's own product roundings (its double sum is exact
 * enough not to count): (n/8 + 8)·2^-24·Σ|terms| is a
 * rigorous bound that a wrong element or a dropped term exceeds by far. */
static void check_close(float got, float want, double terms, int64_t n, const char *what)
{
    double tol = ((double)n / 8.0 + 8.0) * 0x1p-24 * terms + 1e-30;
    cr_assert(fabs((double)got - (double)want) <= tol,
              "%s: got %.9g, reference %.9g (|Δ| = %.3g > %.3g)", what, (double)got, (double)want,
              fabs((double)got - (double)want), tol);
}

/* ---- registration ------------------------------------------------------------- */

static void check_registered(enum hr_isa isa)
{
    need(isa);
    for (size_t i = 0; i < N_WEIGHT_TYPES; i++) {
        uint32_t t = weight_types[i];
        const struct quant_kernels *k = quant_kernels_isa(t, isa);
        cr_assert_not_null(k);
        cr_assert(k->vec_dot && k->vec_dot != ref_k(t)->vec_dot, "%s: no %s vec_dot",
                  hr_type_info(t)->name, hr_isa_name(isa));
        cr_assert(k->gemm != NULL, "%s: no %s gemm", hr_type_info(t)->name, hr_isa_name(isa));
        cr_assert(k->gemm_mr >= 1 && k->gemm_mr <= 16 && k->gemm_nc >= 1 && k->gemm_nc <= 16);
        cr_assert_eq(k->vec_dot_type, ref_k(t)->vec_dot_type);
    }
    const uint32_t acts[] = {HR_TYPE_Q8_0, HR_TYPE_Q8_1, HR_TYPE_F16, HR_TYPE_BF16};
    for (size_t i = 0; i < 4; i++)
        cr_assert(act_fn(acts[i], isa) != act_fn(acts[i], HR_ISA_SCALAR),
                  "%s: no %s activation converter", hr_type_info(acts[i])->name, hr_isa_name(isa));
}

Test(simd_legacy, registered_avx2)
{
    check_registered(HR_ISA_AVX2);
}

Test(simd_legacy, registered_avx512)
{
    check_registered(HR_ISA_AVX512);
}

/* ---- activation converters ------------------------------------------------------ */

/* Converts src with the level's and the scalar converter, compares bytes. */
static void compare_act(uint32_t vt, enum hr_isa isa, const float *src, int64_t n, const char *what)
{
    size_t sz = hr_row_size(vt, n);
    uint8_t *a = malloc(sz + 1), *b = malloc(sz + 1);
    cr_assert(a && b);
    memset(a, 0xa5, sz + 1);
    memset(b, 0xa5, sz + 1);
    act_fn(vt, isa)(src, a, n);
    act_fn(vt, HR_ISA_SCALAR)(src, b, n);
    cr_assert_eq(a[sz], 0xa5, "%s %s (%s, n=%lld): wrote past the row", hr_type_info(vt)->name,
                 hr_isa_name(isa), what, (long long)n);
    for (size_t i = 0; i < sz; i++)
        cr_assert_eq(a[i], b[i], "%s %s (%s, n=%lld): byte %zu is %#x, reference %#x",
                     hr_type_info(vt)->name, hr_isa_name(isa), what, (long long)n, i, a[i], b[i]);
    free(a);
    free(b);
}

/* Inputs on which the Q8 activation quantizers are defined (finite, and
 * amax >= 127/FLT_MAX so that 127/amax is finite). */
static void check_act_q8(enum hr_isa isa)
{
    need(isa);
    const int64_t N = 4096;
    float *f = malloc((size_t)N * sizeof *f);
    cr_assert_not_null(f);
    const uint32_t vts[] = {HR_TYPE_Q8_0, HR_TYPE_Q8_1};
    for (size_t v = 0; v < 2; v++) {
        uint32_t vt = vts[v];
        rng_seed(100 + v);
        for (int rep = 0; rep < 20; rep++) {
            /* random, every block its own magnitude (1e-30 .. 1e30) */
            for (int64_t i = 0; i < N; i++)
                f[i] = (float)(rng_gauss() * pow(10.0, (double)((i / 32 * 13 + rep) % 61) - 30));
            const int64_t ns[] = {32, 64, 96, 32 * 7, N};
            for (size_t j = 0; j < 5; j++)
                compare_act(vt, isa, f, ns[j], "random");
        }
        /* zero blocks, a block of signed zeros, and single non-zeros */
        for (int64_t i = 0; i < N; i++)
            f[i] = 0.0f;
        for (int64_t i = 32; i < 64; i++)
            f[i] = -0.0f;
        f[100] = -3.0f;
        f[200] = 1e-36f; /* near the smallest amax with 127/amax finite */
        compare_act(vt, isa, f, 256, "zeros");
        /* tiny and huge magnitudes, subnormal elements next to a normal max */
        for (int64_t i = 0; i < N; i++) {
            double g = rng_gauss();
            switch ((i / 32) % 4) {
            case 0:
                f[i] = (float)(g * 1e-36);
                break;
            case 1:
                f[i] = (float)(g * 1e37);
                break;
            case 2:
                f[i] = (i % 32 == 5) ? 3e38f : (float)(g * 2e37);
                break;
            default:
                f[i] = (i % 32 == 0) ? 1.0f : (float)(g * 1e-40);
                break;
            }
        }
        compare_act(vt, isa, f, N, "tiny/huge");
        /* exact ties: amax = 127 gives id = 1, so k + 0.5 rounds to even;
         * amax = 254 gives id = 0.5 and odd integers tie */
        for (int64_t b = 0; b < N / 32; b++) {
            float *p = f + b * 32;
            bool half = b % 2;
            for (int e = 0; e < 32; e++) {
                int k = (int)(rng_u64() % 253) - 126;
                p[e] = half ? (float)(2 * k + 1) : (float)k + ((rng_u64() & 1) ? 0.5f : -0.5f);
            }
            p[(b * 7) % 32] = (b % 4 < 2) ? (half ? 254.0f : 127.0f) : (half ? -254.0f : -127.0f);
        }
        compare_act(vt, isa, f, N, "ties");
        /* amax taken by a negative value, and the first of equal maxima */
        for (int64_t i = 0; i < 64; i++)
            f[i] = (float)(i % 7) - 3.0f;
        f[9] = -10.0f;
        f[40] = 10.0f;
        f[41] = -10.0f;
        compare_act(vt, isa, f, 64, "signs");
    }
    free(f);
}

Test(simd_legacy, act_q8_avx2)
{
    check_act_q8(HR_ISA_AVX2);
}

Test(simd_legacy, act_q8_avx512)
{
    check_act_q8(HR_ISA_AVX512);
}

/* F16/BF16 converters are defined for every float: random bit patterns
 * (NaN, inf, subnormals, both signs), exact rounding midpoints, values at
 * the overflow and underflow edges, and every length 1..70 for the tails. */
static void check_act_half(enum hr_isa isa)
{
    need(isa);
    const int64_t N = 4099;
    float *f = malloc((size_t)N * sizeof *f);
    cr_assert_not_null(f);
    const uint32_t vts[] = {HR_TYPE_F16, HR_TYPE_BF16};
    for (size_t v = 0; v < 2; v++) {
        uint32_t vt = vts[v];
        rng_seed(200 + v);
        for (int rep = 0; rep < 50; rep++) {
            for (int64_t i = 0; i < N; i++)
                f[i] = bits_f32((uint32_t)rng_u64());
            compare_act(vt, isa, f, N, "bit patterns");
        }
        for (int64_t i = 0; i < N; i++) {
            uint32_t h = (uint32_t)rng_u64() & 0xffff;
            float m;
            if (vt == HR_TYPE_F16) {
                /* midpoint between two adjacent finite halves (exact in f32) */
                if ((h & 0x7c00) == 0x7c00 || (h & 0x7fff) == 0x7bff) h &= 0x3fff;
                m = (float)(((double)hr_fp16_to_fp32((uint16_t)h) +
                             (double)hr_fp16_to_fp32((uint16_t)(h + 1))) /
                            2);
            } else {
                m = bits_f32(h << 16 | 0x8000u); /* halfway to the next bf16 */
            }
            f[i] = m;
        }
        compare_act(vt, isa, f, N, "ties");
        const float edges[] = {65504.0f,  65519.99f, 65520.0f,  -65520.0f,     6.1035156e-05f,
                               5.96e-08f, 2.98e-08f, 2.99e-08f, 1e-45f,        -0.0f,
                               INFINITY,  -INFINITY, NAN,       3.4028235e38f, 1.1754942e-38f};
        for (int64_t i = 0; i < N; i++)
            f[i] = edges[rng_u64() % (sizeof edges / sizeof edges[0])];
        compare_act(vt, isa, f, N, "edges");
        for (int64_t n = 1; n <= 70; n++)
            compare_act(vt, isa, f + n, n, "tail");
    }
    free(f);
}

Test(simd_legacy, act_half_avx2)
{
    check_act_half(HR_ISA_AVX2);
}

Test(simd_legacy, act_half_avx512)
{
    check_act_half(HR_ISA_AVX512);
}

/* ---- vec_dot ---------------------------------------------------------------------- */

/* Row lengths: block counts around the 2-block steps and 8/16-block scale
 * chunks of the kernels; the float types also get every tail length. */
static const int64_t block_counts[] = {1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 47, 64, 129};
static const int64_t float_lens[] = {1,  2,  3,  5,  7,  8,  9,  15,  16,  17,   23,
                                     31, 32, 33, 47, 48, 63, 64, 100, 896, 1000, 4103};

static int64_t n_lens(uint32_t type)
{
    return is_block_type(type) ? (int64_t)(sizeof block_counts / sizeof block_counts[0])
                               : (int64_t)(sizeof float_lens / sizeof float_lens[0]);
}

static int64_t len_at(uint32_t type, int64_t i)
{
    return is_block_type(type) ? block_counts[i] * 32 : float_lens[i];
}

/* Block types: the SIMD result must be the reference's float, bit for bit
 * (both NaN counts as equal: inf − inf can arise from wide scales); float
 * types: the reordering bound. */
static void check_result(uint32_t type, float got, float want, const void *w, const void *x,
                         int64_t n, const char *what)
{
    if (!is_block_type(type)) {
        check_close(got, want, term_sum(type, w, x, n), n, what);
        return;
    }
    uint32_t gb, wb;
    memcpy(&gb, &got, sizeof gb);
    memcpy(&wb, &want, sizeof wb);
    cr_assert(gb == wb || (isnan(got) && isnan(want)),
              "%s: got %.9g (%#x), reference %.9g (%#x): must be bit-identical", what, (double)got,
              gb, (double)want, wb);
}

static const char *data_name[] = {"", " (wide)", " (extreme)"};

/* vec_dot at every row length. */
static void check_dot(enum hr_isa isa, enum data mode)
{
    need(isa);
    for (size_t ti = 0; ti < N_WEIGHT_TYPES; ti++) {
        uint32_t t = weight_types[ti];
        if (mode != DATA_RANDOM && !is_block_type(t)) continue;
        const struct quant_kernels *k = quant_kernels_isa(t, isa), *r = ref_k(t);
        uint32_t vt = r->vec_dot_type;
        rng_seed(300 + t + 50 * mode);
        for (int64_t li = 0; li < n_lens(t); li++) {
            int64_t n = len_at(t, li);
            void *w = malloc(hr_row_size(t, n)), *x = malloc(hr_row_size(vt, n));
            cr_assert(w && x);
            for (int rep = 0; rep < 4; rep++) {
                rand_weights(t, w, n, mode);
                rand_acts(vt, x, n, mode);
                float got = NAN, want = NAN;
                k->vec_dot(n, &got, w, x);
                r->vec_dot(n, &want, w, x);
                char what[80];
                snprintf(what, sizeof what, "%s %s vec_dot n=%lld%s", hr_type_info(t)->name,
                         hr_isa_name(isa), (long long)n, data_name[mode]);
                check_result(t, got, want, w, x, n, what);
            }
            free(w);
            free(x);
        }
    }
}

Test(simd_legacy, vec_dot_avx2)
{
    check_dot(HR_ISA_AVX2, DATA_RANDOM);
}

Test(simd_legacy, vec_dot_avx512)
{
    check_dot(HR_ISA_AVX512, DATA_RANDOM);
}

Test(simd_legacy, vec_dot_wide_avx2)
{
    check_dot(HR_ISA_AVX2, DATA_WIDE);
}

Test(simd_legacy, vec_dot_wide_avx512)
{
    check_dot(HR_ISA_AVX512, DATA_WIDE);
}

Test(simd_legacy, vec_dot_extreme_avx2)
{
    check_dot(HR_ISA_AVX2, DATA_EXTREME);
}

Test(simd_legacy, vec_dot_extreme_avx512)
{
    check_dot(HR_ISA_AVX512, DATA_EXTREME);
}

/* ---- gemm tiles ---------------------------------------------------------------------- */

#define SENTINEL 1234.5f

/* Every tile shape nr × tn at a few row lengths. The tile's inputs are
 * copied into buffers of exactly nr weight rows and tn activation rows
 * (rows `pad` bytes apart beyond their size, the last row unpadded), so a
 * kernel reading past them is caught by ASan; outputs go to a [nc+1][ldy]
 * array with ldy > nr, all of it outside the tile to stay untouched. */
static void check_gemm(enum hr_isa isa, enum data mode)
{
    need(isa);
    for (size_t ti = 0; ti < N_WEIGHT_TYPES; ti++) {
        uint32_t t = weight_types[ti];
        if (mode != DATA_RANDOM && !is_block_type(t)) continue;
        const struct quant_kernels *k = quant_kernels_isa(t, isa), *r = ref_k(t);
        uint32_t vt = r->vec_dot_type;
        int mr = k->gemm_mr, nc = k->gemm_nc;
        rng_seed(400 + t + 50 * mode);
        for (int64_t li = 0; li < n_lens(t); li += 2) {
            int64_t n = len_at(t, li);
            size_t wrow = hr_row_size(t, n), xrow = hr_row_size(vt, n);
            size_t ws = wrow + 8, xs = xrow + 8;
            size_t ldy = (size_t)mr + 3;
            uint8_t *w = calloc((size_t)mr, ws), *x = calloc((size_t)nc, xs);
            float *y = malloc((size_t)(nc + 1) * ldy * sizeof *y);
            cr_assert(w && x && y);
            for (int i = 0; i < mr; i++)
                rand_weights(t, w + (size_t)i * ws, n, mode);
            for (int c = 0; c < nc; c++)
                rand_acts(vt, x + (size_t)c * xs, n, mode);
            for (int nr = 1; nr <= mr; nr++) {
                for (int tn = 1; tn <= nc; tn++) {
                    size_t wlen = (size_t)(nr - 1) * ws + wrow, xlen = (size_t)(tn - 1) * xs + xrow;
                    uint8_t *wt = malloc(wlen), *xt = malloc(xlen);
                    cr_assert(wt && xt);
                    memcpy(wt, w, wlen);
                    memcpy(xt, x, xlen);
                    for (size_t i = 0; i < (size_t)(nc + 1) * ldy; i++)
                        y[i] = SENTINEL;
                    k->gemm(n, y, ldy, wt, ws, nr, xt, xs, tn);
                    free(wt);
                    free(xt);
                    for (int c = 0; c <= nc; c++) {
                        for (size_t o = 0; o < ldy; o++) {
                            float got = y[(size_t)c * ldy + o];
                            char what[112];
                            snprintf(what, sizeof what, "%s %s gemm %d×%d n=%lld y[%d][%zu]%s",
                                     hr_type_info(t)->name, hr_isa_name(isa), nr, tn, (long long)n,
                                     c, o, data_name[mode]);
                            if (c >= tn || o >= (size_t)nr) {
                                cr_assert(got == SENTINEL, "%s: written outside the tile", what);
                                continue;
                            }
                            const void *wr = w + o * ws, *xc = x + (size_t)c * xs;
                            float want;
                            r->vec_dot(n, &want, wr, xc);
                            check_result(t, got, want, wr, xc, n, what);
                        }
                    }
                }
            }
            free(w);
            free(x);
            free(y);
        }
    }
}

Test(simd_legacy, gemm_avx2)
{
    check_gemm(HR_ISA_AVX2, DATA_RANDOM);
}

Test(simd_legacy, gemm_avx512)
{
    check_gemm(HR_ISA_AVX512, DATA_RANDOM);
}

Test(simd_legacy, gemm_wide_avx2)
{
    check_gemm(HR_ISA_AVX2, DATA_WIDE);
}

Test(simd_legacy, gemm_wide_avx512)
{
    check_gemm(HR_ISA_AVX512, DATA_WIDE);
}

Test(simd_legacy, gemm_extreme_avx2)
{
    check_gemm(HR_ISA_AVX2, DATA_EXTREME);
}

Test(simd_legacy, gemm_extreme_avx512)
{
    check_gemm(HR_ISA_AVX512, DATA_EXTREME);
}

/* ---- repacked weights -------------------------------------------------------------- */

static const int64_t packed_outs[] = {1, 7, 16, 17, 40};

/* Calls of up to 16 activation rows are checked at every width; wider ones
 * (AMX: up to 128) at the widths around the first tile edges, where the
 * VNNI hand-off below AMX_MIN, full and partial 16-row tiles all occur, and
 * (random data) the widest calls. */
static bool tile_width_tested(int tn, int nc, enum data mode)
{
    if (nc <= 16 || tn <= 5) return true;
    if (tn >= nc - 1) return mode == DATA_RANDOM;
    return tn == 15 || tn == 16 || tn == 17 || tn == 31 || tn == 33;
}

/* repack + gemm_packed of every kernel that offers them: n_out rows
 * (interleave edges: fewer than a tile, a partial last tile) at several row
 * lengths; for every tile start, every tn and the full nr plus nr = 1 (all
 * nr when n_out is one tile), bit for bit against the reference vec_dot,
 * with the rest of y untouched. The packed copy is allocated at exactly
 * packed_size bytes, so ASan catches a read past it. */
static void check_packed(enum hr_isa isa, enum data mode)
{
    need(isa);
    int tested = 0;
    for (size_t ti = 0; ti < N_WEIGHT_TYPES; ti++) {
        uint32_t t = weight_types[ti];
        const struct quant_kernels *k = quant_kernels_isa(t, isa), *r = ref_k(t);
        if (!k->repack) continue;
        cr_assert(k->packed_size && k->gemm_packed, "%s: partial repacked path",
                  hr_type_info(t)->name);
        tested++;
        uint32_t vt = r->vec_dot_type;
        int mr = k->gemm_mr, nc = quant_packed_nc(k);
        /* both entry points: scales read from the blocks, or given as floats */
        for (int xd_mode = 0; xd_mode < (k->gemm_packed_xd ? 2 : 1); xd_mode++) {
        rng_seed(700 + t + 50 * mode);
        for (int64_t li = 0; li < n_lens(t); li += 3) {
            int64_t n = len_at(t, li);
            for (size_t oi = 0; oi < sizeof packed_outs / sizeof packed_outs[0]; oi++) {
                int64_t n_out = packed_outs[oi];
                size_t wrow = hr_row_size(t, n), xrow = hr_row_size(vt, n);
                size_t psz = k->packed_size(n, n_out);
                size_t ldy = (size_t)n_out + 3;
                uint8_t *w = malloc((size_t)n_out * wrow), *x = malloc((size_t)nc * xrow);
                void *wp = aligned_alloc(64, (psz + 63) / 64 * 64);
                float *y = malloc((size_t)(nc + 1) * ldy * sizeof *y);
                float *want = malloc((size_t)nc * (size_t)n_out * sizeof *want);
                cr_assert(w && x && wp && y && want);
                for (int64_t o = 0; o < n_out; o++)
                    rand_weights(t, w + (size_t)o * wrow, n, mode);
                for (int c = 0; c < nc; c++)
                    rand_acts(vt, x + (size_t)c * xrow, n, mode);
                /* the block scales as floats, for gemm_packed_xd */
                float *xd = malloc((size_t)nc * (size_t)(n / 32) * sizeof *xd);
                cr_assert(xd);
                for (int c = 0; c < nc; c++)
                    for (int64_t b = 0; b < n / 32; b++) {
                        uint16_t h;
                        memcpy(&h, x + (size_t)c * xrow + (size_t)b * (xrow / (size_t)(n / 32)), 2);
                        xd[(size_t)c * (size_t)(n / 32) + (size_t)b] = hr_fp16_to_fp32(h);
                    }
                for (int c = 0; c < nc; c++)
                    for (int64_t o = 0; o < n_out; o++)
                        r->vec_dot(n, &want[(size_t)c * (size_t)n_out + (size_t)o],
                                   w + (size_t)o * wrow, x + (size_t)c * xrow);
                memset(wp, 0xa5, (psz + 63) / 64 * 64);
                k->repack(w, wp, n, n_out);
                for (int64_t row0 = 0; row0 < n_out; row0 += mr) {
                    int full = n_out - row0 < mr ? (int)(n_out - row0) : mr;
                    for (int nr = 1; nr <= full; nr++) {
                        if (nr != 1 && nr != full && n_out > mr) continue;
                        for (int tn = 1; tn <= nc; tn++) {
                            if (!tile_width_tested(tn, nc, mode)) continue;
                            for (size_t i = 0; i < (size_t)(nc + 1) * ldy; i++)
                                y[i] = SENTINEL;
                            if (xd_mode)
                                k->gemm_packed_xd(n, y + row0, ldy, wp, row0, nr, x, xrow, xd,
                                                  (size_t)(n / 32), tn);
                            else
                                k->gemm_packed(n, y + row0, ldy, wp, row0, nr, x, xrow, tn);
                            for (int c = 0; c <= nc; c++)
                                for (size_t o = 0; o < ldy; o++) {
                                    float got = y[(size_t)c * ldy + o];
                                    bool outside = c >= tn || o < (size_t)row0 ||
                                                   o >= (size_t)(row0 + nr);
                                    float expect = outside
                                                       ? SENTINEL
                                                       : want[(size_t)c * (size_t)n_out + o];
                                    /* the message is formatted only for a mismatch:
                                     * formatting every element dominated the run time */
                                    if (!memcmp(&got, &expect, sizeof got) ||
                                        (!outside && isnan(got) && isnan(expect)))
                                        continue;
                                    char what[200];
                                    snprintf(what, sizeof what,
                                             "%s %s gemm_packed%s n_out=%lld row0=%lld %d×%d "
                                             "n=%lld y[%d][%zu]%s",
                                             hr_type_info(t)->name, hr_isa_name(isa),
                                             xd_mode ? "_xd" : "",
                                             (long long)n_out, (long long)row0, nr, tn,
                                             (long long)n, c, o, data_name[mode]);
                                    if (c >= tn || o < (size_t)row0 ||
                                        o >= (size_t)(row0 + nr)) {
                                        cr_assert(got == SENTINEL, "%s: written outside the tile",
                                                  what);
                                        continue;
                                    }
                                    check_result(t, got, want[(size_t)c * (size_t)n_out + o],
                                                 w + o * wrow, x + (size_t)c * xrow, n, what);
                                }
                        }
                    }
                }
                free(w);
                free(x);
                free(wp);
                free(y);
                free(want);
                free(xd);
            }
        }
        }
    }
    if (isa >= HR_ISA_AVX512)
        cr_assert(tested >= 2, "AVX-512 should repack at least Q4_0 and Q8_0");
}

Test(simd_legacy, packed_avx2)
{
    check_packed(HR_ISA_AVX2, DATA_RANDOM);
}

Test(simd_legacy, packed_avx512)
{
    check_packed(HR_ISA_AVX512, DATA_RANDOM);
}

Test(simd_legacy, packed_wide_avx512)
{
    check_packed(HR_ISA_AVX512, DATA_WIDE);
}

Test(simd_legacy, packed_extreme_avx512)
{
    check_packed(HR_ISA_AVX512, DATA_EXTREME);
}

/* AMX: its own prompt tiles over the AVX-512 packed layout (up to 64 tokens
 * a call), the VNNI tile below AMX_MIN tokens; every tn from 1 is checked. */
Test(simd_legacy, registered_amx)
{
    need(HR_ISA_AMX);
    const uint32_t amx_types[] = {HR_TYPE_Q4_0, HR_TYPE_Q5_0, HR_TYPE_Q8_0};
    for (size_t i = 0; i < 3; i++) {
        const struct quant_kernels *k = quant_kernels_isa(amx_types[i], HR_ISA_AMX),
                                   *v = quant_kernels_isa(amx_types[i], HR_ISA_AVX512);
        cr_assert(k->gemm_packed && k->gemm_packed != v->gemm_packed, "%s: no AMX tile",
                  hr_type_info(amx_types[i])->name);
        cr_assert(quant_packed_nc(k) > k->gemm_nc);
        /* one packed layout for both levels: decode (VNNI) and prompts share it */
        cr_assert(k->repack == v->repack && k->packed_size == v->packed_size);
    }
}

Test(simd_legacy, packed_amx)
{
    check_packed(HR_ISA_AMX, DATA_RANDOM);
}

Test(simd_legacy, packed_wide_amx)
{
    check_packed(HR_ISA_AMX, DATA_WIDE);
}

Test(simd_legacy, packed_extreme_amx)
{
    check_packed(HR_ISA_AMX, DATA_EXTREME);
}
