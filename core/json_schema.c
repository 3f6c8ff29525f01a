/*
 * json_schema.c — JSON Schema → GBNF (hr_grammar_from_json_schema), so that
 * sampling can be held to the documents a schema describes (tool-call
 * arguments, structured answers). The coverage is in docs/grammar.md.
 *
 * The output follows llama.cpp's conventions (common/json-schema-to-grammar):
 * a fixed set of primitive rules (space, string, number, …) added when used,
 * one rule per object, array and $ref target, named after where it sits in
 * the schema (root, root-address, root-address-street-kv), and bounded
 * whitespace: `space ::= | " " | "\n"{1,2} [ \t]{0,20}` after every token.
 * Objects: required properties first, in the order of "properties", then
 * the optional ones, each optional but in that order; additional properties
 * (additionalProperties true or a schema) after those, with keys that are
 * none of the declared names. An absent additionalProperties is taken as
 * false when "properties" is given (a model should not invent keys), as
 * llama.cpp does.
 *
 * Keywords that constrain documents in ways the grammar cannot follow
 * (pattern, not, if/then/else, patternProperties, ...) are errors, never
 * silently dropped; annotations (title, description, examples, default,
 * $schema, $id, ...) are ignored. Sizes are bounded: nesting depth, rule
 * count and output length, so hostile schemas fail fast with -E2BIG.
 *
 * Length: one subject (the converter) in ~1400 lines, most of it the
 * per-type builders, which share the rule table, the error path and the
 * recursion; split along types if it grows further.
 */
#include "grammar.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 64
#define MAX_RULES 5000
#define MAX_OUTPUT (1u << 20)
#define MAX_COUNT 10000 /* minItems, minLength: larger is an error; larger maxima: unbounded */

/* ---- a string builder ------------------------------------------------------------ */

struct sb {
    char *s;
    size_t n, cap;
    bool oom;
};

static void sb_put(struct sb *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = '\0';
}

static void sb_puts(struct sb *b, const char *s)
{
    sb_put(b, s, strlen(s));
}

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static void
sb_printf(struct sb *b, const char *fmt, ...)
{
    char buf[256];
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n < sizeof buf) {
        sb_put(b, buf, (size_t)n);
    } else if (n >= 0) {
        char *big = malloc((size_t)n + 1);
        if (big) {
            vsnprintf(big, (size_t)n + 1, fmt, ap2);
            sb_put(b, big, (size_t)n);
            free(big);
        } else {
            b->oom = true;
        }
    }
    va_end(ap2);
}

/* A GBNF string literal for bytes s[0..n) (valid UTF-8). */
static void sb_lit(struct sb *b, const char *s, size_t n)
{
    sb_put(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            sb_put(b, e, 2);
        } else if (c == '\n') {
            sb_put(b, "\\n", 2);
        } else if (c == '\r') {
            sb_put(b, "\\r", 2);
        } else if (c == '\t') {
            sb_put(b, "\\t", 2);
        } else if (c < 0x20 || c == 0x7f) {
            sb_printf(b, "\\x%02X", c);
        } else {
            sb_put(b, s + i, 1);
        }
    }
    sb_put(b, "\"", 1);
}

/* ---- the converter ------------------------------------------------------------------ */

struct rule {
    char *name;
    char *body; /* NULL while reserved (a $ref target being converted) */
};

struct conv {
    json_t *root;
    struct rule *rule;
    size_t n_rules, cap_rules;
    struct { char *ref, *name; } *refs;
    size_t n_refs, cap_refs;
    size_t out_len;
    int depth;
    char path[512]; /* JSON pointer of the schema being converted, for messages */
    /* a reserved rule (root, a $ref target) that the object or array rule
     * about to be made for it may take, instead of a rule of its own */
    const char *open;
    bool claimed;
    struct hr_err *err;
    int rc;
};

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static int
fail(struct conv *c, int rc, const char *fmt, ...)
{
    if (c->rc)
        return c->rc;
    c->rc = rc;
    if (c->err) {
        char what[400];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(what, sizeof what, fmt, ap);
        va_end(ap);
        hr_err_clear(c->err);
        if (rc == -ENOMEM)
            snprintf(c->err->msg, sizeof c->err->msg, "out of memory");
        else
            snprintf(c->err->msg, sizeof c->err->msg, "schema at %.200s: %.290s",
                     c->path[0] ? c->path : "/", what);
    }
    return rc;
}

static struct rule *find_rule(struct conv *c, const char *name)
{
    for (size_t i = 0; i < c->n_rules; i++)
        if (strcmp(c->rule[i].name, name) == 0)
            return &c->rule[i];
    return NULL;
}

/* Names of primitive rules: never given to schema rules. */
static const char *const reserved[] = {
    "space", "boolean", "null", "integral-part", "decimal-part", "integer", "number",
    "char", "string", "value", "object", "array", "date", "time", "date-time", "uuid",
    "date-string", "time-string", "date-time-string", "uuid-string",
};

static bool is_reserved(const char *name)
{
    for (size_t i = 0; i < sizeof reserved / sizeof *reserved; i++)
        if (strcmp(reserved[i], name) == 0)
            return true;
    return false;
}

/* Adds rule `name` (body NULL: reserved for later) under a unique name,
 * derived from `name` (characters outside [A-Za-z0-9-] become '-'). The
 * actual name is written to `got` (64+ bytes). primitive: the name is one of
 * the reserved ones and is kept as is if free. */
static int add_rule(struct conv *c, const char *name, const char *body, bool primitive,
                    char *got, size_t got_size)
{
    char base[200];
    size_t k = 0;
    for (const char *p = name; *p && k + 1 < sizeof base - 12; p++) {
        char ch = *p;
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                  ch == '-';
        base[k++] = ok ? ch : '-';
    }
    if (k == 0)
        base[k++] = 'r';
    base[k] = '\0';
    char cand[220];
    snprintf(cand, sizeof cand, "%s", base);
    for (unsigned i = 1; find_rule(c, cand) || (!primitive && is_reserved(cand)); i++) {
        struct rule *r = find_rule(c, cand);
        if (r && r->body && body && strcmp(r->body, body) == 0) {
            snprintf(got, got_size, "%s", cand);
            return 0; /* the same rule again */
        }
        snprintf(cand, sizeof cand, "%s-%u", base, i);
    }
    if (c->n_rules >= MAX_RULES)
        return fail(c, -E2BIG, "schema too large (more than %d grammar rules)", MAX_RULES);
    if (c->n_rules == c->cap_rules) {
        size_t cap = c->cap_rules ? 2 * c->cap_rules : 32;
        struct rule *r = realloc(c->rule, cap * sizeof *r);
        if (!r)
            return fail(c, -ENOMEM, "out of memory");
        c->rule = r;
        c->cap_rules = cap;
    }
    struct rule *r = &c->rule[c->n_rules];
    r->name = strdup(cand);
    r->body = body ? strdup(body) : NULL;
    if (!r->name || (body && !r->body)) {
        free(r->name);
        free(r->body);
        return fail(c, -ENOMEM, "out of memory");
    }
    c->n_rules++;
    c->out_len += strlen(cand) + (body ? strlen(body) : 0) + 6;
    if (c->out_len > MAX_OUTPUT)
        return fail(c, -E2BIG, "schema too large (grammar past %u bytes)", MAX_OUTPUT);
    snprintf(got, got_size, "%s", cand);
    return 0;
}

static int define(struct conv *c, const char *name, const struct sb *body)
{
    if (body->oom)
        return fail(c, -ENOMEM, "out of memory");
    struct rule *r = find_rule(c, name);
    if (!r || r->body)
        return fail(c, -EINVAL, "internal: rule %s", name);
    if (!(r->body = strdup(body->s ? body->s : "")))
        return fail(c, -ENOMEM, "out of memory");
    c->out_len += body->n;
    if (c->out_len > MAX_OUTPUT)
        return fail(c, -E2BIG, "schema too large (grammar past %u bytes)", MAX_OUTPUT);
    return 0;
}

/* Adds a primitive rule and those it uses; appends its name to out. */
static int prim(struct conv *c, const char *name, struct sb *out)
{
    static const struct {
        const char *name, *body, *deps[4];
    } P[] = {
        {"space", "| \" \" | \"\\n\"{1,2} [ \\t]{0,20}", {NULL}},
        {"boolean", "(\"true\" | \"false\") space", {"space"}},
        {"null", "\"null\" space", {"space"}},
        {"integral-part", "[0] | [1-9] [0-9]{0,15}", {NULL}},
        {"decimal-part", "[0-9]{1,16}", {NULL}},
        {"integer", "(\"-\"? integral-part) space", {"integral-part", "space"}},
        {"number", "(\"-\"? integral-part) (\".\" decimal-part)? ([eE] [-+]? integral-part)? "
                   "space", {"integral-part", "decimal-part", "space"}},
        {"char", "[^\"\\\\\\x7F\\x00-\\x1F] | [\\\\] ([\"\\\\/bfnrt] | \"u\" [0-9a-fA-F]{4})",
         {NULL}},
        {"string", "\"\\\"\" char* \"\\\"\" space", {"char", "space"}},
        {"value", "object | array | string | number | boolean | null",
         {"object", "array", "string", "number"}},
        {"object", "\"{\" space ( string \":\" space value (\",\" space string \":\" space "
                   "value)* )? \"}\" space", {"string", "value", "space"}},
        {"array", "\"[\" space ( value (\",\" space value)* )? \"]\" space", {"value", "space"}},
        {"date", "[0-9]{4} \"-\" ( \"0\" [1-9] | \"1\" [0-2] ) \"-\" ( \"0\" [1-9] | [1-2] "
                 "[0-9] | \"3\" [0-1] )", {NULL}},
        {"time", "( [01] [0-9] | \"2\" [0-3] ) \":\" [0-5] [0-9] \":\" [0-5] [0-9] ( \".\" "
                 "[0-9]{1,6} )? ( \"Z\" | [+-] ( [01] [0-9] | \"2\" [0-3] ) \":\" [0-5] [0-9] )",
         {NULL}},
        {"date-time", "date \"T\" time", {"date", "time"}},
        {"uuid", "[0-9a-fA-F]{8} \"-\" [0-9a-fA-F]{4} \"-\" [0-9a-fA-F]{4} \"-\" [0-9a-fA-F]{4} "
                 "\"-\" [0-9a-fA-F]{12}", {NULL}},
        {"date-string", "\"\\\"\" date \"\\\"\" space", {"date", "space"}},
        {"time-string", "\"\\\"\" time \"\\\"\" space", {"time", "space"}},
        {"date-time-string", "\"\\\"\" date-time \"\\\"\" space", {"date-time", "space"}},
        {"uuid-string", "\"\\\"\" uuid \"\\\"\" space", {"uuid", "space"}},
    };
    for (size_t i = 0; i < sizeof P / sizeof *P; i++) {
        if (strcmp(P[i].name, name) != 0)
            continue;
        if (out)
            sb_puts(out, name);
        if (find_rule(c, name))
            return 0;
        char got[64];
        int rc = add_rule(c, name, P[i].body, true, got, sizeof got);
        /* value, object and array use each other: the rule exists before its deps */
        for (int d = 0; rc == 0 && d < 4 && P[i].deps[d]; d++)
            rc = prim(c, P[i].deps[d], NULL);
        if (rc == 0 && P[i].deps[0] && !strcmp(name, "value"))
            {
            rc = prim(c, "boolean", NULL);
            if (rc == 0)
                rc = prim(c, "null", NULL);
        }
        return rc;
    }
    return fail(c, -EINVAL, "internal: primitive %s", name);
}

/* ---- schema paths ------------------------------------------------------------------------ */

static size_t path_push(struct conv *c, const char *seg)
{
    size_t n = strlen(c->path);
    snprintf(c->path + n, sizeof c->path - n, "/%s", seg);
    return n;
}

static void path_pop(struct conv *c, size_t n)
{
    c->path[n] = '\0';
}

static int visit(struct conv *c, json_t *s, const char *name, const char *type, struct sb *out);

static int visit_at(struct conv *c, json_t *s, const char *name, const char *seg, struct sb *out)
{
    size_t mark = path_push(c, seg);
    int rc = visit(c, s, name, NULL, out);
    if (rc == 0)
        path_pop(c, mark);
    return rc;
}

/* ---- values: const, enum ------------------------------------------------------------------- */

static int literal(struct conv *c, json_t *v, struct sb *out)
{
    char *txt = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    if (!txt)
        return fail(c, -ENOMEM, "out of memory");
    sb_lit(out, txt, strlen(txt));
    free(txt);
    sb_puts(out, " ");
    return prim(c, "space", out);
}

/* ---- integers with bounds ------------------------------------------------------------------ */

/* Digit strings x, y of the same length L with x <= y: every number between
 * them (leading digit as given, so no leading zeros when x has none). */
static void range_same_len(struct sb *b, const char *x, const char *y, size_t L)
{
    if (L == 0)
        return;
    if (L == 1) {
        if (x[0] == y[0])
            sb_printf(b, "[%c]", x[0]);
        else
            sb_printf(b, "[%c-%c]", x[0], y[0]);
        return;
    }
    if (x[0] == y[0]) {
        sb_printf(b, "[%c] ", x[0]);
        range_same_len(b, x + 1, y + 1, L - 1);
        return;
    }
    bool x_low = strspn(x + 1, "0") >= L - 1; /* x = d000… */
    bool y_high = strspn(y + 1, "9") >= L - 1; /* y = d999… */
    char lo = x_low ? x[0] : (char)(x[0] + 1);
    char hi = y_high ? y[0] : (char)(y[0] - 1);
    bool first = true;
    sb_puts(b, "(");
    if (!x_low) {
        char nines[24];
        memset(nines, '9', L - 1);
        nines[L - 1] = '\0';
        sb_printf(b, "[%c] ", x[0]);
        range_same_len(b, x + 1, nines, L - 1);
        first = false;
    }
    if (lo <= hi) {
        sb_printf(b, "%s[%c-%c] [0-9]{%zu}", first ? "" : " | ", lo, hi, L - 1);
        first = false;
    }
    if (!y_high) {
        char zeros[24];
        memset(zeros, '0', L - 1);
        zeros[L - 1] = '\0';
        sb_printf(b, "%s[%c] ", first ? "" : " | ", y[0]);
        range_same_len(b, zeros, y + 1, L - 1);
    }
    sb_puts(b, ")");
}

/* Non-negative integers a..b (b < 0: unbounded, up to 19 digits), written
 * canonically, as alternatives. */
static void range_pos(struct sb *b, uint64_t a, int64_t bmax)
{
    char xa[24], xb[24];
    int la = snprintf(xa, sizeof xa, "%llu", (unsigned long long)a);
    int lb = bmax < 0 ? 19 : snprintf(xb, sizeof xb, "%lld", (long long)bmax);
    bool first = true;
    sb_puts(b, "(");
    for (int L = la; L <= lb; L++) {
        char lo[24], hi[24];
        if (L == la)
            memcpy(lo, xa, (size_t)la + 1);
        else {
            lo[0] = '1';
            memset(lo + 1, '0', (size_t)L - 1);
            lo[L] = '\0';
        }
        if (bmax >= 0 && L == lb)
            memcpy(hi, xb, (size_t)lb + 1);
        else {
            memset(hi, '9', (size_t)L);
            hi[L] = '\0';
        }
        if (!first)
            sb_puts(b, " | ");
        first = false;
        range_same_len(b, lo, hi, (size_t)L);
    }
    sb_puts(b, ")");
}

/* A bound from "minimum"/"exclusiveMinimum" (lower) or the maxima: *has
 * false when there is none. Draft-4 boolean exclusive flags are honoured. */
static int int_bound(struct conv *c, json_t *s, bool lower, bool *has, int64_t *v)
{
    const char *k = lower ? "minimum" : "maximum";
    const char *xk = lower ? "exclusiveMinimum" : "exclusiveMaximum";
    json_t *m = json_object_get(s, k), *x = json_object_get(s, xk);
    *has = false;
    double best = 0;
    if (m && !json_is_number(m))
        return fail(c, -EINVAL, "%s must be a number", k);
    if (x && !json_is_number(x) && !json_is_boolean(x))
        return fail(c, -EINVAL, "%s must be a number", xk);
    if (m) {
        double d = json_number_value(m);
        d = lower ? ceil(d) : floor(d);
        if (json_is_true(x))
            d += lower ? 1 : -1;
        best = d;
        *has = true;
    }
    if (x && json_is_number(x)) {
        double d = json_number_value(x);
        d = lower ? floor(d) + 1 : ceil(d) - 1;
        if (!*has || (lower ? d > best : d < best))
            best = d;
        *has = true;
    }
    if (*has) {
        if (best > 9e18)
            best = 9e18;
        if (best < -9e18)
            best = -9e18;
        *v = (int64_t)best;
    }
    return 0;
}

static int integer(struct conv *c, json_t *s, struct sb *out)
{
    bool has_lo, has_hi;
    int64_t lo = 0, hi = 0;
    int rc = int_bound(c, s, true, &has_lo, &lo);
    if (rc == 0)
        rc = int_bound(c, s, false, &has_hi, &hi);
    if (rc < 0)
        return rc;
    if (!has_lo && !has_hi)
        return prim(c, "integer", out);
    if (has_lo && has_hi && lo > hi)
        return fail(c, -EINVAL, "no integer between minimum %lld and maximum %lld",
                    (long long)lo, (long long)hi);
    sb_puts(out, "(");
    bool first = true;
    if (!has_lo || lo < 0) {
        /* negative part: -x with x in [max(1, -hi), -lo] */
        uint64_t xa = has_hi && hi < 0 ? (uint64_t)(-hi) : 1;
        sb_puts(out, "\"-\" ");
        range_pos(out, xa, has_lo ? -lo : -1);
        first = false;
    }
    if (!has_hi || hi >= 0) {
        if (!first)
            sb_puts(out, " | ");
        range_pos(out, has_lo && lo > 0 ? (uint64_t)lo : 0, has_hi ? hi : -1);
    }
    sb_puts(out, ") ");
    return prim(c, "space", out);
}

/* ---- strings ------------------------------------------------------------------------------- */

static int count_kw(struct conv *c, json_t *s, const char *k, int64_t dflt, int64_t *v)
{
    json_t *x = json_object_get(s, k);
    *v = dflt;
    if (!x)
        return 0;
    if (!json_is_integer(x) || json_integer_value(x) < 0)
        return fail(c, -EINVAL, "%s must be a non-negative integer", k);
    *v = json_integer_value(x);
    return 0;
}

static int string(struct conv *c, json_t *s, struct sb *out)
{
    if (json_object_get(s, "pattern"))
        return fail(c, -EINVAL, "\"pattern\" is not supported");
    json_t *fmt = json_object_get(s, "format");
    if (json_is_string(fmt)) {
        const char *f = json_string_value(fmt);
        if (!strcmp(f, "date") || !strcmp(f, "time") || !strcmp(f, "date-time") ||
            !strcmp(f, "uuid")) {
            char nm[32];
            snprintf(nm, sizeof nm, "%s-string", f);
            return prim(c, nm, out);
        }
        /* other formats (email, uri, ...) are annotations: any string */
    }
    int64_t min = 0, max = -1;
    int rc = count_kw(c, s, "minLength", 0, &min);
    if (rc == 0)
        rc = count_kw(c, s, "maxLength", -1, &max);
    if (rc < 0)
        return rc;
    if (min > MAX_COUNT)
        return fail(c, -E2BIG, "minLength %lld is too large (at most %d)", (long long)min,
                    MAX_COUNT);
    if (max > MAX_COUNT)
        max = -1;
    if (max >= 0 && max < min)
        return fail(c, -EINVAL, "maxLength is below minLength");
    if (min == 0 && max < 0)
        return prim(c, "string", out);
    sb_puts(out, "(\"\\\"\" ");
    rc = prim(c, "char", out);
    if (max < 0)
        sb_printf(out, "{%lld,}", (long long)min);
    else
        sb_printf(out, "{%lld,%lld}", (long long)min, (long long)max);
    sb_puts(out, " \"\\\"\" ");
    if (rc == 0)
        rc = prim(c, "space", out);
    sb_puts(out, ")");
    return rc;
}

/* ---- arrays ---------------------------------------------------------------------------------- */

/* The rule for an object or array called `name`: "root" itself for the
 * top-level one, else a new reserved rule. */
static int claim(struct conv *c, const char *name, char *nm, size_t size)
{
    if (c->open && !strcmp(name, c->open)) {
        snprintf(nm, size, "%s", c->open);
        c->open = NULL;
        c->claimed = true;
        return 0;
    }
    return add_rule(c, name, NULL, false, nm, size);
}

static int array(struct conv *c, json_t *s, const char *name, struct sb *out)
{
    char nm[256];
    int rc = claim(c, name, nm, sizeof nm);
    if (rc < 0)
        return rc;
    struct sb body = {0};
    json_t *prefix = json_object_get(s, "prefixItems");
    json_t *items = json_object_get(s, "items");
    if (json_object_get(s, "contains"))
        rc = fail(c, -EINVAL, "\"contains\" is not supported");
    if (!prefix && json_is_array(items))
        prefix = items; /* the draft-4 tuple form */
    sb_puts(&body, "\"[\" space");
    if (rc == 0 && prefix) {
        if (!json_is_array(prefix)) {
            rc = fail(c, -EINVAL, "prefixItems must be an array");
        } else {
            size_t i;
            json_t *it;
            size_t mark = path_push(c, prefix == items ? "items" : "prefixItems");
            json_array_foreach(prefix, i, it) {
                char seg[24], sub[300];
                snprintf(seg, sizeof seg, "%zu", i);
                snprintf(sub, sizeof sub, "%s-%zu", nm, i);
                sb_puts(&body, i ? " \",\" space " : " ");
                if ((rc = visit_at(c, it, sub, seg, &body)) < 0)
                    break;
            }
            if (rc == 0)
                path_pop(c, mark);
        }
    } else if (rc == 0) {
        int64_t min = 0, max = -1;
        rc = count_kw(c, s, "minItems", 0, &min);
        if (rc == 0)
            rc = count_kw(c, s, "maxItems", -1, &max);
        if (rc == 0 && min > MAX_COUNT)
            rc = fail(c, -E2BIG, "minItems %lld is too large (at most %d)", (long long)min,
                      MAX_COUNT);
        if (rc == 0 && max >= 0 && max < min)
            rc = fail(c, -EINVAL, "maxItems is below minItems");
        if (max > MAX_COUNT)
            max = -1;
        struct sb item = {0};
        if (rc == 0) {
            char sub[300];
            snprintf(sub, sizeof sub, "%s-item", nm);
            if (!items || json_is_true(items))
                rc = prim(c, "value", &item);
            else
                rc = visit_at(c, items, sub, "items", &item);
        }
        if (rc == 0 && max != 0) {
            const char *it = item.s ? item.s : "";
            sb_printf(&body, " %s", min == 0 ? "( " : "");
            sb_puts(&body, it);
            if (max < 0)
                sb_printf(&body, " (\",\" space %s){%lld,}", it, (long long)(min ? min - 1 : 0));
            else if (max > 1)
                sb_printf(&body, " (\",\" space %s){%lld,%lld}", it,
                          (long long)(min ? min - 1 : 0), (long long)(max - 1));
            if (min == 0)
                sb_puts(&body, " )?");
        }
        free(item.s);
    }
    sb_puts(&body, " \"]\" space");
    if (rc == 0)
        rc = prim(c, "space", NULL);
    if (rc == 0)
        rc = define(c, nm, &body);
    free(body.s);
    if (rc == 0)
        sb_puts(out, nm);
    return rc;
}

/* ---- objects ----------------------------------------------------------------------------------- */

/* How deeply parentheses nest in the GBNF expression s[0..n) (literals and
 * classes skipped). The parser allows GRAMMAR_MAX_NESTING levels. */
static int nesting(const char *s, size_t n)
{
    int d = 0, max = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ch == '"' || ch == '[') {
            char close = ch == '"' ? '"' : ']';
            for (i++; i < n && s[i] != close; i++)
                if (s[i] == '\\')
                    i++;
        } else if (ch == '(') {
            if (++d > max)
                max = d;
        } else if (ch == ')') {
            d--;
        }
    }
    return max;
}

/* Expressions nested deeper than this are moved into rules of their own. */
#define NEST_SPLIT 48

/* Moves out->s[from ..] into a new rule (named after `name`) when it nests
 * too deeply, leaving the rule's name in its place. */
static int split_deep(struct conv *c, struct sb *out, size_t from, const char *name)
{
    if (out->oom || out->n <= from || nesting(out->s + from, out->n - from) <= NEST_SPLIT)
        return 0;
    char got[256], nm[300];
    snprintf(nm, sizeof nm, "%s-part", name);
    int rc = add_rule(c, nm, out->s + from, false, got, sizeof got);
    if (rc < 0)
        return rc;
    out->n = from;
    out->s[from] = '\0';
    sb_puts(out, got);
    return 0;
}

/* Bytes in the UTF-8 character that starts with lead byte b. */
static size_t u8len(unsigned char b)
{
    return b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
}

/* Key strings that are none of `keys` (JSON-escaped contents, valid UTF-8)
 * past their first `depth` bytes, which they share: a trie of the keys
 * written as nested alternatives — follow a key by its next character,
 * leave the trie by any other character or an escape (then anything may
 * follow), or end, unless a key ends here. Its size is that of the keys. */
static void not_keys(struct conv *c, const char *name, struct sb *b, const char **keys, size_t n,
                     size_t depth, int level)
{
    const char **sub = malloc((n + 1) * sizeof *sub);
    const char **chars = malloc((n + 1) * sizeof *chars); /* distinct next characters */
    size_t n_chars = 0;
    bool ends = false;
    if (!sub || !chars || level > MAX_DEPTH * 4) {
        b->oom = true; /* reported as out of memory; keys this long are not real */
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        const char *k = keys[i] + depth;
        if (!*k) {
            ends = true;
            continue;
        }
        size_t len = u8len((unsigned char)*k);
        bool dup = false;
        for (size_t j = 0; j < n_chars && !dup; j++)
            dup = !strncmp(chars[j], k, len);
        if (!dup)
            chars[n_chars++] = k;
    }
    sb_puts(b, "(");
    for (size_t j = 0; j < n_chars; j++) {
        size_t len = u8len((unsigned char)*chars[j]), m = 0;
        for (size_t i = 0; i < n; i++)
            if (keys[i][depth] && !strncmp(keys[i] + depth, chars[j], len))
                sub[m++] = keys[i];
        sb_lit(b, chars[j], len);
        sb_puts(b, " ");
        size_t from = b->n;
        not_keys(c, name, b, sub, m, depth + len, level + 1);
        if (split_deep(c, b, from, name) < 0)
            b->oom = true; /* c->rc says why */
        sb_puts(b, " | ");
    }
    /* leave the trie: a plain character none of the keys has here */
    sb_puts(b, "[^\"\\\\\\x7F\\x00-\\x1F");
    bool esc_child = false;
    for (size_t j = 0; j < n_chars; j++) {
        char ch = *chars[j];
        if (ch == '\\')
            esc_child = true;
        else if (ch == ']' || ch == '[' || ch == '-' || ch == '^')
            sb_printf(b, "\\%c", ch);
        else
            sb_put(b, chars[j], u8len((unsigned char)ch));
    }
    sb_puts(b, "] char*");
    if (!esc_child)
        sb_puts(b, " | [\\\\] ([\"\\\\/bfnrt] | \"u\" [0-9a-fA-F]{4}) char*");
    if (!ends)
        sb_puts(b, " | ");
    sb_puts(b, ")");
out:
    free(sub);
    free(chars);
}

static int object_body(struct conv *c, json_t *props, json_t *required, json_t *addl,
                       const char *nm, struct sb *body);

static int object(struct conv *c, json_t *s, const char *name, struct sb *out)
{
    json_t *props = json_object_get(s, "properties");
    json_t *required = json_object_get(s, "required");
    json_t *addl = json_object_get(s, "additionalProperties");
    if (props && !json_is_object(props))
        return fail(c, -EINVAL, "properties must be an object");
    if (required && !json_is_array(required))
        return fail(c, -EINVAL, "required must be an array");
    if (!props && (!addl || json_is_true(addl)) && (!required || !json_array_size(required)))
        return prim(c, "object", out); /* any object */
    char nm[256];
    int rc = claim(c, name, nm, sizeof nm);
    if (rc < 0)
        return rc;
    struct sb body = {0};
    rc = object_body(c, props, required, addl, nm, &body);
    if (rc == 0)
        rc = define(c, nm, &body);
    free(body.s);
    if (rc == 0)
        sb_puts(out, nm);
    return rc;
}

static bool in_required(json_t *required, const char *k)
{
    size_t i;
    json_t *v;
    json_array_foreach(required, i, v) {
        if (json_is_string(v) && !strcmp(json_string_value(v), k))
            return true;
    }
    return false;
}

/* The JSON text of string k without its quotes (owned), as keys appear. */
static char *json_escaped(const char *k)
{
    json_t *js = json_string(k);
    char *e = js ? json_dumps(js, JSON_ENCODE_ANY) : NULL;
    json_decref(js);
    if (!e)
        return NULL;
    size_t n = strlen(e);
    memmove(e, e + 1, n - 2);
    e[n - 2] = '\0';
    return e;
}

struct entry {
    const char *key;
    json_t *schema;
    bool required;
    char *kv; /* the kv rule's name, owned */
};

/* kv rule "<nm>-<key>-kv ::= "\"key\"" space ":" space <value>". */
static int kv_rule(struct conv *c, const char *nm, struct entry *e)
{
    struct sb kb = {0}, val = {0};
    char sub[300], seg[220], tmp[310], got[256];
    char *enc = json_escaped(e->key);
    int rc = enc ? 0 : fail(c, -ENOMEM, "out of memory");
    snprintf(sub, sizeof sub, "%s-%s", nm, e->key);
    snprintf(seg, sizeof seg, "properties/%s", e->key);
    if (rc == 0)
        rc = visit_at(c, e->schema, sub, seg, &val);
    if (rc == 0) {
        struct sb quoted = {0};
        sb_puts(&quoted, "\"");
        sb_puts(&quoted, enc);
        sb_puts(&quoted, "\"");
        if (quoted.oom)
            kb.oom = true;
        else
            sb_lit(&kb, quoted.s, quoted.n);
        free(quoted.s);
        sb_printf(&kb, " space \":\" space %s", val.s ? val.s : "");
        snprintf(tmp, sizeof tmp, "%s-kv", sub);
        rc = kb.oom || val.oom ? fail(c, -ENOMEM, "out of memory")
                               : add_rule(c, tmp, kb.s, false, got, sizeof got);
        if (rc == 0 && !(e->kv = strdup(got)))
            rc = fail(c, -ENOMEM, "out of memory");
    }
    free(enc);
    free(kb.s);
    free(val.s);
    return rc;
}

/* The kv rule for additional properties: keys other than the declared
 * ones, values per `addl` (true: any). Its name is written to got. */
static int additional_rule(struct conv *c, const char *nm, json_t *addl,
                           const struct entry *ent, size_t n, char *got, size_t got_size)
{
    struct sb kb = {0}, val = {0};
    char **esc = NULL;
    int rc = 0;
    if (json_is_true(addl) || (json_is_object(addl) && json_object_size(addl) == 0)) {
        rc = prim(c, "value", &val);
    } else {
        char sub[300];
        snprintf(sub, sizeof sub, "%s-additional", nm);
        rc = visit_at(c, addl, sub, "additionalProperties", &val);
    }
    if (rc == 0)
        rc = prim(c, "char", NULL);
    if (rc == 0 && n == 0) {
        rc = prim(c, "string", &kb);
        sb_puts(&kb, " \":\" space ");
    } else if (rc == 0) {
        if (!(esc = calloc(n, sizeof *esc)))
            rc = fail(c, -ENOMEM, "out of memory");
        for (size_t i = 0; rc == 0 && i < n; i++) {
            if (!(esc[i] = json_escaped(ent[i].key)))
                rc = fail(c, -ENOMEM, "out of memory");
            else if (strlen(esc[i]) > 256)
                rc = fail(c, -E2BIG, "property name longer than 256 bytes next to "
                          "additionalProperties");
        }
        if (rc == 0) {
            sb_puts(&kb, "\"\\\"\" ");
            char kn[300];
            snprintf(kn, sizeof kn, "%s-key", nm);
            not_keys(c, kn, &kb, (const char **)esc, n, 0, 0);
            sb_puts(&kb, " \"\\\"\" space \":\" space ");
        }
    }
    if (rc == 0) {
        sb_puts(&kb, val.s ? val.s : "");
        char tmp[300];
        snprintf(tmp, sizeof tmp, "%s-additional-kv", nm);
        rc = kb.oom || val.oom ? fail(c, -ENOMEM, "out of memory")
                               : add_rule(c, tmp, kb.s, false, got, got_size);
    }
    for (size_t i = 0; esc && i < n; i++)
        free(esc[i]);
    free(esc);
    free(kb.s);
    free(val.s);
    return rc;
}

static int object_body(struct conv *c, json_t *props, json_t *required, json_t *addl,
                       const char *nm, struct sb *body)
{
    size_t cap = (props ? json_object_size(props) : 0) +
                 (required ? json_array_size(required) : 0) + 1;
    struct entry *ent = calloc(cap, sizeof *ent);
    char **rest = NULL;
    size_t n = 0, n_req = 0, n_opt = 0;
    char addkv[256] = "";
    int rc = 0;
    if (!ent)
        return fail(c, -ENOMEM, "out of memory");

    /* order: required properties (in "properties" order), required names
     * without a property schema (any value), then the optional ones */
    const char *k;
    json_t *ps, *rk;
    size_t i;
    if (props) {
        json_object_foreach(props, k, ps) {
            if (required && in_required(required, k))
                ent[n++] = (struct entry){k, ps, true, NULL};
        }
    }
    if (required) {
        json_array_foreach(required, i, rk) {
            if (!json_is_string(rk)) {
                rc = fail(c, -EINVAL, "required must list strings");
                goto out;
            }
            const char *rn = json_string_value(rk);
            bool dup = false;
            for (size_t j = 0; j < n; j++)
                dup = dup || !strcmp(ent[j].key, rn);
            if (!dup && !(props && json_object_get(props, rn)))
                ent[n++] = (struct entry){rn, json_true(), true, NULL};
        }
    }
    n_req = n;
    if (props) {
        json_object_foreach(props, k, ps) {
            if (!(required && in_required(required, k)))
                ent[n++] = (struct entry){k, ps, false, NULL};
        }
    }
    for (size_t j = 0; j < n && rc == 0; j++)
        rc = kv_rule(c, nm, &ent[j]);
    if (rc == 0)
        rc = prim(c, "space", NULL);
    if (rc == 0 && addl && !json_is_false(addl))
        rc = additional_rule(c, nm, addl, ent, n, addkv, sizeof addkv);
    if (rc < 0)
        goto out;

    sb_puts(body, "\"{\" space");
    for (size_t j = 0; j < n_req; j++)
        sb_printf(body, "%s %s", j ? " \",\" space" : "", ent[j].kv);
    /* the optional kvs, then the additional one (repeatable), in order */
    n_opt = n - n_req + (addkv[0] ? 1 : 0);
#define OPT(j) (addkv[0] && (j) == n_opt - 1 ? addkv : ent[n_req + (j)].kv)
#define OPT_REP(j) (addkv[0] && (j) == n_opt - 1 ? "*" : "?")
    if (n_opt > 0 && n_req > 0) {
        for (size_t j = 0; j < n_opt; j++)
            sb_printf(body, " (\",\" space %s)%s", OPT(j), OPT_REP(j));
    } else if (n_opt > 0) {
        /* no required key: the first present one has no comma before it.
         * rest-j ::= ("," space kv_j)? rest-(j+1), shared by the
         * alternatives "kv_j rest-(j+1)" */
        if (!(rest = calloc(n_opt + 1, sizeof *rest))) {
            rc = fail(c, -ENOMEM, "out of memory");
            goto out;
        }
        for (size_t j = n_opt; j-- > 1 && rc == 0;) {
            struct sb rb = {0};
            char tmp[300], got[256];
            sb_printf(&rb, "(\",\" space %s)%s", OPT(j), OPT_REP(j));
            if (rest[j + 1])
                sb_printf(&rb, " %s", rest[j + 1]);
            snprintf(tmp, sizeof tmp, "%s-rest-%zu", nm, j);
            rc = rb.oom ? fail(c, -ENOMEM, "out of memory")
                        : add_rule(c, tmp, rb.s, false, got, sizeof got);
            if (rc == 0 && !(rest[j] = strdup(got)))
                rc = fail(c, -ENOMEM, "out of memory");
            free(rb.s);
        }
        sb_puts(body, " (");
        for (size_t j = 0; j < n_opt && rc == 0; j++) {
            sb_printf(body, "%s%s", j ? " | " : "", OPT(j));
            if (OPT_REP(j)[0] == '*')
                sb_printf(body, " (\",\" space %s)*", OPT(j));
            if (rest[j + 1])
                sb_printf(body, " %s", rest[j + 1]);
        }
        sb_puts(body, ")?");
    }
#undef OPT
#undef OPT_REP
    sb_puts(body, " \"}\" space");
out:
    for (size_t j = 0; rest && j <= n_opt; j++)
        free(rest[j]);
    free(rest);
    for (size_t j = 0; j < n; j++)
        free(ent[j].kv);
    free(ent);
    return rc;
}

/* ---- $ref, combinators, types ------------------------------------------------------------ */

/* Resolves a local reference ("#", "#/$defs/x", any "#/json/pointer"). */
static json_t *resolve(struct conv *c, const char *ref)
{
    if (ref[0] != '#')
        return NULL;
    json_t *cur = c->root;
    const char *p = ref + 1;
    while (*p == '/' && cur) {
        p++;
        char seg[256];
        size_t n = 0;
        while (*p && *p != '/' && n + 1 < sizeof seg) {
            if (p[0] == '~' && p[1] == '1')
                seg[n++] = '/', p += 2;
            else if (p[0] == '~' && p[1] == '0')
                seg[n++] = '~', p += 2;
            else
                seg[n++] = *p++;
        }
        seg[n] = '\0';
        if (*p && *p != '/')
            return NULL; /* segment too long */
        if (json_is_object(cur)) {
            cur = json_object_get(cur, seg);
        } else if (json_is_array(cur)) {
            char *end;
            unsigned long idx = strtoul(seg, &end, 10);
            cur = (*seg && !*end) ? json_array_get(cur, idx) : NULL;
        } else {
            cur = NULL;
        }
    }
    return *p ? NULL : cur;
}

static int ref(struct conv *c, const char *r, struct sb *out)
{
    for (size_t i = 0; i < c->n_refs; i++) {
        if (!strcmp(c->refs[i].ref, r)) {
            sb_puts(out, c->refs[i].name);
            return 0;
        }
    }
    json_t *target = resolve(c, r);
    if (!target)
        return fail(c, -EINVAL, "$ref \"%.200s\" does not resolve (only local references "
                    "like #/$defs/name are supported)", r);
    /* the rule is named (and remembered) before its body is converted, so
     * recursive schemas refer to it */
    const char *last = strrchr(r, '/');
    char nm[256];
    int rc = add_rule(c, last && last[1] ? last + 1 : "ref", NULL, false, nm, sizeof nm);
    if (rc < 0)
        return rc;
    if (c->n_refs == c->cap_refs) {
        size_t cap = c->cap_refs ? 2 * c->cap_refs : 8;
        void *p = realloc(c->refs, cap * sizeof *c->refs);
        if (!p)
            return fail(c, -ENOMEM, "out of memory");
        c->refs = p;
        c->cap_refs = cap;
    }
    c->refs[c->n_refs].ref = strdup(r);
    c->refs[c->n_refs].name = strdup(nm);
    if (!c->refs[c->n_refs].ref || !c->refs[c->n_refs].name) {
        free(c->refs[c->n_refs].ref);
        free(c->refs[c->n_refs].name);
        return fail(c, -ENOMEM, "out of memory");
    }
    c->n_refs++;
    struct sb body = {0};
    char saved[sizeof c->path];
    memcpy(saved, c->path, sizeof saved);
    snprintf(c->path, sizeof c->path, "%s", r + 1);
    const char *open = c->open;
    bool claimed = c->claimed;
    c->open = nm;
    c->claimed = false;
    rc = visit(c, target, nm, NULL, &body);
    bool mine = c->claimed;
    c->open = open;
    c->claimed = claimed;
    if (rc == 0) {
        memcpy(c->path, saved, sizeof saved);
        if (!mine)
            rc = define(c, nm, &body);
    }
    free(body.s);
    if (rc == 0)
        sb_puts(out, nm);
    return rc;
}

/* anyOf / oneOf (exclusivity is not enforced): alternatives. */
static int alternatives(struct conv *c, json_t *list, const char *kw, const char *name,
                        struct sb *out)
{
    if (!json_is_array(list) || json_array_size(list) == 0)
        return fail(c, -EINVAL, "%s must be a non-empty array", kw);
    size_t mark = path_push(c, kw), i;
    json_t *sub;
    int rc = 0;
    sb_puts(out, "(");
    json_array_foreach(list, i, sub) {
        char nm[300], seg[24];
        snprintf(nm, sizeof nm, "%s-%zu", name, i);
        snprintf(seg, sizeof seg, "%zu", i);
        if (i)
            sb_puts(out, " | ");
        if ((rc = visit_at(c, sub, nm, seg, out)) < 0)
            return rc;
    }
    sb_puts(out, ")");
    path_pop(c, mark);
    return 0;
}

/* allOf: objects are merged (properties, required, additionalProperties:
 * the most restrictive); a single subschema stands for itself. */
static int all_of(struct conv *c, json_t *s, const char *name, struct sb *out)
{
    json_t *list = json_object_get(s, "allOf");
    if (!json_is_array(list) || json_array_size(list) == 0)
        return fail(c, -EINVAL, "allOf must be a non-empty array");
    json_t *merged = json_deep_copy(s);
    json_t *props = json_object(), *req = json_array();
    int rc = 0;
    if (!merged || !props || !req) {
        rc = fail(c, -ENOMEM, "out of memory");
        goto out;
    }
    json_object_del(merged, "allOf");
    json_t *addl = json_object_get(s, "additionalProperties");
    json_t *parts[2] = {s, list};
    for (int w = 0; w < 2 && rc == 0; w++) {
        size_t i, n = w ? json_array_size(list) : 1;
        for (i = 0; i < n && rc == 0; i++) {
            json_t *sub = w ? json_array_get(list, i) : parts[0];
            for (int hops = 0; json_is_object(sub) && json_object_get(sub, "$ref"); hops++) {
                json_t *r = json_object_get(sub, "$ref");
                sub = hops < 32 && json_is_string(r) ? resolve(c, json_string_value(r)) : NULL;
            }
            if (!json_is_object(sub)) {
                rc = fail(c, -EINVAL, "allOf entries must be object schemas");
                break;
            }
            json_t *t = json_object_get(sub, "type");
            if ((t && !(json_is_string(t) && !strcmp(json_string_value(t), "object"))) ||
                json_object_get(sub, "anyOf") || json_object_get(sub, "oneOf") ||
                (w && json_object_get(sub, "allOf"))) {
                if (w && json_array_size(list) == 1 && !json_object_get(s, "properties")) {
                    json_decref(merged);
                    merged = NULL;
                    rc = visit_at(c, json_array_get(list, 0), name, "allOf/0", out);
                    goto out;
                }
                rc = fail(c, -EINVAL, "allOf is supported for object schemas only");
                break;
            }
            json_t *sp = json_object_get(sub, "properties");
            if ((json_is_object(sp) && json_object_update(props, sp)) ||
                (json_is_array(json_object_get(sub, "required")) &&
                 json_array_extend(req, json_object_get(sub, "required")))) {
                rc = fail(c, -ENOMEM, "out of memory");
                break;
            }
            json_t *a = json_object_get(sub, "additionalProperties");
            if (json_is_false(a))
                addl = a;
        }
    }
    if (rc < 0)
        goto out;
    json_object_set_new(merged, "type", json_string("object"));
    json_object_set(merged, "properties", props);
    json_object_set(merged, "required", req);
    if (addl)
        json_object_set(merged, "additionalProperties", addl);
    else
        json_object_del(merged, "additionalProperties");
    rc = object(c, merged, name, out);
out:
    json_decref(merged);
    json_decref(props);
    json_decref(req);
    return rc;
}

/* Keywords that constrain documents in ways the grammar cannot express. */
static const char *const unsupported[] = {
    "not", "if", "then", "else", "patternProperties", "propertyNames", "dependentSchemas",
    "dependentRequired", "dependencies", "unevaluatedItems", "contains",
};

static int visit_expr(struct conv *c, json_t *s, const char *name, const char *type,
                      struct sb *out);

static int visit(struct conv *c, json_t *s, const char *name, const char *type, struct sb *out)
{
    size_t from = out->n;
    int rc = visit_expr(c, s, name, type, out);
    return rc < 0 ? rc : split_deep(c, out, from, name);
}

static int visit_expr(struct conv *c, json_t *s, const char *name, const char *type,
                      struct sb *out)
{
    if (c->depth >= MAX_DEPTH)
        return fail(c, -E2BIG, "schema nested too deeply (more than %d levels)", MAX_DEPTH);
    if (json_is_true(s))
        return prim(c, "value", out);
    if (json_is_false(s))
        return fail(c, -EINVAL, "the schema false matches nothing");
    if (!json_is_object(s))
        return fail(c, -EINVAL, "a schema must be an object or a boolean");
    c->depth++;
    int rc = 0;
    json_t *v;
    for (size_t i = 0; i < sizeof unsupported / sizeof *unsupported; i++)
        if (json_object_get(s, unsupported[i])) {
            rc = fail(c, -EINVAL, "\"%s\" is not supported", unsupported[i]);
            goto out;
        }
    if ((v = json_object_get(s, "$ref"))) {
        if (!json_is_string(v))
            rc = fail(c, -EINVAL, "$ref must be a string");
        else
            rc = ref(c, json_string_value(v), out);
        goto out;
    }
    if ((v = json_object_get(s, "const"))) {
        rc = literal(c, v, out);
        goto out;
    }
    if ((v = json_object_get(s, "enum"))) {
        if (!json_is_array(v) || json_array_size(v) == 0) {
            rc = fail(c, -EINVAL, "enum must be a non-empty array");
            goto out;
        }
        size_t i;
        json_t *e;
        sb_puts(out, "(");
        json_array_foreach(v, i, e) {
            if (i)
                sb_puts(out, " | ");
            if ((rc = literal(c, e, out)) < 0)
                goto out;
        }
        sb_puts(out, ")");
        goto out;
    }
    const char *combo = json_object_get(s, "anyOf") ? "anyOf"
                        : json_object_get(s, "oneOf") ? "oneOf" : NULL;
    if (combo) {
        /* siblings that constrain too would need an intersection */
        static const char *const sib[] = {"type", "properties", "items", "prefixItems",
                                          "allOf", "anyOf", "oneOf"};
        for (size_t i = 0; i < sizeof sib / sizeof *sib; i++)
            if (strcmp(sib[i], combo) && json_object_get(s, sib[i])) {
                rc = fail(c, -EINVAL, "%s next to \"%s\" is not supported", combo, sib[i]);
                goto out;
            }
        rc = alternatives(c, json_object_get(s, combo), combo, name, out);
        goto out;
    }
    if (json_object_get(s, "allOf")) {
        rc = all_of(c, s, name, out);
        goto out;
    }

    json_t *t = json_object_get(s, "type");
    if (!type && json_is_array(t)) {
        size_t i;
        json_t *e;
        if (json_array_size(t) == 0) {
            rc = fail(c, -EINVAL, "type must not be an empty list");
            goto out;
        }
        sb_puts(out, "(");
        json_array_foreach(t, i, e) {
            if (!json_is_string(e)) {
                rc = fail(c, -EINVAL, "type must list strings");
                goto out;
            }
            if (i)
                sb_puts(out, " | ");
            char nm[300];
            snprintf(nm, sizeof nm, "%s-%s", name, json_string_value(e));
            if ((rc = visit(c, s, nm, json_string_value(e), out)) < 0)
                goto out;
        }
        sb_puts(out, ")");
        goto out;
    }
    if (!type && t && !json_is_string(t)) {
        rc = fail(c, -EINVAL, "type must be a string or a list of strings");
        goto out;
    }
    if (!type)
        type = json_string_value(t);
    if (!type) {
        /* no type: inferred from the keywords present */
        if (json_object_get(s, "properties") || json_object_get(s, "additionalProperties") ||
            json_object_get(s, "required"))
            type = "object";
        else if (json_object_get(s, "items") || json_object_get(s, "prefixItems") ||
                 json_object_get(s, "minItems") || json_object_get(s, "maxItems"))
            type = "array";
        else if (json_object_get(s, "minLength") || json_object_get(s, "maxLength") ||
                 json_object_get(s, "pattern") || json_object_get(s, "format"))
            type = "string";
        else {
            rc = prim(c, "value", out);
            goto out;
        }
    }
    if (!strcmp(type, "object"))
        rc = object(c, s, name, out);
    else if (!strcmp(type, "array"))
        rc = array(c, s, name, out);
    else if (!strcmp(type, "string"))
        rc = string(c, s, out);
    else if (!strcmp(type, "integer"))
        rc = integer(c, s, out);
    else if (!strcmp(type, "number"))
        rc = prim(c, "number", out);
    else if (!strcmp(type, "boolean"))
        rc = prim(c, "boolean", out);
    else if (!strcmp(type, "null"))
        rc = prim(c, "null", out);
    else
        rc = fail(c, -EINVAL, "unknown type \"%.100s\"", type);
out:
    c->depth--;
    if (rc == 0 && out->oom)
        rc = fail(c, -ENOMEM, "out of memory");
    return rc;
}

int hr_grammar_from_json_schema(const char *schema_json, char **gbnf_out, struct hr_err *err)
{
    struct conv c = {.err = err};
    struct sb root = {0}, all = {0};
    int rc = -EINVAL;
    hr_err_clear(err);
    if (!schema_json || !gbnf_out)
        goto done;
    json_error_t je;
    c.root = json_loads(schema_json, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je);
    if (!c.root) {
        if (err) {
            snprintf(err->msg, sizeof err->msg, "schema is not valid JSON: %d:%d: %s", je.line,
                     je.column, je.text);
            err->line = je.line;
            err->column = je.column;
            err->offset = je.position;
        }
        goto done;
    }
    /* "root" first, so that "#" refers to the whole schema */
    char nm[64];
    if ((rc = add_rule(&c, "root", NULL, false, nm, sizeof nm)) < 0)
        goto done;
    c.refs = malloc(sizeof *c.refs);
    if (!c.refs || !(c.refs[0].ref = strdup("#")) || !(c.refs[0].name = strdup("root"))) {
        if (c.refs)
            free(c.refs[0].ref);
        rc = fail(&c, -ENOMEM, "out of memory");
        goto done;
    }
    c.n_refs = c.cap_refs = 1;
    c.open = "root";
    if ((rc = visit(&c, c.root, "root", NULL, &root)) < 0)
        goto done;
    if (!c.claimed && (rc = define(&c, "root", &root)) < 0)
        goto done; /* else the top-level object or array defined it */
    for (size_t i = 0; i < c.n_rules; i++) {
        sb_puts(&all, c.rule[i].name);
        sb_puts(&all, " ::= ");
        sb_puts(&all, c.rule[i].body);
        sb_puts(&all, "\n");
    }
    if (all.oom) {
        rc = fail(&c, -ENOMEM, "out of memory");
        goto done;
    }
    *gbnf_out = all.s;
    all.s = NULL;
    rc = 0;
done:
    for (size_t i = 0; i < c.n_rules; i++) {
        free(c.rule[i].name);
        free(c.rule[i].body);
    }
    free(c.rule);
    for (size_t i = 0; i < c.n_refs; i++) {
        free(c.refs[i].ref);
        free(c.refs[i].name);
    }
    free(c.refs);
    json_decref(c.root);
    free(root.s);
    free(all.s);
    return rc;
}
