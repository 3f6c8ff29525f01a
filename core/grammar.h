/*
 * grammar.h — GBNF grammars inside the engine (docs/grammar.md): the rule set
 * the parser builds (grammar_parse.c), the incremental recognizer that
 * constrains sampling (grammar.c), and the JSON Schema → GBNF converter
 * (json_schema.c). The public entry points (hr_grammar_*,
 * hr_sampler_set_grammar) are declared in <hearth/hearth.h>; what is here is
 * shared by those files, the sampler and the tests. Not part of any API.
 *
 * Rule representation. All rules live in one array of elements; rule r
 * occupies elem[rule_start[r] ..], its alternatives separated by GE_ALT and
 * the last one closed by GE_END. An alternative is a sequence of terminals
 * (GE_CHAR, GE_CLASS, GE_ANY — each matches exactly one code point) and rule
 * references (GE_REF). An empty alternative (GE_ALT or GE_END right at its
 * start) matches the empty string. Repetitions and parenthesised groups are
 * rewritten by the parser into generated rules, so the recognizer only ever
 * sees these six element kinds. The parser guarantees: every GE_REF names a
 * defined rule, and no rule can reach itself without consuming a code point
 * (no left recursion), so expanding references always terminates.
 */
#ifndef HEARTH_CORE_GRAMMAR_H
#define HEARTH_CORE_GRAMMAR_H

#include <hearth/hearth.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum gelem_type {
    GE_END = 0, /* end of the rule's last alternative */
    GE_ALT,     /* end of an alternative, another follows */
    GE_REF,     /* val: rule id */
    GE_CHAR,    /* val: code point */
    GE_CLASS,   /* val: index into grules.cls */
    GE_ANY,     /* any code point ("." in GBNF) */
};

struct gelem {
    uint32_t type; /* enum gelem_type */
    uint32_t val;
};

/* A character class: the code point ranges grules.ranges[2*first ..
 * 2*(first+n)) as inclusive (lo, hi) pairs, sorted and merged (disjoint, not
 * adjacent). neg: the class matches what is NOT in the ranges. ascii: the
 * class's answer for code points 0..127 as a bitmap, for speed. */
struct gclass {
    uint32_t first, n;
    bool neg;
    uint64_t ascii[2];
};

struct grules {
    struct gelem *elem;
    uint32_t n_elem;
    uint32_t *rule_start; /* [n_rules] */
    uint32_t *alt_first;  /* [n_rules + 1]: alternatives of rule r are alt_start[alt_first[r] ..
                             alt_first[r+1]) */
    uint32_t *alt_start;  /* element index where each alternative begins */
    char **name;          /* [n_rules] display names; generated rules: "owner~N" */
    uint32_t n_rules;
    struct gclass *cls;
    uint32_t n_cls;
    uint32_t *ranges;
    uint32_t root;
};

/* Limits that keep hostile grammars bounded in parse time and memory. */
#define GRAMMAR_MAX_SOURCE (4u << 20)  /* bytes of GBNF text */
#define GRAMMAR_MAX_ELEMS (1u << 21)   /* elements after rewriting repetitions */
#define GRAMMAR_MAX_REPEAT 10000u      /* m and n in {m,n} */
#define GRAMMAR_MAX_NESTING 200        /* nested parentheses */

/* Parses GBNF source (NUL-terminated) with start rule `root` (NULL: "root").
 * *out owned (grules_free). Errors: -EINVAL with err->msg "LINE:COL: what is
 * wrong" and err->line/column/offset set (undefined rule, missing root, bad
 * escape, unbalanced parentheses, left recursion, ...), -E2BIG (a limit
 * above), -ENOMEM. */
int grammar_parse(const char *src, const char *root, struct grules **out, struct hr_err *err);
void grules_free(struct grules *r);

/* ---- the recognizer (grammar.c) --------------------------------------------
 * Besides the public hr_grammar_* calls, these work on text, for tests and
 * for callers that feed bytes rather than tokens. */

/* Would feeding these bytes keep the grammar alive? (A trailing incomplete
 * UTF-8 sequence is allowed when some continuation of it could match.) The
 * state does not change. */
bool grammar_check_text(struct hr_grammar *g, const char *s, size_t n);
/* Feeds bytes: 0, or -EINVAL (rejected; the state does not change). */
int grammar_accept_text(struct hr_grammar *g, const char *s, size_t n);
/* The text fed so far is a complete sentence of the grammar. */
bool grammar_can_end(const struct hr_grammar *g);

/* For the sampler: whether token `id` may come next (EOG tokens: when the
 * grammar can end; tokens with no text: never), and the same for the whole
 * vocabulary at once: a borrowed [n_vocab] array of 0/1, valid until the next
 * call on g. NULL on -ENOMEM. */
bool grammar_allows(struct hr_grammar *g, int32_t id);
const uint8_t *grammar_mask(struct hr_grammar *g);
int32_t grammar_n_vocab(const struct hr_grammar *g);

#endif
