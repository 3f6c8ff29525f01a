/*
 * unicode.c — UTF-8 coding, Unicode classes, the byte-level BPE alphabet and
 * the hand-written pre-tokenizer matchers (FORMATS.md §5.4).
 *
 * The matchers reproduce, branch for branch, what llama.cpp's regexes yield
 * for each pre-type: at every position the alternatives are tried in regex
 * order and the first that matches ends a piece. They run on one piece of the
 * previous pass at a time; a position outside that piece has no class at all
 * (flags 0), which is what stops the runs at piece ends. Every piece they
 * produce is non-empty, so a pass never produces more pieces than the text
 * has code points: the piece arrays are sized once, to n.
 */
#include "unicode.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

uint32_t uni_decode(const char *s, size_t n, size_t *adv)
{
    const uint8_t *u = (const uint8_t *)s;
    uint32_t cp;
    size_t need;

    if (u[0] < 0x80) {
        *adv = 1;
        return u[0];
    }
    if (!(u[0] & 0x40)) /* a continuation byte cannot start a character */
        goto bad;
    if (!(u[0] & 0x20)) {
        need = 1;
        cp = u[0] & 0x1f;
    } else if (!(u[0] & 0x10)) {
        need = 2;
        cp = u[0] & 0x0f;
    } else if (!(u[0] & 0x08)) {
        need = 3;
        cp = u[0] & 0x07;
    } else {
        goto bad;
    }
    if (need >= n)
        goto bad;
    for (size_t i = 1; i <= need; i++) {
        if ((u[i] & 0xc0) != 0x80)
            goto bad;
        cp = (cp << 6) | (u[i] & 0x3f);
    }
    if (cp > 0x10FFFF)
        goto bad;
    *adv = need + 1;
    return cp;
bad:
    *adv = 1;
    return UNI_REPLACEMENT;
}

size_t uni_encode(uint32_t cp, char out[4])
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | ((cp >> 18) & 0x07));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

unsigned uni_flags(uint32_t cp)
{
    unsigned f;

    if (cp > 0x10FFFF)
        return UNI_UNDEFINED;
    switch (utf8proc_category((utf8proc_int32_t)cp)) {
    case UTF8PROC_CATEGORY_CN:
        f = UNI_UNDEFINED;
        break;
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
        f = UNI_LETTER;
        break;
    case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC:
    case UTF8PROC_CATEGORY_ME:
        f = UNI_MARK;
        break;
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO:
        f = UNI_NUMBER;
        break;
    case UTF8PROC_CATEGORY_PC:
    case UTF8PROC_CATEGORY_PD:
    case UTF8PROC_CATEGORY_PS:
    case UTF8PROC_CATEGORY_PE:
    case UTF8PROC_CATEGORY_PI:
    case UTF8PROC_CATEGORY_PF:
    case UTF8PROC_CATEGORY_PO:
        f = UNI_PUNCT;
        break;
    case UTF8PROC_CATEGORY_SM:
    case UTF8PROC_CATEGORY_SC:
    case UTF8PROC_CATEGORY_SK:
    case UTF8PROC_CATEGORY_SO:
        f = UNI_SYMBOL;
        break;
    case UTF8PROC_CATEGORY_ZS:
    case UTF8PROC_CATEGORY_ZL:
    case UTF8PROC_CATEGORY_ZP:
        /* every space, line and paragraph separator is White_Space */
        f = UNI_SEPARATOR | UNI_WHITESPACE;
        break;
    default: /* Cc, Cf, Cs, Co */
        f = UNI_CONTROL;
        break;
    }
    /* the White_Space controls: TAB, LF, VT, FF, CR and NEL */
    if ((cp >= 0x09 && cp <= 0x0D) || cp == 0x85)
        f |= UNI_WHITESPACE;
    return f;
}

uint32_t uni_tolower(uint32_t cp)
{
    if (cp > 0x10FFFF)
        return cp;
    return (uint32_t)utf8proc_tolower((utf8proc_int32_t)cp);
}

/* Bytes that stand for themselves in the BPE alphabet: '!'..'~', 0xA1..0xAC,
 * 0xAE..0xFF. The other 68 (0x00..0x20, 0x7F..0xA0, 0xAD), in increasing
 * order, take U+0100, U+0101, ... */
static bool byte_is_printable(unsigned b)
{
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
}

uint32_t uni_byte_to_cpt(uint8_t b)
{
    if (byte_is_printable(b))
        return b;
    if (b <= 0x20)
        return 0x100u + b; /* 33 bytes: 0x100..0x120 */
    if (b <= 0xA0)
        return 0x100u + 33 + (b - 0x7Fu); /* 34 bytes: 0x121..0x142 */
    return 0x100u + 67;                   /* 0xAD: 0x143 */
}

int uni_cpt_to_byte(uint32_t cp)
{
    if (cp < 0x100)
        return byte_is_printable(cp) ? (int)cp : -1;
    if (cp >= 0x100 + 68)
        return -1;
    unsigned i = cp - 0x100;
    if (i < 33)
        return (int)i;
    if (i < 67)
        return (int)(0x7F + i - 33);
    return 0xAD;
}

/* ---- pre-tokenizer passes ---------------------------------------------------- */

void uni_text_init(struct uni_text *t)
{
    memset(t, 0, sizeof *t);
}

void uni_text_done(struct uni_text *t)
{
    if (!t)
        return;
    free(t->cpt);
    free(t->flags);
    free(t->piece);
    free(t->tmp);
    uni_text_init(t);
}

/* One matcher run over the piece [s, e); appends piece lengths to out. */
struct run {
    const uint32_t *cpt;
    const uint16_t *flags;
    size_t e;    /* end of the piece being split */
    size_t prev; /* end of the last emitted piece */
    size_t *out;
    size_t n_out;
};

/* Flags at pos, or 0 outside the piece (matchers only move forward). */
static inline unsigned fl(const struct run *r, size_t pos)
{
    return pos < r->e ? r->flags[pos] : 0;
}

static inline bool is_crlf(uint32_t c)
{
    return c == '\r' || c == '\n';
}

static void emit(struct run *r, size_t end)
{
    if (end > r->prev)
        r->out[r->n_out++] = end - r->prev;
    r->prev = end;
}

/* GPT2: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
static void split_gpt2(struct run *r, size_t s)
{
    const uint32_t *c = r->cpt;
    const size_t e = r->e;
    size_t pos = s;

    r->prev = s;
    while (pos < e) {
        const uint32_t ch = c[pos];
        const unsigned f = r->flags[pos];

        if (ch == '\'' && pos + 1 < e) {
            const uint32_t a = c[pos + 1];
            if (a == 's' || a == 't' || a == 'm' || a == 'd') {
                pos += 2;
                emit(r, pos);
                continue;
            }
            if (pos + 2 < e) {
                const uint32_t b = c[pos + 2];
                if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) {
                    pos += 3;
                    emit(r, pos);
                    continue;
                }
            }
        }

        /* the optional leading space of the next three alternatives */
        const unsigned f2 = ch == ' ' ? fl(r, pos + 1) : f;
        if (f2 & UNI_LETTER) {
            pos += ch == ' ';
            while (fl(r, pos) & UNI_LETTER)
                pos++;
            emit(r, pos);
            continue;
        }
        if (f2 & UNI_NUMBER) {
            pos += ch == ' ';
            while (fl(r, pos) & UNI_NUMBER)
                pos++;
            emit(r, pos);
            continue;
        }
        const unsigned not_other = UNI_WHITESPACE | UNI_LETTER | UNI_NUMBER;
        if (f2 && !(f2 & not_other)) {
            pos += ch == ' ';
            while (fl(r, pos) && !(fl(r, pos) & not_other))
                pos++;
            emit(r, pos);
            continue;
        }

        size_t nws = 0;
        while (fl(r, pos + nws) & UNI_WHITESPACE)
            nws++;
        if (nws > 1 && pos + nws < e) { /* \s+(?!\S): leave the last one */
            pos += nws - 1;
            emit(r, pos);
            continue;
        }
        if (nws > 0) {
            pos += nws;
            emit(r, pos);
            continue;
        }
        emit(r, ++pos); /* matched by nothing: a piece of its own */
    }
}

/*
 * LLAMA3 / QWEN2 / QWEN35:
 *   (?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])
 *   |[^\r\n\p{L}\p{N}]?W+ |\p{N}{1,max_digits} | ?[^\s\p{N}W]+[\r\n]*
 *   |\s*[\r\n]+ |\s+(?!\S) |\s+
 * where W is \p{L}, or [\p{L}\p{M}] for QWEN35 (marks).
 */
static void split_llama(struct run *r, size_t s, unsigned max_digits, bool marks)
{
    const uint32_t *c = r->cpt;
    const size_t e = r->e;
    const unsigned word = UNI_LETTER | (marks ? UNI_MARK : 0u);
    const unsigned not_other = UNI_WHITESPACE | UNI_NUMBER | word;
    size_t pos = s;

    r->prev = s;
    while (pos < e) {
        const uint32_t ch = c[pos];
        const unsigned f = r->flags[pos];

        if (ch == '\'' && pos + 1 < e) {
            const uint32_t a = uni_tolower(c[pos + 1]);
            if (a == 's' || a == 't' || a == 'm' || a == 'd') {
                pos += 2;
                emit(r, pos);
                continue;
            }
            if (pos + 2 < e) {
                const uint32_t b = uni_tolower(c[pos + 2]);
                if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) {
                    pos += 3;
                    emit(r, pos);
                    continue;
                }
            }
        }

        /* one optional non-letter, non-digit, non-newline, then the run */
        if (!is_crlf(ch) && !(f & UNI_NUMBER) && ((f & word) || (fl(r, pos + 1) & word))) {
            pos++;
            while (fl(r, pos) & word)
                pos++;
            emit(r, pos);
            continue;
        }

        if (f & UNI_NUMBER) {
            size_t ini = pos;
            while (fl(r, pos) & UNI_NUMBER) {
                pos++;
                if (pos - ini >= max_digits) { /* groups counted from the left */
                    emit(r, pos);
                    ini = pos;
                }
            }
            emit(r, pos);
            continue;
        }

        const unsigned f2 = ch == ' ' ? fl(r, pos + 1) : f;
        if (f2 && !(f2 & not_other)) {
            pos += ch == ' ';
            while (fl(r, pos) && !(fl(r, pos) & not_other))
                pos++;
            while (pos < e && is_crlf(c[pos]))
                pos++;
            emit(r, pos);
            continue;
        }

        size_t nws = 0, after_nl = 0;
        while (fl(r, pos + nws) & UNI_WHITESPACE) {
            if (is_crlf(c[pos + nws]))
                after_nl = pos + nws + 1;
            nws++;
        }
        if (after_nl) { /* \s*[\r\n]+ ends after the run's last newline */
            pos = after_nl;
            emit(r, pos);
            continue;
        }
        if (nws > 1 && pos + nws < e) {
            pos += nws - 1;
            emit(r, pos);
            continue;
        }
        if (nws > 0) {
            pos += nws;
            emit(r, pos);
            continue;
        }
        emit(r, ++pos);
    }
}

/* A generic regex pass made of one character class with `+`: maximal runs of
 * class members are matches, the text between them stays one piece. */
static bool in_default_punct(uint32_t cp, unsigned f)
{
    /* [\p{P}\$\+<=>\^~\|] */
    return (f & UNI_PUNCT) || cp == '$' || cp == '+' || cp == '<' || cp == '=' || cp == '>' ||
           cp == '^' || cp == '~' || cp == '|';
}

static void split_runs(struct run *r, size_t s, bool numbers)
{
    size_t pos = s;

    r->prev = s;
    while (pos < r->e) {
        const bool in = numbers ? (r->flags[pos] & UNI_NUMBER) != 0
                                : in_default_punct(r->cpt[pos], r->flags[pos]);
        size_t end = pos + 1;
        while (end < r->e &&
               (numbers ? (r->flags[end] & UNI_NUMBER) != 0
                        : in_default_punct(r->cpt[end], r->flags[end])) == in)
            end++;
        emit(r, end);
        pos = end;
    }
}

/* [0-9][0-9][0-9]: leftmost non-overlapping triples of ASCII digits. */
static void split_triples(struct run *r, size_t s)
{
    const uint32_t *c = r->cpt;
    size_t pos = s;

    r->prev = s;
    while (pos + 3 <= r->e) {
        if (c[pos] >= '0' && c[pos] <= '9' && c[pos + 1] >= '0' && c[pos + 1] <= '9' &&
            c[pos + 2] >= '0' && c[pos + 2] <= '9') {
            emit(r, pos); /* the text before the match */
            pos += 3;
            emit(r, pos);
        } else {
            pos++;
        }
    }
    emit(r, r->e);
}

enum pass {
    PASS_GPT2,
    PASS_LLAMA3,
    PASS_QWEN2,
    PASS_QWEN35,
    PASS_PUNCT,   /* [\p{P}\$\+<=>\^~\|]+ */
    PASS_NUMBERS, /* \p{N}+ */
    PASS_TRIPLES, /* [0-9][0-9][0-9] */
};

static void run_pass(struct uni_text *t, enum pass p)
{
    struct run r = {.cpt = t->cpt, .flags = t->flags, .out = t->tmp, .n_out = 0};
    size_t start = 0;

    for (size_t i = 0; i < t->n_piece; i++) {
        r.e = start + t->piece[i];
        switch (p) {
        case PASS_GPT2:
            split_gpt2(&r, start);
            break;
        case PASS_LLAMA3:
            split_llama(&r, start, 3, false);
            break;
        case PASS_QWEN2:
            split_llama(&r, start, 1, false);
            break;
        case PASS_QWEN35:
            split_llama(&r, start, 1, true);
            break;
        case PASS_PUNCT:
            split_runs(&r, start, false);
            break;
        case PASS_NUMBERS:
            split_runs(&r, start, true);
            break;
        case PASS_TRIPLES:
            split_triples(&r, start);
            break;
        }
        start = r.e;
    }
    size_t *swap = t->piece;
    t->piece = t->tmp;
    t->tmp = swap;
    t->n_piece = r.n_out;
}

static int reserve(void **p, size_t *cap, size_t want, size_t elem)
{
    if (*cap >= want)
        return 0;
    void *np = realloc(*p, want * elem);
    if (!np)
        return -ENOMEM;
    *p = np;
    *cap = want;
    return 0;
}

int uni_pre_split(struct uni_text *t, enum uni_pre pre, const char *s, size_t len)
{
    /* at most one code point per byte; at least one slot so n == 0 works */
    size_t want = len ? len : 1, cap;

    cap = t->cap;
    if (reserve((void **)&t->cpt, &cap, want, sizeof *t->cpt))
        return -ENOMEM;
    cap = t->cap;
    if (reserve((void **)&t->flags, &cap, want, sizeof *t->flags))
        return -ENOMEM;
    t->cap = cap;
    if (reserve((void **)&t->piece, &t->cap_piece, want, sizeof *t->piece))
        return -ENOMEM;
    if (reserve((void **)&t->tmp, &t->cap_tmp, want, sizeof *t->tmp))
        return -ENOMEM;

    size_t n = 0;
    for (size_t i = 0; i < len;) {
        size_t adv;
        uint32_t cp = uni_decode(s + i, len - i, &adv);
        t->cpt[n] = cp;
        t->flags[n] = (uint16_t)uni_flags(cp);
        n++;
        i += adv;
    }
    t->n = n;
    t->n_piece = 0;
    if (n == 0)
        return 0;
    t->piece[0] = n;
    t->n_piece = 1;

    switch (pre) {
    case UNI_PRE_GPT2:
        run_pass(t, PASS_GPT2);
        break;
    case UNI_PRE_LLAMA3:
        run_pass(t, PASS_LLAMA3);
        break;
    case UNI_PRE_QWEN2:
        run_pass(t, PASS_QWEN2);
        break;
    case UNI_PRE_QWEN35:
        run_pass(t, PASS_QWEN35);
        break;
    case UNI_PRE_DEFAULT:
        run_pass(t, PASS_PUNCT);
        run_pass(t, PASS_GPT2);
        run_pass(t, PASS_NUMBERS);
        run_pass(t, PASS_TRIPLES);
        break;
    }
    return 0;
}
