/*
 * quant_blocks.h — one struct per block format of the quantized tensor types
 * (FORMATS.md §2.2, §2.3), with its size asserted so a layout mistake fails
 * the build instead of corrupting every tensor.
 *
 * A row of n elements of a block type is n / QK blocks laid end to end with
 * no padding; block b covers elements [b·QK, (b+1)·QK). Half-precision fields
 * (`d`, `m`, `dmin`, `s`) hold IEEE binary16 bit patterns (little-endian, as
 * on every host hearth runs on); convert with quant_f16_to_f32. Every struct
 * has an alignment of at most 2, except block_q8_K (4, for its fp32 `d`):
 * block sizes are all even, so any tensor starting on an even address keeps
 * every block aligned; Q8_K only ever lives in buffers the engine allocates.
 *
 * Within-block layouts (which element lives in which nibble or bit) are
 * described next to each struct; the kernels in quant.c / quant_k.c are the
 * executable form of those comments.
 */
#ifndef HEARTH_CORE_QUANT_BLOCKS_H
#define HEARTH_CORE_QUANT_BLOCKS_H

#include <assert.h>
#include <stdint.h>

#include "quant.h" /* QK_K */

#define QK4_0 32
#define QK4_1 32
#define QK5_0 32
#define QK5_1 32
#define QK8_0 32
#define QK8_1 32

/* Legacy 4-bit: x = (n − 8)·d. qs[i] holds element i in its low nibble and
 * element i+16 in its high nibble. */
struct block_q4_0 {
    uint16_t d;
    uint8_t qs[QK4_0 / 2];
};
static_assert(sizeof(struct block_q4_0) == 18, "block_q4_0 must be 18 bytes");

/* x = n·d + m; nibbles as Q4_0. */
struct block_q4_1 {
    uint16_t d;
    uint16_t m;
    uint8_t qs[QK4_1 / 2];
};
static_assert(sizeof(struct block_q4_1) == 20, "block_q4_1 must be 20 bytes");

/* x = (q − 16)·d with q = nibble | bit e of qh (little-endian u32) << 4. */
struct block_q5_0 {
    uint16_t d;
    uint8_t qh[4];
    uint8_t qs[QK5_0 / 2];
};
static_assert(sizeof(struct block_q5_0) == 22, "block_q5_0 must be 22 bytes");

/* x = q·d + m; q as Q5_0. */
struct block_q5_1 {
    uint16_t d;
    uint16_t m;
    uint8_t qh[4];
    uint8_t qs[QK5_1 / 2];
};
static_assert(sizeof(struct block_q5_1) == 24, "block_q5_1 must be 24 bytes");

/* x = qs[e]·d. Also the activation format of Q4_0/Q5_0/Q8_0 dot products. */
struct block_q8_0 {
    uint16_t d;
    int8_t qs[QK8_0];
};
static_assert(sizeof(struct block_q8_0) == 34, "block_q8_0 must be 34 bytes");

/* Activations for Q4_1/Q5_1: Q8_0 plus s = fp16(d·Σqs), d the fp32 scale. */
struct block_q8_1 {
    uint16_t d;
    uint16_t s;
    int8_t qs[QK8_1];
};
static_assert(sizeof(struct block_q8_1) == 36, "block_q8_1 must be 36 bytes");

/* 2-bit super-block: 16 sub-blocks of 16. scales[j]: low nibble = scale,
 * high nibble = min of sub-block j; x = d·(S&15)·q − dmin·(S>>4).
 * The 2-bit value of element e (h = e/128, g = (e%128)/32, l = e%32) is bit
 * pair g of qs[32h + l]. */
struct block_q2_K {
    uint8_t scales[QK_K / 16];
    uint8_t qs[QK_K / 4];
    uint16_t d;
    uint16_t dmin;
};
static_assert(sizeof(struct block_q2_K) == 84, "block_q2_K must be 84 bytes");

/* 3-bit super-block: the low 2 bits as Q2_K; the high bit of element e is bit
 * e/32 of hmask[e%32] (set means "no −4"); 16 6-bit signed scales (−32..31)
 * packed in 12 bytes (see quant_k.c); x = d·sc_j·q, q in −4..3. */
struct block_q3_K {
    uint8_t hmask[QK_K / 8];
    uint8_t qs[QK_K / 4];
    uint8_t scales[12];
    uint16_t d;
};
static_assert(sizeof(struct block_q3_K) == 110, "block_q3_K must be 110 bytes");

/* 4-bit super-block: 8 sub-blocks of 32 with 6-bit scale and min packed in
 * 12 bytes (get_scale_min in quant_k.c); each 32-byte group of qs holds 64
 * elements: the first 32 in the low nibbles, the next 32 in the high ones.
 * x = d·sc_j·n − dmin·m_j. */
struct block_q4_K {
    uint16_t d;
    uint16_t dmin;
    uint8_t scales[12];
    uint8_t qs[QK_K / 2];
};
static_assert(sizeof(struct block_q4_K) == 144, "block_q4_K must be 144 bytes");

/* Q4_K plus a 5th bit: bit e/32 of qh[e%32]. */
struct block_q5_K {
    uint16_t d;
    uint16_t dmin;
    uint8_t scales[12];
    uint8_t qh[QK_K / 8];
    uint8_t qs[QK_K / 2];
};
static_assert(sizeof(struct block_q5_K) == 176, "block_q5_K must be 176 bytes");

/* 6-bit super-block: 16 sub-blocks of 16 with int8 scales; x = d·sc·(q − 32).
 * Element e (h = e/128, g = (e%128)/32, l = e%32): low 4 bits in
 * ql[64h + l + 32·(g&1)] (low nibble for g < 2, high for g >= 2), high 2 bits
 * are bit pair g of qh[32h + l]. */
struct block_q6_K {
    uint8_t ql[QK_K / 2];
    uint8_t qh[QK_K / 4];
    int8_t scales[QK_K / 16];
    uint16_t d;
};
static_assert(sizeof(struct block_q6_K) == 210, "block_q6_K must be 210 bytes");

/* Activations for the K-quant dot products: fp32 d (may be negative), and the
 * sum of every 16 quants for the min terms. */
struct block_q8_K {
    float d;
    int8_t qs[QK_K];
    int16_t bsums[QK_K / 16];
};
static_assert(sizeof(struct block_q8_K) == 292, "block_q8_K must be 292 bytes");

#endif
