/*
 * test_sampler.c — the sampler (core/sampler.c): the mt19937 + canonical draw
 * against published vectors, greedy, the effect and order of every stage of
 * the chain (penalties → top-k → top-p → min-p → temperature → dist), seeds,
 * defaults. Statistical tests use fixed seeds, so they are deterministic; their
 * tolerances are several standard deviations wide.
 */
#include <criterion/criterion.h>

#include <hearth/hearth.h>

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Test hooks exported by core/sampler.c (not part of the API). */
uint32_t sampler_test_rng_u32(struct hr_sampler *s);
double sampler_test_rng_canonical(struct hr_sampler *s);
size_t sampler_test_candidates(struct hr_sampler *s, const float *logits, int32_t *ids, size_t cap);

/* ---- helpers ------------------------------------------------------------------ */

/* Every filter off, temperature T. */
static struct hr_sampler_params plain(float temp, uint64_t seed)
{
    struct hr_sampler_params p;
    hr_sampler_defaults(&p, seed);
    p.temp = temp;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    return p;
}

static struct hr_sampler *mk(const struct hr_sampler_params *p, int32_t n_vocab)
{
    struct hr_sampler *s = NULL;
    int rc = hr_sampler_new(p, n_vocab, &s);
    cr_assert_eq(rc, 0, "hr_sampler_new: %d", rc);
    cr_assert_not_null(s);
    return s;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint32_t rnd_u32(void)
{
    /* xorshift64* — test data only */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545f4914f6cdd1dull) >> 32);
}

/* uniform in [lo, hi) */
static float rnd_f(float lo, float hi)
{
    return lo + (hi - lo) * (float)(rnd_u32() >> 8) * (1.0f / 16777216.0f);
}

static int32_t argmax_first(const float *l, int32_t n)
{
    int32_t b = 0;
    for (int32_t i = 1; i < n; i++)
        if (l[i] > l[b])
            b = i;
    return b;
}

/* Draws n tokens (without accepting them) and counts them per id. */
static void draw_counts(struct hr_sampler *s, const float *logits, int32_t n_vocab, int n,
                        int *counts)
{
    memset(counts, 0, (size_t)n_vocab * sizeof *counts);
    for (int i = 0; i < n; i++) {
        int32_t t = hr_sampler_sample(s, logits);
        cr_assert(t >= 0 && t < n_vocab, "token %d out of range", t);
        counts[t]++;
    }
}

/* softmax(l / T) in double over the ids with keep[i] (all if keep is NULL). */
static void softmax_ref(const float *l, int n, double temp, const bool *keep, double *out)
{
    double mx = -INFINITY, sum = 0.0;
    for (int i = 0; i < n; i++)
        if ((!keep || keep[i]) && l[i] > mx)
            mx = l[i];
    for (int i = 0; i < n; i++) {
        out[i] = (!keep || keep[i]) ? exp((l[i] - mx) / temp) : 0.0;
        sum += out[i];
    }
    for (int i = 0; i < n; i++)
        out[i] /= sum;
}

/* Sort order of the reference: logit descending, then id ascending. */
static const float *cmp_logits;

static int cmp_ids(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    float lx = cmp_logits[x], ly = cmp_logits[y];
    if (lx > ly)
        return -1;
    if (lx < ly)
        return 1;
    return (x > y) - (x < y);
}

static void sorted_ids(const float *l, int32_t n, int32_t *ids)
{
    for (int32_t i = 0; i < n; i++)
        ids[i] = i;
    cmp_logits = l;
    qsort(ids, (size_t)n, sizeof *ids, cmp_ids);
}

/* The top-p set by its definition (FORMATS.md §7): float softmax summed in id
 * order, float running sum in sorted order, shortest prefix reaching p.
 * Writes the kept ids in order and returns their number. */
static size_t top_p_ref(const float *l, int32_t n, float top_p, int32_t *ids)
{
    sorted_ids(l, n, ids);
    float mx = l[ids[0]], sum = 0.0f;
    float *p = malloc((size_t)n * sizeof *p);
    cr_assert_not_null(p);
    for (int32_t i = 0; i < n; i++) {
        p[i] = expf(l[i] - mx);
        sum += p[i];
    }
    float cum = 0.0f;
    size_t keep = (size_t)n;
    for (int32_t i = 0; i < n; i++) {
        cum += p[ids[i]] / sum;
        if (cum >= top_p) {
            keep = (size_t)i + 1;
            break;
        }
    }
    free(p);
    return keep;
}

/* ---- the random number generator ------------------------------------------------ */

Test(sampler, mt19937_published_vectors)
{
    /* C++ [rand.predef]: the 10000th output of a default-constructed mt19937
     * (seed 5489) is 4123659995; its first output is 3499211612. */
    struct hr_sampler_params p = plain(1.0f, 5489);
    struct hr_sampler *s = mk(&p, 4);
    cr_assert_eq(sampler_test_rng_u32(s), 3499211612u);
    uint32_t x = 0;
    for (int i = 2; i <= 10000; i++)
        x = sampler_test_rng_u32(s);
    cr_assert_eq(x, 4123659995u);
    hr_sampler_free(s);

    /* only the low 32 bits of the seed count, as in llama.cpp's uint32_t seed */
    p.seed = 0xabcd000000000000ull | 5489u;
    s = mk(&p, 4);
    for (int i = 1; i <= 10000; i++)
        x = sampler_test_rng_u32(s);
    cr_assert_eq(x, 4123659995u);
    hr_sampler_free(s);

    /* a different seed gives a different stream */
    p.seed = 5490;
    s = mk(&p, 4);
    cr_assert_neq(sampler_test_rng_u32(s), 3499211612u);
    hr_sampler_free(s);
}

Test(sampler, canonical_is_two_words_low_first)
{
    /* generate_canonical<double,53>: u = (x1 + x2·2^32) / 2^64 rounded once;
     * the exact 64-bit integer converted to double rounds the same way. */
    struct hr_sampler_params p = plain(1.0f, 42);
    struct hr_sampler *a = mk(&p, 4), *b = mk(&p, 4);
    for (int i = 0; i < 20000; i++) {
        uint64_t x1 = sampler_test_rng_u32(a), x2 = sampler_test_rng_u32(a);
        double want = (double)((x2 << 32) | x1) * 0x1p-64;
        if (want >= 1.0)
            want = nextafter(1.0, 0.0);
        double got = sampler_test_rng_canonical(b);
        cr_assert(got == want, "draw %d: %.17g != %.17g", i, got, want);
        cr_assert(got >= 0.0 && got < 1.0);
    }
    hr_sampler_free(a);
    hr_sampler_free(b);
}

Test(sampler, dist_draw_uses_the_stream)
{
    /* 4096 equal logits: every p is exp(0) = 1, so draw k picks
     * ceil(4096·u_k) − 1. Draw 5000 consumes outputs 9999 and 10000 of the
     * default-seeded stream, so it must be floor(4123659995 / 2^20). */
    enum { V = 4096, N = 5000 };
    float *l = calloc(V, sizeof *l);
    cr_assert_not_null(l);
    struct hr_sampler_params p = plain(1.0f, 5489);
    struct hr_sampler *s = mk(&p, V), *r = mk(&p, V);
    int32_t t = -1;
    for (int i = 0; i < N; i++) {
        t = hr_sampler_sample(s, l);
        double x = V * sampler_test_rng_canonical(r);
        int32_t want = x <= 1.0 ? 0 : (int32_t)ceil(x) - 1;
        cr_assert_eq(t, want, "draw %d", i);
    }
    cr_assert_eq(t, (int32_t)(4123659995u >> 20));
    hr_sampler_free(s);
    hr_sampler_free(r);
    free(l);
}

/* ---- greedy and top-k ------------------------------------------------------------- */

Test(sampler, greedy_picks_first_argmax)
{
    const float l[6] = {0.5f, 2.0f, -1.0f, 2.0f, 1.9f, 2.0f};
    const float temps[3] = {0.0f, -1.0f, -0.0f};
    for (int chain = 0; chain < 2; chain++) {
        for (int k = 0; k < 3; k++) {
            struct hr_sampler_params p;
            if (chain)
                hr_sampler_defaults(&p, 7); /* top-k 40 / top-p / min-p on */
            else
                p = plain(0.0f, 7);
            p.temp = temps[k];
            struct hr_sampler *s = mk(&p, 6);
            for (int i = 0; i < 10; i++)
                cr_assert_eq(hr_sampler_sample(s, l), argmax_first(l, 6));
            cr_assert_eq(argmax_first(l, 6), 1); /* the premise: a tie, first wins */
            /* greedy makes no draw: the stream is untouched */
            struct hr_sampler *fresh = mk(&p, 6);
            cr_assert_eq(sampler_test_rng_u32(s), sampler_test_rng_u32(fresh));
            hr_sampler_free(fresh);
            hr_sampler_free(s);
        }
    }

    /* a large vocabulary with a planted tie at the top */
    enum { V = 30000 };
    float *big = malloc(V * sizeof *big);
    cr_assert_not_null(big);
    for (int i = 0; i < V; i++)
        big[i] = rnd_f(-8.0f, 8.0f);
    big[20001] = big[9999] = 9.0f;
    struct hr_sampler_params p;
    hr_sampler_defaults(&p, 1);
    p.temp = 0.0f;
    struct hr_sampler *s = mk(&p, V);
    cr_assert_eq(hr_sampler_sample(s, big), 9999);
    p = plain(0.0f, 1);
    hr_sampler_free(s);
    s = mk(&p, V);
    cr_assert_eq(hr_sampler_sample(s, big), 9999);
    hr_sampler_free(s);
    free(big);
}

Test(sampler, top_k_1_is_greedy_at_any_temperature)
{
    enum { V = 2000 };
    float *l = malloc(V * sizeof *l);
    cr_assert_not_null(l);
    const float temps[6] = {0.0f, 0.01f, 0.5f, 1.0f, 2.0f, 100.0f};
    for (int k = 0; k < 6; k++) {
        struct hr_sampler_params p = plain(temps[k], 1000 + (uint64_t)k);
        p.top_k = 1;
        struct hr_sampler *s = mk(&p, V);
        for (int row = 0; row < 40; row++) {
            for (int i = 0; i < V; i++)
                l[i] = rnd_f(-5.0f, 5.0f);
            if (row % 4 == 0) /* a tie at the top */
                l[V - 1] = l[argmax_first(l, V)];
            if (row % 4 == 1) /* quantized logits: many ties */
                for (int i = 0; i < V; i++)
                    l[i] = floorf(l[i]);
            cr_assert_eq(hr_sampler_sample(s, l), argmax_first(l, V), "T=%g row %d", temps[k], row);
        }
        hr_sampler_free(s);
    }
    free(l);
}

/* ---- the distribution ------------------------------------------------------------- */

Test(sampler, empirical_distribution_matches_softmax)
{
    enum { V = 5, N = 40000 };
    const float l[V] = {1.0f, 0.2f, -0.5f, 2.0f, 0.0f};
    const float temps[3] = {0.7f, 1.0f, 1.6f};
    int counts[V];
    double want[V];
    for (int k = 0; k < 3; k++) {
        softmax_ref(l, V, temps[k], NULL, want);
        for (int chain = 0; chain < 2; chain++) {
            struct hr_sampler_params p = plain(temps[k], 99);
            if (chain)
                p.top_k = 40; /* sorted candidates: another code path */
            struct hr_sampler *s = mk(&p, V);
            draw_counts(s, l, V, N, counts);
            for (int i = 0; i < V; i++) {
                double f = (double)counts[i] / N;
                cr_assert(fabs(f - want[i]) < 0.01, "T=%g chain %d token %d: %.4f vs %.4f",
                          temps[k], chain, i, f, want[i]);
            }
            hr_sampler_free(s);
        }
    }
}

/* Probabilities 0.15, 0.03, 0.50, 0.07, 0.25 (ids not in order). */
static void five_logits(float *l)
{
    const double pr[5] = {0.15, 0.03, 0.50, 0.07, 0.25};
    for (int i = 0; i < 5; i++)
        l[i] = (float)log(pr[i]);
}

/* Kept set of top-p by the definition, in double: sort, accumulate. */
static void top_p_keep(const float *l, double temp, double top_p, bool *keep)
{
    double pr[5];
    softmax_ref(l, 5, temp, NULL, pr);
    int32_t ids[5];
    sorted_ids(l, 5, ids);
    double cum = 0.0;
    bool done = false;
    for (int i = 0; i < 5; i++) {
        keep[ids[i]] = !done;
        cum += pr[ids[i]];
        if (cum >= top_p)
            done = true;
    }
}

static void min_p_keep(const float *l, double temp, double min_p, bool *keep)
{
    double pr[5], mx = 0.0;
    softmax_ref(l, 5, temp, NULL, pr);
    for (int i = 0; i < 5; i++)
        mx = fmax(mx, pr[i]);
    for (int i = 0; i < 5; i++)
        keep[i] = pr[i] >= min_p * mx;
}

static int n_kept(const bool *keep)
{
    int n = 0;
    for (int i = 0; i < 5; i++)
        n += keep[i];
    return n;
}

/* Draws N tokens and checks: excluded ids never come, kept ones follow
 * softmax(l / temp) restricted to the kept set. */
static void check_kept(const struct hr_sampler_params *p, const float *l, const bool *keep,
                       const char *what)
{
    enum { N = 20000 };
    int counts[5];
    double want[5];
    softmax_ref(l, 5, p->temp, keep, want);
    struct hr_sampler *s = mk(p, 5);
    draw_counts(s, l, 5, N, counts);
    for (int i = 0; i < 5; i++) {
        if (!keep[i]) {
            cr_assert_eq(counts[i], 0, "%s: excluded token %d drawn %d times", what, i, counts[i]);
        } else {
            cr_assert(counts[i] > 0, "%s: kept token %d never drawn", what, i);
            double f = (double)counts[i] / N;
            cr_assert(fabs(f - want[i]) < 0.015, "%s: token %d: %.4f vs %.4f", what, i, f, want[i]);
        }
    }
    hr_sampler_free(s);
}

Test(sampler, top_p_keeps_the_shortest_prefix)
{
    float l[5];
    five_logits(l);
    const float ps[4] = {0.8f, 0.5f, 0.74f, 0.95f};
    for (int k = 0; k < 4; k++) {
        bool keep[5];
        top_p_keep(l, 1.0, ps[k], keep);
        cr_assert(n_kept(keep) < 5, "premise: top-p %.2f excludes something", ps[k]);
        for (int chain = 0; chain < 2; chain++) {
            struct hr_sampler_params p = plain(1.0f, 5 + (uint64_t)k);
            p.top_p = ps[k];
            if (chain)
                p.top_k = 40;
            check_kept(&p, l, keep, "top-p");
        }
    }
}

Test(sampler, min_p_keeps_tokens_near_the_top)
{
    float l[5];
    five_logits(l);
    const float ps[3] = {0.2f, 0.35f, 0.1f};
    for (int k = 0; k < 3; k++) {
        bool keep[5];
        min_p_keep(l, 1.0, ps[k], keep);
        cr_assert(n_kept(keep) < 5, "premise: min-p %.2f excludes something", ps[k]);
        for (int chain = 0; chain < 2; chain++) {
            struct hr_sampler_params p = plain(1.0f, 11 + (uint64_t)k);
            p.min_p = ps[k];
            if (chain)
                p.top_k = 40; /* sorted path */
            check_kept(&p, l, keep, "min-p");
        }
    }
}

Test(sampler, temperature_comes_after_top_p_and_min_p)
{
    /* At T = 3 the distribution is flat enough that top-p 0.8 and min-p 0.2
     * computed on tempered logits would keep more tokens. llama.cpp applies
     * them at T = 1, then tempers what is left. */
    float l[5];
    five_logits(l);
    const double T = 3.0;
    bool keep[5], keep_if_tempered_first[5];

    top_p_keep(l, 1.0, 0.8, keep);
    top_p_keep(l, T, 0.8, keep_if_tempered_first);
    cr_assert_gt(n_kept(keep_if_tempered_first), n_kept(keep), "premise: the order matters");
    struct hr_sampler_params p = plain((float)T, 21);
    p.top_p = 0.8f;
    check_kept(&p, l, keep, "top-p then T");

    min_p_keep(l, 1.0, 0.2, keep);
    min_p_keep(l, T, 0.2, keep_if_tempered_first);
    cr_assert_gt(n_kept(keep_if_tempered_first), n_kept(keep), "premise: the order matters");
    p = plain((float)T, 22);
    p.min_p = 0.2f;
    check_kept(&p, l, keep, "min-p then T");

    /* and the temperature is applied to what is left: at T = 3 the kept
     * tokens are far from their T = 1 proportions */
    double at1[5], at3[5];
    softmax_ref(l, 5, 1.0, keep, at1);
    softmax_ref(l, 5, T, keep, at3);
    cr_assert_gt(fabs(at1[2] - at3[2]), 0.1, "premise: T changes the kept proportions");
}

/* ---- exact filters on large vocabularies -------------------------------------------- */

Test(sampler, filters_exact_on_large_vocab)
{
    enum { V = 20000 };
    float *l = malloc(V * sizeof *l);
    int32_t *got = malloc(V * sizeof *got), *want = malloc(V * sizeof *want);
    cr_assert(l && got && want);

    for (int shape = 0; shape < 4; shape++) {
        for (int i = 0; i < V; i++) {
            switch (shape) {
            case 0: /* peaked: top-p is reached within the best 256 */
                l[i] = rnd_f(-10.0f, 10.0f) + (i % 97 == 0 ? 15.0f : 0.0f);
                break;
            case 1: /* flat: top-p needs the full sort */
                l[i] = rnd_f(0.0f, 1.0f);
                break;
            case 2: /* few distinct values: many ties */
                l[i] = floorf(rnd_f(-4.0f, 4.0f));
                break;
            default: /* +0 and -0 compare equal: ties too */
                l[i] = (rnd_u32() & 1) ? 0.0f : -0.0f;
                break;
            }
        }

        /* top-k: the k best in (logit desc, id asc) order */
        const int32_t ks[3] = {1, 40, 3000};
        for (int k = 0; k < 3; k++) {
            struct hr_sampler_params p = plain(1.0f, 1);
            p.top_k = ks[k];
            struct hr_sampler *s = mk(&p, V);
            size_t n = sampler_test_candidates(s, l, got, V);
            sorted_ids(l, V, want);
            cr_assert_eq(n, (size_t)ks[k]);
            for (size_t i = 0; i < n; i++)
                cr_assert_eq(got[i], want[i], "shape %d top-k %d pos %zu", shape, ks[k], i);
            hr_sampler_free(s);
        }

        /* top-p on unsorted candidates */
        const float ps[3] = {0.5f, 0.9f, 0.999f};
        for (int k = 0; k < 3; k++) {
            struct hr_sampler_params p = plain(1.0f, 1);
            p.top_p = ps[k];
            struct hr_sampler *s = mk(&p, V);
            size_t n = sampler_test_candidates(s, l, got, V);
            size_t m = top_p_ref(l, V, ps[k], want);
            cr_assert_eq(n, m, "shape %d top-p %g: %zu vs %zu", shape, ps[k], n, m);
            for (size_t i = 0; i < n; i++)
                cr_assert_eq(got[i], want[i], "shape %d top-p %g pos %zu", shape, ps[k], i);
            if (shape == 0)
                cr_assert_leq(n, 256, "premise: the peaked case needs at most 256");
            if (shape == 1 && ps[k] >= 0.9f)
                cr_assert_gt(n, 256, "premise: the flat case needs more than 256");
            hr_sampler_free(s);
        }

        /* min-p on unsorted candidates: a stable filter, id order kept */
        struct hr_sampler_params p = plain(1.0f, 1);
        p.min_p = 0.3f;
        struct hr_sampler *s = mk(&p, V);
        size_t n = sampler_test_candidates(s, l, got, V);
        float mx = l[argmax_first(l, V)], thr = mx + logf(0.3f);
        size_t m = 0;
        for (int32_t i = 0; i < V; i++)
            if (l[i] >= thr)
                want[m++] = i;
        cr_assert_eq(n, m);
        for (size_t i = 0; i < n; i++)
            cr_assert_eq(got[i], want[i], "shape %d min-p pos %zu", shape, i);
        hr_sampler_free(s);
    }
    free(l);
    free(got);
    free(want);
}

Test(sampler, min_p_fallback_with_all_minus_infinity)
{
    /* The unsorted filter keeps nothing (the max stays -FLT_MAX); llama.cpp
     * then sorts and keeps the prefix not below first + ln(p): -inf is not
     * below -inf, so all stay, in id order. The draw must not fail. */
    float l[4] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY};
    struct hr_sampler_params p = plain(1.0f, 3);
    p.min_p = 0.5f;
    struct hr_sampler *s = mk(&p, 4);
    int32_t ids[4];
    cr_assert_eq(sampler_test_candidates(s, l, ids, 4), 4);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(ids[i], i);
    int32_t t = hr_sampler_sample(s, l);
    cr_assert(t >= 0 && t < 4);
    hr_sampler_free(s);
}

/* ---- penalties ---------------------------------------------------------------------- */

static int32_t greedy_with(struct hr_sampler_params p, const float *l, int32_t n,
                           const int32_t *hist, int n_hist)
{
    p.temp = 0.0f;
    struct hr_sampler *s = mk(&p, n);
    for (int i = 0; i < n_hist; i++)
        hr_sampler_accept(s, hist[i]);
    int32_t t = hr_sampler_sample(s, l);
    hr_sampler_free(s);
    return t;
}

Test(sampler, penalties_change_the_choice)
{
    enum { V = 8 };
    const float pos[V] = {1.0f, 0.9f, 0.1f, 0.0f, -1.0f, -2.0f, -3.0f, -4.0f};
    const float neg[V] = {-1.0f, -1.2f, -3.0f, -4.0f, -5.0f, -6.0f, -7.0f, -8.0f};
    const float fr[V] = {1.0f, 0.75f, 0.1f, 0.0f, -1.0f, -2.0f, -3.0f, -4.0f};
    const int32_t h0[1] = {0}, h000[3] = {0, 0, 0}, h00[2] = {0, 0};
    struct hr_sampler_params p;
    hr_sampler_defaults(&p, 1);

    /* without history nothing changes */
    p.repeat_penalty = 1.5f;
    cr_assert_eq(greedy_with(p, pos, V, NULL, 0), 0);
    /* repeat penalty divides a positive logit: 1.0 / 1.5 < 0.9 */
    cr_assert_eq(greedy_with(p, pos, V, h0, 1), 1);
    /* and multiplies a negative one: -1.0 * 1.5 < -1.2 (dividing would not) */
    cr_assert_eq(greedy_with(p, neg, V, h0, 1), 1);
    /* the repeat penalty does not grow with the count: 1.0 / 1.1 > 0.9 */
    p.repeat_penalty = 1.1f;
    cr_assert_eq(greedy_with(p, pos, V, h000, 3), 0);

    /* frequency: subtracts count * f — 1.0 - 2 * 0.1 > 0.75 > 1.0 - 3 * 0.1 */
    p.repeat_penalty = 1.0f;
    p.freq_penalty = 0.1f;
    cr_assert_eq(greedy_with(p, fr, V, h00, 2), 0);
    cr_assert_eq(greedy_with(p, fr, V, h000, 3), 1);

    /* presence: subtracts once, whatever the count */
    p.freq_penalty = 0.0f;
    p.presence_penalty = 0.2f;
    cr_assert_eq(greedy_with(p, fr, V, h000, 3), 0);
    p.presence_penalty = 0.3f;
    cr_assert_eq(greedy_with(p, fr, V, h0, 1), 1);

    /* the window: only the last penalty_last_n accepted tokens count */
    p.presence_penalty = 0.0f;
    p.repeat_penalty = 2.0f;
    p.penalty_last_n = 2;
    const int32_t h056[3] = {0, 5, 6}, h05[2] = {0, 5};
    cr_assert_eq(greedy_with(p, pos, V, h05, 2), 1);
    cr_assert_eq(greedy_with(p, pos, V, h056, 3), 0);
    /* out-of-range ids take a slot in the window without counting */
    const int32_t h0x[2] = {0, -5}, h0y[2] = {0, 1000};
    p.penalty_last_n = 1;
    cr_assert_eq(greedy_with(p, pos, V, h0x, 2), 0);
    cr_assert_eq(greedy_with(p, pos, V, h0y, 2), 0);
    /* 0: off; -1: the whole history */
    p.penalty_last_n = 0;
    cr_assert_eq(greedy_with(p, pos, V, h0, 1), 0);
    p.penalty_last_n = -1;
    int32_t lots[300];
    lots[0] = 0;
    for (int i = 1; i < 300; i++)
        lots[i] = 2 + i % 6;
    cr_assert_eq(greedy_with(p, pos, V, lots, 300), 1);
    p.penalty_last_n = 64;
    cr_assert_eq(greedy_with(p, pos, V, lots, 300), 0);
}

Test(sampler, penalties_with_sampling)
{
    /* two tokens with equal logits; a presence penalty on token 0 moves the
     * draw frequencies to the softmax of the penalized logits */
    enum { N = 20000 };
    const float l[2] = {0.5f, 0.5f};
    struct hr_sampler_params p = plain(1.0f, 77);
    p.presence_penalty = 1.0f;
    struct hr_sampler *s = mk(&p, 2);
    hr_sampler_accept(s, 0);
    int counts[2];
    draw_counts(s, l, 2, N, counts);
    double want0 = 1.0 / (1.0 + exp(1.0));
    cr_assert(fabs((double)counts[0] / N - want0) < 0.015, "%.4f vs %.4f", (double)counts[0] / N,
              want0);
    hr_sampler_free(s);
}

/* ---- seeds, defaults, errors -------------------------------------------------------- */

static void sequence(uint64_t seed, const float *l, int32_t v, int32_t *out, int n)
{
    struct hr_sampler_params p;
    hr_sampler_defaults(&p, seed);
    p.temp = 1.5f;
    p.min_p = 0.0f;
    p.repeat_penalty = 1.1f;
    struct hr_sampler *s = mk(&p, v);
    for (int i = 0; i < n; i++) {
        out[i] = hr_sampler_sample(s, l);
        hr_sampler_accept(s, out[i]);
    }
    hr_sampler_free(s);
}

Test(sampler, seeds)
{
    enum { V = 50, N = 300 };
    float l[V];
    for (int i = 0; i < V; i++)
        l[i] = rnd_f(-1.0f, 1.0f);
    int32_t a[N], b[N], c[N];
    sequence(1234, l, V, a, N);
    sequence(1234, l, V, b, N);
    sequence(1235, l, V, c, N);
    int distinct = 0, differ = 0;
    for (int i = 0; i < N; i++) {
        cr_assert_eq(a[i], b[i], "same seed, draw %d", i);
        differ += a[i] != c[i];
        bool seen = false;
        for (int j = 0; j < i; j++)
            seen |= a[j] == a[i];
        distinct += !seen;
    }
    cr_assert_gt(distinct, 10, "premise: the draws vary");
    cr_assert_gt(differ, N / 2, "different seeds give different sequences");
}

Test(sampler, defaults_are_llama_cpp_defaults)
{
    /* common/common.h, common_params_sampling */
    struct hr_sampler_params p;
    memset(&p, 0xff, sizeof p);
    hr_sampler_defaults(&p, 0x123456789ull);
    cr_assert(p.temp == 0.8f);
    cr_assert_eq(p.top_k, 40);
    cr_assert(p.top_p == 0.95f);
    cr_assert(p.min_p == 0.05f);
    cr_assert(p.repeat_penalty == 1.0f);
    cr_assert(p.freq_penalty == 0.0f);
    cr_assert(p.presence_penalty == 0.0f);
    cr_assert_eq(p.penalty_last_n, 64);
    cr_assert_eq(p.seed, 0x123456789ull);
}

Test(sampler, bad_arguments)
{
    struct hr_sampler_params p;
    hr_sampler_defaults(&p, 1);
    static char dummy;
    struct hr_sampler *s = (struct hr_sampler *)(void *)&dummy; /* untouched on failure */
    struct hr_sampler *const sentinel = s;
    cr_assert_eq(hr_sampler_new(NULL, 10, &s), -EINVAL);
    cr_assert_eq(hr_sampler_new(&p, 0, &s), -EINVAL);
    cr_assert_eq(hr_sampler_new(&p, -3, &s), -EINVAL);
    cr_assert_eq(hr_sampler_new(&p, 10, NULL), -EINVAL);
    p.penalty_last_n = -2;
    cr_assert_eq(hr_sampler_new(&p, 10, &s), -EINVAL);
    p.penalty_last_n = 64;
    p.temp = NAN;
    cr_assert_eq(hr_sampler_new(&p, 10, &s), -EINVAL);
    p.temp = 0.8f;
    p.top_p = NAN;
    cr_assert_eq(hr_sampler_new(&p, 10, &s), -EINVAL);
    cr_assert_eq(s, sentinel);

    hr_sampler_free(NULL);
    hr_sampler_accept(NULL, 3);
    hr_sampler_defaults(&p, 1);
    s = mk(&p, 10);
    cr_assert_eq(hr_sampler_sample(s, NULL), -EINVAL);
    cr_assert_eq(hr_sampler_sample(NULL, (const float[10]){0}), -EINVAL);
    hr_sampler_accept(s, -1);
    hr_sampler_accept(s, 10);
    hr_sampler_free(s);
}
