/*
 * dispatch.c — builds one kernel table per ISA level and picks the active
 * one (see arch.h). Tables are built once, under pthread_once, and are
 * immutable afterwards, so lookups need no locking.
 */
#include "arch.h"
#include "vec.h"

#include <math.h>

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static struct quant_kernels tables[HR_ISA_COUNT][HR_TYPE_COUNT];
static bool present[HR_TYPE_COUNT];
static enum hr_isa detected, active;
static pthread_once_t once = PTHREAD_ONCE_INIT;

#if defined(__x86_64__) && defined(HEARTH_ARCH_X86)
#include <cpuid.h>

/* CPUID.(7,0):EDX bit 24 AMX-TILE, bit 25 AMX-INT8, and the OS managing the
 * tile state (XCR0 bits 17, 18: XTILECFG, XTILEDATA). */
static bool amx_int8(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !(d & (1u << 24)) || !(d & (1u << 25)))
        return false;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) /* OSXSAVE */
        return false;
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (lo & (3u << 17)) == (3u << 17);
}
#endif

#if defined(__aarch64__) && defined(HEARTH_ARCH_ARM)
#include <sys/auxv.h>
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1 << 20)
#endif
#endif

/* Whether a level belongs to the architecture of this build (scalar always
 * does): only those are detected, built, selectable and handed out. */
static bool native_level(int isa)
{
#if defined(__aarch64__) && defined(HEARTH_ARCH_ARM)
    return isa == HR_ISA_SCALAR || isa >= HR_ISA_NEON;
#else
    return isa < HR_ISA_NEON;
#endif
}

enum hr_isa hr_isa_detect(void)
{
#if defined(__x86_64__) && defined(HEARTH_ARCH_X86)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("fma") &&
        __builtin_cpu_supports("avx2"))
        return amx_int8() && arch_amx_enable() ? HR_ISA_AMX : HR_ISA_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return HR_ISA_AVX2; /* F16C accompanies AVX2 on every CPU that has it */
#elif defined(__aarch64__) && defined(HEARTH_ARCH_ARM)
    /* AdvSIMD is architectural on aarch64; SDOT is optional (ARMv8.2 on) */
    return (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) ? HR_ISA_NEON_DOTPROD : HR_ISA_NEON;
#endif
    return HR_ISA_SCALAR;
}

const char *hr_isa_name(enum hr_isa isa)
{
    static const char *names[HR_ISA_COUNT] = {"scalar", "avx2", "avx512", "amx",
                                               "neon",   "neon-dotprod"};
    return (unsigned)isa < HR_ISA_COUNT ? names[isa] : "?";
}

/* the vec.h tables (below), completed by vec_ops_init in build() */
static struct vec_kernels vec_tables[HR_ISA_COUNT];

static void build(void)
{
    for (uint32_t t = 0; t < HR_TYPE_COUNT; t++) {
        const struct quant_kernels *k = quant_kernels_ref(t);
        present[t] = k != NULL;
        if (k)
            tables[HR_ISA_SCALAR][t] = *k;
    }
    detected = hr_isa_detect();
    for (int isa = HR_ISA_AVX2; isa <= (int)detected; isa++) {
        memcpy(tables[isa], tables[isa - 1], sizeof tables[isa]);
#if defined(__x86_64__) && defined(HEARTH_ARCH_X86)
        if (isa == HR_ISA_AVX2) {
            arch_avx2_legacy_init(tables[isa]);
            arch_avx2_k_init(tables[isa]);
        } else if (isa == HR_ISA_AVX512) {
            arch_avx512_legacy_init(tables[isa]);
            arch_avx512_k_init(tables[isa]);
        } else if (isa == HR_ISA_AMX) {
            arch_amx_legacy_init(tables[isa]);
            arch_amx_k_init(tables[isa]);
        }
#elif defined(__aarch64__) && defined(HEARTH_ARCH_ARM)
        if (isa == HR_ISA_NEON)
            arch_neon_init(tables[isa]);
        else if (isa == HR_ISA_NEON_DOTPROD)
            arch_neon_dotprod_init(tables[isa]);
#endif
    }
    for (int isa = 0; isa <= (int)detected; isa++)
        vec_ops_init(&vec_tables[isa], isa);
    active = detected;
    const char *cap = getenv("HEARTH_ISA");
    if (cap) {
        for (int isa = 0; isa < HR_ISA_COUNT; isa++)
            if (!strcmp(cap, hr_isa_name((enum hr_isa)isa)) && isa < (int)active &&
                native_level(isa))
                active = (enum hr_isa)isa;
    }
}

enum hr_isa hr_isa_active(void)
{
    pthread_once(&once, build);
    return active;
}

const struct quant_kernels *quant_kernels_isa(uint32_t type, enum hr_isa isa)
{
    pthread_once(&once, build);
    if (type >= HR_TYPE_COUNT || !present[type] || (unsigned)isa > (unsigned)detected ||
        !native_level((int)isa))
        return NULL;
    return &tables[isa][type];
}

const struct quant_kernels *quant_kernels(uint32_t type)
{
    return quant_kernels_isa(type, hr_isa_active());
}

/* ---- vec.h primitives ------------------------------------------------------- */

float vec_scalar_dot_f32(const float *a, const float *b, int64_t n)
{
    int64_t np = n & ~(int64_t)63;
    double sum = 0.0;
    if (np) {
        float acc[4][16] = {{0}};
        for (int64_t i = 0; i < np; i += 64)
            for (int j = 0; j < 4; j++)
                for (int l = 0; l < 16; l++)
                    acc[j][l] = fmaf(a[i + 16 * j + l], b[i + 16 * j + l], acc[j][l]);
        float v[16];
        for (int l = 0; l < 16; l++)
            v[l] = (acc[0][l] + acc[2][l]) + (acc[1][l] + acc[3][l]);
        for (int w = 8; w >= 1; w /= 2)
            for (int l = 0; l < w; l++)
                v[l] = v[l] + v[l + w];
        sum = v[0];
    }
    for (int64_t i = np; i < n; i++)
        sum += (double)(a[i] * b[i]);
    return (float)sum;
}

static void scalar_mad_f32(float *y, const float *x, float v, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = fmaf(x[i], v, y[i]);
}

static void scalar_scale_f32(float *y, float v, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] *= v;
}

static void scalar_mad_f16(float *y, const uint16_t *x, float v, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = fmaf(hr_fp16_to_fp32(x[i]), v, y[i]);
}

static struct vec_kernels vec_tables[HR_ISA_COUNT] = {
    [HR_ISA_SCALAR] = {vec_scalar_dot_f32, scalar_mad_f32, scalar_scale_f32, scalar_mad_f16},
#if defined(__x86_64__) && defined(HEARTH_ARCH_X86)
    [HR_ISA_AVX2] = {arch_avx2_dot_f32, arch_avx2_mad_f32, arch_avx2_scale_f32,
                     arch_avx2_mad_f16},
    [HR_ISA_AVX512] = {arch_avx512_dot_f32, arch_avx512_mad_f32, arch_avx512_scale_f32,
                       arch_avx512_mad_f16},
    /* AMX adds matrix tiles only: the vector primitives are AVX-512's */
    [HR_ISA_AMX] = {arch_avx512_dot_f32, arch_avx512_mad_f32, arch_avx512_scale_f32,
                    arch_avx512_mad_f16},
#elif defined(__aarch64__) && defined(HEARTH_ARCH_ARM)
    [HR_ISA_NEON] = {arch_neon_dot_f32, arch_neon_mad_f32, arch_neon_scale_f32, arch_neon_mad_f16},
    [HR_ISA_NEON_DOTPROD] = {arch_neon_dot_f32, arch_neon_mad_f32, arch_neon_scale_f32,
                             arch_neon_mad_f16},
#endif
};

const struct vec_kernels *vec_kernels_isa(int isa)
{
    pthread_once(&once, build);
    if (isa < 0 || isa > (int)detected || !vec_tables[isa].dot_f32)
        return NULL;
    return &vec_tables[isa];
}

const struct vec_kernels *vec_kernels(void)
{
    return vec_kernels_isa((int)hr_isa_active());
}
