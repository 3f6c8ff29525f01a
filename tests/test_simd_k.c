/*
 * test_simd_k.c — the x86 SIMD kernels of the K-quants (core/arch/x86/
 * avx2_k.c, avx512_k.c) against the scalar reference (core/quant_k.c), at
 * every ISA level this CPU has (a missing level is skipped, saying so).
 *
 * What is checked:
 *  - the Q8_K activation quantizer: blocks bit-identical to the reference
 *    (quant_q8_K_from_float) on random, zero, tiny, subnormal, huge, tie and
 *    non-finite inputs.
 *  - vec_dot and every gemm tile shape 1..gemm_mr × 1..gemm_nc, on several
 *    super-block counts, for weights written by the reference quantizer and
 *    for random bytes (with finite fp16 scales), against activations from the
 *    quantizer and random activations (qs in −128..127, bsums consistent, as
 *    the format defines them). The integer sums must be exact, so a result may
 *    differ from the reference only by float rounding in combining the
 *    super-block terms t_i = d·d_a·isum_i − dmin·d_a·msum_i: summed in any
 *    order, 12 blocks (the most used here) err by at most 12·2^-24·Σ|t_i| <
 *    1e-6·Σ|t_i|, so 1e-5·Σ|t_i| is a safe bound, and 1e-6 absorbs rounding
 *    of the terms when everything cancels. (The kernels in fact keep the
 *    reference's order and match it bit for bit; the bound leaves them free
 *    to reorder.) The gemm
 *    tiles must also leave every output outside the tile untouched.
 */
#include "arch/arch.h"
#include "quant.h"
#include "quant_blocks.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ------------------------------------------------------------------ */

static uint64_t rng_state;

static void rng_seed(uint64_t s)
{
    rng_state = s * 0x9e3779b97f4a7c15ull + 1;
}

static uint64_t rng_u64(void)
{
    uint64_t x = rng_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return x * 0x2545f4914f6cdd1dull;
}

/* uniform in [-1, 1) */
static float rng_f(void)
{
    return (float)((double)(rng_u64() >> 40) / (double)(1ull << 23) - 1.0);
}

/* roughly normal, occasional outliers (weights look like this) */
static float rng_w(void)
{
    float s = rng_f() + rng_f() + rng_f();
    if (rng_u64() % 64 == 0) s *= 8;
    return s;
}

static void need(enum hr_isa isa)
{
    if (hr_isa_detect() < isa)
        cr_skip_test("this CPU lacks %s (best level: %s)", hr_isa_name(isa),
                     hr_isa_name(hr_isa_detect()));
}

static const uint32_t ktypes[] = {HR_TYPE_Q2_K, HR_TYPE_Q3_K, HR_TYPE_Q4_K, HR_TYPE_Q5_K,
                                  HR_TYPE_Q6_K};

/* ---- Q8_K activation quantizer ---------------------------------------------------- */

static quant_from_float_fn act_q8K(enum hr_isa isa)
{
    const struct quant_kernels *k = quant_kernels_isa(HR_TYPE_Q8_K, isa);
    cr_assert_not_null(k);
    return k->act_from_float ? k->act_from_float : k->from_float;
}

/* Quantizes x[n] with the reference and with the level's quantizer and
 * requires identical bytes; returns the number of blocks compared. */
static void check_q8K(enum hr_isa isa, const float *x, int64_t n, const char *what)
{
    size_t bytes = (size_t)(n / QK_K) * sizeof(struct block_q8_K);
    struct block_q8_K *a = malloc(bytes), *b = malloc(bytes);
    cr_assert(a && b);
    memset(a, 0x55, bytes);
    memset(b, 0xaa, bytes);
    quant_kernels_ref(HR_TYPE_Q8_K)->from_float(x, a, n);
    act_q8K(isa)(x, b, n);
    for (int64_t i = 0; i < n / QK_K; i++)
        cr_assert(!memcmp(&a[i], &b[i], sizeof a[i]),
                  "%s: %s: Q8_K block %lld differs from the reference (d %a vs %a)",
                  hr_isa_name(isa), what, (long long)i, (double)a[i].d, (double)b[i].d);
    free(a);
    free(b);
}

static void q8K_suite(enum hr_isa isa)
{
    enum { NB = 16, N = NB * QK_K };
    static float x[N];
    rng_seed(1);

    for (int i = 0; i < N; i++)
        x[i] = rng_w();
    check_q8K(isa, x, N, "random");

    memset(x, 0, sizeof x);
    check_q8K(isa, x, N, "zero");
    for (int i = 0; i < N; i++)
        x[i] = (i & 1) ? -0.0f : 0.0f;
    check_q8K(isa, x, N, "signed zeros");

    /* magnitudes from subnormal to near FLT_MAX, one scale per block */
    static const float scales[] = {1e-45f, 1e-42f, 1e-39f, 1e-38f, 1e-30f, 1e-10f, 1.0f,   1e10f,
                                   1e30f,  1e37f,  1e38f,  3e38f,  2e-38f, 5e-37f, 7e-44f, 123.0f};
    for (int b = 0; b < NB; b++)
        for (int i = 0; i < QK_K; i++)
            x[b * QK_K + i] = rng_f() * scales[b];
    check_q8K(isa, x, N, "tiny and huge");

    /* ties: max 127 gives iscale −1, so k + 0.5 lands exactly halfway */
    for (int b = 0; b < NB; b++) {
        float sgn = (b & 1) ? -1.0f : 1.0f;
        for (int i = 0; i < QK_K; i++)
            x[b * QK_K + i] = sgn * (float)((int)(rng_u64() % 254) - 127) * 0.5f;
        x[b * QK_K + (b * 7) % QK_K] = sgn * 127.0f;
    }
    check_q8K(isa, x, N, "ties");

    /* equal magnitudes of both signs: the first one sets the sign of d */
    for (int b = 0; b < NB; b++) {
        for (int i = 0; i < QK_K; i++)
            x[b * QK_K + i] = rng_f();
        x[b * QK_K + (b * 13) % 200] = (b & 1) ? 3.0f : -3.0f;
        x[b * QK_K + 200 + b] = (b & 1) ? -3.0f : 3.0f;
    }
    check_q8K(isa, x, N, "first extreme wins");

    /* a single nonzero, and non-finite values */
    memset(x, 0, sizeof x);
    x[5] = 1e-44f;
    x[QK_K + 77] = -2.5f;
    x[2 * QK_K + 3] = INFINITY;
    x[3 * QK_K + 9] = -INFINITY;
    x[4 * QK_K + 100] = NAN;
    x[5 * QK_K + 1] = NAN;
    x[5 * QK_K + 2] = 4.0f;
    for (int i = 0; i < QK_K; i++)
        x[6 * QK_K + i] = rng_f();
    x[6 * QK_K + 255] = -INFINITY;
    check_q8K(isa, x, N, "sparse and non-finite");
}

Test(simd_k, q8K_quantizer_avx2)
{
    need(HR_ISA_AVX2);
    q8K_suite(HR_ISA_AVX2);
}

Test(simd_k, q8K_quantizer_avx512)
{
    need(HR_ISA_AVX512);
    q8K_suite(HR_ISA_AVX512);
}

/* ---- dot products and tiles --------------------------------------------------------- */

#define MAXNB 12
#define NROWS 19 /* > gemm_mr (16): tiles at two offsets */
#define NCOLS 19

struct fixture {
    uint32_t type;
    int nb;                  /* super-blocks per row */
    size_t wrow, xrow;       /* bytes per row */
    uint8_t *w;              /* [NROWS] weight rows */
    uint8_t *x;              /* [NCOLS] Q8_K rows */
    float ref[NROWS][NCOLS]; /* reference vec_dot */
    float tol[NROWS][NCOLS]; /* allowed |difference| */
};

static uint16_t f16(float f)
{
    return hr_fp32_to_fp16(f);
}

/* Random bytes, then the fp16 scale fields set to finite values of either
 * sign (the quants and sub-scales stay random). */
static void random_weights(uint32_t type, uint8_t *row, int nb)
{
    size_t bs = hr_type_info(type)->size;
    for (size_t i = 0; i < bs * (size_t)nb; i++)
        row[i] = (uint8_t)rng_u64();
    for (int i = 0; i < nb; i++) {
        uint8_t *b = row + (size_t)i * bs;
        uint16_t d = f16(rng_f() * 0.01f), m = f16(rng_f() * 0.01f);
        switch (type) {
        case HR_TYPE_Q2_K:
            memcpy(b + 80, &d, 2);
            memcpy(b + 82, &m, 2);
            break;
        case HR_TYPE_Q3_K:
            memcpy(b + 108, &d, 2);
            break;
        case HR_TYPE_Q4_K:
        case HR_TYPE_Q5_K:
            memcpy(b, &d, 2);
            memcpy(b + 2, &m, 2);
            break;
        default:
            memcpy(b + 208, &d, 2);
            break;
        }
    }
}

/* Random Q8_K blocks: any qs (−128 included), consistent bsums. */
static void random_acts(uint8_t *row, int nb)
{
    struct block_q8_K *b = (struct block_q8_K *)row;
    for (int i = 0; i < nb; i++) {
        b[i].d = rng_f() * 0.05f;
        for (int l = 0; l < QK_K; l++)
            b[i].qs[l] = (int8_t)(uint8_t)rng_u64();
        if (i == 0)
            for (int l = 0; l < 16; l++)
                b[i].qs[l] = -128; /* extreme products in one group */
        for (int j = 0; j < QK_K / 16; j++) {
            int s = 0;
            for (int l = 0; l < 16; l++)
                s += b[i].qs[16 * j + l];
            b[i].bsums[j] = (int16_t)s;
        }
    }
}

static void fixture_build(struct fixture *f, uint32_t type, int nb, bool random_bytes,
                          uint64_t seed)
{
    const struct quant_kernels *ref = quant_kernels_ref(type);
    f->type = type;
    f->nb = nb;
    f->wrow = hr_row_size(type, (int64_t)nb * QK_K);
    f->xrow = hr_row_size(HR_TYPE_Q8_K, (int64_t)nb * QK_K);
    f->w = malloc(f->wrow * NROWS);
    f->x = malloc(f->xrow * NCOLS);
    cr_assert(f->w && f->x);
    rng_seed(seed);
    float buf[MAXNB * QK_K];
    int64_t n = (int64_t)nb * QK_K;
    for (int r = 0; r < NROWS; r++) {
        if (random_bytes) {
            random_weights(type, f->w + (size_t)r * f->wrow, nb);
        } else {
            for (int64_t e = 0; e < n; e++)
                buf[e] = rng_w() * 0.02f;
            ref->from_float(buf, f->w + (size_t)r * f->wrow, n);
        }
    }
    for (int c = 0; c < NCOLS; c++) {
        if (random_bytes && c % 2) {
            random_acts(f->x + (size_t)c * f->xrow, nb);
        } else {
            for (int64_t e = 0; e < n; e++)
                buf[e] = rng_w();
            quant_kernels_ref(HR_TYPE_Q8_K)->from_float(buf, f->x + (size_t)c * f->xrow, n);
        }
    }
    size_t bs = hr_type_info(type)->size;
    for (int r = 0; r < NROWS; r++)
        for (int c = 0; c < NCOLS; c++) {
            const uint8_t *wr = f->w + (size_t)r * f->wrow, *xr = f->x + (size_t)c * f->xrow;
            ref->vec_dot(n, &f->ref[r][c], wr, xr);
            double mag = 0;
            for (int i = 0; i < nb; i++) {
                float t;
                ref->vec_dot(QK_K, &t, wr + (size_t)i * bs,
                             xr + (size_t)i * sizeof(struct block_q8_K));
                mag += fabs((double)t);
            }
            f->tol[r][c] = (float)(1e-5 * mag + 1e-6);
        }
}

static void fixture_free(struct fixture *f)
{
    free(f->w);
    free(f->x);
}

static void check(const struct fixture *f, enum hr_isa isa, int r, int c, float got,
                  const char *what)
{
    float want = f->ref[r][c];
    cr_assert(isfinite(got) && fabsf(got - want) <= f->tol[r][c],
              "%s %s %s nb=%d row %d col %d: got %.9g, reference %.9g (allowed %.3g)",
              hr_isa_name(isa), hr_type_info(f->type)->name, what, f->nb, r, c, (double)got,
              (double)want, (double)f->tol[r][c]);
}

static void check_vec_dot(const struct fixture *f, enum hr_isa isa)
{
    const struct quant_kernels *k = quant_kernels_isa(f->type, isa);
    for (int r = 0; r < NROWS; r++)
        for (int c = 0; c < NCOLS; c++) {
            float s = NAN;
            k->vec_dot((int64_t)f->nb * QK_K, &s, f->w + (size_t)r * f->wrow,
                       f->x + (size_t)c * f->xrow);
            check(f, isa, r, c, s, "vec_dot");
        }
}

/* Every tile shape at a few offsets into the fixture, with a y matrix wider
 * than the tile (ldy) filled with a sentinel that must survive outside it. */
static void check_gemm(const struct fixture *f, enum hr_isa isa)
{
    const struct quant_kernels *k = quant_kernels_isa(f->type, isa);
    cr_assert_not_null(k->gemm, "%s %s has no gemm", hr_isa_name(isa), hr_type_info(f->type)->name);
    cr_assert(k->gemm_mr >= 1 && k->gemm_mr <= NROWS - 1 && k->gemm_nc >= 1 &&
              k->gemm_nc <= NCOLS - 2);
    enum { LDY = NROWS + 3 };
    float y[NCOLS][LDY];
    const float sentinel = -12345.5f;
    for (int nr = 1; nr <= k->gemm_mr; nr++)
        for (int nc = 1; nc <= k->gemm_nc; nc++)
            for (int off = 0; off < 2; off++) {
                int r0 = off ? NROWS - nr : 0, c0 = off ? NCOLS - nc : 1;
                for (int c = 0; c < NCOLS; c++)
                    for (int r = 0; r < LDY; r++)
                        y[c][r] = sentinel;
                k->gemm((int64_t)f->nb * QK_K, &y[c0][r0], LDY, f->w + (size_t)r0 * f->wrow,
                        f->wrow, nr, f->x + (size_t)c0 * f->xrow, f->xrow, nc);
                char what[64];
                snprintf(what, sizeof what, "gemm %dx%d", nr, nc);
                for (int c = 0; c < NCOLS; c++)
                    for (int r = 0; r < LDY; r++) {
                        bool in = r >= r0 && r < r0 + nr && c >= c0 && c < c0 + nc;
                        if (in)
                            check(f, isa, r, c, y[c][r], what);
                        else
                            cr_assert(y[c][r] == sentinel,
                                      "%s %s %s wrote outside its tile at row %d col %d",
                                      hr_isa_name(isa), hr_type_info(f->type)->name, what, r, c);
                    }
            }
}

static void dot_suite(uint32_t type, enum hr_isa isa)
{
    static const int nbs[] = {1, 2, 3, 5, 12};
    for (size_t i = 0; i < sizeof nbs / sizeof nbs[0]; i++)
        for (int rnd = 0; rnd < 2; rnd++) {
            struct fixture *f = malloc(sizeof *f);
            cr_assert_not_null(f);
            fixture_build(f, type, nbs[i], rnd, 1000 * type + 10 * (uint64_t)i + (uint64_t)rnd);
            check_vec_dot(f, isa);
            check_gemm(f, isa);
            fixture_free(f);
            free(f);
        }
}

/* Large-magnitude case: every weight quant at its extreme and every
 * activation −128 or 127, so the integer sums are as large as they get. */
static void extreme_suite(uint32_t type, enum hr_isa isa)
{
    struct fixture *f = malloc(sizeof *f);
    cr_assert_not_null(f);
    fixture_build(f, type, 2, true, 77);
    size_t bs = hr_type_info(type)->size;
    for (int r = 0; r < NROWS; r++)
        for (int i = 0; i < f->nb; i++) {
            uint8_t *b = f->w + (size_t)r * f->wrow + (size_t)i * bs;
            uint16_t d, m;
            memcpy(&d,
                   b + (type == HR_TYPE_Q2_K   ? 80
                        : type == HR_TYPE_Q3_K ? 108
                        : type == HR_TYPE_Q6_K ? 208
                                               : 0),
                   2);
            memcpy(&m, b + (type == HR_TYPE_Q2_K ? 82 : 2), 2);
            memset(b, r % 2 ? 0xff : 0x00, bs); /* all quants max (or min) */
            if (type == HR_TYPE_Q6_K)
                memset(b + 192, r % 4 < 2 ? 0x80 : 0x7f, 16); /* scales −128 / 127 */
            if (type == HR_TYPE_Q3_K && r % 2 == 0) memset(b + 96, 0xff, 12);
            memcpy(b + (type == HR_TYPE_Q2_K   ? 80
                        : type == HR_TYPE_Q3_K ? 108
                        : type == HR_TYPE_Q6_K ? 208
                                               : 0),
                   &d, 2);
            if (type == HR_TYPE_Q2_K || type == HR_TYPE_Q4_K || type == HR_TYPE_Q5_K)
                memcpy(b + (type == HR_TYPE_Q2_K ? 82 : 2), &m, 2);
        }
    for (int c = 0; c < NCOLS; c++) {
        struct block_q8_K *x = (struct block_q8_K *)(f->x + (size_t)c * f->xrow);
        for (int i = 0; i < f->nb; i++) {
            x[i].d = 0.01f;
            for (int l = 0; l < QK_K; l++)
                x[i].qs[l] = (int8_t)(c % 2 ? -128 : 127);
            for (int j = 0; j < 16; j++)
                x[i].bsums[j] = (int16_t)(16 * x[i].qs[16 * j]);
        }
    }
    const struct quant_kernels *ref = quant_kernels_ref(type);
    for (int r = 0; r < NROWS; r++)
        for (int c = 0; c < NCOLS; c++) {
            const uint8_t *wr = f->w + (size_t)r * f->wrow, *xr = f->x + (size_t)c * f->xrow;
            ref->vec_dot((int64_t)f->nb * QK_K, &f->ref[r][c], wr, xr);
            f->tol[r][c] = 1e-5f * fabsf(f->ref[r][c]) * 2 + 1e-6f;
        }
    check_vec_dot(f, isa);
    check_gemm(f, isa);
    fixture_free(f);
    free(f);
}

#define DOT_TESTS(NAME, TYPE)                                                                      \
    Test(simd_k, NAME##_avx2)                                                                      \
    {                                                                                              \
        need(HR_ISA_AVX2);                                                                         \
        dot_suite(TYPE, HR_ISA_AVX2);                                                              \
        extreme_suite(TYPE, HR_ISA_AVX2);                                                          \
    }                                                                                              \
    Test(simd_k, NAME##_avx512)                                                                    \
    {                                                                                              \
        need(HR_ISA_AVX512);                                                                       \
        dot_suite(TYPE, HR_ISA_AVX512);                                                            \
        extreme_suite(TYPE, HR_ISA_AVX512);                                                        \
    }

DOT_TESTS(q2_K, HR_TYPE_Q2_K)
DOT_TESTS(q3_K, HR_TYPE_Q3_K)
DOT_TESTS(q4_K, HR_TYPE_Q4_K)
DOT_TESTS(q5_K, HR_TYPE_Q5_K)
DOT_TESTS(q6_K, HR_TYPE_Q6_K)

/* ---- repacked weights (gemm_packed) ------------------------------------------------------ */

/* repack + gemm_packed of every type whose kernels offer them at `isa`:
 * n_out rows (less than a panel, a partial last panel) at a few row lengths,
 * weights from the quantizer, random bytes, or every quant at its extreme;
 * every tile start, nr = 1 and the full nr (every nr when n_out is one
 * panel), every token count 1..packed_nc. Results must equal the reference
 * vec_dot bit for bit (the packed tiles keep its integer sums and its float
 * expression and order), the rest of y must stay untouched, and the packed
 * copy is allocated at exactly packed_size bytes (ASan sees a read past it). */
static const int64_t packed_outs[] = {1, 7, 16, 17, 40};

static void packed_weights(uint32_t type, uint8_t *row, int nb, int mode)
{
    if (mode == 1) {
        random_weights(type, row, nb);
        return;
    }
    float buf[MAXNB * QK_K];
    for (int64_t e = 0; e < (int64_t)nb * QK_K; e++)
        buf[e] = rng_w() * 0.02f;
    quant_kernels_ref(type)->from_float(buf, row, (int64_t)nb * QK_K);
    if (mode == 2) { /* quants (and Q6_K scales) at their extremes, the fp16 scales kept */
        size_t bs = hr_type_info(type)->size;
        int hi = (int)(rng_u64() & 1);
        for (int i = 0; i < nb; i++) {
            uint8_t *b = row + (size_t)i * bs;
            if (type == HR_TYPE_Q6_K) {
                memset(b, hi ? 0xff : 0x00, 192);
                memset(b + 192, hi ? 0x80 : 0x7f, 16);
            } else {
                memset(b + 16, hi ? 0xff : 0x00, bs - 16); /* qs (and Q5_K's qh) */
                memset(b + 4, 0xff, 12);                   /* sub-scales and mins 63 */
            }
        }
    }
}

static void packed_acts(uint8_t *row, int nb, int mode, int c)
{
    if (mode == 2) {
        struct block_q8_K *x = (struct block_q8_K *)row;
        for (int i = 0; i < nb; i++) {
            x[i].d = 0.01f;
            for (int l = 0; l < QK_K; l++)
                x[i].qs[l] = (int8_t)(c % 2 ? -128 : 127);
            for (int j = 0; j < 16; j++)
                x[i].bsums[j] = (int16_t)(16 * x[i].qs[16 * j]);
        }
    } else if (mode == 1 && c % 2) {
        random_acts(row, nb);
    } else {
        float buf[MAXNB * QK_K];
        for (int64_t e = 0; e < (int64_t)nb * QK_K; e++)
            buf[e] = rng_w();
        quant_kernels_ref(HR_TYPE_Q8_K)->from_float(buf, row, (int64_t)nb * QK_K);
    }
}

static int check_packed(enum hr_isa isa)
{
    static const int nbs[] = {1, 2, 5};
    static const char *modes[] = {"quantized", "random bytes", "extreme"};
    const float sentinel = -12345.5f;
    int tested = 0;
    for (size_t ti = 0; ti < sizeof ktypes / sizeof ktypes[0]; ti++) {
        uint32_t t = ktypes[ti];
        const struct quant_kernels *k = quant_kernels_isa(t, isa), *ref = quant_kernels_ref(t);
        if (!k->repack) continue;
        cr_assert(k->packed_size && k->gemm_packed, "%s: partial repacked path",
                  hr_type_info(t)->name);
        tested++;
        const int mr = k->gemm_mr, nc = quant_packed_nc(k);
        for (size_t bi = 0; bi < sizeof nbs / sizeof nbs[0]; bi++)
            for (int mode = 0; mode < 3; mode++)
                for (size_t oi = 0; oi < sizeof packed_outs / sizeof packed_outs[0]; oi++) {
                    const int nb = nbs[bi];
                    const int64_t n = (int64_t)nb * QK_K, n_out = packed_outs[oi];
                    rng_seed(5000 + 100 * t + 10 * bi + (uint64_t)mode + 1000 * oi);
                    size_t wrow = hr_row_size(t, n), xrow = hr_row_size(HR_TYPE_Q8_K, n);
                    size_t psz = k->packed_size(n, n_out), ldy = (size_t)n_out + 3;
                    uint8_t *w = malloc((size_t)n_out * wrow), *x = malloc((size_t)nc * xrow);
                    void *wp = aligned_alloc(64, (psz + 63) / 64 * 64);
                    float *y = malloc((size_t)(nc + 1) * ldy * sizeof *y);
                    float *want = malloc((size_t)nc * (size_t)n_out * sizeof *want);
                    cr_assert(w && x && wp && y && want);
                    for (int64_t o = 0; o < n_out; o++)
                        packed_weights(t, w + (size_t)o * wrow, nb, mode);
                    for (int c = 0; c < nc; c++)
                        packed_acts(x + (size_t)c * xrow, nb, mode, c);
                    for (int c = 0; c < nc; c++)
                        for (int64_t o = 0; o < n_out; o++)
                            ref->vec_dot(n, &want[(size_t)c * (size_t)n_out + (size_t)o],
                                         w + (size_t)o * wrow, x + (size_t)c * xrow);
                    memset(wp, 0xa5, (psz + 63) / 64 * 64);
                    k->repack(w, wp, n, n_out);
                    for (int64_t row0 = 0; row0 < n_out; row0 += mr) {
                        int full = n_out - row0 < mr ? (int)(n_out - row0) : mr;
                        for (int nr = 1; nr <= full; nr++) {
                            if (nr != 1 && nr != full && n_out > mr) continue;
                            for (int tn = 1; tn <= nc; tn++) {
                                for (size_t i = 0; i < (size_t)(nc + 1) * ldy; i++)
                                    y[i] = sentinel;
                                k->gemm_packed(n, y + row0, ldy, wp, row0, nr, x, xrow, tn);
                                for (int c = 0; c <= nc; c++)
                                    for (size_t o = 0; o < ldy; o++) {
                                        float got = y[(size_t)c * ldy + o];
                                        bool in = c < tn && o >= (size_t)row0 &&
                                                  o < (size_t)(row0 + nr);
                                        if (!in) {
                                            cr_assert(got == sentinel,
                                                      "%s %s gemm_packed %d×%d wrote outside "
                                                      "its tile (y[%d][%zu])",
                                                      hr_isa_name(isa), hr_type_info(t)->name,
                                                      nr, tn, c, o);
                                            continue;
                                        }
                                        float ref_v = want[(size_t)c * (size_t)n_out + o];
                                        cr_assert(!memcmp(&got, &ref_v, sizeof got),
                                                  "%s %s gemm_packed nb=%d n_out=%lld row0=%lld "
                                                  "%d×%d (%s) y[%d][%zu]: got %.9g, reference "
                                                  "%.9g",
                                                  hr_isa_name(isa), hr_type_info(t)->name, nb,
                                                  (long long)n_out, (long long)row0, nr, tn,
                                                  modes[mode], c, o, (double)got, (double)ref_v);
                                    }
                            }
                        }
                    }
                    free(w);
                    free(x);
                    free(wp);
                    free(y);
                    free(want);
                }
    }
    return tested;
}

Test(simd_k, packed_avx512)
{
    need(HR_ISA_AVX512);
    cr_assert(check_packed(HR_ISA_AVX512) == 3, "AVX-512 repacks Q4_K, Q5_K and Q6_K");
}

/* AMX: its own prompt tiles over the AVX-512 packed layout (up to
 * packed_nc tokens a call), the VNNI tile below its threshold; every token
 * count from 1 is checked. */
Test(simd_k, registered_amx)
{
    need(HR_ISA_AMX);
    const uint32_t types[] = {HR_TYPE_Q4_K, HR_TYPE_Q5_K, HR_TYPE_Q6_K};
    for (size_t i = 0; i < 3; i++) {
        const struct quant_kernels *k = quant_kernels_isa(types[i], HR_ISA_AMX),
                                   *v = quant_kernels_isa(types[i], HR_ISA_AVX512);
        cr_assert(k->gemm_packed && k->gemm_packed != v->gemm_packed, "%s: no AMX tile",
                  hr_type_info(types[i])->name);
        cr_assert(quant_packed_nc(k) > k->gemm_nc);
        /* one packed layout for both levels: decode (VNNI) and prompts share it */
        cr_assert(k->repack == v->repack && k->packed_size == v->packed_size);
    }
}

Test(simd_k, packed_amx)
{
    need(HR_ISA_AMX);
    cr_assert(check_packed(HR_ISA_AMX) == 3, "AMX repacks Q4_K, Q5_K and Q6_K");
}

/* The AMX kernels of the K-quants and of the legacy quants use different
 * tile configurations in the same thread (one forward pass mixes them):
 * alternating calls must all stay exact. */
Test(simd_k, amx_mixed_with_legacy)
{
    need(HR_ISA_AMX);
    const struct quant_kernels *kk = quant_kernels_isa(HR_TYPE_Q4_K, HR_ISA_AMX);
    const struct quant_kernels *kl = quant_kernels_isa(HR_TYPE_Q8_0, HR_ISA_AMX);
    if (!kl->gemm_packed) cr_skip_test("no AMX tile for Q8_0");
    enum { N = 2 * QK_K, OUT = 16, NC = 32 };
    const struct quant_kernels *rk = quant_kernels_ref(HR_TYPE_Q4_K);
    const struct quant_kernels *rl = quant_kernels_ref(HR_TYPE_Q8_0);
    size_t wk = hr_row_size(HR_TYPE_Q4_K, N), xk = hr_row_size(HR_TYPE_Q8_K, N);
    size_t wl = hr_row_size(HR_TYPE_Q8_0, N), xl = hr_row_size(HR_TYPE_Q8_0, N);
    uint8_t *w1 = malloc(OUT * wk), *x1 = malloc(NC * xk), *w2 = malloc(OUT * wl),
            *x2 = malloc(NC * xl);
    size_t p1 = (kk->packed_size(N, OUT) + 63) / 64 * 64, p2 = (kl->packed_size(N, OUT) + 63) / 64 * 64;
    void *wp1 = aligned_alloc(64, p1), *wp2 = aligned_alloc(64, p2);
    float *y = malloc(sizeof(float) * NC * OUT), *want1 = malloc(sizeof(float) * NC * OUT),
          *want2 = malloc(sizeof(float) * NC * OUT);
    cr_assert(w1 && x1 && w2 && x2 && wp1 && wp2 && y && want1 && want2);
    rng_seed(99);
    float buf[N];
    for (int r = 0; r < OUT; r++) {
        for (int e = 0; e < N; e++)
            buf[e] = rng_w() * 0.02f;
        rk->from_float(buf, w1 + (size_t)r * wk, N);
        rl->from_float(buf, w2 + (size_t)r * wl, N);
    }
    for (int c = 0; c < NC; c++) {
        for (int e = 0; e < N; e++)
            buf[e] = rng_w();
        quant_kernels_ref(HR_TYPE_Q8_K)->from_float(buf, x1 + (size_t)c * xk, N);
        quant_act_from_float(HR_TYPE_Q8_0)(buf, x2 + (size_t)c * xl, N);
    }
    for (int c = 0; c < NC; c++)
        for (int r = 0; r < OUT; r++) {
            rk->vec_dot(N, &want1[c * OUT + r], w1 + (size_t)r * wk, x1 + (size_t)c * xk);
            rl->vec_dot(N, &want2[c * OUT + r], w2 + (size_t)r * wl, x2 + (size_t)c * xl);
        }
    kk->repack(w1, wp1, N, OUT);
    kl->repack(w2, wp2, N, OUT);
    for (int round = 0; round < 4; round++) {
        bool k_first = round % 2 == 0;
        for (int step = 0; step < 2; step++) {
            bool k = (step == 0) == k_first;
            memset(y, 0, sizeof(float) * NC * OUT);
            if (k)
                kk->gemm_packed(N, y, OUT, wp1, 0, OUT, x1, xk, NC);
            else
                kl->gemm_packed(N, y, OUT, wp2, 0, OUT, x2, xl, NC);
            const float *want = k ? want1 : want2;
            for (int i = 0; i < NC * OUT; i++)
                cr_assert(!memcmp(&y[i], &want[i], sizeof y[i]),
                          "round %d, %s after %s: y[%d] = %.9g, reference %.9g", round,
                          k ? "Q4_K" : "Q8_0", step ? (k ? "Q8_0" : "Q4_K") : "nothing", i,
                          (double)y[i], (double)want[i]);
        }
    }
    free(w1);
    free(x1);
    free(w2);
    free(x2);
    free(wp1);
    free(wp2);
    free(y);
    free(want1);
    free(want2);
}

/* The SIMD levels really are installed for these types (a table that
 * silently kept the reference would pass every comparison above). */
Test(simd_k, kernels_registered)
{
    for (int isa = HR_ISA_AVX2; isa <= (int)hr_isa_detect(); isa++)
        for (size_t i = 0; i < sizeof ktypes / sizeof ktypes[0]; i++) {
            const struct quant_kernels *k = quant_kernels_isa(ktypes[i], (enum hr_isa)isa);
            const struct quant_kernels *ref = quant_kernels_ref(ktypes[i]);
            cr_assert(k && k->vec_dot != ref->vec_dot && k->gemm, "%s has no %s kernels",
                      hr_type_info(ktypes[i])->name, hr_isa_name((enum hr_isa)isa));
        }
    if (hr_isa_detect() < HR_ISA_AVX2) cr_skip_test("this CPU lacks avx2");
}
