/*
 * arch.h — run-time selection of SIMD kernels (STYLE.md convention 11).
 *
 * Every tensor type has scalar reference kernels (core/quant.c,
 * core/quant_k.c). Faster versions live under core/arch/<isa>/, each file
 * compiled with its own target flags, and register themselves by overriding
 * entries of a kernel table that starts as a copy of the reference one. The
 * table for the active ISA is built once, on first use, from the CPU's
 * features (cpuid; on aarch64 the auxiliary vector's HWCAP), optionally
 * capped by the environment variable HEARTH_ISA=scalar|avx2|avx512|amx or,
 * on aarch64, neon|neon-dotprod (for tests of every dispatch path and for
 * comparing speed).
 *
 * Every SIMD kernel must agree with the reference: activation quantizers bit
 * for bit, integer dot products exactly up to the order of the final float
 * sums (tests/test_simd.c states the limits).
 */
#ifndef HEARTH_CORE_ARCH_H
#define HEARTH_CORE_ARCH_H

#include "../quant.h"

#include <stdbool.h>

enum hr_isa {
    HR_ISA_SCALAR = 0,
    HR_ISA_AVX2 = 1,   /* AVX2 + FMA + F16C */
    HR_ISA_AVX512 = 2, /* AVX-512 F/BW/VL/DQ + VNNI (+ BF16 when present) */
    HR_ISA_AMX = 3,    /* AVX-512 + AMX-TILE/AMX-INT8, the kernel permitting the tile
                          state (arch_prctl ARCH_REQ_XCOMP_PERM): prompt tiles on AMX */
    /* aarch64 levels come after the x86 ones: a build only ever detects,
     * builds and selects the levels of its own architecture, plus scalar. */
    HR_ISA_NEON = 4,         /* AdvSIMD, every aarch64 CPU (core/arch/arm/) */
    HR_ISA_NEON_DOTPROD = 5, /* + SDOT (ARMv8.2 dotprod, HWCAP_ASIMDDP) */
    HR_ISA_COUNT
};

/* The best ISA this CPU supports (ignores HEARTH_ISA). */
enum hr_isa hr_isa_detect(void);
/* The ISA whose kernels quant_kernels() returns: hr_isa_detect() capped by
 * HEARTH_ISA. */
enum hr_isa hr_isa_active(void);
const char *hr_isa_name(enum hr_isa isa);

/* Kernels of `type` for a given ISA level (which must not exceed
 * hr_isa_detect()); NULL when the type has none. Borrowed, static. */
const struct quant_kernels *quant_kernels_isa(uint32_t type, enum hr_isa isa);

/* Registration hooks of the per-ISA files: each overrides the entries it
 * implements in `tab` (indexed by type id), which holds the kernels of the
 * level below. Defined only where built (x86-64). */
void arch_avx2_legacy_init(struct quant_kernels tab[HR_TYPE_COUNT]);
void arch_avx2_k_init(struct quant_kernels tab[HR_TYPE_COUNT]);
void arch_avx512_legacy_init(struct quant_kernels tab[HR_TYPE_COUNT]);
void arch_avx512_k_init(struct quant_kernels tab[HR_TYPE_COUNT]);
/* aarch64 (core/arch/arm/): the NEON level registers every kernel it has;
 * the dotprod level then overrides the integer products. */
void arch_neon_init(struct quant_kernels tab[HR_TYPE_COUNT]);
void arch_neon_dotprod_init(struct quant_kernels tab[HR_TYPE_COUNT]);
void arch_amx_legacy_init(struct quant_kernels tab[HR_TYPE_COUNT]);
void arch_amx_k_init(struct quant_kernels tab[HR_TYPE_COUNT]);
/* Asks Linux for the AMX tile state (once per process); true when granted. */
bool arch_amx_enable(void);

#endif
