/*
 * neon_dotprod.c — the neon-dotprod level (HR_ISA_NEON_DOTPROD: ARMv8.2
 * dotprod, HWCAP_ASIMDDP): the integer dot products and tiles of
 * neon_qdot.h compiled with SDOT (vdotq_s32) as their 16-byte product.
 * Registered by arch_neon_dotprod_init over the NEON table, whose
 * converters and float kernels it keeps.
 *
 * ARM. Built only for aarch64 hosts, with -march=armv8.2-a+dotprod
 * -ffp-contract=off, and only called after getauxval(AT_HWCAP) reported
 * ASIMDDP (core/arch/dispatch.c); results are the scalar reference's bit for
 * bit, as at the NEON level (tests/arm/test_neon.c, run under qemu-user).
 */
#if !defined(__ARM_FEATURE_DOTPROD)
#error "neon_dotprod.c must be built with +dotprod (core/meson.build)"
#endif

#include "neon_qdot.h"

void arch_neon_dotprod_init(struct quant_kernels tab[HR_TYPE_COUNT])
{
    qdot_register(tab);
}
