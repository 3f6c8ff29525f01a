/*
 * grammar.c — what grammar-constrained sampling costs on a real vocabulary
 * (not a test: it asserts nothing and is not built by meson). For the JSON
 * grammar of the schema {} and a tool-arguments schema it prints: grammar
 * creation (token texts copied), the first whole-vocabulary mask (which
 * sorts the texts once), then, in several states of a document, the
 * whole-vocabulary mask, the check of one token, and hr_sampler_sample with
 * llama.cpp's default chain (top-k 40: the grammar checks the survivors) and
 * with every filter off (the grammar masks the whole vocabulary).
 *
 * Build by hand against a build directory's core library, e.g.
 *   cc -O2 -std=c11 -D_GNU_SOURCE -Iinclude -Icore bench/grammar.c \
 *      build/core/libhearth-core.a -ljansson -lutf8proc -lm -lpthread -o /tmp/gbench
 *   hearth mkmodel --shape qwen2.5-0.5b --type q4_0 -o /tmp/qwen.gguf
 *   /tmp/gbench /tmp/qwen.gguf
 */
#include "grammar.h"

#include <hearth/hearth.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(void)
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return (uint32_t)((rng * 0x2545f4914f6cdd1dull) >> 32);
}

static void run(const struct hr_vocab *v, const char *label, const char *schema,
                const char *const *states, size_t n_states)
{
    struct hr_err err;
    char *gbnf = NULL;
    if (hr_grammar_from_json_schema(schema, &gbnf, &err) < 0) {
        fprintf(stderr, "schema: %s\n", err.msg);
        exit(1);
    }
    int32_t n_vocab = hr_vocab_n_tokens(v);
    float *logits = malloc((size_t)n_vocab * sizeof *logits);
    for (int32_t t = 0; t < n_vocab; t++)
        logits[t] = (float)(rnd() % 10000) / 1000.0f; /* flat-ish: many plausible tokens */

    printf("\n== %s: %s\n", label, schema);
    {
        /* the sampler alone, for comparison */
        struct hr_sampler_params p;
        struct hr_sampler *s = NULL;
        hr_sampler_defaults(&p, 1);
        hr_sampler_new(&p, n_vocab, &s);
        double t0 = now_ms();
        for (int r = 0; r < 20; r++)
            hr_sampler_sample(s, logits);
        printf("no grammar: sample(top-k 40) %.3f ms\n", (now_ms() - t0) / 20);
        hr_sampler_free(s);
    }
    double sum_mask = 0, sum_one = 0, sum_k40 = 0, sum_full = 0;
    for (size_t k = 0; k < n_states; k++) {
        struct hr_grammar *g = NULL;
        double t0 = now_ms();
        if (hr_grammar_new(v, gbnf, NULL, &g, &err) < 0) {
            fprintf(stderr, "grammar: %s\n", err.msg);
            exit(1);
        }
        double t1 = now_ms();
        grammar_mask(g);
        double t2 = now_ms();
        if (k == 0)
            printf("grammar_new %.1f ms (token texts), first mask %.1f ms (sorts them once)\n",
                   t1 - t0, t2 - t1);
        if (grammar_accept_text(g, states[k], strlen(states[k])) < 0) {
            fprintf(stderr, "state '%s' rejected\n", states[k]);
            exit(1);
        }
        int reps = 20;
        const uint8_t *m = NULL;
        t0 = now_ms();
        for (int r = 0; r < reps; r++)
            m = grammar_mask(g);
        double mask = (now_ms() - t0) / reps;
        int32_t allowed = 0;
        for (int32_t t = 0; t < n_vocab; t++)
            allowed += m[t];

        int n_one = 4000;
        t0 = now_ms();
        for (int r = 0; r < n_one; r++)
            grammar_allows(g, (int32_t)(rnd() % (uint32_t)n_vocab));
        double one = (now_ms() - t0) / n_one * 1e3;

        struct hr_sampler_params p;
        struct hr_sampler *s = NULL;
        hr_sampler_defaults(&p, 1);
        hr_sampler_new(&p, n_vocab, &s);
        hr_sampler_set_grammar(s, g);
        t0 = now_ms();
        for (int r = 0; r < reps; r++)
            hr_sampler_sample(s, logits);
        double k40 = (now_ms() - t0) / reps;
        hr_sampler_free(s);
        p.top_k = 0;
        p.top_p = 1.0f;
        p.min_p = 0.0f;
        hr_sampler_new(&p, n_vocab, &s);
        hr_sampler_set_grammar(s, g);
        t0 = now_ms();
        for (int r = 0; r < reps; r++)
            hr_sampler_sample(s, logits);
        double full = (now_ms() - t0) / reps;
        hr_sampler_free(s);

        printf("after %-32s allowed %6d  mask %7.3f ms  one token %6.2f us  sample(top-k 40)"
               " %6.3f ms  sample(no filters) %6.3f ms\n",
               states[k][0] ? states[k] : "(start)", allowed, mask, one, k40, full);
        sum_mask += mask;
        sum_one += one;
        sum_k40 += k40;
        sum_full += full;
        hr_grammar_free(g);
    }
    printf("mean: mask %.3f ms, one token %.2f us, sample(top-k 40) %.3f ms, "
           "sample(no filters) %.3f ms\n",
           sum_mask / (double)n_states, sum_one / (double)n_states, sum_k40 / (double)n_states,
           sum_full / (double)n_states);
    free(logits);
    free(gbnf);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s MODEL.gguf\n", argv[0]);
        return 2;
    }
    struct hr_model_params mp = {.vocab_only = true};
    struct hr_model *m = NULL;
    struct hr_err err;
    if (hr_model_load(argv[1], &mp, &m, &err) < 0) {
        fprintf(stderr, "%s: %s\n", argv[1], err.msg);
        return 1;
    }
    const struct hr_vocab *v = hr_model_vocab(m);
    printf("vocabulary: %d tokens\n", hr_vocab_n_tokens(v));

    const char *const json_states[] = {
        "", "{", "{\"", "{\"name\": \"Al", "{\"name\": \"Al\", \"age\": 3",
        "{\"name\": \"Al\", \"age\": 30, ", "[1, 2", "[{\"a\": [true, null], \"b\": \"x y z",
    };
    run(v, "any JSON value", "{}", json_states, sizeof json_states / sizeof *json_states);

    const char *const tool_states[] = {
        "", "{\"city\": \"Par", "{\"city\": \"Paris\", \"days\": ", "{\"city\": \"Paris\", "
        "\"days\": 3, \"unit\": \"c",
    };
    run(v, "tool arguments",
        "{\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\"}, \"days\": "
        "{\"type\": \"integer\", \"minimum\": 1, \"maximum\": 14}, \"unit\": {\"enum\": "
        "[\"celsius\", \"fahrenheit\"]}}, \"required\": [\"city\", \"days\", \"unit\"]}",
        tool_states, sizeof tool_states / sizeof *tool_states);
    hr_model_free(m);
    return 0;
}
