/*
 * grammar_parse.c — the GBNF parser: text → struct grules (grammar.h).
 *
 * The language is llama.cpp's GBNF (docs/grammar.md has the reference):
 *
 *   grammar  := rule*
 *   rule     := name "::=" alts (newline | end)
 *   alts     := seq ("|" seq)*            a newline may precede or follow "|"
 *   seq      := (atom postfix*)*          newlines only inside ( )
 *   atom     := "literal" | [class] | [^class] | . | name | ( alts )
 *   postfix  := * | + | ? | {m} | {m,} | {m,n} | {,n}
 *
 * with # comments to the end of a line wherever space may go. Names are
 * [A-Za-z0-9_-]+.
 *
 * Rewriting. Groups become generated rules; a repetition of an atom X
 * becomes m copies of X followed, for an unbounded maximum, by a rule
 * `R ::= X R |`, or for a bounded one by n−m nested optional rules
 * `R1 ::= X |`, `R2 ::= X R1 |`, …, so that X{0,n} costs n small rules
 * instead of n optional copies that each keep the recognizer's alternatives
 * alive. Every rule is built in a buffer of its own (a group's rule is
 * finished while its parent is still being built); finishing concatenates
 * them.
 *
 * Checks after parsing: every referenced rule is defined, the root exists,
 * and no rule is left-recursive — a rule that can reach itself before
 * consuming a character (directly, or through rules that can match the empty
 * string) would make the recognizer expand forever. Errors carry the
 * line:column of the offending text.
 */
#include "grammar.h"

#include "err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REPEAT_UNBOUNDED UINT32_MAX

enum rule_kind { RK_USER, RK_GROUP, RK_REPEAT };

struct rbuf {
    struct gelem *e;
    uint32_t n, cap;
};

struct prule {
    char *name;      /* owned; user rules only (generated: NULL until finish) */
    struct rbuf body;
    bool defined;
    enum rule_kind kind;
    size_t def_off;  /* definition, or the construct that generated the rule */
    size_t use_off;  /* first reference (for "undefined rule") */
    uint32_t owner;  /* the user rule a generated rule was made for */
    uint32_t n_gen;  /* generated rules made for this user rule so far */
};

struct parser {
    const char *src;
    size_t len;
    struct prule **rule;
    uint32_t n_rules, cap_rules;
    uint32_t *slot; /* name hash table: rule id + 1, 0 = empty */
    uint32_t slot_mask;
    struct gclass *cls;
    uint32_t n_cls, cap_cls;
    uint32_t *ranges;
    uint32_t n_ranges, cap_ranges; /* counted in uint32_t (2 per range) */
    size_t n_elems;                /* all bodies together */
    int depth;
    struct hr_err *err;
    int rc; /* first error, 0 while none */
};

/* ---- errors ------------------------------------------------------------------ */

static void pos_of(const char *src, size_t off, int *line, int *col)
{
    int l = 1, c = 1;
    for (size_t i = 0; i < off && src[i]; i++) {
        if (src[i] == '\n') {
            l++;
            c = 1;
        } else if (((unsigned char)src[i] & 0xc0) != 0x80) {
            c++;
        }
    }
    *line = l;
    *col = c;
}

/* Records the first error only; returns rc for `return fail(...)`. */
#if defined(__GNUC__)
__attribute__((format(printf, 4, 5)))
#endif
static int
fail(struct parser *ps, size_t off, int rc, const char *fmt, ...)
{
    if (ps->rc)
        return ps->rc;
    ps->rc = rc;
    if (ps->err) {
        char what[400];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(what, sizeof what, fmt, ap);
        va_end(ap);
        int line, col;
        pos_of(ps->src, off, &line, &col);
        hr_err_clear(ps->err);
        snprintf(ps->err->msg, sizeof ps->err->msg, "%d:%d: %s", line, col, what);
        ps->err->line = line;
        ps->err->column = col;
        ps->err->offset = (int64_t)off;
    }
    return rc;
}

static int fail_nomem(struct parser *ps)
{
    if (!ps->rc) {
        ps->rc = -ENOMEM;
        if (ps->err) {
            hr_err_clear(ps->err);
            snprintf(ps->err->msg, sizeof ps->err->msg, "out of memory");
        }
    }
    return -ENOMEM;
}

/* A printable rendering of the character at s, for messages. */
static const char *show_char(const char *s, char buf[16])
{
    unsigned char c = (unsigned char)*s;
    if (c == 0)
        return "end of input";
    if (c == '\n')
        return "end of line";
    if (c < 0x20 || c == 0x7f)
        snprintf(buf, 16, "'\\x%02X'", c);
    else if (c < 0x80)
        snprintf(buf, 16, "'%c'", c);
    else
        snprintf(buf, 16, "byte 0x%02X", c);
    return buf;
}

/* ---- rules and names ------------------------------------------------------------- */

static uint32_t name_hash(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

static int new_rule(struct parser *ps, enum rule_kind kind, size_t off, uint32_t owner,
                    uint32_t *id)
{
    if (ps->n_rules >= GRAMMAR_MAX_ELEMS)
        return fail(ps, off, -E2BIG, "grammar too large (more than %u rules)", GRAMMAR_MAX_ELEMS);
    if (ps->n_rules == ps->cap_rules) {
        uint32_t cap = ps->cap_rules ? 2 * ps->cap_rules : 32;
        struct prule **r = realloc(ps->rule, cap * sizeof *r);
        if (!r)
            return fail_nomem(ps);
        ps->rule = r;
        ps->cap_rules = cap;
    }
    struct prule *r = calloc(1, sizeof *r);
    if (!r)
        return fail_nomem(ps);
    r->kind = kind;
    r->def_off = off;
    r->use_off = off;
    r->owner = kind == RK_USER ? ps->n_rules : owner;
    ps->rule[ps->n_rules] = r;
    *id = ps->n_rules++;
    return 0;
}

/* The id of the user rule named s[0..n), created (undefined) if new. */
static int rule_by_name(struct parser *ps, const char *s, size_t n, size_t off, uint32_t *id)
{
    /* keep the table at most half full */
    if (2 * (ps->n_rules + 1) > ps->slot_mask + 1) {
        uint32_t size = ps->slot_mask ? 2 * (ps->slot_mask + 1) : 64;
        uint32_t *slot = calloc(size, sizeof *slot);
        if (!slot)
            return fail_nomem(ps);
        for (uint32_t i = 0; i <= ps->slot_mask && ps->slot; i++) {
            if (!ps->slot[i])
                continue;
            const char *nm = ps->rule[ps->slot[i] - 1]->name;
            uint32_t j = name_hash(nm, strlen(nm)) & (size - 1);
            while (slot[j])
                j = (j + 1) & (size - 1);
            slot[j] = ps->slot[i];
        }
        free(ps->slot);
        ps->slot = slot;
        ps->slot_mask = size - 1;
    }
    uint32_t j = name_hash(s, n) & ps->slot_mask;
    while (ps->slot[j]) {
        const char *nm = ps->rule[ps->slot[j] - 1]->name;
        if (strlen(nm) == n && memcmp(nm, s, n) == 0) {
            *id = ps->slot[j] - 1;
            return 0;
        }
        j = (j + 1) & ps->slot_mask;
    }
    int rc = new_rule(ps, RK_USER, off, 0, id);
    if (rc < 0)
        return rc;
    char *nm = malloc(n + 1);
    if (!nm)
        return fail_nomem(ps);
    memcpy(nm, s, n);
    nm[n] = '\0';
    ps->rule[*id]->name = nm;
    ps->slot[j] = *id + 1;
    return 0;
}

static int emit(struct parser *ps, uint32_t rule, uint32_t type, uint32_t val, size_t off)
{
    struct rbuf *b = &ps->rule[rule]->body;
    if (ps->n_elems >= GRAMMAR_MAX_ELEMS)
        return fail(ps, off, -E2BIG, "grammar too large (more than %u elements after expanding "
                    "repetitions)", GRAMMAR_MAX_ELEMS);
    if (b->n == b->cap) {
        uint32_t cap = b->cap ? 2 * b->cap : 16;
        struct gelem *e = realloc(b->e, cap * sizeof *e);
        if (!e)
            return fail_nomem(ps);
        b->e = e;
        b->cap = cap;
    }
    b->e[b->n++] = (struct gelem){type, val};
    ps->n_elems++;
    return 0;
}

/* ---- lexical helpers ----------------------------------------------------------------- */

static bool is_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '_';
}

/* Skips blanks and comments; newlines too when newline_ok. */
static const char *skip_space(const char *s, bool newline_ok)
{
    for (;;) {
        if (*s == ' ' || *s == '\t') {
            s++;
        } else if (*s == '#') {
            while (*s && *s != '\n' && *s != '\r')
                s++;
        } else if (newline_ok && (*s == '\n' || *s == '\r')) {
            s++;
        } else {
            return s;
        }
    }
}

/* Decodes one UTF-8 character at s (strict: no overlongs, surrogates or
 * values past U+10FFFF). Returns its length, 0 if invalid. */
static int utf8_decode(const char *s, uint32_t *cp)
{
    const unsigned char *u = (const unsigned char *)s;
    if (u[0] < 0x80) {
        *cp = u[0];
        return 1;
    }
    int n;
    uint32_t v, min;
    if (u[0] >= 0xc2 && u[0] <= 0xdf) {
        n = 2, v = u[0] & 0x1f, min = 0x80;
    } else if (u[0] >= 0xe0 && u[0] <= 0xef) {
        n = 3, v = u[0] & 0x0f, min = 0x800;
    } else if (u[0] >= 0xf0 && u[0] <= 0xf4) {
        n = 4, v = u[0] & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    for (int i = 1; i < n; i++) {
        if ((u[i] & 0xc0) != 0x80)
            return 0;
        v = (v << 6) | (u[i] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
        return 0;
    *cp = v;
    return n;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* One character of a literal or class at *sp (escape or UTF-8), advancing
 * *sp. in_class: the context, for the message on a raw newline. */
static int parse_char(struct parser *ps, const char **sp, bool in_class, uint32_t *cp)
{
    const char *s = *sp;
    size_t off = (size_t)(s - ps->src);
    if (*s == '\0')
        return fail(ps, off, -EINVAL, in_class ? "unterminated character class (missing ']')"
                                               : "unterminated string literal (missing '\"')");
    if (*s == '\n' || *s == '\r')
        return fail(ps, off, -EINVAL, in_class ? "newline in character class (write \\n)"
                                               : "newline in string literal (write \\n)");
    if (*s != '\\') {
        int n = utf8_decode(s, cp);
        if (!n)
            return fail(ps, off, -EINVAL, "invalid UTF-8");
        *sp = s + n;
        return 0;
    }
    char e = s[1];
    int digits = 0;
    switch (e) {
    case 'n': *cp = '\n'; break;
    case 'r': *cp = '\r'; break;
    case 't': *cp = '\t'; break;
    case '\\': case '"': case '\'': case '[': case ']': case '-': case '^': case '/':
        *cp = (unsigned char)e;
        break;
    case 'x': digits = 2; break;
    case 'u': digits = 4; break;
    case 'U': digits = 8; break;
    default: {
        char b[16];
        return fail(ps, off, -EINVAL, "bad escape: '\\' followed by %s", show_char(s + 1, b));
    }
    }
    if (!digits) {
        *sp = s + 2;
        return 0;
    }
    uint32_t v = 0;
    for (int i = 0; i < digits; i++) {
        int h = hexval(s[2 + i]);
        if (h < 0)
            return fail(ps, off, -EINVAL, "bad escape: \\%c needs %d hex digits", e, digits);
        v = (v << 4) | (uint32_t)h;
    }
    if (v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
        return fail(ps, off, -EINVAL, "bad escape: U+%X is not a valid character", v);
    *cp = v;
    *sp = s + 2 + digits;
    return 0;
}

/* ---- atoms ------------------------------------------------------------------------------ */

static int parse_literal(struct parser *ps, uint32_t rule, const char **sp)
{
    const char *s = *sp + 1; /* after the opening quote */
    while (*s != '"') {
        size_t off = (size_t)(s - ps->src);
        uint32_t cp;
        int rc = parse_char(ps, &s, false, &cp);
        if (rc < 0)
            return rc;
        if ((rc = emit(ps, rule, GE_CHAR, cp, off)) < 0)
            return rc;
    }
    *sp = s + 1;
    return 0;
}

static int cmp_range(const void *a, const void *b)
{
    const uint32_t *x = a, *y = b;
    return x[0] < y[0] ? -1 : x[0] > y[0];
}

static int parse_class(struct parser *ps, uint32_t rule, const char **sp)
{
    const char *open = *sp;
    const char *s = open + 1;
    bool neg = false;
    if (*s == '^') {
        neg = true;
        s++;
    }
    uint32_t first = ps->n_ranges / 2;
    while (*s != ']') {
        size_t off = (size_t)(s - ps->src);
        uint32_t lo, hi;
        int rc = parse_char(ps, &s, true, &lo);
        if (rc < 0)
            return rc;
        hi = lo;
        if (s[0] == '-' && s[1] != ']' && s[1] != '\0') {
            s++;
            if ((rc = parse_char(ps, &s, true, &hi)) < 0)
                return rc;
            if (hi < lo)
                return fail(ps, off, -EINVAL, "bad range in character class: U+%X > U+%X", lo,
                            hi);
        }
        if (ps->n_ranges + 2 > ps->cap_ranges) {
            if (ps->n_ranges >= 2 * GRAMMAR_MAX_ELEMS)
                return fail(ps, off, -E2BIG, "grammar too large (character classes)");
            uint32_t cap = ps->cap_ranges ? 2 * ps->cap_ranges : 64;
            uint32_t *r = realloc(ps->ranges, cap * sizeof *r);
            if (!r)
                return fail_nomem(ps);
            ps->ranges = r;
            ps->cap_ranges = cap;
        }
        ps->ranges[ps->n_ranges++] = lo;
        ps->ranges[ps->n_ranges++] = hi;
    }
    uint32_t n = ps->n_ranges / 2 - first;
    if (n == 0 && !neg)
        return fail(ps, (size_t)(open - ps->src), -EINVAL, "empty character class");
    /* sort and merge overlapping or adjacent ranges */
    uint32_t *r = n ? ps->ranges + 2 * first : NULL; /* [^] has none */
    if (n)
        qsort(r, n, 2 * sizeof *r, cmp_range);
    uint32_t m = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (m > 0 && r[2 * i] <= r[2 * (m - 1) + 1] + 1) {
            if (r[2 * i + 1] > r[2 * (m - 1) + 1])
                r[2 * (m - 1) + 1] = r[2 * i + 1];
        } else {
            r[2 * m] = r[2 * i];
            r[2 * m + 1] = r[2 * i + 1];
            m++;
        }
    }
    ps->n_ranges = 2 * (first + m);

    if (ps->n_cls == ps->cap_cls) {
        uint32_t cap = ps->cap_cls ? 2 * ps->cap_cls : 16;
        struct gclass *c = realloc(ps->cls, cap * sizeof *c);
        if (!c)
            return fail_nomem(ps);
        ps->cls = c;
        ps->cap_cls = cap;
    }
    struct gclass *c = &ps->cls[ps->n_cls];
    *c = (struct gclass){.first = first, .n = m, .neg = neg};
    for (uint32_t cp = 0; cp < 128; cp++) {
        bool in = false;
        for (uint32_t i = 0; i < m && r[2 * i] <= cp; i++)
            in = in || cp <= r[2 * i + 1];
        if (in != neg)
            c->ascii[cp >> 6] |= 1ull << (cp & 63);
    }
    int rc = emit(ps, rule, GE_CLASS, ps->n_cls, (size_t)(open - ps->src));
    if (rc < 0)
        return rc;
    ps->n_cls++;
    *sp = s + 1;
    return 0;
}

/* {m}, {m,}, {m,n}, {,n} at *sp. */
static int parse_braces(struct parser *ps, const char **sp, uint32_t *min, uint32_t *max)
{
    const char *open = *sp;
    const char *s = skip_space(open + 1, false);
    uint64_t v[2] = {0, 0};
    bool have[2] = {false, false};
    bool comma = false;
    for (int k = 0; k < 2; k++) {
        while (*s >= '0' && *s <= '9') {
            have[k] = true;
            v[k] = v[k] * 10 + (uint64_t)(*s - '0');
            if (v[k] > GRAMMAR_MAX_REPEAT)
                return fail(ps, (size_t)(open - ps->src), -E2BIG,
                            "repetition count too large (at most %u)", GRAMMAR_MAX_REPEAT);
            s++;
        }
        s = skip_space(s, false);
        if (k == 0 && *s == ',') {
            comma = true;
            s = skip_space(s + 1, false);
        } else {
            break;
        }
    }
    if (*s != '}') {
        char b[16];
        return fail(ps, (size_t)(s - ps->src), -EINVAL,
                    "expected a number or '}' in repetition {m,n}, found %s", show_char(s, b));
    }
    if (!have[0] && !(comma && have[1]))
        return fail(ps, (size_t)(open - ps->src), -EINVAL, "repetition {m,n} without a count");
    *min = (uint32_t)v[0];
    *max = !comma ? (uint32_t)v[0] : have[1] ? (uint32_t)v[1] : REPEAT_UNBOUNDED;
    if (*max < *min)
        return fail(ps, (size_t)(open - ps->src), -EINVAL,
                    "bad repetition {%u,%u}: the maximum is below the minimum", *min, *max);
    *sp = s + 1;
    return 0;
}

/* Rewrites the atom rule.body[start ..] as a repetition {min,max} (see the
 * file comment). */
static int repeat(struct parser *ps, uint32_t rule, uint32_t start, uint32_t min, uint32_t max,
                  size_t off)
{
    struct rbuf *b = &ps->rule[rule]->body;
    uint32_t alen = b->n - start;
    int rc = 0;
    if (alen == 0)
        return 0; /* repeating "" is "" */
    struct gelem *atom = malloc(alen * sizeof *atom);
    if (!atom)
        return fail_nomem(ps);
    memcpy(atom, b->e + start, alen * sizeof *atom);
    b->n = start;
    ps->n_elems -= alen;

    uint32_t owner = ps->rule[rule]->owner;
    for (uint32_t i = 0; i < min && rc == 0; i++)
        for (uint32_t k = 0; k < alen && rc == 0; k++)
            rc = emit(ps, rule, atom[k].type, atom[k].val, off);
    if (rc == 0 && max == REPEAT_UNBOUNDED) {
        uint32_t r;
        rc = new_rule(ps, RK_REPEAT, off, owner, &r);
        for (uint32_t k = 0; k < alen && rc == 0; k++)
            rc = emit(ps, r, atom[k].type, atom[k].val, off);
        if (rc == 0)
            rc = emit(ps, r, GE_REF, r, off);
        if (rc == 0)
            rc = emit(ps, r, GE_ALT, 0, off);
        if (rc == 0)
            rc = emit(ps, r, GE_END, 0, off);
        if (rc == 0) {
            ps->rule[r]->defined = true;
            rc = emit(ps, rule, GE_REF, r, off);
        }
    } else if (rc == 0 && max > min) {
        uint32_t last = UINT32_MAX;
        for (uint32_t i = 0; i < max - min && rc == 0; i++) {
            uint32_t r;
            rc = new_rule(ps, RK_REPEAT, off, owner, &r);
            for (uint32_t k = 0; k < alen && rc == 0; k++)
                rc = emit(ps, r, atom[k].type, atom[k].val, off);
            if (rc == 0 && last != UINT32_MAX)
                rc = emit(ps, r, GE_REF, last, off);
            if (rc == 0)
                rc = emit(ps, r, GE_ALT, 0, off);
            if (rc == 0)
                rc = emit(ps, r, GE_END, 0, off);
            if (rc == 0)
                ps->rule[r]->defined = true;
            last = r;
        }
        if (rc == 0)
            rc = emit(ps, rule, GE_REF, last, off);
    }
    free(atom);
    return rc;
}

static int parse_alts(struct parser *ps, uint32_t rule, const char **sp, bool nested);

static int parse_seq(struct parser *ps, uint32_t rule, const char **sp, bool nested)
{
    const char *s = *sp;
    uint32_t last = UINT32_MAX; /* where the last atom (or repetition) begins in the body */
    int rc = 0;
    for (;;) {
        size_t off = (size_t)(s - ps->src);
        uint32_t start = ps->rule[rule]->body.n;
        if (*s == '"') {
            rc = parse_literal(ps, rule, &s);
            last = start;
        } else if (*s == '[') {
            rc = parse_class(ps, rule, &s);
            last = start;
        } else if (*s == '.') {
            rc = emit(ps, rule, GE_ANY, 0, off);
            s++;
            last = start;
        } else if (is_name_char(*s)) {
            const char *e = s;
            while (is_name_char(*e))
                e++;
            uint32_t ref;
            rc = rule_by_name(ps, s, (size_t)(e - s), off, &ref);
            if (rc == 0 && !ps->rule[ref]->defined && ps->rule[ref]->use_off > off)
                ps->rule[ref]->use_off = off;
            if (rc == 0)
                rc = emit(ps, rule, GE_REF, ref, off);
            s = e;
            last = start;
        } else if (*s == '(') {
            if (ps->depth >= GRAMMAR_MAX_NESTING)
                return fail(ps, off, -E2BIG, "parentheses nested too deeply (more than %d)",
                            GRAMMAR_MAX_NESTING);
            uint32_t g;
            rc = new_rule(ps, RK_GROUP, off, ps->rule[rule]->owner, &g);
            if (rc < 0)
                return rc;
            ps->rule[g]->defined = true;
            s = skip_space(s + 1, true);
            ps->depth++;
            rc = parse_alts(ps, g, &s, true);
            ps->depth--;
            if (rc < 0)
                return rc;
            if (*s != ')') {
                char b[16];
                return fail(ps, (size_t)(s - ps->src), -EINVAL,
                            "unbalanced parentheses: expected ')' to close the '(' at offset "
                            "%zu, found %s", off, show_char(s, b));
            }
            s++;
            rc = emit(ps, rule, GE_REF, g, off);
            last = start;
        } else if (*s == '*' || *s == '+' || *s == '?' || *s == '{') {
            if (last == UINT32_MAX)
                return fail(ps, off, -EINVAL, "'%c' has nothing before it to repeat", *s);
            uint32_t min = 0, max = REPEAT_UNBOUNDED;
            if (*s == '+')
                min = 1;
            else if (*s == '?')
                max = 1;
            if (*s == '{')
                rc = parse_braces(ps, &s, &min, &max);
            else
                s++;
            if (rc == 0)
                rc = repeat(ps, rule, last, min, max, off);
        } else {
            break;
        }
        if (rc < 0)
            return rc;
        s = skip_space(s, nested);
    }
    *sp = s;
    return 0;
}

static int parse_alts(struct parser *ps, uint32_t rule, const char **sp, bool nested)
{
    const char *s = *sp;
    int rc = parse_seq(ps, rule, &s, nested);
    for (;;) {
        if (rc < 0)
            return rc;
        /* outside parentheses a "|" may also open the next line */
        const char *t = nested ? s : skip_space(s, true);
        if (*t != '|')
            break;
        size_t off = (size_t)(t - ps->src);
        if ((rc = emit(ps, rule, GE_ALT, 0, off)) < 0)
            return rc;
        s = skip_space(t + 1, true);
        rc = parse_seq(ps, rule, &s, nested);
    }
    *sp = s;
    return emit(ps, rule, GE_END, 0, (size_t)(s - ps->src));
}

static int parse_rule(struct parser *ps, const char **sp)
{
    const char *s = *sp;
    size_t off = (size_t)(s - ps->src);
    char b[16];
    if (!is_name_char(*s))
        return fail(ps, off, -EINVAL, "expected a rule name, found %s", show_char(s, b));
    const char *e = s;
    while (is_name_char(*e))
        e++;
    uint32_t id;
    int rc = rule_by_name(ps, s, (size_t)(e - s), off, &id);
    if (rc < 0)
        return rc;
    struct prule *r = ps->rule[id];
    if (r->defined) {
        int l, c;
        pos_of(ps->src, r->def_off, &l, &c);
        return fail(ps, off, -EINVAL, "rule '%s' defined twice (first at %d:%d)", r->name, l, c);
    }
    r->defined = true;
    r->def_off = off;
    s = skip_space(e, false);
    if (strncmp(s, "::=", 3) != 0)
        return fail(ps, (size_t)(s - ps->src), -EINVAL, "expected '::=' after rule name '%s', "
                    "found %s", r->name, show_char(s, b));
    s = skip_space(s + 3, true);
    if ((rc = parse_alts(ps, id, &s, false)) < 0)
        return rc;
    if (*s == ')')
        return fail(ps, (size_t)(s - ps->src), -EINVAL, "unbalanced parentheses: ')' without '('");
    if (*s && *s != '\n' && *s != '\r')
        return fail(ps, (size_t)(s - ps->src), -EINVAL, "unexpected %s in rule '%s'",
                    show_char(s, b), r->name);
    *sp = s;
    return 0;
}

/* ---- checks and the final layout --------------------------------------------------- */

static bool is_term(uint32_t t)
{
    return t == GE_CHAR || t == GE_CLASS || t == GE_ANY;
}

/* nullable[r]: rule r matches the empty string. A worklist over the
 * alternatives without terminals, each waiting for its references (linear
 * in the grammar's size, whatever the rule order). */
static int compute_nullable(const struct grules *g, bool *nullable)
{
    uint32_t n_alts = g->alt_first[g->n_rules];
    uint32_t *pending = calloc(n_alts + 1, sizeof *pending);
    uint32_t *alt_rule = malloc((n_alts + 1) * sizeof *alt_rule);
    uint32_t *head = malloc(g->n_rules * sizeof *head); /* rule → first waiting ref */
    uint32_t *next = malloc((g->n_elem + 1) * sizeof *next); /* per element, chain */
    uint32_t *owner_alt = malloc((g->n_elem + 1) * sizeof *owner_alt);
    uint32_t *queue = malloc((g->n_rules + 1) * sizeof *queue);
    int rc = -ENOMEM;
    if (!pending || !alt_rule || !head || !next || !owner_alt || !queue)
        goto out;
    memset(head, 0xff, g->n_rules * sizeof *head);
    uint32_t qn = 0;
    for (uint32_t r = 0; r < g->n_rules; r++) {
        for (uint32_t a = g->alt_first[r]; a < g->alt_first[r + 1]; a++) {
            alt_rule[a] = r;
            bool term = false;
            uint32_t refs = 0;
            for (uint32_t p = g->alt_start[a]; g->elem[p].type > GE_ALT; p++) {
                if (is_term(g->elem[p].type))
                    term = true;
                else
                    refs++;
            }
            if (term)
                continue;
            pending[a] = refs;
            for (uint32_t p = g->alt_start[a]; g->elem[p].type > GE_ALT; p++) {
                uint32_t t = g->elem[p].val;
                owner_alt[p] = a;
                next[p] = head[t];
                head[t] = p;
            }
            if (refs == 0 && !nullable[r]) {
                nullable[r] = true;
                queue[qn++] = r;
            }
        }
    }
    while (qn > 0) {
        uint32_t t = queue[--qn];
        for (uint32_t p = head[t]; p != UINT32_MAX; p = next[p]) {
            uint32_t a = owner_alt[p];
            if (--pending[a] == 0 && !nullable[alt_rule[a]]) {
                nullable[alt_rule[a]] = true;
                queue[qn++] = alt_rule[a];
            }
        }
    }
    rc = 0;
out:
    free(pending);
    free(alt_rule);
    free(head);
    free(next);
    free(owner_alt);
    free(queue);
    return rc;
}

/* Finds a rule that can reach itself at the left edge of an alternative
 * (iterative DFS over "r may start with s" edges). Returns its id, or
 * UINT32_MAX (also when out of memory, which sets *nomem). */
static uint32_t find_left_recursion(const struct grules *g, const bool *nullable, bool *nomem)
{
    uint8_t *color = calloc(g->n_rules, 1); /* 0 new, 1 on the DFS path, 2 done */
    struct frame { uint32_t rule, alt, pos; } *st = malloc((g->n_rules + 1) * sizeof *st);
    uint32_t found = UINT32_MAX;
    *nomem = !color || !st;
    if (*nomem)
        goto out;
    for (uint32_t root = 0; root < g->n_rules && found == UINT32_MAX; root++) {
        if (color[root])
            continue;
        uint32_t sp = 0;
        st[sp++] = (struct frame){root, g->alt_first[root], g->alt_start[g->alt_first[root]]};
        color[root] = 1;
        while (sp > 0 && found == UINT32_MAX) {
            struct frame *f = &st[sp - 1];
            /* the next reference at the left edge of one of f->rule's
             * alternatives, or none */
            uint32_t target = UINT32_MAX;
            const uint32_t alt_end = g->alt_first[f->rule + 1];
            while (f->alt < alt_end) {
                const struct gelem *e = &g->elem[f->pos];
                if (e->type == GE_REF) {
                    target = e->val;
                    if (nullable[target]) {
                        f->pos++; /* what follows a nullable reference is at the edge too */
                        break;
                    }
                }
                /* this alternative is done (after a terminal, its end, or a
                 * non-nullable reference) */
                f->alt++;
                if (f->alt < alt_end)
                    f->pos = g->alt_start[f->alt];
                if (target != UINT32_MAX)
                    break;
            }
            if (target == UINT32_MAX) {
                color[f->rule] = 2;
                sp--;
            } else if (color[target] == 1) {
                found = target;
            } else if (color[target] == 0) {
                color[target] = 1;
                st[sp++] = (struct frame){target, g->alt_first[target],
                                          g->alt_start[g->alt_first[target]]};
            }
        }
    }
out:
    free(color);
    free(st);
    return found;
}

void grules_free(struct grules *r)
{
    if (!r)
        return;
    free(r->elem);
    free(r->rule_start);
    free(r->alt_first);
    free(r->alt_start);
    if (r->name)
        for (uint32_t i = 0; i < r->n_rules; i++)
            free(r->name[i]);
    free(r->name);
    free(r->cls);
    free(r->ranges);
    free(r);
}

static int finish(struct parser *ps, const char *root, struct grules **out)
{
    /* undefined rules: report the earliest reference */
    uint32_t undef = UINT32_MAX;
    for (uint32_t i = 0; i < ps->n_rules; i++)
        if (!ps->rule[i]->defined &&
            (undef == UINT32_MAX || ps->rule[i]->use_off < ps->rule[undef]->use_off))
            undef = i;
    if (undef != UINT32_MAX)
        return fail(ps, ps->rule[undef]->use_off, -EINVAL, "undefined rule '%s'",
                    ps->rule[undef]->name);

    uint32_t root_id = UINT32_MAX;
    for (uint32_t i = 0; i < ps->n_rules; i++)
        if (ps->rule[i]->kind == RK_USER && strcmp(ps->rule[i]->name, root) == 0)
            root_id = i;
    if (root_id == UINT32_MAX) {
        ps->rc = -EINVAL;
        if (ps->err) {
            hr_err_clear(ps->err);
            snprintf(ps->err->msg, sizeof ps->err->msg, "no rule named '%.200s' (the start rule)",
                     root);
        }
        return -EINVAL;
    }

    struct grules *g = calloc(1, sizeof *g);
    if (!g)
        return fail_nomem(ps);
    g->n_rules = ps->n_rules;
    g->n_elem = (uint32_t)ps->n_elems;
    g->root = root_id;
    uint32_t n_alts = 0;
    for (uint32_t i = 0; i < ps->n_rules; i++)
        for (uint32_t k = 0; k < ps->rule[i]->body.n; k++)
            n_alts += ps->rule[i]->body.e[k].type <= GE_ALT;
    g->elem = malloc((g->n_elem + 1) * sizeof *g->elem);
    g->rule_start = malloc(g->n_rules * sizeof *g->rule_start);
    g->alt_first = malloc((g->n_rules + 1) * sizeof *g->alt_first);
    g->alt_start = malloc((n_alts + 1) * sizeof *g->alt_start);
    g->name = calloc(g->n_rules, sizeof *g->name);
    bool *nullable = calloc(g->n_rules, sizeof *nullable);
    if (!g->elem || !g->rule_start || !g->alt_first || !g->alt_start || !g->name || !nullable) {
        free(nullable);
        grules_free(g);
        return fail_nomem(ps);
    }
    uint32_t pos = 0, a = 0;
    for (uint32_t i = 0; i < ps->n_rules; i++) {
        struct prule *r = ps->rule[i];
        g->rule_start[i] = pos;
        g->alt_first[i] = a;
        g->alt_start[a++] = pos;
        memcpy(g->elem + pos, r->body.e, r->body.n * sizeof *g->elem);
        for (uint32_t k = 0; k + 1 < r->body.n; k++)
            if (r->body.e[k].type == GE_ALT)
                g->alt_start[a++] = pos + k + 1;
        pos += r->body.n;
        if (r->kind == RK_USER) {
            g->name[i] = r->name;
            r->name = NULL;
        } else {
            struct prule *o = ps->rule[r->owner];
            const char *on = o->name ? o->name : g->name[r->owner];
            size_t len = strlen(on) + 16;
            if ((g->name[i] = malloc(len)))
                snprintf(g->name[i], len, "%s~%u", on, ++o->n_gen);
        }
        if (!g->name[i]) {
            free(nullable);
            grules_free(g);
            return fail_nomem(ps);
        }
    }
    g->alt_first[g->n_rules] = a;
    g->cls = ps->cls;
    g->n_cls = ps->n_cls;
    g->ranges = ps->ranges;
    ps->cls = NULL;
    ps->ranges = NULL;

    bool nomem = compute_nullable(g, nullable) < 0;
    uint32_t lr = nomem ? UINT32_MAX : find_left_recursion(g, nullable, &nomem);
    free(nullable);
    if (nomem) {
        grules_free(g);
        return fail_nomem(ps);
    }
    if (lr != UINT32_MAX) {
        struct prule *r = ps->rule[lr];
        const char *owner = g->name[r->owner];
        if (r->kind == RK_REPEAT)
            fail(ps, r->def_off, -EINVAL,
                 "left recursion in rule '%s': the repeated item can match the empty string",
                 owner);
        else
            fail(ps, r->def_off, -EINVAL,
                 "left recursion in rule '%s': it can reach itself without consuming input "
                 "(not supported)", owner);
        grules_free(g);
        return -EINVAL;
    }
    *out = g;
    return 0;
}

int grammar_parse(const char *src, const char *root, struct grules **out, struct hr_err *err)
{
    struct parser ps = {.src = src, .err = err};
    int rc;
    hr_err_clear(err);
    if (!src || !out)
        return -EINVAL;
    if (!root)
        root = "root";
    ps.len = strlen(src);
    if (ps.len > GRAMMAR_MAX_SOURCE) {
        rc = -E2BIG;
        if (err)
            snprintf(err->msg, sizeof err->msg, "grammar too large (%zu bytes, at most %u)",
                     ps.len, GRAMMAR_MAX_SOURCE);
        goto fail;
    }
    const char *s = skip_space(src, true);
    while (*s) {
        if ((rc = parse_rule(&ps, &s)) < 0)
            goto fail;
        s = skip_space(s, true);
    }
    if ((rc = finish(&ps, root, out)) < 0)
        goto fail;
    rc = 0;
fail:
    for (uint32_t i = 0; i < ps.n_rules; i++) {
        free(ps.rule[i]->name);
        free(ps.rule[i]->body.e);
        free(ps.rule[i]);
    }
    free(ps.rule);
    free(ps.slot);
    free(ps.cls);
    free(ps.ranges);
    return rc;
}
