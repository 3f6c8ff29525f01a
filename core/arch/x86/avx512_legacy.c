/* avx512_legacy.c — SIMD kernels (in progress): registers nothing yet. */
#include "../arch.h"

void arch_avx512_legacy_init(struct quant_kernels tab[HR_TYPE_COUNT])
{
    (void)tab;
}
