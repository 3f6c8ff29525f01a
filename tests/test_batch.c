/*
 * test_batch.c — sequences with their own KV caches evaluated together
 * (hr_seq_*, hr_ctx_eval_batch, hr_ctx_set_abort).
 *
 * The contract the daemon relies on: a token's logits do not depend on what
 * else is in the pass. Every check compares the batched logits with those of
 * the same sequence evaluated alone by hr_ctx_eval on a context of its own,
 * bit for bit (memcmp), on every model found (the syn models of every arch ×
 * tensor type and the stories260K copies: tests/data, plus
 * ../shared/refdata when present), with F32 and F16 caches; meson runs this
 * executable again with HEARTH_ISA=scalar and avx2 so that every kernel path
 * is covered. Then: continuous batching (sequences joining and leaving at
 * different steps) reproduces each one's solo greedy generation; an abort
 * mid-pass leaves every n_past as it was and the next call as if the
 * aborted one never happened; bad calls are refused, named, with nothing
 * changed.
 */
#include "testutil.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <hearth/hearth.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_THREADS 2

/* Under the sanitizers (a -O0 build, ~20 times slower, and meson runs this
 * executable once per ISA level) the sweeps take the models shipped in
 * tests/data only: every code path of the pass is still taken there, and
 * the normal build sweeps every model. */
#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifndef SANITIZED
#define SANITIZED 0
#endif

/* Every model the sweep runs on: a missing one is skipped (refdata absent),
 * but those shipped in tests/data (SHIPPED) always run. */
static const char *const model_names[] = {
    "stories260K", "stories260K-q8_0", "stories260K-q4_0", "stories260K-q5_1",
#define SYN_ARCH(a)                                                                              \
    "syn-" a "-f32", "syn-" a "-f16", "syn-" a "-bf16", "syn-" a "-q8_0", "syn-" a "-q4_0",      \
        "syn-" a "-q4_1", "syn-" a "-q5_0", "syn-" a "-q5_1", "syn-" a "-q2_k",                  \
        "syn-" a "-q3_k_m", "syn-" a "-q4_k_m", "syn-" a "-q5_k_m", "syn-" a "-q6_k"
    SYN_ARCH("llama"), SYN_ARCH("qwen2"), SYN_ARCH("qwen3"),
};
#define N_MODELS (sizeof model_names / sizeof model_names[0])

/* The models in tests/data (the bundled stories260K among them). */
static const char *const shipped[] = {
    "stories260K",      "stories260K-q8_0",  "stories260K-q4_0",  "stories260K-q5_1",
    "syn-llama-q2_k",   "syn-llama-q4_k_m",  "syn-llama-q8_0",    "syn-qwen2-f16",
    "syn-qwen2-q4_0",   "syn-qwen3-q5_1",    "syn-qwen3-q6_k",
};
#define N_SHIPPED (sizeof shipped / sizeof shipped[0])

static struct hr_model *load(const char *name)
{
    char rel[128];
    snprintf(rel, sizeof rel, "models/%s.gguf", name);
    const char *path = strcmp(name, "stories260K") ? tu_find(rel) : tu_stories();
    if (!path)
        return NULL;
    struct hr_model *m;
    struct hr_err err;
    cr_assert_eq(hr_model_load(path, NULL, &m, &err), 0, "%s: load: %s", name, err.msg);
    return m;
}

static struct hr_ctx *new_ctx(struct hr_model *m, int32_t n_ctx, int32_t n_batch, uint32_t kv)
{
    struct hr_ctx_params cp = {
        .n_ctx = n_ctx, .n_batch = n_batch, .n_threads = N_THREADS, .kv_type = kv};
    struct hr_ctx *c;
    struct hr_err err;
    cr_assert_eq(hr_ctx_new(m, &cp, &c, &err), 0, "context: %s", err.msg);
    return c;
}

static struct hr_seq *new_seq(struct hr_ctx *c, int32_t n_ctx)
{
    struct hr_seq *s;
    struct hr_err err;
    cr_assert_eq(hr_seq_new(c, n_ctx, &s, &err), 0, "sequence: %s", err.msg);
    return s;
}

/* Deterministic pseudo-random tokens in [1, n_vocab). */
static void fill_tokens(int32_t *t, int n, uint32_t seed, int32_t n_vocab)
{
    for (int i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        t[i] = 1 + (int32_t)((seed >> 8) % (uint32_t)(n_vocab - 1));
    }
}

static int32_t argmax(const float *v, int32_t n)
{
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++)
        if (v[i] > v[best])
            best = i;
    return best;
}

static double max_diff(const float *a, const float *b, int32_t n)
{
    double d = 0;
    for (int32_t i = 0; i < n; i++)
        d = fmax(d, fabs((double)a[i] - (double)b[i]));
    return d;
}

/* Asserts two logit rows are the same bits, saying by how much they differ
 * when not. */
static void assert_same(const char *what, const float *got, const float *want, int32_t n)
{
    cr_assert(got && want, "%s: logits missing", what);
    cr_assert(!memcmp(got, want, (size_t)n * sizeof *got),
              "%s: batched logits differ from the solo evaluation (max |diff| %g, argmax %d vs "
              "%d)",
              what, max_diff(got, want, n), argmax(got, n), argmax(want, n));
}

static void eval_solo(struct hr_ctx *c, const int32_t *t, int32_t n, const char *what)
{
    struct hr_err err;
    cr_assert_eq(hr_ctx_eval(c, t, n, false, &err), 0, "%s: solo eval: %s", what, err.msg);
}

/* ---- two sequences in one pass == each alone --------------------------------------- */

/* A schedule of (tokens of A, tokens of B) per pass; 0 = not in the pass.
 * Mixes prefill chunks of several sizes with single decode tokens, on
 * either side and in either order. */
static const int schedule[][2] = {{7, 9}, {16, 1}, {1, 1}, {1, 0}, {0, 5}, {3, 1}, {1, 12}, {2, 2}};
#define N_STEPS (sizeof schedule / sizeof schedule[0])

static void two_sequences(struct hr_model *m, const char *name, uint32_t kv)
{
    int32_t n_vocab = hr_model_n_vocab(m);
    int32_t ta[64], tb[64];
    fill_tokens(ta, 64, 1234, n_vocab);
    fill_tokens(tb, 64, 987, n_vocab);
    struct hr_ctx *bc = new_ctx(m, 64, 32, kv);
    struct hr_ctx *ca = new_ctx(m, 64, 32, kv), *cb = new_ctx(m, 64, 32, kv);
    struct hr_seq *sa = new_seq(bc, 0), *sb = new_seq(bc, 48);
    cr_assert_eq(hr_seq_n_ctx(sa), 64);
    cr_assert_eq(hr_seq_n_ctx(sb), 48);
    /* the context's default sequence is busy too: batched sequences must
     * not disturb it (nor it them) */
    eval_solo(bc, tb, 5, name);
    int32_t fa = 0, fb = 0;
    for (size_t st = 0; st < N_STEPS; st++) {
        struct hr_batch_item it[2];
        int ni = 0, ia = -1, ib = -1;
        /* odd steps list B first */
        for (int k = 0; k < 2; k++) {
            int which = st % 2 ? 1 - k : k;
            int n = schedule[st][which];
            if (!n)
                continue;
            if (which == 0) {
                ia = ni;
                it[ni++] = (struct hr_batch_item){sa, ta + fa, n, NULL};
            } else {
                ib = ni;
                it[ni++] = (struct hr_batch_item){sb, tb + fb, n, NULL};
            }
        }
        struct hr_err err;
        cr_assert_eq(hr_ctx_eval_batch(bc, it, ni, &err), 0, "%s step %zu: %s", name, st,
                     err.msg);
        cr_assert_null(hr_ctx_logits(bc, -1), "hr_ctx_logits answers for hr_ctx_eval only");
        char what[96];
        if (ia >= 0) {
            eval_solo(ca, ta + fa, schedule[st][0], name);
            fa += schedule[st][0];
            snprintf(what, sizeof what, "%s kv %u step %zu A", name, kv, st);
            assert_same(what, it[ia].logits, hr_ctx_logits(ca, -1), n_vocab);
        }
        if (ib >= 0) {
            eval_solo(cb, tb + fb, schedule[st][1], name);
            fb += schedule[st][1];
            snprintf(what, sizeof what, "%s kv %u step %zu B", name, kv, st);
            assert_same(what, it[ib].logits, hr_ctx_logits(cb, -1), n_vocab);
        }
        cr_assert_eq(hr_seq_n_past(sa), fa);
        cr_assert_eq(hr_seq_n_past(sb), fb);
    }
    /* the default sequence kept its place and its cache */
    cr_assert_eq(hr_ctx_n_past(bc), 5);
    eval_solo(bc, tb + 5, 1, name);
    hr_ctx_truncate(cb, 0);
    eval_solo(cb, tb, 6, name);
    assert_same("default sequence after batches", hr_ctx_logits(bc, -1), hr_ctx_logits(cb, -1),
                n_vocab);

    /* chunking does not matter either: A's whole history in one call */
    hr_ctx_truncate(ca, 0);
    eval_solo(ca, ta, fa, name);
    hr_seq_truncate(sa, fa - 1);
    struct hr_batch_item one = {sa, ta + fa - 1, 1, NULL};
    struct hr_err err;
    cr_assert_eq(hr_ctx_eval_batch(bc, &one, 1, &err), 0, "%s: %s", name, err.msg);
    assert_same("A re-evaluated after truncation vs A in one call", one.logits,
                hr_ctx_logits(ca, -1), n_vocab);

    hr_seq_free(sa);
    hr_seq_free(sb);
    hr_ctx_free(bc);
    hr_ctx_free(ca);
    hr_ctx_free(cb);
}

/* The F16 cache changes only the KV store and attention, which do not
 * depend on the weight type: it runs on a few models (GQA and not). */
static bool f16_too(const char *name)
{
    return !strcmp(name, "stories260K") || !strcmp(name, "syn-qwen2-q4_0") ||
           !strcmp(name, "syn-llama-q4_k_m");
}

Test(batch, equals_solo_every_model, .timeout = 600)
{
    size_t n = SANITIZED ? N_SHIPPED : N_MODELS;
    int found = 0;
    for (size_t i = 0; i < n; i++) {
        const char *name = SANITIZED ? shipped[i] : model_names[i];
        struct hr_model *m = load(name);
        if (!m)
            continue;
        found++;
        two_sequences(m, name, HR_TYPE_F32);
        if (f16_too(name))
            two_sequences(m, name, HR_TYPE_F16);
        hr_model_free(m);
    }
    cr_log_info("%d models, batched logits bit-identical to solo on each", found);
    cr_assert_geq(found, (int)N_SHIPPED, "the models in tests/data must all be found (%d)",
                  found);
}

/* ---- continuous batching ----------------------------------------------------------- */

#define N_SEQ 4
#define MAX_GEN 16

struct client {
    int join;      /* pass at which it arrives */
    int n_prompt;  /* prompt length */
    int chunk;     /* prefill chunk size (its prompt may take several passes) */
    int n_gen;     /* tokens to generate, then it leaves */
    int32_t prompt[32];
    /* batched run */
    struct hr_seq *seq;
    int fed, n_out;
    int32_t out[MAX_GEN];
    uint64_t hash[MAX_GEN]; /* FNV-1a of the logits each token was picked from */
};

static uint64_t hash_logits(const float *l, int32_t n)
{
    uint64_t h = 1469598103934665603ull;
    const unsigned char *p = (const unsigned char *)l;
    for (size_t i = 0; i < (size_t)n * sizeof *l; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

static void continuous(struct hr_model *m, const char *name)
{
    int32_t n_vocab = hr_model_n_vocab(m);
    struct client cl[N_SEQ] = {
        {.join = 0, .n_prompt = 11, .chunk = 11, .n_gen = 12},
        {.join = 2, .n_prompt = 23, .chunk = 8, .n_gen = 7},
        {.join = 3, .n_prompt = 4, .chunk = 4, .n_gen = 16},
        {.join = 9, .n_prompt = 17, .chunk = 5, .n_gen = 9},
    };
    for (int i = 0; i < N_SEQ; i++)
        fill_tokens(cl[i].prompt, cl[i].n_prompt, 77 + 13 * (uint32_t)i, n_vocab);
    struct hr_ctx *bc = new_ctx(m, 64, 48, HR_TYPE_F32);
    int left = N_SEQ;
    for (int step = 0; left > 0; step++) {
        cr_assert_lt(step, 100, "%s: the schedule does not end", name);
        struct hr_batch_item it[N_SEQ];
        int who[N_SEQ], ni = 0;
        for (int i = 0; i < N_SEQ; i++) {
            struct client *c = &cl[i];
            if (step < c->join || (c->n_out == c->n_gen))
                continue;
            if (step == c->join)
                c->seq = new_seq(bc, 40);
            if (c->fed < c->n_prompt) {
                int n = c->n_prompt - c->fed < c->chunk ? c->n_prompt - c->fed : c->chunk;
                it[ni] = (struct hr_batch_item){c->seq, c->prompt + c->fed, n, NULL};
                c->fed += n;
            } else {
                it[ni] = (struct hr_batch_item){c->seq, &c->out[c->n_out - 1], 1, NULL};
            }
            who[ni++] = i;
        }
        if (!ni)
            continue;
        struct hr_err err;
        cr_assert_eq(hr_ctx_eval_batch(bc, it, ni, &err), 0, "%s pass %d: %s", name, step,
                     err.msg);
        for (int k = 0; k < ni; k++) {
            struct client *c = &cl[who[k]];
            if (c->fed < c->n_prompt)
                continue; /* mid-prompt: no token yet */
            c->hash[c->n_out] = hash_logits(it[k].logits, n_vocab);
            c->out[c->n_out++] = argmax(it[k].logits, n_vocab);
            if (c->n_out == c->n_gen) { /* leaves */
                hr_seq_free(c->seq);
                c->seq = NULL;
                left--;
            }
        }
    }
    hr_ctx_free(bc);

    /* each alone: the whole prompt in one call, then greedy decode */
    struct hr_ctx *sc = new_ctx(m, 64, 48, HR_TYPE_F32);
    for (int i = 0; i < N_SEQ; i++) {
        struct client *c = &cl[i];
        hr_ctx_truncate(sc, 0);
        eval_solo(sc, c->prompt, c->n_prompt, name);
        for (int k = 0; k < c->n_gen; k++) {
            const float *l = hr_ctx_logits(sc, -1);
            int32_t tok = argmax(l, n_vocab);
            cr_assert_eq(c->out[k], tok, "%s: client %d token %d is %d batched, %d alone", name,
                         i, k, c->out[k], tok);
            cr_assert_eq(c->hash[k], hash_logits(l, n_vocab),
                         "%s: client %d token %d: logits differ from the solo run", name, i, k);
            eval_solo(sc, &tok, 1, name);
        }
    }
    hr_ctx_free(sc);
}

/* The scheduling is what is tested here (the kernels are, on every model,
 * above): a real model and a GQA one with biases, plus one per kernel
 * family in the normal build. */
Test(batch, continuous_batching_equals_solo_greedy, .timeout = 600)
{
    static const char *const names[] = {
        "stories260K",   "syn-qwen2-q4_0", "syn-qwen3-q6_k",
        "syn-qwen2-f16", "syn-llama-q8_0", "syn-llama-q4_k_m", "stories260K-q5_1",
    };
    size_t n = SANITIZED ? 3 : sizeof names / sizeof names[0];
    for (size_t i = 0; i < n; i++) {
        struct hr_model *m = load(names[i]);
        cr_assert(m, "%s is shipped in tests/data", names[i]);
        continuous(m, names[i]);
        hr_model_free(m);
    }
}

/* ---- abort ------------------------------------------------------------------------- */

struct abort_state {
    int calls, fire_at; /* returns true from the fire_at-th call on (0: never) */
    pthread_t thread;
    bool other_thread;
};

static bool abort_fn(void *user)
{
    struct abort_state *a = user;
    if (!pthread_equal(pthread_self(), a->thread))
        a->other_thread = true;
    return a->fire_at > 0 && ++a->calls >= a->fire_at;
}

Test(batch, abort_keeps_state, .timeout = 120)
{
    struct hr_model *m = load("stories260K");
    int32_t n_vocab = hr_model_n_vocab(m);
    int32_t ta[40], tb[40];
    fill_tokens(ta, 40, 5, n_vocab);
    fill_tokens(tb, 40, 6, n_vocab);
    struct hr_ctx *bc = new_ctx(m, 64, 16, HR_TYPE_F32);
    struct hr_ctx *ref = new_ctx(m, 64, 16, HR_TYPE_F32);
    struct hr_seq *sa = new_seq(bc, 0), *sb = new_seq(bc, 0);
    struct hr_seq *ra = new_seq(ref, 0), *rb = new_seq(ref, 0);
    struct hr_err err;
    struct hr_batch_item it[2] = {{sa, ta, 6, NULL}, {sb, tb, 3, NULL}};
    struct hr_batch_item rt[2] = {{ra, ta, 6, NULL}, {rb, tb, 3, NULL}};
    cr_assert_eq(hr_ctx_eval_batch(bc, it, 2, &err), 0, "%s", err.msg);
    cr_assert_eq(hr_ctx_eval_batch(ref, rt, 2, &err), 0, "%s", err.msg);

    /* fire after two layers of the next pass (stories260K has 5) */
    struct abort_state ab = {.fire_at = 3, .thread = pthread_self()};
    hr_ctx_set_abort(bc, abort_fn, &ab);
    it[0] = (struct hr_batch_item){sa, ta + 6, 5, NULL};
    it[1] = (struct hr_batch_item){sb, tb + 3, 1, NULL};
    cr_assert_eq(hr_ctx_eval_batch(bc, it, 2, &err), -ECANCELED);
    cr_assert(strstr(err.msg, "cancel"), "%s", err.msg);
    cr_assert_eq(ab.calls, 3, "polled once per layer until it fired (%d)", ab.calls);
    cr_assert_not(ab.other_thread, "the abort function ran on another thread");
    cr_assert_null(it[0].logits, "no logits from a cancelled pass");
    cr_assert_eq(hr_seq_n_past(sa), 6);
    cr_assert_eq(hr_seq_n_past(sb), 3);

    /* never firing: polled, harmless; the continuation equals the reference */
    ab.fire_at = 0;
    ab.calls = 0;
    cr_assert_eq(hr_ctx_eval_batch(bc, it, 2, &err), 0, "%s", err.msg);
    rt[0] = (struct hr_batch_item){ra, ta + 6, 5, NULL};
    rt[1] = (struct hr_batch_item){rb, tb + 3, 1, NULL};
    cr_assert_eq(hr_ctx_eval_batch(ref, rt, 2, &err), 0, "%s", err.msg);
    assert_same("A after an aborted pass", it[0].logits, rt[0].logits, n_vocab);
    assert_same("B after an aborted pass", it[1].logits, rt[1].logits, n_vocab);

    /* hr_ctx_eval too: on the first poll ... */
    hr_ctx_set_abort(bc, abort_fn, &ab);
    ab.fire_at = 1;
    ab.calls = 0;
    cr_assert_eq(hr_ctx_eval(bc, ta, 4, false, &err), -ECANCELED);
    cr_assert_eq(hr_ctx_n_past(bc), 0);
    hr_ctx_set_abort(bc, NULL, NULL);
    eval_solo(bc, ta, 4, "after removing the abort function");
    eval_solo(ref, ta, 4, "reference");
    assert_same("hr_ctx_eval after removing the abort fn", hr_ctx_logits(bc, -1),
                hr_ctx_logits(ref, -1), n_vocab);
    /* ... and across its n_batch chunks: 36 tokens are passes of 16, 16
     * and 4, each polled 6 times (5 layers and the head); the 9th poll is
     * in the second pass */
    hr_ctx_set_abort(bc, abort_fn, &ab);
    ab.fire_at = 9;
    ab.calls = 0;
    cr_assert_eq(hr_ctx_eval(bc, ta + 4, 36, false, &err), -ECANCELED);
    cr_assert(strstr(err.msg, "after 16 of 36"), "%s", err.msg);
    cr_assert_eq(hr_ctx_n_past(bc), 4, "chunks done before the abort are forgotten too");
    cr_assert_null(hr_ctx_logits(bc, -1));
    ab.fire_at = 0;
    eval_solo(bc, ta + 4, 36, "after the abort");
    eval_solo(ref, ta + 4, 36, "reference");
    assert_same("hr_ctx_eval after an aborted call", hr_ctx_logits(bc, -1),
                hr_ctx_logits(ref, -1), n_vocab);

    hr_seq_free(sa);
    hr_seq_free(sb);
    hr_seq_free(ra);
    hr_seq_free(rb);
    hr_ctx_free(bc);
    hr_ctx_free(ref);
    hr_model_free(m);
}

/* ---- refused calls ------------------------------------------------------------------ */

/* Every refused call leaves the sequences and the logits as they were: the
 * next call's logits equal those of a context that never saw it. */
Test(batch, errors_name_the_item_and_change_nothing, .timeout = 120)
{
    struct hr_model *m = load("stories260K");
    int32_t n_vocab = hr_model_n_vocab(m);
    int32_t t[64];
    fill_tokens(t, 64, 42, n_vocab);
    struct hr_ctx *c = new_ctx(m, 64, 16, HR_TYPE_F32), *ref = new_ctx(m, 64, 16, HR_TYPE_F32);
    struct hr_seq *s[3] = {new_seq(c, 0), new_seq(c, 12), new_seq(c, 0)};
    struct hr_seq *r[3] = {new_seq(ref, 0), new_seq(ref, 12), new_seq(ref, 0)};
    struct hr_err err;
    struct hr_batch_item it[3], rt[3];
    for (int i = 0; i < 3; i++) {
        it[i] = (struct hr_batch_item){s[i], t + 10 * i, 4, NULL};
        rt[i] = (struct hr_batch_item){r[i], t + 10 * i, 4, NULL};
    }
    cr_assert_eq(hr_ctx_eval_batch(c, it, 3, &err), 0, "%s", err.msg);
    cr_assert_eq(hr_ctx_eval_batch(ref, rt, 3, &err), 0, "%s", err.msg);
    const float *before = it[1].logits;
    float keep[512];
    cr_assert_leq(n_vocab, 512);
    memcpy(keep, before, (size_t)n_vocab * sizeof *keep);

    /* too many tokens in total: 6 + 6 + 5 > 16 */
    struct hr_batch_item bad[3] = {{s[0], t, 6, NULL}, {s[1], t, 6, NULL}, {s[2], t, 5, NULL}};
    cr_assert_eq(hr_ctx_eval_batch(c, bad, 3, &err), -EINVAL);
    cr_assert(strstr(err.msg, "17") && strstr(err.msg, "batch size 16"), "%s", err.msg);
    cr_assert_null(bad[0].logits, "outputs are written only on success");
    /* a token out of range in item 2 */
    int32_t odd[2] = {t[0], n_vocab};
    bad[2] = (struct hr_batch_item){s[2], odd, 2, NULL};
    bad[1].n = 1;
    cr_assert_eq(hr_ctx_eval_batch(c, bad, 3, &err), -EINVAL);
    cr_assert(strstr(err.msg, "item 2") && strstr(err.msg, "out of range"), "%s", err.msg);
    odd[1] = -3;
    cr_assert_eq(hr_ctx_eval_batch(c, bad, 3, &err), -EINVAL);
    cr_assert(strstr(err.msg, "item 2") && strstr(err.msg, "-3"), "%s", err.msg);
    /* item 1's sequence is full: 4 cached + 9 > 12 */
    bad[1].n = 9;
    bad[2].n = 1;
    cr_assert_eq(hr_ctx_eval_batch(c, bad, 3, &err), -ENOSPC);
    cr_assert(strstr(err.msg, "item 1") && strstr(err.msg, "context is full") &&
                  strstr(err.msg, "room for 8"),
              "%s", err.msg);
    /* a sequence listed twice, none, of another context, nothing to do */
    bad[1].n = 1;
    bad[2].seq = s[0];
    cr_assert_eq(hr_ctx_eval_batch(c, bad, 3, &err), -EINVAL);
    cr_assert(strstr(err.msg, "item 2") && strstr(err.msg, "item 0"), "%s", err.msg);
    bad[2].seq = NULL;
    cr_assert_eq(hr_ctx_eval_batch(c, bad, 3, &err), -EINVAL);
    cr_assert(strstr(err.msg, "item 2"), "%s", err.msg);
    bad[2].seq = r[2];
    cr_assert_eq(hr_ctx_eval_batch(c, bad, 3, &err), -EINVAL);
    cr_assert(strstr(err.msg, "item 2") && strstr(err.msg, "another context"), "%s", err.msg);
    bad[2].seq = s[2];
    bad[0].n = 0;
    cr_assert_eq(hr_ctx_eval_batch(c, bad, 3, &err), -EINVAL);
    cr_assert(strstr(err.msg, "item 0") && strstr(err.msg, "nothing"), "%s", err.msg);
    cr_assert_eq(hr_ctx_eval_batch(c, bad, 0, &err), -EINVAL);

    for (int i = 0; i < 3; i++)
        cr_assert_eq(hr_seq_n_past(s[i]), 4, "a refused call changed sequence %d", i);
    cr_assert(!memcmp(before, keep, (size_t)n_vocab * sizeof *keep),
              "a refused call overwrote the last logits");
    for (int i = 0; i < 3; i++) {
        it[i] = (struct hr_batch_item){s[i], t + 40 + i, 1, NULL};
        rt[i] = (struct hr_batch_item){r[i], t + 40 + i, 1, NULL};
    }
    cr_assert_eq(hr_ctx_eval_batch(c, it, 3, &err), 0, "%s", err.msg);
    cr_assert_eq(hr_ctx_eval_batch(ref, rt, 3, &err), 0, "%s", err.msg);
    for (int i = 0; i < 3; i++)
        assert_same("after refused calls", it[i].logits, rt[i].logits, n_vocab);

    /* sequence sizes */
    struct hr_seq *q = NULL;
    cr_assert_eq(hr_seq_new(c, -1, &q, &err), -EINVAL);
    cr_assert_null(q);
    cr_assert_eq(hr_seq_n_ctx(s[0]), hr_ctx_n_ctx(c));
    hr_seq_free(NULL);

    for (int i = 0; i < 3; i++) {
        hr_seq_free(s[i]);
        hr_seq_free(r[i]);
    }
    hr_ctx_free(c);
    hr_ctx_free(ref);
    hr_model_free(m);
}

/* As many sequences as the batch has tokens, one token each: the per-item
 * bookkeeping holds n_batch items. */
Test(batch, one_token_per_sequence_fills_the_batch, .timeout = 120)
{
    struct hr_model *m = load("stories260K-q4_0");
    cr_assert(m);
    int32_t n_vocab = hr_model_n_vocab(m);
    enum { NB = 16 };
    int32_t t[NB];
    fill_tokens(t, NB, 3, n_vocab);
    struct hr_ctx *c = new_ctx(m, 32, NB, HR_TYPE_F16), *sc = new_ctx(m, 32, NB, HR_TYPE_F16);
    struct hr_seq *s[NB];
    struct hr_batch_item it[NB];
    for (int i = 0; i < NB; i++) {
        s[i] = new_seq(c, 8);
        it[i] = (struct hr_batch_item){s[i], &t[i], 1, NULL};
    }
    struct hr_err err;
    cr_assert_eq(hr_ctx_eval_batch(c, it, NB, &err), 0, "%s", err.msg);
    for (int i = 0; i < NB; i++) {
        hr_ctx_truncate(sc, 0);
        eval_solo(sc, &t[i], 1, "solo");
        assert_same("one token per sequence", it[i].logits, hr_ctx_logits(sc, -1), n_vocab);
        hr_seq_free(s[i]);
    }
    hr_ctx_free(c);
    hr_ctx_free(sc);
    hr_model_free(m);
}
