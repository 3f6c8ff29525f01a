/*
 * test_neon.c — the aarch64 NEON kernels (core/arch/arm/) against the scalar
 * reference kernels, at every NEON level this CPU has, and the forward pass
 * on the NEON path against llama.cpp's reference logits. Plain C (no
 * Criterion: the cross build has no arm64 Criterion), run under qemu-user by
 * scripts/run-tests.sh; prints one line per case and ends with
 * "neon: N passed, N failed"; exits non-zero when a case failed or none ran.
 *
 * ARM. What is checked, per level (neon, neon-dotprod; a level the CPU — or
 * qemu's CPU model — lacks is reported as skipped, not passed):
 *  - registration: every kernel the level claims is in its table, and the
 *    vec.h primitives are there;
 *  - activation converters Q8_0, Q8_1, Q8_K, F16, BF16: bytes identical to
 *    the scalar converters on random data of many magnitudes, zero blocks,
 *    tiny/huge/subnormal values, exact ties, sign cases, and (F16, BF16, Q8_K)
 *    non-finite inputs;
 *  - vec_dot of Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 × Q8_0/Q8_1 and Q2_K..Q6_K ×
 *    Q8_K at many row lengths: the reference's float bit for bit (the kernels
 *    compute the integer sums exactly and keep the reference's float
 *    expression and order, so any difference is a bug), on random, "wide"
 *    (any finite fp16 scale, raw activation blocks with −128) and "extreme"
 *    (quants at the ends of their ranges) data;
 *  - gemm tiles of the integer types, every shape up to gemm_mr × gemm_nc on
 *    strided rows: vec_dot's reference float bit for bit inside the tile,
 *    nothing written outside it;
 *  - vec_dot of F32, F16, BF16: the reference sums in double, the kernels in
 *    16 f32 lanes, so |Δ| <= (n/8 + 8)·2^-24·Σ|w_i·x_i| (as in
 *    tests/test_simd_legacy.c), at every tail length;
 *  - vec.h dot_f32, mad_f32, scale_f32, mad_f16: bit for bit the scalar ones;
 *  - dispatch: the detected level follows HWCAP_ASIMDDP, HEARTH_ISA caps it,
 *    x86 levels are never handed out on aarch64.
 * Then the models in tests/data (syn-* llama/qwen2/qwen3 of several types),
 * on the active level: logits of the reference tokens within the tolerance
 * of tests/test_model.c (1% of the logit range for F16/Q8_0, 5% otherwise),
 * teacher-forced argmax agreeing at >= 95% of the reference continuation.
 */
#include "arch/arch.h"
#include "arch/vec.h"
#include "quant.h"
#include "quant_blocks.h"

#include <hearth/hearth.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>

#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1 << 20)
#endif

/* ---- harness ------------------------------------------------------------------- */

static int n_passed, n_failed;
static int case_errors;
static char case_msg[512];

/* Records the first failure of the current case. */
static void fail(const char *fmt, ...)
{
    if (case_errors++ == 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(case_msg, sizeof case_msg, fmt, ap);
        va_end(ap);
    }
}

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond))                                                                               \
            fail(__VA_ARGS__);                                                                     \
    } while (0)

static void begin(void)
{
    case_errors = 0;
    case_msg[0] = '\0';
}

static void end(const char *name)
{
    if (case_errors) {
        n_failed++;
        printf("FAIL %s: %s (%d failed checks)\n", name, case_msg, case_errors);
    } else {
        n_passed++;
        printf("PASS %s\n", name);
    }
    fflush(stdout);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "test_neon: out of memory\n");
        exit(2);
    }
    return p;
}

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

/* uniform in [-1, 1) */
static float rng_f(void)
{
    return (float)(rng_u01() * 2.0 - 1.0);
}

static float bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static void put16(void *p, uint16_t v)
{
    memcpy(p, &v, sizeof v);
}

static const struct quant_kernels *ref_k(uint32_t type)
{
    return quant_kernels_isa(type, HR_ISA_SCALAR);
}

static quant_from_float_fn act_fn(uint32_t type, enum hr_isa isa)
{
    const struct quant_kernels *k = quant_kernels_isa(type, isa);
    return k->act_from_float ? k->act_from_float : k->from_float;
}

static const uint32_t legacy_types[] = {HR_TYPE_Q4_0, HR_TYPE_Q4_1, HR_TYPE_Q5_0, HR_TYPE_Q5_1,
                                        HR_TYPE_Q8_0};
static const uint32_t k_types[] = {HR_TYPE_Q2_K, HR_TYPE_Q3_K, HR_TYPE_Q4_K, HR_TYPE_Q5_K,
                                   HR_TYPE_Q6_K};
static const uint32_t float_types[] = {HR_TYPE_F32, HR_TYPE_F16, HR_TYPE_BF16};
static const uint32_t act_types[] = {HR_TYPE_Q8_0, HR_TYPE_Q8_1, HR_TYPE_Q8_K, HR_TYPE_F16,
                                     HR_TYPE_BF16};
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static const char *tname(uint32_t t)
{
    return hr_type_info(t)->name;
}

/* ---- registration and dispatch --------------------------------------------------- */

static void test_registered(enum hr_isa isa)
{
    char name[96];
    snprintf(name, sizeof name, "%s registered", hr_isa_name(isa));
    begin();
    const uint32_t *lists[] = {legacy_types, k_types, float_types};
    const size_t lens[] = {COUNT(legacy_types), COUNT(k_types), COUNT(float_types)};
    for (size_t l = 0; l < 3; l++)
        for (size_t i = 0; i < lens[l]; i++) {
            uint32_t t = lists[l][i];
            const struct quant_kernels *k = quant_kernels_isa(t, isa);
            CHECK(k && k->vec_dot && k->vec_dot != ref_k(t)->vec_dot, "%s: no %s vec_dot",
                  tname(t), hr_isa_name(isa));
            CHECK(k && k->vec_dot_type == ref_k(t)->vec_dot_type, "%s: vec_dot_type changed",
                  tname(t));
            if (l < 2) /* integer types: a tile kernel too */
                CHECK(k && k->gemm && k->gemm_mr >= 1 && k->gemm_mr <= 16 && k->gemm_nc >= 1 &&
                          k->gemm_nc <= 16,
                      "%s: no %s gemm", tname(t), hr_isa_name(isa));
        }
    for (size_t i = 0; i < COUNT(act_types); i++)
        CHECK(act_fn(act_types[i], isa) != act_fn(act_types[i], HR_ISA_SCALAR),
              "%s: no %s activation converter", tname(act_types[i]), hr_isa_name(isa));
    /* the dotprod level has integer products of its own */
    if (isa == HR_ISA_NEON_DOTPROD)
        for (size_t i = 0; i < COUNT(legacy_types); i++)
            CHECK(quant_kernels_isa(legacy_types[i], isa)->vec_dot !=
                      quant_kernels_isa(legacy_types[i], HR_ISA_NEON)->vec_dot,
                  "%s: the dotprod level reuses the NEON vec_dot", tname(legacy_types[i]));
    CHECK(vec_kernels_isa((int)isa) != NULL, "no vec.h primitives");
    end(name);
}

static void test_dispatch(void)
{
    begin();
    bool dp = (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0;
    enum hr_isa want = dp ? HR_ISA_NEON_DOTPROD : HR_ISA_NEON;
    CHECK(hr_isa_detect() == want, "detected %s, HWCAP says %s", hr_isa_name(hr_isa_detect()),
          hr_isa_name(want));
    const char *cap = getenv("HEARTH_ISA");
    enum hr_isa active = want;
    if (cap && !strcmp(cap, "scalar"))
        active = HR_ISA_SCALAR;
    else if (cap && !strcmp(cap, "neon"))
        active = HR_ISA_NEON;
    CHECK(hr_isa_active() == active, "active %s with HEARTH_ISA=%s, expected %s",
          hr_isa_name(hr_isa_active()), cap ? cap : "(unset)", hr_isa_name(active));
    for (int x86 = HR_ISA_AVX2; x86 < HR_ISA_NEON; x86++) { /* the levels before NEON's */
        CHECK(quant_kernels_isa(HR_TYPE_Q4_0, (enum hr_isa)x86) == NULL,
              "x86 level %s handed out", hr_isa_name((enum hr_isa)x86));
        CHECK(vec_kernels_isa(x86) == NULL, "x86 vec level %s handed out",
              hr_isa_name((enum hr_isa)x86));
    }
    CHECK(!strcmp(hr_isa_name(HR_ISA_NEON), "neon") &&
              !strcmp(hr_isa_name(HR_ISA_NEON_DOTPROD), "neon-dotprod"),
          "level names");
    CHECK(vec_kernels() != NULL && quant_kernels(HR_TYPE_Q4_K) != NULL, "active tables");
    end("dispatch");
}

/* ---- activation converters --------------------------------------------------------- */

/* Converts src with the level's and the scalar converter, compares bytes. */
static void compare_act(uint32_t vt, enum hr_isa isa, const float *src, int64_t n,
                        const char *what)
{
    size_t sz = hr_row_size(vt, n);
    uint8_t *a = xmalloc(sz + 1), *b = xmalloc(sz + 1);
    memset(a, 0xa5, sz + 1);
    memset(b, 0x5a, sz + 1);
    act_fn(vt, isa)(src, a, n);
    act_fn(vt, HR_ISA_SCALAR)(src, b, n);
    CHECK(a[sz] == 0xa5, "%s (n=%lld): wrote past the row", what, (long long)n);
    for (size_t i = 0; i < sz; i++)
        if (a[i] != b[i]) {
            fail("%s (n=%lld): byte %zu is %#x, reference %#x", what, (long long)n, i, a[i], b[i]);
            break;
        }
    free(a);
    free(b);
}

static void test_act_q8(enum hr_isa isa)
{
    const int64_t N = 4096;
    float *f = xmalloc((size_t)N * sizeof *f);
    for (size_t v = 0; v < 2; v++) {
        uint32_t vt = v ? HR_TYPE_Q8_1 : HR_TYPE_Q8_0;
        char name[96];
        snprintf(name, sizeof name, "%s act %s", hr_isa_name(isa), tname(vt));
        begin();
        rng_seed(100 + v);
        for (int rep = 0; rep < 8; rep++) {
            for (int64_t i = 0; i < N; i++)
                f[i] = (float)(rng_gauss() * pow(10.0, (double)((i / 32 * 13 + rep) % 61) - 30));
            const int64_t ns[] = {32, 64, 96, 32 * 7, N};
            for (size_t j = 0; j < 5; j++)
                compare_act(vt, isa, f, ns[j], "random");
        }
        for (int64_t i = 0; i < N; i++)
            f[i] = 0.0f;
        for (int64_t i = 32; i < 64; i++)
            f[i] = -0.0f;
        f[100] = -3.0f;
        f[200] = 1e-36f;
        compare_act(vt, isa, f, 256, "zeros");
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
        /* exact ties: amax 127 gives id 1 (k + 0.5 ties), amax 254 id 0.5 */
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
        for (int64_t i = 0; i < 64; i++)
            f[i] = (float)(i % 7) - 3.0f;
        f[9] = -10.0f;
        f[40] = 10.0f;
        f[41] = -10.0f;
        compare_act(vt, isa, f, 64, "signs");
        end(name);
    }
    free(f);
}

static void test_act_half(enum hr_isa isa)
{
    const int64_t N = 4099;
    float *f = xmalloc((size_t)N * sizeof *f);
    for (size_t v = 0; v < 2; v++) {
        uint32_t vt = v ? HR_TYPE_BF16 : HR_TYPE_F16;
        char name[96];
        snprintf(name, sizeof name, "%s act %s", hr_isa_name(isa), tname(vt));
        begin();
        rng_seed(200 + v);
        for (int rep = 0; rep < 10; rep++) {
            for (int64_t i = 0; i < N; i++)
                f[i] = bits_f32((uint32_t)rng_u64());
            compare_act(vt, isa, f, N, "bit patterns");
        }
        for (int64_t i = 0; i < N; i++) {
            uint32_t h = (uint32_t)rng_u64() & 0xffff;
            float m;
            if (vt == HR_TYPE_F16) {
                if ((h & 0x7c00) == 0x7c00 || (h & 0x7fff) == 0x7bff) h &= 0x3fff;
                m = (float)(((double)hr_fp16_to_fp32((uint16_t)h) +
                             (double)hr_fp16_to_fp32((uint16_t)(h + 1))) /
                            2);
            } else {
                m = bits_f32(h << 16 | 0x8000u);
            }
            f[i] = m;
        }
        compare_act(vt, isa, f, N, "ties");
        const float edges[] = {65504.0f,  65519.99f, 65520.0f,  -65520.0f,     6.1035156e-05f,
                               5.96e-08f, 2.98e-08f, 2.99e-08f, 1e-45f,        -0.0f,
                               INFINITY,  -INFINITY, NAN,       3.4028235e38f, 1.1754942e-38f};
        for (int64_t i = 0; i < N; i++)
            f[i] = edges[rng_u64() % COUNT(edges)];
        compare_act(vt, isa, f, N, "edges");
        for (int64_t n = 1; n <= 40; n++)
            compare_act(vt, isa, f + n, n, "tail");
        end(name);
    }
    free(f);
}

static void test_act_q8K(enum hr_isa isa)
{
    enum { NB = 16, N = NB * QK_K };
    static float x[N];
    char name[96];
    snprintf(name, sizeof name, "%s act q8_K", hr_isa_name(isa));
    begin();
    rng_seed(1);
    for (int i = 0; i < N; i++)
        x[i] = rng_f() + rng_f() + rng_f();
    compare_act(HR_TYPE_Q8_K, isa, x, N, "random");
    memset(x, 0, sizeof x);
    compare_act(HR_TYPE_Q8_K, isa, x, N, "zero");
    for (int i = 0; i < N; i++)
        x[i] = (i & 1) ? -0.0f : 0.0f;
    compare_act(HR_TYPE_Q8_K, isa, x, N, "signed zeros");
    static const float scales[] = {1e-45f, 1e-42f, 1e-39f, 1e-38f, 1e-30f, 1e-10f, 1.0f,   1e10f,
                                   1e30f,  1e37f,  1e38f,  3e38f,  2e-38f, 5e-37f, 7e-44f, 123.0f};
    for (int b = 0; b < NB; b++)
        for (int i = 0; i < QK_K; i++)
            x[b * QK_K + i] = rng_f() * scales[b];
    compare_act(HR_TYPE_Q8_K, isa, x, N, "tiny and huge");
    for (int b = 0; b < NB; b++) {
        float sgn = (b & 1) ? -1.0f : 1.0f;
        for (int i = 0; i < QK_K; i++)
            x[b * QK_K + i] = sgn * (float)((int)(rng_u64() % 254) - 127) * 0.5f;
        x[b * QK_K + (b * 7) % QK_K] = sgn * 127.0f;
    }
    compare_act(HR_TYPE_Q8_K, isa, x, N, "ties");
    for (int b = 0; b < NB; b++) {
        for (int i = 0; i < QK_K; i++)
            x[b * QK_K + i] = rng_f();
        x[b * QK_K + (b * 13) % 200] = (b & 1) ? 3.0f : -3.0f;
        x[b * QK_K + 200 + b] = (b & 1) ? -3.0f : 3.0f;
    }
    compare_act(HR_TYPE_Q8_K, isa, x, N, "first extreme wins");
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
    compare_act(HR_TYPE_Q8_K, isa, x, N, "sparse and non-finite");
    end(name);
}

/* ---- vec_dot ------------------------------------------------------------------------- */

/* DATA_RANDOM: random quants/scales of moderate range, activations from the
 * scalar quantizer; DATA_WIDE: any finite fp16 scale and raw activation
 * blocks (Q8 quants −128..127, any finite d/s; Q8_K any qs, consistent
 * bsums); DATA_EXTREME: quants at the ends of their ranges. K-quant weights
 * also come from the reference quantizer (DATA_QUANTIZED). */
enum data { DATA_RANDOM, DATA_WIDE, DATA_EXTREME, DATA_QUANTIZED };
static const char *data_name[] = {"random", "wide", "extreme", "quantized"};

static bool is_k(uint32_t t)
{
    return hr_type_info(t)->blck == QK_K;
}

static bool is_block(uint32_t t)
{
    return hr_type_info(t)->blck > 1;
}

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

/* Offsets of the fp16 scale fields of a K-quant block (second: dmin, or -1). */
static void k_scale_fields(uint32_t t, int *d, int *dmin)
{
    *dmin = -1;
    switch (t) {
    case HR_TYPE_Q2_K:
        *d = 80;
        *dmin = 82;
        break;
    case HR_TYPE_Q3_K:
        *d = 108;
        break;
    case HR_TYPE_Q4_K:
    case HR_TYPE_Q5_K:
        *d = 0;
        *dmin = 2;
        break;
    default:
        *d = 208;
        break;
    }
}

static void rand_weights(uint32_t type, void *row, int64_t n, enum data mode)
{
    if (!is_block(type) || mode == DATA_QUANTIZED) {
        float *f = xmalloc((size_t)n * sizeof *f);
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
        if (is_k(type)) {
            int d, dmin;
            k_scale_fields(type, &d, &dmin);
            if (mode == DATA_EXTREME) {
                /* every byte but the fp16 scales at one end */
                uint8_t v = (rng_u64() & 1) ? 0xff : 0x00;
                for (uint32_t i = 0; i < ti->size; i++)
                    if ((int)i != d && (int)i != d + 1 && (int)i != dmin && (int)i != dmin + 1)
                        p[i] = v;
            }
            put16(p + d, rand_scale(mode == DATA_WIDE));
            if (dmin >= 0) put16(p + dmin, rand_scale(mode == DATA_WIDE));
            continue;
        }
        if (mode == DATA_EXTREME) {
            uint8_t v = (rng_u64() & 1) ? 0xff : 0x00;
            if (type == HR_TYPE_Q8_0) v = v ? 0x7f : 0x80;
            memset(p + 2, v, ti->size - 2);
        }
        put16(p, rand_scale(mode == DATA_WIDE));
        if (ref_k(type)->vec_dot_type == HR_TYPE_Q8_1)
            put16(p + 2, mode == DATA_WIDE ? rand_scale(true)
                                           : hr_fp32_to_fp16((float)(rng_gauss() * 0.5)));
    }
}

static void rand_acts(uint32_t vt, void *row, int64_t n, enum data mode)
{
    if (vt == HR_TYPE_Q8_K && mode != DATA_RANDOM && mode != DATA_QUANTIZED) {
        struct block_q8_K *b = row;
        for (int64_t i = 0; i < n / QK_K; i++) {
            b[i].d = rng_f() * 0.05f;
            int8_t all = (rng_u64() & 1) ? 127 : -128;
            for (int l = 0; l < QK_K; l++)
                b[i].qs[l] = mode == DATA_EXTREME ? all : (int8_t)(uint8_t)rng_u64();
            for (int j = 0; j < QK_K / 16; j++) {
                int s = 0;
                for (int l = 0; l < 16; l++)
                    s += b[i].qs[16 * j + l];
                b[i].bsums[j] = (int16_t)s;
            }
        }
        return;
    }
    if ((vt == HR_TYPE_Q8_0 || vt == HR_TYPE_Q8_1) && mode != DATA_RANDOM &&
        mode != DATA_QUANTIZED) {
        const struct hr_type_info *ti = hr_type_info(vt);
        size_t qs = vt == HR_TYPE_Q8_1 ? 4 : 2;
        uint8_t *p = row;
        for (int64_t b = 0; b < n / 32; b++, p += ti->size) {
            int8_t all = (rng_u64() & 1) ? 127 : -128;
            for (int e = 0; e < 32; e++)
                p[qs + e] = (uint8_t)(mode == DATA_EXTREME ? all : (int8_t)(uint8_t)rng_u64());
            put16(p, rand_scale(mode == DATA_WIDE));
            if (vt == HR_TYPE_Q8_1) put16(p + 2, rand_scale(mode == DATA_WIDE));
        }
        return;
    }
    float *f = xmalloc((size_t)n * sizeof *f);
    for (int64_t i = 0; i < n; i++)
        f[i] = (float)(rng_gauss() * ldexp(1.0, (int)((i / 32 * 7 + 3) % 11) - 5));
    act_fn(vt, HR_ISA_SCALAR)(f, row, n);
    free(f);
}

/* Σ|w_i·x_i| of a float-type dot (for the reordering bound). */
static double term_sum(uint32_t type, const void *w, const void *x, int64_t n)
{
    float *a = xmalloc((size_t)n * sizeof *a), *b = xmalloc((size_t)n * sizeof *b);
    ref_k(type)->to_float(w, a, n);
    ref_k(type)->to_float(x, b, n);
    double s = 0;
    for (int64_t i = 0; i < n; i++)
        s += fabs((double)a[i] * (double)b[i]);
    free(a);
    free(b);
    return s;
}

static const int64_t legacy_blocks[] = {1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 33, 64, 129};
static const int64_t k_blocks[] = {1, 2, 3, 4, 5, 8, 11};
static const int64_t float_lens[] = {1,  2,  3,  4,  5,  7,  8,   15,  16,   17,  31,
                                     32, 33, 47, 63, 64, 65, 100, 896, 1000, 4103};

static void test_dot(enum hr_isa isa, uint32_t t, enum data mode)
{
    const struct quant_kernels *k = quant_kernels_isa(t, isa), *r = ref_k(t);
    uint32_t vt = r->vec_dot_type;
    char name[96];
    snprintf(name, sizeof name, "%s vec_dot %s (%s)", hr_isa_name(isa), tname(t),
             is_block(t) ? data_name[mode] : "bound");
    begin();
    rng_seed(300 + t + 50 * (uint64_t)mode + 1000 * (uint64_t)isa);
    const int64_t *lens = is_k(t) ? k_blocks : is_block(t) ? legacy_blocks : float_lens;
    size_t nl = is_k(t)       ? COUNT(k_blocks)
                : is_block(t) ? COUNT(legacy_blocks)
                              : COUNT(float_lens);
    for (size_t li = 0; li < nl; li++) {
        int64_t n = lens[li] * (int64_t)hr_type_info(t)->blck;
        void *w = xmalloc(hr_row_size(t, n)), *x = xmalloc(hr_row_size(vt, n));
        for (int rep = 0; rep < (is_block(t) ? 6 : 3); rep++) {
            rand_weights(t, w, n, mode);
            rand_acts(vt, x, n, rep % 2 ? mode : (mode == DATA_QUANTIZED ? mode : DATA_RANDOM));
            float got = NAN, want = NAN;
            k->vec_dot(n, &got, w, x);
            r->vec_dot(n, &want, w, x);
            if (is_block(t)) {
                CHECK(f32_bits(got) == f32_bits(want) || (isnan(got) && isnan(want)),
                      "n=%lld rep %d: got %.9g (%#x), reference %.9g (%#x): must be "
                      "bit-identical",
                      (long long)n, rep, (double)got, f32_bits(got), (double)want,
                      f32_bits(want));
            } else {
                double tol = ((double)n / 8.0 + 8.0) * 0x1p-24 * term_sum(t, w, x, n) + 1e-30;
                CHECK(fabs((double)got - (double)want) <= tol,
                      "n=%lld: got %.9g, reference %.9g (|d| = %.3g > %.3g)", (long long)n,
                      (double)got, (double)want, fabs((double)got - (double)want), tol);
            }
        }
        free(w);
        free(x);
    }
    end(name);
}

/* gemm tiles: every shape nr × tn (1..gemm_mr × 1..gemm_nc) at a few row
 * lengths, rows `pad` bytes apart beyond their size, outputs in a
 * [nc+1][ldy] array with ldy > nr whose entries outside the tile must keep
 * their sentinel; inside it, vec_dot's reference float bit for bit. */
#define SENTINEL 1234.5f

static void test_gemm(enum hr_isa isa, uint32_t t, enum data mode)
{
    const struct quant_kernels *k = quant_kernels_isa(t, isa), *r = ref_k(t);
    uint32_t vt = r->vec_dot_type;
    char name[96];
    snprintf(name, sizeof name, "%s gemm %s (%s)", hr_isa_name(isa), tname(t), data_name[mode]);
    begin();
    if (!k->gemm) {
        fail("no gemm");
        end(name);
        return;
    }
    int mr = k->gemm_mr, nc = k->gemm_nc;
    rng_seed(400 + t + 50 * (uint64_t)mode + 1000 * (uint64_t)isa);
    const int64_t lens[] = {1, 3, 5};
    for (size_t li = 0; li < COUNT(lens); li++) {
        int64_t n = lens[li] * (int64_t)hr_type_info(t)->blck * (is_k(t) ? 1 : 3);
        size_t wrow = hr_row_size(t, n), xrow = hr_row_size(vt, n);
        size_t ws = wrow + 6, xs = xrow + 8, ldy = (size_t)mr + 3;
        uint8_t *w = xmalloc((size_t)mr * ws), *x = xmalloc((size_t)nc * xs);
        float *y = xmalloc((size_t)(nc + 1) * ldy * sizeof *y);
        for (int i = 0; i < mr; i++)
            rand_weights(t, w + (size_t)i * ws, n, mode);
        for (int c = 0; c < nc; c++)
            rand_acts(vt, x + (size_t)c * xs, n, c % 2 ? mode : DATA_RANDOM);
        for (int nr = 1; nr <= mr; nr++)
            for (int tn = 1; tn <= nc; tn++) {
                for (size_t i = 0; i < (size_t)(nc + 1) * ldy; i++)
                    y[i] = SENTINEL;
                k->gemm(n, y, ldy, w, ws, nr, x, xs, tn);
                for (int c = 0; c <= nc; c++)
                    for (size_t o = 0; o < ldy; o++) {
                        float got = y[(size_t)c * ldy + o];
                        if (c >= tn || o >= (size_t)nr) {
                            CHECK(got == SENTINEL, "%d×%d n=%lld: y[%d][%zu] written outside the tile",
                                  nr, tn, (long long)n, c, o);
                            continue;
                        }
                        float want;
                        r->vec_dot(n, &want, w + o * ws, x + (size_t)c * xs);
                        CHECK(f32_bits(got) == f32_bits(want) || (isnan(got) && isnan(want)),
                              "%d×%d n=%lld y[%d][%zu]: got %.9g, reference %.9g", nr, tn,
                              (long long)n, c, o, (double)got, (double)want);
                    }
            }
        free(w);
        free(x);
        free(y);
    }
    end(name);
}

/* ---- vec.h ------------------------------------------------------------------------- */

static void test_vec(enum hr_isa isa)
{
    char name[96];
    snprintf(name, sizeof name, "%s vec.h primitives", hr_isa_name(isa));
    begin();
    const struct vec_kernels *k = vec_kernels_isa((int)isa), *r = vec_kernels_isa(HR_ISA_SCALAR);
    enum { N = 1100 };
    static float a[N], b[N], y0[N], y1[N];
    static uint16_t h[N];
    rng_seed(500 + (uint64_t)isa);
    for (int i = 0; i < N; i++) {
        a[i] = (float)rng_gauss();
        b[i] = (float)(rng_gauss() * 1e-3);
        h[i] = hr_fp32_to_fp16((float)rng_gauss());
    }
    if (!k || !r) {
        fail("no vec.h table");
        end(name);
        return;
    }
    const int lens[] = {0, 1, 3, 4, 7, 15, 16, 63, 64, 65, 127, 128, 200, 1024, 1099};
    for (size_t li = 0; li < COUNT(lens); li++) {
        int n = lens[li];
        float got = k->dot_f32(a, b, n), want = r->dot_f32(a, b, n);
        CHECK(f32_bits(got) == f32_bits(want), "dot_f32 n=%d: %.9g vs %.9g", n, (double)got,
              (double)want);
        memcpy(y0, b, sizeof y0);
        memcpy(y1, b, sizeof y1);
        k->mad_f32(y0, a, -0.37f, n);
        r->mad_f32(y1, a, -0.37f, n);
        CHECK(!memcmp(y0, y1, sizeof y0), "mad_f32 n=%d differs", n);
        k->scale_f32(y0, 1.7f, n);
        r->scale_f32(y1, 1.7f, n);
        CHECK(!memcmp(y0, y1, sizeof y0), "scale_f32 n=%d differs", n);
        k->mad_f16(y0, h, 0.731f, n);
        r->mad_f16(y1, h, 0.731f, n);
        CHECK(!memcmp(y0, y1, sizeof y0), "mad_f16 n=%d differs", n);
    }
    end(name);
}

/* ---- models ------------------------------------------------------------------------- */

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n + 4096 + 1 > cap) {
            cap = cap ? 2 * cap : 65536;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
        }
        size_t got = fread(buf + n, 1, 4096, f);
        n += got;
        if (got < 4096) break;
    }
    fclose(f);
    buf[n] = '\0';
    if (len) *len = n;
    return buf;
}

static size_t parse_ids(const char *s, int32_t *out, size_t cap)
{
    size_t n = 0;
    while (*s && n < cap) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s) {
            s++;
            continue;
        }
        out[n++] = (int32_t)v;
        s = end;
    }
    return n;
}

static int32_t argmax(const float *v, int32_t n)
{
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++)
        if (v[i] > v[best]) best = i;
    return best;
}

/* One syn-<arch>-<type> model of tests/data; false when it is not there. */
static bool test_model(const char *data, const char *arch, const char *type)
{
    char path[512], name[64], label[96];
    snprintf(name, sizeof name, "syn-%s-%s", arch, type);
    snprintf(path, sizeof path, "%s/models/%s.gguf", data, name);
    FILE *probe = fopen(path, "rb");
    if (!probe) return false;
    fclose(probe);
    snprintf(label, sizeof label, "model %s on %s", name, hr_isa_name(hr_isa_active()));
    begin();
    struct hr_model *m = NULL;
    struct hr_ctx *ctx = NULL;
    char *txt = NULL, *gtxt = NULL;
    float *ref = NULL;
    struct hr_err err;
    if (hr_model_load(path, NULL, &m, &err) < 0) {
        fail("load: %s", err.msg);
        goto done;
    }
    struct hr_ctx_params cp = {.n_ctx = 80, .n_batch = 80, .n_threads = 2};
    if (hr_ctx_new(m, &cp, &ctx, &err) < 0) {
        fail("context: %s", err.msg);
        goto done;
    }
    int32_t nv = hr_model_n_vocab(m);
    int32_t toks[128], greedy[64];
    snprintf(path, sizeof path, "%s/ref/tokens-%s.txt", data,
             !strcmp(arch, "llama") ? "llama" : "qwen");
    txt = read_file(path, NULL);
    snprintf(path, sizeof path, "%s/ref/%s.greedy.txt", data, name);
    gtxt = read_file(path, NULL);
    size_t rlen = 0;
    snprintf(path, sizeof path, "%s/ref/%s.logits.f32", data, name);
    ref = (float *)read_file(path, &rlen);
    if (!txt || !gtxt || !ref) {
        fail("reference files missing");
        goto done;
    }
    size_t n = parse_ids(txt, toks, 128), ng = parse_ids(gtxt, greedy, 64);
    if (rlen != n * (size_t)nv * sizeof(float) || n + ng > 128) {
        fail("reference sizes: %zu tokens, %zu bytes of logits", n, rlen);
        goto done;
    }
    if (hr_ctx_eval(ctx, toks, (int32_t)n, true, &err) < 0) {
        fail("eval: %s", err.msg);
        goto done;
    }
    double max_diff = 0, lo = INFINITY, hi = -INFINITY;
    for (size_t t = 0; t < n; t++) {
        const float *got = hr_ctx_logits(ctx, (int32_t)t);
        for (int32_t i = 0; i < nv; i++) {
            float e = ref[t * (size_t)nv + (size_t)i];
            CHECK(isfinite(got[i]), "logit [%zu][%d] is %g", t, i, (double)got[i]);
            max_diff = fmax(max_diff, fabs((double)got[i] - (double)e));
            lo = fmin(lo, e);
            hi = fmax(hi, e);
        }
    }
    double tol = (!strcmp(type, "f16") || !strcmp(type, "q8_0")) ? 0.01 : 0.05;
    CHECK(max_diff <= tol * (hi - lo), "max |logit - ref| = %.4g = %.2f%% of the range (max %.0f%%)",
          max_diff, 100 * max_diff / (hi - lo), 100 * tol);
    /* teacher-forced greedy: after prompt + ref[0..k-1], argmax must be ref[k] */
    int32_t all[128];
    memcpy(all, toks, n * sizeof *all);
    memcpy(all + n, greedy, ng * sizeof *all);
    hr_ctx_truncate(ctx, 0);
    if (hr_ctx_eval(ctx, all, (int32_t)(n + ng - 1), true, &err) < 0) {
        fail("eval: %s", err.msg);
        goto done;
    }
    size_t agree = 0;
    for (size_t k = 0; k < ng; k++)
        agree += argmax(hr_ctx_logits(ctx, (int32_t)(n - 1 + k)), nv) == greedy[k];
    CHECK((double)agree >= 0.95 * (double)ng, "teacher-forced argmax agrees at %zu of %zu", agree,
          ng);
    printf("     %s: max |logit - ref| = %.3g (%.3f%% of range), argmax %zu/%zu\n", name,
           max_diff, 100 * max_diff / (hi - lo), agree, ng);
done:
    free(txt);
    free(gtxt);
    free(ref);
    hr_ctx_free(ctx);
    hr_model_free(m);
    end(label);
    return true;
}

/* ---- main ---------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    const char *data = argc > 1 ? argv[1] : HEARTH_TEST_DATA;
    printf("test_neon: detected %s, active %s (HEARTH_ISA=%s)\n", hr_isa_name(hr_isa_detect()),
           hr_isa_name(hr_isa_active()), getenv("HEARTH_ISA") ? getenv("HEARTH_ISA") : "");
    test_dispatch();
    const enum hr_isa levels[] = {HR_ISA_NEON, HR_ISA_NEON_DOTPROD};
    for (size_t l = 0; l < COUNT(levels); l++) {
        enum hr_isa isa = levels[l];
        if (hr_isa_detect() < isa) {
            printf("SKIP %s: this CPU lacks it (best: %s); its kernels are not tested here\n",
                   hr_isa_name(isa), hr_isa_name(hr_isa_detect()));
            continue;
        }
        test_registered(isa);
        test_act_q8(isa);
        test_act_half(isa);
        test_act_q8K(isa);
        for (size_t i = 0; i < COUNT(legacy_types); i++)
            for (int mode = DATA_RANDOM; mode <= DATA_EXTREME; mode++) {
                test_dot(isa, legacy_types[i], (enum data)mode);
                test_gemm(isa, legacy_types[i], (enum data)mode);
            }
        for (size_t i = 0; i < COUNT(k_types); i++)
            for (int mode = DATA_RANDOM; mode <= DATA_QUANTIZED; mode++) {
                test_dot(isa, k_types[i], (enum data)mode);
                test_gemm(isa, k_types[i], (enum data)mode);
            }
        for (size_t i = 0; i < COUNT(float_types); i++)
            test_dot(isa, float_types[i], DATA_RANDOM);
        test_vec(isa);
    }
    static const char *models[][2] = {{"llama", "q8_0"},  {"llama", "q4_k_m"}, {"llama", "q2_k"},
                                      {"qwen2", "q4_0"},  {"qwen2", "f16"},    {"qwen3", "q5_1"},
                                      {"qwen3", "q6_k"}};
    int found = 0;
    for (size_t i = 0; i < COUNT(models); i++)
        found += test_model(data, models[i][0], models[i][1]);
    if (!found) printf("SKIP models: none found under %s/models\n", data);
    printf("neon: %d passed, %d failed\n", n_passed, n_failed);
    return n_failed || !n_passed ? 1 : 0;
}
