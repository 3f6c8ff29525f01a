/*
 * tok_bpe.c — the byte-level BPE tokenizer ("gpt2" vocabularies,
 * FORMATS.md §5.4) for one raw fragment.
 *
 * The fragment is cut into pieces by the pre-tokenizer of the vocabulary's
 * pre-type (unicode.c); each piece is re-encoded from its code points to
 * UTF-8 and every byte is replaced by its code point in the BPE alphabet, so
 * a "word" is valid UTF-8 with one character per original byte. Pieces never
 * merge with each other. Inside a word, characters start as symbols and the
 * adjacent pair with the lowest merge rank (ties: leftmost) is merged until
 * no pair has a rank. As in tok_spm.c, symbols are contiguous slices and a
 * queued pair is stale exactly when its total length changed.
 */
#include "vocab_impl.h"

#include <errno.h>
#include <stdlib.h>

struct sym {
    int32_t prev, next;
    uint32_t off, n;
};

struct bigram {
    int32_t left, right;
    int32_t rank;
    uint32_t size;
};

/* Min-heap order: lowest rank first, ties to the leftmost pair. */
static bool before(const struct bigram *a, const struct bigram *b)
{
    if (a->rank != b->rank)
        return a->rank < b->rank;
    return a->left < b->left;
}

#include "tok_heap.h"

struct bpe {
    const struct hr_vocab *v;
    const char *w; /* the current word */
    struct sym *sym;
    struct heap heap;
};

/* Queues the pair (l, r) if it has a merge rank. 0 or -ENOMEM. */
static int try_add(struct bpe *b, int32_t l, int32_t r)
{
    if (l < 0 || r < 0)
        return 0;
    const struct sym *a = &b->sym[l], *c = &b->sym[r];
    int32_t rank = vocab_merge_rank(b->v, b->w + a->off, a->n, b->w + c->off, c->n);
    if (rank < 0)
        return 0;
    return heap_push(&b->heap, (struct bigram){l, r, rank, a->n + c->n});
}

/* Merges inside one word and appends its ids. */
static int word_tokenize(struct bpe *b, const char *w, size_t wl, struct vocab_ids *out)
{
    const struct hr_vocab *v = b->v;
    size_t n = 0;
    int rc;

    if (v->ignore_merges) {
        int32_t id = vocab_find(v, w, wl);
        if (id >= 0)
            return vocab_ids_push(out, id);
    }

    b->w = w;
    b->heap.n = 0;
    for (size_t off = 0; off < wl; n++) {
        size_t cl = uni_len_utf8((uint8_t)w[off]);
        if (cl > wl - off)
            cl = wl - off;
        b->sym[n] = (struct sym){(int32_t)n - 1, -1, (uint32_t)off, (uint32_t)cl};
        if (n > 0)
            b->sym[n - 1].next = (int32_t)n;
        off += cl;
    }
    for (size_t i = 1; i < n; i++)
        if ((rc = try_add(b, (int32_t)i - 1, (int32_t)i)) < 0)
            return rc;

    while (b->heap.n) {
        struct bigram bg = heap_pop(&b->heap);
        struct sym *l = &b->sym[bg.left], *r = &b->sym[bg.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != bg.size)
            continue;
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0)
            b->sym[r->next].prev = bg.left;
        if ((rc = try_add(b, l->prev, bg.left)) < 0 || (rc = try_add(b, bg.left, l->next)) < 0)
            return rc;
    }

    for (int32_t i = 0; n > 0 && i != -1; i = b->sym[i].next) {
        const struct sym *y = &b->sym[i];
        int32_t id = vocab_find(v, w + y->off, y->n);
        if (id >= 0) {
            if ((rc = vocab_ids_push(out, id)) < 0)
                return rc;
            continue;
        }
        /* not a token: each byte of the symbol as a one-byte token, if any */
        for (uint32_t k = 0; k < y->n; k++) {
            id = vocab_find(v, w + y->off + k, 1);
            if (id >= 0 && (rc = vocab_ids_push(out, id)) < 0)
                return rc;
        }
    }
    return 0;
}

int bpe_tokenize(const struct hr_vocab *v, const char *s, size_t len, struct vocab_ids *out)
{
    struct uni_text t;
    struct bpe b = {.v = v};
    char *w = NULL;
    int rc;

    uni_text_init(&t);
    if ((rc = uni_pre_split(&t, v->pre, s, len)) < 0)
        goto fail;
    rc = -ENOMEM;
    /* buffers for the longest word: a code point is at most 4 UTF-8 bytes,
     * each at most 2 once mapped */
    size_t longest = 1;
    for (size_t p = 0; p < t.n_piece; p++)
        if (t.piece[p] > longest)
            longest = t.piece[p];
    w = malloc(8 * longest);
    b.sym = malloc(8 * longest * sizeof *b.sym);
    if (!w || !b.sym)
        goto fail;

    size_t start = 0;
    for (size_t p = 0; p < t.n_piece; p++) {
        size_t wl = 0;
        for (size_t i = start; i < start + t.piece[p]; i++) {
            char u8[4];
            size_t k = uni_encode(t.cpt[i], u8);
            for (size_t j = 0; j < k; j++)
                wl += uni_encode(uni_byte_to_cpt((uint8_t)u8[j]), w + wl);
        }
        start += t.piece[p];
        if ((rc = word_tokenize(&b, w, wl, out)) < 0)
            goto fail;
    }
    rc = 0;
fail:
    free(b.heap.b);
    free(b.sym);
    free(w);
    uni_text_done(&t);
    return rc;
}
