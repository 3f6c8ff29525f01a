/*
 * amx_common.h — what the AMX tile kernels (amx_legacy.c, amx_k.c) share:
 * the tile configuration record, a compiler fence for gcc's tile asm, and
 * one per-thread record of which configuration is loaded.
 *
 * A thread's tile configuration is loaded once and kept: LDTILECFG costs
 * hundreds of cycles and zeroes the tiles, and the state is saved across
 * context switches like any register. Each kernel owns a static, immutable
 * configuration and calls amx_use(&its_cfg) on entry, which loads it only
 * when the thread's current one is another — so kernels that alternate in
 * a thread (a Q8_0 product, then a Q4_K one) pay one load per switch and
 * nothing otherwise. Code outside the kernels that loads its own
 * configuration must put the previous one back (cli/limits.c does).
 */
#ifndef HEARTH_CORE_ARCH_X86_AMX_COMMON_H
#define HEARTH_CORE_ARCH_X86_AMX_COMMON_H

#include <immintrin.h>
#include <stdint.h>

/* gcc's tile-load and ldtilecfg asm do not declare the memory they read:
 * stores to a buffer a tile load reads must be fenced for the compiler */
#define MEMORY_BARRIER() __asm__ volatile("" ::: "memory")

/* The 64-byte tile configuration (palette 1), as LDTILECFG reads it. */
struct tilecfg {
    uint8_t palette, start_row;
    uint8_t reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
};

/* The configuration this thread has loaded (defined in amx_legacy.c). */
extern _Thread_local const struct tilecfg *amx_loaded;

static inline __attribute__((always_inline)) void amx_use(const struct tilecfg *cfg)
{
    if (amx_loaded == cfg) return;
    MEMORY_BARRIER();
    _tile_loadconfig(cfg);
    amx_loaded = cfg;
}

#endif
