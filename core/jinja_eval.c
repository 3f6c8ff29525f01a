/*
 * jinja_eval.c — evaluating a parsed template: scopes, statements,
 * expressions, calls and macros, and the render entry point (the
 * operators themselves are in jinja_ops.c).
 *
 * Scoping follows jinja2: `if` opens no scope; every for-loop iteration
 * starts a fresh scope over the enclosing one (so `set` inside a loop is
 * gone at the next iteration and after the loop — templates carry state
 * across iterations in a namespace()); a macro call runs in a scope over
 * the one the macro was defined in. Using Undefined in arithmetic, as a
 * callee or for its attributes is an error, as with jinja2's default
 * Undefined; printing, iterating and testing it is not.
 *
 * Every statement, expression node and loop iteration is charged to a step
 * budget and every nested evaluation to a depth budget (jinja_limits).
 */
#include "jinja_impl.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static struct jv eval(struct jstate *st, const struct jnode *x);
static void exec(struct jstate *st, const struct jnode *x);

void jinja_limits_default(struct jinja_limits *l)
{
    l->max_output = (size_t)64 << 20;
    l->max_memory = (size_t)256 << 20;
    l->max_steps = 20 * 1000 * 1000;
    l->max_depth = 500;
}

void jinja_step(struct jstate *st, uint32_t pos, uint64_t n)
{
    st->steps += n;
    if (st->steps > st->lim.max_steps)
        jx_fail(&st->c, -E2BIG, pos,
                "template evaluation took more than %llu steps (runaway loop or recursion?)",
                (unsigned long long)st->lim.max_steps);
}

static void enter(struct jstate *st, uint32_t pos)
{
    if (++st->depth > st->lim.max_depth)
        jx_fail(&st->c, -E2BIG, pos, "template evaluation nested more than %u levels deep",
                st->lim.max_depth);
}

/* ---- scopes -------------------------------------------------------------------------- */

static struct jscope *scope_new(struct jstate *st, struct jscope *parent)
{
    struct jscope *s = jx_alloc(&st->c, sizeof *s);
    s->parent = parent;
    return s;
}

static struct jv lookup(struct jstate *st, const struct jstr *name)
{
    for (struct jscope *s = st->scope; s; s = s->parent) {
        struct jv *v = jd_get(&s->vars, name->s, name->len);
        if (v)
            return *v;
    }
    if (js_eqc(name, "caller") && st->caller.t == JV_FUNC)
        return st->caller;
    int g = jinja_find_global(name->s, name->len);
    if (g >= 0) {
        struct jfunc *f = jx_alloc(&st->c, sizeof *f);
        f->kind = JF_GLOBAL;
        f->id = g;
        return (struct jv){.t = JV_FUNC, .fn = f};
    }
    return jv_undef(name->s);
}

static void assign(struct jstate *st, const struct jnode *target, struct jv v)
{
    if (target->kind == JN_NAME) {
        jd_set(&st->c, &st->scope->vars, target->name, v);
        return;
    }
    if (target->kind == JN_ATTR) {
        struct jv ns = lookup(st, target->a->name);
        if (ns.t != JV_NS)
            jx_fail(&st->c, -EINVAL, target->pos,
                    "cannot set attribute '%s' of '%s': only a namespace() has settable "
                    "attributes", target->name->s, target->a->name->s);
        jd_set(&st->c, ns.d, target->name, v);
        return;
    }
    /* a tuple of names: unpack a list, tuple or string of the same length */
    struct jlist *items = v.t == JV_LIST ? v.l : jinja_iter(st, target->pos, v);
    if (items->n != target->n)
        jx_fail(&st->c, -EINVAL, target->pos, "%s values to unpack (expected %u, got %zu)",
                items->n > target->n ? "too many" : "not enough", target->n, items->n);
    for (uint32_t i = 0; i < target->n; i++)
        jd_set(&st->c, &st->scope->vars, target->kids[i]->name, items->v[i]);
}

/* ---- calls ---------------------------------------------------------------------------------- */

static void eval_args(struct jstate *st, const struct jnode *x, struct jargs *a)
{
    a->n = x->n;
    a->nk = x->n2;
    a->v = x->n ? jx_alloc(&st->c, x->n * sizeof *a->v) : NULL;
    a->kv = x->n2 ? jx_alloc(&st->c, x->n2 * sizeof *a->kv) : NULL;
    a->k = x->names;
    for (uint32_t i = 0; i < x->n; i++)
        a->v[i] = eval(st, x->kids[i]);
    for (uint32_t i = 0; i < x->n2; i++)
        a->kv[i] = eval(st, x->kids2[i]);
}

struct jv *ja_get(const struct jargs *a, uint32_t i, const char *kw)
{
    if (i < a->n)
        return &a->v[i];
    if (kw)
        for (uint32_t k = 0; k < a->nk; k++)
            if (js_eqc(a->k[k], kw))
                return &a->kv[k];
    return NULL;
}

int64_t ja_int(struct jstate *st, uint32_t pos, const struct jv *v, int64_t dflt, const char *what)
{
    if (!v || v->t == JV_NONE)
        return dflt;
    if (v->t == JV_INT)
        return v->i;
    if (v->t == JV_BOOL)
        return v->b;
    jx_fail(&st->c, -EINVAL, pos, "%s must be an integer, not '%s'", what, jv_type_name(*v));
}

const struct jstr *ja_str(struct jstate *st, uint32_t pos, const struct jv *v, const char *what)
{
    if (!v || v->t == JV_NONE)
        return NULL;
    if (v->t != JV_STR)
        jx_fail(&st->c, -EINVAL, pos, "%s must be a string, not '%s'", what, jv_type_name(*v));
    return v->s;
}

void ja_check(struct jstate *st, uint32_t pos, const struct jargs *a, uint32_t max_pos,
              const char *const *kws, const char *what)
{
    if (a->n > max_pos)
        jx_fail(&st->c, -EINVAL, pos, "%s takes at most %u positional argument%s (%u given)",
                what, max_pos, max_pos == 1 ? "" : "s", a->n);
    for (uint32_t k = 0; k < a->nk; k++) {
        bool ok = false;
        for (int i = 0; kws && kws[i] && !ok; i++)
            ok = js_eqc(a->k[k], kws[i]);
        if (!ok)
            jx_fail(&st->c, -EINVAL, pos, "%s got an unexpected keyword argument '%.60s'", what,
                    a->k[k]->s);
    }
}

/* Runs a macro (node: JN_MACRO) or a call block's caller (JN_CALLBLOCK) and
 * returns its output. */
static struct jv call_macro(struct jstate *st, uint32_t pos, const struct jfunc *f,
                            const struct jargs *a, struct jv caller)
{
    const struct jnode *m = f->node;
    const char *name = m->kind == JN_MACRO ? m->name->s : "caller";
    enter(st, pos);
    jinja_step(st, pos, 1);
    if (a->n > m->n2)
        jx_fail(&st->c, -EINVAL, pos, "macro '%s' takes not more than %u argument%s", name,
                m->n2, m->n2 == 1 ? "" : "s");
    for (uint32_t k = 0; k < a->nk; k++) {
        uint32_t i = 0;
        while (i < m->n2 && !js_eq(m->names[i], a->k[k]->s, a->k[k]->len))
            i++;
        if (i == m->n2)
            jx_fail(&st->c, -EINVAL, pos, "macro '%s' has no parameter named '%.60s'", name,
                    a->k[k]->s);
        if (i < a->n)
            jx_fail(&st->c, -EINVAL, pos, "macro '%s' got multiple values for '%.60s'", name,
                    a->k[k]->s);
    }
    struct jscope *saved_scope = st->scope;
    struct sbuf *saved_out = st->out;
    struct jv saved_caller = st->caller;
    struct jscope *scope = scope_new(st, f->scope);
    st->scope = scope;
    for (uint32_t i = 0; i < m->n2; i++) {
        struct jv *v = ja_get(a, i, m->names[i]->s);
        struct jv val = v              ? *v
                        : m->kids2[i] ? eval(st, m->kids2[i]) /* sees earlier parameters */
                                      : jv_undef(m->names[i]->s);
        jd_set(&st->c, &scope->vars, m->names[i], val);
    }
    struct sbuf out;
    sb_init(&out, &st->c, st->lim.max_output);
    st->out = &out;
    st->caller = caller;
    exec(st, m->body);
    st->scope = saved_scope;
    st->out = saved_out;
    st->caller = saved_caller;
    st->depth--;
    return jv_str(sb_str(&out));
}

struct jv jinja_call(struct jstate *st, uint32_t pos, struct jv fn, const struct jargs *a)
{
    if (fn.t != JV_FUNC) {
        jinja_need_defined(st, pos, fn);
        jx_fail(&st->c, -EINVAL, pos, "'%s' object is not callable", jv_type_name(fn));
    }
    switch (fn.fn->kind) {
    case JF_GLOBAL:
        return jinja_call_global(st, pos, fn.fn->id, a);
    case JF_METHOD:
        return jinja_call_method(st, pos, fn.fn, a);
    case JF_MACRO:
        return call_macro(st, pos, fn.fn, a, jv_undef("caller"));
    case JF_CALLER:
        return call_macro(st, pos, fn.fn, a, fn.fn->caller);
    }
    jx_fail(&st->c, -EINVAL, pos, "not callable");
}

/* ---- expressions ------------------------------------------------------------------------------ */

static bool compare_op(struct jstate *st, uint32_t pos, enum jop op, struct jv a, struct jv b)
{
    switch (op) {
    case OP_EQ: return jv_equal(&st->c, a, b);
    case OP_NE: return !jv_equal(&st->c, a, b);
    case OP_LT: return jinja_compare(st, pos, a, b) < 0;
    case OP_LE: return jinja_compare(st, pos, a, b) <= 0;
    case OP_GT: return jinja_compare(st, pos, a, b) > 0;
    case OP_GE: return jinja_compare(st, pos, a, b) >= 0;
    case OP_IN: return jinja_contains(st, pos, a, b);
    case OP_NOTIN: return !jinja_contains(st, pos, a, b);
    default: return false;
    }
}

static struct jv eval_inner(struct jstate *st, const struct jnode *x)
{
    struct jv a, b;
    struct jargs args;
    switch (x->kind) {
    case JN_CONST:
        return x->val;
    case JN_NAME:
        return lookup(st, x->name);
    case JN_INPUT:
        return st->input;
    case JN_LIST:
    case JN_TUPLE: {
        struct jlist *l = jl_new(&st->c, x->n);
        l->tuple = x->kind == JN_TUPLE;
        for (uint32_t i = 0; i < x->n; i++)
            jl_push(&st->c, l, eval(st, x->kids[i]));
        return jv_list(l);
    }
    case JN_DICT: {
        struct jdict *d = jd_new(&st->c, x->n);
        for (uint32_t i = 0; i < x->n; i++) {
            struct jv k = eval(st, x->kids[i]);
            if (k.t != JV_STR)
                jx_fail(&st->c, -EINVAL, x->kids[i]->pos,
                        "unsupported: dict keys must be strings, not '%s'", jv_type_name(k));
            jd_set(&st->c, d, k.s, eval(st, x->kids2[i]));
        }
        return jv_dict(d);
    }
    case JN_ATTR:
        return jinja_getattr(st, x->pos, eval(st, x->a), x->name);
    case JN_ITEM:
        a = eval(st, x->a);
        return jinja_getitem(st, x->pos, a, eval(st, x->b));
    case JN_SLICE: {
        a = eval(st, x->a);
        struct jv sv[3];
        for (int k = 0; k < 3; k++)
            sv[k] = x->kids[k] ? eval(st, x->kids[k]) : jv_none();
        return jinja_slice(st, x->pos, a, sv);
    }
    case JN_CALL:
        a = eval(st, x->a);
        eval_args(st, x, &args);
        return jinja_call(st, x->pos, a, &args);
    case JN_FILTER:
        a = eval(st, x->a);
        eval_args(st, x, &args);
        return jinja_filters[x->id].fn(st, x->pos, a, &args);
    case JN_TEST:
        a = eval(st, x->a);
        eval_args(st, x, &args);
        return jv_bool(jinja_tests[x->id].fn(st, x->pos, a, &args) != (x->op != 0));
    case JN_NEG:
    case JN_POS:
        a = eval(st, x->a);
        if (a.t == JV_FLOAT)
            return jv_float(x->kind == JN_NEG ? -a.f : a.f);
        if (a.t == JV_INT || a.t == JV_BOOL) {
            int64_t i = a.t == JV_BOOL ? a.b : a.i;
            if (x->kind == JN_POS)
                return jv_int(i);
            if (i == INT64_MIN)
                jx_fail(&st->c, -EINVAL, x->pos, "integer overflow (beyond 64 bits)");
            return jv_int(-i);
        }
        jinja_need_defined(st, x->pos, a);
        jx_fail(&st->c, -EINVAL, x->pos, "bad operand type for unary %c: '%s'",
                x->kind == JN_NEG ? '-' : '+', jv_type_name(a));
    case JN_NOT:
        return jv_bool(!jv_truthy(eval(st, x->a)));
    case JN_AND:
        a = eval(st, x->a);
        return jv_truthy(a) ? eval(st, x->b) : a;
    case JN_OR:
        a = eval(st, x->a);
        return jv_truthy(a) ? a : eval(st, x->b);
    case JN_BIN:
        a = eval(st, x->a);
        b = eval(st, x->b);
        return jinja_arith(st, x->pos, x->op, a, b);
    case JN_CMP:
        a = eval(st, x->a);
        for (uint32_t i = 0; i < x->n; i++) {
            b = eval(st, x->kids[i]);
            if (!compare_op(st, x->pos, x->ops[i], a, b))
                return jv_bool(false);
            a = b;
        }
        return jv_bool(true);
    case JN_COND:
        if (jv_truthy(eval(st, x->a)))
            return eval(st, x->b);
        return x->c ? eval(st, x->c) : jv_undef(NULL);
    case JN_CONCAT: {
        struct sbuf s;
        sb_init(&s, &st->c, st->lim.max_output);
        for (uint32_t i = 0; i < x->n; i++)
            py_str(&s, eval(st, x->kids[i]));
        return jv_str(sb_str(&s));
    }
    default:
        jx_fail(&st->c, -EINVAL, x->pos, "internal error: statement used as an expression");
    }
}

static struct jv eval(struct jstate *st, const struct jnode *x)
{
    enter(st, x->pos);
    jinja_step(st, x->pos, 1);
    struct jv v = eval_inner(st, x);
    st->depth--;
    return v;
}

/* ---- statements ---------------------------------------------------------------------------------- */

/* Runs body with output captured; returns the text. */
static const struct jstr *capture(struct jstate *st, const struct jnode *body)
{
    struct sbuf out, *saved = st->out;
    sb_init(&out, &st->c, st->lim.max_output);
    st->out = &out;
    exec(st, body);
    st->out = saved;
    return sb_str(&out);
}

static void exec_for(struct jstate *st, const struct jnode *x)
{
    struct jlist *items = jinja_iter(st, x->b->pos, eval(st, x->b));
    struct jscope *outer = st->scope;
    struct jscope *it = scope_new(st, outer);
    if (x->c) { /* `for x in xs if cond`: filter first, so loop.length counts the kept ones */
        struct jlist *kept = jl_new(&st->c, 0);
        st->scope = it;
        for (size_t i = 0; i < items->n; i++) {
            jinja_step(st, x->pos, 1);
            it->vars.n = 0;
            assign(st, x->a, items->v[i]);
            if (jv_truthy(eval(st, x->c)))
                jl_push(&st->c, kept, items->v[i]);
        }
        st->scope = outer;
        items = kept;
    }
    if (!items->n) {
        if (x->orelse)
            exec(st, x->orelse);
        return;
    }
    struct jloop *loop = jx_alloc(&st->c, sizeof *loop);
    loop->items = items;
    loop->depth = 1; /* jinja2 counts depth only for recursive loops, which are unsupported */
    const struct jstr *loop_name = js_new(&st->c, "loop", 4);
    st->scope = it;
    for (size_t i = 0; i < items->n; i++) {
        jinja_step(st, x->pos, 1);
        loop->i = i;
        it->vars.n = 0; /* each iteration starts from the enclosing scope */
        assign(st, x->a, items->v[i]);
        jd_set(&st->c, &it->vars, loop_name, (struct jv){.t = JV_LOOP, .loop = loop});
        exec(st, x->body);
        if (st->loop_ctl == 1) {
            st->loop_ctl = 0;
            break;
        }
        st->loop_ctl = 0;
    }
    st->scope = outer;
}

static void exec_inner(struct jstate *st, const struct jnode *x)
{
    switch (x->kind) {
    case JN_BODY:
        for (uint32_t i = 0; i < x->n && !st->loop_ctl; i++)
            exec(st, x->kids[i]);
        return;
    case JN_TEXT:
        sb_put(st->out, x->val.s->s, x->val.s->len);
        return;
    case JN_OUT:
        py_str(st->out, eval(st, x->a));
        return;
    case JN_IF:
        if (jv_truthy(eval(st, x->a)))
            exec(st, x->body);
        else if (x->orelse)
            exec(st, x->orelse);
        return;
    case JN_FOR:
        exec_for(st, x);
        return;
    case JN_SET:
        assign(st, x->a, eval(st, x->b));
        return;
    case JN_SETBLOCK: {
        struct jv v = jv_str(capture(st, x->body));
        if (x->c) {
            struct jv saved = st->input;
            st->input = v;
            v = eval(st, x->c);
            st->input = saved;
        }
        assign(st, x->a, v);
        return;
    }
    case JN_MACRO: {
        struct jfunc *f = jx_alloc(&st->c, sizeof *f);
        f->kind = JF_MACRO;
        f->node = x;
        f->scope = st->scope;
        jd_set(&st->c, &st->scope->vars, x->name, (struct jv){.t = JV_FUNC, .fn = f});
        return;
    }
    case JN_CALLBLOCK: {
        struct jfunc *c = jx_alloc(&st->c, sizeof *c);
        c->kind = JF_CALLER;
        c->node = x;
        c->scope = st->scope;
        c->caller = st->caller;
        struct jv fn = eval(st, x->a->a);
        struct jargs args;
        eval_args(st, x->a, &args);
        if (fn.t != JV_FUNC || fn.fn->kind != JF_MACRO) {
            jinja_need_defined(st, x->a->pos, fn);
            jx_fail(&st->c, -EINVAL, x->a->pos, "'call' needs a macro, not '%s'",
                    jv_type_name(fn));
        }
        struct jv r = call_macro(st, x->pos, fn.fn, &args, (struct jv){.t = JV_FUNC, .fn = c});
        sb_put(st->out, r.s->s, r.s->len);
        return;
    }
    case JN_FILTERBLOCK: {
        struct jv saved = st->input;
        st->input = jv_str(capture(st, x->body));
        struct jv v = eval(st, x->c);
        st->input = saved;
        py_str(st->out, v);
        return;
    }
    case JN_BREAK:
        st->loop_ctl = 1;
        return;
    case JN_CONTINUE:
        st->loop_ctl = 2;
        return;
    case JN_WITH: {
        struct jscope *outer = st->scope, *s = scope_new(st, outer);
        for (uint32_t i = 0; i < x->n2; i++)
            jd_set(&st->c, &s->vars, x->names[i], eval(st, x->kids2[i]));
        st->scope = s;
        exec(st, x->body);
        st->scope = outer;
        return;
    }
    default:
        jx_fail(&st->c, -EINVAL, x->pos, "internal error: expression used as a statement");
    }
}

static void exec(struct jstate *st, const struct jnode *x)
{
    enter(st, x->pos);
    jinja_step(st, x->pos, 1);
    exec_inner(st, x);
    st->depth--;
}

/* ---- entry --------------------------------------------------------------------------------------- */

int jinja_render(const struct jinja_tmpl *t, const json_t *vars, int64_t now,
                 const struct jinja_limits *lim, char **out, size_t *len, struct hr_err *err)
{
    hr_err_clear(err);
    if (vars && !json_is_object(vars))
        return hr_err_set(err, -EINVAL, -1, "template variables must be a JSON object");
    struct jstate *st = calloc(1, sizeof *st);
    if (!st)
        return -ENOMEM;
    if (lim)
        st->lim = *lim;
    else
        jinja_limits_default(&st->lim);
    st->t = t;
    st->now = now;
    st->c.err = err;
    st->c.src = t->c.src;
    st->c.src_len = t->c.src_len;
    st->c.arena.limit = st->lim.max_memory;
    if (setjmp(st->c.jb)) {
        int rc = st->c.rc;
        jarena_free(&st->c.arena);
        free(st);
        return rc;
    }
    st->globals = scope_new(st, NULL);
    st->scope = st->globals;
    st->caller = jv_undef("caller");
    if (vars) {
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)vars, k, v)
        {
            jd_set(&st->c, &st->globals->vars, js_cstr(&st->c, k), jv_from_json(&st->c, v));
        }
    }
    struct sbuf o;
    sb_init(&o, &st->c, st->lim.max_output);
    st->out = &o;
    exec(st, t->root);
    char *res = malloc(o.n + 1);
    if (!res)
        jx_fail(&st->c, -ENOMEM, JPOS_NONE, "out of memory");
    if (o.n)
        memcpy(res, o.p, o.n);
    res[o.n] = '\0';
    if (len)
        *len = o.n;
    *out = res;
    jarena_free(&st->c.arena);
    free(st);
    return 0;
}
