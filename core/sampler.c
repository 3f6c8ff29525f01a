/*
 * sampler.c — choosing the next token from a row of logits, as llama.cpp's
 * default sampler chain does (FORMATS.md §7; src/llama-sampler.cpp,
 * common/sampling.cpp).
 *
 * The chain, in llama.cpp's order:
 *
 *   penalties → top-k → top-p → min-p → temperature → dist (one random draw)
 *
 * Every stage works on one candidate array ({id, logit, p}) that starts as the
 * whole vocabulary in id order and only shrinks. A stage that is off
 * (top_k <= 0, top_p >= 1, min_p <= 0, penalties neutral) does nothing. top-p
 * and min-p see the un-tempered logits; temperature comes last. T <= 0 is
 * greedy: the first maximum in the current order wins, without a draw.
 *
 * Bit-exactness with llama.cpp: the float arithmetic is the same, operation
 * for operation (fp32 softmax with a float sum for top-p, fp32 exp with a
 * double sum for the draw, float thresholds), and so is the order in which
 * candidates are visited. The draw uses our own std::mt19937 (seeded with the
 * low 32 bits of the seed) and libstdc++'s uniform_real_distribution<double>,
 * i.e. generate_canonical<double, 53>: two 32-bit outputs x1 then x2,
 * u = (x1 + x2·2^32) / 2^64 rounded once to double, clamped below 1. So a
 * seed gives the same tokens as llama.cpp built with GCC's libstdc++.
 *
 * Order of equal logits: llama.cpp sorts with std::partial_sort / std::sort,
 * which leave ties in an unspecified order. We sort by (logit descending,
 * id ascending), a total order, so results never depend on the sorting
 * method; this is the one place where a tie can make us differ from llama.cpp.
 * Invariant used by the sorts: while the candidates are not sorted they are in
 * ascending id order (only stable filters run on unsorted candidates).
 *
 * Grammar (hr_sampler_set_grammar; core/grammar.c). With a grammar
 * attached, a grammar stage follows min-p: it keeps the candidates the
 * grammar allows, in their order (a stable filter, so the invariants above
 * hold). The other stages have usually left a few dozen candidates, so this
 * is cheap; when many are left (filters off), one pass over the whole
 * vocabulary computes the mask instead of checking tokens one by one. When no
 * candidate is allowed, the chain runs again from the logits on the allowed
 * tokens only (as llama.cpp's grammar-first resampling does), so the pick is
 * always allowed. Without a grammar nothing of this runs and the results are
 * the same bits as before.
 *
 * Memory: every buffer is allocated in hr_sampler_new; sampling and accepting
 * allocate nothing (the grammar has buffers of its own).
 */
#include <hearth/hearth.h>

#include "grammar.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* ---- std::mt19937 ---------------------------------------------------------- */

#define MT_N 624
#define MT_M 397

struct mt19937 {
    uint32_t s[MT_N];
    uint32_t i; /* next state word to temper; MT_N: twist first */
};

static void mt_seed(struct mt19937 *mt, uint32_t seed)
{
    mt->s[0] = seed;
    for (uint32_t k = 1; k < MT_N; k++)
        mt->s[k] = 1812433253u * (mt->s[k - 1] ^ (mt->s[k - 1] >> 30)) + k;
    mt->i = MT_N;
}

static void mt_twist(struct mt19937 *mt)
{
    /* In place and in order: words past N-M read already-twisted words, as
     * the reference algorithm does. */
    for (uint32_t k = 0; k < MT_N; k++) {
        uint32_t y = (mt->s[k] & 0x80000000u) | (mt->s[(k + 1) % MT_N] & 0x7fffffffu);
        mt->s[k] = mt->s[(k + MT_M) % MT_N] ^ (y >> 1) ^ ((y & 1u) ? 0x9908b0dfu : 0u);
    }
    mt->i = 0;
}

static uint32_t mt_next(struct mt19937 *mt)
{
    if (mt->i >= MT_N)
        mt_twist(mt);
    uint32_t y = mt->s[mt->i++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    return y;
}

/* libstdc++ generate_canonical<double, 53>(mt19937): k = ceil(53/32) = 2 draws,
 * the first is the low word. The sum is rounded once to double; the division
 * by 2^64 is exact. A result that rounds up to 1 becomes the largest double
 * below 1. uniform_real_distribution<double>(0, 1) returns it unchanged
 * (u·(1−0)+0). */
static double mt_canonical(struct mt19937 *mt)
{
    double sum = 0.0, scale = 1.0;
    for (int k = 0; k < 2; k++) {
        sum += (double)mt_next(mt) * scale;
        scale *= 4294967296.0;
    }
    double u = sum / scale;
    if (u >= 1.0)
        u = nextafter(1.0, 0.0);
    return u;
}

/* ---- candidates and their order --------------------------------------------- */

struct cand {
    int32_t id;
    float logit;
    float p; /* probability, valid after a softmax stage */
};

/* The sort order: higher logit first, lower id first among equal logits. */
static inline bool before(const struct cand *a, const struct cand *b)
{
    return a->logit > b->logit || (a->logit == b->logit && a->id < b->id);
}

/* Heap whose root is the candidate that comes last in the sort order. */
static void sift_down(struct cand *h, size_t n, size_t i)
{
    struct cand x = h[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && before(&h[c], &h[c + 1]))
            c++;
        if (!before(&x, &h[c]))
            break;
        h[i] = h[c];
        i = c;
    }
    h[i] = x;
}

/* Writes the first k (1 <= k <= n) of src[0..n) in sort order to dst[0..k),
 * in O(n log k). dst may equal src; then src[k..n) is left in an unspecified
 * state (the caller truncates to k). */
static void select_top(const struct cand *src, size_t n, struct cand *dst, size_t k)
{
    if (dst != src)
        memcpy(dst, src, k * sizeof *dst);
    for (size_t i = k / 2; i-- > 0;)
        sift_down(dst, k, i);
    for (size_t j = k; j < n; j++) {
        if (before(&src[j], &dst[0])) {
            dst[0] = src[j];
            sift_down(dst, k, 0);
        }
    }
    for (size_t end = k; end-- > 1;) {
        struct cand t = dst[0];
        dst[0] = dst[end];
        dst[end] = t;
        sift_down(dst, end, 0);
    }
}

/* Radix key: ascending keys give descending logits. -0 and +0 compare equal
 * as floats, so they share a key and stay in id order. */
static inline uint32_t sort_key(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if (u == 0x80000000u)
        u = 0;
    u = (u & 0x80000000u) ? ~u : (u | 0x80000000u);
    return ~u;
}

/* Sorts a[0..n) fully: a stable LSD radix sort (4 passes of 8 bits, through
 * tmp[0..n)), O(n). Called only on unsorted candidates, which are in id order,
 * so stability gives exactly the (logit desc, id asc) order of select_top. */
static void sort_all(struct cand *a, struct cand *tmp, size_t n)
{
    uint32_t off[4][256];
    memset(off, 0, sizeof off);
    for (size_t i = 0; i < n; i++) {
        uint32_t k = sort_key(a[i].logit);
        for (int b = 0; b < 4; b++)
            off[b][(k >> (8 * b)) & 0xff]++;
    }
    for (int b = 0; b < 4; b++) {
        uint32_t sum = 0;
        for (int d = 0; d < 256; d++) {
            uint32_t c = off[b][d];
            off[b][d] = sum;
            sum += c;
        }
    }
    struct cand *src = a, *dst = tmp;
    for (int b = 0; b < 4; b++) {
        for (size_t i = 0; i < n; i++)
            dst[off[b][(sort_key(src[i].logit) >> (8 * b)) & 0xff]++] = src[i];
        struct cand *t = src;
        src = dst;
        dst = t;
    }
    /* four passes: the result is back in a */
}

/* ---- the sampler ------------------------------------------------------------ */

struct hr_sampler {
    struct hr_sampler_params par;
    int32_t n_vocab;
    bool penalties; /* the penalty stage is on (llama.cpp: not an empty sampler) */

    struct cand *cur; /* [n_vocab] the candidates of the current call */
    struct cand *tmp; /* [n_vocab] scratch for sorting */
    size_t n;         /* live candidates in cur */
    bool sorted;      /* cur[0..n) is in sort order */

    /* Penalty window: count[t] = occurrences of token t among the last
     * penalty_last_n accepted tokens (all of them when penalty_last_n is -1).
     * ring holds the window's tokens in acceptance order when it is bounded;
     * out-of-range ids take a slot but are not counted. */
    int32_t *count; /* [n_vocab], or NULL when penalties are off */
    int32_t *ring;  /* [penalty_last_n], or NULL when unbounded or off */
    int32_t ring_head, ring_len;

    struct mt19937 rng;

    struct hr_grammar *grammar; /* borrowed; NULL: unconstrained */
};

/* Above this many candidates the grammar stage asks for the whole
 * vocabulary's mask (one sorted walk over all token texts) rather than
 * checking each candidate on its own. */
#define GRAMMAR_MASK_MIN 2048

void hr_sampler_defaults(struct hr_sampler_params *p, uint64_t seed)
{
    /* common/common.h, struct common_params_sampling */
    *p = (struct hr_sampler_params){
        .temp = 0.80f,
        .top_k = 40,
        .top_p = 0.95f,
        .min_p = 0.05f,
        .repeat_penalty = 1.00f,
        .freq_penalty = 0.00f,
        .presence_penalty = 0.00f,
        .penalty_last_n = 64,
        .seed = seed,
    };
}

int hr_sampler_new(const struct hr_sampler_params *p, int32_t n_vocab, struct hr_sampler **out)
{
    struct hr_sampler *s = NULL;
    int rc = -EINVAL;

    if (!p || !out || n_vocab <= 0 || p->penalty_last_n < -1)
        goto fail;
    if (isnan(p->temp) || isnan(p->top_p) || isnan(p->min_p) || isnan(p->repeat_penalty) ||
        isnan(p->freq_penalty) || isnan(p->presence_penalty))
        goto fail;

    rc = -ENOMEM;
    s = calloc(1, sizeof *s);
    if (!s)
        goto fail;
    s->par = *p;
    s->n_vocab = n_vocab;
    s->penalties =
        p->penalty_last_n != 0 &&
        !(p->repeat_penalty == 1.0f && p->freq_penalty == 0.0f && p->presence_penalty == 0.0f);
    s->cur = malloc((size_t)n_vocab * sizeof *s->cur);
    s->tmp = malloc((size_t)n_vocab * sizeof *s->tmp);
    if (!s->cur || !s->tmp)
        goto fail;
    if (s->penalties) {
        s->count = calloc((size_t)n_vocab, sizeof *s->count);
        if (!s->count)
            goto fail;
        if (p->penalty_last_n > 0) {
            s->ring = malloc((size_t)p->penalty_last_n * sizeof *s->ring);
            if (!s->ring)
                goto fail;
        }
    }
    mt_seed(&s->rng, (uint32_t)p->seed);
    *out = s;
    return 0;

fail:
    hr_sampler_free(s);
    return rc;
}

void hr_sampler_free(struct hr_sampler *s)
{
    if (!s)
        return;
    free(s->cur);
    free(s->tmp);
    free(s->count);
    free(s->ring);
    free(s);
}

void hr_sampler_accept(struct hr_sampler *s, int32_t token)
{
    if (!s || !s->penalties)
        return;
    bool in = token >= 0 && token < s->n_vocab;
    if (in && s->count[token] < INT32_MAX)
        s->count[token]++;
    if (!s->ring)
        return; /* unbounded window */

    int32_t cap = s->par.penalty_last_n;
    if (s->ring_len < cap) {
        s->ring[(s->ring_head + s->ring_len) % cap] = token;
        s->ring_len++;
        return;
    }
    int32_t old = s->ring[s->ring_head];
    if (old >= 0 && old < s->n_vocab)
        s->count[old]--;
    s->ring[s->ring_head] = token;
    s->ring_head = (s->ring_head + 1) % cap;
}

/* llama_sampler_penalties_apply. Runs first, on the candidates in id order
 * (the whole vocabulary, or the tokens a grammar allows). */
static void stage_penalties(struct hr_sampler *s)
{
    const float rep = s->par.repeat_penalty;
    const float freq = s->par.freq_penalty;
    const float pres = s->par.presence_penalty;
    for (size_t i = 0; i < s->n; i++) {
        int32_t c = s->count[s->cur[i].id];
        if (c <= 0)
            continue;
        float l = s->cur[i].logit;
        /* divide positive logits, multiply the others, so the penalty always
         * lowers the logit */
        if (l <= 0)
            l *= rep;
        else
            l /= rep;
        l -= (float)c * freq + 1.0f * pres;
        s->cur[i].logit = l;
    }
    s->sorted = false;
}

/* llama_sampler_top_k_impl */
static void stage_top_k(struct hr_sampler *s)
{
    size_t k = (size_t)s->par.top_k;
    if (k > s->n)
        k = s->n;
    if (!s->sorted)
        select_top(s->cur, s->n, s->cur, k);
    s->n = k;
    s->sorted = true;
}

/* llama_sampler_softmax_impl(cur, false): p = exp(l − max) / Σ, in float,
 * summed in the current order. */
static void softmax(struct hr_sampler *s)
{
    struct cand *c = s->cur;
    float max_l = c[0].logit;
    if (!s->sorted) {
        for (size_t i = 1; i < s->n; i++)
            if (max_l < c[i].logit)
                max_l = c[i].logit;
    }
    float sum = 0.0f;
    for (size_t i = 0; i < s->n; i++) {
        float p = expf(c[i].logit - max_l);
        c[i].p = p;
        sum += p;
    }
    for (size_t i = 0; i < s->n; i++)
        c[i].p /= sum;
}

/* llama_sampler_top_p_apply (min_keep 0): keep the shortest prefix, in sort
 * order, whose float running sum of probabilities reaches top_p; all of them
 * if it never does. Unsorted and large: sort only the best 256 first and
 * sort everything only if they do not reach top_p. */
static void stage_top_p(struct hr_sampler *s)
{
    softmax(s);

    const struct cand *pd = s->cur;
    size_t k = s->n;
    if (!s->sorted && s->n > 1024) {
        k = 256;
        select_top(s->cur, s->n, s->tmp, k);
        pd = s->tmp;
    } else if (!s->sorted) {
        sort_all(s->cur, s->tmp, s->n);
    }

    float cum = 0.0f;
    size_t last = s->n;
    for (size_t i = 0; i < s->n; i++) {
        cum += pd[i].p;
        if (cum >= s->par.top_p) {
            last = i + 1;
            break;
        }
        if (pd == s->tmp && i == k - 1) {
            /* the best 256 were not enough; cur is still in id order */
            sort_all(s->cur, s->tmp, s->n);
            pd = s->cur;
        }
    }
    if (pd == s->tmp)
        memcpy(s->cur, s->tmp, last * sizeof *s->cur);
    s->n = last;
    s->sorted = true;
}

/* llama_sampler_min_p_apply (min_keep 0): keep logit >= max + ln(min_p). On
 * unsorted candidates a stable filter (order kept); when that would keep
 * nothing (only with -inf/NaN logits), or on sorted candidates, the prefix of
 * the sorted order, which always keeps the first. */
static void stage_min_p(struct hr_sampler *s)
{
    struct cand *c = s->cur;
    const float lnp = logf(s->par.min_p);

    if (!s->sorted) {
        float max_l = -FLT_MAX;
        for (size_t i = 0; i < s->n; i++)
            if (max_l < c[i].logit)
                max_l = c[i].logit;
        const float min_l = max_l + lnp;
        size_t m = 0;
        for (size_t i = 0; i < s->n; i++)
            if (c[i].logit >= min_l)
                c[m++] = c[i];
        if (m > 0) {
            s->n = m;
            return;
        }
        sort_all(c, s->tmp, s->n);
        s->sorted = true;
    }
    const float min_l = c[0].logit + lnp;
    size_t i = 1;
    while (i < s->n && !(c[i].logit < min_l))
        i++;
    s->n = i;
}

/* llama_sampler_dist_apply: one draw u in [0,1); the first candidate, in the
 * current order, whose running sum of exp(l − max) reaches u·Σ. A single
 * candidate is returned without a draw, as llama.cpp does. */
static int32_t stage_dist(struct hr_sampler *s)
{
    struct cand *c = s->cur;
    if (s->n == 1)
        return c[0].id;

    float max_l = c[0].logit;
    if (!s->sorted) {
        for (size_t i = 1; i < s->n; i++)
            if (max_l < c[i].logit)
                max_l = c[i].logit;
    }
    double total = 0.0;
    for (size_t i = 0; i < s->n; i++) {
        float p = expf(c[i].logit - max_l);
        c[i].p = p;
        total += p;
    }
    const double target = total * mt_canonical(&s->rng);
    double run = 0.0;
    for (size_t i = 0; i < s->n; i++) {
        run += c[i].p;
        if (run >= target)
            return c[i].id;
    }
    return c[s->n - 1].id; /* only reachable with NaN logits */
}

/* The filter stages on cur[0..n) in id order. */
static void stages(struct hr_sampler *s)
{
    s->sorted = false;
    if (s->penalties)
        stage_penalties(s);
    if (s->par.top_k > 0)
        stage_top_k(s);
    if (s->par.top_p < 1.0f)
        stage_top_p(s);
    if (s->par.min_p > 0.0f)
        stage_min_p(s);
}

/* The candidate filter stages, shared by hr_sampler_sample and the test hook. */
static void filter(struct hr_sampler *s, const float *logits)
{
    for (int32_t t = 0; t < s->n_vocab; t++)
        s->cur[t] = (struct cand){.id = t, .logit = logits[t], .p = 0.0f};
    s->n = (size_t)s->n_vocab;
    stages(s);
}

/* Keeps the candidates the grammar allows, in order. */
static int stage_grammar(struct hr_sampler *s)
{
    struct hr_grammar *g = s->grammar;
    const int32_t gn = grammar_n_vocab(g);
    size_t m = 0;
    if (gn == 0)
        return -EINVAL; /* made without a vocabulary */
    if (s->n > GRAMMAR_MASK_MIN) {
        const uint8_t *mask = grammar_mask(g);
        if (!mask)
            return -ENOMEM;
        for (size_t i = 0; i < s->n; i++)
            if (s->cur[i].id < gn && mask[s->cur[i].id])
                s->cur[m++] = s->cur[i];
    } else {
        for (size_t i = 0; i < s->n; i++)
            if (grammar_allows(g, s->cur[i].id))
                s->cur[m++] = s->cur[i];
    }
    s->n = m;
    return 0;
}

/* No candidate survived the grammar stage: the chain again, on the allowed
 * tokens of the whole vocabulary. */
static int grammar_first(struct hr_sampler *s, const float *logits)
{
    const uint8_t *mask = grammar_mask(s->grammar);
    const int32_t gn = grammar_n_vocab(s->grammar);
    if (!mask)
        return -ENOMEM;
    size_t n = 0;
    for (int32_t t = 0; t < s->n_vocab && t < gn; t++)
        if (mask[t])
            s->cur[n++] = (struct cand){.id = t, .logit = logits[t], .p = 0.0f};
    if (n == 0)
        return -ENOENT;
    s->n = n;
    stages(s);
    return 0;
}

int32_t hr_sampler_sample(struct hr_sampler *s, const float *logits)
{
    if (!s || !logits)
        return -EINVAL;
    filter(s, logits);
    if (s->grammar) {
        int rc = stage_grammar(s);
        if (rc == 0 && s->n == 0)
            rc = grammar_first(s, logits);
        if (rc < 0)
            return rc;
    }

    const float temp = s->par.temp;
    if (temp <= 0.0f) {
        /* llama_sampler_temp_impl with T <= 0 leaves only the first maximum;
         * the draw that follows in llama.cpp cannot pick anything else. */
        size_t best = 0;
        for (size_t i = 1; i < s->n; i++)
            if (s->cur[i].logit > s->cur[best].logit)
                best = i;
        return s->cur[best].id;
    }
    if (temp != 1.0f) {
        for (size_t i = 0; i < s->n; i++)
            s->cur[i].logit /= temp;
    }
    return stage_dist(s);
}

void hr_sampler_set_grammar(struct hr_sampler *s, struct hr_grammar *g)
{
    if (s)
        s->grammar = g;
}

int hr_sampler_accept_generated(struct hr_sampler *s, int32_t token)
{
    if (!s)
        return -EINVAL;
    if (s->grammar) {
        int rc = hr_grammar_accept(s->grammar, token);
        if (rc < 0)
            return rc;
    }
    hr_sampler_accept(s, token);
    return 0;
}

/* ---- test hooks --------------------------------------------------------------
 * Not part of the engine API: tests/test_sampler.c declares these itself to
 * check the RNG against published vectors and the filters exactly. */

uint32_t sampler_test_rng_u32(struct hr_sampler *s);
double sampler_test_rng_canonical(struct hr_sampler *s);
size_t sampler_test_candidates(struct hr_sampler *s, const float *logits, int32_t *ids, size_t cap);

/* The next raw mt19937 output of the sampler's generator. */
uint32_t sampler_test_rng_u32(struct hr_sampler *s)
{
    return mt_next(&s->rng);
}

/* The next uniform draw in [0,1), as the dist stage takes it. */
double sampler_test_rng_canonical(struct hr_sampler *s)
{
    return mt_canonical(&s->rng);
}

/* Runs penalties → top-k → top-p → min-p on logits and writes the ids that
 * survive, in their final order, to ids (at most cap). Returns how many
 * survive. */
size_t sampler_test_candidates(struct hr_sampler *s, const float *logits, int32_t *ids, size_t cap)
{
    filter(s, logits);
    for (size_t i = 0; i < s->n && i < cap; i++)
        ids[i] = s->cur[i].id;
    return s->n;
}
