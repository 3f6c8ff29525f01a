/*
 * tok_spm.c — the SentencePiece tokenizer ("llama" vocabularies,
 * FORMATS.md §5.3) for one raw fragment.
 *
 * The text (with the optional prefix space) has its spaces replaced by "▁"
 * and is cut into UTF-8 characters, one symbol each. Adjacent symbols whose
 * concatenation is a vocabulary token are merge candidates scored by that
 * token's score; the best candidate (highest score, then leftmost) is merged
 * until none is left. Symbols are a linked list over one array and are always
 * contiguous in the text, so a pair's text is a plain slice. A candidate is
 * stale when either symbol has changed since it was queued; because a symbol
 * only ever grows, comparing the pair's total length is enough to tell.
 */
#include "vocab_impl.h"

#include <errno.h>
#include <stdlib.h>

struct sym {
    int32_t prev, next; /* -1: none */
    uint32_t off, n;    /* n == 0: merged away */
};

struct bigram {
    int32_t left, right;
    float score;
    uint32_t size;
};

/* Max-heap order: higher score first, ties to the leftmost pair. */
static bool before(const struct bigram *a, const struct bigram *b)
{
    if (a->score != b->score)
        return a->score > b->score;
    return a->left < b->left;
}

#include "tok_heap.h"

struct spm {
    const struct hr_vocab *v;
    const char *t;
    struct sym *sym;
    struct heap heap;
};

/* Queues the pair (l, r) if its text is a token. 0 or -ENOMEM. */
static int try_add(struct spm *s, int32_t l, int32_t r)
{
    if (l < 0 || r < 0)
        return 0;
    uint32_t size = s->sym[l].n + s->sym[r].n;
    int32_t id = vocab_find(s->v, s->t + s->sym[l].off, size);
    if (id < 0)
        return 0;
    return heap_push(&s->heap, (struct bigram){l, r, s->v->tok[id].score, size});
}

/* A byte that no token covers: <0xNN> (uppercase hex), else the byte itself. */
static int push_byte(const struct hr_vocab *v, uint8_t b, struct vocab_ids *out)
{
    static const char hex[] = "0123456789ABCDEF";
    char name[6] = {'<', '0', 'x', hex[b >> 4], hex[b & 15], '>'};
    int32_t id = vocab_find(v, name, sizeof name);
    if (id < 0)
        id = vocab_find(v, (const char *)&b, 1);
    if (id < 0)
        return -EILSEQ;
    return vocab_ids_push(out, id);
}

int spm_tokenize(const struct hr_vocab *v, const char *s, size_t len, bool prefix_space,
                 struct vocab_ids *out)
{
    struct spm st = {.v = v};
    char *t = NULL;
    size_t tl = 0, n = 0;
    int rc = -ENOMEM;

    if (len == 0 && !prefix_space)
        return 0;
    /* every byte grows to at most 3 ("▁"), plus the prefix */
    t = malloc((len + 1) * 3);
    if (!t)
        goto fail;
    if (prefix_space) {
        t[tl++] = '\xe2';
        t[tl++] = '\x96';
        t[tl++] = '\x81';
    }
    for (size_t i = 0; i < len; i++) {
        if (s[i] == ' ') {
            t[tl++] = '\xe2';
            t[tl++] = '\x96';
            t[tl++] = '\x81';
        } else {
            t[tl++] = s[i];
        }
    }
    st.t = t;

    st.sym = malloc(tl * sizeof *st.sym); /* at most one symbol per byte */
    if (!st.sym)
        goto fail;
    for (size_t off = 0; off < tl; n++) {
        size_t cl = uni_len_utf8((uint8_t)t[off]);
        if (cl > tl - off)
            cl = tl - off; /* a truncated sequence is a shorter symbol */
        st.sym[n] = (struct sym){(int32_t)n - 1, -1, (uint32_t)off, (uint32_t)cl};
        if (n > 0)
            st.sym[n - 1].next = (int32_t)n;
        off += cl;
    }

    for (size_t i = 1; i < n; i++)
        if ((rc = try_add(&st, (int32_t)i - 1, (int32_t)i)) < 0)
            goto fail;

    while (st.heap.n) {
        struct bigram bg = heap_pop(&st.heap);
        struct sym *l = &st.sym[bg.left], *r = &st.sym[bg.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != bg.size)
            continue; /* stale */
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0)
            st.sym[r->next].prev = bg.left;
        if ((rc = try_add(&st, l->prev, bg.left)) < 0 ||
            (rc = try_add(&st, bg.left, l->next)) < 0)
            goto fail;
    }

    for (int32_t i = 0; i != -1; i = st.sym[i].next) {
        const struct sym *y = &st.sym[i];
        int32_t id = vocab_find(v, t + y->off, y->n);
        if (id >= 0) {
            if ((rc = vocab_ids_push(out, id)) < 0)
                goto fail;
            continue;
        }
        /* only unmerged single characters can miss the vocabulary */
        for (uint32_t k = 0; k < y->n; k++) {
            if ((rc = push_byte(v, (uint8_t)t[y->off + k], out)) < 0)
                goto fail;
        }
    }
    rc = 0;
fail:
    free(st.heap.b);
    free(st.sym);
    free(t);
    return rc;
}
