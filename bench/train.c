/*
 * train.c — what a LoRA training step costs (not a test: it asserts nothing
 * and is not built by meson). Makes a trainer for MODEL, takes one warm-up
 * step and then STEPS timed steps on rows of random tokens (every token
 * labelled), and prints training tokens/s, the arithmetic rate (the
 * trainer's own count of floating-point or integer operations per token,
 * hr_train_estimate) and where the time went (train.h `prof`).
 *
 * Build by hand against a build directory's core library, e.g.
 *   cc -O2 -std=c11 -D_GNU_SOURCE -Iinclude -Icore bench/train.c \
 *      build/core/libhearth-core.a -ljansson -lutf8proc -lm -lpthread -o /tmp/tbench
 *   hearth mkmodel --shape qwen2.5-0.5b --type q8_0 -o /tmp/qwen.gguf
 *   /tmp/tbench /tmp/qwen.gguf [STEPS=3] [CTX=512] [ROWS=1] [THREADS=0] [RECOMPUTE=0] [RANK=16]
 */
#include "train.h"

#include <hearth/hearth.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL [STEPS] [CTX] [ROWS] [THREADS] [RECOMPUTE] [RANK]\n",
                argv[0]);
        return 2;
    }
    int steps = argc > 2 ? atoi(argv[2]) : 3;
    struct hr_train_params p;
    hr_train_defaults(&p);
    p.n_ctx = argc > 3 ? atoi(argv[3]) : 512;
    int rows = argc > 4 ? atoi(argv[4]) : 1;
    p.n_threads = argc > 5 ? atoi(argv[5]) : 0;
    p.recompute = argc > 6 && atoi(argv[6]);
    p.rank = argc > 7 ? atoi(argv[7]) : 16;
    p.alpha = 2.0f * (float)p.rank;

    struct hr_err err;
    struct hr_model *m;
    if (hr_model_load(argv[1], NULL, &m, &err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    double t0 = train_clock();
    struct hr_train *t;
    if (hr_train_new(m, &p, &t, &err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    double t_new = train_clock() - t0;
    struct hr_train_estimate e;
    hr_train_estimate(m, &p, &e, &err);

    struct hr_train_rows r = {rows, p.n_ctx};
    size_t n = (size_t)rows * (size_t)p.n_ctx;
    r.tokens = malloc(n * sizeof(int32_t));
    r.labels = malloc(n * sizeof(int32_t));
    r.pos = malloc(n * sizeof(int32_t));
    uint64_t s = 1;
    for (size_t i = 0; i < n; i++) {
        r.tokens[i] = (int32_t)(train_rng_next(&s) % (uint64_t)hr_model_n_vocab(m));
        r.labels[i] = (int32_t)(train_rng_next(&s) % (uint64_t)hr_model_n_vocab(m));
        r.pos[i] = (int32_t)(i % (size_t)p.n_ctx);
    }
    struct hr_train_stats st;
    if (hr_train_step(t, &r, NULL, rows, &st, &err) < 0) { /* warm-up */
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    memset(t->prof, 0, sizeof t->prof);
    t0 = train_clock();
    for (int i = 0; i < steps; i++)
        hr_train_step(t, &r, NULL, rows, &st, &err);
    double dt = train_clock() - t0;
    double tokens = (double)steps * (double)n, tps = tokens / dt;
    printf("model %s, ctx %d x %d rows, rank %d, %d threads%s: trainer made in %.1f s\n", argv[1],
           p.n_ctx, rows, p.rank, t->n_threads, p.recompute ? ", recompute" : "", t_new);
    printf("memory: transposed %.0f MiB, activations %.0f MiB, optimizer %.0f MiB, scratch %.0f "
           "MiB\n",
           e.bytes_transposed / 1048576.0, e.bytes_activations / 1048576.0,
           e.bytes_optimizer / 1048576.0, e.bytes_scratch / 1048576.0);
    printf("%.1f training tokens/s; %.2f GFLOP/token -> %.1f GFLOP/s (base products %.1f)\n", tps,
           e.flop_per_token / 1e9, tps * e.flop_per_token / 1e9, tps * e.flop_per_token_base / 1e9);
    static const char *names[TP_COUNT] = {"fwd products",  "bwd products", "head products",
                                          "lora",          "attn fwd",     "attn bwd",
                                          "cross-entropy", "other ops",    "optimizer"};
    double sum = 0;
    for (int i = 0; i < TP_COUNT; i++)
        sum += t->prof[i];
    for (int i = 0; i < TP_COUNT; i++)
        printf("  %-14s %7.3f s %5.1f%%\n", names[i], t->prof[i], 100 * t->prof[i] / dt);
    printf("  %-14s %7.3f s %5.1f%%\n", "unaccounted", dt - sum, 100 * (dt - sum) / dt);
    hr_train_free(t);
    hr_model_free(m);
    free(r.tokens);
    free(r.labels);
    free(r.pos);
    return 0;
}
