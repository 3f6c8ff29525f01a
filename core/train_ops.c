/*
 * train_ops.c — the operations of the llama / qwen2 / qwen3 graphs that are
 * not matrix products, forward and backward, for training (train.h).
 *
 * The forward versions compute what core/forward.c computes (same formulas
 * and orders for RMSNorm and RoPE; attention with a plain two-pass softmax
 * instead of the online one, so results differ from inference in the last
 * bits only). The backward versions take the gradient of the loss with
 * respect to an operation's output and give it with respect to the input;
 * the frozen weights (norm weights) get no gradient.
 *
 * Attention backward, for query t, head h, keys j of its example:
 *   P_j = exp(s_j − lse), s_j = scale·q·k_j, o = Σ_j P_j v_j
 *   dP_j = dout·v_j,  D = Σ_j P_j dP_j = dout·o,  ds_j = P_j (dP_j − D)
 *   dq = scale Σ_j ds_j k_j,  dk_j += scale ds_j q,  dv_j += P_j dout.
 * dq is a sum over keys (one task per query row), dk and dv sums over
 * queries: a second pass with one task per key row recomputes P and ds, so
 * that each output has one writer and a fixed order (no atomics, no per
 * thread copies), at the price of computing the scores twice.
 *
 * The hot loops are vector code (train_vec.h). Each output element is
 * summed in the same order whether it falls in a vector or in a scalar
 * tail, so results do not depend on where a row starts.
 */
#include "train.h"

#include "pool.h"
#include "train_vec.h"

#include <math.h>
#include <string.h>

/* see train_vec.h: every vector helper is inlined, so no ABI is at stake; and
 * multiply-adds are fused where the ISA level has them */
#pragma GCC diagnostic ignored "-Wpsabi"
#pragma GCC optimize("fp-contract=fast")

#define HR_CLONES TRAIN_CLONES

/* Cephes' expf: x = n·ln2 + r, |r| <= ln2/2, e^r by a degree-6 polynomial,
 * 2^n put into the exponent bits; 0 below −87, clamped above 88.37; the
 * vector and scalar versions do the same operations. Rounding to the
 * nearest integer by adding and subtracting 1.5·2^23. */
#define EXP_HI 88.3762626647949f
#define EXP_LO -87.0f
#define EXP_MAGIC 12582912.0f

ALWAYS_INLINE float fexp(float x)
{
    float xc = x < EXP_HI ? x : EXP_HI;
    xc = xc > EXP_LO ? xc : EXP_LO;
    float fx = (xc * 1.44269504088896341f + EXP_MAGIC) - EXP_MAGIC;
    float r = (xc - fx * 0.693359375f) + fx * 2.12194440e-4f;
    float p = 1.9875691500E-4f;
    p = p * r + 1.3981999507E-3f;
    p = p * r + 8.3334519073E-3f;
    p = p * r + 4.1665795894E-2f;
    p = p * r + 1.6666665459E-1f;
    p = p * r + 5.0000001201E-1f;
    float y = (p * r * r + r) + 1.0f;
    int32_t e = ((int32_t)fx + 127) << 23;
    float two;
    memcpy(&two, &e, sizeof two);
    return x > EXP_LO ? y * two : 0.0f;
}

/* p[0..16) = e^p[0..16) */
ALWAYS_INLINE void vexp16(float *p)
{
    vf x = VLD(p);
    vf hi = (vf){0} + EXP_HI, lo = (vf){0} + EXP_LO;
    vf xc = VSEL(x < hi, x, hi);
    xc = VSEL(xc > lo, xc, lo);
    vf fx = (xc * 1.44269504088896341f + EXP_MAGIC) - EXP_MAGIC;
    vf r = (xc - fx * 0.693359375f) + fx * 2.12194440e-4f;
    vf q = (vf){0} + 1.9875691500E-4f;
    q = q * r + 1.3981999507E-3f;
    q = q * r + 8.3334519073E-3f;
    q = q * r + 4.1665795894E-2f;
    q = q * r + 1.6666665459E-1f;
    q = q * r + 5.0000001201E-1f;
    vf y = (q * r * r + r) + 1.0f;
    vi e = (__builtin_convertvector(fx, vi) + 127) << 23;
    vf res = y * (vf)e;
    VST(p, VSEL(x > lo, res, (vf){0}));
}

/* the dot product of an attention row (short: head_dim) */
ALWAYS_INLINE float dot(const float *a, const float *b, int64_t n)
{
    float s = 0.0f;
    for (int64_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

/* ---- RMSNorm ------------------------------------------------------------------------- */

float top_rmsnorm(float *out, const float *x, const float *w, int64_t n, float eps)
{
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++)
        sum += (double)(x[i] * x[i]);
    float mean = (float)(sum / (double)n);
    float r = 1.0f / sqrtf(mean + eps);
    for (int64_t i = 0; i < n; i++)
        out[i] = (x[i] * r) * w[i];
    return r;
}

void top_rmsnorm_bwd(float *dx, const float *dy, const float *x, const float *w, float r, int64_t n,
                     bool accumulate)
{
    double s = 0.0;
    for (int64_t i = 0; i < n; i++)
        s += (double)(dy[i] * w[i] * x[i]);
    float c = (float)(s * (double)r * (double)r * (double)r / (double)n);
    for (int64_t i = 0; i < n; i++) {
        float d = r * w[i] * dy[i] - x[i] * c;
        dx[i] = accumulate ? dx[i] + d : d;
    }
}

/* ---- RoPE ----------------------------------------------------------------------------- */

void top_rope_tables(const struct hparams *hp, const float *ff, int64_t n_pos, float *cos_t,
                     float *sin_t)
{
    int64_t n_half = hp->n_rot / 2;
    float step = powf(hp->rope_base, -2.0f / (float)hp->n_rot);
    float fs = hp->rope_freq_scale;
    float mscale = hp->rope_attn_factor;
    float lo = 0, hi = 0;
    if (hp->rope_yarn) {
        float n_rot = (float)hp->n_rot, base = logf(hp->rope_base);
        float orig = (float)hp->rope_n_ctx_orig;
        float dfast = n_rot * logf(orig / (32.0f * 2.0f * (float)M_PI)) / (2.0f * base);
        float dslow = n_rot * logf(orig / (1.0f * 2.0f * (float)M_PI)) / (2.0f * base);
        lo = floorf(dfast) > 0 ? floorf(dfast) : 0;
        hi = ceilf(dslow) < n_rot - 1 ? ceilf(dslow) : n_rot - 1;
        mscale *= 1.0f + 0.1f * logf(1.0f / fs);
    }
    for (int64_t p = 0; p < n_pos; p++) {
        float theta = (float)p;
        for (int64_t i = 0; i < n_half; i++) {
            float th = ff ? theta / ff[i] : theta;
            float a = fs * th;
            if (hp->rope_yarn) {
                float y = ((float)i - lo) / fmaxf(0.001f, hi - lo);
                float ramp = 1.0f - fminf(1.0f, fmaxf(0.0f, y));
                a = a * (1.0f - ramp) + th * ramp;
            }
            cos_t[p * n_half + i] = cosf(a) * mscale;
            sin_t[p * n_half + i] = sinf(a) * mscale;
            theta *= step;
        }
    }
}

void top_rope(float *x, const int32_t *pos, int64_t T, int64_t n_heads, const struct hparams *hp,
              const float *cos_t, const float *sin_t, bool inverse)
{
    int64_t hd = hp->head_dim, n_half = hp->n_rot / 2;
    bool neox = hp->rope_mode == ROPE_NEOX;
    for (int64_t t = 0; t < T; t++) {
        const float *cs = cos_t + (int64_t)pos[t] * n_half, *sn = sin_t + (int64_t)pos[t] * n_half;
        for (int64_t h = 0; h < n_heads; h++) {
            float *v = x + (t * n_heads + h) * hd;
            for (int64_t i = 0; i < n_half; i++) {
                int64_t i0 = neox ? i : 2 * i, i1 = neox ? i + n_half : 2 * i + 1;
                float x0 = v[i0], x1 = v[i1], c = cs[i], s = inverse ? -sn[i] : sn[i];
                v[i0] = x0 * c - x1 * s;
                v[i1] = x0 * s + x1 * c;
            }
        }
    }
}

/* ---- exp, SwiGLU ------------------------------------------------------------------------ */

HR_CLONES
void top_vexp(float *x, int64_t n)
{
    int64_t i = 0;
    for (; i + VL <= n; i += VL)
        vexp16(x + i);
    for (; i < n; i++)
        x[i] = fexp(x[i]);
}

/* silu(g) = g·σ(g), σ(g) = 1 / (1 + e^−g) */
HR_CLONES
void top_swiglu(float *h, const float *g, const float *u, int64_t n)
{
    float e[VL];
    int64_t i = 0;
    for (; i + VL <= n; i += VL) {
        vf gv = VLD(g + i);
        VST(e, -gv);
        vexp16(e);
        VST(h + i, gv / (VLD(e) + 1.0f) * VLD(u + i));
    }
    for (; i < n; i++)
        h[i] = g[i] / (fexp(-g[i]) + 1.0f) * u[i];
}

/* dg = dh·u·σ(g)(1 + g(1 − σ(g))), du = dh·g·σ(g); dg may alias dh */
HR_CLONES
void top_swiglu_bwd(float *dg, float *du, const float *dh, const float *g, const float *u,
                    int64_t n)
{
    float e[VL];
    int64_t i = 0;
    for (; i + VL <= n; i += VL) {
        vf gv = VLD(g + i), d = VLD(dh + i);
        VST(e, -gv);
        vexp16(e);
        vf sg = 1.0f / (VLD(e) + 1.0f);
        VST(du + i, d * gv * sg);
        VST(dg + i, d * VLD(u + i) * (sg * (gv * (1.0f - sg) + 1.0f)));
    }
    for (; i < n; i++) {
        float d = dh[i], sg = 1.0f / (fexp(-g[i]) + 1.0f);
        du[i] = d * g[i] * sg;
        dg[i] = d * u[i] * (sg * (g[i] * (1.0f - sg) + 1.0f));
    }
}

/* ---- cross-entropy -------------------------------------------------------------------- */

/* max over n floats: 16 lanes, then the lanes and the tail */
ALWAYS_INLINE float vmax(const float *z, int64_t n)
{
    float r = -INFINITY;
    int64_t i = 0;
    if (n >= VL) {
        vf m = VLD(z);
        for (i = VL; i + VL <= n; i += VL) {
            vf x = VLD(z + i);
            m = VSEL(x > m, x, m);
        }
        for (int l = 0; l < VL; l++)
            r = m[l] > r ? m[l] : r;
    }
    for (; i < n; i++)
        r = z[i] > r ? z[i] : r;
    return r;
}

/* z = e^(z − m), returning Σ: 16 float lanes, then lanes and tail in double */
ALWAYS_INLINE double vexp_sum(float *z, int64_t n, float m)
{
    vf acc = {0};
    int64_t i = 0;
    for (; i + VL <= n; i += VL) {
        VST(z + i, VLD(z + i) - m);
        vexp16(z + i);
        acc += VLD(z + i);
    }
    double sum = 0.0;
    for (; i < n; i++) {
        z[i] = fexp(z[i] - m);
        sum += (double)z[i];
    }
    for (int l = 0; l < VL; l++)
        sum += (double)acc[l];
    return sum;
}

ALWAYS_INLINE void vscale(float *z, int64_t n, float v)
{
    int64_t i = 0;
    for (; i + VL <= n; i += VL)
        VST(z + i, VLD(z + i) * v);
    for (; i < n; i++)
        z[i] *= v;
}

HR_CLONES
double top_xent(float *z, int64_t V, int32_t label, float gscale)
{
    float zl = z[label];
    float m = vmax(z, V);
    double sum = vexp_sum(z, V, m);
    double lse = (double)m + log(sum);
    vscale(z, V, (float)((double)gscale / sum));
    z[label] -= gscale;
    return lse - (double)zl;
}

/* ---- attention -------------------------------------------------------------------------- */

/* Copies of the pass (top_attn.tr), in this order:
 *   kt, vt   [n_head_kv][hd][T]   transposed K, V
 *   qt, dot  [n_head][hd][T]      transposed Q, dout
 *   kh, vh   [n_head_kv][T][hd]   K, V rows of one head contiguous
 *   qh, doh  [n_head][T][hd]      Q, dout rows of one head contiguous
 *   lset, dt [n_head][T]          lse and D transposed
 * plus one vector: the whole last blocks of gtdot read past a row's end. */
struct attn_bufs {
    float *kt, *vt, *qt, *dot, *kh, *vh, *qh, *doh, *lset, *dt;
};

static void bufs(const struct top_attn *a, struct attn_bufs *b)
{
    int64_t T = a->T, nkv = a->n_head_kv * a->hd, nq = a->n_head * a->hd;
    b->kt = a->tr;
    b->vt = b->kt + T * nkv;
    b->qt = b->vt + T * nkv;
    b->dot = b->qt + T * nq;
    b->kh = b->dot + T * nq;
    b->vh = b->kh + T * nkv;
    b->qh = b->vh + T * nkv;
    b->doh = b->qh + T * nq;
    b->lset = b->doh + T * nq;
    b->dt = b->lset + T * a->n_head;
}

int64_t top_attn_tsize(int64_t T, int64_t n_head, int64_t n_head_kv, int64_t hd)
{
    return T * (4 * n_head_kv * hd + 4 * n_head * hd + 2 * n_head) + VL;
}

/* Per thread: S and DP, rows of whole vectors for the group's heads or a
 * block of keys, then 2·KB·hd partial sums. */
#define KB 4 /* keys per task of the backward's second pass */
#define SROW(n_ctx) (((n_ctx) + VL - 1) / VL * VL)

static int64_t srows(int64_t n_head, int64_t n_head_kv)
{
    int64_t g = n_head / n_head_kv;
    return g > KB ? g : KB;
}

int64_t top_attn_scratch(int64_t n_ctx, int64_t hd, int64_t n_head, int64_t n_head_kv)
{
    return 2 * srows(n_head, n_head_kv) * SROW(n_ctx) + 2 * KB * hd;
}

/* S[g][0..n) = Σ_d Q[g][d]·bt[d·ld + 0..n) for g < G (rows of S ss apart,
 * of Q qs apart), d ascending for every output. Blocks of NB vectors per
 * row stay in registers over all d; after the NB blocks, single vectors;
 * the last block is whole (reads and writes up to 15 floats past n). G
 * and NB are constants where this is inlined, so the accumulators are
 * registers. */
ALWAYS_INLINE void gtdot_k(float *S, int64_t ss, const float *Q, int64_t qs, const float *bt,
                           int64_t ld, int64_t hd, int64_t n, const int G, const int NB)
{
    int64_t j = 0;
    if (NB > 1)
        for (; j + NB * VL <= n; j += NB * VL) {
            vf acc[8][4];
            for (int g = 0; g < G; g++)
                for (int b = 0; b < NB; b++)
                    acc[g][b] = (vf){0};
            for (int64_t d = 0; d < hd; d++) {
                const float *row = bt + d * ld + j;
                for (int b = 0; b < NB; b++) {
                    vf x = VLD(row + b * VL);
                    for (int g = 0; g < G; g++)
                        acc[g][b] += x * Q[g * qs + d];
                }
            }
            for (int g = 0; g < G; g++)
                for (int b = 0; b < NB; b++)
                    VST(S + g * ss + j + b * VL, acc[g][b]);
        }
    for (; j < n; j += VL) {
        vf acc[8];
        for (int g = 0; g < G; g++)
            acc[g] = (vf){0};
        for (int64_t d = 0; d < hd; d++) {
            vf x = VLD(bt + d * ld + j);
            for (int g = 0; g < G; g++)
                acc[g] += x * Q[g * qs + d];
        }
        for (int g = 0; g < G; g++)
            VST(S + g * ss + j, acc[g]);
    }
}

ALWAYS_INLINE void gtdot(float *S, int64_t ss, const float *Q, int64_t qs, const float *bt,
                         int64_t ld, int64_t hd, int64_t n, int64_t G)
{
    for (int64_t g0 = 0; g0 < G; g0 += 8) {
        int64_t ng = G - g0 < 8 ? G - g0 : 8;
        float *s = S + g0 * ss;
        const float *q = Q + g0 * qs;
        switch (ng) {
        case 1:
            gtdot_k(s, ss, q, qs, bt, ld, hd, n, 1, 4);
            break;
        case 2:
            gtdot_k(s, ss, q, qs, bt, ld, hd, n, 2, 4);
            break;
        case 3:
            gtdot_k(s, ss, q, qs, bt, ld, hd, n, 3, 2);
            break;
        case 4:
            gtdot_k(s, ss, q, qs, bt, ld, hd, n, 4, 2);
            break;
        case 5:
            gtdot_k(s, ss, q, qs, bt, ld, hd, n, 5, 1);
            break;
        case 6:
            gtdot_k(s, ss, q, qs, bt, ld, hd, n, 6, 1);
            break;
        case 7:
            gtdot_k(s, ss, q, qs, bt, ld, hd, n, 7, 1);
            break;
        default:
            gtdot_k(s, ss, q, qs, bt, ld, hd, n, 8, 1);
            break;
        }
    }
}

/* out[k][0..hd) (+)= Σ_i C[k][i]·rows[i·hd + 0..hd) for k < K (rows of C cs
 * apart, of out os apart), i ascending; the K sums share each row load.
 * accumulate: add to out. */
ALWAYS_INLINE void madsum_k(float *out, int64_t os, const float *C, int64_t cs, const float *rows,
                            int64_t n, int64_t hd, const int K, bool accumulate)
{
    int64_t e = 0;
    for (; e + 4 * VL <= hd; e += 4 * VL) {
        vf acc[4][4];
        for (int k = 0; k < K; k++)
            for (int b = 0; b < 4; b++)
                acc[k][b] = (vf){0};
        for (int64_t i = 0; i < n; i++) {
            const float *r = rows + i * hd + e;
            for (int b = 0; b < 4; b++) {
                vf x = VLD(r + b * VL);
                for (int k = 0; k < K; k++)
                    acc[k][b] += x * C[k * cs + i];
            }
        }
        for (int k = 0; k < K; k++)
            for (int b = 0; b < 4; b++) {
                float *o = out + k * os + e + b * VL;
                VST(o, accumulate ? VLD(o) + acc[k][b] : acc[k][b]);
            }
    }
    for (; e + VL <= hd; e += VL) {
        vf acc[4];
        for (int k = 0; k < K; k++)
            acc[k] = (vf){0};
        for (int64_t i = 0; i < n; i++) {
            vf x = VLD(rows + i * hd + e);
            for (int k = 0; k < K; k++)
                acc[k] += x * C[k * cs + i];
        }
        for (int k = 0; k < K; k++) {
            float *o = out + k * os + e;
            VST(o, accumulate ? VLD(o) + acc[k] : acc[k]);
        }
    }
    for (; e < hd; e++)
        for (int k = 0; k < K; k++) {
            float x = 0.0f;
            for (int64_t i = 0; i < n; i++)
                x += rows[i * hd + e] * C[k * cs + i];
            out[k * os + e] = accumulate ? out[k * os + e] + x : x;
        }
}

ALWAYS_INLINE void madsum(float *out, int64_t os, const float *C, int64_t cs, const float *rows,
                          int64_t n, int64_t hd, int64_t K, bool accumulate)
{
    for (int64_t k0 = 0; k0 < K; k0 += 4) {
        int64_t nk = K - k0 < 4 ? K - k0 : 4;
        float *o = out + k0 * os;
        const float *c = C + k0 * cs;
        switch (nk) {
        case 1:
            madsum_k(o, os, c, cs, rows, n, hd, 1, accumulate);
            break;
        case 2:
            madsum_k(o, os, c, cs, rows, n, hd, 2, accumulate);
            break;
        case 3:
            madsum_k(o, os, c, cs, rows, n, hd, 3, accumulate);
            break;
        default:
            madsum_k(o, os, c, cs, rows, n, hd, 4, accumulate);
            break;
        }
    }
}

/* The copies of m matrices src[t][h·hd + d] (nh[m] heads): the transposed
 * one dst_t[h][d][t] and the head-major one dst_h[h][t][d]. One task per
 * (matrix, head). */
struct tr_job {
    const struct top_attn *a;
    const float *src[4];
    float *dst_t[4], *dst_h[4];
    int64_t heads[4];
};

static void transpose_task(void *arg, int64_t task, int thread)
{
    const struct tr_job *j = arg;
    const struct top_attn *a = j->a;
    int m = 0;
    while (task >= j->heads[m]) {
        task -= j->heads[m];
        m++;
    }
    int64_t nh = j->heads[m], hd = a->hd, T = a->T, h = task;
    const float *src = j->src[m];
    float *dt = j->dst_t[m] + h * hd * T, *dh = j->dst_h[m] + h * T * hd;
    for (int64_t t = 0; t < T; t++) {
        const float *row = src + (t * nh + h) * hd;
        memcpy(dh + t * hd, row, (size_t)hd * sizeof *row);
        for (int64_t d = 0; d < hd; d++)
            dt[d * T + t] = row[d];
    }
}

/* One task = (query row t, KV head): the G query heads of the group share
 * every load of Kᵀ and V. */
HR_CLONES
static void attn_fwd_task(void *arg, int64_t task, int thread)
{
    const struct top_attn *a = arg;
    struct attn_bufs b;
    bufs(a, &b);
    int64_t hd = a->hd, G = a->n_head / a->n_head_kv, T = a->T, sr = SROW(a->n_ctx);
    int64_t t = task / a->n_head_kv, kvh = task % a->n_head_kv;
    int64_t j0 = t - a->pos[t], n = t - j0 + 1, h0 = kvh * G;
    float *S =
        a->scratch + (int64_t)thread * top_attn_scratch(a->n_ctx, hd, a->n_head, a->n_head_kv);
    float scale = 1.0f / sqrtf((float)hd);
    gtdot(S, sr, a->q + (t * a->n_head + h0) * hd, hd, b.kt + kvh * hd * T + j0, T, hd, n, G);
    for (int64_t g = 0; g < G; g++) {
        float *s = S + g * sr;
        vscale(s, n, scale);
        float m = vmax(s, n);
        double sum = vexp_sum(s, n, m);
        vscale(s, n, (float)(1.0 / sum));
        a->lse[t * a->n_head + h0 + g] = (float)((double)m + log(sum));
    }
    madsum(a->o + (t * a->n_head + h0) * hd, hd, S, sr, b.vh + (kvh * T + j0) * hd, n, hd, G,
           false);
}

void top_attn_fwd(struct pool *pool, struct top_attn *a)
{
    struct attn_bufs b;
    bufs(a, &b);
    struct tr_job tj = {a, {a->k, a->v}, {b.kt, b.vt}, {b.kh, b.vh}, {a->n_head_kv, a->n_head_kv}};
    pool_run(pool, transpose_task, &tj, 2 * a->n_head_kv);
    pool_run(pool, attn_fwd_task, a, a->T * a->n_head_kv);
}

/* P = e^(s·scale − lse) into s and ds·scale = P·(dP − D)·scale into dp,
 * over n scores; lse and D per element (stride 1) or one value (0) */
ALWAYS_INLINE void probs(float *s, float *dp, const float *lse, const float *D, int64_t stride,
                         float scale, int64_t n)
{
    int64_t i = 0;
    for (; i + VL <= n; i += VL) {
        vf l = (vf){0} + lse[0], dd = (vf){0} + D[0];
        if (stride) {
            l = VLD(lse + i);
            dd = VLD(D + i);
        }
        VST(s + i, VLD(s + i) * scale - l);
        vexp16(s + i);
        VST(dp + i, VLD(s + i) * (VLD(dp + i) - dd) * scale);
    }
    for (; i < n; i++) {
        float l = lse[stride ? i : 0], dd = D[stride ? i : 0];
        s[i] = fexp(s[i] * scale - l);
        dp[i] = s[i] * (dp[i] - dd) * scale;
    }
}

/* Pass A, per (query row t, KV head): dq of the group's heads (and D =
 * dout·o, which pass B needs). */
HR_CLONES
static void attn_bwd_q_task(void *arg, int64_t task, int thread)
{
    const struct top_attn *a = arg;
    struct attn_bufs b;
    bufs(a, &b);
    int64_t hd = a->hd, G = a->n_head / a->n_head_kv, T = a->T, sr = SROW(a->n_ctx);
    int64_t t = task / a->n_head_kv, kvh = task % a->n_head_kv;
    int64_t j0 = t - a->pos[t], n = t - j0 + 1, h0 = kvh * G, th0 = t * a->n_head + h0;
    float *S =
        a->scratch + (int64_t)thread * top_attn_scratch(a->n_ctx, hd, a->n_head, a->n_head_kv);
    float *DP = S + srows(a->n_head, a->n_head_kv) * sr;
    float scale = 1.0f / sqrtf((float)hd);
    gtdot(S, sr, a->q + th0 * hd, hd, b.kt + kvh * hd * T + j0, T, hd, n, G);
    gtdot(DP, sr, a->dout + th0 * hd, hd, b.vt + kvh * hd * T + j0, T, hd, n, G);
    for (int64_t g = 0; g < G; g++) {
        int64_t th = th0 + g;
        float D = dot(a->dout + th * hd, a->o + th * hd, hd);
        a->dsum[th] = D;
        probs(S + g * sr, DP + g * sr, &a->lse[th], &D, 0, scale, n);
    }
    madsum(a->dq + th0 * hd, hd, DP, sr, b.kh + (kvh * T + j0) * hd, n, hd, G, false);
}

/* Pass B for keys j0 .. j0+nk−1 of one example (nk <= KB), KV head kvh:
 * over the queries from j0 to the example's end, the nk keys share every
 * load of Qᵀ, doutᵀ, Q and dout; a key's scores before its own position are
 * zeroed (they are not part of its sums). */
ALWAYS_INLINE void bwd_kv_block(const struct top_attn *a, const struct attn_bufs *b, float *S,
                                float *DP, float *part, int64_t j0, int64_t nk, int64_t kvh)
{
    int64_t hd = a->hd, G = a->n_head / a->n_head_kv, T = a->T, sr = SROW(a->n_ctx);
    int64_t n = a->seg_end[j0] - j0;
    float scale = 1.0f / sqrtf((float)hd);
    const float *kj = b->kh + (kvh * T + j0) * hd, *vj = b->vh + (kvh * T + j0) * hd;
    for (int64_t g = 0; g < G; g++) {
        int64_t h = kvh * G + g;
        gtdot(S, sr, kj, hd, b->qt + h * hd * T + j0, T, hd, n, nk);
        gtdot(DP, sr, vj, hd, b->dot + h * hd * T + j0, T, hd, n, nk);
        for (int64_t k = 0; k < nk; k++) {
            float *s = S + k * sr, *dp = DP + k * sr;
            for (int64_t i = 0; i < k; i++)
                s[i] = dp[i] = 0.0f;
            probs(s + k, dp + k, b->lset + h * T + j0 + k, b->dt + h * T + j0 + k, 1, scale, n - k);
        }
        /* dk += Σ_t ds_t·q_t, dv += Σ_t P_t·dout_t: the heads of the group in order */
        madsum(part, hd, DP, sr, b->qh + (h * T + j0) * hd, n, hd, nk, g > 0);
        madsum(part + KB * hd, hd, S, sr, b->doh + (h * T + j0) * hd, n, hd, nk, g > 0);
    }
    int64_t nkv = a->n_head_kv * hd;
    for (int64_t k = 0; k < nk; k++) {
        memcpy(a->dk + (j0 + k) * nkv + kvh * hd, part + k * hd, (size_t)hd * sizeof(float));
        memcpy(a->dv + (j0 + k) * nkv + kvh * hd, part + (KB + k) * hd, (size_t)hd * sizeof(float));
    }
}

/* Pass B, per (block of KB keys, KV head); keys of different examples in
 * one block are done one by one. */
HR_CLONES
static void attn_bwd_kv_task(void *arg, int64_t task, int thread)
{
    const struct top_attn *a = arg;
    struct attn_bufs b;
    bufs(a, &b);
    int64_t sr = SROW(a->n_ctx), rows = srows(a->n_head, a->n_head_kv);
    int64_t j0 = task / a->n_head_kv * KB, kvh = task % a->n_head_kv;
    int64_t nk = a->T - j0 < KB ? a->T - j0 : KB;
    float *S =
        a->scratch + (int64_t)thread * top_attn_scratch(a->n_ctx, a->hd, a->n_head, a->n_head_kv);
    float *DP = S + rows * sr, *part = DP + rows * sr;
    if (nk == KB && a->seg_end[j0] == a->seg_end[j0 + KB - 1]) {
        bwd_kv_block(a, &b, S, DP, part, j0, KB, kvh);
        return;
    }
    for (int64_t k = 0; k < nk; k++)
        bwd_kv_block(a, &b, S, DP, part, j0 + k, 1, kvh);
}

/* lset[h][t] = lse[t][h], dt[h][t] = dsum[t][h] */
static void small_transpose_task(void *arg, int64_t h, int thread)
{
    const struct top_attn *a = arg;
    struct attn_bufs b;
    bufs(a, &b);
    for (int64_t t = 0; t < a->T; t++) {
        b.lset[h * a->T + t] = a->lse[t * a->n_head + h];
        b.dt[h * a->T + t] = a->dsum[t * a->n_head + h];
    }
}

void top_attn_bwd(struct pool *pool, struct top_attn *a)
{
    struct attn_bufs b;
    bufs(a, &b);
    /* seg_end: scanning backwards, an example ends where the next row's
     * position is 0 (or at the pass's end) */
    int64_t end = a->T;
    for (int64_t t = a->T - 1; t >= 0; t--) {
        a->seg_end[t] = (int32_t)end;
        if (a->pos[t] == 0) end = t;
    }
    struct tr_job tj = {a,
                        {a->k, a->v, a->q, a->dout},
                        {b.kt, b.vt, b.qt, b.dot},
                        {b.kh, b.vh, b.qh, b.doh},
                        {a->n_head_kv, a->n_head_kv, a->n_head, a->n_head}};
    pool_run(pool, transpose_task, &tj, 2 * a->n_head_kv + 2 * a->n_head);
    pool_run(pool, attn_bwd_q_task, a, a->T * a->n_head_kv);
    pool_run(pool, small_transpose_task, a, a->n_head);
    pool_run(pool, attn_bwd_kv_task, a, (a->T + KB - 1) / KB * a->n_head_kv);
}
