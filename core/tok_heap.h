/*
 * tok_heap.h — the binary heap of merge candidates that both tokenizers'
 * merge loops use (tok_spm.c: best score first; tok_bpe.c: lowest rank
 * first; both: ties to the leftmost pair).
 *
 * A template by inclusion: the including file defines `struct bigram` and
 * `static bool before(const struct bigram *a, const struct bigram *b)` (true
 * when a must come out first), then includes this header once.
 */
#ifndef HEARTH_CORE_TOK_HEAP_H
#define HEARTH_CORE_TOK_HEAP_H

#include <errno.h>
#include <stdlib.h>

struct heap {
    struct bigram *b;
    size_t n, cap;
};

/* Adds x; -ENOMEM leaves the heap as it was. */
static int heap_push(struct heap *h, struct bigram x)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? 2 * h->cap : 64;
        struct bigram *nb = realloc(h->b, cap * sizeof *nb);
        if (!nb)
            return -ENOMEM;
        h->b = nb;
        h->cap = cap;
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!before(&x, &h->b[p]))
            break;
        h->b[i] = h->b[p];
        i = p;
    }
    h->b[i] = x;
    return 0;
}

/* Removes and returns the first candidate; the heap must not be empty. */
static struct bigram heap_pop(struct heap *h)
{
    struct bigram top = h->b[0];
    struct bigram last = h->b[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n)
            break;
        if (c + 1 < h->n && before(&h->b[c + 1], &h->b[c]))
            c++;
        if (!before(&h->b[c], &last))
            break;
        h->b[i] = h->b[c];
        i = c;
    }
    if (h->n)
        h->b[i] = last;
    return top;
}

#endif
