/*
 * vec.h — small f32 vector primitives of the attention inner loops, chosen
 * per ISA like the quant kernels (arch.h).
 *
 * dot_f32 sums in the order of the reference's ggml_vec_dot_f32 on an
 * AVX-512 build — 64 elements per step into 4×16 lanes with fused
 * multiply-adds, the 4 vectors folded (0+2, 1+3, then 0+1), the 16 lanes
 * folded by halves, the tail (n mod 64) added in double — so every path
 * returns the same bits, and the same bits as the reference. mad_f32 is
 * y += x·v with one fused multiply-add per element, scale_f32 is y *= v;
 * mad_f16 is mad_f32 of x given as IEEE binary16 bit patterns (exact
 * conversion), also the same bits on every path.
 */
#ifndef HEARTH_CORE_VEC_H
#define HEARTH_CORE_VEC_H

#include <stdint.h>

struct vec_kernels {
    float (*dot_f32)(const float *a, const float *b, int64_t n);
    void (*mad_f32)(float *y, const float *x, float v, int64_t n);
    void (*scale_f32)(float *y, float v, int64_t n);
    void (*mad_f16)(float *y, const uint16_t *x, float v, int64_t n);
};

/* For the active ISA (see hr_isa_active). Borrowed, static. */
const struct vec_kernels *vec_kernels(void);
/* For a given ISA level (<= hr_isa_detect()), for tests; NULL otherwise. */
const struct vec_kernels *vec_kernels_isa(int isa);

/* per-ISA implementations (core/arch/x86/avx*_vec.c) */
float arch_avx2_dot_f32(const float *a, const float *b, int64_t n);
void arch_avx2_mad_f32(float *y, const float *x, float v, int64_t n);
void arch_avx2_scale_f32(float *y, float v, int64_t n);
void arch_avx2_mad_f16(float *y, const uint16_t *x, float v, int64_t n);
float arch_avx512_dot_f32(const float *a, const float *b, int64_t n);
void arch_avx512_mad_f32(float *y, const float *x, float v, int64_t n);
void arch_avx512_scale_f32(float *y, float v, int64_t n);
void arch_avx512_mad_f16(float *y, const uint16_t *x, float v, int64_t n);
/* aarch64, both NEON levels (core/arch/arm/neon_vec.c) */
float arch_neon_dot_f32(const float *a, const float *b, int64_t n);
void arch_neon_mad_f32(float *y, const float *x, float v, int64_t n);
void arch_neon_scale_f32(float *y, float v, int64_t n);
void arch_neon_mad_f16(float *y, const uint16_t *x, float v, int64_t n);

#endif
