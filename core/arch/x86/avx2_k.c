/* avx2_k.c — SIMD kernels (in progress): registers nothing yet. */
#include "../arch.h"

void arch_avx2_k_init(struct quant_kernels tab[HR_TYPE_COUNT])
{
    (void)tab;
}
