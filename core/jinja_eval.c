/*
 * jinja_eval.c — evaluating a parsed template: scopes, statements,
 * expressions, attribute and item access, calls and macros, and the
 * render entry point.
 *
 * Scoping follows jinja2: `if` opens no scope; every for-loop iteration
 * starts a fresh scope over the enclosing one (so `set` inside a loop is
 * gone at the next iteration and after the loop — templates carry state
 * across iterations in a namespace()); a macro call runs in a scope over
 * the one the macro was defined in. Attribute access `a.b` tries Python's
 * getattr first (so `d.items` is the dict method) and then the item, and
 * `a['b']` the other way round, as jinja2's sandbox does. Using Undefined
 * in arithmetic, as a callee or for its attributes is an error, as with
 * jinja2's default Undefined; printing, iterating and testing it is not.
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

void jinja_need_defined(struct jstate *st, uint32_t pos, struct jv v)
{
    if (v.t != JV_UNDEF)
        return;
    if (v.uname)
        jx_fail(&st->c, -EINVAL, pos, "'%.100s' is undefined", v.uname);
    jx_fail(&st->c, -EINVAL, pos, "use of an undefined value");
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

/* ---- access ---------------------------------------------------------------------------- */

struct jv jinja_getattr(struct jstate *st, uint32_t pos, struct jv obj, const struct jstr *name)
{
    struct jv m;
    switch (obj.t) {
    case JV_UNDEF:
        if (obj.uname)
            jx_fail(&st->c, -EINVAL, pos, "'%.100s' is undefined (reading its attribute '%.100s')",
                    obj.uname, name->s);
        jx_fail(&st->c, -EINVAL, pos, "undefined value has no attribute '%.100s'", name->s);
    case JV_DICT: {
        if (jinja_method(st, obj, name, &m))
            return m;
        jinja_step(st, pos, obj.d->n / 16);
        struct jv *v = jd_get(obj.d, name->s, name->len);
        return v ? *v : jv_undef(name->s);
    }
    case JV_NS: {
        struct jv *v = jd_get(obj.d, name->s, name->len);
        return v ? *v : jv_undef(name->s);
    }
    case JV_STR:
    case JV_LIST:
    case JV_LOOP:
        if (jinja_method(st, obj, name, &m))
            return m;
        return jv_undef(name->s);
    default:
        return jv_undef(name->s);
    }
}

static int64_t as_index(struct jv k, bool *ok)
{
    *ok = k.t == JV_INT || k.t == JV_BOOL;
    return k.t == JV_BOOL ? k.b : k.i;
}

struct jv jinja_getitem(struct jstate *st, uint32_t pos, struct jv obj, struct jv key)
{
    bool ok;
    switch (obj.t) {
    case JV_UNDEF:
        jinja_need_defined(st, pos, obj);
        break;
    case JV_DICT:
    case JV_NS:
        if (key.t == JV_STR) {
            jinja_step(st, pos, obj.d->n / 16);
            struct jv *v = jd_get(obj.d, key.s->s, key.s->len);
            if (v)
                return *v;
            return jinja_getattr(st, pos, obj, key.s);
        }
        break;
    case JV_LIST: {
        int64_t i = as_index(key, &ok);
        if (obj.l->view) /* not subscriptable: jinja2 gives Undefined */
            return key.t == JV_STR ? jinja_getattr(st, pos, obj, key.s) : jv_undef(NULL);
        if (ok) {
            int64_t n = (int64_t)obj.l->n;
            if (i < 0)
                i += n;
            return i >= 0 && i < n ? obj.l->v[i] : jv_undef(NULL);
        }
        if (key.t == JV_STR)
            return jinja_getattr(st, pos, obj, key.s);
        break;
    }
    case JV_STR: {
        int64_t i = as_index(key, &ok);
        if (ok) {
            jinja_step(st, pos, obj.s->len / 64);
            int64_t n = (int64_t)u8_count(obj.s->s, obj.s->len);
            if (i < 0)
                i += n;
            if (i < 0 || i >= n)
                return jv_undef(NULL);
            size_t a = u8_offset(obj.s->s, obj.s->len, (size_t)i);
            size_t b = u8_offset(obj.s->s, obj.s->len, (size_t)i + 1);
            return jv_str(js_new(&st->c, obj.s->s + a, b - a));
        }
        if (key.t == JV_STR)
            return jinja_getattr(st, pos, obj, key.s);
        break;
    }
    case JV_LOOP:
        if (key.t == JV_STR)
            return jinja_getattr(st, pos, obj, key.s);
        break;
    default:
        break;
    }
    return jv_undef(NULL);
}

/* Python's slice.indices(): start/stop/step clamped to a sequence of n. */
static void slice_indices(struct jstate *st, uint32_t pos, const struct jv *sv, int64_t n,
                          int64_t *start, int64_t *stop, int64_t *step)
{
    int64_t v[3];
    bool given[3];
    for (int k = 0; k < 3; k++) {
        given[k] = sv[k].t != JV_NONE && sv[k].t != JV_UNDEF;
        bool ok = true;
        v[k] = given[k] ? as_index(sv[k], &ok) : 0;
        if (!ok)
            jx_fail(&st->c, -EINVAL, pos, "slice indices must be integers or None, not '%s'",
                    jv_type_name(sv[k]));
    }
    *step = given[2] ? v[2] : 1;
    if (*step == 0)
        jx_fail(&st->c, -EINVAL, pos, "slice step cannot be zero");
    if (*step == INT64_MIN)
        *step = -INT64_MAX;
    int64_t lo = *step < 0 ? -1 : 0, hi = *step < 0 ? n - 1 : n;
    for (int k = 0; k < 2; k++) {
        int64_t x;
        if (!given[k]) {
            x = (k == 0) == (*step > 0) ? lo : hi;
        } else {
            x = v[k];
            if (x < 0) {
                x = x < -n ? lo : x + n;
                if (x < lo)
                    x = lo;
            } else if (x > hi) {
                x = hi;
            }
        }
        if (k == 0)
            *start = x;
        else
            *stop = x;
    }
}

static struct jv slice(struct jstate *st, const struct jnode *x, struct jv obj)
{
    struct jv sv[3];
    for (int k = 0; k < 3; k++)
        sv[k] = x->kids[k] ? eval(st, x->kids[k]) : jv_none();
    int64_t start, stop, step;
    if (obj.t == JV_LIST && !obj.l->view) { /* slices bypass getitem in jinja2: errors stand */
        slice_indices(st, x->pos, sv, (int64_t)obj.l->n, &start, &stop, &step);
        struct jlist *l = jl_new(&st->c, 0);
        l->tuple = obj.l->tuple;
        for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step)
            jl_push(&st->c, l, obj.l->v[i]);
        jinja_step(st, x->pos, l->n / 16);
        return jv_list(l);
    }
    if (obj.t == JV_STR) {
        const struct jstr *s = obj.s;
        size_t n = u8_count(s->s, s->len);
        jinja_step(st, x->pos, s->len / 16);
        slice_indices(st, x->pos, sv, (int64_t)n, &start, &stop, &step);
        if (step == 1) {
            if (stop <= start)
                return jv_str(js_new(&st->c, "", 0));
            size_t a = n == s->len ? (size_t)start : u8_offset(s->s, s->len, (size_t)start);
            size_t b = n == s->len ? (size_t)stop : u8_offset(s->s, s->len, (size_t)stop);
            return jv_str(js_new(&st->c, s->s + a, b - a));
        }
        /* general step: code point offsets first */
        size_t *off = jx_alloc(&st->c, (n + 1) * sizeof *off);
        for (size_t i = 0, o = 0; i <= n; i++) {
            off[i] = o;
            if (o < s->len) {
                o++;
                while (o < s->len && ((unsigned char)s->s[o] & 0xc0) == 0x80)
                    o++;
            }
        }
        struct sbuf b;
        sb_init(&b, &st->c, 0);
        for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step)
            sb_put(&b, s->s + off[i], off[i + 1] - off[i]);
        return jv_str(sb_str(&b));
    }
    jinja_need_defined(st, x->pos, obj);
    jx_fail(&st->c, -EINVAL, x->pos, "'%s' object is not subscriptable", jv_type_name(obj));
}

struct jlist *jinja_iter(struct jstate *st, uint32_t pos, struct jv v)
{
    switch (v.t) {
    case JV_LIST:
        if (v.l->view == VIEW_GEN) { /* a generator runs once */
            struct jlist *items = jl_new(&st->c, 0);
            *items = *v.l;
            items->view = VIEW_NONE;
            v.l->n = 0;
            return items;
        }
        return v.l;
    case JV_UNDEF:
        return jl_new(&st->c, 0);
    case JV_DICT: {
        struct jlist *l = jl_new(&st->c, v.d->n);
        for (size_t i = 0; i < v.d->n; i++)
            jl_push(&st->c, l, jv_str(v.d->k[i]));
        return l;
    }
    case JV_STR: {
        jinja_step(st, pos, v.s->len / 16);
        struct jlist *l = jl_new(&st->c, v.s->len);
        const char *p = v.s->s, *end = p + v.s->len;
        while (p < end) {
            uint32_t cp;
            size_t n = u8_dec(p, end, &cp);
            jl_push(&st->c, l, jv_str(js_new(&st->c, p, n)));
            p += n;
        }
        return l;
    }
    default:
        jx_fail(&st->c, -EINVAL, pos, "'%s' object is not iterable", jv_type_name(v));
    }
}

int jinja_compare(struct jstate *st, uint32_t pos, struct jv a, struct jv b)
{
    if (jv_is_num(a) && jv_is_num(b)) {
        if (a.t != JV_FLOAT && b.t != JV_FLOAT) {
            int64_t x = a.t == JV_BOOL ? a.b : a.i, y = b.t == JV_BOOL ? b.b : b.i;
            return (x > y) - (x < y);
        }
        double x = jv_num(a), y = jv_num(b);
        return (x > y) - (x < y);
    }
    if (a.t == JV_STR && b.t == JV_STR) {
        size_t m = a.s->len < b.s->len ? a.s->len : b.s->len;
        int c = memcmp(a.s->s, b.s->s, m);
        if (c)
            return c < 0 ? -1 : 1;
        return (a.s->len > b.s->len) - (a.s->len < b.s->len);
    }
    if (a.t == JV_LIST && b.t == JV_LIST && a.l->tuple == b.l->tuple) {
        for (size_t i = 0; i < a.l->n && i < b.l->n; i++)
            if (!jv_equal(a.l->v[i], b.l->v[i]))
                return jinja_compare(st, pos, a.l->v[i], b.l->v[i]);
        return (a.l->n > b.l->n) - (a.l->n < b.l->n);
    }
    jinja_need_defined(st, pos, a.t == JV_UNDEF ? a : b);
    jx_fail(&st->c, -EINVAL, pos, "cannot order '%s' and '%s'", jv_type_name(a),
            jv_type_name(b));
}

bool jinja_contains(struct jstate *st, uint32_t pos, struct jv a, struct jv b)
{
    switch (b.t) {
    case JV_UNDEF:
        return false;
    case JV_STR:
        if (a.t != JV_STR)
            jx_fail(&st->c, -EINVAL, pos, "'in <string>' requires a string on the left, not '%s'",
                    jv_type_name(a));
        jinja_step(st, pos, b.s->len / 16);
        return a.s->len == 0 || memmem(b.s->s, b.s->len, a.s->s, a.s->len) != NULL;
    case JV_LIST:
        jinja_step(st, pos, b.l->n / 16);
        for (size_t i = 0; i < b.l->n; i++)
            if (jv_equal(a, b.l->v[i]))
                return true;
        return false;
    case JV_DICT:
        if (a.t == JV_DICT || a.t == JV_NS || (a.t == JV_LIST && !a.l->tuple && !a.l->view))
            jx_fail(&st->c, -EINVAL, pos, "unhashable type: '%s'", jv_type_name(a));
        jinja_step(st, pos, b.d->n / 16);
        return a.t == JV_STR && jd_get(b.d, a.s->s, a.s->len) != NULL;
    default:
        jx_fail(&st->c, -EINVAL, pos, "argument of type '%s' is not iterable", jv_type_name(b));
    }
}

/* ---- arithmetic ---------------------------------------------------------------------------- */

_Noreturn static void bad_operands(struct jstate *st, uint32_t pos, enum jop op, struct jv a,
                                   struct jv b)
{
    static const char *const names[] = {"?", "+", "-", "*", "/", "//", "%", "**"};
    jinja_need_defined(st, pos, a);
    jinja_need_defined(st, pos, b);
    jx_fail(&st->c, -EINVAL, pos, "unsupported operand types for %s: '%s' and '%s'",
            op <= OP_POW ? names[op] : "?", jv_type_name(a), jv_type_name(b));
}

_Noreturn static void overflow(struct jstate *st, uint32_t pos)
{
    jx_fail(&st->c, -EINVAL, pos, "integer overflow (beyond 64 bits)");
}

static struct jv repeat(struct jstate *st, uint32_t pos, struct jv seq, int64_t times)
{
    if (times < 0)
        times = 0;
    if (seq.t == JV_STR) {
        if (seq.s->len && (uint64_t)times > st->lim.max_output / seq.s->len)
            jx_fail(&st->c, -E2BIG, pos, "string repetition longer than the output limit");
        struct sbuf b;
        sb_init(&b, &st->c, 0);
        for (int64_t i = 0; i < times; i++)
            sb_put(&b, seq.s->s, seq.s->len);
        return jv_str(sb_str(&b));
    }
    if (seq.l->n && (uint64_t)times > st->lim.max_memory / 16 / seq.l->n)
        jx_fail(&st->c, -E2BIG, pos, "list repetition larger than the memory limit");
    jinja_step(st, pos, (uint64_t)times * seq.l->n / 16);
    struct jlist *l = jl_new(&st->c, (size_t)times * seq.l->n);
    l->tuple = seq.l->tuple;
    for (int64_t i = 0; i < times; i++)
        for (size_t k = 0; k < seq.l->n; k++)
            jl_push(&st->c, l, seq.l->v[k]);
    return jv_list(l);
}

struct jv jinja_arith(struct jstate *st, uint32_t pos, enum jop op, struct jv a, struct jv b)
{
    if ((a.t == JV_LIST && a.l->view) || (b.t == JV_LIST && b.l->view))
        bad_operands(st, pos, op, a, b); /* views and generators have no arithmetic */
    bool nums = jv_is_num(a) && jv_is_num(b);
    bool ints = nums && a.t != JV_FLOAT && b.t != JV_FLOAT;
    int64_t x = a.t == JV_BOOL ? a.b : a.i, y = b.t == JV_BOOL ? b.b : b.i, r;
    switch (op) {
    case OP_ADD:
        if (ints) {
            if (__builtin_add_overflow(x, y, &r))
                overflow(st, pos);
            return jv_int(r);
        }
        if (nums)
            return jv_float(jv_num(a) + jv_num(b));
        if (a.t == JV_STR && b.t == JV_STR) {
            jinja_step(st, pos, (a.s->len + b.s->len) / 64);
            struct sbuf s;
            sb_init(&s, &st->c, 0);
            sb_put(&s, a.s->s, a.s->len);
            sb_put(&s, b.s->s, b.s->len);
            return jv_str(sb_str(&s));
        }
        if (a.t == JV_LIST && b.t == JV_LIST && a.l->tuple == b.l->tuple) {
            struct jlist *l = jl_new(&st->c, a.l->n + b.l->n);
            l->tuple = a.l->tuple;
            for (size_t i = 0; i < a.l->n; i++)
                jl_push(&st->c, l, a.l->v[i]);
            for (size_t i = 0; i < b.l->n; i++)
                jl_push(&st->c, l, b.l->v[i]);
            jinja_step(st, pos, l->n / 16);
            return jv_list(l);
        }
        break;
    case OP_SUB:
        if (ints) {
            if (__builtin_sub_overflow(x, y, &r))
                overflow(st, pos);
            return jv_int(r);
        }
        if (nums)
            return jv_float(jv_num(a) - jv_num(b));
        break;
    case OP_MUL:
        if (ints) {
            if (__builtin_mul_overflow(x, y, &r))
                overflow(st, pos);
            return jv_int(r);
        }
        if (nums)
            return jv_float(jv_num(a) * jv_num(b));
        if ((a.t == JV_STR || a.t == JV_LIST) && (b.t == JV_INT || b.t == JV_BOOL))
            return repeat(st, pos, a, y);
        if ((b.t == JV_STR || b.t == JV_LIST) && (a.t == JV_INT || a.t == JV_BOOL))
            return repeat(st, pos, b, x);
        break;
    case OP_DIV:
        if (nums) {
            if (jv_num(b) == 0)
                jx_fail(&st->c, -EINVAL, pos, "division by zero");
            return jv_float(jv_num(a) / jv_num(b));
        }
        break;
    case OP_FLOORDIV:
    case OP_MOD:
        if (nums && jv_num(b) == 0)
            jx_fail(&st->c, -EINVAL, pos, "integer division or modulo by zero");
        if (ints) {
            if (x == INT64_MIN && y == -1)
                overflow(st, pos);
            int64_t q = x / y, m = x % y;
            if (m != 0 && ((m < 0) != (y < 0))) { /* Python floors */
                q--;
                m += y;
            }
            return jv_int(op == OP_FLOORDIV ? q : m);
        }
        if (nums) { /* Python's float divmod */
            double fx = jv_num(a), fy = jv_num(b);
            double m = fmod(fx, fy), div = (fx - m) / fy, fl;
            if (m != 0) {
                if ((fy < 0) != (m < 0)) {
                    m += fy;
                    div -= 1.0;
                }
            } else {
                m = copysign(0.0, fy);
            }
            if (div != 0) {
                fl = floor(div);
                if (div - fl > 0.5)
                    fl += 1.0;
            } else {
                fl = copysign(0.0, fx / fy);
            }
            return jv_float(op == OP_FLOORDIV ? fl : m);
        }
        if (op == OP_MOD && a.t == JV_STR)
            return jv_str(jinja_percent(st, pos, a.s, b));
        break;
    case OP_POW:
        if (ints && y >= 0) {
            int64_t base = x, res = 1, e = y;
            while (e > 0) {
                if ((e & 1) && __builtin_mul_overflow(res, base, &res))
                    overflow(st, pos);
                e >>= 1;
                if (e && __builtin_mul_overflow(base, base, &base))
                    overflow(st, pos);
            }
            return jv_int(res);
        }
        if (nums) {
            double x0 = jv_num(a), y0 = jv_num(b), r0;
            if (x0 == 0 && y0 < 0)
                jx_fail(&st->c, -EINVAL, pos, "0.0 cannot be raised to a negative power");
            r0 = pow(x0, y0);
            if (isinf(r0) && isfinite(x0) && isfinite(y0))
                jx_fail(&st->c, -EINVAL, pos, "numerical result out of range");
            if (isnan(r0) && !isnan(x0) && !isnan(y0))
                jx_fail(&st->c, -EINVAL, pos, "unsupported: a negative number to a fractional power");
            return jv_float(r0);
        }
        break;
    default:
        break;
    }
    bad_operands(st, pos, op, a, b);
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
    case OP_EQ: return jv_equal(a, b);
    case OP_NE: return !jv_equal(a, b);
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
    case JN_SLICE:
        return slice(st, x, eval(st, x->a));
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
                overflow(st, x->pos);
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
