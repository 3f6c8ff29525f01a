/*
 * vec_ops.c — the scalar reference of the forward pass's vec.h ops
 * (elementwise ops and attention tiles) and the hook that completes each
 * level's vec.h table with them or with that level's SIMD versions
 * (core/arch/x86/avx*_vec.c, avx*_attn.c).
 *
 * The reference is plain C in the order vec.h states; the SIMD versions keep
 * the same order of every sum and differ only where vec.h says (the
 * exponential, the order of rmsnorm's double sum, the lane width).
 */
#include "arch.h"
#include "vec.h"

#include "../quant_impl.h"

#include <math.h>

static void scalar_add_f32(float *y, const float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] += x[i];
}

static void scalar_rmsnorm_f32(float *y, const float *x, const float *w, int64_t n, float eps)
{
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++)
        sum += (double)(x[i] * x[i]);
    float mean = (float)(sum / (double)n);
    float scale = 1.0f / sqrtf(mean + eps);
    for (int64_t i = 0; i < n; i++)
        y[i] = (x[i] * scale) * w[i];
}

static void scalar_exp_f32(float *y, const float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = expf(x[i]);
}

static void scalar_swiglu_f32(float *g, const float *u, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

static void scalar_rope_f32(float *x, const float *cs, const float *sn, int64_t n_half, bool neox)
{
    for (int64_t i = 0; i < n_half; i++) {
        int64_t i0 = neox ? i : 2 * i, i1 = neox ? i + n_half : 2 * i + 1;
        float x0 = x[i0], x1 = x[i1];
        x[i0] = x0 * cs[i] - x1 * sn[i];
        x[i1] = x0 * sn[i] + x1 * cs[i];
    }
}

static void scalar_f32_to_f16(uint16_t *y, const float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = quant_f32_to_f16(x[i]);
}

/* The reference tile: lane by lane, key by key (vec.h states the
 * recurrence); an f16 block of keys is converted into scratch once. */
static void scalar_attn_tile(const struct vec_attn *a)
{
    const int64_t hd = a->hd;
    float *kf = a->scratch + 4 * VEC_ATTN_KB * VEC_ATTN_LANES + VEC_ATTN_LANES;
    float *vf = kf + VEC_ATTN_KB * hd;
    float m_run[VEC_ATTN_LANES], s_run[VEC_ATTN_LANES];
    int32_t n_keys = 0;
    for (int l = 0; l < a->n; l++) {
        m_run[l] = -INFINITY;
        s_run[l] = 0.0f;
        for (int64_t i = 0; i < hd; i++)
            a->o[l][i] = 0.0f;
        if (a->last[l] + 1 > n_keys) n_keys = a->last[l] + 1;
    }
    for (int32_t b0 = 0; b0 < n_keys; b0 += VEC_ATTN_KB) {
        int32_t b1 = b0 + VEC_ATTN_KB < n_keys ? b0 + VEC_ATTN_KB : n_keys;
        const float *kr[VEC_ATTN_KB], *vr[VEC_ATTN_KB];
        for (int32_t j = b0; j < b1; j++) {
            size_t off = (size_t)(j * a->stride);
            if (a->f16) {
                float *kd = kf + (j - b0) * hd, *vd = vf + (j - b0) * hd;
                for (int64_t i = 0; i < hd; i++) {
                    kd[i] = quant_f16_to_f32(((const uint16_t *)a->k)[off + i]);
                    vd[i] = quant_f16_to_f32(((const uint16_t *)a->v)[off + i]);
                }
                kr[j - b0] = kd, vr[j - b0] = vd;
            } else {
                kr[j - b0] = (const float *)a->k + off;
                vr[j - b0] = (const float *)a->v + off;
            }
        }
        for (int l = 0; l < a->n; l++) {
            int32_t je = a->last[l] + 1 < b1 ? a->last[l] + 1 : b1;
            float *o = a->o[l];
            for (int32_t j = b0; j < je; j++) {
                const float *k = kr[j - b0], *v = vr[j - b0];
                float s = vec_scalar_dot_f32(a->q[l], k, hd) * a->scale;
                float m_old = m_run[l], r = 1.0f, w = 1.0f;
                if (s > m_old) {
                    m_run[l] = s;
                    r = expf(m_old - s);
                    for (int64_t i = 0; i < hd; i++)
                        o[i] *= r;
                } else {
                    w = expf(s - m_old);
                }
                for (int64_t i = 0; i < hd; i++)
                    o[i] = fmaf(v[i], w, o[i]);
                s_run[l] = s_run[l] * r + w;
            }
        }
    }
    for (int l = 0; l < a->n; l++) {
        float inv = s_run[l] == 0.0f ? 0.0f : 1.0f / s_run[l];
        for (int64_t i = 0; i < hd; i++)
            a->o[l][i] *= inv;
    }
}

void vec_ops_init(struct vec_kernels *k, int isa)
{
    struct vec_kernels s = {
        .add_f32 = scalar_add_f32,
        .rmsnorm_f32 = scalar_rmsnorm_f32,
        .exp_f32 = scalar_exp_f32,
        .swiglu_f32 = scalar_swiglu_f32,
        .rope_f32 = scalar_rope_f32,
        .f32_to_f16 = scalar_f32_to_f16,
        .attn_tile = scalar_attn_tile,
        .attn_lanes = VEC_ATTN_LANES,
    };
#if defined(__x86_64__) && defined(HEARTH_ARCH_X86)
    /* an x86 build builds x86 levels only: every one above AVX-512 (AMX)
     * adds matrix tiles, its vector ops are AVX-512's */
    if (isa == HR_ISA_AVX2)
        s = (struct vec_kernels){
            .add_f32 = arch_avx2_add_f32,
            .rmsnorm_f32 = arch_avx2_rmsnorm_f32,
            .exp_f32 = arch_avx2_exp_f32,
            .swiglu_f32 = arch_avx2_swiglu_f32,
            .rope_f32 = arch_avx2_rope_f32,
            .f32_to_f16 = arch_avx2_f32_to_f16,
            .attn_tile = arch_avx2_attn_tile,
            .attn_lanes = 8,
        };
    else if (isa >= HR_ISA_AVX512)
        s = (struct vec_kernels){
            .add_f32 = arch_avx512_add_f32,
            .rmsnorm_f32 = arch_avx512_rmsnorm_f32,
            .exp_f32 = arch_avx512_exp_f32,
            .swiglu_f32 = arch_avx512_swiglu_f32,
            .rope_f32 = arch_avx512_rope_f32,
            .f32_to_f16 = arch_avx512_f32_to_f16,
            .attn_tile = arch_avx512_attn_tile,
            .attn_lanes = 16,
        };
#else
    (void)isa;
#endif
#define FILL(f)                                                                                    \
    if (!k->f) k->f = s.f
    FILL(add_f32);
    FILL(rmsnorm_f32);
    FILL(exp_f32);
    FILL(swiglu_f32);
    FILL(rope_f32);
    FILL(f32_to_f16);
    if (!k->attn_tile) {
        k->attn_tile = s.attn_tile;
        k->attn_lanes = s.attn_lanes;
    }
#undef FILL
}
