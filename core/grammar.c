/*
 * grammar.c — the incremental GBNF recognizer that constrains sampling
 * (hr_grammar_*; rules from grammar_parse.c, layout in grammar.h).
 *
 * State. As in llama.cpp, the recognizer's state is a set of stacks of
 * element positions: each stack is one way the text so far can continue,
 * its top a terminal (the next code point must match it) and the elements
 * below it the continuations to return to when the current sequence ends.
 * The empty stack means the text may end here. Feeding a code point keeps
 * the stacks whose top matches it, moves each past that terminal (popping
 * finished sequences) and expands rule references at the new top until
 * every top is a terminal again. The grammar has no left recursion, so
 * expansion terminates. A token's text is fed byte by byte through a strict
 * UTF-8 decoder; a token may end inside a multi-byte character (byte-level
 * and byte-fallback vocabularies do this), which is allowed when some stack
 * top can match a code point starting with those bytes, and the pending
 * bytes carry over to the next token.
 *
 * Representation. The committed state (after the accepted tokens) is kept
 * flat: for each stack its length and positions, bottom first. Work happens
 * in a scratch arena where stacks are hash-consed linked nodes {pos,
 * parent}: equal stacks are the same node id, so sets of stacks dedupe by id,
 * and moving a stack past a terminal costs one node instead of a copy. The
 * scratch is reset (a generation counter, O(1)) before an operation and
 * refilled from the committed stacks; each expansion pass marks the nodes it
 * has expanded, so shared sub-stacks are expanded once.
 *
 * Token masks. Checking one token runs its bytes from the committed state.
 * The whole vocabulary at once walks the token texts in sorted order,
 * reusing the state of the prefix shared with the previous text (a trie
 * walk without the trie: sorted order + longest common prefixes) and
 * skipping every text that extends a prefix already rejected — so a JSON
 * grammar outside a string visits a few hundred texts, not 150k.
 */
#include "grammar.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Scratch nodes: past the soft limit the scratch is reset at the next safe
 * point; an operation that would pass the hard limit fails (the token is
 * rejected) — only pathological ambiguous grammars get there. */
#define SCRATCH_SOFT_NODES (1u << 18)
#define SCRATCH_HARD_NODES (1u << 22)
#define NONE UINT32_MAX

struct gnode {
    uint32_t pos;    /* element index of the stack's top; NONE for the empty stack */
    uint32_t parent; /* the rest of the stack (node 0: empty) */
    uint32_t mark;   /* the expansion pass that last visited this node */
};

struct gslot {
    uint32_t id, gen; /* valid while gen == the grammar's gen */
};

/* A UTF-8 decoder between bytes: `need` continuation bytes still expected
 * for the character begun by `lead`, `val` its bits so far. */
struct u8st {
    uint32_t val;
    uint8_t need, lead, seen;
};

/* A token text, for the sorted walk. */
struct tpiece {
    const char *s;
    uint32_t len;
    int32_t id;
    uint64_t key; /* the first 8 bytes, big-endian, zero-padded: the radix sort key */
};

struct hr_grammar {
    struct grules *r;

    /* committed state: n_stacks stacks as [len, pos_bottom .. pos_top] */
    uint32_t *cst;
    size_t n_cst, cap_cst;
    uint32_t n_stacks;
    bool has_empty; /* one of them is the empty stack */
    struct u8st part;

    /* scratch */
    struct gnode *node;
    uint32_t n_node, cap_node;
    struct gslot *slot;
    uint32_t slot_mask, gen;
    uint32_t mark;
    uint32_t *work;
    size_t n_work, cap_work;
    uint32_t *sets; /* sets of node ids, appended; operations truncate */
    size_t n_sets, cap_sets;
    bool base_ok; /* sets[0 .. n_base) holds the committed stacks in the scratch */
    uint32_t n_base;
    bool failed;  /* an allocation or the hard node limit failed this operation */

    /* vocabulary (absent for text-only grammars) */
    const struct hr_vocab *vocab;
    int32_t n_vocab;
    char *text;        /* token texts, concatenated */
    uint32_t *off;     /* [n_vocab + 1]: text of t is text[off[t] .. off[t+1]) */
    uint8_t *eog;      /* [n_vocab] */
    struct tpiece *sorted; /* lazily: non-empty, non-EOG texts in byte order */
    uint32_t *lcp;     /* [n_sorted]: common prefix with the previous text */
    uint32_t n_sorted, max_len;
    uint8_t *allowed;  /* [n_vocab], grammar_mask's result */
    struct walk_state {
        uint32_t off, n; /* the set in sets[] */
        size_t end;      /* sets[] used after computing this depth */
        struct u8st u;
    } *walk;             /* [max_len + 1] */
};

/* ---- UTF-8 ---------------------------------------------------------------------- */

enum { U8_CHAR, U8_MORE, U8_BAD };

/* Strict: no overlong forms, surrogates or values past U+10FFFF. */
static int u8_feed(struct u8st *u, uint8_t b, uint32_t *cp)
{
    if (u->need == 0) {
        if (b < 0x80) {
            *cp = b;
            return U8_CHAR;
        }
        if (b >= 0xc2 && b <= 0xdf)
            u->need = 1, u->val = b & 0x1f;
        else if (b >= 0xe0 && b <= 0xef)
            u->need = 2, u->val = b & 0x0f;
        else if (b >= 0xf0 && b <= 0xf4)
            u->need = 3, u->val = b & 0x07;
        else
            return U8_BAD;
        u->lead = b;
        u->seen = 0;
        return U8_MORE;
    }
    if ((b & 0xc0) != 0x80)
        return U8_BAD;
    if (u->seen == 0) {
        /* the second byte's range decides overlongs, surrogates and U+10FFFF */
        uint8_t lo = 0x80, hi = 0xbf;
        switch (u->lead) {
        case 0xe0: lo = 0xa0; break;
        case 0xed: hi = 0x9f; break;
        case 0xf0: lo = 0x90; break;
        case 0xf4: hi = 0x8f; break;
        default: break;
        }
        if (b < lo || b > hi)
            return U8_BAD;
    }
    u->val = (u->val << 6) | (b & 0x3f);
    u->seen++;
    if (--u->need > 0)
        return U8_MORE;
    *cp = u->val;
    return U8_CHAR;
}

/* The code points a pending sequence can still become: [*lo, *hi]. */
static void u8_range(const struct u8st *u, uint32_t *lo, uint32_t *hi)
{
    unsigned shift = 6u * u->need;
    *lo = u->val << shift;
    *hi = *lo | ((1u << shift) - 1);
    if (u->seen == 0) {
        switch (u->lead) {
        case 0xe0: *lo = 0x800; break;
        case 0xed: *hi = 0xd7ff; break;
        case 0xf0: *lo = 0x10000; break;
        case 0xf4: *hi = 0x10ffff; break;
        default: break;
        }
    }
}

/* ---- terminals ---------------------------------------------------------------------- */

static bool class_has(const struct grules *r, const struct gclass *c, uint32_t cp)
{
    if (cp < 128)
        return (c->ascii[cp >> 6] >> (cp & 63)) & 1;
    if (c->n == 0)
        return c->neg; /* [^] (a grammar may have no range table at all) */
    const uint32_t *rg = r->ranges + 2 * c->first;
    uint32_t lo = 0, hi = c->n;
    while (lo < hi) { /* first range whose hi >= cp */
        uint32_t mid = (lo + hi) / 2;
        if (rg[2 * mid + 1] < cp)
            lo = mid + 1;
        else
            hi = mid;
    }
    bool in = lo < c->n && rg[2 * lo] <= cp;
    return in != c->neg;
}

static bool term_match(const struct grules *r, const struct gelem *e, uint32_t cp)
{
    switch (e->type) {
    case GE_CHAR: return e->val == cp;
    case GE_ANY: return true;
    case GE_CLASS: return class_has(r, &r->cls[e->val], cp);
    default: return false;
    }
}

/* Does the terminal match some code point in [lo, hi]? */
static bool term_match_range(const struct grules *r, const struct gelem *e, uint32_t lo,
                             uint32_t hi)
{
    if (e->type == GE_CHAR)
        return e->val >= lo && e->val <= hi;
    if (e->type == GE_ANY)
        return true;
    if (e->type != GE_CLASS)
        return false;
    const struct gclass *c = &r->cls[e->val];
    if (c->n == 0)
        return c->neg;
    const uint32_t *rg = r->ranges + 2 * c->first;
    for (uint32_t i = 0; i < c->n; i++) {
        bool meets = rg[2 * i] <= hi && rg[2 * i + 1] >= lo;
        if (!c->neg && meets)
            return true;
        /* ranges are merged: only one range can cover [lo, hi] whole */
        if (c->neg && rg[2 * i] <= lo && rg[2 * i + 1] >= hi)
            return false;
    }
    return c->neg;
}

/* ---- the scratch ---------------------------------------------------------------------- */

static uint32_t node_hash(uint32_t pos, uint32_t parent)
{
    uint64_t h = ((uint64_t)pos << 32 | parent) * 0x9e3779b97f4a7c15ull;
    return (uint32_t)(h >> 32);
}

static void scratch_reset(struct hr_grammar *g)
{
    g->n_node = 1; /* node 0: the empty stack */
    g->node[0] = (struct gnode){NONE, 0, 0};
    if (++g->gen == 0) {
        memset(g->slot, 0, ((size_t)g->slot_mask + 1) * sizeof *g->slot);
        g->gen = 1;
    }
    g->n_sets = 0;
    g->base_ok = false;
    g->failed = false;
}

static bool grow_table(struct hr_grammar *g)
{
    uint32_t size = 2 * (g->slot_mask + 1);
    struct gslot *s = calloc(size, sizeof *s);
    if (!s)
        return false;
    for (uint32_t id = 1; id < g->n_node; id++) {
        uint32_t h = node_hash(g->node[id].pos, g->node[id].parent) & (size - 1);
        while (s[h].gen == g->gen)
            h = (h + 1) & (size - 1);
        s[h] = (struct gslot){id, g->gen};
    }
    free(g->slot);
    g->slot = s;
    g->slot_mask = size - 1;
    return true;
}

/* The node for stack (pos on top of parent); NONE when out of room. */
static uint32_t intern(struct hr_grammar *g, uint32_t pos, uint32_t parent)
{
    uint32_t h = node_hash(pos, parent) & g->slot_mask;
    while (g->slot[h].gen == g->gen) {
        const struct gnode *n = &g->node[g->slot[h].id];
        if (n->pos == pos && n->parent == parent)
            return g->slot[h].id;
        h = (h + 1) & g->slot_mask;
    }
    if (g->n_node == g->cap_node) {
        if (g->cap_node >= SCRATCH_HARD_NODES)
            goto fail;
        uint32_t cap = 2 * g->cap_node;
        struct gnode *n = realloc(g->node, cap * sizeof *n);
        if (!n)
            goto fail;
        g->node = n;
        g->cap_node = cap;
    }
    uint32_t id = g->n_node++;
    g->node[id] = (struct gnode){pos, parent, 0};
    g->slot[h] = (struct gslot){id, g->gen};
    if (2 * g->n_node > g->slot_mask + 1 && !grow_table(g))
        goto fail;
    return id;
fail:
    g->failed = true;
    return NONE;
}

static bool push_u32(uint32_t **a, size_t *n, size_t *cap, uint32_t v)
{
    if (*n == *cap) {
        size_t c = *cap ? 2 * *cap : 256;
        uint32_t *p = realloc(*a, c * sizeof *p);
        if (!p)
            return false;
        *a = p;
        *cap = c;
    }
    (*a)[(*n)++] = v;
    return true;
}

static bool push_set(struct hr_grammar *g, uint32_t id)
{
    if (!push_u32(&g->sets, &g->n_sets, &g->cap_sets, id)) {
        g->failed = true;
        return false;
    }
    return true;
}

static bool is_end(const struct grules *r, uint32_t pos)
{
    return r->elem[pos].type <= GE_ALT;
}

/* The stack that continues after the element at `pos` of stack `parent`'s
 * top frame: pos+1 on parent, or parent itself when the sequence ends. */
static uint32_t after(struct hr_grammar *g, uint32_t pos, uint32_t parent)
{
    return is_end(g->r, pos + 1) ? parent : intern(g, pos + 1, parent);
}

/* Expands stack `id` until every top is a terminal, appending the results
 * (and the empty stack, if reachable) to sets[]. Nodes visited in this pass
 * (g->mark) are skipped: their results are already there. */
static bool expand(struct hr_grammar *g, uint32_t id)
{
    const struct grules *r = g->r;
    g->n_work = 0;
    if (!push_u32(&g->work, &g->n_work, &g->cap_work, id))
        goto fail;
    while (g->n_work > 0) {
        uint32_t x = g->work[--g->n_work];
        if (x == NONE)
            goto fail;
        struct gnode *n = &g->node[x];
        if (n->mark == g->mark)
            continue;
        n->mark = g->mark;
        if (x == 0 || r->elem[n->pos].type != GE_REF) {
            if (!push_set(g, x))
                return false;
            continue;
        }
        uint32_t pos = n->pos, rule = r->elem[pos].val;
        uint32_t cont = after(g, pos, n->parent);
        if (cont == NONE)
            goto fail;
        for (uint32_t a = r->alt_first[rule]; a < r->alt_first[rule + 1]; a++) {
            uint32_t s = r->alt_start[a];
            uint32_t y = is_end(r, s) ? cont : intern(g, s, cont);
            if (!push_u32(&g->work, &g->n_work, &g->cap_work, y))
                goto fail;
        }
    }
    return true;
fail:
    g->failed = true;
    return false;
}

static void next_mark(struct hr_grammar *g)
{
    if (++g->mark == 0) {
        for (uint32_t i = 0; i < g->n_node; i++)
            g->node[i].mark = 0;
        g->mark = 1;
    }
}

/* Feeds code point cp to the set sets[*off .. *off+*n): the result is
 * appended to sets[] and replaces (*off, *n). False when out of room. */
static bool advance(struct hr_grammar *g, uint32_t *off, uint32_t *n, uint32_t cp)
{
    const struct grules *r = g->r;
    next_mark(g);
    size_t start = g->n_sets;
    for (uint32_t i = 0; i < *n; i++) {
        uint32_t id = g->sets[*off + i];
        if (id == 0)
            continue;
        uint32_t pos = g->node[id].pos;
        if (!term_match(r, &r->elem[pos], cp))
            continue;
        uint32_t cont = after(g, pos, g->node[id].parent);
        if (cont == NONE || !expand(g, cont))
            return false;
    }
    *off = (uint32_t)start;
    *n = (uint32_t)(g->n_sets - start);
    return true;
}

/* Could a pending UTF-8 sequence continue into something the set accepts? */
static bool partial_ok(const struct hr_grammar *g, uint32_t off, uint32_t n, const struct u8st *u)
{
    if (u->need == 0)
        return true;
    uint32_t lo, hi;
    u8_range(u, &lo, &hi);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t id = g->sets[off + i];
        if (id != 0 && term_match_range(g->r, &g->r->elem[g->node[id].pos], lo, hi))
            return true;
    }
    return false;
}

/* Puts the committed stacks into the (reset) scratch as sets[0 .. n_base). */
static bool load_base(struct hr_grammar *g)
{
    scratch_reset(g);
    const uint32_t *c = g->cst;
    for (uint32_t k = 0; k < g->n_stacks; k++) {
        uint32_t len = *c++, id = 0;
        for (uint32_t i = 0; i < len; i++)
            if ((id = intern(g, c[i], id)) == NONE)
                return false;
        c += len;
        if (!push_set(g, id))
            return false;
    }
    g->n_base = (uint32_t)g->n_sets;
    g->base_ok = true;
    return true;
}

static bool ensure_base(struct hr_grammar *g)
{
    if (g->base_ok && g->n_node < SCRATCH_SOFT_NODES) {
        g->n_sets = g->n_base;
        g->failed = false;
        return true;
    }
    return load_base(g);
}

/* Runs bytes s[0..len) from (set, *u): false when rejected (or out of
 * room). On success (*off, *n, *u) is the state after them. */
static bool run_bytes(struct hr_grammar *g, uint32_t *off, uint32_t *n, struct u8st *u,
                      const uint8_t *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        uint32_t cp;
        int k = u8_feed(u, s[i], &cp);
        if (k == U8_BAD)
            return false;
        if (k == U8_CHAR && (!advance(g, off, n, cp) || *n == 0))
            return false;
    }
    return true;
}

/* Makes the set sets[off .. off+n) the committed state. */
static int commit(struct hr_grammar *g, uint32_t off, uint32_t n, const struct u8st *u)
{
    size_t total = 0;
    for (uint32_t i = 0; i < n; i++) {
        total++;
        for (uint32_t id = g->sets[off + i]; id != 0; id = g->node[id].parent)
            total++;
    }
    if (total > g->cap_cst) {
        uint32_t *c = realloc(g->cst, total * sizeof *c);
        if (!c)
            return -ENOMEM;
        g->cst = c;
        g->cap_cst = total;
    }
    uint32_t *c = g->cst;
    g->has_empty = false;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t id = g->sets[off + i], len = 0;
        for (uint32_t x = id; x != 0; x = g->node[x].parent)
            len++;
        *c++ = len;
        for (uint32_t k = len, x = id; k-- > 0; x = g->node[x].parent)
            c[k] = g->node[x].pos;
        c += len;
        g->has_empty |= id == 0;
    }
    g->n_cst = total;
    g->n_stacks = n;
    g->part = *u;
    g->base_ok = false;
    return 0;
}

/* ---- text ------------------------------------------------------------------------------ */

static bool check_bytes(struct hr_grammar *g, const uint8_t *s, size_t len, bool keep)
{
    if (!ensure_base(g))
        return false;
    uint32_t off = 0, n = g->n_base;
    struct u8st u = g->part;
    bool ok = run_bytes(g, &off, &n, &u, s, len) && partial_ok(g, off, n, &u);
    if (ok && keep)
        ok = commit(g, off, n, &u) == 0;
    g->n_sets = g->base_ok ? g->n_base : 0;
    return ok;
}

bool grammar_check_text(struct hr_grammar *g, const char *s, size_t n)
{
    return g && (s || n == 0) && check_bytes(g, (const uint8_t *)s, n, false);
}

int grammar_accept_text(struct hr_grammar *g, const char *s, size_t n)
{
    if (!g || (!s && n > 0))
        return -EINVAL;
    return check_bytes(g, (const uint8_t *)s, n, true) ? 0 : -EINVAL;
}

bool grammar_can_end(const struct hr_grammar *g)
{
    return g && g->has_empty && g->part.need == 0;
}

/* ---- tokens ------------------------------------------------------------------------------- */

int32_t grammar_n_vocab(const struct hr_grammar *g)
{
    return g ? g->n_vocab : 0;
}

bool grammar_allows(struct hr_grammar *g, int32_t id)
{
    if (!g || id < 0 || id >= g->n_vocab)
        return false;
    if (g->eog[id])
        return grammar_can_end(g);
    uint32_t len = g->off[id + 1] - g->off[id];
    return len > 0 && check_bytes(g, (const uint8_t *)g->text + g->off[id], len, false);
}

static int cmp_piece(const void *a, const void *b)
{
    const struct tpiece *x = a, *y = b;
    uint32_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->s, y->s, n);
    if (c)
        return c;
    return x->len < y->len ? -1 : x->len > y->len;
}

/* Sorts the texts: a stable LSD radix sort on their first 8 bytes, then a
 * comparison sort inside each run of equal keys (texts sharing 8 bytes).
 * ~10x faster than qsort on 150k texts. The walk is correct for any order
 * (its shared prefixes are measured, not assumed); sorting only makes them
 * long. */
static int sort_pieces(struct tpiece *p, uint32_t n)
{
    struct tpiece *tmp = malloc(((size_t)n + 1) * sizeof *tmp);
    if (!tmp)
        return -ENOMEM;
    for (uint32_t i = 0; i < n; i++) {
        uint64_t k = 0;
        for (uint32_t b = 0; b < 8; b++)
            k = (k << 8) | (b < p[i].len ? (uint8_t)p[i].s[b] : 0u);
        p[i].key = k;
    }
    struct tpiece *src = p, *dst = tmp;
    for (unsigned shift = 0; shift < 64; shift += 8) {
        uint32_t count[257] = {0};
        for (uint32_t i = 0; i < n; i++)
            count[((src[i].key >> shift) & 0xff) + 1]++;
        if (count[((src[0].key >> shift) & 0xff) + 1] == n)
            continue; /* every key has the same byte here */
        for (int d = 0; d < 256; d++)
            count[d + 1] += count[d];
        for (uint32_t i = 0; i < n; i++)
            dst[count[(src[i].key >> shift) & 0xff]++] = src[i];
        struct tpiece *t = src;
        src = dst;
        dst = t;
    }
    if (src != p)
        memcpy(p, src, (size_t)n * sizeof *p);
    free(tmp);
    for (uint32_t i = 0, j; i < n; i = j) {
        for (j = i + 1; j < n && p[j].key == p[i].key; j++)
            ;
        if (j - i > 1)
            qsort(p + i, j - i, sizeof *p, cmp_piece);
    }
    return 0;
}

static int build_sorted(struct hr_grammar *g)
{
    uint32_t n = 0, max_len = 0;
    for (int32_t t = 0; t < g->n_vocab; t++)
        n += !g->eog[t] && g->off[t + 1] > g->off[t];
    g->sorted = malloc((n + 1) * sizeof *g->sorted);
    g->lcp = malloc((n + 1) * sizeof *g->lcp);
    if (!g->sorted || !g->lcp)
        return -ENOMEM;
    n = 0;
    for (int32_t t = 0; t < g->n_vocab; t++) {
        uint32_t len = g->off[t + 1] - g->off[t];
        if (g->eog[t] || len == 0)
            continue;
        g->sorted[n++] = (struct tpiece){g->text + g->off[t], len, t, 0};
        if (len > max_len)
            max_len = len;
    }
    if (sort_pieces(g->sorted, n) < 0)
        return -ENOMEM;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t l = 0;
        if (i > 0) {
            const struct tpiece *a = &g->sorted[i - 1], *b = &g->sorted[i];
            while (l < a->len && l < b->len && a->s[l] == b->s[l])
                l++;
        }
        g->lcp[i] = l;
    }
    g->walk = malloc(((size_t)max_len + 1) * sizeof *g->walk);
    if (!g->walk)
        return -ENOMEM;
    g->n_sorted = n;
    g->max_len = max_len;
    return 0;
}

/* Computes walk[1 .. depth] for text s from walk[0] (the committed state);
 * returns the depth reached alive (< depth when the prefix dies there). */
static uint32_t walk_from(struct hr_grammar *g, const uint8_t *s, uint32_t from, uint32_t depth)
{
    for (uint32_t d = from; d < depth; d++) {
        struct walk_state *w = &g->walk[d], *nx = &g->walk[d + 1];
        nx->u = w->u;
        nx->off = w->off;
        nx->n = w->n;
        uint32_t cp;
        int k = u8_feed(&nx->u, s[d], &cp);
        if (k == U8_BAD)
            return d;
        if (k == U8_CHAR && (!advance(g, &nx->off, &nx->n, cp) || nx->n == 0))
            return d;
        nx->end = g->n_sets;
    }
    return depth;
}

static bool walk_reset(struct hr_grammar *g)
{
    if (!load_base(g))
        return false;
    g->walk[0] = (struct walk_state){0, g->n_base, g->n_sets, g->part};
    return true;
}

const uint8_t *grammar_mask(struct hr_grammar *g)
{
    if (!g || !g->vocab)
        return NULL;
    if (!g->sorted && build_sorted(g) < 0)
        return NULL;
    bool can_end = grammar_can_end(g);
    for (int32_t t = 0; t < g->n_vocab; t++)
        g->allowed[t] = g->eog[t] && can_end;
    if (!walk_reset(g))
        return g->allowed;

    /* walk[0 .. alive] are valid for the previous text; dead: the depth at
     * which it was rejected (NONE: it was not) */
    uint32_t alive = 0, dead = NONE;
    for (uint32_t i = 0; i < g->n_sorted; i++) {
        const struct tpiece *p = &g->sorted[i];
        uint32_t common = g->lcp[i];
        if (dead != NONE && common > dead)
            continue; /* extends a rejected prefix */
        if (common > alive)
            common = alive;
        if (g->n_node >= SCRATCH_SOFT_NODES || g->failed) {
            /* start the scratch afresh and recompute the shared prefix */
            if (!walk_reset(g))
                break;
            common = walk_from(g, (const uint8_t *)p->s, 0, common);
        }
        g->n_sets = g->walk[common].end;
        uint32_t d = walk_from(g, (const uint8_t *)p->s, common, p->len);
        if (d < p->len) {
            dead = d;
            alive = d;
            continue;
        }
        dead = NONE;
        alive = p->len;
        const struct walk_state *w = &g->walk[p->len];
        g->allowed[p->id] = partial_ok(g, w->off, w->n, &w->u);
    }
    g->base_ok = false;
    return g->allowed;
}

/* ---- the public API ---------------------------------------------------------------------- */

static int load_tokens(struct hr_grammar *g, const struct hr_vocab *vocab)
{
    int32_t n = hr_vocab_n_tokens(vocab);
    size_t cap = 1 << 16, used = 0;
    char buf[256];
    g->vocab = vocab;
    g->off = malloc(((size_t)n + 1) * sizeof *g->off);
    g->eog = calloc((size_t)n + 1, 1);
    g->allowed = calloc((size_t)n + 1, 1);
    g->text = malloc(cap);
    if (!g->off || !g->eog || !g->allowed || !g->text)
        return -ENOMEM;
    for (int32_t t = 0; t < n; t++) {
        g->off[t] = (uint32_t)used;
        g->eog[t] = hr_vocab_is_eog(vocab, t);
        if (g->eog[t])
            continue;
        int64_t len = hr_token_to_piece(vocab, t, false, buf, sizeof buf);
        if (len < 0)
            continue; /* no text: never allowed */
        if (used + (size_t)len > UINT32_MAX)
            return -E2BIG;
        while (used + (size_t)len > cap) {
            char *p = realloc(g->text, 2 * cap);
            if (!p)
                return -ENOMEM;
            g->text = p;
            cap *= 2;
        }
        if ((size_t)len <= sizeof buf)
            memcpy(g->text + used, buf, (size_t)len);
        else
            hr_token_to_piece(vocab, t, false, g->text + used, (size_t)len);
        used += (size_t)len;
    }
    g->off[n] = (uint32_t)used;
    g->n_vocab = n;
    return 0;
}

int hr_grammar_new(const struct hr_vocab *vocab, const char *gbnf, const char *root,
                   struct hr_grammar **out, struct hr_err *err)
{
    struct hr_grammar *g = NULL;
    int rc = -EINVAL;
    hr_err_clear(err);
    if (!gbnf || !out)
        goto fail;
    rc = -ENOMEM;
    if (!(g = calloc(1, sizeof *g)))
        goto fail;
    if ((rc = grammar_parse(gbnf, root, &g->r, err)) < 0)
        goto fail;
    rc = -ENOMEM;
    g->cap_node = 1024;
    g->slot_mask = 2047;
    g->node = malloc(g->cap_node * sizeof *g->node);
    g->slot = calloc(g->slot_mask + 1, sizeof *g->slot);
    if (!g->node || !g->slot)
        goto fail;
    if (vocab && (rc = load_tokens(g, vocab)) < 0)
        goto fail;

    /* the start state: the root rule's alternatives, expanded */
    rc = -ENOMEM;
    scratch_reset(g);
    next_mark(g);
    const struct grules *r = g->r;
    for (uint32_t a = r->alt_first[r->root]; a < r->alt_first[r->root + 1]; a++) {
        uint32_t s = r->alt_start[a];
        if (!expand(g, is_end(r, s) ? 0 : intern(g, s, 0)))
            goto fail;
    }
    struct u8st none = {0};
    if (commit(g, 0, (uint32_t)g->n_sets, &none) < 0)
        goto fail;
    *out = g;
    return 0;
fail:
    if (rc == -ENOMEM && err && !err->msg[0])
        strcpy(err->msg, "out of memory");
    hr_grammar_free(g);
    return rc;
}

void hr_grammar_free(struct hr_grammar *g)
{
    if (!g)
        return;
    grules_free(g->r);
    free(g->cst);
    free(g->node);
    free(g->slot);
    free(g->work);
    free(g->sets);
    free(g->text);
    free(g->off);
    free(g->eog);
    free(g->sorted);
    free(g->lcp);
    free(g->allowed);
    free(g->walk);
    free(g);
}

int hr_grammar_accept(struct hr_grammar *g, int32_t token)
{
    if (!g || !g->vocab || token < 0 || token >= g->n_vocab)
        return -EINVAL;
    if (g->eog[token])
        return grammar_can_end(g) ? 0 : -EINVAL;
    uint32_t len = g->off[token + 1] - g->off[token];
    if (len == 0)
        return -EINVAL;
    return check_bytes(g, (const uint8_t *)g->text + g->off[token], len, true) ? 0 : -EINVAL;
}

bool hr_grammar_done(const struct hr_grammar *g)
{
    return g && g->part.need == 0 && g->has_empty && g->n_stacks == 1;
}
