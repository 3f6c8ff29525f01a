/*
 * pack_k.h — the repacked layout of the K-quants Q4_K, Q5_K and Q6_K that
 * the AVX-512 tiles (avx512_k.c: decode and small batches) and the AMX
 * tiles (amx_k.c: prompts) read: one copy, made at load, serves both.
 *
 * Same bytes as the stored rows (no pre-decoded extras), rearranged so that
 * 16 weight rows are computed side by side, row r in int32 lane r of every
 * zmm (as in pack_legacy.h). A panel of 16 rows holds, for each of its nb
 * super-blocks, one record of whole 64-byte vectors, read front to back:
 *
 *   Q4_K (2304 bytes): qs v[0..31]   lane r = qs[4g .. 4g+3] of row r
 *                      sc v[32..34]  lane r = scales[4k .. 4k+3]
 *                      dm v[35]      lane r = d | dmin << 16 (fp16 bits)
 *   Q5_K (2816 bytes): qs v[0..31], qh v[32..39] (lane r = qh[4k .. 4k+3]),
 *                      sc v[40..42], dm v[43]
 *   Q6_K (3328 bytes): ql v[0..31], qh v[32..47], sc v[48..51] (int8 scales)
 *
 * and, for Q6_K only, a second stream after the nb records: nb × 32 bytes,
 * the 16 fp16 d of each super-block. Each dword of a qs/ql vector holds 4
 * consecutive quant bytes of one row, i.e. the low nibbles are 4
 * consecutive elements (and so are the high ones): the "VNNI" layout, in
 * which a vector is a 16-column row of an AMX B tile and a vpdpbusd
 * operand against a broadcast activation dword. Rows past n_out are zero
 * (d = 0; their results are never stored). The panel size is rounded up to
 * 64 bytes; panel p starts at p × that size.
 *
 * Plain C (no intrinsics): included by files built for different ISAs.
 */
#ifndef HEARTH_CORE_ARCH_X86_PACK_K_H
#define HEARTH_CORE_ARCH_X86_PACK_K_H

#include "../../quant_blocks.h"
#include "../../quant_impl.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define PKK_ROWS 16 /* weight rows per panel: one per int32 lane of a zmm */

/* Vector indices inside a record (units of 64 bytes), by type. */
static inline int pkk_qh(uint32_t t) /* Q5_K/Q6_K */
{
    (void)t;
    return 32;
}

static inline int pkk_sc(uint32_t t)
{
    return t == HR_TYPE_Q4_K ? 32 : t == HR_TYPE_Q5_K ? 40 : 48;
}

static inline int pkk_dm(uint32_t t) /* Q4_K/Q5_K */
{
    return t == HR_TYPE_Q4_K ? 35 : 43;
}

static inline size_t pkk_rec(uint32_t t)
{
    return t == HR_TYPE_Q4_K ? 2304 : t == HR_TYPE_Q5_K ? 2816 : 3328;
}

static inline size_t pkk_panel(uint32_t t, int64_t nb)
{
    size_t sz = (size_t)nb * (pkk_rec(t) + (t == HR_TYPE_Q6_K ? 32 : 0));
    return (sz + 63) & ~(size_t)63;
}

static inline size_t pkk_size(uint32_t t, int64_t n_in, int64_t n_out)
{
    return (size_t)((n_out + PKK_ROWS - 1) / PKK_ROWS) * pkk_panel(t, n_in / QK_K);
}

/* Copies n dwords from src (consecutive) to dst lane r of n consecutive vectors. */
static inline void pkk_lanes(uint8_t *dst, int r, const uint8_t *src, int n)
{
    for (int i = 0; i < n; i++)
        memcpy(dst + 64 * (size_t)i + 4 * (size_t)r, src + 4 * (size_t)i, 4);
}

static inline void pkk_repack(uint32_t t, const void *src, void *dst, int64_t n_in, int64_t n_out)
{
    const int64_t nb = n_in / QK_K;
    const size_t bs = t == HR_TYPE_Q4_K ? sizeof(struct block_q4_K)
                      : t == HR_TYPE_Q5_K ? sizeof(struct block_q5_K)
                                          : sizeof(struct block_q6_K);
    const size_t rec = pkk_rec(t), row = (size_t)nb * bs;
    for (int64_t p0 = 0; p0 < n_out; p0 += PKK_ROWS) {
        uint8_t *pan = (uint8_t *)dst + (size_t)(p0 / PKK_ROWS) * pkk_panel(t, nb);
        memset(pan, 0, pkk_panel(t, nb)); /* missing rows and the tail padding */
        for (int r = 0; r < PKK_ROWS && p0 + r < n_out; r++) {
            const uint8_t *b = (const uint8_t *)src + (size_t)(p0 + r) * row;
            for (int64_t i = 0; i < nb; i++, b += bs) {
                uint8_t *v = pan + (size_t)i * rec;
                if (t == HR_TYPE_Q6_K) {
                    pkk_lanes(v, r, b + offsetof(struct block_q6_K, ql), 32);
                    pkk_lanes(v + 64 * pkk_qh(t), r, b + offsetof(struct block_q6_K, qh), 16);
                    pkk_lanes(v + 64 * pkk_sc(t), r, b + offsetof(struct block_q6_K, scales), 4);
                    memcpy(pan + (size_t)nb * rec + 32 * (size_t)i + 2 * (size_t)r,
                           b + offsetof(struct block_q6_K, d), 2);
                } else if (t == HR_TYPE_Q5_K) {
                    pkk_lanes(v, r, b + offsetof(struct block_q5_K, qs), 32);
                    pkk_lanes(v + 64 * pkk_qh(t), r, b + offsetof(struct block_q5_K, qh), 8);
                    pkk_lanes(v + 64 * pkk_sc(t), r, b + offsetof(struct block_q5_K, scales), 3);
                    pkk_lanes(v + 64 * pkk_dm(t), r, b, 1);
                } else {
                    pkk_lanes(v, r, b + offsetof(struct block_q4_K, qs), 32);
                    pkk_lanes(v + 64 * pkk_sc(t), r, b + offsetof(struct block_q4_K, scales), 3);
                    pkk_lanes(v + 64 * pkk_dm(t), r, b, 1);
                }
            }
        }
    }
}

#endif
