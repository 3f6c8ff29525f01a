/*
 * dispatch.c — builds one kernel table per ISA level and picks the active
 * one (see arch.h). Tables are built once, under pthread_once, and are
 * immutable afterwards, so lookups need no locking.
 */
#include "arch.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static struct quant_kernels tables[HR_ISA_COUNT][HR_TYPE_COUNT];
static bool present[HR_TYPE_COUNT];
static enum hr_isa detected, active;
static pthread_once_t once = PTHREAD_ONCE_INIT;

enum hr_isa hr_isa_detect(void)
{
#if defined(__x86_64__) && defined(HEARTH_ARCH_X86)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("fma") &&
        __builtin_cpu_supports("avx2"))
        return HR_ISA_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return HR_ISA_AVX2; /* F16C accompanies AVX2 on every CPU that has it */
#endif
    return HR_ISA_SCALAR;
}

const char *hr_isa_name(enum hr_isa isa)
{
    static const char *names[HR_ISA_COUNT] = {"scalar", "avx2", "avx512"};
    return (unsigned)isa < HR_ISA_COUNT ? names[isa] : "?";
}

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
        }
#endif
    }
    active = detected;
    const char *cap = getenv("HEARTH_ISA");
    if (cap) {
        for (int isa = 0; isa < HR_ISA_COUNT; isa++)
            if (!strcmp(cap, hr_isa_name((enum hr_isa)isa)) && isa < (int)active)
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
    if (type >= HR_TYPE_COUNT || !present[type] || (unsigned)isa > (unsigned)detected)
        return NULL;
    return &tables[isa][type];
}

const struct quant_kernels *quant_kernels(uint32_t type)
{
    return quant_kernels_isa(type, hr_isa_active());
}
