/*
 * jinja_parse.c — tokens → AST, following jinja2's grammar (parser.py):
 *
 *   expr     := or ('if' or ('else' expr)?)*
 *   or, and  := left-assoc chains; not := 'not' not | compare
 *   compare  := math1 ((== != < <= > >= in, not in) math1)*
 *   math1    := concat (('+'|'-') concat)*   concat := math2 ('~' math2)*
 *   math2    := pow (('*'|'/'|'//'|'%') pow)*  pow := unary ('**' unary)*
 *   unary    := ('-'|'+') unary | primary postfix* (filter | test | call)*
 *
 * so filters bind tighter than arithmetic (`a + b|trim` is `a + (b|trim)`)
 * and `not x is none` is `not (x is none)`. Unknown filters and tests,
 * unsupported tags and misplaced end tags fail here, with line:column.
 * Recursion is capped at JINJA_MAX_PARSE_DEPTH nested expressions or
 * blocks, so garbage input cannot exhaust the stack.
 */
#include "jinja_impl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct parser {
    struct jctx *c;
    const struct jtok *tok;
    size_t n, i;
    int depth;
    int loops; /* enclosing for loops (in the current macro), for break/continue */
};

struct nvec {
    struct jnode **v;
    uint32_t n, cap;
};

static void nv_push(struct parser *p, struct nvec *v, struct jnode *x)
{
    if (v->n == v->cap) {
        uint32_t cap = v->cap ? v->cap * 2 : 4;
        v->v = jx_grow(p->c, v->v, v->n * sizeof *v->v, cap * sizeof *v->v);
        v->cap = cap;
    }
    v->v[v->n++] = x;
}

static const struct jtok *cur(struct parser *p)
{
    return &p->tok[p->i < p->n ? p->i : p->n - 1];
}

static const struct jtok *look(struct parser *p, size_t k)
{
    return &p->tok[p->i + k < p->n ? p->i + k : p->n - 1];
}

static void advance(struct parser *p)
{
    if (p->i + 1 < p->n)
        p->i++;
}

static struct jnode *mk(struct parser *p, enum jnode_kind kind, uint32_t pos)
{
    struct jnode *x = jx_alloc(p->c, sizeof *x);
    x->kind = kind;
    x->pos = pos;
    x->id = -1;
    return x;
}

static bool is_op(struct parser *p, enum jop op)
{
    return cur(p)->t == JT_OP && cur(p)->op == op;
}

static bool is_kw_tok(const struct jtok *t, const char *kw)
{
    return t->t == JT_NAME && js_eqc(t->s, kw);
}

static bool is_kw(struct parser *p, const char *kw)
{
    return is_kw_tok(cur(p), kw);
}

static const char *op_text(enum jop op)
{
    static const char *const t[] = {
        "?", "+", "-", "*", "/", "//", "%", "**", "~", "(", ")", "[", "]", "{", "}", "==",
        "!=", "<", "<=", ">", ">=", "=", ".", ":", "|", ",", ";", "in", "not in"};
    return (size_t)op < sizeof t / sizeof t[0] ? t[op] : "?";
}

_Noreturn static void unexpected(struct parser *p, const char *wanted)
{
    const struct jtok *t = cur(p);
    char what[80];
    switch (t->t) {
    case JT_EOF: snprintf(what, sizeof what, "end of template"); break;
    case JT_DATA: snprintf(what, sizeof what, "template text"); break;
    case JT_VAR_BEGIN: snprintf(what, sizeof what, "'{{'"); break;
    case JT_VAR_END: snprintf(what, sizeof what, "end of '{{ }}' ('}}')"); break;
    case JT_BLOCK_BEGIN: snprintf(what, sizeof what, "'{%%'"); break;
    case JT_BLOCK_END: snprintf(what, sizeof what, "end of tag ('%%}')"); break;
    case JT_NAME: snprintf(what, sizeof what, "'%.60s'", t->s->s); break;
    case JT_STRING: snprintf(what, sizeof what, "a string"); break;
    case JT_INT:
    case JT_FLOAT: snprintf(what, sizeof what, "a number"); break;
    case JT_OP: snprintf(what, sizeof what, "'%s'", op_text(t->op)); break;
    }
    if (wanted)
        jx_fail(p->c, -EINVAL, t->pos, "syntax error: expected %s, got %s", wanted, what);
    jx_fail(p->c, -EINVAL, t->pos, "syntax error: unexpected %s", what);
}

static void expect_op(struct parser *p, enum jop op)
{
    if (!is_op(p, op)) {
        char w[16];
        snprintf(w, sizeof w, "'%s'", op_text(op));
        unexpected(p, w);
    }
    advance(p);
}

static void expect_t(struct parser *p, enum jtok_type t, const char *what)
{
    if (cur(p)->t != t)
        unexpected(p, what);
    advance(p);
}

static const struct jstr *expect_name(struct parser *p)
{
    if (cur(p)->t != JT_NAME)
        unexpected(p, "a name");
    const struct jstr *s = cur(p)->s;
    advance(p);
    return s;
}

static void enter(struct parser *p)
{
    if (++p->depth > JINJA_MAX_PARSE_DEPTH)
        jx_fail(p->c, -EINVAL, cur(p)->pos, "template nested more than %d levels deep",
                JINJA_MAX_PARSE_DEPTH);
}

/* ---- expressions ------------------------------------------------------------------- */

static struct jnode *parse_expr(struct parser *p, bool condexpr);
static struct jnode *parse_unary(struct parser *p, bool with_filter);
static struct jnode *parse_primary(struct parser *p);
static struct jnode *parse_postfix(struct parser *p, struct jnode *x);

/* Is the current token the end of a tuple? */
static bool tuple_end(struct parser *p, const char *extra_kw)
{
    const struct jtok *t = cur(p);
    return t->t == JT_VAR_END || t->t == JT_BLOCK_END || t->t == JT_EOF ||
           (t->t == JT_OP && t->op == OP_RPAREN) || (extra_kw && is_kw_tok(t, extra_kw));
}

/* parse_tuple: one expression, or a tuple when commas follow. */
static struct jnode *parse_tuple(struct parser *p, bool simplified, bool condexpr,
                                 const char *extra_kw, bool parens)
{
    uint32_t pos = cur(p)->pos;
    struct nvec args = {0};
    bool is_tuple = false;
    for (;;) {
        if (args.n)
            expect_op(p, OP_COMMA);
        if (tuple_end(p, extra_kw))
            break;
        nv_push(p, &args, simplified ? parse_primary(p) : parse_expr(p, condexpr));
        if (is_op(p, OP_COMMA))
            is_tuple = true;
        else
            break;
    }
    if (!is_tuple) {
        if (args.n)
            return args.v[0];
        if (!parens)
            unexpected(p, "an expression");
    }
    struct jnode *x = mk(p, JN_TUPLE, pos);
    x->kids = args.v;
    x->n = args.n;
    return x;
}

static void parse_call_args(struct parser *p, struct jnode *x)
{
    struct nvec pos = {0}, kw = {0};
    struct {
        const struct jstr **v;
        uint32_t n, cap;
    } names = {0};
    expect_op(p, OP_LPAREN);
    while (!is_op(p, OP_RPAREN)) {
        if (pos.n || kw.n)
            expect_op(p, OP_COMMA);
        if (is_op(p, OP_RPAREN))
            break;
        if (is_op(p, OP_MUL) || is_op(p, OP_POW))
            jx_fail(p->c, -EINVAL, cur(p)->pos, "unsupported: *args / **kwargs in a call");
        if (cur(p)->t == JT_NAME && look(p, 1)->t == JT_OP && look(p, 1)->op == OP_ASSIGN) {
            const struct jstr *k = cur(p)->s;
            advance(p);
            advance(p);
            if (names.n == names.cap) {
                uint32_t cap = names.cap ? names.cap * 2 : 4;
                names.v = jx_grow(p->c, names.v, names.n * sizeof *names.v, cap * sizeof *names.v);
                names.cap = cap;
            }
            names.v[names.n++] = k;
            nv_push(p, &kw, parse_expr(p, true));
        } else {
            if (kw.n)
                jx_fail(p->c, -EINVAL, cur(p)->pos,
                        "syntax error: positional argument after a keyword argument");
            nv_push(p, &pos, parse_expr(p, true));
        }
    }
    advance(p);
    x->kids = pos.v;
    x->n = pos.n;
    x->kids2 = kw.v;
    x->names = names.v;
    x->n2 = kw.n;
}

static struct jnode *parse_filter(struct parser *p, struct jnode *x, bool start_inline)
{
    while (is_op(p, OP_PIPE) || start_inline) {
        if (!start_inline)
            advance(p);
        start_inline = false;
        uint32_t pos = cur(p)->pos;
        const struct jstr *name = expect_name(p);
        if (is_op(p, OP_DOT))
            jx_fail(p->c, -EINVAL, pos, "unsupported: dotted filter name '%s.'", name->s);
        struct jnode *f = mk(p, JN_FILTER, pos);
        f->a = x;
        f->name = name;
        f->id = jinja_find_filter(name->s, name->len);
        if (f->id < 0)
            jx_fail(p->c, -EINVAL, pos, "unknown filter '%s'", name->s);
        if (is_op(p, OP_LPAREN))
            parse_call_args(p, f);
        x = f;
    }
    return x;
}

static struct jnode *parse_test(struct parser *p, struct jnode *x)
{
    uint32_t pos = cur(p)->pos;
    advance(p); /* 'is' */
    struct jnode *t = mk(p, JN_TEST, pos);
    t->a = x;
    if (is_kw(p, "not")) {
        t->op = 1;
        advance(p);
    }
    uint32_t npos = cur(p)->pos;
    /* `is none`, `is true`... are names here, not constants */
    t->name = expect_name(p);
    t->id = jinja_find_test(t->name->s, t->name->len);
    if (t->id < 0)
        jx_fail(p->c, -EINVAL, npos, "unknown test '%s'", t->name->s);
    const struct jtok *k = cur(p);
    if (is_op(p, OP_LPAREN)) {
        parse_call_args(p, t);
    } else if ((k->t == JT_NAME || k->t == JT_STRING || k->t == JT_INT || k->t == JT_FLOAT ||
                (k->t == JT_OP && (k->op == OP_LPAREN || k->op == OP_LBRACKET ||
                                   k->op == OP_LBRACE))) &&
               !is_kw(p, "else") && !is_kw(p, "or") && !is_kw(p, "and")) {
        if (is_kw(p, "is"))
            jx_fail(p->c, -EINVAL, k->pos, "syntax error: tests cannot be chained with 'is'");
        struct jnode *arg = parse_postfix(p, parse_primary(p));
        t->kids = jx_alloc(p->c, sizeof *t->kids);
        t->kids[0] = arg;
        t->n = 1;
    }
    return t;
}

static struct jnode *parse_subscribed(struct parser *p)
{
    uint32_t pos = cur(p)->pos;
    struct jnode *args[3] = {NULL, NULL, NULL};
    if (is_op(p, OP_COLON)) {
        advance(p);
    } else {
        struct jnode *x = parse_expr(p, true);
        if (!is_op(p, OP_COLON))
            return x;
        advance(p);
        args[0] = x;
    }
    if (!is_op(p, OP_COLON) && !is_op(p, OP_RBRACKET) && !is_op(p, OP_COMMA))
        args[1] = parse_expr(p, true);
    if (is_op(p, OP_COLON)) {
        advance(p);
        if (!is_op(p, OP_RBRACKET) && !is_op(p, OP_COMMA))
            args[2] = parse_expr(p, true);
    }
    struct jnode *s = mk(p, JN_SLICE, pos);
    s->kids = jx_alloc(p->c, 3 * sizeof *s->kids);
    memcpy(s->kids, args, sizeof args);
    s->n = 3;
    return s;
}

static struct jnode *parse_subscript(struct parser *p, struct jnode *x)
{
    uint32_t pos = cur(p)->pos;
    if (is_op(p, OP_DOT)) {
        advance(p);
        const struct jtok *t = cur(p);
        if (t->t == JT_NAME) {
            struct jnode *a = mk(p, JN_ATTR, pos);
            a->a = x;
            a->name = t->s;
            advance(p);
            return a;
        }
        if (t->t == JT_INT) {
            struct jnode *k = mk(p, JN_CONST, t->pos);
            k->val = jv_int(t->i);
            advance(p);
            struct jnode *g = mk(p, JN_ITEM, pos);
            g->a = x;
            g->b = k;
            return g;
        }
        unexpected(p, "a name or number after '.'");
    }
    advance(p); /* '[' */
    struct nvec args = {0};
    while (!is_op(p, OP_RBRACKET)) {
        if (args.n)
            expect_op(p, OP_COMMA);
        nv_push(p, &args, parse_subscribed(p));
    }
    advance(p);
    if (!args.n)
        jx_fail(p->c, -EINVAL, pos, "syntax error: empty subscript '[]'");
    struct jnode *key = args.v[0];
    for (uint32_t i = 0; args.n > 1 && i < args.n; i++)
        if (args.v[i]->kind == JN_SLICE)
            jx_fail(p->c, -EINVAL, args.v[i]->pos, "unsupported: a slice inside a tuple subscript");
    if (args.n > 1) {
        key = mk(p, JN_TUPLE, pos);
        key->kids = args.v;
        key->n = args.n;
    }
    if (key->kind == JN_SLICE) {
        key->a = x;
        return key;
    }
    struct jnode *g = mk(p, JN_ITEM, pos);
    g->a = x;
    g->b = key;
    return g;
}

static struct jnode *parse_postfix(struct parser *p, struct jnode *x)
{
    for (;;) {
        if (is_op(p, OP_DOT) || is_op(p, OP_LBRACKET)) {
            x = parse_subscript(p, x);
        } else if (is_op(p, OP_LPAREN)) {
            struct jnode *c = mk(p, JN_CALL, x->pos); /* errors point at the callee */
            c->a = x;
            parse_call_args(p, c);
            x = c;
        } else {
            return x;
        }
    }
}

static struct jnode *parse_filter_expr(struct parser *p, struct jnode *x)
{
    for (;;) {
        if (is_op(p, OP_PIPE)) {
            x = parse_filter(p, x, false);
        } else if (is_kw(p, "is")) {
            x = parse_test(p, x);
        } else if (is_op(p, OP_LPAREN)) {
            struct jnode *c = mk(p, JN_CALL, x->pos); /* errors point at the callee */
            c->a = x;
            parse_call_args(p, c);
            x = c;
        } else {
            return x;
        }
    }
}

static struct jnode *parse_primary(struct parser *p)
{
    const struct jtok *t = cur(p);
    struct jnode *x;
    switch (t->t) {
    case JT_NAME:
        x = mk(p, JN_CONST, t->pos);
        if (js_eqc(t->s, "true") || js_eqc(t->s, "True"))
            x->val = jv_bool(true);
        else if (js_eqc(t->s, "false") || js_eqc(t->s, "False"))
            x->val = jv_bool(false);
        else if (js_eqc(t->s, "none") || js_eqc(t->s, "None"))
            x->val = jv_none();
        else {
            x->kind = JN_NAME;
            x->name = t->s;
        }
        advance(p);
        return x;
    case JT_STRING: {
        x = mk(p, JN_CONST, t->pos);
        const struct jstr *s = t->s;
        advance(p);
        if (cur(p)->t == JT_STRING) { /* adjacent literals concatenate */
            struct sbuf b;
            sb_init(&b, p->c, 0);
            sb_put(&b, s->s, s->len);
            while (cur(p)->t == JT_STRING) {
                sb_put(&b, cur(p)->s->s, cur(p)->s->len);
                advance(p);
            }
            s = sb_str(&b);
        }
        x->val = jv_str(s);
        return x;
    }
    case JT_INT:
    case JT_FLOAT:
        x = mk(p, JN_CONST, t->pos);
        x->val = t->t == JT_INT ? jv_int(t->i) : jv_float(t->f);
        advance(p);
        return x;
    case JT_OP:
        if (t->op == OP_LPAREN) {
            advance(p);
            x = parse_tuple(p, false, true, NULL, true);
            expect_op(p, OP_RPAREN);
            return x;
        }
        if (t->op == OP_LBRACKET) {
            x = mk(p, JN_LIST, t->pos);
            advance(p);
            struct nvec items = {0};
            while (!is_op(p, OP_RBRACKET)) {
                if (items.n)
                    expect_op(p, OP_COMMA);
                if (is_op(p, OP_RBRACKET))
                    break;
                nv_push(p, &items, parse_expr(p, true));
            }
            advance(p);
            x->kids = items.v;
            x->n = items.n;
            return x;
        }
        if (t->op == OP_LBRACE) {
            x = mk(p, JN_DICT, t->pos);
            advance(p);
            struct nvec keys = {0}, vals = {0};
            while (!is_op(p, OP_RBRACE)) {
                if (keys.n)
                    expect_op(p, OP_COMMA);
                if (is_op(p, OP_RBRACE))
                    break;
                nv_push(p, &keys, parse_expr(p, true));
                expect_op(p, OP_COLON);
                nv_push(p, &vals, parse_expr(p, true));
            }
            advance(p);
            x->kids = keys.v;
            x->kids2 = vals.v;
            x->n = x->n2 = keys.n;
            return x;
        }
        break;
    default:
        break;
    }
    unexpected(p, "an expression");
}

static struct jnode *parse_unary(struct parser *p, bool with_filter)
{
    enter(p);
    struct jnode *x;
    uint32_t pos = cur(p)->pos;
    if (is_op(p, OP_SUB) || is_op(p, OP_ADD)) {
        bool neg = is_op(p, OP_SUB);
        advance(p);
        x = mk(p, neg ? JN_NEG : JN_POS, pos);
        x->a = parse_unary(p, false);
    } else {
        x = parse_postfix(p, parse_primary(p));
    }
    if (with_filter)
        x = parse_filter_expr(p, x);
    p->depth--;
    return x;
}

static struct jnode *binary(struct parser *p, enum jnode_kind kind, enum jop op, uint32_t pos,
                            struct jnode *a, struct jnode *b)
{
    struct jnode *x = mk(p, kind, pos);
    x->op = op;
    x->a = a;
    x->b = b;
    return x;
}

static struct jnode *parse_pow(struct parser *p)
{
    struct jnode *x = parse_unary(p, true);
    while (is_op(p, OP_POW)) {
        uint32_t pos = cur(p)->pos;
        advance(p);
        x = binary(p, JN_BIN, OP_POW, pos, x, parse_unary(p, true));
    }
    return x;
}

static struct jnode *parse_math2(struct parser *p)
{
    struct jnode *x = parse_pow(p);
    while (is_op(p, OP_MUL) || is_op(p, OP_DIV) || is_op(p, OP_FLOORDIV) || is_op(p, OP_MOD)) {
        enum jop op = cur(p)->op;
        uint32_t pos = cur(p)->pos;
        advance(p);
        x = binary(p, JN_BIN, op, pos, x, parse_pow(p));
    }
    return x;
}

static struct jnode *parse_concat(struct parser *p)
{
    struct jnode *x = parse_math2(p);
    if (!is_op(p, OP_TILDE))
        return x;
    struct jnode *c = mk(p, JN_CONCAT, cur(p)->pos);
    struct nvec args = {0};
    nv_push(p, &args, x);
    while (is_op(p, OP_TILDE)) {
        advance(p);
        nv_push(p, &args, parse_math2(p));
    }
    c->kids = args.v;
    c->n = args.n;
    return c;
}

static struct jnode *parse_math1(struct parser *p)
{
    struct jnode *x = parse_concat(p);
    while (is_op(p, OP_ADD) || is_op(p, OP_SUB)) {
        enum jop op = cur(p)->op;
        uint32_t pos = cur(p)->pos;
        advance(p);
        x = binary(p, JN_BIN, op, pos, x, parse_concat(p));
    }
    return x;
}

static struct jnode *parse_compare(struct parser *p)
{
    uint32_t pos = cur(p)->pos;
    struct jnode *x = parse_math1(p);
    struct nvec rhs = {0};
    enum jop *ops = NULL;
    uint32_t cap = 0;
    for (;;) {
        enum jop op;
        const struct jtok *t = cur(p);
        if (t->t == JT_OP && (t->op == OP_EQ || t->op == OP_NE || t->op == OP_LT ||
                              t->op == OP_LE || t->op == OP_GT || t->op == OP_GE)) {
            op = t->op;
            advance(p);
        } else if (is_kw(p, "in")) {
            op = OP_IN;
            advance(p);
        } else if (is_kw(p, "not") && is_kw_tok(look(p, 1), "in")) {
            op = OP_NOTIN;
            advance(p);
            advance(p);
        } else {
            break;
        }
        if (rhs.n == cap) {
            cap = cap ? cap * 2 : 4;
            ops = jx_grow(p->c, ops, rhs.n * sizeof *ops, cap * sizeof *ops);
        }
        ops[rhs.n] = op;
        nv_push(p, &rhs, parse_math1(p));
    }
    if (!rhs.n)
        return x;
    struct jnode *c = mk(p, JN_CMP, pos);
    c->a = x;
    c->kids = rhs.v;
    c->ops = ops;
    c->n = rhs.n;
    return c;
}

static struct jnode *parse_not(struct parser *p)
{
    if (is_kw(p, "not")) {
        enter(p);
        struct jnode *x = mk(p, JN_NOT, cur(p)->pos);
        advance(p);
        x->a = parse_not(p);
        p->depth--;
        return x;
    }
    return parse_compare(p);
}

static struct jnode *parse_and(struct parser *p)
{
    struct jnode *x = parse_not(p);
    while (is_kw(p, "and")) {
        uint32_t pos = cur(p)->pos;
        advance(p);
        x = binary(p, JN_AND, 0, pos, x, parse_not(p));
    }
    return x;
}

static struct jnode *parse_or(struct parser *p)
{
    struct jnode *x = parse_and(p);
    while (is_kw(p, "or")) {
        uint32_t pos = cur(p)->pos;
        advance(p);
        x = binary(p, JN_OR, 0, pos, x, parse_and(p));
    }
    return x;
}

static struct jnode *parse_expr(struct parser *p, bool condexpr)
{
    enter(p);
    struct jnode *x = parse_or(p);
    while (condexpr && is_kw(p, "if")) {
        struct jnode *c = mk(p, JN_COND, cur(p)->pos);
        advance(p);
        c->a = parse_or(p);
        c->b = x;
        if (is_kw(p, "else")) {
            advance(p);
            c->c = parse_expr(p, true);
        }
        x = c;
    }
    p->depth--;
    return x;
}

/* ---- statements ------------------------------------------------------------------- */

static struct jnode *parse_body(struct parser *p, const char *const *ends, const char *opener,
                                uint32_t opener_pos);

/* A name, or a tuple of names (`for k, v in`), or with_ns: `ns.attr`. */
static struct jnode *parse_target(struct parser *p, bool with_ns, const char *extra_kw)
{
    uint32_t pos = cur(p)->pos;
    if (with_ns && cur(p)->t == JT_NAME && look(p, 1)->t == JT_OP && look(p, 1)->op == OP_DOT) {
        struct jnode *ns = mk(p, JN_NAME, pos);
        ns->name = expect_name(p);
        advance(p);
        struct jnode *a = mk(p, JN_ATTR, pos);
        a->a = ns;
        a->name = expect_name(p);
        return a;
    }
    struct jnode *x = parse_tuple(p, true, false, extra_kw, false);
    if (x->kind == JN_NAME)
        return x;
    if (x->kind == JN_TUPLE) {
        for (uint32_t i = 0; i < x->n; i++)
            if (x->kids[i]->kind != JN_NAME)
                jx_fail(p->c, -EINVAL, x->kids[i]->pos, "cannot assign to this expression");
        return x;
    }
    jx_fail(p->c, -EINVAL, pos, "cannot assign to this expression");
}

/* Macro and caller parameters: `(a, b=default)`. */
static void parse_signature(struct parser *p, struct jnode *x)
{
    struct nvec defs = {0};
    struct {
        const struct jstr **v;
        uint32_t n, cap;
    } names = {0};
    expect_op(p, OP_LPAREN);
    bool seen_default = false;
    while (!is_op(p, OP_RPAREN)) {
        if (names.n)
            expect_op(p, OP_COMMA);
        uint32_t pos = cur(p)->pos;
        const struct jstr *n = expect_name(p);
        struct jnode *d = NULL;
        if (is_op(p, OP_ASSIGN)) {
            advance(p);
            d = parse_expr(p, true);
            seen_default = true;
        } else if (seen_default) {
            jx_fail(p->c, -EINVAL, pos, "non-default argument '%s' follows default argument",
                    n->s);
        }
        if (names.n == names.cap) {
            uint32_t cap = names.cap ? names.cap * 2 : 4;
            names.v = jx_grow(p->c, names.v, names.n * sizeof *names.v, cap * sizeof *names.v);
            names.cap = cap;
        }
        names.v[names.n++] = n;
        nv_push(p, &defs, d);
    }
    advance(p);
    x->names = names.v;
    x->kids2 = defs.v;
    x->n2 = names.n;
}

static void end_tag(struct parser *p)
{
    advance(p); /* the end keyword, already checked by parse_body */
    expect_t(p, JT_BLOCK_END, "end of tag ('%}')");
}

static struct jnode *parse_for(struct parser *p, uint32_t pos)
{
    static const char *const ends1[] = {"endfor", "else", NULL}, *const ends2[] = {"endfor", NULL};
    struct jnode *x = mk(p, JN_FOR, pos);
    x->a = parse_target(p, false, "in");
    if (!is_kw(p, "in"))
        unexpected(p, "'in'");
    advance(p);
    x->b = parse_tuple(p, false, false, "recursive", false);
    if (is_kw(p, "if")) {
        advance(p);
        x->c = parse_expr(p, true);
    }
    if (is_kw(p, "recursive"))
        jx_fail(p->c, -EINVAL, cur(p)->pos, "unsupported: recursive for loops");
    expect_t(p, JT_BLOCK_END, "end of tag ('%}')");
    p->loops++;
    x->body = parse_body(p, ends1, "for", pos);
    p->loops--;
    if (is_kw(p, "else")) {
        advance(p);
        expect_t(p, JT_BLOCK_END, "end of tag ('%}')");
        x->orelse = parse_body(p, ends2, "for", pos);
    }
    end_tag(p);
    return x;
}

static struct jnode *parse_if(struct parser *p, uint32_t pos)
{
    static const char *const ends1[] = {"endif", "elif", "else", NULL},
                             *const ends2[] = {"endif", NULL};
    struct jnode *first = NULL, *last = NULL;
    for (;;) {
        struct jnode *x = mk(p, JN_IF, pos);
        x->a = parse_tuple(p, false, false, NULL, false);
        expect_t(p, JT_BLOCK_END, "end of tag ('%}')");
        x->body = parse_body(p, ends1, "if", pos);
        if (last)
            last->orelse = x;
        else
            first = x;
        last = x;
        if (is_kw(p, "elif")) {
            pos = cur(p)->pos;
            advance(p);
            continue;
        }
        if (is_kw(p, "else")) {
            advance(p);
            expect_t(p, JT_BLOCK_END, "end of tag ('%}')");
            x->orelse = parse_body(p, ends2, "if", pos);
        }
        end_tag(p);
        return first;
    }
}

static struct jnode *parse_set(struct parser *p, uint32_t pos)
{
    static const char *const ends[] = {"endset", NULL};
    struct jnode *target = parse_target(p, true, NULL);
    if (is_op(p, OP_ASSIGN)) {
        advance(p);
        struct jnode *x = mk(p, JN_SET, pos);
        x->a = target;
        x->b = parse_tuple(p, false, true, NULL, false);
        expect_t(p, JT_BLOCK_END, "end of tag ('%}')");
        return x;
    }
    if (target->kind != JN_NAME)
        unexpected(p, "'='");
    struct jnode *x = mk(p, JN_SETBLOCK, pos);
    x->a = target;
    if (is_op(p, OP_PIPE)) {
        advance(p);
        x->c = parse_filter(p, mk(p, JN_INPUT, pos), true);
    }
    expect_t(p, JT_BLOCK_END, "end of tag ('%}')");
    x->body = parse_body(p, ends, "set", pos);
    end_tag(p);
    return x;
}

static struct jnode *parse_macro(struct parser *p, uint32_t pos)
{
    static const char *const ends[] = {"endmacro", NULL};
    struct jnode *x = mk(p, JN_MACRO, pos);
    x->name = expect_name(p);
    parse_signature(p, x);
    expect_t(p, JT_BLOCK_END, "end of tag ('%}')");
    int loops = p->loops;
    p->loops = 0;
    x->body = parse_body(p, ends, "macro", pos);
    p->loops = loops;
    end_tag(p);
    return x;
}

static struct jnode *parse_callblock(struct parser *p, uint32_t pos)
{
    static const char *const ends[] = {"endcall", NULL};
    struct jnode *x = mk(p, JN_CALLBLOCK, pos);
    if (is_op(p, OP_LPAREN))
        parse_signature(p, x);
    x->a = parse_expr(p, true);
    if (x->a->kind != JN_CALL)
        jx_fail(p->c, -EINVAL, x->a->pos, "syntax error: 'call' needs a macro call");
    expect_t(p, JT_BLOCK_END, "end of tag ('%}')");
    int loops = p->loops;
    p->loops = 0;
    x->body = parse_body(p, ends, "call", pos);
    p->loops = loops;
    end_tag(p);
    return x;
}

static struct jnode *parse_filterblock(struct parser *p, uint32_t pos)
{
    static const char *const ends[] = {"endfilter", NULL};
    struct jnode *x = mk(p, JN_FILTERBLOCK, pos);
    x->c = parse_filter(p, mk(p, JN_INPUT, pos), true);
    expect_t(p, JT_BLOCK_END, "end of tag ('%}')");
    x->body = parse_body(p, ends, "filter", pos);
    end_tag(p);
    return x;
}

static struct jnode *parse_with(struct parser *p, uint32_t pos)
{
    static const char *const ends[] = {"endwith", NULL};
    struct jnode *x = mk(p, JN_WITH, pos);
    struct nvec vals = {0};
    struct {
        const struct jstr **v;
        uint32_t n, cap;
    } names = {0};
    while (cur(p)->t != JT_BLOCK_END) {
        if (names.n)
            expect_op(p, OP_COMMA);
        const struct jstr *n = expect_name(p);
        expect_op(p, OP_ASSIGN);
        if (names.n == names.cap) {
            uint32_t cap = names.cap ? names.cap * 2 : 4;
            names.v = jx_grow(p->c, names.v, names.n * sizeof *names.v, cap * sizeof *names.v);
            names.cap = cap;
        }
        names.v[names.n++] = n;
        nv_push(p, &vals, parse_expr(p, true));
    }
    advance(p);
    x->names = names.v;
    x->kids2 = vals.v;
    x->n2 = vals.n;
    x->body = parse_body(p, ends, "with", pos);
    end_tag(p);
    return x;
}

/* After `{%`: one statement, through its closing tag. */
static struct jnode *parse_statement(struct parser *p)
{
    enter(p);
    const struct jtok *t = cur(p);
    uint32_t pos = t->pos;
    if (t->t != JT_NAME)
        unexpected(p, "a tag name");
    const struct jstr *name = t->s;
    advance(p);
    struct jnode *x;
    if (js_eqc(name, "for")) {
        x = parse_for(p, pos);
    } else if (js_eqc(name, "if")) {
        x = parse_if(p, pos);
    } else if (js_eqc(name, "set")) {
        x = parse_set(p, pos);
    } else if (js_eqc(name, "macro")) {
        x = parse_macro(p, pos);
    } else if (js_eqc(name, "call")) {
        x = parse_callblock(p, pos);
    } else if (js_eqc(name, "filter")) {
        x = parse_filterblock(p, pos);
    } else if (js_eqc(name, "with")) {
        x = parse_with(p, pos);
    } else if (js_eqc(name, "generation")) {
        /* transformers' AssistantTracker marks assistant text; rendering is unchanged */
        static const char *const ends[] = {"endgeneration", NULL};
        expect_t(p, JT_BLOCK_END, "end of tag ('%}')");
        x = parse_body(p, ends, "generation", pos);
        end_tag(p);
    } else if (js_eqc(name, "break") || js_eqc(name, "continue")) {
        if (!p->loops)
            jx_fail(p->c, -EINVAL, pos, "'%s' outside of a for loop", name->s);
        x = mk(p, js_eqc(name, "break") ? JN_BREAK : JN_CONTINUE, pos);
        expect_t(p, JT_BLOCK_END, "end of tag ('%}')");
    } else {
        static const char *const ends[] = {"endfor", "endif", "elif", "else", "endset",
                                           "endmacro", "endcall", "endfilter", "endwith",
                                           "endgeneration", "endraw", NULL};
        for (int i = 0; ends[i]; i++)
            if (js_eqc(name, ends[i]))
                jx_fail(p->c, -EINVAL, pos, "unexpected '%s' (no open block it could close)",
                        name->s);
        jx_fail(p->c, -EINVAL, pos, "unsupported tag '%.60s'", name->s);
    }
    p->depth--;
    return x;
}

/* Statements until `{% END %}` for END in ends (NULL: until the end of the
 * template); leaves the parser on the END name. */
static struct jnode *parse_body(struct parser *p, const char *const *ends, const char *opener,
                                uint32_t opener_pos)
{
    struct jnode *body = mk(p, JN_BODY, cur(p)->pos);
    struct nvec v = {0};
    for (;;) {
        const struct jtok *t = cur(p);
        if (t->t == JT_EOF) {
            if (!ends)
                break;
            jx_fail(p->c, -EINVAL, opener_pos, "'%s' block is never closed (missing '%s')",
                    opener, ends[0]);
        }
        if (t->t == JT_DATA) {
            struct jnode *x = mk(p, JN_TEXT, t->pos);
            x->val = jv_str(t->s);
            nv_push(p, &v, x);
            advance(p);
        } else if (t->t == JT_VAR_BEGIN) {
            struct jnode *x = mk(p, JN_OUT, t->pos);
            advance(p);
            x->a = parse_tuple(p, false, true, NULL, false);
            expect_t(p, JT_VAR_END, "end of '{{ }}' ('}}')");
            nv_push(p, &v, x);
        } else if (t->t == JT_BLOCK_BEGIN) {
            advance(p);
            if (ends && cur(p)->t == JT_NAME)
                for (int i = 0; ends[i]; i++)
                    if (js_eqc(cur(p)->s, ends[i]))
                        goto done;
            nv_push(p, &v, parse_statement(p));
        } else {
            unexpected(p, NULL);
        }
    }
done:
    body->kids = v.v;
    body->n = v.n;
    return body;
}

struct jnode *jinja_parse_tokens(struct jctx *c, const struct jtok *tok, size_t n_tok)
{
    struct parser p = {.c = c, .tok = tok, .n = n_tok};
    return parse_body(&p, NULL, NULL, 0);
}
