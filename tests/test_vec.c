/*
 * test_vec.c — the forward pass's vec.h ops on every SIMD level this CPU
 * has, against the scalar reference (core/arch/vec_ops.c), with the limits
 * vec.h states: add, rope and the f16 conversion give the scalar's bits;
 * the exponential is within 2 ulp of libm's expf (and exact at 0, ±inf,
 * NaN); rmsnorm and SwiGLU within a few ulp of the scalar; attention tiles
 * within float rounding of a double-precision softmax, the scalar one bit
 * for bit the reference's flash-attention recurrence (written out here once
 * more, over dot_f32), the vector ones within the exponential's difference
 * of it, and a lane's bits do not depend on the other lanes of its tile
 * (what batch independence needs).
 * A test whose CPU has no SIMD level checks the scalar reference only where
 * that means something and skips the rest.
 */
#include "arch/arch.h"
#include "arch/vec.h"
#include "quant.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const struct vec_kernels *ref(void)
{
    const struct vec_kernels *k = vec_kernels_isa(HR_ISA_SCALAR);
    cr_assert(k && k->add_f32 && k->rmsnorm_f32 && k->exp_f32 && k->swiglu_f32 && k->rope_f32 &&
              k->f32_to_f16 && k->attn_tile && k->attn_lanes >= 1);
    return k;
}

/* The SIMD levels this CPU has (those with a vec.h table) and their
 * tables; skips the test when there is none (its scalar-only checks must
 * come first). */
static int simd_levels(const struct vec_kernels **ks, int *isas)
{
    int n = 0;
    for (int isa = HR_ISA_SCALAR + 1; isa <= (int)hr_isa_detect(); isa++)
        if ((ks[n] = vec_kernels_isa(isa))) isas[n++] = isa;
    if (!n)
        cr_skip_test("this CPU has no SIMD level (best: %s): only the scalar reference exists",
                     hr_isa_name(hr_isa_detect()));
    return n;
}

#define FOR_SIMD_LEVELS(k, isa)                                                                    \
    const struct vec_kernels *ks_[HR_ISA_COUNT];                                                   \
    int isas_[HR_ISA_COUNT], nl_ = simd_levels(ks_, isas_);                                        \
    for (int li_ = 0, isa = isas_[0]; li_ < nl_; li_++, isa = li_ < nl_ ? isas_[li_] : 0)          \
        for (const struct vec_kernels *k = ks_[li_]; k; k = NULL)

static uint32_t rng_u32(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(*s >> 33);
}

static float rng_f(uint64_t *s, float lo, float hi)
{
    return lo + (hi - lo) * (float)(rng_u32(s) & 0xffffff) / (float)0x1000000;
}

static uint32_t bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* distance in units in the last place between two non-NaN floats of the
 * same sign (or zeros) */
static int64_t ulps(float a, float b)
{
    int64_t ia = bits(a) & 0x7fffffff, ib = bits(b) & 0x7fffffff;
    if ((bits(a) ^ bits(b)) >> 31 && ia && ib) return INT64_MAX;
    return ia > ib ? ia - ib : ib - ia;
}

/* ---- elementwise ops ------------------------------------------------------------------- */

Test(vec, exp_within_2ulp)
{
    ref();
    enum { N = 4096 };
    float *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y);
    cr_assert(x && y);
    FOR_SIMD_LEVELS(k, isa)
    {
        int64_t worst = 0;
        float worst_x = 0;
        /* every 61st float of [-110, 90] (both signs of the exponent range,
         * the subnormal results, overflow), in arrays of N (odd tails below) */
        uint32_t neg_lo = bits(110.0f), pos_hi = bits(90.0f);
        for (int side = 0; side < 2; side++)
            for (uint32_t u = 0; u < (side ? pos_hi : neg_lo);) {
                int n = 0;
                for (; n < N && u < (side ? pos_hi : neg_lo); n++, u += 61)
                    memcpy(&x[n], &(uint32_t){u | (side ? 0 : 0x80000000u)}, sizeof(float));
                k->exp_f32(y, x, n);
                for (int i = 0; i < n; i++) {
                    float want = expf(x[i]);
                    int64_t d = ulps(y[i], want);
                    if (d > worst) worst = d, worst_x = x[i];
                }
            }
        cr_assert_leq(worst, 2, "%s: exp(%a) is %lld ulp from expf", hr_isa_name((enum hr_isa)isa),
                      (double)worst_x, (long long)worst);
        /* exact cases, at every position of a short (tail) array */
        float sx[7] = {0.0f, -0.0f, -INFINITY, INFINITY, NAN, 200.0f, -200.0f}, sy[7];
        k->exp_f32(sy, sx, 7);
        cr_assert(sy[0] == 1.0f && sy[1] == 1.0f && sy[2] == 0.0f && isinf(sy[3]) && sy[3] > 0 &&
                      isnan(sy[4]) && isinf(sy[5]) && sy[6] == 0.0f,
                  "%s: %a %a %a %a %a %a %a", hr_isa_name((enum hr_isa)isa), (double)sy[0],
                  (double)sy[1], (double)sy[2], (double)sy[3], (double)sy[4], (double)sy[5],
                  (double)sy[6]);
        /* in place */
        memcpy(sy, sx, sizeof sx);
        k->exp_f32(sy, sy, 1);
        cr_assert_eq(sy[0], 1.0f);
    }
    free(x), free(y);
}

Test(vec, add_rope_f16_same_bits)
{
    const struct vec_kernels *r = ref();
    enum { N = 300 };
    uint64_t s = 7;
    float x[N], y0[N], a[N], b[N], cs[N], sn[N];
    for (int i = 0; i < N; i++) {
        x[i] = rng_f(&s, -3, 3);
        y0[i] = rng_f(&s, -3, 3);
        cs[i] = cosf((float)i * 0.37f);
        sn[i] = sinf((float)i * 0.37f);
    }
    /* the f16 conversion's edge cases: halfway, overflow, subnormal, NaN */
    float special[] = {65504.0f,  65520.0f,   65519.99f,  1e-7f, -3e-8f,   6.1e-5f, NAN,
                       -INFINITY, 0x1.002p0f, 0x1.006p0f, -0.0f, 2.98e-8f, 1e9f};
    memcpy(x + 100, special, sizeof special);
    /* the reference itself: a rotation keeps each pair's length, NORM and
     * NEOX pair different elements */
    float v[8] = {1, 2, 3, 4, 5, 6, 7, 8}, c4[4], s4[4];
    for (int i = 0; i < 4; i++)
        c4[i] = cosf(0.5f * (float)(i + 1)), s4[i] = sinf(0.5f * (float)(i + 1));
    r->rope_f32(v, c4, s4, 4, false);
    cr_assert_float_eq(hypotf(v[2], v[3]), hypotf(3, 4), 1e-5f);
    cr_assert_float_eq(v[0], 1 * c4[0] - 2 * s4[0], 1e-6f);
    float w[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    r->rope_f32(w, c4, s4, 4, true);
    cr_assert_float_eq(w[0], 1 * c4[0] - 5 * s4[0], 1e-6f);
    cr_assert_float_eq(w[4], 1 * s4[0] + 5 * c4[0], 1e-6f);
    uint16_t h;
    r->f32_to_f16(&h, &(float){1.0f}, 1);
    cr_assert_eq(h, 0x3c00);
    FOR_SIMD_LEVELS(k, isa)
    {
        const char *name = hr_isa_name((enum hr_isa)isa);
        for (int n = 0; n <= 140; n += n < 40 ? 1 : 17) {
            memcpy(a, y0, sizeof a), memcpy(b, y0, sizeof b);
            r->add_f32(a, x + 3, n);
            k->add_f32(b, x + 3, n);
            cr_assert_eq(memcmp(a, b, sizeof a), 0, "%s: add_f32, n = %d", name, n);
            for (int neox = 0; neox < 2; neox++) {
                memcpy(a, y0, sizeof a), memcpy(b, y0, sizeof b);
                r->rope_f32(a + 1, cs, sn, n, neox);
                k->rope_f32(b + 1, cs, sn, n, neox);
                cr_assert_eq(memcmp(a, b, sizeof a), 0, "%s: rope_f32 %s, n_half = %d", name,
                             neox ? "neox" : "norm", n);
            }
            uint16_t ha[N], hb[N];
            memset(ha, 0x55, sizeof ha), memset(hb, 0x55, sizeof hb);
            r->f32_to_f16(ha, x + 90, n);
            k->f32_to_f16(hb, x + 90, n);
            cr_assert_eq(memcmp(ha, hb, sizeof ha), 0, "%s: f32_to_f16, n = %d", name, n);
        }
    }
}

Test(vec, rmsnorm_swiglu_close_to_scalar)
{
    const struct vec_kernels *r = ref();
    enum { N = 4864 + 5 };
    float *x = malloc(N * sizeof *x), *w = malloc(N * sizeof *w), *a = malloc(N * sizeof *a),
          *b = malloc(N * sizeof *b), *u = malloc(N * sizeof *u);
    cr_assert(x && w && a && b && u);
    uint64_t s = 11;
    for (int i = 0; i < N; i++) {
        x[i] = rng_f(&s, -4, 4) * (i % 97 == 0 ? 30.0f : 1.0f);
        w[i] = rng_f(&s, 0.5f, 1.5f);
        u[i] = rng_f(&s, -2, 2);
    }
    x[5] = 120.0f, x[6] = -120.0f, x[7] = 0.0f; /* e^−g overflows, underflows */
    /* the reference: unit mean square times the weight */
    r->rmsnorm_f32(a, x, w, 896, 1e-6f);
    double ms = 0;
    for (int i = 0; i < 896; i++)
        ms += (double)(a[i] / w[i]) * (double)(a[i] / w[i]);
    cr_assert(fabs(ms / 896 - 1) < 1e-4, "mean square %g", ms / 896);
    FOR_SIMD_LEVELS(k, isa)
    {
        const char *name = hr_isa_name((enum hr_isa)isa);
        static const int sizes[] = {1, 7, 16, 17, 64, 896, 2048, 4864 + 5};
        for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
            int n = sizes[si];
            r->rmsnorm_f32(a, x, w, n, 1e-6f);
            k->rmsnorm_f32(b, x, w, n, 1e-6f);
            for (int i = 0; i < n; i++)
                cr_assert_leq(ulps(a[i], b[i]), 3, "%s: rmsnorm n = %d [%d]: %a vs %a", name, n, i,
                              (double)a[i], (double)b[i]);
            memcpy(b, x, (size_t)n * sizeof *b);
            k->rmsnorm_f32(b, b, w, n, 1e-6f); /* in place */
            for (int i = 0; i < n; i++)
                cr_assert_leq(ulps(a[i], b[i]), 3, "%s: rmsnorm in place n = %d", name, n);

            memcpy(a, x, (size_t)n * sizeof *a), memcpy(b, x, (size_t)n * sizeof *b);
            r->swiglu_f32(a, u, n);
            k->swiglu_f32(b, u, n);
            for (int i = 0; i < n; i++)
                cr_assert(ulps(a[i], b[i]) <= 4 || fabsf(a[i] - b[i]) <= 1e-30f,
                          "%s: swiglu n = %d [%d] (g %a): %a vs %a", name, n, i, (double)x[i],
                          (double)a[i], (double)b[i]);
        }
    }
    free(x), free(w), free(a), free(b), free(u);
}

/* ---- attention tiles ---------------------------------------------------------------------- */

struct attn_case {
    int64_t hd, stride, n_pos;
    bool f16;
    float *q;       /* [VEC_ATTN_LANES][hd] */
    float *kf, *vf; /* [n_pos][stride] f32 values (the f16 ones when f16) */
    uint16_t *kh, *vh;
    float *scratch;
};

static void case_init(struct attn_case *c, int64_t hd, int64_t n_pos, bool f16, uint64_t seed)
{
    c->hd = hd, c->stride = hd * 3 + 1, c->n_pos = n_pos, c->f16 = f16;
    size_t cache = (size_t)(n_pos * c->stride);
    c->q = malloc(VEC_ATTN_LANES * (size_t)hd * sizeof(float));
    c->kf = malloc(cache * sizeof(float)), c->vf = malloc(cache * sizeof(float));
    c->kh = malloc(cache * sizeof(uint16_t)), c->vh = malloc(cache * sizeof(uint16_t));
    c->scratch = malloc(vec_attn_scratch(hd) * sizeof(float));
    cr_assert(c->q && c->kf && c->vf && c->kh && c->vh && c->scratch);
    uint64_t s = seed;
    for (int64_t i = 0; i < VEC_ATTN_LANES * hd; i++)
        c->q[i] = rng_f(&s, -1, 1);
    for (size_t i = 0; i < cache; i++) {
        /* some keys far stronger than others, so the running max moves */
        float kv = rng_f(&s, -1, 1) * ((i / (size_t)c->stride) % 13 == 5 ? 6.0f : 1.0f);
        float vv = rng_f(&s, -2, 2);
        c->kh[i] = hr_fp32_to_fp16(kv);
        c->vh[i] = hr_fp32_to_fp16(vv);
        c->kf[i] = f16 ? hr_fp16_to_fp32(c->kh[i]) : kv;
        c->vf[i] = f16 ? hr_fp16_to_fp32(c->vh[i]) : vv;
    }
}

static void case_free(struct attn_case *c)
{
    free(c->q), free(c->kf), free(c->vf), free(c->kh), free(c->vh), free(c->scratch);
}

/* Runs a tile of n lanes: lane l is query qi[l] with last key last[l];
 * outputs to o + l·hd. */
static void run_tile(const struct vec_kernels *k, const struct attn_case *c, int n, const int *qi,
                     const int32_t *last, float *o)
{
    const float *q[VEC_ATTN_LANES];
    float *op[VEC_ATTN_LANES];
    for (int l = 0; l < n; l++)
        q[l] = c->q + qi[l] * c->hd, op[l] = o + l * c->hd;
    struct vec_attn a = {.n = n,
                         .hd = c->hd,
                         .q = q,
                         .o = op,
                         .last = last,
                         .k = c->f16 ? (const void *)c->kh : c->kf,
                         .v = c->f16 ? (const void *)c->vh : c->vf,
                         .stride = c->stride,
                         .f16 = c->f16,
                         .scale = 1.0f / sqrtf((float)c->hd),
                         .scratch = c->scratch};
    k->attn_tile(&a);
}

/* softmax attention of one query in double */
static void attn_double(const struct attn_case *c, int qi, int32_t last, double *o)
{
    const float *q = c->q + qi * c->hd;
    double *s = malloc((size_t)(last + 1) * sizeof *s), m = -INFINITY, sum = 0;
    cr_assert(s);
    for (int32_t j = 0; j <= last; j++) {
        double d = 0;
        for (int64_t i = 0; i < c->hd; i++)
            d += (double)q[i] * c->kf[j * c->stride + i];
        s[j] = d / sqrt((double)c->hd);
        m = fmax(m, s[j]);
    }
    for (int64_t i = 0; i < c->hd; i++)
        o[i] = 0;
    for (int32_t j = 0; j <= last; j++) {
        double p = exp(s[j] - m);
        sum += p;
        for (int64_t i = 0; i < c->hd; i++)
            o[i] += p * c->vf[j * c->stride + i];
    }
    for (int64_t i = 0; i < c->hd; i++)
        o[i] /= sum;
    free(s);
}

/* lane sets: several lasts around block edges, unequal within a tile */
static void lasts_for(int n, int variant, int32_t n_pos, int32_t *last, int *qi)
{
    static const int32_t picks[] = {0,  1,  30,  31,  32, 33, 63,  64,
                                    95, 96, 150, 199, 7,  45, 128, 131};
    for (int l = 0; l < n; l++) {
        int32_t v = picks[(l * 5 + variant * 3) % 16];
        last[l] = variant == 2 ? n_pos - 1 - (l / 3) : v < n_pos ? v : n_pos - 1;
        qi[l] = (l * 7 + variant) % VEC_ATTN_LANES;
    }
}

static void attn_check(const struct vec_kernels *k, const char *name, int64_t hd, bool f16)
{
    struct attn_case c;
    int32_t n_pos = 200;
    case_init(&c, hd, n_pos, f16, 1234 + (uint64_t)hd);
    float *o = malloc(VEC_ATTN_LANES * (size_t)hd * sizeof *o);
    float *o1 = malloc((size_t)hd * sizeof *o1);
    double *want = malloc((size_t)hd * sizeof *want);
    cr_assert(o && o1 && want);
    for (int variant = 0; variant < 3; variant++)
        for (int n = 1; n <= k->attn_lanes; n += n < 4 ? 1 : 5) {
            int32_t last[VEC_ATTN_LANES];
            int qi[VEC_ATTN_LANES];
            lasts_for(n, variant, n_pos, last, qi);
            memset(o, 0xff, VEC_ATTN_LANES * (size_t)hd * sizeof *o); /* NaN garbage */
            run_tile(k, &c, n, qi, last, o);
            for (int l = 0; l < n; l++) {
                attn_double(&c, qi[l], last[l], want);
                for (int64_t i = 0; i < hd; i++)
                    cr_assert(fabs(o[l * hd + i] - want[i]) <= 1e-5 * (1 + fabs(want[i])),
                              "%s hd %lld %s: lane %d (last %d) [%lld]: %.9g, want %.9g", name,
                              (long long)hd, f16 ? "f16" : "f32", l, last[l], (long long)i,
                              (double)o[l * hd + i], want[i]);
                /* the same lane alone: the same bits */
                memset(o1, 0xff, (size_t)hd * sizeof *o1);
                run_tile(k, &c, 1, &qi[l], &last[l], o1);
                cr_assert_eq(memcmp(o1, o + l * hd, (size_t)hd * sizeof *o1), 0,
                             "%s hd %lld %s: lane %d of %d (last %d) differs alone", name,
                             (long long)hd, f16 ? "f16" : "f32", l, n, last[l]);
            }
        }
    free(o), free(o1), free(want);
    case_free(&c);
}

/* The recurrence of vec.h for one query, with the table's dot_f32 (on the
 * f16 keys converted), libm's expf, one fused multiply-add per element:
 * what the scalar tile must give bit for bit. */
static void attn_recurrence(const struct attn_case *c, int qi, int32_t last, float *o)
{
    const struct vec_kernels *r = vec_kernels_isa(HR_ISA_SCALAR);
    const float *q = c->q + qi * c->hd;
    float m = -INFINITY, sum = 0.0f;
    for (int64_t i = 0; i < c->hd; i++)
        o[i] = 0.0f;
    for (int32_t j = 0; j <= last; j++) {
        const float *k = c->kf + j * c->stride, *v = c->vf + j * c->stride;
        float s = r->dot_f32(q, k, c->hd);
        s *= 1.0f / sqrtf((float)c->hd);
        float rs = 1.0f, w = 1.0f;
        if (s > m) {
            rs = expf(m - s);
            m = s;
            r->scale_f32(o, rs, c->hd);
        } else {
            w = expf(s - m);
        }
        r->mad_f32(o, v, w, c->hd);
        sum = sum * rs + w;
    }
    r->scale_f32(o, 1.0f / sum, c->hd);
}

Test(vec, attn_scalar_is_the_recurrence)
{
    const struct vec_kernels *r = ref();
    static const int64_t hds[] = {64, 128, 80, 5};
    for (size_t i = 0; i < sizeof hds / sizeof *hds; i++)
        for (int f16 = 0; f16 < 2; f16++) {
            attn_check(r, "scalar", hds[i], f16);
            struct attn_case c;
            case_init(&c, hds[i], 150, f16, 77);
            int32_t last[VEC_ATTN_LANES];
            int qi[VEC_ATTN_LANES];
            lasts_for(r->attn_lanes, 0, 150, last, qi);
            float *o = malloc(VEC_ATTN_LANES * (size_t)hds[i] * sizeof *o);
            float *want = malloc((size_t)hds[i] * sizeof *want);
            cr_assert(o && want);
            run_tile(r, &c, r->attn_lanes, qi, last, o);
            for (int l = 0; l < r->attn_lanes; l++) {
                attn_recurrence(&c, qi[l], last[l], want);
                cr_assert_eq(memcmp(want, o + l * hds[i], (size_t)hds[i] * sizeof *want), 0,
                             "hd %lld %s: lane %d (last %d) is not the recurrence's",
                             (long long)hds[i], f16 ? "f16" : "f32", l, last[l]);
            }
            free(o), free(want);
            case_free(&c);
        }
}

Test(vec, attn_simd_matches_double_and_scalar)
{
    const struct vec_kernels *r = ref();
    static const int64_t hds[] = {64, 128, 80, 5};
    FOR_SIMD_LEVELS(k, isa)
    {
        const char *name = hr_isa_name((enum hr_isa)isa);
        for (size_t i = 0; i < sizeof hds / sizeof *hds; i++) {
            attn_check(k, name, hds[i], false);
            attn_check(k, name, hds[i], true);
        }
        /* against the scalar tile: only the exponential differs (by an ulp
         * at most, in a few weights) */
        for (size_t i = 0; i < sizeof hds / sizeof *hds; i++)
            for (int f16 = 0; f16 < 2; f16++) {
                int64_t hd = hds[i];
                struct attn_case c;
                case_init(&c, hd, 200, f16, 99);
                int n = k->attn_lanes;
                int32_t last[VEC_ATTN_LANES];
                int qi[VEC_ATTN_LANES];
                lasts_for(n, 1, 200, last, qi);
                float *a = malloc((size_t)(n * hd) * sizeof *a),
                      *b = malloc((size_t)(n * hd) * sizeof *b);
                cr_assert(a && b);
                run_tile(r, &c, n, qi, last, a);
                run_tile(k, &c, n, qi, last, b);
                for (int64_t e = 0; e < n * hd; e++)
                    cr_assert(fabsf(a[e] - b[e]) <= 1e-6f * (1 + fabsf(a[e])),
                              "%s hd %lld %s [%lld]: %a vs %a", name, (long long)hd,
                              f16 ? "f16" : "f32", (long long)e, (double)a[e], (double)b[e]);
                free(a), free(b);
                case_free(&c);
            }
    }
}
