/*
 * jinja_ops.c — what Python does for the template's operators and access:
 * attribute and item lookup (jinja2's sandbox order: `a.b` tries the
 * attribute — a method — first, `a['b']` the item first; misses give
 * Undefined, except on Undefined itself), slices (which bypass that lookup
 * in jinja2, so their errors stand), iteration, ordering, `in`, and
 * arithmetic on int64/double with Python's floor division and modulo.
 * Integer overflow is an error where Python would switch to big integers.
 */
#include "jinja_impl.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void jinja_need_defined(struct jstate *st, uint32_t pos, struct jv v)
{
    if (v.t != JV_UNDEF)
        return;
    if (v.owner && v.uname) {
        struct jv o = {.t = (enum jv_type)(v.owner - 1)};
        struct jlist l = {0};
        if (o.t == JV_LIST)
            o.l = &l; /* jv_type_name looks at the list's flags */
        jx_fail(&st->c, -EINVAL, pos, "'%s object' has no attribute '%.100s'", jv_type_name(o),
                v.uname);
    }
    if (v.owner)
        jx_fail(&st->c, -EINVAL, pos, "list index out of range");
    if (v.uname)
        jx_fail(&st->c, -EINVAL, pos, "'%.100s' is undefined", v.uname);
    jx_fail(&st->c, -EINVAL, pos, "use of an undefined value");
}

/* ---- access ---------------------------------------------------------------------------- */

struct jv jinja_getattr(struct jstate *st, uint32_t pos, struct jv obj, const struct jstr *name)
{
    struct jv m;
    switch (obj.t) {
    case JV_UNDEF:
        if (obj.owner)
            jinja_need_defined(st, pos, obj); /* "'dict object' has no attribute ..." */
        if (obj.uname)
            jx_fail(&st->c, -EINVAL, pos, "'%.100s' is undefined (reading its attribute '%.100s')",
                    obj.uname, name->s);
        jx_fail(&st->c, -EINVAL, pos, "undefined value has no attribute '%.100s'", name->s);
    case JV_DICT: {
        if (jinja_method(st, obj, name, &m))
            return m;
        jinja_step(st, pos, obj.d->n / 16);
        struct jv *v = jd_get(obj.d, name->s, name->len);
        return v ? *v : jv_undef_attr(obj, name->s);
    }
    case JV_NS: {
        struct jv *v = jd_get(obj.d, name->s, name->len);
        return v ? *v : jv_undef_attr(obj, name->s);
    }
    case JV_STR:
    case JV_LIST:
    case JV_LOOP:
        if (jinja_method(st, obj, name, &m))
            return m;
        return jv_undef_attr(obj, name->s);
    default:
        return jv_undef_attr(obj, name->s);
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
            return i >= 0 && i < n ? obj.l->v[i] : jv_undef_attr(obj, NULL);
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

struct jv jinja_slice(struct jstate *st, uint32_t pos, struct jv obj, const struct jv sv[3])
{
    int64_t start, stop, step;
    if (obj.t == JV_LIST && !obj.l->view) { /* slices bypass getitem in jinja2: errors stand */
        slice_indices(st, pos, sv, (int64_t)obj.l->n, &start, &stop, &step);
        struct jlist *l = jl_new(&st->c, 0);
        l->tuple = obj.l->tuple;
        for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step)
            jl_push(&st->c, l, obj.l->v[i]);
        jinja_step(st, pos, l->n / 16);
        return jv_list(l);
    }
    if (obj.t == JV_STR) {
        const struct jstr *s = obj.s;
        size_t n = u8_count(s->s, s->len);
        jinja_step(st, pos, s->len / 16);
        slice_indices(st, pos, sv, (int64_t)n, &start, &stop, &step);
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
    jinja_need_defined(st, pos, obj);
    jx_fail(&st->c, -EINVAL, pos, "'%s' object is not subscriptable", jv_type_name(obj));
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

static int compare_at(struct jstate *st, uint32_t pos, struct jv a, struct jv b, int depth)
{
    if (depth > 512)
        jx_fail(&st->c, -E2BIG, pos, "values nested more than 512 levels deep");
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
            if (!jv_equal(&st->c, a.l->v[i], b.l->v[i]))
                return compare_at(st, pos, a.l->v[i], b.l->v[i], depth + 1);
        return (a.l->n > b.l->n) - (a.l->n < b.l->n);
    }
    jinja_need_defined(st, pos, a.t == JV_UNDEF ? a : b);
    jx_fail(&st->c, -EINVAL, pos, "cannot order '%s' and '%s'", jv_type_name(a),
            jv_type_name(b));
}

int jinja_compare(struct jstate *st, uint32_t pos, struct jv a, struct jv b)
{
    return compare_at(st, pos, a, b, 0);
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
            if (jv_equal(&st->c, a, b.l->v[i]))
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
