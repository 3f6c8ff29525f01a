/*
 * train_vec.h — the vector idiom of the training kernels (train_ops.c,
 * train_mm.c): GCC vector extensions of 16 floats inside functions compiled
 * for several ISA levels (target_clones, as forward.c does), because -O2
 * vectorizes only loops whose trip count it knows.
 *
 * Loads and stores go through a may_alias, 4-byte-aligned vector type
 * (unaligned moves). Helpers take pointers, never vectors by value: a
 * 64-byte vector argument draws GCC's ABI note (-Wpsabi) on the levels
 * without AVX-512 even when every helper is inlined, so the files that use
 * this header also silence -Wpsabi (no vector crosses a real call).
 *
 * The files that use it also turn on the contraction of a·b + c into fused
 * multiply-adds (#pragma GCC optimize("fp-contract=fast"), which -std=c11
 * turns off): the kernels are chains of multiply-adds, and a fused one is
 * one instruction instead of two with one rounding instead of two. The
 * results then depend on the ISA level (the levels without FMA round
 * twice), but on one machine every run computes the same.
 */
#ifndef HEARTH_CORE_TRAIN_VEC_H
#define HEARTH_CORE_TRAIN_VEC_H

#include <stdint.h>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__gnu_linux__)
#define TRAIN_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define TRAIN_CLONES
#endif

#define ALWAYS_INLINE __attribute__((always_inline)) static inline

typedef float vf __attribute__((vector_size(64)));
typedef int32_t vi __attribute__((vector_size(64)));
typedef float vfu __attribute__((vector_size(64), aligned(4), may_alias));
#define VL 16
#define VLD(p) ((vf)(*(const vfu *)(const void *)(p)))
#define VST(p, v) (*(vfu *)(void *)(p) = (v))
#define VSEL(m, x, y) ((vf)(((vi)(x) & (m)) | ((vi)(y) & ~(m))))

#endif
