/*
 * kernels_k.c — micro-benchmark of the K-quant kernels at every ISA level
 * this CPU has (not a test: it asserts nothing and is not built by meson).
 *
 * Build by hand against a configured build directory, e.g.:
 *   ninja -C build && gcc -O2 -std=c11 -D_GNU_SOURCE -Iinclude -Icore \
 *     bench/kernels_k.c build/core/libhearth-core.a -lutf8proc -ljansson -lm \
 *     -lpthread -o /tmp/kernels_k && /tmp/kernels_k [type ...]
 * Types are llama.cpp's names (q4_K, q6_K, ...); default: all five K-quants.
 * HEARTH_BENCH_MB sets the streamed matrix size (default 512 MB).
 *
 * Per type and level, all on one thread:
 *  - stream: GB/s of weight bytes read by vec_dot over a matrix far larger
 *    than the caches, one activation row (decode: memory-bound);
 *  - gemm nc=1: the same matrix through gemm tiles of gemm_mr rows × 1 token
 *    (how the forward pass decodes when a gemm kernel exists);
 *  - tiles: GOP/s (2 ops per multiply-add) of gemm_mr × nc tiles over 64 rows
 *    × 4096 and nc tokens, all resident in L2, for nc = gemm_nc (prompt
 *    processing: compute-bound) and narrower edge tiles;
 *  - for types with a repacked copy (repack/gemm_packed): the packed
 *    stream with one token (GB/s of packed bytes: decode) and the packed
 *    tiles, from packed_nc (AMX: 128 tokens a call) down to 1 token.
 */
#include "arch/arch.h"
#include "quant.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* HEARTH_BENCH_CLOCK=cpu times the thread's CPU time instead of the wall
 * clock: on a shared machine the compute-bound figures then stay comparable
 * between runs (memory-bound ones still feel the neighbours' traffic). */
static double now(void)
{
    static int cpu = -1;
    if (cpu < 0) cpu = getenv("HEARTH_BENCH_CLOCK") && !strcmp(getenv("HEARTH_BENCH_CLOCK"), "cpu");
    struct timespec ts;
    clock_gettime(cpu ? CLOCK_THREAD_CPUTIME_ID : CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t rng = 88172645463325252ull;
static float rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((double)(rng >> 11) / (double)(1ull << 53) * 2.0 - 1.0);
}

static volatile float sink;

static void bench_type(uint32_t type)
{
    const int64_t n = 4096;
    size_t mb = getenv("HEARTH_BENCH_MB") ? (size_t)atol(getenv("HEARTH_BENCH_MB")) : 512;
    size_t row = hr_row_size(type, n), xrow = hr_row_size(HR_TYPE_Q8_K, n);
    int64_t rows = (int64_t)((mb << 20) / row) & ~(int64_t)63;
    uint8_t *w = malloc(row * (size_t)rows);
    float *xf = malloc(sizeof(float) * (size_t)n * 64);
    uint8_t *xq = malloc(xrow * 64);
    float *y = malloc(sizeof(float) * (size_t)rows * 64);
    if (!w || !xf || !xq || !y) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    /* quantize one 64-row block of random weights and repeat it: the
     * reference quantizer is slow, the bytes only need to be plausible */
    {
        float *wf = malloc(sizeof(float) * (size_t)n * 64);
        for (int64_t i = 0; i < n * 64; i++)
            wf[i] = rnd() * 0.05f;
        quant_quantize(type, wf, w, 64, n);
        for (int64_t r = 64; r < rows; r += 64)
            memcpy(w + (size_t)r * row, w, row * 64);
        free(wf);
    }
    for (int64_t i = 0; i < n * 64; i++)
        xf[i] = rnd();
    for (int c = 0; c < 64; c++)
        quant_kernels_ref(HR_TYPE_Q8_K)->from_float(xf + c * n, xq + (size_t)c * xrow, n);

    {
        /* plain read of the same bytes: the bandwidth the kernels aim at */
        double best = 1e30;
        uint64_t acc = 0;
        for (int rep = 0; rep < 3; rep++) {
            double t0 = now();
            const uint64_t *p = (const uint64_t *)(const void *)w;
            size_t words = row * (size_t)rows / 8;
            for (size_t i = 0; i < words; i += 4)
                acc += p[i] ^ p[i + 1] ^ p[i + 2] ^ p[i + 3];
            double t = now() - t0;
            best = t < best ? t : best;
        }
        sink = (float)acc;
        printf("%-5s memory read     %6.2f GB/s (%lld rows of %lld)\n", hr_type_info(type)->name,
               (double)row * (double)rows / best / 1e9, (long long)rows, (long long)n);
    }
    for (int isa = 0; isa <= (int)hr_isa_detect(); isa++) {
        const struct quant_kernels *k = quant_kernels_isa(type, (enum hr_isa)isa);
        /* stream with vec_dot */
        double best = 1e30;
        for (int rep = 0; rep < 3; rep++) {
            double t0 = now();
            for (int64_t r = 0; r < rows; r++)
                k->vec_dot(n, &y[r], w + (size_t)r * row, xq);
            double t = now() - t0;
            best = t < best ? t : best;
            if (isa == 0) break; /* the scalar one is slow */
        }
        double gbs = (double)row * (double)rows / best / 1e9;
        printf("%-5s %-7s vec_dot stream %6.2f GB/s", hr_type_info(type)->name,
               hr_isa_name((enum hr_isa)isa), gbs);
        {
            const int64_t R = 64;
            int iters = 0;
            double t0 = now(), t;
            do {
                for (int64_t r = 0; r < R; r++)
                    k->vec_dot(n, &y[r], w + (size_t)r * row, xq);
                iters++;
                t = now() - t0;
            } while (t < 0.2);
            printf(" L2 %6.2f GB/s", (double)row * (double)R * iters / t / 1e9);
        }
        if (k->gemm) {
            best = 1e30;
            for (int rep = 0; rep < 3; rep++) {
                double t0 = now();
                for (int64_t r = 0; r < rows; r += k->gemm_mr)
                    k->gemm(n, &y[r], (size_t)rows, w + (size_t)r * row, row, k->gemm_mr, xq, xrow,
                            1);
                double t = now() - t0;
                best = t < best ? t : best;
            }
            printf("  gemm nc=1 %6.2f GB/s", (double)row * (double)rows / best / 1e9);
            /* L2-resident tiles: full ones, and narrower edge shapes */
            const int64_t R = 64;
            int ncs[] = {k->gemm_nc, 8, 4, 2};
            for (int q = 0; q < 4; q++) {
                int nc = ncs[q];
                if (nc > k->gemm_nc || (q > 0 && nc == k->gemm_nc)) continue;
                int iters = 0;
                double t0 = now(), t;
                do {
                    for (int64_t r = 0; r < R; r += k->gemm_mr)
                        k->gemm(n, &y[r], (size_t)R, w + (size_t)r * row, row, k->gemm_mr, xq, xrow,
                                nc);
                    iters++;
                    t = now() - t0;
                } while (t < 0.2);
                double ops = 2.0 * (double)n * (double)R * (double)nc * iters;
                printf("  %dx%d %5.1f", k->gemm_mr, nc, ops / t / 1e9);
            }
            printf(" GOP/s");
        }
        if (k->repack) {
            /* the repacked copy: decode stream (nc = 1) and L2-resident tiles */
            size_t psz = k->packed_size(n, rows);
            uint8_t *wp = aligned_alloc(64, (psz + 63) & ~(size_t)63);
            if (!wp) {
                fprintf(stderr, "out of memory\n");
                exit(1);
            }
            k->repack(w, wp, n, rows);
            best = 1e30;
            for (int rep = 0; rep < 3; rep++) {
                double t0 = now();
                for (int64_t r = 0; r < rows; r += k->gemm_mr)
                    k->gemm_packed(n, &y[r], (size_t)rows, wp, r, k->gemm_mr, xq, xrow, 1);
                double t = now() - t0;
                best = t < best ? t : best;
            }
            printf("\n%-5s %-7s packed nc=1 %6.2f GB/s", hr_type_info(type)->name,
                   hr_isa_name((enum hr_isa)isa), (double)psz / best / 1e9);
            const int64_t R = 64;
            int pnc = k->packed_nc ? k->packed_nc : k->gemm_nc;
            int ncs[] = {pnc, 16, 8, 4, 2, 1};
            for (int q = 0; q < 6; q++) {
                int nc = ncs[q];
                if (nc > pnc || (q > 0 && nc == pnc)) continue;
                int iters = 0;
                double t0 = now(), t;
                do {
                    for (int64_t r = 0; r < R; r += k->gemm_mr)
                        k->gemm_packed(n, &y[r], (size_t)R, wp, r, k->gemm_mr, xq, xrow, nc);
                    iters++;
                    t = now() - t0;
                } while (t < 0.2);
                double ops = 2.0 * (double)n * (double)R * (double)nc * iters;
                printf("  %dx%d %5.1f", k->gemm_mr, nc, ops / t / 1e9);
            }
            printf(" GOP/s");
            free(wp);
        }
        printf("\n");
        sink = y[0];
    }
    free(w);
    free(xf);
    free(xq);
    free(y);
}

int main(int argc, char **argv)
{
    static const uint32_t all[] = {HR_TYPE_Q4_K, HR_TYPE_Q6_K, HR_TYPE_Q5_K, HR_TYPE_Q3_K,
                                   HR_TYPE_Q2_K};
    if (argc < 2) {
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
            bench_type(all[i]);
        return 0;
    }
    for (int a = 1; a < argc; a++) {
        uint32_t t = 0;
        for (uint32_t i = 0; i < sizeof all / sizeof all[0]; i++)
            if (!strcmp(argv[a], hr_type_info(all[i])->name)) t = all[i];
        if (!t) {
            fprintf(stderr, "unknown type %s\n", argv[a]);
            return 2;
        }
        bench_type(t);
    }
    return 0;
}
