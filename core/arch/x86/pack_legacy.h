/*
 * pack_legacy.h — the repacked layout of the legacy block quants (Q4_0,
 * Q4_1, Q5_0, Q5_1, Q8_0) that the AVX-512 tiles (avx512_legacy.c) and the
 * AMX tiles (amx_legacy.c) read: one copy made at load serves both, so
 * decode (VNNI) and prompt processing (AMX) share the same bytes.
 *
 * Plain C (no intrinsics): included by files built for different ISAs.
 */
#ifndef HEARTH_CORE_ARCH_X86_PACK_LEGACY_H
#define HEARTH_CORE_ARCH_X86_PACK_LEGACY_H

#include "x86_common.h"

#define PK_ROWS 16 /* weight rows per panel: one per int32 lane of a zmm */

/* ---- repacked weights ---------------------------------------------------------------
 *
 * A panel of 16 weight rows (rows r0 .. r0+15) holds, for each of its nb
 * blocks j, exactly what the tile loads for the block, in three sequential
 * streams (each 64-byte aligned):
 *   qs: nb × QB bytes: 64-byte vectors v[g], lane r = dword g of row r's
 *       qs (QB = 64 × (qs bytes / 4): Q8_0 8 vectors, the 4-bit kinds 4);
 *       Q4_0 stores both nibbles as q XOR 8 (a nibble in a byte's high
 *       half then reads as 16·(q − 8) in int8);
 *   qh: nb × 64 bytes (Q5_0/Q5_1): lane r = row r's qh word;
 *   dm: nb × 32 bytes, the 16 fp16 d (Q4_1/Q5_1: 64 bytes, d | m << 16).
 * Rows past n_out are zero (d = 0, results never stored). The panel size is
 * rounded up to 64 bytes; panel p starts at p × that size. */
X86_INLINE size_t pk_qs(enum qkind k)
{
    return k == K_Q8_0 ? 512 : 256;
}

X86_INLINE size_t pk_dm(enum qkind k)
{
    return has_m(k) ? 64 : 32;
}

X86_INLINE size_t pk_panel(enum qkind k, int64_t nb)
{
    size_t sz = (size_t)nb * (pk_qs(k) + (has_qh(k) ? 64 : 0) + pk_dm(k));
    return (sz + 63) & ~(size_t)63;
}

X86_INLINE size_t pk_size(enum qkind k, int64_t n_in, int64_t n_out)
{
    return (size_t)((n_out + PK_ROWS - 1) / PK_ROWS) * pk_panel(k, n_in / 32);
}

X86_INLINE void pk_repack(enum qkind k, const void *src, void *dst, int64_t n_in, int64_t n_out)
{
    const int64_t nb = n_in / 32;
    const size_t wb = w_bytes(k), row = (size_t)nb * wb, nq = pk_qs(k) / 64;
    const size_t qh0 = (size_t)nb * pk_qs(k), dm0 = qh0 + (has_qh(k) ? (size_t)nb * 64 : 0);
    for (int64_t p0 = 0; p0 < n_out; p0 += PK_ROWS) {
        uint8_t *pan = (uint8_t *)dst + (size_t)(p0 / PK_ROWS) * pk_panel(k, nb);
        if (n_out - p0 < PK_ROWS) memset(pan, 0, pk_panel(k, nb));
        for (int r = 0; r < PK_ROWS && p0 + r < n_out; r++) {
            const uint8_t *b = (const uint8_t *)src + (size_t)(p0 + r) * row;
            for (int64_t j = 0; j < nb; j++, b += wb) {
                uint8_t *q = pan + (size_t)j * pk_qs(k) + 4 * (size_t)r;
                for (size_t g = 0; g < nq; g++) {
                    memcpy(q + 64 * g, b + w_qs(k) + 4 * g, 4);
                    if (k == K_Q4_0) /* both nibbles stored as q XOR 8 */
                        for (int i = 0; i < 4; i++)
                            q[64 * g + (size_t)i] ^= 0x88;
                }
                if (has_qh(k)) memcpy(pan + qh0 + (size_t)j * 64 + 4 * (size_t)r, b + w_qh(k), 4);
                memcpy(pan + dm0 + (size_t)j * pk_dm(k) + pk_dm(k) / 16 * (size_t)r, b,
                       pk_dm(k) / 16);
            }
        }
        if (n_out - p0 >= PK_ROWS) { /* the tail padding of a full panel */
            size_t used = dm0 + (size_t)nb * pk_dm(k);
            memset(pan + used, 0, pk_panel(k, nb) - used);
        }
    }
}

#endif
