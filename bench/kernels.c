/*
 * bench/kernels.c — micro-benchmark of the dot-product kernels of every
 * ISA level (not a test: it asserts nothing and is not built by meson).
 *
 * Build by hand against a build directory's core library, e.g.
 *   cc -O2 -std=c11 -D_GNU_SOURCE -Iinclude -Icore bench/kernels.c \
 *      build/core/libhearth-core.a -lutf8proc -lm -lpthread -o /tmp/kbench
 *   /tmp/kbench [type ...]          (default: the legacy and float types)
 *   BENCH_N=896 /tmp/kbench q4_0    (row length of the L2 tests; default 2048)
 *
 * For each type and ISA level it prints, on one thread:
 *   dot      GB/s of weight bytes streamed by vec_dot over 256 MiB of
 *            weights (far beyond the caches), one activation row (decode);
 *   g×1      the same through gemm tiles with nc = 1 (what decode runs);
 *   g×1(L2)  gemm nc = 1 over 256 rows that fit in L2: the compute limit of
 *            the decode path;
 *   gemm     GOP/s (2·rows·n·tokens / s) of full gemm tiles over those
 *            L2-resident rows against 64 activation rows (prompt processing).
 * Best of a few repetitions. Keep runs short: the machine may be shared,
 * and a busy core halves any of these figures.
 */
#include "arch/arch.h"
#include "quant.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t rs = 88172645463325252ull;
static float frand(void)
{
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return (float)((double)(rs >> 11) * 0x1p-53 * 2.0 - 1.0);
}

static void fill(uint32_t type, void *dst, int64_t rows, int64_t n)
{
    float *tmp = malloc((size_t)n * sizeof *tmp);
    size_t rsz = hr_row_size(type, n);
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t i = 0; i < n; i++)
            tmp[i] = frand();
        quant_kernels_ref(type)->from_float(tmp, (char *)dst + (size_t)r * rsz, n);
    }
    free(tmp);
}

static volatile float sink;

static void bench_type(uint32_t type)
{
    const struct hr_type_info *ti = hr_type_info(type);
    const struct quant_kernels *ref = quant_kernels_ref(type);
    uint32_t vt = ref->vec_dot_type;

    /* decode: 256 MiB of weights (beyond the caches) */
    int64_t n = 4096;
    size_t wrow = hr_row_size(type, n), xrow = hr_row_size(vt, n);
    int64_t rows = (int64_t)(((size_t)256 << 20) / wrow) / 16 * 16;
    char *w = malloc((size_t)rows * wrow);
    fill(type, w, rows, n);

    /* prompt: 256 rows × 2048 weights, 64 tokens */
    int64_t n2 = getenv("BENCH_N") ? atoll(getenv("BENCH_N")) : 2048, rows2 = 256, T = 64;
    size_t wrow2 = hr_row_size(type, n2), xrow2 = hr_row_size(vt, n2);
    char *w2 = malloc((size_t)rows2 * wrow2);
    fill(type, w2, rows2, n2);
    char *x = malloc((size_t)T * (xrow > xrow2 ? xrow : xrow2));
    float *xf = malloc((size_t)(n > n2 ? n : n2) * sizeof *xf);
    float *y = malloc((size_t)T * (size_t)(rows > rows2 ? rows : rows2) * sizeof *y);

    for (int isa = 0; isa <= (int)hr_isa_detect(); isa++) {
        const struct quant_kernels *k = quant_kernels_isa(type, (enum hr_isa)isa);
        quant_from_float_fn act = quant_kernels_isa(vt, (enum hr_isa)isa)->act_from_float
                                      ? quant_kernels_isa(vt, (enum hr_isa)isa)->act_from_float
                                      : quant_kernels_isa(vt, (enum hr_isa)isa)->from_float;
        for (int i = 0; i < n; i++)
            xf[i] = frand();
        act(xf, x, n);
        printf("%-5s %-7s", ti->name, hr_isa_name((enum hr_isa)isa));

        /* vec_dot streaming */
        double best = 1e30;
        for (int rep = 0; rep < 3; rep++) {
            double t0 = now();
            for (int64_t r = 0; r < rows; r++)
                k->vec_dot(n, &y[r], w + (size_t)r * wrow, x);
            double t = now() - t0;
            best = t < best ? t : best;
        }
        printf("  dot %6.2f GB/s", (double)rows * (double)wrow / best * 1e-9);

        if (k->gemm) {
            best = 1e30;
            for (int rep = 0; rep < 3; rep++) {
                double t0 = now();
                for (int64_t r = 0; r < rows; r += k->gemm_mr)
                    k->gemm(n, &y[r], (size_t)rows, w + (size_t)r * wrow, wrow, k->gemm_mr, x, xrow,
                            1);
                double t = now() - t0;
                best = t < best ? t : best;
            }
            printf("  g×1 %6.2f GB/s", (double)rows * (double)wrow / best * 1e-9);
        } else {
            printf("  g×1     -      ");
        }

        /* decode tiles over L2-resident weights: the compute limit */
        if (k->gemm) {
            best = 1e30;
            for (int rep = 0; rep < 20; rep++) {
                double t0 = now();
                for (int64_t r = 0; r < rows2; r += k->gemm_mr)
                    k->gemm(n2, &y[r], (size_t)rows2, w2 + (size_t)r * wrow2, wrow2, k->gemm_mr, x,
                            xrow2, 1);
                double t = now() - t0;
                best = t < best ? t : best;
            }
            printf("  g×1(L2) %6.2f GB/s", (double)rows2 * (double)wrow2 / best * 1e-9);
        }

        /* prompt: tiles over L2-resident weights */
        for (int64_t t = 0; t < T; t++) {
            for (int i = 0; i < n2; i++)
                xf[i] = frand();
            act(xf, x + (size_t)t * xrow2, n2);
        }
        best = 1e30;
        for (int rep = 0; rep < 3; rep++) {
            double t0 = now();
            if (k->gemm) {
                int mr = k->gemm_mr, nc = k->gemm_nc;
                for (int64_t t = 0; t < T; t += nc) {
                    int tn = T - t < nc ? (int)(T - t) : nc;
                    for (int64_t r = 0; r < rows2; r += mr)
                        k->gemm(n2, &y[t * rows2 + r], (size_t)rows2, w2 + (size_t)r * wrow2, wrow2,
                                mr, x + (size_t)t * xrow2, xrow2, tn);
                }
            } else {
                for (int64_t t = 0; t < T; t++)
                    for (int64_t r = 0; r < rows2; r++)
                        k->vec_dot(n2, &y[t * rows2 + r], w2 + (size_t)r * wrow2,
                                   x + (size_t)t * xrow2);
            }
            double t = now() - t0;
            best = t < best ? t : best;
        }
        printf("  gemm %7.1f GOP/s\n", 2.0 * (double)rows2 * (double)n2 * (double)T / best * 1e-9);
        sink = y[0];
    }
    free(w);
    free(w2);
    free(x);
    free(xf);
    free(y);
}

int main(int argc, char **argv)
{
    static const uint32_t deflt[] = {HR_TYPE_Q4_0, HR_TYPE_Q4_1, HR_TYPE_Q5_0, HR_TYPE_Q5_1,
                                     HR_TYPE_Q8_0, HR_TYPE_F16,  HR_TYPE_BF16, HR_TYPE_F32};
    if (argc > 1) {
        for (int i = 1; i < argc; i++)
            for (uint32_t t = 0; t < HR_TYPE_COUNT; t++) {
                const struct hr_type_info *ti = hr_type_info(t);
                const struct quant_kernels *k = quant_kernels_ref(t);
                if (ti && k && k->vec_dot && !strcmp(ti->name, argv[i])) bench_type(t);
            }
        return 0;
    }
    for (size_t i = 0; i < sizeof deflt / sizeof deflt[0]; i++)
        bench_type(deflt[i]);
    return 0;
}
